/* SPDX-License-Identifier: MIT */
/* merge_streams.c — a coroutine's stream and an OS thread's stream, with per-item timeouts,
 * a throttle, and a merge: the Rust book's "futures, tasks and threads" example, in C.
 *
 *   messages:  coroutine, sleeps 100/300 ms, sends "Message: 'a'".."j"
 *                -> timeout (200 ms per item) ------------------------------+
 *                                                                           +-> main: select,
 *   intervals: OS thread, every 1 ms sends count++ (a blocking send)        |   print 20 items
 *                -> throttle (one per 500 ms) -> timeout (10 s per item) ---+
 *
 * Every box is a coroutine (or the thread) running a plain loop between two channels.
 * - timeout waits for the next item with weft_chan_recv_until(deadline). If the deadline
 *   passes first it sends a "Problem" item and goes on waiting: the stream does not end.
 *   The deadline is re-armed when an item passes, so it bounds each gap between items
 *   (tokio-stream's Timeout: at most one Problem per gap).
 * - throttle delays, it drops nothing: it passes an item on, then waits 500 ms before it
 *   takes the next one (tokio-stream's Throttle: the first item passes at once). The thread
 *   sends into a channel of capacity 1, so while the throttle waits the thread's send blocks:
 *   the producer is held back to the throttle's rate, as the book's lazily polled stream is.
 * - main merges the two with weft_select, prints the first 20 items, then stops everything:
 *   it closes the thread's channel (the thread's next send fails, it returns and is joined),
 *   cancels the coroutines still waiting, joins them, and frees the channels.
 *
 * What to expect (the book's output): "Interval #1" at once, then the messages and the
 * intervals #2, #3, ... every 500 ms, counted one by one; the messages alternate 100 ms and
 * 300 ms gaps, so each 300 ms gap outlasts the 200 ms timeout and a "Problem" line comes
 * before the late message.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <weft.h>

#define ITEMS_TO_SHOW 20

/* What flows into main: an item, or a problem (ok == 0) saying what went wrong. */
struct item {
    int ok;
    char text[32];
};

/* A stage: a coroutine that reads `in` and writes `out` (the producer has no `in`). */
struct stage {
    weft_chan *in, *out;
    int64_t period;   /* timeout: the longest wait for an item; throttle: the shortest gap */
    const char *what; /* timeout: what timed out, for the problem text */
};

/* ---- the streams ------------------------------------------------------------------------- */

static void *send_messages(void *arg)
{
    struct stage *s = arg;
    const char *letters = "abcdefghij";
    for (int i = 0; letters[i]; i++) {
        if (weft_sleep(WEFT_MSEC(i % 2 == 0 ? 100 : 300)) != 0)
            break; /* cancelled */
        struct item m = {.ok = 1};
        snprintf(m.text, sizeof m.text, "Message: '%c'", letters[i]);
        if (weft_chan_send(s->out, &m) != 0)
            break;
    }
    weft_chan_close(s->out); /* end of the stream */
    return NULL;
}

/* A plain pthread: nanosleep, and a send that blocks the thread while the channel is full
 * (the throttle has not taken the last count yet). */
static void *count_intervals(void *ticks)
{
    const struct timespec one_ms = {0, 1000000};
    unsigned count = 0;
    for (;;) {
        nanosleep(&one_ms, NULL);
        count++;
        if (weft_chan_send(ticks, &count) != 0)
            break; /* WEFT_ECLOSED: main has seen enough */
    }
    return NULL;
}

/* ---- the stream operators ---------------------------------------------------------------- */

static void *throttle(void *arg)
{
    struct stage *s = arg;
    unsigned count;
    while (weft_chan_recv(s->in, &count) == 0) {
        struct item iv = {.ok = 1};
        snprintf(iv.text, sizeof iv.text, "Interval #%u", count);
        if (weft_chan_send(s->out, &iv) != 0 || weft_sleep(s->period) != 0)
            break; /* main stopped listening, or cancelled us */
    }
    weft_chan_close(s->out);
    return NULL;
}

