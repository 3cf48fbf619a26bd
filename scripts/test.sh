#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test.sh — install what is missing, then build and run weft's whole test suite, in stages.
#
#   ./scripts/test.sh                  # every stage (CI runs this through .ci/run)
#   ./scripts/test.sh --quick          # release + asan only, for local iteration
#   ./scripts/test.sh --only tsan,install
#   ./scripts/test.sh --skip valgrind,aarch64
#   ./scripts/test.sh --list           # the stages, one a line
#
# Each stage but install and fuzz is a workflow of CMakePresets.json, run as
# `cmake --workflow --preset <stage>` (configure, build, ctest; the same command by hand runs
# one stage, without the probes and package installs done here). This script adds what shell
# is for: installing packages (scripts/deps.sh), probes (TSan's mapping, qemu), the busy loops
# of the contended stage, the install/package checks and the summary.
#
# Stages (each builds in its own tree under build/; a tree is reused and rebuilt incrementally):
#   release   Release, -DWEFT_WERROR=ON, asm context switch: ctest            (build/release)
#   migrate   the release tree again, ctest with WEFT_DEBUG_MIGRATE=1 (coroutines move to
#             another worker at every yield and park)                        (build/release)
#   contended the release tree again, ctest while one busy loop per CPU competes for every
#             core (a test that assumes something happens "soon enough" fails here, in CI,
#             rather than on a loaded user machine; the loops are killed however it ends)
#   narrow    the release tree again, ctest with WEFT_NARROW=1 (the runtime never widens:
#             fd waits gather on worker 0, idle workers are not woken for local work)
#   segmented -DWEFT_SEGMENTED_STACKS=ON (gcc split stacks + gold, 2 KiB first segments, the
#             whole suite incl. test_segstack; run once more with WEFT_DEBUG_MIGRATE=1)
#                                                                        (build/segmented)
#   boost     -DWEFT_CONTEXT=boost (Boost.Context's switch): ctest             (build/boost)
#   ucontext  -DWEFT_CONTEXT=ucontext: ctest                                   (build/ucontext)
#   asan      Debug, -DWEFT_SANITIZE=address,undefined: ctest                  (build/asan)
#   tsan      RelWithDebInfo, -DWEFT_SANITIZE=thread: ctest                    (build/tsan)
#   valgrind  RelWithDebInfo; the tests labelled memcheck (tests/CMakeLists.txt) run under
#             valgrind through `ctest -T memcheck` (test_memcheck)            (build/valgrind)
#   install   `cmake --install` of build/release into a temporary prefix, then tests/install/
#             built against it with find_package(weft) and with pkg-config, shared and static;
#             then the Debian package (cpack -G DEB in build/package, default build type,
#             prefix /usr) unpacked into a scratch root: debug info, the gdb extension where
#             gdb auto-loads it, man pages (tests/test_man.sh, `man weft_chan_send`), and the
#             same consumers built against the unpacked root      (build/release, build/package)
#   aarch64   scripts/test-aarch64.sh: the whole suite cross-built for AArch64 and run under
#             qemu-user, and the raw switch at -O0 and without FPU saves     (build/aarch64)
#             (skipped, not failed, when the cross packages cannot be installed)
#   fuzz      scripts/fuzz.sh --smoke --seconds 45: libFuzzer + ASan/UBSan on the scheduler and
#             channels (tests/fuzz/fuzz_sched.c)                        (build/fuzz-libfuzzer)
#             (skipped, not failed, when clang with libFuzzer cannot be installed)
#
# Ends with the line "N passed, N failed" (", N skipped" follows when a stage was skipped),
# counting stages; exits non-zero when a stage failed.
#
# Environment:
#   WEFT_TEST_JOBS      parallel build and ctest jobs (default 2)
#   WEFT_STAGE_TIMEOUT  seconds one workflow / test-aarch64 / fuzz run may take (default 1800)
#   WEFT_NO_INSTALL=1   never run apt-get (a missing package then fails the run)
#
# The simulation stress tests (*_seeds: tests/test_seeds.sh) run 200 seeds per test in release,
# segmented, boost and ucontext, 30 in asan and tsan (the build's WEFT_STRESS_SEEDS), and 20 in
# migrate, contended, narrow and segmented's migrate run (WEFT_STRESS_SEEDS=20 in their test
# presets, CMakePresets.json): a seeded
# run has one worker, so debug migration and narrow mode do not apply to it and it replays the
# same interleavings as the stage before — only a smoke run is worth its time there.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/deps.sh
. scripts/deps.sh

