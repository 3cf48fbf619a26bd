/* SPDX-License-Identifier: MIT */
/* park.c — parking a coroutine inside a hooked call, pinned to its worker (the affinity
 * rule, hook.h), and the thread-blocking waits used where weft cannot park.
 *
 * Errors come back as -errno values the caller turns into libc's answer: a deadline (an
 * SO_RCVTIMEO / SO_SNDTIMEO expiry) is -EAGAIN, a cancelled coroutine -ECANCELED (weft.h's
 * sticky cancellation: every later park of that coroutine fails the same way). */
#define _GNU_SOURCE
#include "hook.h"

#include <errno.h>
#include <limits.h>

/* Out of line and with a compiler barrier, so that no caller keeps __errno_location's
 * answer across a park (see hook.h). */
__attribute__((noinline)) int weft__hook_errno(void)
{
    __asm__ volatile("" ::: "memory");
    return errno;
}

__attribute__((noinline)) void weft__hook_set_errno(int e)
{
    __asm__ volatile("" ::: "memory");
    errno = e;
}

int64_t weft__hook_deadline(int64_t timeout_ns)
{
    return timeout_ns > 0 ? weft_after(timeout_ns) : WEFT_FOREVER;
}

/* Not weft_wait_fd's plain-thread path (io.c poll_thread): this one also runs on a worker
 * (a park that could not get a timer record must block the thread, as libc would), where
 * `poll` would be our own hooked poll, so it calls libc's; and it answers -EAGAIN, libc's
 * timeout of a socket with SO_RCVTIMEO, instead of WEFT_ETIMEDOUT. */
int weft__hook_poll_thread(int fd, int events, int64_t deadline)
{
    struct pollfd p = {
        fd, (short)((events & WEFT_READABLE ? POLLIN : 0) | (events & WEFT_WRITABLE ? POLLOUT : 0)),
        0};
    for (;;) {
        int timeout = -1;
        if (deadline != WEFT_FOREVER) {
            int64_t left = deadline - weft_now();
            if (left <= 0)
                return -EAGAIN;
            timeout = left / 1000000 >= INT_MAX ? INT_MAX : (int)((left + 999999) / 1000000);
        }
        int n = REAL(poll)(&p, 1, timeout);
        if (n > 0)
            return p.revents & POLLNVAL ? -EBADF : 1;
        if (n < 0 && weft__hook_errno() != EINTR)
            return -weft__hook_errno();
    }
}

int weft__hook_park_fd(int fd, int events, int64_t deadline)
{
    weft_pin();
    int r = weft__wait_fd_open(fd, events, deadline); /* every caller just used fd */
    weft_unpin();
    if (r > 0)
        return r;
    switch (r) {
    case WEFT_ETIMEDOUT:
        return -EAGAIN;
    case WEFT_ENOMEM: /* no timer record: block the thread, as libc would */
        return weft__hook_poll_thread(fd, events, deadline);
    default:
        return r > -4000 ? r : -EIO; /* -errno (ECANCELED, EBADF...) */
    }
}

int weft__hook_park_until(int64_t deadline)
{
    weft_pin();
    int r = weft_sleep_until(deadline);
    weft_unpin();
    if (r == WEFT_ENOMEM) {
        int64_t left = deadline - weft_now();
        if (left > 0) {
            struct timespec ts = {left / 1000000000, left % 1000000000};
            while (REAL(nanosleep)(&ts, &ts) < 0 && weft__hook_errno() == EINTR) {}
        }
        return 0;
    }
    return r == WEFT_ECANCELED ? -ECANCELED : 0;
}
