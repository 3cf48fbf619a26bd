/* SPDX-License-Identifier: MIT */
/* hook.h — internals of libweft-hook (include/weft/hook.h is the contract): the real libc
 * functions, the per-descriptor state, and parking a coroutine inside a hooked call.
 *
 * The library interposes libc's blocking calls by defining them (read, write, poll, ...):
 * loaded before libc (linked, or LD_PRELOAD), the dynamic linker binds every other module's
 * calls to them. Each one starts with the same test, weft__hook_coro(): outside a coroutine
 * (a plain thread, the blocking pool, a worker between coroutines, before weft_run) it is
 * libc's function called through a pointer; in a coroutine it may park the coroutine where
 * libc would block the thread.
 *
 * The affinity rule: every park inside a hooked call is pinned (weft_pin/weft_unpin around
 * it), so the coroutine resumes on the worker it parked on. A library call made of hooked
 * calls (SSL_read: read, read, ...) therefore runs on one thread from its start to its end,
 * and the thread-local state the library keeps across its system calls (errno, OpenSSL's
 * error queue, the resolver's state) stays the thread's it started on. Between two library
 * calls the coroutine migrates as usual.
 *
 * errno: glibc's __errno_location is `const`, so a compiler may keep the address of one
 * thread's errno across a park after which the coroutine runs on another thread. Pinned
 * parks resume on the same thread, but errno is still read and written only through the
 * out-of-line weft__hook_errno / weft__hook_set_errno, never across a park in one
 * expression. */
#ifndef WEFT_HOOK_INTERNAL_H
#define WEFT_HOOK_INTERNAL_H

#include <weft.h>

#include "../core/hookabi.h"

#include <errno.h>

#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

struct addrinfo;
struct hostent;

#define WEFT_HOOK_API __attribute__((visibility("default")))
#define WEFT_HOOK_LIKELY(x) __builtin_expect(!!(x), 1)
#define WEFT_HOOK_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ---- the real functions (real.c) ------------------------------------------------------------
 * One pointer per function, found with dlsym(RTLD_NEXT) — the next definition after this
 * library in the lookup order: libc's, or a sanitizer's interceptor, which then calls libc.
 * Each pointer starts at a resolver stub that looks the function up, stores it (relaxed
 * atomic: every thread stores the same value) and calls it, so the fast path has no
 * "resolved yet?" branch. */
#define WEFT_HOOK_REAL_LIST(X)                                                                     \
    X(read, ssize_t, (int fd, void *buf, size_t n), (fd, buf, n))                                  \
    X(write, ssize_t, (int fd, const void *buf, size_t n), (fd, buf, n))                           \
    X(readv, ssize_t, (int fd, const struct iovec *iov, int cnt), (fd, iov, cnt))                  \
    X(writev, ssize_t, (int fd, const struct iovec *iov, int cnt), (fd, iov, cnt))                 \
    X(recvfrom, ssize_t, (int fd, void *buf, size_t n, int fl, struct sockaddr *a, socklen_t *al), \
      (fd, buf, n, fl, a, al))                                                                     \
    X(sendto, ssize_t,                                                                             \
      (int fd, const void *buf, size_t n, int fl, const struct sockaddr *a, socklen_t al),         \
      (fd, buf, n, fl, a, al))                                                                     \
    X(recvmsg, ssize_t, (int fd, struct msghdr *m, int fl), (fd, m, fl))                           \
    X(sendmsg, ssize_t, (int fd, const struct msghdr *m, int fl), (fd, m, fl))                     \
    X(connect, int, (int fd, const struct sockaddr *a, socklen_t al), (fd, a, al))                 \
    X(accept4, int, (int fd, struct sockaddr *a, socklen_t *al, int fl), (fd, a, al, fl))          \
    X(poll, int, (struct pollfd * fds, nfds_t n, int t), (fds, n, t))                              \
    X(ppoll, int, (struct pollfd * fds, nfds_t n, const struct timespec *t, const sigset_t *s),    \
      (fds, n, t, s))                                                                              \
    X(select, int, (int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *t), (n, r, w, e, t))   \
    X(nanosleep, int, (const struct timespec *req, struct timespec *rem), (req, rem))              \
    X(clock_nanosleep, int,                                                                        \
      (clockid_t c, int fl, const struct timespec *req, struct timespec *rem), (c, fl, req, rem))  \
    X(sleep, unsigned, (unsigned s), (s))                                                          \
    X(usleep, int, (useconds_t us), (us))                                                          \
    X(socket, int, (int d, int t, int p), (d, t, p))                                               \
    X(socketpair, int, (int d, int t, int p, int sv[2]), (d, t, p, sv))                            \
    X(pipe, int, (int fds[2]), (fds))                                                              \
    X(pipe2, int, (int fds[2], int fl), (fds, fl))                                                 \
    X(close, int, (int fd), (fd))                                                                  \
    X(dup, int, (int fd), (fd))                                                                    \
    X(dup2, int, (int a, int b), (a, b))                                                           \
    X(dup3, int, (int a, int b, int fl), (a, b, fl))                                               \
    X(setsockopt, int, (int fd, int lv, int nm, const void *v, socklen_t l), (fd, lv, nm, v, l))   \
    X(getaddrinfo, int,                                                                            \
      (const char *n, const char *s, const struct addrinfo *h, struct addrinfo **r), (n, s, h, r)) \
    X(gethostbyname, struct hostent *, (const char *n), (n))                                       \
    X(gethostbyname_r, int,                                                                        \
      (const char *n, struct hostent *h, char *b, size_t bl, struct hostent **r, int *e),          \
      (n, h, b, bl, r, e))

