/* SPDX-License-Identifier: MIT */
/* debug.h — floor 6 (tools): statistics, weft_dump and the zombie report (debug.c). */
#ifndef WEFT_CORE_DEBUG_H
#define WEFT_CORE_DEBUG_H

#include "common.h"

/* weft_run's end (run.c): in debug builds or with $WEFT_DEBUG, print the zombies left. */
void weft__zombie_report(void);
/* weft_config.dump_signal (run.c): weft_dump on that signal. */
void weft__dump_signal_install(int sig);
void weft__dump_signal_uninstall(void);
/* Control blocks holding a coroutine, and zombies (finished, handle neither joined nor
 * detached): the workers' caches' counts plus the plain threads' (coro.h). Approximate while
 * running, like the other statistics. */
uint64_t weft__coro_alive(void);
uint64_t weft__coro_zombies(void);
/* "symbol+0x12" or, without a symbol, "module+0x1234" (dladdr), or "0x..." */
void weft__addr_name(const void *pc, char *buf, size_t cap);

#endif
