/* SPDX-License-Identifier: MIT */
/* io.c — the data calls: read write readv writev recv recvfrom recvmsg send sendto sendmsg
 * (and their _FORTIFY_SOURCE variants), and the transfer loop they share with accept.
 *
 * Plain thread (the fast path): libc's call, then one test of its result. Only a failure with
 * EAGAIN (or a short write) on a descriptor the hook made non-blocking behind the program's
 * back goes on: the thread waits in libc's poll and tries again, so the program still sees a
 * blocking descriptor.
 * Coroutine: a descriptor the program sees as non-blocking, MSG_DONTWAIT, and descriptors the
 * hook does not manage (fdstate.c) go straight to libc. A managed blocking one is tried; on
 * EAGAIN the coroutine parks (park.c) until the descriptor is ready or its SO_RCVTIMEO /
 * SO_SNDTIMEO passes (then -1/EAGAIN, as libc), and tries again. Writes go on until every
 * byte is written, as a blocking write does; recv with MSG_WAITALL until len bytes are read;
 * a timeout or cancellation after some bytes moved returns that count (as a signal would). */
#define _GNU_SOURCE
#include "hook.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static ssize_t call_real(const struct weft__hook_call *c)
{
    switch (c->op) {
    case WEFT_HOOK_READ:
        return REAL(read)(c->fd, c->buf, c->len);
    case WEFT_HOOK_WRITE:
        return REAL(write)(c->fd, c->buf, c->len);
    case WEFT_HOOK_READV:
        return REAL(readv)(c->fd, c->iov, c->iovcnt);
    case WEFT_HOOK_WRITEV:
        return REAL(writev)(c->fd, c->iov, c->iovcnt);
    case WEFT_HOOK_RECV:
        return REAL(recvfrom)(c->fd, c->buf, c->len, c->flags, c->addr, c->addrlen);
    case WEFT_HOOK_SEND:
        return REAL(sendto)(c->fd, c->buf, c->len, c->flags, c->addr, c->addrlen_in);
    case WEFT_HOOK_RECVMSG:
        return REAL(recvmsg)(c->fd, c->msg, c->flags);
    case WEFT_HOOK_SENDMSG:
        return REAL(sendmsg)(c->fd, c->msg, c->flags);
    case WEFT_HOOK_ACCEPT:
        return REAL(accept4)(c->fd, c->addr, c->addrlen, c->flags);
    }
    return -1;
}

static bool writing(const struct weft__hook_call *c)
{
    return c->op == WEFT_HOOK_WRITE || c->op == WEFT_HOOK_WRITEV || c->op == WEFT_HOOK_SEND ||
           c->op == WEFT_HOOK_SENDMSG;
}

static size_t iov_total(const struct iovec *iov, int cnt)
{
    size_t n = 0;
    for (int i = 0; i < cnt; i++)
        n += iov[i].iov_len;
    return n;
}

/* The bytes the call still has to move for a blocking descriptor's semantics: a write's
 * remainder, a MSG_WAITALL recv's remainder; 0 for calls that return what they got. */
static size_t wanted(const struct weft__hook_call *c)
{
    switch (c->op) {
    case WEFT_HOOK_WRITE:
    case WEFT_HOOK_SEND:
        return c->len;
    case WEFT_HOOK_RECV:
        return c->flags & MSG_WAITALL ? c->len : 0;
    case WEFT_HOOK_WRITEV:
        return iov_total(c->iov, c->iovcnt);
    case WEFT_HOOK_SENDMSG:
        return iov_total(c->msg->msg_iov, (int)c->msg->msg_iovlen);
    default:
        return 0;
    }
}

/* Copies of the caller's iovec array and msghdr, advanced past what was written (the
 * caller's own are const to us). Ancillary data goes with the first bytes only. */
struct iov_copy {
    struct iovec small[8];
    struct iovec *iov;
    struct msghdr msg;
};

