/* SPDX-License-Identifier: MIT */
/* stack.c — floor 1 (objects and queues): coroutine stacks.
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
 * fresh page costs ~10 us here). The array costs 48 bytes per stack, written when its stack is
 * carved (once per stack, not per coroutine), and carving touches no stack page.
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
 * is refused: run.c). If the coroutine below resumes first and crashes, the canaries
 * above it name the one that overflowed (guard.c).
 *
 * Size classes: weft__stack_round maps every size to one of NCLASSES sizes (below), so the
 * pool's table is fixed, a lookup is arithmetic, and any number of distinct requested sizes
 * works.
 *
 * Promises (what makes out-of-memory an error code, not an abort): a coroutine takes its
 * stack lazily, at its first run, from the cache of the worker running it (warm, and the
 * same few stacks for a stream of short-lived coroutines), but weft_spawn already decides
 * that it will get one. The pool counts promises (`promised`) and keeps them covered by its
 * own free stacks and uncarved room (`uncarved`: slab address space mapped but not touched
 * yet), mapping a new slab at spawn when they are not: a failed mapping is WEFT_ENOMEM from
 * weft_spawn. Worker caches are not counted (a worker cannot take another's), so the pool
 * alone can keep every promise, and a coroutine's first run cannot fail: it takes a stack
 * from its worker's cache (the promise then moves to that worker's credit) or redeems the
 * promise from the pool. Each worker holds a credit of promises taken from the pool in
 * batches, so a spawn costs one owner-only decrement. Stacks are carved (descriptor written,
 * guard installed — the guard's syscall after pool_mu is released: "Carving" below) one by
 * one when taken, so a promise costs address space only: a million
 * spawned, not yet run coroutines touch no stack page. Invariant, under pool_mu:
 * promised = credits + promises held by not-yet-run coroutines <= count + uncarved.
 *
 * Running short: the stacks and credit a worker keeps are invisible to the pool, so when a
 * promise cannot be backed (a mapping failed), the spawner first gives its own cache back to
 * the pool and tries again; failing that, spawn returns WEFT_ENOMEM and weft__stacks_short is
 * set: every worker then gives its cache and credit back at each scheduling round (the
 * spawner wakes them all) while the flag stays, and takes promises one at a time, so the
 * stacks of coroutines that finish reach the pool within a round and the next spawn can
 * have them. It is cleared when a mapping succeeds again, or when the pool has plenty free
 * (SHORT_CLEAR). The hot paths (spawn, first run, exit) never look at it.
 *
 * Threads: the global pool is guarded by a mutex (batches only, off the hot path); a worker
 * cache is touched only by its own worker thread. */
#define _GNU_SOURCE
#include "stack.h"
#include "common.h"
#include "sanitizer.h"
#include "segstack.h"

#include <errno.h>
#include <fcntl.h>
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
#define WEFT_CACHE_HIGH 512 /* stacks a worker keeps before returning a batch */
#define WEFT_CACHE_BATCH 256
#define WEFT_SLAB_BYTES ((size_t)8 << 20)
#define WEFT_HEADROOM ((size_t)4 << 20)    /* address space a new slab must leave (grow) */
#define WEFT_REFILL (WEFT_CACHE_BATCH / 4) /* stacks a pool visit adds to a worker cache */
#define WEFT_CREDIT_BATCH 64               /* promises a worker takes from the pool at a time */
#define WEFT_CREDIT_HIGH 256               /* promises it keeps before returning a batch */
#define SHORT_CLEAR (4 * WEFT_CACHE_HIGH)  /* free beyond the promises: no longer short */

/* The class table: sub-page sizes in 256-byte steps (1 KiB .. 3.75 KiB), page multiples up
 * to 64 KiB, then 8 classes per doubling up to WEFT_STACK_MAX (2^16 .. 2^30: 14 doublings).
 * Above 64 KiB a stack gets less than 12.5 % more address space than asked (no more memory:
 * pages are committed as touched). */
#define NSMALL 12 /* 1024, 1280, ..., 3840 */
#define NPAGED 16 /* 4 KiB, 8 KiB, ..., 64 KiB */
#define LINEAR_MAX 65536
#define PER_DOUBLING 8
#define NCLASSES (NSMALL + NPAGED + 14 * PER_DOUBLING)

