/* SPDX-License-Identifier: MIT */
/* hook_bench.c — weft-hook-bench: what libweft-hook (include/weft/hook.h) costs and buys.
 *
 *   weft-hook-bench hiredis --port P --peer weft|pthreads|weft-blocking [--clients N] [--ops K]
 *       N clients (default 1000) each connect to the redis-server on 127.0.0.1:P, wait at a
 *       start line until all are connected, then run K (default 50) SET + GET pairs with
 *       hiredis's blocking redisCommand, every reply checked. The same client code runs
 *         weft           on N coroutines, the calls parked by the hooks;
 *         pthreads       on N plain threads (the hooks pass every call through to libc);
 *         weft-blocking  on N coroutines, each redisCommand through weft_blocking (a pool
 *                        thread per call in flight, at most 64).
 *       Prints  workload=hook-hiredis peer=P n=N ops_per_s=X peak_rss_kb=Y check=ok
 *       (ops: commands, counted from the start line to the last reply).
 *   weft-hook-bench call [--calls C]
 *       ns per read(2) of one byte from a pipe that always has data (the hooks' fast path),
 *       4 ways: libc's read called directly from a plain thread (libc-thread), the hooked
 *       read from a plain thread (weft-hook-thread), the hooked read in a coroutine (weft),
 *       libc's read called directly in a coroutine (libc-coro). Only the read loops are
 *       timed (the pipe is refilled between batches of 16 Ki reads; the two ways of a thread
 *       alternate batch by batch; each figure is the median batch). Prints one line per way:
 *         workload=hook-call peer=P n=C ns_per_call=X
 *   weft-hook-bench file
 *       a 4 KiB pread of a file in the page cache from a coroutine: as the hook leaves it
 *       (libc's call on the worker: peer weft) and offloaded with weft_blocking (the choice
 *       the hook did not make for regular files: peer weft-blocking). ns per call:
 *         workload=hook-file peer=P n=20000 ns_per_call=X
 *   weft-hook-bench redis-server
 *       starts a redis-server on a free port for the runs above, prints "port=P", and stops it
 *       when stdin closes (tests/bench/run-bench.sh --only hook uses it).
 * One run per process (run-bench.sh interleaves the peers), so peak RSS is the peer's own. */
#define _GNU_SOURCE
#include "../hook/redis_server.h"

#include <weft.h>
#include <weft/hook.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static int port, clients = 1000, ops = 50;
static atomic_long failures;

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* ---- the one client code --------------------------------------------------------------- */
/* How a client issues a command: directly, or through weft_blocking. */
struct cmd {
    redisContext *c;
    const char *fmt;
    long a, b;
    redisReply *r;
};

static void *run_cmd(void *arg)
{
    struct cmd *k = arg;
    k->r = redisCommand(k->c, k->fmt, k->a, k->b);
    return NULL;
}

static void *run_connect(void *arg)
{
    (void)arg;
    return redisConnect("127.0.0.1", port);
}

static int offload; /* weft-blocking: every hiredis call through weft_blocking */

static redisReply *command(redisContext *c, const char *fmt, long a, long b)
{
    struct cmd k = {c, fmt, a, b, NULL};
    if (offload)
        weft_blocking(run_cmd, &k, NULL);
    else
        run_cmd(&k);
    return k.r;
}

static redisContext *connect_client(void)
{
    void *c = NULL;
    if (offload)
        weft_blocking(run_connect, NULL, &c);
    else
        c = run_connect(NULL);
    redisContext *rc = c;
    if (!rc || rc->err) {
        fprintf(stderr, "redisConnect: %s\n", rc ? rc->errstr : "out of memory");
        exit(1);
    }
    return rc;
}

static void client_ops(redisContext *c, long id)
{
    char want[64];
    for (long k = 0; k < ops; k++) {
        redisReply *r = command(c, "SET hb:%ld:%ld v", id, k);
        if (!r || r->type != REDIS_REPLY_STATUS)
            atomic_fetch_add(&failures, 1);
        freeReplyObject(r);
        r = command(c, "GET hb:%ld:%ld", id, k);
        snprintf(want, sizeof want, "v");
        if (!r || r->type != REDIS_REPLY_STRING || strcmp(r->str, want) != 0)
            atomic_fetch_add(&failures, 1);
        freeReplyObject(r);
    }
}

/* ---- coroutines (weft, weft-blocking) ---------------------------------------------------- */
static weft_wg ready, start;
static int64_t t_start;

