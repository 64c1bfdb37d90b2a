/* wsq_config_t field by field: each setting set from C reaches the engine and has the
 * documented effect (the C config mirrors the Rust one; a field dropped or mis-mapped
 * in src/ffi would pass every other test). Limits are set small so each is hit fast;
 * waits are bounded by hang guards, never asserted as durations. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "check.h"
#include "support.h"
#include "wsclient.h"

/* Sends a raw request and returns the response status (-1 if none). */
static int status_of(uint16_t port, const char *request)
{
    int fd = wsc_tcp_connect(port);
    if (fd < 0) return -1;
    char head[4096];
    int status = -1;
    if (wsc_write_all(fd, request, strlen(request)) == 0) status = wsc_read_response(fd, head, sizeof head);
    close(fd);
    return status;
}

/* After this client misbehaved: the server's close code, the end of the connection
 * (the client then closes too, as a client does), and the close event's code. */
static void expect_failure_close(fixture_t *fx, client_t *c, uint16_t code, const char *what)
{
    wsc_frame_t f;
    int op = wsc_read_frame(c->fd, &f);
    uint16_t sent = op == WSC_CLOSE ? wsc_close_code(&f) : 0;
    if (op >= 0) wsc_frame_free(&f);
    bool eof = wsc_wait_eof(c->fd);
    close(c->fd);
    c->fd = -1;
    wsq_event_t ev;
    bool got = fx_wait(fx, WSQ_EVENT_CLOSE, c->id, &ev);
    if (sent != code || !eof || !got || ev.close_code != code) {
        fprintf(stderr, "  %s: client got close %u (then EOF: %d), event %s code %u\n", what, sent,
                eof, got ? "with" : "missing", got ? ev.close_code : 0);
        check_failures++;
    }
    if (got) wsq_events_release(&ev, 1);
}

static void max_connections_answers_503_beyond_the_limit(void)
{
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    cfg.max_connections = 2;
    fixture_t fx;
    REQUIRE(fx_start(&fx, &cfg));
    client_t a, b;
    REQUIRE(fx_connect(&fx, "/", NULL, &a));
    REQUIRE(fx_connect(&fx, "/", NULL, &b));
    int c = wsc_tcp_connect(fx.port);
    REQUIRE(c >= 0);
    char head[4096];
    CHECK(wsc_handshake(c, "/", NULL, head, sizeof head) == 503);
    close(c);
    /* A slot freed is a slot available again. */
    close(a.fd);
    wsq_event_t ev;
    REQUIRE(fx_wait(&fx, WSQ_EVENT_CLOSE, a.id, &ev));
    wsq_events_release(&ev, 1);
    client_t d;
    CHECK(fx_connect(&fx, "/", NULL, &d));
    wsq_stats_t st;
    CHECK_RC(wsq_stats(fx.srv, &st), WSQ_OK);
    CHECK(st.rejected_over_capacity == 1 && st.connections == 2);
    close(b.fd);
    close(d.fd);
    fx_finish(&fx);
}

static void max_head_bytes_and_max_headers_answer_431(void)
{
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    cfg.max_head_bytes = 512;
    cfg.max_headers = 8;
    fixture_t fx;
    REQUIRE(fx_start(&fx, &cfg));
    char extra[1024], req[2048];
    /* The client's five standard fields + 3 = 8: exactly at the limit. */
    wsc_format_upgrade(req, sizeof req, "/", "X-1: a\r\nX-2: b\r\nX-3: c\r\n");
    CHECK(status_of(fx.port, req) == 101);
    /* 5 + 4 = 9 fields: one too many. */
    wsc_format_upgrade(req, sizeof req, "/", "X-1: a\r\nX-2: b\r\nX-3: c\r\nX-4: d\r\n");
    CHECK(status_of(fx.port, req) == 431);
    /* One long header takes the head past 512 bytes. */
    memset(extra, 0, sizeof extra);
    strcpy(extra, "X-Long: ");
    memset(extra + 8, 'v', 500);
    strcat(extra, "\r\n");
    wsc_format_upgrade(req, sizeof req, "/", extra);
    CHECK(status_of(fx.port, req) == 431);
    /* The reactor counts a refusal after writing its response, so the client can read
     * the 431 a moment before the counter moves: wait (bounded) for it. */
    wsq_stats_t st;
    for (int i = 0; i < 1000; i++) {
        CHECK_RC(wsq_stats(fx.srv, &st), WSQ_OK);
        if (st.rejected_bad_handshake >= 2) break;
        usleep(10 * 1000);
    }
    CHECK(st.rejected_bad_handshake == 2);
    fx_finish(&fx);
}

