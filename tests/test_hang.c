/* SPDX-License-Identifier: MIT */
/* test_hang.c — hangs that say why: the deadlock report and the stall report (hang.h), and
 * the dump's module+offset frames and blocking-pool line.
 *
 * Every scenario runs in a child process (fork, then weft_run there) whose stderr the parent
 * reads. Deadlocks: the child must print the report and exit with status 2; the
 * non-deadlocks (an armed timer, an fd wait, a blocking job, a plain thread that will send,
 * main returning with coroutines parked, the detector turned off) must finish normally —
 * they are released by the parent after a grace period that gives a wrong detector its
 * chance to fire (a pass never depends on that period's length). Stalls: the child's
 * stalled coroutine spins (or sits in a plain read) until the parent, having read the
 * stall line naming it, writes a byte to it. Every wait has a generous safety deadline
 * (30 s) and no assertion is about how long anything took. */
#define _GNU_SOURCE
#include "harness.h"
#include <weft.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

static long checks;

#define SAFETY_NS WEFT_SEC(30)
#define GRACE_US 300000 /* the non-deadlock cases: time for a wrong report to come out */

/* ------------------------------------------------------------------------------------------
 * Children. */

struct child {
    pid_t pid;
    int err; /* the child's stderr, read end */
    int ctl; /* write end of the child's control pipe (ctl_in in the child) */
    char out[1 << 16];
    size_t len;
};

static int ctl_in = -1; /* the child's end of its control pipe */

/* Run fn in a child with `env` (NAME=VALUE or NULL) set; stderr and a control pipe wired. */
static void child_start(struct child *c, int (*fn)(void), const char *env)
{
    int e[2], k[2];
    ASSERT(pipe(e) == 0);
    ASSERT(pipe(k) == 0);
    fflush(stdout);
    fflush(stderr);
    c->len = 0;
    c->out[0] = 0;
    c->pid = fork();
    ASSERT(c->pid >= 0);
    if (c->pid == 0) {
        dup2(e[1], 2);
        close(e[0]);
        close(e[1]);
        close(k[1]);
        ctl_in = k[0];
        if (env)
            putenv((char *)env);
        _exit(fn());
    }
    close(e[1]);
    close(k[0]);
    c->err = e[0];
    c->ctl = k[1];
}

/* Read the child's stderr until `want` appears (true) or EOF (false); fails at the safety
 * deadline. want NULL: read to EOF. */
static bool child_wait_for(struct child *c, const char *want)
{
    int64_t deadline = weft_now() + SAFETY_NS;
    for (;;) {
        if (want && strstr(c->out, want))
            return true;
        int64_t left = deadline - weft_now();
        if (left <= 0) {
            fprintf(stderr, "test_hang: no \"%s\" from the child in 30 s; it said:\n%s\n",
                    want ? want : "EOF", c->out);
            kill(c->pid, SIGKILL);
            ASSERT(!"child timed out");
        }
        struct pollfd p = {.fd = c->err, .events = POLLIN};
        int r = poll(&p, 1, (int)(left / 1000000) + 1);
        if (r < 0 && errno == EINTR)
            continue;
        ASSERT(r >= 0);
        if (r == 0)
            continue;
        ASSERT(c->len + 1 < sizeof c->out);
        ssize_t n = read(c->err, c->out + c->len, sizeof c->out - 1 - c->len);
        if (n <= 0)
            return false;
        c->len += (size_t)n;
        c->out[c->len] = 0;
    }
}

static void child_poke(struct child *c)
{
    ASSERT(write(c->ctl, "x", 1) == 1);
}

/* Read to EOF and reap: the wait status. */
static int child_end(struct child *c)
{
    child_wait_for(c, NULL);
    close(c->err);
    close(c->ctl);
    int status;
    ASSERT(waitpid(c->pid, &status, 0) == c->pid);
    if (getenv("TEST_HANG_SHOW")) /* to see the reports */
        fprintf(stderr, "---- child %d (status %#x):\n%s", (int)c->pid, status, c->out);
    return status;
}

static void expect_exit(struct child *c, int status, int code)
{
    if (!WIFEXITED(status) || WEXITSTATUS(status) != code) {
        fprintf(stderr, "test_hang: child status %#x, expected exit %d; it said:\n%s\n", status,
                code, c->out);
        ASSERT(!"unexpected exit status");
    }
    checks++;
}

/* In the child: block until the parent pokes (a plain read: the thread blocks). */
static void wait_poke(void)
{
    char x;
    ASSERT(read(ctl_in, &x, 1) == 1);
}

