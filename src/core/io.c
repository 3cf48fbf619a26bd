/* SPDX-License-Identifier: MIT */
/* io.c — floor 4 (waiting): fd waits (weft_wait_fd), the per-descriptor hints, and
 * blocking-style read/write: a coroutine that would block on a descriptor parks in its
 * worker's libev loop instead. Sockets are net.c's, the buffered reader reader.c's.
 *
 * Each wait gets a one-shot ev_io loop record (looprec.h) from the pool of the worker the
 * coroutine parks on, started in that worker's loop (loops are single-threaded) and stopped
 * when the wait ends: by the callback itself when the descriptor becomes ready, or — after a
 * timeout or a cancellation, possibly on another worker — through the owner's inbox, like
 * timer records (timer.c). Records are freed only by their owner, when the stop arrives.
 * libev keeps an fd registered in epoll after a stop and drops it lazily, so a
 * stop and restart on the same worker between two polls costs no epoll_ctl when the wait is
 * for the same socket as before (same SO_COOKIE: see same_file_as_before); any other
 * descriptor, or a number closed and reused meanwhile, is re-registered (libev: ENOENT on
 * MOD → ADD).
 * A wait ended by anything but readiness is stopped on its owner before it returns (the
 * caller may close the descriptor next; see wait_fd). Callers must still not close a
 * descriptor another coroutine is waiting on (as with any event loop).
 *
 * Never blocking the thread, whatever the descriptor's history: a number may be closed with
 * close(2) (or fclose, or by a library) and reused for another file behind weft's back, so
 * nothing weft remembers about a number is trusted to decide whether a system call may block.
 * Sockets are read and written with MSG_DONTWAIT on every call; other descriptors have
 * O_NONBLOCK checked (fcntl F_GETFL) at every call, before its first read/write; accept and
 * connect check it at every call. What weft remembers per number (fd_hints) only saves
 * work: whether it already put the number in non-blocking mode, and whether it was last seen
 * as a non-socket (to skip the recv/send that would fail with ENOTSOCK). A stale hint costs
 * a system call, never a blocked worker.
 *
 * Cancellation: every call here that takes a deadline is a cancellation point even when it
 * would not have to wait (weft__cancel_point at entry, before any effect), so a loop of reads
 * on a descriptor that is always ready still sees WEFT_ECANCELED (weft.h).
 *
 * errno: every system call is made in a small noinline helper that returns -errno at once,
 * never across a switch (glibc's __errno_location is `const`, so a compiler may reuse the
 * address of one thread's errno after the coroutine moved to another thread). */
#define _GNU_SOURCE
#include "clock.h"
#include "fdwait.h"
#include "hookabi.h"
#include "load.h"
#include "looprec.h"
#include "scheduler.h"
#include "timer.h"
#include "trace.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* The fd-wait kind's stop (looprec.h), on the owner's thread. */
static void io_stop(struct weft__worker *w, struct weft__looprec *r)
{
    ev_io_stop(w->loop, &r->ev.io);
    w->io_waits--;
}

void weft__io_cache_free(struct weft__worker *w)
{
    free(w->fd_seen);
    w->fd_seen = NULL;
}

static void on_io(struct ev_loop *loop, ev_io *io, int revents)
{
    struct weft__looprec *r = (struct weft__looprec *)io; /* the record's first member */
    ev_io_stop(loop, io); /* one-shot: never fires again for this wait */
    int ev = (revents & EV_READ ? WEFT_READABLE : 0) | (revents & EV_WRITE ? WEFT_WRITABLE : 0);
    WEFT__TRACE(r->owner->index, WEFT__TR_FD_READY, r->k.co ? r->k.co->id : 0, io->fd, ev);
    weft__waker_wake(&r->k, ev ? ev : (WEFT_READABLE | WEFT_WRITABLE), false);
}

/* ---- waiting ----------------------------------------------------------------------------- */

struct hint_table {
    size_t size; /* entries of `hint` and of every worker's fd_seen */
    _Atomic unsigned char hint[];
};
static struct hint_table *hint_table(void);

