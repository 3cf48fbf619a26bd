/* SPDX-License-Identifier: MIT */
/* redis_fanout.c — hiredis's ordinary blocking API from a thousand coroutines, concurrently,
 * through libweft-hook (include/weft/hook.h): each coroutine connects, writes its key, reads
 * it back and bumps a shared counter, as sequential code; the hook parks a coroutine where
 * hiredis would block its thread, so the thousand conversations overlap on a few workers.
 *
 *   redis_fanout [PORT [CLIENTS]]     (default 6379, 1000)   needs a redis-server on 127.0.0.1
 *
 * Prints how many replies were checked, how long it took, and the most clients that were
 * connected at once. Built when hiredis is installed (Debian: libhiredis-dev); links
 * weft::hook. */
#include <weft.h>
#include <weft/hook.h>

#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int port = 6379;
static atomic_int connected, peak, failures;

static void note_connected(int delta)
{
    int now = atomic_fetch_add(&connected, delta) + delta;
    int p = atomic_load(&peak);
    while (now > p && !atomic_compare_exchange_weak(&peak, &p, now)) {}
}

static void *client(void *arg)
{
    long id = (long)arg;
    redisContext *c = redisConnect("127.0.0.1", port);
    if (!c || c->err) {
        fprintf(stderr, "client %ld: %s\n", id, c ? c->errstr : "out of memory");
        atomic_fetch_add(&failures, 1);
        redisFree(c);
        return NULL;
    }
    note_connected(1);
    char key[32], value[32];
    snprintf(key, sizeof key, "fanout:%ld", id);
    snprintf(value, sizeof value, "hello from %ld", id);

    redisReply *set = redisCommand(c, "SET %s %s", key, value);
    redisReply *get = redisCommand(c, "GET %s", key);
    redisReply *incr = redisCommand(c, "INCR fanout:total");
    int ok = set && set->type == REDIS_REPLY_STATUS && strcmp(set->str, "OK") == 0 && get &&
             get->type == REDIS_REPLY_STRING && strcmp(get->str, value) == 0 && incr &&
             incr->type == REDIS_REPLY_INTEGER;
    if (!ok) {
        fprintf(stderr, "client %ld: unexpected reply\n", id);
        atomic_fetch_add(&failures, 1);
    }
    freeReplyObject(set);
    freeReplyObject(get);
    freeReplyObject(incr);
    note_connected(-1);
    redisFree(c);
    return NULL;
}

static int fanout(void *arg)
{
    long clients = (long)arg;
    if (!weft_hook_active())
        fprintf(stderr, "redis_fanout: libweft-hook is not active: the calls will block\n");
    redisContext *c = redisConnect("127.0.0.1", port);
    if (!c || c->err) {
        fprintf(stderr, "redis_fanout: no redis on 127.0.0.1:%d: %s\n", port,
                c ? c->errstr : "out of memory");
        return 1;
    }
    freeReplyObject(redisCommand(c, "DEL fanout:total"));

    int64_t t0 = weft_now();
    weft_task *tasks = calloc((size_t)clients, sizeof *tasks);
    for (long i = 0; i < clients; i++)
        weft_spawn(&tasks[i], client, (void *)i);
    for (long i = 0; i < clients; i++)
        weft_join(tasks[i], NULL);
    double ms = (double)(weft_now() - t0) / 1e6;

    redisReply *total = redisCommand(c, "GET fanout:total");
    long n = total && total->type == REDIS_REPLY_STRING ? strtol(total->str, NULL, 10) : -1;
    freeReplyObject(total);
    redisFree(c);
    free(tasks);
    printf("redis_fanout: %ld clients, %ld replies checked, %d failures, in %.1f ms\n", clients,
           3 * (clients - atomic_load(&failures)), atomic_load(&failures), ms);
    printf("redis_fanout: counter %ld, at most %d clients connected at once\n", n,
           atomic_load(&peak));
    return atomic_load(&failures) == 0 && n == clients ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        port = atoi(argv[1]);
    long clients = argc > 2 ? atol(argv[2]) : 1000;
    return weft_run(fanout, (void *)clients, NULL);
}
