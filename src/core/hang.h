/* SPDX-License-Identifier: MIT */
/* hang.h — floor 6 (composites and tools): hangs that say why: the deadlock detector (deadlock.c)
 * and the stall watchdog (stall.c), and what the rest of the runtime tells them.
 *
 * What a worker publishes. `sleep_word` (struct weft__worker) is written only by the worker's
 * own thread, from libev's release/acquire hooks around the kernel wait (epoll_wait) of
 * go_idle's blocking poll — the only window in which a worker can hold no coroutine, run no
 * callback and touch no queue for a long time:
 *     (n << 2) | HANG_ASLEEP | HANG_WAKEABLE
 * n counts the worker's entries and exits of that window (so two equal reads of the word
 * mean the worker stayed inside one wait all along), ASLEEP is set inside it, WAKEABLE when
 * the worker's loop holds something that will wake it by itself: an armed timer (coroutine
 * deadlines and sleeps), a registered fd wait, or the narrow watcher's bounded sleep. The
 * word is stored seq_cst: with the loads of the checker, the last worker to fall asleep sees
 * every other one asleep (Dekker: store own word, then load the others').
 *
 * The dispatch sequence a stall is measured with is the worker's n_switches statistic, which
 * switch_to already increments on every switch: the watchdog adds nothing to the switch
 * path. A worker whose n_switches and sleep_word have not moved over two watchdog periods
 * (threshold / 2 each), and which is not asleep, has run one coroutine (or sat in the
 * scheduler) for at least the threshold. */
#ifndef WEFT_HANG_H
#define WEFT_HANG_H

#include "worker.h"

#define HANG_ASLEEP 1ull
#define HANG_WAKEABLE 2ull

/* weft_run, after weft__rt is set and before any worker runs: read the config and the
 * environment, install libev's hooks' consumers, start the watchdog thread if needed.
 * 0 or WEFT_ENOMEM. weft__hang_stop: after the workers are joined. */
int weft__hang_start(const weft_config *cfg);
void weft__hang_stop(void);
/* run.c, after each worker is created: install the release/acquire hooks on its loop. */
void weft__hang_loop_init(struct weft__worker *w);
/* On each worker's thread as it starts (run.c passes it to weft__worker_run): publish the
 * thread for the stall signal. */
void weft__hang_thread_init(struct weft__worker *w);

/* deadlock.c */
int weft__deadlock_start(const weft_config *cfg, int nworkers); /* from weft__hang_start */
void weft__deadlock_stop(void);
bool weft__deadlock_enabled(void);
/* Full check from any thread (a worker's release hook or the watchdog). On a deadlock
 * confirmed by an earlier passing check with the same sleeps, prints the report and exits
 * the process. Returns true when someone must look again later (the watchdog does). */
bool weft__deadlock_check(void);
/* weft__stuck_threads (waker.h) counts the plain threads blocked in a weft wait without a
 * deadline that nobody has claimed yet: wait.c keeps it (+1 by the thread as it goes to
 * sleep, -1 by the claimer), the check reads it. */

/* stall.c: the watchdog thread exists (counted among weft's own threads) */
bool weft__watchdog_running(void);
/* A worker left the kernel wait: wake the watchdog if it parked (all workers were asleep). */
void weft__watchdog_kick(void);
/* The deadlock check found only threads in the way: look again later. */
void weft__watchdog_recheck(void);


#endif
