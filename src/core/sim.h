/* SPDX-License-Identifier: MIT */
/* sim.h — floor 3 (the scheduler): deterministic simulation mode ($WEFT_SEED,
 * weft_config.seed): one worker, a seeded choice among the runnable coroutines at every
 * scheduling point, and a virtual clock (sim.c).
 *
 * The scheduler (sched.c) and the timers (timer.c) call in here behind one test of
 * weft__sim_on(), a relaxed load of the virtual clock's flag (clock.h), false outside a
 * simulated run: the normal paths pay one predictable branch per scheduling point. The clock
 * (floor 0) never calls up: sim.c turns the virtual clock on and moves it (clock.h). sim.c
 * calls up only through function pointers set from above (worker.h "seams"): a virtual
 * timer's `fire` (timer.c) and the pool's "busy" probe (weft__sim_start's argument, run.c).
 * Everything below except weft__sim_seed/start/stop runs on the single worker's thread — the
 * one thread that dispatches coroutines in a simulated run — so the state needs no lock.
 * The contract and what the mode cannot make deterministic: weft.h ("Deterministic
 * simulation") and sim.c's header. */
#ifndef WEFT_SIM_H
#define WEFT_SIM_H

#include "clock.h"

struct weft__worker;
struct weft__coro;

/* A simulated run goes on: the virtual clock is on exactly while it does (clock.h). */
static inline bool weft__sim_on(void)
{
    return weft__clock_virtual();
}

/* weft_run: $WEFT_SEED / config seed (0: off). Returns the seed, 0 when off; a malformed
 * $WEFT_SEED is reported on stderr and ignored. */
uint64_t weft__sim_seed(uint64_t config_seed);
/* Start (before the worker runs) and end (after it stopped) a simulated run. `outside_busy`
 * (run.c: the blocking pool has queued or running jobs) tells the worker, when nothing is
 * runnable, that an event from outside weft is on its way: it then waits for it in real
 * time instead of jumping the clock. Returns 0 or WEFT_ENOMEM. */
int weft__sim_start(uint64_t seed, bool (*outside_busy)(void));
void weft__sim_stop(void);
/* A uniform 64-bit draw from the seeded generator (worker thread only). */
uint64_t weft__sim_rand(void);

/* The choice at a scheduling point (worker thread; coroutine or scheduler stack; shallow: no
 * allocation). `self`: the yielding coroutine, which may be chosen to keep running; NULL
 * otherwise. Returns the coroutine to run, or NULL when the scheduler context must run first
 * (inbox messages, a due timer, main returned, the runnable set must grow) or nothing is
 * runnable. The chosen coroutine is removed from the runnable set (self: it was never in
 * it). */
struct weft__coro *weft__sim_pick(struct weft__worker *w, struct weft__coro *self);
/* Scheduler context (find_work), after the inbox was drained: fire due timers and choose a
 * coroutine; with nothing runnable, poll the event loop without blocking and, if still
 * nothing, jump the clock to the next timer. NULL with *sleep false: look again (from the
 * top of find_work); NULL with *sleep true: block in the real poll (go_idle) — with a real
 * timer for the gap to the next virtual timer armed when events from outside weft (fd
 * waits, blocking-pool jobs) are pending. */
struct weft__coro *weft__sim_next(struct weft__worker *w, bool *sleep);

/* A virtual timer, embedded in its owner's record (timer.c). The owner sets `fire` and
 * calls add/del on the worker's thread; sim.c calls fire(t) on the worker's thread when the
 * virtual clock reaches the deadline, after t left the heap (timers of one deadline fire in
 * arming order). */
struct weft__sim_timer {
    int64_t deadline;
    uint64_t seq; /* tie-break: arming order */
    long idx;     /* position in the heap, -1 when not in it (fired or stopped) */
    void (*fire)(struct weft__sim_timer *t);
};
/* true when the heap has room for one more timer (a coroutine about to park with a deadline
 * checks it before the switch, whose on-top hook adds the timer and must not allocate). */
bool weft__sim_timer_room(void);
/* Grow the heap; *(bool *)ok: whether it grew. Deep (realloc): the owner runs it through
 * weft__offstack from a small stack. */
void weft__sim_timer_grow(void *ok);
void weft__sim_timer_add(struct weft__sim_timer *t, int64_t deadline);
/* Shallow (coroutine stacks): no allocation. A timer not in the heap is left alone. */
void weft__sim_timer_del(struct weft__sim_timer *t);

#endif
