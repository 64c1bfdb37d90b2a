/* Misuse of the C ABI: NULL and invalid arguments, freed handles, stale ids. Every
 * misuse must give its documented error code (and a detail message), never a crash. */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "support.h"
#include "wsclient.h"

/* run.sh checks that this test names every function the header declares. */
static void null_arguments_to_every_function_return_invalid_argument(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    client_t c;
    REQUIRE(fx_connect(&fx, "/", NULL, &c));
    wsq_server_t *srv = fx.srv;
    uint64_t id = c.id, u = 0;
    wsq_event_t evs[2];
    size_t n = 0;
    int fd = 0;
    uint16_t port = 0;
    char buf[64];
    wsq_stats_t st;
    wsq_config_t cfg;
    wsq_config_init(&cfg);

    CHECK(wsq_version() != NULL && wsq_version()[0] != 0);
    CHECK_FAILS(wsq_config_init(NULL), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_server_start(&cfg, NULL), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_server_start(NULL, NULL), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_server_stop(NULL, 0), WSQ_ERR_INVALID_ARGUMENT);
    wsq_server_free(NULL); /* documented: ignored */
    CHECK_FAILS(wsq_server_port(NULL, &port), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_server_port(srv, NULL), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_server_local_addr(NULL, 0, buf, sizeof buf), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_server_local_addr(srv, 0, NULL, sizeof buf), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_server_local_addr(srv, 0, buf, 0), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_server_event_fd(NULL, &fd), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_server_event_fd(srv, NULL), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_stats(NULL, &st), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_stats(srv, NULL), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_poll(NULL, evs, 2, 0, &n), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_poll(srv, NULL, 2, 0, &n), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_poll(srv, evs, 0, 0, &n), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_poll(srv, evs, 2, 0, NULL), WSQ_ERR_INVALID_ARGUMENT);
    wsq_events_release(NULL, 5); /* documented: ignored */
    wsq_events_release(evs, 0);
    CHECK_FAILS(wsq_send(NULL, id, WSQ_MESSAGE_TEXT, "x", 1), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_send(srv, id, WSQ_MESSAGE_TEXT, NULL, 5), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_send(srv, id, WSQ_MESSAGE_BINARY, NULL, SIZE_MAX), WSQ_ERR_INVALID_ARGUMENT);
    wsq_send_item_t item = {id, WSQ_MESSAGE_TEXT, 0, "x", 1};
    CHECK_FAILS(wsq_send_batch(NULL, &item, 1), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_send_batch(srv, NULL, 1), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_send_batch(srv, NULL, SIZE_MAX), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_buffered_amount(NULL, id, &u), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_cork(NULL), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_uncork(NULL), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_buffered_amount(srv, id, NULL), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_ping(NULL, id, "x", 1), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_ping(srv, id, NULL, 5), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_close(NULL, id, 1000, NULL, 0), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_close(srv, id, 1000, NULL, 5), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_broadcast(NULL, WSQ_MESSAGE_TEXT, "x", 1, NULL, 0, &n), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_broadcast(srv, WSQ_MESSAGE_TEXT, NULL, 1, NULL, 0, &n), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_set_tag(NULL, id, 1), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_get_tag(NULL, id, &u), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_get_tag(srv, id, NULL), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_accept(NULL, id, NULL, NULL, 0), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_accept(srv, id, NULL, NULL, 3), WSQ_ERR_INVALID_ARGUMENT);
    wsq_header_t no_name = {NULL, "v"}, no_value = {"X-A", NULL};
    CHECK_FAILS(wsq_accept(srv, id, NULL, &no_name, 1), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_accept(srv, id, NULL, &no_value, 1), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_reject(NULL, id, 403, NULL, 0), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_reject(srv, id, 403, NULL, 3), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_adopt(NULL, c.fd, NULL, 0, &u), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_adopt(srv, c.fd, NULL, 4, &u), WSQ_ERR_INVALID_ARGUMENT);
    CHECK(wsq_strerror(WSQ_ERR_INVALID_ARGUMENT) != NULL);
    CHECK(wsq_last_error() != NULL);

    /* NULL with a zero length (or count) is allowed where documented. */
    CHECK_RC(wsq_send_batch(srv, NULL, 0), WSQ_OK);
    CHECK_RC(wsq_send(srv, id, WSQ_MESSAGE_TEXT, NULL, 0), WSQ_OK);
    CHECK_RC(wsq_ping(srv, id, NULL, 0), WSQ_OK);
    CHECK_RC(wsq_broadcast(srv, WSQ_MESSAGE_BINARY, NULL, 0, NULL, 0, NULL), WSQ_OK);
    /* None of the refused calls touched the connection: it still works, and the
     * caller still owns the descriptor wsq_adopt refused. */
    wsc_frame_t f;
    int op = wsc_read_frame(c.fd, &f);
    CHECK(op == WSC_TEXT && f.len == 0);
    if (op >= 0) wsc_frame_free(&f);
    CHECK(wsc_read_frame(c.fd, &f) == WSC_PING);
    wsc_frame_free(&f);
    CHECK(wsc_read_frame(c.fd, &f) == WSC_BINARY);
    wsc_frame_free(&f);
    CHECK(wsc_send_frame(c.fd, true, WSC_TEXT, "still", 5) == 0);
    wsq_event_t ev;
    CHECK(fx_wait(&fx, WSQ_EVENT_MESSAGE, id, &ev));
    wsq_events_release(&ev, 1);
    close(c.fd);
    fx_finish(&fx);
}

