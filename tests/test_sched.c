/* SPDX-License-Identifier: MIT */
/* test_sched.c — the multi-threaded scheduler: the run order of spawned children (newest
 * first, bounded; a thief takes the oldest); coroutines migrate between workers; a million
 * coroutines spread over all workers each run exactly once; stealing under producers on
 * every worker; spawn and join from plain OS threads; pinning; coroutine-local storage that
 * follows a coroutine across threads; shutdown with coroutines still parked or queued.
 *
 * Under simulation ($WEFT_SEED: the ctest variants test_sched_sim and test_sched_seeds) one
 * worker runs the coroutine scenarios; skipped, with a line naming each: the run-order
 * policy (the seeded draw replaces it) and the plain threads; the run ends with a
 * fingerprint line (harness.h) that a replay must reproduce. */
#include "harness.h"
#include <weft.h>

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

static long checks;

static int nworkers;

/* ---- run order of spawned children ------------------------------------------------------ */

/* One worker: a spawner's children run newest first (depth-first for a tree of spawns: few
 * started, unfinished coroutines, each holding a stack). Plain ints: one thread. */
#define KIDS 10
static int order_log[4 * 128];
static int order_n;
static void *order_kid(void *arg)
{
    order_log[order_n++] = (int)(intptr_t)arg;
    return NULL;
}

static void test_newest_first(void)
{
    order_n = 0;
    weft_task t[KIDS];
    for (int i = 0; i < KIDS; i++)
        ASSERT_EQ(weft_spawn(&t[i], order_kid, (void *)(intptr_t)i), 0);
    for (int i = 0; i < KIDS; i++)
        ASSERT_EQ(weft_join(t[i], NULL), 0);
    CHECK_EQ(order_n, KIDS);
    for (int i = 0; i < KIDS; i++)
        CHECK_EQ(order_log[i], KIDS - 1 - i);
}

/* One worker: a coroutine that was already runnable (queued in the ring by its yield) runs
 * within a bound while a spawner's children run newest first: never more than 16 children
 * in a row (sched.c local_get's NEWEST_RUN) between two turns of the yielder. */
#define MANY_KIDS 100
static int kids_done;
static void *counted_kid(void *arg)
{
    order_log[order_n++] = (int)(intptr_t)arg;
    kids_done++;
    return NULL;
}
static void *log_yielder(void *arg)
{
    (void)arg;
    do {
        order_log[order_n++] = -1;
        weft_yield();
    } while (kids_done < MANY_KIDS);
    return NULL;
}
static void *kid_spawner(void *arg)
{
    (void)arg;
    for (int i = 0; i < MANY_KIDS; i++)
        ASSERT_EQ(weft_spawn(NULL, counted_kid, (void *)(intptr_t)i), 0);
    return NULL;
}

static void test_newest_first_bounded(void)
{
    order_n = 0;
    kids_done = 0;
    weft_task y, s;
    ASSERT_EQ(weft_spawn(&y, log_yielder, NULL), 0);
    ASSERT_EQ(weft_yield(), 0); /* y runs, logs and yields: it is queued in the ring */
    ASSERT_EQ(order_n, 1);
    ASSERT_EQ(weft_spawn(&s, kid_spawner, NULL), 0);
    ASSERT_EQ(weft_join(s, NULL), 0);
    ASSERT_EQ(weft_join(y, NULL), 0);
    CHECK_EQ(kids_done, MANY_KIDS);
    int run = 0, max_run = 0, yields = 0;
    for (int i = 1; i < order_n; i++) {
        if (order_log[i] < 0) {
            yields++;
            run = 0;
        } else if (++run > max_run) {
            max_run = run;
        }
    }
    CHECK_LE(max_run, 16);
    CHECK_GE(yields, MANY_KIDS / 16 - 1); /* the yielder had its turns meanwhile */
    int kids[2], nk = 0;                  /* the newest child first, then the next newest */
    for (int i = 1; i < order_n && nk < 2; i++)
        if (order_log[i] >= 0)
            kids[nk++] = order_log[i];
    CHECK_EQ(nk, 2);
    CHECK_EQ(kids[0], MANY_KIDS - 1);
    CHECK_EQ(kids[1], MANY_KIDS - 2);
}

/* One worker: a loop of spawns is held back once its worker's queue of unstarted children is
 * full (256): the spawner yields, ~16 children run (local_get's bound, then the spawner is
 * the ring's head), and it spawns again — the queue stays nearly full instead of draining to
 * empty each time (which sent a thief back to sleep once per batch). */
