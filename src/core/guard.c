/* SPDX-License-Identifier: MIT */
/* guard.c — floor 2 (the worker): stack-overflow reports: the SIGSEGV handler and the check at
 * every switch.
 *
 * Every overflow ends in one line on stderr and abort():
 *   weft: stack overflow in coroutine <id> "<name>" (stack <N> bytes)[: <how it was seen>]
 * (an unnamed coroutine is named by its entry function: `coroutine 17 (entry deep_recurse)`).
 * Three ways to see one:
 *  - a fault in the guard zone below the running coroutine's stack (stack.c: 64 KiB, which a
 *    frame built with -fstack-clash-protection cannot jump), or a fault while the running
 *    coroutine's stack pointer is below its stack (a frame that jumped the guard and then
 *    touched unmapped memory), or any fault while that stack pointer is below its stack
 *    inside the stack's own slab (the frames ran past the stack, then something else
 *    faulted). The handler runs on a per-worker alternate signal stack (the coroutine's own
 *    stack is the thing that overflowed);
 *  - at every switch away from a coroutine (yield, park, exit: sched.c), its stack pointer is
 *    compared with its stack's limit, for every guard kind — a frame that jumped the guard
 *    into the stack below without faulting is reported there, before that stack's owner runs
 *    again on this worker; canary-kind stacks (sub-page, or past the mprotect budget) also
 *    have their canary words checked;
 *  - a fault in a coroutine whose own stack was overrun from the stack above it (packed
 *    sub-page stacks have no guard between them: the overflow of the one above runs straight
 *    into this one's frames and saved context, and it crashes when it resumes). The canaries
 *    of the stacks above show whose overflow it was, and that coroutine is named, not the
 *    victim. An overrun from above that the victim notices first at its own check (its canary
 *    smashed, the one above smashed too) is reported the same way.
 * Any other SIGSEGV/SIGBUS is passed to the handler that was installed before weft's,
 * untouched (or, if that was the default, the default action happens).
 *
 * Only async-signal-safe calls are used (write, sigaction, abort), except dladdr for the
 * entry-function name (debug.c says why that is acceptable on the way to abort). Stack
 * descriptors live outside the stacks (stack.c), so an overflow never corrupts what this
 * code reads. */
#define _GNU_SOURCE
#include "guard.h"
#include "text.h"
#include "worker.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#define ALTSTACK_SIZE (64 * 1024)

static struct sigaction old_segv, old_bus;
static int installed;

WEFT_NORETURN static void die(struct weft__text *t, char *buf)
{
    weft__text_str(t, "\n");
    ssize_t r = write(2, buf, (size_t)(t->p - buf));
    (void)r;
    signal(SIGABRT, SIG_DFL);
    abort();
}

/* The coroutine alive on stack s, if any. A walk of every control block (type-stable, never
 * freed): only on the way to abort. A stale read finds nobody, which the report says. */
static const struct weft__coro *owner_of(const struct weft__stack *s)
{
    for (const struct weft__coro *co = weft__coro_first(); co; co = co->all_next) {
        uint32_t st =
            atomic_load_explicit(&co->state, memory_order_relaxed) & ~(uint32_t)WEFT_CO_NOTIFIED;
        if (co->stack == s &&
            (st == WEFT_CO_RUNNING || st == WEFT_CO_RUNNABLE || st == WEFT_CO_WAITING))
            return co;
    }
    return NULL;
}

/* `weft: stack overflow in coroutine 17 "name" (stack 65536 bytes)` */
static void overflow_head(struct weft__text *t, const struct weft__coro *co, size_t size)
{
    weft__text_str(t, "weft: stack overflow in ");
    if (co)
        weft__text_coro(t, co);
    else
        weft__text_str(t, "a coroutine that has finished");
    weft__text_str(t, " (stack ");
    weft__text_u64(t, size);
    weft__text_str(t, " bytes)");
}

WEFT_NORETURN static void report_overflow(const struct weft__coro *co, const struct weft__stack *s,
                                          const char *how)
{
    char buf[512];
    struct weft__text t = {buf, buf + sizeof buf - 2};
    overflow_head(&t, co, s->size);
    if (how) {
        weft__text_str(&t, ": ");
        weft__text_str(&t, how);
    }
    die(&t, buf);
}

/* The overflow of the coroutine on `culprit` ran down into the stack below it, where
 * `victim` (the coroutine running there) noticed: it crashed, or found its canary smashed. */
WEFT_NORETURN static void report_overrun(const struct weft__stack *culprit,
                                         const struct weft__coro *victim, bool crashed)
{
    char buf[512];
    struct weft__text t = {buf, buf + sizeof buf - 2};
    overflow_head(&t, owner_of(culprit), culprit->size);
    weft__text_str(&t, ": it ran past its stack into the one below, where ");
    weft__text_coro(&t, victim);
    weft__text_str(&t, crashed ? " then crashed" : " found its canary overwritten");
    die(&t, buf);
}