static void *timeout(void *arg)
{
    struct stage *s = arg;
    int64_t deadline = weft_after(s->period);
    struct item it;
    for (;;) {
        int r = weft_chan_recv_until(s->in, &it, deadline);
        if (r == WEFT_ETIMEDOUT) {
            it = (struct item){.ok = 0};
            snprintf(it.text, sizeof it.text, "%s timed out", s->what);
        } else if (r != 0) {
            break; /* WEFT_ECLOSED: the stream ended; WEFT_ECANCELED: we are stopped */
        }
        if (weft_chan_send(s->out, &it) != 0)
            break;
        /* An item re-arms the deadline; after a problem, wait for the next item unbounded. */
        deadline = it.ok ? weft_after(s->period) : WEFT_FOREVER;
    }
    weft_chan_close(s->out);
    return NULL;
}

/* ---- main: build the two pipelines, merge, print, stop ----------------------------------- */

static weft_chan *new_chan(size_t elem_size, size_t capacity)
{
    weft_chan *ch = NULL;
    int r = weft_chan_create(&ch, elem_size, capacity);
    if (r != 0)
        fprintf(stderr, "weft_chan_create: %s\n", weft_strerror(r));
    return ch;
}

static int merge_main(void *unused)
{
    (void)unused;
    weft_chan *raw_msgs = new_chan(sizeof(struct item), 0);
    weft_chan *msgs = new_chan(sizeof(struct item), 0);
    weft_chan *ticks = new_chan(sizeof(unsigned), 1); /* holds the thread back */
    weft_chan *raw_ivals = new_chan(sizeof(struct item), 0);
    weft_chan *ivals = new_chan(sizeof(struct item), 0);
    weft_group *group = NULL;
    if (!raw_msgs || !msgs || !ticks || !raw_ivals || !ivals || weft_group_create(&group) != 0)
        return 1;

    struct stage producer = {.out = raw_msgs};
    struct stage msg_timeout = {raw_msgs, msgs, WEFT_MSEC(200), "message"};
    struct stage ival_throttle = {ticks, raw_ivals, WEFT_MSEC(500), NULL};
    struct stage ival_timeout = {raw_ivals, ivals, WEFT_SEC(10), "interval"};
    int r;
    if ((r = weft_group_spawn(group, send_messages, &producer)) != 0 ||
        (r = weft_group_spawn(group, timeout, &msg_timeout)) != 0 ||
        (r = weft_group_spawn(group, throttle, &ival_throttle)) != 0 ||
        (r = weft_group_spawn(group, timeout, &ival_timeout)) != 0) {
        fprintf(stderr, "weft_group_spawn: %s\n", weft_strerror(r));
        return 1;
    }
    pthread_t thread;
    if ((r = pthread_create(&thread, NULL, count_intervals, ticks)) != 0) {
        fprintf(stderr, "pthread_create: %s\n", strerror(r));
        return 1;
    }

    /* merge(messages, intervals).take(20) */
    struct item it;
    weft_case cases[2] = {
        {.ch = msgs, .op = WEFT_OP_RECV, .elem = &it},
        {.ch = ivals, .op = WEFT_OP_RECV, .elem = &it},
    };
    int shown = 0, streams = 2, status = 0;
    while (shown < ITEMS_TO_SHOW && streams > 0) {
        int i = weft_select(cases, 2, WEFT_FOREVER);
        if (i < 0) {
            fprintf(stderr, "weft_select: %s\n", weft_strerror(i));
            status = 1;
            break;
        }
        if (cases[i].result == WEFT_ECLOSED) { /* that stream has ended: stop asking it */
            cases[i] = (weft_case){.ch = NULL, .op = WEFT_OP_NONE};
            streams--;
            continue;
        }
        if (it.ok)
            printf("%s\n", it.text);
        else
            printf("Problem: %s\n", it.text);
        shown++;
    }

    /* Stop: the thread first (its send fails once the channel is closed), then the rest. */
    weft_chan_close(ticks);
    pthread_join(thread, NULL);
    weft_group_cancel(group);
    weft_group_wait(group);
    weft_group_free(group);
    weft_chan_unref(raw_msgs);
    weft_chan_unref(msgs);
    weft_chan_unref(ticks);
    weft_chan_unref(raw_ivals);
    weft_chan_unref(ivals);
    return status;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* show each line when it happens, even into a pipe */
    int r = weft_run(merge_main, NULL, NULL);
    if (r < 0)
        fprintf(stderr, "weft_run: %s\n", weft_strerror(r));
    return r == 0 ? 0 : 1;
}
