/* SPDX-License-Identifier: MIT */
/* timer.c — floor 4 (waiting): deadlines and sleeping on libev timers; the park with a
 * deadline (weft__park_until), which arms its timer through the park's on-top hook.
 *
 * A coroutine that waits with a deadline gets a timer record (a loop record, looprec.h:
 * one per wait, owned, stopped and freed by the worker it parked on, through its inbox if
 * the coroutine resumed elsewhere) armed in that worker's loop. A firing callback does not
 * free it; it touches the coroutine only through the waker CAS (looprec.h "Ownership").
 *
 * Clocks: deadlines are absolute weft_now() (CLOCK_MONOTONIC) times. libev schedules
 * relative to its cached loop time, which lags on a busy worker; the delay is corrected by
 * that lag, and a callback that still fires early re-arms for the rest: never early.
 * In a simulated run (sim.h) weft_now() is the virtual clock and a record's deadline waits
 * in sim.c's heap instead of libev (the record's `sim` part, fired through on_sim_timer);
 * plain threads' sleeps convert their deadline to CLOCK_MONOTONIC (weft__clock_to_real). */
#define _GNU_SOURCE
#include "timer.h"
#include "looprec.h"
#include "scheduler.h"
#include "sim.h"
#include "trace.h"

#include <stdlib.h>
#include <time.h>

static void arm(struct weft__worker *w, struct weft__looprec *t)
{
    double lag = ev_time() - ev_now(w->loop);
    int64_t now = weft_now();
    /* Any deadline at or before now (even INT64_MIN) is due: no overflowing subtraction. */
    double delay = (t->deadline <= now ? 0.0 : (double)(t->deadline - now) / 1e9) + lag;
    ev_timer_set(&t->ev.timer, delay > 0 ? delay : 0, 0.);
    ev_timer_start(w->loop, &t->ev.timer);
    w->timers_armed++; /* hang.h: a loop with an armed timer wakes by itself */
}

static void on_timer(struct ev_loop *loop, ev_timer *e, int revents)
{
    (void)loop, (void)revents;
    struct weft__looprec *t = (struct weft__looprec *)e; /* the record's first member */
    t->owner->timers_armed--; /* fired: libev stopped the one-shot watcher */
    if (weft_now() < t->deadline) {
        arm(t->owner, t); /* libev's clock ran ahead of ours: never wake early */
        return;
    }
    WEFT__TRACE(t->owner->index, WEFT__TR_TIMER, t->k.co ? t->k.co->id : 0, 0, 0);
    weft__waker_wake(&t->k, WEFT_ETIMEDOUT, false);
}

/* A virtual timer came due (simulation; sim.c, on the worker's thread, the record out of
 * its heap): as on_timer, without the early check (the virtual clock is exact). */
static void on_sim_timer(struct weft__sim_timer *st)
{
    struct weft__looprec *t =
        (struct weft__looprec *)((char *)st - offsetof(struct weft__looprec, sim));
    WEFT__TRACE(t->owner->index, WEFT__TR_TIMER, t->k.co ? t->k.co->id : 0, 0, 0);
    weft__waker_wake(&t->k, WEFT_ETIMEDOUT, false);
}

/* The timer kind's stop (looprec.h), on the owner's thread. Unchecked in segmented builds:
 * it runs on coroutine stacks (a release after a wake-up) and libev's stop — or the
 * simulation's — is a shallow heap removal that fits in the slack. */
static WEFT_NOSPLIT void timer_stop(struct weft__worker *w, struct weft__looprec *t)
{
    if (WEFT_UNLIKELY(weft__sim_on()))
        weft__sim_timer_del(&t->sim); /* a timer not in the heap is left alone */
    if (ev_is_active(&t->ev.timer))
        w->timers_armed--;
    ev_timer_stop(w->loop, &t->ev.timer);
}

/* A deadline timer for the calling coroutine's armed wait, in the loop of the worker it is
 * parking on (on that worker's thread, in the park's on-top hook). */
