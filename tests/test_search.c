/* SPDX-License-Identifier: MIT */
/* test_search.c — the search before sleeping (idle.c): a worker that runs out of work watches
 * the queues for a bounded time before it sleeps in the kernel. Links the static library and
 * reads the workers' counters (worker.h: n_searches, n_search_found, sleep_word), which
 * weft_stats does not report yet.
 *
 * Checked, with one and with two workers:
 *  - found: the coroutine waiting on a channel is parked and its worker searches (its
 *    n_searches moved); a plain thread then sends; the search sees the coroutine readied
 *    and the round takes it (n_search_found moves).
 *    $WEFT_SEARCH_US=4096 (the largest bound, and it lifts the "other threads want the
 *    CPUs" gate, so the case runs on a loaded machine); a send that comes after the bound
 *    (the test thread descheduled for 4 ms) takes the ordinary wake-up and is retried.
 *  - bounded: with that same 4 ms bound, an idle runtime stops searching: every worker
 *    reaches its kernel wait (the event waited for: sleep_word's ASLEEP bit), and while
 *    they sit there the process uses no CPU (CPU time over a 200 ms window, measured with
 *    CLOCK_PROCESS_CPUTIME_ID less the test thread's own, is under 10 % of it; a worker
 *    that kept spinning would use ~100 %).
 * Deadlines are safety nets: each wait fails the test after 20 s. */
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
static _Atomic long received = -1; /* the last value main received */
static _Atomic int failures;

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

/* Wait (polling, with a deadline) until cond holds; false on the deadline. */
#define POLL_UNTIL(cond)                                                                           \
    ({                                                                                             \
        int64_t _until = weft_now() + DEADLINE_NS;                                                 \
        bool _ok;                                                                                  \
        while (!(_ok = (cond)) && weft_now() < _until)                                             \
            sched_yield();                                                                         \
        _ok;                                                                                       \
    })

static void put(long v)
{
    ASSERT_EQ(weft_chan_send(ch, &v), 0);
}

/* The plain thread of case "found". */
static void *found_thread(void *arg)
{
    (void)arg;
    uint64_t s0 = SEARCHES();
    put(0);
    for (long i = 1; i <= ATTEMPTS; i++) {
        /* main received i - 1 and parked again: its worker searches */
        if (!POLL_UNTIL(atomic_load(&received) == i - 1 && SEARCHES() > s0)) {
            fprintf(stderr, "test_search: no search began after message %ld\n", i - 1);
            atomic_fetch_add(&failures, 1);
            put(-1);
            return NULL;
        }
        uint64_t f0 = FOUND();
        s0 = SEARCHES();
        put(i);
        ASSERT(POLL_UNTIL(atomic_load(&received) == i));
        if (FOUND() > f0) { /* a search saw main readied and its round took it */
            put(-1);
            return NULL;
        }
        /* the search had ended before our send (we were descheduled): again */
    }
    fprintf(stderr, "test_search: no search found the message in %d attempts\n", ATTEMPTS);
    atomic_fetch_add(&failures, 1);
    put(-1);
    return NULL;
}

static int found_main(void *arg)
{
    (void)arg;
    ASSERT_EQ(weft_chan_create(&ch, sizeof(long), 0), 0);
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, found_thread, NULL), 0);
    long v;
    do {
        ASSERT_EQ(weft_chan_recv(ch, &v), 0);
        atomic_store(&received, v);
    } while (v >= 0);
    pthread_join(t, NULL);
    weft_chan_unref(ch);
    return 0;
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

/* The plain thread of case "bounded". */
static void *idle_thread(void *arg)
{
    (void)arg;
    /* main is parked on the channel: every worker must end its search and sleep */
    if (!POLL_UNTIL(atomic_load(&received) == -2 && all_asleep())) {
        fprintf(stderr, "test_search: a worker never went to sleep\n");
        atomic_fetch_add(&failures, 1);
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
        if (used * 10 > wall) {
            fprintf(stderr, "test_search: an idle runtime used %lld ns of CPU in %lld ns\n",
                    (long long)used, (long long)wall);
            atomic_fetch_add(&failures, 1);
        }
    }
    put(-1);
    return NULL;
}

static int idle_main(void *arg)
{
    (void)arg;
    ASSERT_EQ(weft_chan_create(&ch, sizeof(long), 0), 0);
    atomic_store(&received, -2);
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, idle_thread, NULL), 0);
    long v;
    ASSERT_EQ(weft_chan_recv(ch, &v), 0);
    ASSERT_EQ(v, -1);
    pthread_join(t, NULL);
    weft_chan_unref(ch);
    return 0;
}

int main(void)
{
    setenv("WEFT_SEARCH_US", "4096", 1);
    for (int threads = 1; threads <= 2; threads++) {
        weft_config cfg = {.threads = threads};
        atomic_store(&received, -1);
        ASSERT_EQ(weft_run(found_main, NULL, &cfg), 0);
        ASSERT_EQ(atomic_load(&failures), 0);
        printf("found, %d worker(s): ok\n", threads);
        ASSERT_EQ(weft_run(idle_main, NULL, &cfg), 0);
        ASSERT_EQ(atomic_load(&failures), 0);
        printf("bounded, %d worker(s): ok\n", threads);
    }
    return 0;
}
