/* SPDX-License-Identifier: MIT */
/* runtime.h — workers (Go's M and P together), the runtime, and the scheduling primitives
 * every blocking operation is built from: weft__park and weft__ready. */
#ifndef WEFT_RUNTIME_H
#define WEFT_RUNTIME_H

#include "common.h"
#include "coro.h"
#include "runq.h"
#include "stack.h"

#include <ev.h>
#include <pthread.h>

struct weft__timer; /* timer.c */
struct weft__iow;   /* io.c */

/* Per-worker state. Everything here is touched only by the worker's own thread except
 * where a field says otherwise. */
struct weft__worker {
    struct weft__runq rq;          /* ring: owner pushes; owner and thieves pop */
    _Atomic(struct weft__msg *) inbox WEFT_ALIGNED_CL; /* any thread pushes; owner drains */
    int index;
    pthread_t thread;
    struct ev_loop *loop;          /* owner only (ev_async_send on `wake` is thread-safe) */
    ev_async wake;
    weft__fctx_t sched_ctx;        /* the scheduler loop's context while a coroutine runs */
    void *sched_asan_fake;
    weft__seg sched_seg;           /* the scheduler's split-stack context (segmented builds) */
    void *sched_tsan_fiber;
    struct weft__coro *current;    /* the coroutine running now, NULL in the scheduler */
    struct weft__coro *pinned_head, *pinned_tail; /* pinned FIFO: owner only, never stolen */
    void *sched_stack_lo;          /* the worker thread's own stack, for ASan */
    size_t sched_stack_size;
    struct weft__coro *direct_next; /* owner only: run next (see switch_to) */
    struct weft__stack_cache stacks;
    struct weft__coro *coro_cache; /* free control blocks */
    size_t coro_cache_n;
    struct weft__timer *timer_free;/* free timer records (timer.c) */
    void *timer_chunks;            /* every timer record block of this worker (timer.c) */
    struct weft__iow *iow_free;    /* free fd-wait records (io.c) */
    int io_waits;                  /* fd waits registered in this loop (owner only) */
    uint64_t *fd_seen;             /* per fd: cookie of the socket last registered here (io.c) */
    void *iow_chunks;
    uint32_t tick_left;            /* dispatches until the scheduler context runs (61) */
    bool tick_due;                 /* the 61st dispatch came: check the global queue first */
    /* main returned (weft__stop): dispatch nothing more. Written once (release) by the
     * thread running main's exit; read by the owner at every dispatch (pick_local, yield:
     * relaxed, on the owner's own line, no cost while 0) and with acquire by worker_loop
     * before it leaves (sched.c "Stopping"). */
    _Atomic bool stop;
    uint32_t next_streak;          /* consecutive runnext dispatches (bounded to 3) */
    int64_t last_poll;             /* weft_now() of the last ev_run */
    /* load.c: poll-spinning and idle accounting (owner only, but idle_mark: see load.c) */
    int64_t poll_spin_start;       /* poll-spinning since (0: not) */
    int64_t poll_last_sleep;       /* how long the last blocking poll slept */
    int64_t poll_probe_at;         /* the last look at the system's runnable threads */
    bool poll_contended;           /* its verdict: other threads want the CPUs */
    int64_t idle_acc, idle_from;   /* idle time so far; idle since (while idle) */
    _Atomic int64_t idle_mark;     /* published idle time (load.c encoding) */
    ev_timer watch;                /* worker 1's bounded sleep while narrow (sched.c go_idle) */
    bool solo;                     /* the runtime has one worker: no thieves */
    bool debug_migrate;            /* copy of runtime.debug_migrate, read on hot paths */
    bool spinning;                 /* holds one of runtime.nspinning */
    bool in_poll;                  /* inside ev_run: readied coroutines stay local */
    bool idle;                     /* on the idle list (guarded by runtime.idle_mu) */
    bool woken;                    /* popped off the idle list by a waker: owns a spin token */
    uint64_t rng;
    void *altstack;                /* sigaltstack for overflow reports */
    /* statistics (owner writes, weft_stats reads relaxed) */
    _Atomic uint64_t n_switches, n_parks, n_steals, n_spawned, n_finished, n_alloc, n_free;
    _Atomic uint64_t n_grown; /* finished coroutines whose stack had grown (segmented) */
    /* zombies (coro.c): made by coroutines finishing here with a live handle; reaped by
     * joins and detaches of finished tasks running on this worker's thread */
    _Atomic uint64_t n_zombied, n_unzombied;
    _Atomic uint64_t n_sleeps; /* blocking polls (go_idle), for load.c */
    /* hang.h: the deadlock detector and the stall watchdog */
    bool deep_sleep;               /* owner: inside go_idle's blocking poll */
    int timers_armed;              /* owner: active timer records in the loop (timer.c) */
    _Atomic uint64_t sleep_word;   /* owner writes (libev hooks), any thread reads: hang.h */
    uint64_t id_next, id_end;      /* a block of coroutine ids (coro.c) */
};

