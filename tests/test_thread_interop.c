/* SPDX-License-Identifier: MIT */
/* test_thread_interop.c — plain OS threads and coroutines together: channels in both
 * directions (rendezvous and buffered), threads blocked in send/recv woken by close,
 * thread-side deadlines (also racing with hand-offs), spawning and joining coroutines from
 * a plain thread, thread-side select, and a mixed producer/consumer stress. */
#include "harness.h"
#include <weft.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

static _Atomic long checks;

#define LATE_NS WEFT_SEC(2)

/* A plain thread whose end a coroutine can wait for without blocking its worker. */
struct thr {
    pthread_t th;
    void *(*fn)(void *);
    void *arg;
    void *ret;
    weft_wg wg;
};
static void *thr_main(void *p)
{
    struct thr *t = p;
    t->ret = t->fn(t->arg);
    ASSERT_EQ(weft_wg_done(&t->wg), 0);
    return NULL;
}
static void thr_start(struct thr *t, void *(*fn)(void *), void *arg)
{
    t->fn = fn;
    t->arg = arg;
    t->ret = NULL;
    ASSERT_EQ(weft_wg_init(&t->wg), 0);
    ASSERT_EQ(weft_wg_add(&t->wg, 1), 0);
    ASSERT_EQ(pthread_create(&t->th, NULL, thr_main, t), 0);
}
static void *thr_join(struct thr *t)
{
    ASSERT_EQ(weft_wg_wait(&t->wg), 0);
    ASSERT_EQ(pthread_join(t->th, NULL), 0);
    return t->ret;
}

/* ------------------------------------------------------------------------------------------
 * Channels between a thread and a coroutine. */

struct stream {
    weft_chan *ch;
    long n;
};

static void *send_seq(void *arg) /* 1..n, then close */
{
    struct stream *s = arg;
    for (long i = 1; i <= s->n; i++)
        ASSERT_EQ(weft_chan_send(s->ch, &i), 0);
    ASSERT_EQ(weft_chan_close(s->ch), 0);
    return NULL;
}

static void *recv_seq(void *arg) /* returns the number of order errors + missing */
{
    struct stream *s = arg;
    long v, expect = 1, bad = 0;
    int r;
    while ((r = weft_chan_recv(s->ch, &v)) == 0) {
        if (v != expect)
            bad++;
        expect = v + 1;
    }
    if (r != WEFT_ECLOSED || expect != s->n + 1)
        bad++;
    return (void *)bad;
}

struct pingpong {
    weft_chan *ping, *pong;
    long n;
};
static void *thread_pinger(void *arg)
{
    struct pingpong *p = arg;
    long bad = 0, v;
    for (long i = 1; i <= p->n; i++) {
        ASSERT_EQ(weft_chan_send(p->ping, &i), 0);
        if (weft_chan_recv(p->pong, &v) != 0 || v != -i)
            bad++;
    }
    ASSERT_EQ(weft_chan_close(p->ping), 0);
    return (void *)bad;
}

static void test_streams(void)
{
    long n = ops_scaled(5000);
    size_t caps[] = {0, 8};
    for (int ci = 0; ci < 2; ci++) {
        /* thread -> coroutine */
        struct stream s = {.n = n};
        ASSERT_EQ(weft_chan_create(&s.ch, sizeof(long), caps[ci]), 0);
        struct thr th;
        thr_start(&th, send_seq, &s);
        CHECK_EQ((long)recv_seq(&s), 0);
        thr_join(&th);
        weft_chan_unref(s.ch);

        /* coroutine -> thread */
        ASSERT_EQ(weft_chan_create(&s.ch, sizeof(long), caps[ci]), 0);
        thr_start(&th, recv_seq, &s);
        weft_task t;
        CHECK_EQ(weft_spawn(&t, send_seq, &s), 0);
        CHECK_EQ(weft_join(t, NULL), 0);
        CHECK_EQ((long)thr_join(&th), 0);
        weft_chan_unref(s.ch);
    }

    /* ping-pong: every exchange wakes the other side */
    struct pingpong pp = {.n = ops_scaled(2000)};
    ASSERT_EQ(weft_chan_create(&pp.ping, sizeof(long), 0), 0);
    ASSERT_EQ(weft_chan_create(&pp.pong, sizeof(long), 0), 0);
    struct thr th;
    thr_start(&th, thread_pinger, &pp);
    long v, got = 0;
    while (weft_chan_recv(pp.ping, &v) == 0) {
        v = -v;
        ASSERT_EQ(weft_chan_send(pp.pong, &v), 0);
        got++;
    }
    CHECK_EQ(got, pp.n);
    CHECK_EQ((long)thr_join(&th), 0);
    weft_chan_unref(pp.ping);
    weft_chan_unref(pp.pong);
}

