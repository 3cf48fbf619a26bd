/* SPDX-License-Identifier: MIT */
/* run.c — floor 7 (the roof): weft_run — configuration from the arguments and the
 * environment, the start order, and the shutdown. Nothing names this file's symbols; it
 * names everything it starts, and undoes it at the end.
 *
 * Shutdown rule (Go's): when main's coroutine returns, the runtime stops (weft__stop).
 * Coroutines still alive are not resumed again: each worker finishes the coroutine it is
 * running (cooperative: until it next blocks, yields, spawns into a full queue or exits),
 * then its next dispatch sees `stop` and it leaves its loop (sched.c pick_local); the
 * workers are joined. Then, in this order:
 *   1. the gate closes (gate.h): no plain thread is admitted any more, every plain thread
 *      still sleeping in a weft call (join, channel, mutex, select...) is woken with
 *      WEFT_ENORUNTIME, and we wait until every plain thread has left its call. From here
 *      nothing but this thread touches the runtime, the queues, the stacks;
 *   2. teardown: worker loops and caches, every control block back to the pool with its id
 *      retired (handles then get WEFT_ENORUNTIME, or WEFT_ESTATE in a later run), a new
 *      epoch (waiters of abandoned coroutines left in channels become stale), every stack
 *      unmapped, weft__rt cleared;
 *   3. the gate says STOPPED (plain threads get WEFT_ENORUNTIME or use objects without a
 *      runtime).
 * Between 1 and 2 we wait for the blocking pool's jobs still running (blocking.c): their
 * records live in abandoned callers' frames, so they must end before the stacks go; a pool
 * thread is admitted through the closing gate without waiting, and does not wake anyone.
 * The runtime struct itself is static (never freed, reset per run): a plain thread's stale
 * pointer to it can never point into freed memory; what it owns is reached only through the
 * gate. */
#define _GNU_SOURCE
#include "blocking.h"
#include "debug.h"
#include "evalloc.h"
#include "fdwait.h"
#include "looprec.h"
#include "fork.h"
#include "gate.h"
#include "guard.h"
#include "hang.h"
#include "scheduler.h"
#include "sim.h"
#include "task.h"
#include "timer.h"
#include "trace.h"
#include "worker.h"

#include <sched.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


static _Atomic int running;
/* fork: the runtime of the parent a child was forked from (kept reachable, never used: its
 * workers do not exist in the child, and its event loops share epoll instances with the
 * parent), and whether the child runs on a coroutine's stack. */
static struct weft__runtime *forked_rt;
static bool forked_on_coro_stack;

static struct weft__runtime rt_storage; /* weft__rt while running; fields reset per run */

/* fork.c's CHILD step calls this (registered by weft__fork_init below). */
static void run_atfork_child(bool on_coro_stack)
{
    /* A copy: rt_storage is reset by the child's next run, and the copy keeps what the
     * parent's runtime owned reachable (leak checkers). */
    if (weft__rt && (forked_rt = malloc(sizeof *forked_rt)))
        memcpy(forked_rt, weft__rt, sizeof *forked_rt);
    weft__rt = NULL;
    weft__tls_worker = NULL; /* the forking thread is a plain thread in the child */
    forked_on_coro_stack = forked_on_coro_stack || on_coro_stack;
    weft__guard_uninstall();
    weft__dump_signal_uninstall();
    atomic_fetch_add(&weft__run_epoch, 1); /* objects' waiters from the parent are stale */
    atomic_store(&running, 0);
}

struct main_arg {
    int (*main)(void *);
    void *arg;
    int ret;
};

static void *main_trampoline(void *p)
{
    struct main_arg *m = p;
    m->ret = m->main(m->arg);
    return NULL;
}

static void *worker_thread(void *p)
{
    weft__worker_run(p, weft__hang_thread_init); /* hang.h: publish the thread (stall.c) */
    return NULL;
}

/* $WEFT_NARROW: unset or "auto" — the runtime narrows and widens with its load (load.c);
 * "0" — never narrow; "1" — always narrow (for tests of the gathered fd waits). */
