/* SPDX-License-Identifier: MIT */
/* test_shield.c — sticky cancellation and shields (weft.h: weft_cancel, weft_shield_begin):
 *  - a loop that swallows one WEFT_ECANCELED and waits again is told again, instead of
 *    waiting out its deadline (issue 15: "cancel once, join → deadline expired");
 *  - every kind of cancellation point reports a request again and again (a request made
 *    before the first call, and one that interrupts the first call's wait), weft_cancelled()
 *    stays 1, and each point waits normally in a shield and reports again after it;
 *  - a shield: cleanup that blocks completes; a cancel arriving during a shielded wait does
 *    not end it; shields nest (the outermost end counts); deadlines still apply inside;
 *  - group members cancelled by the group stay cancelled (and those spawned later);
 *  - a cancelled weft_cond_wait whose mutex is held by someone else returns with it held,
 *    however often it is cancelled meanwhile.
 * Every wait has a safety deadline (SAFETY): where a report consumed the request (weft
 * before sticky cancellation), the repeated wait runs to it and returns WEFT_ETIMEDOUT
 * instead of hanging. `test_shield NAME` runs one test (swallow_loop, points, ...). */
#define _GNU_SOURCE
#include "harness.h"
#include <weft.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

static _Atomic long checks;

#define SAFETY WEFT_SEC(5)
#define REPEAT 3

static weft_chan *z0;                     /* rendezvous channel nobody else sends or receives on */
static weft_chan *full1;                  /* capacity 1, full */
static weft_mutex held = WEFT_MUTEX_INIT; /* held by the test's main coroutine */
static weft_sem sem0;
static weft_wg wg1;     /* count 1 throughout */
static int empty_sv[2]; /* a socket pair nothing is written to */
static int ready_sv[2]; /* a socket pair with one byte waiting in ready_sv[0] */
static _Atomic int gate_open, fn_started;

/* Waits on z0 until cancelled (or the safety deadline). */
static void *wait_z0(void *arg)
{
    int v;
    weft_chan_recv_until(z0, &v, weft_after(SAFETY));
    return arg;
}

static void *gated_fn(void *arg)
{
    atomic_fetch_add(&fn_started, 1);
    while (!atomic_load(&gate_open)) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return arg;
}

/* ------------------------------------------------------------------------------------------
 * A loop that swallows one cancellation. */

struct swallow {
    weft_task victim;
    _Atomic int waiting;
    int r, swallowed;
};

static void *swallower(void *arg)
{
    struct swallow *s = arg;
    int64_t safety = weft_after(SAFETY);
    atomic_store(&s->waiting, 1);
    int r;
    for (;;) {
        r = weft_join_until(s->victim, NULL, safety);
        if (r == WEFT_ECANCELED && !s->swallowed) {
            s->swallowed = 1; /* "not now": carries on waiting */
            continue;
        }
        break;
    }
    s->r = r;
    return NULL;
}

static void test_swallow_loop(void)
{
    struct swallow s = {0};
    weft_task t;
    ASSERT_EQ(weft_spawn(&s.victim, wait_z0, NULL), 0);
    ASSERT_EQ(weft_spawn(&t, swallower, &s), 0);
    WAIT_FOR(atomic_load(&s.waiting));
    int64_t t0 = weft_now();
    CHECK_EQ(weft_cancel(t), 0);
    CHECK_EQ(weft_join(t, NULL), 0);
    CHECK_EQ(s.swallowed, 1);
    CHECK_EQ(s.r, WEFT_ECANCELED); /* not WEFT_ETIMEDOUT at the safety deadline */
    CHECK_LT(weft_now() - t0, SAFETY);
    CHECK_EQ(weft_cancel(s.victim), 0);
    CHECK_EQ(weft_join(s.victim, NULL), 0);
}

/* ------------------------------------------------------------------------------------------
 * Every kind of cancellation point, repeatedly. */

