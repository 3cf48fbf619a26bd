/* SPDX-License-Identifier: MIT */
/* test_smallstack.c — sub-page stacks (sizes below WEFT_STACK_SMALL): they are packed (a
 * 1 KiB stack reserves 1 KiB, not a page and a guard), every kind of wait works on them
 * across workers (the after-switch work and timer arming must stay off their stacks), a
 * pointer into one stays valid while another coroutine writes through it and the owner
 * migrates, $WEFT_STACK_SIZE sets the default (main keeps a full stack) but refuses a
 * sub-page one with a message (config.stack_size: WEFT_ESTACK), and an overflow is reported
 * rather than silent — naming the coroutine that overflowed, also when the parked coroutine
 * whose stack it ran over is the first to crash. */
#include "harness.h"
#include <weft.h>
#include <weft/debug.h>

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static _Atomic long checks;

/* Under ASan/TSan sub-page sizes are raised to 16 KiB (instrumented frames are larger), and
 * so with the ucontext backend (a ucontext_t at each stack's top): the packing figures are
 * checked in the other builds only. */
#if TEST_SCALE == 1 && !defined(WEFT_CONTEXT_UCONTEXT)
#define PACKED 1
#else
#define PACKED 0
#endif

static const weft_spawn_opts small = {.stack_size = 1024, .name = "small"};

/* ---- packing: N small coroutines parked at once ----------------------------------------- */

static weft_chan *gate;
static weft_wg parked_wg;
static _Atomic long woke;

static void *gated_sleeper(void *arg)
{
    (void)arg;
    ASSERT_EQ(weft_chan_recv(gate, NULL), WEFT_ECLOSED);
    ASSERT_EQ(weft_sleep(WEFT_MSEC(1)), 0);
    atomic_fetch_add(&woke, 1);
    weft_wg_done(&parked_wg);
    return NULL;
}

static int packing_main(void *arg)
{
    const weft_spawn_opts *o = arg;
    long n = test_scaled(20000);
    weft_stats before, during;
    ASSERT_EQ(weft_stats_get(&before), 0);
    ASSERT_EQ(weft_chan_create(&gate, 0, 0), 0);
    weft_wg_init(&parked_wg);
    weft_wg_add(&parked_wg, n);
    atomic_store(&woke, 0);
    for (long i = 0; i < n; i++)
        ASSERT_EQ(weft_spawn_ex(NULL, gated_sleeper, NULL, o), 0);
    /* Every one of them takes a stack as it runs and parks on the gate. */
    WAIT_FOR(weft_chan_len(gate) == 0 && weft_stats_get(&during) == 0 &&
             during.parks - before.parks >= (uint64_t)n);
    ASSERT_EQ(weft_stats_get(&during), 0);
    uint64_t reserved = during.stack_bytes - before.stack_bytes;
    printf("  %ld coroutines with %zu-byte stacks parked: %llu bytes of stacks reserved\n", n,
           o->stack_size, (unsigned long long)reserved);
    uint64_t per = (o->stack_size + 255) & ~(size_t)255; /* sub-page sizes round to 256 */
    /* `per` each, plus at most one partly used 2 MiB slab per worker: far below what
     * page-granular stacks would need (4 KiB + a guard page each). */
    if (PACKED)
        CHECK_LE(reserved, (uint64_t)n * per + (uint64_t)during.workers * (2u << 20));
    CHECK_GE(reserved, (uint64_t)n * per); /* the counter does count them */
    weft_chan_close(gate);
    weft_wg_wait(&parked_wg);
    CHECK_EQ(atomic_load(&woke), n);
    weft_chan_unref(gate);
    return 0;
}

/* ---- every wait on a small stack --------------------------------------------------------- */

static weft_chan *ping, *pong;
static weft_mutex mu;
static long shared_counter;

static void *yielder(void *arg)
{
    long n = (long)arg;
    for (long i = 0; i < n; i++)
        weft_yield();
    return (void *)n;
}

static void *echo(void *arg)
{
    long rounds = (long)arg, v;
    for (long i = 0; i < rounds; i++) {
        ASSERT_EQ(weft_chan_recv(ping, &v), 0);
        v++;
        ASSERT_EQ(weft_chan_send(pong, &v), 0);
    }
    return NULL;
}

