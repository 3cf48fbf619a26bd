/* SPDX-License-Identifier: MIT */
/* jump_aarch64_aapcs_elf.S — weft's context switch for AArch64 (A64), AAPCS64, ELF (Linux).
 *
 * C prototypes (src/core/context.h):
 *   weft__transfer_t weft__jump_fcontext(weft__fctx_t to, void *data);            x0, x1
 *   weft__fctx_t     weft__make_fcontext(void *sp, size_t size, weft__entry_fn);  x0, x1, x2
 *   weft__transfer_t weft__ontop_fcontext(weft__fctx_t to, void *data,
 *                                         weft__ontop_fn fn);                     x0, x1, x2
 * weft__transfer_t is {void *fctx; void *data;}, a 16-byte composite of two pointers: it is
 * returned in x0:x1 and passed in x0:x1 (AAPCS64 rules C.10-C.12 / result rules).
 *
 * ABI: "Procedure Call Standard for the Arm 64-bit Architecture" (AAPCS64), section 6.1.1
 * (general-purpose registers) and 6.1.2 (SIMD and floating-point registers):
 *   - x19-x28, x29 (frame pointer) and sp are callee-saved; x30 (lr) holds the return
 *     address, so it is part of what a suspended call must keep;
 *   - of v8-v15 only the low 64 bits (d8-d15) are callee-saved; v0-v7, v16-v31 and the
 *     upper halves of v8-v15 are caller-saved;
 *   - FPCR (rounding mode, flush-to-zero, default-NaN, trap enables) is the thread's
 *     floating-point environment: the C library treats it as preserved across calls, and a
 *     coroutine that changes it must not leak the change into the context it resumes.
 *     FPSR (sticky exception flags) is status, not control, and is not saved.
 * Every other register (x0-x17, NZCV, the caller-saved vector state) is dead across a call
 * to weft__jump_fcontext: the compiler already spilled whatever it needed.
 *
 * Deliberately NOT saved:
 *   - x18, the platform register. On Linux it is an ordinary temporary (caller-saved).
 *     A build with -ffixed-x18 -fsanitize=shadow-call-stack keeps a per-thread shadow stack
 *     pointer in x18; switching stacks would need switching that too: not supported.
 *   - TPIDR_EL0 (the thread pointer): it belongs to the thread, not to the coroutine. A
 *     coroutine resumed on another thread sees that thread's TLS, as on x86-64 (fs).
 *   - SVE/SME state: under the base PCS all of z/p/ffr beyond d8-d15 is caller-saved, and
 *     a call to a normal function is made with streaming mode off and ZA not live.
 *
 * A suspended context is a pointer to this 176-byte save area on its own stack:
 *
 *     +0x00  d8           +0x08  d9
 *     +0x10  d10          +0x18  d11
 *     +0x20  d12          +0x28  d13
 *     +0x30  d14          +0x38  d15
 *     +0x40  x19          +0x48  x20      (a fresh context keeps its entry function in x19)
 *     +0x50  x21          +0x58  x22
 *     +0x60  x23          +0x68  x24
 *     +0x70  x25          +0x78  x26
 *     +0x80  x27          +0x88  x28
 *     +0x90  x29 (fp)                     (0 for a fresh context: ends frame-pointer walks)
 *     +0x98  x30 = resume address: the return address of the call that suspended it,
 *            or the trampoline (weft__fcontext_start_aarch64, past its pad) for a fresh one
 *     +0xa0  FPCR (unused with -DWEFT_NO_FPU_SAVE)
 *     +0xa8  unused: pads the area to a multiple of 16
 *
 * Alignment: AAPCS64 (6.4.5.1) requires sp to be a multiple of 16 at every instruction that
 * uses it to access memory, and Linux turns on the hardware check (a misaligned sp-based
 * access faults with SIGBUS). The save area is 11 * 16 bytes and sp is 16-aligned at every
 * call site, so the area and the resumed sp are 16-aligned; make_fcontext rounds the top
 * of a fresh stack down to 16 so the entry function starts on an aligned sp too.
 *
 * sp only ever moves down before anything is stored below its old value (AArch64 Linux has
 * no red zone; a signal handler may use anything below sp at any instruction), and is
 * moved up only after the last load from the area, so a signal arriving mid-switch finds a
 * consistent stack.
 *
 * Resuming: jump_fcontext ends with `ret` (x30), not `br`. Two reasons:
 *   1. BTI. A resume address is the instruction after a `bl`, which carries no landing pad;
 *      `br` to it would fault on a BTI-guarded page, while `ret` is never checked by BTI.
 *   2. The return-address predictor (return stack). The `bl` that entered
 *      weft__jump_fcontext pushed one entry; `ret` pops it, so the predictor's stack stays
 *      in step with the call depth. The prediction for this one `ret` is wrong (it names our
 *      own caller, and we return into another context's caller), but no stale entry is left
 *      behind. A `br` would be predicted by the indirect predictor instead but would leave
 *      the pushed entry on the return stack. (x86-64 measured `jmp` to be faster there; the
 *      BTI rule settles it here. Nothing measured: qemu timing is meaningless.)
 *
 * ontop_fcontext sets x30 to the resumed context's resume address and branches to fn with
 * `br x16`: fn then runs as if called from the resumed call site and its own `ret` delivers
 * its result (x0:x1) there. x16 (IP0) is used because BTI lets `br x16`/`br x17` land on a
 * function's `bti c`, which is what a compiler puts at the start of an indirectly called
 * function; a `br` through any other register needs `bti j`.
 *
 * Building with -DWEFT_NO_FPU_SAVE skips the FPCR save/restore (an mrs and a possibly
 * serialising msr per switch): only correct if no coroutine changes rounding or FP modes.
 *
 * BTI: with -mbranch-protection=bti/standard (__ARM_FEATURE_BTI_DEFAULT) the three exported
 * functions start with `bti c` (encoded as `hint #34`, a NOP on cores without BTI), so they
 * may be called through pointers. The indirect branches this file makes go to: resume
 * addresses and the trampoline (by `ret`, not checked), the entry function (`blr`, lands on
 * the compiler's `bti c`) and an on-top function (`br x16`, lands on its `bti c`). Every
 * indirect branch into or out of this file thus lands on a valid pad, so the object is
 * marked BTI-compatible with a .note.gnu.property (at the end) when BTI is enabled.
 * (Checked once under qemu-aarch64 -cpu max with the test's text mprotect()ed PROT_BTI:
 * passes; with `br x30` instead of `ret`, or `br x3` instead of `br x16`: SIGILL.)
 * Pointer authentication: nothing here signs or authenticates; callers built with pac-ret
 * sign their own saved lr with their own sp, which is the same sp when they are resumed.
 * The raw resume address in a save area is not signed, so this object makes no PAC claim.
 */

