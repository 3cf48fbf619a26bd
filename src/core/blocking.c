/* SPDX-License-Identifier: MIT */
/* blocking.c — floor 5 (primitives): the blocking-offload pool: weft_blocking(fn, arg) runs fn on
 * an OS thread and parks the calling coroutine until it returns, so a blocking C call or a
 * CPU-heavy job never stalls a worker (the spawn_blocking of other runtimes).
 *
 * Threads are created on demand up to runtime.blocking_threads and retire after 10 s idle.
 *
 * The job record lives in the caller's frame, and the caller never leaves that frame while
 * a pool thread may still touch the record: fn usually works on the caller's stack too
 * (`struct req r; weft_blocking(fn, &r, NULL)`), and a job that outlived the frame would
 * write into a stack another coroutine then uses. So an interrupted caller (cancelled, or
 * past its deadline) either withdraws a job still QUEUED (fn never runs) or, once fn has
 * started, parks again — in a shield (coro.h "Cancellation"), not cancellable meanwhile —
 * until fn has returned (Go and Tokio cannot abandon a running blocking call either).
 *
 * Job states (job.state; every transition and every pool-side access under pool.mu, except
 * the pool thread's own reads of fn and arg while RUNNING, which nobody else writes):
 *   QUEUED   In the pool's queue; owned by the queue. The caller may unlink it (withdraw).
 *   RUNNING  Dequeued by a pool thread, fn running; the caller must wait for DONE.
 *   DONE     fn returned, result stored. The pool thread copied the caller's waker under
 *            pool.mu and touches the record no more: the caller may leave its frame.
 * job.k (the caller's waker) is written by the caller under pool.mu (arming a new wait when
 * it parks again) and read by the pool thread under pool.mu at DONE: the pool wakes the
 * token it copied; a token made stale by a cancellation fails its CAS (coro.h).
 *
 * Shutdown: once main has returned (runtime.stopping) no caller is resumed again, so pool
 * threads start no more jobs. weft_run, after every worker left and the gate closed (gate.h:
 * a pool thread blocked in a weft call inside fn was woken with WEFT_ENORUNTIME), drops the
 * jobs still queued unrun — their records are in frames of abandoned coroutines, released
 * with the stacks afterwards — and waits for the running ones (joining every pool thread),
 * whose callers are not woken. That is before the teardown: a running job's record, and what
 * fn uses on its caller's stack, stay mapped until fn has returned. Pool threads are
 * joinable: each has a record on pool.live; a thread that retires moves its record to
 * pool.retired (under pool.mu, as its last act before it returns), where the next thread
 * start or the shutdown joins it. So when weft_run returns no pool thread exists any more,
 * not even one on its way out (a fork after weft_run then copies one thread, as it must). A pool thread is a plain
 * thread: its wake-up of the caller goes through the gate, which admits it without waiting
 * while the runtime stops (weft__gate_enter: it is what weft_run waits for) and then says
 * there is no runtime, so the abandoned caller is not woken. Nothing is heap-allocated per
 * job, so nothing can leak. */
#define _GNU_SOURCE
#include "gate.h"
#include "blocking.h"
#include "scheduler.h"
#include "timer.h"
#include "trace.h"
#include "waker.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

struct job {
    struct job *next; /* queue link (pool.mu) */
    weft_fn fn;
    void *arg;
    void *result; /* written by the pool thread before DONE */
    struct weft__waker k;
    int state; /* pool.mu */
};

/* A pool thread's record, for joining it (pool.mu). */
struct pool_thr {
    struct pool_thr *next;
    pthread_t t;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* idle threads wait here for jobs */
    pthread_cond_t done; /* shutdown waits here for threads to exit */
    struct job *head, *tail;
    int threads, idle;
    int stopping;
    struct pool_thr *live;    /* threads running pool_thread */
    struct pool_thr *retired; /* threads that left pool_thread: join them (then free) */
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER,
          .cv = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER};

/* Under pool.mu: join the threads that retired. Each moved its record here as the last
 * thing it did under pool.mu, so it is past every use of the pool and only returns: the
 * join ends at once, and holding pool.mu meanwhile is safe. */
static void reap_locked(void)
{
    while (pool.retired) {
        struct pool_thr *r = pool.retired;
        pool.retired = r->next;
        pthread_join(r->t, NULL);
        free(r);
    }
}

