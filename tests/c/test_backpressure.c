/* The send side of ABI v2: a send accepts and reports (WSQ_OK, or WSQ_BACKPRESSURE over
 * send_queue_soft_limit), refuses only past send_queue_hard_limit or the server-wide
 * max_buffered_bytes (WSQ_ERR_QUEUE_FULL), and WSQ_EVENT_DRAIN follows once the
 * buffered amount is back at send_queue_low_water; wsq_buffered_amount reads it, and
 * wsq_send_batch sends many messages in one call, each with its own result.
 *
 * The clients here do not read until told to, so what the server cannot write stays in
 * its queue. The kernel's socket buffers take an unknown amount first; where a test
 * needs exact numbers it waits (with a guard) until the buffered amount has settled,
 * i.e. until the kernel takes no more, and only then measures. Every message carries a
 * sequence number, so loss, duplication and reordering are all caught when the client
 * finally reads. */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "support.h"
#include "wsclient.h"

enum {
    CHUNK = 16 * 1024,
    /* A CHUNK-byte binary frame from the server: 2-byte header + 16-bit length. */
    FRAME = CHUNK + 4,
    /* Bounds the filling loops (far more than any kernel buffers plus the limits). */
    MAX_SENDS = 20000,
};

/* One client and the sequence numbers of the chunks sent to it and read by it. */
typedef struct {
    client_t c;
    uint32_t sent; /* chunks accepted (WSQ_OK or WSQ_BACKPRESSURE) */
    uint32_t read; /* chunks read back, in order */
} peer_t;

static void make_chunk(uint32_t seq, uint8_t *buf)
{
    memset(buf, (int)((seq * 31u + 7u) & 0xffu), CHUNK);
    buf[0] = (uint8_t)(seq >> 24);
    buf[1] = (uint8_t)(seq >> 16);
    buf[2] = (uint8_t)(seq >> 8);
    buf[3] = (uint8_t)seq;
}

static bool accepted(wsq_result_t rc)
{
    return rc == WSQ_OK || rc == WSQ_BACKPRESSURE;
}

/* Sends the peer's next chunk; counts it if the send accepted it. */
static wsq_result_t send_chunk(const fixture_t *fx, peer_t *p)
{
    uint8_t buf[CHUNK];
    make_chunk(p->sent, buf);
    wsq_result_t rc = wsq_send(fx->srv, p->c.id, WSQ_MESSAGE_BINARY, buf, sizeof buf);
    if (accepted(rc)) p->sent++;
    return rc;
}

/* Reads the peer's next chunk and checks it is the one expected, intact. */
static bool read_chunk(peer_t *p)
{
    uint8_t want[CHUNK];
    make_chunk(p->read, want);
    wsc_frame_t f;
    int op = wsc_read_frame(p->c.fd, &f);
    if (op < 0) {
        fprintf(stderr, "  chunk %u: no frame (%d)\n", p->read, op);
        return false;
    }
    bool ok = op == WSC_BINARY && f.fin && f.len == CHUNK && memcmp(f.data, want, CHUNK) == 0;
    if (!ok) {
        uint32_t seq = f.len >= 4 ? (uint32_t)f.data[0] << 24 | (uint32_t)f.data[1] << 16 |
                                        (uint32_t)f.data[2] << 8 | f.data[3]
                                  : 0;
        fprintf(stderr, "  chunk %u: got opcode %d len %zu seq %u\n", p->read, op, f.len, seq);
    }
    wsc_frame_free(&f);
    p->read++;
    return ok;
}

/* Reads every chunk accepted for the peer and not yet read. */
static bool read_all_chunks(peer_t *p)
{
    while (p->read < p->sent)
        if (!read_chunk(p)) return false;
    return true;
}

static uint64_t buffered(const fixture_t *fx, uint64_t id)
{
    uint64_t b = UINT64_MAX;
    wsq_result_t rc = wsq_buffered_amount(fx->srv, id, &b);
    if (rc != WSQ_OK) {
        fprintf(stderr, "  wsq_buffered_amount: %s (%s)\n", wsq_strerror(rc), wsq_last_error());
        check_failures++;
    }
    return b;
}

/* The buffered amount once the kernel takes no more of it: unchanged over several
 * samples (the client does not read, so it only falls while the socket buffers fill). */
static uint64_t settled_buffered(const fixture_t *fx, uint64_t id)
{
    uint64_t last = buffered(fx, id);
    for (int same = 0, i = 0; same < 5 && i < 500; i++) {
        usleep(20000);
        uint64_t b = buffered(fx, id);
        same = b == last ? same + 1 : 0;
        last = b;
    }
    return last;
}

static bool read_data(int fd, int opcode, const void *data, size_t len)
{
    wsc_frame_t f;
    int op = wsc_read_frame(fd, &f);
    if (op < 0) return false;
    bool ok = op == opcode && f.fin && f.len == len && (len == 0 || memcmp(f.data, data, len) == 0);
    if (!ok) fprintf(stderr, "  got frame opcode %d len %zu, wanted %d len %zu\n", op, f.len, opcode, len);
    wsc_frame_free(&f);
    return ok;
}