static int bp_ran;
static weft_wg bp_wg;
static void *bp_kid(void *arg)
{
    (void)arg;
    bp_ran++;
    weft_wg_done(&bp_wg);
    return NULL;
}

static void test_spawn_backpressure(void)
{
    enum { N = 3000 };
    bp_ran = 0;
    weft_wg_init(&bp_wg);
    weft_wg_add(&bp_wg, N);
    int max_in_spawn = 0, max_queued = 0, held_back = 0;
    for (int i = 0; i < N; i++) {
        int before = bp_ran;
        ASSERT_EQ(weft_spawn(NULL, bp_kid, NULL), 0);
        int in_spawn = bp_ran - before; /* children run while this spawn held us back */
        if (in_spawn) {
            held_back++;
            if (in_spawn > max_in_spawn)
                max_in_spawn = in_spawn;
        }
        if (i + 1 - bp_ran > max_queued)
            max_queued = i + 1 - bp_ran;
    }
    ASSERT_EQ(weft_wg_wait(&bp_wg), 0);
    CHECK_EQ(bp_ran, N);
    CHECK_GT(held_back, 0);
    CHECK_LE(max_in_spawn, 16);     /* back after the bound, not after the whole queue */
    CHECK_LE(max_queued, 256 + 1);  /* the LIFO's 256 and runnext */
    CHECK_GE(max_queued, 256 - 16); /* and it stays nearly full */
}

/* Two workers: the spawner keeps its worker busy, so its children run only when the other
 * worker steals them — and a thief takes the oldest unstarted child first (in a tree of
 * spawns, the biggest subtree). Not under forced narrow mode (nothing is shared out) or
 * $WEFT_DEBUG_MIGRATE (every spawn is posted to another worker's inbox: no stealing). */
static _Atomic int first_kid;
static weft_task stolen_kids[KIDS];
static void *stolen_kid(void *arg)
{
    int none = -1;
    atomic_compare_exchange_strong(&first_kid, &none, (int)(intptr_t)arg);
    return NULL;
}
static void *busy_spawner(void *arg)
{
    (void)arg;
    for (int i = 0; i < KIDS; i++)
        ASSERT_EQ(weft_spawn(&stolen_kids[i], stolen_kid, (void *)(intptr_t)i), 0);
    int64_t deadline = weft_now() + WEFT_SEC(60); /* a safety net against a hang only */
    while (atomic_load(&first_kid) < 0 && weft_now() < deadline)
        ; /* no yield: this worker runs none of the children */
    return NULL;
}

static void test_thief_takes_oldest(void)
{
    const char *narrow = getenv("WEFT_NARROW");
    if (nworkers < 2 || (narrow && !strcmp(narrow, "1")) || getenv("WEFT_DEBUG_MIGRATE"))
        return;
    atomic_store(&first_kid, -1);
    weft_task s;
    ASSERT_EQ(weft_spawn(&s, busy_spawner, NULL), 0);
    ASSERT_EQ(weft_join(s, NULL), 0);
    for (int i = 0; i < KIDS; i++)
        ASSERT_EQ(weft_join(stolen_kids[i], NULL), 0);
    CHECK_EQ(atomic_load(&first_kid), 0);
}

/* ---- migration: a token passed around a ring of coroutines over channels --------------- */

#define RING 8
static weft_chan *ring[RING];
static _Atomic int max_seen_workers;

static void *ring_member(void *arg)
{
    int me = (int)(intptr_t)arg;
    unsigned seen = 0;
    long token;
    for (;;) {
        if (weft_chan_recv(ring[me], &token) != 0)
            break;
        seen |= 1u << weft_worker_index();
        volatile unsigned long spin = 0; /* a little work, so others get stolen */
        for (int i = 0; i < 2000; i++)
            spin += (unsigned long)i;
        if (token == 0) {
            for (int i = 0; i < RING; i++)
                weft_chan_close(ring[i]);
            break;
        }
        token--;
        weft_chan_send(ring[(me + 1) % RING], &token);
    }
    int n = __builtin_popcount(seen);
    int cur = atomic_load(&max_seen_workers);
    while (n > cur && !atomic_compare_exchange_weak(&max_seen_workers, &cur, n))
        ;
    return NULL;
}

