/* SPDX-License-Identifier: MIT */
/* test_runq.c — a unit test of floor 1 (objects and queues): the run-queue ring and the global
 * queue of runq.c, alone — no runtime, no worker, no coroutine ever runs. The "coroutines"
 * are control blocks used as tokens (the ring only moves pointers; the global queue links
 * them through co->next).
 *
 * Checked: FIFO put/get, wrap-around of the 32-bit positions' ring index, a full ring's
 * overflow (half of it plus the new one to the global queue, in order), runnext after the
 * ring, stealing half (and runnext when asked), and a concurrent owner with two thieves:
 * every token comes out exactly once (counted), under TSan too. The LIFO of unstarted
 * coroutines: newest first, full at WEFT_LIFO_SIZE, a steal takes the oldest and half the
 * rest, and the same owner-and-two-thieves check with the owner popping its LIFO down to its
 * last entry again and again (the race of the Chase-Lev deque). No timing anywhere. */
#include "runq.h"

#include "harness.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static struct weft__coro *tok;

static size_t idx(struct weft__coro *co)
{
    return (size_t)(co - tok);
}

static void test_fifo_and_wrap(void)
{
    static struct weft__runq q;
    struct weft__globalq g = {0};
    /* Occupancy goes up to 200 and down again, again and again: the positions pass the ring's
     * size many times over (wrap-around of the slot index). */
    size_t next_in = 0, next_out = 0;
    for (int round = 0; round < 40; round++) {
        int n = 1 + (round * 37) % (int)(200 - (next_in - next_out)); /* stays <= 200 */
        for (int i = 0; i < n; i++)
            weft__runq_put(&q, &tok[next_in++ % 4096], &g);
        ASSERT_EQ(weft__runq_len(&q), (uint32_t)(next_in - next_out));
        int m = round % 3 == 2 ? (int)(next_in - next_out) : n / 2 + 1;
        for (int i = 0; i < m; i++) {
            struct weft__coro *co = weft__runq_get(&q);
            ASSERT(co != NULL);
            ASSERT_EQ(idx(co), next_out % 4096); /* FIFO */
            next_out++;
        }
    }
    while (next_out < next_in) {
        ASSERT_EQ(idx(weft__runq_get(&q)), next_out % 4096);
        next_out++;
    }
    ASSERT(next_in > 3 * WEFT_RUNQ_SIZE);
    ASSERT(weft__runq_get(&q) == NULL);
    ASSERT(!weft__runq_nonempty(&q));
    ASSERT(!weft__globalq_nonempty(&g)); /* never full: nothing overflowed */
}

static void test_overflow(void)
{
    static struct weft__runq q;
    struct weft__globalq g = {0};
    for (int i = 0; i < WEFT_RUNQ_SIZE; i++)
        weft__runq_put(&q, &tok[i], &g);
    ASSERT_EQ(weft__runq_len(&q), (uint32_t)WEFT_RUNQ_SIZE);
    ASSERT(!weft__globalq_nonempty(&g));
    weft__runq_put(&q, &tok[WEFT_RUNQ_SIZE], &g); /* full: the oldest half and this one go */
    ASSERT_EQ(weft__runq_len(&q), (uint32_t)(WEFT_RUNQ_SIZE / 2));
    ASSERT_EQ(atomic_load(&g.len), (size_t)(WEFT_RUNQ_SIZE / 2 + 1));
    /* The global queue holds 0..127 then 256, in order; the ring 128..255. */
    static struct weft__runq q2;
    for (int i = 0; i < WEFT_RUNQ_SIZE / 2; i++) {
        struct weft__coro *co = weft__globalq_get(&g, &q2, 0);
        ASSERT(co != NULL);
        ASSERT_EQ(idx(co), (size_t)i);
    }
    ASSERT_EQ(idx(weft__globalq_get(&g, &q2, 0)), (size_t)WEFT_RUNQ_SIZE);
    ASSERT(weft__globalq_get(&g, &q2, 0) == NULL);
    for (int i = WEFT_RUNQ_SIZE / 2; i < WEFT_RUNQ_SIZE; i++)
        ASSERT_EQ(idx(weft__runq_get(&q)), (size_t)i);
    ASSERT(weft__runq_get(&q) == NULL);
    /* globalq_get with a batch: one to run, `max` more into the ring, in order. */
    for (int i = 0; i < 10; i++)
        weft__globalq_put(&g, &tok[i]);
    ASSERT_EQ(idx(weft__globalq_get(&g, &q2, 4)), (size_t)0);
    ASSERT_EQ(weft__runq_len(&q2), 4u);
    for (int i = 1; i <= 4; i++)
        ASSERT_EQ(idx(weft__runq_get(&q2)), (size_t)i);
    ASSERT_EQ(atomic_load(&g.len), (size_t)5);
    while (weft__globalq_get(&g, &q2, 0))
        ;
}

