/* SPDX-License-Identifier: MIT */
/* weft.h — stackful coroutines (green threads) for C on an M:N work-stealing scheduler.
 *
 * One header is the whole API, read top to bottom: errors, time, runtime, coroutines,
 * coroutine-local storage, channels, select, synchronisation, blocking offload, task groups,
 * I/O, debugging. Every function that can fail returns an int: 0 (or a count) on success, a
 * negative WEFT_E* code on failure. weft never reports through errno: a coroutine may move
 * between OS threads, and errno belongs to the thread.
 *
 * Deadlines are absolute times on weft_now()'s clock (CLOCK_MONOTONIC, nanoseconds);
 * WEFT_FOREVER means "no deadline". weft_after(ns) builds one from a duration.
 *
 * Out of memory is WEFT_ENOMEM, never an abort: from weft_run (a worker thread, its loop or
 * main's stack could not be had), weft_spawn / weft_spawn_ex / weft_group_spawn (no stack
 * could be promised, see weft_spawn), creation calls (channels, readers), and any call of a
 * coroutine that waits with a deadline other than WEFT_FOREVER (sleep, channel and select,
 * join, mutex, cond, semaphore, wait group, fd waits) when its timer record cannot be
 * allocated: then the wait did not happen, as with WEFT_ECANCELED (nothing was sent,
 * received, locked or joined).
 *
 * No weft function is async-signal-safe: a signal handler must not call any (it could wait
 * for a lock the interrupted thread holds); write to a pipe there and read it in a coroutine.
 */
#ifndef WEFT_H
#define WEFT_H

#include <stddef.h>
#include <stdint.h>
#include <errno.h>

#include "weft/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(WEFT_BUILDING) || defined(WEFT_SHARED)
#define WEFT_EXTERN __attribute__((visibility("default")))
#else
#define WEFT_EXTERN
#endif

/* ===================================== Errors ============================================ */
/* Conditions that an OS error number describes well use its negative value (libuv's choice),
 * so I/O calls can pass the kernel's answer through; weft's own conditions are below -4000. */
#define WEFT_ERRNO_MAP(X)                                                                          \
    X(EINVAL, -EINVAL, "invalid argument")                                                         \
    X(ENOMEM, -ENOMEM, "out of memory")                                                            \
    X(EAGAIN, -EAGAIN, "operation would block")                                                    \
    X(ETIMEDOUT, -ETIMEDOUT, "deadline expired")                                                   \
    X(ECANCELED, -ECANCELED, "operation canceled")                                                 \
    X(EDEADLK, -EDEADLK, "operation would deadlock (a coroutine joining itself)")                  \
    X(EBUSY, -EBUSY, "a weft runtime is already running in this process")                          \
    X(ECONNRESET, -ECONNRESET, "connection reset by peer")                                         \
    X(EPIPE, -EPIPE, "broken pipe")                                                                \
    X(ECLOSED, -4001, "channel closed")                                                            \
    X(ESTATE, -4002,                                                                               \
      "wrong state for this call: a task already joined, detached or "                             \
      "finished; a mutex not locked; weft_unpin or weft_shield_end "                               \
      "without its begin")                                                                         \
    X(ENOTCORO, -4003, "must be called from a weft coroutine")                                     \
    X(ENORUNTIME, -4004, "no weft runtime is running")                                             \
    X(ESTACK, -4005, "stack size out of range")                                                    \
    X(ETOOLONG, -4007, "line too long")                                                            \
    X(ENOHOST, -4008, "host name not resolved: no such name, or no name server answered")
/* -4006 was WEFT_EEOF (never returned; end of stream is a 0 count); not reused. */

enum {
#define WEFT__ERRENUM(name, value, text) WEFT_##name = (value),
    WEFT_ERRNO_MAP(WEFT__ERRENUM)
#undef WEFT__ERRENUM
};

/* A message for any code weft returns (a WEFT_E* code or a negative errno); never NULL. */
WEFT_EXTERN const char *weft_strerror(int code);

/* ===================================== Version =========================================== */
/* The version of the libweft the program runs with, which may be newer than the headers it
 * was compiled with (WEFT_VERSION, WEFT_VERSION_STRING in weft/version.h): weft_version()
 * is (major << 16) | (minor << 8) | patch, weft_version_string() e.g. "0.2.0".
 * Binary compatibility: README "Versions and ABI". */
