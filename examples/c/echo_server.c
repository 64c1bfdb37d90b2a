/*
 * echo_server: sends every WebSocket message back to its sender, unchanged (text as
 * text, binary as binary). The reference peer for the interop tests and benchmarks.
 *
 *   echo_server [port=9002] [static_dir]
 *
 * Listens on 127.0.0.1 (port 0 picks a free port), prints
 * "listening on 127.0.0.1:PORT" once ready, and runs until SIGINT or SIGTERM, then
 * shuts down gracefully (close 1001 to every client) and exits 0.
 *
 * Backpressure: when a client does not read its echoes fast enough, its send queue
 * fills and wsq_send answers WSQ_ERR_QUEUE_FULL. Echoes are then kept, in order, in a
 * per-connection backlog and resent on WSQ_EVENT_DRAIN. The backlog is bounded too:
 * a client that lets it grow past BACKLOG_LIMIT is closed with 1013 ("try again
 * later") and logged on stderr. No echo is ever dropped silently.
 */

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsqueue.h"

#define DEFAULT_PORT 9002
#define MiB (1024u * 1024u)
/* Messages of at least 16 MiB must echo; 64 MiB leaves room above that. */
#define MAX_MESSAGE_SIZE (64u * MiB)
/* Large enough that one maximal message plus a little more fits before refusals. */
#define SEND_QUEUE_LIMIT (128u * MiB)
/* Backlog bytes one connection may hold beyond its send queue (one maximal message
 * always fits into an empty backlog). */
#define BACKLOG_LIMIT ((size_t)MAX_MESSAGE_SIZE)
#define POLL_BATCH 64
/* How quickly a signal is noticed: the handler only sets a flag. */
#define POLL_TIMEOUT_MS 100
#define STOP_TIMEOUT_MS 2000
#define CLOSE_TRY_AGAIN_LATER 1013

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int signo)
{
    (void)signo;
    stop_requested = 1;
}

/* ---- per-connection backlog of echoes the send queue refused ---------------------- */

struct pending_msg {
    struct pending_msg *next;
    uint32_t kind;
    size_t len;
    uint8_t data[];
};

struct backlog {
    struct backlog *next; /* bucket chain */
    uint64_t conn;
    struct pending_msg *head, *tail;
    size_t bytes;
};

/* Only connections with a backlog are in the table, so it is usually empty. */
#define BACKLOG_BUCKETS 256
static struct backlog *backlogs[BACKLOG_BUCKETS];

static struct backlog **backlog_slot(uint64_t conn)
{
    struct backlog **slot = &backlogs[conn % BACKLOG_BUCKETS];
    while (*slot && (*slot)->conn != conn)
        slot = &(*slot)->next;
    return slot;
}

static void backlog_remove(uint64_t conn)
{
    struct backlog **slot = backlog_slot(conn);
    struct backlog *b = *slot;
    if (!b)
        return;
    *slot = b->next;
    while (b->head) {
        struct pending_msg *m = b->head;
        b->head = m->next;
        free(m);
    }
    free(b);
}

/* Appends a copy of one message to conn's backlog; false if out of memory. */
static int backlog_push(uint64_t conn, uint32_t kind, const uint8_t *data, size_t len)
{
    struct backlog **slot = backlog_slot(conn);
    if (!*slot) {
        *slot = calloc(1, sizeof **slot);
        if (!*slot)
            return 0;
        (*slot)->conn = conn;
    }
    struct pending_msg *m = malloc(sizeof *m + len);
    if (!m)
        return 0;
    m->next = NULL;
    m->kind = kind;
    m->len = len;
    if (len)
        memcpy(m->data, data, len);
    struct backlog *b = *slot;
    if (b->tail)
        b->tail->next = m;
    else
        b->head = m;
    b->tail = m;
    b->bytes += len;
    return 1;
}

static void close_overloaded(const wsq_server_t *srv, uint64_t conn, const char *why)
{
    static const char reason[] = "echo backlog full";
    fprintf(stderr, "echo_server: closing connection %llu with %d: %s\n",
            (unsigned long long)conn, CLOSE_TRY_AGAIN_LATER, why);
    backlog_remove(conn);
    wsq_close(srv, conn, CLOSE_TRY_AGAIN_LATER, reason, sizeof reason - 1);
}

/* Sends as much of conn's backlog as its send queue takes (on WSQ_EVENT_DRAIN). */
static void backlog_flush(const wsq_server_t *srv, uint64_t conn)
{
    struct backlog *b = *backlog_slot(conn);
    if (!b)
        return;
    while (b->head) {
        struct pending_msg *m = b->head;
        wsq_result_t rc = wsq_send(srv, conn, m->kind, m->data, m->len);
        if (rc == WSQ_ERR_QUEUE_FULL)
            return; /* another WSQ_EVENT_DRAIN will follow */
        if (rc != WSQ_OK) {
            /* Closing or gone: its WSQ_EVENT_CLOSE frees the rest. */
            return;
        }
        b->head = m->next;
        b->bytes -= m->len;
        free(m);
    }
    backlog_remove(conn);
}