/* ev_io_init marks the descriptor as possibly reopened (EV__IOFDSET), which makes libev
 * re-register it with epoll at its next poll: one failing epoll_ctl(ADD → EEXIST) per wait
 * (330 K for 336 K HTTP requests, measured). When this worker's loop registered the same
 * socket at this number before, the mark is dropped: a wait that follows the previous one's
 * stop within one loop iteration then costs no epoll_ctl at all.
 *
 * "The same socket" is the kernel's answer, asked at every wait (sys_fd_cookie), not
 * anything weft remembers: a number closed with close(2) and reused between two waits names
 * a new open file that the epoll set does not hold (the kernel dropped the old one at its
 * last close), and without the mark libev would never register it — the wait would miss
 * every event. A socket's cookie (SO_COOKIE) is unique for the life of the system, so an
 * equal cookie is the same socket, hence the same open file. Other descriptors have no such
 * identity (a tty or a FIFO reopened keeps its inode, eventfds share one anonymous inode):
 * their waits always keep the mark. */
static void same_file_as_before(struct weft__worker *w, struct weft__looprec *r, int fd,
                                uint64_t cookie)
{
    struct hint_table *t = hint_table();
    if (!t || (size_t)fd >= t->size)
        return;
    if (!w->fd_seen && !(w->fd_seen = calloc(t->size, sizeof *w->fd_seen)))
        return;
    if (cookie && w->fd_seen[fd] == cookie)
        r->ev.io.events &= ~EV__IOFDSET;
    else
        w->fd_seen[fd] = cookie;
}

/* Is fd open, and which socket is it: 0 with *cookie set (0: not a socket, or a kernel
 * without SO_COOKIE, before 4.12), or -errno (-EBADF: closed). One system call per wait,
 * cheaper than fstat (measured: 200 vs 225 ns; fcntl F_GETFD, which only says "open", 140). */
static WEFT_NOINLINE int sys_fd_cookie(int fd, uint64_t *cookie)
{
    socklen_t len = sizeof *cookie;
    *cookie = 0;
    if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, cookie, &len) == 0)
        return 0;
    int err = errno;
    *cookie = 0;
    return err == EBADF ? -EBADF : 0; /* ENOTSOCK, ENOPROTOOPT: open, no identity */
}

static int poll_thread(int fd, int events, int64_t deadline)
{
    /* simulation (clock.h): poll sleeps in real time, as far as the virtual deadline */
    deadline = weft__clock_to_real(deadline);
    struct pollfd p = {
        fd, (short)((events & WEFT_READABLE ? POLLIN : 0) | (events & WEFT_WRITABLE ? POLLOUT : 0)),
        0};
    for (;;) {
        int timeout = -1;
        if (deadline != WEFT_FOREVER) {
            int64_t now = weft__clock_real();
            if (deadline <= now)
                return WEFT_ETIMEDOUT;
            int64_t left = deadline - now;
            /* clamped: a deadline weeks away must not wrap to a negative or tiny timeout */
            timeout = left / 1000000 >= INT_MAX ? INT_MAX : (int)((left + 999999) / 1000000);
        }
        int n = poll(&p, 1, timeout);
        if (n > 0) {
            if (p.revents & POLLNVAL)
                return -EBADF;
            return (p.revents & (POLLIN | POLLHUP | POLLERR) ? WEFT_READABLE : 0) |
                   (p.revents & (POLLOUT | POLLHUP | POLLERR) ? WEFT_WRITABLE : 0);
        }
        if (n == 0 && deadline != WEFT_FOREVER && weft__clock_real() >= deadline)
            return WEFT_ETIMEDOUT;
    }
}

/* known_open: the caller's last system call on fd just answered EAGAIN/EINPROGRESS, so fd is
 * open. The wait still asks the kernel (sys_fd_cookie): the answer is the socket's identity,
 * which decides whether the registration can be kept (same_file_as_before), not only
 * whether fd is open; the flag is the callers' statement, kept for a wait that will not need
 * the cookie. */
