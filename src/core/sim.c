/* SPDX-License-Identifier: MIT */
/* sim.c — floor 3 (the scheduler): deterministic simulation mode, a seeded scheduler and a
 * virtual clock (sim.h).
 *
 * With a seed (weft_config.seed, $WEFT_SEED) weft_run starts one worker, and:
 *   - The runnable set is one list (`pool`): at every scheduling point the worker first
 *     gathers into it whatever the ordinary queues received since (pinned FIFO, runnext, the
 *     ring, the LIFO of unstarted children, the global queue — inbox messages are drained by
 *     the scheduler context first),
 *     then takes an index drawn uniformly by a splitmix64 generator seeded with the seed. A
 *     yielding coroutine is one more candidate (it may keep running). So runnext, hand-offs,
 *     spawn-runs-next and the 61-tick fairness rule all become "any runnable coroutine may go
 *     next"; select's random case order draws from the same generator.
 *   - weft_now() is a virtual clock: it starts at SIM_EPOCH and moves only when nothing is
 *     runnable: then due timers fire; if none is due the clock jumps to the earliest one
 *     (timers of one deadline fire in arming order). While anything is runnable time stands
 *     still (Go's testing/synctest rule): a loop that yields until weft_now() passes a
 *     deadline never ends — it must sleep or wait with a deadline instead.
 *   - Timers are virtual: timer.c's records live in a binary heap here instead of libev, and
 *     fire through their `fire` pointer (set by timer.c: this file names nothing above it).
 *
 * The outside world keeps working, at the virtual time its events are seen: fd waits,
 * blocking-pool jobs, plain threads' sends, signals arrive through the event loop, the inbox
 * or the global queue, which the worker polls (without blocking) whenever nothing is
 * runnable. When nothing is runnable, no timer is due, and an fd wait or a blocking-pool job
 * is pending, the worker blocks in the real poll for at most the real-time equivalent of the
 * gap to the next virtual timer and advances the virtual clock by the real time it slept
 * (capped at that timer): virtual time runs at real speed while the program waits for the
 * outside. With no timer at all it blocks in the real poll as usual (the deadlock detector
 * watches that sleep as in any run). A plain thread that will call weft later, after work of
 * its own, is not waited for: the clock may jump timers before its call arrives.
 *
 * Determinism: the interleaving is a function of the seed and of the order in which the
 * world outside the worker delivers events. A program that only uses weft (coroutines,
 * channels, sync objects, timers, tickers, select, groups, cancellation) replays exactly;
 * anything fed from outside (fds, the blocking pool, plain threads, signals, real time read
 * by the program itself, addresses printed) makes the run depend on the OS's timing.
 *
 * Floors: the scheduler's floor (3), though it names only the worker's and below — the
 * queues it gathers from (runq.h, worker.h), the loop's poll (worker.c), the clock (clock.h).
 * The clock (floor 0) holds the virtual time and its flag; this file turns it on and moves
 * it. Upward, only function pointers set from above: a timer's `fire` (timer.c) and the
 * blocking pool's "busy" probe (run.c, weft__sim_start).
 *
 * Thread contract: everything here runs on the one worker thread except weft__sim_seed and
 * weft__sim_start/stop (weft_run, before the worker runs / after it stopped: the worker
 * thread's creation and join order them with the worker's accesses). */
#define _GNU_SOURCE
#include "sim.h"
#include "worker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIM_EPOCH WEFT_SEC(1000) /* the virtual clock's start: fixed, far from 0 */

static struct {
    uint64_t rng;             /* splitmix64 state */
    struct weft__coro **pool; /* the runnable set (order: arrival, then swap-removal) */
    size_t n, cap;
    struct weft__sim_timer **heap; /* min-heap on (deadline, seq) */
    size_t nt, capt;
    uint64_t seq;
    ev_timer gap; /* the real sleep's bound while the outside is awaited */
    bool gap_armed;
    int64_t gap_from;           /* weft__clock_real() when that sleep began */
    bool (*outside_busy)(void); /* run.c: the blocking pool has queued or running jobs */
} sim;

/* The virtual now (only the worker moves it: its own relaxed reads see its own writes). */
static int64_t sim_now(void)
{
    return atomic_load_explicit(&weft__clock_virtual_now, memory_order_relaxed);
}

uint64_t weft__sim_seed(uint64_t config_seed)
{
    if (config_seed)
        return config_seed;
    const char *v = getenv("WEFT_SEED");
    if (!v || !*v)
        return 0;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (*end || errno || v[0] == '-') {
        fprintf(stderr, "weft: ignoring WEFT_SEED=%s (expected a number 1..2^64-1; 0: off)\n", v);
        return 0;
    }
    return n;
}

