#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run-bench.sh — benchmark weft against its peers (Go goroutines, Tokio, Boost.Context,
# Boost.Fiber, pthreads, and for the servers Go net/http, Tokio + hyper and redis-server).
#
# The one command:   tests/bench/run-bench.sh            (from anywhere in the repo)
#
# What it does
#   1. Installs missing Debian packages with apt-get (golang-go libboost-fiber-dev
#      libboost-context-dev gnuplot-nox g++ wrk redis-server redis-tools time cargo
#      rustc librust-tokio-dev librust-hyper-dev librust-libc-dev libhiredis-dev),
#      only those that are missing, saying what it does (--no-install skips this).
#   2. Builds the peers from tests/bench/peers/ into build/bench-peers/ (plain
#      go build / g++ / gcc; rebuilt when a source is newer than its binary; the Tokio
#      peer with Debian's /usr/bin/cargo and /usr/bin/rustc, offline, from Debian's crate
#      registry /usr/share/cargo/registry as a directory source: a copy of
#      peers/tokio/ in build/bench-peers/tokio-build/ with its .cargo/config.toml; the
#      Tokio rows are skipped with a warning when cargo or the crates are missing), and
#      finds the weft benchmark at ${WEFT_BENCH:-build/bench/weft-bench}; if that
#      file is missing it runs
#         cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release
#         cmake --build build/bench --target weft-bench -j2
#      (if that fails too, the peers are still measured and weft's cells say "–");
#      the default binary is also rebuilt incrementally when build/bench is configured,
#      and a default path that does not exist is looked up by name under build/bench
#      (CMake may put the targets in subdirectories such as build/bench/tests/bench/).
#   3. For each workload (switch spawn park skynet pingpong threadsend parallel, then
#      http redis with --servers) runs every implementation interleaved
#      A B C A B C ... for --reps repetitions, and collects every result line
#         workload=<name> peer=<name> n=<N> <metric>=<value> ... peak_rss_kb=<KB>
#      (peak RSS falls back to GNU time's %M when a line lacks it). The programs also
#      print what the timed part paid, faults_per_task (minor page faults / N) and
#      ctx_switches: summary.md shows their medians as two columns of every row.
#      On a machine with more than one CPU, spawn park skynet pingpong threadsend also
#      run weft with WEFT_THREADS=1 (rows "weft-1worker"). Lines that
#      weft-bench prints for a peer it times in-process (switch: boost-fcontext)
#      get the suffix "-inproc" so that they are not mixed with the standalone peer.
#   4. Writes into the output directory (default bench-results/):
#         lines.txt    every result line as printed, with "rep=<r>" appended
#         raw.csv      workload,peer,n,metric,value,peak_rss_kb,rep (one row per metric)
#         summary.md   machine info + medians per workload x metric x peer, with a
#                      "weft vs peer" column: > 1 means weft is better (time-like
#                      metrics: peer/weft; rate-like metrics: weft/peer)
#         chart.png    bar chart of those ratios for the main metric of each workload
#         scaling.csv, scaling.png   with --scaling (see below)
#         logs/        stderr of every run
#
# Options
#   --reps R        repetitions per implementation (default 3; --quick: 1)
#   --quick         smoke test: small N, 1 repetition, short server runs
#   --only LIST     comma-separated subset of: switch,spawn,park,skynet,pingpong,
#                   threadsend,parallel,http,redis,hook,scaling (overrides the default set)
#   --servers       also run the http, redis and hook workloads (hook: weft-hook-bench, see
#                   tests/bench/hook_bench.c — hiredis from 1,000 coroutines through
#                   libweft-hook vs 1,000 pthreads vs weft_blocking against a redis-server,
#                   and the hooked read's and a regular file's per-call cost)
#   --scaling       also run weft-bench spawn/park for N = 1e3..1e6 and skynet with
#                   WEFT_THREADS = 1..nproc (Go as a reference curve) -> scaling.*
#   --skip-slow     skip the slow, memory-hungry peers: Boost.Fiber with its default
#                   128 KiB stacks (spawn, park, skynet: ~10 GB and ~15-75 s each)
#                   and the pthread park/spawn runs
#   --no-segmented  skip the weft-segmented rows (they need a second build, build/bench-seg,
#                   with -DWEFT_SEGMENTED_STACKS=ON: gcc split stacks + gold)
#   --report-only   run nothing: redraw summary.md and the charts from --out's raw.csv
#                   (and scaling.csv) of an earlier run
#   --out DIR       output directory (default bench-results)
#   --peers-dir DIR where the peers are built (default build/bench-peers)
#   --timeout S     per-run time limit in seconds (default 900)
#   --no-install    never call apt-get
#   -h, --help      this text
#
# Environment
#   WEFT_BENCH   weft benchmark binary      (default build/bench/weft-bench)
#   WEFT_BENCH_SEG  the segmented build's   (default build/bench-seg/tests/bench/weft-bench)
#   WEFT_BENCH_BASE another weft-bench (e.g. built from main) run interleaved with the first:
#                peers weft-base, weft-base-1worker (switch spawn park skynet pingpong
#                threadsend); unset: no such rows
#   WEFT_HTTP    weft HTTP hello server     (default build/bench/samples/http_hello)
#   WEFT_REDIS   weft RESP server           (default build/bench/samples/resp_server)
#   WEFT_THREADS passed through to weft (number of workers)
#   CARGO, RUSTC    the Tokio peer's toolchain (default /usr/bin/cargo, /usr/bin/rustc:
#                   Debian's, whatever else is first on PATH)
#
# Duration on the 2-core VM: a full default run took under 4 minutes (of which
# the Boost.Fiber default-stack runs, 10-25 s each, are most; they have taken up
# to 75 s each on a slow day, which makes ~15 min); --skip-slow about 1.5 min;
# --servers adds about 1.5 min (+ 5 s x reps per weft server), --scaling about
# 1 min per repetition.
# Only 127.0.0.1 traffic; every server started here is stopped on exit.
set -euo pipefail

usage() { sed -n '3,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
PEER_SRC=tests/bench/peers

# ------------------------------------------------------------------ options
REPS=""
QUICK=0
ONLY=""
SERVERS=0
SCALING=0
SKIP_SLOW=0
SEGMENTED=1
REPORT_ONLY=0
OUT=bench-results
PEERS_DIR=build/bench-peers
RUN_TIMEOUT=900
INSTALL=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --reps) REPS="$2"; shift 2 ;;
        --reps=*) REPS="${1#*=}"; shift ;;
        --quick) QUICK=1; shift ;;
        --only) ONLY="$2"; shift 2 ;;
        --only=*) ONLY="${1#*=}"; shift ;;
        --servers) SERVERS=1; shift ;;
        --scaling) SCALING=1; shift ;;
        --skip-slow) SKIP_SLOW=1; shift ;;
        --no-segmented) SEGMENTED=0; shift ;;
        --report-only) REPORT_ONLY=1; INSTALL=0; shift ;;
        --out) OUT="$2"; shift 2 ;;
        --out=*) OUT="${1#*=}"; shift ;;
        --peers-dir) PEERS_DIR="$2"; shift 2 ;;
        --timeout) RUN_TIMEOUT="$2"; shift 2 ;;
        --no-install) INSTALL=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run-bench: unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [[ -z "$REPS" ]]; then
    if [[ $QUICK == 1 ]]; then REPS=1; else REPS=3; fi
fi
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || { echo "run-bench: --reps needs a positive integer" >&2; exit 2; }

