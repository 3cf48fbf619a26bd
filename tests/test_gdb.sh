#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_gdb.sh — scripts/weft-gdb.py against a live program, under gdb in batch mode.
#
#   tests/test_gdb.sh TEST_DUMP_BINARY [WEFT_GDB_PY]
#
# Runs `TEST_DUMP_BINARY --gdb-target` (tests/test_dump.c), which parks named coroutines in
# known functions and calls weft_test_gdb_break(); gdb stops there and runs `weft list`,
# `weft workers` and `weft bt` (by name, by id expression, on a bad id, and with the scratch
# registers borrowed from a thread blocked in read(2)), then lets the program finish: it must
# exit normally, which shows every register `weft bt` borrowed was restored (its blocked
# read(2) restarted and completed). Checks what was printed; prints the whole gdb session.
#
# Needs gdb and a build with debug info (CTest registers it only for Debug/RelWithDebInfo,
# x86-64). Exits 77 (CTest: skipped) when gdb is missing or cannot trace processes here
# (e.g. a container without ptrace).
set -u

bin=${1:?usage: test_gdb.sh TEST_DUMP_BINARY [WEFT_GDB_PY]}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
script=${2:-$here/../scripts/weft-gdb.py}
gdb=${WEFT_GDB:-gdb}
limit=${WEFT_GDB_TIMEOUT:-240}

command -v "$gdb" >/dev/null 2>&1 || { echo "test_gdb: SKIP: no gdb"; exit 77; }
[ -x "$bin" ] || { echo "test_gdb: no executable $bin" >&2; exit 1; }
[ -f "$script" ] || { echo "test_gdb: no gdb script $script" >&2; exit 1; }
[ "$(uname -m)" = x86_64 ] || { echo "test_gdb: SKIP: weft-gdb.py is x86-64 only"; exit 77; }

# LeakSanitizer cannot run under ptrace; everything else of ASan/UBSan/TSan stays on.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Can gdb run a program here at all?
probe=$(timeout 60 "$gdb" -nx -batch -ex run --args /bin/true 2>&1)
if ! grep -q "exited normally" <<<"$probe"; then
    echo "test_gdb: SKIP: gdb cannot run a program here:"
    sed 's/^/    /' <<<"$probe" | head -5
    exit 77
fi

out=$tmp/gdb.out
args=(-nx -batch -x "$script"
    -ex 'set pagination off' -ex 'set confirm off' -ex 'set print thread-events off'
    -ex 'break weft_test_gdb_break' -ex run
    -ex 'echo @@list\n' -ex 'weft list'
    -ex 'echo @@workers\n' -ex 'weft workers'
    -ex 'echo @@regs-before\n' -ex 'info registers rip rsp rbp rbx r12 r13 r14 r15'
    -ex 'echo @@bt-recv\n' -ex 'weft bt gdb-recv'
    -ex 'echo @@bt-sleep\n' -ex 'weft bt gdb_target_sleep_id'
    -ex 'echo @@bt-select\n' -ex 'weft bt gdb_target_select_id full'
    -ex 'echo @@bt-spin\n' -ex 'weft bt gdb-spin'
    -ex 'echo @@bt-main\n' -ex 'weft bt main'
    -ex 'echo @@bt-bad\n' -ex 'weft bt 999999'
    -ex 'echo @@regs-after\n' -ex 'info registers rip rsp rbp rbx r12 r13 r14 r15'
    -ex 'echo @@bt-all\n' -ex 'weft bt all'
    # Borrow the registers of the pool thread blocked in read(2) (named by the job).
    -ex 'python [t.switch() for t in gdb.selected_inferior().threads() if t.name == "gdb-blk"]'
    -ex 'echo @@blk-thread\n' -ex 'info registers rip rsp orig_rax'
    -ex 'echo @@bt-blocking\n' -ex 'weft bt gdb-blocking'
    -ex 'echo @@blk-thread-after\n' -ex 'info registers rip rsp orig_rax'
    -ex 'echo @@continue\n' -ex continue
    --args "$bin" --gdb-target)
timeout -k 10 "$limit" "$gdb" "${args[@]}" >"$out" 2>&1
rc=$?
echo "---- gdb session (exit $rc) ----"
cat "$out"
echo "---- end ----"

failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}
# section NAME: the lines between @@NAME and the next @@ marker
section() { awk -v m="@@$1" '$0 == m {on = 1; next} /^@@/ {on = 0} on' "$out"; }
has() { # SECTION REGEX DESCRIPTION
    section "$1" | grep -Eq -- "$2" || fail "$1: $3 (no line matches /$2/)"
}

