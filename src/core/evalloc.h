/* SPDX-License-Identifier: MIT */
/* evalloc.h — floor 0 (platform): libev's allocator (evalloc.c). */
#ifndef WEFT_EVALLOC_H
#define WEFT_EVALLOC_H

/* Installed by weft_run before any loop exists. try runs fn(arg) so that a failed libev
 * allocation inside returns -ENOMEM (what was allocated is leaked) instead of aborting;
 * outside a try, a failure aborts with weft's message. */
void weft__evalloc_install(void);
int weft__evalloc_try(void (*fn)(void *), void *arg);

#endif
