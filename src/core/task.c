/* SPDX-License-Identifier: MIT */
/* task.c — floor 5 (primitives and the task API): spawn, the entry trampoline and the exit,
 * join, detach, self, names, cancellation and shields, coroutine-local values, pinning.
 *
 * A task is a coroutine seen through its handle (weft_task: the control block and its id).
 * The control block's life is coro.c's (refs: one for running, one for the handle; ids never
 * repeat); its scheduling is sched.c's. This file is where the two meet: the spawner sets
 * the block's entry (task_entry, which runs fn, hands the result to the joiner and switches
 * away for good) and its inbox handler — the seams through which the scheduler, below,
 * reaches the task API without naming it.
 *
 * Invariants: co->lock guards the joiner slot, `finished` and the flags; a coroutine's exit
 * sets `finished` under it, so a canceller or joiner holding it sees one task, not a later
 * coroutine reusing the block; the result is handed out once (JOINED). */
#define _GNU_SOURCE
#include "task.h"
#include "gate.h"
#include "scheduler.h"
#include "timer.h"
#include "trace.h"
#include "waker.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* The calling thread's control-block cache: its worker's, NULL on a plain thread. */
static inline struct weft__coro_cache *cache_of(struct weft__worker *w)
{
    return w ? &w->coros : NULL;
}

/* ------------------------------------------------------------------------------------------
 * Spawn, exit, join, detach. */

static void task_entry(weft__transfer_t t);

struct take {
    struct weft__coro_cache *cache;
    struct weft__coro *co;
};
static void alloc_call(void *p)
{
    struct take *t = p;
    t->co = weft__coro_alloc(t->cache);
}

struct weft__coro *weft__task_alloc(struct weft__worker *w)
{
    struct weft__coro_cache *c = cache_of(w);
    struct weft__coro *co;
    if (weft__coro_cached(c)) {
        co = weft__coro_alloc(c);
    } else {
        struct take t = {c, NULL};
        weft__offstack(alloc_call, &t); /* the pool: calloc, too deep for a small stack */
        co = t.co;
    }
    if (co) {
        co->entry = task_entry;
        co->msg.run = weft__worker_take_coro;
    }
    return co;
}


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
    struct weft__worker *w = weft__worker_self();
    struct weft__coro *co = weft__task_alloc(w);
    if (!co)
        return WEFT_ENOMEM;
    /* The stack is promised now, taken at the first run (stack.c "Promises"): a coroutine
     * that was spawned always gets its stack, and running out of memory is this call's
     * WEFT_ENOMEM. */
    if (weft__stack_spawn(w, co, size) != 0) {
        atomic_store_explicit(&co->refs, 1, memory_order_relaxed); /* never ran, no handle */
        weft__coro_release(co, cache_of(weft__worker_self()));
        return WEFT_ENOMEM;
    }
    co->fn = fn;
    co->arg = arg;
    if (opts && opts->name) {
        copy_name(co, opts->name);
    }
    if (!out) {
        co->flags |= WEFT__CF_DETACHED;
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
    WEFT__TRACE_SPAWN(w ? w->index : -1, co->id, w && w->current ? w->current->id : 0, co->name,
                      (const void *)(uintptr_t)fn);
    weft__schedule(co, false);
    /* Back-pressure: a coroutine spawning faster than the workers drain (a loop of a
     * million spawns) would park every child in the queues, each with a control block of
     * fresh memory (a page fault per 14 children here). When this worker's LIFO of unstarted
     * children (or its ring) is full, the spawner yields and its children run first: memory
     * stays flat and warm. The spawner is then at the ring's tail, and local_get's bound
     * (16 newest-first dispatches, then the ring's head) brings it back after ~16 children:
     * the queue stays nearly full, so a thief finds a batch at every look — draining it to
     * empty first (as when only a full ring made the spawner yield: 512 children) sent the
     * thief back to sleep once per batch, and the next spawn woke it (an eventfd write and
     * two context switches per ~500 spawns). */
    if (w && w->current &&
        (weft__lifo_len(&w->rq) >= WEFT_LIFO_SIZE || weft__runq_len(&w->rq) >= WEFT_RUNQ_SIZE - 1))
        weft__yield(); /* not a cancellation point: spawn reports none */
    return 0;
}

