/* SPDX-License-Identifier: MIT */
/* test_chan.c — channels (Go's semantics): rendezvous, buffering and FIFO order, capacity,
 * close-and-drain, close waking blocked receivers and senders, error codes, zero-size and
 * large elements, deadlines, reference counting, and a multi-producer/multi-consumer stress
 * across workers that checks every element arrives exactly once and in order per sender;
 * then the buffered channels' lock-free ring: a stress mixing plain threads and coroutines
 * on both ends with every kind of operation, close racing with sends, and full/empty
 * transitions with deadlines.
 *
 * Under simulation ($WEFT_SEED: the ctest variants test_chan_sim and test_chan_seeds) every
 * scenario runs on coroutines only: deadlines of seconds end at once and exactly on time, the
 * ring's parties are all coroutines, and the parts with plain threads are skipped (a line
 * says so); the run ends with a fingerprint line (harness.h) that a replay must reproduce. */
#define _GNU_SOURCE /* pthread_tryjoin_np */
#include "harness.h"
#include <weft.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>

static _Atomic long checks;

#define LATE_NS WEFT_SEC(2) /* "not absurdly late" */

/* Poll (sleeping) until cond holds; fail after 5 s. */
/* ------------------------------------------------------------------------------------------
 * Rendezvous. */

struct rv {
    weft_chan *ch;
    _Atomic int stage; /* 1: about to block in its operation, 2: operation returned */
    int value;
    int r;
};

static void *rv_recv_late(void *arg)
{
    struct rv *s = arg;
    weft_sleep(WEFT_MSEC(20));
    atomic_store(&s->stage, 1);
    s->r = weft_chan_recv(s->ch, &s->value);
    atomic_store(&s->stage, 2);
    return NULL;
}

static void *rv_send_late(void *arg)
{
    struct rv *s = arg;
    weft_sleep(WEFT_MSEC(20));
    atomic_store(&s->stage, 1);
    s->r = weft_chan_send(s->ch, &s->value);
    atomic_store(&s->stage, 2);
    return NULL;
}

static void *rv_recv_now(void *arg)
{
    struct rv *s = arg;
    atomic_store(&s->stage, 1);
    s->r = weft_chan_recv(s->ch, &s->value);
    atomic_store(&s->stage, 2);
    return NULL;
}

static void test_rendezvous(void)
{
    weft_chan *ch;
    CHECK_EQ(weft_chan_create(&ch, sizeof(int), 0), 0);
    CHECK_EQ(weft_chan_cap(ch), 0);
    CHECK_EQ(weft_chan_len(ch), 0);

    /* Nobody on the other side: the non-blocking forms fail. */
    int v = 5;
    CHECK_EQ(weft_chan_try_send(ch, &v), WEFT_EAGAIN);
    CHECK_EQ(weft_chan_try_recv(ch, &v), WEFT_EAGAIN);
    CHECK_EQ(v, 5);

    /* send blocks until a receiver takes the element. */
    struct rv s = {.ch = ch};
    weft_task t;
    int64_t t0 = weft_now();
    CHECK_EQ(weft_spawn(&t, rv_recv_late, &s), 0);
    v = 1234;
    CHECK_EQ(weft_chan_send(ch, &v), 0);
    CHECK_GE(weft_now() - t0, WEFT_MSEC(20));
    CHECK_EQ(atomic_load(&s.stage) >= 1, 1); /* the receiver had started receiving */
    CHECK_EQ(weft_join(t, NULL), 0);
    CHECK_EQ(s.r, 0);
    CHECK_EQ(s.value, 1234);
    CHECK_EQ(weft_chan_len(ch), 0);

    /* recv blocks until a sender comes. */
    s = (struct rv){.ch = ch, .value = 4321};
    t0 = weft_now();
    CHECK_EQ(weft_spawn(&t, rv_send_late, &s), 0);
    v = 0;
    CHECK_EQ(weft_chan_recv(ch, &v), 0);
    CHECK_GE(weft_now() - t0, WEFT_MSEC(20));
    CHECK_EQ(v, 4321);
    CHECK_EQ(weft_join(t, NULL), 0);
    CHECK_EQ(s.r, 0);

    /* try_send succeeds only once a receiver waits. */
    s = (struct rv){.ch = ch};
    CHECK_EQ(weft_spawn(&t, rv_recv_now, &s), 0);
    v = 77;
    int r, tries = 0;
    int64_t dl = weft_now() + WEFT_SEC(5);
    while ((r = weft_chan_try_send(ch, &v)) == WEFT_EAGAIN && weft_now() < dl) {
        weft_sleep(WEFT_MSEC(1));
        tries++;
    }
    CHECK_EQ(r, 0);
    CHECK_EQ(weft_join(t, NULL), 0);
    CHECK_EQ(s.r, 0);
    CHECK_EQ(s.value, 77);
    /* and try_recv once a sender waits */
    s = (struct rv){.ch = ch, .value = 88};
    CHECK_EQ(weft_spawn(&t, rv_send_late, &s), 0);
    dl = weft_now() + WEFT_SEC(5);
    v = 0;
    while ((r = weft_chan_try_recv(ch, &v)) == WEFT_EAGAIN && weft_now() < dl)
        weft_sleep(WEFT_MSEC(1));
    CHECK_EQ(r, 0);
    CHECK_EQ(v, 88);
    CHECK_EQ(weft_join(t, NULL), 0);
    CHECK_EQ(s.r, 0);
    weft_chan_unref(ch);
}

/* ------------------------------------------------------------------------------------------
 * Buffered: capacity, FIFO, wrap-around, blocked sender moves into the freed slot. */

static void *send_one(void *arg)
{
    struct rv *s = arg;
    atomic_store(&s->stage, 1);
    s->r = weft_chan_send(s->ch, &s->value);
    atomic_store(&s->stage, 2);
    return NULL;
}

