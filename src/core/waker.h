/* SPDX-License-Identifier: MIT */
/* waker.h — floor 4 (waiting): wait.c's functions, the wait protocol every blocking call is
 * built from. (Not "wait.h": on the include path of tests and tools that name would shadow
 * the system's <wait.h>.) A wait
 * is armed on the waiter's wait word (coro.h: a coroutine's co->wait, or a plain thread's
 * parker word), handed out as a waker (a token), and completed by exactly one waker: the
 * one whose CAS wins. The winner stores the result and makes the waiter run again
 * (weft__ready for a coroutine, a futex wake for a thread). Thread parkers sleep through
 * the gate (gate.h), which wakes them with WEFT_ENORUNTIME when the runtime stops. */
#ifndef WEFT_WAKER_H
#define WEFT_WAKER_H

#include "common.h"
#include "coro.h"

/* A token that can complete one wait, of a coroutine or of a plain thread. Lives in the
 * waiter's own frame (channel waiter nodes, join) or in a timer record. */
struct weft__thread_parker {
    _Atomic uint32_t
        word; /* WEFT__TP_ARMED → WEFT__TP_CLAIMED (a waker won) → WEFT__TP_DONE, | WEFT__TP_SLEEPING */
    int result;
    /* While the thread sleeps: its link in the gate's list (gate.h), under the gate's lock,
     * so that a stopping runtime can complete it with WEFT_ENORUNTIME. */
    struct weft__thread_parker *gprev, *gnext;
};
enum {
    WEFT__TP_ARMED = 0,
    WEFT__TP_CLAIMED = 1,
    WEFT__TP_DONE = 2,
    WEFT__TP_STATE = 3,
    WEFT__TP_SLEEPING =
        4,              /* the thread is (about to be) in futex_wait: the completer must wake it */
    WEFT__TP_STUCK = 8, /* it sleeps without a deadline, counted in weft__stuck_threads (hang.h)
                        until the waker that claims the wait uncounts it */
};
struct weft__waker {
    struct weft__coro *co;          /* NULL: a plain thread */
    uint64_t token;                 /* co's armed wait value */
    struct weft__thread_parker *tp; /* the plain thread's parker */
};

/* Claim the wait: true if we won it (then the caller must weft__waker_complete it). */
bool weft__waker_claim(struct weft__waker *k);
/* Finish a claimed wait: store the result, make the coroutine runnable / wake the thread.
 * `handoff`: the waker is a coroutine handing control to the woken one (put it in runnext). */
void weft__waker_complete(struct weft__waker *k, int result, bool handoff);
/* Claim and complete in one go; returns whether we won. */
bool weft__waker_wake(struct weft__waker *k, int result, bool handoff);

/* Arm a new wait for the calling coroutine and fill a waker for it. Invariant: an armed
 * wait is always ended by weft__park (or weft__wait_disarm on an error path), because a
 * waker may already have won it and be making the coroutine runnable. */
void weft__wait_arm(struct weft__coro *co, struct weft__waker *k, const char *what);
void weft__wait_disarm(struct weft__coro *co);
/* Plain-thread side: arm, then block until completed or the deadline. On timeout, tries to
 * give up; if a waker already claimed it, waits for the completion (which then wins).
 * WEFT_ENORUNTIME: the runtime stopped while we slept, or is not running (then we never
 * slept): the wait is over, but the caller's waiter may still be linked where it waited —
 * it must unlink it (as after a timeout; no waker completes it any more). */
void weft__tparker_arm(struct weft__thread_parker *tp, struct weft__waker *k);
int weft__tparker_wait(struct weft__thread_parker *tp, int64_t deadline);
/* Arm a wait for whoever calls, coroutine or plain thread, and fill k for it: the calling
 * coroutine's wait (weft__wait_arm; returns the coroutine), or on a plain thread the parker
 * tp, which must live as long as the wait (weft__tparker_arm; returns NULL). */
struct weft__coro *weft__wait_arm_self(struct weft__waker *k, struct weft__thread_parker *tp,
                                       const char *what);

/* Plain threads blocked in a weft wait without a deadline whose wait nobody has claimed
 * yet (WEFT__TP_STUCK): the deadlock check (hang.h) counts them. seq_cst with its readers. */
extern _Atomic int weft__stuck_threads;

#endif