/* Every known code, with the number the ABI fixes for it. */
static const struct {
    wsq_result_t code;
    uint32_t number;
} known_codes[] = {
    {WSQ_OK, 0},           {WSQ_ERR_INVALID_ARGUMENT, 1}, {WSQ_ERR_NOT_FOUND, 2},
    {WSQ_ERR_CLOSED, 3},   {WSQ_ERR_QUEUE_FULL, 4},       {WSQ_ERR_STOPPED, 5},
    {WSQ_ERR_INVALID_STATE, 6}, {WSQ_ERR_IO, 7},          {WSQ_ERR_BAD_HANDLE, 8},
    {WSQ_ERR_PANIC, 9},    {WSQ_ERR_TLS, 10},             {WSQ_BACKPRESSURE, 100},
};
#define KNOWN_CODES (sizeof known_codes / sizeof known_codes[0])

static void strerror_has_its_own_text_for_every_code(void)
{
    /* wsq_result_t is a uint32_t on the wire, whatever the compiler makes of the enum. */
    CHECK(sizeof(wsq_result_t) == sizeof(uint32_t));
    for (size_t i = 0; i < KNOWN_CODES; i++) {
        const char *t = wsq_strerror(known_codes[i].code);
        CHECK(t != NULL && t[0] != 0);
        CHECK((uint32_t)known_codes[i].code == known_codes[i].number); /* part of the ABI */
        if (!t) continue;
        CHECK(strstr(t, "unknown") == NULL);
        for (size_t j = 0; j < i; j++) {
            const char *u = wsq_strerror(known_codes[j].code);
            if (u && strcmp(t, u) == 0) {
                fprintf(stderr, "  codes %u and %u share the text \"%s\"\n",
                        known_codes[i].number, known_codes[j].number, t);
                check_failures++;
            }
        }
    }
    /* The same static string every time (it may be kept by the caller). */
    CHECK(wsq_strerror(WSQ_ERR_IO) == wsq_strerror(WSQ_ERR_IO));
    CHECK(wsq_strerror(WSQ_BACKPRESSURE) == wsq_strerror(100));
}

/* C (and ctypes, and cgo) pass any integer: one that names no code is not undefined
 * behaviour but a text of its own, never NULL, that says it is unknown. */
