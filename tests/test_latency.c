/* SPDX-License-Identifier: MIT */
/* test_latency.c — a unit test of floor 1 (objects and queues): the scheduling-latency
 * histogram of latency.h alone — no runtime.
 *
 * Checked: every value lies in its bucket (at most the bucket's upper bound, above the
 * previous bucket's), the bound is within 12.5% of the value, buckets grow with the value,
 * huge and negative values land in the end buckets; percentiles of known counts (empty,
 * one sample, a spread), and the single-writer record. */
#include "latency.h"

#include "harness.h"

#include <stdlib.h>
#include <string.h>

static long checks;

static void check_value(int64_t v)
{
    int b = weft__lat_bucket(v);
    CHECK(b >= 0 && b < WEFT__LAT_BUCKETS);
    int64_t hi = weft__lat_upper(b);
    if (b < WEFT__LAT_BUCKETS - 1) {
        CHECK(v <= hi);
        CHECK((double)hi <= (double)v * 1.125 + 1);
    }
    if (b > 0 && v > 0)
        CHECK(v > weft__lat_upper(b - 1));
}

int main(void)
{
    for (int64_t v = 0; v < 100000; v++)
        check_value(v);
    for (int64_t v = 100000; v < ((int64_t)1 << 42); v = v * 17 / 16 + 1)
        check_value(v);
    for (int e = 3; e < 42; e++) { /* each power of two, and either side */
        check_value(((int64_t)1 << e) - 1);
        check_value((int64_t)1 << e);
        check_value(((int64_t)1 << e) + 1);
    }
    int prev = -1;
    for (int64_t v = 1; v < ((int64_t)1 << 50); v *= 3) {
        int b = weft__lat_bucket(v);
        CHECK(b >= prev);
        prev = b;
    }
    CHECK_EQ(weft__lat_bucket(-5), 0);
    CHECK_EQ(weft__lat_bucket(INT64_MAX), WEFT__LAT_BUCKETS - 1);
    for (int b = 1; b < WEFT__LAT_BUCKETS; b++)
        CHECK(weft__lat_upper(b) > weft__lat_upper(b - 1));

    /* Percentiles. */
    static uint64_t counts[WEFT__LAT_BUCKETS];
    static const int pm[5] = {500, 900, 990, 999, 1000};
    int64_t out[5];
    CHECK_EQ(weft__lat_percentiles(counts, pm, out, 5), 0);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(out[i], 0);
    counts[weft__lat_bucket(1000)] = 1; /* one sample: every percentile is its bucket */
    CHECK_EQ(weft__lat_percentiles(counts, pm, out, 5), 1);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(out[i], weft__lat_upper(weft__lat_bucket(1000)));
    /* 1000 samples: 1..1000 us, one each. p50 is the 500th (500 us), p90 the 900th, p99 the
     * 990th, p99.9 the 999th, max the 1000th — each within its bucket's 12.5%. */
    memset(counts, 0, sizeof counts);
    for (int i = 1; i <= 1000; i++)
        counts[weft__lat_bucket((int64_t)i * 1000)]++;
    CHECK_EQ(weft__lat_percentiles(counts, pm, out, 5), 1000);
    static const int64_t want[5] = {500000, 900000, 990000, 999000, 1000000};
    for (int i = 0; i < 5; i++) {
        CHECK(out[i] >= want[i]);
        CHECK((double)out[i] <= (double)want[i] * 1.125 + 1);
    }

    /* Recording. */
    struct weft__lat_hist *h = calloc(1, sizeof *h);
    ASSERT(h);
    for (int i = 0; i < 10; i++)
        weft__lat_record(h, 12345);
    weft__lat_record(h, -1);
    CHECK_EQ(atomic_load(&h->n[weft__lat_bucket(12345)]), 10);
    CHECK_EQ(atomic_load(&h->n[0]), 1);
    free(h);
    TEST_PASS("test_latency", checks);
    return 0;
}
