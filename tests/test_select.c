/* SPDX-License-Identifier: MIT */
/* test_select.c — weft_select: ready cases, uniform choice among several ready cases, the
 * default case, deadlines, blocking and being woken by any one case without disturbing the
 * others, send cases, closed channels, nil (WEFT_OP_NONE) cases, argument errors, a channel
 * in several cases, and a stress of many selectors over shared channels (nothing lost or
 * duplicated). */
#include "harness.h"
#include <weft.h>

#include <stdatomic.h>
#include <pthread.h>
#include <stdbool.h>

static _Atomic long checks;

#define LATE_NS WEFT_SEC(2)

static weft_chan *mk(size_t elem, size_t cap)
{
    weft_chan *ch;
    ASSERT_EQ(weft_chan_create(&ch, elem, cap), 0);
    return ch;
}

/* A coroutine that does one channel operation after a delay. */
struct op {
    weft_chan *ch;
    int send; /* 1 send, 0 recv */
    int64_t delay;
    int value;
    int r;
    _Atomic int done;
};

static void *do_op(void *arg)
{
    struct op *o = arg;
    if (o->delay)
        weft_sleep(o->delay);
    o->r = o->send ? weft_chan_send(o->ch, &o->value) : weft_chan_recv(o->ch, &o->value);
    atomic_store(&o->done, 1);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */

static void test_ready(void)
{
    weft_chan *a = mk(sizeof(int), 1), *b = mk(sizeof(int), 1);
    int va = -1, vb = -1;
    int x = 17;
    CHECK_EQ(weft_chan_send(b, &x), 0);
    weft_case cs[2] = {{a, WEFT_OP_RECV, &va, 99}, {b, WEFT_OP_RECV, &vb, 99}};
    CHECK_EQ(weft_select(cs, 2, WEFT_FOREVER), 1);
    CHECK_EQ(cs[1].result, 0);
    CHECK_EQ(vb, 17);
    CHECK_EQ(va, -1);
    CHECK_EQ(weft_chan_len(a), 0);
    CHECK_EQ(weft_chan_len(b), 0);

    /* the default case: nothing ready */
    CHECK_EQ(weft_select(cs, 2, 0), WEFT_EAGAIN);
    CHECK_EQ(va, -1);
    /* ... and with something ready, deadline 0 still completes it */
    x = 18;
    CHECK_EQ(weft_chan_send(a, &x), 0);
    CHECK_EQ(weft_select(cs, 2, 0), 0);
    CHECK_EQ(cs[0].result, 0);
    CHECK_EQ(va, 18);

    /* a send case into a buffer with room; a receive case on an empty one */
    int out = 55, in = -1;
    weft_case ss[2] = {{a, WEFT_OP_RECV, &in, 0}, {b, WEFT_OP_SEND, &out, 0}};
    CHECK_EQ(weft_select(ss, 2, WEFT_FOREVER), 1);
    CHECK_EQ(ss[1].result, 0);
    CHECK_EQ(weft_chan_len(b), 1);
    CHECK_EQ(weft_chan_recv(b, &in), 0);
    CHECK_EQ(in, 55);
    /* both full/empty the wrong way: default */
    CHECK_EQ(weft_chan_send(b, &out), 0);
    CHECK_EQ(weft_select(ss, 2, 0), WEFT_EAGAIN);
    CHECK_EQ(weft_chan_len(b), 1);
    CHECK_EQ(weft_chan_recv(b, &in), 0);

    /* a send case to a receiver already waiting on a rendezvous channel */
    weft_chan *z = mk(sizeof(int), 0);
    struct op o = {.ch = z, .send = 0, .value = -1};
    weft_task t;
    CHECK_EQ(weft_spawn(&t, do_op, &o), 0);
    out = 66;
    weft_case zs[2] = {{a, WEFT_OP_RECV, &in, 0}, {z, WEFT_OP_SEND, &out, 0}};
    CHECK_EQ(weft_select(zs, 2, WEFT_FOREVER), 1);
    CHECK_EQ(zs[1].result, 0);
    CHECK_EQ(weft_join(t, NULL), 0);
    CHECK_EQ(o.r, 0);
    CHECK_EQ(o.value, 66);
    /* and a receive case from a sender already waiting */
    o = (struct op){.ch = z, .send = 1, .value = 67};
    CHECK_EQ(weft_spawn(&t, do_op, &o), 0);
    weft_sleep(WEFT_MSEC(5));
    in = -1;
    weft_case zr[2] = {{a, WEFT_OP_RECV, &in, 0}, {z, WEFT_OP_RECV, &in, 0}};
    CHECK_EQ(weft_select(zr, 2, WEFT_FOREVER), 1);
    CHECK_EQ(in, 67);
    CHECK_EQ(weft_join(t, NULL), 0);
    CHECK_EQ(o.r, 0);

    weft_chan_unref(a);
    weft_chan_unref(b);
    weft_chan_unref(z);
}

/* ------------------------------------------------------------------------------------------ */

static void test_fairness(void)
{
    enum { ROUNDS = 10000 };
    weft_chan *a = mk(sizeof(int), 1), *b = mk(sizeof(int), 1);
    int x = 1, v;
    weft_chan_send(a, &x);
    weft_chan_send(b, &x);
    weft_case cs[2] = {{a, WEFT_OP_RECV, &v, 0}, {b, WEFT_OP_RECV, &v, 0}};
    long count[2] = {0, 0};
    bool ok = true;
    for (int i = 0; i < ROUNDS; i++) {
        int r = weft_select(cs, 2, WEFT_FOREVER);
        if (r != 0 && r != 1) {
            ok = false;
            break;
        }
        count[r]++;
        if (weft_chan_send(cs[r].ch, &x) != 0)
            ok = false;
        if (i % 1000 == 0)
            weft_yield(); /* change workers now and then */
    }
    CHECK(ok);
    CHECK_GE(count[0], ROUNDS * 40 / 100);
    CHECK_LE(count[0], ROUNDS * 60 / 100);
    CHECK_GE(count[1], ROUNDS * 40 / 100);

    /* Three ready cases, one of them a send: each about a third. */
    weft_chan *c = mk(sizeof(int), 1);
    weft_case c3[3] = {
        {a, WEFT_OP_RECV, &v, 0}, {b, WEFT_OP_RECV, &v, 0}, {c, WEFT_OP_SEND, &x, 0}};
    long cnt3[3] = {0, 0, 0};
    for (int i = 0; i < ROUNDS; i++) {
        int r = weft_select(c3, 3, 0);
        ASSERT(r >= 0 && r < 3);
        cnt3[r]++;
        if (r == 2)
            ASSERT_EQ(weft_chan_recv(c, &v), 0);
        else
            ASSERT_EQ(weft_chan_send(c3[r].ch, &x), 0);
    }
    for (int i = 0; i < 3; i++) {
        CHECK_GE(cnt3[i], ROUNDS * 25 / 100);
        CHECK_LE(cnt3[i], ROUNDS * 42 / 100);
    }
    weft_chan_unref(a);
    weft_chan_unref(b);
    weft_chan_unref(c);
}

/* ------------------------------------------------------------------------------------------ */

static void test_deadline(void)
{
    weft_chan *a = mk(sizeof(int), 0), *b = mk(sizeof(int), 1);
    int v, x = 3;
    CHECK_EQ(weft_chan_send(b, &x), 0); /* b is full: its send case cannot proceed */
    weft_case cs[2] = {{a, WEFT_OP_RECV, &v, 0}, {b, WEFT_OP_SEND, &x, 0}};
    int64_t ds[] = {WEFT_MSEC(1), WEFT_MSEC(20)};
    for (int i = 0; i < 2; i++) {
        int64_t t0 = weft_now();
        CHECK_EQ(weft_select(cs, 2, t0 + ds[i]), WEFT_ETIMEDOUT);
        int64_t el = weft_now() - t0;
        CHECK_GE(el, ds[i]);
        CHECK_LT(el, ds[i] + LATE_NS);
    }
    /* the timed-out select left nothing behind: a's queue has no stale receiver, and b
     * still holds exactly its one element */
    CHECK_EQ(weft_chan_try_send(a, &x), WEFT_EAGAIN);
    CHECK_EQ(weft_chan_len(b), 1);
    CHECK_EQ(weft_chan_recv(b, &v), 0);
    CHECK_EQ(v, 3);
    CHECK_EQ(weft_chan_try_recv(b, &v), WEFT_EAGAIN);
    /* a deadline in the past (not 0): WEFT_ETIMEDOUT at once when nothing is ready */
    weft_case r1[1] = {{a, WEFT_OP_RECV, &v, 0}};
    CHECK_EQ(weft_select(r1, 1, weft_now() - WEFT_MSEC(1)), WEFT_ETIMEDOUT);
    /* ... but a ready case still completes */
    x = 4;
    CHECK_EQ(weft_chan_send(b, &x), 0);
    weft_case r2[1] = {{b, WEFT_OP_RECV, &v, 0}};
    CHECK_EQ(weft_select(r2, 1, weft_now() - WEFT_MSEC(1)), 0);
    CHECK_EQ(v, 4);
    /* only nil cases with a deadline: a plain timed wait */
    weft_case nil[2] = {{NULL, WEFT_OP_NONE, NULL, 0}, {NULL, WEFT_OP_NONE, NULL, 0}};
    CHECK_EQ(weft_select(nil, 2, 0), WEFT_EAGAIN);
    int64_t t0 = weft_now();
    CHECK_EQ(weft_select(nil, 2, t0 + WEFT_MSEC(10)), WEFT_ETIMEDOUT);
    CHECK_GE(weft_now() - t0, WEFT_MSEC(10));
    weft_chan_unref(a);
    weft_chan_unref(b);
}

/* Only nil cases and no deadline: Go's `select {}` parks until cancelled (it used to return
 * WEFT_EINVAL at once, unlike the same select with a finite deadline). */
static void *select_nothing(void *arg)
{
    (void)arg;
    weft_case nil[2] = {{NULL, WEFT_OP_NONE, NULL, 0}, {NULL, WEFT_OP_NONE, NULL, 0}};
    return (void *)(intptr_t)weft_select(nil, 2, WEFT_FOREVER);
}

static void *select_nothing_thread(void *arg)
{
    return select_nothing(arg);
}

static void test_nil_forever(void)
{
    weft_task t;
    CHECK_EQ(weft_spawn(&t, select_nothing, NULL), 0);
    /* still parked after a while (it can only return by a wake-up, not by timing) */
    CHECK_EQ(weft_join_until(t, NULL, weft_after(WEFT_MSEC(20))), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_cancel(t), 0);
    void *r = NULL;
    CHECK_EQ(weft_join(t, &r), 0);
    CHECK_EQ((intptr_t)r, WEFT_ECANCELED);
    /* a plain thread: nothing could ever wake it */
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, select_nothing_thread, NULL), 0);
    ASSERT_EQ(pthread_join(th, &r), 0);
    CHECK_EQ((intptr_t)r, WEFT_EINVAL);
}

