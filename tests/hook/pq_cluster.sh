#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# pq_cluster.sh — run a program against a PostgreSQL server of its own: a cluster initialised
# in a temporary directory, listening on 127.0.0.1 on a free port, stopped and removed
# however the run ends.
#
#   tests/hook/pq_cluster.sh PROGRAM [ARGS...]
#
# PROGRAM gets WEFT_PG_CONNINFO ("host=127.0.0.1 port=N user=postgres dbname=postgres").
# The server binaries come from $WEFT_PG_BIN, else the newest /usr/lib/postgresql/*/bin
# (Debian's postgresql package). PostgreSQL refuses to run as root: as root (CI) initdb and
# the server run as the `postgres` user the package created (setpriv), in a temporary
# directory that user owns; as anyone else, as that user. Nothing is created outside the
# temporary directory. Trust authentication, the Unix socket in the temporary directory,
# max_connections 130. Readiness is pg_isready's answer, not a sleep. Exits with PROGRAM's
# status; 77 (skipped, reason printed) as root without the postgres user, or without the
# server binaries when WEFT_NO_INSTALL=1 (without it, missing binaries are a failure: CI
# installs them through scripts/deps.sh hook).
set -u

[ $# -ge 1 ] || {
    echo "usage: pq_cluster.sh PROGRAM [ARGS...]" >&2
    exit 2
}
skip() {
    echo "pq_cluster: skipped: $*"
    exit 77
}

bin=${WEFT_PG_BIN:-}
if [ -z "$bin" ]; then
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && bin=$d # the glob sorts; version numbers of one width on Debian
    done
fi
if ! { [ -n "$bin" ] && [ -x "$bin/initdb" ] && [ -x "$bin/postgres" ] && [ -x "$bin/pg_isready" ]; }; then
    # As missing.sh: CI installs the package (scripts/deps.sh hook), so there it is a failure.
    [ "${WEFT_NO_INSTALL:-0}" = 1 ] &&
        skip "no PostgreSQL server binaries (initdb, postgres, pg_isready) and WEFT_NO_INSTALL=1"
    echo "pq_cluster: no PostgreSQL server binaries (initdb, postgres, pg_isready): run" \
        "scripts/deps.sh hook (Debian: postgresql), or set WEFT_PG_BIN" >&2
    exit 1
fi

as_pg=()
if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 ||
        skip "running as root and there is no 'postgres' user to run the server as (the postgresql package creates it)"
    as_pg=(setpriv --reuid=postgres --regid="$(id -g postgres)" --init-groups --)
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-pq.XXXXXX")
pg_pid=
prog_pid=
cleanup() {
    [ -z "$prog_pid" ] || kill -KILL "$prog_pid" 2>/dev/null
    if [ -n "$pg_pid" ] && kill -0 "$pg_pid" 2>/dev/null; then
        kill -QUIT "$pg_pid" 2>/dev/null # immediate shutdown: nothing here is worth keeping
        wait "$pg_pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' TERM INT
[ ${#as_pg[@]} -eq 0 ] || chown postgres: "$tmp"
chmod 700 "$tmp"

if ! "${as_pg[@]}" "$bin/initdb" -D "$tmp/data" -A trust -U postgres -E UTF8 --locale=C \
    --no-sync >"$tmp/initdb.log" 2>&1; then
    echo "pq_cluster: initdb failed:" >&2
    cat "$tmp/initdb.log" >&2
    exit 1
fi

py=/usr/bin/python3
[ -x "$py" ] || py=python3
free_port() {
    "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A free port can be taken between the probe and the server's bind: then try another one.
ready=0
for attempt in 1 2 3 4 5; do
    port=$(free_port) || exit 1
    "${as_pg[@]}" "$bin/postgres" -D "$tmp/data" -h 127.0.0.1 -p "$port" -k "$tmp" \
        -c max_connections=130 -c shared_buffers=16MB -c dynamic_shared_memory_type=mmap \
        -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
        >"$tmp/server.log" 2>&1 &
    pg_pid=$!
    deadline=$((SECONDS + 60)) # a safety net: the wait is for pg_isready's yes
    while kill -0 "$pg_pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
        if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -t 5; then
            ready=1
            break
        fi
        sleep 0.05
    done
    [ $ready -eq 1 ] && break
    if kill -0 "$pg_pid" 2>/dev/null; then
        echo "pq_cluster: the server did not become ready within 60 s:" >&2
        cat "$tmp/server.log" >&2
        exit 1
    fi
    wait "$pg_pid" 2>/dev/null
    pg_pid=
    if ! grep -q "could not bind\|Address already in use" "$tmp/server.log"; then
        echo "pq_cluster: the server exited:" >&2
        cat "$tmp/server.log" >&2
        exit 1
    fi
    echo "pq_cluster: port $port was taken meanwhile; another one"
done
[ $ready -eq 1 ] || {
    echo "pq_cluster: no free port after 5 attempts" >&2
    exit 1
}

echo "pq_cluster: PostgreSQL ($bin) ready on 127.0.0.1:$port; running $*"
# In the background and waited for, so that a SIGTERM (ctest's timeout) runs the trap at
# once rather than after the program: bash defers traps until a foreground child exits.
WEFT_PG_CONNINFO="host=127.0.0.1 port=$port user=postgres dbname=postgres" "$@" &
prog_pid=$!
rc=0
wait "$prog_pid" || rc=$?
prog_pid=
if [ $rc -ne 0 ]; then
    echo "pq_cluster: $1 exited with status $rc; the server's log:" >&2
    tail -n 50 "$tmp/server.log" >&2
fi
exit $rc
