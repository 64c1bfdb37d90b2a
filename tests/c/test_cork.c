/* Corked sends: between wsq_poll and wsq_events_release (or the thread's next
 * wsq_poll), and between wsq_cork and wsq_uncork, the small messages a thread sends are
 * accepted and queued, not written; the uncork writes each connection's queue at once.
 *
 * "Not written" is checked without timing: a loopback write lands in the client's
 * receive buffer before the send call returns, so a corked frame that had been written
 * would already be readable; the buffered amount also counts the corked bytes exactly.
 * Every frame carries its position, so order and loss are checked when it is read. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "support.h"
#include "wsclient.h"

/* A short text frame from the server: 2-byte header + payload. */
#define SMALL_FRAME(len) ((len) + 2)

/* The client sends one message and the server polls it: the calling thread is then
 * corked until it releases *ev. */
static bool poll_one_message(fixture_t *fx, client_t *c, wsq_event_t *ev)
{
    if (wsc_send_frame(c->fd, true, WSC_TEXT, "go", 2) != 0) return false;
    for (int i = 0; i < 100; i++) {
        size_t n = 0;
        if (wsq_poll(fx->srv, ev, 1, 100, &n) != WSQ_OK) return false;
        if (n == 1) return ev->event_type == WSQ_EVENT_MESSAGE && ev->conn == c->id;
    }
    return false;
}

/* A server, a client, and a message from it just polled: the calling thread is corked
 * until it releases *ev (or polls again). */
static bool start_corked_by_a_poll(fixture_t *fx, client_t *c, wsq_event_t *ev)
{
    return fx_start(fx, NULL) && fx_connect(fx, "/", NULL, c) && poll_one_message(fx, c, ev);
}

/* Reads the next frame and checks it is text `want`. */
static bool read_text(int fd, const char *want)
{
    wsc_frame_t f;
    int op = wsc_read_frame(fd, &f);
    if (op < 0) {
        fprintf(stderr, "  expected \"%s\", got no frame (%d)\n", want, op);
        return false;
    }
    bool ok = op == WSC_TEXT && f.len == strlen(want) && memcmp(f.data, want, f.len) == 0;
    if (!ok) fprintf(stderr, "  expected \"%s\", got opcode %d len %zu\n", want, op, f.len);
    wsc_frame_free(&f);
    return ok;
}

static uint64_t buffered(const fixture_t *fx, uint64_t conn)
{
    uint64_t b = UINT64_MAX;
    CHECK_RC(wsq_buffered_amount(fx->srv, conn, &b), WSQ_OK);
    return b;
}

static void sends_during_a_poll_batch_wait_for_its_release_then_arrive_in_order(void)
{
    fixture_t fx;
    client_t c;
    wsq_event_t ev;
    REQUIRE(start_corked_by_a_poll(&fx, &c, &ev));
    char msg[32];
    for (int i = 0; i < 16; i++) {
        snprintf(msg, sizeof msg, "reply-%02d", i & 0x3f);
        CHECK_RC(wsq_send(fx.srv, c.id, WSQ_MESSAGE_TEXT, msg, strlen(msg)), WSQ_OK);
    }
    CHECK(!fd_readable(c.fd));
    CHECK(buffered(&fx, c.id) == 16 * SMALL_FRAME(8));
    wsq_events_release(&ev, 1);
    CHECK(buffered(&fx, c.id) == 0);
    for (int i = 0; i < 16; i++) {
        snprintf(msg, sizeof msg, "reply-%02d", i & 0x3f);
        CHECK(read_text(c.fd, msg));
    }
    close(c.fd);
    fx_finish(&fx);
}

static void the_next_poll_writes_what_the_previous_batch_corked(void)
{
    fixture_t fx;
    client_t c;
    wsq_event_t ev;
    REQUIRE(start_corked_by_a_poll(&fx, &c, &ev));
    CHECK_RC(wsq_send(fx.srv, c.id, WSQ_MESSAGE_TEXT, "one", 3), WSQ_OK);
    CHECK(!fd_readable(c.fd));
    wsq_event_t more[4];
    size_t n = 0;
    CHECK_RC(wsq_poll(fx.srv, more, 4, 0, &n), WSQ_OK);
    CHECK(read_text(c.fd, "one"));
    wsq_events_release(more, n);
    wsq_events_release(&ev, 1);
    close(c.fd);
    fx_finish(&fx);
}

struct other_sender {
    const fixture_t *fx;
    uint64_t conn;
    wsq_result_t rc;
};

