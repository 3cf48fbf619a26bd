/* SPDX-License-Identifier: MIT */
/* test_fcontext.c — the raw context-switch test: weft__make/jump/ontop_fcontext and nothing else.
 *
 * Uses only src/core/context.h and one backend: the arch .S (x86-64 natively, aarch64 under
 * qemu-user) or, with -DWEFT_CONTEXT_BOOST -lboost_context, Debian's libboost_context.
 *
 *   gcc -std=c11 -O2 -Wall -Wextra -Isrc/core tests/test_fcontext.c \
 *       src/arch/jump_x86_64_sysv_elf.S -o /tmp/tf && /tmp/tf
 *   aarch64-linux-gnu-gcc -std=c11 -O2 -Wall -Wextra -Isrc/core tests/test_fcontext.c \
 *       src/arch/jump_aarch64_aapcs_elf.S -o /tmp/tfa &&
 *   qemu-aarch64 -L /usr/aarch64-linux-gnu /tmp/tfa          (or: scripts/test-aarch64.sh)
 *   add -DWEFT_NO_FPU_SAVE (to both sides) to test that variant; for Boost:
 *   gcc ... -DWEFT_CONTEXT_BOOST tests/test_fcontext.c -lboost_context
 *
 * What is checked (every CHECK can fail; the count is printed at the end):
 *   1. ping-pong A<->B, 1000 round trips: data both ways, the returned from-contexts;
 *   2. a chain main -> B -> C -> main and back through the suspended ones, each side checking
 *      which context it was entered from;
 *   3. ontop onto a suspended context (fn runs on that context's stack, the pending jump gets
 *      fn's result) and onto a fresh one (the entry function gets fn's result);
 *   4. stack alignment at the entry of an entry function and of an on-top function (read by
 *      small asm stubs before any compiler-generated prologue can realign), sp unchanged
 *      across a jump, and the frame pointer is 0 in a fresh context;
 *   5. every callee-saved register survives a switch (asm probe: sentinels in, jump out, the
 *      other context loads different values, jump back, read out);
 *   6. FP control state (x86: MXCSR + x87 control word; aarch64: FPCR) is per context;
 *   7. deep-ish recursion on a 64 KiB malloc'd stack.
 *
 * Differences from Boost that the test knows about (checks made only for weft's asm):
 *   - Boost's trampoline gives a fresh context's entry function the rdi:rsi left by a plain
 *     jump; after an ontop onto a FRESH context those registers are whatever fn left, not
 *     fn's result (rax:rdx): with Debian's 1.74 the entry function received data == 1.
 *     weft's trampoline takes the transfer from rax:rdx / x0:x1, so ontop onto a fresh
 *     context works there; the check is weft-only.
 *   - Boost sets rbp to the address of its `finish` stub in a fresh context; weft sets it
 *     (x29 on aarch64) to 0 so frame-pointer walks end there: weft-only check.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"

#if !defined(__x86_64__) && !defined(__aarch64__)
#error "test_fcontext.c knows x86-64 and aarch64 only"
#endif

#if defined(__GNUC__)
#define NOINLINE __attribute__((noinline))
#define HIDDEN __attribute__((visibility("hidden")))
#define NO_ASAN __attribute__((no_sanitize_address))
#endif

#define XSTR_(x) #x
#define XSTR(x) XSTR_(x)

/* ---------------------------------------------------------------------------------------- */
/* A tiny assert: file:line, the expression, both operands, then abort(). */

static unsigned long g_checks;

