/* SPDX-License-Identifier: MIT */
/* test_stack.c — stack overflow is detected and reported, never silent: in a child process,
 * a coroutine recurses past its stack; the child must die with SIGABRT after printing
 *   weft: stack overflow in coroutine <id> "<name>" (stack <N> bytes)
 * once with each guard kind (MADV_GUARD_INSTALL zone, mprotect zone, canary checked at
 * every switch). Large frames: a coroutine with a 68 KiB or 128 KiB local array on the
 * default 64 KiB stack, right above a parked neighbour — built with -fstack-clash-protection
 * (which the weft target gives this file) it faults in the guard before writing anything,
 * and the neighbour's locals are intact when the fault arrives; built without it
 * (stack_frames.c), a 68 KiB frame still faults in the 64 KiB guard zone, and a 128 KiB one
 * that jumps it is reported at its next switch, or at its next fault wherever that is. An
 * unnamed coroutine is named by its entry function. Also: a SIGSEGV that is not a guard hit
 * still reaches the application's own handler (weft passes it on), and stacks are reused
 * (warm) rather than remapped. */
#include "harness.h"
#include "stack_frames.h"
#include <weft.h>

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static long checks;

/* Segmented builds: the frames must not grow onto a new segment (they are the unsplit code
 * whose overflow the guard must catch). */
#if defined(WEFT_SEGMENTED_STACKS)
#define NOSPLIT __attribute__((no_split_stack))
#else
#define NOSPLIT
#endif


#if !defined(__SANITIZE_ADDRESS__)
static int depth_yield;
static volatile long limit = -1; /* never reached: recurse until the stack is exhausted */
#if defined(WEFT_SEGMENTED_STACKS)
__attribute__((no_split_stack)) /* unsplit code: growth is impossible, the guard must catch it */
#endif
static void *
recurse(void *arg)
{
    volatile char pad[200];
    long n = (long)arg;
    pad[0] = (char)n;
    if (depth_yield)
        weft_yield(); /* a switch at every level: the canary is checked at each */
    if (n != limit)
        recurse((void *)(n + 1));
    return (void *)(long)pad[0];
}

/* In the child, before its runtime starts: the guard mode under test. */
static void guard_mode(void *arg)
{
    const char *mode = arg;
    setenv("WEFT_STACK_GUARD", mode, 1);
    depth_yield = strcmp(mode, "canary") == 0;
}

/* WEFT_TEST_NO_MADVISE_GUARD=1 (the aarch64 test preset): the madvise guard cases are
 * skipped. qemu-user (7.2) answers madvise advice it does not know, MADV_GUARD_INSTALL among
 * them, with success and installs nothing, so there is no guard to fault in; the mprotect and
 * canary cases still run there. */
static int mode_skipped(const char *mode)
{
    static int told;
    if (strcmp(mode, "madvise") != 0 || !getenv("WEFT_TEST_NO_MADVISE_GUARD"))
        return 0;
    if (!told++)
        printf("  madvise guard cases skipped (WEFT_TEST_NO_MADVISE_GUARD)\n");
    return 1;
}

static void expect_overflow(const char *mode)
{
    if (mode_skipped(mode))
        return;
    char buf[4096];
    struct test_overflow o = {recurse, 16384, "deep-one", guard_mode, (void *)mode};
    int status = test_overflow_in_child(&o, buf, sizeof buf);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
        fprintf(stderr, "mode %s: child status %#x, output:\n%s\n", mode, status, buf);
    ASSERT(WIFSIGNALED(status));
    ASSERT_EQ(WTERMSIG(status), SIGABRT);
    const char *msg = strstr(buf, "weft: stack overflow in coroutine ");
    if (!msg)
        fprintf(stderr, "mode %s: output was:\n%s\n", mode, buf);
    ASSERT(msg != NULL);
    unsigned long long id = 0;
    char name[64] = "";
    unsigned long size = 0;
    ASSERT_EQ(sscanf(msg, "weft: stack overflow in coroutine %llu \"%63[^\"]\" (stack %lu bytes)",
                     &id, name, &size),
              3);
    ASSERT(id > 0);
    ASSERT(strcmp(name, "deep-one") == 0);
    ASSERT_EQ(size, 16384);
    checks += 6;
    printf("  %s: %.*s", mode, (int)strcspn(msg, "\n") + 1, msg);
    fflush(stdout);
}

/* ---- large frames ------------------------------------------------------------------------ */

enum frame_kind { PROBED68, PROBED128, UNPROBED68, UNPROBED128, UNPROBED128_FAULT };
struct big {
    const char *mode; /* WEFT_STACK_GUARD */
    enum frame_kind frame;
    const char *name;     /* NULL: unnamed, reported by its entry function */
    int check_neighbours; /* the fault must come before any neighbour is touched */
};

#define NEIGHBOURS 4
#define KEEP 8192
static volatile unsigned char *nb_keep[NEIGHBOURS]; /* each neighbour's pattern, on its stack */
static _Atomic int nb_parked;
static weft_chan *nb_gate, *big_go;
static _Atomic int big_started;
static struct sigaction weft_segv; /* weft's handler: ours runs first, then hands over */

