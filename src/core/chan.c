/* SPDX-License-Identifier: MIT */
/* chan.c — floor 5 (primitives): channels: buffered and rendezvous, coroutines and plain threads on
 * either end.
 *
 * Two designs share the waiter queues (waitq.h) and the lock:
 *
 * Rendezvous channels (cap 0) are entirely under ch->lock: a sender that finds a waiting
 * receiver copies straight into the receiver's element and makes it runnable (into the
 * sender's runnext when the sender is a coroutine), and vice versa; otherwise it queues.
 * Invariant (under the lock): a live receiver waits only if no live sender does, and the
 * reverse.
 *
 * Buffered channels (cap > 0) keep their elements in a lock-free bounded ring of `cap`
 * slots, each a sequence word followed by the element (Vyukov's bounded MPMC queue):
 *   - positions grow forever (64 bits); position p lives in slot p % cap. The slot's
 *     sequence word says what the slot holds: 2p (free, for the sender of p), 2p + 1
 *     (holds the element of p), 2(p + cap) (emptied: free for the sender of p + cap).
 *     (Doubled so that "holds p" and "free for p + 1" differ even when cap is 1.) The word
 *     is stored minus twice the slot's index so that a zeroed ring is the initial state.
 *   - a sender claims position tail by CAS(tail → tail + 1) once the slot says "free for
 *     tail", copies its element in, then publishes with a release store of "holds tail"; a
 *     receiver claims head by CAS once the slot says "holds head", copies out, then frees
 *     the slot with a release store of "free for head + cap". The release/acquire pairs on
 *     the slot word order every element copy (the CASes arbitrate; they are seq_cst only
 *     for the wake-up handshake below).
 *   - FIFO per sender: one sender has at most one operation in flight, and positions are
 *     taken in order, so its elements occupy increasing positions, which receivers claim
 *     in increasing order.
 *   - close sets tail's low bit (WEFT__CHAN_CLOSED) under the lock: from then on every
 *     sender's CAS fails and it returns WEFT_ECLOSED without taking its element. A
 *     receiver reports WEFT_ECLOSED only when the slot at head is empty, tail has the bit,
 *     and tail's position equals head: a tail with the bit never changes again, so every
 *     element sent before the close has been claimed by a receiver. A receiver that finds
 *     head's slot empty while tail is further on (its sender claimed it and is still
 *     copying) treats it as "not yet" (WEFT__EBUSY, below).
 *
 * The wake-up handshake (a Dekker pattern between the lock-free paths and the waiters):
 *   - A party about to wait, under the lock: stores 1 into recv_waiting (send_waiting);
 *     weft__fence_seq_cst(); makes its last attempt on the ring. It waits (links its waiter
 *     and blocks; the lock is released only once it is linked) only if the ring is at the
 *     boundary: empty, tail == head (full: the slot at tail holds an element no receiver
 *     has claimed, tail - head == cap).
 *   - A lock-free party claims its position with a seq_cst CAS on tail (head), publishes
 *     (frees) the slot with a release store, then loads recv_waiting (send_waiting),
 *     seq_cst; if set, it takes the lock and pumps (below). No fence: if its claim preceded
 *     the waiter's fence in the seq_cst order, the waiter's read of tail (head) saw it and
 *     the ring was not empty (full) for it; otherwise its flag load, after its claim,
 *     follows that fence and sees the flag (C11 7.17.3's rules for seq_cst fences: a load
 *     after such a fence sees at least the last seq_cst modification before it in the
 *     order; a seq_cst load after the fence sees what was stored before the fence). Either way no waiter sleeps on an element (slot) nobody
 *     reports. On x86 the CAS was a locked instruction anyway and the load is a plain one.
 *   - Between a claim and its publish (a copy of elem_size bytes) the ring is neither: a
 *     receiver sees head's slot unfilled with tail past it (a sender sees tail's slot not
 *     yet freed by the receiver that claimed it): WEFT__EBUSY. That party's flag load may
 *     predate the waiter's flag, so nobody would wake a waiter: instead the party spins
 *     briefly (BUSY_SPIN pauses, bounded: the copy is nanoseconds) and tries again, and if
 *     the other party was preempted mid-copy, polls with a short bounded wait.
 *   The flag is cleared (0) only under the lock when its queue is empty, so a flag still
 *     needed is never cleared; a stale 1 costs one lock acquisition by the next lock-free
 *     operation, which clears it.
 *   - Pumping (under the lock): while a receiver waits and head's slot holds an element,
 *     claim the receiver, then take the element into it; while a sender waits and tail's
 *     slot is free, claim the sender, then put its element. A lock-free operation may take
 *     the element (slot) between the look and the take (put): the claimed waiter is then
 *     completed with WEFT__ERETRY and runs its operation again (nothing was transferred,
 *     and nothing is left behind: the element went to someone). Closed and drained:
 *     every waiting receiver gets WEFT_ECLOSED.
 *   - Fairness: a lock-free operation first looks at its own kind's flag; if parties of
 *     its kind wait, it takes the locked path, which pumps them before trying itself, so a
 *     newcomer does not overtake a blocked sender for a slot that was freed for it.
 *
 * Select (select.c) and the locked fallback use weft__chan_try_*_locked, which operate on
 * the same ring (and pump) under the lock; waiters announce themselves with
 * weft__chan_announce_wait before their last attempt, exactly as above.
 *
 * Wakers copy into and out of a parked coroutine's stack: that coroutine cannot run (or
 * move) until the copy is done and its wait is completed (see waitq.h). */
