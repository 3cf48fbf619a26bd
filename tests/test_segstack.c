/* SPDX-License-Identifier: MIT */
/* test_segstack.c — segmented stacks (built only with -DWEFT_SEGMENTED_STACKS=ON): a
 * coroutine that starts on a 2 KiB stack recurses megabytes deep by growing; many coroutines
 * grow and shrink at once across workers, switching and migrating while on added segments,
 * with pointers into their first segment staying valid; coroutines that only call weft do
 * not grow; code built without split stacks still gets its overflow reported; and an unsplit
 * function with a large frame that fits its stack runs (gold leaves its prologue alone). */
#include "harness.h"
#include <weft.h>
#include <weft/debug.h>

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#if !defined(WEFT_SEGMENTED_STACKS)
#error "test_segstack is built for segmented-stack builds only"
#endif

static _Atomic long checks;

/* Sum of 1..n computed with one ~256-byte frame per level; at the bottom it writes through
 * `anchor` (a pointer into the caller's first segment) and may yield. */
static long deep_sum(long n, long *anchor, int yield_at_bottom)
{
    volatile char pad[200];
    pad[0] = (char)n;
    pad[199] = (char)(n >> 8);
    if (n == 0) {
        *anchor += 1;
        if (yield_at_bottom)
            weft_yield(); /* a switch (maybe a migration) while on an added segment */
        return 0;
    }
    long r = deep_sum(n - 1, anchor, yield_at_bottom) + n;
    if (pad[0] != (char)n || pad[199] != (char)(n >> 8))
        abort(); /* a frame was clobbered */
    return r;
}

static void *one_deep(void *arg)
{
    long n = (long)arg, anchor = 0;
    long r = deep_sum(n, &anchor, 0);
    ASSERT_EQ(anchor, 1);
    return (void *)r;
}

static _Atomic long rounds_done;
static void *grow_shrink(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 1;
    long anchor = 0; /* lives in the first segment; written from deep frames */
    long rounds = 20;
    for (long i = 0; i < rounds; i++) {
        seed = seed * 1103515245u + 12345u;
        long depth = (long)(seed >> 8) % 3000;
        ASSERT_EQ(deep_sum(depth, &anchor, 1), depth * (depth + 1) / 2);
        weft_yield(); /* shrunk back to the first segment: switch there too */
    }
    ASSERT_EQ(anchor, rounds);
    atomic_fetch_add(&rounds_done, rounds);
    return NULL;
}

static weft_chan *gate;
static weft_wg wg;
static _Atomic long weft_only_bad;
/* No libc here (not even the ASSERT macros' fprintf/abort): a function that may call unsplit
 * code asks for a large frame at its entry, which is exactly what this part checks weft's
 * own calls do not do. Results are counted and checked by main. */
static void *weft_only(void *arg)
{
    (void)arg;
    int bad = weft_chan_recv(gate, NULL) != WEFT_ECLOSED;
    bad |= weft_yield() != 0;
    bad |= weft_sleep(WEFT_MSEC(1)) != 0;
    bad |= weft_sleep_until(weft_now() - 1) != 0;
    if (bad)
        atomic_fetch_add(&weft_only_bad, 1);
    weft_wg_done(&wg);
    return NULL;
}

static int main_co(void *arg)
{
    (void)arg;
    weft_stats s0, s1;

    /* 1. Far deeper than the 2 KiB it starts with: 20,000 frames of ~256 bytes (~5 MB). */
    ASSERT_EQ(weft_stats_get(&s0), 0);
    weft_task t;
    void *r;
    ASSERT_EQ(weft_spawn(&t, one_deep, (void *)20000L), 0);
    CHECK_EQ(weft_join(t, &r), 0);
    CHECK_EQ((long)r, 20000L * 20001 / 2);
    /* Counted in the finished coroutine's after-exit step, which may run a moment after
     * its joiner was woken (on another worker): wait for it, bounded. */
    WAIT_FOR(weft_stats_get(&s1) == 0 && s1.stacks_grown - s0.stacks_grown >= 1);
    CHECK_GE(s1.stacks_grown - s0.stacks_grown, 1);

    /* 2. Many at once, growing and shrinking, switching on their segments. */
    long n = test_scaled(200);
    weft_task *ts = calloc((size_t)n, sizeof *ts);
    ASSERT(ts != NULL);
    for (long i = 0; i < n; i++)
        ASSERT_EQ(weft_spawn(&ts[i], grow_shrink, (void *)i), 0);
    for (long i = 0; i < n; i++)
        CHECK_EQ(weft_join(ts[i], NULL), 0);
    CHECK_EQ(atomic_load(&rounds_done), n * 20);
    free(ts);

    /* 3. Coroutines that only wait in weft stay in their first 2 KiB: nothing grows. */
    long m = test_scaled(2000);
    /* Part 2's coroutines are counted in their after-exit steps: let them all finish first. */
    WAIT_FOR(weft_stats_get(&s0) == 0 && s0.alive <= 1);
    ASSERT_EQ(weft_chan_create(&gate, 0, 0), 0);
    weft_wg_init(&wg);
    weft_wg_add(&wg, m);
    for (long i = 0; i < m; i++)
        ASSERT_EQ(weft_spawn(NULL, weft_only, NULL), 0);
    weft_sleep(WEFT_MSEC(5));
    weft_chan_close(gate);
    weft_wg_wait(&wg);
    WAIT_FOR(weft_stats_get(&s1) == 0 && s1.alive <= 1);
    CHECK_EQ(atomic_load(&weft_only_bad), 0);
    CHECK_EQ(s1.stacks_grown - s0.stacks_grown, 0);
    weft_chan_unref(gate);
    return 0;
}

