/* Handler mode (wsq_config_t.on_event): events go to a C function on the library's
 * I/O threads, with the config's user pointer and the server's handle, instead of to
 * wsq_poll. Checked here through the ABI: the arguments, every kind of event and the
 * pointers in it, replies sent from inside, wsq_poll refused, wsq_server_stop from
 * inside, and the close events of a stop delivered before it returns. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "wsclient.h"

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    wsq_server_t *srv;          /* as wsq_server_start returned it */
    int wrong_arguments;        /* calls whose user or server pointer was not ours */
    int opens, messages, closes;
    int wrong_conn;             /* message events whose conn was not the last opened */
    uint64_t last_open_conn;
    char open_path[64];
    uint16_t last_close_code;
    char last_close_reason[64];
    int stop_on_message;        /* call wsq_server_stop inside on "stop" */
    int free_on_message;        /* call wsq_server_free inside on "free" */
    wsq_result_t stop_rc;
    int stop_returned;
    wsq_result_t send_after_free_rc; /* a wsq_send through the handle just freed */
    /* the same from the close event that follows, in a later hand-over */
    wsq_result_t send_in_close_after_free_rc;
    int sends_in_close_after_free;
    /* "relay": sent to relay_conn of relay_srv (another server) instead of echoed */
    wsq_server_t *relay_srv;
    uint64_t relay_conn;
    wsq_result_t relay_rc;
    int relays;
} ctx_t;

static void on_event(void *user, const wsq_server_t *server, const wsq_event_t *ev)
{
    ctx_t *ctx = user;
    pthread_mutex_lock(&ctx->lock);
    /* The handle is written to ctx->srv after wsq_server_start returns; no client
     * connects before that, so every call sees it set. */
    if (server != ctx->srv)
        ctx->wrong_arguments++;
    pthread_mutex_unlock(&ctx->lock);

    int stop = 0;
    switch (ev->event_type) {
    case WSQ_EVENT_OPEN:
        pthread_mutex_lock(&ctx->lock);
        ctx->opens++;
        ctx->last_open_conn = ev->conn;
        snprintf(ctx->open_path, sizeof ctx->open_path, "%s", ev->path ? ev->path : "(null)");
        pthread_mutex_unlock(&ctx->lock);
        break;
    case WSQ_EVENT_MESSAGE:
        pthread_mutex_lock(&ctx->lock);
        if (ev->conn != ctx->last_open_conn)
            ctx->wrong_conn++;
        pthread_mutex_unlock(&ctx->lock);
        if (ctx->stop_on_message && ev->len == 4 && memcmp(ev->data, "stop", 4) == 0) {
            stop = 1;
        } else if (ctx->free_on_message && ev->len == 4 && memcmp(ev->data, "free", 4) == 0) {
            stop = 2;
        } else if (ctx->relay_srv && ev->len == 5 && memcmp(ev->data, "relay", 5) == 0) {
            /* Inside this server's handler, a send through another server's handle
             * goes to that server's connection. */
            wsq_result_t rc = wsq_send(ctx->relay_srv, ctx->relay_conn, WSQ_MESSAGE_TEXT, "relayed", 7);
            pthread_mutex_lock(&ctx->lock);
            ctx->relay_rc = rc;
            ctx->relays++;
            pthread_mutex_unlock(&ctx->lock);
        } else {
            /* The reply: corked, written after this batch of events. */
            wsq_send(server, ev->conn, ev->message_kind, ev->data, ev->len);
        }
        pthread_mutex_lock(&ctx->lock);
        ctx->messages++;
        pthread_mutex_unlock(&ctx->lock);
        break;
    case WSQ_EVENT_CLOSE:
        pthread_mutex_lock(&ctx->lock);
        ctx->closes++;
        ctx->last_close_code = ev->close_code;
        snprintf(ctx->last_close_reason, sizeof ctx->last_close_reason, "%s",
                 ev->reason ? ev->reason : "(null)");
        int freed = ctx->free_on_message && ctx->stop_returned;
        pthread_mutex_unlock(&ctx->lock);
        if (freed) {
            wsq_result_t rc = wsq_send(server, ev->conn, WSQ_MESSAGE_TEXT, "later", 5);
            pthread_mutex_lock(&ctx->lock);
            ctx->send_in_close_after_free_rc = rc;
            ctx->sends_in_close_after_free++;
            pthread_mutex_unlock(&ctx->lock);
        }
        break;
    default:
        break;
    }
    if (stop == 2) {
        /* Frees the handle; the I/O threads finish the stop by themselves. */
        wsq_server_free((wsq_server_t *)server);
        /* Still inside the call: the freed handle refuses, like anywhere else. */
        wsq_result_t rc = wsq_send(server, ev->conn, WSQ_MESSAGE_TEXT, "late", 4);
        pthread_mutex_lock(&ctx->lock);
        ctx->send_after_free_rc = rc;
        ctx->stop_returned = 1;
        pthread_mutex_unlock(&ctx->lock);
    } else if (stop) {
        /* Inside the handler: begins the stop and returns, without waiting for the
         * thread that is running this very call. */
        wsq_result_t rc = wsq_server_stop((wsq_server_t *)server, 2000);
        pthread_mutex_lock(&ctx->lock);
        ctx->stop_rc = rc;
        ctx->stop_returned = 1;
        pthread_mutex_unlock(&ctx->lock);
    }
    pthread_cond_broadcast(&ctx->changed);
}

