/* SPDX-License-Identifier: MIT */
/* fdwait.h — floor 4 (waiting): fd waits and the per-descriptor hints (io.c), for the
 * sockets (net.c) and the buffered reader (reader.c) above. (Not weft/io.h: that is the
 * public header of all three.) */
#ifndef WEFT_FDWAIT_H
#define WEFT_FDWAIT_H

#include "worker.h"

/* The calling coroutine, or NULL on a plain thread (a public call's entry: see
 * weft__worker_entry). */
static inline struct weft__coro *weft__io_self(void)
{
    struct weft__worker *w = weft__worker_entry();
    return w ? w->current : NULL;
}
/* Make sure fd is in non-blocking mode (asking the kernel: the number may be new) and
 * remember it in fd's hints: 1 if it was not (it is now), 0 if it was, or -errno. */
int weft__fd_set_nonblock(int fd);
/* A socket weft just made, non-blocking: the hints say so (whatever the number was). */
void weft__fd_new_socket(int fd);
/* weft_wait_fd for a caller whose last system call on fd answered EAGAIN or EINPROGRESS.
 * Exported for libweft-hook too (hookabi.h). */
int weft__wait_fd_open(int fd, int events, int64_t deadline);
/* A worker's fd-seen table, freed at teardown by run.c (before weft__worker_destroy). */
void weft__io_cache_free(struct weft__worker *w);

#endif