/* ------------------------------------------------------------------------------------------
 * Blocked select woken by one case; the other channel keeps its values. */

static void test_wake_one(void)
{
    for (size_t cap = 0; cap <= 1; cap++) {
        for (int which = 0; which < 2; which++) {
            weft_chan *ch[2] = {mk(sizeof(int), cap), mk(sizeof(int), cap)};
            int got = -1;
            weft_case cs[2] = {{ch[0], WEFT_OP_RECV, &got, 0}, {ch[1], WEFT_OP_RECV, &got, 0}};
            struct op o = {
                .ch = ch[which], .send = 1, .delay = WEFT_MSEC(10), .value = 100 + which};
            weft_task t;
            int64_t t0 = weft_now();
            CHECK_EQ(weft_spawn(&t, do_op, &o), 0);
            CHECK_EQ(weft_select(cs, 2, WEFT_FOREVER), which);
            CHECK_GE(weft_now() - t0, WEFT_MSEC(10));
            CHECK_EQ(cs[which].result, 0);
            CHECK_EQ(got, 100 + which);
            CHECK_EQ(weft_join(t, NULL), 0);
            CHECK_EQ(o.r, 0);
            /* The other channel: not consumed from, no stale waiter: a sender and a receiver
             * meet normally (the sender must block on cap 0 until our receive). */
            weft_chan *other = ch[1 - which];
            int x = 7;
            if (cap == 0)
                CHECK_EQ(weft_chan_try_send(other, &x), WEFT_EAGAIN);
            o = (struct op){.ch = other, .send = 1, .value = 200};
            CHECK_EQ(weft_spawn(&t, do_op, &o), 0);
            int v = -1;
            CHECK_EQ(weft_chan_recv(other, &v), 0);
            CHECK_EQ(v, 200);
            CHECK_EQ(weft_join(t, NULL), 0);
            CHECK_EQ(weft_chan_try_recv(other, &v), WEFT_EAGAIN);
            weft_chan_unref(ch[0]);
            weft_chan_unref(ch[1]);
        }
    }

    /* Race: two senders, one on each channel, at the same time; the select takes exactly
     * one value; the other sender stays blocked (cap 0) and its value is received later. */
    int rounds = (int)ops_scaled(2000);
    bool ok = true;
    weft_chan *a = mk(sizeof(int), 0), *b = mk(sizeof(int), 0);
    for (int i = 0; i < rounds && ok; i++) {
        struct op oa = {.ch = a, .send = 1, .value = 2 * i};
        struct op ob = {.ch = b, .send = 1, .value = 2 * i + 1};
        weft_task ta, tb;
        ASSERT_EQ(weft_spawn(&ta, do_op, &oa), 0);
        ASSERT_EQ(weft_spawn(&tb, do_op, &ob), 0);
        int got = -1;
        weft_case cs[2] = {{a, WEFT_OP_RECV, &got, 0}, {b, WEFT_OP_RECV, &got, 0}};
        int r = weft_select(cs, 2, WEFT_FOREVER);
        if (r != 0 && r != 1) {
            ok = false;
            break;
        }
        if (got != 2 * i + r)
            ok = false;
        weft_chan *rest = r == 0 ? b : a;
        int got2 = -1;
        if (weft_chan_recv(rest, &got2) != 0 || got2 != 2 * i + (1 - r))
            ok = false;
        ASSERT_EQ(weft_join(ta, NULL), 0);
        ASSERT_EQ(weft_join(tb, NULL), 0);
        if (oa.r != 0 || ob.r != 0)
            ok = false;
        if (weft_chan_try_recv(a, &got2) != WEFT_EAGAIN ||
            weft_chan_try_recv(b, &got2) != WEFT_EAGAIN)
            ok = false;
    }
    CHECK(ok);
    weft_chan_unref(a);
    weft_chan_unref(b);
}

