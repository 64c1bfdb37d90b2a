/* The C ABI from several threads at once: sends racing closes and disconnects, many
 * senders on one connection, many pollers on one server, and stop under traffic. */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "support.h"
#include "wsclient.h"

static int bad_results = 0;

static void note_bad(const char *call, wsq_result_t rc)
{
    if (__atomic_fetch_add(&bad_results, 1, __ATOMIC_RELAXED) < 5)
        fprintf(stderr, "  %s returned %s (%s)\n", call, wsq_strerror(rc), wsq_last_error());
}

/* ---- sends racing close ----------------------------------------------------------- */

enum { RACE_CONNS = 16, RACE_SENDERS = 4, RACE_ROUNDS = 300 };

struct race {
    wsq_server_t *srv;
    uint64_t ids[RACE_CONNS];
};

static void *race_sender(void *arg)
{
    struct race *r = arg;
    for (int round = 0; round < RACE_ROUNDS; round++) {
        for (int i = 0; i < RACE_CONNS; i++) {
            wsq_result_t rc;
            switch ((round + i) % 4) {
            case 0: rc = wsq_send(r->srv, r->ids[i], WSQ_MESSAGE_BINARY, "0123456789", 10); break;
            case 1: rc = wsq_send(r->srv, r->ids[i], WSQ_MESSAGE_TEXT, "text", 4); break;
            case 2: rc = wsq_ping(r->srv, r->ids[i], "p", 1); break;
            default: {
                size_t delivered;
                rc = wsq_broadcast(r->srv, WSQ_MESSAGE_TEXT, "b", 1, &r->ids[i], 2 * (i + 1 < RACE_CONNS), &delivered);
                if (rc == WSQ_OK && delivered > 2) note_bad("broadcast delivered", rc);
            }
            }
            if (rc != WSQ_OK && rc != WSQ_BACKPRESSURE && rc != WSQ_ERR_CLOSED &&
                rc != WSQ_ERR_NOT_FOUND && rc != WSQ_ERR_QUEUE_FULL)
                note_bad("send/ping/broadcast", rc);
            rc = wsq_set_tag(r->srv, r->ids[i], (uint64_t)round);
            if (rc != WSQ_OK && rc != WSQ_ERR_NOT_FOUND) note_bad("wsq_set_tag", rc);
        }
    }
    return NULL;
}

static void *race_closer(void *arg)
{
    struct race *r = arg;
    for (int i = 0; i < RACE_CONNS; i += 2) { /* the odd ones are dropped by their clients */
        wsq_result_t rc = wsq_close(r->srv, r->ids[i], 1000, "bye", 3);
        if (rc != WSQ_OK && rc != WSQ_ERR_CLOSED && rc != WSQ_ERR_NOT_FOUND) note_bad("wsq_close", rc);
        usleep(1000);
    }
    return NULL;
}

