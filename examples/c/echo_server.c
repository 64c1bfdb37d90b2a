/*
 * echo_server: sends every WebSocket message back to its sender, unchanged (text as
 * text, binary as binary). The reference peer for the interop tests and benchmarks.
 *
 *   [ECHO_MAX_CONNECTIONS=N] [ECHO_PING_INTERVAL_MS=MS] [ECHO_REACTOR_THREADS=N] [ECHO_POLL=1]
 *   echo_server [port=9002] [--deflate off|shared|dedicated] [--deflate-level 0-9]
 *               [--tls CERT.pem KEY.pem] [static_dir]
 *
 * --deflate picks the permessage-deflate mode (RFC 7692; default: the library's,
 * shared): "dedicated" keeps a compression context per connection, "off" declines
 * every offer. --deflate-level sets the zlib level (default 6). --tls makes the port a
 * wss:// one, presenting that certificate chain (leaf first) and private key (PEM
 * files); the "listening on" line is the same.
 *
 * Listens on 127.0.0.1 (port 0 picks a free port), prints
 * "listening on 127.0.0.1:PORT" once ready, and runs until SIGINT or SIGTERM, then
 * shuts down gracefully (close 1001 to every client) and exits 0. Messages may be up
 * to 64 MiB; up to 19,000 clients at once by default (the open-file limit is raised to
 * its hard limit for them), so a 19,000-connection benchmark is not refused with 503.
 *
 * Events go to a handler on the library's I/O threads (wsq_config_t.on_event: no
 * queue, no hand-over between threads, the fastest way to echo); ECHO_POLL=1 polls
 * them on the main thread instead (wsq_poll, the same handler), for comparison.
 *
 * Three benchmark settings come from the environment, kept off the command line; a
 * value that is not a whole number in range is refused (exit 2):
 *  - ECHO_MAX_CONNECTIONS: the connection cap (max_connections), 1 to 4294967295;
 *  - ECHO_PING_INTERVAL_MS: keepalive pings to a client silent that long
 *    (ping_interval_ms; 0, the default, sends none), 0 to 4294967295;
 *  - ECHO_REACTOR_THREADS: I/O threads (reactor_threads; 0, the default, is one per
 *    core the process may run on; the library refuses more than 1024).
 *
 * Backpressure: the library buffers every echo; there is no backlog here. A send that
 * returns WSQ_BACKPRESSURE was accepted all the same: the client's buffered echoes are
 * over the soft limit, and the library stops reading that client until they drain to
 * the low-water mark (WSQ_EVENT_DRAIN), so TCP slows a client that sends faster than
 * it reads. The limits are chosen so that no echo is ever lost in silence:
 *  - soft limit 192 MiB (three maximal messages): a client may send that much before
 *    it reads anything (the interop suite sends 160 MiB first) and still be read;
 *  - low water 96 MiB: reading resumes once half of that has gone out;
 *  - hard limit 448 MiB: room for four more maximal messages, already read before
 *    reading stopped, on top of the soft limit;
 *  - past the hard limit (a client that lets its echoes grow beyond all that) the
 *    send is refused and the WSQ_SLOW_CONSUMER_CLOSE policy closes the client with
 *    1008; the echo server says so on stderr. The same happens if every client
 *    together reaches the server's budget of 1 GiB (max_buffered_bytes), which bounds
 *    the memory all clients can hold.
 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_common.h"
#include "wsqueue.h"

#define DEFAULT_PORT 9002
#define MiB (1024ull * 1024ull)
#define MAX_MESSAGE_SIZE (64 * MiB)
#define SEND_QUEUE_SOFT_LIMIT (3 * MAX_MESSAGE_SIZE)
#define SEND_QUEUE_LOW_WATER (SEND_QUEUE_SOFT_LIMIT / 2)
#define SEND_QUEUE_HARD_LIMIT (SEND_QUEUE_SOFT_LIMIT + 4 * MAX_MESSAGE_SIZE)
#define MAX_BUFFERED_BYTES (1024 * MiB)
#define MAX_CONNECTIONS 19000
#define CLOSE_POLICY_VIOLATION 1008

/* Reads a uint32_t option from the environment into *out (left alone if unset).
 * Returns 0, after saying why, if it is set but not a whole number in [min, UINT32_MAX]. */
static int env_u32(const char *name, uint32_t min, uint32_t *out)
{
    const char *v = getenv(name);
    if (!v)
        return 1;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno != 0 || v[0] == '\0' || v[0] == '-' || *end != '\0' || n < min || n > UINT32_MAX) {
        fprintf(stderr, "echo_server: %s=%s: expected a whole number from %u to %u\n", name, v,
                (unsigned)min, (unsigned)UINT32_MAX);
        return 0;
    }
    *out = (uint32_t)n;
    return 1;
}

