/* SPDX-License-Identifier: MIT */
/* watchdog.h — a safety net for the hook's proofs: a plain thread that ends the process with
 * a message if the test has not finished within `secs` (a run whose blocking calls hold
 * their workers never finishes; without this it would only be killed by ctest's timeout).
 * Not a timing assumption: the proofs wait for events; this only bounds a hang. */
#ifndef WEFT_TEST_HOOK_WATCHDOG_H
#define WEFT_TEST_HOOK_WATCHDOG_H

#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t watchdog_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t watchdog_cv = PTHREAD_COND_INITIALIZER;
static int watchdog_done, watchdog_secs;
static const char *watchdog_what;
static pthread_t watchdog_thread;

static void *watchdog_run(void *arg)
{
    (void)arg;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += watchdog_secs;
    pthread_mutex_lock(&watchdog_mu);
    while (!watchdog_done)
        if (pthread_cond_timedwait(&watchdog_cv, &watchdog_mu, &dl) != 0)
            break;
    int done = watchdog_done;
    pthread_mutex_unlock(&watchdog_mu);
    if (!done) {
        fprintf(stderr, "FAIL: %s did not finish within %d s\n", watchdog_what, watchdog_secs);
        _exit(1);
    }
    return NULL;
}

static void watchdog_start(const char *what, int secs)
{
    watchdog_what = what;
    watchdog_secs = secs;
    pthread_create(&watchdog_thread, NULL, watchdog_run, NULL);
}

static void watchdog_stop(void)
{
    pthread_mutex_lock(&watchdog_mu);
    watchdog_done = 1;
    pthread_cond_signal(&watchdog_cv);
    pthread_mutex_unlock(&watchdog_mu);
    pthread_join(watchdog_thread, NULL);
}

#endif