/* ---- events ------------------------------------------------------------------------ */

static void echo(const wsq_server_t *srv, const wsq_event_t *ev)
{
    struct backlog *b = *backlog_slot(ev->conn);
    if (!b) {
        wsq_result_t rc = wsq_send(srv, ev->conn, ev->message_kind, ev->data, ev->len);
        if (rc == WSQ_OK || rc == WSQ_ERR_CLOSED || rc == WSQ_ERR_NOT_FOUND ||
            rc == WSQ_ERR_STOPPED)
            return; /* sent, or the peer is leaving and its close event follows */
        if (rc != WSQ_ERR_QUEUE_FULL) {
            fprintf(stderr, "echo_server: wsq_send: %s (%s)\n", wsq_strerror(rc),
                    wsq_last_error());
            return;
        }
    } else if (b->bytes + ev->len > BACKLOG_LIMIT) {
        close_overloaded(srv, ev->conn, "client does not read its echoes");
        return;
    }
    /* Queue full, or earlier echoes still waiting: keep the order. */
    if (!backlog_push(ev->conn, ev->message_kind, ev->data, ev->len))
        close_overloaded(srv, ev->conn, "out of memory for the backlog");
}

static void handle(const wsq_server_t *srv, const wsq_event_t *ev)
{
    switch (ev->event_type) {
    case WSQ_EVENT_MESSAGE:
        echo(srv, ev);
        break;
    case WSQ_EVENT_DRAIN:
        backlog_flush(srv, ev->conn);
        break;
    case WSQ_EVENT_CLOSE: {
        struct backlog *b = *backlog_slot(ev->conn);
        if (b)
            fprintf(stderr, "echo_server: connection %llu left with %zu backlog bytes unsent\n",
                    (unsigned long long)ev->conn, b->bytes);
        backlog_remove(ev->conn);
        break;
    }
    default:
        break; /* open, ping, pong: nothing to do */
    }
}

static int parse_port(const char *s, uint16_t *port)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *s == '\0' || *end != '\0' || v < 0 || v > 65535)
        return 0;
    *port = (uint16_t)v;
    return 1;
}

int main(int argc, char **argv)
{
    uint16_t port = DEFAULT_PORT;
    if (argc > 3 || (argc > 1 && !parse_port(argv[1], &port))) {
        fprintf(stderr, "usage: %s [port=%d] [static_dir]\n", argv[0], DEFAULT_PORT);
        return 2;
    }
    const char *static_dir = argc > 2 ? argv[2] : NULL;

    /* A write to a peer that has reset raises SIGPIPE, whose default action would
     * end the whole server; failed writes are reported as closes instead. */
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    /* The library's threads inherit the signal mask of the thread that starts them:
     * blocking the stop signals around wsq_server_start makes them arrive here, in
     * the thread that checks the flag. */
    sigset_t stop_signals, old_mask;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask);

    char listen[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%u", (unsigned)port);
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    cfg.listen = listen;
    cfg.max_frame_size = MAX_MESSAGE_SIZE;
    cfg.max_message_size = MAX_MESSAGE_SIZE;
    cfg.send_queue_limit = SEND_QUEUE_LIMIT;
    cfg.static_dir = static_dir;

    wsq_server_t *srv = NULL;
    wsq_result_t rc = wsq_server_start(&cfg, &srv);
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    if (rc != WSQ_OK) {
        fprintf(stderr, "echo_server: cannot start on %s: %s (%s)\n", listen,
                wsq_strerror(rc), wsq_last_error());
        return 1;
    }
    wsq_server_port(srv, &port);
    printf("listening on 127.0.0.1:%u\n", (unsigned)port);
    fflush(stdout);

    int exit_code = 0;
    wsq_event_t events[POLL_BATCH];
    while (!stop_requested) {
        size_t n = 0;
        rc = wsq_poll(srv, events, POLL_BATCH, POLL_TIMEOUT_MS, &n);
        if (rc != WSQ_OK) {
            fprintf(stderr, "echo_server: wsq_poll: %s (%s)\n", wsq_strerror(rc),
                    wsq_last_error());
            exit_code = 1;
            break;
        }
        for (size_t i = 0; i < n; i++)
            handle(srv, &events[i]);
        wsq_events_release(events, n);
    }

    wsq_server_stop(srv, STOP_TIMEOUT_MS);
    /* After the stop, poll returns the remaining events (closes) without blocking. */
    for (;;) {
        size_t n = 0;
        if (wsq_poll(srv, events, POLL_BATCH, 0, &n) != WSQ_OK || n == 0)
            break;
        for (size_t i = 0; i < n; i++)
            if (events[i].event_type == WSQ_EVENT_CLOSE)
                backlog_remove(events[i].conn);
        wsq_events_release(events, n);
    }
    for (size_t i = 0; i < BACKLOG_BUCKETS; i++)
        while (backlogs[i])
            backlog_remove(backlogs[i]->conn);
    wsq_server_free(srv);
    return exit_code;
}
