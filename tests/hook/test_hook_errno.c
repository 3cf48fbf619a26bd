/* SPDX-License-Identifier: MIT */
/* test_hook_errno.c — every hooked call leaves errno exactly as libc's would, on the thread
 * where it returns: untouched when it succeeds — also after it waited (a park in a coroutine,
 * libc's poll on a plain thread for a descriptor the hook made non-blocking underneath) and
 * while other coroutines of the same thread set errno — and libc's error otherwise.
 *
 * Each case sets errno to a value no system call returns, makes the call wait, and has
 * another coroutine of the same (only) worker set errno to 777 while it is parked (it runs
 * exactly then: spawned just before, it is the next to run once the caller parks). */
#define _GNU_SOURCE
#include "../harness.h"

#include <weft.h>
#include <weft/hook.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static _Atomic long checks;

enum { MINE = 4242, OTHERS = 777 };

/* ---- another coroutine of the thread sets errno while the caller is parked ---------------- */
struct clobber {
    int fd; /* >= 0: then write one byte to it (what the caller waits for) */
    _Atomic int ran;
};

static void *clobberer(void *arg)
{
    struct clobber *k = arg;
    errno = OTHERS;
    if (k->fd >= 0)
        ASSERT_EQ(write(k->fd, "c", 1), 1);
    errno = OTHERS;
    atomic_store(&k->ran, 1);
    return NULL;
}

static weft_task spawn_clobber(struct clobber *k, int fd)
{
    k->fd = fd;
    atomic_store(&k->ran, 0);
    weft_task t;
    ASSERT_EQ(weft_spawn(&t, clobberer, k), 0);
    return t;
}

/* The call waited and the clobberer ran meanwhile (else the case proved nothing). */
static void joined(weft_task t, struct clobber *k)
{
    ASSERT_EQ(weft_join(t, NULL), 0);
    ASSERT_EQ(atomic_load(&k->ran), 1);
}

static int listener(struct sockaddr_in *a)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT(l >= 0);
    *a = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof *a;
    ASSERT_EQ(bind(l, (struct sockaddr *)a, sizeof *a), 0);
    ASSERT_EQ(getsockname(l, (struct sockaddr *)a, &len), 0);
    ASSERT_EQ(listen(l, 16), 0);
    return l;
}