static void *coro_client(void *arg)
{
    redisContext *c = connect_client();
    weft_wg_done(&ready);
    weft_wg_wait(&start);
    client_ops(c, (long)(intptr_t)arg);
    redisFree(c);
    return NULL;
}

static int coro_main(void *arg)
{
    (void)arg;
    weft_wg_init(&ready);
    weft_wg_init(&start);
    weft_wg_add(&ready, clients);
    weft_wg_add(&start, 1);
    weft_task *t = calloc((size_t)clients, sizeof *t);
    for (long i = 0; i < clients; i++)
        if (weft_spawn(&t[i], coro_client, (void *)(intptr_t)i) != 0)
            exit(1);
    weft_wg_wait(&ready);
    t_start = weft_now();
    weft_wg_done(&start);
    for (long i = 0; i < clients; i++)
        weft_join(t[i], NULL);
    free(t);
    return 0;
}

/* ---- pthreads -------------------------------------------------------------------------------- */
static pthread_barrier_t bar;

static void *thread_client(void *arg)
{
    redisContext *c = connect_client();
    if (pthread_barrier_wait(&bar) == PTHREAD_BARRIER_SERIAL_THREAD)
        t_start = weft_now();
    client_ops(c, (long)(intptr_t)arg);
    redisFree(c);
    return NULL;
}

static void run_threads(void)
{
    pthread_barrier_init(&bar, NULL, (unsigned)clients);
    pthread_t *t = calloc((size_t)clients, sizeof *t);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, 256 * 1024); /* 1000 threads: well within any limit */
    for (long i = 0; i < clients; i++)
        if (pthread_create(&t[i], &at, thread_client, (void *)(intptr_t)i) != 0) {
            perror("pthread_create");
            exit(1);
        }
    for (long i = 0; i < clients; i++)
        pthread_join(t[i], NULL);
    free(t);
}

static int bench_hiredis(const char *peer)
{
    if (!port) {
        fprintf(stderr, "hiredis: --port is required\n");
        return 2;
    }
    if (strcmp(peer, "pthreads") == 0) {
        run_threads();
    } else {
        offload = strcmp(peer, "weft-blocking") == 0;
        if (!offload && strcmp(peer, "weft") != 0) {
            fprintf(stderr, "unknown peer %s (weft, pthreads, weft-blocking)\n", peer);
            return 2;
        }
        if (weft_run(coro_main, NULL, NULL) != 0)
            return 1;
    }
    double secs = (double)(weft_now() - t_start) / 1e9;
    long f = atomic_load(&failures);
    printf("workload=hook-hiredis peer=%s n=%d ops_per_s=%.0f peak_rss_kb=%ld check=%s\n", peer,
           clients, 2.0 * clients * ops / secs, peak_rss_kb(), f ? "FAILED" : "ok");
    return f ? 1 : 0;
}

/* ---- the fast path ---------------------------------------------------------------------- */
static long calls = 2000000;
typedef ssize_t (*read_fn)(int, void *, size_t);
static read_fn libc_read;
static int pfd[2];

