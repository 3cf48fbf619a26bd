/* SPDX-License-Identifier: MIT */
/* group.c — floor 6 (composites and tools): task groups (include/weft/group.h): members released as
 * they finish, sticky cancellation, the first failure, join-next, and a limit on members running at
 * once.
 *
 * A member is a DETACHED coroutine running member_entry(m), where m is the group's record of
 * it (struct member, on the heap). Nobody holds a handle that would keep its control block:
 * when fn returns, member_done unlinks m, hands its outcome on, frees m (unless the group
 * collects outcomes) and the coroutine exits, releasing its control block. So a group's
 * memory is proportional to the members running now, not to the members it ever had.
 *
 * Invariants (all under g->lock, a weft__lock: short critical sections, never held across a
 * switch, and not a cancellation point — so the finishing path of a cancelled member cannot
 * be interrupted):
 *   - g->members lists the members that have been spawned and whose fn has not returned.
 *     m->task is {NULL, 0} until the member first runs: member_entry records weft_self()
 *     and reads g->cancelled in ONE critical section, and weft_group_cancel sets
 *     g->cancelled and cancels every recorded task in one — so every member is either
 *     cancelled by the canceller or sees the flag when it starts (and cancels itself).
 *     A member is unlinked before its coroutine exits, so a task found in the list is live
 *     (weft_cancel also rejects a stale id).
 *   - g->live counts the slots taken: members linked, plus a slot handed to a spawner
 *     parked for one (max_running) that has not linked its member yet. wait/next/len see a
 *     spawn in progress as running. Within a run, live only reaches 0 through
 *     slot_release_locked, which then wakes every waiter of weft_group_wait (result 0) and
 *     of weft_group_next (WEFT_ECLOSED).
 *   - Waiter queues follow waitq.h: a waker pops and claims under g->lock, completes after
 *     releasing it (waiters live in the waiting party's frame, valid until completed).
 *   - collect: nextq has a claimable waiter only while g->done is empty (a next caller parks
 *     only when done is empty; a finishing member hands its outcome to a parked next caller
 *     before it would queue it). So the outcomes come out in the order members finished.
 *   - Lock order: g->lock before a coroutine's co->lock (weft_cancel under g->lock) and the
 *     scheduler's queue locks (a wake-up); group code takes g->lock holding no other lock.
 *   - Lifetime: weft_group_free waits until live == 0. A finishing member touches nothing of
 *     g after releasing g->lock (completions touch only the waiters' frames). The release's
 *     futex wake may then hit a freed word: harmless, FUTEX_WAKE on an address nobody waits
 *     on does nothing (the same argument as a plain thread's parker in wait.c).
 *   - Runs: members of a run that ended were abandoned at its shutdown (never resumed), and
 *     waiters of that run sat on stacks since unmapped: forget_abandoned_locked drops them
 *     (never touching the waiters) when g->epoch is not the current run's.
 *   - Plain threads make every call inside the gate (gate.h): a waiting one is woken with
 *     WEFT_ENORUNTIME when the runtime stops (the members it waits for are abandoned), and
 *     then waits no more. */
#include "gate.h"
#include "scheduler.h"
#include "task.h"
#include "timer.h"
#include "trace.h"
#include "waker.h"
#include "waitq.h"

#include <stdlib.h>

struct member {
    struct member *prev, *next; /* g->members while running; next: g->done once finished */
    weft_group *g;
    weft_task task; /* {NULL, 0} until the member first runs (under g->lock) */
    weft_fn fn;     /* exactly one of fn / ifn */
    int (*ifn)(void *);
    void *arg;
    void *result; /* written by the member before member_done's critical section; read by */
    int code;     /* the next-taker after it (under g->lock, or after the hand-off's wake) */
};

