/* SPDX-License-Identifier: MIT */
/* reader.c — floor 5 (primitives): the buffered reader (weft_reader_*) over weft_read:
 * lines and exact byte counts from a descriptor. Every call with a deadline is a
 * cancellation point at entry, even when what it asks for is already buffered (weft/io.h). */
#define _GNU_SOURCE
#include "fdwait.h"

#include <stdlib.h>
#include <string.h>

int weft_reader_init(weft_reader *r, int fd, size_t bufsize)
{
    if (!r || fd < 0)
        return WEFT_EINVAL;
    if (!bufsize)
        bufsize = 16384;
    r->buf = malloc(bufsize);
    if (!r->buf)
        return WEFT_ENOMEM;
    r->fd = fd;
    r->start = r->end = 0;
    r->cap = bufsize;
    return 0;
}

void weft_reader_free(weft_reader *r)
{
    if (r) {
        free(r->buf);
        r->buf = NULL;
    }
}

static ssize_t fill(weft_reader *r, int64_t deadline)
{
    if (r->start > 0 && r->start == r->end)
        r->start = r->end = 0;
    if (r->end == r->cap && r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    if (r->end == r->cap)
        return WEFT_ETOOLONG; /* full buffer without the '\n' the caller needs */
    ssize_t n = weft_read(r->fd, r->buf + r->end, r->cap - r->end, deadline);
    if (n > 0)
        r->end += (size_t)n;
    return n;
}

ssize_t weft_reader_line(weft_reader *r, char *line, size_t cap, int64_t deadline)
{
    if (!r || !r->buf || !line || cap == 0)
        return WEFT_EINVAL;
    int c = weft__cancel_point(weft__io_self()); /* even when the line is already buffered */
    if (c < 0)
        return c;
    size_t scanned = 0;
    for (;;) {
        char *nl = memchr(r->buf + r->start + scanned, '\n', r->end - r->start - scanned);
        if (nl) {
            size_t n = (size_t)(nl - (r->buf + r->start)) + 1;
            if (n >= cap)
                return WEFT_ETOOLONG; /* nothing consumed: see weft/io.h */
            memcpy(line, r->buf + r->start, n);
            line[n] = 0;
            r->start += n;
            return (ssize_t)n;
        }
        scanned = r->end - r->start;
        if (scanned >= cap - 1)
            return WEFT_ETOOLONG;
        ssize_t n = fill(r, deadline);
        if (n < 0)
            return n;
        if (n == 0) { /* end of stream: hand out a last unterminated line */
            size_t left = r->end - r->start;
            if (left == 0)
                return 0;
            memcpy(line, r->buf + r->start, left);
            line[left] = 0;
            r->start = r->end;
            return (ssize_t)left;
        }
    }
}

ssize_t weft_reader_skip_line(weft_reader *r, int64_t deadline)
{
    if (!r || !r->buf)
        return WEFT_EINVAL;
    size_t skipped = 0;
    for (;;) {
        char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
        size_t n = nl ? (size_t)(nl - (r->buf + r->start)) + 1 : r->end - r->start;
        r->start += n; /* consumed at once: the line may be longer than the buffer */
        skipped += n;
        if (nl)
            return (ssize_t)skipped;
        ssize_t got = fill(r, deadline); /* the buffer is empty: fill reads */
        if (got < 0)
            return got;
        if (got == 0)
            return (ssize_t)skipped;
    }
}

ssize_t weft_reader_read(weft_reader *r, void *buf, size_t len, int64_t deadline)
{
    if (!r || !r->buf || (!buf && len))
        return WEFT_EINVAL;
    int c = weft__cancel_point(weft__io_self()); /* even when the bytes are already buffered */
    if (c < 0)
        return c;
    if (len == 0)
        return 0; /* like weft_read: nothing asked, nothing waited for */
    if (r->end == r->start) {
        if (len >= r->cap) /* large read: bypass the buffer */
            return weft_read(r->fd, buf, len, deadline);
        ssize_t n = fill(r, deadline);
        if (n <= 0)
            return n;
    }
    size_t n = r->end - r->start;
    if (n > len)
        n = len;
    memcpy(buf, r->buf + r->start, n);
    r->start += n;
    return (ssize_t)n;
}
