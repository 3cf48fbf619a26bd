/* SPDX-License-Identifier: MIT */
/* test_chan_spin.c — chan.c's coro_spin, the policy of a coroutine that finds a buffered
 * channel's ring empty: it spins only when nothing else is runnable on its worker, and a
 * spin that found nothing makes the next CORO_SPIN_SKIP (16) empty rings on that channel
 * park at once. Links the static library and reads the channel's spin_skip (chan.h).
 * One worker, so "runnable on its worker" is the whole runtime.
 *
 * Checked, in order, on a channel of 4 slots that a plain thread feeds only on cue:
 *  - with main runnable (it yielded), a receiver meeting the empty ring parks without
 *    spinning: spin_skip stays 0 (a spin that finds nothing sets it to 16);
 *  - with main parked (joining the receiver), the receiver is alone: it spins, finds nothing
 *    (nobody sends until spin_skip is set: the thread's cue) and sets spin_skip to 16;
 *  - the receiver's next empty rings (fed one element each, on cue) take one skip each:
 *    16, 15, ... down to 0, then it spins again (16).
 * A spin that would wrongly start with other work runnable, or a failed spin that did not
 * set the skip, fails the test (the cue never comes: a 20 s deadline). Under the simulation
 * there is no spin: the checks are skipped. */
#define _GNU_SOURCE
#include "chan.h"
#include "common.h"

#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <weft.h>

#define DEADLINE_NS WEFT_SEC(20)
#define ROUNDS 18

static _Atomic long checks;
static weft_chan *ch;
static _Atomic int phase; /* 1: the receiver ran its first receive */

static uint32_t skip(void)
{
    return atomic_load_explicit(&ch->spin_skip, memory_order_relaxed);
}

/* Cue: wait until spin_skip == want, then send one element. */
static bool send_at(uint32_t want, long v)
{
    int64_t until = weft_now() + DEADLINE_NS;
    while (skip() != want && weft_now() < until)
        sched_yield();
    if (skip() != want) {
        fprintf(stderr, "test_chan_spin: spin_skip %u, expected %u\n", skip(), want);
        return false;
    }
    return weft_chan_send(ch, &v) == 0;
}

static void *feeder(void *arg)
{
    (void)arg;
    /* The receiver's first empty ring happened with main runnable: no spin, skip 0. Its
     * second comes when it is alone: a failed spin, skip 16. Then one element per cue. */
    bool ok = send_at(WEFT__CHAN_SPIN_SKIP, 1);
    for (uint32_t i = 0; ok && i < ROUNDS; i++) {
        uint32_t want = i < WEFT__CHAN_SPIN_SKIP    ? WEFT__CHAN_SPIN_SKIP - 1 - i /* skipping */
                        : i == WEFT__CHAN_SPIN_SKIP ? WEFT__CHAN_SPIN_SKIP         /* spun again */
                                                    : WEFT__CHAN_SPIN_SKIP - 1;
        ok = send_at(want, 2 + (long)i);
    }
    return (void *)(intptr_t)ok;
}

/* Main is runnable when this receives (it yielded to us and is queued): park at once. */
static void *receiver(void *arg)
{
    (void)arg;
    long v = 0;
    atomic_store(&phase, 1);
    if (weft_chan_recv(ch, &v) != 0)
        return NULL;
    return (void *)(intptr_t)v;
}

static void *alone(void *arg)
{
    (void)arg;
    long v = 0, sum = 0;
    for (int i = 0; i <= ROUNDS; i++) {
        if (weft_chan_recv(ch, &v) != 0)
            return (void *)0;
        sum += v;
    }
    return (void *)(intptr_t)sum;
}

static int test_main(void *arg)
{
    (void)arg;
    ASSERT_EQ(weft_chan_create(&ch, sizeof(long), 4), 0);
    /* With main runnable: a receive on the empty ring that would block. main spawns a
     * receiver, which parks on the empty channel while main is queued behind it. */
    weft_task r;
    void *got = NULL;
    long seven = 7;
    ASSERT_EQ(weft_spawn(&r, receiver, NULL), 0);
    ASSERT_EQ(weft_yield(), 0); /* the receiver runs and parks; we are queued meanwhile */
    CHECK_EQ(atomic_load(&phase), 1);
    CHECK_EQ(skip(), 0); /* it did not spin (a spin here finds nothing and sets 16) */
    ASSERT_EQ(weft_chan_send(ch, &seven), 0);
    ASSERT_EQ(weft_join(r, &got), 0);
    CHECK(got == (void *)7);

    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, feeder, NULL), 0);
    weft_task a;
    void *sum = NULL;
    ASSERT_EQ(weft_spawn(&a, alone, NULL), 0);
    ASSERT_EQ(weft_join(a, &sum), 0); /* main parks: the receiver is alone */
    void *ok = NULL;
    pthread_join(t, &ok);
    CHECK(ok == (void *)1);
    long want = 1;
    for (long i = 0; i < ROUNDS; i++)
        want += 2 + i;
    CHECK_EQ((long)(intptr_t)sum, want);
    weft_chan_unref(ch);
    return 0;
}

int main(void)
{
    if (getenv("WEFT_SEED")) {
        printf("test_chan_spin: simulation: no spins, skipped\n");
        return 0;
    }
    weft_config one = {.threads = 1};
    ASSERT_EQ(weft_run(test_main, NULL, &one), 0);
    TEST_PASS("test_chan_spin", checks);
    return 0;
}
