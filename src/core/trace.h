/* SPDX-License-Identifier: MIT */
/* trace.h — floor 1 (objects): the execution trace (weft/trace.h, $WEFT_TRACE): what the
 * scheduler's seams record, and the one-line hook they record it with.
 *
 * The hook. Every emission point is `WEFT__TRACE(worker, kind, a, b, x)`: one relaxed load
 * of the global flag weft__trace_on and one branch, predicted not taken (the flag is false
 * unless a trace runs), so a run without a trace pays a load of a read-mostly line and a
 * never-taken jump per event. The arguments are evaluated only when the flag is set.
 *
 * This room knows nothing of workers except an index: `worker` is the index of the calling
 * thread's worker (the thread that owns that worker's buffer: only it may pass it), or -1
 * on any other thread (a plain thread, the blocking pool, the watchdog), whose events go
 * through one locked buffer. Events are 32-byte records stamped with the CPU's tick
 * counter; the file format is in trace.c. */
#ifndef WEFT_TRACE_INTERNAL_H
#define WEFT_TRACE_INTERNAL_H

#include "common.h"

/* Event kinds (the file stores these numbers; scripts/weft-trace.py reads them). */
enum weft__trace_kind {
    WEFT__TR_META = 0,         /* x: number of workers, a: CLOCK_MONOTONIC ns at t (first) */
    WEFT__TR_SPAWN = 1,        /* a: child id, b: parent id (0: none); a name block follows */
    WEFT__TR_RUN = 2,          /* a: coroutine starts (or resumes) running on this worker */
    WEFT__TR_YIELD = 3,        /* a: gives the worker up, stays runnable */
    WEFT__TR_PARK = 4,         /* a: parks; x: enum weft__trace_wait */
    WEFT__TR_EXIT = 5,         /* a: finished */
    WEFT__TR_WAKE = 6,         /* a: made runnable; b: waker coroutine (0: none);
                                 x: enum weft__trace_waker */
    WEFT__TR_HOP = 7,          /* a: moves to worker x (weft__hop) */
    WEFT__TR_STEAL = 8,        /* x: victim worker; b: coroutines taken */
    WEFT__TR_FD_WAIT = 9,      /* a: waits for fd b, events x (WEFT_READABLE|WEFT_WRITABLE) */
    WEFT__TR_FD_READY = 10,    /* a: its fd b is ready (the loop's callback, then a wake) */
    WEFT__TR_TIMER = 11,       /* a: its deadline timer fired (then a wake) */
    WEFT__TR_BLOCK_START = 12, /* a: a blocking job of coroutine a starts on a pool thread */
    WEFT__TR_BLOCK_END = 13,   /* a: ... and ends */
    WEFT__TR_STALL = 14,       /* a: coroutine reported (0: scheduler), b: ns, x: worker */
    WEFT__TR_IDLE = 15,        /* the worker sleeps in its loop */
    WEFT__TR_IDLE_END = 16,    /* ... and wakes */
    /* 17: the file's FNAME (trace.c) */
    WEFT__TR_NAME = 18, /* a: named (weft_set_name) or its real entry known (a group
                                 member's fn); a name block follows, as SPAWN's */
    WEFT__TR_END = 19,  /* a: CLOCK_MONOTONIC ns at t (last: with META, the clock) */
    WEFT__TR_NKINDS
};
/* What a park waits on (derived from the wait's description, weft__wait_arm's `what`). */
enum weft__trace_wait {
    WEFT__TW_OTHER,
    WEFT__TW_CHAN,
    WEFT__TW_MUTEX,
    WEFT__TW_COND,
    WEFT__TW_SEMAPHORE,
    WEFT__TW_SLEEP,
    WEFT__TW_SELECT,
    WEFT__TW_FD,
    WEFT__TW_JOIN,
    WEFT__TW_BLOCKING,
    WEFT__TW_GROUP,
};
/* Who made a coroutine runnable. */
enum weft__trace_waker {
    WEFT__TK_CORO = 0,   /* the coroutine b, running on this worker */
    WEFT__TK_LOOP = 1,   /* this worker's scheduler: a timer, an fd, a message (the event
                           just before on this worker says which) */
    WEFT__TK_THREAD = 2, /* a thread that is no worker (a plain thread, the blocking pool) */
};

/* Set while a trace records (trace.c). Written under the trace lock; read relaxed by the
 * hook: a stale value only makes an event fall just inside or outside a start/stop. */
extern _Atomic bool weft__trace_on;

void weft__trace_emit(int worker, uint32_t kind, uint64_t a, uint64_t b, int32_t x);
/* SPAWN plus its name block: `name` if not empty, else the entry function's symbol. */
void weft__trace_spawn(int worker, uint64_t child, uint64_t parent, const char *name,
                       const void *fn);
/* NAME plus its name block (as weft__trace_spawn). */
void weft__trace_name(int worker, uint64_t co, const char *name, const void *fn);
/* The wait kind of a description given to weft__wait_arm (NULL: other). */
int weft__trace_wait_kind(const char *what);

#define WEFT__TRACE(worker, kind, a, b, x)                                                         \
    do {                                                                                           \
        if (WEFT_UNLIKELY(atomic_load_explicit(&weft__trace_on, memory_order_relaxed)))            \
            weft__trace_emit((worker), (kind), (a), (b), (x));                                     \
    } while (0)
/* The same for an event about coroutine `co` (a: its id, read relaxed: it is the caller's own
 * or one it holds; a stale id only mislabels the event). */
#define WEFT__TRACE_CO(worker, kind, co, b, x)                                                     \
    WEFT__TRACE(worker, kind, atomic_load_explicit(&(co)->id, memory_order_relaxed), b, x)
/* For an emission that needs a few lines: `if (WEFT__TRACING()) out_of_line_fn(...);` */
#define WEFT__TRACING() WEFT_UNLIKELY(atomic_load_explicit(&weft__trace_on, memory_order_relaxed))
#define WEFT__TRACE_SPAWN(worker, child, parent, name, fn)                                         \
    do {                                                                                           \
        if (WEFT_UNLIKELY(atomic_load_explicit(&weft__trace_on, memory_order_relaxed)))            \
            weft__trace_spawn((worker), (child), (parent), (name), (fn));                          \
    } while (0)

#define WEFT__TRACE_NAME(worker, co, name, fn)                                                     \
    do {                                                                                           \
        if (WEFT_UNLIKELY(atomic_load_explicit(&weft__trace_on, memory_order_relaxed)))            \
            weft__trace_name((worker), (co), (name), (fn));                                        \
    } while (0)

/* weft_run's seams (trace.c): after the workers exist, before main is queued — starts the
 * trace $WEFT_TRACE names, or one weft_trace_start armed before the run; and after every
 * worker and pool thread is gone — ends the trace (flushes every buffer, closes the file). */
void weft__trace_run_begin(int nworkers);
void weft__trace_run_end(void);

#endif
