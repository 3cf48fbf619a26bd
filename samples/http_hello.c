/* SPDX-License-Identifier: MIT */
/* http_hello.c — a minimal HTTP/1.1 "Hello, World!" server with keep-alive and pipelining:
 * one coroutine per connection, reading requests line by line from a weft_reader.
 *
 *   http_hello [PORT [TIMEOUT_SECONDS]]   (default 8080, 30 s)
 *   try: curl -v http://127.0.0.1:8080/
 *
 * Every request gets the same 200 response. Keep-alive follows HTTP/1.1 (close on
 * "Connection: close"; HTTP/1.0 only with "Connection: keep-alive"); request bodies with a
 * Content-Length are skipped; chunked bodies are not supported (501, then close).
 * Responses to pipelined requests are gathered and sent with one write once the requests
 * already received have been answered. No allocation per request.
 * Hostile clients: a request's line and headers must arrive whole within TIMEOUT of the
 * moment the server starts waiting for it (an idle keep-alive connection, or a client
 * sending its headers a byte at a time, is closed then), and every body read and response
 * write must progress within TIMEOUT. SIGINT/SIGTERM: a clean shutdown (tcp_server.c). */
#define _GNU_SOURCE
#include <weft.h>

#include "tcp_server.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
    int64_t timeout; /* ns, for each write; 0: none */
};

static int flush(int fd, struct out *o)
{
    ssize_t r = o->len ? weft_write_all(fd, o->buf, o->len, tcp_deadline(o->timeout)) : 0;
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
static void http_session(int fd, int64_t timeout)
{
    weft_reader r;
    if (weft_reader_init(&r, fd, 16384) != 0)
        return;
    struct out out = {.len = 0, .timeout = timeout};
    char line[8192];
    for (;;) {
        /* Nothing buffered: answer what we have, then wait for the next request. Waiting
         * first (instead of a read that would say EAGAIN) saves a system call per request. */
        if (r.start == r.end && flush(fd, &out) < 0)
            break;
        /* The whole request head must arrive by this deadline (idle and slow clients). */
        int64_t head_deadline = tcp_deadline(timeout);
        if (r.start == r.end && weft_wait_fd(fd, WEFT_READABLE, head_deadline) < 0)
            break;
        /* Request line: METHOD SP TARGET SP HTTP/x.y (blank lines before it are allowed). */
        ssize_t n = weft_reader_line(&r, line, sizeof line, head_deadline);
        if (n == 0 || (n < 0 && n != WEFT_ETOOLONG))
            break;
        if (n == WEFT_ETOOLONG) {
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
            n = weft_reader_line(&r, line, sizeof line, head_deadline);
            if (n == WEFT_ETOOLONG)
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
            size_t want = body < (long long)sizeof line ? (size_t)body : sizeof line;
            n = weft_reader_read(&r, line, want, tcp_deadline(timeout));
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

int main(int argc, char **argv)
{
    tcp_server s = {.name = "http_hello", .port = 8080, .timeout_sec = 30, .serve = http_session};
    return tcp_server_main(&s, argc, argv);
}
