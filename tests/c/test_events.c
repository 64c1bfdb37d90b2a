/* Every event type through the C ABI, driven by a real WebSocket client. */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "support.h"
#include "wsclient.h"

static const char *header_value(const wsq_event_t *ev, const char *name)
{
    for (size_t i = 0; i < ev->header_count; i++)
        if (strcmp(ev->headers[i].name, name) == 0) return ev->headers[i].value;
    return NULL;
}

/* Reads one frame and checks it is an unmasked, final data frame with this payload. */
static bool read_message(int fd, int opcode, const void *data, size_t len)
{
    wsc_frame_t f;
    int op = wsc_read_frame(fd, &f);
    if (op < 0) return false;
    bool ok = op == opcode && f.fin && !f.masked && f.len == len && memcmp(f.data, data, len) == 0;
    if (!ok)
        fprintf(stderr, "  got frame opcode %d fin %d masked %d len %zu\n", op, f.fin, f.masked,
                f.len);
    wsc_frame_free(&f);
    return ok;
}

static void open_event_reports_path_query_peer_and_every_header(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    int c = wsc_open(fx.port, "/room/7?user=ann&x=%20", "X-Test: yes\r\nX-Empty:\r\n");
    REQUIRE(c >= 0);
    wsq_event_t ev;
    REQUIRE(fx_wait(&fx, WSQ_EVENT_OPEN, 0, &ev));
    CHECK(ev.conn != 0);
    CHECK(ev.tag == 0);
    CHECK(strcmp(ev.path, "/room/7?user=ann&x=%20") == 0);
    char peer[64];
    wsc_local_addr(c, peer, sizeof peer);
    CHECK(ev.remote_addr && strcmp(ev.remote_addr, peer) == 0);
    CHECK(ev.subprotocol == NULL); /* none configured, none offered */
    /* Every request header, in request order (Host first). */
    CHECK(ev.header_count == 7);
    CHECK(ev.header_count > 0 && strcmp(ev.headers[0].name, "Host") == 0 &&
          strcmp(ev.headers[0].value, "127.0.0.1") == 0);
    const char *v = header_value(&ev, "X-Test");
    CHECK(v && strcmp(v, "yes") == 0);
    v = header_value(&ev, "X-Empty");
    CHECK(v && strcmp(v, "") == 0);
    v = header_value(&ev, "Sec-WebSocket-Key");
    CHECK(v && strcmp(v, WSC_KEY) == 0);
    /* Fields of other event types are empty. */
    CHECK(ev.data == NULL && ev.len == 0 && ev.reason == NULL && ev.message_kind == 0);
    wsq_events_release(&ev, 1);
    CHECK(ev.internal == NULL && ev.path == NULL && ev.headers == NULL); /* zeroed */
    wsq_events_release(&ev, 1); /* a second release is harmless */
    close(c);
    fx_finish(&fx);
}

