/* SPDX-License-Identifier: MIT */
/* test_soak.c — a seeded, randomized soak of the whole runtime on every worker: spawn (joined,
 * detached, from a plain thread, into groups), channels (rendezvous and buffered; blocking,
 * deadline, try and select sends and receives), sleep, yield, cancellation of random tasks
 * (also through stale handles; sticky: a cancelled consumer drains in a shield),
 * weft_blocking, mutexes, semaphores, pinning and coroutine-local storage, in epochs until
 * the time is up. Invariants, checked as it runs and
 * at the end of every epoch:
 *   - every message is delivered exactly once: messages carry (epoch, producer, seq); a send
 *     that returned 0 sets a bit in the producer's `sent` map, a receive sets the bit in the
 *     `recvd` map and must find it clear; at the end both maps are equal (a send that failed
 *     — timeout, cancellation, would-block — must not have delivered anything);
 *   - select completes exactly the case it returns: the other cases' buffers are untouched;
 *   - error codes are the documented ones for each call (no ECLOSED before the close, ...);
 *   - every spawned coroutine finished (own counters: spawned == finished, joined results
 *     match), every coroutine-local value was destroyed, a mutex-protected counter equals the
 *     number of successful locks, a pinned coroutine never changed worker, sleeps never
 *     return early, and at the end weft_stats_get says only main is alive.
 *
 * Environment:
 *   WEFT_SOAK_SECONDS  how long to run (default 20, 60 when $CI is set; 6 under the
 *                      sanitizers; divided by $WEFT_TEST_SCALE when set, e.g. under
 *                      valgrind). At least one epoch.
 *   WEFT_SOAK_SEED     the seed (default: time-based). It is printed first; each coroutine's
 *                      choices come from it, so a failure can be replayed (the interleaving
 *                      across workers is not reproducible, the program's decisions are).
 *   WEFT_SOAK_THREADS  workers (default 4).
 * A watchdog thread aborts with a weft_dump() if no epoch finishes for 120 s (300 s under the
 * sanitizers): a hang fails with a picture instead of a test timeout. Live coroutines stay
 * under ~150, so TSan (at most ~8,000 fibers) is fine. No timing assertions. */
#define _GNU_SOURCE
#include "harness.h"
#include <weft.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------
 * Randomness, counters, failure reports. */

static uint64_t g_seed;

struct rng {
    uint64_t s;
};

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static struct rng rng_for(uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t x = g_seed ^ (a * 0x100000001b3ull) ^ (b << 20) ^ (c << 40);
    struct rng r = {splitmix(&x)};
    return r;
}

static uint32_t rnd(struct rng *r, uint32_t n) /* uniform-ish in [0, n) */
{
    return n ? (uint32_t)((splitmix(&r->s) >> 32) % n) : 0;
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "test_soak: FAILED (seed %llu): ", (unsigned long long)g_seed);            \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        fflush(stderr);                                                                            \
        abort();                                                                                   \
    } while (0)

static _Atomic long n_spawned, n_finished, n_joined, n_detached, n_local_set, n_local_dtor;
static _Atomic long n_sent, n_recvd, n_cancel_req, n_cancel_seen, n_blocking, n_selects;
static _Atomic long n_timeouts, n_would_block, n_mutex_ops, n_sleeps, n_epochs, n_stale;
static _Atomic long checks;

static weft_local local_key;

static void local_dtor(void *p)
{
    ASSERT_EQ(*(uint32_t *)p, 0x10ca1u);
    free(p);
    n_local_dtor++;
}

static void set_local(void)
{
    uint32_t *v = malloc(sizeof *v);
    ASSERT(v);
    *v = 0x10ca1u;
    uint32_t *old = weft_local_get(local_key);
    if (old) /* replacing a value does not run its destructor (pthread's rule) */
        local_dtor(old);
    ASSERT_EQ(weft_local_set(local_key, v), 0);
    n_local_set++;
    ASSERT(weft_local_get(local_key) == v);
}

static bool small_sizes; /* sanitizers or valgrind: fewer operations per epoch */
static bool ops_scaled_small(void)
{
    return small_sizes;
}

/* ------------------------------------------------------------------------------------------
 * Spawning with accounting: every task runs through `tramp`, which counts it finished; a
 * detached task also marks the epoch's wait group done. */

struct box {
    weft_fn fn;
    void *arg;
    weft_wg *wg; /* detached: done when it finished */
};

static void *tramp(void *p)
{
    struct box b = *(struct box *)p;
    free(p);
    if (weft_self_id() % 3 == 0)
        set_local(); /* destroyed when the coroutine ends */
    void *r = b.fn(b.arg);
    n_finished++;
    if (b.wg)
        ASSERT_EQ(weft_wg_done(b.wg), 0);
    return r;
}

static struct box *box_new(weft_fn fn, void *arg, weft_wg *wg)
{
    struct box *b = malloc(sizeof *b);
    ASSERT(b);
    b->fn = fn;
    b->arg = arg;
    b->wg = wg;
    return b;
}

