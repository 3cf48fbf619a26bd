/* SPDX-License-Identifier: MIT */
/* ticker.c — floor 6 (composites and tools): a channel that receives the time every period (Go's
 * time.Ticker).
 *
 * A small detached-by-handle coroutine sleeps until each tick and try_sends the tick time
 * into a capacity-1 channel: a slow reader gets the latest-but-one tick, never a backlog
 * (ticks are dropped, as in Go). Stopping cancels and joins the coroutine, then closes and
 * releases the channel. Why in the library: merge/throttle/timeout are a few lines over
 * channels and select (see samples/merge_streams.c), but a periodic source needs a timer
 * owner, and every user would write the same coroutine. */
#include "gate.h"
#include "scheduler.h"
#include "timer.h"

#include <stdlib.h>

struct weft_ticker {
    weft_chan *ch;
    int64_t period;
    weft_task task;
};

static void *tick_loop(void *arg)
{
    struct weft_ticker *t = arg;
    int64_t next = weft_after(t->period);
    for (;;) {
        if (weft_sleep_until(next) != 0)
            return NULL; /* cancelled: stop */
        int64_t now = weft_now();
        weft_chan_try_send(t->ch, &now);
        next = next > WEFT_FOREVER - t->period ? WEFT_FOREVER : next + t->period;
        if (next < now) /* fell behind (a long pause): skip the missed ticks */
            next = weft_after(t->period);
    }
}

int weft_ticker_start(weft_ticker **out, int64_t period)
{
    if (!out || period <= 0)
        return WEFT_EINVAL;
    *out = NULL;
    if (!weft__worker_entry() && !weft__gate_open_hint())
        return WEFT_ENORUNTIME; /* early; the spawn below checks for real */
    struct weft_ticker *t = calloc(1, sizeof *t);
    if (!t)
        return WEFT_ENOMEM;
    int r = weft_chan_create(&t->ch, sizeof(int64_t), 1);
    if (r == 0) {
        t->period = period;
        weft_spawn_opts o = {.name = "ticker"};
        r = weft_spawn_ex(&t->task, tick_loop, t, &o);
        if (r != 0)
            weft_chan_unref(t->ch);
    }
    if (r != 0) {
        free(t);
        return r;
    }
    *out = t;
    return 0;
}

weft_chan *weft_ticker_chan(weft_ticker *t)
{
    return t ? t->ch : NULL;
}

int weft_ticker_stop(weft_ticker *t)
{
    if (!t)
        return WEFT_EINVAL;
    weft_cancel(t->task);
    /* Shielded: even a cancelled caller must reap the ticker (its own request stays pending
     * for its next cancellation point). The ticker ends at its next sleep: bounded. */
    struct weft__coro *co = weft__coro_self();
    weft__shield_enter(co);
    (void)weft_join(t->task, NULL);
    weft__shield_leave(co);
    weft_chan_close(t->ch);
    weft_chan_unref(t->ch);
    free(t);
    return 0;
}
