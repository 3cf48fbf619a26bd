/* SPDX-License-Identifier: MIT */
/* coro.c — coroutine control blocks and the task API: spawn, join, detach, cancel, names,
 * coroutine-local storage, and the waker protocol every blocking call uses (coro.h). */
#define _GNU_SOURCE
#include "coro.h"
#include "futex.h"
#include "gate.h"
#include "hang.h"
#include "runtime.h"
#include "sim.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------
 * Control blocks: type-stable (never freed), recycled through per-worker caches and a global
 * pool. Ids come from one counter and never repeat. */

#define CORO_SLAB 256
#define CORO_CACHE_HIGH 1024
#define CORO_BATCH 256

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t keys_mu = PTHREAD_MUTEX_INITIALIZER; /* coroutine-local keys */
static struct weft__coro *pool_free;
static struct weft__coro *all_coros; /* every control block ever made (weft_dump walks it) */
static _Atomic uint64_t next_id = 1;
static _Atomic uint64_t alive;
static _Atomic int64_t zombies_plain; /* zombies made minus reaped by plain threads (workers
                                         count theirs in n_zombied / n_unzombied) */

/* Called with pool_mu held: make sure the pool has at least one block. */
static bool pool_fill_locked(void)
{
    if (pool_free)
        return true;
    struct weft__coro *slab = calloc(CORO_SLAB, sizeof *slab);
    if (!slab)
        return false;
    for (int i = 0; i < CORO_SLAB; i++) {
        slab[i].next = pool_free;
        pool_free = &slab[i];
        slab[i].all_next = all_coros;
        all_coros = &slab[i];
    }
    return true;
}

/* One block for a plain thread, or a batch into a worker's cache: one lock per batch, so
 * blocks that drift between workers (spawned on one, finished on another) cost little.
 * Slow paths that call libc are kept out of line here and below: in segmented builds a
 * function that calls unsplit code asks for a large frame at every call (segstack.h). */
static WEFT_NOINLINE struct weft__coro *pool_take(struct weft__worker *w)
{
    pthread_mutex_lock(&pool_mu);
    if (!pool_fill_locked()) {
        pthread_mutex_unlock(&pool_mu);
        return NULL;
    }
    struct weft__coro *co = pool_free;
    pool_free = co->next;
    for (int i = 0; w && i < CORO_BATCH && (pool_free || pool_fill_locked()); i++) {
        struct weft__coro *c = pool_free;
        pool_free = c->next;
        c->next = w->coro_cache;
        w->coro_cache = c;
        w->coro_cache_n++;
    }
    pthread_mutex_unlock(&pool_mu);
    return co;
}

struct take {
    struct weft__worker *w;
    struct weft__coro *co;
};
static void pool_take_call(void *p)
{
    struct take *t = p;
    t->co = pool_take(t->w);
}

/* Ids: unique for the process; workers take them in blocks (no shared counter per spawn). */
static uint64_t new_id(struct weft__worker *w)
{
    if (!w)
        return atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
    if (w->id_next == w->id_end) {
        w->id_next = atomic_fetch_add_explicit(&next_id, 1024, memory_order_relaxed);
        w->id_end = w->id_next + 1024;
    }
    return w->id_next++;
}

struct weft__coro *weft__coro_alloc(void)
{
    struct weft__worker *w = weft__worker_self();
    struct weft__coro *co;
    if (w && w->coro_cache) {
        co = w->coro_cache;
        w->coro_cache = co->next;
        w->coro_cache_n--;
    } else {
        struct take t = {w, NULL};
        weft__offstack(pool_take_call, &t); /* calloc: too deep for a small stack */
        if (!(co = t.co))
            return NULL;
    }
    /* co->wait keeps its sequence across reuse (stale wakers must never match). */
    uint64_t seq = weft__wait_next(atomic_load_explicit(&co->wait, memory_order_relaxed));
    co->ctx = NULL;
    co->next = NULL;
    co->msg.kind = WEFT_MSG_CORO;
    co->stack = NULL;
    atomic_store_explicit(&co->wait, seq, memory_order_relaxed);
    co->wait_result = 0;
    co->shield = 0;
    co->pin = 0;
    co->home = NULL;
    co->result = NULL;
    atomic_store_explicit(&co->refs, 2, memory_order_relaxed);
    /* A holder of a stale handle (weft_cancel/join/detach) may be inside co->lock right now,
     * checking the old id: reset the lock-guarded fields under the lock, never overwrite it. */
    weft__lock_acquire(&co->lock);
    atomic_store_explicit(&co->cancel, 0, memory_order_relaxed);
    co->finished = 0;
    co->flags = 0;
    co->joiner = NULL;
    weft__lock_release(&co->lock);
    co->locals = NULL;
    co->wait_what = NULL;
    co->last_worker = -1;
    co->name[0] = 0;
    atomic_store_explicit(&co->id, new_id(w), memory_order_release);
    if (w)
        weft__stat_inc(&w->n_alloc);
    else
        atomic_fetch_add_explicit(&alive, 1, memory_order_relaxed);
    return co;
}

