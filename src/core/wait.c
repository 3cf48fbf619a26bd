/* SPDX-License-Identifier: MIT */
/* wait.c — floor 4 (waiting): arming and disarming a coroutine's wait, wakers (claim, then
 * complete), and thread parkers (a plain thread's futex sleep, through the gate). See
 * waker.h for the protocol and coro.h for the wait word and the state machine it drives.
 *
 * Invariants: exactly one waker wins a wait (a CAS on the wait word, or on the parker's word
 * for a thread); an armed wait is always ended by weft__park or weft__wait_disarm; after
 * the completing store the waiter may be gone (a thread's parker lives in its frame), so the
 * completer touches nothing of it afterwards but the futex address. */
#define _GNU_SOURCE
#include "waker.h"
#include "clock.h"
#include "futex.h"
#include "gate.h"
#include "scheduler.h"

_Atomic int weft__stuck_threads;

/* ------------------------------------------------------------------------------------------
 * Wakers. */

void weft__wait_arm(struct weft__coro *co, struct weft__waker *k, const char *what)
{
    uint64_t w = atomic_load_explicit(&co->wait, memory_order_relaxed);
    /* co->shield is co's own and cannot change before this wait ends (co is parked): the
     * bit tells weft_cancel, which cannot read co->shield, not to end a shielded wait. */
    uint64_t armed = weft__wait_next(w) | WEFT__WAIT_ARMED | (co->shield ? WEFT__WAIT_SHIELDED : 0);
    /* Release: a waker that reads this token (weft_cancel loads co->wait) and wins the CAS
     * then writes co->wait_result; the release/acquire pair orders our earlier reads of the
     * result slot before its write (TSan, and weakly ordered CPUs). */
    atomic_store_explicit(&co->wait, armed, memory_order_release);
    co->wait_what = what;
    k->co = co;
    k->token = armed;
    k->tp = NULL;
}

void weft__wait_disarm(struct weft__coro *co)
{
    uint64_t tok = atomic_load_explicit(&co->wait, memory_order_relaxed);
    if ((tok & WEFT__WAIT_ARMED) &&
        atomic_compare_exchange_strong_explicit(&co->wait, &tok, tok & ~WEFT__WAIT_ARMED,
                                                memory_order_acq_rel, memory_order_relaxed))
        return;
    /* A waker (weft_cancel) won the wait and is making us runnable: park to absorb that
     * wake-up, or it would end our next, unrelated wait early. */
    weft__park(NULL, NULL, false);
}

bool weft__waker_claim(struct weft__waker *k)
{
    if (k->co) {
        uint64_t tok = k->token;
        if (!(tok & WEFT__WAIT_ARMED))
            return false; /* not a live wait's token: nothing to claim */
        return atomic_compare_exchange_strong_explicit(&k->co->wait, &tok, tok & ~WEFT__WAIT_ARMED,
                                                       memory_order_acq_rel, memory_order_relaxed);
    }
    /* A plain thread's wait: armed (0) → claimed (1), keeping the SLEEPING bit. */
    uint32_t v = atomic_load_explicit(&k->tp->word, memory_order_relaxed);
    while ((v & WEFT__TP_STATE) == WEFT__TP_ARMED)
        if (atomic_compare_exchange_weak_explicit(&k->tp->word, &v,
                                                  (v & WEFT__TP_SLEEPING) | WEFT__TP_CLAIMED,
                                                  memory_order_acq_rel, memory_order_relaxed)) {
            /* Uncounted before the thread can run again (it waits for DONE): a deadlock
             * check never takes a woken thread for a stuck one (deadlock.c). */
            if (v & WEFT__TP_STUCK)
                atomic_fetch_sub_explicit(&weft__stuck_threads, 1, memory_order_seq_cst);
            return true;
        }
    return false;
}

void weft__waker_complete(struct weft__waker *k, int result, bool handoff)
{
    if (k->co) {
        k->co->wait_result = result;
        weft__ready(k->co, handoff);
        return;
    }
    /* A plain thread: after the release store the waiter may return and its frame (tp)
     * may be gone, so touch nothing after the store except the futex address for the
     * wake — FUTEX_WAKE on an address no longer waited on is harmless. */
    struct weft__thread_parker *tp = k->tp;
    tp->result = result;
    /* The futex system call only if the thread went to sleep: a waiter still spinning sees
     * DONE by itself. The exchange orders against its CAS that sets SLEEPING. */
    uint32_t old = atomic_exchange_explicit(&tp->word, WEFT__TP_DONE, memory_order_acq_rel);
    if (old & WEFT__TP_SLEEPING)
        weft__futex_wake(&tp->word, 1);
}