#define CHECK_OP(a, op, b)                                                                         \
    do {                                                                                           \
        unsigned long long a_ = (unsigned long long)(uintptr_t)(a);                                \
        unsigned long long b_ = (unsigned long long)(uintptr_t)(b);                                \
        g_checks++;                                                                                \
        if (!(a_ op b_)) {                                                                         \
            fprintf(stderr,                                                                        \
                    "%s:%d: CHECK failed: %s %s %s\n    left  = 0x%llx (%llu)\n"                   \
                    "    right = 0x%llx (%llu)\n",                                                 \
                    __FILE__, __LINE__, #a, #op, #b, a_, a_, b_, b_);                              \
            fflush(stderr);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)
#define CHECK_EQ(a, b) CHECK_OP(a, ==, b)
#define CHECK_NE(a, b) CHECK_OP(a, !=, b)
#define CHECK_LT(a, b) CHECK_OP(a, <, b)
#define CHECK_LE(a, b) CHECK_OP(a, <=, b)
#define CHECK_GE(a, b) CHECK_OP(a, >=, b)
#define CHECK(cond) CHECK_OP(!!(cond), ==, 1)

/* p inside [lo, hi) (or [lo, hi] for a stack pointer, which may sit at the very top) */
#define CHECK_RANGE_(p, s, want, top_ok)                                                           \
    do {                                                                                           \
        uintptr_t p_ = (uintptr_t)(p), lo_ = (uintptr_t)(s)->base, hi_ = lo_ + (s)->size;          \
        int in_ = p_ >= lo_ && (p_ < hi_ || ((top_ok) && p_ == hi_));                              \
        g_checks++;                                                                                \
        if (in_ != (want)) {                                                                       \
            fprintf(stderr,                                                                        \
                    "%s:%d: CHECK failed: %s %s stack %s\n    value = 0x%llx\n"                    \
                    "    stack = [0x%llx, 0x%llx)\n",                                              \
                    __FILE__, __LINE__, #p, (want) ? "in" : "not in", #s, (unsigned long long)p_,  \
                    (unsigned long long)lo_, (unsigned long long)hi_);                             \
            fflush(stderr);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)
#define CHECK_IN_STACK(p, s) CHECK_RANGE_(p, s, 1, 0)
#define CHECK_NOT_IN_STACK(p, s) CHECK_RANGE_(p, s, 0, 0)
#define CHECK_SP_IN_STACK(sp, s) CHECK_RANGE_(sp, s, 1, 1)

/* ---------------------------------------------------------------------------------------- */
/* Stacks */

#define STACK_SIZE (64 * 1024)

struct stack {
    unsigned char *base;
    size_t size;
};

static struct stack stack_new(void)
{
    struct stack s = {malloc(STACK_SIZE), STACK_SIZE};
    if (!s.base) {
        perror("malloc");
        exit(2);
    }
    return s;
}

static void stack_free(struct stack *s)
{
    free(s->base);
    s->base = NULL;
}

static weft__fctx_t make_on(const struct stack *s, weft__entry_fn fn)
{
    return weft__make_fcontext(s->base + s->size, s->size, fn);
}

/* The real stack pointer (not a local's address: ASan may move locals to a fake stack). */
static inline uintptr_t current_sp(void)
{
    uintptr_t sp;
#if defined(__x86_64__)
    __asm__ volatile("movq %%rsp, %0" : "=r"(sp));
#else
    __asm__ volatile("mov %0, sp" : "=r"(sp));
#endif
    return sp;
}

/* "On the main stack": a main-stack save area lies within 1 MiB of main's sp. (Not of a
 * local's address: with ASan's detect_stack_use_after_return, locals live on the heap.) */
static int near(const void *a, uintptr_t sp)
{
    uintptr_t x = (uintptr_t)a;
    return (x > sp ? x - sp : sp - x) < (1u << 20);
}

/* ---------------------------------------------------------------------------------------- */
/* Asm helpers (file scope: the compiler cannot insert a prologue that realigns or spills). */

/* Recorded by weft_test_align_entry / weft_test_align_ontop at their first instruction. */
HIDDEN uintptr_t weft_test_entry_sp, weft_test_entry_fp, weft_test_ontop_sp;

void weft_test_align_entry(weft__transfer_t t); /* asm: records, then -> _c */
HIDDEN void weft_test_align_entry_c(weft__transfer_t t);
weft__transfer_t weft_test_align_ontop(weft__transfer_t t); /* asm: records, then -> _c */
HIDDEN weft__transfer_t weft_test_align_ontop_c(weft__transfer_t t);

/* weft_test_csr_probe(to, data, vals, out): saves the caller's callee-saved registers, loads
 * vals[] into every callee-saved register, calls weft__jump_fcontext(to, data), stores the
 * registers as found after the jump returned into out[], plus the transfer and sp before and
 * after the call, restores the caller's registers and returns. It is an ordinary ABI-legal
 * function as far as its C caller can tell. */
void weft_test_csr_probe(weft__fctx_t to, void *data, const uint64_t *vals, uint64_t *out);

#if defined(__x86_64__)
/* vals/out: rbx, rbp, r12, r13, r14, r15 */
#define CSR_N 6
static const char *const csr_names[CSR_N] = {"rbx", "rbp", "r12", "r13", "r14", "r15"};
#if defined(__CET__) && (__CET__ & 1)
#define T_ENDBR "endbr64\n"
#else
#define T_ENDBR ""
#endif
__asm__(".pushsection .text\n"
        /* --- entry stub: rsp as the entry function sees it, rbp, then tail-jump --- */
        ".globl weft_test_align_entry\n"
        ".hidden weft_test_align_entry\n"
        ".type weft_test_align_entry, @function\n"
        ".p2align 4\n"
        "weft_test_align_entry:\n" T_ENDBR "    movq %rsp, weft_test_entry_sp(%rip)\n"
        "    movq %rbp, weft_test_entry_fp(%rip)\n"
        "    jmp weft_test_align_entry_c\n"
        ".size weft_test_align_entry, .-weft_test_align_entry\n"
        /* --- on-top stub --- */
        ".globl weft_test_align_ontop\n"
        ".hidden weft_test_align_ontop\n"
        ".type weft_test_align_ontop, @function\n"
        ".p2align 4\n"
        "weft_test_align_ontop:\n" T_ENDBR "    movq %rsp, weft_test_ontop_sp(%rip)\n"
        "    jmp weft_test_align_ontop_c\n"
        ".size weft_test_align_ontop, .-weft_test_align_ontop\n"
        /* --- callee-saved register probe: rdi=to rsi=data rdx=vals rcx=out --- */
        ".globl weft_test_csr_probe\n"
        ".hidden weft_test_csr_probe\n"
        ".type weft_test_csr_probe, @function\n"
        ".p2align 4\n"
        "weft_test_csr_probe:\n" T_ENDBR "    pushq %rbx\n"
        "    pushq %rbp\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    pushq %rcx\n"          /* out; 7 pushes: rsp % 16 == 0 for the call */
        "    movq %rsp, 64(%rcx)\n" /* out[8] = rsp before the call */
        "    movq 0(%rdx), %rbx\n"
        "    movq 8(%rdx), %rbp\n"
        "    movq 16(%rdx), %r12\n"
        "    movq 24(%rdx), %r13\n"
        "    movq 32(%rdx), %r14\n"
        "    movq 40(%rdx), %r15\n"
        "    call " XSTR(
            weft__jump_fcontext) "@PLT\n"
                                 "    movq (%rsp), %rcx\n"
                                 "    movq %rbx, 0(%rcx)\n"
                                 "    movq %rbp, 8(%rcx)\n"
                                 "    movq %r12, 16(%rcx)\n"
                                 "    movq %r13, 24(%rcx)\n"
                                 "    movq %r14, 32(%rcx)\n"
                                 "    movq %r15, 40(%rcx)\n"
                                 "    movq %rax, 48(%rcx)\n" /* out[6] = transfer.fctx */
                                 "    movq %rdx, 56(%rcx)\n" /* out[7] = transfer.data */
                                 "    movq %rsp, 72(%rcx)\n" /* out[9] = rsp after the call */
                                 "    addq $8, %rsp\n"
                                 "    popq %r15\n"
                                 "    popq %r14\n"
                                 "    popq %r13\n"
                                 "    popq %r12\n"
                                 "    popq %rbp\n"
                                 "    popq %rbx\n"
                                 "    ret\n"
                                 ".size weft_test_csr_probe, .-weft_test_csr_probe\n"
                                 ".popsection\n");
#else /* __aarch64__ */
/* vals/out: x19..x28, x29, d8..d15 */
#define CSR_N 19
static const char *const csr_names[CSR_N] = {"x19", "x20", "x21", "x22", "x23", "x24", "x25",
                                             "x26", "x27", "x28", "x29", "d8",  "d9",  "d10",
                                             "d11", "d12", "d13", "d14", "d15"};
__asm__(".pushsection .text\n"
        ".globl weft_test_align_entry\n"
        ".hidden weft_test_align_entry\n"
        ".type weft_test_align_entry, %function\n"
        ".p2align 4\n"
        "weft_test_align_entry:\n"
        "    hint #34\n" /* bti c (a NOP without BTI): reached by blr */
        "    mov x9, sp\n"
        "    adrp x10, weft_test_entry_sp\n"
        "    str x9, [x10, #:lo12:weft_test_entry_sp]\n"
        "    adrp x10, weft_test_entry_fp\n"
        "    str x29, [x10, #:lo12:weft_test_entry_fp]\n"
        "    b weft_test_align_entry_c\n"
        ".size weft_test_align_entry, .-weft_test_align_entry\n"

        ".globl weft_test_align_ontop\n"
        ".hidden weft_test_align_ontop\n"
        ".type weft_test_align_ontop, %function\n"
        ".p2align 4\n"
        "weft_test_align_ontop:\n"
        "    hint #34\n"
        "    mov x9, sp\n"
        "    adrp x10, weft_test_ontop_sp\n"
        "    str x9, [x10, #:lo12:weft_test_ontop_sp]\n"
        "    b weft_test_align_ontop_c\n"
        ".size weft_test_align_ontop, .-weft_test_align_ontop\n"

        /* x0=to x1=data x2=vals x3=out. Frame (176 bytes): x29,x30 | x19-x28 | d8-d15 | out */
        ".globl weft_test_csr_probe\n"
        ".hidden weft_test_csr_probe\n"
        ".type weft_test_csr_probe, %function\n"
        ".p2align 4\n"
        "weft_test_csr_probe:\n"
        "    hint #34\n"
        "    stp x29, x30, [sp, #-176]!\n"
        "    stp x19, x20, [sp, #16]\n"
        "    stp x21, x22, [sp, #32]\n"
        "    stp x23, x24, [sp, #48]\n"
        "    stp x25, x26, [sp, #64]\n"
        "    stp x27, x28, [sp, #80]\n"
        "    stp d8, d9, [sp, #96]\n"
        "    stp d10, d11, [sp, #112]\n"
        "    stp d12, d13, [sp, #128]\n"
        "    stp d14, d15, [sp, #144]\n"
        "    str x3, [sp, #160]\n"
        "    mov x9, sp\n"
        "    str x9, [x3, #168]\n" /* out[21] = sp before the call */
        "    ldp x19, x20, [x2, #0]\n"
        "    ldp x21, x22, [x2, #16]\n"
        "    ldp x23, x24, [x2, #32]\n"
        "    ldp x25, x26, [x2, #48]\n"
        "    ldp x27, x28, [x2, #64]\n"
        "    ldr x29, [x2, #80]\n"
        "    ldp d8, d9, [x2, #88]\n"
        "    ldp d10, d11, [x2, #104]\n"
        "    ldp d12, d13, [x2, #120]\n"
        "    ldp d14, d15, [x2, #136]\n"
        "    bl " XSTR(
            weft__jump_fcontext) "\n"
                                 "    ldr x9, [sp, #160]\n"
                                 "    stp x19, x20, [x9, #0]\n"
                                 "    stp x21, x22, [x9, #16]\n"
                                 "    stp x23, x24, [x9, #32]\n"
                                 "    stp x25, x26, [x9, #48]\n"
                                 "    stp x27, x28, [x9, #64]\n"
                                 "    str x29, [x9, #80]\n"
                                 "    stp d8, d9, [x9, #88]\n"
                                 "    stp d10, d11, [x9, #104]\n"
                                 "    stp d12, d13, [x9, #120]\n"
                                 "    stp d14, d15, [x9, #136]\n"
                                 "    stp x0, x1, [x9, #152]\n" /* out[19], out[20] = transfer */
                                 "    mov x10, sp\n"
                                 "    str x10, [x9, #176]\n" /* out[22] = sp after the call */
                                 "    ldp x19, x20, [sp, #16]\n"
                                 "    ldp x21, x22, [sp, #32]\n"
                                 "    ldp x23, x24, [sp, #48]\n"
                                 "    ldp x25, x26, [sp, #64]\n"
                                 "    ldp x27, x28, [sp, #80]\n"
                                 "    ldp d8, d9, [sp, #96]\n"
                                 "    ldp d10, d11, [sp, #112]\n"
                                 "    ldp d12, d13, [sp, #128]\n"
                                 "    ldp d14, d15, [sp, #144]\n"
                                 "    ldp x29, x30, [sp], #176\n"
                                 "    ret\n"
                                 ".size weft_test_csr_probe, .-weft_test_csr_probe\n"
                                 ".popsection\n");
#endif

#define CSR_FCTX (CSR_N + 0)
#define CSR_DATA (CSR_N + 1)
#define CSR_SP_BEFORE (CSR_N + 2)
#define CSR_SP_AFTER (CSR_N + 3)
#define CSR_OUT_N (CSR_N + 4)

/* sp as seen at the first instruction of a function entered by a call */
static int sp_ok_at_entry(uintptr_t sp)
{
#if defined(__x86_64__)
    return (sp + 8) % 16 == 0; /* the call pushed 8 bytes onto a 16-aligned stack */
#else
    return sp % 16 == 0; /* AAPCS64: always */
#endif
}

/* Called by an entry function: a place for a debugger breakpoint (see the report on gdb). */
NOINLINE void weft_test_bt_probe(int n);
NOINLINE void weft_test_bt_probe(int n)
{
    __asm__ volatile("" ::"r"(n) : "memory");
}

/* ---------------------------------------------------------------------------------------- */
/* 1. ping-pong */

#define PINGPONG_ROUNDS 1000

static struct stack g_pp_stack;
static unsigned long g_pp_entries, g_pp_iterations;

static void pingpong_entry(weft__transfer_t t)
{
    uintptr_t expect = 0;
    g_pp_entries++;
    weft_test_bt_probe(1);
    for (;;) {
        CHECK_EQ(t.data, expect); /* what main sent */
        CHECK(t.fctx != NULL);
        CHECK_NOT_IN_STACK(t.fctx, &g_pp_stack); /* main's context, not ours */
        g_pp_iterations++;
        expect++;
        t = weft__jump_fcontext(t.fctx, (void *)(expect * 3 + 1)); /* the reply */
    }
}

static void test_pingpong(void)
{
    g_pp_stack = stack_new();
    weft__fctx_t b = make_on(&g_pp_stack, pingpong_entry);
    CHECK_IN_STACK(b, &g_pp_stack);
    for (uintptr_t i = 0; i < PINGPONG_ROUNDS; i++) {
        weft__transfer_t t = weft__jump_fcontext(b, (void *)i);
        CHECK_EQ(t.data, (i + 1) * 3 + 1);
        CHECK_IN_STACK(t.fctx, &g_pp_stack); /* B's save area, on B's stack */
        b = t.fctx;
    }
    CHECK_EQ(g_pp_entries, 1);
    CHECK_EQ(g_pp_iterations, PINGPONG_ROUNDS);
    stack_free(&g_pp_stack);
}

/* ---------------------------------------------------------------------------------------- */
/* 2. chain: main -> B -> C -> main, then main -> C -> B -> main */

static struct stack g_ch_b, g_ch_c;
static weft__fctx_t g_ch_c_ctx;
static char tag_main1, tag_c1, tag_main2, tag_b2;
static uintptr_t g_ch_main_sp;
static int g_ch_steps;

static void chain_b(weft__transfer_t t)
{
    /* entered from main */
    CHECK_EQ(t.data, &tag_main1);
    CHECK_NOT_IN_STACK(t.fctx, &g_ch_b);
    CHECK_NOT_IN_STACK(t.fctx, &g_ch_c);
    CHECK(near(t.fctx, g_ch_main_sp));
    CHECK_EQ(g_ch_steps++, 0);
    weft__fctx_t main1 = t.fctx;
    t = weft__jump_fcontext(g_ch_c_ctx, main1); /* hand main's context to C */
    /* resumed by C (second leg), which passes main's new context as data */
    CHECK_EQ(g_ch_steps++, 4);
    CHECK_IN_STACK(t.fctx, &g_ch_c);
    CHECK(near(t.data, g_ch_main_sp));
    weft__jump_fcontext((weft__fctx_t)t.data, &tag_b2);
    abort(); /* never resumed */
}

static void chain_c(weft__transfer_t t)
{
    /* entered from B, data = main's context */
    CHECK_EQ(g_ch_steps++, 1);
    CHECK_IN_STACK(t.fctx, &g_ch_b);
    CHECK(near(t.data, g_ch_main_sp));
    weft__fctx_t b1 = t.fctx;
    t = weft__jump_fcontext((weft__fctx_t)t.data, &tag_c1); /* C back to main */
    /* resumed by main */
    CHECK_EQ(g_ch_steps++, 3);
    CHECK_EQ(t.data, &tag_main2);
    CHECK(near(t.fctx, g_ch_main_sp));
    CHECK_NOT_IN_STACK(t.fctx, &g_ch_b);
    CHECK_NOT_IN_STACK(t.fctx, &g_ch_c);
    weft__jump_fcontext(b1, t.fctx); /* resume B, telling it where main is */
    abort();
}

static void test_chain(void)
{
    g_ch_main_sp = current_sp();
    g_ch_b = stack_new();
    g_ch_c = stack_new();
    weft__fctx_t b = make_on(&g_ch_b, chain_b);
    g_ch_c_ctx = make_on(&g_ch_c, chain_c);

    weft__transfer_t t = weft__jump_fcontext(b, &tag_main1);
    CHECK_EQ(g_ch_steps++, 2);
    CHECK_EQ(t.data, &tag_c1);
    CHECK_IN_STACK(t.fctx, &g_ch_c); /* came back from C, not B */

    t = weft__jump_fcontext(t.fctx, &tag_main2);
    CHECK_EQ(g_ch_steps++, 5);
    CHECK_EQ(t.data, &tag_b2);
    CHECK_IN_STACK(t.fctx, &g_ch_b); /* came back from B */
    stack_free(&g_ch_b);
    stack_free(&g_ch_c);
}

/* ---------------------------------------------------------------------------------------- */
/* 3. ontop */

#define ONTOP_RESULT_D ((void *)(uintptr_t)0xD0D0D0D1u)
#define ONTOP_RESULT_E ((void *)(uintptr_t)0xE0E0E0E1u)

static struct stack g_ot_stack;
static weft__fctx_t g_ot_from;
static int g_ot_ran;
static char tag_ot_start, tag_ot_suspended, tag_ot_arg, tag_ot_done;
static uintptr_t g_ot_main_sp;

/* Runs on the target's stack. NO_ASAN: the local must be a real stack slot, not one of
 * ASan's fake-stack frames (use-after-return detection moves locals to the heap). */
NO_ASAN static weft__transfer_t ontop_fn(weft__transfer_t t)
{
    volatile int local = 0;
    CHECK_IN_STACK(&local, &g_ot_stack);
    CHECK_SP_IN_STACK(current_sp(), &g_ot_stack);
    CHECK_EQ(t.data, &tag_ot_arg);
    CHECK_NOT_IN_STACK(t.fctx, &g_ot_stack); /* from = main */
    CHECK(near(t.fctx, g_ot_main_sp));
    g_ot_from = t.fctx;
    g_ot_ran++;
    return (weft__transfer_t){t.fctx, g_ot_ran == 1 ? ONTOP_RESULT_D : ONTOP_RESULT_E};
}

static void ontop_suspended_entry(weft__transfer_t t)
{
    CHECK_EQ(t.data, &tag_ot_start);
    t = weft__jump_fcontext(t.fctx, &tag_ot_suspended);
    /* resumed by ontop: this jump returns what ontop_fn returned */
    CHECK_EQ(g_ot_ran, 1);
    CHECK_EQ(t.data, ONTOP_RESULT_D);
    CHECK_EQ(t.fctx, g_ot_from);
    weft__jump_fcontext(t.fctx, &tag_ot_done);
    abort();
}

static void ontop_fresh_entry(weft__transfer_t t)
{
    /* first thing on this stack after ontop_fn: its result is our argument */
    CHECK_EQ(g_ot_ran, 2);
    CHECK_EQ(t.data, ONTOP_RESULT_E);
    CHECK_EQ(t.fctx, g_ot_from);
    weft__jump_fcontext(t.fctx, &tag_ot_done);
    abort();
}

static void test_ontop(void)
{
    g_ot_main_sp = current_sp();

    /* onto a suspended context */
    g_ot_stack = stack_new();
    weft__fctx_t d = make_on(&g_ot_stack, ontop_suspended_entry);
    weft__transfer_t t = weft__jump_fcontext(d, &tag_ot_start);
    CHECK_EQ(t.data, &tag_ot_suspended);
    CHECK_EQ(g_ot_ran, 0);
    t = weft__ontop_fcontext(t.fctx, &tag_ot_arg, ontop_fn);
    CHECK_EQ(g_ot_ran, 1);
    CHECK_EQ(t.data, &tag_ot_done);
    CHECK_IN_STACK(t.fctx, &g_ot_stack);
    stack_free(&g_ot_stack);

    /* onto a fresh context */
#if !defined(WEFT_CONTEXT_BOOST) && !defined(WEFT_CONTEXT_UCONTEXT)
    g_ot_stack = stack_new();
    weft__fctx_t e = make_on(&g_ot_stack, ontop_fresh_entry);
    t = weft__ontop_fcontext(e, &tag_ot_arg, ontop_fn);
    CHECK_EQ(g_ot_ran, 2);
    CHECK_EQ(t.data, &tag_ot_done);
    CHECK_IN_STACK(t.fctx, &g_ot_stack);
    stack_free(&g_ot_stack);
#else
    (void)ontop_fresh_entry;
    printf("test_fcontext: note: ontop onto a fresh context not checked with Boost "
           "(its trampoline does not pass fn's result to the entry function)\n");
#endif
}

/* ---------------------------------------------------------------------------------------- */
/* 4. alignment */

struct align_rec {
    uintptr_t entry_sp, entry_fp, ontop_sp;
    int entries, ontop_calls, resumed;
};

void weft_test_align_entry_c(weft__transfer_t t)
{
    uintptr_t sp = weft_test_entry_sp, fp = weft_test_entry_fp; /* read before any call */
    struct align_rec *r = t.data;
    r->entry_sp = sp;
    r->entry_fp = fp;
    r->entries++;
    t = weft__jump_fcontext(t.fctx, r);
    r = t.data;
    r->resumed++;
    weft__jump_fcontext(t.fctx, r);
    abort();
}

weft__transfer_t weft_test_align_ontop_c(weft__transfer_t t)
{
    struct align_rec *r = t.data;
    r->ontop_sp = weft_test_ontop_sp;
    r->ontop_calls++;
    return t; /* {from, data}: passed through to the resumed jump / the entry function */
}

static void test_alignment(void)
{
    struct align_rec r1 = {0};
    struct stack s = stack_new();
    weft__fctx_t c = make_on(&s, weft_test_align_entry);
    weft__transfer_t t = weft__jump_fcontext(c, &r1);
    CHECK_EQ(t.data, &r1);
    CHECK_EQ(r1.entries, 1);
    CHECK(sp_ok_at_entry(r1.entry_sp));
    CHECK_SP_IN_STACK(r1.entry_sp, &s);
#if defined(WEFT_CONTEXT_UCONTEXT) /* the ucontext_t of the fresh context sits at the top */
    CHECK_LE(s.base + s.size - (unsigned char *)r1.entry_sp, 4096);
#else
    CHECK_LE(s.base + s.size - (unsigned char *)r1.entry_sp, 256); /* starts near the top */
#endif
#if !defined(WEFT_CONTEXT_BOOST) && !defined(WEFT_CONTEXT_UCONTEXT)
    CHECK_EQ(r1.entry_fp, 0); /* weft: frame-pointer chain ends in a fresh context */
#endif

    /* ontop onto the suspended context: fn entered with an ABI-aligned sp */
    t = weft__ontop_fcontext(t.fctx, &r1, weft_test_align_ontop);
    CHECK_EQ(t.data, &r1);
    CHECK_EQ(r1.ontop_calls, 1);
    CHECK_EQ(r1.resumed, 1);
    CHECK(sp_ok_at_entry(r1.ontop_sp));
    CHECK_SP_IN_STACK(r1.ontop_sp, &s);
    stack_free(&s);

#if !defined(WEFT_CONTEXT_BOOST) && !defined(WEFT_CONTEXT_UCONTEXT)
    /* ontop onto a fresh context: fn aligned, then the trampoline enters the entry function
     * (reached by fn's return instead of a jump) with an aligned sp */
    struct align_rec r2 = {0};
    s = stack_new();
    c = make_on(&s, weft_test_align_entry);
    t = weft__ontop_fcontext(c, &r2, weft_test_align_ontop);
    CHECK_EQ(t.data, &r2);
    CHECK_EQ(r2.ontop_calls, 1);
    CHECK_EQ(r2.entries, 1);
    CHECK(sp_ok_at_entry(r2.ontop_sp));
    CHECK_SP_IN_STACK(r2.ontop_sp, &s);
    CHECK(sp_ok_at_entry(r2.entry_sp));
    CHECK_SP_IN_STACK(r2.entry_sp, &s);
    CHECK_EQ(r2.entry_fp, 0);
    t = weft__jump_fcontext(t.fctx, &r2);
    CHECK_EQ(r2.resumed, 1);
    stack_free(&s);
#endif
}

/* ---------------------------------------------------------------------------------------- */
/* 5. callee-saved registers */

static struct stack g_csr_stack;
static uint64_t g_vals_main1[CSR_N], g_vals_main2[CSR_N], g_vals_other[CSR_N];
static uint64_t g_out_main[CSR_OUT_N], g_out_other[CSR_OUT_N];
static char tag_csr_main1, tag_csr_main2, tag_csr_other, tag_csr_done;
static int g_csr_other_checked;

static void check_regs(const uint64_t *out, const uint64_t *vals, const char *who)
{
    for (int i = 0; i < CSR_N; i++) {
        if (out[i] != vals[i])
            fprintf(stderr, "%s: %s = 0x%llx, expected 0x%llx\n", who, csr_names[i],
                    (unsigned long long)out[i], (unsigned long long)vals[i]);
        CHECK_EQ(out[i], vals[i]);
    }
    CHECK_EQ(out[CSR_SP_BEFORE], out[CSR_SP_AFTER]);
}

static void csr_other_entry(weft__transfer_t t)
{
    CHECK_EQ(t.data, &tag_csr_main1);
    /* load the other sentinels, switch back to main */
    weft_test_csr_probe(t.fctx, &tag_csr_other, g_vals_other, g_out_other);
    /* main loaded its second set before resuming us: ours must be back */
    check_regs(g_out_other, g_vals_other, "other context");
    CHECK_EQ(g_out_other[CSR_DATA], &tag_csr_main2);
    CHECK_NOT_IN_STACK((void *)g_out_other[CSR_FCTX], &g_csr_stack);
    CHECK_SP_IN_STACK(g_out_other[CSR_SP_AFTER], &g_csr_stack);
    g_csr_other_checked = 1;
    weft__jump_fcontext((weft__fctx_t)g_out_other[CSR_FCTX], &tag_csr_done);
    abort();
}

static void test_callee_saved(void)
{
    for (int i = 0; i < CSR_N; i++) {
        /* distinct per register and per set, none zero, both halves non-trivial */
        g_vals_main1[i] = 0xA1A2A3A400000000ull ^ ((uint64_t)(i + 1) * 0x0101010101ull);
        g_vals_main2[i] = 0x5B5C5D5E00000000ull ^ ((uint64_t)(i + 1) * 0x0303030303ull);
        g_vals_other[i] = 0xC0FFEE0000000000ull ^ ((uint64_t)(i + 1) * 0x0707070707ull);
    }
    g_csr_stack = stack_new();
    weft__fctx_t o = make_on(&g_csr_stack, csr_other_entry);

    memset(g_out_main, 0, sizeof g_out_main);
    weft_test_csr_probe(o, &tag_csr_main1, g_vals_main1, g_out_main);
    check_regs(g_out_main, g_vals_main1, "main context (1)");
    CHECK_EQ(g_out_main[CSR_DATA], &tag_csr_other);
    CHECK_IN_STACK((void *)g_out_main[CSR_FCTX], &g_csr_stack);

    /* second round, different sentinels: restoring stale values would show */
    o = (weft__fctx_t)g_out_main[CSR_FCTX];
    memset(g_out_main, 0, sizeof g_out_main);
    weft_test_csr_probe(o, &tag_csr_main2, g_vals_main2, g_out_main);
    CHECK_EQ(g_csr_other_checked, 1);
    check_regs(g_out_main, g_vals_main2, "main context (2)");
    CHECK_EQ(g_out_main[CSR_DATA], &tag_csr_done);
    CHECK_IN_STACK((void *)g_out_main[CSR_FCTX], &g_csr_stack);
    stack_free(&g_csr_stack);
}

/* ---------------------------------------------------------------------------------------- */
/* 6. FP control state */

#if !defined(WEFT_NO_FPU_SAVE)
/* fpmode.a = MXCSR control bits, .b = x87 control word (x86-64); .a = FPCR (aarch64) */
typedef struct {
    uint64_t a, b;
} fpmode;

enum { RND_NEAREST, RND_DOWN, RND_UP, RND_ZERO };

static fpmode fp_get(void)
{
    fpmode m = {0, 0};
#if defined(__x86_64__)
    uint32_t mxcsr;
    uint16_t cw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr)::"memory");
    __asm__ volatile("fnstcw %0" : "=m"(cw)::"memory");
    m.a = mxcsr & 0xffc0u; /* control bits only; 0-5 are sticky status flags */
    m.b = cw;
#else
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr)::"memory");
    m.a = fpcr;
