/* SPDX-License-Identifier: MIT */
/* runq.h — floor 1 (objects and queues): run queues: each worker's bounded ring plus runnext
 * slot (Go's runq), its LIFO of spawned, not yet started coroutines (a Chase–Lev deque), and
 * the global injection queue. Thread contracts are on each function. */
#ifndef WEFT_RUNQ_H
#define WEFT_RUNQ_H

#include "common.h"
#include "coro.h"
#include "lock.h"

#define WEFT_RUNQ_SIZE 256
#define WEFT_LIFO_SIZE 256

/* A single-producer, multi-consumer ring (Go's runq; a FIFO relative of Chase–Lev):
 * the owner pushes at tail and pops at head; thieves take half of [head, tail) with one CAS
 * on head. head only grows (CAS by owner or thieves); tail only grows (owner stores).
 * Slots are atomics because a thief may read a slot the owner is about to overwrite — the
 * thief's CAS on head then fails and it discards what it read. */
struct weft__runq {
    _Atomic uint32_t head WEFT_ALIGNED_CL;
    _Atomic uint32_t tail WEFT_ALIGNED_CL;
    /* runnext: filled by the owner with an acq_rel exchange (sched.c enqueue: release
     * publishes the coroutine's contents to a thief; acquire sees the displaced one's),
     * emptied by the owner or a thief with an acquire CAS to NULL (pairs with that release).
     * An exchange, not a store, because a thief may empty it at any moment. */
    _Atomic(struct weft__coro *) runnext WEFT_ALIGNED_CL;
    _Atomic(struct weft__coro *) buf[WEFT_RUNQ_SIZE];
    /* The LIFO of spawned, not yet started coroutines (a Chase–Lev deque, bounded): the owner
     * pushes and pops the newest at `bottom` (a spawner's children run depth-first, so a
     * tree of spawns keeps few started-but-unfinished coroutines, each holding a stack);
     * thieves take the oldest at `top` (in a tree, the biggest subtrees). `top` only grows,
     * by CAS (thieves, and the owner when it takes the last entry); `bottom` is written by
     * the owner only, always with RELEASE (a thief's ACQUIRE load of bottom then sees the
     * slots below it and the coroutines' contents — even a value from a pop's decrement,
     * which C11 would not put in the release sequence of the push's store if it were
     * relaxed). The race for the last entry is Dekker's: the owner stores bottom, seq_cst
     * fence, loads top; a thief loads top, seq_cst fence, loads bottom; both then CAS top
     * (seq_cst), so one of them wins it (Lê, Pop, Cohen, Zappa Nardelli, PPoPP 2013). */
    _Atomic uint32_t lifo_top WEFT_ALIGNED_CL;
    _Atomic uint32_t lifo_bottom WEFT_ALIGNED_CL;
    /* Claimed entries (runq.c "Claims"): the owner's, out of the thieves' reach, in slots
     * [bottom, bottom + lifo_claimed). Owner writes (relaxed), anyone reads (relaxed: a
     * snapshot of "non-empty"). On bottom's line: the owner writes both. */
    _Atomic uint32_t lifo_claimed;
    _Atomic(struct weft__coro *) lifo[WEFT_LIFO_SIZE];
};

/* The global queue: a locked FIFO with an atomic length for lock-free emptiness checks. */
struct weft__globalq {
    weft__lock lock;
    struct weft__coro *head, *tail;
    _Atomic size_t len;
};

/* Owner only. Put co at the tail; on overflow, move half of the ring plus co to g. */
void weft__runq_put_slow(struct weft__runq *q, struct weft__coro *co, struct weft__globalq *g);
static inline void weft__runq_put(struct weft__runq *q, struct weft__coro *co,
                                  struct weft__globalq *g)
{
    /* acquire on head: a consumer's read of the slot we are about to reuse happened before
     * its CAS moved head past it; release on tail publishes the slot and the coroutine. */
    uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    uint32_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    if (__builtin_expect(t - h < WEFT_RUNQ_SIZE, 1)) {
        atomic_store_explicit(&q->buf[t % WEFT_RUNQ_SIZE], co, memory_order_relaxed);
        atomic_store_explicit(&q->tail, t + 1, memory_order_release);
        return;
    }
    weft__runq_put_slow(q, co, g);
}
/* Owner or thief: empty runnext and return what it held, NULL if it was empty or another
 * taker won. acquire (on the CAS): pairs with the release of the exchange that filled it
 * (see runnext above), so the taker sees the coroutine's contents. The relaxed load first
 * skips the CAS's exclusive cache line when runnext is empty. */
static inline struct weft__coro *weft__runq_take_next(struct weft__runq *q)
{
    struct weft__coro *co = atomic_load_explicit(&q->runnext, memory_order_relaxed);
    if (co && atomic_compare_exchange_strong_explicit(&q->runnext, &co, NULL, memory_order_acquire,
                                                      memory_order_relaxed))
        return co;
    return NULL;
}
/* Owner only. Take the ring's head, or runnext when the ring is empty. NULL if both are.
 * (runnext first is the scheduler's choice, with its fairness bound: sched.c local_get.) */