bool weft__waker_wake(struct weft__waker *k, int result, bool handoff)
{
    if (!weft__waker_claim(k))
        return false;
    weft__waker_complete(k, result, handoff);
    return true;
}

void weft__tparker_arm(struct weft__thread_parker *tp, struct weft__waker *k)
{
    atomic_store_explicit(&tp->word, 0, memory_order_relaxed);
    tp->result = 0;
    k->co = NULL;
    k->token = 0;
    k->tp = tp;
}

struct weft__coro *weft__wait_arm_self(struct weft__waker *k, struct weft__thread_parker *tp,
                                       const char *what)
{
    struct weft__coro *co = weft__coro_self();
    if (co)
        weft__wait_arm(co, k, what);
    else
        weft__tparker_arm(tp, k);
    return co;
}

static int tparker_sleep(struct weft__thread_parker *tp, int64_t deadline)
{
    /* No spinning before the futex: measured on 2 cores, a spinning blocked thread takes the
     * CPU from the coroutine that would unblock it (threadsend: 6.7 M msgs/s with a 2,000-
     * pause spin, 17-24 M without). */
    for (;;) {
        uint32_t v = atomic_load_explicit(&tp->word, memory_order_acquire);
        if ((v & WEFT__TP_STATE) == WEFT__TP_DONE)
            return tp->result;
        if (!(v & WEFT__TP_SLEEPING)) {
            /* hang.h: an unclaimed wait without a deadline is counted (counted first, so
             * the claimer that sees WEFT__TP_STUCK always finds the count to take back). */
            uint32_t stuck = deadline == WEFT_FOREVER && (v & WEFT__TP_STATE) == WEFT__TP_ARMED
                                 ? WEFT__TP_STUCK
                                 : 0;
            if (stuck)
                atomic_fetch_add_explicit(&weft__stuck_threads, 1, memory_order_seq_cst);
            if (!atomic_compare_exchange_weak_explicit(&tp->word, &v, v | WEFT__TP_SLEEPING | stuck,
                                                       memory_order_acq_rel,
                                                       memory_order_acquire)) {
                if (stuck)
                    atomic_fetch_sub_explicit(&weft__stuck_threads, 1, memory_order_seq_cst);
                continue;
            }
            v |= WEFT__TP_SLEEPING | stuck;
        }
        if (weft__futex_wait(&tp->word, v, deadline) == -ETIMEDOUT &&
            (atomic_load_explicit(&tp->word, memory_order_acquire) & WEFT__TP_STATE) !=
                WEFT__TP_DONE)
            return WEFT_ETIMEDOUT;
    }
}

int weft__tparker_wait(struct weft__thread_parker *tp, int64_t deadline)
{
    int mode = weft__gate_mode();
    /* Every public call that can sleep counts a plain thread in (gate.h): a thread asleep
     * outside the gate could be woken by the sweep and then unlink itself from a queue whose
     * neighbours' stacks are already unmapped. */
    WEFT_ASSERT(mode != 0);
    if (mode == WEFT__IN_NONE) {
        /* No runtime: a wait for another plain thread (the sync objects work without one).
         * Not counted while asleep, so that a runtime can start meanwhile (gate.h). */
        weft__gate_leave();
        int r = tparker_sleep(tp, deadline);
        weft__gate_enter(); /* before the caller touches the object again */
        return r;
    }
    if (WEFT_LIKELY(weft__gate_track(tp))) {
        /* simulation (clock.h): the futex sleeps in real time, as far as the virtual one */
        int r = tparker_sleep(tp, weft__clock_to_real(deadline));
        weft__gate_untrack(tp); /* after this the gate's sweep no longer sees our frame */
        return r;
    }
    /* No running runtime (or it is stopping): nothing may complete this wait later. Take
     * it back, unless a waker claimed it already: then that waker (a plain thread inside a
     * call, which completes before it leaves) is about to complete it. */
    uint32_t v = atomic_load_explicit(&tp->word, memory_order_relaxed);
    while ((v & WEFT__TP_STATE) == WEFT__TP_ARMED)
        if (atomic_compare_exchange_weak_explicit(&tp->word, &v, WEFT__TP_DONE,
                                                  memory_order_acq_rel, memory_order_relaxed))
            return WEFT_ENORUNTIME;
    return tparker_sleep(tp, WEFT_FOREVER);
}
