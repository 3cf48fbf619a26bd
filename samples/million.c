/* SPDX-License-Identifier: MIT */
/* million.c — a million coroutines alive at once, then the same with OS threads.
 *
 * Part 1 spawns N coroutines (default 1,000,000). Each reports that it is running, waits at
 * a gate (a channel that main closes), sleeps 1 s and ends; so all N exist at the same time.
 * Part 2 does the same with pthreads (default attributes) until pthread_create refuses or
 * a cap is reached, then opens the gate and joins every thread it got.
 * Both print how long it took and the memory used while all were alive: the resident set
 * (per task), and for threads also the kernel stacks, which no resident-set figure shows.
 *
 *   ./million                          1,000,000 coroutines, up to 100,000 threads
 *   ./million --n 10000 --threads-cap 200     small, for tests
 *   WEFT_SAMPLE_FAST=1                 each task sleeps 100 ms instead of 1 s
 *
 * Careful: part 2 really runs the system out of threads (the per-user process limit,
 * vm.max_map_count or memory), which other programs of the same user feel while it lasts.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <weft.h>

/* ---- measuring ----------------------------------------------------------------------------- */

static double seconds_since(int64_t t0)
{
    return (double)(weft_now() - t0) / 1e9;
}

/* The process's resident set now, in bytes (Linux: /proc/self/statm), or -1. */
static long long resident_bytes(void)
{
    long long pages = -1;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%*s %lld", &pages) != 1)
            pages = -1;
        fclose(f);
    }
    return pages < 0 ? -1 : pages * sysconf(_SC_PAGESIZE);
}

/* The kernel stacks of all threads in the system, in bytes (/proc/meminfo), or -1. */
static long long kernel_stack_bytes(void)
{
    long long kb = -1;
    char line[128];
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "KernelStack: %lld kB", &kb) == 1)
                break;
        fclose(f);
    }
    return kb < 0 ? -1 : kb * 1024;
}

/* A number from a /proc/sys file, or -1. */
static long long sysctl_value(const char *path)
{
    long long v = -1;
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%lld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

static double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024; /* ru_maxrss is in KiB on Linux */
}

static void print_memory(const char *who, long n, long long rss0, long long rss1)
{
    if (rss0 < 0 || rss1 < 0)
        return;
    printf("%s: resident memory +%.1f MiB while all %ld were alive (%lld bytes each)\n", who,
           (double)(rss1 - rss0) / (1 << 20), n, n ? (rss1 - rss0) / n : 0);
}

/* ---- part 1: coroutines ------------------------------------------------------------------ */

struct coro_run {
    long n;           /* how many to spawn */
    int64_t nap;      /* how long each sleeps once the gate opens */
    weft_chan *gate;  /* closed by main: every waiting coroutine's receive returns */
    weft_wg running;  /* one count per coroutine that has not yet reached the gate */
    weft_wg finished; /* one count per coroutine that has not yet ended */
};

static void *coro_task(void *arg)
{
    struct coro_run *run = arg;
    weft_wg_done(&run->running);
    weft_chan_recv(run->gate, NULL); /* WEFT_ECLOSED once the gate opens */
    weft_sleep(run->nap);
    weft_wg_done(&run->finished);
    return NULL;
}

static int coroutines(void *arg)
{
    struct coro_run *run = arg;
    int r = weft_chan_create(&run->gate, 0, 0);
    if (r != 0) {
        fprintf(stderr, "weft_chan_create: %s\n", weft_strerror(r));
        return 1;
    }
    printf("coroutines: spawning %ld; each waits at a gate, then sleeps %.1f s\n", run->n,
           (double)run->nap / 1e9);
    long long rss0 = resident_bytes();
    int64_t t0 = weft_now();
    long spawned = 0;
    weft_wg_init(&run->running);
    weft_wg_init(&run->finished);
    weft_wg_add(&run->running, run->n);
    weft_wg_add(&run->finished, run->n);
    for (; spawned < run->n; spawned++) {
        if ((r = weft_spawn(NULL, coro_task, run)) != 0) { /* detached: nothing to join */
            fprintf(stderr, "coroutines: weft_spawn failed after %ld: %s\n", spawned,
                    weft_strerror(r));
            weft_wg_add(&run->running, spawned - run->n); /* forget the ones never made */
            weft_wg_add(&run->finished, spawned - run->n);
            break;
        }
    }
    weft_wg_wait(&run->running); /* every coroutine is now parked at the gate */
    long long rss1 = resident_bytes();
    weft_stats st = {0};
    weft_stats_get(&st);
    printf("coroutines: %ld alive after %.2f s (weft counts %llu alive, %d workers)\n", spawned,
           seconds_since(t0), (unsigned long long)st.alive, st.workers);
    print_memory("coroutines", spawned, rss0, rss1);

    weft_chan_close(run->gate); /* open the gate: all of them sleep, then end */
    weft_wg_wait(&run->finished);
    printf("coroutines: all %ld done in %.2f s; peak resident set so far %.0f MiB\n", spawned,
           seconds_since(t0), peak_rss_mib());
    weft_chan_unref(run->gate);
    return spawned == run->n ? 0 : 1;
}