static void strerror_of_any_unknown_number_is_an_unknown_text_not_a_crash(void)
{
    const uint32_t unknown[] = {11, 12, 99, 101, 0x7fffffffu, 0x80000000u, UINT32_MAX,
                                (uint32_t)-1, (uint32_t)-100};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *t = wsq_strerror(unknown[i]);
        CHECK(t != NULL);
        if (!t) continue;
        if (strstr(t, "unknown") == NULL) {
            fprintf(stderr, "  wsq_strerror(%u) = \"%s\"\n", unknown[i], t);
            check_failures++;
        }
        for (size_t j = 0; j < KNOWN_CODES; j++) CHECK(strcmp(t, wsq_strerror(known_codes[j].code)) != 0);
        CHECK(t == wsq_strerror(unknown[i])); /* static, like the known texts */
    }
    /* The whole range up to the first gap after the known codes, and around 100. */
    for (uint32_t v = 0; v < 1000; v++) {
        const char *t = wsq_strerror(v);
        CHECK(t != NULL && t[0] != 0);
        if (!t) break;
    }
}

static void *fail_on_other_thread(void *arg)
{
    char *text = arg;
    CHECK(wsq_last_error() != NULL && wsq_last_error()[0] == 0); /* fresh thread: "" */
    (void)wsq_server_port(NULL, NULL);
    snprintf(text, 128, "%s", wsq_last_error());
    return NULL;
}

static void last_error_is_per_thread_and_never_null(void)
{
    CHECK(wsq_last_error() != NULL);
    CHECK_FAILS(wsq_config_init(NULL), WSQ_ERR_INVALID_ARGUMENT);
    char mine[128];
    snprintf(mine, sizeof mine, "%s", wsq_last_error());
    /* A failure on another thread does not change this thread's detail. */
    char other[128] = {0};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, fail_on_other_thread, other) == 0);
    pthread_join(t, NULL);
    CHECK(other[0] != 0 && strcmp(other, mine) != 0);
    CHECK(strcmp(wsq_last_error(), mine) == 0);
}

static void freed_handle_returns_bad_handle_from_every_function(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    client_t c;
    REQUIRE(fx_connect(&fx, "/", NULL, &c));
    wsq_server_t *srv = fx.srv;
    uint64_t id = c.id;
    wsq_server_free(srv);
    wsq_server_free(srv); /* a second free is harmless */
    fx.srv = NULL;
    wsq_event_t evs[2];
    size_t n = 7;
    uint64_t u;
    int fd;
    uint16_t port;
    wsq_stats_t st;
    char buf[64];
    wsq_header_t h = {"X-A", "b"};
    CHECK_FAILS(wsq_server_stop(srv, 0), WSQ_ERR_BAD_HANDLE);
    CHECK_FAILS(wsq_server_port(srv, &port), WSQ_ERR_BAD_HANDLE);
    CHECK_FAILS(wsq_server_local_addr(srv, 0, buf, sizeof buf), WSQ_ERR_BAD_HANDLE);
    CHECK_FAILS(wsq_server_event_fd(srv, &fd), WSQ_ERR_BAD_HANDLE);
    CHECK_FAILS(wsq_stats(srv, &st), WSQ_ERR_BAD_HANDLE);
    CHECK_FAILS(wsq_poll(srv, evs, 2, -1, &n), WSQ_ERR_BAD_HANDLE); /* -1: must not block */
    CHECK(n == 0);
    CHECK_FAILS(wsq_send(srv, id, WSQ_MESSAGE_TEXT, "x", 1), WSQ_ERR_BAD_HANDLE);
    wsq_send_item_t item = {id, WSQ_MESSAGE_TEXT, 0, "x", 1};
    CHECK_FAILS(wsq_send_batch(srv, &item, 1), WSQ_ERR_BAD_HANDLE);
    CHECK_FAILS(wsq_send_batch(srv, NULL, 0), WSQ_ERR_BAD_HANDLE);
    CHECK_FAILS(wsq_buffered_amount(srv, id, &u), WSQ_ERR_BAD_HANDLE);
    CHECK_FAILS(wsq_cork(srv), WSQ_ERR_BAD_HANDLE);
    CHECK_FAILS(wsq_uncork(srv), WSQ_ERR_BAD_HANDLE);
    CHECK_FAILS(wsq_ping(srv, id, NULL, 0), WSQ_ERR_BAD_HANDLE);
    CHECK_FAILS(wsq_close(srv, id, 1000, NULL, 0), WSQ_ERR_BAD_HANDLE);
    CHECK_FAILS(wsq_broadcast(srv, WSQ_MESSAGE_TEXT, "x", 1, NULL, 0, NULL), WSQ_ERR_BAD_HANDLE);
    CHECK_FAILS(wsq_set_tag(srv, id, 1), WSQ_ERR_BAD_HANDLE);
    CHECK_FAILS(wsq_get_tag(srv, id, &u), WSQ_ERR_BAD_HANDLE);
    CHECK_FAILS(wsq_accept(srv, id, NULL, &h, 1), WSQ_ERR_BAD_HANDLE);
    CHECK_FAILS(wsq_reject(srv, id, 403, NULL, 0), WSQ_ERR_BAD_HANDLE);
    /* A refused adopt leaves the descriptor with the caller. */
    int spare = dup(c.fd);
    CHECK_FAILS(wsq_adopt(srv, spare, "GET", 3, &u), WSQ_ERR_BAD_HANDLE);
    CHECK(close(spare) == 0);
    /* The freed server's sockets are closed. */
    CHECK(wsc_wait_eof(c.fd));
    close(c.fd);
    fx_finish(&fx);
}

