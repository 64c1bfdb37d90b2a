/* C ABI tests: written against include/wsqueue.h and the built library, run under
 * AddressSanitizer + LeakSanitizer by run.sh. Each test names the behaviour it checks. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "wsqueue.h"
#include "check.h"
#include "wsclient.h"

/* ---- helpers ---------------------------------------------------------------------- */

static wsq_server_t *start(wsq_config_t *cfg, uint16_t *port)
{
    cfg->listen = "127.0.0.1:0";
    cfg->reactor_threads = 2;
    wsq_server_t *srv = NULL;
    if (wsq_server_start(cfg, &srv) != WSQ_OK) {
        fprintf(stderr, "start failed: %s\n", wsq_last_error());
        return NULL;
    }
    wsq_server_port(srv, port);
    return srv;
}

static wsq_server_t *start_default(uint16_t *port)
{
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    return start(&cfg, port);
}

/* Polls until an event of `type` (for `conn`, unless 0) arrives; every other event of
 * the same batches is released and dropped, so use it only where one such event is
 * expected. Returns true with the event in *out (caller releases it). */
static bool wait_event(wsq_server_t *srv, uint32_t type, uint64_t conn, wsq_event_t *out)
{
    for (int round = 0; round < 100; round++) { /* 10 s hang guard */
        wsq_event_t evs[16];
        size_t n = 0;
        if (wsq_poll(srv, evs, 16, 100, &n) != WSQ_OK) return false;
        bool found = false;
        for (size_t i = 0; i < n; i++) {
            if (!found && evs[i].event_type == type && (conn == 0 || evs[i].conn == conn)) {
                *out = evs[i];
                found = true;
            } else {
                wsq_events_release(&evs[i], 1);
            }
        }
        if (found) return true;
    }
    return false;
}

static uint64_t wait_open(wsq_server_t *srv)
{
    wsq_event_t ev;
    if (!wait_event(srv, WSQ_EVENT_OPEN, 0, &ev)) return 0;
    uint64_t id = ev.conn;
    wsq_events_release(&ev, 1);
    return id;
}

static bool fd_readable(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, 0) == 1;
}

/* ---- tests -------------------------------------------------------------------------- */

static void lifecycle_port_readback_and_event_fd_level(void)
{
    uint16_t port = 0;
    wsq_server_t *srv = start_default(&port);
    REQUIRE(srv);
    CHECK(port != 0);
    char addr[64];
    CHECK_RC(wsq_server_local_addr(srv, 0, addr, sizeof addr), WSQ_OK);
    CHECK(strncmp(addr, "127.0.0.1:", 10) == 0);
    CHECK_RC(wsq_server_local_addr(srv, 1, addr, sizeof addr), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_server_local_addr(srv, 0, addr, 4), WSQ_ERR_INVALID_ARGUMENT);
    int efd = -1;
    CHECK_RC(wsq_server_event_fd(srv, &efd), WSQ_OK);
    CHECK(efd >= 0 && !fd_readable(efd));
    int c = ws_open(port, "/", NULL);
    CHECK(c >= 0);
    for (int i = 0; i < 200 && !fd_readable(efd); i++) usleep(10000);
    CHECK(fd_readable(efd)); /* the open event waits */
    uint64_t id = wait_open(srv);
    CHECK(id != 0);
    CHECK(!fd_readable(efd)); /* drained */
    /* A second server on the same port fails with an I/O error. */
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    snprintf(addr, sizeof addr, "127.0.0.1:%u", port);
    cfg.listen = addr;
    wsq_server_t *dup = (wsq_server_t *)0x1;
    CHECK_RC(wsq_server_start(&cfg, &dup), WSQ_ERR_IO);
    CHECK(dup == NULL);
    CHECK(strlen(wsq_last_error()) > 0);
    close(c);
    CHECK_RC(wsq_server_stop(srv, 1000), WSQ_OK);
    CHECK_RC(wsq_server_stop(srv, 1000), WSQ_OK); /* idempotent */
    wsq_server_free(srv);
}

