/* SPDX-License-Identifier: MIT */
/* debug.c — floor 6 (tools): weft_stats_get, the control-block and zombie counts, weft_dump
 * (Go's SIGQUIT dump, on demand or on a signal) and the zombie report at weft_run's end.
 * Frames print as symbol+offset, or module+offset where the module has no symbol for them
 * (static functions of a program linked without -rdynamic): `addr2line -e module offset`
 * then finds the line. The text that names a coroutine in reports is text.c's. The dump
 * reads other workers' coroutines without their locks, on purpose (a snapshot, like Go's). */
#define _GNU_SOURCE
#include "clock.h"
#include "gate.h"
#include "hang.h"
#include "scheduler.h"
#include "blocking.h"
#include "debug.h"
#include "text.h"
#include "worker.h"

#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* Control blocks and zombies: each worker's cache counts its own (one writer each, read
 * relaxed: approximate while running, like every statistic); plain threads share one
 * count (coro.c). Only the sum means something: a block made on one worker may be freed on
 * another. */
static void coro_counts(uint64_t *alive, uint64_t *zombies)
{
    int64_t n, z;
    weft__coro_plain_counts(&n, &z);
    struct weft__runtime *rt = weft__rt;
    for (int i = 0; rt && i < rt->nworkers; i++) {
        const struct weft__coro_cache *c = &rt->workers[i]->coros;
        n += (int64_t)(atomic_load_explicit(&c->n_alloc, memory_order_relaxed) -
                       atomic_load_explicit(&c->n_free, memory_order_relaxed));
        z += (int64_t)(atomic_load_explicit(&c->n_zombied, memory_order_relaxed) -
                       atomic_load_explicit(&c->n_unzombied, memory_order_relaxed));
    }
    *alive = n > 0 ? (uint64_t)n : 0;
    *zombies = z > 0 ? (uint64_t)z : 0;
}

uint64_t weft__coro_alive(void)
{
    uint64_t n, z;
    coro_counts(&n, &z);
    return n;
}

uint64_t weft__coro_zombies(void)
{
    uint64_t n, z;
    coro_counts(&n, &z);
    return z;
}

/* The scheduling-latency histograms summed over the workers (each read relaxed: latency.h). */
static void lat_sum(struct weft__runtime *rt, uint64_t *counts)
{
    memset(counts, 0, sizeof(uint64_t) * WEFT__LAT_BUCKETS);
    for (int i = 0; i < rt->nworkers; i++)
        for (int b = 0; b < WEFT__LAT_BUCKETS; b++)
            counts[b] += atomic_load_explicit(&rt->workers[i]->lat.n[b], memory_order_relaxed);
}

static int stats_get(weft_stats *out)
{
    struct weft__runtime *rt = weft__rt; /* a worker's, or an admitted thread's (gate.h) */
    memset(out, 0, sizeof *out);
    out->workers = rt->nworkers;
    for (int i = 0; i < rt->nworkers; i++) {
        struct weft__worker *w = rt->workers[i];
        out->switches += atomic_load_explicit(&w->n_switches, memory_order_relaxed);
        out->parks += atomic_load_explicit(&w->n_parks, memory_order_relaxed);
        out->steals += atomic_load_explicit(&w->n_steals, memory_order_relaxed);
        out->spawned += atomic_load_explicit(&w->n_spawned, memory_order_relaxed);
        out->stacks_grown += atomic_load_explicit(&w->n_grown, memory_order_relaxed);
    }
    out->narrow = weft__narrow(rt);
    out->narrowed = atomic_load_explicit(&rt->narrow_count, memory_order_relaxed);
    /* Control blocks in use, less the zombies among them (both lag a little). */
    uint64_t blocks = weft__coro_alive();
    out->zombies = weft__coro_zombies();
    out->alive = blocks > out->zombies ? blocks - out->zombies : 0;
    weft__stack_stats(&out->stack_bytes, &out->stacks_cached);
    int queued, threads, running;
    weft__blocking_depth(&queued, &threads, &running);
    out->blocking_queued = (uint32_t)queued;
    out->blocking_busy = (uint32_t)running;
    out->blocking_threads = (uint32_t)threads;
    out->stalls = atomic_load_explicit(&rt->n_stalls, memory_order_relaxed);
    for (int i = 0; i < rt->nworkers; i++)
        out->stacks_cached +=
            atomic_load_explicit(&rt->workers[i]->stacks.count, memory_order_relaxed);
    uint64_t counts[WEFT__LAT_BUCKETS];
    lat_sum(rt, counts);
    int p99 = 990;
    int64_t ticks;
    weft__lat_percentiles(counts, &p99, &ticks, 1);
    out->sched_latency_p99_ns = ticks ? (int64_t)((double)ticks * weft__ns_per_tick()) : 0;
    return 0;
}

