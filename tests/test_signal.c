/* SPDX-License-Identifier: MIT */
/* test_signal.c — weft_signal_notify / weft_signal_stop: signals received as channel values
 * by coroutines and plain threads; several signals and channels; a full channel drops; stop
 * restores the previous disposition (a handler, or SIG_IGN); bad arguments. */
#define _GNU_SOURCE
#include "harness.h"
#include <sys/wait.h>
#include <unistd.h>
#include <weft.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

static _Atomic long checks;
static _Atomic int old_handler_calls;

static void old_handler(int sig)
{
    (void)sig;
    atomic_fetch_add(&old_handler_calls, 1);
}

static weft_chan *mk(size_t cap)
{
    weft_chan *ch;
    ASSERT_EQ(weft_chan_create(&ch, sizeof(int), cap), 0);
    return ch;
}

/* Receive one signal number (a safety deadline against a hang, not a timing assumption). */
static int recv_sig(weft_chan *ch)
{
    int v = -1;
    ASSERT_EQ(weft_chan_recv_until(ch, &v, weft_after(WEFT_SEC(30))), 0);
    return v;
}

static void test_args(void)
{
    weft_chan *ch = mk(1), *wide;
    ASSERT_EQ(weft_chan_create(&wide, sizeof(long), 1), 0);
    CHECK_EQ(weft_signal_notify(NULL, SIGUSR1), WEFT_EINVAL);
    CHECK_EQ(weft_signal_notify(wide, SIGUSR1), WEFT_EINVAL); /* elements are ints */
    const int bad[] = {0, -1, 65, 1000, SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE, SIGILL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ(weft_signal_notify(ch, bad[i]), WEFT_EINVAL);
    CHECK_EQ(weft_signal_stop(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_signal_stop(ch), 0); /* not registered: nothing to do */
    weft_chan_unref(ch);
    weft_chan_unref(wide);
}

static void *raise_from_thread(void *arg)
{
    ASSERT_EQ(kill(getpid(), (int)(intptr_t)arg), 0);
    return NULL;
}

static void *recv_on_thread(void *arg)
{
    return (void *)(intptr_t)recv_sig(arg);
}

static void test_deliver(void)
{
    /* The test's own handler is the previous disposition: it must not run while a channel
     * is registered, and must be back after the stop. */
    struct sigaction sa, saved;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = old_handler;
    sigemptyset(&sa.sa_mask);
    ASSERT_EQ(sigaction(SIGUSR1, &sa, &saved), 0);
    atomic_store(&old_handler_calls, 0);
    /* A background job's SIGINT is ignored; a registered signal is delivered anyway. */
    ASSERT(signal(SIGUSR2, SIG_IGN) != SIG_ERR);

    weft_chan *ch = mk(4);
    CHECK_EQ(weft_signal_notify(ch, SIGUSR1), 0);
    CHECK_EQ(weft_signal_notify(ch, SIGUSR1), 0); /* twice: one registration */
    CHECK_EQ(weft_signal_notify(ch, SIGUSR2), 0);

    /* raise() from a coroutine: the handler runs on this worker before raise returns. */
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(recv_sig(ch), SIGUSR1);
    CHECK_EQ(raise(SIGUSR2), 0);
    CHECK_EQ(recv_sig(ch), SIGUSR2);
    /* kill() from a plain thread (the kernel picks the thread), received by a plain thread */
    pthread_t th, rth;
    ASSERT_EQ(pthread_create(&rth, NULL, recv_on_thread, ch), 0);
    ASSERT_EQ(pthread_create(&th, NULL, raise_from_thread, (void *)(intptr_t)SIGUSR1), 0);
    void *got;
    ASSERT_EQ(pthread_join(th, NULL), 0);
    ASSERT_EQ(pthread_join(rth, &got), 0);
    CHECK_EQ((intptr_t)got, SIGUSR1);
    CHECK_EQ(atomic_load(&old_handler_calls), 0);

    /* Two channels for one signal: each gets it, in the order of registration. A full
     * channel drops: `full` (capacity 1) is registered before `big`, so once `big` has
     * signal k, `full` has been offered k too. */
    weft_chan *full = mk(1), *big = mk(8);
    CHECK_EQ(weft_signal_notify(full, SIGUSR1), 0);
    CHECK_EQ(weft_signal_notify(big, SIGUSR1), 0);
    for (int k = 0; k < 3; k++) {
        CHECK_EQ(raise(SIGUSR1), 0);
        CHECK_EQ(recv_sig(big), SIGUSR1);
        CHECK_EQ(recv_sig(ch), SIGUSR1);
    }
    CHECK_EQ(weft_chan_len(full), 1); /* the first; the next two were dropped */

    /* Stop: `full` and `big` no longer receive; `ch` still does. */
    CHECK_EQ(weft_signal_stop(full), 0);
    CHECK_EQ(weft_signal_stop(big), 0);
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(recv_sig(ch), SIGUSR1);
    CHECK_EQ(weft_chan_len(big), 0);
    CHECK_EQ(weft_chan_len(full), 1);
    CHECK_EQ(atomic_load(&old_handler_calls), 0);

    /* The last stop restores the previous dispositions: our handler runs again (raise runs
     * it before returning), SIGUSR2 is ignored again (raising it does not kill us), and the
     * channel gets nothing (the delivery thread was joined: nothing is in flight). */
    CHECK_EQ(weft_signal_stop(ch), 0);
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(atomic_load(&old_handler_calls), 1);
    CHECK_EQ(raise(SIGUSR2), 0);
    int v;
    CHECK_EQ(weft_chan_try_recv(ch, &v), WEFT_EAGAIN);

    /* Registering again starts over. */
    CHECK_EQ(weft_signal_notify(big, SIGUSR2), 0);
    CHECK_EQ(raise(SIGUSR2), 0);
    CHECK_EQ(recv_sig(big), SIGUSR2);
    CHECK_EQ(weft_signal_stop(big), 0);

    weft_chan_unref(ch);
    weft_chan_unref(full);
    weft_chan_unref(big);
    ASSERT_EQ(sigaction(SIGUSR1, &saved, NULL), 0);
    ASSERT(signal(SIGUSR2, SIG_DFL) != SIG_ERR);
}

/* A coroutine waiting for a signal in a select, next to other work: the server pattern. */
static void *stopper(void *arg)
{
    CHECK_EQ(raise(SIGTERM), 0);
    (void)arg;
    return NULL;
}

static void test_select_shutdown(void)
{
    weft_chan *sig = mk(1), *work = mk(0);
    CHECK_EQ(weft_signal_notify(sig, SIGTERM), 0);
    CHECK_EQ(weft_signal_notify(sig, SIGINT), 0);
    weft_task t;
    CHECK_EQ(weft_spawn(&t, stopper, NULL), 0);
    int v = 0, w = 0;
    weft_case cs[2] = {{work, WEFT_OP_RECV, &w, 0}, {sig, WEFT_OP_RECV, &v, 0}};
    CHECK_EQ(weft_select(cs, 2, weft_after(WEFT_SEC(30))), 1);
    CHECK_EQ(v, SIGTERM);
    CHECK_EQ(weft_join(t, NULL), 0);
    CHECK_EQ(weft_signal_stop(sig), 0);
    weft_chan_unref(sig);
    weft_chan_unref(work);
}

/* A child forked while a signal is registered gets the old disposition back: with no
 * delivery thread and no use of the parent's channels, our handler would swallow the
 * signal (a SIGTERM would no longer end the child). The child raises the signal and must
 * die of it. */
static void test_fork_child(void)
{
    weft_chan *sig = mk(1);
    CHECK_EQ(weft_signal_notify(sig, SIGUSR2), 0);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        struct sigaction sa;
        sigaction(SIGUSR2, NULL, &sa);
        if (sa.sa_handler != SIG_DFL)
            _exit(3);
        raise(SIGUSR2);
        _exit(4); /* not reached when the default action ran */
    }
    int st = 0;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFSIGNALED(st));
    CHECK_EQ(WIFSIGNALED(st) ? WTERMSIG(st) : -WEXITSTATUS(st), SIGUSR2);
    /* the parent still has its registration */
    CHECK_EQ(raise(SIGUSR2), 0);
    CHECK_EQ(recv_sig(sig), SIGUSR2);
    CHECK_EQ(weft_signal_stop(sig), 0);
    weft_chan_unref(sig);
}

static int app(void *arg)
{
    (void)arg;
    test_args();
    test_deliver();
    test_select_shutdown();
    test_fork_child();
    return 0;
}

int main(void)
{
    int threads[] = {1, 2};
    for (int i = 0; i < 2; i++) {
        weft_config cfg = {.threads = threads[i]};
        ASSERT_EQ(weft_run(app, NULL, &cfg), 0);
    }
    TEST_PASS("test_signal", checks);
    return 0;
}