/* out == NULL: detached, counted in wg. */
static void spawn_task(weft_task *out, weft_fn fn, void *arg, const char *name, weft_wg *wg,
                       int pinned)
{
    if (!out)
        ASSERT_EQ(weft_wg_add(wg, 1), 0);
    struct box *b = box_new(fn, arg, out ? NULL : wg);
    weft_spawn_opts o = {.name = name, .pinned = pinned};
    int r = weft_spawn_ex(out, tramp, b, &o);
    if (r != 0)
        FAIL("weft_spawn_ex: %s", weft_strerror(r));
    n_spawned++;
    if (!out)
        n_detached++;
}

static void *join_task(weft_task t)
{
    void *res = NULL;
    int r;
    while ((r = weft_join(t, &res)) == WEFT_ECANCELED)
        ; /* the joiner was cancelled: the handle stays valid */
    if (r != 0)
        FAIL("weft_join: %s", weft_strerror(r));
    n_joined++;
    return res;
}

/* ------------------------------------------------------------------------------------------
 * One epoch: producers and consumers over a few channels, a chaos monkey cancelling tasks,
 * and side workloads. */

#define MAXCH 4
#define MAXP 8
#define MAXC 8
#define MAXV 64

struct epoch {
    int id;
    int nch;
    weft_chan *ch[MAXCH];
    int cap[MAXCH];
    int np;    /* coroutine producers; producer np is the plain thread */
    int nprod; /* np + 1 */
    int nc;
    uint32_t m; /* messages per producer */
    int words;
    _Atomic uint64_t *sent, *recvd;
    _Atomic int closing;
    _Atomic int stop_chaos;
    weft_wg wg; /* detached tasks */
    weft_task victims[MAXV];
    _Atomic int nvictims;
    /* mutex workload */
    weft_mutex mu;
    long guarded;
    _Atomic long locks_ok;
};

struct role {
    struct epoch *e;
    int index;
};

static uint64_t pack(const struct epoch *e, int p, uint32_t seq)
{
    return ((uint64_t)(e->id & 0xffff) << 48) | ((uint64_t)p << 32) | seq;
}

static void record_recv(struct epoch *e, uint64_t v, const char *how)
{
    int ep = (int)(v >> 48), p = (int)((v >> 32) & 0xffff);
    uint32_t seq = (uint32_t)v;
    if (ep != (e->id & 0xffff) || p >= e->nprod || seq >= e->m)
        FAIL("epoch %d: received a message that was never sent (%s): %#llx", e->id, how,
             (unsigned long long)v);
    size_t w = (size_t)p * e->words + seq / 64;
    uint64_t bit = 1ull << (seq % 64);
    uint64_t old = atomic_fetch_or(&e->recvd[w], bit);
    if (old & bit)
        FAIL("epoch %d: message (producer %d, seq %u) received twice (%s)", e->id, p, seq, how);
    n_recvd++;
}

static void mark_sent(struct epoch *e, int p, uint32_t seq)
{
    atomic_fetch_or(&e->sent[(size_t)p * e->words + seq / 64], 1ull << (seq % 64));
    n_sent++;
}

static int64_t small_deadline(struct rng *r)
{
    return weft_after(WEFT_USEC(rnd(r, 300)));
}

static void *offload_fn(void *arg)
{
    uintptr_t v = (uintptr_t)arg;
    if (v & 1) {
        struct timespec ts = {0, (long)(v % 200) * 1000};
        nanosleep(&ts, NULL);
    }
    return (void *)(v * 3 + 1);
}

/* The occasional detour: yield, a short sleep (never early), or a blocking offload. */
static void detour(struct rng *r)
{
    switch (rnd(r, 4)) {
    case 0: {
        int y = weft_yield(); /* a cancellation point: reports a pending request */
        if (y == WEFT_ECANCELED)
            n_cancel_seen++;
        else
            ASSERT_EQ(y, 0);
        break;
    }
    case 1: {
        int64_t dl = weft_after(WEFT_USEC(rnd(r, 100)));
        int s = weft_sleep_until(dl);
        if (s == 0)
            ASSERT(weft_now() >= dl);
        else if (s == WEFT_ECANCELED)
            n_cancel_seen++;
        else
            FAIL("weft_sleep_until: %s", weft_strerror(s));
        n_sleeps++;
        break;
    }
    case 2: {
        uintptr_t a = rnd(r, 1000);
        void *res = NULL;
        int s = weft_blocking(offload_fn, (void *)a, &res);
        if (s == 0)
            ASSERT(res == (void *)(a * 3 + 1));
        else if (s == WEFT_ECANCELED)
            n_cancel_seen++;
        else
            FAIL("weft_blocking: %s", weft_strerror(s));
        n_blocking++;
        break;
    }
    default: {
        int s = weft_sleep(0);
        ASSERT(s == 0 || s == WEFT_ECANCELED);
        break;
    }
    }
}