struct weft__runtime {
    int nworkers;
    int ncpus;                     /* CPUs this process may run on (sched.c poll-spinning) */
    struct weft__worker **workers;
    struct weft__globalq global;
    _Atomic int nspinning;         /* workers looking for work */
    _Atomic int nidle;             /* workers on the idle list */
    _Atomic int npollspin;         /* workers poll-spinning before sleep (0 or 1, load.c) */
    /* load.c: narrow mode (fd waits gather on worker 0 while the runtime needs < 1 CPU) */
    _Atomic bool narrow;           /* a hint, read relaxed (see load.c) */
    bool narrow_allowed;           /* false: never changes (1 worker, WEFT_NARROW=0|1, migrate) */
    bool load_debug;               /* $WEFT_LOAD_DEBUG: print each window's verdict */
    bool watcher_parked;           /* worker 1 sleeps untimed while narrow (idle_mu; sched.c) */
    pthread_mutex_t load_mu;       /* the decider of a window (trylock) */
    _Atomic int64_t load_next;     /* when the next window ends */
    int64_t load_at;               /* the window's start (load_mu) */
    int64_t *load_idle;            /* per worker: idle time at load_at (load_mu) */
    uint64_t *load_sleeps;         /* per worker: n_sleeps at load_at (load_mu) */
    _Atomic uint64_t narrow_count; /* times the runtime went narrow (written under load_mu) */
    pthread_mutex_t idle_mu;       /* guards the idle list and worker.idle/woken */
    struct weft__worker **idle_list;
    int idle_top;
    _Atomic int stopping;          /* main returned (weft__stop); the scheduler exits on it */
    bool debug_migrate;
    size_t stack_size;
    int blocking_threads;
    _Atomic uint32_t rr;           /* round-robin cursor for debug migration / inbox posts */
};

/* The runtime while weft_run runs (static storage, see runtime.c), else NULL. Workers read
 * it freely (they live within the run); a plain thread only between weft__gate_in and
 * weft__gate_out (gate.h), which orders its reads after weft_run set it and before weft_run
 * clears it and frees what it owns. */
extern struct weft__runtime *weft__rt;
/* Counts weft_run calls: objects remember the run whose waiters they hold, so waiters left
 * by coroutines abandoned at shutdown (on stacks since unmapped) are never touched later. */
extern _Atomic uint64_t weft__run_epoch;

/* Statistics counters have one writer (the owning worker): a relaxed load and store, not a
 * locked read-modify-write (which costs ~5 ns on every switch and park here). Readers
 * (weft_stats_get) see a recent value. */
