/* SPDX-License-Identifier: MIT */
/* blocking.h — floor 5 (primitives): the blocking pool (blocking.c), weft_blocking's
 * threads. */
#ifndef WEFT_BLOCKING_H
#define WEFT_BLOCKING_H

/* weft_run's end (run.c): wait for the jobs still running (their records live in abandoned
 * callers' frames); queued ones never run. */
void weft__blocking_shutdown(void);
/* fork (fork.c): the pool's lock around fork; the child's pool is empty. */
void weft__blocking_atfork(int phase);
/* The blocking pool's jobs queued, its threads, and those not idle (running a job or about
 * to): for weft_dump and the deadlock check (hang.h). Any thread; takes the pool's lock. */
void weft__blocking_depth(int *queued, int *threads, int *running);

#endif
