/* chan.h — the channel object, shared by chan.c and select.c. */
#ifndef WEFT_CHAN_INT_H
#define WEFT_CHAN_INT_H

#include "waitq.h"

struct weft_chan {
    weft__lock lock;        /* guards everything below except refs */
    int closed;
    size_t elem_size, cap;
    size_t head, len;       /* ring buffer: `len` elements from `head` */
    char *buf;
    struct weft__wq sendq;  /* blocked senders (their element is in waiter.elem) */
    struct weft__wq recvq;  /* blocked receivers (waiter.elem is where to put one) */
    _Atomic int refs;
    uint64_t epoch;         /* weft__run_epoch when a waiter was last queued */
};

/* Under ch->lock. Try to complete a send/receive now. Returns 0 (done), WEFT_ECLOSED, or
 * WEFT_EAGAIN (would block). *wake receives a claimed waiter to complete after unlocking. */
int weft__chan_try_send_locked(struct weft_chan *ch, const void *elem,
                               struct weft__waiter **wake);
int weft__chan_try_recv_locked(struct weft_chan *ch, void *elem, struct weft__waiter **wake);
/* select.c: record in the selecting party's state which case a claimed waiter won. */
void weft__select_mark(struct weft__waiter *w);
/* Complete a waiter claimed by the above (after unlocking). */
void weft__chan_complete(struct weft__waiter *w, int result);

#endif
