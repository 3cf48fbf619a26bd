/* SPDX-License-Identifier: MIT */
/* test_shutdown.c — the shutdown rule (weft.h, weft_run): when main returns no coroutine is
 * resumed, on any dispatch path (the direct switch to the next local coroutine, a yield,
 * the scheduler); a coroutine's spawn during shutdown succeeds with a handle whose coroutine
 * never runs; plain threads blocked in weft when the runtime stops get WEFT_ENORUNTIME
 * (one test per kind of wait); plain threads calling weft while weft_run starts and returns
 * over and over touch no freed memory (run under ASan and TSan) and are never left hanging.
 * Ordering is by flags and counters (a plain thread is known to be blocked once its waiter
 * is linked in the object's queue, looked at under the object's lock), never by sleeps. */
#define _GNU_SOURCE
#include "harness.h"
#include <weft.h>

#include "chan.h"   /* to see a channel's waiter queues */
#include "gate.h"   /* weft__gate_sleepers: plain threads asleep in weft */
#include "worker.h" /* weft__rt->stopping */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

static _Atomic long checks;

/* Wait (on a plain thread) for a flag, failing after `sec` seconds: a safety net against a
 * thread left hanging, not an ordering device. */
static bool wait_flag(_Atomic int *flag, int sec)
{
    int64_t dl = weft_now() + WEFT_SEC(sec);
    while (!atomic_load(flag)) {
        if (weft_now() > dl)
            return false;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return true;
}

/* ==========================================================================================
 * One worker: main spawns and returns without yielding — the children never run. */

static _Atomic int child_ran;
static weft_task kept; /* a child's handle, joined after weft_run returned */

static void *set_flag(void *arg)
{
    (void)arg;
    atomic_store(&child_ran, 1);
    return NULL;
}

static int spawn_and_return(void *arg)
{
    (void)arg;
    CHECK_EQ(weft_spawn(&kept, set_flag, NULL), 0); /* runnext: the direct switch's pick */
    for (int i = 0; i < 100; i++)                   /* and the ring */
        CHECK_EQ(weft_spawn(NULL, set_flag, NULL), 0);
    return 5;
}

/* A coroutine yielding in a loop: once main returned it must not run again (the yield path
 * used to keep going when nothing else was local). */
static _Atomic long yields;
static _Atomic long yields_at_return;

static void *yielder(void *arg)
{
    (void)arg;
    for (long i = 0; i < 1000000; i++) { /* bounded: the unfixed code finishes, and fails */
        atomic_fetch_add(&yields, 1);
        weft_yield();
    }
    return NULL;
}

static int yield_then_return(void *arg)
{
    (void)arg;
    CHECK_EQ(weft_spawn(NULL, yielder, NULL), 0);
    while (atomic_load(&yields) < 10)
        weft_yield();
    atomic_store(&yields_at_return, atomic_load(&yields));
    return 0;
}

static void test_child_never_runs(void)
{
    weft_config one = {.threads = 1};
    for (int round = 0; round < 20; round++) {
        atomic_store(&child_ran, 0);
        CHECK_EQ(weft_run(spawn_and_return, NULL, &one), 5);
        CHECK_EQ(atomic_load(&child_ran), 0);
        /* a plain thread's calls after the stop */
        CHECK_EQ(weft_join(kept, NULL), WEFT_ENORUNTIME);
        CHECK_EQ(weft_spawn(NULL, set_flag, NULL), WEFT_ENORUNTIME);
    }
}

static void test_yielder_stops(void)
{
    weft_config one = {.threads = 1};
    CHECK_EQ(weft_run(yield_then_return, NULL, &one), 0);
    CHECK_EQ(atomic_load(&yields), atomic_load(&yields_at_return));
}

/* ==========================================================================================
 * Two workers: a coroutine spawning while main returns gets 0 (Go's rule), never
 * WEFT_ENORUNTIME. S spins on one worker until it sees `stopping`, then spawns; main is
 * woken by a plain thread (a wake-up through the global queue, which the other, idle worker
 * takes: S keeps its own busy) and returns from there. */

static _Atomic int s_started, main_idx = -1;
static _Atomic long spawn_errors, late_spawns;

static void *nothing(void *arg)
{
    return arg;
}

static void *late_spawner(void *arg)
{
    (void)arg;
    atomic_store(&s_started, 1);
    /* A bound on the hot spin, only for forced narrow mode (WEFT_NARROW=1), where the
     * other worker is never woken for main: then S yields and main runs here. */
    int64_t patience = weft_now() + WEFT_MSEC(200);
    while (!atomic_load_explicit(&weft__rt->stopping, memory_order_acquire)) {
        int mi = atomic_load(&main_idx);
        if (mi == weft_worker_index() || (mi < 0 && weft_now() > patience))
            weft_yield(); /* main is (or may be) queued behind us */
    }
    for (int i = 0; i < 50; i++) {
        weft_task t;
        int r = weft_spawn(i % 2 ? &t : NULL, nothing, NULL);
        if (r != 0) {
            atomic_fetch_add(&spawn_errors, 1);
            break;
        }
        atomic_fetch_add(&late_spawns, 1);
    }
    return NULL;
}

static void *wake_main(void *arg)
{
    ASSERT(wait_flag(&s_started, 10));
    long v = 1;
    ASSERT_EQ(weft_chan_send((weft_chan *)arg, &v), 0);
    weft_chan_unref((weft_chan *)arg); /* its own reference: main may be done with ch */
    return NULL;
}

static int spawn_while_stopping_main(void *arg)
{
    (void)arg;
    atomic_store(&s_started, 0);
    atomic_store(&main_idx, -1);
    weft_chan *ch;
    CHECK_EQ(weft_chan_create(&ch, sizeof(long), 0), 0);
    CHECK_EQ(weft_spawn(NULL, late_spawner, NULL), 0);
    pthread_t th;
    weft_chan_ref(ch);
    ASSERT_EQ(pthread_create(&th, NULL, wake_main, ch), 0);
    ASSERT_EQ(pthread_detach(th), 0);
    long v;
    CHECK_EQ(weft_chan_recv(ch, &v), 0); /* the thread's send returns once we have it */
    weft_chan_unref(ch);
    atomic_store(&main_idx, weft_worker_index());
    return 0;
}

/* Go's concurrent prime sieve: filters chained by channels, main takes a few primes and
 * returns while filters are spawning and sending. Every spawn must succeed. */
struct filter {
    weft_chan *in, *out;
    long p;
};

static void *generate(void *arg)
{
    weft_chan *out = arg;
    for (long i = 2;; i++)
        if (weft_chan_send(out, &i) != 0)
            return NULL;
}

static void *filter(void *arg)
{
    struct filter *f = arg;
    long v;
    while (weft_chan_recv(f->in, &v) == 0)
        if (v % f->p != 0 && weft_chan_send(f->out, &v) != 0)
            break;
    return NULL;
}

static weft_chan *sieve_chs[16]; /* released after weft_run: their waiters are stale then */

static int sieve_main(void *arg)
{
    (void)arg;
    static struct filter fs[15]; /* the abandoned filters point here: static */
    weft_chan *ch;
    CHECK_EQ(weft_chan_create(&ch, sizeof(long), 0), 0);
    sieve_chs[0] = ch;
    CHECK_EQ(weft_spawn(NULL, generate, ch), 0);
    long expect[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47};
    for (int i = 0; i < 15; i++) {
        long p;
        CHECK_EQ(weft_chan_recv(ch, &p), 0);
        CHECK_EQ(p, expect[i]);
        fs[i].in = ch;
        fs[i].p = p;
        CHECK_EQ(weft_chan_create(&fs[i].out, sizeof(long), 0), 0);
        sieve_chs[i + 1] = fs[i].out;
        int r = weft_spawn(NULL, filter, &fs[i]);
        if (r != 0)
            atomic_fetch_add(&spawn_errors, 1);
        ch = fs[i].out;
    }
    return 0;
}

static void test_spawn_while_stopping(void)
{
    weft_config two = {.threads = 2};
    int runs = (int)test_scaled(200) < 20 ? 20 : (int)test_scaled(200);
    for (int i = 0; i < runs; i++) {
        CHECK_EQ(weft_run(spawn_while_stopping_main, NULL, &two), 0);
        CHECK_EQ(weft_run(sieve_main, NULL, &two), 0);
        for (int c = 0; c < 16; c++)
            weft_chan_unref(sieve_chs[c]);
    }
    CHECK_EQ(atomic_load(&spawn_errors), 0);
    /* S ran on the other worker at least once (stealing); forced narrow mode keeps the
     * other worker from stealing, so S may always have shared main's worker there. */
    const char *narrow = getenv("WEFT_NARROW");
    if (!narrow || strcmp(narrow, "1"))
        CHECK_GT(atomic_load(&late_spawns), 0);
    printf("  late spawns (after stopping): %ld in %d runs\n", atomic_load(&late_spawns), runs);
}

/* ==========================================================================================
 * A plain thread blocked in each kind of wait when main returns gets WEFT_ENORUNTIME. */

enum kind {
    K_JOIN,
    K_RECV0,
    K_RECV8,
    K_SEND0,
    K_SEND1,
    K_SELECT,
    K_MUTEX,
    K_COND,
    K_SEM,
    K_WG,
    K_GROUP,
    K_N
};
static const char *kind_name[K_N] = {"join",
                                     "chan recv (rendezvous)",
                                     "chan recv (buffered)",
                                     "chan send (rendezvous)",
                                     "chan send (buffered, full)",
                                     "select",
                                     "mutex",
                                     "cond",
                                     "sem",
                                     "wait group",
                                     "task group"};

struct waitcase {
    enum kind kind;
    weft_task task;
    weft_chan *ch, *ch2;
    weft_mutex m;
    weft_cond c;
    weft_sem s;
    weft_wg wg;
    weft_group *g;
    int result;
    _Atomic int done;
    pthread_t th;
};

static void *sleep_forever(void *arg)
{
    (void)arg;
    weft_sleep_until(WEFT_FOREVER);
    return NULL;
}

static void *blocked_thread(void *arg)
{
    struct waitcase *w = arg;
    long v = 1;
    int r = -1;
    switch (w->kind) {
    case K_JOIN:
        r = weft_join(w->task, NULL);
        break;
    case K_RECV0:
    case K_RECV8:
        r = weft_chan_recv(w->ch, &v);
        break;
    case K_SEND0:
    case K_SEND1:
        r = weft_chan_send(w->ch, &v);
        break;
    case K_SELECT: {
        long a, b;
        weft_case cs[2] = {{w->ch, WEFT_OP_RECV, &a, 0}, {w->ch2, WEFT_OP_RECV, &b, 0}};
        r = weft_select(cs, 2, WEFT_FOREVER);
        break;
    }
    case K_MUTEX:
        r = weft_mutex_lock(&w->m);
        break;
    case K_COND:
        ASSERT_EQ(weft_mutex_lock(&w->m), 0);
        r = weft_cond_wait(&w->c, &w->m);
        /* WEFT_ENORUNTIME never holds m (weft/sync.h): unlocking it is refused */
        ASSERT_EQ(weft_mutex_unlock(&w->m), WEFT_ESTATE);
        break;
    case K_SEM:
        r = weft_sem_wait(&w->s);
        break;
    case K_WG:
        r = weft_wg_wait(&w->wg);
        break;
    case K_GROUP:
        r = weft_group_wait(w->g);
        break;
    default:
        break;
    }
    w->result = r;
    atomic_store(&w->done, 1);
    return NULL;
}

/* Is a waiter linked in the queue whose head is *head? Looked at under the object's lock. */
static bool queued(uint32_t *lockword, void *const *head)
{
    weft__lock_acquire(weft__lock_of(lockword));
    bool r = *head != NULL;
    weft__lock_release(weft__lock_of(lockword));
    return r;
}

static bool chan_waiting(weft_chan *ch, bool send)
{
    weft__lock_acquire(&ch->lock);
    bool r = (send ? ch->sendq.head : ch->recvq.head) != NULL;
    weft__lock_release(&ch->lock);
    return r;
}

static bool thread_blocked(struct waitcase *w)
{
    switch (w->kind) {
    case K_JOIN: {
        struct weft__coro *co = w->task.co;
        weft__lock_acquire(&co->lock);
        bool r = co->joiner != NULL;
        weft__lock_release(&co->lock);
        return r;
    }
    case K_RECV0:
    case K_RECV8:
        return chan_waiting(w->ch, false);
    case K_SEND0:
    case K_SEND1:
        return chan_waiting(w->ch, true);
    case K_SELECT:
        return chan_waiting(w->ch, false) && chan_waiting(w->ch2, false);
    case K_MUTEX:
        return queued(&w->m.lock, &w->m.waiters.head);
    case K_COND:
        return queued(&w->c.lock, &w->c.waiters.head);
    case K_SEM:
        return queued(&w->s.lock, &w->s.waiters.head);
    case K_WG:
        return queued(&w->wg.lock, &w->wg.waiters.head);
    case K_GROUP: /* opaque: the thread is known asleep once the gate tracks it */
        return weft__gate_sleepers() == 1;
    default:
        return false;
    }
}

static int waitcase_main(void *arg)
{
    struct waitcase *w = arg;
    long v = 0;
    switch (w->kind) {
    case K_JOIN:
        CHECK_EQ(weft_spawn(&w->task, sleep_forever, NULL), 0);
        break;
    case K_SEND1:
        CHECK_EQ(weft_chan_send(w->ch, &v), 0); /* full */
        break;
    case K_MUTEX:
        CHECK_EQ(weft_mutex_lock(&w->m), 0); /* held by main, abandoned with it */
        break;
    case K_GROUP:
        CHECK_EQ(weft_group_create(&w->g), 0);
        CHECK_EQ(weft_group_spawn(w->g, sleep_forever, NULL), 0);
        break;
    default:
        break;
    }
    ASSERT_EQ(pthread_create(&w->th, NULL, blocked_thread, w), 0);
    WAIT_FOR(thread_blocked(w));
    CHECK_EQ(atomic_load(&w->done), 0);
    return 0; /* the runtime stops with the thread blocked */
}

/* A later run: the channel that had a thread waiting works between a thread and a
 * coroutine (nothing stale of that thread is left in it). */
struct relay {
    weft_chan *ch;
    long got;
    int r;
    _Atomic int done;
};
static void *relay_recv(void *arg)
{
    struct relay *rl = arg;
    rl->r = weft_chan_recv(rl->ch, &rl->got);
    atomic_store(&rl->done, 1);
    return NULL;
}
static int relay_main(void *arg)
{
    struct relay *rl = arg;
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, relay_recv, rl), 0);
    long v = 42;
    CHECK_EQ(weft_chan_send(rl->ch, &v), 0);
    WAIT_FOR(atomic_load(&rl->done)); /* before the runtime stops */
    ASSERT_EQ(pthread_join(th, NULL), 0);
    return 0;
}

