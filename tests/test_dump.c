/* SPDX-License-Identifier: MIT */
/* test_dump.c — introspection: weft_dump on a program with parked coroutines (every named
 * coroutine listed with its state, `on=` reason, worker and a backtrace; the count line and
 * the return value agree), its error codes (NULL stream, no runtime), weft_stats_get, and the
 * opt-in dump signal (weft_config.dump_signal: the dump lands on stderr), CPU accounting
 * (weft_cputime, cpu=) and scheduling latency (weft_sched_latency_get).
 *
 * `test_dump --gdb-target` is the program tests/test_gdb.sh debugs: it parks named coroutines
 * in known functions (gdb_target_receiver in weft_chan_recv, gdb_target_sleeper in
 * weft_sleep_until, gdb_target_selector in weft_select, gdb_target_blocker in weft_blocking
 * whose job blocks in read(2) on a pool thread named "gdb-blk") plus one that keeps running
 * (gdb_target_spinner), then calls weft_test_gdb_break() where gdb stops. When that returns
 * (gdb continued, or no debugger at all) it releases everything, checks the blocked read
 * still completed normally, and prints "gdb-target: done". */
#define _GNU_SOURCE
#include "harness.h"
#include <weft.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

static _Atomic long checks;

/* ------------------------------------------------------------------------------------------
 * Capturing a dump. */

/* weft_dump into a malloc'd string; *count gets its return value. */
static char *dump_string(int *count)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ASSERT(f);
    int n = weft_dump(f);
    ASSERT_EQ(fclose(f), 0);
    if (count)
        *count = n;
    return buf;
}

/* The line of coroutine `name` ("coroutine ID \"name\" ..."), copied into line; false if
 * the dump has none. */
static bool find_line(const char *dump, const char *name, char *line, size_t cap)
{
    char key[64];
    snprintf(key, sizeof key, "\"%s\" ", name);
    for (const char *p = dump; p && *p;) {
        const char *end = strchr(p, '\n');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > 10 && strncmp(p, "coroutine ", 10) == 0) {
            const char *k = memmem(p, n, key, strlen(key));
            if (k) {
                if (n >= cap)
                    n = cap - 1;
                memcpy(line, p, n);
                line[n] = 0;
                return true;
            }
        }
        p = end ? end + 1 : NULL;
    }
    return false;
}

/* Does coroutine `name` show as waiting on `on` in this dump? */
static bool shows_waiting(const char *dump, const char *name, const char *on)
{
    char line[512], want[64];
    if (!find_line(dump, name, line, sizeof line))
        return false;
    snprintf(want, sizeof want, " on=%s", on);
    return strstr(line, " waiting") && strstr(line, want);
}

struct expect {
    const char *name;
    const char *on;
};

/* Each parking coroutine counts itself here just before its blocking call. weft_dump reads
 * control blocks without synchronisation (a debugging aid), so the test only dumps once
 * every coroutine has started: then each field it reads was written before that coroutine's
 * increment (or before its release CAS to WAITING, for the wait fields) and TSan agrees. */
static _Atomic int arrived;
static void arrive(void)
{
    atomic_fetch_add(&arrived, 1);
}

/* Poll the dump (sleeping 1 ms between tries) until every expected coroutine shows parked;
 * a generous bound, not a timing assertion: failing it means one never parked. */
static void wait_parked(const struct expect *e, int n, int n_arrived)
{
    int64_t deadline = weft_now() + WEFT_SEC(30);
    while (atomic_load(&arrived) < n_arrived) {
        ASSERT(weft_now() < deadline);
        weft_sleep(WEFT_MSEC(1));
    }
    for (;;) {
        char *d = dump_string(NULL);
        int ok = 0;
        for (int i = 0; i < n; i++)
            ok += shows_waiting(d, e[i].name, e[i].on);
        if (ok == n) {
            free(d);
            return;
        }
        if (weft_now() > deadline) {
            fprintf(stderr, "test_dump: coroutines did not all park; last dump:\n%s", d);
            abort();
        }
        free(d);
        weft_sleep(WEFT_MSEC(1));
    }
}

