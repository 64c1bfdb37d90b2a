/* A minimal blocking WebSocket client for the ABI tests (127.0.0.1 only), so the C
 * suite needs no other runtime. Frames are masked as RFC 6455 §5.3 requires. */
#ifndef WSQ_WSCLIENT_H
#define WSQ_WSCLIENT_H
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int tcp_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { close(fd); return -1; }
    struct timeval tv = {10, 0}; /* hang guard */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0) return -1;
        p += n; len -= (size_t)n;
    }
    return 0;
}

static int read_exact(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = recv(fd, p, len, 0);
        if (n <= 0) return -1;
        p += n; len -= (size_t)n;
    }
    return 0;
}

/* Reads an HTTP head (up to the blank line) into buf, NUL-terminated; returns its
 * length or -1. Byte by byte, so nothing after the head is consumed. */
static int read_head(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = 0;
    while (n + 1 < cap) {
        if (recv(fd, buf + n, 1, 0) != 1) return -1;
        n++;
        buf[n] = 0;
        if (n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0) return (int)n;
    }
    return -1;
}

/* Reads an HTTP response head into buf; returns the status or -1. */
static int read_http_head(int fd, char *buf, size_t cap)
{
    if (read_head(fd, buf, cap) < 0) return -1;
    int status = -1;
    if (sscanf(buf, "HTTP/1.1 %d", &status) != 1) return -1;
    return status;
}

/* Sends an upgrade for `path` with extra header lines; returns the HTTP status. */
static int ws_handshake(int fd, const char *path, const char *extra, char *head, size_t cap)
{
    char req[2048];
    snprintf(req, sizeof req,
             "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Version: 13\r\n%s\r\n",
             path, extra ? extra : "");
    if (write_all(fd, req, strlen(req)) != 0) return -1;
    return read_http_head(fd, head, cap);
}

/* Connects and completes the handshake; returns the fd or -1. */
static int ws_open(uint16_t port, const char *path, const char *extra)
{
    int fd = tcp_connect(port);
    if (fd < 0) return -1;
    char head[4096];
    if (ws_handshake(fd, path, extra, head, sizeof head) != 101) { close(fd); return -1; }
    return fd;
}

static int ws_send_frame(int fd, int fin, int opcode, const void *data, size_t len)
{
    uint8_t hdr[14];
    size_t h = 0;
    hdr[h++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        hdr[h++] = (uint8_t)(0x80 | len);
    } else if (len <= 0xFFFF) {
        hdr[h++] = 0x80 | 126;
        hdr[h++] = (uint8_t)(len >> 8);
        hdr[h++] = (uint8_t)len;
    } else {
        hdr[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) hdr[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    const uint8_t key[4] = {0x11, 0x22, 0x33, 0x44};
    memcpy(hdr + h, key, 4);
    h += 4;
    uint8_t *masked = malloc(len ? len : 1);
    for (size_t i = 0; i < len; i++) masked[i] = ((const uint8_t *)data)[i] ^ key[i % 4];
    int rc = write_all(fd, hdr, h) || write_all(fd, masked, len);
    free(masked);
    return rc ? -1 : 0;
}

/* Reads one server frame; *data is malloc'd (caller frees). Returns opcode or -1. */
static int ws_read_frame(int fd, uint8_t **data, size_t *len)
{
    uint8_t h[2];
    if (read_exact(fd, h, 2) != 0) return -1;
    uint64_t n = h[1] & 0x7F;
    if (n == 126) {
        uint8_t e[2];
        if (read_exact(fd, e, 2) != 0) return -1;
        n = ((uint64_t)e[0] << 8) | e[1];
    } else if (n == 127) {
        uint8_t e[8];
        if (read_exact(fd, e, 8) != 0) return -1;
        n = 0;
        for (int i = 0; i < 8; i++) n = (n << 8) | e[i];
    }
    *data = malloc(n ? n : 1);
    if (n && read_exact(fd, *data, n) != 0) { free(*data); *data = NULL; return -1; }
    *len = n;
    return h[0] & 0x0F;
}
#endif
