/* SPDX-License-Identifier: MIT */
/* test_trace.c — the execution trace's API and file (weft/trace.h): argument and state
 * errors, an unwritable path, a trace armed before a run and ended by it, start and stop
 * during a run while other workers keep recording (the stopper writes out buffers their
 * owners are filling: TSan checks the hand-over), plain threads recording through the
 * locked buffer, buffers that fill and are written out by their owners many times — and
 * every file read back record by record: known kinds, each worker's times in order, and
 * counts equal to what the run did (weft_stats, the program's own counts). */
#include "harness.h"
#include <weft.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

static _Atomic long checks;

enum {
    K_META,
    K_SPAWN,
    K_RUN,
    K_YIELD,
    K_PARK,
    K_EXIT,
    K_WAKE,
    K_HOP,
    K_STEAL,
    K_FD_WAIT,
    K_FD_READY,
    K_TIMER,
    K_BLOCK_START,
    K_BLOCK_END,
    K_STALL,
    K_IDLE,
    K_IDLE_END,
    K_FNAME,
    K_NAME,
    K_END,
    K_N
};
enum { W_CORO, W_LOOP, W_THREAD };
enum { TW_CHAN = 1, TW_SLEEP = 5 };

struct rec {
    int64_t t;
    uint32_t kind;
    int32_t x;
    uint64_t a, b;
};

struct tally {
    long kind[K_N];
    long park_chan, park_sleep, wake_thread, workers;
    long blocks[64], blocks_max; /* blocks per worker; the most one worker wrote */
};

/* Read a trace file back and check its shape; count its events. */
static void read_trace(const char *path, struct tally *t)
{
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "rb");
    ASSERT(f != NULL);
    char magic[8];
    uint32_t version, recsize;
    int64_t t0;
    CHECK_EQ(fread(magic, 1, 8, f), 8);
    CHECK(memcmp(magic, "WEFTTRC1", 8) == 0);
    CHECK_EQ(fread(&version, 4, 1, f), 1);
    CHECK_EQ(fread(&recsize, 4, 1, f), 1);
    CHECK_EQ(fread(&t0, 8, 1, f), 1);
    CHECK_EQ(version, 1);
    CHECK_EQ(recsize, sizeof(struct rec));
    int64_t last[64] = {0};
    struct {
        char magic[4];
        int32_t worker;
        uint32_t count, zero;
        int64_t ticks, ns;
    } h;
    static struct rec r[4096];
    while (fread(&h, sizeof h, 1, f) == 1) {
        CHECK(memcmp(h.magic, "BLK2", 4) == 0);
        CHECK_GE(h.ticks, t0);
        CHECK(h.worker >= -1 && h.worker < 64);
        CHECK(h.count > 0 && h.count <= 4096);
        CHECK_EQ(fread(r, sizeof r[0], h.count, f), h.count);
        if (h.worker >= 0 && ++t->blocks[h.worker] > t->blocks_max)
            t->blocks_max = t->blocks[h.worker];
        for (uint32_t i = 0; i < h.count; i++) {
            CHECK_LT(r[i].kind, K_N);
            t->kind[r[i].kind]++;
            if (r[i].kind == K_SPAWN || r[i].kind == K_NAME || r[i].kind == K_FNAME) {
                i++; /* its name block */
                continue;
            }
            if (r[i].kind == K_META)
                t->workers = r[i].x;
            if (r[i].kind == K_PARK && r[i].x == TW_CHAN)
                t->park_chan++;
            if (r[i].kind == K_PARK && r[i].x == TW_SLEEP)
                t->park_sleep++;
            if (r[i].kind == K_WAKE && r[i].x == W_THREAD)
                t->wake_thread++;
            if (h.worker >= 0) { /* a worker's own events come in its own time order */
                CHECK_GE(r[i].t, last[h.worker]);
                last[h.worker] = r[i].t;
            }
            CHECK_GE(r[i].t, t0);
        }
    }
    CHECK(feof(f));
    fclose(f);
}

static char dir[64];
static char path1[128], path2[128];

/* ---- API errors -------------------------------------------------------------------------- */