ALL_STAGES=(release migrate contended narrow segmented boost ucontext asan tsan valgrind install aarch64 fuzz)
QUICK_STAGES=(release asan)
JOBS=${WEFT_TEST_JOBS:-2}
STAGE_TIMEOUT=${WEFT_STAGE_TIMEOUT:-1800}

log() { echo "weft: $*"; }
die() {
    echo "weft: $*" >&2
    exit 2
}
usage() {
    sed -n '3,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"
}
fmt_secs() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# ---- options ----------------------------------------------------------------------------------
is_stage() {
    local s
    for s in "${ALL_STAGES[@]}"; do [ "$s" = "$1" ] && return 0; done
    return 1
}
split_stages() { # "a,b": the checked names into the array `parsed`
    local s
    parsed=()
    for s in ${1//,/ }; do
        is_stage "$s" || die "unknown stage '$s' (stages: ${ALL_STAGES[*]})"
        parsed+=("$s")
    done
}

selected=("${ALL_STAGES[@]}")
skip=()
while [ $# -gt 0 ]; do
    case $1 in
    --quick) selected=("${QUICK_STAGES[@]}") ;;
    --only)
        [ $# -ge 2 ] || die "--only needs a list of stages"
        split_stages "$2"
        selected=(${parsed[@]+"${parsed[@]}"})
        shift
        ;;
    --only=*)
        split_stages "${1#--only=}"
        selected=(${parsed[@]+"${parsed[@]}"})
        ;;
    --skip)
        [ $# -ge 2 ] || die "--skip needs a list of stages"
        split_stages "$2"
        skip+=(${parsed[@]+"${parsed[@]}"})
        shift
        ;;
    --skip=*)
        split_stages "${1#--skip=}"
        skip+=(${parsed[@]+"${parsed[@]}"})
        ;;
    --no-install) export WEFT_NO_INSTALL=1 ;;
    --list)
        printf '%s\n' "${ALL_STAGES[@]}"
        exit 0
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done
# Keep the canonical order whatever order --only named them in.
stages=()
for s in "${ALL_STAGES[@]}"; do
    want=0
    for x in "${selected[@]}"; do [ "$x" = "$s" ] && want=1; done
    for x in ${skip[@]+"${skip[@]}"}; do [ "$x" = "$s" ] && want=0; done
    if [ $want = 1 ]; then stages+=("$s"); fi
