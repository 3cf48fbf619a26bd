/* stack.c — coroutine stacks.
 *
 * Why slabs: a stack per mmap costs a syscall, a VMA and, at the first touch of each page,
 * a ~10 us fault on these machines. Stacks are carved in batches from one MAP_NORESERVE
 * mapping (no commit charge: pages are committed by the kernel on first touch), so a million
 * 64 KiB stacks are 64 GB of address space but only the pages coroutines touch are resident.
 *
 * Why caches: a stack that comes back is warm (its top pages are resident); giving it to the
 * next spawn on the same worker costs no fault. Each worker keeps a LIFO cache (hottest
 * first); past WEFT_CACHE_HIGH stacks it moves a batch to the global pool, and takes a batch
 * back from there before carving a new slab.
 *
 * Guards: each stack has a guard page below its lowest usable byte. MADV_GUARD_INSTALL
 * (Linux 6.13+) installs it without splitting the mapping; otherwise mprotect(PROT_NONE)
 * splits it into two VMAs per stack and vm.max_map_count (65530 by default) would stop us
 * near 30,000 stacks, so mprotect guards are budgeted and the rest get a canary word at the
 * limit, checked at every switch away from the coroutine (detects, after the fact, an
 * overflow that did not jump past the canary).
 *
 * Sizes: WEFT_STACK_DEFAULT is 64 KiB of address space. A coroutine that only calls weft
 * touches one or two pages of it; printf-family calls need ~8-12 KiB; 64 KiB leaves room
 * for ordinary C libraries without the 8 MiB of a thread. Reserve is free, touch is not.
 *
 * Sub-page stacks (sizes below WEFT_STACK_SMALL): packed back to back, `size` bytes apart,
 * no guard page (protection is page-granular), a 64-byte canary at the limit and the
 * stack-pointer check at every switch away. A parked coroutine that only called weft uses
 * a few hundred bytes of stack (the runtime's own work runs on the worker's stack through
 * on-top switches), so a 1 KiB stack is a quarter page instead of a whole one. An overflow
 * may scribble on the stack below (another coroutine's top frames) before the next switch
 * reports it and aborts: hence opt-in, for shallow code.
 *
 * Threads: the global pool is guarded by a mutex (batches only, off the hot path); a worker
 * cache is touched only by its own worker thread. */
#define _GNU_SOURCE
#include "stack.h"
#include "common.h"
#include "sanitizer.h"
#include "segstack.h"

#include <errno.h>
#include <stdlib.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13; Debian 12's headers predate it */
#endif

#define WEFT_PAGE 4096
#define WEFT_CACHE_HIGH 512   /* stacks a worker keeps before returning a batch */
#define WEFT_CACHE_BATCH 256
#define WEFT_MPROTECT_BUDGET 20000 /* two VMAs each: stays well below vm.max_map_count */
#define WEFT_SLAB_BYTES ((size_t)8 << 20)

struct size_class {
    size_t size;
    struct weft__stack *free;
    size_t count;
};

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static struct size_class classes[16]; /* few distinct sizes in practice */
static struct weft__stack *all_stacks;
static struct slab {
    void *base;
    size_t len;
    struct slab *next;
} *slabs;
static int guard_mode = -1; /* -1 unknown, else the best kind the kernel supports */
static size_t mprotect_used;

static inline bool is_small(size_t size)
{
    return size < WEFT_STACK_SMALL;
}
static inline int canary_words(size_t size)
{
    return is_small(size) ? 8 : WEFT_CANARY_WORDS;
}
static _Atomic uint64_t reserved_bytes, cached_stacks;

/* A worker cache's count has one writer (its worker) and racy readers (weft_stats_get). */
static inline size_t cache_count(struct weft__stack_cache *c)
{
    return atomic_load_explicit(&c->count, memory_order_relaxed);
}
static inline void cache_count_add(struct weft__stack_cache *c, long d)
{
    atomic_store_explicit(&c->count, cache_count(c) + (size_t)d, memory_order_relaxed);
}

