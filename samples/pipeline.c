/* SPDX-License-Identifier: MIT */
/* pipeline.c — CPU-heavy work offloaded to threads with weft_blocking, coordinated by
 * coroutines and channels:
 *
 *   producer --jobs--> 4 worker coroutines --results--> collector (main)
 *                         | weft_blocking(hash_block)
 *                         v
 *                      the blocking pool's OS threads do the hashing
 *
 * A job is one 1 MiB block (64 in all): a pool thread fills it with pseudo-random bytes
 * (xorshift64, seeded by the block number) and hashes it with FNV-1a, several passes. While
 * it runs, the worker coroutine that asked is parked and the scheduler's workers stay free
 * for other coroutines. The collector reports progress and folds the 64 block hashes, in
 * block order, into a checksum that does not depend on which thread finished first.
 * Afterwards main computes the same checksum again on one thread, without weft, and
 * compares: a deterministic result a test can check.
 *
 *   ./pipeline                  8 passes per block
 *   WEFT_SAMPLE_FAST=1 ./pipeline   1 pass (a different checksum, checked the same way)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

#define BLOCKS 64
#define BLOCK_SIZE ((size_t)1 << 20)
#define WORKERS 4

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

/* ---- the CPU-heavy part: plain C, no weft ------------------------------------------------ */

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    return h;
}

/* The hash of block `block`: generate its bytes, then hash them `passes` times. 0 if out of
 * memory (a real hash is never 0 in practice, and the caller reports it). */
static uint64_t hash_block(int block, int passes)
{
    uint64_t *buf = malloc(BLOCK_SIZE);
    if (!buf)
        return 0;
    uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(block + 1); /* xorshift64 state, != 0 */
    for (size_t i = 0; i < BLOCK_SIZE / sizeof *buf; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = x;
    }
    uint64_t h = FNV_OFFSET;
    for (int p = 0; p < passes; p++)
        h = fnv1a(h, (const unsigned char *)buf, BLOCK_SIZE);
    free(buf);
    return h;
}

/* Fold the block hashes, in block order, into one number. */
static uint64_t checksum(const uint64_t hashes[BLOCKS])
{
    return fnv1a(FNV_OFFSET, (const unsigned char *)hashes, BLOCKS * sizeof hashes[0]);
}

/* ---- the coroutines ---------------------------------------------------------------------- */

struct job {
    int block;
    int passes;
    uint64_t hash;
};

struct pipeline {
    weft_chan *jobs;    /* of int: block numbers */
    weft_chan *results; /* of struct job */
    int passes;
    uint64_t hashes[BLOCKS]; /* what the collector gathered, by block number */
};

/* Runs on a blocking-pool thread. */
static void *hash_job(void *arg)
{
    struct job *j = arg;
    j->hash = hash_block(j->block, j->passes);
    return NULL;
}

static void *producer(void *arg)
{
    struct pipeline *p = arg;
    for (int block = 0; block < BLOCKS; block++)
        if (weft_chan_send(p->jobs, &block) != 0)
            break;
    weft_chan_close(p->jobs); /* the workers' loops end when it is drained */
    return NULL;
}

static void *worker(void *arg)
{
    struct pipeline *p = arg;
    struct job j = {.passes = p->passes};
    while (weft_chan_recv(p->jobs, &j.block) == 0) {
        /* Parks this coroutine until a pool thread has run hash_job(&j). (Nothing cancels
         * the workers; a cancelled caller would return early while hash_job still runs.) */
        int r = weft_blocking(hash_job, &j, NULL);
        if (r != 0) {
            fprintf(stderr, "worker: weft_blocking: %s\n", weft_strerror(r));
            break;
        }
        if (weft_chan_send(p->results, &j) != 0)
            break;
    }
    return NULL;
}

static int pipeline_main(void *arg)
{
    struct pipeline *p = arg;
    int r;
    if ((r = weft_chan_create(&p->jobs, sizeof(int), 0)) != 0 ||
        (r = weft_chan_create(&p->results, sizeof(struct job), WORKERS)) != 0) {
        fprintf(stderr, "weft_chan_create: %s\n", weft_strerror(r));
        return 1;
    }
    weft_group *g;
    if ((r = weft_group_create(&g)) != 0 || (r = weft_group_spawn(g, producer, p)) != 0) {
        fprintf(stderr, "weft_group: %s\n", weft_strerror(r));
        return 1;
    }
    for (int i = 0; i < WORKERS; i++) {
        if ((r = weft_group_spawn(g, worker, p)) != 0) {
            fprintf(stderr, "weft_group_spawn: %s\n", weft_strerror(r));
            return 1;
        }
    }

    int status = 0;
    for (int done = 0; done < BLOCKS; done++) {
        struct job j;
        if ((r = weft_chan_recv(p->results, &j)) != 0) {
            fprintf(stderr, "collector: %s\n", weft_strerror(r));
            status = 1;
            break;
        }
        if (j.hash == 0) {
            fprintf(stderr, "block %d: out of memory\n", j.block);
            status = 1;
        }
        p->hashes[j.block] = j.hash;
        if ((done + 1) % 16 == 0)
            printf("hashed %d/%d blocks\n", done + 1, BLOCKS);
    }
    if (status != 0)
        weft_group_cancel(g);
    weft_group_wait(g);
    weft_group_free(g);
    weft_chan_unref(p->jobs);
    weft_chan_unref(p->results);
    return status;
}

int main(void)
{
    const char *fast = getenv("WEFT_SAMPLE_FAST");
    int passes = fast && strcmp(fast, "0") != 0 ? 1 : 8;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("hashing %d blocks of %zu KiB (hash passes: %d) on the blocking pool, %d at a time\n",
           BLOCKS, BLOCK_SIZE / 1024, passes, WORKERS);

    struct pipeline p = {.passes = passes};
    int64_t t0 = weft_now();
    int r = weft_run(pipeline_main, &p, NULL);
    if (r != 0) {
        if (r < 0)
            fprintf(stderr, "weft_run: %s\n", weft_strerror(r));
        return 1;
    }
    uint64_t sum = checksum(p.hashes);
    printf("checksum %016" PRIx64 " (weft: coroutines + blocking pool, %.2f s)\n", sum,
           (double)(weft_now() - t0) / 1e9);

    /* The same computation again, plainly, on this one thread. */
    t0 = weft_now();
    uint64_t hashes[BLOCKS];
    for (int block = 0; block < BLOCKS; block++)
        hashes[block] = hash_block(block, passes);
    uint64_t check = checksum(hashes);
    printf("checksum %016" PRIx64 " (one thread, no weft, %.2f s)\n", check,
           (double)(weft_now() - t0) / 1e9);
    if (check != sum) {
        printf("MISMATCH\n");
        return 1;
    }
    printf("match\n");
    return 0;
}
