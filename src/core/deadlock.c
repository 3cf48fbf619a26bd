/* SPDX-License-Identifier: MIT */
/* deadlock.c — floor 6 (composites and tools): "all coroutines are asleep": the deadlock detector
 * (Go's checkdead).
 *
 * The condition (weft.h, README "Debugging"). The runtime is deadlocked when, at one
 * instant:
 *   1. every worker sleeps in its event loop's kernel wait (hang.h: ASLEEP) and none has
 *      anything in its loop that wakes it by itself (no armed timer — coroutine deadlines
 *      and sleeps —, no fd wait, no narrow-watch timer: not WAKEABLE);
 *   2. no coroutine is runnable: the global queue, every ring, runnext, LIFO and inbox are empty;
 *   3. the blocking pool has no job queued or running;
 *   4. every thread of the process is one of weft's own — the workers, the pool's idle
 *      threads, the watchdog — or a plain thread blocked in a weft wait without a deadline
 *      that nobody has claimed (weft__stuck_threads). Any other thread might still call weft
 *      (send on a channel, cancel, spawn), so its existence alone rules a report out: the
 *      threads are counted in /proc/self/stat, only when 1-3 hold.
 * Then nothing can ever wake a coroutine: each is parked on a weft object (a channel, a
 * mutex, a wait group, a join...) whose only possible wakers are other parked coroutines
 * and stuck threads. Go counts only goroutines; weft must count foreign threads, and
 * conservatively: a thread weft cannot see into (blocked in pthread_join, read, a pthread
 * mutex...) prevents the report, it never causes one.
 *
 * An instant, from concurrent reads: a double collect, in this order. (a) Every worker's
 * sleep_word (all ASLEEP, none WAKEABLE). (b) The thread count: from here on no foreign
 * thread exists, and none can appear (only a running thread creates one); the stuck ones
 * cannot move unless a waker claims them, which decrements the count first. (c) The pool:
 * once seen with no job queued or running, its threads stay idle (only a coroutine queues
 * jobs). (d) The queues, and the coroutine count. (e) Every sleep_word again: equal words
 * mean each worker stayed inside one kernel wait from (a) to (e) (the word's counter moves
 * at every entry and exit), so no worker took or made work meanwhile. Whatever readied a
 * coroutine before (b) or (c) — a thread that then left, a pool job that then finished — put
 * it in a queue first, where (d) finds it: queues are emptied only by awake workers. (Read
 * the other way round, a thread could ready a coroutine after (d) and leave before (b):
 * the reason for the order.) The loads are seq_cst against the workers' seq_cst stores of
 * their words, so what a worker did before falling asleep (queue pushes, counter updates) is
 * seen. A pool thread that retires is uncounted before it exits, so the count errs on the
 * side of "a foreign thread" (no report); a woken thread stops counting as stuck when its
 * waker claims the wait, before the thread can run.
 *
 * Who checks, and when: the last worker to fall asleep (its release hook sees every other
 * worker asleep), so a busy runtime pays nothing; the hooks cost two stores per sleep.
 * A check that passes is confirmed by a second one from the watchdog (stall.c) 50 ms later,
 * which must find every worker still inside the same sleep; only then the report. A check
 * that fails for a reason that need not wake anyone — a foreign thread (it may end without
 * waking anyone), a worker that moved during the check, another checker at work — also
 * asks the watchdog to look again, at growing intervals (up to 1 s) while every worker
 * sleeps. Any other failure (a runnable coroutine, a busy pool, a wakeable worker) means a
 * worker will wake, and sleep, and check again.
 *
 * The report: "weft: deadlock: all N coroutines are parked and nothing can wake them",
 * weft_dump, and _exit(2) (Go's exit status; no atexit handlers: the program is stuck, and a
 * handler waiting for it would hang the exit too). stdout is flushed if its lock is free.
 * Off with config.deadlock = -1 or $WEFT_DEADLOCK=0. */
#define _GNU_SOURCE
#include "blocking.h"
#include "debug.h"
#include "hang.h"
#include "waker.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


static bool enabled; /* set by weft__hang_start before the workers run */
static pthread_mutex_t check_mu = PTHREAD_MUTEX_INITIALIZER; /* one checker at a time */
static int stat_fd = -1; /* /proc/self/stat while a run runs (count_threads) */
static pid_t stat_pid;
static uint64_t *snap;      /* per worker: the first collect (under check_mu) */
static uint64_t *candidate; /* the words of the last passing check (check_mu) */
static bool candidate_ok;

