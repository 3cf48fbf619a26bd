#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test-aarch64.sh — weft on AArch64 under qemu-user: the library and the whole test suite
# cross-built (CMakePresets.json "aarch64": cmake/toolchain-aarch64.cmake, libev from Debian's
# arm64 multiarch) and run by ctest through qemu-aarch64, then tests/test_fcontext.c alone at
# -O0 and without FPU saves (the suite's build is -O2 with them). Installs what is missing
# (scripts/deps.sh aarch64).
#
#   scripts/test-aarch64.sh
#   CFLAGS_EXTRA=-mbranch-protection=standard scripts/test-aarch64.sh   # the raw switch only
#
# Iteration counts are divided by 10 under qemu (WEFT_TEST_SCALE in the test preset).
# Exits non-zero if anything fails to install, build or pass.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cc=aarch64-linux-gnu-gcc
sysroot=/usr/aarch64-linux-gnu
qemu="qemu-aarch64"

# --- tools -------------------------------------------------------------------------------
# shellcheck source=scripts/deps.sh
. "$root/scripts/deps.sh"
weft_deps aarch64 || { echo "test-aarch64: the cross packages could not be installed" >&2; exit 1; }

# --- the whole suite ----------------------------------------------------------------------
status=0
t0=$(date +%s)
(cd "$root" && cmake --workflow --preset aarch64) || status=1
echo "test-aarch64: the suite under qemu took $(($(date +%s) - t0)) s"

# --- build and run -----------------------------------------------------------------------
out=$(mktemp -d "${TMPDIR:-/tmp}/weft-aarch64.XXXXXX")
trap 'rm -rf "$out"' EXIT

run_one() { # name, extra cflags...
    local name=$1
    shift
    local exe="$out/test_fcontext-$name"
    echo "test-aarch64: [$name] $cc $* ${CFLAGS_EXTRA:-}"
    # shellcheck disable=SC2086  # CFLAGS_EXTRA is a list of flags
    if ! "$cc" -std=c11 -Wall -Wextra -Werror "$@" ${CFLAGS_EXTRA:-} -I"$root/src/core" \
        "$root/tests/test_fcontext.c" "$root/src/arch/jump_aarch64_aapcs_elf.S" -o "$exe"; then
        echo "test-aarch64: [$name] BUILD FAILED" >&2
        status=1
        return
    fi
    if "$qemu" -L "$sysroot" -E LD_LIBRARY_PATH="$sysroot/lib" "$exe"; then
        echo "test-aarch64: [$name] ok"
    else
        echo "test-aarch64: [$name] FAILED (exit $?)" >&2
        status=1
    fi
}

run_one O0 -O0 -g
run_one O2-nofpu -O2 -DWEFT_NO_FPU_SAVE

if [ $status -ne 0 ]; then
    echo "test-aarch64: FAILED" >&2
else
    echo "test-aarch64: all passed"
fi
exit $status