static void invalid_enum_and_config_values_are_refused(void)
{
    wsq_config_t cfg;
    wsq_server_t *srv = (wsq_server_t *)&cfg;
    const char *text_fields_bad_utf8 = "\xff\xfe";
#define REFUSED(assignment)                                                              \
    do {                                                                                 \
        wsq_config_init(&cfg);                                                           \
        cfg.listen = "127.0.0.1:0";                                                      \
        assignment;                                                                      \
        srv = (wsq_server_t *)&cfg;                                                      \
        CHECK_FAILS(wsq_server_start(&cfg, &srv), WSQ_ERR_INVALID_ARGUMENT);             \
        CHECK(srv == NULL);                                                              \
        if (srv) wsq_server_free(srv);                                                   \
    } while (0)
    REFUSED(cfg.slow_consumer = 7);
    REFUSED(cfg.listen = "not an address");
    REFUSED(cfg.listen = "");
    REFUSED(cfg.listen = "127.0.0.1:99999");
    REFUSED(cfg.listen = text_fields_bad_utf8);
    REFUSED(cfg.subprotocols = text_fields_bad_utf8);
    REFUSED(cfg.allowed_origins = text_fields_bad_utf8);
    REFUSED(cfg.max_head_bytes = 10);
    REFUSED(cfg.max_headers = 0);
    REFUSED(cfg.max_frame_size = 0);
    REFUSED(cfg.max_message_size = 0);
    REFUSED(cfg.send_queue_soft_limit = 0);
    REFUSED(cfg.send_queue_hard_limit = cfg.send_queue_soft_limit - 1);
    REFUSED(cfg.send_queue_hard_limit = 0);
    REFUSED(cfg.send_queue_low_water = cfg.send_queue_soft_limit + 1);
    REFUSED(cfg.send_queue_soft_limit = cfg.send_queue_low_water - 1);
    REFUSED(cfg.max_buffered_bytes = 0);
    REFUSED(cfg.event_queue_capacity = 0);
    REFUSED(cfg.reactor_threads = 5000);
#undef REFUSED

    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    client_t c;
    REQUIRE(fx_connect(&fx, "/", NULL, &c));
    const uint32_t kinds[] = {0, 3, 99, UINT32_MAX};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        CHECK_FAILS(wsq_send(fx.srv, c.id, kinds[i], "x", 1), WSQ_ERR_INVALID_ARGUMENT);
        CHECK_FAILS(wsq_broadcast(fx.srv, kinds[i], "x", 1, NULL, 0, NULL), WSQ_ERR_INVALID_ARGUMENT);
    }
    /* The refusals sent nothing: the next frame the client sees is this one. */
    CHECK_RC(wsq_send(fx.srv, c.id, WSQ_MESSAGE_TEXT, "ok", 2), WSQ_OK);
    wsc_frame_t f;
    int op = wsc_read_frame(c.fd, &f);
    CHECK(op == WSC_TEXT && f.len == 2 && memcmp(f.data, "ok", 2) == 0);
    if (op >= 0) wsc_frame_free(&f);
    close(c.fd);
    fx_finish(&fx);
}

