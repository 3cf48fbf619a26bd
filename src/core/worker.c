/* SPDX-License-Identifier: MIT */
/* worker.c — floor 2 (the worker): the runtime pointer and the run epoch, the calling
 * thread's worker, a worker's inbox, its loop's wake-up, creation and teardown.
 *
 * A worker (worker.h; Go's M and P in one) is an OS thread with a libev loop, a run queue
 * (a 256-slot ring plus a `runnext` slot, runq.h), an inbox other threads post to, a private
 * FIFO of pinned coroutines, and caches (stacks, control blocks, loop records: looprec.h).
 * The runtime holds the workers, the global injection queue and the idle/spinning
 * bookkeeping (idle.c). What a worker does with its time is the scheduler's (sched.c).
 *
 * Inbox: a Treiber stack any thread pushes onto (release CAS) and the owner takes whole
 * (acquire exchange), then runs in post order. Each message carries its handler (struct
 * weft__msg's `run`): a coroutine to queue here (weft__worker_take_coro), a loop record to
 * stop (looprec.c: a timer or fd wait). The worker never names what a message is. */
#define _GNU_SOURCE
#include "worker.h"
#include "hookabi.h"
#include "evalloc.h"
#include "sanitizer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct weft__runtime *weft__rt;
/* Exported for libweft-hook (hookabi.h). */
WEFT_TLS struct weft__worker *weft__tls_worker;
_Atomic uint64_t weft__run_epoch;

WEFT_NOINLINE struct weft__worker *weft__worker_self(void)
{
    /* noinline + a compiler barrier: the thread-local address is never cached across a
     * switch by a caller (see worker.h). */
    __asm__ __volatile__("" ::: "memory");
    return weft__tls_worker;
}

struct weft__coro *weft__coro_self(void)
{
    struct weft__worker *w = weft__worker_self();
    return w ? w->current : NULL;
}

/* Wake a worker's loop (an eventfd write). Unchecked in segmented builds: a shallow leaf,
 * called from coroutines that must not grow a segment for it. */
WEFT_NOSPLIT void weft__worker_wake(struct weft__worker *w)
{
    ev_async_send(w->loop, &w->wake);
}

void weft__worker_post(struct weft__worker *w, struct weft__msg *m)
{
    /* Treiber push: release so the owner's acquire exchange sees the message's contents. */
    struct weft__msg *old = atomic_load_explicit(&w->inbox, memory_order_relaxed);
    do
        m->next = old;
    while (!atomic_compare_exchange_weak_explicit(&w->inbox, &old, m, memory_order_release,
                                                  memory_order_relaxed));
    weft__worker_wake(w);
}

void weft__worker_take_coro(struct weft__worker *w, struct weft__msg *m)
{
    struct weft__coro *co = (struct weft__coro *)((char *)m - offsetof(struct weft__coro, msg));
    if (co->pin)
        weft__pinned_push(w, co);
    else
        weft__runq_put(&w->rq, co, &weft__rt->global);
}

void weft__worker_drain(struct weft__worker *w)
{
    /* acquire: pairs with the release CAS of every post (their contents are seen). */
    struct weft__msg *m = atomic_exchange_explicit(&w->inbox, NULL, memory_order_acquire);
    struct weft__msg *rev = NULL;
    while (m) { /* the stack is LIFO: reverse it for FIFO */
        struct weft__msg *n = m->next;
        m->next = rev;
        rev = m;
        m = n;
    }
    for (m = rev; m;) {
        struct weft__msg *n = m->next; /* read first: the handler may reuse m */
        m->run(w, m);
        m = n;
    }
}

void weft__worker_poll(struct weft__worker *w, int flags)
{
    w->in_poll = true;
    ev_run(w->loop, flags);
    w->in_poll = false;
    w->last_poll = weft_now();
}

static void on_wake(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop, (void)a, (void)revents; /* ev_run returns; find_work drains the inbox */
}

/* ------------------------------------------------------------------------------------------
 * Workers: creation, the thread's setup, teardown (used by run.c and sched.c). */

void weft__worker_thread_init(struct weft__worker *w)
{
    weft__seg_thread_init(&w->sched_seg); /* segmented builds: this thread's stack state */
    weft__tls_worker = w;
    w->sched_tsan_fiber = weft__tsan_current();
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &w->sched_stack_lo, &w->sched_stack_size);
        pthread_attr_destroy(&attr);
    }
}

void weft__worker_thread_fini(struct weft__worker *w)
{
    (void)w;
    weft__tls_worker = NULL;
}

static void loop_setup(void *arg)
{
    struct weft__worker *w = arg;
    w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (!w->loop)
        return;
    /* The async watcher stays active and referenced: a loop without an active watcher
     * returns from ev_run at once instead of sleeping (100% CPU when idle). */
    ev_async_init(&w->wake, on_wake);
    ev_async_start(w->loop, &w->wake);
}

struct weft__worker *weft__worker_create(int index)
{
    struct weft__worker *w;
    if (posix_memalign((void **)&w, WEFT_CACHELINE, sizeof *w) != 0)
        return NULL;
    memset(w, 0, sizeof *w);
    w->index = index;
    w->rng = 0x9e3779b97f4a7c15ull * (uint64_t)(index + 1);
    w->tick_left = 61;
    /* libev aborts when it cannot allocate: the setup runs with evalloc.c's escape armed,
     * so no memory here fails weft_run with WEFT_ENOMEM instead. */
    if (weft__evalloc_try(loop_setup, w) != 0 || !w->loop) {
        free(w);
        return NULL;
    }
    return w;
}

/* The loop records (looprec.c) and io.c's table are freed by run.c before this. */
void weft__worker_destroy(struct weft__worker *w)
{
    ev_async_stop(w->loop, &w->wake);
    ev_loop_destroy(w->loop);
    weft__stack_cache_drain(&w->stacks);
    weft__coro_cache_drain(&w->coros);
    free(w);
}

void weft__wake_all(void)
{
    struct weft__runtime *rt = weft__rt;
    for (int i = 0; i < rt->nworkers; i++)
        ev_async_send(rt->workers[i]->loop, &rt->workers[i]->wake);
}

void weft__stop(void)
{
    struct weft__runtime *rt = weft__rt;
    atomic_store_explicit(&rt->stopping, 1, memory_order_release);
    /* release (like `stopping`): what main did before returning (its return value, read
     * by weft_run once worker 0 leaves its loop) happens before the acquire in worker_loop */
    for (int i = 0; i < rt->nworkers; i++)
        atomic_store_explicit(&rt->workers[i]->stop, true, memory_order_release);
    weft__wake_all();
}
