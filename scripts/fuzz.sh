#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# fuzz.sh — fuzz weft's single-worker scheduler and channels (tests/fuzz/fuzz_sched.c).
#
#   ./scripts/fuzz.sh                      # libFuzzer + ASan/UBSan for 60 s
#   ./scripts/fuzz.sh --seconds 300        # longer
#   ./scripts/fuzz.sh --engine afl         # AFL++ (afl-clang-fast, persistent mode) instead
#   ./scripts/fuzz.sh --jobs 2             # libFuzzer: parallel fuzzing processes
#   ./scripts/fuzz.sh --smoke              # CI: short run; exit 77 if no fuzzer can be had
#   ./scripts/fuzz.sh --replay FILE|DIR... # run inputs through the fuzzing build once
#   ./scripts/fuzz.sh -- -max_len=2048     # extra arguments for the fuzzer
#
# Installs what is missing with apt-get (clang, with libFuzzer from libclang-rt-NN-dev; or
# afl++), builds build/fuzz-<engine>/ (clang, -DWEFT_SANITIZE=address,undefined, the library
# instrumented for coverage) and fuzzes for --seconds. The corpus lives in build/fuzz/corpus
# (seeded with the harness's built-in regression inputs), crashes and hangs in
# build/fuzz/artifacts. Exit status: 0 when nothing was found, 1 when the fuzzer reported a
# crash/leak/timeout (the artifact path and a replay command are printed), 2 on usage or build
# errors, 77 (--smoke) when no fuzzer could be installed.
#
# A finding is replayed without the fuzzer by the standalone harness of any build tree:
#   build/release/tests/fuzz_sched build/fuzz/artifacts/crash-...
# Worth keeping? Add its hex to `regressions[]` in tests/fuzz/fuzz_sched.c (the test suite's
# test_fuzz_replay runs them). See tests/fuzz/README.md.
#
# Environment: WEFT_NO_INSTALL=1 never runs apt-get; CC overrides the clang to use;
# WEFT_TEST_JOBS build parallelism (default 2).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

seconds=60
engine=libfuzzer
jobs=1
smoke=0
replay=()
extra=()
JOBS=${WEFT_TEST_JOBS:-2}

log() { echo "fuzz: $*"; }
die() {
    echo "fuzz: $*" >&2
    exit 2
}
usage() { sed -n '3,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; }

while [ $# -gt 0 ]; do
    case $1 in
    --seconds) seconds=${2:?}; shift ;;
    --seconds=*) seconds=${1#--seconds=} ;;
    --engine) engine=${2:?}; shift ;;
    --engine=*) engine=${1#--engine=} ;;
    --jobs) jobs=${2:?}; shift ;;
    --jobs=*) jobs=${1#--jobs=} ;;
    --smoke) smoke=1 ;;
    --no-install) export WEFT_NO_INSTALL=1 ;;
    --replay)
        shift
        while [ $# -gt 0 ] && [ "$1" != -- ]; do replay+=("$1"); shift; done
        continue
        ;;
    --) shift; extra=("$@"); break ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done
case $engine in libfuzzer | afl) ;; *) die "--engine must be libfuzzer or afl" ;; esac
[[ $seconds =~ ^[0-9]+$ ]] || die "--seconds needs a number"

unavailable() { # the fuzzer cannot be had here
    if [ $smoke = 1 ]; then
        log "$*: skipping the fuzz smoke run"
        exit 77
    fi
    die "$*"
}

apt_install() { # PKG...: install with apt-get unless forbidden
    if [ "${WEFT_NO_INSTALL:-0}" = 1 ]; then
        log "missing: $* (WEFT_NO_INSTALL=1: not installing)"
        return 1
    fi
    command -v apt-get >/dev/null 2>&1 || { log "no apt-get: install $* yourself"; return 1; }
    local sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    log "installing $*"
    $sudo apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" \
        >/dev/null
}

# Can $CC link a libFuzzer target with ASan?
libfuzzer_works() {
    local d
    d=$(mktemp -d)
    printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$d/t.c"
    "$CC" -fsanitize=fuzzer,address "$d/t.c" -o "$d/t" >/dev/null 2>&1 && "$d/t" -runs=1 >/dev/null 2>&1
    local rc=$?
    rm -rf "$d"
    return $rc
}

need_libfuzzer() {
    CC=${CC:-clang}
    if command -v "$CC" >/dev/null 2>&1 && libfuzzer_works; then
        return 0
    fi
    # Debian: clang, with libFuzzer in libclang-rt-NN-dev (a dependency from clang-14 on).
    local v
    apt_install clang || true
    CC=${CC:-clang}
    if command -v clang >/dev/null 2>&1 && ! libfuzzer_works; then
        v=$(clang --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -1)
        [ -n "$v" ] && apt_install "libclang-rt-$v-dev" || true
    fi
    command -v "$CC" >/dev/null 2>&1 && libfuzzer_works
}