static void test_errors(void)
{
    CHECK_EQ(weft_trace_start(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_trace_start(""), WEFT_EINVAL);
    CHECK_EQ(weft_trace_stop(), WEFT_ESTATE);
    char bad[128];
    snprintf(bad, sizeof bad, "%s/no-such-dir/t.bin", dir);
    CHECK_EQ(weft_trace_start(bad), -ENOENT);
    CHECK_EQ(weft_trace_start(dir), -EISDIR); /* a directory: not a file */
    CHECK_EQ(weft_trace_stop(), WEFT_ESTATE); /* the failures armed nothing */
    /* armed and stopped before any run: an empty but well-formed file */
    CHECK_EQ(weft_trace_start(path1), 0);
    CHECK_EQ(weft_trace_start(path2), WEFT_ESTATE);
    CHECK_EQ(weft_trace_stop(), 0);
    struct tally t;
    read_trace(path1, &t);
    CHECK_EQ(t.kind[K_RUN], 0);
}

/* ---- a whole run, armed before it ---------------------------------------------------------- */

#define ROUNDS 200
static weft_chan *ping, *pong;
static _Atomic long sleeps;

static void *pinger(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        ASSERT_EQ(weft_chan_send(ping, &i), 0);
        int v;
        ASSERT_EQ(weft_chan_recv(pong, &v), 0);
        ASSERT_EQ(v, i);
        if (i % 20 == 0) {
            ASSERT_EQ(weft_sleep(WEFT_USEC(10)), 0);
            sleeps++;
        }
    }
    return NULL;
}

static void *ponger(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        int v;
        ASSERT_EQ(weft_chan_recv(ping, &v), 0);
        ASSERT_EQ(weft_chan_send(pong, &v), 0);
    }
    return NULL;
}

static void *slow_job(void *arg)
{
    (void)arg;
    usleep(1000);
    return (void *)7;
}

static weft_stats run_stats;

static int whole_main(void *arg)
{
    (void)arg;
    ASSERT_EQ(weft_trace_start(path2), WEFT_ESTATE); /* the armed one records */
    ASSERT_EQ(weft_chan_create(&ping, sizeof(int), 0), 0);
    ASSERT_EQ(weft_chan_create(&pong, sizeof(int), 0), 0);
    weft_task a, b;
    weft_spawn_opts oa = {.name = "pinger"}, ob = {.name = "ponger"};
    ASSERT_EQ(weft_spawn_ex(&a, pinger, NULL, &oa), 0);
    ASSERT_EQ(weft_spawn_ex(&b, ponger, NULL, &ob), 0);
    void *r;
    ASSERT_EQ(weft_blocking(slow_job, NULL, &r), 0); /* a pool thread wakes main */
    ASSERT_EQ((long)r, 7);
    ASSERT_EQ(weft_join(a, NULL), 0);
    ASSERT_EQ(weft_join(b, NULL), 0);
    weft_chan_unref(ping);
    weft_chan_unref(pong);
    ASSERT_EQ(weft_stats_get(&run_stats), 0);
    return 0;
}

static void test_whole_run(void)
{
    CHECK_EQ(weft_trace_start(path1), 0);
    weft_config cfg = {.threads = 2};
    CHECK_EQ(weft_run(whole_main, NULL, &cfg), 0);
    CHECK_EQ(weft_trace_stop(), WEFT_ESTATE); /* the run's end ended it */
    struct tally t;
    read_trace(path1, &t);
    CHECK_EQ(t.kind[K_META], 1);
    CHECK_EQ(t.kind[K_END], 1);
    CHECK_EQ(t.workers, 2);
    CHECK_EQ(t.kind[K_SPAWN], 3); /* main, pinger, ponger */
    CHECK_EQ(run_stats.spawned, 2);
    CHECK_EQ(t.kind[K_PARK], (long)run_stats.parks); /* every park, each once */
    CHECK_EQ(t.park_sleep, (long)sleeps);
    CHECK_GE(t.park_chan, ROUNDS); /* every round, one side at least waits for the other */
    CHECK_EQ(t.kind[K_BLOCK_START], 1);
    CHECK_EQ(t.kind[K_BLOCK_END], 1);
    CHECK_EQ(t.wake_thread, 1);  /* the pool thread that finished the job */
    CHECK_EQ(t.kind[K_EXIT], 3); /* main and the two it spawned */
    CHECK_GE(t.kind[K_WAKE], t.kind[K_PARK]);
    CHECK_GE(t.kind[K_RUN], t.kind[K_PARK] + 3);
}