static int count_prefix(const char *s, const char *prefix)
{
    int n = 0;
    size_t k = strlen(prefix);
    for (const char *p = s; p && *p;) {
        if (strncmp(p, prefix, k) == 0)
            n++;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return n;
}

/* ------------------------------------------------------------------------------------------
 * The parked population. */

static weft_chan *c_recv, *c_send, *c_sel_a, *c_sel_b;
static weft_mutex mu = WEFT_MUTEX_INIT;
static int release_pipe[2] = {-1, -1};
static weft_task t_sleep_a;

static void *sleeper(void *arg)
{
    arrive();
    int r = weft_sleep(WEFT_SEC(3600));
    ASSERT_EQ(r, WEFT_ECANCELED);
    return arg;
}

static void *receiver(void *arg)
{
    int v;
    arrive();
    int r = weft_chan_recv(c_recv, &v);
    ASSERT_EQ(r, WEFT_ECLOSED);
    return arg;
}

static void *sender(void *arg)
{
    int v = 42;
    arrive();
    int r = weft_chan_send(c_send, &v);
    ASSERT_EQ(r, WEFT_ECLOSED);
    return arg;
}

static void *selector(void *arg)
{
    int a, b;
    weft_case cs[3] = {{c_sel_a, WEFT_OP_RECV, &a, 0},
                       {c_sel_b, WEFT_OP_RECV, &b, 0},
                       {NULL, WEFT_OP_NONE, NULL, 0}};
    arrive();
    int r = weft_select(cs, 3, WEFT_FOREVER);
    ASSERT(r == 0 || r == 1);
    ASSERT_EQ(cs[r].result, WEFT_ECLOSED);
    return arg;
}

static void *joiner(void *arg)
{
    void *res = NULL;
    arrive();
    ASSERT_EQ(weft_join(t_sleep_a, &res), 0);
    ASSERT(res == (void *)1);
    return arg;
}

static void *locker(void *arg)
{
    arrive();
    ASSERT_EQ(weft_mutex_lock(&mu), 0);
    ASSERT_EQ(weft_mutex_unlock(&mu), 0);
    return arg;
}

static void *blocking_job(void *arg)
{
    (void)arg;
    char c;
    ssize_t n;
    do
        n = read(release_pipe[0], &c, 1);
    while (n < 0 && errno == EINTR);
    return (void *)(intptr_t)n;
}

static void *blocker(void *arg)
{
    void *res = NULL;
    arrive();
    ASSERT_EQ(weft_blocking(blocking_job, NULL, &res), 0);
    ASSERT_EQ((intptr_t)res, 1);
    return arg;
}

static const struct expect parked[] = {
    {"sleeper-a", "sleep"},  {"sleeper-b", "sleep"},  {"receiver", "chan recv"},
    {"sender", "chan send"}, {"selector", "select"},  {"joiner", "join"},
    {"locker", "mutex"},     {"blocker", "blocking"},
};
#define NPARKED ((int)(sizeof parked / sizeof parked[0]))

static weft_task spawn_named(weft_fn fn, const char *name, void *arg)
{
    weft_task t;
    weft_spawn_opts o = {.name = name};
    ASSERT_EQ(weft_spawn_ex(&t, fn, arg, &o), 0);
    return t;
}

/* Capture what a raise(sig) prints on stderr (the dump handler writes there). */
static char *stderr_of_raise(int sig)
{
    fflush(stderr);
    FILE *tmp = tmpfile();
    ASSERT(tmp);
    int saved = dup(2);
    ASSERT(saved >= 0);
    ASSERT(dup2(fileno(tmp), 2) == 2);
    ASSERT_EQ(raise(sig), 0);
    fflush(stderr);
    ASSERT(dup2(saved, 2) == 2);
    close(saved);
    off_t len = lseek(fileno(tmp), 0, SEEK_END); /* fd 2 shared the file offset */
    ASSERT(len >= 0);
    char *buf = calloc(1, (size_t)len + 1);
    ASSERT(buf);
    ASSERT_EQ(pread(fileno(tmp), buf, (size_t)len, 0), len);
    fclose(tmp);
    return buf;
}

struct run_arg {
    int threads;
    int signal_test;
};

static int app(void *p)
{
    struct run_arg *ra = p;
    atomic_store(&arrived, 0);
    weft_stats st0;
    CHECK_EQ(weft_stats_get(&st0), 0);
    CHECK_EQ(st0.workers, ra->threads);
    CHECK_EQ(weft_stats_get(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_dump(NULL), WEFT_EINVAL);

    ASSERT_EQ(weft_chan_create(&c_recv, sizeof(int), 0), 0);
    ASSERT_EQ(weft_chan_create(&c_send, sizeof(int), 0), 0);
    ASSERT_EQ(weft_chan_create(&c_sel_a, sizeof(int), 2), 0);
    ASSERT_EQ(weft_chan_create(&c_sel_b, sizeof(int), 0), 0);
    ASSERT_EQ(pipe(release_pipe), 0);
    ASSERT_EQ(weft_mutex_lock(&mu), 0); /* the locker waits for it */

    weft_task ts[NPARKED];
    t_sleep_a = spawn_named(sleeper, "sleeper-a", (void *)1);
    ts[0] = t_sleep_a;
    ts[1] = spawn_named(sleeper, "sleeper-b", (void *)2);
    ts[2] = spawn_named(receiver, "receiver", (void *)3);
    ts[3] = spawn_named(sender, "sender", (void *)4);
    ts[4] = spawn_named(selector, "selector", (void *)5);
    ts[5] = spawn_named(joiner, "joiner", (void *)6);
    ts[6] = spawn_named(locker, "locker", (void *)7);
    ts[7] = spawn_named(blocker, "blocker", (void *)8);
    /* A name longer than 31 bytes is truncated. */
    weft_task longname = spawn_named(sleeper, "a-rather-long-name-that-goes-past-31-bytes", NULL);
    wait_parked(parked, NPARKED, NPARKED + 1);
    wait_parked(&(struct expect){"a-rather-long-name-that-goes-pa", "sleep"}, 1, NPARKED + 1);

    /* The dump itself. */
    int n = 0;
    char *d = dump_string(&n);
    char line[512];
    /* main + the parked ones (+ longname), all alive: nothing else runs in this program. */
    CHECK_EQ(n, NPARKED + 2);
    CHECK_EQ(count_prefix(d, "coroutine "), n);
    char want[64];
    snprintf(want, sizeof want, "weft: %d workers\n", ra->threads);
    CHECK(strncmp(d, want, strlen(want)) == 0);
    snprintf(want, sizeof want, "\nweft: %d coroutines\n", n);
    CHECK(strstr(d, want) != NULL);
    CHECK(find_line(d, "main", line, sizeof line));
    CHECK(strstr(line, " running"));
    for (int i = 0; i < NPARKED; i++) {
        CHECK(find_line(d, parked[i].name, line, sizeof line));
        CHECK(shows_waiting(d, parked[i].name, parked[i].on));
        unsigned long long id = 0;
        CHECK(sscanf(line, "coroutine %llu ", &id) == 1);
        CHECK_EQ(id, ts[i].id);
        int wk = -1;
        const char *wp = strstr(line, " worker=");
        CHECK(wp && sscanf(wp, " worker=%d", &wk) == 1);
        CHECK(wk >= 0 && wk < ra->threads);
        CHECK(strstr(line, " runs=1 ")); /* ran once, up to its park */
        CHECK(strstr(line, " stack="));  /* it has run: it owns a stack */
#if defined(WEFT_CONTEXT_ASM) && defined(__x86_64__)
        /* The asm backend on x86-64 prints the parked coroutine's frames under its line. */
        const char *at = strstr(d, line);
        CHECK(at);
        at = strchr(at, '\n');
        CHECK(at && strncmp(at + 1, "    #0 0x", 9) == 0);
#endif
    }
    CHECK(find_line(d, "a-rather-long-name-that-goes-pa", line, sizeof line)); /* 31 bytes */
    free(d);

    /* Renaming shows up in the next dump. */
    CHECK_EQ(weft_set_name(ts[1], "sleeper-b2"), 0);
    d = dump_string(&n);
    CHECK(shows_waiting(d, "sleeper-b2", "sleep"));
    CHECK(!find_line(d, "sleeper-b", line, sizeof line));
    free(d);

    /* Counters. */
    weft_stats st;
    CHECK_EQ(weft_stats_get(&st), 0);
    CHECK_EQ(st.workers, ra->threads);
    CHECK_GE(st.alive, (uint64_t)NPARKED + 2);
    CHECK_GE(st.spawned, (uint64_t)NPARKED + 1);
    CHECK_GT(st.switches, 0);
    CHECK_GE(st.parks, (uint64_t)NPARKED);
    CHECK_GT(st.stack_bytes, 0);

    /* The dump signal: raise() runs the handler on this thread before it returns. */
    if (ra->signal_test) {
        char *e = stderr_of_raise(SIGUSR1);
        snprintf(want, sizeof want, "weft: %d workers\n", ra->threads);
        CHECK(strstr(e, want) != NULL);
        CHECK(strstr(e, " coroutines\n") != NULL);
        for (int i = 0; i < NPARKED; i++) {
            const char *nm = i == 1 ? "sleeper-b2" : parked[i].name;
            CHECK(shows_waiting(e, nm, parked[i].on));
        }
        CHECK(find_line(e, "main", line, sizeof line));
        free(e);
    }

    /* Release everything; every coroutine ends the way its function asserts. */
    ASSERT_EQ(weft_cancel(t_sleep_a), 0);
    ASSERT_EQ(weft_cancel(ts[1]), 0);
    ASSERT_EQ(weft_cancel(longname), 0);
    ASSERT_EQ(weft_chan_close(c_recv), 0);
    ASSERT_EQ(weft_chan_close(c_send), 0);
    ASSERT_EQ(weft_chan_close(c_sel_a), 0);
    ASSERT_EQ(weft_chan_close(c_sel_b), 0);
    ASSERT_EQ(weft_mutex_unlock(&mu), 0);
    ASSERT_EQ(write(release_pipe[1], "x", 1), 1);
    for (int i = 1; i < NPARKED; i++) { /* ts[0] is joined by the joiner */
        void *res = NULL;
        CHECK_EQ(weft_join(ts[i], &res), 0);
        CHECK(res == (void *)(intptr_t)(i + 1));
    }
    CHECK_EQ(weft_join(longname, NULL), 0);
    weft_chan_unref(c_recv);
    weft_chan_unref(c_send);
    weft_chan_unref(c_sel_a);
    weft_chan_unref(c_sel_b);
    close(release_pipe[0]);
    close(release_pipe[1]);

    /* Only main is left — once the joined coroutines' last switches (which run after their
     * joiners were woken, possibly on the other worker) are done. */
    for (int tries = 0;; tries++) {
        d = dump_string(&n);
        if (n == 1 || tries == 2000)
            break;
        free(d);
        weft_sleep(WEFT_MSEC(1));
    }
    CHECK_EQ(n, 1);
    CHECK(find_line(d, "main", line, sizeof line));
    free(d);
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * CPU accounting (weft_cputime, the dump's cpu=) and scheduling latency
 * (weft_sched_latency_get, weft_stats.sched_latency_p99_ns). One worker: what runs when is
 * known. Bounds, not timings: a coroutine that computed for d ns without switching held the
 * worker at least d; a coroutine woken while its waker computes for d waits at least d. */

/* The cpu= of coroutine `name` in a dump, ms; -1 when the line has none. */
static double cpu_of(const char *dump, const char *name)
{
    char line[512];
    ASSERT(find_line(dump, name, line, sizeof line));
    const char *c = strstr(line, " cpu=");
    return c ? strtod(c + 5, NULL) : -1;
}

/* Compute without a switch until `ns` passed on the clock; returns how long it really was. */
static int64_t compute_for(int64_t ns)
{
    int64_t t0 = weft_now(), t;
    while ((t = weft_now()) - t0 < ns)
        ;
    return t - t0;
}

static int64_t computed_ns;
static void *computer(void *ch)
{
    computed_ns = compute_for(WEFT_MSEC(2));
    void *v;
    ASSERT_EQ(weft_chan_recv(ch, &v), 0); /* parks until the test is done */
    return NULL;
}

enum { WAKES = 64 };
static int64_t min_spin_ns = INT64_MAX;
static void *woken_loop(void *ch)
{
    void *v;
    for (int i = 0; i < WAKES; i++)
        ASSERT_EQ(weft_chan_recv(ch, &v), 0);
    return NULL;
}

static int accounting_app(void *unused)
{
    (void)unused;
    /* CPU time: off by default (no cpu= at all), on with weft_cputime(1). */
    CHECK_EQ(weft_cputime(2), WEFT_EINVAL);
    char *d = dump_string(NULL);
    CHECK(strstr(d, " cpu=") == NULL);
    free(d);
    CHECK_EQ(weft_cputime(1), 0); /* was off */
    CHECK_EQ(weft_cputime(1), 1); /* already on: unchanged */
    weft_chan *park;
    ASSERT_EQ(weft_chan_create(&park, sizeof(void *), 0), 0);
    weft_task t = spawn_named(computer, "computer", park);
    while (!computed_ns)
        weft_yield();
    d = dump_string(NULL);
    double ms = cpu_of(d, "computer");
    /* it computed computed_ns without a switch: it held the worker at least that long (the
     * dump prints three decimals: a rounding of at most 0.5 us) */
    CHECK(ms * 1e6 + 500 >= (double)computed_ns * 0.99); /* the ticks' calibration: < 1% */
    CHECK(cpu_of(d, "main") >= 0); /* every coroutine shows one while accounting is on */
    free(d);
    CHECK_EQ(weft_cputime(0), 1);
    /* Off: totals stay, nothing is added (main computes now and is not charged). */
    d = dump_string(NULL);
    double main_before = cpu_of(d, "main");
    free(d);
    compute_for(WEFT_MSEC(1));
    weft_yield();
    d = dump_string(NULL);
    /* (the ms printed may move by the tick counter's calibration, which goes on: < 1%) */
    CHECK(cpu_of(d, "computer") <= ms * 1.01 + 0.002);
    /* main: -1 (no cpu= at all) when it was never charged while on, and still none now */
    CHECK(cpu_of(d, "main") <= (main_before < 0 ? -1 : main_before * 1.01 + 0.002));
    free(d);
    void *nothing = NULL;
    CHECK_EQ(weft_chan_send(park, &nothing), 0);
    CHECK_EQ(weft_join(t, NULL), 0);

    /* Scheduling latency: argument errors, then a window with known waits. */
    weft_sched_latency lat;
    CHECK_EQ(weft_sched_latency_get(NULL, 0), WEFT_EINVAL);
    CHECK_EQ(weft_sched_latency_get(&lat, 2), WEFT_EINVAL);
    weft_chan *ch;
    ASSERT_EQ(weft_chan_create(&ch, sizeof(void *), 0), 0);
    weft_task w = spawn_named(woken_loop, "woken", ch);
    weft_yield();                                 /* it parks in its first receive */
    CHECK_EQ(weft_sched_latency_get(&lat, 1), 0); /* a new window from here */
    CHECK_EQ(weft_sched_latency_get(&lat, 0), 0);
    CHECK_EQ(lat.samples, 0); /* nothing became runnable since */
    /* Each send wakes the receiver, which then waits for us: we compute, then yield (a yield
     * is not counted). The only runnable events in the window are those WAKES wake-ups. */
    for (int i = 0; i < WAKES; i++) {
        CHECK_EQ(weft_chan_send(ch, &nothing), 0);
        int64_t s = compute_for(WEFT_USEC(200));
        if (s < min_spin_ns)
            min_spin_ns = s;
        weft_yield();
    }
    CHECK_EQ(weft_join(w, NULL), 0);
    CHECK_EQ(weft_sched_latency_get(&lat, 0), 0);
    CHECK_GE(lat.samples, WAKES / 16 - 1); /* one in 16 (the count runs on from earlier) */
    CHECK(lat.samples <= WAKES / 16 + 1);
    /* each measured wait outlasted our computing (less 1%: the ticks' calibration) */
    CHECK_GE(lat.p50_ns, min_spin_ns * 99 / 100);
    CHECK(lat.p50_ns <= lat.p90_ns && lat.p90_ns <= lat.p99_ns && lat.p99_ns <= lat.p999_ns &&
          lat.p999_ns <= lat.max_ns);
    weft_stats st;
    CHECK_EQ(weft_stats_get(&st), 0);
    CHECK(st.sched_latency_p99_ns >= min_spin_ns * 99 / 100); /* since the start: most */
    weft_chan_unref(ch);
    weft_chan_unref(park);
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * The gdb target (tests/test_gdb.sh). */

uint64_t gdb_target_recv_id, gdb_target_sleep_id, gdb_target_select_id, gdb_target_spin_id;
static _Atomic int spin_stop, spin_started;
static weft_chan *g_chan, *g_chan2, *g_chan3;
static int g_pipe[2];

/* gdb stops here (break weft_test_gdb_break). */
__attribute__((noinline, used)) void weft_test_gdb_break(void)
{
    __asm__ __volatile__("" ::: "memory");
}

__attribute__((noinline)) void *gdb_target_receiver(void *arg)
{
    int v = 0;
    arrive();
    int r = weft_chan_recv(g_chan, &v);
    ASSERT_EQ(r, WEFT_ECLOSED);
    return arg;
}

__attribute__((noinline)) void *gdb_target_sleeper(void *arg)
{
    arrive();
    int r = weft_sleep_until(WEFT_FOREVER);
    ASSERT_EQ(r, WEFT_ECANCELED);
    return arg;
}

__attribute__((noinline)) void *gdb_target_selector(void *arg)
{
    int v;
    weft_case cs[2] = {{g_chan2, WEFT_OP_RECV, &v, 0}, {g_chan3, WEFT_OP_SEND, &v, 0}};
    arrive();
    int r = weft_select(cs, 2, WEFT_FOREVER);
    ASSERT(r == 0 || r == 1);
    ASSERT_EQ(cs[r].result, WEFT_ECLOSED);
    return arg;
}

__attribute__((noinline)) void *gdb_target_spinner(void *arg)
{
    atomic_store(&spin_started, 1);
    while (!atomic_load(&spin_stop))
        weft_yield();
    return arg;
}

static void *gdb_target_job(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "gdb-blk");
    char c;
    /* No EINTR retry: a debugger that broke the restart of this read(2) shows up here. */
    ssize_t n = read(g_pipe[0], &c, 1);
    if (n != 1)
        fprintf(stderr, "gdb-target: read in the blocking job returned %zd (errno %d)\n", n, errno);
    return (void *)(intptr_t)n;
}

__attribute__((noinline)) void *gdb_target_blocker(void *arg)
{
    void *res = NULL;
    arrive();
    int r = weft_blocking(gdb_target_job, NULL, &res);
    ASSERT_EQ(r, 0);
    return res;
}

static int gdb_main(void *unused)
{
    (void)unused;
    ASSERT_EQ(weft_chan_create(&g_chan, sizeof(int), 0), 0);
    ASSERT_EQ(weft_chan_create(&g_chan2, sizeof(int), 1), 0);
    ASSERT_EQ(weft_chan_create(&g_chan3, sizeof(int), 0), 0);
    ASSERT_EQ(pipe(g_pipe), 0);
    weft_task tr = spawn_named(gdb_target_receiver, "gdb-recv", NULL);
    weft_task ts = spawn_named(gdb_target_sleeper, "gdb-sleep", NULL);
    weft_task tsel = spawn_named(gdb_target_selector, "gdb-select", NULL);
    weft_task tb = spawn_named(gdb_target_blocker, "gdb-blocking", NULL);
    gdb_target_recv_id = tr.id;
    gdb_target_sleep_id = ts.id;
    gdb_target_select_id = tsel.id;
    static const struct expect e[] = {{"gdb-recv", "chan recv"},
                                      {"gdb-sleep", "sleep"},
                                      {"gdb-select", "select"},
                                      {"gdb-blocking", "blocking"}};
    wait_parked(e, 4, 4);
    /* Started after the last dump (it keeps running: a dump would race with it). */
    weft_task tspin = spawn_named(gdb_target_spinner, "gdb-spin", NULL);
    gdb_target_spin_id = tspin.id;
    while (!atomic_load(&spin_started))
        weft_sleep(WEFT_MSEC(1));
    printf("gdb-target: parked recv=%llu sleep=%llu select=%llu spin=%llu\n",
           (unsigned long long)tr.id, (unsigned long long)ts.id, (unsigned long long)tsel.id,
           (unsigned long long)tspin.id);
    fflush(stdout);

    weft_test_gdb_break();

    ASSERT_EQ(weft_cancel(ts), 0);
    ASSERT_EQ(weft_chan_close(g_chan), 0);
    ASSERT_EQ(weft_chan_close(g_chan2), 0);
    ASSERT_EQ(weft_chan_close(g_chan3), 0);
    atomic_store(&spin_stop, 1);
    ASSERT_EQ(write(g_pipe[1], "x", 1), 1);
    ASSERT_EQ(weft_join(tr, NULL), 0);
    ASSERT_EQ(weft_join(ts, NULL), 0);
    ASSERT_EQ(weft_join(tsel, NULL), 0);
    ASSERT_EQ(weft_join(tspin, NULL), 0);
    void *res = NULL;
    ASSERT_EQ(weft_join(tb, &res), 0);
    if ((intptr_t)res != 1)
        return 1;
    weft_chan_unref(g_chan);
    weft_chan_unref(g_chan2);
    weft_chan_unref(g_chan3);
    printf("gdb-target: done\n");
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--gdb-target") == 0) {
        weft_config cfg = {.threads = 2};
        return weft_run(gdb_main, NULL, &cfg);
    }

    /* Outside a runtime. */
    weft_stats st;
    CHECK_EQ(weft_dump(stdout), WEFT_ENORUNTIME);
    CHECK_EQ(weft_stats_get(&st), WEFT_ENORUNTIME);

    static const int threads[] = {1, 3};
    for (int i = 0; i < 2; i++) {
        struct run_arg ra = {.threads = threads[i], .signal_test = 1};
        weft_config cfg = {.threads = threads[i], .dump_signal = SIGUSR1};
        ASSERT_EQ(weft_run(app, &ra, &cfg), 0);
        /* The handler is gone with the runtime: the old disposition is back. */
        struct sigaction sa;
        ASSERT_EQ(sigaction(SIGUSR1, NULL, &sa), 0);
        CHECK(sa.sa_handler == SIG_DFL);
    }
    /* Without dump_signal, no handler is installed. */
    struct run_arg ra = {.threads = 2, .signal_test = 0};
    weft_config cfg = {.threads = 2};
    ASSERT_EQ(weft_run(app, &ra, &cfg), 0);

    CHECK_EQ(weft_dump(stdout), WEFT_ENORUNTIME);

    weft_sched_latency lat;
    CHECK_EQ(weft_sched_latency_get(&lat, 0), WEFT_ENORUNTIME);
    weft_config one = {.threads = 1};
    ASSERT_EQ(weft_run(accounting_app, NULL, &one), 0);
    CHECK_EQ(weft_cputime(0), 0); /* accounting_app left it off */
    TEST_PASS("test_dump", checks);
    return 0;
}
