/* wss:// through the C config: tls_listen with a certificate and key from files or from
 * memory, the error codes of certificates that cannot be used (WSQ_ERR_TLS, with a
 * detail naming the problem) and of an incomplete TLS config (invalid argument), and
 * the defined outcome of plain HTTP on a TLS port (an alert, a close, tls_errors).
 *
 * The certificate files come from run.sh (examples/tls/make_certs.rs, into
 * build/ctests/tls/): WSQ_TEST_TLS_DIR names the directory. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "support.h"
#include "wsclient.h"

static const char *tls_dir(void)
{
    const char *d = getenv("WSQ_TEST_TLS_DIR");
    return d ? d : "build/ctests/tls";
}

static void path_of(char *out, size_t cap, const char *file)
{
    snprintf(out, cap, "%s/%s", tls_dir(), file);
}

/* The whole file, malloc'ed (NULL if unreadable); *len its size. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc(1 << 16);
    size_t n = buf ? fread(buf, 1, 1 << 16, f) : 0;
    fclose(f);
    *len = n;
    return buf;
}

/* A config with plain and TLS listeners on ephemeral ports. */
static void tls_config(wsq_config_t *cfg, char *cert, char *key, size_t cap)
{
    wsq_config_init(cfg);
    path_of(cert, cap, "server.pem");
    path_of(key, cap, "server.key");
    cfg->listen = "127.0.0.1:0";
    cfg->tls_listen = "127.0.0.1:0";
    cfg->tls_cert_chain_file = cert;
    cfg->tls_private_key_file = key;
    cfg->reactor_threads = 1;
}

static uint16_t port_of(wsq_server_t *srv, size_t index)
{
    char addr[64];
    if (wsq_server_local_addr(srv, index, addr, sizeof addr) != WSQ_OK) return 0;
    const char *colon = strrchr(addr, ':');
    return colon ? (uint16_t)atoi(colon + 1) : 0;
}

/* Sends `bytes` to the TLS port; true when the answer is a fatal TLS alert followed by
 * the end of the connection. */
static bool answered_with_alert_and_close(uint16_t port, const char *bytes)
{
    int fd = wsc_tcp_connect(port);
    if (fd < 0) return false;
    unsigned char rec[7] = {0};
    bool ok = wsc_write_all(fd, bytes, strlen(bytes)) == 0 && wsc_read_exact(fd, rec, 7) == 0 &&
              rec[0] == 21 /* alert */ && rec[5] == 2 /* fatal */ && wsc_wait_eof(fd);
    close(fd);
    return ok;
}

