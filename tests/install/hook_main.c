/* SPDX-License-Identifier: MIT */
/* hook_main.c — the install test's libweft-hook program: the installed weft::hook (or
 * pkg-config weft-hook) is active, and a coroutine's read of an empty blocking pipe parks it
 * while another coroutine on the only worker writes. Prints "install-test: ok" or says what
 * went wrong and exits 1. */
#include <weft.h>
#include <weft/hook.h>

#include <stdio.h>
#include <unistd.h>

static int fds[2];

static void *writer(void *arg)
{
    (void)arg;
    return (void *)(long)write(fds[1], "h", 1);
}

static int main_coro(void *arg)
{
    (void)arg;
    char c = 0;
    weft_task t;
    if (pipe(fds) != 0 || weft_spawn(&t, writer, NULL) != 0)
        return 1;
    /* One worker: the writer runs only if this read parks the coroutine. */
    if (read(fds[0], &c, 1) != 1 || c != 'h' || weft_join(t, NULL) != 0)
        return 1;
    return 0;
}

int main(void)
{
    if (!weft_hook_active()) {
        fprintf(stderr, "install-test: libweft-hook is not active\n");
        return 1;
    }
    weft_config cfg = {.threads = 1};
    if (weft_run(main_coro, NULL, &cfg) != 0) {
        fprintf(stderr, "install-test: the hooked read did not work\n");
        return 1;
    }
    printf("install-test: ok\n");
    return 0;
}
