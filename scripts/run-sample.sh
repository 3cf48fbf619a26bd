#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run-sample.sh — install what is missing, build weft (Release) and run the flagship sample.
#
#   ./scripts/run-sample.sh [ARGS...]      # ARGS are passed to the sample
#
# Builds into build/release (the tree scripts/test.sh also uses) and runs
# build/release/samples/merge_streams, or samples/hello while merge_streams does not exist yet.
# WEFT_SAMPLE=NAME runs another sample target instead. WEFT_NO_INSTALL=1 skips apt-get.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/deps.sh
. scripts/deps.sh

bdir=build/release
jobs=${WEFT_TEST_JOBS:-$(nproc 2>/dev/null || echo 2)}

weft_deps base || {
    echo "weft: could not install the packages weft needs (see above)" >&2
    exit 1
}

# While a part of the tree is still being written, configure without it rather than fail
# (always explicit: the options are cached, and an OFF must not outlive the missing file).
opts=(-DWEFT_BUILD_SAMPLES=ON -DWEFT_BUILD_BENCH=ON)
[ -f samples/CMakeLists.txt ] || opts[0]=-DWEFT_BUILD_SAMPLES=OFF
[ -f tests/bench/CMakeLists.txt ] || opts[1]=-DWEFT_BUILD_BENCH=OFF

echo "weft: configuring $bdir (Release)"
cmake -S . -B "$bdir" -DCMAKE_BUILD_TYPE=Release "${opts[@]}" --log-level=WARNING

targets=$(cmake --build "$bdir" --target help) # "... NAME" (Makefiles) or "NAME: phony" (Ninja)
has_target() {
    grep -Eq "(^|[ .])$1(:| |\$)" <<<"$targets"
}

if [ -n "${WEFT_SAMPLE:-}" ]; then
    sample=$WEFT_SAMPLE
elif has_target merge_streams; then
    sample=merge_streams
elif has_target hello; then
    echo "weft: no target merge_streams yet; running the hello sample instead"
    sample=hello
else
    echo "weft: neither samples/merge_streams nor samples/hello is a target of this build" >&2
    exit 1
fi

echo "weft: building $sample"
cmake --build "$bdir" --target "$sample" -j"$jobs"

exe=$bdir/samples/$sample
if [ ! -x "$exe" ]; then
    echo "weft: built $sample but $exe is not there" >&2
    exit 1
fi
echo "weft: running samples/$sample${*:+ $*}"
exec "$exe" "$@"
