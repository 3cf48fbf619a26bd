/* SPDX-License-Identifier: MIT */
/* load.c — floor 2 (the worker): how busy the runtime is, and what the idle policy makes of it:
 * poll-spinning before sleep, and gathering fd waits on one worker when the whole runtime needs
 * less than one CPU ("narrow" mode). The scheduler (sched.c) asks; nothing here switches or queues.
 *
 * The cost both answer. A worker asleep in epoll_wait is woken by whoever makes one of its
 * descriptors ready: on loopback that is the peer's send(2), which pays try_to_wake_up and,
 * on a VM, an inter-processor interrupt. Measured with redis-benchmark -P 16 (one client
 * thread, the bottleneck, on a 2-core VM): the client spent 13.7% of its time waking the
 * server against weft (2 workers, each sleeping ~7,500 times per 2M requests) and 2.6%
 * against redis-server (one thread, slower per request, so a batch was always waiting):
 * weft served 0.88x redis's requests/s. One worker with a short spin before sleeping served
 * 1.02x; two workers with the same spin 0.90-0.96x: each of them sleeps and is woken by its
 * own descriptors, and the two compete with the client for the two CPUs.
 *
 * 1. Poll-spinning (weft__pollspin). Before sleeping, a worker with fd waits in its loop
 *    goes round find_work (inbox, queues, epoll_wait(0)) for up to POLL_SPIN_NS more, so the
 *    next request is usually found awake. Rules, each fixing a way spinning was measured to
 *    hurt:
 *    - one poll-spinner in the runtime at a time (rt->npollspin, CAS 0 -> 1 to take, store 0
 *      to give back; relaxed: it only bounds how many spin, nothing is published by it);
 *    - only when the previous sleep was short (< POLL_DENSE_NS): events are dense, a spin
 *      will likely catch the next one; a sparse load (a keep-alive connection that talks
 *      every second) never pays for spins;
 *    - never when other threads want the CPUs: once per POLL_PROBE_NS the worker reads how
 *      many threads are runnable system-wide (/proc/loadavg); if, besides weft's own busy
 *      workers, as many as there are CPUs want to run, a spin would take a CPU from them
 *      (wrk's two threads against two workers on 2 CPUs: an unconditional 20 us spin cost
 *      5% of HTTP requests/s and moved p99 from 4.4 to 7.9 ms). A worker that cannot read
 *      the file never spins.
 *    Spin time counts as idle time in the accounting below.
 *
 * 2. Narrow mode (weft__load_update, rt->narrow). Every WEFT__LOAD_WINDOW_NS one worker (whoever
 *    gets there: a trylock) adds up the idle time and the sleeps of all workers over the
 *    window. When the workers together were busy less than WEFT__LOAD_NARROW_PCT of one CPU and
 *    went to sleep at least WEFT__LOAD_NARROW_SLEEPS times (wake-ups are frequent enough to be
 *    worth saving: a sparse load — one request every 20 ms — gains nothing from gathering
 *    and would pay the watcher's wake-ups below, measured 2.6 wakes per request against 1),
 *    the runtime goes narrow: a coroutine about to wait on a descriptor first moves to the home worker
 *    (worker 0) and waits in its loop (io.c); work the home queues for itself wakes nobody
 *    and a spinner that found work does not ramp up another (sched.c enqueue, idle.c
 *    reset_spinning); a wake-up that is needed (work queued off the home, or in the global
 *    queue) goes to the home first, another idle worker only if the home is awake; the
 *    others stop stealing. So within one request cycle every connection waits in one epoll
 *    set, one thread serves them, and a peer's send wakes at most one thread. When the home
 *    worker is busy more than WEFT__LOAD_WIDE_PCT of a window, the runtime goes wide again and
 *    wakes a worker to take the surplus; a window is judged whenever any worker passes
 *    through find_work, and the watcher (worker 1; idle.c go_idle, kicked when the runtime
 *    turns narrow) sleeps at most LOAD_WATCH_NS while the home is awake, so a home stuck in
 *    a long computation is seen within one or two windows. What widening cannot rescue:
 *    coroutines that moved to the home sit in its inbox and its loop, which only the home
 *    serves — while it computes without yielding they wait, as they would for any worker
 *    of a wide runtime whose loop holds their waits.
 *    This is weft's answer to Go's single netpoller (weft keeps one libev loop per worker):
 *    at low load the waits gather; under load they spread. Pinned coroutines never move.
 *    rt->narrow is a hint read relaxed: in either mode every queued coroutine has an awake
 *    owner, or its queuer wakes a sleeping worker (the home first, idle.c wake_idle), with
 *    the same fences as in wide mode; so a stale read costs at most a hop, or a wake-up of
 *    a worker that was not needed.
 *
 * Idle accounting: each worker publishes `idle_mark`, one atomic word that the decider can
 * read at any time: >= 0 is the idle time accumulated so far (awake); < 0 means asleep
 * since `from`, encoded as acc - from - 1 (always negative: acc <= from), so the idle time
 * up to `now` is now + mark + 1. Owner writes (relaxed store), decider reads (relaxed):
 * a stale value shifts one sample between windows, never loses it. */
#define _GNU_SOURCE
#include "load.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define POLL_SPIN_NS WEFT_USEC(20)
#define POLL_DENSE_NS WEFT_USEC(200)
#define POLL_PROBE_NS WEFT_MSEC(1)
#define WEFT__LOAD_WINDOW_NS WEFT_MSEC(10)
#define WEFT__LOAD_NARROW_PCT 75
#define WEFT__LOAD_NARROW_SLEEPS 10 /* per window: workers went to sleep >= 1,000 times a second */
#define WEFT__LOAD_WIDE_PCT 90