static void test_buffered(void)
{
    weft_chan *ch;
    CHECK_EQ(weft_chan_create(&ch, sizeof(int), 4), 0);
    CHECK_EQ(weft_chan_cap(ch), 4);
    int v;
    CHECK_EQ(weft_chan_try_recv(ch, &v), WEFT_EAGAIN);
    for (int i = 1; i <= 4; i++) {
        CHECK_EQ(weft_chan_try_send(ch, &i), 0);
        CHECK_EQ(weft_chan_len(ch), i);
    }
    v = 5;
    CHECK_EQ(weft_chan_try_send(ch, &v), WEFT_EAGAIN);
    CHECK_EQ(weft_chan_len(ch), 4);
    /* A blocking send on a full channel waits for a free slot. */
    struct rv s = {.ch = ch, .value = 5};
    weft_task t;
    CHECK_EQ(weft_spawn(&t, send_one, &s), 0);
    WAIT_FOR(atomic_load(&s.stage) >= 1);
    weft_sleep(WEFT_MSEC(10));
    CHECK_EQ(atomic_load(&s.stage), 1); /* still blocked: the buffer is full */
    CHECK_EQ(weft_chan_len(ch), 4);
    CHECK_EQ(weft_chan_recv(ch, &v), 0);
    CHECK_EQ(v, 1);
    CHECK_EQ(weft_join(t, NULL), 0);
    CHECK_EQ(s.r, 0);
    CHECK_EQ(weft_chan_len(ch), 4); /* the blocked element moved into the freed slot */
    for (int i = 2; i <= 5; i++) {
        CHECK_EQ(weft_chan_try_recv(ch, &v), 0);
        CHECK_EQ(v, i);
    }
    CHECK_EQ(weft_chan_try_recv(ch, &v), WEFT_EAGAIN);
    CHECK_EQ(weft_chan_len(ch), 0);

    /* FIFO across many wrap-arounds of the ring, at every fill level. */
    int next_in = 0, next_out = 0;
    bool ok = true;
    for (int round = 0; round < 200; round++) {
        int fill = round % 5;
        for (int i = 0; i < fill; i++) {
            if (weft_chan_try_send(ch, &next_in) != 0)
                ok = false;
            next_in++;
        }
        if ((int)weft_chan_len(ch) != fill)
            ok = false;
        for (int i = 0; i < fill; i++) {
            if (weft_chan_try_recv(ch, &v) != 0 || v != next_out)
                ok = false;
            next_out++;
        }
    }
    CHECK(ok);
    CHECK_EQ(next_in, next_out);
    weft_chan_unref(ch);
}

/* ------------------------------------------------------------------------------------------
 * Close. */

static void *recv_one(void *arg)
{
    struct rv *s = arg;
    atomic_store(&s->stage, 1);
    s->value = -1;
    s->r = weft_chan_recv(s->ch, &s->value);
    atomic_store(&s->stage, 2);
    return NULL;
}

static void test_close(void)
{
    weft_chan *ch;
    int v;
    /* close-and-drain */
    CHECK_EQ(weft_chan_create(&ch, sizeof(int), 3), 0);
    for (int i = 1; i <= 3; i++)
        CHECK_EQ(weft_chan_send(ch, &i), 0);
    CHECK_EQ(weft_chan_close(ch), 0);
    CHECK_EQ(weft_chan_len(ch), 3);
    v = 9;
    CHECK_EQ(weft_chan_send(ch, &v), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_try_send(ch, &v), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_send_until(ch, &v, weft_after(WEFT_MSEC(1))), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_len(ch), 3); /* the refused element was not taken */
    CHECK_EQ(weft_chan_recv(ch, &v), 0);
    CHECK_EQ(v, 1);
    CHECK_EQ(weft_chan_try_recv(ch, &v), 0);
    CHECK_EQ(v, 2);
    CHECK_EQ(weft_chan_recv_until(ch, &v, weft_after(WEFT_MSEC(1))), 0);
    CHECK_EQ(v, 3);
    for (int i = 0; i < 3; i++) {
        v = 42;
        CHECK_EQ(weft_chan_recv(ch, &v), WEFT_ECLOSED);
        CHECK_EQ(weft_chan_try_recv(ch, &v), WEFT_ECLOSED);
        CHECK_EQ(weft_chan_recv_until(ch, &v, weft_after(WEFT_MSEC(1))), WEFT_ECLOSED);
        CHECK_EQ(v, 42); /* nothing written */
    }
    CHECK_EQ(weft_chan_close(ch), WEFT_ECLOSED); /* double close */
    CHECK_EQ(weft_chan_close(ch), WEFT_ECLOSED);
    weft_chan_unref(ch);

    /* unbuffered: send on closed, the value is received by nobody */
    CHECK_EQ(weft_chan_create(&ch, sizeof(int), 0), 0);
    CHECK_EQ(weft_chan_close(ch), 0);
    v = 1;
    CHECK_EQ(weft_chan_send(ch, &v), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_recv(ch, &v), WEFT_ECLOSED);
    weft_chan_unref(ch);

    /* buffered: a value sent before close is received, the one after is not */
    CHECK_EQ(weft_chan_create(&ch, sizeof(int), 2), 0);
    v = 10;
    CHECK_EQ(weft_chan_send(ch, &v), 0);
    CHECK_EQ(weft_chan_close(ch), 0);
    v = 11;
    CHECK_EQ(weft_chan_send(ch, &v), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_recv(ch, &v), 0);
    CHECK_EQ(v, 10);
    CHECK_EQ(weft_chan_recv(ch, &v), WEFT_ECLOSED);
    weft_chan_unref(ch);

    /* close wakes blocked receivers (cap 0) */
    enum { NB = 4 };
    struct rv rs[NB];
    weft_task ts[NB];
    CHECK_EQ(weft_chan_create(&ch, sizeof(int), 0), 0);
    for (int i = 0; i < NB; i++) {
        rs[i] = (struct rv){.ch = ch};
        CHECK_EQ(weft_spawn(&ts[i], recv_one, &rs[i]), 0);
    }
    for (int i = 0; i < NB; i++)
        WAIT_FOR(atomic_load(&rs[i].stage) >= 1);
    weft_sleep(WEFT_MSEC(10));
    for (int i = 0; i < NB; i++)
        CHECK_EQ(atomic_load(&rs[i].stage), 1);
    CHECK_EQ(weft_chan_close(ch), 0);
    for (int i = 0; i < NB; i++) {
        CHECK_EQ(weft_join(ts[i], NULL), 0);
        CHECK_EQ(rs[i].r, WEFT_ECLOSED);
        CHECK_EQ(rs[i].value, -1);
    }
    weft_chan_unref(ch);

    /* close wakes blocked senders: on a full buffered channel and on a rendezvous one */
    for (int cap = 0; cap <= 1; cap++) {
        CHECK_EQ(weft_chan_create(&ch, sizeof(int), (size_t)cap), 0);
        if (cap) {
            v = 100;
            CHECK_EQ(weft_chan_send(ch, &v), 0);
        }
        for (int i = 0; i < NB; i++) {
            rs[i] = (struct rv){.ch = ch, .value = 200 + i};
            CHECK_EQ(weft_spawn(&ts[i], send_one, &rs[i]), 0);
        }
        for (int i = 0; i < NB; i++)
            WAIT_FOR(atomic_load(&rs[i].stage) >= 1);
        weft_sleep(WEFT_MSEC(10));
        for (int i = 0; i < NB; i++)
            CHECK_EQ(atomic_load(&rs[i].stage), 1);
        CHECK_EQ(weft_chan_close(ch), 0);
        for (int i = 0; i < NB; i++) {
            CHECK_EQ(weft_join(ts[i], NULL), 0);
            CHECK_EQ(rs[i].r, WEFT_ECLOSED);
        }
        if (cap) {
            CHECK_EQ(weft_chan_recv(ch, &v), 0);
            CHECK_EQ(v, 100);
        }
        CHECK_EQ(weft_chan_recv(ch, &v), WEFT_ECLOSED); /* no blocked sender's value */
        weft_chan_unref(ch);
    }
}

