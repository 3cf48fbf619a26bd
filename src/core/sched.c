/* SPDX-License-Identifier: MIT */
/* sched.c — floor 3 (the scheduler): the M:N scheduler — switching, parking and waking, the
 * after-steps, finding and stealing work, and a worker's scheduler loop.
 *
 * Objects. A coroutine (coro.h; Go's G) is a control block plus, once it has run, a stack.
 * A worker (worker.h; Go's M and P in one) is an OS thread with a libev loop, a run queue
 * (a 256-slot ring plus a `runnext` slot, runq.h), an inbox other threads post to, a private
 * FIFO of pinned coroutines, and caches (stacks, control blocks, timer records). The runtime
 * holds the workers, the global injection queue and the idle/spinning bookkeeping (idle.c).
 *
 * Upward control (worker.h "seams"): a coroutine's first run jumps to co->entry (task.c's
 * trampoline); a park's on-top hook is the caller's (the wait layer's unlock, timer.c's
 * deadline); the inbox runs each message's own handler. This file names nothing above it.
 *
 * Switching. Every switch is an on-top switch (context.h): the side we switch to first runs
 * `switch_done` on its own stack, which records the context we left and then runs the
 * "after" step of the switch: queue the coroutine we left (yield), publish it as WAITING and
 * release the lock its wakers need (park), or return its stack (exit). Only then can another
 * thread resume it, because only then are its registers saved. A coroutine that gives up
 * the CPU switches directly to the next runnable coroutine of its worker when there is one
 * (one switch, not two through the scheduler's context); the scheduler context (the worker
 * thread's own stack) runs only when the local queue is empty, or every 61st dispatch to
 * look at the global queue and the event loop, so neither can starve.
 *
 * Where each coroutine is at each moment: see the state machine in coro.h. Ownership in
 * short: RUNNABLE — the queue holding it; RUNNING — the worker running it; WAITING — nobody
 * (whoever wins its wait word); DEAD — the handle holder.
 *
 * Finding work (find_work, scheduler context): own inbox; every 61st tick the global queue
 * first; the event loop without blocking if 1 ms has passed since the last poll; own
 * runnext/LIFO/ring; the global queue; the event loop again; then, as a *spinning* worker (at
 * most half the busy ones), steal from a random victim the oldest half of its LIFO of unstarted
 * children (the biggest subtrees of a tree of spawns), else half of its ring (its runnext only
 * on the last round); then go idle.
 *
 * Stopping (the shutdown rule, weft.h). main's exit sets `stopping` and every worker's
 * `stop` flag (weft__stop) and wakes them all. Every dispatch checks the flag first: the
 * direct switch (pick_local returns nothing, so the switch goes to the scheduler context),
 * the scheduler loop (its direct_next detour and find_work), and a yield that would keep
 * going. So a worker ends the stretch of the coroutine it is running and resumes no other;
 * whatever is left in its queues is abandoned (run.c releases it). The dispatch paths
 * read the flag relaxed (a hint on the owner's own line: the stop is a point in each
 * worker's own sequence of dispatches, not a global instant — another worker's coroutine
 * may still be running when main returns, as in Go); the scheduler loop reads it with
 * acquire before it leaves (weft_run then reads main's return value).
 *
 * Idle workers, spinning and wake-ups: idle.c (Go's protocol). libev callbacks and the load
 * policy (poll-spinning, narrow mode): idle.c and load.c.
 *
 * Fairness: yield puts the caller at the ring's tail (never in runnext). runnext (a woken or
 * spawned coroutine runs next, for message passing with warm caches) and the LIFO (runq.h:
 * spawned children displaced from runnext run newest-first, i.e. depth-first, so a tree of
 * spawns keeps few coroutines started and unfinished, each holding a stack) are bounded: after
 * 16 consecutive dispatches from them the ring's head goes first (local_get). Every 61st
 * dispatch checks the global queue first. weft has no preemption: a coroutine that never
 * blocks or yields keeps its worker (documented in the README).
 *
 * Rejected designs: a mutex-protected run queue per worker (contention on every wake);
 * switching through the scheduler context on every park (2 switches per hand-off: fails the
 * "yield ≤ 2× raw switch pair" target); waking a worker on every ready (wake-up storms).
 */
#define _GNU_SOURCE
#include "scheduler.h"
#include "guard.h"
#include "idle.h"
#include "load.h"
#include "sanitizer.h"
#include "sim.h"
#include "trace.h"

#include <pthread.h>
#include <stdlib.h>


/* weft__offstack: run fn(arg) on the worker's scheduler stack, below the scheduler's saved
 * context. While a coroutine runs on a worker, that worker's scheduler is suspended (in
 * worker_loop's switch) and nothing else uses its stack, and the area below a suspended
 * context is dead (no red zone survives a call). The coroutine cannot move meanwhile: this
 * is a plain call as far as it is concerned, with no switch to another coroutine. */
struct offstack_call {
    void (*fn)(void *);
    void *arg;
};

