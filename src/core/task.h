/* SPDX-License-Identifier: MIT */
/* task.h — floor 5 (primitives and the task API): spawning, joining, cancelling coroutines
 * (task.c). */
#ifndef WEFT_TASK_H
#define WEFT_TASK_H

#include "worker.h"

/* A new control block for a coroutine spawned from the calling thread (w: its worker, NULL
 * on a plain thread), with its entry trampoline and inbox handler set: the spawner's half
 * of the seams (worker.h). NULL without memory. */
struct weft__coro *weft__task_alloc(struct weft__worker *w);
/* Give a new coroutine of `size` (rounded) its stack, or the promise of one (stack.c
 * "Promises"). w: the calling worker, NULL on a plain thread. 0 or -ENOMEM. */
int weft__stack_spawn(struct weft__worker *w, struct weft__coro *co, size_t size);

#endif