/* The send-queue limits must be ordered low_water <= soft <= hard, and the server-wide
 * budget positive: a contradiction is refused at start, with a detail that names the
 * setting, while limits that meet at their bounds are fine. */
static void contradicting_send_queue_limits_are_refused_and_meeting_ones_accepted(void)
{
    struct {
        const char *what;
        uint64_t soft, hard, low, budget;
        bool ok;
        const char *named; /* a setting the refusal's detail must name */
    } cases[] = {
        {"hard < soft", 64 * 1024, 64 * 1024 - 1, 1024, 1 << 20, false, "send_queue_hard_limit"},
        {"hard far below soft", 1 << 20, 1, 0, 1 << 20, false, "send_queue_hard_limit"},
        {"low_water > soft", 64 * 1024, 1 << 20, 64 * 1024 + 1, 1 << 20, false, "send_queue_low_water"},
        {"low_water > hard too", 1024, 2048, 4096, 1 << 20, false, "send_queue_low_water"},
        {"no budget", 64 * 1024, 1 << 20, 1024, 0, false, "max_buffered_bytes"},
        {"no soft limit", 0, 1 << 20, 0, 1 << 20, false, "send_queue_soft_limit"},
        {"hard == soft", 64 * 1024, 64 * 1024, 1024, 1 << 20, true, NULL},
        {"low_water == soft", 64 * 1024, 1 << 20, 64 * 1024, 1 << 20, true, NULL},
        {"low_water 0", 64 * 1024, 1 << 20, 0, 1 << 20, true, NULL},
        {"budget of 1 byte", 64 * 1024, 1 << 20, 1024, 1, true, NULL},
        {"budget below the soft limit", 64 * 1024, 1 << 20, 1024, 1024, true, NULL},
        {"everything UINT64_MAX", UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX, true, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wsq_config_t cfg;
        wsq_config_init(&cfg);
        cfg.listen = "127.0.0.1:0";
        cfg.reactor_threads = 1;
        cfg.send_queue_soft_limit = cases[i].soft;
        cfg.send_queue_hard_limit = cases[i].hard;
        cfg.send_queue_low_water = cases[i].low;
        cfg.max_buffered_bytes = cases[i].budget;
        wsq_server_t *srv = (wsq_server_t *)&cfg;
        wsq_result_t rc;
        if (cases[i].ok) {
            rc = wsq_server_start(&cfg, &srv);
            if (rc != WSQ_OK) {
                fprintf(stderr, "  %s: refused with %s (%s)\n", cases[i].what, wsq_strerror(rc),
                        wsq_last_error());
                check_failures++;
            }
        } else {
            CHECK_FAILS(rc = wsq_server_start(&cfg, &srv), WSQ_ERR_INVALID_ARGUMENT);
            if (rc != WSQ_ERR_INVALID_ARGUMENT)
                fprintf(stderr, "  %s: %s\n", cases[i].what, wsq_strerror(rc));
            else if (strstr(wsq_last_error(), cases[i].named) == NULL) {
                fprintf(stderr, "  %s: the detail \"%s\" does not name %s\n", cases[i].what,
                        wsq_last_error(), cases[i].named);
                check_failures++;
            }
            CHECK(srv == NULL);
        }
        if (rc == WSQ_OK) wsq_server_free(srv);
    }
}

static void text_that_is_not_utf8_is_refused(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    client_t c;
    REQUIRE(fx_connect(&fx, "/", NULL, &c));
    const char *bad[] = {
        "\xff",             /* never valid */
        "\xc0\xaf",         /* overlong '/' */
        "\xed\xa0\x80",     /* UTF-16 surrogate */
        "ok\xe2\x82",       /* truncated sequence */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_FAILS(wsq_send(fx.srv, c.id, WSQ_MESSAGE_TEXT, bad[i], strlen(bad[i])),
                    WSQ_ERR_INVALID_ARGUMENT);
        CHECK_FAILS(wsq_broadcast(fx.srv, WSQ_MESSAGE_TEXT, bad[i], strlen(bad[i]), NULL, 0, NULL),
                    WSQ_ERR_INVALID_ARGUMENT);
        /* The same bytes are fine as binary. */
        CHECK_RC(wsq_send(fx.srv, c.id, WSQ_MESSAGE_BINARY, bad[i], strlen(bad[i])), WSQ_OK);
    }
    /* A NUL is valid UTF-8 (lengths, not terminators, delimit data). */
    CHECK_RC(wsq_send(fx.srv, c.id, WSQ_MESSAGE_TEXT, "a\0b", 3), WSQ_OK);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wsc_frame_t f;
        int op = wsc_read_frame(c.fd, &f);
        CHECK(op == WSC_BINARY && f.len == strlen(bad[i]) && memcmp(f.data, bad[i], f.len) == 0);
        if (op >= 0) wsc_frame_free(&f);
    }
    wsc_frame_t f;
    int op = wsc_read_frame(c.fd, &f);
    CHECK(op == WSC_TEXT && f.len == 3 && memcmp(f.data, "a\0b", 3) == 0);
    if (op >= 0) wsc_frame_free(&f);
    close(c.fd);
    fx_finish(&fx);
}

