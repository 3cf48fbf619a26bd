/* SPDX-License-Identifier: MIT */
/* stack_frames.c — large stack frames for test_stack, compiled WITHOUT
 * -fstack-clash-protection (tests/CMakeLists.txt): code weft's users may build without the
 * flag, whose frames touch their memory in whatever order the code says. */
#include "stack_frames.h"

#include <string.h>
#include <weft.h>

/* Segmented builds: unsplit, so the frames overflow instead of growing a segment. */
#if defined(WEFT_SEGMENTED_STACKS)
#define NOSPLIT __attribute__((no_split_stack))
#else
#define NOSPLIT
#endif

/* 68 KiB: memset's call pushes its return address at the frame's lowest word first, about
 * 4.5 KiB below a 64 KiB stack (past a one-page guard, inside a 64 KiB guard zone). */
NOSPLIT long frame68_unprobed(void)
{
    char buf[68 * 1024];
    memset(buf, 1, sizeof buf);
    weft_yield();
    return buf[0] + buf[sizeof buf - 1];
}

/* 128 KiB: only the lowest byte is touched (about 64.5 KiB below the stack: past the whole
 * guard zone, in the stack below), then a switch: no fault at all, so the switch must see
 * the stack pointer below the stack. */
NOSPLIT long frame128_unprobed(void)
{
    volatile char buf[128 * 1024];
    buf[0] = 1;
    weft_yield();
    return buf[0];
}

/* 128 KiB again, its lowest byte in the stack below, then a write through a null pointer: a
 * fault nowhere near the stack pointer, which is below the stack. (No call in between: in
 * segmented builds a split callee would move to a new segment.) */
int *volatile frames_null;
NOSPLIT long frame128_unprobed_fault(void)
{
    volatile char buf[128 * 1024];
    buf[0] = 1;
    *frames_null = 1;
    return buf[0];
}
