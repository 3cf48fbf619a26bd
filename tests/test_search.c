/* SPDX-License-Identifier: MIT */
/* test_search.c — the search before sleeping (idle.c): a thief that runs out of work watches
 * the queues for a bounded time before it sleeps in the kernel. Links the static library and
 * reads the workers' counters (worker.h: n_searches, n_search_found, sleep_word), which
 * weft_stats does not report yet. Two workers; $WEFT_SEARCH_US=4096 (the largest bound; set,
 * it also lifts the "other threads want the CPUs" gate, so the test runs on a loaded machine).
 *
 * Checked:
 *  - found: main computes on its worker without yielding and spawns children; the other
 *    worker steals and runs them all (a thief), then searches (its n_searches moves: the
 *    event main waits for); main spawns two more, the second pushing the first from runnext
 *    into the LIFO where a thief can see it; the search sees it, the round steals it
 *    (n_search_found moves). A spawn that comes after the bound (main descheduled for 4 ms)
 *    is run by the thief after an ordinary wake-up, and the case is tried again.
 *  - bounded: then main parks on a channel. The thief's last search must end: every worker
 *    reaches its kernel wait (the event a plain thread waits for: sleep_word's ASLEEP bit),
 *    and while they sit there the process uses no CPU (CPU time over a 200 ms window,
 *    CLOCK_PROCESS_CPUTIME_ID less the thread's own, is under 10 % of it; a worker that kept
 *    spinning would use ~100 %).
 *  - a one-worker runtime never searches (no thieves), and WEFT_SEARCH_US=0 turns it off.
 * Deadlines are safety nets: each wait fails the test after 20 s. Stall reports are off
 * (main computes without yielding on purpose). */
#define _GNU_SOURCE
#include "hang.h"
#include "worker.h"

#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <weft.h>

#define DEADLINE_NS WEFT_SEC(20)
#define ATTEMPTS 50

static weft_chan *ch;
static _Atomic int failures;
static _Atomic long ran; /* children that ran */

static uint64_t total(size_t offset)
{
    uint64_t n = 0;
    for (int i = 0; i < weft__rt->nworkers; i++)
        n += atomic_load_explicit((_Atomic uint64_t *)((char *)weft__rt->workers[i] + offset),
                                  memory_order_relaxed);
    return n;
}
#define SEARCHES() total(offsetof(struct weft__worker, n_searches))
#define FOUND() total(offsetof(struct weft__worker, n_search_found))

/* Wait (polling, with a deadline) until cond holds; false on the deadline. In a coroutine
 * this computes without yielding: its worker stays busy. */
#define POLL_UNTIL(cond)                                                                           \
    ({                                                                                             \
        int64_t _until = weft_now() + DEADLINE_NS;                                                 \
        bool _ok;                                                                                  \
        while (!(_ok = (cond)) && weft_now() < _until)                                             \
            weft__cpu_relax();                                                                     \
        _ok;                                                                                       \
    })

static void fail(const char *what)
{
    fprintf(stderr, "test_search: %s\n", what);
    atomic_fetch_add(&failures, 1);
}

static void *child(void *arg)
{
    (void)arg;
    atomic_fetch_add(&ran, 1);
    return NULL;
}

static void spawn_child(void)
{
    weft_task t;
    ASSERT_EQ(weft_spawn(&t, child, NULL), 0);
    ASSERT_EQ(weft_detach(t), 0);
}

static int64_t cpu_ns(clockid_t c)
{
    struct timespec ts;
    ASSERT_EQ(clock_gettime(c, &ts), 0);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool all_asleep(void)
{
    for (int i = 0; i < weft__rt->nworkers; i++)
        if (!(atomic_load(&weft__rt->workers[i]->sleep_word) & HANG_ASLEEP))
            return false;
    return true;
}

/* The plain thread of case "bounded": main is parked on the channel. */
static void *idle_thread(void *arg)
{
    (void)arg;
    int64_t until = weft_now() + DEADLINE_NS;
    while (!all_asleep() && weft_now() < until)
        sched_yield();
    if (!all_asleep()) {
        fail("a worker never went to sleep");
    } else {
        int64_t p0 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID), t0 = cpu_ns(CLOCK_THREAD_CPUTIME_ID);
        int64_t w0 = weft_now();
        struct timespec window = {0, 200 * 1000 * 1000}; /* a measuring window, not a wait */
        nanosleep(&window, NULL);
        int64_t used =
            (cpu_ns(CLOCK_PROCESS_CPUTIME_ID) - p0) - (cpu_ns(CLOCK_THREAD_CPUTIME_ID) - t0);
        int64_t wall = weft_now() - w0;
        printf("idle runtime: %.3f ms of CPU over %.1f ms\n", (double)used / 1e6,
               (double)wall / 1e6);
        if (used * 10 > wall)
            fail("an idle runtime used CPU");
    }
    long v = 1;
    ASSERT_EQ(weft_chan_send(ch, &v), 0);
    return NULL;
}

#define CHILDREN 64
#define ATTEMPTS 50