#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
#define WEFT_BTI_C hint #34             /* bti c */
#else
#define WEFT_BTI_C
#endif

    .text

/* ---------------------------------------------------------------------------------------- */
    .globl  weft__jump_fcontext
    .hidden weft__jump_fcontext
    .type   weft__jump_fcontext, %function
    .p2align 4
weft__jump_fcontext:
    .cfi_startproc
    WEFT_BTI_C
    sub     sp, sp, #0xb0               /* make room for the save area first (see above) */
    .cfi_def_cfa_offset 0xb0
    stp     d8,  d9,  [sp, #0x00]       /* callee-saved low halves of v8-v15 */
    stp     d10, d11, [sp, #0x10]
    stp     d12, d13, [sp, #0x20]
    stp     d14, d15, [sp, #0x30]
    stp     x19, x20, [sp, #0x40]       /* callee-saved GPRs */
    stp     x21, x22, [sp, #0x50]
    stp     x23, x24, [sp, #0x60]
    stp     x25, x26, [sp, #0x70]
    stp     x27, x28, [sp, #0x80]
    stp     x29, x30, [sp, #0x90]       /* frame pointer and resume address */
    .cfi_offset x29, -0x20
    .cfi_offset x30, -0x18
#ifndef WEFT_NO_FPU_SAVE
    mrs     x9, fpcr                    /* save FPCR */
    str     x9, [sp, #0xa0]
#endif

    mov     x9, sp                      /* transfer.fctx = the context we leave */
    mov     sp, x0                      /* switch stacks */

#ifndef WEFT_NO_FPU_SAVE
    ldr     x10, [sp, #0xa0]            /* restore FPCR */
    msr     fpcr, x10
#endif
    ldp     d8,  d9,  [sp, #0x00]
    ldp     d10, d11, [sp, #0x10]
    ldp     d12, d13, [sp, #0x20]
    ldp     d14, d15, [sp, #0x30]
    ldp     x19, x20, [sp, #0x40]
    ldp     x21, x22, [sp, #0x50]
    ldp     x23, x24, [sp, #0x60]
    ldp     x25, x26, [sp, #0x70]
    ldp     x27, x28, [sp, #0x80]
    ldp     x29, x30, [sp, #0x90]       /* x30 = resume address */
    add     sp, sp, #0xb0               /* drop the save area: sp as the resumed call left it */
    .cfi_def_cfa_offset 0
    .cfi_restore x29
    .cfi_restore x30
    mov     x0, x9                      /* x0:x1 = {from, data}, as the resumed call returns */
    ret                                 /* = ret x30; why not br: see the header */
    .cfi_endproc
    .size   weft__jump_fcontext, .-weft__jump_fcontext

/* ---------------------------------------------------------------------------------------- */
    .globl  weft__ontop_fcontext
    .hidden weft__ontop_fcontext
    .type   weft__ontop_fcontext, %function
    .p2align 4
weft__ontop_fcontext:
    .cfi_startproc
    WEFT_BTI_C
    sub     sp, sp, #0xb0               /* same save as weft__jump_fcontext */
    .cfi_def_cfa_offset 0xb0
    stp     d8,  d9,  [sp, #0x00]
    stp     d10, d11, [sp, #0x10]
    stp     d12, d13, [sp, #0x20]
    stp     d14, d15, [sp, #0x30]
    stp     x19, x20, [sp, #0x40]
    stp     x21, x22, [sp, #0x50]
    stp     x23, x24, [sp, #0x60]
    stp     x25, x26, [sp, #0x70]
    stp     x27, x28, [sp, #0x80]
    stp     x29, x30, [sp, #0x90]
    .cfi_offset x29, -0x20
    .cfi_offset x30, -0x18
#ifndef WEFT_NO_FPU_SAVE
    mrs     x9, fpcr
    str     x9, [sp, #0xa0]
#endif

    mov     x9, sp                      /* from */
    mov     sp, x0                      /* switch stacks */

#ifndef WEFT_NO_FPU_SAVE
    ldr     x10, [sp, #0xa0]            /* fn already runs with the resumed context's FPCR */
    msr     fpcr, x10
#endif
    ldp     d8,  d9,  [sp, #0x00]
    ldp     d10, d11, [sp, #0x10]
    ldp     d12, d13, [sp, #0x20]
    ldp     d14, d15, [sp, #0x30]
    ldp     x19, x20, [sp, #0x40]
    ldp     x21, x22, [sp, #0x50]
    ldp     x23, x24, [sp, #0x60]
    ldp     x25, x26, [sp, #0x70]
    ldp     x27, x28, [sp, #0x80]
    ldp     x29, x30, [sp, #0x90]       /* x30 = resume address: becomes fn's return address,
                                           so fn "returns" into the resumed context with its
                                           result in x0:x1 */
    add     sp, sp, #0xb0               /* sp is 16-aligned, as at any call */
    .cfi_def_cfa_offset 0
    .cfi_restore x29
    .cfi_restore x30
    mov     x0, x9                      /* fn's argument: transfer {from, data} in x0:x1 */
    mov     x16, x2
    br      x16                         /* x16: lands on fn's `bti c` (see the header) */
    .cfi_endproc
    .size   weft__ontop_fcontext, .-weft__ontop_fcontext

/* ---------------------------------------------------------------------------------------- */
    .globl  weft__make_fcontext
    .hidden weft__make_fcontext
    .type   weft__make_fcontext, %function
    .p2align 4
weft__make_fcontext:
    .cfi_startproc
    WEFT_BTI_C
    and     x0, x0, #~0xf               /* 16-byte align the top of the stack */
    sub     x0, x0, #0xb0               /* save area; after the first switch sp = the top */
    str     x2, [x0, #0x40]             /* x19 = entry function */
    adr     x9, .Lweft_fcontext_entry
    stp     xzr, x9, [x0, #0x90]        /* x29 = 0 ends frame-pointer walks;
                                           x30 = resume address = the trampoline */
#ifndef WEFT_NO_FPU_SAVE
    mrs     x9, fpcr                    /* a fresh context starts with the creator's modes */
    str     x9, [x0, #0xa0]
#endif
    ret                                 /* x0 = the new context */
    .cfi_endproc
    .size   weft__make_fcontext, .-weft__make_fcontext

/* The trampoline: .Lweft_fcontext_entry is the first instruction a fresh context runs,
 * reached by the `ret` of a jump (x0:x1 = transfer) or as the return address of an on-top
 * function (x0:x1 = what it returned); either way the transfer is already where the entry
 * function takes its argument. sp is the 16-aligned top of the stack, x29 = 0 and x19 =
 * the entry function.
 * `.cfi_undefined x30` tells unwinders (gdb, libgcc, libunwind) that this frame has no
 * caller, so a coroutine's backtrace ends cleanly at its entry function.
 * The `nop` in front is part of the frame on purpose: an unwinder looks up a caller's frame
 * by (return address - 1), and for an on-top function running on a fresh context the
 * return address is .Lweft_fcontext_entry itself. Without the pad that lookup would land in
 * weft__make_fcontext's `ret`, and gdb would print a bogus caller (`?? ()`, then a frame at
 * 0x0) under the on-top function.
 * Reached only by `ret`, which BTI does not check, so no landing pad is needed here. */
    .type   weft__fcontext_start_aarch64, %function
    .p2align 4
weft__fcontext_start_aarch64:
    .cfi_startproc
    .cfi_undefined x30
    nop                                 /* unwinder pad: see above; never executed */
.Lweft_fcontext_entry:
    blr     x19                         /* entry(transfer) */
    brk     #0                          /* an entry function must never return */
    .cfi_endproc
    .size   weft__fcontext_start_aarch64, .-weft__fcontext_start_aarch64

#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
/* ELF note NT_GNU_PROPERTY_TYPE_0 with GNU_PROPERTY_AARCH64_FEATURE_1_AND = BTI (bit 0).
 * The linker ANDs this property over all inputs; the PAC bit is deliberately absent. */
    .pushsection .note.gnu.property, "a"
    .balign 8
    .long   4                           /* n_namesz: "GNU\0" */
    .long   16                          /* n_descsz: one property, 8-byte padded */
    .long   5                           /* n_type: NT_GNU_PROPERTY_TYPE_0 */
    .asciz  "GNU"
    .long   0xc0000000                  /* pr_type: GNU_PROPERTY_AARCH64_FEATURE_1_AND */
    .long   4                           /* pr_datasz */
    .long   1                           /* GNU_PROPERTY_AARCH64_FEATURE_1_BTI */
    .long   0                           /* padding to 8 bytes */
    .popsection
#endif

    .section .note.GNU-stack,"",%progbits
