/* SPDX-License-Identifier: MIT */
/* test_oom.c — running out of memory is an error code, never an abort: each case runs in a
 * child process that must exit 0 (a weft abort shows as SIGABRT and its stderr is printed).
 *  - spawn under `ulimit -v` (RLIMIT_AS): coroutines that park are spawned until weft_spawn
 *    returns WEFT_ENOMEM; every one spawned runs (its stack was promised), all are joined,
 *    and the runtime goes on working (spawns, a channel);
 *  - weft_run under a tight RLIMIT_AS returns WEFT_ENOMEM when a worker thread cannot be
 *    created, and when main's stack cannot be mapped; a later weft_run works;
 *  - twenty (and a few hundred) distinct stack sizes work side by side;
 *  - with mprotect guards, weft leaves the mappings the application still had free to the
 *    application: a process that has used most of vm.max_map_count can still map after
 *    weft's coroutines took their stacks;
 *  - sub-page stacks carved while the guard mode is mprotect (kernels before 6.13) work;
 *  - a sleep whose timer record cannot be allocated returns WEFT_ENOMEM.
 * The RLIMIT_AS cases and the allocation-failure case are skipped under ASan/TSan: the
 * sanitizers reserve terabytes of address space up front and interpose calloc; the map-count
 * case under TSan, which maps a trace per coroutine fiber. */
#define _GNU_SOURCE
#include "harness.h"
#include <weft.h>

#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

static long checks;

/* Run fn in a child; it must exit 0. Prints the child's stderr if not. */
static void expect_child_ok(const char *what, void (*fn)(void *), void *arg)
{
    static char buf[65536];
    int status = test_child_stderr(fn, arg, buf, sizeof buf);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "%s: child status %#x, stderr:\n%s\n", what, status, buf);
    ASSERT(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    if (strstr(buf, "weft:"))
        fprintf(stderr, "%s: unexpected report:\n%s\n", what, buf);
    ASSERT(strstr(buf, "weft:") == NULL); /* no report of any kind */
    checks += 3;
    printf("  %s: ok\n", what);
    fflush(stdout);
}

/* ---- twenty distinct sizes (no limit needed: the class table was fixed at 16) ----------- */

static void *use_stack(void *arg)
{
    /* A quarter of the requested size, touched: the rest is for weft_yield and, with the
     * ucontext backend, the ~1 KB ucontext_t kept at the top of the stack. */
    size_t n = (size_t)arg / 4;
    volatile char *buf = __builtin_alloca(n);
    for (size_t i = 0; i < n; i += 512)
        buf[i] = (char)i;
    buf[n - 1] = 1;
    weft_yield();
    return (void *)(buf[n - 1] + n);
}

static int sizes_main(void *arg)
{
    (void)arg;
    /* 20 sizes that were 20 distinct classes: 16 page multiples and 4 larger ones. */
    size_t sizes[40];
    int n = 0;
    for (size_t kb = 4; kb <= 64; kb += 4)
        sizes[n++] = kb * 1024;
    sizes[n++] = 72 * 1024;
    sizes[n++] = 100000;
    sizes[n++] = 128 * 1024;
    sizes[n++] = 1000 * 1000;
    ASSERT_EQ(n, 20);
    weft_task t[40];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < n; i++) {
            weft_spawn_opts o = {.stack_size = sizes[i], .name = "sized"};
            ASSERT_EQ(weft_spawn_ex(&t[i], use_stack, (void *)sizes[i], &o), 0);
        }
        for (int i = 0; i < n; i++) {
            void *r;
            ASSERT_EQ(weft_join(t[i], &r), 0);
            ASSERT_EQ((size_t)r, sizes[i] / 4 + 1);
        }
    }
    /* Hundreds of odd sizes, 1 KiB to 64 MiB: each maps to some class. */
    for (size_t sz = 1024; sz <= ((size_t)64 << 20); sz = sz * 21 / 20 + 1) {
        weft_spawn_opts o = {.stack_size = sz};
        weft_task u;
        size_t use = sz < 16384 ? 1024 : sz > ((size_t)1 << 20) ? ((size_t)1 << 20) : sz;
        ASSERT_EQ(weft_spawn_ex(&u, use_stack, (void *)use, &o), 0);
        ASSERT_EQ(weft_join(u, NULL), 0);
        checks++;
    }
    checks += 4 * n;
    return 0;
}