static void expect_send_result(struct epoch *e, int r, const char *what)
{
    if (r == WEFT_ECLOSED)
        FAIL("epoch %d: %s returned ECLOSED before any channel was closed", e->id, what);
    if (r == WEFT_ECANCELED)
        n_cancel_seen++;
    else if (r == WEFT_ETIMEDOUT)
        n_timeouts++;
    else if (r == WEFT_EAGAIN)
        n_would_block++;
    else if (r != 0)
        FAIL("epoch %d: %s returned %d (%s)", e->id, what, r, weft_strerror(r));
}

/* One send attempt of v by any of the ways; 0 if it was delivered. */
static int send_once(struct epoch *e, struct rng *r, uint64_t v)
{
    int c = (int)rnd(r, (uint32_t)e->nch);
    uint32_t op = rnd(r, 100);
    int res;
    if (op < 30) {
        res = weft_chan_send(e->ch[c], &v);
        expect_send_result(e, res, "send");
        if (res == WEFT_ETIMEDOUT || res == WEFT_EAGAIN)
            FAIL("a blocking send returned %s", weft_strerror(res));
    } else if (op < 50) {
        res = weft_chan_send_until(e->ch[c], &v, small_deadline(r));
        expect_send_result(e, res, "send_until");
        if (res == WEFT_EAGAIN)
            FAIL("send_until returned EAGAIN");
    } else if (op < 65) {
        res = weft_chan_try_send(e->ch[c], &v);
        expect_send_result(e, res, "try_send");
        if (res == WEFT_ETIMEDOUT || res == WEFT_ECANCELED)
            FAIL("try_send returned %s", weft_strerror(res));
    } else {
        weft_case cs[4];
        int n = 1 + (int)rnd(r, 3);
        for (int i = 0; i < n; i++)
            cs[i] = (weft_case){e->ch[rnd(r, (uint32_t)e->nch)], WEFT_OP_SEND, &v, 12345};
        if (rnd(r, 4) == 0)
            cs[n++] = (weft_case){NULL, WEFT_OP_NONE, NULL, 12345};
        uint32_t k = rnd(r, 3);
        int64_t dl = k == 0 ? 0 : k == 1 ? small_deadline(r) : WEFT_FOREVER;
        res = weft_select(cs, n, dl);
        n_selects++;
        if (res >= 0) {
            if (res >= n || cs[res].op != WEFT_OP_SEND)
                FAIL("select returned case %d of %d", res, n);
            if (cs[res].result != 0)
                FAIL("select send case result %d before any close", cs[res].result);
            res = 0;
        } else {
            expect_send_result(e, res, "select(send)");
            if (res == WEFT_EAGAIN && dl != 0)
                FAIL("a select with a deadline returned EAGAIN");
            if (res == WEFT_ETIMEDOUT && dl == 0)
                FAIL("a select with a default case returned ETIMEDOUT");
        }
    }
    return res;
}

static void *producer(void *p)
{
    struct role *ro = p;
    struct epoch *e = ro->e;
    struct rng r = rng_for((uint64_t)e->id, 1, (uint64_t)ro->index);
    long sent = 0;
    for (uint32_t seq = 0; seq < e->m; seq++) {
        uint64_t v = pack(e, ro->index, seq);
        for (int attempt = 0; attempt < 8; attempt++) {
            if (rnd(&r, 16) == 0)
                detour(&r);
            int res = send_once(e, &r, v);
            if (res == 0) {
                mark_sent(e, ro->index, seq);
                sent++;
                break;
            }
            if (res == WEFT_ECANCELED)
                break; /* this one is dropped; carry on with the next */
        }
    }
    free(ro);
    return (void *)sent;
}

/* The plain-thread producer: sends with deadlines and try_send on the futex path, and spawns
 * one detached coroutine from outside the runtime's threads. */
static void *thread_producer(void *p)
{
    struct role *ro = p;
    struct epoch *e = ro->e;
    struct rng r = rng_for((uint64_t)e->id, 2, 0);
    for (uint32_t seq = 0; seq < e->m; seq++) {
        uint64_t v = pack(e, ro->index, seq);
        for (int attempt = 0; attempt < 8; attempt++) {
            int c = (int)rnd(&r, (uint32_t)e->nch);
            int res = rnd(&r, 3) == 0 ? weft_chan_try_send(e->ch[c], &v)
                                      : weft_chan_send_until(e->ch[c], &v, small_deadline(&r));
            if (res == 0) {
                mark_sent(e, ro->index, seq);
                break;
            }
            if (res != WEFT_EAGAIN && res != WEFT_ETIMEDOUT)
                FAIL("thread send: %s", weft_strerror(res));
        }
        if (seq == e->m / 2)
            spawn_task(NULL, offload_fn, (void *)2, "from-thread", &e->wg, 0);
    }
    free(ro);
    return NULL;
}