static void test_thread_waiters(int only_kind)
{
    for (int k = 0; k < K_N; k++) {
        if (only_kind >= 0 && k != only_kind)
            continue;
        struct waitcase *w = calloc(1, sizeof *w);
        ASSERT(w != NULL);
        w->kind = (enum kind)k;
        CHECK_EQ(weft_chan_create(&w->ch, sizeof(long),
                                  k == K_RECV8   ? 8
                                  : k == K_SEND1 ? 1
                                                 : 0),
                 0);
        CHECK_EQ(weft_chan_create(&w->ch2, sizeof(long), 0), 0);
        weft_mutex_init(&w->m);
        weft_cond_init(&w->c);
        weft_sem_init(&w->s, 0);
        weft_wg_init(&w->wg);
        weft_wg_add(&w->wg, 1);
        weft_config two = {.threads = 2};
        CHECK_EQ(weft_run(waitcase_main, w, &two), 0);
        if (!wait_flag(&w->done, 10)) {
            fprintf(stderr, "test_shutdown: a plain thread blocked in %s was left hanging\n",
                    kind_name[k]);
            abort();
        }
        ASSERT_EQ(pthread_join(w->th, NULL), 0);
        if (w->result != WEFT_ENORUNTIME)
            fprintf(stderr, "test_shutdown: %s returned %d\n", kind_name[k], w->result);
        CHECK_EQ(w->result, WEFT_ENORUNTIME);
        if (k == K_RECV0 || k == K_SEND0) {
            /* a rendezvous channel, drained of the thread: usable in the next run */
            struct relay rl = {.ch = w->ch};
            CHECK_EQ(weft_run(relay_main, &rl, &two), 0);
            CHECK_EQ(rl.r, 0);
            CHECK_EQ(rl.got, 42);
        }
        weft_chan_unref(w->ch);
        weft_chan_unref(w->ch2);
        if (w->g)
            CHECK_EQ(weft_group_free(w->g), 0); /* its abandoned member is forgotten */
        CHECK_EQ(weft__gate_sleepers(), 0);
        free(w);
    }
}