done
[ ${#stages[@]} -gt 0 ] || die "no stage selected"

# ---- helpers ----------------------------------------------------------------------------------
# Parallel jobs for `cmake --build` and ctest, through their own variables (the presets name
# no job count, so that a workflow by hand uses the machine's defaults).
export CMAKE_BUILD_PARALLEL_LEVEL=$JOBS CTEST_PARALLEL_LEVEL=$JOBS
[ -f CMakePresets.json ] || die "CMakePresets.json is missing"

workflow() { # PRESET [WRAPPER...]: cmake --workflow --preset PRESET, under the stage timeout
    local preset=$1
    shift
    log "cmake --workflow --preset $preset${*:+ under $*}"
    "$@" timeout -k 30 "$STAGE_TIMEOUT" cmake --workflow --preset "$preset"
}

build_tree() { # PRESET: configure and build build/PRESET (the install stage)
    log "configuring and building build/$1 (preset $1, -j$JOBS)"
    cmake --preset "$1"
    cmake --build --preset "$1"
}

# ---- stages -----------------------------------------------------------------------------------
# Each runs in a subshell with `set -e`: 0 passed, 77 skipped, anything else failed.

stage_release() { workflow release; }
stage_migrate() { workflow migrate; }  # the release tree, WEFT_DEBUG_MIGRATE=1
stage_narrow() { workflow narrow; }    # the release tree, WEFT_NARROW=1
stage_segmented() { workflow segmented; } # then again with WEFT_DEBUG_MIGRATE=1
stage_boost() { workflow boost; }
stage_ucontext() { workflow ucontext; }
stage_asan() { workflow asan; }        # ASAN_OPTIONS / UBSAN_OPTIONS: the test preset
stage_valgrind() { workflow valgrind; } # test_memcheck: ctest -T memcheck -L memcheck

stage_contended() {
    local n
    n=$(nproc)
    # Not local: the EXIT trap runs after the function has returned. The stage is a subshell,
    # so the trap fires when it ends, however (a failure, a timeout, an interrupt), and
    # keeps its status.
    spinners=()
    trap 'rc=$?; kill "${spinners[@]}" 2>/dev/null || true; wait "${spinners[@]}" 2>/dev/null || true; exit $rc' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    for _ in $(seq "$n"); do
        sh -c 'while :; do :; done' &
        spinners+=($!)
    done
    log "$n busy loops compete for the CPUs (pids ${spinners[*]})"
    workflow contended # the release tree (up to date after the release stage)
}

# gcc 12's TSan runtime aborts with "unexpected memory mapping" (or a failed shadow mapping) on
# kernels that place mmaps with more entropy than it expects (vm.mmap_rnd_bits > 28). Try a
# trivial TSan program first; only if it fails, and passes with ASLR off, run under setarch -R.
tsan_wrapper=()
tsan_probe() {
    local dir=build/tsan-probe out
    mkdir -p "$dir"
    cat >"$dir/probe.c" <<'EOF'
#include <pthread.h>
static int shared;
static void *run(void *p) { __atomic_fetch_add(&shared, 1, __ATOMIC_RELAXED); return p; }
int main(void)
{
    pthread_t t;
    if (pthread_create(&t, 0, run, 0)) return 1;
    __atomic_fetch_add(&shared, 1, __ATOMIC_RELAXED);
    pthread_join(t, 0);
    return __atomic_load_n(&shared, __ATOMIC_RELAXED) == 2 ? 0 : 1;
}
EOF
    cc -fsanitize=thread -g -O1 "$dir/probe.c" -o "$dir/probe" -pthread
    if out=$("$dir/probe" 2>&1); then
        log "TSan probe runs as is (vm.mmap_rnd_bits=$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo '?')): no workaround"
        return 0
    fi
    log "TSan probe FAILED as is (vm.mmap_rnd_bits=$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo '?')):"
    printf '%s\n' "$out" | head -5 | sed 's/^/    /'
    local arch
    arch=$(uname -m)
    if out=$(setarch "$arch" -R "$dir/probe" 2>&1); then
        log "TSan probe passes with ASLR off: running the TSan tests under 'setarch $arch -R'"
        tsan_wrapper=(setarch "$arch" -R)
        return 0
    fi
    log "TSan probe fails with ASLR off too:"
    printf '%s\n' "$out" | head -5 | sed 's/^/    /'
    return 1
}

stage_tsan() {
    tsan_probe
    # setarch -R (when needed) is inherited by everything the workflow starts; TSAN_OPTIONS:
    # the test preset.
    workflow tsan ${tsan_wrapper[@]+"${tsan_wrapper[@]}"}
}

check_needed() { # EXE yes|no: whether EXE's dynamic section needs libweft.so
    local needed
    needed=$(readelf -d "$1" | grep NEEDED || true)
    if [ "$2" = yes ] && ! grep -q 'libweft\.so' <<<"$needed"; then
        log "install: $1 does not link libweft.so dynamically:"
        printf '%s\n' "$needed"
        return 1
    fi
    if [ "$2" = no ] && grep -q 'libweft\.so' <<<"$needed"; then
        log "install: $1 should link weft statically but needs libweft.so"
        return 1
    fi
}

run_install_exe() { # EXE [ENV=VALUE...]: run, and check it says ok
    local exe=$1 out
    shift
    log "install: running ${*:+$* }$exe"
    out=$(env "$@" timeout 120 "$exe")
    printf '%s\n' "$out"
    grep -qx 'install-test: ok' <<<"$out"
}

# check_consumers PREFIX WORKDIR TAG: tests/install/ built against the weft installed in
# PREFIX, with find_package(weft) and with pkg-config, shared and static, and run.
check_consumers() {
    local prefix=$1 work=$2 tag=$3
    # (a) CMake: find_package(weft), weft::weft and weft::weft_static
    log "$tag: (a) find_package(weft) via CMAKE_PREFIX_PATH=$prefix"
    cmake -S tests/install -B "$work/b1" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release
    local found
    found=$(sed -n 's/^weft_DIR:PATH=//p' "$work/b1/CMakeCache.txt")
    case $found in
    "$prefix"/*) log "$tag: found weft at $found" ;;
    *)
        log "$tag: find_package(weft) found '$found', not the one in $prefix"
        return 1
        ;;
    esac
    # The exported targets name libev through find_dependency, not the build machine's path.
    if grep -l 'libev\.so\|libev\.a' "$found"/weftTargets*.cmake; then
        log "$tag: the exported targets hard-code a libev path (above)"
        return 1
    fi
    cmake --build "$work/b1" -j"$JOBS"
    check_needed "$work/b1/use_shared" yes
    check_needed "$work/b1/use_static" no
    run_install_exe "$work/b1/use_shared"
    run_install_exe "$work/b1/use_static"
    run_install_exe "$work/b1/use_hook" # weft::hook (libweft-hook)

    # (b) pkg-config, shared and static
    local pc
    pc=$(find "$prefix" -name weft.pc -path '*/pkgconfig/*' | head -1)
    [ -n "$pc" ] || { log "$tag: no weft.pc installed under $prefix"; return 1; }
    export PKG_CONFIG_PATH=${pc%/weft.pc}
    log "$tag: (b) pkg-config with PKG_CONFIG_PATH=$PKG_CONFIG_PATH"
    local pcflags=() pcprefix
    pcprefix=$(pkg-config --variable=prefix weft)
    if [ "$(realpath -m "$pcprefix")" != "$(realpath -m "$prefix")" ]; then
        log "$tag: WARNING: the installed weft.pc says prefix=$pcprefix, not $prefix: it is fixed"
        log "$tag:   at configure time (CMAKE_INSTALL_PREFIX) and not relocated by"
        log "$tag:   'cmake --install --prefix'; testing with --define-variable=prefix=$prefix"
        pcflags=(--define-variable=prefix="$prefix")
    fi
    local cflags libs slibs libdir
    cflags=$(pkg-config "${pcflags[@]}" --cflags weft)
    libs=$(pkg-config "${pcflags[@]}" --libs weft)
    slibs=$(pkg-config "${pcflags[@]}" --static --libs weft)
    libdir=$(pkg-config "${pcflags[@]}" --variable=libdir weft)
    log "$tag: cflags: $cflags"
    log "$tag: libs: $libs"
    log "$tag: libs --static: $slibs"
    if [ ! -e "$libdir/libweft.so" ] || [ ! -e "$libdir/libweft.a" ]; then
        log "$tag: libdir=$libdir has no libweft.so / libweft.a"
        return 1
    fi
    # Only the ordinary flags of the .pc; the static link asks for libweft.a explicitly.
    # shellcheck disable=SC2086
    cc -Wall -Wextra -Werror tests/install/main.c $cflags $libs -o "$work/pc_shared"
    # shellcheck disable=SC2086
    cc -Wall -Wextra -Werror tests/install/main.c $cflags \
        ${slibs/-lweft/-Wl,-Bstatic -lweft -Wl,-Bdynamic} -o "$work/pc_static"
    check_needed "$work/pc_shared" yes
    check_needed "$work/pc_static" no
    run_install_exe "$work/pc_shared" LD_LIBRARY_PATH="$libdir"
    run_install_exe "$work/pc_static"
    # libweft-hook through pkg-config weft-hook
    # shellcheck disable=SC2046
    cc -Wall -Wextra -Werror tests/install/hook_main.c \
        $(pkg-config "${pcflags[@]}" --cflags --libs weft-hook) -o "$work/pc_hook"
    run_install_exe "$work/pc_hook" LD_LIBRARY_PATH="$libdir"
}

# check_package ROOT: what the Debian package adds for a newcomer, in the unpacked ROOT:
# debug info, the gdb extension where gdb auto-loads it, man pages that man finds and shows.
check_package() {
    local root=$1
    local so real
    so=$(find "$root" -name libweft.so -path '*/lib*' | head -1)
    [ -n "$so" ] || { log "package: no libweft.so"; return 1; }
    real=$(readlink -f "$so")
    log "package: library ${real#"$root"}, SONAME $(readelf -d "$real" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')"
    readelf -S "$real" | grep '\.debug_info' >/dev/null ||
        { log "package: ${real#"$root"} has no debug info (the default build is -O2 -g)"; return 1; }
    # gdb loads <data-directory>/auto-load/<the library's real path>-gdb.py for the library.
    local py=$root/usr/share/gdb/auto-load${real#"$root"}-gdb.py
    [ -f "$py" ] || { log "package: no gdb extension at ${py#"$root"}"; return 1; }
    log "package: gdb extension at ${py#"$root"}"
    if command -v gdb >/dev/null 2>&1; then
        gdb -nx -batch -x "$py" -ex 'help weft' 2>&1 | grep 'weft workers' >/dev/null ||
            { log "package: gdb cannot load ${py#"$root"}"; return 1; }
    fi
    # man pages: every function the libraries export has one (tests/test_man.sh; libweft-hook's
    # too, when the package has it), and man shows them.
    local hook libs=$real
    hook=$(find "$root" -name libweft-hook.so -path '*/lib*' | head -1)
    [ -z "$hook" ] || libs=$real:$(readlink -f "$hook")
    bash tests/test_man.sh "$libs" "$root/usr/share/man"
    local page
    page=$(MANPATH=$root/usr/share/man MANWIDTH=80 man weft_chan_send 2>&1) || true
    grep -q 'weft_chan_send' <<<"$page" && grep -q 'DESCRIPTION' <<<"$page" ||
        { log "package: 'man weft_chan_send' does not show the page: $page"; return 1; }
    log "package: man weft_chan_send, man 7 weft: ok"
    MANPATH=$root/usr/share/man man 7 weft >/dev/null
}

stage_install() {
    build_tree release
    local tmp
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-install.XXXXXX")
    # shellcheck disable=SC2064  # expand now
    trap "rm -rf '$tmp'" EXIT
    local prefix=$tmp/prefix
    log "install: cmake --install build/release --prefix $prefix"
    cmake --install build/release --prefix "$prefix" >"$tmp/install.log" ||
        { cat "$tmp/install.log"; return 1; }
    (cd "$prefix" && find . -type f -o -type l | sort | sed 's|^\./|    |')
    check_consumers "$prefix" "$tmp/c1" install

    # The Debian package, from a tree with the default (debuggable) build type and /usr, as a
    # distribution would build it; unpacked into a scratch root (no root rights, no dpkg -i).
    build_tree package
    grep -q '^CMAKE_BUILD_TYPE:STRING=RelWithDebInfo$' build/package/CMakeCache.txt ||
        { log "package: the default build type is not RelWithDebInfo"; return 1; }
    rm -f build/package/weft_*.deb
    (cd build/package && cpack -G DEB)
    local deb
    deb=$(ls build/package/weft_*.deb)
    log "package: $deb"
    dpkg-deb --info "$deb"
    dpkg-deb -x "$deb" "$tmp/root"
    (cd "$tmp/root" && find . -type f -o -type l | sort | sed 's|^\./|    |') | grep -v '/man3/'
    check_package "$tmp/root"
    check_consumers "$tmp/root/usr" "$tmp/c2" package
}

stage_aarch64() {
    if ! weft_deps aarch64; then
        log "aarch64: the cross packages (${WEFT_DEPS_AARCH64[*]}) could not be installed: skipping"
        return 77
    fi
    [ -f scripts/test-aarch64.sh ] || { log "aarch64: scripts/test-aarch64.sh is missing"; return 1; }
    timeout -k 30 "$STAGE_TIMEOUT" bash scripts/test-aarch64.sh
}

stage_fuzz() {
    [ -f scripts/fuzz.sh ] || { log "fuzz: scripts/fuzz.sh is missing"; return 1; }
    WEFT_TEST_JOBS=$JOBS timeout -k 30 "$STAGE_TIMEOUT" bash scripts/fuzz.sh --smoke --seconds 45
}

# ---- main -------------------------------------------------------------------------------------
t0=$(date +%s)
log "test.sh: stages ${stages[*]} (jobs $JOBS) in $root"
weft_deps base hook || {
    echo "weft: could not install the packages weft needs (see above)" >&2
    exit 1
}

results=()
n_pass=0 n_fail=0 n_skip=0
i=0
for s in "${stages[@]}"; do
    i=$((i + 1))
    echo
    echo "==================== weft: stage $i/${#stages[@]}: $s ===================="
    st=$(date +%s)
    set +e
    (
        set -euo pipefail
        "stage_$s"
    )
    rc=$?
    set -e
    dur=$(($(date +%s) - st))
    case $rc in
    0)
        res=passed
        n_pass=$((n_pass + 1))
        ;;
    77)
        res=skipped
        n_skip=$((n_skip + 1))
        ;;
    *)
        res="FAILED (exit $rc)"
        n_fail=$((n_fail + 1))
        ;;
    esac
    echo "==================== weft: stage $s: $res in $(fmt_secs $dur) ===================="
    results+=("$(printf '%-9s %-16s %s' "$s" "$res" "$(fmt_secs $dur)")")
done

echo
echo "==================== weft: summary ===================="
printf '  %s\n' "${results[@]}"
echo "  total $(fmt_secs $(($(date +%s) - t0)))"
if [ $n_skip -gt 0 ]; then
    echo "$n_pass passed, $n_fail failed, $n_skip skipped"
else
    echo "$n_pass passed, $n_fail failed"
fi
[ $n_fail -eq 0 ]