WEFT_EXTERN unsigned weft_version(void);
WEFT_EXTERN const char *weft_version_string(void);

/* ====================================== Time ============================================= */
#define WEFT_FOREVER INT64_MAX
#define WEFT_NSEC(x) ((int64_t)(x))
#define WEFT_USEC(x) ((int64_t)(x)*1000)
#define WEFT_MSEC(x) ((int64_t)(x)*1000000)
#define WEFT_SEC(x) ((int64_t)(x)*1000000000)

/* Monotonic time in nanoseconds. Callable from any thread. */
WEFT_EXTERN int64_t weft_now(void);
/* weft_now() + ns, saturating at WEFT_FOREVER; a negative ns is treated as 0. */
WEFT_EXTERN int64_t weft_after(int64_t ns);

/* Park the calling coroutine (or block the calling plain thread) for at least `ns`, or until
 * `deadline`. Never returns early. 0, or WEFT_ECANCELED if the coroutine was cancelled;
 * WEFT_ENOMEM (at once) when no timer record could be allocated;
 * WEFT_EINVAL for WEFT_FOREVER on a plain thread (nothing could ever wake it). A deadline
 * in the past (any negative one too) returns at once. */
WEFT_EXTERN int weft_sleep(int64_t ns);
WEFT_EXTERN int weft_sleep_until(int64_t deadline);

/* ===================================== Runtime =========================================== */
/* Zero-initialise the whole struct (`weft_config cfg = {.threads = 4};` does): every field's
 * zero means "the default", and a later version's fields come out of `reserved`, which
 * weft_run requires to be zero (WEFT_EINVAL otherwise). The struct keeps its size. */
typedef struct weft_config {
    int threads;           /* worker threads; 0: $WEFT_THREADS, else the number of CPUs */
    size_t stack_size;     /* default coroutine stack size in bytes; 0: $WEFT_STACK_SIZE,
                              else WEFT_STACK_DEFAULT (see "Stack sizes" below). At least
                              WEFT_STACK_DEFAULT_MIN (a page): WEFT_ESTACK below it */
    int debug_migrate;     /* 1: move coroutines to another worker at every yield and park
                              where possible (also $WEFT_DEBUG_MIGRATE=1) */
    int blocking_threads;  /* max threads of the blocking-offload pool; 0: 64 */
    int dump_signal;       /* a signal (e.g. SIGQUIT) that prints weft_dump() to stderr; 0: none */
    int padding_;          /* ignored: was padding, where an older binary may leave garbage */
    int stall_ms;          /* stall reports (below): a worker that runs one coroutine longer
                              than this prints it with its backtrace; 0: $WEFT_STALL_MS, else
                              100; -1: off */
    int deadlock;          /* the deadlock report (below): 0: on unless $WEFT_DEADLOCK=0;
                              1: on; -1: off */
    uint64_t seed;         /* deterministic simulation (below) with this seed; 0: $WEFT_SEED
                              (1..2^64-1), else off. Simulation runs one worker (`threads` is
                              ignored) */
    uint64_t reserved[10]; /* must be zero: room for later fields (README "Versions and ABI") */
} weft_config;