/* The highest stack in an unbroken run of smashed canaries above s: an overflow runs down
 * through its own canary first, so that is where it started. NULL: none above is smashed.
 * (Only canary-kind stacks have canaries; a guarded stack above ends the walk.) */
static const struct weft__stack *overrun_from_above(const struct weft__stack *s)
{
    const struct weft__stack *culprit = NULL;
    for (const struct weft__stack *a = weft__stack_above(s); a && weft__stack_canary_smashed(a);
         a = weft__stack_above(a))
        culprit = a;
    return culprit;
}

WEFT_NO_ASAN void weft__guard_check(struct weft__coro *co, const void *sp)
{
    const struct weft__stack *s = co->stack;
    if (weft__stack_sp_below(s, sp))
        report_overflow(co, s, "its stack pointer was below its stack at a switch");
    if (weft__stack_canary_smashed(s)) {
        const struct weft__stack *culprit = overrun_from_above(s);
        if (culprit)
            report_overrun(culprit, co, false);
        report_overflow(co, s, "its canary was overwritten (seen at a switch)");
    }
}

/* The interrupted stack pointer, or NULL where we do not know the register. */
static const char *fault_sp(void *ucv)
{
    ucontext_t *uc = ucv;
    (void)uc;
#if defined(__x86_64__)
    return (const char *)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
    return (const char *)uc->uc_mcontext.sp;
#else
    return NULL;
#endif
}

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    const char *addr = si->si_addr;
    struct weft__worker *w = weft__worker_self();
    struct weft__coro *co = w ? w->current : NULL;
    const struct weft__stack *s = co ? co->stack : NULL;
    if (s) {
        if (weft__stack_in_guard(s, addr))
            report_overflow(co, s, NULL);
        /* A frame that jumped the guard: the stack pointer is below the stack and the access
         * near it, not in weft's scheduler stack (weft__offstack runs code there while
         * w->current stays set). */
        const char *sp = fault_sp(uc);
        const char *sched_lo = w->sched_stack_lo;
        bool on_sched = sp >= sched_lo && sp < sched_lo + w->sched_stack_size;
        if (sp && !on_sched && weft__stack_sp_below(s, sp) && addr + 4096 >= sp &&
            addr < (const char *)s->lo)
            report_overflow(co, s, "a frame jumped past its stack");
        /* Whatever the address: the stack pointer is inside this stack's slab, below the
         * stack. Nothing runs there on co's behalf — that memory is other stacks, their guard
         * gaps and uncarved room, and libgcc's segments (segmented builds) and every other
         * stack (the scheduler's, the alternate signal stack, threads') are separate
         * mappings — so co's frames ran down there: a frame that jumped the guard zone and
         * then faulted away from its stack pointer (a wild or NULL pointer, a return into
         * garbage from a frame larger than its code says). Its frames are past its stack:
         * the overflow is the report, not the fault. (One window breaks "co runs on
         * co->stack": switch_to sets w->current to the destination just before the jump;
         * a fault in those few instructions of weft's is reported here if the stack being
         * left lies below the destination's in one slab. w->current is this thread's own
         * word, read without a barrier on its own thread.) */
        if (sp && !on_sched && weft__stack_below_in_slab(s, sp))
            report_overflow(co, s, "its stack pointer was below its stack at a fault");
        const struct weft__stack *culprit = overrun_from_above(s);
        if (culprit)
            report_overrun(culprit, co, true);
        if (weft__stack_canary_smashed(s))
            report_overflow(co, s, "its canary was overwritten (seen at a fault)");
    }
    /* A fault in another stack's guard zone (a frame that ran past a whole neighbour, or a
     * wild pointer into one): name the coroutine running here, else that stack's owner. */
    const struct weft__stack *g = weft__stack_guard_hit(addr);
    if (g)
        report_overflow(co ? co : owner_of(g), g, "a fault in the guard zone of this stack");
    /* Not ours: hand over to the previous handler. */
    struct sigaction *old = sig == SIGBUS ? &old_bus : &old_segv;
    bool dflt = (old->sa_flags & SA_SIGINFO)
                    ? !old->sa_sigaction
                    : old->sa_handler == SIG_DFL || old->sa_handler == SIG_IGN;
    if (dflt) {
        /* The process is about to die without a word. If an overflow left a smashed canary
         * somewhere, that is the likely cause — the fault can be anywhere: in a coroutine
         * whose stack it ran over, or in code that followed a pointer into it (a waiter
         * record on that stack, read by a thread sending to its channel). Name the
         * coroutine that overflowed. (Skipped when the application has its own handler: it
         * may expect faults, and gets them untouched.) */
        const struct weft__stack *hit = weft__stack_any_smashed();
        if (hit) {
            const struct weft__stack *culprit = overrun_from_above(hit);
            report_overflow(owner_of(culprit ? culprit : hit), culprit ? culprit : hit,
                            "its canary was overwritten (seen at a crash: the overflow ran "
                            "into the memory below it)");
        }
    }
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