/* ------------------------------------------------------------------------------------------
 * Arguments. */

static void test_args(void)
{
    weft_chan *ch = (weft_chan *)1;
    int v = 0;
    CHECK_EQ(weft_chan_create(NULL, 4, 0), WEFT_EINVAL);
    int r = weft_chan_create(&ch, (size_t)1 << 40, (size_t)1 << 40); /* overflows */
    CHECK(r == WEFT_EINVAL || r == WEFT_ENOMEM);
    CHECK(ch == NULL);
    CHECK_EQ(weft_chan_send(NULL, &v), WEFT_EINVAL);
    CHECK_EQ(weft_chan_recv(NULL, &v), WEFT_EINVAL);
    CHECK_EQ(weft_chan_try_send(NULL, &v), WEFT_EINVAL);
    CHECK_EQ(weft_chan_try_recv(NULL, &v), WEFT_EINVAL);
    CHECK_EQ(weft_chan_send_until(NULL, &v, weft_after(WEFT_MSEC(1))), WEFT_EINVAL);
    CHECK_EQ(weft_chan_recv_until(NULL, &v, weft_after(WEFT_MSEC(1))), WEFT_EINVAL);
    CHECK_EQ(weft_chan_close(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_chan_len(NULL), 0);
    CHECK_EQ(weft_chan_cap(NULL), 0);
    weft_chan_ref(NULL); /* no-ops */
    weft_chan_unref(NULL);

    CHECK_EQ(weft_chan_create(&ch, sizeof(int), 2), 0);
    CHECK_EQ(weft_chan_send(ch, NULL), WEFT_EINVAL);
    CHECK_EQ(weft_chan_try_send(ch, NULL), WEFT_EINVAL);
    CHECK_EQ(weft_chan_send_until(ch, NULL, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_chan_len(ch), 0); /* nothing was sent */
    v = 3;
    CHECK_EQ(weft_chan_send(ch, &v), 0);
    CHECK_EQ(weft_chan_len(ch), 1);
    weft_chan_unref(ch);
}

/* ------------------------------------------------------------------------------------------
 * A receive into NULL takes the element and discards it (as a select's receive case may):
 * buffered and rendezvous, ready and waiting, every variant. */

static void *send_41(void *arg)
{
    int v = 41;
    ASSERT_EQ(weft_chan_send(arg, &v), 0);
    return NULL;
}

static void test_recv_discard(void)
{
    for (size_t cap = 0; cap <= 2; cap += 2) {
        weft_chan *ch;
        CHECK_EQ(weft_chan_create(&ch, sizeof(int), cap), 0);
        int v = 7;
        if (cap) { /* ready: buffered elements */
            CHECK_EQ(weft_chan_send(ch, &v), 0);
            CHECK_EQ(weft_chan_send(ch, &v), 0);
            CHECK_EQ(weft_chan_recv(ch, NULL), 0);
            CHECK_EQ(weft_chan_try_recv(ch, NULL), 0);
            CHECK_EQ(weft_chan_len(ch), 0);
        }
        CHECK_EQ(weft_chan_try_recv(ch, NULL), WEFT_EAGAIN);
        CHECK_EQ(weft_chan_recv_until(ch, NULL, weft_now() - 1), WEFT_ETIMEDOUT);
        /* waiting: a sender comes later (or is already waiting on the rendezvous) */
        for (int i = 0; i < 2; i++) {
            weft_task t;
            CHECK_EQ(weft_spawn(&t, send_41, ch), 0);
            CHECK_EQ(i ? weft_chan_recv_until(ch, NULL, WEFT_FOREVER) : weft_chan_recv(ch, NULL),
                     0);
            CHECK_EQ(weft_join(t, NULL), 0);
        }
        /* the next element is the one sent next: nothing was left behind */
        weft_task t;
        CHECK_EQ(weft_spawn(&t, send_41, ch), 0);
        v = 0;
        CHECK_EQ(weft_chan_recv(ch, &v), 0);
        CHECK_EQ(v, 41);
        CHECK_EQ(weft_join(t, NULL), 0);
        CHECK_EQ(weft_chan_close(ch), 0);
        CHECK_EQ(weft_chan_recv(ch, NULL), WEFT_ECLOSED);
        weft_chan_unref(ch);
    }
}

/* ------------------------------------------------------------------------------------------
 * Zero-size elements: channels as signals. */

static weft_chan *sig_done;
static _Atomic int sig_count;
static void *signal_done(void *arg)
{
    weft_sleep(WEFT_MSEC((intptr_t)arg % 5));
    atomic_fetch_add(&sig_count, 1);
    ASSERT_EQ(weft_chan_send(sig_done, NULL), 0);
    return NULL;
}

static void test_zero_size(void)
{
    weft_chan *ch;
    CHECK_EQ(weft_chan_create(&ch, 0, 3), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_chan_try_send(ch, NULL), 0);
    CHECK_EQ(weft_chan_try_send(ch, NULL), WEFT_EAGAIN);
    CHECK_EQ(weft_chan_len(ch), 3);
    int dummy = 5;
    CHECK_EQ(weft_chan_recv(ch, &dummy), 0); /* a non-NULL elem is fine and untouched */
    CHECK_EQ(dummy, 5);
    CHECK_EQ(weft_chan_recv(ch, NULL), 0);
    CHECK_EQ(weft_chan_try_recv(ch, NULL), 0);
    CHECK_EQ(weft_chan_try_recv(ch, NULL), WEFT_EAGAIN);
    CHECK_EQ(weft_chan_close(ch), 0);
    CHECK_EQ(weft_chan_recv(ch, NULL), WEFT_ECLOSED);
    weft_chan_unref(ch);

    /* unbuffered done-signals from N coroutines */
    int n = (int)test_scaled(1000);
    CHECK_EQ(weft_chan_create(&sig_done, 0, 0), 0);
    atomic_store(&sig_count, 0);
    for (int i = 0; i < n; i++)
        CHECK_EQ(weft_spawn(NULL, signal_done, (void *)(intptr_t)i), 0);
    for (int i = 0; i < n; i++)
        ASSERT_EQ(weft_chan_recv(sig_done, NULL), 0);
    CHECK_EQ(atomic_load(&sig_count), n);
    CHECK_EQ(weft_chan_try_recv(sig_done, NULL), WEFT_EAGAIN);
    weft_chan_unref(sig_done);
}

/* ------------------------------------------------------------------------------------------
 * Large elements. */

struct big {
    uint32_t seq;
    uint8_t bytes[4096 - 8];
    uint32_t tail;
};

static void big_fill(struct big *b, uint32_t seq)
{
    b->seq = seq;
    for (size_t i = 0; i < sizeof b->bytes; i++)
        b->bytes[i] = (uint8_t)(seq * 31 + i * 7);
    b->tail = ~seq;
}

static bool big_ok(const struct big *b, uint32_t seq)
{
    if (b->seq != seq || b->tail != ~seq)
        return false;
    for (size_t i = 0; i < sizeof b->bytes; i++)
        if (b->bytes[i] != (uint8_t)(seq * 31 + i * 7))
            return false;
    return true;
}

#define BIG_N 200
static void *big_producer(void *arg)
{
    weft_chan *ch = arg;
    struct big b;
    for (uint32_t i = 0; i < BIG_N; i++) {
        big_fill(&b, i);
        ASSERT_EQ(weft_chan_send(ch, &b), 0);
        memset(&b, 0xEE, sizeof b); /* the channel must have copied it */
        if (i % 7 == 0)
            weft_yield();
    }
    weft_chan_close(ch);
    return NULL;
}

static void test_large(void)
{
    for (size_t cap = 0; cap <= 4; cap += 4) {
        weft_chan *ch;
        CHECK_EQ(weft_chan_create(&ch, sizeof(struct big), cap), 0);
        weft_task t;
        CHECK_EQ(weft_spawn(&t, big_producer, ch), 0);
        static struct big b;
        uint32_t n = 0;
        bool ok = true;
        int r;
        while ((r = weft_chan_recv(ch, &b)) == 0) {
            if (!big_ok(&b, n))
                ok = false;
            n++;
            if (n % 5 == 0)
                weft_sleep(WEFT_USEC(100));
        }
        CHECK_EQ(r, WEFT_ECLOSED);
        CHECK(ok);
        CHECK_EQ(n, BIG_N);
        CHECK_EQ(weft_join(t, NULL), 0);
        weft_chan_unref(ch);
    }
}

/* ------------------------------------------------------------------------------------------
 * Deadlines. */

static void test_deadlines(void)
{
    weft_chan *ch0, *ch1;
    CHECK_EQ(weft_chan_create(&ch0, sizeof(int), 0), 0);
    CHECK_EQ(weft_chan_create(&ch1, sizeof(int), 1), 0);
    int v = 1;
    int64_t durations[] = {WEFT_MSEC(1), WEFT_MSEC(15), WEFT_MSEC(30)};
    for (int i = 0; i < 3; i++) {
        int64_t d = durations[i];
        int64_t t0 = weft_now();
        CHECK_EQ(weft_chan_recv_until(ch0, &v, t0 + d), WEFT_ETIMEDOUT);
        int64_t el = weft_now() - t0;
        CHECK_GE(el, d);
        CHECK_LT(el, d + LATE_NS);

        t0 = weft_now();
        CHECK_EQ(weft_chan_send_until(ch0, &v, t0 + d), WEFT_ETIMEDOUT);
        el = weft_now() - t0;
        CHECK_GE(el, d);
        CHECK_LT(el, d + LATE_NS);
        /* the timed-out sender's element is not delivered to a later receiver */
        CHECK_EQ(weft_chan_try_recv(ch0, &v), WEFT_EAGAIN);

        /* buffered: empty recv and full send time out */
        t0 = weft_now();
        CHECK_EQ(weft_chan_recv_until(ch1, &v, t0 + d), WEFT_ETIMEDOUT);
        CHECK_GE(weft_now() - t0, d);
        v = 50 + i;
        CHECK_EQ(weft_chan_send_until(ch1, &v, t0 + d), 0); /* free slot: immediate */
        int w = 99;
        t0 = weft_now();
        CHECK_EQ(weft_chan_send_until(ch1, &w, t0 + d), WEFT_ETIMEDOUT);
        CHECK_GE(weft_now() - t0, d);
        CHECK_EQ(weft_chan_len(ch1), 1);
        CHECK_EQ(weft_chan_recv_until(ch1, &w, t0 + d), 0);
        CHECK_EQ(w, 50 + i); /* the timed-out element never entered */
    }
    /* Under simulation time is virtual: deadlines of seconds and minutes end exactly on
     * time (weft_now() moves only to the next timer) and take no real time. */
    if (test_sim_seed()) {
        int64_t longs[] = {WEFT_SEC(5), WEFT_SEC(90)};
        for (int i = 0; i < 2; i++) {
            int64_t t0 = weft_now();
            CHECK_EQ(weft_chan_recv_until(ch0, &v, t0 + longs[i]), WEFT_ETIMEDOUT);
            CHECK_EQ(weft_now() - t0, longs[i]);
            t0 = weft_now();
            CHECK_EQ(weft_chan_send_until(ch0, &v, t0 + longs[i]), WEFT_ETIMEDOUT);
            CHECK_EQ(weft_now() - t0, longs[i]);
            t0 = weft_now();
            CHECK_EQ(weft_chan_recv_until(ch1, &v, t0 + longs[i]), WEFT_ETIMEDOUT);
            CHECK_EQ(weft_now() - t0, longs[i]);
        }
    }
    /* A deadline already past: ready operations still complete; others time out at once. */
    int64_t past = weft_now() - WEFT_MSEC(10);
    CHECK_EQ(weft_chan_recv_until(ch0, &v, past), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_chan_send_until(ch0, &v, past), WEFT_ETIMEDOUT);
    v = 7;
    CHECK_EQ(weft_chan_send_until(ch1, &v, past), 0);
    CHECK_EQ(weft_chan_send_until(ch1, &v, past), WEFT_ETIMEDOUT);
    v = 0;
    CHECK_EQ(weft_chan_recv_until(ch1, &v, past), 0);
    CHECK_EQ(v, 7);
    CHECK_EQ(weft_chan_recv_until(ch1, &v, 0), WEFT_ETIMEDOUT);

    /* A receive with a deadline completed by a sender before it. */
    struct rv s = {.ch = ch0, .value = 31};
    weft_task t;
    CHECK_EQ(weft_spawn(&t, rv_send_late, &s), 0); /* sends after 20 ms */
    v = 0;
    CHECK_EQ(weft_chan_recv_until(ch0, &v, weft_after(WEFT_SEC(10))), 0);
    CHECK_EQ(v, 31);
    CHECK_EQ(weft_join(t, NULL), 0);
    weft_chan_unref(ch0);
    weft_chan_unref(ch1);
}

/* ------------------------------------------------------------------------------------------
 * Reference counting. */

static void *ref_user(void *arg)
{
    weft_chan *ch = arg; /* owns one reference */
    int v;
    weft_sleep(WEFT_MSEC(10));
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(weft_chan_recv(ch, &v), 0);
        ASSERT_EQ(v, i);
    }
    weft_chan_unref(ch);
    return NULL;
}

static void test_refs(void)
{
    weft_chan *ch;
    CHECK_EQ(weft_chan_create(&ch, sizeof(int), 4), 0);
    weft_chan_ref(ch);
    weft_chan_ref(ch);
    weft_chan_unref(ch);
    weft_chan_unref(ch);
    int v = 8;
    CHECK_EQ(weft_chan_send(ch, &v), 0); /* still alive (ASan would catch a free) */
    CHECK_EQ(weft_chan_recv(ch, &v), 0);
    CHECK_EQ(v, 8);

    /* A coroutine's reference keeps it alive after the creator dropped its own. */
    weft_chan_ref(ch);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_chan_send(ch, &i), 0);
    weft_task t;
    CHECK_EQ(weft_spawn(&t, ref_user, ch), 0);
    weft_chan_unref(ch);
    CHECK_EQ(weft_join(t, NULL), 0);
}