static int count_threads(void);

bool weft__deadlock_enabled(void)
{
    return enabled;
}

int weft__deadlock_start(const weft_config *cfg, int nworkers)
{
    enabled = cfg->deadlock >= 0;
    if (cfg->deadlock == 0) {
        const char *v = getenv("WEFT_DEADLOCK");
        if (v && *v && strcmp(v, "0") && strcmp(v, "1"))
            fprintf(stderr, "weft: ignoring WEFT_DEADLOCK=%s (expected 0 or 1)\n", v);
        else if (v && !strcmp(v, "0"))
            enabled = false;
    }
    snap = calloc((size_t)nworkers, sizeof *snap);
    candidate = calloc((size_t)nworkers, sizeof *candidate);
    candidate_ok = false;
    if (!snap || !candidate) {
        enabled = false;
        return WEFT_ENOMEM;
    }
    if (enabled) {
        pthread_mutex_lock(&check_mu);
        (void)count_threads(); /* opens stat_fd now, before the program's code runs */
        pthread_mutex_unlock(&check_mu);
    }
    return 0;
}

void weft__deadlock_stop(void)
{
    pthread_mutex_lock(&check_mu); /* a checker on the watchdog thread has finished */
    free(snap);
    free(candidate);
    snap = candidate = NULL;
    enabled = false;
    if (stat_fd >= 0 && stat_pid == getpid())
        close(stat_fd);
    stat_fd = -1;
    pthread_mutex_unlock(&check_mu);
}

/* /proc/self/stat, opened once per run (stat_pid: a forked child opens its own; closed by
 * weft__deadlock_stop) and kept at a number >= 256, read with pread at offset 0 (procfs makes the text anew at each
 * read from 0). Not an open and a close per check: a check runs whenever the last worker
 * falls asleep, and a transient descriptor takes the lowest free number — one the program
 * has just closed and may still (wrongly) name in a weft call, whose watcher libev would
 * then find closed under it and abort. Under check_mu. */
/* The process's threads: field 20 of /proc/self/stat (after the parenthesised name, which
 * may hold spaces and parentheses: parse from the last ')'). -1 if unreadable. */
