/* SPDX-License-Identifier: MIT */
/* test_timer.c — time: sleeps never return early (many sleepers, across workers, also on
 * plain threads), past deadlines return promptly, weft_now is monotonic, weft_after
 * saturates, and tickers tick on schedule (never early), drop ticks for a slow reader, and
 * stop cleanly (closing and releasing their channel). */
#include "harness.h"
#include <weft.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

static _Atomic long checks;

#define LATE_NS WEFT_SEC(2)

/* ------------------------------------------------------------------------------------------
 * Sleeps are never early. */

static _Atomic long early, late, slept;

static void *sleeper(void *arg)
{
    uint32_t x = (uint32_t)(uintptr_t)arg * 2654435761u + 1;
    for (int i = 0; i < 10; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        int64_t d = WEFT_MSEC(1 + x % 20);
        int64_t t0 = weft_now();
        int r;
        if (i & 1) {
            r = weft_sleep(d);
        } else {
            r = weft_sleep_until(t0 + d);
        }
        int64_t el = weft_now() - t0;
        ASSERT_EQ(r, 0);
        if (el < d)
            atomic_fetch_add(&early, 1);
        if (el > d + LATE_NS)
            atomic_fetch_add(&late, 1);
        atomic_fetch_add(&slept, 1);
        if (x & 1)
            weft_yield();
    }
    return NULL;
}

static void test_sleep(void)
{
    int n = (int)ops_scaled(200);
    atomic_store(&early, 0);
    atomic_store(&late, 0);
    atomic_store(&slept, 0);
    weft_task *ts = calloc((size_t)n, sizeof *ts);
    ASSERT(ts);
    for (int i = 0; i < n; i++)
        ASSERT_EQ(weft_spawn(&ts[i], sleeper, (void *)(intptr_t)i), 0);
    for (int i = 0; i < n; i++)
        ASSERT_EQ(weft_join(ts[i], NULL), 0);
    free(ts);
    CHECK_EQ(atomic_load(&slept), n * 10L);
    CHECK_EQ(atomic_load(&early), 0);
    CHECK_EQ(atomic_load(&late), 0);

    /* zero, negative and past deadlines return promptly */
    int64_t t0 = weft_now();
    CHECK_EQ(weft_sleep(0), 0);
    CHECK_EQ(weft_sleep(-WEFT_SEC(5)), 0);
    CHECK_EQ(weft_sleep_until(t0 - WEFT_SEC(1)), 0);
    CHECK_EQ(weft_sleep_until(0), 0);
    CHECK_EQ(weft_sleep_until(t0), 0);
    CHECK_LT(weft_now() - t0, LATE_NS);
    /* a sleep of 1 ns is still not early */
    t0 = weft_now();
    CHECK_EQ(weft_sleep(1), 0);
    CHECK_GE(weft_now() - t0, 1);
}

/* Many concurrent sleepers: all finish, none early. */
static _Atomic long many_done, many_early;
static weft_wg many_wg;
static void *many_sleeper(void *arg)
{
    (void)arg;
    int64_t t0 = weft_now();
    ASSERT_EQ(weft_sleep(WEFT_MSEC(100)), 0);
    if (weft_now() - t0 < WEFT_MSEC(100))
        atomic_fetch_add(&many_early, 1);
    atomic_fetch_add(&many_done, 1);
    ASSERT_EQ(weft_wg_done(&many_wg), 0);
    return NULL;
}

static void test_many_sleepers(void)
{
    long n = test_scaled(100000);
    atomic_store(&many_done, 0);
    atomic_store(&many_early, 0);
    ASSERT_EQ(weft_wg_init(&many_wg), 0);
    ASSERT_EQ(weft_wg_add(&many_wg, n), 0);
    int64_t t0 = weft_now();
    for (long i = 0; i < n; i++)
        ASSERT_EQ(weft_spawn(NULL, many_sleeper, NULL), 0);
    CHECK_EQ(weft_wg_wait(&many_wg), 0);
    CHECK_GE(weft_now() - t0, WEFT_MSEC(100));
    CHECK_LT(weft_now() - t0, WEFT_SEC(60)); /* absurdly late would be a lost timer */
    CHECK_EQ(atomic_load(&many_done), n);
    CHECK_EQ(atomic_load(&many_early), 0);
}

