/* SPDX-License-Identifier: MIT */
/* scheduler.h — floor 3 (the scheduler): sched.c's functions — switching, parking and
 * waking, the scheduler loop of a worker; the idle/wake-up protocol it uses is idle.h.
 * (Not "sched.h": tests and tools put src/core on the include path, where that name would
 * shadow the system's <sched.h>, which <pthread.h> includes.) */
#ifndef WEFT_SCHEDULER_H
#define WEFT_SCHEDULER_H

#include "worker.h"

/* Run fn(arg) on the calling worker's scheduler stack when the caller's own stack is small
 * (sub-page or segmented): for the deep paths of the runtime (malloc, libc) that a small
 * stack has no room for. Otherwise, or on a plain thread, a plain call. */
void weft__offstack(void (*fn)(void *), void *arg);

/* Park the calling coroutine until its armed wait is completed. `on_top(arg)` runs after
 * the coroutine is off its stack (in the on-top function of the switch), before it is
 * published as WAITING: the lock a waker must take to find this coroutine can be released
 * there (Go's gopark(unlockf)), and a deadline timer armed (timer.c weft__park_until).
 * The wait word is checked for a pending cancellation first (Dekker pairing with
 * weft_cancel: both sides store, fence seq_cst, then load); when the park gives the wait up
 * there (WEFT_ECANCELED), on_top(arg) runs on the caller's stack instead, with the wait no
 * longer armed — a hook arms nothing for a wait that is not armed. `deep`: on_top may go
 * deep (libev, malloc), so a sub-page or segmented destination stack is not used for it (the
 * switch detours through the scheduler's stack). Returns the result the winning waker
 * stored. */
int weft__park(void (*on_top)(void *), void *arg, bool deep);
/* Make a coroutine whose wait was just won runnable (see coro.h). Any thread.
 * handoff: the caller is a coroutine about to block or finish, so the woken one runs next. */
void weft__ready(struct weft__coro *co, bool handoff);
/* Queue a RUNNABLE coroutine (spawn). Any thread. */
void weft__schedule(struct weft__coro *co, bool handoff);
/* Finish the calling coroutine: switch away for good; the on-top function frees its stack
 * and drops the running reference on its control block. */
WEFT_NORETURN void weft__sched_exit(struct weft__coro *co);
/* Move the calling coroutine to worker `to` (it resumes there). */
void weft__hop(struct weft__worker *to);
/* CPU accounting: 0 off, else the generation it was turned on in (sched.c; debug.c's
 * weft_cputime is the only writer). */
extern _Atomic uint32_t weft__cputime_gen;
/* weft_yield without its cancellation point (internal yields). */
int weft__yield(void);
/* Coroutine context: nothing else is runnable on this worker — its queues, pinned FIFO and
 * inbox are empty, and so is the global queue (loads only; a hint). */
bool weft__worker_has_nothing_else(void);

/* Run the scheduler loop on the calling thread until the runtime stops (run.c). on_start
 * (may be NULL) runs on the thread once it is set up as the worker's, before the loop. */
void weft__worker_run(struct weft__worker *w, void (*on_start)(struct weft__worker *));

#endif