static void *locker(void *arg)
{
    long n = (long)arg;
    for (long i = 0; i < n; i++) {
        ASSERT_EQ(weft_mutex_lock(&mu), 0);
        long v = shared_counter;
        weft_yield(); /* hold it across a switch: others park on the mutex */
        shared_counter = v + 1;
        weft_mutex_unlock(&mu);
    }
    return NULL;
}

static void *timeouts(void *arg)
{
    (void)arg;
    weft_chan *never;
    long v;
    ASSERT_EQ(weft_chan_create(&never, sizeof v, 0), 0);
    int64_t t0 = weft_now();
    CHECK_EQ(weft_chan_recv_until(never, &v, weft_after(WEFT_MSEC(2))), WEFT_ETIMEDOUT);
    CHECK_GE(weft_now() - t0, WEFT_MSEC(2)); /* never early */
    weft_case cs[1] = {{.ch = never, .op = WEFT_OP_RECV, .elem = &v}};
    CHECK_EQ(weft_select(cs, 1, weft_after(WEFT_MSEC(1))), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_sleep_until(weft_after(WEFT_USEC(100))), 0);
    weft_chan_unref(never);
    return NULL;
}

static void *sleep_forever(void *arg)
{
    (void)arg;
    return (void *)(long)weft_sleep(WEFT_SEC(3600));
}

/* The owner keeps a value on its (small) stack and hands its address to a helper; the helper
 * writes through the pointer while the owner is parked — and possibly moved to another
 * worker. The stack never moves, so the pointer stays valid. */
struct slot {
    long *where;
    weft_chan *done;
};
static void *writer(void *arg)
{
    struct slot *s = arg;
    *s->where = 4242;
    ASSERT_EQ(weft_chan_send(s->done, NULL), 0);
    return NULL;
}
static void *owner(void *arg)
{
    (void)arg;
    long value = 1;
    weft_chan *done;
    ASSERT_EQ(weft_chan_create(&done, 0, 0), 0);
    struct slot s = {&value, done};
    weft_task t;
    ASSERT_EQ(weft_spawn_ex(&t, writer, &s, &small), 0);
    ASSERT_EQ(weft_chan_recv(done, NULL), 0);
    ASSERT_EQ(value, 4242);
    ASSERT_EQ(weft_join(t, NULL), 0);
    weft_chan_unref(done);
    return (void *)value;
}

static int waits_main(void *arg)
{
    (void)arg;
    long rounds = ops_scaled(20000);
    weft_task ty[4], te, tl[4], tt, tf, to[8];
    ASSERT_EQ(weft_chan_create(&ping, sizeof(long), 0), 0);
    ASSERT_EQ(weft_chan_create(&pong, sizeof(long), 1), 0);
    weft_mutex_init(&mu);
    shared_counter = 0;
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(weft_spawn_ex(&ty[i], yielder, (void *)rounds, &small), 0);
    ASSERT_EQ(weft_spawn_ex(&te, echo, (void *)rounds, &small), 0);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(weft_spawn_ex(&tl[i], locker, (void *)(rounds / 10), &small), 0);
    /* A select with a deadline goes ~800 bytes deep (a channel wait ~600): 1.5 KiB. */
    weft_spawn_opts sel_size = {.stack_size = 1536, .name = "small-select"};
    ASSERT_EQ(weft_spawn_ex(&tt, timeouts, NULL, &sel_size), 0);
    ASSERT_EQ(weft_spawn_ex(&tf, sleep_forever, NULL, &small), 0);
    for (int i = 0; i < 8; i++)
        ASSERT_EQ(weft_spawn_ex(&to[i], owner, NULL, &small), 0);

    for (long i = 0; i < rounds; i++) {
        long v = i, r;
        ASSERT_EQ(weft_chan_send(ping, &v), 0);
        ASSERT_EQ(weft_chan_recv(pong, &r), 0);
        ASSERT_EQ(r, i + 1);
    }
    checks += rounds;
    void *res;
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(weft_join(ty[i], &res), 0);
        CHECK_EQ((long)res, rounds);
    }
    CHECK_EQ(weft_join(te, NULL), 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(weft_join(tl[i], NULL), 0);
    CHECK_EQ(shared_counter, 4 * (rounds / 10));
    CHECK_EQ(weft_join(tt, NULL), 0);
    /* Cancel one parked in a long sleep (its timer was armed off its stack). */
    weft_sleep(WEFT_MSEC(1));
    CHECK_EQ(weft_cancel(tf), 0);
    CHECK_EQ(weft_join(tf, &res), 0);
    CHECK_EQ((long)res, WEFT_ECANCELED);
    for (int i = 0; i < 8; i++) {
        CHECK_EQ(weft_join(to[i], &res), 0);
        CHECK_EQ((long)res, 4242);
    }
    weft_chan_unref(ping);
    weft_chan_unref(pong);
    return 0;
}

