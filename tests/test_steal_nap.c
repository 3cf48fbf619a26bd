/* SPDX-License-Identifier: MIT */
/* test_steal_nap.c — sched.c's "Stealing that pays", observed in a running runtime with two
 * workers (narrow mode off: WEFT_NARROW=0). Links the static library and reads the workers'
 * nap counters (worker.h n_naps), which weft_stats does not report.
 *
 * Checked:
 *  - tiny stolen batches earn naps: one coroutine spawns tiny tasks (each adds to a counter
 *    and ends) without ever parking; the other worker steals batches of them, and since
 *    none parks and each runs far below the threshold, it naps. The event waited for: three
 *    naps counted (before the change nothing napped, and the test fails at its deadline).
 *  - a nap does not keep work from a thief for good: right after, two coroutines that can
 *    only finish together (each spins until both are running) — the napping worker must
 *    wake and steal the second while the first holds worker 0.
 *  - with $WEFT_STEAL_PAYS_NS=0 the same spawning earns no nap while the other worker
 *    steals (the event waited for: 20 steals).
 * The first run sets the threshold to 100 us per stolen task (the default is 1 us): sanitized
 * and emulated builds run a tiny task in more than 1 us, and they must exercise the naps too.
 * Deadlines are safety nets: each wait fails the test after 20 s. Under $WEFT_DEBUG_MIGRATE
 * every spawn is posted to the other worker (nothing is stolen): the checks are skipped. */
#define _GNU_SOURCE
#include "common.h"
#include "worker.h"

#include "harness.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <weft.h>

#define DEADLINE_NS WEFT_SEC(20)

static _Atomic long checks;
static _Atomic long tiny_done;
static _Atomic int running_now;
static long spawned;

static uint64_t sum(size_t off)
{
    uint64_t n = 0;
    for (int i = 0; i < weft__rt->nworkers; i++)
        n += atomic_load_explicit((_Atomic uint64_t *)((char *)weft__rt->workers[i] + off),
                                  memory_order_relaxed);
    return n;
}
#define NAPS() sum(offsetof(struct weft__worker, n_naps))
#define STEALS() sum(offsetof(struct weft__worker, n_steals))

static void *tiny(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&tiny_done, 1, memory_order_relaxed);
    return NULL;
}

/* Spawn tiny tasks in bursts until done(naps, steals since the start) or the deadline; then
 * wait for them all and say what happened. *naps0: the nap count at the start. */
static bool spawn_until(const char *label, bool (*done)(uint64_t, uint64_t), uint64_t *naps0)
{
    uint64_t n0 = NAPS(), s0 = STEALS();
    *naps0 = n0;
    int64_t until = weft_now() + DEADLINE_NS;
    bool reached;
    while (!(reached = done(NAPS() - n0, STEALS() - s0)) && weft_now() < until)
        for (int i = 0; i < 256; i++) {
            ASSERT_EQ(weft_spawn(NULL, tiny, NULL), 0);
            spawned++;
        }
    until = weft_now() + DEADLINE_NS;
    while (atomic_load(&tiny_done) != spawned && weft_now() < until)
        weft_yield();
    CHECK_EQ(atomic_load(&tiny_done), spawned);
    printf("%s: %ld tiny tasks spawned, %llu steals, %llu naps\n", label, spawned,
           (unsigned long long)(STEALS() - s0), (unsigned long long)(NAPS() - n0));
    return reached;
}

static bool three_naps(uint64_t naps, uint64_t steals)
{
    (void)steals;
    return naps >= 3;
}

static bool twenty_steals(uint64_t naps, uint64_t steals)
{
    (void)naps;
    return steals >= 20;
}

/* Finishes only once both of the pair run at the same moment (on the two workers). */
static void *pair(void *arg)
{
    (void)arg;
    atomic_fetch_add(&running_now, 1);
    int64_t until = weft_now() + DEADLINE_NS;
    while (atomic_load(&running_now) < 2 && weft_now() < until)
        weft__cpu_relax();
    return (void *)(intptr_t)(atomic_load(&running_now) >= 2);
}

static int with_naps(void *arg)
{
    (void)arg;
    if (getenv("WEFT_DEBUG_MIGRATE")) {
        printf("WEFT_DEBUG_MIGRATE: nothing is stolen, checks skipped\n");
        return 0;
    }
    uint64_t n0;
    CHECK(spawn_until("naps on", three_naps, &n0));

    weft_task a, b;
    void *ra = NULL, *rb = NULL;
    ASSERT_EQ(weft_spawn(&a, pair, NULL), 0);
    ASSERT_EQ(weft_spawn(&b, pair, NULL), 0);
    ASSERT_EQ(weft_join(a, &ra), 0);
    ASSERT_EQ(weft_join(b, &rb), 0);
    CHECK(ra == (void *)1 && rb == (void *)1); /* the napper took the second of the pair */
    return 0;
}

static int without_naps(void *arg)
{
    (void)arg;
    if (getenv("WEFT_DEBUG_MIGRATE"))
        return 0;
    uint64_t n0;
    CHECK(spawn_until("naps off", twenty_steals, &n0));
    CHECK_EQ(NAPS(), n0);
    return 0;
}

int main(void)
{
    setenv("WEFT_NARROW", "0", 1);
    weft_config two = {.threads = 2};
    setenv("WEFT_STEAL_PAYS_NS", "100000", 1);
    ASSERT_EQ(weft_run(with_naps, NULL, &two), 0);
    setenv("WEFT_STEAL_PAYS_NS", "0", 1);
    spawned = 0;
    atomic_store(&tiny_done, 0);
    ASSERT_EQ(weft_run(without_naps, NULL, &two), 0);
    TEST_PASS("test_steal_nap", checks);
    return 0;
}
