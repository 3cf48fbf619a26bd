/* SPDX-License-Identifier: MIT */
/* tls_echo.c — a TLS echo server and its clients, written with OpenSSL's plain blocking API
 * (socket, accept, connect, SSL_accept, SSL_connect, SSL_read, SSL_write) as if each
 * connection had a thread of its own. Linked with libweft-hook, each of those calls parks
 * its coroutine instead of blocking a worker: hundreds of connections run at once on a few
 * threads, and not a line of the TLS code knows.
 *
 *   tls_echo [--clients N] [--lines L]     (default 100 clients, 50 lines each)
 *
 * The server listens on 127.0.0.1 (a free port) with a self-signed certificate for
 * "localhost" made at start (in memory); N client coroutines connect, verify it, send L
 * lines each and check every echo. Prints one line per 10 clients and a summary; exits 0 when
 * every line came back intact. WEFT_SAMPLE_FAST=1 runs 20 clients of 10 lines.
 * Build: -lweft-hook -lweft -lssl -lcrypto (CMake: weft::hook; pkg-config: weft-hook). */
#include <weft.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static SSL_CTX *server_ctx, *client_ctx;
static struct sockaddr_in server_addr;
static int lines_per_client = 50;

/* ---- the server: one coroutine per connection ----------------------------------------------- */

static weft_wg serving = WEFT_WG_INIT; /* connections still being served */

static void *serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    SSL *ssl = SSL_new(server_ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) == 1) {
        char buf[4096];
        int n;
        while ((n = SSL_read(ssl, buf, sizeof buf)) > 0) /* 0: the client said goodbye */
            if (SSL_write(ssl, buf, n) != n)
                break;
        SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    close(fd);
    weft_wg_done(&serving);
    return NULL;
}

static void *server(void *arg)
{
    int listener = *(int *)arg;
    for (;;) {
        int fd = accept(listener, NULL, NULL); /* fails (ECANCELED) when main cancels us */
        if (fd < 0)
            return NULL;
        weft_wg_add(&serving, 1);
        if (weft_spawn(NULL, serve, (void *)(intptr_t)fd) != 0) {
            weft_wg_done(&serving);
            close(fd);
        }
    }
}

/* ---- a client: connect, verify, send lines, check each echo --------------------------------- */

static int read_exactly(SSL *ssl, char *buf, int len)
{
    for (int got = 0, n; got < len; got += n)
        if ((n = SSL_read(ssl, buf + got, len - got)) <= 0)
            return -1;
    return len;
}

static void *client(void *arg)
{
    int id = (int)(intptr_t)arg;
    intptr_t intact = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    SSL *ssl = SSL_new(client_ctx);
    SSL_set1_host(ssl, "localhost"); /* the certificate must name it */
    SSL_set_fd(ssl, fd);
    if (connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr) == 0 &&
        SSL_connect(ssl) == 1) {
        for (int i = 0; i < lines_per_client; i++) {
            char line[80], echo[80];
            int len = snprintf(line, sizeof line, "client %d, line %d: hello over TLS\n", id, i);
            if (SSL_write(ssl, line, len) != len || read_exactly(ssl, echo, len) != len)
                break;
            intact += memcmp(line, echo, (size_t)len) == 0;
        }
        SSL_shutdown(ssl);
    } else {
        fprintf(stderr, "client %d: could not connect: ", id);
        ERR_print_errors_fp(stderr);
    }
    SSL_free(ssl);
    close(fd);
    if (id % 10 == 9)
        printf("client %d: %ld of %d lines echoed intact\n", id, (long)intact, lines_per_client);
    return (void *)intact;
}

/* ---- a self-signed certificate for "localhost", and the two contexts ------------------------ */

static int make_contexts(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                               (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(cert, X509_get_subject_name(cert));
    X509_set_pubkey(cert, key);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, cert, cert, NULL, NULL, 0);
    X509_EXTENSION *san = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "DNS:localhost");
    X509_add_ext(cert, san, -1);
    X509_EXTENSION_free(san);
    X509_sign(cert, key, EVP_sha256());

    server_ctx = SSL_CTX_new(TLS_server_method());
    client_ctx = SSL_CTX_new(TLS_client_method());
    int ok = SSL_CTX_use_certificate(server_ctx, cert) == 1 &&
             SSL_CTX_use_PrivateKey(server_ctx, key) == 1 &&
             X509_STORE_add_cert(SSL_CTX_get_cert_store(client_ctx), cert) == 1;
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_PEER, NULL); /* trusts only that certificate */
    X509_free(cert);
    EVP_PKEY_free(key);
    return ok ? 0 : -1;
}

static int tls_echo(void *arg)
{
    int clients = *(int *)arg;
    if (make_contexts() != 0) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    server_addr.sin_family = AF_INET;
    server_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof server_addr;
    if (bind(listener, (struct sockaddr *)&server_addr, len) != 0 || listen(listener, 1024) != 0 ||
        getsockname(listener, (struct sockaddr *)&server_addr, &len) != 0) {
        perror("tls_echo: listen");
        return 1;
    }
    printf("tls_echo: server on 127.0.0.1:%d, %d clients of %d lines\n",
           ntohs(server_addr.sin_port), clients, lines_per_client);

    int64_t start = weft_now();
    weft_task srv, *t = calloc((size_t)clients, sizeof *t);
    weft_spawn(&srv, server, &listener);
    for (int i = 0; i < clients; i++)
        weft_spawn(&t[i], client, (void *)(intptr_t)i);
    long intact = 0;
    for (int i = 0; i < clients; i++) {
        void *n = NULL;
        weft_join(t[i], &n);
        intact += (long)(intptr_t)n;
    }
    long want = (long)clients * lines_per_client;
    printf("tls_echo: %ld of %ld lines echoed intact over %d TLS connections in %.0f ms\n", intact,
           want, clients, (double)(weft_now() - start) / 1e6);
    weft_cancel(srv); /* its accept returns */
    weft_join(srv, NULL);
    weft_wg_wait(&serving); /* every connection's SSL freed before main returns */
    close(listener);
    free(t);
    SSL_CTX_free(server_ctx);
    SSL_CTX_free(client_ctx);
    return intact == want ? 0 : 1;
}

int main(int argc, char **argv)
{
    int clients = 100;
    if (getenv("WEFT_SAMPLE_FAST")) {
        clients = 20;
        lines_per_client = 10;
    }
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--clients") == 0)
            clients = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--lines") == 0)
            lines_per_client = atoi(argv[i + 1]);
    }
    if (clients < 1 || lines_per_client < 1 || argc % 2 == 0) {
        fprintf(stderr, "usage: tls_echo [--clients N] [--lines L]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN); /* a peer gone mid-write is an error return, not a signal */
    /* OpenSSL's and libc's frames on coroutine stacks: 256 KiB each (mapped lazily). */
    weft_config cfg = {.stack_size = 256 * 1024};
    return weft_run(tls_echo, &clients, &cfg);
}
