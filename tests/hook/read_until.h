/* SPDX-License-Identifier: MIT */
/* read_until.h — read a child process's output until it says what the caller waits for:
 * the event a test waits on (a server's "ready" line, a report), never a sleep. */
#ifndef WEFT_TEST_HOOK_READ_UNTIL_H
#define WEFT_TEST_HOOK_READ_UNTIL_H

#include <poll.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

/* Appends what fd gives to buf (NUL-terminated, *len bytes so far) until done(buf, arg) holds
 * (true), fd reaches its end, buf is full, or `secs` pass (a safety net against a hang):
 * false in those cases. */
static bool read_until(int fd, char *buf, size_t cap, size_t *len,
                       bool (*done)(const char *buf, void *arg), void *arg, int secs)
{
    time_t dl = time(NULL) + secs;
    buf[*len] = 0;
    while (!done(buf, arg)) {
        if (time(NULL) >= dl || *len + 1 >= cap)
            return false;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 1000) <= 0)
            continue;
        ssize_t n = read(fd, buf + *len, cap - 1 - *len);
        if (n <= 0)
            return false;
        *len += (size_t)n;
        buf[*len] = 0;
    }
    return true;
}

#endif
