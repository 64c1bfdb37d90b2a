/*
 * example_common.h: the startup and shutdown code both C examples share. A header of
 * static functions (not a .c file) because each example builds from its single .c:
 *   cc ... examples/c/NAME.c -o build/NAME -lwsqueue
 *
 *   example_parse_args  [port] [static_dir] from the command line
 *   example_take_tls    "--tls CERT.pem KEY.pem" after the port: serve wss:// instead
 *   example_start       open-file limit, signals, wsq_server_start on 127.0.0.1:PORT,
 *                       then the "listening on ..." line, flushed
 *   example_run         the poll loop until SIGINT/SIGTERM, then a graceful stop
 *   example_wait        handler mode (wsq_config_t.on_event): waits for SIGINT/SIGTERM,
 *                       then a graceful stop
 */
#ifndef WSQ_EXAMPLE_COMMON_H
#define WSQ_EXAMPLE_COMMON_H

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "wsqueue.h"

#define EXAMPLE_POLL_BATCH 64
/* How quickly a stop signal is noticed: the handler only sets a flag. */
#define EXAMPLE_POLL_TIMEOUT_MS 100
/* Graceful stop: close 1001 to everyone after their queued messages, then wait. */
#define EXAMPLE_STOP_TIMEOUT_MS 2000

static volatile sig_atomic_t example_stop_requested = 0;

static inline void example_on_signal(int signo)
{
    (void)signo;
    example_stop_requested = 1;
}

/* argv: [port=default_port] [static_dir=default_dir]. Prints the usage and returns 0
 * if they do not parse. */
static inline int example_parse_args(int argc, char **argv, uint16_t default_port,
                                     const char *dir_usage, const char *default_dir,
                                     uint16_t *port, const char **static_dir)
{
    *port = default_port;
    *static_dir = argc > 2 ? argv[2] : default_dir;
    if (argc <= 3 && argc > 1) {
        char *end;
        errno = 0;
        long v = strtol(argv[1], &end, 10);
        if (errno == 0 && argv[1][0] != '\0' && *end == '\0' && v >= 0 && v <= 65535) {
            *port = (uint16_t)v;
            return 1;
        }
    } else if (argc <= 1) {
        return 1;
    }
    fprintf(stderr, "usage: %s [port=%u] [%s]\n", argv[0], (unsigned)default_port, dir_usage);
    return 0;
}

/* "--tls CERT.pem KEY.pem" anywhere after the port: the port speaks TLS (wss://, and
 * https:// for static files) with that certificate chain and key, read by
 * wsq_server_start (an unusable one fails the start with WSQ_ERR_TLS). Removed from
 * argv; returns 0 (after printing `usage`) when the two paths are missing. */
static inline int example_take_tls(int *argc, char **argv, wsq_config_t *cfg, const char *usage)
{
    for (int i = 2; i < *argc; i++) {
        if (strcmp(argv[i], "--tls") != 0)
            continue;
        if (i + 2 >= *argc || argv[i + 1][0] == '\0' || argv[i + 2][0] == '\0') {
            fprintf(stderr, "usage: %s %s\n", argv[0], usage);
            return 0;
        }
        cfg->tls_cert_chain_file = argv[i + 1];
        cfg->tls_private_key_file = argv[i + 2];
        for (int j = i + 3; j <= *argc; j++) /* argv[argc] is NULL: moved too */
            argv[j - 3] = argv[j];
        *argc -= 3;
        return 1;
    }
    return 1;
}

/* Every connection is a file descriptor: take the hard limit, not the (often 1024) soft
 * one, so max_connections is what bounds the server. */
static inline void example_raise_fd_limit(const char *name, uint32_t max_connections)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0 && getrlimit(RLIMIT_NOFILE, &rl) != 0)
            return;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)max_connections + 64)
        fprintf(stderr, "%s: note: the open-file limit (%llu) is below max_connections (%u)\n",
                name, (unsigned long long)rl.rlim_cur, (unsigned)max_connections);
}

/* Starts `cfg` on 127.0.0.1:port and prints "listening on PREFIX127.0.0.1:PORTSUFFIX"
 * (stdout flushed: scripts wait for that line). With a certificate set (see
 * example_take_tls) the port is a TLS one, and a PREFIX of "http://" or "ws://" is
 * printed as "https://" or "wss://". NULL (after saying why) on failure. */
