/* SPDX-License-Identifier: MIT */
/* test_badinput.c — every public function of include/weft.h and of the headers under
 * include/weft/ called with bad input; each call must return its documented code (or value)
 * at once, never crash or hang.
 *
 *   errors      weft_strerror: every WEFT_ERRNO_MAP code (non-empty, distinct texts), 0, a
 *               positive number, INT_MIN, unknown negatives (never NULL)
 *   time        weft_after / weft_sleep / weft_sleep_until: zero, negative, INT64_MIN, huge
 *   config      weft_run: NULL main, bad threads / blocking_threads, stack_size out of range
 *   no runtime  before the first weft_run and after it returned, on the main thread and on a
 *               plain thread: WEFT_ENORUNTIME from what needs a runtime, WEFT_ENOTCORO from
 *               coroutine-only calls, weft_self {NULL,0}, weft_cancelled 0; stale handles and a
 *               channel of a finished run (also inside a second run)
 *   busy        weft_run while a runtime runs: WEFT_EBUSY from a coroutine and a plain thread
 *   tasks       weft_spawn/_ex (NULL fn, stack sizes), zeroed / joined / detached / finished /
 *               fabricated {real block, wrong id} handles, joining yourself, main, a task that
 *               already has a joiner, past deadlines, set_name, pin/unpin imbalance
 *   locals      NULL, zeroed and out-of-range keys; more than WEFT_LOCAL_MAX keys
 *   channels    weft_chan_create limits and NULL out, NULL channel / element, every operation
 *               on a closed channel, double close, past deadlines, zero-size elements
 *   select      n = 0 / -1 / > WEFT_SELECT_MAX, NULL cases, ops out of range, NULL channels,
 *               nil-only sets, NULL send element, closed channels, past deadlines
 *   ticker      NULL, zero and negative periods
 *   sync        mutex / cond / sem / wait group / once: NULL, unlocking an unlocked mutex,
 *               waiting with an unlocked mutex, negative counts, past deadlines, overflow
 *   groups      NULL group / fn / options, empty groups, past deadlines, a negative limit,
 *               next on a group that does not collect; weft_blocking with NULL
 *   io          weft_wait_fd (bad fds, event masks, past deadlines), fd helpers, read / write /
 *               write_all (NULL buffers, bad fds), accept / connect, weft_tcp_listen / _connect
 *               (ports -1, 65536, 70000, non-numeric hosts), weft_reader_* (NULL, tiny lines)
 *   debug       weft_stats_get / weft_dump with NULL and outside a runtime
 *   threads     the same kinds of calls from a plain OS thread while the runtime runs
 *
 * Library bugs these checks found are compiled only with -DWEFT_TEST_KNOWN_BUGS (sections
 * marked KNOWN BUG); everything else asserts what the library documents and already does. */
#define _GNU_SOURCE
#include "harness.h"
#include <weft.h>

#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

static _Atomic long checks;
#define CHECK_NULL_TASK(t) CHECK((t).co == NULL && (t).id == 0)

/* Poll for a condition for up to 10 s (a coroutine parks, a thread sleeps, between tries). */
/* Huge allocations must come back as WEFT_ENOMEM: let the sanitizers' allocators return NULL
 * instead of reporting (an environment ASAN_OPTIONS / TSAN_OPTIONS adds to this). */
#if defined(__SANITIZE_ADDRESS__)
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}
#endif
#if defined(__SANITIZE_THREAD__)
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "allocator_may_return_null=1";
}
#endif

/* A descriptor number that is never open (above the kernel's default nr_open). Descriptors
 * weft has used are closed with weft_close (io.h: weft remembers O_NONBLOCK per number). */
#define NOFD (1 << 20)

static const weft_task zero_task = {NULL, 0};

/* ==========================================================================================
 * Helpers. */

static void *ret_arg(void *arg)
{
    return arg;
}

/* Sleeps until cancelled (or abandoned at shutdown). */
static void *sleep_forever(void *arg)
{
    (void)arg;
    weft_sleep(WEFT_FOREVER);
    return NULL;
}

static _Atomic int trivial_runs;
static int trivial(void *arg)
{
    (void)arg;
    atomic_fetch_add(&trivial_runs, 1);
    return 3;
}

/* Run fn(arg) on a new plain OS thread and wait for it (a coroutine parks meanwhile, a thread
 * blocks). 0, or WEFT_ETIMEDOUT if it is still running after `limit` ns: a hang (the thread is
 * then left behind and the caller's check fails). */
struct plain {
    pthread_t th;
    void (*fn)(void *);
    void *arg;
    weft_wg done;
};
static void *plain_main(void *p)
{
    struct plain *t = p;
    t->fn(t->arg);
    ASSERT_EQ(weft_wg_done(&t->done), 0);
    return NULL;
}
static int on_plain_thread(void (*fn)(void *), void *arg, int64_t limit)
{
    struct plain *t = calloc(1, sizeof *t);
    ASSERT(t != NULL);
    t->fn = fn;
    t->arg = arg;
    ASSERT_EQ(weft_wg_init(&t->done), 0);
    ASSERT_EQ(weft_wg_add(&t->done, 1), 0);
    ASSERT_EQ(pthread_create(&t->th, NULL, plain_main, t), 0);
    int r = weft_wg_wait_until(&t->done, limit == WEFT_FOREVER ? WEFT_FOREVER : weft_after(limit));
    if (r != 0)
        return r; /* hung: t stays allocated for the thread */
    ASSERT_EQ(pthread_join(t->th, NULL), 0);
    free(t);
    return 0;
}

/* weft_dump reads control blocks without synchronisation (a debugging aid). As in
 * test_dump.c, the test dumps only once every coroutine alive then has counted itself in
 * `arrived` before its blocking call: each field the dump reads was written before that
 * increment (TSan agrees). Coroutines alive during a dump are spawned with spawn_arriving. */
static _Atomic int arrived;
static int expected_arrivals; /* touched by the main coroutine only */

static void arrive(void)
{
    atomic_fetch_add(&arrived, 1);
}

static int spawn_arriving(weft_task *out, weft_fn fn, void *arg, const char *name)
{
    weft_spawn_opts o = {.name = name};
    int r = weft_spawn_ex(out, fn, arg, &o);
    if (r == 0)
        expected_arrivals++;
    return r;
}

static void wait_arrivals(void)
{
    WAIT_FOR(atomic_load(&arrived) >= expected_arrivals);
}

static void *arrive_and_sleep(void *arg)
{
    (void)arg;
    arrive();
    weft_sleep(WEFT_FOREVER); /* until cancelled, or abandoned at shutdown */
    return NULL;
}

static void *arrive_and_recv(void *arg)
{
    int v;
    arrive();
    return (void *)(intptr_t)weft_chan_recv(arg, &v);
}

/* Whether weft_dump shows the coroutine named `name` waiting, on `what` ("on=join", ...). */
static bool dump_shows(const char *name, const char *what)
{
    wait_arrivals();
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ASSERT(f != NULL);
    ASSERT_GE(weft_dump(f), 1);
    fclose(f);
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\" waiting", name);
    bool found = false;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        if (strstr(line, pat) && strstr(line, what))
            found = true;
    free(text);
    return found;
}

static FILE *devnull(void)
{
    FILE *f = fopen("/dev/null", "w");
    ASSERT(f != NULL);
    return f;
}

/* ==========================================================================================
 * weft.h — errors. */

static const struct {
    const char *name;
    int code;
    const char *text;
} errs[] = {
#define ERR_ROW(name, value, text) {"WEFT_" #name, WEFT_##name, text},
    WEFT_ERRNO_MAP(ERR_ROW)
#undef ERR_ROW
};
#define NERRS ((int)(sizeof errs / sizeof errs[0]))

static void section_errors(void)
{
    for (int i = 0; i < NERRS; i++) {
        const char *s = weft_strerror(errs[i].code);
        CHECK(s != NULL && s[0] != 0);
        CHECK(strcmp(s, errs[i].text) == 0);
        /* weft's own conditions are below -4000, the others are negative errno values */
        CHECK(errs[i].code < -4000 || (errs[i].code < 0 && errs[i].code > -4000));
        for (int j = 0; j < NERRS; j++)
            if (j != i) {
                ASSERT(errs[j].code != errs[i].code);
                ASSERT(strcmp(weft_strerror(errs[j].code), s) != 0);
            }
        checks++; /* distinct code and text */
    }
    /* Not weft codes: still a message, never NULL; unknown ones do not pass for a weft code. */
    const int others[] = {0,           1,     42,     INT_MAX,       INT_MIN,
                          INT_MIN + 1, -1,    -EBADF, -ECONNREFUSED, -3999,
                          -4000,       -4009, -100000};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        const char *s = weft_strerror(others[i]);
        CHECK(s != NULL && s[0] != 0);
        for (int j = 0; j < NERRS; j++)
            ASSERT(strcmp(s, errs[j].text) != 0);
        checks++;
    }
}

/* ==========================================================================================
 * weft.h — time (a plain thread here; the coroutine side is in section_time_coro). */

static void section_time(void)
{
    int64_t t0 = weft_now();
    CHECK(t0 > 0);
    CHECK(weft_now() >= t0);
    const int64_t past[] = {0, -1, INT64_MIN};
    for (size_t i = 0; i < 3; i++) {
        int64_t a = weft_after(past[i]); /* a negative ns counts as 0 */
        CHECK(a >= t0 && a <= weft_now());
    }
    CHECK_EQ(weft_after(INT64_MAX), WEFT_FOREVER); /* saturates */
    CHECK_EQ(weft_after(INT64_MAX - 1), WEFT_FOREVER);
    CHECK_EQ(weft_after(WEFT_FOREVER - t0 / 2), WEFT_FOREVER);

    /* A plain thread blocks; nothing in the past makes it wait. */
    int64_t s0 = weft_now();
    CHECK_EQ(weft_sleep(0), 0);
    CHECK_EQ(weft_sleep(-1), 0);
    CHECK_EQ(weft_sleep(INT64_MIN), 0);
    CHECK_EQ(weft_sleep_until(0), 0);
    CHECK_EQ(weft_sleep_until(1), 0);
    CHECK_EQ(weft_sleep_until(weft_now()), 0);
    CHECK(weft_now() - s0 < WEFT_SEC(1));
    /* Sleeping forever on a plain thread is refused (the header lists only 0/ECANCELED;
     * README: WEFT_EINVAL is a bad argument). */
    CHECK_EQ(weft_sleep(WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_sleep_until(WEFT_FOREVER), WEFT_EINVAL);
}

static void section_time_coro(void)
{
    int64_t s0 = weft_now();
    CHECK_EQ(weft_sleep(0), 0);
    CHECK_EQ(weft_sleep(-1), 0);
    CHECK_EQ(weft_sleep(INT64_MIN), 0);
    CHECK_EQ(weft_sleep_until(0), 0);
    CHECK_EQ(weft_sleep_until(-1), 0);
    CHECK_EQ(weft_sleep_until(weft_now()), 0);
    CHECK(weft_now() - s0 < WEFT_SEC(1));
}

/* ==========================================================================================
 * weft.h — weft_run: arguments and configuration (no runtime is running yet). */

static void section_config(void)
{
    CHECK_EQ(weft_run(NULL, NULL, NULL), WEFT_EINVAL);
    weft_config c = {0};
    CHECK_EQ(weft_run(NULL, NULL, &c), WEFT_EINVAL);
    const int bad_threads[] = {-1, INT_MIN, 4097, INT_MAX};
    for (size_t i = 0; i < sizeof bad_threads / sizeof bad_threads[0]; i++) {
        c = (weft_config){.threads = bad_threads[i]};
        CHECK_EQ(weft_run(trivial, NULL, &c), WEFT_EINVAL);
    }
    c = (weft_config){.blocking_threads = -1};
    CHECK_EQ(weft_run(trivial, NULL, &c), WEFT_EINVAL);
    c = (weft_config){.blocking_threads = INT_MIN};
    CHECK_EQ(weft_run(trivial, NULL, &c), WEFT_EINVAL);
    /* A runtime default below WEFT_STACK_DEFAULT_MIN (a page, outside segmented builds) is
     * refused: sub-page stacks are a per-spawn choice. */
    const size_t bad_stacks[] = {1, WEFT_STACK_MIN - 1, WEFT_STACK_DEFAULT_MIN - 1,
                                 WEFT_STACK_MAX + 1, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad_stacks / sizeof bad_stacks[0]; i++) {
        c = (weft_config){.stack_size = bad_stacks[i]};
        CHECK_EQ(weft_run(trivial, NULL, &c), WEFT_ESTACK);
    }
    CHECK_EQ(atomic_load(&trivial_runs), 0); /* none of them ran main */
    /* The boundaries are valid. */
    c = (weft_config){.threads = 1, .stack_size = WEFT_STACK_DEFAULT_MIN};
    CHECK_EQ(weft_run(trivial, NULL, &c), 3);
    CHECK_EQ(weft_run(trivial, NULL, NULL), 3);
    CHECK_EQ(atomic_load(&trivial_runs), 2);
#ifdef WEFT_TEST_KNOWN_BUGS
    /* KNOWN BUG: dump_signal is not validated — a negative number, one above SIGRTMAX or an
     * uncatchable signal is silently ignored and the runtime runs (README: WEFT_EINVAL for a
     * bad config). */
    const int bad_signals[] = {-1, INT_MIN, 65, INT_MAX, SIGKILL, SIGSTOP};
    for (size_t i = 0; i < sizeof bad_signals / sizeof bad_signals[0]; i++) {
        c = (weft_config){.dump_signal = bad_signals[i]};
        CHECK_EQ(weft_run(trivial, NULL, &c), WEFT_EINVAL);
    }
#endif
}

/* ==========================================================================================
 * No runtime: before the first weft_run and after it returned. */

/* Coroutine-only calls from a thread that is not running a coroutine. */
static void coro_only_calls(void)
{
    const weft_local keys[] = {{0}, {1}, {-1}, {WEFT_LOCAL_MAX + 1}};
    CHECK_EQ(weft_yield(), WEFT_ENOTCORO);
    CHECK_EQ(weft_pin(), WEFT_ENOTCORO);
    CHECK_EQ(weft_unpin(), WEFT_ENOTCORO);
    CHECK_EQ(weft_shield_begin(), WEFT_ENOTCORO);
    CHECK_EQ(weft_shield_end(), WEFT_ENOTCORO);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        CHECK_EQ(weft_local_set(keys[i], (void *)&keys[i]), WEFT_ENOTCORO);
        CHECK(weft_local_get(keys[i]) == NULL);
    }
    CHECK_NULL_TASK(weft_self());
    CHECK_EQ(weft_self_id(), 0);
    CHECK_EQ(weft_cancelled(), 0);
    CHECK_EQ(weft_worker_index(), -1);
}

