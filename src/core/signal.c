/* SPDX-License-Identifier: MIT */
/* signal.c — signals delivered as values on channels (Go's os/signal Notify and Stop).
 *
 * A coroutine cannot wait for a signal, and nothing in weft is async-signal-safe, so a
 * signal passes through three hands:
 *   1. The handler, on whichever thread the kernel picked (one that has the signal
 *      unblocked), sets the signal's bit in `pending` (a lock-free atomic OR) and posts
 *      `wake` (sem_post is async-signal-safe). It touches nothing else, and saves errno.
 *   2. The delivery thread, a plain thread with every signal blocked, started by the first
 *      registration and joined when the last one goes, waits on `wake`, takes all pending
 *      bits at once (atomic exchange) and, for each, try-sends the signal number to every
 *      channel registered for it, in the order of registration.
 *   3. Whoever receives from those channels: coroutines or plain threads.
 * Why a handler rather than sigwait or a signalfd: both need the signal blocked in EVERY
 * thread of the process, or the kernel delivers it to a thread that has it unblocked and
 * the default action runs (SIGTERM kills the process). Workers already run when a coroutine
 * registers, and threads created by the program or its libraries are beyond our reach. A
 * handler works whichever thread takes the signal; a thread that blocks the signal just
 * does not take it (if every thread blocks it, it stays pending, as always).
 *
 * Delivery is Go's: never blocking. A full channel drops the signal, and several signals of
 * one number that arrive before the delivery thread runs count as one (the pending set is a
 * bit mask, like the kernel's own for standard signals).
 *
 * Invariants:
 *   - life_mu serialises weft_signal_notify and weft_signal_stop, hence installing and
 *     restoring handlers (old_action, installed) and starting and joining the thread.
 *   - regs / nreg / cap_regs change under both life_mu and reg_mu; the delivery thread
 *     reads them under reg_mu only, and while it holds reg_mu takes no lock but a channel's
 *     own (inside weft_chan_try_send, which never waits), so a notify or stop that needs
 *     reg_mu waits at most for one delivery loop.
 *   - A signal's handler is installed while some registration names it: by the notify that
 *     adds the first, and the disposition saved then is restored by the stop that removes
 *     the last.
 *   - Each registration holds a reference on its channel (weft_chan_ref), dropped by the
 *     stop that removes it, after which the delivery thread no longer sees the channel
 *     (removed under reg_mu): it never sends on a freed channel.
 *   - The delivery thread runs exactly while nreg > 0 (started under life_mu by the notify
 *     that adds the first registration, stopped and joined under life_mu by the stop that
 *     removes the last; `quit` is read by the thread after each wake-up). `pending` and
 *     `wake` live forever (a handler may still run on another thread while a stop restores
 *     the old disposition), so they are never destroyed.
 *   - fork() (fork.c calls weft__signal_atfork first of all, as these locks are taken before
 *     any other of weft's: the delivery thread holds reg_mu while a send may reach the gate's
 *     lock): the child has no delivery thread and cannot use the parent's channels, so it
 *     starts with no registration and every handler of ours replaced by the disposition it
 *     saved (a child that registered nothing must not swallow a SIGTERM). */
#define _GNU_SOURCE
#include "chan.h"
#include "runtime.h"

#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* Signals 1..WEFT__SIGMAX fit the bit mask (Linux: 64, the last real-time signal). */
#define WEFT__SIGMAX 64

struct reg {
    weft_chan *ch;
    uint64_t mask; /* bit signo - 1 */
};

static pthread_mutex_t life_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct reg *regs;
static int nreg, cap_regs;
static struct sigaction old_action[WEFT__SIGMAX + 1]; /* under life_mu */
static uint64_t installed;                            /* under life_mu: handlers in place */

/* Written by handlers (any thread), taken by the delivery thread. relaxed would do for the
 * bits themselves (nothing else is published with them); release/acquire keeps the order
 * "bit set, then post" visible as "woken, then bit seen" (the semaphore orders it too). */
static _Atomic uint64_t pending;
static sem_t wake;
static pthread_once_t wake_once = PTHREAD_ONCE_INIT;
static _Atomic int quit;
static pthread_t deliverer;

static void on_signal(int signo)
{
    int saved = errno;
    atomic_fetch_or_explicit(&pending, 1ull << (signo - 1), memory_order_release);
    sem_post(&wake); /* async-signal-safe; an overflowing count (EOVERFLOW) is harmless */
    errno = saved;
}

static void *deliver_loop(void *arg)
{
    (void)arg;
    for (;;) {
        while (sem_wait(&wake) != 0) { /* EINTR: not for us (all signals are blocked) */
        }
        if (atomic_load_explicit(&quit, memory_order_acquire))
            return NULL;
        uint64_t bits = atomic_exchange_explicit(&pending, 0, memory_order_acquire);
        while (bits) {
            int signo = __builtin_ctzll(bits) + 1;
            bits &= bits - 1;
            pthread_mutex_lock(&reg_mu);
            for (int i = 0; i < nreg; i++)
                if (regs[i].mask & (1ull << (signo - 1)))
                    weft_chan_try_send(regs[i].ch, &signo); /* full, closed, no runtime: dropped */
            pthread_mutex_unlock(&reg_mu);
        }
    }
}

static void wake_init(void)
{
    sem_init(&wake, 0, 0);
}

/* Under life_mu: start the delivery thread with every signal blocked in it (it inherits
 * the creating thread's mask, which we set for the duration of pthread_create). */
