/* SPDX-License-Identifier: MIT */
/* worker.h — floor 2 (the worker): a worker (Go's M and P together) and the runtime that
 * holds them, with the ownership rule of every field; the worker's accessors, its inbox and
 * its private FIFO of pinned coroutines; worker creation and teardown (worker.c).
 *
 * The floors (CMakeLists.txt "floor table", checked by test_floors): each file uses only
 * files on its own floor or below. Control reaches a higher floor only through a function
 * pointer set from above — the four seams:
 *   1. libev callbacks (timers, fd waits, the async wake-up: registered by their owners),
 *      and their kind in a simulated run (sim.h): a virtual timer's `fire` (set by timer.c)
 *      and the blocking pool's "busy" probe (handed to weft__sim_start by run.c);
 *   2. inbox message handlers (struct weft__msg's `run`, set by whoever posts the message:
 *      the worker runs them and never names timer.c or io.c);
 *   3. the park's on-top hook (scheduler.h weft__park: the wait layer releases its lock and
 *      arms its deadline timer there, sched.c never names timer.c);
 *   4. a coroutine's entry function (co->entry, set by the spawner, task.c).
 * fork's child handler is a fifth, of the same kind: fork.c runs the handler run.c
 * registers (nothing names run.c, the roof). */
#ifndef WEFT_WORKER_H
#define WEFT_WORKER_H

#include "common.h"
#include "coro.h"
#include "latency.h"
#include "runq.h"
#include "segstack.h"
#include "stack.h"

#include <ev.h>
#include <pthread.h>

struct weft__looprec; /* looprec.h */

/* Per-worker state. Everything here is touched only by the worker's own thread except
 * where a field says otherwise. */
