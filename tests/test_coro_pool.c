/* SPDX-License-Identifier: MIT */
/* test_coro_pool.c — a unit test of floor 1 (objects and queues): the control-block pool of
 * coro.c, alone — no runtime, no worker, no stack; the cache a worker would own is a local
 * struct here, and NULL stands for a plain thread, as in the library.
 *
 * Checked: blocks come through a cache (one pool visit fills it with a batch), ids are
 * unique and never repeat on reuse, the wait sequence moves on at reuse, refs (2 at alloc,
 * freed at 0) and what a handle sees of them, the cache's high-water mark, draining a cache,
 * plain threads' blocks and counts, and the slab walk (weft__coro_first / all_next) that
 * finds every block ever made. */
#include "coro.h"

#include "harness.h"

#include <stdlib.h>

enum { N = 1500 }; /* more than a cache keeps (coro.c CORO_CACHE_HIGH, 1024) */

static bool in_walk(struct weft__coro *co)
{
    for (struct weft__coro *x = weft__coro_first(); x; x = x->all_next)
        if (x == co)
            return true;
    return false;
}

static size_t walk_len(void)
{
    size_t n = 0;
    for (struct weft__coro *x = weft__coro_first(); x; x = x->all_next)
        n++;
    return n;
}

int main(void)
{
    ASSERT(weft__coro_first() == NULL); /* nothing made before the first alloc */
    struct weft__coro_cache c = {0};
    static struct weft__coro *cos[N];
    static uint64_t ids[N];

    /* The first alloc visits the pool once and fills the cache with a batch. */
    cos[0] = weft__coro_alloc(&c);
    ASSERT(cos[0] != NULL);
    ASSERT_GT(c.n, 0u);
    size_t batch = c.n;
    ASSERT(weft__coro_cached(&c));
    ASSERT(!weft__coro_cached(NULL));
    for (int i = 1; i < N; i++) {
        cos[i] = weft__coro_alloc(&c);
        ASSERT(cos[i] != NULL);
    }
    ASSERT_EQ(atomic_load(&c.n_alloc), (uint64_t)N);
    for (int i = 0; i < N; i++) {
        ids[i] = atomic_load(&cos[i]->id);
        ASSERT_NE(ids[i], 0u);
        ASSERT_EQ(atomic_load(&cos[i]->refs), 2u);
        ASSERT(!(atomic_load(&cos[i]->wait) & WEFT__WAIT_ARMED));
        if (i)
            ASSERT_GT(ids[i], ids[i - 1]); /* a cache takes ids from its own block, in order */
        weft_task h = {cos[i], ids[i]};
        ASSERT(weft__coro_from_handle(h) == cos[i]);
        ASSERT(in_walk(cos[i]));
    }
    /* The slab walk: whole slabs, every block ever made. */
    size_t made = walk_len();
    ASSERT_GE(made, (size_t)N);
    ASSERT_GE(made, batch + 1);

    /* refs: the first release leaves the block live; the second frees it into the cache. */
    weft_task h0 = {cos[0], ids[0]};
    size_t n_before = c.n;
    weft__coro_release(cos[0], &c);
    ASSERT(weft__coro_from_handle(h0) == cos[0]);
    ASSERT_EQ(c.n, n_before);
    weft__coro_release(cos[0], &c);
    ASSERT(weft__coro_from_handle(h0) == NULL); /* a stale handle */
    ASSERT_EQ(atomic_load(&cos[0]->id), 0u);
    ASSERT_EQ(atomic_load(&cos[0]->state), (uint32_t)WEFT_CO_FREE);
    ASSERT_EQ(c.n, n_before + 1);
    ASSERT(c.head == cos[0]);
    ASSERT_EQ(atomic_load(&c.n_free), 1u);

    /* Reuse: the same block (the cache is LIFO), a new id, a later wait sequence. */
    uint64_t wait_before = atomic_load(&cos[0]->wait);
    struct weft__coro *again = weft__coro_alloc(&c);
    ASSERT(again == cos[0]);
    uint64_t id_again = atomic_load(&again->id);
    for (int i = 0; i < N; i++)
        ASSERT_NE(id_again, ids[i]); /* ids never repeat */
    ASSERT_GT(atomic_load(&again->wait) >> 2, wait_before >> 2);
    ASSERT(weft__coro_from_handle(h0) == NULL); /* the old handle stays dead */
    weft_task h_again = {again, id_again};
    ASSERT(weft__coro_from_handle(h_again) == again);
    ids[0] = id_again;

    /* Free everything: the cache never keeps more than its high-water mark (the rest goes
     * back to the pool in batches), and the counters balance. */
    size_t max_n = 0;
    for (int i = 0; i < N; i++) {
        weft__coro_release(cos[i], &c);
        weft__coro_release(cos[i], &c);
        if (c.n > max_n)
            max_n = c.n;
        ASSERT_EQ(atomic_load(&cos[i]->id), 0u);
    }
    ASSERT_LE(max_n, (size_t)1024);
    ASSERT_LT(c.n, (size_t)N); /* some went back to the pool */
    ASSERT_EQ(atomic_load(&c.n_alloc), atomic_load(&c.n_free));
    size_t cached = 0;
    for (struct weft__coro *x = c.head; x; x = x->next)
        cached++;
    ASSERT_EQ(cached, c.n);

    /* Drain: all of the cache back to the pool; no block is lost (the walk is unchanged and
     * a plain thread's allocs find them again without a new slab). */
    weft__coro_cache_drain(&c);
    ASSERT_EQ(c.n, 0u);
    ASSERT(c.head == NULL);
    ASSERT_EQ(walk_len(), made);

    /* A plain thread (no cache): blocks from the pool, counted in the process-wide counts. */
    int64_t alive0, zombies0;
    weft__coro_plain_counts(&alive0, &zombies0);
    struct weft__coro *p = weft__coro_alloc(NULL);
    ASSERT(p != NULL);
    ASSERT(in_walk(p));
    uint64_t pid = atomic_load(&p->id);
    for (int i = 0; i < N; i++)
        ASSERT_NE(pid, ids[i]);
    int64_t alive1, zombies1;
    weft__coro_plain_counts(&alive1, &zombies1);
    ASSERT_EQ(alive1, alive0 + 1);
    weft__coro_release(p, NULL);
    weft__coro_release(p, NULL);
    weft__coro_plain_counts(&alive1, &zombies1);
    ASSERT_EQ(alive1, alive0);
    ASSERT_EQ(walk_len(), made); /* every block came from the slabs already made */
    printf("test_coro_pool: %zu blocks made, a batch of %zu per pool visit\n", made, batch);
    return 0;
}