static int run(int (*main_fn)(void *), int threads, int stall_ms, int deadlock)
{
    weft_config cfg = {.threads = threads, .stall_ms = stall_ms, .deadlock = deadlock};
    return weft_run(main_fn, NULL, &cfg);
}

/* ------------------------------------------------------------------------------------------
 * Deadlocks: each child must report and exit 2. */

static weft_chan *nobody_sends;

static void *taker(void *arg)
{
    int v;
    weft_chan_recv(arg, &v);
    return NULL;
}

static int recv_main(void *arg)
{
    (void)arg;
    ASSERT_EQ(weft_chan_create(&nobody_sends, sizeof(int), 0), 0);
    weft_task t;
    weft_spawn_opts o = {.name = "taker"};
    ASSERT_EQ(weft_spawn_ex(&t, taker, nobody_sends, &o), 0);
    weft_join(t, NULL);
    return 0;
}
static int child_recv(void)
{
    return run(recv_main, 2, -1, 0);
}
static int child_recv_solo(void)
{
    return run(recv_main, 1, -1, 0);
}

static weft_wg wg_short = WEFT_WG_INIT;
static void *wg_worker(void *arg)
{
    (void)arg;
    weft_wg_done(&wg_short);
    return NULL;
}
static int wg_main(void *arg)
{
    (void)arg;
    weft_wg_add(&wg_short, 3);
    for (int i = 0; i < 2; i++) /* one short */
        ASSERT_EQ(weft_spawn(NULL, wg_worker, NULL), 0);
    weft_wg_wait(&wg_short);
    return 0;
}
static int child_wg(void)
{
    return run(wg_main, 3, -1, 0);
}

static weft_mutex twice = WEFT_MUTEX_INIT;
static int mutex_main(void *arg)
{
    (void)arg;
    weft_set_name(weft_self(), "relocker");
    weft_mutex_lock(&twice);
    weft_mutex_lock(&twice); /* weft mutexes are not recursive */
    return 0;
}
static int child_mutex(void)
{
    return run(mutex_main, 2, -1, 0);
}

/* A plain thread blocked in weft_chan_recv forever is not a possible waker: still a
 * deadlock (the report counts it). */
static weft_chan *thread_waits;
static void *stuck_thread(void *arg)
{
    (void)arg;
    int v;
    weft_chan_recv(thread_waits, &v);
    return NULL;
}
static int stuck_main(void *arg)
{
    (void)arg;
    ASSERT_EQ(weft_chan_create(&thread_waits, sizeof(int), 0), 0);
    ASSERT_EQ(weft_chan_create(&nobody_sends, sizeof(int), 0), 0);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, stuck_thread, NULL), 0);
    int v;
    weft_chan_recv(nobody_sends, &v);
    return 0;
}
static int child_stuck_thread(void)
{
    return run(stuck_main, 2, -1, 0);
}

/* A plain thread that might have sent, but ends without doing so: reported once it is
 * gone (the watchdog's second looks). */
static void *quitter(void *arg)
{
    (void)arg;
    wait_poke();
    fprintf(stderr, "quitter: leaving\n");
    return NULL;
}
static int quitter_main(void *arg)
{
    (void)arg;
    ASSERT_EQ(weft_chan_create(&nobody_sends, sizeof(int), 0), 0);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, quitter, NULL), 0);
    ASSERT_EQ(pthread_detach(th), 0);
    fprintf(stderr, "quitter_main: parked\n");
    int v;
    weft_chan_recv(nobody_sends, &v);
    return 0;
}
static int child_quitter(void)
{
    return run(quitter_main, 2, -1, 0);
}

static void expect_deadlock(int (*fn)(void), const char *head, const char *name, const char *on)
{
    struct child c;
    child_start(&c, fn, NULL);
    int st = child_end(&c);
    expect_exit(&c, st, 2);
    if (!strstr(c.out, head) || (name && !strstr(c.out, name)) || (on && !strstr(c.out, on))) {
        fprintf(stderr, "test_hang: expected \"%s\" / %s / %s in:\n%s\n", head, name, on, c.out);
        ASSERT(!"deadlock report");
    }
    checks++;
    CHECK(strstr(c.out, "weft: blocking pool: 0 jobs queued, 0 running") != NULL);
#if defined(WEFT_CONTEXT_ASM) && defined(__x86_64__)
    /* the dump's frames (the asm backend on x86-64 prints a parked coroutine's): symbols,
     * or module+offset for this test's static functions */
    CHECK(strstr(c.out, "    #0 0x") != NULL);
    CHECK(strstr(c.out, " test_hang+0x") != NULL);
#endif
    CHECK(strstr(c.out, "$WEFT_DEADLOCK=0") != NULL);
}