enum kind {
    K_YIELD,
    K_SLEEP,
    K_SLEEP_PAST,
    K_SEND,
    K_RECV,
    K_SELECT,
    K_JOIN,
    K_MUTEX,
    K_COND,
    K_SEM,
    K_WG,
    K_WAIT_FD,
    K_READ,
    K_READ_READY,
    K_BLOCKING,
    K_GROUP_WAIT,
    K_GROUP_NEXT,
    K_COUNT
};
static const char *kind_name[K_COUNT] = {
    "yield", "sleep",      "sleep_past", "send",       "recv",      "select",
    "join",  "mutex",      "cond",       "sem",        "wg",        "wait_fd",
    "read",  "read_ready", "blocking",   "group_wait", "group_next"};
/* Kinds that wait when not cancelled (the others report at entry, or never wait). */
static bool kind_blocks(enum kind k)
{
    return k != K_YIELD && k != K_SLEEP_PAST && k != K_READ_READY;
}

struct point {
    enum kind kind;
    bool precancel;    /* cancel itself before the first call (else: cancelled while in it) */
    _Atomic int stage; /* 1: about to make the first call, 2: done */
    int r[REPEAT];     /* each call's result */
    int still[REPEAT]; /* weft_cancelled() after each */
    int r_shielded;    /* the same call in a shield, where it must not report (see below) */
    int r_after;       /* and once more after the shield */
    int relocked;      /* K_COND: every call returned with the mutex held */
    weft_task grandchild;
    weft_group *g;
    weft_mutex cm;
    weft_cond cv;
};

/* One call of the kind. In a shield (`shielded`) the waiting kinds get a short deadline: they
 * wait normally, so they time out (WEFT_ETIMEDOUT), or complete (the blocking job keeps the
 * safety deadline: it must not time out before a pool thread takes it). */
static int call(struct point *p, bool shielded)
{
    int64_t dl = shielded && p->kind != K_BLOCKING ? weft_after(WEFT_MSEC(2)) : weft_after(SAFETY);
    int v = 0;
    char b;
    weft_case cs[2] = {{z0, WEFT_OP_RECV, &v, 0}, {full1, WEFT_OP_SEND, &v, 0}};
    switch (p->kind) {
    case K_YIELD:
        return weft_yield();
    case K_SLEEP:
        return weft_sleep_until(dl);
    case K_SLEEP_PAST:
        return weft_sleep_until(0);
    case K_SEND:
        return weft_chan_send_until(z0, &v, dl);
    case K_RECV:
        return weft_chan_recv_until(z0, &v, dl);
    case K_SELECT:
        return weft_select(cs, 2, dl);
    case K_JOIN:
        return weft_join_until(p->grandchild, NULL, dl);
    case K_MUTEX:
        return weft_mutex_lock_until(&held, dl);
    case K_COND: {
        int r = weft_cond_wait_until(&p->cv, &p->cm, dl);
        if (weft_mutex_trylock(&p->cm) != WEFT_EAGAIN) /* held by us again */
            p->relocked = 0;
        return r;
    }
    case K_SEM:
        return weft_sem_wait_until(&sem0, dl);
    case K_WG:
        return weft_wg_wait_until(&wg1, dl);
    case K_WAIT_FD:
        return weft_wait_fd(empty_sv[0], WEFT_READABLE, dl);
    case K_READ:
        return (int)weft_read(empty_sv[0], &b, 1, dl);
    case K_READ_READY: {
        /* In a shield it reads the byte: put it back for the checks that follow. */
        int r = (int)weft_read(ready_sv[0], &b, 1, dl);
        if (r == 1)
            ASSERT_EQ(write(ready_sv[1], &b, 1), 1);
        return r;
    }
    case K_BLOCKING:
        return weft_blocking_until(gated_fn, NULL, NULL, dl);
    case K_GROUP_WAIT: {
        /* A fresh group each time (a wait cancels the group, whose member then ends). */
        weft_group *g;
        ASSERT_EQ(weft_group_create(&g), 0);
        ASSERT_EQ(weft_group_spawn(g, wait_z0, NULL), 0);
        int r = weft_group_wait_until(g, dl);
        ASSERT_EQ(weft_group_len(g), 0); /* it waited for the member all the same */
        ASSERT_EQ(weft_group_free(g), 0);
        return r;
    }
    case K_GROUP_NEXT: {
        weft_group_outcome out;
        return weft_group_next_until(p->g, &out, dl);
    }
    default:
        abort();
    }
}