static void *pool_thread(void *self)
{
    struct pool_thr *me = self;
    /* Pool threads exist only while weft_run runs (created by its coroutines, joined by
     * weft__blocking_shutdown before weft__rt is cleared): weft__rt is stable here. */
    struct weft__runtime *rt = weft__rt;
    weft__gate_pool_thread = true;
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        /* Once main has returned no caller will be resumed: start no more jobs (relaxed: a
         * job started just as the flag is set is merely waited for at shutdown). */
        bool rt_stopping = atomic_load_explicit(&rt->stopping, memory_order_relaxed);
        if (!pool.head || rt_stopping) {
            if (pool.stopping)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 10;
            pool.idle++;
            int r = pthread_cond_timedwait(&pool.cv, &pool.mu, &ts);
            pool.idle--;
            if (r != 0 && !pool.head)
                break; /* idle for 10 s: retire */
            continue;
        }
        struct job *j = pool.head;
        pool.head = j->next;
        if (!pool.head)
            pool.tail = NULL;
        j->state = JOB_RUNNING;
        WEFT__TRACE(-1, WEFT__TR_BLOCK_START, j->k.co ? j->k.co->id : 0, 0, 0);
        pthread_mutex_unlock(&pool.mu);
        void *res = j->fn(j->arg);
        pthread_mutex_lock(&pool.mu);
        j->result = res;
        j->state = JOB_DONE;
        struct weft__waker k = j->k; /* j may be gone once we unlock */
        WEFT__TRACE(-1, WEFT__TR_BLOCK_END, k.co ? k.co->id : 0, 0, 0);
        bool wake = !pool.stopping; /* stopping: the caller is abandoned, never resumed */
        pthread_mutex_unlock(&pool.mu);
        /* Not gated around fn: user code may block for good, and a stopping weft_run waits
         * for every thread inside the gate to leave. */
        if (wake && weft__gate_enter() == WEFT__IN_OPEN)
            weft__waker_wake(&k, 0, false);
        if (wake)
            weft__gate_leave();
        pthread_mutex_lock(&pool.mu);
    }
    pool.threads--;
    struct pool_thr **pp = &pool.live;
    while (*pp != me)
        pp = &(*pp)->next;
    *pp = me->next;
    me->next = pool.retired;
    pool.retired = me;
    pthread_cond_broadcast(&pool.done);
    pthread_mutex_unlock(&pool.mu);
    return NULL;
}

/* Under pool.mu: queue j and make sure a thread will take it. 0, or the error of a pool
 * that has no thread and could not start one (then j is not queued). */
static int submit_locked(struct job *j)
{
    reap_locked();
    if (pool.idle == 0 && pool.threads < weft__rt->blocking_threads) {
        /* The record is taken before the thread exists: it finds itself on pool.live once it
         * gets pool.mu, which this thread holds until the record is linked. */
        struct pool_thr *r = malloc(sizeof *r);
        int e = r ? pthread_create(&r->t, NULL, pool_thread, r) : EAGAIN;
        if (e == 0) {
            r->next = pool.live;
            pool.live = r;
            pool.threads++;
        } else {
            free(r);
            if (pool.threads == 0)
                return WEFT_EAGAIN; /* nobody would ever take the job */
        }
        /* else a busy thread takes it when it is done */
    }
    if (pool.tail)
        pool.tail->next = j;
    else
        pool.head = j;
    pool.tail = j;
    if (pool.idle > 0)
        pthread_cond_signal(&pool.cv);
    return 0;
}

/* Under pool.mu: take a QUEUED job out of the queue. */
static void withdraw_locked(struct job *j)
{
    struct job *prev = NULL;
    for (struct job *p = pool.head; p != j; prev = p, p = p->next)
        WEFT_ASSERT(p);
    if (prev)
        prev->next = j->next;
    else
        pool.head = j->next;
    if (pool.tail == j)
        pool.tail = prev;
}

/* The caller's wait ended with r (WEFT_ECANCELED or WEFT_ETIMEDOUT) before the pool woke
 * it. Withdraw a job nobody has started: r. Otherwise park again, shielded, until fn has
 * returned: then WEFT_ECANCELED if the caller was cancelled (before or meanwhile: the
 * request is sticky), else 0 — a deadline bounds only the wait for a thread. */