#include "chan.h"
#include "gate.h"
#include "sim.h"
#include "scheduler.h"
#include "timer.h"
#include "waker.h"

#include <stdlib.h>
#include <string.h>

#define SLOT_HDR sizeof(uint64_t) /* the sequence word before each slot's element */
/* Slot states (sequence values), see the top. */
#define SEQ_FREE(pos) (2 * (pos))     /* free for the sender of pos */
#define SEQ_FULL(pos) (2 * (pos) + 1) /* holds the element of pos */

struct chan_new {
    size_t ring_bytes; /* 0: rendezvous, no ring */
    struct weft_chan *ch;
    void *ring_mem;
};

static void chan_alloc(void *p)
{
    struct chan_new *n = p;
    n->ch = calloc(1, sizeof *n->ch);
    if (n->ch && n->ring_bytes && !(n->ring_mem = calloc(1, n->ring_bytes))) {
        free(n->ch);
        n->ch = NULL;
    }
}

static void chan_free(void *p)
{
    struct weft_chan *ch = p;
    free(ch->ring_mem);
    free(ch);
}

/* Element copies. Unchecked in segmented builds: memcpy is a leaf that fits in the slack,
 * and a channel operation must not ask for a large frame (segstack.h). */
static WEFT_NOSPLIT void elem_copy(void *dst, const void *src, size_t n)
{
    memcpy(dst, src, n);
}

int weft_chan_create(weft_chan **out, size_t elem_size, size_t capacity)
{
    if (!out)
        return WEFT_EINVAL;
    *out = NULL;
    if (elem_size > ((size_t)1 << 20) || capacity > ((size_t)1 << 30))
        return WEFT_EINVAL;
    size_t stride = SLOT_HDR + ((elem_size + 7) & ~(size_t)7);
    size_t extra = sizeof(struct weft__ring) + 63; /* the positions, and room to align */
    if (capacity > (SIZE_MAX - extra) / stride)
        return WEFT_EINVAL;
    /* The channel itself is small and unaligned (rendezvous channels are created by the
     * million: skynet); a buffered channel's positions and slots are a second block. The
     * allocator runs through weft__offstack: it may go deeper than a small stack allows. */
    struct chan_new n = {capacity ? extra + capacity * stride : 0, NULL, NULL};
    weft__offstack(chan_alloc, &n);
    struct weft_chan *ch = n.ch;
    if (!ch)
        return WEFT_ENOMEM;
    ch->elem_size = elem_size;
    ch->cap = capacity;
    ch->stride = stride;
    ch->pow2 = capacity && (capacity & (capacity - 1)) == 0;
    ch->mask = ch->pow2 ? capacity - 1 : 0;
    /* calloc: the zeroed ring is the initial state (positions 0, slot i free for position
     * i), and a big one costs no memory until used. Aligned by hand to a cache line. */
    if (capacity) {
        ch->ring_mem = n.ring_mem;
        ch->ring = (struct weft__ring *)(((uintptr_t)ch->ring_mem + 63) & ~(uintptr_t)63);
    }
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
    if ((ch->sendq.head || ch->recvq.head) && ch->epoch == atomic_load(&weft__run_epoch))
        weft__panic("weft: channel %p freed while coroutines or threads wait on it", (void *)ch);
    weft__offstack(chan_free, ch);
}