static void *join_thread(void *p)
{
    return (void *)(intptr_t)pthread_join(*(pthread_t *)p, NULL);
}

/* Cancellation is sticky: once a consumer was cancelled every wait would report it, yet
 * it must still drain its channels (every delivered message is received). So it checks that
 * the request stays (a yield reports it again) and carries on in a shield. */
static void consumer_shield(bool *shielded)
{
    if (*shielded || !weft_cancelled())
        return;
    ASSERT_EQ(weft_yield(), WEFT_ECANCELED);
    ASSERT_EQ(weft_cancelled(), 1);
    ASSERT_EQ(weft_shield_begin(), 0);
    *shielded = true;
}

static void *consumer(void *p)
{
    struct role *ro = p;
    struct epoch *e = ro->e;
    struct rng r = rng_for((uint64_t)e->id, 3, (uint64_t)ro->index);
    bool closed[MAXCH] = {false};
    int nclosed = 0;
    bool shielded = false;
    const uint64_t SENT = 0xdeadbeefcafef00dull;
    while (nclosed < e->nch) {
        consumer_shield(&shielded);
        uint32_t op = rnd(&r, 100);
        int c = (int)rnd(&r, (uint32_t)e->nch);
        uint64_t v = SENT;
        int res;
        if (op < 8) {
            detour(&r);
            continue;
        }
        if (op < 45) { /* select over every channel still open */
            weft_case cs[MAXCH + 1];
            uint64_t buf[MAXCH + 1];
            int n = 0;
            for (int i = 0; i < e->nch; i++) {
                buf[n] = SENT;
                cs[n] = closed[i] ? (weft_case){NULL, WEFT_OP_NONE, NULL, 777}
                                  : (weft_case){e->ch[i], WEFT_OP_RECV, &buf[n], 777};
                n++;
            }
            uint32_t k = rnd(&r, 4);
            int64_t dl = k == 0 ? 0 : k == 1 ? small_deadline(&r) : WEFT_FOREVER;
            res = weft_select(cs, n, dl);
            n_selects++;
            if (res >= 0) {
                if (res >= n || cs[res].op != WEFT_OP_RECV)
                    FAIL("select returned case %d", res);
                for (int i = 0; i < n; i++)
                    if (i != res && buf[i] != SENT)
                        FAIL("select received into case %d, not only the chosen %d", i, res);
                if (cs[res].result == 0) {
                    record_recv(e, buf[res], "select");
                } else if (cs[res].result == WEFT_ECLOSED) {
                    if (!atomic_load(&e->closing))
                        FAIL("select: ECLOSED before the close");
                    ASSERT_EQ(buf[res], SENT);
                    closed[res] = true;
                    nclosed++;
                } else {
                    FAIL("select case result %d", cs[res].result);
                }
                continue;
            }
            if (res == WEFT_ECANCELED)
                n_cancel_seen++;
            else if (res == WEFT_ETIMEDOUT && dl != 0 && dl != WEFT_FOREVER)
                n_timeouts++;
            else if (res == WEFT_EAGAIN && dl == 0)
                n_would_block++;
            else
                FAIL("select(recv) returned %d (%s), deadline %lld", res, weft_strerror(res),
                     (long long)dl);
            continue;
        }
        if (closed[c])
            continue;
        bool is_try = op >= 80;
        res = is_try ? weft_chan_try_recv(e->ch[c], &v)
                     : weft_chan_recv_until(
                           e->ch[c], &v, op < 60 ? small_deadline(&r) : weft_after(WEFT_MSEC(1)));
        if (res == 0) {
            record_recv(e, v, is_try ? "try_recv" : "recv_until");
        } else if (res == WEFT_ECLOSED) {
            if (!atomic_load(&e->closing))
                FAIL("recv: ECLOSED before the close");
            closed[c] = true;
            nclosed++;
        } else if (res == WEFT_ECANCELED && !is_try) {
            n_cancel_seen++;
        } else if (res == WEFT_ETIMEDOUT && !is_try) {
            n_timeouts++;
        } else if (res == WEFT_EAGAIN && is_try) {
            n_would_block++;
        } else {
            FAIL("%s returned %d (%s)", is_try ? "try_recv" : "recv_until", res,
                 weft_strerror(res));
        }
        if (res != 0)
            ASSERT_EQ(v, SENT); /* a failed receive writes nothing */
    }
    if (shielded)
        ASSERT_EQ(weft_shield_end(), 0);
    free(ro);
    return NULL;
}

/* Cancels random tasks of the epoch (some already joined: stale handles get ESTATE). */
static void *chaos(void *p)
{
    struct epoch *e = p;
    struct rng r = rng_for((uint64_t)e->id, 4, 0);
    while (!atomic_load(&e->stop_chaos)) {
        int s = weft_sleep(WEFT_USEC(rnd(&r, 400)));
        ASSERT(s == 0);
        int n = atomic_load(&e->nvictims);
        if (!n)
            continue;
        int res = weft_cancel(e->victims[rnd(&r, (uint32_t)n)]);
        if (res == 0)
            n_cancel_req++;
        else if (res == WEFT_ESTATE)
            n_stale++;
        else
            FAIL("weft_cancel: %s", weft_strerror(res));
    }
    return NULL;
}