/* Hangs that say why.
 *
 * Deadlock report (Go's "all goroutines are asleep"). When every coroutine is parked on a weft
 * object and nothing can ever wake one, weft prints
 *     weft: deadlock: all N coroutines are parked and nothing can wake them
 * followed by weft_dump() (what each one waits on, with its backtrace), to stderr, and the
 * process exits with status 2 (_exit: no atexit handlers; stdout is flushed). "Nothing can
 * wake one" means, at one instant: every worker sleeps in its event loop with no armed
 * timer (a sleep, a deadline — a coroutine waiting with a deadline is not deadlocked, it
 * times out) and no fd wait; no coroutine is runnable; the blocking pool has no job queued
 * or running; and every thread of the process is weft's own (workers, the pool's idle
 * threads, the watchdog) or a plain thread blocked in a weft call without a deadline
 * (channel, join, mutex, wait group...) that nobody has woken. Any other thread counts as
 * one that might still call weft — send on a channel, cancel, spawn — so its mere existence
 * prevents the report (weft cannot tell a thread that will send from one blocked forever in
 * pthread_join); while such threads exist, weft looks again at growing intervals (up to
 * 1 s), so a thread that ends without waking anyone still leads to the report. When main
 * returns, that is the end of the program, never a deadlock. Off: config.deadlock = -1, or
 * $WEFT_DEADLOCK=0.
 *
 * Stall report (Seastar's stall detector). A worker that has run one coroutine for longer
 * than the threshold — computing without a weft call, or blocked in a system call (a plain
 * read, sqlite called directly) — prints, once per stall,
 *     weft: stall: worker 1 ran coroutine 17 "name" (entry_fn) for 100 ms
 * and the coroutine's backtrace (module(symbol+offset) lines). The backtrace is taken by a
 * SIGURG sent to that worker's thread (a SIGURG handler the program installed still gets the
 * other SIGURGs); a system call that is not restarted after a signal handler (nanosleep,
 * poll, sem_wait: see signal(7)) returns EINTR in the stalled coroutine. At most one report
 * per worker per second (the next says how many went unreported); a stall of two thresholds
 * or more ends with "weft: stall: worker 1 switched again after N ms". Threshold:
 * config.stall_ms, $WEFT_STALL_MS (milliseconds; 0 or -1: off), default 100 ms.
 *
 * Deterministic simulation (FoundationDB's idea, Go's testing/synctest clock). With a seed
 * (config.seed, or $WEFT_SEED=N, N >= 1) weft_run runs ONE worker, and at every scheduling
 * point (yield, park, exit, the scheduler) the next coroutine is drawn from all runnable ones
 * by a generator seeded with N; a yielding coroutine may be drawn to go on; select's random
 * case order uses it too. weft_now() is a virtual clock: it starts at a fixed value, stands
 * still while anything is runnable and, when nothing is, jumps to the earliest timer (sleeps,
 * deadlines, tickers), so weft_sleep(WEFT_SEC(10)) returns at once, exactly ten virtual
 * seconds later. A program that only uses weft replays exactly: same seed, same
 * interleaving, same output, run after run — `scripts/weft-explore ./prog --seeds 10000`
 * runs seeds 1..10000 in parallel, stops at the first failing one and prints the command
 * that replays it. What the mode cannot make deterministic: anything fed from outside weft —
 * fd readiness (weft_wait_fd, the socket calls, libweft-hook's parked libc calls),
 * blocking-pool jobs, plain threads' calls, signals — arrives at the virtual
 * time it is seen (with fd waits or pool jobs pending the worker waits for them in real
 * time, the virtual clock advancing with it up to the next timer; a plain thread's later
 * call is NOT waited for: the clock may jump timers first); the program's own reads of real
 * time, addresses and other randomness; a second weft_run in the process (coroutine ids go
 * on from the first). Consequences of the model: a loop that yields until weft_now() passes
 * a deadline never ends (sleep instead); code that needs several workers (a coroutine
 * spinning for another to act) hangs; the stall watchdog still uses real time; config.threads,
 * $WEFT_THREADS, debug migration and narrow mode are ignored. Off (no seed), the mode costs
 * one predictable branch per scheduling point. */

/* Stack sizes. Stacks are reserved address space, committed page by page as they are
 * touched, with a 64 KiB guard zone below: the default 64 KiB costs one resident page for a
 * coroutine that only calls weft, and room for ordinary C libraries (printf needs ~8 KiB).
 * An overflow is reported (`weft: stack overflow in coroutine 17 "name" (stack 65536
 * bytes)`, or `(entry fn)` for an unnamed one) and the process aborts: a fault in the guard
 * zone, or a stack pointer found below the stack at any switch away from the coroutine. A
 * frame larger than the guard can jump it unless it is compiled with
 * -fstack-clash-protection, which the CMake targets and `pkg-config --cflags weft` add
 * where the compiler has it: build coroutine code with them.
 * Sizes below WEFT_STACK_SMALL (4 KiB) make SUB-PAGE stacks: rounded up to 256 bytes and
 * packed several to a page, so a million parked coroutines fit in ~1.5 KB each (a wait on a
 * channel or a timer needs ~600 bytes of stack, a select ~800). They have no
 * guard: an overflow is detected by a canary and a stack-pointer check at every switch
 * away from the coroutine (then the process aborts with the overflow report), i.e. after
 * the fact, possibly after it ran over the stack below (then the report names the coroutine
 * that overflowed, also when the one below is the first to crash) — use them for coroutines
 * whose code is shallow (weft calls, small frames; the runtime's own work runs on the
 * worker's stack). Sub-page sizes are a per-spawn choice (weft_spawn_opts.stack_size): as
 * the runtime's default (config.stack_size, $WEFT_STACK_SIZE) they would put every
 * coroutine, printf and all, on a stack ordinary C code cannot live on, so the default is at
 * least WEFT_STACK_DEFAULT_MIN — except with -DWEFT_SEGMENTED_STACKS=ON (gcc split stacks),
 * where a small stack grows in segments (docs/design.md "Stacks") and the build's own default is
 * 2 KiB.
 * Guard pages: MADV_GUARD_INSTALL (Linux 6.13+), else mprotect, which costs mappings out of
 * vm.max_map_count: weft then uses at most half of the mappings the process still had free
 * when it first needed a guard, and gives further stacks a canary (checked at every switch,
 * like a sub-page stack's) instead. */