static inline wsq_server_t *example_start(const char *name, wsq_config_t *cfg, uint16_t port,
                                          const char *prefix, const char *suffix)
{
    example_raise_fd_limit(name, cfg->max_connections);
    /* The library writes with MSG_NOSIGNAL; ignoring SIGPIPE is the habit of any
     * socket server all the same. */
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = example_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* The library's threads inherit the signal mask of the thread that starts them:
     * blocking the stop signals around wsq_server_start makes them arrive here, in
     * the thread that checks the flag, and interrupt nothing of the library's. */
    sigset_t stop_signals, old_mask;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask);

    char listen[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%u", (unsigned)port);
    int tls = cfg->tls_cert_chain_file != NULL;
    /* borrowed only during wsq_server_start */
    cfg->listen = tls ? "" : listen;
    cfg->tls_listen = tls ? listen : NULL;
    wsq_server_t *srv = NULL;
    wsq_result_t rc = wsq_server_start(cfg, &srv);
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    cfg->listen = NULL;
    cfg->tls_listen = NULL;
    if (rc != WSQ_OK) {
        fprintf(stderr, "%s: cannot start on %s: %s (%s)\n", name, listen, wsq_strerror(rc),
                wsq_last_error());
        if (strstr(wsq_last_error(), "in use"))
            fprintf(stderr, "%s: port %u is taken: pass another port (make demo: DEMO_PORT=%u make demo)\n",
                    name, (unsigned)port, (unsigned)port + 1);
        return NULL;
    }
    wsq_server_port(srv, &port);
    if (tls && strcmp(prefix, "http://") == 0)
        prefix = "https://";
    else if (tls && strcmp(prefix, "ws://") == 0)
        prefix = "wss://";
    printf("listening on %s127.0.0.1:%u%s\n", prefix, (unsigned)port, suffix);
    fflush(stdout);
    return srv;
}

typedef void (*example_handler)(void *ctx, const wsq_server_t *srv, const wsq_event_t *ev);

/* Polls events in batches and hands each to `handle` until a stop signal; then stops
 * gracefully, releases what is left (closes: nobody remains to tell) and frees the
 * server. Returns the exit status. */
static inline int example_run(const char *name, wsq_server_t *srv, example_handler handle,
                              void *ctx)
{
    int exit_code = 0;
    wsq_event_t events[EXAMPLE_POLL_BATCH];
    while (!example_stop_requested) {
        size_t n = 0;
        wsq_result_t rc = wsq_poll(srv, events, EXAMPLE_POLL_BATCH, EXAMPLE_POLL_TIMEOUT_MS, &n);
        if (rc != WSQ_OK) {
            fprintf(stderr, "%s: wsq_poll: %s (%s)\n", name, wsq_strerror(rc), wsq_last_error());
            exit_code = 1;
            break;
        }
        for (size_t i = 0; i < n; i++)
            handle(ctx, srv, &events[i]);
        wsq_events_release(events, n);
    }
    wsq_server_stop(srv, EXAMPLE_STOP_TIMEOUT_MS);
    /* After the stop, poll returns the remaining events without blocking. */
    for (;;) {
        size_t n = 0;
        if (wsq_poll(srv, events, EXAMPLE_POLL_BATCH, 0, &n) != WSQ_OK || n == 0)
            break;
        wsq_events_release(events, n);
    }
    wsq_server_free(srv);
    return exit_code;
}

/* Handler mode (wsq_config_t.on_event): the library's I/O threads run the handler, so
 * this thread only waits for a stop signal; then it stops gracefully (the handler
 * still gets the close events meanwhile) and frees the server. Returns 0. */
static inline int example_wait(wsq_server_t *srv)
{
    /* Blocked while the flag is checked, and unblocked only inside sigsuspend: a
     * signal that arrives in between is not lost. */
    sigset_t stop_signals, wait_mask;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, &wait_mask);
    sigdelset(&wait_mask, SIGINT);
    sigdelset(&wait_mask, SIGTERM);
    while (!example_stop_requested)
        sigsuspend(&wait_mask);
    pthread_sigmask(SIG_UNBLOCK, &stop_signals, NULL);
    wsq_server_stop(srv, EXAMPLE_STOP_TIMEOUT_MS);
    wsq_server_free(srv);
    return 0;
}

#endif /* WSQ_EXAMPLE_COMMON_H */