struct weft__worker {
    struct weft__runq rq; /* ring: owner pushes; owner and thieves pop */
    _Atomic(struct weft__msg *) inbox WEFT_ALIGNED_CL; /* any thread pushes; owner drains */
    int index;
    pthread_t thread;
    struct ev_loop *loop; /* owner only (ev_async_send on `wake` is thread-safe) */
    ev_async wake;
    weft__fctx_t sched_ctx; /* the scheduler loop's context while a coroutine runs */
    void *sched_asan_fake;
    weft__seg sched_seg; /* the scheduler's split-stack context (segmented builds) */
    void *sched_tsan_fiber;
    struct weft__coro *current; /* the coroutine running now, NULL in the scheduler */
    struct weft__coro *pinned_head, *pinned_tail; /* pinned FIFO: owner only, never stolen */
    void *sched_stack_lo;                         /* the worker thread's own stack, for ASan */
    size_t sched_stack_size;
    struct weft__coro *direct_next; /* owner only: run next (see switch_to) */
    struct weft__stack_cache stacks;
    struct weft__coro_cache coros; /* free control blocks, ids, their counters (coro.h) */
    /* Fields of floors 3-4 kept here, on the owner's thread only: the loop record pool
     * (looprec.c; its records are timer.c's and io.c's) and io.c's table. The worker never
     * reads them; run.c frees them (weft__looprec_pool_free, weft__io_cache_free) before
     * weft__worker_destroy. */
    struct weft__looprec *looprec_free; /* free loop records (looprec.c) */
    void *looprec_chunks;               /* every loop record block of this worker (looprec.c) */
    int io_waits;       /* fd waits registered in this loop (owner only; load.c reads) */
    uint64_t *fd_seen;  /* per fd: cookie of the socket last registered here (io.c) */
    uint32_t tick_left; /* dispatches until the scheduler context runs (61) */
    bool tick_due;      /* the 61st dispatch came: check the global queue first */
    /* main returned (weft__stop): dispatch nothing more. Written once (release) by the
     * thread running main's exit; read by the owner at every dispatch (pick_local, yield:
     * relaxed, on the owner's own line, no cost while 0) and with acquire by worker_loop
     * before it leaves (sched.c "Stopping"; set by weft__stop). */
    _Atomic bool stop;
    uint32_t next_streak; /* consecutive runnext/LIFO dispatches (sched.c local_get) */
    int64_t last_poll;    /* weft_now() of the last ev_run */
    /* load.c: poll-spinning and idle accounting (owner only, but idle_mark: see load.c) */
    int64_t poll_spin_start;     /* poll-spinning since (0: not) */
    int64_t poll_last_sleep;     /* how long the last blocking poll slept */
    int64_t poll_probe_at;       /* the last look at the system's runnable threads */
    bool poll_contended;         /* its verdict: other threads want the CPUs */
    int64_t idle_acc, idle_from; /* idle time so far; idle since (while idle) */
    _Atomic int64_t idle_mark;   /* published idle time (load.c encoding) */
    ev_timer watch;              /* worker 1's bounded sleep while narrow (idle.c go_idle) */
    /* Stealing that pays (sched.c): owner only. The batch of the last steal, judged when
     * the thief's queues are empty again; a batch of tiny finished tasks earns a nap. */
    int64_t steal_at;     /* weft_now() of the last steal (0: no batch being judged) */
    uint32_t steal_n;     /* coroutines that steal took */
    uint64_t steal_parks; /* n_parks at the steal */
    int64_t nap_ns;       /* the last nap's length (0: the last batch paid) */
    ev_timer nap;         /* bounds a nap (idle.c weft__steal_nap) */
    bool solo;            /* the runtime has one worker: no thieves */
    bool debug_migrate;   /* copy of runtime.debug_migrate, read on hot paths */
    bool spinning;        /* holds one of runtime.nspinning */
    bool in_poll;         /* inside ev_run: readied coroutines stay local */
    bool idle;            /* on the idle list (guarded by runtime.idle_mu) */
    bool woken;           /* popped off the idle list by a waker: owns a spin token */
    uint64_t rng;
    void *altstack; /* sigaltstack for overflow reports */
    /* statistics (owner writes, weft_stats reads relaxed) */
    _Atomic uint64_t n_switches, n_parks, n_steals, n_spawned, n_finished;
    _Atomic uint64_t n_grown;  /* finished coroutines whose stack had grown (segmented) */
    _Atomic uint64_t n_sleeps; /* blocking polls (go_idle), for load.c */
    _Atomic uint64_t n_naps;   /* steal naps (sched.c "Stealing that pays"; test_steal_nap) */
    uint32_t lat_tick;         /* owner: runnable events since the last sampled one */
    struct weft__lat_hist lat; /* owner writes, any thread reads relaxed (latency.h) */
    /* CPU accounting (weft_cputime, owner only): when the running coroutine was switched to
     * (ticks), under accounting generation run_gen (stale: accounting was off since) */
    int64_t run_since;
    uint32_t run_gen;
    /* hang.h: the deadlock detector and the stall watchdog */
    bool deep_sleep;             /* owner: inside go_idle's blocking poll */
    int timers_armed;            /* owner: active timer records in the loop (timer.c) */
    _Atomic uint64_t sleep_word; /* owner writes (libev hooks), any thread reads: hang.h */
};

struct weft__runtime {
    int nworkers;
    int ncpus; /* CPUs this process may run on (load.c poll-spinning) */
    struct weft__worker **workers;
    struct weft__globalq global;
    _Atomic int nspinning; /* workers looking for work (idle.c) */
    _Atomic int nidle;     /* workers on the idle list (idle.c) */
    _Atomic int npollspin; /* workers poll-spinning before sleep (0 or 1, load.c) */
    /* load.c: narrow mode (fd waits gather on worker 0 while the runtime needs < 1 CPU) */
    _Atomic bool narrow;           /* a hint, read relaxed (see load.c) */
    bool narrow_allowed;           /* false: never changes (1 worker, WEFT_NARROW=0|1, migrate) */
    bool load_debug;               /* $WEFT_LOAD_DEBUG: print each window's verdict */
    bool watcher_parked;           /* worker 1 sleeps untimed while narrow (idle_mu; idle.c) */
    pthread_mutex_t load_mu;       /* the decider of a window (trylock) */
    _Atomic int64_t load_next;     /* when the next window ends */
    int64_t load_at;               /* the window's start (load_mu) */
    int64_t *load_idle;            /* per worker: idle time at load_at (load_mu) */
    uint64_t *load_sleeps;         /* per worker: n_sleeps at load_at (load_mu) */
    _Atomic uint64_t narrow_count; /* times the runtime went narrow (written under load_mu) */
    pthread_mutex_t idle_mu;       /* guards the idle list and worker.idle/woken */
    struct weft__worker **idle_list;
    int idle_top;
    _Atomic int stopping; /* main returned (weft__stop); the scheduler exits on it */
    bool debug_migrate;
    int64_t steal_pays_ns; /* sched.c "Stealing that pays" ($WEFT_STEAL_PAYS_NS; 0: no naps) */
    size_t stack_size;
    int blocking_threads;
    _Atomic uint32_t rr; /* round-robin cursor for debug migration / inbox posts */
    /* stall episodes seen (reported or held back by the rate limit): the watchdog writes
     * (stall.c, its only writer), weft_stats reads relaxed */
    _Atomic uint64_t n_stalls;
    /* weft_sched_latency_get's window: the summed histogram at its last reset (lat_mu) */
    pthread_mutex_t lat_mu;
    uint64_t lat_base[WEFT__LAT_BUCKETS];
};

