/* Server lifecycle through the C ABI: config defaults, start, addresses, the event
 * descriptor, stop and free. */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "support.h"
#include "wsclient.h"

static void config_init_fills_the_documented_defaults(void)
{
    wsq_config_t cfg;
    memset(&cfg, 0xAB, sizeof cfg); /* written, not read: garbage must not survive */
    CHECK_RC(wsq_config_init(&cfg), WSQ_OK);
    CHECK(cfg.listen && strcmp(cfg.listen, "127.0.0.1:9001") == 0);
    CHECK(cfg.reactor_threads == 0);
    CHECK(cfg.max_connections == 10000);
    CHECK(cfg.max_head_bytes == 8192);
    CHECK(cfg.max_headers == 64);
    CHECK(cfg.max_frame_size == 16u << 20);
    CHECK(cfg.max_message_size == 16u << 20);
    CHECK(cfg.send_queue_soft_limit == 1u << 20);
    CHECK(cfg.send_queue_hard_limit == 64u << 20);
    CHECK(cfg.send_queue_low_water == 256u << 10);
    CHECK(cfg.slow_consumer == WSQ_SLOW_CONSUMER_REJECT);
    CHECK(cfg.max_buffered_bytes == 1ull << 30);
    CHECK(cfg.event_queue_capacity == 65536);
    CHECK(cfg.handshake_timeout_ms == 10000);
    CHECK(cfg.idle_timeout_ms == 0);
    CHECK(cfg.ping_interval_ms == 0);
    CHECK(cfg.pong_timeout_ms == 10000);
    CHECK(cfg.close_timeout_ms == 5000);
    CHECK(cfg.failure_grace_ms == 250);
    CHECK(!cfg.manual_accept);
    CHECK(!cfg.deliver_ping_pong);
    CHECK(cfg.deflate == WSQ_DEFLATE_SHARED);
    CHECK(cfg.deflate_window_bits == 15);
    CHECK(cfg.deflate_min_size == 64);
    CHECK(cfg.deflate_level == 6);
    CHECK(cfg.subprotocols == NULL && cfg.allowed_origins == NULL && cfg.static_dir == NULL);
    const char *v = wsq_version();
    unsigned major, minor, patch;
    CHECK(v && sscanf(v, "%u.%u.%u", &major, &minor, &patch) == 3);
}

static void start_on_port_zero_reports_the_bound_port_and_address(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    char addr[64], want[64];
    snprintf(want, sizeof want, "127.0.0.1:%u", (unsigned)fx.port);
    CHECK_RC(wsq_server_local_addr(fx.srv, 0, addr, sizeof addr), WSQ_OK);
    CHECK(strcmp(addr, want) == 0);
    /* Exactly strlen + 1 bytes is enough; one fewer is refused. */
    size_t need = strlen(want) + 1;
    memset(addr, 'x', sizeof addr);
    CHECK_RC(wsq_server_local_addr(fx.srv, 0, addr, need), WSQ_OK);
    CHECK(strcmp(addr, want) == 0);
    CHECK_FAILS(wsq_server_local_addr(fx.srv, 0, addr, need - 1), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_server_local_addr(fx.srv, 1, addr, sizeof addr), WSQ_ERR_INVALID_ARGUMENT);
    /* The port really accepts WebSocket clients. */
    client_t c;
    CHECK(fx_connect(&fx, "/", NULL, &c));
    close(c.fd);
    fx_finish(&fx);
}

static void every_listen_address_is_bound_and_reported_in_order(void)
{
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    cfg.listen = "127.0.0.1:0, 127.0.0.1:0";
    cfg.reactor_threads = 1;
    wsq_server_t *srv = NULL;
    REQUIRE(wsq_server_start(&cfg, &srv) == WSQ_OK);
    char a0[64], a1[64];
    CHECK_RC(wsq_server_local_addr(srv, 0, a0, sizeof a0), WSQ_OK);
    CHECK_RC(wsq_server_local_addr(srv, 1, a1, sizeof a1), WSQ_OK);
    CHECK_RC(wsq_server_local_addr(srv, 2, a1, sizeof a1), WSQ_ERR_INVALID_ARGUMENT);
    CHECK(strcmp(a0, a1) != 0);
    uint16_t port = 0;
    CHECK_RC(wsq_server_port(srv, &port), WSQ_OK);
    unsigned p0 = 0, p1 = 0;
    CHECK(sscanf(a0, "127.0.0.1:%u", &p0) == 1 && p0 == port);
    CHECK(sscanf(a1, "127.0.0.1:%u", &p1) == 1 && p1 != 0);
    int fd = wsc_open((uint16_t)p1, "/second", NULL); /* the second listener works too */
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    wsq_server_free(srv);
}

