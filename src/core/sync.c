/* SPDX-License-Identifier: MIT */
/* sync.c — floor 5 (primitives): coroutine-aware mutex, condition variable, semaphore, wait group
 * and once (task groups are in group.c). Each object has one internal spin-futex lock (its `lock`
 * word) guarding its counters and its wait queue; waiting follows the waiter protocol of waitq.h,
 * so coroutines park, plain threads sleep on a futex, and timeouts/cancellation never lose a
 * hand-off: a mutex is handed directly to the first claimed waiter (FIFO, no barging), a semaphore
 * unit likewise; a waiter whose claim failed (it timed out) is skipped.
 *
 * Plain threads make every call inside the gate (gate.h, WEFT__GATED): a wake-up may ready
 * a coroutine (the runtime's queues), a wait must be found by a stopping runtime (it then
 * returns WEFT_ENORUNTIME). The objects also work between plain threads with no runtime at
 * all. Internal steps call the ungated static functions (a nested entry would only cost a
 * look at the thread's gate state). */
#include "gate.h"
#include "scheduler.h"
#include "timer.h"
#include "waker.h"
#include "waitq.h"

#include <string.h>

#define LOCK(obj) weft__lock_of(&(obj)->lock)

/* ---- mutex ------------------------------------------------------------------------------ */

int weft_mutex_init(weft_mutex *m)
{
    if (!m)
        return WEFT_EINVAL;
    memset(m, 0, sizeof *m);
    return 0;
}

static int mutex_lock(weft_mutex *m, int64_t deadline, bool block)
{
    if (!m)
        return WEFT_EINVAL;
    weft__lock_acquire(LOCK(m));
    if (!m->locked) {
        m->locked = 1;
        weft__lock_release(LOCK(m));
        return 0;
    }
    if (!block || (deadline != WEFT_FOREVER && deadline <= weft_now())) {
        weft__lock_release(LOCK(m));
        return block ? WEFT_ETIMEDOUT : WEFT_EAGAIN;
    }
    /* On success the unlocker handed us the mutex: m->locked stayed 1 for us. */
    return weft__waitq_wait(waitq_of(&m->waiters), LOCK(m), "mutex", deadline, NULL);
}

int weft_mutex_lock(weft_mutex *m)
{
    return WEFT__GATED(mutex_lock(m, WEFT_FOREVER, true));
}

int weft_mutex_lock_until(weft_mutex *m, int64_t deadline)
{
    return WEFT__GATED(mutex_lock(m, deadline, true));
}

int weft_mutex_trylock(weft_mutex *m)
{
    return WEFT__GATED(mutex_lock(m, WEFT_FOREVER, false));
}

static int mutex_unlock(weft_mutex *m)
{
    if (!m)
        return WEFT_EINVAL;
    weft__lock_acquire(LOCK(m));
    if (!m->locked) {
        weft__lock_release(LOCK(m));
        return WEFT_ESTATE;
    }
    struct weft__waiter *w = waitq_claim(waitq_of(&m->waiters));
    if (!w)
        m->locked = 0;
    weft__lock_release(LOCK(m));
    if (w)
        weft__waker_complete(w->k, 0, false);
    return 0;
}

int weft_mutex_unlock(weft_mutex *m)
{
    return WEFT__GATED(mutex_unlock(m));
}

/* Acquire uninterruptibly: the re-lock after a condition wait (the caller must get the
 * mutex back) and weft_once_call. In a shield (coro.h "Cancellation"): a request of the
 * caller stays pending for its next cancellation point and cannot cut this wait short.
 * 0, or WEFT_ENORUNTIME for a plain thread when the runtime stopped (or none runs) while
 * the mutex was held by someone else: it is not ours then. */
static int mutex_relock(weft_mutex *m)
{
    struct weft__coro *co = weft__coro_self();
    weft__shield_enter(co);
    int r = mutex_lock(m, WEFT_FOREVER, true);
    weft__shield_leave(co);
    WEFT_ASSERT(r == 0 || r == WEFT_ENORUNTIME);
    return r;
}

/* The same as a public call of its own (once, groups: user code runs between the steps). */
static int mutex_relock_gated(weft_mutex *m)
{
    return WEFT__GATED(mutex_relock(m));
}

/* ---- condition variable --------------------------------------------------------------- */

int weft_cond_init(weft_cond *c)
{
    if (!c)
        return WEFT_EINVAL;
    memset(c, 0, sizeof *c);
    return 0;
}

