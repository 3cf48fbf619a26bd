/* SPDX-License-Identifier: MIT */
/* waitq.h — floor 4 (waiting): wait queues of waiter nodes (Go's sudog), shared by channels, select
 * and the synchronisation primitives.
 *
 * A waiter lives in the waiting party's own frame (a coroutine's stack or a plain thread's
 * stack) and is linked into one queue guarded by the owning object's lock. Its waker
 * (waker.h) is what completes the wait; in a select, all of one party's waiters share one
 * waker, so the first case to claim it wins and the others, claimed in vain, are skipped.
 *
 * Protocol (every waker follows it, under the queue's lock):
 *   1. w = waitq_pop(q)       — unlinks; from now on the owner finds w->linked == false;
 *   2. weft__waker_claim(w->k): if it fails, the wait already ended (timeout, cancel,
 *      another select case): drop w and try the next one;
 *   3. fill in the result (copy the element, set w->sel) — the owner cannot run: it is
 *      parked (coroutine) or blocked until the completion (thread);
 *   4. weft__waker_complete(w->k, ...) — may be done after releasing the lock.
 * The owner, when its wait ends any other way, takes the lock and unlinks its waiter if it
 * is still linked; a waker that popped it held the lock, so the owner never leaves while a
 * waker still touches its frame. */
#ifndef WEFT_WAITQ_H
#define WEFT_WAITQ_H

#include "coro.h"
#include "lock.h"
#include "waker.h"

/* A select's shared state (select.c): which case won. Here, with the mark below, because
 * chan.c's completion marks it and chan.c never calls select.c (floor table). */
struct weft__sel {
    int chosen; /* index of the completed case, -1 while none */
};

struct weft__waiter {
    struct weft__waiter *prev, *next;
    struct weft__waker *k;
    void *elem;            /* channel element to copy from (send) or into (recv) */
    struct weft__sel *sel; /* select state, NULL for a plain operation */
    int index;             /* select case index */
    bool linked;
    int result;                     /* with done_next: set by the waker that claimed it */
    struct weft__waiter *done_next; /* a waker's list of claimed waiters to complete */
};

/* Record in the selecting party's state which case a claimed waiter won (by whoever claimed
 * it, under the channel's lock, before completing it). */
static inline void weft__select_mark(struct weft__waiter *w)
{
    w->sel->chosen = w->index;
}

struct weft__wq {
    struct weft__waiter *head, *tail;
};

static inline void waitq_push(struct weft__wq *q, struct weft__waiter *w)
{
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    w->linked = true;
}

static inline void waitq_unlink(struct weft__wq *q, struct weft__waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->linked = false;
}

static inline struct weft__waiter *waitq_pop(struct weft__wq *q)
{
    struct weft__waiter *w = q->head;
    if (w)
        waitq_unlink(q, w);
    return w;
}

/* Pop waiters until one is claimed; NULL if none could be. (Steps 1-2 of the protocol.) */
static inline struct weft__waiter *waitq_claim(struct weft__wq *q)
{
    struct weft__waiter *w;
    while ((w = waitq_pop(q)))
        if (weft__waker_claim(w->k))
            return w;
    return NULL;
}

/* A waker's done list: claimed waiters (steps 1-3 of the protocol) waiting for their
 * completion (step 4), which weft__waitq_complete_all does after the lock is released (or,
 * for a party about to block, before). Under the queue's lock. */
static inline void waitq_done_push(struct weft__waiter **done, struct weft__waiter *w, int result)
{
    w->result = result;
    w->done_next = *done;
    *done = w;
}

/* Claim up to `max` waiters of q (all of them: max < 0) onto *done, each with `result`. */
static inline void waitq_claim_onto(struct weft__wq *q, struct weft__waiter **done, int max,
                                    int result)
{
    struct weft__waiter *w;
    for (; max != 0 && (w = waitq_claim(q)); max--)
        waitq_done_push(done, w, result);
}

/* Complete every waiter of a done list with its result (handoff: see weft__waker_complete).
 * Each waiter's frame may go as soon as it is completed. */
void weft__waitq_complete_all(struct weft__waiter *done, bool handoff);

/* The public sync structs embed `struct weft__waitq { void *head, *tail; }`. */
static inline struct weft__wq *waitq_of(struct weft__waitq *q)
{
    _Static_assert(sizeof(struct weft__waitq) == sizeof(struct weft__wq), "waitq layout");
    return (struct weft__wq *)(void *)q;
}

/* The whole wait of the calling party on q, called with `lock` (q's owner's) held and
 * released on return: a waiter (with its waker and thread parker) in this call's frame, set
 * up for the caller with `elem` (what a waker copies from or into), pushed on q; then the
 * caller blocks (a coroutine parks, a plain thread sleeps on its futex) until the waiter is
 * completed or the deadline passes. Returns the completion's result, WEFT_ETIMEDOUT,
 * WEFT_ECANCELED or WEFT_ENOMEM (no memory for a coroutine's deadline timer) — then the
 * waiter was unlinked and nothing was transferred — or for a plain thread WEFT_ENORUNTIME
 * (the runtime stopped or is not running: unlinked, nothing transferred). */
int weft__waitq_wait(struct weft__wq *q, weft__lock *lock, const char *what, int64_t deadline,
                     void *elem);

#endif