struct weft_group {
    weft__lock lock;
    /* immutable after create */
    int max_running;
    bool cancel_on_fail, collect;
    /* under lock */
    bool cancelled;
    int failure;                     /* the first failure, 0 while none */
    size_t live;                     /* slots taken (see above) */
    uint64_t epoch;                  /* weft__run_epoch of the last spawn */
    struct member *members;          /* running members (doubly linked) */
    struct member *done, *done_tail; /* collect: finished, not yet taken (FIFO) */
    struct weft__wq waitq;           /* weft_group_wait callers */
    struct weft__wq nextq;           /* weft_group_next callers; w->elem: a struct member ** */
    struct weft__wq slotq;           /* spawners parked for a slot (max_running) */
};

/* Completions to make after g->lock is released: claimed waiters, chained by done_next. */
/* The allocator may go deeper than a small (sub-page or segmented) stack allows. */
struct mem_call {
    size_t size;
    void *p;
};
static WEFT_NOINLINE void calloc_call(void *a)
{
    struct mem_call *c = a;
    c->p = calloc(1, c->size);
}
static WEFT_NOINLINE void free_call(void *p)
{
    free(p);
}
static void *group_calloc(size_t size)
{
    struct mem_call c = {size, NULL};
    weft__offstack(calloc_call, &c);
    return c.p;
}
static void group_free_mem(void *p)
{
    weft__offstack(free_call, p);
}

static void link_member(weft_group *g, struct member *m)
{
    m->prev = NULL;
    m->next = g->members;
    if (g->members)
        g->members->prev = m;
    g->members = m;
}

static void unlink_member(weft_group *g, struct member *m)
{
    if (m->prev)
        m->prev->next = m->next;
    else
        g->members = m->next;
    if (m->next)
        m->next->prev = m->prev;
    m->prev = m->next = NULL;
}

/* Under g->lock: the members of a run that has ended were abandoned at its shutdown. */
static void forget_abandoned_locked(weft_group *g)
{
    if (g->live == 0 || g->epoch == atomic_load_explicit(&weft__run_epoch, memory_order_relaxed))
        return;
    while (g->members) {
        struct member *m = g->members;
        g->members = m->next;
        group_free_mem(m);
    }
    g->live = 0;
    /* Their waiters were on stacks unmapped at that shutdown: forgotten, never touched. */
    g->waitq = g->nextq = g->slotq = (struct weft__wq){NULL, NULL};
}

/* Under g->lock: is the calling coroutine a running member of g? (O(members): only the
 * calls that would otherwise wait for themselves ask.) */
static bool caller_is_member_locked(weft_group *g)
{
    uint64_t self = weft_self_id();
    if (!self)
        return false;
    for (struct member *m = g->members; m; m = m->next)
        if (m->task.id == self)
            return true;
    return false;
}

/* Under g->lock: cancel every running member that has started, except the task `except`
 * (0: none), and mark the group cancelled so members that have not started yet, and those
 * spawned later, cancel themselves when they start. weft_cancel takes the member's co->lock
 * and may make it runnable: both are allowed under g->lock (lock order above). */
static void cancel_all_locked(weft_group *g, uint64_t except)
{
    g->cancelled = true;
    for (struct member *m = g->members; m; m = m->next)
        if (m->task.id && m->task.id != except)
            weft_cancel(m->task); /* WEFT_ESTATE only for a stale id: cannot happen here */
}

/* Under g->lock: a slot is given back (a member finished, or a spawn failed). With a parked
 * spawner it passes straight to it (live unchanged: no barging by later spawners);
 * otherwise live drops, and at 0 every wait and next caller is woken. */
static void slot_release_locked(weft_group *g, struct weft__waiter **wk)
{
    struct weft__waiter *w;
    if (g->max_running && (w = waitq_claim(&g->slotq))) {
        waitq_done_push(wk, w, 0);
        return;
    }
    WEFT_ASSERT(g->live > 0);
    if (--g->live)
        return;
    waitq_claim_onto(&g->waitq, wk, -1, 0);
    /* done is empty (invariant): nothing will come to a next caller */
    waitq_claim_onto(&g->nextq, wk, -1, WEFT_ECLOSED);
}

/* Under g->lock: record a failure; the first one is the group's. */
static void fail_locked(weft_group *g, int code, uint64_t except)
{
    if (code == 0 || g->failure != 0)
        return;
    g->failure = code;
    if (g->cancel_on_fail)
        cancel_all_locked(g, except);
}

