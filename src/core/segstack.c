/* SPDX-License-Identifier: MIT */
/* segstack.c — floor 0 (platform): the one out-of-line piece of segmented stacks (see
 * segstack.h). */
#include "segstack.h"

#if defined(WEFT_SEGMENTED_STACKS)
/* no_split_stack: this runs while the thread's limit may already be the destination's, and
 * a checked prologue calling into libgcc would make every switch ask for a large frame. */
/* libgcc's per-thread list of segments added to the running context (NULL until it grows
 * for the first time; the context keeps its list until released). */
extern __thread void *__morestack_segments;

WEFT_NOSPLIT void weft__seg_switch(weft__seg *from, weft__seg *to)
{
    /* A context that never grew still has exactly the state weft__seg_init gave it (libgcc
     * changes the limit and the lists only when it adds or leaves a segment): saving it
     * again would copy the same words. */
    if (__morestack_segments || from->ctx[0])
        __splitstack_getcontext(from->ctx);
    __splitstack_setcontext(to->ctx);
}

WEFT_NOSPLIT void weft__seg_release(weft__seg *s)
{
    if (s->ctx[0])
        __splitstack_releasecontext(s->ctx);
    memset(s->ctx, 0, sizeof s->ctx);
}
#else
typedef int weft__segstack_unused; /* ISO C: a translation unit is not empty */
#endif
