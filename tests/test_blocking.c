/* SPDX-License-Identifier: MIT */
/* test_blocking.c — the blocking-offload pool's memory-safety contract, and fork():
 * a cancelled caller whose job struct lives on its stack stays parked until fn has returned
 * (fn writes into the struct after the cancel; the caller then sees it intact, gets
 * WEFT_ECANCELED and fn's result); repeated cancels are folded into one; a job not yet
 * started is withdrawn (fn never runs) and the caller returns at once; the deadline variant
 * withdraws a queued job (WEFT_ETIMEDOUT) and waits for a running one (0); a pool that has
 * no thread and cannot start one returns WEFT_EAGAIN instead of waiting forever; at shutdown
 * queued jobs of abandoned callers are dropped and running ones waited for, with nothing
 * leaked (the asan stage runs LSan); a child forked by a plain thread while a runtime runs
 * can run weft afresh, and a child forked from a coroutine gets a clear error from weft_run.
 * fn is always gated on an atomic the test opens: no timing decides an outcome. */
#define _GNU_SOURCE
#include "harness.h"
#include <weft.h>

#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

static _Atomic long checks;

/* A job gate: fn announces it started, then waits (on its pool thread) until opened. */
struct gate {
    _Atomic int started, open, done;
};

static void gate_pass(struct gate *g)
{
    atomic_store(&g->started, 1);
    while (!atomic_load(&g->open))
        sched_yield();
}

/* ------------------------------------------------------------------------------------------
 * A cancelled caller with its job struct on its stack. */

struct stackjob {
    struct gate *g;
    long before;
    char buf[512]; /* fn fills it after the cancel */
    long after;
};

static void *fill_fn(void *arg)
{
    struct stackjob *j = arg;
    gate_pass(j->g);
    memset(j->buf, 0x52, sizeof j->buf);
    j->after = 0x5151;
    atomic_store(&j->g->done, 1);
    return (void *)7;
}

struct cancel_case {
    struct gate g;
    int cancels; /* weft_cancel calls made while fn runs */
    _Atomic int returned;
    int r, done_at_return, intact, pending_after, sleep_after;
    void *res;
};

/* Reuse the stack below the caller's frame, as the next call of a coroutine would: with
 * the old use-after-return, fn's late writes landed in frames like this one. */
static __attribute__((noinline)) void scribble(void)
{
    volatile char big[2048];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)i;
}

static void *cancel_caller(void *arg)
{
    struct cancel_case *c = arg;
    struct stackjob j = {.g = &c->g, .before = 0x4242, .after = 0};
    void *res = (void *)-1;
    int r = weft_blocking(fill_fn, &j, &res);
    c->done_at_return = atomic_load(&c->g.done);
    c->r = r;
    c->res = res;
    int intact = j.before == 0x4242 && j.after == 0x5151;
    for (size_t i = 0; i < sizeof j.buf; i++)
        intact &= j.buf[i] == 0x52;
    c->intact = intact;
    c->pending_after = weft_cancelled();
    atomic_store(&c->returned, 1);
    scribble();
    c->sleep_after = weft_sleep(WEFT_USEC(100)); /* the request is sticky: reported again */
    return NULL;
}

static void cancel_running(int cancels)
{
    struct cancel_case c = {.cancels = cancels};
    weft_task t;
    ASSERT_EQ(weft_spawn(&t, cancel_caller, &c), 0);
    WAIT_FOR(atomic_load(&c.g.started));
    for (int i = 0; i < cancels; i++) {
        CHECK_EQ(weft_cancel(t), 0);
        weft_yield();
    }
    /* The caller must stay parked while fn runs. Give it every chance to come back (it did
     * at once before the fix); the bound only limits how long we look. */
    int64_t dl = weft_after(WEFT_MSEC(50));
    while (!atomic_load(&c.returned) && weft_now() < dl)
        weft_sleep(WEFT_MSEC(1));
    CHECK_EQ(atomic_load(&c.returned), 0);
    atomic_store(&c.g.open, 1);
    CHECK_EQ(weft_join(t, NULL), 0);
    CHECK_EQ(c.r, WEFT_ECANCELED);
    CHECK_EQ(c.done_at_return, 1); /* fn had returned when the caller left its frame */
    CHECK_EQ(c.intact, 1);         /* its writes landed in the live struct */
    CHECK_EQ((intptr_t)c.res, 7);  /* fn ran: its result is handed over */
    CHECK_EQ(c.pending_after, 1);  /* sticky: still requested after the report */
    CHECK_EQ(c.sleep_after, WEFT_ECANCELED);
}