struct nort {
    weft_task stale; /* a handle of a finished run, or zeroed */
    weft_chan *ch;   /* an open channel (with `len` elements), or NULL: make one */
    size_t len;
};

static void no_runtime_calls(void *arg)
{
    struct nort *n = arg;
    int v = 1;

    /* tasks */
    weft_task t = {(struct weft__coro *)&v, 99}; /* garbage: a failed spawn zeroes it */
    CHECK_EQ(weft_spawn(&t, ret_arg, NULL), WEFT_ENORUNTIME);
    CHECK_NULL_TASK(t);
    CHECK_EQ(weft_spawn(NULL, ret_arg, NULL), WEFT_ENORUNTIME);
    weft_spawn_opts o = {.stack_size = WEFT_STACK_MIN, .name = "x", .pinned = 1};
    CHECK_EQ(weft_spawn_ex(&t, ret_arg, NULL, &o), WEFT_ENORUNTIME);
    CHECK_EQ(weft_spawn(&t, NULL, NULL), WEFT_EINVAL); /* argument checks come first */
    const weft_task handles[] = {zero_task, n->stale};
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(weft_join(handles[i], NULL), WEFT_ENORUNTIME);
        CHECK_EQ(weft_join_until(handles[i], NULL, 0), WEFT_ENORUNTIME);
        CHECK_EQ(weft_detach(handles[i]), WEFT_ENORUNTIME);
        CHECK_EQ(weft_cancel(handles[i]), WEFT_ENORUNTIME);
        CHECK_EQ(weft_set_name(handles[i], "stale"), WEFT_ESTATE); /* not a live handle */
        CHECK_EQ(weft_set_name(handles[i], NULL), WEFT_EINVAL);
    }
    coro_only_calls();

    /* channels: creating and closing need no runtime, operations do */
    weft_chan *ch = n->ch;
    if (!ch)
        CHECK_EQ(weft_chan_create(&ch, sizeof(int), 2), 0);
    CHECK_EQ(weft_chan_send(ch, &v), WEFT_ENORUNTIME);
    CHECK_EQ(weft_chan_send_until(ch, &v, 0), WEFT_ENORUNTIME);
    CHECK_EQ(weft_chan_try_send(ch, &v), WEFT_ENORUNTIME);
    CHECK_EQ(weft_chan_recv(ch, &v), WEFT_ENORUNTIME);
    CHECK_EQ(weft_chan_recv_until(ch, &v, 0), WEFT_ENORUNTIME);
    CHECK_EQ(weft_chan_try_recv(ch, &v), WEFT_ENORUNTIME);
    CHECK_EQ(weft_chan_send(NULL, &v), WEFT_EINVAL);
    CHECK_EQ(weft_chan_send(ch, NULL), WEFT_EINVAL);
    CHECK_EQ(weft_chan_recv(ch, NULL), WEFT_ENORUNTIME); /* a receive may discard */
    CHECK_EQ(weft_chan_len(ch), n->len);
    CHECK_EQ(weft_chan_cap(ch), 2);
    weft_case cs[2] = {{ch, WEFT_OP_RECV, &v, 0}, {NULL, WEFT_OP_NONE, NULL, 0}};
    CHECK_EQ(weft_select(cs, 2, 0), WEFT_ENORUNTIME);
    CHECK_EQ(weft_select(cs, 2, WEFT_FOREVER), WEFT_ENORUNTIME);
    CHECK_EQ(weft_select(cs, 0, 0), WEFT_EINVAL);
    CHECK_EQ(weft_select(NULL, 1, 0), WEFT_EINVAL);
    if (!n->ch) {
        CHECK_EQ(weft_chan_close(ch), 0);
        CHECK_EQ(weft_chan_close(ch), WEFT_ECLOSED);
        CHECK_EQ(weft_chan_send(ch, &v), WEFT_ENORUNTIME);
        weft_chan_unref(ch);
    }

    /* ticker, debug, groups, blocking */
    weft_ticker *tk = (weft_ticker *)&v;
    CHECK_EQ(weft_ticker_start(&tk, WEFT_MSEC(1)), WEFT_ENORUNTIME);
    CHECK(tk == NULL);
    CHECK_EQ(weft_ticker_start(&tk, 0), WEFT_EINVAL);
    weft_stats st;
    CHECK_EQ(weft_stats_get(&st), WEFT_ENORUNTIME);
    CHECK_EQ(weft_stats_get(NULL), WEFT_EINVAL);
    FILE *f = devnull();
    CHECK_EQ(weft_dump(f), WEFT_ENORUNTIME);
    fclose(f);
    CHECK_EQ(weft_dump(NULL), WEFT_EINVAL);
    weft_group *g;
    CHECK_EQ(weft_group_create(&g), 0);
    CHECK_EQ(weft_group_spawn(g, ret_arg, NULL), WEFT_ENORUNTIME);
    CHECK_EQ(weft_group_spawn(g, NULL, NULL), WEFT_EINVAL);
    CHECK_EQ(weft_group_wait(g), 0); /* nothing to wait for */
    CHECK_EQ(weft_group_wait_until(g, 0), 0);
    CHECK_EQ(weft_group_cancel(g), 0);
    CHECK_EQ(weft_group_go(g, trivial, NULL), WEFT_ENORUNTIME);
    CHECK_EQ(weft_group_spawn_until(g, ret_arg, NULL, 0), WEFT_ENORUNTIME);
    CHECK_EQ(weft_group_len(g), 0);
    CHECK_EQ(weft_group_fail(g, -1), 0);
    CHECK_EQ(weft_group_wait(g), -1); /* the failure recorded */
    CHECK_EQ(weft_group_free(g), 0);
    weft_group_opts collect = {.collect = 1};
    CHECK_EQ(weft_group_create_ex(&g, &collect), 0);
    weft_group_outcome oc;
    CHECK_EQ(weft_group_next(g, &oc), WEFT_ECLOSED); /* empty: never blocks */
    CHECK_EQ(weft_group_free(g), 0);
    void *r = NULL;
    CHECK_EQ(weft_blocking(ret_arg, &v, &r), 0); /* a plain thread runs it inline */
    CHECK(r == &v);
    CHECK_EQ(weft_blocking(NULL, &v, &r), WEFT_EINVAL);

    /* synchronisation works on plain threads without a runtime; bad input is still refused */
    weft_mutex m = WEFT_MUTEX_INIT;
    weft_cond c = WEFT_COND_INIT;
    CHECK_EQ(weft_mutex_unlock(&m), WEFT_ESTATE);
    CHECK_EQ(weft_cond_wait(&c, &m), WEFT_ESTATE);
    CHECK_EQ(weft_mutex_lock(NULL), WEFT_EINVAL);
}

static void no_runtime(weft_task stale, weft_chan *ch, size_t len)
{
    struct nort n = {stale, ch, len};
    no_runtime_calls(&n); /* on the main thread */
    CHECK_EQ(on_plain_thread(no_runtime_calls, &n, WEFT_FOREVER), 0);
}

/* ==========================================================================================
 * weft.h — weft_run while a runtime runs. */

static void busy_calls(void *arg)
{
    (void)arg;
    weft_config one = {.threads = 1};
    CHECK_EQ(weft_run(trivial, NULL, NULL), WEFT_EBUSY);
    CHECK_EQ(weft_run(trivial, NULL, &one), WEFT_EBUSY);
    CHECK_EQ(weft_run(NULL, NULL, NULL), WEFT_EINVAL);
}

static void section_busy(void)
{
    int before = atomic_load(&trivial_runs);
    busy_calls(NULL);                                             /* from a coroutine */
    CHECK_EQ(on_plain_thread(busy_calls, NULL, WEFT_FOREVER), 0); /* from a plain thread */
    CHECK_EQ(atomic_load(&trivial_runs), before);
}

/* ==========================================================================================
 * weft.h — coroutines and task handles. */

static void *self_checks(void *arg) /* a coroutine of its own */
{
    weft_task main_task = *(weft_task *)arg;
    CHECK_EQ(weft_join(weft_self(), NULL), WEFT_EDEADLK);
    CHECK_EQ(weft_join_until(weft_self(), NULL, 0), WEFT_EDEADLK);
    /* weft_run's coroutine is detached: its handle cannot be joined or detached */
    CHECK_EQ(weft_join(main_task, NULL), WEFT_ESTATE);
    CHECK_EQ(weft_join_until(main_task, NULL, 0), WEFT_ESTATE);
    CHECK_EQ(weft_detach(main_task), WEFT_ESTATE);
    /* cancelling yourself: reported by every later cancellation point (sticky), except in
     * a shield */
    CHECK_EQ(weft_cancelled(), 0);
    CHECK_EQ(weft_cancel(weft_self()), 0);
    CHECK_EQ(weft_cancelled(), 1);
    CHECK_EQ(weft_sleep(WEFT_MSEC(1)), WEFT_ECANCELED);
    CHECK_EQ(weft_cancelled(), 1);
    CHECK_EQ(weft_sleep(WEFT_MSEC(1)), WEFT_ECANCELED);
    CHECK_EQ(weft_shield_begin(), 0);
    CHECK_EQ(weft_sleep(WEFT_MSEC(1)), 0);
    CHECK_EQ(weft_shield_end(), 0);
    return (void *)7;
}