/* ------------------------------------------------------------------------------------------
 * A thread blocked in send/recv, woken by close; thread-side deadlines. */

struct blocked {
    weft_chan *ch;
    int send;
    _Atomic int stage;
    int r;
};
static void *thread_block(void *arg)
{
    struct blocked *b = arg;
    long v = 5;
    atomic_store(&b->stage, 1);
    b->r = b->send ? weft_chan_send(b->ch, &v) : weft_chan_recv(b->ch, &v);
    atomic_store(&b->stage, 2);
    return NULL;
}

static void *thread_deadlines(void *arg)
{
    weft_chan **chs = arg; /* [0] cap 0, [1] cap 1 and full */
    long bad = 0, v = 1;
    int64_t ds[] = {WEFT_MSEC(1), WEFT_MSEC(20)};
    for (int i = 0; i < 2; i++) {
        int64_t t0 = weft_now();
        if (weft_chan_recv_until(chs[0], &v, t0 + ds[i]) != WEFT_ETIMEDOUT)
            bad++;
        int64_t el = weft_now() - t0;
        if (el < ds[i] || el > ds[i] + LATE_NS)
            bad++;
        t0 = weft_now();
        if (weft_chan_send_until(chs[1], &v, t0 + ds[i]) != WEFT_ETIMEDOUT)
            bad++;
        el = weft_now() - t0;
        if (el < ds[i] || el > ds[i] + LATE_NS)
            bad++;
        t0 = weft_now();
        if (weft_chan_send_until(chs[0], &v, t0 + ds[i]) != WEFT_ETIMEDOUT)
            bad++;
        if (weft_now() - t0 < ds[i])
            bad++;
    }
    if (weft_chan_recv_until(chs[0], &v, weft_now() - 1) != WEFT_ETIMEDOUT)
        bad++;
    if (weft_chan_try_recv(chs[0], &v) != WEFT_EAGAIN)
        bad++;
    /* thread-side sanity */
    if (weft_yield() != WEFT_ENOTCORO || weft_self().id != 0 || weft_self_id() != 0 ||
        weft_worker_index() != -1 || weft_cancelled() != 0)
        bad++;
    return (void *)bad;
}

static void test_thread_blocking(void)
{
    for (int send = 0; send <= 1; send++) {
        for (size_t cap = 0; cap <= 1; cap++) {
            struct blocked b = {.send = send};
            ASSERT_EQ(weft_chan_create(&b.ch, sizeof(long), cap), 0);
            if (send && cap) {
                long v = 1;
                ASSERT_EQ(weft_chan_send(b.ch, &v), 0); /* full */
            }
            struct thr th;
            thr_start(&th, thread_block, &b);
            WAIT_FOR(atomic_load(&b.stage) >= 1);
            weft_sleep(WEFT_MSEC(10));
            CHECK_EQ(atomic_load(&b.stage), 1);
            CHECK_EQ(weft_chan_close(b.ch), 0);
            thr_join(&th);
            CHECK_EQ(b.r, WEFT_ECLOSED);
            weft_chan_unref(b.ch);
        }
    }
    /* and a thread blocked in recv is woken by a coroutine's send */
    struct blocked b = {.send = 0};
    ASSERT_EQ(weft_chan_create(&b.ch, sizeof(long), 0), 0);
    struct thr th;
    thr_start(&th, thread_block, &b);
    WAIT_FOR(atomic_load(&b.stage) >= 1);
    long v = 3;
    CHECK_EQ(weft_chan_send(b.ch, &v), 0);
    thr_join(&th);
    CHECK_EQ(b.r, 0);
    weft_chan_unref(b.ch);

    weft_chan *chs[2];
    ASSERT_EQ(weft_chan_create(&chs[0], sizeof(long), 0), 0);
    ASSERT_EQ(weft_chan_create(&chs[1], sizeof(long), 1), 0);
    ASSERT_EQ(weft_chan_send(chs[1], &v), 0);
    thr_start(&th, thread_deadlines, chs);
    CHECK_EQ((long)thr_join(&th), 0);
    weft_chan_unref(chs[0]);
    weft_chan_unref(chs[1]);
}

/* Thread-side timeouts racing with hand-offs: the thread receives with tiny deadlines
 * while a coroutine sends; nothing is lost, duplicated or reordered. */