/* ------------------------------------------------------------------------------------------
 * Multi-producer / multi-consumer stress. */

#define MP_P 6
#define MP_C 6
struct msg {
    int id;
    int seq;
};
static weft_chan *mp_ch;
static long mp_k;
static _Atomic unsigned char *mp_seen; /* [MP_P * mp_k] */
static _Atomic long mp_order_errors;
static uint64_t mp_digest; /* the order each consumer saw, folded (the main coroutine's) */

static void *mp_producer(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int s = 0; s < mp_k; s++) {
        struct msg m = {id, s};
        ASSERT_EQ(weft_chan_send(mp_ch, &m), 0);
        if ((s & 63) == id)
            weft_yield();
    }
    return NULL;
}

static void *mp_consumer(void *arg)
{
    uint64_t *order = arg; /* this consumer's own: what it received, in order */
    int last[MP_P];
    for (int i = 0; i < MP_P; i++)
        last[i] = -1;
    long n = 0;
    struct msg m;
    int r;
    while ((r = weft_chan_recv(mp_ch, &m)) == 0) {
        ASSERT(m.id >= 0 && m.id < MP_P && m.seq >= 0 && m.seq < mp_k);
        if (m.seq <= last[m.id])
            atomic_fetch_add(&mp_order_errors, 1);
        last[m.id] = m.seq;
        atomic_fetch_add(&mp_seen[(long)m.id * mp_k + m.seq], 1);
        *order = test_mix(*order, (uint64_t)m.id * (uint64_t)mp_k + (uint64_t)m.seq);
        n++;
        if ((n & 31) == 0)
            weft_yield();
    }
    ASSERT_EQ(r, WEFT_ECLOSED);
    return (void *)n;
}

