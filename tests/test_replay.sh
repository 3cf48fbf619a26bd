#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_replay.sh PROGRAM... — deterministic simulation replays: each PROGRAM (a test whose
# run ends with a "simulation fingerprint" line under $WEFT_SEED, tests/harness.h
# test_sim_fingerprint) runs twice with WEFT_SEED=1, whose whole outputs (stdout) must be
# byte-identical, and once with WEFT_SEED=2, whose fingerprint lines must differ from seed
# 1's (else the comparison would prove nothing: the line must depend on the interleaving).
set -u
[ $# -ge 1 ] || { echo "usage: $0 PROGRAM..." >&2; exit 2; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/weft-replay.XXXXXX") || exit 2
trap 'rm -rf "$dir"' EXIT
fail=0
for prog in "$@"; do
    name=$(basename "$prog")
    for run in a b; do
        WEFT_SEED=1 "$prog" >"$dir/$name.1$run" || { echo "$name: WEFT_SEED=1 exited with $?"; fail=1; continue 2; }
    done
    WEFT_SEED=2 "$prog" >"$dir/$name.2" || { echo "$name: WEFT_SEED=2 exited with $?"; fail=1; continue; }
    grep 'simulation fingerprint' "$dir/$name.1a" >"$dir/$name.fp1"
    grep 'simulation fingerprint' "$dir/$name.2" >"$dir/$name.fp2"
    if [ ! -s "$dir/$name.fp1" ]; then
        echo "$name: no simulation fingerprint line under WEFT_SEED=1"
        fail=1
    elif ! cmp -s "$dir/$name.1a" "$dir/$name.1b"; then
        echo "$name: two runs with WEFT_SEED=1 printed different outputs:"
        diff "$dir/$name.1a" "$dir/$name.1b" | head -20
        fail=1
    elif cmp -s "$dir/$name.fp1" "$dir/$name.fp2"; then
        echo "$name: WEFT_SEED=1 and WEFT_SEED=2 gave the same fingerprint (it does not follow the interleaving):"
        cat "$dir/$name.fp1"
        fail=1
    else
        echo "$name: replayed exactly under WEFT_SEED=1 ($(wc -l <"$dir/$name.fp1") runs), another seed differs"
        sed 's/^/    /' "$dir/$name.fp1"
    fi
done
exit $fail