static int sched_latency_get(weft_sched_latency *out, int reset)
{
    struct weft__runtime *rt = weft__rt;
    uint64_t counts[WEFT__LAT_BUCKETS];
    lat_sum(rt, counts);
    /* One window for every caller: the base is read and replaced under lat_mu. */
    pthread_mutex_lock(&rt->lat_mu);
    for (int b = 0; b < WEFT__LAT_BUCKETS; b++) {
        uint64_t now = counts[b];
        /* relaxed reads of single-writer counters only grow: a base above is a torn view */
        counts[b] = now > rt->lat_base[b] ? now - rt->lat_base[b] : 0;
        if (reset)
            rt->lat_base[b] = now;
    }
    pthread_mutex_unlock(&rt->lat_mu);
    memset(out, 0, sizeof *out);
    static const int pm[5] = {500, 900, 990, 999, 1000};
    int64_t v[5];
    out->samples = weft__lat_percentiles(counts, pm, v, 5); /* in ticks */
    double r = out->samples ? weft__ns_per_tick() : 0;
    out->p50_ns = (int64_t)((double)v[0] * r);
    out->p90_ns = (int64_t)((double)v[1] * r);
    out->p99_ns = (int64_t)((double)v[2] * r);
    out->p999_ns = (int64_t)((double)v[3] * r);
    out->max_ns = (int64_t)((double)v[4] * r);
    return 0;
}

int weft_sched_latency_get(weft_sched_latency *out, int reset)
{
    if (!out || (reset != 0 && reset != 1))
        return WEFT_EINVAL;
    return WEFT__GATED_RT(sched_latency_get(out, reset));
}

int weft_cputime(int on)
{
    if (on != 0 && on != 1)
        return WEFT_EINVAL;
    /* Generations: a worker charges an interval only if it began under the current one, so
     * turning accounting off and on again never charges the time it was off. Callers that
     * race here are serialised by the CAS; a generation is never 0 (0 means off). */
    static _Atomic uint32_t last_gen;
    uint32_t was = atomic_load_explicit(&weft__cputime_gen, memory_order_relaxed);
    uint32_t want;
    do {
        if (!on) {
            want = 0;
        } else if (was) {
            return 1; /* already on: keep the generation (intervals stay valid) */
        } else {
            want = atomic_fetch_add_explicit(&last_gen, 1, memory_order_relaxed) + 1;
            if (!want)
                want = atomic_fetch_add_explicit(&last_gen, 1, memory_order_relaxed) + 1;
        }
    } while (!atomic_compare_exchange_weak_explicit(&weft__cputime_gen, &was, want,
                                                    memory_order_relaxed, memory_order_relaxed));
    return was != 0;
}

int weft_stats_get(weft_stats *out)
{
    if (!out)
        return WEFT_EINVAL;
    return WEFT__GATED_RT(stats_get(out));
}

static const char *state_name(uint32_t s)
{
    switch (s & ~(uint32_t)WEFT_CO_NOTIFIED) {
    case WEFT_CO_RUNNABLE:
        return "runnable";
    case WEFT_CO_RUNNING:
        return "running";
    case WEFT_CO_WAITING:
        return "waiting";
    case WEFT_CO_DEAD:
        return "dead";
    default:
        return "free";
    }
}

