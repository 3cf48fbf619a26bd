/* SPDX-License-Identifier: MIT */
/* poll.c — poll, ppoll and select (and their _FORTIFY_SOURCE variants).
 *
 * Plain thread: libc's. Coroutine: a first poll with timeout 0 (whatever is ready returns at
 * once, exactly as libc's poll would report it); otherwise the coroutine parks until one of
 * the descriptors may be ready or the timeout passes, and polls again (a wake-up that finds
 * nothing parks again). The park is on the one descriptor itself when there is one; with
 * several, on a private epoll set holding them all (epoll_create1 + one epoll_ctl each +
 * close: a few system calls, only on the path that waits). No descriptors: a sleep (curl's
 * Curl_wait_ms). Descriptors epoll refuses (regular files) are always ready to poll, so the
 * first poll returns them.
 *
 * ppoll with a signal mask in a coroutine is libc's (it blocks the worker): a mask swapped
 * atomically with the wait cannot be had while other coroutines run on the thread. */
#define _GNU_SOURCE
#include "hook.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

static int events_of(short ev)
{
    return (ev & (POLLIN | POLLPRI | POLLRDHUP) ? WEFT_READABLE : 0) |
           (ev & POLLOUT ? WEFT_WRITABLE : 0);
}

static uint32_t epoll_events(short ev)
{
    return (ev & POLLIN ? EPOLLIN : 0) | (ev & POLLPRI ? EPOLLPRI : 0) |
           (ev & POLLOUT ? EPOLLOUT : 0) | (ev & POLLRDHUP ? EPOLLRDHUP : 0);
}

/* A private epoll set holding fds (duplicates merged), or -errno. */
static int epoll_of(const struct pollfd *fds, nfds_t n)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        return -weft__hook_errno();
    for (nfds_t i = 0; i < n; i++) {
        if (fds[i].fd < 0)
            continue;
        uint32_t ev = 0;
        bool first = true;
        for (nfds_t j = 0; j < n; j++)
            if (fds[j].fd == fds[i].fd) {
                first = first && j >= i;
                ev |= epoll_events(fds[j].events);
            }
        if (!first)
            continue;
        struct epoll_event e = {.events = ev, .data.fd = fds[i].fd};
        /* EPERM (a regular file): always ready, the polls report it; others the same. */
        (void)epoll_ctl(ep, EPOLL_CTL_ADD, fds[i].fd, &e);
    }
    return ep;
}

int weft__hook_poll(struct pollfd *fds, nfds_t n, int64_t deadline, int caller_errno)
{
    int ep = -1, r;
    for (;;) {
        r = REAL(poll)(fds, n, 0);
        if (r != 0)
            break; /* ready, or an error (errno set by libc) */
        if (deadline != WEFT_FOREVER && weft_now() >= deadline)
            break;
        int p;
        if (n == 0) {
            p = weft__hook_park_until(deadline);
        } else if (n == 1 && fds[0].fd >= 0 && (fds[0].events & (POLLIN | POLLOUT)) &&
                   !(fds[0].events & POLLPRI)) {
            p = weft__hook_park_fd(fds[0].fd, events_of(fds[0].events), deadline);
        } else {
            if (ep < 0 && (ep = epoll_of(fds, n)) < 0) {
                weft__hook_set_errno(-ep);
                return -1;
            }
            p = weft__hook_park_fd(ep, WEFT_READABLE, deadline);
        }
        if (p == -EAGAIN) /* the timeout: poll's 0 */
            continue;     /* (one last poll reports what became ready meanwhile) */
        if (p < 0) {
            r = -1;
            weft__hook_set_errno(-p);
            break;
        }
        if (n == 0)
            break;
    }
    if (ep >= 0) {
        int err = weft__hook_errno();
        REAL(close)(ep);
        weft__hook_set_errno(err);
    }
    if (r >= 0) /* libc's poll leaves errno alone; others of the thread set it meanwhile */
        weft__hook_set_errno(caller_errno);
    return r;
}

static int64_t deadline_ms(int timeout)
{
    return timeout < 0 ? WEFT_FOREVER : weft_after(WEFT_MSEC(timeout));
}

static inline int hook_poll(struct pollfd *fds, nfds_t n, int timeout)
{
    if (WEFT_HOOK_LIKELY(!weft__hook_coro()) || timeout == 0)
        return REAL(poll)(fds, n, timeout);
    return weft__hook_poll(fds, n, deadline_ms(timeout), weft__hook_caller_errno());
}

WEFT_HOOK_API int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    return hook_poll(fds, n, timeout);
}

