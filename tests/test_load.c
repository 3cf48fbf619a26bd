/* SPDX-License-Identifier: MIT */
/* test_load.c — a unit test of floor 2 (the worker): load.c's accounting, alone — no runtime
 * started, no thread, no loop. A runtime struct with two worker structs is built by hand and
 * published as weft__rt; the clock is the test's, because every function here takes `now`
 * from its caller (the scheduler passes weft_now()).
 *
 * Checked: the idle-time publication encoding (idle_mark: the time so far while awake,
 * acc - from - 1 while asleep), the window verdicts of weft__load_update (narrow when the
 * workers were busy less than 75% of one CPU and slept often; not when sleeps were sparse;
 * wide again when busy over 90%; nothing before the window ends; never when narrowing is
 * not allowed), and weft__io_home's answer in each mode. */
#include "load.h"

#include "harness.h"

#include <stdlib.h>

#define MS WEFT_MSEC(1)
#define WINDOW WEFT_MSEC(10) /* load.c WEFT__LOAD_WINDOW_NS */

static struct weft__runtime rt;
static struct weft__worker *ws[2];

static void sleeps(int n)
{
    for (int i = 0; i < 2; i++)
        atomic_fetch_add(&ws[i]->n_sleeps, (uint64_t)n);
}

/* One window of the test's clock, *t at its start: worker 0 works for busy_pct of it, then
 * sleeps (worker 1 sleeps throughout); each worker goes to sleep n times. The verdict of
 * weft__load_update at the window's end. */
static bool asleep0;
static int window(int64_t *t, int busy_pct, int n)
{
    if (asleep0)
        weft__idle_end(ws[0], *t);
    asleep0 = busy_pct < 100;
    if (asleep0)
        weft__idle_begin(ws[0], *t + WINDOW * busy_pct / 100);
    sleeps(n);
    *t += WINDOW;
    return weft__load_update(*t);
}

int main(void)
{
    for (int i = 0; i < 2; i++) {
        ws[i] = calloc(1, sizeof *ws[i]);
        ASSERT(ws[i] != NULL);
        ws[i]->index = i;
    }
    rt.nworkers = 2;
    rt.workers = ws;
    rt.load_idle = calloc(2, sizeof *rt.load_idle);
    rt.load_sleeps = calloc(2, sizeof *rt.load_sleeps);
    ASSERT_EQ(pthread_mutex_init(&rt.load_mu, NULL), 0);
    rt.narrow_allowed = true;
    weft__rt = &rt;

    /* ---- the encoding ---- */
    int64_t t = WEFT_SEC(1000);
    struct weft__worker *w = ws[0];
    ASSERT_EQ(atomic_load(&w->idle_mark), 0);
    weft__idle_begin(w, t);
    int64_t m = atomic_load(&w->idle_mark);
    ASSERT_LT(m, 0); /* asleep */
    ASSERT_EQ(m, 0 - t - 1);
    ASSERT_EQ(t + 3 * MS + m + 1, 3 * MS); /* idle time up to now = now + mark + 1 */
    weft__idle_end(w, t + 3 * MS);
    ASSERT_EQ(w->idle_acc, 3 * MS);
    ASSERT_EQ(atomic_load(&w->idle_mark), 3 * MS); /* awake: the time so far */
    weft__idle_begin(w, t + 5 * MS);
    ASSERT_EQ(atomic_load(&w->idle_mark), 3 * MS - (t + 5 * MS) - 1);
    weft__idle_end(w, t + 6 * MS);
    ASSERT_EQ(atomic_load(&w->idle_mark), 4 * MS);

    /* ---- windows ---- */
    /* The first call opens a window: no verdict (nothing to compare with). From here on
     * worker 1 sleeps throughout; window() sets how busy worker 0 is. */
    t += 10 * MS;
    ASSERT_EQ(weft__load_update(t), 0);
    ASSERT(!weft__narrow(&rt));
    weft__idle_begin(ws[1], t);
    weft__idle_begin(ws[0], t);
    asleep0 = true;
    /* Not before the window ends. */
    ASSERT_EQ(weft__load_update(t + WINDOW / 2), 0);
    /* Both asleep for the whole window, and waking often: narrow. */
    ASSERT_EQ(window(&t, 0, 20), WEFT_LOAD_NARROWED);
    ASSERT(weft__narrow(&rt));
    ASSERT_EQ(atomic_load(&rt.narrow_count), 1u);
    struct weft__coro co = {0};
    ASSERT(weft__io_home(ws[1], &co) == ws[0]); /* narrow: fd waits go home */
    ASSERT(weft__io_home(ws[0], &co) == NULL);  /* already there */
    co.pin = 1;
    ASSERT(weft__io_home(ws[1], &co) == NULL); /* pinned coroutines never move */
    co.pin = 0;
    /* Still idle and sleeping: stays narrow, no change to report. */
    ASSERT_EQ(window(&t, 0, 20), 0);
    ASSERT(weft__narrow(&rt));
    /* The home works the whole window: busy 100% of one CPU > 90%: wide again. */
    ASSERT_EQ(window(&t, 100, 0), WEFT_LOAD_WIDENED);
    ASSERT(!weft__narrow(&rt));
    ASSERT(weft__io_home(ws[1], &co) == NULL);
    /* Idle but sleeping rarely (sparse load): gathering gains nothing, stays wide. */
    ASSERT_EQ(window(&t, 0, 2), 0);
    ASSERT(!weft__narrow(&rt));
    /* Half busy (50% of one CPU < 75%) with frequent sleeps: narrow. */
    ASSERT_EQ(window(&t, 50, 20), WEFT_LOAD_NARROWED);
    ASSERT_EQ(atomic_load(&rt.narrow_count), 2u);
    /* 80% busy: between the two thresholds, no change either way. */
    ASSERT_EQ(window(&t, 80, 20), 0);
    ASSERT(weft__narrow(&rt));
    /* Widen, then forbid narrowing (one worker, WEFT_NARROW=0, migrate): no verdict. */
    ASSERT_EQ(window(&t, 100, 0), WEFT_LOAD_WIDENED);
    rt.narrow_allowed = false;
    ASSERT_EQ(window(&t, 0, 20), 0);
    ASSERT(!weft__narrow(&rt));
    ASSERT_EQ(atomic_load(&rt.narrow_count), 2u);

    weft__rt = NULL;
    pthread_mutex_destroy(&rt.load_mu);
    free(rt.load_idle);
    free(rt.load_sleeps);
    free(ws[0]);
    free(ws[1]);
    printf("test_load: ok\n");
    return 0;
}
