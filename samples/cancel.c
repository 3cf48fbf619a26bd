/* SPDX-License-Identifier: MIT */
/* cancel.c — race a slow task against a deadline; when the deadline wins, cancel the task
 * and watch it clean up.
 *
 * The slow task holds a buffer and works in three steps, each a 1 s weft_sleep. main waits
 * for it with weft_join_until(deadline):
 *   round 1: deadline 1.5 s. The join times out, main calls weft_cancel: the sleep the task
 *            is in returns WEFT_ECANCELED at once, the task frees its buffer and returns,
 *            and main's weft_join collects it.
 *   round 2: deadline 5 s. The task finishes its three steps first; nothing is cancelled.
 * Cancellation is cooperative and needs no polling: it is delivered by the task's current
 * or next blocking call (sleep, channel operation, join, lock, ...), which returns
 * WEFT_ECANCELED; the task decides how to unwind.
 *
 *   ./cancel        1 s steps
 *   WEFT_SAMPLE_FAST=1 ./cancel (or --fast)   50 ms steps, for tests
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

struct race {
    int64_t start; /* weft_now() when the program began */
    int64_t step;  /* how long each of the task's three steps takes */
};

static long ms_since(const struct race *r)
{
    return (long)((weft_now() - r->start) / 1000000);
}

static void *slow_task(void *arg)
{
    struct race *r = arg;
    char *buffer = malloc(1 << 20); /* something to give back, whatever happens */
    if (!buffer)
        return "out of memory";
    printf("[%5ld ms] slow task: started (holding a 1 MiB buffer)\n", ms_since(r));
    for (int step = 1; step <= 3; step++) {
        if (weft_sleep(r->step) == WEFT_ECANCELED) {
            printf("[%5ld ms] slow task: cancelled, cleaning up (buffer freed)\n", ms_since(r));
            free(buffer);
            return "cancelled";
        }
        printf("[%5ld ms] slow task: step %d/3 done\n", ms_since(r), step);
    }
    free(buffer);
    return "finished";
}

/* Run the slow task with a deadline `limit` from now; cancel it if the deadline wins. */
static int race(struct race *r, int64_t limit)
{
    printf("[%5ld ms] main: starting the slow task, deadline in %ld ms\n", ms_since(r),
           (long)(limit / 1000000));
    weft_task task;
    int rc = weft_spawn(&task, slow_task, r);
    if (rc != 0) {
        fprintf(stderr, "weft_spawn: %s\n", weft_strerror(rc));
        return 1;
    }
    void *result;
    rc = weft_join_until(task, &result, weft_after(limit));
    if (rc == WEFT_ETIMEDOUT) {
        printf("[%5ld ms] main: deadline passed, cancelling the slow task\n", ms_since(r));
        weft_cancel(task);
        rc = weft_join(task, &result); /* the handle stays valid after a timed-out join */
    }
    if (rc != 0) {
        fprintf(stderr, "weft_join: %s\n", weft_strerror(rc));
        return 1;
    }
    printf("[%5ld ms] main: slow task returned \"%s\"\n", ms_since(r), (const char *)result);
    return 0;
}

static int cancel_main(void *arg)
{
    struct race *r = arg;
    r->start = weft_now();
    printf("--- round 1: the deadline wins ---\n");
    if (race(r, r->step * 3 / 2) != 0)
        return 1;
    printf("--- round 2: the task wins ---\n");
    r->start = weft_now();
    return race(r, r->step * 5);
}

int main(int argc, char **argv)
{
    const char *env = getenv("WEFT_SAMPLE_FAST");
    int fast = (env && strcmp(env, "0") != 0) || (argc > 1 && strcmp(argv[1], "--fast") == 0);
    setvbuf(stdout, NULL, _IOLBF, 0);

    struct race r = {.step = fast ? WEFT_MSEC(50) : WEFT_SEC(1)};
    int rc = weft_run(cancel_main, &r, NULL);
    if (rc < 0)
        fprintf(stderr, "weft_run: %s\n", weft_strerror(rc));
    return rc == 0 ? 0 : 1;
}