/* ------------------------------------------------------------------------------------------
 * weft_now and weft_after. */

static void *now_checker(void *arg)
{
    (void)arg;
    long bad = 0;
    int64_t prev = weft_now();
    for (int i = 0; i < 200000; i++) {
        int64_t t = weft_now();
        if (t < prev)
            bad++;
        prev = t;
        if ((i & 1023) == 0)
            weft_yield(); /* maybe resume on another worker */
    }
    return (void *)bad;
}

static void test_now_after(void)
{
    CHECK(weft_now() > 0);
    enum { N = 4 };
    weft_task ts[N];
    for (int i = 0; i < N; i++)
        CHECK_EQ(weft_spawn(&ts[i], now_checker, NULL), 0);
    for (int i = 0; i < N; i++) {
        void *r;
        CHECK_EQ(weft_join(ts[i], &r), 0);
        CHECK_EQ((long)r, 0);
    }
    CHECK_EQ(weft_after(INT64_MAX), WEFT_FOREVER);
    CHECK_EQ(weft_after(INT64_MAX - 1), WEFT_FOREVER);
    CHECK_EQ(weft_after(WEFT_FOREVER - weft_now() + WEFT_SEC(1)), WEFT_FOREVER);
    int64_t a = weft_now();
    int64_t z = weft_after(0), neg = weft_after(-WEFT_SEC(10)), s = weft_after(WEFT_SEC(1));
    int64_t b = weft_now();
    CHECK(z >= a && z <= b);
    CHECK(neg >= a && neg <= b);
    CHECK(s >= a + WEFT_SEC(1) && s <= b + WEFT_SEC(1));
    CHECK_EQ(WEFT_MSEC(3), 3000000);
    CHECK_EQ(WEFT_USEC(3), 3000);
    CHECK_EQ(WEFT_SEC(3), 3000000000LL);
}

/* ------------------------------------------------------------------------------------------
 * Tickers. */

struct drain {
    weft_chan *ch; /* holds its own reference */
    int last;
    _Atomic long ticks;
};
static void *drain_ticks(void *arg)
{
    struct drain *d = arg;
    int64_t v;
    while ((d->last = weft_chan_recv(d->ch, &v)) == 0)
        atomic_fetch_add(&d->ticks, 1);
    weft_chan_unref(d->ch);
    return NULL;
}

static _Atomic int thread_ticker_done;
static void *thread_ticker(void *arg)
{
    (void)arg;
    long bad = 0;
    weft_ticker *tk;
    int64_t t0 = weft_now();
    if (weft_ticker_start(&tk, WEFT_MSEC(5)) != 0)
        return (void *)1;
    int64_t v;
    for (int k = 1; k <= 3; k++)
        if (weft_chan_recv(weft_ticker_chan(tk), &v) != 0 || v < t0 + k * WEFT_MSEC(5))
            bad++;
    if (weft_ticker_stop(tk) != 0)
        bad++;
    atomic_store(&thread_ticker_done, 1);
    return (void *)bad;
}

