/* SPDX-License-Identifier: MIT */
/* weft_bench.c — `weft-bench WORKLOAD [N]`: the workloads of shared/bench/WORKLOADS.md,
 * printing one line per implementation: workload=<w> peer=<p> n=<N> <metric>=<v> ...
 * Timing is internal (monotonic clock around the measured part); peak RSS from getrusage.
 * Every line also says what the measured part paid (getrusage deltas over it, all threads):
 * faults_per_task = minor page faults / N, ctx_switches = voluntary + involuntary switches.
 * WEFT_THREADS sets the number of workers. Not a test: it prints figures, it asserts only
 * correctness (check=ok). */
#define _GNU_SOURCE
#include <weft.h>

#include "context.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static long N;
static const char *workload;

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* What a measured part paid: getrusage(RUSAGE_SELF) sums over all the process's threads. */
struct cost {
    long minflt, csw;
};

static struct cost cost_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (struct cost){ru.ru_minflt, ru.ru_nvcsw + ru.ru_nivcsw};
}

static struct cost cost_since(struct cost a)
{
    struct cost b = cost_now();
    return (struct cost){b.minflt - a.minflt, b.csw - a.csw};
}

/* " faults_per_task=<minor faults / n> ctx_switches=<c>": C is the cost of REPS measured
 * runs of N each, reported per run. */
static void print_cost(struct cost c, long n, int reps)
{
    printf(" faults_per_task=%.4f ctx_switches=%ld", (double)c.minflt / ((double)n * reps),
           c.csw / reps);
}

static int workers(void)
{
    weft_stats st;
    return weft_stats_get(&st) == 0 ? st.workers : 0;
}

/* $WEFT_BENCH_STACK (bytes, or with a K suffix): the park workload spawns its coroutines
 * with this per-spawn stack size (weft_spawn_opts.stack_size) — how sub-page stacks are
 * asked for (a sub-page $WEFT_STACK_SIZE is refused: weft.h). 0 when unset. */
static size_t bench_stack(void)
{
    const char *v = getenv("WEFT_BENCH_STACK");
    if (!v || !*v)
        return 0;
    char *end;
    size_t n = strtoul(v, &end, 10);
    if (*end == 'k' || *end == 'K')
        n <<= 10;
    return n;
}

/* The peer name: "weft", or the variant being measured (weft-segmented: the split-stack
 * build; -stack<size>: $WEFT_BENCH_STACK or $WEFT_STACK_SIZE set), so run-bench.sh keeps them
 * apart. */
static void head(const char *workload, const char *suffix)
{
    const char *ss = getenv("WEFT_BENCH_STACK");
    if (!ss || !*ss)
        ss = getenv("WEFT_STACK_SIZE");
#if defined(WEFT_SEGMENTED_STACKS)
    const char *build = "-segmented";
#else
    const char *build = "";
#endif
    printf("workload=%s peer=weft%s%s%s%s", workload, build, ss && *ss ? "-stack" : "",
           ss && *ss ? ss : "", suffix);
}

/* ---- switch: raw weft asm vs Boost.Context in one process, plus weft_yield ------------- */

#if defined(WEFT_CONTEXT_BOOST)
/* context.h already maps weft__*_fcontext onto Boost's: compare the same code twice. */
typedef weft__transfer_t boost_transfer;
#else
typedef struct {
    void *fctx;
    void *data;
} boost_transfer;
boost_transfer jump_fcontext(void *const to, void *vp);
void *make_fcontext(void *sp, size_t size, void (*fn)(boost_transfer));
#endif

static void weft_pong(weft__transfer_t t)
{
    for (;;)
        t = weft__jump_fcontext(t.fctx, t.data);
}

static void boost_pong(boost_transfer t)
{
    for (;;)
        t = jump_fcontext(t.fctx, t.data);
}

static double time_weft_raw(long n)
{
    static char stack[64 * 1024] __attribute__((aligned(16)));
    weft__fctx_t c = weft__make_fcontext(stack + sizeof stack, sizeof stack, weft_pong);
    weft__transfer_t t = weft__jump_fcontext(c, NULL);
    for (long i = 0; i < 100000; i++)
        t = weft__jump_fcontext(t.fctx, NULL);
    int64_t a = weft_now();
    for (long i = 0; i < n; i++)
        t = weft__jump_fcontext(t.fctx, (void *)i);
    return (double)(weft_now() - a) / (2.0 * n);
}

static double time_boost_raw(long n)
{
    static char stack[64 * 1024] __attribute__((aligned(16)));
    void *c = make_fcontext(stack + sizeof stack, sizeof stack, boost_pong);
    boost_transfer t = jump_fcontext(c, NULL);
    for (long i = 0; i < 100000; i++)
        t = jump_fcontext(t.fctx, NULL);
    int64_t a = weft_now();
    for (long i = 0; i < n; i++)
        t = jump_fcontext(t.fctx, (void *)i);
    return (double)(weft_now() - a) / (2.0 * n);
}