/* ------------------------------------------------------------------------------------------
 * One pool thread (blocking_threads = 1) kept busy: later jobs stay queued. */

static _Atomic int never_ran;
static void *never_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&never_ran, 1);
    return (void *)9;
}

static void *gated_fn(void *arg)
{
    struct gate *g = arg;
    gate_pass(g);
    atomic_store(&g->done, 1);
    return (void *)11;
}

struct call {
    int kind; /* 0: weft_blocking, 1: weft_blocking_until */
    weft_fn fn;
    void *arg;
    int64_t deadline;
    _Atomic int stage; /* 1: calling, 2: returned */
    int r;
    void *res;
};

static void *caller(void *arg)
{
    struct call *c = arg;
    c->res = (void *)-1;
    atomic_store(&c->stage, 1);
    c->r = c->kind == 0 ? weft_blocking(c->fn, c->arg, &c->res)
                        : weft_blocking_until(c->fn, c->arg, &c->res, c->deadline);
    atomic_store(&c->stage, 2);
    return NULL;
}

/* Occupy the only pool thread with a gated job; returns the caller's task. */
static weft_task occupy(struct call *a, struct gate *g)
{
    *a = (struct call){.fn = gated_fn, .arg = g};
    weft_task t;
    ASSERT_EQ(weft_spawn(&t, caller, a), 0);
    WAIT_FOR(atomic_load(&g->started));
    return t;
}

/* Run one more job through the single FIFO thread: any job still queued before it has run. */
static void flush_pool(void)
{
    void *r = NULL;
    CHECK_EQ(weft_blocking(never_fn, NULL, &r), 0);
    CHECK_EQ((intptr_t)r, 9);
    atomic_fetch_sub(&never_ran, 1);
}

/* A cancellation while the caller waits for a thread (with a deadline too, kind 1, which
 * must not be what it reports): withdrawn at once, fn never runs. */
static void withdraw_queued(int kind)
{
    struct gate g = {0};
    struct call a;
    weft_task ta = occupy(&a, &g);
    struct call b = {.kind = kind, .fn = never_fn, .deadline = weft_after(WEFT_SEC(60))};
    weft_task tb;
    ASSERT_EQ(weft_spawn(&tb, caller, &b), 0);
    WAIT_FOR(atomic_load(&b.stage) >= 1);
    CHECK_EQ(weft_cancel(tb), 0);
    CHECK_EQ(weft_join(tb, NULL), 0); /* at once: the pool thread is still held */
    CHECK_EQ(atomic_load(&g.done), 0);
    CHECK_EQ(b.r, WEFT_ECANCELED);
    CHECK_EQ((intptr_t)b.res, -1); /* fn never ran: *result untouched */
    atomic_store(&g.open, 1);
    CHECK_EQ(weft_join(ta, NULL), 0);
    CHECK_EQ(a.r, 0);
    CHECK_EQ((intptr_t)a.res, 11);
    flush_pool();
    CHECK_EQ(atomic_load(&never_ran), 0); /* the withdrawn job never ran */
}

static void deadline_queued(void)
{
    struct gate g = {0};
    struct call a;
    weft_task ta = occupy(&a, &g);
    struct call b = {.kind = 1, .fn = never_fn, .deadline = weft_after(WEFT_MSEC(20))};
    weft_task tb;
    ASSERT_EQ(weft_spawn(&tb, caller, &b), 0);
    CHECK_EQ(weft_join(tb, NULL), 0);
    CHECK_EQ(atomic_load(&g.done), 0); /* returned while the only thread was still held */
    CHECK_EQ(b.r, WEFT_ETIMEDOUT);
    CHECK_GE(weft_now(), b.deadline);
    CHECK_EQ((intptr_t)b.res, -1);
    atomic_store(&g.open, 1);
    CHECK_EQ(weft_join(ta, NULL), 0);
    flush_pool();
    CHECK_EQ(atomic_load(&never_ran), 0);
}