static int advance(struct weft__hook_call *c, struct iov_copy *cp, size_t n)
{
    if (c->op == WEFT_HOOK_WRITE || c->op == WEFT_HOOK_SEND || c->op == WEFT_HOOK_RECV) {
        c->buf = (char *)c->buf + n;
        c->len -= n;
        return 0;
    }
    const struct iovec *src = c->op == WEFT_HOOK_WRITEV ? c->iov : c->msg->msg_iov;
    int cnt = c->op == WEFT_HOOK_WRITEV ? c->iovcnt : (int)c->msg->msg_iovlen;
    if (!cp->iov) {
        cp->iov = (size_t)cnt <= sizeof cp->small / sizeof cp->small[0]
                      ? cp->small
                      : malloc((size_t)cnt * sizeof *cp->iov);
        if (!cp->iov)
            return -1;
        memcpy(cp->iov, src, (size_t)cnt * sizeof *src);
        src = cp->iov;
    }
    int i = 0;
    while (i < cnt && n >= cp->iov[i].iov_len)
        n -= cp->iov[i++].iov_len;
    if (i < cnt) {
        cp->iov[i].iov_base = (char *)cp->iov[i].iov_base + n;
        cp->iov[i].iov_len -= n;
    }
    /* cp->iov is rebased so that its first element is the next byte to write. */
    memmove(cp->iov, cp->iov + i, (size_t)(cnt - i) * sizeof *cp->iov);
    if (c->op == WEFT_HOOK_WRITEV) {
        c->iov = cp->iov;
        c->iovcnt = cnt - i;
    } else {
        cp->msg = *c->msg;
        cp->msg.msg_iov = cp->iov;
        cp->msg.msg_iovlen = (size_t)(cnt - i);
        cp->msg.msg_control = NULL;
        cp->msg.msg_controllen = 0;
        c->msg = &cp->msg;
    }
    return 0;
}

static bool dontwait(const struct weft__hook_call *c)
{
    return (c->op == WEFT_HOOK_RECV || c->op == WEFT_HOOK_SEND || c->op == WEFT_HOOK_RECVMSG ||
            c->op == WEFT_HOOK_SENDMSG) &&
           (c->flags & MSG_DONTWAIT);
}

__thread unsigned weft__hook_probe_hits;

ssize_t weft__hook_transfer(struct weft__hook_call *c, ssize_t first, struct weft__hook_fd *e)
{
    if (WEFT_HOOK_UNLIKELY(c->fd == -1))
        weft__hook_probe_hits++;
    bool coro = e != NULL;
    if (dontwait(c))
        return first;
    if (!coro) {
        /* A plain thread's failed or short call: is the descriptor one the hook made
         * non-blocking while the program sees it blocking? (No system call here.) */
        int err = weft__hook_errno();
        if (!weft__hook_fd_parks_known(c->fd) || !(e = weft__hook_fd(c->fd)))
            return first;
        weft__hook_set_errno(err);
    }
    bool w = writing(c);
    int events = w ? WEFT_WRITABLE : WEFT_READABLE;
    size_t want = wanted(c), done = 0;
    struct iov_copy cp;
    cp.iov = NULL;
    int64_t deadline = 0;
    bool have_deadline = false;
    ssize_t r = first, ret;
    for (;;) {
        if (r == WEFT_HOOK_NOT_TRIED)
            r = call_real(c);
        if (r >= 0) {
            done += (size_t)r;
            if (r == 0 || done >= want || advance(c, &cp, (size_t)r) < 0) {
                ret = c->op == WEFT_HOOK_ACCEPT ? r : (ssize_t)done;
                break;
            }
            r = WEFT_HOOK_NOT_TRIED; /* more to move: try again at once */
            continue;
        }
        int err = weft__hook_errno();
        if (err != EAGAIN && err != EWOULDBLOCK) {
            ret = done ? (ssize_t)done : -1;
            break;
        }
        if (!have_deadline) {
            deadline = weft__hook_deadline(
                atomic_load_explicit(w ? &e->snd_ns : &e->rcv_ns, memory_order_relaxed));
            have_deadline = true;
        }
        int p = coro ? weft__hook_park_fd(c->fd, events, deadline)
                     : weft__hook_poll_thread(c->fd, events, deadline);
        if (p < 0) {
            weft__hook_set_errno(-p);
            ret = done ? (ssize_t)done : -1;
            break;
        }
        r = WEFT_HOOK_NOT_TRIED;
    }
    if (cp.iov && cp.iov != cp.small) {
        int err = weft__hook_errno();
        free(cp.iov);
        weft__hook_set_errno(err);
    }
    if (ret >= 0)
        weft__hook_set_errno(c->caller_errno); /* untouched on success (hook.h) */
    return ret;
}