static void *yielder(void *arg)
{
    long n = (long)arg;
    for (long i = 0; i < n; i++)
        weft_yield();
    return NULL;
}

static double yield_ns;
static struct cost yield_cost;
static int yield_main(void *arg)
{
    (void)arg;
    weft_spawn_opts o = {.pinned = 0};
    weft_task a, b;
    weft_spawn_ex(&a, yielder, (void *)10000, &o);
    weft_spawn_ex(&b, yielder, (void *)10000, &o);
    weft_join(a, NULL);
    weft_join(b, NULL);
    weft_spawn_ex(&a, yielder, (void *)N, &o);
    weft_spawn_ex(&b, yielder, (void *)N, &o);
    struct cost c0 = cost_now();
    int64_t t0 = weft_now();
    weft_join(a, NULL);
    weft_join(b, NULL);
    yield_ns = (double)(weft_now() - t0) / (2.0 * N);
    yield_cost = cost_since(c0);
    return 0;
}

static double median3(double a, double b, double c)
{
    return a > b ? (b > c ? b : (a > c ? c : a)) : (a > c ? a : (b > c ? c : b));
}

static void bench_switch(void)
{
    double w[3], b[3], y[3];
    struct cost cw = {0, 0}, cb = {0, 0}, cy = {0, 0}, c0;
    for (int r = 0; r < 3; r++) { /* interleaved A B A B */
        c0 = cost_now();
        w[r] = time_weft_raw(N);
        c0 = cost_since(c0);
        cw.minflt += c0.minflt, cw.csw += c0.csw;
        c0 = cost_now();
        b[r] = time_boost_raw(N);
        c0 = cost_since(c0);
        cb.minflt += c0.minflt, cb.csw += c0.csw;
        weft_config cfg = {.threads = 1};
        weft_run(yield_main, NULL, &cfg);
        y[r] = yield_ns;
        cy.minflt += yield_cost.minflt, cy.csw += yield_cost.csw;
    }
    long rss = peak_rss_kb();
    head("switch", "");
    printf(" n=%ld ns_per_switch=%.2f", N, median3(w[0], w[1], w[2]));
    print_cost(cw, N, 3);
    printf(" peak_rss_kb=%ld\n", rss);
    printf("workload=switch peer=boost-fcontext n=%ld ns_per_switch=%.2f", N,
           median3(b[0], b[1], b[2]));
    print_cost(cb, N, 3);
    printf(" peak_rss_kb=%ld\n", rss);
    head("switch", "-yield");
    printf(" n=%ld ns_per_switch=%.2f", N, median3(y[0], y[1], y[2]));
    print_cost(cy, N, 3);
    printf(" peak_rss_kb=%ld\n", rss);
}

/* ---- spawn ----------------------------------------------------------------------------- */

static weft_wg wg;
static void *done_task(void *arg)
{
    (void)arg;
    weft_wg_done(&wg);
    return NULL;
}

static int spawn_main(void *arg)
{
    (void)arg;
    weft_wg_init(&wg);
    struct cost c0 = cost_now();
    int64_t t0 = weft_now();
    weft_wg_add(&wg, N);
    for (long i = 0; i < N; i++)
        if (weft_spawn(NULL, done_task, NULL) != 0)
            abort();
    weft_wg_wait(&wg);
    double s = (double)(weft_now() - t0) / 1e9;
    struct cost c = cost_since(c0);
    head("spawn", "");
    printf(" n=%ld tasks_per_s=%.0f", N, N / s);
    print_cost(c, N, 1);
    printf(" workers=%d peak_rss_kb=%ld\n", workers(), peak_rss_kb());
    return 0;
}

/* ---- park: N alive at once, each gated then sleeping 2 s ------------------------------- */

static weft_chan *gate;
static void *park_task(void *arg)
{
    (void)arg;
    weft_chan_recv(gate, NULL); /* returns WEFT_ECLOSED once all N exist */
    weft_sleep(WEFT_SEC(2));
    weft_wg_done(&wg);
    return NULL;
}