static void *thread_recv_tiny(void *arg)
{
    struct stream *s = arg;
    long v, expect = 1, bad = 0, timeouts = 0;
    for (;;) {
        int r = weft_chan_recv_until(s->ch, &v, weft_after(WEFT_USEC(20)));
        if (r == WEFT_ETIMEDOUT) {
            timeouts++;
            continue;
        }
        if (r == WEFT_ECLOSED)
            break;
        if (r != 0 || v != expect)
            bad++;
        expect = v + 1;
    }
    if (expect != s->n + 1)
        bad++;
    return (void *)bad;
}

static void *thread_select_tiny(void *arg)
{
    struct stream *s = arg; /* s[0], s[1]: two streams */
    long v, expect[2] = {1, 1}, bad = 0;
    weft_chan *never;
    ASSERT_EQ(weft_chan_create(&never, sizeof(long), 0), 0);
    weft_case cs[3] = {{s[0].ch, WEFT_OP_RECV, &v, 0},
                       {s[1].ch, WEFT_OP_RECV, &v, 0},
                       {never, WEFT_OP_RECV, &v, 0}};
    int open = 2;
    while (open) {
        int r = weft_select(cs, 3, weft_after(WEFT_USEC(20)));
        if (r == WEFT_ETIMEDOUT)
            continue;
        if (r != 0 && r != 1) {
            bad++;
            break;
        }
        if (cs[r].result == WEFT_ECLOSED) {
            cs[r] = (weft_case){NULL, WEFT_OP_NONE, NULL, 0};
            open--;
            continue;
        }
        if (v != expect[r])
            bad++;
        expect[r] = v + 1;
    }
    if (expect[0] != s[0].n + 1 || expect[1] != s[1].n + 1)
        bad++;
    weft_chan_unref(never);
    return (void *)bad;
}

static void *send_seq_slow(void *arg)
{
    struct stream *s = arg;
    for (long i = 1; i <= s->n; i++) {
        ASSERT_EQ(weft_chan_send(s->ch, &i), 0);
        if (i % 16 == 0)
            weft_sleep(WEFT_USEC(i % 50));
    }
    ASSERT_EQ(weft_chan_close(s->ch), 0);
    return NULL;
}

static void test_thread_timeout_races(void)
{
    for (size_t cap = 0; cap <= 2; cap += 2) {
        struct stream s = {.n = ops_scaled(3000)};
        ASSERT_EQ(weft_chan_create(&s.ch, sizeof(long), cap), 0);
        struct thr th;
        thr_start(&th, thread_recv_tiny, &s);
        weft_task t;
        CHECK_EQ(weft_spawn(&t, send_seq_slow, &s), 0);
        CHECK_EQ(weft_join(t, NULL), 0);
        CHECK_EQ((long)thr_join(&th), 0);
        weft_chan_unref(s.ch);

        struct stream ss[2] = {{.n = ops_scaled(3000)}, {.n = ops_scaled(2000)}};
        ASSERT_EQ(weft_chan_create(&ss[0].ch, sizeof(long), cap), 0);
        ASSERT_EQ(weft_chan_create(&ss[1].ch, sizeof(long), 0), 0);
        thr_start(&th, thread_select_tiny, ss);
        weft_task t2;
        CHECK_EQ(weft_spawn(&t, send_seq_slow, &ss[0]), 0);
        CHECK_EQ(weft_spawn(&t2, send_seq_slow, &ss[1]), 0);
        CHECK_EQ(weft_join(t, NULL), 0);
        CHECK_EQ(weft_join(t2, NULL), 0);
        CHECK_EQ((long)thr_join(&th), 0);
        weft_chan_unref(ss[0].ch);
        weft_chan_unref(ss[1].ch);
    }
}

/* ------------------------------------------------------------------------------------------
 * Spawning and joining coroutines from a plain thread. */

static void *nap_and_return(void *arg)
{
    weft_sleep(WEFT_MSEC(20));
    return arg;
}

static void *wait_on_chan(void *arg)
{
    long v = 0;
    weft_chan_recv(arg, &v);
    return (void *)v;
}

