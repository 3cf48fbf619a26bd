#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# deps.sh — install the Debian packages weft needs, and only the ones that are missing.
#
#   ./scripts/deps.sh                 # the base group: what building weft and its tests needs
#   ./scripts/deps.sh base aarch64    # several groups
#   ./scripts/deps.sh --list all      # print the packages of the groups, install nothing
#
# or, from another bash script:
#
#   . scripts/deps.sh
#   weft_deps base || exit 1          # 0: everything is there now; 1: it could not be installed
#
# Groups:
#   base     build-essential cmake pkg-config libev-dev libboost-context-dev valgrind gdb python3
#            dpkg-dev man-db groff-base (the package stage: cpack -G DEB, dpkg-shlibdeps, man -l),
#            clang-format (test_format: the C follows .clang-format)
#   aarch64  the AArch64 cross check (scripts/test-aarch64.sh): cross gcc, its libc, qemu-user,
#            libev for arm64 (a multiarch package: NAME:arm64 adds the architecture to dpkg)
#   hook     the hook library's proofs (tests/hook/): hiredis, libcurl and a redis-server to
#            talk to; OpenSSL (library and CLI); libpq and a PostgreSQL server (the test runs
#            its own cluster as the `postgres` user the package creates) (scripts/test.sh
#            installs it with base)
#   bench    the benchmark peers only (tests/bench/run-bench.sh); scripts/test.sh never needs it
#            (the Tokio peer: Debian's cargo, rustc and packaged crates, built offline)
#   all      all of the above
#
# A package counts as present when dpkg lists it as installed for this machine's architecture
# (or as Architecture: all). Missing ones are installed with one `apt-get update` (at most once
# per script run) and `apt-get install -y --no-install-recommends`, through sudo when not root.
# WEFT_NO_INSTALL=1 only reports what is missing and fails instead of installing.

WEFT_DEPS_BASE=(build-essential cmake pkg-config libev-dev libboost-context-dev valgrind gdb python3
    dpkg-dev man-db groff-base clang-format)
WEFT_DEPS_AARCH64=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user libev-dev:arm64)
WEFT_DEPS_HOOK=(libhiredis-dev libcurl4-openssl-dev redis-server libssl-dev openssl libpq-dev postgresql)
WEFT_DEPS_BENCH=(libboost-fiber-dev golang-go wrk redis-server redis-tools
    cargo rustc librust-tokio-dev librust-hyper-dev librust-libc-dev)

# 0 if package $1 is installed (status "ii") for the native architecture or as arch "all".
# dpkg-query rather than a bare `dpkg -s NAME`: with a foreign architecture enabled (arm64 for
# the cross check) `dpkg -s libev-dev` fails as "ambiguous" when both instances are installed,
# and reports success when only the foreign one is.
weft_pkg_installed() {
    local arch
    case $1 in *:*) # NAME:ARCH, a foreign architecture's package
        dpkg-query -W -f='${db:Status-Abbrev}\n' "$1" 2>/dev/null | grep -q '^ii'
        return
        ;;
    esac
    arch=$(dpkg --print-architecture 2>/dev/null) || return 1
    dpkg-query -W -f='${Architecture} ${db:Status-Abbrev}\n' "$1" 2>/dev/null |
        grep -Eq "^($arch|all) ii"
}

# The packages of the named groups, one a line.
weft_deps_list() {
    local g
    for g in "$@"; do
        case $g in
        base) printf '%s\n' "${WEFT_DEPS_BASE[@]}" ;;
        aarch64) printf '%s\n' "${WEFT_DEPS_AARCH64[@]}" ;;
        hook) printf '%s\n' "${WEFT_DEPS_HOOK[@]}" ;;
        bench) printf '%s\n' "${WEFT_DEPS_BENCH[@]}" ;;
        all) printf '%s\n' "${WEFT_DEPS_BASE[@]}" "${WEFT_DEPS_AARCH64[@]}" "${WEFT_DEPS_HOOK[@]}" "${WEFT_DEPS_BENCH[@]}" ;;
        *)
            echo "weft: deps.sh: unknown package group '$g' (base, hook, aarch64, bench, all)" >&2
            return 2
            ;;
        esac
    done
}

# weft_deps GROUP...: make sure every package of the groups is installed. Returns 0 or 1.
weft_deps() {
    local groups=("$@") pkgs missing=() p sudo=""
    [ ${#groups[@]} -gt 0 ] || groups=(base)
    pkgs=$(weft_deps_list "${groups[@]}") || return 1
    if ! command -v dpkg-query >/dev/null 2>&1; then
        echo "weft: no dpkg here (not Debian/Ubuntu?): make sure these are installed yourself:" "${pkgs//$'\n'/ }" >&2
        return 0
    fi
    for p in $pkgs; do
        weft_pkg_installed "$p" || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "weft: packages present (${groups[*]})"
        return 0
    fi
    if [ "${WEFT_NO_INSTALL:-0}" = 1 ]; then
        echo "weft: missing packages: ${missing[*]} (WEFT_NO_INSTALL=1: not installing them)" >&2
        return 1
    fi
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=sudo
        else
            echo "weft: missing packages: ${missing[*]}; not root and no sudo: install them as root:" >&2
            echo "weft:   apt-get install ${missing[*]}" >&2
            return 1
        fi
    fi
    echo "weft: installing missing packages: ${missing[*]}"
    local a
    for p in "${missing[@]}"; do # NAME:ARCH needs ARCH known to dpkg (and a new apt-get update)
        case $p in *:*)
            a=${p#*:}
            if ! dpkg --print-foreign-architectures | grep -qx "$a"; then
                echo "weft: dpkg --add-architecture $a"
                $sudo dpkg --add-architecture "$a" || return 1
                WEFT_APT_UPDATED=0
            fi
            ;;
        esac
    done
    if [ "${WEFT_APT_UPDATED:-0}" != 1 ]; then
        echo "weft: apt-get update"
        if ! $sudo apt-get -o DPkg::Lock::Timeout=300 update -qq; then
            echo "weft: 'apt-get update' failed: cannot install ${missing[*]}" >&2
            return 1
        fi
        WEFT_APT_UPDATED=1
    fi
    if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q \
        --no-install-recommends "${missing[@]}"; then
        echo "weft: 'apt-get install ${missing[*]}' failed" >&2
        return 1
    fi
    for p in "${missing[@]}"; do
        if ! weft_pkg_installed "$p"; then
            echo "weft: $p is still not installed after apt-get install" >&2
            return 1
        fi
    done
    echo "weft: installed ${missing[*]}"
}

# Run as a script (not sourced): install the groups named on the command line.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    if [ "${1:-}" = "--list" ]; then
        shift
        weft_deps_list "${@:-base}"
        exit
    fi
    case ${1:-} in -h | --help)
        sed -n '3,/^$/s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    esac
    weft_deps "$@"
fi
