/* SPDX-License-Identifier: MIT */
/* stall.c — floor 6 (composites and tools): the watchdog thread: stall reports (Seastar's reactor
 * stall detector), and the deadlock detector's second looks.
 *
 * A stall is a worker that has not switched for longer than the threshold (config.stall_ms,
 * $WEFT_STALL_MS; 100 ms by default) while awake: one coroutine computing without a weft
 * call, or sitting in a blocking system call (a plain read, sqlite on a slow disk), and
 * every coroutine queued behind it on that worker waits. The watchdog looks every
 * threshold / 2 at each worker's n_switches (the dispatch sequence switch_to increments
 * anyway: nothing is added to the switch path) and sleep_word (hang.h); a worker whose two
 * values have not moved across two looks, and which is not asleep in its loop, has run the
 * same coroutine for at least the threshold (at most 1.5 times it). It then asks that
 * worker for the coroutine and a backtrace: pthread_kill(SIGURG) — Go's preemption signal,
 * ignored by default and rarely used —, whose handler, on the worker's thread (on the
 * alternate signal stack guard.c installs: the coroutine's own stack may be sub-page),
 * copies the running coroutine's id, name and entry function and calls backtrace() into a
 * preallocated slot. backtrace is not strictly async-signal-safe (its first call loads
 * libgcc): it is called once at start, as Seastar does. The watchdog prints
 *     weft: stall: worker 1 ran coroutine 17 "name" (entry_fn) for 100 ms
 * and the frames (backtrace_symbols_fd: module(symbol+offset) or module(+offset)).
 * One report per stall episode; a worker reports at most once a second, and the next report
 * says how many stalls went unreported meanwhile. An episode that lasted two thresholds or
 * more ends with "weft: stall: worker 1 switched again after N ms".
 * A stalled system call that is not restarted after a signal handler (nanosleep, poll,
 * sem_wait; see signal(7)) returns EINTR to its caller when the report interrupts it.
 * A SIGURG not sent by the watchdog is passed to the handler installed before weft's.
 *
 * The slot protocol (per worker): IDLE → ASKED (watchdog) → WRITING (handler, CAS) → DONE
 * (handler, release; futex wake) → IDLE (watchdog, after reading). A watchdog that gives up
 * waiting (1 s: the thread may block SIGURG; TSan delays signals to a thread that makes no
 * intercepted call) CASes ASKED → IDLE; a handler that comes later finds IDLE and treats the
 * signal as not its own. If the handler has won (WRITING), the watchdog waits for DONE.
 *
 * Parking. The watchdog has nothing to watch while every worker sleeps: it then parks on
 * its bell (a futex word) until a worker leaves its kernel wait (weft__watchdog_kick, from
 * the acquire hook). Dekker on seq_cst operations: the watchdog stores parked = 1, then
 * reads the workers' words; a worker stores its awake word, then reads parked. One of them
 * sees the other, so a parked watchdog is always woken. An idle runtime therefore has no
 * periodic wake-up, unless a deadlock check is pending (below).
 *
 * Deadlock second looks: when a check asks for one (deadlock.c: to confirm a deadlock, or
 * because a thread that might still call weft exists), the watchdog checks again after 50 ms,
 * then at doubling intervals up to 1 s, for as long as every worker stays asleep. */
#define _GNU_SOURCE
#include "futex.h"
#include "debug.h"
#include "clock.h"
#include "hang.h"
#include "trace.h"

#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STALL_DEFAULT_MS 100
#define STALL_SIGNAL SIGURG
#define STALL_FRAMES 48
#define STALL_ANSWER_NS WEFT_SEC(1)  /* how long the watchdog waits for the handler */
#define STALL_REPORT_GAP WEFT_SEC(1) /* at most one report per worker per second */
#define RECHECK_FIRST WEFT_MSEC(50)
#define RECHECK_MAX WEFT_SEC(1)

enum { SLOT_IDLE, SLOT_ASKED, SLOT_WRITING, SLOT_DONE };

/* Per worker: written by the worker (thread, at start; the rest in the signal handler) and
 * the watchdog, handed over by `state` (see the top). */
struct slot {
    _Atomic uint32_t state;
    _Atomic int ready; /* 1: `thread` is published (release, by the worker) */
    pthread_t thread;
    uint64_t id;
    char name[32];
    void *fn;
    int nframes;
    void *frames[STALL_FRAMES];
};