static unsigned char pattern(long who, size_t i)
{
    return (unsigned char)(0xa5 ^ (i * 7) ^ (size_t)who);
}

NOSPLIT static void *neighbour(void *arg)
{
    long who = (long)arg;
    volatile unsigned char keep[KEEP];
    for (size_t i = 0; i < KEEP; i++)
        keep[i] = pattern(who, i);
    nb_keep[who] = keep;
    atomic_fetch_add(&nb_parked, 1);
    weft_chan_recv(nb_gate, NULL); /* parked until the child dies */
    return (void *)(long)keep[0];
}

static void say(const char *s)
{
    ssize_t r = write(2, s, strlen(s));
    (void)r;
}

/* Runs at the fault, before weft's report: are the neighbours' locals as they left them? */
static void check_then_weft(int sig, siginfo_t *si, void *uc)
{
    int bad = 0;
    for (long n = 0; n < NEIGHBOURS; n++)
        for (size_t i = 0; i < KEEP; i++)
            bad += nb_keep[n][i] != pattern(n, i);
    say(bad ? "test: a neighbour was corrupted before the fault\n"
            : "test: neighbours intact at the fault\n");
    weft_segv.sa_sigaction(sig, si, uc);
}

NOSPLIT static __attribute__((noinline)) long frame68_probed(void)
{
    char buf[68 * 1024];
    memset(buf, 1, sizeof buf);
    weft_yield(); /* canary mode: no guard zone, the switch sees it */
    return buf[0] + buf[sizeof buf - 1];
}

NOSPLIT static __attribute__((noinline)) long frame128_probed(void)
{
    char buf[128 * 1024];
    memset(buf, 1, sizeof buf);
    weft_yield();
    return buf[0] + buf[sizeof buf - 1];
}

/* The coroutine with the big frame (external and exported with -rdynamic, so the report can
 * name it when the coroutine has no name). */
void *big_frame_entry(void *arg);
NOSPLIT void *big_frame_entry(void *arg)
{
    const struct big *b = arg;
    atomic_store(&big_started, 1);
    weft_chan_recv(big_go, NULL); /* until every neighbour has its stack and parks */
    /* The stack right below this one must be a neighbour's: that is where the frame lands. */
    char here;
    int below = 0;
    for (int n = 0; n < NEIGHBOURS; n++)
        below |= (const char *)nb_keep[n] < &here && &here - (const char *)nb_keep[n] < (256 << 10);
    if (!below) {
        say("test: no neighbour right below the big frame's stack\n");
        _exit(5);
    }
    switch (b->frame) {
    case PROBED68:
        return (void *)frame68_probed();
    case PROBED128:
        return (void *)frame128_probed();
    case UNPROBED68:
        return (void *)frame68_unprobed();
    case UNPROBED128_FAULT:
        return (void *)frame128_unprobed_fault();
    default:
        return (void *)frame128_unprobed();
    }
}

static int big_main(void *arg)
{
    const struct big *b = arg;
    ASSERT_EQ(weft_chan_create(&nb_gate, 0, 0), 0);
    ASSERT_EQ(weft_chan_create(&big_go, 0, 0), 0);
    /* Explicit 64 KiB stacks (segmented builds default to 2 KiB). Half the neighbours take
     * their stacks before the big frame's coroutine, half after: stacks come in ascending
     * order from a worker's cache and descending from the pool, and either way one neighbour
     * is right below it. */
    weft_spawn_opts no = {.stack_size = WEFT_STACK_DEFAULT};
    weft_spawn_opts o = {.stack_size = WEFT_STACK_DEFAULT, .name = b->name};
    weft_task t;
    for (long n = 0; n < NEIGHBOURS / 2; n++)
        ASSERT_EQ(weft_spawn_ex(NULL, neighbour, (void *)n, &no), 0);
    WAIT_FOR(atomic_load(&nb_parked) == NEIGHBOURS / 2);
    ASSERT_EQ(weft_spawn_ex(&t, big_frame_entry, (void *)b, &o), 0);
    WAIT_FOR(atomic_load(&big_started));
    for (long n = NEIGHBOURS / 2; n < NEIGHBOURS; n++)
        ASSERT_EQ(weft_spawn_ex(NULL, neighbour, (void *)n, &no), 0);
    WAIT_FOR(atomic_load(&nb_parked) == NEIGHBOURS);
    if (b->check_neighbours) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = check_then_weft;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        ASSERT_EQ(sigaction(SIGSEGV, &sa, &weft_segv), 0);
        ASSERT(weft_segv.sa_flags & SA_SIGINFO); /* weft's handler is installed */
    }
    ASSERT_EQ(weft_chan_send(big_go, NULL), 0);
    weft_join(t, NULL);
    say("test: the big frame returned\n");
    return 0;
}

static void big_child(void *arg)
{
    const struct big *b = arg;
    setenv("WEFT_STACK_GUARD", b->mode, 1);
    weft_config one = {.threads = 1}; /* one worker: the neighbours take consecutive stacks */
    _exit(weft_run(big_main, arg, &one) == 0 ? 0 : 3);
}

