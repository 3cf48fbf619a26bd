/* SPDX-License-Identifier: MIT */
/* timer.h — floor 4 (waiting): deadlines on libev timers, and every blocking call's park
 * with a deadline (timer.c). */
#ifndef WEFT_TIMER_H
#define WEFT_TIMER_H

#include "waker.h"
#include "worker.h"

/* Wait for the armed wait of the calling coroutine with an optional deadline (WEFT_FOREVER:
 * none): parks, and cleans up the timer. Used by every blocking call. `unlock(arg)` (may be
 * NULL) is released once the coroutine is off its stack (scheduler.h weft__park). Returns the
 * winning waker's result: WEFT_ETIMEDOUT from the timer, WEFT_ECANCELED, WEFT_ENOMEM (no
 * memory for the timer's record: the wait is given up, as for a cancellation). */
int weft__park_until(int64_t deadline, void (*unlock)(void *), void *arg);

#endif
