/* SPDX-License-Identifier: MIT */
/* runq.c — floor 1 (objects and queues): the per-worker ring and the global queue (see runq.h for
 * the contracts).
 *
 * Memory orders on the ring, the classic single-producer/multi-consumer pairing:
 *  - owner put: store the slot (relaxed), then store tail with RELEASE: a consumer that
 *    reads the new tail with ACQUIRE also sees the slot and everything the owner wrote to
 *    the coroutine before queueing it (its saved context, its state).
 *  - consumers (owner get, thieves): load head with ACQUIRE, tail with ACQUIRE, read the
 *    slots, then CAS head with RELEASE (the owner's next put loads head with ACQUIRE before
 *    reusing a slot, so a thief's slot read happens-before the owner's overwrite) — a
 *    failed CAS means someone else consumed those slots: retry.
 *  - the owner reads tail relaxed: only it writes tail. */
#include "runq.h"

static inline uint32_t load_head(struct weft__runq *q)
{
    return atomic_load_explicit(&q->head, memory_order_acquire);
}

/* Owner only: ring full — move half of it plus co to the global queue (Go's runqputslow).
 * Returns false if a thief moved things meanwhile (then the ring has room: retry put). */
static bool put_slow(struct weft__runq *q, struct weft__coro *co, uint32_t h, uint32_t t,
                     struct weft__globalq *g)
{
    enum { HALF = WEFT_RUNQ_SIZE / 2 };
    struct weft__coro *batch[HALF + 1];
    uint32_t n = (t - h) / 2;
    WEFT_ASSERT(n == HALF);
    for (uint32_t i = 0; i < n; i++)
        batch[i] = atomic_load_explicit(&q->buf[(h + i) % WEFT_RUNQ_SIZE], memory_order_relaxed);
    if (!atomic_compare_exchange_strong_explicit(&q->head, &h, h + n, memory_order_release,
                                                 memory_order_relaxed))
        return false;
    batch[n] = co;
    for (uint32_t i = 0; i < n; i++)
        batch[i]->next = batch[i + 1];
    weft__globalq_put_batch(g, batch[0], batch[n], n + 1);
    return true;
}

void weft__runq_put_slow(struct weft__runq *q, struct weft__coro *co, struct weft__globalq *g)
{
    for (;;) {
        uint32_t h = load_head(q);
        uint32_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
        if (t - h < WEFT_RUNQ_SIZE) {
            atomic_store_explicit(&q->buf[t % WEFT_RUNQ_SIZE], co, memory_order_relaxed);
            atomic_store_explicit(&q->tail, t + 1, memory_order_release);
            return;
        }
        if (put_slow(q, co, h, t, g))
            return;
    }
}

struct weft__coro *weft__runq_get(struct weft__runq *q)
{
    for (;;) {
        uint32_t h = load_head(q);
        uint32_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
        if (t == h)
            break;
        struct weft__coro *co =
            atomic_load_explicit(&q->buf[h % WEFT_RUNQ_SIZE], memory_order_relaxed);
        if (atomic_compare_exchange_weak_explicit(&q->head, &h, h + 1, memory_order_release,
                                                  memory_order_relaxed))
            return co;
    }
    return weft__runq_take_next(q); /* ring empty: runnext is all there is */
}

/* Claims. Each pop with thieves about pays a seq_cst fence (the store of bottom must be
 * ordered before the load of top), and a spawner that runs its children off the LIFO pays it
 * per child: with two workers, weft-bench spawn spent 6 % of its samples on that fence
 * (docs/benchmarks.md). So when the LIFO is long the owner claims k entries at once: it
 * lowers bottom by k, fences, and loads top. If top is still below the claimed range, no
 * thief can reach it — a thief that loaded bottom before our store loaded top before its
 * own fence, which precedes ours, so it aims at a slot at or below the top we read; a thief
 * that loads bottom after sees the lowered one (the single pop's argument, for k slots).
 * Else the owner puts bottom back (release, as a push) and pops one entry the usual way.
 * Claimed entries stay in their slots, owner-only: the next pops take them newest first
 * without a fence, in the order they had in the LIFO; a push first gives the rest back to
 * the public LIFO (weft__lifo_push), so the new entry lands above them, as before. At most
 * half of the public entries and at most LIFO_CLAIM are claimed: the oldest — a spawn
 * tree's biggest subtrees — stay stealable, and the owner runs the claimed ones next anyway.
 * lifo_claimed is counted by weft__runq_nonempty and weft__lifo_len, not by stealable. */
#define LIFO_CLAIM 16

