#!/usr/bin/env bash
# test_servers.sh — end-to-end checks of the network samples (echo_server, http_hello,
# resp_server): start each on a free 127.0.0.1 port, talk to it with a small Python client
# (pipelining, partial sends, large payloads, protocol corner cases), then SIGTERM it with
# connections still open and expect its shutdown line and exit status 0.
#
#   tests/test_servers.sh [SAMPLES_DIR]      (default: build/samples)
#
# Needs python3 (skips with exit 0 and a message if it is missing). Prints
# "N passed, N failed" last.
set -uo pipefail
dir=${1:-build/samples}
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

run_one() { # name, client python code (gets PORT)
    local name=$1 code=$2 port pid out rc
    port=$(free_port)
    out=$(mktemp)
    "$dir/$name" "$port" >"$out" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        grep -q "listening on 127.0.0.1:$port" "$out" && break
        sleep 0.05
    done
    if PORT=$port timeout 60 python3 -c "$code"; then
        echo "test_servers: $name client checks passed"
        pass=$((pass + 1))
    else
        echo "test_servers: $name client checks FAILED"
        fail=$((fail + 1))
    fi
    # Shutdown with two idle connections open: both are cancelled, exit status 0.
    PORT=$port python3 - <<'EOF' &
import os, socket, time
s1 = socket.create_connection(("127.0.0.1", int(os.environ["PORT"])))
s2 = socket.create_connection(("127.0.0.1", int(os.environ["PORT"])))
time.sleep(3)
EOF
    local holder=$!
    sleep 0.5
    kill -TERM "$pid"
    rc=0
    timeout 10 tail --pid="$pid" -f /dev/null || rc=124
    wait "$pid" || rc=$?
    kill "$holder" 2>/dev/null
    wait "$holder" 2>/dev/null
    if [ $rc -eq 0 ] && grep -q "$name: shut down (2 connections cancelled)" "$out"; then
        echo "test_servers: $name shutdown passed"
        pass=$((pass + 1))
    else
        echo "test_servers: $name shutdown FAILED (exit $rc)"
        cat "$out"
        fail=$((fail + 1))
        kill -KILL "$pid" 2>/dev/null
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
'

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
'

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
'

echo "test_servers: $pass passed, $fail failed"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
