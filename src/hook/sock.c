/* SPDX-License-Identifier: MIT */
/* sock.c — descriptors made, duplicated, configured and closed (the hook's bookkeeping in
 * fdstate.c follows them), and the two socket calls that wait: connect and accept.
 *
 * Any thread: socket, socketpair, pipe, pipe2, accept, dup*, close and fcntl(F_DUPFD*) start
 * the new number's state afresh (or copy the duplicated one's); fcntl(F_GETFL/F_SETFL) and
 * ioctl(FIONBIO) read and change the program's view of O_NONBLOCK on a descriptor the hook
 * manages (its real O_NONBLOCK stays set); setsockopt(SO_RCVTIMEO/SO_SNDTIMEO) goes to the
 * kernel (so getsockopt answers as usual) and is remembered for the hooked waits. */
#define _GNU_SOURCE
#include "hook.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/ioctl.h>

/* ---- descriptors made ------------------------------------------------------------------- */

WEFT_HOOK_API int socket(int domain, int type, int proto)
{
    int fd = REAL(socket)(domain, type, proto);
    if (fd >= 0)
        weft__hook_fd_reset(fd, 0);
    return fd;
}

WEFT_HOOK_API int socketpair(int domain, int type, int proto, int sv[2])
{
    int r = REAL(socketpair)(domain, type, proto, sv);
    if (r == 0) {
        weft__hook_fd_reset(sv[0], 0);
        weft__hook_fd_reset(sv[1], 0);
    }
    return r;
}

WEFT_HOOK_API int pipe(int fds[2])
{
    int r = REAL(pipe)(fds);
    if (r == 0) {
        weft__hook_fd_reset(fds[0], WEFT_HOOK_FD_OURS);
        weft__hook_fd_reset(fds[1], WEFT_HOOK_FD_OURS);
    }
    return r;
}

WEFT_HOOK_API int pipe2(int fds[2], int flags)
{
    int r = REAL(pipe2)(fds, flags);
    if (r == 0) {
        weft__hook_fd_reset(fds[0], WEFT_HOOK_FD_OURS);
        weft__hook_fd_reset(fds[1], WEFT_HOOK_FD_OURS);
    }
    return r;
}

WEFT_HOOK_API int dup(int fd)
{
    int r = REAL(dup)(fd);
    if (r >= 0)
        weft__hook_fd_copy(fd, r);
    return r;
}

WEFT_HOOK_API int dup2(int a, int b)
{
    int r = REAL(dup2)(a, b);
    if (r >= 0 && a != b)
        weft__hook_fd_copy(a, b);
    return r;
}

WEFT_HOOK_API int dup3(int a, int b, int flags)
{
    int r = REAL(dup3)(a, b, flags);
    if (r >= 0)
        weft__hook_fd_copy(a, b);
    return r;
}

/* The state goes first: a number is free for reuse from the moment close(2) runs. */
WEFT_HOOK_API int close(int fd)
{
    weft__hook_fd_reset(fd, 0);
    return REAL(close)(fd);
}

/* ---- accept / connect ------------------------------------------------------------------- */

static int hook_accept(int fd, struct sockaddr *a, socklen_t *al, int flags)
{
    struct weft__hook_fd *e = weft__hook_coro() ? weft__hook_fd_parks(fd) : NULL;
    int ce = weft__hook_caller_errno();
    ssize_t r = REAL(accept4)(fd, a, al, flags);
    if (r < 0) {
        struct weft__hook_call c = {.op = WEFT_HOOK_ACCEPT,
                                    .fd = fd,
                                    .flags = flags,
                                    .addr = a,
                                    .addrlen = al,
                                    .caller_errno = ce};
        r = weft__hook_transfer(&c, r, e);
    }
    if (r >= 0)
        weft__hook_fd_reset((int)r, 0);
    return (int)r;
}

WEFT_HOOK_API int accept(int fd, struct sockaddr *a, socklen_t *al)
{
    return hook_accept(fd, a, al, 0);
}

WEFT_HOOK_API int accept4(int fd, struct sockaddr *a, socklen_t *al, int flags)
{
    return hook_accept(fd, a, al, flags);
}

/* A connect in progress on a descriptor the program sees as blocking: wait for it (parked or,
 * on a plain thread, in poll) and return its outcome as a blocking connect would: 0, or -1
 * with the connection's error; EINPROGRESS when SO_SNDTIMEO passed first (as Linux). */