/* Unchecked in segmented builds (a mutex and two stores): it runs in after-steps on small
 * stacks, which must not grow for it. */
static WEFT_NOSPLIT WEFT_NOINLINE void pool_put(struct weft__coro *first, struct weft__coro *last)
{
    pthread_mutex_lock(&pool_mu);
    last->next = pool_free;
    pool_free = first;
    pthread_mutex_unlock(&pool_mu);
}

static void coro_free(struct weft__coro *co)
{
    atomic_store_explicit(&co->id, 0, memory_order_release);
    atomic_store_explicit(&co->state, WEFT_CO_FREE, memory_order_release);
    struct weft__worker *w = weft__worker_self();
    if (!w) {
        atomic_fetch_sub_explicit(&alive, 1, memory_order_relaxed);
        pool_put(co, co);
        return;
    }
    weft__stat_inc(&w->n_free);
    co->next = w->coro_cache;
    w->coro_cache = co;
    if (++w->coro_cache_n <= CORO_CACHE_HIGH)
        return;
    /* Too many here (they drifted from the worker that spawns): a batch to the pool. */
    struct weft__coro *first = w->coro_cache, *last = first;
    for (int i = 1; i < CORO_BATCH; i++)
        last = last->next;
    w->coro_cache = last->next;
    w->coro_cache_n -= CORO_BATCH;
    pool_put(first, last);
}

void weft__coro_release(struct weft__coro *co)
{
    /* acq_rel: the last dropper sees every write the other holder made before dropping. */
    if (atomic_fetch_sub_explicit(&co->refs, 1, memory_order_acq_rel) == 1)
        coro_free(co);
}

void weft__coro_cache_drain(struct weft__worker *w)
{
    pthread_mutex_lock(&pool_mu);
    while (w->coro_cache) {
        struct weft__coro *co = w->coro_cache;
        w->coro_cache = co->next;
        co->next = pool_free;
        pool_free = co;
    }
    w->coro_cache_n = 0;
    pthread_mutex_unlock(&pool_mu);
}

struct weft__coro *weft__coro_first(void)
{
    return all_coros;
}

uint64_t weft__coro_alive(void)
{
    /* Plain-thread allocations are counted globally, workers' on their own counters. */
    int64_t n = (int64_t)atomic_load_explicit(&alive, memory_order_relaxed);
    struct weft__runtime *rt = weft__rt;
    for (int i = 0; rt && i < rt->nworkers; i++)
        n += (int64_t)(atomic_load_explicit(&rt->workers[i]->n_alloc, memory_order_relaxed) -
                       atomic_load_explicit(&rt->workers[i]->n_free, memory_order_relaxed));
    return n > 0 ? (uint64_t)n : 0;
}

uint64_t weft__coro_zombies(void)
{
    /* Made on the worker where the task finished, reaped wherever it is joined/detached:
     * only the sum means something (and it may lag a little, like every statistic). */
    int64_t n = atomic_load_explicit(&zombies_plain, memory_order_relaxed);
    struct weft__runtime *rt = weft__rt;
    for (int i = 0; rt && i < rt->nworkers; i++)
        n += (int64_t)(atomic_load_explicit(&rt->workers[i]->n_zombied, memory_order_relaxed) -
                       atomic_load_explicit(&rt->workers[i]->n_unzombied, memory_order_relaxed));
    return n > 0 ? (uint64_t)n : 0;
}

/* Under co->lock, co finished: it becomes a zombie (made) or stops being one (a join or
 * detach reaps it). The flag, under the lock, makes each happen once; the counters follow
 * the statistics' single-writer rule: a worker's counter is written only by the thread
 * running that worker, plain threads share one atomic. */
