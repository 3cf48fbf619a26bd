#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_servers.sh — end-to-end checks of the network samples (echo_server, http_hello,
# resp_server): start each on a free 127.0.0.1 port, talk to it with a small Python client
# (pipelining, partial sends, large payloads, protocol corner cases), then SIGTERM it with
# connections still open and expect its shutdown line and exit status 0. Hostile clients:
# idle and slowloris connections closed by the deadlines (servers started with a 0.3 s
# TIMEOUT), accept failing with EMFILE (ulimit -n) reported at most once a second, RESP
# bulk headers beyond the query buffer refused.
# No check waits for a duration: each waits for an event (a line printed, a reply, a close),
# with a generous deadline only as a safety net — python3 may be a slow-starting shim.
#
#   tests/test_servers.sh [SAMPLES_DIR]      (default: build/samples)
#   tests/test_servers.sh SAMPLES_DIR --sim SEED
#
# --sim SEED: the shutdown checks only, each server started with WEFT_SEED=SEED (deterministic
# simulation, weft.h; the clients stay real processes): one request served on a connection,
# then two connections held open, SIGTERM, "shut down (2 connections cancelled)" and exit 0.
# What that makes deterministic is the server's own timeline once the signal is in: the
# shutdown (tcp_server.c) cancels the acceptor and every connection, closes them and waits on
# a wait group — coroutines only, no timer (it has no grace deadline: connections are
# cancelled at once). What it cannot: when connections, requests and the signal arrive (fd
# readiness and weft's signal thread are the outside world), and the idle deadlines (TIMEOUT)
# — while the server waits for its sockets, virtual time runs at real speed (src/core/sim.c).
#
# Needs python3 (skips with exit 0 and a message if it is missing). Prints
# "N passed, N failed" last.
set -uo pipefail
dir=${1:-build/samples}
server_env=()
sim_seed=
if [ "${2-}" = --sim ]; then
    sim_seed=${3:?"--sim needs a seed"}
    server_env=("WEFT_SEED=$sim_seed")
fi
if ! command -v python3 >/dev/null; then
    echo "test_servers: python3 not found: skipped"
    exit 0
fi
for s in echo_server http_hello resp_server; do
    [ -x "$dir/$s" ] || { echo "test_servers: $dir/$s not built"; exit 1; }
done