static int wait_fd(int fd, int events, int64_t deadline, bool known_open)
{
    (void)known_open;
    if (fd < 0 || !(events & (WEFT_READABLE | WEFT_WRITABLE)) ||
        (events & ~(WEFT_READABLE | WEFT_WRITABLE)))
        return WEFT_EINVAL;
    struct weft__worker *w = weft__worker_entry();
    struct weft__coro *co = w ? w->current : NULL;
    if (!co)
        return poll_thread(fd, events, deadline);
    int c = weft__cancel_point(co);
    if (c < 0)
        return c;
    if (deadline != WEFT_FOREVER && deadline <= weft_now())
        return WEFT_ETIMEDOUT;
    /* Narrow mode (load.c): wait in the home worker's loop, so that at low load every
     * descriptor is in one epoll set and a peer's send wakes one thread. */
    struct weft__worker *home = weft__io_home(w, co);
    if (home) {
        weft__hop(home);
        w = weft__worker_self(); /* moved (re-read): normally the home, unless stolen since */
    }
    /* libev aborts the process on a watcher for a closed descriptor (at its next poll):
     * refuse it here with the kernel's answer instead. */
    uint64_t cookie;
    if (sys_fd_cookie(fd, &cookie) < 0)
        return -EBADF;
    if (!weft__looprec_reserve(w))
        return WEFT_ENOMEM;
    struct weft__looprec *r = weft__looprec_take(w, io_stop);
    weft__wait_arm(co, &r->k, events & WEFT_READABLE ? "fd read" : "fd write");
    ev_io_init(&r->ev.io, on_io, fd,
               (events & WEFT_READABLE ? EV_READ : 0) | (events & WEFT_WRITABLE ? EV_WRITE : 0));
    same_file_as_before(w, r, fd, cookie);
    ev_io_start(w->loop, &r->ev.io);
    w->io_waits++;
    WEFT__TRACE_CO(w->index, WEFT__TR_FD_WAIT, co, (uint64_t)fd, events);
    int res = weft__park_until(deadline, NULL, NULL);
    /* Ended by anything but readiness (on_io stops the watcher itself) — a cancellation, a
     * deadline already past when the timer was armed, the runtime stopping — the start may
     * still be waiting for the owner's next poll: libev registers a watcher with epoll in
     * that poll (fd_reify), after the owner drained its inbox. Resumed on another worker,
     * a stop through the inbox could arrive after that drain, and once we return the caller
     * may close fd (it may: the wait is over): libev's epoll_ctl would then fail with EBADF,
     * and libev aborts the process (CI saw it: test_io, a cancelled read on a loaded
     * machine). So the stop is made on the owner before we return: go back there (a hop,
     * only on this path; a thief may take us on the way, hence the loop; a pinned coroutine
     * never left). Readiness needs none of this: the watcher was stopped in on_io, so the
     * owner's loop has nothing left to register. */
    if (res <= 0)
        while (weft__worker_self() != r->owner && !co->pin)
            weft__hop(r->owner);
    weft__looprec_release(r); /* wherever we resumed: the record goes back to its owner */
    return res;
}

int weft_wait_fd(int fd, int events, int64_t deadline)
{
    return wait_fd(fd, events, deadline, false);
}

int weft__wait_fd_open(int fd, int events, int64_t deadline)
{
    return wait_fd(fd, events, deadline, true);
}

/* ---- per-descriptor hints ---------------------------------------------------------------- */

/* Per descriptor number, what weft last saw (never trusted for blocking; see the header).
 * Read and written with relaxed atomics from any thread: a hint lost between two threads
 * costs at most a system call. Allocated once with its size, published by one pointer
 * (release CAS / acquire load), sized by RLIMIT_NOFILE (numbers beyond it have no hints). */
enum {
    HINT_NONBLOCK = 1, /* weft put (or found) this number in non-blocking mode */
    HINT_NOTSOCK = 2,  /* last seen as not a socket: go straight to read/write(2) */
};
static _Atomic(struct hint_table *) fd_hints;

