#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_readme.sh README LIBWEFT_A INCLUDE_DIRS [EXTRA_LIBS...] — every ```c block of the README compiles
# against the public header; a block with main() is linked and run (and must exit 0).
# INCLUDE_DIRS: the header directories, separated by ':' (the source include/ and the build
# tree's generated weft/version.h).
# Each complete program is then run again under every stack setting the README documents
# ($WEFT_STACK_SIZE values it names, plus 1k, 4k and 16k): it must print its output and exit
# 0, or die with weft's overflow report (SIGABRT) — never a bare SIGSEGV, never silently.
# A sub-page value must be refused with weft's message.
# $WEFT_README_CFLAGS / $WEFT_README_LDFLAGS: extra flags a build needs (segmented stacks:
# -fsplit-stack, -fuse-ld=gold; -fstack-clash-protection), as pkg-config would give them.
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
# The stack settings: the values of $WEFT_STACK_SIZE the README shows (`WEFT_STACK_SIZE=1k`,
# or a backquoted size in the sentence that documents the variable), plus a sub-page one, a
# page (too small for printf: the report) and a comfortable one.
bytes() { # 1k → 1024
  local v=${1,,} m=1
  case $v in *k) m=1024 v=${v%k} ;; *m) m=1048576 v=${v%m} ;; esac
  echo $((v * m))
}
mapfile -t sizes < <( {
  grep -oE 'WEFT_STACK_SIZE=[0-9]+[kKmM]?' "$readme" | cut -d= -f2
  grep -E '\$WEFT_STACK_SIZE' "$readme" | grep -oE '`[0-9]+[kKmM]?`' | tr -d '`'
  printf '%s\n' 1k 4k 16k
} | sort -u)
# Outside segmented builds a sub-page runtime default is refused (weft.h, WEFT_STACK_DEFAULT_MIN).
case " ${WEFT_README_CFLAGS:-} " in *" -DWEFT_SEGMENTED_STACKS "*) ;; *) sub_page_refused=1 ;; esac
echo "test_readme: stack settings: default ${sizes[*]}"
count=0 failed=0 runs=0
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
      echo "test_readme: $(basename "$f") failed when run"; failed=$((failed + 1)); continue
    fi
    for size in "${sizes[@]}"; do
      rc=0
      WEFT_STACK_SIZE=$size timeout 60 "${f%.c}" > "${f%.c}.out" 2> "${f%.c}.err" || rc=$?
      if [ "$rc" -eq 0 ] && cmp -s "${f%.c}.out" /dev/null; then
        verdict="exit 0 but no output"
      elif [ "$rc" -eq 0 ]; then
        verdict=ok
      elif [ "$rc" -eq 134 ] && grep -q '^weft: stack overflow in ' "${f%.c}.err"; then
        verdict=ok # weft's report
      else
        verdict="exit $rc without weft's report"
      fi
      if [ "$verdict" = ok ] && [ -n "${sub_page_refused:-}" ] && [ "$(bytes "$size")" -lt 4096 ] &&
         ! grep -q "^weft: ignoring WEFT_STACK_SIZE=$size: below 4096 bytes" "${f%.c}.err"; then
        verdict="sub-page WEFT_STACK_SIZE not refused"
      fi
      if [ "$verdict" != ok ]; then
        echo "test_readme: $(basename "$f") with WEFT_STACK_SIZE=$size: $verdict; stderr:"
        cat "${f%.c}.err"; failed=$((failed + 1))
      else
        runs=$((runs + 1))
      fi
    done
  fi
done
if [ "$count" -eq 0 ]; then echo "test_readme: no C snippets found"; exit 1; fi
echo "test_readme: $count snippets, $runs runs under stack settings, $failed failed"
[ "$failed" -eq 0 ]