static void set_limits(wsq_config_t *cfg, uint64_t soft, uint64_t hard, uint64_t low)
{
    wsq_config_init(cfg);
    cfg->send_queue_soft_limit = soft;
    cfg->send_queue_hard_limit = hard;
    cfg->send_queue_low_water = low;
}

/* ---- soft limit, hard limit, drain ------------------------------------------------------ */

static void backpressure_past_the_soft_limit_then_accepted_to_the_hard_limit_then_drain(void)
{
    enum { SOFT = 64 * 1024, HARD = 512 * 1024, LOW = 16 * 1024 };
    wsq_config_t cfg;
    set_limits(&cfg, SOFT, HARD, LOW);
    fixture_t fx;
    REQUIRE(fx_start(&fx, &cfg));
    peer_t p = {0};
    REQUIRE(fx_connect(&fx, "/", NULL, &p.c));
    CHECK(buffered(&fx, p.c.id) == 0);

    /* Until the buffered amount passes the soft limit, plain WSQ_OK... */
    wsq_result_t rc = WSQ_OK;
    while (p.sent < MAX_SENDS && (rc = send_chunk(&fx, &p)) == WSQ_OK) {
    }
    /* ...and the first send that takes it over is accepted and reports it. */
    REQUIRE(rc == WSQ_BACKPRESSURE);
    uint64_t b = buffered(&fx, p.c.id);
    CHECK(b > SOFT);          /* reported only once over the soft limit */
    CHECK(b <= SOFT + FRAME); /* and at the first send over it, not later */
    wsq_stats_t st;
    CHECK_RC(wsq_stats(fx.srv, &st), WSQ_OK);
    CHECK(st.backpressure_reports == 1 && st.queue_full == 0);

    /* Every further send is accepted and reports backpressure, up to the hard limit. */
    uint32_t reports = 1;
    while (p.sent < MAX_SENDS && (rc = send_chunk(&fx, &p)) == WSQ_BACKPRESSURE) reports++;
    CHECK(rc == WSQ_ERR_QUEUE_FULL);
    b = buffered(&fx, p.c.id);
    CHECK(b <= HARD && b + FRAME > HARD);
    CHECK(reports >= (HARD - SOFT) / FRAME - 1); /* accepted all the way, not refused early */
    CHECK_RC(wsq_stats(fx.srv, &st), WSQ_OK);
    CHECK(st.backpressure_reports == reports);
    CHECK(st.queue_full == 1 && st.budget_refusals == 0);
    CHECK(st.messages_out == p.sent);

    /* No drain while the client reads nothing. */
    fx_pump(&fx, 100);
    CHECK(fx_count(&fx, WSQ_EVENT_DRAIN, 0) == 0);

    /* The client reads: one drain, once the buffered amount is down at low water (it
     * only falls now, so it is still at most low water when the event is seen). */
    bool drained = false, intact = true;
    while (p.read < p.sent && intact) {
        fx_pump(&fx, 0);
        if (!drained && fx_count(&fx, WSQ_EVENT_DRAIN, p.c.id) > 0) {
            drained = true;
            uint64_t at = buffered(&fx, p.c.id);
            if (at > LOW) {
                fprintf(stderr, "  drain seen with %llu bytes still buffered\n",
                        (unsigned long long)at);
                check_failures++;
            }
        }
        intact = read_chunk(&p);
    }
    CHECK(intact && p.read == p.sent);
    wsq_event_t ev;
    REQUIRE(fx_wait(&fx, WSQ_EVENT_DRAIN, p.c.id, &ev));
    CHECK(ev.data == NULL && ev.len == 0);
    wsq_events_release(&ev, 1);
    fx_pump(&fx, 100);
    CHECK(fx_count(&fx, WSQ_EVENT_DRAIN, 0) == 0); /* one drain for the episode */
    CHECK(buffered(&fx, p.c.id) == 0);

    /* Below the soft limit again: plain WSQ_OK, and nothing was lost on the way. */
    CHECK_RC(send_chunk(&fx, &p), WSQ_OK);
    CHECK(read_chunk(&p));
    close(p.c.fd);
    fx_finish(&fx);
}

/* send_queue_soft_limit: "(and the connection is not read until WSQ_EVENT_DRAIN)": a
 * peer that does not read cannot make the server buffer replies to what it keeps
 * sending. Its messages wait in TCP, and arrive, in order, once it has drained. */
