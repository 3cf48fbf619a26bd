/* SPDX-License-Identifier: MIT */
/* futex.h — floor 0 (platform): thin wrappers over futex(2) for the lock and for plain threads
 * that wait on weft objects. Private futexes: weft never shares these words across processes. */
#ifndef WEFT_FUTEX_H
#define WEFT_FUTEX_H

#include <stdatomic.h>
#include <stdint.h>

/* Sleep while *word == val, until woken or until the absolute CLOCK_MONOTONIC deadline (ns,
 * INT64_MAX for none; a negative one is long past). Returns 0 when woken or the value
 * differed, -ETIMEDOUT. */
int weft__futex_wait(_Atomic uint32_t *word, uint32_t val, int64_t deadline);
void weft__futex_wake(_Atomic uint32_t *word, int n);

#endif
