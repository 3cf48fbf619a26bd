/* SPDX-License-Identifier: MIT */
/* trace_prog.c — the program tests/test_trace_tool.sh traces ($WEFT_TRACE) and checks the
 * trace of (tests/check_trace.py). Two workers; what it does is counted exactly:
 *   - "producer" hands K values to "consumer" over an unbuffered channel, each only once the
 *     consumer is parked in its receive (seen in weft_dump: "waiting ... on=chan recv"), so
 *     the consumer parks exactly K times on the channel, each woken by the producer, and the
 *     producer never parks on it; between looks it sleeps (each sleep is one park);
 *   - an unnamed coroutine (entry trace_helper: the trace names it by its function) sleeps
 *     once;
 *   - "fdwaiter" waits once for a pipe to be readable; the producer writes to it once the
 *     dump shows it parked there ("on=fd read");
 *   - "spinner" computes without a weft call until weft_stats counts a stall (stall_ms 50):
 *     at least one stall report;
 *   - main runs one blocking job (one park, woken by a pool thread) and joins the others.
 * It prints those counts and weft_stats' totals as key=value words. */
#define _GNU_SOURCE
#include <weft.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define K 12

static weft_chan *ch;
static long producer_sleeps;

static void check(int r, const char *what)
{
    if (r != 0) {
        fprintf(stderr, "trace_prog: %s: %s\n", what, weft_strerror(r));
        exit(1);
    }
}

static int pipefd[2];

/* true when weft_dump shows coroutine "name" parked on `on` (weft__wait_arm's words) */
static int parked(const char *name, const char *on)
{
    char want_name[64], want_on[64];
    snprintf(want_name, sizeof want_name, "\"%s\" waiting", name);
    snprintf(want_on, sizeof want_on, "on=%s", on);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        exit(1);
    weft_dump(f);
    fclose(f);
    int found = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        if (strstr(line, want_name) && strstr(line, want_on))
            found = 1;
    free(text);
    return found;
}

static void *producer(void *arg)
{
    (void)arg;
    for (int i = 0; i < K; i++) {
        int64_t deadline = weft_now() + WEFT_SEC(20); /* a safety net against a hang */
        while (!parked("consumer", "chan recv")) {
            check(weft_now() < deadline ? 0 : WEFT_ETIMEDOUT, "waiting for the consumer");
            check(weft_sleep(WEFT_USEC(100)), "sleep");
            producer_sleeps++;
        }
        check(weft_chan_send(ch, &i), "send");
    }
    int64_t deadline = weft_now() + WEFT_SEC(20);
    while (!parked("fdwaiter", "fd read")) {
        check(weft_now() < deadline ? 0 : WEFT_ETIMEDOUT, "waiting for the fd waiter");
        check(weft_sleep(WEFT_USEC(100)), "sleep");
        producer_sleeps++;
    }
    if (write(pipefd[1], "x", 1) != 1)
        exit(1);
    return NULL;
}

static void *fdwaiter(void *arg)
{
    (void)arg;
    int r = weft_wait_fd(pipefd[0], WEFT_READABLE, WEFT_FOREVER);
    if (r != WEFT_READABLE) {
        fprintf(stderr, "trace_prog: weft_wait_fd: %d\n", r);
        exit(1);
    }
    return NULL;
}

/* Computes, without a weft call, until a stall is counted (a safety deadline aside). */
static void *spinner(void *arg)
{
    (void)arg;
    int64_t deadline = weft_now() + WEFT_SEC(20);
    weft_stats st;
    do
        check(weft_stats_get(&st), "stats");
    while (st.stalls == 0 && weft_now() < deadline);
    check(st.stalls ? 0 : WEFT_ETIMEDOUT, "waiting for a stall");
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    for (int i = 0; i < K; i++) {
        int v;
        check(weft_chan_recv(ch, &v), "recv");
        if (v != i)
            exit(1);
    }
    return NULL;
}

void *trace_helper(void *arg); /* exported: dladdr names it */
void *trace_helper(void *arg)
{
    (void)arg;
    check(weft_sleep(WEFT_USEC(50)), "helper sleep");
    return NULL;
}

static void *job(void *arg)
{
    (void)arg;
    usleep(2000);
    return NULL;
}

static int prog_main(void *arg)
{
    (void)arg;
    check(weft_chan_create(&ch, sizeof(int), 0), "chan");
    if (pipe(pipefd) != 0)
        return 1;
    weft_task p, c, h, f, s;
    weft_spawn_opts po = {.name = "producer"}, co = {.name = "consumer"}, fo = {.name = "fdwaiter"},
                    so = {.name = "spinner"};
    check(weft_spawn_ex(&c, consumer, NULL, &co), "spawn consumer");
    check(weft_spawn_ex(&p, producer, NULL, &po), "spawn producer");
    check(weft_spawn(&h, trace_helper, NULL), "spawn helper");
    check(weft_spawn_ex(&f, fdwaiter, NULL, &fo), "spawn fdwaiter");
    check(weft_spawn_ex(&s, spinner, NULL, &so), "spawn spinner");
    check(weft_blocking(job, NULL, NULL), "blocking");
    check(weft_join(p, NULL), "join");
    check(weft_join(c, NULL), "join");
    check(weft_join(h, NULL), "join");
    check(weft_join(f, NULL), "join");
    check(weft_join(s, NULL), "join");
    weft_chan_unref(ch);
    weft_stats st;
    check(weft_stats_get(&st), "stats");
    printf("workers=%d spawns=6 exits=6 chan_parks=%d sleep_parks=%ld blocking_parks=1 "
           "fd_parks=1 fd_waits=1 parks=%llu blocking_jobs=1 stalls=%llu\n",
           st.workers, K, producer_sleeps + 1, (unsigned long long)st.parks,
           (unsigned long long)st.stalls);
    return 0;
}

int main(void)
{
    weft_config cfg = {.threads = 2, .stall_ms = 50};
    int r = weft_run(prog_main, NULL, &cfg);
    if (r != 0) {
        fprintf(stderr, "trace_prog: weft_run: %s\n", weft_strerror(r));
        return 1;
    }
    return 0;
}