static void second_server_on_the_same_port_fails_with_io_error(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%u", (unsigned)fx.port);
    cfg.listen = listen;
    wsq_server_t *dup = (wsq_server_t *)&cfg; /* must be overwritten with NULL */
    CHECK_FAILS(wsq_server_start(&cfg, &dup), WSQ_ERR_IO);
    CHECK(dup == NULL);
    /* The first server is unaffected. */
    client_t c;
    CHECK(fx_connect(&fx, "/", NULL, &c));
    close(c.fd);
    fx_finish(&fx);
}

static void event_fd_is_readable_exactly_while_events_wait(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    int efd = -1;
    CHECK_RC(wsq_server_event_fd(fx.srv, &efd), WSQ_OK);
    REQUIRE(efd >= 0);
    int efd2 = -2;
    CHECK_RC(wsq_server_event_fd(fx.srv, &efd2), WSQ_OK);
    CHECK(efd2 == efd); /* one descriptor for the server's life */
    CHECK(!fd_readable(efd));

    int c = wsc_open(fx.port, "/", NULL);
    REQUIRE(c >= 0);
    CHECK(fd_wait_readable(efd, 10000)); /* the open event */
    CHECK(fd_readable(efd));             /* level-style: stays readable until polled */
    /* Queue a second event before polling, so one poll of capacity 1 leaves one. */
    CHECK(wsc_send_frame(c, true, WSC_TEXT, "m", 1) == 0);
    wsq_stats_t st = {0};
    for (int i = 0; i < 1000; i++) { /* hang guard, not a timing assertion */
        wsq_stats(fx.srv, &st);
        if (st.event_queue_depth >= 2) break;
        usleep(10000);
    }
    CHECK(st.event_queue_depth == 2);
    wsq_event_t ev[2];
    size_t n = 0;
    CHECK_RC(wsq_poll(fx.srv, ev, 1, 0, &n), WSQ_OK);
    CHECK(n == 1 && ev[0].event_type == WSQ_EVENT_OPEN);
    wsq_events_release(ev, n);
    CHECK(fd_readable(efd)); /* the message still waits */
    CHECK_RC(wsq_poll(fx.srv, ev, 2, 0, &n), WSQ_OK);
    CHECK(n == 1 && ev[0].event_type == WSQ_EVENT_MESSAGE);
    wsq_events_release(ev, n);
    CHECK(!fd_readable(efd)); /* nothing waits */
    CHECK_RC(wsq_poll(fx.srv, ev, 2, 0, &n), WSQ_OK);
    CHECK(n == 0);
    CHECK(!fd_readable(efd));
    /* And it becomes readable again with the next event. */
    close(c);
    CHECK(fd_wait_readable(efd, 10000));
    wsq_event_t close_ev;
    CHECK(fx_wait(&fx, WSQ_EVENT_CLOSE, 0, &close_ev));
    wsq_events_release(&close_ev, 1);
    CHECK(!fd_readable(efd));
    fx_finish(&fx);
}

static void stop_is_idempotent_and_then_poll_never_blocks(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    client_t c;
    REQUIRE(fx_connect(&fx, "/", NULL, &c));
    /* The client does not answer the close, so stop waits out its timeout. */
    CHECK_RC(wsq_server_stop(fx.srv, 300), WSQ_OK);
    CHECK_RC(wsq_server_stop(fx.srv, 300), WSQ_OK);
    /* The client got a going-away close (§7.4.1: 1001) and may answer. */
    wsc_frame_t f;
    int op = wsc_read_frame(c.fd, &f);
    CHECK(op == WSC_CLOSE && wsc_close_code(&f) == 1001);
    if (op >= 0) wsc_frame_free(&f);
    /* The close event is still there to poll; then poll returns 0 at once, even with
     * an infinite timeout (the hang guard turns a block into a failure). */
    wsq_event_t ev;
    CHECK(fx_wait(&fx, WSQ_EVENT_CLOSE, c.id, &ev));
    wsq_events_release(&ev, 1);
    wsq_event_t evs[4];
    size_t n = 99;
    CHECK_RC(wsq_poll(fx.srv, evs, 4, -1, &n), WSQ_OK);
    CHECK(n == 0);
    /* Read-only calls still work on a stopped (not freed) server. */
    uint16_t port = 0;
    CHECK_RC(wsq_server_port(fx.srv, &port), WSQ_OK);
    CHECK(port == fx.port);
    wsq_stats_t st;
    CHECK_RC(wsq_stats(fx.srv, &st), WSQ_OK);
    CHECK(st.connections == 0);
    CHECK_FAILS(wsq_send(fx.srv, c.id, WSQ_MESSAGE_TEXT, "x", 1), WSQ_ERR_STOPPED);
    CHECK_FAILS(wsq_broadcast(fx.srv, WSQ_MESSAGE_TEXT, "x", 1, NULL, 0, NULL), WSQ_ERR_STOPPED);
    close(c.fd);
    fx_finish(&fx);
}