static void test_ticker(void)
{
    weft_ticker *tk;
    CHECK_EQ(weft_ticker_start(NULL, WEFT_MSEC(10)), WEFT_EINVAL);
    CHECK_EQ(weft_ticker_start(&tk, 0), WEFT_EINVAL);
    CHECK_EQ(weft_ticker_start(&tk, -5), WEFT_EINVAL);
    CHECK_EQ(weft_ticker_stop(NULL), WEFT_EINVAL);
    CHECK(weft_ticker_chan(NULL) == NULL);

    /* ticks on schedule: the k-th tick is never before start + k*period */
    const int64_t period = WEFT_MSEC(20);
    int64_t t0 = weft_now();
    CHECK_EQ(weft_ticker_start(&tk, period), 0);
    weft_chan *ch = weft_ticker_chan(tk);
    CHECK(ch != NULL);
    CHECK_EQ(weft_chan_cap(ch), 1);
    int64_t prev = t0;
    for (int k = 1; k <= 5; k++) {
        int64_t tick;
        CHECK_EQ(weft_chan_recv(ch, &tick), 0);
        CHECK_GE(tick, t0 + k * period);
        CHECK(tick > prev);
        CHECK_LE(tick, weft_now());
        prev = tick;
    }
    CHECK_LT(weft_now(), t0 + 5 * period + LATE_NS);

    /* a slow reader: ticks are dropped, one stays buffered */
    weft_sleep(10 * period);
    CHECK_EQ(weft_chan_len(ch), 1);
    int64_t a, b;
    CHECK_EQ(weft_chan_recv(ch, &a), 0);
    CHECK_EQ(weft_chan_recv(ch, &b), 0);
    CHECK(b > a);
    CHECK(a > prev);
    CHECK_EQ(weft_ticker_stop(tk), 0);

    /* stop while a reader holding its own reference is blocked on the channel: the reader
     * sees the channel closed */
    CHECK_EQ(weft_ticker_start(&tk, WEFT_MSEC(5)), 0);
    struct drain d = {.ch = weft_ticker_chan(tk)};
    weft_chan_ref(d.ch);
    weft_task t;
    CHECK_EQ(weft_spawn(&t, drain_ticks, &d), 0);
    WAIT_FOR(atomic_load(&d.ticks) >= 1); /* a tick taken (not: "30 ms is enough for one") */
    CHECK_EQ(weft_ticker_stop(tk), 0);
    CHECK_EQ(weft_join(t, NULL), 0);
    CHECK_EQ(d.last, WEFT_ECLOSED);
    CHECK_GE(atomic_load(&d.ticks), 1);

    /* many short-lived tickers: all stopped and released (ASan's leak check at exit) */
    enum { NT = 20 };
    weft_ticker *many[NT];
    for (int i = 0; i < NT; i++)
        CHECK_EQ(weft_ticker_start(&many[i], WEFT_MSEC(1 + i % 3)), 0);
    int got = 0; /* each ticks: wait for it (a deadline only against a hang) */
    for (int i = 0; i < NT; i++) {
        int64_t v;
        if (weft_chan_recv_until(weft_ticker_chan(many[i]), &v, weft_after(WEFT_SEC(30))) == 0)
            got++;
    }
    CHECK_EQ(got, NT);
    for (int i = 0; i < NT; i++)
        CHECK_EQ(weft_ticker_stop(many[i]), 0);
    /* started, read and stopped from a plain thread (not under simulation: the naps
     * below would run the virtual clock past the safety net while the thread works) */
    if (test_sim_skip("test_timer: a ticker started, read and stopped from a plain thread",
                      "plain threads' calls are not scheduled by the simulation"))
        goto stopped_at_once;
    pthread_t th;
    atomic_store(&thread_ticker_done, 0);
    CHECK_EQ(pthread_create(&th, NULL, thread_ticker, NULL), 0);
    int64_t dl = weft_now() + WEFT_SEC(10);
    while (!atomic_load(&thread_ticker_done) && weft_now() < dl)
        weft_sleep(WEFT_MSEC(1)); /* keep the worker free while the thread blocks */
    CHECK(atomic_load(&thread_ticker_done));
    void *tr;
    CHECK_EQ(pthread_join(th, &tr), 0);
    CHECK_EQ((long)tr, 0);

stopped_at_once:
    /* a ticker stopped right after it started */
    CHECK_EQ(weft_ticker_start(&tk, WEFT_SEC(1)), 0);
    CHECK_EQ(weft_ticker_stop(tk), 0);
}

/* ------------------------------------------------------------------------------------------
 * Plain threads. */

static void *thread_sleeps(void *arg)
{
    (void)arg;
    long bad = 0;
    for (int i = 1; i <= 5; i++) {
        int64_t d = WEFT_MSEC(i * 3);
        int64_t t0 = weft_now();
        if (weft_sleep(d) != 0)
            bad++;
        int64_t el = weft_now() - t0;
        if (el < d || el > d + LATE_NS)
            bad++;
    }
    int64_t t0 = weft_now();
    if (weft_sleep_until(t0 + WEFT_MSEC(5)) != 0 || weft_now() < t0 + WEFT_MSEC(5))
        bad++;
    if (weft_sleep_until(t0 - WEFT_SEC(1)) != 0 || weft_sleep(0) != 0 || weft_sleep(-1) != 0)
        bad++;
    return (void *)bad;
}

