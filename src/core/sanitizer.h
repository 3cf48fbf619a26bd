/* SPDX-License-Identifier: MIT */
/* sanitizer.h — floor 0 (platform): the annotations ASan, TSan and valgrind need to follow stack
 * switches. Every switch in weft goes through switch_to (sched.c), which calls these, so no call
 * site can forget one. Without the sanitizers they compile to nothing.
 *
 * ASan: __sanitizer_start_switch_fiber(&fake, bottom, size) just before the jump, with the
 * destination's stack bounds; exactly one __sanitizer_finish_switch_fiber on the destination
 * side, which in weft is always the start of the on-top function (every switch is an on-top
 * switch). A dying coroutine passes NULL for `fake`, which frees its fake stack.
 * TSan: one fiber per stack (fibers are expensive: ~2.4 ms and ~830 KB each, at most ~8,000
 * live), __tsan_switch_to_fiber(f, 0) just before the jump.
 * valgrind: VALGRIND_STACK_REGISTER per stack, so memcheck does not take a switch for a huge
 * stack-pointer change. */
#ifndef WEFT_SANITIZER_H
#define WEFT_SANITIZER_H

#include "common.h"

#include <stddef.h>

#if WEFT_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old,
                                     size_t *size_old);
static inline void weft__asan_start(void **fake, const void *bottom, size_t size)
{
    __sanitizer_start_switch_fiber(fake, bottom, size);
}
static inline void weft__asan_finish(void *fake)
{
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
}
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
/* A reused stack still carries the shadow of its previous coroutine's frames. */
static inline void weft__asan_fresh_stack(void *lo, size_t size)
{
    __asan_unpoison_memory_region(lo, size);
}
#else
static inline void weft__asan_fresh_stack(void *lo, size_t size)
{
    (void)lo, (void)size;
}
static inline void weft__asan_start(void **fake, const void *bottom, size_t size)
{
    (void)fake, (void)bottom, (void)size;
}
static inline void weft__asan_finish(void *fake)
{
    (void)fake;
}
#endif

#if WEFT_TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
static inline void *weft__tsan_current(void)
{
    return __tsan_get_current_fiber();
}
static inline void *weft__tsan_fiber_create(void)
{
    return __tsan_create_fiber(0);
}
static inline void weft__tsan_fiber_destroy(void *f)
{
    if (f)
        __tsan_destroy_fiber(f);
}
static inline void weft__tsan_switch(void *f)
{
    __tsan_switch_to_fiber(f, 0);
}
#else
static inline void *weft__tsan_current(void)
{
    return NULL;
}
static inline void *weft__tsan_fiber_create(void)
{
    return NULL;
}
static inline void weft__tsan_fiber_destroy(void *f)
{
    (void)f;
}
static inline void weft__tsan_switch(void *f)
{
    (void)f;
}
#endif

#if defined(WEFT_HAVE_VALGRIND)
#include <valgrind/valgrind.h>
static inline unsigned weft__valgrind_stack_register(void *lo, void *hi)
{
    return VALGRIND_STACK_REGISTER(lo, hi);
}
static inline void weft__valgrind_stack_deregister(unsigned id)
{
    if (id)
        VALGRIND_STACK_DEREGISTER(id);
}
#else
static inline unsigned weft__valgrind_stack_register(void *lo, void *hi)
{
    (void)lo, (void)hi;
    return 0;
}
static inline void weft__valgrind_stack_deregister(unsigned id)
{
    (void)id;
}
#endif

#endif