#endif
    return m;
}

static void fp_set_rounding(unsigned rnd)
{
#if defined(__x86_64__)
    static const uint32_t sse_rc[] = {0u << 13, 1u << 13, 2u << 13, 3u << 13};
    static const uint16_t x87_rc[] = {0u << 10, 1u << 10, 2u << 10, 3u << 10};
    uint32_t mxcsr;
    uint16_t cw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr)::"memory");
    mxcsr = (mxcsr & ~0x6000u) | sse_rc[rnd];
    __asm__ volatile("ldmxcsr %0" ::"m"(mxcsr) : "memory");
    __asm__ volatile("fnstcw %0" : "=m"(cw)::"memory");
    cw = (uint16_t)((cw & ~0x0c00u) | x87_rc[rnd]);
    __asm__ volatile("fldcw %0" ::"m"(cw) : "memory");
#else
    static const uint64_t rmode[] = {0ull << 22, 2ull << 22, 1ull << 22, 3ull << 22};
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr)::"memory");
    fpcr = (fpcr & ~(3ull << 22)) | rmode[rnd];
    __asm__ volatile("msr fpcr, %0" ::"r"(fpcr) : "memory");
#endif
}

static int fp_eq(fpmode x, fpmode y)
{
    return x.a == y.a && x.b == y.b;
}

