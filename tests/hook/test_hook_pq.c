/* SPDX-License-Identifier: MIT */
/* test_hook_pq.c — libpq's blocking API, unmodified, from 100 coroutines against a real
 * PostgreSQL server (the hook library makes its calls park the coroutine, not the worker).
 *
 * Run by pq_cluster.sh, which initialises a cluster in a temporary directory, starts it on
 * 127.0.0.1 and passes the connection string in $WEFT_PG_CONNINFO.
 *
 * Each coroutine runs PQconnectdb, a parameterised query whose result it checks, then a
 * query that waits on the server for a shared advisory lock the main coroutine holds
 * exclusively, and a last checked query. Concurrency is proven by an event, not by time:
 * the main coroutine releases the lock only once the server's pg_locks shows all 100
 * sessions waiting for it at the same moment — 100 coroutines each parked inside a blocking
 * PQexec. Were a blocking call to hold its worker, at most one session per worker could wait
 * and the count would never reach 100 (a deadline, a safety net, then fails the test with
 * the count it saw; the watchdog thread does when no coroutine runs at all). */
#define _GNU_SOURCE
#include "../harness.h"
#include "watchdog.h"
#include <weft.h>

#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SESSIONS 100
#define LOCK_KEY "4242"

static _Atomic long checks;
static const char *conninfo;
static int backend_pid[SESSIONS];

static PGconn *connect_db(const char *who)
{
    PGconn *c = PQconnectdb(conninfo);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "%s: PQconnectdb(\"%s\"): %s\n", who, conninfo,
                c ? PQerrorMessage(c) : "out of memory");
        abort();
    }
    return c;
}

/* PQexecParams with text parameters; the result must be PGRES_TUPLES_OK with one row. */
static PGresult *query_row(PGconn *c, const char *sql, int nparams, const char *const *params)
{
    PGresult *r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        fprintf(stderr, "query \"%s\": %s %s\n", sql, PQresStatus(PQresultStatus(r)),
                PQerrorMessage(c));
        abort();
    }
    return r;
}

static void *session(void *arg)
{
    int n = (int)(intptr_t)arg;
    char who[32], num[16];
    snprintf(who, sizeof who, "session %d", n);
    snprintf(num, sizeof num, "%d", n);
    const char *p[1] = {num};

    PGconn *c = connect_db(who);
    PGresult *r = query_row(c, "SELECT $1::int + 1000, pg_backend_pid()", 1, p);
    CHECK_EQ(atoi(PQgetvalue(r, 0, 0)), n + 1000);
    backend_pid[n] = atoi(PQgetvalue(r, 0, 1));
    CHECK_GT(backend_pid[n], 0);
    CHECK_EQ(backend_pid[n], PQbackendPID(c));
    PQclear(r);

    /* Waits on the server until main releases its exclusive lock. */
    r = query_row(c, "SELECT pg_advisory_lock_shared(" LOCK_KEY ")", 0, NULL);
    PQclear(r);
    r = query_row(c, "SELECT $1::text || '-' || pg_backend_pid()", 1, p);
    char want[48];
    snprintf(want, sizeof want, "%d-%d", n, backend_pid[n]);
    CHECK(strcmp(PQgetvalue(r, 0, 0), want) == 0);
    PQclear(r);
    PQfinish(c);
    return NULL;
}

static long waiting_sessions(PGconn *ctl)
{
    PGresult *r = query_row(ctl,
                            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                            "objid = " LOCK_KEY " AND NOT granted",
                            0, NULL);
    long n = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

static int test_main(void *arg)
{
    (void)arg;
    PGconn *ctl = connect_db("main");
    PQclear(query_row(ctl, "SELECT pg_advisory_lock(" LOCK_KEY ")", 0, NULL));

    weft_task t[SESSIONS];
    for (int i = 0; i < SESSIONS; i++)
        ASSERT_EQ(weft_spawn(&t[i], session, (void *)(intptr_t)i), 0);

    /* The event: all sessions wait on the server at once. */
    int64_t deadline = weft_after(WEFT_SEC(120)); /* a safety net against a hang only */
    long n;
    while ((n = waiting_sessions(ctl)) < SESSIONS) {
        if (weft_now() >= deadline) {
            fprintf(stderr,
                    "only %ld of %d sessions ever waited for the lock together: "
                    "blocking calls are not concurrent\n",
                    n, SESSIONS);
            abort();
        }
        weft_sleep(WEFT_MSEC(2)); /* between polls of the server's view */
    }
    CHECK_EQ(n, SESSIONS);
    PQclear(query_row(ctl, "SELECT pg_advisory_unlock(" LOCK_KEY ")", 0, NULL));

    for (int i = 0; i < SESSIONS; i++)
        ASSERT_EQ(weft_join(t[i], NULL), 0);
    /* 100 distinct server processes: 100 connections, none shared. */
    for (int i = 0; i < SESSIONS; i++)
        for (int j = i + 1; j < SESSIONS; j++)
            ASSERT_NE(backend_pid[i], backend_pid[j]);
    checks++;
    PQfinish(ctl);
    return 0;
}

int main(void)
{
    conninfo = getenv("WEFT_PG_CONNINFO");
    if (!conninfo) {
        fprintf(stderr, "test_hook_pq: run me through tests/hook/pq_cluster.sh\n");
        return 2;
    }
    /* libpq's and libc's frames (getaddrinfo, the resolver) on coroutine stacks: 256 KiB,
     * room for the sanitizers' larger frames too. */
    weft_config cfg = {.stack_size = 256 * 1024};
    watchdog_start("test_hook_pq", 240);
    ASSERT_EQ(weft_run(test_main, NULL, &cfg), 0);
    watchdog_stop();
    TEST_PASS("test_hook_pq", checks);
    return 0;
}
