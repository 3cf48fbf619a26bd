/* SPDX-License-Identifier: MIT */
/* test_cancel.c — cancellation: every cancellation point returns WEFT_ECANCELED and leaves
 * its object consistent (nothing sent, received, locked or consumed on the cancelled party's
 * behalf); a request is sticky — made before the task blocks, it is reported by the first
 * call that has to wait, and by every cancellation point after that; weft_yield reports it
 * (a loop of yields is told); weft_cancelled() stays 1; stale handles get WEFT_ESTATE;
 * cancelling from a plain thread; a cancelled coroutine carries on in a shield; races
 * between cancellation and completion report the completion or the cancellation, and a
 * completion leaves the request pending. (test_shield.c: repeated reports of each kind of
 * point, and shields.)
 *
 * Under simulation ($WEFT_SEED: the ctest variants test_cancel_sim and test_cancel_seeds) the
 * coroutine scenarios run — cancellations of waits with deadlines of seconds among them — and
 * those with plain threads or the blocking pool are skipped (a line names each); the run ends
 * with a fingerprint line (harness.h) that a replay must reproduce. */
#include "harness.h"
#include <weft.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

static _Atomic long checks;

#define LATE_NS WEFT_SEC(2)

#define OUTSIDE_WHY "plain threads and the blocking pool are not scheduled by the simulation"
static uint64_t cancel_digest; /* the races' outcomes, folded (the main coroutine's) */

/* Wait (in a coroutine) for cond, set by a coroutine that spins on weft_yield. Under
 * simulation virtual time stands still while that one is runnable, so a sleep would never
 * end (weft.h "Deterministic simulation"): yield instead, and the seeded draw runs both. */
#define WAIT_FOR_SPINNER(cond)                                                                     \
    do {                                                                                           \
        if (test_sim_seed())                                                                       \
            while (!(cond))                                                                        \
                weft_yield();                                                                      \
        else                                                                                       \
            WAIT_FOR(cond);                                                                        \
    } while (0)

/* ------------------------------------------------------------------------------------------
 * Every cancellation point, each in a child blocked on it. */

enum kind {
    K_SLEEP,
    K_SLEEP_UNTIL,
    K_SEND,
    K_SEND_UNTIL,
    K_RECV,
    K_RECV_UNTIL,
    K_SELECT,
    K_SELECT_UNTIL,
    K_JOIN,
    K_JOIN_UNTIL,
    K_MUTEX,
    K_MUTEX_UNTIL,
    K_COND,
    K_COND_UNTIL,
    K_SEM,
    K_SEM_UNTIL,
    K_WG,
    K_WG_UNTIL,
    K_BLOCKING,
    K_COUNT
};
static const char *kind_name[K_COUNT] = {"sleep", "sleep_until", "send",    "send_until",
                                         "recv",  "recv_until",  "select",  "select_until",
                                         "join",  "join_until",  "mutex",   "mutex_until",
                                         "cond",  "cond_until",  "sem",     "sem_until",
                                         "wg",    "wg_until",    "blocking"};

static weft_chan *z0;                     /* rendezvous channel nobody else uses */
static weft_chan *full1;                  /* capacity 1, full */
static weft_mutex held = WEFT_MUTEX_INIT; /* held by the test's main coroutine */
static weft_mutex cm = WEFT_MUTEX_INIT;
static weft_cond cv = WEFT_COND_INIT;
static weft_sem sem0;
static weft_wg wg1;
static _Atomic int blocking_started, blocking_done;

static void *long_sleep(void *arg)
{
    (void)arg;
    weft_sleep(WEFT_SEC(10));
    return (void *)5;
}

static void *blocking_fn(void *arg)
{
    (void)arg;
    atomic_store(&blocking_started, 1);
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL); /* a plain blocking call on the pool thread */
    atomic_store(&blocking_done, 1);
    return (void *)77;
}

struct blk {
    enum kind kind;
    _Atomic int stage; /* 1: about to block, 2: returned */
    int r;
    int after; /* a follow-up check made by the child, 0 when fine */
    weft_task grandchild;
    void *result;
};