static void zombie_make_locked(struct weft__coro *co)
{
    if (co->flags & (WEFT_CF_ZOMBIE | WEFT_CF_DETACHED))
        return;
    co->flags |= WEFT_CF_ZOMBIE;
    struct weft__worker *w = weft__worker_self();
    if (w)
        weft__stat_inc(&w->n_zombied);
    else
        atomic_fetch_add_explicit(&zombies_plain, 1, memory_order_relaxed);
}

static void zombie_reap_locked(struct weft__coro *co)
{
    if (!(co->flags & WEFT_CF_ZOMBIE))
        return;
    co->flags &= ~(uint32_t)WEFT_CF_ZOMBIE;
    struct weft__worker *w = weft__worker_self();
    if (w)
        weft__stat_inc(&w->n_unzombied);
    else
        atomic_fetch_sub_explicit(&zombies_plain, 1, memory_order_relaxed);
}

/* Runtime shutdown: every control block that still holds a coroutine is abandoned (Go's
 * rule): its stack is unmapped with the slabs; the block returns to the pool and its id is
 * retired, so stale handles get WEFT_ESTATE. */
static void reset_all_locked(bool in_child)
{
    pool_free = NULL;
    for (struct weft__coro *co = all_coros; co; co = co->all_next) {
        if (in_child) {
            /* A thread of the parent may have held the lock. The local values belong to
             * the parent's coroutines: no destructor runs in the child. */
            atomic_store_explicit(&co->lock.word, 0, memory_order_relaxed);
            free(co->locals);
            co->locals = NULL;
        } else {
            weft__coro_locals_free(co);
        }
        atomic_store_explicit(&co->id, 0, memory_order_relaxed);
        atomic_store_explicit(&co->state, WEFT_CO_FREE, memory_order_relaxed);
        /* Retire any armed wait: a late waker (a blocking job finishing) must fail its CAS. */
        uint64_t w = weft__wait_next(atomic_load_explicit(&co->wait, memory_order_relaxed));
        atomic_store_explicit(&co->wait, w, memory_order_relaxed);
        if (!in_child) /* the child may be running on the segments of one */
            weft__seg_release(&co->seg); /* an abandoned coroutine's extra segments */
        co->stack = NULL;
        co->ctx = NULL;
        co->next = pool_free;
        pool_free = co;
    }
    atomic_store(&alive, 0);
    atomic_store(&zombies_plain, 0);
}

void weft__coro_reset_all(void)
{
    pthread_mutex_lock(&pool_mu);
    reset_all_locked(false);
    pthread_mutex_unlock(&pool_mu);
}

/* fork: the child's control blocks all return to the pool, as at shutdown (the parent's
 * coroutines do not exist there); ids are retired, so inherited handles get WEFT_ESTATE. */
void weft__coro_atfork(int phase)
{
    if (phase == WEFT_FORK_PREPARE) {
        pthread_mutex_lock(&keys_mu);
        pthread_mutex_lock(&pool_mu);
    } else if (phase == WEFT_FORK_PARENT) {
        pthread_mutex_unlock(&pool_mu);
        pthread_mutex_unlock(&keys_mu);
    } else {
        /* The child's one thread is the one that took them in PREPARE: it unlocks them. */
        reset_all_locked(true);
        pthread_mutex_unlock(&pool_mu);
        pthread_mutex_unlock(&keys_mu);
    }
}

struct weft__coro *weft__coro_from_handle(weft_task t)
{
    if (!t.co || !t.id)
        return NULL;
    if (atomic_load_explicit(&t.co->id, memory_order_acquire) != t.id)
        return NULL;
    return t.co;
}

/* ------------------------------------------------------------------------------------------
 * Wakers. */

void weft__wait_arm(struct weft__coro *co, struct weft__waker *k, const char *what)
{
    uint64_t w = atomic_load_explicit(&co->wait, memory_order_relaxed);
    /* co->shield is co's own and cannot change before this wait ends (co is parked): the
     * bit tells weft_cancel, which cannot read co->shield, not to end a shielded wait. */
    uint64_t armed = weft__wait_next(w) | WEFT_WAIT_ARMED | (co->shield ? WEFT_WAIT_SHIELDED : 0);
    /* Release: a waker that reads this token (weft_cancel loads co->wait) and wins the CAS
     * then writes co->wait_result; the release/acquire pair orders our earlier reads of the
     * result slot before its write (TSan, and weakly ordered CPUs). */
    atomic_store_explicit(&co->wait, armed, memory_order_release);
    co->wait_what = what;
    k->co = co;
    k->token = armed;
    k->tp = NULL;
}