size_t weft_chan_len(weft_chan *ch)
{
    if (!ch || !ch->cap)
        return 0;
    /* A snapshot: head first, so that tail (read later, only ever larger) is not behind it
     * in the common case; clamp what a race can still produce. Counts elements whose
     * senders are still copying them in. */
    uint64_t h = atomic_load_explicit(&ch->ring->head, memory_order_acquire);
    uint64_t t = atomic_load_explicit(&ch->ring->tail, memory_order_acquire) >> 1;
    uint64_t n = t > h ? t - h : 0;
    return n < ch->cap ? (size_t)n : ch->cap;
}

size_t weft_chan_cap(weft_chan *ch)
{
    return ch ? ch->cap : 0;
}

/* Under ch->lock. Waiters queued during an earlier weft_run belonged to coroutines that
 * were abandoned at its shutdown (their stacks are unmapped): forget them, never touch
 * them. (Plain threads' waiters never outlive a run: the stopping runtime wakes them with
 * WEFT_ENORUNTIME and they unlink themselves before it unmaps any stack, gate.h.) */
static inline void reap_stale(struct weft_chan *ch)
{
    if (WEFT_UNLIKELY(ch->epoch != atomic_load_explicit(&weft__run_epoch, memory_order_relaxed)) &&
        (ch->sendq.head || ch->recvq.head)) {
        ch->sendq = (struct weft__wq){NULL, NULL};
        ch->recvq = (struct weft__wq){NULL, NULL};
    }
}

/* ------------------------------------------------------------------------------------------
 * The ring (buffered channels). */

static inline uint64_t slot_index(const struct weft_chan *ch, uint64_t pos)
{
    return ch->pow2 ? pos & ch->mask : pos % ch->cap;
}

static inline _Atomic uint64_t *slot_word(const struct weft_chan *ch, uint64_t idx)
{
    return (_Atomic uint64_t *)(void *)(ch->ring->slots + idx * ch->stride);
}

/* The slot's sequence minus `seq`: 0 when the slot is in that state, negative when it is
 * behind it (stored words are relative to the slot index, see the top). acquire: pairs with
 * the release store that put the slot in its state, so that party's copy is finished. */
static inline int64_t slot_diff(_Atomic uint64_t *w, uint64_t idx, uint64_t seq)
{
    return (int64_t)(atomic_load_explicit(w, memory_order_acquire) + 2 * idx - seq);
}

/* Store the slot's new state `seq`. release: our copy (in or out) is finished before the
 * next party sees the state. */
static inline void slot_set(_Atomic uint64_t *w, uint64_t idx, uint64_t seq)
{
    atomic_store_explicit(w, seq - 2 * idx, memory_order_release);
}

/* Put elem at tail: 0, WEFT_EAGAIN (full: the slot holds an element no receiver claimed),
 * WEFT__EBUSY (the slot's receiver claimed it and is still copying out), WEFT_ECLOSED.
 * Lock-free. */
static int ring_put(struct weft_chan *ch, const void *elem)
{
    uint64_t t = atomic_load_explicit(&ch->ring->tail, memory_order_relaxed);
    for (;;) {
        if (t & WEFT__CHAN_CLOSED)
            return WEFT_ECLOSED;
        uint64_t pos = t >> 1, idx = slot_index(ch, pos);
        _Atomic uint64_t *w = slot_word(ch, idx);
        int64_t d = slot_diff(w, idx, SEQ_FREE(pos));
        if (d == 0) {
            /* Free for pos: claim it. seq_cst: the claim is what a waiting receiver's
             * "empty" check reads (see "The wake-up handshake"); the element itself is
             * published by the slot word's release store. */
            if (atomic_compare_exchange_weak_explicit(&ch->ring->tail, &t, t + 2,
                                                      memory_order_seq_cst, memory_order_relaxed)) {
                if (ch->elem_size)
                    elem_copy((char *)w + SLOT_HDR, elem, ch->elem_size);
                slot_set(w, idx, SEQ_FULL(pos));
                return 0;
            }
        } else if (d < 0) {
            /* The slot still holds pos - cap, unless tail moved on meanwhile: full if no
             * receiver claimed pos - cap yet, else its receiver is copying it out. */
            uint64_t t2 = atomic_load_explicit(&ch->ring->tail, memory_order_relaxed);
            if (t2 != t) {
                t = t2;
                continue;
            }
            /* Signed: a head read after tail may already be past pos (the ring moved on
             * meanwhile): busy, try again. */
            uint64_t h = atomic_load_explicit(&ch->ring->head, memory_order_relaxed);
            return (int64_t)(pos - h) >= (int64_t)ch->cap ? WEFT_EAGAIN : WEFT__EBUSY;
        } else {
            /* Another sender already filled pos: our tail was stale. */
            t = atomic_load_explicit(&ch->ring->tail, memory_order_relaxed);
        }
    }
}