static void open_event_carries_path_headers_and_subprotocol_and_messages_echo(void)
{
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    cfg.subprotocols = "v2, v1";
    uint16_t port;
    wsq_server_t *srv = start(&cfg, &port);
    REQUIRE(srv);
    int c = ws_open(port, "/room?id=7", "Sec-WebSocket-Protocol: v1, v2\r\nX-Test: yes\r\n");
    REQUIRE(c >= 0);
    wsq_event_t ev;
    REQUIRE(wait_event(srv, WSQ_EVENT_OPEN, 0, &ev));
    CHECK(strcmp(ev.path, "/room?id=7") == 0);
    CHECK(ev.subprotocol && strcmp(ev.subprotocol, "v2") == 0);
    CHECK(strncmp(ev.remote_addr, "127.0.0.1:", 10) == 0);
    bool saw = false;
    for (size_t i = 0; i < ev.header_count; i++)
        if (strcmp(ev.headers[i].name, "X-Test") == 0 && strcmp(ev.headers[i].value, "yes") == 0)
            saw = true;
    CHECK(saw);
    uint64_t id = ev.conn;
    wsq_events_release(&ev, 1);
    CHECK(ev.internal == NULL && ev.path == NULL); /* release zeroes the event */
    wsq_events_release(&ev, 1);                  /* and a second release is harmless */

    ws_send_frame(c, 1, 1, "héllo", 6);
    REQUIRE(wait_event(srv, WSQ_EVENT_MESSAGE, id, &ev));
    CHECK(ev.message_kind == WSQ_MESSAGE_TEXT && ev.len == 6 && memcmp(ev.data, "héllo", 6) == 0);
    CHECK_RC(wsq_send(srv, id, ev.message_kind, ev.data, ev.len), WSQ_OK);
    wsq_events_release(&ev, 1);
    uint8_t *got; size_t len;
    CHECK(ws_read_frame(c, &got, &len) == 1 && len == 6 && memcmp(got, "héllo", 6) == 0);
    free(got);

    uint8_t bin[70000];
    for (size_t i = 0; i < sizeof bin; i++) bin[i] = (uint8_t)(i * 31);
    ws_send_frame(c, 0, 2, bin, 1000);            /* fragmented binary */
    ws_send_frame(c, 1, 0, bin + 1000, sizeof bin - 1000);
    REQUIRE(wait_event(srv, WSQ_EVENT_MESSAGE, id, &ev));
    CHECK(ev.message_kind == WSQ_MESSAGE_BINARY && ev.len == sizeof bin && memcmp(ev.data, bin, sizeof bin) == 0);
    CHECK_RC(wsq_send(srv, id, WSQ_MESSAGE_BINARY, ev.data, ev.len), WSQ_OK);
    wsq_events_release(&ev, 1);
    CHECK(ws_read_frame(c, &got, &len) == 2 && len == sizeof bin && memcmp(got, bin, len) == 0);
    free(got);
    CHECK_RC(wsq_send(srv, id, WSQ_MESSAGE_BINARY, NULL, 0), WSQ_OK); /* empty message */
    CHECK(ws_read_frame(c, &got, &len) == 2 && len == 0);
    free(got);
    close(c);
    wsq_server_free(srv);
}

static void client_close_gives_a_clean_close_event_with_code_and_reason(void)
{
    uint16_t port;
    wsq_server_t *srv = start_default(&port);
    REQUIRE(srv);
    int c = ws_open(port, "/", NULL);
    uint64_t id = wait_open(srv);
    REQUIRE(c >= 0 && id);
    CHECK_RC(wsq_set_tag(srv, id, 42), WSQ_OK);
    uint64_t tag = 0;
    CHECK_RC(wsq_get_tag(srv, id, &tag), WSQ_OK);
    CHECK(tag == 42);
    uint8_t payload[] = {0x0F, 0xA0, 'b', 'y', 'e'}; /* 4000 "bye" */
    ws_send_frame(c, 1, 8, payload, sizeof payload);
    uint8_t *got; size_t len;
    CHECK(ws_read_frame(c, &got, &len) == 8 && len >= 2 && got[0] == 0x0F && got[1] == 0xA0);
    free(got);
    char b;
    CHECK(recv(c, &b, 1, 0) == 0); /* the server closes TCP (§7.1.1) */
    wsq_event_t ev;
    REQUIRE(wait_event(srv, WSQ_EVENT_CLOSE, id, &ev));
    CHECK(ev.close_code == 4000 && ev.clean && ev.reason_len == 3 && strcmp(ev.reason, "bye") == 0);
    CHECK(ev.tag == 42);
    wsq_events_release(&ev, 1);
    close(c);
    wsq_server_free(srv);
}