#define WEFT_HOOK_REAL_DECL(name, ret, params, args) extern ret(*_Atomic weft__real_##name) params;
WEFT_HOOK_REAL_LIST(WEFT_HOOK_REAL_DECL)
#undef WEFT_HOOK_REAL_DECL
/* The variadic ones, whose stubs pass their one optional argument on as a pointer-sized
 * value (as glibc's own fcntl and ioctl read it). */
extern int (*_Atomic weft__real_fcntl)(int fd, int cmd, ...);
extern int (*_Atomic weft__real_fcntl64)(int fd, int cmd, ...);
extern int (*_Atomic weft__real_ioctl)(int fd, unsigned long req, ...);
/* Call libc's `name` (relaxed load: the pointer is the stub or the final function, both fine
 * to call from any thread). */
#define REAL(name) (atomic_load_explicit(&weft__real_##name, memory_order_relaxed))

/* ---- where we are ----------------------------------------------------------------------------
 * True in a coroutine whose calls may park: the only test on every hooked call's fast path.
 * On a plain thread one load of libweft's thread-local worker pointer and one branch
 * (src/core/hookabi.h); on a worker's thread a call into libweft for the rest (a coroutine
 * running, weft_hook_disable not in force). */
static inline bool weft__hook_coro(void)
{
    return weft__tls_worker != NULL && weft__hook_target();
}

/* errno of the calling thread, read / written out of line (see the file header). */
int weft__hook_errno(void);
void weft__hook_set_errno(int e);

/* Park the calling coroutine until fd has `events` (WEFT_READABLE/WEFT_WRITABLE) or the
 * deadline passes, pinned to its worker (the affinity rule). fd must be open: every caller
 * just had EAGAIN, EINPROGRESS or a poll's 0 from it (weft__wait_fd_open: not asked again). Returns > 0 (ready), or -errno
 * to report: -EAGAIN for the deadline (libc's answer to an SO_*TIMEO expiry), -ECANCELED for
 * a cancelled coroutine, -EBADF... When weft cannot park (no timer record: WEFT_ENOMEM) the
 * thread blocks in libc's poll instead, as it would without the hook. */
int weft__hook_park_fd(int fd, int events, int64_t deadline);
/* Park the calling coroutine until the deadline, pinned: 0, or -ECANCELED. A sleep weft
 * cannot park (WEFT_ENOMEM) is slept by libc's nanosleep instead. */
int weft__hook_park_until(int64_t deadline);
/* A thread-blocking wait for fd (a plain thread on a descriptor the hook made non-blocking
 * behind its back): libc's poll until ready or the deadline: > 0, or -EAGAIN at the deadline,
 * or -errno. */
