/* SPDX-License-Identifier: MIT */
/* real.c — libc's own functions behind the hooks: one pointer each, resolved on first use
 * with dlsym(RTLD_NEXT) by a stub the pointer starts at (hook.h).
 *
 * Threads: any thread may call through a pointer or run a stub. A stub stores what dlsym
 * returned with a relaxed store; two threads racing store the same value, and a reader sees
 * the stub or the function, either of which is correct to call (the stub only costs a
 * lookup). dlsym is thread-safe. A function dlsym cannot find (a libc without it) aborts with
 * a message naming it: the hook cannot do what the program asked without it. */
#define _GNU_SOURCE
#include "hook.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

static void *resolve(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (!f) {
        /* No stdio (it may be mid-call on this thread): write(2) through the syscall. */
        static const char msg[] = "weft-hook: libc function not found: ";
        ssize_t r = syscall(SYS_write, 2, msg, sizeof msg - 1);
        r = syscall(SYS_write, 2, name, __builtin_strlen(name));
        r = syscall(SYS_write, 2, "\n", 1);
        (void)r;
        abort();
    }
    return f;
}

#define WEFT_HOOK_REAL_DEF(name, ret, params, args)                                                \
    static ret stub_##name params                                                                  \
    {                                                                                              \
        ret(*f) params = (ret(*) params)resolve(#name);                                            \
        atomic_store_explicit(&weft__real_##name, f, memory_order_relaxed);                        \
        return f args;                                                                             \
    }                                                                                              \
    ret(*_Atomic weft__real_##name) params = stub_##name;
WEFT_HOOK_REAL_LIST(WEFT_HOOK_REAL_DEF)
#undef WEFT_HOOK_REAL_DEF

/* The variadic ones: the optional argument is read as one pointer-sized value and passed on
 * (as glibc's own fcntl and ioctl read it). */
#define WEFT_HOOK_REAL_VARIADIC(name, second)                                                      \
    static int stub_##name(int fd, second arg2, ...)                                               \
    {                                                                                              \
        va_list ap;                                                                                \
        va_start(ap, arg2);                                                                        \
        void *arg = va_arg(ap, void *);                                                            \
        va_end(ap);                                                                                \
        int (*f)(int, second, ...) = (int (*)(int, second, ...))resolve(#name);                    \
        atomic_store_explicit(&weft__real_##name, f, memory_order_relaxed);                        \
        return f(fd, arg2, arg);                                                                   \
    }                                                                                              \
    int (*_Atomic weft__real_##name)(int fd, second arg2, ...) = stub_##name;
WEFT_HOOK_REAL_VARIADIC(fcntl, int)
WEFT_HOOK_REAL_VARIADIC(fcntl64, int)
WEFT_HOOK_REAL_VARIADIC(ioctl, unsigned long)