static void close_with_a_reserved_code_or_long_reason_is_refused(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    client_t c;
    REQUIRE(fx_connect(&fx, "/", NULL, &c));
    /* §7.4.1/§7.4.2: codes never sent on the wire, or not defined for use. */
    const uint16_t bad_codes[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof bad_codes / sizeof bad_codes[0]; i++) {
        CHECK_FAILS(wsq_close(fx.srv, c.id, bad_codes[i], NULL, 0), WSQ_ERR_INVALID_ARGUMENT);
        if (wsq_close(fx.srv, c.id, bad_codes[i], NULL, 0) != WSQ_ERR_INVALID_ARGUMENT)
            fprintf(stderr, "  code %u was accepted\n", bad_codes[i]);
    }
    char reason[200];
    memset(reason, 'r', sizeof reason);
    CHECK_FAILS(wsq_close(fx.srv, c.id, 1000, reason, sizeof reason), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_close(fx.srv, c.id, 1000, reason, 124), WSQ_ERR_INVALID_ARGUMENT); /* §5.5 */
    CHECK_FAILS(wsq_close(fx.srv, c.id, 1000, "\xff", 1), WSQ_ERR_INVALID_ARGUMENT);
    char big[126] = {0};
    CHECK_FAILS(wsq_ping(fx.srv, c.id, big, sizeof big), WSQ_ERR_INVALID_ARGUMENT);
    /* None of that started a close: the connection is open, and a valid close with
     * the longest allowed reason goes out whole. */
    CHECK_RC(wsq_send(fx.srv, c.id, WSQ_MESSAGE_TEXT, "open", 4), WSQ_OK);
    CHECK_RC(wsq_close(fx.srv, c.id, 3000, reason, 123), WSQ_OK);
    wsc_frame_t f;
    int op = wsc_read_frame(c.fd, &f);
    CHECK(op == WSC_TEXT);
    if (op >= 0) wsc_frame_free(&f);
    op = wsc_read_frame(c.fd, &f);
    CHECK(op == WSC_CLOSE && f.len == 125 && wsc_close_code(&f) == 3000);
    if (op >= 0) wsc_frame_free(&f);
    close(c.fd);
    fx_finish(&fx);
}

