/* SPDX-License-Identifier: MIT */
/* sched.c — the M:N scheduler: workers, switching, parking and waking.
 *
 * Objects. A coroutine (coro.h; Go's G) is a control block plus, once it has run, a stack.
 * A worker (sched.h; Go's M and P in one) is an OS thread with a libev loop, a run queue
 * (a 256-slot ring plus a `runnext` slot, runq.h), an inbox other threads post to, a private
 * FIFO of pinned coroutines, and caches (stacks, control blocks, timer records). The runtime
 * holds the workers, the global injection queue and the idle/spinning bookkeeping.
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
 * runnext/ring; the global queue; the event loop again; then, as a *spinning* worker (at most
 * half the busy ones), steal half of a random victim's ring (the victim's runnext only on the
 * last round); then go idle.
 *
 * Stopping (the shutdown rule, weft.h). main's exit sets `stopping` and every worker's
 * `stop` flag (weft__stop) and wakes them all. Every dispatch checks the flag first: the
 * direct switch (pick_local returns nothing, so the switch goes to the scheduler context),
 * the scheduler loop (its direct_next detour and find_work), and a yield that would keep
 * going. So a worker ends the stretch of the coroutine it is running and resumes no other;
 * whatever is left in its queues is abandoned (runtime.c releases it). The dispatch paths
 * read the flag relaxed (a hint on the owner's own line: the stop is a point in each
 * worker's own sequence of dispatches, not a global instant — another worker's coroutine
 * may still be running when main returns, as in Go); the scheduler loop reads it with
 * acquire before it leaves (weft_run then reads main's return value).
 *
 * Idle and wake-up (Go's protocol; see go_idle and wakep). A worker going idle first puts
 * itself on the idle list, then gives back its spinning token, then executes a seq_cst fence
 * and re-checks every queue; only if all are empty does it block in ev_run(EVRUN_ONCE). A
 * thread that makes work runnable executes a seq_cst fence after publishing it, then looks
 * at nidle and nspinning: if someone is idle and nobody spins, it CASes nspinning 0→1, pops
 * an idle worker and ev_async_sends it (the woken worker owns that spinning token). By the
 * fences, either the waker sees the idle worker or the idle worker's re-check sees the work:
 * no lost wake-up; by the CAS, a burst of submissions wakes one worker, not all. A spinning
 * worker that finds work gives its token back and, if it was the last spinner, wakes another
 * so the pool ramps up. An idle runtime sits in epoll_wait: libev's ev_async is an eventfd
 * and stays active (never ev_unref'd), so the loop really sleeps.
 *
 * libev callbacks (timers, fds, the async wake-up) run inside ev_run while the worker
 * counts as idle; a coroutine they make runnable goes to this worker's ring with no wake-up
 * (in_poll): spinners and the next wakep() spread any surplus.
 *
 * Load (load.c): before sleeping, a worker with fd waits may poll-spin up to 20 us (one at
 * a time, only when events are dense and no other thread wants the CPUs); and when the
 * whole runtime was busy less than 3/4 of one CPU over a 10 ms window it goes "narrow":
 * fd waits move to worker 0 first, wakep() wakes only worker 0 (and only for global-queue
 * work), the others do not steal; worker 1 watches with bounded sleeps while worker 0 is
 * awake, so a home stuck in a long computation widens the runtime within ~10 ms.
 *
 * Fairness: yield puts the caller at the ring's tail (never in runnext). runnext (a woken or
 * spawned coroutine runs next, for message passing with warm caches) is bounded: after 3
 * consecutive runnext dispatches the ring's head goes first. Every 61st dispatch checks the
 * global queue first. weft has no preemption: a coroutine that never blocks or yields keeps
 * its worker (documented in the README).
 *
 * Rejected designs: a mutex-protected run queue per worker (contention on every wake);
 * switching through the scheduler context on every park (2 switches per hand-off: fails the
 * "yield ≤ 2× raw switch pair" target); waking a worker on every ready (wake-up storms).
 */
#define _GNU_SOURCE
#include "runtime.h"
#include "futex.h"
#include "hang.h"
#include "sanitizer.h"
#include "sim.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


struct weft__runtime *weft__rt;
WEFT_TLS struct weft__worker *weft__tls_worker;

