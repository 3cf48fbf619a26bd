/* chan.c — channels: buffered and rendezvous, coroutines and plain threads on either end.
 *
 * Invariants (under ch->lock):
 *   - at least one of sendq and recvq is empty, except transiently inside an operation;
 *     more precisely: if recvq holds a live receiver then len == 0, and if sendq holds a
 *     live sender then len == cap (waiters whose wait already ended elsewhere may linger
 *     until a waker pops and skips them, or their owner unlinks them);
 *   - closed channels have empty queues once close() has returned (close completes every
 *     waiter with WEFT_ECLOSED); buffered elements stay and are still received.
 *   - FIFO per sender: a sender's elements enter the buffer or a receiver in the order it
 *     sent them, because one sender has at most one operation in flight and blocked senders
 *     are served from the queue's head.
 * Direct hand-off: a sender that finds a waiting receiver copies straight into the
 * receiver's element and makes it runnable (into the sender's runnext when the sender is a
 * coroutine), with no trip through the buffer; a receiver that frees a buffer slot moves
 * the first blocked sender's element into it.
 * Wakers copy into and out of a parked coroutine's stack: that coroutine cannot run (or
 * move) until the copy is done and its wait is completed (see waitq.h). */
#include "chan.h"
#include "runtime.h"

#include <stdlib.h>
#include <string.h>

/* The allocator runs through weft__offstack: it may go deeper than a small stack allows. */
struct chan_new {
    size_t elem_size, cap;
    struct weft_chan *ch;
};

static void chan_alloc(void *p)
{
    struct chan_new *n = p;
    struct weft_chan *ch = calloc(1, sizeof *ch);
    if (ch && n->cap && n->elem_size && !(ch->buf = malloc(n->cap * n->elem_size))) {
        free(ch);
        ch = NULL;
    }
    n->ch = ch;
}

static void chan_free(void *p)
{
    struct weft_chan *ch = p;
    free(ch->buf);
    free(ch);
}

int weft_chan_create(weft_chan **out, size_t elem_size, size_t capacity)
{
    if (!out)
        return WEFT_EINVAL;
    *out = NULL;
    if (elem_size > ((size_t)1 << 20) || capacity > ((size_t)1 << 30) ||
        (capacity && elem_size && capacity > SIZE_MAX / elem_size))
        return WEFT_EINVAL;
    struct chan_new n = {elem_size, capacity, NULL};
    weft__offstack(chan_alloc, &n);
    struct weft_chan *ch = n.ch;
    if (!ch)
        return WEFT_ENOMEM;
    ch->elem_size = elem_size;
    ch->cap = capacity;
    atomic_init(&ch->refs, 1);
    *out = ch;
    return 0;
}

void weft_chan_ref(weft_chan *ch)
{
    if (ch)
        atomic_fetch_add_explicit(&ch->refs, 1, memory_order_relaxed);
}

void weft_chan_unref(weft_chan *ch)
{
    if (!ch)
        return;
    int old = atomic_fetch_sub_explicit(&ch->refs, 1, memory_order_acq_rel);
    if (old <= 0)
        weft__panic("weft: weft_chan_unref on a freed channel %p", (void *)ch);
    if (old != 1)
        return;
    /* Waiters of an earlier run were abandoned at its shutdown (their stacks are gone): the
     * channel may be freed. Waiters of the current run are a use-after-free in waiting. */
    if ((ch->sendq.head || ch->recvq.head) && weft__rt &&
        ch->epoch == atomic_load(&weft__run_epoch))
        weft__panic("weft: channel %p freed while coroutines or threads wait on it", (void *)ch);
    weft__offstack(chan_free, ch);
}

size_t weft_chan_len(weft_chan *ch)
{
    if (!ch)
        return 0;
    weft__lock_acquire(&ch->lock);
    size_t n = ch->len;
    weft__lock_release(&ch->lock);
    return n;
}

size_t weft_chan_cap(weft_chan *ch)
{
    return ch ? ch->cap : 0;
}

/* Under ch->lock. Waiters queued during an earlier weft_run belonged to coroutines that
 * were abandoned at its shutdown (their stacks are unmapped): forget them, never touch
 * them. (A plain thread left blocked across a shutdown is the caller's bug: documented.) */
static inline void reap_stale(struct weft_chan *ch)
{
    if (WEFT_UNLIKELY(ch->epoch != atomic_load_explicit(&weft__run_epoch, memory_order_relaxed)) &&
        (ch->sendq.head || ch->recvq.head)) {
        ch->sendq = (struct weft__wq){NULL, NULL};
        ch->recvq = (struct weft__wq){NULL, NULL};
    }
}

/* Element copies. Unchecked in segmented builds: memcpy is a leaf that fits in the slack,
 * and a channel operation must not ask for a large frame (segstack.h). */
static WEFT_NOSPLIT void elem_copy(void *dst, const void *src, size_t n)
{
    memcpy(dst, src, n);
}

static inline void *slot(struct weft_chan *ch, size_t i)
{
    return ch->buf + ((ch->head + i) % ch->cap) * ch->elem_size;
}

void weft__chan_complete(struct weft__waiter *w, int result)
{
    /* A coroutine completing another hands it the CPU next (runnext), see runtime.h. */
    weft__waker_complete(w->k, result, weft__coro_self() != NULL);
}

static void mark_selected(struct weft__waiter *w);