size_t weft__stack_round(size_t size)
{
#if WEFT_ASAN || WEFT_TSAN || defined(WEFT_CONTEXT_UCONTEXT)
    /* Instrumented code needs several times the stack (ASan's redzones at -O0, TSan's
     * runtime running on the caller's stack), and the ucontext backend keeps a ~1 KB
     * ucontext_t at the top of each stack: sub-page sizes become 16 KiB, guarded. */
    if (is_small(size))
        size = 16384;
#endif
    if (is_small(size))
        return (size + 255) & ~(size_t)255; /* may round up to a whole page: fine */
    return (size + WEFT_PAGE - 1) & ~(size_t)(WEFT_PAGE - 1);
}

static struct size_class *class_for(size_t size)
{
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++) {
        if (classes[i].size == size)
            return &classes[i];
        if (classes[i].size == 0) {
            classes[i].size = size;
            return &classes[i];
        }
    }
    return NULL; /* more than 16 distinct sizes: not cached globally */
}

/* $WEFT_STACK_GUARD forces a guard kind (tests, and systems where the probe misleads):
 * "madvise", "mprotect" or "canary". Read once, with pool_mu held. */
static void choose_guard_mode(void)
{
    const char *v = getenv("WEFT_STACK_GUARD");
    if (!v || !*v)
        return;
    if (strcmp(v, "mprotect") == 0)
        guard_mode = WEFT_GUARD_MPROTECT;
    else if (strcmp(v, "canary") == 0)
        guard_mode = WEFT_GUARD_CANARY;
    else if (strcmp(v, "madvise") == 0)
        guard_mode = -1;
    else
        fprintf(stderr, "weft: ignoring WEFT_STACK_GUARD=%s (madvise, mprotect or canary)\n", v);
}

/* Called with pool_mu held. Carves a slab into stacks of `size` and links them on cls. */
static int carve(struct size_class *cls, size_t size)
{
    bool small = is_small(size);
    size_t stride = small ? size : size + WEFT_PAGE; /* sub-page stacks: no guard page */
    size_t n = WEFT_SLAB_BYTES / stride;
    if (n < 1)
        n = 1;
    if (n > (small ? 2048u : 64u)) /* a small slab is at most 2 MiB, committed as used */
        n = small ? 2048 : 64;
    size_t len = n * stride;
    char *base = mmap(NULL, len, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED)
        return -ENOMEM;
    struct slab *sl = malloc(sizeof *sl);
    if (!sl) {
        munmap(base, len);
        return -ENOMEM;
    }
    *sl = (struct slab){base, len, slabs};
    slabs = sl;
    atomic_fetch_add_explicit(&reserved_bytes, len, memory_order_relaxed);

    static bool chosen;
    if (!chosen) {
        chosen = true;
        choose_guard_mode();
    }
    for (size_t i = 0; i < n; i++) {
        char *guard = base + i * stride;
        char *lo = small ? guard : guard + WEFT_PAGE;
        unsigned kind = WEFT_GUARD_CANARY;
        if (small) {
            /* no guard page */
        } else if (guard_mode == -1 || guard_mode == WEFT_GUARD_MADVISE) {
            if (madvise(guard, WEFT_PAGE, MADV_GUARD_INSTALL) == 0) {
                kind = WEFT_GUARD_MADVISE;
                guard_mode = WEFT_GUARD_MADVISE;
            } else {
                guard_mode = WEFT_GUARD_MPROTECT;
            }
        }
        if (kind == WEFT_GUARD_CANARY && guard_mode == WEFT_GUARD_MPROTECT &&
            mprotect_used < WEFT_MPROTECT_BUDGET &&
            mprotect(guard, WEFT_PAGE, PROT_NONE) == 0) {
            kind = WEFT_GUARD_MPROTECT;
            mprotect_used++;
        }
        /* The descriptor sits at the top of the usable area: lo + size - sizeof. */
        struct weft__stack *s =
            (struct weft__stack *)((uintptr_t)(lo + size - sizeof(struct weft__stack)) &
                                   ~(uintptr_t)63);
        s->lo = lo;
        s->size = size;
        s->guard = kind;
        s->all = all_stacks;
        all_stacks = s;
        s->valgrind_id = weft__valgrind_stack_register(lo, lo + size);
        s->tsan_fiber = NULL;
        if (kind == WEFT_GUARD_CANARY)
            for (int w = 0; w < canary_words(size); w++)
                ((uint64_t *)lo)[w] = WEFT_STACK_CANARY;
        s->next = cls->free;
        cls->free = s;
        cls->count++;
    }
    atomic_fetch_add_explicit(&cached_stacks, n, memory_order_relaxed);
    return 0;
}

