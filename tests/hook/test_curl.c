/* SPDX-License-Identifier: MIT */
/* test_curl.c — proof 2 of libweft-hook: libcurl's easy API, 200 concurrent
 * curl_easy_perform calls from coroutines against a real HTTP server on 127.0.0.1 that the
 * test runs (in this process, on weft's own I/O: weft_tcp_listen, weft_accept, weft_reader).
 *
 * Every body is checked. Concurrency is proven by an event: the server answers no request
 * until all 200 have arrived (a wait group every handler joins), so the run completes only if
 * 200 curl_easy_perform calls are parked inside curl at the same moment — a blocking call
 * holding its worker (2 workers here) never lets the 200th in, and the test fails at its
 * 120 s safety deadline. */
#define _GNU_SOURCE
#include "../harness.h"
#include "watchdog.h"

#include <weft.h>
#include <weft/hook.h>

#include <curl/curl.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <netinet/in.h>

#define REQUESTS 200

static _Atomic long checks;
static int port;
static weft_wg arrived;
static weft_wg answered; /* the handlers are not joined: each marks this when done */
static _Atomic int n_arrived, n_answered;

/* ---- the server ---------------------------------------------------------------------------- */
static void *handler(void *arg)
{
    int fd = (int)(intptr_t)arg;
    weft_reader r;
    ASSERT(weft_reader_init(&r, fd, 4096) == 0);
    char line[1024];
    int64_t dl = weft_after(WEFT_SEC(120));
    ssize_t n = weft_reader_line(&r, line, sizeof line, dl);
    CHECK_GT(n, 0);
    long id = -1;
    CHECK_EQ(sscanf(line, "GET /item/%ld HTTP/1.1", &id), 1);
    while ((n = weft_reader_line(&r, line, sizeof line, dl)) > 2) { /* headers, to "\r\n" */
    }
    CHECK_EQ(n, 2);
    atomic_fetch_add(&n_arrived, 1);
    /* The event: nobody is answered before all REQUESTS are in. */
    weft_wg_done(&arrived);
    CHECK_EQ(weft_wg_wait_until(&arrived, dl), 0);
    CHECK_EQ(atomic_load(&n_arrived), REQUESTS);
    char body[64], resp[256];
    int blen = snprintf(body, sizeof body, "item %ld: %ld\n", id, id * id);
    int len = snprintf(resp, sizeof resp,
                       "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                       "Connection: close\r\n\r\n%s",
                       blen, body);
    CHECK_EQ(weft_write_all(fd, resp, (size_t)len, dl), len);
    atomic_fetch_add(&n_answered, 1);
    weft_reader_free(&r);
    weft_close(fd);
    weft_wg_done(&answered);
    return NULL;
}

static void *server(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (int i = 0; i < REQUESTS; i++) {
        int c = weft_accept(lfd, NULL, NULL, weft_after(WEFT_SEC(120)));
        ASSERT(c >= 0);
        ASSERT(weft_spawn(NULL, handler, (void *)(intptr_t)c) == 0);
    }
    return NULL;
}

/* ---- the clients --------------------------------------------------------------------------- */
struct body {
    char buf[256];
    size_t len;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct body *b = arg;
    size_t len = size * n;
    if (b->len + len >= sizeof b->buf)
        return 0; /* too long: curl fails the transfer */
    memcpy(b->buf + b->len, p, len);
    b->len += len;
    b->buf[b->len] = 0;
    return len;
}

static void *client(void *arg)
{
    long id = (long)(intptr_t)arg;
    CURL *h = curl_easy_init();
    ASSERT(h != NULL);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/item/%ld", port, id);
    struct body b = {.len = 0};
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 150L);
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK)
        fprintf(stderr, "curl %ld: %s\n", id, curl_easy_strerror(rc));
    CHECK_EQ(rc, CURLE_OK);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    CHECK_EQ(status, 200);
    char want[64];
    snprintf(want, sizeof want, "item %ld: %ld\n", id, id * id);
    CHECK(strcmp(b.buf, want) == 0);
    curl_easy_cleanup(h);
    return NULL;
}

static int main_coro(void *arg)
{
    (void)arg;
    CHECK_EQ(weft_hook_active(), 1);
    int lfd = weft_tcp_listen("127.0.0.1", 0, 1024);
    ASSERT(lfd >= 0);
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    ASSERT(getsockname(lfd, (struct sockaddr *)&a, &alen) == 0);
    port = ntohs(a.sin_port);
    ASSERT(weft_wg_init(&arrived) == 0);
    ASSERT(weft_wg_add(&arrived, REQUESTS) == 0);
    ASSERT(weft_wg_init(&answered) == 0);
    ASSERT(weft_wg_add(&answered, REQUESTS) == 0);
    weft_task srv, t[REQUESTS];
    ASSERT(weft_spawn(&srv, server, (void *)(intptr_t)lfd) == 0);
    for (long i = 0; i < REQUESTS; i++)
        ASSERT(weft_spawn(&t[i], client, (void *)(intptr_t)i) == 0);
    for (long i = 0; i < REQUESTS; i++)
        ASSERT(weft_join(t[i], NULL) == 0);
    ASSERT(weft_join(srv, NULL) == 0);
    /* A client is done once its body is in, which can be before its handler has counted the
     * answer (CI's asan stage saw 199): wait for the handlers themselves. */
    CHECK_EQ(weft_wg_wait_until(&answered, weft_after(WEFT_SEC(120))), 0);
    CHECK_EQ(atomic_load(&n_answered), REQUESTS);
    weft_close(lfd);
    return 0;
}

int main(void)
{
    ASSERT(curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK);
    watchdog_start("the 200 curl transfers (are they concurrent?)", 150);
    weft_config cfg = {.threads = 2};
    ASSERT(weft_run(main_coro, NULL, &cfg) == 0);
    curl_global_cleanup();
    watchdog_stop();
    TEST_PASS("test_curl", checks);
    return 0;
}