static void test_runnext_and_steal(void)
{
    static struct weft__runq v, q;
    struct weft__globalq g = {0};
    /* runnext comes after the ring for weft__runq_get (runq.h) */
    atomic_store(&v.runnext, &tok[999]);
    weft__runq_put(&v, &tok[0], &g);
    ASSERT(weft__runq_nonempty(&v));
    ASSERT_EQ(idx(weft__runq_get(&v)), (size_t)0);
    ASSERT_EQ(idx(weft__runq_get(&v)), (size_t)999);
    ASSERT(weft__runq_get(&v) == NULL);
    /* steal: half of 100 (rounded up), the last of them returned, the rest in q */
    for (int i = 0; i < 100; i++)
        weft__runq_put(&v, &tok[i], &g);
    struct weft__coro *co = weft__runq_steal(&q, &v, false, false);
    ASSERT_EQ(idx(co), (size_t)49);
    ASSERT_EQ(weft__runq_len(&q), 49u);
    ASSERT_EQ(weft__runq_len(&v), 50u);
    for (int i = 0; i < 49; i++)
        ASSERT_EQ(idx(weft__runq_get(&q)), (size_t)i);
    for (int i = 50; i < 100; i++)
        ASSERT_EQ(idx(weft__runq_get(&v)), (size_t)i);
    /* one left: stolen alone (n - n/2 = 1), nothing published in q */
    weft__runq_put(&v, &tok[7], &g);
    ASSERT_EQ(idx(weft__runq_steal(&q, &v, false, false)), (size_t)7);
    ASSERT_EQ(weft__runq_len(&q), 0u);
    /* an empty ring: runnext only when asked */
    atomic_store(&v.runnext, &tok[5]);
    ASSERT(weft__runq_steal(&q, &v, false, false) == NULL);
    ASSERT_EQ(idx(weft__runq_steal(&q, &v, true, false)), (size_t)5);
    ASSERT(atomic_load(&v.runnext) == NULL);
    ASSERT(weft__runq_steal(&q, &v, true, false) == NULL);
}