static void ctx_init(ctx_t *ctx)
{
    memset(ctx, 0, sizeof *ctx);
    pthread_mutex_init(&ctx->lock, NULL);
    pthread_cond_init(&ctx->changed, NULL);
}

static void ctx_destroy(ctx_t *ctx)
{
    pthread_mutex_destroy(&ctx->lock);
    pthread_cond_destroy(&ctx->changed);
}

/* Waits (bounded: 10 s) until *counter reaches want. */
static bool wait_count(ctx_t *ctx, const int *counter, int want)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&ctx->lock);
    int rc = 0;
    while (*counter < want && rc == 0)
        rc = pthread_cond_timedwait(&ctx->changed, &ctx->lock, &until);
    bool ok = *counter >= want;
    pthread_mutex_unlock(&ctx->lock);
    return ok;
}

static bool start(ctx_t *ctx, uint16_t *port)
{
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    cfg.listen = "127.0.0.1:0";
    cfg.reactor_threads = 2;
    cfg.on_event = on_event;
    cfg.on_event_user = ctx;
    wsq_server_t *srv = NULL;
    if (wsq_server_start(&cfg, &srv) != WSQ_OK) {
        fprintf(stderr, "  start: %s\n", wsq_last_error());
        return false;
    }
    pthread_mutex_lock(&ctx->lock);
    ctx->srv = srv;
    pthread_mutex_unlock(&ctx->lock);
    return wsq_server_port(srv, port) == WSQ_OK;
}

static bool read_echo(int fd, const char *want)
{
    wsc_frame_t f;
    int op = wsc_read_frame(fd, &f);
    bool ok = op == WSC_TEXT && f.len == strlen(want) && memcmp(f.data, want, f.len) == 0;
    if (op >= 0)
        wsc_frame_free(&f);
    if (!ok)
        fprintf(stderr, "  expected echo \"%s\", got opcode %d\n", want, op);
    return ok;
}

static int read_close_code(int fd)
{
    wsc_frame_t f;
    int op;
    while ((op = wsc_read_frame(fd, &f)) >= 0 && op != WSC_CLOSE)
        wsc_frame_free(&f);
    if (op != WSC_CLOSE)
        return -1;
    int code = wsc_close_code(&f);
    wsc_frame_free(&f);
    return code;
}

static void every_event_reaches_the_function_with_our_user_pointer_and_handle(void)
{
    ctx_t ctx;
    ctx_init(&ctx);
    uint16_t port = 0;
    REQUIRE(start(&ctx, &port));
    int fd = wsc_open(port, "/chat?room=1", NULL);
    REQUIRE(fd >= 0);
    CHECK(wait_count(&ctx, &ctx.opens, 1));
    /* Three messages in one write: read together, echoed from inside the handler. */
    CHECK(wsc_send_frame(fd, true, WSC_TEXT, "one", 3) == 0);
    CHECK(wsc_send_frame(fd, true, WSC_TEXT, "two", 3) == 0);
    CHECK(wsc_send_frame(fd, true, WSC_TEXT, "three", 5) == 0);
    CHECK(read_echo(fd, "one"));
    CHECK(read_echo(fd, "two"));
    CHECK(read_echo(fd, "three"));
    CHECK(wait_count(&ctx, &ctx.messages, 3));
    /* The replies are counted (the handler's are counted once per batch). */
    wsq_stats_t stats;
    CHECK_RC(wsq_stats(ctx.srv, &stats), WSQ_OK);
    CHECK(stats.messages_out == 3);

    /* Nothing is queued for a poller. */
    wsq_event_t ev;
    size_t n = 99;
    CHECK_RC(wsq_poll(ctx.srv, &ev, 1, 0, &n), WSQ_ERR_INVALID_STATE);
    CHECK(n == 0);

    CHECK(wsc_send_close(fd, 1000, "done") == 0);
    CHECK(read_close_code(fd) == 1000);
    close(fd);
    CHECK(wait_count(&ctx, &ctx.closes, 1));
    pthread_mutex_lock(&ctx.lock);
    CHECK(ctx.wrong_arguments == 0);
    CHECK(strcmp(ctx.open_path, "/chat?room=1") == 0);
    CHECK(ctx.last_close_code == 1000);
    CHECK(strcmp(ctx.last_close_reason, "done") == 0);
    pthread_mutex_unlock(&ctx.lock);
    CHECK_RC(wsq_server_stop(ctx.srv, 1000), WSQ_OK);
    wsq_server_free(ctx.srv);
    ctx_destroy(&ctx);
}