static void connection_over_its_soft_limit_is_not_read_until_it_drains(void)
{
    enum { SOFT = 64 * 1024, HARD = 1024 * 1024, LOW = 16 * 1024 };
    wsq_config_t cfg;
    set_limits(&cfg, SOFT, HARD, LOW);
    fixture_t fx;
    REQUIRE(fx_start(&fx, &cfg));
    peer_t p = {0};
    REQUIRE(fx_connect(&fx, "/", NULL, &p.c));
    wsq_result_t rc = WSQ_OK;
    while (p.sent < MAX_SENDS && (rc = send_chunk(&fx, &p)) == WSQ_OK) {
    }
    REQUIRE(rc == WSQ_BACKPRESSURE);
    /* The client talks but does not read. */
    char text[16];
    for (int i = 0; i < 10; i++) {
        int len = snprintf(text, sizeof text, "m%d", i);
        CHECK(wsc_send_frame(p.c.fd, true, WSC_TEXT, text, (size_t)len) == 0);
    }
    /* A server that kept reading would report them by now (a bounded wait for
     * something that must not happen; the rest of the test does not depend on it). */
    for (int i = 0; i < 5; i++) fx_pump(&fx, 100);
    size_t early = fx_count(&fx, WSQ_EVENT_MESSAGE, p.c.id);
    if (early) {
        fprintf(stderr, "  %zu messages read from a connection over its soft limit\n", early);
        check_failures++;
    }
    /* Once it reads, the drain comes, then its messages, all of them, in order. */
    CHECK(read_all_chunks(&p));
    wsq_event_t ev;
    CHECK(fx_wait(&fx, WSQ_EVENT_DRAIN, p.c.id, &ev));
    wsq_events_release(&ev, 1);
    for (int i = 0; i < 10; i++) {
        int len = snprintf(text, sizeof text, "m%d", i);
        if (!fx_wait(&fx, WSQ_EVENT_MESSAGE, p.c.id, &ev)) {
            CHECK(!"a message sent while over the soft limit was lost");
            break;
        }
        CHECK(ev.len == (size_t)len && memcmp(ev.data, text, ev.len) == 0);
        wsq_events_release(&ev, 1);
    }
    close(p.c.fd);
    fx_finish(&fx);
}

static void broadcast_reaches_a_connection_over_its_soft_limit_but_not_past_its_hard_limit(void)
{
    enum { SOFT = 64 * 1024, HARD = 256 * 1024, LOW = 16 * 1024 };
    wsq_config_t cfg;
    set_limits(&cfg, SOFT, HARD, LOW);
    fixture_t fx;
    REQUIRE(fx_start(&fx, &cfg));
    peer_t slow = {0};
    client_t fast;
    REQUIRE(fx_connect(&fx, "/", NULL, &slow.c));
    REQUIRE(fx_connect(&fx, "/", NULL, &fast));
    wsq_result_t rc = WSQ_OK;
    while (slow.sent < MAX_SENDS && (rc = send_chunk(&fx, &slow)) == WSQ_OK) {
    }
    REQUIRE(rc == WSQ_BACKPRESSURE);
    uint64_t before = settled_buffered(&fx, slow.c.id);
    REQUIRE(before > SOFT && before + 64 <= HARD);
    /* Over the soft limit: the broadcast still reaches it. */
    uint32_t before_text = slow.sent;
    size_t delivered = 0;
    CHECK_RC(wsq_broadcast(fx.srv, WSQ_MESSAGE_TEXT, "over soft", 9, NULL, 0, &delivered), WSQ_OK);
    CHECK(delivered == 2);
    CHECK(buffered(&fx, slow.c.id) > before);
    /* Fill it to the hard limit: the next broadcast skips it (and only it). */
    while (slow.sent < MAX_SENDS && (rc = send_chunk(&fx, &slow)) == WSQ_BACKPRESSURE) {
    }
    CHECK(rc == WSQ_ERR_QUEUE_FULL);
    static uint8_t big[CHUNK];
    CHECK_RC(wsq_broadcast(fx.srv, WSQ_MESSAGE_BINARY, big, sizeof big, NULL, 0, &delivered), WSQ_OK);
    CHECK(delivered == 1);
    /* The fast client got both; the slow one gets its chunks, the first broadcast in
     * its place, and not the second one; then its drain. */
    wsc_frame_t f;
    int op = wsc_read_frame(fast.fd, &f);
    CHECK(op == WSC_TEXT && f.len == 9 && memcmp(f.data, "over soft", 9) == 0);
    if (op >= 0) wsc_frame_free(&f);
    op = wsc_read_frame(fast.fd, &f);
    CHECK(op == WSC_BINARY && f.len == sizeof big);
    if (op >= 0) wsc_frame_free(&f);
    /* The chunks sent before the text, the text, then the chunks sent after it. */
    uint32_t total = slow.sent;
    slow.sent = before_text;
    CHECK(read_all_chunks(&slow));
    CHECK(read_data(slow.c.fd, WSC_TEXT, "over soft", 9));
    slow.sent = total;
    CHECK(read_all_chunks(&slow));
    wsq_event_t ev;
    CHECK(fx_wait(&fx, WSQ_EVENT_DRAIN, slow.c.id, &ev));
    wsq_events_release(&ev, 1);
    CHECK_RC(wsq_send(fx.srv, slow.c.id, WSQ_MESSAGE_TEXT, "end", 3), WSQ_OK);
    CHECK(read_data(slow.c.fd, WSC_TEXT, "end", 3)); /* not the skipped broadcast */
    close(fast.fd);
    close(slow.c.fd);
    fx_finish(&fx);
}