static struct hint_table *hint_table(void)
{
    struct hint_table *t = atomic_load_explicit(&fd_hints, memory_order_acquire);
    if (t)
        return t;
    struct rlimit rl;
    size_t n = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (1u << 22))
        n = rl.rlim_cur > n ? rl.rlim_cur : n;
    struct hint_table *fresh = calloc(1, sizeof *fresh + n);
    if (!fresh)
        return NULL;
    fresh->size = n;
    /* Publication: the table is complete (zeroed hints, its size) before the pointer is
     * stored, and the store is the CAS's release; every reader loads the pointer with
     * acquire (above), so a table seen is a table whose size and hints are initialised.
     * Two threads racing here: the loser frees its copy and uses the winner's (acquire on
     * failure). */
    struct hint_table *expected = NULL;
    if (!atomic_compare_exchange_strong_explicit(&fd_hints, &expected, fresh, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        free(fresh);
        return expected;
    }
    return fresh;
}

/* The hint byte of fd, or NULL (no table, or a number beyond it). */
static _Atomic unsigned char *hint_slot(int fd)
{
    struct hint_table *t = hint_table();
    return t && (size_t)fd < t->size ? &t->hint[fd] : NULL;
}

static unsigned hint_get(_Atomic unsigned char *slot)
{
    return slot ? atomic_load_explicit(slot, memory_order_relaxed) : 0;
}

static unsigned hint_put(_Atomic unsigned char *slot, unsigned h)
{
    if (slot)
        atomic_store_explicit(slot, (unsigned char)h, memory_order_relaxed);
    return h;
}

/* Make sure fd is in non-blocking mode: 1 if it was not (it is now), 0 if it was, or -errno. */
static WEFT_NOINLINE int sys_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    if (fl & O_NONBLOCK)
        return 0;
    return fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 1;
}

/* sys_set_nonblock, and remember it (accept/connect/read/write entry). */
static int set_nonblock(int fd, _Atomic unsigned char *slot)
{
    int r = sys_set_nonblock(fd);
    if (r >= 0)
        hint_put(slot, hint_get(slot) | HINT_NONBLOCK);
    return r;
}

int weft_fd_nonblock(int fd)
{
    if (fd < 0)
        return WEFT_EINVAL;
    int r = set_nonblock(fd, hint_slot(fd)); /* always asks the kernel: the number may be new */
    return r < 0 ? r : 0;
}

int weft_fd_forget(int fd)
{
    if (fd < 0)
        return WEFT_EINVAL;
    hint_put(hint_slot(fd), 0);
    return 0;
}

static WEFT_NOINLINE int sys_close(int fd)
{
    return close(fd) == 0 ? 0 : -errno;
}

int weft_close(int fd)
{
    weft_fd_forget(fd);
    return fd < 0 ? WEFT_EINVAL : sys_close(fd);
}

/* ---- read / write ------------------------------------------------------------------------ */

/* Sockets: the call itself says "do not wait", whatever the descriptor's mode. */
static WEFT_NOINLINE ssize_t sys_recv(int fd, void *buf, size_t len)
{
    ssize_t n = recv(fd, buf, len, MSG_DONTWAIT);
    return n >= 0 ? n : -errno;
}

static WEFT_NOINLINE ssize_t sys_send(int fd, const void *buf, size_t len)
{
    /* MSG_NOSIGNAL: a closed peer is -EPIPE, not a process-killing SIGPIPE. */
    ssize_t n = send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    return n >= 0 ? n : -errno;
}

/* Other descriptors: only after O_NONBLOCK was checked. */
static WEFT_NOINLINE ssize_t sys_read(int fd, void *buf, size_t len)
{
    ssize_t n = read(fd, buf, len);
    return n >= 0 ? n : -errno;
}