static void *blocker(void *arg)
{
    struct blk *b = arg;
    int v = 0;
    int64_t far = weft_after(WEFT_SEC(10));
    weft_case cs[2] = {{z0, WEFT_OP_RECV, &v, 0}, {full1, WEFT_OP_SEND, &v, 0}};
    if (b->kind == K_JOIN || b->kind == K_JOIN_UNTIL)
        ASSERT_EQ(weft_spawn(&b->grandchild, long_sleep, NULL), 0);
    if (b->kind == K_COND || b->kind == K_COND_UNTIL)
        ASSERT_EQ(weft_mutex_lock(&cm), 0);
    b->result = (void *)-1;
    atomic_store(&b->stage, 1);
    switch (b->kind) {
    case K_SLEEP:
        b->r = weft_sleep(WEFT_SEC(10));
        break;
    case K_SLEEP_UNTIL:
        b->r = weft_sleep_until(far);
        break;
    case K_SEND:
        b->r = weft_chan_send(z0, &v);
        break;
    case K_SEND_UNTIL:
        b->r = weft_chan_send_until(z0, &v, far);
        break;
    case K_RECV:
        b->r = weft_chan_recv(z0, &v);
        break;
    case K_RECV_UNTIL:
        b->r = weft_chan_recv_until(z0, &v, far);
        break;
    case K_SELECT:
        b->r = weft_select(cs, 2, WEFT_FOREVER);
        break;
    case K_SELECT_UNTIL:
        b->r = weft_select(cs, 2, far);
        break;
    case K_JOIN:
        b->r = weft_join(b->grandchild, &b->result);
        break;
    case K_JOIN_UNTIL:
        b->r = weft_join_until(b->grandchild, &b->result, far);
        break;
    case K_MUTEX:
        b->r = weft_mutex_lock(&held);
        break;
    case K_MUTEX_UNTIL:
        b->r = weft_mutex_lock_until(&held, far);
        break;
    case K_COND:
        b->r = weft_cond_wait(&cv, &cm);
        break;
    case K_COND_UNTIL:
        b->r = weft_cond_wait_until(&cv, &cm, far);
        break;
    case K_SEM:
        b->r = weft_sem_wait(&sem0);
        break;
    case K_SEM_UNTIL:
        b->r = weft_sem_wait_until(&sem0, far);
        break;
    case K_WG:
        b->r = weft_wg_wait(&wg1);
        break;
    case K_WG_UNTIL:
        b->r = weft_wg_wait_until(&wg1, far);
        break;
    case K_BLOCKING:
        b->r = weft_blocking(blocking_fn, NULL, &b->result);
        break;
    default:
        abort();
    }
    atomic_store(&b->stage, 2);
    /* the request is sticky: reporting it did not consume it */
    if (!weft_cancelled())
        b->after = 1;
    if (b->kind == K_COND || b->kind == K_COND_UNTIL) {
        /* a cancelled condition wait returns with the mutex held */
        if (weft_mutex_trylock(&cm) != WEFT_EAGAIN)
            b->after = 2;
        if (weft_mutex_unlock(&cm) != 0)
            b->after = 3;
    }
    /* blocking works normally in a shield, and the request is reported again after it */
    weft_shield_begin();
    if (weft_sleep(WEFT_USEC(100)) != 0)
        b->after = 4;
    weft_shield_end();
    if (weft_sleep_until(weft_after(WEFT_SEC(5))) != WEFT_ECANCELED)
        b->after = 5;
    return NULL;
}