need_afl() {
    command -v afl-clang-fast >/dev/null 2>&1 || apt_install afl++ || true
    command -v afl-clang-fast >/dev/null 2>&1 && command -v afl-fuzz >/dev/null 2>&1
}

if [ $engine = libfuzzer ]; then
    need_libfuzzer || unavailable "clang with libFuzzer (-fsanitize=fuzzer) is not available"
    log "compiler: $(command -v "$CC") ($("$CC" --version | head -1))"
else
    need_afl || unavailable "AFL++ (afl-clang-fast, afl-fuzz) is not available"
    CC=afl-clang-fast
fi

# ---- build --------------------------------------------------------------------------------
bdir=build/fuzz-$engine
fdir=build/fuzz
mkdir -p "$fdir/corpus" "$fdir/artifacts"
cflags=
fuzz_opt=$engine
if [ $engine = libfuzzer ]; then
    cflags=-fsanitize=fuzzer-no-link # coverage instrumentation for the library too
fi
log "configuring $bdir"
CC=$CC cmake -S . -B "$bdir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEFT_SANITIZE=address,undefined \
    -DWEFT_CONTEXT=asm -DWEFT_WERROR=OFF -DWEFT_BUILD_TESTS=ON -DWEFT_BUILD_SAMPLES=OFF \
    -DWEFT_BUILD_BENCH=OFF -DWEFT_FUZZ="$fuzz_opt" -DCMAKE_C_FLAGS="$cflags" >"$fdir/cmake.log" ||
    { cat "$fdir/cmake.log"; die "cmake failed"; }
log "building fuzz_sched (-j$JOBS)"
cmake --build "$bdir" -j"$JOBS" --target fuzz_sched >"$fdir/build.log" 2>&1 ||
    { tail -30 "$fdir/build.log"; die "build failed"; }
bin=$bdir/tests/fuzz_sched

# Seed the corpus with the harness's regression inputs (hex strings in fuzz_sched.c).
n=0
while IFS= read -r hex; do
    hex=${hex// /}
    [ -n "$hex" ] || continue
    n=$((n + 1))
    f="$fdir/corpus/regression-$n"
    [ -e "$f" ] && continue
    bytes=
    for ((i = 0; i < ${#hex}; i += 2)); do bytes+="\\x${hex:i:2}"; done
    printf "%b" "$bytes" >"$f"
done < <(sed -n '/regressions\[\] = {/,/^};/s/^ *"\([0-9a-fA-F ]*\)".*/\1/p' tests/fuzz/fuzz_sched.c)

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

if [ ${#replay[@]} -gt 0 ]; then
    [ $engine = libfuzzer ] || die "--replay uses the libFuzzer build"
    log "replaying ${replay[*]}"
    exec "$bin" -runs=1 "${replay[@]}"
fi

# ---- fuzz ---------------------------------------------------------------------------------
before=$(ls "$fdir/artifacts" | wc -l)
rc=0
start=$(date +%s)
if [ $engine = libfuzzer ]; then
    args=(-max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -max_len=512
        -print_final_stats=1 -artifact_prefix="$fdir/artifacts/")
    if [ "$jobs" -gt 1 ]; then
        args+=(-jobs="$jobs" -workers="$jobs")
    fi
    log "running $bin for ${seconds}s: ${args[*]} ${extra[*]:-}"
    (cd "$root" && "$bin" "${args[@]}" ${extra[@]+"${extra[@]}"} "$fdir/corpus") \
        >"$fdir/fuzz.log" 2>&1 || rc=$?
    tail -25 "$fdir/fuzz.log"
else
    mkdir -p "$fdir/afl-out"
    export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1
    log "running afl-fuzz for ${seconds}s"
    afl-fuzz -V "$seconds" -t 30000 -m none -i "$fdir/corpus" -o "$fdir/afl-out" \
        ${extra[@]+"${extra[@]}"} -- "$bin" >"$fdir/fuzz.log" 2>&1 || rc=$?
    tail -25 "$fdir/fuzz.log"
    for f in "$fdir"/afl-out/default/crashes/id:* "$fdir"/afl-out/default/hangs/id:*; do
        [ -e "$f" ] && cp "$f" "$fdir/artifacts/"
    done
fi
after=$(ls "$fdir/artifacts" | wc -l)
log "fuzzed for $(($(date +%s) - start))s; corpus: $(ls "$fdir/corpus" | wc -l) inputs"
if [ "$after" -gt "$before" ] || { [ $engine = libfuzzer ] && [ $rc -ne 0 ]; }; then
    log "FOUND something (fuzzer exit $rc); artifacts in $fdir/artifacts:"
    ls -t "$fdir/artifacts" | head -10 | sed 's/^/    /'
    log "replay: $bin <artifact>   or   build/release/tests/fuzz_sched <artifact>"
    exit 1
fi
log "nothing found"