static void test_migration(void)
{
    atomic_store(&max_seen_workers, 0);
    weft_task t[RING * 2];
    for (int i = 0; i < RING; i++)
        ASSERT_EQ(weft_chan_create(&ring[i], sizeof(long), 1), 0);
    /* Two tokens' worth of members: two rings sharing channels keep both workers busy. */
    for (int i = 0; i < RING; i++)
        ASSERT_EQ(weft_spawn(&t[i], ring_member, (void *)(intptr_t)i), 0);
    for (int i = 0; i < RING; i++)
        ASSERT_EQ(weft_spawn(&t[RING + i], ring_member, (void *)(intptr_t)i), 0);
    long token = test_scaled(20000);
    ASSERT_EQ(weft_chan_send(ring[0], &token), 0);
    ASSERT_EQ(weft_chan_send(ring[RING / 2], &token), 0);
    for (int i = 0; i < 2 * RING; i++)
        ASSERT_EQ(weft_join(t[i], NULL), 0);
    for (int i = 0; i < RING; i++)
        weft_chan_unref(ring[i]);
}

/* Migration under load: CPU-bound coroutines of unequal length that yield often. The worker
 * whose share finishes first steals from the other, so coroutines that already ran on one
 * worker continue on the other. */
static _Atomic unsigned migrated;
static void *unequal_work(void *arg)
{
    long rounds = (long)arg;
    unsigned seen = 0;
    for (long r = 0; r < rounds; r++) {
        seen |= 1u << weft_worker_index();
        volatile unsigned long spin = 0;
        for (int i = 0; i < 20000; i++)
            spin += (unsigned long)i;
        weft_yield();
    }
    seen |= 1u << weft_worker_index();
    if (__builtin_popcount(seen) >= 2)
        atomic_fetch_add(&migrated, 1);
    return NULL;
}

static void test_migration_under_load(void)
{
    /* Forced narrow mode (WEFT_NARROW=1, see README) never shares work out: no migration. */
    const char *narrow = getenv("WEFT_NARROW");
    if (nworkers < 2 || (narrow && !strcmp(narrow, "1")))
        return;
    /* A few attempts, each normally enough on its own: scheduling is not deterministic. */
    for (int attempt = 0; attempt < 10 && atomic_load(&migrated) == 0; attempt++) {
        weft_task t[16];
        for (int i = 0; i < 16; i++)
            ASSERT_EQ(weft_spawn(&t[i], unequal_work, (void *)(long)(20 + 15 * i)), 0);
        for (int i = 0; i < 16; i++)
            ASSERT_EQ(weft_join(t[i], NULL), 0);
    }
    CHECK(atomic_load(&migrated) > 0); /* some coroutine ran on two worker threads */
}

/* ---- a million coroutines over all workers, each run exactly once ---------------------- */

static _Atomic unsigned char *ran;
static _Atomic unsigned workers_used;
static void *mark(void *arg)
{
    atomic_fetch_add_explicit(&ran[(intptr_t)arg], 1, memory_order_relaxed);
    atomic_fetch_or_explicit(&workers_used, 1u << weft_worker_index(), memory_order_relaxed);
    return NULL;
}

static void *mark_worker(void *arg)
{
    (void)arg;
    atomic_fetch_or_explicit(&workers_used, 1u << weft_worker_index(), memory_order_relaxed);
    return NULL;
}

static void test_million(void)
{
    long n = test_scaled(1000000);
    ran = calloc((size_t)n, 1);
    atomic_store(&workers_used, 0);
    weft_wg wg = WEFT_WG_INIT;
    /* Spawn in chunks of 1000 from spawner coroutines (which may run anywhere). */
    for (long i = 0; i < n; i++)
        ASSERT_EQ(weft_spawn(NULL, mark, (void *)(intptr_t)i), 0);
    /* Detached: wait until all marks are in. */
    for (;;) {
        long done = 0;
        for (long i = 0; i < n; i++)
            done += atomic_load_explicit(&ran[i], memory_order_relaxed) != 0;
        if (done == n)
            break;
        weft_sleep(WEFT_MSEC(5));
    }
    (void)wg;
    long once = 0;
    for (long i = 0; i < n; i++)
        once += atomic_load(&ran[i]) == 1;
    CHECK_EQ(once, n);
    free((void *)ran);
    /* Every worker takes part: the others steal from the spawner's queue. How many marks each
     * one ran depends on the OS giving its thread the CPU (a loaded machine may starve one
     * for the whole burst above), so keep spawning batches until each has run some. */
    const char *narrow = getenv("WEFT_NARROW"); /* forced narrow: nothing is shared out */
    if (nworkers > 1 && !TEST_TSAN && !(narrow && !strcmp(narrow, "1"))) {
        int64_t deadline = weft_now() + WEFT_SEC(60);
        while (__builtin_popcount(atomic_load(&workers_used)) < nworkers) {
            ASSERT(weft_now() < deadline);
            for (int i = 0; i < 1000; i++)
                ASSERT_EQ(weft_spawn(NULL, mark_worker, NULL), 0);
            weft_sleep(WEFT_MSEC(1));
        }
        CHECK_EQ(__builtin_popcount(atomic_load(&workers_used)), nworkers);
    }
}