/* ---- idle accounting --------------------------------------------------------------------- */

void weft__idle_begin(struct weft__worker *w, int64_t now)
{
    w->idle_from = now;
    atomic_store_explicit(&w->idle_mark, w->idle_acc - now - 1, memory_order_relaxed);
}

void weft__idle_end(struct weft__worker *w, int64_t now)
{
    w->idle_acc += now - w->idle_from;
    atomic_store_explicit(&w->idle_mark, w->idle_acc, memory_order_relaxed);
}

static int64_t idle_until(struct weft__worker *w, int64_t now)
{
    int64_t m = atomic_load_explicit(&w->idle_mark, memory_order_relaxed);
    return m < 0 ? now + m + 1 : m;
}

/* ---- poll-spinning ----------------------------------------------------------------------- */

/* How many threads are runnable system-wide right now (the fourth field of /proc/loadavg,
 * "running/total"; it counts the caller), or -1. */
static WEFT_NOINLINE int system_runnable(void)
{
    int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char buf[128];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    double l1, l5, l15;
    int running;
    return sscanf(buf, "%lf %lf %lf %d/", &l1, &l5, &l15, &running) == 4 ? running : -1;
}

static bool cpus_wanted(struct weft__worker *w, int64_t now)
{
    if (now - w->poll_probe_at < POLL_PROBE_NS)
        return w->poll_contended;
    struct weft__runtime *rt = weft__rt;
    int r = system_runnable();
    int ours = rt->nworkers - atomic_load_explicit(&rt->nidle, memory_order_relaxed);
    w->poll_contended = r < 0 || r - ours >= rt->ncpus;
    w->poll_probe_at = now;
    return w->poll_contended;
}

bool weft__pollspin(struct weft__worker *w, int64_t now)
{
    if (!w->poll_spin_start) {
        if (w->io_waits == 0 || w->poll_last_sleep >= POLL_DENSE_NS || cpus_wanted(w, now))
            return false;
        int zero = 0;
        if (!atomic_compare_exchange_strong_explicit(&weft__rt->npollspin, &zero, 1,
                                                     memory_order_relaxed, memory_order_relaxed))
            return false;
        w->poll_spin_start = now;
        weft__idle_begin(w, now);
        return true;
    }
    if (now - w->poll_spin_start < POLL_SPIN_NS && w->io_waits > 0) {
        weft__cpu_relax();
        return true;
    }
    weft__pollspin_end(w);
    return false;
}

void weft__pollspin_end(struct weft__worker *w)
{
    if (!w->poll_spin_start)
        return;
    weft__idle_end(w, weft_now());
    w->poll_spin_start = 0;
    atomic_store_explicit(&weft__rt->npollspin, 0, memory_order_relaxed);
}

/* ---- narrow mode ------------------------------------------------------------------------- */

int weft__load_update(int64_t now)
{
    struct weft__runtime *rt = weft__rt;
    if (now < atomic_load_explicit(&rt->load_next, memory_order_relaxed) ||
        pthread_mutex_trylock(&rt->load_mu) != 0)
        return 0;
    int turned = 0;
    if (now >= atomic_load_explicit(&rt->load_next, memory_order_relaxed)) {
        int64_t dt = now - rt->load_at, idle = 0;
        uint64_t sleeps = 0;
        for (int i = 0; i < rt->nworkers; i++) {
            struct weft__worker *v = rt->workers[i];
            int64_t t = idle_until(v, now);
            idle += t - rt->load_idle[i];
            rt->load_idle[i] = t;
            uint64_t n = atomic_load_explicit(&v->n_sleeps, memory_order_relaxed);
            sleeps += n - rt->load_sleeps[i];
            rt->load_sleeps[i] = n;
        }
        int64_t busy = (int64_t)rt->nworkers * dt - idle;
        bool narrow = atomic_load_explicit(&rt->narrow, memory_order_relaxed);
        if (rt->load_at && rt->narrow_allowed) {
            if (!narrow && busy * 100 < dt * WEFT__LOAD_NARROW_PCT &&
                (int64_t)sleeps * WEFT__LOAD_WINDOW_NS >= WEFT__LOAD_NARROW_SLEEPS * dt) {
                atomic_store_explicit(&rt->narrow, true, memory_order_relaxed);
                atomic_fetch_add_explicit(&rt->narrow_count, 1, memory_order_relaxed);
                turned = WEFT_LOAD_NARROWED;
            } else if (narrow && busy * 100 > dt * WEFT__LOAD_WIDE_PCT) {
                atomic_store_explicit(&rt->narrow, false, memory_order_relaxed);
                turned = WEFT_LOAD_WIDENED;
            }
        }
        if (rt->load_debug)
            fprintf(stderr, "weft load: busy %3lld%% of one CPU, %llu sleeps over %lld us -> %s\n",
                    (long long)(dt ? busy * 100 / dt : 0), (unsigned long long)sleeps,
                    (long long)(dt / 1000),
                    atomic_load_explicit(&rt->narrow, memory_order_relaxed) ? "narrow" : "wide");
        rt->load_at = now;
        atomic_store_explicit(&rt->load_next, now + WEFT__LOAD_WINDOW_NS, memory_order_relaxed);
    }
    pthread_mutex_unlock(&rt->load_mu);
    return turned;
}

struct weft__worker *weft__io_home(struct weft__worker *w, struct weft__coro *co)
{
    struct weft__runtime *rt = weft__rt;
    struct weft__worker *home = rt->workers[0];
    if (w == home || co->pin || !atomic_load_explicit(&rt->narrow, memory_order_relaxed))
        return NULL;
    return home;
}
