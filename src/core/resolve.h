/* SPDX-License-Identifier: MIT */
/* resolve.h — host names for weft_tcp_connect (resolve.c): getaddrinfo on the blocking pool. */
#ifndef WEFT_RESOLVE_H
#define WEFT_RESOLVE_H
#include <stdint.h>

struct addrinfo;

/* 1 if host is a well-formed host name (not an address: see resolve.c), 0 otherwise. */
int weft__host_name_ok(const char *host);

/* The TCP addresses of host:port, looked up by getaddrinfo(3) on the blocking pool (the
 * caller parks; from a plain thread, inline): 0 and *out (free it with freeaddrinfo), or
 * WEFT_EINVAL (not a host name, bad port), WEFT_ENOHOST (no such name, or no name server
 * answered), WEFT_ENOMEM, WEFT_ETIMEDOUT (no pool thread took the lookup before the
 * deadline), WEFT_ECANCELED, WEFT_EAGAIN (the pool could not start a thread), or a negative
 * errno (EAI_SYSTEM). *out is NULL on failure. */
int weft__resolve(const char *host, int port, struct addrinfo **out, int64_t deadline);

#endif