static void test_mpmc(void)
{
    mp_k = ops_scaled(20000);
    mp_seen = calloc((size_t)(MP_P * mp_k), sizeof *mp_seen);
    ASSERT(mp_seen);
    size_t caps[] = {0, 16};
    for (int ci = 0; ci < 2; ci++) {
        memset((void *)mp_seen, 0, (size_t)(MP_P * mp_k));
        atomic_store(&mp_order_errors, 0);
        CHECK_EQ(weft_chan_create(&mp_ch, sizeof(struct msg), caps[ci]), 0);
        weft_task prod[MP_P], cons[MP_C];
        uint64_t order[MP_C] = {0};
        for (int i = 0; i < MP_C; i++)
            CHECK_EQ(weft_spawn(&cons[i], mp_consumer, &order[i]), 0);
        for (int i = 0; i < MP_P; i++)
            CHECK_EQ(weft_spawn(&prod[i], mp_producer, (void *)(intptr_t)i), 0);
        for (int i = 0; i < MP_P; i++)
            CHECK_EQ(weft_join(prod[i], NULL), 0);
        CHECK_EQ(weft_chan_close(mp_ch), 0);
        long total = 0;
        for (int i = 0; i < MP_C; i++) {
            void *r;
            CHECK_EQ(weft_join(cons[i], &r), 0);
            total += (long)r;
            mp_digest = test_mix(mp_digest, order[i]);
        }
        CHECK_EQ(total, MP_P * mp_k);
        long bad = 0;
        for (long i = 0; i < MP_P * mp_k; i++)
            if (atomic_load(&mp_seen[i]) != 1)
                bad++;
        CHECK_EQ(bad, 0);
        CHECK_EQ(atomic_load(&mp_order_errors), 0);
        weft_chan_unref(mp_ch);
    }
    free((void *)mp_seen);
}