static void offstack_entry(weft__transfer_t t)
{
    struct offstack_call *c = t.data;
    c->fn(c->arg);
    weft__jump_fcontext(t.fctx, NULL); /* never resumed: the context is thrown away */
}

void weft__offstack(void (*fn)(void *), void *arg)
{
    struct weft__worker *w = weft__worker_self();
    struct weft__coro *co = w ? w->current : NULL;
    /* Only worth it (and only done) from a small or segmented stack; sanitizer builds have
     * no small stacks and their fiber bookkeeping would not follow this borrowed stack. */
    if (WEFT_ASAN || WEFT_TSAN || !co || (!WEFT_SEGMENTED && co->stack_size >= WEFT_STACK_SMALL)) {
        fn(arg);
        return;
    }
    struct offstack_call c = {fn, arg};
    char *top = (char *)((uintptr_t)((char *)w->sched_ctx - 256) & ~(uintptr_t)15);
    weft__fctx_t ctx = weft__make_fcontext(top, 65536, offstack_entry);
    weft__seg_switch(&co->seg, &w->sched_seg);
    weft__jump_fcontext(ctx, &c);
    weft__seg_switch(&w->sched_seg, &co->seg);
}

/* ------------------------------------------------------------------------------------------
 * The switch. */

struct weft__switch {
    weft__fctx_t *save;     /* where the context we leave is stored */
    struct weft__worker *w; /* the worker switching: switch_done runs on the same thread */
    void (*after)(struct weft__switch *, struct weft__worker *);
    struct weft__coro *from; /* the coroutine we leave, NULL for the scheduler */
    void (*on_top)(void *);  /* park: the caller's hook (scheduler.h weft__park) */
    void *on_top_arg;
    bool deep;                   /* park: on_top may go deep (switch_to's detour) */
    struct weft__worker *hop_to; /* hop: the worker to move to */
#if WEFT_ASAN
    void *dest_fake; /* ASan: the destination's fake-stack save */
#endif
};

static weft__transfer_t switch_done(weft__transfer_t t)
{
    struct weft__switch *s = t.data;
#if WEFT_ASAN
    weft__asan_finish(s->dest_fake);
#endif
    *s->save = t.fctx;
    if (s->after)
        s->after(s, s->w);
    return t;
}


/* Give a never-run coroutine its stack and initial context (on the worker about to run it).
 * It holds the stack its spawn took, or a promise of one: kept here, it cannot fail
 * (stack.c "Promises"). */
static void prepare(struct weft__worker *w, struct weft__coro *co)
{
    struct weft__stack *st = co->stack;
    if (!st)
        st = weft__stack_get(&w->stacks, co->stack_size);
#if WEFT_TSAN
    /* A finished coroutine never returns through its first frames (it switches away from
     * inside task.c's exit), so TSan's shadow call stack of the fiber keeps a few frames
     * per coroutine; after ~15,000 coroutines on one fiber TSan aborts ("stack size"). So a
     * fiber is replaced after 1,000 coroutines: 2.4 ms amortised to ~2.4 us each. */
    if (st->tsan_fiber && ++st->tsan_uses >= 1000) {
        weft__tsan_fiber_destroy(st->tsan_fiber);
        st->tsan_fiber = NULL;
    }
    if (!st->tsan_fiber) {
        st->tsan_fiber = weft__tsan_fiber_create();
        st->tsan_uses = 0;
    }
#endif
    co->stack = st;
    co->asan_fake = NULL;
    weft__asan_fresh_stack(st->lo, (size_t)((char *)weft__stack_top(st) - (char *)st->lo));
    co->ctx = weft__make_fcontext(weft__stack_top(st), st->size, co->entry); /* task.c */
    weft__seg_init(&co->seg, st->lo, weft__stack_top(st));
}

/* ------------------------------------------------------------------------------------------
 * Scheduling latency (latency.h) and CPU accounting (weft_cputime). */

/* Plain threads' count of runnable events, shared (relaxed: only the sampling rate depends on
 * it). Not a thread-local: in the shared library that is a __tls_get_addr call, which a
 * segmented stack must grow for (test_segstack caught it). */
static _Atomic uint32_t plain_lat_tick;

/* A coroutine becomes runnable (woken or spawned) from worker w (NULL: a plain thread): one
 * event in WEFT__LAT_EVERY is stamped with the tick counter (clock.h weft__ticks: no call,
 * so nothing grows a segmented stack here). The others leave ready_at as it is: 0, since the
 * worker that ran a stamped coroutine cleared it (a block left queued when a run stopped is
 * cleared at its reuse, coro.c). Not under simulation. */
static inline void lat_stamp(struct weft__worker *w, struct weft__coro *co)
{
    bool sample;
    if (WEFT_LIKELY(w)) {
        sample = ++w->lat_tick >= WEFT__LAT_EVERY;
        if (WEFT_UNLIKELY(sample))
            w->lat_tick = 0;
    } else {
        sample =
            atomic_fetch_add_explicit(&plain_lat_tick, 1, memory_order_relaxed) % WEFT__LAT_EVERY ==
            0;
    }
    if (WEFT_UNLIKELY(sample) && !weft__sim_on())
        co->ready_at = weft__ticks();
}