/* A slab: n stacks of one size, `stride` bytes apart from base (stack i's guard zone, if
 * any, at base + i * stride, its lo WEFT_GUARD_BYTES above), carved from the top down: the
 * `carved` highest ones are set up. Lock-free readers (the SIGSEGV handler, weft_dump, the
 * overflow attribution) find slabs through `slabs` (release store when a slab is added) and
 * may look only at descriptors i >= n - carved whose `ready` is set (`carved` counts the
 * claimed ones, stored with release under pool_mu; `ready` is stored with release once the
 * descriptor is set up, maybe after pool_mu was released: "Carving" below; both read with
 * acquire); base, len, n, stride never change. */
struct slab {
    char *base;
    size_t len;
    struct slab *next;         /* every slab (shutdown, lock-free readers) */
    struct slab *next_partial; /* the class's slabs with stacks not carved yet (pool_mu) */
    size_t n, stride;
    _Atomic size_t carved;
    struct weft__stack desc[]; /* the n descriptors, in address order (zero until carved) */
};

/* All fields under pool_mu. Invariant: promised <= count + uncarved (every promise can be
 * kept without mapping anything). */
struct size_class {
    size_t size;
    struct weft__stack *free;
    size_t count;         /* stacks on `free` */
    struct slab *partial; /* slabs with uncarved room, the one being carved first */
    size_t uncarved;      /* stacks of room left in `partial` slabs */
    size_t promised;      /* spawned coroutines that will take a stack at first run */
};

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static struct size_class classes[NCLASSES];
static struct slab *_Atomic slabs; /* written under pool_mu, read anywhere (acquire) */
static int guard_mode = -1;        /* -1 unknown, else the best kind the kernel supports */
static size_t mprotect_used;
static size_t mprotect_budget = SIZE_MAX; /* SIZE_MAX: not computed yet (see guard_budget) */
/* A promise could not be backed ("Running short" above). Written under pool_mu, read relaxed
 * by workers: a stale read costs one more stack cached, or one flush too many. */
_Atomic bool weft__stacks_short;

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
/* Descriptor i of sl, if it has been carved (lock-free readers: see struct slab). */
static inline struct weft__stack *carved_desc(struct slab *sl, size_t i)
{
    if (i < sl->n - atomic_load_explicit(&sl->carved, memory_order_acquire))
        return NULL;
    return atomic_load_explicit(&sl->desc[i].ready, memory_order_acquire) ? &sl->desc[i] : NULL;
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
    if (size <= LINEAR_MAX)
        return (size + WEFT_PAGE - 1) & ~(size_t)(WEFT_PAGE - 1);
    /* 2^j < size <= 2^(j+1), j >= 16: round up to a multiple of 2^j / PER_DOUBLING. */
    int j = 63 - __builtin_clzll((unsigned long long)(size - 1));
    size_t step = ((size_t)1 << j) / PER_DOUBLING;
    return (size + step - 1) & ~(step - 1);
}

/* Called with pool_mu held; size is weft__stack_round's output. */
static struct size_class *class_for(size_t size)
{
    size_t i;
    if (is_small(size)) {
        i = size / 256 - WEFT_STACK_MIN / 256;
    } else if (size <= LINEAR_MAX) {
        i = NSMALL + size / WEFT_PAGE - 1;
    } else {
        int j = 63 - __builtin_clzll((unsigned long long)(size - 1));
        size_t step = ((size_t)1 << j) / PER_DOUBLING;
        i = NSMALL + NPAGED + (size_t)(j - 16) * PER_DOUBLING + (size - ((size_t)1 << j)) / step -
            1;
    }
    WEFT_ASSERT(i < NCLASSES && (classes[i].size == 0 || classes[i].size == size));
    classes[i].size = size;
    return &classes[i];
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

/* Reads a small decimal file (raw syscalls: this runs under pool_mu); dflt if unreadable. */
static long read_long(const char *path, long dflt)
{
    char buf[32];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dflt;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return dflt;
    buf[n] = 0;
    long v = strtol(buf, NULL, 10);
    return v > 0 ? v : dflt;
}

/* The process's mappings now: the lines of /proc/self/maps, or -1. */
static long count_maps(void)
{
    char buf[4096];
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    long lines = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < n; i++)
            lines += buf[i] == '\n';
    close(fd);
    return lines;
}