static void max_frame_and_message_size_close_with_1009(void)
{
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    cfg.max_frame_size = 100;
    cfg.max_message_size = 150;
    fixture_t fx;
    REQUIRE(fx_start(&fx, &cfg));
    uint8_t buf[200] = {0};
    client_t c;
    /* At the limits: accepted. */
    REQUIRE(fx_connect(&fx, "/", NULL, &c));
    CHECK(wsc_send_frame(c.fd, false, WSC_BINARY, buf, 100) == 0);
    CHECK(wsc_send_frame(c.fd, true, WSC_CONT, buf, 50) == 0);
    wsq_event_t ev;
    CHECK(fx_wait(&fx, WSQ_EVENT_MESSAGE, c.id, &ev) && ev.len == 150);
    wsq_events_release(&ev, 1);
    /* One frame over max_frame_size. */
    CHECK(wsc_send_frame(c.fd, true, WSC_BINARY, buf, 101) == 0);
    expect_failure_close(&fx, &c, 1009, "frame of 101 bytes");
    /* Fragments each within the frame limit, together over the message limit. */
    REQUIRE(fx_connect(&fx, "/", NULL, &c));
    CHECK(wsc_send_frame(c.fd, false, WSC_BINARY, buf, 100) == 0);
    CHECK(wsc_send_frame(c.fd, true, WSC_CONT, buf, 51) == 0);
    expect_failure_close(&fx, &c, 1009, "message of 151 bytes");
    wsq_stats_t st;
    CHECK_RC(wsq_stats(fx.srv, &st), WSQ_OK);
    CHECK(st.too_big == 2);
    fx_finish(&fx);
}

static void small_event_queue_pauses_reading_without_losing_messages(void)
{
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    cfg.event_queue_capacity = 4;
    fixture_t fx;
    REQUIRE(fx_start(&fx, &cfg));
    client_t c;
    REQUIRE(fx_connect(&fx, "/", NULL, &c));
    /* 200 x 2 KiB: more than one read's worth, little enough for the socket buffers
     * to hold while nobody reads (so this thread never blocks writing). */
    enum { N = 200, SIZE = 2048 };
    static uint8_t msg[SIZE];
    for (int i = 0; i < N; i++) {
        memset(msg, i, sizeof msg);
        CHECK(wsc_send_frame(c.fd, true, WSC_BINARY, msg, sizeof msg) == 0);
    }
    /* Nobody polls: the reactor must stop reading rather than queue without bound. */
    wsq_stats_t st = {0};
    for (int i = 0; i < 500 && st.read_pauses == 0; i++) {
        usleep(10000);
        wsq_stats(fx.srv, &st);
    }
    usleep(100000); /* a reactor that kept reading would queue more meanwhile */
    wsq_stats(fx.srv, &st);
    CHECK(st.read_pauses >= 1);
    /* "Beyond which reactors stop reading": a read in progress may overshoot the
     * capacity by what it holds, but not by the whole backlog. */
    CHECK(st.event_queue_depth >= 4 && st.event_queue_depth < N / 2);
    fprintf(stderr, "  (%llu events queued with event_queue_capacity 4)\n",
            (unsigned long long)st.event_queue_depth);
    /* Then polling resumes reading, and every message arrives, in order. */
    for (int i = 0; i < N; i++) {
        wsq_event_t ev;
        if (!fx_wait(&fx, WSQ_EVENT_MESSAGE, c.id, &ev)) {
            CHECK(!"a message was lost after the pause");
            break;
        }
        memset(msg, i, sizeof msg);
        bool same = ev.len == SIZE && memcmp(ev.data, msg, SIZE) == 0;
        wsq_events_release(&ev, 1);
        if (!same) {
            CHECK(!"messages out of order after the pause");
            break;
        }
    }
    close(c.fd);
    fx_finish(&fx);
}

