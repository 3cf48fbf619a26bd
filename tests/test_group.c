/* SPDX-License-Identifier: MIT */
/* test_group.c — task groups (weft/group.h) and zombie tasks (weft_stats.zombies):
 *   basics       wait, wait_until cancelling and waiting for sleeping members, cancel;
 *                members spawning into their group while it is being cancelled
 *   reaping      20,000 short members, never waited for: the group's member count and the
 *                runtime's live control blocks return to where they were
 *   failure      the first failure (an int member's return, weft_group_fail) is what wait
 *                returns; cancel_on_fail cancels the rest, without it they run on
 *   next         join-next in the order members finish (released by channels), queued
 *                outcomes, ECLOSED when empty, a timeout, two takers for one outcome
 *   limit        never more than max_running members at once (an atomic max), spawn parks;
 *                its deadline and cancellation
 *   stress       coroutines and a thread spawn into a limited collecting group while three
 *                takers take: each outcome exactly once, the limit holds
 *   free         of a live group cancels and waits for every member (coroutine and plain
 *                thread); from a member: EDEADLK; after weft_run, abandoned members are
 *                forgotten
 *   cancelled    a member spawned into a cancelled group starts cancelled
 *   zombies      finished tasks with live handles are counted in stats.zombies, not in
 *                stats.alive, reaped by join/detach (also from a plain thread), and listed
 *                at weft_run's end in debug builds / with WEFT_DEBUG=1 (a child process) */
#include "harness.h"
#include <weft.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

static _Atomic long checks;

#define LATE_NS WEFT_SEC(2)

/* ------------------------------------------------------------------------------------------
 * Groups. */

static _Atomic int grp_done;
static void *grp_short(void *arg)
{
    weft_sleep(WEFT_MSEC((intptr_t)arg % 10));
    atomic_fetch_add(&grp_done, 1);
    return NULL;
}

static int *grp_results;
static void *grp_sleeper(void *arg)
{
    int i = (int)(intptr_t)arg;
    grp_results[i] = weft_sleep(WEFT_SEC(10));
    return NULL;
}

/* Children of a group spawn into it while the group is being cancelled: the group's own
 * bookkeeping must stay exact although those children have cancellations pending (every
 * spawned task is joined by the wait: all have finished when it returns). */
static weft_group *grp_self;
static _Atomic long grp_spawned, grp_leaves_done;
static void *grp_leaf(void *arg)
{
    (void)arg;
    weft_sleep(WEFT_MSEC(1)); /* cancelled or not */
    atomic_fetch_add(&grp_leaves_done, 1);
    return NULL;
}
static void *grp_spawner(void *arg)
{
    (void)arg;
    int n = TEST_TSAN ? 60 : 200; /* live coroutines stay under ~500 under TSan */
    for (int i = 0; i < n; i++) {
        if (weft_group_spawn(grp_self, grp_leaf, NULL) == 0)
            atomic_fetch_add(&grp_spawned, 1);
        if (i % 8 == 0)
            weft_yield();
    }
    atomic_fetch_add(&grp_leaves_done, 1); /* spawners count as leaves too */
    return NULL;
}

static void test_group_cancel_spawning(void)
{
    atomic_store(&grp_spawned, 0);
    atomic_store(&grp_leaves_done, 0);
    CHECK_EQ(weft_group_create(&grp_self), 0);
    enum { NS = 8 };
    for (int i = 0; i < NS; i++)
        CHECK_EQ(weft_group_spawn(grp_self, grp_spawner, NULL), 0);
    for (int i = 0; i < 200; i++) {
        ASSERT_EQ(weft_group_cancel(grp_self), 0);
        weft_yield();
    }
    CHECK_EQ(weft_group_wait(grp_self), 0);
    CHECK_EQ(atomic_load(&grp_leaves_done), atomic_load(&grp_spawned) + NS);
    weft_group_free(grp_self);
}

