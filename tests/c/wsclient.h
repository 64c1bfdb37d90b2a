/* A minimal blocking WebSocket client for the ABI tests, so the C suite needs no other
 * runtime. It talks to 127.0.0.1 only, uses one fixed Sec-WebSocket-Key (the RFC 6455
 * §1.3 sample, whose accept value is WSC_ACCEPT), masks every frame it sends (§5.3),
 * and can also write raw bytes to break the protocol on purpose.
 *
 * Every socket it opens has a receive timeout (WSC_RECV_TIMEOUT_S), so a test whose
 * server never answers fails instead of hanging. */
#ifndef WSQ_WSCLIENT_H
#define WSQ_WSCLIENT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WSC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WSC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
#define WSC_RECV_TIMEOUT_S 10

enum { WSC_CONT = 0, WSC_TEXT = 1, WSC_BINARY = 2, WSC_CLOSE = 8, WSC_PING = 9, WSC_PONG = 10 };

/* One frame read from the server. `data` is malloc'd (never NULL after a successful
 * read, even for an empty payload); free it with wsc_frame_free. */
typedef struct {
    int opcode;
    bool fin;
    bool masked; /* servers must never mask (§5.1) */
    uint8_t *data;
    size_t len;
} wsc_frame_t;

/* A TCP connection to 127.0.0.1:port with the receive timeout set; -1 on failure. */
int wsc_tcp_connect(uint16_t port);

/* Writes all bytes; 0 or -1. Never raises SIGPIPE. */
int wsc_write_all(int fd, const void *buf, size_t len);

/* Reads exactly len bytes; 0, or -1 on EOF, error or timeout. */
int wsc_read_exact(int fd, void *buf, size_t len);

/* Reads an HTTP head up to and including the blank line into buf (NUL-terminated),
 * one byte at a time so nothing after it is consumed. Returns its length or -1. */
int wsc_read_head(int fd, char *buf, size_t cap);

/* Reads an HTTP response head into buf; returns its status code or -1. */
int wsc_read_response(int fd, char *buf, size_t cap);

/* Writes an upgrade request for `path` (with `extra` header lines, each ending in
 * CRLF, or NULL) into buf; returns its length. */
size_t wsc_format_upgrade(char *buf, size_t cap, const char *path, const char *extra);

/* Sends an upgrade request and reads the response head; returns the status or -1. */
int wsc_handshake(int fd, const char *path, const char *extra, char *head, size_t cap);

/* Connects and completes a handshake (101 with the right accept value); fd or -1. */
int wsc_open(uint16_t port, const char *path, const char *extra);

/* Copies the value of response header `name` (case-insensitive) from `head` into out;
 * returns true if the header is present. */
bool wsc_header(const char *head, const char *name, char *out, size_t cap);

/* Sends one masked frame. */
int wsc_send_frame(int fd, bool fin, int opcode, const void *data, size_t len);

/* Sends a close frame with `code` and `reason` (code 0: an empty close frame). */
int wsc_send_close(int fd, uint16_t code, const char *reason);

/* Reads one frame. Returns its opcode; -1 on EOF (or error, or timeout) before the
 * frame's first byte; WSC_TRUNCATED when the stream ends inside a frame. */
#define WSC_TRUNCATED (-2)
int wsc_read_frame(int fd, wsc_frame_t *frame);
void wsc_frame_free(wsc_frame_t *frame);

/* The close code in a close frame's payload (0 if the payload is empty). */
uint16_t wsc_close_code(const wsc_frame_t *frame);

/* True when the server has closed the TCP connection (the next read gives EOF or a
 * reset) within the receive timeout; bytes still arriving before that are skipped. */
bool wsc_wait_eof(int fd);

/* "127.0.0.1:port" of the socket's local end, as the server sees its peer. */
void wsc_local_addr(int fd, char *buf, size_t cap);
#endif
