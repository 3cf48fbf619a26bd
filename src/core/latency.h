/* SPDX-License-Identifier: MIT */
/* latency.h — floor 1 (objects and queues): the scheduling-latency histogram — how long a
 * coroutine stayed runnable (woken or spawned) before a worker switched to it.
 *
 * Sampled: one wake-up or spawn in WEFT__LAT_EVERY gets a timestamp (co->ready_at, the tick
 * counter, clock.h weft__ticks: no call, so it may run on any stack; virtual time would not
 * do, it does not pass while coroutines run); the worker that switches to it records the
 * difference here, in ticks; readers convert with weft__ns_per_tick. The rest pay an
 * increment and a branch where they become runnable, and a predictable branch where they are
 * switched to (sched.c).
 *
 * Buckets are log-linear: values below 8 ticks exact, then 8 buckets per power of two, so a
 * bucket's upper bound is within 12.5% of any value in it; values from 2^42 ticks (about 20
 * min at 3.5 GHz) on share the last bucket. One histogram per worker: written only by its
 * owner (single writer: a relaxed load and store, no read-modify-write), read relaxed by
 * weft_stats and weft_sched_latency_get from any thread — approximate while running, like
 * every statistic. */
#ifndef WEFT_LATENCY_H
#define WEFT_LATENCY_H

#include "common.h"

#include <stdatomic.h>
#include <stdint.h>

enum {
    WEFT__LAT_SUB = 8,                          /* buckets per power of two */
    WEFT__LAT_BUCKETS = 8 + WEFT__LAT_SUB * 39, /* up to 2^42 ticks */
    WEFT__LAT_EVERY = 16,                       /* one runnable event in 16 is sampled */
};

struct weft__lat_hist {
    _Atomic uint64_t n[WEFT__LAT_BUCKETS];
};

static inline int weft__lat_bucket(int64_t t)
{
    if (t < 8)
        return t < 0 ? 0 : (int)t;
    int e = 63 - __builtin_clzll((uint64_t)t); /* >= 3 */
    int b = (e - 2) * WEFT__LAT_SUB + (int)(((uint64_t)t >> (e - 3)) & (WEFT__LAT_SUB - 1));
    return b < WEFT__LAT_BUCKETS ? b : WEFT__LAT_BUCKETS - 1;
}

/* The largest value bucket b holds (the last bucket: its lower bound's octave's end). */
int64_t weft__lat_upper(int b);

/* Owner only (single writer). */
static inline void weft__lat_record(struct weft__lat_hist *h, int64_t t)
{
    _Atomic uint64_t *c = &h->n[weft__lat_bucket(t)];
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* Percentiles of counts[] (a summed snapshot): each the upper bound of the bucket where that
 * fraction of the samples is reached; 0 when there are none. per_mille: 500 = p50, 999 =
 * p99.9, 1000 = the largest bucket with samples. Returns the number of samples. */
uint64_t weft__lat_percentiles(const uint64_t *counts, const int *per_mille, int64_t *out, int n);

#endif