struct weft__coro *weft__runq_get(struct weft__runq *q);
/* Owner only, and only when no thief can exist (a runtime with one worker): the head
 * without a CAS — the yield path's cost is then a plain load and store. */
static inline struct weft__coro *weft__runq_get_solo(struct weft__runq *q)
{
    uint32_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
    uint32_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    if (t == h)
        return NULL;
    struct weft__coro *co = atomic_load_explicit(&q->buf[h % WEFT_RUNQ_SIZE], memory_order_relaxed);
    atomic_store_explicit(&q->head, h + 1, memory_order_relaxed);
    return co;
}
/* Owner only. Push a never-run coroutine on the LIFO; false (nothing done) when it is full. */
static inline bool weft__lifo_push(struct weft__runq *q, struct weft__coro *co)
{
    uint32_t b = atomic_load_explicit(&q->lifo_bottom, memory_order_relaxed);
    uint32_t c = atomic_load_explicit(&q->lifo_claimed, memory_order_relaxed);
    if (WEFT_UNLIKELY(c)) {
        /* Claimed entries go back to the public LIFO first (runq.c "Claims"): the new
         * entry is newer, and lands above them. The release store of bottom below (or,
         * when full, here) publishes them as a push does. */
        b += c;
        atomic_store_explicit(&q->lifo_claimed, 0, memory_order_relaxed);
    }
    /* acquire on top: a thief's read of the slot we are about to reuse happened before its
     * CAS moved top past it (as the ring's put). */
    uint32_t t = atomic_load_explicit(&q->lifo_top, memory_order_acquire);
    if (b - t >= WEFT_LIFO_SIZE) {
        if (c)
            atomic_store_explicit(&q->lifo_bottom, b, memory_order_release);
        return false;
    }
    atomic_store_explicit(&q->lifo[b % WEFT_LIFO_SIZE], co, memory_order_relaxed);
    /* release: publishes the slot and the coroutine to a thief's acquire load of bottom */
    atomic_store_explicit(&q->lifo_bottom, b + 1, memory_order_release);
    return true;
}
/* Owner only. Pop the newest entry of the LIFO, or NULL. solo: the runtime has one worker
 * (no thief can exist: no fence, no CAS). With thieves, a long LIFO is popped by claims of
 * several entries per fence (runq.c "Claims"). */
struct weft__coro *weft__lifo_pop(struct weft__runq *q, bool solo);
/* Any thread. A snapshot of the LIFO's length (claimed entries included). */
static inline uint32_t weft__lifo_len(struct weft__runq *q)
{
    uint32_t t = atomic_load_explicit(&q->lifo_top, memory_order_acquire);
    uint32_t b = atomic_load_explicit(&q->lifo_bottom, memory_order_acquire);
    uint32_t c = atomic_load_explicit(&q->lifo_claimed, memory_order_relaxed);
    return ((int32_t)(b - t) > 0 ? b - t : 0) + c;
}
/* Any thread (q's owner calls this; q's ring and LIFO are empty). Steal from victim: the
 * oldest half of its LIFO if it has one (the oldest to run now, the rest into q's LIFO),
 * else half of its ring (into q's ring); returns one coroutine to run now, or NULL.
 * steal_next: may also take the victim's runnext. probe: take one coroutine only (a thief
 * whose last stolen batch did not pay, sched.c "Stealing that pays"). */
struct weft__coro *weft__runq_steal(struct weft__runq *q, struct weft__runq *victim,
                                    bool steal_next, bool probe);
/* Any thread. A snapshot: is the ring, runnext or the LIFO non-empty? */
bool weft__runq_nonempty(struct weft__runq *q);
/* Any thread. A snapshot: do the ring or the LIFO hold something (runnext aside: the
 * owner, awake, is about to run it; claimed entries too)? Relaxed loads, no write (idle.c
 * weft__others_stealable: the ramp-up's and a nap's decisions). */
static inline bool weft__runq_stealable(struct weft__runq *q)
{
    return atomic_load_explicit(&q->tail, memory_order_relaxed) !=
               atomic_load_explicit(&q->head, memory_order_relaxed) ||
           (int32_t)(atomic_load_explicit(&q->lifo_bottom, memory_order_relaxed) -
                     atomic_load_explicit(&q->lifo_top, memory_order_relaxed)) > 0;
}
uint32_t weft__runq_len(struct weft__runq *q);

/* Any thread. */
void weft__globalq_put(struct weft__globalq *g, struct weft__coro *co);
void weft__globalq_put_batch(struct weft__globalq *g, struct weft__coro *first,
                             struct weft__coro *last, size_t n);
/* Owner of q only: take one from g to run and move up to `max` more into q. */
struct weft__coro *weft__globalq_get(struct weft__globalq *g, struct weft__runq *q, size_t max);
static inline bool weft__globalq_nonempty(struct weft__globalq *g)
{
    return atomic_load_explicit(&g->len, memory_order_relaxed) != 0;
}

#endif
