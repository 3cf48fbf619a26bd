/* SPDX-License-Identifier: MIT */
/* coro.h — floor 1 (objects and queues): the coroutine control block (Go's G), its state
 * machine, and the pool of blocks. No knowledge of workers: a worker's cache of blocks is
 * handed in (struct weft__coro_cache), exactly as stack.h takes a stack cache. The wait
 * protocol built on the wait word lives in waker.h (wait.c); the task API (spawn, join...) in task.c.
 *
 * States (co->state; the NOTIFIED bit may be or'ed onto RUNNING):
 *
 *   RUNNABLE  In exactly one run queue: a worker's ring, runnext slot or LIFO (never-run
 *             ones), the global queue, or a worker's inbox. Nobody runs it; nobody owns its
 *             stack. A coroutine that has never run (co->ctx == NULL) has, when co->stack
 *             is NULL, a promise of a stack (stack.c "Promises"): it takes one from the
 *             cache of the worker that first runs it, or from the pool, which cannot refuse
 *             it (a plain thread's spawn may instead hand it a free stack from the pool at
 *             once, in co->stack).
 *             Transition: the worker that dequeues it
 *             sets RUNNING (plain store: dequeue gave that worker exclusive ownership).
 *   RUNNING   One worker runs it, on its stack; only that worker touches ctx and stack.
 *             Transitions, all by the running worker: to WAITING or RUNNABLE in the on-top
 *             function of the switch away (so only once its registers are saved — the rule
 *             that prevents two threads resuming one coroutine), or to DEAD.
 *   RUNNING|NOTIFIED
 *             A waker won the coroutine's current wait while the coroutine was still on its
 *             way to parking. The on-top function of the park finds the CAS RUNNING→WAITING
 *             failing and queues the coroutine itself (Tokio's scheme).
 *   WAITING   Parked: registers saved in ctx, its wait record armed (co->wait) and linked
 *             from every structure that may end the wait (channel lists, a timer, a joined
 *             coroutine, the blocking pool, an fd watcher). Whoever wins the CAS on co->wait
 *             calls weft__ready(), which CASes WAITING→RUNNABLE and queues it.
 *   DEAD      Finished: its stack went back to a cache in the on-top function of its last
 *             switch; the control block lives until the handle is joined or detached
 *             (until then it is a zombie: flag WEFT__CF_ZOMBIE, counted in weft_stats).
 *
 * The wait word (co->wait): (seq << 2) | SHIELDED | ARMED. The coroutine arms a wait by
 * storing a new sequence with ARMED set (and SHIELDED if it waits inside a shield, see
 * "Cancellation" below); a waker holds a token (the armed value) and completes the wait by
 * CAS(token → token & ~ARMED). Exactly one of "value arrived", "timed out", "cancelled" wins;
 * a stale waker (from an earlier wait) fails because the sequence moved on. Sequences never
 * restart, even when a control block is reused, so a token can never match a later wait.
 *
 * Control blocks are type-stable: allocated from slabs that are never unmapped (Go keeps
 * every G too). A stale pointer held by a late timer or a stale handle therefore always
 * points at a control block, and the sequence/id checks reject it. */
#ifndef WEFT_CORO_H
#define WEFT_CORO_H

#include "common.h"
#include "context.h"
#include "lock.h"
#include "segstack.h"
#include "stack.h"

enum weft__state {
    WEFT_CO_FREE = 0, /* in a free list, not a coroutine */
    WEFT_CO_RUNNABLE = 1,
    WEFT_CO_RUNNING = 2,
    WEFT_CO_WAITING = 3,
    WEFT_CO_DEAD = 4,
    WEFT_CO_NOTIFIED = 0x100,
};

enum weft__coflags {
    WEFT__CF_MAIN = 1,     /* the coroutine weft_run started */
    WEFT__CF_DETACHED = 2, /* handle given up (detached, or consumed by a join) */
    WEFT__CF_JOINED = 4,   /* a join took its result: the handle is dead */
    WEFT__CF_ZOMBIE = 8,   /* finished with its handle neither joined nor detached (counted in
                             the workers' n_zombied until a join or detach reaps it) */
};

#define WEFT__WAIT_ARMED 1ull
#define WEFT__WAIT_SHIELDED 2ull /* armed inside a shield: weft_cancel must not end it */
/* The first unarmed value of the sequence after the one in wait word w. */
static inline uint64_t weft__wait_next(uint64_t w)
{
    return (w | (WEFT__WAIT_ARMED | WEFT__WAIT_SHIELDED)) + 1;
}

struct weft__worker;

/* An inbox message (worker.h "Inbox"): a coroutine to run (pinned, or debug-migrated), a
 * timer or fd-wait record to stop. It carries its handler, run by the owner worker on its
 * own thread: the worker never names what a message is (one of the upward seams). */
