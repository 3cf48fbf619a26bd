#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_explore.sh — scripts/weft-explore finds each planted bug of tests/sim_bugs.c within a
# bound of seeds, its printed replay command fails the same way (three times), and the
# corrected programs pass every seed of the same range.
#   test_explore.sh WEFT_EXPLORE SIM_BUGS
# Seeds found in a release build on x86-64 (the seed-to-interleaving map follows the
# scheduler's code, so a change to it may move them): lostwake 3, checkact 4, timerchan 1.
# The bound below (BOUND seeds) leaves room for such moves.
set -u
explore=$1 bugs=$2
BOUND=100
fail=0
for mode in lostwake checkact timerchan; do
    out=$("$explore" "$bugs" --seeds $BOUND --jobs 2 --quiet -- "$mode")
    rc=$?
    if [ $rc -ne 1 ]; then
        echo "FAIL $mode: weft-explore exit $rc, expected 1 (a failing seed within $BOUND):"
        echo "$out"
        fail=1
        continue
    fi
    seed=$(sed -n 's/^weft-explore: seed \([0-9]*\) failed.*/\1/p' <<<"$out")
    msg=$(grep '^BUG:' <<<"$out")
    replay=$(sed -n 's/^replay: //p' <<<"$out")
    if [ -z "$seed" ] || [ -z "$msg" ] || [ "$replay" != "WEFT_SEED=$seed $bugs $mode" ]; then
        echo "FAIL $mode: unexpected report:"
        echo "$out"
        fail=1
        continue
    fi
    for i in 1 2 3; do
        again=$(eval "$replay" 2>&1)
        rrc=$?
        if [ $rrc -ne 1 ] || [ "$(grep '^BUG:' <<<"$again")" != "$msg" ]; then
            echo "FAIL $mode: replay $i of seed $seed: exit $rrc, output: $again (expected: $msg)"
            fail=1
        fi
    done
    echo "ok $mode: found at seed $seed ($msg); replayed 3 times"
    fixed=$("$explore" "$bugs" --seeds $BOUND --jobs 2 --quiet -- "$mode" fixed)
    if [ $? -ne 0 ]; then
        echo "FAIL $mode fixed: the corrected program failed:"
        echo "$fixed"
        fail=1
    else
        echo "ok $mode fixed: $fixed"
    fi
done
# Bad usage: a clear message and exit 2.
"$explore" "$bugs" --seeds x >/dev/null 2>&1
[ $? -eq 2 ] || { echo "FAIL: --seeds x not refused with exit 2"; fail=1; }
"$explore" /nonexistent >/dev/null 2>&1
[ $? -eq 2 ] || { echo "FAIL: a missing program not refused with exit 2"; fail=1; }
exit $fail
