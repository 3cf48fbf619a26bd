#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_samples.sh — run the sequential-code samples (shortened) and check what they print.
#
#   tests/test_samples.sh BUILD/samples
#
# Each sample runs under `timeout` with WEFT_SAMPLE_FAST=1 and small sizes; the whole run
# takes a few seconds. Sizes can be lowered for sanitizer builds:
#   WEFT_SAMPLES_MILLION_N (default 10000), WEFT_SAMPLES_SKYNET_N (default 10000; skynet also
#   runs with that plus 2345, a size that is not a power of ten).
# Exits non-zero, naming every failed check, if any sample misbehaves.
set -u

dir=${1:?usage: test_samples.sh SAMPLES_DIR}
million_n=${WEFT_SAMPLES_MILLION_N:-10000}
skynet_n=${WEFT_SAMPLES_SKYNET_N:-10000}
export WEFT_SAMPLE_FAST=1

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
out= # the stdout file of the sample that ran last
ran_ok=0

fail() {
    echo "FAIL: $current: $*" >&2
    failures=$((failures + 1))
}

# run NAME SECONDS [ARGS...]: runs the sample; its stdout is in $out. 1 if it did not run or
# exited non-zero (already reported).
run() {
    current=$1
    local secs=$2 exe=$dir/$1
    shift 2
    out=$tmp/$current.out
    ran_ok=0
    : >"$out"
    if [ ! -x "$exe" ]; then
        fail "no executable $exe"
        return 1
    fi
    local start=$SECONDS rc=0
    timeout --kill-after=5 "$secs" "$exe" "$@" >"$out" 2>"$tmp/$current.err" || rc=$?
    if [ "$rc" -ne 0 ]; then
        [ "$rc" -eq 124 ] && fail "timed out after ${secs}s" || fail "exit status $rc"
        echo "--- stdout:" >&2
        cat "$out" >&2
        echo "--- stderr:" >&2
        cat "$tmp/$current.err" >&2
        return 1
    fi
    ran_ok=1
    echo "ran $current $* ($((SECONDS - start)) s)"
}

# expect PATTERN: some line of the last output matches the extended regex.
expect() {
    grep -Eq -- "$1" "$out" || fail "no line matches /$1/"
}

# show_on_failure FAILURES_BEFORE: print the output of a sample that ran but failed a check.
show_on_failure() {
    if [ "$ran_ok" -eq 1 ] && [ "$failures" -ne "$1" ]; then
        echo "--- $current printed:" >&2
        cat "$out" >&2
    fi
}