static void *point_child(void *arg)
{
    struct point *p = arg;
    p->relocked = 1;
    if (p->kind == K_JOIN)
        ASSERT_EQ(weft_spawn(&p->grandchild, wait_z0, NULL), 0);
    if (p->kind == K_COND) {
        ASSERT_EQ(weft_mutex_init(&p->cm), 0);
        ASSERT_EQ(weft_cond_init(&p->cv), 0);
        ASSERT_EQ(weft_mutex_lock(&p->cm), 0);
    }
    if (p->kind == K_GROUP_NEXT) {
        weft_group_opts o = {.collect = 1};
        ASSERT_EQ(weft_group_create_ex(&p->g, &o), 0);
        ASSERT_EQ(weft_group_spawn(p->g, wait_z0, NULL), 0);
    }
    if (p->precancel)
        ASSERT_EQ(weft_cancel(weft_self()), 0);
    atomic_store(&p->stage, 1);
    for (int i = 0; i < REPEAT; i++) {
        p->r[i] = call(p, false);
        p->still[i] = weft_cancelled();
    }
    ASSERT_EQ(weft_shield_begin(), 0);
    p->r_shielded = call(p, true);
    ASSERT_EQ(weft_shield_end(), 0);
    p->r_after = call(p, false);
    /* Cleanup, in a shield: it must not be cut short. */
    ASSERT_EQ(weft_shield_begin(), 0);
    if (p->kind == K_JOIN) {
        ASSERT_EQ(weft_cancel(p->grandchild), 0);
        ASSERT_EQ(weft_join(p->grandchild, NULL), 0);
    }
    if (p->kind == K_COND)
        ASSERT_EQ(weft_mutex_unlock(&p->cm), 0);
    if (p->kind == K_GROUP_NEXT)
        ASSERT_EQ(weft_group_free(p->g), 0); /* cancels the member and waits for it */
    ASSERT_EQ(weft_shield_end(), 0);
    atomic_store(&p->stage, 2);
    return NULL;
}

/* What the call returns in a shield, where it waits normally with a 2 ms deadline. */
static int shielded_result(enum kind k)
{
    switch (k) {
    case K_YIELD:
    case K_SLEEP:
    case K_SLEEP_PAST:
        return 0;
    case K_READ_READY:
        return 1;
    case K_WAIT_FD:
    case K_READ:
        return WEFT_ETIMEDOUT;
    case K_BLOCKING:
        return 0; /* fn ran (the gate is open by then) */
    default:
        return WEFT_ETIMEDOUT;
    }
}

static void run_point(enum kind k, bool precancel)
{
    struct point p = {.kind = k, .precancel = precancel};
    weft_task t;
    bool gated = k == K_BLOCKING && !precancel;
    atomic_store(&gate_open, !gated);
    atomic_store(&fn_started, 0);
    ASSERT_EQ(weft_spawn(&t, point_child, &p), 0);
    if (!precancel) {
        WAIT_FOR(atomic_load(&p.stage) >= 1);
        if (gated) /* cancelled while fn runs: the caller waits for fn */
            WAIT_FOR(atomic_load(&fn_started) > 0);
        weft_sleep(WEFT_MSEC(2)); /* let it park (cancelling earlier is fine too) */
        CHECK_EQ(atomic_load(&p.stage), 1);
        CHECK_EQ(weft_cancel(t), 0);
        if (gated)
            atomic_store(&gate_open, 1);
    }
    CHECK_EQ(weft_join(t, NULL), 0);
    bool ok = true;
    for (int i = 0; i < REPEAT; i++)
        ok &= p.r[i] == WEFT_ECANCELED && p.still[i] == 1;
    ok &= p.r_shielded == shielded_result(k) && p.r_after == WEFT_ECANCELED;
    ok &= p.relocked == 1;
    if (!ok)
        fprintf(stderr,
                "%s (%s): calls %d %d %d, cancelled %d %d %d, shielded %d, after %d, "
                "relocked %d\n",
                kind_name[k], precancel ? "cancelled before" : "cancelled while waiting", p.r[0],
                p.r[1], p.r[2], p.still[0], p.still[1], p.still[2], p.r_shielded, p.r_after,
                p.relocked);
    CHECK(ok);
}