void weft__wait_disarm(struct weft__coro *co)
{
    uint64_t tok = atomic_load_explicit(&co->wait, memory_order_relaxed);
    if ((tok & WEFT_WAIT_ARMED) &&
        atomic_compare_exchange_strong_explicit(&co->wait, &tok, tok & ~WEFT_WAIT_ARMED,
                                                memory_order_acq_rel, memory_order_relaxed))
        return;
    /* A waker (weft_cancel) won the wait and is making us runnable: park to absorb that
     * wake-up, or it would end our next, unrelated wait early. */
    weft__park(NULL, NULL);
}

bool weft__waker_claim(struct weft__waker *k)
{
    if (k->co) {
        uint64_t tok = k->token;
        if (!(tok & WEFT_WAIT_ARMED))
            return false; /* not a live wait's token: nothing to claim */
        return atomic_compare_exchange_strong_explicit(&k->co->wait, &tok, tok & ~WEFT_WAIT_ARMED,
                                                       memory_order_acq_rel,
                                                       memory_order_relaxed);
    }
    /* A plain thread's wait: armed (0) → claimed (1), keeping the SLEEPING bit. */
    uint32_t v = atomic_load_explicit(&k->tp->word, memory_order_relaxed);
    while ((v & TP_STATE) == TP_ARMED)
        if (atomic_compare_exchange_weak_explicit(&k->tp->word, &v, (v & TP_SLEEPING) | TP_CLAIMED,
                                                  memory_order_acq_rel, memory_order_relaxed)) {
            /* Uncounted before the thread can run again (it waits for DONE): a deadlock
             * check never takes a woken thread for a stuck one (deadlock.c). */
            if (v & TP_STUCK)
                atomic_fetch_sub_explicit(&weft__stuck_threads, 1, memory_order_seq_cst);
            return true;
        }
    return false;
}

void weft__waker_complete(struct weft__waker *k, int result, bool handoff)
{
    if (k->co) {
        k->co->wait_result = result;
        weft__ready(k->co, handoff);
        return;
    }
    /* A plain thread: after the release store the waiter may return and its frame (tp)
     * may be gone, so touch nothing after the store except the futex address for the
     * wake — FUTEX_WAKE on an address no longer waited on is harmless. */
    struct weft__thread_parker *tp = k->tp;
    tp->result = result;
    /* The futex system call only if the thread went to sleep: a waiter still spinning sees
     * DONE by itself. The exchange orders against its CAS that sets SLEEPING. */
    uint32_t old = atomic_exchange_explicit(&tp->word, TP_DONE, memory_order_acq_rel);
    if (old & TP_SLEEPING)
        weft__futex_wake(&tp->word, 1);
}

bool weft__waker_wake(struct weft__waker *k, int result, bool handoff)
{
    if (!weft__waker_claim(k))
        return false;
    weft__waker_complete(k, result, handoff);
    return true;
}

void weft__tparker_arm(struct weft__thread_parker *tp, struct weft__waker *k)
{
    atomic_store_explicit(&tp->word, 0, memory_order_relaxed);
    tp->result = 0;
    k->co = NULL;
    k->token = 0;
    k->tp = tp;
}

static int tparker_sleep(struct weft__thread_parker *tp, int64_t deadline)
{
    /* No spinning before the futex: measured on 2 cores, a spinning blocked thread takes the
     * CPU from the coroutine that would unblock it (threadsend: 6.7 M msgs/s with a 2,000-
     * pause spin, 17-24 M without). */
    for (;;) {
        uint32_t v = atomic_load_explicit(&tp->word, memory_order_acquire);
        if ((v & TP_STATE) == TP_DONE)
            return tp->result;
        if (!(v & TP_SLEEPING)) {
            /* hang.h: an unclaimed wait without a deadline is counted (counted first, so
             * the claimer that sees TP_STUCK always finds the count to take back). */
            uint32_t stuck =
                deadline == WEFT_FOREVER && (v & TP_STATE) == TP_ARMED ? TP_STUCK : 0;
            if (stuck)
                atomic_fetch_add_explicit(&weft__stuck_threads, 1, memory_order_seq_cst);
            if (!atomic_compare_exchange_weak_explicit(&tp->word, &v, v | TP_SLEEPING | stuck,
                                                       memory_order_acq_rel,
                                                       memory_order_acquire)) {
                if (stuck)
                    atomic_fetch_sub_explicit(&weft__stuck_threads, 1, memory_order_seq_cst);
                continue;
            }
            v |= TP_SLEEPING | stuck;
        }
        if (weft__futex_wait(&tp->word, v, deadline) == -ETIMEDOUT &&
            (atomic_load_explicit(&tp->word, memory_order_acquire) & TP_STATE) != TP_DONE)
            return WEFT_ETIMEDOUT;
    }
}

