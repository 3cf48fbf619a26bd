#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_seeds.sh EXPLORE PROGRAM SEEDS — the *_seeds stress tests: PROGRAM under deterministic
# simulation over seeds 1..N through scripts/weft-explore (EXPLORE), two at a time, each
# killed after 300 s (a hang fails). N: $WEFT_STRESS_SEEDS when set (scripts/test.sh lowers it
# for stages where a simulated run is the same as in the release stage), else SEEDS (the
# build's WEFT_STRESS_SEEDS: 200, 30 under sanitizers).
set -eu
[ $# -eq 3 ] || { echo "usage: $0 EXPLORE PROGRAM SEEDS" >&2; exit 2; }
seeds=${WEFT_STRESS_SEEDS:-$3}
exec "$1" "$2" --seeds "$seeds" --jobs 2 --timeout 300 --quiet