static int finish_connect(int fd, struct weft__hook_fd *e, bool coro, int ce)
{
    int64_t deadline = weft__hook_deadline(atomic_load_explicit(&e->snd_ns, memory_order_relaxed));
    int p = coro ? weft__hook_park_fd(fd, WEFT_WRITABLE, deadline)
                 : weft__hook_poll_thread(fd, WEFT_WRITABLE, deadline);
    if (p < 0) {
        weft__hook_set_errno(p == -EAGAIN ? EINPROGRESS : -p);
        return -1;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -1;
    if (err) {
        weft__hook_set_errno(err);
        return -1;
    }
    weft__hook_set_errno(ce); /* connected: errno as the caller left it (libc's success) */
    return 0;
}

WEFT_HOOK_API int connect(int fd, const struct sockaddr *a, socklen_t al)
{
    bool coro = weft__hook_coro();
    struct weft__hook_fd *e = coro ? weft__hook_fd_parks(fd) : NULL;
    int ce = weft__hook_caller_errno();
    if (!coro || !e) {
        int r = REAL(connect)(fd, a, al);
        if (WEFT_HOOK_LIKELY(r == 0) || weft__hook_errno() != EINPROGRESS ||
            !weft__hook_fd_parks_known(fd) || !(e = weft__hook_fd(fd)))
            return r;
        return finish_connect(fd, e, false, ce);
    }
    for (;;) {
        int r = REAL(connect)(fd, a, al);
        if (r == 0) {
            weft__hook_set_errno(ce); /* after a park: others of the thread set errno */
            return 0;
        }
        int err = weft__hook_errno();
        if (err == EINPROGRESS)
            return finish_connect(fd, e, true, ce);
        if (err != EAGAIN) /* EAGAIN: a full AF_UNIX backlog; a blocking connect waits */
            return -1;
        int p = weft__hook_park_fd(
            fd, WEFT_WRITABLE,
            weft__hook_deadline(atomic_load_explicit(&e->snd_ns, memory_order_relaxed)));
        if (p < 0) {
            weft__hook_set_errno(-p);
            return -1;
        }
    }
}

/* ---- modes and options ------------------------------------------------------------------ */

static int hook_fcntl(int (*real)(int, int, ...), int fd, int cmd, void *arg)
{
    struct weft__hook_fd *e;
    uint32_t f;
    switch (cmd) {
    case F_GETFL: {
        int r = real(fd, cmd);
        if (r >= 0 && (e = weft__hook_fd_peek(fd)) &&
            ((f = atomic_load_explicit(&e->flags, memory_order_relaxed)) &
             (WEFT_HOOK_FD_KNOWN | WEFT_HOOK_FD_MANAGED)) ==
                (WEFT_HOOK_FD_KNOWN | WEFT_HOOK_FD_MANAGED))
            r = (r & ~O_NONBLOCK) | (f & WEFT_HOOK_FD_USER_NB ? O_NONBLOCK : 0);
        return r;
    }
    case F_SETFL: {
        int v = (int)(intptr_t)arg;
        if (!(e = weft__hook_fd_peek(fd)) ||
            (atomic_load_explicit(&e->flags, memory_order_relaxed) &
             (WEFT_HOOK_FD_KNOWN | WEFT_HOOK_FD_MANAGED)) !=
                (WEFT_HOOK_FD_KNOWN | WEFT_HOOK_FD_MANAGED))
            return real(fd, cmd, arg);
        int r = real(fd, cmd, (void *)(intptr_t)(v | O_NONBLOCK)); /* the real mode stays */
        if (r == 0) {
            if (v & O_NONBLOCK)
                atomic_fetch_or_explicit(&e->flags, WEFT_HOOK_FD_USER_NB, memory_order_relaxed);
            else
                atomic_fetch_and_explicit(&e->flags, ~(uint32_t)WEFT_HOOK_FD_USER_NB,
                                          memory_order_relaxed);
        }
        return r;
    }
    case F_DUPFD:
    case F_DUPFD_CLOEXEC: {
        int r = real(fd, cmd, arg);
        if (r >= 0)
            weft__hook_fd_copy(fd, r);
        return r;
    }
    default:
        return real(fd, cmd, arg);
    }
}

WEFT_HOOK_API int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *); /* as glibc reads it: one pointer-sized value */
    va_end(ap);
    return hook_fcntl(REAL(fcntl), fd, cmd, arg);
}

WEFT_HOOK_API int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return hook_fcntl(REAL(fcntl64), fd, cmd, arg);
}

WEFT_HOOK_API int ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    struct weft__hook_fd *e;
    if (req != FIONBIO || !arg || !(e = weft__hook_fd_peek(fd)) ||
        (atomic_load_explicit(&e->flags, memory_order_relaxed) &
         (WEFT_HOOK_FD_KNOWN | WEFT_HOOK_FD_MANAGED)) !=
            (WEFT_HOOK_FD_KNOWN | WEFT_HOOK_FD_MANAGED))
        return REAL(ioctl)(fd, req, arg);
    int on = 1, user = *(const int *)arg;
    int r = REAL(ioctl)(fd, req, &on); /* the real mode stays non-blocking */
    if (r == 0) {
        if (user)
            atomic_fetch_or_explicit(&e->flags, WEFT_HOOK_FD_USER_NB, memory_order_relaxed);
        else
            atomic_fetch_and_explicit(&e->flags, ~(uint32_t)WEFT_HOOK_FD_USER_NB,
                                      memory_order_relaxed);
    }
    return r;
}

static bool is_timeo(int level, int name, int *rcv)
{
    if (level != SOL_SOCKET)
        return false;
    if (name == SO_RCVTIMEO
#ifdef SO_RCVTIMEO_NEW
        || name == SO_RCVTIMEO_NEW
#endif
    ) {
        *rcv = 1;
        return true;
    }
    if (name == SO_SNDTIMEO
#ifdef SO_SNDTIMEO_NEW
        || name == SO_SNDTIMEO_NEW
#endif
    ) {
        *rcv = 0;
        return true;
    }
    return false;
}

WEFT_HOOK_API int setsockopt(int fd, int level, int name, const void *v, socklen_t len)
{
    int r = REAL(setsockopt)(fd, level, name, v, len);
    int rcv;
    struct weft__hook_fd *e;
    if (r == 0 && is_timeo(level, name, &rcv) && v && len >= sizeof(struct timeval) &&
        (e = weft__hook_fd(fd))) {
        /* 64-bit Linux: the old and the new layouts are both {64-bit sec, 64-bit usec}. */
        const struct timeval *tv = v;
        int64_t ns = (int64_t)tv->tv_sec * 1000000000 + (int64_t)tv->tv_usec * 1000;
        atomic_store_explicit(rcv ? &e->rcv_ns : &e->snd_ns, ns < 0 ? 0 : ns, memory_order_relaxed);
    }
    return r;
}