#define WEFT_STACK_DEFAULT ((size_t)64 * 1024)
#define WEFT_STACK_MIN ((size_t)1024)
#define WEFT_STACK_SMALL ((size_t)4096)
#define WEFT_STACK_MAX ((size_t)1024 * 1024 * 1024)
/* The runtime's default when neither the config nor $WEFT_STACK_SIZE sets one: with
 * segmented stacks a coroutine starts on 2 KiB and grows; otherwise WEFT_STACK_DEFAULT. */
#define WEFT_STACK_SEGMENTED_DEFAULT ((size_t)2048)
#if defined(WEFT_SEGMENTED_STACKS)
#define WEFT_STACK_DEFAULT_BUILD WEFT_STACK_SEGMENTED_DEFAULT
#define WEFT_STACK_DEFAULT_MIN WEFT_STACK_MIN
#else
#define WEFT_STACK_DEFAULT_BUILD WEFT_STACK_DEFAULT
/* The smallest runtime default (config.stack_size, $WEFT_STACK_SIZE): a page. A smaller
 * $WEFT_STACK_SIZE is reported on stderr and ignored; a smaller config.stack_size makes
 * weft_run return WEFT_ESTACK. */
#define WEFT_STACK_DEFAULT_MIN WEFT_STACK_SMALL
#endif

/* Start the runtime, run main(arg) as the first coroutine, and return when it has returned:
 * its return value, or a negative WEFT_E* code if the runtime could not start (WEFT_EBUSY
 * when a runtime is already running, WEFT_EINVAL for a bad config — a non-zero reserved
 * field too — or NULL main, WEFT_ESTACK for config.stack_size below WEFT_STACK_DEFAULT_MIN
 * or above WEFT_STACK_MAX, WEFT_ENOMEM when memory, a worker thread (every one asked for
 * must start: the run never goes on with fewer) or main's stack could not be had; a failed
 * start leaves nothing behind and a later weft_run may succeed). config may be NULL.
 * Shutdown rule (Go's): when main returns, no coroutine is resumed again. Each worker ends
 * the stretch of the coroutine it is running (until it blocks, yields or exits: on another
 * worker that may overlap main's return) and dispatches nothing more; coroutines still
 * alive are abandoned, their stacks and control blocks released. A coroutine that spawns
 * meanwhile gets 0 and a handle whose coroutine never runs.
 * Plain threads: one blocked in weft when the runtime stops (weft_join, a channel, select,
 * a mutex, condition, semaphore, wait group or task group) is woken with WEFT_ENORUNTIME. A
 * plain thread's weft_spawn is refused with WEFT_ENORUNTIME as soon as main has returned,
 * its other calls that need a runtime once weft_run begins to stop (weft_join of a handle of
 * an ended run: WEFT_ENORUNTIME, or WEFT_ESTATE once another run started). A call racing
 * with the stop gets one answer or the other, never freed memory; weft_run returns once
 * every plain thread has left its call (and the blocking pool's jobs have finished).
 * fork(): a child forked by a plain thread starts with no runtime (whether or not one ran in
 * the parent) and may call weft_run; nothing made in the parent (tasks, channels, mutexes)
 * may be used there. A child forked from a coroutine runs on that coroutine's stack: it may
 * only exec or _exit, and weft_run returns WEFT_ESTATE there. */
WEFT_EXTERN int weft_run(int (*main)(void *), void *arg, const weft_config *config);

/* ==================================== Coroutines ========================================= */
/* A task handle: a value, valid until the task is joined or detached. The id never repeats
 * within a process, so a stale handle is recognised and gets WEFT_ESTATE. id 0 means "none". */