struct weft__coro *weft__lifo_pop(struct weft__runq *q, bool solo)
{
    uint32_t b = atomic_load_explicit(&q->lifo_bottom, memory_order_relaxed);
    uint32_t c = atomic_load_explicit(&q->lifo_claimed, memory_order_relaxed);
    if (c) { /* ours alone: no fence */
        atomic_store_explicit(&q->lifo_claimed, c - 1, memory_order_relaxed);
        return atomic_load_explicit(&q->lifo[(b + c - 1) % WEFT_LIFO_SIZE], memory_order_relaxed);
    }
    /* A stale top is no larger than the real one, which never passes bottom: t == b means
     * empty (thieves only take). */
    uint32_t t = atomic_load_explicit(&q->lifo_top, memory_order_relaxed);
    if (b == t)
        return NULL;
    uint32_t k = (b - t) / 2 < LIFO_CLAIM ? (b - t) / 2 : LIFO_CLAIM;
    if (!solo && k >= 2) {
        atomic_store_explicit(&q->lifo_bottom, b - k, memory_order_release);
        weft__fence_seq_cst();
        t = atomic_load_explicit(&q->lifo_top, memory_order_relaxed);
        if ((int32_t)(b - k - t) > 0) { /* top below the claim: [b - k, b) is ours */
            atomic_store_explicit(&q->lifo_claimed, k - 1, memory_order_relaxed);
            return atomic_load_explicit(&q->lifo[(b - 1) % WEFT_LIFO_SIZE], memory_order_relaxed);
        }
        atomic_store_explicit(&q->lifo_bottom, b, memory_order_release); /* back; one entry */
        if (b == t)
            return NULL; /* thieves took everything meanwhile */
    }
    b--;
    if (solo) { /* no thieves: a plain pop */
        atomic_store_explicit(&q->lifo_bottom, b, memory_order_relaxed);
        return atomic_load_explicit(&q->lifo[b % WEFT_LIFO_SIZE], memory_order_relaxed);
    }
    /* Claim slot b (release: see runq.h), then seq_cst fence, then look at top: a thief that
     * loads top, fences and then loads bottom either sees our claim or is seen by us. */
    atomic_store_explicit(&q->lifo_bottom, b, memory_order_release);
    weft__fence_seq_cst();
    t = atomic_load_explicit(&q->lifo_top, memory_order_relaxed);
    struct weft__coro *co = NULL;
    if ((int32_t)(b - t) > 0) /* more than one left: no thief can reach slot b */
        return atomic_load_explicit(&q->lifo[b % WEFT_LIFO_SIZE], memory_order_relaxed);
    if (b == t) {
        /* The last one: whoever moves top past it (seq_cst CAS, as the thieves') has it. */
        co = atomic_load_explicit(&q->lifo[b % WEFT_LIFO_SIZE], memory_order_relaxed);
        if (!atomic_compare_exchange_strong_explicit(&q->lifo_top, &t, t + 1, memory_order_seq_cst,
                                                     memory_order_relaxed))
            co = NULL;
    }
    /* Empty now (top == b + 1): restore bottom to meet it. */
    atomic_store_explicit(&q->lifo_bottom, b + 1, memory_order_release);
    return co;
}

/* A thief: take the oldest entry of v's LIFO (*left: how many remained behind it), or NULL
 * when it is empty. A lost CAS means another thief or the owner took that entry: retry. */
static struct weft__coro *lifo_steal_one(struct weft__runq *v, uint32_t *left)
{
    for (;;) {
        uint32_t t = atomic_load_explicit(&v->lifo_top, memory_order_acquire);
        weft__fence_seq_cst(); /* pairs with the owner's pop (see weft__lifo_pop) */
        /* acquire: pairs with the owner's release stores of bottom (the slot, the coroutine) */
        uint32_t b = atomic_load_explicit(&v->lifo_bottom, memory_order_acquire);
        if ((int32_t)(b - t) <= 0)
            return NULL;
        /* The slot may be overwritten by a push only once top has passed t: then the CAS
         * fails and what we read is dropped (slots are atomics for that reason). */
        struct weft__coro *co =
            atomic_load_explicit(&v->lifo[t % WEFT_LIFO_SIZE], memory_order_relaxed);
        if (atomic_compare_exchange_strong_explicit(&v->lifo_top, &t, t + 1, memory_order_seq_cst,
                                                    memory_order_relaxed)) {
            *left = b - t - 1;
            return co;
        }
    }
}

/* Steal the oldest entry of v's LIFO to run now and up to half of the rest, oldest first,
 * into q's LIFO (empty, as q's ring: see weft__runq_steal): unstarted children stay in a LIFO
 * on the thief too — in its ring, each would start a new subtree every NEWEST_RUN dispatches
 * (sched.c), breadth-first again. One CAS per entry: a batch CAS on top could race with the
 * owner's pops at the other end, which only the one-entry protocol settles. */