static __attribute__((unused)) void test_deadlocks(void)
{
    expect_deadlock(child_recv,
                    "weft: deadlock: all 2 coroutines are parked and nothing can wake them\n",
                    "\"taker\" waiting", "on=chan recv");
    expect_deadlock(child_recv_solo, "weft: deadlock: all 2 coroutines are parked", "\"taker\"",
                    NULL);
    expect_deadlock(child_wg, "weft: deadlock: all 1 coroutine is parked and nothing can wake it\n",
                    "\"main\" waiting", "on=wait group");
    expect_deadlock(child_mutex, "weft: deadlock: all 1 coroutine is parked",
                    "\"relocker\" waiting", "on=mutex");
    expect_deadlock(child_stuck_thread,
                    "weft: deadlock: all 1 coroutine is parked and nothing can wake it (1 plain "
                    "thread is blocked in weft waits too)\n",
                    NULL, NULL);

    /* The thread that could have sent leaves: then the report. */
    struct child c;
    child_start(&c, child_quitter, NULL);
    ASSERT(child_wait_for(&c, "quitter_main: parked\n"));
    usleep(GRACE_US); /* a wrong report would come out while the thread still exists */
    CHECK(strstr(c.out, "weft: deadlock") == NULL);
    child_poke(&c);
    int st = child_end(&c);
    expect_exit(&c, st, 2);
    char *left = strstr(c.out, "quitter: leaving\n");
    char *rep = strstr(c.out, "weft: deadlock: all 1 coroutine is parked");
    CHECK(left && rep && left < rep);
}

/* ------------------------------------------------------------------------------------------
 * Not deadlocks: each child is released by the parent (or by a timer) and exits 0. */

static int ready_fd; /* a pipe the parent pokes (the fd-wait case) */

static void *late_sender(void *arg)
{
    weft_sleep(WEFT_MSEC(GRACE_US / 1000));
    int v = 1;
    weft_chan_send(arg, &v);
    return NULL;
}
static int timer_main(void *arg)
{
    (void)arg;
    weft_chan *ch;
    ASSERT_EQ(weft_chan_create(&ch, sizeof(int), 0), 0);
    ASSERT_EQ(weft_spawn(NULL, late_sender, ch), 0);
    int v;
    ASSERT_EQ(weft_chan_recv(ch, &v), 0);
    fprintf(stderr, "timer_main: done\n");
    return 0;
}
static int child_timer(void)
{
    return run(timer_main, 2, -1, 0);
}

static int fd_main(void *arg)
{
    (void)arg;
    ready_fd = ctl_in;
    fcntl(ready_fd, F_SETFL, O_NONBLOCK);
    fprintf(stderr, "fd_main: waiting\n");
    char x;
    ASSERT_EQ(weft_read(ready_fd, &x, 1, WEFT_FOREVER), 1);
    fprintf(stderr, "fd_main: done\n");
    return 0;
}
static int child_fd(void)
{
    return run(fd_main, 2, -1, 0);
}

static void *blocking_read(void *arg)
{
    (void)arg;
    wait_poke();
    return NULL;
}
static int job_main(void *arg)
{
    (void)arg;
    fprintf(stderr, "job_main: waiting\n");
    ASSERT_EQ(weft_blocking(blocking_read, NULL, NULL), 0);
    fprintf(stderr, "job_main: done\n");
    return 0;
}
static int child_job(void)
{
    return run(job_main, 2, -1, 0);
}

static void *thread_sender(void *arg)
{
    wait_poke();
    int v = 7;
    ASSERT_EQ(weft_chan_send(arg, &v), 0);
    return NULL;
}
static void *join_thread(void *arg)
{
    ASSERT_EQ(pthread_join(*(pthread_t *)arg, NULL), 0);
    return NULL;
}
static int thread_main(void *arg)
{
    (void)arg;
    weft_chan *ch;
    ASSERT_EQ(weft_chan_create(&ch, sizeof(int), 0), 0);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, thread_sender, ch), 0);
    fprintf(stderr, "thread_main: waiting\n");
    int v;
    ASSERT_EQ(weft_chan_recv(ch, &v), 0);
    ASSERT_EQ(v, 7);
    ASSERT_EQ(weft_blocking(join_thread, &th, NULL), 0);
    fprintf(stderr, "thread_main: done\n");
    return 0;
}
static int child_thread(void)
{
    return run(thread_main, 2, -1, 0);
}