int weft_spawn_ex(weft_task *out, weft_fn fn, void *arg, const weft_spawn_opts *opts)
{
    if (out)
        *out = (weft_task){NULL, 0};
    if (!fn || (opts && !WEFT__RESERVED_ZERO(opts)))
        return WEFT_EINVAL;
    return WEFT__GATED_RT(spawn(out, fn, arg, opts));
}


/* The end of every coroutine (task_entry): its locals' destructors, the result to the joiner
 * or a zombie, main's stop, then the last switch away. */
static WEFT_NORETURN void task_exit(struct weft__coro *co, void *result)
{
    if (co->locals)
        weft__coro_locals_free(co);
    co->result = result;
    weft__lock_acquire(&co->lock);
    co->finished = 1;
    bool is_main = co->flags & WEFT__CF_MAIN; /* flags change under the lock (detach/join) */
    struct weft__waker k = {0};
    bool have = co->joiner != NULL;
    if (have) {
        k = *co->joiner; /* copy under the lock: the joiner's frame may go once woken */
        co->joiner = NULL;
    }
    if (!have) /* nobody joins it now: unless detached, a zombie until joined or detached */
        weft__coro_zombie_make_locked(co, cache_of(weft__worker_self()));
    weft__lock_release(&co->lock);
    if (have)
        weft__waker_wake(&k, 0, true);
    if (is_main) {
        weft__stop();
    }
    weft__sched_exit(co);
}


/* The entry trampoline (co->entry): the first jump to a coroutine lands here, on its own
 * stack. It runs fn, hands the result on (task_exit), and never returns. */
static void task_entry(weft__transfer_t t)
{
    (void)t;
    struct weft__coro *co = weft__coro_self();
    void *r = co->fn(co->arg);
    task_exit(co, r);
}

static void unlock_coro(void *arg)
{
    weft__lock_release(&((struct weft__coro *)arg)->lock);
}

/* Called with co->lock held and co finished: hand out the result and drop the handle. */
static int take_result(struct weft__coro *co, void **result)
{
    co->flags |= WEFT__CF_DETACHED | WEFT__CF_JOINED; /* the handle is consumed */
    weft__coro_zombie_reap_locked(co, cache_of(weft__worker_self()));
    void *r = co->result;
    weft__lock_release(&co->lock);
    if (result)
        *result = r;
    weft__coro_release(co, cache_of(weft__worker_self()));
    return 0;
}

/* Why a handle is refused (lock_live_handle's `dead`): the flags themselves, and two states. */
enum { DEAD_JOINING = 1 << 8, DEAD_FINISHED = 1 << 9 };
_Static_assert(((WEFT__CF_DETACHED | WEFT__CF_JOINED) & (DEAD_JOINING | DEAD_FINISHED)) == 0,
               "dead bits");

/* The handle prologue of join, detach, set_name and cancel: t's control block, locked, if it
 * still holds t's task (ids never repeat; read under co->lock, so the task cannot finish and
 * the block cannot be reused while we look) and nothing in `dead` holds — WEFT__CF_DETACHED
 * or WEFT__CF_JOINED set, DEAD_JOINING (a joiner is waiting), DEAD_FINISHED (fn returned).
 * NULL, unlocked, otherwise: the caller returns WEFT_ESTATE. */
static struct weft__coro *lock_live_handle(weft_task t, unsigned dead)
{
    struct weft__coro *co = weft__coro_from_handle(t);
    if (!co)
        return NULL;
    weft__lock_acquire(&co->lock);
    if (atomic_load_explicit(&co->id, memory_order_relaxed) != t.id ||
        (co->flags & dead & (WEFT__CF_DETACHED | WEFT__CF_JOINED)) ||
        ((dead & DEAD_JOINING) && co->joiner) || ((dead & DEAD_FINISHED) && co->finished)) {
        weft__lock_release(&co->lock);
        return NULL;
    }
    return co;
}