static int interrupted(struct weft__coro *co, struct job *j, int r)
{
    pthread_mutex_lock(&pool.mu);
    if (j->state == JOB_QUEUED) {
        withdraw_locked(j);
        pthread_mutex_unlock(&pool.mu);
        return r;
    }
    weft__shield_enter(co); /* before arming: the wait carries the shield (coro.h) */
    while (j->state != JOB_DONE) {
        /* A new wait, published to the pool under the lock: the pool wakes whatever token
         * it finds at DONE. Unlocked before the park (see weft_blocking_until). */
        weft__wait_arm(co, &j->k, "blocking");
        pthread_mutex_unlock(&pool.mu);
        weft__park(NULL, NULL, false); /* shielded: only the pool's wake at DONE ends it */
        pthread_mutex_lock(&pool.mu);
    }
    pthread_mutex_unlock(&pool.mu);
    weft__shield_leave(co);
    return weft__cancel_pending(co) ? WEFT_ECANCELED : 0;
}

int weft_blocking_until(weft_fn fn, void *arg, void **result, int64_t deadline)
{
    if (!fn)
        return WEFT_EINVAL;
    struct weft__coro *co = weft__coro_self();
    if (!co) { /* a plain thread may block: just run it */
        void *r = fn(arg);
        if (result)
            *result = r;
        return 0;
    }
    /* A cancelled caller starts no job (a quick fn could otherwise complete before the park
     * sees the request, and a loop of offloads would never be told). */
    int c = weft__cancel_point(co);
    if (c < 0)
        return c;
    struct job j = {.fn = fn, .arg = arg, .state = JOB_QUEUED};
    pthread_mutex_lock(&pool.mu);
    int r = submit_locked(&j);
    if (r == 0) /* armed before any pool thread can see j (it needs pool.mu) */
        weft__wait_arm(co, &j.k, "blocking");
    pthread_mutex_unlock(&pool.mu);
    if (r != 0)
        return r;
    /* The pool mutex is not held across the park (TSan: unlock on a wrong fiber); the job's
     * waker CAS makes an early completion safe: it readies us, we may still be parking. */
    r = weft__park_until(deadline, NULL, NULL);
    if (r != 0)
        r = interrupted(co, &j, r);
    /* No pool thread touches j any more: DONE was seen (under pool.mu, or through the wake
     * that the pool issued after setting it), or j was withdrawn. */
    if (j.state == JOB_DONE && result)
        *result = j.result;
    return r;
}

int weft_blocking(weft_fn fn, void *arg, void **result)
{
    return weft_blocking_until(fn, arg, result, WEFT_FOREVER);
}

void weft__blocking_shutdown(void)
{
    pthread_mutex_lock(&pool.mu);
    pool.stopping = 1;
    pool.head = pool.tail = NULL; /* queued jobs of abandoned callers: never run */
    pthread_cond_broadcast(&pool.cv);
    while (pool.threads > 0)
        pthread_cond_wait(&pool.done, &pool.mu);
    reap_locked(); /* every thread retired: none is left, not even on its way out */
    pool.stopping = 0;
    pthread_mutex_unlock(&pool.mu);
}

void weft__blocking_atfork(int phase)
{
    if (phase == WEFT_FORK_PREPARE) {
        pthread_mutex_lock(&pool.mu);
    } else if (phase == WEFT_FORK_PARENT) {
        pthread_mutex_unlock(&pool.mu);
    } else {
        /* The child has none of the parent's pool threads; their jobs belong to the parent.
         * Its one thread took pool.mu in PREPARE: it unlocks it. */
        pthread_cond_init(&pool.cv, NULL);
        pthread_cond_init(&pool.done, NULL);
        pool.head = pool.tail = NULL;
        pool.threads = pool.idle = pool.stopping = 0;
        pool.live = pool.retired = NULL; /* the parent's threads: not ours to join (leaked) */
        pthread_mutex_unlock(&pool.mu);
    }
}

/* hang.h: the pool's depth, for the deadlock check and weft_dump. `running`: threads not
 * idle (running a job, or between jobs); under pool.mu, so the three agree. */
void weft__blocking_depth(int *queued, int *threads, int *running)
{
    pthread_mutex_lock(&pool.mu);
    int q = 0;
    for (struct job *j = pool.head; j; j = j->next)
        q++;
    *queued = q;
    *threads = pool.threads;
    *running = pool.threads - pool.idle;
    pthread_mutex_unlock(&pool.mu);
}