static void test_points(void)
{
    ASSERT_EQ(weft_chan_create(&z0, sizeof(int), 0), 0);
    ASSERT_EQ(weft_chan_create(&full1, sizeof(int), 1), 0);
    int v = 1;
    ASSERT_EQ(weft_chan_send(full1, &v), 0);
    ASSERT_EQ(weft_mutex_lock(&held), 0);
    ASSERT_EQ(weft_sem_init(&sem0, 0), 0);
    ASSERT_EQ(weft_wg_init(&wg1), 0);
    ASSERT_EQ(weft_wg_add(&wg1, 1), 0);
    for (int k = 0; k < K_COUNT; k++) {
        if (k == K_BLOCKING &&
            test_sim_skip("test_cancel: cancelling a weft_blocking wait", OUTSIDE_WHY))
            continue;
        struct blk b = {.kind = (enum kind)k};
        weft_task t;
        atomic_store(&blocking_started, 0);
        atomic_store(&blocking_done, 0);
        CHECK_EQ(weft_spawn(&t, blocker, &b), 0);
        WAIT_FOR(atomic_load(&b.stage) >= 1);
        if (k == K_BLOCKING) /* cancelled once fn runs (a queued job is withdrawn instead) */
            WAIT_FOR(atomic_load(&blocking_started));
        weft_sleep(WEFT_MSEC(5)); /* let it park (cancelling earlier is fine too: sticky) */
        if (atomic_load(&b.stage) != 1)
            fprintf(stderr, "%s did not block\n", kind_name[k]);
        CHECK_EQ(atomic_load(&b.stage), 1);
        int64_t t0 = weft_now();
        CHECK_EQ(weft_cancel(t), 0);
        CHECK_EQ(weft_join(t, NULL), 0);
        CHECK_LT(weft_now() - t0, LATE_NS);
        if (b.r != WEFT_ECANCELED)
            fprintf(stderr, "%s returned %d\n", kind_name[k], b.r);
        CHECK_EQ(b.r, WEFT_ECANCELED);
        CHECK_EQ(b.after, 0);
        /* nothing happened on the cancelled party's behalf */
        switch (k) {
        case K_SEND:
        case K_SEND_UNTIL:
        case K_RECV:
        case K_RECV_UNTIL:
            CHECK_EQ(weft_chan_try_recv(z0, &v), WEFT_EAGAIN);
            CHECK_EQ(weft_chan_try_send(z0, &v), WEFT_EAGAIN);
            break;
        case K_SELECT:
        case K_SELECT_UNTIL:
            CHECK_EQ(weft_chan_len(full1), 1);
            CHECK_EQ(weft_chan_try_send(z0, &v), WEFT_EAGAIN);
            break;
        case K_JOIN:
        case K_JOIN_UNTIL: {
            /* the handle stays valid: it can still be cancelled and joined */
            CHECK_EQ(b.result, (void *)-1);
            CHECK_EQ(weft_cancel(b.grandchild), 0);
            void *r;
            CHECK_EQ(weft_join(b.grandchild, &r), 0);
            CHECK_EQ((intptr_t)r, 5);
            break;
        }
        case K_MUTEX:
        case K_MUTEX_UNTIL:
            /* not handed to the cancelled waiter: free after our unlock */
            CHECK_EQ(weft_mutex_unlock(&held), 0);
            CHECK_EQ(weft_mutex_trylock(&held), 0);
            break;
        case K_COND:
        case K_COND_UNTIL:
            CHECK_EQ(weft_mutex_trylock(&cm), 0);
            CHECK_EQ(weft_mutex_unlock(&cm), 0);
            break;
        case K_SEM:
        case K_SEM_UNTIL:
            CHECK_EQ(weft_sem_post(&sem0), 0);
            CHECK_EQ(weft_sem_trywait(&sem0), 0); /* the unit was not given away */
            CHECK_EQ(weft_sem_trywait(&sem0), WEFT_EAGAIN);
            break;
        case K_BLOCKING:
            /* the caller waited for fn to return; fn's result is still handed over */
            CHECK_EQ(atomic_load(&blocking_done), 1);
            CHECK_EQ((intptr_t)b.result, 77);
            {
                void *r = NULL;
                CHECK_EQ(weft_blocking(blocking_fn, NULL, &r), 0);
                CHECK_EQ((intptr_t)r, 77);
            }
            break;
        default:
            break;
        }
    }
    ASSERT_EQ(weft_mutex_unlock(&held), 0);
    ASSERT_EQ(weft_wg_done(&wg1), 0);
    weft_chan_unref(z0);
    weft_chan_unref(full1);
}

/* ------------------------------------------------------------------------------------------
 * Sticky: pending until a call that has to wait, then reported by every cancellation point. */

struct sticky {
    _Atomic int ready, go;
    int c1, c2, c3, c4, c5;
    int yield_reports, c0, r_self;
    int r_try, r_recv, r_lock, r_sleep1, r_sleep2, r_sleep3;
    int64_t el3;
};
static weft_chan *sticky_buf;
static weft_mutex sticky_m = WEFT_MUTEX_INIT;