/* Main returns while a coroutine is parked forever: the end of the program, no report. */
static int abandon_main(void *arg)
{
    (void)arg;
    ASSERT_EQ(weft_chan_create(&nobody_sends, sizeof(int), 0), 0);
    ASSERT_EQ(weft_spawn(NULL, taker, nobody_sends), 0);
    weft_yield();
    fprintf(stderr, "abandon_main: done\n");
    return 0;
}
static int child_abandon(void)
{
    return run(abandon_main, 2, -1, 0);
}

/* The detector off ($WEFT_DEADLOCK=0): a deadlocked child says nothing; the parent ends it. */
static int child_off(void)
{
    return run(recv_main, 2, -1, 0);
}
static int child_off_cfg(void)
{
    return run(recv_main, 2, -1, -1);
}

static void expect_normal(int (*fn)(void), const char *ready, const char *done, bool poke)
{
    struct child c;
    child_start(&c, fn, NULL);
    if (ready) {
        ASSERT(child_wait_for(&c, ready));
        usleep(GRACE_US);
    }
    if (poke)
        child_poke(&c);
    int st = child_end(&c);
    expect_exit(&c, st, 0);
    CHECK(strstr(c.out, "weft: deadlock") == NULL);
    CHECK(strstr(c.out, done) != NULL);
}

static void test_not_deadlocks(void)
{
    expect_normal(child_timer, NULL, "timer_main: done\n", false);
    expect_normal(child_fd, "fd_main: waiting\n", "fd_main: done\n", true);
    expect_normal(child_job, "job_main: waiting\n", "job_main: done\n", true);
    expect_normal(child_thread, "thread_main: waiting\n", "thread_main: done\n", true);
    expect_normal(child_abandon, NULL, "abandon_main: done\n", false);

    int (*offs[])(void) = {child_off, child_off_cfg};
    for (int i = 0; i < 2; i++) {
        struct child c;
        child_start(&c, offs[i], i == 0 ? "WEFT_DEADLOCK=0" : NULL);
        usleep(GRACE_US);
        CHECK_EQ(waitpid(c.pid, NULL, WNOHANG), 0); /* still there, deadlocked */
        kill(c.pid, SIGKILL);
        int st = child_end(&c);
        CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        CHECK(strstr(c.out, "weft: deadlock") == NULL);
    }
}

/* ------------------------------------------------------------------------------------------
 * Stalls. */

/* Spins without a weft call until the parent pokes: a non-blocking read in the loop (an
 * intercepted call: TSan delivers the watchdog's signal there). */
static void *spin_fn(void *arg)
{
    (void)arg;
    fcntl(ctl_in, F_SETFL, O_NONBLOCK);
    char x;
    while (read(ctl_in, &x, 1) != 1)
        ;
    return NULL;
}

/* Sits in a plain blocking read (the sqlite-on-a-worker case). */
static void *sys_fn(void *arg)
{
    (void)arg;
    wait_poke();
    return NULL;
}

static weft_fn stall_fn;
static const char *stall_name;
static int stall_main(void *arg)
{
    (void)arg;
    weft_task t;
    weft_spawn_opts o = {.name = stall_name};
    ASSERT_EQ(weft_spawn_ex(&t, stall_fn, NULL, &o), 0);
    ASSERT_EQ(weft_join(t, NULL), 0);
    weft_stats st;
    ASSERT_EQ(weft_stats_get(&st), 0);
    fprintf(stderr, "stall_main: done, stalls=%llu\n", (unsigned long long)st.stalls);
    return 0;
}
static int child_spin(void)
{
    stall_fn = spin_fn, stall_name = "spinner";
    return run(stall_main, 2, 0, 0); /* the default threshold */
}
static int child_sys(void)
{
    stall_fn = sys_fn, stall_name = "sysreader";
    return run(stall_main, 2, 20, 0);
}
static int child_spin_off(void)
{
    stall_fn = spin_fn, stall_name = "spinner";
    return run(stall_main, 2, -1, 0); /* off, whatever $WEFT_STALL_MS says */
}

/* named: the report names the coroutine and carries its backtrace (else only the line that
 * the worker did not answer the signal) */
