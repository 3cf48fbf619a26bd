/* SPDX-License-Identifier: MIT */
/* safety_net.h — the hook proofs' guard against a hang: SIGALRM after a generous number of
 * seconds prints what the test was waiting for and ends the process (status 3). Only a
 * safety net: every assertion waits for an event, and a passing run never comes near it. It
 * is a signal, not a coroutine's deadline, because what it guards against is workers held
 * in the kernel by a blocking call — then no coroutine runs to notice a deadline. The
 * handler writes with the raw system call (a hooked write(2) is no place for a handler). */
#ifndef WEFT_TEST_SAFETY_NET_H
#define WEFT_TEST_SAFETY_NET_H
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static char safety_net_msg[256];
static size_t safety_net_len;

static void safety_net_fire(int sig)
{
    (void)sig;
    syscall(SYS_write, 2, safety_net_msg, safety_net_len);
    _exit(3);
}

/* Arms (or re-arms) the net: after seconds, "<what>: no progress in N s" and exit 3. */
static inline void safety_net(unsigned seconds, const char *what)
{
    int n = snprintf(safety_net_msg, sizeof safety_net_msg,
                     "%s: still not done after %u s (the safety net): hung — a blocking call "
                     "holding its worker?\n",
                     what, seconds);
    safety_net_len = n > 0 && (size_t)n < sizeof safety_net_msg ? (size_t)n : 0;
    signal(SIGALRM, safety_net_fire);
    alarm(seconds);
}
#endif