/* Starts a server, connects one client and sends it `word` (which the handler acts
 * on), then waits until the handler's stop or free call has returned. Returns the
 * client's socket, or -1. */
static int start_and_send(ctx_t *ctx, const char *word)
{
    uint16_t port = 0;
    if (!start(ctx, &port))
        return -1;
    int fd = wsc_open(port, "/", NULL);
    if (fd < 0)
        return -1;
    if (wsc_send_frame(fd, true, WSC_TEXT, word, strlen(word)) != 0 ||
        !wait_count(ctx, &ctx->stop_returned, 1)) {
        close(fd);
        return -1;
    }
    return fd;
}

static void wsq_server_stop_inside_the_function_returns_and_the_stop_completes(void)
{
    ctx_t ctx;
    ctx_init(&ctx);
    ctx.stop_on_message = 1;
    int fd = start_and_send(&ctx, "stop");
    REQUIRE(fd >= 0);
    CHECK(ctx.stop_rc == WSQ_OK);
    CHECK(read_close_code(fd) == 1001); /* going away */
    CHECK(wsc_send_close(fd, 1001, "") == 0);
    CHECK(wsc_wait_eof(fd));
    close(fd);
    CHECK(wait_count(&ctx, &ctx.closes, 1));
    wsq_server_free(ctx.srv); /* waits for the I/O threads, which have finished */
    ctx_destroy(&ctx);
}

static void wsq_server_free_inside_the_function_returns_and_the_threads_finish(void)
{
    ctx_t ctx;
    ctx_init(&ctx);
    ctx.free_on_message = 1;
    int fd = start_and_send(&ctx, "free");
    REQUIRE(fd >= 0);
    /* The stop drops the connection at once (no timeout left): the client sees its
     * connection end. */
    CHECK(wsc_wait_eof(fd));
    close(fd);
    /* The handle is freed: calls through it are refused, never undefined, from
     * inside the handler too. */
    CHECK_RC(ctx.send_after_free_rc, WSQ_ERR_BAD_HANDLE);
    uint16_t p = 0;
    CHECK_RC(wsq_server_port(ctx.srv, &p), WSQ_ERR_BAD_HANDLE);
    /* The close event of the dropped connection still reaches the function, and
     * a send from there, in a later hand-over, is refused the same way. */
    CHECK(wait_count(&ctx, &ctx.closes, 1));
    CHECK(wait_count(&ctx, &ctx.sends_in_close_after_free, 1));
    CHECK_RC(ctx.send_in_close_after_free_rc, WSQ_ERR_BAD_HANDLE);
    usleep(100 * 1000); /* let the I/O threads exit before the leak check at exit */
    ctx_destroy(&ctx);
}

static void a_stop_delivers_its_close_events_before_it_returns(void)
{
    ctx_t ctx;
    ctx_init(&ctx);
    uint16_t port = 0;
    REQUIRE(start(&ctx, &port));
    int fds[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = wsc_open(port, "/", NULL);
        REQUIRE(fds[i] >= 0);
    }
    CHECK(wait_count(&ctx, &ctx.opens, 3));
    /* The clients never answer the close: the stop drops them at its deadline. */
    CHECK_RC(wsq_server_stop(ctx.srv, 200), WSQ_OK);
    pthread_mutex_lock(&ctx.lock);
    CHECK(ctx.closes == 3);
    pthread_mutex_unlock(&ctx.lock);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    wsq_server_free(ctx.srv);
    ctx_destroy(&ctx);
}

/* Server A's handler sends through server B's handle: the message goes to B's
 * connection, not to A's connection of the same id. */
