/* weft/debug.h — introspection (included by weft.h). */
#ifndef WEFT_DEBUG_H
#define WEFT_DEBUG_H
#include <stdio.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_stats {
    uint64_t alive;        /* coroutines spawned and not yet finished */
    uint64_t spawned;      /* since weft_run started */
    uint64_t switches;     /* context switches */
    uint64_t parks;        /* blocking waits */
    uint64_t steals;       /* coroutines taken from another worker's queue */
    uint64_t stack_bytes;  /* address space reserved for stacks */
    uint64_t stacks_cached;/* free stacks kept warm */
    uint64_t stacks_grown; /* finished coroutines whose stack grew a segment (segmented builds) */
    int workers;
    int narrow;            /* 1: the runtime is narrow — it needed less than one CPU, so fd
                              waits gather on worker 0 (docs/design.md "Narrow and wide") */
    uint64_t narrowed;     /* times it went narrow since weft_run started */
    uint64_t reserved[6];  /* zero; later versions' counters (the struct keeps its size) */
} weft_stats;
/* Read the runtime's counters, summed over workers (approximate while running).
 * 0, WEFT_EINVAL (NULL), WEFT_ENORUNTIME. */
WEFT_EXTERN int weft_stats_get(weft_stats *out);
/* Print every coroutine (id, name, state, worker, what it waits on and for how long). */
WEFT_EXTERN int weft_dump(FILE *out);

#ifdef __cplusplus
}
#endif
#endif