/* w switches to a stamped coroutine: how long it was runnable. */
static WEFT_NOINLINE void lat_done(struct weft__worker *w, struct weft__coro *to)
{
    weft__lat_record(&w->lat, weft__ticks() - to->ready_at); /* in ticks (latency.h) */
    to->ready_at = 0;
}

/* 0: CPU accounting off; else the generation it was last turned on in (weft_cputime, debug.c,
 * the only writer). Read relaxed at every switch: the one branch accounting costs when off.
 * A worker that sees a new generation starts its interval afresh (run_gen). */
_Atomic uint32_t weft__cputime_gen;

static WEFT_NOINLINE void cputime_switch(struct weft__worker *w, struct weft__coro *from,
                                         struct weft__coro *to)
{
    uint32_t gen = atomic_load_explicit(&weft__cputime_gen, memory_order_relaxed);
    int64_t now = weft__ticks(); /* no call: this runs on the stack being left */
    if (from && w->run_since && w->run_gen == gen && now > w->run_since)
        from->cpu_ticks += (uint64_t)(now - w->run_since);
    w->run_since = to ? now : 0; /* the scheduler's own time is nobody's */
    w->run_gen = gen;
}

/* Switch from the current context (coroutine `from` or the scheduler) to coroutine `to`
 * (to == NULL: to w's scheduler context). `s` describes what to do once we are off. */
static void switch_to(struct weft__worker *w, struct weft__coro *to, struct weft__switch *s,
                      bool dying)
{
    weft__fctx_t ctx;
    s->w = w;
    void **fake_save = s->from ? (dying ? NULL : &s->from->asan_fake) : &w->sched_asan_fake;
    (void)fake_save;
    /* Detours through the scheduler's stack (worker_loop then runs `to` at once: we own it,
     * it was taken from our queues). Only coroutine-to-coroutine switches (s->after set):
     *  - the after-step runs on the destination's stack and may go deep (libev, malloc,
     *    futexes): a sub-page destination has no room for it. Segmented builds detour only
     *    for a deep on-top hook (arming a timer); a shallow one that ran short would grow;
     *  - a fresh coroutine whose stack must come from the global pool (a mutex, maybe the
     *    first touch of a page): done on the scheduler's stack, not on the one we leave.
     * One extra switch, in those cases only. */
    if (to && s->after &&
        ((WEFT_UNLIKELY(to->stack_size < WEFT_STACK_SMALL) && (!WEFT_SEGMENTED || s->deep)) ||
         (!to->ctx && !to->stack && !weft__stack_cached(&w->stacks, to->stack_size)))) {
        w->direct_next = to;
        to = NULL;
    }
    if (WEFT_UNLIKELY(atomic_load_explicit(&weft__cputime_gen, memory_order_relaxed)))
        cputime_switch(w, s->from, to);
    if (to) {
        if (WEFT_UNLIKELY(to->ready_at))
            lat_done(w, to);
        if (!to->ctx)
            prepare(w, to);
        atomic_store_explicit(&to->state, WEFT_CO_RUNNING, memory_order_relaxed);
        to->last_worker = w->index;
        to->runs++;
        WEFT__TRACE_CO(w->index, WEFT__TR_RUN, to, 0, 0);
        w->current = to;
#if WEFT_ASAN
        s->dest_fake = to->asan_fake;
#endif
        ctx = to->ctx;
        weft__asan_start(fake_save, to->stack->lo, to->stack->size);
        weft__tsan_switch(to->stack->tsan_fiber);
    } else {
        w->current = NULL;
#if WEFT_ASAN
        s->dest_fake = w->sched_asan_fake;
#endif
        ctx = w->sched_ctx;
        weft__asan_start(fake_save, w->sched_stack_lo, w->sched_stack_size);
        weft__tsan_switch(w->sched_tsan_fiber);
    }
    weft__stat_inc(&w->n_switches);
    /* Segmented builds: the thread's split-stack state follows the context. Nothing that
     * checks the stack limit may run between this and the jump (the asm is unchecked). */
    weft__seg_switch(s->from ? &s->from->seg : &w->sched_seg, to ? &to->seg : &w->sched_seg);
    weft__ontop_fcontext(ctx, s, switch_done);
}

/* ------------------------------------------------------------------------------------------
 * Queues. */


/* Owner only: the next local coroutine — pinned FIFO, runnext, the LIFO of unstarted
 * children (runnext and LIFO together at most NEWEST_RUN in a row), ring; when the ring is
 * empty, runnext, then the LIFO. So a coroutine queued in the ring waits at most NEWEST_RUN
 * dispatches of newer ones before its turn comes. runnext goes before the LIFO: it holds the
 * newest (a child just spawned, or a parent its child just woke, whose child would otherwise
 * park — and keep its stack — to wait for it). */
