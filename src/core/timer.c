/* SPDX-License-Identifier: MIT */
/* timer.c — deadlines and sleeping on libev timers.
 *
 * A coroutine that waits with a deadline gets a timer record from the worker it parks on,
 * armed in that worker's loop (a libev loop may only be touched by its own thread). Records
 * are one per wait, never embedded in the coroutine or on its stack: a wait completed early
 * by someone else leaves the record in the first worker's loop while the coroutine may
 * resume on another worker, so the stop is posted to the owner's inbox and done there.
 *
 * Ownership of a record: the owner worker's thread alone starts, stops and frees it. It is
 * freed exactly once, when its stop arrives (directly if the coroutine resumed on the owner,
 * or through the inbox); a firing callback does not free it, so a stop that races with the
 * firing always finds a live record. The callback touches the coroutine only through the
 * waker CAS: control blocks are type-stable and wait sequences never repeat, so a late
 * firing after the coroutine moved on (or ended) fails the CAS harmlessly.
 *
 * Clocks: deadlines are absolute weft_now() (CLOCK_MONOTONIC) times. libev schedules
 * relative to its cached loop time, which lags on a busy worker; the delay is corrected by
 * that lag, and a callback that still fires early re-arms for the rest: never early.
 * In a simulated run (sim.h) weft_now() is the virtual clock and a record's deadline waits in
 * sim.c's heap instead of libev (the record's `sim` part); plain threads' sleeps convert
 * their deadline to CLOCK_MONOTONIC (weft__sim_to_real). */
#define _GNU_SOURCE
#include "runtime.h"
#include "sim.h"

#include <stdlib.h>
#include <time.h>

struct weft__timer {
    ev_timer ev;
    struct weft__msg msg;
    struct weft__waker k;
    int64_t deadline;
    struct weft__worker *owner;
    struct weft__timer *next_free;
    struct weft__sim_timer sim; /* simulation only (sim.h): the virtual timer */
};

#define TIMER_CHUNK 256
struct timer_chunk {
    struct timer_chunk *next;
    struct weft__timer t[TIMER_CHUNK];
};