/* ---- $WEFT_STACK_SIZE ------------------------------------------------------------------- */

static void *deep_printf(void *arg)
{
    (void)arg;
    char buf[8192];
    snprintf(buf, sizeof buf, "%s %d %.3f", "main keeps a full stack", 42, 3.25);
    return (void *)strlen(buf);
}

static int env_main(void *arg)
{
    uint64_t per = (uint64_t)(uintptr_t)arg; /* the stack size expected per coroutine */
    /* main itself got a full stack: a libc call with an 8 KiB buffer works. */
    CHECK_GT((long)deep_printf(NULL), 10);
    weft_stats before, during;
    ASSERT_EQ(weft_stats_get(&before), 0);
    long n = test_scaled(4096);
    ASSERT_EQ(weft_chan_create(&gate, 0, 0), 0);
    weft_wg_init(&parked_wg);
    weft_wg_add(&parked_wg, n);
    atomic_store(&woke, 0);
    for (long i = 0; i < n; i++)
        ASSERT_EQ(weft_spawn(NULL, gated_sleeper, NULL), 0); /* the default size */
    WAIT_FOR(weft_stats_get(&during) == 0 && during.parks - before.parks >= (uint64_t)n);
    uint64_t reserved = during.stack_bytes - before.stack_bytes;
    if (per < WEFT_STACK_SMALL && PACKED)
        CHECK_LE(reserved, (uint64_t)n * per + (uint64_t)during.workers * (2u << 20));
    if (per >= 16384) {
        /* A full-size default: a coroutine with an 8 KiB frame runs (on 1 KiB, or 4 KiB, it
         * would be reported as an overflow). */
        weft_task t;
        void *len;
        ASSERT_EQ(weft_spawn(&t, deep_printf, NULL), 0);
        CHECK_EQ(weft_join(t, &len), 0);
        CHECK_GT((long)len, 10);
    }
    weft_chan_close(gate);
    weft_wg_wait(&parked_wg);
    CHECK_EQ(atomic_load(&woke), n);
    weft_chan_unref(gate);
    return 0;
}

/* A page-sized default is accepted; main still gets a full stack (an 8 KiB frame). Nothing
 * else runs on the small default here: instrumented builds need more than a page. */
static int page_main(void *arg)
{
    (void)arg;
    CHECK_GT((long)deep_printf(NULL), 10);
    return 0;
}

#if !defined(WEFT_SEGMENTED_STACKS)
/* A sub-page $WEFT_STACK_SIZE is refused with a message naming the per-spawn option, and
 * the runtime runs with the build's default (an 8 KiB frame works in a spawned coroutine). */
static void env_refused_child(void *arg)
{
    setenv("WEFT_STACK_SIZE", arg, 1);
    weft_config two = {.threads = 2};
    _exit(weft_run(env_main, (void *)(uintptr_t)WEFT_STACK_DEFAULT, &two));
}

static void expect_env_refused(const char *value)
{
    char buf[4096], want[64];
    int status = test_child_stderr(env_refused_child, (void *)value, buf, sizeof buf);
    snprintf(want, sizeof want, "weft: ignoring WEFT_STACK_SIZE=%s: below 4096 bytes", value);
    bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && strstr(buf, want) &&
              strstr(buf, "weft_spawn_opts.stack_size");
    if (!ok)
        fprintf(stderr, "WEFT_STACK_SIZE=%s: child status %#x, output:\n%s\n", value, status, buf);
    CHECK(ok);
}
#endif