static void files_start_a_tls_listener_after_the_plain_one(void)
{
    char cert[512], key[512];
    wsq_config_t cfg;
    tls_config(&cfg, cert, key, sizeof cert);
    wsq_server_t *srv = NULL;
    CHECK_RC(wsq_server_start(&cfg, &srv), WSQ_OK);
    REQUIRE(srv != NULL);
    uint16_t plain = port_of(srv, 0), tls = port_of(srv, 1);
    CHECK(plain != 0 && tls != 0 && plain != tls);
    /* The plain port still speaks plain WebSocket. */
    int fd = wsc_open(plain, "/", NULL);
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    /* The TLS one answers plain HTTP with an alert, counted. */
    CHECK(answered_with_alert_and_close(tls, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    wsq_stats_t st;
    CHECK_RC(wsq_stats(srv, &st), WSQ_OK);
    CHECK(st.tls_errors == 1);
    CHECK(st.http_requests == 0);
    wsq_server_free(srv);
}

static void pem_in_memory_starts_a_tls_only_server(void)
{
    char cert[512], key[512];
    path_of(cert, sizeof cert, "server.pem");
    path_of(key, sizeof key, "server.key");
    size_t cert_len = 0, key_len = 0;
    char *cert_pem = slurp(cert, &cert_len), *key_pem = slurp(key, &key_len);
    REQUIRE(cert_pem && key_pem && cert_len > 0 && key_len > 0);
    wsq_config_t cfg;
    wsq_config_init(&cfg);
    cfg.listen = ""; /* wss:// only */
    cfg.tls_listen = "127.0.0.1:0";
    cfg.tls_cert_chain_pem = (const uint8_t *)cert_pem;
    cfg.tls_cert_chain_pem_len = cert_len;
    cfg.tls_private_key_pem = (const uint8_t *)key_pem;
    cfg.tls_private_key_pem_len = key_len;
    cfg.tls_cert_chain_file = "/nonexistent/ignored-when-pem-is-set.pem";
    wsq_server_t *srv = NULL;
    CHECK_RC(wsq_server_start(&cfg, &srv), WSQ_OK);
    /* Borrowed only during the start: the buffers may go now. */
    memset(cert_pem, 0, cert_len);
    free(cert_pem);
    memset(key_pem, 0, key_len);
    free(key_pem);
    REQUIRE(srv != NULL);
    uint16_t port = 0;
    CHECK_RC(wsq_server_port(srv, &port), WSQ_OK);
    CHECK(port == port_of(srv, 0));
    CHECK(answered_with_alert_and_close(port, "\x16\x03\x01\xff\xff garbage"));
    wsq_server_free(srv);
}

static void unusable_certificates_fail_the_start_with_wsq_err_tls(void)
{
    char cert[512], key[512], other[512];
    wsq_config_t cfg;
    wsq_server_t *srv = NULL;

    tls_config(&cfg, cert, key, sizeof cert);
    path_of(other, sizeof other, "absent.pem");
    cfg.tls_cert_chain_file = other;
    CHECK_FAILS(wsq_server_start(&cfg, &srv), WSQ_ERR_TLS);
    CHECK(strstr(wsq_last_error(), "cannot read") != NULL);
    CHECK(srv == NULL);

    tls_config(&cfg, cert, key, sizeof cert);
    cfg.tls_cert_chain_file = key; /* a key where the chain belongs */
    CHECK_FAILS(wsq_server_start(&cfg, &srv), WSQ_ERR_TLS);
    CHECK(strstr(wsq_last_error(), "no CERTIFICATE") != NULL);

    tls_config(&cfg, cert, key, sizeof cert);
    static const char not_pem[] = "not a key at all";
    cfg.tls_private_key_pem = (const uint8_t *)not_pem;
    cfg.tls_private_key_pem_len = sizeof not_pem - 1;
    CHECK_FAILS(wsq_server_start(&cfg, &srv), WSQ_ERR_TLS);
    CHECK(strstr(wsq_last_error(), "private_key") != NULL);

    tls_config(&cfg, cert, key, sizeof cert);
    path_of(other, sizeof other, "ca.pem"); /* the CA's certificate, not matching the key */
    cfg.tls_cert_chain_file = other;
    CHECK_FAILS(wsq_server_start(&cfg, &srv), WSQ_ERR_TLS);
    CHECK(srv == NULL);

    CHECK(strcmp(wsq_strerror(WSQ_ERR_TLS), "unknown result code") != 0);
}

static void an_incomplete_tls_config_is_an_invalid_argument(void)
{
    char cert[512], key[512];
    wsq_config_t cfg;
    wsq_server_t *srv = NULL;

    tls_config(&cfg, cert, key, sizeof cert);
    cfg.tls_private_key_file = NULL; /* and no PEM bytes either */
    CHECK_FAILS(wsq_server_start(&cfg, &srv), WSQ_ERR_INVALID_ARGUMENT);

    tls_config(&cfg, cert, key, sizeof cert);
    cfg.tls_listen = "not an address";
    CHECK_FAILS(wsq_server_start(&cfg, &srv), WSQ_ERR_INVALID_ARGUMENT);

    tls_config(&cfg, cert, key, sizeof cert);
    cfg.listen = "";
    cfg.tls_listen = ""; /* nothing to listen on at all */
    CHECK_FAILS(wsq_server_start(&cfg, &srv), WSQ_ERR_INVALID_ARGUMENT);
    CHECK(srv == NULL);
}

TEST_MAIN(
    TEST(files_start_a_tls_listener_after_the_plain_one),
    TEST(pem_in_memory_starts_a_tls_only_server),
    TEST(unusable_certificates_fail_the_start_with_wsq_err_tls),
    TEST(an_incomplete_tls_config_is_an_invalid_argument),
)