static void *send_from_another_thread(void *arg)
{
    struct other_sender *o = arg;
    o->rc = wsq_send(o->fx->srv, o->conn, WSQ_MESSAGE_TEXT, "from-other-thread", 17);
    return NULL;
}

static void a_send_from_another_thread_goes_out_at_once_after_what_the_cork_queued(void)
{
    fixture_t fx;
    client_t c;
    wsq_event_t ev;
    REQUIRE(start_corked_by_a_poll(&fx, &c, &ev));
    CHECK_RC(wsq_send(fx.srv, c.id, WSQ_MESSAGE_TEXT, "corked-1", 8), WSQ_OK);
    CHECK_RC(wsq_send(fx.srv, c.id, WSQ_MESSAGE_TEXT, "corked-2", 8), WSQ_OK);
    CHECK(!fd_readable(c.fd));
    struct other_sender o = {&fx, c.id, WSQ_ERR_PANIC};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, send_from_another_thread, &o) == 0);
    pthread_join(t, NULL);
    CHECK_RC(o.rc, WSQ_OK);
    /* Still inside the batch: the other thread's send did not wait for the release. */
    CHECK(read_text(c.fd, "corked-1"));
    CHECK(read_text(c.fd, "corked-2"));
    CHECK(read_text(c.fd, "from-other-thread"));
    CHECK(buffered(&fx, c.id) == 0);
    wsq_events_release(&ev, 1);
    CHECK(!fd_wait_readable(c.fd, 50)); /* nothing was written twice */
    close(c.fd);
    fx_finish(&fx);
}

static void a_message_over_16_KiB_is_written_at_once_after_what_the_cork_queued(void)
{
    fixture_t fx;
    client_t c;
    wsq_event_t ev;
    REQUIRE(start_corked_by_a_poll(&fx, &c, &ev));
    static char big[16 * 1024 + 1];
    memset(big, 'b', sizeof big);
    CHECK_RC(wsq_send(fx.srv, c.id, WSQ_MESSAGE_TEXT, "small", 5), WSQ_OK);
    CHECK_RC(wsq_send(fx.srv, c.id, WSQ_MESSAGE_BINARY, big, sizeof big), WSQ_OK);
    CHECK(read_text(c.fd, "small"));
    wsc_frame_t f;
    CHECK(wsc_read_frame(c.fd, &f) == WSC_BINARY);
    CHECK(f.len == sizeof big && memcmp(f.data, big, sizeof big) == 0);
    wsc_frame_free(&f);
    wsq_events_release(&ev, 1);
    close(c.fd);
    fx_finish(&fx);
}

static void wsq_cork_and_wsq_uncork_hold_and_write_sends_outside_a_poll_batch(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    client_t c;
    REQUIRE(fx_connect(&fx, "/", NULL, &c));
    CHECK_RC(wsq_uncork(fx.srv), WSQ_OK); /* nothing corked: harmless */
    CHECK_RC(wsq_send(fx.srv, c.id, WSQ_MESSAGE_TEXT, "direct", 6), WSQ_OK);
    CHECK(read_text(c.fd, "direct"));
    CHECK_RC(wsq_cork(fx.srv), WSQ_OK);
    CHECK_RC(wsq_cork(fx.srv), WSQ_OK); /* corking twice is one cork */
    CHECK_RC(wsq_send(fx.srv, c.id, WSQ_MESSAGE_TEXT, "held-1", 6), WSQ_OK);
    wsq_send_item_t item = {c.id, WSQ_MESSAGE_TEXT, 0, "held-2", 6};
    CHECK_RC(wsq_send_batch(fx.srv, &item, 1), WSQ_OK);
    CHECK_RC(item.result, WSQ_OK);
    CHECK(!fd_readable(c.fd));
    CHECK(buffered(&fx, c.id) == 2 * SMALL_FRAME(6));
    CHECK_RC(wsq_uncork(fx.srv), WSQ_OK);
    CHECK(read_text(c.fd, "held-1"));
    CHECK(read_text(c.fd, "held-2"));
    /* After the uncork, sends are direct again. */
    CHECK_RC(wsq_send(fx.srv, c.id, WSQ_MESSAGE_TEXT, "after", 5), WSQ_OK);
    CHECK(read_text(c.fd, "after"));
    close(c.fd);
    fx_finish(&fx);
}