/* How many mprotect guards this run may install (with pool_mu held). Each one splits its
 * slab's mapping (two more VMAs), and vm.max_map_count is shared with everything else in the
 * process: the application's own mappings, malloc arenas, thread stacks, libraries. So weft
 * takes at most half of the mappings still free when it first needs a guard (a quarter of
 * them in guards) and leaves the other half to the application; past the budget a stack
 * gets a canary instead (the documented fallback). Computed once per run. */
static size_t guard_budget(void)
{
    if (mprotect_budget == SIZE_MAX) {
        long max = read_long("/proc/sys/vm/max_map_count", 65530);
        long used = count_maps();
        long spare = used < 0 ? max / 2 : max - used;
        mprotect_budget = spare > 0 ? (size_t)spare / 4 : 0;
    }
    return mprotect_budget;
}

/* Called with pool_mu held: stacks the class can hand out beyond its promises. */
static inline size_t spare(const struct size_class *cls)
{
    return cls->count + cls->uncarved - cls->promised;
}

/* Called with pool_mu held: map a slab for cls and add its room to cls->uncarved. Address
 * space only (MAP_NORESERVE; nothing is touched until a stack is carved). A mapping that
 * fails is retried smaller (under `ulimit -v` the last megabytes still hold a few stacks);
 * -ENOMEM when not even one stack's worth can be mapped. */
static int grow(struct size_class *cls)
{
    size_t size = cls->size;
    size_t stride = stride_of(size), n = slab_count(size);
    /* Headroom: a slab is mapped only if WEFT_HEADROOM more would fit too (mapped with it,
     * then given back), so stacks never take the last of the address space under `ulimit -v`
     * and malloc — libev's arrays, which abort when they cannot grow, timer records, the
     * application's own — still has room once spawn starts saying WEFT_ENOMEM. */
    char *base;
    while ((base = mmap(NULL, n * stride + WEFT_HEADROOM, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)) == MAP_FAILED) {
        if (n == 1)
            return -ENOMEM;
        n /= 2;
    }
    munmap(base + n * stride, WEFT_HEADROOM);
    /* Zeroed descriptors: a lock-free reader never looks at an uncarved one anyway. */
    struct slab *sl = calloc(1, sizeof *sl + n * sizeof(struct weft__stack));
    if (!sl) {
        munmap(base, n * stride);
        return -ENOMEM;
    }
    sl->base = base;
    sl->len = n * stride;
    sl->n = n;
    sl->stride = stride;
    sl->next_partial = cls->partial;
    sl->next = atomic_load_explicit(&slabs, memory_order_relaxed);
    /* Release: a lock-free reader that finds the slab sees its fields (and carved == 0). */
    atomic_store_explicit(&slabs, sl, memory_order_release);
    cls->partial = sl;
    cls->uncarved += n;
    atomic_fetch_add_explicit(&reserved_bytes, sl->len, memory_order_relaxed);
    atomic_store_explicit(&weft__stacks_short, false, memory_order_relaxed);
    return 0;
}

/* Carving. A new stack needs its guard zone installed: one madvise(MADV_GUARD_INSTALL)
 * of ~2-13 us on these VMs (page-table pages for the zone), and a refill carves WEFT_REFILL
 * of them. Done under pool_mu, that held the mutex for hundreds of microseconds, and a
 * second worker that needed the pool meanwhile slept on it: weft-bench park with two
 * workers paid ~300,000 context switches per million coroutines (docs/benchmarks.md). So
 * carve_one only claims the next descriptor under pool_mu (the slab's bookkeeping and the
 * descriptor's layout fields) and, once the kernel's guard kind is known to be MADVISE,
 * leaves the syscall to its caller, who runs set_up after unlocking (finish_carves). The
 * claimer owns the stack until it is set up: nobody else can reach it (it is on no free
 * list). Lock-free readers (the SIGSEGV handler, overflow attribution) look at a descriptor
 * only once `carved` counts it and its `ready` is set (acquire: carved_desc). The first
 * carve decides the mode and mprotect's budget is pool_mu's: those stay under the lock. */