static void sends_racing_close_and_disconnect_return_only_defined_codes(void)
{
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    /* Small limits, so BACKPRESSURE and QUEUE_FULL are part of the mix. */
    cfg.send_queue_soft_limit = 2048;
    cfg.send_queue_hard_limit = 4096;
    cfg.send_queue_low_water = 1024;
    cfg.close_timeout_ms = 500;
    fixture_t fx;
    REQUIRE(fx_start(&fx, &cfg));
    client_t c[RACE_CONNS];
    struct race r = {fx.srv, {0}};
    for (int i = 0; i < RACE_CONNS; i++) {
        REQUIRE(fx_connect(&fx, "/", NULL, &c[i]));
        r.ids[i] = c[i].id;
    }
    bad_results = 0;
    pthread_t t[RACE_SENDERS + 1];
    for (int i = 0; i < RACE_SENDERS; i++) REQUIRE(pthread_create(&t[i], NULL, race_sender, &r) == 0);
    REQUIRE(pthread_create(&t[RACE_SENDERS], NULL, race_closer, &r) == 0);
    for (int i = 1; i < RACE_CONNS; i += 2) { /* clients vanish meanwhile */
        usleep(1000);
        close(c[i].fd);
    }
    /* Meanwhile poll, so closes are reported while sends are still racing. */
    for (int k = 0; k < 5; k++) fx_pump(&fx, 20);
    for (int i = 0; i <= RACE_SENDERS; i++) pthread_join(t[i], NULL);
    CHECK(bad_results == 0);
    for (int i = 0; i < RACE_CONNS; i += 2) close(c[i].fd);
    /* Exactly one close event per connection, and nothing for it afterwards. */
    for (int waited = 0; waited < 10000 && fx_count(&fx, WSQ_EVENT_CLOSE, 0) < RACE_CONNS; waited += 100)
        fx_pump(&fx, 100);
    fx_pump(&fx, 100);
    bool closed[RACE_CONNS] = {false};
    int after_close = 0, closes = 0;
    for (size_t k = 0; k < fx.npending; k++) {
        for (int i = 0; i < RACE_CONNS; i++) {
            if (fx.pending[k].conn != c[i].id) continue;
            after_close += closed[i];
            if (fx.pending[k].event_type == WSQ_EVENT_CLOSE) closed[i] = true, closes++;
        }
    }
    CHECK(closes == RACE_CONNS);
    CHECK(after_close == 0);
    wsq_stats_t st;
    CHECK_RC(wsq_stats(fx.srv, &st), WSQ_OK);
    CHECK(st.connections == 0 && st.send_queue_bytes == 0);
    fx_finish(&fx);
}

/* ---- many senders, one connection ---------------------------------------------------- */

enum { SENDERS = 4, PER_SENDER = 250 };

struct sender_arg {
    wsq_server_t *srv;
    uint64_t id;
    int index;
};

/* Payload: [sender, seq hi, seq lo, sender, sender, ...] with a per-sender length. */
static size_t payload_for(int sender, int seq, uint8_t *buf)
{
    size_t len = 3 + (size_t)(sender * 997 + seq * 13) % 3000;
    memset(buf, sender, len);
    buf[1] = (uint8_t)(seq >> 8);
    buf[2] = (uint8_t)seq;
    return len;
}

static void *ordered_sender(void *arg)
{
    struct sender_arg *a = arg;
    uint8_t buf[4096];
    for (int seq = 0; seq < PER_SENDER; seq++) {
        size_t len = payload_for(a->index, seq, buf);
        wsq_result_t rc;
        while ((rc = wsq_send(a->srv, a->id, WSQ_MESSAGE_BINARY, buf, len)) == WSQ_ERR_QUEUE_FULL)
            usleep(1000); /* the reader catches up (bounded by the test's hang guard) */
        if (rc != WSQ_OK && rc != WSQ_BACKPRESSURE) { /* both mean accepted */
            note_bad("wsq_send", rc);
            return NULL;
        }
    }
    return NULL;
}

static void frames_from_concurrent_senders_never_interleave_and_keep_each_order(void)
{
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    cfg.send_queue_soft_limit = 32 * 1024;
    cfg.send_queue_hard_limit = 64 * 1024;
    cfg.send_queue_low_water = 16 * 1024;
    fixture_t fx;
    REQUIRE(fx_start(&fx, &cfg));
    client_t c;
    REQUIRE(fx_connect(&fx, "/", NULL, &c));
    bad_results = 0;
    pthread_t t[SENDERS];
    struct sender_arg args[SENDERS];
    for (int i = 0; i < SENDERS; i++) {
        args[i] = (struct sender_arg){fx.srv, c.id, i};
        REQUIRE(pthread_create(&t[i], NULL, ordered_sender, &args[i]) == 0);
    }
    int next[SENDERS] = {0};
    uint8_t want[4096];
    int bad_frames = 0;
    for (int n = 0; n < SENDERS * PER_SENDER; n++) {
        wsc_frame_t f;
        if (wsc_read_frame(c.fd, &f) != WSC_BINARY || f.len < 3 || f.data[0] >= SENDERS) {
            CHECK(!"a frame is missing or malformed");
            if (f.data) wsc_frame_free(&f);
            break;
        }
        int s = f.data[0];
        int seq = (f.data[1] << 8) | f.data[2];
        size_t len = payload_for(s, next[s], want);
        if (seq != next[s] || f.len != len || memcmp(f.data, want, len) != 0) bad_frames++;
        next[s] = seq + 1;
        wsc_frame_free(&f);
    }
    for (int i = 0; i < SENDERS; i++) pthread_join(t[i], NULL);
    CHECK(bad_results == 0);
    CHECK(bad_frames == 0);
    for (int i = 0; i < SENDERS; i++) CHECK(next[i] == PER_SENDER);
    close(c.fd);
    fx_finish(&fx);
}

