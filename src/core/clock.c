/* SPDX-License-Identifier: MIT */
/* clock.c — floor 0 (platform): weft's clock, weft_now() and weft_after().
 *
 * Every deadline in weft is an absolute CLOCK_MONOTONIC time in nanoseconds (weft.h): the
 * timers (timer.c), the load windows (load.c), the fd waits' polls and the dumps all read
 * this one clock. No weft concept below or above it: anything may call it. */
#define _GNU_SOURCE
#include "common.h"
#include "segstack.h"

#include <time.h>

/* No split-stack check (segmented builds): a leaf over the vDSO, it fits in the slack. */
WEFT_NOSPLIT int64_t weft_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t weft_after(int64_t ns)
{
    if (ns <= 0)
        return weft_now();
    int64_t now = weft_now();
    return ns > WEFT_FOREVER - now ? WEFT_FOREVER : now + ns;
}