static void server_close_reaches_the_client_then_tcp_ends(void)
{
    uint16_t port;
    wsq_server_t *srv = start_default(&port);
    REQUIRE(srv);
    int c = ws_open(port, "/", NULL);
    uint64_t id = wait_open(srv);
    REQUIRE(c >= 0 && id);
    CHECK_RC(wsq_send(srv, id, WSQ_MESSAGE_TEXT, "last", 4), WSQ_OK);
    CHECK_RC(wsq_close(srv, id, 1000, "done", 4), WSQ_OK);
    CHECK_RC(wsq_send(srv, id, WSQ_MESSAGE_TEXT, "late", 4), WSQ_ERR_CLOSED);
    CHECK_RC(wsq_close(srv, id, 1000, NULL, 0), WSQ_ERR_CLOSED);
    uint8_t *got; size_t len;
    CHECK(ws_read_frame(c, &got, &len) == 1 && len == 4); /* queued data goes first */
    free(got);
    CHECK(ws_read_frame(c, &got, &len) == 8 && len == 6 && got[0] == 0x03 && got[1] == 0xE8);
    free(got);
    uint8_t reply[] = {0x03, 0xE8};
    ws_send_frame(c, 1, 8, reply, 2);
    wsq_event_t ev;
    REQUIRE(wait_event(srv, WSQ_EVENT_CLOSE, id, &ev));
    CHECK(ev.close_code == 1000 && ev.clean);
    wsq_events_release(&ev, 1);
    close(c);
    wsq_server_free(srv);
}

static void protocol_errors_close_with_the_rfc_code(void)
{
    uint16_t port;
    wsq_server_t *srv = start_default(&port);
    REQUIRE(srv);
    int c = ws_open(port, "/", NULL);
    uint64_t id = wait_open(srv);
    REQUIRE(c >= 0 && id);
    uint8_t unmasked[] = {0x81, 0x02, 'h', 'i'}; /* §5.1: clients must mask */
    write_all(c, unmasked, sizeof unmasked);
    uint8_t *got; size_t len;
    CHECK(ws_read_frame(c, &got, &len) == 8 && len >= 2 && got[0] == 0x03 && got[1] == 0xEA);
    free(got);
    wsq_event_t ev;
    REQUIRE(wait_event(srv, WSQ_EVENT_CLOSE, id, &ev));
    CHECK(ev.close_code == 1002 && !ev.clean);
    wsq_events_release(&ev, 1);
    close(c);
    wsq_stats_t st;
    CHECK_RC(wsq_stats(srv, &st), WSQ_OK);
    CHECK(st.protocol_errors == 1 && st.handshakes == 1);
    wsq_server_free(srv);
}

static void stale_and_unknown_ids_are_errors_not_crashes(void)
{
    uint16_t port;
    wsq_server_t *srv = start_default(&port);
    REQUIRE(srv);
    int c = ws_open(port, "/", NULL);
    uint64_t id = wait_open(srv);
    REQUIRE(c >= 0 && id);
    close(c);
    wsq_event_t ev;
    REQUIRE(wait_event(srv, WSQ_EVENT_CLOSE, id, &ev));
    CHECK(ev.close_code == 1006 && !ev.clean);
    wsq_events_release(&ev, 1);
    CHECK_RC(wsq_send(srv, id, WSQ_MESSAGE_TEXT, "x", 1), WSQ_ERR_NOT_FOUND);
    CHECK_RC(wsq_close(srv, id, 1000, NULL, 0), WSQ_ERR_NOT_FOUND);
    CHECK_RC(wsq_set_tag(srv, id, 1), WSQ_ERR_NOT_FOUND);
    CHECK_RC(wsq_ping(srv, id, NULL, 0), WSQ_ERR_NOT_FOUND);
    CHECK_RC(wsq_accept(srv, id, NULL, NULL, 0), WSQ_ERR_NOT_FOUND);
    CHECK_RC(wsq_send(srv, 0xFFFFFFFFFFFFull, WSQ_MESSAGE_TEXT, "x", 1), WSQ_ERR_NOT_FOUND);
    /* A new connection gets a new id: ids are never reused. */
    c = ws_open(port, "/", NULL);
    uint64_t id2 = wait_open(srv);
    CHECK(id2 != 0 && id2 != id);
    close(c);
    wsq_server_free(srv);
}