static void test_group(void)
{
    weft_group *g;
    CHECK_EQ(weft_group_create(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_group_spawn(NULL, grp_short, NULL), WEFT_EINVAL);
    CHECK_EQ(weft_group_wait(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_group_cancel(NULL), WEFT_EINVAL);
    weft_group_free(NULL);

    /* empty group */
    CHECK_EQ(weft_group_create(&g), 0);
    CHECK_EQ(weft_group_spawn(g, NULL, NULL), WEFT_EINVAL);
    CHECK_EQ(weft_group_wait(g), 0);
    weft_group_free(g);

    /* spawn N, wait: all have finished */
    int n = (int)test_scaled(1000);
    atomic_store(&grp_done, 0);
    CHECK_EQ(weft_group_create(&g), 0);
    for (int i = 0; i < n; i++)
        ASSERT_EQ(weft_group_spawn(g, grp_short, (void *)(intptr_t)i), 0);
    CHECK_EQ(weft_group_wait(g), 0);
    CHECK_EQ(atomic_load(&grp_done), n);
    CHECK_EQ(weft_group_wait(g), 0); /* nothing left */
    /* wait_until whose children all finish in time */
    atomic_store(&grp_done, 0);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(weft_group_spawn(g, grp_short, (void *)(intptr_t)i), 0);
    CHECK_EQ(weft_group_wait_until(g, weft_after(WEFT_SEC(10))), 0);
    CHECK_EQ(atomic_load(&grp_done), 10);
    weft_group_free(g);

    /* wait_until with a deadline: cancels the sleeping children and joins them */
    int ns = (int)test_scaled(200);
    grp_results = calloc((size_t)ns, sizeof *grp_results);
    ASSERT(grp_results);
    for (int i = 0; i < ns; i++)
        grp_results[i] = 1;
    CHECK_EQ(weft_group_create(&g), 0);
    for (int i = 0; i < ns; i++)
        ASSERT_EQ(weft_group_spawn(g, grp_sleeper, (void *)(intptr_t)i), 0);
    int64_t t0 = weft_now();
    CHECK_EQ(weft_group_wait_until(g, t0 + WEFT_MSEC(50)), WEFT_ETIMEDOUT);
    int64_t el = weft_now() - t0;
    CHECK_GE(el, WEFT_MSEC(50));
    CHECK_LT(el, WEFT_MSEC(50) + LATE_NS);
    int bad = 0;
    for (int i = 0; i < ns; i++)
        if (grp_results[i] != WEFT_ECANCELED)
            bad++;
    CHECK_EQ(bad, 0);
    CHECK_EQ(weft_group_wait(g), 0);
    weft_group_free(g);

    /* group_cancel then wait */
    for (int i = 0; i < ns; i++)
        grp_results[i] = 1;
    CHECK_EQ(weft_group_create(&g), 0);
    for (int i = 0; i < ns; i++)
        ASSERT_EQ(weft_group_spawn(g, grp_sleeper, (void *)(intptr_t)i), 0);
    weft_sleep(WEFT_MSEC(5));
    t0 = weft_now();
    CHECK_EQ(weft_group_cancel(g), 0);
    CHECK_EQ(weft_group_wait(g), 0);
    CHECK_LT(weft_now() - t0, LATE_NS);
    bad = 0;
    for (int i = 0; i < ns; i++)
        if (grp_results[i] != WEFT_ECANCELED)
            bad++;
    CHECK_EQ(bad, 0);
    weft_group_free(g);
    free(grp_results);
}

/* ------------------------------------------------------------------------------------------
 * Reaping: a long-lived group (a server's) stays flat however many members it ever had. */

static _Atomic long reap_done;
static void *reap_member(void *arg)
{
    (void)arg;
    weft_yield();
    atomic_fetch_add(&reap_done, 1);
    return NULL;
}

static void stats(weft_stats *s)
{
    ASSERT_EQ(weft_stats_get(s), 0);
}

/* Only the test's main coroutine runs (members of earlier tests may still be on their way
 * out: their wait returned, their exit is under way). */
static void settle(weft_stats *s)
{
    WAIT_FOR((stats(s), s->alive == 1 && s->zombies == 0));
}

static void test_reaping(void)
{
    long n = test_scaled(20000);
    weft_stats s0, s;
    settle(&s0);
    weft_group *g;
    CHECK_EQ(weft_group_create(&g), 0);
    atomic_store(&reap_done, 0);
    for (long i = 0; i < n; i++)
        ASSERT_EQ(weft_group_spawn(g, reap_member, NULL), 0);
    /* No wait on the group: the members leave it as they finish. */
    WAIT_FOR(atomic_load(&reap_done) == n);
    WAIT_FOR(weft_group_len(g) == 0);
    /* Their control blocks went back too (the statistics lag a little: wait for them). */
    WAIT_FOR((stats(&s), s.alive == 1));
    CHECK_EQ(s.zombies, 0);
    CHECK_GE(s.spawned, s0.spawned + (uint64_t)n);
    CHECK_EQ(weft_group_wait(g), 0); /* nothing left to wait for */
    CHECK_EQ(weft_group_free(g), 0);
}

/* ------------------------------------------------------------------------------------------
 * The first failure, and cancel_on_fail. Members are released in a chosen order through
 * their own rendezvous channels (a gate each). */

#define NGATE 8
static weft_chan *gate[NGATE];
static int gate_ret[NGATE];     /* what a gated int member returns once released */
static int gate_recv[NGATE];    /* what its receive returned */
static uint64_t gate_id[NGATE]; /* its weft_self_id() */

static void gates_open(void)
{
    for (int i = 0; i < NGATE; i++) {
        ASSERT_EQ(weft_chan_create(&gate[i], sizeof(int), 0), 0);
        gate_recv[i] = 1;
        gate_id[i] = 0;
    }
}
static void gates_close(void)
{
    for (int i = 0; i < NGATE; i++)
        weft_chan_unref(gate[i]);
}
/* Release gated member i: the send completes when the member has taken it. */
static void release(int i)
{
    int v = 0;
    ASSERT_EQ(weft_chan_send(gate[i], &v), 0);
}
static int gated(void *arg)
{
    int i = (int)(intptr_t)arg, v;
    gate_id[i] = weft_self_id();
    gate_recv[i] = weft_chan_recv(gate[i], &v);
    return gate_recv[i] == 0 ? gate_ret[i] : gate_recv[i];
}
static void *gated_fn(void *arg)
{
    gated(arg);
    return (void *)((intptr_t)arg + 100);
}

static _Atomic int sleeper_res[64];
static _Atomic long sleepers_done;
static void *sleeper(void *arg)
{
    sleeper_res[(intptr_t)arg] = weft_sleep(WEFT_SEC(30));
    atomic_fetch_add(&sleepers_done, 1);
    return NULL;
}
static void sleepers(weft_group *g, int n)
{
    atomic_store(&sleepers_done, 0);
    for (int i = 0; i < n; i++) {
        sleeper_res[i] = 1;
        ASSERT_EQ(weft_group_spawn(g, sleeper, (void *)(intptr_t)i), 0);
    }
}
static int sleepers_cancelled(int n)
{
    int c = 0;
    for (int i = 0; i < n; i++)
        c += sleeper_res[i] == WEFT_ECANCELED;
    return c;
}

/* A member that reports a failure itself, then goes on: weft_group_fail does not cancel
 * its caller. */
static _Atomic int failer_sleep;
static int failer(void *arg)
{
    (void)arg;
    ASSERT_EQ(weft_group_fail(*(weft_group **)arg, -5), 0);
    failer_sleep = weft_sleep(WEFT_MSEC(1));
    return 0;
}

static void test_failure(void)
{
    weft_group *g;
    weft_group_opts cof = {.cancel_on_fail = 1};
    enum { NS = 16 };

    /* cancel_on_fail: gate 0 fails with 42, every other member is cancelled — gate 1 (its
     * receive) too, which then returns WEFT_ECANCELED: a later failure, not the first. */
    gates_open();
    CHECK_EQ(weft_group_create_ex(&g, &cof), 0);
    sleepers(g, NS);
    gate_ret[0] = 42;
    gate_ret[1] = 43;
    CHECK_EQ(weft_group_go(g, gated, (void *)0), 0);
    CHECK_EQ(weft_group_go(g, gated, (void *)1), 0);
    release(0);
    CHECK_EQ(weft_group_wait(g), 42);
    CHECK_EQ(sleepers_cancelled(NS), NS);
    CHECK_EQ(gate_recv[1], WEFT_ECANCELED);
    CHECK_EQ(weft_group_wait(g), 42); /* sticky */
    /* the group is cancelled now: a new member starts cancelled */
    sleepers(g, 1);
    CHECK_EQ(weft_group_wait(g), 42);
    CHECK_EQ(sleepers_cancelled(1), 1);
    CHECK_EQ(weft_group_free(g), 0);
    gates_close();

    /* Without cancel_on_fail: the first of two failures wins, the others run on. */
    gates_open();
    CHECK_EQ(weft_group_create(&g), 0);
    gate_ret[0] = -9;
    gate_ret[1] = -7;
    gate_ret[2] = 0;
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_group_go(g, gated, (void *)(intptr_t)i), 0);
    release(1);
    WAIT_FOR(weft_group_len(g) == 2);
    release(0);
    WAIT_FOR(weft_group_len(g) == 1);
    release(2); /* was not cancelled */
    CHECK_EQ(weft_group_wait(g), -7);
    CHECK_EQ(gate_recv[2], 0);
    CHECK_EQ(weft_group_free(g), 0);
    gates_close();

    /* weft_group_fail from outside: the sleepers are cancelled, wait returns the code. */
    CHECK_EQ(weft_group_create_ex(&g, &cof), 0);
    sleepers(g, NS);
    CHECK_EQ(weft_group_fail(g, 0), WEFT_EINVAL);
    CHECK_EQ(weft_group_fail(NULL, -1), WEFT_EINVAL);
    CHECK_EQ(weft_group_fail(g, -5), 0);
    CHECK_EQ(weft_group_fail(g, -6), 0); /* not the first: ignored */
    CHECK_EQ(weft_group_wait(g), -5);
    CHECK_EQ(sleepers_cancelled(NS), NS);
    CHECK_EQ(weft_group_free(g), 0);

    /* weft_group_fail from a member: the others are cancelled, the caller is not. */
    CHECK_EQ(weft_group_create_ex(&g, &cof), 0);
    sleepers(g, NS);
    failer_sleep = 1;
    CHECK_EQ(weft_group_go(g, failer, &g), 0);
    CHECK_EQ(weft_group_wait(g), -5);
    CHECK_EQ(sleepers_cancelled(NS), NS);
    CHECK_EQ(failer_sleep, 0);
    CHECK_EQ(weft_group_free(g), 0);

    /* A failure is not a cancellation of the waiter: with a deadline, the failure is still
     * the answer. An int member returning WEFT_ECANCELED after a group cancel: that is the
     * first failure, so wait reports the cancellation. */
    gates_open();
    CHECK_EQ(weft_group_create(&g), 0);
    CHECK_EQ(weft_group_go(g, gated, (void *)0), 0);
    CHECK_EQ(weft_group_cancel(g), 0);
    CHECK_EQ(weft_group_wait_until(g, weft_after(WEFT_SEC(10))), WEFT_ECANCELED);
    CHECK_EQ(gate_recv[0], WEFT_ECANCELED);
    CHECK_EQ(weft_group_free(g), 0);
    gates_close();
}

/* ------------------------------------------------------------------------------------------
 * Join-next. */

static weft_group *next_g;
static _Atomic int next_res[2];
static void *next_taker(void *arg)
{
    weft_group_outcome o;
    next_res[(intptr_t)arg] = weft_group_next(next_g, &o);
    return NULL;
}

static void check_outcome(weft_group *g, int gate_no, bool int_member)
{
    weft_group_outcome o;
    CHECK_EQ(weft_group_next(g, &o), 0);
    CHECK_EQ((intptr_t)o.arg, gate_no);
    CHECK_EQ(o.id, gate_id[gate_no]);
    CHECK_NE(o.id, 0);
    if (int_member) {
        CHECK_EQ(o.code, gate_ret[gate_no]);
        CHECK(o.result == NULL);
    } else {
        CHECK_EQ(o.code, 0);
        CHECK_EQ((intptr_t)o.result, gate_no + 100);
    }
}

static void test_next(void)
{
    weft_group *g;
    weft_group_outcome o;
    weft_group_opts col = {.collect = 1};

    /* not collecting: no outcomes to take */
    CHECK_EQ(weft_group_create(&g), 0);
    CHECK_EQ(weft_group_next(g, &o), WEFT_EINVAL);
    CHECK_EQ(weft_group_free(g), 0);

    CHECK_EQ(weft_group_create_ex(&g, &col), 0);
    CHECK_EQ(weft_group_next(g, NULL), WEFT_EINVAL);
    CHECK_EQ(weft_group_next(NULL, &o), WEFT_EINVAL);
    CHECK_EQ(weft_group_next(g, &o), WEFT_ECLOSED); /* empty */

    /* Waiting: whichever finishes first comes first (2, 0, 1). */
    gates_open();
    gate_ret[0] = 10, gate_ret[1] = 11, gate_ret[2] = 12;
    CHECK_EQ(weft_group_go(g, gated, (void *)0), 0);
    CHECK_EQ(weft_group_spawn(g, gated_fn, (void *)1), 0);
    CHECK_EQ(weft_group_go(g, gated, (void *)2), 0);
    CHECK_EQ(weft_group_next_until(g, &o, weft_after(WEFT_MSEC(1))), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_group_next_until(g, &o, 0), WEFT_ETIMEDOUT); /* a past deadline */
    release(2);
    check_outcome(g, 2, true);
    release(0);
    check_outcome(g, 0, true);
    release(1);
    check_outcome(g, 1, false);
    CHECK_EQ(weft_group_next(g, &o), WEFT_ECLOSED);
    CHECK_EQ(weft_group_wait(g), 12); /* every non-zero code is a failure: 2's came first */
    CHECK_EQ(weft_group_free(g), 0);
    gates_close();

    /* Queued: members that finished before anyone asked come out in the order they
     * finished (1, 0, 2), also after a wait. */
    CHECK_EQ(weft_group_create_ex(&g, &col), 0);
    gates_open();
    for (int i = 0; i < 3; i++) {
        gate_ret[i] = i + 20;
        CHECK_EQ(weft_group_go(g, gated, (void *)(intptr_t)i), 0);
    }
    release(1);
    WAIT_FOR(weft_group_len(g) == 2);
    release(0);
    WAIT_FOR(weft_group_len(g) == 1);
    release(2);
    CHECK_EQ(weft_group_wait(g), 21); /* the first failure: 1's */
    CHECK_EQ(weft_group_len(g), 0);
    check_outcome(g, 1, true);
    check_outcome(g, 0, true);
    check_outcome(g, 2, true);
    CHECK_EQ(weft_group_next(g, &o), WEFT_ECLOSED);
    gates_close();
    CHECK_EQ(weft_group_free(g), 0);

    /* Two takers, one member: one gets the outcome, the other WEFT_ECLOSED once the group
     * is empty (it never hangs). */
    gates_open();
    CHECK_EQ(weft_group_create_ex(&next_g, &col), 0);
    gate_ret[0] = 0;
    CHECK_EQ(weft_group_go(next_g, gated, (void *)0), 0);
    weft_task t[2];
    for (int i = 0; i < 2; i++) {
        next_res[i] = 1;
        CHECK_EQ(weft_spawn(&t[i], next_taker, (void *)(intptr_t)i), 0);
    }
    release(0);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(weft_join(t[i], NULL), 0);
    CHECK_EQ(next_res[0] + next_res[1], WEFT_ECLOSED);
    CHECK(next_res[0] == 0 || next_res[1] == 0);
    CHECK_EQ(weft_group_free(next_g), 0);
    gates_close();

    /* A cancelled taker loses nothing: the outcome stays for the next call. */
    gates_open();
    CHECK_EQ(weft_group_create_ex(&next_g, &col), 0);
    CHECK_EQ(weft_group_go(next_g, gated, (void *)0), 0);
    next_res[0] = 1;
    CHECK_EQ(weft_spawn(&t[0], next_taker, (void *)0), 0);
    CHECK_EQ(weft_cancel(t[0]), 0);
    CHECK_EQ(weft_join(t[0], NULL), 0);
    CHECK_EQ(next_res[0], WEFT_ECANCELED);
    release(0);
    check_outcome(next_g, 0, true);
    CHECK_EQ(weft_group_free(next_g), 0);
    gates_close();
}

/* ------------------------------------------------------------------------------------------
 * The running limit. */

enum { LIMIT = 4 };
static _Atomic int lim_running, lim_max, lim_started;
static weft_sem lim_gate;
static void *lim_member(void *arg)
{
    (void)arg;
    int n = atomic_fetch_add(&lim_running, 1) + 1;
    int m = atomic_load(&lim_max);
    while (n > m && !atomic_compare_exchange_weak(&lim_max, &m, n))
        ;
    atomic_fetch_add(&lim_started, 1);
    ASSERT_EQ(weft_sem_wait(&lim_gate), 0);
    atomic_fetch_sub(&lim_running, 1);
    return NULL;
}

/* Releases the members one at a time, each time once the spawner has filled every slot. */
static _Atomic long lim_over;
static weft_group *lim_g;
static void *lim_releaser(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++) {
        long want = n - i < LIMIT ? n - i : LIMIT;
        WAIT_FOR(atomic_load(&lim_running) == want && atomic_load(&lim_started) >= i + want);
        if (weft_group_len(lim_g) > LIMIT)
            atomic_fetch_add(&lim_over, 1);
        ASSERT_EQ(weft_sem_post(&lim_gate), 0);
    }
    return NULL;
}

