/* Server-side helpers shared by the C ABI tests (see support.h). */
#include "support.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wsclient.h"

/* Polls in short slices so a missing event fails after FX_HANG_GUARD_MS, not never. */
#define FX_SLICE_MS 100
#define FX_HANG_GUARD_MS 10000

bool fx_start(fixture_t *fx, wsq_config_t *cfg)
{
    memset(fx, 0, sizeof *fx);
    wsq_config_t local;
    if (!cfg) {
        wsq_config_init(&local);
        cfg = &local;
    }
    cfg->listen = "127.0.0.1:0";
    if (cfg->reactor_threads == 0) cfg->reactor_threads = 2;
    wsq_result_t rc = wsq_server_start(cfg, &fx->srv);
    if (rc != WSQ_OK) {
        fprintf(stderr, "wsq_server_start: %s: %s\n", wsq_strerror(rc), wsq_last_error());
        return false;
    }
    if (wsq_server_port(fx->srv, &fx->port) != WSQ_OK || fx->port == 0) {
        fprintf(stderr, "wsq_server_port failed: %s\n", wsq_last_error());
        return false;
    }
    return true;
}

void fx_drop_pending(fixture_t *fx)
{
    wsq_events_release(fx->pending, fx->npending);
    fx->npending = 0;
}

void fx_finish(fixture_t *fx)
{
    wsq_server_free(fx->srv);
    fx->srv = NULL;
    fx_drop_pending(fx);
    free(fx->pending);
    fx->pending = NULL;
    fx->cap = 0;
}

size_t fx_pump(fixture_t *fx, int timeout_ms)
{
    wsq_event_t evs[32];
    size_t n = 0;
    if (wsq_poll(fx->srv, evs, 32, timeout_ms, &n) != WSQ_OK) {
        fprintf(stderr, "wsq_poll failed: %s\n", wsq_last_error());
        return 0;
    }
    if (n == 0) return 0;
    if (fx->npending + n > fx->cap) {
        size_t cap = fx->cap ? fx->cap * 2 : 64;
        while (cap < fx->npending + n) cap *= 2;
        wsq_event_t *grown = realloc(fx->pending, cap * sizeof *grown);
        if (!grown) abort();
        fx->pending = grown;
        fx->cap = cap;
    }
    memcpy(fx->pending + fx->npending, evs, n * sizeof *evs);
    fx->npending += n;
    return n;
}

typedef bool (*match_fn)(const wsq_event_t *ev, const void *arg);

static bool take(fixture_t *fx, match_fn match, const void *arg, wsq_event_t *out)
{
    for (int waited = 0;; waited += FX_SLICE_MS) {
        for (size_t i = 0; i < fx->npending; i++) {
            if (match(&fx->pending[i], arg)) {
                *out = fx->pending[i];
                memmove(fx->pending + i, fx->pending + i + 1,
                        (fx->npending - i - 1) * sizeof *fx->pending);
                fx->npending--;
                return true;
            }
        }
        if (waited >= FX_HANG_GUARD_MS) return false;
        fx_pump(fx, FX_SLICE_MS);
    }
}

struct type_conn {
    uint32_t type;
    uint64_t conn;
};

static bool match_type_conn(const wsq_event_t *ev, const void *arg)
{
    const struct type_conn *tc = arg;
    return ev->event_type == tc->type && (tc->conn == 0 || ev->conn == tc->conn);
}

bool fx_wait(fixture_t *fx, uint32_t type, uint64_t conn, wsq_event_t *out)
{
    struct type_conn tc = {type, conn};
    return take(fx, match_type_conn, &tc, out);
}

uint64_t fx_wait_open(fixture_t *fx)
{
    wsq_event_t ev;
    if (!fx_wait(fx, WSQ_EVENT_OPEN, 0, &ev)) return 0;
    uint64_t id = ev.conn;
    wsq_events_release(&ev, 1);
    return id;
}

size_t fx_count(const fixture_t *fx, uint32_t type, uint64_t conn)
{
    size_t n = 0;
    for (size_t i = 0; i < fx->npending; i++)
        if (fx->pending[i].event_type == type && (conn == 0 || fx->pending[i].conn == conn)) n++;
    return n;
}

static bool match_open_from(const wsq_event_t *ev, const void *arg)
{
    return ev->event_type == WSQ_EVENT_OPEN && ev->remote_addr &&
           strcmp(ev->remote_addr, (const char *)arg) == 0;
}

bool fx_connect(fixture_t *fx, const char *path, const char *extra, client_t *out)
{
    out->fd = wsc_open(fx->port, path ? path : "/", extra);
    out->id = 0;
    if (out->fd < 0) return false;
    /* The open event names the peer address, i.e. this client's local address. */
    char addr[64];
    wsc_local_addr(out->fd, addr, sizeof addr);
    wsq_event_t ev;
    if (!take(fx, match_open_from, addr, &ev)) return false;
    out->id = ev.conn;
    wsq_events_release(&ev, 1);
    return out->id != 0;
}

bool fd_readable(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

bool fd_wait_readable(int fd, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

int listen_loopback(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}