ALL_WORKLOADS="switch spawn park skynet pingpong threadsend parallel http redis hook scaling"
if [[ -n "$ONLY" ]]; then
    SELECTED=${ONLY//,/ }
    for w in $SELECTED; do
        [[ " $ALL_WORKLOADS " == *" $w "* ]] || { echo "run-bench: unknown workload '$w' (known: $ALL_WORKLOADS)" >&2; exit 2; }
    done
else
    SELECTED="switch spawn park skynet pingpong threadsend parallel"
    [[ $SERVERS == 1 ]] && SELECTED+=" http redis hook"
    [[ $SCALING == 1 ]] && SELECTED+=" scaling"
fi
selected() { [[ " $SELECTED " == *" $1 "* ]]; }

NPROC=$(nproc)
GO_DEFAULT="go-gmp$NPROC"   # Go's default GOMAXPROCS is the number of usable CPUs

log() { printf '[run-bench] %s\n' "$*" >&2; }
warn() { printf '[run-bench] WARNING: %s\n' "$*" >&2; NOTES+=("$*"); }
NOTES=()

# ------------------------------------------------------------------ sizes
if [[ $QUICK == 1 ]]; then
    N_SWITCH=200000; N_SPAWN=20000; N_PARK=20000; N_PTHREAD=1000
    N_SKYNET=10000; N_PINGPONG=50000; N_PP_PTHREAD=2000; N_THREADSEND=100000
    HTTP_SECS=2; REDIS_N=20000; SCALING_NS="1000 10000 100000"; SCALING_SKYNET_N=100000
else
    N_SWITCH=10000000; N_SPAWN=1000000; N_PARK=1000000; N_PTHREAD=10000
    N_SKYNET=1000000; N_PINGPONG=1000000; N_THREADSEND=1000000
    # A pthread round trip costs ~40 us on these VMs (cross-core futex wake-ups):
    # 1M would take 40 s per run, so the pthread pingpong row uses 100K.
    N_PP_PTHREAD=100000
    HTTP_SECS=5; REDIS_N=200000; SCALING_NS="1000 10000 100000 1000000"; SCALING_SKYNET_N=1000000
fi
N_PARALLEL=$((2 * NPROC))

# ------------------------------------------------------------------ dependencies
SUDO=""
[[ $(id -u) == 0 ]] || { command -v sudo >/dev/null && SUDO=sudo; }
APT_UPDATED=0
ensure_pkgs() {   # ensure_pkgs PKG...: apt-get install the ones not installed
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [[ ${#missing[@]} == 0 ]] && return 0
    if [[ $INSTALL == 0 ]]; then
        warn "missing packages (not installed, --no-install): ${missing[*]}"
        return 0
    fi
    log "installing missing packages: ${missing[*]}"
    if [[ $APT_UPDATED == 0 ]]; then
        log "apt-get update"
        $SUDO apt-get update -qq || warn "apt-get update failed"
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        || warn "apt-get install failed for: ${missing[*]}"
}
[[ $REPORT_ONLY == 1 ]] || ensure_pkgs golang-go libboost-fiber-dev libboost-context-dev gnuplot-nox g++ gcc wrk \
    redis-server redis-tools time cargo rustc librust-tokio-dev librust-hyper-dev librust-libc-dev libhiredis-dev
GNU_TIME=""
[[ -x /usr/bin/time ]] && GNU_TIME=/usr/bin/time

# ------------------------------------------------------------------ build peers
mkdir -p "$PEERS_DIR"
PEERS_DIR=$(cd "$PEERS_DIR" && pwd)
GO_BIN="$PEERS_DIR/go-bench"
BF_BIN="$PEERS_DIR/boost_fiber"
BC_BIN="$PEERS_DIR/boost_context"
PT_BIN="$PEERS_DIR/pthread"
TK_BIN="$PEERS_DIR/tokio-bench"

stale() {   # stale BIN SRC...: BIN is missing or older than one of the sources
    local bin=$1 s; shift
    [[ -x "$bin" ]] || return 0
    for s; do [[ "$s" -nt "$bin" ]] && return 0; done
    return 1
}
build_peer() {   # build_peer BIN SRC CMD... (the C and C++ peers also include peers/peer_cost.h)
    [[ $REPORT_ONLY == 1 ]] && return 0
    local bin=$1 src=$2 deps; shift 2
    deps=("$src"); [[ "$src" == *.c || "$src" == *.cpp ]] && deps+=("$PEER_SRC/peer_cost.h")
    if stale "$bin" "${deps[@]}"; then
        log "building $(basename "$bin"): $*"
        "$@" || { warn "build of $(basename "$bin") failed"; rm -f "$bin"; }
    fi
}
build_peer "$GO_BIN" "$PEER_SRC/go/bench.go" \
    env GO111MODULE=off GOFLAGS= GOCACHE="$PEERS_DIR/.gocache" go build -o "$GO_BIN" "$PEER_SRC/go/bench.go"
build_peer "$BF_BIN" "$PEER_SRC/boost_fiber.cpp" \
    g++ -O2 -std=c++17 -o "$BF_BIN" "$PEER_SRC/boost_fiber.cpp" -lboost_fiber -lboost_context -pthread
build_peer "$BC_BIN" "$PEER_SRC/boost_context.c" \
    gcc -O2 -o "$BC_BIN" "$PEER_SRC/boost_context.c" -lboost_context
build_peer "$PT_BIN" "$PEER_SRC/pthread.c" \
    gcc -O2 -o "$PT_BIN" "$PEER_SRC/pthread.c" -pthread
# The Tokio peer: Debian's cargo and rustc (not a rustup toolchain that may come first on
# PATH), offline, Debian's crates as the only registry. Sources are copied into the build
# directory so that cargo writes its Cargo.lock and target/ there, not into the tree.
CARGO=${CARGO:-/usr/bin/cargo}
RUSTC=${RUSTC:-/usr/bin/rustc}
build_tokio() {
    [[ $REPORT_ONLY == 1 ]] && return 0
    local src=$PEER_SRC/tokio bd="$PEERS_DIR/tokio-build" reg=/usr/share/cargo/registry c
    stale "$TK_BIN" "$src/Cargo.toml" "$src/src/main.rs" || return 0
    for c in tokio- hyper- libc-; do
        if [[ ! -x "$CARGO" || ! -x "$RUSTC" ]] || ! compgen -G "${reg}/${c}[0-9]*" >/dev/null; then
            warn "Tokio peer skipped: needs $CARGO, $RUSTC and the crates tokio, hyper, libc in $reg (Debian: cargo rustc librust-tokio-dev librust-hyper-dev librust-libc-dev)"
            rm -f "$TK_BIN"
            return 0
        fi
    done
    mkdir -p "$bd/src" "$bd/.cargo"
    cp "$src/Cargo.toml" "$bd/Cargo.toml"
    cp "$src/src/main.rs" "$bd/src/main.rs"
    printf '[source.crates-io]\nreplace-with = "debian"\n[source.debian]\ndirectory = "%s"\n[net]\noffline = true\n' \
        "$reg" >"$bd/.cargo/config.toml"
    log "building tokio-bench: $CARGO build --release --offline (in $bd, ~1-2 min; log: $bd/build.log)"
    if (cd "$bd" && env CARGO_HOME="$bd/.cargo-home" RUSTC="$RUSTC" RUSTDOC="${RUSTC%rustc}rustdoc" \
            "$CARGO" build --release --offline) >"$bd/build.log" 2>&1 &&
        cp "$bd/target/release/tokio-bench" "$TK_BIN"; then
        touch "$TK_BIN"
    else
        warn "build of tokio-bench failed (see $bd/build.log): no Tokio rows"
        rm -f "$TK_BIN"
    fi
}
build_tokio
have() { [[ -x "$1" ]]; }

# ------------------------------------------------------------------ weft
WEFT_BENCH_GIVEN=${WEFT_BENCH:+1}
WEFT_HTTP_GIVEN=${WEFT_HTTP:+1}
WEFT_REDIS_GIVEN=${WEFT_REDIS:+1}
WEFT_BENCH=${WEFT_BENCH:-build/bench/weft-bench}
WEFT_HTTP=${WEFT_HTTP:-build/bench/samples/http_hello}
WEFT_REDIS=${WEFT_REDIS:-build/bench/samples/resp_server}
WEFT_HOOK_BENCH_GIVEN=${WEFT_HOOK_BENCH:+1}
WEFT_HOOK_BENCH=${WEFT_HOOK_BENCH:-build/bench/tests/bench/weft-hook-bench}
# locate VAR NAME: when VAR holds a default path that does not exist, look for an
# executable NAME anywhere under build/bench (CMake puts targets in subdirectories)
locate() {
    local var=$1 name=$2 given_var="${1}_GIVEN" found
    [[ -n "${!given_var}" || -x "${!var}" || ! -d build/bench ]] && return 0
    found=$(find build/bench -type f -name "$name" -perm -u+x 2>/dev/null | head -n 1)
    if [[ -n "$found" ]]; then
        log "using $found for $var"
        printf -v "$var" '%s' "$found"
    fi
}
cmake_weft() {   # cmake_weft TARGET...: (re)configure build/bench, build the targets
    command -v cmake >/dev/null || ensure_pkgs cmake
    # (re)configure every time: cheap with a cache, and repairs a failed configure
    log "cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release"
    cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release >"$OUT/logs/cmake-configure.log" 2>&1 || {
        warn "cmake configure failed (see $OUT/logs/cmake-configure.log)"; return 1; }
    log "cmake --build build/bench --target $* -j2"
    cmake --build build/bench --target "$@" -j2 >>"$OUT/logs/cmake-build.log" 2>&1 || {
        warn "cmake build of $* failed (see $OUT/logs/cmake-build.log)"; return 1; }
}
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
if [[ $REPORT_ONLY == 0 ]]; then
locate WEFT_BENCH weft-bench
if [[ ! -x "$WEFT_BENCH" ]]; then
    log "$WEFT_BENCH not found: building it"
    cmake_weft weft-bench || true
    locate WEFT_BENCH weft-bench
elif [[ -z "$WEFT_BENCH_GIVEN" && -f build/bench/CMakeCache.txt ]]; then
    # the default binary: bring it up to date with the sources (incremental)
    cmake_weft weft-bench || true
fi
if [[ -x "$WEFT_BENCH" ]]; then
    WEFT_BENCH=$(cd "$(dirname "$WEFT_BENCH")" && pwd)/$(basename "$WEFT_BENCH")
else
    warn "no weft benchmark binary ($WEFT_BENCH): measuring the peers only"
fi
# The segmented-stack build of weft-bench (its own tree; skipped if it cannot be built).
WEFT_BENCH_SEG=${WEFT_BENCH_SEG:-build/bench-seg/tests/bench/weft-bench}
if [[ $SEGMENTED == 1 ]] && { selected switch || selected spawn || selected park || selected skynet; }; then
    log "cmake -S . -B build/bench-seg -DWEFT_SEGMENTED_STACKS=ON (weft-segmented rows)"
    { cmake -S . -B build/bench-seg -DCMAKE_BUILD_TYPE=Release -DWEFT_SEGMENTED_STACKS=ON &&
      cmake --build build/bench-seg --target weft-bench -j2; } >"$OUT/logs/cmake-seg.log" 2>&1 ||
        warn "segmented build failed (see $OUT/logs/cmake-seg.log): no weft-segmented rows"
fi
[[ $SEGMENTED == 1 && -x "$WEFT_BENCH_SEG" ]] || WEFT_BENCH_SEG=""
if selected http; then
    locate WEFT_HTTP http_hello
    if [[ ! -x "$WEFT_HTTP" && -z "$WEFT_HTTP_GIVEN" && -f build/bench/CMakeCache.txt ]]; then
        cmake_weft http_hello || true; locate WEFT_HTTP http_hello
    fi
fi
if selected hook; then
    locate WEFT_HOOK_BENCH weft-hook-bench
    if [[ ! -x "$WEFT_HOOK_BENCH" && -z "$WEFT_HOOK_BENCH_GIVEN" ]]; then
        cmake_weft weft-hook-bench || true; locate WEFT_HOOK_BENCH weft-hook-bench
    fi
fi
if selected redis; then
    locate WEFT_REDIS resp_server
    if [[ ! -x "$WEFT_REDIS" && -z "$WEFT_REDIS_GIVEN" && -f build/bench/CMakeCache.txt ]]; then
        cmake_weft resp_server || true; locate WEFT_REDIS resp_server
    fi
fi
fi # REPORT_ONLY

# ------------------------------------------------------------------ results files
RAW="$OUT/raw.csv"
LINES="$OUT/lines.txt"
SCAL="$OUT/scaling.csv"
if [[ $REPORT_ONLY == 1 ]]; then
    [[ -s "$RAW" ]] || { echo "run-bench: --report-only: no $RAW" >&2; exit 2; }
    [[ -s "$SCAL" ]] && SELECTED+=" scaling"
else
    echo "workload,peer,n,metric,value,peak_rss_kb,rep" >"$RAW"
    : >"$LINES"
fi
TMP=$(mktemp -d)

# ------------------------------------------------------------------ servers bookkeeping
SERVER_PIDS=()
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local p live=()
    for p in "${SERVER_PIDS[@]:-}"; do
        if [[ -n "$p" ]] && kill -TERM "$p" 2>/dev/null; then live+=("$p"); fi
    done
    if [[ ${#live[@]} -gt 0 ]]; then
        sleep 0.5
        for p in "${live[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ recording lines
# record_line LINE REP FROM_WEFT FALLBACK_RSS [DEST_CSV]: normalise one result line
# and append it to lines.txt and raw.csv (or DEST_CSV).
record_line() {
    local line=$1 rep=$2 from_weft=$3 frss=$4 dest=${5:-$RAW}
    [[ "$line" == workload=* ]] || return 0
    if [[ $from_weft == 1 ]]; then
        # a reference peer timed inside weft-bench: keep it apart from the real peer
        line=$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^peer=/ && $i !~ /^peer=weft/) $i = $i "-inproc"; print }' <<<"$line")
    fi
    if [[ "$line" != *peak_rss_kb=* && -n "$frss" ]]; then line+=" peak_rss_kb=$frss"; fi
    if [[ "$line" == *check=* && "$line" != *check=ok* ]]; then warn "failed check: $line"; fi
    echo "$line rep=$rep" >>"$LINES"
    awk -v rep="$rep" '
        function isnum(s) { return s ~ /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/ }
        {
            wl = ""; peer = ""; n = ""; rss = ""; qual = ""; nm = 0
            for (i = 1; i <= NF; i++) {
                k = $i; sub(/=.*/, "", k); v = substr($i, length(k) + 2)
                if (k == "workload") wl = v
                else if (k == "peer") peer = v
                else if (k == "n") n = v
                else if (k == "peak_rss_kb") rss = v
                else if (k == "cmd" || k == "pipeline") qual = qual (qual == "" ? "" : ";") k "=" v
                else if (k == "workers" || k == "rep") continue
                else if (isnum(v)) { nm++; mk[nm] = k; mv[nm] = v }
            }
            for (j = 1; j <= nm; j++) {
                m = mk[j]; if (qual != "") m = m "[" qual "]"
                print wl "," peer "," n "," m "," mv[j] "," rss "," rep
            }
        }' <<<"$line" >>"$dest"
}

# run_cmd REP FROM_WEFT CMD...: run one benchmark process, record its lines. FROM_WEFT is
# 0, 1, or 1:SUFFIX — weft-bench's lines with SUFFIX appended to weft's peer names (the
# WEFT_THREADS=1 rows: peer=weft -> weft-1worker).
run_cmd() {
    local rep=$1 fw=$2; shift 2
    local from_weft=${fw%%:*} wsuffix=""
    [[ "$fw" == *:* ]] && wsuffix=${fw#*:}
    local out="$TMP/out" rssf="$TMP/rss" rc=0 t0 t1
    : >"$rssf"
    local timer=()
    [[ -n "$GNU_TIME" ]] && timer=("$GNU_TIME" -f %M -o "$rssf")
    t0=$(date +%s.%N)
    timeout --kill-after=10 "$RUN_TIMEOUT" "${timer[@]}" "$@" >"$out" 2>>"$OUT/logs/runs.log" || rc=$?
    t1=$(date +%s.%N)
    local frss
    frss=$(grep -E '^[0-9]+$' "$rssf" 2>/dev/null | tail -n 1 || true)
    local got=0 l
    while IFS= read -r l; do
        [[ "$l" == workload=* ]] || continue
        got=1
        if [[ -n "$wsuffix" ]]; then
            l=$(awk -v s="$wsuffix" '{ for (i = 1; i <= NF; i++) if ($i ~ /^peer=weft/) $i = $i s; print }' <<<"$l")
        fi
        record_line "$l" "$rep" "$from_weft" "$frss"
        printf '  %s  (rep %s, %.1f s)\n' "$(tail -n 1 "$LINES" | sed 's/ rep=[0-9]*$//')" "$rep" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')" >&2
    done <"$out"
    if [[ $rc != 0 ]]; then
        if [[ $rc == 124 || $rc == 137 ]]; then
            warn "timed out after ${RUN_TIMEOUT}s: $*"
        else
            warn "exit status $rc: $* (stderr in $OUT/logs/runs.log)"
        fi
    elif [[ $got == 0 ]]; then
        warn "no result line from: $*"
    fi
    return 0
}

# ------------------------------------------------------------------ plans
# plan WORKLOAD: fill PLAN with entries "FROM_WEFT<TAB>command words" (no spaces in paths).
plan() {
    PLAN=()
    local w=$1 W="" WS=$WEFT_BENCH_SEG
    have "$WEFT_BENCH" && W=$WEFT_BENCH
    add() { PLAN+=("$1"$'\t'"$2"); }
    local G1="env GOMAXPROCS=1 $GO_BIN" GD="env -u GOMAXPROCS $GO_BIN"
    have "$GO_BIN" || { G1=/nonexistent; GD=/nonexistent; }
    # Tokio: the multi-thread runtime with its default worker count (peer "tokio") and the
    # current-thread runtime ("tokio-ct")
    local TK="env -u TOKIO_FLAVOR -u TOKIO_WORKER_THREADS $TK_BIN" TKC="env TOKIO_FLAVOR=ct $TK_BIN"
    local tk=0; have "$TK_BIN" && tk=1
    # weft with one worker, beside the default (all CPUs): does a second worker pay off?
    local W1=""; [[ -n $W && $NPROC -gt 1 ]] && W1="env WEFT_THREADS=1 $W"
    add1() { [[ -n $W1 ]] && add "1:-1worker" "$W1 $1"; return 0; }
    # $WEFT_BENCH_BASE: a second weft-bench (say, main's) measured in the same interleaved
    # order, rows weft-base and weft-base-1worker: a before/after of one change in one run
    local WB=""; have "${WEFT_BENCH_BASE:-}" && WB=$WEFT_BENCH_BASE
    addb() {
        [[ -n $WB ]] || return 0
        add "1:-base" "$WB $1"
        [[ $2 == all && $NPROC -gt 1 ]] && add "1:-base-1worker" "env WEFT_THREADS=1 $WB $1"
        return 0
    }
    case $w in
        switch)
            [[ -n $W ]] && add 1 "$W switch $N_SWITCH"
            addb "switch $N_SWITCH" one
            [[ -n $WS ]] && add 1 "$WS switch $N_SWITCH"
            have "$BC_BIN" && add 0 "$BC_BIN switch $N_SWITCH"
            have "$GO_BIN" && add 0 "$G1 switch $N_SWITCH"
            [[ $tk == 1 ]] && add 0 "$TKC switch $N_SWITCH"
            have "$BF_BIN" && add 0 "$BF_BIN switch $N_SWITCH" ;;
        spawn)
            [[ -n $W ]] && add 1 "$W spawn $N_SPAWN"
            add1 "spawn $N_SPAWN"
            addb "spawn $N_SPAWN" all
            [[ -n $WS ]] && add 1 "$WS spawn $N_SPAWN"
            have "$GO_BIN" && add 0 "$G1 spawn $N_SPAWN" && add 0 "$GD spawn $N_SPAWN"
            [[ $tk == 1 ]] && add 0 "$TK spawn $N_SPAWN" && add 0 "$TKC spawn $N_SPAWN"
            have "$BF_BIN" && [[ $SKIP_SLOW == 0 ]] && add 0 "$BF_BIN spawn $N_SPAWN"
            have "$PT_BIN" && [[ $SKIP_SLOW == 0 ]] && add 0 "$PT_BIN spawn $N_PTHREAD" ;;
        park)
            [[ -n $W ]] && add 1 "$W park $N_PARK"
            add1 "park $N_PARK"
            addb "park $N_PARK" all
            [[ -n $W ]] && add 1 "env WEFT_BENCH_STACK=1k $W park $N_PARK"
            [[ -n $WS ]] && add 1 "$WS park $N_PARK"
            have "$GO_BIN" && add 0 "$GD parkgated $N_PARK" && add 0 "$GD park $N_PARK"
            [[ $tk == 1 ]] && add 0 "$TK park $N_PARK" && add 0 "$TKC park $N_PARK"
            have "$BF_BIN" && add 0 "$BF_BIN park8k $N_PARK"
            have "$BF_BIN" && [[ $SKIP_SLOW == 0 ]] && add 0 "$BF_BIN park $N_PARK"
            have "$PT_BIN" && [[ $SKIP_SLOW == 0 ]] && add 0 "$PT_BIN park $N_PTHREAD" ;;
        skynet)
            [[ -n $W ]] && add 1 "$W skynet $N_SKYNET"
            add1 "skynet $N_SKYNET"
            addb "skynet $N_SKYNET" all
            [[ -n $WS ]] && add 1 "$WS skynet $N_SKYNET"
            have "$GO_BIN" && add 0 "$G1 skynet $N_SKYNET" && add 0 "$GD skynet $N_SKYNET"
            [[ $tk == 1 ]] && add 0 "$TK skynet $N_SKYNET" && add 0 "$TKC skynet $N_SKYNET"
            have "$BF_BIN" && [[ $SKIP_SLOW == 0 ]] && add 0 "$BF_BIN skynet $N_SKYNET" ;;
        pingpong)
            [[ -n $W ]] && add 1 "$W pingpong $N_PINGPONG"
            add1 "pingpong $N_PINGPONG"
            addb "pingpong $N_PINGPONG" all
            have "$GO_BIN" && add 0 "$G1 pingpong $N_PINGPONG" && add 0 "$GD pingpong $N_PINGPONG"
            [[ $tk == 1 ]] && add 0 "$TKC pingpong $N_PINGPONG" && add 0 "$TK pingpong $N_PINGPONG"
            have "$BF_BIN" && add 0 "$BF_BIN pingpong $N_PINGPONG"
            have "$PT_BIN" && add 0 "$PT_BIN pingpong $N_PP_PTHREAD" ;;
        threadsend)
            [[ -n $W ]] && add 1 "$W threadsend $N_THREADSEND"
            add1 "threadsend $N_THREADSEND"
            addb "threadsend $N_THREADSEND" all
            have "$GO_BIN" && add 0 "$GD threadsend $N_THREADSEND" && add 0 "$G1 threadsend $N_THREADSEND"
            [[ $tk == 1 ]] && add 0 "$TK threadsend $N_THREADSEND" && add 0 "$TKC threadsend $N_THREADSEND"
            have "$BF_BIN" && add 0 "$BF_BIN threadsend $N_THREADSEND"
            have "$PT_BIN" && add 0 "$PT_BIN threadsend $N_THREADSEND" ;;
        parallel)
            [[ -n $W ]] && add 1 "$W parallel $N_PARALLEL"
            have "$GO_BIN" && add 0 "$GD parallel $N_PARALLEL"
            [[ $tk == 1 ]] && add 0 "$TK parallel $N_PARALLEL" ;;
    esac
    return 0
}