/* ==========================================================================================
 * Plain threads calling weft while main runs weft_run over and over. */

#define STRESS_THREADS 4
static _Atomic int stress_stop;
static weft_chan *stress_ch;
static _Atomic long stress_ok, stress_refused;

static void *child_work(void *arg)
{
    weft_yield();
    return arg;
}

static bool one_of(int r, int a, int b, int c)
{
    if (r == a || r == b || r == c)
        return true;
    fprintf(stderr, "test_shutdown: unexpected %d (%s)\n", r, weft_strerror(r));
    return false;
}

static void *stress_thread(void *arg)
{
    _Atomic int *finished = arg;
    long v = 7;
    while (!atomic_load(&stress_stop)) {
        weft_task t;
        int r = weft_spawn(&t, child_work, &v);
        ASSERT(one_of(r, 0, WEFT_ENORUNTIME, WEFT_ENORUNTIME));
        if (r == 0) {
            r = weft_cancel(t); /* finished (ESTATE), or the runtime stopped */
            ASSERT(one_of(r, 0, WEFT_ESTATE, WEFT_ENORUNTIME));
            void *res = NULL;
            r = weft_join(t, &res);
            /* ESTATE: its run ended and another started in between (the id was retired) */
            ASSERT(one_of(r, 0, WEFT_ENORUNTIME, WEFT_ESTATE));
            if (r == 0)
                ASSERT(res == &v);
        }
        r = weft_chan_try_send(stress_ch, &v);
        ASSERT(one_of(r, 0, WEFT_EAGAIN, WEFT_ENORUNTIME));
        long got;
        r = weft_chan_recv_until(stress_ch, &got, weft_after(WEFT_USEC(50)));
        ASSERT(one_of(r, 0, WEFT_ETIMEDOUT, WEFT_ENORUNTIME));
        weft_stats st;
        r = weft_stats_get(&st);
        ASSERT(one_of(r, 0, WEFT_ENORUNTIME, WEFT_ENORUNTIME));
        if (r == 0)
            ASSERT(st.workers >= 1);
        atomic_fetch_add(r == 0 ? &stress_ok : &stress_refused, 1);
    }
    atomic_store(finished, 1);
    return NULL;
}