/* No split-stack check (segmented builds): a leaf over the vDSO, it fits in the slack. */
WEFT_NOSPLIT int64_t weft__clock_real(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

WEFT_NOSPLIT int64_t weft_now(void)
{
    if (WEFT_UNLIKELY(weft__sim_on()))
        return weft__sim_now(); /* simulation: the virtual clock (sim.h) */
    return weft__clock_real();
}

int64_t weft_after(int64_t ns)
{
    if (ns <= 0)
        return weft_now();
    int64_t now = weft_now();
    return ns > WEFT_FOREVER - now ? WEFT_FOREVER : now + ns;
}

static void arm(struct weft__worker *w, struct weft__timer *t)
{
    double lag = ev_time() - ev_now(w->loop);
    int64_t now = weft_now();
    /* Any deadline at or before now (even INT64_MIN) is due: no overflowing subtraction. */
    double delay = (t->deadline <= now ? 0.0 : (double)(t->deadline - now) / 1e9) + lag;
    ev_timer_set(&t->ev, delay > 0 ? delay : 0, 0.);
    ev_timer_start(w->loop, &t->ev);
    w->timers_armed++; /* hang.h: a loop with an armed timer wakes by itself */
}

static void on_timer(struct ev_loop *loop, ev_timer *e, int revents)
{
    (void)loop, (void)revents;
    struct weft__timer *t = (struct weft__timer *)e;
    t->owner->timers_armed--; /* fired: libev stopped the one-shot watcher */
    if (weft_now() < t->deadline) {
        arm(t->owner, t); /* libev's clock ran ahead of ours: never wake early */
        return;
    }
    weft__waker_wake(&t->k, WEFT_ETIMEDOUT, false);
}

/* A chunk of records for w's free list (owner only); on the scheduler's stack when called
 * from a small one (weft__offstack: calloc is deep). */
static void timer_chunk_add(void *p)
{
    struct weft__worker *w = p;
    struct timer_chunk *c = calloc(1, sizeof *c); /* zeroed: inactive watchers */
    if (!c)
        return;
    c->next = w->timer_chunks;
    w->timer_chunks = c;
    for (int i = 0; i < TIMER_CHUNK; i++) {
        c->t[i].next_free = w->timer_free;
        w->timer_free = &c->t[i];
    }
}

bool weft__timer_reserve(struct weft__worker *w)
{
    if (WEFT_UNLIKELY(!w->timer_free))
        weft__offstack(timer_chunk_add, w);
    if (WEFT_UNLIKELY(weft__sim_on()) && !weft__sim_timer_reserve())
        return false;
    return w->timer_free != NULL;
}

struct weft__timer *weft__timer_start(struct weft__worker *w, struct weft__waker *k,
                                      int64_t deadline)
{
    struct weft__timer *t = w->timer_free;
    WEFT_ASSERT(t != NULL); /* reserved by the park (weft__timer_reserve) */
    w->timer_free = t->next_free;
    ev_init(&t->ev, on_timer);
    t->msg.kind = WEFT_MSG_TIMER_STOP;
    t->k = *k;
    t->deadline = deadline;
    t->owner = w;
    if (WEFT_UNLIKELY(weft__sim_on()))
        weft__sim_timer_add(&t->sim, deadline, &t->k);
    else
        arm(w, t);
    return t;
}

/* Unchecked in segmented builds: it runs on coroutine stacks (weft__timer_cancel after a
 * wake-up) and libev's stop is a shallow heap removal that fits in the slack. */
static WEFT_NOSPLIT void timer_free(struct weft__worker *w, struct weft__timer *t)
{
    if (WEFT_UNLIKELY(weft__sim_on()))
        weft__sim_timer_del(&t->sim);
    if (ev_is_active(&t->ev))
        w->timers_armed--;
    ev_timer_stop(w->loop, &t->ev);
    t->next_free = w->timer_free;
    w->timer_free = t;
}

void weft__timer_cancel(struct weft__timer *t)
{
    struct weft__worker *w = weft__worker_self();
    if (w == t->owner)
        timer_free(w, t);
    else
        weft__worker_post(t->owner, &t->msg);
}

void weft__timer_stop_msg(struct weft__worker *w, struct weft__msg *m)
{
    struct weft__timer *t =
        (struct weft__timer *)((char *)m - offsetof(struct weft__timer, msg));
    WEFT_ASSERT(t->owner == w);
    timer_free(w, t);
}

void weft__timer_cache_free(struct weft__worker *w)
{
    struct timer_chunk *c = w->timer_chunks;
    while (c) {
        struct timer_chunk *n = c->next;
        for (int i = 0; i < TIMER_CHUNK; i++)
            ev_timer_stop(w->loop, &c->t[i].ev);
        free(c);
        c = n;
    }
    w->timer_chunks = NULL;
    w->timer_free = NULL;
}

/* A plain thread just sleeps (absolute, so signals cannot make it early). */
static WEFT_NOINLINE int thread_sleep_until(int64_t deadline)
{
    if (deadline == WEFT_FOREVER)
        return WEFT_EINVAL; /* a plain thread cannot be woken: it would sleep forever */
    if (deadline <= weft_now())
        return 0;
    if (WEFT_UNLIKELY(weft__sim_on()))
        deadline = weft__sim_to_real(deadline); /* clock_nanosleep sleeps in real time */
    struct timespec ts = {deadline / 1000000000, deadline % 1000000000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
    return 0;
}

int weft_sleep_until(int64_t deadline)
{
    struct weft__coro *co = weft__coro_self();
    if (!co)
        return thread_sleep_until(deadline);
    struct weft__waker k;
    weft__wait_arm(co, &k, "sleep");
    int r = weft__park_until(deadline, NULL, NULL);
    return r == WEFT_ETIMEDOUT ? 0 : r;
}

int weft_sleep(int64_t ns)
{
    return weft_sleep_until(weft_after(ns));
}