static void narrow_mode_init(struct weft__runtime *rt)
{
    const char *v = getenv("WEFT_NARROW");
    bool forced = v && (!strcmp(v, "0") || !strcmp(v, "1"));
    if (v && *v && !forced && strcmp(v, "auto"))
        fprintf(stderr, "weft: ignoring WEFT_NARROW=%s (expected auto, 0 or 1)\n", v);
    /* Debug migration sends coroutines away at every switch: no load signal survives it,
     * so only a forced narrow mode applies there (a test of every fd wait moving). */
    rt->narrow_allowed = rt->nworkers > 1 && !rt->debug_migrate && !forced;
    atomic_store(&rt->narrow, rt->nworkers > 1 && forced && v[0] == '1');
    rt->load_debug = getenv("WEFT_LOAD_DEBUG") != NULL;
}

static long env_num(const char *name, long dflt, long max)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < 0 || n > max) {
        fprintf(stderr, "weft: ignoring %s=%s (expected a number 0..%ld)\n", name, v, max);
        return dflt;
    }
    return n;
}

static int env_int(const char *name, int dflt)
{
    return (int)env_num(name, dflt, 4096);
}

/* $WEFT_STACK_SIZE: the default stack size when the config leaves it 0 (bytes, or with a K
 * or M suffix). A value out of range is reported and ignored, not fatal; that includes
 * sub-page sizes (below WEFT_STACK_DEFAULT_MIN): every coroutine, printf and all, would get a
 * stack ordinary C code overflows — sub-page stacks are asked for per spawn. */
static size_t env_stack_size(void)
{
    const char *v = getenv("WEFT_STACK_SIZE");
    if (!v || !*v)
        return WEFT_STACK_DEFAULT_BUILD;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (*end == 'k' || *end == 'K')
        n <<= 10, end++;
    else if (*end == 'm' || *end == 'M')
        n <<= 20, end++;
    if (*end || n > WEFT_STACK_MAX) {
        fprintf(stderr, "weft: ignoring WEFT_STACK_SIZE=%s (bytes, K or M; %zu..%zu)\n", v,
                WEFT_STACK_DEFAULT_MIN, WEFT_STACK_MAX);
        return WEFT_STACK_DEFAULT_BUILD;
    }
    if (n < WEFT_STACK_DEFAULT_MIN) {
        fprintf(stderr,
                "weft: ignoring WEFT_STACK_SIZE=%s: below %zu bytes, a default stack is too "
                "small for ordinary C code (printf needs ~8 KiB); ask for sub-page stacks per "
                "coroutine with weft_spawn_opts.stack_size\n",
                v, WEFT_STACK_DEFAULT_MIN);
        return WEFT_STACK_DEFAULT_BUILD;
    }
    return weft__stack_round((size_t)n);
}

/* The simulation's probe (sim.h weft__sim_start): blocking-pool jobs are queued or running,
 * so an event from outside weft is on its way (the worker, idle, waits for it in real time
 * rather than jumping the virtual clock). Worker thread, when nothing is runnable. */
static bool pool_busy(void)
{
    int queued, threads, busy;
    weft__blocking_depth(&queued, &threads, &busy);
    return queued > 0 || busy > 0;
}

