/* SPDX-License-Identifier: MIT */
/* test_coro.c — coroutines on the scheduler: spawn/join/detach, results, yield fairness,
 * names and ids, many coroutines, every error path of the task API. */
#include "harness.h"
#include <weft.h>

#include <pthread.h>
#include <stdatomic.h>

static long checks;

static void *ret_arg(void *arg)
{
    return arg;
}

static _Atomic long counter;
static void *bump(void *arg)
{
    (void)arg;
    atomic_fetch_add(&counter, 1);
    return NULL;
}

/* Yield fairness: N coroutines each record their id in a shared log at every turn; the
 * log must be round-robin after the first rounds (each window of N entries a permutation). */
#define FAIR_N 4
#define FAIR_ROUNDS 50
static int fair_log[FAIR_N * FAIR_ROUNDS];
static int fair_pos;
static void *fair_body(void *arg)
{
    int me = (int)(intptr_t)arg;
    for (int i = 0; i < FAIR_ROUNDS; i++) {
        fair_log[fair_pos++] = me;
        weft_yield();
    }
    return NULL;
}

static void *self_join(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)weft_join(weft_self(), NULL);
}

static void *deep(void *arg)
{
    /* Recursion using ~48 KiB of a 64 KiB stack. */
    long n = (long)arg;
    volatile char buf[512];
    buf[0] = (char)n;
    if (n == 0)
        return (void *)(intptr_t)buf[0];
    return (void *)((intptr_t)deep((void *)(n - 1)) + buf[0] * 0 + 1);
}

static void *named(void *arg)
{
    (void)arg;
    weft_sleep(WEFT_MSEC(1));
    return NULL;
}