static void echo(const wsq_server_t *srv, const wsq_event_t *ev)
{
    wsq_result_t rc = wsq_send(srv, ev->conn, ev->message_kind, ev->data, ev->len);
    switch (rc) {
    case WSQ_OK:
    case WSQ_BACKPRESSURE: /* queued either way */
    case WSQ_ERR_CLOSED:
    case WSQ_ERR_NOT_FOUND:
    case WSQ_ERR_STOPPED: /* the client is leaving: its close event follows */
        return;
    case WSQ_ERR_QUEUE_FULL: {
        static const char reason[] = "echoes not read";
        fprintf(stderr, "echo_server: connection %llu: echo of %zu bytes refused (%s): closed "
                "with %d\n", (unsigned long long)ev->conn, ev->len, wsq_last_error(),
                CLOSE_POLICY_VIOLATION);
        /* At the hard limit the policy closes it; at the server's budget the header
         * promises only the refusal, so close it here (again is harmless). Either
         * way the client learns that it lost an echo. */
        wsq_close(srv, ev->conn, CLOSE_POLICY_VIOLATION, reason, sizeof reason - 1);
        return;
    }
    default:
        fprintf(stderr, "echo_server: wsq_send: %s (%s)\n", wsq_strerror(rc), wsq_last_error());
    }
}

static void handle(void *ctx, const wsq_server_t *srv, const wsq_event_t *ev)
{
    (void)ctx;
    if (ev->event_type == WSQ_EVENT_MESSAGE)
        echo(srv, ev);
    /* open, close, drain (the library resumes reading by itself): nothing to do */
}

/* "--deflate MODE" and "--deflate-level N" after the port: into cfg, and removed from
 * argv. Returns 0 (after printing the usage) on a bad value. */
static int take_deflate_options(int *argc, char **argv, wsq_config_t *cfg)
{
    int i = 2;
    while (i < *argc) {
        const char *opt = argv[i];
        if (strcmp(opt, "--deflate") != 0 && strcmp(opt, "--deflate-level") != 0) {
            i++;
            continue;
        }
        const char *v = i + 1 < *argc ? argv[i + 1] : "";
        int ok = 1;
        if (strcmp(opt, "--deflate-level") == 0) {
            char *end;
            long level = strtol(v, &end, 10);
            ok = v[0] != '\0' && *end == '\0' && level >= 0 && level <= 9;
            if (ok)
                cfg->deflate_level = (uint32_t)level;
        } else if (strcmp(v, "off") == 0) {
            cfg->deflate = WSQ_DEFLATE_OFF;
        } else if (strcmp(v, "shared") == 0) {
            cfg->deflate = WSQ_DEFLATE_SHARED;
        } else if (strcmp(v, "dedicated") == 0) {
            cfg->deflate = WSQ_DEFLATE_DEDICATED;
        } else {
            ok = 0;
        }
        if (!ok) {
            fprintf(stderr,
                    "usage: %s [port=%u] [--deflate off|shared|dedicated] [--deflate-level 0-9] "
                    "[--tls CERT.pem KEY.pem] [static_dir]\n",
                    argv[0], (unsigned)DEFAULT_PORT);
            return 0;
        }
        for (int j = i + 2; j <= *argc; j++) /* argv[argc] is NULL: moved too */
            argv[j - 2] = argv[j];
        *argc -= 2;
    }
    return 1;
}

int main(int argc, char **argv)
{
    uint16_t port;
    const char *static_dir;
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    if (!take_deflate_options(&argc, argv, &cfg))
        return 2;
    if (!example_take_tls(&argc, argv, &cfg,
                          "[port] [--deflate MODE] [--tls CERT.pem KEY.pem] [static_dir]"))
        return 2;
    if (!example_parse_args(argc, argv, DEFAULT_PORT, "static_dir", NULL, &port, &static_dir))
        return 2;

    cfg.max_connections = MAX_CONNECTIONS;
    cfg.max_frame_size = MAX_MESSAGE_SIZE;
    cfg.max_message_size = MAX_MESSAGE_SIZE;
    cfg.send_queue_soft_limit = SEND_QUEUE_SOFT_LIMIT;
    cfg.send_queue_low_water = SEND_QUEUE_LOW_WATER;
    cfg.send_queue_hard_limit = SEND_QUEUE_HARD_LIMIT;
    cfg.slow_consumer = WSQ_SLOW_CONSUMER_CLOSE;
    cfg.max_buffered_bytes = MAX_BUFFERED_BYTES;
    cfg.static_dir = static_dir;
    if (!env_u32("ECHO_MAX_CONNECTIONS", 1, &cfg.max_connections) ||
        !env_u32("ECHO_PING_INTERVAL_MS", 0, &cfg.ping_interval_ms) ||
        !env_u32("ECHO_REACTOR_THREADS", 0, &cfg.reactor_threads))
        return 2;

    const char *poll_env = getenv("ECHO_POLL");
    int poll = poll_env && strcmp(poll_env, "1") == 0;
    if (poll_env && !poll && strcmp(poll_env, "0") != 0) {
        fprintf(stderr, "echo_server: ECHO_POLL=%s: expected 0 or 1\n", poll_env);
        return 2;
    }
    if (!poll)
        cfg.on_event = handle; /* the same function, called on the I/O threads */

    wsq_server_t *srv = example_start("echo_server", &cfg, port, "", "");
    if (!srv)
        return 1;
    return poll ? example_run("echo_server", srv, handle, NULL) : example_wait(srv);
}
