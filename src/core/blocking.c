/* blocking.c — the blocking-offload pool: weft_blocking(fn, arg) runs fn on an OS thread
 * and parks the calling coroutine until it returns, so a blocking C call or a CPU-heavy job
 * never stalls a worker (the spawn_blocking of other runtimes).
 *
 * Threads are created on demand up to runtime.blocking_threads and retire after 10 s idle.
 * A job is heap-allocated with two references (the caller, the pool): a cancelled caller
 * returns at once while fn runs on; whoever drops the last reference frees the job.
 * Threads: the queue and counters are guarded by pool.mu; a job's result is written by the
 * pool thread before it tries the caller's waker (whose CAS/ready chain publishes it).
 * Shutdown: weft_run waits for jobs in flight (joining every pool thread) before returning,
 * after the runtime is gone: a pool thread is a plain thread, its wake-up of the caller goes
 * through the gate (gate.h) and is dropped once the runtime stops (the caller is abandoned,
 * never resumed; its job stays allocated, like the rest of the abandoned coroutine). */
#define _GNU_SOURCE
#include "gate.h"
#include "runtime.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct job {
    struct job *next;
    weft_fn fn;
    void *arg;
    void *result;
    struct weft__waker k;
    _Atomic int refs;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* idle threads wait here for jobs */
    pthread_cond_t done; /* shutdown waits here for threads to exit */
    struct job *head, *tail;
    int threads, idle;
    int stopping;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER};

static void job_release(struct job *j)
{
    if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) == 1)
        free(j);
}

static void *pool_thread(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        while (!pool.head && !pool.stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 10;
            pool.idle++;
            int r = pthread_cond_timedwait(&pool.cv, &pool.mu, &ts);
            pool.idle--;
            if (r != 0 && !pool.head)
                goto retire; /* idle for 10 s */
        }
        if (!pool.head)
            break; /* stopping and nothing left */
        struct job *j = pool.head;
        pool.head = j->next;
        if (!pool.head)
            pool.tail = NULL;
        pthread_mutex_unlock(&pool.mu);
        j->result = j->fn(j->arg);
        /* Not gated around fn: user code may block for good, and a stopping weft_run waits
         * for every thread inside the gate to leave. */
        if (weft__gate_enter() == WEFT__IN_OPEN)
            weft__waker_wake(&j->k, 0, false);
        weft__gate_leave();
        job_release(j);
        pthread_mutex_lock(&pool.mu);
    }
retire:
    pool.threads--;
    pthread_cond_broadcast(&pool.done);
    pthread_mutex_unlock(&pool.mu);
    return NULL;
}


int weft_blocking(weft_fn fn, void *arg, void **result)
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
    struct job *j = malloc(sizeof *j);
    if (!j)
        return WEFT_ENOMEM;
    j->next = NULL;
    j->fn = fn;
    j->arg = arg;
    j->result = NULL;
    atomic_init(&j->refs, 2);
    weft__wait_arm(co, &j->k, "blocking");

    pthread_mutex_lock(&pool.mu);
    if (pool.tail)
        pool.tail->next = j;
    else
        pool.head = j;
    pool.tail = j;
    if (pool.idle > 0) {
        pthread_cond_signal(&pool.cv);
    } else if (pool.threads < weft__rt->blocking_threads) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, pool_thread, NULL) == 0)
            pool.threads++;
        pthread_attr_destroy(&attr);
    }
    /* If no thread could be started and none exists, the job waits for one that will. */
    pthread_mutex_unlock(&pool.mu);
    /* The pool mutex is not held across the park (TSan: unlock on a wrong fiber); the job's
     * waker CAS makes an early completion safe: it readies us, we may still be parking. */
    int r = weft__park(NULL, NULL);
    if (r == 0 && result)
        *result = j->result;
    job_release(j);
    return r;
}

void weft__blocking_shutdown(void)
{
    pthread_mutex_lock(&pool.mu);
    pool.stopping = 1;
    pthread_cond_broadcast(&pool.cv);
    while (pool.threads > 0)
        pthread_cond_wait(&pool.done, &pool.mu);
    pool.stopping = 0;
    pthread_mutex_unlock(&pool.mu);
}