# ---- merge_streams: 20 items; messages a, b, c... in order; intervals #1, #2, #3... -------------
# The source program's throttle delays the intervals, it does not drop them: the counts shown
# are consecutive from 1 (the thread is held back by the bounded channel). Which of the two
# streams supplies the 20th item is a race, so the messages are checked as an in-order prefix.
f0=$failures
if run merge_streams 30; then
    items=$(grep -Ec "^(Message: '[a-j]'|Interval #[0-9]+|Problem: .+)$" "$out")
    lines=$(wc -l <"$out")
    [ "$items" -eq 20 ] || fail "$items item lines, expected 20"
    [ "$lines" -eq 20 ] || fail "$lines lines in all, expected the 20 items only"
    expect '^Problem: '
    letters=$(sed -n "s/^Message: '\(.\)'$/\1/p" "$out" | tr -d '\n')
    case abcdefghij in
    "$letters"*) [ -n "$letters" ] || fail "no Message line" ;;
    *) fail "messages came as '$letters', expected a, b, c... in order" ;;
    esac
    # Each message that took 300 ms (b, d, f, h, j) outlasted the 200 ms timeout: a Problem
    # line comes within the two lines before it (an Interval line may come in between).
    late=$(awk '/^Message: .[bdfhj].$/ { if (p1 !~ /^Problem: / && p2 !~ /^Problem: /) print $2 }
                { p2 = p1; p1 = $0 }' "$out" | tr -d "'\n")
    [ -z "$late" ] || fail "no Problem line just before the late message(s) $late"
    # Intervals count 1, 2, 3...: delayed, none dropped.
    ivals=$(sed -n 's/^Interval #//p' "$out" | tr '\n' ' ')
    want=$(seq -s ' ' 1 "$(echo "$ivals" | wc -w)")
    [ -n "$ivals" ] && [ "$ivals" = "$want " ] ||
        fail "intervals came as '$ivals', expected 1, 2, 3... (delayed by the throttle, none dropped)"
fi
show_on_failure "$f0"

# ---- thread_to_task: got 1..10, in order ------------------------------------------------------
f0=$failures
if run thread_to_task 20; then
    got=$(sed -n 's/^got \([0-9]*\)$/\1/p' "$out" | tr '\n' ' ')
    [ "$got" = "1 2 3 4 5 6 7 8 9 10 " ] || fail "received '$got', expected 1..10 in order"
fi
show_on_failure "$f0"

# ---- million: both sections -------------------------------------------------------------------
f0=$failures
if run million 60 --n "$million_n" --threads-cap 200; then
    expect "^coroutines: $million_n alive"
    expect "^coroutines: resident memory \+"
    expect "^coroutines: all $million_n done in "
    expect '^threads: [0-9]+ alive'
    expect '^threads: all [0-9]+ done in '
fi
show_on_failure "$f0"

# ---- cancel: the deadline wins (task cancelled, cleans up), then the task wins ----------------
# Under deterministic simulation (WEFT_SEED, weft.h): which of a 250 ms deadline and three
# 50 ms steps comes first is then decided by virtual time, not by a loaded machine (a step
# once took 224 ms at a load average of 20 and the deadline won round 2).
f0=$failures
if WEFT_SEED=1 run cancel 20; then
    expect 'main: deadline passed, cancelling the slow task'
    expect 'slow task: cancelled, cleaning up'
    expect 'main: slow task returned "cancelled"'
    expect 'slow task: step 3/3 done'
    expect 'main: slow task returned "finished"'
    order=$(grep -Eo 'deadline passed|cancelled, cleaning up|returned "cancelled"|step 3/3 done|returned "finished"' "$out" | tr '\n' '|')
    [ "$order" = 'deadline passed|cancelled, cleaning up|returned "cancelled"|step 3/3 done|returned "finished"|' ] ||
        fail "events in the wrong order: $order"
    [ "$(grep -c 'cancelled, cleaning up' "$out")" -eq 1 ] || fail "the task was cancelled more than once"
fi
show_on_failure "$f0"

# ---- pipeline: the pipelined checksum equals the one computed again on one thread ------------
f0=$failures
if run pipeline 60; then
    expect '^hashed 64/64 blocks$'
    sums=$(sed -n 's/^checksum \([0-9a-f]\{16\}\) .*/\1/p' "$out")
    [ "$(echo "$sums" | wc -l)" -eq 2 ] || fail "expected two checksum lines"
    [ "$(echo "$sums" | sort -u | wc -l)" -eq 1 ] || fail "checksums differ: $(echo $sums)"
    expect '^match$'
fi
show_on_failure "$f0"

# ---- skynet: the sum of 0..N-1, for a power of ten and for another N -------------------------
for n in "$skynet_n" $((skynet_n + 2345)); do
    f0=$failures
    if run skynet 60 "$n"; then
        expect "^Result: $((n * (n - 1) / 2)) in "
    fi
    show_on_failure "$f0"
done

# ---- hello: runs, six naps ------------------------------------------------------------------
f0=$failures
if run hello 20; then
    [ "$(grep -c '^coroutine [0-9]* slept [1-6]00 ms$' "$out")" -eq 6 ] || fail "expected six 'slept' lines"
fi
show_on_failure "$f0"

# ---- redis_fanout: a thousand hiredis clients through libweft-hook, against a redis-server ----
# started here on a free port (ready when its log says so: an event); skipped, not failed,
# when the sample was not built (no hiredis) or there is no redis-server.
f0=$failures
redis_bin=$(command -v redis-server || true)
if [ ! -x "$dir/redis_fanout" ]; then
    echo "skipped redis_fanout: not built (no hiredis; scripts/deps.sh hook)"
elif [ -z "$redis_bin" ]; then
    echo "skipped redis_fanout: no redis-server (scripts/deps.sh hook)"
else
    rport=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    mkdir -p "$tmp/redis"
    "$redis_bin" --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp/redis" \
        --maxclients 2000 --logfile "" --daemonize no >"$tmp/redis.log" 2>&1 &
    redis_pid=$!
    for _ in $(seq 1200); do # the 60 s are a safety net; the event is the log line
        grep -q 'Ready to accept connections' "$tmp/redis.log" && break
        kill -0 "$redis_pid" 2>/dev/null || break
        sleep 0.05
    done
    if ! grep -q 'Ready to accept connections' "$tmp/redis.log"; then
        current=redis_fanout
        fail "redis-server did not start: $(cat "$tmp/redis.log")"
    elif run redis_fanout 60 "$rport" 1000; then
        expect '^redis_fanout: 1000 clients, 3000 replies checked, 0 failures, in '
        expect '^redis_fanout: counter 1000, at most [0-9]+ clients connected at once$'
    fi
    kill "$redis_pid" 2>/dev/null
    wait "$redis_pid" 2>/dev/null
fi
show_on_failure "$f0"

# ---- tls_echo: every line of every client echoed intact over TLS (built with libssl-dev) --------
f0=$failures
if [ ! -e "$dir/tls_echo" ]; then
    echo "skipped tls_echo: not built (no OpenSSL; scripts/deps.sh hook)"
elif run tls_echo 60; then
    expect '^tls_echo: server on 127\.0\.0\.1:[0-9]+, 20 clients of 10 lines$'
    [ "$(grep -c '^client [0-9]*: 10 of 10 lines echoed intact$' "$out")" -eq 2 ] ||
        fail "expected 2 'client N: 10 of 10 lines echoed intact' lines"
    expect '^tls_echo: 200 of 200 lines echoed intact over 20 TLS connections in '
fi
show_on_failure "$f0"

if [ "$failures" -ne 0 ]; then
    echo "test_samples: $failures check(s) failed" >&2
    exit 1
fi
echo "test_samples: passed"