static void sizes_child(void *arg)
{
    (void)arg;
    weft_config cfg = {.threads = 2};
    _exit(weft_run(sizes_main, NULL, &cfg));
}

static weft_task *tasks;
static weft_chan *gate;
static _Atomic long started;

static void *parker(void *arg)
{
    atomic_fetch_add(&started, 1);
    int r = weft_chan_recv(gate, NULL); /* parks until the gate closes */
    return (void *)(long)(r == WEFT_ECLOSED ? (long)arg : -1);
}

/* ---- RLIMIT_AS helpers ------------------------------------------------------------------- */

#if !SANITIZED
static weft_chan *box;

static void *quick(void *arg)
{
    return arg;
}

/* The process's address space now, in bytes. */
static size_t vm_size(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    ASSERT(f != NULL);
    unsigned long pages = 0;
    ASSERT_EQ(fscanf(f, "%lu", &pages), 1);
    fclose(f);
    return pages * (size_t)sysconf(_SC_PAGESIZE);
}

static void limit_as(size_t bytes)
{
    struct rlimit rl;
    ASSERT_EQ(getrlimit(RLIMIT_AS, &rl), 0);
    rl.rlim_cur = bytes;
    ASSERT_EQ(setrlimit(RLIMIT_AS, &rl), 0);
}

static void unlimit_as(void)
{
    struct rlimit rl;
    ASSERT_EQ(getrlimit(RLIMIT_AS, &rl), 0);
    rl.rlim_cur = rl.rlim_max;
    ASSERT_EQ(setrlimit(RLIMIT_AS, &rl), 0);
}

/* ---- spawn until WEFT_ENOMEM --------------------------------------------------------------- */

#define MAX_SPAWN 200000

static int spawn_main(void *arg)
{
    (void)arg;
    /* Everything this test needs later is allocated before memory runs out. */
    ASSERT_EQ(weft_chan_create(&gate, 0, 0), 0);
    ASSERT_EQ(weft_chan_create(&box, sizeof(long), 4), 0);
    long n = 0;
    int r = 0;
    while (n < MAX_SPAWN) {
        /* Two size classes: the worker's default (per-worker credit) and another (pool). */
        weft_spawn_opts o = {.stack_size = n % 2 ? 128 * 1024 : 0};
        r = weft_spawn_ex(&tasks[n], parker, (void *)n, &o);
        if (r != 0)
            break;
        n++;
    }
    ASSERT_EQ(r, WEFT_ENOMEM);
    ASSERT_GT(n, 16);
    /* Every coroutine spawned runs: none lost its stack to the exhaustion. */
    int64_t dl = weft_now() + WEFT_SEC(60);
    while (atomic_load(&started) < n) {
        ASSERT(weft_now() < dl);
        weft_yield();
    }
    weft_chan_close(gate);
    for (long i = 0; i < n; i++) {
        void *res;
        ASSERT_EQ(weft_join(tasks[i], &res), 0);
        ASSERT_EQ((long)res, i);
    }
    /* The runtime goes on: the stacks came back, spawns work again, and so do channels. */
    for (long i = 0; i < n && i < 1000; i++) {
        weft_spawn_opts o = {.stack_size = i % 2 ? 128 * 1024 : 0};
        ASSERT_EQ(weft_spawn_ex(&tasks[i], quick, (void *)i, &o), 0);
    }
    for (long i = 0; i < n && i < 1000; i++) {
        void *res;
        ASSERT_EQ(weft_join(tasks[i], &res), 0);
        ASSERT_EQ((long)res, i);
    }
    long v = 42, w = 0;
    ASSERT_EQ(weft_chan_send(box, &v), 0);
    ASSERT_EQ(weft_chan_recv(box, &w), 0);
    ASSERT_EQ(w, 42);
    weft_chan_unref(box);
    weft_chan_unref(gate);
    printf("    %ld coroutines spawned before WEFT_ENOMEM\n", n);
    fflush(stdout);
    return 0;
}