/* ---- wsq_buffered_amount ------------------------------------------------------------------- */

static void buffered_amount_grows_while_the_client_does_not_read_and_empties_when_it_does(void)
{
    enum { SOFT = 256 * 1024, HARD = 4 * 1024 * 1024, LOW = 64 * 1024, MORE = 8 };
    wsq_config_t cfg;
    set_limits(&cfg, SOFT, HARD, LOW);
    fixture_t fx;
    REQUIRE(fx_start(&fx, &cfg));
    peer_t p = {0};
    REQUIRE(fx_connect(&fx, "/", NULL, &p.c));
    CHECK(buffered(&fx, p.c.id) == 0); /* nothing sent yet */
    /* Fill the kernel's buffers until something stays queued, and let it settle. */
    wsq_result_t rc = WSQ_OK;
    while (p.sent < MAX_SENDS && buffered(&fx, p.c.id) == 0 && accepted(rc = send_chunk(&fx, &p))) {
    }
    REQUIRE(accepted(rc));
    uint64_t b0 = settled_buffered(&fx, p.c.id);
    REQUIRE(b0 > 0);
    /* Each further message adds its frame (payload plus a few header bytes). */
    uint64_t last = b0;
    for (int i = 0; i < MORE; i++) {
        CHECK(accepted(send_chunk(&fx, &p)));
        uint64_t b = buffered(&fx, p.c.id);
        if (b < last + CHUNK || b > last + CHUNK + 14) {
            fprintf(stderr, "  send %d of %d: buffered %llu -> %llu for a %d-byte message\n", i + 1,
                    MORE, (unsigned long long)last, (unsigned long long)b, CHUNK);
            check_failures++;
        }
        last = b;
    }
    /* The server-wide figure agrees (this is the only connection). */
    wsq_stats_t st;
    CHECK_RC(wsq_stats(fx.srv, &st), WSQ_OK);
    CHECK(st.send_queue_bytes == last);
    /* The client reads everything: the amount falls to 0. */
    CHECK(read_all_chunks(&p));
    uint64_t b = last;
    for (int i = 0; i < 500 && (b = buffered(&fx, p.c.id)) != 0; i++) usleep(20000);
    CHECK(b == 0);
    CHECK_RC(wsq_stats(fx.srv, &st), WSQ_OK);
    CHECK(st.send_queue_bytes == 0);
    close(p.c.fd);
    fx_finish(&fx);
}

static void buffered_amount_of_null_out_stale_or_unknown_ids_fails_and_writes_nothing(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    client_t c;
    REQUIRE(fx_connect(&fx, "/", NULL, &c));
    uint64_t b = 12345;
    CHECK_FAILS(wsq_buffered_amount(fx.srv, c.id, NULL), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_RC(wsq_buffered_amount(fx.srv, c.id, &b), WSQ_OK);
    CHECK(b == 0);
    /* Never issued. */
    const uint64_t never[] = {0, UINT64_MAX, c.id + 1000000};
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++) {
        b = 12345;
        CHECK_FAILS(wsq_buffered_amount(fx.srv, never[i], &b), WSQ_ERR_NOT_FOUND);
        CHECK(b == 12345); /* a failure did nothing */
    }
    /* Stale: after its close event. */
    close(c.fd);
    wsq_event_t ev;
    REQUIRE(fx_wait(&fx, WSQ_EVENT_CLOSE, c.id, &ev));
    wsq_events_release(&ev, 1);
    b = 12345;
    wsq_result_t rc = wsq_buffered_amount(fx.srv, c.id, &b);
    CHECK(rc == WSQ_ERR_NOT_FOUND || rc == WSQ_ERR_CLOSED);
    CHECK(b == 12345);
    /* A freed server. */
    client_t d;
    REQUIRE(fx_connect(&fx, "/", NULL, &d));
    wsq_server_t *srv = fx.srv;
    wsq_server_free(srv);
    fx.srv = NULL;
    CHECK_FAILS(wsq_buffered_amount(srv, d.id, &b), WSQ_ERR_BAD_HANDLE);
    CHECK(b == 12345);
    close(d.fd);
    fx_finish(&fx);
}

/* ---- wsq_send_batch ------------------------------------------------------------------------ */

#define UNWRITTEN 0xDEADBEEFu
#define GONE UINT32_MAX /* in a table of wanted results: WSQ_ERR_NOT_FOUND or WSQ_ERR_CLOSED */