static void a_send_from_the_handler_through_another_handle_reaches_that_server(void)
{
    ctx_t a, b;
    ctx_init(&a);
    ctx_init(&b);
    uint16_t port_a = 0, port_b = 0;
    REQUIRE(start(&a, &port_a));
    REQUIRE(start(&b, &port_b));
    int fd_b = wsc_open(port_b, "/", NULL);
    REQUIRE(fd_b >= 0);
    CHECK(wait_count(&b, &b.opens, 1));
    int fd_a = wsc_open(port_a, "/", NULL);
    REQUIRE(fd_a >= 0);
    CHECK(wait_count(&a, &a.opens, 1));
    pthread_mutex_lock(&b.lock);
    uint64_t conn_b = b.last_open_conn;
    pthread_mutex_unlock(&b.lock);
    pthread_mutex_lock(&a.lock);
    a.relay_srv = b.srv;
    a.relay_conn = conn_b;
    pthread_mutex_unlock(&a.lock);
    CHECK(wsc_send_frame(fd_a, true, WSC_TEXT, "relay", 5) == 0);
    CHECK(wait_count(&a, &a.relays, 1));
    CHECK_RC(a.relay_rc, WSQ_OK);
    CHECK(read_echo(fd_b, "relayed"));
    /* A's client got nothing but the echo of what it sends next. */
    CHECK(wsc_send_frame(fd_a, true, WSC_TEXT, "after", 5) == 0);
    CHECK(read_echo(fd_a, "after"));
    close(fd_a);
    close(fd_b);
    CHECK_RC(wsq_server_stop(a.srv, 0), WSQ_OK);
    CHECK_RC(wsq_server_stop(b.srv, 0), WSQ_OK);
    wsq_server_free(a.srv);
    wsq_server_free(b.srv);
    ctx_destroy(&a);
    ctx_destroy(&b);
}

/* Appends a masked frame (key 1 2 3 4) of up to 125 bytes to buf; returns its length. */
static size_t put_frame(uint8_t *buf, int opcode, const void *data, size_t len)
{
    static const uint8_t key[4] = {1, 2, 3, 4};
    buf[0] = (uint8_t)(0x80 | opcode);
    buf[1] = (uint8_t)(0x80 | len);
    memcpy(buf + 2, key, 4);
    for (size_t i = 0; i < len; i++)
        buf[6 + i] = ((const uint8_t *)data)[i] ^ key[i % 4];
    return 6 + len;
}

/* Several small messages in one write are read together and handed to the function
 * one after another: each event carries its own kind, bytes and length (an empty one
 * included), and each echo comes back as it was sent. */
static void a_run_of_messages_in_one_read_keeps_each_messages_kind_and_bytes(void)
{
    ctx_t ctx;
    ctx_init(&ctx);
    uint16_t port = 0;
    REQUIRE(start(&ctx, &port));
    int fd = wsc_open(port, "/", NULL);
    REQUIRE(fd >= 0);
    CHECK(wait_count(&ctx, &ctx.opens, 1));
    char big[125];
    memset(big, 'x', sizeof big);
    struct { int op; const char *data; size_t len; } sent[] = {
        {WSC_TEXT, "a", 1},
        {WSC_BINARY, "\0\1\2", 3},
        {WSC_BINARY, "", 0},
        {WSC_TEXT, big, sizeof big},
        {WSC_BINARY, "end", 3},
    };
    enum { COUNT = sizeof sent / sizeof sent[0] };
    uint8_t buf[COUNT * 131];
    size_t n = 0;
    for (int i = 0; i < COUNT; i++)
        n += put_frame(buf + n, sent[i].op, sent[i].data, sent[i].len);
    CHECK(wsc_write_all(fd, buf, n) == 0);
    for (int i = 0; i < COUNT; i++) {
        wsc_frame_t f;
        int op = wsc_read_frame(fd, &f);
        CHECK(op == sent[i].op);
        if (op < 0)
            break;
        CHECK(f.fin && f.len == sent[i].len && memcmp(f.data, sent[i].data, f.len) == 0);
        wsc_frame_free(&f);
    }
    CHECK(wait_count(&ctx, &ctx.messages, COUNT));
    pthread_mutex_lock(&ctx.lock);
    CHECK(ctx.wrong_conn == 0 && ctx.wrong_arguments == 0);
    pthread_mutex_unlock(&ctx.lock);
    close(fd);
    CHECK(wait_count(&ctx, &ctx.closes, 1));
    CHECK_RC(wsq_server_stop(ctx.srv, 1000), WSQ_OK);
    wsq_server_free(ctx.srv);
    ctx_destroy(&ctx);
}

TEST_MAIN(
    TEST(every_event_reaches_the_function_with_our_user_pointer_and_handle),
    TEST(wsq_server_stop_inside_the_function_returns_and_the_stop_completes),
    TEST(wsq_server_free_inside_the_function_returns_and_the_threads_finish),
    TEST(a_stop_delivers_its_close_events_before_it_returns),
    TEST(a_send_from_the_handler_through_another_handle_reaches_that_server),
    TEST(a_run_of_messages_in_one_read_keeps_each_messages_kind_and_bytes),
)