/* The resume address of a parked coroutine: the return address saved in its context
 * (asm backend on x86-64: offset 0x38 of the save area; AArch64: x30's slot). */
static WEFT_NO_TSAN void *resume_pc(const struct weft__coro *co)
{
#if defined(WEFT_CONTEXT_ASM) && defined(__x86_64__)
    void **ctx = *(void **volatile *)&co->ctx; /* read once: it may change meanwhile */
    return ctx ? ctx[7] : NULL;
#else
    (void)co;
    return NULL;
#endif
}

static WEFT_NO_TSAN void *saved_fp(const struct weft__coro *co)
{
#if defined(WEFT_CONTEXT_ASM) && defined(__x86_64__)
    void **ctx = *(void **volatile *)&co->ctx;
    return ctx ? ctx[6] : NULL;
#else
    (void)co;
    return NULL;
#endif
}

void weft__addr_name(const void *pc, char *buf, size_t cap)
{
    Dl_info info;
    if (pc && dladdr(pc, &info)) {
        if (info.dli_sname && info.dli_saddr) {
            snprintf(buf, cap, "%s+%#lx", info.dli_sname,
                     (unsigned long)((const char *)pc - (const char *)info.dli_saddr));
            return;
        }
        if (info.dli_fname && info.dli_fbase) {
            const char *base = strrchr(info.dli_fname, '/');
            snprintf(buf, cap, "%s+%#lx", base ? base + 1 : info.dli_fname,
                     (unsigned long)((const char *)pc - (const char *)info.dli_fbase));
            return;
        }
    }
    snprintf(buf, cap, "%p", pc);
}

static void print_frame(FILE *out, int n, void *pc)
{
    char name[256];
    weft__addr_name(pc, name, sizeof name);
    fprintf(out, "    #%d %p %s\n", n, pc, name);
}

/* Frame-pointer walk within the coroutine's stack bounds (weft is built with frame
 * pointers; frames of code built without them end the walk early). */
static WEFT_NO_TSAN void backtrace_parked(FILE *out, const struct weft__coro *co)
{
    /* The coroutine may finish while we look (weft_dump runs without stopping the world):
     * read its stack pointer once; stacks stay mapped, so stale reads are harmless. */
    struct weft__stack *st = *(struct weft__stack *volatile *)&co->stack;
    void *pc = resume_pc(co);
    if (!pc || !st)
        return;
    print_frame(out, 0, pc);
    char *lo = st->lo, *hi = weft__stack_top(st);
    void **fp = saved_fp(co);
    for (int n = 1; n < 32 && (char *)fp >= lo && (char *)fp + 16 <= hi; n++) {
        void *ret = fp[1];
        if (!ret)
            break;
        print_frame(out, n, ret);
        void **up = fp[0];
        if (up <= fp)
            break;
        fp = up;
    }
}

static WEFT_NO_TSAN int dump(FILE *out)
{
    struct weft__runtime *rt = weft__rt; /* see weft_dump */
    int64_t now = weft_now();
    bool cputime = atomic_load_explicit(&weft__cputime_gen, memory_order_relaxed) != 0;
    double ns_per_tick = 0; /* asked for once, when a line needs it */
    int count = 0;
    fprintf(out, "weft: %d workers\n", rt->nworkers);
    int queued, threads, running;
    weft__blocking_depth(&queued, &threads, &running);
    fprintf(out, "weft: blocking pool: %d job%s queued, %d running, %d thread%s\n", queued,
            queued == 1 ? "" : "s", running, threads, threads == 1 ? "" : "s");
    for (struct weft__coro *co = weft__coro_first(); co; co = co->all_next) {
        uint32_t s = atomic_load_explicit(&co->state, memory_order_acquire);
        uint64_t id = atomic_load_explicit(&co->id, memory_order_relaxed);
        if (s == WEFT_CO_FREE || s == WEFT_CO_DEAD || !id)
            continue;
        count++;
        char who[160];
        struct weft__text t = {who, who + sizeof who - 1};
        weft__text_coro(&t, co);
        *t.p = 0;
        fprintf(out, "%s %s", who, state_name(s));
        if (co->last_worker >= 0)
            fprintf(out, " worker=%d runs=%llu", co->last_worker, (unsigned long long)co->runs);
        if (cputime || co->cpu_ticks) {
            if (!ns_per_tick)
                ns_per_tick = weft__ns_per_tick();
            fprintf(out, " cpu=%.3fms", (double)co->cpu_ticks * ns_per_tick / 1e6);
        }
        if ((s & ~(uint32_t)WEFT_CO_NOTIFIED) == WEFT_CO_WAITING) {
            const char *what = co->wait_what;
            fprintf(out, " on=%s", what ? what : "?");
            if (co->wait_since)
                fprintf(out, " for=%.3fs", (double)(now - co->wait_since) / 1e9);
        }
        struct weft__stack *st = *(struct weft__stack *volatile *)&co->stack;
        if (st)
            fprintf(out, " stack=%zu", st->size);
        fputc('\n', out);
        if ((s & ~(uint32_t)WEFT_CO_NOTIFIED) == WEFT_CO_WAITING)
            backtrace_parked(out, co);
    }
    fprintf(out, "weft: %d coroutines\n", count);
    fflush(out);
    return count;
}