/* The runtime while weft_run runs (static storage, see run.c), else NULL. Workers read
 * it freely (they live within the run); a plain thread only between weft__gate_in and
 * weft__gate_out (gate.h), which orders its reads after weft_run set it and before weft_run
 * clears it and frees what it owns. */
extern struct weft__runtime *weft__rt;
/* Counts weft_run calls: objects remember the run whose waiters they hold, so waiters left
 * by coroutines abandoned at shutdown (on stacks since unmapped) are never touched later. */
extern _Atomic uint64_t weft__run_epoch;

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

/* load.c's narrow mode: a hint, read relaxed (see load.c for why a stale value is safe). */
static inline bool weft__narrow(const struct weft__runtime *rt)
{
    return atomic_load_explicit(&rt->narrow, memory_order_relaxed);
}


/* Owner only: pinned coroutines wait in a private FIFO that thieves never see. */
static inline void weft__pinned_push(struct weft__worker *w, struct weft__coro *co)
{
    co->next = NULL;
    if (w->pinned_tail)
        w->pinned_tail->next = co;
    else
        w->pinned_head = co;
    w->pinned_tail = co;
}

static inline struct weft__coro *weft__pinned_pop(struct weft__worker *w)
{
    struct weft__coro *co = w->pinned_head;
    if (co) {
        w->pinned_head = co->next;
        if (!co->next)
            w->pinned_tail = NULL;
    }
    return co;
}

/* Inbox. Post a message to a worker's inbox and wake it. Any thread. The owner drains it
 * (weft__worker_drain, scheduler context) and runs each message's handler, in post order. */
void weft__worker_post(struct weft__worker *w, struct weft__msg *m);
void weft__worker_drain(struct weft__worker *w);
/* The handler of a coroutine's own message (co->msg.run, set by the spawner): queue the
 * RUNNABLE coroutine on the owner (its pinned FIFO, or its ring). */
void weft__worker_take_coro(struct weft__worker *w, struct weft__msg *m);
/* Wake a worker's loop (an eventfd write). Any thread. */
void weft__worker_wake(struct weft__worker *w);
/* Run the worker's loop once (flags: EVRUN_NOWAIT or EVRUN_ONCE); owner, scheduler context.
 * Coroutines made runnable by its callbacks stay local (in_poll). */
void weft__worker_poll(struct weft__worker *w, int flags);

/* Worker lifecycle (run.c drives these). */
struct weft__worker *weft__worker_create(int index);
void weft__worker_destroy(struct weft__worker *w);
/* Setup and teardown of the worker's own thread: its thread-local worker, stack bounds, TSan
 * fiber, split-stack state (sched.c weft__worker_run, which adds the overflow guard's). */
void weft__worker_thread_init(struct weft__worker *w);
void weft__worker_thread_fini(struct weft__worker *w);
void weft__wake_all(void);
/* main's coroutine returned: set `stopping` and every worker's `stop`, wake every worker. */
void weft__stop(void);

#endif