/* 1/3 in the current rounding mode (SSE/FP unit, not folded: volatile operands) */
static double third(void)
{
    volatile double one = 1.0, three = 3.0;
    volatile double q = one / three;
    return q;
}

static fpmode g_fp_orig, g_fp_at_make, g_fp_other;
static char tag_fp1, tag_fp2, tag_fp3, tag_fp4;
static volatile double g_fp_other_third;

static void fp_entry(weft__transfer_t t)
{
    CHECK_EQ(t.data, &tag_fp1);
    /* a fresh context starts with the modes its creator had when it called make (weft and
     * Boost on x86-64 both capture them in make_fcontext), not those of the first jump */
    fpmode m = fp_get();
    CHECK_EQ(m.a, g_fp_at_make.a);
    CHECK_EQ(m.b, g_fp_at_make.b);
    fp_set_rounding(RND_ZERO);
    g_fp_other = fp_get();
    CHECK(!fp_eq(g_fp_other, g_fp_at_make));
    t = weft__jump_fcontext(t.fctx, &tag_fp2);
    /* main changed its own mode to "up" meanwhile: ours must still be "toward zero" */
    CHECK_EQ(t.data, &tag_fp3);
    m = fp_get();
    CHECK_EQ(m.a, g_fp_other.a);
    CHECK_EQ(m.b, g_fp_other.b);
    g_fp_other_third = third();
    weft__jump_fcontext(t.fctx, &tag_fp4);
    abort();
}

