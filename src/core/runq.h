/* SPDX-License-Identifier: MIT */
/* runq.h — floor 1 (objects and queues): run queues: each worker's bounded ring plus runnext
 * slot (Go's runq), and the global injection queue. Thread contracts are on each function. */
#ifndef WEFT_RUNQ_H
#define WEFT_RUNQ_H

#include "common.h"
#include "coro.h"
#include "lock.h"

#define WEFT_RUNQ_SIZE 256

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
/* Any thread. Steal half of victim's ring into q (q's owner calls this); returns one
 * coroutine to run now, or NULL. steal_next: may also take the victim's runnext. */
struct weft__coro *weft__runq_steal(struct weft__runq *q, struct weft__runq *victim,
                                    bool steal_next);
/* Any thread. A snapshot: is the ring (or runnext) non-empty? */
bool weft__runq_nonempty(struct weft__runq *q);
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
