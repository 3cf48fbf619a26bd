/* SPDX-License-Identifier: MIT */
/* tcp_server.h — what the three sample servers share, so that each of their files is its
 * protocol alone: listen on 127.0.0.1:PORT, run one coroutine per connection, and on SIGINT
 * or SIGTERM (received on a channel: weft_signal_notify) stop accepting, cancel the
 * connections still open and wait for them. */
#ifndef SAMPLES_TCP_SERVER_H
#define SAMPLES_TCP_SERVER_H
#include <stdint.h>
#include <weft.h>

typedef struct tcp_server {
    const char *name;   /* prefixes every message: "NAME: listening on 127.0.0.1:PORT" */
    int port;           /* default; argv[1] overrides */
    double timeout_sec; /* default; argv[2] overrides (seconds, fractions allowed); 0: none */
    /* Serve one connection until it ends; the descriptor is closed afterwards. A shutdown
     * cancels the coroutine: its blocking calls then return WEFT_ECANCELED. `timeout` is
     * the protocol's idle deadline in ns (0: none). */
    void (*serve)(int fd, int64_t timeout);
} tcp_server;

/* Parse "[PORT [TIMEOUT_SECONDS]]" from argv, run the server until a signal stops it, and
 * return the process exit status (0 after a clean shutdown). */
int tcp_server_main(tcp_server *s, int argc, char **argv);

/* Lock a weft_mutex even when cancelled (in a shield: the request stays pending for the
 * next cancellation point): for short critical sections that must not be abandoned. */
void tcp_lock(weft_mutex *m);

/* The deadline for a wait that must end within `timeout` ns (0: never). */
static inline int64_t tcp_deadline(int64_t timeout)
{
    return timeout ? weft_after(timeout) : WEFT_FOREVER;
}

#endif