static void expect_big_frame(const struct big *b, const char *label)
{
    if (mode_skipped(b->mode))
        return;
    char buf[8192];
    int status = test_child_stderr(big_child, (void *)b, buf, sizeof buf);
    const char *msg = strstr(buf, "weft: stack overflow in coroutine ");
    char want[96];
    if (b->name)
        snprintf(want, sizeof want, "\"%s\" (stack 65536 bytes)", b->name);
    else
        snprintf(want, sizeof want, "(entry big_frame_entry) (stack 65536 bytes)");
    bool ok = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && msg && strstr(msg, want) &&
              (!b->check_neighbours || strstr(buf, "test: neighbours intact at the fault\n"));
    if (!ok)
        fprintf(stderr, "%s (%s): child status %#x, expected a report with '%s'%s; output:\n%s\n",
                label, b->mode, status, want, b->check_neighbours ? " after intact neighbours" : "",
                buf);
    CHECK(ok);
    printf("  %s, %s: %.*s", label, b->mode, msg ? (int)strcspn(msg, "\n") + 1 : 0, msg);
    fflush(stdout);
}

static void expect_big_frames(void)
{
    static const char *const modes[] = {"madvise", "mprotect"};
    for (int m = 0; m < 2; m++) {
        struct big p68 = {modes[m], PROBED68, "big-68k", 1};
        struct big p128 = {modes[m], PROBED128, NULL, 1};
        struct big u68 = {modes[m], UNPROBED68, "unprobed-68k", 1};
        struct big u128 = {modes[m], UNPROBED128, "unprobed-128k", 0};
        expect_big_frame(&p68, "68 KiB frame, probed");
        expect_big_frame(&p128, "128 KiB frame, probed");
        expect_big_frame(&u68, "68 KiB frame, unprobed");
#if !defined(WEFT_SEGMENTED_STACKS)
        /* (Segmented builds: the switch's own split code, called with the stack pointer
         * below the limit, moves to a new segment first — it looks like growth.) */
        expect_big_frame(&u128, "128 KiB frame, unprobed");
#else
        (void)u128;
#endif
    }
    /* No guard zone at all: the switch inside the frame sees the stack pointer. */
    struct big c68 = {"canary", PROBED68, "canary-68k", 0};
    struct big c128 = {"canary", PROBED128, "canary-128k", 0};
    expect_big_frame(&c68, "68 KiB frame");
    expect_big_frame(&c128, "128 KiB frame");
    /* A frame that jumped the guard zone (or the gap) and then faulted far from its stack
     * pointer, before any switch: the fault is reported as this coroutine's overflow. */
    static const char *const all[] = {"madvise", "mprotect", "canary"};
    for (int m = 0; m < 3; m++) {
        struct big f128 = {all[m], UNPROBED128_FAULT, "jumped-then-null", 0};
        expect_big_frame(&f128, "128 KiB frame, unprobed, then a null write");
    }
}

/* A fault that is not a guard hit goes to the handler installed before weft. */
static volatile sig_atomic_t app_handler_ran;
static void app_segv(int sig)
{
    (void)sig;
    app_handler_ran = 1;
    _exit(42);
}

static void *bad_pointer(void *arg)
{
    (void)arg;
    int *volatile p = (int *)16;
    *p = 1;
    return NULL;
}

static int passon_main(void *arg)
{
    (void)arg;
    weft_task t;
    weft_spawn(&t, bad_pointer, NULL);
    weft_join(t, NULL);
    return 0;
}

static void expect_passed_on(void)
{
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        signal(SIGSEGV, app_segv);
        weft_run(passon_main, NULL, NULL);
        _exit(0);
    }
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 42);
    checks += 2;
}

#endif

static void *touch(void *arg)
{
    volatile char buf[1024];
    buf[0] = 1;
    return (void *)(long)buf[0];
}

static int reuse_main(void *arg)
{
    (void)arg;
    /* Spawn and join one at a time: the stack cache hands back the same warm stacks, so
     * the address space reserved for stacks stays flat. */
    weft_stats before, after;
    weft_task t;
    weft_spawn(&t, touch, NULL);
    weft_join(t, NULL);
    ASSERT_EQ(weft_stats_get(&before), 0);
    for (int i = 0; i < 10000; i++) {
        ASSERT_EQ(weft_spawn(&t, touch, NULL), 0);
        ASSERT_EQ(weft_join(t, NULL), 0);
    }
    ASSERT_EQ(weft_stats_get(&after), 0);
    ASSERT_EQ(after.stack_bytes, before.stack_bytes);
    checks += 2;
    return 0;
}

int main(void)
{
#if defined(__SANITIZE_ADDRESS__)
    /* ASan owns SIGSEGV and reports overflows itself; the guard-report path is tested in
     * the other builds. */
    printf("test_stack: overflow reports skipped under ASan\n");
#else
    expect_overflow("madvise");
    expect_overflow("mprotect");
    expect_overflow("canary");
    expect_big_frames();
    expect_passed_on();
#endif
    weft_config one = {.threads = 1};
    ASSERT_EQ(weft_run(reuse_main, NULL, &one), 0);
    TEST_PASS("test_stack", checks);
    return 0;
}