/* ---- steal stress: producers on every worker ------------------------------------------- */

static _Atomic long stress_count;
static void *leaf(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&stress_count, 1, memory_order_relaxed);
    if ((atomic_load_explicit(&stress_count, memory_order_relaxed) & 63) == 0)
        weft_yield();
    return NULL;
}

static void *producer(void *arg)
{
    long k = (long)arg;
    weft_task t[64];
    for (long i = 0; i < k; i += 64) {
        for (int j = 0; j < 64; j++)
            ASSERT_EQ(weft_spawn(&t[j], leaf, NULL), 0);
        for (int j = 0; j < 64; j++)
            ASSERT_EQ(weft_join(t[j], NULL), 0);
    }
    return NULL;
}

static void test_steal_stress(void)
{
    atomic_store(&stress_count, 0);
    long per = test_scaled(64000) / 64 * 64;
    if (per < 64)
        per = 64;
    int np = 4 * nworkers;
    weft_task t[64];
    for (int i = 0; i < np; i++)
        ASSERT_EQ(weft_spawn(&t[i], producer, (void *)per), 0);
    for (int i = 0; i < np; i++)
        ASSERT_EQ(weft_join(t[i], NULL), 0);
    CHECK_EQ(atomic_load(&stress_count), per * np);
}

/* ---- plain OS threads spawn and join ---------------------------------------------------- */

static void *times_two(void *arg)
{
    weft_sleep(WEFT_MSEC(1));
    return (void *)((intptr_t)arg * 2);
}

static void *wait_gate(void *arg)
{
    return (void *)(long)weft_chan_recv(arg, NULL);
}

static void *foreign_thread(void *arg)
{
    long base = (long)arg, sum = 0;
    for (long i = 0; i < 50; i++) {
        weft_task t;
        if (weft_spawn(&t, times_two, (void *)(base + i)) != 0)
            return (void *)-1L;
        void *r;
        if (weft_join(t, &r) != 0)
            return (void *)-2L;
        sum += (intptr_t)r;
    }
    /* join_until timeout from a thread: `slow` waits for a gate only this thread opens, so
     * it cannot finish before the timed-out join, however the OS schedules us. */
    weft_task slow;
    weft_chan *gate;
    if (weft_chan_create(&gate, 0, 0) != 0 || weft_spawn(&slow, wait_gate, gate) != 0)
        return (void *)-3L;
    if (weft_join_until(slow, NULL, weft_now()) != WEFT_ETIMEDOUT)
        return (void *)-4L;
    weft_chan_close(gate);
    if (weft_join(slow, NULL) != 0)
        return (void *)-5L;
    weft_chan_unref(gate);
    return (void *)sum;
}

/* pthread_join blocks: offload it, or the worker it would block is the one the threads'
 * coroutines need (with one worker, a deadlock). */
static void *join_thread(void *arg)
{
    void *r;
    pthread_join(*(pthread_t *)arg, &r);
    return r;
}

static void test_foreign_threads(void)
{
    pthread_t th[4];
    for (long i = 0; i < 4; i++)
        ASSERT_EQ(pthread_create(&th[i], NULL, foreign_thread, (void *)(i * 1000)), 0);
    for (long i = 0; i < 4; i++) {
        void *r;
        ASSERT_EQ(weft_blocking(join_thread, &th[i], &r), 0);
        long want = 0;
        for (long j = 0; j < 50; j++)
            want += 2 * (i * 1000 + j);
        CHECK_EQ((long)r, want);
    }
}

/* ---- pinning and coroutine-local storage ------------------------------------------------ */

static weft_local key;
static _Atomic int dtor_runs;
static void local_dtor(void *v)
{
    atomic_fetch_add(&dtor_runs, 1);
    free(v);
}

