/* SPDX-License-Identifier: MIT */
/* test_io.c — blocking-style I/O: echo with many concurrent clients, partial reads and writes
 * of large payloads, the buffered reader, peer reset, deadlines, cancellation, accept bursts,
 * connection refused, argument errors, plain-thread callers (poll), descriptor numbers closed
 * behind weft's back and reused (never a worker blocked in the kernel), cancellation of
 * calls that need not wait, and no descriptor or coroutine left behind by any scenario. The
 * whole suite runs three times: with the default configuration (so $WEFT_THREADS /
 * $WEFT_DEBUG_MIGRATE apply), with one worker, and with two workers migrating coroutines at
 * every park. Behaviour only: no timing assertions beyond
 * "a deadline never fires early". */
#define _GNU_SOURCE
#include "harness.h"
#include "scheduler.h" /* weft__hop: scenario_cancel_elsewhere places its coroutines */
#include <weft.h>

#include <ev.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static _Atomic long checks;
/* CHECK* from harness.h: `checks++` on an _Atomic long is an atomic increment. */

static long fd_limit;    /* RLIMIT_NOFILE after raising it */
static bool migrate_run; /* the runtime being tested was started with debug_migrate */

/* ---- helpers ------------------------------------------------------------------------------ */

/* Open descriptors of the process (the directory's own descriptor excluded). */
static void list_fds(const char *tag)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    fprintf(stderr, "%s:", tag);
    while ((e = readdir(d))) {
        char path[300], target[256];
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        target[n > 0 ? n : 0] = 0;
        fprintf(stderr, " %s=%s", e->d_name, target);
    }
    fprintf(stderr, "\n");
    closedir(d);
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    ASSERT(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;
}

/* The count once it is steady: the runtime opens /proc/self/maps for a moment while its
 * threads start (pthread_getattr_np), so a single look may catch a transient descriptor.
 * The baseline (expect < 0) must hold for 20 looks: under valgrind a thread's start-up is
 * slow enough to span a few milliseconds. */
static int count_fds_steady(int expect)
{
    int n = count_fds(), same = 0, need = expect >= 0 ? 2 : 20;
    for (int i = 0; i < 2000 && ((expect >= 0 && n != expect) || same < need); i++) {
        weft_sleep(WEFT_MSEC(1));
        int m = count_fds();
        same = m == n ? same + 1 : 0;
        n = m;
    }
    return n;
}

/* Wait until only `n` coroutines are alive (the counters are updated by the worker that
 * finishes a coroutine, a moment after its joiner may have been woken). */
static void expect_alive(uint64_t n)
{
    weft_stats st;
    for (int i = 0; i < 5000; i++) {
        ASSERT_EQ(weft_stats_get(&st), 0);
        if (st.alive == n)
            break;
        weft_sleep(WEFT_MSEC(1));
    }
    CHECK_EQ(st.alive, n);
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static unsigned char pattern(size_t i, unsigned seed)
{
    return (unsigned char)((i * 131u) ^ (i >> 11) ^ seed);
}

static int listen_any(int *port, int backlog)
{
    int lfd = weft_tcp_listen("127.0.0.1", 0, backlog);
    ASSERT(lfd >= 0);
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    ASSERT_EQ(getsockname(lfd, (struct sockaddr *)&a, &l), 0);
    *port = ntohs(a.sin_port);
    return lfd;
}

static void make_pair(int sv[2])
{
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

static void close_pair(int sv[2])
{
    CHECK_EQ(weft_close(sv[0]), 0);
    CHECK_EQ(weft_close(sv[1]), 0);
}

/* Read exactly len bytes (or fail). */
static ssize_t read_full(int fd, void *buf, size_t len, int64_t deadline)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = weft_read(fd, (char *)buf + got, len - got, deadline);
        if (n <= 0)
            return n == 0 ? -ENODATA : n; /* end of stream before len bytes */
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* ---- an in-process echo server ------------------------------------------------------------ */

struct echo_srv {
    int lfd, port;
    weft_task acceptor;
    weft_task *conns;
    size_t n, cap;
};

static void *echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    ssize_t n;
    for (;;) {
        n = weft_read(fd, buf, sizeof buf, WEFT_FOREVER);
        if (n <= 0)
            break;
        ssize_t w = weft_write_all(fd, buf, (size_t)n, WEFT_FOREVER);
        if (w < 0) {
            n = w;
            break;
        }
        ASSERT_EQ(w, n);
    }
    weft_close(fd);
    return (void *)(intptr_t)n; /* 0: the client closed */
}

static void *echo_accept(void *arg)
{
    struct echo_srv *s = arg;
    for (;;) {
        int fd = weft_accept(s->lfd, NULL, NULL, WEFT_FOREVER);
        if (fd == WEFT_ECANCELED)
            return NULL;
        ASSERT(fd >= 0);
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 64;
            s->conns = realloc(s->conns, s->cap * sizeof *s->conns);
            ASSERT(s->conns != NULL);
        }
        ASSERT_EQ(weft_spawn(&s->conns[s->n++], echo_conn, (void *)(intptr_t)fd), 0);
    }
}

static void echo_start(struct echo_srv *s)
{
    memset(s, 0, sizeof *s);
    s->lfd = listen_any(&s->port, 4096);
    ASSERT_EQ(weft_spawn(&s->acceptor, echo_accept, s), 0);
}

/* Stop accepting and join every connection (they end when their clients close). */
static size_t echo_stop(struct echo_srv *s)
{
    CHECK_EQ(weft_cancel(s->acceptor), 0);
    CHECK_EQ(weft_join(s->acceptor, NULL), 0);
    for (size_t i = 0; i < s->n; i++) {
        void *r;
        ASSERT_EQ(weft_join(s->conns[i], &r), 0);
        ASSERT_EQ((intptr_t)r, 0);
    }
    CHECK_EQ(weft_close(s->lfd), 0);
    free(s->conns);
    return s->n;
}

/* ---- 1. echo with many concurrent clients ----------------------------------------------- */

struct client_arg {
    int port, id;
};

static void *echo_client(void *arg)
{
    struct client_arg *a = arg;
    int fd = weft_tcp_connect("127.0.0.1", a->port, WEFT_FOREVER);
    if (fd < 0)
        return (void *)(intptr_t)fd;
    unsigned char *out = malloc(6000), *in = malloc(6000);
    ASSERT(out && in);
    intptr_t rc = 0;
    for (int round = 0; round < 3 && rc == 0; round++) {
        size_t len = 1 + ((size_t)a->id * 7919u + (size_t)round * 104729u) % 5999u;
        for (size_t i = 0; i < len; i++)
            out[i] = pattern(i, (unsigned)(a->id * 3 + round));
        memcpy(out, &a->id, sizeof a->id < len ? sizeof a->id : len); /* distinct payloads */
        ssize_t w = weft_write_all(fd, out, len, WEFT_FOREVER);
        if (w != (ssize_t)len) {
            rc = w < 0 ? w : -1;
            break;
        }
        ssize_t r = read_full(fd, in, len, WEFT_FOREVER);
        if (r != (ssize_t)len)
            rc = r < 0 ? r : -1;
        else if (memcmp(in, out, len) != 0)
            rc = -2;
    }
    free(out);
    free(in);
    weft_close(fd);
    return (void *)rc;
}

static void scenario_echo_many(void)
{
    long n = TEST_TSAN ? 200 : 1000;
    n = n / (getenv("WEFT_TEST_SCALE") ? atol(getenv("WEFT_TEST_SCALE")) : 1);
    if (n > (fd_limit - 64) / 2)
        n = (fd_limit - 64) / 2;
    if (n < 1)
        n = 1;
    struct echo_srv s;
    echo_start(&s);
    weft_task *t = malloc((size_t)n * sizeof *t);
    struct client_arg *args = malloc((size_t)n * sizeof *args);
    for (long i = 0; i < n; i++) {
        args[i] = (struct client_arg){s.port, (int)i};
        ASSERT_EQ(weft_spawn(&t[i], echo_client, &args[i]), 0);
    }
    long ok = 0;
    for (long i = 0; i < n; i++) {
        void *r;
        ASSERT_EQ(weft_join(t[i], &r), 0);
        if ((intptr_t)r != 0)
            fprintf(stderr, "echo client %ld: %s\n", i, weft_strerror((int)(intptr_t)r));
        ok += (intptr_t)r == 0;
    }
    CHECK_EQ(ok, n);
    CHECK_EQ(echo_stop(&s), n);
    free(t);
    free(args);
}