static struct weft__coro *lifo_steal(struct weft__runq *q, struct weft__runq *v, bool probe)
{
    uint32_t left;
    struct weft__coro *first = lifo_steal_one(v, &left);
    if (!first)
        return NULL;
    for (uint32_t more = probe ? 0 : left / 2; more > 0; more--) {
        struct weft__coro *co = lifo_steal_one(v, &left);
        if (!co || !weft__lifo_push(q, co)) { /* cannot be full: empty, and more < SIZE / 2 */
            WEFT_ASSERT(!co);
            break;
        }
    }
    return first;
}

struct weft__coro *weft__runq_steal(struct weft__runq *q, struct weft__runq *victim,
                                    bool steal_next, bool probe)
{
    struct weft__coro *first = lifo_steal(q, victim, probe);
    if (first)
        return first;
    /* Grab half of the victim's ring into our own ring's free slots (we are q's owner, and
     * our ring is empty when we steal, so there is room for WEFT_RUNQ_SIZE / 2). */
    uint32_t qt = atomic_load_explicit(&q->tail, memory_order_relaxed);
    for (;;) {
        uint32_t h = load_head(victim);
        uint32_t t = atomic_load_explicit(&victim->tail, memory_order_acquire);
        uint32_t n = t - h;
        n = probe && n ? 1 : n - n / 2;
        if (n == 0) {
            if (!steal_next)
                return NULL;
            return weft__runq_take_next(victim);
        }
        if (n > WEFT_RUNQ_SIZE / 2)
            continue; /* read head and tail at different moments: inconsistent, retry */
        for (uint32_t i = 0; i < n; i++) {
            struct weft__coro *co =
                atomic_load_explicit(&victim->buf[(h + i) % WEFT_RUNQ_SIZE], memory_order_relaxed);
            atomic_store_explicit(&q->buf[(qt + i) % WEFT_RUNQ_SIZE], co, memory_order_relaxed);
        }
        if (atomic_compare_exchange_weak_explicit(&victim->head, &h, h + n, memory_order_release,
                                                  memory_order_relaxed)) {
            /* Keep the last one to run now; publish the rest in our ring. */
            n--;
            struct weft__coro *co =
                atomic_load_explicit(&q->buf[(qt + n) % WEFT_RUNQ_SIZE], memory_order_relaxed);
            if (n)
                atomic_store_explicit(&q->tail, qt + n, memory_order_release);
            return co;
        }
    }
}

bool weft__runq_nonempty(struct weft__runq *q)
{
    return atomic_load_explicit(&q->tail, memory_order_acquire) != load_head(q) ||
           atomic_load_explicit(&q->runnext, memory_order_relaxed) != NULL ||
           weft__lifo_len(q) != 0;
}

uint32_t weft__runq_len(struct weft__runq *q)
{
    uint32_t h = load_head(q);
    return atomic_load_explicit(&q->tail, memory_order_acquire) - h;
}

void weft__globalq_put(struct weft__globalq *g, struct weft__coro *co)
{
    co->next = NULL;
    weft__globalq_put_batch(g, co, co, 1);
}

void weft__globalq_put_batch(struct weft__globalq *g, struct weft__coro *first,
                             struct weft__coro *last, size_t n)
{
    last->next = NULL;
    weft__lock_acquire(&g->lock);
    if (g->tail)
        g->tail->next = first;
    else
        g->head = first;
    g->tail = last;
    atomic_fetch_add_explicit(&g->len, n, memory_order_relaxed);
    weft__lock_release(&g->lock);
}

struct weft__coro *weft__globalq_get(struct weft__globalq *g, struct weft__runq *q, size_t max)
{
    if (!weft__globalq_nonempty(g))
        return NULL;
    weft__lock_acquire(&g->lock);
    struct weft__coro *co = g->head;
    if (!co) {
        weft__lock_release(&g->lock);
        return NULL;
    }
    size_t taken = 1;
    g->head = co->next;
    /* Move a fair share into our ring (bounded by its free room). */
    if (q) {
        uint32_t room = WEFT_RUNQ_SIZE - weft__runq_len(q);
        size_t want = atomic_load_explicit(&g->len, memory_order_relaxed) / 2;
        if (want > max)
            want = max;
        if (want > room / 2)
            want = room / 2;
        while (want-- && g->head) {
            struct weft__coro *c = g->head;
            g->head = c->next;
            weft__runq_put(q, c, g); /* cannot overflow: room was checked */
            taken++;
        }
    }
    if (!g->head)
        g->tail = NULL;
    atomic_fetch_sub_explicit(&g->len, taken, memory_order_relaxed);
    weft__lock_release(&g->lock);
    return co;
}