static void *pinned_and_local(void *arg)
{
    (void)arg;
    long *mine = malloc(sizeof *mine);
    *mine = (long)weft_self_id();
    ASSERT_EQ(weft_local_set(key, mine), 0);
    ASSERT_EQ(weft_pin(), 0);
    int home = weft_worker_index();
    for (int i = 0; i < 200; i++) {
        weft_sleep(WEFT_USEC(10 + i % 7));
        weft_yield();
        ASSERT_EQ(weft_worker_index(), home); /* pinned: never moves */
        ASSERT(weft_local_get(key) == mine);
    }
    ASSERT_EQ(weft_unpin(), 0);
    ASSERT_EQ(weft_unpin(), WEFT_ESTATE);
    for (int i = 0; i < 200; i++) { /* unpinned: may move, the local follows */
        weft_sleep(WEFT_USEC(10));
        ASSERT(weft_local_get(key) == mine);
        ASSERT_EQ(*(long *)weft_local_get(key), (long)weft_self_id());
    }
    return NULL;
}

static void test_pin_and_locals(void)
{
    atomic_store(&dtor_runs, 0);
    weft_task t[8];
    for (int i = 0; i < 8; i++)
        ASSERT_EQ(weft_spawn(&t[i], pinned_and_local, NULL), 0);
    for (int i = 0; i < 8; i++)
        ASSERT_EQ(weft_join(t[i], NULL), 0);
    CHECK_EQ(atomic_load(&dtor_runs), 8);
    weft_local bad = {0};
    CHECK_EQ(weft_local_set(bad, NULL), WEFT_EINVAL);
    CHECK(weft_local_get(bad) == NULL);
}

static int app(void *arg)
{
    (void)arg;
    weft_stats st;
    ASSERT_EQ(weft_stats_get(&st), 0);
    nworkers = st.workers;
    int64_t t0 = weft_now();
    if (nworkers == 1 &&
        !test_sim_skip("test_sched: the run order of spawned children (newest first, bounded, "
                       "spawn back-pressure)",
                       "simulation replaces the run-order policy by a seeded draw")) {
        test_newest_first();
        test_newest_first_bounded();
        test_spawn_backpressure();
    }
    test_thief_takes_oldest();
    test_migration();
    test_migration_under_load();
    test_million();
    test_steal_stress();
    if (!test_sim_skip("test_sched: spawn and join from plain threads",
                       "plain threads' calls are not scheduled by the simulation"))
        test_foreign_threads();
    test_pin_and_locals();
    test_sim_fingerprint("test_sched", t0, 0);
    return 0;
}

/* ---- shutdown with coroutines still parked and queued ----------------------------------- */

static weft_chan *never;
static void *park_forever(void *arg)
{
    (void)arg;
    long v;
    weft_chan_recv(never, &v); /* nobody sends: still parked when main returns */
    return NULL;
}
static void *spin_yield(void *arg)
{
    (void)arg;
    for (;;)
        weft_yield(); /* runnable forever: still queued when main returns */
    return NULL;
}
static void *sleep_long(void *arg)
{
    (void)arg;
    weft_sleep(WEFT_SEC(3600));
    return NULL;
}

static int shutdown_main(void *arg)
{
    (void)arg;
    weft_chan_create(&never, sizeof(long), 0);
    for (int i = 0; i < 100; i++) {
        weft_spawn(NULL, park_forever, NULL);
        weft_spawn(NULL, sleep_long, NULL);
    }
    weft_spawn(NULL, spin_yield, NULL);
    /* Until the 200 have parked (the event, not a sleep: under simulation virtual time would
     * stand still while spin_yield runs, and on a busy machine 20 ms may not be enough). */
    weft_stats st;
    while (weft_stats_get(&st) == 0 && st.parks < 200)
        weft_yield();
    return 5; /* Go's rule: the runtime ends; the others are abandoned and released */
}

int main(void)
{
    for (int threads = 1; threads <= 2; threads++) {
        weft_config cfg = {.threads = threads};
        ASSERT_EQ(weft_local_create(&key, local_dtor), 0);
        ASSERT_EQ(weft_run(app, NULL, &cfg), 0);
        int64_t t0 = weft_now();
        ASSERT_EQ(weft_run(shutdown_main, NULL, &cfg), 5);
        CHECK(weft_now() - t0 < WEFT_SEC(60)); /* it returned, not hung on the sleepers */
        /* The channel outlives the runtime with waiters of abandoned coroutines in it: it
         * may be released now (their run is over; the waiters are never touched). */
        weft_chan_unref(never);
    }
    TEST_PASS("test_sched", checks);
    return 0;
}
