/* SPDX-License-Identifier: MIT */
/* Boost.Context raw context-switch peer (peer=boost-fcontext) of the weft
 * `switch` workload: the main context and one coroutine on a 64 KiB malloc'd
 * stack made with make_fcontext call jump_fcontext at each other. N round
 * trips = 2N one-way switches; metric ns_per_switch = elapsed / (2N).
 *
 * Usage: boost_context switch [N]   (N defaults to 10,000,000)
 * Build: gcc -O2 boost_context.c -o boost_context -lboost_context
 *
 * The fcontext functions are the assembly entry points exported by
 * libboost_context (C-compatible ABI); they are declared here by hand. */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

typedef void *fcontext_t;
typedef struct {
    fcontext_t fctx;
    void *data;
} transfer_t;

extern transfer_t jump_fcontext(fcontext_t const to, void *vp);
extern fcontext_t make_fcontext(void *sp, size_t size, void (*fn)(transfer_t));

#define STACK_SIZE (64 * 1024)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return ru.ru_maxrss;
}

#include "peer_cost.h" /* mark(), paid(n) */

/* The coroutine: answer every jump with a jump back to whoever jumped. */
static void coro_fn(transfer_t t)
{
    for (;;)
        t = jump_fcontext(t.fctx, NULL);
}

int main(int argc, char **argv)
{
    long n = 10000000;
    if (argc < 2 || strcmp(argv[1], "switch") != 0) {
        fprintf(stderr, "usage: boost_context switch [N]\n");
        return 2;
    }
    if (argc >= 3) {
        char *end;
        n = strtol(argv[2], &end, 10);
        if (*end || n <= 0) {
            fprintf(stderr, "bad N\n");
            return 2;
        }
    }
    char *stack = malloc(STACK_SIZE);
    if (!stack)
        return 1;
    memset(stack, 0, STACK_SIZE); /* touch it before timing */
    fcontext_t ctx = make_fcontext(stack + STACK_SIZE, STACK_SIZE, coro_fn);

    /* Warm-up (also starts the coroutine). */
    for (long i = 0; i < 10000; i++)
        ctx = jump_fcontext(ctx, NULL).fctx;

    mark();
    double t0 = now_s();
    for (long i = 0; i < n; i++)
        ctx = jump_fcontext(ctx, NULL).fctx;
    double el = now_s() - t0;

    printf("workload=switch peer=boost-fcontext n=%ld ns_per_switch=%.2f %s peak_rss_kb=%ld\n", n,
           el * 1e9 / (2.0 * n), paid(n), peak_rss_kb());
    return 0; /* the coroutine's stack is never unwound: fine, we exit */
}