/* ---- overflow of a small stack is reported ------------------------------------------------ */

#if !defined(__SANITIZE_ADDRESS__)
#if defined(WEFT_SEGMENTED_STACKS)
__attribute__((no_split_stack)) /* unsplit code: it cannot grow, the checks must catch it */
#endif
static void *
recurse(void *arg)
{
    volatile char pad[96];
    long n = (long)arg;
    pad[0] = (char)n;
    weft_yield(); /* a switch at every level: the canary and the stack pointer are checked */
    if (n < 1000)
        recurse((void *)(n + 1));
    return (void *)(long)pad[0];
}

/* Segmented builds: these functions must not grow (a function that may call libc asks for a
 * large frame first and would run on a new segment): they are the unsplit code whose
 * overflow the checks catch. */
#if defined(WEFT_SEGMENTED_STACKS)
#define NOSPLIT __attribute__((no_split_stack))
#else
#define NOSPLIT
#endif

/* The overflow of `over` (a 1 KiB stack) runs over the whole stack of `victim`, the 1 KiB
 * stack right below, parked: its saved context becomes garbage. Then a plain thread wakes the
 * victim while `over` spins without switching (its own check comes only at its next switch):
 * the victim resumes on the other worker onto the garbage and crashes inside weft's switch.
 * The report must name `over`, not the victim, and the process must not die silently. */
static weft_chan *victim_ch, *go_ch;
static char *victim_at, *over_at;
static _Atomic int overran;

NOSPLIT static void *victim(void *arg)
{
    char here;
    victim_at = &here;
    long v;
    weft_chan_recv(victim_ch, &v);
    return NULL;
}

NOSPLIT static __attribute__((noinline)) void scribble(void)
{
    volatile char buf[2560]; /* > 1 KiB: through its own canary, over all of the victim's */
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (char)0xa7;
}

NOSPLIT static void *over(void *arg)
{
    char here;
    over_at = &here;
    weft_chan_recv(go_ch, NULL); /* until the victim has its stack and parks */
    /* Right above the victim: its overflow runs into the victim's stack first. */
    if (!(victim_at < &here && &here - victim_at < 2048)) {
        fprintf(stderr, "test: the victim's stack is not right below (%p, %p)\n", (void *)victim_at,
                (void *)&here);
        _exit(5);
    }
    scribble();
    atomic_store(&overran, 1);
    int64_t dl = weft_now() + WEFT_SEC(10); /* safety net only: then its own switch reports */
    while (weft_now() < dl)
        ;
    weft_yield();
    return NULL;
}

static void *waker(void *arg)
{
    while (!atomic_load(&overran))
        ;
    long v = 1;
    weft_chan_send(victim_ch, &v); /* from a plain thread: the victim goes to an idle worker */
    return NULL;
}

static int overrun_main(void *arg)
{
    ASSERT_EQ(weft_chan_create(&victim_ch, sizeof(long), 0), 0);
    ASSERT_EQ(weft_chan_create(&go_ch, 0, 0), 0);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, waker, NULL), 0);
    /* Sub-page stacks of one size come from the pool in descending address order: `over`
     * first, then the victim gets the stack right below it. */
    weft_spawn_opts vo = {.stack_size = 1024, .name = "victim"};
    weft_spawn_opts oo = {.stack_size = 1024}; /* unnamed: named by its entry */
    weft_task tv, to;
    ASSERT_EQ(weft_spawn_ex(&to, over, NULL, &oo), 0);
    WAIT_FOR(over_at != NULL);
    ASSERT_EQ(weft_spawn_ex(&tv, victim, NULL, &vo), 0);
    WAIT_FOR(victim_at != NULL);
    weft_sleep(WEFT_MSEC(1)); /* not needed for correctness: the report is right either way */
    ASSERT_EQ(weft_chan_send(go_ch, NULL), 0);
    weft_join(to, NULL);
    weft_join(tv, NULL);
    return 0;
}