static void test_points(void)
{
    ASSERT_EQ(weft_chan_create(&full1, sizeof(int), 1), 0);
    int v = 1;
    ASSERT_EQ(weft_chan_send(full1, &v), 0);
    ASSERT_EQ(weft_mutex_lock(&held), 0);
    ASSERT_EQ(weft_sem_init(&sem0, 0), 0);
    ASSERT_EQ(weft_wg_init(&wg1), 0);
    ASSERT_EQ(weft_wg_add(&wg1, 1), 0);
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, empty_sv), 0);
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ready_sv), 0);
    ASSERT_EQ(write(ready_sv[1], "x", 1), 1);
    for (int k = 0; k < K_COUNT; k++) {
        run_point((enum kind)k, true);
        if (kind_blocks((enum kind)k))
            run_point((enum kind)k, false);
    }
    /* Nothing was taken on the cancelled parties' behalf. */
    char b;
    CHECK_EQ(weft_read(ready_sv[0], &b, 1, WEFT_FOREVER), 1);
    CHECK_EQ(b, 'x');
    CHECK_EQ(weft_chan_len(full1), 1);
    CHECK_EQ(weft_chan_try_send(z0, &v), WEFT_EAGAIN);
    CHECK_EQ(weft_sem_trywait(&sem0), WEFT_EAGAIN);
    CHECK_EQ(weft_mutex_unlock(&held), 0);
    CHECK_EQ(weft_wg_done(&wg1), 0);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(weft_close(empty_sv[i]), 0);
        CHECK_EQ(weft_close(ready_sv[i]), 0);
    }
    weft_chan_unref(full1);
}

/* ------------------------------------------------------------------------------------------
 * Shields: cleanup, a cancel during a shielded wait, nesting, deadlines. */

struct cleanup {
    weft_chan *in, *out;
    _Atomic int stage;
    int r_first, r_send, r_recv, v, r_after;
};

/* Cancelled in its first wait; then, shielded, reports back through a send that has to
 * wait for the receiver, and waits for an answer — during which it is cancelled again. */
static void *cleanup_child(void *arg)
{
    struct cleanup *c = arg;
    int v;
    atomic_store(&c->stage, 1);
    c->r_first = weft_chan_recv_until(c->in, &v, weft_after(SAFETY));
    atomic_store(&c->stage, 2);
    ASSERT_EQ(weft_shield_begin(), 0);
    v = 123;
    c->r_send = weft_chan_send_until(c->out, &v, weft_after(SAFETY));
    atomic_store(&c->stage, 3);
    c->r_recv = weft_chan_recv_until(c->in, &c->v, weft_after(SAFETY));
    ASSERT_EQ(weft_shield_end(), 0);
    c->r_after = weft_chan_recv_until(c->in, &v, weft_after(SAFETY));
    return NULL;
}

