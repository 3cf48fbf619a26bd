/* SPDX-License-Identifier: MIT */
/* stack.h — floor 1 (objects and queues): coroutine stacks: carved from large mmap'd slabs,
 * cached per worker, guarded. */
#ifndef WEFT_STACK_H
#define WEFT_STACK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum weft__guard_kind {
    WEFT_GUARD_MADVISE = 1, /* MADV_GUARD_INSTALL zone: no extra mapping (Linux >= 6.13) */
    WEFT_GUARD_MPROTECT,    /* PROT_NONE zone: splits the mapping, so budgeted */
    WEFT_GUARD_CANARY,      /* no guard: canary words at the limit, checked at switches */
};

#define WEFT_STACK_CANARY 0x5745465453544b21ull /* "WEFTSTK!" */
#define WEFT_CANARY_WORDS 32                    /* 256 bytes of canary at the limit */

/* The guard zone below every page-granular stack: 64 KiB (see stack.c, "Guards", for why
 * this width). Sub-page stacks have none. */
#define WEFT_GUARD_BYTES ((size_t)64 * 1024)

/* One stack: usable bytes [lo, lo + size), the guard zone (if any) just below lo. The
 * descriptor does NOT live in the stack's memory: descriptors sit in an array beside their
 * slab (stack.c, "Descriptors"), so an overflow of the stack above never lands on one. */
struct weft__stack {
    void *lo;                 /* lowest usable address */
    struct weft__stack *next; /* free-list link (worker cache or global pool) */
    void *tsan_fiber;         /* one TSan fiber per stack, reused across coroutines */
    size_t size;              /* usable bytes (the class size) */
    uint32_t index;           /* position in its slab, 0 = lowest address */
    uint16_t guard;           /* enum weft__guard_kind */
    _Atomic uint8_t ready;    /* set up (stack.c "Carving"): release once, read with acquire */
    unsigned valgrind_id;     /* VALGRIND_STACK_REGISTER id, or 0 */
    unsigned tsan_uses;       /* coroutines run on tsan_fiber so far (see prepare) */
};

/* Per-worker cache: single-threaded, owned by the worker. */
struct weft__stack_cache {
    size_t size; /* the one size it holds (the runtime's default), set at creation */
    struct weft__stack *head;
    _Atomic size_t count; /* owner writes (load + store), stats read */
    size_t credit;        /* owner only: promises of pool room it may hand out (stack.c) */
};

/* Spawn: promise a stack of `size` usable bytes (size validated and rounded by
 * weft__stack_round) to a coroutine about to be queued, touching no page (stack.c
 * "Promises"). *out is NULL (a promise, kept by weft__stack_get at the first run) or, from
 * the pool, a free stack that now belongs to the coroutine. 0, or -ENOMEM when no address
 * space could be mapped for it. cache may be NULL (plain thread). */
int weft__stack_reserve(struct weft__stack_cache *cache, size_t size, struct weft__stack **out);
/* weft__stack_reserve's hot path (owner only): a promise from the worker's credit, if it
 * holds the size and has credit left; else false and nothing done. */
static inline bool weft__stack_promise(struct weft__stack_cache *cache, size_t size)
{
    if (cache->size != size || cache->credit == 0)
        return false;
    cache->credit--; /* owner only: no shared counter on the hot path */
    return true;
}
/* First run of a coroutine that holds a promise: its stack, from the worker's cache or the
 * pool. Never fails. */
struct weft__stack *weft__stack_get(struct weft__stack_cache *cache, size_t size);
/* Would weft__stack_get be served from the cache (no pool visit)? */
static inline int weft__stack_cached(const struct weft__stack_cache *cache, size_t size)
{
    return cache->size == size && cache->head != NULL;
}
/* Give a stack back; the caller must be off it. */
void weft__stack_put(struct weft__stack_cache *cache, struct weft__stack *s);
/* Memory ran short (stack.c "Running short"): workers give their caches and credit back
 * (weft__stack_cache_drain at their next scheduling round) and keep none meanwhile. */
extern _Atomic bool weft__stacks_short;
static inline bool weft__stack_short(void)
{
    return atomic_load_explicit(&weft__stacks_short, memory_order_relaxed);
}
/* Move a worker cache's stacks and credit to the global pool (worker exit, running short). */
void weft__stack_cache_drain(struct weft__stack_cache *cache);
/* The size class of a requested size (WEFT_STACK_MIN..WEFT_STACK_MAX): every size maps to
 * one of a fixed set (stack.c), at least as large. */
size_t weft__stack_round(size_t size);
static inline void *weft__stack_top(const struct weft__stack *s)
{
    return (char *)s->lo + s->size;
}
/* Bytes of canary at the limit of a canary-kind stack (0 for a guarded one). */
size_t weft__stack_canary_bytes(const struct weft__stack *s);
/* Is addr within the guard zone below some stack? Returns that stack. Signal-safe. */
struct weft__stack *weft__stack_guard_hit(const void *addr);
/* Is the guard zone of s the one below lo (addr in [lo - WEFT_GUARD_BYTES, lo))? */
bool weft__stack_in_guard(const struct weft__stack *s, const void *addr);
/* Is sp, the stack pointer of the coroutine running on s, below its usable stack (within
 * its canary, in its guard zone or past it)? In segmented builds a stack pointer outside
 * s's slab is on a segment libgcc added, not an overflow. */
bool weft__stack_sp_below(const struct weft__stack *s, const void *sp);
/* Is addr inside s's slab and below s's limit (its canary, its guard zone, the stacks, gaps
 * and uncarved room below it in the slab)? Signal-safe: arithmetic on s only. */
bool weft__stack_below_in_slab(const struct weft__stack *s, const void *addr);
/* Is the canary of a canary-kind stack overwritten (false for guarded stacks)? */
bool weft__stack_canary_smashed(const struct weft__stack *s);
/* Any canary-kind stack whose canary is overwritten, or NULL: a scan of every slab (only
 * for an otherwise unexplained fault, on the way to abort). Signal-safe. */
struct weft__stack *weft__stack_any_smashed(void);
/* The stack right above s in its slab (whose overflow runs into s first), or NULL. */
struct weft__stack *weft__stack_above(const struct weft__stack *s);
/* Release every slab (runtime shutdown: every coroutine is gone or abandoned). */
void weft__stack_release_all(void);
/* fork.c: PREPARE/PARENT take and drop the pool lock; CHILD forgets the parent's stacks
 * (left mapped, never reused). */
void weft__stack_atfork(int phase);
/* Counters for weft_stats: address space reserved, free stacks in the global pool (the
 * caller adds the workers' caches). */
void weft__stack_stats(uint64_t *reserved, uint64_t *cached);

#endif
