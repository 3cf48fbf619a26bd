/* SPDX-License-Identifier: MIT */
/* fork.c — fork() while weft is in use: the child starts with a fresh, unstarted weft.
 *
 * After fork() the child has one thread, the one that forked: none of the parent's workers
 * or blocking-pool threads exist there. Without these handlers the child inherits a runtime
 * that looks alive (weft_run: WEFT_EBUSY forever; a spawn queues a coroutine no worker will
 * ever run, so its join hangs) and possibly a lock held by a thread that is gone.
 *
 * So (pthread_atfork, registered by the first weft_run or weft_signal_notify): before the fork, the
 * forking thread takes every process-wide lock of weft (signal registrations — first: the delivery
 * thread may hold them while a send reaches the gate's lock — then the gate's parker list,
 * coroutine-local keys, control-block pool, stack pool, blocking pool, in that order — weft code
 * that holds two of them takes them in this order, so the prepare step cannot deadlock), which
 * makes the structures they guard consistent in the child; the parent releases them; so does the
 * child (its one thread is the one that took them), after
 * forgetting the parent's runtime:
 * control blocks back to the pool with their ids retired (handles inherited from the parent
 * get WEFT_ESTATE), the parent's stacks forgotten (left mapped: the forking thread may hold
 * pointers into them), the pool empty, signal handlers restored, no runtime running. The
 * child may then call weft_run afresh.
 *
 * Forked from a coroutine, the child runs on that coroutine's stack with no scheduler under
 * it: the child may exec or _exit (the fork+exec pattern works),
 * but not return from the coroutine's function, and weft_run returns WEFT_ESTATE there.
 * Objects made in the parent (channels, mutexes, groups) must not be used in the child: a
 * lock inside one may have been held by a parent's thread. */
#define _GNU_SOURCE
#include "gate.h"
#include "runtime.h"

#include <pthread.h>

static void prepare(void)
{
    weft__signal_atfork(WEFT_FORK_PREPARE);
    weft__gate_atfork(WEFT_FORK_PREPARE);
    weft__coro_atfork(WEFT_FORK_PREPARE);
    weft__stack_atfork(WEFT_FORK_PREPARE);
    weft__blocking_atfork(WEFT_FORK_PREPARE);
}

static void parent(void)
{
    weft__blocking_atfork(WEFT_FORK_PARENT);
    weft__stack_atfork(WEFT_FORK_PARENT);
    weft__coro_atfork(WEFT_FORK_PARENT);
    weft__gate_atfork(WEFT_FORK_PARENT);
    weft__signal_atfork(WEFT_FORK_PARENT);
}

static void child(void)
{
    /* A worker thread of the parent (only coroutines run user code there): we are on a
     * coroutine's stack. */
    bool on_coro_stack = weft__tls_worker != NULL;
    weft__blocking_atfork(WEFT_FORK_CHILD);
    weft__stack_atfork(WEFT_FORK_CHILD);
    weft__coro_atfork(WEFT_FORK_CHILD);
    weft__run_atfork_child(on_coro_stack);
    weft__gate_atfork(WEFT_FORK_CHILD);
    weft__signal_atfork(WEFT_FORK_CHILD);
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int install_err;

static void install(void)
{
    install_err = pthread_atfork(prepare, parent, child);
}

int weft__fork_init(void)
{
    pthread_once(&once, install);
    return install_err ? WEFT_ENOMEM : 0; /* pthread_atfork fails only for want of memory */
}