static void *thread_spawner(void *arg)
{
    weft_chan *gate = arg;
    long bad = 0;
    /* spawn + join (the thread blocks until the coroutine returns) */
    weft_task t;
    int64_t t0 = weft_now();
    if (weft_spawn(&t, nap_and_return, (void *)11) != 0 || t.id == 0)
        bad++;
    void *r = NULL;
    if (weft_join(t, &r) != 0 || (intptr_t)r != 11 || weft_now() - t0 < WEFT_MSEC(20))
        bad++;
    if (weft_join(t, &r) != WEFT_ESTATE) /* already joined */
        bad++;
    /* many at once, some with options */
    enum { N = 100 };
    weft_task ts[N];
    for (int i = 0; i < N; i++) {
        weft_spawn_opts o = {.name = "from-thread", .stack_size = (i & 1) ? 128 * 1024 : 0};
        if (weft_spawn_ex(&ts[i], nap_and_return, (void *)(intptr_t)i, &o) != 0)
            bad++;
    }
    for (int i = 0; i < N; i++)
        if (weft_join(ts[i], &r) != 0 || (intptr_t)r != i)
            bad++;
    /* detached from a thread */
    if (weft_spawn(NULL, nap_and_return, NULL) != 0)
        bad++;
    /* join_until times out; the handle stays valid */
    if (weft_spawn(&t, wait_on_chan, gate) != 0)
        bad++;
    t0 = weft_now();
    if (weft_join_until(t, &r, t0 + WEFT_MSEC(20)) != WEFT_ETIMEDOUT)
        bad++;
    int64_t el = weft_now() - t0;
    if (el < WEFT_MSEC(20) || el > WEFT_MSEC(20) + LATE_NS)
        bad++;
    if (weft_join_until(t, &r, weft_now() - 1) != WEFT_ETIMEDOUT)
        bad++;
    long v = 99;
    if (weft_chan_send(gate, &v) != 0) /* thread -> coroutine */
        bad++;
    if (weft_join_until(t, &r, weft_after(WEFT_SEC(10))) != 0 || (intptr_t)r != 99)
        bad++;
    /* cancel a coroutine from the thread and join it */
    if (weft_spawn(&t, wait_on_chan, gate) != 0)
        bad++;
    if (weft_cancel(t) != 0 || weft_join(t, &r) != 0 || (intptr_t)r != 0)
        bad++;
    return (void *)bad;
}

static void test_thread_spawn_join(void)
{
    weft_chan *gate;
    ASSERT_EQ(weft_chan_create(&gate, sizeof(long), 0), 0);
    struct thr th;
    thr_start(&th, thread_spawner, gate);
    CHECK_EQ((long)thr_join(&th), 0);
    weft_chan_unref(gate);
}

/* ------------------------------------------------------------------------------------------
 * Thread-side select. */

static void *thread_select(void *arg)
{
    struct stream *s = arg; /* s[0] (cap 0) and s[1] (cap 4), fed by coroutines */
    long v, expect[2] = {1, 1}, bad = 0, n[2] = {0, 0};
    weft_case cs[2] = {{s[0].ch, WEFT_OP_RECV, &v, 0}, {s[1].ch, WEFT_OP_RECV, &v, 0}};
    int open = 2;
    while (open) {
        int r = weft_select(cs, 2, WEFT_FOREVER);
        if (r != 0 && r != 1) {
            bad++;
            break;
        }
        if (cs[r].result == WEFT_ECLOSED) {
            cs[r] = (weft_case){NULL, WEFT_OP_NONE, NULL, 0};
            open--;
            continue;
        }
        if (v != expect[r])
            bad++;
        expect[r] = v + 1;
        n[r]++;
    }
    if (n[0] != s[0].n || n[1] != s[1].n)
        bad++;
    /* default and deadline on a thread */
    weft_chan *e;
    ASSERT_EQ(weft_chan_create(&e, sizeof(long), 0), 0);
    weft_case ec[1] = {{e, WEFT_OP_RECV, &v, 0}};
    if (weft_select(ec, 1, 0) != WEFT_EAGAIN)
        bad++;
    int64_t t0 = weft_now();
    if (weft_select(ec, 1, t0 + WEFT_MSEC(10)) != WEFT_ETIMEDOUT || weft_now() - t0 < WEFT_MSEC(10))
        bad++;
    weft_chan_unref(e);
    /* a select send from the thread, received by a coroutine */
    v = 4242;
    weft_case sc[2] = {{s[2].ch, WEFT_OP_SEND, &v, 0}, {NULL, WEFT_OP_NONE, NULL, 0}};
    if (weft_select(sc, 2, WEFT_FOREVER) != 0 || sc[0].result != 0)
        bad++;
    return (void *)bad;
}

