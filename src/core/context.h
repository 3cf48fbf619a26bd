/* SPDX-License-Identifier: MIT */
/* context.h — floor 0 (platform): the fcontext-style context switch, whichever backend was
 * configured.
 *
 * The model is Boost.Context's fcontext (make / jump / on-top):
 *   - weft__make_fcontext(sp, size, fn) prepares a context on the stack whose HIGHEST address is
 *     `sp` (stacks grow down) and `size` bytes long; the first jump to it calls fn(transfer).
 *     fn must never return (weft's entry trampoline ends with a jump away).
 *   - weft__jump_fcontext(to, data) saves the callee-saved state of the caller, switches to `to`
 *     and hands it `data`. It returns when someone jumps back, with {the context that jumped
 *     back to us, the data it passed}.
 *   - weft__ontop_fcontext(to, data, fn) is a jump that, once on `to`'s stack, first calls
 *     fn({from, data}); what fn returns is what `to`'s pending jump (or its entry fn) receives.
 *     This is how weft finishes a switch safely: the coroutine we left is saved by then, so fn
 *     may publish it (queue it, unlock its channel) without a window where another thread
 *     could resume a coroutine still running on its own stack.
 *
 * Backends (CMake option WEFT_CONTEXT): asm (src/arch/jump_<arch>_<abi>_<fmt>.S, default),
 * boost (Debian's libboost_context: the same three functions under Boost's names), ucontext
 * (portable fallback built on makecontext/swapcontext, src/core/context_ucontext.c).
 */
#ifndef WEFT_CONTEXT_H
#define WEFT_CONTEXT_H

#include <stddef.h>

typedef void *weft__fctx_t;

typedef struct weft__transfer {
    weft__fctx_t fctx; /* the context we came from (resume it to go back) */
    void *data;        /* the pointer it passed */
} weft__transfer_t;

typedef void (*weft__entry_fn)(weft__transfer_t);
typedef weft__transfer_t (*weft__ontop_fn)(weft__transfer_t);

#if defined(WEFT_CONTEXT_BOOST)
/* libboost_context exports these with C linkage (checked with nm -D). */
weft__transfer_t jump_fcontext(weft__fctx_t const to, void *vp);
weft__fctx_t make_fcontext(void *sp, size_t size, weft__entry_fn fn);
weft__transfer_t ontop_fcontext(weft__fctx_t const to, void *vp, weft__ontop_fn fn);
#define weft__jump_fcontext jump_fcontext
#define weft__make_fcontext make_fcontext
#define weft__ontop_fcontext ontop_fcontext
#else
/* asm backend: src/arch/; ucontext backend: src/core/context_ucontext.c. */
weft__transfer_t weft__jump_fcontext(weft__fctx_t const to, void *vp);
weft__fctx_t weft__make_fcontext(void *sp, size_t size, weft__entry_fn fn);
weft__transfer_t weft__ontop_fcontext(weft__fctx_t const to, void *vp, weft__ontop_fn fn);
#endif

#endif
