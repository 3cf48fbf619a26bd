/* SPDX-License-Identifier: MIT */
/* text.h — floor 1 (objects): report text built without stdio or malloc (text.c), so that
 * a signal handler can use it: a fixed buffer, filled up to `end` (longer text is cut). */
#ifndef WEFT_TEXT_H
#define WEFT_TEXT_H

#include "coro.h"

struct weft__text {
    char *p, *end;
};
void weft__text_str(struct weft__text *t, const char *s);
void weft__text_u64(struct weft__text *t, uint64_t v);
void weft__text_hex(struct weft__text *t, uintptr_t v);
/* `coroutine 17 "name"`, or for an unnamed one `coroutine 17 (entry fn)` (the entry
 * function by dladdr: its symbol, else module+offset). */
void weft__text_coro(struct weft__text *t, const struct weft__coro *co);

#endif