static void allowed_origins_refuse_other_origins_with_403(void)
{
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    cfg.allowed_origins = "https://good.example, https://also.example";
    fixture_t fx;
    REQUIRE(fx_start(&fx, &cfg));
    char req[2048];
    wsc_format_upgrade(req, sizeof req, "/", "Origin: https://evil.example\r\n");
    CHECK(status_of(fx.port, req) == 403);
    wsc_format_upgrade(req, sizeof req, "/", "Origin: https://also.example\r\n");
    CHECK(status_of(fx.port, req) == 101);
    fx_finish(&fx);
}

/* The 101's Sec-WebSocket-Extensions for a permessage-deflate offer ("" if none). */
static void deflate_answer(uint16_t port, char *out, size_t cap)
{
    out[0] = '\0';
    int fd = wsc_tcp_connect(port);
    if (fd < 0) return;
    char head[4096];
    if (wsc_handshake(fd, "/", "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
                      head, sizeof head) == 101)
        wsc_header(head, "Sec-WebSocket-Extensions", out, cap);
    close(fd);
}

static void deflate_modes_answer_the_offer_and_bad_values_are_refused(void)
{
    /* RFC 7692: shared declares no context takeover both ways; dedicated, with a
     * 10-bit window, names it for both sides; off answers without the extension. */
    static const struct {
        uint32_t mode;
        uint32_t bits;
        const char *answer;
    } cases[] = {
        {WSQ_DEFLATE_SHARED, 15, "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
        {WSQ_DEFLATE_DEDICATED, 10, "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10"},
        {WSQ_DEFLATE_OFF, 15, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wsq_config_t cfg;
        wsq_config_init(&cfg);
        cfg.deflate = cases[i].mode;
        cfg.deflate_window_bits = cases[i].bits;
        fixture_t fx;
        REQUIRE(fx_start(&fx, &cfg));
        char answer[256];
        deflate_answer(fx.port, answer, sizeof answer);
        if (strcmp(answer, cases[i].answer) != 0) {
            fprintf(stderr, "  mode %u: answered \"%s\", expected \"%s\"\n", (unsigned)cases[i].mode,
                    answer, cases[i].answer);
            CHECK(false);
        }
        fx_finish(&fx);
    }
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    wsq_server_t *srv = (wsq_server_t *)1;
    cfg.listen = "127.0.0.1:0";
    cfg.deflate = 3;
    CHECK_FAILS(wsq_server_start(&cfg, &srv), WSQ_ERR_INVALID_ARGUMENT);
    CHECK(srv == NULL);
    cfg.deflate = WSQ_DEFLATE_DEDICATED;
    cfg.deflate_window_bits = 8;
    CHECK_FAILS(wsq_server_start(&cfg, &srv), WSQ_ERR_INVALID_ARGUMENT);
    cfg.deflate_window_bits = 16;
    CHECK_FAILS(wsq_server_start(&cfg, &srv), WSQ_ERR_INVALID_ARGUMENT);
    cfg.deflate_window_bits = 15;
    cfg.deflate_level = 10;
    CHECK_FAILS(wsq_server_start(&cfg, &srv), WSQ_ERR_INVALID_ARGUMENT);
}

static void static_dir_serves_files_to_plain_http(void)
{
    char dir[] = "/tmp/wsq-ctest-XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/hello.txt", dir);
    FILE *f = fopen(path, "w");
    REQUIRE(f != NULL);
    fputs("hello from disk\n", f);
    fclose(f);
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    cfg.static_dir = dir;
    fixture_t fx;
    bool started = fx_start(&fx, &cfg);
    if (started) {
        int fd = wsc_tcp_connect(fx.port);
        const char *get = "GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        char head[4096], len[32], body[32] = {0};
        CHECK(fd >= 0 && wsc_write_all(fd, get, strlen(get)) == 0);
        CHECK(wsc_read_response(fd, head, sizeof head) == 200);
        CHECK(wsc_header(head, "Content-Length", len, sizeof len) && strcmp(len, "16") == 0);
        CHECK(wsc_read_exact(fd, body, 16) == 0 && strcmp(body, "hello from disk\n") == 0);
        if (fd >= 0) close(fd);
        CHECK(status_of(fx.port, "GET /missing.txt HTTP/1.1\r\nHost: x\r\n\r\n") == 404);
        /* The same port still upgrades WebSocket requests. */
        client_t c;
        CHECK(fx_connect(&fx, "/hello.txt", NULL, &c));
        close(c.fd);
        fx_finish(&fx);
    }
    CHECK(started);
    unlink(path);
    rmdir(dir);
}

static void handshake_timeout_drops_silent_and_unanswered_connections(void)
{
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    cfg.handshake_timeout_ms = 200;
    cfg.manual_accept = true;
    fixture_t fx;
    REQUIRE(fx_start(&fx, &cfg));
    /* A client that never sends its request: dropped, never announced. */
    int silent = wsc_tcp_connect(fx.port);
    REQUIRE(silent >= 0);
    CHECK(wsc_wait_eof(silent));
    close(silent);
    /* An upgrade the application never answers: dropped, and its close reported. */
    int c = wsc_tcp_connect(fx.port);
    REQUIRE(c >= 0);
    char req[1024];
    size_t n = wsc_format_upgrade(req, sizeof req, "/", NULL);
    CHECK(wsc_write_all(c, req, n) == 0);
    wsq_event_t ev;
    REQUIRE(fx_wait(&fx, WSQ_EVENT_UPGRADE_REQUEST, 0, &ev));
    uint64_t id = ev.conn;
    wsq_events_release(&ev, 1);
    CHECK(wsc_wait_eof(c));
    close(c);
    REQUIRE(fx_wait(&fx, WSQ_EVENT_CLOSE, id, &ev));
    CHECK(!ev.clean);
    wsq_events_release(&ev, 1);
    CHECK_FAILS(wsq_accept(fx.srv, id, NULL, NULL, 0), WSQ_ERR_NOT_FOUND);
    fx_pump(&fx, 50);
    CHECK(fx.npending == 0);
    wsq_stats_t st;
    CHECK_RC(wsq_stats(fx.srv, &st), WSQ_OK);
    CHECK(st.handshake_timeouts == 2 && st.connections == 0);
    fx_finish(&fx);
}

static void idle_timeout_closes_with_1001(void)
{
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    cfg.idle_timeout_ms = 200;
    fixture_t fx;
    REQUIRE(fx_start(&fx, &cfg));
    client_t c;
    REQUIRE(fx_connect(&fx, "/", NULL, &c));
    wsc_frame_t f;
    int op = wsc_read_frame(c.fd, &f); /* the client says nothing */
    CHECK(op == WSC_CLOSE && wsc_close_code(&f) == 1001);
    if (op >= 0) wsc_frame_free(&f);
    CHECK(wsc_send_close(c.fd, 1001, NULL) == 0);
    CHECK(wsc_wait_eof(c.fd));
    close(c.fd);
    wsq_event_t ev;
    REQUIRE(fx_wait(&fx, WSQ_EVENT_CLOSE, c.id, &ev));
    CHECK(ev.close_code == 1001 && ev.clean);
    wsq_events_release(&ev, 1);
    wsq_stats_t st;
    CHECK_RC(wsq_stats(fx.srv, &st), WSQ_OK);
    CHECK(st.idle_timeouts == 1);
    fx_finish(&fx);
}

static void ping_interval_pings_and_pong_timeout_drops_a_silent_peer(void)
{
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    cfg.ping_interval_ms = 100;
    cfg.pong_timeout_ms = 300;
    fixture_t fx;
    REQUIRE(fx_start(&fx, &cfg));
    client_t live, dead;
    REQUIRE(fx_connect(&fx, "/", NULL, &live));
    REQUIRE(fx_connect(&fx, "/", NULL, &dead));
    /* The live peer answers three pings and stays; the dead one never answers. */
    for (int i = 0; i < 3; i++) {
        wsc_frame_t f;
        int op = wsc_read_frame(live.fd, &f);
        CHECK(op == WSC_PING);
        if (op < 0) break;
        CHECK(wsc_send_frame(live.fd, true, WSC_PONG, f.data, f.len) == 0);
        wsc_frame_free(&f);
    }
    wsq_event_t ev;
    REQUIRE(fx_wait(&fx, WSQ_EVENT_CLOSE, dead.id, &ev));
    CHECK(ev.close_code == 1006 && !ev.clean);
    wsq_events_release(&ev, 1);
    CHECK(fx_count(&fx, WSQ_EVENT_CLOSE, live.id) == 0);
    CHECK_RC(wsq_send(fx.srv, live.id, WSQ_MESSAGE_TEXT, "alive", 5), WSQ_OK);
    wsq_stats_t st;
    CHECK_RC(wsq_stats(fx.srv, &st), WSQ_OK);
    CHECK(st.ping_timeouts == 1);
    close(live.fd);
    close(dead.fd);
    fx_finish(&fx);
}

static void ipv6_listen_address_and_peer_use_brackets(void)
{
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    cfg.listen = "[::1]:0";
    cfg.reactor_threads = 1;
    wsq_server_t *srv = NULL;
    /* This machine kind has IPv6 loopback; an IO error here means it lost it. */
    REQUIRE(wsq_server_start(&cfg, &srv) == WSQ_OK);
    char addr[64];
    CHECK_RC(wsq_server_local_addr(srv, 0, addr, sizeof addr), WSQ_OK);
    unsigned port = 0;
    CHECK(sscanf(addr, "[::1]:%u", &port) == 1 && port != 0);
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_port = htons((uint16_t)port);
    a.sin6_addr = in6addr_loopback;
    struct timeval tv = {WSC_RECV_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    REQUIRE(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    char head[4096];
    CHECK(wsc_handshake(fd, "/v6", NULL, head, sizeof head) == 101);
    wsq_event_t ev;
    size_t n = 0;
    for (int i = 0; i < 100 && n == 0; i++) wsq_poll(srv, &ev, 1, 100, &n);
    REQUIRE(n == 1);
    char want[64];
    snprintf(want, sizeof want, "[::1]:%u", (unsigned)ntohs(a.sin6_port));
    CHECK(ev.event_type == WSQ_EVENT_OPEN && strcmp(ev.remote_addr, want) == 0);
    wsq_events_release(&ev, 1);
    close(fd);
    wsq_server_free(srv);
}

TEST_MAIN(
    TEST(max_connections_answers_503_beyond_the_limit),
    TEST(max_head_bytes_and_max_headers_answer_431),
    TEST(max_frame_and_message_size_close_with_1009),
    TEST(small_event_queue_pauses_reading_without_losing_messages),
    TEST(allowed_origins_refuse_other_origins_with_403),
    TEST(deflate_modes_answer_the_offer_and_bad_values_are_refused),
    TEST(static_dir_serves_files_to_plain_http),
    TEST(handshake_timeout_drops_silent_and_unanswered_connections),
    TEST(idle_timeout_closes_with_1001),
    TEST(ping_interval_pings_and_pong_timeout_drops_a_silent_peer),
    TEST(ipv6_listen_address_and_peer_use_brackets),
)
