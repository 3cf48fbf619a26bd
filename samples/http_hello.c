/* http_hello.c — a minimal HTTP/1.1 "Hello, World!" server with keep-alive and pipelining:
 * one coroutine per connection, reading requests line by line from a weft_reader.
 *
 *   http_hello [PORT]        (default 8080)        try: curl -v http://127.0.0.1:8080/
 *
 * Every request gets the same 200 response. Keep-alive follows HTTP/1.1 (close on
 * "Connection: close"; HTTP/1.0 only with "Connection: keep-alive"); request bodies with a
 * Content-Length are skipped; chunked bodies are not supported (501, then close).
 * Responses to pipelined requests are gathered and sent with one write once the requests
 * already received have been answered. No allocation per request. SIGINT/SIGTERM: a plain
 * thread cancels the acceptor, which closes the listener and cancels the connections. */
#define _GNU_SOURCE
#include <weft.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int port = 8080;

static const char RESP_OK[] = "HTTP/1.1 200 OK\r\nContent-Length: 14\r\n"
                              "Content-Type: text/plain\r\n\r\nHello, World!\n";
/* The same when the connection closes after it, and for an HTTP/1.0 keep-alive client. */
static const char RESP_OK_CLOSE[] = "HTTP/1.1 200 OK\r\nContent-Length: 14\r\n"
                                    "Content-Type: text/plain\r\nConnection: close\r\n\r\n"
                                    "Hello, World!\n";
static const char RESP_OK_KEEP[] = "HTTP/1.1 200 OK\r\nContent-Length: 14\r\n"
                                   "Content-Type: text/plain\r\nConnection: keep-alive\r\n\r\n"
                                   "Hello, World!\n";
static const char RESP_BAD[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                               "Connection: close\r\n\r\n";
static const char RESP_BIG[] = "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                               "Content-Length: 0\r\nConnection: close\r\n\r\n";
static const char RESP_CHUNKED[] = "HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\n"
                                   "Connection: close\r\n\r\n";

/* ---- shutdown: the signal thread cancels the acceptor ---------------------------------- */
static pthread_mutex_t acceptor_mu = PTHREAD_MUTEX_INITIALIZER;
static weft_task acceptor;
static atomic_int stopping;

static void *signal_thread(void *arg)
{
    int sig;
    sigwait((sigset_t *)arg, &sig);
    pthread_mutex_lock(&acceptor_mu);
    atomic_store(&stopping, 1);
    if (acceptor.id)
        weft_cancel(acceptor);
    pthread_mutex_unlock(&acceptor_mu);
    return NULL;
}

/* ---- connections --------------------------------------------------------------------------- */
struct conn {
    int fd;
    weft_task task;
    struct conn *prev, *next;
};
static struct conn conns = {.prev = &conns, .next = &conns};
static weft_mutex conns_mu = WEFT_MUTEX_INIT;
static weft_wg conns_wg = WEFT_WG_INIT;

/* Take a mutex even when cancelled: in a shield, where the (sticky) request stays pending
 * for the next cancellation point after it. */
static void lock(weft_mutex *m)
{
    weft_shield_begin();
    weft_mutex_lock(m);
    weft_shield_end();
}

/* Case-insensitive "does this header line start with name:"; *value gets the text after. */
static int header_is(const char *line, const char *name, const char **value)
{
    size_t n = strlen(name);
    if (strncasecmp(line, name, n) != 0 || line[n] != ':')
        return 0;
    const char *v = line + n + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    *value = v;
    return 1;
}

/* Does a Connection header value contain the token (comma-separated, any case)? */
static int has_token(const char *v, const char *token)
{
    size_t n = strlen(token);
    for (;;) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        if (!*v || *v == '\r' || *v == '\n')
            return 0;
        if (strncasecmp(v, token, n) == 0 && strchr(" \t,\r\n", v[n]))
            return 1;
        while (*v && *v != ',')
            v++;
    }
}

struct out {
    char buf[4096];
    size_t len;
};

static int flush(int fd, struct out *o)
{
    ssize_t r = o->len ? weft_write_all(fd, o->buf, o->len, WEFT_FOREVER) : 0;
    o->len = 0;
    return r < 0 ? -1 : 0;
}

static int respond(int fd, struct out *o, const char *resp, size_t len)
{
    if (o->len + len > sizeof o->buf && flush(fd, o) < 0)
        return -1;
    memcpy(o->buf + o->len, resp, len);
    o->len += len;
    return 0;
}