static int count_threads(void)
{
    char buf[1024];
    pid_t pid = getpid();
    if (stat_fd < 0 || stat_pid != pid) {
        if (stat_fd >= 0)
            close(stat_fd); /* the parent's, inherited by a forked child */
        stat_fd = -1;
        int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return -1;
        int hi = fcntl(fd, F_DUPFD_CLOEXEC, 256);
        if (hi >= 0) {
            close(fd);
            fd = hi;
        }
        stat_fd = fd;
        stat_pid = pid;
    }
    ssize_t n = pread(stat_fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
    for (int field = 3; field <= 19; field++) { /* skip state .. nice */
        p = strchr(p + 1, ' ');
        if (!p)
            return -1;
    }
    return atoi(p + 1);
}

static uint64_t load_word(struct weft__worker *w)
{
    return atomic_load_explicit(&w->sleep_word, memory_order_seq_cst);
}

static bool asleep_for_good(uint64_t word)
{
    return (word & (HANG_ASLEEP | HANG_WAKEABLE)) == HANG_ASLEEP;
}

WEFT_NORETURN static void report(uint64_t parked, int stuck)
{
    fprintf(stderr, "weft: deadlock: all %llu coroutine%s parked and nothing can wake %s",
            (unsigned long long)parked, parked == 1 ? " is" : "s are", parked == 1 ? "it" : "them");
    if (stuck > 0)
        fprintf(stderr, " (%d plain thread%s blocked in weft waits too)", stuck,
                stuck == 1 ? " is" : "s are");
    fputc('\n', stderr);
    weft_dump(stderr);
    fprintf(stderr, "weft: deadlock: exiting with status 2 ($WEFT_DEADLOCK=0 turns the "
                    "detector off)\n");
    fflush(stderr);
    if (ftrylockfile(stdout) == 0) { /* not if a parked coroutine holds it */
        fflush_unlocked(stdout);
        funlockfile(stdout);
    }
    _exit(2);
}

bool weft__deadlock_check(void)
{
    struct weft__runtime *rt = weft__rt;
    if (!rt || !enabled || atomic_load_explicit(&rt->stopping, memory_order_acquire))
        return false;
    if (pthread_mutex_trylock(&check_mu) != 0)
        return true; /* another checker is at it, and may fail on a passing change */
    bool again = false;
    if (!snap || !enabled)
        goto out;
    int n = rt->nworkers;
    /* The order matters (see the top): the words, then the threads — after this point no
     * thread can act but the workers, which the second collect watches, and the pool's,
     * which are idle once seen idle —, then the pool, then the queues (what a thread or a
     * pool job readied before it left or went idle is in a queue by now). */
    for (int i = 0; i < n; i++)
        if (!asleep_for_good(snap[i] = load_word(rt->workers[i])))
            goto out; /* that worker will wake, and sleep (and check) again */
    int queued, pool_threads, running;
    weft__blocking_depth(&queued, &pool_threads, &running);
    int stuck = atomic_load_explicit(&weft__stuck_threads, memory_order_seq_cst);
    int ours = n + pool_threads + (weft__watchdog_running() ? 1 : 0);
    if (count_threads() != ours + stuck) {
        again = true; /* another thread might still call weft, or leave without doing so */
        goto out;
    }
    weft__blocking_depth(&queued, &pool_threads, &running);
    if (queued || running)
        goto out; /* the job's end wakes its caller */
    if (weft__globalq_nonempty(&rt->global))
        goto out; /* its producer woke a worker */
    for (int i = 0; i < n; i++) {
        struct weft__worker *w = rt->workers[i];
        if (atomic_load_explicit(&w->inbox, memory_order_acquire) || weft__runq_nonempty(&w->rq))
            goto out;
    }
    uint64_t blocks = weft__coro_alive(), zombies = weft__coro_zombies();
    uint64_t parked = blocks > zombies ? blocks - zombies : 0;
    if (!parked)
        goto out;
    again = true;
    for (int i = 0; i < n; i++)
        if (load_word(rt->workers[i]) != snap[i])
            goto out; /* a worker moved: whoever sleeps last checks again, or we do */
    /* Deadlocked at this instant. Reported when a second check, a watchdog period later,
     * finds the same sleeps (no worker woke in between): a margin against any passing state
     * this reasoning missed, which a real deadlock, being permanent, does not need. */
    if (candidate_ok && memcmp(candidate, snap, (size_t)n * sizeof *snap) == 0)
        report(parked, stuck);
    memcpy(candidate, snap, (size_t)n * sizeof *snap);
    candidate_ok = true;
    pthread_mutex_unlock(&check_mu);
    return true;
out:
    candidate_ok = false;
    pthread_mutex_unlock(&check_mu);
    return again;
}

/* The last worker to fall asleep checks: every other worker's word says asleep for good. */
static void maybe_check(void)
{
    struct weft__runtime *rt = weft__rt;
    for (int i = 0; i < rt->nworkers; i++)
        if (!asleep_for_good(load_word(rt->workers[i])))
            return;
    if (weft__deadlock_check())
        weft__watchdog_recheck();
}

/* libev's hooks around the kernel wait (ev_set_loop_release_cb): on the loop's own thread,
 * just before epoll_wait and just after it returns, before any callback runs. Only
 * go_idle's blocking poll publishes (deep_sleep); the non-blocking polls of find_work are
 * short and may leave pinned work in hand, which nobody else can see. */
static void on_release(struct ev_loop *loop) EV_NOEXCEPT
{
    struct weft__worker *w = ev_userdata(loop);
    if (!w->deep_sleep)
        return;
    /* Owner-only fields, read by their owner. */
    bool wakeable = w->io_waits > 0 || w->timers_armed > 0 || ev_is_active(&w->watch);
    uint64_t word = atomic_load_explicit(&w->sleep_word, memory_order_relaxed);
    word = (((word >> 2) + 1) << 2) | HANG_ASLEEP | (wakeable ? HANG_WAKEABLE : 0);
    atomic_store_explicit(&w->sleep_word, word, memory_order_seq_cst);
    if (!wakeable && enabled)
        maybe_check();
}

static void on_acquire(struct ev_loop *loop) EV_NOEXCEPT
{
    struct weft__worker *w = ev_userdata(loop);
    if (!w->deep_sleep)
        return;
    uint64_t word = atomic_load_explicit(&w->sleep_word, memory_order_relaxed);
    atomic_store_explicit(&w->sleep_word, ((word >> 2) + 1) << 2, memory_order_seq_cst);
    weft__watchdog_kick();
}

void weft__hang_loop_init(struct weft__worker *w)
{
    ev_set_userdata(w->loop, w);
    ev_set_loop_release_cb(w->loop, on_release, on_acquire);
}
