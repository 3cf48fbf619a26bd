/* SPDX-License-Identifier: MIT */
/* echo_server.c — a TCP echo server: one coroutine per connection, plain sequential code.
 *
 *   echo_server [PORT [IDLE_SECONDS]]     (default 7000; idle timeout 0 = none)
 *
 * Listens on 127.0.0.1:PORT and sends every byte it receives back; a connection silent for
 * IDLE_SECONDS is closed. SIGINT/SIGTERM stop it cleanly (tcp_server.c: the listener, the
 * connections and the shutdown the sample servers share). Try it: `nc 127.0.0.1 7000`. */
#include <weft.h>

#include "tcp_server.h"

static void echo(int fd, int64_t idle)
{
    char buf[16384];
    for (;;) {
        ssize_t n = weft_read(fd, buf, sizeof buf, tcp_deadline(idle));
        if (n <= 0) /* 0: the peer closed; < 0: reset, timeout, cancelled */
            return;
        if (weft_write_all(fd, buf, (size_t)n, tcp_deadline(idle)) < 0)
            return;
    }
}

int main(int argc, char **argv)
{
    tcp_server s = {.name = "echo_server", .port = 7000, .timeout_sec = 0, .serve = echo};
    return tcp_server_main(&s, argc, argv);
}