static void add_victim(struct epoch *e, weft_task t)
{
    int n = atomic_load(&e->nvictims);
    if (n < MAXV) {
        e->victims[n] = t;
        atomic_store(&e->nvictims, n + 1);
    }
}

/* Mutex workload: increments a counter under the mutex; cancellations just skip one. */
static void *mutex_worker(void *p)
{
    struct role *ro = p;
    struct epoch *e = ro->e;
    struct rng r = rng_for((uint64_t)e->id, 5, (uint64_t)ro->index);
    int rounds = ops_scaled_small() ? 20 : 200;
    for (int i = 0; i < rounds; i++) {
        uint32_t k = rnd(&r, 3);
        int res = k == 0   ? weft_mutex_lock(&e->mu)
                  : k == 1 ? weft_mutex_lock_until(&e->mu, small_deadline(&r))
                           : weft_mutex_trylock(&e->mu);
        n_mutex_ops++;
        if (res == 0) {
            long g = e->guarded;
            if (rnd(&r, 4) == 0)
                weft_yield(); /* hold it across a switch */
            e->guarded = g + 1;
            e->locks_ok++;
            ASSERT_EQ(weft_mutex_unlock(&e->mu), 0);
        } else if (res == WEFT_ECANCELED) {
            n_cancel_seen++;
        } else if (!(res == WEFT_ETIMEDOUT && k == 1) && !(res == WEFT_EAGAIN && k == 2)) {
            FAIL("mutex lock (%u): %s", k, weft_strerror(res));
        }
    }
    free(ro);
    return NULL;
}

/* Pinned: never leaves its worker, whatever it does (also with WEFT_DEBUG_MIGRATE=1). */
static void *pinned_worker(void *p)
{
    struct role *ro = p;
    struct rng r = rng_for((uint64_t)ro->e->id, 6, (uint64_t)ro->index);
    bool self_pin = ro->index & 1;
    if (self_pin)
        ASSERT_EQ(weft_pin(), 0);
    int w = weft_worker_index();
    ASSERT(w >= 0);
    for (int i = 0; i < 30; i++) {
        detour(&r);
        if (weft_worker_index() != w)
            FAIL("a pinned coroutine moved from worker %d to %d", w, weft_worker_index());
    }
    if (self_pin)
        ASSERT_EQ(weft_unpin(), 0);
    free(ro);
    return NULL;
}

/* Two coroutines alternate through two semaphores: the turn counter must alternate. */
struct pingpong {
    weft_sem a, b;
    _Atomic long turn;
    int rounds;
};

static void *ping(void *p)
{
    struct pingpong *pp = p;
    for (int i = 0; i < pp->rounds; i++) {
        ASSERT_EQ(weft_sem_wait(&pp->a), 0);
        long t = atomic_fetch_add(&pp->turn, 1);
        if (t != 2 * i)
            FAIL("ping-pong out of turn: %ld, expected %d", t, 2 * i);
        ASSERT_EQ(weft_sem_post(&pp->b), 0);
    }
    return NULL;
}

static void *pong(void *p)
{
    struct pingpong *pp = p;
    for (int i = 0; i < pp->rounds; i++) {
        ASSERT_EQ(weft_sem_wait(&pp->b), 0);
        long t = atomic_fetch_add(&pp->turn, 1);
        if (t != 2 * i + 1)
            FAIL("ping-pong out of turn: %ld, expected %d", t, 2 * i + 1);
        ASSERT_EQ(weft_sem_post(&pp->a), 0);
    }
    return NULL;
}

/* Short-lived children, joined (sometimes with a deadline first) or detached. */
static void *child(void *p)
{
    uintptr_t v = (uintptr_t)p;
    switch (v % 5) {
    case 0:
        weft_yield();
        break;
    case 1:
        weft_sleep(WEFT_USEC(v % 50));
        break;
    case 2: {
        char name[32];
        snprintf(name, sizeof name, "child-%lu", (unsigned long)v);
        ASSERT_EQ(weft_set_name(weft_self(), name), 0);
        break;
    }
    case 3:
        set_local();
        break;
    default:
        break;
    }
    return (void *)(v * 2);
}

