/* SPDX-License-Identifier: MIT */
/* net.c — floor 5 (primitives): sockets over fd waits — accept, connect, and the TCP
 * helpers (weft_tcp_listen, weft_tcp_connect). Every socket weft makes is non-blocking and
 * close-on-exec; weft_tcp_listen takes numeric addresses only, weft_tcp_connect also host
 * names (resolved on the blocking pool: resolve.c). The rules
 * of io.c hold here: nothing remembered about a number decides whether a call may block
 * (accept and connect check O_NONBLOCK at every call), every call with a deadline is a
 * cancellation point at entry, and each system call's errno is read in its own noinline
 * helper, never across a switch. */
#define _GNU_SOURCE
#include "fdwait.h"
#include "resolve.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static WEFT_NOINLINE int sys_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    int c = accept4(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    return c >= 0 ? c : -errno;
}

/* accept4 has no per-call "do not wait" flag: the listener's O_NONBLOCK is checked (and set)
 * at every call, one fcntl — the number may name a new, blocking listener since the last. */
int weft_accept(int fd, struct sockaddr *addr, socklen_t *len, int64_t deadline)
{
    if (fd < 0)
        return WEFT_EINVAL;
    int r = weft__cancel_point(weft__io_self());
    if (r < 0 || (r = weft__fd_set_nonblock(fd)) < 0)
        return r;
    for (;;) {
        int c = sys_accept(fd, addr, len);
        if (c >= 0) {
            weft__fd_new_socket(c);
            return c;
        }
        if (c == -EINTR || c == -ECONNABORTED)
            continue;
        if (c != -EAGAIN && c != -EWOULDBLOCK)
            return c;
        if ((r = weft__wait_fd_open(fd, WEFT_READABLE, deadline)) < 0) /* accept: EAGAIN */
            return r;
    }
}

static WEFT_NOINLINE int sys_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    return connect(fd, addr, len) == 0 ? 0 : -errno;
}

static WEFT_NOINLINE int sys_sockerr(int fd)
{
    int err = 0;
    socklen_t l = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0)
        return -errno;
    return -err;
}

int weft_connect(int fd, const struct sockaddr *addr, socklen_t len, int64_t deadline)
{
    if (fd < 0 || !addr)
        return WEFT_EINVAL;
    int r = weft__cancel_point(weft__io_self());
    if (r < 0 || (r = weft__fd_set_nonblock(fd)) < 0) /* checked at every call */
        return r;
    r = sys_connect(fd, addr, len);
    if (r == 0 || (r != -EINPROGRESS && r != -EINTR))
        return r;
    if ((r = weft__wait_fd_open(fd, WEFT_WRITABLE, deadline)) < 0) /* EINPROGRESS: open */
        return r;
    return sys_sockerr(fd);
}

static int make_addr(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    if (port < 0 || port > 65535)
        return WEFT_EINVAL;
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (!host || !*host || strcmp(host, "0.0.0.0") == 0) {
        in4->sin_family = AF_INET;
        in4->sin_addr.s_addr = htonl(INADDR_ANY);
        in4->sin_port = htons((uint16_t)port);
        *len = sizeof *in4;
        return 0;
    }
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    /* Numeric addresses only here (weft_tcp_connect resolves names: resolve.c). */
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        *len = sizeof *in4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *len = sizeof *in6;
        return 0;
    }
    return WEFT_EINVAL;
}

static WEFT_NOINLINE int sys_listen_socket(const struct sockaddr_storage *ss, socklen_t len,
                                           int backlog)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)ss, len) != 0 || listen(fd, backlog) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

int weft_tcp_listen(const char *host, int port, int backlog)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int r = make_addr(host, port, &ss, &len);
    if (r < 0)
        return r;
    r = sys_listen_socket(&ss, len, backlog > 0 ? backlog : 1024);
    if (r >= 0)
        weft__fd_new_socket(r);
    return r;
}

static WEFT_NOINLINE int sys_stream_socket(int family)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int tcp_connect_addr(const struct sockaddr *sa, socklen_t len, int64_t deadline)
{
    int fd = sys_stream_socket(sa->sa_family);
    if (fd < 0)
        return fd;
    weft__fd_new_socket(fd);
    int r = weft_connect(fd, sa, len, deadline);
    if (r < 0) {
        weft_close(fd);
        return r;
    }
    return fd;
}

/* A host name (resolve.c): each of its addresses in getaddrinfo's order until one connects;
 * the last one's error otherwise. */
static int tcp_connect_name(const char *host, int port, int64_t deadline)
{
    struct addrinfo *list;
    int r = weft__resolve(host, port, &list, deadline);
    if (r < 0)
        return r;
    r = WEFT_ENOHOST;
    for (struct addrinfo *a = list; a; a = a->ai_next) {
        if ((r = tcp_connect_addr(a->ai_addr, a->ai_addrlen, deadline)) >= 0 ||
            r == WEFT_ECANCELED || r == WEFT_ETIMEDOUT)
            break;
    }
    freeaddrinfo(list);
    return r;
}

int weft_tcp_connect(const char *host, int port, int64_t deadline)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int r = make_addr(host ? host : "127.0.0.1", port, &ss, &len);
    int name = r == WEFT_EINVAL && host && port >= 0 && port <= 65535 && weft__host_name_ok(host);
    if ((r < 0 && !name) || (r = weft__cancel_point(weft__io_self())) < 0) /* before any effect */
        return r;
    if (name)
        return tcp_connect_name(host, port, deadline);
    return tcp_connect_addr((struct sockaddr *)&ss, len, deadline);
}
