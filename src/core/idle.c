/* SPDX-License-Identifier: MIT */
/* idle.c — floor 3 (the scheduler): idle workers, spinning and wake-ups — the idle list, the
 * watcher of narrow mode, wakep, and a worker's way to sleep (go_idle). Tokio's idle.rs, Go's
 * "worker thread parking/unparking". The scheduler (sched.c) calls in; nothing here calls
 * the scheduler.
 *
 * Idle and wake-up (Go's protocol; see go_idle and wakep). A worker going idle first puts
 * itself on the idle list, then gives back its spinning token, then executes a seq_cst fence
 * and re-checks every queue; only if all are empty does it block in ev_run(EVRUN_ONCE). A
 * thread that makes work runnable executes a seq_cst fence after publishing it, then looks
 * at nidle and nspinning: if someone is idle and nobody spins, it CASes nspinning 0→1, pops
 * an idle worker and ev_async_sends it (the woken worker owns that spinning token). By the
 * fences, either the waker sees the idle worker or the idle worker's re-check sees the work:
 * no lost wake-up; by the CAS, a burst of submissions wakes one worker, not all. A spinning
 * worker that finds work gives its token back and, if it was the last spinner and work is
 * left (its own surplus, the global queue, another ring), wakes another so the pool ramps
 * up. An idle runtime sits in epoll_wait: libev's ev_async is an eventfd and stays active
 * (never ev_unref'd), so the loop really sleeps.
 *
 * libev callbacks (timers, fds, the async wake-up) run inside ev_run while the worker
 * counts as idle; a coroutine they make runnable goes to this worker's ring with no wake-up
 * (in_poll): spinners and the next wakep() spread any surplus.
 *
 *
 * Load (load.c): before sleeping, a worker with fd waits may poll-spin up to 20 us (one at
 * a time, only when events are dense and no other thread wants the CPUs); and when the
 * whole runtime was busy less than 3/4 of one CPU over a 10 ms window it goes "narrow":
 * fd waits move to worker 0 first, wakep() wakes only worker 0 (and only for global-queue
 * work), the others do not steal; worker 1 watches with bounded sleeps while worker 0 is
 * awake, so a home stuck in a long computation widens the runtime within ~10 ms.
 *
 */
#define _GNU_SOURCE
#include "idle.h"
#include "load.h"
#include "trace.h"

#include <pthread.h>

static void idle_remove(struct weft__runtime *rt, struct weft__worker *w)
{
    for (int i = 0; i < rt->idle_top; i++)
        if (rt->idle_list[i] == w) {
            rt->idle_list[i] = rt->idle_list[--rt->idle_top];
            break;
        }
    w->idle = false;
    atomic_fetch_sub_explicit(&rt->nidle, 1, memory_order_seq_cst);
}

/* The watcher (worker 1), or NULL with one worker (load.c "Narrow mode", go_idle). */
static inline struct weft__worker *watcher_of(struct weft__runtime *rt)
{
    return rt->nworkers > 1 ? rt->workers[1] : NULL;
}

/* Under idle_mu: take the watcher off the idle list if it is on it; true = the caller must
 * async_send it (after unlocking). It comes round go_idle again and picks its sleep. */
static bool watcher_unidle_locked(struct weft__runtime *rt)
{
    struct weft__worker *v = watcher_of(rt);
    rt->watcher_parked = false;
    if (!v || !v->idle)
        return false;
    idle_remove(rt, v);
    return true;
}

/* The runtime just went narrow: the watcher, if it sleeps untimed since it went idle while
 * wide, must come round go_idle again to sleep bounded. */
void weft__kick_watcher(struct weft__runtime *rt)
{
    pthread_mutex_lock(&rt->idle_mu);
    bool wake = watcher_unidle_locked(rt);
    pthread_mutex_unlock(&rt->idle_mu);
    if (wake)
        weft__worker_wake(watcher_of(rt));
}

/* wakep's slow half: we hold the spinning token; hand it to an idle worker. Out of line and
 * unchecked in segmented builds (a mutex and an eventfd write: shallow; see segstack.h). */