static _Atomic int lim_spawn_res;
static void *lim_spawner(void *arg)
{
    (void)arg;
    lim_spawn_res = weft_group_spawn(lim_g, lim_member, NULL);
    return NULL;
}

static void test_limit(void)
{
    weft_group_opts lim = {.max_running = LIMIT};
    weft_group_opts bad = {.max_running = -1};
    weft_group *g;
    CHECK_EQ(weft_group_create_ex(&g, &bad), WEFT_EINVAL);
    CHECK(g == NULL);
    long n = 100;
    atomic_store(&lim_running, 0);
    atomic_store(&lim_max, 0);
    atomic_store(&lim_started, 0);
    atomic_store(&lim_over, 0);
    ASSERT_EQ(weft_sem_init(&lim_gate, 0), 0);
    CHECK_EQ(weft_group_create_ex(&lim_g, &lim), 0);
    weft_task rel;
    CHECK_EQ(weft_spawn(&rel, lim_releaser, (void *)(intptr_t)n), 0);
    for (long i = 0; i < n; i++)
        ASSERT_EQ(weft_group_spawn(lim_g, lim_member, NULL), 0); /* parks while full */
    CHECK_EQ(weft_join(rel, NULL), 0);
    CHECK_EQ(weft_group_wait(lim_g), 0);
    CHECK_EQ(atomic_load(&lim_started), n);
    CHECK_EQ(atomic_load(&lim_max), LIMIT);
    CHECK_EQ(atomic_load(&lim_over), 0);

    /* Full: a spawn with a deadline gives up, a cancelled spawner too; nothing is spawned. */
    for (int i = 0; i < LIMIT; i++)
        CHECK_EQ(weft_group_spawn(lim_g, lim_member, NULL), 0);
    WAIT_FOR(atomic_load(&lim_running) == LIMIT);
    CHECK_EQ(weft_group_spawn_until(lim_g, lim_member, NULL, 0), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_group_spawn_until(lim_g, lim_member, NULL, weft_after(WEFT_MSEC(1))),
             WEFT_ETIMEDOUT);
    CHECK_EQ(weft_group_go_until(lim_g, gated, NULL, weft_after(WEFT_MSEC(1))), WEFT_ETIMEDOUT);
    weft_task sp;
    lim_spawn_res = 1;
    CHECK_EQ(weft_spawn(&sp, lim_spawner, NULL), 0);
    CHECK_EQ(weft_cancel(sp), 0);
    CHECK_EQ(weft_join(sp, NULL), 0);
    CHECK_EQ(lim_spawn_res, WEFT_ECANCELED);
    CHECK_EQ(weft_group_len(lim_g), LIMIT);
    /* A parked spawner gets the slot of the first member to finish. */
    lim_spawn_res = 1;
    CHECK_EQ(weft_spawn(&sp, lim_spawner, NULL), 0);
    CHECK_EQ(weft_sem_post(&lim_gate), 0);
    CHECK_EQ(weft_join(sp, NULL), 0);
    CHECK_EQ(lim_spawn_res, 0);
    for (int i = 0; i < LIMIT; i++)
        CHECK_EQ(weft_sem_post(&lim_gate), 0);
    CHECK_EQ(weft_group_wait(lim_g), 0);
    CHECK_EQ(atomic_load(&lim_max), LIMIT);
    CHECK_EQ(weft_group_free(lim_g), 0);
}

