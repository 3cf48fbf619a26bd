/* SPDX-License-Identifier: MIT */
/* weft/trace.h — the execution trace (included by weft.h). */
#ifndef WEFT_TRACE_H
#define WEFT_TRACE_H
#ifdef __cplusplus
extern "C" {
#endif

/* Record what the scheduler does to the file `path`: every spawn, run, yield, park (with
 * what it waits on), wake (by whom: a coroutine, a timer or fd of the worker's loop, or a
 * thread), steal, hop, fd wait, blocking job, timer, stall report and worker sleep, per
 * worker, with nanosecond CLOCK_MONOTONIC timestamps. Setting $WEFT_TRACE=path does the
 * same for every weft_run (each run rewrites the file; a path that cannot be opened prints
 * "weft: WEFT_TRACE=path: ..." to stderr and the run goes on untraced).
 *
 * The file is a compact binary (32 bytes an event, written in blocks by each worker from
 * its own buffer); `scripts/weft-trace.py FILE` turns it into a Chrome/Perfetto trace-event
 * JSON (--json, for ui.perfetto.dev or chrome://tracing), an SVG timeline (--svg) and a text
 * summary (README "Seeing inside: traces").
 *
 * Called before weft_run, the trace starts with the next run; called while one runs, at
 * once. It ends at weft_trace_stop or at the end of weft_run, whichever comes first. Any
 * thread or coroutine. 0; WEFT_EINVAL (path NULL or empty); WEFT_ESTATE (a trace is already
 * recording or armed); WEFT_ENOMEM; or the negative errno of opening the file (-EACCES,
 * -ENOENT...), and then nothing is recorded. */
WEFT_EXTERN int weft_trace_start(const char *path);
/* End the trace weft_trace_start or $WEFT_TRACE started: write what every buffer holds and
 * close the file (an event racing with the stop may be left out). 0; WEFT_ESTATE when no
 * trace records or is armed; the negative errno of a failed write (the file is then
 * incomplete; the first failure is also printed to stderr). */
WEFT_EXTERN int weft_trace_stop(void);

#ifdef __cplusplus
}
#endif
#endif
