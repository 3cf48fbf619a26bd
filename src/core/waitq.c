/* SPDX-License-Identifier: MIT */
/* waitq.c — floor 4 (waiting): blocking on a wait queue, for coroutines and plain threads alike
 * (waitq.h). */
#include "waitq.h"
#include "scheduler.h"
#include "timer.h"
#include "waker.h"

static void unlock_lock(void *l)
{
    weft__lock_release(l);
}

void weft__waiter_init(struct weft__waiter *w, struct weft__waker *k,
                       struct weft__thread_parker *tp, const char *what)
{
    struct weft__coro *co = weft__coro_self();
    if (co)
        weft__wait_arm(co, k, what);
    else
        weft__tparker_arm(tp, k);
    w->k = k;
    w->elem = NULL;
    w->sel = NULL;
    w->index = -1;
    w->linked = false;
}

void weft__waiter_abandon(struct weft__waiter *w)
{
    if (w->k->co)
        weft__wait_disarm(w->k->co);
}

int weft__waitq_block(struct weft__wq *q, struct weft__waiter *w, weft__lock *lock,
                      int64_t deadline)
{
    int r;
    if (w->k->co) {
        r = weft__park_until(deadline, unlock_lock, lock);
        if (r == WEFT_ETIMEDOUT || r == WEFT_ECANCELED || r == WEFT_ENOMEM) {
            weft__lock_acquire(lock);
            if (w->linked)
                waitq_unlink(q, w);
            weft__lock_release(lock);
        }
        return r;
    }
    struct weft__thread_parker *tp = w->k->tp;
    weft__lock_release(lock);
    r = weft__tparker_wait(tp, deadline);
    if (r == WEFT_ENORUNTIME) {
        /* The runtime stopped (or is not running): the gate's sweep completed our parker,
         * or we took it back; either way nobody else will. Leave the queue ourselves: the
         * gate keeps the neighbours' frames (maybe on abandoned coroutine stacks) mapped
         * until we have left the call. A waker that popped us failed its claim. */
        weft__lock_acquire(lock);
        if (w->linked)
            waitq_unlink(q, w);
        weft__lock_release(lock);
        return r;
    }
    if (r != WEFT_ETIMEDOUT)
        return r;
    weft__lock_acquire(lock);
    if (w->linked) {
        waitq_unlink(q, w);
        weft__lock_release(lock);
        return WEFT_ETIMEDOUT;
    }
    weft__lock_release(lock);
    /* A waker popped us before we could leave: it claimed (we never give up a thread wait
     * on our own), so the completion is coming. */
    return weft__tparker_wait(tp, WEFT_FOREVER);
}