/* ---- members --------------------------------------------------------------------------- */

/* The member's last step: it leaves the group (and the group's memory) for good. */
static void member_done(struct member *m)
{
    weft_group *g = m->g;
    struct weft__waiter *wk = NULL; /* done list (waitq.h) */
    struct weft__waiter *w;
    weft__lock_acquire(&g->lock);
    unlink_member(g, m);
    fail_locked(g, m->code, 0);
    bool keep = g->collect;
    if (keep) {
        if ((w = waitq_claim(&g->nextq))) {
            *(struct member **)w->elem = m; /* the taker is parked: its frame is ours */
            waitq_done_push(&wk, w, 0);
        } else {
            m->next = NULL;
            if (g->done_tail)
                g->done_tail->next = m;
            else
                g->done = m;
            g->done_tail = m;
        }
    }
    slot_release_locked(g, &wk);
    weft__lock_release(&g->lock);
    /* From here on g may be freed (a woken free, or one that saw live == 0): not touched. */
    weft__waitq_complete_all(wk, false);
    if (!keep)
        group_free_mem(m);
}

static void *member_entry(void *arg)
{
    struct member *m = arg;
    weft_group *g = m->g;
    weft__lock_acquire(&g->lock);
    m->task = weft_self();
    bool cancelled = g->cancelled;
    weft__lock_release(&g->lock);
    WEFT__TRACE_NAME(weft_worker_index(), m->task.id, NULL, /* the trace names it by its fn */
                     m->fn ? (const void *)(uintptr_t)m->fn : (const void *)(uintptr_t)m->ifn);
    if (cancelled)
        weft_cancel(m->task); /* spawned into a cancelled group: start cancelled */
    if (m->fn)
        m->result = m->fn(m->arg);
    else
        m->code = m->ifn(m->arg);
    member_done(m);
    return NULL;
}

/* ---- the API --------------------------------------------------------------------------- */

int weft_group_create_ex(weft_group **out, const weft_group_opts *opts)
{
    if (!out)
        return WEFT_EINVAL;
    *out = NULL;
    if (opts && (opts->max_running < 0 || opts->reserved0 || !WEFT__RESERVED_ZERO(opts)))
        return WEFT_EINVAL;
    weft_group *g = group_calloc(sizeof *g);
    if (!g)
        return WEFT_ENOMEM;
    if (opts) {
        g->max_running = opts->max_running;
        g->cancel_on_fail = opts->cancel_on_fail != 0;
        g->collect = opts->collect != 0;
    }
    *out = g;
    return 0;
}

int weft_group_create(weft_group **out)
{
    return weft_group_create_ex(out, NULL);
}

/* Park (or block a thread) on queue q of g until woken, with g->lock held on entry and
 * released on return. The waiter's elem points at `slot` (nextq hands a member there). */
static int block_locked(weft_group *g, struct weft__wq *q, const char *what, int64_t deadline,
                        struct member **slot)
{
    return weft__waitq_wait(q, &g->lock, what, deadline, slot);
}

static bool past(int64_t deadline)
{
    return deadline != WEFT_FOREVER && deadline <= weft_now();
}