static void spawn_child(void *arg)
{
    (void)arg;
    tasks = calloc(MAX_SPAWN, sizeof *tasks);
    ASSERT(tasks != NULL);
    weft_config cfg = {.threads = 2};
    /* Room for the runtime, its threads' stacks and malloc arenas, and some hundreds of
     * coroutine stacks: then weft_spawn must say WEFT_ENOMEM. */
    limit_as(vm_size() + ((size_t)192 << 20));
    int r = weft_run(spawn_main, NULL, &cfg);
    _exit(r);
}

/* ---- weft_run under a tight limit -------------------------------------------------------- */

static int trivial_main(void *arg)
{
    (void)arg;
    weft_task t;
    ASSERT_EQ(weft_spawn(&t, quick, (void *)7), 0);
    void *r;
    ASSERT_EQ(weft_join(t, &r), 0);
    return (int)(long)r;
}

static void run_child(void *arg)
{
    (void)arg;
    /* A second worker needs an 8 MiB thread stack: with 4 MiB to spare it cannot start. */
    weft_config two = {.threads = 2};
    limit_as(vm_size() + ((size_t)4 << 20));
    int r = weft_run(trivial_main, NULL, &two);
    unlimit_as();
    ASSERT_EQ(r, WEFT_ENOMEM);
    /* main's own stack (512 MiB asked) cannot be mapped with 64 MiB to spare. */
    weft_config big = {.threads = 1, .stack_size = (size_t)512 << 20};
    limit_as(vm_size() + ((size_t)64 << 20));
    r = weft_run(trivial_main, NULL, &big);
    unlimit_as();
    ASSERT_EQ(r, WEFT_ENOMEM);
    /* Nothing of the failed runs is left behind: a normal run works. */
    ASSERT_EQ(weft_run(trivial_main, NULL, &two), 7);
    _exit(0);
}
#endif

/* ---- the mprotect guard budget ------------------------------------------------------------ */

static long read_long_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long v = -1;
    if (fscanf(f, "%ld", &v) != 1)
        v = -1;
    fclose(f);
    return v;
}

static long count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    ASSERT(f != NULL);
    long n = 0;
    int c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* Split a fresh mapping into 2 * pairs + 1 VMAs (every other page made inaccessible); how
 * many splits worked. */
