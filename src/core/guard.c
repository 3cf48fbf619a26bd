/* guard.c — stack-overflow reports.
 *
 * A coroutine that runs into the guard page below its stack faults with SIGSEGV. The
 * handler runs on a per-worker alternate signal stack (the coroutine's own stack is the
 * thing that overflowed), recognises an address in the guard page of the running
 * coroutine's stack (or of any weft stack), prints
 *   weft: stack overflow in coroutine <id> "<name>" (stack <N> bytes)
 * and aborts. Any other SIGSEGV is passed to the handler that was installed before weft's,
 * untouched (or, if that was the default, the default action happens). Only
 * async-signal-safe calls are used (write, sigaction, abort). */
#define _GNU_SOURCE
#include "runtime.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ALTSTACK_SIZE (64 * 1024)

static struct sigaction old_segv, old_bus;
static int installed;

static char *fmt_u64(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10));
    while (n)
        *p++ = tmp[--n];
    return p;
}

WEFT_NORETURN static void report(uint64_t id, const char *name, size_t size)
{
    char buf[200], *p = buf;
    const char *a = "weft: stack overflow in coroutine ";
    p = stpcpy(p, a);
    p = fmt_u64(p, id);
    *p++ = ' ';
    *p++ = '"';
    for (int i = 0; name && name[i] && i < 31; i++)
        *p++ = name[i];
    p = stpcpy(p, "\" (stack ");
    p = fmt_u64(p, size);
    p = stpcpy(p, " bytes)\n");
    ssize_t r = write(2, buf, (size_t)(p - buf));
    (void)r;
    signal(SIGABRT, SIG_DFL);
    abort();
}

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    const char *addr = si->si_addr;
    struct weft__worker *w = weft__worker_self();
    struct weft__coro *co = w ? w->current : NULL;
    if (co && co->stack) {
        const char *lo = co->stack->lo;
        if (addr >= lo - 4096 && addr < lo)
            report(co->id, co->name, co->stack->size);
    }
    struct weft__stack *s = weft__stack_guard_hit(addr);
    if (s && addr < (const char *)s->lo)
        report(co ? co->id : 0, co ? co->name : "?", s->size);
    /* Not ours: hand over to the previous handler. */
    struct sigaction *old = sig == SIGBUS ? &old_bus : &old_segv;
    if (old->sa_flags & SA_SIGINFO) {
        if (old->sa_sigaction) {
            old->sa_sigaction(sig, si, uc);
            return;
        }
    } else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
        old->sa_handler(sig);
        return;
    }
    /* Default action: restore it and return; the faulting instruction faults again. */
    sigaction(sig, old, NULL);
}

void weft__guard_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);
    installed = 1;
}

void weft__guard_uninstall(void)
{
    if (!installed)
        return;
    sigaction(SIGSEGV, &old_segv, NULL);
    sigaction(SIGBUS, &old_bus, NULL);
    installed = 0;
}

/* Called on the worker's own thread when it starts and when it stops. The previous
 * alternate stack (a sanitizer's, or the application's) is put back at the end. */
static WEFT_TLS stack_t old_altstack;

void weft__guard_thread_init(struct weft__worker *w)
{
    stack_t ss = {0};
    w->altstack = malloc(ALTSTACK_SIZE);
    if (!w->altstack)
        return;
    ss.ss_sp = w->altstack;
    ss.ss_size = ALTSTACK_SIZE;
    if (sigaltstack(&ss, &old_altstack) != 0) {
        free(w->altstack);
        w->altstack = NULL;
    }
}

void weft__guard_thread_fini(struct weft__worker *w)
{
    if (!w->altstack)
        return;
    if (old_altstack.ss_sp) {
        old_altstack.ss_flags = 0;
        sigaltstack(&old_altstack, NULL);
    } else {
        stack_t ss = {.ss_flags = SS_DISABLE};
        sigaltstack(&ss, NULL);
    }
    free(w->altstack);
    w->altstack = NULL;
}