int weft__chan_try_send_locked(struct weft_chan *ch, const void *elem,
                               struct weft__waiter **wake)
{
    *wake = NULL;
    reap_stale(ch);
    if (ch->closed)
        return WEFT_ECLOSED;
    struct weft__waiter *r = waitq_claim(&ch->recvq);
    if (r) {
        if (ch->elem_size && r->elem) /* a select may receive into NULL: discard */
            elem_copy(r->elem, elem, ch->elem_size);
        mark_selected(r);
        *wake = r;
        return 0;
    }
    if (ch->len < ch->cap) {
        if (ch->elem_size)
            elem_copy(slot(ch, ch->len), elem, ch->elem_size);
        ch->len++;
        return 0;
    }
    return WEFT_EAGAIN;
}

int weft__chan_try_recv_locked(struct weft_chan *ch, void *elem, struct weft__waiter **wake)
{
    *wake = NULL;
    reap_stale(ch);
    if (ch->len) {
        if (ch->elem_size && elem)
            elem_copy(elem, slot(ch, 0), ch->elem_size);
        ch->head = (ch->head + 1) % ch->cap;
        ch->len--;
        /* A slot is free: the first blocked sender's element moves into the buffer. */
        struct weft__waiter *s = waitq_claim(&ch->sendq);
        if (s) {
            if (ch->elem_size)
                elem_copy(slot(ch, ch->len), s->elem, ch->elem_size);
            ch->len++;
            mark_selected(s);
            *wake = s;
        }
        return 0;
    }
    struct weft__waiter *s = waitq_claim(&ch->sendq);
    if (s) {
        if (ch->elem_size && elem)
            elem_copy(elem, s->elem, ch->elem_size);
        mark_selected(s);
        *wake = s;
        return 0;
    }
    return ch->closed ? WEFT_ECLOSED : WEFT_EAGAIN;
}

static void mark_selected(struct weft__waiter *w)
{
    if (w->sel)
        weft__select_mark(w);
}

static int chan_op(struct weft_chan *ch, void *elem, int64_t deadline, bool send, bool block)
{
    if (!ch || (!elem && ch->elem_size))
        return WEFT_EINVAL;
    if (!weft__rt)
        return WEFT_ENORUNTIME;
    struct weft__waiter *wake;
    weft__lock_acquire(&ch->lock);
    int r = send ? weft__chan_try_send_locked(ch, elem, &wake)
                 : weft__chan_try_recv_locked(ch, elem, &wake);
    if (r != WEFT_EAGAIN) {
        weft__lock_release(&ch->lock);
        if (wake)
            weft__chan_complete(wake, 0);
        return r;
    }
    if (!block) {
        weft__lock_release(&ch->lock);
        return WEFT_EAGAIN;
    }
    if (deadline != WEFT_FOREVER && deadline <= weft_now()) {
        weft__lock_release(&ch->lock);
        return WEFT_ETIMEDOUT;
    }
    struct weft__waiter w;
    struct weft__waker k;
    struct weft__thread_parker tp;
    weft__waiter_init(&w, &k, &tp, send ? "chan send" : "chan recv");
    w.elem = elem;
    struct weft__wq *q = send ? &ch->sendq : &ch->recvq;
    ch->epoch = atomic_load_explicit(&weft__run_epoch, memory_order_relaxed);
    waitq_push(q, &w);
    return weft__waitq_block(q, &w, &ch->lock, deadline);
}

int weft_chan_send_until(weft_chan *ch, const void *elem, int64_t deadline)
{
    return chan_op(ch, (void *)elem, deadline, true, true);
}

int weft_chan_send(weft_chan *ch, const void *elem)
{
    return chan_op(ch, (void *)elem, WEFT_FOREVER, true, true);
}

int weft_chan_try_send(weft_chan *ch, const void *elem)
{
    return chan_op(ch, (void *)elem, WEFT_FOREVER, true, false);
}

int weft_chan_recv_until(weft_chan *ch, void *elem, int64_t deadline)
{
    return chan_op(ch, elem, deadline, false, true);
}

int weft_chan_recv(weft_chan *ch, void *elem)
{
    return chan_op(ch, elem, WEFT_FOREVER, false, true);
}

int weft_chan_try_recv(weft_chan *ch, void *elem)
{
    return chan_op(ch, elem, WEFT_FOREVER, false, false);
}

int weft_chan_close(weft_chan *ch)
{
    if (!ch)
        return WEFT_EINVAL;
    struct weft__waiter *done = NULL, *w;
    weft__lock_acquire(&ch->lock);
    if (ch->closed) {
        weft__lock_release(&ch->lock);
        return WEFT_ECLOSED;
    }
    ch->closed = 1;
    reap_stale(ch);
    /* Every waiter ends with WEFT_ECLOSED: receivers (there are none while elements are
     * buffered) and senders (their element is not taken: they learn it from the code). */
    while ((w = waitq_claim(&ch->recvq))) {
        mark_selected(w);
        w->done_next = done;
        done = w;
    }
    while ((w = waitq_claim(&ch->sendq))) {
        mark_selected(w);
        w->done_next = done;
        done = w;
    }
    weft__lock_release(&ch->lock);
    while (done) {
        w = done;
        done = w->done_next; /* read before completing: the waiter's frame may then go */
        weft__waker_complete(w->k, WEFT_ECLOSED, false);
    }
    return 0;
}