static void null_arguments_return_invalid_argument(void)
{
    uint16_t port;
    wsq_server_t *srv = start_default(&port);
    REQUIRE(srv);
    wsq_event_t evs[2];
    size_t n;
    uint64_t u;
    int fd;
    wsq_stats_t st;
    CHECK_RC(wsq_config_init(NULL), WSQ_ERR_INVALID_ARGUMENT);
    CHECK(strlen(wsq_last_error()) > 0);
    CHECK_RC(wsq_server_start(NULL, NULL), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_server_stop(NULL, 0), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_server_port(NULL, &port), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_server_port(srv, NULL), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_server_local_addr(srv, 0, NULL, 64), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_server_event_fd(NULL, &fd), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_server_event_fd(srv, NULL), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_stats(NULL, &st), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_stats(srv, NULL), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_poll(NULL, evs, 2, 0, &n), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_poll(srv, NULL, 2, 0, &n), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_poll(srv, evs, 0, 0, &n), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_poll(srv, evs, 2, 0, NULL), WSQ_ERR_INVALID_ARGUMENT);
    wsq_events_release(NULL, 5); /* ignored */
    CHECK_RC(wsq_send(NULL, 1, WSQ_MESSAGE_TEXT, "x", 1), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_send(srv, 1, WSQ_MESSAGE_TEXT, NULL, 5), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_ping(srv, 1, NULL, 5), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_close(srv, 1, 1000, NULL, 5), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_broadcast(NULL, WSQ_MESSAGE_TEXT, "x", 1, NULL, 0, NULL), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_broadcast(srv, WSQ_MESSAGE_TEXT, NULL, 1, NULL, 0, NULL), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_set_tag(NULL, 1, 1), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_get_tag(srv, 1, NULL), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_accept(srv, 1, NULL, NULL, 3), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_reject(srv, 1, 403, NULL, 3), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_adopt(NULL, 0, NULL, 0, &u), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_adopt(srv, 3, NULL, 4, &u), WSQ_ERR_INVALID_ARGUMENT);
    wsq_server_free(NULL); /* ignored */
    CHECK(wsq_strerror(WSQ_OK) && strlen(wsq_version()) > 0);
    for (int code = WSQ_OK; code <= WSQ_ERR_PANIC; code++)
        CHECK(strlen(wsq_strerror((wsq_result_t)code)) > 0);
    wsq_server_free(srv);
}

static void freed_handle_returns_bad_handle_everywhere(void)
{
    uint16_t port;
    wsq_server_t *srv = start_default(&port);
    REQUIRE(srv);
    wsq_server_free(srv);
    wsq_server_free(srv); /* double free is harmless */
    wsq_event_t evs[2];
    size_t n;
    uint64_t u;
    int fd;
    wsq_stats_t st;
    char buf[64];
    CHECK_RC(wsq_server_stop(srv, 0), WSQ_ERR_BAD_HANDLE);
    CHECK_RC(wsq_server_port(srv, &port), WSQ_ERR_BAD_HANDLE);
    CHECK_RC(wsq_server_local_addr(srv, 0, buf, sizeof buf), WSQ_ERR_BAD_HANDLE);
    CHECK_RC(wsq_server_event_fd(srv, &fd), WSQ_ERR_BAD_HANDLE);
    CHECK_RC(wsq_stats(srv, &st), WSQ_ERR_BAD_HANDLE);
    CHECK_RC(wsq_poll(srv, evs, 2, 0, &n), WSQ_ERR_BAD_HANDLE);
    CHECK_RC(wsq_send(srv, 1, WSQ_MESSAGE_TEXT, "x", 1), WSQ_ERR_BAD_HANDLE);
    CHECK_RC(wsq_ping(srv, 1, NULL, 0), WSQ_ERR_BAD_HANDLE);
    CHECK_RC(wsq_close(srv, 1, 1000, NULL, 0), WSQ_ERR_BAD_HANDLE);
    CHECK_RC(wsq_broadcast(srv, WSQ_MESSAGE_TEXT, "x", 1, NULL, 0, NULL), WSQ_ERR_BAD_HANDLE);
    CHECK_RC(wsq_set_tag(srv, 1, 1), WSQ_ERR_BAD_HANDLE);
    CHECK_RC(wsq_get_tag(srv, 1, &u), WSQ_ERR_BAD_HANDLE);
    CHECK_RC(wsq_accept(srv, 1, NULL, NULL, 0), WSQ_ERR_BAD_HANDLE);
    CHECK_RC(wsq_reject(srv, 1, 403, NULL, 0), WSQ_ERR_BAD_HANDLE);
    CHECK_RC(wsq_adopt(srv, 0, NULL, 0, &u), WSQ_ERR_BAD_HANDLE);
}

