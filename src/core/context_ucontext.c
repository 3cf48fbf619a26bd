/* SPDX-License-Identifier: MIT */
/* context_ucontext.c — floor 0 (platform): the portable fallback backend (WEFT_CONTEXT=ucontext):
 * the fcontext interface of context.h on getcontext/makecontext/swapcontext. Much slower
 * (swapcontext makes a sigprocmask system call per switch, and it carries the signal mask along, so
 * a coroutine's mask follows it across workers) but correct wherever ucontext exists.
 *
 * A context is a `struct uctx` on the stack of the context it describes: in the frame of
 * the suspended jump, or at the top of a fresh stack. A jump fills in the destination's
 * `in` (what its pending jump will return) and, for on-top, the function to run first. */
#define _GNU_SOURCE
#include "context.h"

#include <stdint.h>
#include <stdlib.h>
#include <ucontext.h>

struct uctx {
    ucontext_t uc;
    weft__transfer_t in;  /* delivered to this context when it resumes */
    weft__ontop_fn ontop; /* run on this context's stack before it resumes */
    weft__entry_fn entry; /* fresh contexts only */
};

static weft__transfer_t resumed(struct uctx *self)
{
    weft__transfer_t t = self->in;
    if (self->ontop) {
        weft__ontop_fn fn = self->ontop;
        self->ontop = NULL;
        t = fn(t);
    }
    return t;
}

static void trampoline(unsigned hi, unsigned lo)
{
    struct uctx *self = (struct uctx *)(((uintptr_t)hi << 32) | (uintptr_t)lo);
    weft__transfer_t t = resumed(self);
    self->entry(t);
    abort(); /* an entry function must never return */
}

static weft__transfer_t switch_to(weft__fctx_t to, void *data, weft__ontop_fn fn)
{
    struct uctx self;
    struct uctx *dst = to;
    self.ontop = NULL;
    dst->in.fctx = &self;
    dst->in.data = data;
    dst->ontop = fn;
    swapcontext(&self.uc, &dst->uc);
    return resumed(&self);
}

weft__transfer_t weft__jump_fcontext(weft__fctx_t const to, void *vp)
{
    return switch_to(to, vp, NULL);
}

weft__transfer_t weft__ontop_fcontext(weft__fctx_t const to, void *vp, weft__ontop_fn fn)
{
    return switch_to(to, vp, fn);
}

weft__fctx_t weft__make_fcontext(void *sp, size_t size, weft__entry_fn fn)
{
    uintptr_t top = ((uintptr_t)sp - sizeof(struct uctx)) & ~(uintptr_t)63;
    struct uctx *c = (struct uctx *)top;
    getcontext(&c->uc);
    c->uc.uc_stack.ss_sp = (char *)sp - size;
    c->uc.uc_stack.ss_size = top - ((uintptr_t)sp - size);
    c->uc.uc_link = NULL;
    c->entry = fn;
    c->ontop = NULL;
    uintptr_t p = (uintptr_t)c;
    makecontext(&c->uc, (void (*)(void))trampoline, 2, (unsigned)(p >> 32), (unsigned)p);
    return c;
}
