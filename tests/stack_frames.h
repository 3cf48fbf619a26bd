/* SPDX-License-Identifier: MIT */
/* stack_frames.h — large frames built without -fstack-clash-protection (stack_frames.c). */
#ifndef WEFT_TEST_STACK_FRAMES_H
#define WEFT_TEST_STACK_FRAMES_H
long frame68_unprobed(void);
long frame128_unprobed(void);
long frame128_unprobed_fault(void);
#endif
