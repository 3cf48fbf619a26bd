/* SPDX-License-Identifier: MIT */
/* tcp_server.c — the listener, the connections and the shutdown every sample server shares
 * (see tcp_server.h).
 *
 * The main coroutine listens, starts the acceptor coroutine, and waits on a channel that
 * receives SIGINT and SIGTERM (weft_signal_notify: a signal becomes a value any coroutine can
 * wait for, in a select too). Then it cancels the acceptor, closes the listener, cancels
 * every connection still on the list and waits for all of them (a wait group). A connection
 * stays on the list until its coroutine is about to finish, so its handle is valid whenever
 * the shutdown may cancel it. */
#define _GNU_SOURCE
#include <weft.h>

#include "tcp_server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

struct conn {
    int fd;
    weft_task task;
    struct conn *prev, *next;
};

static tcp_server *srv;
static int64_t timeout_ns;
static struct conn conns = {.prev = &conns, .next = &conns}; /* under conns_mu */
static weft_mutex conns_mu = WEFT_MUTEX_INIT;
static weft_wg conns_wg = WEFT_WG_INIT;

void tcp_lock(weft_mutex *m)
{
    weft_shield_begin(); /* the (sticky) request is reported after the shield */
    weft_mutex_lock(m);
    weft_shield_end();
}

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    srv->serve(c->fd, timeout_ns);
    weft_close(c->fd);
    tcp_lock(&conns_mu); /* while we are on the list, the shutdown may still cancel us */
    c->prev->next = c->next;
    c->next->prev = c->prev;
    weft_mutex_unlock(&conns_mu);
    free(c);
    weft_wg_done(&conns_wg);
    return NULL;
}

/* An accept that failed (EMFILE when idle clients hold every descriptor, ENFILE, ENOMEM...):
 * the connection stays queued, so the next accept fails the same way at once. Back off a
 * little, and report at most once a second, with the count of failures not reported. */
static void accept_failed(int err)
{
    static int64_t next_report; /* only the acceptor coroutine comes here: no lock */
    static long unreported;
    int64_t now = weft_now();
    if (now >= next_report) {
        if (unreported)
            fprintf(stderr, "%s: accept: %s (%ld more since the last report)\n", srv->name,
                    weft_strerror(err), unreported);
        else
            fprintf(stderr, "%s: accept: %s\n", srv->name, weft_strerror(err));
        unreported = 0;
        next_report = now + WEFT_SEC(1);
    } else {
        unreported++;
    }
    weft_sleep(WEFT_MSEC(10));
}

static void *acceptor(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int fd = weft_accept(lfd, NULL, NULL, WEFT_FOREVER);
        if (fd == WEFT_ECANCELED)
            return NULL;
        if (fd < 0) {
            accept_failed(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = malloc(sizeof *c);
        if (!c) {
            weft_close(fd);
            continue;
        }
        c->fd = fd;
        weft_wg_add(&conns_wg, 1);
        tcp_lock(&conns_mu);
        if (weft_spawn(&c->task, conn_main, c) != 0) {
            weft_mutex_unlock(&conns_mu);
            weft_close(fd);
            free(c);
            weft_wg_done(&conns_wg);
            continue;
        }
        c->next = &conns; /* linked before conn_main can unlink itself: it needs conns_mu */
        c->prev = conns.prev;
        conns.prev->next = c;
        conns.prev = c;
        /* Nobody joins connections: detach (before unlocking: once we unlock, the task may
         * finish and free c). The handle still names the task while it is on the list. */
        weft_detach(c->task);
        weft_mutex_unlock(&conns_mu);
    }
}

static int run(void *arg)
{
    (void)arg;
    weft_chan *sig;
    if (weft_chan_create(&sig, sizeof(int), 1) != 0 || weft_signal_notify(sig, SIGINT) != 0 ||
        weft_signal_notify(sig, SIGTERM) != 0) {
        fprintf(stderr, "%s: cannot watch SIGINT and SIGTERM\n", srv->name);
        return 1;
    }
    int lfd = weft_tcp_listen("127.0.0.1", srv->port, 4096);
    if (lfd < 0) {
        fprintf(stderr, "%s: listen on 127.0.0.1:%d: %s\n", srv->name, srv->port,
                weft_strerror(lfd));
        return 1;
    }
    weft_task acc;
    if (weft_spawn(&acc, acceptor, (void *)(intptr_t)lfd) != 0)
        return 1;
    printf("%s: listening on 127.0.0.1:%d\n", srv->name, srv->port);
    fflush(stdout);

    int signo;
    weft_chan_recv(sig, &signo); /* until SIGINT or SIGTERM */

    /* Shut down: stop accepting, cancel the connections, wait for them. */
    weft_cancel(acc);
    weft_join(acc, NULL);
    weft_close(lfd);
    int n = 0;
    tcp_lock(&conns_mu);
    for (struct conn *c = conns.next; c != &conns; c = c->next, n++)
        weft_cancel(c->task);
    weft_mutex_unlock(&conns_mu);
    weft_wg_wait(&conns_wg);
    weft_signal_stop(sig);
    weft_chan_unref(sig);
    printf("%s: shut down (%d connection%s cancelled)\n", srv->name, n, n == 1 ? "" : "s");
    return 0;
}

int tcp_server_main(tcp_server *s, int argc, char **argv)
{
    srv = s;
    if (argc > 1)
        s->port = atoi(argv[1]);
    if (argc > 2)
        s->timeout_sec = atof(argv[2]);
    timeout_ns = s->timeout_sec > 0 ? (int64_t)(s->timeout_sec * 1e9) : 0;
    int rc = weft_run(run, NULL, NULL);
    if (rc < 0)
        fprintf(stderr, "%s: %s\n", s->name, weft_strerror(rc));
    return rc == 0 ? 0 : 1;
}
