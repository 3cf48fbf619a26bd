/* SPDX-License-Identifier: MIT */
/* clock.c — floor 0 (platform): weft's clock, weft_now() and weft_after(); the virtual clock
 * of a simulated run (clock.h).
 *
 * Every deadline in weft is an absolute weft_now() time in nanoseconds (weft.h): the timers
 * (timer.c), the load windows (load.c), the fd waits' polls and the dumps all read this one
 * clock. It is CLOCK_MONOTONIC, except while a simulated run goes on (sim.c): then it is a
 * virtual clock that the simulation turns on and moves from above (clock.h); the flag and
 * the value live here so that this floor names nothing above it. No weft concept below or
 * above it: anything may call it. */
#define _GNU_SOURCE
#include "clock.h"
#include "segstack.h"

#include <pthread.h>
#include <time.h>

_Atomic bool weft__clock_virtual_on;
_Atomic int64_t weft__clock_virtual_now;

/* No split-stack check (segmented builds): a leaf over the vDSO, it fits in the slack. */
WEFT_NOSPLIT int64_t weft__clock_real(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The first (ticks, ns) pair, taken once (pthread_once publishes it to every caller). */
static int64_t base_t, base_n;
static pthread_once_t base_once = PTHREAD_ONCE_INIT;
static void take_base(void)
{
    base_t = weft__ticks();
    base_n = weft__clock_real();
}

void weft__ticks_base(void)
{
    pthread_once(&base_once, take_base);
}

double weft__ns_per_tick(void)
{
#if defined(__x86_64__) || defined(__aarch64__)
    pthread_once(&base_once, take_base);
    for (;;) {
        int64_t t = weft__ticks(), n = weft__clock_real();
        if (n - base_n >= 200000 && t > base_t)
            return (double)(n - base_n) / (double)(t - base_t);
    }
#else
    return 1.0; /* the ticks are CLOCK_MONOTONIC ns */
#endif
}

/* Unchecked too: the flag's test is one relaxed load and a branch predicted not taken. */
WEFT_NOSPLIT int64_t weft_now(void)
{
    if (WEFT_UNLIKELY(weft__clock_virtual()))
        return atomic_load_explicit(&weft__clock_virtual_now, memory_order_relaxed);
    return weft__clock_real();
}

int64_t weft_after(int64_t ns)
{
    if (ns <= 0)
        return weft_now();
    int64_t now = weft_now();
    return ns > WEFT_FOREVER - now ? WEFT_FOREVER : now + ns;
}

void weft__clock_virtual_start(int64_t t)
{
    weft__clock_virtual_set(t);
    atomic_store_explicit(&weft__clock_virtual_on, true, memory_order_relaxed);
}

void weft__clock_virtual_stop(void)
{
    atomic_store_explicit(&weft__clock_virtual_on, false, memory_order_relaxed);
}

int64_t weft__clock_virtual_to_real(int64_t deadline)
{
    int64_t now = atomic_load_explicit(&weft__clock_virtual_now, memory_order_relaxed);
    int64_t real = weft__clock_real();
    if (deadline <= now)
        return real;
    return deadline - now > WEFT_FOREVER - real ? WEFT_FOREVER : real + (deadline - now);
}
