/* test_smallstack.c — sub-page stacks (sizes below WEFT_STACK_SMALL): they are packed (a
 * 1 KiB stack reserves 1 KiB, not a page and a guard), every kind of wait works on them
 * across workers (the after-switch work and timer arming must stay off their stacks), a
 * pointer into one stays valid while another coroutine writes through it and the owner
 * migrates, $WEFT_STACK_SIZE sets the default (main keeps a full stack), and an overflow is
 * reported rather than silent. */
#include "harness.h"
#include <weft.h>
#include <weft/debug.h>

#include <signal.h>
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
    if (per >= WEFT_STACK_SMALL) {
        /* A full-size default: a coroutine with an 8 KiB frame runs (on 1 KiB it would be
         * reported as an overflow). */
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

/* ---- overflow of a small stack is reported ------------------------------------------------ */

#if !defined(__SANITIZE_ADDRESS__)
#if defined(WEFT_SEGMENTED_STACKS)
__attribute__((no_split_stack)) /* unsplit code: it cannot grow, the checks must catch it */
#endif
static void *recurse(void *arg)
{
    volatile char pad[96];
    long n = (long)arg;
    pad[0] = (char)n;
    weft_yield(); /* a switch at every level: the canary and the stack pointer are checked */
    if (n < 1000)
        recurse((void *)(n + 1));
    return (void *)(long)pad[0];
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

    setenv("WEFT_STACK_SIZE", "1K", 1);
    ASSERT_EQ(weft_run(env_main, (void *)(uintptr_t)1024, &two), 0);
    setenv("WEFT_STACK_SIZE", "12 parsecs", 1); /* reported and ignored: the default */
    ASSERT_EQ(weft_run(env_main, (void *)(uintptr_t)WEFT_STACK_DEFAULT, &two), 0);
    unsetenv("WEFT_STACK_SIZE");
    weft_config explicit_small = {.threads = 2, .stack_size = 1536};
    ASSERT_EQ(weft_run(env_main, (void *)(uintptr_t)1536, &explicit_small), 0);

#if !defined(__SANITIZE_ADDRESS__)
    expect_small_overflow();
#endif
    TEST_PASS("test_smallstack", checks);
    return 0;
}