/* ---- many pollers, one server --------------------------------------------------------- */

enum { POLLERS = 3, POLLED_MESSAGES = 300 };

struct pollers {
    wsq_server_t *srv;
    int seen[POLLED_MESSAGES];
    int total;
    int others;
};

static void *poller(void *arg)
{
    struct pollers *p = arg;
    for (int waited = 0; waited < 10000 && __atomic_load_n(&p->total, __ATOMIC_ACQUIRE) < POLLED_MESSAGES;
         waited += 20) {
        wsq_event_t evs[8];
        size_t n = 0;
        if (wsq_poll(p->srv, evs, 8, 20, &n) != WSQ_OK) {
            note_bad("wsq_poll", WSQ_ERR_PANIC);
            return NULL;
        }
        for (size_t i = 0; i < n; i++) {
            int seq = -1;
            if (evs[i].event_type == WSQ_EVENT_MESSAGE && evs[i].len < 16) {
                char text[16] = {0};
                memcpy(text, evs[i].data, evs[i].len);
                sscanf(text, "%d", &seq);
            }
            if (seq >= 0 && seq < POLLED_MESSAGES) {
                __atomic_add_fetch(&p->seen[seq], 1, __ATOMIC_RELAXED);
                __atomic_add_fetch(&p->total, 1, __ATOMIC_RELEASE);
            } else {
                __atomic_add_fetch(&p->others, 1, __ATOMIC_RELAXED);
            }
        }
        wsq_events_release(evs, n); /* events may be released on any thread */
    }
    return NULL;
}

static void concurrent_pollers_each_get_distinct_events(void)
{
    fixture_t fx;
    REQUIRE(fx_start(&fx, NULL));
    client_t c;
    REQUIRE(fx_connect(&fx, "/", NULL, &c));
    static struct pollers p;
    memset(&p, 0, sizeof p);
    p.srv = fx.srv;
    bad_results = 0;
    pthread_t t[POLLERS];
    for (int i = 0; i < POLLERS; i++) REQUIRE(pthread_create(&t[i], NULL, poller, &p) == 0);
    for (int i = 0; i < POLLED_MESSAGES; i++) {
        char text[16];
        int len = snprintf(text, sizeof text, "%d", i);
        CHECK(wsc_send_frame(c.fd, true, WSC_TEXT, text, (size_t)len) == 0);
    }
    for (int i = 0; i < POLLERS; i++) pthread_join(t[i], NULL);
    CHECK(bad_results == 0);
    CHECK(p.total == POLLED_MESSAGES && p.others == 0);
    int wrong = 0;
    for (int i = 0; i < POLLED_MESSAGES; i++) wrong += p.seen[i] != 1;
    CHECK(wrong == 0); /* each event went to exactly one poller */
    close(c.fd);
    fx_finish(&fx);
}

/* ---- stop with traffic in flight ------------------------------------------------------ */

enum { STOP_SENDERS = 3 };

struct stop_traffic {
    wsq_server_t *srv;
    uint64_t ids[2];
    uint64_t accepted[2]; /* sends that returned WSQ_OK or WSQ_BACKPRESSURE, per connection */
    int stopped_seen;
};