static int park_main(void *arg)
{
    (void)arg;
    weft_wg_init(&wg);
    weft_chan_create(&gate, 0, 0);
    struct cost c0 = cost_now();
    int64_t t0 = weft_now();
    weft_wg_add(&wg, N);
    weft_spawn_opts o = {.stack_size = bench_stack()};
    for (long i = 0; i < N; i++)
        if (weft_spawn_ex(NULL, park_task, NULL, &o) != 0)
            abort();
    double spawn_s = (double)(weft_now() - t0) / 1e9;
    weft_chan_close(gate);
    weft_wg_wait(&wg);
    double s = (double)(weft_now() - t0) / 1e9;
    struct cost c = cost_since(c0);
    long rss = peak_rss_kb();
    head("park", "");
    printf(" n=%ld bytes_per_task=%.0f elapsed_s=%.2f spawn_s=%.2f", N, rss * 1024.0 / N, s,
           spawn_s);
    print_cost(c, N, 1);
    printf(" workers=%d peak_rss_kb=%ld\n", workers(), rss);
    weft_chan_unref(gate);
    return 0;
}

/* ---- skynet ---------------------------------------------------------------------------- */

struct sky {
    weft_chan *out;
    long num, size;
};

static void *skynet(void *arg)
{
    struct sky *a = arg;
    int64_t v;
    if (a->size == 1) {
        v = a->num;
        weft_chan_send(a->out, &v);
        return NULL;
    }
    weft_chan *rc;
    weft_chan_create(&rc, sizeof(int64_t), 0);
    struct sky kids[10];
    long sub = a->size / 10;
    for (int i = 0; i < 10; i++) {
        kids[i] = (struct sky){rc, a->num + i * sub, sub};
        weft_spawn(NULL, skynet, &kids[i]);
    }
    int64_t sum = 0;
    for (int i = 0; i < 10; i++) {
        weft_chan_recv(rc, &v);
        sum += v;
    }
    weft_chan_unref(rc);
    weft_chan_send(a->out, &sum);
    return NULL;
}

static int skynet_main(void *arg)
{
    (void)arg;
    weft_chan *out;
    weft_chan_create(&out, sizeof(int64_t), 0);
    struct sky root = {out, 0, N};
    struct cost c0 = cost_now();
    int64_t t0 = weft_now();
    weft_spawn(NULL, skynet, &root);
    int64_t v;
    weft_chan_recv(out, &v);
    double ms = (double)(weft_now() - t0) / 1e6;
    struct cost c = cost_since(c0);
    int64_t want = (int64_t)N * (N - 1) / 2;
    head("skynet", "");
    printf(" n=%ld wall_ms=%.0f", N, ms);
    print_cost(c, N, 1);
    printf(" workers=%d check=%s peak_rss_kb=%ld\n", workers(), v == want ? "ok" : "FAIL",
           peak_rss_kb());
    weft_chan_unref(out);
    return v == want ? 0 : 1;
}

/* ---- pingpong -------------------------------------------------------------------------- */

static weft_chan *ping, *pong;
static void *ponger(void *arg)
{
    (void)arg;
    long v;
    for (long i = 0; i < N; i++) {
        weft_chan_recv(ping, &v);
        weft_chan_send(pong, &v);
    }
    return NULL;
}

static int pingpong_main(void *arg)
{
    (void)arg;
    weft_chan_create(&ping, sizeof(long), 0);
    weft_chan_create(&pong, sizeof(long), 0);
    weft_task b;
    weft_spawn(&b, ponger, NULL);
    struct cost c0 = cost_now();
    int64_t t0 = weft_now();
    for (long i = 0; i < N; i++) {
        long v = i;
        weft_chan_send(ping, &v);
        weft_chan_recv(pong, &v);
    }
    weft_join(b, NULL);
    double ns = (double)(weft_now() - t0) / N;
    struct cost c = cost_since(c0);
    head("pingpong", "");
    printf(" n=%ld ns_per_roundtrip=%.1f", N, ns);
    print_cost(c, N, 1);
    printf(" workers=%d peak_rss_kb=%ld\n", workers(), peak_rss_kb());
    weft_chan_unref(ping);
    weft_chan_unref(pong);
    return 0;
}

/* ---- threadsend ------------------------------------------------------------------------ */

static weft_chan *tch;
static void *sender_thread(void *arg)
{
    (void)arg;
    for (int64_t i = 0; i < N; i++)
        weft_chan_send(tch, &i);
    weft_chan_close(tch);
    return NULL;
}

static int threadsend_main(void *arg)
{
    (void)arg;
    weft_chan_create(&tch, sizeof(int64_t), 1024);
    struct cost c0 = cost_now();
    int64_t t0 = weft_now();
    pthread_t th;
    pthread_create(&th, NULL, sender_thread, NULL);
    int64_t v, sum = 0;
    while (weft_chan_recv(tch, &v) == 0)
        sum += v;
    double s = (double)(weft_now() - t0) / 1e9;
    struct cost c = cost_since(c0);
    pthread_join(th, NULL);
    int64_t want = (int64_t)N * (N - 1) / 2;
    head("threadsend", "");
    printf(" n=%ld msgs_per_s=%.0f", N, N / s);
    print_cost(c, N, 1);
    printf(" workers=%d check=%s peak_rss_kb=%ld\n", workers(), sum == want ? "ok" : "FAIL",
           peak_rss_kb());
    weft_chan_unref(tch);
    return 0;
}

