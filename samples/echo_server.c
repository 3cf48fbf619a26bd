/* echo_server.c — a TCP echo server: one coroutine per connection, plain sequential code.
 *
 *   echo_server [PORT [IDLE_SECONDS]]     (default 7000; idle timeout 0 = none)
 *
 * Listens on 127.0.0.1:PORT and sends every byte it receives back. SIGINT/SIGTERM stop it
 * cleanly: a plain thread waits for the signal and cancels the acceptor coroutine; the
 * acceptor closes the listener, cancels every connection still open and waits for them.
 * Try it: `nc 127.0.0.1 7000`. */
#define _GNU_SOURCE
#include <weft.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static int port = 7000;
static int64_t idle_timeout; /* ns; 0: none */

/* ---- shutdown: the signal thread cancels the acceptor ---------------------------------- */
static pthread_mutex_t acceptor_mu = PTHREAD_MUTEX_INITIALIZER;
static weft_task acceptor; /* id 0 while no acceptor runs */
static atomic_int stopping;

static void *signal_thread(void *arg)
{
    int sig;
    sigwait((sigset_t *)arg, &sig);
    pthread_mutex_lock(&acceptor_mu);
    atomic_store(&stopping, 1);
    if (acceptor.id)
        weft_cancel(acceptor); /* callable from a plain thread */
    pthread_mutex_unlock(&acceptor_mu);
    return NULL;
}

/* ---- the connections alive, so that shutdown can cancel them ----------------------------- */
struct conn {
    int fd;
    weft_task task;
    struct conn *prev, *next;
};
static struct conn conns = {.prev = &conns, .next = &conns};
static weft_mutex conns_mu = WEFT_MUTEX_INIT;
static weft_wg conns_wg = WEFT_WG_INIT;

/* Take a mutex even when cancelled: in a shield, where the (sticky) request stays pending
 * for the next cancellation point after it. */
static void lock(weft_mutex *m)
{
    weft_shield_begin();
    weft_mutex_lock(m);
    weft_shield_end();
}

static void *serve(void *arg)
{
    struct conn *c = arg;
    char buf[16384];
    for (;;) {
        int64_t deadline = idle_timeout ? weft_after(idle_timeout) : WEFT_FOREVER;
        ssize_t n = weft_read(c->fd, buf, sizeof buf, deadline);
        if (n <= 0) /* 0: the peer closed; < 0: reset, timeout, cancelled */
            break;
        if (weft_write_all(c->fd, buf, (size_t)n, WEFT_FOREVER) < 0)
            break;
    }
    weft_close(c->fd);
    lock(&conns_mu); /* while we are on the list, shutdown may still cancel us */
    c->prev->next = c->next;
    c->next->prev = c->prev;
    weft_mutex_unlock(&conns_mu);
    free(c);
    weft_wg_done(&conns_wg);
    return NULL;
}

static int server(void *arg)
{
    (void)arg;
    int lfd = weft_tcp_listen("127.0.0.1", port, 1024);
    if (lfd < 0) {
        fprintf(stderr, "echo_server: listen on 127.0.0.1:%d: %s\n", port, weft_strerror(lfd));
        return 1;
    }
    pthread_mutex_lock(&acceptor_mu);
    acceptor = weft_self();
    pthread_mutex_unlock(&acceptor_mu);
    printf("echo_server: listening on 127.0.0.1:%d\n", port);
    fflush(stdout);

    while (!atomic_load(&stopping)) {
        int fd = weft_accept(lfd, NULL, NULL, WEFT_FOREVER);
        if (fd == WEFT_ECANCELED)
            break;
        if (fd < 0) { /* EMFILE and friends: back off a little and retry */
            fprintf(stderr, "echo_server: accept: %s\n", weft_strerror(fd));
            weft_sleep(WEFT_MSEC(10));
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
        lock(&conns_mu);
        if (weft_spawn(&c->task, serve, c) != 0) {
            weft_mutex_unlock(&conns_mu);
            weft_close(fd);
            free(c);
            weft_wg_done(&conns_wg);
            continue;
        }
        c->next = &conns; /* linked before serve() can unlink itself: it needs conns_mu */
        c->prev = conns.prev;
        conns.prev->next = c;
        conns.prev = c;
        /* Nobody joins connections: detach (before unlocking: once we unlock, the task may
         * finish and free c). The handle still names the task while it is on the list (it
         * unlinks itself before it finishes), which is when shutdown may cancel it. */
        weft_detach(c->task);
        weft_mutex_unlock(&conns_mu);
    }

    /* Shut down: stop accepting, cancel the connections, wait for them. */
    pthread_mutex_lock(&acceptor_mu);
    acceptor = (weft_task){0};
    pthread_mutex_unlock(&acceptor_mu);
    weft_close(lfd);
    int n = 0;
    lock(&conns_mu);
    for (struct conn *c = conns.next; c != &conns; c = c->next, n++)
        weft_cancel(c->task);
    weft_mutex_unlock(&conns_mu);
    weft_shield_begin(); /* we were cancelled (that is how shutdown started): wait anyway */
    weft_wg_wait(&conns_wg);
    weft_shield_end();
    printf("echo_server: shut down (%d connection%s cancelled)\n", n, n == 1 ? "" : "s");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        port = atoi(argv[1]);
    if (argc > 2)
        idle_timeout = WEFT_SEC(atoi(argv[2]));
    /* Block the signals in every thread (workers inherit the mask); one thread waits.
     * A shell starts background jobs with SIGINT ignored, and an ignored signal never
     * reaches sigwait: restore the default disposition first (Go's signal.Notify does too). */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_t sig;
    pthread_create(&sig, NULL, signal_thread, &set);

    int rc = weft_run(server, NULL, NULL);

    if (!atomic_load(&stopping)) /* stopped by itself: release the signal thread */
        pthread_kill(sig, SIGTERM);
    pthread_join(sig, NULL);
    if (rc < 0)
        fprintf(stderr, "echo_server: %s\n", weft_strerror(rc));
    return rc == 0 ? 0 : 1;
}