int weft__tparker_wait(struct weft__thread_parker *tp, int64_t deadline)
{
    int mode = weft__gate_mode();
    /* Every public call that can sleep counts a plain thread in (gate.h): a thread asleep
     * outside the gate could be woken by the sweep and then unlink itself from a queue whose
     * neighbours' stacks are already unmapped. */
    WEFT_ASSERT(mode != 0);
    if (mode == WEFT__IN_NONE) {
        /* No runtime: a wait for another plain thread (the sync objects work without one).
         * Not counted while asleep, so that a runtime can start meanwhile (gate.h). */
        weft__gate_leave();
        int r = tparker_sleep(tp, deadline);
        weft__gate_enter(); /* before the caller touches the object again */
        return r;
    }
    if (WEFT_LIKELY(weft__gate_track(tp))) {
        if (WEFT_UNLIKELY(weft__sim_on()) && deadline != WEFT_FOREVER)
            deadline = weft__sim_to_real(deadline); /* simulation: the futex sleeps in real time */
        int r = tparker_sleep(tp, deadline);
        weft__gate_untrack(tp); /* after this the gate's sweep no longer sees our frame */
        return r;
    }
    /* No running runtime (or it is stopping): nothing may complete this wait later. Take
     * it back, unless a waker claimed it already: then that waker (a plain thread inside a
     * call, which completes before it leaves) is about to complete it. */
    uint32_t v = atomic_load_explicit(&tp->word, memory_order_relaxed);
    while ((v & TP_STATE) == TP_ARMED)
        if (atomic_compare_exchange_weak_explicit(&tp->word, &v, TP_DONE, memory_order_acq_rel,
                                                  memory_order_relaxed))
            return WEFT_ENORUNTIME;
    return tparker_sleep(tp, WEFT_FOREVER);
}

/* ------------------------------------------------------------------------------------------
 * Spawn, exit, join, detach. */

struct reserve {
    struct weft__stack_cache *cache;
    size_t size;
    struct weft__stack *st;
    int r;
};
static void reserve_call(void *p)
{
    struct reserve *r = p;
    r->r = weft__stack_reserve(r->cache, r->size, &r->st);
}

/* The pool's half of weft__stack_spawn (a mutex, maybe a new mapping): off a small stack,
 * like the control-block refill. */
static WEFT_NOINLINE int stack_spawn_slow(struct weft__worker *w, struct weft__coro *co,
                                          size_t size)
{
    struct reserve r = {w ? &w->stacks : NULL, size, NULL, 0};
    weft__offstack(reserve_call, &r);
    co->stack = r.st;
    if (r.r != 0)
        weft__wake_all(); /* running short: idle workers give their cached stacks back */
    return r.r;
}

/* Give a new coroutine the promise of a stack (or, from the pool, a free stack). */
int weft__stack_spawn(struct weft__worker *w, struct weft__coro *co, size_t size)
{
    co->stack_size = size;
    if (WEFT_LIKELY(w && weft__stack_promise(&w->stacks, size)))
        return 0; /* co->stack stays NULL (coro_alloc): a promise */
    return stack_spawn_slow(w, co, size);
}

int weft_spawn(weft_task *out, weft_fn fn, void *arg)
{
    return weft_spawn_ex(out, fn, arg, NULL);
}

/* A loop rather than strncpy: no libc call on a coroutine's stack (see segstack.h). */
static void copy_name(struct weft__coro *co, const char *name)
{
    size_t i = 0;
    for (; i < sizeof co->name - 1 && name[i]; i++)
        co->name[i] = name[i];
    co->name[i] = 0;
}

