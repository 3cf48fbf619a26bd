/* SPDX-License-Identifier: MIT */
/* resolve.c — getaddrinfo, gethostbyname, gethostbyname_r: offloaded to weft's blocking pool.
 *
 * glibc's resolver makes its own system calls internally (socket, sendmmsg, poll, recvfrom
 * through non-interposable aliases), so the hook cannot park inside it. In a coroutine the
 * whole call runs on a thread of the pool (weft_blocking) while the coroutine parks; on that
 * thread the resolver is libc's, with its own per-thread state. What the call leaves in
 * thread-local variables (errno for EAI_SYSTEM, h_errno) is copied back to the coroutine's
 * thread. A cancelled coroutine's call that had not started fails at once: getaddrinfo with
 * EAI_SYSTEM and errno ECANCELED, gethostbyname with NULL and h_errno TRY_AGAIN (errno
 * ECANCELED), gethostbyname_r with ECANCELED. A call that started runs to its end (weft
 * cannot stop a running C function). Plain threads (the pool's too): libc's. */
#define _GNU_SOURCE
#include "hook.h"

#include <errno.h>
#include <netdb.h>

struct gai_job {
    const char *node, *service;
    const struct addrinfo *hints;
    struct addrinfo **res;
    int ret, err, in; /* in: the caller's errno, the pool thread's before the call */
};

static void *gai_run(void *arg)
{
    struct gai_job *j = arg;
    weft__hook_set_errno(j->in); /* libc's answer from the caller's errno, as on its thread */
    j->ret = REAL(getaddrinfo)(j->node, j->service, j->hints, j->res);
    j->err = weft__hook_errno();
    return NULL;
}

WEFT_HOOK_API int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                              struct addrinfo **res)
{
    if (WEFT_HOOK_LIKELY(!weft__hook_coro()))
        return REAL(getaddrinfo)(node, service, hints, res);
    struct gai_job j = {
        node, service, hints, res, EAI_SYSTEM, ECANCELED, weft__hook_caller_errno()};
    weft_pin(); /* the affinity rule: resume on this worker */
    int r = weft_blocking(gai_run, &j, NULL);
    weft_unpin();
    if (r < 0 && r != WEFT_ECANCELED) /* e.g. WEFT_ENOMEM: resolve here, as libc would */
        return REAL(getaddrinfo)(node, service, hints, res);
    weft__hook_set_errno(j.err);
    return j.ret;
}

/* h_errno is the calling thread's, through a `const` location function like errno. */
__attribute__((noinline)) static void set_h_errno(int e)
{
    __asm__ volatile("" ::: "memory");
    h_errno = e;
}

__attribute__((noinline)) static int get_h_errno(void)
{
    __asm__ volatile("" ::: "memory");
    return h_errno;
}

struct ghbn_job {
    const char *name;
    struct hostent *ret;
    int herr, err, in_herr, in; /* in_*: the caller's, the pool thread's before the call */
};

static void *ghbn_run(void *arg)
{
    struct ghbn_job *j = arg;
    set_h_errno(j->in_herr);
    weft__hook_set_errno(j->in);
    j->ret = REAL(gethostbyname)(j->name);
    j->herr = get_h_errno();
    j->err = weft__hook_errno();
    return NULL;
}

WEFT_HOOK_API struct hostent *gethostbyname(const char *name)
{
    if (WEFT_HOOK_LIKELY(!weft__hook_coro()))
        return REAL(gethostbyname)(name);
    struct ghbn_job j = {name,      NULL,          TRY_AGAIN,
                         ECANCELED, get_h_errno(), weft__hook_caller_errno()};
    weft_pin(); /* the affinity rule: resume on this worker */
    int r = weft_blocking(ghbn_run, &j, NULL);
    weft_unpin();
    if (r < 0 && r != WEFT_ECANCELED)
        return REAL(gethostbyname)(name);
    set_h_errno(j.herr);
    weft__hook_set_errno(j.err);
    return j.ret;
}

struct ghbnr_job {
    const char *name;
    struct hostent *h;
    char *buf;
    size_t buflen;
    struct hostent **result;
    int *herr;
    int ret, err, in; /* in: the caller's errno, the pool thread's before the call */
};

static void *ghbnr_run(void *arg)
{
    struct ghbnr_job *j = arg;
    weft__hook_set_errno(j->in);
    j->ret = REAL(gethostbyname_r)(j->name, j->h, j->buf, j->buflen, j->result, j->herr);
    j->err = weft__hook_errno();
    return NULL;
}

WEFT_HOOK_API int gethostbyname_r(const char *name, struct hostent *h, char *buf, size_t buflen,
                                  struct hostent **result, int *herr)
{
    if (WEFT_HOOK_LIKELY(!weft__hook_coro()))
        return REAL(gethostbyname_r)(name, h, buf, buflen, result, herr);
    struct ghbnr_job j = {
        name, h, buf, buflen, result, herr, ECANCELED, ECANCELED, weft__hook_caller_errno()};
    weft_pin(); /* the affinity rule: resume on this worker */
    int r = weft_blocking(ghbnr_run, &j, NULL);
    weft_unpin();
    if (r < 0 && r != WEFT_ECANCELED)
        return REAL(gethostbyname_r)(name, h, buf, buflen, result, herr);
    if (r == WEFT_ECANCELED) {
        if (result)
            *result = NULL;
        if (herr)
            *herr = TRY_AGAIN;
    }
    weft__hook_set_errno(j.err);
    return j.ret;
}