static void *spawner(void *p)
{
    struct role *ro = p;
    struct epoch *e = ro->e;
    struct rng r = rng_for((uint64_t)e->id, 7, (uint64_t)ro->index);
    int waves = ops_scaled_small() ? 3 : 10;
    int width = ops_scaled_small() ? 16 : 48;
    for (int w = 0; w < waves; w++) {
        weft_task ts[64];
        uintptr_t args[64];
        int n = 1 + (int)rnd(&r, (uint32_t)width);
        for (int i = 0; i < n; i++) {
            args[i] = rnd(&r, 1u << 20);
            bool detach = rnd(&r, 3) == 0;
            spawn_task(detach ? NULL : &ts[i], child, (void *)args[i], NULL, &e->wg, 0);
            if (detach)
                ts[i] = (weft_task){NULL, 0};
        }
        for (int i = 0; i < n; i++) {
            if (!ts[i].id)
                continue;
            if (rnd(&r, 4) == 0) { /* detach after the fact: fine, finished or not */
                ASSERT_EQ(weft_detach(ts[i]), 0);
                ASSERT_EQ(weft_detach(ts[i]), WEFT_ESTATE);
                ASSERT_EQ(weft_join(ts[i], NULL), WEFT_ESTATE);
                n_detached++;
                continue;
            }
            void *res = NULL;
            int jr = rnd(&r, 3) == 0 ? weft_join_until(ts[i], &res, weft_after(WEFT_USEC(20)))
                                     : WEFT_ETIMEDOUT;
            if (jr == WEFT_ETIMEDOUT)
                res = join_task(ts[i]);
            else if (jr == 0)
                n_joined++;
            else
                FAIL("join_until: %s", weft_strerror(jr));
            if (res != (void *)(args[i] * 2))
                FAIL("joined child returned %p, expected %p", res, (void *)(args[i] * 2));
            ASSERT_EQ(weft_join(ts[i], NULL), WEFT_ESTATE); /* the handle is spent */
            ASSERT_EQ(weft_cancel(ts[i]), WEFT_ESTATE);
        }
    }
    /* Detached children finish on their own; the epoch's wait group covers them. */
    free(ro);
    return NULL;
}

/* A group whose children outlive its deadline: wait_until cancels and joins them all. */
static _Atomic long group_children_done;
static void *group_child(void *p)
{
    int s = weft_sleep(WEFT_USEC((uintptr_t)p));
    ASSERT(s == 0 || s == WEFT_ECANCELED);
    group_children_done++;
    return NULL;
}

static void *grouper(void *p)
{
    struct role *ro = p;
    struct rng r = rng_for((uint64_t)ro->e->id, 8, 0);
    weft_group *g;
    ASSERT_EQ(weft_group_create(&g), 0);
    int n = 1 + (int)rnd(&r, 8);
    long before = group_children_done;
    for (int i = 0; i < n; i++) {
        void *ms = (void *)(uintptr_t)rnd(&r, 3000);
        ASSERT_EQ(weft_group_spawn(g, tramp, box_new(group_child, ms, NULL)), 0);
        n_spawned++;
    }
    int res = weft_group_wait_until(g, weft_after(WEFT_USEC(rnd(&r, 2000))));
    if (res != 0 && res != WEFT_ETIMEDOUT && res != WEFT_ECANCELED)
        FAIL("group_wait_until: %s", weft_strerror(res));
    if (res == WEFT_ECANCELED)
        n_cancel_seen++;
    ASSERT(group_children_done - before >= n); /* every child has finished */
    n_joined += n;
    weft_group_free(g);
    free(ro);
    return NULL;
}

static struct role *role(struct epoch *e, int i)
{
    struct role *ro = malloc(sizeof *ro);
    ASSERT(ro);
    ro->e = e;
    ro->index = i;
    return ro;
}

