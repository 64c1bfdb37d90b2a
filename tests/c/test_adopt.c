/* wsq_adopt: a socket accepted by another server (and the bytes it already read) is
 * handed to wsqueue, which runs the handshake and the connection from there. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "support.h"
#include "wsclient.h"

/* A client connected to our own listener, and the server side of it. */
struct pair {
    int client, server;
};

static bool own_accept(struct pair *p)
{
    uint16_t port;
    int lfd = listen_loopback(&port);
    if (lfd < 0) return false;
    p->client = wsc_tcp_connect(port);
    p->server = p->client >= 0 ? accept(lfd, NULL, NULL) : -1;
    close(lfd);
    return p->client >= 0 && p->server >= 0;
}

static bool fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

static void adopted_socket_with_its_request_head_completes_and_echoes(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    struct pair p;
    REQUIRE(own_accept(&p));
    char req[1024];
    size_t len = wsc_format_upgrade(req, sizeof req, "/adopted?x=1", "X-From: other\r\n");
    CHECK(wsc_write_all(p.client, req, len) == 0);
    /* "Another HTTP server" reads the request head, then hands over socket + bytes. */
    char head[1024];
    int got = wsc_read_head(p.server, head, sizeof head);
    REQUIRE(got == (int)len);
    uint64_t id = 0;
    CHECK_RC(wsq_adopt(fx.srv, p.server, head, (size_t)got, &id), WSQ_OK);
    CHECK(id != 0);
    char resp[2048], accept[64];
    CHECK(wsc_read_response(p.client, resp, sizeof resp) == 101);
    CHECK(wsc_header(resp, "Sec-WebSocket-Accept", accept, sizeof accept) &&
          strcmp(accept, WSC_ACCEPT) == 0);
    wsq_event_t ev;
    REQUIRE(fx_wait(&fx, WSQ_EVENT_OPEN, id, &ev));
    CHECK(strcmp(ev.path, "/adopted?x=1") == 0);
    char peer[64];
    wsc_local_addr(p.client, peer, sizeof peer);
    CHECK(ev.remote_addr && strcmp(ev.remote_addr, peer) == 0);
    bool from = false;
    for (size_t i = 0; i < ev.header_count; i++)
        from |= strcmp(ev.headers[i].name, "X-From") == 0 && strcmp(ev.headers[i].value, "other") == 0;
    CHECK(from);
    wsq_events_release(&ev, 1);
    for (int i = 0; i < 3; i++) {
        char msg[32];
        snprintf(msg, sizeof msg, "adopt %d", i);
        CHECK(wsc_send_frame(p.client, true, WSC_TEXT, msg, strlen(msg)) == 0);
        REQUIRE(fx_wait(&fx, WSQ_EVENT_MESSAGE, id, &ev));
        CHECK(ev.len == strlen(msg) && memcmp(ev.data, msg, ev.len) == 0);
        CHECK_RC(wsq_send(fx.srv, id, ev.message_kind, ev.data, ev.len), WSQ_OK);
        wsq_events_release(&ev, 1);
        wsc_frame_t f;
        int op = wsc_read_frame(p.client, &f);
        CHECK(op == WSC_TEXT && f.len == strlen(msg) && memcmp(f.data, msg, f.len) == 0);
        if (op >= 0) wsc_frame_free(&f);
    }
    wsq_stats_t st;
    CHECK_RC(wsq_stats(fx.srv, &st), WSQ_OK);
    CHECK(st.tcp_accepted == 1 && st.handshakes == 1);
    close(p.client);
    REQUIRE(fx_wait(&fx, WSQ_EVENT_CLOSE, id, &ev));
    CHECK(ev.close_code == 1006);
    wsq_events_release(&ev, 1);
    fx_finish(&fx);
}

static void adopted_socket_keeps_bytes_read_past_the_head(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    struct pair p;
    REQUIRE(own_accept(&p));
    /* The head and a first frame in one write: the other server read both. */
    char req[1024];
    size_t len = wsc_format_upgrade(req, sizeof req, "/eager", NULL);
    CHECK(wsc_write_all(p.client, req, len) == 0);
    CHECK(wsc_send_frame(p.client, true, WSC_BINARY, "early", 5) == 0);
    size_t want = len + 2 + 4 + 5; /* head + frame header + mask + payload */
    char buf[2048];
    CHECK(wsc_read_exact(p.server, buf, want) == 0);
    uint64_t id = 0;
    CHECK_RC(wsq_adopt(fx.srv, p.server, buf, want, &id), WSQ_OK);
    char resp[2048];
    CHECK(wsc_read_response(p.client, resp, sizeof resp) == 101);
    wsq_event_t ev;
    REQUIRE(fx_wait(&fx, WSQ_EVENT_OPEN, id, &ev));
    wsq_events_release(&ev, 1);
    REQUIRE(fx_wait(&fx, WSQ_EVENT_MESSAGE, id, &ev));
    CHECK(ev.message_kind == WSQ_MESSAGE_BINARY && ev.len == 5 && memcmp(ev.data, "early", 5) == 0);
    wsq_events_release(&ev, 1);
    close(p.client);
    fx_finish(&fx);
}