static void test_cleanup(void)
{
    struct cleanup c = {0};
    ASSERT_EQ(weft_chan_create(&c.in, sizeof(int), 0), 0);
    ASSERT_EQ(weft_chan_create(&c.out, sizeof(int), 0), 0);
    weft_task t;
    ASSERT_EQ(weft_spawn(&t, cleanup_child, &c), 0);
    WAIT_FOR(atomic_load(&c.stage) >= 1);
    CHECK_EQ(weft_cancel(t), 0);
    WAIT_FOR(atomic_load(&c.stage) >= 2);
    weft_sleep(WEFT_MSEC(2)); /* the send waits for us, most likely */
    int v = 0;
    CHECK_EQ(weft_chan_recv(c.out, &v), 0);
    CHECK_EQ(v, 123);
    WAIT_FOR(atomic_load(&c.stage) >= 3);
    weft_sleep(WEFT_MSEC(2));    /* let it park in the shielded receive */
    CHECK_EQ(weft_cancel(t), 0); /* changes nothing: still the one request, not reported */
    v = 77;
    CHECK_EQ(weft_chan_send_until(c.in, &v, weft_after(SAFETY)), 0);
    CHECK_EQ(weft_join(t, NULL), 0);
    CHECK_EQ(c.r_first, WEFT_ECANCELED);
    CHECK_EQ(c.r_send, 0);
    CHECK_EQ(c.r_recv, 0);
    CHECK_EQ(c.v, 77);
    CHECK_EQ(c.r_after, WEFT_ECANCELED);
    weft_chan_unref(c.in);
    weft_chan_unref(c.out);
}

static void *nesting(void *arg)
{
    int *o = arg;
    int i = 0;
    ASSERT_EQ(weft_cancel(weft_self()), 0);
    o[i++] = weft_shield_begin();
    o[i++] = weft_shield_begin();
    o[i++] = weft_yield(); /* 0: shielded */
    o[i++] = weft_shield_end();
    o[i++] = weft_yield(); /* 0: still in the outer shield */
    o[i++] = weft_sleep_until(0);
    o[i++] = weft_cancelled(); /* 1: pending all along */
    weft_chan *z;
    ASSERT_EQ(weft_chan_create(&z, sizeof(int), 0), 0);
    int v;
    int64_t t0 = weft_now();
    o[i++] = weft_chan_recv_until(z, &v, weft_after(WEFT_MSEC(3))); /* deadlines apply */
    o[i++] = weft_now() - t0 >= WEFT_MSEC(3);
    weft_chan_unref(z);
    o[i++] = weft_shield_end();
    o[i++] = weft_yield();      /* reported after the outermost end */
    o[i++] = weft_shield_end(); /* unbalanced */
    o[i++] = weft_yield();
    return NULL;
}

static void test_nesting(void)
{
    int o[13];
    weft_task t;
    ASSERT_EQ(weft_spawn(&t, nesting, o), 0);
    ASSERT_EQ(weft_join(t, NULL), 0);
    const int want[13] = {
        0, 0, 0, 0, 0, 0, 1, WEFT_ETIMEDOUT, 1, 0, WEFT_ECANCELED, WEFT_ESTATE, WEFT_ECANCELED};
    for (int i = 0; i < 13; i++) {
        if (o[i] != want[i])
            fprintf(stderr, "nesting step %d: %d, want %d\n", i, o[i], want[i]);
        CHECK_EQ(o[i], want[i]);
    }
}

/* ------------------------------------------------------------------------------------------
 * Group members cancelled by the group stay cancelled. */

struct member {
    _Atomic int *waiting;
    int r[3], still;
};

static void *member(void *arg)
{
    struct member *m = arg;
    atomic_fetch_add(m->waiting, 1);
    int v;
    m->r[0] = weft_chan_recv_until(z0, &v, weft_after(SAFETY)); /* cancelled by the group */
    m->r[1] = weft_chan_recv_until(z0, &v, weft_after(SAFETY));
    m->r[2] = weft_yield();
    m->still = weft_cancelled();
    return NULL;
}