static void invalid_values_are_refused(void)
{
    uint16_t port;
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    cfg.slow_consumer = 7;
    wsq_server_t *srv = NULL;
    CHECK_RC(wsq_server_start(&cfg, &srv), WSQ_ERR_INVALID_ARGUMENT);
    wsq_config_init(&cfg);
    cfg.listen = "not an address";
    CHECK_RC(wsq_server_start(&cfg, &srv), WSQ_ERR_INVALID_ARGUMENT);
    srv = start_default(&port);
    REQUIRE(srv);
    int c = ws_open(port, "/", NULL);
    uint64_t id = wait_open(srv);
    REQUIRE(c >= 0 && id);
    CHECK_RC(wsq_send(srv, id, 99, "x", 1), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_send(srv, id, WSQ_MESSAGE_TEXT, "\xff\xfe", 2), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_close(srv, id, 1005, NULL, 0), WSQ_ERR_INVALID_ARGUMENT);
    char reason[200];
    memset(reason, 'r', sizeof reason);
    CHECK_RC(wsq_close(srv, id, 1000, reason, sizeof reason), WSQ_ERR_INVALID_ARGUMENT);
    uint8_t big[126] = {0};
    CHECK_RC(wsq_ping(srv, id, big, sizeof big), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_reject(srv, id, 200, NULL, 0), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_accept(srv, id, NULL, NULL, 0), WSQ_ERR_INVALID_STATE);
    CHECK_RC(wsq_adopt(srv, -1, NULL, 0, NULL), WSQ_ERR_INVALID_ARGUMENT);
    close(c);
    wsq_server_free(srv);
}

static void manual_accept_with_header_and_reject_with_status(void)
{
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    cfg.manual_accept = true;
    uint16_t port;
    wsq_server_t *srv = start(&cfg, &port);
    REQUIRE(srv);
    /* Accept, with an extra response header. */
    int c = tcp_connect(port);
    REQUIRE(c >= 0);
    char head[4096];
    char req[] = "GET /auth?token=ok HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    write_all(c, req, strlen(req));
    wsq_event_t ev;
    REQUIRE(wait_event(srv, WSQ_EVENT_UPGRADE_REQUEST, 0, &ev));
    uint64_t id = ev.conn;
    CHECK(strcmp(ev.path, "/auth?token=ok") == 0);
    wsq_events_release(&ev, 1);
    CHECK_RC(wsq_send(srv, id, WSQ_MESSAGE_TEXT, "x", 1), WSQ_ERR_INVALID_STATE);
    CHECK_RC(wsq_set_tag(srv, id, 7), WSQ_OK);
    wsq_header_t extra = {"X-User", "alice"};
    CHECK_RC(wsq_accept(srv, id, NULL, &extra, 1), WSQ_OK);
    CHECK(read_http_head(c, head, sizeof head) == 101);
    CHECK(strstr(head, "X-User: alice\r\n") != NULL);
    REQUIRE(wait_event(srv, WSQ_EVENT_OPEN, id, &ev));
    CHECK(ev.tag == 7);
    wsq_events_release(&ev, 1);
    CHECK_RC(wsq_accept(srv, id, NULL, NULL, 0), WSQ_ERR_INVALID_STATE);
    close(c);
    REQUIRE(wait_event(srv, WSQ_EVENT_CLOSE, id, &ev));
    wsq_events_release(&ev, 1);
    /* Reject with a status and body. */
    c = tcp_connect(port);
    write_all(c, req, strlen(req));
    REQUIRE(wait_event(srv, WSQ_EVENT_UPGRADE_REQUEST, 0, &ev));
    id = ev.conn;
    wsq_events_release(&ev, 1);
    CHECK_RC(wsq_reject(srv, id, 403, "go away", 7), WSQ_OK);
    CHECK(read_http_head(c, head, sizeof head) == 403);
    char body[8] = {0};
    CHECK(read_exact(c, body, 7) == 0 && strcmp(body, "go away") == 0);
    REQUIRE(wait_event(srv, WSQ_EVENT_CLOSE, id, &ev)); /* every announced id ends with a close */
    wsq_events_release(&ev, 1);
    close(c);
    wsq_stats_t st;
    wsq_stats(srv, &st);
    CHECK(st.rejected_by_app == 1 && st.connections == 0);
    wsq_server_free(srv);
}

