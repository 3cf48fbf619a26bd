/* SPDX-License-Identifier: MIT */
/* hookabi.c — floor 2 (the worker): the functions libweft exports for libweft-hook
 * (hookabi.h says what they are for and why they are exported). */
#include "hookabi.h"
#include "worker.h"

int weft__hook_target(void)
{
    struct weft__worker *w = weft__tls_worker;
    struct weft__coro *co = w ? w->current : NULL;
    return co && co->hook_off == 0;
}

int weft__hook_off_add(int delta)
{
    struct weft__worker *w = weft__tls_worker;
    struct weft__coro *co = w ? w->current : NULL;
    if (!co)
        return WEFT_ENOTCORO;
    if (co->hook_off + delta < 0)
        return WEFT_ESTATE;
    co->hook_off += delta;
    return 0;
}