static void *sticky_child(void *arg)
{
    struct sticky *s = arg;
    atomic_store(&s->ready, 1);
    /* weft_yield is a cancellation point: the request made while we spin here is reported
     * by every yield after it (go is set after the request). */
    while (!atomic_load(&s->go))
        weft_yield();
    for (int i = 0; i < 3; i++)
        s->yield_reports += weft_yield() == WEFT_ECANCELED;
    s->c0 = weft_cancelled();
    /* A second request of our own changes nothing; the calls that do not report it. */
    s->r_self = weft_cancel(weft_self());
    s->c1 = weft_cancelled();
    s->c2 = weft_cancelled(); /* asking does not consume */
    int v;
    s->r_try = weft_chan_try_recv(sticky_buf, &v); /* empty: EAGAIN, does not block */
    int x = 3;
    weft_chan_send(sticky_buf, &x);
    s->r_recv = weft_chan_recv(sticky_buf, &v); /* ready: completes, no report */
    s->r_lock = weft_mutex_lock(&sticky_m);     /* free: no report */
    weft_mutex_unlock(&sticky_m);
    s->c3 = weft_cancelled();
    s->r_sleep1 = weft_sleep(WEFT_SEC(10)); /* reports it at once */
    s->c4 = weft_cancelled();
    s->r_sleep2 = weft_sleep(WEFT_SEC(10)); /* and again */
    int64_t t0 = weft_now();
    weft_shield_begin();
    s->r_sleep3 = weft_sleep(WEFT_MSEC(10)); /* blocks normally in a shield */
    weft_shield_end();
    s->el3 = weft_now() - t0;
    s->c5 = weft_cancelled();
    return NULL;
}

static void *self_cancel(void *arg)
{
    int *out = arg;
    int v;
    weft_chan *z;
    ASSERT_EQ(weft_chan_create(&z, sizeof(int), 0), 0);
    out[0] = weft_cancel(weft_self());
    out[1] = weft_cancelled();
    out[2] = weft_cancel(weft_self()); /* twice: still one request */
    out[3] = weft_chan_recv(z, &v);
    out[4] = weft_cancelled();
    out[5] = weft_chan_recv_until(z, &v, weft_after(WEFT_SEC(5))); /* reported again */
    weft_chan_unref(z);
    return NULL;
}

static void test_sticky(void)
{
    CHECK_EQ(weft_cancelled(), 0);
    ASSERT_EQ(weft_chan_create(&sticky_buf, sizeof(int), 1), 0);
    struct sticky s = {0};
    weft_task t;
    CHECK_EQ(weft_spawn(&t, sticky_child, &s), 0);
    WAIT_FOR_SPINNER(atomic_load(&s.ready));
    CHECK_EQ(weft_cancel(t), 0); /* (two requests before one is observed: self_cancel) */
    atomic_store(&s.go, 1);
    CHECK_EQ(weft_join(t, NULL), 0);
    CHECK_EQ(s.yield_reports, 3);
    CHECK_EQ(s.c0, 1);
    CHECK_EQ(s.r_self, 0);
    CHECK_EQ(s.c1, 1);
    CHECK_EQ(s.c2, 1);
    CHECK_EQ(s.r_try, WEFT_EAGAIN);
    CHECK_EQ(s.r_recv, 0);
    CHECK_EQ(s.r_lock, 0);
    CHECK_EQ(s.c3, 1);
    CHECK_EQ(s.r_sleep1, WEFT_ECANCELED);
    CHECK_EQ(s.c4, 1);
    CHECK_EQ(s.r_sleep2, WEFT_ECANCELED);
    CHECK_EQ(s.r_sleep3, 0);
    CHECK_GE(s.el3, WEFT_MSEC(10));
    CHECK_EQ(s.c5, 1);
    weft_chan_unref(sticky_buf);

    int out[6];
    CHECK_EQ(weft_spawn(&t, self_cancel, out), 0);
    CHECK_EQ(weft_join(t, NULL), 0);
    CHECK_EQ(out[0], 0);
    CHECK_EQ(out[1], 1);
    CHECK_EQ(out[2], 0);
    CHECK_EQ(out[3], WEFT_ECANCELED);
    CHECK_EQ(out[4], 1);
    CHECK_EQ(out[5], WEFT_ECANCELED);
}