static struct weft__looprec *timer_start(struct weft__worker *w, struct weft__waker *k,
                                         int64_t deadline)
{
    struct weft__looprec *t = weft__looprec_take(w, timer_stop); /* reserved by the park */
    ev_init(&t->ev.timer, on_timer);
    t->k = *k;
    t->deadline = deadline;
    if (WEFT_UNLIKELY(weft__sim_on())) {
        t->sim.fire = on_sim_timer;
        weft__sim_timer_add(&t->sim, deadline);
    } else {
        arm(w, t);
    }
    return t;
}

/* The parking coroutine, on w, before it switches away: make sure w has a free record (and
 * in a simulated run room in the virtual timers' heap), so that timer_start, in the
 * switch's on-top hook, needs no memory; false when none could be allocated. */
static bool timer_reserve(struct weft__worker *w)
{
    if (!weft__looprec_reserve(w))
        return false;
    if (WEFT_UNLIKELY(weft__sim_on()) && !weft__sim_timer_room()) {
        bool ok = false;
        weft__offstack(weft__sim_timer_grow, &ok); /* realloc: deep */
        return ok;
    }
    return true;
}

/* ------------------------------------------------------------------------------------------
 * The park with a deadline. */

struct deadline {
    struct weft__worker *w; /* the worker the coroutine parks on (the hook runs there) */
    struct weft__coro *co;
    int64_t deadline;
    struct weft__looprec *timer; /* written by the hook, read by co after it resumes */
    void (*unlock)(void *);
    void *arg;
};

/* The park's on-top hook (scheduler.h weft__park). Armed here, not on the coroutine's stack
 * (libev's heap may grow: too deep for a sub-page stack, hence `deep`), and before the park
 * publishes the coroutine WAITING, so nobody can resume it yet: d->timer is read by the
 * coroutine after it resumes. A token that is no longer armed means a waker (weft_cancel, a
 * value) already won — or the park gave the wait up itself: no timer. */
static void arm_on_top(void *p)
{
    struct deadline *d = p;
    struct weft__waker k = {.co = d->co,
                            .token = atomic_load_explicit(&d->co->wait, memory_order_relaxed)};
    if (k.token & WEFT__WAIT_ARMED)
        d->timer = timer_start(d->w, &k, d->deadline);
    if (d->unlock)
        d->unlock(d->arg);
}

int weft__park_until(int64_t deadline, void (*unlock)(void *), void *arg)
{
    if (deadline == WEFT_FOREVER)
        return weft__park(unlock, arg, false);
    struct weft__worker *w = weft__worker_self();
    struct weft__coro *co = w->current;
    /* The record is taken in the hook, on the far side of the switch, where a failure could
     * not be reported: reserve it here. Without memory for one the wait ends now with
     * WEFT_ENOMEM (a pending cancellation first, as the park would report it), given up like
     * a cancellation (the callers unlink their waiters on it) — unless a waker already won
     * it: then it needs no timer. The fence: the park's Dekker pairing with weft_cancel. */
    if (WEFT_UNLIKELY(!timer_reserve(w))) {
        weft__fence_seq_cst();
        int r = weft__cancel_pending(co) ? WEFT_ECANCELED : WEFT_ENOMEM;
        if (weft__wait_take_back(co)) {
            if (unlock)
                unlock(arg);
            return r;
        }
        return weft__park(unlock, arg, false);
    }
    struct deadline d = {w, co, deadline, NULL, unlock, arg};
    int r = weft__park(arm_on_top, &d, true);
    /* Resumed — possibly on another worker. */
    if (d.timer)
        weft__looprec_release(d.timer); /* stops it on its owner's loop (inbox if not here) */
    return r;
}

/* A plain thread just sleeps (absolute, so signals cannot make it early). */
static WEFT_NOINLINE int thread_sleep_until(int64_t deadline)
{
    if (deadline == WEFT_FOREVER)
        return WEFT_EINVAL; /* a plain thread cannot be woken: it would sleep forever */
    if (deadline <= weft_now())
        return 0;
    deadline = weft__clock_to_real(deadline); /* simulation: clock_nanosleep sleeps real time */
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
