/* SPDX-License-Identifier: MIT */
/* evalloc.c — floor 0 (platform): libev's allocator: out of memory inside libev is an error where
 * weft can report one, and a named abort elsewhere.
 *
 * libev aborts when its allocator returns NULL ("(libev) cannot allocate N bytes"), and
 * every libev call that allocates assumes success. weft sets up a worker's loop (the loop
 * struct, the epoll backend's arrays, the wake-up watcher) in weft__worker_create, which
 * can fail cleanly: weft_run then returns WEFT_ENOMEM. So that setup runs with an escape
 * armed (thread-local, only on the thread that arms it): an allocation that fails there
 * jumps back to weft__evalloc_try, which returns -ENOMEM. What libev had allocated until
 * then is leaked, and so may be the epoll descriptor — the price of failing a run cleanly
 * when memory is already exhausted. Anywhere else (a timer heap or an fd table growing
 * while the runtime runs) the failure cannot be returned through libev: weft aborts with a
 * message that says what ran out, instead of libev's. */
#define _GNU_SOURCE
#include "common.h"
#include "evalloc.h"

#include <ev.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>

static __thread sigjmp_buf *escape; /* armed by weft__evalloc_try on this thread only */

static void *ev_alloc(void *ptr, long size)
{
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    void *p = realloc(ptr, (size_t)size);
    if (p)
        return p;
    if (escape)
        siglongjmp(*escape, 1);
    fprintf(stderr, "weft: out of memory inside libev (%ld bytes for a worker's event loop)\n",
            size);
    abort();
}

void weft__evalloc_install(void)
{
    ev_set_allocator(ev_alloc); /* idempotent; before any loop exists (weft_run) */
}

int weft__evalloc_try(void (*fn)(void *), void *arg)
{
    sigjmp_buf here;
    if (sigsetjmp(here, 0)) {
        escape = NULL;
        return -ENOMEM;
    }
    escape = &here;
    fn(arg);
    escape = NULL;
    return 0;
}