/* Take the element at head into elem (NULL: discard): 0, WEFT_EAGAIN (empty: no sender
 * claimed head), WEFT__EBUSY (head's sender claimed it and is still copying in),
 * WEFT_ECLOSED (closed and drained). Lock-free. */
static int ring_take(struct weft_chan *ch, void *elem)
{
    uint64_t pos = atomic_load_explicit(&ch->ring->head, memory_order_relaxed);
    for (;;) {
        uint64_t idx = slot_index(ch, pos);
        _Atomic uint64_t *w = slot_word(ch, idx);
        int64_t d = slot_diff(w, idx, SEQ_FULL(pos));
        if (d == 0) {
            /* seq_cst: the claim is what a waiting sender's "full" check reads. */
            if (atomic_compare_exchange_weak_explicit(&ch->ring->head, &pos, pos + 1,
                                                      memory_order_seq_cst, memory_order_relaxed)) {
                if (ch->elem_size && elem)
                    elem_copy(elem, (char *)w + SLOT_HDR, ch->elem_size);
                slot_set(w, idx, SEQ_FREE(pos + ch->cap));
                return 0;
            }
        } else if (d < 0) {
            /* pos is not filled yet. tail == head: empty (closed and drained if tail has the
             * bit: such a tail is final, no CAS succeeds on it). tail elsewhere: pos's sender
             * is copying in (or our tail is stale): busy. Re-read head after tail: if head
             * did not move, it is not ahead of tail. acquire on tail: a receive that reports
             * the close happens after the close. */
            uint64_t t = atomic_load_explicit(&ch->ring->tail, memory_order_acquire);
            uint64_t p2 = atomic_load_explicit(&ch->ring->head, memory_order_relaxed);
            if (p2 != pos) {
                pos = p2;
                continue;
            }
            if ((t >> 1) != pos)
                return WEFT__EBUSY;
            return t & WEFT__CHAN_CLOSED ? WEFT_ECLOSED : WEFT_EAGAIN;
        } else {
            /* Another receiver took pos: our head was stale. */
            pos = atomic_load_explicit(&ch->ring->head, memory_order_relaxed);
        }
    }
}

/* Looks for the pump (under the lock; racy against lock-free parties, hence only hints). */
enum { PEEK_NONE, PEEK_READY, PEEK_DRAINED };

static int peek_take(const struct weft_chan *ch)
{
    if (!ch->ring)
        return weft__chan_closed((struct weft_chan *)ch) ? PEEK_DRAINED : PEEK_NONE;
    uint64_t pos = atomic_load_explicit(&ch->ring->head, memory_order_relaxed);
    uint64_t idx = slot_index(ch, pos);
    if (slot_diff(slot_word(ch, idx), idx, SEQ_FULL(pos)) >= 0)
        return PEEK_READY; /* holds pos (or head moved: try anyway) */
    uint64_t t = atomic_load_explicit(&ch->ring->tail, memory_order_acquire);
    return (t & WEFT__CHAN_CLOSED) && (t >> 1) == pos ? PEEK_DRAINED : PEEK_NONE;
}

static bool peek_put(const struct weft_chan *ch)
{
    if (!ch->ring)
        return false;
    uint64_t t = atomic_load_explicit(&ch->ring->tail, memory_order_relaxed);
    if (t & WEFT__CHAN_CLOSED)
        return false;
    uint64_t pos = t >> 1, idx = slot_index(ch, pos);
    return slot_diff(slot_word(ch, idx), idx, SEQ_FREE(pos)) >= 0;
}