/* ---- the interposed functions ---------------------------------------------------------------
 * Each is two parts. The inline front (weft__hook_plain): outside a coroutine, on a
 * descriptor the hook did not make non-blocking behind the program's back, libc's call as a
 * tail call — one thread-local load and a branch, then the table test, and no frame, no errno
 * read. Everything else goes to an out-of-line slow part: in a coroutine, whether the
 * descriptor parks (an inline table lookup); the caller's errno; libc's call; one test of its
 * result; the rest in weft__hook_transfer. A plain thread on a descriptor the hook made
 * non-blocking (a coroutine used it) takes the slow part too, whose transfer waits in libc's
 * poll. (A plain thread whose call races with a coroutine's first use of the same descriptor
 * — the table says "not made non-blocking" just before the coroutine makes it so — can get
 * EAGAIN on a descriptor it sees as blocking: two threads using one descriptor for the first
 * time at the same moment; the slow part's check after a failure, as before, narrows that.) */

/* The descriptor's parking state in a coroutine; NULL on a plain thread. */
static inline struct weft__hook_fd *parks(int fd)
{
    return weft__hook_coro() ? weft__hook_fd_parks(fd) : NULL;
}

/* libc's call may be made at once, as a tail call: not a worker's thread (a worker's thread
 * outside a coroutine — libev's own reads — takes the slow part, which finds no coroutine),
 * and not a descriptor the hook made non-blocking while the program sees it blocking. Numbers
 * beyond the table and negative ones take the slow part too (they are errors or rare; and
 * weft_hook_active's probe is a read of -1 that the slow part counts). */
static inline bool weft__hook_plain(int fd)
{
    return WEFT_HOOK_LIKELY(weft__tls_worker == NULL) &&
           (unsigned)fd < (unsigned)WEFT_HOOK_NCHUNKS << WEFT_HOOK_CHUNK_BITS &&
           !weft__hook_fd_parks_known(fd);
}

#define WEFT_HOOK_SLOW __attribute__((noinline))

static WEFT_HOOK_SLOW ssize_t read_slow(int fd, void *buf, size_t n)
{
    struct weft__hook_fd *e = parks(fd);
    int ce = weft__hook_caller_errno();
    ssize_t r = REAL(read)(fd, buf, n);
    if (WEFT_HOOK_LIKELY(r >= 0))
        return r;
    struct weft__hook_call c = {
        .op = WEFT_HOOK_READ, .fd = fd, .buf = buf, .len = n, .caller_errno = ce};
    return weft__hook_transfer(&c, r, e);
}

static inline ssize_t hook_read(int fd, void *buf, size_t n)
{
    if (weft__hook_plain(fd))
        return REAL(read)(fd, buf, n);
    return read_slow(fd, buf, n);
}

WEFT_HOOK_API ssize_t read(int fd, void *buf, size_t n)
{
    return hook_read(fd, buf, n);
}

WEFT_HOOK_API ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
    if (n > buflen)
        __chk_fail();
    return hook_read(fd, buf, n);
}