static void test_fpu(void)
{
    struct stack s = stack_new();
    g_fp_orig = fp_get();
    fp_set_rounding(RND_UP);
    g_fp_at_make = fp_get();
    CHECK(!fp_eq(g_fp_at_make, g_fp_orig));
    weft__fctx_t f = make_on(&s, fp_entry); /* captures "up" */
    fp_set_rounding(RND_DOWN);
    fpmode main_down = fp_get();
    CHECK(!fp_eq(main_down, g_fp_orig));
    CHECK(!fp_eq(main_down, g_fp_at_make));
    weft__transfer_t t = weft__jump_fcontext(f, &tag_fp1);
    CHECK_EQ(t.data, &tag_fp2);
    fpmode m = fp_get();
    CHECK_EQ(m.a, main_down.a); /* not the other context's "toward zero" */
    CHECK_EQ(m.b, main_down.b);

    fp_set_rounding(RND_UP);
    fpmode main_up = fp_get();
    t = weft__jump_fcontext(t.fctx, &tag_fp3);
    CHECK_EQ(t.data, &tag_fp4);
    m = fp_get();
    CHECK_EQ(m.a, main_up.a);
    CHECK_EQ(m.b, main_up.b);
    /* and the modes really were in effect: 1/3 rounded up > 1/3 rounded toward zero */
    double up = third();
    CHECK(up > g_fp_other_third);

    fp_set_rounding(RND_NEAREST);
    m = fp_get();
    CHECK_EQ(m.a, g_fp_orig.a); /* the test started in round-to-nearest */
    CHECK_EQ(m.b, g_fp_orig.b);
    stack_free(&s);
}
#endif