uint64_t weft__sim_rand(void)
{
    /* splitmix64 (Steele, Lea, Flood): one add and a mix; every seed gives its own stream. */
    uint64_t z = (sim.rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) (Lemire's multiply-shift; the bias is below 2^-40 for any n here). */
static size_t draw(size_t n)
{
    return (size_t)(((unsigned __int128)weft__sim_rand() * n) >> 64);
}

int weft__sim_start(uint64_t seed, bool (*outside_busy)(void))
{
    memset(&sim, 0, sizeof sim);
    sim.rng = seed;
    sim.outside_busy = outside_busy;
    sim.cap = 256;
    sim.capt = 256;
    sim.pool = malloc(sim.cap * sizeof *sim.pool);
    sim.heap = malloc(sim.capt * sizeof *sim.heap);
    if (!sim.pool || !sim.heap) {
        weft__sim_stop();
        return WEFT_ENOMEM;
    }
    weft__clock_virtual_start(SIM_EPOCH); /* last: from here on weft__sim_on() */
    return 0;
}

void weft__sim_stop(void)
{
    weft__clock_virtual_stop();
    free(sim.pool);
    free(sim.heap);
    memset(&sim, 0, sizeof sim);
}

/* ------------------------------------------------------------------------------------------
 * The runnable set. */

/* Room the runnable set needs to take in everything queued now. */
static size_t pool_need(struct weft__worker *w)
{
    size_t want = sim.n + weft__runq_len(&w->rq) + weft__lifo_len(&w->rq) +
                  atomic_load_explicit(&weft__rt->global.len, memory_order_relaxed);
    for (struct weft__coro *c = w->pinned_head; c; c = c->next)
        want++;
    return want;
}

/* Scheduler context only (realloc is deep: never on a coroutine's small stack). */
static void pool_grow(size_t want)
{
    size_t cap = sim.cap;
    while (cap < want)
        cap *= 2;
    struct weft__coro **p = realloc(sim.pool, cap * sizeof *p);
    if (!p)
        weft__panic("weft: simulation: out of memory for %zu runnable coroutines", want);
    sim.pool = p;
    sim.cap = cap;
}

/* Move everything the ordinary queues hold into the pool, in a fixed order. One worker:
 * no thief touches the ring (the solo pop is valid), the pinned FIFO is ours. The caller
 * made room (pool_need); the global queue may have grown since (plain threads): what does
 * not fit stays there for the next look. */
static void gather(struct weft__worker *w)
{
    struct weft__runtime *rt = weft__rt;
    struct weft__coro *co;
    while (sim.n < sim.cap && (co = weft__pinned_pop(w)) != NULL)
        sim.pool[sim.n++] = co;
    if (sim.n < sim.cap &&
        (co = atomic_exchange_explicit(&w->rq.runnext, NULL, memory_order_acquire)) != NULL)
        sim.pool[sim.n++] = co;
    while (sim.n < sim.cap && (co = weft__runq_get_solo(&w->rq)) != NULL)
        sim.pool[sim.n++] = co;
    while (sim.n < sim.cap && (co = weft__lifo_pop(&w->rq, true)) != NULL)
        sim.pool[sim.n++] = co;
    while (sim.n < sim.cap && weft__globalq_nonempty(&rt->global) &&
           (co = weft__globalq_get(&rt->global, &w->rq, 0)) != NULL)
        sim.pool[sim.n++] = co;
}

static bool timer_due(void)
{
    return sim.nt && sim.heap[0]->deadline <= sim_now();
}

static struct weft__coro *choose(struct weft__worker *w, struct weft__coro *self)
{
    gather(w);
    if (sim.n == 0)
        return self;
    size_t i = draw(sim.n + (self != NULL));
    if (i == sim.n)
        return self; /* the yielding coroutine keeps running */
    struct weft__coro *co = sim.pool[i];
    sim.pool[i] = sim.pool[--sim.n];
    return co;
}

struct weft__coro *weft__sim_pick(struct weft__worker *w, struct weft__coro *self)
{
    if (atomic_load_explicit(&w->inbox, memory_order_relaxed) ||
        atomic_load_explicit(&w->stop, memory_order_relaxed) || timer_due() || sim.gap_armed ||
        WEFT_UNLIKELY(pool_need(w) > sim.cap))
        return NULL; /* the scheduler context first (it grows the pool: deep) */
    return choose(w, self);
}

/* ------------------------------------------------------------------------------------------
 * Virtual timers: a binary min-heap on (deadline, seq). */

static bool before(const struct weft__sim_timer *a, const struct weft__sim_timer *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void heap_set(size_t i, struct weft__sim_timer *t)
{
    sim.heap[i] = t;
    t->idx = (long)i;
}

static void sift_up(size_t i)
{
    struct weft__sim_timer *t = sim.heap[i];
    while (i > 0 && before(t, sim.heap[(i - 1) / 2])) {
        heap_set(i, sim.heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(i, t);
}

static void sift_down(size_t i)
{
    struct weft__sim_timer *t = sim.heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= sim.nt)
            break;
        if (c + 1 < sim.nt && before(sim.heap[c + 1], sim.heap[c]))
            c++;
        if (!before(sim.heap[c], t))
            break;
        heap_set(i, sim.heap[c]);
        i = c;
    }
    heap_set(i, t);
}

bool weft__sim_timer_room(void)
{
    /* One park at a time checks and then adds (in its switch's on-top hook): room for one
     * more is enough. */
    return sim.nt < sim.capt;
}

void weft__sim_timer_grow(void *arg)
{
    bool *ok = arg;
    struct weft__sim_timer **h = realloc(sim.heap, 2 * sim.capt * sizeof *h);
    *ok = h != NULL;
    if (h) {
        sim.heap = h;
        sim.capt *= 2;
    }
}

void weft__sim_timer_add(struct weft__sim_timer *t, int64_t deadline)
{
    WEFT_ASSERT(sim.nt < sim.capt); /* weft__sim_timer_room */
    t->deadline = deadline;
    t->seq = sim.seq++;
    sim.heap[sim.nt] = t;
    sift_up(sim.nt++);
}

void weft__sim_timer_del(struct weft__sim_timer *t)
{
    if (t->idx < 0)
        return; /* fired */
    size_t i = (size_t)t->idx;
    t->idx = -1;
    struct weft__sim_timer *last = sim.heap[--sim.nt];
    if (i == sim.nt)
        return;
    heap_set(i, last);
    sift_up(i);
    sift_down((size_t)last->idx);
}

/* Fire every timer due at the virtual now, earliest (then first armed) first. */
static void fire_due(void)
{
    while (timer_due()) {
        struct weft__sim_timer *t = sim.heap[0];
        weft__sim_timer_del(t);
        t->fire(t); /* the owner's (timer.c: its waker; a stale one fails harmlessly) */
    }
}

/* ------------------------------------------------------------------------------------------
 * Nothing runnable. */

static void on_gap(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop, (void)t, (void)revents; /* ev_run returns; settle_gap moves the clock */
}

/* After a real sleep bounded by `gap`: virtual time advanced by the real time slept, up to
 * the next virtual timer. */
static void settle_gap(struct weft__worker *w)
{
    if (!sim.gap_armed)
        return;
    sim.gap_armed = false;
    /* Counted once when armed, uncounted once here, whether it fired (libev stopped the
     * one-shot watcher then) or an event ended the sleep first. */
    w->timers_armed--;
    ev_timer_stop(w->loop, &sim.gap);
    int64_t now = sim_now(), slept = weft__clock_real() - sim.gap_from;
    int64_t t = slept > 0 ? now + slept : now;
    if (sim.nt && t > sim.heap[0]->deadline)
        t = sim.heap[0]->deadline;
    if (t > now)
        weft__clock_virtual_set(t);
}

/* Events from outside weft that the worker's loop will deliver by itself. */
static bool outside_pending(struct weft__worker *w)
{
    return w->io_waits > 0 || (sim.outside_busy && sim.outside_busy());
}

static bool runnable(struct weft__worker *w)
{
    return sim.n || w->pinned_head || weft__runq_nonempty(&w->rq) ||
           weft__globalq_nonempty(&weft__rt->global) ||
           atomic_load_explicit(&w->inbox, memory_order_relaxed);
}

/* Nothing runnable: true when there is something to look at again, false: sleep. */
static bool sim_idle(struct weft__worker *w)
{
    settle_gap(w);
    fire_due();
    if (runnable(w))
        return true;
    /* The outside world, without blocking (what arrived is seen at this virtual time). */
    weft__worker_poll(w, EVRUN_NOWAIT);
    if (runnable(w))
        return true;
    if (!sim.nt)
        return false; /* nothing will ever happen inside: block as any run does */
    int64_t next = sim.heap[0]->deadline;
    if (!outside_pending(w)) {
        weft__clock_virtual_set(next); /* the jump: a sleep of ten seconds takes no real time */
        fire_due();
        return true;
    }
    /* Wait for the outside, real time standing in for virtual time until the next timer. */
    ev_timer_init(&sim.gap, on_gap, (double)(next - sim_now()) / 1e9, 0.);
    ev_timer_start(w->loop, &sim.gap);
    w->timers_armed++; /* hang.h: this sleep ends by itself */
    sim.gap_armed = true;
    sim.gap_from = weft__clock_real();
    return false;
}

struct weft__coro *weft__sim_next(struct weft__worker *w, bool *sleep)
{
    *sleep = false;
    settle_gap(w);
    fire_due();
    size_t need = pool_need(w);
    if (WEFT_UNLIKELY(need > sim.cap))
        pool_grow(need); /* on the worker thread's own stack */
    struct weft__coro *co = choose(w, NULL);
    if (co)
        return co;
    *sleep = !sim_idle(w);
    return NULL;
}
