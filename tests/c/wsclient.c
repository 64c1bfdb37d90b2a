/* The test suite's WebSocket client (see wsclient.h). */
#include "wsclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int wsc_tcp_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {WSC_RECV_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int wsc_write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int wsc_read_exact(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = recv(fd, p, len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int wsc_read_head(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    if (cap == 0) return -1;
    buf[0] = 0;
    while (n + 1 < cap) {
        if (wsc_read_exact(fd, buf + n, 1) != 0) return -1;
        n++;
        buf[n] = 0;
        if (n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0) return (int)n;
    }
    return -1;
}

int wsc_read_response(int fd, char *buf, size_t cap)
{
    if (wsc_read_head(fd, buf, cap) < 0) return -1;
    int status = -1;
    if (sscanf(buf, "HTTP/1.1 %d", &status) != 1) return -1;
    return status;
}

size_t wsc_format_upgrade(char *buf, size_t cap, const char *path, const char *extra)
{
    int n = snprintf(buf, cap,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: " WSC_KEY "\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     path, extra ? extra : "");
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

int wsc_handshake(int fd, const char *path, const char *extra, char *head, size_t cap)
{
    char req[4096];
    size_t n = wsc_format_upgrade(req, sizeof req, path, extra);
    if (wsc_write_all(fd, req, n) != 0) return -1;
    return wsc_read_response(fd, head, cap);
}

int wsc_open(uint16_t port, const char *path, const char *extra)
{
    int fd = wsc_tcp_connect(port);
    if (fd < 0) return -1;
    char head[4096], accept[64];
    if (wsc_handshake(fd, path, extra, head, sizeof head) != 101 ||
        !wsc_header(head, "Sec-WebSocket-Accept", accept, sizeof accept) ||
        strcmp(accept, WSC_ACCEPT) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

bool wsc_header(const char *head, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    const char *line = strstr(head, "\r\n");
    while (line && line[2] != '\r' && line[2] != 0) {
        line += 2;
        if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (*v == ' ' || *v == '\t') v++;
            const char *end = strstr(v, "\r\n");
            size_t len = end ? (size_t)(end - v) : strlen(v);
            while (len && (v[len - 1] == ' ' || v[len - 1] == '\t')) len--;
            if (cap) {
                size_t k = len < cap - 1 ? len : cap - 1;
                memcpy(out, v, k);
                out[k] = 0;
            }
            return true;
        }
        line = strstr(line, "\r\n");
    }
    return false;
}

int wsc_send_frame(int fd, bool fin, int opcode, const void *data, size_t len)
{
    uint8_t hdr[14];
    size_t h = 0;
    hdr[h++] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
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
    /* A fixed, non-zero key: masking correctness, not secrecy, is what is tested. */
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    memcpy(hdr + h, key, 4);
    h += 4;
    uint8_t *masked = malloc(len ? len : 1);
    if (!masked) return -1;
    for (size_t i = 0; i < len; i++) masked[i] = ((const uint8_t *)data)[i] ^ key[i % 4];
    int rc = (wsc_write_all(fd, hdr, h) == 0 && wsc_write_all(fd, masked, len) == 0) ? 0 : -1;
    free(masked);
    return rc;
}

int wsc_send_close(int fd, uint16_t code, const char *reason)
{
    uint8_t payload[125];
    size_t n = 0;
    if (code) {
        payload[n++] = (uint8_t)(code >> 8);
        payload[n++] = (uint8_t)code;
        size_t r = reason ? strlen(reason) : 0;
        if (r > sizeof payload - 2) r = sizeof payload - 2;
        if (r) memcpy(payload + n, reason, r);
        n += r;
    }
    return wsc_send_frame(fd, true, WSC_CLOSE, payload, n);
}

int wsc_read_frame(int fd, wsc_frame_t *f)
{
    memset(f, 0, sizeof *f);
    uint8_t h[2];
    if (wsc_read_exact(fd, h, 1) != 0) return -1;
    if (wsc_read_exact(fd, h + 1, 1) != 0) return WSC_TRUNCATED;
    uint64_t n = h[1] & 0x7F;
    if (n == 126) {
        uint8_t e[2];
        if (wsc_read_exact(fd, e, 2) != 0) return WSC_TRUNCATED;
        n = ((uint64_t)e[0] << 8) | e[1];
    } else if (n == 127) {
        uint8_t e[8];
        if (wsc_read_exact(fd, e, 8) != 0) return WSC_TRUNCATED;
        n = 0;
        for (int i = 0; i < 8; i++) n = (n << 8) | e[i];
    }
    uint8_t key[4] = {0};
    f->masked = (h[1] & 0x80) != 0;
    if (f->masked && wsc_read_exact(fd, key, 4) != 0) return WSC_TRUNCATED;
    if (n > (uint64_t)256 << 20) return -1; /* the tests never send this much */
    f->data = malloc(n ? (size_t)n : 1);
    if (!f->data) return -1;
    if (n && wsc_read_exact(fd, f->data, (size_t)n) != 0) {
        wsc_frame_free(f);
        return WSC_TRUNCATED;
    }
    if (f->masked)
        for (uint64_t i = 0; i < n; i++) f->data[i] ^= key[i % 4];
    f->len = (size_t)n;
    f->fin = (h[0] & 0x80) != 0;
    f->opcode = h[0] & 0x0F;
    return f->opcode;
}

void wsc_frame_free(wsc_frame_t *f)
{
    free(f->data);
    f->data = NULL;
    f->len = 0;
}

uint16_t wsc_close_code(const wsc_frame_t *f)
{
    if (f->len < 2) return 0;
    return (uint16_t)((f->data[0] << 8) | f->data[1]);
}

bool wsc_wait_eof(int fd)
{
    uint8_t buf[4096];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0) return true;
        if (n < 0) return errno == ECONNRESET;
    }
}

void wsc_local_addr(int fd, char *buf, size_t cap)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    char ip[INET_ADDRSTRLEN] = "?";
    if (getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
    snprintf(buf, cap, "%s:%u", ip, (unsigned)ntohs(a.sin_port));
}