static void broadcast_while_corked_reaches_everyone_at_the_uncork(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    client_t a, b;
    REQUIRE(fx_connect(&fx, "/", NULL, &a));
    REQUIRE(fx_connect(&fx, "/", NULL, &b));
    CHECK_RC(wsq_cork(fx.srv), WSQ_OK);
    size_t delivered = 0;
    CHECK_RC(wsq_broadcast(fx.srv, WSQ_MESSAGE_TEXT, "to-all", 6, NULL, 0, &delivered), WSQ_OK);
    CHECK(delivered == 2);
    CHECK_RC(wsq_send(fx.srv, a.id, WSQ_MESSAGE_TEXT, "to-a", 4), WSQ_OK);
    CHECK(!fd_readable(a.fd) && !fd_readable(b.fd));
    CHECK_RC(wsq_uncork(fx.srv), WSQ_OK);
    CHECK(read_text(a.fd, "to-all"));
    CHECK(read_text(a.fd, "to-a"));
    CHECK(read_text(b.fd, "to-all"));
    close(a.fd);
    close(b.fd);
    fx_finish(&fx);
}

static void close_while_corked_goes_out_after_the_corked_messages(void)
{
    fixture_t fx;
    client_t c;
    wsq_event_t ev;
    REQUIRE(start_corked_by_a_poll(&fx, &c, &ev));
    CHECK_RC(wsq_send(fx.srv, c.id, WSQ_MESSAGE_TEXT, "last words", 10), WSQ_OK);
    CHECK_RC(wsq_close(fx.srv, c.id, 1000, "bye", 3), WSQ_OK);
    CHECK(read_text(c.fd, "last words"));
    wsc_frame_t f;
    CHECK(wsc_read_frame(c.fd, &f) == WSC_CLOSE);
    CHECK(wsc_close_code(&f) == 1000);
    wsc_frame_free(&f);
    wsq_events_release(&ev, 1);
    CHECK(wsc_send_close(c.fd, 1000, "") == 0);
    wsq_event_t closed;
    CHECK(fx_wait(&fx, WSQ_EVENT_CLOSE, c.id, &closed));
    CHECK(closed.clean && closed.unsent_messages == 0);
    wsq_events_release(&closed, 1);
    close(c.fd);
    fx_finish(&fx);
}

struct close_waiter {
    fixture_t *fx;
    uint64_t conn;
    bool got;
    wsq_event_t ev;
};

/* Polls on its own thread, so the test's thread keeps its cork meanwhile. */
static void *wait_for_close(void *arg)
{
    struct close_waiter *w = arg;
    w->got = fx_wait(w->fx, WSQ_EVENT_CLOSE, w->conn, &w->ev);
    return NULL;
}

static void a_peer_gone_while_corked_gets_its_close_event_with_the_corked_messages_unsent(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    client_t c;
    REQUIRE(fx_connect(&fx, "/", NULL, &c));
    CHECK_RC(wsq_cork(fx.srv), WSQ_OK);
    CHECK_RC(wsq_send(fx.srv, c.id, WSQ_MESSAGE_TEXT, "never", 5), WSQ_OK);
    CHECK_RC(wsq_send(fx.srv, c.id, WSQ_MESSAGE_TEXT, "read", 4), WSQ_OK);
    close(c.fd);
    /* The reactor sees the EOF and tears the connection down with the frames queued. */
    struct close_waiter w = {&fx, c.id, false, {0}};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, wait_for_close, &w) == 0);
    pthread_join(t, NULL);
    CHECK(w.got);
    if (w.got) {
        CHECK(!w.ev.clean && w.ev.unsent_messages == 2);
        wsq_events_release(&w.ev, 1);
    }
    CHECK_RC(wsq_uncork(fx.srv), WSQ_OK); /* the connection is gone: nothing to write */
    fx_finish(&fx);
}

TEST_MAIN(
    TEST(sends_during_a_poll_batch_wait_for_its_release_then_arrive_in_order),
    TEST(the_next_poll_writes_what_the_previous_batch_corked),
    TEST(a_send_from_another_thread_goes_out_at_once_after_what_the_cork_queued),
    TEST(a_message_over_16_KiB_is_written_at_once_after_what_the_cork_queued),
    TEST(wsq_cork_and_wsq_uncork_hold_and_write_sends_outside_a_poll_batch),
    TEST(broadcast_while_corked_reaches_everyone_at_the_uncork),
    TEST(close_while_corked_goes_out_after_the_corked_messages),
    TEST(a_peer_gone_while_corked_gets_its_close_event_with_the_corked_messages_unsent),
)