enum { NEWEST_RUN = 16 };
static struct weft__coro *local_get(struct weft__worker *w)
{
    struct weft__coro *co = weft__pinned_pop(w);
    if (co)
        return co;
    if (w->next_streak < NEWEST_RUN) {
        if ((co = weft__runq_take_next(&w->rq))) { /* a thief may take it first (runq.h) */
            w->next_streak++;
            return co;
        }
    }
    if (w->next_streak < NEWEST_RUN && (co = weft__lifo_pop(&w->rq, w->solo))) {
        w->next_streak++;
        return co;
    }
    w->next_streak = 0;
    if (w->solo) { /* no thieves: no CAS needed */
        co = weft__runq_get_solo(&w->rq);
        if (!co)
            co = weft__runq_get(&w->rq);
    } else {
        co = weft__runq_get(&w->rq);
    }
    return co ? co : weft__lifo_pop(&w->rq, w->solo);
}


static struct weft__worker *other_worker(struct weft__worker *w)
{
    struct weft__runtime *rt = weft__rt;
    uint32_t i = atomic_fetch_add_explicit(&rt->rr, 1, memory_order_relaxed) % rt->nworkers;
    if (w && (int)i == w->index)
        i = (i + 1) % rt->nworkers;
    return rt->workers[i];
}

/* Queue a RUNNABLE coroutine from the current thread (w: its worker, NULL on a plain
 * thread). How:
 *   Q_TAIL     the ring's tail, then wake an idle worker if needed (a readied coroutine is
 *              new work for the runtime);
 *   Q_REQUEUE  the ring's tail, no wake-up: a yielding coroutine creates no new work, and
 *              the yield path must stay free of fences (it is the switch benchmark's path);
 *   Q_NEXT     runnext (spawn: the child runs soon, warm), waking an idle worker;
 *   Q_HANDOFF  runnext, waking nobody unless runnext displaced someone: the caller is a
 *              coroutine about to block or finish, so its worker is about to run it. */
enum { Q_TAIL, Q_REQUEUE, Q_NEXT, Q_HANDOFF };


static void enqueue(struct weft__worker *w, struct weft__coro *co, int how)
{
    struct weft__runtime *rt = weft__rt;
    bool published = false; /* by runnext's seq_cst exchange (below) */
    if (co->pin) {
        if (w == co->home)
            weft__pinned_push(w, co);
        else
            weft__worker_post(co->home, &co->msg);
        return;
    }
    if (!w) {
        weft__globalq_put(&rt->global, co);
        weft__wakep();
        return;
    }
    if (rt->debug_migrate && rt->nworkers > 1) {
        weft__worker_post(other_worker(w), &co->msg);
        return;
    }
    if (how == Q_TAIL || how == Q_REQUEUE) {
        weft__runq_put(&w->rq, co, &rt->global);
        if (how == Q_REQUEUE)
            return;
    } else {
        /* An exchange, not a store: a thief may empty runnext at any moment. Its release
         * publishes co's contents to whoever takes it (their acquire CAS, runq.h); its acquire
         * sees the displaced coroutine's, which we queue. seq_cst: it is also the publication
         * weft__wakep_published pairs with an idle worker's fence (no second fence below). */
        struct weft__coro *old = atomic_exchange_explicit(&w->rq.runnext, co, memory_order_seq_cst);
        published = true;
        /* A displaced coroutine that never ran (a spawned child: no context yet; we own it
         * now, and its ctx is ours to read, we queued it) waits newest-first in the LIFO, so
         * a spawner's children run depth-first; one that ran, or a full LIFO: the ring. */
        if (old && (old->ctx || !weft__lifo_push(&w->rq, old)))
            weft__runq_put(&w->rq, old, &rt->global);
        else if (!old && how == Q_HANDOFF)
            return;
    }
    /* Narrow (load.c): work queued on the home stays there (the home is awake and runs it);
     * work queued elsewhere wakes the home if it sleeps (it may steal), in case its owner
     * stays busy — there is no preemption. */
    if (!w->in_poll && rt->nworkers > 1 && (w != rt->workers[0] || !weft__narrow(rt))) {
        /* After runnext's exchange, the exchange is the publication (weft__wakep_published).
         * A coroutine it displaced, queued since with release stores only, may escape an idle
         * worker's re-check in a race with this look: it then waits for its owner — awake,
         * running the spawner — instead of a woken thief; parallelism, never a lost wake-up. */
        if (published)
            weft__wakep_published();
        else
            weft__wakep();
    }
}

void weft__schedule(struct weft__coro *co, bool handoff)
{
    struct weft__worker *w = weft__worker_self();
    lat_stamp(w, co);
    enqueue(w, co, handoff ? Q_HANDOFF : Q_NEXT);
}

