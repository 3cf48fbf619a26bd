/* SPDX-License-Identifier: MIT */
/* looprec.h — floor 3 (below waiting): loop records, a worker's pool of libev watcher records
 * for the waits of floor 4 — timer.c's deadline timers and io.c's fd waits (looprec.c).
 *
 * A wait that needs a watcher takes a record from the worker it parks on and starts it in
 * that worker's loop (a libev loop may only be touched by its own thread). The record is
 * never embedded in the coroutine or on its stack: a wait ended by someone else leaves the
 * watcher in the first worker's loop while the coroutine may resume on another worker, so
 * the record's stop is done by its owner — directly when the coroutine resumed there, else
 * through the owner's inbox (the record's message).
 *
 * Ownership: the owner worker's thread alone takes, starts, stops and frees a record (the
 * free list and chunks are its, worker.h). A record is freed exactly once, when its stop
 * runs; a firing callback never frees it, so a stop that races with the firing always finds
 * a live record. The callback touches the coroutine only through the waker CAS: control
 * blocks are type-stable and wait sequences never repeat, so a late firing after the
 * coroutine moved on (or ended) fails the CAS harmlessly.
 *
 * Each kind brings its stop handler (stop the watcher, keep its worker counter: timers_armed,
 * io_waits); the pool never names timer.c or io.c (they are above it). */
#ifndef WEFT_LOOPREC_H
#define WEFT_LOOPREC_H

#include "sim.h"
#include "waker.h"
#include "worker.h"

struct weft__looprec;
/* A kind's stop: on the owner's thread, stop r's watcher (and its count in w). */
typedef void (*weft__looprec_stop_fn)(struct weft__worker *w, struct weft__looprec *r);

struct weft__looprec {
    union {
        ev_watcher any;
        ev_timer timer;   /* timer.c */
        ev_io io;         /* io.c */
    } ev;                 /* first: a callback's watcher pointer is its record's */
    struct weft__msg msg; /* the stop, posted to the owner's inbox */
    struct weft__waker k; /* the wait the watcher completes */
    struct weft__worker *owner;
    weft__looprec_stop_fn stop; /* the kind's, set by weft__looprec_take */
    int64_t deadline;           /* timer records: the absolute deadline */
    struct weft__sim_timer sim; /* timer records in a simulated run (sim.h): the virtual timer */
    struct weft__looprec *next_free;
};

/* On w's thread, before a take that cannot fail (a park's on-top hook) or on the waiting
 * coroutine: make sure w has a free record (a new chunk, allocated on the scheduler's stack
 * when the caller's is small). false: no memory. */
bool weft__looprec_reserve(struct weft__worker *w);
/* Owner's thread, after weft__looprec_reserve: a free record of w, owned by w, with the
 * kind's stop handler; the caller initialises and starts its watcher. */
struct weft__looprec *weft__looprec_take(struct weft__worker *w, weft__looprec_stop_fn stop);
/* After the wait, wherever the coroutine resumed: stop and free r on its owner (directly, or
 * through the owner's inbox when that is another worker). */
void weft__looprec_release(struct weft__looprec *r);
/* A worker's records, freed at teardown by run.c (before weft__worker_destroy). */
void weft__looprec_pool_free(struct weft__worker *w);

#endif