/* Per worker, the watchdog thread's own view. */
struct look {
    uint64_t switches, word;
    int64_t since; /* the first look that saw these values */
    int64_t last_report;
    bool reported;       /* this episode was reported */
    unsigned unreported; /* episodes not reported since the last report (rate limit) */
    uint64_t id;         /* the coroutine of the reported episode */
};

static struct {
    int64_t threshold;  /* ns; 0: stall reports off */
    struct slot *slots; /* per worker */
    struct look *looks; /* per worker, watchdog thread only */
    int nworkers;
    pthread_t thread;
    _Atomic bool running;  /* the thread exists (deadlock.c counts it among weft's) */
    _Atomic uint32_t bell; /* futex word: bumped to wake the watchdog */
    _Atomic int parked;    /* 1: the watchdog sleeps until a worker wakes (see the top) */
    _Atomic int stop;
    _Atomic int recheck; /* a deadlock check asked for a second look */
    struct sigaction old;
    bool sig_installed;
} wd;

/* Set before the handler is installed, cleared after it is removed: read by the handler. */
static struct slot *_Atomic handler_slots;

static void ring(void)
{
    atomic_fetch_add_explicit(&wd.bell, 1, memory_order_seq_cst);
    weft__futex_wake(&wd.bell, 1);
}

bool weft__watchdog_running(void)
{
    return atomic_load_explicit(&wd.running, memory_order_seq_cst);
}

void weft__watchdog_kick(void)
{
    if (atomic_load_explicit(&wd.parked, memory_order_seq_cst) &&
        atomic_exchange_explicit(&wd.parked, 0, memory_order_seq_cst))
        ring();
}

void weft__watchdog_recheck(void)
{
    if (!atomic_load_explicit(&wd.running, memory_order_relaxed))
        return;
    atomic_store_explicit(&wd.recheck, 1, memory_order_seq_cst);
    ring();
}

void weft__hang_thread_init(struct weft__worker *w)
{
    if (!wd.slots)
        return;
    struct slot *s = &wd.slots[w->index];
    s->thread = pthread_self();
    atomic_store_explicit(&s->ready, 1, memory_order_release);
}

/* ------------------------------------------------------------------------------------------
 * The signal handler, on the stalled worker's thread. */

static void chain(int sig, siginfo_t *si, void *uc)
{
    if (wd.old.sa_flags & SA_SIGINFO) {
        if (wd.old.sa_sigaction)
            wd.old.sa_sigaction(sig, si, uc);
    } else if (wd.old.sa_handler != SIG_DFL && wd.old.sa_handler != SIG_IGN) {
        wd.old.sa_handler(sig);
    } /* SIGURG's default action is to ignore it */
}

static void on_signal(int sig, siginfo_t *si, void *uc)
{
    int saved = errno;
    struct weft__worker *w = weft__worker_self();
    struct slot *slots = atomic_load_explicit(&handler_slots, memory_order_acquire);
    uint32_t asked = SLOT_ASKED;
    if (!w || !slots ||
        !atomic_compare_exchange_strong_explicit(&slots[w->index].state, &asked, SLOT_WRITING,
                                                 memory_order_acquire, memory_order_relaxed)) {
        chain(sig, si, uc);
        errno = saved;
        return;
    }
    struct slot *s = &slots[w->index];
    struct weft__coro *co = w->current; /* this thread's own field */
    s->id = co ? atomic_load_explicit(&co->id, memory_order_relaxed) : 0;
    s->name[0] = 0;
    if (co)
        memcpy(s->name, co->name, sizeof s->name);
    s->fn = co ? (void *)co->fn : NULL;
    s->nframes = backtrace(s->frames, STALL_FRAMES);
    atomic_store_explicit(&s->state, SLOT_DONE, memory_order_release);
    weft__futex_wake(&s->state, 1);
    errno = saved;
}

/* ------------------------------------------------------------------------------------------
 * Reports (watchdog thread). */