static void set_up(struct weft__stack *s, bool locked)
{
    size_t size = s->size, gap = guard_bytes(size);
    char *guard = (char *)s->lo - gap;
    unsigned kind = WEFT_GUARD_CANARY;
    if (is_small(size)) {
        /* no guard zone */
    } else if (!locked) {
        /* guard_mode is MADVISE (carve_one decided under pool_mu). A failure here (the
         * kernel out of memory for page tables) leaves this one stack with canaries. */
        if (madvise(guard, gap, MADV_GUARD_INSTALL) == 0)
            kind = WEFT_GUARD_MADVISE;
    } else if (guard_mode == -1 || guard_mode == WEFT_GUARD_MADVISE) {
        if (madvise(guard, gap, MADV_GUARD_INSTALL) == 0) {
            kind = WEFT_GUARD_MADVISE;
            guard_mode = WEFT_GUARD_MADVISE;
        } else {
            guard_mode = WEFT_GUARD_MPROTECT;
        }
    }
    /* Never for a sub-page stack: its "guard" address is the stack itself (and its
     * neighbours' memory), and mode MPROTECT is what kernels before 6.13 end up in. */
    if (locked && !is_small(size) && kind == WEFT_GUARD_CANARY &&
        guard_mode == WEFT_GUARD_MPROTECT && mprotect_used < guard_budget() &&
        mprotect(guard, gap, PROT_NONE) == 0) {
        kind = WEFT_GUARD_MPROTECT;
        mprotect_used++;
    }
    s->guard = (uint16_t)kind;
    s->valgrind_id = weft__valgrind_stack_register(s->lo, (char *)s->lo + size);
    s->tsan_fiber = NULL;
    s->tsan_uses = 0;
    if (kind == WEFT_GUARD_CANARY)
        for (int w = 0; w < canary_words(size); w++)
            ((uint64_t *)s->lo)[w] = WEFT_STACK_CANARY;
    /* Release: a lock-free reader that sees it ready sees the descriptor written. */
    atomic_store_explicit(&s->ready, 1, memory_order_release);
}

/* Called with pool_mu held and cls->uncarved > 0: claim the next stack of the first partial
 * slab (from the slab's top down, as the stacks were always handed out: the overflow report
 * of a canary stack runs on the overflowed stack and goes on into the mapped memory below
 * it) and set it up now, or leave it to the caller (not ready: see "Carving" above). No
 * stack page is touched, except a canary stack's lowest words. */
static struct weft__stack *carve_one(struct size_class *cls)
{
    size_t size = cls->size;
    struct slab *sl = cls->partial;
    size_t carved = atomic_load_explicit(&sl->carved, memory_order_relaxed); /* ours: pool_mu */
    size_t idx = sl->n - 1 - carved;
    if (carved + 1 == sl->n)
        cls->partial = sl->next_partial;
    cls->uncarved--;

    static bool chosen;
    if (!chosen) {
        chosen = true;
        choose_guard_mode();
    }
    struct weft__stack *s = &sl->desc[idx];
    s->lo = sl->base + idx * sl->stride + guard_bytes(size);
    s->size = size;
    s->index = (uint32_t)idx;
    /* Release, for the readers' acquire (carved_desc; they also wait for `ready`). */
    atomic_store_explicit(&sl->carved, carved + 1, memory_order_release);
    if (is_small(size) || guard_mode != WEFT_GUARD_MADVISE)
        set_up(s, true);
    return s;
}

/* After pool_mu is released: set up the `n` stacks from `s` on (a `next` chain) that
 * carve_one left to us. */
static void finish_carves(struct weft__stack *s, size_t n)
{
    for (; s && n > 0; s = s->next, n--)
        if (!atomic_load_explicit(&s->ready, memory_order_relaxed))
            set_up(s, false);
}

/* Called with pool_mu held and count + uncarved > 0: a free stack, else a new one carved. */
static struct weft__stack *take_locked(struct size_class *cls)
{
    struct weft__stack *s = cls->free;
    if (!s)
        return carve_one(cls);
    cls->free = s->next;
    cls->count--;
    atomic_fetch_sub_explicit(&cached_stacks, 1, memory_order_relaxed);
    return s;
}

/* Called with pool_mu held: up to WEFT_REFILL stacks into a worker's cache (free ones
 * first, then newly carved), never eating into the promises. */
static size_t refill_locked(struct size_class *cls, struct weft__stack_cache *cache)
{
    size_t i;
    for (i = 0; i < WEFT_REFILL && spare(cls) > 0; i++) {
        struct weft__stack *t = take_locked(cls);
        t->next = cache->head;
        cache->head = t;
        cache_count_add(cache, 1);
    }
    return i; /* the first i of cache->head's chain */
}

