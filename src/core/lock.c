/* SPDX-License-Identifier: MIT */
/* lock.c — floor 0 (platform): slow paths of the spin-then-futex lock (see lock.h); the
 * futex wrappers are futex.c. */
#include "lock.h"
#include "common.h"
#include "futex.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

void weft__lock_slow(_Atomic uint32_t *word)
{
    /* Spin a little: critical sections are a few dozen instructions. */
    for (int i = 0; i < 100; i++) {
        uint32_t v = atomic_load_explicit(word, memory_order_relaxed);
        if (v == 0 && atomic_compare_exchange_weak_explicit(word, &v, 1, memory_order_acquire,
                                                            memory_order_relaxed))
            return;
        weft__cpu_relax();
    }
    /* Then sleep: mark the word contended (2) so the unlocker knows to wake us. */
    while (atomic_exchange_explicit(word, 2, memory_order_acquire) != 0)
        weft__futex_wait(word, 2, INT64_MAX);
}

void weft__unlock_slow(_Atomic uint32_t *word)
{
    weft__futex_wake(word, 1);
}