static void full_send_queue_reports_queue_full_then_drain(void)
{
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    cfg.send_queue_limit = 256 * 1024;
    cfg.send_queue_low_water = 64 * 1024;
    uint16_t port;
    wsq_server_t *srv = start(&cfg, &port);
    REQUIRE(srv);
    int c = ws_open(port, "/", NULL);
    uint64_t id = wait_open(srv);
    REQUIRE(c >= 0 && id);
    static uint8_t chunk[64 * 1024];
    int sent = 0;
    wsq_result_t rc = WSQ_OK;
    while (sent < 10000 && (rc = wsq_send(srv, id, WSQ_MESSAGE_BINARY, chunk, sizeof chunk)) == WSQ_OK) sent++;
    CHECK(rc == WSQ_ERR_QUEUE_FULL); /* the client is not reading */
    /* Now read everything; the drain event follows. */
    for (int i = 0; i < sent; i++) {
        uint8_t *got; size_t len;
        if (ws_read_frame(c, &got, &len) != 2 || len != sizeof chunk) { CHECK(!"short read"); break; }
        free(got);
    }
    wsq_event_t ev;
    CHECK(wait_event(srv, WSQ_EVENT_DRAIN, id, &ev));
    wsq_events_release(&ev, 1);
    CHECK_RC(wsq_send(srv, id, WSQ_MESSAGE_BINARY, chunk, sizeof chunk), WSQ_OK);
    wsq_stats_t st;
    wsq_stats(srv, &st);
    CHECK(st.queue_full >= 1);
    close(c);
    wsq_server_free(srv);
}

