/* SPDX-License-Identifier: MIT */
/* test_hiredis.c — proof 1 of libweft-hook: hiredis's blocking API (redisConnect,
 * redisCommand) from 1,000 coroutines against a real redis-server the test starts.
 *
 * Every reply is checked (SET, GET, INCR, BLPOP, LPUSH). The run is proven concurrent by an
 * event, not by timing: every coroutine sends `BLPOP` on its own list, which the server holds
 * until someone pushes; the main coroutine waits until the server's `INFO clients` says
 * blocked_clients:1000 — all 1,000 coroutines parked inside redisCommand at once, which a
 * blocking call that held its worker (2 workers here) could never reach — and only then
 * pushes every list. Without the hook the test fails at its 120 s safety deadline. */
#define _GNU_SOURCE
#include "../harness.h"
#include "watchdog.h"
#include "redis_server.h"

#include <weft.h>
#include <weft/hook.h>

#include <hiredis/hiredis.h>
#include <stdatomic.h>

#define CLIENTS 1000

static _Atomic long checks;
static int port;
static _Atomic int connected, done;

static redisContext *conn(void)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    ASSERT(c != NULL);
    if (c->err)
        fprintf(stderr, "redisConnect: %s\n", c->errstr);
    ASSERT(c->err == 0);
    return c;
}

static void expect_status(redisReply *r, const char *s)
{
    ASSERT(r != NULL);
    CHECK_EQ(r->type, REDIS_REPLY_STATUS);
    CHECK(strcmp(r->str, s) == 0);
    freeReplyObject(r);
}

static void *client(void *arg)
{
    long i = (long)(intptr_t)arg;
    redisContext *c = conn();
    atomic_fetch_add(&connected, 1);
    char key[32], val[32], list[32];
    snprintf(key, sizeof key, "k:%ld", i);
    snprintf(val, sizeof val, "v:%ld:%ld", i, i * 31);
    snprintf(list, sizeof list, "l:%ld", i);
    expect_status(redisCommand(c, "SET %s %s", key, val), "OK");
    redisReply *r = redisCommand(c, "GET %s", key);
    ASSERT(r != NULL);
    CHECK_EQ(r->type, REDIS_REPLY_STRING);
    CHECK(strcmp(r->str, val) == 0);
    freeReplyObject(r);
    /* The rendezvous: parked in redisCommand until main pushes l:i. */
    r = redisCommand(c, "BLPOP %s 0", list);
    ASSERT(r != NULL);
    CHECK_EQ(r->type, REDIS_REPLY_ARRAY);
    CHECK_EQ(r->elements, 2);
    CHECK(strcmp(r->element[0]->str, list) == 0);
    char want[32];
    snprintf(want, sizeof want, "pushed:%ld", i);
    CHECK(strcmp(r->element[1]->str, want) == 0);
    freeReplyObject(r);
    r = redisCommand(c, "INCR counter");
    ASSERT(r != NULL);
    CHECK_EQ(r->type, REDIS_REPLY_INTEGER);
    CHECK(r->integer >= 1 && r->integer <= CLIENTS);
    freeReplyObject(r);
    redisFree(c);
    atomic_fetch_add(&done, 1);
    return NULL;
}

/* INFO clients' value for `field`, or -1. */
static long info_field(redisContext *c, const char *field)
{
    redisReply *r = redisCommand(c, "INFO clients");
    ASSERT(r != NULL && r->type == REDIS_REPLY_STRING);
    char pat[64];
    snprintf(pat, sizeof pat, "%s:", field);
    const char *p = strstr(r->str, pat);
    long v = p ? strtol(p + strlen(pat), NULL, 10) : -1;
    freeReplyObject(r);
    return v;
}

/* The controller: pinned, because it makes weft calls (spawn, join, sleep) between its
 * hiredis calls — unpinned, under WEFT_DEBUG_MIGRATE=1 it would close its connection on
 * another worker than the one whose libev loop last registered the socket (the loop's
 * deferred epoll_ctl and that close race, which TSan reports: a weft_read user's hazard too,
 * not the hook's). The clients make no weft call between their hooked calls. */
static void *controller(void *arg)
{
    (void)arg;
    CHECK_EQ(weft_hook_active(), 1);
    redisContext *c = conn();
    redisReply *r = redisCommand(c, "PING");
    ASSERT(r != NULL);
    CHECK(strcmp(r->str, "PONG") == 0);
    freeReplyObject(r);
    expect_status(redisCommand(c, "FLUSHALL"), "OK");
    weft_task t[CLIENTS];
    for (long i = 0; i < CLIENTS; i++)
        ASSERT(weft_spawn(&t[i], client, (void *)(intptr_t)i) == 0);
    /* The event: all 1,000 blocked in BLPOP at the same moment. */
    int64_t dl = weft_now() + WEFT_SEC(120);
    long blocked = 0;
    while ((blocked = info_field(c, "blocked_clients")) < CLIENTS) {
        if (weft_now() > dl) {
            fprintf(stderr, "only %ld of %d clients blocked in BLPOP (%d connected)\n", blocked,
                    CLIENTS, atomic_load(&connected));
            ASSERT(!"the clients did not all wait at once");
        }
        weft_sleep(WEFT_MSEC(5));
    }
    CHECK_EQ(blocked, CLIENTS);
    CHECK_GE(info_field(c, "connected_clients"), CLIENTS + 1);
    CHECK_EQ(atomic_load(&done), 0);
    for (long i = 0; i < CLIENTS; i++) {
        r = redisCommand(c, "LPUSH l:%ld pushed:%ld", i, i);
        ASSERT(r != NULL);
        CHECK_EQ(r->type, REDIS_REPLY_INTEGER);
        freeReplyObject(r);
    }
    for (long i = 0; i < CLIENTS; i++)
        ASSERT(weft_join(t[i], NULL) == 0);
    CHECK_EQ(atomic_load(&done), CLIENTS);
    r = redisCommand(c, "GET counter");
    ASSERT(r != NULL && r->type == REDIS_REPLY_STRING);
    CHECK_EQ(strtol(r->str, NULL, 10), CLIENTS);
    freeReplyObject(r);
    redisFree(c);
    return NULL;
}

static int main_coro(void *arg)
{
    (void)arg;
    weft_task t;
    weft_spawn_opts o = {.pinned = 1, .name = "controller"};
    ASSERT(weft_spawn_ex(&t, controller, NULL, &o) == 0);
    ASSERT(weft_join(t, NULL) == 0);
    return 0;
}

int main(void)
{
    port = redis_server_start(CLIENTS + 10);
    if (!port)
        redis_server_missing("test_hiredis");
    watchdog_start("the 1,000 hiredis clients (are their calls concurrent?)", 150);
    weft_config cfg = {.threads = 2};
    int r = weft_run(main_coro, NULL, &cfg);
    redis_server_stop();
    ASSERT(r == 0);
    watchdog_stop();
    TEST_PASS("test_hiredis", checks);
    return 0;
}