/* Shutdown (weft.h): a coroutine may spawn until the very end — main returned, its worker
 * finishing the coroutine's current stretch — and gets a handle whose coroutine never runs
 * (Go's answer; the ports of Go programs need it). A plain thread is refused from the moment
 * it sees `stopping` (main returned) and by the gate once weft_run is stopping. */
static int spawn(weft_task *out, weft_fn fn, void *arg, const weft_spawn_opts *opts)
{
    struct weft__runtime *rt = weft__rt; /* valid: a worker, or admitted (gate.h) */
    if (!weft__worker_entry() && atomic_load_explicit(&rt->stopping, memory_order_relaxed))
        return WEFT_ENORUNTIME;
    size_t size = rt->stack_size;
    if (opts && opts->stack_size) {
        if (opts->stack_size < WEFT_STACK_MIN || opts->stack_size > WEFT_STACK_MAX)
            return WEFT_ESTACK;
        size = weft__stack_round(opts->stack_size);
    }
    struct weft__coro *co = weft__coro_alloc();
    if (!co)
        return WEFT_ENOMEM;
    /* The stack is promised now, taken at the first run (stack.c "Promises"): a coroutine
     * that was spawned always gets its stack, and running out of memory is this call's
     * WEFT_ENOMEM. */
    struct weft__worker *w = weft__worker_self();
    if (weft__stack_spawn(w, co, size) != 0) {
        coro_free(co);
        return WEFT_ENOMEM;
    }
    co->fn = fn;
    co->arg = arg;
    if (opts && opts->name) {
        copy_name(co, opts->name);
    }
    if (!out) {
        co->flags |= WEFT_CF_DETACHED;
        atomic_fetch_sub_explicit(&co->refs, 1, memory_order_relaxed);
    } else {
        *out = (weft_task){co, atomic_load_explicit(&co->id, memory_order_relaxed)};
    }
    if (w)
        weft__stat_inc(&w->n_spawned);
    atomic_store_explicit(&co->state, WEFT_CO_RUNNABLE, memory_order_relaxed);
    if (opts && opts->pinned && w) {
        co->pin = 1;
        co->home = w;
    }
    weft__schedule(co, false);
    /* Back-pressure: a coroutine spawning faster than the workers drain (a loop of a
     * million spawns) would park every child in the queues, each with a control block of
     * fresh memory (a page fault per 14 children here). When this worker's ring is full,
     * the spawner yields and its children run first: memory stays flat and warm. */
    if (w && w->current && weft__runq_len(&w->rq) >= WEFT_RUNQ_SIZE - 1)
        weft__yield(); /* not a cancellation point: spawn reports none */
    return 0;
}

int weft_spawn_ex(weft_task *out, weft_fn fn, void *arg, const weft_spawn_opts *opts)
{
    if (out)
        *out = (weft_task){NULL, 0};
    if (!fn || (opts && !WEFT_RESERVED_ZERO(opts)))
        return WEFT_EINVAL;
    return WEFT__GATED_RT(spawn(out, fn, arg, opts));
}

void weft__coro_exit(struct weft__coro *co, void *result)
{
    if (co->locals)
        weft__coro_locals_free(co);
    co->result = result;
    weft__lock_acquire(&co->lock);
    co->finished = 1;
    bool is_main = co->flags & WEFT_CF_MAIN; /* flags change under the lock (detach/join) */
    struct weft__waker k = {0};
    bool have = co->joiner != NULL;
    if (have) {
        k = *co->joiner; /* copy under the lock: the joiner's frame may go once woken */
        co->joiner = NULL;
    }
    if (!have) /* nobody joins it now: unless detached, a zombie until joined or detached */
        zombie_make_locked(co);
    weft__lock_release(&co->lock);
    if (have)
        weft__waker_wake(&k, 0, true);
    if (is_main) {
        weft__stop();
    }
    weft__sched_exit(co);
}

static void unlock_coro(void *arg)
{
    weft__lock_release(&((struct weft__coro *)arg)->lock);
}

/* Called with co->lock held and co finished: hand out the result and drop the handle. */
static int take_result(struct weft__coro *co, void **result)
{
    co->flags |= WEFT_CF_DETACHED | WEFT_CF_JOINED; /* the handle is consumed */
    zombie_reap_locked(co);
    void *r = co->result;
    weft__lock_release(&co->lock);
    if (result)
        *result = r;
    weft__coro_release(co);
    return 0;
}