/* 4. Unsplit code cannot grow: its overflow is still reported. */
__attribute__((no_split_stack)) static void *unsplit_recurse(void *arg)
{
    volatile char pad[200];
    long n = (long)arg;
    pad[0] = (char)n;
    if (n < 100000)
        unsplit_recurse((void *)(n + 1));
    return (void *)(long)pad[0];
}

static void expect_overflow_report(void)
{
    char buf[4096];
    struct test_overflow o = {unsplit_recurse, 16384, "unsplit", NULL, NULL};
    int status = test_overflow_in_child(&o, buf, sizeof buf);
    if (!WIFSIGNALED(status) || !strstr(buf, "\"unsplit\" (stack 16384 bytes)"))
        fprintf(stderr, "child status %#x, output:\n%s\n", status, buf);
    CHECK(WIFSIGNALED(status));
    CHECK_EQ(WTERMSIG(status), SIGABRT);
    CHECK(strstr(buf, "weft: stack overflow in coroutine ") != NULL);
    CHECK(strstr(buf, "\"unsplit\" (stack 16384 bytes)") != NULL);
}

/* 5. An unsplit function whose frame fits its stack (32 KiB of 64), large enough that
 * -fstack-clash-protection probes it in a loop, calling unsplit code (memset): it runs and
 * returns, with every guard kind. Its prologue must be left alone by gold, which takes a
 * leading `lea -N(%rsp),%r11` (the probe loop's bound) for a split-stack check and moves it
 * 1 MiB down (CMakeLists.txt): the frame then probed a megabyte below its stack — a false
 * overflow report behind a guard zone, a return into garbage with a canary. */
#define FITTING_FRAME (32 * 1024)
__attribute__((no_split_stack, noinline)) static long fitting_frame(int seed)
{
    char buf[FITTING_FRAME];
    memset(buf, seed, sizeof buf);
    __asm__ volatile("" : : "r"(buf) : "memory"); /* the stores happen */
    return buf[0] + buf[sizeof buf - 1];
}

/* Unsplit too, so the frame lands on the coroutine's own first segment, right above its guard
 * zone or canary (a split caller that may reach libc would move to a 1 MiB segment first). */
__attribute__((no_split_stack)) static void *fitting_entry(void *arg)
{
    return (void *)fitting_frame((int)(long)arg);
}

static int fitting_main(void *arg)
{
    (void)arg;
    weft_spawn_opts o = {.stack_size = WEFT_STACK_DEFAULT, .name = "fitting"};
    weft_task t;
    void *r = NULL;
    ASSERT_EQ(weft_spawn_ex(&t, fitting_entry, (void *)3L, &o), 0);
    ASSERT_EQ(weft_join(t, &r), 0);
    return (long)r == 6 ? 0 : 1;
}

static void fitting_child(void *arg)
{
    setenv("WEFT_STACK_GUARD", (const char *)arg, 1);
    weft_config one = {.threads = 1};
    _exit(weft_run(fitting_main, NULL, &one) == 0 ? 0 : 3);
}

static void expect_fitting_frame_runs(void)
{
    static const char *const modes[] = {"madvise", "mprotect", "canary"};
    for (int m = 0; m < 3; m++) {
        char buf[4096];
        int status = test_child_stderr(fitting_child, (void *)modes[m], buf, sizeof buf);
        bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!ok)
            fprintf(stderr, "%d KiB unsplit frame (%s): child status %#x, output:\n%s\n",
                    FITTING_FRAME / 1024, modes[m], status, buf);
        CHECK(ok);
    }
}

int main(void)
{
    weft_config two = {.threads = 2};
    ASSERT_EQ(weft_run(main_co, NULL, &two), 0);
    expect_overflow_report();
    expect_fitting_frame_runs();
    TEST_PASS("test_segstack", checks);
    return 0;
}
