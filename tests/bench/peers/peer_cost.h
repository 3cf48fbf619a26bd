/* SPDX-License-Identifier: MIT */
/* peer_cost.h — what a peer's timed part paid, for the C and C++ peers (included by their
 * single-file builds, no library): mark() at the start of the timed part, paid(n) when printing
 * its result line gives "faults_per_task=<minor page faults / n> ctx_switches=<voluntary +
 * involuntary>" from getrusage(RUSAGE_SELF) deltas (all the process's threads). One thread
 * marks and prints: mark_ru and paid's buffer are not shared between threads. */
#ifndef WEFT_BENCH_PEER_COST_H
#define WEFT_BENCH_PEER_COST_H

#include <stdio.h>
#include <sys/resource.h>

static struct rusage mark_ru;

static void mark(void)
{
    getrusage(RUSAGE_SELF, &mark_ru);
}

static const char *paid(long n)
{
    static char buf[96];
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    snprintf(buf, sizeof buf, "faults_per_task=%.4f ctx_switches=%ld",
             (double)(ru.ru_minflt - mark_ru.ru_minflt) / (double)(n > 0 ? n : 1),
             (ru.ru_nvcsw - mark_ru.ru_nvcsw) + (ru.ru_nivcsw - mark_ru.ru_nivcsw));
    return buf;
}

#endif
