/* SPDX-License-Identifier: MIT */
/* test_hook.c — libweft-hook's semantics (include/weft/hook.h), one case per function below:
 * plain-thread passthrough, a blocking descriptor parks the coroutine and not the worker (on
 * one worker, proven by the order of events), a non-blocking one gives EAGAIN, the fcntl /
 * FIONBIO view, SO_RCVTIMEO, dup/close bookkeeping, accept/connect/partial writes, poll,
 * select, sleeps, cancellation's ECANCELED, name resolution on the pool, and the stall report
 * for a pthread mutex held across a hooked call. Every case also runs under
 * WEFT_DEBUG_MIGRATE=1 (ctest registers the test twice, except in TSan builds). */
#define _GNU_SOURCE
#include "../harness.h"
#include "read_until.h"

#include <weft.h>
#include <weft/hook.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static _Atomic long checks;

/* The real O_NONBLOCK, asked of the kernel without the hook. */
static int real_nonblock(int fd)
{
    long fl = syscall(SYS_fcntl, fd, F_GETFL);
    ASSERT(fl >= 0);
    return (fl & O_NONBLOCK) != 0;
}

/* ---- a blocking read parks the coroutine, not the worker ----------------------------------- */
/* One worker. `reader` reads a blocking pipe made by pipe(); `writer`, spawned by the reader's
 * spawner after it, can only run on that same worker: if the read blocked the thread the
 * writer would never run. The safety thread writes "X" after 20 s (then the check fails
 * instead of hanging). */
struct order {
    int fds[2];
    _Atomic int step; /* 1: reader about to read; 2: writer ran; 3: reader returned */
    char got;
    ssize_t n;
    int err;
};

static void *reader(void *arg)
{
    struct order *o = arg;
    atomic_store(&o->step, 1);
    o->n = read(o->fds[0], &o->got, 1);
    o->err = errno;
    atomic_store(&o->step, 3);
    return NULL;
}

static void *writer(void *arg)
{
    struct order *o = arg;
    CHECK_EQ(atomic_load(&o->step), 1); /* the reader is parked in read */
    atomic_store(&o->step, 2);
    CHECK_EQ(write(o->fds[1], "B", 1), 1);
    return NULL;
}

static void *safety_writer(void *arg)
{
    struct order *o = arg;
    for (int i = 0; i < 20000 && atomic_load(&o->step) != 3; i++)
        usleep(1000); /* a plain thread: libc's usleep */
    if (atomic_load(&o->step) != 3)
        (void)!write(o->fds[1], "X", 1);
    return NULL;
}

static int parks_not_blocks(void *arg)
{
    (void)arg;
    struct order o = {.step = 0};
    CHECK_EQ(pipe(o.fds), 0);
    pthread_t safety;
    ASSERT(pthread_create(&safety, NULL, safety_writer, &o) == 0);
    weft_task r, w;
    ASSERT(weft_spawn(&r, reader, &o) == 0);
    while (atomic_load(&o.step) != 1)
        weft_yield();
    ASSERT(weft_spawn(&w, writer, &o) == 0);
    ASSERT(weft_join(r, NULL) == 0);
    ASSERT(weft_join(w, NULL) == 0);
    CHECK_EQ(o.n, 1);
    CHECK_EQ(o.got, 'B');
    CHECK(real_nonblock(o.fds[0]));                  /* the hook made it non-blocking underneath */
    CHECK(!(fcntl(o.fds[0], F_GETFL) & O_NONBLOCK)); /* the program's view */
    pthread_join(safety, NULL);
    close(o.fds[0]);
    close(o.fds[1]);
    return 0;
}

