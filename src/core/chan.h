/* SPDX-License-Identifier: MIT */
/* chan.h — floor 5 (primitives): the channel object, shared by chan.c and select.c (the design
 * is at the top of chan.c). */
#ifndef WEFT_CHAN_INT_H
#define WEFT_CHAN_INT_H

#include "waitq.h"

/* Internal completion code (never returned to callers): the waker claimed the waiter but
 * could not complete its operation (a lock-free operation took the element or the slot it
 * meant to use): the waiter runs its operation again from the start. */
#define WEFT__ERETRY (-4900)
/* Internal result of a buffered channel's attempt: no progress, but the ring is not at its
 * boundary either: a lock-free party is between its claim and its publish of the slot we
 * need. Not a state to wait on indefinitely (chan.c, "The wake-up handshake"). */
#define WEFT__EBUSY (-4901)

/* ring->tail's low bit: the channel is closed (set once, under the lock, never cleared). */
#define WEFT__CHAN_CLOSED 1ull

/* Empty (full) rings met without spinning after a spin that found nothing (chan.c). */
#define WEFT__CHAN_SPIN_SKIP 16

/* A buffered channel's ring: its positions, one cache line each (senders write tail,
 * receivers head), then the slots. */
struct weft__ring {
    _Alignas(64) _Atomic uint64_t tail; /* (next position to fill << 1) | WEFT__CHAN_CLOSED */
    _Alignas(64) _Atomic uint64_t head; /* next position to take */
    _Alignas(64) char slots[];          /* cap slots of `stride` bytes */
};

struct weft_chan {
    /* Fixed at creation: with the flags below, all a lock-free operation reads here. */
    size_t elem_size, cap;
    size_t stride;           /* bytes per ring slot: its sequence word, then the element */
    uint64_t mask;           /* cap - 1 when pow2 */
    bool pow2;               /* cap is a power of two: index by mask, else by % */
    struct weft__ring *ring; /* NULL for a rendezvous channel (cap 0) */
    /* "recvq / sendq may hold a waiter": stored 1 under the lock by a party about to wait,
     * before its last look at the ring (a seq_cst fence between); stored 0 only under the
     * lock, when that queue is seen empty. Read without the lock by the lock-free paths
     * (chan.c: "The wake-up handshake"). Buffered channels only. */
    _Atomic uint32_t recv_waiting, send_waiting;

    /* The slow path. */
    weft__lock lock;       /* guards what follows; serialises close */
    int closed;            /* rendezvous channels (a buffered one's is in ring->tail) */
    struct weft__wq sendq; /* blocked senders (their element is in waiter.elem) */
    struct weft__wq recvq; /* blocked receivers (waiter.elem is where to put one) */
    uint64_t epoch;        /* weft__run_epoch when a waiter was last queued */
    /* Buffered channels: empty (full) rings that coroutines meet without spinning, after
     * a spin that found nothing (chan.c coro_spin: WEFT__CHAN_SPIN_SKIP). Relaxed: a hint,
     * any thread. */
    _Atomic uint32_t spin_skip;
    _Atomic int refs;
    void *ring_mem; /* the allocation holding *ring */
};

static inline bool weft__chan_closed(struct weft_chan *ch)
{
    if (!ch->ring)
        return ch->closed; /* under ch->lock */
    return atomic_load_explicit(&ch->ring->tail, memory_order_acquire) & WEFT__CHAN_CLOSED;
}

/* Under ch->lock. Try to complete a send/receive now. Returns 0 (done), WEFT_ECLOSED,
 * WEFT_EAGAIN (would block: full / empty), or WEFT__EBUSY (would block, but a party that is
 * mid-operation may not notify: wait only with a bounded deadline). Waiters that the attempt claimed (other parties whose
 * operations it completed) are pushed onto *done, each with its waiter.result set; the
 * caller must finish them with weft__waitq_complete_all (waitq.h), after unlocking or, if it is about
 * to block, before. Neither function blocks or looks at the calling party's own waiters. */
int weft__chan_try_send_locked(struct weft_chan *ch, const void *elem, struct weft__waiter **done);
int weft__chan_try_recv_locked(struct weft_chan *ch, void *elem, struct weft__waiter **done);
/* Under ch->lock, before the last attempt of a party that may then wait on ch: publish
 * "a receiver (send=false) / sender (send=true) may wait" (see chan.c). The caller issues
 * weft__fence_seq_cst() between this and that attempt. */
void weft__chan_announce_wait(struct weft_chan *ch, bool send);
/* The deadline for a wait after WEFT__EBUSY: a short poll, or `deadline` if sooner. A wait
 * that ends at it (and not at `deadline`) means "try again". */
int64_t weft__chan_poll_until(int64_t deadline);

#endif
