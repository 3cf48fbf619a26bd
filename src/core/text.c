/* SPDX-License-Identifier: MIT */
/* text.c — floor 1 (objects): report text without stdio or malloc (text.h), for the
 * overflow report in a signal handler (guard.c) and the dumps (debug.c). Frames print as
 * symbol+offset, or module+offset where the module has no symbol for them (static functions
 * of a program linked without -rdynamic): `addr2line -e module offset` then finds the line.
 * Invariant: nothing here allocates or takes a lock of weft's; it never writes past t->end. */
#define _GNU_SOURCE
#include "text.h"

#include <dlfcn.h>

void weft__text_str(struct weft__text *t, const char *s)
{
    while (*s && t->p < t->end)
        *t->p++ = *s++;
}

void weft__text_u64(struct weft__text *t, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10));
    while (n && t->p < t->end)
        *t->p++ = tmp[--n];
}

void weft__text_hex(struct weft__text *t, uintptr_t v)
{
    char tmp[20];
    int n = 0;
    do
        tmp[n++] = "0123456789abcdef"[v & 15];
    while ((v >>= 4));
    weft__text_str(t, "0x");
    while (n && t->p < t->end)
        *t->p++ = tmp[--n];
}

/* The entry function of co: dladdr finds exported symbols (a program's own functions need
 * -rdynamic and external linkage); otherwise the module and offset, for addr2line. dladdr
 * takes the loader's (recursive) lock: not async-signal-safe on paper, used only on the way
 * to abort. */
static void text_entry(struct weft__text *t, const void *fn)
{
    Dl_info info;
    if (!fn || !dladdr(fn, &info)) {
        weft__text_hex(t, (uintptr_t)fn);
        return;
    }
    if (info.dli_sname && info.dli_saddr) {
        weft__text_str(t, info.dli_sname);
        if (info.dli_saddr != fn) {
            weft__text_str(t, "+");
            weft__text_hex(t, (uintptr_t)((const char *)fn - (const char *)info.dli_saddr));
        }
        return;
    }
    const char *mod = info.dli_fname ? info.dli_fname : "?";
    for (const char *c = mod; *c; c++)
        if (*c == '/' && c[1])
            mod = c + 1;
    weft__text_str(t, mod);
    weft__text_str(t, "+");
    weft__text_hex(t, (uintptr_t)((const char *)fn - (const char *)info.dli_fbase));
}

WEFT_NO_TSAN void weft__text_coro(struct weft__text *t, const struct weft__coro *co)
{
    weft__text_str(t, "coroutine ");
    weft__text_u64(t, atomic_load_explicit(&co->id, memory_order_relaxed));
    if (co->name[0]) {
        /* Names are debug aids: a racing weft_set_name may tear it, never overrun it. */
        weft__text_str(t, " \"");
        for (size_t i = 0; i < sizeof co->name && co->name[i] && t->p < t->end; i++)
            *t->p++ = co->name[i];
        weft__text_str(t, "\"");
    } else {
        weft__text_str(t, " (entry ");
        text_entry(t, (const void *)co->fn);
        weft__text_str(t, ")");
    }
}
