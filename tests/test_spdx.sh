#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_spdx.sh SOURCE_DIR — every source file of the tree names its license (an SPDX line in
# its first three lines); names the files that do not.
set -u
cd "$1" || exit 2
missing=0
while IFS= read -r f; do
    if ! head -n 3 "$f" | grep -q 'SPDX-License-Identifier: MIT'; then
        echo "test_spdx: no 'SPDX-License-Identifier: MIT' line at the top of $f"
        missing=$((missing + 1))
    fi
done < <(find src include tests samples scripts cmake .ci -type f \
    \( -name '*.c' -o -name '*.h' -o -name '*.S' -o -name '*.sh' -o -name '*.py' \
       -o -name '*.cmake' -o -name '*.in' -o -name '*.go' -o -name '*.cpp' \
       -o -name '*.rs' -o -name '*.toml' -o -name CMakeLists.txt -o -name run \) -not -path '*/build/*' | sort)
[ -f CMakeLists.txt ] && ! head -n 3 CMakeLists.txt | grep -q 'SPDX-License-Identifier: MIT' &&
    { echo "test_spdx: no SPDX line at the top of CMakeLists.txt"; missing=$((missing + 1)); }
if [ "$missing" -ne 0 ]; then
    echo "test_spdx: $missing file(s) without a license line (the project is MIT: LICENSE)"
    exit 1
fi
echo "test_spdx: every source file names its license"
