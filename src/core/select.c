/* SPDX-License-Identifier: MIT */
/* select.c — floor 5 (primitives): weft_select: wait on several channel operations, complete
 * exactly one.
 *
 * 1. Lock every distinct channel of the cases, in address order (a global order, so two
 *    selects over the same channels cannot deadlock).
 * 2. Visit the cases in a random order (fairness: when several are ready, each is equally
 *    likely) and complete the first that can proceed.
 * 3. None can: with deadline 0 (the default case) return WEFT_EAGAIN; else link one waiter
 *    per case into its channel's queue, all sharing one waker, and park (the channels are
 *    unlocked in the on-top step, once we are off our stack). The first waker to claim the
 *    shared waker completes its case and records which (weft__select_mark, waitq.h, under that
 *    channel's lock); the others find the waker claimed and skip our waiters.
 * 4. On wake-up, relock and unlink the waiters still linked.
 * Buffered channels (chan.c) keep their elements in a lock-free ring: before the attempts
 * of a select that may wait, each case announces the wait on its channel (the waiting side
 * of chan.c's wake-up handshake), and a waker that claimed the select but then found the
 * element or slot gone completes it with WEFT__ERETRY: the select runs another round. A
 * case whose ring was mid-operation (WEFT__EBUSY) makes the wait a short poll. */
#include "chan.h"
#include "gate.h"
#include "scheduler.h"
#include "sim.h"
#include "timer.h"
#include "waker.h"

#include <stdlib.h>
#include <string.h>

struct lockset {
    int n;
    struct weft_chan **ch; /* distinct channels, in address order */
};

/* Insertion sort by address: n <= WEFT_SELECT_MAX and usually 2-4; no libc on the stack. */
static void sort_chans(struct weft_chan **ch, int n)
{
    for (int i = 1; i < n; i++) {
        struct weft_chan *c = ch[i];
        int j = i;
        for (; j > 0 && (uintptr_t)ch[j - 1] > (uintptr_t)c; j--)
            ch[j] = ch[j - 1];
        ch[j] = c;
    }
}

static void lock_all(struct lockset *ls)
{
    for (int i = 0; i < ls->n; i++)
        weft__lock_acquire(&ls->ch[i]->lock);
}

static void unlock_all(void *p)
{
    struct lockset *ls = p;
    for (int i = ls->n - 1; i >= 0; i--)
        weft__lock_release(&ls->ch[i]->lock);
}

static uint32_t rand32(void)
{
    /* Per-thread xorshift; fairness needs spread, not cryptographic quality. */
    static WEFT_TLS uint32_t s;
    if (WEFT_UNLIKELY(weft__sim_on()) && weft__worker_self())
        return (uint32_t)weft__sim_rand(); /* simulation: the seeded generator (sim.h) */
    if (!s)
        s = (uint32_t)(uintptr_t)&s ^ (uint32_t)weft_now() ^ 0x9e3779b9u;
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    return s;
}

/* One round of a select: try the cases, else wait. Returns the completed case's index, an
 * error, or WEFT__ERETRY when a waker claimed us without completing a case (a buffered
 * channel's element or slot was taken first, see chan.c): the caller runs another round. */