static void test_lifo(void)
{
    static struct weft__runq q, v;
    /* newest first, alone (solo) or with thieves possible */
    for (int solo = 0; solo < 2; solo++) {
        for (int i = 0; i < 10; i++)
            ASSERT(weft__lifo_push(&q, &tok[i]));
        ASSERT_EQ(weft__lifo_len(&q), (uint32_t)10);
        ASSERT(weft__runq_nonempty(&q));
        for (int i = 9; i >= 0; i--)
            ASSERT_EQ(idx(weft__lifo_pop(&q, solo)), (size_t)i);
        ASSERT(weft__lifo_pop(&q, solo) == NULL);
        ASSERT(!weft__runq_nonempty(&q));
    }
    /* full at WEFT_LIFO_SIZE: the push says so and changes nothing */
    for (int i = 0; i < WEFT_LIFO_SIZE; i++)
        ASSERT(weft__lifo_push(&q, &tok[i]));
    ASSERT(!weft__lifo_push(&q, &tok[WEFT_LIFO_SIZE]));
    ASSERT_EQ(weft__lifo_len(&q), (uint32_t)WEFT_LIFO_SIZE);
    ASSERT_EQ(idx(weft__lifo_pop(&q, false)), (size_t)WEFT_LIFO_SIZE - 1);
    while (weft__lifo_pop(&q, false))
        ;
    /* a steal: the oldest to run now, half of the rest (oldest first) into the thief's LIFO,
     * ahead of the victim's ring */
    weft__runq_put(&v, &tok[100], NULL); /* the ring has room: no global queue needed */
    for (int i = 0; i < 10; i++)
        ASSERT(weft__lifo_push(&v, &tok[i]));
    ASSERT_EQ(idx(weft__runq_steal(&q, &v, false, false)), (size_t)0);
    ASSERT_EQ(weft__lifo_len(&q), (uint32_t)4); /* 9 left behind the first: 4 of them */
    ASSERT_EQ(weft__lifo_len(&v), (uint32_t)5);
    ASSERT_EQ(idx(weft__lifo_pop(&q, false)), (size_t)4); /* newest of those taken */
    ASSERT_EQ(idx(weft__lifo_pop(&v, false)), (size_t)9); /* the victim keeps its newest */
    while (weft__lifo_pop(&q, false))
        ;
    while (weft__lifo_pop(&v, false))
        ;
    ASSERT_EQ(idx(weft__runq_steal(&q, &v, false, false)), (size_t)100); /* then the ring */
    ASSERT(!weft__runq_nonempty(&v));
    ASSERT(!weft__runq_nonempty(&q));

    /* a probe (a thief whose last batch did not pay) takes one: the LIFO's oldest, else the
     * ring's oldest */
    for (int i = 0; i < 10; i++)
        ASSERT(weft__lifo_push(&v, &tok[i]));
    ASSERT_EQ(idx(weft__runq_steal(&q, &v, false, true)), (size_t)0);
    ASSERT_EQ(weft__lifo_len(&q), (uint32_t)0);
    ASSERT_EQ(weft__lifo_len(&v), (uint32_t)9);
    while (weft__lifo_pop(&v, false))
        ;
    for (int i = 0; i < 3; i++)
        weft__runq_put(&v, &tok[300 + i], NULL);
    ASSERT_EQ(idx(weft__runq_steal(&q, &v, false, true)), (size_t)300);
    ASSERT(!weft__runq_nonempty(&q));
    ASSERT_EQ(weft__runq_len(&v), (uint32_t)2);
    while (weft__runq_get(&v))
        ;
    ASSERT(!weft__runq_nonempty(&v));

    /* Claims (runq.c): a pop from a long LIFO with thieves about claims the newest
     * min(16, half) entries with one fence; a thief cannot take them; a push gives the rest
     * back first, so the order of pops is the LIFO's, claims or not. */
    for (int i = 0; i < 40; i++)
        ASSERT(weft__lifo_push(&v, &tok[i]));
    ASSERT_EQ(idx(weft__lifo_pop(&v, false)), (size_t)39); /* claims 24..39 */
    ASSERT_EQ(atomic_load(&v.lifo_claimed), (uint32_t)15);
    ASSERT_EQ(weft__lifo_len(&v), (uint32_t)39); /* claimed ones counted */
    ASSERT(weft__runq_stealable(&v));
    /* a steal sees the 24 public ones only: the oldest to run, half of the other 23 */
    ASSERT_EQ(idx(weft__runq_steal(&q, &v, false, false)), (size_t)0);
    ASSERT_EQ(weft__lifo_len(&q), (uint32_t)11);
    ASSERT_EQ(idx(weft__lifo_pop(&v, false)), (size_t)38); /* from the claim, no fence */
    ASSERT(weft__lifo_push(&v, &tok[200]));                /* gives 24..37 back, lands above */
    ASSERT_EQ(atomic_load(&v.lifo_claimed), (uint32_t)0);
    ASSERT_EQ(idx(weft__lifo_pop(&v, false)), (size_t)200);
    for (int i = 37; i >= 12; i--) /* 12..23 were left by the thief, then the given-back ones */
        ASSERT_EQ(idx(weft__lifo_pop(&v, false)), (size_t)i);
    ASSERT(weft__lifo_pop(&v, false) == NULL);
    ASSERT(!weft__runq_nonempty(&v));
    /* all claimed, then stolen while the rest is claimed: the steal finds the public rest */
    for (int i = 0; i < 8; i++)
        ASSERT(weft__lifo_push(&v, &tok[i]));
    ASSERT_EQ(idx(weft__lifo_pop(&v, false)), (size_t)7); /* claims 4..7 */
    struct weft__runq r = {0};
    ASSERT_EQ(idx(weft__runq_steal(&r, &v, false, false)), (size_t)0);
    while (weft__lifo_pop(&r, false))
        ;
    while (weft__lifo_pop(&q, false))
        ;
    for (int i = 6; i >= 4; i--)
        ASSERT_EQ(idx(weft__lifo_pop(&v, false)), (size_t)i);
    struct weft__coro *co;
    while ((co = weft__lifo_pop(&v, false)))
        ASSERT(idx(co) >= 1 && idx(co) <= 3); /* what the thief left of 1..3 */
    ASSERT(!weft__runq_nonempty(&v));
    ASSERT(!weft__runq_nonempty(&q));
}

/* ---- an owner and two thieves -------------------------------------------------------------- */

#define NTHIEVES 2
static long total;
static _Atomic unsigned char *seen;
static struct weft__runq owner_q;
static struct weft__globalq global;
static _Atomic int pushing_done;
static _Atomic long counted;

static void take(struct weft__coro *co)
{
    ASSERT(co != NULL);
    size_t i = idx(co);
    ASSERT_LT(i, (size_t)total);
    ASSERT_EQ(atomic_fetch_add(&seen[i], 1), 0); /* exactly once */
    atomic_fetch_add_explicit(&counted, 1, memory_order_relaxed);
}

/* The LIFO's owner: pushes and pops right away, except every 8th time (so the LIFO holds
 * one or a few entries and most pops take the last one: the owner's CAS against the
 * thieves'), takes one out when it is full. */