/* ---------------------------------------------------------------------------------------- */
/* 7. recursion on a 64 KiB malloc'd stack */

#define REC_BUF 96
#define REC_USE (40 * 1024)  /* recurse until this much of the stack is in use */
#define REC_GUARD (8 * 1024) /* lowest bytes of the stack: filled, must stay untouched */

static struct stack g_rec_stack;
static uintptr_t g_rec_limit;
static unsigned g_rec_depth;
static uint64_t g_rec_result;
static char tag_rec;

NOINLINE static uint64_t recurse(unsigned depth)
{
    volatile unsigned char buf[REC_BUF];
    for (unsigned i = 0; i < REC_BUF; i++)
        buf[i] = (unsigned char)(depth + i);
    uint64_t r;
    if (current_sp() > g_rec_limit && depth < 100000) {
        r = recurse(depth + 1);
    } else {
        g_rec_depth = depth;
        r = 0;
    }
    uint64_t sum = 0;
    for (unsigned i = 0; i < REC_BUF; i++)
        sum += buf[i];
    return r + sum + depth; /* uses buf after the call: not a tail call */
}

static void rec_entry(weft__transfer_t t)
{
    g_rec_result = recurse(0);
    weft__jump_fcontext(t.fctx, &tag_rec);
    abort();
}

