/* select.c — weft_select: wait on several channel operations, complete exactly one.
 *
 * 1. Lock every distinct channel of the cases, in address order (a global order, so two
 *    selects over the same channels cannot deadlock).
 * 2. Visit the cases in a random order (fairness: when several are ready, each is equally
 *    likely) and complete the first that can proceed.
 * 3. None can: with deadline 0 (the default case) return WEFT_EAGAIN; else link one waiter
 *    per case into its channel's queue, all sharing one waker, and park (the channels are
 *    unlocked in the on-top step, once we are off our stack). The first waker to claim the
 *    shared waker completes its case and records which (weft__select_mark, under that
 *    channel's lock); the others find the waker claimed and skip our waiters.
 * 4. On wake-up, relock and unlink the waiters still linked.
 * Buffered channels (chan.c) keep their elements in a lock-free ring: before the attempts
 * of a select that may wait, each case announces the wait on its channel (the waiting side
 * of chan.c's wake-up handshake), and a waker that claimed the select but then found the
 * element or slot gone completes it with WEFT__ERETRY: the select runs another round. A
 * case whose ring was mid-operation (WEFT__EBUSY) makes the wait a short poll. */
#include "chan.h"
#include "runtime.h"

#include <stdlib.h>
#include <string.h>

struct weft__sel {
    int chosen;  /* index of the completed case, -1 while none */
};

void weft__select_mark(struct weft__waiter *w)
{
    w->sel->chosen = w->index;
}

struct lockset {
    int n;
    struct weft_chan *ch[WEFT_SELECT_MAX];
};

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y;
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
    static __thread uint32_t s;
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
                        int64_t deadline)
{
    int order[WEFT_SELECT_MAX];
    memcpy(order, active, (size_t)nact * sizeof order[0]);
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
        weft__chan_complete_all(done, self_coro);
        c->result = r;
        return order[i];
    }
    if (deadline == 0 || (deadline != WEFT_FOREVER && deadline <= weft_now())) {
        unlock_all(ls);
        weft__chan_complete_all(done, self_coro);
        return deadline == 0 ? WEFT_EAGAIN : WEFT_ETIMEDOUT;
    }
    weft__chan_complete_all(done, self_coro);
    /* busy: poll (see chan.c, "The wake-up handshake") */
    int64_t until = busy ? weft__chan_poll_until(deadline) : deadline;

    struct weft__sel sel = {-1};
    struct weft__waiter ws[WEFT_SELECT_MAX];
    struct weft__waker k;
    struct weft__thread_parker tp;
    struct weft__coro *co = weft__coro_self();
    if (co)
        weft__wait_arm(co, &k, "select");
    else
        weft__tparker_arm(&tp, &k);
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
        (atomic_load_explicit(&tp.word, memory_order_acquire) & TP_STATE) != TP_ARMED)
        r = weft__tparker_wait(&tp, WEFT_FOREVER);
    if (r == WEFT_ETIMEDOUT && until != deadline)
        return WEFT__ERETRY; /* the poll ended, not the caller's deadline */
    if (r == WEFT_ETIMEDOUT || r == WEFT_ECANCELED || r == WEFT__ERETRY)
        return r;
    WEFT_ASSERT(sel.chosen >= 0);
    cases[sel.chosen].result = r; /* 0 or WEFT_ECLOSED */
    return sel.chosen;
}

int weft_select(weft_case *cases, int n, int64_t deadline)
{
    if (!cases || n <= 0 || n > WEFT_SELECT_MAX)
        return WEFT_EINVAL;
    if (!weft__rt)
        return WEFT_ENORUNTIME;
    struct lockset ls = {0};
    int active[WEFT_SELECT_MAX];
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
    qsort(ls.ch, (size_t)ls.n, sizeof ls.ch[0], cmp_ptr);
    int m = 0;
    for (int i = 0; i < ls.n; i++)
        if (i == 0 || ls.ch[i] != ls.ch[m - 1])
            ls.ch[m++] = ls.ch[i];
    ls.n = m;

    if (nact == 0 && deadline == WEFT_FOREVER)
        return WEFT_EINVAL; /* would block forever: only nil cases */
    int r;
    while ((r = select_round(cases, active, nact, &ls, deadline)) == WEFT__ERETRY)
        ;
    return r;
}