static void subprotocol_is_the_servers_first_preference_among_those_offered(void)
{
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    cfg.subprotocols = "chat.v2, chat.v1";
    fixture_t fx;
    REQUIRE(fx_start(&fx, &cfg));
    struct {
        const char *offer;  /* request header line, or NULL */
        const char *chosen; /* expected choice, or NULL */
    } cases[] = {
        {"Sec-WebSocket-Protocol: chat.v1, chat.v2\r\n", "chat.v2"},
        {"Sec-WebSocket-Protocol: chat.v1\r\n", "chat.v1"},
        {"Sec-WebSocket-Protocol: other\r\n", NULL},
        {NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int c = wsc_tcp_connect(fx.port);
        REQUIRE(c >= 0);
        char head[4096], proto[64];
        CHECK(wsc_handshake(c, "/", cases[i].offer, head, sizeof head) == 101);
        bool has = wsc_header(head, "Sec-WebSocket-Protocol", proto, sizeof proto);
        wsq_event_t ev;
        REQUIRE(fx_wait(&fx, WSQ_EVENT_OPEN, 0, &ev));
        if (cases[i].chosen) {
            CHECK(has && strcmp(proto, cases[i].chosen) == 0);
            CHECK(ev.subprotocol && strcmp(ev.subprotocol, cases[i].chosen) == 0);
        } else {
            CHECK(!has); /* §4.2.2: no header when none is selected */
            CHECK(ev.subprotocol == NULL);
        }
        if (!(cases[i].chosen ? ev.subprotocol && strcmp(ev.subprotocol, cases[i].chosen) == 0
                              : ev.subprotocol == NULL))
            fprintf(stderr, "  case %zu: offer %s\n", i, cases[i].offer ? cases[i].offer : "none");
        wsq_events_release(&ev, 1);
        close(c);
    }
    fx_finish(&fx);
}

static void text_and_binary_messages_arrive_whole_and_echo(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    client_t c;
    REQUIRE(fx_connect(&fx, "/", NULL, &c));
    wsq_event_t ev;

    /* Text with multi-byte UTF-8, echoed back. */
    CHECK(wsc_send_frame(c.fd, true, WSC_TEXT, "h\xc3\xa9llo \xe2\x82\xac", 10) == 0);
    REQUIRE(fx_wait(&fx, WSQ_EVENT_MESSAGE, c.id, &ev));
    CHECK(ev.message_kind == WSQ_MESSAGE_TEXT && ev.len == 10 &&
          memcmp(ev.data, "h\xc3\xa9llo \xe2\x82\xac", 10) == 0);
    CHECK(ev.path == NULL && ev.header_count == 0);
    CHECK_RC(wsq_send(fx.srv, c.id, ev.message_kind, ev.data, ev.len), WSQ_OK);
    wsq_events_release(&ev, 1);
    CHECK(read_message(c.fd, WSC_TEXT, "h\xc3\xa9llo \xe2\x82\xac", 10));

    /* Binary in three fragments, with a ping between them (§5.4: control frames may
     * be interleaved), reassembled into one 70000-byte message (64-bit length). */
    static uint8_t bin[70000];
    for (size_t i = 0; i < sizeof bin; i++) bin[i] = (uint8_t)(i * 31 + 7);
    CHECK(wsc_send_frame(c.fd, false, WSC_BINARY, bin, 1000) == 0);
    CHECK(wsc_send_frame(c.fd, true, WSC_PING, "mid", 3) == 0);
    CHECK(wsc_send_frame(c.fd, false, WSC_CONT, bin + 1000, 30000) == 0);
    CHECK(wsc_send_frame(c.fd, true, WSC_CONT, bin + 31000, sizeof bin - 31000) == 0);
    CHECK(read_message(c.fd, WSC_PONG, "mid", 3));
    REQUIRE(fx_wait(&fx, WSQ_EVENT_MESSAGE, c.id, &ev));
    CHECK(ev.message_kind == WSQ_MESSAGE_BINARY && ev.len == sizeof bin &&
          memcmp(ev.data, bin, sizeof bin) == 0);
    CHECK_RC(wsq_send(fx.srv, c.id, WSQ_MESSAGE_BINARY, ev.data, ev.len), WSQ_OK);
    wsq_events_release(&ev, 1);
    CHECK(read_message(c.fd, WSC_BINARY, bin, sizeof bin));

    /* Empty messages both ways; a 126-byte one takes the 16-bit length form. */
    CHECK(wsc_send_frame(c.fd, true, WSC_BINARY, "", 0) == 0);
    REQUIRE(fx_wait(&fx, WSQ_EVENT_MESSAGE, c.id, &ev));
    CHECK(ev.message_kind == WSQ_MESSAGE_BINARY && ev.len == 0);
    wsq_events_release(&ev, 1);
    CHECK_RC(wsq_send(fx.srv, c.id, WSQ_MESSAGE_TEXT, NULL, 0), WSQ_OK);
    CHECK(read_message(c.fd, WSC_TEXT, "", 0));
    CHECK_RC(wsq_send(fx.srv, c.id, WSQ_MESSAGE_BINARY, bin, 126), WSQ_OK);
    CHECK(read_message(c.fd, WSC_BINARY, bin, 126));

    /* Sends to one connection go out in call order. */
    char msg[16];
    for (int i = 0; i < 100; i++) {
        snprintf(msg, sizeof msg, "n%d", i);
        CHECK_RC(wsq_send(fx.srv, c.id, WSQ_MESSAGE_TEXT, msg, strlen(msg)), WSQ_OK);
    }
    for (int i = 0; i < 100; i++) {
        snprintf(msg, sizeof msg, "n%d", i);
        if (!read_message(c.fd, WSC_TEXT, msg, strlen(msg))) {
            CHECK(!"messages out of order");
            break;
        }
    }
    CHECK(fx_count(&fx, WSQ_EVENT_PING, 0) == 0); /* not delivered unless configured */
    wsq_stats_t st;
    CHECK_RC(wsq_stats(fx.srv, &st), WSQ_OK);
    CHECK(st.messages_in == 3 && st.handshakes == 1 && st.connections == 1);
    close(c.fd);
    fx_finish(&fx);
}

static void client_close_gives_a_clean_close_event_with_code_and_reason(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    client_t c;
    REQUIRE(fx_connect(&fx, "/", NULL, &c));
    CHECK_RC(wsq_set_tag(fx.srv, c.id, 42), WSQ_OK);
    uint64_t tag = 0;
    CHECK_RC(wsq_get_tag(fx.srv, c.id, &tag), WSQ_OK);
    CHECK(tag == 42);
    CHECK(wsc_send_close(c.fd, 4000, "bye \xe2\x9c\x93") == 0);
    /* §5.5.1: the server echoes the status code, then closes TCP first (§7.1.1). */
    wsc_frame_t f;
    int op = wsc_read_frame(c.fd, &f);
    CHECK(op == WSC_CLOSE && !f.masked && wsc_close_code(&f) == 4000);
    if (op >= 0) wsc_frame_free(&f);
    CHECK(wsc_wait_eof(c.fd));
    close(c.fd); /* as a client does once the server has closed */
    wsq_event_t ev;
    REQUIRE(fx_wait(&fx, WSQ_EVENT_CLOSE, c.id, &ev));
    CHECK(ev.close_code == 4000 && ev.clean);
    CHECK(ev.reason_len == 7 && ev.reason && strcmp(ev.reason, "bye \xe2\x9c\x93") == 0);
    CHECK(ev.tag == 42);
    CHECK(ev.unsent_messages == 0);
    wsq_events_release(&ev, 1);
    /* An empty close frame is reported as 1005 "no status received" (§7.1.5). */
    REQUIRE(fx_connect(&fx, "/", NULL, &c));
    CHECK(wsc_send_close(c.fd, 0, NULL) == 0);
    op = wsc_read_frame(c.fd, &f);
    CHECK(op == WSC_CLOSE && f.len == 0); /* nothing to echo */
    if (op >= 0) wsc_frame_free(&f);
    CHECK(wsc_wait_eof(c.fd));
    close(c.fd);
    REQUIRE(fx_wait(&fx, WSQ_EVENT_CLOSE, c.id, &ev));
    CHECK(ev.close_code == 1005 && ev.clean && ev.reason_len == 0 && ev.reason &&
          ev.reason[0] == 0);
    wsq_events_release(&ev, 1);
    /* Exactly one close event per connection, and nothing after it. */
    fx_pump(&fx, 100);
    CHECK(fx.npending == 0);
    fx_finish(&fx);
}

static void server_close_sends_queued_messages_first_then_the_close_frame(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    client_t c;
    REQUIRE(fx_connect(&fx, "/", NULL, &c));
    CHECK_RC(wsq_send(fx.srv, c.id, WSQ_MESSAGE_TEXT, "last", 4), WSQ_OK);
    CHECK_RC(wsq_close(fx.srv, c.id, 4001, "done", 4), WSQ_OK);
    /* Once our close is sent, nothing else may be (§5.5.1). */
    CHECK_FAILS(wsq_send(fx.srv, c.id, WSQ_MESSAGE_TEXT, "late", 4), WSQ_ERR_CLOSED);
    CHECK_FAILS(wsq_ping(fx.srv, c.id, NULL, 0), WSQ_ERR_CLOSED);
    CHECK_FAILS(wsq_close(fx.srv, c.id, 1000, NULL, 0), WSQ_ERR_CLOSED);
    CHECK(read_message(c.fd, WSC_TEXT, "last", 4));
    wsc_frame_t f;
    int op = wsc_read_frame(c.fd, &f);
    CHECK(op == WSC_CLOSE && !f.masked && f.len == 6 && wsc_close_code(&f) == 4001 &&
          memcmp(f.data + 2, "done", 4) == 0);
    if (op >= 0) wsc_frame_free(&f);
    CHECK(wsc_send_close(c.fd, 4001, "") == 0);
    CHECK(wsc_wait_eof(c.fd));
    close(c.fd);
    wsq_event_t ev;
    REQUIRE(fx_wait(&fx, WSQ_EVENT_CLOSE, c.id, &ev));
    CHECK(ev.close_code == 4001 && ev.clean && ev.unsent_messages == 0);
    wsq_events_release(&ev, 1);
    fx_finish(&fx);
}

static void server_close_unanswered_ends_after_close_timeout_as_not_clean(void)
{
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    cfg.close_timeout_ms = 200;
    fixture_t fx;
    REQUIRE(fx_start(&fx, &cfg));
    client_t c;
    REQUIRE(fx_connect(&fx, "/", NULL, &c));
    CHECK_RC(wsq_close(fx.srv, c.id, 1000, NULL, 0), WSQ_OK);
    wsq_event_t ev;
    REQUIRE(fx_wait(&fx, WSQ_EVENT_CLOSE, c.id, &ev)); /* the client never answers */
    CHECK(!ev.clean);
    wsq_events_release(&ev, 1);
    wsc_frame_t f;
    int op = wsc_read_frame(c.fd, &f);
    CHECK(op == WSC_CLOSE && wsc_close_code(&f) == 1000);
    if (op >= 0) wsc_frame_free(&f);
    CHECK(wsc_wait_eof(c.fd));
    close(c.fd);
    fx_finish(&fx);
}

static void client_vanishing_gives_close_1006_not_clean(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    client_t c;
    REQUIRE(fx_connect(&fx, "/", NULL, &c));
    close(c.fd);
    wsq_event_t ev;
    REQUIRE(fx_wait(&fx, WSQ_EVENT_CLOSE, c.id, &ev));
    CHECK(ev.close_code == 1006 && !ev.clean);
    /* The reason may carry a diagnostic; it is a proper string either way. */
    CHECK(ev.reason && strlen(ev.reason) == ev.reason_len);
    wsq_events_release(&ev, 1);
    fx_finish(&fx);
}

static void protocol_violations_close_with_the_rfc_code(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    struct {
        const char *what;
        uint8_t bytes[8];
        size_t len;
        uint16_t code;
    } cases[] = {
        {"unmasked frame (§5.1)", {0x81, 0x02, 'h', 'i'}, 4, 1002},
        {"reserved opcode 3 (§5.2)", {0x83, 0x80, 0, 0, 0, 0}, 6, 1002},
        {"RSV1 without an extension (§5.2)", {0xC1, 0x80, 0, 0, 0, 0}, 6, 1002},
        {"invalid UTF-8 text (§8.1)", {0x81, 0x81, 0, 0, 0, 0, 0xFF}, 7, 1007},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        client_t c;
        REQUIRE(fx_connect(&fx, "/", NULL, &c));
        CHECK(wsc_write_all(c.fd, cases[i].bytes, cases[i].len) == 0);
        wsc_frame_t f;
        int op = wsc_read_frame(c.fd, &f);
        uint16_t sent = op == WSC_CLOSE ? wsc_close_code(&f) : 0;
        if (op >= 0) wsc_frame_free(&f);
        CHECK(wsc_wait_eof(c.fd)); /* §7.1.7: then the server closes the connection */
        close(c.fd);
        wsq_event_t ev;
        REQUIRE(fx_wait(&fx, WSQ_EVENT_CLOSE, c.id, &ev));
        if (sent != cases[i].code || ev.close_code != cases[i].code || ev.clean) {
            fprintf(stderr, "  %s: client got close %u, event code %u clean %d\n", cases[i].what,
                    sent, ev.close_code, ev.clean);
            CHECK(!"wrong close for a protocol violation");
        }
        wsq_events_release(&ev, 1);
    }
    CHECK(fx_count(&fx, WSQ_EVENT_MESSAGE, 0) == 0); /* no bad message was delivered */
    wsq_stats_t st;
    CHECK_RC(wsq_stats(fx.srv, &st), WSQ_OK);
    CHECK(st.protocol_errors == 4);
    fx_finish(&fx);
}

static void send_queue_at_its_hard_limit_reports_queue_full_then_drain_when_read(void)
{
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    cfg.send_queue_soft_limit = 64 * 1024;
    cfg.send_queue_hard_limit = 128 * 1024;
    cfg.send_queue_low_water = 16 * 1024;
    fixture_t fx;
    REQUIRE(fx_start(&fx, &cfg));
    client_t c;
    REQUIRE(fx_connect(&fx, "/", NULL, &c));
    static uint8_t chunk[32 * 1024];
    int sent = 0;
    wsq_result_t rc = WSQ_OK;
    /* The client does not read: the kernel buffers fill, then the send queue, which
     * accepts (reporting backpressure past the soft limit) up to the hard limit. */
    while (sent < 100000 &&
           ((rc = wsq_send(fx.srv, c.id, WSQ_MESSAGE_BINARY, chunk, sizeof chunk)) == WSQ_OK ||
            rc == WSQ_BACKPRESSURE))
        sent++;
    CHECK(rc == WSQ_ERR_QUEUE_FULL);
    CHECK(strlen(wsq_last_error()) > 0);
    wsq_stats_t st;
    CHECK_RC(wsq_stats(fx.srv, &st), WSQ_OK);
    CHECK(st.queue_full >= 1 && st.send_queue_bytes > 0);
    CHECK(st.send_queue_bytes <= cfg.send_queue_hard_limit);
    /* The refusal came at the hard limit, not at the soft one: the next chunk would
     * have taken the queue over it. */
    CHECK(st.send_queue_bytes + sizeof chunk + 4 /* frame header */ > cfg.send_queue_hard_limit);
    CHECK(st.send_queue_bytes > cfg.send_queue_soft_limit);
    CHECK(st.budget_refusals == 0 && st.backpressure_reports >= 1);
    /* Still full when asked again; broadcast skips the full connection. */
    CHECK_RC(wsq_send(fx.srv, c.id, WSQ_MESSAGE_BINARY, chunk, sizeof chunk), WSQ_ERR_QUEUE_FULL);
    wsq_stats_t again;
    CHECK_RC(wsq_stats(fx.srv, &again), WSQ_OK);
    CHECK(again.queue_full == st.queue_full + 1 && again.budget_refusals == 0);
    size_t delivered = 99;
    CHECK_RC(wsq_broadcast(fx.srv, WSQ_MESSAGE_BINARY, chunk, sizeof chunk, &c.id, 1, &delivered),
             WSQ_OK);
    CHECK(delivered == 0);
    CHECK(fx_count(&fx, WSQ_EVENT_DRAIN, c.id) == 0);
    /* Read everything; the drain event follows, and sends succeed again. */
    for (int i = 0; i < sent; i++) {
        if (!read_message(c.fd, WSC_BINARY, chunk, sizeof chunk)) {
            CHECK(!"lost or corrupted message while draining");
            break;
        }
    }
    wsq_event_t ev;
    CHECK(fx_wait(&fx, WSQ_EVENT_DRAIN, c.id, &ev));
    CHECK(ev.data == NULL && ev.len == 0);
    wsq_events_release(&ev, 1);
    CHECK_RC(wsq_send(fx.srv, c.id, WSQ_MESSAGE_BINARY, chunk, sizeof chunk), WSQ_OK);
    CHECK(read_message(c.fd, WSC_BINARY, chunk, sizeof chunk));
    fx_pump(&fx, 50);
    CHECK(fx_count(&fx, WSQ_EVENT_DRAIN, 0) == 0); /* one drain per refusal episode */
    close(c.fd);
    fx_finish(&fx);
}

static void slow_consumer_close_policy_closes_with_1008(void)
{
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    cfg.send_queue_soft_limit = 32 * 1024;
    cfg.send_queue_hard_limit = 64 * 1024;
    cfg.send_queue_low_water = 16 * 1024;
    cfg.slow_consumer = WSQ_SLOW_CONSUMER_CLOSE;
    fixture_t fx;
    REQUIRE(fx_start(&fx, &cfg));
    client_t c;
    REQUIRE(fx_connect(&fx, "/", NULL, &c));
    static uint8_t chunk[16 * 1024];
    wsq_result_t rc = WSQ_OK;
    int over_soft = 0;
    for (int i = 0; i < 100000 && (rc == WSQ_OK || rc == WSQ_BACKPRESSURE); i++) {
        rc = wsq_send(fx.srv, c.id, WSQ_MESSAGE_BINARY, chunk, sizeof chunk);
        over_soft += rc == WSQ_BACKPRESSURE;
    }
    CHECK(rc == WSQ_ERR_QUEUE_FULL);
    /* Over the soft limit a send is only reported, never a reason to close. */
    CHECK(over_soft >= 1);
    wsq_event_t ev;
    REQUIRE(fx_wait(&fx, WSQ_EVENT_CLOSE, c.id, &ev));
    CHECK(ev.close_code == 1008 && !ev.clean);
    wsq_events_release(&ev, 1);
    CHECK(fx_count(&fx, WSQ_EVENT_DRAIN, 0) == 0);
    wsq_stats_t st;
    CHECK_RC(wsq_stats(fx.srv, &st), WSQ_OK);
    CHECK(st.slow_consumer_closes == 1);
    close(c.fd);
    fx_finish(&fx);
}

static const char upgrade_path[] = "/auth?token=ok";

static void manual_accept_adds_headers_and_tags_before_open(void)
{
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    cfg.manual_accept = true;
    cfg.subprotocols = "b, a";
    fixture_t fx;
    REQUIRE(fx_start(&fx, &cfg));
    int c = wsc_tcp_connect(fx.port);
    REQUIRE(c >= 0);
    char req[1024];
    size_t n = wsc_format_upgrade(req, sizeof req, upgrade_path,
                                  "Sec-WebSocket-Protocol: a, b\r\nCookie: s=1\r\n");
    CHECK(wsc_write_all(c, req, n) == 0);
    wsq_event_t ev;
    REQUIRE(fx_wait(&fx, WSQ_EVENT_UPGRADE_REQUEST, 0, &ev));
    uint64_t id = ev.conn;
    CHECK(strcmp(ev.path, upgrade_path) == 0);
    CHECK(ev.subprotocol && strcmp(ev.subprotocol, "b") == 0); /* the would-be choice */
    const char *cookie = header_value(&ev, "Cookie");
    CHECK(cookie && strcmp(cookie, "s=1") == 0);
    wsq_events_release(&ev, 1);
    CHECK(!fd_wait_readable(c, 100)); /* nothing is answered before the app decides */
    /* Not open yet: sending or closing is a state error; tagging is fine. */
    CHECK_FAILS(wsq_send(fx.srv, id, WSQ_MESSAGE_TEXT, "x", 1), WSQ_ERR_INVALID_STATE);
    CHECK_FAILS(wsq_close(fx.srv, id, 1000, NULL, 0), WSQ_ERR_INVALID_STATE);
    CHECK_RC(wsq_set_tag(fx.srv, id, 7), WSQ_OK);
    CHECK_FAILS(wsq_accept(fx.srv, id, "zzz", NULL, 0), WSQ_ERR_INVALID_ARGUMENT); /* not offered */
    wsq_header_t extra[] = {
        {"X-User", "alice"},
        {"Set-Cookie", "sid=abc; HttpOnly"},
        {"Bad Name", "dropped"},      /* not a token */
        {"X-Evil", "a\r\nInjected: 1"}, /* control characters */
        {"Upgrade", "h2c"},           /* the handshake writes it itself */
    };
    CHECK_RC(wsq_accept(fx.srv, id, "a", extra, sizeof extra / sizeof extra[0]), WSQ_OK);
    char head[4096], value[128];
    CHECK(wsc_read_response(c, head, sizeof head) == 101);
    CHECK(wsc_header(head, "X-User", value, sizeof value) && strcmp(value, "alice") == 0);
    CHECK(wsc_header(head, "Set-Cookie", value, sizeof value) &&
          strcmp(value, "sid=abc; HttpOnly") == 0);
    CHECK(wsc_header(head, "Sec-WebSocket-Protocol", value, sizeof value) &&
          strcmp(value, "a") == 0);
    CHECK(wsc_header(head, "Sec-WebSocket-Accept", value, sizeof value) &&
          strcmp(value, WSC_ACCEPT) == 0);
    CHECK(wsc_header(head, "Upgrade", value, sizeof value) && strcmp(value, "websocket") == 0);
    CHECK(!wsc_header(head, "Injected", value, sizeof value));
    CHECK(!wsc_header(head, "X-Evil", value, sizeof value));
    CHECK(strstr(head, "Bad Name") == NULL);
    REQUIRE(fx_wait(&fx, WSQ_EVENT_OPEN, id, &ev));
    CHECK(ev.tag == 7);
    CHECK(ev.subprotocol && strcmp(ev.subprotocol, "a") == 0); /* the one accepted */
    if (!ev.subprotocol || strcmp(ev.subprotocol, "a") != 0)
        fprintf(stderr, "  open event subprotocol: %s\n", ev.subprotocol ? ev.subprotocol : "NULL");
    CHECK(strcmp(ev.path, upgrade_path) == 0);
    wsq_events_release(&ev, 1);
    CHECK_FAILS(wsq_accept(fx.srv, id, NULL, NULL, 0), WSQ_ERR_INVALID_STATE);
    CHECK_FAILS(wsq_reject(fx.srv, id, 403, NULL, 0), WSQ_ERR_INVALID_STATE);
    /* The connection works. */
    CHECK(wsc_send_frame(c, true, WSC_TEXT, "hi", 2) == 0);
    REQUIRE(fx_wait(&fx, WSQ_EVENT_MESSAGE, id, &ev));
    CHECK(ev.tag == 7 && ev.len == 2);
    wsq_events_release(&ev, 1);
    close(c);
    REQUIRE(fx_wait(&fx, WSQ_EVENT_CLOSE, id, &ev));
    wsq_events_release(&ev, 1);
    fx_finish(&fx);
}

static void manual_reject_sends_the_status_and_body_then_a_close_event(void)
{
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    cfg.manual_accept = true;
    fixture_t fx;
    REQUIRE(fx_start(&fx, &cfg));
    int c = wsc_tcp_connect(fx.port);
    REQUIRE(c >= 0);
    char req[1024];
    size_t n = wsc_format_upgrade(req, sizeof req, upgrade_path, NULL);
    CHECK(wsc_write_all(c, req, n) == 0);
    wsq_event_t ev;
    REQUIRE(fx_wait(&fx, WSQ_EVENT_UPGRADE_REQUEST, 0, &ev));
    uint64_t id = ev.conn;
    wsq_events_release(&ev, 1);
    CHECK_FAILS(wsq_reject(fx.srv, id, 200, NULL, 0), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_reject(fx.srv, id, 600, NULL, 0), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_reject(fx.srv, id, 403, "\xff", 1), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_reject(fx.srv, id, 403, "go away", 7), WSQ_OK);
    char head[4096], value[32];
    CHECK(wsc_read_response(c, head, sizeof head) == 403);
    CHECK(wsc_header(head, "Content-Length", value, sizeof value) && strcmp(value, "7") == 0);
    char body[8] = {0};
    CHECK(wsc_read_exact(c, body, 7) == 0 && strcmp(body, "go away") == 0);
    CHECK(wsc_wait_eof(c));
    close(c);
    /* Every announced id ends with exactly one close event, and no open. */
    REQUIRE(fx_wait(&fx, WSQ_EVENT_CLOSE, id, &ev));
    CHECK(!ev.clean);
    wsq_events_release(&ev, 1);
    fx_pump(&fx, 50);
    CHECK(fx.npending == 0);
    CHECK_FAILS(wsq_accept(fx.srv, id, NULL, NULL, 0), WSQ_ERR_NOT_FOUND);
    wsq_stats_t st;
    CHECK_RC(wsq_stats(fx.srv, &st), WSQ_OK);
    CHECK(st.rejected_by_app == 1 && st.connections == 0 && st.handshakes == 0);
    fx_finish(&fx);
}

static void ping_and_pong_events_when_delivery_is_on(void)
{
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    cfg.deliver_ping_pong = true;
    fixture_t fx;
    REQUIRE(fx_start(&fx, &cfg));
    client_t c;
    REQUIRE(fx_connect(&fx, "/", NULL, &c));
    /* A client ping is answered by the library and also reported. */
    CHECK(wsc_send_frame(c.fd, true, WSC_PING, "pi\x00ng", 5) == 0);
    CHECK(read_message(c.fd, WSC_PONG, "pi\x00ng", 5));
    wsq_event_t ev;
    REQUIRE(fx_wait(&fx, WSQ_EVENT_PING, c.id, &ev));
    CHECK(ev.len == 5 && memcmp(ev.data, "pi\x00ng", 5) == 0 && ev.message_kind == 0);
    wsq_events_release(&ev, 1);
    /* Our ping reaches the client; its pong is reported. */
    CHECK_RC(wsq_ping(fx.srv, c.id, "sv", 2), WSQ_OK);
    wsc_frame_t f;
    int op = wsc_read_frame(c.fd, &f);
    CHECK(op == WSC_PING && f.len == 2 && memcmp(f.data, "sv", 2) == 0);
    if (op >= 0) {
        CHECK(wsc_send_frame(c.fd, true, WSC_PONG, f.data, f.len) == 0);
        wsc_frame_free(&f);
    }
    REQUIRE(fx_wait(&fx, WSQ_EVENT_PONG, c.id, &ev));
    CHECK(ev.len == 2 && memcmp(ev.data, "sv", 2) == 0);
    wsq_events_release(&ev, 1);
    /* An empty ping and an unsolicited pong (§5.5.3) are reported too. */
    CHECK_RC(wsq_ping(fx.srv, c.id, NULL, 0), WSQ_OK);
    op = wsc_read_frame(c.fd, &f);
    CHECK(op == WSC_PING && f.len == 0);
    if (op >= 0) wsc_frame_free(&f);
    CHECK(wsc_send_frame(c.fd, true, WSC_PONG, "u", 1) == 0);
    REQUIRE(fx_wait(&fx, WSQ_EVENT_PONG, c.id, &ev));
    CHECK(ev.len == 1 && ev.data[0] == 'u');
    wsq_events_release(&ev, 1);
    char max[125];
    memset(max, 'p', sizeof max);
    CHECK_RC(wsq_ping(fx.srv, c.id, max, sizeof max), WSQ_OK);
    CHECK(read_message(c.fd, WSC_PING, max, sizeof max));
    close(c.fd);
    fx_finish(&fx);
}

static void pings_are_answered_but_not_reported_by_default(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    client_t c;
    REQUIRE(fx_connect(&fx, "/", NULL, &c));
    CHECK(wsc_send_frame(c.fd, true, WSC_PING, "p", 1) == 0);
    CHECK(read_message(c.fd, WSC_PONG, "p", 1));
    CHECK(wsc_send_frame(c.fd, true, WSC_PONG, "q", 1) == 0);
    CHECK(wsc_send_frame(c.fd, true, WSC_TEXT, "after", 5) == 0);
    wsq_event_t ev;
    REQUIRE(fx_wait(&fx, WSQ_EVENT_MESSAGE, c.id, &ev)); /* everything before it is in */
    wsq_events_release(&ev, 1);
    CHECK(fx_count(&fx, WSQ_EVENT_PING, 0) == 0 && fx_count(&fx, WSQ_EVENT_PONG, 0) == 0);
    close(c.fd);
    fx_finish(&fx);
}

static void broadcast_reaches_all_or_only_the_listed_open_connections(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    enum { N = 4 };
    client_t c[N];
    for (int i = 0; i < N; i++) REQUIRE(fx_connect(&fx, "/", NULL, &c[i]));
    size_t delivered = 0;
    CHECK_RC(wsq_broadcast(fx.srv, WSQ_MESSAGE_TEXT, "all", 3, NULL, 0, &delivered), WSQ_OK);
    CHECK(delivered == N);
    /* A list: two open ids, one closing, and one never issued. */
    CHECK_RC(wsq_close(fx.srv, c[3].id, 1000, NULL, 0), WSQ_OK);
    uint64_t list[] = {c[1].id, c[2].id, c[3].id, UINT64_MAX - 1};
    CHECK_RC(wsq_broadcast(fx.srv, WSQ_MESSAGE_BINARY, "some", 4, list, 4, &delivered), WSQ_OK);
    CHECK(delivered == 2);
    CHECK_RC(wsq_broadcast(fx.srv, WSQ_MESSAGE_BINARY, "none", 4, list, 0, &delivered), WSQ_OK);
    CHECK(delivered == 0); /* an empty list is not "everyone" */
    CHECK_RC(wsq_broadcast(fx.srv, WSQ_MESSAGE_TEXT, "nul", 3, NULL, 0, NULL), WSQ_OK);
    for (int i = 0; i < N; i++) {
        CHECK(read_message(c[i].fd, WSC_TEXT, "all", 3));
        if (i == 1 || i == 2) CHECK(read_message(c[i].fd, WSC_BINARY, "some", 4));
        if (i < 3) CHECK(read_message(c[i].fd, WSC_TEXT, "nul", 3));
    }
    wsc_frame_t f;
    int op = wsc_read_frame(c[3].fd, &f); /* the closing one got nothing after close */
    CHECK(op == WSC_CLOSE);
    if (op >= 0) wsc_frame_free(&f);
    for (int i = 0; i < N; i++) close(c[i].fd);
    fx_finish(&fx);
}

static void tag_is_reported_on_events_queued_after_it_is_set(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    client_t c;
    REQUIRE(fx_connect(&fx, "/", NULL, &c));
    uint64_t tag = 99;
    CHECK_RC(wsq_get_tag(fx.srv, c.id, &tag), WSQ_OK);
    CHECK(tag == 0);
    CHECK_RC(wsq_set_tag(fx.srv, c.id, UINT64_MAX), WSQ_OK);
    CHECK(wsc_send_frame(c.fd, true, WSC_TEXT, "a", 1) == 0);
    wsq_event_t ev;
    REQUIRE(fx_wait(&fx, WSQ_EVENT_MESSAGE, c.id, &ev));
    CHECK(ev.tag == UINT64_MAX);
    wsq_events_release(&ev, 1);
    CHECK_RC(wsq_set_tag(fx.srv, c.id, 5), WSQ_OK);
    close(c.fd);
    REQUIRE(fx_wait(&fx, WSQ_EVENT_CLOSE, c.id, &ev));
    CHECK(ev.tag == 5);
    wsq_events_release(&ev, 1);
    fx_finish(&fx);
}

static void bad_handshakes_get_http_errors_and_no_events(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    char head[4096], value[64];
    int c = wsc_tcp_connect(fx.port);
    REQUIRE(c >= 0);
    const char *v8 = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: " WSC_KEY "\r\nSec-WebSocket-Version: 8\r\n\r\n";
    CHECK(wsc_write_all(c, v8, strlen(v8)) == 0);
    CHECK(wsc_read_response(c, head, sizeof head) == 426); /* §4.4 */
    CHECK(wsc_header(head, "Sec-WebSocket-Version", value, sizeof value) &&
          strcmp(value, "13") == 0);
    close(c);
    c = wsc_tcp_connect(fx.port);
    const char *nokey = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n";
    CHECK(wsc_write_all(c, nokey, strlen(nokey)) == 0);
    CHECK(wsc_read_response(c, head, sizeof head) == 400);
    close(c);
    c = wsc_tcp_connect(fx.port);
    const char *plain = "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK(wsc_write_all(c, plain, strlen(plain)) == 0);
    CHECK(wsc_read_response(c, head, sizeof head) == 404); /* no static_dir */
    close(c);
    fx_pump(&fx, 100);
    CHECK(fx.npending == 0); /* refused upgrades never surface as events */
    wsq_stats_t st;
    CHECK_RC(wsq_stats(fx.srv, &st), WSQ_OK);
    CHECK(st.rejected_bad_handshake == 2 && st.http_requests == 1 && st.handshakes == 0);
    fx_finish(&fx);
}

TEST_MAIN(
    TEST(open_event_reports_path_query_peer_and_every_header),
    TEST(subprotocol_is_the_servers_first_preference_among_those_offered),
    TEST(text_and_binary_messages_arrive_whole_and_echo),
    TEST(client_close_gives_a_clean_close_event_with_code_and_reason),
    TEST(server_close_sends_queued_messages_first_then_the_close_frame),
    TEST(server_close_unanswered_ends_after_close_timeout_as_not_clean),
    TEST(client_vanishing_gives_close_1006_not_clean),
    TEST(protocol_violations_close_with_the_rfc_code),
    TEST(send_queue_at_its_hard_limit_reports_queue_full_then_drain_when_read),
    TEST(slow_consumer_close_policy_closes_with_1008),
    TEST(manual_accept_adds_headers_and_tags_before_open),
    TEST(manual_reject_sends_the_status_and_body_then_a_close_event),
    TEST(ping_and_pong_events_when_delivery_is_on),
    TEST(pings_are_answered_but_not_reported_by_default),
    TEST(broadcast_reaches_all_or_only_the_listed_open_connections),
    TEST(tag_is_reported_on_events_queued_after_it_is_set),
    TEST(bad_handshakes_get_http_errors_and_no_events),
)