static void report(int i, int64_t ran, struct look *lk)
{
    struct weft__worker *w = weft__rt->workers[i];
    struct slot *s = &wd.slots[i];
    char unrep[64] = "";
    if (lk->unreported)
        snprintf(unrep, sizeof unrep, " (%u more stall%s since the last report)", lk->unreported,
                 lk->unreported == 1 ? "" : "s");
    lk->unreported = 0;
    lk->last_report = weft__clock_real();
    bool answered = false;
    if (atomic_load_explicit(&s->ready, memory_order_acquire)) {
        atomic_store_explicit(&s->state, SLOT_ASKED, memory_order_seq_cst);
        pthread_kill(s->thread, STALL_SIGNAL);
        int64_t deadline = weft__clock_real() + STALL_ANSWER_NS;
        for (;;) {
            uint32_t st = atomic_load_explicit(&s->state, memory_order_acquire);
            if (st == SLOT_DONE) {
                answered = true;
                break;
            }
            if (st == SLOT_ASKED && weft__clock_real() >= deadline &&
                atomic_compare_exchange_strong_explicit(&s->state, &st, SLOT_IDLE,
                                                        memory_order_acquire, memory_order_relaxed))
                break; /* no answer: the handler, if it runs later, will find IDLE */
            weft__futex_wait(&s->state, st, st == SLOT_ASKED ? deadline : INT64_MAX);
        }
    }
    (void)w;
    WEFT__TRACE(-1, WEFT__TR_STALL, answered ? s->id : 0, (uint64_t)ran, i);
    if (!answered) {
        lk->id = 0;
        fprintf(stderr,
                "weft: stall: worker %d ran without switching for %lld ms (no backtrace: the "
                "worker did not take the signal)%s\n",
                i, (long long)(ran / 1000000), unrep);
        return;
    }
    lk->id = s->id;
    if (s->id) {
        char fn[160];
        weft__addr_name(s->fn, fn, sizeof fn);
        fprintf(stderr, "weft: stall: worker %d ran coroutine %llu \"%s\" (%s) for %lld ms%s\n", i,
                (unsigned long long)s->id, s->name, fn, (long long)(ran / 1000000), unrep);
    } else {
        fprintf(stderr, "weft: stall: worker %d ran its scheduler for %lld ms%s\n", i,
                (long long)(ran / 1000000), unrep);
    }
    /* frames[0] is on_signal, frames[1] the signal trampoline: from the interrupted frame */
    if (s->nframes > 2)
        backtrace_symbols_fd(s->frames + 2, s->nframes - 2, 2);
    atomic_store_explicit(&s->state, SLOT_IDLE, memory_order_relaxed);
}

/* One look at worker i. */
static void look_at(int i, int64_t now)
{
    struct weft__worker *w = weft__rt->workers[i];
    struct look *lk = &wd.looks[i];
    uint64_t sw = atomic_load_explicit(&w->n_switches, memory_order_relaxed);
    uint64_t word = atomic_load_explicit(&w->sleep_word, memory_order_relaxed);
    if (sw != lk->switches || word != lk->word || !lk->since) {
        if (lk->reported && now - lk->since >= 2 * wd.threshold)
            fprintf(stderr, "weft: stall: worker %d switched again after %lld ms%s\n", i,
                    (long long)((now - lk->since) / 1000000), lk->id ? "" : " (or more)");
        lk->switches = sw;
        lk->word = word;
        lk->since = now;
        lk->reported = false;
        return;
    }
    if ((word & HANG_ASLEEP) || lk->reported || now - lk->since < wd.threshold)
        return;
    lk->reported = true;
    weft__stat_inc(&weft__rt->n_stalls); /* one writer: the watchdog */
    if (lk->last_report && now - lk->last_report < STALL_REPORT_GAP) {
        lk->unreported++;
        return;
    }
    report(i, now - lk->since, lk);
}

static bool all_asleep(struct weft__runtime *rt)
{
    for (int i = 0; i < rt->nworkers; i++)
        if (!(atomic_load_explicit(&rt->workers[i]->sleep_word, memory_order_seq_cst) &
              HANG_ASLEEP))
            return false;
    return true;
}

