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

#define WEFT_HOOK_REAL_DEF(name, ret, params, args)                                           \
    static ret stub_##name params                                                             \
    {                                                                                         \
        ret(*f) params = (ret(*) params)resolve(#name);                                       \
        atomic_store_explicit(&weft__real_##name, f, memory_order_relaxed);                  \
        return f args;                                                                        \
    }                                                                                         \
    ret(*_Atomic weft__real_##name) params = stub_##name;
WEFT_HOOK_REAL_LIST(WEFT_HOOK_REAL_DEF)
#undef WEFT_HOOK_REAL_DEF

static int stub_fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    int (*f)(int, int, ...) = (int (*)(int, int, ...))resolve("fcntl");
    atomic_store_explicit(&weft__real_fcntl, f, memory_order_relaxed);
    return f(fd, cmd, arg);
}
int (*_Atomic weft__real_fcntl)(int fd, int cmd, ...) = stub_fcntl;

static int stub_fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    int (*f)(int, int, ...) = (int (*)(int, int, ...))resolve("fcntl64");
    atomic_store_explicit(&weft__real_fcntl64, f, memory_order_relaxed);
    return f(fd, cmd, arg);
}
int (*_Atomic weft__real_fcntl64)(int fd, int cmd, ...) = stub_fcntl64;

static int stub_ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    int (*f)(int, unsigned long, ...) = (int (*)(int, unsigned long, ...))resolve("ioctl");
    atomic_store_explicit(&weft__real_ioctl, f, memory_order_relaxed);
    return f(fd, req, arg);
}
int (*_Atomic weft__real_ioctl)(int fd, unsigned long req, ...) = stub_ioctl;