/* ------------------------------------------------------------------------------------------
 * Blocked send cases. */

static void test_send_blocked(void)
{
    /* A select blocked sending into a full buffer: a receiver frees a slot, the select's
     * element moves into the buffer. */
    weft_chan *full = mk(sizeof(int), 1), *none = mk(sizeof(int), 0);
    int x = 1, v;
    CHECK_EQ(weft_chan_send(full, &x), 0);
    struct op o = {.ch = full, .send = 0, .delay = WEFT_MSEC(10)};
    weft_task t;
    CHECK_EQ(weft_spawn(&t, do_op, &o), 0);
    int out = 2;
    weft_case cs[2] = {{none, WEFT_OP_RECV, &v, 0}, {full, WEFT_OP_SEND, &out, 0}};
    CHECK_EQ(weft_select(cs, 2, WEFT_FOREVER), 1);
    CHECK_EQ(cs[1].result, 0);
    CHECK_EQ(weft_join(t, NULL), 0);
    CHECK_EQ(o.value, 1);
    CHECK_EQ(weft_chan_len(full), 1);
    CHECK_EQ(weft_chan_recv(full, &v), 0);
    CHECK_EQ(v, 2);

    /* A select blocked sending on a rendezvous channel: a late receiver takes it. */
    weft_chan *z = mk(sizeof(int), 0);
    o = (struct op){.ch = z, .send = 0, .delay = WEFT_MSEC(10), .value = -1};
    CHECK_EQ(weft_spawn(&t, do_op, &o), 0);
    out = 3;
    weft_case zs[2] = {{none, WEFT_OP_RECV, &v, 0}, {z, WEFT_OP_SEND, &out, 0}};
    CHECK_EQ(weft_select(zs, 2, WEFT_FOREVER), 1);
    CHECK_EQ(weft_join(t, NULL), 0);
    CHECK_EQ(o.r, 0);
    CHECK_EQ(o.value, 3);
    /* the out element was copied: changing it now changes nothing */
    out = 4;
    CHECK_EQ(weft_chan_try_recv(z, &v), WEFT_EAGAIN);
    weft_chan_unref(full);
    weft_chan_unref(none);
    weft_chan_unref(z);
}