/* ------------------------------------------------------------------------------------------
 * Waiters. */

static inline void push_done(struct weft__waiter **done, struct weft__waiter *w, int result)
{
    if (w->sel)
        weft__select_mark(w);
    waitq_done_push(done, w, result);
}

/* Under ch->lock: serve the waiters the ring can serve now (see "Pumping" at the top). */
static void pump(struct weft_chan *ch, struct weft__waiter **done)
{
    bool moved;
    do {
        moved = false;
        while (ch->recvq.head) {
            int st = peek_take(ch);
            if (st == PEEK_NONE)
                break;
            struct weft__waiter *w = waitq_claim(&ch->recvq);
            if (!w)
                break;
            int r = st == PEEK_DRAINED ? WEFT_ECLOSED : ring_take(ch, w->elem);
            if (r == WEFT_EAGAIN || r == WEFT__EBUSY)
                r = WEFT__ERETRY; /* a lock-free receiver took it: w must try again */
            push_done(done, w, r);
            if (r == WEFT__ERETRY)
                break;
            moved |= r == 0; /* a slot is free: a waiting sender may fit */
        }
        while (ch->sendq.head && peek_put(ch)) {
            struct weft__waiter *w = waitq_claim(&ch->sendq);
            if (!w)
                break;
            int r = ring_put(ch, w->elem);
            if (r == WEFT_EAGAIN || r == WEFT__EBUSY)
                r = WEFT__ERETRY; /* a lock-free sender took the slot */
            push_done(done, w, r);
            if (r != 0)
                break;
            moved = true; /* an element: a waiting receiver may take it */
        }
    } while (moved && ch->recvq.head);
}

/* Under ch->lock, just before releasing it when the caller will not wait: clear the flag of
 * each empty queue. (Never between a waiter's announcement and its linking: both happen in
 * one critical section, so an empty queue here has nobody relying on its flag.) */
static void settle_flags(struct weft_chan *ch)
{
    if (!ch->recvq.head && atomic_load_explicit(&ch->recv_waiting, memory_order_relaxed))
        atomic_store_explicit(&ch->recv_waiting, 0, memory_order_relaxed);
    if (!ch->sendq.head && atomic_load_explicit(&ch->send_waiting, memory_order_relaxed))
        atomic_store_explicit(&ch->send_waiting, 0, memory_order_relaxed);
}

void weft__chan_announce_wait(struct weft_chan *ch, bool send)
{
    /* Unconditional store (not "if 0"): every modification of the flag is then under the
     * lock and the handshake's store is our own, sequenced before the caller's fence. */
    if (ch->ring)
        atomic_store_explicit(send ? &ch->send_waiting : &ch->recv_waiting, 1,
                              memory_order_relaxed);
}

int weft__chan_try_send_locked(struct weft_chan *ch, const void *elem, struct weft__waiter **done)
{
    reap_stale(ch);
    if (weft__chan_closed(ch))
        return WEFT_ECLOSED;
    if (!ch->ring) {
        struct weft__waiter *r = waitq_claim(&ch->recvq);
        if (!r)
            return WEFT_EAGAIN;
        if (ch->elem_size && r->elem) /* a select may receive into NULL: discard */
            elem_copy(r->elem, elem, ch->elem_size);
        push_done(done, r, 0);
        return 0;
    }
    pump(ch, done); /* waiting senders first */
    int r = ring_put(ch, elem);
    if (r == 0 && ch->recvq.head)
        pump(ch, done);
    return r;
}

int weft__chan_try_recv_locked(struct weft_chan *ch, void *elem, struct weft__waiter **done)
{
    reap_stale(ch);
    if (!ch->ring) {
        struct weft__waiter *s = waitq_claim(&ch->sendq);
        if (!s)
            return weft__chan_closed(ch) ? WEFT_ECLOSED : WEFT_EAGAIN;
        if (ch->elem_size && elem)
            elem_copy(elem, s->elem, ch->elem_size);
        push_done(done, s, 0);
        return 0;
    }
    pump(ch, done); /* waiting receivers first; waiting senders into free slots */
    int r = ring_take(ch, elem);
    if (r == 0 && ch->sendq.head)
        pump(ch, done);
    return r;
}