pass=0
fail=0
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_for FILE REGEX: until a line of FILE matches (an event, not a duration; the 60 s are
# only a safety net against a hang). python3 may be a slow shim: nothing here assumes that
# a process started "a moment ago" has done anything yet.
wait_for() {
    local i
    for i in $(seq 1200); do
        grep -Eq -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "test_servers: no line /$2/ in $1 within 60 s"
    return 1
}

check() { # NAME-OF-CHECK STATUS
    if [ "$2" -eq 0 ]; then
        echo "test_servers: $1 passed"
        pass=$((pass + 1))
    else
        echo "test_servers: $1 FAILED"
        fail=$((fail + 1))
    fi
}

# The shutdown check's client: opens two connections and completes one request on each
# (so both were accepted and are being served), says "ready", then holds them until killed.
holder='
import os, socket, sys, time
port, req, n = int(os.environ["PORT"]), os.environ["REQ"].encode().decode("unicode_escape").encode("latin-1"), int(os.environ["RLEN"])
socks = []
for _ in range(2):
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(60)
    s.sendall(req)
    got = b""
    while len(got) < n:
        c = s.recv(n - len(got)); assert c, "closed"; got += c
    socks.append(s)
print("ready", flush=True)
time.sleep(600)
'

# run_one NAME CLIENT-CODE [SHUTDOWN-REQUEST SHUTDOWN-REPLY-LENGTH [SERVER-ARGS...]]:
# start the server, run the client (gets PORT), then (when a request is given) SIGTERM it
# with two idle connections open: both are cancelled, exit status 0.
run_one() {
    local name=$1 code=$2 req=${3:-} rlen=${4:-0} port pid out hout rc
    shift 2
    [ $# -ge 2 ] && shift 2
    port=$(free_port)
    out=$(mktemp)
    env ${server_env[@]+"${server_env[@]}"} "$dir/$name" "$port" "$@" >"$out" 2>&1 &
    pid=$!
    wait_for "$out" "listening on 127.0.0.1:$port"
    PORT=$port SERVER_PID=$pid SERVER_OUT=$out timeout 120 python3 -c "$code"
    check "$name${*:+ $*} client checks" $?
    if [ -n "$req" ]; then
        hout=$(mktemp)
        PORT=$port REQ=$req RLEN=$rlen python3 -c "$holder" >"$hout" 2>&1 &
        local holder_pid=$!
        rc=0
        wait_for "$hout" '^ready$' || rc=1
        kill -TERM "$pid"
        timeout 60 tail --pid="$pid" -f /dev/null || rc=124
        wait "$pid" || rc=$?
        kill "$holder_pid" 2>/dev/null
        wait "$holder_pid" 2>/dev/null
        grep -q "$name: shut down (2 connections cancelled)" "$out" || rc=1
        ! grep -q "ignoring WEFT_SEED" "$out" || rc=1 # --sim: the seed was taken
        check "$name shutdown" $rc
        [ $rc -eq 0 ] || { cat "$out" "$hout"; kill -KILL "$pid" 2>/dev/null; }
        rm -f "$hout"
    else
        kill -TERM "$pid"
        wait "$pid" || { echo "test_servers: $name exited with $?"; cat "$out"; fail=$((fail + 1)); }
    fi
    rm -f "$out"
}

common='
import os, socket, time, random
PORT = int(os.environ["PORT"])
def conn():
    s = socket.create_connection(("127.0.0.1", PORT)); s.settimeout(20); return s
def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        assert c, "closed early after %d of %d bytes" % (len(b), n)
        b += c
    return b
def recv_until_closed(s):
    b = b""
    while True:
        c = s.recv(65536)
        if not c: return b
        b += c
'

if [ -n "$sim_seed" ]; then
    echo "test_servers: shutdown checks with the servers under WEFT_SEED=$sim_seed"
    run_one echo_server "$common"'
s = conn(); s.sendall(b"hi"); assert recv_exact(s, 2) == b"hi"
' 'x' 1
    run_one http_hello "$common"'
s = conn(); s.sendall(b"GET / HTTP/1.1\r\n\r\n"); assert recv_exact(s, 78).startswith(b"HTTP/1.1 200 OK")
' 'GET / HTTP/1.1\r\n\r\n' 78
    run_one resp_server "$common"'
s = conn(); s.sendall(b"PING\r\n"); assert recv_exact(s, 7) == b"+PONG\r\n"
' 'PING\r\n' 7
    echo "test_servers: $pass passed, $fail failed"
    [ $fail -eq 0 ]
    exit
fi

run_one echo_server "$common"'
s = conn()
data = bytes(random.getrandbits(8) for _ in range(1 << 20))
import threading
t = threading.Thread(target=lambda: s.sendall(data)); t.start()
assert recv_exact(s, len(data)) == data
t.join()
for i in range(50):
    s.sendall(b"line %d\n" % i); assert recv_exact(s, len(b"line %d\n" % i)) == b"line %d\n" % i
s.close()
' 'x' 1

# An idle connection is closed after IDLE_SECONDS (0.3 here): wait for the close itself.
run_one echo_server "$common"'
s = conn()
s.sendall(b"hi"); assert recv_exact(s, 2) == b"hi"
assert recv_until_closed(s) == b""
' '' 0 0.3

# accept failing with EMFILE (idle clients hold every descriptor the server may open): the
# message comes at most once a second, with the count of the failures not reported, and the
# server serves again once descriptors are free. The bound is on lines per elapsed second,
# measured here, not on how fast anything runs.
emfile_port=$(free_port)
emfile_out=$(mktemp)
(ulimit -n 40 && WEFT_THREADS=1 exec "$dir/echo_server" "$emfile_port") >"$emfile_out" 2>&1 &
emfile_pid=$!
wait_for "$emfile_out" "listening on 127.0.0.1:$emfile_port"
PORT=$emfile_port SERVER_OUT=$emfile_out timeout 120 python3 -c "$common"'
import re
OUT = os.environ["SERVER_OUT"]
def lines():
    return [l for l in open(OUT).read().splitlines() if "accept:" in l]
t0 = time.monotonic()
held = [conn() for _ in range(60)]   # more than 40 descriptors: accept fails with EMFILE
while len(lines()) < 3:              # an event (the third report), not a duration
    assert time.monotonic() - t0 < 60, "no repeated accept reports: %r" % lines()
    time.sleep(0.05)
got = lines()                        # counted before the elapsed time is read
elapsed = time.monotonic() - t0
assert all("Too many open files" in l for l in got), got
assert len(got) <= 1 + elapsed, "%d reports in %.2f s" % (len(got), elapsed)
m = re.search(r"\((\d+) more since the last report\)", got[-1])
assert m and int(m.group(1)) > 0, got[-1]
for c in held: c.close()
s = conn(); s.sendall(b"back"); assert recv_exact(s, 4) == b"back"
'
check "echo_server accept EMFILE reports" $?
kill -TERM "$emfile_pid"
wait "$emfile_pid" || { echo "test_servers: echo_server (EMFILE) exited with $?"; cat "$emfile_out"; fail=$((fail + 1)); }
rm -f "$emfile_out"

run_one http_hello "$common"'
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\nContent-Type: text/plain\r\n\r\nHello, World!\n"
CLOSE = OK.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
KEEP = OK.replace(b"\r\n\r\n", b"\r\nConnection: keep-alive\r\n\r\n")
s = conn()
for i in range(3):  # keep-alive
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"); assert recv_exact(s, len(OK)) == OK
# pipelined, with a body to skip, sent in one go and then byte by byte
req = (b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n" +
       b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world" +
       b"GET /c HTTP/1.1\r\nhost: x\r\nX-Long: " + b"y" * 3000 + b"\r\n\r\n")
s.sendall(req); assert recv_exact(s, 3 * len(OK)) == 3 * OK
for ch in req:
    s.sendall(bytes([ch]))
assert recv_exact(s, 3 * len(OK)) == 3 * OK
# Connection: close ends the connection after the response
s.sendall(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n")
assert recv_until_closed(s) == CLOSE
# HTTP/1.0: closes unless keep-alive is asked for
s = conn(); s.sendall(b"GET / HTTP/1.0\r\n\r\n"); assert recv_until_closed(s) == CLOSE
s = conn(); s.sendall(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"); assert recv_exact(s, len(KEEP)) == KEEP
s.sendall(b"GET / HTTP/1.0\r\n\r\n"); assert recv_until_closed(s) == CLOSE
# a header line too long: 431
s = conn(); s.sendall(b"GET / HTTP/1.1\r\nX-Big: " + b"x" * 10000 + b"\r\n\r\n"); assert recv_until_closed(s).startswith(b"HTTP/1.1 431 ")
# garbage and oversized header lines get 4xx and a close
s = conn(); s.sendall(b"NONSENSE\r\n\r\n"); assert recv_until_closed(s).startswith(b"HTTP/1.1 400 ")
s = conn(); s.sendall(b"GET /" + b"x" * 10000 + b" HTTP/1.1\r\n\r\n"); assert recv_until_closed(s).startswith(b"HTTP/1.1 431 ")
# many connections at once
socks = [conn() for _ in range(200)]
for c in socks: c.sendall(b"GET / HTTP/1.1\r\n\r\n")
for c in socks: assert recv_exact(c, len(OK)) == OK; c.close()
' 'GET / HTTP/1.1\r\n\r\n' 78

# Deadlines (TIMEOUT 0.3 s here): an idle keep-alive connection, a silent one, and a client
# sending its headers a byte at a time (slowloris) are all closed; wait for the close.
run_one http_hello "$common"'
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\nContent-Type: text/plain\r\n\r\nHello, World!\n"
s = conn(); assert recv_until_closed(s) == b""
s = conn(); s.sendall(b"GET / HTTP/1.1\r\n\r\n"); assert recv_exact(s, len(OK)) == OK
assert recv_until_closed(s) == b""
s = conn(); s.sendall(b"GET / HTTP/1.1\r\n")
t0 = time.monotonic()
try:
    while True:  # a byte every 50 ms, never the blank line: the head deadline ends it
        assert time.monotonic() - t0 < 60, "still open after 60 s"
        s.sendall(b"X"); time.sleep(0.05)
except (BrokenPipeError, ConnectionResetError):
    pass
' '' 0 0.3

run_one resp_server "$common"'
def cmd(*args):
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
s = conn()
def rt(req, n): s.sendall(req); return recv_exact(s, n)
assert rt(cmd(b"PING"), 7) == b"+PONG\r\n"
assert rt(b"PING\r\n", 7) == b"+PONG\r\n"
assert rt(cmd(b"ping", b"hi"), 8) == b"$2\r\nhi\r\n"
assert rt(cmd(b"SET", b"k", b"v1"), 5) == b"+OK\r\n"
assert rt(cmd(b"GET", b"k"), 8) == b"$2\r\nv1\r\n"
assert rt(cmd(b"GET", b"nokey"), 5) == b"$-1\r\n"
assert rt(cmd(b"INCR", b"n"), 4) == b":1\r\n"
assert rt(cmd(b"INCR", b"n"), 4) == b":2\r\n"
assert rt(cmd(b"DECRBY", b"n", b"5"), 5) == b":-3\r\n"
e = b"-ERR value is not an integer or out of range\r\n"
assert rt(cmd(b"INCR", b"k"), len(e)) == e
assert rt(cmd(b"DEL", b"k", b"n", b"zz"), 4) == b":2\r\n"
assert rt(cmd(b"EXISTS", b"k"), 4) == b":0\r\n"
assert rt(cmd(b"CONFIG", b"GET", b"save"), 20) == b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n"
e = b"-ERR unknown command \x27FOO\x27\r\n"
assert rt(cmd(b"FOO"), len(e)) == e
# pipelining: 1000 commands in one send, sent again byte-sliced
batch = b"".join(cmd(b"SET", b"key:%d" % i, b"val:%d" % i) for i in range(1000))
assert rt(batch, 5000) == b"+OK\r\n" * 1000
gets = b"".join(cmd(b"GET", b"key:%d" % i) for i in range(1000))
want = b"".join(b"$%d\r\nval:%d\r\n" % (len(b"val:%d" % i), i) for i in range(1000))
assert rt(gets, len(want)) == want
for i in range(0, len(gets), 7): s.sendall(gets[i:i + 7])
assert recv_exact(s, len(want)) == want
# a large value (4 MiB), binary-safe
big = bytes(random.getrandbits(8) for _ in range(4 << 20))
assert rt(cmd(b"SET", b"big\r\nkey", big), 5) == b"+OK\r\n"
hdr = b"$%d\r\n" % len(big)
assert rt(cmd(b"GET", b"big\r\nkey"), len(hdr) + len(big) + 2) == hdr + big + b"\r\n"
assert rt(cmd(b"DBSIZE"), 7) == b":1001\r\n"
# QUIT replies then closes; a protocol error replies then closes
s.sendall(cmd(b"QUIT")); assert recv_until_closed(s) == b"+OK\r\n"
s = conn(); s.sendall(b"*1\r\n$x\r\n"); assert recv_until_closed(s).startswith(b"-ERR Protocol error")
# several connections share one store
a, b = conn(), conn()
a.sendall(cmd(b"SET", b"shared", b"1")); assert recv_exact(a, 5) == b"+OK\r\n"
b.sendall(cmd(b"GET", b"shared")); assert recv_exact(b, 7) == b"$1\r\n1\r\n"
# an empty value is a value: GET returns it, INCR refuses it (as Redis does)
s = conn()
assert rt(cmd(b"SET", b"e", b""), 5) == b"+OK\r\n"
assert rt(cmd(b"GET", b"e"), 6) == b"$0\r\n\r\n"
assert rt(cmd(b"EXISTS", b"e"), 4) == b":1\r\n"
e = b"-ERR value is not an integer or out of range\r\n"
assert rt(cmd(b"INCR", b"e"), len(e)) == e
assert rt(cmd(b"SET", b"e", b""), 5) == b"+OK\r\n"   # over an empty value too
assert rt(cmd(b"GET", b"e"), 6) == b"$0\r\n\r\n"
# a bulk announcing more than the query buffer may hold: refused at its header, then closed
s = conn(); s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\n")
assert recv_until_closed(s) == b"-ERR Protocol error: invalid bulk length\r\n"
s = conn(); s.sendall(b"*100000\r\n")
assert recv_until_closed(s) == b"-ERR Protocol error: invalid multibulk length\r\n"
'  'PING\r\n' 7

# Deadlines (TIMEOUT 0.3 s here): a silent client, an idle one, and one trickling a command
# are closed; wait for the close.
run_one resp_server "$common"'
s = conn(); assert recv_until_closed(s) == b""
s = conn(); s.sendall(b"PING\r\n"); assert recv_exact(s, 7) == b"+PONG\r\n"
assert recv_until_closed(s) == b""
s = conn()
t0 = time.monotonic()
try:
    while True:  # a byte every 50 ms of a command that never ends
        assert time.monotonic() - t0 < 60, "still open after 60 s"
        s.sendall(b"x"); time.sleep(0.05)
except (BrokenPipeError, ConnectionResetError):
    pass
' '' 0 0.3

# A bulk header reserves nothing: ten connections each announce a 32 MiB value before any
# of its bytes, under an address-space limit of about 250 MB above the server's start-up
# size. Reserving each announced length up front (320 MB) makes some fail (the server then
# closed them); growing with the data, every SET completes, one after the other. Skipped
# under the sanitizers (their shadow memory needs terabytes of address space).
# (grep reads all of nm's output: with pipefail, grep -q's early exit would fail the pipe)
if nm "$dir/resp_server" 2>/dev/null | grep -E '__(a|t)san_init' >/dev/null; then
    echo "test_servers: resp_server memory check skipped (sanitizer build)"
else
    mem_port=$(free_port)
    mem_out=$(mktemp)
    (ulimit -v 350000 && WEFT_THREADS=2 exec "$dir/resp_server" "$mem_port") >"$mem_out" 2>&1 &
    mem_pid=$!
    wait_for "$mem_out" "listening on 127.0.0.1:$mem_port"
    PORT=$mem_port timeout 300 python3 -c "$common"'
N, SIZE = 10, 32 << 20
hdr = b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n" % SIZE
socks = [conn() for _ in range(N)]
for s in socks: s.sendall(hdr)
data = b"v" * SIZE + b"\r\n"
for i, s in enumerate(socks):
    s.sendall(data)
    assert recv_exact(s, 5) == b"+OK\r\n", "SET %d" % i
    s.close()
s = conn(); s.sendall(b"*2\r\n$6\r\nEXISTS\r\n$3\r\nbig\r\n"); assert recv_exact(s, 4) == b":1\r\n"
'
    check "resp_server bulk headers reserve nothing" $?
    kill -TERM "$mem_pid"
    wait "$mem_pid" || { echo "test_servers: resp_server (memory) exited with $?"; cat "$mem_out"; fail=$((fail + 1)); }
    rm -f "$mem_out"
fi

echo "test_servers: $pass passed, $fail failed"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