static void deadline_running(void)
{
    /* The deadline must pass while fn runs, which needs fn to start before it: when the
     * pool was slower than that, the job was withdrawn (checked too) and we try again with
     * a later deadline. */
    for (int64_t ahead = WEFT_MSEC(1);; ahead *= 2) {
        ASSERT_LT(ahead, WEFT_SEC(60));
        struct gate g = {0};
        struct call b = {.kind = 1, .fn = gated_fn, .arg = &g, .deadline = weft_after(ahead)};
        weft_task tb;
        ASSERT_EQ(weft_spawn(&tb, caller, &b), 0);
        WAIT_FOR(atomic_load(&g.started) || atomic_load(&b.stage) == 2);
        if (!atomic_load(&g.started)) {
            CHECK_EQ(weft_join(tb, NULL), 0);
            CHECK_EQ(b.r, WEFT_ETIMEDOUT);
            CHECK_EQ((intptr_t)b.res, -1);
            continue;
        }
        /* Past the deadline while fn runs: the caller keeps waiting for it (whether its
         * timer fired before the gate opens or not, the outcome is the same). */
        while (weft_now() < b.deadline + WEFT_MSEC(5))
            weft_sleep(WEFT_MSEC(1));
        CHECK_EQ(atomic_load(&b.stage), 1);
        atomic_store(&g.open, 1);
        CHECK_EQ(weft_join(tb, NULL), 0);
        CHECK_EQ(b.r, 0);
        CHECK_EQ((intptr_t)b.res, 11);
        break;
    }
    /* a deadline far away: an ordinary call */
    struct gate g2 = {.open = 1};
    void *r = NULL;
    CHECK_EQ(weft_blocking_until(gated_fn, &g2, &r, weft_after(WEFT_SEC(60))), 0);
    CHECK_EQ((intptr_t)r, 11);
    CHECK_EQ(weft_blocking_until(NULL, NULL, &r, WEFT_FOREVER), WEFT_EINVAL);
}

static void *plain_thread_until(void *arg)
{
    (void)arg;
    void *r = NULL;
    struct gate g = {.open = 1};
    /* a plain thread runs fn inline; the deadline does not apply */
    int rc = weft_blocking_until(gated_fn, &g, &r, 0);
    return (void *)(intptr_t)(rc == 0 && (intptr_t)r == 11 && atomic_load(&g.done) ? 1 : 0);
}