static int select_round(weft_case *cases, const int *active, int nact, struct lockset *ls,
                        int64_t deadline, int *order, struct weft__waiter *ws)
{
    for (int i = 0; i < nact; i++) /* a loop, not memcpy: no libc call (segstack.h) */
        order[i] = active[i];
    /* Random visiting order (Fisher-Yates). */
    for (int i = nact - 1; i > 0; i--) {
        int j = (int)(rand32() % (uint32_t)(i + 1));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    bool self_coro = weft__coro_self() != NULL;
    lock_all(ls);
    if (deadline != 0) {
        /* We may wait: announce it on every buffered channel before the attempts, the
         * waiting side of chan.c's wake-up handshake (a lock-free party that publishes after
         * our attempt then sees the flag and pumps our waiter, once we unlock). */
        for (int i = 0; i < nact; i++)
            weft__chan_announce_wait(cases[order[i]].ch, cases[order[i]].op == WEFT_OP_SEND);
        weft__fence_seq_cst();
    }
    /* Waiters of other parties that our attempts served (completed after unlocking, or
     * before we park). */
    struct weft__waiter *done = NULL;
    bool busy = false; /* a buffered channel was mid-operation: wait a bounded time only */
    for (int i = 0; i < nact; i++) {
        weft_case *c = &cases[order[i]];
        int r = c->op == WEFT_OP_SEND ? weft__chan_try_send_locked(c->ch, c->elem, &done)
                                      : weft__chan_try_recv_locked(c->ch, c->elem, &done);
        busy |= r == WEFT__EBUSY;
        if (r == WEFT_EAGAIN || r == WEFT__EBUSY)
            continue;
        unlock_all(ls);
        weft__waitq_complete_all(done, self_coro);
        c->result = r;
        return order[i];
    }
    if (deadline == 0 || (deadline != WEFT_FOREVER && deadline <= weft_now())) {
        unlock_all(ls);
        weft__waitq_complete_all(done, self_coro);
        return deadline == 0 ? WEFT_EAGAIN : WEFT_ETIMEDOUT;
    }
    weft__waitq_complete_all(done, self_coro);
    /* busy: poll (see chan.c, "The wake-up handshake") */
    int64_t until = busy ? weft__chan_poll_until(deadline) : deadline;

    struct weft__sel sel = {-1};
    struct weft__waker k;
    struct weft__thread_parker tp;
    struct weft__coro *co = weft__wait_arm_self(&k, &tp, "select");
    for (int i = 0; i < nact; i++) {
        weft_case *c = &cases[order[i]];
        struct weft__waiter *w = &ws[i];
        w->k = &k;
        w->elem = c->elem;
        w->sel = &sel;
        w->index = order[i];
        c->ch->epoch = atomic_load_explicit(&weft__run_epoch, memory_order_relaxed);
        waitq_push(c->op == WEFT_OP_SEND ? &c->ch->sendq : &c->ch->recvq, w);
    }
    int r;
    if (co) {
        r = weft__park_until(until, unlock_all, ls);
    } else {
        unlock_all(ls);
        r = weft__tparker_wait(&tp, until);
    }
    /* Unlink what is still linked. A thread that timed out and finds one of its waiters
     * popped by a waker must wait for that completion, which then wins. */
    lock_all(ls);
    bool popped = false;
    for (int i = 0; i < nact; i++) {
        weft_case *c = &cases[order[i]];
        if (ws[i].linked)
            waitq_unlink(c->op == WEFT_OP_SEND ? &c->ch->sendq : &c->ch->recvq, &ws[i]);
        else
            popped = true;
    }
    unlock_all(ls);
    if (!co && r == WEFT_ETIMEDOUT && popped &&
        (atomic_load_explicit(&tp.word, memory_order_acquire) & WEFT__TP_STATE) != WEFT__TP_ARMED)
        r = weft__tparker_wait(&tp, WEFT_FOREVER);
    if (r == WEFT_ETIMEDOUT && until != deadline)
        return WEFT__ERETRY; /* the poll ended, not the caller's deadline */
    if (r == WEFT_ETIMEDOUT || r == WEFT_ECANCELED || r == WEFT_ENOMEM || r == WEFT__ERETRY ||
        r == WEFT_ENORUNTIME) /* ENORUNTIME: a plain thread woken by a stopping runtime */
        return r;
    WEFT_ASSERT(sel.chosen >= 0);
    cases[sel.chosen].result = r; /* 0 or WEFT_ECLOSED */
    return sel.chosen;
}

/* The arrays a select needs, sized by its number of cases (`n` of each). */
struct sel_mem {
    struct weft_chan **chs;
    int *active, *order;
    struct weft__waiter *ws;
};

static int select_run(weft_case *cases, int n, int64_t deadline, struct sel_mem *m)
{
    struct lockset ls = {0, m->chs};
    int *active = m->active;
    int nact = 0;
    for (int i = 0; i < n; i++) {
        weft_case *c = &cases[i];
        c->result = 0;
        if (c->op == WEFT_OP_NONE)
            continue;
        if ((c->op != WEFT_OP_SEND && c->op != WEFT_OP_RECV) || !c->ch ||
            (!c->elem && c->ch->elem_size && c->op == WEFT_OP_SEND))
            return WEFT_EINVAL;
        active[nact++] = i;
        ls.ch[ls.n++] = c->ch;
    }
    sort_chans(ls.ch, ls.n);
    int k = 0;
    for (int i = 0; i < ls.n; i++)
        if (i == 0 || ls.ch[i] != ls.ch[k - 1])
            ls.ch[k++] = ls.ch[i];
    ls.n = k;

    /* Only nil cases (nact == 0): nothing can complete, so the select waits for its
     * deadline or a cancellation, WEFT_FOREVER included (Go's `select {}`) — except on a
     * plain thread, which nothing could ever wake (as weft_sleep_until). */
    if (nact == 0 && deadline == WEFT_FOREVER && !weft__coro_self())
        return WEFT_EINVAL;
    int r;
    while ((r = select_round(cases, active, nact, &ls, deadline, m->order, m->ws)) == WEFT__ERETRY)
        ;
    return r;
}

/* More than SEL_SMALL cases: arrays sized by n, out of line (a variable-length frame in a
 * split-stack build calls libgcc, which would make every select ask for a large frame). */
#define SEL_SMALL 2
static WEFT_NOINLINE int select_big(weft_case *cases, int n, int64_t deadline)
{
    struct weft_chan *chs[n];
    int active[n], order[n];
    struct weft__waiter ws[n];
    struct sel_mem m = {chs, active, order, ws};
    return select_run(cases, n, deadline, &m);
}

static int select_cases(weft_case *cases, int n, int64_t deadline)
{
    if (n > SEL_SMALL)
        return select_big(cases, n, deadline);
    /* Up to two cases, fixed arrays: the frame stays small for sub-page stacks (64 waiters
     * would be 4 KiB). */
    struct weft_chan *chs[SEL_SMALL];
    int active[SEL_SMALL], order[SEL_SMALL];
    struct weft__waiter ws[SEL_SMALL];
    struct sel_mem m = {chs, active, order, ws};
    return select_run(cases, n, deadline, &m);
}

/* A plain thread selects inside the gate (gate.h), like a channel's locked path. */
int weft_select(weft_case *cases, int n, int64_t deadline)
{
    if (!cases || n <= 0 || n > WEFT_SELECT_MAX)
        return WEFT_EINVAL;
    return WEFT__GATED_RT(select_cases(cases, n, deadline));
}
