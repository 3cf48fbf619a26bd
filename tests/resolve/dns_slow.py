#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""dns_slow.py — a tiny UDP name server for the name-resolution tests (tests/resolve/).

    dns_slow.py --ready FILE [--parent PID] [--delay-ms 200] [--go-timeout 30]

Binds UDP port 53 on 127.0.0.1 (on 127.0.53.1, 127.0.53.2... when that is taken), writes the
address it bound to FILE (written to FILE.tmp and renamed: the file appears complete), and
answers, for the zone weft.test only:
  slow.weft.test  A 127.0.0.1, but only once a program said "WEFT go" (below) and at least
                  --delay-ms after the query came: the slow lookup the tests run
  fast.weft.test  A 127.0.0.1 at once
  other names     NXDOMAIN at once (nx.weft.test is the tests' unresolvable name)
AAAA (and any other type) of an existing name: no records (NOERROR), at once.

Control datagrams (not DNS; they start with "WEFT "), the event protocol of the slow lookup:
  "WEFT hello"  a program registers the sender as its watcher; answered "WEFT ok"
  "WEFT go"     the watcher's permission to answer the slow query; answered "WEFT ok"
When a slow query arrives, the watcher (if one registered) is sent "WEFT query": it then
shows it makes progress while its lookup waits, and says "go". Without a "go" within
--go-timeout seconds the slow query gets SERVFAIL (the test then fails, and says so here).

Runs until SIGTERM/SIGINT, or until the process --parent names is no longer its parent (the
test script was killed). Standard library only: /usr/bin/python3 or any python3 runs it."""
import argparse
import os
import select
import signal
import socket
import struct
import sys
import time

ZONE = "weft.test"


def log(msg):
    print("dns_slow: " + msg, file=sys.stderr, flush=True)


def parse_question(pkt):
    """(id, flags, qname lowercased without the final dot, qtype, end of question) or None."""
    if len(pkt) < 12:
        return None
    qid, flags, qd = struct.unpack("!HHH", pkt[:6])
    if flags & 0x8000 or qd != 1:  # a response, or not exactly one question
        return None
    labels, i = [], 12
    while True:
        if i >= len(pkt):
            return None
        n = pkt[i]
        i += 1
        if n == 0:
            break
        if n & 0xC0 or i + n > len(pkt):  # no compression in a question
            return None
        labels.append(pkt[i:i + n].decode("ascii", "replace").lower())
        i += n
    if i + 4 > len(pkt):
        return None
    qtype, _qclass = struct.unpack("!HH", pkt[i:i + 4])
    return qid, flags, ".".join(labels), qtype, i + 4


def reply(pkt, q, rcode, a_addr=None):
    """The response to query pkt: its question echoed, an A record when a_addr is given."""
    qid, flags, _name, _qtype, qend = q
    rd = flags & 0x0100
    hdr = struct.pack("!HHHHHH", qid, 0x8000 | 0x0400 | rd | rcode, 1, 1 if a_addr else 0, 0, 0)
    out = hdr + pkt[12:qend]
    if a_addr:  # name: a pointer to the question's name at offset 12; class IN; TTL 0
        out += struct.pack("!HHHIH", 0xC00C, 1, 1, 0, 4) + socket.inet_aton(a_addr)
    return out


def bind_socket():
    last = None
    for addr in ["127.0.0.1"] + ["127.0.53.%d" % i for i in range(1, 20)]:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((addr, 53))
            return s, addr
        except OSError as e:  # taken (a local resolver), or not allowed
            last = e
            s.close()
    raise SystemExit("dns_slow: cannot bind UDP port 53 on 127.0.0.1 nor 127.0.53.x: %s" % last)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ready", required=True)
    ap.add_argument("--parent", type=int, default=0)
    ap.add_argument("--delay-ms", type=int, default=200)
    ap.add_argument("--go-timeout", type=float, default=30.0)
    args = ap.parse_args()

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    sock, addr = bind_socket()
    with open(args.ready + ".tmp", "w") as f:
        f.write(addr + "\n")
    os.rename(args.ready + ".tmp", args.ready)
    log("serving %s:53" % addr)

    watcher = None
    go = False
    pending = []  # slow queries: (arrival time, sender, packet, question)
    while not stop:
        if args.parent and os.getppid() != args.parent:
            log("the test script is gone: exiting")
            break
        now = time.monotonic()
        for p in list(pending):
            t, src, pkt, q = p
            if go and now - t >= args.delay_ms / 1000.0:
                sock.sendto(reply(pkt, q, 0, "127.0.0.1"), src)
                log("answered slow %s after %.0f ms" % (q[2], (now - t) * 1000))
                pending.remove(p)
            elif now - t >= args.go_timeout:
                sock.sendto(reply(pkt, q, 2), src)  # SERVFAIL
                log("no 'WEFT go' within %.0f s of the slow query: SERVFAIL" % args.go_timeout)
                pending.remove(p)
        wait = 0.5
        for t, _s, _p, _q in pending:
            wait = min(wait, max(0.0, t + args.delay_ms / 1000.0 - now) if go else 0.5)
        try:
            ready, _, _ = select.select([sock], [], [], wait)
        except InterruptedError:
            continue
        if not ready:
            continue
        pkt, src = sock.recvfrom(4096)
        if pkt.startswith(b"WEFT "):
            cmd = pkt[5:].strip().decode("ascii", "replace")
            if cmd == "hello":
                watcher, go = src, False
            elif cmd == "go":
                go = True
            log("control '%s' from %s:%d" % (cmd, src[0], src[1]))
            sock.sendto(b"WEFT ok", src)
            continue
        q = parse_question(pkt)
        if not q:
            continue
        name, qtype = q[2], q[3]
        log("query %s type %d from %s:%d" % (name, qtype, src[0], src[1]))
        if name not in ("slow." + ZONE, "fast." + ZONE):
            sock.sendto(reply(pkt, q, 3), src)  # NXDOMAIN
        elif qtype != 1:
            sock.sendto(reply(pkt, q, 0), src)  # exists, no records of that type
        elif name == "fast." + ZONE:
            sock.sendto(reply(pkt, q, 0, "127.0.0.1"), src)
        elif not any(p[1] == src and p[2][:2] == pkt[:2] for p in pending):  # not a resend
            pending.append((time.monotonic(), src, pkt, q))
            if watcher:
                sock.sendto(b"WEFT query", watcher)
    sock.close()


if __name__ == "__main__":
    main()
