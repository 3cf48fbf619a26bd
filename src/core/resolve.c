/* SPDX-License-Identifier: MIT */
/* resolve.c — floor 5 (primitives): host names for weft_tcp_connect: getaddrinfo(3) on
 * the blocking-offload pool.
 *
 * The C library's resolver blocks (it reads /etc/hosts, then asks the name servers of
 * /etc/resolv.conf and waits for their answers), so a coroutine never calls it on its worker:
 * weft_blocking_until runs it on a pool thread and parks the caller. This needs no hook
 * library (the pool's threads are plain threads, where a hooked getaddrinfo is libc's own).
 *
 * Only well-formed host names reach the resolver (weft__host_name_ok): a string that is
 * neither a numeric address nor a name (spaces, a port suffix, brackets, an all-numeric last
 * label such as "999.0.0.1" or inet_aton's shorthand "1.2.3") is WEFT_EINVAL at once, never a
 * query to a name server.
 *
 * errno: getaddrinfo's EAI_SYSTEM leaves its cause in the pool thread's errno; the job reads
 * it there, on that thread, before the job ends (the caller's thread has its own errno).
 *
 * Ownership: the job lives in the caller's frame; weft_blocking_until never returns while
 * the pool thread may still touch it (blocking.c). The result list belongs to the caller,
 * who frees it with freeaddrinfo. */
#define _GNU_SOURCE
#include "resolve.h"
#include "common.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

struct resolve_job {
    const char *host;
    char service[8];
    struct addrinfo *res;
    int rc;  /* getaddrinfo's return value */
    int err; /* the pool thread's errno after an EAI_SYSTEM */
};

static void *resolve_on_pool(void *arg)
{
    struct resolve_job *j = arg;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    errno = 0;
    j->rc = getaddrinfo(j->host, j->service, &hints, &j->res);
    j->err = errno;
    return NULL;
}

static int is_label_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* 1 if host is a syntactically valid host name (RFC 1123, plus '_' which real zones use):
 * dot-separated labels of 1..63 letters, digits, '-' or '_', none starting or ending with
 * '-', at most 253 characters, an optional final '.', and a last label that is not all
 * digits (that would be a malformed numeric address). */
int weft__host_name_ok(const char *host)
{
    size_t n = strlen(host);
    if (n > 0 && host[n - 1] == '.')
        n--; /* a fully qualified name */
    if (n == 0 || n > 253)
        return 0;
    size_t label = 0;
    int digits_only = 1;
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = i < n ? (unsigned char)host[i] : '.';
        if (c == '.') {
            if (label == 0 || label > 63 || host[i - 1] == '-')
                return 0;
            if (i == n && digits_only)
                return 0;
            label = 0;
            digits_only = 1;
            continue;
        }
        if (!is_label_char(c) || (label == 0 && c == '-'))
            return 0;
        if (c < '0' || c > '9')
            digits_only = 0;
        label++;
    }
    return 1;
}

/* getaddrinfo's EAI_* codes as weft codes (weft/io.h documents the mapping). */
static int eai_to_weft(int rc, int err)
{
    switch (rc) {
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
    case EAI_FAIL:
    case EAI_AGAIN:
        return WEFT_ENOHOST;
    case EAI_MEMORY:
        return WEFT_ENOMEM;
    case EAI_SYSTEM:
        return err > 0 ? -err : WEFT_ENOHOST;
    default: /* EAI_BADFLAGS, EAI_FAMILY, EAI_SERVICE, EAI_SOCKTYPE: bad arguments */
        return WEFT_EINVAL;
    }
}

int weft__resolve(const char *host, int port, struct addrinfo **out, int64_t deadline)
{
    *out = NULL;
    if (!weft__host_name_ok(host) || port < 0 || port > 65535)
        return WEFT_EINVAL;
    struct resolve_job j = {.host = host, .res = NULL, .rc = EAI_FAIL, .err = 0};
    snprintf(j.service, sizeof j.service, "%d", port);
    int r = weft_blocking_until(resolve_on_pool, &j, NULL, deadline);
    if (r < 0) {
        /* Cancelled after getaddrinfo ran (blocking.c waits for it): its list is ours. */
        if (j.res)
            freeaddrinfo(j.res);
        return r;
    }
    if (j.rc != 0)
        return eai_to_weft(j.rc, j.err);
    if (!j.res)
        return WEFT_ENOHOST;
    *out = j.res;
    return 0;
}