static void adopted_socket_runs_the_handshake_and_echoes(void)
{
    uint16_t port;
    wsq_server_t *srv = start_default(&port);
    REQUIRE(srv);
    /* Our own acceptor. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(lfd, 4) == 0);
    socklen_t alen = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &alen);
    int c = tcp_connect(ntohs(a.sin_port));
    int s = accept(lfd, NULL, NULL);
    REQUIRE(c >= 0 && s >= 0);
    char req[] = "GET /adopted HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    write_all(c, req, strlen(req));
    char head[512];
    /* Our "other HTTP server" reads the request head, then hands over socket + bytes. */
    int got_len = read_head(s, head, sizeof head);
    REQUIRE(got_len == (int)strlen(req));
    uint64_t id = 0;
    CHECK_RC(wsq_adopt(srv, s, (const uint8_t *)head, (size_t)got_len, &id), WSQ_OK);
    CHECK(id != 0);
    CHECK(read_http_head(c, head, sizeof head) == 101);
    CHECK(strstr(head, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != NULL);
    wsq_event_t ev;
    REQUIRE(wait_event(srv, WSQ_EVENT_OPEN, id, &ev));
    CHECK(strcmp(ev.path, "/adopted") == 0);
    wsq_events_release(&ev, 1);
    ws_send_frame(c, 1, 1, "adopt", 5);
    REQUIRE(wait_event(srv, WSQ_EVENT_MESSAGE, id, &ev));
    CHECK(ev.len == 5 && memcmp(ev.data, "adopt", 5) == 0);
    wsq_events_release(&ev, 1);
    close(c);
    close(lfd);
    wsq_server_free(srv);
}

struct race { wsq_server_t *srv; uint64_t *ids; int n; int bad; };

static void *race_sender(void *arg)
{
    struct race *r = arg;
    for (int round = 0; round < 200; round++)
        for (int i = 0; i < r->n; i++) {
            wsq_result_t rc = wsq_send(r->srv, r->ids[i], WSQ_MESSAGE_BINARY, "0123456789", 10);
            if (rc != WSQ_OK && rc != WSQ_ERR_CLOSED && rc != WSQ_ERR_NOT_FOUND && rc != WSQ_ERR_QUEUE_FULL)
                __atomic_add_fetch(&r->bad, 1, __ATOMIC_RELAXED);
        }
    return NULL;
}

static void *race_closer(void *arg)
{
    struct race *r = arg;
    for (int i = 0; i < r->n; i++) {
        wsq_result_t rc = wsq_close(r->srv, r->ids[i], 1000, "bye", 3);
        if (rc != WSQ_OK && rc != WSQ_ERR_CLOSED && rc != WSQ_ERR_NOT_FOUND)
            __atomic_add_fetch(&r->bad, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void sends_racing_close_from_threads_only_return_defined_codes(void)
{
    uint16_t port;
    wsq_server_t *srv = start_default(&port);
    REQUIRE(srv);
    enum { N = 16 };
    int fds[N];
    uint64_t ids[N];
    for (int i = 0; i < N; i++) {
        fds[i] = ws_open(port, "/", NULL);
        ids[i] = wait_open(srv);
    }
    struct race r = {srv, ids, N, 0};
    pthread_t t[5];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, race_sender, &r);
    pthread_create(&t[4], NULL, race_closer, &r);
    for (int i = 0; i < N; i += 2) close(fds[i]); /* clients vanish meanwhile */
    for (int i = 0; i < 5; i++) pthread_join(t[i], NULL);
    CHECK(r.bad == 0);
    for (int i = 1; i < N; i += 2) close(fds[i]);
    /* Count every close event (several may arrive in one batch). */
    int closes = 0;
    for (int round = 0; round < 100 && closes < N; round++) {
        wsq_event_t evs[64];
        size_t n = 0;
        CHECK_RC(wsq_poll(srv, evs, 64, 100, &n), WSQ_OK);
        for (size_t i = 0; i < n; i++)
            closes += evs[i].event_type == WSQ_EVENT_CLOSE;
        wsq_events_release(evs, n);
    }
    CHECK(closes == N); /* exactly one close event per connection */
    wsq_server_free(srv);
}

static void *stop_sender(void *arg)
{
    struct race *r = arg;
    for (;;) {
        wsq_result_t rc = wsq_send(r->srv, r->ids[0], WSQ_MESSAGE_TEXT, "tick", 4);
        if (rc == WSQ_ERR_STOPPED) return NULL;
        if (rc != WSQ_OK && rc != WSQ_ERR_QUEUE_FULL && rc != WSQ_ERR_CLOSED && rc != WSQ_ERR_NOT_FOUND) {
            __atomic_add_fetch(&r->bad, 1, __ATOMIC_RELAXED);
            return NULL;
        }
    }
}

static void stop_with_traffic_in_flight_reports_everything(void)
{
    uint16_t port;
    wsq_server_t *srv = start_default(&port);
    REQUIRE(srv);
    int c = ws_open(port, "/", NULL); /* never reads: its queue fills */
    uint64_t id = wait_open(srv);
    REQUIRE(c >= 0 && id);
    struct race r = {srv, &id, 1, 0};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, stop_sender, &r);
    usleep(100000);
    CHECK_RC(wsq_server_stop(srv, 300), WSQ_OK);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    CHECK(r.bad == 0);
    CHECK_RC(wsq_send(srv, id, WSQ_MESSAGE_TEXT, "x", 1), WSQ_ERR_STOPPED);
    wsq_event_t ev;
    bool closed = false;
    size_t n = 1;
    while (n > 0) { /* after stop, poll drains what is left and then returns at once */
        wsq_event_t evs[64];
        CHECK_RC(wsq_poll(srv, evs, 64, -1, &n), WSQ_OK);
        for (size_t i = 0; i < n; i++)
            if (evs[i].event_type == WSQ_EVENT_CLOSE && evs[i].conn == id) {
                closed = true;
                ev = evs[i];
                CHECK(ev.close_code == 1001 || ev.close_code == 1006);
            }
        wsq_events_release(evs, n);
    }
    CHECK(closed);
    wsq_stats_t st;
    wsq_stats(srv, &st);
    CHECK(st.connections == 0);
    close(c);
    wsq_server_free(srv);
}

static void broadcast_reaches_all_or_the_listed_connections(void)
{
    uint16_t port;
    wsq_server_t *srv = start_default(&port);
    REQUIRE(srv);
    int fds[3];
    uint64_t ids[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = ws_open(port, "/", NULL);
        ids[i] = wait_open(srv);
    }
    size_t delivered = 0;
    CHECK_RC(wsq_broadcast(srv, WSQ_MESSAGE_TEXT, "all", 3, NULL, 0, &delivered), WSQ_OK);
    CHECK(delivered == 3);
    CHECK_RC(wsq_broadcast(srv, WSQ_MESSAGE_BINARY, "two", 3, ids + 1, 2, &delivered), WSQ_OK);
    CHECK(delivered == 2);
    for (int i = 0; i < 3; i++) {
        uint8_t *got; size_t len;
        CHECK(ws_read_frame(fds[i], &got, &len) == 1 && len == 3 && memcmp(got, "all", 3) == 0);
        free(got);
        if (i > 0) {
            CHECK(ws_read_frame(fds[i], &got, &len) == 2 && memcmp(got, "two", 3) == 0);
            free(got);
        }
        close(fds[i]);
    }
    wsq_server_free(srv);
}

static void ping_pong_events_when_delivery_is_on(void)
{
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    cfg.deliver_ping_pong = true;
    uint16_t port;
    wsq_server_t *srv = start(&cfg, &port);
    REQUIRE(srv);
    int c = ws_open(port, "/", NULL);
    uint64_t id = wait_open(srv);
    REQUIRE(c >= 0 && id);
    ws_send_frame(c, 1, 9, "pi", 2);
    uint8_t *got; size_t len;
    CHECK(ws_read_frame(c, &got, &len) == 10 && len == 2 && memcmp(got, "pi", 2) == 0);
    free(got);
    wsq_event_t ev;
    CHECK(wait_event(srv, WSQ_EVENT_PING, id, &ev) && ev.len == 2);
    wsq_events_release(&ev, 1);
    CHECK_RC(wsq_ping(srv, id, "sv", 2), WSQ_OK);
    CHECK(ws_read_frame(c, &got, &len) == 9 && len == 2);
    ws_send_frame(c, 1, 10, got, len);
    free(got);
    CHECK(wait_event(srv, WSQ_EVENT_PONG, id, &ev) && ev.len == 2 && memcmp(ev.data, "sv", 2) == 0);
    wsq_events_release(&ev, 1);
    close(c);
    wsq_server_free(srv);
}

static void bad_handshakes_get_http_errors(void)
{
    uint16_t port;
    wsq_server_t *srv = start_default(&port);
    REQUIRE(srv);
    char head[4096];
    int c = tcp_connect(port);
    /* A second, conflicting version header is not version 13: 426 (§4.4). */
    CHECK(ws_handshake(c, "/", "Sec-WebSocket-Version: 8\r\n", head, sizeof head) == 426);
    close(c);
    c = tcp_connect(port);
    const char *v8 = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n";
    write_all(c, v8, strlen(v8));
    CHECK(read_http_head(c, head, sizeof head) == 426);
    CHECK(strstr(head, "Sec-WebSocket-Version: 13") != NULL);
    close(c);
    c = tcp_connect(port);
    const char *plain = "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n";
    write_all(c, plain, strlen(plain));
    CHECK(read_http_head(c, head, sizeof head) == 404);
    close(c);
    wsq_stats_t st;
    wsq_stats(srv, &st);
    CHECK(st.rejected_bad_handshake >= 1 && st.http_requests == 1);
    wsq_server_free(srv);
}

int main(void)
{
    const struct test_case tests[] = {
        {"lifecycle_port_readback_and_event_fd_level", lifecycle_port_readback_and_event_fd_level},
        {"open_event_carries_path_headers_and_subprotocol_and_messages_echo", open_event_carries_path_headers_and_subprotocol_and_messages_echo},
        {"client_close_gives_a_clean_close_event_with_code_and_reason", client_close_gives_a_clean_close_event_with_code_and_reason},
        {"server_close_reaches_the_client_then_tcp_ends", server_close_reaches_the_client_then_tcp_ends},
        {"protocol_errors_close_with_the_rfc_code", protocol_errors_close_with_the_rfc_code},
        {"stale_and_unknown_ids_are_errors_not_crashes", stale_and_unknown_ids_are_errors_not_crashes},
        {"null_arguments_return_invalid_argument", null_arguments_return_invalid_argument},
        {"freed_handle_returns_bad_handle_everywhere", freed_handle_returns_bad_handle_everywhere},
        {"invalid_values_are_refused", invalid_values_are_refused},
        {"manual_accept_with_header_and_reject_with_status", manual_accept_with_header_and_reject_with_status},
        {"full_send_queue_reports_queue_full_then_drain", full_send_queue_reports_queue_full_then_drain},
        {"adopted_socket_runs_the_handshake_and_echoes", adopted_socket_runs_the_handshake_and_echoes},
        {"sends_racing_close_from_threads_only_return_defined_codes", sends_racing_close_from_threads_only_return_defined_codes},
        {"stop_with_traffic_in_flight_reports_everything", stop_with_traffic_in_flight_reports_everything},
        {"broadcast_reaches_all_or_the_listed_connections", broadcast_reaches_all_or_the_listed_connections},
        {"ping_pong_events_when_delivery_is_on", ping_pong_events_when_delivery_is_on},
        {"bad_handshakes_get_http_errors", bad_handshakes_get_http_errors},
    };
    return run_tests(tests, sizeof tests / sizeof tests[0]);
}
