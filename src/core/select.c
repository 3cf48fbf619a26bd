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
 * 4. On wake-up, relock and unlink the waiters still linked. */
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
    if (!s)
        s = (uint32_t)(uintptr_t)&s ^ (uint32_t)weft_now() ^ 0x9e3779b9u;
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    return s;
}

int weft_select(weft_case *cases, int n, int64_t deadline)
{
    if (!cases || n <= 0 || n > WEFT_SELECT_MAX)
        return WEFT_EINVAL;
    if (!weft__rt)
        return WEFT_ENORUNTIME;
    /* Arrays sized by n, not WEFT_SELECT_MAX: the frame of a two-case select must fit a
     * sub-page stack (64 waiters would be 4 KiB). */
    struct weft_chan *chs[n];
    struct lockset ls = {0, chs};
    int order[n];
    int nact = 0;
    for (int i = 0; i < n; i++) {
        weft_case *c = &cases[i];
        c->result = 0;
        if (c->op == WEFT_OP_NONE)
            continue;
        if ((c->op != WEFT_OP_SEND && c->op != WEFT_OP_RECV) || !c->ch ||
            (!c->elem && c->ch->elem_size && c->op == WEFT_OP_SEND))
            return WEFT_EINVAL;
        order[nact++] = i;
        ls.ch[ls.n++] = c->ch;
    }
    /* Random visiting order (Fisher-Yates). */
    for (int i = nact - 1; i > 0; i--) {
        int j = (int)(rand32() % (uint32_t)(i + 1));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    sort_chans(ls.ch, ls.n);
    int m = 0;
    for (int i = 0; i < ls.n; i++)
        if (i == 0 || ls.ch[i] != ls.ch[m - 1])
            ls.ch[m++] = ls.ch[i];
    ls.n = m;

    if (nact == 0 && deadline == WEFT_FOREVER)
        return WEFT_EINVAL; /* would block forever: only nil cases */

    lock_all(&ls);
    for (int i = 0; i < nact; i++) {
        weft_case *c = &cases[order[i]];
        struct weft__waiter *wake;
        int r = c->op == WEFT_OP_SEND ? weft__chan_try_send_locked(c->ch, c->elem, &wake)
                                      : weft__chan_try_recv_locked(c->ch, c->elem, &wake);
        if (r == WEFT_EAGAIN)
            continue;
        unlock_all(&ls);
        if (wake)
            weft__chan_complete(wake, 0);
        c->result = r;
        return order[i];
    }
    if (deadline == 0) {
        unlock_all(&ls);
        return WEFT_EAGAIN;
    }
    if (deadline != WEFT_FOREVER && deadline <= weft_now()) {
        unlock_all(&ls);
        return WEFT_ETIMEDOUT;
    }

    struct weft__sel sel = {-1};
    struct weft__waiter ws[nact > 0 ? nact : 1];
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
        r = weft__park_until(deadline, unlock_all, &ls);
    } else {
        unlock_all(&ls);
        r = weft__tparker_wait(&tp, deadline);
    }
    /* Unlink what is still linked. A thread that timed out and finds one of its waiters
     * popped by a waker must wait for that completion, which then wins. */
    lock_all(&ls);
    bool popped = false;
    for (int i = 0; i < nact; i++) {
        weft_case *c = &cases[order[i]];
        if (ws[i].linked)
            waitq_unlink(c->op == WEFT_OP_SEND ? &c->ch->sendq : &c->ch->recvq, &ws[i]);
        else
            popped = true;
    }
    unlock_all(&ls);
    if (!co && r == WEFT_ETIMEDOUT && popped &&
        (atomic_load_explicit(&tp.word, memory_order_acquire) & TP_STATE) != TP_ARMED)
        r = weft__tparker_wait(&tp, WEFT_FOREVER);
    if (r == WEFT_ETIMEDOUT || r == WEFT_ECANCELED)
        return r;
    WEFT_ASSERT(sel.chosen >= 0);
    cases[sel.chosen].result = r; /* 0 or WEFT_ECLOSED */
    return sel.chosen;
}