/* The trace's WAKE: by the coroutine running on this worker, this worker's loop, or a thread. */
static WEFT_NOINLINE void trace_wake(struct weft__coro *co)
{
    struct weft__worker *w = weft__worker_self();
    struct weft__coro *by = w ? w->current : NULL;
    weft__trace_emit(w ? w->index : -1, WEFT__TR_WAKE,
                     atomic_load_explicit(&co->id, memory_order_relaxed),
                     by ? atomic_load_explicit(&by->id, memory_order_relaxed) : 0,
                     by  ? WEFT__TK_CORO
                     : w ? WEFT__TK_LOOP
                         : WEFT__TK_THREAD);
}

void weft__ready(struct weft__coro *co, bool handoff)
{
    if (WEFT__TRACING())
        trace_wake(co);
    struct weft__worker *w = weft__worker_self();
    /* co->ready_at reaches the worker that runs co through the queueing's release (WAITING:
     * enqueue; RUNNING: this CAS, then after_park's enqueue), never through the CAS below. */
    lat_stamp(w, co);
    uint32_t s = atomic_load_explicit(&co->state, memory_order_acquire);
    for (;;) {
        if (s == WEFT_CO_WAITING) {
            /* acquire: pairs with the parker's release CAS, so its saved context is seen. */
            if (atomic_compare_exchange_weak_explicit(&co->state, &s, WEFT_CO_RUNNABLE,
                                                      memory_order_acquire, memory_order_acquire)) {
                enqueue(w, co, handoff ? Q_HANDOFF : Q_TAIL);
                return;
            }
        } else if (s == WEFT_CO_RUNNING) {
            /* Still switching away: the park's on-top step will see NOTIFIED and queue it.
             * release: pairs with after_park's failed CAS (acquire on failure), so the
             * result our caller stored (wait_result) is seen by the worker that queues it;
             * acquire on failure: as above, for a WAITING we then see. */
            if (atomic_compare_exchange_weak_explicit(&co->state, &s,
                                                      WEFT_CO_RUNNING | WEFT_CO_NOTIFIED,
                                                      memory_order_release, memory_order_acquire))
                return;
        } else {
            weft__panic("weft: coroutine %llu woken in state %u (double wake-up)",
                        (unsigned long long)co->id, s);
        }
    }
}

/* ------------------------------------------------------------------------------------------
 * After-switch steps (run on the destination's stack, see switch_done). */

static void after_yield(struct weft__switch *s, struct weft__worker *w)
{
    struct weft__coro *co = s->from;
    atomic_store_explicit(&co->state, WEFT_CO_RUNNABLE, memory_order_relaxed);
    if (WEFT_LIKELY(!co->pin && !w->debug_migrate))
        weft__runq_put(&w->rq, co, &weft__rt->global); /* Q_REQUEUE, inlined */
    else
        enqueue(w, co, Q_REQUEUE);
}

static void after_park(struct weft__switch *s, struct weft__worker *w)
{
    struct weft__coro *co = s->from;
    /* The caller's hook, before the CAS below: nobody can resume co yet, so what the hook
     * writes into co's frame (timer.c's record) is read by co after it resumes. */
    if (s->on_top)
        s->on_top(s->on_top_arg);
    uint32_t expected = WEFT_CO_RUNNING;
    /* release: a waker that sees WAITING (acquire) also sees co->ctx. */
    if (!atomic_compare_exchange_strong_explicit(&co->state, &expected, WEFT_CO_WAITING,
                                                 memory_order_release, memory_order_acquire)) {
        /* NOTIFIED: the wait was won while we were switching away: queue it ourselves.
         * The acquire of the failed CAS pairs with weft__ready's release CAS that set it. */
        WEFT_ASSERT(expected == (WEFT_CO_RUNNING | WEFT_CO_NOTIFIED));
        atomic_store_explicit(&co->state, WEFT_CO_RUNNABLE, memory_order_relaxed);
        enqueue(w, co, Q_TAIL);
    }
}

/* The coroutine left is RUNNABLE and belongs to `hop_to` from the post on: the release in
 * weft__worker_post publishes its saved context (as for any inbox hand-over). */
static void after_hop(struct weft__switch *s, struct weft__worker *w)
{
    (void)w;
    struct weft__coro *co = s->from;
    atomic_store_explicit(&co->state, WEFT_CO_RUNNABLE, memory_order_relaxed);
    weft__worker_post(s->hop_to, &co->msg);
}

static void after_exit(struct weft__switch *s, struct weft__worker *w)
{
    struct weft__coro *co = s->from;
    weft__stack_put(&w->stacks, co->stack);
    if (weft__seg_grown(&co->seg))
        weft__stat_inc(&w->n_grown);
    weft__seg_release(&co->seg); /* segments libgcc added (we are off them: on-top) */
    co->stack = NULL;
    co->ctx = NULL;
    /* release: a reader that sees DEAD with acquire (weft_dump's state read, debug.c; a
     * join's wait is ended by the exit's waker, not by this store) sees the stack gone. */
    atomic_store_explicit(&co->state, WEFT_CO_DEAD, memory_order_release);
    weft__stat_inc(&w->n_finished);
    weft__coro_release(co, &w->coros);
}