/* Serve requests until the peer closes, asks to close, or an error. */
static void http_session(int fd)
{
    weft_reader r;
    if (weft_reader_init(&r, fd, 16384) != 0)
        return;
    struct out out = {.len = 0};
    char line[8192];
    for (;;) {
        /* Nothing buffered: answer what we have, then wait for the next request. Waiting
         * first (instead of a read that would say EAGAIN) saves a system call per request. */
        if (r.start == r.end) {
            if (flush(fd, &out) < 0 || weft_wait_fd(fd, WEFT_READABLE, WEFT_FOREVER) < 0)
                break;
        }
        /* Request line: METHOD SP TARGET SP HTTP/x.y (blank lines before it are allowed). */
        ssize_t n = weft_reader_line(&r, line, sizeof line, WEFT_FOREVER);
        if (n == 0 || (n < 0 && n != WEFT_EINVAL))
            break;
        if (n == WEFT_EINVAL) {
            respond(fd, &out, RESP_BIG, sizeof RESP_BIG - 1);
            break;
        }
        if (line[0] == '\r' || line[0] == '\n')
            continue;
        const char *sp1 = strchr(line, ' ');
        const char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
        if (!sp2 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
            respond(fd, &out, RESP_BAD, sizeof RESP_BAD - 1);
            break;
        }
        int http10 = sp2[8] == '0', keep_alive = !http10; /* 1.1 keeps alive by default */
        long long body = 0;
        int chunked = 0;
        /* Headers until the empty line. */
        for (;;) {
            n = weft_reader_line(&r, line, sizeof line, WEFT_FOREVER);
            if (n == WEFT_EINVAL)
                respond(fd, &out, RESP_BIG, sizeof RESP_BIG - 1);
            if (n <= 0)
                goto done; /* end of stream, error, or a header line too long */
            if (line[0] == '\r' || line[0] == '\n')
                break;
            const char *v;
            if (header_is(line, "Connection", &v)) {
                if (has_token(v, "close"))
                    keep_alive = 0;
                else if (has_token(v, "keep-alive"))
                    keep_alive = 1;
            } else if (header_is(line, "Content-Length", &v)) {
                char *end;
                body = strtoll(v, &end, 10);
                if (body < 0 || end == v) {
                    respond(fd, &out, RESP_BAD, sizeof RESP_BAD - 1);
                    goto done;
                }
            } else if (header_is(line, "Transfer-Encoding", &v)) {
                chunked = 1;
            }
        }
        if (chunked) {
            respond(fd, &out, RESP_CHUNKED, sizeof RESP_CHUNKED - 1);
            break;
        }
        while (body > 0) { /* skip the body (line[] is free scratch space here) */
            n = weft_reader_read(&r, line, body < (long long)sizeof line ? (size_t)body : sizeof line,
                                 WEFT_FOREVER);
            if (n <= 0)
                goto done;
            body -= n;
        }
        if (!keep_alive) {
            respond(fd, &out, RESP_OK_CLOSE, sizeof RESP_OK_CLOSE - 1);
            break;
        }
        if (http10 ? respond(fd, &out, RESP_OK_KEEP, sizeof RESP_OK_KEEP - 1) < 0
                   : respond(fd, &out, RESP_OK, sizeof RESP_OK - 1) < 0)
            break;
    }
done:
    flush(fd, &out);
    weft_reader_free(&r);
}

static void *serve(void *arg)
{
    struct conn *c = arg;
    http_session(c->fd);
    weft_close(c->fd);
    lock(&conns_mu);
    c->prev->next = c->next;
    c->next->prev = c->prev;
    weft_mutex_unlock(&conns_mu);
    free(c);
    weft_wg_done(&conns_wg);
    return NULL;
}

static int server(void *arg)
{
    (void)arg;
    int lfd = weft_tcp_listen("127.0.0.1", port, 4096);
    if (lfd < 0) {
        fprintf(stderr, "http_hello: listen on 127.0.0.1:%d: %s\n", port, weft_strerror(lfd));
        return 1;
    }
    pthread_mutex_lock(&acceptor_mu);
    acceptor = weft_self();
    pthread_mutex_unlock(&acceptor_mu);
    printf("http_hello: listening on 127.0.0.1:%d\n", port);
    fflush(stdout);

    while (!atomic_load(&stopping)) {
        int fd = weft_accept(lfd, NULL, NULL, WEFT_FOREVER);
        if (fd == WEFT_ECANCELED)
            break;
        if (fd < 0) {
            fprintf(stderr, "http_hello: accept: %s\n", weft_strerror(fd));
            weft_sleep(WEFT_MSEC(10));
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = malloc(sizeof *c);
        if (!c) {
            weft_close(fd);
            continue;
        }
        c->fd = fd;
        weft_wg_add(&conns_wg, 1);
        lock(&conns_mu);
        if (weft_spawn(&c->task, serve, c) != 0) {
            weft_mutex_unlock(&conns_mu);
            weft_close(fd);
            free(c);
            weft_wg_done(&conns_wg);
            continue;
        }
        c->next = &conns;
        c->prev = conns.prev;
        conns.prev->next = c;
        conns.prev = c;
        weft_detach(c->task); /* cancellable while on the list: it unlinks itself last */
        weft_mutex_unlock(&conns_mu);
    }

    pthread_mutex_lock(&acceptor_mu);
    acceptor = (weft_task){0};
    pthread_mutex_unlock(&acceptor_mu);
    weft_close(lfd);
    int n = 0;
    lock(&conns_mu);
    for (struct conn *c = conns.next; c != &conns; c = c->next, n++)
        weft_cancel(c->task);
    weft_mutex_unlock(&conns_mu);
    weft_shield_begin(); /* we were cancelled (that is how shutdown started): wait anyway */
    weft_wg_wait(&conns_wg);
    weft_shield_end();
    printf("http_hello: shut down (%d connection%s cancelled)\n", n, n == 1 ? "" : "s");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        port = atoi(argv[1]);
    signal(SIGINT, SIG_DFL); /* not ignored (background jobs), blocked everywhere, waited for */
    signal(SIGTERM, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_t sig;
    pthread_create(&sig, NULL, signal_thread, &set);

    int rc = weft_run(server, NULL, NULL);

    if (!atomic_load(&stopping))
        pthread_kill(sig, SIGTERM);
    pthread_join(sig, NULL);
    if (rc < 0)
        fprintf(stderr, "http_hello: %s\n", weft_strerror(rc));
    return rc == 0 ? 0 : 1;
}
