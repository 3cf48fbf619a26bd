/* SPDX-License-Identifier: MIT */
/* harness.h — the test suite's tiny assertion kit. Failures print file, line and both
 * operands, then abort() (no setjmp/longjmp: they break across coroutine stacks). */
#ifndef WEFT_TEST_HARNESS_H
#define WEFT_TEST_HARNESS_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ASSERT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond);           \
            fflush(stderr);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define ASSERT_OP(a, op, b)                                                                        \
    do {                                                                                           \
        long long _a = (long long)(a), _b = (long long)(b);                                        \
        if (!(_a op _b)) {                                                                         \
            fprintf(stderr, "%s:%d: assertion failed: %s %s %s (%lld %s %lld)\n", __FILE__,        \
                    __LINE__, #a, #op, #b, _a, #op, _b);                                           \
            fflush(stderr);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define ASSERT_EQ(a, b) ASSERT_OP(a, ==, b)
#define ASSERT_NE(a, b) ASSERT_OP(a, !=, b)
#define ASSERT_LT(a, b) ASSERT_OP(a, <, b)
#define ASSERT_LE(a, b) ASSERT_OP(a, <=, b)
#define ASSERT_GT(a, b) ASSERT_OP(a, >, b)
#define ASSERT_GE(a, b) ASSERT_OP(a, >=, b)

/* Counting checks: the test defines `checks` (a long or an _Atomic long); each CHECK is an
 * ASSERT that also counts, so TEST_PASS can report how much was verified. */
#define CHECK(c)                                                                                   \
    do {                                                                                           \
        ASSERT(c);                                                                                 \
        checks++;                                                                                  \
    } while (0)
#define WEFT__CHECK_OP(a, op, b)                                                                   \
    do {                                                                                           \
        ASSERT_OP(a, op, b);                                                                       \
        checks++;                                                                                  \
    } while (0)
#define CHECK_EQ(a, b) WEFT__CHECK_OP(a, ==, b)
#define CHECK_NE(a, b) WEFT__CHECK_OP(a, !=, b)
#define CHECK_LT(a, b) WEFT__CHECK_OP(a, <, b)
#define CHECK_LE(a, b) WEFT__CHECK_OP(a, <=, b)
#define CHECK_GT(a, b) WEFT__CHECK_OP(a, >, b)
#define CHECK_GE(a, b) WEFT__CHECK_OP(a, >=, b)

/* Sizes scale down under the sanitizers (TSan: at most ~8,000 live fibers; ASan: slow). */
#if defined(__SANITIZE_THREAD__)
#define TEST_SCALE 100
#define TEST_TSAN 1
#elif defined(__SANITIZE_ADDRESS__)
#define TEST_SCALE 10
#else
#define TEST_SCALE 1
#endif
#ifndef TEST_TSAN
#define TEST_TSAN 0
#endif

static inline long test_scaled(long n)
{
    const char *v = getenv("WEFT_TEST_SCALE"); /* valgrind runs set a larger divisor */
    long div = TEST_SCALE * (v ? atol(v) : 1);
    n /= div > 0 ? div : 1;
    return n > 0 ? n : 1;
}

/* Operation counts (not live coroutines): the sanitizers' slowdown is ~10x, not TEST_SCALE,
 * so scale these less and keep the races exercised there too. */
static inline long ops_scaled(long n)
{
    return test_scaled(TEST_SCALE > 1 ? n * 10 : n);
}

/* Wait (in a coroutine) until cond holds; fails after 10 s. */
#define WAIT_FOR(cond)                                                                             \
    do {                                                                                           \
        int64_t _dl = weft_now() + WEFT_SEC(10);                                                   \
        while (!(cond)) {                                                                          \
            ASSERT(weft_now() < _dl);                                                              \
            weft_sleep(WEFT_MSEC(1));                                                              \
        }                                                                                          \
    } while (0)

/* Run fn(arg) in a child process with its stderr captured into buf (NUL-terminated);
 * returns the child's wait status. For tests of fatal reports (stack overflows). */
#include <sys/wait.h>
#include <unistd.h>
static inline int test_child_stderr(void (*fn)(void *), void *arg, char *buf, size_t cap)
{
    int fds[2];
    ASSERT(pipe(fds) == 0);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t n;
    while (len + 1 < cap && (n = read(fds[0], buf + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = 0;
    close(fds[0]);
    int status;
    ASSERT(waitpid(pid, &status, 0) == pid);
    return status;
}

/* A stack overflow in a child process: `fn` runs on a coroutine named `name` with a
 * `stack_size` stack in a fresh 2-worker runtime of a forked child (after `setup(arg)` there,
 * if given), whose death by the overflow report is what the caller checks: returns the wait
 * status, the child's stderr in buf. */
#include <weft.h>
struct test_overflow {
    void *(*fn)(void *);
    size_t stack_size;
    const char *name;
    void (*setup)(void *);
    void *arg;
};

static inline int test_overflow_main(void *arg)
{
    const struct test_overflow *o = arg;
    weft_spawn_opts opts = {.stack_size = o->stack_size, .name = o->name};
    weft_task t;
    if (weft_spawn_ex(&t, o->fn, NULL, &opts) != 0)
        return 1;
    weft_join(t, NULL);
    return 0; /* not reached: the overflow aborts */
}

static inline void test_overflow_child(void *arg)
{
    const struct test_overflow *o = arg;
    if (o->setup)
        o->setup(o->arg);
    weft_config cfg = {.threads = 2};
    _exit(weft_run(test_overflow_main, arg, &cfg) == 0 ? 0 : 3);
}

static inline int test_overflow_in_child(const struct test_overflow *o, char *buf, size_t cap)
{
    return test_child_stderr(test_overflow_child, (void *)o, buf, cap);
}

/* ---- Deterministic simulation (weft.h "Deterministic simulation"): the *_sim variants of
 * tests/CMakeLists.txt run a test binary again with WEFT_SEED=1. Under simulation a test runs
 * its coroutine-only scenarios and skips, saying so, those that wait for plain threads or
 * other workers (their events arrive at whatever virtual time they are seen). */
#include <errno.h>
#include <stdbool.h>

/* The seed weft_run will simulate with: $WEFT_SEED when weft accepts it (a decimal number
 * >= 1: src/core/sim.c weft__sim_seed warns about anything else and runs normally), else 0.
 * The tests set no config.seed of their own, so this is the whole answer. */
static inline unsigned long long test_sim_seed(void)
{
    const char *v = getenv("WEFT_SEED");
    if (!v || !*v || v[0] == '-')
        return 0;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    return *end || errno ? 0 : n;
}

/* Under simulation: print "skipped under simulation: WHAT (WHY)" the first time WHAT is
 * skipped (a test runs weft_run several times) and return true; otherwise false, and the
 * caller runs WHAT. `what` is compared by address: pass a string literal. Not thread-safe,
 * and need not be: it touches its table only under simulation, where every coroutine runs
 * on the one worker thread. */
static inline bool test_sim_skip(const char *what, const char *why)
{
    static const char *said[64];
    static int nsaid;
    if (!test_sim_seed())
        return false;
    for (int i = 0; i < nsaid; i++)
        if (said[i] == what)
            return true;
    if (nsaid < 64)
        said[nsaid++] = what;
    printf("skipped under simulation: %s (%s)\n", what, why);
    fflush(stdout);
    return true;
}

/* Fold v into a digest (a test's record of the order things happened in). */
static inline uint64_t test_mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0xbf58476d1ce4e5b9ull;
}

/* Under simulation, one line on stdout that a replay with the same seed reproduces byte for
 * byte and another seed almost surely changes (tests/test_replay.sh checks both): the
 * virtual time since `t0` (weft_now() at the run's start), the scheduler's context switches
 * and parks so far (weft_stats: exact with the one worker), and `digest`, the test's own
 * record of an interleaving (test_mix). Call it from the run's main coroutine at its end. */
static inline void test_sim_fingerprint(const char *name, int64_t t0, uint64_t digest)
{
    if (!test_sim_seed())
        return;
    weft_stats st;
    ASSERT(weft_stats_get(&st) == 0);
    printf("%s: simulation fingerprint: %" PRId64 " ns virtual, %" PRIu64 " switches, %" PRIu64
           " parks, digest %016" PRIx64 "\n",
           name, weft_now() - t0, st.switches, st.parks, digest);
}

#define TEST_PASS(name, checks)                                                                    \
    do {                                                                                           \
        printf("%s: passed (%ld checks)\n", name, (long)(checks));                                 \
    } while (0)

#endif
