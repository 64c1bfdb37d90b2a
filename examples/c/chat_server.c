/*
 * chat_server: a chat room. Serves the web page (examples/web) and the WebSocket on
 * the same port; every text message a user sends is broadcast to everyone.
 *
 *   chat_server [port=9001] [--tls CERT.pem KEY.pem] [static_dir=examples/web]
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
 * Backpressure: every line goes to everyone with wsq_broadcast. A user who reads
 * slower than the room talks simply gets lines queued: over the soft limit (1 MiB) the
 * library reports it with WSQ_EVENT_DRAIN later and stops reading that user meanwhile.
 * A user whose queued lines would pass the hard limit (16 MiB, some forty maximal
 * lines) has stopped reading for good: the WSQ_SLOW_CONSUMER_CLOSE policy closes it
 * with 1008 (and everyone sees it leave) rather than letting it miss lines unnoticed.
 *
 * Startup, signals and the poll loop are shared with echo_server (example_common.h).
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_common.h"
#include "wsqueue.h"

#define DEFAULT_PORT 9001
#define DEFAULT_STATIC_DIR "examples/web"
/* A chat line, not a file transfer: longer messages are refused with close 1009. */
#define MAX_MESSAGE_SIZE (64u * 1024u)
/* Worst case JSON escaping turns one byte into six ("\u00XX"), plus the envelope. */
#define MAX_JSON_SIZE (MAX_MESSAGE_SIZE * 6u + 64u)
#define SEND_QUEUE_SOFT_LIMIT (1024u * 1024u)
#define SEND_QUEUE_LOW_WATER (256u * 1024u)
#define SEND_QUEUE_HARD_LIMIT (16u * 1024u * 1024u)

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
    /* Users over their soft limit take the line too; past the hard limit the library
     * skips them and its slow-consumer policy closes them. */
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

static void handle(void *ctx, const wsq_server_t *srv, const wsq_event_t *ev)
{
    (void)srv;
    struct chat *chat = ctx;
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

int main(int argc, char **argv)
{
    uint16_t port;
    const char *static_dir;
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    /* --tls: the page over https:// and the chat over wss:// (app.js picks wss:// then). */
    if (!example_take_tls(&argc, argv, &cfg, "[port] [--tls CERT.pem KEY.pem] [static_dir]"))
        return 2;
    if (!example_parse_args(argc, argv, DEFAULT_PORT, "static_dir=" DEFAULT_STATIC_DIR,
                            DEFAULT_STATIC_DIR, &port, &static_dir))
        return 2;
    struct chat chat = {.next_user = 1, .json = malloc(MAX_JSON_SIZE)};
    if (!chat.json) {
        fprintf(stderr, "chat_server: out of memory\n");
        return 1;
    }

    cfg.max_frame_size = MAX_MESSAGE_SIZE;
    cfg.max_message_size = MAX_MESSAGE_SIZE;
    cfg.send_queue_soft_limit = SEND_QUEUE_SOFT_LIMIT;
    cfg.send_queue_low_water = SEND_QUEUE_LOW_WATER;
    cfg.send_queue_hard_limit = SEND_QUEUE_HARD_LIMIT;
    cfg.slow_consumer = WSQ_SLOW_CONSUMER_CLOSE;
    cfg.manual_accept = true;
    cfg.static_dir = static_dir;

    int exit_code = 1;
    wsq_server_t *srv = example_start("chat_server", &cfg, port, "http://", "/");
    if (srv) {
        chat.srv = srv;
        exit_code = example_run("chat_server", srv, handle, &chat);
    }
    free(chat.json);
    free(joined);
    return exit_code;
}
