/* test_stack.c — stack overflow is detected and reported, never silent: in a child process,
 * a coroutine recurses past its stack; the child must die with SIGABRT after printing
 *   weft: stack overflow in coroutine <id> "<name>" (stack <N> bytes)
 * once with each guard kind (MADV_GUARD_INSTALL page, mprotect page, canary checked at
 * every switch). Also: a SIGSEGV that is not a guard hit still reaches the application's
 * own handler (weft passes it on), and stacks are reused (warm) rather than remapped. */
#include "harness.h"
#include <weft.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static long checks;

#if !defined(__SANITIZE_ADDRESS__)
static int depth_yield;
static volatile long limit = -1; /* never reached: recurse until the stack is exhausted */
#if defined(WEFT_SEGMENTED_STACKS)
__attribute__((no_split_stack)) /* unsplit code: growth is impossible, the guard must catch it */
#endif
static void *recurse(void *arg)
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

static void expect_overflow(const char *mode)
{
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
    expect_passed_on();
#endif
    weft_config one = {.threads = 1};
    ASSERT_EQ(weft_run(reuse_main, NULL, &one), 0);
    TEST_PASS("test_stack", checks);
    return 0;
}
