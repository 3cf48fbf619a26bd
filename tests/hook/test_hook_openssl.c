/* SPDX-License-Identifier: MIT */
/* test_hook_openssl.c — OpenSSL's plain blocking API (SSL_accept, SSL_connect, SSL_read,
 * SSL_write over blocking sockets made with socket/accept/connect), unmodified, from 100
 * concurrent TLS connections in coroutines: the hook library parks the coroutine in each
 * blocking system call, never the worker.
 *
 * A TLS server (one coroutine accepting, one per connection echoing) and 100 client
 * coroutines in one process, with a certificate made at run time (an EC P-256 key and a
 * self-signed X.509 certificate for "localhost", in memory: nothing is written anywhere).
 * Clients verify the server's certificate and host name.
 *
 * Proven by events, not by time:
 *  - concurrency: every client completes its handshake, then waits on a weft wait group
 *    until all 100 have, and only then sends. Were SSL_connect/SSL_accept/SSL_read to block
 *    their worker, a client parked at the barrier with its server-side handler parked in
 *    SSL_read would hold a worker each: the handshakes could not all complete (a watchdog
 *    thread, long after a passing run ends, reports the hang).
 *  - every echoed payload (distinct per client, 32 KiB, several TLS records) is compared
 *    byte for byte.
 *  - OpenSSL's thread-local state: every blocking SSL_* call returns on the thread it was
 *    called on (the hook's affinity rule: a coroutine parked inside a hooked call resumes on
 *    its worker), checked around each call; and errors OpenSSL queues in its thread-local
 *    error queue after parking are found there by the caller, exactly and only them:
 *    each client's last SSL_read waits for the server to drop the connection without a
 *    close_notify and must report SSL_R_UNEXPECTED_EOF_WHILE_READING; 10 plaintext clients
 *    send an HTTP request, and the server's SSL_accept must report SSL_R_HTTP_REQUEST.
 *    Under WEFT_DEBUG_MIGRATE=1 (a second ctest entry) coroutines move between workers at
 *    every park outside the hooked calls (the wait group): the test checks that they did. */
#define _GNU_SOURCE
#include "../harness.h"
#include "watchdog.h"
#include <weft.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CLIENTS 100
#define PLAINTEXT_CLIENTS 10
#define PAYLOAD (32 * 1024)

static _Atomic long checks;
static SSL_CTX *server_ctx, *client_ctx;
static int port;
static weft_wg handshaken;            /* CLIENTS handshakes to go */
static _Atomic int handshakes_done;   /* client side */
static _Atomic int server_handshakes; /* server side */
static _Atomic int http_rejected;     /* plaintext clients the server's SSL_accept refused */
static _Atomic int moved_at_barrier;  /* clients that resumed on another thread (migrate) */

/* ---- the certificate ----------------------------------------------------------------------- */

static void make_certificate(EVP_PKEY **key_out, X509 **cert_out)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    ASSERT(key != NULL);
    X509 *x = X509_new();
    ASSERT(x != NULL);
    ASSERT(X509_set_version(x, 2) == 1);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
    X509_NAME *name = X509_get_subject_name(x);
    ASSERT(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost",
                                      -1, -1, 0) == 1);
    ASSERT(X509_set_issuer_name(x, name) == 1);
    ASSERT(X509_set_pubkey(x, key) == 1);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *san =
        X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
    ASSERT(san != NULL && X509_add_ext(x, san, -1) == 1);
    X509_EXTENSION_free(san);
    ASSERT(X509_sign(x, key, EVP_sha256()) > 0);
    *key_out = key;
    *cert_out = x;
}

static void make_contexts(void)
{
    EVP_PKEY *key;
    X509 *cert;
    make_certificate(&key, &cert);
    server_ctx = SSL_CTX_new(TLS_server_method());
    ASSERT(server_ctx != NULL);
    ASSERT(SSL_CTX_use_certificate(server_ctx, cert) == 1);
    ASSERT(SSL_CTX_use_PrivateKey(server_ctx, key) == 1);
    client_ctx = SSL_CTX_new(TLS_client_method());
    ASSERT(client_ctx != NULL);
    ASSERT(X509_STORE_add_cert(SSL_CTX_get_cert_store(client_ctx), cert) == 1);
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_PEER, NULL);
    X509_free(cert);
    EVP_PKEY_free(key);
}

/* ---- helpers ------------------------------------------------------------------------------- */

/* The calling thread, asked afresh at every call: pthread_self is declared `const`, so a
 * compiler may reuse one call's answer after a switch to another thread (as with errno). */
static __attribute__((noinline)) pthread_t this_thread(void)
{
    pthread_t t = pthread_self();
    __asm__ volatile("" : "+r"(t) : : "memory");
    return t;
}