int weft__hook_poll_thread(int fd, int events, int64_t deadline);
/* A relative timeout in ns (0: none) as a deadline (WEFT_FOREVER for none). */
int64_t weft__hook_deadline(int64_t timeout_ns);

/* ---- per-descriptor state (fdstate.c) -------------------------------------------------------
 * What the hook knows about a descriptor number, for descriptors the hook may park on:
 * sockets, and pipes made by a hooked pipe()/pipe2()/socketpair(). Such a descriptor, once a
 * coroutine uses it, has O_NONBLOCK set on the real open file while the program's view (what
 * fcntl(F_GETFL) reports and what the hooked calls honour) stays what the program set. */
enum {
    WEFT_HOOK_FD_KNOWN = 1u,   /* the fields below describe the open file at this number */
    WEFT_HOOK_FD_MANAGED = 2u, /* socket or hook-made pipe, real O_NONBLOCK set */
    WEFT_HOOK_FD_USER_NB = 4u, /* the program's view: non-blocking */
    WEFT_HOOK_FD_OURS = 8u,    /* made by a hooked pipe/pipe2 (FIFOs may be managed) */
};
struct weft__hook_fd {
    _Atomic uint32_t flags;
    _Atomic int64_t rcv_ns, snd_ns; /* SO_RCVTIMEO / SO_SNDTIMEO in ns; 0: none */
};
/* The state of fd, or NULL for a negative or very large number (no state: passed through). */
struct weft__hook_fd *weft__hook_fd(int fd);
/* The same without allocating: NULL when nothing was ever recorded near fd. */
struct weft__hook_fd *weft__hook_fd_peek(int fd);
#define WEFT_HOOK_CHUNK_BITS 10
#define WEFT_HOOK_NCHUNKS 4096 /* numbers below 4 Mi have state; beyond, calls pass through */
extern _Atomic(struct weft__hook_fd *) weft__hook_chunks[WEFT_HOOK_NCHUNKS];
struct weft__hook_fd *weft__hook_fd_parks_slow(int fd);
/* In a coroutine: the state of fd if calls on it should park (a managed descriptor the
 * program sees as blocking), learning the descriptor at its first use (which sets its real
 * O_NONBLOCK); NULL to pass the call through to libc. Inline for a known descriptor. */
static inline struct weft__hook_fd *weft__hook_fd_parks(int fd)
{
    if ((unsigned)fd < (unsigned)WEFT_HOOK_NCHUNKS << WEFT_HOOK_CHUNK_BITS) {
        struct weft__hook_fd *c = atomic_load_explicit(
            &weft__hook_chunks[fd >> WEFT_HOOK_CHUNK_BITS], memory_order_acquire);
        if (WEFT_HOOK_LIKELY(c != NULL)) {
            struct weft__hook_fd *e = &c[fd & ((1 << WEFT_HOOK_CHUNK_BITS) - 1)];
            uint32_t f = atomic_load_explicit(&e->flags, memory_order_relaxed);
            if (WEFT_HOOK_LIKELY(f & WEFT_HOOK_FD_KNOWN))
                return (f & (WEFT_HOOK_FD_MANAGED | WEFT_HOOK_FD_USER_NB)) == WEFT_HOOK_FD_MANAGED
                           ? e
                           : NULL;
        }
    }
    return weft__hook_fd_parks_slow(fd);
}
/* The same test without learning (any thread; inline: the plain-thread fast path's): a
 * managed descriptor the program sees as blocking. */