static void expect_stall(int (*fn)(void), const char *env, const char *name, bool named)
{
    struct child c;
    child_start(&c, fn, env);
    char want[96];
    if (named) {
        snprintf(want, sizeof want, "\"%s\" (test_hang+0x", name);
        ASSERT(child_wait_for(&c, want));
        char *line = strstr(c.out, "weft: stall: worker ");
        CHECK(line && strstr(line, " ran coroutine ") && line < strstr(c.out, want));
        /* then its backtrace: the stalled function's frames, module(+offset) */
        ASSERT(child_wait_for(&c, "test_hang(+0x"));
    } else {
        snprintf(want, sizeof want, " ran without switching for ");
        ASSERT(child_wait_for(&c, want));
    }
    child_poke(&c);
    int st = child_end(&c);
    expect_exit(&c, st, 0);
    /* weft_stats counts it (and any other episode a loaded machine adds) */
    const char *sn = strstr(c.out, "stall_main: done, stalls=");
    CHECK(sn && atoi(sn + strlen("stall_main: done, stalls=")) >= 1);
    /* one report for the episode */
    CHECK(strstr(strstr(c.out, want) + 1, want) == NULL);
}

static void test_stalls(void)
{
    expect_stall(child_spin, NULL, "spinner", true);
    /* TSan holds a signal back while its thread is inside a blocking call (the read): the
     * watchdog gives up waiting for the backtrace and says so. */
    expect_stall(child_sys, NULL, "sysreader", !TEST_TSAN);
    expect_stall(child_spin, "WEFT_STALL_MS=20", "spinner", true);

    struct child c;
    child_start(&c, child_spin_off, "WEFT_STALL_MS=20");
    usleep(GRACE_US);
    child_poke(&c);
    int st = child_end(&c);
    expect_exit(&c, st, 0);
    CHECK(strstr(c.out, "weft: stall") == NULL);
    CHECK(strstr(c.out, "stall_main: done, stalls=0\n") != NULL);
}

/* ------------------------------------------------------------------------------------------
 * The dump's blocking-pool line, in process. */

static int pool_pipe[2];
static void *pool_job(void *arg)
{
    (void)arg;
    char x;
    ASSERT_EQ(read(pool_pipe[0], &x, 1), 1);
    return NULL;
}
static void *pool_caller(void *arg)
{
    _Atomic int *n = arg;
    atomic_fetch_add(n, 1);
    ASSERT_EQ(weft_blocking(pool_job, NULL, NULL), 0);
    return NULL;
}
static bool dump_has(const char *want)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ASSERT(f);
    weft_dump(f);
    ASSERT_EQ(fclose(f), 0);
    bool r = strstr(buf, want) != NULL;
    free(buf);
    return r;
}
/* weft_stats' view of the pool is the state the dump shows. Waited for, as the dump is: the
 * dump's line can also match a passing moment (the thread just started, the first job not
 * yet taken, the second not yet submitted) that is gone when the stats are read. */
static bool pool_stats(uint32_t queued, uint32_t busy, uint32_t threads)
{
    weft_stats st;
    ASSERT_EQ(weft_stats_get(&st), 0);
    return st.blocking_queued == queued && st.blocking_busy == busy &&
           st.blocking_threads == threads;
}
static int pool_main(void *arg)
{
    (void)arg;
    ASSERT_EQ(pipe(pool_pipe), 0);
    _Atomic int started = 0;
    weft_task t[2];
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(weft_spawn(&t[i], pool_caller, &started), 0);
    /* one thread (config): one job runs (blocked in read), the other is queued */
    WAIT_FOR(dump_has("weft: blocking pool: 1 job queued, 1 running, 1 thread\n"));
    checks++;
    WAIT_FOR(pool_stats(1, 1, 1));
    checks++;
    ASSERT_EQ(write(pool_pipe[1], "xy", 2), 2);
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(weft_join(t[i], NULL), 0);
    /* the thread counts as running until it is back waiting for jobs */
    WAIT_FOR(dump_has("weft: blocking pool: 0 jobs queued, 0 running, 1 thread\n"));
    checks++;
    WAIT_FOR(pool_stats(0, 0, 1));
    checks++;
    close(pool_pipe[0]);
    close(pool_pipe[1]);
    return 0;
}

static void test_dump_pool(void)
{
    weft_config cfg = {.threads = 2, .blocking_threads = 1};
    ASSERT_EQ(weft_run(pool_main, NULL, &cfg), 0);
}

int main(void)
{
#if TEST_TSAN
    /* TSan's runtime runs a background thread of its own, which the detector counts as a
     * plain thread that might still call weft: no deadlock is ever reported under TSan.
     * The cases that must not be reported still run. */
    printf("test_hang: deadlock reports skipped under TSan (its background thread)\n");
#else
    test_deadlocks();
#endif
    test_not_deadlocks();
    test_stalls();
    /* Last: it runs weft in this process, and a blocking-pool thread may still be on its
     * way out when weft_run returns (the pool's threads are detached) — a later fork would
     * then be a multi-threaded one, which TSan refuses in a child that starts threads. */
    test_dump_pool();
    TEST_PASS("test_hang", checks);
    return 0;
}