/* ---- parallel: CPU-bound speedup from 1 worker to all ---------------------------------- */

static volatile uint64_t sink;
static void *burn(void *arg)
{
    long iters = (long)arg;
    uint64_t h = 1469598103934665603ull;
    for (long i = 0; i < iters; i++)
        h = (h ^ (uint64_t)i) * 1099511628211ull;
    sink += h;
    return NULL;
}

static long burn_iters;
static int ntasks;
static double par_s;
static int parallel_main(void *arg)
{
    (void)arg;
    weft_task t[256];
    int64_t t0 = weft_now();
    for (int i = 0; i < ntasks; i++)
        weft_spawn(&t[i], burn, (void *)burn_iters);
    for (int i = 0; i < ntasks; i++)
        weft_join(t[i], NULL);
    par_s = (double)(weft_now() - t0) / 1e9;
    return 0;
}

static void bench_parallel(void)
{
    long nw = sysconf(_SC_NPROCESSORS_ONLN);
    const char *e = getenv("WEFT_THREADS");
    if (e && atoi(e) > 0)
        nw = atoi(e);
    /* calibrate ~200 ms per task */
    int64_t a = weft_now();
    burn((void *)20000000L);
    double per = (double)(weft_now() - a) / 20000000.0;
    burn_iters = (long)(200e6 / per);
    ntasks = (int)(2 * nw);
    double t1[3], tw[3];
    struct cost c0 = cost_now();
    for (int r = 0; r < 3; r++) {
        weft_config one = {.threads = 1}, all = {.threads = (int)nw};
        weft_run(parallel_main, NULL, &one);
        t1[r] = par_s;
        weft_run(parallel_main, NULL, &all);
        tw[r] = par_s;
    }
    struct cost c = cost_since(c0);
    double m1 = median3(t1[0], t1[1], t1[2]), mw = median3(tw[0], tw[1], tw[2]);
    head("parallel", "");
    printf(" n=%d workers=%ld t1_s=%.3f tw_s=%.3f speedup=%.2f", ntasks, nw, m1, mw, m1 / mw);
    print_cost(c, ntasks, 1); /* the whole workload: 3 x (1 worker + all workers) */
    printf(" peak_rss_kb=%ld\n", peak_rss_kb());
}

/* ---- idle: an idle runtime uses no CPU -------------------------------------------------- */

static int idle_main(void *arg)
{
    (void)arg;
    struct rusage a, b;
    getrusage(RUSAGE_SELF, &a);
    int64_t t0 = weft_now();
    weft_sleep(WEFT_SEC(1) * N); /* N seconds parked; every worker idle */
    double wall = (double)(weft_now() - t0) / 1e9;
    getrusage(RUSAGE_SELF, &b);
    double cpu =
        (double)(b.ru_utime.tv_sec - a.ru_utime.tv_sec + b.ru_stime.tv_sec - a.ru_stime.tv_sec) +
        (double)(b.ru_utime.tv_usec - a.ru_utime.tv_usec + b.ru_stime.tv_usec -
                 a.ru_stime.tv_usec) /
            1e6;
    head("idle", "");
    printf(" n=%ld cpu_percent=%.3f workers=%d peak_rss_kb=%ld\n", N, 100.0 * cpu / wall, workers(),
           peak_rss_kb());
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: weft-bench "
                        "switch|spawn|park|skynet|pingpong|threadsend|parallel|idle [N]\n");
        return 2;
    }
    workload = argv[1];
    N = argc > 2 ? atol(argv[2]) : 0;
    struct {
        const char *name;
        long n;
        int (*main)(void *);
        void (*direct)(void);
    } w[] = {
        {"switch", 10000000, NULL, bench_switch},   {"spawn", 1000000, spawn_main, NULL},
        {"park", 1000000, park_main, NULL},         {"skynet", 1000000, skynet_main, NULL},
        {"pingpong", 1000000, pingpong_main, NULL}, {"threadsend", 1000000, threadsend_main, NULL},
        {"parallel", 0, NULL, bench_parallel},      {"idle", 2, idle_main, NULL},
    };
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
        if (strcmp(workload, w[i].name) != 0)
            continue;
        if (N <= 0)
            N = w[i].n;
        if (w[i].direct) {
            w[i].direct();
            return 0;
        }
        int r = weft_run(w[i].main, NULL, NULL);
        if (r < 0)
            fprintf(stderr, "weft-bench: %s\n", weft_strerror(r));
        return r != 0;
    }
    fprintf(stderr, "weft-bench: unknown workload '%s'\n", workload);
    return 2;
}