/* ------------------------------------------------------------------------------------------
 * The buffered channels' lock-free ring (chan.c): many senders and receivers, coroutines and
 * plain threads on both ends, every kind of operation (blocking, with a deadline, try,
 * select), checked for exactly-once delivery, per-sender FIFO and totals; close racing with
 * lock-free sends; full/empty transitions with deadlines and plain threads. */

#define RG_S 8 /* senders: even ones plain threads, odd ones coroutines */
#define RG_R 8 /* receivers: likewise */

/* An element: the message, then `payload` bytes derived from it (large elements keep a
 * party between its claim and its publish for a while: the ring's busy path). */
#define RG_PAYLOAD_MAX 8192
struct rg_elem {
    struct msg m;
    uint8_t payload[RG_PAYLOAD_MAX];
};

static uint8_t rg_byte(const struct msg *m, size_t i)
{
    return (uint8_t)(m->id * 131 + m->seq * 7 + i);
}

struct rg {
    weft_chan *ch;
    size_t payload;              /* bytes of payload per element */
    weft_chan *never;            /* nothing is ever sent on it: select's other case */
    long k;                      /* elements per sender at most */
    _Atomic unsigned char *seen; /* [RG_S * k] */
    _Atomic long sent[RG_S];     /* successful sends per sender */
    _Atomic long received;
    _Atomic long order_errors, range_errors, content_errors;
};

struct rg_party {
    struct rg *g;
    int id;
    pthread_t th;
};

/* Give the other side a chance: weft_yield in a coroutine, sched_yield on a plain thread. */
static void rg_pause(void)
{
    if (weft_yield() == WEFT_ENOTCORO)
        sched_yield();
}

/* One send (receive) of m in the party's style: blocking, with a short deadline (retried),
 * try (retried), or select against `never` with a short deadline (retried). Returns 0 or
 * WEFT_ECLOSED. */
static int rg_op(struct rg *g, int style, struct rg_elem *m, bool send)
{
    for (;;) {
        int r;
        switch (style) {
        case 0:
            r = send ? weft_chan_send(g->ch, m) : weft_chan_recv(g->ch, m);
            break;
        case 1: {
            int64_t dl = weft_after(WEFT_USEC(50));
            r = send ? weft_chan_send_until(g->ch, m, dl) : weft_chan_recv_until(g->ch, m, dl);
            break;
        }
        case 2:
            r = send ? weft_chan_try_send(g->ch, m) : weft_chan_try_recv(g->ch, m);
            if (r == WEFT_EAGAIN)
                rg_pause();
            break;
        default: {
            struct msg dummy;
            weft_case c[2] = {{g->never, WEFT_OP_RECV, &dummy, 0},
                              {g->ch, send ? WEFT_OP_SEND : WEFT_OP_RECV, m, 0}};
            r = weft_select(c, 2, weft_after(WEFT_USEC(50)));
            ASSERT(r == 1 || r == WEFT_ETIMEDOUT);
            if (r == 1)
                r = c[1].result;
            break;
        }
        }
        if (r == 0 || r == WEFT_ECLOSED)
            return r;
        ASSERT(r == WEFT_ETIMEDOUT || r == WEFT_EAGAIN);
    }
}

static void *rg_sender(void *arg)
{
    struct rg_party *p = arg;
    struct rg *g = p->g;
    int style = (p->id / 2) % 4; /* threads and coroutines each get every style */
    long s;
    for (s = 0; s < g->k; s++) {
        struct rg_elem e;
        e.m = (struct msg){p->id, (int)s};
        for (size_t i = 0; i < g->payload; i++)
            e.payload[i] = rg_byte(&e.m, i);
        if (rg_op(g, style, &e, true) == WEFT_ECLOSED)
            break;
        atomic_store(&g->sent[p->id], s + 1);
    }
    return NULL;
}

