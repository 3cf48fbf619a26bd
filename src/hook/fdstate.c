/* SPDX-License-Identifier: MIT */
/* fdstate.c — what the hook knows per descriptor number: whether calls on it may park, the
 * program's view of O_NONBLOCK, and its SO_RCVTIMEO / SO_SNDTIMEO.
 *
 * Which descriptors park: sockets, and FIFOs made by a hooked pipe()/pipe2() (the hook knows
 * the process owns both ends; an inherited pipe, a tty, a regular file, an eventfd... is
 * passed through to libc untouched: O_NONBLOCK lives on the open file, which other processes
 * may share — setting it on a terminal would change the shell's — and regular files are
 * always "ready" to epoll, which refuses them). A parking descriptor is learned at its first
 * use in a coroutine (fcntl F_GETFL, fstat, and the socket's timeouts from the kernel: a few
 * system calls, once per open file): its real O_NONBLOCK is set then and stays set, while
 * fcntl(F_GETFL) / ioctl(FIONBIO) show and change only the program's view (USER_NB).
 *
 * Numbers reused behind the hook's back (a descriptor closed by libc itself, e.g. fclose,
 * then reused by open) keep stale state until a hooked call makes or closes that number:
 * stale state about a regular file is harmless (its reads never return EAGAIN); the worst
 * case is a descriptor that blocks its worker, as it would without the hook.
 *
 * Storage: a two-level table, chunks of 1024 entries allocated on first touch and published
 * by a CAS (release; readers acquire), never freed (as many chunks as the highest number the
 * process used, 24 KiB each). Entries are relaxed atomics: two threads using one descriptor
 * at once race as they would on the kernel's own flags, and every field is a whole value. */
#define _GNU_SOURCE
#include "hook.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#define CHUNK_BITS WEFT_HOOK_CHUNK_BITS
#define CHUNK (1 << CHUNK_BITS)
#define NCHUNKS WEFT_HOOK_NCHUNKS

_Atomic(struct weft__hook_fd *) weft__hook_chunks[WEFT_HOOK_NCHUNKS];
#define chunks weft__hook_chunks

struct weft__hook_fd *weft__hook_fd(int fd)
{
    if (fd < 0 || (fd >> CHUNK_BITS) >= NCHUNKS)
        return NULL;
    _Atomic(struct weft__hook_fd *) *slot = &chunks[fd >> CHUNK_BITS];
    struct weft__hook_fd *c = atomic_load_explicit(slot, memory_order_acquire);
    if (WEFT_HOOK_UNLIKELY(!c)) {
        struct weft__hook_fd *fresh = calloc(CHUNK, sizeof *fresh);
        if (!fresh)
            return NULL;
        if (atomic_compare_exchange_strong_explicit(slot, &c, fresh, memory_order_acq_rel,
                                                    memory_order_acquire))
            c = fresh;
        else
            free(fresh); /* c: the winner's chunk */
    }
    return &c[fd & (CHUNK - 1)];
}

struct weft__hook_fd *weft__hook_fd_peek(int fd)
{
    if (fd < 0 || (fd >> CHUNK_BITS) >= NCHUNKS)
        return NULL;
    struct weft__hook_fd *c = atomic_load_explicit(&chunks[fd >> CHUNK_BITS], memory_order_acquire);
    return c ? &c[fd & (CHUNK - 1)] : NULL;
}

static int64_t timeo_ns(int fd, int name)
{
    struct timeval tv;
    socklen_t len = sizeof tv;
    if (getsockopt(fd, SOL_SOCKET, name, &tv, &len) < 0)
        return 0;
    return (int64_t)tv.tv_sec * 1000000000 + (int64_t)tv.tv_usec * 1000;
}

/* First use in a coroutine: decide and record. */
static uint32_t learn(int fd, struct weft__hook_fd *e)
{
    uint32_t f = atomic_load_explicit(&e->flags, memory_order_relaxed);
    int fl = REAL(fcntl)(fd, F_GETFL);
    struct stat st;
    if (fl < 0 || fstat(fd, &st) < 0)
        return 0; /* not open: the call itself reports EBADF */
    bool sock = S_ISSOCK(st.st_mode);
    if (!sock && !(S_ISFIFO(st.st_mode) && (f & WEFT_HOOK_FD_OURS))) {
        f = WEFT_HOOK_FD_KNOWN;
    } else {
        if (sock) {
            atomic_store_explicit(&e->rcv_ns, timeo_ns(fd, SO_RCVTIMEO), memory_order_relaxed);
            atomic_store_explicit(&e->snd_ns, timeo_ns(fd, SO_SNDTIMEO), memory_order_relaxed);
        }
        f = WEFT_HOOK_FD_KNOWN | WEFT_HOOK_FD_MANAGED | (f & WEFT_HOOK_FD_OURS);
        if (fl & O_NONBLOCK)
            f |= WEFT_HOOK_FD_USER_NB;
        else if (REAL(fcntl)(fd, F_SETFL, (void *)(intptr_t)(fl | O_NONBLOCK)) < 0)
            return 0; /* cannot: pass through (blocks the worker, as without the hook) */
    }
    atomic_store_explicit(&e->flags, f, memory_order_relaxed);
    return f;
}

struct weft__hook_fd *weft__hook_fd_parks_slow(int fd)
{
    struct weft__hook_fd *e = weft__hook_fd(fd);
    if (!e)
        return NULL;
    uint32_t f = atomic_load_explicit(&e->flags, memory_order_relaxed);
    if (WEFT_HOOK_UNLIKELY(!(f & WEFT_HOOK_FD_KNOWN))) {
        int saved = weft__hook_errno();
        f = learn(fd, e);
        weft__hook_set_errno(saved);
    }
    return (f & (WEFT_HOOK_FD_MANAGED | WEFT_HOOK_FD_USER_NB)) == WEFT_HOOK_FD_MANAGED ? e : NULL;
}

/* No allocation when there is nothing to forget (close(2) is async-signal-safe: a handler's
 * close of a number the hook never saw stays so). */
void weft__hook_fd_reset(int fd, uint32_t flags)
{
    struct weft__hook_fd *e = flags ? weft__hook_fd(fd) : weft__hook_fd_peek(fd);
    if (!e)
        return;
    atomic_store_explicit(&e->rcv_ns, 0, memory_order_relaxed);
    atomic_store_explicit(&e->snd_ns, 0, memory_order_relaxed);
    atomic_store_explicit(&e->flags, flags, memory_order_relaxed);
}

void weft__hook_fd_copy(int from, int to)
{
    struct weft__hook_fd *a = weft__hook_fd_peek(from);
    if (!a || !atomic_load_explicit(&a->flags, memory_order_relaxed)) {
        weft__hook_fd_reset(to, 0);
        return;
    }
    struct weft__hook_fd *b = weft__hook_fd(to);
    if (!b)
        return;
    atomic_store_explicit(&b->rcv_ns, atomic_load_explicit(&a->rcv_ns, memory_order_relaxed),
                          memory_order_relaxed);
    atomic_store_explicit(&b->snd_ns, atomic_load_explicit(&a->snd_ns, memory_order_relaxed),
                          memory_order_relaxed);
    atomic_store_explicit(&b->flags, atomic_load_explicit(&a->flags, memory_order_relaxed),
                          memory_order_relaxed);
}