/* ---- part 2: OS threads ------------------------------------------------------------------ */

struct thread_run {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open; /* the gate */
    struct timespec nap;
};

static void *thread_task(void *arg)
{
    struct thread_run *run = arg;
    pthread_mutex_lock(&run->mu);
    while (!run->open)
        pthread_cond_wait(&run->cv, &run->mu);
    pthread_mutex_unlock(&run->mu);
    nanosleep(&run->nap, NULL);
    return NULL;
}

static int threads(long cap, int64_t nap)
{
    struct thread_run run = {PTHREAD_MUTEX_INITIALIZER,
                             PTHREAD_COND_INITIALIZER,
                             0,
                             {nap / 1000000000, nap % 1000000000}};
    pthread_t *tids = malloc((size_t)cap * sizeof *tids);
    if (!tids) {
        fprintf(stderr, "threads: out of memory for %ld thread ids\n", cap);
        return 1;
    }
    size_t stack = 0;
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) == 0) {
        pthread_attr_getstacksize(&attr, &stack);
        pthread_attr_destroy(&attr);
    }
    printf("threads: creating up to %ld pthreads (default attributes: %zu KiB stack each)\n", cap,
           stack / 1024);
    long long rss0 = resident_bytes(), kstack0 = kernel_stack_bytes();
    int64_t t0 = weft_now();
    long n = 0;
    int r = 0;
    while (n < cap && (r = pthread_create(&tids[n], NULL, thread_task, &run)) == 0)
        n++;
    if (n < cap) {
        struct rlimit nproc = {0};
        getrlimit(RLIMIT_NPROC, &nproc);
        printf("threads: pthread_create refused thread %ld: %s\n", n + 1, strerror(r));
        printf("threads: (limits here: %lld processes+threads per user, kernel.threads-max "
               "%lld, vm.max_map_count %lld with two mappings per thread stack)\n",
               nproc.rlim_cur == RLIM_INFINITY ? -1LL : (long long)nproc.rlim_cur,
               sysctl_value("/proc/sys/kernel/threads-max"),
               sysctl_value("/proc/sys/vm/max_map_count"));
    } else {
        printf("threads: stopped at the cap of %ld (--threads-cap)\n", cap);
    }
    long long rss1 = resident_bytes(), kstack1 = kernel_stack_bytes();
    printf("threads: %ld alive after %.2f s\n", n, seconds_since(t0));
    print_memory("threads", n, rss0, rss1);
    if (kstack0 >= 0 && kstack1 >= 0 && n > 0)
        printf("threads: kernel stacks +%.1f MiB (%lld bytes each), not in the resident set\n",
               (double)(kstack1 - kstack0) / (1 << 20), (kstack1 - kstack0) / n);

    pthread_mutex_lock(&run.mu); /* open the gate, then wait for every thread we got */
    run.open = 1;
    pthread_cond_broadcast(&run.cv);
    pthread_mutex_unlock(&run.mu);
    for (long i = 0; i < n; i++)
        pthread_join(tids[i], NULL);
    printf("threads: all %ld done in %.2f s; peak resident set so far %.0f MiB\n", n,
           seconds_since(t0), peak_rss_mib());
    free(tids);
    return 0;
}

/* ---- main -------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    long n = 1000000, cap = 100000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--n") == 0 && i + 1 < argc)
            n = atol(argv[++i]);
        else if (strcmp(argv[i], "--threads-cap") == 0 && i + 1 < argc)
            cap = atol(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--n COROUTINES] [--threads-cap THREADS]\n", argv[0]);
            return 2;
        }
    }
    if (n < 1 || cap < 1) {
        fprintf(stderr, "%s: --n and --threads-cap must be >= 1\n", argv[0]);
        return 2;
    }
    const char *fast = getenv("WEFT_SAMPLE_FAST");
    int64_t nap = fast && strcmp(fast, "0") != 0 ? WEFT_MSEC(100) : WEFT_SEC(1);
    setvbuf(stdout, NULL, _IOLBF, 0);

    struct coro_run run = {.n = n, .nap = nap};
    int r = weft_run(coroutines, &run, NULL);
    if (r < 0)
        fprintf(stderr, "weft_run: %s\n", weft_strerror(r));
    if (r != 0)
        return 1;
    return threads(cap, nap);
}
