#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_format.sh SOURCE_DIR [CLANG_FORMAT] — the C of the tree follows the checked-in
# .clang-format (clang-format 14, Debian 12's; scripts/deps.sh installs it with the base
# group): names every file that clang-format would change and shows the first lines of the
# change. Reformat with `clang-format -i FILE`.
set -u
cd "$1" || exit 2
cf=${2:-}
if [ -z "$cf" ]; then
    cf=$(command -v clang-format-14 || command -v clang-format || true)
fi
if [ -z "$cf" ] || ! "$cf" --version >/dev/null 2>&1; then
    echo "test_format: clang-format is not installed (scripts/deps.sh base installs it)"
    exit 1
fi
bad=0
while IFS= read -r f; do
    if ! out=$("$cf" --style=file "$f" | diff -u "$f" - 2>&1); then
        echo "test_format: $f is not formatted as .clang-format says:"
        printf '%s\n' "$out" | sed -n '3,14p'
        bad=$((bad + 1))
    fi
done < <(find src include tests samples -type f \( -name '*.c' -o -name '*.h' -o -name '*.cpp' \) \
    -not -path '*/build/*' | sort)
if [ "$bad" -ne 0 ]; then
    echo "test_format: $bad file(s) to reformat ($("$cf" --version))"
    exit 1
fi
echo "test_format: every C file follows .clang-format"
