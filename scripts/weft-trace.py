#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""weft-trace.py — read a weft execution trace ($WEFT_TRACE, weft_trace_start) and show it.

  weft-trace.py TRACE                     text summary (the default)
  weft-trace.py TRACE --json OUT.json     Chrome/Perfetto trace-event JSON: open it in
                                          ui.perfetto.dev or chrome://tracing
  weft-trace.py TRACE --svg OUT.svg       a timeline picture: one lane per worker, runs as
                                          boxes coloured by coroutine name, wake arrows,
                                          idle time hatched, a time axis
  options: --from MS --to MS (a window of the SVG, in ms from the trace's start),
           --width PX (SVG width, 1200), --summary (also print the summary with --json/--svg),
           --exe PROGRAM (name unnamed coroutines whose entry is a static function of
           PROGRAM, which the trace can only call "PROGRAM+0x1234", with addr2line)

The file format is described at the top of src/core/trace.c (32-byte records in blocks
written by each worker). Standard library only; runs with /usr/bin/python3 (3.6+).
"""
import argparse
import json
import math
import os
import re
import struct
import subprocess
import sys
from collections import defaultdict

META, SPAWN, RUN, YIELD, PARK, EXIT, WAKE, HOP, STEAL, FD_WAIT, FD_READY, TIMER, \
    BLOCK_START, BLOCK_END, STALL, IDLE, IDLE_END, FNAME, NAME, END = range(20)
KIND_NAMES = ["meta", "spawn", "run", "yield", "park", "exit", "wake", "hop", "steal",
              "fd wait", "fd ready", "timer", "blocking start", "blocking end", "stall",
              "idle", "idle end", "fname", "name", "end"]
WAIT_NAMES = ["other", "chan", "mutex", "cond", "semaphore", "sleep", "select", "fd", "join",
              "blocking", "group"]
WAKER_NAMES = ["coroutine", "loop", "thread"]
THREADS = -1  # the lane of events from threads that are no worker

REC = struct.Struct("<qIiQQ")
BLK = struct.Struct("<4siIIqq")
HDR = struct.Struct("<8sIIq")


class Event:
    __slots__ = ("t", "kind", "x", "a", "b", "lane", "seq", "name")

    def __init__(self, t, kind, x, a, b, lane, seq, name=None):
        self.t, self.kind, self.x, self.a, self.b = t, kind, x, a, b
        self.lane, self.seq, self.name = lane, seq, name


def cstr(raw):
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def read_trace(path):
    """Every event, in time order (file order among equal times), and the names of entry
    functions (FNAME records)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < HDR.size:
        raise ValueError("%s: not a weft trace (too short)" % path)
    magic, version, recsize, t0 = HDR.unpack_from(data, 0)
    if magic != b"WEFTTRC1" or recsize != REC.size:
        raise ValueError("%s: not a weft trace (magic %r)" % (path, magic))
    events, fnames, seq, at = [], {}, 0, HDR.size
    clock = []  # (ticks, ns) pairs: META, every block, END (src/core/trace.c "Time")
    while at + BLK.size <= len(data):
        bmagic, worker, count, _, bticks, bns = BLK.unpack_from(data, at)
        if bmagic != b"BLK2":
            raise ValueError("%s: bad block at byte %d" % (path, at))
        at += BLK.size
        end = at + count * REC.size
        if end > len(data):
            break  # a truncated last block (the writer died): keep what is complete
        clock.append((bticks, bns))
        i = at
        while i < end:
            t, kind, x, a, b = REC.unpack_from(data, i)
            i += REC.size
            name = None
            if kind in (SPAWN, FNAME, NAME):
                raw = data[i:i + REC.size]
                i += REC.size
                if kind == FNAME:
                    fnames[a] = cstr(raw)
                    continue
                if raw[0] == 0 and raw[1] == 1:
                    name = ("fn", struct.unpack_from("<Q", raw, 8)[0])
                else:
                    name = cstr(raw)
            events.append(Event(t, kind, x, a, b, worker, seq, name))
            seq += 1
        at = end
    # Ticks to ns, between the first and the last (ticks, CLOCK_MONOTONIC ns) pair.
    clock += [(e.t, e.a) for e in events if e.kind in (META, END)]
    clock.sort()
    scale = 1.0
    if len(clock) >= 2 and clock[-1][0] > clock[0][0] and clock[-1][1] > clock[0][1]:
        scale = (clock[-1][1] - clock[0][1]) / float(clock[-1][0] - clock[0][0])
    elif events:
        sys.stderr.write("weft-trace: %s has no clock pairs to calibrate with: times are in "
                         "clock ticks, not ns\n" % path)
    for e in events:
        e.t = int((e.t - t0) * scale)
    events = [e for e in events if e.kind != END]
    events.sort(key=lambda e: (e.t, e.seq))
    return events, fnames


class Model:
    """What the events say: run slices, wakes with the run they led to, latencies, counts."""

    def __init__(self, events, fnames):
        self.events = events
        self.nworkers = 0
        self.names = {}        # coroutine id -> name
        self.runs = []         # (lane, start, end, co, reason)
        self.idles = []        # (lane, start, end)
        self.jobs = []         # blocking jobs: (start, end, co)
        self.wakes = []        # (t, waker lane, waker co, waker kind, co, run t or None, run lane)
        self.latencies = []    # ns, runnable -> running
        self.counts = defaultdict(int)
        self.parks = defaultdict(int)
        self.wakers = defaultdict(int)
        self.stolen = 0
        self.migrations = 0
        self.thread_lane = False
        self.end = events[-1].t if events else 0
        self.start = events[0].t if events else 0
        open_run = {}          # lane -> [start, co]
        open_idle = {}
        open_job = {}          # co -> start of its blocking job
        ready_at = {}          # co -> t it became runnable
        pending_wake = {}      # co -> index into self.wakes
        last_lane = {}         # co -> lane of its last run
        last_cause = {}        # lane -> the loop event before a wake (timer, fd)
        given = set()          # coroutines with a name given (not an entry function's)
        for e in events:
            k = e.kind
            self.counts[k] += 1
            if e.lane == THREADS and k not in (META, SPAWN):
                self.thread_lane = True
            if k == META:
                self.nworkers = max(self.nworkers, e.x)
            elif k in (SPAWN, NAME):
                n = e.name
                if isinstance(n, tuple):  # an entry function: not over a name given
                    if k == NAME and e.a in given:
                        continue
                    n = fnames.get(n[1], "fn@%#x" % n[1])
                else:
                    given.add(e.a)
                self.names[e.a] = n or "co %d" % e.a
                if k == SPAWN:
                    ready_at[e.a] = e.t
            elif k == RUN:
                if e.lane in open_run:  # never expected: close it at the new run
                    s, c = open_run.pop(e.lane)
                    self.runs.append((e.lane, s, e.t, c, "?"))
                open_run[e.lane] = [e.t, e.a]
                if e.a in ready_at:
                    self.latencies.append(e.t - ready_at.pop(e.a))
                if e.a in last_lane and last_lane[e.a] != e.lane:
                    self.migrations += 1
                last_lane[e.a] = e.lane
                w = pending_wake.pop(e.a, None)
                if w is not None:
                    self.wakes[w] = self.wakes[w][:5] + (e.t, e.lane)
            elif k in (YIELD, PARK, EXIT, HOP):
                r = open_run.get(e.lane)
                if r and r[1] == e.a:
                    del open_run[e.lane]
                    self.runs.append((e.lane, r[0], e.t, e.a, KIND_NAMES[k]))
                if k == PARK:
                    self.parks[WAIT_NAMES[e.x] if 0 <= e.x < len(WAIT_NAMES) else "other"] += 1
                if k in (YIELD, HOP):
                    ready_at[e.a] = e.t
            elif k == WAKE:
                kind = e.x
                if kind == 1:
                    kind_name = last_cause.get(e.lane, "loop")
                else:
                    kind_name = WAKER_NAMES[kind] if 0 <= kind < 3 else "?"
                self.wakers[kind_name] += 1
                ready_at.setdefault(e.a, e.t)
                pending_wake[e.a] = len(self.wakes)
                self.wakes.append((e.t, e.lane, e.b, kind_name, e.a, None, None))
            elif k == STEAL:
                self.stolen += e.b
            elif k == BLOCK_START:
                open_job[e.a] = e.t
            elif k == BLOCK_END and e.a in open_job:
                self.jobs.append((open_job.pop(e.a), e.t, e.a))
            elif k in (TIMER, FD_READY):
                last_cause[e.lane] = "timer" if k == TIMER else "fd"
            elif k == IDLE:
                open_idle[e.lane] = e.t
                last_cause.pop(e.lane, None)
            elif k == IDLE_END:
                s = open_idle.pop(e.lane, None)
                if s is not None:
                    self.idles.append((e.lane, s, e.t))
            if k in (RUN, YIELD, PARK, EXIT, HOP):
                last_cause.pop(e.lane, None)
        for lane, (s, c) in open_run.items():
            self.runs.append((lane, s, self.end, c, "end"))
        for lane, s in open_idle.items():
            self.idles.append((lane, s, self.end))
        for co, s in open_job.items():
            self.jobs.append((s, self.end, co))
        if not self.nworkers:
            self.nworkers = 1 + max([e.lane for e in events] + [0])

    def name(self, co):
        return self.names.get(co, "co %d" % co)

    def lanes(self):
        lanes = list(range(self.nworkers))
        if self.thread_lane:
            lanes.append(THREADS)
        return lanes


def lane_name(lane):
    return "threads" if lane == THREADS else "worker %d" % lane


def fmt_ns(ns):
    ns = float(ns)
    for unit, div in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if abs(ns) >= div:
            return "%.3g %s" % (ns / div, unit)
    return "%d ns" % ns


def percentile(sorted_vals, p):
    if not sorted_vals:
        return 0
    i = min(len(sorted_vals) - 1, int(math.ceil(p / 100.0 * len(sorted_vals))) - 1)
    return sorted_vals[max(i, 0)]


def summary(m, path, out):
    c = m.counts
    w = out.write
    w("weft trace %s: %d workers, %s, %d events\n" % (path, m.nworkers,
                                                      fmt_ns(m.end - m.start), len(m.events)))
    w("spawns: %d   runs: %d   yields: %d   parks: %d   exits: %d   hops: %d\n" % (
        c[SPAWN], c[RUN], c[YIELD], c[PARK], c[EXIT], c[HOP]))
    w("wakes: %d (%s)\n" % (c[WAKE], ", ".join(
        "%s %d" % (k, v) for k, v in sorted(m.wakers.items(), key=lambda kv: -kv[1])) or "-"))
    w("steals: %d (coroutines taken: %d)   migrations: %d\n" % (c[STEAL], m.stolen,
                                                              m.migrations))
    w("fd waits: %d   timers fired: %d   blocking jobs: %d   stalls: %d   worker sleeps: %d\n"
      % (c[FD_WAIT], c[TIMER], c[BLOCK_START], c[STALL], c[IDLE]))
    w("parks by kind: %s\n" % (", ".join(
        "%s %d" % (k, v) for k, v in sorted(m.parks.items(), key=lambda kv: (-kv[1], kv[0])))
        or "-"))
    lat = sorted(m.latencies)
    w("scheduling latency (runnable -> running), %d samples: p50 %s  p90 %s  p99 %s  max %s\n"
      % (len(lat), fmt_ns(percentile(lat, 50)), fmt_ns(percentile(lat, 90)),
         fmt_ns(percentile(lat, 99)), fmt_ns(lat[-1] if lat else 0)))
    if lat:
        buckets = defaultdict(int)
        for v in lat:
            b = 0
            while (1 << (b + 1)) * 250 <= v and b < 40:
                b += 1
            buckets[b if v >= 250 else -1] += 1
        top = max(buckets.values())
        for b in sorted(buckets):
            lo = 0 if b < 0 else 250 << b
            hi = 250 if b < 0 else 250 << (b + 1)
            n = buckets[b]
            w("  %9s .. %-9s %7d %s\n" % (fmt_ns(lo), fmt_ns(hi), n,
                                          "#" * max(1, int(40 * n / top))))
    per = defaultdict(lambda: [0, 0])
    for lane, s, e, co, _ in m.runs:
        p = per[m.name(co)]
        p[0] += e - s
        p[1] += 1
    w("time running per coroutine name:\n")
    for name, (t, n) in sorted(per.items(), key=lambda kv: -kv[1][0]):
        w("  %-32s %10s in %6d runs (mean %s)\n" % (name, fmt_ns(t), n, fmt_ns(t / n)))
    span = max(m.end - m.start, 1)
    for lane in range(m.nworkers):
        busy = sum(e - s for l, s, e, _, _ in m.runs if l == lane)
        idle = sum(e - s for l, s, e in m.idles if l == lane)
        w("  worker %d: running %5.1f%%, asleep %5.1f%%\n" % (lane, 100.0 * busy / span,
                                                             100.0 * idle / span))


def to_json(m):
    """Chrome trace-event JSON: pid 1, a tid per worker (worker i: tid i + 1; threads: 0)."""
    us = lambda ns: ns / 1000.0
    tid = lambda lane: 0 if lane == THREADS else lane + 1
    ev = [{"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "weft"}}]
    for lane in m.lanes():
        ev.append({"ph": "M", "name": "thread_name", "pid": 1, "tid": tid(lane),
                   "args": {"name": lane_name(lane)}})
        ev.append({"ph": "M", "name": "thread_sort_index", "pid": 1, "tid": tid(lane),
                   "args": {"sort_index": tid(lane) if lane != THREADS else 9999}})
    for lane, s, e, co, why in m.runs:
        ev.append({"ph": "X", "cat": "run", "name": m.name(co), "pid": 1, "tid": tid(lane),
                   "ts": us(s), "dur": us(e - s), "args": {"co": co, "ended_by": why}})
    for s, e, co in m.jobs:
        ev.append({"ph": "X", "cat": "blocking", "name": "blocking: " + m.name(co), "pid": 1,
                   "tid": 0, "ts": us(s), "dur": us(e - s), "args": {"co": co}})
    for lane, s, e in m.idles:
        ev.append({"ph": "X", "cat": "idle", "name": "idle", "pid": 1, "tid": tid(lane),
                   "ts": us(s), "dur": us(e - s)})
    inside = defaultdict(list)
    for lane, s, e, co, _ in m.runs:
        inside[lane].append((s, e))
    for l in inside:
        inside[l].sort()

    def in_run(lane, t):
        import bisect
        r = inside.get(lane, [])
        i = bisect.bisect_right(r, (t, float("inf"))) - 1
        return i >= 0 and r[i][0] <= t <= r[i][1]

    for n, (t, lane, by, kind, co, run_t, run_lane) in enumerate(m.wakes):
        if run_t is None:
            continue
        if not in_run(lane, t):  # a flow binds to an enclosing slice: give it one
            ev.append({"ph": "X", "cat": "wake", "name": kind, "pid": 1, "tid": tid(lane),
                       "ts": us(t), "dur": 0.001, "args": {"woke": co}})
        ev.append({"ph": "s", "cat": "wake", "name": "wake", "id": n + 1, "pid": 1,
                   "tid": tid(lane), "ts": us(t), "bp": "e"})
        ev.append({"ph": "f", "cat": "wake", "name": "wake", "id": n + 1, "pid": 1,
                   "tid": tid(run_lane), "ts": us(run_t), "bp": "e"})
    for e in m.events:
        k = e.kind
        if k in (META, RUN, IDLE, IDLE_END):
            continue
        args = {}
        name = KIND_NAMES[k] if k < len(KIND_NAMES) else str(k)
        if k == SPAWN:
            args = {"child": e.a, "parent": e.b, "name": m.name(e.a)}
        elif k == PARK:
            name = "park: " + (WAIT_NAMES[e.x] if 0 <= e.x < len(WAIT_NAMES) else "other")
            args = {"co": e.a}
        elif k == WAKE:
            args = {"co": e.a, "by": e.b, "waker": WAKER_NAMES[e.x] if 0 <= e.x < 3 else e.x}
        elif k == STEAL:
            args = {"from": e.x, "count": e.b, "first": e.a}
        elif k == HOP:
            args = {"co": e.a, "to": e.x}
        elif k in (FD_WAIT, FD_READY):
            args = {"co": e.a, "fd": e.b}
        elif k == STALL:
            args = {"co": e.a, "worker": e.x, "ms": e.b / 1e6}
        else:
            args = {"co": e.a}
        ev.append({"ph": "i", "s": "t", "cat": "sched", "name": name, "pid": 1,
                   "tid": tid(e.lane), "ts": us(e.t), "args": args})
    return {"traceEvents": ev, "displayTimeUnit": "ns",
            "otherData": {"workers": m.nworkers, "source": "weft"}}


PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948",
           "#ff9da7", "#9c755f", "#bab0ac", "#1f77b4", "#2ca02c"]
_colours = {}


def write_json(doc, path):
    """One event a line, each through json.dumps (its C encoder; json.dump to a file takes
    the pure-Python one, ~20x slower)."""
    with open(path, "w") as f:
        f.write('{"displayTimeUnit":"ns","otherData":%s,"traceEvents":[\n'
                % json.dumps(doc["otherData"]))
        dumps = json.JSONEncoder(separators=(",", ":")).encode
        sep = ""
        for e in doc["traceEvents"]:
            f.write(sep)
            f.write(dumps(e))
            sep = ",\n"
        f.write("\n]}\n")


def colour(name):
    """Distinct palette colours for the first names seen (to_svg assigns them in legend
    order), then a hash of the name."""
    if name in _colours:
        return _colours[name]
    if len(_colours) < len(PALETTE):
        _colours[name] = PALETTE[len(_colours)]
        return _colours[name]
    h = 0
    for ch in name.encode():
        h = (h * 131 + ch) & 0xFFFFFFFF
    return "hsl(%d,62%%,%d%%)" % (h % 360, 48 + (h >> 9) % 16)


def esc(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def nice_step(span, target=10):
    raw = span / float(target)
    p = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for f in (1, 2, 5, 10):
        if raw <= f * p:
            return f * p
    return 10 * p


def to_svg(m, width=1200, t_from=None, t_to=None):
    lanes = m.lanes()
    t0 = m.start if t_from is None else m.start + t_from
    t1 = m.end if t_to is None else min(m.end, m.start + t_to)
    if t1 <= t0:
        t1 = t0 + 1
    left, right, top, lane_h, gap = 90, 20, 40, 34, 10
    plot_w = width - left - right
    names = sorted({m.name(co) for _, s, e, co, _ in m.runs if e >= t0 and s <= t1})
    for nm in names:
        colour(nm)  # the palette's colours go to the names shown, in legend order
    legend_rows = (len(names) + 3) // 4
    height = top + len(lanes) * (lane_h + gap) + 40 + 18 * legend_rows + 10
    X = lambda t: left + (t - t0) * plot_w / float(t1 - t0)
    Y = {lane: top + i * (lane_h + gap) for i, lane in enumerate(lanes)}
    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
         'font-family="sans-serif" font-size="11">' % (width, height),
         '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
         'patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" stroke="#bbb" '
         'stroke-width="2"/></pattern><marker id="arrow" viewBox="0 0 10 10" refX="10" '
         'refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse">'
         '<path d="M0,0 L10,5 L0,10 z" fill="#333"/></marker></defs>',
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="16" font-size="13">weft trace: %d workers, %s shown, %d runs, '
         '%d wakes (arrows), hatched: worker asleep</text>' % (
             left, m.nworkers, fmt_ns(t1 - t0), len(m.runs), len(m.wakes))]
    # time axis
    step = nice_step(t1 - t0)
    axis_y = top + len(lanes) * (lane_h + gap)
    o.append('<g class="axis"><line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#000"/>' % (
        left, axis_y, left + plot_w, axis_y))
    t = math.ceil((t0 - m.start) / step) * step
    while m.start + t <= t1:
        x = X(m.start + t)
        o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#000"/>'
                 '<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>'
                 '<text x="%.1f" y="%d" text-anchor="middle">%s</text>' % (
                     x, axis_y, x, axis_y + 5, x, top - 4, x, axis_y, x, axis_y + 17,
                     fmt_ns(t) if t else "0"))
        t += step
    o.append("</g>")
    for lane in lanes:
        y = Y[lane]
        o.append('<g class="lane" data-lane="%s">' % lane_name(lane))
        o.append('<rect x="%d" y="%d" width="%d" height="%d" fill="#f7f7f7"/>' % (
            left, y, plot_w, lane_h))
        o.append('<text x="6" y="%d">%s</text>' % (y + lane_h / 2 + 4, lane_name(lane)))
        for l, s, e in m.idles:
            if l != lane or e < t0 or s > t1:
                continue
            xs, xe = X(max(s, t0)), X(min(e, t1))
            o.append('<rect class="idle" x="%.2f" y="%d" width="%.2f" height="%d" '
                     'fill="url(#hatch)"/>' % (xs, y + 4, max(xe - xs, 0.5), lane_h - 8))
        if lane == THREADS:  # blocking jobs (pool threads overlap: translucent)
            for s, e, co in m.jobs:
                if e < t0 or s > t1:
                    continue
                xs, xe = X(max(s, t0)), X(min(e, t1))
                o.append('<rect class="job" x="%.2f" y="%d" width="%.2f" height="%d" fill="%s" '
                         'fill-opacity="0.45"><title>blocking job of %s, %s</title></rect>' % (
                             xs, y + 2, max(xe - xs, 0.6), lane_h - 4, colour(m.name(co)),
                             esc(m.name(co)), fmt_ns(e - s)))
        # Runs a pixel wide or more are boxes; shorter ones are summed per pixel column and
        # drawn as one column split between the names that ran there, in proportion to
        # their time (a trace of millions of switches stays a picture of a few thousand
        # elements).
        boxes, cols = [], defaultdict(lambda: defaultdict(float))
        for l, s, e, co, why in m.runs:
            if l != lane or e < t0 or s > t1:
                continue
            xs, xe, nm = X(max(s, t0)), X(min(e, t1)), m.name(co)
            if xe - xs >= 1.0:
                boxes.append([xs, xe, nm, 1, co, s, e])
            else:
                cols[int(xs)][nm] += xe - xs
        for col, per in sorted(cols.items()):
            total = sum(per.values())
            y0 = float(y + 2)
            for nm, part in sorted(per.items()):
                h = (lane_h - 4) * part / total
                o.append('<rect class="run" x="%d" y="%.2f" width="1" height="%.2f" fill="%s"'
                         '%s/>' % (col, y0, h, colour(nm), "" if total >= 0.999 else
                                   ' fill-opacity="%.2f"' % max(0.3, total)))
                y0 += h
        for xs, xe, nm, n, co, s, e in boxes:
            o.append('<rect class="run" x="%.2f" y="%d" width="%.2f" height="%d" fill="%s">'
                     '<title>%s (co %d) %s</title></rect>' % (
                         xs, y + 2, xe - xs, lane_h - 4, colour(nm), esc(nm), co,
                         fmt_ns(e - s)))
        o.append("</g>")
    shown = [wk for wk in m.wakes if wk[5] is not None and t0 <= wk[0] <= t1 and wk[5] <= t1]
    stride = max(1, len(shown) // 1500)  # at most ~1,500 arrows
    o.append('<g class="wakes">')
    for wk in shown[::stride]:
        t, lane, by, kind, co, rt, rl = wk
        if lane not in Y or rl not in Y:
            continue
        y1 = Y[lane] + lane_h / 2
        y2 = Y[rl] + (2 if Y[rl] > Y[lane] else lane_h - 2) if rl != lane else Y[rl] + 2
        o.append('<line class="wake" x1="%.2f" y1="%.1f" x2="%.2f" y2="%.1f" stroke="#333" '
                 'stroke-width="0.7" marker-end="url(#arrow)"><title>%s wakes %s</title>'
                 '</line>' % (X(t), y1, X(rt), y2, esc(kind if kind != "coroutine" else
                                                          m.name(by)), esc(m.name(co))))
    o.append("</g>")
    ly = axis_y + 34
    o.append('<g class="legend">')
    for i, nm in enumerate(names):
        x = left + (i % 4) * (plot_w // 4)
        y = ly + (i // 4) * 18
        o.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>'
                 '<text x="%d" y="%d">%s</text>' % (x, y - 10, colour(nm), x + 16, y, esc(nm)))
    o.append("</g></svg>")
    return "\n".join(o) + "\n"


def resolve_static(fnames, exe):
    """Entry functions named "PROGRAM+0xOFFSET" (a static function: dladdr knows no symbol)
    get their name from addr2line, when PROGRAM is the basename of exe."""
    base = os.path.basename(exe)
    todo = {}
    for addr, n in fnames.items():
        m = re.match(r"^(.*)\+(0x[0-9a-fA-F]+)$", n)
        if m and m.group(1) == base:
            todo[addr] = m.group(2)
    if not todo:
        return
    keys = sorted(todo)
    try:
        out = subprocess.check_output(["addr2line", "-f", "-e", exe] + [todo[k] for k in keys],
                                      stderr=subprocess.DEVNULL).decode().splitlines()
    except (OSError, subprocess.CalledProcessError):
        return
    for i, k in enumerate(keys):
        if 2 * i < len(out) and out[2 * i] not in ("??", ""):
            fnames[k] = out[2 * i]


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("trace")
    ap.add_argument("--json", metavar="OUT")
    ap.add_argument("--svg", metavar="OUT")
    ap.add_argument("--summary", action="store_true")
    ap.add_argument("--width", type=int, default=1200)
    ap.add_argument("--exe", metavar="PROGRAM")
    ap.add_argument("--from", dest="t_from", type=float, metavar="MS")
    ap.add_argument("--to", dest="t_to", type=float, metavar="MS")
    a = ap.parse_args(argv)
    try:
        events, fnames = read_trace(a.trace)
    except (OSError, ValueError) as e:
        sys.stderr.write("weft-trace: %s\n" % e)
        return 1
    if a.exe:
        resolve_static(fnames, a.exe)
    m = Model(events, fnames)
    if a.json:
        write_json(to_json(m), a.json)
    if a.svg:
        ms = lambda v: None if v is None else int(v * 1e6)
        with open(a.svg, "w") as f:
            f.write(to_svg(m, a.width, ms(a.t_from), ms(a.t_to)))
    if a.summary or not (a.json or a.svg):
        summary(m, a.trace, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
