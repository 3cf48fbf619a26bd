/* stack.h — coroutine stacks: carved from large mmap'd slabs, cached per worker, guarded. */
#ifndef WEFT_STACK_H
#define WEFT_STACK_H

#include <stddef.h>
#include <stdint.h>

enum weft__guard_kind {
    WEFT_GUARD_MADVISE = 1, /* MADV_GUARD_INSTALL page: no extra mapping (Linux >= 6.13) */
    WEFT_GUARD_MPROTECT,    /* PROT_NONE page: splits the mapping, so budgeted */
    WEFT_GUARD_CANARY,      /* no guard page: a canary word at the limit, checked at switches */
};

#define WEFT_STACK_CANARY 0x5745465453544b21ull /* "WEFTSTK!" */
#define WEFT_CANARY_WORDS 32                    /* 256 bytes of canary at the limit */

/* One stack. The descriptor lives at the top of its own memory (the top page is touched by
 * the first frame anyway), so a stack costs no separate allocation. Usable bytes are
 * [lo, top) where top = (char *)this, rounded down to 64. The guard page is below lo. */
struct weft__stack {
    void *lo;                  /* lowest usable address */
    size_t size;               /* usable bytes (the class size; the descriptor lives inside) */
    struct weft__stack *next;  /* free-list link (worker cache or global pool) */
    struct weft__stack *all;   /* list of every stack ever carved (shutdown, lookup) */
    unsigned guard;            /* enum weft__guard_kind */
    unsigned valgrind_id;      /* VALGRIND_STACK_REGISTER id, or 0 */
    void *tsan_fiber;          /* one TSan fiber per stack, reused across coroutines */
    unsigned tsan_uses;        /* coroutines run on tsan_fiber so far (see prepare) */
};

/* Per-worker cache: single-threaded, owned by the worker. */
struct weft__stack_cache {
    size_t size;          /* the one size it holds (the runtime's default), set at creation */
    struct weft__stack *head;
    _Atomic size_t count; /* owner writes (load + store), stats read */
};

/* Take a stack of at least `size` usable bytes (size already validated and page-rounded by
 * weft__stack_round). NULL only on out-of-memory. cache may be NULL (plain thread). */
struct weft__stack *weft__stack_get(struct weft__stack_cache *cache, size_t size);
/* Would weft__stack_get be served from the cache (no lock, no mapping)? */
static inline int weft__stack_cached(const struct weft__stack_cache *cache, size_t size)
{
    return cache->size == size && cache->head != NULL;
}
/* Give a stack back; the caller must be off it. */
void weft__stack_put(struct weft__stack_cache *cache, struct weft__stack *s);
/* Move a worker cache's stacks to the global pool (worker exit). */
void weft__stack_cache_drain(struct weft__stack_cache *cache);
size_t weft__stack_round(size_t size);
static inline void *weft__stack_top(const struct weft__stack *s)
{
    return (void *)((uintptr_t)s & ~(uintptr_t)63);
}
/* Is addr within the guard page (or canary zone) below some stack? Returns that stack. */
struct weft__stack *weft__stack_guard_hit(const void *addr);
/* Check a canary-guarded stack (its canary words, and the current stack pointer `sp`);
 * aborts with the overflow report when either shows an overflow. */
void weft__stack_check(const struct weft__stack *s, const void *sp, uint64_t coro_id,
                       const char *name);
/* Release every slab (runtime shutdown: every coroutine is gone or abandoned). */
void weft__stack_release_all(void);
/* fork.c: PREPARE/PARENT take and drop the pool lock; CHILD forgets the parent's stacks
 * (left mapped, never reused). */
void weft__stack_atfork(int phase);
/* Counters for weft_stats: address space reserved, free stacks in the global pool (the
 * caller adds the workers' caches). */
void weft__stack_stats(uint64_t *reserved, uint64_t *cached);

#endif