static WEFT_HOOK_SLOW ssize_t write_slow(int fd, const void *buf, size_t n)
{
    struct weft__hook_fd *e = parks(fd);
    int ce = weft__hook_caller_errno();
    ssize_t r = REAL(write)(fd, buf, n);
    if (WEFT_HOOK_LIKELY(r == (ssize_t)n))
        return r;
    struct weft__hook_call c = {
        .op = WEFT_HOOK_WRITE, .fd = fd, .buf = (void *)buf, .len = n, .caller_errno = ce};
    return weft__hook_transfer(&c, r, e);
}

WEFT_HOOK_API ssize_t write(int fd, const void *buf, size_t n)
{
    if (weft__hook_plain(fd))
        return REAL(write)(fd, buf, n);
    return write_slow(fd, buf, n);
}

static WEFT_HOOK_SLOW ssize_t readv_slow(int fd, const struct iovec *iov, int cnt)
{
    struct weft__hook_fd *e = parks(fd);
    int ce = weft__hook_caller_errno();
    ssize_t r = REAL(readv)(fd, iov, cnt);
    if (WEFT_HOOK_LIKELY(r >= 0))
        return r;
    struct weft__hook_call c = {
        .op = WEFT_HOOK_READV, .fd = fd, .iov = iov, .iovcnt = cnt, .caller_errno = ce};
    return weft__hook_transfer(&c, r, e);
}

WEFT_HOOK_API ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
    if (weft__hook_plain(fd))
        return REAL(readv)(fd, iov, cnt);
    return readv_slow(fd, iov, cnt);
}

static WEFT_HOOK_SLOW ssize_t writev_slow(int fd, const struct iovec *iov, int cnt)
{
    struct weft__hook_fd *e = parks(fd);
    int ce = weft__hook_caller_errno();
    ssize_t r = REAL(writev)(fd, iov, cnt);
    if (WEFT_HOOK_LIKELY(r >= 0 && (size_t)r == iov_total(iov, cnt)))
        return r;
    struct weft__hook_call c = {
        .op = WEFT_HOOK_WRITEV, .fd = fd, .iov = iov, .iovcnt = cnt, .caller_errno = ce};
    return weft__hook_transfer(&c, r, e);
}

WEFT_HOOK_API ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    if (weft__hook_plain(fd))
        return REAL(writev)(fd, iov, cnt);
    return writev_slow(fd, iov, cnt);
}

static WEFT_HOOK_SLOW ssize_t recvfrom_slow(int fd, void *buf, size_t n, int fl, struct sockaddr *a,
                                            socklen_t *al)
{
    struct weft__hook_fd *e = parks(fd);
    int ce = weft__hook_caller_errno();
    ssize_t r = REAL(recvfrom)(fd, buf, n, fl, a, al);
    if (WEFT_HOOK_LIKELY(r >= 0 && (!(fl & MSG_WAITALL) || (size_t)r == n || r == 0)))
        return r;
    struct weft__hook_call c = {.op = WEFT_HOOK_RECV,
                                .fd = fd,
                                .flags = fl,
                                .buf = buf,
                                .len = n,
                                .addr = a,
                                .addrlen = al,
                                .caller_errno = ce};
    return weft__hook_transfer(&c, r, e);
}

static inline ssize_t hook_recvfrom(int fd, void *buf, size_t n, int fl, struct sockaddr *a,
                                    socklen_t *al)
{
    if (weft__hook_plain(fd))
        return REAL(recvfrom)(fd, buf, n, fl, a, al);
    return recvfrom_slow(fd, buf, n, fl, a, al);
}

WEFT_HOOK_API ssize_t recv(int fd, void *buf, size_t n, int fl)
{
    return hook_recvfrom(fd, buf, n, fl, NULL, NULL);
}

WEFT_HOOK_API ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int fl)
{
    if (n > buflen)
        __chk_fail();
    return hook_recvfrom(fd, buf, n, fl, NULL, NULL);
}