static void test_group_members(void)
{
    enum { N = 3 };
    weft_group *g;
    ASSERT_EQ(weft_group_create(&g), 0);
    _Atomic int waiting = 0;
    struct member ms[N + 1];
    for (int i = 0; i <= N; i++)
        ms[i] = (struct member){.waiting = &waiting};
    for (int i = 0; i < N; i++)
        ASSERT_EQ(weft_group_spawn(g, member, &ms[i]), 0);
    WAIT_FOR(atomic_load(&waiting) == N);
    CHECK_EQ(weft_group_cancel(g), 0);
    CHECK_EQ(weft_group_spawn(g, member, &ms[N]), 0); /* starts cancelled */
    CHECK_EQ(weft_group_wait_until(g, weft_after(2 * SAFETY)), 0);
    for (int i = 0; i <= N; i++) {
        CHECK_EQ(ms[i].r[0], WEFT_ECANCELED);
        CHECK_EQ(ms[i].r[1], WEFT_ECANCELED);
        CHECK_EQ(ms[i].r[2], WEFT_ECANCELED);
        CHECK_EQ(ms[i].still, 1);
    }
    CHECK_EQ(weft_group_free(g), 0);
}

/* ------------------------------------------------------------------------------------------
 * A cancelled condition wait re-locks a mutex someone else holds, however often it is
 * cancelled meanwhile, and returns with it held. */

struct relock {
    weft_mutex m;
    weft_cond c;
    _Atomic int stage;
    int r, held, unlocked;
};

static void *relock_child(void *arg)
{
    struct relock *x = arg;
    ASSERT_EQ(weft_mutex_lock(&x->m), 0);
    atomic_store(&x->stage, 1);
    x->r = weft_cond_wait_until(&x->c, &x->m, weft_after(SAFETY));
    x->held = weft_mutex_trylock(&x->m) == WEFT_EAGAIN;
    x->unlocked = weft_mutex_unlock(&x->m) == 0;
    atomic_store(&x->stage, 2);
    return NULL;
}

static void test_cond_relock(void)
{
    struct relock x = {0};
    ASSERT_EQ(weft_mutex_init(&x.m), 0);
    ASSERT_EQ(weft_cond_init(&x.c), 0);
    weft_task t;
    ASSERT_EQ(weft_spawn(&t, relock_child, &x), 0);
    WAIT_FOR(atomic_load(&x.stage) >= 1);
    /* The child released m inside the wait: once we have it, the child is queued. */
    CHECK_EQ(weft_mutex_lock(&x.m), 0);
    CHECK_EQ(weft_cancel(t), 0); /* its wait ends; the re-lock waits for us */
    for (int i = 0; i < 5; i++) {
        weft_sleep(WEFT_MSEC(1));
        CHECK_EQ(weft_cancel(t), 0); /* must not cut the re-lock short */
    }
    CHECK_EQ(atomic_load(&x.stage), 1); /* cannot return: we hold m */
    CHECK_EQ(weft_mutex_unlock(&x.m), 0);
    CHECK_EQ(weft_join(t, NULL), 0);
    CHECK_EQ(x.r, WEFT_ECANCELED);
    CHECK_EQ(x.held, 1);
    CHECK_EQ(x.unlocked, 1);
}

static const char *only; /* argv[1]: run just the test of that name */
#define RUN(name)                                                                                  \
    do {                                                                                           \
        if (!only || strcmp(only, #name) == 0)                                                     \
            test_##name();                                                                         \
    } while (0)

static int app(void *arg)
{
    (void)arg;
    int64_t t0 = weft_now();
    ASSERT_EQ(weft_chan_create(&z0, sizeof(int), 0), 0);
    RUN(swallow_loop);
    RUN(points);
    RUN(cleanup);
    RUN(nesting);
    RUN(group_members);
    RUN(cond_relock);
    weft_chan_unref(z0);
    test_sim_fingerprint("test_shield", t0, 0);
    return 0;
}

int main(int argc, char **argv)
{
    only = argc > 1 ? argv[1] : NULL;
    int threads[] = {1, 2};
    for (int i = 0; i < 2; i++) {
        weft_config cfg = {.threads = threads[i]};
        ASSERT_EQ(weft_run(app, NULL, &cfg), 0);
    }
    TEST_PASS("test_shield", checks);
    return 0;
}