static void *stop_sender(void *arg)
{
    struct stop_traffic *s = arg;
    for (uint64_t n = 0;; n++) {
        int k = (int)(n % 2);
        wsq_result_t rc = wsq_send(s->srv, s->ids[k], WSQ_MESSAGE_TEXT, "tick-tock", 9);
        if (rc == WSQ_OK || rc == WSQ_BACKPRESSURE) /* both mean accepted */
            __atomic_add_fetch(&s->accepted[k], 1, __ATOMIC_RELAXED);
        else if (rc == WSQ_ERR_STOPPED) {
            __atomic_add_fetch(&s->stopped_seen, 1, __ATOMIC_RELAXED);
            return NULL;
        } else if (rc != WSQ_ERR_QUEUE_FULL && rc != WSQ_ERR_CLOSED && rc != WSQ_ERR_NOT_FOUND) {
            note_bad("wsq_send during stop", rc);
            return NULL;
        }
        if (rc == WSQ_ERR_QUEUE_FULL && k == 1) usleep(100);
    }
}

/* Reads messages until the server's close or EOF; answers a close like a good peer. */
struct reader {
    int fd;
    bool answer_close;
    uint64_t messages;
    uint16_t close_code;
    bool partial; /* the connection ended inside a frame */
};

static void *reader(void *arg)
{
    struct reader *r = arg;
    for (;;) {
        wsc_frame_t f;
        int op = wsc_read_frame(r->fd, &f);
        if (op < 0) {
            r->partial = op == WSC_TRUNCATED;
            return NULL;
        }
        if (op == WSC_TEXT && f.len == 9 && memcmp(f.data, "tick-tock", 9) == 0) r->messages++;
        if (op == WSC_CLOSE) {
            r->close_code = wsc_close_code(&f);
            if (r->answer_close) wsc_send_close(r->fd, r->close_code, NULL);
            wsc_frame_free(&f);
            wsc_wait_eof(r->fd);
            return NULL;
        }
        wsc_frame_free(&f);
    }
}