static int join_until(weft_task t, void **result, int64_t deadline)
{
    struct weft__coro *self = weft__coro_self();
    if (self && self == t.co && weft__coro_from_handle(t))
        return WEFT_EDEADLK; /* our own live handle, whatever its flags */
    struct weft__coro *co = lock_live_handle(t, WEFT__CF_DETACHED | DEAD_JOINING);
    if (!co)
        return WEFT_ESTATE;
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
            weft__coro_zombie_make_locked(co, cache_of(weft__worker_self())); /* its exit found
                                                   us joining, but our wait ended first */
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
    struct weft__coro *co = lock_live_handle(t, WEFT__CF_DETACHED | DEAD_JOINING);
    if (!co)
        return WEFT_ESTATE;
    co->flags |= WEFT__CF_DETACHED;
    weft__coro_zombie_reap_locked(co, cache_of(weft__worker_self()));
    weft__lock_release(&co->lock);
    weft__coro_release(co, cache_of(weft__worker_self()));
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
    struct weft__coro *co = lock_live_handle(t, WEFT__CF_JOINED); /* joined: the handle is dead */
    if (!co)
        return WEFT_ESTATE;
    /* Names are debug aids: a racing reader (weft_dump) may see a torn name, never overflow. */
    size_t n = strnlen(name, sizeof co->name - 1);
    memcpy(co->name, name, n);
    co->name[n] = 0;
    weft__lock_release(&co->lock);
    WEFT__TRACE_NAME(weft_worker_index(), t.id, name, NULL);
    return 0;
}

static int cancel(weft_task t)
{
    /* Under co->lock the coroutine cannot finish (exit sets `finished` under it), so the
     * request and the wait token we read belong to this task, not to a later coroutine that
     * reuses the control block (which starts with cancel = 0 and a new wait sequence).
     * Refused when finished, or joined (a detached task can still be cancelled). */
    struct weft__coro *co = lock_live_handle(t, DEAD_FINISHED | WEFT__CF_JOINED);
    if (!co)
        return WEFT_ESTATE;
    /* Dekker with weft__park: store the request, fence, then look for an armed wait. A wait
     * armed inside a shield is left alone: the request is reported after the shield (coro.h
     * "Cancellation"). The request is sticky: a second weft_cancel changes nothing. */
    atomic_store_explicit(&co->cancel, 1, memory_order_relaxed);
    weft__fence_seq_cst();
    uint64_t tok = atomic_load_explicit(&co->wait, memory_order_relaxed);
    weft__lock_release(&co->lock);
    if ((tok & (WEFT__WAIT_ARMED | WEFT__WAIT_SHIELDED)) == WEFT__WAIT_ARMED) {
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
 * Coroutine-local storage (the keys and destructors: coro.c). */

int weft_local_create(weft_local *key, void (*destructor)(void *))
{
    if (!key)
        return WEFT_EINVAL;
    int index = weft__coro_key_create(destructor);
    if (index < 0)
        return index;
    key->index = index;
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

/* ------------------------------------------------------------------------------------------
 * Workers and pinning. */

int weft_worker_index(void)
{
    struct weft__worker *w = weft__worker_self();
    return w ? w->index : -1;
}

int weft_pin(void)
{
    struct weft__worker *w = weft__worker_self();
    struct weft__coro *co = w ? w->current : NULL;
    if (!co)
        return WEFT_ENOTCORO;
    if (co->pin++ == 0)
        co->home = w;
    return 0;
}

int weft_unpin(void)
{
    struct weft__coro *co = weft__coro_self();
    if (!co)
        return WEFT_ENOTCORO;
    if (co->pin == 0)
        return WEFT_ESTATE;
    if (--co->pin == 0)
        co->home = NULL;
    return 0;
}