/* ---- 2. partial reads and writes of a large payload -------------------------------------- */

#define BIG (8u << 20)

struct big_arg {
    int fd;
    unsigned seed;
    long partial; /* writes that took less than asked */
    int use_reader;
};

static void *big_writer(void *arg)
{
    struct big_arg *a = arg;
    unsigned char *buf = malloc(BIG);
    ASSERT(buf);
    for (size_t i = 0; i < BIG; i++)
        buf[i] = pattern(i, a->seed);
    size_t done = 0;
    while (done < BIG) {
        ssize_t n = weft_write(a->fd, buf + done, BIG - done, WEFT_FOREVER);
        ASSERT(n > 0 && (size_t)n <= BIG - done);
        if ((size_t)n < BIG - done)
            a->partial++;
        done += (size_t)n;
    }
    free(buf);
    ASSERT_EQ(shutdown(a->fd, SHUT_WR), 0);
    return NULL;
}

/* Reads in random small chunks (1..7000 bytes, sometimes larger than the reader's buffer)
 * and checks every byte; returns the byte count. */
static void *big_reader(void *arg)
{
    struct big_arg *a = arg;
    unsigned char *chunk = malloc(40000);
    uint64_t rng = 0x9e3779b97f4a7c15ull ^ a->seed;
    weft_reader r;
    if (a->use_reader)
        ASSERT_EQ(weft_reader_init(&r, a->fd, 4096), 0);
    size_t total = 0;
    for (;;) {
        size_t want = 1 + rng_next(&rng) % (rng_next(&rng) % 8 == 0 ? 40000 : 7000);
        ssize_t n = a->use_reader ? weft_reader_read(&r, chunk, want, WEFT_FOREVER)
                                  : weft_read(a->fd, chunk, want, WEFT_FOREVER);
        ASSERT(n >= 0 && (size_t)n <= want);
        if (n == 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            if (chunk[i] != pattern(total + (size_t)i, a->seed)) {
                fprintf(stderr, "byte %zu: %u != %u\n", total + (size_t)i, chunk[i],
                        pattern(total + (size_t)i, a->seed));
                abort();
            }
        total += (size_t)n;
    }
    if (a->use_reader)
        weft_reader_free(&r);
    free(chunk);
    return (void *)total;
}

static void big_transfer(int wfd, int rfd, int use_reader, unsigned seed)
{
    struct big_arg w = {wfd, seed, 0, 0}, rd = {rfd, seed, 0, use_reader};
    weft_task tw, tr;
    void *got;
    ASSERT_EQ(weft_spawn(&tr, big_reader, &rd), 0);
    ASSERT_EQ(weft_spawn(&tw, big_writer, &w), 0);
    CHECK_EQ(weft_join(tw, NULL), 0);
    CHECK_EQ(weft_join(tr, &got), 0);
    CHECK_EQ((size_t)got, BIG);
    CHECK(w.partial > 0); /* the socket buffer is far smaller than 8 MiB */
}

static void scenario_big(void)
{
    /* Through a socketpair, plain weft_read. */
    int sv[2];
    make_pair(sv);
    big_transfer(sv[0], sv[1], 0, 1);
    close_pair(sv);

    /* Through TCP with small socket buffers, via a weft_reader. */
    int port, lfd = listen_any(&port, 16);
    int c = weft_tcp_connect("127.0.0.1", port, WEFT_FOREVER);
    CHECK(c >= 0);
    int s = weft_accept(lfd, NULL, NULL, WEFT_FOREVER);
    CHECK(s >= 0);
    int small = 16384;
    setsockopt(c, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    big_transfer(c, s, 1, 2);
    CHECK_EQ(weft_close(c), 0);
    CHECK_EQ(weft_close(s), 0);
    CHECK_EQ(weft_close(lfd), 0);
}

/* ---- 3. the buffered reader: lines split across writes, too long, last line at EOF ------- */

static void *slow_lines(void *arg)
{
    int fd = (int)(intptr_t)arg;
    static const char *parts[] = {"alpha\nbe", "ta\r\n", "", "gam", "ma\n", NULL};
    for (int i = 0; parts[i]; i++) {
        ASSERT_EQ(weft_write_all(fd, parts[i], strlen(parts[i]), WEFT_FOREVER),
                  (ssize_t)strlen(parts[i]));
        weft_sleep(WEFT_MSEC(1));
    }
    char longline[200];
    memset(longline, 'x', sizeof longline);
    longline[sizeof longline - 1] = '\n';
    ASSERT_EQ(weft_write_all(fd, longline, sizeof longline, WEFT_FOREVER),
              (ssize_t)sizeof longline);
    ASSERT_EQ(weft_write_all(fd, "delta\n0123456789\n", 17, WEFT_FOREVER), 17);
    ASSERT_EQ(weft_write_all(fd, "tail", 4, WEFT_FOREVER), 4);
    ASSERT_EQ(shutdown(fd, SHUT_WR), 0);
    return NULL;
}

static void scenario_reader(void)
{
    int sv[2];
    make_pair(sv);
    weft_task t;
    ASSERT_EQ(weft_spawn(&t, slow_lines, (void *)(intptr_t)sv[1]), 0);
    weft_reader r;
    CHECK_EQ(weft_reader_init(&r, sv[0], 64), 0);
    char line[128];
    CHECK_EQ(weft_reader_line(&r, line, sizeof line, WEFT_FOREVER), 6);
    CHECK(strcmp(line, "alpha\n") == 0);
    CHECK_EQ(weft_reader_line(&r, line, sizeof line, WEFT_FOREVER), 6);
    CHECK(strcmp(line, "beta\r\n") == 0);
    CHECK_EQ(weft_reader_line(&r, line, sizeof line, WEFT_FOREVER), 6);
    CHECK(strcmp(line, "gamma\n") == 0);
    /* 200 bytes: longer than both the line buffer and the reader's 64-byte buffer. A
     * distinct code (not WEFT_EINVAL), and again on a second call: nothing was consumed. */
    CHECK_EQ(weft_reader_line(&r, line, sizeof line, WEFT_FOREVER), WEFT_ETOOLONG);
    CHECK_EQ(weft_reader_line(&r, line, sizeof line, WEFT_FOREVER), WEFT_ETOOLONG);
    /* Take the partial line (the buffered start of it), then skip the rest of it. */
    ssize_t part = weft_reader_read(&r, line, 50, WEFT_FOREVER);
    CHECK_EQ(part, 50);
    CHECK_EQ(line[0], 'x');
    CHECK_EQ(line[49], 'x');
    CHECK_EQ(weft_reader_skip_line(&r, WEFT_FOREVER), 150); /* 149 x's and the '\n' */
    /* The reader reads on: a line, a second long one skipped at once, the last line. */
    CHECK_EQ(weft_reader_line(&r, line, sizeof line, WEFT_FOREVER), 6);
    CHECK(strcmp(line, "delta\n") == 0);
    CHECK_EQ(weft_reader_line(&r, line, 8, WEFT_FOREVER), WEFT_ETOOLONG); /* fits 64, not 8 */
    CHECK_EQ(weft_reader_skip_line(&r, WEFT_FOREVER), 11);
    CHECK_EQ(weft_reader_line(&r, line, sizeof line, WEFT_FOREVER), 4);
    CHECK(strcmp(line, "tail") == 0);
    CHECK_EQ(weft_reader_line(&r, line, sizeof line, WEFT_FOREVER), 0);
    CHECK_EQ(weft_reader_read(&r, line, sizeof line, WEFT_FOREVER), 0);
    CHECK_EQ(weft_reader_skip_line(&r, WEFT_FOREVER), 0);
    weft_reader_free(&r);
    CHECK_EQ(weft_join(t, NULL), 0);
    close_pair(sv);
}

/* ---- 4. peer reset ------------------------------------------------------------------------- */

static void reset_close(int fd)
{
    struct linger lg = {1, 0};
    ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    ASSERT_EQ(weft_close(fd), 0);
}

static void *read_one(void *arg)
{
    char b[16];
    return (void *)(intptr_t)weft_read((int)(intptr_t)arg, b, sizeof b, WEFT_FOREVER);
}

static void *write_forever(void *arg)
{
    static char junk[65536];
    for (;;) {
        ssize_t n = weft_write_all((int)(intptr_t)arg, junk, sizeof junk, WEFT_FOREVER);
        if (n < 0)
            return (void *)(intptr_t)n;
    }
}

static void scenario_reset(void)
{
    int port, lfd = listen_any(&port, 16);

    /* A reader parked in weft_read sees the reset as -ECONNRESET; a write afterwards
     * fails with -EPIPE (or -ECONNRESET if the error had not been reported yet). */
    int c = weft_tcp_connect("127.0.0.1", port, WEFT_FOREVER);
    CHECK(c >= 0);
    int s = weft_accept(lfd, NULL, NULL, WEFT_FOREVER);
    CHECK(s >= 0);
    weft_task t;
    void *r;
    ASSERT_EQ(weft_spawn(&t, read_one, (void *)(intptr_t)s), 0);
    weft_sleep(WEFT_MSEC(5)); /* most likely parked by now; correct either way */
    reset_close(c);
    CHECK_EQ(weft_join(t, &r), 0);
    CHECK_EQ((intptr_t)r, -ECONNRESET);
    ssize_t w = weft_write(s, "x", 1, WEFT_FOREVER);
    CHECK(w == -EPIPE || w == -ECONNRESET);
    CHECK_EQ(weft_write(s, "x", 1, WEFT_FOREVER), -EPIPE);
    CHECK_EQ(weft_close(s), 0);

    /* A writer parked on a full socket buffer sees -ECONNRESET or -EPIPE (no SIGPIPE). */
    c = weft_tcp_connect("127.0.0.1", port, WEFT_FOREVER);
    CHECK(c >= 0);
    s = weft_accept(lfd, NULL, NULL, WEFT_FOREVER);
    CHECK(s >= 0);
    ASSERT_EQ(weft_spawn(&t, write_forever, (void *)(intptr_t)s), 0);
    weft_sleep(WEFT_MSEC(5));
    reset_close(c);
    CHECK_EQ(weft_join(t, &r), 0);
    CHECK((intptr_t)r == -ECONNRESET || (intptr_t)r == -EPIPE);
    CHECK_EQ(weft_close(s), 0);

    /* An orderly close is end of stream (0), then writes fail with -EPIPE/-ECONNRESET. */
    c = weft_tcp_connect("127.0.0.1", port, WEFT_FOREVER);
    s = weft_accept(lfd, NULL, NULL, WEFT_FOREVER);
    CHECK(c >= 0 && s >= 0);
    CHECK_EQ(weft_close(c), 0);
    char b[8];
    CHECK_EQ(weft_read(s, b, sizeof b, WEFT_FOREVER), 0);
    CHECK_EQ(weft_close(s), 0);
    CHECK_EQ(weft_close(lfd), 0);
}

/* ---- 5. deadlines -------------------------------------------------------------------------- */

static void *timed_read(void *arg)
{
    int fd = (int)(intptr_t)arg;
    int64_t deadline = weft_after(WEFT_MSEC(1 + weft_self_id() % 20));
    char b[4];
    ssize_t n = weft_read(fd, b, sizeof b, deadline);
    ASSERT_EQ(n, WEFT_ETIMEDOUT);
    ASSERT(weft_now() >= deadline); /* never early */
    return NULL;
}

static void scenario_deadlines(void)
{
    int sv[2];
    make_pair(sv);
    char b[64];

    int64_t deadline = weft_after(WEFT_MSEC(30));
    CHECK_EQ(weft_read(sv[0], b, sizeof b, deadline), WEFT_ETIMEDOUT);
    CHECK(weft_now() >= deadline);
    deadline = weft_after(WEFT_MSEC(10));
    CHECK_EQ(weft_wait_fd(sv[0], WEFT_READABLE, deadline), WEFT_ETIMEDOUT);
    CHECK(weft_now() >= deadline);
    /* A deadline already past: a "try" — data available is still returned. */
    CHECK_EQ(weft_read(sv[0], b, sizeof b, 0), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_write(sv[1], "hello", 5, 0), 5);
    CHECK_EQ(weft_read(sv[0], b, sizeof b, 0), 5);
    CHECK_EQ(weft_wait_fd(sv[1], WEFT_WRITABLE, 0), WEFT_ETIMEDOUT); /* past: no wait at all */
    CHECK_EQ(weft_wait_fd(sv[1], WEFT_WRITABLE, WEFT_FOREVER), WEFT_WRITABLE);
    /* After a timeout the descriptor still works: data written later wakes a new wait. */
    CHECK_EQ(weft_read(sv[0], b, sizeof b, weft_after(WEFT_MSEC(1))), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_write(sv[1], "again", 5, WEFT_FOREVER), 5);
    CHECK_EQ(weft_wait_fd(sv[0], WEFT_READABLE | WEFT_WRITABLE, WEFT_FOREVER) & WEFT_READABLE,
             WEFT_READABLE);
    CHECK_EQ(weft_read(sv[0], b, sizeof b, weft_after(WEFT_SEC(10))), 5);

    /* A full send buffer: a write with a deadline times out, then the wait for writable. */
    static char fill[65536];
    ssize_t n;
    long total = 0;
    while ((n = weft_write(sv[1], fill, sizeof fill, 0)) > 0)
        total += n;
    CHECK_EQ(n, WEFT_ETIMEDOUT);
    CHECK(total > 0);
    deadline = weft_after(WEFT_MSEC(10));
    CHECK_EQ(weft_write(sv[1], fill, sizeof fill, deadline), WEFT_ETIMEDOUT);
    CHECK(weft_now() >= deadline);
    deadline = weft_after(WEFT_MSEC(10));
    CHECK_EQ(weft_write_all(sv[1], fill, sizeof fill, deadline), WEFT_ETIMEDOUT);
    CHECK(weft_now() >= deadline);

    /* Many concurrent timed reads on one descriptor. */
    int m = (int)test_scaled(100);
    weft_task *t = malloc((size_t)m * sizeof *t);
    int sv2[2];
    make_pair(sv2);
    for (int i = 0; i < m; i++)
        ASSERT_EQ(weft_spawn(&t[i], timed_read, (void *)(intptr_t)sv2[0]), 0);
    for (int i = 0; i < m; i++)
        CHECK_EQ(weft_join(t[i], NULL), 0);
    free(t);
    close_pair(sv2);
    close_pair(sv);

    /* A closed descriptor's number reused at once: a new wait is not woken by the old one. */
    make_pair(sv);
    int old = sv[0];
    CHECK_EQ(weft_wait_fd(sv[0], WEFT_READABLE, weft_after(WEFT_MSEC(2))), WEFT_ETIMEDOUT);
    close_pair(sv);
    make_pair(sv);
    CHECK(sv[0] == old || sv[1] == old); /* lowest free numbers */
    deadline = weft_after(WEFT_MSEC(5));
    CHECK_EQ(weft_wait_fd(sv[0], WEFT_READABLE, deadline), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_wait_fd(sv[1], WEFT_READABLE, weft_after(WEFT_MSEC(5))), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_write(sv[1], "z", 1, WEFT_FOREVER), 1);
    CHECK_EQ(weft_wait_fd(sv[0], WEFT_READABLE, WEFT_FOREVER), WEFT_READABLE);
    close_pair(sv);
}

/* ---- 6. cancellation ----------------------------------------------------------------------- */

/* Cancels itself, then reads: the read reports the request before touching the descriptor
 * (a cancellation point even when data is there), and so does the next one (sticky); a read
 * in a shield gets what the first left, or times out: returns 1000 + what it returned. */
static void *precancelled_read(void *arg)
{
    char b[8];
    ASSERT_EQ(weft_cancel(weft_self()), 0);
    ssize_t n = weft_read((int)(intptr_t)arg, b, sizeof b, WEFT_FOREVER);
    if (n != WEFT_ECANCELED)
        return (void *)(intptr_t)n;
    ASSERT_EQ(weft_cancelled(), 1); /* sticky */
    ASSERT_EQ(weft_read((int)(intptr_t)arg, b, sizeof b, weft_after(WEFT_SEC(5))), WEFT_ECANCELED);
    ASSERT_EQ(weft_shield_begin(), 0);
    n = weft_read((int)(intptr_t)arg, b, sizeof b, weft_after(WEFT_MSEC(5)));
    ASSERT_EQ(weft_shield_end(), 0);
    return (void *)(intptr_t)(1000 + n);
}

static void *accept_one(void *arg)
{
    return (void *)(intptr_t)weft_accept((int)(intptr_t)arg, NULL, NULL, WEFT_FOREVER);
}

struct cancel_arg {
    weft_task t;
};
static void *cancel_from_thread(void *arg)
{
    usleep(2000);
    ASSERT_EQ(weft_cancel(((struct cancel_arg *)arg)->t), 0);
    return NULL;
}

static void *join_thread(void *arg)
{
    return (void *)(intptr_t)pthread_join(*(pthread_t *)arg, NULL);
}

static void scenario_cancel(void)
{
    int sv[2];
    make_pair(sv);
    weft_task t;
    void *r;
    char b[8];

    /* Parked in weft_read, cancelled by another coroutine. */
    ASSERT_EQ(weft_spawn(&t, read_one, (void *)(intptr_t)sv[0]), 0);
    weft_sleep(WEFT_MSEC(2));
    CHECK_EQ(weft_cancel(t), 0);
    CHECK_EQ(weft_join(t, &r), 0);
    CHECK_EQ((intptr_t)r, WEFT_ECANCELED);
    /* The descriptor is still usable and no stale wait consumes its data. */
    CHECK_EQ(weft_write(sv[1], "abc", 3, WEFT_FOREVER), 3);
    CHECK_EQ(weft_read(sv[0], b, sizeof b, WEFT_FOREVER), 3);

    /* Cancelled from a plain OS thread. */
    ASSERT_EQ(weft_spawn(&t, read_one, (void *)(intptr_t)sv[0]), 0);
    struct cancel_arg ca = {t};
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, cancel_from_thread, &ca), 0);
    CHECK_EQ(weft_join(t, &r), 0);
    CHECK_EQ((intptr_t)r, WEFT_ECANCELED);
    CHECK_EQ(weft_blocking(join_thread, &th, &r), 0);
    CHECK_EQ((intptr_t)r, 0);

    /* Cancelled before it blocks: the read that would wait reports it, once. */
    ASSERT_EQ(weft_spawn(&t, precancelled_read, (void *)(intptr_t)sv[0]), 0);
    CHECK_EQ(weft_join(t, &r), 0);
    CHECK_EQ((intptr_t)r, 1000 + WEFT_ETIMEDOUT);

    /* Data already there: the read reports the request all the same and consumes nothing;
     * the next read gets the byte. */
    CHECK_EQ(weft_write(sv[1], "d", 1, WEFT_FOREVER), 1);
    ASSERT_EQ(weft_spawn(&t, precancelled_read, (void *)(intptr_t)sv[0]), 0);
    CHECK_EQ(weft_join(t, &r), 0);
    CHECK_EQ((intptr_t)r, 1000 + 1);

    /* Parked in weft_accept and in weft_wait_fd for writing. */
    int port, lfd = listen_any(&port, 16);
    ASSERT_EQ(weft_spawn(&t, accept_one, (void *)(intptr_t)lfd), 0);
    weft_sleep(WEFT_MSEC(2));
    CHECK_EQ(weft_cancel(t), 0);
    CHECK_EQ(weft_join(t, &r), 0);
    CHECK_EQ((intptr_t)r, WEFT_ECANCELED);
    CHECK_EQ(weft_close(lfd), 0);
    ASSERT_EQ(weft_spawn(&t, write_forever, (void *)(intptr_t)sv[1]), 0);
    weft_sleep(WEFT_MSEC(2));
    CHECK_EQ(weft_cancel(t), 0);
    CHECK_EQ(weft_join(t, &r), 0);
    CHECK_EQ((intptr_t)r, WEFT_ECANCELED);
    close_pair(sv);
}

