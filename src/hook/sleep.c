/* SPDX-License-Identifier: MIT */
/* sleep.c — sleep, usleep, nanosleep, clock_nanosleep.
 *
 * Plain thread: libc's. Coroutine: the coroutine parks for the time asked (weft_sleep_until,
 * pinned: the affinity rule), and the worker runs others meanwhile. A cancelled coroutine's
 * sleep ends at once: nanosleep / usleep fail with errno ECANCELED (nanosleep fills *rem
 * with the time left), clock_nanosleep returns ECANCELED, sleep returns the seconds left
 * (rounded up, as for an interruption). clock_nanosleep on a CPU-time clock is libc's (it
 * blocks the worker: there is nothing to park on). */
#define _GNU_SOURCE
#include "hook.h"

#include <errno.h>

static bool bad_ts(const struct timespec *ts)
{
    return !ts || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000 || ts->tv_sec < 0;
}

static void set_rem(struct timespec *rem, int64_t deadline)
{
    if (!rem)
        return;
    int64_t left = deadline - weft_now();
    if (left < 0)
        left = 0;
    rem->tv_sec = left / 1000000000;
    rem->tv_nsec = left % 1000000000;
}

/* Park until the deadline: 0, or ECANCELED. errno is then the caller's `ce` again (read at
 * the call's entry): libc's sleeps leave it alone when they sleep their time, and other
 * coroutines of the thread set it while this one was parked. */
static int park(int64_t deadline, int ce)
{
    int e = weft__hook_park_until(deadline) < 0 ? ECANCELED : 0;
    weft__hook_set_errno(ce);
    return e;
}

WEFT_HOOK_API int nanosleep(const struct timespec *req, struct timespec *rem)
{
    if (WEFT_HOOK_LIKELY(!weft__hook_coro()) || bad_ts(req))
        return REAL(nanosleep)(req, rem);
    int64_t deadline = weft_after(weft__hook_ts_ns(req));
    int e = park(deadline, weft__hook_caller_errno());
    if (!e)
        return 0;
    set_rem(rem, deadline);
    weft__hook_set_errno(e);
    return -1;
}

WEFT_HOOK_API int clock_nanosleep(clockid_t clk, int flags, const struct timespec *req,
                                  struct timespec *rem)
{
    if (WEFT_HOOK_LIKELY(!weft__hook_coro()) || bad_ts(req) ||
        (clk != CLOCK_MONOTONIC && clk != CLOCK_REALTIME && clk != CLOCK_BOOTTIME &&
         clk != CLOCK_TAI))
        return REAL(clock_nanosleep)(clk, flags, req, rem);
    int ce = weft__hook_caller_errno();
    int64_t deadline;
    if (flags & TIMER_ABSTIME) {
        /* An absolute time on clk, as a deadline on weft's CLOCK_MONOTONIC. */
        struct timespec now;
        clock_gettime(clk, &now);
        int64_t left = weft__hook_ts_ns(req) - weft__hook_ts_ns(&now);
        deadline = weft_after(left);
    } else {
        deadline = weft_after(weft__hook_ts_ns(req));
    }
    int e = park(deadline, ce); /* returned, not in errno (as libc's) */
    if (e && !(flags & TIMER_ABSTIME))
        set_rem(rem, deadline);
    return e;
}

WEFT_HOOK_API int usleep(useconds_t us)
{
    if (WEFT_HOOK_LIKELY(!weft__hook_coro()))
        return REAL(usleep)(us);
    int e = park(weft_after(WEFT_USEC(us)), weft__hook_caller_errno());
    if (!e)
        return 0;
    weft__hook_set_errno(e);
    return -1;
}

WEFT_HOOK_API unsigned sleep(unsigned s)
{
    if (WEFT_HOOK_LIKELY(!weft__hook_coro()))
        return REAL(sleep)(s);
    int64_t deadline = weft_after(WEFT_SEC(s));
    if (!park(deadline, weft__hook_caller_errno()))
        return 0;
    weft__hook_set_errno(ECANCELED); /* as libc's EINTR from an interrupted sleep */
    int64_t left = deadline - weft_now();
    return left <= 0 ? 0 : (unsigned)((left + 999999999) / 1000000000);
}