static void stop_with_traffic_in_flight_accounts_for_every_message(void)
{
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    cfg.send_queue_soft_limit = 32 * 1024;
    cfg.send_queue_hard_limit = 64 * 1024; /* the stuck client's queue fills to this */
    cfg.send_queue_low_water = 16 * 1024;
    fixture_t fx;
    REQUIRE(fx_start(&fx, &cfg));
    client_t good, stuck;
    REQUIRE(fx_connect(&fx, "/good", NULL, &good));   /* reads and answers the close */
    REQUIRE(fx_connect(&fx, "/stuck", NULL, &stuck)); /* never reads until after stop */
    static struct stop_traffic s;
    memset(&s, 0, sizeof s);
    s.srv = fx.srv;
    s.ids[0] = good.id;
    s.ids[1] = stuck.id;
    bad_results = 0;
    struct reader gr = {good.fd, true, 0, 0, false};
    pthread_t rt, t[STOP_SENDERS];
    REQUIRE(pthread_create(&rt, NULL, reader, &gr) == 0);
    for (int i = 0; i < STOP_SENDERS; i++) REQUIRE(pthread_create(&t[i], NULL, stop_sender, &s) == 0);
    /* Let traffic build up (and the stuck client's queue fill to its hard limit)
     * before stopping. */
    wsq_stats_t st = {0};
    for (int i = 0; i < 500 && st.queue_full == 0; i++) {
        usleep(10000);
        wsq_stats(fx.srv, &st);
    }
    CHECK(st.queue_full > 0);
    CHECK_RC(wsq_server_stop(fx.srv, 500), WSQ_OK);
    for (int i = 0; i < STOP_SENDERS; i++) pthread_join(t[i], NULL);
    pthread_join(rt, NULL);
    CHECK(bad_results == 0);
    CHECK(s.stopped_seen == STOP_SENDERS); /* every sender ended on WSQ_ERR_STOPPED */
    CHECK_FAILS(wsq_send(fx.srv, good.id, WSQ_MESSAGE_TEXT, "x", 1), WSQ_ERR_STOPPED);
    CHECK_FAILS(wsq_ping(fx.srv, good.id, NULL, 0), WSQ_ERR_STOPPED);
    CHECK_FAILS(wsq_accept(fx.srv, good.id, NULL, NULL, 0), WSQ_ERR_STOPPED);

    /* The stuck client reads what reached it. */
    struct reader sr = {stuck.fd, false, 0, 0, false};
    reader(&sr);

    /* Poll after stop: the remaining events, then 0 at once (-1 must not block). */
    wsq_event_t good_close = {0}, stuck_close = {0};
    char good_reason[128] = "";
    int good_closes = 0, stuck_closes = 0;
    uint64_t unsent_total = 0;
    for (int rounds = 0; rounds < 1000; rounds++) {
        wsq_event_t evs[16];
        size_t n = 99;
        CHECK_RC(wsq_poll(fx.srv, evs, 16, -1, &n), WSQ_OK);
        if (n == 0) break;
        for (size_t i = 0; i < n; i++) {
            if (evs[i].event_type != WSQ_EVENT_CLOSE) continue;
            unsent_total += evs[i].unsent_messages;
            if (evs[i].conn == good.id) {
                good_closes++, good_close = evs[i];
                snprintf(good_reason, sizeof good_reason, "%s", evs[i].reason);
            }
            if (evs[i].conn == stuck.id) stuck_closes++, stuck_close = evs[i];
        }
        wsq_events_release(evs, n);
    }
    wsq_event_t evs[4];
    size_t n = 99;
    CHECK_RC(wsq_poll(fx.srv, evs, 4, -1, &n), WSQ_OK);
    CHECK(n == 0);
    CHECK(good_closes == 1 && stuck_closes == 1);
    /* The cooperative client got a going-away close after every accepted message. */
    CHECK(gr.close_code == 1001);
    CHECK(good_close.clean && good_close.unsent_messages == 0);
    CHECK(gr.messages == s.accepted[0]);
    if (!good_close.clean || good_close.unsent_messages || gr.messages != s.accepted[0])
        fprintf(stderr, "  good client: accepted %llu, received %llu, close code %u (sent %u) "
                "clean %d unsent %llu reason %s\n", (unsigned long long)s.accepted[0],
                (unsigned long long)gr.messages, good_close.close_code, gr.close_code,
                good_close.clean, (unsigned long long)good_close.unsent_messages, good_reason);
    /* The stuck one was dropped at the deadline: what it never got is reported. */
    CHECK(!stuck_close.clean);
    CHECK(stuck_close.unsent_messages > 0);
    CHECK(sr.messages + stuck_close.unsent_messages + (sr.partial ? 1 : 0) == s.accepted[1]);
    if (sr.messages + stuck_close.unsent_messages + (sr.partial ? 1 : 0) != s.accepted[1])
        fprintf(stderr, "  stuck client: accepted %llu, received %llu (+%d partial), reported "
                "unsent %llu\n", (unsigned long long)s.accepted[1], (unsigned long long)sr.messages,
                sr.partial, (unsigned long long)stuck_close.unsent_messages);
    CHECK_RC(wsq_stats(fx.srv, &st), WSQ_OK);
    CHECK(st.connections == 0 && st.event_queue_depth == 0);
    CHECK(st.unsent_messages == unsent_total);
    close(good.fd);
    close(stuck.fd);
    fx_finish(&fx);
}

TEST_MAIN(
    TEST(sends_racing_close_and_disconnect_return_only_defined_codes),
    TEST(frames_from_concurrent_senders_never_interleave_and_keep_each_order),
    TEST(concurrent_pollers_each_get_distinct_events),
    TEST(stop_with_traffic_in_flight_accounts_for_every_message),
)