/* ---- the program's view of O_NONBLOCK; EAGAIN for a non-blocking descriptor --------------- */
static int nonblock_view(void *arg)
{
    (void)arg;
    int sv[2];
    char c;
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CHECK(!(fcntl(sv[0], F_GETFL) & O_NONBLOCK));
    CHECK_EQ(fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK), 0);
    CHECK(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
    errno = 0;
    CHECK_EQ(read(sv[0], &c, 1), -1);
    CHECK_EQ(errno, EAGAIN);
    CHECK_EQ(recv(sv[0], &c, 1, 0), -1);
    CHECK_EQ(errno, EAGAIN);
    /* Back to blocking: the view says so, the real file stays non-blocking. */
    CHECK_EQ(fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) & ~O_NONBLOCK), 0);
    CHECK(!(fcntl(sv[0], F_GETFL) & O_NONBLOCK));
    CHECK(real_nonblock(sv[0]));
    /* ioctl(FIONBIO) changes the same view. */
    int on = 1;
    CHECK_EQ(ioctl(sv[0], FIONBIO, &on), 0);
    CHECK(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
    CHECK_EQ(read(sv[0], &c, 1), -1);
    CHECK_EQ(errno, EAGAIN);
    on = 0;
    CHECK_EQ(ioctl(sv[0], FIONBIO, &on), 0);
    CHECK(!(fcntl(sv[0], F_GETFL) & O_NONBLOCK));
    CHECK(real_nonblock(sv[0]));
    /* MSG_DONTWAIT on a blocking descriptor: EAGAIN, as libc. */
    CHECK_EQ(recv(sv[0], &c, 1, MSG_DONTWAIT), -1);
    CHECK_EQ(errno, EAGAIN);
    /* SOCK_NONBLOCK at creation is the program's choice too. */
    int nb = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CHECK(nb >= 0);
    CHECK(fcntl(nb, F_GETFL) & O_NONBLOCK);
    CHECK_EQ(recv(nb, &c, 1, 0), -1);
    CHECK(errno == ENOTCONN || errno == EAGAIN);
    close(nb);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

/* ---- SO_RCVTIMEO / SO_SNDTIMEO -------------------------------------------------------------- */
static int rcvtimeo(void *arg)
{
    (void)arg;
    int sv[2];
    char c;
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct timeval tv = {0, 30000};
    CHECK_EQ(setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    struct timeval back;
    socklen_t len = sizeof back;
    CHECK_EQ(getsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &back, &len), 0);
    CHECK_GE(back.tv_usec, 30000); /* the kernel rounds up to its tick */
    int64_t t0 = weft_now();
    errno = 0;
    CHECK_EQ(read(sv[0], &c, 1), -1);
    CHECK_EQ(errno, EAGAIN);
    CHECK_GE(weft_now() - t0, WEFT_MSEC(30)); /* never early */
    /* A timeout set before the first use in a coroutine is learned from the kernel. */
    int sv2[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv2), 0);
    CHECK_EQ(syscall(SYS_setsockopt, sv2[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    CHECK_EQ(recv(sv2[0], &c, 1, 0), -1);
    CHECK_EQ(errno, EAGAIN);
    /* SO_SNDTIMEO: fill the socket; the write that cannot finish returns what it wrote. */
    CHECK_EQ(setsockopt(sv[1], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), 0);
    static char big[1 << 20];
    ssize_t n = write(sv[1], big, sizeof big);
    CHECK_GT(n, 0);
    CHECK_LT(n, (ssize_t)sizeof big);
    errno = 0;
    CHECK_EQ(write(sv[1], big, sizeof big), -1);
    CHECK_EQ(errno, EAGAIN);
    close(sv[0]);
    close(sv[1]);
    close(sv2[0]);
    close(sv2[1]);
    return 0;
}

/* ---- dup / close bookkeeping ---------------------------------------------------------------- */
static int dup_close(void *arg)
{
    (void)arg;
    int sv[2];
    char c;
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CHECK_EQ(write(sv[1], "a", 1), 1);
    CHECK_EQ(read(sv[0], &c, 1), 1); /* first use: managed */
    CHECK_EQ(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    int d = dup(sv[0]);
    CHECK(d >= 0);
    CHECK(fcntl(d, F_GETFL) & O_NONBLOCK); /* the duplicate shares the view */
    CHECK_EQ(read(d, &c, 1), -1);
    CHECK_EQ(errno, EAGAIN);
    int d2 = fcntl(sv[0], F_DUPFD_CLOEXEC, 100);
    CHECK_GE(d2, 100);
    CHECK(fcntl(d2, F_GETFL) & O_NONBLOCK);
    CHECK_EQ(dup2(sv[0], d2), d2);
    CHECK(fcntl(d2, F_GETFL) & O_NONBLOCK);
    close(d2);
    /* The number reused by a new socket starts afresh: blocking, and it parks. */
    CHECK_EQ(close(d), 0);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK_EQ(s, d);
    CHECK(!(fcntl(s, F_GETFL) & O_NONBLOCK));
    close(s);
    /* closed: EBADF, errno as libc */
    CHECK_EQ(read(d, &c, 1), -1);
    CHECK_EQ(errno, EBADF);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

/* ---- a plain thread on a descriptor the hook made non-blocking still blocks ---------------- */
struct plain {
    int fd;
    _Atomic pid_t tid;
    ssize_t n;
    char c;
};

static void *plain_reader(void *arg)
{
    struct plain *p = arg;
    atomic_store(&p->tid, (pid_t)syscall(SYS_gettid));
    p->n = read(p->fd, &p->c, 1);
    return NULL;
}

/* The thread's current system call number, from /proc (-1 if running). */
static long thread_syscall(pid_t tid)
{
    char path[64], buf[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -2;
    long nr = -2;
    if (fgets(buf, sizeof buf, f))
        nr = strncmp(buf, "running", 7) == 0 ? -1 : strtol(buf, NULL, 10);
    fclose(f);
    return nr;
}

static int plain_thread(void *arg)
{
    (void)arg;
    int sv[2];
    char c;
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CHECK_EQ(write(sv[1], "a", 1), 1);
    CHECK_EQ(read(sv[0], &c, 1), 1); /* managed now: real O_NONBLOCK */
    CHECK(real_nonblock(sv[0]));
    struct plain p = {.fd = sv[0]};
    pthread_t t;
    ASSERT(pthread_create(&t, NULL, plain_reader, &p) == 0);
    /* Wait for the event: the thread sleeps in poll (libc's read found EAGAIN). */
    int64_t dl = weft_now() + WEFT_SEC(20);
#ifdef SYS_poll
    const long poll_nr = SYS_poll;
#else
    const long poll_nr = SYS_ppoll; /* AArch64 has no poll(2): glibc's poll is ppoll */
#endif
    while (atomic_load(&p.tid) == 0 || thread_syscall(atomic_load(&p.tid)) != poll_nr) {
        ASSERT(weft_now() < dl);
        weft_sleep(WEFT_MSEC(1));
    }
    CHECK_EQ(write(sv[1], "p", 1), 1);
    pthread_join(t, NULL);
    CHECK_EQ(p.n, 1);
    CHECK_EQ(p.c, 'p');
    close(sv[0]);
    close(sv[1]);
    return 0;
}

/* ---- accept, connect, and writes larger than the socket buffer ---------------------------- */
struct tcp {
    int lfd, port;
    size_t len;
};

static void *tcp_server(void *arg)
{
    struct tcp *t = arg;
    int c = accept(t->lfd, NULL, NULL); /* a blocking listener: parks */
    CHECK(c >= 0);
    CHECK(!(fcntl(c, F_GETFL) & O_NONBLOCK));
    char *buf = malloc(t->len);
    size_t got = 0;
    ssize_t n;
    while ((n = recv(c, buf + got, t->len - got, 0)) > 0)
        got += (size_t)n;
    CHECK_EQ(got, t->len);
    for (size_t i = 0; i < t->len; i++)
        if (buf[i] != (char)(i * 7)) {
            CHECK(!"byte differs");
            break;
        }
    CHECK_EQ(send(c, "ok", 2, 0), 2);
    free(buf);
    close(c);
    return NULL;
}

static int tcp(void *arg)
{
    (void)arg;
    struct tcp t = {.len = 4 << 20};
    t.lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    CHECK_EQ(bind(t.lfd, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(listen(t.lfd, 8), 0);
    CHECK_EQ(getsockname(t.lfd, (struct sockaddr *)&a, &alen), 0);
    weft_task srv;
    ASSERT(weft_spawn(&srv, tcp_server, &t) == 0);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK_EQ(connect(s, (struct sockaddr *)&a, sizeof a), 0);
    char *buf = malloc(t.len);
    for (size_t i = 0; i < t.len; i++)
        buf[i] = (char)(i * 7);
    /* writev in two parts, each larger than the socket buffer: every byte goes */
    struct iovec iov[2] = {{buf, t.len / 2}, {buf + t.len / 2, t.len - t.len / 2}};
    CHECK_EQ(writev(s, iov, 2), (ssize_t)t.len);
    CHECK_EQ(shutdown(s, SHUT_WR), 0);
    char ok[3] = {0};
    CHECK_EQ(recv(s, ok, 2, MSG_WAITALL), 2);
    CHECK(strcmp(ok, "ok") == 0);
    ASSERT(weft_join(srv, NULL) == 0);
    /* connect's own error comes back as errno: a refused port */
    int s2 = socket(AF_INET, SOCK_STREAM, 0);
    close(t.lfd);
    errno = 0;
    CHECK_EQ(connect(s2, (struct sockaddr *)&a, sizeof a), -1);
    CHECK_EQ(errno, ECONNREFUSED);
    close(s2);
    close(s);
    free(buf);
    return 0;
}

/* ---- poll and select ------------------------------------------------------------------------- */
struct pw {
    int fd;
    _Atomic int polling;
};

static void *poll_writer(void *arg)
{
    struct pw *p = arg;
    CHECK_EQ(atomic_load(&p->polling), 1); /* one worker: the poller has parked */
    CHECK_EQ(write(p->fd, "w", 1), 1);
    return NULL;
}

static int polls(void *arg)
{
    (void)arg;
    int a[2], b[2];
    CHECK_EQ(pipe(a), 0);
    CHECK_EQ(pipe(b), 0);
    struct pollfd fds[2] = {{a[0], POLLIN, 0}, {b[0], POLLIN, 0}};
    CHECK_EQ(poll(fds, 2, 0), 0);
    CHECK_EQ(poll(fds, 2, 20), 0); /* timeout */
    CHECK_EQ(poll(NULL, 0, 5), 0); /* a sleep */
    struct pw p = {.fd = b[1], .polling = 1};
    weft_task w;
    ASSERT(weft_spawn(&w, poll_writer, &p) == 0);
    CHECK_EQ(poll(fds, 2, -1), 1); /* several descriptors: the epoll set */
    CHECK_EQ(fds[1].revents, POLLIN);
    CHECK_EQ(fds[0].revents, 0);
    ASSERT(weft_join(w, NULL) == 0);
    char c;
    CHECK_EQ(read(b[0], &c, 1), 1);
    /* one descriptor */
    struct pw pa = {.fd = a[1], .polling = 1};
    ASSERT(weft_spawn(&w, poll_writer, &pa) == 0);
    CHECK_EQ(poll(fds, 1, 10000), 1);
    ASSERT(weft_join(w, NULL) == 0);
    CHECK_EQ(read(a[0], &c, 1), 1);
    /* select */
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(a[0], &rd);
    FD_SET(b[0], &rd);
    struct timeval tv = {0, 10000};
    CHECK_EQ(select((a[0] > b[0] ? a[0] : b[0]) + 1, &rd, NULL, NULL, &tv), 0);
    FD_SET(a[0], &rd);
    FD_SET(b[0], &rd);
    ASSERT(weft_spawn(&w, poll_writer, &pa) == 0);
    CHECK_EQ(select((a[0] > b[0] ? a[0] : b[0]) + 1, &rd, NULL, NULL, NULL), 1);
    CHECK(FD_ISSET(a[0], &rd));
    CHECK(!FD_ISSET(b[0], &rd));
    ASSERT(weft_join(w, NULL) == 0);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    return 0;
}

/* ---- _FORTIFY_SOURCE's entry points (__read_chk, __recv_chk, __recvfrom_chk, __poll_chk) --
 * With optimisation the build defines _FORTIFY_SOURCE=2 (tests/hook/CMakeLists.txt): a read
 * into an array of known size with a length the compiler cannot see calls __read_chk. */
static volatile size_t one = 1;
static volatile nfds_t one_fd = 1;

static int fortified(void *arg)
{
    (void)arg;
    int sv[2];
    char buf[4];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct pw p = {.fd = sv[1], .polling = 1};
    weft_task w;
    struct pollfd pfd[1] = {{sv[0], POLLIN, 0}};
    ASSERT(weft_spawn(&w, poll_writer, &p) == 0);
    CHECK_EQ(poll(pfd, one_fd, -1), 1); /* parks until the writer ran */
    ASSERT(weft_join(w, NULL) == 0);
    CHECK_EQ(read(sv[0], buf, one), 1);
    ASSERT(weft_spawn(&w, poll_writer, &p) == 0);
    CHECK_EQ(recv(sv[0], buf, one, 0), 1); /* parks */
    ASSERT(weft_join(w, NULL) == 0);
    ASSERT(weft_spawn(&w, poll_writer, &p) == 0);
    CHECK_EQ(recvfrom(sv[0], buf, one, 0, NULL, NULL), 1); /* parks */
    ASSERT(weft_join(w, NULL) == 0);
    ASSERT(weft_spawn(&w, poll_writer, &p) == 0);
    CHECK_EQ(read(sv[0], buf, one), 1); /* parks */
    ASSERT(weft_join(w, NULL) == 0);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

/* ---- sleeps park; cancellation gives ECANCELED ---------------------------------------------- */
struct sl {
    _Atomic int started;
    int r, err;
    struct timespec rem;
};

static void *long_sleeper(void *arg)
{
    struct sl *s = arg;
    atomic_store(&s->started, 1);
    struct timespec ts = {60, 0};
    s->r = nanosleep(&ts, &s->rem);
    s->err = errno;
    return NULL;
}

static void *blocked_reader(void *arg)
{
    struct sl *s = arg;
    int fds[2];
    char c;
    CHECK_EQ(pipe(fds), 0);
    atomic_store(&s->started, 1);
    s->r = (int)read(fds[0], &c, 1);
    s->err = errno;
    close(fds[0]);
    close(fds[1]);
    return NULL;
}

static int sleeps_cancel(void *arg)
{
    (void)arg;
    CHECK_EQ(usleep(1000), 0);
    CHECK_EQ(sleep(0), 0);
    struct timespec ts = {0, 1000000};
    CHECK_EQ(nanosleep(&ts, NULL), 0);
    CHECK_EQ(clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL), 0);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    now.tv_nsec += 1000000;
    if (now.tv_nsec >= 1000000000) {
        now.tv_sec++;
        now.tv_nsec -= 1000000000;
    }
    CHECK_EQ(clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &now, NULL), 0);
    /* A 60 s sleep on the only worker: we run (so it parked), cancel it, and it ends with
     * ECANCELED and the time left. */
    struct sl s = {.started = 0};
    weft_task t;
    ASSERT(weft_spawn(&t, long_sleeper, &s) == 0);
    while (!atomic_load(&s.started))
        weft_yield();
    ASSERT(weft_cancel(t) == 0);
    ASSERT(weft_join(t, NULL) == 0);
    CHECK_EQ(s.r, -1);
    CHECK_EQ(s.err, ECANCELED);
    CHECK_GT(s.rem.tv_sec, 0);
    /* A read that has to wait, cancelled before or after it parked: ECANCELED. */
    struct sl r = {.started = 0};
    ASSERT(weft_spawn(&t, blocked_reader, &r) == 0);
    while (!atomic_load(&r.started))
        weft_yield();
    ASSERT(weft_cancel(t) == 0);
    ASSERT(weft_join(t, NULL) == 0);
    CHECK_EQ(r.r, -1);
    CHECK_EQ(r.err, ECANCELED);
    return 0;
}

/* ---- weft_hook_disable / weft_hook_enable: the coroutine's own opt-out ---------------------- */
/* One worker. `ran` is set by a coroutine queued behind the caller: it can run only while the
 * caller is parked. A 1 ms nanosleep with the hooks disabled is libc's (the worker sleeps, the
 * other cannot run); enabled again, it parks (the other runs). */
static void *set_ran(void *arg)
{
    atomic_store((_Atomic int *)arg, 1);
    return NULL;
}

static void *nested_disable(void *arg)
{
    (void)arg;
    /* a new coroutine starts with the hooks on, whatever its spawner's setting */
    int fds[2];
    char c;
    CHECK_EQ(pipe(fds), 0);
    CHECK_EQ(write(fds[1], "n", 1), 1);
    CHECK_EQ(read(fds[0], &c, 1), 1);
    CHECK(real_nonblock(fds[0])); /* the hook managed it */
    close(fds[0]);
    close(fds[1]);
    return NULL;
}

static int opt_out(void *arg)
{
    (void)arg;
    _Atomic int ran = 0;
    weft_task t;
    struct timespec ms = {0, 1000000};
    CHECK_EQ(weft_hook_enable(), WEFT_ESTATE); /* not disabled */
    CHECK_EQ(weft_hook_disable(), 0);
    CHECK_EQ(weft_hook_disable(), 0); /* nests */
    ASSERT(weft_spawn(&t, set_ran, &ran) == 0);
    CHECK_EQ(nanosleep(&ms, NULL), 0);
    CHECK_EQ(atomic_load(&ran), 0); /* libc's sleep: the worker slept */
    /* a pipe used with the hooks off is left as libc leaves it */
    int fds[2];
    char c;
    CHECK_EQ(pipe(fds), 0);
    CHECK_EQ(write(fds[1], "d", 1), 1);
    CHECK_EQ(read(fds[0], &c, 1), 1);
    CHECK(!real_nonblock(fds[0]));
    close(fds[0]);
    close(fds[1]);
    weft_task n;
    ASSERT(weft_spawn(&n, nested_disable, NULL) == 0);
    CHECK_EQ(weft_hook_enable(), 0);
    CHECK_EQ(nanosleep(&ms, NULL), 0);
    CHECK_EQ(atomic_load(&ran), 0); /* still disabled: one enable of two */
    CHECK_EQ(weft_hook_enable(), 0);
    CHECK_EQ(nanosleep(&ms, NULL), 0); /* parks: the others run */
    CHECK_EQ(atomic_load(&ran), 1);
    ASSERT(weft_join(t, NULL) == 0);
    ASSERT(weft_join(n, NULL) == 0);
    CHECK_EQ(weft_hook_enable(), WEFT_ESTATE);
    return 0;
}

/* ---- name resolution on the pool ------------------------------------------------------------ */
static int resolve(void *arg)
{
    (void)arg;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    CHECK_EQ(getaddrinfo("127.0.0.1", "80", &hints, &res), 0);
    CHECK(res != NULL);
    CHECK_EQ(((struct sockaddr_in *)res->ai_addr)->sin_port, htons(80));
    freeaddrinfo(res);
    CHECK_EQ(getaddrinfo("localhost", NULL, &hints, &res), 0);
    freeaddrinfo(res);
    CHECK(gethostbyname("localhost") != NULL);
    return 0;
}

/* ---- the hazard: a pthread mutex held across a hooked call ---------------------------------- */
/* In a child with one worker: `holder` locks a pthread mutex and parks in a read that nothing
 * answers; `waiter` then blocks the worker in pthread_mutex_lock. The stall report must name
 * the worker and the waiter (the parent reads the child's stderr for it, then kills the
 * child: it can never recover, which is the hazard). */
static pthread_mutex_t hazard_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int hazard_step;

static void *hazard_holder(void *arg)
{
    int *fds = arg;
    char c;
    pthread_mutex_lock(&hazard_mu);
    atomic_store(&hazard_step, 1);
    (void)!read(fds[0], &c, 1);
    pthread_mutex_unlock(&hazard_mu);
    return NULL;
}

static void *hazard_waiter(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&hazard_mu);
    pthread_mutex_unlock(&hazard_mu);
    return NULL;
}

static int hazard_main(void *arg)
{
    (void)arg;
    static int fds[2];
    ASSERT(pipe(fds) == 0);
    weft_task h, w;
    ASSERT(weft_spawn(&h, hazard_holder, fds) == 0);
    while (!atomic_load(&hazard_step))
        weft_yield();
    weft_spawn_opts o = {.name = "mutex-waiter"};
    ASSERT(weft_spawn_ex(&w, hazard_waiter, NULL, &o) == 0);
    weft_join(w, NULL);
    return 0;
}

/* TSan defers the signal that takes the backtrace while its pthread_mutex_lock interceptor
 * blocks: the report then names the worker only. */
static bool stall_reported(const char *buf, void *arg)
{
    (void)arg;
    return TEST_TSAN ? strstr(buf, "weft: stall: worker 0 ran") != NULL
                     : strstr(buf, "weft: stall: worker 0 ran coroutine") &&
                           strstr(buf, "\"mutex-waiter\"") && strstr(buf, "pthread_mutex_lock");
}

static void hazard(void)
{
    int err[2];
    ASSERT(pipe(err) == 0);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        dup2(err[1], 2);
        close(err[0]);
        weft_config cfg = {.threads = 1, .stall_ms = 50, .deadlock = -1};
        _exit(weft_run(hazard_main, NULL, &cfg));
    }
    close(err[1]);
    static char buf[1 << 16];
    size_t len = 0;
    bool seen = read_until(err[0], buf, sizeof buf, &len, stall_reported, NULL, 60);
    kill(pid, SIGKILL);
    int status;
    ASSERT(waitpid(pid, &status, 0) == pid);
    close(err[0]);
    if (!seen)
        fprintf(stderr, "child's stderr:\n%s\n", buf);
    CHECK(seen);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL); /* it never recovered */
}

/* ---- plain-thread passthrough and the probe ------------------------------------------------ */
static void passthrough(void)
{
    CHECK_EQ(weft_hook_active(), 1);
    int fds[2];
    char c;
    CHECK_EQ(pipe(fds), 0);
    CHECK_EQ(write(fds[1], "z", 1), 1);
    CHECK_EQ(read(fds[0], &c, 1), 1);
    CHECK_EQ(c, 'z');
    CHECK(!real_nonblock(fds[0])); /* a plain thread's use changes nothing */
    CHECK_EQ(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
    CHECK_EQ(read(fds[0], &c, 1), -1);
    CHECK_EQ(errno, EAGAIN);
    struct timespec ts = {0, 1000};
    CHECK_EQ(nanosleep(&ts, NULL), 0);
    close(fds[0]);
    close(fds[1]);
}

static int run1(int (*fn)(void *), int threads)
{
    weft_config cfg = {.threads = threads};
    return weft_run(fn, NULL, &cfg);
}

int main(void)
{
    hazard(); /* first: fork while this process has no other threads */
    passthrough();
    ASSERT(run1(parks_not_blocks, 1) == 0);
    ASSERT(run1(nonblock_view, 2) == 0);
    ASSERT(run1(rcvtimeo, 2) == 0);
    ASSERT(run1(dup_close, 2) == 0);
    ASSERT(run1(plain_thread, 2) == 0);
    ASSERT(run1(tcp, 2) == 0);
    ASSERT(run1(polls, 1) == 0);
    ASSERT(run1(sleeps_cancel, 1) == 0);
    ASSERT(run1(fortified, 1) == 0);
    ASSERT(run1(resolve, 2) == 0);
    ASSERT(run1(opt_out, 1) == 0);
    CHECK_EQ(weft_hook_disable(), WEFT_ENOTCORO); /* a plain thread */
    CHECK_EQ(weft_hook_enable(), WEFT_ENOTCORO);
    TEST_PASS("test_hook", checks);
    return 0;
}