/* ------------------------------------------------------------------------------------------
 * Closed channels, nil cases, invalid arguments, duplicates. */

static void *close_later(void *arg)
{
    weft_sleep(WEFT_MSEC(10));
    ASSERT_EQ(weft_chan_close(arg), 0);
    return NULL;
}

static void test_closed(void)
{
    weft_chan *a = mk(sizeof(int), 0), *c = mk(sizeof(int), 2);
    int v = -1, x = 9;
    CHECK_EQ(weft_chan_close(c), 0);
    weft_case cs[2] = {{a, WEFT_OP_RECV, &v, 0}, {c, WEFT_OP_RECV, &v, 0}};
    CHECK_EQ(weft_select(cs, 2, WEFT_FOREVER), 1);
    CHECK_EQ(cs[1].result, WEFT_ECLOSED);
    CHECK_EQ(v, -1);
    CHECK_EQ(weft_select(cs, 2, 0), 1); /* a closed channel is always ready */
    CHECK_EQ(cs[1].result, WEFT_ECLOSED);
    /* send to a closed channel completes with WEFT_ECLOSED and takes nothing */
    weft_case ss[2] = {{a, WEFT_OP_RECV, &v, 0}, {c, WEFT_OP_SEND, &x, 0}};
    CHECK_EQ(weft_select(ss, 2, WEFT_FOREVER), 1);
    CHECK_EQ(ss[1].result, WEFT_ECLOSED);
    CHECK_EQ(weft_chan_len(c), 0);
    weft_chan_unref(c);

    /* buffered values are still received after close, with result 0 */
    c = mk(sizeof(int), 2);
    x = 5;
    CHECK_EQ(weft_chan_send(c, &x), 0);
    CHECK_EQ(weft_chan_close(c), 0);
    weft_case ds[2] = {{a, WEFT_OP_RECV, &v, 0}, {c, WEFT_OP_RECV, &v, 0}};
    CHECK_EQ(weft_select(ds, 2, WEFT_FOREVER), 1);
    CHECK_EQ(ds[1].result, 0);
    CHECK_EQ(v, 5);
    CHECK_EQ(weft_select(ds, 2, WEFT_FOREVER), 1);
    CHECK_EQ(ds[1].result, WEFT_ECLOSED);
    weft_chan_unref(c);

    /* a blocked select woken by close: receive and send cases */
    for (int op = WEFT_OP_SEND; op <= WEFT_OP_RECV; op++) {
        weft_chan *b = mk(sizeof(int), 0);
        v = -1;
        weft_case bs[2] = {{a, WEFT_OP_RECV, &v, 0}, {b, op, op == WEFT_OP_SEND ? &x : &v, 0}};
        weft_task t;
        int64_t t0 = weft_now();
        CHECK_EQ(weft_spawn(&t, close_later, b), 0);
        CHECK_EQ(weft_select(bs, 2, WEFT_FOREVER), 1);
        CHECK_GE(weft_now() - t0, WEFT_MSEC(10));
        CHECK_EQ(bs[1].result, WEFT_ECLOSED);
        CHECK_EQ(bs[0].result, 0);
        CHECK_EQ(v, -1);
        CHECK_EQ(weft_join(t, NULL), 0);
        CHECK_EQ(weft_chan_recv(b, &v), WEFT_ECLOSED);
        weft_chan_unref(b);
    }
    weft_chan_unref(a);
}