static void run_epoch(int id)
{
    struct rng r = rng_for((uint64_t)id, 0, 0);
    struct epoch *e = calloc(1, sizeof *e);
    ASSERT(e);
    e->id = id;
    e->nch = 1 + (int)rnd(&r, MAXCH);
    static const int caps[] = {0, 0, 1, 3, 16};
    for (int i = 0; i < e->nch; i++) {
        e->cap[i] = caps[rnd(&r, 5)];
        ASSERT_EQ(weft_chan_create(&e->ch[i], sizeof(uint64_t), (size_t)e->cap[i]), 0);
    }
    e->np = 1 + (int)rnd(&r, MAXP);
    e->nprod = e->np + 1;
    e->nc = 1 + (int)rnd(&r, MAXC);
    e->m = 1 + rnd(&r, ops_scaled_small() ? 300 : 3000);
    e->words = (int)((e->m + 63) / 64);
    e->sent = calloc((size_t)e->nprod * e->words, sizeof *e->sent);
    e->recvd = calloc((size_t)e->nprod * e->words, sizeof *e->recvd);
    ASSERT(e->sent && e->recvd);
    ASSERT_EQ(weft_wg_init(&e->wg), 0);
    ASSERT_EQ(weft_mutex_init(&e->mu), 0);
    long spawned0 = n_spawned;

    weft_task cons[MAXC], prod[MAXP], extra[16];
    int nextra = 0;
    bool prod_joinable[MAXP];
    for (int i = 0; i < e->nc; i++) {
        spawn_task(&cons[i], consumer, role(e, i), "consumer", NULL, 0);
        add_victim(e, cons[i]);
    }
    for (int i = 0; i < e->np; i++) {
        prod_joinable[i] = rnd(&r, 4) != 0;
        spawn_task(prod_joinable[i] ? &prod[i] : NULL, producer, role(e, i), "producer", &e->wg,
                   rnd(&r, 8) == 0);
        if (prod_joinable[i])
            add_victim(e, prod[i]);
    }
    pthread_t thr;
    ASSERT_EQ(pthread_create(&thr, NULL, thread_producer, role(e, e->np)), 0);

    int nmutex = 1 + (int)rnd(&r, 4);
    for (int i = 0; i < nmutex; i++) {
        spawn_task(&extra[nextra], mutex_worker, role(e, i), "mutex", NULL, 0);
        add_victim(e, extra[nextra++]);
    }
    for (int i = 0; i < 2; i++)
        spawn_task(&extra[nextra++], pinned_worker, role(e, i), "pinned", NULL, i == 0);
    spawn_task(&extra[nextra++], spawner, role(e, 0), "spawner", NULL, 0);
    spawn_task(&extra[nextra], grouper, role(e, 0), "grouper", NULL, 0);
    add_victim(e, extra[nextra++]);
    struct pingpong *pp = calloc(1, sizeof *pp);
    ASSERT(pp);
    pp->rounds = ops_scaled_small() ? 50 : 500;
    ASSERT_EQ(weft_sem_init(&pp->a, 1), 0);
    ASSERT_EQ(weft_sem_init(&pp->b, 0), 0);
    spawn_task(&extra[nextra++], ping, pp, "ping", NULL, 0);
    spawn_task(&extra[nextra++], pong, pp, "pong", NULL, 0);
    weft_task tchaos;
    spawn_task(&tchaos, chaos, e, "chaos", NULL, 0);

    /* Producers first; then no more cancellations; then close and let consumers drain. */
    for (int i = 0; i < e->np; i++)
        if (prod_joinable[i])
            join_task(prod[i]);
    void *jr = NULL;
    ASSERT_EQ(weft_blocking(join_thread, &thr, &jr), 0);
    ASSERT(jr == NULL);
    atomic_store(&e->stop_chaos, 1);
    join_task(tchaos);
    for (int i = 0; i < nextra; i++)
        join_task(extra[i]);
    /* Detached producers and children: the wait group (this coroutine is never cancelled). */
    ASSERT_EQ(weft_wg_wait(&e->wg), 0);
    atomic_store(&e->closing, 1);
    for (int i = 0; i < e->nch; i++) {
        ASSERT_EQ(weft_chan_close(e->ch[i]), 0);
        ASSERT_EQ(weft_chan_close(e->ch[i]), WEFT_ECLOSED);
        uint64_t v = 1;
        ASSERT_EQ(weft_chan_send(e->ch[i], &v), WEFT_ECLOSED);
        ASSERT_EQ(weft_chan_try_send(e->ch[i], &v), WEFT_ECLOSED);
    }
    for (int i = 0; i < e->nc; i++)
        join_task(cons[i]);
    /* Consumers stop at ECLOSED, which comes only once a channel is empty: nothing is left. */
    for (int i = 0; i < e->nch; i++) {
        uint64_t v;
        ASSERT_EQ(weft_chan_len(e->ch[i]), 0);
        ASSERT_EQ(weft_chan_try_recv(e->ch[i], &v), WEFT_ECLOSED);
        weft_chan_unref(e->ch[i]);
    }

    /* Exactly once: recvd == sent, bit for bit. */
    for (int p = 0; p < e->nprod; p++)
        for (int w = 0; w < e->words; w++) {
            uint64_t s = e->sent[(size_t)p * e->words + w], g = e->recvd[(size_t)p * e->words + w];
            if (s != g) {
                uint64_t d = s ^ g;
                uint32_t seq = (uint32_t)w * 64 + (uint32_t)__builtin_ctzll(d);
                FAIL("epoch %d: message (producer %d, seq %u) was %s", id, p, seq,
                     (s & (d & -d)) ? "sent but never received (lost)"
                                    : "received but its send failed (phantom)");
            }
            checks++;
        }
    if (e->guarded != e->locks_ok)
        FAIL("mutex: counter %ld after %ld successful locks", e->guarded, (long)e->locks_ok);
    if (pp->turn != 2 * pp->rounds)
        FAIL("ping-pong: %ld turns", (long)pp->turn);
    /* Every task spawned in this epoch has finished (the joins and the wait group saw to it
     * — and tramp counts before it marks the wait group — except tasks detached after the
     * fact, which nobody waits for: give those a bounded time to finish; a lost one fails). */
    for (int waited = 0; n_spawned != n_finished && waited < 10000; waited++)
        weft_sleep(WEFT_MSEC(1));
    if (n_spawned != n_finished)
        FAIL("epoch %d: %ld spawned, %ld finished", id, (long)n_spawned, (long)n_finished);
    (void)spawned0;
    free(pp);
    free(e->sent);
    free(e->recvd);
    free(e);
    n_epochs++;
}