/* ------------------------------------------------------------------------------------------
 * Operations. */

static inline bool self_is_coro(void)
{
    return weft__coro_self() != NULL;
}

/* After WEFT__EBUSY the other party is between two adjacent steps of its operation (its
 * claim and its publish: a copy of elem_size bytes): watch the slot for a moment before
 * trying again. Bounded; a party still busy after it (preempted by the kernel mid-copy) is
 * waited for by polling (BUSY_POLL_NS), never by spinning on. */
#define BUSY_SPIN 128
#define BUSY_POLL_NS WEFT_USEC(20)

int64_t weft__chan_poll_until(int64_t deadline)
{
    int64_t t = weft_now() + BUSY_POLL_NS;
    return deadline == WEFT_FOREVER || t < deadline ? t : deadline;
}

static void busy_spin(struct weft_chan *ch, bool send)
{
    for (int i = 0; i < BUSY_SPIN; i++) {
        weft__cpu_relax();
        if (send ? peek_put(ch) || weft__chan_closed(ch) : peek_take(ch) != PEEK_NONE)
            return;
    }
}

/* Watch the ring for up to `pauses` pauses: true once an element arrived (send: half the
 * ring is free) or the channel closed. Reads only tail and head (their lines stay shared). */
static bool ring_watch(struct weft_chan *ch, bool send, int pauses)
{
    for (int i = 0; i < pauses; i++) {
        weft__cpu_relax();
        uint64_t t = atomic_load_explicit(&ch->ring->tail, memory_order_relaxed);
        uint64_t h = atomic_load_explicit(&ch->ring->head, memory_order_relaxed);
        int64_t n = (int64_t)((t >> 1) - h); /* racy snapshot: only a hint */
        if ((t & WEFT__CHAN_CLOSED) || (send ? n <= (int64_t)(ch->cap / 2) : n > 0))
            return true;
    }
    return false;
}

/* A plain thread that found the ring full (empty) watches it for a while before it goes to
 * sleep: returns true once half the ring is free (an element arrived) or the channel
 * closed, false after THREAD_SPIN pauses (about 11 us at 22 ns a pause). Why: a thread
 * streaming into a channel faster than the coroutine on the other end drains it meets a
 * full ring again and again; sleeping costs a futex wait here and a futex wake (a system
 * call) on the coroutine's worker each time, a few hundred elements apart. Why half: a
 * sender that went on at the first free slot would write the very slot (cache line) the
 * receiver just read, element after element. The wait is bounded, so it never keeps a
 * send from completing on a channel with room. A coroutine spins only when its worker has
 * nothing else to run (coro_spin, below). */
#define THREAD_SPIN 512

static bool thread_spin(struct weft_chan *ch, bool send)
{
    return ring_watch(ch, send, THREAD_SPIN);
}

/* A coroutine that finds the ring empty (full) while its worker has nothing else to run
 * watches it for up to CORO_SPIN pauses (~5 us) before it parks: returns true once an
 * element arrived (half the ring is free) or the channel closed. Why: a plain thread
 * streaming into a channel (weft-bench threadsend) is slower per element than the coroutine
 * draining it, so the ring runs empty every few hundred elements; parking then costs the
 * worker a sleep in epoll_wait, the thread a gate crossing, a lock, a wake-up and an eventfd
 * write, and the next batch waits for a sleeping vCPU to wake (25-100 us here) — long
 * enough for the thread to fill the ring and sleep on its futex too. Measured, 1M elements
 * through 1,024 slots: ~2,000-2,800 worker sleeps without the spin (docs/benchmarks.md).
 * Only when nothing else is runnable on the worker (the spin takes no time from another
 * coroutine; the worker would otherwise go looking for work and sleep), never under the
 * simulation (its interleavings must not depend on a thread's speed), and adaptively: a spin
 * that found nothing makes the next CORO_SPIN_SKIP empty (full) rings on this channel park
 * at once, so a sparse channel costs at most one spin in CORO_SPIN_SKIP + 1
 * (test_chan_spin). Time-outs, cancellation and closing are seen at the locked attempt
 * that follows. */
#define CORO_SPIN 256
#define CORO_SPIN_SKIP WEFT__CHAN_SPIN_SKIP

