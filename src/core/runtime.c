/* runtime.c — weft_run: configuration, starting and stopping the workers, shutdown.
 *
 * Shutdown rule (Go's): when main's coroutine returns, the runtime stops. Coroutines still
 * alive are not resumed again: workers finish the coroutine they are running (cooperative:
 * until it next blocks or yields), leave their loops, and are joined; then every stack slab is
 * unmapped and every control block returns to the pool with its id retired (handles held by
 * plain threads then get WEFT_ENORUNTIME / WEFT_ESTATE). */
#define _GNU_SOURCE
#include "hang.h"
#include "runtime.h"

#include <sched.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


static _Atomic int running;
_Atomic uint64_t weft__run_epoch;

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
    weft__worker_run(p);
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

static int env_int(const char *name, int dflt)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < 0 || n > 4096) {
        fprintf(stderr, "weft: ignoring %s=%s (expected a number 0..4096)\n", name, v);
        return dflt;
    }
    return (int)n;
}

/* $WEFT_STACK_SIZE: the default stack size when the config leaves it 0 (bytes, or with a K
 * or M suffix). A value out of range is reported and ignored, not fatal. */
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
    if (*end || n < WEFT_STACK_MIN || n > WEFT_STACK_MAX) {
        fprintf(stderr, "weft: ignoring WEFT_STACK_SIZE=%s (bytes, K or M; %zu..%zu)\n", v,
                WEFT_STACK_MIN, WEFT_STACK_MAX);
        return WEFT_STACK_DEFAULT_BUILD;
    }
    return weft__stack_round((size_t)n);
}

int weft_run(int (*main)(void *), void *arg, const weft_config *config)
{
    if (!main)
        return WEFT_EINVAL;
    weft_config cfg = {0};
    if (config)
        cfg = *config;
    if (cfg.threads < 0 || cfg.threads > 4096 || cfg.blocking_threads < 0 ||
        !WEFT_RESERVED_ZERO(&cfg))
        return WEFT_EINVAL;
    if (cfg.dump_signal != 0 && (cfg.dump_signal < 1 || cfg.dump_signal >= NSIG ||
                                 cfg.dump_signal == SIGKILL || cfg.dump_signal == SIGSTOP))
        return WEFT_EINVAL;
    if (cfg.stall_ms < -1 || cfg.deadlock < -1 || cfg.deadlock > 1)
        return WEFT_EINVAL;
    if (cfg.stack_size && (cfg.stack_size < WEFT_STACK_MIN || cfg.stack_size > WEFT_STACK_MAX))
        return WEFT_ESTACK;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&running, &expected, 1))
        return WEFT_EBUSY;

    int nthreads = cfg.threads;
    if (!nthreads)
        nthreads = env_int("WEFT_THREADS", 0);
    if (!nthreads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        nthreads = n > 0 ? (int)n : 1;
    }
    struct weft__runtime *rt = calloc(1, sizeof *rt);
    if (!rt) {
        atomic_store(&running, 0);
        return WEFT_ENOMEM;
    }
    rt->nworkers = nthreads;
    cpu_set_t cpus;
    rt->ncpus = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
    rt->stack_size = cfg.stack_size ? weft__stack_round(cfg.stack_size) : env_stack_size();
    rt->debug_migrate = cfg.debug_migrate || env_int("WEFT_DEBUG_MIGRATE", 0) > 0;
    if (nthreads == 1)
        rt->debug_migrate = false; /* nowhere to migrate to */
    rt->blocking_threads = cfg.blocking_threads ? cfg.blocking_threads : 64;
    narrow_mode_init(rt);
    pthread_mutex_init(&rt->idle_mu, NULL);
    pthread_mutex_init(&rt->load_mu, NULL);
    rt->workers = calloc((size_t)nthreads, sizeof *rt->workers);
    rt->idle_list = calloc((size_t)nthreads, sizeof *rt->idle_list);
    int ret = WEFT_ENOMEM;
    bool hang_started = false;
    rt->load_idle = calloc((size_t)nthreads, sizeof *rt->load_idle);
    rt->load_sleeps = calloc((size_t)nthreads, sizeof *rt->load_sleeps);
    if (!rt->workers || !rt->idle_list || !rt->load_idle || !rt->load_sleeps)
        goto out;
    for (int i = 0; i < nthreads; i++) {
        if (!(rt->workers[i] = weft__worker_create(i)))
            goto out;
        rt->workers[i]->solo = nthreads == 1;
        rt->workers[i]->debug_migrate = rt->debug_migrate;
        rt->workers[i]->stacks.size = rt->stack_size; /* its cache keeps the default size */
    }
    atomic_fetch_add(&weft__run_epoch, 1);
    weft__rt = rt;
    weft__guard_install();
    if (cfg.dump_signal > 0)
        weft__dump_signal_install(cfg.dump_signal);
    hang_started = weft__hang_start(&cfg) == 0; /* hang.h; without it: no reports */

    /* main runs as a coroutine like any other; the calling thread becomes worker 0. */
    struct main_arg m = {main, arg, 0};
    weft_task t;
    struct weft__coro *co;
    {
        co = weft__coro_alloc();
        if (!co)
            goto out;
        co->fn = main_trampoline;
        co->arg = &m;
        /* main is the program's own code (printf, libraries): never a sub-page stack. */
        co->stack_size = rt->stack_size < WEFT_STACK_SMALL ? WEFT_STACK_DEFAULT : rt->stack_size;
        co->flags = WEFT_CF_MAIN | WEFT_CF_DETACHED;
        atomic_fetch_sub_explicit(&co->refs, 1, memory_order_relaxed);
        strcpy(co->name, "main");
        atomic_store_explicit(&co->state, WEFT_CO_RUNNABLE, memory_order_relaxed);
        t = (weft_task){co, co->id};
        (void)t;
        weft__globalq_put(&rt->global, co);
    }
    pthread_t *threads = calloc((size_t)nthreads, sizeof *threads);
    if (!threads)
        goto out;
    for (int i = 1; i < nthreads; i++)
        if (pthread_create(&threads[i], NULL, worker_thread, rt->workers[i]) != 0) {
            fprintf(stderr, "weft: could not start worker thread %d\n", i);
            abort();
        }
    weft__worker_run(rt->workers[0]);
    for (int i = 1; i < nthreads; i++)
        pthread_join(threads[i], NULL);
    free(threads);
    if (hang_started)
        weft__hang_stop(); /* the workers are gone: nothing left to watch */
    hang_started = false;
    ret = m.ret;
    weft__zombie_report();

    weft__blocking_shutdown();
    if (cfg.dump_signal > 0)
        weft__dump_signal_uninstall();
    weft__guard_uninstall();
out:
    if (hang_started)
        weft__hang_stop();
    weft__rt = NULL;
    if (rt->workers)
        for (int i = 0; i < nthreads; i++)
            if (rt->workers[i])
                weft__worker_destroy(rt->workers[i]);
    weft__coro_reset_all();
    /* A new epoch: waiters queued during this run (on stacks about to be unmapped) are now
     * recognisably stale (chan.c forgets them; see runtime.h). */
    atomic_fetch_add(&weft__run_epoch, 1);
    weft__stack_release_all();
    free(rt->workers);
    free(rt->idle_list);
    free(rt->load_idle);
    free(rt->load_sleeps);
    pthread_mutex_destroy(&rt->idle_mu);
    pthread_mutex_destroy(&rt->load_mu);
    free(rt);
    atomic_store(&running, 0);
    return ret;
}