static int thief_main(void *arg)
{
    bool expect_search = arg != NULL;
    /* found */
    uint64_t s_prev = SEARCHES();
    for (int i = 0; i < CHILDREN; i++)
        spawn_child();
    /* two workers: all stolen (we do not yield); one: we yield to them */
    if (!POLL_UNTIL(atomic_load(&ran) == CHILDREN || (weft__rt->nworkers == 1 && weft_yield())))
        fail("the children did not run");
    bool found = false;
    for (int a = 0; a < ATTEMPTS && expect_search && !found; a++) {
        /* a search began since our last spawn: the thief ran out of work */
        if (!POLL_UNTIL(SEARCHES() > s_prev)) {
            fail("the thief did not search");
            break;
        }
        s_prev = SEARCHES();
        uint64_t f0 = FOUND();
        long r0 = atomic_load(&ran);
        spawn_child();
        spawn_child(); /* pushes the first from runnext into the LIFO: stealable */
        if (!POLL_UNTIL(atomic_load(&ran) == r0 + 2))
            fail("the thief did not run the children");
        /* only a search in progress at our spawn can have found them; if it had ended (we
         * were descheduled past its bound), the spawn woke the thief: again */
        found = FOUND() > f0;
    }
    if (expect_search && !found)
        fail("no search found the spawned child");
    if (!expect_search && SEARCHES() != 0)
        fail("a search happened where none may");
    /* bounded */
    ASSERT_EQ(weft_chan_create(&ch, sizeof(long), 0), 0);
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, idle_thread, NULL), 0);
    long v;
    ASSERT_EQ(weft_chan_recv(ch, &v), 0);
    pthread_join(t, NULL);
    weft_chan_unref(ch);
    return 0;
}

/* Case "no futile wake-up" (WEFT_SEARCH_US=0, WEFT_NARROW=0): a plain thread sends K
 * messages to main, each once every worker sleeps. Each send wakes one worker (main is in the
 * global queue, nobody spins); that worker takes main as a spinner and, being the last
 * spinner, used to wake the other one too, which found nothing and slept again: two sleeps
 * per message. Now it wakes another only if work is left: one sleep per message. */
#define MESSAGES 20

/* Every worker is on the idle list (a waker pops a worker off it before waking it, so this
 * does not count a worker being woken as idle, which its sleep_word would). */
static bool all_idle(void)
{
    int64_t until = weft_now() + DEADLINE_NS;
    while (atomic_load(&weft__rt->nidle) != weft__rt->nworkers && weft_now() < until)
        sched_yield();
    return atomic_load(&weft__rt->nidle) == weft__rt->nworkers;
}

static void *sender_thread(void *arg)
{
    (void)arg;
    uint64_t s0 = 0;
    for (long i = 0; i <= MESSAGES; i++) {
        if (!all_idle())
            fail("a worker never went idle");
        if (i == 0)
            s0 = total(offsetof(struct weft__worker, n_sleeps));
        if (i == MESSAGES) {
            /* every worker is idle; the last to go idle may not have counted its sleep
             * yet (go_idle counts after its re-check): one more at most */
            uint64_t sleeps = total(offsetof(struct weft__worker, n_sleeps)) - s0;
            printf("%d messages, %llu sleeps\n", MESSAGES, (unsigned long long)sleeps);
            if (sleeps > MESSAGES + 3)
                fail("workers were woken for nothing");
        }
        ASSERT_EQ(weft_chan_send(ch, &i), 0);
    }
    return NULL;
}

static int futile_main(void *arg)
{
    (void)arg;
    ASSERT_EQ(weft_chan_create(&ch, sizeof(long), 0), 0);
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, sender_thread, NULL), 0);
    long v;
    for (long i = 0; i <= MESSAGES; i++) {
        ASSERT_EQ(weft_chan_recv(ch, &v), 0);
        ASSERT_EQ(v, i);
    }
    pthread_join(t, NULL);
    weft_chan_unref(ch);
    return 0;
}

int main(void)
{
    weft_config two = {.threads = 2, .stall_ms = -1}, one = {.threads = 1, .stall_ms = -1};
    setenv("WEFT_SEARCH_US", "4096", 1);
    ASSERT_EQ(weft_run(thief_main, "search", &two), 0);
    ASSERT_EQ(atomic_load(&failures), 0);
    printf("two workers, a thief searches: ok\n");
    atomic_store(&ran, 0);
    ASSERT_EQ(weft_run(thief_main, NULL, &one), 0);
    ASSERT_EQ(atomic_load(&failures), 0);
    printf("one worker, no search: ok\n");
    setenv("WEFT_SEARCH_US", "0", 1);
    atomic_store(&ran, 0);
    ASSERT_EQ(weft_run(thief_main, NULL, &two), 0);
    ASSERT_EQ(atomic_load(&failures), 0);
    printf("two workers, WEFT_SEARCH_US=0, no search: ok\n");
    setenv("WEFT_NARROW", "0", 1);
    ASSERT_EQ(weft_run(futile_main, NULL, &two), 0);
    ASSERT_EQ(atomic_load(&failures), 0);
    printf("no futile wake-up: ok\n");
    return 0;
}