/* ------------------------------------------------------------------------------------------
 * A loop of weft_yield (a call that never has to wait) is told it was cancelled. */

static _Atomic long yield_rounds;

static void *yield_loop(void *arg)
{
    (void)arg;
    int64_t safety = weft_after(WEFT_SEC(20)); /* a failure ends the loop, never hangs */
    int r;
    while ((r = weft_yield()) == 0 && weft_now() < safety)
        atomic_fetch_add(&yield_rounds, 1);
    return (void *)(intptr_t)r;
}

static void test_yield_loop(void)
{
    weft_task t;
    void *r;
    atomic_store(&yield_rounds, 0);
    CHECK_EQ(weft_spawn(&t, yield_loop, NULL), 0);
    WAIT_FOR_SPINNER(atomic_load(&yield_rounds) > 0);
    CHECK_EQ(weft_cancel(t), 0);
    CHECK_EQ(weft_join(t, &r), 0);
    CHECK_EQ((intptr_t)r, WEFT_ECANCELED);
}

/* ------------------------------------------------------------------------------------------
 * Stale handles, plain threads, carrying on after a cancellation. */

static void *quick(void *arg)
{
    atomic_store((_Atomic int *)arg, 1);
    return (void *)9;
}

struct cleanup {
    weft_chan *in, *out;
    int r1, r2, r3, r4;
};
static void *cleanup_child(void *arg)
{
    struct cleanup *c = arg;
    int v;
    c->r1 = weft_chan_recv(c->in, &v); /* cancelled here */
    v = 123;
    weft_shield_begin();
    c->r2 = weft_chan_send(c->out, &v); /* then reports back normally, in a shield */
    c->r3 = weft_sleep(WEFT_MSEC(1));
    weft_shield_end();
    c->r4 = weft_sleep(WEFT_SEC(10)); /* reported again after the shield */
    return NULL;
}

static void *thread_cancel(void *arg)
{
    weft_task *t = arg;
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
    return (void *)(intptr_t)(weft_cancel(*t) * 10 + weft_cancelled());
}

static void *thread_blocking(void *arg)
{
    (void)arg;
    void *r = NULL;
    int rc = weft_blocking(blocking_fn, NULL, &r); /* a plain thread runs it inline */
    return (void *)(intptr_t)(rc == 0 && (intptr_t)r == 77 && atomic_load(&blocking_done));
}

static void test_handles_threads(void)
{
    _Atomic int ran = 0;
    weft_task t;
    /* finished but not joined: WEFT_ESTATE, and the result can still be joined */
    CHECK_EQ(weft_spawn(&t, quick, (void *)&ran), 0);
    WAIT_FOR(atomic_load(&ran));
    int r;
    int64_t dl = weft_now() + WEFT_SEC(5);
    while ((r = weft_cancel(t)) == 0 && weft_now() < dl)
        weft_sleep(WEFT_MSEC(1)); /* it may not have finished returning yet */
    CHECK_EQ(r, WEFT_ESTATE);
    void *res;
    CHECK_EQ(weft_join(t, &res), 0);
    CHECK_EQ((intptr_t)res, 9);
    /* joined */
    CHECK_EQ(weft_cancel(t), WEFT_ESTATE);
    CHECK_EQ(weft_cancel((weft_task){NULL, 0}), WEFT_ESTATE);

    if (test_sim_skip("test_cancel: cancelling from a plain thread, weft_blocking on one",
                      OUTSIDE_WHY))
        return;
    /* cancel from a plain thread; the cancelled coroutine carries on normally */
    struct cleanup c;
    ASSERT_EQ(weft_chan_create(&c.in, sizeof(int), 0), 0);
    ASSERT_EQ(weft_chan_create(&c.out, sizeof(int), 0), 0);
    CHECK_EQ(weft_spawn(&t, cleanup_child, &c), 0);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, thread_cancel, &t), 0);
    int v = 0;
    CHECK_EQ(weft_chan_recv(c.out, &v), 0); /* parks until the thread cancelled it */
    CHECK_EQ(v, 123);
    CHECK_EQ(weft_join(t, NULL), 0);
    CHECK_EQ(c.r1, WEFT_ECANCELED);
    CHECK_EQ(c.r2, 0);
    CHECK_EQ(c.r3, 0);
    CHECK_EQ(c.r4, WEFT_ECANCELED);
    void *tr;
    CHECK_EQ(pthread_join(th, &tr), 0); /* it has finished: it cancelled before we woke */
    CHECK_EQ((intptr_t)tr, 0);          /* weft_cancel 0, weft_cancelled() 0 on a thread */
    weft_chan_unref(c.in);
    weft_chan_unref(c.out);

    /* weft_blocking from a plain thread runs fn inline */
    atomic_store(&blocking_done, 0);
    CHECK_EQ(pthread_create(&th, NULL, thread_blocking, NULL), 0);
    WAIT_FOR(atomic_load(&blocking_done));
    CHECK_EQ(pthread_join(th, &tr), 0);
    CHECK_EQ((intptr_t)tr, 1);
}