static int group_spawn(weft_group *g, weft_fn fn, int (*ifn)(void *), void *arg, int64_t deadline)
{
    struct member *m = group_calloc(sizeof *m);
    if (!m)
        return WEFT_ENOMEM;
    m->g = g;
    m->fn = fn;
    m->ifn = ifn;
    m->arg = arg;
    weft__lock_acquire(&g->lock);
    forget_abandoned_locked(g);
    if (g->max_running && g->live >= (size_t)g->max_running) {
        if (past(deadline)) {
            weft__lock_release(&g->lock);
            group_free_mem(m);
            return WEFT_ETIMEDOUT;
        }
        int r = block_locked(g, &g->slotq, "group slot", deadline, NULL);
        if (r != 0) { /* no slot was handed to us (a hand-off wins over a timeout) */
            group_free_mem(m);
            return r;
        }
        weft__lock_acquire(&g->lock); /* the slot is ours: live already counts it */
    } else {
        g->live++;
    }
    g->epoch = atomic_load_explicit(&weft__run_epoch, memory_order_relaxed);
    link_member(g, m);
    weft__lock_release(&g->lock);
    /* Detached: the member's control block goes when it returns (nobody joins it). It may
     * run, and even finish (freeing m), before weft_spawn_ex returns: m is not touched. */
    int r = weft_spawn_ex(NULL, member_entry, m, NULL);
    if (r != 0) {
        struct weft__waiter *wk = NULL; /* done list (waitq.h) */
        weft__lock_acquire(&g->lock);
        unlink_member(g, m);
        slot_release_locked(g, &wk);
        weft__lock_release(&g->lock);
        weft__waitq_complete_all(wk, false);
        group_free_mem(m);
    }
    return r;
}

static int group_spawn_gated(weft_group *g, weft_fn fn, int (*ifn)(void *), void *arg,
                             int64_t deadline)
{
    if (!g || (!fn && !ifn))
        return WEFT_EINVAL;
    return WEFT__GATED_RT(group_spawn(g, fn, ifn, arg, deadline));
}

int weft_group_spawn(weft_group *g, weft_fn fn, void *arg)
{
    return group_spawn_gated(g, fn, NULL, arg, WEFT_FOREVER);
}

int weft_group_spawn_until(weft_group *g, weft_fn fn, void *arg, int64_t deadline)
{
    return group_spawn_gated(g, fn, NULL, arg, deadline);
}

int weft_group_go(weft_group *g, int (*fn)(void *), void *arg)
{
    return group_spawn_gated(g, NULL, fn, arg, WEFT_FOREVER);
}

int weft_group_go_until(weft_group *g, int (*fn)(void *), void *arg, int64_t deadline)
{
    return group_spawn_gated(g, NULL, fn, arg, deadline);
}

static int group_fail(weft_group *g, int code)
{
    weft__lock_acquire(&g->lock);
    fail_locked(g, code, weft_self_id());
    weft__lock_release(&g->lock);
    return 0;
}

/* Gated for a plain thread (gate.h) although it never waits: it may cancel members under
 * g->lock, and a weft_cancel entering the gate there could wait out a stopping runtime
 * that waits for another thread queued on g->lock. */
int weft_group_fail(weft_group *g, int code)
{
    if (!g || code == 0)
        return WEFT_EINVAL;
    return WEFT__GATED(group_fail(g, code));
}

static int group_cancel(weft_group *g)
{
    weft__lock_acquire(&g->lock);
    forget_abandoned_locked(g);
    cancel_all_locked(g, 0);
    weft__lock_release(&g->lock);
    return 0;
}

int weft_group_cancel(weft_group *g)
{
    if (!g)
        return WEFT_EINVAL;
    return WEFT__GATED(group_cancel(g));
}

/* Wait until no member runs, whatever happens: the cancel-and-wait of a deadline or of a
 * cancelled caller, and weft_group_free. In a shield (coro.h "Cancellation"): a request of
 * the caller stays pending for its next cancellation point and cannot cut this wait short
 * (the members were cancelled: they end at their next cancellation point).
 * 0, or WEFT_ENORUNTIME: a plain thread, and the runtime stopped (the members left are
 * abandoned and never finish; forget_abandoned_locked drops them later). */
static int wait_empty(weft_group *g)
{
    struct weft__coro *co = weft__coro_self();
    int r = 0;
    weft__shield_enter(co);
    for (;;) {
        weft__lock_acquire(&g->lock);
        forget_abandoned_locked(g);
        if (g->live == 0) {
            weft__lock_release(&g->lock);
            break;
        }
        r = block_locked(g, &g->waitq, "group", WEFT_FOREVER, NULL);
        if (r == WEFT_ENORUNTIME)
            break;
        r = 0; /* shielded: only the last member's wake (0) ends the wait */
    }
    weft__shield_leave(co);
    return r;
}