typedef struct weft_task {
    struct weft__coro *co;
    uint64_t id;
} weft_task;

typedef void *(*weft_fn)(void *arg);

/* Zero-initialise it, as weft_config: zero means "the default", `reserved` must be zero
 * (WEFT_EINVAL otherwise) and holds later versions' fields. */
typedef struct weft_spawn_opts {
    size_t stack_size;    /* 0: the runtime's default; rounded up to a size class: 256
                             bytes below 4 KiB, pages up to 64 KiB, then 8 classes per
                             doubling (less than 12.5 % more); any number of distinct
                             sizes works */
    const char *name;     /* copied (up to 31 bytes); NULL: none */
    int pinned;           /* 1: never migrates from the worker that first runs it */
    uint64_t reserved[5]; /* must be zero: room for later fields */
} weft_spawn_opts;

/* Create a coroutine running fn(arg). With out == NULL it is detached (its resources are
 * released when it returns); otherwise *out must be joined or detached exactly once (until
 * then a finished task is a zombie: weft_stats counts them, debug builds list them at exit).
 * Callable from a coroutine or from any plain OS thread while the runtime runs. When the
 * calling worker's run queue is full, the spawning coroutine yields (back-pressure).
 * opts->stack_size may be sub-page (WEFT_STACK_MIN..WEFT_STACK_SMALL: see "Stack sizes").
 * The stack is taken when the coroutine first runs (a spawn touches no stack page), but it
 * is promised here, against stack address space weft has mapped: a coroutine that was
 * spawned always runs (unless main returns first: see weft_run). WEFT_ENOMEM when no stack
 * (or control block) can be promised — e.g. under `ulimit -v` or vm.max_map_count — and the
 * runtime goes on: once coroutines finish, their stacks serve later spawns (weft keeps stack
 * address space for reuse, per size class: the space of one size does not serve another).
 * 0, WEFT_EINVAL (fn NULL, a non-zero opts->reserved), WEFT_ESTACK (size < WEFT_STACK_MIN
 * or > WEFT_STACK_MAX), WEFT_ENOMEM, WEFT_ENORUNTIME (a plain thread once main has returned,
 * see weft_run; a coroutine's spawn during the stop succeeds, and the new coroutine never
 * runs). */
WEFT_EXTERN int weft_spawn(weft_task *out, weft_fn fn, void *arg);
WEFT_EXTERN int weft_spawn_ex(weft_task *out, weft_fn fn, void *arg, const weft_spawn_opts *opts);

/* Wait for a task to finish and release it; *result (if non-NULL) receives fn's return value.
 * Callable from a coroutine (parks) or a plain thread (blocks). 0, WEFT_ESTATE (joined,
 * detached, or not a live handle), WEFT_EDEADLK (joining yourself), WEFT_ETIMEDOUT,
 * WEFT_ECANCELED (the caller was cancelled; the handle stays valid), WEFT_ENORUNTIME (no
 * runtime, or a plain thread's join ended by the runtime stopping: see weft_run). */
WEFT_EXTERN int weft_join(weft_task t, void **result);
WEFT_EXTERN int weft_join_until(weft_task t, void **result, int64_t deadline);
/* Give up the handle: the task's resources are released when it returns. 0 or WEFT_ESTATE. */
WEFT_EXTERN int weft_detach(weft_task t);

/* Let other coroutines run; the caller goes to the back of its worker's queue.
 * 0; WEFT_ECANCELED (without yielding) when a cancellation is pending — a cancellation point,
 * so a loop of yields is told (see weft_cancel); WEFT_ENOTCORO from a plain thread. */
WEFT_EXTERN int weft_yield(void);
/* The calling coroutine's handle ({NULL, 0} outside a coroutine), and its id (0 outside).
 * The handle may be passed to weft_cancel or weft_set_name; joining yourself is refused. */
WEFT_EXTERN weft_task weft_self(void);
WEFT_EXTERN uint64_t weft_self_id(void);
/* Name a task for debugging (copied, truncated to 31 bytes). 0, WEFT_EINVAL, WEFT_ESTATE. */
WEFT_EXTERN int weft_set_name(weft_task t, const char *name);
/* The worker index (0..threads-1) running the caller, or -1 on a plain thread. */
WEFT_EXTERN int weft_worker_index(void);
/* Keep the calling coroutine on its current worker until weft_unpin() (nests).
 * 0; WEFT_ENOTCORO from a plain thread; weft_unpin without weft_pin: WEFT_ESTATE. */
