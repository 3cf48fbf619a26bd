#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""check_trace.py JSON SVG SUMMARY EXPECT — tests/test_trace_tool.sh's checks of what
scripts/weft-trace.py made of a trace of tests/trace_prog.c. EXPECT is the program's
key=value line (its own counts and weft_stats'). Checked here, independently of the tool's
own bookkeeping: the JSON parses and is consistent (runs on worker lanes, never two at once on
one worker; a coroutine's spawn before its first run; every wake between a park of that
coroutine and its next run; each flow start has its end), the counts are what the program
did, the SVG has one lane per worker (and one for threads), the summary's numbers agree."""
import bisect
import json
import re
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def main(json_path, svg_path, summary_path, expect_line):
    exp = dict(w.split("=", 1) for w in expect_line.split())
    exp = {k: int(v) for k, v in exp.items()}
    with open(json_path) as f:
        doc = json.load(f)
    evs = doc["traceEvents"]
    threads = {e["tid"]: e["args"]["name"] for e in evs
               if e["ph"] == "M" and e["name"] == "thread_name"}
    worker_tids = {t for t, n in threads.items() if n.startswith("worker ")}
    check(len(worker_tids) == exp["workers"],
          "worker lanes %d, expected %d" % (len(worker_tids), exp["workers"]))
    check("threads" in threads.values(), "no lane for threads (the blocking job ran on one)")

    runs = [e for e in evs if e["ph"] == "X" and e.get("cat") == "run"]
    inst = [e for e in evs if e["ph"] == "i"]
    by_name = defaultdict(list)
    for e in inst:
        by_name[e["name"]].append(e)
    check(len(runs) > 0, "no runs")
    # runs only on worker lanes, never overlapping on one
    lanes = defaultdict(list)
    for r in runs:
        check(r["tid"] in worker_tids, "a run on tid %s, not a worker" % r["tid"])
        lanes[r["tid"]].append((r["ts"], r["ts"] + r["dur"], r["args"]["co"]))
    for tid, rs in lanes.items():
        rs.sort()
        for a, b in zip(rs, rs[1:]):
            check(a[1] <= b[0] + 1e-3, "runs overlap on tid %s: %r %r" % (tid, a, b))
    runs_of = defaultdict(list)
    for r in runs:
        runs_of[r["args"]["co"]].append(r["ts"])
    for v in runs_of.values():
        v.sort()
    parks_of = defaultdict(list)
    for name, es in by_name.items():
        if name.startswith("park: "):
            for e in es:
                parks_of[e["args"]["co"]].append(e["ts"])
    for v in parks_of.values():
        v.sort()
    # spawn before the first run
    spawns = by_name["spawn"]
    for s in spawns:
        co = s["args"]["child"]
        check(co in runs_of, "coroutine %d spawned, never ran" % co)
        if co in runs_of:
            check(s["ts"] <= runs_of[co][0], "coroutine %d ran before its spawn" % co)
    # every wake: its coroutine parked since its last run started, and runs again after
    for w in by_name["wake"]:
        co, t = w["args"]["co"], w["ts"]
        rs = runs_of.get(co, [])
        i = bisect.bisect_right(rs, t)
        if i == 0 or i == len(rs):
            failures.append("wake of %d at %s: no run before and after it" % (co, t))
            continue
        prev_run, next_run = rs[i - 1], rs[i]
        ps = parks_of.get(co, [])
        j = bisect.bisect_left(ps, prev_run)
        check(j < len(ps) and ps[j] <= next_run,
              "wake of %d at %s: it did not park between its runs at %s and %s" % (
                  co, t, prev_run, next_run))
    # flows: each start has one end
    starts = [e["id"] for e in evs if e["ph"] == "s"]
    ends = [e["id"] for e in evs if e["ph"] == "f"]
    check(sorted(starts) == sorted(ends) and len(set(starts)) == len(starts),
          "flow starts and ends do not pair up")
    check(len(starts) > 0, "no wake arrows")
    # counts: what the program did
    names = {s["args"]["child"]: s["args"]["name"] for s in spawns}
    check(len(spawns) == exp["spawns"], "spawns %d, expected %d" % (len(spawns), exp["spawns"]))
    check(len(by_name["exit"]) == exp["exits"], "exits %d" % len(by_name["exit"]))
    for kind in ("chan", "sleep", "blocking", "fd"):
        n = len(by_name["park: " + kind])
        check(n == exp[kind + "_parks"], "%s parks %d, expected %d" % (kind, n,
                                                                      exp[kind + "_parks"]))
    nparks = sum(len(es) for name, es in by_name.items() if name.startswith("park: "))
    check(nparks == exp["parks"], "parks %d, weft_stats says %d" % (nparks, exp["parks"]))
    check(len(by_name["blocking start"]) == exp["blocking_jobs"] ==
          len(by_name["blocking end"]), "blocking job events")
    check(len(by_name["fd wait"]) == exp["fd_waits"] == len(by_name["fd ready"]),
          "fd wait/ready events: %d, %d" % (len(by_name["fd wait"]), len(by_name["fd ready"])))
    # every stall seen was reported (one episode: no rate limit), each reported once
    check(1 <= len(by_name["stall"]) <= exp["stalls"],
          "stall events %d, weft_stats %d" % (len(by_name["stall"]), exp["stalls"]))
    check(sorted(names.values()) == sorted(["main", "producer", "consumer", "trace_helper",
                                            "fdwaiter", "spinner"]),
          "names %r" % sorted(names.values()))
    # the consumer's channel parks were each ended by the producer
    ids = {v: k for k, v in names.items()}
    cons, prod = ids.get("consumer"), ids.get("producer")
    cwakes = [w for w in by_name["wake"] if w["args"]["co"] == cons]
    check(len(cwakes) == exp["chan_parks"] and all(w["args"]["by"] == prod for w in cwakes),
          "the consumer's wakes: %r" % [(w["args"]["by"], w["args"]["waker"]) for w in cwakes])
    # migrations, counted here from the runs
    migrations = 0
    order = sorted(runs, key=lambda r: r["ts"])
    last = {}
    for r in order:
        co = r["args"]["co"]
        if co in last and last[co] != r["tid"]:
            migrations += 1
        last[co] = r["tid"]

    # the SVG: a lane per worker plus the threads' lane
    root = ET.parse(svg_path).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    glanes = [g for g in root.iter(ns + "g") if g.get("class") == "lane"]
    check(len(glanes) == exp["workers"] + 1, "SVG lanes %d" % len(glanes))
    check(sorted(g.get("data-lane") for g in glanes) ==
          sorted(["worker %d" % i for i in range(exp["workers"])] + ["threads"]),
          "SVG lane names")
    nrect = sum(1 for r in root.iter(ns + "rect") if r.get("class") == "run")
    check(nrect > 0, "SVG: no run boxes")
    check(any(l.get("class") == "wake" for l in root.iter(ns + "line")), "SVG: no wake arrows")

    # the summary agrees
    text = open(summary_path).read()

    def num(pattern):
        m = re.search(pattern, text)
        check(m is not None, "summary: no %r" % pattern)
        return int(m.group(1)) if m else None

    check(num(r"spawns: (\d+)") == exp["spawns"], "summary spawns")
    check(num(r"steals: (\d+)") == len(by_name["steal"]), "summary steals")
    check(num(r"migrations: (\d+)") == migrations, "summary migrations (%d here)" % migrations)
    check(num(r"parks: (\d+)") == exp["parks"], "summary parks")
    check(num(r"parks by kind:.*\bchan (\d+)") == exp["chan_parks"], "summary chan parks")
    check(num(r"parks by kind:.*\bsleep (\d+)") == exp["sleep_parks"], "summary sleep parks")
    check(num(r"blocking jobs: (\d+)") == exp["blocking_jobs"], "summary blocking jobs")
    check(num(r"scheduling latency \(runnable -> running\), (\d+) samples") == len(runs),
          "summary latency samples (one per run)")
    check(re.search(r"^\s+consumer\s", text, re.M) is not None, "summary: consumer's time")

    for f in failures:
        print("check_trace: " + f)
    if not failures:
        print("check_trace: %d runs, %d wakes, %d spawns: consistent" % (
            len(runs), len(by_name["wake"]), len(spawns)))
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.stderr.write(__doc__)
        sys.exit(2)
    sys.exit(main(*sys.argv[1:]))