/* Owner only: next coroutine from local queues, or NULL (then go via the scheduler). After
 * main returned (w->stop) always NULL: the scheduler context then leaves its loop, so no
 * coroutine is resumed after the stop (the shutdown rule, weft.h) — every dispatch path
 * checks it: this direct switch, worker_loop's detour, and find_work. */
static struct weft__coro *pick_local(struct weft__worker *w)
{
    if (--w->tick_left == 0) {
        w->tick_left = 61;
        w->tick_due = true;
        return NULL; /* let the scheduler look at the global queue and the loop */
    }
    if (atomic_load_explicit(&w->inbox, memory_order_relaxed) ||
        WEFT_UNLIKELY(atomic_load_explicit(&w->stop, memory_order_relaxed)))
        return NULL;
    return local_get(w);
}

/* Leave the running coroutine `co`: to the next local coroutine, or to the scheduler. */
/* Whenever a coroutine gives up the CPU (yield, park, exit): a stack pointer below its
 * stack is an overflow whatever the guard kind (a frame that jumped the guard zone into the
 * stack below without faulting: reported here, before that stack's owner runs again on this
 * worker), and stacks without a guard zone have their canary checked. One load and two
 * predictable compares on the switch path; the check itself is out of line (guard.c). */
static inline void overflow_check(struct weft__coro *co)
{
    const struct weft__stack *st = co->stack;
    const char *sp = __builtin_frame_address(0);
    if (WEFT_UNLIKELY(sp < (const char *)st->lo || st->guard == WEFT_GUARD_CANARY))
        weft__guard_check(co, sp);
}

static void switch_away(struct weft__worker *w, struct weft__coro *co, struct weft__switch *s,
                        bool dying)
{
    overflow_check(co);
    /* Simulation (sim.h): a seeded choice. One relaxed load and a predictable branch when
     * off, the only one on this path (yield tests it once too, before its own pick). */
    struct weft__coro *next =
        WEFT_UNLIKELY(weft__sim_on()) ? weft__sim_pick(w, NULL) : pick_local(w);
    switch_to(w, next, s, dying);
}

/* ------------------------------------------------------------------------------------------
 * Public scheduling entry points. */

/* weft_yield is a cancellation point (weft.h): a pending request is reported instead of
 * yielding. Internal yields (spawn's back-pressure) call weft__yield: not a cancellation
 * point, the request stays for the caller's next one. */
int weft_yield(void)
{
    struct weft__worker *w = weft__worker_entry();
    struct weft__coro *co = w ? w->current : NULL;
    if (!co)
        return WEFT_ENOTCORO;
    int r = weft__cancel_point(co);
    return r < 0 ? r : weft__yield();
}

int weft__yield(void)
{
    struct weft__worker *w = weft__worker_entry();
    struct weft__coro *co = w ? w->current : NULL;
    if (!co)
        return WEFT_ENOTCORO;
    overflow_check(co);
    struct weft__switch s;
    s.save = &co->ctx;
    s.after = after_yield;
    s.from = co;
    s.deep = false;
    if (WEFT_UNLIKELY(weft__sim_on())) {
        /* Simulation (sim.h): the caller is one of the candidates; NULL: via the scheduler. */
        struct weft__coro *next = weft__sim_pick(w, co);
        if (next == co)
            return 0;
        switch_to(w, next, &s, false);
    } else if (!w->debug_migrate) {
        struct weft__coro *next = pick_local(w);
        if (!next && !weft__runq_nonempty(&w->rq) && !w->tick_due &&
            !weft__globalq_nonempty(&weft__rt->global) &&
            !atomic_load_explicit(&w->stop, memory_order_relaxed))
            return 0; /* nobody else to run here: keep going (unless stopping: leave) */
        WEFT__TRACE_CO(w->index, WEFT__TR_YIELD, co, 0, 0);
        switch_to(w, next, &s, false);
    } else {
        WEFT__TRACE_CO(w->index, WEFT__TR_YIELD, co, 0, 0);
        switch_to(w, NULL, &s, false); /* via the scheduler: after_yield posts it elsewhere */
    }
    return 0;
}

bool weft__worker_has_nothing_else(void)
{
    struct weft__worker *w = weft__worker_self();
    return !weft__runq_nonempty(&w->rq) && !weft__work_for(w);
}

void weft__hop(struct weft__worker *to)
{
    struct weft__worker *w = weft__worker_self();
    struct weft__coro *co = w->current;
    if (to == w || co->pin)
        return;
    struct weft__switch s = {.save = &co->ctx, .after = after_hop, .from = co, .hop_to = to};
    WEFT__TRACE_CO(w->index, WEFT__TR_HOP, co, 0, to->index);
    switch_away(w, co, &s, false);
}