/* ------------------------------------------------------------------------------------------
 * Everything at once: coroutines and a plain thread spawn into one limited, collecting group
 * while several takers take outcomes; every member's outcome is taken exactly once and the
 * limit holds throughout. */

enum { ST_LIMIT = 8, ST_SPAWNERS = 4 };
static weft_group *st_g;
static long st_per; /* members per spawner */
static _Atomic int st_running, st_max;
static _Atomic char *st_taken;
static _Atomic long st_ntaken, st_bad;

static void *st_member(void *arg)
{
    int n = atomic_fetch_add(&st_running, 1) + 1;
    int m = atomic_load(&st_max);
    while (n > m && !atomic_compare_exchange_weak(&st_max, &m, n))
        ;
    if ((intptr_t)arg % 3 == 0)
        weft_yield();
    atomic_fetch_sub(&st_running, 1);
    return arg;
}

static void *st_spawner(void *arg)
{
    long base = (long)(intptr_t)arg * st_per;
    for (long i = 0; i < st_per; i++)
        ASSERT_EQ(weft_group_spawn(st_g, st_member, (void *)(intptr_t)(base + i)), 0);
    return NULL;
}

static void *st_taker(void *arg)
{
    long total = (long)(intptr_t)arg;
    while (atomic_load(&st_ntaken) < total) {
        weft_group_outcome o;
        int r = weft_group_next_until(st_g, &o, weft_after(WEFT_MSEC(1)));
        if (r == WEFT_ECLOSED || r == WEFT_ETIMEDOUT) {
            weft_yield(); /* empty for now: the spawners are behind */
            continue;
        }
        ASSERT_EQ(r, 0);
        long i = (long)(intptr_t)o.arg;
        if (i < 0 || i >= total || o.result != o.arg || !o.id || atomic_exchange(&st_taken[i], 1))
            atomic_fetch_add(&st_bad, 1);
        atomic_fetch_add(&st_ntaken, 1);
    }
    return NULL;
}