/* The pool halves of get and put are out of line: they take a mutex, and in segmented
 * builds a function that calls libc asks for a large frame at every call (segstack.h). */
static WEFT_NOINLINE struct weft__stack *pool_get(struct weft__stack_cache *cache, size_t size)
{
    pthread_mutex_lock(&pool_mu);
    struct size_class *cls = class_for(size);
    struct weft__stack *s = NULL;
    if (cls) {
        if (!cls->free && carve(cls, size) != 0) {
            pthread_mutex_unlock(&pool_mu);
            return NULL;
        }
        s = cls->free;
        cls->free = s->next;
        cls->count--;
        atomic_fetch_sub_explicit(&cached_stacks, 1, memory_order_relaxed);
        /* Refill the worker cache with a batch for the default size. */
        if (cache && size == cache->size) {
            size_t want = WEFT_CACHE_BATCH / 4;
            while (want-- && (cls->free || carve(cls, size) == 0)) {
                struct weft__stack *t = cls->free;
                cls->free = t->next;
                cls->count--;
                t->next = cache->head;
                cache->head = t;
                cache_count_add(cache, 1);
                atomic_fetch_sub_explicit(&cached_stacks, 1, memory_order_relaxed);
            }
        }
    }
    pthread_mutex_unlock(&pool_mu);
    return s;
}

/* A NULL-terminated list of free stacks of one size goes to the global pool. Unchecked in
 * segmented builds (a mutex and a list walk), like pool_put in coro.c. */
static WEFT_NOSPLIT WEFT_NOINLINE void pool_put_list(size_t size, struct weft__stack *list)
{
    pthread_mutex_lock(&pool_mu);
    struct size_class *cls = class_for(size);
    WEFT_ASSERT(cls != NULL);
    uint64_t added = 0;
    while (list) {
        struct weft__stack *n = list->next;
        list->next = cls->free;
        cls->free = list;
        cls->count++;
        added++;
        list = n;
    }
    pthread_mutex_unlock(&pool_mu);
    atomic_fetch_add_explicit(&cached_stacks, added, memory_order_relaxed); /* one RMW */
}

struct weft__stack *weft__stack_get(struct weft__stack_cache *cache, size_t size)
{
    if (cache && size == cache->size && cache->head) {
        /* The hot path touches only this worker's cache: no shared counter here. */
        struct weft__stack *s = cache->head;
        cache->head = s->next;
        cache_count_add(cache, -1);
        return s;
    }
    return pool_get(cache, size);
}

void weft__stack_put(struct weft__stack_cache *cache, struct weft__stack *s)
{
    if (cache && s->size == cache->size) {
        s->next = cache->head;
        cache->head = s;
        cache_count_add(cache, 1);
        if (cache_count(cache) <= WEFT_CACHE_HIGH)
            return;
        /* Too many warm stacks here: hand the coldest batch (the list's tail) to the pool. */
        struct weft__stack *keep = cache->head;
        for (size_t i = 1; i < cache_count(cache) - WEFT_CACHE_BATCH; i++)
            keep = keep->next;
        struct weft__stack *batch = keep->next;
        keep->next = NULL;
        cache_count_add(cache, -WEFT_CACHE_BATCH);
        pool_put_list(cache->size, batch);
        return;
    }
    s->next = NULL;
    pool_put_list(s->size, s);
}