WEFT_EXTERN int weft_pin(void);
WEFT_EXTERN int weft_unpin(void);

/* Request cancellation of a live task (a detached one too, e.g. through a handle kept when
 * it was detached, or weft_self()): the task's current or next cancellation point returns
 * WEFT_ECANCELED, and so does every later one until the task returns. The request is sticky:
 * reporting it does not consume it and nothing clears it (a second weft_cancel changes
 * nothing), so a loop that ignored one WEFT_ECANCELED is told again at its next wait instead
 * of blocking forever. Cleanup that must block anyway runs in a shield (weft_shield_begin).
 * Cancellation points:
 *  - always, even when the call would not have to wait (the request is reported at entry,
 *    before the call has any effect: nothing read, written, accepted, connected, yielded):
 *    weft_yield, weft_sleep[_until] (also with a deadline already past), weft_blocking[_until]
 *    (no job is started), and every I/O call of weft/io.h that takes a deadline —
 *    weft_wait_fd, weft_read, weft_write, weft_write_all, weft_accept, weft_connect,
 *    weft_tcp_connect, weft_reader_line, weft_reader_read. A loop of reads on a descriptor
 *    that is always ready is told.
 *  - when the call has to wait: channel send/recv, select, join, mutex lock, cond wait,
 *    semaphore wait, wait group wait, group wait/next and a group spawn waiting for a slot.
 *    A call that completes without waiting (a value already there, a free mutex) succeeds;
 *    the request stays pending for the next one.
 * weft_cond_wait returns with the mutex held even when cancelled; weft_blocking whose fn has
 * started waits for fn; weft_once_call waits for fn (these re-lock / wait inside a shield).
 * Plain threads are never cancelled. 0, or WEFT_ESTATE for a finished / stale handle. */
WEFT_EXTERN int weft_cancel(weft_task t);
/* 1 if cancellation of the calling coroutine was requested (it stays 1 until the coroutine
 * returns, inside a shield too), else 0 (always 0 on a plain thread). */
WEFT_EXTERN int weft_cancelled(void);
/* Shield the calling coroutine from cancellation until the matching weft_shield_end (shields
 * nest; the outermost end counts). Inside a shield, cancellation points do not report a
 * request: they wait and complete normally (deadlines still apply), and a request arriving
 * meanwhile does not interrupt a wait. The request stays pending and is reported by the
 * first cancellation point after the outermost weft_shield_end. For cleanup that must block
 * after a cancellation (sending a last message, flushing, waiting for a child):
 *     weft_shield_begin(); weft_chan_send(done, &v); weft_shield_end();
 * Keep shielded code bounded (a deadline): nothing can cancel it.
 * 0; WEFT_ENOTCORO from a plain thread. */
WEFT_EXTERN int weft_shield_begin(void);
/* End the innermost shield of weft_shield_begin. 0; WEFT_ESTATE without a matching
 * weft_shield_begin; WEFT_ENOTCORO from a plain thread. */
WEFT_EXTERN int weft_shield_end(void);

/* ============================== Coroutine-local storage ================================== */
/* Keys are process-wide (at most WEFT_LOCAL_MAX); values are per coroutine and follow it
 * across workers, unlike __thread variables. */
#define WEFT_LOCAL_MAX 64
typedef struct weft_local {
    int index;
} weft_local;
/* Create a coroutine-local key; destructor (or NULL) runs on a coroutine's non-NULL value
 * when that coroutine ends. 0, WEFT_EINVAL (key NULL), WEFT_ENOMEM (WEFT_LOCAL_MAX keys). */
WEFT_EXTERN int weft_local_create(weft_local *key, void (*destructor)(void *));
/* Get the calling coroutine's value for key: NULL if unset, on a plain thread, or a bad key. */
WEFT_EXTERN void *weft_local_get(weft_local key);
/* Set the calling coroutine's value for key. 0, WEFT_ENOTCORO from a plain thread,
 * WEFT_EINVAL (a key weft_local_create did not make), WEFT_ENOMEM. */
WEFT_EXTERN int weft_local_set(weft_local key, void *value);

#ifdef __cplusplus
}
#endif

#include "weft/chan.h"
#include "weft/sync.h"
#include "weft/group.h"
#include "weft/io.h"
#include "weft/debug.h"
#include "weft/trace.h"

#endif /* WEFT_H */
