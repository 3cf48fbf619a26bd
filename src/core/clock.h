/* SPDX-License-Identifier: MIT */
/* clock.h — floor 0 (platform): the real clock, and the virtual clock that stands in for it
 * while a simulated run (sim.h) goes on (clock.c).
 *
 * weft_now() (weft.h) reads CLOCK_MONOTONIC, or the virtual clock while it is on. The
 * simulation (sim.c, floor 3) turns the virtual clock on and moves it from above: clock.c
 * names nothing of it (the floors, CMakeLists.txt), it only holds the flag and the value. */
#ifndef WEFT_CLOCK_H
#define WEFT_CLOCK_H

#include "common.h"

#include <stdatomic.h>

/* On while a simulated run goes on. Written by weft_run (through weft__clock_virtual_start /
 * _stop) before its worker starts and after it stopped; read relaxed everywhere: inside the
 * run the worker's thread was started after the write, and a plain thread reads it between
 * gate_in and gate_out (gate.h orders that); outside a run a stale value only changes which
 * clock weft_now() reads for a call that races with weft_run's start or end. The
 * simulation's own "am I on" (sim.h weft__sim_on) is this same flag: one relaxed load and
 * one predictable branch per scheduling point when off. */
extern _Atomic bool weft__clock_virtual_on;
static inline bool weft__clock_virtual(void)
{
    return atomic_load_explicit(&weft__clock_virtual_on, memory_order_relaxed);
}

/* The virtual time (ns). Written only by the simulated run's one worker (sim.c), read by any
 * thread (relaxed: a plain thread sees a recent value; nothing else is published with it). */
extern _Atomic int64_t weft__clock_virtual_now;

/* CLOCK_MONOTONIC, whatever the mode: for the runtime's own real-time needs (the stall
 * watchdog, the sleeps of plain threads). */
int64_t weft__clock_real(void);
/* The CPU's tick counter: x86-64 rdtsc, aarch64 cntvct_el0, elsewhere CLOCK_MONOTONIC ns.
 * For the runtime's measurements taken on hot paths and on coroutine stacks (scheduling
 * latency, CPU accounting, the trace): no call at all (safe on a sub-page or segmented
 * stack, which a vDSO clock_gettime is not), and ~30 ns under this hypervisor against ~90
 * for a vDSO clock_gettime. Invariant and synchronised across CPUs on the machines Linux
 * keeps it so; a difference read on two CPUs may still come out slightly negative. */
static inline int64_t weft__ticks(void)
{
#if defined(__x86_64__)
    return (int64_t)__builtin_ia32_rdtsc();
#elif defined(__aarch64__)
    int64_t v;
    __asm__ __volatile__("mrs %0, cntvct_el0" : "=r"(v));
    return v;
#else
    return weft__clock_real();
#endif
}
/* Nanoseconds per tick, calibrated against CLOCK_MONOTONIC from the base pair (taken once, by
 * weft__ticks_base: weft_run's start) to now; a call within 200 us of the base waits until
 * then. Any thread; for readers of the measurements, never on a hot path. */
void weft__ticks_base(void);
double weft__ns_per_tick(void);
/* Turn the virtual clock on at `t` (weft_run, before the worker starts) and off (after it
 * stopped). */
void weft__clock_virtual_start(int64_t t);
void weft__clock_virtual_stop(void);
/* Move the virtual clock to `t` (the simulated run's worker only). */
static inline void weft__clock_virtual_set(int64_t t)
{
    atomic_store_explicit(&weft__clock_virtual_now, t, memory_order_relaxed);
}
/* A weft_now() deadline as a CLOCK_MONOTONIC one, for a plain thread's futex, poll or
 * sleep: the same distance from now (virtual time runs at real speed for threads outside
 * weft). The deadline itself when the clock is real (one branch). Any thread. */
int64_t weft__clock_virtual_to_real(int64_t deadline);
static inline int64_t weft__clock_to_real(int64_t deadline)
{
    if (WEFT_LIKELY(!weft__clock_virtual()) || deadline == WEFT_FOREVER)
        return deadline;
    return weft__clock_virtual_to_real(deadline);
}

#endif