WEFT_HOOK_API int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
    if (fdslen / sizeof *fds < n)
        __chk_fail();
    return hook_poll(fds, n, timeout);
}

static inline int hook_ppoll(struct pollfd *fds, nfds_t n, const struct timespec *t,
                             const sigset_t *mask)
{
    if (WEFT_HOOK_LIKELY(!weft__hook_coro()) || mask || (t && !t->tv_sec && !t->tv_nsec))
        return REAL(ppoll)(fds, n, t, mask);
    if (t && (t->tv_sec < 0 || t->tv_nsec < 0 || t->tv_nsec >= 1000000000)) {
        weft__hook_set_errno(EINVAL);
        return -1;
    }
    return weft__hook_poll(fds, n, t ? weft_after(weft__hook_ts_ns(t)) : WEFT_FOREVER,
                           weft__hook_caller_errno());
}

WEFT_HOOK_API int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *t,
                        const sigset_t *mask)
{
    return hook_ppoll(fds, n, t, mask);
}

WEFT_HOOK_API int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *t,
                              const sigset_t *mask, size_t fdslen)
{
    if (fdslen / sizeof *fds < n)
        __chk_fail();
    return hook_ppoll(fds, n, t, mask);
}

/* select in a coroutine: the sets as a pollfd array (POLLIN for readfds, POLLOUT for
 * writefds, POLLPRI for exceptfds), weft__hook_poll, and back — a descriptor in error or hung
 * up counts as readable and writable, as the kernel's select has it. The timeval is updated
 * with the time left, as Linux does. */
WEFT_HOOK_API int select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv)
{
    if (WEFT_HOOK_LIKELY(!weft__hook_coro()) || (tv && !tv->tv_sec && !tv->tv_usec))
        return REAL(select)(nfds, rd, wr, ex, tv);
    int ce = weft__hook_caller_errno();
    if (nfds < 0 || nfds > FD_SETSIZE ||
        (tv && (tv->tv_sec < 0 || tv->tv_usec < 0 || tv->tv_usec >= 1000000))) {
        weft__hook_set_errno(EINVAL);
        return -1;
    }
    struct pollfd small[16], *p = small;
    int n = 0;
    for (int fd = 0; fd < nfds; fd++)
        n += (rd && FD_ISSET(fd, rd)) || (wr && FD_ISSET(fd, wr)) || (ex && FD_ISSET(fd, ex));
    if (n > (int)(sizeof small / sizeof small[0]) && !(p = malloc((size_t)n * sizeof *p))) {
        weft__hook_set_errno(ENOMEM);
        return -1;
    }
    int k = 0;
    for (int fd = 0; fd < nfds; fd++) {
        short ev =
            (short)((rd && FD_ISSET(fd, rd) ? POLLIN : 0) | (wr && FD_ISSET(fd, wr) ? POLLOUT : 0) |
                    (ex && FD_ISSET(fd, ex) ? POLLPRI : 0));
        if (ev)
            p[k++] = (struct pollfd){fd, ev, 0};
    }
    int64_t deadline =
        tv ? weft_after((int64_t)tv->tv_sec * 1000000000 + (int64_t)tv->tv_usec * 1000)
           : WEFT_FOREVER;
    int r = weft__hook_poll(p, (nfds_t)n, deadline, ce);
    int err = weft__hook_errno(); /* ce on success */
    if (r >= 0) {
        for (int i = 0; i < n; i++)
            if (p[i].revents & POLLNVAL) {
                r = -1;
                err = EBADF;
            }
    }
    if (r >= 0) {
        r = 0;
        for (int i = 0; i < n; i++) {
            short re = p[i].revents, ev = p[i].events;
            bool err_hup = re & (POLLERR | POLLHUP);
            if (rd && (ev & POLLIN) && !((re & (POLLIN | POLLRDHUP)) || err_hup))
                FD_CLR(p[i].fd, rd);
            else if (rd && (ev & POLLIN))
                r++;
            if (wr && (ev & POLLOUT) && !((re & POLLOUT) || (re & POLLERR)))
                FD_CLR(p[i].fd, wr);
            else if (wr && (ev & POLLOUT))
                r++;
            if (ex && (ev & POLLPRI) && !(re & POLLPRI))
                FD_CLR(p[i].fd, ex);
            else if (ex && (ev & POLLPRI))
                r++;
        }
        if (tv) {
            int64_t left = deadline - weft_now();
            if (left < 0)
                left = 0;
            tv->tv_sec = left / 1000000000;
            tv->tv_usec = (left % 1000000000) / 1000;
        }
    }
    if (p != small)
        free(p);
    weft__hook_set_errno(err);
    return r;
}