[ $rc -eq 0 ] || fail "gdb exited with $rc"
grep -q "hit Breakpoint 1, weft_test_gdb_break" "$out" || fail "the breakpoint was not hit"
grep -q "Python Exception" "$out" && fail "a Python exception in weft-gdb.py"

# weft list: the parked coroutines, their state, what they wait on, a stack use; main running
has list '^weft: 6 live coroutines, 2 workers$' "header"
has list '^ +[0-9]+ +gdb-recv +waiting +[01] +chan recv +[0-9]+/65536 *$' "gdb-recv waiting on chan recv"
has list '^ +[0-9]+ +gdb-sleep +waiting +[01] +sleep +[0-9]+/65536 *$' "gdb-sleep waiting on sleep"
has list '^ +[0-9]+ +gdb-select +waiting +[01] +select +[0-9]+/65536 *$' "gdb-select waiting on select"
has list '^ +[0-9]+ +gdb-blocking +waiting +[01] +blocking +[0-9]+/65536 *$' "gdb-blocking waiting on blocking"
has list '^ +[0-9]+ +gdb-spin +(running|runnable)' "gdb-spin"
has list '^ +1 +main +running +[01] +- +[0-9]+/[0-9]+ +[0-9]+$' "main running, with its thread"
# the ids in the listing are the ones the program recorded
recv_id=$(grep -o 'parked recv=[0-9]*' "$out" | head -1 | cut -d= -f2)
[ -n "$recv_id" ] && has list "^ +$recv_id +gdb-recv " "gdb-recv's id $recv_id"

has workers '^weft: 2 workers' "workers header"
has workers 'worker [01]: running coroutine 1 "main"' "the worker running main"

# weft bt: the user function and the blocking call, from the saved context
has bt-recv '^coroutine [0-9]+ "gdb-recv" waiting on chan recv$' "bt header"
has bt-recv ' (weft_chan_recv|chan_op) ' "the blocking call"
has bt-recv ' gdb_target_receiver ' "the coroutine's function"
has bt-recv 'weft__fcontext_start|coro_entry' "the entry"
has bt-sleep ' weft_sleep_until ' "the blocking call"
has bt-sleep ' gdb_target_sleeper ' "the coroutine's function"
has bt-select ' weft_select ' "the blocking call"
has bt-select ' gdb_target_selector ' "the coroutine's function"
has bt-select '^ +cs = ' "bt full shows locals"
has bt-spin 'gdb_target_spinner' "the spinning coroutine's function"
has bt-main 'running on gdb thread [0-9]+' "main is shown from its thread"
has bt-main 'weft_test_gdb_break' "main's frame 0"
has bt-main ' gdb_main ' "main's function"
has bt-bad 'no live coroutine with id 999999' "an unknown id is refused"
has bt-all '"gdb-recv" waiting' "bt all: gdb-recv"
has bt-all '"gdb-blocking" waiting' "bt all: gdb-blocking"
has bt-all ' gdb_target_blocker ' "bt all: gdb-blocking's function"
has bt-blocking ' weft_blocking ' "bt from another thread: the blocking call"
has bt-blocking ' gdb_target_blocker ' "bt from another thread: the coroutine's function"

# every borrowed register was put back
if [ "$(section regs-before)" != "$(section regs-after)" ]; then
    fail "registers of the stopped thread changed across weft bt"
    diff <(section regs-before) <(section regs-after) >&2
fi
if [ "$(section blk-thread)" != "$(section blk-thread-after)" ]; then
    fail "registers of the blocked thread changed across weft bt"
    diff <(section blk-thread) <(section blk-thread-after) >&2
fi
section blk-thread | grep -q '^rip' || fail "could not select the gdb-blk thread"

# and the program went on: the read(2) it was blocked in completed normally
has continue '^gdb-target: done$' "the program finished its work"
has continue 'exited normally' "the program exited normally"

# Without a running program: with debug info `weft workers` says no runtime runs; with the
# debug info stripped it says so, rather than claiming that no runtime runs.
static=$(timeout 120 "$gdb" -nx -batch -x "$script" -ex 'weft workers' "$bin" 2>&1)
grep -q 'weft: no runtime running' <<<"$static" ||
    fail "weft workers on the program file: expected 'no runtime running', got: $static"
if command -v objcopy >/dev/null 2>&1; then
    objcopy --strip-debug "$bin" "$tmp/stripped"
    static=$(timeout 120 "$gdb" -nx -batch -x "$script" -ex 'weft workers' "$tmp/stripped" 2>&1)
    grep -q 'no debug info for weft' <<<"$static" ||
        fail "weft workers without debug info: expected 'no debug info', got: $static"
fi

if [ $failures -gt 0 ]; then
    echo "test_gdb: $failures check(s) failed" >&2
    exit 1
fi
echo "test_gdb: passed"
