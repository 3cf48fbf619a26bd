#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_man.sh LIBWEFT_SO[:LIB...] MANDIR — the reference is complete: every weft_ function
# the libraries (libweft.so, libweft-hook.so) export has its page MANDIR/man3/<function>.3 with a description (scripts/gen-man.py makes
# them from the headers' doc comments), no page documents a function the library does not
# export, and every page (and weft(7)) renders without warnings.
# Each failure names the page and what to do.
set -u
lib=${1:?usage: test_man.sh LIBWEFT_SO MANDIR} dir=${2:?usage: test_man.sh LIBWEFT_SO MANDIR}
failed=0
fail() {
    echo "test_man: $*" >&2
    failed=$((failed + 1))
}
[ -f "$dir/man7/weft.7" ] || fail "no overview page $dir/man7/weft.7 (build the target weft_man)"
syms=$(IFS=:; for l in $lib; do nm -D --defined-only "$l"; done |
    awk '$2 ~ /^[TWi]$/ && $3 ~ /^weft_[a-z0-9]/ { print $3 }' | sort -u)
[ -n "$syms" ] || fail "no weft_ function exported by $lib"
n=0
for s in $syms; do
    n=$((n + 1))
    page=$dir/man3/$s.3
    if [ ! -f "$page" ]; then
        fail "no page $s(3): $s is exported but not declared with WEFT_EXTERN in include/"
    elif grep -q '^undocumented: ' "$page"; then
        fail "$s(3) says undocumented: give $s a doc comment in its header (scripts/gen-man.py)"
    fi
done
for page in "$dir"/man3/*.3; do
    [ -e "$page" ] || continue
    s=$(basename "$page" .3)
    grep -qx "$s" <<<"$syms" || fail "$s(3) documents a function $lib does not export"
done
# Render: groff's warnings (-ww) about a page are failures; man -l must show the name.
for page in "$dir"/man3/*.3 "$dir/man7/weft.7"; do
    [ -e "$page" ] || continue
    if command -v groff >/dev/null 2>&1; then
        warn=$(groff -man -Tutf8 -ww -z "$page" 2>&1)
        [ -z "$warn" ] || fail "$(basename "$page") renders with warnings: $warn"
    fi
done
if command -v man >/dev/null 2>&1; then
    out=$(MANWIDTH=80 man -l "$dir/man3/weft_spawn.3" 2>&1)
    grep -q 'weft_spawn' <<<"$out" && grep -q 'DESCRIPTION' <<<"$out" ||
        fail "man -l weft_spawn.3 does not show the page: $out"
fi
if [ "$failed" -ne 0 ]; then
    echo "test_man: $failed problem(s)" >&2
    exit 1
fi
echo "test_man: $n exported functions, each with its page"