static int coro_cases(void *arg)
{
    (void)arg;
    struct clobber k;
    weft_task t;
    int fds[2], r;
    char c;

    /* read of a blocking pipe that parks */
    ASSERT_EQ(pipe(fds), 0);
    t = spawn_clobber(&k, fds[1]);
    errno = MINE;
    r = (int)read(fds[0], &c, 1);
    CHECK_EQ(r, 1);
    CHECK_EQ(errno, MINE);
    joined(t, &k);

    /* poll, ppoll, select that park */
    struct pollfd p = {fds[0], POLLIN, 0};
    t = spawn_clobber(&k, fds[1]);
    errno = MINE;
    CHECK_EQ(poll(&p, 1, 20000), 1);
    CHECK_EQ(errno, MINE);
    joined(t, &k);
    ASSERT_EQ(read(fds[0], &c, 1), 1);

    struct timespec long_ts = {20, 0};
    t = spawn_clobber(&k, fds[1]);
    errno = MINE;
    CHECK_EQ(ppoll(&p, 1, &long_ts, NULL), 1);
    CHECK_EQ(errno, MINE);
    joined(t, &k);
    ASSERT_EQ(read(fds[0], &c, 1), 1);

    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(fds[0], &rd);
    struct timeval tv = {20, 0};
    t = spawn_clobber(&k, fds[1]);
    errno = MINE;
    CHECK_EQ(select(fds[0] + 1, &rd, NULL, NULL, &tv), 1);
    CHECK_EQ(errno, MINE);
    joined(t, &k);
    ASSERT_EQ(read(fds[0], &c, 1), 1);
    close(fds[0]);
    close(fds[1]);

    /* the sleeps */
    struct timespec ms = {0, 1000000};
    t = spawn_clobber(&k, -1);
    errno = MINE;
    CHECK_EQ(nanosleep(&ms, NULL), 0);
    CHECK_EQ(errno, MINE);
    joined(t, &k);

    t = spawn_clobber(&k, -1);
    errno = MINE;
    CHECK_EQ(clock_nanosleep(CLOCK_MONOTONIC, 0, &ms, NULL), 0);
    CHECK_EQ(errno, MINE);
    joined(t, &k);

    t = spawn_clobber(&k, -1);
    errno = MINE;
    CHECK_EQ(usleep(1000), 0);
    CHECK_EQ(errno, MINE);
    joined(t, &k);

    t = spawn_clobber(&k, -1);
    errno = MINE;
    CHECK_EQ(sleep(1), 0u);
    CHECK_EQ(errno, MINE);
    joined(t, &k);

    /* connect that parks (EINPROGRESS underneath), and accept that parks */
    struct sockaddr_in a;
    int l = listener(&a);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT(s >= 0);
    t = spawn_clobber(&k, -1);
    errno = MINE;
    CHECK_EQ(connect(s, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(errno, MINE);
    joined(t, &k);
    int acc = accept(l, NULL, NULL);
    ASSERT(acc >= 0);
    close(acc);
    close(s);

    close(l);
    return 0;
}

struct conn_job {
    struct sockaddr_in a;
    _Atomic int ran;
};

static void *connector(void *arg)
{
    struct conn_job *j = arg;
    errno = OTHERS;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT(s >= 0);
    ASSERT_EQ(connect(s, (struct sockaddr *)&j->a, sizeof j->a), 0);
    errno = OTHERS;
    atomic_store(&j->ran, 1);
    return (void *)(intptr_t)s;
}

static int accept_case(void *arg)
{
    (void)arg;
    struct conn_job j = {.ran = 0};
    int l = listener(&j.a);
    weft_task t;
    ASSERT_EQ(weft_spawn(&t, connector, &j), 0);
    errno = MINE;
    int acc = accept(l, NULL, NULL);
    CHECK(acc >= 0);
    CHECK_EQ(errno, MINE);
    void *res;
    ASSERT_EQ(weft_join(t, &res), 0);
    CHECK_EQ(atomic_load(&j.ran), 1);
    close((int)(intptr_t)res);
    close(acc);
    close(l);
    return 0;
}

/* ---- name resolution on the pool: libc's errno from the caller's ------------------------- */
static int gai_errno_coro;

static int resolve_case(void *arg)
{
    (void)arg;
    struct addrinfo *res = NULL;
    errno = MINE;
    CHECK_EQ(getaddrinfo("localhost", NULL, NULL, &res), 0);
    gai_errno_coro = errno;
    freeaddrinfo(res);
    return 0;
}

/* ---- plain threads: a wait in libc's poll, then success ----------------------------------- */
struct plain {
    int fd;
    _Atomic pid_t tid;
    ssize_t n;
    int err;
};

static void *plain_reader(void *arg)
{
    struct plain *p = arg;
    char c;
    atomic_store(&p->tid, (pid_t)syscall(SYS_gettid));
    errno = MINE;
    p->n = read(p->fd, &c, 1);
    p->err = errno;
    return NULL;
}

/* Is the thread asleep (in the poll: the only place it can sleep)? */
static bool sleeping(pid_t tid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool s = false;
    if (fgets(buf, sizeof buf, f)) {
        const char *close_paren = strrchr(buf, ')');
        s = close_paren && close_paren[1] == ' ' && close_paren[2] == 'S';
    }
    fclose(f);
    return s;
}

static void wait_asleep(_Atomic pid_t *tid)
{
    int64_t dl = weft_now() + WEFT_SEC(20);
    while (atomic_load(tid) == 0 || !sleeping(atomic_load(tid))) {
        ASSERT(weft_now() < dl);
        weft_sleep(WEFT_MSEC(1));
    }
}

struct plain_conn {
    int fd;
    struct sockaddr_in a;
    int r, err;
};

static void *plain_connect(void *arg)
{
    struct plain_conn *p = arg;
    errno = MINE;
    p->r = connect(p->fd, (struct sockaddr *)&p->a, sizeof p->a);
    p->err = errno;
    return NULL;
}

static int plain_cases(void *arg)
{
    (void)arg;
    int sv[2];
    char c;
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ASSERT_EQ(write(sv[1], "a", 1), 1);
    ASSERT_EQ(read(sv[0], &c, 1), 1); /* used in a coroutine: non-blocking underneath */
    struct plain p = {.fd = sv[0]};
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, plain_reader, &p), 0);
    wait_asleep(&p.tid); /* libc's read found EAGAIN; the thread waits in libc's poll */
    ASSERT_EQ(write(sv[1], "p", 1), 1);
    ASSERT_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(p.n, 1);
    CHECK_EQ(p.err, MINE);
    close(sv[0]);
    close(sv[1]);

    /* connect on a plain thread, of a socket a coroutine used first (EINPROGRESS underneath,
     * then libc's poll) */
    struct plain_conn pc;
    int l = listener(&pc.a);
    pc.fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT(pc.fd >= 0);
    CHECK_EQ(recv(pc.fd, &c, 1, 0), -1); /* not connected; the hook learns the socket */
    ASSERT_EQ(pthread_create(&t, NULL, plain_connect, &pc), 0);
    ASSERT_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(pc.r, 0);
    CHECK_EQ(pc.err, MINE);
    close(pc.fd);
    close(l);
    return 0;
}

static int run1(int (*fn)(void *), int threads)
{
    weft_config cfg = {.threads = threads};
    return weft_run(fn, NULL, &cfg);
}

int main(void)
{
    CHECK_EQ(weft_hook_active(), 1);
    ASSERT_EQ(run1(coro_cases, 1), 0);
    ASSERT_EQ(run1(accept_case, 1), 0);
    ASSERT_EQ(run1(plain_cases, 2), 0);
    /* getaddrinfo: the coroutine's errno after success is what libc's call leaves on a plain
     * thread that starts from the same errno (warm: the first call loads the NSS modules). */
    struct addrinfo *res = NULL;
    ASSERT_EQ(getaddrinfo("localhost", NULL, NULL, &res), 0);
    freeaddrinfo(res);
    ASSERT_EQ(run1(resolve_case, 1), 0);
    errno = MINE;
    ASSERT_EQ(getaddrinfo("localhost", NULL, NULL, &res), 0);
    int plain_errno = errno;
    freeaddrinfo(res);
    CHECK_EQ(gai_errno_coro, plain_errno);
    TEST_PASS("test_hook_errno", checks);
    return 0;
}