/* ---- start and stop during a run, busy workers, plain threads ------------------------------ */

#define BUSY_YIELDS 60000
static _Atomic bool stop_busy;
static _Atomic long busy_yields;

static void *busy(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_busy)) {
        weft_yield();
        busy_yields++;
    }
    return NULL;
}

static void *thread_sender(void *arg)
{
    weft_chan *ch = arg;
    for (int i = 0; i < 300; i++)
        ASSERT_EQ(weft_chan_send(ch, &i), 0);
    return NULL;
}

static void *drain(void *arg)
{
    weft_chan *ch = arg;
    for (int i = 0; i < 600; i++) {
        int v;
        ASSERT_EQ(weft_chan_recv(ch, &v), 0);
    }
    return NULL;
}

static int during_main(void *arg)
{
    (void)arg;
    enum { NBUSY = 6 };
    weft_task t[NBUSY];
    for (int i = 0; i < NBUSY; i++)
        ASSERT_EQ(weft_spawn(&t[i], busy, NULL), 0);
    for (int round = 0; round < 2; round++) {
        const char *p = round ? path2 : path1;
        ASSERT_EQ(weft_trace_start(p), 0);
        ASSERT_EQ(weft_trace_start(p), WEFT_ESTATE);
        weft_chan *ch;
        ASSERT_EQ(weft_chan_create(&ch, sizeof(int), 4), 0);
        weft_task d;
        ASSERT_EQ(weft_spawn(&d, drain, ch), 0);
        pthread_t th[2];
        for (int i = 0; i < 2; i++) /* plain threads: the locked buffer */
            ASSERT_EQ(pthread_create(&th[i], NULL, thread_sender, ch), 0);
        /* enough yields that the workers' buffers (2,048 records) fill several times, under
         * the sanitizers too (unscaled: a yield is a few microseconds there) */
        long until = busy_yields + BUSY_YIELDS;
        while (busy_yields < until)
            ASSERT_EQ(weft_sleep(WEFT_USEC(200)), 0);
        ASSERT_EQ(weft_join(d, NULL), 0);
        for (int i = 0; i < 2; i++)
            ASSERT_EQ(pthread_join(th[i], NULL), 0);
        ASSERT_EQ(weft_trace_stop(), 0); /* the busy ones still record as it stops */
        ASSERT_EQ(weft_trace_stop(), WEFT_ESTATE);
        weft_chan_unref(ch);
    }
    atomic_store(&stop_busy, true);
    for (int i = 0; i < NBUSY; i++)
        ASSERT_EQ(weft_join(t[i], NULL), 0);
    return 0;
}

static void test_during_run(void)
{
    weft_config cfg = {.threads = 3};
    CHECK_EQ(weft_run(during_main, NULL, &cfg), 0);
    for (int i = 0; i < 2; i++) {
        struct tally t;
        read_trace(i ? path2 : path1, &t);
        CHECK_EQ(t.workers, 3);
        /* yields that switched (one with nobody else to run goes on: no event) */
        CHECK_GT(t.kind[K_YIELD], 0);
        CHECK_GE(t.blocks_max, 2);    /* a buffer filled and its owner wrote it out */
        CHECK_EQ(t.kind[K_SPAWN], 1); /* drain: the busy ones came before */
        CHECK_EQ(t.kind[K_BLOCK_START], 0);
        CHECK_GE(t.kind[K_WAKE], 1);
    }
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/weft-test-trace-XXXXXX");
    ASSERT(mkdtemp(dir) != NULL);
    snprintf(path1, sizeof path1, "%s/1.bin", dir);
    snprintf(path2, sizeof path2, "%s/2.bin", dir);
    test_errors();
    test_whole_run();
    test_during_run();
    unlink(path1);
    unlink(path2);
    rmdir(dir);
    printf("test_trace: %ld checks passed\n", (long)checks);
    return 0;
}
