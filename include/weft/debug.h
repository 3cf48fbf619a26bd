/* SPDX-License-Identifier: MIT */
/* weft/debug.h — introspection (included by weft.h). */
#ifndef WEFT_DEBUG_H
#define WEFT_DEBUG_H
#include <stdio.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_stats {
    uint64_t alive;         /* coroutines spawned and not yet finished (zombies not counted) */
    uint64_t spawned;       /* since weft_run started */
    uint64_t switches;      /* context switches */
    uint64_t parks;         /* blocking waits */
    uint64_t steals;        /* coroutines taken from another worker's queue */
    uint64_t stack_bytes;   /* address space reserved for stacks */
    uint64_t stacks_cached; /* free stacks kept warm */
    uint64_t stacks_grown;  /* finished coroutines whose stack grew a segment (segmented builds) */
    int workers;
    int narrow;        /* 1: the runtime is narrow — it needed less than one CPU, so fd
                              waits gather on worker 0 (docs/design.md "Narrow and wide") */
    uint64_t narrowed; /* times it went narrow since weft_run started */
    uint64_t zombies;  /* finished tasks whose handle was neither joined nor detached: each
                              keeps its control block (~270 bytes) until it is. In debug
                              builds (NDEBUG undefined) or with $WEFT_DEBUG=1, weft_run prints
                              those left at its end ("weft: N finished tasks were never joined
                              or detached: ids..."); $WEFT_DEBUG=0 silences it. */
    /* The blocking-offload pool (weft_blocking), now: */
    uint32_t blocking_queued;  /* jobs waiting for a pool thread */
    uint32_t blocking_busy;    /* pool threads running a job */
    uint32_t blocking_threads; /* pool threads, busy or idle (at most config.blocking_threads) */
    uint32_t reserved32;       /* zero */
    uint64_t stalls;           /* stalls seen since weft_run started: a worker ran one coroutine (or
                              its scheduler) longer than config.stall_ms — each episode once,
                              reported or held back by the one-report-a-second limit; 0 while
                              stall reports are off */
    uint64_t reserved[2];      /* zero; later versions' counters (the struct keeps its size) */
} weft_stats;
/* Read the runtime's counters, summed over workers (approximate while running).
 * 0, WEFT_EINVAL (NULL), WEFT_ENORUNTIME. */
WEFT_EXTERN int weft_stats_get(weft_stats *out);
/* Print every coroutine (id, name, state, last worker, how many times it was switched to
 * (runs=), what it waits on and for how long). */
WEFT_EXTERN int weft_dump(FILE *out);

#ifdef __cplusplus
}
#endif
#endif