run_workload() {   # interleaved: rep 1: A B C ..., rep 2: A B C ..., ...
    local w=$1 rep e
    plan "$w"
    if [[ ${#PLAN[@]} == 0 ]]; then warn "$w: nothing to run"; return 0; fi
    log "== $w: ${#PLAN[@]} implementations x $REPS reps"
    for ((rep = 1; rep <= REPS; rep++)); do
        for e in "${PLAN[@]}"; do
            local fw=${e%%$'\t'*} cmd=${e#*$'\t'}
            # shellcheck disable=SC2086  # command words, split on purpose
            run_cmd "$rep" "$fw" $cmd
        done
    done
}

# ------------------------------------------------------------------ servers
free_port() {
    local p
    for _ in $(seq 1 200); do
        # Below Linux's ephemeral range (32768-60999 by default): a port there may be the
        # local end of a client connection (bind then fails, even with SO_REUSEADDR).
        p=$((10000 + RANDOM % 22000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            if ! command -v ss >/dev/null || ! ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then
                echo "$p"; return 0
            fi
        fi
    done
    return 1
}

SRV_PID=""
start_server() {   # start_server PORT LOG CMD...: start in background, wait for the port
    local port=$1 logf=$2; shift 2
    "$@" >"$logf" 2>&1 &
    SRV_PID=$!
    SERVER_PIDS+=("$SRV_PID")
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        kill -0 "$SRV_PID" 2>/dev/null || { warn "server exited at start: $* (log: $logf)"; SRV_PID=""; return 1; }
        sleep 0.1
    done
    warn "server did not listen on 127.0.0.1:$port within 10 s: $*"
    stop_server
    return 1
}

SRV_HWM=""
stop_server() {   # sets SRV_HWM to the server's peak RSS in KB (VmHWM), then stops it
    local pid=$SRV_PID
    SRV_HWM=""
    [[ -n "$pid" ]] || return 0
    SRV_HWM=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local kept=() p
    for p in "${SERVER_PIDS[@]}"; do [[ "$p" == "$pid" ]] || kept+=("$p"); done
    SERVER_PIDS=("${kept[@]:-}")
    SRV_PID=""
}

to_ms() {   # wrk latency "812.00us" | "2.35ms" | "1.02s" -> milliseconds
    awk -v s="$1" 'BEGIN {
        v = s + 0
        if (s ~ /us$/) v /= 1000; else if (s ~ /ms$/) v = v; else if (s ~ /m$/) v *= 60000; else if (s ~ /s$/) v *= 1000
        printf "%.3f", v }'
}

run_http() {
    local impls=() rep e
    if [[ -x "$WEFT_HTTP" ]]; then impls+=("weft"$'\t'"$WEFT_HTTP"); else warn "http: no weft server at $WEFT_HTTP, skipped"; fi
    have "$GO_BIN" && impls+=("$GO_DEFAULT"$'\t'"env -u GOMAXPROCS $GO_BIN http")
    have "$TK_BIN" && impls+=("tokio"$'\t'"env -u TOKIO_FLAVOR -u TOKIO_WORKER_THREADS $TK_BIN http")
    command -v wrk >/dev/null || { warn "http: wrk missing, skipped"; return 0; }
    log "== http: ${#impls[@]} servers x $REPS reps (wrk -t2 -c100 -d${HTTP_SECS}s)"
    for ((rep = 1; rep <= REPS; rep++)); do
        for e in "${impls[@]}"; do
            local peer=${e%%$'\t'*} cmd=${e#*$'\t'} port wout="$TMP/wrk"
            port=$(free_port) || { warn "http: no free port"; continue; }
            # shellcheck disable=SC2086
            start_server "$port" "$OUT/logs/http-$peer.log" $cmd "$port" || continue
            timeout 60 wrk -t2 -c100 -d"${HTTP_SECS}s" --latency "http://127.0.0.1:$port/" >"$wout" 2>&1 || true
            local hwm rps p99
            stop_server; hwm=$SRV_HWM
            cat "$wout" >>"$OUT/logs/wrk.log"
            rps=$(awk '/^Requests\/sec:/ { print $2 }' "$wout")
            p99=$(awk '$1 == "99%" { print $2 }' "$wout")
            if [[ -z "$rps" || -z "$p99" ]]; then warn "http: no wrk result for $peer (see $OUT/logs/wrk.log)"; continue; fi
            if grep -qE 'Non-2xx|Socket errors' "$wout"; then warn "http $peer: $(grep -E 'Non-2xx|Socket errors' "$wout" | tr -s ' ')"; fi
            local line p99ms
            p99ms=$(to_ms "$p99")
            line="workload=http peer=$peer n=$HTTP_SECS req_per_s=$rps p99_ms=$p99ms"
            [[ -n "$hwm" ]] && line+=" peak_rss_kb=$hwm"
            record_line "$line" "$rep" 0 ""
            echo "  $line  (rep $rep)" >&2
        done
    done
}

run_redis() {
    local impls=() rep e pl
    if [[ -x "$WEFT_REDIS" ]]; then impls+=("weft"$'\t'"$WEFT_REDIS"); else warn "redis: no weft server at $WEFT_REDIS, skipped"; fi
    command -v redis-server >/dev/null && impls+=("redis-server"$'\t'"redis-server")
    command -v redis-benchmark >/dev/null || { warn "redis: redis-benchmark missing, skipped"; return 0; }
    log "== redis: ${#impls[@]} servers x $REPS reps (redis-benchmark -c 50, -P 1 -n $REDIS_N, -P 16 -n $((REDIS_N * 10)))"
    for ((rep = 1; rep <= REPS; rep++)); do
        for e in "${impls[@]}"; do
            local peer=${e%%$'\t'*} cmd=${e#*$'\t'} port lines=()
            port=$(free_port) || { warn "redis: no free port"; continue; }
            if [[ $peer == redis-server ]]; then
                start_server "$port" "$OUT/logs/redis-$peer.log" \
                    redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no || continue
            else
                # shellcheck disable=SC2086
                start_server "$port" "$OUT/logs/redis-$peer.log" $cmd "$port" || continue
            fi
            for pl in 1 16; do
                # -P 16 runs 10x the requests: at ~1.8 M/s, 200,000 take ~0.11 s and
                # redis-benchmark's millisecond clock quantises the rate in ~1 % steps.
                local bout="$TMP/rb" n=$((pl == 1 ? REDIS_N : REDIS_N * 10))
                timeout 300 redis-benchmark -h 127.0.0.1 -p "$port" -t ping,set,get -n "$n" \
                    -c 50 -P "$pl" -q >"$bout" 2>&1 || warn "redis $peer -P $pl: redis-benchmark failed"
                tr '\r' '\n' <"$bout" >>"$OUT/logs/redis-benchmark.log"
                # "SET: 35211.27 requests per second, p50=0.711 msec"
                while read -r cmdname rps; do
                    lines+=("workload=redis peer=$peer n=$n cmd=$cmdname pipeline=$pl req_per_s=$rps")
                done < <(tr '\r' '\n' <"$bout" | awk -F': ' '/requests per second/ {
                            split($2, a, " "); print tolower($1), a[1] }')
            done
            local hwm l
            stop_server; hwm=$SRV_HWM
            [[ ${#lines[@]} == 0 ]] && warn "redis: no result for $peer"
            for l in "${lines[@]}"; do
                [[ -n "$hwm" ]] && l+=" peak_rss_kb=$hwm"
                record_line "$l" "$rep" 0 ""
                echo "  $l  (rep $rep)" >&2
            done
        done
    done
}

# hook: weft-hook-bench's three hiredis peers interleaved against one redis-server, then the
# per-call costs (each process prints its own lines and peak RSS).
run_hook() {
    local rep peer port
    [[ -x "$WEFT_HOOK_BENCH" ]] || { warn "hook: no weft-hook-bench (needs hiredis: scripts/deps.sh hook), skipped"; return 0; }
    command -v redis-server >/dev/null || { warn "hook: no redis-server, skipped"; return 0; }
    port=$(free_port) || { warn "hook: no free port"; return 0; }
    start_server "$port" "$OUT/logs/hook-redis.log" \
        redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --maxclients 4000 || return 0
    log "== hook: hiredis x 1000 clients (weft, pthreads, weft-blocking) x $REPS reps, then hook-call, hook-file"
    for ((rep = 1; rep <= REPS; rep++)); do
        for peer in weft pthreads weft-blocking; do
            run_cmd "$rep" 0 "$WEFT_HOOK_BENCH" hiredis --port "$port" --peer "$peer"
        done
    done
    stop_server
    for ((rep = 1; rep <= REPS; rep++)); do
        run_cmd "$rep" 0 "$WEFT_HOOK_BENCH" call
        run_cmd "$rep" 0 "$WEFT_HOOK_BENCH" file
    done
}

# ------------------------------------------------------------------ scaling
run_scaling() {
    echo "workload,peer,n,metric,value,peak_rss_kb,rep,x" >"$SCAL"
    local rep n t e
    local plan_s=()
    for n in $SCALING_NS; do
        have "$WEFT_BENCH" && plan_s+=("spawn_vs_n $n 1 $WEFT_BENCH spawn $n")
        have "$GO_BIN" && plan_s+=("spawn_vs_n $n 0 env -u GOMAXPROCS $GO_BIN spawn $n")
    done
    for n in $SCALING_NS; do
        have "$WEFT_BENCH" && plan_s+=("park_vs_n $n 1 $WEFT_BENCH park $n")
        have "$GO_BIN" && plan_s+=("park_vs_n $n 0 env -u GOMAXPROCS $GO_BIN parkgated $n")
    done
    for ((t = 1; t <= NPROC; t++)); do
        have "$WEFT_BENCH" && plan_s+=("skynet_vs_threads $t 1 env WEFT_THREADS=$t $WEFT_BENCH skynet $SCALING_SKYNET_N")
        have "$GO_BIN" && plan_s+=("skynet_vs_threads $t 0 env GOMAXPROCS=$t $GO_BIN skynet $SCALING_SKYNET_N")
    done
    log "== scaling: ${#plan_s[@]} runs x $REPS reps"
    for ((rep = 1; rep <= REPS; rep++)); do
        for e in "${plan_s[@]}"; do
            local series x fw cmd
            read -r series x fw cmd <<<"$e"
            local before
            before=$(wc -l <"$RAW")
            # shellcheck disable=SC2086
            run_cmd "$rep" "$fw" $cmd
            # move the rows just recorded from raw.csv to scaling.csv, tagged with x
            tail -n +"$((before + 1))" "$RAW" | awk -v s="$series" -v x="$x" -F, -v OFS=, \
                '{ $1 = s; print $0, x }' >>"$SCAL"
            head -n "$before" "$RAW" >"$TMP/raw" && cat "$TMP/raw" >"$RAW"
        done
    done
}

# ------------------------------------------------------------------ run
START=$(date +%s)
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
if [[ $REPORT_ONLY == 0 ]]; then
    for w in switch spawn park skynet pingpong threadsend parallel; do
        selected "$w" && run_workload "$w"
    done
    selected http && run_http
    selected redis && run_redis
    selected hook && run_hook
    selected scaling && run_scaling
else
    LOADAVG="(not recorded: --report-only)"
fi
ELAPSED=$(( $(date +%s) - START ))
LOADAVG_END=$(cut -d' ' -f1-3 /proc/loadavg)
[[ $REPORT_ONLY == 1 ]] && LOADAVG_END="(not recorded: --report-only)"

# ------------------------------------------------------------------ aggregate
# Metric orientation: "low" = smaller is better, "high" = bigger is better; the
# third column marks (1) the metric drawn in chart.png for its workload.
ORIENT='ns_per_switch low 1
tasks_per_s high 1
bytes_per_task low 1
wall_ms low 1
ns_per_roundtrip low 1
msgs_per_s high 1
speedup high 1
req_per_s high 1
ops_per_s high 1
ns_per_call low 1
p99_ms low 1
elapsed_s low 0
spawn_s low 0'

AGG="$TMP/agg.tsv"
# agg.tsv: order workload metric peer n median min max count rss_median ratio orient main
#          faults_per_task_median ctx_switches_median
# (every field non-empty: "-" stands for "none"). faults_per_task and ctx_switches are what
# a run paid, not results: they get no rows of their own but two columns on every row of
# their workload x peer.
awk -F, -v orient="$ORIENT" '
    function sortv(arr, k,    i, j, t) { for (i = 2; i <= k; i++) { t = arr[i]; j = i - 1
        while (j >= 1 && arr[j] + 0 > t + 0) { arr[j + 1] = arr[j]; j-- } arr[j + 1] = t } }
    function median(s,    arr, k) { k = split(s, arr, " "); if (k == 0) return "-"; sortv(arr, k)
        return (k % 2) ? arr[(k + 1) / 2] : (arr[k / 2] + arr[k / 2 + 1]) / 2 }
    function extreme(s, want_max,    arr, k, i, r) { k = split(s, arr, " "); r = arr[1]
        for (i = 2; i <= k; i++) if ((want_max && arr[i] + 0 > r + 0) || (!want_max && arr[i] + 0 < r + 0)) r = arr[i]
        return r }
    BEGIN {
        m = split(orient, L, "\n")
        for (i = 1; i <= m; i++) { split(L[i], f, " "); OR[f[1]] = f[2]; MAIN[f[1]] = f[3] }
        SIDE["faults_per_task"] = 1; SIDE["ctx_switches"] = 1
        nw = split("switch spawn park skynet pingpong threadsend parallel http redis hook-hiredis hook-call hook-file", WO, " ")
        for (i = 1; i <= nw; i++) WRANK[WO[i]] = i
    }
    NR == 1 { next }
    {
        key = $1 SUBSEP $4 SUBSEP $2
        if (!(key in vals)) {
            ng++; G[ng] = key; W[ng] = $1; M[ng] = $4; P[ng] = $2; N[ng] = $3
            if (!(($1 SUBSEP $4) in mfirst)) mfirst[$1 SUBSEP $4] = ng
            if (!(($1 SUBSEP $2) in pfirst)) pfirst[$1 SUBSEP $2] = ng
        }
        vals[key] = vals[key] " " $5
        if ($6 != "") rss[key] = rss[key] " " $6
    }
    END {
        for (g = 1; g <= ng; g++) {
            med[g] = median(vals[G[g]])
            base = M[g]; sub(/\[.*/, "", base)
            o = OR[base]; mn = MAIN[base]
            if (o == "") { o = "-"; mn = 0 }
            ori[g] = o; mai[g] = mn
            if (M[g] in SIDE) { sidev[W[g] SUBSEP P[g] SUBSEP M[g]] = med[g]; continue }
            if (P[g] == "weft") wmed[W[g] SUBSEP M[g]] = med[g]
            # the best real peer per workload x metric, for the weft variant rows below
            wk = W[g] SUBSEP M[g]
            if (P[g] !~ /^weft/ && o != "-" && med[g] + 0 > 0 &&
                (!(wk in best) || (o == "high" ? med[g] + 0 > best[wk] + 0 : med[g] + 0 < best[wk] + 0)))
                best[wk] = med[g]
        }
        for (g = 1; g <= ng; g++) {
            if (M[g] in SIDE) continue
            fk = W[g] SUBSEP P[g] SUBSEP "faults_per_task"; ck = W[g] SUBSEP P[g] SUBSEP "ctx_switches"
            fpt = (fk in sidev) ? sidev[fk] : "-"; csw = (ck in sidev) ? sidev[ck] : "-"
            r = "-"; wk = W[g] SUBSEP M[g]
            # weft variants (weft-stack1k: sub-page stacks; weft-segmented: the split-stack
            # build) are compared with the best peer; weft-yield stays relative to weft.
            if (P[g] ~ /^weft-/ && P[g] !~ /-yield$/) {
                if ((wk in best) && med[g] + 0 > 0)
                    r = (ori[g] == "high") ? med[g] / best[wk] : best[wk] / med[g]
            } else if (P[g] != "weft" && (wk in wmed) && ori[g] != "-" && med[g] + 0 > 0 && wmed[wk] + 0 > 0)
                r = (ori[g] == "high") ? wmed[wk] / med[g] : med[g] / wmed[wk]
            # order: workload, metric (first seen), weft first, then peers as first seen
            wr = (W[g] in WRANK) ? WRANK[W[g]] : 99
            order = sprintf("%02d%06d%d%06d", wr, mfirst[wk], P[g] == "weft" ? 0 : 1, pfirst[W[g] SUBSEP P[g]])
            printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", order, W[g], M[g], P[g], N[g], med[g],
                extreme(vals[G[g]], 0), extreme(vals[G[g]], 1), split(vals[G[g]], tmp, " "), median(rss[G[g]]), r, ori[g], mai[g],
                fpt, csw
        }
    }' "$RAW" | sort -t$'\t' -k1,1 >"$AGG"

# ------------------------------------------------------------------ chart
CHART_DAT="$TMP/chart.dat"
GROUPS_DAT="$TMP/groups"
awk -F'\t' -v groups="$GROUPS_DAT" '
    $11 != "-" && $13 == 1 {
        if ($2 != last) { if (last != "") x += 0.8; ng++; gstart[ng] = x; gname[ng] = $2; last = $2 }
        x += 1; gend[ng] = x
        r = $11 + 0; c = r; if (c > 100) c = 100; if (c < 0.01) c = 0.01
        col = (r >= 1) ? "0x2e8b57" : "0xcd5c5c"
        lbl = $4
        if ($2 == "redis") {   # req_per_s[cmd=set;pipeline=16] -> "set P16"
            m = $3; sub(/.*cmd=/, "", m); cmd = m; sub(/;.*/, "", cmd); pl = m; sub(/.*pipeline=/, "", pl); sub(/\]/, "", pl)
            lbl = lbl " " cmd " P" pl
        } else if ($2 == "http") lbl = lbl ($3 == "p99_ms" ? " p99" : " req/s")
        printf "%.2f %g %s \"%s\" %.4g\n", x, c, col, lbl, r
    }
    END {
        for (i = 1; i <= ng; i++) printf "%.2f %s %.2f\n", (gstart[i] + 1 + gend[i]) / 2, gname[i], gend[i] + 0.9 > groups
    }' "$AGG" >"$CHART_DAT"
if [[ ! -s "$CHART_DAT" ]]; then
    log "no weft/peer ratios: chart.png not drawn"
    rm -f "$OUT/chart.png"
elif ! command -v gnuplot >/dev/null; then
    warn "gnuplot missing: chart.png not drawn"
else
    NB=$(wc -l <"$CHART_DAT")
    WIDTH=$(( 300 + NB * 40 )); [[ $WIDTH -lt 900 ]] && WIDTH=900
    {
        echo "set terminal pngcairo size $WIDTH,640 font 'sans,10'"
        echo "set output '$OUT/chart.png'"
        echo "set title 'weft vs each peer: median ratio, > 1 = weft better (green), < 1 = peer better (red); clamped to [0.01, 100]'"
        echo "set logscale y 10"
        echo "set yrange [0.01:1000]"
        echo "set ylabel 'weft advantage (×, log scale)'"
        echo "set grid ytics"
        echo "set style fill solid 0.85 border -1"
        echo "set boxwidth 0.8"
        echo "set xtics rotate by 60 right nomirror font 'sans,9'"
        echo "set xrange [0:$(awk 'END { print $1 + 1 }' "$CHART_DAT")]"
        echo "set key off"
        echo "set bmargin 12"
        echo "set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 lc rgb 'black' front"
        while read -r xc name xsep; do
            echo "set label '$name' at $xc, 500 center font 'sans,11'"
            echo "set arrow from $xsep, 0.01 to $xsep, 1000 nohead dt 3 lc rgb 'gray'"
        done <"$GROUPS_DAT"
        echo "plot '$CHART_DAT' using 1:2:3:xtic(4) with boxes lc rgb variable, \\"
        echo "     '' using 1:(\$2 * 1.3):(\$5 >= 10 ? sprintf('%.0f', \$5) : \$5 >= 0.1 ? sprintf('%.2f', \$5) : sprintf('%.2g', \$5)) with labels font 'sans,8'"
    } >"$TMP/chart.gp"
    gnuplot "$TMP/chart.gp" 2>>"$OUT/logs/gnuplot.log" || warn "gnuplot failed for chart.png (see $OUT/logs/gnuplot.log)"
fi

# ------------------------------------------------------------------ scaling chart
if selected scaling && [[ -s "$SCAL" ]] && command -v gnuplot >/dev/null; then
    # medians per series x implementation x x-value, for the main metric of each series
    for s in spawn_vs_n:tasks_per_s park_vs_n:bytes_per_task skynet_vs_threads:wall_ms; do
        series=${s%%:*} metric=${s#*:}
        for impl in weft go; do
            awk -F, -v s="$series" -v m="$metric" -v impl="$impl" '
                function sortv(arr, k,    i, j, t) { for (i = 2; i <= k; i++) { t = arr[i]; j = i - 1
                    while (j >= 1 && arr[j] + 0 > t + 0) { arr[j + 1] = arr[j]; j-- } arr[j + 1] = t } }
                NR > 1 && $1 == s && $4 == m && ((impl == "weft" && $2 == "weft") || (impl == "go" && $2 ~ /^go-/)) {
                    if (!($8 in v)) xs[++nx] = $8
                    v[$8] = v[$8] " " $5 }
                END { for (i = 1; i <= nx; i++) { k = split(v[xs[i]], a, " "); sortv(a, k)
                    printf "%s %s\n", xs[i], (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2 } }' \
                "$SCAL" | sort -n >"$TMP/scal-$series-$impl.dat"
        done
    done
    plotline() {   # plotline SERIES: the plot command of one panel
        local parts=() impl f
        for impl in weft go; do
            f="$TMP/scal-$1-$impl.dat"
            [[ -s "$f" ]] || continue
            if [[ $impl == weft ]]; then
                parts+=("'$f' using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc rgb '0x2e8b57' title 'weft'")
            else
                parts+=("'$f' using 1:2 with linespoints lw 2 pt 5 lc rgb '0x4169e1' title 'Go (reference)'")
            fi
        done
        if [[ ${#parts[@]} == 0 ]]; then echo "plot 1/0 notitle"; else
            local IFS=,; echo "plot ${parts[*]}"; fi
    }
    {
        echo "set terminal pngcairo size 1500,480 font 'sans,10'"
        echo "set output '$OUT/scaling.png'"
        echo "set multiplot layout 1,3"
        echo "set grid; set key above horizontal"
        echo "set autoscale xfix; set offsets graph 0.06, graph 0.06, 0, 0"
        echo "set logscale x 10; set format x '10^{%L}'"
        echo "set title 'spawn: tasks/s vs N (medians of $REPS reps)'; set xlabel 'N'; set ylabel 'tasks per second'; set logscale y 10"
        plotline spawn_vs_n
        echo "unset logscale y"
        echo "set title 'park: bytes per parked task vs N'; set xlabel 'N (alive at once)'; set ylabel 'peak RSS × 1024 / N'; set yrange [0:*]"
        plotline park_vs_n
        echo "unset logscale x; set format x '%g'; set xtics 1"
        echo "set title 'skynet N=$SCALING_SKYNET_N: wall time vs workers'; set xlabel 'WEFT\\_THREADS (Go: GOMAXPROCS)'; set ylabel 'ms'; set yrange [0:*]; set offsets 0.3, 0.3, 0, 0"
        plotline skynet_vs_threads
        echo "unset multiplot"
    } >"$TMP/scaling.gp"
    gnuplot "$TMP/scaling.gp" 2>>"$OUT/logs/gnuplot.log" || warn "gnuplot failed for scaling.png (see $OUT/logs/gnuplot.log)"
fi

# ------------------------------------------------------------------ summary.md
fmt_num() {   # readable number: 1234567 -> 1,234,567; 12.3456 -> 12.35; "-" -> –
    awk -v v="$1" 'BEGIN {
        if (v == "" || v == "-") { print "–"; exit }
        a = (v < 0) ? -v : v
        if (a >= 1000) {
            s = sprintf("%.0f", a); out = ""
            while (length(s) > 3) { out = "," substr(s, length(s) - 2) out; s = substr(s, 1, length(s) - 3) }
            print ((v < 0) ? "-" : "") s out
        } else if (v == int(v)) printf "%d\n", v; else if (a >= 100) printf "%.1f\n", v; else if (a >= 1) printf "%.2f\n", v; else printf "%.3g\n", v }'
}

SUM="$OUT/summary.md"
{
    echo "# weft benchmark results"
    echo
    echo "| | |"
    echo "|---|---|"
    echo "| date | $(date -u '+%Y-%m-%d %H:%M UTC') |"
    echo "| machine | $NPROC CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM |"
    echo "| kernel | $(uname -sr) |"
    echo "| load average at start / end | $LOADAVG / $LOADAVG_END |"
    echo "| weft | commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo 'none')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' + local changes'), $( [[ -x "$WEFT_BENCH" ]] && echo "${WEFT_BENCH#"$ROOT"/}" || echo 'weft-bench missing'), WEFT_THREADS=${WEFT_THREADS:-default} |"
    echo "| toolchains | $(go version 2>/dev/null | awk '{ print $3 }'), gcc $(gcc -dumpfullversion 2>/dev/null), Boost $(dpkg-query -W -f='${Version}' libboost-fiber-dev 2>/dev/null | cut -d- -f1), $("$RUSTC" --version 2>/dev/null | awk '{ print "rustc " $2 }'), tokio $(dpkg-query -W -f='${Version}' librust-tokio-dev 2>/dev/null | cut -d- -f1) |"
    echo "| run | reps=$REPS$( [[ $QUICK == 1 ]] && echo ', --quick (small N: not representative)')$( [[ $SKIP_SLOW == 1 ]] && echo ', --skip-slow'); workloads: $SELECTED; took ${ELAPSED} s |"
    echo
    echo "Medians over the repetitions (min–max beside). **weft vs peer** is oriented so that"
    echo "> 1 means weft is better: peer/weft for times and bytes, weft/peer for rates and speedup"
    echo "(bold: weft ahead). Runs were interleaved (A B C, A B C, …) in one session: compare ratios,"
    echo "never absolute figures across runs or machines. \`-inproc\` rows are references timed"
    echo "inside weft-bench; \`-gated\` is Go's valid park row (see README.md). weft's variant rows —"
    echo "\`weft-stack1k\` (1 KiB sub-page stacks per spawn: WEFT_BENCH_STACK=1k) and \`weft-segmented\` (the"
    echo "-DWEFT_SEGMENTED_STACKS=ON build, default configuration) and \`weft-1worker\` (WEFT_THREADS=1) —"
    echo "are compared with the best peer. \`tokio\` is Tokio's multi-thread runtime (one worker per CPU),"
    echo "\`tokio-ct\` its current-thread runtime; Tokio has no rendezvous channel, so its skynet and"
    echo "pingpong use channels of capacity 1."
    echo
    echo "What each run paid is in the two columns before the ratio: **faults/task**, the minor page"
    echo "faults of its timed part divided by n (getrusage \`ru_minflt\`; ~10 µs each on these VMs),"
    echo "and **ctx sw**, its voluntary + involuntary context switches (all threads); medians."
    echo
    echo "| workload | metric | peer | n | median | min–max | runs | peak RSS | faults/task | ctx sw | weft vs peer |"
    echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    while IFS=$'\t' read -r _ wl metric peer n medv minv maxv cnt rssm ratio _ _ fpt csw; do
        rsstxt="–"
        [[ "$rssm" != "-" ]] && rsstxt=$(awk -v k="$rssm" 'BEGIN { if (k >= 1048576) printf "%.2f GB", k / 1048576; else printf "%.1f MB", k / 1024 }')
        rtxt="–"
        if [[ "$ratio" != "-" ]]; then
            rtxt=$(awk -v r="$ratio" 'BEGIN { printf (r >= 1 ? "**%.2f×**" : "%.2f×"), r }')
        elif [[ "$peer" == weft ]]; then rtxt="(ref)"; fi
        pname=$peer; [[ "$peer" == weft ]] && pname="**weft**"
        [[ "$peer" == weft-* && "$peer" != *-yield && "$ratio" != "-" ]] && pname="$peer (vs best peer)"
        echo "| $wl | $metric | $pname | $(fmt_num "$n") | $(fmt_num "$medv") | $(fmt_num "$minv")–$(fmt_num "$maxv") | $cnt | $rsstxt | $(fmt_num "$fpt") | $(fmt_num "$csw") | $rtxt |"
    done <"$AGG"
    [[ -s "$AGG" ]] || echo "| (no results) | | | | | | | | | | |"
    echo
    if [[ ${#NOTES[@]} -gt 0 ]]; then
        echo "## Warnings during the run"
        echo
        for nt in "${NOTES[@]}"; do echo "- $nt"; done
        echo
    fi
    echo "Files: raw.csv (every metric of every run), lines.txt (the result lines as printed)$( [[ -f "$OUT/chart.png" ]] && echo ', chart.png (ratios of the main metrics)')$( [[ -f "$OUT/scaling.png" ]] && echo ', scaling.csv and scaling.png'), logs/."
} >"$SUM"

log "done in ${ELAPSED}s: $SUM"
[[ -f "$OUT/chart.png" ]] && log "chart: $OUT/chart.png"
[[ -f "$OUT/scaling.png" ]] && log "scaling: $OUT/scaling.png"
[[ ${#NOTES[@]} -gt 0 ]] && log "${#NOTES[@]} warning(s), listed in summary.md"
exit 0