static void stale_and_never_issued_ids_are_errors_not_crashes(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    client_t c;
    REQUIRE(fx_connect(&fx, "/", NULL, &c));
    close(c.fd);
    wsq_event_t ev;
    REQUIRE(fx_wait(&fx, WSQ_EVENT_CLOSE, c.id, &ev));
    wsq_events_release(&ev, 1);
    uint64_t u = 0;
#define GONE(call)                                                                       \
    do {                                                                                 \
        wsq_result_t rc_ = (call);                                                       \
        if (rc_ != WSQ_ERR_NOT_FOUND && rc_ != WSQ_ERR_CLOSED) {                         \
            fprintf(stderr, "%s:%d: %s returned %s, wanted NOT_FOUND or CLOSED\n",       \
                    __FILE__, __LINE__, #call, wsq_strerror(rc_));                       \
            check_failures++;                                                            \
        }                                                                                \
    } while (0)
    /* After its close event: the id is stale. */
    GONE(wsq_send(fx.srv, c.id, WSQ_MESSAGE_TEXT, "x", 1));
    GONE(wsq_buffered_amount(fx.srv, c.id, &u));
    GONE(wsq_close(fx.srv, c.id, 1000, NULL, 0));
    GONE(wsq_set_tag(fx.srv, c.id, 1));
    GONE(wsq_get_tag(fx.srv, c.id, &u));
    GONE(wsq_ping(fx.srv, c.id, NULL, 0));
    GONE(wsq_accept(fx.srv, c.id, NULL, NULL, 0));
    GONE(wsq_reject(fx.srv, c.id, 403, NULL, 0));
    size_t delivered = 9;
    CHECK_RC(wsq_broadcast(fx.srv, WSQ_MESSAGE_TEXT, "x", 1, &c.id, 1, &delivered), WSQ_OK);
    CHECK(delivered == 0);
    /* Never issued: 0, the largest id, the next id in line. */
    const uint64_t never[] = {0, UINT64_MAX, c.id + 1000000};
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++) {
        CHECK_FAILS(wsq_send(fx.srv, never[i], WSQ_MESSAGE_TEXT, "x", 1), WSQ_ERR_NOT_FOUND);
        CHECK_FAILS(wsq_buffered_amount(fx.srv, never[i], &u), WSQ_ERR_NOT_FOUND);
        CHECK_FAILS(wsq_close(fx.srv, never[i], 1000, NULL, 0), WSQ_ERR_NOT_FOUND);
        CHECK_FAILS(wsq_set_tag(fx.srv, never[i], 1), WSQ_ERR_NOT_FOUND);
        CHECK_FAILS(wsq_get_tag(fx.srv, never[i], &u), WSQ_ERR_NOT_FOUND);
        CHECK_FAILS(wsq_ping(fx.srv, never[i], NULL, 0), WSQ_ERR_NOT_FOUND);
        CHECK_FAILS(wsq_accept(fx.srv, never[i], NULL, NULL, 0), WSQ_ERR_NOT_FOUND);
        CHECK_FAILS(wsq_reject(fx.srv, never[i], 403, NULL, 0), WSQ_ERR_NOT_FOUND);
    }
    /* An id of another server is unknown here. */
    fixture_t other;
    REQUIRE(fx_start(&other, NULL));
    client_t oc;
    REQUIRE(fx_connect(&other, "/", NULL, &oc));
    CHECK_FAILS(wsq_send(fx.srv, oc.id, WSQ_MESSAGE_TEXT, "x", 1), WSQ_ERR_NOT_FOUND);
    CHECK(oc.id != c.id);
    close(oc.fd);
    fx_finish(&other);
    /* Ids are never reused: every new connection gets a fresh one. */
    uint64_t seen[20];
    for (int i = 0; i < 20; i++) {
        client_t k;
        REQUIRE(fx_connect(&fx, "/", NULL, &k));
        seen[i] = k.id;
        CHECK(k.id != c.id && k.id != oc.id);
        for (int j = 0; j < i; j++) CHECK(seen[j] != k.id);
        close(k.fd);
        REQUIRE(fx_wait(&fx, WSQ_EVENT_CLOSE, k.id, &ev));
        wsq_events_release(&ev, 1);
    }
#undef GONE
    fx_finish(&fx);
}

TEST_MAIN(
    TEST(null_arguments_to_every_function_return_invalid_argument),
    TEST(strerror_has_its_own_text_for_every_code),
    TEST(strerror_of_any_unknown_number_is_an_unknown_text_not_a_crash),
    TEST(last_error_is_per_thread_and_never_null),
    TEST(freed_handle_returns_bad_handle_from_every_function),
    TEST(invalid_enum_and_config_values_are_refused),
    TEST(contradicting_send_queue_limits_are_refused_and_meeting_ones_accepted),
    TEST(text_that_is_not_utf8_is_refused),
    TEST(close_with_a_reserved_code_or_long_reason_is_refused),
    TEST(stale_and_never_issued_ids_are_errors_not_crashes),
)