static int app(void *arg)
{
    (void)arg;
    void *r;
    weft_task t;

    /* spawn / join returns the result */
    CHECK_EQ(weft_spawn(&t, ret_arg, (void *)42), 0);
    CHECK(t.id != 0);
    CHECK_EQ(weft_join(t, &r), 0);
    CHECK_EQ((intptr_t)r, 42);

    /* join twice, detach after join, cancel after join: stale handle */
    CHECK_EQ(weft_join(t, &r), WEFT_ESTATE);
    CHECK_EQ(weft_detach(t), WEFT_ESTATE);
    CHECK_EQ(weft_cancel(t), WEFT_ESTATE);

    /* join of a detached task */
    CHECK_EQ(weft_spawn(&t, ret_arg, NULL), 0);
    CHECK_EQ(weft_detach(t), 0);
    CHECK_EQ(weft_join(t, NULL), WEFT_ESTATE);
    CHECK_EQ(weft_detach(t), WEFT_ESTATE);

    /* join yourself */
    CHECK_EQ(weft_join(weft_self(), NULL), WEFT_EDEADLK);
    CHECK_EQ(weft_spawn(&t, self_join, NULL), 0);
    CHECK_EQ(weft_join(t, &r), 0);
    CHECK_EQ((intptr_t)r, WEFT_EDEADLK);

    /* NULL and bad arguments */
    CHECK_EQ(weft_spawn(&t, NULL, NULL), WEFT_EINVAL);
    CHECK_EQ(t.id, 0);
    weft_spawn_opts o = {.stack_size = 100};
    CHECK_EQ(weft_spawn_ex(&t, ret_arg, NULL, &o), WEFT_ESTACK);
    o.stack_size = (size_t)1 << 40;
    CHECK_EQ(weft_spawn_ex(&t, ret_arg, NULL, &o), WEFT_ESTACK);
    CHECK_EQ(weft_join((weft_task){NULL, 0}, NULL), WEFT_ESTATE);
    CHECK_EQ(weft_set_name(weft_self(), NULL), WEFT_EINVAL);

    /* ids are unique and self matches */
    weft_task a, b;
    CHECK_EQ(weft_spawn(&a, ret_arg, NULL), 0);
    CHECK_EQ(weft_spawn(&b, ret_arg, NULL), 0);
    CHECK(a.id != b.id);
    CHECK(weft_self_id() != 0);
    CHECK_EQ(weft_join(a, NULL), 0);
    CHECK_EQ(weft_join(b, NULL), 0);

    /* names */
    o = (weft_spawn_opts){.name = "a-rather-long-name-that-will-be-truncated-somewhere"};
    CHECK_EQ(weft_spawn_ex(&t, named, NULL, &o), 0);
    CHECK_EQ(weft_set_name(t, "worker-7"), 0);
    CHECK_EQ(weft_join(t, NULL), 0);

    /* custom stack size and deep recursion (~90 frames of >512 bytes in 64 KiB) */
    o = (weft_spawn_opts){.stack_size = 256 * 1024};
    CHECK_EQ(weft_spawn_ex(&t, deep, (void *)300, &o), 0);
    CHECK_EQ(weft_join(t, &r), 0);
    CHECK_EQ((intptr_t)r, 300);
    CHECK_EQ(weft_spawn(&t, deep, (void *)80), 0);
    CHECK_EQ(weft_join(t, &r), 0);
    CHECK_EQ((intptr_t)r, 80);

    /* yield fairness, pinned so all run on one worker */
    weft_task ft[FAIR_N];
    fair_pos = 0;
    weft_pin();
    for (int i = 0; i < FAIR_N; i++) {
        weft_spawn_opts po = {.pinned = 1};
        CHECK_EQ(weft_spawn_ex(&ft[i], fair_body, (void *)(intptr_t)i, &po), 0);
    }
    for (int i = 0; i < FAIR_N; i++)
        CHECK_EQ(weft_join(ft[i], NULL), 0);
    weft_unpin();
    CHECK_EQ(fair_pos, FAIR_N * FAIR_ROUNDS);
    for (int w = 1; w < FAIR_ROUNDS - 1; w++) {
        int seen = 0;
        for (int i = 0; i < FAIR_N; i++)
            seen |= 1 << fair_log[w * FAIR_N + i];
        CHECK_EQ(seen, (1 << FAIR_N) - 1);
    }

    /* 1,000,000 spawned and joined (in batches of 10,000 alive) */
    long total = test_scaled(1000000), batch = test_scaled(10000);
    static weft_task many[10000];
    atomic_store(&counter, 0);
    for (long done = 0; done < total; done += batch) {
        for (long i = 0; i < batch; i++)
            ASSERT_EQ(weft_spawn(&many[i], bump, NULL), 0);
        for (long i = 0; i < batch; i++)
            ASSERT_EQ(weft_join(many[i], NULL), 0);
    }
    CHECK_EQ(atomic_load(&counter), total / batch * batch);

    /* 100,000 alive at once (detached, each sleeping) */
    long alive = test_scaled(100000);
    atomic_store(&counter, 0);
    for (long i = 0; i < alive; i++)
        ASSERT_EQ(weft_spawn(NULL, bump, NULL), 0);
    while (atomic_load(&counter) < alive)
        weft_sleep(WEFT_MSEC(1));
    CHECK_EQ(atomic_load(&counter), alive);

    /* weft_yield outside / inside */
    CHECK_EQ(weft_yield(), 0);
    return 7;
}

static int trivial(void *arg)
{
    (void)arg;
    return 3;
}

int main(void)
{
    /* calls outside a running runtime */
    weft_task t;
    ASSERT_EQ(weft_spawn(&t, ret_arg, NULL), WEFT_ENORUNTIME);
    ASSERT_EQ(weft_join(t, NULL), WEFT_ENORUNTIME);
    ASSERT_EQ(weft_yield(), WEFT_ENOTCORO);
    ASSERT_EQ(weft_self().id, 0);
    ASSERT_EQ(weft_run(NULL, NULL, NULL), WEFT_EINVAL);
    weft_config bad = {.threads = -1};
    ASSERT_EQ(weft_run(trivial, NULL, &bad), WEFT_EINVAL);
    bad = (weft_config){.stack_size = 10};
    ASSERT_EQ(weft_run(trivial, NULL, &bad), WEFT_ESTACK);
    ASSERT_EQ(weft_run(trivial, NULL, NULL), 3);
    checks += 9;

    ASSERT_EQ(weft_run(app, NULL, NULL), 7);
    /* a second runtime after the first (state fully reset) */
    weft_config one = {.threads = 1};
    ASSERT_EQ(weft_run(app, NULL, &one), 7);
    TEST_PASS("test_coro", checks);
    return 0;
}
