/* SPDX-License-Identifier: MIT */
/* sim_bugs.c — three planted concurrency bugs for weft-explore (tests/test_explore.sh):
 *
 *   sim_bugs lostwake   a waiter checks a flag, then (without holding the mutex, and after a
 *                       yield) waits on a condition variable: a signal sent in between is
 *                       lost, and the wait times out.
 *   sim_bugs checkact   two withdrawals check the balance, yield, then subtract: unlocked
 *                       check-then-act, the balance goes negative.
 *   sim_bugs timerchan  the program assumes a worker's reply (after a 10 ms sleep and some
 *                       steps) arrives before a 10 ms ticker's first tick.
 *
 * Each prints `BUG: ...` on stderr and exits 1 when its bug shows, 0 otherwise. With a
 * second argument `fixed` each runs the corrected code instead (the check under the mutex,
 * the re-check loop; the check-then-act under a mutex; a select that waits for the reply).
 * A few busy coroutines (`noise`) yield around them, so that a bug needs an unlucky
 * interleaving. A normal run (no seed) shows them or not depending on the run, and cannot
 * replay one; under a seed each run of that seed does the same. */
#include <weft.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fixed;

static void *noise(void *arg)
{
    for (int i = 0; i < (int)(intptr_t)arg; i++)
        weft_yield();
    return NULL;
}

static void spawn_noise(int n, int steps)
{
    for (int i = 0; i < n; i++)
        weft_spawn(NULL, noise, (void *)(intptr_t)steps);
}

/* Spawn a and b and wait for both. */
static void pair(weft_fn a, weft_fn b)
{
    weft_task ta, tb;
    weft_spawn(&ta, a, NULL);
    weft_spawn(&tb, b, NULL);
    weft_join(ta, NULL);
    weft_join(tb, NULL);
}

static void bug(const char *msg)
{
    fprintf(stderr, "BUG: %s\n", msg);
    fflush(stderr);
    _exit(1); /* from a coroutine, mid-run: no exit handlers (LSan would report the run) */
}

/* ------------------------------------------------------------------------------------------
 * A lost wake-up. */

static weft_mutex mu;
static weft_cond cv;
static int ready;

static void *waiter(void *arg)
{
    (void)arg;
    if (!fixed) {
        if (!ready) {     /* checked without the mutex... */
            weft_yield(); /* ...something else runs (here: anything may) ... */
            weft_mutex_lock(&mu);
            int r = weft_cond_wait_until(&cv, &mu, weft_after(WEFT_SEC(1)));
            weft_mutex_unlock(&mu);
            if (r == WEFT_ETIMEDOUT)
                bug("lost wake-up: the waiter slept through the signal");
        }
        return NULL;
    }
    weft_mutex_lock(&mu);
    while (!ready)
        if (weft_cond_wait_until(&cv, &mu, weft_after(WEFT_SEC(1))) == WEFT_ETIMEDOUT)
            bug("lost wake-up in the fixed waiter");
    weft_mutex_unlock(&mu);
    return NULL;
}

static void *setter(void *arg)
{
    (void)arg;
    weft_yield();
    weft_mutex_lock(&mu);
    ready = 1;
    weft_cond_signal(&cv);
    weft_mutex_unlock(&mu);
    return NULL;
}

static void lostwake(void)
{
    weft_mutex_init(&mu);
    weft_cond_init(&cv);
    spawn_noise(6, 4);
    pair(waiter, setter);
}

/* ------------------------------------------------------------------------------------------
 * An unlocked check-then-act. */

static int balance = 10;

static void *withdraw(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++)
        weft_yield(); /* arrive at some point */
    if (fixed)
        weft_mutex_lock(&mu);
    if (balance >= 10) {
        weft_yield(); /* the check and the act are apart */
        balance -= 10;
    }
    if (fixed)
        weft_mutex_unlock(&mu);
    return NULL;
}

static void checkact(void)
{
    weft_mutex_init(&mu);
    spawn_noise(8, 6);
    pair(withdraw, withdraw);
    if (balance < 0)
        bug("overdrawn: both withdrawals passed the balance check");
}

/* ------------------------------------------------------------------------------------------
 * A timer-versus-channel ordering assumption. */

static weft_chan *reply;

static void *worker(void *arg)
{
    (void)arg;
    weft_sleep(WEFT_MSEC(10)); /* "the work takes 10 ms" */
    for (int i = 0; i < 2; i++)
        weft_yield(); /* and a few steps more */
    int v = 42;
    weft_chan_send(reply, &v);
    return NULL;
}

static void timerchan(void)
{
    weft_chan_create(&reply, sizeof(int), 1);
    weft_ticker *tk;
    weft_ticker_start(&tk, WEFT_MSEC(10));
    weft_task w;
    weft_spawn(&w, worker, NULL);
    spawn_noise(4, 8);
    int v;
    int64_t tick;
    if (!fixed) {
        /* Assumes the reply comes first: "the worker's 10 ms are up by the first tick". */
        weft_case c[2] = {{.ch = reply, .op = WEFT_OP_RECV, .elem = &v},
                          {.ch = weft_ticker_chan(tk), .op = WEFT_OP_RECV, .elem = &tick}};
        if (weft_select(c, 2, WEFT_FOREVER) == 1)
            bug("the ticker ticked before the reply came");
    } else {
        weft_chan_recv(reply, &v); /* the reply, whenever it comes */
    }
    weft_ticker_stop(tk);
    weft_join(w, NULL);
    weft_chan_unref(reply);
}

static int run(void *arg)
{
    const char *mode = arg;
    if (!strcmp(mode, "lostwake"))
        lostwake();
    else if (!strcmp(mode, "checkact"))
        checkact();
    else if (!strcmp(mode, "timerchan"))
        timerchan();
    else
        return 2;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: sim_bugs lostwake|checkact|timerchan [fixed]\n");
        return 2;
    }
    fixed = argc > 2 && !strcmp(argv[2], "fixed");
    int r = weft_run(run, argv[1], NULL);
    if (r == 2)
        fprintf(stderr, "sim_bugs: unknown mode %s\n", argv[1]);
    return r;
}