static bool coro_spin(struct weft_chan *ch, bool send)
{
    /* spin_skip: a load and a store, not a read-modify-write — two coroutines meeting the
     * ring at once may lose a decrement or a reset; only how many meetings skip changes. */
    uint32_t skip = atomic_load_explicit(&ch->spin_skip, memory_order_relaxed);
    if (skip) {
        atomic_store_explicit(&ch->spin_skip, skip - 1, memory_order_relaxed);
        return false;
    }
    if (weft__sim_on() || !weft__worker_has_nothing_else())
        return false;
    if (ring_watch(ch, send, CORO_SPIN))
        return true;
    atomic_store_explicit(&ch->spin_skip, CORO_SPIN_SKIP, memory_order_relaxed);
    return false;
}

/* The locked path: try under the lock, else (block) queue and wait (always inlined: the
 * rendezvous channels' whole operation, an extra call measured +10 ns per pingpong round
 * trip). Returns WEFT__ERETRY
 * when a waker claimed us without completing the operation, WEFT__EBUSY when the ring was
 * busy (see ring_put/ring_take) and `poll` is false: the caller spins and tries again.
 * With `poll`, a busy ring is waited on for at most BUSY_POLL_NS (then WEFT__ERETRY). */
static inline __attribute__((always_inline)) int
chan_locked_op(struct weft_chan *ch, void *elem, int64_t deadline, bool send, bool block, bool poll)
{
    struct weft__waiter *done = NULL;
    weft__lock_acquire(&ch->lock);
    if (block && ch->ring) {
        /* The handshake: announce before the last attempt (see the top). */
        weft__chan_announce_wait(ch, send);
        weft__fence_seq_cst();
    }
    int r = send ? weft__chan_try_send_locked(ch, elem, &done)
                 : weft__chan_try_recv_locked(ch, elem, &done);
    if (r == WEFT__EBUSY && !block)
        r = WEFT_EAGAIN;
    if (block && (r == WEFT_EAGAIN || r == WEFT__EBUSY) && deadline != WEFT_FOREVER &&
        deadline <= weft_now())
        r = WEFT_ETIMEDOUT;
    /* Wait only when the ring is full (empty): a busy one has a lock-free party whose
     * notification may not see our flag (see "The wake-up handshake"); poll it instead. */
    if (!block || !(r == WEFT_EAGAIN || (r == WEFT__EBUSY && poll))) {
        if (ch->ring)
            settle_flags(ch);
        weft__lock_release(&ch->lock);
        weft__waitq_complete_all(done, self_is_coro());
        return r;
    }
    /* Waiters we served are completed before we block (still under the lock: harmless,
     * completing takes no channel lock). A coroutine hands them its worker (runnext). */
    weft__waitq_complete_all(done, self_is_coro());
    int64_t until = r == WEFT__EBUSY ? weft__chan_poll_until(deadline) : deadline;
    ch->epoch = atomic_load_explicit(&weft__run_epoch, memory_order_relaxed);
    r = weft__waitq_wait(send ? &ch->sendq : &ch->recvq, &ch->lock,
                         send ? "chan send" : "chan recv", until, elem);
    return r == WEFT_ETIMEDOUT && until != deadline ? WEFT__ERETRY : r;
}

/* After a lock-free put (take): the publishing side of the handshake. The flag load is
 * seq_cst and sequenced after our seq_cst claim of the position (the CAS on tail / head),
 * which needs no fence: a waiter that read tail (head) after its own fence and did not see
 * our claim waits only on "empty" ("full"), and then our load sees its flag. */
static void notify(struct weft_chan *ch, _Atomic uint32_t *flag, bool thread)
{
    if (WEFT_LIKELY(!atomic_load_explicit(flag, memory_order_seq_cst)))
        return;
    if (thread) {
        /* A plain thread completes waiters (readying coroutines: the runtime's queues)
         * only when admitted. Refused: no runtime runs, and no waiter of a stopped one can
         * still be waiting (coroutines abandoned, threads woken): nobody to notify. */
        int in = weft__gate_in(NULL);
        if ((in & 3) == WEFT__IN_OPEN)
            notify(ch, flag, false);
        weft__gate_out(in);
        return;
    }
    struct weft__waiter *done = NULL;
    weft__lock_acquire(&ch->lock);
    reap_stale(ch);
    pump(ch, &done);
    settle_flags(ch);
    weft__lock_release(&ch->lock);
    weft__waitq_complete_all(done, self_is_coro());
}

