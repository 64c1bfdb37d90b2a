/*
 * chat_server: a chat room. Serves the web page (examples/web) and the WebSocket on
 * the same port; every text message a user sends is broadcast to everyone.
 *
 *   chat_server [port=9001] [static_dir=examples/web]
 *
 * Every message the server sends is one JSON object:
 *   {"type":"welcome","you":N,"text":"welcome, you are user N"}   to a new user only
 *   {"type":"join","user":N,"text":"user N joined"}               to everyone
 *   {"type":"chat","from":N,"text":"..."}                         to everyone
 *   {"type":"leave","user":N,"text":"user N left"}                to everyone
 *
 * Each connection's user number lives in its wsq tag. An event carries the tag the
 * connection had when the event was queued, so the number is assigned on
 * WSQ_EVENT_UPGRADE_REQUEST (manual accept), before the handshake completes: every
 * later event of the connection (open, messages, close) then carries it.
 *
 * Nothing is printed per event: a test harness that reads only the first line of
 * stdout must not be able to block the server with a full pipe.
 *
 * A user whose send queue is full (a client that stopped reading) misses broadcasts;
 * the library counts them in wsq_stats_t.queue_full.
 */

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsqueue.h"

#define DEFAULT_PORT 9001
#define DEFAULT_STATIC_DIR "examples/web"
/* A chat line, not a file transfer: longer messages are refused with close 1009. */
#define MAX_MESSAGE_SIZE (64u * 1024u)
/* Worst case JSON escaping turns one byte into six ("\u00XX"), plus the envelope. */
#define MAX_JSON_SIZE (MAX_MESSAGE_SIZE * 6u + 64u)
#define POLL_BATCH 64
/* How quickly a signal is noticed: the handler only sets a flag. */
#define POLL_TIMEOUT_MS 100
#define STOP_TIMEOUT_MS 2000

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int signo)
{
    (void)signo;
    stop_requested = 1;
}

/* Writes `text` as a JSON string body (without quotes) at `out`; returns the end.
 * `text` is valid UTF-8 (the library checks text messages), so only quotes,
 * backslashes and control characters need escaping. */
static char *json_escape(char *out, const uint8_t *text, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        uint8_t c = text[i];
        if (c == '"' || c == '\\') {
            *out++ = '\\';
            *out++ = (char)c;
        } else if (c == '\n') {
            *out++ = '\\';
            *out++ = 'n';
        } else if (c < 0x20 || c == 0x7f) {
            *out++ = '\\';
            *out++ = 'u';
            *out++ = '0';
            *out++ = '0';
            *out++ = hex[c >> 4];
            *out++ = hex[c & 0xf];
        } else {
            *out++ = (char)c;
        }
    }
    return out;
}

static void broadcast(const wsq_server_t *srv, const char *json, size_t len)
{
    wsq_result_t rc = wsq_broadcast(srv, WSQ_MESSAGE_TEXT, (const uint8_t *)json, len,
                                    NULL, 0, NULL);
    if (rc != WSQ_OK && rc != WSQ_ERR_STOPPED)
        fprintf(stderr, "chat_server: wsq_broadcast: %s (%s)\n", wsq_strerror(rc),
                wsq_last_error());
}

static void announce(const wsq_server_t *srv, const char *type, uint64_t user,
                     const char *verb)
{
    char json[128];
    int n = snprintf(json, sizeof json, "{\"type\":\"%s\",\"user\":%llu,\"text\":\"user %llu %s\"}",
                     type, (unsigned long long)user, (unsigned long long)user, verb);
    broadcast(srv, json, (size_t)n);
}

/* Which user numbers got an open event (one bit each): only they are announced
 * leaving. A connection can close between its upgrade request and its open. */
static uint8_t *joined;
static size_t joined_bytes;

static int mark_joined(uint64_t user, int value)
{
    size_t byte = (size_t)(user / 8);
    if (byte >= joined_bytes) {
        if (!value)
            return 1;
        size_t size = joined_bytes ? joined_bytes : 64;
        while (size <= byte)
            size *= 2;
        uint8_t *grown = realloc(joined, size);
        if (!grown)
            return 0;
        memset(grown + joined_bytes, 0, size - joined_bytes);
        joined = grown;
        joined_bytes = size;
    }
    uint8_t bit = (uint8_t)(1u << (user % 8));
    if (value)
        joined[byte] |= bit;
    else
        joined[byte] &= (uint8_t)~bit;
    return 1;
}

static int has_joined(uint64_t user)
{
    size_t byte = (size_t)(user / 8);
    return byte < joined_bytes && (joined[byte] >> (user % 8)) & 1;
}

struct chat {
    const wsq_server_t *srv;
    uint64_t next_user;
    char *json; /* MAX_JSON_SIZE bytes */
};

