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
    int64_t sched_latency_p99_ns; /* 99% of the sampled wake-ups and spawns since weft_run
                              started waited at most this long between becoming runnable and
                              running (weft_sched_latency_get: the other percentiles, and a
                              window); 0 before the first sample */
    uint64_t reserved[1];         /* zero; later versions' counters (the struct keeps its size) */
} weft_stats;
/* Read the runtime's counters, summed over workers (approximate while running).
 * 0, WEFT_EINVAL (NULL), WEFT_ENORUNTIME. */
WEFT_EXTERN int weft_stats_get(weft_stats *out);
/* Print every coroutine (id, name, state, last worker, how many times it was switched to
 * (runs=), how long it held a worker while CPU accounting is on (cpu=, milliseconds; see
 * weft_cputime), what it waits on and for how long). */
WEFT_EXTERN int weft_dump(FILE *out);

/* Scheduling latency: how long coroutines stayed runnable — woken (a channel, a timer, a
 * descriptor, a lock, a join...) or spawned — before a worker switched to them (Go's
 * /sched/latencies). Measured on one such event in 16 (a clock read each), into a
 * histogram per worker whose bucket bounds are within 12.5% of the values they hold; each
 * percentile is reported as the upper bound of its bucket. Not measured under simulation
 * (WEFT_SEED). A yield is not counted (the coroutine asked to wait). */
typedef struct weft_sched_latency {
    uint64_t samples; /* events measured in the window */
    int64_t p50_ns;
    int64_t p90_ns;
    int64_t p99_ns;
    int64_t p999_ns;
    int64_t max_ns; /* the largest sample's bucket bound */
    uint64_t reserved[2];
} weft_sched_latency;
/* The percentiles over the window: since weft_run started, or since the last call with
 * reset = 1 (which then starts a new window; its own answer is still the old window's).
 * 0, WEFT_EINVAL (NULL, reset not 0 or 1), WEFT_ENORUNTIME. Any thread or coroutine. */
WEFT_EXTERN int weft_sched_latency_get(weft_sched_latency *out, int reset);

/* CPU accounting per coroutine: the time each coroutine held a worker — from the switch to
 * it to the switch away, including any system call it made there — shown by weft_dump as
 * cpu=. Off by default: when on, every switch reads the clock (about 20 ns); when off, a
 * switch pays one predictable branch. on: 1 starts (totals kept from earlier periods), 0
 * stops. Also on from the start with $WEFT_CPUTIME=1. Returns the previous setting (0 or 1),
 * or WEFT_EINVAL (on not 0 or 1). Callable without a runtime (the setting outlives runs). */
WEFT_EXTERN int weft_cputime(int on);

#ifdef __cplusplus
}
#endif
#endif