/* ---- 7. a burst of connections ----------------------------------------------------------- */

static void *burst_client(void *arg)
{
    int fd = weft_tcp_connect("127.0.0.1", (int)(intptr_t)arg, WEFT_FOREVER);
    if (fd < 0)
        return (void *)(intptr_t)fd;
    char b;
    ssize_t n = weft_read(fd, &b, 1, WEFT_FOREVER); /* the server closes: end of stream */
    weft_close(fd);
    return (void *)(intptr_t)(n == 0 ? 0 : n < 0 ? n : -1);
}

static void scenario_burst(void)
{
    long n = test_scaled(500) < 100 ? 100 : 500;
    if (n > (fd_limit - 64) / 2)
        n = (fd_limit - 64) / 2;
    int port, lfd = listen_any(&port, 1024);
    weft_task *t = malloc((size_t)n * sizeof *t);
    int *fds = malloc((size_t)n * sizeof *fds);
    for (long i = 0; i < n; i++)
        ASSERT_EQ(weft_spawn(&t[i], burst_client, (void *)(intptr_t)port), 0);
    for (long i = 0; i < n; i++) { /* every one accepted, while all are still connected */
        fds[i] = weft_accept(lfd, NULL, NULL, weft_after(WEFT_SEC(60)));
        ASSERT(fds[i] >= 0);
    }
    CHECK(1);
    for (long i = 0; i < n; i++)
        CHECK_EQ(weft_close(fds[i]), 0);
    for (long i = 0; i < n; i++) {
        void *r;
        CHECK_EQ(weft_join(t[i], &r), 0);
        CHECK_EQ((intptr_t)r, 0);
    }
    free(t);
    free(fds);
    CHECK_EQ(weft_close(lfd), 0);
}

