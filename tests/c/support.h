/* Server-side helpers shared by the C ABI tests.
 *
 * A fixture owns one server and every event polled from it that a test has not taken
 * yet, so waiting for one kind of event never silently drops another (a duplicate or
 * unexpected event stays visible to fx_count), and fx_finish releases whatever is left
 * after the server is freed: a leak report then points at the library, not the test. */
#ifndef WSQ_SUPPORT_H
#define WSQ_SUPPORT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wsqueue.h"

typedef struct {
    wsq_server_t *srv;
    uint16_t port;
    wsq_event_t *pending; /* polled, not yet taken (in arrival order) */
    size_t npending, cap;
} fixture_t;

/* Starts a server on 127.0.0.1:0 (2 reactor threads unless cfg says otherwise);
 * cfg NULL means defaults. Returns false (with the detail printed) on failure. */
bool fx_start(fixture_t *fx, wsq_config_t *cfg);

/* Frees the server, then releases every pending event. */
void fx_finish(fixture_t *fx);

/* Polls once (up to timeout_ms) and appends what arrived to the pending list;
 * returns how many arrived. */
size_t fx_pump(fixture_t *fx, int timeout_ms);

/* Takes the first event of `type` for `conn` (0: any connection), polling until it
 * arrives or the hang guard (10 s) runs out. The caller releases *out. */
bool fx_wait(fixture_t *fx, uint32_t type, uint64_t conn, wsq_event_t *out);

/* Waits for an open event and returns its connection id (0 on timeout). */
uint64_t fx_wait_open(fixture_t *fx);

/* Pending events of `type` for `conn` (0: any), without taking them. */
size_t fx_count(const fixture_t *fx, uint32_t type, uint64_t conn);

/* Releases and forgets every pending event. */
void fx_drop_pending(fixture_t *fx);

/* A WebSocket client connected to the fixture's server, and its connection id. */
typedef struct {
    int fd;
    uint64_t id;
} client_t;

/* Opens a client and waits for its open event (other events stay pending). Open
 * events of several clients connecting one after another are matched in order. */
bool fx_connect(fixture_t *fx, const char *path, const char *extra, client_t *out);

/* poll(2) says the descriptor is readable right now. */
bool fd_readable(int fd);

/* Waits (bounded by `ms`) for poll(2) to report the descriptor readable. */
bool fd_wait_readable(int fd, int ms);

/* A plain listening TCP socket on 127.0.0.1:0 (for the adopt tests); its port in *port. */
int listen_loopback(uint16_t *port);
#endif
