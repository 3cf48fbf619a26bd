/* SPDX-License-Identifier: MIT */
/* gate.c — floor 4 (waiting): plain threads' admission to the runtime and their release at shutdown
 * (gate.h).
 *
 * Ordering. Two Dekker pairs, both on seq_cst operations of the two gate words:
 *   - admission: a plain thread increments `inside`, then loads `state`; weft_run stores
 *     BUSY into `state`, then loads `inside`. In the single total order of seq_cst
 *     operations one of them comes first: either the thread sees BUSY (and leaves without
 *     touching anything), or weft_run sees the thread counted and waits for it to leave.
 *   - leaving: the thread decrements `inside`, then loads `state`, and wakes weft_run's futex
 *     wait only if it sees BUSY. If it does not, its decrement preceded the BUSY store, so
 *     weft_run's later load of `inside` already sees it: no wake-up is lost.
 * Memory: the decrement is a release and weft_run's load that finds 0 an acquire (every
 * decrement is a read-modify-write, so that load synchronises with all of them): what the
 * threads did inside happens before weft_run frees. The store of OPEN (seq_cst, so a
 * release) is read by the admitting load (an acquire): weft__rt and the runtime weft_run set
 * up before opening are visible to every admitted thread.
 *
 * The parker list is guarded by list_mu. weft__gate_close stores BUSY before it takes
 * list_mu, and weft__gate_track reads the state under list_mu: a thread that links itself
 * is found by the sweep, a thread that comes after it sees BUSY. The sweep completes
 * parkers while holding list_mu, and a thread unlinks its parker under list_mu before its
 * frame can go: the sweep never writes into a frame that is gone. */
#include "gate.h"
#include "futex.h"

#include <limits.h>
#include <pthread.h>

struct weft__gate weft__gate;
/* The calling plain thread's entry: 0 (not counted), WEFT__IN_OPEN or WEFT__IN_NONE. Gated
 * calls never nest, so one value per thread. */
static WEFT_TLS int gate_mode;

int weft__gate_mode(void)
{
    return gate_mode;
}

static pthread_mutex_t list_mu = PTHREAD_MUTEX_INITIALIZER;
static struct weft__thread_parker *list_head; /* tracked parkers, under list_mu */

void weft__gate_leave(void)
{
    gate_mode = 0;
    atomic_fetch_sub_explicit(&weft__gate.inside, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&weft__gate.state, memory_order_seq_cst) == WEFT__GATE_BUSY)
        weft__futex_wake(&weft__gate.inside, 1);
}

__thread bool weft__gate_pool_thread;

int weft__gate_enter(void)
{
    for (;;) {
        atomic_fetch_add_explicit(&weft__gate.inside, 1, memory_order_seq_cst);
        uint32_t s = atomic_load_explicit(&weft__gate.state, memory_order_seq_cst);
        if (s != WEFT__GATE_BUSY)
            return gate_mode = s == WEFT__GATE_OPEN ? WEFT__IN_OPEN : WEFT__IN_NONE;
        /* A blocking-pool thread never waits out BUSY: a stopping weft_run waits for the
         * pool's threads (weft__blocking_shutdown), so it would wait for us. It is counted
         * in as if no runtime ran (it never sleeps tracked: weft__gate_track refuses when
         * not OPEN) and leaves soon, so the close's wait for the count still ends. Pool
         * threads exist only between a run's start and its blocking shutdown, so BUSY here
         * is always a stop. */
        if (weft__gate_pool_thread)
            return gate_mode = WEFT__IN_NONE;
        /* BUSY: not counted while we wait (weft_run is waiting for the count to drop). */
        weft__gate_leave();
        weft__futex_wait(&weft__gate.state, WEFT__GATE_BUSY, INT64_MAX);
    }
}

bool weft__gate_try(void)
{
    atomic_fetch_add_explicit(&weft__gate.inside, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&weft__gate.state, memory_order_seq_cst) == WEFT__GATE_OPEN) {
        gate_mode = WEFT__IN_OPEN;
        return true;
    }
    weft__gate_leave();
    return false;
}

bool weft__gate_track(struct weft__thread_parker *tp)
{
    pthread_mutex_lock(&list_mu);
    /* relaxed: list_mu orders this load after a close's store of BUSY (see the top). */
    bool ok = atomic_load_explicit(&weft__gate.state, memory_order_relaxed) == WEFT__GATE_OPEN;
    if (ok) {
        tp->gprev = NULL;
        tp->gnext = list_head;
        if (list_head)
            list_head->gprev = tp;
        list_head = tp;
    }
    pthread_mutex_unlock(&list_mu);
    return ok;
}

void weft__gate_untrack(struct weft__thread_parker *tp)
{
    pthread_mutex_lock(&list_mu);
    if (tp->gprev)
        tp->gprev->gnext = tp->gnext;
    else
        list_head = tp->gnext;
    if (tp->gnext)
        tp->gnext->gprev = tp->gprev;
    pthread_mutex_unlock(&list_mu);
}

int weft__gate_sleepers(void)
{
    int n = 0;
    pthread_mutex_lock(&list_mu);
    for (struct weft__thread_parker *tp = list_head; tp; tp = tp->gnext)
        n++;
    pthread_mutex_unlock(&list_mu);
    return n;
}

/* weft_run's thread, the state BUSY: wait until every counted plain thread has left.
 * seq_cst (an acquire): see the top. Only threads counted before BUSY stay counted, and
 * none of them sleeps any more (weft__gate_track refuses, the sweep woke the sleepers), so
 * this ends. */
static void wait_empty(void)
{
    uint32_t n;
    while ((n = atomic_load_explicit(&weft__gate.inside, memory_order_seq_cst)) != 0)
        weft__futex_wait(&weft__gate.inside, n, INT64_MAX);
}

static void set_state(uint32_t s)
{
    atomic_store_explicit(&weft__gate.state, s, memory_order_seq_cst);
    if (s != WEFT__GATE_BUSY)
        weft__futex_wake(&weft__gate.state, INT_MAX);
}

void weft__gate_open(void)
{
    /* Threads counted in while STOPPED use objects without a runtime; they must be gone
     * before this run's coroutines can wait on those objects. */
    set_state(WEFT__GATE_BUSY);
    wait_empty();
    set_state(WEFT__GATE_OPEN);
}

void weft__gate_close(void)
{
    set_state(WEFT__GATE_BUSY);
    pthread_mutex_lock(&list_mu);
    for (struct weft__thread_parker *tp = list_head; tp; tp = tp->gnext) {
        /* A parker already claimed by a waker is completed by that waker (it is a plain
         * thread inside a call, or the worker that claimed it finished before stopping). */
        struct weft__waker k = {.co = NULL, .token = 0, .tp = tp};
        weft__waker_wake(&k, WEFT_ENORUNTIME, false);
    }
    pthread_mutex_unlock(&list_mu);
    wait_empty();
}

void weft__gate_stopped(void)
{
    set_state(WEFT__GATE_STOPPED);
}

void weft__gate_atfork(int phase)
{
    if (phase == WEFT_FORK_PREPARE) {
        pthread_mutex_lock(&list_mu);
        return;
    }
    if (phase == WEFT_FORK_CHILD) {
        /* No runtime and no other thread in the child: nobody inside, nobody tracked. */
        atomic_store_explicit(&weft__gate.state, WEFT__GATE_STOPPED, memory_order_relaxed);
        atomic_store_explicit(&weft__gate.inside, 0, memory_order_relaxed);
        list_head = NULL;
        gate_mode = 0;
    }
    pthread_mutex_unlock(&list_mu); /* in the child too: its thread is the one that took it */
}
