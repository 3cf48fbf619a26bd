/* SPDX-License-Identifier: MIT */
/* gate.h — floor 4 (waiting): plain threads' admission to the runtime, and their release when it
 * stops.
 *
 * A plain thread (an OS thread that is not a worker) may call weft at any moment, also while
 * weft_run starts or returns. Everything such a call can touch that weft_run creates and
 * frees (the workers, their queues and loops, the idle list, coroutine stacks, the waiter
 * nodes on those stacks) is reached only between weft__gate_in() and weft__gate_out(): the
 * gate counts the plain threads inside a call, and weft_run frees nothing until that count
 * is zero, and admits nobody while it starts or stops. Worker threads (coroutines) pass
 * the gate for free: the runtime outlives them (weft_run joins every worker first).
 *
 * States (gate.state):
 *   STOPPED  no runtime. A plain thread is counted but not admitted: it may use objects that
 *            work without a runtime (closing a channel, whose waiters can only be stale;
 *            mutexes, conditions, semaphores, wait groups between plain threads), never
 *            touches weft__rt. It may sleep there (for another plain thread): it is not
 *            counted while it sleeps, and counts itself in again (maybe admitted, if a
 *            runtime started meanwhile) before it touches the object again.
 *   OPEN     a runtime runs: weft__rt and everything it owns stay valid until gate_out.
 *   BUSY     weft_run is starting or stopping: an arriving plain thread is not counted; it
 *            waits for the state to change (BUSY lasts until the threads inside have left:
 *            they never block then, see weft__gate_track).
 *
 * Blocked plain threads. Every admitted plain thread that sleeps on its parker (waker.h) is
 * linked in the gate's list (weft__gate_track) for the length of the sleep, and stays
 * counted. weft_run, stopping, completes every parker still listed with WEFT_ENORUNTIME
 * (Go's runtime simply exits; a library must hand the thread back). The thread then unlinks its waiter node from the
 * object it waited on (waitq.h: as after a timeout) and leaves: its neighbours there may be
 * nodes on abandoned coroutine stacks, which is why stacks are unmapped only once no plain
 * thread is inside. A thread that would start sleeping after the sweep sees the state is no
 * longer OPEN (under the list's lock) and does not sleep. (A thread that began sleeping
 * while no runtime ran waits for another thread, not for the runtime: it is not tracked.)
 *
 * Blocking-pool threads (blocking.c) are plain threads too: their job's wake-up of the
 * calling coroutine goes through the gate. */
#ifndef WEFT_GATE_H
#define WEFT_GATE_H

#include "common.h"
#include "coro.h"
#include "waker.h"

enum { WEFT__GATE_STOPPED = 0, WEFT__GATE_OPEN = 1, WEFT__GATE_BUSY = 2 };

struct weft__gate {
    _Atomic uint32_t state;  /* STOPPED / OPEN / BUSY; written by weft_run only */
    _Atomic uint32_t inside; /* plain threads counted in (gate_in .. gate_out) */
};
extern struct weft__gate weft__gate;

/* What a public call's entry found. */
enum {
    WEFT__IN_WORKER = 0, /* a worker thread: no gate */
    WEFT__IN_OPEN = 1,   /* a plain thread, admitted: the runtime is valid until gate_out */
    WEFT__IN_NONE = 2,   /* a plain thread, counted, no runtime (STOPPED) */
    WEFT__IN_NESTED = 4, /* or'ed on: a call made inside another (a group cancelling its
                           * members): the outer call's entry holds, nothing to do */
};

/* Set by blocking-pool threads (blocking.c) for their lifetime: they are admitted without
 * waiting while the runtime stops (see weft__gate_enter). */
extern __thread bool weft__gate_pool_thread;
/* Plain thread: count in, waiting out BUSY. Returns WEFT__IN_OPEN or WEFT__IN_NONE. */
int weft__gate_enter(void);
/* Plain thread: count out (wakes weft_run if it waits for the count to drop). */
void weft__gate_leave(void);
/* Plain thread, never waits (a signal handler: weft_dump): true and counted in if OPEN. */
bool weft__gate_try(void);
/* The calling plain thread's current entry: WEFT__IN_OPEN, WEFT__IN_NONE, or 0 if none. */
int weft__gate_mode(void);

/* The entry of a public call that a plain thread may make: `w` is weft__worker_entry().
 * Nested entries only inherit the outer one's: a second count could wait out a BUSY state
 * whose end waits for the first (weft_run waits for the count to drop). */
static inline int weft__gate_in(const void *w)
{
    if (w)
        return WEFT__IN_WORKER;
    int mode = weft__gate_mode();
    return mode ? mode | WEFT__IN_NESTED : weft__gate_enter();
}
static inline void weft__gate_out(int in)
{
    if (in != WEFT__IN_WORKER && !(in & WEFT__IN_NESTED))
        weft__gate_leave();
}
/* A public call's body `expr` (an int), run inside the gate when the caller is a plain
 * thread. WEFT__GATED: also without a runtime (objects usable on their own: a wait then
 * returns WEFT_ENORUNTIME); WEFT__GATED_RT: WEFT_ENORUNTIME without a runtime. `expr` must
 * not run user code (it could block for good inside the gate, and weft_run waits for every
 * thread inside to leave). Needs worker.h (weft__worker_entry). */
#define WEFT__GATED(expr)                                                                          \
    __extension__({                                                                                \
        int in_ = weft__gate_in(weft__worker_entry());                                             \
        int r_ = (expr);                                                                           \
        weft__gate_out(in_);                                                                       \
        r_;                                                                                        \
    })
#define WEFT__GATED_RT(expr)                                                                       \
    __extension__({                                                                                \
        int in_ = weft__gate_in(weft__worker_entry());                                             \
        int r_ = (in_ & 3) == WEFT__IN_NONE ? WEFT_ENORUNTIME : (expr);                            \
        weft__gate_out(in_);                                                                       \
        r_;                                                                                        \
    })
/* A relaxed hint for cheap early checks (may be stale: the real check is gate_in). */
static inline bool weft__gate_open_hint(void)
{
    return atomic_load_explicit(&weft__gate.state, memory_order_relaxed) == WEFT__GATE_OPEN;
}

/* A plain thread about to sleep on tp (wait.c weft__tparker_wait): link it in the list so
 * that shutdown can complete it. false: the runtime is not OPEN (or stopping): do not sleep. */
bool weft__gate_track(struct weft__thread_parker *tp);
void weft__gate_untrack(struct weft__thread_parker *tp);
/* Plain threads asleep in weft now (tracked): for tests that wait for a thread to block. */
int weft__gate_sleepers(void);

/* weft_run (run.c). open: STOPPED → BUSY, wait for the counted threads to leave, then
 * OPEN (weft__rt must be set before). close: OPEN → BUSY, complete every tracked parker with
 * WEFT_ENORUNTIME, wait until no plain thread is inside. stopped: BUSY → STOPPED (after the
 * teardown). */
void weft__gate_open(void);
void weft__gate_close(void);
void weft__gate_stopped(void);
/* fork.c: PREPARE/PARENT take and drop the parker list's lock; CHILD resets the gate to
 * STOPPED with nobody inside. */
void weft__gate_atfork(int phase);

#endif