/* ------------------------------------------------------------------------------------------
 * Races: cancellation against a completing hand-off or a firing timer. Exactly one of them
 * is reported, and nothing is lost. */

struct race {
    weft_chan *z;
    int value, r;
    int r1, r2;
    int64_t nap;
};

static void *race_recv(void *arg)
{
    struct race *x = arg;
    x->value = -1;
    x->r = weft_chan_recv(x->z, &x->value);
    return NULL;
}
static void *race_send(void *arg)
{
    struct race *x = arg;
    return (void *)(intptr_t)weft_chan_send(x->z, &x->value);
}
static void *race_sleep(void *arg)
{
    struct race *x = arg;
    x->r1 = weft_sleep(x->nap);
    /* whichever won, the request is pending: the next sleep reports it */
    x->r2 = weft_sleep(WEFT_SEC(10));
    return NULL;
}

static void test_races(void)
{
    int rounds = (int)ops_scaled(2000);
    long got_by_child = 0, got_by_main = 0, bad = 0;
    for (int i = 0; i < rounds; i++) {
        struct race rx = {0}, sx = {0};
        ASSERT_EQ(weft_chan_create(&rx.z, sizeof(int), 0), 0);
        sx.z = rx.z;
        sx.value = i;
        weft_task rt, st;
        ASSERT_EQ(weft_spawn(&rt, race_recv, &rx), 0);
        if (i & 1)
            weft_yield();
        ASSERT_EQ(weft_spawn(&st, race_send, &sx), 0);
        if (i & 2)
            weft_yield();
        int cr = weft_cancel(rt); /* WEFT_ESTATE if it already got the value and ended */
        ASSERT(cr == 0 || cr == WEFT_ESTATE);
        ASSERT_EQ(weft_join(rt, NULL), 0);
        if (cr == WEFT_ESTATE && rx.r != 0)
            bad++;
        if (rx.r == 0) {
            if (rx.value != i)
                bad++;
            got_by_child++;
        } else {
            if (rx.r != WEFT_ECANCELED)
                bad++;
            int v = -1;
            if (weft_chan_recv(rx.z, &v) != 0 || v != i) /* the value is still in flight */
                bad++;
            got_by_main++;
        }
        void *sr;
        ASSERT_EQ(weft_join(st, &sr), 0);
        if ((intptr_t)sr != 0)
            bad++;
        weft_chan_unref(rx.z);
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(got_by_child + got_by_main, rounds);
    cancel_digest = test_mix(cancel_digest, (uint64_t)got_by_child);

    /* timer vs cancel, many at once */
    enum { BATCH = 50 };
    int batches = (int)(ops_scaled(2000) + BATCH - 1) / BATCH;
    bad = 0;
    for (int b = 0; b < batches; b++) {
        struct race xs[BATCH];
        weft_task ts[BATCH];
        for (int i = 0; i < BATCH; i++) {
            xs[i] = (struct race){.nap = WEFT_USEC((b * BATCH + i) % 300)};
            ASSERT_EQ(weft_spawn(&ts[i], race_sleep, &xs[i]), 0);
        }
        weft_sleep(WEFT_USEC(100));
        for (int i = 0; i < BATCH; i++)
            ASSERT_EQ(weft_cancel(ts[i]), 0);
        for (int i = 0; i < BATCH; i++) {
            ASSERT_EQ(weft_join(ts[i], NULL), 0);
            bool ok = (xs[i].r1 == 0 || xs[i].r1 == WEFT_ECANCELED) && xs[i].r2 == WEFT_ECANCELED;
            cancel_digest = test_mix(cancel_digest, (uint64_t)(xs[i].r1 == 0));
            if (!ok)
                bad++;
        }
    }
    CHECK_EQ(bad, 0);
}

/* ------------------------------------------------------------------------------------------
 * Calls that are not cancellation points but wait internally (stopping a ticker, once) must
 * finish their job (in a shield) and leave the request pending for the caller's next
 * cancellation point. */

static weft_once slow_once = WEFT_ONCE_INIT;
static _Atomic int slow_once_value;
static _Atomic int slow_once_release; /* fn runs until the test has cancelled the waiter */
static _Atomic int slow_once_entered;
static void slow_once_fn(void)
{
    atomic_store(&slow_once_entered, 1);
    while (!atomic_load(&slow_once_release))
        weft_sleep(WEFT_MSEC(1));
    atomic_store(&slow_once_value, 7);
}

struct survive {
    _Atomic int waiting;
    int r_stop, c_after, r_sleep;
    int r_once, once_seen;
};

static void *survive_ticker(void *arg)
{
    struct survive *s = arg;
    weft_ticker *tk;
    ASSERT_EQ(weft_ticker_start(&tk, WEFT_SEC(1)), 0);
    ASSERT_EQ(weft_cancel(weft_self()), 0);
    s->r_stop = weft_ticker_stop(tk); /* joins the ticker: must still stop it */
    s->c_after = weft_cancelled();
    s->r_sleep = weft_sleep(WEFT_SEC(10));
    return NULL;
}

static void *once_runner(void *arg)
{
    (void)arg;
    ASSERT_EQ(weft_once_call(&slow_once, slow_once_fn), 0);
    return NULL;
}

static void *survive_once(void *arg)
{
    struct survive *s = arg;
    atomic_store(&s->waiting, 1);
    s->r_once = weft_once_call(&slow_once, slow_once_fn); /* cancelled while waiting */
    s->once_seen = atomic_load(&slow_once_value);
    s->c_after = weft_cancelled();
    s->r_sleep = weft_sleep(WEFT_SEC(10));
    return NULL;
}

static void test_request_survives(void)
{
    struct survive s = {0};
    weft_task t;
    CHECK_EQ(weft_spawn(&t, survive_ticker, &s), 0);
    CHECK_EQ(weft_join(t, NULL), 0);
    CHECK_EQ(s.r_stop, 0);
    CHECK_EQ(s.c_after, 1);
    CHECK_EQ(s.r_sleep, WEFT_ECANCELED);

    slow_once = (weft_once)WEFT_ONCE_INIT;
    atomic_store(&slow_once_value, 0);
    atomic_store(&slow_once_release, 0);
    atomic_store(&slow_once_entered, 0);
    s = (struct survive){0};
    weft_task runner;
    CHECK_EQ(weft_spawn(&runner, once_runner, NULL), 0);
    WAIT_FOR(atomic_load(&slow_once_entered)); /* the runner is inside fn until released */
    CHECK_EQ(weft_spawn(&t, survive_once, &s), 0);
    WAIT_FOR(atomic_load(&s.waiting));
    weft_sleep(WEFT_MSEC(5)); /* parked in the once, most likely (a request before is sticky) */
    CHECK_EQ(weft_cancel(t), 0);
    atomic_store(&slow_once_release, 1); /* fn ends only now: the once had to be waited for */
    CHECK_EQ(weft_join(t, NULL), 0);
    CHECK_EQ(weft_join(runner, NULL), 0);
    CHECK_EQ(s.r_once, 0);
    CHECK_EQ(s.once_seen, 7); /* fn's effect is visible on return */
    CHECK_EQ(s.c_after, 1);
    CHECK_EQ(s.r_sleep, WEFT_ECANCELED);
}

/* ------------------------------------------------------------------------------------------
 * A cancellation reaches only the task it names: a plain thread keeps cancelling handles of
 * short tasks that finish, are joined, and whose control blocks are then reused by new
 * (pinned, so the same worker's cache hands the block straight back) coroutines; those must
 * never see a request. */

static pthread_mutex_t cur_mu = PTHREAD_MUTEX_INITIALIZER;
static weft_task cur_task;
static _Atomic int reuse_stop;
static _Atomic long spurious;

static void *do_nothing(void *arg)
{
    return arg;
}
static void *victim(void *arg)
{
    (void)arg;
    if (weft_cancelled())
        atomic_fetch_add(&spurious, 1);
    return NULL;
}
static void *busy_canceller(void *arg)
{
    (void)arg;
    while (!atomic_load(&reuse_stop)) {
        pthread_mutex_lock(&cur_mu);
        weft_task t = cur_task;
        pthread_mutex_unlock(&cur_mu);
        if (t.id) {
            int r = weft_cancel(t);
            ASSERT(r == 0 || r == WEFT_ESTATE);
        }
    }
    return NULL;
}

static void test_cancel_reuse(void)
{
    if (test_sim_skip("test_cancel: a plain thread cancelling reused handles", OUTSIDE_WHY))
        return;
    long rounds = ops_scaled(1000000);
    atomic_store(&reuse_stop, 0);
    atomic_store(&spurious, 0);
    cur_task = (weft_task){NULL, 0};
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, busy_canceller, NULL), 0);
    CHECK_EQ(weft_pin(), 0);
    for (long i = 0; i < rounds; i++) {
        weft_task t, v;
        ASSERT_EQ(weft_spawn(&t, do_nothing, NULL), 0);
        pthread_mutex_lock(&cur_mu);
        cur_task = t;
        pthread_mutex_unlock(&cur_mu);
        ASSERT_EQ(weft_join(t, NULL), 0);
        ASSERT_EQ(weft_spawn(&v, victim, NULL), 0);
        ASSERT_EQ(weft_join(v, NULL), 0);
    }
    CHECK_EQ(weft_unpin(), 0);
    atomic_store(&reuse_stop, 1);
    CHECK_EQ(pthread_join(th, NULL), 0); /* it never blocks: a quick join */
    CHECK_EQ(atomic_load(&spurious), 0);
}

