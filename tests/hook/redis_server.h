/* SPDX-License-Identifier: MIT */
/* redis_server.h — a real redis-server for the hook's proofs and benchmark: started on a free
 * 127.0.0.1 port in a temporary directory, ready once it prints "Ready to accept connections"
 * (read from its stdout: an event, not a sleep), killed with the test however the test ends
 * (PR_SET_PDEATHSIG in the child, and redis_server_stop at the end).
 *
 * Call redis_server_start from the main thread before weft_run (the parent-death signal is
 * tied to the thread that forks). Returns the port, or 0 when there is no redis-server:
 * the caller skips (exit 77) if $WEFT_NO_INSTALL=1, else fails — CI installs it (scripts/
 * deps.sh, group hook). */
#ifndef WEFT_TEST_REDIS_SERVER_H
#define WEFT_TEST_REDIS_SERVER_H

#include "read_until.h"

#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t redis_server_pid;

static bool redis_ready(const char *log, void *arg)
{
    (void)arg;
    return strstr(log, "Ready to accept connections") != NULL;
}
static char redis_server_dir[64];

static int redis_free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) < 0) {
        perror("redis_free_port");
        exit(1);
    }
    close(s);
    return ntohs(a.sin_port);
}

static void redis_server_stop(void)
{
    if (redis_server_pid > 0) {
        kill(redis_server_pid, SIGKILL);
        waitpid(redis_server_pid, NULL, 0);
        redis_server_pid = 0;
    }
    if (redis_server_dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", redis_server_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", redis_server_dir);
        redis_server_dir[0] = 0;
    }
}

/* "redis-server" on PATH, or in /usr/bin or /usr/sbin: 1 if found. */
static int redis_server_path(char *out, size_t cap)
{
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s:/usr/bin:/usr/sbin", path ? path : "");
    for (char *save, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(out, cap, "%s/redis-server", d);
        if (access(out, X_OK) == 0)
            return 1;
    }
    return 0;
}

/* Start redis-server with room for `clients` connections; its port, or 0 without one. */
static int redis_server_start(int clients)
{
    char exe[512];
    if (!redis_server_path(exe, sizeof exe))
        return 0;
    /* Room for our clients' descriptors and the server's. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)clients * 2 + 256) {
        rl.rlim_cur =
            rl.rlim_max < (rlim_t)clients * 2 + 256 ? rl.rlim_max : (rlim_t)clients * 2 + 256;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    snprintf(redis_server_dir, sizeof redis_server_dir, "/tmp/weft-redis-XXXXXX");
    if (!mkdtemp(redis_server_dir)) {
        perror("mkdtemp");
        exit(1);
    }
    atexit(redis_server_stop);
    for (int attempt = 0; attempt < 5; attempt++) {
        int port = redis_free_port(), out[2];
        if (pipe(out) < 0)
            exit(1);
        char portarg[16], maxc[16];
        snprintf(portarg, sizeof portarg, "%d", port);
        snprintf(maxc, sizeof maxc, "%d", clients + 100);
        pid_t pid = fork();
        if (pid < 0)
            exit(1);
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            dup2(out[1], 1);
            close(out[0]);
            execl(exe, exe, "--port", portarg, "--bind", "127.0.0.1", "--save", "", "--appendonly",
                  "no", "--dir", redis_server_dir, "--maxclients", maxc, "--logfile", "",
                  "--daemonize", "no", "--protected-mode", "no", (char *)NULL);
            _exit(127);
        }
        close(out[1]);
        redis_server_pid = pid;
        /* Its log until "Ready to accept connections" (or its death: EOF). 60 s safety. */
        char log[16384];
        size_t len = 0;
        int ready = read_until(out[0], log, sizeof log, &len, redis_ready, NULL, 60);
        close(out[0]); /* redis logs little more; a write to the closed pipe is ignored */
        if (ready)
            return port;
        fprintf(stderr, "redis-server on port %d did not start:\n%.*s\n", port, (int)len, log);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        redis_server_pid = 0;
    }
    fprintf(stderr, "redis-server would not start\n");
    exit(1);
}

/* No redis-server: skip (77) with WEFT_NO_INSTALL=1, else fail. */
static void redis_server_missing(const char *test)
{
    const char *ni = getenv("WEFT_NO_INSTALL");
    if (ni && strcmp(ni, "1") == 0) {
        printf("%s: skipped: no redis-server (WEFT_NO_INSTALL=1; scripts/deps.sh hook)\n", test);
        exit(77);
    }
    fprintf(stderr, "%s: no redis-server: install it (scripts/deps.sh hook)\n", test);
    exit(1);
}

#endif
