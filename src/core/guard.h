/* SPDX-License-Identifier: MIT */
/* guard.h — floor 2 (the worker): stack-overflow detection (guard.c): a per-thread
 * alternate signal stack, the SIGSEGV handler, and the check at every switch. */
#ifndef WEFT_GUARD_H
#define WEFT_GUARD_H

#include "coro.h"

struct weft__worker;

/* The check at every switch away from co (sched.c calls it when sp is below co's stack or
 * the stack is canary-guarded): reports an overflow and aborts, or returns. */
void weft__guard_check(struct weft__coro *co, const void *sp);
/* On the worker's own thread as it starts and ends (its sigaltstack). */
void weft__guard_thread_init(struct weft__worker *w);
void weft__guard_thread_fini(struct weft__worker *w);
/* weft_run (run.c): the SIGSEGV handler. */
void weft__guard_install(void);
void weft__guard_uninstall(void);

#endif