static int cond_wait_until(weft_cond *c, weft_mutex *m, int64_t deadline)
{
    weft__lock_acquire(LOCK(c));
    /* m is released under the cond's lock, which we hold until we are queued (the wait
     * releases it): a signaller, who needs that lock, can only come after we are queued,
     * so a signal sent after the release finds us. Lock order cond -> mutex word;
     * signalers never hold a mutex word while taking the cond's. */
    int r = mutex_unlock(m);
    if (r != 0) {
        weft__lock_release(LOCK(c));
        return r; /* WEFT_ESTATE: m was not locked */
    }
    r = weft__waitq_wait(waitq_of(&c->waiters), LOCK(c), "cond", deadline, NULL);
    int r2 = mutex_relock(m);
    if (r2 != 0)
        return r2; /* WEFT_ENORUNTIME, without m */
    if (r == WEFT_ENORUNTIME)
        mutex_unlock(m); /* one rule for the caller: WEFT_ENORUNTIME never holds m */
    return r;
}

int weft_cond_wait_until(weft_cond *c, weft_mutex *m, int64_t deadline)
{
    if (!c || !m)
        return WEFT_EINVAL;
    return WEFT__GATED(cond_wait_until(c, m, deadline));
}

int weft_cond_wait(weft_cond *c, weft_mutex *m)
{
    return weft_cond_wait_until(c, m, WEFT_FOREVER);
}

static int cond_wake(weft_cond *c, bool all)
{
    if (!c)
        return WEFT_EINVAL;
    struct weft__waiter *done = NULL;
    weft__lock_acquire(LOCK(c));
    waitq_claim_onto(waitq_of(&c->waiters), &done, all ? -1 : 1, 0);
    weft__lock_release(LOCK(c));
    weft__waitq_complete_all(done, false);
    return 0;
}

int weft_cond_signal(weft_cond *c)
{
    return WEFT__GATED(cond_wake(c, false));
}

int weft_cond_broadcast(weft_cond *c)
{
    return WEFT__GATED(cond_wake(c, true));
}

/* ---- semaphore ------------------------------------------------------------------------- */

int weft_sem_init(weft_sem *s, int64_t count)
{
    if (!s || count < 0)
        return WEFT_EINVAL;
    memset(s, 0, sizeof *s);
    s->count = count;
    return 0;
}

static int sem_wait(weft_sem *s, int64_t deadline, bool block)
{
    if (!s)
        return WEFT_EINVAL;
    weft__lock_acquire(LOCK(s));
    if (s->count > 0) {
        s->count--;
        weft__lock_release(LOCK(s));
        return 0;
    }
    if (!block || (deadline != WEFT_FOREVER && deadline <= weft_now())) {
        weft__lock_release(LOCK(s));
        return block ? WEFT_ETIMEDOUT : WEFT_EAGAIN;
    }
    return weft__waitq_wait(waitq_of(&s->waiters), LOCK(s), "semaphore", deadline, NULL);
}

int weft_sem_wait(weft_sem *s)
{
    return WEFT__GATED(sem_wait(s, WEFT_FOREVER, true));
}

int weft_sem_wait_until(weft_sem *s, int64_t deadline)
{
    return WEFT__GATED(sem_wait(s, deadline, true));
}

int weft_sem_trywait(weft_sem *s)
{
    return WEFT__GATED(sem_wait(s, WEFT_FOREVER, false));
}

static int sem_post(weft_sem *s)
{
    if (!s)
        return WEFT_EINVAL;
    weft__lock_acquire(LOCK(s));
    struct weft__waiter *w = waitq_claim(waitq_of(&s->waiters));
    if (!w) {
        if (s->count == INT64_MAX) {
            weft__lock_release(LOCK(s));
            return WEFT_EINVAL;
        }
        s->count++;
    }
    weft__lock_release(LOCK(s));
    if (w)
        weft__waker_complete(w->k, 0, false); /* the unit goes straight to the waiter */
    return 0;
}

int weft_sem_post(weft_sem *s)
{
    return WEFT__GATED(sem_post(s));
}

/* ---- wait group ----------------------------------------------------------------------- */

int weft_wg_init(weft_wg *wg)
{
    if (!wg)
        return WEFT_EINVAL;
    memset(wg, 0, sizeof *wg);
    return 0;
}

/* The count word holds the counter and, in bit 62, WAITERS: some party queued (or is about
 * to queue) on the group. Freeing a group is allowed as soon as a wait returned (Go's
 * WaitGroup is reused and freed that way), so the Done that brings the counter to zero may
 * touch the group after its CAS only if WAITERS says someone is queued — and that one is
 * released only by this Done's completion, after its last touch of the group (the unlock).
 * Without WAITERS a waiter may see 0 (fast path, no lock) and free the group at once: the
 * Done then returns without another access. A waiter sets WAITERS under the lock by CAS on
 * a nonzero counter, so a Done that reaches zero either came first (the waiter sees 0 and
 * returns) or sees the flag (it takes the lock, which the waiter holds until it queued).
 * seq_cst throughout: one total order of the CASes on the word. */