static void *watchdog(void *unused)
{
    (void)unused;
    struct weft__runtime *rt = weft__rt; /* set before this thread starts, cleared after it ends */
    int64_t recheck_gap = RECHECK_FIRST, recheck_at = 0;
    for (;;) {
        uint32_t seen = atomic_load_explicit(&wd.bell, memory_order_seq_cst);
        if (atomic_load_explicit(&wd.stop, memory_order_acquire))
            break;
        if (atomic_load_explicit(&rt->stopping, memory_order_acquire)) {
            /* main returned: the workers finish their current stretch and leave (not
             * stalls); weft_run stops us once they are gone. */
            weft__futex_wait(&wd.bell, seen, INT64_MAX);
            continue;
        }
        int64_t now = weft__clock_real();
        if (wd.threshold)
            for (int i = 0; i < rt->nworkers; i++)
                look_at(i, now);
        int64_t deadline = wd.threshold ? now + wd.threshold / 2 : INT64_MAX;
        if (all_asleep(rt)) {
            if (atomic_load_explicit(&wd.recheck, memory_order_acquire)) {
                if (!recheck_at) {
                    recheck_at = now + recheck_gap;
                } else if (now >= recheck_at) {
                    if (!weft__deadlock_check()) /* exits on a deadlock */
                        atomic_store_explicit(&wd.recheck, 0, memory_order_relaxed);
                    recheck_gap = recheck_gap * 2 > RECHECK_MAX ? RECHECK_MAX : recheck_gap * 2;
                    recheck_at = now + recheck_gap;
                }
                deadline = recheck_at;
            } else {
                /* Park: nothing to watch until a worker wakes (see the top). */
                atomic_store_explicit(&wd.parked, 1, memory_order_seq_cst);
                if (all_asleep(rt))
                    deadline = INT64_MAX;
                else
                    atomic_store_explicit(&wd.parked, 0, memory_order_relaxed);
            }
        } else {
            atomic_store_explicit(&wd.recheck, 0, memory_order_relaxed);
            recheck_gap = RECHECK_FIRST;
            recheck_at = 0;
        }
        weft__futex_wait(&wd.bell, seen, deadline);
        atomic_store_explicit(&wd.parked, 0, memory_order_relaxed);
    }
    return NULL;
}

/* ------------------------------------------------------------------------------------------
 * Start and stop (weft_run). */

static int64_t stall_threshold(const weft_config *cfg)
{
    if (cfg->stall_ms < 0)
        return 0;
    if (cfg->stall_ms > 0)
        return WEFT_MSEC((int64_t)cfg->stall_ms);
    const char *v = getenv("WEFT_STALL_MS");
    if (!v || !*v)
        return WEFT_MSEC(STALL_DEFAULT_MS);
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < -1 || n > 3600000) {
        fprintf(stderr, "weft: ignoring WEFT_STALL_MS=%s (expected milliseconds, 0 or -1: off)\n",
                v);
        return WEFT_MSEC(STALL_DEFAULT_MS);
    }
    return n > 0 ? WEFT_MSEC((int64_t)n) : 0;
}

int weft__hang_start(const weft_config *cfg)
{
    int n = weft__rt->nworkers;
    memset(&wd, 0, sizeof wd);
    wd.nworkers = n;
    wd.threshold = stall_threshold(cfg);
    if (weft__deadlock_start(cfg, n) != 0)
        return WEFT_ENOMEM;
    if (!wd.threshold && !weft__deadlock_enabled())
        return 0;
    wd.slots = calloc((size_t)n, sizeof *wd.slots);
    wd.looks = calloc((size_t)n, sizeof *wd.looks);
    if (!wd.slots || !wd.looks) {
        weft__hang_stop();
        return WEFT_ENOMEM;
    }
    if (wd.threshold) {
        void *prime[2];
        backtrace(prime, 2); /* loads libgcc's unwinder now, not in the signal handler */
        atomic_store_explicit(&handler_slots, wd.slots, memory_order_release);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_signal;
        sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
        sigfillset(&sa.sa_mask);
        wd.sig_installed = sigaction(STALL_SIGNAL, &sa, &wd.old) == 0;
    }
    /* The watchdog takes no process-directed signal: they belong to the program's threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int r = pthread_create(&wd.thread, NULL, watchdog, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0) {
        weft__hang_stop();
        return WEFT_ENOMEM;
    }
    /* Counted only now that the thread exists (an overcount could hide a foreign thread). */
    atomic_store_explicit(&wd.running, true, memory_order_seq_cst);
    return 0;
}

void weft__hang_stop(void)
{
    if (atomic_load(&wd.running)) {
        atomic_store_explicit(&wd.stop, 1, memory_order_release);
        ring();
        pthread_join(wd.thread, NULL);
        atomic_store(&wd.running, false);
    }
    if (wd.sig_installed)
        sigaction(STALL_SIGNAL, &wd.old, NULL);
    wd.sig_installed = false;
    atomic_store_explicit(&handler_slots, NULL, memory_order_release);
    free(wd.slots);
    free(wd.looks);
    wd.slots = NULL;
    wd.looks = NULL;
    weft__deadlock_stop();
}