static int pool_main(void *arg)
{
    (void)arg;
    cancel_running(1);
    cancel_running(3);
    withdraw_queued(0);
    withdraw_queued(1);
    deadline_queued();
    deadline_running();
    pthread_t th;
    void *ok = NULL;
    ASSERT_EQ(pthread_create(&th, NULL, plain_thread_until, NULL), 0);
    ASSERT_EQ(pthread_join(th, &ok), 0);
    CHECK_EQ((intptr_t)ok, 1);
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * No thread can be started: thread stacks are made too large to map (the process's default
 * thread attributes), so pthread_create fails while the pool has no thread. */

static int nothread_main(void *arg)
{
    (void)arg;
    pthread_attr_t saved, huge;
    ASSERT_EQ(pthread_getattr_default_np(&saved), 0);
    ASSERT_EQ(pthread_attr_init(&huge), 0);
    ASSERT_EQ(pthread_attr_setstacksize(&huge, (size_t)1 << 46), 0); /* 64 TiB */
    ASSERT_EQ(pthread_setattr_default_np(&huge), 0);
    struct call b = {.fn = never_fn};
    weft_task tb;
    ASSERT_EQ(weft_spawn(&tb, caller, &b), 0);
    /* The safety net against the old behaviour (waiting forever for a thread). */
    int jr = weft_join_until(tb, NULL, weft_after(WEFT_SEC(10)));
    CHECK_EQ(jr, 0);
    ASSERT_EQ(pthread_setattr_default_np(&saved), 0);
    pthread_attr_destroy(&huge);
    pthread_attr_destroy(&saved);
    if (jr != 0)
        abort();
    CHECK_EQ(b.r, WEFT_EAGAIN);
    CHECK_EQ((intptr_t)b.res, -1);
    CHECK_EQ(atomic_load(&never_ran), 0);
    /* limits back to normal: the pool starts a thread */
    flush_pool();
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Shutdown with one job running (its fn ends only once the runtime is stopping) and one
 * queued behind it: weft_run waits for the first, drops the second, leaks nothing. */

static void *noop(void *arg)
{
    return arg;
}

static _Atomic int shutdown_fn_done, queued_ran;
static void *queued_fn(void *arg)
{
    (void)arg;
    atomic_store(&queued_ran, 1);
    return NULL;
}
static void *until_stopping_fn(void *arg)
{
    struct gate *g = arg;
    atomic_store(&g->started, 1);
    /* From this plain thread, spawning fails once main has returned (the runtime stops). */
    while (weft_spawn(NULL, noop, NULL) == 0)
        sched_yield();
    atomic_store(&shutdown_fn_done, 1);
    return NULL;
}

static struct gate shutdown_gate;
static struct call shutdown_a, shutdown_b;

static int shutdown_main(void *arg)
{
    (void)arg;
    shutdown_a = (struct call){.fn = until_stopping_fn, .arg = &shutdown_gate};
    shutdown_b = (struct call){.fn = queued_fn};
    ASSERT_EQ(weft_spawn(NULL, caller, &shutdown_a), 0);
    WAIT_FOR(atomic_load(&shutdown_gate.started));
    ASSERT_EQ(weft_spawn(NULL, caller, &shutdown_b), 0);
    WAIT_FOR(atomic_load(&shutdown_b.stage) >= 1);
    weft_yield();
    return 0; /* both callers are abandoned, parked in weft_blocking */
}

static void shutdown_case(void)
{
    weft_config cfg = {.threads = 2, .blocking_threads = 1};
    ASSERT_EQ(weft_run(shutdown_main, NULL, &cfg), 0);
    CHECK_EQ(atomic_load(&shutdown_fn_done), 1); /* the running job was waited for */
    CHECK_EQ(atomic_load(&queued_ran), 0);       /* the queued one was dropped */
    CHECK_EQ(atomic_load(&shutdown_b.stage), 1); /* never resumed */
    CHECK_EQ((intptr_t)shutdown_b.res, -1);
    CHECK_EQ(atomic_load(&shutdown_a.stage), 1);
}

/* ------------------------------------------------------------------------------------------
 * No pool thread outlives weft_run, not even one on its way out (they were detached: one
 * still exiting made a later fork multi-threaded). Four jobs on four threads, every run. */

static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    ASSERT(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static _Atomic int four_in;
static void *four_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&four_in, 1);
    while (atomic_load(&four_in) < 4) /* all four on their own threads at once */
        sched_yield();
    return NULL;
}

static int four_main(void *arg)
{
    (void)arg;
    atomic_store(&four_in, 0);
    struct call c[4];
    weft_task t[4];
    for (int i = 0; i < 4; i++) {
        c[i] = (struct call){.fn = four_fn};
        ASSERT_EQ(weft_spawn(&t[i], caller, &c[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(weft_join(t[i], NULL), 0);
        CHECK_EQ(c[i].r, 0);
    }
    return 0;
}

static void no_thread_left(void)
{
    int base = count_threads();
    for (int run = 0; run < 30; run++) {
        weft_config cfg = {.threads = 2, .blocking_threads = 4};
        ASSERT_EQ(weft_run(four_main, NULL, &cfg), 0);
        int n = count_threads();
        CHECK_EQ(n, base);
        if (n != base)
            break;
    }
}

/* ------------------------------------------------------------------------------------------
 * fork(). */

static weft_task parent_handle; /* a live task of the parent, inherited by the child */

static int child_main(void *arg)
{
    (void)arg;
    /* the parent's handle names no coroutine of this runtime */
    if (weft_join(parent_handle, NULL) != WEFT_ESTATE)
        return 10;
    weft_task t;
    void *r = NULL;
    if (weft_spawn(&t, noop, (void *)5) != 0 || weft_join(t, &r) != 0 || (intptr_t)r != 5)
        return 11;
    struct gate g = {.open = 1};
    if (weft_blocking(gated_fn, &g, &r) != 0 || (intptr_t)r != 11)
        return 12;
    return 0;
}

/* In the child of a plain thread's fork: weft is fresh. */
static int child_of_plain_thread(void)
{
    if (weft_spawn(NULL, noop, NULL) != WEFT_ENORUNTIME)
        return 20; /* not a runtime that looks alive */
    weft_config cfg = {.threads = 2};
    int r = weft_run(child_main, NULL, &cfg);
    if (r != 0)
        return r < 0 ? 21 : r;
    cfg.threads = 1; /* and again */
    return weft_run(child_main, NULL, &cfg) == 0 ? 0 : 22;
}

struct forker {
    _Atomic int go;
    pid_t pid;
};

static void *fork_thread(void *arg)
{
    struct forker *f = arg;
    while (!atomic_load(&f->go))
        sched_yield();
    f->pid = fork();
    if (f->pid == 0)
        _exit(child_of_plain_thread());
    return NULL;
}

static void *join_pthread(void *arg)
{
    pthread_join(*(pthread_t *)arg, NULL);
    return NULL;
}

static void *wait_child(void *arg)
{
    int status;
    if (waitpid((pid_t)(intptr_t)arg, &status, 0) < 0)
        return (void *)-1;
    return (void *)(intptr_t)status;
}

/* Busy coroutines while the fork happens: locks of the pools are in use. */
static _Atomic int churn_stop;
static void *churn(void *arg)
{
    (void)arg;
    while (!atomic_load(&churn_stop)) {
        weft_task t;
        if (weft_spawn(&t, noop, NULL) == 0)
            weft_join(t, NULL);
        struct gate g = {.open = 1};
        weft_blocking(gated_fn, &g, NULL);
    }
    return NULL;
}

static _Atomic int sleeper_started;
static void *sleeper(void *arg)
{
    (void)arg;
    atomic_store(&sleeper_started, 1);
    weft_sleep(WEFT_SEC(60));
    return NULL;
}

/* Not under ASan: gcc 12's ASan allocator takes no lock around fork(), so a child forked
 * while any other thread allocates can deadlock in its first malloc (seen here: the child's
 * new threads stuck in the allocator's size-class lock) — a sanitizer limitation; glibc's
 * malloc is fork-safe. The fork from a coroutine (the child allocates nothing) still runs. */
#if defined(__SANITIZE_ADDRESS__)
#define FORK_FROM_THREAD 0
#else
#define FORK_FROM_THREAD 1
#endif

static void fork_from_thread(void)
{
    weft_task churners[3];
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(weft_spawn(&churners[i], churn, NULL), 0);
    ASSERT_EQ(weft_spawn(&parent_handle, sleeper, NULL), 0);
    WAIT_FOR(atomic_load(&sleeper_started));
    struct forker f = {0};
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, fork_thread, &f), 0);
    atomic_store(&f.go, 1);
    void *r;
    ASSERT_EQ(weft_blocking(join_pthread, &th, &r), 0);
    ASSERT_GT(f.pid, 0);
    ASSERT_EQ(weft_blocking(wait_child, (void *)(intptr_t)f.pid, &r), 0);
    int status = (int)(intptr_t)r;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "fork child: status %#x (exit %d)\n", status, WEXITSTATUS(status));
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    /* the parent is unaffected */
    atomic_store(&churn_stop, 1);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_join(churners[i], NULL), 0);
    CHECK_EQ(weft_cancel(parent_handle), 0);
    CHECK_EQ(weft_join(parent_handle, NULL), 0);
    weft_task t;
    ASSERT_EQ(weft_spawn(&t, noop, (void *)3), 0);
    CHECK_EQ(weft_join(t, &r), 0);
    CHECK_EQ((intptr_t)r, 3);
}