static void test_stress(void)
{
    st_per = ops_scaled(2000);
    long total = st_per * (ST_SPAWNERS + 1);
    weft_group_opts o = {.max_running = ST_LIMIT, .collect = 1};
    CHECK_EQ(weft_group_create_ex(&st_g, &o), 0);
    st_taken = calloc((size_t)total, 1);
    ASSERT(st_taken);
    atomic_store(&st_running, 0);
    atomic_store(&st_max, 0);
    atomic_store(&st_ntaken, 0);
    atomic_store(&st_bad, 0);
    weft_task sp[ST_SPAWNERS], tk[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_spawn(&tk[i], st_taker, (void *)(intptr_t)total), 0);
    for (int i = 0; i < ST_SPAWNERS; i++)
        CHECK_EQ(weft_spawn(&sp[i], st_spawner, (void *)(intptr_t)i), 0);
    void *r;
    CHECK_EQ(weft_blocking(st_spawner, (void *)(intptr_t)ST_SPAWNERS, &r), 0); /* a thread */
    for (int i = 0; i < ST_SPAWNERS; i++)
        CHECK_EQ(weft_join(sp[i], NULL), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_join(tk[i], NULL), 0);
    CHECK_EQ(atomic_load(&st_ntaken), total);
    CHECK_EQ(atomic_load(&st_bad), 0);
    CHECK_LE(atomic_load(&st_max), ST_LIMIT);
    CHECK_EQ(weft_group_wait(st_g), 0);
    weft_group_outcome out;
    CHECK_EQ(weft_group_next(st_g, &out), WEFT_ECLOSED);
    CHECK_EQ(weft_group_free(st_g), 0);
    free((void *)st_taken);
}