static inline bool weft__hook_fd_parks_known(int fd)
{
    if ((unsigned)fd >= (unsigned)WEFT_HOOK_NCHUNKS << WEFT_HOOK_CHUNK_BITS)
        return false;
    struct weft__hook_fd *c =
        atomic_load_explicit(&weft__hook_chunks[fd >> WEFT_HOOK_CHUNK_BITS], memory_order_acquire);
    if (WEFT_HOOK_LIKELY(c == NULL))
        return false;
    uint32_t f = atomic_load_explicit(&c[fd & ((1 << WEFT_HOOK_CHUNK_BITS) - 1)].flags,
                                      memory_order_relaxed);
    return (f & (WEFT_HOOK_FD_KNOWN | WEFT_HOOK_FD_MANAGED | WEFT_HOOK_FD_USER_NB)) ==
           (WEFT_HOOK_FD_KNOWN | WEFT_HOOK_FD_MANAGED);
}
/* A new descriptor at this number (socket, accept, close...): forget it; `flags` start it. */
void weft__hook_fd_reset(int fd, uint32_t flags);
/* `to` is a duplicate of `from` (dup, dup2, dup3, F_DUPFD). */
void weft__hook_fd_copy(int from, int to);

/* ---- the transfer loop (io.c) -------------------------------------------------------------- */
enum weft__hook_op {
    WEFT_HOOK_READ,
    WEFT_HOOK_WRITE,
    WEFT_HOOK_READV,
    WEFT_HOOK_WRITEV,
    WEFT_HOOK_RECV,
    WEFT_HOOK_SEND,
    WEFT_HOOK_RECVMSG,
    WEFT_HOOK_SENDMSG,
    WEFT_HOOK_ACCEPT,
};
struct weft__hook_call {
    enum weft__hook_op op;
    int fd;
    int flags; /* MSG_* or accept4's SOCK_* */
    void *buf;
    size_t len;
    const struct iovec *iov;
    int iovcnt;
    struct msghdr *msg;
    struct sockaddr *addr; /* recvfrom/accept: out; sendto: in (const) */
    socklen_t *addrlen;
    socklen_t addrlen_in; /* sendto */
    int caller_errno;     /* errno before libc's call (weft__hook_caller_errno) */
};
/* errno as the caller left it, read at a hooked call's entry (before anything can park, so
 * the inline read is of the calling thread's errno), on plain threads too: a call that
 * succeeds after an EAGAIN and a wait (a park, or libc's poll on a plain thread) leaves errno
 * as libc's blocking call leaves it on success — untouched — rather than that EAGAIN, or what
 * other coroutines of the thread set while this one was parked (OpenSSL reads errno after a
 * read returned 0, the peer's close, and took a left-over EAGAIN for "retry": SSL_read said
 * SSL_ERROR_WANT_READ on a blocking socket; test_hook_openssl, test_hook_errno). */
static inline int weft__hook_caller_errno(void)
{
    return errno;
}
/* What follows a first attempt `first` that did not finish the call (an error, a short write,
 * a MSG_WAITALL recv short of len): with `e` (a coroutine on a descriptor that parks, from
 * weft__hook_fd_parks) the coroutine parks and the call goes on; with e NULL (a plain thread,
 * or a descriptor that does not park) it goes on, waiting in libc's poll, only for a
 * descriptor the hook made non-blocking behind the program's back; otherwise `first` is the
 * answer, errno as libc left it. */
ssize_t weft__hook_transfer(struct weft__hook_call *c, ssize_t first, struct weft__hook_fd *e);
/* "Not tried yet", inside the transfer loop. */
#define WEFT_HOOK_NOT_TRIED ((ssize_t)INT64_MIN)
/* Calls on descriptor -1 that reached the hook on this thread: weft_hook_active's probe
 * (api.c). Thread-local, touched only on the failure path. */
extern __thread unsigned weft__hook_probe_hits;

/* ---- poll (poll.c) ------------------------------------------------------------------------- */
/* A coroutine's poll: parks until one of fds is ready or the deadline passes; on success
 * errno is `caller_errno` (the caller's, read at its entry). */
int weft__hook_poll(struct pollfd *fds, nfds_t n, int64_t deadline, int caller_errno);

/* ---- glibc's _FORTIFY_SOURCE entry points (no header declares them) ----------------------- */
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int fl);
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int fl, struct sockaddr *a,
                       socklen_t *al);
int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen);
int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *t, const sigset_t *mask,
                size_t fdslen);
int fcntl64(int fd, int cmd, ...);
void __chk_fail(void) __attribute__((noreturn));

/* ---- time ---------------------------------------------------------------------------------- */
static inline int64_t weft__hook_ts_ns(const struct timespec *ts)
{
    return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

#endif