static _Atomic int thread_done;
static void *thread_sleeps_flag(void *arg)
{
    void *r = thread_sleeps(arg);
    atomic_store(&thread_done, 1);
    return r;
}

/* Far deadlines: a sleep until just before WEFT_FOREVER, and WEFT_FOREVER itself, park until
 * cancelled (no overflow turning them into immediate wake-ups). */
static void *sleep_until_arg(void *arg)
{
    int64_t dl = *(int64_t *)arg;
    return (void *)(intptr_t)weft_sleep_until(dl);
}

static void test_far_deadlines(void)
{
    int64_t dls[] = {WEFT_FOREVER - 1, WEFT_FOREVER, weft_after(WEFT_SEC(1000000))};
    for (int i = 0; i < 3; i++) {
        weft_task t;
        CHECK_EQ(weft_spawn(&t, sleep_until_arg, &dls[i]), 0);
        weft_sleep(WEFT_MSEC(10));
        void *r;
        CHECK_EQ(weft_join_until(t, &r, weft_now() - 1), WEFT_ETIMEDOUT); /* still asleep */
        CHECK_EQ(weft_cancel(t), 0);
        CHECK_EQ(weft_join(t, &r), 0);
        CHECK_EQ((intptr_t)r, WEFT_ECANCELED);
    }
}

static void test_thread_sleep(void)
{
    atomic_store(&thread_done, 0);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, thread_sleeps_flag, NULL), 0);
    /* meanwhile coroutines keep running on the workers */
    int64_t t0 = weft_now();
    int naps = 0;
    while (!atomic_load(&thread_done)) {
        ASSERT_EQ(weft_sleep(WEFT_MSEC(1)), 0);
        naps++;
        ASSERT(weft_now() - t0 < WEFT_SEC(10));
    }
    void *r;
    CHECK_EQ(pthread_join(th, &r), 0);
    CHECK_EQ((long)r, 0);
    CHECK_GE(naps, 1);
}

/* Under simulation ($WEFT_SEED: the ctest variant test_timer_sim) time is virtual: sleeps
 * of seconds take no real time and end exactly at their deadline, ticks come exactly a
 * period apart. */
static void test_virtual_time(void)
{
    int64_t t0 = weft_now();
    CHECK_EQ(weft_sleep(WEFT_SEC(10)), 0);
    CHECK_EQ(weft_now() - t0, WEFT_SEC(10));
    weft_ticker *tk;
    CHECK_EQ(weft_ticker_start(&tk, WEFT_SEC(60)), 0);
    t0 = weft_now();
    for (int i = 1; i <= 5; i++) {
        int64_t at;
        CHECK_EQ(weft_chan_recv(weft_ticker_chan(tk), &at), 0);
        CHECK_EQ(at - t0, i * WEFT_SEC(60));
    }
    CHECK_EQ(weft_ticker_stop(tk), 0);
}

static int app(void *arg)
{
    (void)arg;
    int64_t t0 = weft_now();
    bool sim = test_sim_seed() != 0;
    if (sim)
        test_virtual_time();
    test_sleep();
    test_now_after();
    test_ticker();
    /* A plain thread's real sleep is not waited for by virtual time (weft.h "Deterministic
     * simulation"): the naps below would run the clock past the 10 s safety net first. */
    if (!test_sim_skip("test_timer: coroutines running while a plain thread sleeps",
                       "virtual time does not wait for a plain thread's real sleep"))
        test_thread_sleep();
    test_far_deadlines();
    test_many_sleepers();
    test_sim_fingerprint("test_timer", t0, 0);
    return 0;
}

int main(void)
{
    /* sleeping on a plain thread needs no runtime */
    CHECK_EQ((long)thread_sleeps(NULL), 0);
    int threads[] = {0, 1, 2};
    for (int i = 0; i < 3; i++) {
        weft_config cfg = {.threads = threads[i]};
        ASSERT_EQ(weft_run(app, NULL, &cfg), 0);
    }
    TEST_PASS("test_timer", checks);
    return 0;
}