/* ------------------------------------------------------------------------------------------
 * Freeing a live group; a group spawned into after its cancellation. */

static _Atomic int member_free_res, member_wait_res;
static void *self_freer(void *arg)
{
    member_free_res = weft_group_free(arg);
    member_wait_res = weft_group_wait(arg);
    return NULL;
}

struct thread_free {
    weft_group *g;
    int res;
};
static void *thread_free_main(void *p)
{
    struct thread_free *tf = p;
    tf->res = weft_group_free(tf->g);
    return NULL;
}

static void test_free(void)
{
    enum { N = 16 };
    weft_group *g;
    CHECK_EQ(weft_group_free(NULL), 0);

    /* From a coroutine: cancels and waits; every member has finished when it returns. */
    CHECK_EQ(weft_group_create(&g), 0);
    sleepers(g, N);
    CHECK_EQ(weft_group_free(g), 0);
    CHECK_EQ(atomic_load(&sleepers_done), N);
    CHECK_EQ(sleepers_cancelled(N), N);

    /* From a member of the group: refused (it would wait for itself); wait likewise. */
    CHECK_EQ(weft_group_create(&g), 0);
    member_free_res = member_wait_res = 1;
    CHECK_EQ(weft_group_spawn(g, self_freer, g), 0);
    CHECK_EQ(weft_group_wait(g), 0);
    CHECK_EQ(member_free_res, WEFT_EDEADLK);
    CHECK_EQ(member_wait_res, WEFT_EDEADLK);
    CHECK_EQ(weft_group_free(g), 0);

    /* From a plain thread: it blocks until the members have finished. */
    CHECK_EQ(weft_group_create(&g), 0);
    sleepers(g, N);
    struct thread_free tf = {g, 1};
    void *r;
    CHECK_EQ(weft_blocking(thread_free_main, &tf, &r), 0); /* runs on a pool thread */
    CHECK_EQ(tf.res, 0);
    CHECK_EQ(atomic_load(&sleepers_done), N);
    CHECK_EQ(sleepers_cancelled(N), N);
}

