/* SPDX-License-Identifier: MIT */
/* sim.h — deterministic simulation mode ($WEFT_SEED, weft_config.seed): one worker, a seeded
 * choice among the runnable coroutines at every scheduling point, and a virtual clock.
 *
 * The scheduler and the timers call in here behind one test of weft__sim_on() (a relaxed
 * load of a flag that is false outside a simulated run): the normal paths pay one
 * predictable branch per scheduling point. Everything below (except weft__sim_now and
 * weft__sim_to_real, which any thread may call) runs on the single worker's thread — the
 * one thread that dispatches coroutines in a simulated run — so the state needs no lock.
 * The contract and what the mode cannot make deterministic are in weft.h ("Deterministic
 * simulation") and sim.c's header. */
#ifndef WEFT_SIM_H
#define WEFT_SIM_H

#include "common.h"

#include <stdatomic.h>

struct weft__worker;
struct weft__coro;
struct weft__waker;

/* Written by weft_run before the worker starts and after it stopped (the gate orders a plain
 * thread's reads within the run; outside a run a stale value only changes which clock
 * weft_now reads), read relaxed everywhere. */
extern _Atomic bool weft__sim_flag;
static inline bool weft__sim_on(void)
{
    return atomic_load_explicit(&weft__sim_flag, memory_order_relaxed);
}

/* The virtual clock (ns): written by the worker only, read by any thread (relaxed: a
 * plain thread sees a recent value). */
extern _Atomic int64_t weft__sim_clock;
static inline int64_t weft__sim_now(void)
{
    return atomic_load_explicit(&weft__sim_clock, memory_order_relaxed);
}
/* CLOCK_MONOTONIC, whatever the mode: for the runtime's own real-time needs (the stall
 * watchdog, waits of plain threads). timer.c. */
int64_t weft__clock_real(void);
/* A weft_now() deadline as a CLOCK_MONOTONIC one, for a plain thread's futex or sleep: the
 * same distance from now (virtual time runs at real speed for threads outside weft). */
int64_t weft__sim_to_real(int64_t deadline);

/* weft_run: $WEFT_SEED / config seed (0: off). Returns the seed, 0 when off; a malformed
 * $WEFT_SEED is reported on stderr and ignored. */
uint64_t weft__sim_seed(uint64_t config_seed);
/* Start (before the worker runs) and end (after it stopped) a simulated run. */
int weft__sim_start(uint64_t seed);
void weft__sim_stop(void);
/* A uniform 64-bit draw from the seeded generator (worker thread only). */
uint64_t weft__sim_rand(void);

/* The choice at a scheduling point (worker thread; coroutine or scheduler stack).
 * `self`: the yielding coroutine, which may be chosen to keep running; NULL otherwise.
 * Returns the coroutine to run, or NULL when the scheduler context must run first (inbox
 * messages, a due timer, main returned) or nothing is runnable. The chosen coroutine is
 * removed from the runnable set (self: it was never in it). */
struct weft__coro *weft__sim_pick(struct weft__worker *w, struct weft__coro *self);
/* Scheduler context (find_work), after the inbox was drained: fire due timers and choose a
 * coroutine; with nothing runnable, poll the event loop without blocking and, if still
 * nothing, jump the clock to the next timer. NULL with *sleep false: look again (from the
 * top of find_work); NULL with *sleep true: block in the real poll (go_idle) — with a real
 * timer for the gap to the next virtual timer armed when events from outside weft (fd
 * waits, blocking-pool jobs) are pending. */
struct weft__coro *weft__sim_next(struct weft__worker *w, bool *sleep);

/* A virtual timer (embedded in timer.c's records). */
struct weft__sim_timer {
    int64_t deadline;
    uint64_t seq;            /* tie-break: timers of one deadline fire in arming order */
    long idx;                /* position in the heap, -1 when not in it (fired or stopped) */
    struct weft__waker *k;   /* woken with WEFT_ETIMEDOUT */
};
/* Make room for one more timer (a coroutine about to park with a deadline; may allocate:
 * run through weft__offstack). false: no memory. */
bool weft__sim_timer_reserve(void);
void weft__sim_timer_add(struct weft__sim_timer *t, int64_t deadline, struct weft__waker *k);
/* Shallow (coroutine stacks): no allocation. A fired timer is no longer in the heap. */
void weft__sim_timer_del(struct weft__sim_timer *t);

#endif