static void *lifo_owner(void *arg)
{
    (void)arg;
    for (long i = 0; i < total; i++) {
        while (!weft__lifo_push(&owner_q, &tok[i])) {
            struct weft__coro *co = weft__lifo_pop(&owner_q, false);
            if (co)
                take(co);
        }
        if (i % 8 != 0) {
            struct weft__coro *co = weft__lifo_pop(&owner_q, false);
            if (co)
                take(co);
        }
    }
    atomic_store(&pushing_done, 1);
    struct weft__coro *co;
    while ((co = weft__lifo_pop(&owner_q, false)))
        take(co);
    return NULL;
}

/* The LIFO's owner in bursts: BURST pushes, then 3/4 as many pops (so its pops claim entries
 * while the thieves steal, runq.c "Claims"), a push in the middle of each claim. */
#define BURST 8
static void *lifo_burst_owner(void *arg)
{
    (void)arg;
    for (long i = 0; i < total;) {
        for (int n = 0; n < BURST && i < total; n++, i++)
            while (!weft__lifo_push(&owner_q, &tok[i])) {
                struct weft__coro *co = weft__lifo_pop(&owner_q, false);
                if (co)
                    take(co);
            }
        for (int n = 0; n < BURST * 3 / 4; n++) {
            struct weft__coro *co = weft__lifo_pop(&owner_q, false);
            if (co)
                take(co);
            if (n == 2 && i < total && weft__lifo_push(&owner_q, &tok[i]))
                i++; /* gave the rest of a claim back (full: nothing done) */
        }
    }
    atomic_store(&pushing_done, 1);
    struct weft__coro *co;
    while ((co = weft__lifo_pop(&owner_q, false)))
        take(co);
    return NULL;
}

static void *owner(void *arg)
{
    (void)arg;
    for (long i = 0; i < total; i++) {
        weft__runq_put(&owner_q, &tok[i], &global); /* overflows to the global queue */
        if (i % 3 == 0) { /* the owner consumes too, at about a third of the rate */
            struct weft__coro *co = weft__runq_get(&owner_q);
            if (co)
                take(co);
        }
    }
    atomic_store(&pushing_done, 1);
    struct weft__coro *co;
    while ((co = weft__runq_get(&owner_q)))
        take(co);
    return NULL;
}

static void *thief(void *arg)
{
    struct weft__runq *q = arg; /* the thief's own ring: it is its owner */
    for (;;) {
        int done = atomic_load(&pushing_done); /* read before the last look */
        struct weft__coro *co = weft__runq_steal(q, &owner_q, false, false);
        if (!co) {
            if (done)
                return NULL; /* pushing ended before this steal found the ring empty */
            continue;
        }
        take(co);
        while ((co = weft__runq_get(q)) || (co = weft__lifo_pop(q, false)))
            take(co);
    }
}

/* Rounds of TOKENS distinct tokens (a control block is large: reuse them round after
 * round), each round checked on its own: every token taken exactly once. */
#define TOKENS 20000
static void concurrent_round(void *(*owner_fn)(void *))
{
    total = TOKENS;
    memset((void *)seen, 0, TOKENS);
    atomic_store(&counted, 0);
    atomic_store(&pushing_done, 0);
    static struct weft__runq tq[NTHIEVES];
    pthread_t th[NTHIEVES], ow;
    for (int i = 0; i < NTHIEVES; i++)
        ASSERT_EQ(pthread_create(&th[i], NULL, thief, &tq[i]), 0);
    ASSERT_EQ(pthread_create(&ow, NULL, owner_fn, NULL), 0);
    ASSERT_EQ(pthread_join(ow, NULL), 0);
    for (int i = 0; i < NTHIEVES; i++)
        ASSERT_EQ(pthread_join(th[i], NULL), 0);
    /* what overflowed waits in the global queue */
    static struct weft__runq drain;
    struct weft__coro *co;
    while ((co = weft__globalq_get(&global, &drain, 0)))
        take(co);
    ASSERT(!weft__runq_nonempty(&drain));
    ASSERT_EQ(atomic_load(&counted), total);
    for (long i = 0; i < total; i++)
        ASSERT_EQ(seen[i], 1);
}

static void test_concurrent(void)
{
    seen = calloc(TOKENS, 1);
    ASSERT(seen != NULL);
    long rounds = ops_scaled(20); /* 20 rounds, fewer under the sanitizers */
    for (long r = 0; r < rounds; r++) {
        concurrent_round(owner);
        concurrent_round(lifo_owner);
        concurrent_round(lifo_burst_owner);
    }
    free((void *)seen);
    printf("test_runq: %ld rounds of %d tokens (ring, LIFO), owner and %d thieves\n", rounds,
           TOKENS, NTHIEVES);
}

int main(void)
{
    tok = calloc(TOKENS, sizeof *tok);
    ASSERT(tok != NULL);
    test_fifo_and_wrap();
    test_overflow();
    test_runnext_and_steal();
    test_lifo();
    test_concurrent();
    free(tok);
    printf("test_runq: ok\n");
    return 0;
}
