/* SPDX-License-Identifier: MIT */
/* thread_to_task.c — a plain OS thread feeds a coroutine through a channel.
 *
 * The thread is an ordinary pthread: it sleeps with nanosleep and its weft_chan_send blocks
 * the thread (on a futex) until the coroutine has taken the value. The coroutine's
 * weft_chan_recv parks only the coroutine; its worker thread keeps running other work.
 * Closing the channel is how the thread says "that was the last one".
 *
 *   ./thread_to_task          one number per second (10 s)
 *   ./thread_to_task --fast   one per 10 ms (also WEFT_SAMPLE_FAST=1), for tests
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <weft.h>

struct feeder {
    weft_chan *ch;
    long period_ms;
};

/* A plain OS thread: no weft calls but the channel's. */
static void *feed(void *arg)
{
    struct feeder *f = arg;
    struct timespec period = {f->period_ms / 1000, (f->period_ms % 1000) * 1000000L};
    for (int i = 1; i <= 10; i++) {
        nanosleep(&period, NULL);
        int r = weft_chan_send(f->ch, &i); /* blocks this thread until the value is taken */
        if (r != 0) {
            fprintf(stderr, "thread: send: %s\n", weft_strerror(r));
            break;
        }
    }
    weft_chan_close(f->ch);
    return NULL;
}

static int task_main(void *arg)
{
    struct feeder *f = arg;
    int r = weft_chan_create(&f->ch, sizeof(int), 0);
    if (r != 0) {
        fprintf(stderr, "weft_chan_create: %s\n", weft_strerror(r));
        return 1;
    }
    pthread_t thread;
    if ((r = pthread_create(&thread, NULL, feed, f)) != 0) {
        fprintf(stderr, "pthread_create: %s\n", strerror(r));
        weft_chan_unref(f->ch);
        return 1;
    }

    int n;
    while ((r = weft_chan_recv(f->ch, &n)) == 0) /* parks this coroutine between values */
        printf("got %d\n", n);
    if (r != WEFT_ECLOSED)
        fprintf(stderr, "recv: %s\n", weft_strerror(r));
    else
        printf("channel closed: the thread is done\n");

    pthread_join(thread, NULL);
    weft_chan_unref(f->ch);
    return r == WEFT_ECLOSED ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *env = getenv("WEFT_SAMPLE_FAST");
    int fast = (env && strcmp(env, "0") != 0) || (argc > 1 && strcmp(argv[1], "--fast") == 0);
    setvbuf(stdout, NULL, _IOLBF, 0); /* show each line when it happens, even into a pipe */

    struct feeder f = {.period_ms = fast ? 10 : 1000};
    int r = weft_run(task_main, &f, NULL);
    if (r < 0)
        fprintf(stderr, "weft_run: %s\n", weft_strerror(r));
    return r == 0 ? 0 : 1;
}