/* Move fd to a number >= 512 (closing the old one), so that once closed it stays unused:
 * open() takes the lowest free number. */
static int high_fd(int fd)
{
    int hi = fcntl(fd, F_DUPFD_CLOEXEC, 512);
    ASSERT(hi >= 512);
    ASSERT_EQ(weft_close(fd), 0); /* weft forgets what it knew of the old number too */
    return hi;
}

/* ---- 8. connection refused, argument errors ---------------------------------------------- */

static void scenario_errors(void)
{
    /* A port bound but not listening refuses connections. */
    int b = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT(b >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    ASSERT_EQ(bind(b, (struct sockaddr *)&a, sizeof a), 0);
    ASSERT_EQ(getsockname(b, (struct sockaddr *)&a, &l), 0);
    CHECK_EQ(weft_tcp_connect("127.0.0.1", ntohs(a.sin_port), WEFT_FOREVER), -ECONNREFUSED);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK_EQ(weft_connect(fd, (struct sockaddr *)&a, sizeof a, WEFT_FOREVER), -ECONNREFUSED);
    CHECK_EQ(weft_close(fd), 0);
    CHECK_EQ(weft_close(b), 0);

    int sv[2];
    make_pair(sv);
    char buf[4];
    CHECK_EQ(weft_wait_fd(-1, WEFT_READABLE, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_wait_fd(sv[0], 0, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_wait_fd(sv[0], 4, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_wait_fd(sv[0], WEFT_READABLE | 8, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_read(-1, buf, 1, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_read(sv[0], NULL, 1, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_write(-1, buf, 1, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_write(sv[0], NULL, 1, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_write_all(-1, buf, 1, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_write_all(sv[0], buf, 0, WEFT_FOREVER), 0);
    CHECK_EQ(weft_read(sv[0], buf, 0, WEFT_FOREVER), 0);
    CHECK_EQ(weft_accept(-1, NULL, NULL, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_connect(-1, (struct sockaddr *)&a, sizeof a, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_connect(sv[0], NULL, 0, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_tcp_listen("127.0.0.1", 70000, 0), WEFT_EINVAL);
    CHECK_EQ(weft_tcp_listen("not-an-address", 0, 0), WEFT_EINVAL);
    CHECK_EQ(weft_tcp_connect("127.0.0.1", -1, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_tcp_connect("no such host", 80, WEFT_FOREVER), WEFT_EINVAL); /* not a name */
    CHECK_EQ(weft_fd_nonblock(-1), WEFT_EINVAL);
    CHECK_EQ(weft_fd_forget(-1), WEFT_EINVAL);
    CHECK_EQ(weft_close(-1), WEFT_EINVAL);
    weft_reader r;
    CHECK_EQ(weft_reader_init(NULL, sv[0], 0), WEFT_EINVAL);
    CHECK_EQ(weft_reader_init(&r, -1, 0), WEFT_EINVAL);
    CHECK_EQ(weft_reader_init(&r, sv[0], 0), 0);
    CHECK_EQ(weft_reader_line(&r, NULL, 10, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_reader_line(&r, buf, 0, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_reader_line(NULL, buf, 4, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_reader_read(&r, NULL, 4, WEFT_FOREVER), WEFT_EINVAL);
    weft_reader_free(&r);
    weft_reader_free(NULL);
    /* Not a socket: writes fall back to write(2); a bad descriptor is -EBADF at once. */
    int p[2];
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
    CHECK_EQ(weft_write(p[1], "pipe", 4, WEFT_FOREVER), 4);
    CHECK_EQ(weft_read(p[0], buf, sizeof buf, WEFT_FOREVER), 4);
    CHECK(memcmp(buf, "pipe", 4) == 0);
    CHECK_EQ(weft_close(p[1]), 0);
    CHECK_EQ(weft_read(p[0], buf, sizeof buf, WEFT_FOREVER), 0);
    /* A closed number must stay closed for these checks: moved far above the lowest free
     * numbers, which another thread's open() (the runtime's /proc reads, the test's own
     * watchdog) could take right after our close. */
    int hi = high_fd(p[0]);
    CHECK_EQ(weft_close(hi), 0);
    CHECK_EQ(weft_read(hi, buf, sizeof buf, WEFT_FOREVER), -EBADF);
    CHECK_EQ(weft_write(hi, buf, 1, WEFT_FOREVER), -EBADF);
    /* From a coroutine too: waiting on a closed descriptor is -EBADF, not a libev abort. */
    CHECK_EQ(weft_wait_fd(hi, WEFT_READABLE, weft_after(WEFT_SEC(2))), -EBADF);
    CHECK_EQ(weft_wait_fd(hi, WEFT_WRITABLE, WEFT_FOREVER), -EBADF);
    close_pair(sv);
}

/* ---- 8b. one descriptor, many waits; numbers reused and forgotten --------------------------- */

/* Bounce a byte n times over fd: every read parks (the peer answers only after it), so each
 * round is a wait on the same descriptor — on a different worker each time when coroutines
 * migrate at every park. */
static void *bounce(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c = 0;
    for (int i = 0; i < 2000; i++) {
        if (weft_wait_fd(fd, WEFT_READABLE, weft_after(WEFT_SEC(10))) != WEFT_READABLE)
            return (void *)(intptr_t)-1;
        if (weft_read(fd, &c, 1, WEFT_FOREVER) != 1 || weft_write(fd, &c, 1, WEFT_FOREVER) != 1)
            return (void *)(intptr_t)-2;
    }
    return NULL;
}

/* A bouncer on sv[1]; we send and read back 2000 bytes on sv[0]. */
static void bounce_with(int sv[2])
{
    weft_task t;
    void *r;
    char c = 'x';
    ASSERT_EQ(weft_spawn(&t, bounce, (void *)(intptr_t)sv[1]), 0);
    for (int i = 0; i < 2000; i++) {
        CHECK_EQ(weft_write(sv[0], &c, 1, WEFT_FOREVER), 1);
        CHECK_EQ(weft_read(sv[0], &c, 1, weft_after(WEFT_SEC(10))), 1);
    }
    CHECK_EQ(weft_join(t, &r), 0);
    CHECK(r == NULL);
}

static void scenario_same_fd(void)
{
    int sv[2];
    char c;
    make_pair(sv);
    bounce_with(sv);

    /* The numbers come back for new sockets: their waits must see the new files (the loops
     * that registered the old ones re-register them), and nothing stale fires. Each number
     * is closed and reused in one step (dup3 onto it): a number closed first could be taken
     * meanwhile by another thread — a worker's loop re-creating its epoll set takes the
     * lowest free number — and dup3 would then close that thread's descriptor (CI saw a
     * worker's epoll set replaced by a socket this way; libev aborted). */
    int fresh[2];
    make_pair(fresh);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(weft_fd_forget(sv[i]), 0); /* as weft_close would */
        ASSERT_EQ(dup3(fresh[i], sv[i], O_CLOEXEC), sv[i]);
        ASSERT_EQ(close(fresh[i]), 0); /* never waited on: close(2) is fine */
    }
    CHECK_EQ(weft_wait_fd(sv[0], WEFT_READABLE, weft_after(WEFT_MSEC(5))), WEFT_ETIMEDOUT);
    bounce_with(sv);

    /* Forgotten but still open: the next wait checks and registers it again, and works.
     * (Moved to a number no other thread's open() takes once it is closed below.) */
    CHECK_EQ(weft_fd_forget(sv[0]), 0);
    sv[0] = high_fd(sv[0]);
    CHECK_EQ(weft_write(sv[1], "y", 1, WEFT_FOREVER), 1);
    CHECK_EQ(weft_wait_fd(sv[0], WEFT_READABLE, weft_after(WEFT_SEC(10))), WEFT_READABLE);
    CHECK_EQ(weft_read(sv[0], &c, 1, WEFT_FOREVER), 1);
    CHECK_EQ(c, 'y');
    /* Closed after waits on it: -EBADF, on whichever worker we are now. */
    int dead = sv[0];
    CHECK_EQ(weft_close(sv[0]), 0);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(weft_wait_fd(dead, WEFT_READABLE, weft_after(WEFT_SEC(2))), -EBADF);
        weft_yield();
    }
    CHECK_EQ(weft_close(sv[1]), 0);
}

/* ---- 8d. numbers closed behind weft's back and reused ------------------------------------ */

/* A safety net against a worker stuck in a blocking system call (which no deadline can end):
 * a plain thread that aborts the test with a message if not disarmed within a minute. */
struct watchdog {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    const char *what;
};

static void *watchdog_main(void *arg)
{
    struct watchdog *d = arg;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += 60;
    pthread_mutex_lock(&d->mu);
    while (!d->done && pthread_cond_timedwait(&d->cv, &d->mu, &until) == 0)
        ;
    if (!d->done) {
        fprintf(stderr,
                "watchdog: %s did not finish in 60 s (a worker blocked in the "
                "kernel?)\n",
                d->what);
        abort();
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

static void watchdog_arm(struct watchdog *d, const char *what)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&d->mu, NULL);
    d->done = 0;
    d->what = what;
    ASSERT_EQ(pthread_create(&d->th, NULL, watchdog_main, d), 0);
}

static void watchdog_disarm(struct watchdog *d)
{
    pthread_mutex_lock(&d->mu);
    d->done = 1;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    ASSERT_EQ(pthread_join(d->th, NULL), 0); /* it returns at once */
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
}

/* Make `number` name `fd`'s file (closing what it named: a close(2) behind weft's back and a
 * reuse in one step), then close fd. */
static void reuse_number(int fd, int number)
{
    ASSERT_EQ(dup3(fd, number, O_CLOEXEC), number);
    ASSERT_EQ(close(fd), 0);
}

static int is_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    ASSERT(fl >= 0);
    return (fl & O_NONBLOCK) != 0;
}

static _Atomic int reader_in; /* the reader is about to call weft_read */

static void *late_writer(void *arg)
{
    WAIT_FOR(atomic_load(&reader_in));
    return (void *)(intptr_t)weft_write((int)(intptr_t)arg, "late", 4, WEFT_FOREVER);
}

/* Read the bytes another coroutine writes only once we are reading: on a one-worker runtime
 * that coroutine runs only if our read parks instead of blocking the worker. */
static void read_while_other_writes(int rfd, int wfd)
{
    weft_task t;
    void *r;
    char b[8];
    atomic_store(&reader_in, 0);
    ASSERT_EQ(weft_spawn(&t, late_writer, (void *)(intptr_t)wfd), 0);
    atomic_store(&reader_in, 1);
    CHECK_EQ(weft_read(rfd, b, sizeof b, weft_after(WEFT_SEC(10))), 4);
    CHECK(memcmp(b, "late", 4) == 0);
    CHECK_EQ(weft_join(t, &r), 0);
    CHECK_EQ((intptr_t)r, 4);
}

static void scenario_reused(void)
{
    struct watchdog wd;
    watchdog_arm(&wd, "reads and writes on reused descriptor numbers");
    char b[8], c;
    int sv[2], n[2], p[2];

    /* A socket weft used (non-blocking, waited on), replaced by a blocking socket. */
    make_pair(sv);
    CHECK_EQ(weft_write(sv[1], "a", 1, WEFT_FOREVER), 1);
    CHECK_EQ(weft_wait_fd(sv[0], WEFT_READABLE, weft_after(WEFT_SEC(10))), WEFT_READABLE);
    CHECK_EQ(weft_read(sv[0], b, sizeof b, WEFT_FOREVER), 1);
    make_pair(n); /* blocking */
    reuse_number(n[0], sv[0]);
    CHECK_EQ(is_nonblocking(sv[0]), 0);
    CHECK_EQ(weft_read(sv[0], b, sizeof b, weft_after(WEFT_MSEC(20))), WEFT_ETIMEDOUT);
    read_while_other_writes(sv[0], n[1]);
    /* The new socket is in this worker's epoll set: a wait sees data that is already there
     * (the old socket left the set when its number was reused). */
    CHECK_EQ(write(n[1], "b", 1), 1);
    CHECK_EQ(weft_wait_fd(sv[0], WEFT_READABLE, weft_after(WEFT_SEC(10))), WEFT_READABLE);
    CHECK_EQ(weft_read(sv[0], &c, 1, WEFT_FOREVER), 1);
    CHECK_EQ(c, 'b');
    CHECK_EQ(weft_close(n[1]), 0);

    /* The same after fclose of an fdopen'ed stream (the C library's close). */
    make_pair(n);
    FILE *f = fdopen(sv[0], "r+");
    ASSERT(f != NULL);
    ASSERT_EQ(fclose(f), 0);
    reuse_number(n[0], sv[0]);
    CHECK_EQ(weft_read(sv[0], b, sizeof b, weft_after(WEFT_MSEC(20))), WEFT_ETIMEDOUT);
    read_while_other_writes(sv[0], n[1]);
    CHECK_EQ(weft_close(n[1]), 0);

    /* A socket number replaced by a blocking pipe: its read end, then its write end (full). */
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
    reuse_number(p[0], sv[0]);
    CHECK_EQ(weft_read(sv[0], b, sizeof b, weft_after(WEFT_MSEC(20))), WEFT_ETIMEDOUT);
    CHECK_EQ(is_nonblocking(sv[0]), 1);
    read_while_other_writes(sv[0], p[1]);
    reuse_number(p[1], sv[1]); /* weft wrote to sv[1] first: it knows it as a socket */
    static char big[1 << 20];
    CHECK_EQ(weft_write_all(sv[1], big, sizeof big, weft_after(WEFT_MSEC(20))), WEFT_ETIMEDOUT);
    CHECK_EQ(is_nonblocking(sv[1]), 1);

    /* A pipe number weft used (a non-socket) replaced by a blocking socket. */
    make_pair(n);
    reuse_number(n[0], sv[0]);
    CHECK_EQ(is_nonblocking(sv[0]), 0);
    CHECK_EQ(weft_read(sv[0], b, sizeof b, weft_after(WEFT_MSEC(20))), WEFT_ETIMEDOUT);
    read_while_other_writes(sv[0], n[1]);
    CHECK_EQ(weft_close(n[1]), 0);

    /* weft_fd_nonblock asks the kernel, not its memory of the number. */
    make_pair(n);
    reuse_number(n[0], sv[0]);
    CHECK_EQ(weft_fd_nonblock(sv[0]), 0);
    CHECK_EQ(is_nonblocking(sv[0]), 1);
    CHECK_EQ(weft_close(n[1]), 0);

    /* A listener replaced by a blocking one: accept times out instead of blocking. */
    int port, lfd = listen_any(&port, 4);
    int bl = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ASSERT_EQ(bind(bl, (struct sockaddr *)&a, sizeof a), 0);
    ASSERT_EQ(listen(bl, 4), 0);
    reuse_number(bl, lfd);
    CHECK_EQ(weft_accept(lfd, NULL, NULL, weft_after(WEFT_MSEC(20))), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_close(lfd), 0);

    CHECK_EQ(weft_close(sv[0]), 0);
    CHECK_EQ(weft_close(sv[1]), 0);
    watchdog_disarm(&wd);
}

/* ---- 8e. cancellation reaches calls that need not wait ------------------------------------ */

struct ready_loop {
    int fd, op; /* 0: weft_read, 1: weft_write, 2: weft_reader_line */
    _Atomic int looping;
    long rounds;
};

/* Loops on an always-ready descriptor until a call fails: what it failed with, or 1 if a
 * safety deadline ended the loop first. */
static void *ready_loop(void *arg)
{
    struct ready_loop *l = arg;
    char buf[64] = {0};
    weft_reader rd;
    ASSERT_EQ(weft_reader_init(&rd, l->fd, 1 << 16), 0);
    int64_t safety = weft_after(WEFT_SEC(20));
    ssize_t n = 0;
    while (weft_now() < safety) {
        if (l->op == 0)
            n = weft_read(l->fd, buf, sizeof buf, WEFT_FOREVER);
        else if (l->op == 1)
            n = weft_write(l->fd, buf, sizeof buf, WEFT_FOREVER);
        else
            n = weft_reader_line(&rd, buf, sizeof buf, WEFT_FOREVER);
        if (n <= 0)
            break;
        l->rounds++;
        atomic_store(&l->looping, 1);
    }
    weft_reader_free(&rd);
    return (void *)(intptr_t)(n <= 0 ? n : 1);
}

static void *cancel_when_looping(void *arg)
{
    struct ready_loop *l = ((void **)arg)[0];
    while (!atomic_load(&l->looping))
        sched_yield();
    ASSERT_EQ(weft_cancel(*(weft_task *)((void **)arg)[1]), 0);
    return NULL;
}

static void scenario_cancel_ready(void)
{
    /* /dev/zero is always readable, /dev/null always writable; a stream of newlines fills
     * the reader's buffer with lines (the loop reads ~1,000 per refill). Cancelled from a
     * plain thread: the loops never park, so on one worker no coroutine could do it. */
    int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    int sv[2];
    ASSERT(zero >= 0 && null >= 0);
    make_pair(sv);
    static char nl[1 << 16];
    memset(nl, '\n', sizeof nl);
    ASSERT_EQ(weft_write(sv[1], nl, sizeof nl, WEFT_FOREVER), (ssize_t)sizeof nl);
    int fds[3] = {zero, null, sv[0]};
    for (int op = 0; op < 3; op++) {
        struct ready_loop l = {.fd = fds[op], .op = op};
        weft_task t;
        void *r;
        pthread_t th;
        ASSERT_EQ(weft_spawn(&t, ready_loop, &l), 0);
        void *args[2] = {&l, &t};
        ASSERT_EQ(pthread_create(&th, NULL, cancel_when_looping, args), 0);
        CHECK_EQ(weft_join(t, &r), 0);
        CHECK_EQ((intptr_t)r, WEFT_ECANCELED);
        CHECK_GT(l.rounds, 0);
        CHECK_EQ(weft_blocking(join_thread, &th, &r), 0);
    }
    CHECK_EQ(weft_close(zero), 0);
    CHECK_EQ(weft_close(null), 0);
    close_pair(sv);
}

/* ---- 8c. narrow and wide: fd waits gather on worker 0 while the runtime is lightly loaded -- */

static atomic_int hog_stop;
static _Atomic unsigned hog_workers; /* bit i: a hog ran on worker i */
static _Atomic long narrow_checked;  /* waits that ended on worker 0 while narrow throughout */

static void *hog(void *arg)
{
    (void)arg;
    while (!atomic_load(&hog_stop)) {
        volatile unsigned long spin = 0;
        for (int i = 0; i < 20000; i++)
            spin += (unsigned long)i;
        atomic_fetch_or(&hog_workers, 1u << weft_worker_index());
        weft_yield();
    }
    return NULL;
}

/* Waits for and reads a byte at a time, 1 ms apart (the writer sleeps). After each wait, if
 * the runtime was narrow before it and still is, with no change in between (`narrowed`
 * unchanged), the coroutine must be on worker 0: it moved there to wait, and the home's
 * loop made it runnable in the home's queue, which nobody steals from while narrow. Not
 * in migrate runs: there every wake-up is sent to the other worker on purpose. */
static void *narrow_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    for (;;) {
        weft_stats a, b;
        ASSERT_EQ(weft_stats_get(&a), 0);
        if (weft_wait_fd(fd, WEFT_READABLE, weft_after(WEFT_SEC(30))) != WEFT_READABLE)
            return (void *)(intptr_t)-1;
        int at = weft_worker_index();
        ASSERT_EQ(weft_stats_get(&b), 0);
        if (a.narrow && b.narrow && a.narrowed == b.narrowed && !migrate_run) {
            CHECK_EQ(at, 0);
            atomic_fetch_add(&narrow_checked, 1);
        }
        char c;
        if (weft_read(fd, &c, 1, WEFT_FOREVER) != 1)
            return (void *)(intptr_t)-1;
        if (c == 'q')
            return NULL;
    }
}

static void *narrow_writer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    for (int i = 0; i < 100; i++) {
        weft_sleep(WEFT_MSEC(1));
        if (weft_write(fd, "x", 1, WEFT_FOREVER) != 1)
            return (void *)(intptr_t)-1;
    }
    return weft_write(fd, "q", 1, WEFT_FOREVER) == 1 ? NULL : (void *)(intptr_t)-2;
}

/* Light fd traffic (8 pairs, one byte per ms each) for one round of 100 bytes. */
static void light_traffic(void)
{
    enum { PAIRS = 8 };
    int sv[PAIRS][2];
    weft_task r[PAIRS], w[PAIRS];
    for (int i = 0; i < PAIRS; i++) {
        make_pair(sv[i]);
        ASSERT_EQ(weft_spawn(&r[i], narrow_reader, (void *)(intptr_t)sv[i][0]), 0);
        ASSERT_EQ(weft_spawn(&w[i], narrow_writer, (void *)(intptr_t)sv[i][1]), 0);
    }
    for (int i = 0; i < PAIRS; i++) {
        void *res;
        CHECK_EQ(weft_join(r[i], &res), 0);
        CHECK(res == NULL);
        CHECK_EQ(weft_join(w[i], &res), 0);
        CHECK(res == NULL);
        close_pair(sv[i]);
    }
}

/* A long computation on the home while narrow: the coroutine queued behind it must still
 * run (the watcher sees the home busy and widens the runtime; another worker takes it).
 * The computation ends when that happened — it has no time limit of its own but 60 s. */
static atomic_int queued_ran;
static void *queued(void *arg)
{
    (void)arg;
    atomic_store(&queued_ran, 1);
    return NULL;
}

static void *computes_on_home(void *arg)
{
    int *sv = arg;
    weft_write(sv[1], "x", 1, WEFT_FOREVER);
    char c;
    if (weft_read(sv[0], &c, 1, WEFT_FOREVER) != 1) /* waits on the home when narrow */
        return (void *)(intptr_t)-1;
    weft_task t;
    if (weft_spawn(&t, queued, NULL) != 0) /* queued on this worker, nobody woken if narrow */
        return (void *)(intptr_t)-2;
    int64_t until = weft_after(WEFT_SEC(60));
    while (!atomic_load(&queued_ran) && weft_now() < until)
        ; /* never yields */
    weft_join(t, NULL);
    return atomic_load(&queued_ran) ? NULL : (void *)(intptr_t)-3;
}

static int stats_narrow(void)
{
    weft_stats st;
    ASSERT_EQ(weft_stats_get(&st), 0);
    return st.narrow;
}

static void scenario_narrow(void)
{
    weft_stats st;
    ASSERT_EQ(weft_stats_get(&st), 0);
    const char *env = getenv("WEFT_NARROW");
    bool forced = env && (!strcmp(env, "0") || !strcmp(env, "1"));
    bool automatic = st.workers > 1 && !forced && !migrate_run;
    atomic_store(&narrow_checked, 0);
    if (automatic) {
        /* Load: CPU-bound coroutines. The runtime is (or goes) wide and spreads them. */
        atomic_store(&hog_stop, 0);
        atomic_store(&hog_workers, 0);
        weft_task h[8];
        for (int i = 0; i < 8; i++)
            ASSERT_EQ(weft_spawn(&h[i], hog, NULL), 0);
        int64_t until = weft_after(WEFT_SEC(30));
        while ((stats_narrow() || __builtin_popcount(atomic_load(&hog_workers)) < 2) &&
               weft_now() < until)
            weft_sleep(WEFT_MSEC(5));
        CHECK_EQ(stats_narrow(), 0);
        CHECK_GE(__builtin_popcount(atomic_load(&hog_workers)), 2);
        atomic_store(&hog_stop, 1);
        for (int i = 0; i < 8; i++)
            CHECK_EQ(weft_join(h[i], NULL), 0);
        /* Light fd traffic: the runtime needs far less than a CPU and goes narrow; while
         * it is, every wait ends on worker 0 (narrow_reader). */
        until = weft_after(WEFT_SEC(30));
        while (atomic_load(&narrow_checked) < 200 && weft_now() < until)
            light_traffic();
        CHECK_GE(atomic_load(&narrow_checked), 200);
        ASSERT_EQ(weft_stats_get(&st), 0);
        CHECK_GE(st.narrowed, 1);
        /* Narrow again (light traffic until it is), then a computation on the home. */
        until = weft_after(WEFT_SEC(30));
        while (!stats_narrow() && weft_now() < until)
            light_traffic();
        CHECK_EQ(stats_narrow(), 1);
        int sv[2];
        make_pair(sv);
        atomic_store(&queued_ran, 0);
        weft_task t;
        void *res;
        ASSERT_EQ(weft_spawn(&t, computes_on_home, sv), 0);
        CHECK_EQ(weft_join(t, &res), 0);
        CHECK(res == NULL);
        close_pair(sv);
    } else {
        light_traffic();
        ASSERT_EQ(weft_stats_get(&st), 0);
        bool always = forced && env[0] == '1' && st.workers > 1;
        CHECK_EQ(st.narrow, always);
        CHECK_EQ(st.narrowed, 0);
        if (always && !migrate_run)
            CHECK_EQ(atomic_load(&narrow_checked), 8 * 101); /* every wait, on worker 0 */
    }
}

/* ---- 9. plain threads: the same calls block in poll --------------------------------------- */

static void *thread_echo(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char b[64];
    /* A wait with a deadline never returns early. */
    int64_t deadline = weft_now() + WEFT_MSEC(10);
    int w = weft_wait_fd(fd, WEFT_READABLE, deadline);
    ASSERT(w == WEFT_ETIMEDOUT || w == WEFT_READABLE);
    if (w == WEFT_ETIMEDOUT)
        ASSERT(weft_now() >= deadline);
    for (int i = 0; i < 100; i++) { /* echo 100 messages, then report */
        ssize_t n = weft_read(fd, b, sizeof b, WEFT_FOREVER);
        ASSERT(n > 0);
        ASSERT_EQ(weft_write_all(fd, b, (size_t)n, WEFT_FOREVER), n);
    }
    weft_reader r;
    ASSERT_EQ(weft_reader_init(&r, fd, 16), 0);
    ASSERT_EQ(weft_reader_line(&r, b, sizeof b, WEFT_FOREVER), 4);
    ASSERT(strcmp(b, "end\n") == 0);
    weft_reader_free(&r);
    return NULL;
}

static void scenario_threads(void)
{
    int sv[2];
    make_pair(sv);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, thread_echo, (void *)(intptr_t)sv[1]), 0);
    for (int i = 0; i < 100; i++) {
        char msg[32], back[32];
        int len = snprintf(msg, sizeof msg, "message %d", i);
        CHECK_EQ(weft_write_all(sv[0], msg, (size_t)len, WEFT_FOREVER), len);
        CHECK_EQ(read_full(sv[0], back, (size_t)len, WEFT_FOREVER), len);
        CHECK(memcmp(msg, back, (size_t)len) == 0);
    }
    CHECK_EQ(weft_write_all(sv[0], "end\n", 4, WEFT_FOREVER), 4);
    void *r;
    CHECK_EQ(weft_blocking(join_thread, &th, &r), 0);
    CHECK_EQ((intptr_t)r, 0);
    close_pair(sv);
}

/* ---- 9. a wait ended elsewhere before its worker registered it ---------------------------- */

/* A read parks on worker 0; before worker 0's loop registers the descriptor with epoll (libev
 * does it in its next poll, after the worker drained its inbox), the read is cancelled from
 * worker 1, resumes there, returns, and its caller closes the descriptor. Worker 0 is held
 * at exactly that point — in an ev_prepare callback, which libev runs before it registers
 * anything — until either the reader has closed its descriptor (the bug: libev's epoll_ctl
 * then fails with EBADF and libev aborts the process) or the reader came back to worker 0 to
 * stop its wait there (the fix, io.c wait_fd: the reader is in worker 0's inbox). Found by
 * CI (the segmented stage, a loaded machine); this construction makes it certain. Runs with
 * two workers or more; internal headers place the coroutines. */
static struct {
    ev_prepare prep;
    _Atomic int held;                  /* worker 0 is held in the prepare callback */
    _Atomic int closed;                /* the reader returned and closed its descriptor */
    struct weft__coro *_Atomic reader; /* its control block (its inbox link) */
} elsewhere;

static bool inbox_holds(struct weft__worker *w, struct weft__msg *want)
{
    /* Only w (this thread) drains its inbox, so what is linked there stays linked. */
    for (struct weft__msg *m = atomic_load_explicit(&w->inbox, memory_order_acquire); m;
         m = m->next)
        if (m == want)
            return true;
    return false;
}

static void hold_before_register(struct ev_loop *loop, ev_prepare *p, int revents)
{
    (void)revents;
    ev_prepare_stop(loop, p); /* once */
    struct weft__worker *w = weft__worker_self();
    struct weft__coro *reader = atomic_load(&elsewhere.reader);
    atomic_store(&elsewhere.held, 1);
    while (!atomic_load(&elsewhere.closed) && !inbox_holds(w, &reader->msg))
        sched_yield();
}

static void move_to(int index)
{
    while (weft_worker_index() != index)
        weft__hop(weft__rt->workers[index]);
}

static void *read_on_worker0(void *arg)
{
    int fd = (int)(intptr_t)arg;
    move_to(0);
    /* No switch from here to the park: the prepare callback runs in worker 0's next poll. */
    struct weft__worker *w = weft__worker_self();
    atomic_store(&elsewhere.reader, w->current);
    ev_prepare_init(&elsewhere.prep, hold_before_register);
    ev_prepare_start(w->loop, &elsewhere.prep);
    char b;
    ssize_t n = weft_read(fd, &b, 1, WEFT_FOREVER);
    CHECK_EQ(weft_close(fd), 0);
    atomic_store(&elsewhere.closed, 1);
    return (void *)(intptr_t)n;
}

static void scenario_cancel_elsewhere(void)
{
    weft_stats st;
    ASSERT_EQ(weft_stats_get(&st), 0);
    if (st.workers < 2)
        return;
    move_to(1);
    ASSERT_EQ(weft_pin(), 0); /* main stays on worker 1: never held with worker 0 */
    for (int round = 0; round < 20; round++) {
        int sv[2];
        make_pair(sv);
        atomic_store(&elsewhere.held, 0);
        atomic_store(&elsewhere.closed, 0);
        weft_task t;
        ASSERT_EQ(weft_spawn(&t, read_on_worker0, (void *)(intptr_t)sv[0]), 0);
        while (!atomic_load(&elsewhere.held))
            weft_yield();
        CHECK_EQ(weft_cancel(t), 0);
        void *r;
        CHECK_EQ(weft_join(t, &r), 0);
        CHECK_EQ((intptr_t)r, WEFT_ECANCELED);
        CHECK_EQ(atomic_load(&elsewhere.closed), 1);
        CHECK_EQ(weft_close(sv[1]), 0);
    }
    ASSERT_EQ(weft_unpin(), 0);
}

/* No runtime at all: the calls still work (poll). */
static void no_runtime(void)
{
    int sv[2];
    make_pair(sv);
    char b[16];
    int64_t deadline = weft_now() + WEFT_MSEC(5);
    ASSERT_EQ(weft_read(sv[0], b, sizeof b, deadline), WEFT_ETIMEDOUT);
    ASSERT(weft_now() >= deadline);
    ASSERT_EQ(weft_wait_fd(sv[1], WEFT_WRITABLE, WEFT_FOREVER), WEFT_WRITABLE);
    ASSERT_EQ(weft_write(sv[1], "ab\ncd", 5, WEFT_FOREVER), 5);
    ASSERT_EQ(weft_wait_fd(sv[0], WEFT_READABLE, WEFT_FOREVER), WEFT_READABLE);
    weft_reader r;
    ASSERT_EQ(weft_reader_init(&r, sv[0], 0), 0);
    ASSERT_EQ(weft_reader_line(&r, b, sizeof b, WEFT_FOREVER), 3);
    ASSERT_EQ(weft_reader_read(&r, b, sizeof b, WEFT_FOREVER), 2);
    weft_reader_free(&r);
    ASSERT_EQ(weft_wait_fd(-1, WEFT_READABLE, 0), WEFT_EINVAL);
    ASSERT_EQ(weft_close(sv[0]), 0);
    /* A descriptor that is not open: -EBADF, no wait. */
    ASSERT_EQ(weft_wait_fd(sv[0], WEFT_READABLE, WEFT_FOREVER), -EBADF);
    ASSERT_EQ(weft_read(sv[0], b, sizeof b, WEFT_FOREVER), -EBADF);
    ASSERT_EQ(weft_close(sv[1]), 0);
    checks += 11;
}

/* ---- the suite ------------------------------------------------------------------------------ */

static const struct {
    const char *name;
    void (*fn)(void);
} scenarios[] = {
    {"echo_many", scenario_echo_many},
    {"big", scenario_big},
    {"reader", scenario_reader},
    {"reset", scenario_reset},
    {"deadlines", scenario_deadlines},
    {"cancel", scenario_cancel},
    {"burst", scenario_burst},
    {"errors", scenario_errors},
    {"same_fd", scenario_same_fd},
    {"threads", scenario_threads},
    {"narrow", scenario_narrow},
    {"reused", scenario_reused},
    {"cancel_ready", scenario_cancel_ready},
    {"cancel_elsewhere", scenario_cancel_elsewhere},
};

static int app(void *arg)
{
    const char *label = arg;
    int base = count_fds_steady(-1); /* the runtime's own descriptors included */
    if (getenv("TEST_IO_VERBOSE"))
        list_fds("base");
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
        int64_t t0 = weft_now();
        scenarios[i].fn();
        expect_alive(1);
        int now = count_fds_steady(base);
        if (now != base) {
            fprintf(stderr, "%s/%s: %d descriptors open, %d before\n", label, scenarios[i].name,
                    now, base);
            list_fds("now");
        }
        CHECK_EQ(now, base);
        if (getenv("TEST_IO_VERBOSE"))
            fprintf(stderr, "%s/%s: %.1f ms\n", label, scenarios[i].name,
                    (double)(weft_now() - t0) / 1e6);
    }
    return 0;
}

int main(void)
{
    /* 1,000 clients and their server ends need ~2,000 descriptors. */
    struct rlimit rl;
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < 65536 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max < 65536 ? rl.rlim_max : 65536;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    fd_limit = rl.rlim_cur == RLIM_INFINITY ? 65536 : (long)rl.rlim_cur;

    int outside = count_fds();
    no_runtime();
    CHECK_EQ(count_fds(), outside);

    /* $WEFT_DEBUG_MIGRATE applies to every multi-worker run (the CI's migrate stage). */
    bool env_migrate = getenv("WEFT_DEBUG_MIGRATE") && atoi(getenv("WEFT_DEBUG_MIGRATE")) > 0;
    migrate_run = env_migrate;
    ASSERT_EQ(weft_run(app, "default", NULL), 0);
    CHECK_EQ(count_fds(), outside); /* the runtime's descriptors are gone with it */
    weft_config one = {.threads = 1};
    ASSERT_EQ(weft_run(app, "threads=1", &one), 0);
    CHECK_EQ(count_fds(), outside);
    weft_config migrate = {.threads = 2, .debug_migrate = 1};
    migrate_run = true;
    ASSERT_EQ(weft_run(app, "migrate", &migrate), 0);
    CHECK_EQ(count_fds(), outside);
    /* Narrow throughout (load.c): every fd wait moves to worker 0 first — with coroutines
     * sent to the other worker at every yield and wake-up (migrate), each wait is a move. */
    const char *was = getenv("WEFT_NARROW");
    char *saved = was ? strdup(was) : NULL;
    setenv("WEFT_NARROW", "1", 1);
    weft_config two = {.threads = 2};
    migrate_run = env_migrate;
    ASSERT_EQ(weft_run(app, "narrow", &two), 0);
    CHECK_EQ(count_fds(), outside);
    migrate_run = true;
    ASSERT_EQ(weft_run(app, "narrow+migrate", &migrate), 0);
    CHECK_EQ(count_fds(), outside);
    if (saved)
        setenv("WEFT_NARROW", saved, 1);
    else
        unsetenv("WEFT_NARROW");
    free(saved);
    TEST_PASS("test_io", atomic_load(&checks));
    return 0;
}

#if defined(__SANITIZE_THREAD__)
/* TSan models a descriptor as a memory location: close(2) writes it, epoll_ctl(2) reads it.
 * libev drops an fd from a loop's epoll set lazily, from that loop's thread, when a stale
 * event arrives — possibly while a coroutine on another worker closes the descriptor. The
 * kernel makes that harmless (an epoll_ctl on a closed or reused number only fails with
 * ENOENT/EBADF, which libev expects), so ignore the descriptor accesses libev makes. */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
    return "called_from_lib:libev.so\n";
}
#endif