int weft__park(void (*on_top)(void *), void *arg, bool deep)
{
    struct weft__worker *w = weft__worker_self();
    struct weft__coro *co = w->current;
    /* Dekker with weft_cancel: the caller armed co->wait (a store); fence; read cancel.
     * weft_cancel stores cancel; fence; reads co->wait. One of us sees the other. In a
     * shield the request is not pending, and weft_cancel leaves the (shielded) wait alone. */
    weft__fence_seq_cst();
    if (weft__cancel_pending(co)) {
        if (weft__wait_take_back(co)) {
            if (on_top)
                on_top(arg);       /* releases the caller's lock; arms nothing: not armed now */
            return WEFT_ECANCELED; /* the request stays: sticky (coro.h) */
        }
        /* Someone already won the wait: it will make us runnable; park as usual. */
    }
    co->wait_since = w->last_poll; /* coarse, free: the last loop poll */
    weft__stat_inc(&w->n_parks);
    struct weft__switch s = {.save = &co->ctx,
                             .after = after_park,
                             .from = co,
                             .on_top = on_top,
                             .on_top_arg = arg,
                             .deep = deep};
    WEFT__TRACE_CO(w->index, WEFT__TR_PARK, co, 0, weft__trace_wait_kind(co->wait_what));
    switch_away(w, co, &s, false);
    /* Resumed — possibly on another worker: re-read nothing cached from before. */
    int r = co->wait_result;
    co->wait_what = NULL;
    return r;
}

void weft__sched_exit(struct weft__coro *co)
{
    struct weft__worker *w = weft__worker_self();
    struct weft__switch s = {.save = &co->ctx, .after = after_exit, .from = co};
    WEFT__TRACE_CO(w->index, WEFT__TR_EXIT, co, 0, 0);
    switch_away(w, co, &s, true);
    weft__panic("weft: a finished coroutine was resumed");
}

/* Stealing that pays. Moving a coroutine to another core costs the cache lines of its
 * control block and stack, twice (the thief runs it, its creator reuses the memory), and a
 * CAS on the victim's queue per entry: a few hundred ns, more than a tiny task's whole run.
 * A single coroutine spawning a flat burst of tiny tasks (weft-bench spawn) was slower on two
 * workers than on one: the thief's share ran no faster there, and the spawner paid for the
 * migrated memory and for waking the thief each time it slept (docs/benchmarks.md).
 * So a thief judges each stolen batch when its queues are empty again: if every task in
 * it ran to the end or yielded without parking (n_parks unchanged) in under STEAL_PAYS_NS
 * per stolen entry on average, moving it did not pay, and while the victims still hold
 * work the thief naps (idle.c weft__steal_nap) — NAP_MIN, doubling per unpaid batch up to
 * NAP_MAX — instead of stealing again at once, and its next steals are probes of one
 * coroutine (runq.c weft__runq_steal) until one pays: a napper that took half a queue each
 * time still moved 128 tiny tasks per nap. A batch that paid (long tasks, a subtree
 * that spawns more, tasks that park on I/O and continue here) resets the nap. What a nap
 * gives up is bounded: the victims are awake and run their own queues, the nap ends within
 * NAP_MAX, and global-queue work, the inbox, timers and fds still wake the napper.
 * STEAL_PAYS_NS is $WEFT_STEAL_PAYS_NS (default 1000; 0 turns naps off; test_steal_nap raises
 * it so that sanitized and emulated builds, ~10x slower, nap too). Owner-only fields
 * (worker.h). */
enum { NAP_MIN_NS = 50000, NAP_MAX_NS = 400000 };

static void batch_stolen(struct weft__worker *w)
{
    if (!weft__rt->steal_pays_ns)
        return; /* naps off: nothing to judge */
    w->steal_at = weft_now();
    w->steal_n = 1 + weft__runq_len(&w->rq) + weft__lifo_len(&w->rq);
    w->steal_parks = atomic_load_explicit(&w->n_parks, memory_order_relaxed);
}

/* Our queues are empty: judge the last stolen batch; true = we napped (look again). */
static bool judge_batch(struct weft__worker *w)
{
    int64_t took = weft_now() - w->steal_at;
    int64_t pays_ns = weft__rt->steal_pays_ns;
    bool paid = atomic_load_explicit(&w->n_parks, memory_order_relaxed) != w->steal_parks ||
                took >= (int64_t)w->steal_n * pays_ns;
    w->steal_at = 0;
    if (paid) {
        w->nap_ns = 0;
        return false;
    }
    w->nap_ns = w->nap_ns ? (w->nap_ns * 2 < NAP_MAX_NS ? w->nap_ns * 2 : NAP_MAX_NS) : NAP_MIN_NS;
    if (!weft__others_stealable(w))
        return false; /* nothing to leave to its owner: sleep as usual, on the idle list */
    weft__steal_nap(w, w->nap_ns);
    return true;
}