static int fork_main(void *arg)
{
    (void)arg;
    if (FORK_FROM_THREAD)
        fork_from_thread();
    else
        fprintf(stderr, "test_blocking: fork from a plain thread skipped under ASan\n");

    /* Forked from a coroutine: the child may exec or _exit; weft_run says why it cannot run
     * there, and nothing of the parent's runtime looks alive. */
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        int code = 0;
        if (weft_run(child_main, NULL, NULL) != WEFT_ESTATE)
            code = 30;
        else if (weft_spawn(NULL, noop, NULL) != WEFT_ENORUNTIME)
            code = 31;
        else if (weft_self().id != 0)
            code = 32; /* a plain thread now */
        _exit(code);
    }
    close(fds[1]);
    char buf[512];
    size_t len = 0;
    ssize_t n;
    while (len + 1 < sizeof buf &&
           (n = weft_read(fds[0], buf + len, sizeof buf - 1 - len, weft_after(WEFT_SEC(10)))) > 0)
        len += (size_t)n;
    buf[len] = 0;
    close(fds[0]);
    void *r;
    ASSERT_EQ(weft_blocking(wait_child, (void *)(intptr_t)pid, &r), 0);
    int status = (int)(intptr_t)r;
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK(strstr(buf, "forked from a coroutine") != NULL);
    return 0;
}

int main(void)
{
    int threads[] = {1, 2};
    for (int i = 0; i < 2; i++) {
        weft_config cfg = {.threads = threads[i], .blocking_threads = 1};
        ASSERT_EQ(weft_run(pool_main, NULL, &cfg), 0);
    }
    weft_config one = {.threads = 1};
    ASSERT_EQ(weft_run(nothread_main, NULL, &one), 0);
    shutdown_case();
    no_thread_left();
#if TEST_TSAN
    /* TSan does not support a multi-threaded process that forks and then starts threads in
     * the child (die_after_fork). */
    fprintf(stderr, "test_blocking: fork cases skipped under TSan\n");
    (void)fork_main;
#else
    weft_config two = {.threads = 2};
    ASSERT_EQ(weft_run(fork_main, NULL, &two), 0);
#endif
    TEST_PASS("test_blocking", checks);
    return 0;
}
