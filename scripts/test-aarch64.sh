#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test-aarch64.sh — build tests/test_fcontext.c with the aarch64 context switch and run it under
# qemu-user. No CMake needed. Installs the cross tools with apt-get when they are missing.
#
#   scripts/test-aarch64.sh            # -O0 and -O2, FPU save on and off
#   CFLAGS_EXTRA=-mbranch-protection=standard scripts/test-aarch64.sh
#
# Exits non-zero if anything fails to install, build or pass.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cc=aarch64-linux-gnu-gcc
sysroot=/usr/aarch64-linux-gnu
qemu="qemu-aarch64"

# --- tools -------------------------------------------------------------------------------
need=()
command -v "$cc" >/dev/null 2>&1 || need+=(gcc-aarch64-linux-gnu)
[ -e "$sysroot/include/stdio.h" ] || need+=(libc6-dev-arm64-cross)
command -v "$qemu" >/dev/null 2>&1 || need+=(qemu-user)
if [ ${#need[@]} -gt 0 ]; then
    sudo=
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || {
            echo "test-aarch64: missing ${need[*]} and not root (no sudo): install them" >&2
            exit 1
        }
        sudo=sudo
    fi
    echo "test-aarch64: installing ${need[*]} (apt-get update && apt-get install -y ...)"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${need[@]}"
fi

# --- build and run -----------------------------------------------------------------------
out=$(mktemp -d "${TMPDIR:-/tmp}/weft-aarch64.XXXXXX")
trap 'rm -rf "$out"' EXIT

status=0
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
    if "$qemu" -L "$sysroot" "$exe"; then
        echo "test-aarch64: [$name] ok"
    else
        echo "test-aarch64: [$name] FAILED (exit $?)" >&2
        status=1
    fi
}

run_one O2 -O2
run_one O0 -O0 -g
run_one O2-nofpu -O2 -DWEFT_NO_FPU_SAVE

if [ $status -ne 0 ]; then
    echo "test-aarch64: FAILED" >&2
else
    echo "test-aarch64: all passed"
fi
exit $status