static struct weft__coro *steal_work(struct weft__worker *w)
{
    struct weft__runtime *rt = weft__rt;
    int n = rt->nworkers;
    for (int round = 0; round < 4; round++) {
        bool last = round == 3;
        uint32_t start =
            (uint32_t)(w->rng = w->rng * 6364136223846793005ull + 1442695040888963407ull) >> 1;
        for (int i = 0; i < n; i++) {
            struct weft__worker *v = rt->workers[(start + i) % n];
            if (v == w)
                continue;
            struct weft__coro *co = weft__runq_steal(&w->rq, &v->rq, last, w->nap_ns != 0);
            if (co) {
                weft__stat_inc(&w->n_steals);
                batch_stolen(w);
                WEFT__TRACE_CO(w->index, WEFT__TR_STEAL, co, 1 + weft__runq_len(&w->rq), v->index);
                return co;
            }
        }
        struct weft__coro *co = weft__globalq_get(&rt->global, &w->rq, 128);
        if (co)
            return co;
    }
    return NULL;
}

/* Scheduler context only. Returns a coroutine to run, or NULL when the runtime stops. */

static struct weft__coro *find_work(struct weft__worker *w)
{
    struct weft__runtime *rt = weft__rt;
    for (;;) {
        if (atomic_load_explicit(&rt->stopping, memory_order_acquire)) {
            weft__pollspin_end(w);
            return NULL;
        }
        if (atomic_load_explicit(&w->inbox, memory_order_relaxed))
            weft__worker_drain(w);
        if (WEFT_UNLIKELY(weft__stack_short()))
            weft__stack_cache_drain(&w->stacks); /* stack.c "Running short" */
        struct weft__coro *co;
        if (WEFT_UNLIKELY(weft__sim_on())) { /* simulation (sim.h): one worker, virtual time */
            bool sleep;
            if ((co = weft__sim_next(w, &sleep)))
                goto found;
            if (sleep)
                weft__go_idle(w);
            continue;
        }
        if (w->tick_due) {
            w->tick_due = false;
            if ((co = weft__globalq_get(&rt->global, &w->rq, 64)))
                goto found;
        }
        int64_t now = weft_now();
        int turned = weft__load_update(now);
        if (turned == WEFT_LOAD_WIDENED)
            weft__wakep(); /* a worker for the surplus */
        else if (turned == WEFT_LOAD_NARROWED)
            weft__kick_watcher(rt); /* it re-enters go_idle and sleeps bounded */
        if (now - w->last_poll >= WEFT_MSEC(1))
            weft__worker_poll(w, EVRUN_NOWAIT);
        if ((co = local_get(w)))
            goto found;
        if ((co = weft__globalq_get(&rt->global, &w->rq, 128)))
            goto found;
        weft__worker_poll(w, EVRUN_NOWAIT);
        if (atomic_load_explicit(&w->inbox, memory_order_relaxed) || w->pinned_head)
            continue;
        if ((co = local_get(w)))
            goto found;
        if (w->steal_at && judge_batch(w))
            continue; /* napped: the last stolen batch did not pay (above) */
        /* Steal, as a spinner, if not too many already are (Go: at most half the busy). */
        if (rt->nworkers > 1 && !weft__narrow_outsider(rt, w) &&
            (w->spinning ||
             2 * atomic_load_explicit(&rt->nspinning, memory_order_relaxed) <
                 rt->nworkers - atomic_load_explicit(&rt->nidle, memory_order_relaxed))) {
            if (!w->spinning) {
                w->spinning = true;
                atomic_fetch_add_explicit(&rt->nspinning, 1, memory_order_seq_cst);
            }
            if ((co = steal_work(w)))
                goto found;
        }
        if (weft__pollspin(w, now))
            continue;
        weft__go_idle(w);
        continue;
    found:
        weft__pollspin_end(w);
        weft__reset_spinning(w);
        return co;
    }
}

/* The scheduler loop of one worker, on the worker thread's own stack. */
static void worker_loop(struct weft__worker *w)
{
    struct weft__coro *co;
    for (;;) {
        co = w->direct_next; /* a small-stack coroutine routed through us (switch_to) */
        w->direct_next = NULL;
        /* acquire: pairs with weft__stop (see there); the dispatch paths' relaxed looks only
         * send us here */
        if (atomic_load_explicit(&w->stop, memory_order_acquire))
            break; /* main returned: co (ours, RUNNABLE) is abandoned like the queued ones */
        if (!co && !(co = find_work(w)))
            break;
        struct weft__switch s = {.save = &w->sched_ctx, .after = NULL, .from = NULL};
        switch_to(w, co, &s, false);
        /* A coroutine switched back to us; its after-step already ran. */
    }
}

/* Run the scheduler loop on the calling thread until the runtime stops. */
void weft__worker_run(struct weft__worker *w, void (*on_start)(struct weft__worker *))
{
    weft__worker_thread_init(w);
    weft__guard_thread_init(w); /* the sigaltstack of overflow reports (guard.c) */
    if (on_start)
        on_start(w);
    w->last_poll = weft_now();
    worker_loop(w);
    weft__guard_thread_fini(w);
    weft__worker_thread_fini(w);
}