static WEFT_NOSPLIT void wake_idle(struct weft__runtime *rt)
{
    struct weft__worker *v = NULL;
    pthread_mutex_lock(&rt->idle_mu);
    if (weft__narrow(rt) && rt->workers[0]->idle) {
        /* Narrow (load.c): the home first. When it is awake (maybe busy for long: no
         * preemption), another idle worker, as in wide mode: every worker takes from the
         * global queue, and work queued off the home is taken by its awake owner. */
        v = rt->workers[0];
        idle_remove(rt, v);
        v->woken = true;
    } else if (rt->idle_top > 0) {
        v = rt->idle_list[--rt->idle_top];
        v->idle = false;
        v->woken = true; /* it now owns the spinning token we took */
        atomic_fetch_sub_explicit(&rt->nidle, 1, memory_order_seq_cst);
    }
    pthread_mutex_unlock(&rt->idle_mu);
    if (v)
        weft__worker_wake(v);
    else
        atomic_fetch_sub_explicit(&rt->nspinning, 1, memory_order_seq_cst);
}

/* weft__wakep's slow half (its fence and first look are inline, idle.h). */
void weft__wakep_slow(struct weft__runtime *rt)
{
    int zero = 0;
    if (atomic_load_explicit(&rt->nspinning, memory_order_relaxed) != 0 ||
        !atomic_compare_exchange_strong_explicit(&rt->nspinning, &zero, 1, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return;
    wake_idle(rt);
}

/* Is work left for another worker to take: w's own queues (the batch a spinner took from
 * the global queue or stole beyond the one it runs), the global queue, or another worker's
 * ring or LIFO (runnext aside: its owner is awake and about to run it)? Loads only. */
bool weft__others_stealable(struct weft__worker *w)
{
    struct weft__runtime *rt = weft__rt;
    for (int i = 0; i < rt->nworkers; i++)
        if (rt->workers[i] != w && weft__runq_stealable(&rt->workers[i]->rq))
            return true;
    return false;
}

static bool work_left(struct weft__worker *w)
{
    return weft__runq_nonempty(&w->rq) || weft__globalq_nonempty(&weft__rt->global) ||
           weft__others_stealable(w);
}

/* A spinning worker that found work stops spinning; the last spinner wakes another (the
 * pool's ramp-up, Go's resetspinning) — only if work is left for it. With nothing left the
 * wake-up bought a futile round and a sleep: a plain thread feeding one coroutine cost two
 * sleep/wake cycles per message batch (the woken worker takes the coroutine from the global
 * queue, and used to wake the other one for nothing; test_idle "no futile wake-up"). Work
 * published after our look calls wakep itself and finds nspinning at 0: the fence orders our
 * decrement before the looks, as wakep's fence orders a publisher's store before its look at
 * nspinning, so either it sees no spinner and wakes someone or we see its work (Dekker). */
void weft__reset_spinning(struct weft__worker *w)
{
    if (!w->spinning)
        return;
    w->spinning = false;
    struct weft__runtime *rt = weft__rt;
    /* Narrow (load.c): no ramp-up — the spinner found the work and runs it. */
    if (atomic_fetch_sub_explicit(&rt->nspinning, 1, memory_order_seq_cst) != 1 || weft__narrow(rt))
        return;
    weft__fence_seq_cst();
    if (work_left(w))
        weft__wakep();
}

static bool work_anywhere(struct weft__worker *w)
{
    struct weft__runtime *rt = weft__rt;
    if (weft__work_for(w))
        return true;
    /* Narrow (load.c): a worker other than the home leaves other rings to their owners,
     * which are awake (only an owner fills its ring, and it sleeps only once it is empty). */
    if (weft__narrow_outsider(rt, w))
        return weft__runq_nonempty(&w->rq);
    for (int i = 0; i < rt->nworkers; i++)
        if (weft__runq_nonempty(&rt->workers[i]->rq))
            return true;
    return false;
}

static void on_watch(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop, (void)t, (void)revents; /* ev_run returns; find_work looks at the load */
}

/* Give back w's spinning token, if it holds one (seq_cst: the decrement is the store the
 * caller's fence then orders before its re-check, against wakep's look at nspinning). */
static void drop_spinning(struct weft__worker *w)
{
    if (w->spinning) {
        w->spinning = false;
        atomic_fetch_sub_explicit(&weft__rt->nspinning, 1, memory_order_seq_cst);
    }
}

/* Sleep in w's loop until an event, or `bound` (started for ns > 0) fires; counted as idle
 * time (load.c) and traced. deep: go_idle's sleep, which hang.h's loop hooks publish (the
 * bound must be armed before the poll: they look at it). Returns when the sleep began. */
static int64_t loop_sleep(struct weft__worker *w, ev_timer *bound, int64_t ns, bool deep)
{
    int64_t before = weft_now();
    weft__idle_begin(w, before);
    WEFT__TRACE(w->index, WEFT__TR_IDLE, 0, 0, 0);
    if (ns > 0) {
        ev_timer_init(bound, on_watch, (double)ns / 1e9, 0.);
        ev_timer_start(w->loop, bound);
    }
    w->deep_sleep = deep;
    weft__worker_poll(w, EVRUN_ONCE);
    w->deep_sleep = false;
    if (ns > 0)
        ev_timer_stop(w->loop, bound);
    weft__idle_end(w, w->last_poll);
    WEFT__TRACE(w->index, WEFT__TR_IDLE_END, 0, 0, 0);
    return before;
}

/* A thief whose last stolen batch did not pay naps (sched.c "Stealing that pays"): a
 * bounded sleep in its loop, off the idle list, so that a spawner's wakep finds nobody to
 * wake (nidle) and pays no eventfd write per spawn. A napper is not searching, so it gives
 * back its spinning token; then, after a seq_cst fence, it looks at what it must not sit on
 * — the global queue, its inbox, its pinned FIFO: a plain thread that published to the
 * global queue while we held the token woke nobody (wakep saw a spinner); its store is
 * either seen here or it ran wakep after our decrement and saw nspinning at 0 (the Dekker
 * pairing of go_idle). What the nap leaves alone is the work in other workers' rings: their
 * owners are awake and run it; the nap only delays our share by at most its length. Its
 * own timers, fds and inbox posts still wake it (its loop), as does weft__stop. */
void weft__steal_nap(struct weft__worker *w, int64_t ns)
{
    drop_spinning(w);
    weft__fence_seq_cst();
    if (weft__work_for(w) || atomic_load(&weft__rt->stopping))
        return;
    weft__stat_inc(&w->n_naps);
    loop_sleep(w, &w->nap, ns, false);
}

void weft__go_idle(struct weft__worker *w)
{
    struct weft__runtime *rt = weft__rt;
    /* The watcher (load.c "Narrow mode"): while narrow, worker 1 sleeps at most
     * LOAD_WATCH_NS when the home is awake, so that a home stuck in a long computation is
     * seen (find_work's load update widens the runtime) and the work queued behind it is
     * taken. When the home is idle too, the watcher sleeps like anyone, and the home wakes
     * it when it wakes itself (below): an idle runtime has no periodic wake-up. */
    bool watch = false;
    struct weft__worker *watcher = watcher_of(rt);
    pthread_mutex_lock(&rt->idle_mu);
    w->idle = true;
    w->woken = false;
    rt->idle_list[rt->idle_top++] = w;
    atomic_fetch_add_explicit(&rt->nidle, 1, memory_order_seq_cst);
    if (w == watcher && rt->narrow_allowed && weft__narrow(rt)) {
        if (rt->workers[0]->idle)
            rt->watcher_parked = true;
        else
            watch = true;
    }
    pthread_mutex_unlock(&rt->idle_mu);
    drop_spinning(w);
    weft__fence_seq_cst();
    /* The re-check that prevents the lost wake-up (Go's "delicate dance"). */
    bool found = work_anywhere(w) || atomic_load(&rt->stopping);
    if (!found) {
        weft__stat_inc(&w->n_sleeps);
        /* deep: hang.h's release hook publishes this sleep */
        int64_t before = loop_sleep(w, &w->watch, watch ? LOAD_WATCH_NS : 0, true);
        w->poll_last_sleep = w->last_poll - before;
    }
    bool wake_watcher = false;
    pthread_mutex_lock(&rt->idle_mu);
    if (w->idle)
        idle_remove(rt, w); /* woke by itself (timer, fd, inbox) or found work */
    else if (w->woken)
        w->spinning = true; /* a waker popped us and gave us its spinning token */
    w->woken = false;
    if (w == watcher)
        rt->watcher_parked = false;
    else if (w == rt->workers[0] && rt->watcher_parked)
        wake_watcher = watcher_unidle_locked(rt); /* the home is awake again: so is it */
    pthread_mutex_unlock(&rt->idle_mu);
    if (wake_watcher)
        weft__worker_wake(watcher);
    if (found && !w->spinning) {
        /* Look as a spinner: others' rings may hold the work. */
        w->spinning = true;
        atomic_fetch_add_explicit(&rt->nspinning, 1, memory_order_seq_cst);
    }
}
