#!/usr/bin/env bash
# test_readme.sh README LIBWEFT_A INCLUDE_DIRS [EXTRA_LIBS...] — every ```c block of the README compiles
# against the public header; a block with main() is linked and run (and must exit 0).
# INCLUDE_DIRS: the header directories, separated by ':' (the source include/ and the build
# tree's generated weft/version.h).
# $WEFT_README_CFLAGS / $WEFT_README_LDFLAGS: extra flags a build needs (segmented stacks:
# -fsplit-stack, -fuse-ld=gold), as pkg-config would give them.
set -euo pipefail
readme=$1 lib=$2
incflags=()
IFS=: read -ra incdirs <<<"$3"
for d in "${incdirs[@]}"; do incflags+=(-I"$d"); done
shift 3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk -v dir="$tmp" '
  /^```c[[:space:]]*$/ { n++; f = dir "/snippet" n ".c"; inblock = 1; next }
  /^```/ && inblock { inblock = 0; close(f); next }
  inblock { print > f }
' "$readme"
count=0 failed=0
for f in "$tmp"/snippet*.c; do
  [ -e "$f" ] || continue
  count=$((count + 1))
  # shellcheck disable=SC2086 # word splitting of the flag lists is intended
  if ! cc -std=gnu11 -Wall -Wextra -Werror ${WEFT_README_CFLAGS:-} "${incflags[@]}" -c "$f" -o "${f%.c}.o"; then
    echo "test_readme: $(basename "$f") does not compile:"; cat -n "$f"; failed=$((failed + 1)); continue
  fi
  if grep -q 'int main' "$f"; then
    # shellcheck disable=SC2086
    cc ${WEFT_README_LDFLAGS:-} -Wl,-z,now "${f%.c}.o" "$lib" -lev -lpthread "$@" -o "${f%.c}" ||
      { failed=$((failed + 1)); continue; }
    if ! timeout 60 "${f%.c}" > "${f%.c}.out"; then
      echo "test_readme: $(basename "$f") failed when run"; failed=$((failed + 1))
    fi
  fi
done
if [ "$count" -eq 0 ]; then echo "test_readme: no C snippets found"; exit 1; fi
echo "test_readme: $count snippets, $failed failed"
[ "$failed" -eq 0 ]
