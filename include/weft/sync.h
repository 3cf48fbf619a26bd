/* SPDX-License-Identifier: MIT */
/* weft/sync.h — coroutine-aware synchronisation (included by weft.h).
 * They park coroutines instead of blocking the worker, work across workers, and block plain
 * OS threads on a futex where noted. A weft_mutex may be unlocked by another coroutine or
 * thread than the one that locked it (it is a binary semaphore with FIFO hand-off).
 * An object that still had waiting coroutines when weft_run returned (they were abandoned
 * at shutdown) must be re-initialised with its weft_*_init before it is used again.
 * Plain threads may use these objects with or without a runtime. A plain thread waiting
 * while a runtime runs is woken with WEFT_ENORUNTIME when it stops (weft.h, weft_run); a
 * plain thread that began waiting while no runtime ran waits for another thread and is
 * left alone. */
#ifndef WEFT_SYNC_H
#define WEFT_SYNC_H
#ifdef __cplusplus
extern "C" {
#endif

struct weft__waitq {
    void *head, *tail;
};

typedef struct weft_mutex {
    uint32_t lock; /* internal spin-futex lock guarding the fields below */
    int locked;
    struct weft__waitq waiters;
} weft_mutex;
#define WEFT_MUTEX_INIT                                                                            \
    {                                                                                              \
        0, 0,                                                                                      \
        {                                                                                          \
            0, 0                                                                                   \
        }                                                                                          \
    }
/* Initialise an unlocked mutex (or use WEFT_MUTEX_INIT). 0, WEFT_EINVAL (NULL). */
WEFT_EXTERN int weft_mutex_init(weft_mutex *m);
/* Lock the mutex, parking (blocking a plain thread) while another holds it; waiters get it
 * in FIFO order. 0, WEFT_ECANCELED, WEFT_ETIMEDOUT (the _until variant), WEFT_EINVAL. */
WEFT_EXTERN int weft_mutex_lock(weft_mutex *m);
WEFT_EXTERN int weft_mutex_lock_until(weft_mutex *m, int64_t deadline);
/* Lock the mutex only if it is free now: 0, or WEFT_EAGAIN. */
WEFT_EXTERN int weft_mutex_trylock(weft_mutex *m);
/* Unlock the mutex, handing it to the first waiter: 0, or WEFT_ESTATE if it is not locked. */
WEFT_EXTERN int weft_mutex_unlock(weft_mutex *m);

typedef struct weft_cond {
    uint32_t lock;
    struct weft__waitq waiters;
} weft_cond;
#define WEFT_COND_INIT                                                                             \
    {                                                                                              \
        0,                                                                                         \
        {                                                                                          \
            0, 0                                                                                   \
        }                                                                                          \
    }
/* Initialise a condition variable (or use WEFT_COND_INIT). 0, WEFT_EINVAL (NULL). */
WEFT_EXTERN int weft_cond_init(weft_cond *c);
/* Wait on a condition variable: atomically unlocks m (which the caller holds) and waits;
 * re-locks m before returning (also on timeout/cancel). 0, WEFT_ETIMEDOUT, WEFT_ECANCELED,
 * WEFT_EINVAL; WEFT_ENORUNTIME (a plain thread, the runtime stopped): returns WITHOUT m
 * locked. As with pthreads, re-check the condition in a loop. */
WEFT_EXTERN int weft_cond_wait(weft_cond *c, weft_mutex *m);
WEFT_EXTERN int weft_cond_wait_until(weft_cond *c, weft_mutex *m, int64_t deadline);
/* Wake one waiter (signal) or all of them (broadcast). 0, WEFT_EINVAL (NULL). */
WEFT_EXTERN int weft_cond_signal(weft_cond *c);
WEFT_EXTERN int weft_cond_broadcast(weft_cond *c);

typedef struct weft_sem {
    uint32_t lock;
    int64_t count;
    struct weft__waitq waiters;
} weft_sem;
/* Initialise a counting semaphore holding count units. 0, WEFT_EINVAL (NULL, count < 0). */
WEFT_EXTERN int weft_sem_init(weft_sem *s, int64_t count);
/* Take one unit, waiting (FIFO) while there is none; trywait never waits (WEFT_EAGAIN).
 * 0, WEFT_ETIMEDOUT, WEFT_ECANCELED, WEFT_EINVAL. */
WEFT_EXTERN int weft_sem_wait(weft_sem *s);
WEFT_EXTERN int weft_sem_wait_until(weft_sem *s, int64_t deadline);
WEFT_EXTERN int weft_sem_trywait(weft_sem *s);
/* Give back one unit, waking the first waiter. 0, WEFT_EINVAL (NULL, INT64_MAX units). */
WEFT_EXTERN int weft_sem_post(weft_sem *s);

/* A wait group (Go's sync.WaitGroup): a counter of outstanding work that one or more parties
 * wait on to reach zero. */
typedef struct weft_wg {
    uint32_t lock;
    int64_t count;
    struct weft__waitq waiters;
} weft_wg;
#define WEFT_WG_INIT                                                                               \
    {                                                                                              \
        0, 0,                                                                                      \
        {                                                                                          \
            0, 0                                                                                   \
        }                                                                                          \
    }
/* Initialise a wait group at zero (or use WEFT_WG_INIT). 0, WEFT_EINVAL (NULL). */
WEFT_EXTERN int weft_wg_init(weft_wg *wg);
/* Add delta (may be negative) to the counter; done is add -1. Reaching zero wakes the
 * waiters. 0, WEFT_EINVAL (NULL, or the counter would go negative or above WEFT_WG_MAX: it
 * is left unchanged). A group may be freed as soon as a wait on it returned, even while the
 * Done that released it is still returning (it no longer touches the group then). */
#define WEFT_WG_MAX (((int64_t)1 << 62) - 1)
WEFT_EXTERN int weft_wg_add(weft_wg *wg, int64_t delta);
WEFT_EXTERN int weft_wg_done(weft_wg *wg);
/* Wait until the counter is zero. 0, WEFT_ETIMEDOUT, WEFT_ECANCELED, WEFT_EINVAL. */
WEFT_EXTERN int weft_wg_wait(weft_wg *wg);
WEFT_EXTERN int weft_wg_wait_until(weft_wg *wg, int64_t deadline);

/* Run fn exactly once per weft_once; concurrent callers wait (park) until it has finished.
 * Not a cancellation point. 0, WEFT_EINVAL (NULL). */
typedef struct weft_once {
    uint32_t state;
    weft_mutex m;
} weft_once;
#define WEFT_ONCE_INIT                                                                             \
    {                                                                                              \
        0, WEFT_MUTEX_INIT                                                                         \
    }
WEFT_EXTERN int weft_once_call(weft_once *o, void (*fn)(void));

/* Run fn(arg) on the blocking-offload thread pool and park until it returns; *result (if
 * non-NULL) gets its value. The call never returns while fn may still be running, so arg
 * may point into the caller's stack frame. From a plain thread, fn simply runs inline.
 *   0               fn ran; *result is its value.
 *   WEFT_ECANCELED  the caller was cancelled. If it was before the call, or no pool thread
 *                   had started fn yet, fn never runs (a queued job is withdrawn); otherwise
 *                   the caller stays parked (in a shield: further requests change nothing)
 *                   until fn has returned, and *result still gets its value.
 *   WEFT_EAGAIN     the pool has no thread and could not start one (pthread_create failed:
 *                   the process's thread or memory limits); fn did not run.
 *   WEFT_EINVAL     fn is NULL.
 * So *result is written exactly when fn ran: preset it (e.g. to NULL) to tell, after
 * WEFT_ECANCELED, whether fn ran and left something to free. */
WEFT_EXTERN int weft_blocking(weft_fn fn, void *arg, void **result);
/* The same with a deadline that bounds the wait for a pool thread to start fn: if none has
 * started it by then, the job is withdrawn and WEFT_ETIMEDOUT returned — fn never ran and
 * *result is untouched. Once fn has started, the call waits for it to return whatever the
 * deadline (weft cannot stop a running C function) and returns 0 with its result: reporting
 * WEFT_ETIMEDOUT for a call whose effects did happen would leave the caller unable to tell
 * "not done" from "done late". A cancellation works as in weft_blocking. From a plain
 * thread, fn runs inline (there is no wait to bound). */
WEFT_EXTERN int weft_blocking_until(weft_fn fn, void *arg, void **result, int64_t deadline);

#ifdef __cplusplus
}
#endif
#endif