/* One batch: refill the pipe, then time `batch` one-byte reads through rd (ns per call). */
static double batch_ns(read_fn rd, long batch)
{
    static char fill[65536];
    char c;
    if (write(pfd[1], fill, (size_t)batch) != batch) {
        perror("write");
        exit(1);
    }
    int64_t t0 = weft_now();
    for (long i = 0; i < batch; i++)
        if (rd(pfd[0], &c, 1) != 1)
            exit(1);
    return (double)(weft_now() - t0) / (double)batch;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The two ways, batch by batch in turn (a shared machine's drift hits both alike); the
 * median batch of each, in ns per call. */
static void time_pair(read_fn a, read_fn b, double out[2])
{
    enum { BATCH = 16384 };
    long nb = calls / BATCH < 4 ? 4 : calls / BATCH;
    double *va = malloc((size_t)nb * sizeof *va), *vb = malloc((size_t)nb * sizeof *vb);
    for (long i = 0; i < nb; i++) {
        va[i] = batch_ns(a, BATCH);
        vb[i] = batch_ns(b, BATCH);
    }
    qsort(va, (size_t)nb, sizeof *va, cmp_double);
    qsort(vb, (size_t)nb, sizeof *vb, cmp_double);
    out[0] = va[nb / 2];
    out[1] = vb[nb / 2];
    free(va);
    free(vb);
}

static ssize_t hooked_read(int fd, void *b, size_t n)
{
    return read(fd, b, n);
}

static double coro_ns[2];

static int call_main(void *arg)
{
    (void)arg;
    time_pair(hooked_read, libc_read, coro_ns);
    return 0;
}

static int bench_call(void)
{
    void *libc = dlopen("libc.so.6", RTLD_NOLOAD | RTLD_LAZY);
    libc_read = libc ? (read_fn)dlsym(libc, "read") : NULL;
    if (!libc_read || (void *)libc_read == (void *)read) {
        fprintf(stderr, "cannot find libc's own read\n");
        return 1;
    }
    if (pipe(pfd) != 0 || fcntl(pfd[1], F_SETPIPE_SZ, 1 << 17) < 0) {
        perror("pipe");
        return 1;
    }
    double plain[2];
    time_pair(libc_read, hooked_read, plain);
    /* one worker, no stall report: the loop runs for seconds without a switch on purpose */
    weft_config cfg = {.threads = 1, .stall_ms = -1};
    if (weft_run(call_main, NULL, &cfg) != 0)
        return 1;
    printf("workload=hook-call peer=libc-thread n=%ld ns_per_call=%.1f\n", calls, plain[0]);
    printf("workload=hook-call peer=weft-hook-thread n=%ld ns_per_call=%.1f\n", calls, plain[1]);
    printf("workload=hook-call peer=weft n=%ld ns_per_call=%.1f\n", calls, coro_ns[0]);
    printf("workload=hook-call peer=libc-coro n=%ld ns_per_call=%.1f\n", calls, coro_ns[1]);
    return 0;
}

/* ---- regular files: passed through (what offloading them would cost instead) ----------- */
static int file_fd;
static double file_ns[2];

static void *pread_job(void *arg)
{
    static char buf[4096];
    return (void *)(intptr_t)pread(file_fd, buf, sizeof buf, (off_t)(intptr_t)arg);
}

static int file_main(void *arg)
{
    (void)arg;
    enum { N = 20000 };
    int64_t direct = 0, pooled = 0;
    for (int i = 0; i < N; i++) {
        void *r = NULL;
        off_t off = (off_t)(i % 256) * 4096;
        int64_t t0 = weft_now();
        if (pread_job((void *)(intptr_t)off) != (void *)(intptr_t)4096)
            exit(1);
        int64_t t1 = weft_now();
        if (weft_blocking(pread_job, (void *)(intptr_t)off, &r) != 0 || r != (void *)(intptr_t)4096)
            exit(1);
        direct += t1 - t0;
        pooled += weft_now() - t1;
    }
    file_ns[0] = (double)direct / N;
    file_ns[1] = (double)pooled / N;
    return 0;
}

static int bench_file(void)
{
    char path[] = "/tmp/weft-hook-bench-XXXXXX";
    file_fd = mkstemp(path);
    static char block[4096];
    for (int i = 0; i < 256; i++)
        if (file_fd < 0 || write(file_fd, block, sizeof block) != (ssize_t)sizeof block)
            return 1;
    unlink(path);
    weft_config cfg = {.threads = 1, .stall_ms = -1};
    if (weft_run(file_main, NULL, &cfg) != 0)
        return 1;
    printf("workload=hook-file peer=weft n=20000 ns_per_call=%.1f\n", file_ns[0]);
    printf("workload=hook-file peer=weft-blocking n=20000 ns_per_call=%.1f\n", file_ns[1]);
    close(file_fd);
    return 0;
}

static int serve_redis(void)
{
    int p = redis_server_start(clients + 100);
    if (!p) {
        fprintf(stderr, "no redis-server\n");
        return 1;
    }
    printf("port=%d\n", p);
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0) {}
    redis_server_stop();
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: weft-hook-bench hiredis|call|file|redis-server [options]\n");
        return 2;
    }
    const char *peer = "weft";
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port"))
            port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--clients"))
            clients = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--ops"))
            ops = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--peer"))
            peer = argv[i + 1];
        else if (!strcmp(argv[i], "--calls"))
            calls = atol(argv[i + 1]);
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!strcmp(argv[1], "hiredis"))
        return bench_hiredis(peer);
    if (!strcmp(argv[1], "call"))
        return bench_call();
    if (!strcmp(argv[1], "file"))
        return bench_file();
    if (!strcmp(argv[1], "redis-server"))
        return serve_redis();
    fprintf(stderr, "unknown workload %s\n", argv[1]);
    return 2;
}