static void stop_releases_the_listening_port(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    CHECK_RC(wsq_server_stop(fx.srv, 0), WSQ_OK);
    /* "Stops accepting": a new client is refused at once rather than left waiting in
     * the backlog of a listener nobody accepts on... */
    int fd = wsc_tcp_connect(fx.port);
    CHECK(fd < 0);
    if (fd >= 0) close(fd);
    /* ...and the port can be reused by a new server before the old one is freed. */
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%u", (unsigned)fx.port);
    cfg.listen = listen;
    wsq_server_t *again = NULL;
    CHECK_RC(wsq_server_start(&cfg, &again), WSQ_OK);
    wsq_server_free(again);
    fx_finish(&fx);
}

struct blocked_poll {
    wsq_server_t *srv;
    wsq_result_t rc;
    size_t n;
    int entered;
};

static void *poll_forever(void *arg)
{
    struct blocked_poll *b = arg;
    wsq_event_t evs[4];
    __atomic_store_n(&b->entered, 1, __ATOMIC_RELEASE);
    b->rc = wsq_poll(b->srv, evs, 4, -1, &b->n);
    if (b->rc == WSQ_OK) wsq_events_release(evs, b->n);
    return NULL;
}

static void stop_wakes_a_thread_blocked_in_poll(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    struct blocked_poll b = {fx.srv, WSQ_ERR_PANIC, 99, 0};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, poll_forever, &b) == 0);
    while (!__atomic_load_n(&b.entered, __ATOMIC_ACQUIRE)) usleep(1000);
    usleep(50000); /* let it block (if it does not, the test still checks the result) */
    CHECK_RC(wsq_server_stop(fx.srv, 0), WSQ_OK);
    pthread_join(t, NULL); /* the hang guard catches a poll that never returns */
    CHECK(b.rc == WSQ_OK && b.n == 0);
    fx_finish(&fx);
}

static void free_wakes_a_thread_blocked_in_poll(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    struct blocked_poll b = {fx.srv, WSQ_ERR_PANIC, 99, 0};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, poll_forever, &b) == 0);
    while (!__atomic_load_n(&b.entered, __ATOMIC_ACQUIRE)) usleep(1000);
    usleep(50000);
    wsq_server_free(fx.srv);
    pthread_join(t, NULL);
    /* The header: "Safe while other threads are blocked in wsq_poll (they return 0
     * events)". A poll that had not yet entered may see the freed handle instead. */
    CHECK((b.rc == WSQ_OK && b.n == 0) || b.rc == WSQ_ERR_BAD_HANDLE);
    fx.srv = NULL;
    fx_finish(&fx);
}

static void events_polled_before_free_stay_valid_until_released(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    int c = wsc_open(fx.port, "/kept?after=free", "X-Kept: yes\r\n");
    REQUIRE(c >= 0);
    wsq_event_t ev;
    REQUIRE(fx_wait(&fx, WSQ_EVENT_OPEN, 0, &ev));
    wsq_server_free(fx.srv);
    fx.srv = NULL;
    /* AddressSanitizer turns any use of freed storage here into a failure. */
    CHECK(strcmp(ev.path, "/kept?after=free") == 0);
    bool saw = false;
    for (size_t i = 0; i < ev.header_count; i++)
        saw |= strcmp(ev.headers[i].name, "X-Kept") == 0 && strcmp(ev.headers[i].value, "yes") == 0;
    CHECK(saw);
    wsq_events_release(&ev, 1);
    close(c);
    fx_finish(&fx);
}

static void free_with_open_connections_closes_their_sockets(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    client_t a, b;
    REQUIRE(fx_connect(&fx, "/", NULL, &a));
    REQUIRE(fx_connect(&fx, "/", NULL, &b));
    CHECK_RC(wsq_send(fx.srv, a.id, WSQ_MESSAGE_TEXT, "x", 1), WSQ_OK);
    wsq_server_free(fx.srv);
    fx.srv = NULL;
    CHECK(wsc_wait_eof(a.fd)); /* whatever was queued, the socket ends */
    CHECK(wsc_wait_eof(b.fd));
    close(a.fd);
    close(b.fd);
    fx_finish(&fx);
}

TEST_MAIN(
    TEST(config_init_fills_the_documented_defaults),
    TEST(start_on_port_zero_reports_the_bound_port_and_address),
    TEST(every_listen_address_is_bound_and_reported_in_order),
    TEST(second_server_on_the_same_port_fails_with_io_error),
    TEST(event_fd_is_readable_exactly_while_events_wait),
    TEST(stop_is_idempotent_and_then_poll_never_blocks),
    TEST(stop_releases_the_listening_port),
    TEST(stop_wakes_a_thread_blocked_in_poll),
    TEST(free_wakes_a_thread_blocked_in_poll),
    TEST(events_polled_before_free_stay_valid_until_released),
    TEST(free_with_open_connections_closes_their_sockets),
)
