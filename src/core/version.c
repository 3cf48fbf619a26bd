/* SPDX-License-Identifier: MIT */
/* version.c — floor 0 (platform): weft_version() and the ABI rules the public structs follow.
 *
 * The library's version comes from the CMake project version (weft/version.h is generated
 * from it). The ABI policy (README "Versions and ABI"): the structs a program fills or
 * receives — weft_config, weft_spawn_opts, weft_group_opts, weft_stats, weft_sched_latency —
 * keep their size across versions;
 * a later field takes its room from the struct's `reserved` words, which the program leaves
 * zero and weft_run / weft_spawn_ex refuse when they are not (so a zero there can always
 * mean "the default"). The size checks below stop a field from being added any other way:
 * a build that changes a size fails here, and the SONAME must then change. */
#include "common.h"

#include <stddef.h>
#include <string.h>

#if UINTPTR_MAX == UINT64_MAX /* the sizes of the LP64 ABIs weft supports */
_Static_assert(sizeof(weft_config) == 128,
               "weft_config changed size: take a new field's room from reserved[] (ABI)");
/* Fields added later start past the old last field's padding (an old binary may leave garbage
 * in padding), in what were reserved words. */
_Static_assert(offsetof(weft_config, stall_ms) == 32 && offsetof(weft_config, deadlock) == 36 &&
                   offsetof(weft_config, seed) == 40 && offsetof(weft_config, reserved) == 48,
               "weft_config: new fields go where reserved[] was (ABI)");
_Static_assert(sizeof(weft_spawn_opts) == 64,
               "weft_spawn_opts changed size: take a new field's room from reserved[] (ABI)");
_Static_assert(sizeof(weft_sched_latency) == 64,
               "weft_sched_latency changed size: take a new field's room from reserved[] (ABI)");
_Static_assert(sizeof(weft_group_opts) == 64,
               "weft_group_opts changed size: take a new option's room from reserved[] (ABI)");
_Static_assert(sizeof(weft_stats) == 128,
               "weft_stats changed size: take a new counter's room from reserved[] (ABI)");
_Static_assert(offsetof(weft_stats, blocking_queued) == 88 && offsetof(weft_stats, stalls) == 104 &&
                   offsetof(weft_stats, sched_latency_p99_ns) == 112 &&
                   offsetof(weft_stats, reserved) == 120,
               "weft_stats: new counters go where reserved[] was (ABI)");
#endif

unsigned weft_version(void)
{
    return WEFT_VERSION;
}

const char *weft_version_string(void)
{
    return WEFT_VERSION_STRING;
}

bool weft__reserved_zero(const uint64_t *reserved, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (reserved[i] != 0)
            return false;
    return true;
}
