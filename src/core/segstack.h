/* SPDX-License-Identifier: MIT */
/* segstack.h — floor 0 (platform): segmented (growable) stacks with gcc's split stacks
 * (-DWEFT_SEGMENTED_STACKS=ON).
 *
 * How it works. Code built with -fsplit-stack starts every function with a comparison of the
 * stack pointer against a per-thread limit (on x86-64 the word at %fs:0x70, in the TCB);
 * below it, __morestack (libgcc) maps a new segment, runs the function there and switches
 * back when it returns. The gold linker makes a split function that calls code built
 * without -fsplit-stack (libc, libev) ask for a large frame first, so such calls always
 * run with room. libgcc keeps the limit and the thread's segment list in thread-local
 * variables; a coroutine that moves between threads carries its own copy: the 10-word
 * "split-stack context" below, saved and restored at every switch (getcontext/setcontext).
 *
 * weft gives each coroutine its own first segment (a weft stack from stack.c, sub-page by
 * default in this build) and lets libgcc allocate the next ones; they are reused while the
 * coroutine lives (libgcc keeps a segment list per context) and unmapped when it finishes
 * (releasecontext in the after-exit step, once we are off its stack).
 *
 * The limit sits WEFT__SEG_SLACK bytes above the first segment's bottom: a frame smaller
 * than 256 bytes compares the stack pointer itself (it may use 256 bytes below the limit),
 * and __morestack runs libgcc's C allocator on the old stack before it switches. Code that
 * is NOT split (a library built without the flag) can still run past the bottom of the
 * first segment: that is caught by the canary and stack-pointer checks at the next switch
 * (sub-page stacks) or the guard page (larger ones) and reported, as without segments.
 *
 * Context words (libgcc's enum __splitstack_context_offsets): segment list, current
 * segment, current stack, stack limit, initial stack pointer, initial stack length,
 * block-signals flag. weft fills the ones a fresh context needs; libgcc owns the rest. */
#ifndef WEFT_SEGSTACK_H
#define WEFT_SEGSTACK_H

#include <stddef.h>
#include <string.h>

#if defined(WEFT_SEGMENTED_STACKS)

#if !defined(__x86_64__) || !defined(__GNUC__) || defined(__clang__)
#error "WEFT_SEGMENTED_STACKS needs gcc on x86-64 (gcc's -fsplit-stack and the gold linker)"
#endif

#define WEFT_SEGMENTED 1
#define WEFT__SEG_SLACK 768 /* see above: 256 for small frames + __morestack's own frames */

void __splitstack_getcontext(void *context[10]);
void __splitstack_setcontext(void *context[10]);
void __splitstack_releasecontext(void *context[10]);

typedef struct weft__seg {
    void *ctx[10];
} weft__seg;

/* A fresh context for a first segment of `size` bytes ending at `top` (stack grows down). */
static inline void weft__seg_init(weft__seg *s, void *lo, void *top)
{
    memset(s, 0, sizeof *s);
    s->ctx[3] = (char *)lo + WEFT__SEG_SLACK;       /* stack limit */
    s->ctx[4] = top;                                /* initial stack pointer */
    s->ctx[5] = (void *)((char *)top - (char *)lo); /* initial stack length */
    s->ctx[6] = 0; /* no signal blocking around __morestack: a sigprocmask per growth */
}

/* Leave `from` for `to`: the thread's split-stack state becomes `to`'s. Called as the last
 * thing before the jump (from here to the jump, split functions would compare our stack
 * pointer with the destination's limit) — weft__ontop_fcontext is assembly, unchecked.
 * Out of line and unchecked itself (segstack.c): libgcc's two calls are shallow. */
void weft__seg_switch(weft__seg *from, weft__seg *to);

/* The calling thread's own context, as the scheduler's (once, when a worker starts). */
static inline void weft__seg_thread_init(weft__seg *s)
{
    __splitstack_getcontext(s->ctx);
}

/* Unmap the segments libgcc allocated for a finished coroutine (we are off its stack).
 * Out of line and unchecked (segstack.c): it runs in the after-exit step on small stacks. */
void weft__seg_release(weft__seg *s);

/* Segments libgcc added to this context so far (0: it never grew). For tests and weft_dump. */
static inline int weft__seg_grown(const weft__seg *s)
{
    return s->ctx[0] != NULL;
}

#define WEFT_NOSPLIT __attribute__((no_split_stack, noinline))

#else /* !WEFT_SEGMENTED_STACKS */

#define WEFT_SEGMENTED 0

typedef struct weft__seg {
    char unused;
} weft__seg;
static inline void weft__seg_init(weft__seg *s, void *lo, void *top)
{
    (void)s, (void)lo, (void)top;
}
static inline void weft__seg_switch(weft__seg *from, weft__seg *to)
{
    (void)from, (void)to;
}
static inline void weft__seg_release(weft__seg *s)
{
    (void)s;
}
static inline void weft__seg_thread_init(weft__seg *s)
{
    (void)s;
}
static inline int weft__seg_grown(const weft__seg *s)
{
    (void)s;
    return 0;
}
#define WEFT_NOSPLIT

#endif
#endif
