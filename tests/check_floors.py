#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""check_floors.py — test_floors: the core's layering, checked on the built objects.

Usage: check_floors.py NM LIBRARY FLOOR_TABLE
  NM           the toolchain's nm (CMAKE_NM: a cross build's own)
  LIBRARY      the static library (libweft.a): one object per source file
  FLOOR_TABLE  "file:floor;file:floor;..." (CMakeLists.txt weft_floors)

Every defined weft_/weft__ symbol is mapped to the object that defines it; every symbol an
object leaves undefined (its uses) is looked up there. Fails, naming the offending pair, when
  - a file names a symbol defined on a higher floor than its own;
  - coro.c, stack.c or runq.c name anything of worker.c (caches are handed in);
  - chan.c names anything of select.c;
  - any file names a symbol of run.c (weft_run is the roof);
  - two files of one floor name each other, unless the pair is listed in SAME_FLOOR_TIES
    (a circle, even on one floor, means neither file can be read without the other);
  - an object of the library has no floor in the table.
Upward control goes only through function pointers set from above, which nm cannot see and
this check allows (src/core/worker.h "seams").
"""
import re
import subprocess
import sys

RULES_NEVER = [  # (user, defining file, why)
    ({"coro.c", "stack.c", "runq.c"}, "worker.c", "objects never see the worker"),
    ({"chan.c"}, "select.c", "chan.c never calls select.c"),
]
ROOF = "run.c"
# Same-floor pairs that name each other on purpose (one mechanism in two files).
SAME_FLOOR_TIES = {
    frozenset({"gate.c", "wait.c"}),  # the gate's sweep completes thread parkers; a parker's
                                      # sleep registers with the gate (plain threads' waits)
    frozenset({"deadlock.c", "stall.c"}),  # hang.h: the watchdog runs the deadlock check,
                                           # which asks the watchdog to look again
}


def source_of(obj):
    """libweft.a member name -> source file name: sched.c.o -> sched.c, jump_x.S.o -> jump."""
    name = re.sub(r"\.(o|obj)$", "", obj)
    if name.startswith("jump_"):
        return "jump"
    return name


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    nm, lib, table = sys.argv[1:]
    floors = {}
    for entry in table.replace(",", ";").split(";"):
        entry = entry.strip()
        if entry:
            f, _, n = entry.rpartition(":")
            floors[f] = int(n)
    out = subprocess.run([nm, "-A", lib], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("check_floors: %s -A %s failed: %s" % (nm, lib, out.stderr.strip()))
    defs, uses, objects = {}, {}, set()
    for line in out.stdout.splitlines():
        # "libweft.a:sched.c.o:0000000000000000 T weft__park" or "...:                 U weft_now"
        m = re.match(r"^(.*?):([^:]+):\s*(?:[0-9a-fA-F]+\s+)?([A-Za-z?])\s+(\S+)$", line)
        if not m:
            continue
        src, kind, sym = source_of(m.group(2)), m.group(3), m.group(4)
        objects.add(src)
        if not sym.startswith("weft"):
            continue
        if kind == "U":
            uses.setdefault(src, set()).add(sym)
        elif kind.isupper() and kind not in "N":
            defs.setdefault(sym, src)
    bad = []
    for src in sorted(objects):
        if src not in floors:
            bad.append("%s: not in the floor table (CMakeLists.txt weft_floors)" % src)
    for src in sorted(uses):
        for sym in sorted(uses[src]):
            d = defs.get(sym)
            if d is None or d == src or src not in floors or d not in floors:
                continue
            fs, fd = floors[src], floors[d]
            if d == ROOF:
                bad.append("%s (floor %d) names %s defined in %s (the roof: nothing names it)"
                           % (src, fs, sym, d))
            elif fd > fs:
                bad.append("%s (floor %d) names %s defined in %s (floor %d)"
                           % (src, fs, sym, d, fd))
            for users, target, why in RULES_NEVER:
                if src in users and d == target:
                    bad.append("%s names %s defined in %s (%s)" % (src, sym, d, why))
    edges = {}
    for src in uses:
        for sym in uses[src]:
            d = defs.get(sym)
            if d is not None and d != src:
                edges.setdefault((src, d), sym)
    for (a, b), sym in sorted(edges.items()):
        if a < b and (b, a) in edges and frozenset({a, b}) not in SAME_FLOOR_TIES:
            bad.append("%s names %s defined in %s, and %s names %s defined in %s (a circle)"
                       % (a, sym, b, b, edges[(b, a)], a))
    if not defs:
        sys.exit("check_floors: no weft symbols found in %s" % lib)
    for b in bad:
        print("test_floors: " + b)
    if bad:
        print("test_floors: %d violation(s) of the floor plan (CMakeLists.txt weft_floors, "
              "src/core/worker.h)" % len(bad))
        return 1
    print("test_floors: %d objects, %d weft symbols, floors respected" % (len(objects), len(defs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