/* A plain thread takes the locked path inside the gate (gate.h): it may complete waiters
 * (a coroutine made runnable goes into the runtime's queues) and it may sleep (a stopping
 * runtime must find it). Out of line: workers never come here. */
static WEFT_NOINLINE int chan_locked_op_thread(struct weft_chan *ch, void *elem, int64_t deadline,
                                               bool send, bool block, bool poll)
{
    return WEFT__GATED_RT(chan_locked_op(ch, elem, deadline, send, block, poll));
}

/* Plain threads (thread == true) use the lock-free ring without the gate: it touches only
 * the channel, which the caller's reference keeps alive. */
static int chan_op(struct weft_chan *ch, void *elem, int64_t deadline, bool send, bool block)
{
    if (!ch || (!elem && ch->elem_size && send)) /* a receive into NULL discards */
        return WEFT_EINVAL;
    bool thread = !weft__worker_entry(); /* a coroutine stays one across its parks */
    if (thread && !weft__gate_open_hint())
        return WEFT_ENORUNTIME;
    int r;
    if (!ch->ring) {
        do
            r = thread ? chan_locked_op_thread(ch, elem, deadline, send, block, false)
                       : chan_locked_op(ch, elem, deadline, send, block, false);
        while (r == WEFT__ERETRY);
        return r;
    }
    bool spun = false, thread_spun = false;
    for (;;) {
        /* Lock-free unless parties of our kind wait (they go first, see "Fairness"). */
        if (!atomic_load_explicit(send ? &ch->send_waiting : &ch->recv_waiting,
                                  memory_order_relaxed)) {
            r = send ? ring_put(ch, elem) : ring_take(ch, elem);
            if (r == 0) {
                notify(ch, send ? &ch->recv_waiting : &ch->send_waiting, thread);
                return 0;
            }
            if (r == WEFT_ECLOSED)
                return r;
            if (!block)
                return WEFT_EAGAIN;
            if (r == WEFT_EAGAIN && !thread_spun && !weft__coro_self()) {
                thread_spun = true;
                if (thread_spin(ch, send))
                    continue;
            } else if (r == WEFT_EAGAIN && !thread_spun) {
                thread_spun = true;
                if (coro_spin(ch, send))
                    continue;
            }
        }
        r = thread ? chan_locked_op_thread(ch, elem, deadline, send, block, spun)
                   : chan_locked_op(ch, elem, deadline, send, block, spun);
        if (r == WEFT__EBUSY) {
            busy_spin(ch, send);
            spun = true;
            continue;
        }
        if (r != WEFT__ERETRY)
            return r;
    }
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

static int chan_close(weft_chan *ch)
{
    struct weft__waiter *done = NULL, *w;
    weft__lock_acquire(&ch->lock);
    if (weft__chan_closed(ch)) {
        weft__lock_release(&ch->lock);
        return WEFT_ECLOSED;
    }
    /* seq_cst (release would do: pairs with the acquire loads of tail that report the
     * close; seq_cst keeps every modification of tail in the handshake's order). From here
     * no sender's CAS on tail succeeds. */
    if (ch->ring)
        atomic_fetch_or_explicit(&ch->ring->tail, WEFT__CHAN_CLOSED, memory_order_seq_cst);
    else
        ch->closed = 1;
    reap_stale(ch);
    /* Waiting receivers: what is buffered, then WEFT_ECLOSED once drained (those waiting on
     * an element whose sender is still copying it in stay: that sender's publish pumps). */
    pump(ch, &done);
    /* Waiting senders: WEFT_ECLOSED, their element not taken. */
    while ((w = waitq_claim(&ch->sendq)))
        push_done(&done, w, WEFT_ECLOSED);
    settle_flags(ch);
    weft__lock_release(&ch->lock);
    weft__waitq_complete_all(done, false);
    return 0;
}

/* Also without a runtime (then only stale waiters can be queued, and reap_stale drops them):
 * a plain thread is counted in the gate either way, so a runtime cannot stop or start under
 * it while it completes waiters. */
int weft_chan_close(weft_chan *ch)
{
    if (!ch)
        return WEFT_EINVAL;
    return WEFT__GATED(chan_close(ch));
}