static void *rg_receiver(void *arg)
{
    struct rg_party *p = arg;
    struct rg *g = p->g;
    int style = (p->id / 2) % 4;
    int last[RG_S];
    for (int i = 0; i < RG_S; i++)
        last[i] = -1;
    struct rg_elem e;
    long n = 0;
    while (rg_op(g, style, &e, false) == 0) {
        struct msg m = e.m;
        if (m.id < 0 || m.id >= RG_S || m.seq < 0 || m.seq >= g->k) {
            atomic_fetch_add(&g->range_errors, 1);
            continue;
        }
        for (size_t i = 0; i < g->payload; i++)
            if (e.payload[i] != rg_byte(&m, i)) {
                atomic_fetch_add(&g->content_errors, 1);
                break;
            }
        if (m.seq <= last[m.id])
            atomic_fetch_add(&g->order_errors, 1);
        last[m.id] = m.seq;
        atomic_fetch_add(&g->seen[(long)m.id * g->k + m.seq], 1);
        atomic_fetch_add(&g->received, 1);
        if ((++n & 15) == 0)
            rg_pause();
    }
    return (void *)n;
}

/* Even parties are plain threads, except under simulation (a plain thread's calls are not
 * scheduled by it: they would arrive at whatever virtual time they are seen). */
static bool rg_thread(const struct rg_party *p)
{
    return p->id % 2 == 0 && !test_sim_seed();
}

static void rg_start(struct rg_party *p, void *(*fn)(void *), weft_task *t)
{
    if (rg_thread(p))
        ASSERT_EQ(pthread_create(&p->th, NULL, fn, p), 0);
    else
        ASSERT_EQ(weft_spawn(t, fn, p), 0);
}

/* Join a party; a plain thread is polled (weft_sleep between) rather than pthread_join'ed,
 * so this worker keeps running the coroutines the thread may be waiting for. */
static long rg_join(struct rg_party *p, weft_task t)
{
    void *r = NULL;
    if (rg_thread(p))
        WAIT_FOR(pthread_tryjoin_np(p->th, &r) == 0);
    else
        ASSERT_EQ(weft_join(t, &r), 0);
    return (long)r;
}

/* cap: the capacity; close_at < 0: close once every sender is done; else close as soon as
 * that many elements were received, while the senders are still going. */
static void rg_run(size_t cap, size_t payload, long k, long close_at)
{
    struct rg *g = calloc(1, sizeof *g);
    ASSERT(g);
    g->k = k;
    g->payload = payload;
    g->seen = calloc((size_t)(RG_S * k), 1);
    ASSERT(g->seen);
    CHECK_EQ(weft_chan_create(&g->ch, sizeof(struct msg) + payload, cap), 0);
    CHECK_EQ(weft_chan_create(&g->never, sizeof(struct msg), 1), 0);
    struct rg_party sp[RG_S], rp[RG_R];
    weft_task st[RG_S], rt[RG_R];
    for (int i = 0; i < RG_R; i++) {
        rp[i] = (struct rg_party){g, i, 0};
        rg_start(&rp[i], rg_receiver, &rt[i]);
    }
    for (int i = 0; i < RG_S; i++) {
        sp[i] = (struct rg_party){g, i, 0};
        rg_start(&sp[i], rg_sender, &st[i]);
    }
    if (close_at >= 0) {
        if (test_sim_seed()) /* virtual time stands still while a try-party spins: yield */
            while (atomic_load(&g->received) < close_at)
                weft_yield();
        else
            WAIT_FOR(atomic_load(&g->received) >= close_at);
        CHECK_EQ(weft_chan_close(g->ch), 0);
    }
    /* Senders end by themselves: all sent, or the close. */
    for (int i = 0; i < RG_S; i++)
        rg_join(&sp[i], st[i]);
    if (close_at < 0)
        CHECK_EQ(weft_chan_close(g->ch), 0);
    long total = 0;
    for (int i = 0; i < RG_R; i++)
        total += rg_join(&rp[i], rt[i]);
    CHECK_EQ(atomic_load(&g->range_errors), 0);
    CHECK_EQ(atomic_load(&g->order_errors), 0);
    CHECK_EQ(atomic_load(&g->content_errors), 0);
    /* Exactly what was sent arrived, once: each sender's successes are a prefix. */
    long want = 0, wrong = 0;
    for (int i = 0; i < RG_S; i++) {
        long n = atomic_load(&g->sent[i]);
        if (close_at < 0)
            CHECK_EQ(n, k);
        want += n;
        for (long s = 0; s < k; s++)
            if (atomic_load(&g->seen[(long)i * k + s]) != (s < n))
                wrong++;
    }
    CHECK_EQ(wrong, 0);
    CHECK_EQ(total, want);
    CHECK_EQ(atomic_load(&g->received), want);
    /* After the close and the drain, both ends say closed. */
    static struct rg_elem e; /* large: not on this coroutine's stack */
    CHECK_EQ(weft_chan_try_recv(g->ch, &e), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_try_send(g->ch, &e), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_send(g->ch, &e), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_len(g->ch), 0);
    weft_chan_unref(g->ch);
    weft_chan_unref(g->never);
    free((void *)g->seen);
    free(g);
}

static void test_ring_stress(void)
{
    (void)test_sim_skip("test_chan: plain threads in the ring stress and close race (those "
                        "parties run as coroutines)",
                        "plain threads' calls are not scheduled by the simulation");
    long k = ops_scaled(4000);
    size_t caps[] = {1, 3, 64};
    for (int i = 0; i < 3; i++)
        rg_run(caps[i], 0, k, -1);
    /* Large elements: copies long enough to be caught mid-way (the busy path). */
    rg_run(2, RG_PAYLOAD_MAX, k / 8, -1);
    rg_run(16, RG_PAYLOAD_MAX, k / 8, -1);
}

