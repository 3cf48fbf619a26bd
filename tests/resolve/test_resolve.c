/* SPDX-License-Identifier: MIT */
/* test_resolve.c — weft_tcp_connect with host names, no hook library: a name from /etc/hosts,
 * one from the test's name server, one it does not know (WEFT_ENOHOST), malformed ones
 * (WEFT_EINVAL, no query), and a lookup the name server answers only after another coroutine
 * on the same, only worker has made progress while it waits.
 *
 * Run by resolver_ns.sh (tests/resolve/): a private mount namespace where /etc/resolv.conf
 * names tests/resolve/dns_slow.py ($WEFT_DNS_ADDR, port 53) and /etc/hosts has
 * "127.0.0.1 weft-hosts.test".
 *
 * The slow lookup is proven concurrent by events, not by time (slow_lookup.h): the name
 * server answers only once a watcher coroutine on the same, only worker has made progress
 * while the lookup waits. */
#define _GNU_SOURCE
#include "../harness.h"
#include "slow_lookup.h"
#include <weft.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static _Atomic long checks;
static int port;              /* the test's listener */
static _Atomic long accepted; /* connections it accepted */

static void *acceptor(void *arg)
{
    int l = (int)(intptr_t)arg;
    for (;;) {
        int c = weft_accept(l, NULL, NULL, WEFT_FOREVER);
        if (c < 0)
            return NULL; /* cancelled at the end */
        accepted++;
        weft_close(c);
    }
}

/* The ping-pong partner: echoes a byte until the other end closes. */
static void *echoer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char b;
    while (weft_read(fd, &b, 1, WEFT_FOREVER) == 1)
        ASSERT_EQ(weft_write(fd, &b, 1, WEFT_FOREVER), 1);
    return NULL;
}

static void expect_datagram(int fd, const char *want)
{
    char buf[64];
    ssize_t n = weft_read(fd, buf, sizeof buf - 1, weft_after(WEFT_SEC(30)));
    if (n < 0) {
        fprintf(stderr, "watcher: waiting for '%s' from the name server: %s\n", want,
                weft_strerror((int)n));
        abort();
    }
    buf[n] = 0;
    CHECK(strcmp(buf, want) == 0);
}

static void *watcher(void *arg)
{
    const char *dns = arg;
    int u = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ASSERT(u >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(53)};
    ASSERT_EQ(inet_pton(AF_INET, dns, &a.sin_addr), 1);
    ASSERT_EQ(connect(u, (struct sockaddr *)&a, sizeof a), 0);
    ASSERT_EQ(weft_write(u, "WEFT hello", 10, WEFT_FOREVER), 10);
    expect_datagram(u, "WEFT ok");
    slow_registered();

    expect_datagram(u, "WEFT query"); /* the slow lookup is waiting on the name server */
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    weft_task e;
    ASSERT_EQ(weft_spawn(&e, echoer, (void *)(intptr_t)sv[1]), 0);
    for (int i = 0; i < SLOW_ROUNDS; i++) {
        char b = (char)i, r = 0;
        ASSERT_EQ(weft_write(sv[0], &b, 1, WEFT_FOREVER), 1);
        ASSERT_EQ(weft_read(sv[0], &r, 1, WEFT_FOREVER), 1);
        ASSERT_EQ(r, b);
        slow_rounds++;
    }
    weft_close(sv[0]);
    weft_join(e, NULL);
    weft_close(sv[1]);
    ASSERT_EQ(weft_write(u, "WEFT go", 7, WEFT_FOREVER), 7);
    expect_datagram(u, "WEFT ok");
    weft_close(u);
    return NULL;
}

static void connect_ok(const char *host)
{
    int fd = weft_tcp_connect(host, port, weft_after(WEFT_SEC(60)));
    if (fd < 0) {
        fprintf(stderr, "weft_tcp_connect(\"%s\", %d): %s (%d)\n", host, port, weft_strerror(fd),
                fd);
        abort();
    }
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    ASSERT_EQ(getpeername(fd, (struct sockaddr *)&peer, &len), 0);
    CHECK_EQ(peer.sin_family, AF_INET);
    CHECK_EQ(ntohs(peer.sin_port), port);
    CHECK_EQ(ntohl(peer.sin_addr.s_addr), INADDR_LOOPBACK);
    weft_close(fd);
}

static int test_main(void *arg)
{
    const char *dns = arg;
    int l = weft_tcp_listen("127.0.0.1", 0, 64);
    ASSERT(l >= 0);
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    ASSERT_EQ(getsockname(l, (struct sockaddr *)&a, &alen), 0);
    port = ntohs(a.sin_port);
    weft_task acc;
    ASSERT_EQ(weft_spawn(&acc, acceptor, (void *)(intptr_t)l), 0);

    connect_ok("localhost");       /* /etc/hosts (weft also knows it without a lookup) */
    connect_ok("weft-hosts.test"); /* /etc/hosts only */
    connect_ok("fast.weft.test");  /* the name server */
    connect_ok("FAST.weft.test."); /* names are case-insensitive; a final dot is allowed */

    /* A name the name server does not know: a clear code, and a message saying so. */
    int r = weft_tcp_connect("nx.weft.test", port, weft_after(WEFT_SEC(60)));
    CHECK_EQ(r, WEFT_ENOHOST);
    CHECK(strstr(weft_strerror(r), "host name") != NULL);
    /* Malformed: refused before any query (the name server logs every query it gets). */
    CHECK_EQ(weft_tcp_connect("bad name.weft.test", port, WEFT_FOREVER), WEFT_EINVAL);
    CHECK_EQ(weft_tcp_connect("fast.weft.test", 65536, WEFT_FOREVER), WEFT_EINVAL);

    /* The slow lookup, while the watcher makes progress on this same worker. */
    slow_lookup_run(dns, watcher, connect_ok);

    WAIT_FOR(accepted == 5); /* every connection made reached the listener */
    weft_cancel(acc);
    weft_join(acc, NULL);
    CHECK_EQ(accepted, 5);
    weft_close(l);
    return 0;
}

int main(void)
{
    const char *dns = getenv("WEFT_DNS_ADDR");
    if (!dns) {
        fprintf(stderr, "test_resolve: run me through tests/resolve/resolver_ns.sh\n");
        return 2;
    }
    weft_config cfg = {.threads = 1};
    ASSERT_EQ(weft_run(test_main, (void *)dns, &cfg), 0);
    TEST_PASS("test_resolve", checks);
    return 0;
}
