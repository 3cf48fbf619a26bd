/* SPDX-License-Identifier: MIT */
/* idle.h — floor 3 (the scheduler): idle workers, spinning and wake-ups (idle.c). The
 * scheduler calls these; idle.c never calls the scheduler. */
#ifndef WEFT_IDLE_H
#define WEFT_IDLE_H

#include "worker.h"

/* Narrow (load.c): a worker other than the home keeps out of others' work — it neither
 * steals nor stays awake for their rings. A relaxed read of a hint: see load.c for why a
 * stale value is safe. */
static inline bool weft__narrow_outsider(const struct weft__runtime *rt,
                                         const struct weft__worker *w)
{
    return weft__narrow(rt) && w != rt->workers[0];
}

/* Work w must see before it sleeps, whatever the others do: the global queue, its inbox,
 * its pinned FIFO. Loads only; any caller orders them as its protocol needs (a fence before,
 * in go_idle and weft__steal_nap). */
static inline bool weft__work_for(struct weft__worker *w)
{
    return weft__globalq_nonempty(&weft__rt->global) ||
           atomic_load_explicit(&w->inbox, memory_order_relaxed) || w->pinned_head;
}
/* Does another worker's ring or LIFO hold something a thief may take (runnext and claimed
 * LIFO entries aside: their owner is awake and runs them next)? Loads only, relaxed. */
bool weft__others_stealable(struct weft__worker *w);

/* The caller just published work: wake an idle worker if one is idle and nobody spins
 * (idle.c "Idle and wake-up"). The fence and the first look are inline: they are on the
 * path of every ready and spawn. Any thread. */
void weft__wakep_slow(struct weft__runtime *rt);
static inline void weft__wakep(void)
{
    struct weft__runtime *rt = weft__rt;
    /* The caller just published work; order that store before our loads (see idle.c). */
    weft__fence_seq_cst();
    if (atomic_load_explicit(&rt->nidle, memory_order_relaxed) == 0)
        return;
    weft__wakep_slow(rt);
}
/* weft__wakep for a caller that published its work with a seq_cst read-modify-write (spawn's
 * runnext exchange): that operation already orders the publication before our look, so no
 * fence — a seq_cst load of nidle pairs with the sleeper's fence as weft__wakep's fence does
 * (C11: a seq_cst load after the sleeper's seq_cst fence in the total order sees its nidle
 * store; before it, the sleeper's look after its fence sees our exchange). On x86 the
 * exchange is a locked instruction anyway: this saves the second one. */
static inline void weft__wakep_published(void)
{
    struct weft__runtime *rt = weft__rt;
    if (atomic_load_explicit(&rt->nidle, memory_order_seq_cst) == 0)
        return;
    weft__wakep_slow(rt);
}
/* A spinning worker that found work stops spinning; the last spinner wakes another. */
void weft__reset_spinning(struct weft__worker *w);
/* The runtime just went narrow: the watcher re-enters go_idle and sleeps bounded. */
void weft__kick_watcher(struct weft__runtime *rt);
/* Scheduler context: a thief's bounded sleep off the idle list after a stolen batch that
 * did not pay (sched.c "Stealing that pays"). */
void weft__steal_nap(struct weft__worker *w, int64_t ns);
/* Scheduler context: nothing found to run; sleep in the loop unless work shows up. */
void weft__go_idle(struct weft__worker *w);

#endif