static inline void weft__stat_inc(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* The calling thread's worker, or NULL on a plain thread. Never inlined and re-read after
 * every switch: a coroutine that parked on one worker may resume on another, and a cached
 * thread-local address would then point at the first worker's state. */
struct weft__worker *weft__worker_self(void);
extern WEFT_TLS struct weft__worker *weft__tls_worker;
/* The same, inlined: ONLY for the entry of a public function, before its first switch
 * (nothing can be cached from before the call); after a switch use weft__worker_self(). */
static inline struct weft__worker *weft__worker_entry(void)
{
    return weft__tls_worker;
}
/* The calling coroutine, or NULL. */
struct weft__coro *weft__coro_self(void);
/* Run fn(arg) on the calling worker's scheduler stack when the caller's own stack is small
 * (sub-page or segmented): for the deep paths of the runtime (malloc, libc) that a small
 * stack has no room for. Otherwise, or on a plain thread, a plain call. */
void weft__offstack(void (*fn)(void *), void *arg);

/* Park the calling coroutine until its armed wait is completed. `unlock(arg)` runs after
 * the coroutine is off its stack (in the on-top function of the switch) — the lock a waker
 * must take to find this coroutine can be released there, Go's gopark(unlockf). The wait
 * word is checked for a pending cancellation first (Dekker pairing with weft_cancel: both
 * sides store, fence seq_cst, then load). Returns the result the winning waker stored. */
int weft__park(void (*unlock)(void *), void *arg);
/* Make a coroutine whose wait was just won runnable (see coro.h). Any thread.
 * handoff: the caller is a coroutine about to block or finish, so the woken one runs next. */
void weft__ready(struct weft__coro *co, bool handoff);
/* Queue a RUNNABLE coroutine (spawn). Any thread. */
void weft__schedule(struct weft__coro *co, bool handoff);
/* Finish the calling coroutine: switch away for good; the on-top function frees its stack. */
WEFT_NORETURN void weft__sched_exit(struct weft__coro *co);
/* Spawn (coro.c): give a new coroutine of `size` (rounded) its stack, or the promise of one
 * (stack.c "Promises"). w: the calling worker, NULL on a plain thread. 0 or -ENOMEM. */
int weft__stack_spawn(struct weft__worker *w, struct weft__coro *co, size_t size);
/* Post a message to a worker's inbox and wake it. Any thread. */
void weft__worker_post(struct weft__worker *w, struct weft__msg *m);

/* Timers (timer.c). A deadline timer for the calling coroutine's armed wait, in the loop of
 * the worker it is parking on; weft__timer_cancel after the wait, wherever it resumed.
 * weft__timer_reserve (the parking coroutine, on w, before it switches away): make sure w
 * has a free record, so that weft__timer_start, in the switch's after-step, needs no memory;
 * false when none could be allocated. */
bool weft__timer_reserve(struct weft__worker *w);
struct weft__timer *weft__timer_start(struct weft__worker *w, struct weft__waker *k,
                                      int64_t deadline);
void weft__timer_cancel(struct weft__timer *t);
void weft__timer_stop_msg(struct weft__worker *w, struct weft__msg *m);
void weft__timer_cache_free(struct weft__worker *w);
void weft__timer_arm_pending(struct weft__worker *w);

/* Wait for the armed wait of the calling coroutine with an optional deadline: parks, and
 * cleans up the timer. Used by every blocking call. */
int weft__park_until(int64_t deadline, void (*unlock)(void *), void *arg);

/* I/O stop message handler and record pool teardown (io.c). */
/* load.c: the idle policy (see there). Scheduler context of the worker unless noted. */
/* true: look for work once more first; `now`: the caller's weft_now() of this round */
bool weft__pollspin(struct weft__worker *w, int64_t now);
void weft__pollspin_end(struct weft__worker *w);
void weft__idle_begin(struct weft__worker *w, int64_t now);
void weft__idle_end(struct weft__worker *w, int64_t now);
enum { WEFT_LOAD_WIDENED = 1, WEFT_LOAD_NARROWED = 2 };
int weft__load_update(int64_t now); /* 0, or what the window changed (sched.c acts on it) */
/* Any context: the worker the calling coroutine should wait for fds on, NULL for its own. */
struct weft__worker *weft__io_home(struct weft__worker *w, struct weft__coro *co);
#define LOAD_WATCH_NS WEFT_MSEC(10) /* the watcher's sleep while narrow and the home awake */
static inline bool weft__narrow(const struct weft__runtime *rt)
{
    return atomic_load_explicit(&rt->narrow, memory_order_relaxed);
}
/* sched.c: move the calling coroutine to worker `to` (it resumes there). */
void weft__hop(struct weft__worker *to);
/* sched.c: weft_yield without its cancellation point (internal yields). */
int weft__yield(void);
void weft__io_stop_msg(struct weft__worker *w, struct weft__msg *m);
void weft__io_cache_free(struct weft__worker *w);



/* Worker lifecycle (runtime.c drives these). */
struct weft__worker *weft__worker_create(int index);
void weft__worker_destroy(struct weft__worker *w);
void weft__worker_run(struct weft__worker *w);
void weft__wake_all(void);
/* main's coroutine returned: set `stopping` and every worker's `stop`, wake every worker. */
void weft__stop(void);
void weft__coro_cache_drain(struct weft__worker *w);
/* Overflow detection (guard.c): per-thread alternate signal stack + SIGSEGV handler. */
/* The check at every switch away from co (sched.c calls it when sp is below co's stack or
 * the stack is canary-guarded): reports an overflow and aborts, or returns. */
void weft__guard_check(struct weft__coro *co, const void *sp);
void weft__guard_thread_init(struct weft__worker *w);
void weft__guard_thread_fini(struct weft__worker *w);
void weft__guard_install(void);
void weft__guard_uninstall(void);
/* Report text (debug.c) built without stdio or malloc, so a signal handler can use it: a
 * fixed buffer, filled up to `end` (longer text is cut). */
struct weft__text {
    char *p, *end;
};
void weft__text_str(struct weft__text *t, const char *s);
void weft__text_u64(struct weft__text *t, uint64_t v);
void weft__text_hex(struct weft__text *t, uintptr_t v);
/* `coroutine 17 "name"`, or for an unnamed one `coroutine 17 (entry fn)` (the entry
 * function by dladdr: its symbol, else module+offset). */
void weft__text_coro(struct weft__text *t, const struct weft__coro *co);
/* Shutdown helpers (runtime.c calls these). */
void weft__coro_reset_all(void);
uint64_t weft__coro_alive(void);
/* weft_run's end (debug.c): in debug builds or with $WEFT_DEBUG, print the zombies left. */
void weft__zombie_report(void);
void weft__blocking_shutdown(void);
/* libev's allocator (evalloc.c): installed by weft_run before any loop exists. try runs
 * fn(arg) so that a failed libev allocation inside returns -ENOMEM (what was allocated is
 * leaked) instead of aborting; outside a try, a failure aborts with weft's message. */
void weft__evalloc_install(void);
int weft__evalloc_try(void (*fn)(void *), void *arg);

/* fork() (fork.c): pthread_atfork handlers, registered by the first weft_run. PREPARE takes
 * each module's process-wide locks (so the child's copies of the structures they guard are
 * consistent), PARENT releases them, CHILD leaves the module fresh and unstarted: the child
 * has none of the parent's threads, so nothing of the parent's runtime can be used there. */
int weft__fork_init(void); /* 0, or WEFT_ENOMEM */
void weft__blocking_atfork(int phase);
void weft__coro_atfork(int phase);
void weft__signal_atfork(int phase); /* signal.c */
void weft__run_atfork_child(bool on_coro_stack);
/* The blocking pool's jobs queued, its threads, and those not idle (running a job or about
 * to): for weft_dump and the deadlock check (hang.h). Any thread; takes the pool's lock. */
void weft__blocking_depth(int *queued, int *threads, int *running);
void weft__dump_signal_install(int sig);
void weft__dump_signal_uninstall(void);
#endif