static void adopted_socket_with_no_bytes_read_yet_waits_for_the_request(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    struct pair p;
    REQUIRE(own_accept(&p));
    uint64_t id = 0;
    CHECK_RC(wsq_adopt(fx.srv, p.server, NULL, 0, NULL), WSQ_OK); /* conn may be NULL */
    char resp[2048];
    CHECK(wsc_handshake(p.client, "/late", NULL, resp, sizeof resp) == 101);
    wsq_event_t ev;
    REQUIRE(fx_wait(&fx, WSQ_EVENT_OPEN, 0, &ev));
    id = ev.conn;
    CHECK(id != 0 && strcmp(ev.path, "/late") == 0);
    wsq_events_release(&ev, 1);
    close(p.client);
    REQUIRE(fx_wait(&fx, WSQ_EVENT_CLOSE, id, &ev));
    wsq_events_release(&ev, 1);
    fx_finish(&fx);
}

static void adopting_something_that_is_not_a_stream_socket_is_refused(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    uint64_t id = 42;
    CHECK_FAILS(wsq_adopt(fx.srv, -1, NULL, 0, &id), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_adopt(fx.srv, -1, "GET", 3, &id), WSQ_ERR_INVALID_ARGUMENT);
    int pipefd[2];
    REQUIRE(pipe(pipefd) == 0);
    CHECK_FAILS(wsq_adopt(fx.srv, pipefd[0], NULL, 0, &id), WSQ_ERR_INVALID_ARGUMENT);
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    REQUIRE(udp >= 0);
    CHECK_FAILS(wsq_adopt(fx.srv, udp, NULL, 0, &id), WSQ_ERR_INVALID_ARGUMENT);
    CHECK(id == 42); /* untouched on failure */
    /* INVALID_ARGUMENT leaves the descriptors with the caller. */
    CHECK(fd_is_open(pipefd[0]) && fd_is_open(udp));
    close(pipefd[0]);
    close(pipefd[1]);
    close(udp);
    wsq_stats_t st;
    CHECK_RC(wsq_stats(fx.srv, &st), WSQ_OK);
    CHECK(st.tcp_accepted == 0);
    fx_finish(&fx);
}

static void adopting_into_a_stopped_server_fails_and_closes_the_socket(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    CHECK_RC(wsq_server_stop(fx.srv, 0), WSQ_OK);
    struct pair p;
    REQUIRE(own_accept(&p));
    uint64_t id = 42;
    CHECK_FAILS(wsq_adopt(fx.srv, p.server, NULL, 0, &id), WSQ_ERR_STOPPED);
    /* Any result but INVALID_ARGUMENT/BAD_HANDLE hands the socket to the library,
     * which closes it when it cannot use it: the client sees the end. */
    CHECK(wsc_wait_eof(p.client));
    close(p.client);
    fx_finish(&fx);
}

static void adopted_socket_with_a_bad_request_gets_an_http_error(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    struct pair p;
    REQUIRE(own_accept(&p));
    const char bad[] = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n";
    CHECK_RC(wsq_adopt(fx.srv, p.server, bad, strlen(bad), NULL), WSQ_OK);
    char resp[2048];
    CHECK(wsc_read_response(p.client, resp, sizeof resp) == 400);
    CHECK(wsc_wait_eof(p.client));
    fx_pump(&fx, 100);
    CHECK(fx.npending == 0);
    close(p.client);
    fx_finish(&fx);
}

TEST_MAIN(
    TEST(adopted_socket_with_its_request_head_completes_and_echoes),
    TEST(adopted_socket_keeps_bytes_read_past_the_head),
    TEST(adopted_socket_with_no_bytes_read_yet_waits_for_the_request),
    TEST(adopting_something_that_is_not_a_stream_socket_is_refused),
    TEST(adopting_into_a_stopped_server_fails_and_closes_the_socket),
    TEST(adopted_socket_with_a_bad_request_gets_an_http_error),
)