WEFT_NOINLINE struct weft__worker *weft__worker_self(void)
{
    /* noinline + a compiler barrier: the thread-local address is never cached across a
     * switch by a caller (see sched.h). */
    __asm__ __volatile__("" ::: "memory");
    return weft__tls_worker;
}

struct weft__coro *weft__coro_self(void)
{
    struct weft__worker *w = weft__worker_self();
    return w ? w->current : NULL;
}

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
    if (WEFT_ASAN || WEFT_TSAN || !co ||
        (!WEFT_SEGMENTED && co->stack_size >= WEFT_STACK_SMALL)) {
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
    weft__fctx_t *save;        /* where the context we leave is stored */
    struct weft__worker *w;    /* the worker switching: switch_done runs on the same thread */
    void (*after)(struct weft__switch *, struct weft__worker *);
    struct weft__coro *from;   /* the coroutine we leave, NULL for the scheduler */
    void (*unlock)(void *);
    void *unlock_arg;
    int64_t deadline;          /* park (after_park only): arm a timer for it (WEFT_FOREVER: none) */
    struct weft__timer *timer; /* park: the timer armed, for the coroutine to cancel */
    struct weft__worker *hop_to; /* hop: the worker to move to */
#if WEFT_ASAN
    void *dest_fake;           /* ASan: the destination's fake-stack save */
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

static void coro_entry(weft__transfer_t t);

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
     * inside weft__coro_exit), so TSan's shadow call stack of the fiber keeps a few frames
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
    co->ctx = weft__make_fcontext(weft__stack_top(st), st->size, coro_entry);
    weft__seg_init(&co->seg, st->lo, weft__stack_top(st));
}