static void test_thread_select(void)
{
    struct stream s[3] = {{.n = ops_scaled(5000)}, {.n = ops_scaled(7000)}, {.n = 0}};
    ASSERT_EQ(weft_chan_create(&s[0].ch, sizeof(long), 0), 0);
    ASSERT_EQ(weft_chan_create(&s[1].ch, sizeof(long), 4), 0);
    ASSERT_EQ(weft_chan_create(&s[2].ch, sizeof(long), 0), 0);
    struct thr th;
    thr_start(&th, thread_select, s);
    weft_task a, b;
    CHECK_EQ(weft_spawn(&a, send_seq, &s[0]), 0);
    CHECK_EQ(weft_spawn(&b, send_seq, &s[1]), 0);
    long v = 0;
    CHECK_EQ(weft_chan_recv(s[2].ch, &v), 0);
    CHECK_EQ(v, 4242);
    CHECK_EQ(weft_join(a, NULL), 0);
    CHECK_EQ(weft_join(b, NULL), 0);
    CHECK_EQ((long)thr_join(&th), 0);
    for (int i = 0; i < 3; i++)
        weft_chan_unref(s[i].ch);
}

/* ------------------------------------------------------------------------------------------
 * Mixed producers and consumers: threads and coroutines on both ends. */

#define MX_P 4 /* producers: even ids threads, odd ids coroutines */
#define MX_C 4 /* consumers: likewise */
static weft_chan *mx_ch;
static long mx_k;
static _Atomic unsigned char *mx_seen;

static void *mx_producer(void *arg)
{
    long id = (long)(intptr_t)arg;
    for (long s = 0; s < mx_k; s++) {
        long m = id * mx_k + s;
        ASSERT_EQ(weft_chan_send(mx_ch, &m), 0);
    }
    return NULL;
}

static void *mx_consumer(void *arg)
{
    (void)arg;
    long m, n = 0, last[MX_P], bad = 0;
    for (int i = 0; i < MX_P; i++)
        last[i] = -1;
    while (weft_chan_recv(mx_ch, &m) == 0) {
        ASSERT(m >= 0 && m < MX_P * mx_k);
        long id = m / mx_k, seq = m % mx_k;
        if (seq <= last[id])
            bad++;
        last[id] = seq;
        atomic_fetch_add(&mx_seen[m], 1);
        n++;
    }
    return (void *)(bad * 1000000000L + n);
}

static void test_mixed(void)
{
    mx_k = ops_scaled(5000);
    mx_seen = calloc((size_t)(MX_P * mx_k), 1);
    ASSERT(mx_seen);
    size_t caps[] = {0, 4};
    for (int ci = 0; ci < 2; ci++) {
        memset((void *)mx_seen, 0, (size_t)(MX_P * mx_k));
        ASSERT_EQ(weft_chan_create(&mx_ch, sizeof(long), caps[ci]), 0);
        struct thr pth[MX_P], cth[MX_C];
        weft_task pt[MX_P], ct[MX_C];
        for (int i = 0; i < MX_C; i++) {
            if (i % 2 == 0)
                thr_start(&cth[i], mx_consumer, NULL);
            else
                CHECK_EQ(weft_spawn(&ct[i], mx_consumer, NULL), 0);
        }
        for (int i = 0; i < MX_P; i++) {
            if (i % 2 == 0)
                thr_start(&pth[i], mx_producer, (void *)(intptr_t)i);
            else
                CHECK_EQ(weft_spawn(&pt[i], mx_producer, (void *)(intptr_t)i), 0);
        }
        for (int i = 0; i < MX_P; i++) {
            if (i % 2 == 0)
                thr_join(&pth[i]);
            else
                CHECK_EQ(weft_join(pt[i], NULL), 0);
        }
        CHECK_EQ(weft_chan_close(mx_ch), 0);
        long total = 0, bad = 0;
        for (int i = 0; i < MX_C; i++) {
            void *r;
            if (i % 2 == 0)
                r = thr_join(&cth[i]);
            else
                CHECK_EQ(weft_join(ct[i], &r), 0);
            total += (long)r % 1000000000L;
            bad += (long)r / 1000000000L;
        }
        CHECK_EQ(bad, 0);
        CHECK_EQ(total, MX_P * mx_k);
        long wrong = 0;
        for (long i = 0; i < MX_P * mx_k; i++)
            if (atomic_load(&mx_seen[i]) != 1)
                wrong++;
        CHECK_EQ(wrong, 0);
        weft_chan_unref(mx_ch);
    }
    free((void *)mx_seen);
}

static int app(void *arg)
{
    (void)arg;
    test_streams();
    test_thread_blocking();
    test_thread_timeout_races();
    test_thread_spawn_join();
    test_thread_select();
    test_mixed();
    return 0;
}

int main(void)
{
    int threads[] = {0, 1, 2};
    for (int i = 0; i < 3; i++) {
        weft_config cfg = {.threads = threads[i]};
        ASSERT_EQ(weft_run(app, NULL, &cfg), 0);
    }
    TEST_PASS("test_thread_interop", checks);
    return 0;
}