/* ------------------------------------------------------------------------------------------
 * A failed call leaves no armed wait behind: a condition wait refused because the mutex is
 * not locked must not let a later cancellation disturb the waits after it. */

static void *cond_misuse(void *arg)
{
    int *out = arg;
    weft_mutex m = WEFT_MUTEX_INIT;
    weft_cond c = WEFT_COND_INIT;
    out[0] = weft_cond_wait(&c, &m); /* m is not locked: refused */
    out[1] = weft_cancel(weft_self());
    out[2] = weft_sleep(WEFT_SEC(10)); /* reports the request */
    weft_shield_begin();               /* a shielded sleep is an ordinary one: not ended early */
    int64_t t0 = weft_now();
    out[3] = weft_sleep(WEFT_MSEC(20));
    out[4] = weft_now() - t0 >= WEFT_MSEC(20);
    out[5] = weft_sleep(WEFT_MSEC(30));
    weft_shield_end();
    return NULL;
}

static void test_failed_call_leaves_no_wait(void)
{
    int out[6];
    weft_task t;
    CHECK_EQ(weft_spawn(&t, cond_misuse, out), 0);
    CHECK_EQ(weft_join(t, NULL), 0);
    CHECK(out[0] != 0);
    CHECK_EQ(out[1], 0);
    CHECK_EQ(out[2], WEFT_ECANCELED);
    CHECK_EQ(out[3], 0);
    CHECK_EQ(out[4], 1);
    CHECK_EQ(out[5], 0);
}

static int app(void *arg)
{
    int64_t t0 = weft_now();
    cancel_digest = 0;
    test_points();
    test_sticky();
    test_yield_loop();
    test_handles_threads();
    test_races();
    test_failed_call_leaves_no_wait();
    test_request_survives();
    if ((intptr_t)arg == 1)
        test_cancel_reuse(); /* a CPU-bound stress: in the one-worker run only */
    test_sim_fingerprint("test_cancel", t0, cancel_digest);
    return 0;
}

int main(void)
{
    int threads[] = {0, 1, 2};
    for (int i = 0; i < 3; i++) {
        weft_config cfg = {.threads = threads[i]};
        ASSERT_EQ(weft_run(app, (void *)(intptr_t)threads[i], &cfg), 0);
    }
    TEST_PASS("test_cancel", checks);
    return 0;
}
