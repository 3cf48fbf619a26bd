/* SPDX-License-Identifier: MIT */
/* main.c — the install test's program: only the public header and the installed library.
 * The main coroutine spawns 100 coroutines, each returning 2*i, joins them all and checks the
 * sum. Prints "install-test: ok" and exits 0, or says what went wrong and exits 1. */
#include <weft.h>

#include <stdint.h>
#include <stdio.h>

#define N 100

static void *twice(void *arg)
{
    weft_sleep(WEFT_USEC(10 * ((intptr_t)arg % 3))); /* some park, some don't */
    return (void *)(2 * (intptr_t)arg);
}

static int main_coro(void *arg)
{
    (void)arg;
    weft_task tasks[N];
    for (intptr_t i = 0; i < N; i++) {
        int rc = weft_spawn(&tasks[i], twice, (void *)i);
        if (rc != 0) {
            fprintf(stderr, "install-test: weft_spawn #%ld: %s\n", (long)i, weft_strerror(rc));
            return 1;
        }
    }
    long sum = 0;
    for (int i = 0; i < N; i++) {
        void *res = NULL;
        int rc = weft_join(tasks[i], &res);
        if (rc != 0) {
            fprintf(stderr, "install-test: weft_join #%d: %s\n", i, weft_strerror(rc));
            return 1;
        }
        sum += (long)(intptr_t)res;
    }
    if (sum != (long)N * (N - 1)) {
        fprintf(stderr, "install-test: sum %ld, expected %ld\n", sum, (long)N * (N - 1));
        return 1;
    }
    return 0;
}

int main(void)
{
    weft_config cfg = {.threads = 2};
    int rc = weft_run(main_coro, NULL, &cfg);
    if (rc != 0) {
        fprintf(stderr, "install-test: weft_run returned %d (%s)\n", rc,
                rc < 0 ? weft_strerror(rc) : "main coroutine failed");
        return 1;
    }
    printf("install-test: ok\n");
    return 0;
}