WEFT_HOOK_API ssize_t recvfrom(int fd, void *buf, size_t n, int fl, struct sockaddr *a,
                               socklen_t *al)
{
    return hook_recvfrom(fd, buf, n, fl, a, al);
}

WEFT_HOOK_API ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int fl,
                                     struct sockaddr *a, socklen_t *al)
{
    if (n > buflen)
        __chk_fail();
    return hook_recvfrom(fd, buf, n, fl, a, al);
}

static WEFT_HOOK_SLOW ssize_t recvmsg_slow(int fd, struct msghdr *m, int fl)
{
    struct weft__hook_fd *e = parks(fd);
    int ce = weft__hook_caller_errno();
    ssize_t r = REAL(recvmsg)(fd, m, fl);
    if (WEFT_HOOK_LIKELY(r >= 0))
        return r;
    struct weft__hook_call c = {
        .op = WEFT_HOOK_RECVMSG, .fd = fd, .flags = fl, .msg = m, .caller_errno = ce};
    return weft__hook_transfer(&c, r, e);
}

WEFT_HOOK_API ssize_t recvmsg(int fd, struct msghdr *m, int fl)
{
    if (weft__hook_plain(fd))
        return REAL(recvmsg)(fd, m, fl);
    return recvmsg_slow(fd, m, fl);
}

static WEFT_HOOK_SLOW ssize_t sendto_slow(int fd, const void *buf, size_t n, int fl,
                                          const struct sockaddr *a, socklen_t al)
{
    struct weft__hook_fd *e = parks(fd);
    int ce = weft__hook_caller_errno();
    ssize_t r = REAL(sendto)(fd, buf, n, fl, a, al);
    if (WEFT_HOOK_LIKELY(r == (ssize_t)n))
        return r;
    struct weft__hook_call c = {.op = WEFT_HOOK_SEND,
                                .fd = fd,
                                .flags = fl,
                                .buf = (void *)buf,
                                .len = n,
                                .addr = (struct sockaddr *)a,
                                .addrlen_in = al,
                                .caller_errno = ce};
    return weft__hook_transfer(&c, r, e);
}

static inline ssize_t hook_sendto(int fd, const void *buf, size_t n, int fl,
                                  const struct sockaddr *a, socklen_t al)
{
    if (weft__hook_plain(fd))
        return REAL(sendto)(fd, buf, n, fl, a, al);
    return sendto_slow(fd, buf, n, fl, a, al);
}

WEFT_HOOK_API ssize_t send(int fd, const void *buf, size_t n, int fl)
{
    return hook_sendto(fd, buf, n, fl, NULL, 0);
}

WEFT_HOOK_API ssize_t sendto(int fd, const void *buf, size_t n, int fl, const struct sockaddr *a,
                             socklen_t al)
{
    return hook_sendto(fd, buf, n, fl, a, al);
}

static WEFT_HOOK_SLOW ssize_t sendmsg_slow(int fd, const struct msghdr *m, int fl)
{
    struct weft__hook_fd *e = parks(fd);
    int ce = weft__hook_caller_errno();
    ssize_t r = REAL(sendmsg)(fd, m, fl);
    if (WEFT_HOOK_LIKELY(r >= 0 && (size_t)r == iov_total(m->msg_iov, (int)m->msg_iovlen)))
        return r;
    struct weft__hook_call c = {.op = WEFT_HOOK_SENDMSG,
                                .fd = fd,
                                .flags = fl,
                                .msg = (struct msghdr *)m,
                                .caller_errno = ce};
    return weft__hook_transfer(&c, r, e);
}

WEFT_HOOK_API ssize_t sendmsg(int fd, const struct msghdr *m, int fl)
{
    if (weft__hook_plain(fd))
        return REAL(sendmsg)(fd, m, fl);
    return sendmsg_slow(fd, m, fl);
}