struct weft__msg {
    struct weft__msg *next;
    void (*run)(struct weft__worker *owner, struct weft__msg *m);
};

struct weft__waker; /* waker.h */

struct weft__coro {
    weft__fctx_t ctx;        /* saved context while not RUNNING; NULL before the first run */
    _Atomic uint32_t state;  /* enum weft__state */
    uint32_t flags;          /* enum weft__coflags; written under co->lock */
    struct weft__coro *next; /* queue link: global queue, free list (owner: that queue) */
    struct weft__msg msg;    /* inbox link; run: set by the spawner (task.c) */
    weft__entry_fn entry;    /* the first jump's target: set by the spawner (task.c) */
    struct weft__stack *stack;
    size_t stack_size;         /* requested usable size */
    _Atomic uint64_t wait;     /* the wait word (see above) */
    int wait_result;           /* written by the waker that won, read by co after resume */
    _Atomic int cancel;        /* cancellation requested (sticky: cleared only on reuse) */
    int shield;                /* shield depth (weft_shield_begin nests); touched only by co */
    int pin;                   /* pin depth (weft_pin nests); touched only by co itself */
    struct weft__worker *home; /* pinned: the worker it must run on */
    int hook_off;              /* weft_hook_disable depth (hookabi.h); touched only by co */
    weft_fn fn;
    void *arg;
    void *result;
    _Atomic uint64_t id;         /* handle id; changes when the block is reused */
    _Atomic uint32_t refs;       /* 2 at spawn: one for running, one for the handle */
    weft__lock lock;             /* guards joiner and DEAD-for-join, flags */
    int finished;                /* fn returned (under lock) */
    struct weft__waker *joiner;  /* the one waiting weft_join, under lock */
    void *asan_fake;             /* ASan fake-stack save slot */
    weft__seg seg;               /* split-stack context (segmented builds; else empty) */
    void **locals;               /* coroutine-local values, WEFT_LOCAL_MAX, lazily allocated */
    struct weft__coro *all_next; /* slab walk for weft_dump (never unlinked) */
    const char *wait_what;       /* what it waits on, for weft_dump */
    int64_t wait_since;
    int last_worker;
    uint64_t runs; /* times a worker switched to it (running worker only; weft_dump) */
    /* Scheduling latency (latency.h): when it became runnable, in ticks (clock.h), for the sampled
     * wake-ups and spawns, else 0. Written by whoever makes it runnable, before the release
     * that queues it (the won wait's CAS to RUNNABLE or NOTIFIED, or the spawn's queueing);
     * read and cleared by the worker that switches to it, after the acquire that dequeued it.
     * No one else touches it in between: a coroutine is made runnable once per wait. */
    int64_t ready_at;
    /* Time it held a worker, in ticks (clock.h), while CPU accounting is on (weft_cputime):
     * added by the running worker at each switch away; read without a lock by weft_dump (a
     * snapshot). */
    uint64_t cpu_ticks;
    char name[32];
};

/* Cancellation. A request is sticky (Trio's rule): co->cancel is set by weft_cancel and
 * never cleared while the coroutine lives (only the reuse of the control block for a new
 * coroutine resets it), so every cancellation point after it reports WEFT_ECANCELED, and a
 * loop that swallowed one report cannot block forever. Inside a shield (co->shield > 0:
 * weft_shield_begin, or an internal cleanup that must block) the request stays set but is
 * not reported: cancellation points wait normally, deadlines still apply.
 * The shield is enforced on both sides of a wait:
 *   - the coroutine: weft__cancel_pending is false in a shield, so neither an entry check
 *     nor park's check gives a wait up;
 *   - the canceller: weft__wait_arm marks a wait armed in a shield WEFT__WAIT_SHIELDED, and
 *     weft_cancel never ends such a wait. co->shield itself is read only by co (it cannot
 *     change while co is parked, so the bit in the token is the shield of that wait).
 * After the outermost shield ends, the request is reported at the next cancellation point:
 * weft_cancel stored it before reading the wait word (seq_cst fence); if it read a shielded
 * token, the coroutine's next park — after its own store of a newer token and a fence —
 * necessarily sees the request (the two fences are ordered that way in the total order, or
 * the canceller would have read the newer token).
 * These helpers are the one place that says what "pending" is. Relaxed: a check at a call's
 * entry is a fast path that may miss a request racing with it — that request is then
 * reported by the park (whose fence pairs with weft_cancel's) or by the next call. A request
 * ordered before the call (through any acquire the caller made after the canceller's
 * weft_cancel) is seen: write-read coherence. */
static inline bool weft__cancel_requested(struct weft__coro *co)
{
    return atomic_load_explicit(&co->cancel, memory_order_relaxed) != 0;
}
/* Requested and not shielded: a cancellation point reports it. */
static inline bool weft__cancel_pending(struct weft__coro *co)
{
    return co->shield == 0 && weft__cancel_requested(co);
}
/* A cancellation point that need not wait (weft_yield, the sleeps and I/O calls at entry):
 * for the calling coroutine co (NULL: a plain thread, never cancelled), WEFT_ECANCELED if a
 * request is pending (it stays pending: sticky), else 0. */