int weft_run(int (*main)(void *), void *arg, const weft_config *config)
{
    if (!main)
        return WEFT_EINVAL;
    weft_config cfg = {0};
    if (config)
        cfg = *config;
    if (cfg.threads < 0 || cfg.threads > 4096 || cfg.blocking_threads < 0 ||
        !WEFT__RESERVED_ZERO(&cfg))
        return WEFT_EINVAL;
    if (cfg.dump_signal != 0 && (cfg.dump_signal < 1 || cfg.dump_signal >= NSIG ||
                                 cfg.dump_signal == SIGKILL || cfg.dump_signal == SIGSTOP))
        return WEFT_EINVAL;
    if (cfg.stall_ms < -1 || cfg.deadlock < -1 || cfg.deadlock > 1)
        return WEFT_EINVAL;
    if (cfg.stack_size &&
        (cfg.stack_size < WEFT_STACK_DEFAULT_MIN || cfg.stack_size > WEFT_STACK_MAX))
        return WEFT_ESTACK;
    if (forked_on_coro_stack) {
        fprintf(stderr, "weft: weft_run in a child forked from a coroutine (it runs on that "
                        "coroutine's stack: exec or _exit there; fork from a plain thread to "
                        "run weft in the child)\n");
        return WEFT_ESTATE;
    }
    int expected = 0;
    if (!atomic_compare_exchange_strong(&running, &expected, 1))
        return WEFT_EBUSY;
    if (weft__fork_init(run_atfork_child) != 0) {
        atomic_store(&running, 0);
        return WEFT_ENOMEM;
    }

    uint64_t seed = weft__sim_seed(cfg.seed); /* simulation (sim.h): one worker */
    int nthreads = seed ? 1 : cfg.threads;
    if (!nthreads)
        nthreads = env_int("WEFT_THREADS", 0);
    if (!nthreads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        nthreads = n > 0 ? (int)n : 1;
    }
    struct weft__runtime *rt = &rt_storage;
    memset(rt, 0, sizeof *rt);
    bool opened = false, ran = false;
    rt->nworkers = nthreads;
    cpu_set_t cpus;
    rt->ncpus = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
    rt->stack_size = cfg.stack_size ? weft__stack_round(cfg.stack_size) : env_stack_size();
    rt->debug_migrate = cfg.debug_migrate || env_int("WEFT_DEBUG_MIGRATE", 0) > 0;
    if (nthreads == 1)
        rt->debug_migrate = false; /* nowhere to migrate to */
    rt->steal_pays_ns = env_num("WEFT_STEAL_PAYS_NS", 1000, 1000000000);
    rt->blocking_threads = cfg.blocking_threads ? cfg.blocking_threads : 64;
    narrow_mode_init(rt);
    pthread_mutex_init(&rt->idle_mu, NULL);
    pthread_mutex_init(&rt->load_mu, NULL);
    pthread_mutex_init(&rt->lat_mu, NULL);
    weft__ticks_base(); /* the tick counter's calibration starts (clock.h) */
    /* $WEFT_CPUTIME=1: CPU accounting on from the start (weft_cputime; it stays on after the
     * run, as weft_cputime(1) would leave it); any other value is reported and ignored. */
    const char *cpu_env = getenv("WEFT_CPUTIME");
    if (cpu_env && *cpu_env && strcmp(cpu_env, "0") != 0) {
        if (strcmp(cpu_env, "1") == 0)
            weft_cputime(1);
        else
            fprintf(stderr, "weft: ignoring WEFT_CPUTIME=%s (expected 0 or 1)\n", cpu_env);
    }
    rt->workers = calloc((size_t)nthreads, sizeof *rt->workers);
    rt->idle_list = calloc((size_t)nthreads, sizeof *rt->idle_list);
    int ret = WEFT_ENOMEM;
    bool hang_started = false;
    rt->load_idle = calloc((size_t)nthreads, sizeof *rt->load_idle);
    rt->load_sleeps = calloc((size_t)nthreads, sizeof *rt->load_sleeps);
    if (!rt->workers || !rt->idle_list || !rt->load_idle || !rt->load_sleeps)
        goto out;
    weft__evalloc_install();
    for (int i = 0; i < nthreads; i++) {
        if (!(rt->workers[i] = weft__worker_create(i)))
            goto out;
        weft__hang_loop_init(rt->workers[i]); /* hang.h: the loop's release/acquire hooks */
        rt->workers[i]->solo = nthreads == 1;
        rt->workers[i]->debug_migrate = rt->debug_migrate;
        rt->workers[i]->stacks.size = rt->stack_size; /* its cache keeps the default size */
    }
    if (seed && (ret = weft__sim_start(seed, pool_busy)) != 0)
        goto out;
    ret = WEFT_ENOMEM;
    atomic_fetch_add(&weft__run_epoch, 1);
    weft__rt = rt;
    weft__guard_install();
    if (cfg.dump_signal > 0)
        weft__dump_signal_install(cfg.dump_signal);
    hang_started = weft__hang_start(&cfg) == 0; /* hang.h; without it: no reports */

    /* main runs as a coroutine like any other; the calling thread becomes worker 0. */
    struct main_arg m = {main, arg, 0};
    struct weft__coro *co;
    {
        co = weft__task_alloc(NULL);
        if (!co)
            goto stop;
        co->fn = main_trampoline; /* task.c's entry runs it; its exit stops the runtime */
        co->arg = &m;
        /* main is the program's own code (printf, libraries): at least WEFT_STACK_DEFAULT.
         * Its stack is promised here like any spawn's: no room for it is WEFT_ENOMEM. */
        if (weft__stack_spawn(NULL, co,
                              rt->stack_size < WEFT_STACK_DEFAULT ? WEFT_STACK_DEFAULT
                                                                  : rt->stack_size) != 0)
            goto stop;
        co->flags = WEFT__CF_MAIN | WEFT__CF_DETACHED;
        atomic_fetch_sub_explicit(&co->refs, 1, memory_order_relaxed);
        strcpy(co->name, "main");
        atomic_store_explicit(&co->state, WEFT_CO_RUNNABLE, memory_order_relaxed);
    }
    /* Every worker thread starts before main is queued. One that cannot be created (no
     * memory for its stack, a thread limit) fails the whole run with WEFT_ENOMEM, rather
     * than running with fewer workers than asked: the ones already started find nothing to
     * do, are stopped and joined, and nothing of the run is left behind. */
    {
        pthread_t *threads = calloc((size_t)nthreads, sizeof *threads);
        if (!threads)
            goto stop;
        weft__trace_run_begin(nthreads); /* $WEFT_TRACE, weft_trace_start (trace.h) */
        WEFT__TRACE_SPAWN(-1, co->id, 0, co->name, NULL);
        weft__gate_open(); /* plain threads may come in: weft__rt is set */
        opened = true;
        int started = 1;
        while (started < nthreads &&
               pthread_create(&threads[started], NULL, worker_thread, rt->workers[started]) == 0)
            started++;
        if (started == nthreads) {
            weft__globalq_put(&rt->global, co);
            weft__worker_run(rt->workers[0], weft__hang_thread_init);
            ret = m.ret;
            ran = true;
        } else {
            weft__stop();
        }
        for (int i = 1; i < started; i++)
            pthread_join(threads[i], NULL);
        free(threads);
        if (hang_started)
            weft__hang_stop(); /* the workers are gone: nothing left to watch */
        hang_started = false;
    }
stop:
    if (cfg.dump_signal > 0)
        weft__dump_signal_uninstall();
    weft__guard_uninstall();
out:
    if (hang_started)
        weft__hang_stop();
    if (opened)
        weft__gate_close(); /* step 1 (see the top) */
    /* Step 1b: the blocking pool's running jobs, before the teardown (their records and
     * what fn uses may be on abandoned coroutines' stacks); queued ones never run. */
    weft__blocking_shutdown();
    weft__trace_run_end(); /* no worker, no pool thread left: every buffer is written out */
    if (ran)
        weft__zombie_report(); /* nothing changes under its walk now: no worker, no thread */
    if (rt->workers)
        for (int i = 0; i < nthreads; i++)
            if (rt->workers[i]) {
                /* floors 3-4's records first: the worker never names them (worker.h) */
                weft__looprec_pool_free(rt->workers[i]);
                weft__io_cache_free(rt->workers[i]);
                weft__worker_destroy(rt->workers[i]);
            }
    weft__coro_reset_all();
    /* A new epoch: waiters queued during this run (on stacks about to be unmapped) are now
     * recognisably stale (chan.c forgets them; see worker.h). */
    atomic_fetch_add(&weft__run_epoch, 1);
    weft__stack_release_all();
    if (seed)
        weft__sim_stop(); /* the clock is real again */
    free(rt->workers);
    free(rt->idle_list);
    free(rt->load_idle);
    free(rt->load_sleeps);
    pthread_mutex_destroy(&rt->idle_mu);
    pthread_mutex_destroy(&rt->load_mu);
    pthread_mutex_destroy(&rt->lat_mu);
    weft__rt = NULL;
    weft__gate_stopped(); /* step 3 */
    atomic_store(&running, 0);
    return ret;
}