static int start_deliverer(void)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    atomic_store_explicit(&quit, 0, memory_order_relaxed);
    int e = pthread_create(&deliverer, NULL, deliver_loop, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return e ? -e : 0;
}

/* Under life_mu: stop and join the delivery thread (it takes no lock we hold but reg_mu,
 * which we do not hold here). */
static void stop_deliverer(void)
{
    atomic_store_explicit(&quit, 1, memory_order_release);
    sem_post(&wake);
    pthread_join(deliverer, NULL);
}

static bool refused(int signo)
{
    /* Cannot be caught (KILL, STOP), or synchronous faults whose handler would return into
     * the faulting instruction again (SEGV and BUS are also weft's guard-page report). */
    return signo < 1 || signo > WEFT__SIGMAX || signo >= NSIG || signo == SIGKILL ||
           signo == SIGSTOP || signo == SIGSEGV || signo == SIGBUS || signo == SIGFPE ||
           signo == SIGILL || signo == SIGTRAP || signo == SIGSYS;
}

/* Under life_mu: is some registration watching signo? */
static bool watched(int signo)
{
    for (int i = 0; i < nreg; i++)
        if (regs[i].mask & (1ull << (signo - 1)))
            return true;
    return false;
}

int weft_signal_notify(weft_chan *ch, int signo)
{
    if (!ch || ch->elem_size != sizeof(int) || refused(signo))
        return WEFT_EINVAL;
    if (weft__fork_init() != 0) /* a fork's child must drop our handlers (see the top) */
        return WEFT_ENOMEM;
    pthread_once(&wake_once, wake_init);
    uint64_t bit = 1ull << (signo - 1);
    int r = 0;
    pthread_mutex_lock(&life_mu);
    int i = 0;
    while (i < nreg && regs[i].ch != ch)
        i++;
    if (i < nreg && (regs[i].mask & bit))
        goto out; /* already registered */
    if (!(installed & bit)) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (sigaction(signo, &sa, &old_action[signo]) != 0) {
            r = WEFT_EINVAL; /* e.g. a signal the C library reserves for itself */
            goto out;
        }
        installed |= bit;
    }
    if (i == nreg && nreg == cap_regs) {
        int ncap = cap_regs ? cap_regs * 2 : 4;
        pthread_mutex_lock(&reg_mu);
        struct reg *n = realloc(regs, (size_t)ncap * sizeof *n);
        if (n) {
            regs = n;
            cap_regs = ncap;
        }
        pthread_mutex_unlock(&reg_mu);
        if (!n) {
            r = WEFT_ENOMEM;
            goto restore;
        }
    }
    if (nreg == 0 && (r = start_deliverer()) != 0)
        goto restore;
    pthread_mutex_lock(&reg_mu);
    if (i == nreg) {
        weft_chan_ref(ch); /* the registration's reference, see the top */
        regs[nreg++] = (struct reg){ch, 0};
    }
    regs[i].mask |= bit;
    pthread_mutex_unlock(&reg_mu);
    goto out;
restore:
    if (!watched(signo)) {
        sigaction(signo, &old_action[signo], NULL);
        installed &= ~bit;
    }
out:
    pthread_mutex_unlock(&life_mu);
    return r;
}

int weft_signal_stop(weft_chan *ch)
{
    if (!ch)
        return WEFT_EINVAL;
    pthread_mutex_lock(&life_mu);
    int i = 0;
    while (i < nreg && regs[i].ch != ch)
        i++;
    if (i == nreg) {
        pthread_mutex_unlock(&life_mu);
        return 0; /* not registered: nothing to stop (Go's Stop) */
    }
    uint64_t mask = regs[i].mask;
    pthread_mutex_lock(&reg_mu);
    for (int j = i + 1; j < nreg; j++) /* keep the order of registration */
        regs[j - 1] = regs[j];
    nreg--;
    pthread_mutex_unlock(&reg_mu);
    /* Signals nobody watches any more get their previous disposition back. */
    for (int signo = 1; signo <= WEFT__SIGMAX; signo++)
        if ((mask & (1ull << (signo - 1))) && !watched(signo)) {
            sigaction(signo, &old_action[signo], NULL);
            installed &= ~(1ull << (signo - 1));
        }
    if (nreg == 0) {
        stop_deliverer();
        free(regs);
        regs = NULL;
        cap_regs = 0;
    }
    pthread_mutex_unlock(&life_mu);
    weft_chan_unref(ch); /* the registration's reference */
    return 0;
}

void weft__signal_atfork(int phase)
{
    if (phase == WEFT_FORK_PREPARE) {
        pthread_mutex_lock(&life_mu);
        pthread_mutex_lock(&reg_mu);
    } else if (phase == WEFT_FORK_PARENT) {
        pthread_mutex_unlock(&reg_mu);
        pthread_mutex_unlock(&life_mu);
    } else {
        /* The registrations' channel references are the parent's: forgotten, not dropped
         * (a channel's lock may have been held by a parent's thread). */
        for (int signo = 1; signo <= WEFT__SIGMAX; signo++)
            if (installed & (1ull << (signo - 1)))
                sigaction(signo, &old_action[signo], NULL);
        installed = 0;
        free(regs);
        regs = NULL;
        nreg = cap_regs = 0;
        atomic_store_explicit(&pending, 0, memory_order_relaxed);
        atomic_store_explicit(&quit, 0, memory_order_relaxed);
        sem_init(&wake, 0, 0); /* drop posts the parent's thread never took */
        pthread_mutex_unlock(&reg_mu);
        pthread_mutex_unlock(&life_mu);
    }
}