static void *joiner(void *arg)
{
    arrive();
    return (void *)(intptr_t)weft_join(*(weft_task *)arg, NULL);
}

/* Every handle operation on a handle that is not (or no longer) valid. */
static void check_dead_handle(weft_task h)
{
    CHECK_EQ(weft_join(h, NULL), WEFT_ESTATE);
    CHECK_EQ(weft_join_until(h, NULL, 0), WEFT_ESTATE);
    CHECK_EQ(weft_join_until(h, NULL, WEFT_FOREVER), WEFT_ESTATE);
    CHECK_EQ(weft_detach(h), WEFT_ESTATE);
    CHECK_EQ(weft_cancel(h), WEFT_ESTATE);
    CHECK_EQ(weft_set_name(h, NULL), WEFT_EINVAL);
#ifdef WEFT_TEST_KNOWN_BUGS
    /* KNOWN BUG: weft_set_name checks only the block's id, which is retired when the
     * coroutine's worker finishes its exit switch (after_exit -> coro_free), not when the
     * handle is joined or detached: right after weft_join returns it may still return 0
     * (and write the name) instead of WEFT_ESTATE. */
    CHECK_EQ(weft_set_name(h, "dead"), WEFT_ESTATE);
#else
    WAIT_FOR(weft_set_name(h, "dead") == WEFT_ESTATE); /* at once, or after the exit switch */
    checks++;
#endif
}

static void section_tasks(void)
{
    weft_task t = {(struct weft__coro *)&t, 99}, s;
    void *r;

    /* spawn: NULL fn, stack sizes out of range; the handle is zeroed on failure */
    CHECK_EQ(weft_spawn(&t, NULL, NULL), WEFT_EINVAL);
    CHECK_NULL_TASK(t);
    CHECK_EQ(weft_spawn(NULL, NULL, NULL), WEFT_EINVAL);
    weft_spawn_opts o = {0};
    CHECK_EQ(weft_spawn_ex(&t, NULL, NULL, &o), WEFT_EINVAL);
    const size_t bad_stacks[] = {1, WEFT_STACK_MIN - 1, WEFT_STACK_MAX + 1, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad_stacks / sizeof bad_stacks[0]; i++) {
        t = (weft_task){(struct weft__coro *)&t, 99};
        o = (weft_spawn_opts){.stack_size = bad_stacks[i], .name = "bad"};
        CHECK_EQ(weft_spawn_ex(&t, ret_arg, NULL, &o), WEFT_ESTACK);
        CHECK_NULL_TASK(t);
        CHECK_EQ(weft_spawn_ex(NULL, ret_arg, NULL, &o), WEFT_ESTACK);
    }
    /* the boundary and NULL options are fine */
    o = (weft_spawn_opts){.stack_size = WEFT_STACK_MIN, .name = NULL};
    CHECK_EQ(weft_spawn_ex(&t, ret_arg, (void *)5, &o), 0);
    CHECK_EQ(weft_join(t, &r), 0);
    CHECK_EQ((intptr_t)r, 5);
    CHECK_EQ(weft_spawn_ex(&t, ret_arg, (void *)6, NULL), 0);
    CHECK_EQ(weft_join(t, NULL), 0); /* NULL result */

    /* zeroed and half-zeroed handles */
    check_dead_handle(zero_task);
    check_dead_handle((weft_task){NULL, 12345});
    CHECK_EQ(weft_set_name(zero_task, NULL), WEFT_EINVAL);

    /* after join (also once the control block has been reused) */
    CHECK_EQ(weft_spawn(&t, ret_arg, NULL), 0);
    CHECK_EQ(weft_join(t, NULL), 0);
    check_dead_handle(t);
    for (int i = 0; i < 16; i++) {
        weft_task u;
        CHECK_EQ(weft_spawn(&u, ret_arg, NULL), 0);
        CHECK_EQ(weft_join(u, NULL), 0);
    }
    check_dead_handle(t);

    /* fabricated handles: a real, live control block with a wrong id */
    CHECK_EQ(weft_spawn(&s, sleep_forever, NULL), 0);
    const weft_task fakes[] = {{s.co, s.id + 1000}, {s.co, 0}, {s.co, UINT64_MAX}, {NULL, s.id}};
    for (size_t i = 0; i < sizeof fakes / sizeof fakes[0]; i++)
        check_dead_handle(fakes[i]);
    CHECK_EQ(weft_join_until(s, NULL, weft_after(WEFT_MSEC(1))), WEFT_ETIMEDOUT); /* untouched */
    /* past deadlines on a live task: time out, the handle stays valid */
    CHECK_EQ(weft_join_until(s, NULL, 0), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_join_until(s, NULL, -1), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_join_until(s, NULL, weft_now()), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_set_name(s, NULL), WEFT_EINVAL);
    CHECK_EQ(weft_set_name(s, "a name much longer than the thirty-one bytes that are kept"), 0);
    CHECK_EQ(weft_cancel(s), 0);
    CHECK_EQ(weft_join(s, NULL), 0);
    check_dead_handle(s);

    /* detached: detach, join and join_until again are refused */
    weft_task d;
    CHECK_EQ(spawn_arriving(&d, arrive_and_sleep, NULL, "detached"), 0); /* abandoned */
    CHECK_EQ(weft_detach(d), 0);
    CHECK_EQ(weft_detach(d), WEFT_ESTATE);
    CHECK_EQ(weft_join(d, NULL), WEFT_ESTATE);
    CHECK_EQ(weft_join_until(d, NULL, 0), WEFT_ESTATE);
#ifdef WEFT_TEST_KNOWN_BUGS
#endif
    /* A detached task can still be cancelled and named while it runs (weft.h: servers keep
     * the handles of detached connection coroutines to cancel them at shutdown). */
    CHECK_EQ(weft_set_name(d, "detached"), 0);
    CHECK_EQ(weft_cancel(d), 0);
    /* detached and finished: the block is retired, everything is WEFT_ESTATE */
    CHECK_EQ(weft_spawn(&d, ret_arg, NULL), 0);
    CHECK_EQ(weft_detach(d), 0);
    WAIT_FOR(weft_cancel(d) == WEFT_ESTATE);
    check_dead_handle(d);

    /* finished but not joined: cancel is refused, join still works once */
    CHECK_EQ(weft_spawn(&t, ret_arg, (void *)9), 0);
    WAIT_FOR(weft_cancel(t) == WEFT_ESTATE);
    CHECK_EQ(weft_join(t, &r), 0);
    CHECK_EQ((intptr_t)r, 9);
    check_dead_handle(t);

    /* joining yourself; joining main (detached) */
    weft_task me = weft_self();
    CHECK(me.co != NULL && me.id != 0);
    CHECK_EQ(weft_self_id(), me.id);
    CHECK_EQ(weft_join(me, NULL), WEFT_EDEADLK);
    CHECK_EQ(weft_join_until(me, NULL, -1), WEFT_EDEADLK);
    CHECK_EQ(weft_detach(me), WEFT_ESTATE);
    CHECK_EQ(weft_spawn(&t, self_checks, &me), 0);
    CHECK_EQ(weft_join(t, &r), 0);
    CHECK_EQ((intptr_t)r, 7);

    /* a second joiner, and detach while a joiner waits */
    weft_task j;
    CHECK_EQ(spawn_arriving(&s, arrive_and_sleep, NULL, "joined"), 0);
    CHECK_EQ(spawn_arriving(&j, joiner, &s, "first-joiner"), 0);
    WAIT_FOR(dump_shows("first-joiner", "on=join"));
    CHECK_EQ(weft_join(s, NULL), WEFT_ESTATE);
    CHECK_EQ(weft_join_until(s, NULL, 0), WEFT_ESTATE);
    CHECK_EQ(weft_detach(s), WEFT_ESTATE);
    CHECK_EQ(weft_cancel(s), 0);
    CHECK_EQ(weft_join(j, &r), 0);
    CHECK_EQ((intptr_t)r, 0); /* the first joiner got it */
    check_dead_handle(s);

    /* shields: unbalanced end refused */
    CHECK_EQ(weft_shield_end(), WEFT_ESTATE);
    CHECK_EQ(weft_shield_begin(), 0);
    CHECK_EQ(weft_shield_end(), 0);
    CHECK_EQ(weft_shield_end(), WEFT_ESTATE);

    /* yield, pin / unpin imbalance, worker index */
    CHECK_EQ(weft_yield(), 0);
    CHECK_EQ(weft_unpin(), WEFT_ESTATE); /* not pinned */
    CHECK_EQ(weft_pin(), 0);
    CHECK_EQ(weft_pin(), 0);
    CHECK_EQ(weft_unpin(), 0);
    CHECK_EQ(weft_unpin(), 0);
    CHECK_EQ(weft_unpin(), WEFT_ESTATE);
    weft_stats st;
    CHECK_EQ(weft_stats_get(&st), 0);
    int wi = weft_worker_index();
    CHECK(wi >= 0 && wi < st.workers);
}

/* ==========================================================================================
 * weft.h — coroutine-local storage. */

static void section_locals(void)
{
    CHECK_EQ(weft_local_create(NULL, NULL), WEFT_EINVAL);
    CHECK_EQ(weft_local_create(NULL, free), WEFT_EINVAL);
    weft_local k = {-7};
    CHECK_EQ(weft_local_create(&k, NULL), 0);
    CHECK(k.index > 0 && k.index <= WEFT_LOCAL_MAX);
    int made = 1, x = 0;

    /* zeroed and out-of-range keys */
    const weft_local bad[] = {{0}, {-1}, {INT_MIN}, {WEFT_LOCAL_MAX + 1}, {INT_MAX}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(weft_local_get(bad[i]) == NULL);
        CHECK_EQ(weft_local_set(bad[i], &x), WEFT_EINVAL);
        CHECK(weft_local_get(bad[i]) == NULL);
    }
    CHECK(weft_local_get(k) == NULL); /* never set */
    CHECK_EQ(weft_local_set(k, &x), 0);
    CHECK(weft_local_get(k) == &x);
    CHECK_EQ(weft_local_set(k, NULL), 0);
    CHECK(weft_local_get(k) == NULL);

    /* more than WEFT_LOCAL_MAX keys (process-wide, never released; no other part of this test
     * makes one) */
    weft_local last = {0};
    int r;
    while ((r = weft_local_create(&last, NULL)) == 0)
        ASSERT_LE(++made, WEFT_LOCAL_MAX);
    CHECK_EQ(r, WEFT_ENOMEM);
    CHECK_EQ(made, WEFT_LOCAL_MAX);
    weft_local more;
    CHECK_EQ(weft_local_create(&more, NULL), WEFT_ENOMEM);
    CHECK_EQ(weft_local_create(&more, free), WEFT_ENOMEM);
    /* the keys made still work */
    CHECK_EQ(weft_local_set(k, &x), 0);
    CHECK_EQ(weft_local_set(last, &made), 0);
    CHECK(weft_local_get(k) == &x);
    CHECK(weft_local_get(last) == &made);
    CHECK_EQ(weft_local_set(k, NULL), 0);
    CHECK_EQ(weft_local_set(last, NULL), 0);
}

/* ==========================================================================================
 * weft/chan.h — channels. */