static void test_recursion(void)
{
    g_rec_stack = stack_new();
    memset(g_rec_stack.base, 0x5a, REC_GUARD);
    g_rec_limit = (uintptr_t)(g_rec_stack.base + g_rec_stack.size - REC_USE);
    weft__fctx_t r = make_on(&g_rec_stack, rec_entry);
    weft__transfer_t t = weft__jump_fcontext(r, NULL);
    CHECK_EQ(t.data, &tag_rec);
    CHECK_GE(g_rec_depth, 64); /* frames are at most ~600 bytes even at -O0 with ASan */
    uint64_t expect = 0;
    for (unsigned d = 0; d <= g_rec_depth; d++) {
        for (unsigned i = 0; i < REC_BUF; i++)
            expect += (unsigned char)(d + i);
        expect += d;
    }
    CHECK_EQ(g_rec_result, expect);
    size_t intact = 0;
    while (intact < REC_GUARD && g_rec_stack.base[intact] == 0x5a)
        intact++;
    CHECK_EQ(intact, REC_GUARD);
    stack_free(&g_rec_stack);
}

/* ---------------------------------------------------------------------------------------- */

int main(void)
{
    test_pingpong();
    test_chain();
    test_ontop();
    test_alignment();
    test_callee_saved();
#if !defined(WEFT_NO_FPU_SAVE)
    test_fpu();
#else
    printf("test_fcontext: note: FP control state check skipped (built with "
           "-DWEFT_NO_FPU_SAVE)\n");
#endif
    test_recursion();
    printf("test_fcontext: %lu checks passed\n", g_checks);
    return 0;
}
