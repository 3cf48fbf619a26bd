/* segstack.c — the one out-of-line piece of segmented stacks (see segstack.h). */
#include "segstack.h"

#if defined(WEFT_SEGMENTED_STACKS)
/* no_split_stack: this runs while the thread's limit may already be the destination's, and
 * a checked prologue calling into libgcc would make every switch ask for a large frame. */
WEFT_NOSPLIT void weft__seg_switch(weft__seg *from, weft__seg *to)
{
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
