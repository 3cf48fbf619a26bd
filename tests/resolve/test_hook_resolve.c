/* SPDX-License-Identifier: MIT */
/* test_hook_resolve.c — libc's name resolution, called as is from coroutines with the hook
 * library: a getaddrinfo that waits 200 ms on a slow name server does not delay the other
 * coroutines of its worker (one worker here), and names in /etc/hosts resolve.
 *
 * Run by resolver_ns.sh (tests/resolve/): a private mount namespace where /etc/resolv.conf
 * names tests/resolve/dns_slow.py ($WEFT_DNS_ADDR, port 53) and /etc/hosts has
 * "127.0.0.1 weft-hosts.test". Every socket call below is libc's blocking API.
 *
 * The slow lookup is proven concurrent by events, not by time (slow_lookup.h): the name
 * server answers only once a watcher coroutine on the same, only worker has made progress —
 * blocking reads and writes on a socket pair — while the lookup waits. */
#define _GNU_SOURCE
#include "../harness.h"
#include "slow_lookup.h"
#include "../hook/watchdog.h"
#include <weft.h>
#include <weft/hook.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static _Atomic long checks;

static void *echoer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char b;
    while (read(fd, &b, 1) == 1)
        ASSERT_EQ(write(fd, &b, 1), 1);
    return NULL;
}

static void expect_datagram(int fd, const char *want)
{
    char buf[64];
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0); /* SO_RCVTIMEO bounds it (watcher) */
    if (n < 0) {
        fprintf(stderr, "watcher: waiting for '%s' from the name server: %s\n", want,
                strerror(errno));
        abort();
    }
    buf[n] = 0;
    CHECK(strcmp(buf, want) == 0);
}

static void *watcher(void *arg)
{
    const char *dns = arg;
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    ASSERT(u >= 0);
    struct timeval tv = {.tv_sec = 30};
    ASSERT_EQ(setsockopt(u, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(53)};
    ASSERT_EQ(inet_pton(AF_INET, dns, &a.sin_addr), 1);
    ASSERT_EQ(connect(u, (struct sockaddr *)&a, sizeof a), 0);
    ASSERT_EQ(send(u, "WEFT hello", 10, 0), 10);
    expect_datagram(u, "WEFT ok");
    slow_registered();

    expect_datagram(u, "WEFT query"); /* the slow lookup is waiting on the name server */
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    weft_task e;
    ASSERT_EQ(weft_spawn(&e, echoer, (void *)(intptr_t)sv[1]), 0);
    for (int i = 0; i < SLOW_ROUNDS; i++) {
        char b = (char)i, r = 0;
        ASSERT_EQ(write(sv[0], &b, 1), 1);
        ASSERT_EQ(read(sv[0], &r, 1), 1);
        ASSERT_EQ(r, b);
        slow_rounds++;
    }
    close(sv[0]);
    weft_join(e, NULL);
    close(sv[1]);
    ASSERT_EQ(send(u, "WEFT go", 7, 0), 7);
    expect_datagram(u, "WEFT ok");
    close(u);
    return NULL;
}

/* getaddrinfo(name) for IPv4 TCP must give exactly 127.0.0.1. */
static void resolves_to_loopback(const char *name)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int r = getaddrinfo(name, "80", &hints, &res);
    if (r != 0) {
        fprintf(stderr, "getaddrinfo(\"%s\"): %s\n", name, gai_strerror(r));
        abort();
    }
    CHECK(res != NULL && res->ai_next == NULL);
    const struct sockaddr_in *in = (const struct sockaddr_in *)res->ai_addr;
    CHECK_EQ(res->ai_family, AF_INET);
    CHECK_EQ(ntohl(in->sin_addr.s_addr), INADDR_LOOPBACK);
    CHECK_EQ(ntohs(in->sin_port), 80);
    freeaddrinfo(res);
}

static int test_main(void *arg)
{
    const char *dns = arg;
    CHECK_EQ(weft_hook_active(), 1);

    /* /etc/hosts: the machine's localhost, and the namespace's own entry. */
    resolves_to_loopback("localhost");
    resolves_to_loopback("weft-hosts.test");
    struct hostent *h = gethostbyname("weft-hosts.test");
    CHECK(h != NULL && h->h_addrtype == AF_INET && h->h_addr_list[0] != NULL);
    CHECK_EQ(ntohl(((struct in_addr *)h->h_addr_list[0])->s_addr), INADDR_LOOPBACK);
    /* The name server: a known name, and one it does not know. */
    resolves_to_loopback("fast.weft.test");
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    CHECK_EQ(getaddrinfo("nx.weft.test", "80", &hints, &res), EAI_NONAME);

    /* The slow lookup, while the watcher makes progress on this same worker. */
    slow_lookup_run(dns, watcher, resolves_to_loopback);
    return 0;
}

int main(void)
{
    const char *dns = getenv("WEFT_DNS_ADDR");
    if (!dns) {
        fprintf(stderr, "test_hook_resolve: run me through tests/resolve/resolver_ns.sh\n");
        return 2;
    }
    weft_config cfg = {.threads = 1, .stack_size = 256 * 1024};
    watchdog_start("test_hook_resolve", 120);
    ASSERT_EQ(weft_run(test_main, (void *)dns, &cfg), 0);
    watchdog_stop();
    TEST_PASS("test_hook_resolve", checks);
    return 0;
}
