#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# resolver_ns.sh — run a program against the test's own name server and hosts file, without
# touching the machine's resolver configuration.
#
#   tests/resolve/resolver_ns.sh PROGRAM [ARGS...]
#
# Re-runs itself in a private mount namespace (unshare -m; needs root, as in CI), starts
# tests/resolve/dns_slow.py on 127.0.0.1:53 (UDP; on a 127.0.53.x address when 127.0.0.1:53
# is taken), waits until it has bound its socket (it writes its address to a file), and
# bind-mounts over, in that namespace only:
#   /etc/resolv.conf    nameserver <its address>; options timeout:30 attempts:1
#   /etc/hosts          the machine's, plus "127.0.0.1 weft-hosts.test" (and localhost, if
#                       the machine's lacks it)
#   /etc/nsswitch.conf  the machine's with "hosts: files dns" (no systemd-resolved, mdns...;
#                       a machine without one keeps glibc's default, which asks dns too)
# then runs PROGRAM with WEFT_DNS_ADDR=<the name server's address>. The name server is
# stopped and the temporary directory removed however it ends; the namespace (and its
# mounts) goes away with its last process. Exits with PROGRAM's status, or 77 (skipped,
# reason printed) when not root or when unshare is not permitted here.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -ge 1 ] || {
    echo "usage: resolver_ns.sh PROGRAM [ARGS...]" >&2
    exit 2
}

if [ "${WEFT_RESOLVER_NS_INNER:-}" != 1 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "resolver_ns: skipped: needs root (a private mount namespace to bind-mount" \
            "/etc/resolv.conf in, and UDP port 53 for the test's name server)"
        exit 77
    fi
    if ! unshare -m --propagation private true 2>/dev/null; then
        echo "resolver_ns: skipped: 'unshare -m' is not permitted here (no private mount" \
            "namespace: the machine's /etc/resolv.conf is not to be touched)"
        exit 77
    fi
    exec unshare -m --propagation private env WEFT_RESOLVER_NS_INNER=1 bash "$0" "$@"
fi

# ---- inside the private mount namespace ------------------------------------------------------
py=/usr/bin/python3
[ -x "$py" ] || py=python3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-resolve.XXXXXX")
dns_pid=
prog_pid=
cleanup() {
    [ -z "$prog_pid" ] || kill -KILL "$prog_pid" 2>/dev/null
    if [ -n "$dns_pid" ]; then
        kill "$dns_pid" 2>/dev/null
        wait "$dns_pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

"$py" "$here/dns_slow.py" --ready "$tmp/dns.addr" --parent $$ --go-timeout 20 2>"$tmp/dns.log" &
dns_pid=$!
# Wait for the event (the address file), not for a time; the deadline only guards a hang.
deadline=$((SECONDS + 30))
while [ ! -s "$tmp/dns.addr" ]; do
    if ! kill -0 "$dns_pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
        echo "resolver_ns: the test name server did not start:" >&2
        cat "$tmp/dns.log" >&2
        exit 1
    fi
    sleep 0.05
done
addr=$(cat "$tmp/dns.addr")

printf 'nameserver %s\noptions timeout:30 attempts:1\n' "$addr" >"$tmp/resolv.conf"
cp /etc/hosts "$tmp/hosts"
grep -Eq '^[[:space:]]*127\.0\.0\.1[[:space:]].*\blocalhost\b' "$tmp/hosts" ||
    echo "127.0.0.1 localhost" >>"$tmp/hosts"
echo "127.0.0.1 weft-hosts.test" >>"$tmp/hosts"
files="resolv.conf hosts"
if [ -f /etc/nsswitch.conf ]; then # (without one, glibc's default asks dns, then files)
    grep -v '^[[:space:]]*hosts:' /etc/nsswitch.conf >"$tmp/nsswitch.conf"
    echo "hosts: files dns" >>"$tmp/nsswitch.conf"
    files="$files nsswitch.conf"
fi
for f in $files; do
    if ! mount --bind "$tmp/$f" "/etc/$f"; then
        echo "resolver_ns: cannot bind-mount over /etc/$f in the private namespace" >&2
        exit 1
    fi
done
# A name service cache daemon would answer from the machine's configuration: hide it.
[ -d /var/run/nscd ] && mount -t tmpfs none /var/run/nscd 2>/dev/null

echo "resolver_ns: name server on $addr:53; running $*"
# In the background and waited for, so that a SIGTERM (ctest's timeout) runs the trap at
# once rather than after the program: bash defers traps until a foreground child exits.
WEFT_DNS_ADDR=$addr "$@" &
prog_pid=$!
rc=0
wait "$prog_pid" || rc=$?
prog_pid=
if [ "$rc" -ne 0 ]; then
    echo "resolver_ns: $1 exited with status $rc; the name server's log:" >&2
    cat "$tmp/dns.log" >&2
fi
exit "$rc"