/* The pool halves of reserve, get and put are out of line: they take a mutex, and in
 * segmented builds a function that calls libc asks for a large frame at every call
 * (segstack.h). Room for `want` more promises (mapping a slab if needed; fewer if not all
 * fit, at least one): the number promised, 0 when nothing could be mapped. */
static size_t promise_locked(struct size_class *cls, size_t want)
{
    while (spare(cls) < want && grow(cls) == 0)
        ;
    size_t n = spare(cls) < want ? spare(cls) : want;
    cls->promised += n;
    return n;
}

/* Called with pool_mu held: a worker cache's stacks join the pool's free list. */
static void splice_cache_locked(struct weft__stack_cache *cache)
{
    if (!cache->head)
        return;
    struct size_class *cls = class_for(cache->size);
    struct weft__stack *last = cache->head;
    while (last->next)
        last = last->next;
    last->next = cls->free;
    cls->free = cache->head;
    size_t n = cache_count(cache);
    cls->count += n;
    atomic_fetch_add_explicit(&cached_stacks, n, memory_order_relaxed);
    cache->head = NULL;
    atomic_store_explicit(&cache->count, 0, memory_order_relaxed);
}

/* A worker's credit ran out: a batch of promises for its default size (one at a time while
 * short). Failing that, its own cache goes to the pool and it tries once more. */
static WEFT_NOINLINE int pool_credit(struct weft__stack_cache *cache)
{
    pthread_mutex_lock(&pool_mu);
    struct size_class *cls = class_for(cache->size);
    bool short_now = atomic_load_explicit(&weft__stacks_short, memory_order_relaxed);
    size_t got = promise_locked(cls, short_now ? 1 : WEFT_CREDIT_BATCH);
    if (!got && cache->head) {
        splice_cache_locked(cache);
        got = promise_locked(cls, 1);
    }
    if (!got)
        atomic_store_explicit(&weft__stacks_short, true, memory_order_relaxed);
    cache->credit += got;
    pthread_mutex_unlock(&pool_mu);
    return got ? 0 : -ENOMEM;
}

/* A worker's credit grew past WEFT_CREDIT_HIGH (it runs what others spawned): a batch back.
 * Unchecked in segmented builds (a mutex and a subtraction), like pool_put_list. */
static WEFT_NOSPLIT WEFT_NOINLINE void pool_uncredit(struct weft__stack_cache *cache, size_t n)
{
    pthread_mutex_lock(&pool_mu);
    class_for(cache->size)->promised -= n;
    pthread_mutex_unlock(&pool_mu);
    cache->credit -= n;
}

/* A plain thread's spawn, or a size no cache holds: a free stack if the pool can spare one
 * (the first run then needs no pool visit), else a promise. */
static WEFT_NOINLINE int pool_reserve(size_t size, struct weft__stack **out)
{
    int r = 0;
    *out = NULL;
    pthread_mutex_lock(&pool_mu);
    struct size_class *cls = class_for(size);
    if (cls->count && spare(cls) > 0)
        *out = take_locked(cls);
    else if (!promise_locked(cls, 1)) {
        atomic_store_explicit(&weft__stacks_short, true, memory_order_relaxed);
        r = -ENOMEM;
    }
    pthread_mutex_unlock(&pool_mu);
    return r; /* *out, if any, came off the free list: set up long ago (no finish_carves) */
}

int weft__stack_reserve(struct weft__stack_cache *cache, size_t size, struct weft__stack **out)
{
    *out = NULL;
    if (cache && size == cache->size) {
        if (!weft__stack_promise(cache, size)) {
            if (pool_credit(cache) != 0)
                return -ENOMEM;
            cache->credit--;
        }
        return 0;
    }
    return pool_reserve(size, out);
}

/* A promise redeemed from the pool: it can always be kept (the invariant above). Refills
 * the worker's cache with what the pool can spare, never mapping more for it. */
static WEFT_NOINLINE struct weft__stack *pool_get(struct weft__stack_cache *cache, size_t size)
{
    pthread_mutex_lock(&pool_mu);
    struct size_class *cls = class_for(size);
    WEFT_ASSERT(cls->promised > 0 && cls->count + cls->uncarved >= cls->promised);
    cls->promised--;
    struct weft__stack *s = take_locked(cls);
    size_t added = 0;
    if (cache && size == cache->size)
        added = refill_locked(cls, cache);
    pthread_mutex_unlock(&pool_mu);
    finish_carves(s, 1);
    if (added)
        finish_carves(cache->head, added);
    return s;
}

