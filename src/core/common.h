/* SPDX-License-Identifier: MIT */
/* common.h — floor 0 (platform): macros every weft source file uses: the always-on assert,
 * branch hints, cache-line size, and the internal-visibility convention (weft__ = internal
 * non-static). */
#ifndef WEFT_COMMON_H
#define WEFT_COMMON_H

#define WEFT_BUILDING 1
#include "weft.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WEFT_LIKELY(x) __builtin_expect(!!(x), 1)
#define WEFT_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define WEFT_NOINLINE __attribute__((noinline))
#define WEFT_NORETURN __attribute__((noreturn))
#define WEFT_CACHELINE 64
#define WEFT_ALIGNED_CL __attribute__((aligned(WEFT_CACHELINE)))

/* A programming error that would corrupt state: print and abort, in every build type
 * (libdill's dill_assert). Never compiled out, unlike assert(). */
WEFT_NORETURN void weft__panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The ABI's reserved words (version.c): true when all n are zero, as callers must leave them. */
bool weft__reserved_zero(const uint64_t *reserved, size_t n);
#define WEFT__RESERVED_ZERO(s) weft__reserved_zero((s)->reserved, sizeof(s)->reserved / 8)

#define WEFT_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (WEFT_UNLIKELY(!(cond)))                                                                \
            weft__panic("weft: internal assertion failed: %s (%s:%d)", #cond, __FILE__, __LINE__); \
    } while (0)

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define WEFT_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define WEFT_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define WEFT_TSAN 1
#endif

#ifndef WEFT_ASAN
#define WEFT_ASAN 0
#endif
#ifndef WEFT_TSAN
#define WEFT_TSAN 0
#endif
/* weft's thread-locals use the initial-exec model: a fixed offset from the thread pointer, no
 * __tls_get_addr call in libweft.so (a call into ld.so, which in segmented builds would also
 * make every caller ask for a large stack frame). A few words of static TLS. */
#define WEFT_TLS __thread __attribute__((tls_model("initial-exec")))

/* For code that inspects raw stack memory on purpose (canaries). */
#if WEFT_ASAN
#define WEFT_NO_ASAN __attribute__((no_sanitize_address))
#else
#define WEFT_NO_ASAN
#endif
/* A diagnostic that reads other threads' coroutines without their locks, on purpose (the
 * dump is a snapshot, like Go's SIGQUIT dump): not instrumented by TSan. */
#if WEFT_TSAN
#define WEFT_NO_TSAN __attribute__((no_sanitize_thread))
#else
#define WEFT_NO_TSAN
#endif

/* A full (seq_cst) fence. TSan does not model atomic_thread_fence (gcc warns -Wtsan and the
 * pairing is invisible to it), so under TSan the fence is a seq_cst read-modify-write on a
 * global word, which TSan understands and which is an equally strong barrier here: every
 * fence weft issues pairs with another fence (or RMW) of the same kind. */
#if WEFT_TSAN
extern _Atomic int weft__fence_word;
#define weft__fence_seq_cst()                                                                      \
    ((void)atomic_fetch_add_explicit(&weft__fence_word, 0, memory_order_seq_cst))
#else
#define weft__fence_seq_cst() atomic_thread_fence(memory_order_seq_cst)
#endif

/* A spin-wait's pause: tells the CPU we are spinning (x86 pause, AArch64 yield), nothing
 * elsewhere. */
static inline void weft__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Statistics counters have one writer (the owning worker): a relaxed load and store, not a
 * locked read-modify-write (which costs ~5 ns on every switch and park here). Readers
 * (weft_stats_get) see a recent value. */
static inline void weft__stat_inc(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* The phases of weft's pthread_atfork handlers (fork.c). */
enum { WEFT_FORK_PREPARE, WEFT_FORK_PARENT, WEFT_FORK_CHILD };

#endif
