#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_trace_tool.sh — a traced run end to end: tests/trace_prog runs with $WEFT_TRACE,
# scripts/weft-trace.py turns the trace into JSON, an SVG and a summary, and
# tests/check_trace.py checks them against what the program says it did. Then an unwritable
# $WEFT_TRACE: a clear message, the program runs on untraced. And the tool on a file that is
# no trace: a message, exit 1.
#
#   tests/test_trace_tool.sh TRACE_PROG SOURCE_DIR
#
# Python: $PYTHON, else /usr/bin/python3, else python3 on PATH (standard library only).
set -u

prog=${1:?usage: test_trace_tool.sh TRACE_PROG SOURCE_DIR}
src=${2:?usage: test_trace_tool.sh TRACE_PROG SOURCE_DIR}
py=${PYTHON:-}
if [ -z "$py" ]; then
    if [ -x /usr/bin/python3 ]; then py=/usr/bin/python3; else py=python3; fi
fi
tool=$src/scripts/weft-trace.py
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# 1. a traced run, converted and checked
if ! WEFT_TRACE=$tmp/t.bin timeout 120 "$prog" >"$tmp/out" 2>"$tmp/err"; then
    fail "trace_prog failed: $(cat "$tmp/err")"
elif ! "$py" "$tool" "$tmp/t.bin" --json "$tmp/t.json" --svg "$tmp/t.svg" --summary \
        >"$tmp/summary" 2>"$tmp/tool.err"; then
    fail "weft-trace.py failed: $(cat "$tmp/tool.err")"
else
    "$py" "$src/tests/check_trace.py" "$tmp/t.json" "$tmp/t.svg" "$tmp/summary" \
        "$(cat "$tmp/out")" || fail "check_trace.py (summary below)"$'\n'"$(cat "$tmp/summary")"
fi

# 2. an unwritable path: said clearly, and the run goes on
bad=$tmp/no-such-dir/t.bin
if ! WEFT_TRACE=$bad timeout 120 "$prog" >"$tmp/out2" 2>"$tmp/err2"; then
    fail "with an unwritable WEFT_TRACE the program failed: $(cat "$tmp/err2")"
fi
grep -q "^weft: WEFT_TRACE=$bad: cannot open the trace file: No such file or directory; not tracing$" \
    "$tmp/err2" || fail "no clear message for an unwritable WEFT_TRACE: $(cat "$tmp/err2")"
grep -q "spawns=6" "$tmp/out2" || fail "the untraced run did not finish its work"
[ -e "$bad" ] && fail "a trace file appeared at $bad"

# 3. the tool on a file that is no trace
echo "not a trace" >"$tmp/junk"
if "$py" "$tool" "$tmp/junk" >/dev/null 2>"$tmp/junk.err"; then
    fail "weft-trace.py accepted a file that is no trace"
fi
grep -q "not a weft trace" "$tmp/junk.err" || fail "no clear message for a bad file: $(cat "$tmp/junk.err")"

if [ "$failures" -ne 0 ]; then
    echo "test_trace_tool: $failures failure(s)" >&2
    exit 1
fi
echo "test_trace_tool: ok"