/* The affinity rule, checked around every blocking SSL_* call: it returns on the thread it
 * was called on. */
#define SAME_THREAD(call)                                                                          \
    ({                                                                                             \
        pthread_t before_ = this_thread();                                                         \
        __typeof__(call) r_ = (call);                                                              \
        CHECK(pthread_equal(before_, this_thread()));                                              \
        r_;                                                                                        \
    })

/* The one error OpenSSL queued on this thread for the call that just failed: its reason;
 * the queue must hold nothing else (nothing of another coroutine's, nothing lost). */
static int only_error_reason(const char *who)
{
    unsigned long e = ERR_get_error();
    unsigned long extra = ERR_get_error();
    if (e == 0 || extra != 0) {
        char a[256], b[256];
        ERR_error_string_n(e, a, sizeof a);
        ERR_error_string_n(extra, b, sizeof b);
        fprintf(stderr, "%s: expected exactly one queued error, got '%s' then '%s'\n", who,
                e ? a : "(none)", extra ? b : "(none)");
        abort();
    }
    CHECK_EQ(ERR_GET_LIB(e), ERR_LIB_SSL);
    return ERR_GET_REASON(e);
}

static int tcp_socket_connected(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0); /* blocking, as a library makes it */
    ASSERT(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static unsigned char payload_byte(int client, size_t i)
{
    return (unsigned char)((client * 131 + i * 7 + (i >> 9)) & 0xff);
}

/* ---- server -------------------------------------------------------------------------------- */

static void *serve_connection(void *arg)
{
    int fd = (int)(intptr_t)arg;
    SSL *ssl = SSL_new(server_ctx);
    ASSERT(ssl != NULL && SSL_set_fd(ssl, fd) == 1);
    ERR_clear_error();
    int r = SAME_THREAD(SSL_accept(ssl));
    if (r != 1) { /* only the plaintext clients: an HTTP request where a ClientHello goes */
        CHECK_EQ(SSL_get_error(ssl, r), SSL_ERROR_SSL);
        CHECK_EQ(only_error_reason("server SSL_accept"), SSL_R_HTTP_REQUEST);
        http_rejected++;
        SSL_free(ssl);
        close(fd);
        return NULL;
    }
    server_handshakes++;
    /* Echo until the client's "BYE" line (after its payload), then drop the connection
     * without a close_notify: the client's next SSL_read reports an unexpected EOF. */
    unsigned char buf[8192];
    size_t total = 0;
    for (;;) {
        int n = SAME_THREAD(SSL_read(ssl, buf, sizeof buf));
        ASSERT(n > 0);
        if (total >= PAYLOAD) { /* the payload is echoed; this is the BYE */
            CHECK(n == 4 && memcmp(buf, "BYE\n", 4) == 0);
            break;
        }
        total += (size_t)n;
        int w = SAME_THREAD(SSL_write(ssl, buf, n));
        CHECK_EQ(w, n);
    }
    SSL_free(ssl);
    close(fd);
    return NULL;
}

static void *acceptor(void *arg)
{
    int l = (int)(intptr_t)arg;
    for (int i = 0; i < CLIENTS + PLAINTEXT_CLIENTS; i++) {
        int c = accept(l, NULL, NULL);
        ASSERT(c >= 0);
        ASSERT_EQ(weft_spawn(NULL, serve_connection, (void *)(intptr_t)c), 0);
    }
    return NULL;
}

/* ---- clients ------------------------------------------------------------------------------- */

static void *tls_client(void *arg)
{
    int id = (int)(intptr_t)arg;
    int fd = tcp_socket_connected();
    SSL *ssl = SSL_new(client_ctx);
    ASSERT(ssl != NULL && SSL_set_fd(ssl, fd) == 1);
    ASSERT(SSL_set1_host(ssl, "localhost") == 1);
    ASSERT(SSL_set_tlsext_host_name(ssl, "localhost") == 1);
    ERR_clear_error();
    int r = SAME_THREAD(SSL_connect(ssl));
    if (r != 1) {
        fprintf(stderr, "client %d: SSL_connect: %d\n", id, SSL_get_error(ssl, r));
        ERR_print_errors_fp(stderr);
        abort();
    }
    CHECK_EQ(SSL_get_verify_result(ssl), X509_V_OK);
    handshakes_done++;

    /* The barrier: nobody sends before all CLIENTS handshakes are complete. */
    pthread_t before = this_thread();
    ASSERT_EQ(weft_wg_done(&handshaken), 0);
    r = weft_wg_wait_until(&handshaken, weft_after(WEFT_SEC(120)));
    if (r != 0) {
        fprintf(stderr, "client %d: only %d of %d handshakes completed: %s\n", id, handshakes_done,
                CLIENTS, weft_strerror(r));
        abort();
    }
    CHECK_EQ(handshakes_done, CLIENTS); /* the event: all done before anyone sends */
    if (!pthread_equal(before, this_thread()))
        moved_at_barrier++;

    unsigned char *out = malloc(PAYLOAD), *in = malloc(PAYLOAD);
    ASSERT(out && in);
    for (size_t i = 0; i < PAYLOAD; i++)
        out[i] = payload_byte(id, i);
    for (size_t off = 0; off < PAYLOAD;) { /* in pieces of different sizes */
        int len = (int)(PAYLOAD - off < 5000 ? PAYLOAD - off : 5000);
        int w = SAME_THREAD(SSL_write(ssl, out + off, len));
        ASSERT_EQ(w, len);
        off += (size_t)w;
    }
    for (size_t got = 0; got < PAYLOAD;) {
        int n = SAME_THREAD(SSL_read(ssl, in + got, (int)(PAYLOAD - got)));
        ASSERT(n > 0);
        got += (size_t)n;
    }
    CHECK(memcmp(in, out, PAYLOAD) == 0);
    free(out);
    free(in);

    ASSERT_EQ(SAME_THREAD(SSL_write(ssl, "BYE\n", 4)), 4);
    ERR_clear_error();
    char c;
    r = SAME_THREAD(SSL_read(ssl, &c, 1)); /* parks until the server drops the connection */
    CHECK(r <= 0);
    CHECK_EQ(SSL_get_error(ssl, r), SSL_ERROR_SSL);
    CHECK_EQ(only_error_reason("client SSL_read"), SSL_R_UNEXPECTED_EOF_WHILE_READING);
    SSL_free(ssl);
    close(fd);
    return NULL;
}

static void *plaintext_client(void *arg)
{
    (void)arg;
    int fd = tcp_socket_connected();
    static const char req[] = "GET / HTTP/1.0\r\n\r\n";
    ASSERT_EQ(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
    char buf[256];
    while (read(fd, buf, sizeof buf) > 0) /* the server's alert, then its close */
        ;
    close(fd);
    return NULL;
}

static int test_main(void *arg)
{
    int migrate = (int)(intptr_t)arg;
    make_contexts();
    int l = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT(l >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    ASSERT_EQ(listen(l, 256), 0);
    socklen_t alen = sizeof a;
    ASSERT_EQ(getsockname(l, (struct sockaddr *)&a, &alen), 0);
    port = ntohs(a.sin_port);

    ASSERT_EQ(weft_wg_add(&handshaken, CLIENTS), 0);
    weft_task acc, t[CLIENTS + PLAINTEXT_CLIENTS];
    ASSERT_EQ(weft_spawn(&acc, acceptor, (void *)(intptr_t)l), 0);
    for (int i = 0; i < CLIENTS; i++)
        ASSERT_EQ(weft_spawn(&t[i], tls_client, (void *)(intptr_t)i), 0);
    for (int i = 0; i < PLAINTEXT_CLIENTS; i++)
        ASSERT_EQ(weft_spawn(&t[CLIENTS + i], plaintext_client, NULL), 0);
    for (int i = 0; i < CLIENTS + PLAINTEXT_CLIENTS; i++)
        ASSERT_EQ(weft_join(t[i], NULL), 0);
    ASSERT_EQ(weft_join(acc, NULL), 0);
    close(l);

    CHECK_EQ(handshakes_done, CLIENTS);
    WAIT_FOR(server_handshakes == CLIENTS && http_rejected == PLAINTEXT_CLIENTS);
    if (migrate)
        CHECK_GT(moved_at_barrier, 0); /* the run did move coroutines between threads */
    SSL_CTX_free(server_ctx);
    SSL_CTX_free(client_ctx);
    return 0;
}

int main(void)
{
    /* Two workers (unless $WEFT_THREADS says otherwise), so that WEFT_DEBUG_MIGRATE has
     * somewhere to move coroutines: then the test expects moves. */
    const char *m = getenv("WEFT_DEBUG_MIGRATE"), *th = getenv("WEFT_THREADS");
    int migrate = m && strcmp(m, "1") == 0 && (!th || atoi(th) > 1);
    weft_config cfg = {.threads = th ? 0 : 2, .stack_size = 256 * 1024};
    watchdog_start("test_hook_openssl", 240);
    ASSERT_EQ(weft_run(test_main, (void *)(intptr_t)migrate, &cfg), 0);
    watchdog_stop();
    TEST_PASS("test_hook_openssl", checks);
    return 0;
}