static _Atomic int start_res[2];
static void *start_sleep(void *arg)
{
    start_res[(intptr_t)arg] = weft_sleep(WEFT_SEC(30));
    return NULL;
}
static int start_sleep_int(void *arg)
{
    start_sleep(arg);
    return 0;
}

static void test_spawn_cancelled(void)
{
    weft_group *g;
    CHECK_EQ(weft_group_create(&g), 0);
    CHECK_EQ(weft_group_cancel(g), 0); /* empty, but cancelled from now on */
    start_res[0] = start_res[1] = 1;
    CHECK_EQ(weft_group_spawn(g, start_sleep, (void *)0), 0);
    CHECK_EQ(weft_group_go(g, start_sleep_int, (void *)1), 0);
    CHECK_EQ(weft_group_wait_until(g, weft_after(WEFT_SEC(10))), 0);
    CHECK_EQ(start_res[0], WEFT_ECANCELED);
    CHECK_EQ(start_res[1], WEFT_ECANCELED);
    CHECK_EQ(weft_group_free(g), 0);
}

/* ------------------------------------------------------------------------------------------
 * Zombies. */

static void *quick(void *arg)
{
    return arg;
}

static void *thread_join(void *p)
{
    weft_task *t = p;
    return (void *)(intptr_t)weft_join(*t, NULL);
}

static void test_zombies(void)
{
    enum { N = 10 };
    weft_stats s;
    settle(&s);
    weft_task t[N];
    for (int i = 0; i < N; i++)
        CHECK_EQ(weft_spawn(&t[i], quick, (void *)(intptr_t)i), 0);
    /* They finish on their own; nobody joins them yet. */
    WAIT_FOR((stats(&s), s.zombies == N));
    WAIT_FOR((stats(&s), s.alive == 1)); /* the test's main coroutine: not them */
    CHECK_EQ(s.zombies, N);
    /* Joins (one from a plain thread) and detaches reap them. */
    void *r;
    for (int i = 0; i < N / 2; i++) {
        CHECK_EQ(weft_join(t[i], &r), 0);
        CHECK_EQ((intptr_t)r, i);
    }
    CHECK_EQ(weft_blocking(thread_join, &t[N / 2], &r), 0);
    CHECK_EQ((intptr_t)r, 0);
    stats(&s);
    CHECK_EQ(s.zombies, N - N / 2 - 1);
    for (int i = N / 2 + 1; i < N; i++)
        CHECK_EQ(weft_detach(t[i]), 0);
    stats(&s);
    CHECK_EQ(s.zombies, 0);
    /* A task joined while it runs never becomes one; nor does a detached one. */
    weft_task j;
    CHECK_EQ(weft_spawn(&j, start_sleep, (void *)0), 0);
    CHECK_EQ(weft_spawn(NULL, quick, NULL), 0);
    weft_yield();
    CHECK_EQ(weft_cancel(j), 0);
    CHECK_EQ(weft_join(j, NULL), 0);
    stats(&s);
    CHECK_EQ(s.zombies, 0);
}