static void test_ring_close_race(void)
{
    long k = ops_scaled(20000);
    size_t caps[] = {1, 7, 64};
    for (int i = 0; i < 3; i++)
        for (int rep = 0; rep < 3; rep++) /* close early, midway, late */
            rg_run(caps[i], rep == 1 ? 1024 : 0, k, (long)RG_S * k * (rep + 1) / 8);
}

/* A plain thread: a blocking send into a full channel, then a send whose deadline expires
 * on the full channel (99 must never arrive). */
static void *ring_thread_sender(void *arg)
{
    weft_chan *ch = arg;
    int v = 3;
    ASSERT_EQ(weft_chan_send(ch, &v), 0);
    v = 99;
    ASSERT_EQ(weft_chan_send_until(ch, &v, weft_after(WEFT_MSEC(5))), WEFT_ETIMEDOUT);
    return NULL;
}

static _Atomic int ring_rx_stage;
static void *ring_thread_receiver(void *arg)
{
    weft_chan *ch = arg;
    int v = -1;
    ASSERT_EQ(weft_chan_recv_until(ch, &v, weft_after(WEFT_MSEC(5))), WEFT_ETIMEDOUT);
    ASSERT_EQ(v, -1);
    atomic_store(&ring_rx_stage, 1);
    ASSERT_EQ(weft_chan_recv(ch, &v), 0); /* blocks until the coroutine's send */
    return (void *)(intptr_t)v;
}

/* The full channel of test_ring_transitions (1 and 2 buffered) with plain threads on the
 * other end; it leaves the channel empty. */
static void ring_thread_parties(weft_chan *ch)
{
    int v;
    /* A plain thread blocks on the full channel; a receive lets its element in, after
     * which the channel is full again and its next send (99) times out. */
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, ring_thread_sender, ch), 0);
    CHECK_EQ(weft_chan_recv(ch, &v), 0);
    CHECK_EQ(v, 1);
    WAIT_FOR(pthread_tryjoin_np(th, NULL) == 0);
    CHECK_EQ(weft_chan_len(ch), 2);
    for (int want = 2; want <= 3; want++) {
        CHECK_EQ(weft_chan_recv(ch, &v), 0);
        CHECK_EQ(v, want);
    }
    /* The thread's timed-out 99 never entered: the channel is empty. */
    CHECK_EQ(weft_chan_try_recv(ch, &v), WEFT_EAGAIN);
    CHECK_EQ(weft_chan_len(ch), 0);

    /* A plain thread receives: its deadline on the empty channel, then a blocking receive
     * served by this coroutine's send. */
    void *got;
    atomic_store(&ring_rx_stage, 0);
    CHECK_EQ(pthread_create(&th, NULL, ring_thread_receiver, ch), 0);
    WAIT_FOR(atomic_load(&ring_rx_stage) == 1);
    v = 42;
    CHECK_EQ(weft_chan_send(ch, &v), 0);
    WAIT_FOR(pthread_tryjoin_np(th, &got) == 0);
    CHECK_EQ((intptr_t)got, 42);
}

static void test_ring_transitions(void)
{
    weft_chan *ch;
    CHECK_EQ(weft_chan_create(&ch, sizeof(int), 2), 0);
    int v = 0;
    /* Empty: the deadline expires, nothing is made up. */
    CHECK_EQ(weft_chan_recv_until(ch, &v, weft_after(WEFT_MSEC(1))), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_chan_try_recv(ch, &v), WEFT_EAGAIN);
    /* Full: the deadline expires, the element is not taken. */
    for (v = 1; v <= 2; v++)
        CHECK_EQ(weft_chan_send_until(ch, &v, weft_after(WEFT_MSEC(1))), 0);
    v = 77;
    CHECK_EQ(weft_chan_send_until(ch, &v, weft_after(WEFT_MSEC(1))), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_chan_len(ch), 2);
    if (!test_sim_skip("test_chan: plain threads on the ring's full and empty transitions",
                       "plain threads' calls are not scheduled by the simulation")) {
        ring_thread_parties(ch);
    } else { /* the coroutine drains it instead */
        for (int want = 1; want <= 2; want++) {
            CHECK_EQ(weft_chan_recv(ch, &v), 0);
            CHECK_EQ(v, want);
        }
        CHECK_EQ(weft_chan_try_recv(ch, &v), WEFT_EAGAIN);
    }

    /* Close with elements buffered: sends fail at once, receives drain, then closed. */
    for (v = 10; v <= 20; v += 10)
        CHECK_EQ(weft_chan_try_send(ch, &v), 0);
    CHECK_EQ(weft_chan_close(ch), 0);
    CHECK_EQ(weft_chan_send(ch, &v), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_try_send(ch, &v), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_send_until(ch, &v, weft_after(WEFT_MSEC(1))), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_recv(ch, &v), 0);
    CHECK_EQ(v, 10);
    CHECK_EQ(weft_chan_recv_until(ch, &v, weft_after(WEFT_MSEC(1))), 0);
    CHECK_EQ(v, 20);
    CHECK_EQ(weft_chan_recv(ch, &v), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_try_recv(ch, &v), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_recv_until(ch, &v, weft_after(WEFT_MSEC(1))), WEFT_ECLOSED);
    weft_chan_unref(ch);
}

static int app(void *arg)
{
    (void)arg;
    int64_t t0 = weft_now();
    mp_digest = 0;
    test_rendezvous();
    test_buffered();
    test_close();
    test_args();
    test_recv_discard();
    test_zero_size();
    test_large();
    test_deadlines();
    test_refs();
    test_mpmc();
    test_ring_transitions();
    test_ring_stress();
    test_ring_close_race();
    test_sim_fingerprint("test_chan", t0, mp_digest);
    return 0;
}

int main(void)
{
    int threads[] = {0, 1, 2};
    for (int i = 0; i < 3; i++) {
        weft_config cfg = {.threads = threads[i]};
        ASSERT_EQ(weft_run(app, NULL, &cfg), 0);
    }
    TEST_PASS("test_chan", checks);
    return 0;
}