static int join_until(weft_task t, void **result, int64_t deadline)
{
    struct weft__coro *co = weft__coro_from_handle(t);
    if (!co)
        return WEFT_ESTATE;
    struct weft__coro *self = weft__coro_self();
    if (self == co)
        return WEFT_EDEADLK;
    weft__lock_acquire(&co->lock);
    if (atomic_load_explicit(&co->id, memory_order_relaxed) != t.id ||
        (co->flags & WEFT_CF_DETACHED) || co->joiner) {
        weft__lock_release(&co->lock);
        return WEFT_ESTATE;
    }
    if (co->finished)
        return take_result(co, result);
    struct weft__waker k;
    int r;
    if (self) {
        weft__wait_arm(self, &k, "join");
        co->joiner = &k;
        r = weft__park_until(deadline, unlock_coro, co);
    } else {
        struct weft__thread_parker tp;
        weft__tparker_arm(&tp, &k);
        co->joiner = &k;
        weft__lock_release(&co->lock);
        r = weft__tparker_wait(&tp, deadline);
        if (r == WEFT_ETIMEDOUT) {
            weft__lock_acquire(&co->lock);
            if (co->joiner == &k) {
                co->joiner = NULL;
                weft__lock_release(&co->lock);
                return WEFT_ETIMEDOUT;
            }
            weft__lock_release(&co->lock);
            r = weft__tparker_wait(&tp, WEFT_FOREVER); /* the exit already took us */
        }
    }
    weft__lock_acquire(&co->lock);
    if (r != 0) {
        if (co->joiner == &k)
            co->joiner = NULL;
        else if (co->finished)
            zombie_make_locked(co); /* its exit found us joining, but our wait ended first */
        weft__lock_release(&co->lock);
        return r;
    }
    WEFT_ASSERT(co->finished);
    return take_result(co, result);
}

/* A plain thread is admitted for the whole join (gate.h): the control block cannot be reset
 * under it; a stopping runtime wakes it with WEFT_ENORUNTIME (the joined coroutine will
 * never finish), and after the stop the handle is refused with WEFT_ENORUNTIME. */
int weft_join_until(weft_task t, void **result, int64_t deadline)
{
    return WEFT__GATED_RT(join_until(t, result, deadline));
}

int weft_join(weft_task t, void **result)
{
    return weft_join_until(t, result, WEFT_FOREVER);
}

static int detach(weft_task t)
{
    struct weft__coro *co = weft__coro_from_handle(t);
    if (!co)
        return WEFT_ESTATE;
    weft__lock_acquire(&co->lock);
    if (atomic_load_explicit(&co->id, memory_order_relaxed) != t.id ||
        (co->flags & WEFT_CF_DETACHED) || co->joiner) {
        weft__lock_release(&co->lock);
        return WEFT_ESTATE;
    }
    co->flags |= WEFT_CF_DETACHED;
    zombie_reap_locked(co);
    weft__lock_release(&co->lock);
    weft__coro_release(co);
    return 0;
}

int weft_detach(weft_task t)
{
    return WEFT__GATED_RT(detach(t));
}

/* ------------------------------------------------------------------------------------------
 * Self, names, cancellation. */

weft_task weft_self(void)
{
    struct weft__coro *co = weft__coro_self();
    if (!co)
        return (weft_task){NULL, 0};
    return (weft_task){co, atomic_load_explicit(&co->id, memory_order_relaxed)};
}

uint64_t weft_self_id(void)
{
    return weft_self().id;
}

int weft_set_name(weft_task t, const char *name)
{
    if (!name)
        return WEFT_EINVAL;
    struct weft__coro *co = weft__coro_from_handle(t);
    if (!co)
        return WEFT_ESTATE;
    weft__lock_acquire(&co->lock);
    if ((co->flags & WEFT_CF_JOINED) ||
        atomic_load_explicit(&co->id, memory_order_relaxed) != t.id) {
        weft__lock_release(&co->lock);
        return WEFT_ESTATE; /* joined: the handle is dead */
    }
    /* Names are debug aids: a racing reader (weft_dump) may see a torn name, never overflow. */
    size_t n = strnlen(name, sizeof co->name - 1);
    memcpy(co->name, name, n);
    co->name[n] = 0;
    weft__lock_release(&co->lock);
    return 0;
}