static WEFT_NOINLINE ssize_t sys_write(int fd, const void *buf, size_t len)
{
    /* Not a socket (a pipe): write(2) would raise SIGPIPE on a closed reader. Block it for
     * the call and consume the one this write raised, so the caller just sees -EPIPE. */
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    sigset_t pending;
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE);
    ssize_t n = write(fd, buf, len);
    int err = n >= 0 ? 0 : errno;
    if (err == EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        sigtimedwait(&pipe_set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return n >= 0 ? n : -err;
}

/* The blocking-style loop of every transfer: try the call without waiting; on EAGAIN park
 * until the descriptor is ready (or the deadline/cancellation ends the wait); retry on EINTR.
 *
 * A socket is tried with recv/send(MSG_DONTWAIT) unless its number was last seen as a
 * non-socket; ENOTSOCK (a non-socket, possibly a reused number) falls back to the checked
 * path: F_GETFL (setting O_NONBLOCK if it is off), then read/write(2). A zero-length
 * transfer takes the checked path too (read(2) of 0 bytes consumes no datagram; recv does).
 * A hint "not a socket" that went stale (the number now names a socket) still makes a correct
 * non-blocking call; it is dropped when the check finds O_NONBLOCK off (a new open file). */
static ssize_t transfer(int fd, void *buf, size_t len, int64_t deadline, bool writing)
{
    if (fd < 0 || (!buf && len))
        return WEFT_EINVAL;
    int r = weft__cancel_point(weft__io_self());
    if (r < 0)
        return r;
    _Atomic unsigned char *slot = hint_slot(fd);
    unsigned h = hint_get(slot);
    /* O_NONBLOCK verified in this call. Once per call is enough: during our waits the number
     * cannot be closed and reused (the rule above: no close of a descriptor a coroutine is
     * waiting on), so it names the file we checked until we return. */
    bool checked = false;
    if (!(h & HINT_NONBLOCK)) {
        /* The contract (io.h): the wrappers put a descriptor in non-blocking mode. */
        if ((r = set_nonblock(fd, slot)) < 0)
            return r;
        h |= HINT_NONBLOCK;
        checked = true;
    }
    for (;;) {
        ssize_t n;
        if (!(h & HINT_NOTSOCK) && len) {
            n = writing ? sys_send(fd, buf, len) : sys_recv(fd, buf, len);
            if (n == -ENOTSOCK) {
                h = hint_put(slot, h | HINT_NOTSOCK);
                continue;
            }
        } else {
            if (!checked && (r = sys_set_nonblock(fd)) != 0) {
                if (r < 0)
                    return r;
                h = hint_put(slot, h & ~HINT_NOTSOCK); /* a new file: learn its kind again */
            }
            checked = true;
            n = writing ? sys_write(fd, buf, len) : sys_read(fd, buf, len);
        }
        if (n >= 0)
            return n;
        if (n == -EINTR)
            continue;
        if (n != -EAGAIN && n != -EWOULDBLOCK)
            return n;
        if ((r = weft__wait_fd_open(fd, writing ? WEFT_WRITABLE : WEFT_READABLE, deadline)) < 0)
            return r;
    }
}

ssize_t weft_read(int fd, void *buf, size_t len, int64_t deadline)
{
    return transfer(fd, buf, len, deadline, false);
}

ssize_t weft_write(int fd, const void *buf, size_t len, int64_t deadline)
{
    return transfer(fd, (void *)buf, len, deadline, true);
}

ssize_t weft_write_all(int fd, const void *buf, size_t len, int64_t deadline)
{
    if (fd < 0 || (!buf && len))
        return WEFT_EINVAL;
    int r = weft__cancel_point(weft__io_self()); /* even when there is nothing to write */
    if (r < 0)
        return r;
    size_t done = 0;
    while (done < len) {
        ssize_t n = weft_write(fd, (const char *)buf + done, len - done, deadline);
        if (n < 0)
            return n;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

int weft__fd_set_nonblock(int fd)
{
    return set_nonblock(fd, hint_slot(fd));
}

/* A socket weft just made, non-blocking: the hints say so (whatever the number was before). */
void weft__fd_new_socket(int fd)
{
    hint_put(hint_slot(fd), HINT_NONBLOCK);
}