/* Zombies at weft_run's end: reported in builds without NDEBUG unless $WEFT_DEBUG=0, and in
 * any build with $WEFT_DEBUG set to anything else. Runs after the workers have stopped
 * (nothing changes under the walk), before the control blocks are reset. */
static bool zombie_report_enabled(void)
{
    const char *v = getenv("WEFT_DEBUG");
    if (v && *v)
        return strcmp(v, "0") != 0;
#ifdef NDEBUG
    return false;
#else
    return true;
#endif
}

void weft__zombie_report(void)
{
    if (!zombie_report_enabled())
        return;
    enum { SHOW = 5 };
    struct weft__coro *first[SHOW]; /* the SHOW oldest (lowest ids), sorted */
    int shown = 0;
    uint64_t n = 0;
    for (struct weft__coro *co = weft__coro_first(); co; co = co->all_next) {
        uint64_t id = atomic_load_explicit(&co->id, memory_order_relaxed);
        if (!id || !(co->flags & WEFT__CF_ZOMBIE))
            continue;
        n++;
        int i = shown < SHOW ? shown++ : SHOW;
        for (; i > 0 && atomic_load_explicit(&first[i - 1]->id, memory_order_relaxed) > id; i--)
            if (i < SHOW)
                first[i] = first[i - 1];
        if (i < SHOW)
            first[i] = co;
    }
    if (!n)
        return;
    fprintf(stderr, "weft: %llu finished task%s never joined or detached:", (unsigned long long)n,
            n == 1 ? " was" : "s were");
    for (int i = 0; i < shown; i++) {
        fprintf(stderr, "%s %llu", i ? "," : "",
                (unsigned long long)atomic_load_explicit(&first[i]->id, memory_order_relaxed));
        if (first[i]->name[0])
            fprintf(stderr, " \"%s\"", first[i]->name);
    }
    fprintf(stderr, "%s\n", n > (uint64_t)shown ? ", ..." : "");
}

/* A plain thread (the dump signal's handler may run on one, also on weft_run's own thread
 * while it stops) never waits at the gate: refused unless the runtime runs. */
int weft_dump(FILE *out)
{
    if (!out)
        return WEFT_EINVAL;
    if (weft__worker_entry())
        return dump(out);
    if (!weft__gate_try())
        return WEFT_ENORUNTIME;
    int r = dump(out);
    weft__gate_leave();
    return r;
}

static struct sigaction old_dump;
static int dump_sig;

static void on_dump(int sig)
{
    (void)sig;
    /* Not async-signal-safe (stdio); opt-in debugging aid, like Go's SIGQUIT dump. */
    weft_dump(stderr);
}

void weft__dump_signal_install(int sig)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_dump;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, &old_dump) == 0)
        dump_sig = sig;
}

void weft__dump_signal_uninstall(void)
{
    if (dump_sig)
        sigaction(dump_sig, &old_dump, NULL);
    dump_sig = 0;
}
