/* SPDX-License-Identifier: MIT */
/* POSIX threads peer (peer=pthread) of the weft benchmark workloads.
 *
 * Usage: pthread WORKLOAD [N]
 *   spawn       N x pthread_create(NULL attrs) of an empty body, then join all
 *               in creation order (N defaults to 10,000)
 *   park        N threads each nanosleep(2 s), joined in creation order
 *               (N defaults to 10,000)
 *   pingpong    two threads, rendezvous hand-off through a mutex + condvars,
 *               N round trips (N defaults to 1,000,000)
 *   threadsend  a sender thread pushes 0..N-1 into a mutex/condvar bounded
 *               queue of capacity 1024 and closes it; a receiver thread sums
 *               (N defaults to 1,000,000)
 *
 * Prints one line: workload=<w> peer=pthread n=<N> <metric>=<value> ... peak_rss_kb=<KB>
 * Timing: CLOCK_MONOTONIC around the measured part only.
 * Build: gcc -O2 pthread.c -o pthread -pthread */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return ru.ru_maxrss;
}

#include "peer_cost.h" /* mark(), paid(n) */

static void die(const char *what, int err)
{
    fprintf(stderr, "pthread peer: %s: %s\n", what, strerror(err));
    exit(1);
}

static void create(pthread_t *t, void *(*fn)(void *), void *arg)
{
    int rc = pthread_create(t, NULL, fn, arg);
    if (rc)
        die("pthread_create", rc);
}

/* ------------------------------------------------------------- spawn, park */

static void *empty_body(void *arg)
{
    (void)arg;
    return NULL;
}

static void *sleep_body(void *arg)
{
    (void)arg;
    struct timespec ts = {2, 0};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
    return NULL;
}