static void on_upgrade_request(struct chat *chat, const wsq_event_t *ev)
{
    uint64_t user = chat->next_user++;
    /* Tag first, accept second: the open event and everything after it carry the tag.
     * Either call fails only if the client has already gone (its close follows). */
    if (wsq_set_tag(chat->srv, ev->conn, user) == WSQ_OK)
        wsq_accept(chat->srv, ev->conn, NULL, NULL, 0);
}

static void on_open(struct chat *chat, const wsq_event_t *ev)
{
    uint64_t user = ev->tag;
    if (!mark_joined(user, 1)) {
        static const char reason[] = "server out of memory";
        wsq_close(chat->srv, ev->conn, 1011, reason, sizeof reason - 1);
        return;
    }
    int n = snprintf(chat->json, MAX_JSON_SIZE,
                     "{\"type\":\"welcome\",\"you\":%llu,\"text\":\"welcome, you are user %llu\"}",
                     (unsigned long long)user, (unsigned long long)user);
    wsq_send(chat->srv, ev->conn, WSQ_MESSAGE_TEXT, (const uint8_t *)chat->json, (size_t)n);
    announce(chat->srv, "join", user, "joined");
}

static void on_message(struct chat *chat, const wsq_event_t *ev)
{
    if (ev->message_kind != WSQ_MESSAGE_TEXT)
        return; /* the room speaks text */
    char *p = chat->json;
    p += snprintf(p, MAX_JSON_SIZE, "{\"type\":\"chat\",\"from\":%llu,\"text\":\"",
                  (unsigned long long)ev->tag);
    p = json_escape(p, ev->data, ev->len);
    *p++ = '"';
    *p++ = '}';
    broadcast(chat->srv, chat->json, (size_t)(p - chat->json));
}

static void on_close(struct chat *chat, const wsq_event_t *ev)
{
    if (!has_joined(ev->tag))
        return;
    mark_joined(ev->tag, 0);
    announce(chat->srv, "leave", ev->tag, "left");
}

static void handle(struct chat *chat, const wsq_event_t *ev)
{
    switch (ev->event_type) {
    case WSQ_EVENT_UPGRADE_REQUEST:
        on_upgrade_request(chat, ev);
        break;
    case WSQ_EVENT_OPEN:
        on_open(chat, ev);
        break;
    case WSQ_EVENT_MESSAGE:
        on_message(chat, ev);
        break;
    case WSQ_EVENT_CLOSE:
        on_close(chat, ev);
        break;
    default:
        break; /* drain, ping, pong: nothing to do */
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
        fprintf(stderr, "usage: %s [port=%d] [static_dir=%s]\n", argv[0], DEFAULT_PORT,
                DEFAULT_STATIC_DIR);
        return 2;
    }
    const char *static_dir = argc > 2 ? argv[2] : DEFAULT_STATIC_DIR;

    struct chat chat = {.next_user = 1, .json = malloc(MAX_JSON_SIZE)};
    if (!chat.json) {
        fprintf(stderr, "chat_server: out of memory\n");
        return 1;
    }

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
    cfg.manual_accept = true;
    cfg.static_dir = static_dir;

    wsq_server_t *srv = NULL;
    wsq_result_t rc = wsq_server_start(&cfg, &srv);
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    if (rc != WSQ_OK) {
        fprintf(stderr, "chat_server: cannot start on %s: %s (%s)\n", listen,
                wsq_strerror(rc), wsq_last_error());
        free(chat.json);
        return 1;
    }
    chat.srv = srv;
    wsq_server_port(srv, &port);
    printf("listening on http://127.0.0.1:%u/\n", (unsigned)port);
    fflush(stdout);

    int exit_code = 0;
    wsq_event_t events[POLL_BATCH];
    while (!stop_requested) {
        size_t n = 0;
        rc = wsq_poll(srv, events, POLL_BATCH, POLL_TIMEOUT_MS, &n);
        if (rc != WSQ_OK) {
            fprintf(stderr, "chat_server: wsq_poll: %s (%s)\n", wsq_strerror(rc),
                    wsq_last_error());
            exit_code = 1;
            break;
        }
        for (size_t i = 0; i < n; i++)
            handle(&chat, &events[i]);
        wsq_events_release(events, n);
    }

    wsq_server_stop(srv, STOP_TIMEOUT_MS);
    /* After the stop, poll returns the remaining events (closes) without blocking;
     * they need nothing but releasing, as nobody is left to tell. */
    for (;;) {
        size_t n = 0;
        if (wsq_poll(srv, events, POLL_BATCH, 0, &n) != WSQ_OK || n == 0)
            break;
        wsq_events_release(events, n);
    }
    wsq_server_free(srv);
    free(chat.json);
    free(joined);
    return exit_code;
}