static long make_mappings(long pairs)
{
    long page = sysconf(_SC_PAGESIZE);
    char *p = mmap(NULL, (size_t)(2 * pairs + 1) * (size_t)page, PROT_READ,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    ASSERT(p != MAP_FAILED);
    long done = 0;
    for (long i = 0; i < pairs; i++, done++)
        if (mprotect(p + (2 * i + 1) * page, (size_t)page, PROT_NONE) != 0)
            break;
    return done;
}

#define GUARDED 3000   /* coroutines with mprotect-guarded stacks: 6,000 mappings unbudgeted */
#define LEFT_FREE 4000 /* mappings the application leaves free before weft starts */

static int maps_main(void *arg)
{
    (void)arg;
    ASSERT_EQ(weft_chan_create(&gate, 0, 0), 0);
    long n = 0;
    for (; n < GUARDED; n++) {
        int r = weft_spawn(&tasks[n], parker, (void *)n);
        if (r != 0) { /* allowed: an error code, never an abort */
            ASSERT(r == WEFT_ENOMEM || r == WEFT_ESTACK);
            break;
        }
    }
    int64_t dl = weft_now() + WEFT_SEC(60);
    while (atomic_load(&started) < n) { /* every one has its stack */
        ASSERT(weft_now() < dl);
        weft_yield();
    }
    /* The application can still map: weft took at most half of what was free. */
    ASSERT_EQ(make_mappings(LEFT_FREE / 8), LEFT_FREE / 8);
    weft_chan_close(gate);
    for (long i = 0; i < n; i++)
        ASSERT_EQ(weft_join(tasks[i], NULL), 0);
    weft_chan_unref(gate);
    printf("    %ld guarded coroutines parked, the application mapped %d more\n", n, LEFT_FREE / 4);
    fflush(stdout);
    return 0;
}

static void maps_child(void *arg)
{
    long max = *(long *)arg;
    tasks = calloc(GUARDED, sizeof *tasks);
    ASSERT(tasks != NULL);
    setenv("WEFT_STACK_GUARD", "mprotect", 1);
    /* Use up all but LEFT_FREE of the process's mappings. */
    long want = (max - count_maps() - LEFT_FREE) / 2;
    ASSERT_EQ(make_mappings(want), want);
    weft_config cfg = {.threads = 2};
    _exit(weft_run(maps_main, NULL, &cfg));
}

/* ---- sub-page stacks next to mprotect guards ---------------------------------------------- */

/* Kernels before 6.13 have no MADV_GUARD_INSTALL: after the first guarded stack the mode is
 * mprotect, and a sub-page stack carved then must not get a "guard" (its own memory). */
static void *small_worker(void *arg)
{
    weft_sleep(WEFT_USEC(10));
    return arg;
}

static int small_main(void *arg)
{
    (void)arg;
    weft_task t[300];
    for (long round = 0; round < 3; round++) {
        for (long i = 0; i < 300; i++) {
            weft_spawn_opts o = {.stack_size = i % 3 ? 1024 : 0};
            ASSERT_EQ(weft_spawn_ex(&t[i], small_worker, (void *)i, &o), 0);
        }
        for (long i = 0; i < 300; i++) {
            void *r;
            ASSERT_EQ(weft_join(t[i], &r), 0);
            ASSERT_EQ((long)r, i);
        }
    }
    return 0;
}

static void small_child(void *arg)
{
    (void)arg;
    setenv("WEFT_STACK_GUARD", "mprotect", 1);
    weft_config cfg = {.threads = 2};
    _exit(weft_run(small_main, NULL, &cfg));
}

/* ---- a timer record that cannot be allocated --------------------------------------------- */

#if !SANITIZED
/* calloc fails while this is set (weft allocates timer records with calloc). */
static _Atomic int fail_calloc;
extern void *__libc_calloc(size_t n, size_t size);
void *calloc(size_t n, size_t size)
{
    if (atomic_load_explicit(&fail_calloc, memory_order_relaxed))
        return NULL;
    return __libc_calloc(n, size);
}

/* realloc fails while this is set (libev allocates through weft's allocator, which uses
 * realloc). */
static _Atomic int fail_realloc;
extern void *__libc_realloc(void *p, size_t size);
void *realloc(void *p, size_t size)
{
    if (atomic_load_explicit(&fail_realloc, memory_order_relaxed) && size)
        return NULL;
    return __libc_realloc(p, size);
}

static int seven(void *arg)
{
    (void)arg;
    return 7;
}

/* libev cannot allocate a worker's loop: weft_run returns WEFT_ENOMEM (libev itself would
 * abort), and a later run works. */
static void evloop_child(void *arg)
{
    (void)arg;
    weft_config cfg = {.threads = 2};
    atomic_store(&fail_realloc, 1);
    int r = weft_run(seven, NULL, &cfg);
    atomic_store(&fail_realloc, 0);
    ASSERT_EQ(r, WEFT_ENOMEM);
    ASSERT_EQ(weft_run(seven, NULL, &cfg), 7);
    _exit(0);
}

#define SLEEPERS 2000
static _Atomic long slept_enomem;

static void *sleeper(void *arg)
{
    (void)arg;
    ASSERT_EQ(weft_chan_recv(gate, NULL), 0);
    int r = weft_sleep(WEFT_SEC(60)); /* ended by a cancel, or refused */
    if (r == WEFT_ENOMEM)
        atomic_fetch_add(&slept_enomem, 1);
    return (void *)(long)r;
}

static int timer_main(void *arg)
{
    (void)arg;
    ASSERT_EQ(weft_chan_create(&gate, 0, 0), 0);
    ASSERT_EQ(weft_sleep(WEFT_USEC(10)), 0); /* the worker has timer records now */
    for (long i = 0; i < SLEEPERS; i++)
        ASSERT_EQ(weft_spawn(&tasks[i], sleeper, NULL), 0);
    atomic_store(&fail_calloc, 1);
    /* Each sleeper leaves the gate and sleeps: those past the worker's free records get
     * WEFT_ENOMEM from weft_sleep. */
    long go = 0;
    for (long i = 0; i < SLEEPERS; i++) {
        ASSERT_EQ(weft_chan_send(gate, &go), 0);
    }
    int64_t dl = weft_now() + WEFT_SEC(60);
    while (atomic_load(&slept_enomem) == 0) {
        ASSERT(weft_now() < dl);
        weft_yield();
    }
    atomic_store(&fail_calloc, 0);
    long enomem = 0;
    for (long i = 0; i < SLEEPERS; i++) {
        weft_cancel(tasks[i]);
        void *r;
        ASSERT_EQ(weft_join(tasks[i], &r), 0);
        ASSERT((long)r == WEFT_ECANCELED || (long)r == WEFT_ENOMEM);
        enomem += (long)r == WEFT_ENOMEM;
    }
    ASSERT_EQ(enomem, atomic_load(&slept_enomem));
    ASSERT_GT(enomem, 0);
    ASSERT_LT(enomem, SLEEPERS);
    printf("    %ld of %d sleeps refused with WEFT_ENOMEM\n", enomem, SLEEPERS);
    fflush(stdout);
    /* Deadlines work again. */
    ASSERT_EQ(weft_sleep(WEFT_USEC(10)), 0);
    weft_chan_unref(gate);
    return 0;
}

static void timer_child(void *arg)
{
    (void)arg;
    tasks = __libc_calloc(SLEEPERS, sizeof *tasks);
    ASSERT(tasks != NULL);
    weft_config cfg = {.threads = 1};
    _exit(weft_run(timer_main, NULL, &cfg));
}
#endif

int main(void)
{
    /* The children check that no report of any kind is printed; a stall report is not what
     * they test, and carving thousands of guarded stacks legitimately keeps a worker busy for
     * 100 ms on a loaded machine. */
    setenv("WEFT_STALL_MS", "-1", 1);
    expect_child_ok("twenty distinct stack sizes", sizes_child, NULL);
    expect_child_ok("sub-page stacks with mprotect guards", small_child, NULL);
#if SANITIZED
    printf("test_oom: RLIMIT_AS and calloc-failure cases skipped under ASan/TSan (they "
           "reserve huge address space and interpose calloc)\n");
    fflush(stdout);
#else
    expect_child_ok("spawn under RLIMIT_AS until WEFT_ENOMEM", spawn_child, NULL);
    expect_child_ok("weft_run under a tight RLIMIT_AS", run_child, NULL);
    expect_child_ok("timer record allocation failure", timer_child, NULL);
    expect_child_ok("libev cannot allocate a worker's loop", evloop_child, NULL);
#endif
    long max = read_long_file("/proc/sys/vm/max_map_count");
    if (TEST_TSAN)
        printf("test_oom: map-budget case skipped under TSan (it maps a trace per fiber)\n");
    else if (max > 0 && max <= 1000000)
        expect_child_ok("mprotect guards leave mappings to the application", maps_child, &max);
    else
        printf("test_oom: map-budget case skipped (vm.max_map_count %ld)\n", max);
    fflush(stdout);
    TEST_PASS("test_oom", checks);
    return 0;
}