static void bench_spawn(long n)
{
    pthread_t *t = malloc(sizeof *t * (size_t)n);
    if (!t)
        die("malloc", ENOMEM);
    mark();
    double t0 = now_s();
    for (long i = 0; i < n; i++)
        create(&t[i], empty_body, NULL);
    for (long i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    double el = now_s() - t0;
    printf("workload=spawn peer=pthread n=%ld tasks_per_s=%.0f elapsed_s=%.3f %s peak_rss_kb=%ld\n",
           n, n / el, el, paid(n), peak_rss_kb());
    free(t);
}

static void bench_park(long n)
{
    pthread_t *t = malloc(sizeof *t * (size_t)n);
    if (!t)
        die("malloc", ENOMEM);
    mark();
    double t0 = now_s();
    for (long i = 0; i < n; i++)
        create(&t[i], sleep_body, NULL);
    double spawn = now_s() - t0;
    for (long i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    double el = now_s() - t0;
    long rss = peak_rss_kb();
    /* The first thread's sleep ends 2 s after its creation: all n were alive
     * at once only if creating them took less than that. */
    printf("workload=park peer=pthread n=%ld bytes_per_task=%.0f elapsed_s=%.3f spawn_s=%.3f "
           "all_alive=%s %s peak_rss_kb=%ld\n",
           n, rss * 1024.0 / n, el, spawn, spawn < 2.0 ? "yes" : "no", paid(n), rss);
    free(t);
}

/* ------------------------------------------------------------- pingpong */

/* A synchronous hand-off: `turn` says whose move it is. */
struct pp {
    pthread_mutex_t mu;
    pthread_cond_t cv_a, cv_b;
    int turn; /* 0: A may act (pong available), 1: B may act (ping available) */
    long value;
    long n;
    double end;
};

static void *pp_b(void *arg)
{
    struct pp *p = arg;
    for (long i = 0; i < p->n; i++) {
        pthread_mutex_lock(&p->mu);
        while (p->turn != 1)
            pthread_cond_wait(&p->cv_b, &p->mu);
        /* received v = p->value from ping; sending it back on pong leaves it in place */
        p->turn = 0;
        pthread_cond_signal(&p->cv_a);
        pthread_mutex_unlock(&p->mu);
    }
    p->end = now_s();
    return NULL;
}

static void bench_pingpong(long n)
{
    struct pp p = {.turn = 0, .n = n};
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv_a, NULL);
    pthread_cond_init(&p.cv_b, NULL);
    pthread_t b;
    create(&b, pp_b, &p);
    mark();
    double t0 = now_s();
    long check = 0;
    for (long i = 0; i < n; i++) {
        pthread_mutex_lock(&p.mu);
        p.value = i; /* send i on ping */
        p.turn = 1;
        pthread_cond_signal(&p.cv_b);
        while (p.turn != 0)
            pthread_cond_wait(&p.cv_a, &p.mu); /* receive from pong */
        check += p.value;
        pthread_mutex_unlock(&p.mu);
    }
    pthread_join(b, NULL);
    double el = p.end - t0;
    if (check != n * (n - 1) / 2)
        fprintf(stderr, "pingpong: bad values\n");
    printf("workload=pingpong peer=pthread n=%ld ns_per_roundtrip=%.1f %s peak_rss_kb=%ld\n", n,
           el * 1e9 / n, paid(n), peak_rss_kb());
}

/* ------------------------------------------------------------- threadsend */

#define QCAP 1024

struct queue {
    pthread_mutex_t mu;
    pthread_cond_t not_full, not_empty;
    int64_t buf[QCAP];
    size_t head, len;
    int closed;
    long n;
    int64_t sum;
    double end;
};

static void q_push(struct queue *q, int64_t v)
{
    pthread_mutex_lock(&q->mu);
    while (q->len == QCAP)
        pthread_cond_wait(&q->not_full, &q->mu);
    q->buf[(q->head + q->len) % QCAP] = v;
    q->len++;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
}

static void q_close(struct queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->closed = 1;
    pthread_cond_broadcast(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
}

/* Returns 1 with *v set, or 0 once the queue is closed and drained. */
static int q_pop(struct queue *q, int64_t *v)
{
    pthread_mutex_lock(&q->mu);
    while (q->len == 0 && !q->closed)
        pthread_cond_wait(&q->not_empty, &q->mu);
    if (q->len == 0) {
        pthread_mutex_unlock(&q->mu);
        return 0;
    }
    *v = q->buf[q->head];
    q->head = (q->head + 1) % QCAP;
    q->len--;
    pthread_cond_signal(&q->not_full);
    pthread_mutex_unlock(&q->mu);
    return 1;
}

static void *ts_sender(void *arg)
{
    struct queue *q = arg;
    for (int64_t i = 0; i < q->n; i++)
        q_push(q, i);
    q_close(q);
    return NULL;
}

static void *ts_receiver(void *arg)
{
    struct queue *q = arg;
    int64_t v, sum = 0;
    while (q_pop(q, &v))
        sum += v;
    q->end = now_s();
    q->sum = sum;
    return NULL;
}

static void bench_threadsend(long n)
{
    struct queue *q = calloc(1, sizeof *q);
    if (!q)
        die("calloc", ENOMEM);
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->not_full, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    q->n = n;
    pthread_t rx, tx;
    create(&rx, ts_receiver, q); /* waits on the empty queue */
    mark();
    double t0 = now_s();
    create(&tx, ts_sender, q);
    pthread_join(rx, NULL);
    pthread_join(tx, NULL);
    double el = q->end - t0;
    int64_t want = (int64_t)n * (n - 1) / 2;
    printf("workload=threadsend peer=pthread n=%ld msgs_per_s=%.0f check=%s %s peak_rss_kb=%ld\n",
           n, n / el, q->sum == want ? "ok" : "FAIL", paid(n), peak_rss_kb());
    free(q);
}

/* ------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    if (argc < 2)
        goto usage;
    const char *w = argv[1];
    long n;
    if (!strcmp(w, "spawn") || !strcmp(w, "park"))
        n = 10000;
    else if (!strcmp(w, "pingpong") || !strcmp(w, "threadsend"))
        n = 1000000;
    else
        goto usage;
    if (argc >= 3) {
        char *end;
        n = strtol(argv[2], &end, 10);
        if (*end || n <= 0)
            goto usage;
    }
    if (!strcmp(w, "spawn"))
        bench_spawn(n);
    else if (!strcmp(w, "park"))
        bench_park(n);
    else if (!strcmp(w, "pingpong"))
        bench_pingpong(n);
    else
        bench_threadsend(n);
    return 0;
usage:
    fprintf(stderr, "usage: pthread {spawn|park|pingpong|threadsend} [N]\n");
    return 2;
}