static int cancel(weft_task t)
{
    struct weft__coro *co = weft__coro_from_handle(t);
    if (!co)
        return WEFT_ESTATE;
    /* Under co->lock the coroutine cannot finish (exit sets `finished` under it), so the
     * request and the wait token we read belong to this task, not to a later coroutine that
     * reuses the control block (which starts with cancel = 0 and a new wait sequence). */
    weft__lock_acquire(&co->lock);
    if (co->finished || (co->flags & WEFT_CF_JOINED) ||
        atomic_load_explicit(&co->id, memory_order_relaxed) != t.id) {
        weft__lock_release(&co->lock);
        return WEFT_ESTATE; /* finished, or joined (a detached task can still be cancelled) */
    }
    /* Dekker with weft__park: store the request, fence, then look for an armed wait. A wait
     * armed inside a shield is left alone: the request is reported after the shield (coro.h
     * "Cancellation"). The request is sticky: a second weft_cancel changes nothing. */
    atomic_store_explicit(&co->cancel, 1, memory_order_relaxed);
    weft__fence_seq_cst();
    uint64_t tok = atomic_load_explicit(&co->wait, memory_order_relaxed);
    weft__lock_release(&co->lock);
    if ((tok & (WEFT_WAIT_ARMED | WEFT_WAIT_SHIELDED)) == WEFT_WAIT_ARMED) {
        /* a stale token (the wait moved on) fails the CAS */
        struct weft__waker k = {.co = co, .token = tok, .tp = NULL};
        weft__waker_wake(&k, WEFT_ECANCELED, false);
    }
    return 0;
}

int weft_cancel(weft_task t)
{
    return WEFT__GATED_RT(cancel(t));
}

int weft_cancelled(void)
{
    struct weft__coro *co = weft__coro_self();
    return co ? weft__cancel_requested(co) : 0; /* inside a shield too: the request stays */
}

int weft_shield_begin(void)
{
    struct weft__coro *co = weft__coro_self();
    if (!co)
        return WEFT_ENOTCORO;
    weft__shield_enter(co);
    return 0;
}

int weft_shield_end(void)
{
    struct weft__coro *co = weft__coro_self();
    if (!co)
        return WEFT_ENOTCORO;
    if (co->shield == 0)
        return WEFT_ESTATE;
    weft__shield_leave(co);
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Coroutine-local storage. */

static int nkeys;
static void (*key_dtors[WEFT_LOCAL_MAX])(void *);

int weft_local_create(weft_local *key, void (*destructor)(void *))
{
    if (!key)
        return WEFT_EINVAL;
    pthread_mutex_lock(&keys_mu);
    if (nkeys >= WEFT_LOCAL_MAX) {
        pthread_mutex_unlock(&keys_mu);
        return WEFT_ENOMEM;
    }
    key_dtors[nkeys] = destructor;
    key->index = ++nkeys; /* 0 stays invalid, so a zeroed key is caught */
    pthread_mutex_unlock(&keys_mu);
    return 0;
}

void *weft_local_get(weft_local key)
{
    struct weft__coro *co = weft__coro_self();
    if (!co || !co->locals || key.index <= 0 || key.index > WEFT_LOCAL_MAX)
        return NULL;
    return co->locals[key.index - 1];
}

int weft_local_set(weft_local key, void *value)
{
    struct weft__coro *co = weft__coro_self();
    if (!co)
        return WEFT_ENOTCORO;
    if (key.index <= 0 || key.index > WEFT_LOCAL_MAX)
        return WEFT_EINVAL;
    if (!co->locals && !(co->locals = calloc(WEFT_LOCAL_MAX, sizeof(void *))))
        return WEFT_ENOMEM;
    co->locals[key.index - 1] = value;
    return 0;
}

WEFT_NOINLINE void weft__coro_locals_free(struct weft__coro *co)
{
    if (!co->locals)
        return;
    /* Destructors may set values again (pthread's rule): a few passes. */
    for (int pass = 0; pass < 4; pass++) {
        bool any = false;
        for (int i = 0; i < WEFT_LOCAL_MAX; i++) {
            void *v = co->locals[i];
            if (v && key_dtors[i]) {
                co->locals[i] = NULL;
                key_dtors[i](v);
                any = true;
            }
        }
        if (!any)
            break;
    }
    free(co->locals);
    co->locals = NULL;
}
