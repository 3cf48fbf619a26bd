/* SPDX-License-Identifier: MIT */
/* latency.c — floor 1 (objects and queues): the scheduling-latency histogram's bucket bounds
 * and percentiles (latency.h). */
#include "latency.h"

int64_t weft__lat_upper(int b)
{
    if (b < 8)
        return b;
    int e = b / WEFT__LAT_SUB + 2; /* the power of two the bucket lies in */
    int sub = b % WEFT__LAT_SUB;
    int64_t width = (int64_t)1 << (e - 3);
    return ((int64_t)(WEFT__LAT_SUB + sub) << (e - 3)) + width - 1;
}

uint64_t weft__lat_percentiles(const uint64_t *counts, const int *per_mille, int64_t *out, int n)
{
    uint64_t total = 0;
    for (int b = 0; b < WEFT__LAT_BUCKETS; b++)
        total += counts[b];
    for (int i = 0; i < n; i++) {
        out[i] = 0;
        if (!total)
            continue;
        /* the smallest bucket whose cumulative count reaches ceil(total * p / 1000) (>= 1) */
        uint64_t want = (total * (uint64_t)per_mille[i] + 999) / 1000;
        if (!want)
            want = 1;
        uint64_t seen = 0;
        for (int b = 0; b < WEFT__LAT_BUCKETS; b++) {
            seen += counts[b];
            if (seen >= want) {
                out[i] = weft__lat_upper(b);
                break;
            }
        }
    }
    return total;
}
