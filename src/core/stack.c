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
 * Guards: below each page-granular stack is a guard zone of WEFT_GUARD_BYTES (64 KiB).
 * MADV_GUARD_INSTALL (Linux 6.13+) installs it without splitting the mapping; otherwise
 * mprotect(PROT_NONE) splits it into two VMAs per stack and vm.max_map_count (65530 by
 * default) would stop us near 30,000 stacks, so mprotect guards are budgeted and the rest
 * get canary words at the limit, checked at every switch away from the coroutine (detects,
 * after the fact, an overflow that did not jump past the canary).
 * Why 64 KiB and not one page: a frame larger than the guard jumps it and lands in the
 * stack below. Code built with -fstack-clash-protection (weft, and its users through the
 * CMake target and weft.pc) probes every page of a large frame in order, so its first probe
 * below lo faults in the guard whatever the width — on x86-64. gcc on AArch64 assumes a
 * 64 KiB guard (stack-clash-protection-guard-size=16) and probes only frames above that, and
 * code built without the flag touches a large frame wherever it likes (typically its lowest
 * word first, with a call): with 64 KiB, any frame up to the default stack size that starts
 * inside the stack faults in the guard. The width is free where it matters: one madvise or
 * one mprotect per stack either way (the same VMAs), address space is MAP_NORESERVE (a
 * million default stacks are 128 GB of the 128 TiB user space) and a guard page is never
 * resident. What it costs is page-table reach: a 4 KiB page table maps 2 MiB, and every
 * 2 MiB of a slab holds some stack's touched top, so a stack costs stride/512 bytes of page
 * tables — 256 bytes at a 128 KiB stride instead of 136 at 68 KiB (+120 bytes per parked
 * default coroutine, ~3% of its ~4.4 KB). The gap is kept when a stack gets a canary instead
 * of a guard: unprotected, but an overflow of up to 64 KiB still lands in nobody's frames.
 *
 * Descriptors: a stack's descriptor (struct weft__stack) lives in an array allocated with
 * its slab, not in the stack. Inside the stack, at its top, it sat exactly where the
 * overflow of the stack above lands first (just below that stack's guard, or right below
 * its limit for packed sub-page stacks): an overflow that jumped a guard, or ran over a
 * sub-page neighbour, wrote over the neighbour's lo/size, and the neighbour's next check
 * crashed inside weft or blamed it. At the bottom of the stack it would be the first thing
 * the stack's own overflow hits, and a bottom page is one more page to touch per stack (a
 * fresh page costs ~10 us here). The array costs 48 bytes per stack, touched once when the
 * slab is carved (not per coroutine), and carving no longer touches any stack page.
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
 * reports it and aborts: hence opt-in per spawn, for shallow code (a sub-page runtime default
 * is refused: runtime.c). If the coroutine below resumes first and crashes, the canaries
 * above it name the one that overflowed (guard.c).
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

/* A slab: n stacks of one size, `stride` bytes apart from base (stack i's guard zone, if
 * any, at base + i * stride, its lo WEFT_GUARD_BYTES above). Published to lock-free readers
 * (the SIGSEGV handler, weft_dump) by a release store of `slabs`; never changed after. */
