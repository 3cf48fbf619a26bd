/* SPDX-License-Identifier: MIT */
/* looprec.c — floor 3 (below waiting): loop records, the per-worker pool of libev watcher
 * records of timer.c and io.c (looprec.h: ownership and the stop through the inbox). */
#include "looprec.h"
#include "scheduler.h"

#include <stdlib.h>

#define LOOPREC_CHUNK 128
struct looprec_chunk {
    struct looprec_chunk *next;
    struct weft__looprec r[LOOPREC_CHUNK];
};

/* A chunk of records for w's free list (owner only); on the scheduler's stack when called
 * from a small one (weft__offstack: calloc is deep). */
static void chunk_add(void *p)
{
    struct weft__worker *w = p;
    struct looprec_chunk *c = calloc(1, sizeof *c); /* zeroed: inactive watchers, no stop */
    if (!c)
        return;
    c->next = w->looprec_chunks;
    w->looprec_chunks = c;
    for (int i = 0; i < LOOPREC_CHUNK; i++) {
        c->r[i].next_free = w->looprec_free;
        w->looprec_free = &c->r[i];
    }
}

bool weft__looprec_reserve(struct weft__worker *w)
{
    if (WEFT_UNLIKELY(!w->looprec_free))
        weft__offstack(chunk_add, w);
    return w->looprec_free != NULL;
}

struct weft__looprec *weft__looprec_take(struct weft__worker *w, weft__looprec_stop_fn stop)
{
    struct weft__looprec *r = w->looprec_free;
    WEFT_ASSERT(r != NULL); /* reserved (weft__looprec_reserve) */
    w->looprec_free = r->next_free;
    r->owner = w;
    r->stop = stop;
    return r;
}

/* The stop, on the owner's thread: the kind's handler, then back on the free list. */
static void put(struct weft__worker *w, struct weft__looprec *r)
{
    r->stop(w, r);
    r->next_free = w->looprec_free;
    w->looprec_free = r;
}

/* The stop message's handler (struct weft__msg's run), on the owner's thread. */
static void stop_msg(struct weft__worker *w, struct weft__msg *m)
{
    struct weft__looprec *r =
        (struct weft__looprec *)((char *)m - offsetof(struct weft__looprec, msg));
    WEFT_ASSERT(r->owner == w);
    put(w, r);
}

void weft__looprec_release(struct weft__looprec *r)
{
    struct weft__worker *w = weft__worker_self();
    if (w == r->owner) {
        put(w, r);
    } else {
        r->msg.run = stop_msg;
        weft__worker_post(r->owner, &r->msg);
    }
}

void weft__looprec_pool_free(struct weft__worker *w)
{
    struct looprec_chunk *c = w->looprec_chunks;
    while (c) {
        struct looprec_chunk *n = c->next;
        for (int i = 0; i < LOOPREC_CHUNK; i++)
            if (c->r[i].stop && ev_is_active(&c->r[i].ev.any)) /* a wait left at shutdown */
                c->r[i].stop(w, &c->r[i]);
        free(c);
        c = n;
    }
    w->looprec_chunks = NULL;
    w->looprec_free = NULL;
}
