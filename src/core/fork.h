/* SPDX-License-Identifier: MIT */
/* fork.h — floor 6 (tools): fork() while weft is in use (fork.c). */
#ifndef WEFT_FORK_H
#define WEFT_FORK_H

#include <stdbool.h>

/* pthread_atfork handlers, registered by the first weft_run. PREPARE takes each module's
 * process-wide locks (so the child's copies of the structures they guard are consistent),
 * PARENT releases them, CHILD leaves each module fresh and unstarted: the child has none of
 * the parent's threads, so nothing of the parent's runtime can be used there.
 * run_child: the roof's own part of the CHILD step (run.c forgets its runtime), passed down
 * because nothing may name run.c; on_coro_stack: the fork was made by a coroutine. Only
 * the first call's run_child is kept. 0, or WEFT_ENOMEM. */
int weft__fork_init(void (*run_child)(bool on_coro_stack));

#endif
