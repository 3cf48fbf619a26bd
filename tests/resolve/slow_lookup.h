/* SPDX-License-Identifier: MIT */
/* slow_lookup.h — the event protocol of the resolver tests' slow lookup (dns_slow.py), shared
 * by test_resolve (weft_tcp_connect, weft's own calls) and test_hook_resolve (getaddrinfo,
 * libc's blocking calls through the hook). Each test supplies the watcher coroutine, written
 * with its own kind of calls: it says "WEFT hello" to the name server, calls slow_registered
 * on its "WEFT ok", waits for "WEFT query" (the lookup is waiting on the name server), makes
 * SLOW_ROUNDS ping-pongs with another coroutine (slow_rounds counts them), then says "WEFT
 * go" — only then does the name server answer. With one worker, a lookup that held the
 * worker would starve the watcher: no "go", and the name server answers SERVFAIL after 20 s,
 * failing the lookup. */
#ifndef WEFT_TEST_SLOW_LOOKUP_H
#define WEFT_TEST_SLOW_LOOKUP_H
#include "../harness.h"
#include <stdatomic.h>
#include <weft.h>

#define SLOW_ROUNDS 100

static _Atomic long slow_rounds; /* the watcher's ping-pongs so far */
static weft_wg slow_hello;       /* the watcher said hello and got its ok */

static void slow_registered(void)
{
    weft_wg_done(&slow_hello);
}

/* Runs lookup("slow.weft.test") while watcher(dns) makes its progress; checks that all of
 * that progress happened during the lookup, which took the name server's 200 ms at least. */
static void slow_lookup_run(const char *dns, void *(*watcher)(void *),
                            void (*lookup)(const char *name))
{
    weft_wg_add(&slow_hello, 1);
    weft_task w;
    ASSERT_EQ(weft_spawn(&w, watcher, (void *)dns), 0);
    ASSERT_EQ(weft_wg_wait_until(&slow_hello, weft_after(WEFT_SEC(30))), 0);
    int64_t t0 = weft_now();
    ASSERT_EQ(slow_rounds, 0);
    lookup("slow.weft.test");
    ASSERT_EQ(slow_rounds, SLOW_ROUNDS);        /* all of them while the lookup waited */
    ASSERT_GE(weft_now() - t0, WEFT_MSEC(200)); /* the name server's delay: never early */
    ASSERT_EQ(weft_join(w, NULL), 0);
}
#endif