static void section_channels(void)
{
    weft_chan *ch;
    int v = 1;
    void *r;

    /* weft_chan_create: NULL out, absurd sizes (out is NULL after a failure) */
    CHECK_EQ(weft_chan_create(NULL, sizeof(int), 1), WEFT_EINVAL);
    CHECK_EQ(weft_chan_create(NULL, 0, 0), WEFT_EINVAL);
    const struct {
        size_t elem, cap;
    } absurd[] = {{((size_t)1 << 20) + 1, 1},
                  {sizeof(int), ((size_t)1 << 30) + 1},
                  {SIZE_MAX, 1},
                  {sizeof(int), SIZE_MAX},
                  {SIZE_MAX, SIZE_MAX},
                  {SIZE_MAX, 0},
                  {0, SIZE_MAX}};
    for (size_t i = 0; i < sizeof absurd / sizeof absurd[0]; i++) {
        ch = (weft_chan *)&v;
        CHECK_EQ(weft_chan_create(&ch, absurd[i].elem, absurd[i].cap), WEFT_EINVAL);
        CHECK(ch == NULL);
    }
    /* each size within its limit, but 2^50 bytes in all: the allocation fails */
    ch = (weft_chan *)&v;
    CHECK_EQ(weft_chan_create(&ch, (size_t)1 << 20, (size_t)1 << 30), WEFT_ENOMEM);
    CHECK(ch == NULL);

    /* NULL channel */
    CHECK_EQ(weft_chan_send(NULL, &v), WEFT_EINVAL);
    CHECK_EQ(weft_chan_send_until(NULL, &v, 0), WEFT_EINVAL);
    CHECK_EQ(weft_chan_try_send(NULL, &v), WEFT_EINVAL);
    CHECK_EQ(weft_chan_recv(NULL, &v), WEFT_EINVAL);
    CHECK_EQ(weft_chan_recv_until(NULL, &v, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_chan_try_recv(NULL, &v), WEFT_EINVAL);
    CHECK_EQ(weft_chan_close(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_chan_len(NULL), 0);
    CHECK_EQ(weft_chan_cap(NULL), 0);
    weft_chan_ref(NULL);
    weft_chan_unref(NULL);
    checks++; /* survived */

    /* NULL element where elements have a size */
    CHECK_EQ(weft_chan_create(&ch, sizeof(int), 1), 0);
    CHECK_EQ(weft_chan_send(ch, NULL), WEFT_EINVAL);
    CHECK_EQ(weft_chan_send_until(ch, NULL, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_chan_try_send(ch, NULL), WEFT_EINVAL);
    /* a receive into NULL discards (nothing to receive here) */
    CHECK_EQ(weft_chan_recv_until(ch, NULL, 0), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_chan_try_recv(ch, NULL), WEFT_EAGAIN);
    CHECK_EQ(weft_chan_len(ch), 0);

    /* past deadlines, empty and full */
    const int64_t past[] = {0, -1, INT64_MIN};
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_chan_recv_until(ch, &v, past[i]), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_chan_try_recv(ch, &v), WEFT_EAGAIN);
    v = 11;
    CHECK_EQ(weft_chan_send(ch, &v), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_chan_send_until(ch, &v, past[i]), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_chan_try_send(ch, &v), WEFT_EAGAIN);
    CHECK_EQ(weft_chan_len(ch), 1);

    /* close twice; every operation on the closed channel */
    CHECK_EQ(weft_chan_close(ch), 0);
    CHECK_EQ(weft_chan_close(ch), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_close(ch), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_send(ch, &v), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_send_until(ch, &v, WEFT_FOREVER), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_send_until(ch, &v, 0), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_try_send(ch, &v), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_send(ch, NULL), WEFT_EINVAL); /* arguments are still checked */
    CHECK_EQ(weft_chan_len(ch), 1);                  /* the element stayed */
    v = 0;
    CHECK_EQ(weft_chan_recv(ch, &v), 0); /* receivers drain first */
    CHECK_EQ(v, 11);
    CHECK_EQ(weft_chan_recv(ch, &v), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_recv_until(ch, &v, WEFT_FOREVER), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_recv_until(ch, &v, -1), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_try_recv(ch, &v), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_recv(ch, NULL), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_len(ch), 0);
    CHECK_EQ(weft_chan_cap(ch), 1);
    /* an extra reference keeps the closed channel; the last one frees it */
    weft_chan_ref(ch);
    weft_chan_unref(ch);
    CHECK_EQ(weft_chan_close(ch), WEFT_ECLOSED);
    weft_chan_unref(ch);

    /* closing wakes a blocked receiver with WEFT_ECLOSED */
    CHECK_EQ(weft_chan_create(&ch, sizeof(int), 0), 0);
    weft_task t;
    CHECK_EQ(spawn_arriving(&t, arrive_and_recv, ch, "closed-recv"), 0);
    WAIT_FOR(dump_shows("closed-recv", "on=chan recv"));
    CHECK_EQ(weft_chan_close(ch), 0);
    CHECK_EQ(weft_join(t, &r), 0);
    CHECK_EQ((intptr_t)r, WEFT_ECLOSED);
    weft_chan_unref(ch);

    /* zero-size elements: NULL is a valid element */
    CHECK_EQ(weft_chan_create(&ch, 0, 0), 0);
    CHECK_EQ(weft_chan_try_send(ch, NULL), WEFT_EAGAIN); /* nobody receives */
    CHECK_EQ(weft_chan_recv_until(ch, NULL, 0), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_chan_close(ch), 0);
    CHECK_EQ(weft_chan_send(ch, NULL), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_recv(ch, NULL), WEFT_ECLOSED);
    weft_chan_unref(ch);
    CHECK_EQ(weft_chan_create(&ch, 0, 3), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_chan_send(ch, NULL), 0);
    CHECK_EQ(weft_chan_try_send(ch, NULL), WEFT_EAGAIN);
    CHECK_EQ(weft_chan_close(ch), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_chan_recv(ch, NULL), 0);
    CHECK_EQ(weft_chan_recv(ch, NULL), WEFT_ECLOSED);
    weft_chan_unref(ch);
}

/* ==========================================================================================
 * weft/chan.h — select. */

static void *nil_select_cancelled(void *arg)
{
    weft_case *nil = arg;
    CHECK_EQ(weft_cancel(weft_self()), 0);
    CHECK_EQ(weft_select(nil, 1, WEFT_FOREVER), WEFT_ECANCELED);
    CHECK_EQ(weft_select(nil, WEFT_SELECT_MAX, WEFT_FOREVER), WEFT_ECANCELED);
    return NULL;
}

static void section_select(void)
{
    weft_chan *a, *b;
    CHECK_EQ(weft_chan_create(&a, sizeof(int), 1), 0);
    CHECK_EQ(weft_chan_create(&b, sizeof(int), 0), 0);
    int v = 1, w = 0;
    weft_case nil[WEFT_SELECT_MAX + 1];
    for (int i = 0; i <= WEFT_SELECT_MAX; i++)
        nil[i] = (weft_case){NULL, WEFT_OP_NONE, NULL, 0};

    /* counts and NULL cases */
    CHECK_EQ(weft_select(NULL, 1, 0), WEFT_EINVAL);
    CHECK_EQ(weft_select(NULL, 0, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_select(NULL, -1, 0), WEFT_EINVAL);
    const int bad_n[] = {0, -1, INT_MIN, WEFT_SELECT_MAX + 1, INT_MAX};
    for (size_t i = 0; i < sizeof bad_n / sizeof bad_n[0]; i++) {
        CHECK_EQ(weft_select(nil, bad_n[i], 0), WEFT_EINVAL);
        CHECK_EQ(weft_select(nil, bad_n[i], WEFT_FOREVER), WEFT_EINVAL);
    }
    /* nil cases only: never complete */
    /* ... and with no deadline a coroutine waits until cancelled (Go's `select {}`; in a
     * coroutine of its own: the request is sticky) */
    weft_task t;
    CHECK_EQ(weft_spawn(&t, nil_select_cancelled, nil), 0);
    CHECK_EQ(weft_join(t, NULL), 0);
    CHECK_EQ(weft_select(nil, WEFT_SELECT_MAX, 0), WEFT_EAGAIN);
    CHECK_EQ(weft_select(nil, WEFT_SELECT_MAX, -1), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_select(nil, 1, INT64_MIN), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_select(nil, 1, weft_after(WEFT_MSEC(1))), WEFT_ETIMEDOUT);

    /* ops out of range, alone or after a valid case */
    const int bad_op[] = {-1, 3, 42, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof bad_op / sizeof bad_op[0]; i++) {
        weft_case c1[1] = {{a, bad_op[i], &w, 0}};
        CHECK_EQ(weft_select(c1, 1, 0), WEFT_EINVAL);
        weft_case c2[2] = {{a, WEFT_OP_RECV, &w, 0}, {a, bad_op[i], &w, 0}};
        CHECK_EQ(weft_select(c2, 2, WEFT_FOREVER), WEFT_EINVAL);
    }
    /* NULL channels: only with WEFT_OP_NONE */
    weft_case c1[1] = {{NULL, WEFT_OP_RECV, &w, 0}};
    CHECK_EQ(weft_select(c1, 1, 0), WEFT_EINVAL);
    c1[0] = (weft_case){NULL, WEFT_OP_SEND, &v, 0};
    CHECK_EQ(weft_select(c1, 1, WEFT_FOREVER), WEFT_EINVAL);
    weft_case c2[2] = {{a, WEFT_OP_RECV, &w, 0}, {NULL, WEFT_OP_RECV, &w, 0}};
    CHECK_EQ(weft_select(c2, 2, 0), WEFT_EINVAL);
    /* NULL element: a send needs one; a receive may discard */
    c1[0] = (weft_case){a, WEFT_OP_SEND, NULL, 0};
    CHECK_EQ(weft_select(c1, 1, 0), WEFT_EINVAL);
    c2[0] = (weft_case){NULL, WEFT_OP_NONE, NULL, 0};
    c2[1] = (weft_case){a, WEFT_OP_SEND, &v, 5};
    CHECK_EQ(weft_select(c2, 2, 0), 1);
    CHECK_EQ(c2[1].result, 0);
    c2[1] = (weft_case){a, WEFT_OP_RECV, NULL, 5};
    CHECK_EQ(weft_select(c2, 2, 0), 1);
    CHECK_EQ(c2[1].result, 0);
    CHECK_EQ(weft_chan_len(a), 0);

    /* past deadlines: nothing ready (a empty, b has no receiver) */
    c2[0] = (weft_case){a, WEFT_OP_RECV, &w, 0};
    c2[1] = (weft_case){b, WEFT_OP_SEND, &v, 0};
    CHECK_EQ(weft_select(c2, 2, 0), WEFT_EAGAIN);
    CHECK_EQ(weft_select(c2, 2, -1), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_select(c2, 2, INT64_MIN), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_select(c2, 2, weft_after(WEFT_MSEC(1))), WEFT_ETIMEDOUT);

    /* closed channels complete at once with result WEFT_ECLOSED */
    CHECK_EQ(weft_chan_close(a), 0);
    CHECK_EQ(weft_chan_close(b), 0);
    c1[0] = (weft_case){a, WEFT_OP_RECV, &w, 99};
    CHECK_EQ(weft_select(c1, 1, WEFT_FOREVER), 0);
    CHECK_EQ(c1[0].result, WEFT_ECLOSED);
    c1[0] = (weft_case){b, WEFT_OP_SEND, &v, 99};
    CHECK_EQ(weft_select(c1, 1, 0), 0);
    CHECK_EQ(c1[0].result, WEFT_ECLOSED);
    c2[0] = (weft_case){NULL, WEFT_OP_NONE, NULL, 99};
    c2[1] = (weft_case){b, WEFT_OP_RECV, NULL, 99};
    CHECK_EQ(weft_select(c2, 2, WEFT_FOREVER), 1);
    CHECK_EQ(c2[1].result, WEFT_ECLOSED);
    c2[0] = (weft_case){a, WEFT_OP_RECV, &w, 99};
    c2[1] = (weft_case){a, WEFT_OP_SEND, &v, 99};
    int i = weft_select(c2, 2, WEFT_FOREVER);
    CHECK(i == 0 || i == 1);
    CHECK_EQ(c2[i].result, WEFT_ECLOSED);
    c1[0] = (weft_case){a, WEFT_OP_SEND, NULL, 0};
    CHECK_EQ(weft_select(c1, 1, 0), WEFT_EINVAL); /* arguments are still checked */
    weft_chan_unref(a);
    weft_chan_unref(b);
}

/* ==========================================================================================
 * weft/chan.h — tickers. */

static void section_ticker(void)
{
    weft_ticker *t = NULL;
    CHECK_EQ(weft_ticker_start(NULL, WEFT_MSEC(1)), WEFT_EINVAL);
    CHECK_EQ(weft_ticker_start(NULL, 0), WEFT_EINVAL);
    const int64_t bad[] = {0, -1, INT64_MIN};
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(weft_ticker_start(&t, bad[i]), WEFT_EINVAL);
        CHECK(t == NULL);
    }
    CHECK(weft_ticker_chan(NULL) == NULL);
    CHECK_EQ(weft_ticker_stop(NULL), WEFT_EINVAL);
    /* the shortest period is valid: ticks arrive, stop releases everything */
    CHECK_EQ(weft_ticker_start(&t, 1), 0);
    weft_chan *ch = weft_ticker_chan(t);
    CHECK(ch != NULL);
    int64_t tick = 0;
    CHECK_EQ(weft_chan_recv_until(ch, &tick, weft_after(WEFT_SEC(10))), 0);
    CHECK(tick > 0);
    CHECK_EQ(weft_chan_send(ch, NULL), WEFT_EINVAL); /* an ordinary channel for bad input */
    CHECK_EQ(weft_chan_recv(ch, NULL), 0);           /* a receive may discard: the next tick */
    CHECK_EQ(weft_ticker_stop(t), 0);
}

/* ==========================================================================================
 * weft/sync.h — mutex, condition variable, semaphore, wait group, once. */

static _Atomic int once_runs;
static void once_fn(void)
{
    atomic_fetch_add(&once_runs, 1);
}

static void section_sync(void)
{
    const int64_t past[] = {0, -1, INT64_MIN};

    /* mutex */
    weft_mutex m = WEFT_MUTEX_INIT;
    CHECK_EQ(weft_mutex_init(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_mutex_lock(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_mutex_lock_until(NULL, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_mutex_lock_until(NULL, 0), WEFT_EINVAL);
    CHECK_EQ(weft_mutex_trylock(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_mutex_unlock(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_mutex_unlock(&m), WEFT_ESTATE); /* never locked (static initializer) */
    CHECK_EQ(weft_mutex_init(&m), 0);
    CHECK_EQ(weft_mutex_unlock(&m), WEFT_ESTATE); /* never locked (weft_mutex_init) */
    CHECK_EQ(weft_mutex_lock(&m), 0);
    CHECK_EQ(weft_mutex_trylock(&m), WEFT_EAGAIN);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_mutex_lock_until(&m, past[i]), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_mutex_unlock(&m), 0);
    CHECK_EQ(weft_mutex_unlock(&m), WEFT_ESTATE); /* unlocked twice */
    CHECK_EQ(weft_mutex_trylock(&m), 0);          /* still usable */
    CHECK_EQ(weft_mutex_unlock(&m), 0);

    /* condition variable */
    weft_cond c = WEFT_COND_INIT;
    CHECK_EQ(weft_cond_init(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_cond_init(&c), 0);
    CHECK_EQ(weft_cond_wait(NULL, &m), WEFT_EINVAL);
    CHECK_EQ(weft_cond_wait(&c, NULL), WEFT_EINVAL);
    CHECK_EQ(weft_cond_wait(NULL, NULL), WEFT_EINVAL);
    CHECK_EQ(weft_cond_wait_until(NULL, &m, 0), WEFT_EINVAL);
    CHECK_EQ(weft_cond_wait_until(&c, NULL, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_cond_signal(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_cond_broadcast(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_cond_wait(&c, &m), WEFT_ESTATE); /* m is not locked */
    CHECK_EQ(weft_cond_wait_until(&c, &m, WEFT_FOREVER), WEFT_ESTATE);
    CHECK_EQ(weft_cond_wait_until(&c, &m, 0), WEFT_ESTATE);
    CHECK_EQ(weft_mutex_unlock(&m), WEFT_ESTATE); /* ... and was left unlocked */
    CHECK_EQ(weft_cond_signal(&c), 0);            /* nobody waits */
    CHECK_EQ(weft_cond_broadcast(&c), 0);
    /* past deadlines with the mutex held: time out, the mutex is held again */
    CHECK_EQ(weft_mutex_lock(&m), 0);
    CHECK_EQ(weft_cond_wait_until(&c, &m, 0), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_cond_wait_until(&c, &m, -1), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_cond_wait_until(&c, &m, weft_after(WEFT_MSEC(1))), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_mutex_trylock(&m), WEFT_EAGAIN);
    CHECK_EQ(weft_mutex_unlock(&m), 0);
    CHECK_EQ(weft_mutex_unlock(&m), WEFT_ESTATE);

    /* semaphore */
    weft_sem s;
    CHECK_EQ(weft_sem_init(NULL, 0), WEFT_EINVAL);
    CHECK_EQ(weft_sem_init(NULL, 1), WEFT_EINVAL);
    CHECK_EQ(weft_sem_init(&s, -1), WEFT_EINVAL);
    CHECK_EQ(weft_sem_init(&s, INT64_MIN), WEFT_EINVAL);
    CHECK_EQ(weft_sem_wait(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_sem_wait_until(NULL, 0), WEFT_EINVAL);
    CHECK_EQ(weft_sem_trywait(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_sem_post(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_sem_init(&s, 0), 0);
    CHECK_EQ(weft_sem_trywait(&s), WEFT_EAGAIN);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_sem_wait_until(&s, past[i]), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_sem_post(&s), 0);
    CHECK_EQ(weft_sem_wait_until(&s, -1), 0); /* available: no wait, no timeout */
    CHECK_EQ(weft_sem_init(&s, INT64_MAX), 0);
    CHECK_EQ(weft_sem_post(&s), WEFT_EINVAL); /* the count would overflow */
    CHECK_EQ(weft_sem_trywait(&s), 0);
    CHECK_EQ(weft_sem_post(&s), 0);

    /* wait group */
    weft_wg wg = WEFT_WG_INIT;
    CHECK_EQ(weft_wg_init(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_wg_add(NULL, 1), WEFT_EINVAL);
    CHECK_EQ(weft_wg_done(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_wg_wait(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_wg_wait_until(NULL, 0), WEFT_EINVAL);
    CHECK_EQ(weft_wg_init(&wg), 0);
    CHECK_EQ(weft_wg_add(&wg, -1), WEFT_EINVAL); /* would go negative */
    CHECK_EQ(weft_wg_done(&wg), WEFT_EINVAL);
    CHECK_EQ(weft_wg_add(&wg, INT64_MIN), WEFT_EINVAL);
    CHECK_EQ(weft_wg_add(&wg, 0), 0);
    CHECK_EQ(weft_wg_wait(&wg), 0); /* still zero */
    CHECK_EQ(weft_wg_add(&wg, 2), 0);
    CHECK_EQ(weft_wg_add(&wg, -3), WEFT_EINVAL);
    CHECK_EQ(weft_wg_add(&wg, INT64_MIN), WEFT_EINVAL);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_wg_wait_until(&wg, past[i]), WEFT_ETIMEDOUT); /* still two */
    CHECK_EQ(weft_wg_done(&wg), 0);
    CHECK_EQ(weft_wg_done(&wg), 0);
    CHECK_EQ(weft_wg_wait(&wg), 0);
    CHECK_EQ(weft_wg_wait_until(&wg, INT64_MIN), 0);
    CHECK_EQ(weft_wg_done(&wg), WEFT_EINVAL);
    CHECK_EQ(weft_wg_add(&wg, WEFT_WG_MAX), 0); /* the largest count */
    CHECK_EQ(weft_wg_add(&wg, 1), WEFT_EINVAL); /* beyond it */
    CHECK_EQ(weft_wg_add(&wg, INT64_MAX), WEFT_EINVAL);
    CHECK_EQ(weft_wg_add(&wg, -WEFT_WG_MAX), 0);
    CHECK_EQ(weft_wg_add(&wg, INT64_MAX), WEFT_EINVAL); /* from zero too */
    CHECK_EQ(weft_wg_wait_until(&wg, 0), 0);

    /* once */
    weft_once o = WEFT_ONCE_INIT;
    CHECK_EQ(weft_once_call(NULL, once_fn), WEFT_EINVAL);
    CHECK_EQ(weft_once_call(&o, NULL), WEFT_EINVAL);
    CHECK_EQ(weft_once_call(NULL, NULL), WEFT_EINVAL);
    CHECK_EQ(atomic_load(&once_runs), 0);
    CHECK_EQ(weft_once_call(&o, once_fn), 0);
    CHECK_EQ(weft_once_call(&o, once_fn), 0);
    CHECK_EQ(weft_once_call(&o, NULL), WEFT_EINVAL);
    CHECK_EQ(atomic_load(&once_runs), 1);
}

/* ==========================================================================================
 * weft/group.h — task groups; weft/sync.h — the blocking-offload pool. */

static void section_groups(void)
{
    weft_group *g = (weft_group *)&g;
    CHECK_EQ(weft_group_create(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_group_spawn(NULL, ret_arg, NULL), WEFT_EINVAL);
    CHECK_EQ(weft_group_spawn(NULL, NULL, NULL), WEFT_EINVAL);
    CHECK_EQ(weft_group_cancel(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_group_wait(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_group_wait_until(NULL, 0), WEFT_EINVAL);
    CHECK_EQ(weft_group_wait_until(NULL, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_group_free(NULL), 0);
    CHECK_EQ(weft_group_create_ex(NULL, NULL), WEFT_EINVAL);
    weft_group_opts neg = {.max_running = -1};
    CHECK_EQ(weft_group_create_ex(&g, &neg), WEFT_EINVAL);
    CHECK(g == NULL);
    CHECK_EQ(weft_group_go(NULL, trivial, NULL), WEFT_EINVAL);
    CHECK_EQ(weft_group_go_until(NULL, trivial, NULL, 0), WEFT_EINVAL);
    CHECK_EQ(weft_group_spawn_until(NULL, ret_arg, NULL, 0), WEFT_EINVAL);
    CHECK_EQ(weft_group_fail(NULL, -1), WEFT_EINVAL);
    weft_group_outcome oc;
    CHECK_EQ(weft_group_next(NULL, &oc), WEFT_EINVAL);
    CHECK_EQ(weft_group_next_until(NULL, &oc, 0), WEFT_EINVAL);
    CHECK_EQ(weft_group_len(NULL), 0);

    CHECK_EQ(weft_group_create(&g), 0);
    CHECK_EQ(weft_group_spawn(g, NULL, NULL), WEFT_EINVAL);
    CHECK_EQ(weft_group_go(g, NULL, NULL), WEFT_EINVAL);
    CHECK_EQ(weft_group_go_until(g, NULL, NULL, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_group_fail(g, 0), WEFT_EINVAL);
    CHECK_EQ(weft_group_next(g, &oc), WEFT_EINVAL); /* not collecting */
    /* an empty group */
    CHECK_EQ(weft_group_wait(g), 0);
    CHECK_EQ(weft_group_wait_until(g, 0), 0);
    CHECK_EQ(weft_group_wait_until(g, -1), 0);
    CHECK_EQ(weft_group_cancel(g), 0);
    /* cancelled for good: a member spawned now starts cancelled, and returns */
    CHECK_EQ(weft_group_spawn(g, sleep_forever, NULL), 0);
    CHECK_EQ(weft_group_wait(g), 0);
    CHECK_EQ(weft_group_free(g), 0);
    /* a past deadline cancels the children and joins them */
    CHECK_EQ(weft_group_create(&g), 0);
    CHECK_EQ(weft_group_spawn(g, sleep_forever, NULL), 0);
    CHECK_EQ(weft_group_spawn(g, sleep_forever, NULL), 0);
    CHECK_EQ(weft_group_wait_until(g, -1), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_group_wait(g), 0); /* empty again */
    CHECK_EQ(weft_group_spawn(g, sleep_forever, NULL), 0);
    CHECK_EQ(weft_group_cancel(g), 0);
    CHECK_EQ(weft_group_cancel(g), 0); /* twice */
    CHECK_EQ(weft_group_wait(g), 0);
    /* freeing a group with a member still running cancels it and waits for it */
    CHECK_EQ(weft_group_spawn(g, sleep_forever, NULL), 0);
    CHECK_EQ(weft_group_free(g), 0);
    /* a limited group: a past deadline does not wait for a slot */
    weft_group_opts one = {.max_running = 1, .collect = 1};
    CHECK_EQ(weft_group_create_ex(&g, &one), 0);
    CHECK_EQ(weft_group_spawn(g, sleep_forever, NULL), 0);
    CHECK_EQ(weft_group_spawn_until(g, ret_arg, NULL, -1), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_group_go_until(g, trivial, NULL, 0), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_group_next_until(g, NULL, 0), WEFT_EINVAL);
    CHECK_EQ(weft_group_next_until(g, &oc, -1), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_group_len(g), 1);
    CHECK_EQ(weft_group_free(g), 0);
}

static void section_blocking(void)
{
    void *r = NULL;
    CHECK_EQ(weft_blocking(NULL, NULL, NULL), WEFT_EINVAL);
    CHECK_EQ(weft_blocking(NULL, &r, &r), WEFT_EINVAL);
    CHECK_EQ(weft_blocking(ret_arg, (void *)5, NULL), 0); /* result not wanted */
    CHECK_EQ(weft_blocking(ret_arg, (void *)6, &r), 0);
    CHECK_EQ((intptr_t)r, 6);
}

/* ==========================================================================================
 * weft/io.h — descriptors, sockets, the buffered reader. */

/* A descriptor number that was open a moment ago (a dup of `fd`), now closed; nothing else
 * in this test opens a descriptor meanwhile. */
static int closed_fd(int fd)
{
    int d = dup(fd);
    ASSERT_GE(d, 0);
    close(d);
    return d;
}

static void section_io(void)
{
    int p[2], sp[2];
    char buf[64];
    ASSERT_EQ(pipe(p), 0);
    const int neg_fds[] = {-1, -2, INT_MIN};
    const int64_t past[] = {0, -1, INT64_MIN};

    /* weft_wait_fd: negative fds, event masks, fds that are not open, past deadlines */
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(weft_wait_fd(neg_fds[i], WEFT_READABLE, 0), WEFT_EINVAL);
        CHECK_EQ(weft_wait_fd(neg_fds[i], WEFT_WRITABLE, WEFT_FOREVER), WEFT_EINVAL);
    }
    const int bad_events[] = {0, 4, -1, WEFT_READABLE | 4, WEFT_WRITABLE | 8, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof bad_events / sizeof bad_events[0]; i++)
        CHECK_EQ(weft_wait_fd(p[0], bad_events[i], WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_wait_fd(NOFD, WEFT_READABLE, weft_after(WEFT_SEC(5))), -EBADF);
    CHECK_EQ(weft_wait_fd(INT_MAX, WEFT_WRITABLE, weft_after(WEFT_SEC(5))), -EBADF);
    CHECK_EQ(weft_wait_fd(closed_fd(p[0]), WEFT_READABLE, WEFT_FOREVER), -EBADF);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_wait_fd(p[0], WEFT_READABLE, past[i]), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_wait_fd(p[0], WEFT_READABLE, weft_after(WEFT_MSEC(1))), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_wait_fd(p[1], WEFT_WRITABLE, weft_after(WEFT_SEC(5))), WEFT_WRITABLE);

    /* fd helpers */
    CHECK_EQ(weft_fd_nonblock(-1), WEFT_EINVAL);
    CHECK_EQ(weft_fd_nonblock(INT_MIN), WEFT_EINVAL);
    CHECK_EQ(weft_fd_nonblock(NOFD), -EBADF);
    CHECK_EQ(weft_fd_nonblock(INT_MAX), -EBADF);
    CHECK_EQ(weft_fd_forget(-1), WEFT_EINVAL);
    CHECK_EQ(weft_fd_forget(INT_MIN), WEFT_EINVAL);
    CHECK_EQ(weft_fd_forget(NOFD), 0); /* nothing to forget */
    CHECK_EQ(weft_fd_forget(INT_MAX), 0);
    CHECK_EQ(weft_close(-1), WEFT_EINVAL);
    CHECK_EQ(weft_close(NOFD), -EBADF);
    int fd = dup(p[0]);
    ASSERT_GE(fd, 0);
    CHECK_EQ(weft_close(fd), 0);
    CHECK_EQ(weft_close(fd), -EBADF); /* closed twice */

    /* read / write / write_all */
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(weft_read(neg_fds[i], buf, 1, 0), WEFT_EINVAL);
        CHECK_EQ(weft_write(neg_fds[i], "x", 1, 0), WEFT_EINVAL);
        CHECK_EQ(weft_write_all(neg_fds[i], "x", 1, 0), WEFT_EINVAL);
    }
    CHECK_EQ(weft_read(p[0], NULL, 1, 0), WEFT_EINVAL);
    CHECK_EQ(weft_read(p[0], NULL, SIZE_MAX, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_write(p[1], NULL, 1, 0), WEFT_EINVAL);
    CHECK_EQ(weft_write(p[1], NULL, SIZE_MAX, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_write_all(p[1], NULL, 1, 0), WEFT_EINVAL);
    CHECK_EQ(weft_read(NOFD, buf, 1, 0), -EBADF);
    CHECK_EQ(weft_write(NOFD, "x", 1, 0), -EBADF);
    CHECK_EQ(weft_write_all(NOFD, "x", 1, 0), -EBADF);
    CHECK_EQ(weft_read(p[1], buf, 1, WEFT_FOREVER), -EBADF);  /* the write end */
    CHECK_EQ(weft_write(p[0], "x", 1, WEFT_FOREVER), -EBADF); /* the read end */
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_read(p[0], buf, sizeof buf, past[i]), WEFT_ETIMEDOUT);
    /* a peer that went away: -EPIPE (not a SIGPIPE) and end of stream */
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    weft_close(sp[1]);
    CHECK_EQ(weft_write(sp[0], "x", 1, WEFT_FOREVER), -EPIPE);
    CHECK_EQ(weft_write_all(sp[0], "xy", 2, WEFT_FOREVER), -EPIPE);
    CHECK_EQ(weft_read(sp[0], buf, sizeof buf, WEFT_FOREVER), 0);
    CHECK_EQ(weft_close(sp[0]), 0);

    /* accept / connect */
    int l = weft_tcp_listen("127.0.0.1", 0, 0);
    CHECK_GE(l, 0);
    struct sockaddr_in sa;
    socklen_t salen = sizeof sa;
    ASSERT_EQ(getsockname(l, (struct sockaddr *)&sa, &salen), 0);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(s, 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(weft_accept(neg_fds[i], NULL, NULL, 0), WEFT_EINVAL);
        CHECK_EQ(weft_connect(neg_fds[i], (struct sockaddr *)&sa, salen, 0), WEFT_EINVAL);
    }
    CHECK_EQ(weft_accept(NOFD, NULL, NULL, WEFT_FOREVER), -EBADF);
    CHECK_EQ(weft_accept(p[0], NULL, NULL, WEFT_FOREVER), -ENOTSOCK);
    CHECK_EQ(weft_accept(s, NULL, NULL, WEFT_FOREVER), -EINVAL); /* not listening */
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_accept(l, NULL, NULL, past[i]), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_connect(s, NULL, salen, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_connect(s, (struct sockaddr *)&sa, 0, WEFT_FOREVER), -EINVAL);
    CHECK_EQ(weft_connect(NOFD, (struct sockaddr *)&sa, salen, WEFT_FOREVER), -EBADF);
    CHECK_EQ(weft_connect(p[0], (struct sockaddr *)&sa, salen, WEFT_FOREVER), -ENOTSOCK);

    /* weft_tcp_listen / weft_tcp_connect: ports and hosts */
    const int bad_ports[] = {-1, 65536, 70000, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof bad_ports / sizeof bad_ports[0]; i++) {
        CHECK_EQ(weft_tcp_listen("127.0.0.1", bad_ports[i], 16), WEFT_EINVAL);
        CHECK_EQ(weft_tcp_listen(NULL, bad_ports[i], 16), WEFT_EINVAL);
        CHECK_EQ(weft_tcp_connect("127.0.0.1", bad_ports[i], weft_after(WEFT_SEC(5))), WEFT_EINVAL);
        CHECK_EQ(weft_tcp_connect(NULL, bad_ports[i], 0), WEFT_EINVAL);
    }
    const char *bad_hosts[] = {"not-a-host", "example.com", "999.0.0.1",    "1.2.3",
                               "127.0.0.1 ", "::1::2",      "[::1]",        "127.0.0.1:80",
                               " ",          "localhost.",  "0x7f.0.0.1.1", "-1"};
    /* weft_tcp_connect looks host names up ("not-a-host", "example.com" and "localhost." are
     * well-formed names: a lookup, not tried here, where no name server is under the test's
     * control: tests/resolve/); whatever is neither an address nor a name is refused at once */
    for (size_t i = 0; i < sizeof bad_hosts / sizeof bad_hosts[0]; i++) {
        CHECK_EQ(weft_tcp_listen(bad_hosts[i], 0, 16), WEFT_EINVAL);
        if (i == 0 || i == 1 || i == 9)
            continue;
        CHECK_EQ(weft_tcp_connect(bad_hosts[i], ntohs(sa.sin_port), weft_after(WEFT_SEC(5))),
                 WEFT_EINVAL);
    }
    const char *bad_names[] = {"a..b", ".a",  "-a.b",  "a-.b",     "a b",        "a/b",
                               "ä.de", "a.1", "xn--.", "a.b.c:80", "host_name\n"};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++)
        CHECK_EQ(weft_tcp_connect(bad_names[i], 80, weft_after(WEFT_SEC(5))), WEFT_EINVAL);
    char long_name[300];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    CHECK_EQ(weft_tcp_connect(long_name, 80, weft_after(WEFT_SEC(5))),
             WEFT_EINVAL); /* label > 63 */
    for (int i = 63; i < 300; i += 64)
        long_name[i] = '.';
    CHECK_EQ(weft_tcp_connect(long_name, 80, weft_after(WEFT_SEC(5))), WEFT_EINVAL); /* > 253 */
    /* an out-of-range backlog means the default */
    const int backlogs[] = {-1, INT_MIN, 0};
    for (int i = 0; i < 3; i++) {
        fd = weft_tcp_listen("127.0.0.1", 0, backlogs[i]);
        CHECK_GE(fd, 0);
        CHECK_EQ(weft_close(fd), 0);
    }
    /* port 0 is in range; nobody listens there */
    CHECK_EQ(weft_tcp_connect("127.0.0.1", 0, weft_after(WEFT_SEC(5))), -ECONNREFUSED);
    weft_close(s);
    CHECK_EQ(weft_close(l), 0);

    /* the buffered reader */
    weft_reader r, r2;
    CHECK_EQ(weft_reader_init(NULL, p[0], 0), WEFT_EINVAL);
    CHECK_EQ(weft_reader_init(&r, -1, 0), WEFT_EINVAL);
    CHECK_EQ(weft_reader_init(&r, INT_MIN, 16), WEFT_EINVAL);
    CHECK_EQ(weft_reader_init(&r, p[0], SIZE_MAX), WEFT_ENOMEM);
    CHECK_EQ(weft_reader_line(NULL, buf, sizeof buf, 0), WEFT_EINVAL);
    CHECK_EQ(weft_reader_read(NULL, buf, sizeof buf, 0), WEFT_EINVAL);
    CHECK_EQ(weft_reader_skip_line(NULL, 0), WEFT_EINVAL);
    weft_reader_free(NULL);
    checks++; /* survived */
    CHECK_EQ(weft_reader_init(&r, p[0], 16), 0);
    CHECK_EQ(weft_reader_line(&r, NULL, sizeof buf, 0), WEFT_EINVAL);
    CHECK_EQ(weft_reader_line(&r, buf, 0, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_reader_read(&r, NULL, 4, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_reader_line(&r, buf, sizeof buf, 0), WEFT_ETIMEDOUT); /* nothing there */
    CHECK_EQ(weft_reader_read(&r, buf, 4, -1), WEFT_ETIMEDOUT);
    /* a line that does not fit the caller's buffer stays in the reader */
    CHECK_EQ(weft_write_all(p[1], "abcdefghij\n", 11, WEFT_FOREVER), 11);
    CHECK_EQ(weft_reader_line(&r, buf, 4, weft_after(WEFT_SEC(5))), WEFT_ETOOLONG);
    CHECK_EQ(weft_reader_line(&r, buf, 1, weft_after(WEFT_SEC(5))), WEFT_ETOOLONG);
    CHECK_EQ(weft_reader_line(&r, buf, sizeof buf, weft_after(WEFT_SEC(5))), 11);
    CHECK(strcmp(buf, "abcdefghij\n") == 0);
    /* a line longer than the reader's own buffer */
    CHECK_EQ(weft_write_all(p[1], "0123456789abcdefghij", 20, WEFT_FOREVER), 20);
    CHECK_EQ(weft_reader_line(&r, buf, sizeof buf, weft_after(WEFT_SEC(5))), WEFT_ETOOLONG);
    CHECK_EQ(weft_reader_read(&r, buf, sizeof buf, weft_after(WEFT_SEC(5))), 16);
    CHECK_EQ(weft_reader_read(&r, buf, sizeof buf, weft_after(WEFT_SEC(5))), 4);
    /* a reader on a descriptor that is not open */
    CHECK_EQ(weft_reader_init(&r2, NOFD, 16), 0);
    CHECK_EQ(weft_reader_line(&r2, buf, sizeof buf, WEFT_FOREVER), -EBADF);
    CHECK_EQ(weft_reader_read(&r2, buf, 4, WEFT_FOREVER), -EBADF);
    weft_reader_free(&r2);
    /* freed twice; reading from a freed reader fails cleanly */
    weft_reader_free(&r);
    weft_reader_free(&r);
    checks++;
    CHECK_EQ(weft_reader_read(&r, buf, 4, WEFT_FOREVER), WEFT_EINVAL);

    weft_close(p[0]);
    weft_close(p[1]);
}

/* ==========================================================================================
 * weft/debug.h. */

static void section_debug(void)
{
    weft_stats st;
    memset(&st, 0xff, sizeof st);
    CHECK_EQ(weft_stats_get(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_stats_get(&st), 0);
    CHECK_GE(st.workers, 1);
    CHECK_GE(st.alive, 1);
    CHECK_EQ(weft_dump(NULL), WEFT_EINVAL);
    FILE *f = devnull();
    wait_arrivals();
    CHECK_GE(weft_dump(f), 1); /* at least this coroutine */
    fclose(f);
}

/* ==========================================================================================
 * A plain OS thread while the runtime runs. */

static void plain_during_runtime(void *arg)
{
    (void)arg;
    int v = 1;
    void *r;
    coro_only_calls();
    busy_calls(NULL);

    /* handles */
    check_dead_handle(zero_task);
    check_dead_handle(weft_self()); /* {NULL, 0} here */
    weft_task t = {(struct weft__coro *)&v, 99}, s;
    CHECK_EQ(weft_spawn(&t, NULL, NULL), WEFT_EINVAL);
    CHECK_NULL_TASK(t);
    weft_spawn_opts o = {.stack_size = WEFT_STACK_MIN - 1};
    CHECK_EQ(weft_spawn_ex(&t, ret_arg, NULL, &o), WEFT_ESTACK);
    CHECK_EQ(weft_spawn(&s, sleep_forever, NULL), 0);
    CHECK_EQ(weft_join_until(s, NULL, 0), WEFT_ETIMEDOUT); /* a thread's past deadline */
    CHECK_EQ(weft_join_until(s, NULL, weft_now()), WEFT_ETIMEDOUT);
    const weft_task fakes[] = {{s.co, s.id + 1000}, {s.co, 0}};
    for (int i = 0; i < 2; i++)
        check_dead_handle(fakes[i]);
    CHECK_EQ(weft_cancel(s), 0);
    CHECK_EQ(weft_join(s, NULL), 0);
    check_dead_handle(s);

    /* time, select, channels */
    CHECK_EQ(weft_sleep(WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_sleep(-1), 0);
    weft_case nil[1] = {{NULL, WEFT_OP_NONE, NULL, 0}};
    CHECK_EQ(weft_select(NULL, 1, 0), WEFT_EINVAL);
    CHECK_EQ(weft_select(nil, 0, 0), WEFT_EINVAL);
    CHECK_EQ(weft_select(nil, -1, 0), WEFT_EINVAL);
    CHECK_EQ(weft_select(nil, WEFT_SELECT_MAX + 1, 0), WEFT_EINVAL);
    CHECK_EQ(weft_select(nil, 1, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_select(nil, 1, 0), WEFT_EAGAIN);
    CHECK_EQ(weft_select(nil, 1, -1), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_select(nil, 1, weft_after(WEFT_MSEC(1))), WEFT_ETIMEDOUT);
    weft_chan *ch;
    CHECK_EQ(weft_chan_create(&ch, sizeof(int), 1), 0);
    CHECK_EQ(weft_chan_recv_until(ch, &v, -1), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_chan_recv_until(ch, &v, weft_after(WEFT_MSEC(1))), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_chan_close(ch), 0);
    CHECK_EQ(weft_chan_close(ch), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_send(ch, &v), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_try_send(ch, &v), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_recv(ch, &v), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_try_recv(ch, &v), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_recv(ch, NULL), WEFT_ECLOSED); /* a receive may discard */
    weft_case rc[1] = {{ch, WEFT_OP_RECV, &v, 0}};
    CHECK_EQ(weft_select(rc, 1, WEFT_FOREVER), 0);
    CHECK_EQ(rc[0].result, WEFT_ECLOSED);
    weft_chan_unref(ch);

    /* synchronisation (a thread blocks on a futex) */
    weft_mutex m = WEFT_MUTEX_INIT;
    weft_cond c = WEFT_COND_INIT;
    weft_sem sem;
    weft_wg wg = WEFT_WG_INIT;
    CHECK_EQ(weft_cond_wait(&c, &m), WEFT_ESTATE);
    CHECK_EQ(weft_mutex_unlock(&m), WEFT_ESTATE);
    CHECK_EQ(weft_mutex_lock(&m), 0);
    CHECK_EQ(weft_mutex_lock_until(&m, -1), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_mutex_lock_until(&m, INT64_MIN), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_cond_wait_until(&c, &m, 0), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_cond_wait_until(&c, &m, weft_after(WEFT_MSEC(1))), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_mutex_unlock(&m), 0);
    CHECK_EQ(weft_sem_init(&sem, -1), WEFT_EINVAL);
    CHECK_EQ(weft_sem_init(&sem, 0), 0);
    CHECK_EQ(weft_sem_wait_until(&sem, -1), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_sem_wait_until(&sem, weft_after(WEFT_MSEC(1))), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_wg_done(&wg), WEFT_EINVAL);
    CHECK_EQ(weft_wg_add(&wg, 1), 0);
    CHECK_EQ(weft_wg_wait_until(&wg, INT64_MIN), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_wg_wait_until(&wg, weft_after(WEFT_MSEC(1))), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_wg_done(&wg), 0);

    /* the rest */
    CHECK_EQ(weft_blocking(NULL, NULL, NULL), WEFT_EINVAL);
    CHECK_EQ(weft_blocking(ret_arg, (void *)8, &r), 0); /* runs inline */
    CHECK_EQ((intptr_t)r, 8);
    weft_ticker *tk = NULL;
    CHECK_EQ(weft_ticker_start(&tk, 0), WEFT_EINVAL);
    CHECK_EQ(weft_ticker_start(&tk, -5), WEFT_EINVAL);
    CHECK_EQ(weft_ticker_stop(NULL), WEFT_EINVAL);
    weft_group *g;
    CHECK_EQ(weft_group_create(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_group_create(&g), 0);
    CHECK_EQ(weft_group_spawn(g, NULL, NULL), WEFT_EINVAL);
    CHECK_EQ(weft_group_spawn(g, sleep_forever, NULL), 0);
    CHECK_EQ(weft_group_wait_until(g, 0), WEFT_ETIMEDOUT); /* cancels and joins it */
    weft_group_free(g);
    weft_stats st;
    CHECK_EQ(weft_stats_get(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_stats_get(&st), 0);
    CHECK_EQ(weft_dump(NULL), WEFT_EINVAL);
    int p[2];
    char buf[8];
    ASSERT_EQ(pipe(p), 0);
    CHECK_EQ(weft_wait_fd(-1, WEFT_READABLE, 0), WEFT_EINVAL);
    CHECK_EQ(weft_wait_fd(p[0], 0, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_wait_fd(p[0], WEFT_READABLE, 0), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_wait_fd(p[0], WEFT_READABLE, -1), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_wait_fd(p[0], WEFT_READABLE, weft_after(WEFT_MSEC(1))), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_wait_fd(NOFD, WEFT_READABLE, weft_after(WEFT_SEC(5))), -EBADF);
    CHECK_EQ(weft_read(p[0], buf, sizeof buf, -1), WEFT_ETIMEDOUT);
    CHECK_EQ(weft_read(p[0], NULL, 1, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_write(-1, buf, 1, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_tcp_listen("127.0.0.1", 70000, 0), WEFT_EINVAL);
    CHECK_EQ(weft_tcp_connect("not a host", 80, WEFT_FOREVER), WEFT_EINVAL);
    weft_close(p[0]);
    weft_close(p[1]);
}

/* ==========================================================================================
 * KNOWN BUGS (compiled with -DWEFT_TEST_KNOWN_BUGS). Each check fails on the library as it is
 * now: a hang (caught by a 2-second limit), undefined behaviour (UBSan aborts), a crash, or
 * an undocumented result. */

#ifdef WEFT_TEST_KNOWN_BUGS
#define HANG_LIMIT WEFT_SEC(2)

/* fn(arg) in a coroutine of its own: its result; the check fails if it hangs. */
struct call {
    int (*fn)(void *);
    void *arg;
    int result;
};
static void *call_main(void *p)
{
    struct call *c = p;
    c->result = c->fn(c->arg);
    return NULL;
}
static int in_coroutine(int (*fn)(void *), void *arg)
{
    static struct call c; /* outlives a hung coroutine */
    c = (struct call){fn, arg, -1};
    weft_task t;
    ASSERT_EQ(weft_spawn(&t, call_main, &c), 0);
    CHECK_EQ(weft_join_until(t, NULL, weft_after(HANG_LIMIT)), 0); /* else: it hangs */
    return c.result;
}

static int kb_sleep_until(void *arg)
{
    return weft_sleep_until(*(int64_t *)arg);
}
static int kb_join_until(void *arg)
{
    weft_task s;
    ASSERT_EQ(weft_spawn(&s, sleep_forever, NULL), 0);
    int r = weft_join_until(s, NULL, *(int64_t *)arg);
    weft_cancel(s);
    weft_join(s, NULL);
    return r;
}
static int kb_cond_wait_until(void *arg)
{
    weft_mutex m = WEFT_MUTEX_INIT;
    weft_cond c = WEFT_COND_INIT;
    ASSERT_EQ(weft_mutex_lock(&m), 0);
    int r = weft_cond_wait_until(&c, &m, *(int64_t *)arg);
    weft_mutex_unlock(&m);
    return r;
}
static int kb_group_wait_until(void *arg)
{
    weft_group *g;
    ASSERT_EQ(weft_group_create(&g), 0);
    ASSERT_EQ(weft_group_spawn(g, sleep_forever, NULL), 0);
    int r = weft_group_wait_until(g, *(int64_t *)arg);
    weft_group_free(g);
    return r;
}
static int kb_wait_fd(void *arg)
{
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    int r = weft_wait_fd(p[0], WEFT_READABLE, *(int64_t *)arg);
    weft_close(p[0]);
    weft_close(p[1]);
    return r;
}

/* The same calls on a plain thread. */
struct thread_call {
    int (*fn)(void *);
    void *arg;
    int result;
};
static void thread_call_main(void *p)
{
    struct thread_call *c = p;
    c->result = c->fn(c->arg);
}
static int on_thread(int (*fn)(void *), void *arg)
{
    static struct thread_call c; /* outlives a hung thread */
    c = (struct thread_call){fn, arg, -1};
    CHECK_EQ(on_plain_thread(thread_call_main, &c, HANG_LIMIT), 0); /* else: it hangs */
    return c.result;
}

static weft_chan *abandoned_chan;                 /* a receiver waits on it when the run ends */
static weft_mutex abandoned_mu = WEFT_MUTEX_INIT; /* a locker waits on it */
static void *lock_forever(void *arg)
{
    (void)arg;
    arrive();
    weft_mutex_lock(&abandoned_mu);
    return NULL;
}

static weft_wg kb_wg;
static _Atomic int kb_started, kb_stop;
static void *kb_hammer(void *arg) /* a plain thread: refused adds, as fast as it can */
{
    long *wrong = arg;
    atomic_store(&kb_started, 1);
    while (!atomic_load(&kb_stop))
        if (weft_wg_add(&kb_wg, -1000) != WEFT_EINVAL)
            (*wrong)++;
    return NULL;
}

static void section_known_bugs(void)
{
    static int64_t min = INT64_MIN, minus1 = -1;

    /* 1. A deadline near INT64_MIN in a coroutine: timer.c arm() computes
     *    `t->deadline - weft_now()`, a signed overflow (UBSan: timer.c:58); without UBSan it
     *    wraps to a delay of ~292 years, so the call hangs instead of timing out. */
    CHECK_EQ(in_coroutine(kb_sleep_until, &min), 0);
    CHECK_EQ(in_coroutine(kb_join_until, &min), WEFT_ETIMEDOUT);
    CHECK_EQ(in_coroutine(kb_cond_wait_until, &min), WEFT_ETIMEDOUT);
    CHECK_EQ(in_coroutine(kb_group_wait_until, &min), WEFT_ETIMEDOUT);

    /* 2. A negative deadline on a plain thread:
     *    weft_sleep_until: clock_nanosleep(TIMER_ABSTIME) gets tv_nsec < 0 (or tv_sec < 0),
     *      fails with EINVAL, and the `while (clock_nanosleep(...) != 0)` loop in timer.c
     *      spins forever;
     *    weft_join_until / weft_cond_wait_until: futex.c passes no timeout at all for
     *      deadline < 0, so the thread waits until the task ends / a signal comes;
     *    weft_wait_fd (so weft_read, weft_accept, ... too) with INT64_MIN: io.c poll_thread
     *      computes `deadline - weft_now()`, a signed overflow (UBSan: io.c:117); without
     *      UBSan the timeout is garbage (here: waits forever). */
    CHECK_EQ(on_thread(kb_sleep_until, &minus1), 0);
    CHECK_EQ(on_thread(kb_sleep_until, &min), 0);
    CHECK_EQ(on_thread(kb_join_until, &minus1), WEFT_ETIMEDOUT);
    CHECK_EQ(on_thread(kb_cond_wait_until, &minus1), WEFT_ETIMEDOUT);
    CHECK_EQ(on_thread(kb_group_wait_until, &minus1), WEFT_ETIMEDOUT);
    CHECK_EQ(on_thread(kb_wait_fd, &min), WEFT_ETIMEDOUT);

    /* 3. weft_ticker_start with a huge period: `weft_now() + t->period` (ticker.c:22) and
     *    `next += t->period` overflow (UBSan aborts; release happens to work). */
    weft_ticker *tk;
    CHECK_EQ(weft_ticker_start(&tk, INT64_MAX), 0);
    int64_t tick;
    weft_sleep(WEFT_MSEC(20));
    CHECK_EQ(weft_chan_try_recv(weft_ticker_chan(tk), &tick), WEFT_EAGAIN);
    CHECK_EQ(weft_ticker_stop(tk), 0);

    /* 4. A refused weft_wg_add disturbs correct callers on other threads: the lock-free
     *    Add/Done (sync.c, e726c00) first applies the delta and undoes it when the count went
     *    negative, so meanwhile a correct weft_wg_done / weft_wg_add(1) elsewhere sees a
     *    negative count and fails with WEFT_EINVAL (that Done is lost: waiters then wait
     *    forever), and a count that passes through 0 may wake waiters early. */
    pthread_t hammer;
    long wrong_bad = 0, wrong_good = 0;
    ASSERT_EQ(weft_wg_init(&kb_wg), 0);
    ASSERT_EQ(weft_wg_add(&kb_wg, 1), 0);
    ASSERT_EQ(pthread_create(&hammer, NULL, kb_hammer, &wrong_bad), 0);
    WAIT_FOR(atomic_load(&kb_started));
    for (int64_t end = weft_after(WEFT_MSEC(300)); weft_now() < end;) /* correct calls */
        for (int i = 0; i < 1000; i++) {
            if (weft_wg_add(&kb_wg, 1) != 0)
                wrong_good++;
            else if (weft_wg_done(&kb_wg) != 0)
                wrong_good++;
        }
    atomic_store(&kb_stop, 1);
    ASSERT_EQ(pthread_join(hammer, NULL), 0); /* stops at once */
    CHECK_EQ(wrong_good, 0);
    CHECK_EQ(wrong_bad, 0);
    CHECK_EQ(weft_wg_done(&kb_wg), 0);
    CHECK_EQ(weft_wg_wait_until(&kb_wg, 0), 0);

    /* 5. weft_write_all with len 0 returns 0 for any descriptor, even -1 (weft_write and
     *    weft_read refuse a negative fd with WEFT_EINVAL whatever the length). */
    CHECK_EQ(weft_write_all(-1, "x", 0, 0), WEFT_EINVAL);
    CHECK_EQ(weft_write_all(INT_MIN, NULL, 0, 0), WEFT_EINVAL);

    /* 6. weft_reader_line on a freed (or zeroed) reader calls memchr(NULL, '\n', 0)
     *    (reader.c): UBSan "null pointer passed as argument 1"; release returns EINVAL. */
    weft_reader rd;
    char line[8];
    memset(&rd, 0, sizeof rd);
    CHECK_EQ(weft_reader_line(&rd, line, sizeof line, 0), WEFT_EINVAL);
    CHECK_EQ(weft_reader_init(&rd, NOFD, 16), 0);
    weft_reader_free(&rd);
    CHECK_EQ(weft_reader_line(&rd, line, sizeof line, 0), WEFT_EINVAL);

    /* 7. weft_write on a pipe whose read end is closed raises SIGPIPE and kills the process
     *    (sys_write falls back to write(2) for non-sockets); io.h promises -EPIPE, and the
     *    socket path already uses MSG_NOSIGNAL for exactly that reason. */
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    close(p[0]);
    CHECK_EQ(weft_write(p[1], "x", 1, WEFT_FOREVER), -EPIPE);
    weft_close(p[1]);

    /* 8. (checked after the run, in main) a channel / mutex whose waiters were abandoned at
     *    shutdown: weft_chan_close or weft_mutex_unlock after weft_run returned (or any
     *    operation on them in a later run) walks the dead waiters on unmapped stacks: SIGSEGV.
     *    Set up here. */
    ASSERT_EQ(weft_chan_create(&abandoned_chan, sizeof(int), 0), 0);
    ASSERT_EQ(spawn_arriving(NULL, arrive_and_recv, abandoned_chan, "abandoned-recv"), 0);
    ASSERT_EQ(weft_mutex_lock(&abandoned_mu), 0);
    ASSERT_EQ(spawn_arriving(NULL, lock_forever, NULL, "abandoned-lock"), 0);
    WAIT_FOR(dump_shows("abandoned-recv", "on=chan recv"));
    WAIT_FOR(dump_shows("abandoned-lock", "on=mutex"));
}

static void known_bugs_after_run(void)
{
    /* A channel forgets the waiters of a finished run (never touches them). */
    CHECK_EQ(weft_chan_close(abandoned_chan), 0);
    weft_chan_unref(abandoned_chan);
    /* Sync objects with abandoned waiters must be re-initialised (weft/sync.h). */
    CHECK_EQ(weft_mutex_init(&abandoned_mu), 0);
    CHECK_EQ(weft_mutex_trylock(&abandoned_mu), 0);
    CHECK_EQ(weft_mutex_unlock(&abandoned_mu), 0);
}
#endif

/* ==========================================================================================
 * The runs. */

static weft_task g_stale;  /* a task still asleep when the first run ends (abandoned) */
static weft_task g_joined; /* a task joined during the first run */
static weft_chan *g_chan;  /* open, one element buffered, no waiters when the run ends */

static int app(void *arg)
{
    (void)arg;
    section_time_coro();
    section_busy();
    section_tasks();
    section_locals();
    section_channels();
    section_select();
    section_ticker();
    section_sync();
    section_groups();
    section_blocking();
    section_io();
    section_debug();
    CHECK_EQ(on_plain_thread(plain_during_runtime, NULL, WEFT_FOREVER), 0);
#ifdef WEFT_TEST_KNOWN_BUGS
    section_known_bugs();
#endif
    /* left for the checks after the run */
    CHECK_EQ(weft_spawn(&g_stale, sleep_forever, NULL), 0);
    CHECK_EQ(weft_spawn(&g_joined, ret_arg, NULL), 0);
    CHECK_EQ(weft_join(g_joined, NULL), 0);
    CHECK_EQ(weft_chan_create(&g_chan, sizeof(int), 2), 0);
    int v = 77;
    CHECK_EQ(weft_chan_send(g_chan, &v), 0);
    return 42;
}

/* A second run: handles of the first were retired at its shutdown; its channel still works. */
static int second_run(void *arg)
{
    (void)arg;
    check_dead_handle(g_stale);
    check_dead_handle(g_joined);
    int v = 0;
    CHECK_EQ(weft_chan_send(g_chan, &v), WEFT_ECLOSED); /* closed between the runs */
    CHECK_EQ(weft_chan_recv(g_chan, &v), 0);
    CHECK_EQ(v, 77);
    CHECK_EQ(weft_chan_recv(g_chan, &v), WEFT_ECLOSED);
    return 43;
}

static void on_watchdog(int sig)
{
    (void)sig;
    static const char msg[] = "test_badinput: watchdog: a call hung\n";
    ssize_t n = write(2, msg, sizeof msg - 1);
    (void)n;
    abort();
}

int main(void)
{
    signal(SIGALRM, on_watchdog);
    alarm(300);

    section_errors();
    section_time();
    section_config();
    no_runtime(zero_task, NULL, 0); /* before any runtime ran */

    CHECK_EQ(weft_run(app, NULL, NULL), 42);

    no_runtime(g_stale, g_chan, 1); /* after it returned */
    CHECK_EQ(weft_chan_close(g_chan), 0);
    CHECK_EQ(weft_chan_close(g_chan), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_len(g_chan), 1);
#ifdef WEFT_TEST_KNOWN_BUGS
    known_bugs_after_run();
#endif
    weft_config one = {.threads = 1};
    CHECK_EQ(weft_run(second_run, NULL, &one), 43);
    no_runtime(g_stale, NULL, 0); /* and after the second */
    weft_chan_unref(g_chan);

    TEST_PASS("test_badinput", checks);
    return 0;
}
