/* SPDX-License-Identifier: MIT */
/* weft/group.h — task groups: structured concurrency (included by weft.h).
 *
 * A group owns the coroutines spawned into it (its members) and bounds their lifetime: it
 * can cancel them all, wait for them all, take their outcomes one by one as they finish
 * (whichever finishes first), limit how many run at once, and report the first failure —
 * Go's errgroup and Tokio's JoinSet without hand-written bookkeeping.
 *
 * Memory: a finished member is released as it finishes (its control block and the group's
 * record of it), so a server that spawns every connection into one long-lived group stays
 * flat however many connections it has accepted. Only a group created with `collect` keeps
 * something per finished member: its outcome, until weft_group_next takes it.
 *
 * Cancellation and failure are sticky for the group's lifetime: once the group is cancelled
 * (weft_group_cancel, a wait whose deadline passed or whose caller was cancelled, weft_group_free
 * of a live group, or a failure with cancel_on_fail), every member spawned later STARTS
 * CANCELLED — its cancellation points return WEFT_ECANCELED, exactly as if weft_cancel had
 * been called on it before it ran (the spawn itself succeeds). The first failure recorded
 * stays the group's answer. Make a new group to start over.
 *
 * Any call may come from a coroutine or from a plain OS thread (which blocks on a futex where
 * a coroutine parks), while the runtime runs. Members may spawn into their own group. */
#ifndef WEFT_GROUP_H
#define WEFT_GROUP_H
#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_group weft_group;

typedef struct weft_group_opts {
    int max_running;      /* > 0: at most this many members at once; a spawn parks until a
                           member finishes (back-pressure). 0: no limit. */
    int cancel_on_fail;   /* 1: the first failure cancels every other member (and the group) */
    int collect;          /* 1: keep each finished member's outcome for weft_group_next (until
                           taken: the memory of outcomes nobody takes grows). 0: no outcomes;
                           weft_group_next returns WEFT_EINVAL. */
    int reserved0;        /* zero, like reserved[] */
    uint64_t reserved[6]; /* zero (README "Versions and ABI"): room for later options */
} weft_group_opts;

/* 0; WEFT_EINVAL (out NULL, max_running < 0, a reserved word not zero), WEFT_ENOMEM.
 * opts NULL: all zero. */
WEFT_EXTERN int weft_group_create(weft_group **out);
WEFT_EXTERN int weft_group_create_ex(weft_group **out, const weft_group_opts *opts);

/* Spawn a member running fn(arg): a weft_fn member never fails (its return value is its
 * outcome's `result`), an int member (weft_group_go) fails when it returns non-zero. With a
 * max_running limit and every slot taken, the caller parks until a member finishes or the
 * deadline passes. 0; WEFT_EINVAL (g or fn NULL), WEFT_ETIMEDOUT, WEFT_ECANCELED (the caller
 * was cancelled while waiting for a slot: nothing was spawned), WEFT_ENOMEM, WEFT_ENORUNTIME.
 * Spawning into a cancelled group succeeds, and the member starts cancelled (see above). */
WEFT_EXTERN int weft_group_spawn(weft_group *g, weft_fn fn, void *arg);
WEFT_EXTERN int weft_group_spawn_until(weft_group *g, weft_fn fn, void *arg, int64_t deadline);
WEFT_EXTERN int weft_group_go(weft_group *g, int (*fn)(void *), void *arg);
WEFT_EXTERN int weft_group_go_until(weft_group *g, int (*fn)(void *), void *arg, int64_t deadline);

/* Record a failure (any non-zero code) as if a member had returned it: the first failure of
 * a group, from a member's return or from here, is kept and the later ones ignored; with
 * cancel_on_fail it cancels every member except the caller. 0; WEFT_EINVAL (g NULL, code 0). */
WEFT_EXTERN int weft_group_fail(weft_group *g, int code);

/* Cancel every member (weft_cancel on each: its current or next blocking call returns
 * WEFT_ECANCELED) and mark the group cancelled (members spawned later start cancelled).
 * Not a failure by itself. 0 or WEFT_EINVAL. */
WEFT_EXTERN int weft_group_cancel(weft_group *g);

/* Wait until the group has no member left running. Returns the group's first failure if
 * one was recorded (a member's non-zero return, or weft_group_fail's code — e.g.
 * WEFT_ECANCELED from a member that returned it after a cancellation); otherwise 0 if every
 * member finished, WEFT_ETIMEDOUT if the deadline passed, WEFT_ECANCELED if the caller was
 * cancelled — in these two cases the group is cancelled and the call still waits until
 * every member has finished (the parent bounds its children's lifetime). WEFT_EDEADLK if
 * the caller is itself a member of g (it would wait for itself); WEFT_EINVAL (g NULL);
 * WEFT_ENORUNTIME (a plain thread, and the runtime stopped meanwhile: see weft_run).
 * The group stays usable: a later wait returns the same first failure. */
WEFT_EXTERN int weft_group_wait(weft_group *g);
WEFT_EXTERN int weft_group_wait_until(weft_group *g, int64_t deadline);

/* The outcome of one finished member (groups created with `collect`). */
typedef struct weft_group_outcome {
    uint64_t id;  /* the member's task id (weft_self_id() inside it) */
    void *arg;    /* the arg it was spawned with */
    void *result; /* a weft_fn member's return value; NULL for an int member */
    int code;     /* an int member's return value; 0 for a weft_fn member */
} weft_group_outcome;

/* Join-next: take the outcome of a finished member — the earliest one not yet taken, else
 * wait for whichever member finishes first. 0 and *out filled; WEFT_ECLOSED when the group
 * is empty (no member running and no outcome left: nothing would ever come); WEFT_ETIMEDOUT,
 * WEFT_ECANCELED (the caller was cancelled; no outcome is lost: it stays for the next
 * call); WEFT_EINVAL (g or out NULL, or g not created with `collect`); WEFT_ENORUNTIME (a
 * plain thread, and the runtime stopped meanwhile). A member calling it
 * on its own group waits for the others (it hangs if no other member will ever finish). */
WEFT_EXTERN int weft_group_next(weft_group *g, weft_group_outcome *out);
WEFT_EXTERN int weft_group_next_until(weft_group *g, weft_group_outcome *out, int64_t deadline);

/* Members running now (spawned and not yet finished; a snapshot). 0 for NULL. */
WEFT_EXTERN size_t weft_group_len(weft_group *g);

/* Release the group. A group with members still running is first cancelled and waited for
 * (the call parks, or blocks a plain thread, until every member has finished): it never
 * leaves members behind that would use the freed group. 0; WEFT_EDEADLK (the caller is a
 * member of g: nothing is done, the group stays); WEFT_ENORUNTIME (a plain thread, and the
 * runtime stopped while it waited: not freed yet, free it again after weft_run returned).
 * NULL: 0, nothing done. After weft_run has
 * returned, members abandoned at its shutdown are forgotten, not waited for. No other call
 * on g may run concurrently with or after a successful free. */
WEFT_EXTERN int weft_group_free(weft_group *g);

#ifdef __cplusplus
}
#endif
#endif