#define WEFT__WG_WAITERS (WEFT_WG_MAX + 1)
#define WEFT__WG_COUNT(v) ((v) & ~WEFT__WG_WAITERS)

static int wg_add(weft_wg *wg, int64_t delta)
{
    /* The counter is atomic, so Add/Done take no lock unless the count reaches zero with a
     * waiter queued (many finishing tasks on several workers would otherwise contend). */
    int64_t old = __atomic_load_n(&wg->count, __ATOMIC_SEQ_CST), now;
    do {
        int64_t c = WEFT__WG_COUNT(old);
        if ((delta < 0 && c + delta < 0) || (delta > 0 && c > WEFT_WG_MAX - delta))
            return WEFT_EINVAL;                 /* refused without ever publishing a bad count */
        now = c + delta == 0 ? 0 : old + delta; /* reaching zero clears WAITERS */
    } while (!__atomic_compare_exchange_n(&wg->count, &old, now, true, __ATOMIC_SEQ_CST,
                                          __ATOMIC_SEQ_CST));
    if (now != 0 || !(old & WEFT__WG_WAITERS))
        return 0; /* nobody queued: not one more access to *wg (see above) */
    struct weft__waiter *done = NULL;
    weft__lock_acquire(LOCK(wg));
    if (WEFT__WG_COUNT(__atomic_load_n(&wg->count, __ATOMIC_SEQ_CST)) == 0)
        waitq_claim_onto(waitq_of(&wg->waiters), &done, -1, 0);
    weft__lock_release(LOCK(wg));
    weft__waitq_complete_all(done, false);
    return 0;
}

int weft_wg_add(weft_wg *wg, int64_t delta)
{
    if (!wg)
        return WEFT_EINVAL;
    return WEFT__GATED(wg_add(wg, delta));
}

int weft_wg_done(weft_wg *wg)
{
    return weft_wg_add(wg, -1);
}

static int wg_wait_until(weft_wg *wg, int64_t deadline)
{
    int64_t v = __atomic_load_n(&wg->count, __ATOMIC_SEQ_CST);
    if (WEFT__WG_COUNT(v) == 0)
        return 0;
    weft__lock_acquire(LOCK(wg));
    /* Announce the wait before queueing (see wg_add): a CAS on a nonzero counter. */
    v = __atomic_load_n(&wg->count, __ATOMIC_SEQ_CST);
    while (WEFT__WG_COUNT(v) != 0 && !(v & WEFT__WG_WAITERS) &&
           !__atomic_compare_exchange_n(&wg->count, &v, v | WEFT__WG_WAITERS, true,
                                        __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {}
    if (WEFT__WG_COUNT(v) == 0) {
        weft__lock_release(LOCK(wg));
        return 0;
    }
    if (deadline != WEFT_FOREVER && deadline <= weft_now()) {
        weft__lock_release(LOCK(wg));
        return WEFT_ETIMEDOUT; /* WAITERS stays: a Done then takes the lock for nobody */
    }
    return weft__waitq_wait(waitq_of(&wg->waiters), LOCK(wg), "wait group", deadline, NULL);
}

int weft_wg_wait_until(weft_wg *wg, int64_t deadline)
{
    if (!wg)
        return WEFT_EINVAL;
    return WEFT__GATED(wg_wait_until(wg, deadline));
}

int weft_wg_wait(weft_wg *wg)
{
    return weft_wg_wait_until(wg, WEFT_FOREVER);
}

/* ---- once ----------------------------------------------------------------------------- */

int weft_once_call(weft_once *o, void (*fn)(void))
{
    if (!o || !fn)
        return WEFT_EINVAL;
    _Atomic uint32_t *state = (_Atomic uint32_t *)(void *)&o->state;
    /* acquire: pairs with the release below, so fn's effects are visible. */
    if (atomic_load_explicit(state, memory_order_acquire) == 2)
        return 0;
    /* fn's effects must be visible on return: not interruptible (but a plain thread's wait
     * ends when the runtime stops: fn has not run for it then) */
    if (mutex_relock_gated(&o->m) != 0)
        return WEFT_ENORUNTIME;
    if (atomic_load_explicit(state, memory_order_relaxed) != 2) {
        fn();
        atomic_store_explicit(state, 2, memory_order_release);
    }
    weft_mutex_unlock(&o->m);
    return 0;
}