void weft__stack_cache_drain(struct weft__stack_cache *cache)
{
    if (!cache->head)
        return;
    pool_put_list(cache->size, cache->head);
    cache->head = NULL;
    atomic_store_explicit(&cache->count, 0, memory_order_relaxed);
}

struct weft__stack *weft__stack_guard_hit(const void *addr)
{
    /* Signal context: no lock (the list is only prepended to; a torn read finds nothing).
     * The common case — the faulting thread's own current stack — is checked by the caller
     * first; this walk is the fallback. */
    for (struct weft__stack *s = all_stacks; s; s = s->all) {
        const char *lo = s->lo;
        if (is_small(s->size))
            continue; /* below it is another stack, not a guard */
        if ((const char *)addr >= lo - WEFT_PAGE && (const char *)addr < lo + 256)
            return s;
    }
    return NULL;
}

WEFT_NO_ASAN void weft__stack_check(const struct weft__stack *s, const void *sp,
                                   uint64_t coro_id, const char *name)
{
    /* Two checks: the stack pointer itself (exact, when the overflow is still going on:
     * sp within the lowest 256 bytes or below), and the canary words (an overflow that
     * returned before this switch; a frame may skip a word, so several are checked). */
    const uint64_t *c = s->lo;
    bool smashed = (const char *)sp < (const char *)s->lo + 256;
#if defined(WEFT_SEGMENTED_STACKS)
    /* Running on a segment libgcc added (anywhere in the address space): the stack pointer
     * says nothing about this stack; its canary still does. */
    if ((const char *)sp >= (const char *)weft__stack_top(s) ||
        (const char *)sp < (const char *)s->lo - 4096)
        smashed = false;
#endif
    for (int i = 0; i < canary_words(s->size); i++)
        smashed |= c[i] != WEFT_STACK_CANARY;
    if (s->guard == WEFT_GUARD_CANARY && smashed)
        weft__panic("weft: stack overflow in coroutine %llu \"%s\" (stack %zu bytes)",
                    (unsigned long long)coro_id, name ? name : "", s->size);
}

void weft__stack_release_all(void)
{
    pthread_mutex_lock(&pool_mu);
    for (struct weft__stack *s = all_stacks; s; s = s->all) {
        weft__valgrind_stack_deregister(s->valgrind_id);
        weft__tsan_fiber_destroy(s->tsan_fiber);
    }
    all_stacks = NULL;
    while (slabs) {
        struct slab *n = slabs->next;
        munmap(slabs->base, slabs->len);
        free(slabs);
        slabs = n;
    }
    memset(classes, 0, sizeof classes);
    mprotect_used = 0;
    atomic_store(&reserved_bytes, 0);
    atomic_store(&cached_stacks, 0);
    pthread_mutex_unlock(&pool_mu);
}

/* The slabs of the parent a child was forked from: left mapped in the child (copy-on-write:
 * untouched pages cost nothing) and never reused — the forking thread may run on one (a
 * coroutine) or hold pointers into one (a plain thread given a coroutine's local); kept
 * reachable here (for leak checkers). */
static struct slab *forked_slabs;

void weft__stack_atfork(int phase)
{
    if (phase == WEFT_FORK_PREPARE) {
        pthread_mutex_lock(&pool_mu);
        return;
    }
    if (phase == WEFT_FORK_CHILD) {
        struct slab **tail = &forked_slabs;
        while (*tail)
            tail = &(*tail)->next;
        *tail = slabs;
        slabs = NULL;
        all_stacks = NULL;
        memset(classes, 0, sizeof classes);
        atomic_store(&reserved_bytes, 0);
        atomic_store(&cached_stacks, 0);
    }
    pthread_mutex_unlock(&pool_mu); /* in the child too: its thread is the one that took it */
}

void weft__stack_stats(uint64_t *reserved, uint64_t *cached)
{
    *reserved = atomic_load_explicit(&reserved_bytes, memory_order_relaxed);
    *cached = atomic_load_explicit(&cached_stacks, memory_order_relaxed);
}