static inline int weft__cancel_point(struct weft__coro *co)
{
    return co && WEFT_UNLIKELY(weft__cancel_pending(co)) ? WEFT_ECANCELED : 0;
}
/* Internal shields, for cleanup that must block even when the caller is cancelled (the
 * re-lock of a condition wait, waiting for a running blocking job, for a group's members,
 * for a stopped ticker). co: the calling coroutine, or NULL on a plain thread (no-op). */
static inline void weft__shield_enter(struct weft__coro *co)
{
    if (co)
        co->shield++;
}
static inline void weft__shield_leave(struct weft__coro *co)
{
    if (co)
        co->shield--;
}

/* Take back the calling coroutine's armed wait, if no waker has won it yet (the CAS a
 * waker would make): true if we took it — the wait is over and nobody will wake us. */
static inline bool weft__wait_take_back(struct weft__coro *co)
{
    uint64_t tok = atomic_load_explicit(&co->wait, memory_order_relaxed);
    return (tok & WEFT__WAIT_ARMED) &&
           atomic_compare_exchange_strong_explicit(&co->wait, &tok, tok & ~WEFT__WAIT_ARMED,
                                                   memory_order_acq_rel, memory_order_relaxed);
}

/* A worker's own control blocks and their accounting (worker.h embeds one per worker).
 * Touched only by the thread running that worker; the counters follow the statistics'
 * single-writer rule (relaxed load and store, read relaxed by weft_stats and the deadlock
 * check). A NULL cache means a plain thread: blocks come from and go to the global pool, and
 * are counted in process-wide atomics (weft__coro_plain_counts). */
struct weft__coro_cache {
    struct weft__coro *head; /* free blocks */
    size_t n;
    uint64_t id_next, id_end; /* a block of coroutine ids */
    _Atomic uint64_t n_alloc, n_free;
    /* zombies made by coroutines finishing on this worker with a live handle, and reaped by
     * joins and detaches of finished tasks running on this worker's thread */
    _Atomic uint64_t n_zombied, n_unzombied;
};

/* Is there a block in the cache (the fast path: weft__coro_alloc then takes no lock and
 * calls no libc; otherwise it may calloc a slab, too deep for a small stack, so the caller
 * runs it on the scheduler stack: weft__offstack)? */
static inline bool weft__coro_cached(const struct weft__coro_cache *c)
{
    return c && c->head;
}
/* A fresh control block (refs 2, a new id and wait sequence), or NULL without memory. */
struct weft__coro *weft__coro_alloc(struct weft__coro_cache *c);
/* Drop one ref; at 0 the block goes back to c (the caller's worker's cache) or the pool. */
void weft__coro_release(struct weft__coro *co, struct weft__coro_cache *c);
/* Every block of c back to the pool (worker teardown, running short of memory). */
void weft__coro_cache_drain(struct weft__coro_cache *c);
struct weft__coro *weft__coro_first(void); /* slab walk */
/* Validate a handle: the control block if it is live and matches, else NULL. */
struct weft__coro *weft__coro_from_handle(weft_task t);
/* Under co->lock, co finished: it becomes a zombie (made: nobody joins it now and it is not
 * detached) or stops being one (a join or detach reaps it). The flag makes each happen
 * once; the counters are c's (the calling worker's), or the plain threads' shared ones. */
void weft__coro_zombie_make_locked(struct weft__coro *co, struct weft__coro_cache *c);
void weft__coro_zombie_reap_locked(struct weft__coro *co, struct weft__coro_cache *c);
/* Plain threads' share of the counts (allocated minus freed, zombies made minus reaped):
 * the workers' shares are in their caches; debug.c adds them up. */
void weft__coro_plain_counts(int64_t *alive, int64_t *zombies);
/* Runtime shutdown (run.c): every block that still holds a coroutine is abandoned (Go's
 * rule) and returns to the pool, its id retired and its armed wait made stale. */
void weft__coro_reset_all(void);
/* fork (fork.c): lock the pool and the locals' keys around fork; the child resets. */
void weft__coro_atfork(int phase);
/* Coroutine-local values (co->locals): the keys and their destructors live here because the
 * reset runs them; the public calls are task.c's. key_create: the new key's index (>= 1),
 * or WEFT_ENOMEM when WEFT_LOCAL_MAX keys exist. locals_free: run the destructors (a few
 * passes, pthread's rule) and free the array; on the coroutine's own stack at its exit. */
int weft__coro_key_create(void (*destructor)(void *));
void weft__coro_locals_free(struct weft__coro *co);

#endif
