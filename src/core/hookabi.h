/* SPDX-License-Identifier: MIT */
/* hookabi.h — floor 2 (the worker): what libweft exports for libweft-hook (src/hook/hook.h
 * includes this file). Internal, not public API: no weft_ name, no man page, documented
 * nowhere but here; exported (default visibility) only because the hook is a separate shared
 * library. Both libraries are built and installed together, so these change with libweft
 * like any internal.
 *
 * Every hooked call first asks "a coroutine that may park here?". On a plain thread (and a
 * pool thread, and before weft_run) the answer must cost one predictable branch: the hook
 * reads weft__tls_worker, the calling thread's worker, which is initial-exec TLS like all of
 * weft's (a load at a fixed offset from the thread pointer; libweft.so is loaded at start-up,
 * as a library the hook itself needs, so its TLS is in the static block). NULL: not a worker
 * thread — libc's call at once. Only on a worker's thread does the hook call
 * weft__hook_target() for the rest (a coroutine running, hooks not disabled for it). */
#ifndef WEFT_HOOKABI_H
#define WEFT_HOOKABI_H

#include <stdbool.h>
#include <stdint.h>

struct weft__worker;

/* worker.c's: the calling thread's worker, or NULL. Written only by the thread itself. */
extern __thread struct weft__worker *weft__tls_worker
    __attribute__((tls_model("initial-exec"), visibility("default")));

/* 1 when the calling thread runs a coroutine whose hooked calls may park (weft_hook_disable
 * not in force for it), else 0. Any thread. */
__attribute__((visibility("default"))) int weft__hook_target(void);

/* weft_hook_disable (+1) / weft_hook_enable (-1) for the calling coroutine: 0, WEFT_ENOTCORO
 * outside a coroutine, WEFT_ESTATE for an enable without a disable. The depth is the
 * coroutine's own (struct weft__coro hook_off), read and written only by it. */
__attribute__((visibility("default"))) int weft__hook_off_add(int delta);

/* io.c's (floor 4): weft_wait_fd for a caller whose last call on fd answered EAGAIN or
 * EINPROGRESS, so fd is open and not asked about again (fdwait.h). */
__attribute__((visibility("default"))) int weft__wait_fd_open(int fd, int events, int64_t deadline);

#endif