static int group_wait_until(weft_group *g, int64_t deadline)
{
    weft__lock_acquire(&g->lock);
    forget_abandoned_locked(g);
    int r = 0;
    if (g->live != 0) {
        if (caller_is_member_locked(g)) {
            weft__lock_release(&g->lock);
            return WEFT_EDEADLK;
        }
        if (past(deadline)) {
            r = WEFT_ETIMEDOUT;
            weft__lock_release(&g->lock);
        } else {
            r = block_locked(g, &g->waitq, "group", deadline, NULL);
        }
        if (r == WEFT_ENORUNTIME)
            return r; /* a plain thread, and the runtime stopped: the members are abandoned */
        if (r != 0) {
            /* The deadline passed or the caller was cancelled: bound the members' lifetime
             * — cancel them all, then wait for every one to finish. */
            group_cancel(g);
            if (wait_empty(g) != 0)
                return WEFT_ENORUNTIME;
        }
        weft__lock_acquire(&g->lock);
    }
    int failure = g->failure;
    weft__lock_release(&g->lock);
    return failure ? failure : r; /* a request of the caller stays pending either way */
}

int weft_group_wait_until(weft_group *g, int64_t deadline)
{
    if (!g)
        return WEFT_EINVAL;
    return WEFT__GATED(group_wait_until(g, deadline));
}

int weft_group_wait(weft_group *g)
{
    return weft_group_wait_until(g, WEFT_FOREVER);
}

static int group_next_until(weft_group *g, weft_group_outcome *out, int64_t deadline)
{
    struct member *m = NULL;
    weft__lock_acquire(&g->lock);
    forget_abandoned_locked(g);
    if ((m = g->done)) {
        if (!(g->done = m->next))
            g->done_tail = NULL;
        weft__lock_release(&g->lock);
    } else if (g->live == 0) {
        weft__lock_release(&g->lock);
        return WEFT_ECLOSED;
    } else if (past(deadline)) {
        weft__lock_release(&g->lock);
        return WEFT_ETIMEDOUT;
    } else {
        /* A finishing member stores itself in m and wakes us with 0; the last one to finish
         * wakes us with WEFT_ECLOSED if nothing came. A timeout or cancellation unlinks us
         * first (waitq.h), so no outcome is handed to a waiter that has left. */
        int r = block_locked(g, &g->nextq, "group next", deadline, &m);
        if (r != 0)
            return r;
    }
    *out = (weft_group_outcome){m->task.id, m->arg, m->result, m->code};
    group_free_mem(m);
    return 0;
}

int weft_group_next_until(weft_group *g, weft_group_outcome *out, int64_t deadline)
{
    if (!g || !out || !g->collect)
        return WEFT_EINVAL;
    return WEFT__GATED(group_next_until(g, out, deadline));
}

int weft_group_next(weft_group *g, weft_group_outcome *out)
{
    return weft_group_next_until(g, out, WEFT_FOREVER);
}

size_t weft_group_len(weft_group *g)
{
    if (!g)
        return 0;
    weft__lock_acquire(&g->lock);
    forget_abandoned_locked(g);
    size_t n = g->live;
    weft__lock_release(&g->lock);
    return n;
}

static int group_free(weft_group *g)
{
    weft__lock_acquire(&g->lock);
    forget_abandoned_locked(g);
    if (g->live != 0) {
        if (caller_is_member_locked(g)) {
            weft__lock_release(&g->lock);
            return WEFT_EDEADLK;
        }
        cancel_all_locked(g, 0);
        weft__lock_release(&g->lock);
        if (wait_empty(g) != 0)
            return WEFT_ENORUNTIME; /* not freed: its abandoned members still point at it */
    } else {
        weft__lock_release(&g->lock);
    }
    while (g->done) {
        struct member *m = g->done;
        g->done = m->next;
        group_free_mem(m);
    }
    group_free_mem(g);
    return 0;
}

int weft_group_free(weft_group *g)
{
    if (!g)
        return 0;
    return WEFT__GATED(group_free(g));
}