static void after_park(struct weft__switch *s, struct weft__worker *w);

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
     *    for the one deep step (arming a timer); a shallow one that ran short would grow;
     *  - a fresh coroutine whose stack must come from the global pool (a mutex, maybe the
     *    first touch of a page): done on the scheduler's stack, not on the one we leave.
     * One extra switch, in those cases only. */
    if (to && s->after &&
        ((WEFT_UNLIKELY(to->stack_size < WEFT_STACK_SMALL) &&
          (!WEFT_SEGMENTED || (s->after == after_park && s->deadline != WEFT_FOREVER))) ||
         (!to->ctx && !to->stack && !weft__stack_cached(&w->stacks, to->stack_size)))) {
        w->direct_next = to;
        to = NULL;
    }
    if (to) {
        if (!to->ctx)
            prepare(w, to);
        atomic_store_explicit(&to->state, WEFT_CO_RUNNING, memory_order_relaxed);
        to->last_worker = w->index;
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

static void wakep(void);

/* Wake a worker's loop (an eventfd write). Unchecked in segmented builds: a shallow leaf,
 * called from coroutines that must not grow a segment for it. */
static WEFT_NOSPLIT void async_send(struct weft__worker *w)
{
    ev_async_send(w->loop, &w->wake);
}

/* Owner only: pinned coroutines wait in a private FIFO that thieves never see. */
static void pinned_push(struct weft__worker *w, struct weft__coro *co)
{
    co->next = NULL;
    if (w->pinned_tail)
        w->pinned_tail->next = co;
    else
        w->pinned_head = co;
    w->pinned_tail = co;
}

static struct weft__coro *pinned_pop(struct weft__worker *w)
{
    struct weft__coro *co = w->pinned_head;
    if (co) {
        w->pinned_head = co->next;
        if (!co->next)
            w->pinned_tail = NULL;
    }
    return co;
}

/* Owner only: the next local coroutine — pinned FIFO, runnext (at most 3 in a row), ring. */
static struct weft__coro *local_get(struct weft__worker *w)
{
    struct weft__coro *co = pinned_pop(w);
    if (co)
        return co;
    if (w->next_streak < 3) {
        co = atomic_load_explicit(&w->rq.runnext, memory_order_relaxed);
        if (co && atomic_compare_exchange_strong_explicit(&w->rq.runnext, &co, NULL,
                                                          memory_order_acquire,
                                                          memory_order_relaxed)) {
            w->next_streak++;
            return co;
        }
    }
    w->next_streak = 0;
    if (w->solo) { /* no thieves: no CAS needed */
        co = weft__runq_get_solo(&w->rq);
        return co ? co : weft__runq_get(&w->rq, false);
    }
    return weft__runq_get(&w->rq, false);
}

void weft__worker_post(struct weft__worker *w, struct weft__msg *m)
{
    /* Treiber push: release so the owner's acquire exchange sees the message's contents. */
    struct weft__msg *old = atomic_load_explicit(&w->inbox, memory_order_relaxed);
    do
        m->next = old;
    while (!atomic_compare_exchange_weak_explicit(&w->inbox, &old, m, memory_order_release,
                                                  memory_order_relaxed));
    async_send(w);
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
 *              the yield path must stay free of fences (DESIGN: "no fence on yield");
 *   Q_NEXT     runnext (spawn: the child runs soon, warm), waking an idle worker;
 *   Q_HANDOFF  runnext, waking nobody unless runnext displaced someone: the caller is a
 *              coroutine about to block or finish, so its worker is about to run it. */
enum { Q_TAIL, Q_REQUEUE, Q_NEXT, Q_HANDOFF };

/* Narrow (load.c): a worker other than the home keeps out of others' work — it neither
 * steals nor stays awake for their rings. A relaxed read of a hint: see load.c for why a
 * stale value is safe. */
static inline bool narrow_outsider(const struct weft__runtime *rt, const struct weft__worker *w)
{
    return weft__narrow(rt) && w != rt->workers[0];
}

static void enqueue(struct weft__worker *w, struct weft__coro *co, int how)
{
    struct weft__runtime *rt = weft__rt;
    if (co->pin) {
        if (w == co->home)
            pinned_push(w, co);
        else
            weft__worker_post(co->home, &co->msg);
        return;
    }
    if (!w) {
        weft__globalq_put(&rt->global, co);
        wakep();
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
        struct weft__coro *old =
            atomic_exchange_explicit(&w->rq.runnext, co, memory_order_acq_rel);
        if (old)
            weft__runq_put(&w->rq, old, &rt->global);
        else if (how == Q_HANDOFF)
            return;
    }
    /* Narrow (load.c): work queued on the home stays there (the home is awake and runs it);
     * work queued elsewhere wakes the home if it sleeps (it may steal), in case its owner
     * stays busy — there is no preemption. */
    if (!w->in_poll && rt->nworkers > 1 && (w != rt->workers[0] || !weft__narrow(rt)))
        wakep();
}

void weft__schedule(struct weft__coro *co, bool handoff)
{
    enqueue(weft__worker_self(), co, handoff ? Q_HANDOFF : Q_NEXT);
}

void weft__ready(struct weft__coro *co, bool handoff)
{
    uint32_t s = atomic_load_explicit(&co->state, memory_order_acquire);
    for (;;) {
        if (s == WEFT_CO_WAITING) {
            /* acquire: pairs with the parker's release CAS, so its saved context is seen. */
            if (atomic_compare_exchange_weak_explicit(&co->state, &s, WEFT_CO_RUNNABLE,
                                                      memory_order_acquire,
                                                      memory_order_acquire)) {
                enqueue(weft__worker_self(), co, handoff ? Q_HANDOFF : Q_TAIL);
                return;
            }
        } else if (s == WEFT_CO_RUNNING) {
            /* Still switching away: the park's on-top step will see NOTIFIED and queue it. */
            if (atomic_compare_exchange_weak_explicit(&co->state, &s,
                                                      WEFT_CO_RUNNING | WEFT_CO_NOTIFIED,
                                                      memory_order_release,
                                                      memory_order_acquire))
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
    if (s->deadline != WEFT_FOREVER) {
        /* Armed here, not on the coroutine's stack (libev's heap may grow, a timer chunk
         * may be allocated: too deep for a sub-page stack), and before the CAS below, so
         * nobody can resume co yet: s->timer is read by co after it resumes. A token that
         * is no longer armed means a waker (weft_cancel, a value) already won: no timer. */
        struct weft__waker k = {.co = co,
                                .token = atomic_load_explicit(&co->wait, memory_order_relaxed)};
        if (k.token & WEFT_WAIT_ARMED)
            s->timer = weft__timer_start(w, &k, s->deadline);
    }
    if (s->unlock)
        s->unlock(s->unlock_arg);
    uint32_t expected = WEFT_CO_RUNNING;
    /* release: a waker that sees WAITING (acquire) also sees co->ctx. */
    if (!atomic_compare_exchange_strong_explicit(&co->state, &expected, WEFT_CO_WAITING,
                                                 memory_order_release, memory_order_acquire)) {
        /* NOTIFIED: the wait was won while we were switching away: queue it ourselves. */
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
    atomic_store_explicit(&co->state, WEFT_CO_DEAD, memory_order_release);
    weft__stat_inc(&w->n_finished);
    weft__coro_release(co);
}

/* Owner only: next coroutine from local queues, or NULL (then go via the scheduler). After
 * main returned (w->stop) always NULL: the scheduler context then leaves its loop, so no
 * coroutine is resumed after the stop (the shutdown rule, weft.h) — every dispatch path
 * checks it: this direct switch, worker_loop's detour, and find_work. */
static struct weft__coro *pick_local(struct weft__worker *w)
{
    if (WEFT_UNLIKELY(weft__sim_on()))
        return weft__sim_pick(w, NULL); /* simulation (sim.h): a seeded choice */
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
    struct weft__coro *next = pick_local(w);
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
        switch_to(w, next, &s, false);
    } else {
        switch_to(w, NULL, &s, false); /* via the scheduler: after_yield posts it elsewhere */
    }
    return 0;
}

void weft__hop(struct weft__worker *to)
{
    struct weft__worker *w = weft__worker_self();
    struct weft__coro *co = w->current;
    if (to == w || co->pin)
        return;
    struct weft__switch s = {.save = &co->ctx, .after = after_hop, .from = co, .hop_to = to};
    switch_away(w, co, &s, false);
}

/* End the calling coroutine's armed wait before parking, if no waker has won it yet: true
 * (and the caller's lock released) if we took it back. */
static bool wait_give_up(struct weft__coro *co, void (*unlock)(void *), void *arg)
{
    uint64_t tok = atomic_load_explicit(&co->wait, memory_order_relaxed);
    if (!(tok & WEFT_WAIT_ARMED) ||
        !atomic_compare_exchange_strong_explicit(&co->wait, &tok, tok & ~WEFT_WAIT_ARMED,
                                                 memory_order_acq_rel, memory_order_relaxed))
        return false;
    if (unlock)
        unlock(arg);
    return true;
}

static int park(int64_t deadline, void (*unlock)(void *), void *arg)
{
    struct weft__worker *w = weft__worker_self();
    struct weft__coro *co = w->current;
    /* Dekker with weft_cancel: the caller armed co->wait (a store); fence; read cancel.
     * weft_cancel stores cancel; fence; reads co->wait. One of us sees the other. In a
     * shield the request is not pending, and weft_cancel leaves the (shielded) wait alone. */
    weft__fence_seq_cst();
    if (weft__cancel_pending(co)) {
        if (wait_give_up(co, unlock, arg))
            return WEFT_ECANCELED; /* the request stays: sticky (coro.h) */
        /* Someone already won the wait: it will make us runnable; park as usual. */
    }
    /* The deadline's timer record is taken in after_park, on the far side of the switch,
     * where a failure could not be reported: reserve it here. Without memory for one the
     * wait ends now with WEFT_ENOMEM, given up like a cancellation above (the callers unlink
     * their waiters on it) — unless a waker already won it: then it needs no timer. */
    if (deadline != WEFT_FOREVER && !weft__timer_reserve(w)) {
        if (wait_give_up(co, unlock, arg))
            return WEFT_ENOMEM;
        deadline = WEFT_FOREVER;
    }
    co->wait_since = w->last_poll; /* coarse, free: the last loop poll */
    weft__stat_inc(&w->n_parks);
    struct weft__switch s = {.save = &co->ctx, .after = after_park, .from = co,
                             .unlock = unlock, .unlock_arg = arg, .deadline = deadline};
    switch_away(w, co, &s, false);
    /* Resumed — possibly on another worker: re-read nothing cached from before. */
    if (s.timer)
        weft__timer_cancel(s.timer); /* stops it on its owner's loop (inbox if not here) */
    int r = co->wait_result;
    co->wait_what = NULL;
    return r;
}

int weft__park(void (*unlock)(void *), void *arg)
{
    return park(WEFT_FOREVER, unlock, arg);
}

int weft__park_until(int64_t deadline, void (*unlock)(void *), void *arg)
{
    return park(deadline, unlock, arg);
}

void weft__sched_exit(struct weft__coro *co)
{
    struct weft__worker *w = weft__worker_self();
    struct weft__switch s = {.save = &co->ctx, .after = after_exit, .from = co};
    switch_away(w, co, &s, true);
    weft__panic("weft: a finished coroutine was resumed");
}

static void coro_entry(weft__transfer_t t)
{
    (void)t;
    struct weft__coro *co = weft__coro_self();
    void *r = co->fn(co->arg);
    weft__coro_exit(co, r);
}

/* ------------------------------------------------------------------------------------------
 * Idle workers and wake-ups. */

static void idle_remove(struct weft__runtime *rt, struct weft__worker *w)
{
    for (int i = 0; i < rt->idle_top; i++)
        if (rt->idle_list[i] == w) {
            rt->idle_list[i] = rt->idle_list[--rt->idle_top];
            break;
        }
    w->idle = false;
    atomic_fetch_sub_explicit(&rt->nidle, 1, memory_order_seq_cst);
}

/* The watcher (worker 1), or NULL with one worker (load.c "Narrow mode", go_idle). */
static inline struct weft__worker *watcher_of(struct weft__runtime *rt)
{
    return rt->nworkers > 1 ? rt->workers[1] : NULL;
}

/* Under idle_mu: take the watcher off the idle list if it is on it; true = the caller must
 * async_send it (after unlocking). It comes round go_idle again and picks its sleep. */
static bool watcher_unidle_locked(struct weft__runtime *rt)
{
    struct weft__worker *v = watcher_of(rt);
    rt->watcher_parked = false;
    if (!v || !v->idle)
        return false;
    idle_remove(rt, v);
    return true;
}

/* The runtime just went narrow: the watcher, if it sleeps untimed since it went idle while
 * wide, must come round go_idle again to sleep bounded. */
static void kick_watcher(struct weft__runtime *rt)
{
    pthread_mutex_lock(&rt->idle_mu);
    bool wake = watcher_unidle_locked(rt);
    pthread_mutex_unlock(&rt->idle_mu);
    if (wake)
        async_send(watcher_of(rt));
}

/* wakep's slow half: we hold the spinning token; hand it to an idle worker. Out of line and
 * unchecked in segmented builds (a mutex and an eventfd write: shallow; see segstack.h). */
static WEFT_NOSPLIT void wake_idle(struct weft__runtime *rt)
{
    struct weft__worker *v = NULL;
    pthread_mutex_lock(&rt->idle_mu);
    if (weft__narrow(rt) && rt->workers[0]->idle) {
        /* Narrow (load.c): the home first. When it is awake (maybe busy for long: no
         * preemption), another idle worker, as in wide mode: every worker takes from the
         * global queue, and work queued off the home is taken by its awake owner. */
        v = rt->workers[0];
        idle_remove(rt, v);
        v->woken = true;
    } else if (rt->idle_top > 0) {
        v = rt->idle_list[--rt->idle_top];
        v->idle = false;
        v->woken = true; /* it now owns the spinning token we took */
        atomic_fetch_sub_explicit(&rt->nidle, 1, memory_order_seq_cst);
    }
    pthread_mutex_unlock(&rt->idle_mu);
    if (v)
        async_send(v);
    else
        atomic_fetch_sub_explicit(&rt->nspinning, 1, memory_order_seq_cst);
}

static void wakep(void)
{
    struct weft__runtime *rt = weft__rt;
    /* The caller just published work; order that store before our loads (see the essay). */
    weft__fence_seq_cst();
    if (atomic_load_explicit(&rt->nidle, memory_order_relaxed) == 0)
        return;
    int zero = 0;
    if (atomic_load_explicit(&rt->nspinning, memory_order_relaxed) != 0 ||
        !atomic_compare_exchange_strong_explicit(&rt->nspinning, &zero, 1, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return;
    wake_idle(rt);
}

/* A spinning worker that found work stops spinning; the last spinner wakes another. */
static void reset_spinning(struct weft__worker *w)
{
    if (!w->spinning)
        return;
    w->spinning = false;
    /* Narrow (load.c): no ramp-up — the spinner found the work and runs it. */
    if (atomic_fetch_sub_explicit(&weft__rt->nspinning, 1, memory_order_seq_cst) == 1 &&
        !weft__narrow(weft__rt))
        wakep();
}

static bool work_anywhere(struct weft__worker *w)
{
    struct weft__runtime *rt = weft__rt;
    if (weft__globalq_nonempty(&rt->global) || atomic_load(&w->inbox) || w->pinned_head)
        return true;
    /* Narrow (load.c): a worker other than the home leaves other rings to their owners,
     * which are awake (only an owner fills its ring, and it sleeps only once it is empty). */
    if (narrow_outsider(rt, w))
        return weft__runq_nonempty(&w->rq);
    for (int i = 0; i < rt->nworkers; i++)
        if (weft__runq_nonempty(&rt->workers[i]->rq))
            return true;
    return false;
}

static void poll_loop(struct weft__worker *w, int flags)
{
    w->in_poll = true;
    ev_run(w->loop, flags);
    w->in_poll = false;
    w->last_poll = weft_now();
}

static void on_watch(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop, (void)t, (void)revents; /* ev_run returns; find_work looks at the load */
}

static void go_idle(struct weft__worker *w)
{
    struct weft__runtime *rt = weft__rt;
    /* The watcher (load.c "Narrow mode"): while narrow, worker 1 sleeps at most
     * LOAD_WATCH_NS when the home is awake, so that a home stuck in a long computation is
     * seen (find_work's load update widens the runtime) and the work queued behind it is
     * taken. When the home is idle too, the watcher sleeps like anyone, and the home wakes
     * it when it wakes itself (below): an idle runtime has no periodic wake-up. */
    bool watch = false;
    struct weft__worker *watcher = watcher_of(rt);
    pthread_mutex_lock(&rt->idle_mu);
    w->idle = true;
    w->woken = false;
    rt->idle_list[rt->idle_top++] = w;
    atomic_fetch_add_explicit(&rt->nidle, 1, memory_order_seq_cst);
    if (w == watcher && rt->narrow_allowed && weft__narrow(rt)) {
        if (rt->workers[0]->idle)
            rt->watcher_parked = true;
        else
            watch = true;
    }
    pthread_mutex_unlock(&rt->idle_mu);
    if (w->spinning) {
        w->spinning = false;
        atomic_fetch_sub_explicit(&rt->nspinning, 1, memory_order_seq_cst);
    }
    weft__fence_seq_cst();
    /* The re-check that prevents the lost wake-up (Go's "delicate dance"). */
    bool found = work_anywhere(w) || atomic_load(&rt->stopping);
    if (!found) {
        int64_t before = weft_now();
        weft__idle_begin(w, before);
        weft__stat_inc(&w->n_sleeps);
        if (watch) {
            ev_timer_init(&w->watch, on_watch, (double)LOAD_WATCH_NS / 1e9, 0.);
            ev_timer_start(w->loop, &w->watch);
        }
        w->deep_sleep = true; /* hang.h: the loop's release hook publishes this sleep */
        poll_loop(w, EVRUN_ONCE);
        w->deep_sleep = false;
        if (watch)
            ev_timer_stop(w->loop, &w->watch);
        weft__idle_end(w, w->last_poll);
        w->poll_last_sleep = w->last_poll - before;
    }
    bool wake_watcher = false;
    pthread_mutex_lock(&rt->idle_mu);
    if (w->idle)
        idle_remove(rt, w); /* woke by itself (timer, fd, inbox) or found work */
    else if (w->woken)
        w->spinning = true; /* a waker popped us and gave us its spinning token */
    w->woken = false;
    if (w == watcher)
        rt->watcher_parked = false;
    else if (w == rt->workers[0] && rt->watcher_parked)
        wake_watcher = watcher_unidle_locked(rt); /* the home is awake again: so is it */
    pthread_mutex_unlock(&rt->idle_mu);
    if (wake_watcher)
        async_send(watcher);
    if (found && !w->spinning) {
        /* Look as a spinner: others' rings may hold the work. */
        w->spinning = true;
        atomic_fetch_add_explicit(&rt->nspinning, 1, memory_order_seq_cst);
    }
}

static void drain_inbox(struct weft__worker *w)
{
    struct weft__msg *m = atomic_exchange_explicit(&w->inbox, NULL, memory_order_acquire);
    struct weft__msg *rev = NULL;
    while (m) { /* the stack is LIFO: reverse it for FIFO */
        struct weft__msg *n = m->next;
        m->next = rev;
        rev = m;
        m = n;
    }
    for (m = rev; m;) {
        struct weft__msg *n = m->next;
        switch (m->kind) {
        case WEFT_MSG_CORO: {
            struct weft__coro *co = (struct weft__coro *)((char *)m - offsetof(struct weft__coro, msg));
            if (co->pin)
                pinned_push(w, co);
            else
                weft__runq_put(&w->rq, co, &weft__rt->global);
            break;
        }
        case WEFT_MSG_TIMER_STOP:
            weft__timer_stop_msg(w, m);
            break;
        case WEFT_MSG_IO_STOP:
            weft__io_stop_msg(w, m);
            break;
        default:
            weft__panic("weft: bad inbox message kind %d", m->kind);
        }
        m = n;
    }
}

static struct weft__coro *steal_work(struct weft__worker *w)
{
    struct weft__runtime *rt = weft__rt;
    int n = rt->nworkers;
    for (int round = 0; round < 4; round++) {
        bool last = round == 3;
        uint32_t start = (uint32_t)(w->rng = w->rng * 6364136223846793005ull + 1442695040888963407ull) >> 1;
        for (int i = 0; i < n; i++) {
            struct weft__worker *v = rt->workers[(start + i) % n];
            if (v == w)
                continue;
            struct weft__coro *co = weft__runq_steal(&w->rq, &v->rq, last);
            if (co) {
                weft__stat_inc(&w->n_steals);
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
            drain_inbox(w);
        if (WEFT_UNLIKELY(weft__stack_short()))
            weft__stack_cache_drain(&w->stacks); /* stack.c "Running short" */
        struct weft__coro *co;
        if (WEFT_UNLIKELY(weft__sim_on())) { /* simulation (sim.h): one worker, virtual time */
            bool sleep;
            if ((co = weft__sim_next(w, &sleep)))
                goto found;
            if (sleep)
                go_idle(w);
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
            wakep(); /* a worker for the surplus */
        else if (turned == WEFT_LOAD_NARROWED)
            kick_watcher(rt); /* it re-enters go_idle and sleeps bounded */
        if (now - w->last_poll >= WEFT_MSEC(1))
            poll_loop(w, EVRUN_NOWAIT);
        if ((co = local_get(w)))
            goto found;
        if ((co = weft__globalq_get(&rt->global, &w->rq, 128)))
            goto found;
        poll_loop(w, EVRUN_NOWAIT);
        if (atomic_load_explicit(&w->inbox, memory_order_relaxed) || w->pinned_head)
            continue;
        if ((co = local_get(w)))
            goto found;
        /* Steal, as a spinner, if not too many already are (Go: at most half the busy). */
        if (rt->nworkers > 1 && !narrow_outsider(rt, w) &&
            (w->spinning || 2 * atomic_load_explicit(&rt->nspinning, memory_order_relaxed) <
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
        go_idle(w);
        continue;
    found:
        weft__pollspin_end(w);
        reset_spinning(w);
        return co;
    }
}

static void on_wake(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop, (void)a, (void)revents; /* ev_run returns; find_work drains the inbox */
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

/* ------------------------------------------------------------------------------------------
 * Workers: creation, the thread body, teardown (used by runtime.c). */

static void worker_init_thread(struct weft__worker *w)
{
    weft__seg_thread_init(&w->sched_seg); /* segmented builds: this thread's stack state */
    weft__tls_worker = w;
    w->sched_tsan_fiber = weft__tsan_current();
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &w->sched_stack_lo, &w->sched_stack_size);
        pthread_attr_destroy(&attr);
    }
    weft__guard_thread_init(w);
    weft__hang_thread_init(w);
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
    weft__hang_loop_init(w);
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

void weft__worker_destroy(struct weft__worker *w)
{
    weft__timer_cache_free(w);
    weft__io_cache_free(w);
    ev_async_stop(w->loop, &w->wake);
    ev_loop_destroy(w->loop);
    weft__stack_cache_drain(&w->stacks);
    weft__coro_cache_drain(w);
    free(w);
}

/* Run the scheduler loop on the calling thread until the runtime stops. */
void weft__worker_run(struct weft__worker *w)
{
    worker_init_thread(w);
    w->last_poll = weft_now();
    worker_loop(w);
    weft__guard_thread_fini(w);
    weft__tls_worker = NULL;
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
