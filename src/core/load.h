/* SPDX-License-Identifier: MIT */
/* load.h — floor 2 (the worker): the idle policy (load.c): poll-spinning, idle accounting
 * and narrow mode. The scheduler asks; the policy never asks back. Scheduler context of the
 * worker unless noted. */
#ifndef WEFT_LOAD_H
#define WEFT_LOAD_H

#include "worker.h"

/* true: look for work once more first; `now`: the caller's weft_now() of this round */
bool weft__pollspin(struct weft__worker *w, int64_t now);
void weft__pollspin_end(struct weft__worker *w);
void weft__idle_begin(struct weft__worker *w, int64_t now);
void weft__idle_end(struct weft__worker *w, int64_t now);
enum { WEFT_LOAD_WIDENED = 1, WEFT_LOAD_NARROWED = 2 };
int weft__load_update(int64_t now); /* 0, or what the window changed (sched.c acts on it) */
/* Any context: the worker the calling coroutine should wait for fds on, NULL for its own. */
struct weft__worker *weft__io_home(struct weft__worker *w, struct weft__coro *co);
#define LOAD_WATCH_NS WEFT_MSEC(10) /* the watcher's sleep while narrow and the home awake */

#endif