/* ------------------------------------------------------------------------------------------
 * Driver and watchdog. */

static _Atomic int soak_done;
static int watchdog_secs;

static void *watchdog(void *unused)
{
    (void)unused;
    long last = -1;
    int64_t since = weft_now();
    while (!atomic_load(&soak_done)) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
        long now_epochs = n_epochs;
        if (now_epochs != last) {
            last = now_epochs;
            since = weft_now();
        } else if (weft_now() - since > WEFT_SEC(watchdog_secs)) {
            fprintf(stderr,
                    "test_soak: HANG: no epoch finished for %d s (seed %llu, epoch %ld); "
                    "the coroutines:\n",
                    watchdog_secs, (unsigned long long)g_seed, last);
            weft_dump(stderr);
            fflush(stderr);
            abort();
        }
    }
    return NULL;
}

static double soak_seconds;

static int app(void *unused)
{
    (void)unused;
    int64_t end = weft_now() + (int64_t)(soak_seconds * 1e9);
    int epoch = 0;
    do
        run_epoch(epoch++);
    while (weft_now() < end);
    /* Detached tasks may still be on their way out (after wg_done): wait for the count. */
    int64_t dl = weft_now() + WEFT_SEC(60);
    weft_stats st;
    for (;;) {
        ASSERT_EQ(weft_stats_get(&st), 0);
        if (st.alive == 1)
            break;
        if (weft_now() > dl)
            FAIL("%llu coroutines alive at the end, expected only main",
                 (unsigned long long)st.alive);
        weft_sleep(WEFT_MSEC(1));
    }
    if (n_local_set != n_local_dtor)
        FAIL("%ld coroutine-local values set, %ld destroyed", (long)n_local_set,
             (long)n_local_dtor);
    printf("test_soak: %d epochs; %ld messages sent, %ld received; %ld coroutines spawned "
           "(%ld joined, %ld detached), %ld finished; %ld cancels requested (%ld stale "
           "handles), %ld seen; %ld selects, %ld timeouts, %ld would-block, %ld offloads, "
           "%ld sleeps, %ld mutex ops; %llu switches, %llu steals\n",
           epoch, (long)n_sent, (long)n_recvd, (long)n_spawned, (long)n_joined, (long)n_detached,
           (long)n_finished, (long)n_cancel_req, (long)n_stale, (long)n_cancel_seen,
           (long)n_selects, (long)n_timeouts, (long)n_would_block, (long)n_blocking, (long)n_sleeps,
           (long)n_mutex_ops, (unsigned long long)st.switches, (unsigned long long)st.steals);
    ASSERT_EQ(n_sent, n_recvd);
    ASSERT_EQ(n_spawned, n_finished);
    ASSERT_EQ(n_joined + n_detached, n_spawned); /* each handle joined or detached once */
    return 0;
}

int main(void)
{
    const char *s = getenv("WEFT_SOAK_SEED");
    g_seed = s && *s
                 ? strtoull(s, NULL, 0)
                 : (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid() ^ (uint64_t)weft_now();
    const char *secs = getenv("WEFT_SOAK_SECONDS");
    if (secs && *secs) {
        soak_seconds = atof(secs);
    } else {
        /* CI (CI=true) soaks for about a minute in the plain build; local runs are shorter. */
        const char *ci = getenv("CI");
        soak_seconds = TEST_SCALE > 1 ? 6 : (ci && *ci ? 60 : 20);
        const char *sc = getenv("WEFT_TEST_SCALE");
        if (sc && atol(sc) > 1)
            soak_seconds /= (double)atol(sc);
    }
    small_sizes = TEST_SCALE > 1 || getenv("WEFT_TEST_SCALE");
    const char *th = getenv("WEFT_SOAK_THREADS");
    int threads = th && *th ? atoi(th) : 4;
    watchdog_secs = TEST_SCALE > 1 ? 300 : 120;
    printf("test_soak: seed %llu, %.1f s, %d workers (replay: WEFT_SOAK_SEED=%llu "
           "WEFT_SOAK_SECONDS=%g)\n",
           (unsigned long long)g_seed, soak_seconds, threads, (unsigned long long)g_seed,
           soak_seconds);
    fflush(stdout);

    ASSERT_EQ(weft_local_create(&local_key, local_dtor), 0);
    pthread_t wd;
    ASSERT_EQ(pthread_create(&wd, NULL, watchdog, NULL), 0);
    weft_config cfg = {.threads = threads};
    int r = weft_run(app, NULL, &cfg);
    atomic_store(&soak_done, 1);
    pthread_join(wd, NULL);
    ASSERT_EQ(r, 0);
    TEST_PASS("test_soak", checks + n_recvd);
    return 0;
}
