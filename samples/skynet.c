/* SPDX-License-Identifier: MIT */
/* skynet.c — the skynet benchmark: a tree of coroutines, ten children per node, a million
 * leaves by default. Each leaf returns its number; each node spawns its children, joins
 * them and returns the sum, so the root gets 0 + 1 + ... + (N-1) = N(N-1)/2 after
 * 1,111,111 coroutines (for N = 1,000,000) have been created, run and joined.
 *
 *   ./skynet          1,000,000 leaves
 *   ./skynet 10000    any N >= 1 (a node splits its range in up to ten parts)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <weft.h>

struct node {
    int64_t first, count; /* the leaves first .. first+count-1 */
    int64_t sum;          /* the result */
    int error;            /* a WEFT_E* code if a spawn or join failed below this node */
};

static void *skynet(void *arg)
{
    struct node *n = arg;
    n->sum = 0;
    n->error = 0;
    if (n->count == 1) {
        n->sum = n->first;
        return NULL;
    }
    struct node child[10];
    weft_task task[10];
    int64_t part = (n->count + 9) / 10;
    int spawned = 0;
    for (int64_t off = 0; off < n->count; off += part) {
        int64_t count = n->count - off < part ? n->count - off : part;
        child[spawned] = (struct node){.first = n->first + off, .count = count};
        int r = weft_spawn(&task[spawned], skynet, &child[spawned]);
        if (r != 0) {
            n->error = r;
            break;
        }
        spawned++;
    }
    for (int i = 0; i < spawned; i++) {
        int r = weft_join(task[i], NULL);
        if (r != 0 && !n->error)
            n->error = r;
        n->sum += child[i].sum;
        if (child[i].error && !n->error)
            n->error = child[i].error;
    }
    return NULL;
}

static int skynet_main(void *arg)
{
    struct node *root = arg;
    int64_t t0 = weft_now();
    skynet(root); /* the root runs right here, in main's coroutine */
    double ms = (double)(weft_now() - t0) / 1e6;
    if (root->error) {
        fprintf(stderr, "skynet: %s\n", weft_strerror(root->error));
        return 1;
    }
    weft_stats st;
    int workers = weft_stats_get(&st) == 0 ? st.workers : 0;
    printf("Result: %" PRId64 " in %.0f ms (%" PRId64 " leaves, %d workers)\n", root->sum, ms,
           root->count, workers);
    return 0;
}

int main(int argc, char **argv)
{
    long long n = argc > 1 ? atoll(argv[1]) : 1000000;
    if (n < 1) {
        fprintf(stderr, "usage: %s [leaves >= 1]\n", argv[0]);
        return 2;
    }
    struct node root = {.first = 0, .count = n};
    int r = weft_run(skynet_main, &root, NULL);
    if (r < 0)
        fprintf(stderr, "weft_run: %s\n", weft_strerror(r));
    return r == 0 ? 0 : 1;
}