struct slab {
    char *base;
    size_t len;
    size_t n;
    struct slab *next;
    struct weft__stack desc[]; /* the n descriptors, in address order */
};

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static struct size_class classes[16]; /* few distinct sizes in practice */
static struct slab *_Atomic slabs;    /* written under pool_mu, read anywhere (acquire) */
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
/* The layout of a slab of stacks of `size`: guard width, distance between stacks, count. */
static inline size_t guard_bytes(size_t size)
{
    return is_small(size) ? 0 : WEFT_GUARD_BYTES; /* sub-page stacks: packed, no guard */
}
static inline size_t stride_of(size_t size)
{
    return size + guard_bytes(size);
}
static inline size_t slab_count(size_t size)
{
    size_t n = WEFT_SLAB_BYTES / stride_of(size);
    size_t cap = is_small(size) ? 2048 : 64; /* a small slab is at most 2 MiB, committed as used */
    return n < 1 ? 1 : n > cap ? cap : n;
}
/* The lowest address of s's slab (its guard zone for index 0). */
static inline const char *slab_floor(const struct weft__stack *s)
{
    return (const char *)s->lo - guard_bytes(s->size) - (size_t)s->index * stride_of(s->size);
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
    size_t gap = guard_bytes(size), stride = stride_of(size), n = slab_count(size);
    size_t len = n * stride;
    char *base = mmap(NULL, len, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED)
        return -ENOMEM;
    struct slab *sl = malloc(sizeof *sl + n * sizeof(struct weft__stack));
    if (!sl) {
        munmap(base, len);
        return -ENOMEM;
    }
    sl->base = base;
    sl->len = len;
    sl->n = n;
    sl->next = atomic_load_explicit(&slabs, memory_order_relaxed);
    atomic_fetch_add_explicit(&reserved_bytes, len, memory_order_relaxed);

    static bool chosen;
    if (!chosen) {
        chosen = true;
        choose_guard_mode();
    }
    for (size_t i = 0; i < n; i++) {
        char *guard = base + i * stride;
        char *lo = guard + gap;
        unsigned kind = WEFT_GUARD_CANARY;
        if (small) {
            /* no guard zone */
        } else if (guard_mode == -1 || guard_mode == WEFT_GUARD_MADVISE) {
            if (madvise(guard, gap, MADV_GUARD_INSTALL) == 0) {
                kind = WEFT_GUARD_MADVISE;
                guard_mode = WEFT_GUARD_MADVISE;
            } else {
                guard_mode = WEFT_GUARD_MPROTECT;
            }
        }
        if (kind == WEFT_GUARD_CANARY && !small && guard_mode == WEFT_GUARD_MPROTECT &&
            mprotect_used < WEFT_MPROTECT_BUDGET && mprotect(guard, gap, PROT_NONE) == 0) {
            kind = WEFT_GUARD_MPROTECT;
            mprotect_used++;
        }
        struct weft__stack *s = &sl->desc[i];
        s->lo = lo;
        s->size = size;
        s->index = (uint32_t)i;
        s->guard = (uint16_t)kind;
        s->valgrind_id = weft__valgrind_stack_register(lo, lo + size);
        s->tsan_fiber = NULL;
        s->tsan_uses = 0;
        if (kind == WEFT_GUARD_CANARY)
            for (int w = 0; w < canary_words(size); w++)
                ((uint64_t *)lo)[w] = WEFT_STACK_CANARY;
        s->next = cls->free;
        cls->free = s;
        cls->count++;
    }
    /* Release: a lock-free reader that finds the slab sees its descriptors initialised. */
    atomic_store_explicit(&slabs, sl, memory_order_release);
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

size_t weft__stack_canary_bytes(const struct weft__stack *s)
{
    return s->guard == WEFT_GUARD_CANARY ? (size_t)canary_words(s->size) * 8 : 0;
}

bool weft__stack_in_guard(const struct weft__stack *s, const void *addr)
{
    const char *a = addr, *lo = s->lo;
    return a < lo && a >= lo - guard_bytes(s->size);
}

struct weft__stack *weft__stack_guard_hit(const void *addr)
{
    /* Signal context: no lock. The slab list is only prepended to, with a release store;
     * a slab's layout never changes (release_all runs with no coroutine left). */
    const char *a = addr;
    for (struct slab *sl = atomic_load_explicit(&slabs, memory_order_acquire); sl;
         sl = sl->next) {
        if (a < sl->base || a >= sl->base + sl->len)
            continue;
        struct weft__stack *s = &sl->desc[(size_t)(a - sl->base) / stride_of(sl->desc[0].size)];
        return weft__stack_in_guard(s, a) ? s : NULL;
    }
    return NULL;
}

bool weft__stack_sp_below(const struct weft__stack *s, const void *sp)
{
    const char *p = sp;
    if (p >= (const char *)s->lo + weft__stack_canary_bytes(s))
        return false;
#if defined(WEFT_SEGMENTED_STACKS)
    /* Below its slab's floor it runs on a segment libgcc mapped (a separate mapping: never
     * inside a slab). Inside the slab, below lo, it is an overflow. */
    if (p < slab_floor(s))
        return false;
#endif
    return true;
}

WEFT_NO_ASAN bool weft__stack_canary_smashed(const struct weft__stack *s)
{
    /* A frame may skip a word, so every word is checked. */
    if (s->guard != WEFT_GUARD_CANARY)
        return false;
    const uint64_t *c = s->lo;
    bool smashed = false;
    for (int i = 0; i < canary_words(s->size); i++)
        smashed |= c[i] != WEFT_STACK_CANARY;
    return smashed;
}

struct weft__stack *weft__stack_any_smashed(void)
{
    /* Canary words were written when the slab was carved: reading them faults in nothing. */
    for (struct slab *sl = atomic_load_explicit(&slabs, memory_order_acquire); sl;
         sl = sl->next)
        for (size_t i = 0; i < sl->n; i++)
            if (weft__stack_canary_smashed(&sl->desc[i]))
                return &sl->desc[i];
    return NULL;
}

struct weft__stack *weft__stack_above(const struct weft__stack *s)
{
    /* Descriptors are in address order in their slab's array: the next one, if any. */
    return s->index + 1 < slab_count(s->size) ? (struct weft__stack *)s + 1 : NULL;
}

void weft__stack_release_all(void)
{
    pthread_mutex_lock(&pool_mu);
    struct slab *sl = atomic_exchange_explicit(&slabs, NULL, memory_order_acq_rel);
    while (sl) {
        struct slab *n = sl->next;
        for (size_t i = 0; i < sl->n; i++) {
            weft__valgrind_stack_deregister(sl->desc[i].valgrind_id);
            weft__tsan_fiber_destroy(sl->desc[i].tsan_fiber);
        }
        munmap(sl->base, sl->len);
        free(sl);
        sl = n;
    }
    memset(classes, 0, sizeof classes);
    mprotect_used = 0;
    atomic_store(&reserved_bytes, 0);
    atomic_store(&cached_stacks, 0);
    pthread_mutex_unlock(&pool_mu);
}

void weft__stack_stats(uint64_t *reserved, uint64_t *cached)
{
    *reserved = atomic_load_explicit(&reserved_bytes, memory_order_relaxed);
    *cached = atomic_load_explicit(&cached_stacks, memory_order_relaxed);
}