/* weft_run's report of the zombies left, in a child process. */
static weft_task leaked[3];
static int leak_main(void *arg)
{
    (void)arg;
    weft_spawn_opts named = {.name = "forgotten"};
    ASSERT_EQ(weft_spawn_ex(&leaked[0], quick, NULL, &named), 0);
    ASSERT_EQ(weft_spawn(&leaked[1], quick, NULL), 0);
    ASSERT_EQ(weft_spawn(&leaked[2], quick, NULL), 0);
    weft_task joined;
    ASSERT_EQ(weft_spawn(&joined, quick, NULL), 0);
    ASSERT_EQ(weft_join(joined, NULL), 0);
    weft_stats s;
    WAIT_FOR((weft_stats_get(&s), s.zombies == 3));
    fprintf(stderr, "leaked: %llu %llu %llu\n", (unsigned long long)leaked[0].id,
            (unsigned long long)leaked[1].id, (unsigned long long)leaked[2].id);
    return 0;
}
static void leak_child(void *env)
{
    if (env)
        setenv("WEFT_DEBUG", env, 1);
    else
        unsetenv("WEFT_DEBUG");
    weft_config cfg = {.threads = 2};
    _exit(weft_run(leak_main, NULL, &cfg));
}

/* The child prints the ids it leaked ("leaked: named other other"); the report lists them
 * in id order, the named one with its name. */
static void check_report(const char *buf)
{
    unsigned long long id[3];
    const char *l = strstr(buf, "leaked: ");
    ASSERT(l && sscanf(l, "leaked: %llu %llu %llu", &id[0], &id[1], &id[2]) == 3);
    unsigned long long named = id[0];
    for (int a = 0; a < 3; a++) /* sort */
        for (int b = a + 1; b < 3; b++)
            if (id[b] < id[a]) {
                unsigned long long x = id[a];
                id[a] = id[b];
                id[b] = x;
            }
    char want[256], part[64];
    snprintf(want, sizeof want, "weft: 3 finished tasks were never joined or detached:");
    for (int a = 0; a < 3; a++) {
        snprintf(part, sizeof part, "%s %llu%s", a ? "," : "", id[a],
                 id[a] == named ? " \"forgotten\"" : "");
        strncat(want, part, sizeof want - strlen(want) - 1);
    }
    strncat(want, "\n", sizeof want - strlen(want) - 1);
    if (!strstr(buf, want)) {
        fprintf(stderr, "want: %sgot:\n%s", want, buf);
        ASSERT(!"the zombie report");
    }
    checks++;
}

static void test_zombie_report(void)
{
    char buf[4096];
    int st = test_child_stderr(leak_child, "1", buf, sizeof buf);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    check_report(buf);
    st = test_child_stderr(leak_child, "0", buf, sizeof buf); /* silenced */
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(strstr(buf, "leaked: ") != NULL);
    CHECK(strstr(buf, "never joined") == NULL);
    st = test_child_stderr(leak_child, NULL, buf, sizeof buf); /* the build's default */
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
#ifdef NDEBUG
    CHECK(strstr(buf, "never joined") == NULL);
#else
    check_report(buf);
#endif
}

/* ------------------------------------------------------------------------------------------
 * A group whose run ended with members still running: they were abandoned at shutdown. */

static weft_group *abandoned;
static int abandon_main(void *arg)
{
    (void)arg;
    ASSERT_EQ(weft_group_create(&abandoned), 0);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(weft_group_spawn(abandoned, start_sleep, (void *)0), 0);
    WAIT_FOR(weft_group_len(abandoned) == 3);
    return 0;
}

static void test_abandoned(void)
{
    weft_config cfg = {.threads = 2};
    ASSERT_EQ(weft_run(abandon_main, NULL, &cfg), 0);
    CHECK_EQ(weft_group_len(abandoned), 0);
    CHECK_EQ(weft_group_wait(abandoned), 0); /* no hang */
    CHECK_EQ(weft_group_free(abandoned), 0);
}

static int app(void *arg)
{
    (void)arg;
    int64_t t0 = weft_now();
    test_group();
    test_group_cancel_spawning();
    test_reaping();
    test_failure();
    test_next();
    test_limit();
    test_stress();
    test_free();
    test_spawn_cancelled();
    test_zombies();
    test_sim_fingerprint("test_group", t0, 0);
    return 0;
}

int main(void)
{
    int threads[] = {0, 1, 2};
    for (int i = 0; i < 3; i++) {
        weft_config cfg = {.threads = threads[i]};
        ASSERT_EQ(weft_run(app, NULL, &cfg), 0);
    }
    test_zombie_report();
    test_abandoned();
    TEST_PASS("test_group", checks);
    return 0;
}
