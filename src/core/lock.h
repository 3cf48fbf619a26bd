/* SPDX-License-Identifier: MIT */
/* lock.h — floor 0 (platform): a small spin-then-futex lock for short critical sections (a
 * channel's lists, a coroutine's joiner slot, the global run queue).
 *
 * Why not a pthread mutex: weft releases some locks in an on-top function, i.e. after the
 * switch, on the next coroutine's stack and possibly after TSan was told we switched fibers;
 * TSan reports a pthread mutex unlocked there as "unlocked by a wrong thread". Why not a pure
 * spinlock: a holder preempted by the kernel would make the other core spin for a whole time
 * slice. So: spin briefly, then sleep on the futex.
 *
 * Word values: 0 unlocked, 1 locked, 2 locked with (possible) sleepers.
 * Memory order: acquire on lock, release on unlock — the critical section's accesses are
 * ordered inside; nothing else is promised. */
#ifndef WEFT_LOCK_H
#define WEFT_LOCK_H

#include <stdatomic.h>
#include <stdint.h>

typedef struct weft__lock {
    _Atomic uint32_t word;
} weft__lock;

#define WEFT__LOCK_INIT                                                                            \
    {                                                                                              \
        0                                                                                          \
    }

void weft__lock_slow(_Atomic uint32_t *word);
void weft__unlock_slow(_Atomic uint32_t *word);

static inline void weft__lock_acquire(weft__lock *l)
{
    uint32_t expected = 0;
    if (__builtin_expect(atomic_compare_exchange_strong_explicit(
                             &l->word, &expected, 1, memory_order_acquire, memory_order_relaxed),
                         1))
        return;
    weft__lock_slow(&l->word);
}

static inline void weft__lock_release(weft__lock *l)
{
    if (__builtin_expect(atomic_exchange_explicit(&l->word, 0, memory_order_release) != 1, 0))
        weft__unlock_slow(&l->word);
}

/* The same lock on a raw uint32_t field of a public struct (weft_mutex.lock etc.). */
static inline weft__lock *weft__lock_of(uint32_t *p)
{
    _Static_assert(sizeof(weft__lock) == sizeof(uint32_t), "lock must be one word");
    return (weft__lock *)(void *)p;
}

#endif
