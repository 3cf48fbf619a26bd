#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_refs.sh SOURCE_DIR — no stale references: every file name (*.h *.c *.S *.md *.py *.sh)
# that a comment, a document or a script in src/ include/ tests/ samples/ scripts/ docs/
# README.md names is a file of the tree. Prints FILE:LINE: name for each one that is not, and
# fails. A name resolves when it is, as written, a path from the root or from the naming
# file's directory, or the end of a path in the tree ("core/coro.c", "coro.c").
#
# Not checked: names inside <...> (system and library headers: <stdio.h>, <ev.h>), names in
# URLs, and the allow list below — files outside this tree, each with its reason.
set -u
cd "$1" || exit 2

# name (as written)               reason
allow=(
    "weft/version.h"               # generated in the build tree from cmake/version.h.in
    "bench-results/summary.md"     # written by tests/bench/run-bench.sh
    "prog.c"                       # a reader's program, in the man page's synopsis
    "app.c"                        # a reader's program, in the README's hook example
    "FIELD-NOTES.md"               # the project's shared notes (../shared), not in this tree
    "bench/WORKLOADS.md"           # the project's shared benchmark spec (../shared/bench)
    "shared/bench/WORKLOADS.md"    # the same, named from the workspace root
)
# FILE:name pairs allowed in that one file only: names of files that do not exist, written
# on purpose (each with its reason).
pending=(
    "src/core/scheduler.h:sched.h" # says why the header is not called that (<sched.h>)
    "src/core/waker.h:wait.h"      # says why the header is not called that (<wait.h>)
)

tree=$(find src include tests samples scripts docs cmake .ci -type f 2>/dev/null; ls ./*.md)
scan=$(find src include tests samples scripts docs -type f \
    \( -name '*.[chS]' -o -name '*.md' -o -name '*.py' -o -name '*.sh' -o -name '*.txt' \
    -o -name '*.cmake' -o -name '*.in' -o -name '*.supp' -o -name '*.go' -o -name '*.rs' \) \
    2>/dev/null; echo README.md)

exists() { # NAME FROM-FILE
    local n=$1 dir a
    dir=$(dirname "$2")
    [ -f "$n" ] || [ -f "$dir/$n" ] && return 0
    for a in "${allow[@]}"; do [ "$a" = "$n" ] && return 0; done
    for a in "${pending[@]}"; do [ "$a" = "$2:$n" ] && return 0; done
    # the end of a path of the tree
    grep -qE "(^|/)${n//./\\.}\$" <<<"$tree"
}

# The text to check of file $1, line for line: in C and assembly only the comments (in code
# a member access looks like a file name); in everything else every line.
text() {
    case $1 in
    *.[chS])
        awk '{
            out = ""; s = $0
            while (s != "") {
                if (inc) {
                    i = index(s, "*/")
                    if (i == 0) { out = out s; s = "" }
                    else { out = out substr(s, 1, i - 1) " "; s = substr(s, i + 2); inc = 0 }
                } else {
                    i = index(s, "/*"); j = index(s, "//")
                    if (j && (!i || j < i)) { out = out substr(s, j + 2); s = "" }
                    else if (i) { s = substr(s, i + 2); inc = 1 }
                    else s = ""
                }
            }
            print out
        }' "$1"
        ;;
    *) cat "$1" ;;
    esac
}

# Words are split at any character a path does not have; a word is a name when it ends in one
# of the extensions (a final "." ends a sentence) and starts with a letter, digit or "_": not
# "$dir/probe.c" (a shell variable), "/usr/..." (an installed path) or "-gdb.py".
bad=0
while IFS= read -r f; do
    [ "$f" = tests/test_refs.sh ] && continue # the lists above name files on purpose
    text "$f" | awk '{
        gsub(/<[^<> ]*>/, " "); gsub(/[a-z]+:\/\/[^ )>]*/, " ")
        n = split($0, w, /[^A-Za-z0-9_.\/+$@{}-]+/)
        for (k = 1; k <= n; k++) {
            t = w[k]; sub(/\.$/, "", t)
            if (t ~ /^[A-Za-z0-9_][A-Za-z0-9_.\/+-]*\.(h|c|S|md|py|sh)$/) print NR ":" t
        }
    }' |
        while IFS=: read -r line name; do
            name=${name#./}
            if ! exists "$name" "$f"; then
                echo "$f:$line: $name does not exist"
            fi
        done
done <<<"$scan" | sort -u >/tmp/test_refs.$$
if [ -s /tmp/test_refs.$$ ]; then
    cat /tmp/test_refs.$$
    echo "test_refs: $(wc -l </tmp/test_refs.$$) stale reference(s) (a renamed or removed file," \
        "or add an outside file to the allow list in tests/test_refs.sh with its reason)"
    bad=1
else
    echo "test_refs: every named file exists"
fi
rm -f /tmp/test_refs.$$
exit $bad