static void overrun_child(void *arg)
{
    weft_config two = {.threads = 2};
    _exit(weft_run(overrun_main, NULL, &two) == 0 ? 0 : 3);
}

static void expect_overrun_named(void)
{
    char buf[4096];
    int status = test_child_stderr(overrun_child, NULL, buf, sizeof buf);
    const char *msg = strstr(buf, "weft: stack overflow in coroutine ");
    /* `over` is unnamed and static: named by module and offset (test_smallstack+0x...). */
    bool ok = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && msg &&
              strncmp(strchr(msg + 34, ' ') ? strchr(msg + 34, ' ') : "",
                      " (entry test_smallstack+0x", 26) == 0 &&
              !strstr(buf, "coroutine 0 ") && strstr(msg, "(stack 1024 bytes)");
    if (!ok)
        fprintf(stderr, "overrun: child status %#x, output:\n%s\n", status, buf);
    CHECK(ok);
    printf("  overrun of a parked neighbour: %.*s", msg ? (int)strcspn(msg, "\n") + 1 : 0, msg);
}

static void expect_small_overflow(void)
{
    char buf[4096];
    struct test_overflow o = {recurse, 1024, "tiny", NULL, NULL};
    int status = test_overflow_in_child(&o, buf, sizeof buf);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT || !strstr(buf, "\"tiny\""))
        fprintf(stderr, "child status %#x, output:\n%s\n", status, buf);
    CHECK(WIFSIGNALED(status));
    CHECK_EQ(WTERMSIG(status), SIGABRT);
    CHECK(strstr(buf, "weft: stack overflow in coroutine ") != NULL);
    CHECK(strstr(buf, PACKED ? "\"tiny\" (stack 1024 bytes)" : "\"tiny\" (stack ") != NULL);
}
#endif

int main(void)
{
    weft_config two = {.threads = 2};
    ASSERT_EQ(weft_run(packing_main, (void *)&small, &two), 0);
    weft_spawn_opts mid = {.stack_size = 2000}; /* rounds up to 2048: still sub-page */
    ASSERT_EQ(weft_run(packing_main, &mid, &two), 0);
    ASSERT_EQ(weft_run(waits_main, NULL, &two), 0);

#if defined(WEFT_SEGMENTED_STACKS)
    /* Segmented builds: a sub-page default grows (the build's own default is 2 KiB). */
    setenv("WEFT_STACK_SIZE", "1K", 1);
    ASSERT_EQ(weft_run(env_main, (void *)(uintptr_t)1024, &two), 0);
#else
    expect_env_refused("1K");
    expect_env_refused("4095");
#endif
    setenv("WEFT_STACK_SIZE", "12 parsecs", 1); /* reported and ignored: the default */
    ASSERT_EQ(weft_run(env_main, (void *)(uintptr_t)WEFT_STACK_DEFAULT, &two), 0);
    setenv("WEFT_STACK_SIZE", "4K", 1); /* a page: the smallest default (main keeps 64 KiB) */
    ASSERT_EQ(weft_run(page_main, NULL, &two), 0);
    unsetenv("WEFT_STACK_SIZE");
#if defined(WEFT_SEGMENTED_STACKS)
    weft_config explicit_small = {.threads = 2, .stack_size = 1536};
    ASSERT_EQ(weft_run(env_main, (void *)(uintptr_t)1536, &explicit_small), 0);
#else
    weft_config explicit_small = {.threads = 2, .stack_size = 1536};
    CHECK_EQ(weft_run(env_main, (void *)(uintptr_t)1536, &explicit_small), WEFT_ESTACK);
    explicit_small.stack_size = WEFT_STACK_DEFAULT_MIN - 1;
    CHECK_EQ(weft_run(env_main, NULL, &explicit_small), WEFT_ESTACK);
    explicit_small.stack_size = WEFT_STACK_DEFAULT_MIN;
    ASSERT_EQ(weft_run(page_main, NULL, &explicit_small), 0);
#endif

#if !defined(__SANITIZE_ADDRESS__)
    expect_small_overflow();
    if (PACKED)
        expect_overrun_named();
#endif
    TEST_PASS("test_smallstack", checks);
    return 0;
}