static void test_nil_and_args(void)
{
    weft_chan *a = mk(sizeof(int), 1);
    int v = -1, x = 12;
    /* nil cases are ignored: the only real case is always chosen */
    weft_case cs[3] = {
        {NULL, WEFT_OP_NONE, NULL, 0}, {a, WEFT_OP_RECV, &v, 0}, {NULL, WEFT_OP_NONE, &v, 0}};
    bool ok = true;
    for (int i = 0; i < 50; i++) {
        x = i;
        ASSERT_EQ(weft_chan_send(a, &x), 0);
        if (weft_select(cs, 3, WEFT_FOREVER) != 1 || v != i || cs[1].result != 0)
            ok = false;
    }
    CHECK(ok);
    /* a nil case never completes: with a real case that is not ready, default */
    CHECK_EQ(weft_select(cs, 3, 0), WEFT_EAGAIN);
    /* a non-NULL channel with op NONE is ignored too */
    x = 1;
    CHECK_EQ(weft_chan_send(a, &x), 0);
    weft_case dis[2] = {{a, WEFT_OP_NONE, &v, 0}, {NULL, WEFT_OP_NONE, NULL, 0}};
    CHECK_EQ(weft_select(dis, 2, 0), WEFT_EAGAIN);
    CHECK_EQ(weft_chan_len(a), 1);
    CHECK_EQ(weft_chan_recv(a, &v), 0);

    /* invalid arguments */
    weft_case big[WEFT_SELECT_MAX + 1];
    for (int i = 0; i <= WEFT_SELECT_MAX; i++)
        big[i] = (weft_case){a, WEFT_OP_RECV, &v, 0};
    CHECK_EQ(weft_select(big, 0, 0), WEFT_EINVAL);
    CHECK_EQ(weft_select(big, -1, 0), WEFT_EINVAL);
    CHECK_EQ(weft_select(big, WEFT_SELECT_MAX + 1, 0), WEFT_EINVAL);
    CHECK_EQ(weft_select(NULL, 1, 0), WEFT_EINVAL);
    weft_case bad1[2] = {{a, WEFT_OP_RECV, &v, 0}, {NULL, WEFT_OP_RECV, &v, 0}};
    CHECK_EQ(weft_select(bad1, 2, 0), WEFT_EINVAL);
    weft_case bad2[2] = {{NULL, WEFT_OP_SEND, &x, 0}, {a, WEFT_OP_RECV, &v, 0}};
    CHECK_EQ(weft_select(bad2, 2, 0), WEFT_EINVAL);
    weft_case bad3[1] = {{a, 7, &v, 0}};
    CHECK_EQ(weft_select(bad3, 1, 0), WEFT_EINVAL);
    weft_case bad4[1] = {{a, WEFT_OP_SEND, NULL, 0}};
    CHECK_EQ(weft_select(bad4, 1, 0), WEFT_EINVAL);
    /* an invalid select takes nothing even when another case is ready */
    x = 77;
    CHECK_EQ(weft_chan_send(a, &x), 0);
    CHECK_EQ(weft_select(bad1, 2, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_chan_len(a), 1);
    /* the maximum number of cases works: all on the same channel */
    v = -1;
    int r = weft_select(big, WEFT_SELECT_MAX, WEFT_FOREVER);
    CHECK(r >= 0 && r < WEFT_SELECT_MAX);
    CHECK_EQ(v, 77);
    CHECK_EQ(weft_chan_len(a), 0);
    weft_chan_unref(a);
}

/* The same channel in several cases. */
static void test_duplicates(void)
{
    /* two receive cases, one buffered value: taken once */
    weft_chan *a = mk(sizeof(int), 2);
    int v1 = -1, v2 = -1, x = 5;
    CHECK_EQ(weft_chan_send(a, &x), 0);
    weft_case cs[2] = {{a, WEFT_OP_RECV, &v1, 0}, {a, WEFT_OP_RECV, &v2, 0}};
    int r = weft_select(cs, 2, WEFT_FOREVER);
    CHECK(r == 0 || r == 1);
    CHECK_EQ(r == 0 ? v1 : v2, 5);
    CHECK_EQ(r == 0 ? v2 : v1, -1);
    CHECK_EQ(weft_chan_len(a), 0);
    weft_chan_unref(a);

    /* two receive cases blocked on a rendezvous channel: one sender wakes one case, and a
     * second sender then finds no stale receiver left behind */
    weft_chan *z = mk(sizeof(int), 0);
    struct op o = {.ch = z, .send = 1, .delay = WEFT_MSEC(5), .value = 21};
    weft_task t;
    CHECK_EQ(weft_spawn(&t, do_op, &o), 0);
    v1 = v2 = -1;
    weft_case zs[2] = {{z, WEFT_OP_RECV, &v1, 0}, {z, WEFT_OP_RECV, &v2, 0}};
    r = weft_select(zs, 2, WEFT_FOREVER);
    CHECK(r == 0 || r == 1);
    CHECK_EQ(r == 0 ? v1 : v2, 21);
    CHECK_EQ(r == 0 ? v2 : v1, -1);
    CHECK_EQ(weft_join(t, NULL), 0);
    CHECK_EQ(o.r, 0);
    CHECK_EQ(weft_chan_try_send(z, &x), WEFT_EAGAIN);

    /* a send and a receive case on the same rendezvous channel never meet each other */
    int out = 31, in = -1;
    weft_case sr[2] = {{z, WEFT_OP_SEND, &out, 0}, {z, WEFT_OP_RECV, &in, 0}};
    int64_t t0 = weft_now();
    CHECK_EQ(weft_select(sr, 2, t0 + WEFT_MSEC(10)), WEFT_ETIMEDOUT);
    CHECK_GE(weft_now() - t0, WEFT_MSEC(10));
    CHECK_EQ(in, -1);
    /* ... but a third party completes one of them */
    o = (struct op){.ch = z, .send = 0, .delay = WEFT_MSEC(5), .value = -1};
    CHECK_EQ(weft_spawn(&t, do_op, &o), 0);
    CHECK_EQ(weft_select(sr, 2, WEFT_FOREVER), 0);
    CHECK_EQ(weft_join(t, NULL), 0);
    CHECK_EQ(o.value, 31);
    o = (struct op){.ch = z, .send = 1, .delay = WEFT_MSEC(5), .value = 32};
    CHECK_EQ(weft_spawn(&t, do_op, &o), 0);
    CHECK_EQ(weft_select(sr, 2, WEFT_FOREVER), 1);
    CHECK_EQ(in, 32);
    CHECK_EQ(weft_join(t, NULL), 0);
    weft_chan_unref(z);
}

/* A receive case with a NULL element (discard). Accepting it is the implementation's
 * choice (the header does not say); if accepted it must work when the select blocks and a
 * sender hands its element over directly. */
/* Zero-size elements: NULL element pointers in both directions. */
static void *zero_sender(void *arg)
{
    weft_sleep(WEFT_MSEC(2));
    return (void *)(intptr_t)weft_chan_send(arg, NULL);
}

static void test_zero_size(void)
{
    weft_chan *sig = mk(0, 0), *buf = mk(0, 1);
    weft_case cs[2] = {{sig, WEFT_OP_RECV, NULL, 0}, {buf, WEFT_OP_SEND, NULL, 0}};
    CHECK_EQ(weft_select(cs, 2, WEFT_FOREVER), 1); /* room in buf */
    CHECK_EQ(weft_chan_len(buf), 1);
    CHECK_EQ(weft_select(cs, 2, 0), WEFT_EAGAIN);
    weft_task t;
    CHECK_EQ(weft_spawn(&t, zero_sender, sig), 0);
    CHECK_EQ(weft_select(cs, 2, WEFT_FOREVER), 0); /* blocked, woken by the signal */
    void *r;
    CHECK_EQ(weft_join(t, &r), 0);
    CHECK_EQ((intptr_t)r, 0);
    weft_case rc[1] = {{buf, WEFT_OP_RECV, NULL, 0}};
    CHECK_EQ(weft_select(rc, 1, 0), 0);
    CHECK_EQ(weft_chan_len(buf), 0);
    weft_chan_unref(sig);
    weft_chan_unref(buf);
}

static void test_recv_discard(void)
{
    weft_chan *z = mk(sizeof(int), 0), *b = mk(sizeof(int), 1);
    int x = 3;
    CHECK_EQ(weft_chan_send(b, &x), 0);
    weft_case c1[1] = {{b, WEFT_OP_RECV, NULL, 0}};
    CHECK_EQ(weft_select(c1, 1, WEFT_FOREVER), 0);
    CHECK_EQ(weft_chan_len(b), 0);
    struct op o = {.ch = z, .send = 1, .delay = WEFT_MSEC(5), .value = 4};
    weft_task t;
    CHECK_EQ(weft_spawn(&t, do_op, &o), 0);
    weft_case c2[1] = {{z, WEFT_OP_RECV, NULL, 0}};
    CHECK_EQ(weft_select(c2, 1, WEFT_FOREVER), 0);
    CHECK_EQ(weft_join(t, NULL), 0);
    CHECK_EQ(o.r, 0);
    weft_chan_unref(z);
    weft_chan_unref(b);
}

/* ------------------------------------------------------------------------------------------
 * Stress: selectors over shared channels. Producers send tagged messages on two input
 * channels (cap 0 and cap 8); selectors receive from both (dropping a closed one to a nil
 * case) and forward each message with a select send into an output channel (also offering
 * to receive from a never-ready channel); one collector counts. Every message exactly once. */

#define ST_P 4
#define ST_S 6
static weft_chan *st_in[2], *st_out, *st_never;
static long st_k;
static _Atomic unsigned char *st_seen;

static void *st_producer(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (long s = 0; s < st_k; s++) {
        long m = id * st_k + s;
        ASSERT_EQ(weft_chan_send(st_in[id & 1], &m), 0);
    }
    return NULL;
}

static void *st_selector(void *arg)
{
    (void)arg;
    long m, dummy;
    weft_case in[2] = {{st_in[0], WEFT_OP_RECV, &m, 0}, {st_in[1], WEFT_OP_RECV, &m, 0}};
    int open = 2;
    long n = 0;
    while (open) {
        int r = weft_select(in, 2, WEFT_FOREVER);
        ASSERT(r == 0 || r == 1);
        if (in[r].result == WEFT_ECLOSED) {
            in[r] = (weft_case){NULL, WEFT_OP_NONE, NULL, 0};
            open--;
            continue;
        }
        ASSERT_EQ(in[r].result, 0);
        weft_case out[2] = {{st_never, WEFT_OP_RECV, &dummy, 0}, {st_out, WEFT_OP_SEND, &m, 0}};
        ASSERT_EQ(weft_select(out, 2, WEFT_FOREVER), 1);
        ASSERT_EQ(out[1].result, 0);
        n++;
    }
    return (void *)n;
}

static void *st_collector(void *arg)
{
    (void)arg;
    long m, n = 0;
    while (weft_chan_recv(st_out, &m) == 0) {
        ASSERT(m >= 0 && m < ST_P * st_k);
        atomic_fetch_add(&st_seen[m], 1);
        n++;
    }
    return (void *)n;
}

static void test_stress(void)
{
    st_k = ops_scaled(20000);
    st_seen = calloc((size_t)(ST_P * st_k), 1);
    ASSERT(st_seen);
    st_in[0] = mk(sizeof(long), 0);
    st_in[1] = mk(sizeof(long), 8);
    st_out = mk(sizeof(long), 4);
    st_never = mk(sizeof(long), 0);
    weft_task p[ST_P], s[ST_S], c;
    CHECK_EQ(weft_spawn(&c, st_collector, NULL), 0);
    for (int i = 0; i < ST_S; i++)
        CHECK_EQ(weft_spawn(&s[i], st_selector, NULL), 0);
    for (int i = 0; i < ST_P; i++)
        CHECK_EQ(weft_spawn(&p[i], st_producer, (void *)(intptr_t)i), 0);
    for (int i = 0; i < ST_P; i++)
        CHECK_EQ(weft_join(p[i], NULL), 0);
    CHECK_EQ(weft_chan_close(st_in[0]), 0);
    CHECK_EQ(weft_chan_close(st_in[1]), 0);
    long forwarded = 0;
    for (int i = 0; i < ST_S; i++) {
        void *r;
        CHECK_EQ(weft_join(s[i], &r), 0);
        forwarded += (long)r;
    }
    CHECK_EQ(weft_chan_close(st_out), 0);
    void *r;
    CHECK_EQ(weft_join(c, &r), 0);
    CHECK_EQ(forwarded, ST_P * st_k);
    CHECK_EQ((long)r, ST_P * st_k);
    long bad = 0;
    for (long i = 0; i < ST_P * st_k; i++)
        if (atomic_load(&st_seen[i]) != 1)
            bad++;
    CHECK_EQ(bad, 0);
    free((void *)st_seen);
    weft_chan_unref(st_in[0]);
    weft_chan_unref(st_in[1]);
    weft_chan_unref(st_out);
    weft_chan_unref(st_never);
}

static int app(void *arg)
{
    (void)arg;
    int64_t t0 = weft_now();
    test_ready();
    test_fairness();
    test_deadline();
    test_wake_one();
    test_send_blocked();
    test_closed();
    test_nil_and_args();
    test_nil_forever();
    test_duplicates();
    test_stress();
    test_recv_discard();
    test_zero_size();
    test_sim_fingerprint("test_select", t0, 0);
    return 0;
}

int main(void)
{
    int threads[] = {0, 1, 2};
    for (int i = 0; i < 3; i++) {
        weft_config cfg = {.threads = threads[i]};
        ASSERT_EQ(weft_run(app, NULL, &cfg), 0);
    }
    TEST_PASS("test_select", checks);
    return 0;
}