struct weft__stack *weft__stack_get(struct weft__stack_cache *cache, size_t size)
{
    if (cache && size == cache->size && cache->head) {
        /* The hot path touches only this worker's cache. The coroutine's promise stays
         * with the pool's count, as this worker's credit. */
        struct weft__stack *s = cache->head;
        cache->head = s->next;
        cache_count_add(cache, -1);
        if (WEFT_UNLIKELY(++cache->credit > WEFT_CREDIT_HIGH))
            pool_uncredit(cache, WEFT_CREDIT_HIGH - WEFT_CREDIT_BATCH);
        return s;
    }
    return pool_get(cache, size);
}

/* A NULL-terminated list of free stacks of one size goes to the global pool. Unchecked in
 * segmented builds (a mutex and a list walk), like pool_put in coro.c. */
static WEFT_NOSPLIT WEFT_NOINLINE void pool_put_list(size_t size, struct weft__stack *list)
{
    pthread_mutex_lock(&pool_mu);
    struct size_class *cls = class_for(size);
    uint64_t added = 0;
    while (list) {
        struct weft__stack *n = list->next;
        list->next = cls->free;
        cls->free = list;
        cls->count++;
        added++;
        list = n;
    }
    if (spare(cls) >= SHORT_CLEAR)
        atomic_store_explicit(&weft__stacks_short, false, memory_order_relaxed);
    pthread_mutex_unlock(&pool_mu);
    atomic_fetch_add_explicit(&cached_stacks, added, memory_order_relaxed); /* one RMW */
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
    if (cache->credit)
        pool_uncredit(cache, cache->credit);
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
    for (struct slab *sl = atomic_load_explicit(&slabs, memory_order_acquire); sl; sl = sl->next) {
        if (a < sl->base || a >= sl->base + sl->len)
            continue;
        struct weft__stack *s = carved_desc(sl, (size_t)(a - sl->base) / sl->stride);
        return s && weft__stack_in_guard(s, a) ? s : NULL;
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

bool weft__stack_below_in_slab(const struct weft__stack *s, const void *addr)
{
    const char *a = addr;
    return a < (const char *)s->lo + weft__stack_canary_bytes(s) && a >= slab_floor(s);
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
    for (struct slab *sl = atomic_load_explicit(&slabs, memory_order_acquire); sl; sl = sl->next)
        for (size_t i = 0; i < sl->n; i++) {
            struct weft__stack *s = carved_desc(sl, i);
            if (s && weft__stack_canary_smashed(s))
                return s;
        }
    return NULL;
}

struct weft__stack *weft__stack_above(const struct weft__stack *s)
{
    /* Descriptors are in address order in their slab's array: the next one, if carved (a
     * slab mapped when memory was short may hold fewer than slab_count stacks). */
    const struct weft__stack *first = s - s->index;
    struct slab *sl = (struct slab *)((char *)first - offsetof(struct slab, desc));
    return s->index + 1 < sl->n ? carved_desc(sl, s->index + 1) : NULL;
}

void weft__stack_release_all(void)
{
    pthread_mutex_lock(&pool_mu);
    struct slab *sl = atomic_exchange_explicit(&slabs, NULL, memory_order_acq_rel);
    while (sl) {
        struct slab *n = sl->next;
        for (size_t i = sl->n - atomic_load_explicit(&sl->carved, memory_order_relaxed); i < sl->n;
             i++) {
            weft__valgrind_stack_deregister(sl->desc[i].valgrind_id);
            weft__tsan_fiber_destroy(sl->desc[i].tsan_fiber);
        }
        munmap(sl->base, sl->len);
        free(sl);
        sl = n;
    }
    memset(classes, 0, sizeof classes);
    mprotect_used = 0;
    mprotect_budget = SIZE_MAX; /* the next run counts the mappings again */
    atomic_store(&weft__stacks_short, false);
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
        *tail = atomic_exchange_explicit(&slabs, NULL, memory_order_relaxed); /* one thread */
        memset(classes, 0, sizeof classes);
        mprotect_used = 0;
        mprotect_budget = SIZE_MAX;
        atomic_store(&weft__stacks_short, false);
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