static void *stress_recv(void *arg) /* parks on the shared channel: abandoned at the stop */
{
    long got;
    weft_chan_recv((weft_chan *)arg, &got);
    return NULL;
}

static int stress_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 4; i++)
        CHECK_EQ(weft_spawn(NULL, stress_recv, stress_ch), 0);
    for (int i = 0; i < 3; i++)
        weft_yield();
    return 0;
}

static void test_stress(void)
{
    CHECK_EQ(weft_chan_create(&stress_ch, sizeof(long), 4), 0);
    pthread_t th[STRESS_THREADS];
    _Atomic int finished[STRESS_THREADS];
    for (int i = 0; i < STRESS_THREADS; i++) {
        atomic_init(&finished[i], 0);
        ASSERT_EQ(pthread_create(&th[i], NULL, stress_thread, &finished[i]), 0);
    }
    for (int i = 0; i < 300; i++) {
        weft_config cfg = {.threads = 1 + i % 2};
        CHECK_EQ(weft_run(stress_main, NULL, &cfg), 0);
    }
    atomic_store(&stress_stop, 1);
    for (int i = 0; i < STRESS_THREADS; i++) {
        if (!wait_flag(&finished[i], 30)) {
            fprintf(stderr, "test_shutdown: stress thread %d was left hanging\n", i);
            abort();
        }
        ASSERT_EQ(pthread_join(th[i], NULL), 0);
    }
    CHECK_GT(atomic_load(&stress_ok), 0);
    CHECK_GT(atomic_load(&stress_refused), 0);
    printf("  stress: %ld rounds inside a run, %ld refused\n", atomic_load(&stress_ok),
           atomic_load(&stress_refused));
    weft_chan_unref(stress_ch);
}

int main(int argc, char **argv)
{
    /* One section per run: `test_shutdown never|yield|spawn|waiters|stress`. */
    const char *only = argc > 1 ? argv[1] : NULL;
    if (!only || !strcmp(only, "never"))
        test_child_never_runs();
    if (!only || !strcmp(only, "yield"))
        test_yielder_stops();
    if (!only || !strcmp(only, "spawn"))
        test_spawn_while_stopping();
    if (!only || !strcmp(only, "waiters")) /* `waiters K`: only kind K (enum kind) */
        test_thread_waiters(only && argc > 2 ? atoi(argv[2]) : -1);
    if (!only || !strcmp(only, "stress"))
        test_stress();
    TEST_PASS("test_shutdown", checks);
    return 0;
}
