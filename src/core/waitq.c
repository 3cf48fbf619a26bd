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

/* Set up w (and its waker storage k / thread parker tp) for the calling party. */
static void waiter_init(struct weft__waiter *w, struct weft__waker *k,
                        struct weft__thread_parker *tp, const char *what)
{
    weft__wait_arm_self(k, tp, what);
    w->k = k;
    w->elem = NULL;
    w->sel = NULL;
    w->index = -1;
    w->linked = false;
}

/* Block the caller (a coroutine parks, a plain thread sleeps on its futex) until the waiter
 * `w`, already linked in `q` under the held `lock`, is completed or the deadline passes.
 * Releases `lock`. Returns the completion's result, WEFT_ETIMEDOUT or WEFT_ECANCELED (then
 * the waiter has been unlinked and nothing was transferred), or for a plain thread
 * WEFT_ENORUNTIME (the runtime stopped or is not running: unlinked, nothing transferred).
 * (The coroutine's result may also be WEFT_ENOMEM: no memory for its deadline's timer.) */
static int waitq_block(struct weft__wq *q, struct weft__waiter *w, weft__lock *lock,
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

int weft__waitq_wait(struct weft__wq *q, weft__lock *lock, const char *what, int64_t deadline,
                     void *elem)
{
    /* The waiter lives in this frame, which stays until weft__waitq_block returns: by then
     * no waker touches it (waitq.h: a waker that popped it held the lock, and the block
     * unlinks what is still linked under it). */
    struct weft__waiter w;
    struct weft__waker k;
    struct weft__thread_parker tp;
    waiter_init(&w, &k, &tp, what);
    w.elem = elem;
    waitq_push(q, &w);
    return waitq_block(q, &w, lock, deadline);
}

void weft__waitq_complete_all(struct weft__waiter *done, bool handoff)
{
    while (done) {
        struct weft__waiter *w = done;
        done = w->done_next; /* read before completing: the waiter's frame may then go */
        weft__waker_complete(w->k, w->result, handoff);
    }
}