static void send_batch_gives_every_item_its_own_result_and_sends_only_the_good_ones(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    client_t a, b, gone;
    REQUIRE(fx_connect(&fx, "/", NULL, &a));
    REQUIRE(fx_connect(&fx, "/", NULL, &b));
    REQUIRE(fx_connect(&fx, "/", NULL, &gone));
    close(gone.fd);
    wsq_event_t ev;
    REQUIRE(fx_wait(&fx, WSQ_EVENT_CLOSE, gone.id, &ev));
    wsq_events_release(&ev, 1);
    wsq_stats_t before, after;
    CHECK_RC(wsq_stats(fx.srv, &before), WSQ_OK);

    wsq_send_item_t items[] = {
        {a.id, WSQ_MESSAGE_TEXT, UNWRITTEN, "one", 3},
        {a.id, 7, UNWRITTEN, "bad kind", 8},
        {UINT64_MAX, WSQ_MESSAGE_TEXT, UNWRITTEN, "nobody", 6},
        {a.id, WSQ_MESSAGE_TEXT, UNWRITTEN, "\xff\xfe", 2}, /* not UTF-8 */
        {a.id, WSQ_MESSAGE_BINARY, UNWRITTEN, NULL, 5},     /* NULL with a length */
        {b.id, WSQ_MESSAGE_BINARY, UNWRITTEN, "two", 3},
        {a.id, WSQ_MESSAGE_TEXT, UNWRITTEN, NULL, 0},       /* empty is fine */
        {gone.id, WSQ_MESSAGE_TEXT, UNWRITTEN, "late", 4},
        {a.id, 0, UNWRITTEN, "kind 0", 6},
        {a.id, WSQ_MESSAGE_BINARY, UNWRITTEN, "three", 5},
    };
    const size_t n = sizeof items / sizeof items[0];
    CHECK_RC(wsq_send_batch(fx.srv, items, n), WSQ_OK);
    const uint32_t want[] = {
        WSQ_OK, WSQ_ERR_INVALID_ARGUMENT, WSQ_ERR_NOT_FOUND, WSQ_ERR_INVALID_ARGUMENT,
        WSQ_ERR_INVALID_ARGUMENT, WSQ_OK, WSQ_OK, GONE,
        WSQ_ERR_INVALID_ARGUMENT, WSQ_OK,
    };
    for (size_t i = 0; i < n; i++) {
        bool ok = want[i] != GONE ? items[i].result == want[i]
                                  : items[i].result == WSQ_ERR_NOT_FOUND || items[i].result == WSQ_ERR_CLOSED;
        if (!ok) {
            fprintf(stderr, "  item %zu: result %u (%s), wanted %u\n", i, items[i].result,
                    wsq_strerror(items[i].result), want[i]);
            check_failures++;
        }
    }
    /* Only the good items went out, each to its connection, in array order. */
    CHECK(read_data(a.fd, WSC_TEXT, "one", 3));
    CHECK(read_data(a.fd, WSC_TEXT, "", 0));
    CHECK(read_data(a.fd, WSC_BINARY, "three", 5));
    CHECK(read_data(b.fd, WSC_BINARY, "two", 3));
    /* ...and nothing else: the next frame each client sees is this marker. */
    CHECK_RC(wsq_send(fx.srv, a.id, WSQ_MESSAGE_TEXT, "end", 3), WSQ_OK);
    CHECK_RC(wsq_send(fx.srv, b.id, WSQ_MESSAGE_TEXT, "end", 3), WSQ_OK);
    CHECK(read_data(a.fd, WSC_TEXT, "end", 3));
    CHECK(read_data(b.fd, WSC_TEXT, "end", 3));
    CHECK_RC(wsq_stats(fx.srv, &after), WSQ_OK);
    CHECK(after.messages_out == before.messages_out + 4 + 2);

    /* A count of 0 attempts nothing, whatever `items` is. */
    wsq_send_item_t untouched = {a.id, WSQ_MESSAGE_TEXT, UNWRITTEN, "zero", 4};
    CHECK_RC(wsq_send_batch(fx.srv, &untouched, 0), WSQ_OK);
    CHECK(untouched.result == UNWRITTEN);
    CHECK_RC(wsq_send_batch(fx.srv, NULL, 0), WSQ_OK);
    /* NULL items with a count is refused, and so is a count no array can have. */
    CHECK_FAILS(wsq_send_batch(fx.srv, NULL, 1), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_send_batch(fx.srv, NULL, 3), WSQ_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(wsq_send_batch(fx.srv, &untouched, SIZE_MAX), WSQ_ERR_INVALID_ARGUMENT);
    CHECK(untouched.result == UNWRITTEN);
    CHECK_RC(wsq_send(fx.srv, a.id, WSQ_MESSAGE_TEXT, "end", 3), WSQ_OK);
    CHECK(read_data(a.fd, WSC_TEXT, "end", 3)); /* none of that sent anything */

    /* A freed server: refused as a whole, no item attempted. */
    wsq_server_t *srv = fx.srv;
    wsq_server_free(srv);
    fx.srv = NULL;
    wsq_send_item_t late = {a.id, WSQ_MESSAGE_TEXT, UNWRITTEN, "freed", 5};
    CHECK_FAILS(wsq_send_batch(srv, &late, 1), WSQ_ERR_BAD_HANDLE);
    CHECK(late.result == UNWRITTEN);
    CHECK_FAILS(wsq_send_batch(srv, NULL, 0), WSQ_ERR_BAD_HANDLE);
    close(a.fd);
    close(b.fd);
    fx_finish(&fx);
}

static void send_batch_reports_backpressure_then_queue_full_item_by_item(void)
{
    enum { SOFT = 64 * 1024, HARD = 256 * 1024, LOW = 16 * 1024, N = 40 };
    wsq_config_t cfg;
    set_limits(&cfg, SOFT, HARD, LOW);
    fixture_t fx;
    REQUIRE(fx_start(&fx, &cfg));
    peer_t p = {0};
    REQUIRE(fx_connect(&fx, "/", NULL, &p.c));
    /* Over the soft limit first, with the kernel's buffers settled. */
    wsq_result_t rc = WSQ_OK;
    while (p.sent < MAX_SENDS && (rc = send_chunk(&fx, &p)) == WSQ_OK) {
    }
    REQUIRE(rc == WSQ_BACKPRESSURE);
    uint64_t b0 = settled_buffered(&fx, p.c.id);
    REQUIRE(b0 > SOFT && b0 <= HARD);
    wsq_stats_t before, after;
    CHECK_RC(wsq_stats(fx.srv, &before), WSQ_OK);
    static uint8_t bufs[N][CHUNK];
    wsq_send_item_t items[N];
    for (uint32_t i = 0; i < N; i++) {
        make_chunk(p.sent + i, bufs[i]);
        items[i] = (wsq_send_item_t){p.c.id, WSQ_MESSAGE_BINARY, UNWRITTEN, bufs[i], CHUNK};
    }
    CHECK_RC(wsq_send_batch(fx.srv, items, N), WSQ_OK);
    /* Accepted with backpressure while the hard limit holds them, refused after. */
    uint32_t fits = (uint32_t)((HARD - b0) / FRAME), reports = 0, refused = 0;
    for (uint32_t i = 0; i < N; i++) {
        uint32_t expect = i < fits ? WSQ_BACKPRESSURE : WSQ_ERR_QUEUE_FULL;
        if (items[i].result != expect) {
            fprintf(stderr, "  item %u: %s, wanted %s (%u fit over %llu buffered)\n", i,
                    wsq_strerror(items[i].result), wsq_strerror(expect), fits,
                    (unsigned long long)b0);
            check_failures++;
        }
        reports += items[i].result == WSQ_BACKPRESSURE;
        refused += items[i].result == WSQ_ERR_QUEUE_FULL;
    }
    CHECK(refused > 0);
    CHECK_RC(wsq_stats(fx.srv, &after), WSQ_OK);
    CHECK(after.backpressure_reports == before.backpressure_reports + reports);
    CHECK(after.queue_full == before.queue_full + refused);
    /* The accepted ones arrive after the earlier chunks, in order; then a drain. */
    p.sent += reports;
    CHECK(read_all_chunks(&p));
    wsq_event_t ev;
    CHECK(fx_wait(&fx, WSQ_EVENT_DRAIN, p.c.id, &ev));
    wsq_events_release(&ev, 1);
    CHECK_RC(wsq_send(fx.srv, p.c.id, WSQ_MESSAGE_TEXT, "end", 3), WSQ_OK);
    CHECK(read_data(p.c.fd, WSC_TEXT, "end", 3));
    close(p.c.fd);
    fx_finish(&fx);
}

/* ---- the server-wide budget ----------------------------------------------------------------- */

static void server_wide_budget_refuses_sends_and_counts_them_in_budget_refusals(void)
{
    /* Per-connection limits far above the budget: every refusal is the budget's. */
    enum { SOFT = 1024 * 1024, HARD = 8 * 1024 * 1024, LOW = 16 * 1024, BUDGET = 256 * 1024 };
    wsq_config_t cfg;
    set_limits(&cfg, SOFT, HARD, LOW);
    cfg.max_buffered_bytes = BUDGET;
    fixture_t fx;
    REQUIRE(fx_start(&fx, &cfg));
    peer_t a = {0}, b = {0};
    REQUIRE(fx_connect(&fx, "/", NULL, &a.c));
    REQUIRE(fx_connect(&fx, "/", NULL, &b.c));

    /* Neither client reads. The first fills the budget by itself... */
    wsq_result_t rc = WSQ_OK;
    while (a.sent < MAX_SENDS && accepted(rc = send_chunk(&fx, &a))) {
    }
    CHECK(rc == WSQ_ERR_QUEUE_FULL);
    wsq_stats_t st;
    CHECK_RC(wsq_stats(fx.srv, &st), WSQ_OK);
    CHECK(st.budget_refusals == 1);
    CHECK(st.queue_full == 0); /* not the connection's hard limit */
    CHECK(st.send_queue_bytes <= BUDGET && st.send_queue_bytes + FRAME > BUDGET);
    /* ...so the second is refused as soon as it has a queue of its own. */
    uint32_t b_refused = 0;
    while (b.sent < MAX_SENDS && b_refused < 3) {
        rc = send_chunk(&fx, &b);
        if (rc == WSQ_ERR_QUEUE_FULL) b_refused++;
        else if (!accepted(rc)) break;
        else if (b_refused) {
            CHECK(!"a send was accepted between two budget refusals");
            break;
        }
    }
    CHECK(b_refused == 3);
    CHECK(buffered(&fx, b.c.id) > 0); /* it was refused with a queue, not before */
    CHECK_RC(wsq_stats(fx.srv, &st), WSQ_OK);
    CHECK(st.budget_refusals == 1 + b_refused);
    CHECK(st.queue_full == 0);
    /* The budget held: at most one frame over it (a message always fits into an
     * empty queue, so one large message can still be sent). */
    CHECK(st.send_queue_bytes <= BUDGET + FRAME);
    uint64_t in_a = settled_buffered(&fx, a.c.id), in_b = settled_buffered(&fx, b.c.id);
    CHECK_RC(wsq_stats(fx.srv, &st), WSQ_OK);
    CHECK(in_a + in_b == st.send_queue_bytes);
    /* A broadcast skips both, without touching the per-connection counters. */
    size_t delivered = 9;
    static uint8_t big[CHUNK];
    CHECK_RC(wsq_broadcast(fx.srv, WSQ_MESSAGE_BINARY, big, sizeof big, NULL, 0, &delivered), WSQ_OK);
    CHECK(delivered == 0);

    /* The first client reads everything: its drain follows, the budget is free again,
     * and the second client's sends are accepted. */
    CHECK(read_all_chunks(&a));
    wsq_event_t ev;
    CHECK(fx_wait(&fx, WSQ_EVENT_DRAIN, a.c.id, &ev));
    wsq_events_release(&ev, 1);
    uint64_t left = UINT64_MAX;
    for (int i = 0; i < 500 && (left = buffered(&fx, a.c.id)) != 0; i++) usleep(20000);
    CHECK(left == 0);
    CHECK_RC(send_chunk(&fx, &b), WSQ_OK);
    /* The second reads all it was promised, in order; its drain follows too. */
    CHECK(read_all_chunks(&b));
    CHECK(fx_wait(&fx, WSQ_EVENT_DRAIN, b.c.id, &ev));
    wsq_events_release(&ev, 1);
    close(a.c.fd);
    close(b.c.fd);
    fx_finish(&fx);
}

/* ---- the slow-consumer policy ------------------------------------------------------------ */

/* WSQ_SLOW_CONSUMER_CLOSE: the refusal at the hard limit condemns the connection (close
 * 1008). From then on nothing may be accepted for it: a message accepted now could
 * never be written, so WSQ_OK would be a promise broken in silence. */
/* Keeps the (single) reactor busy: a client that writes pings as fast as it can. */
struct busy {
    int fd;
    int stop;
};

static void *ping_flood(void *arg)
{
    struct busy *b = arg;
    /* Masked empty pings (§5.5.2), many to a write. */
    static const uint8_t ping[6] = {0x89, 0x80, 1, 2, 3, 4};
    uint8_t buf[6 * 512];
    for (size_t i = 0; i < sizeof buf; i += sizeof ping) memcpy(buf + i, ping, sizeof ping);
    while (!__atomic_load_n(&b->stop, __ATOMIC_ACQUIRE))
        if (wsc_write_all(b->fd, buf, sizeof buf) != 0) break;
    return NULL;
}

static void no_send_is_accepted_once_the_close_policy_has_condemned_the_connection(void)
{
    enum { SOFT = 32 * 1024, HARD = 64 * 1024, LOW = 16 * 1024 };
    wsq_config_t cfg;
    set_limits(&cfg, SOFT, HARD, LOW);
    cfg.slow_consumer = WSQ_SLOW_CONSUMER_CLOSE;
    cfg.reactor_threads = 1;
    fixture_t fx;
    REQUIRE(fx_start(&fx, &cfg));
    peer_t p = {0};
    REQUIRE(fx_connect(&fx, "/", NULL, &p.c));
    /* The close the policy starts is the reactor's job; keep the reactor busy, so that
     * a library that leaves the decision to it is caught in the act. */
    client_t noisy;
    REQUIRE(fx_connect(&fx, "/", NULL, &noisy));
    struct busy busy = {noisy.fd, 0};
    pthread_t flooder;
    REQUIRE(pthread_create(&flooder, NULL, ping_flood, &busy) == 0);
    wsq_result_t rc = WSQ_OK;
    while (p.sent < MAX_SENDS && accepted(rc = send_chunk(&fx, &p))) {
    }
    REQUIRE(rc == WSQ_ERR_QUEUE_FULL);
    /* At once, 1-byte messages: they would fit under the hard limit, so only the
     * condemnation can refuse them, and it must, from the refusal on (the close it
     * starts is asynchronous, but the decision is already made). */
    int accepted_after = 0;
    for (int i = 0; i < 100; i++) {
        rc = wsq_send(fx.srv, p.c.id, WSQ_MESSAGE_TEXT, "x", 1);
        if (accepted(rc) && accepted_after++ == 0)
            fprintf(stderr, "  1-byte send %d after the policy fired returned %s\n", i,
                    wsq_strerror(rc));
    }
    CHECK(accepted_after == 0);
    __atomic_store_n(&busy.stop, 1, __ATOMIC_RELEASE);
    shutdown(noisy.fd, SHUT_RDWR); /* ends a write blocked on a full socket */
    pthread_join(flooder, NULL);
    close(noisy.fd);
    wsq_event_t ev;
    REQUIRE(fx_wait(&fx, WSQ_EVENT_CLOSE, p.c.id, &ev));
    CHECK(ev.close_code == 1008 && !ev.clean);
    wsq_events_release(&ev, 1);
    close(p.c.fd);
    fx_finish(&fx);
}

/* The policy is about the connection, not about which call hit the limit: a broadcast
 * that has to skip a connection at its hard limit is a send refused at the hard limit,
 * and under WSQ_SLOW_CONSUMER_CLOSE that consumer is closed with 1008, as wsq_send
 * would have closed it, instead of silently missing messages. */
static void broadcast_past_the_hard_limit_under_the_close_policy_closes_with_1008(void)
{
    enum { SOFT = 64 * 1024, HARD = 256 * 1024, LOW = 16 * 1024 };
    wsq_config_t cfg;
    set_limits(&cfg, SOFT, HARD, LOW);
    cfg.slow_consumer = WSQ_SLOW_CONSUMER_CLOSE;
    fixture_t fx;
    REQUIRE(fx_start(&fx, &cfg));
    peer_t slow = {0};
    REQUIRE(fx_connect(&fx, "/", NULL, &slow.c));
    /* Over the soft limit with wsq_send, then to the hard limit with broadcasts only. */
    wsq_result_t rc = WSQ_OK;
    while (slow.sent < MAX_SENDS && (rc = send_chunk(&fx, &slow)) == WSQ_OK) {
    }
    REQUIRE(rc == WSQ_BACKPRESSURE);
    static uint8_t big[CHUNK];
    size_t delivered = 1;
    for (int i = 0; i < MAX_SENDS && delivered == 1; i++)
        CHECK_RC(wsq_broadcast(fx.srv, WSQ_MESSAGE_BINARY, big, sizeof big, NULL, 0, &delivered), WSQ_OK);
    REQUIRE(delivered == 0);
    wsq_stats_t st;
    CHECK_RC(wsq_stats(fx.srv, &st), WSQ_OK);
    CHECK(st.queue_full >= 1);
    wsq_event_t ev;
    bool closed = fx_wait(&fx, WSQ_EVENT_CLOSE, slow.c.id, &ev);
    CHECK(closed);
    if (closed) {
        CHECK(ev.close_code == 1008 && !ev.clean);
        wsq_events_release(&ev, 1);
    }
    CHECK_RC(wsq_stats(fx.srv, &st), WSQ_OK);
    CHECK(st.slow_consumer_closes == 1);
    close(slow.c.fd);
    fx_finish(&fx);
}

TEST_MAIN(
    TEST(backpressure_past_the_soft_limit_then_accepted_to_the_hard_limit_then_drain),
    TEST(connection_over_its_soft_limit_is_not_read_until_it_drains),
    TEST(broadcast_reaches_a_connection_over_its_soft_limit_but_not_past_its_hard_limit),
    TEST(buffered_amount_grows_while_the_client_does_not_read_and_empties_when_it_does),
    TEST(buffered_amount_of_null_out_stale_or_unknown_ids_fails_and_writes_nothing),
    TEST(send_batch_gives_every_item_its_own_result_and_sends_only_the_good_ones),
    TEST(send_batch_reports_backpressure_then_queue_full_item_by_item),
    TEST(server_wide_budget_refuses_sends_and_counts_them_in_budget_refusals),
    TEST(no_send_is_accepted_once_the_close_policy_has_condemned_the_connection),
    TEST(broadcast_past_the_hard_limit_under_the_close_policy_closes_with_1008),
)
