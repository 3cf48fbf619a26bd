/* SPDX-License-Identifier: MIT */
/* weft/io.h — blocking-style I/O on non-blocking descriptors (included by weft.h).
 * Each call parks the coroutine in its worker's libev loop instead of blocking the thread.
 * Errors are negative errno values (-ECONNRESET, -EPIPE, ...) or WEFT_ETIMEDOUT,
 * WEFT_ECANCELED; 0 from a read means end of stream.
 *
 * No call here ever blocks the thread in the kernel, whatever the descriptor's history — a
 * number closed with close(2), fclose or by a library and reused for another file is fine:
 * sockets are read and written with MSG_DONTWAIT; any other descriptor has O_NONBLOCK
 * checked (and set if off) at every call, and so do a listener in weft_accept and a socket
 * in weft_connect. Descriptor modes: the wrappers put every descriptor they read or write in
 * non-blocking mode the first time they see its number (and again whenever they find a
 * non-socket's mode off); a socket reused at a number weft has seen may stay in blocking
 * mode — weft does not need it; call weft_fd_nonblock if you do. Every call taking a deadline
 * is a cancellation point even when it need not wait (see weft_cancel). */
#ifndef WEFT_IO_H
#define WEFT_IO_H
#include <sys/types.h>
#include <sys/socket.h>
#ifdef __cplusplus
extern "C" {
#endif

enum { WEFT_READABLE = 1, WEFT_WRITABLE = 2 };
/* Wait until fd is readable and/or writable (events: WEFT_READABLE | WEFT_WRITABLE): returns
 * the ready events (> 0), or an error code. */
WEFT_EXTERN int weft_wait_fd(int fd, int events, int64_t deadline);
/* Put fd in non-blocking mode (asks the kernel at every call; the wrappers below do not
 * need it). 0 or a negative errno. */
WEFT_EXTERN int weft_fd_nonblock(int fd);
/* Forget what weft remembers about the number (hints that save a system call; correctness
 * never depends on them). Optional before close(2); weft_close does both. 0 or WEFT_EINVAL. */
WEFT_EXTERN int weft_fd_forget(int fd);
/* weft_fd_forget, then close(2): 0 or the negative errno of close. */
WEFT_EXTERN int weft_close(int fd);

/* read(2) / write(2) that park the coroutine until fd is ready: the bytes moved (> 0; read:
 * 0 at end of stream), or an error code. A plain thread blocks in poll(2) instead. */
WEFT_EXTERN ssize_t weft_read(int fd, void *buf, size_t len, int64_t deadline);
WEFT_EXTERN ssize_t weft_write(int fd, const void *buf, size_t len, int64_t deadline);
/* Writes all len bytes unless an error or the deadline stops it: len, or an error code. */
WEFT_EXTERN ssize_t weft_write_all(int fd, const void *buf, size_t len, int64_t deadline);
/* accept(2) / connect(2) that park until done: the new descriptor / 0, or an error code
 * (connect: the connection's own error, e.g. -ECONNREFUSED). */
WEFT_EXTERN int weft_accept(int fd, struct sockaddr *addr, socklen_t *len, int64_t deadline);
WEFT_EXTERN int weft_connect(int fd, const struct sockaddr *addr, socklen_t len, int64_t deadline);
/* A TCP listener on host:port (SO_REUSEADDR, non-blocking): the fd, or an error code. */
WEFT_EXTERN int weft_tcp_listen(const char *host, int port, int backlog);
/* A TCP connection to host:port (non-blocking socket): the fd, or an error code. host is a
 * numeric IPv4/IPv6 address, "localhost" (127.0.0.1), NULL (127.0.0.1), or a host name: a
 * name is looked up with getaddrinfo(3) (/etc/hosts, then the name servers of
 * /etc/resolv.conf, as nsswitch.conf says) on the blocking-offload pool — the caller parks,
 * its worker runs other coroutines meanwhile; no hook library is needed — and its addresses
 * are tried in the resolver's order until one connects (the last one's error otherwise).
 * The deadline bounds the wait for a pool thread and the connection, not a lookup once a
 * pool thread has started it (nothing can stop getaddrinfo; its own timeouts are
 * resolv.conf's). Errors besides the connection's own (e.g. -ECONNREFUSED):
 *   WEFT_EINVAL   port outside 0..65535, or host neither an address nor a well-formed name
 *                 (letters, digits, '-', '_' in dot-separated labels; a last label of digits
 *                 only, as in "1.2.3", is a malformed address): no lookup is made
 *   WEFT_ENOHOST  the name does not resolve: no such name (NXDOMAIN), no address for it, or
 *                 no name server answered (a temporary failure: a retry may succeed)
 *   WEFT_ETIMEDOUT, WEFT_ECANCELED, WEFT_ENOMEM, WEFT_EAGAIN (weft_blocking's codes). */
WEFT_EXTERN int weft_tcp_connect(const char *host, int port, int64_t deadline);

/* A buffered reader for line- or length-oriented protocols. */
typedef struct weft_reader {
    int fd;
    size_t start, end, cap;
    char *buf;
} weft_reader;
/* Set up r to read fd through a buffer of bufsize bytes. 0, WEFT_EINVAL, WEFT_ENOMEM. */
WEFT_EXTERN int weft_reader_init(weft_reader *r, int fd, size_t bufsize);
/* Free r's buffer (the descriptor is not closed). */
WEFT_EXTERN void weft_reader_free(weft_reader *r);
/* Reads up to and including '\n' into line (NUL-terminated, at most cap-1 bytes): the length,
 * 0 at end of stream, or an error: WEFT_EINVAL for bad arguments, WEFT_ETOOLONG when no '\n'
 * comes within cap-1 bytes (or within the reader's bufsize, if smaller). WEFT_ETOOLONG, like
 * a timeout, consumes nothing: the start of the long line stays buffered, and the caller
 * either takes it (weft_reader_read hands out the buffered bytes first) or skips the line
 * with weft_reader_skip_line; either way the next weft_reader_line reads on. At end of
 * stream a last line without '\n' is returned as it is. */
WEFT_EXTERN ssize_t weft_reader_line(weft_reader *r, char *line, size_t cap, int64_t deadline);
/* Discards everything up to and including the next '\n', however long: the number of bytes
 * discarded, 0 at end of stream with nothing left, or an error (what was discarded before
 * an error stays discarded). */
WEFT_EXTERN ssize_t weft_reader_skip_line(weft_reader *r, int64_t deadline);
/* Reads up to len bytes, buffered ones first (without reading when some are buffered): the
 * count, 0 at end of stream, or an error. */
WEFT_EXTERN ssize_t weft_reader_read(weft_reader *r, void *buf, size_t len, int64_t deadline);

#ifdef __cplusplus
}
#endif
#endif
