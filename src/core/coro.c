/* SPDX-License-Identifier: MIT */
/* coro.c — floor 1 (objects and queues): coroutine control blocks — the slabs, the pool and
 * the per-worker caches handed in by the caller, ids, references, zombie accounting, the
 * locals' destructors, and the reset at shutdown and in a forked child (coro.h).
 *
 * Invariants: blocks are type-stable (allocated from slabs never unmapped: a stale pointer
 * always points at a control block); ids come from one counter and never repeat; the wait
 * word's sequence survives reuse (a stale waker can never match a later wait). A cache is
 * touched only by the thread running its worker; the pool and the slab list under pool_mu.
 * Nothing here knows what a worker is. */
#define _GNU_SOURCE
#include "coro.h"

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
static _Atomic uint64_t alive; /* allocated minus freed by plain threads (caches count theirs) */
static _Atomic int64_t zombies_plain; /* zombies made minus reaped by plain threads (workers
                                         count theirs in their caches' n_zombied/n_unzombied) */

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
static WEFT_NOINLINE struct weft__coro *pool_take(struct weft__coro_cache *c)
{
    pthread_mutex_lock(&pool_mu);
    if (!pool_fill_locked()) {
        pthread_mutex_unlock(&pool_mu);
        return NULL;
    }
    struct weft__coro *co = pool_free;
    pool_free = co->next;
    for (int i = 0; c && i < CORO_BATCH && (pool_free || pool_fill_locked()); i++) {
        struct weft__coro *b = pool_free;
        pool_free = b->next;
        b->next = c->head;
        c->head = b;
        c->n++;
    }
    pthread_mutex_unlock(&pool_mu);
    return co;
}

/* Ids: unique for the process; workers take them in blocks (no shared counter per spawn). */
static uint64_t new_id(struct weft__coro_cache *c)
{
    if (!c)
        return atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
    if (c->id_next == c->id_end) {
        c->id_next = atomic_fetch_add_explicit(&next_id, 1024, memory_order_relaxed);
        c->id_end = c->id_next + 1024;
    }
    return c->id_next++;
}

struct weft__coro *weft__coro_alloc(struct weft__coro_cache *c)
{
    struct weft__coro *co;
    if (weft__coro_cached(c)) {
        co = c->head;
        c->head = co->next;
        c->n--;
    } else if (!(co = pool_take(c))) {
        return NULL;
    }
    /* co->wait keeps its sequence across reuse (stale wakers must never match). */
    uint64_t seq = weft__wait_next(atomic_load_explicit(&co->wait, memory_order_relaxed));
    co->ctx = NULL;
    co->next = NULL;
    co->msg.run = NULL; /* the spawner sets the handler and the entry (task.c) */
    co->entry = NULL;
    co->stack = NULL;
    atomic_store_explicit(&co->wait, seq, memory_order_relaxed);
    co->wait_result = 0;
    co->shield = 0;
    co->pin = 0;
    co->home = NULL;
    co->hook_off = 0;
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
    co->runs = 0;
    co->ready_at = 0;
    co->cpu_ticks = 0;
    co->name[0] = 0;
    atomic_store_explicit(&co->id, new_id(c), memory_order_release);
    if (c)
        weft__stat_inc(&c->n_alloc);
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

static void coro_free(struct weft__coro *co, struct weft__coro_cache *c)
{
    atomic_store_explicit(&co->id, 0, memory_order_release);
    atomic_store_explicit(&co->state, WEFT_CO_FREE, memory_order_release);
    if (!c) {
        atomic_fetch_sub_explicit(&alive, 1, memory_order_relaxed);
        pool_put(co, co);
        return;
    }
    weft__stat_inc(&c->n_free);
    co->next = c->head;
    c->head = co;
    if (++c->n <= CORO_CACHE_HIGH)
        return;
    /* Too many here (they drifted from the worker that spawns): a batch to the pool. */
    struct weft__coro *first = c->head, *last = first;
    for (int i = 1; i < CORO_BATCH; i++)
        last = last->next;
    c->head = last->next;
    c->n -= CORO_BATCH;
    pool_put(first, last);
}

void weft__coro_release(struct weft__coro *co, struct weft__coro_cache *c)
{
    /* acq_rel: the last dropper sees every write the other holder made before dropping. */
    if (atomic_fetch_sub_explicit(&co->refs, 1, memory_order_acq_rel) == 1)
        coro_free(co, c);
}

void weft__coro_cache_drain(struct weft__coro_cache *c)
{
    pthread_mutex_lock(&pool_mu);
    while (c->head) {
        struct weft__coro *co = c->head;
        c->head = co->next;
        co->next = pool_free;
        pool_free = co;
    }
    c->n = 0;
    pthread_mutex_unlock(&pool_mu);
}

struct weft__coro *weft__coro_first(void)
{
    return all_coros;
}

void weft__coro_plain_counts(int64_t *alive_out, int64_t *zombies_out)
{
    *alive_out = (int64_t)atomic_load_explicit(&alive, memory_order_relaxed);
    *zombies_out = atomic_load_explicit(&zombies_plain, memory_order_relaxed);
}

/* Under co->lock, co finished: it becomes a zombie (made) or stops being one (a join or
 * detach reaps it). The flag, under the lock, makes each happen once; the counters follow
 * the statistics' single-writer rule: a cache's counter is written only by the thread
 * running its worker, plain threads share one atomic. */
void weft__coro_zombie_make_locked(struct weft__coro *co, struct weft__coro_cache *c)
{
    if (co->flags & (WEFT__CF_ZOMBIE | WEFT__CF_DETACHED))
        return;
    co->flags |= WEFT__CF_ZOMBIE;
    if (c)
        weft__stat_inc(&c->n_zombied);
    else
        atomic_fetch_add_explicit(&zombies_plain, 1, memory_order_relaxed);
}

void weft__coro_zombie_reap_locked(struct weft__coro *co, struct weft__coro_cache *c)
{
    if (!(co->flags & WEFT__CF_ZOMBIE))
        return;
    co->flags &= ~(uint32_t)WEFT__CF_ZOMBIE;
    if (c)
        weft__stat_inc(&c->n_unzombied);
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
        if (!in_child)                   /* the child may be running on the segments of one */
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
 * Coroutine-local keys and the destructors of the values (task.c has the public calls). */

static int nkeys;
static void (*key_dtors[WEFT_LOCAL_MAX])(void *);

int weft__coro_key_create(void (*destructor)(void *))
{
    pthread_mutex_lock(&keys_mu);
    if (nkeys >= WEFT_LOCAL_MAX) {
        pthread_mutex_unlock(&keys_mu);
        return WEFT_ENOMEM;
    }
    key_dtors[nkeys] = destructor;
    int index = ++nkeys; /* 0 stays invalid, so a zeroed key is caught */
    pthread_mutex_unlock(&keys_mu);
    return index;
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
