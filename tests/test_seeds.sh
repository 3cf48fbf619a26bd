#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_seeds.sh EXPLORE PROGRAM SEEDS — the *_seeds stress tests: PROGRAM under deterministic
# simulation over seeds 1..N through scripts/weft-explore (EXPLORE), two at a time, each
# killed after 300 s (a hang fails). N: $WEFT_STRESS_SEEDS when set (scripts/test.sh lowers it
# for stages where a simulated run is the same as in the release stage), else SEEDS (the
# build's WEFT_STRESS_SEEDS: 200, 30 under sanitizers). Each seed runs the test's workloads
# divided by 10 (WEFT_TEST_SCALE, harness.h; unless set already): many interleavings of a
# small workload find more than a few of a large one, and 200 seeds of test_chan at full size
# took 5 minutes.
set -eu
export WEFT_TEST_SCALE=${WEFT_TEST_SCALE:-10}
[ $# -eq 3 ] || { echo "usage: $0 EXPLORE PROGRAM SEEDS" >&2; exit 2; }
seeds=${WEFT_STRESS_SEEDS:-$3}
exec "$1" "$2" --seeds "$seeds" --jobs 2 --timeout 300 --quiet
