#!/usr/bin/env python3
"""Draws the plots of BENCHMARKS.md ("Plots") as SVG, from the JSON that
benches/qd_sweep.sh and paging_bench --json leave (benches/plots.sh runs
them), with the Python standard library only.

    python3 benches/plots.py [--qd-dir DIR] [--paging-dir DIR] [--out DIR]

Defaults: target/bench-plots/qd-sweep, target/bench-plots/paging (under
$CARGO_TARGET_DIR if set), benches/plots. Writes:

  qd-sweep-iops.svg           IOPS against queue depth (log2 axis), 4 KiB
                              random read and write, ours and fio; the median
                              of the runs, whiskers min-max.
  swapin-latency-cdf.svg      CDF of per-I/O latency, 4 KiB random reads at
                              QD1 and QD32, ours and fio (histograms of every
                              run summed); the swap bench's swap-in p50 / p99
                              as markers.
  paging-kernel-vs-pager.svg  paging_bench: pages/s of swap-out and swap-in
                              per pattern, kernel vs pager-anon vs
                              pager-memfd (median, whiskers min-max).

A plot whose input is missing is skipped with a message (an older SVG of
that name is left as it was); the exit status is 1 if every plot was
skipped.
"""
import argparse
import glob
import json
import math
import os
import re
import statistics
import sys
from xml.sax.saxutils import escape

OURS = "#1f77b4"
FIO = "#ff7f0e"
SWAP = "#2ca02c"
SIDE_COLOURS = {"kernel": "#7f7f7f", "pager-anon": "#1f77b4", "pager-memfd": "#2ca02c"}
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"


# --------------------------------------------------------------------------
# Input


def load(path):
    """JSON of a file; fio may print notes before its JSON."""
    with open(path) as f:
        text = f.read()
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        raise ValueError("no JSON in %s" % path)
    return json.loads(text[min(starts):])


def machine(dirname):
    """The key: value lines of DIR/machine.txt (empty if missing)."""
    out = {}
    try:
        with open(os.path.join(dirname, "machine.txt")) as f:
            for line in f:
                k, sep, v = line.partition(":")
                if sep:
                    out.setdefault(k.strip(), v.strip())
    except OSError:
        pass
    return out


def fio_job(path, rw):
    j = load(path)["jobs"][0]
    return j["read" if rw == "read" else "write"]


def sweep(qd_dir):
    """{(tool, rw): {qd: [iops per run]}} from the qd sweep's JSON."""
    data = {}
    bad = []
    for path in sorted(glob.glob(os.path.join(qd_dir, "*-qd*-r*.json"))):
        m = re.match(r"(ours|fio)-(read|write)-qd(\d+)-r(\d+)\.json$", os.path.basename(path))
        if not m:
            continue
        tool, rw, qd = m.group(1), m.group(2), int(m.group(3))
        try:
            iops = load(path)["iops"] if tool == "ours" else fio_job(path, rw)["iops"]
        except (ValueError, KeyError, IndexError, OSError) as e:
            bad.append("%s (%s)" % (path, e))
            continue
        data.setdefault((tool, rw), {}).setdefault(qd, []).append(iops)
    for b in bad:
        print("plots.py: ignoring unreadable %s" % b, file=sys.stderr)
    return data


def histograms(qd_dir, qd):
    """{tool: [(ns, count), ...]} of the 4 KiB random reads at `qd`, every
    run's histogram summed."""
    out = {}
    for tool in ("ours", "fio"):
        acc = {}
        for path in glob.glob(os.path.join(qd_dir, "%s-read-qd%d-r*.json" % (tool, qd))):
            try:
                if tool == "ours":
                    bins = [(int(ns), int(c)) for ns, c in load(path).get("lat_hist", [])]
                else:
                    lat = fio_job(path, "read")["lat_ns"]
                    bins = [(int(ns), int(c)) for ns, c in lat.get("bins", {}).items()]
            except (ValueError, KeyError, IndexError, OSError) as e:
                print("plots.py: ignoring unreadable %s (%s)" % (path, e), file=sys.stderr)
                continue
            for ns, c in bins:
                acc[ns] = acc.get(ns, 0) + c
        if acc:
            out[tool] = sorted(acc.items())
    return out


def swap_bench(qd_dir):
    """{case: ([p50 per run], [p99 per run])} of the swap bench's swap-in."""
    out = {}
    for path in sorted(glob.glob(os.path.join(qd_dir, "swap-swapin-r*.json"))):
        try:
            rows = load(path)
        except (ValueError, OSError) as e:
            print("plots.py: ignoring unreadable %s (%s)" % (path, e), file=sys.stderr)
            continue
        for r in rows:
            p = out.setdefault(r["name"], ([], []))
            p[0].append(r["p50_us"])
            p[1].append(r["p99_us"])
    return out


def paging(paging_dir):
    """{(side, pattern): {"out": [...], "in": [...]}} pages/s per run."""
    data = {}
    files = sorted(glob.glob(os.path.join(paging_dir, "paging-r*.json")))
    pages = set()
    for path in files:
        try:
            rows = load(path)
        except (ValueError, OSError) as e:
            print("plots.py: ignoring unreadable %s (%s)" % (path, e), file=sys.stderr)
            continue
        for r in rows:
            d = data.setdefault((r["side"], r["pattern"]), {"out": [], "in": []})
            d["out"].append(r["out_pages_per_s"])
            d["in"].append(r["in_pages_per_s"])
            pages.add((r["pages"], r["threads"]))
    return data, len(files), pages


def percentile(bins, p):
    """Nearest-rank percentile `p` (0-100) of [(value, count)] sorted."""
    n = sum(c for _, c in bins)
    rank = max(1, math.ceil(p / 100.0 * n))
    seen = 0
    for v, c in bins:
        seen += c
        if seen >= rank:
            return v
    return bins[-1][0]


# --------------------------------------------------------------------------
# Numbers and scales


def si(v):
    """12 -> "12", 1500 -> "1.5k", 81234 -> "81k", 1.2e6 -> "1.2M"."""
    a = abs(v)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            x = v / div
            return ("%.0f" if abs(x) >= 10 or x == int(x) else "%.1f") % x + suffix
    if a == 0:
        return "0"
    return "%g" % float("%.3g" % v)


def us(v):
    """Microseconds to three significant digits, no suffix: 1012, 80.9, 4.56."""
    return "%.0f" % v if v >= 100 else "%.1f" % v if v >= 10 else "%.2f" % v


def tick_us(v):
    return "%d" % round(v) if v >= 1 else "%g" % v


def nice_ticks(lo, hi, n=5):
    """Round tick values covering [lo, hi], about n of them."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    t = first
    while t < hi + step * 0.999:
        ticks.append(round(t, 10))
        t += step
    return ticks


class Linear:
    def __init__(self, lo, hi, a, b):
        self.lo, self.hi, self.a, self.b = lo, hi, a, b

    def __call__(self, v):
        return self.a + (v - self.lo) / (self.hi - self.lo) * (self.b - self.a)


class Log:
    def __init__(self, lo, hi, a, b):
        self.lo, self.hi, self.a, self.b = math.log(lo), math.log(hi), a, b

    def __call__(self, v):
        return self.a + (math.log(v) - self.lo) / (self.hi - self.lo) * (self.b - self.a)


def log10_ticks(lo, hi):
    """(major, minor) ticks of a log10 axis: 1-2-5 steps, minor 3,4,6-9."""
    major, minor = [], []
    for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in range(1, 10):
            v = m * 10.0 ** e
            if lo * 0.999 <= v <= hi * 1.001:
                (major if m in (1, 2, 5) else minor).append(v)
    return major, minor


# --------------------------------------------------------------------------
# SVG


class Svg:
    def __init__(self, width, height):
        self.w, self.h = width, height
        self.items = []
        self.clips = 0

    def add(self, s):
        self.items.append(s)

    def text(self, x, y, s, size=12, anchor="start", colour="#222", weight="normal", rotate=None, **kw):
        extra = "".join(' %s="%s"' % (k.replace("_", "-"), v) for k, v in kw.items())
        rot = ' transform="rotate(%g %.1f %.1f)"' % (rotate, x, y) if rotate else ""
        self.add('<text x="%.1f" y="%.1f" font-size="%g" text-anchor="%s" fill="%s" font-weight="%s"%s%s>%s</text>'
                 % (x, y, size, anchor, colour, weight, rot, extra, escape(str(s))))

    def line(self, x1, y1, x2, y2, colour="#222", width=1, dash=None, **kw):
        d = ' stroke-dasharray="%s"' % dash if dash else ""
        extra = "".join(' %s="%s"' % (k.replace("_", "-"), v) for k, v in kw.items())
        self.add('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%g"%s%s/>'
                 % (x1, y1, x2, y2, colour, width, d, extra))

    def rect(self, x, y, w, h, fill, stroke="none", **kw):
        extra = "".join(' %s="%s"' % (k.replace("_", "-"), v) for k, v in kw.items())
        self.add('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" stroke="%s"%s/>'
                 % (x, y, w, h, fill, stroke, extra))

    def polyline(self, pts, colour, width=2, dash=None, clip=None):
        d = ' stroke-dasharray="%s"' % dash if dash else ""
        c = ' clip-path="url(#%s)"' % clip if clip else ""
        self.add('<polyline points="%s" fill="none" stroke="%s" stroke-width="%g" stroke-linejoin="round"%s%s/>'
                 % (" ".join("%.1f,%.1f" % p for p in pts), colour, width, d, c))

    def marker(self, x, y, shape, colour, filled=True, r=4):
        fill = colour if filled else "white"
        if shape == "diamond":
            self.add('<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="%s" stroke="%s" stroke-width="1.5"/>'
                     % (x, y - r - 1, x + r + 1, y, x, y + r + 1, x - r - 1, y, fill, colour))
        elif shape == "square":
            self.add('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" stroke="%s" stroke-width="1.5"/>'
                     % (x - r, y - r, 2 * r, 2 * r, fill, colour))
        else:
            self.add('<circle cx="%.1f" cy="%.1f" r="%g" fill="%s" stroke="%s" stroke-width="1.5"/>'
                     % (x, y, r, fill, colour))

    def clip(self, x, y, w, h):
        self.clips += 1
        cid = "clip%d" % self.clips
        self.add('<clipPath id="%s"><rect x="%.1f" y="%.1f" width="%.1f" height="%.1f"/></clipPath>'
                 % (cid, x, y, w, h))
        return cid

    def write(self, path, title):
        with open(path, "w") as f:
            f.write('<?xml version="1.0" encoding="UTF-8"?>\n')
            f.write('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
                    'font-family="%s">\n' % (self.w, self.h, self.w, self.h, FONT))
            f.write("<title>%s</title>\n" % escape(title))
            f.write('<rect width="100%" height="100%" fill="white"/>\n')
            for it in self.items:
                f.write(it + "\n")
            f.write("</svg>\n")


def heading(svg, title, subtitle):
    svg.text(svg.w / 2, 24, title, size=16, anchor="middle", weight="bold")
    if subtitle:
        svg.text(svg.w / 2, 42, subtitle, size=11, anchor="middle", colour="#555")


def frame(svg, x0, y0, w, h):
    svg.rect(x0, y0, w, h, "none", stroke="#444")


def y_axis(svg, x0, y0, w, h, ys, ticks, label, fmt=si):
    for t in ticks:
        y = ys(t)
        svg.line(x0, y, x0 + w, y, colour="#e3e3e3")
        svg.line(x0 - 4, y, x0, y, colour="#444")
        svg.text(x0 - 7, y + 4, fmt(t), size=11, anchor="end")
    svg.text(x0 - 52, y0 + h / 2, label, size=12, anchor="middle", rotate=-90)


def legend_row(svg, y, entries):
    """Centred row of (label, colour, dash, marker) entries."""
    widths = [34 + 7.0 * len(e[0]) + 20 for e in entries]
    x = (svg.w - sum(widths)) / 2
    for (label, colour, dash, mark), wd in zip(entries, widths):
        svg.line(x, y - 4, x + 28, y - 4, colour=colour, width=2.5, dash=dash)
        if mark:
            svg.marker(x + 14, y - 4, mark, colour)
        svg.text(x + 34, y, label, size=12)
        x += wd


# --------------------------------------------------------------------------
# The plots


def subtitle_of(m, extra):
    parts = []
    if m.get("date"):
        parts.append(m["date"][:10])
    if m.get("commit"):
        parts.append("commit " + m["commit"])
    if m.get("cpu"):
        parts.append(re.sub(r"\s+", " ", m["cpu"])[:40])
    if m.get("kernel"):
        parts.append("Linux " + m["kernel"])
    return " · ".join(parts + extra)


def plot_qd(qd_dir, out):
    data = sweep(qd_dir)
    if not data:
        return "no ours-/fio-*-qd*-r*.json in %s (run benches/qd_sweep.sh)" % qd_dir
    m = machine(qd_dir)
    runs = max(len(v) for s in data.values() for v in s.values())
    qds = sorted({q for s in data.values() for q in s})
    svg = Svg(900, 470)
    sub = subtitle_of(m, [m.get("fio", "fio"), "%s s per run" % m.get("secs", "?"),
                          "median of %d run%s%s" % (runs, "s" if runs > 1 else "",
                                                    ", whiskers min–max" if runs > 1 else "")])
    heading(svg, "4 KiB random I/O on io_uring (O_DIRECT): IOPS against queue depth", sub)
    legend_row(svg, 64, [("ours (dio_bench, DirectIo::submit)", OURS, None, "circle"),
                         ("fio --ioengine=io_uring --direct=1", FIO, "7,4", "square")])
    top = max(max(v) for s in data.values() for v in s.values())
    yt = nice_ticks(0, top * 1.05)
    pw, ph, py = 360, 300, 96
    for i, rw in enumerate(("read", "write")):
        px = 95 + i * 435
        xs = Log(qds[0] / 1.25, qds[-1] * 1.25, px, px + pw) if len(qds) > 1 else \
            Log(qds[0] / 2, qds[0] * 2, px, px + pw)
        ys = Linear(0, yt[-1], py + ph, py)
        y_axis(svg, px, py, pw, ph, ys, yt, "IOPS (4 KiB I/Os per second)" if i == 0 else "")
        for q in qds:
            svg.line(xs(q), py, xs(q), py + ph, colour="#f0f0f0")
            svg.line(xs(q), py + ph, xs(q), py + ph + 4, colour="#444")
            svg.text(xs(q), py + ph + 17, q, size=11, anchor="middle")
        svg.text(px + pw / 2, py + ph + 36, "queue depth (I/Os in flight, log₂ axis)", size=12, anchor="middle")
        svg.text(px + pw / 2, py - 8, "random %s" % rw, size=13, anchor="middle", weight="bold")
        frame(svg, px, py, pw, ph)
        for tool, colour, dash, mark in (("fio", FIO, "7,4", "square"), ("ours", OURS, None, "circle")):
            series = data.get((tool, rw), {})
            pts = []
            for q in sorted(series):
                v = series[q]
                med = statistics.median(v)
                x = xs(q)
                if len(v) > 1:
                    svg.line(x, ys(min(v)), x, ys(max(v)), colour=colour, width=1.5)
                    svg.line(x - 4, ys(min(v)), x + 4, ys(min(v)), colour=colour, width=1.5)
                    svg.line(x - 4, ys(max(v)), x + 4, ys(max(v)), colour=colour, width=1.5)
                pts.append((x, ys(med)))
            if pts:
                svg.polyline(pts, colour, width=2.2, dash=dash)
                for x, y in pts:
                    svg.marker(x, y, mark, colour, r=3.5)
        # Ratio ours/fio under each QD, where both ran.
        o, f = data.get(("ours", rw), {}), data.get(("fio", rw), {})
        both = [q for q in qds if q in o and q in f]
        if both:
            svg.text(px - 8, py + ph + 54, "ours/fio", size=10, anchor="end", colour="#555")
            for q in both:
                r = statistics.median(o[q]) / statistics.median(f[q])
                svg.text(xs(q), py + ph + 54, "%.2f" % r, size=10, anchor="middle",
                         colour="#555", weight="bold" if r >= 1 else "normal")
    svg.write(out, "IOPS against queue depth")
    missing = [k for k in (("ours", "read"), ("fio", "read"), ("ours", "write"), ("fio", "write")) if k not in data]
    return None if not missing else "partial: no data for %s" % ", ".join("%s %s" % k for k in missing)


def x_log_axis(svg, px, py, pw, ph, xs, lo, hi, label):
    major, minor = log10_ticks(lo, hi)
    # Over more than 2.5 decades, the 2s get a tick but no number.
    crowded = math.log10(hi / lo) > 2.5
    for t in minor:
        svg.line(xs(t), py, xs(t), py + ph, colour="#f3f3f3")
    for t in major:
        svg.line(xs(t), py, xs(t), py + ph, colour="#e0e0e0")
        svg.line(xs(t), py + ph, xs(t), py + ph + 4, colour="#444")
        if not (crowded and round(t / 10 ** math.floor(math.log10(t) + 1e-9)) == 2):
            svg.text(xs(t), py + ph + 17, tick_us(t), size=11, anchor="middle")
    svg.text(px + pw / 2, py + ph + 38, label, size=12, anchor="middle")


def half_decades(lo, hi):
    """The limits rounded out to half decades (10^k or 10^k x 3.16)."""
    return 10 ** (math.floor(math.log10(lo) * 2) / 2), 10 ** (math.ceil(math.log10(hi) * 2) / 2)


def plot_cdf(qd_dir, out):
    series = []  # (name, qd, colour, dash, bins)
    for qd, dash in ((1, None), (32, "7,4")):
        h = histograms(qd_dir, qd)
        for tool, colour in (("ours", OURS), ("fio", FIO)):
            if tool in h:
                series.append((tool, qd, colour, dash, h[tool]))
    if not series:
        return "no read latency histograms at QD1 or QD32 in %s (run benches/qd_sweep.sh with 1 and 32 in --qds)" % qd_dir
    marks = swap_bench(qd_dir)
    m = machine(qd_dir)
    svg = Svg(960, 575)
    sub = subtitle_of(m, [m.get("fio", "fio"), "every I/O of %s s × %s run(s)" % (m.get("secs", "?"), m.get("runs", "?"))])
    heading(svg, "Swap-in latency: 4 KiB random reads, O_DIRECT on io_uring, per-I/O latency", sub)
    # The tail panel's y axis: "nines", -log10(1 - p), up to what the
    # smallest sample count resolves (at most 99.99 %).
    n_min = min(sum(c for _, c in b) for *_, b in series)
    nines = max(2, min(4, math.floor(math.log10(max(n_min, 1)))))
    panels = (
        # title, x lo/hi percentiles, y function, y ticks, y label, tick text
        ("distribution (linear)", 0.1, 99.9, lambda p: p, [i / 10 for i in range(11)],
         "fraction of I/Os at or below", lambda t: "%d%%" % round(t * 100)),
        ("tail (percentile, log of 1 − p)", 10, 100 - 10 ** -nines, lambda p: -math.log10(max(1 - p, 1e-9)),
         list(range(nines + 1)), "percentile", lambda t: {0: "0%", 1: "90%", 2: "99%", 3: "99.9%",
                                                            4: "99.99%"}[t]),
    )
    py, pw, ph = 78, 380, 330
    for k, (title, plo, phi, yf, yt, ylabel, yfmt) in enumerate(panels):
        px = 90 + k * 470
        lo = min(percentile(b, plo) for *_, b in series) / 1e3
        hi = max(percentile(b, phi) for *_, b in series) / 1e3
        for p50s, p99s in marks.values():
            lo, hi = min([lo] + p50s), max([hi] + p99s)
        lo, hi = half_decades(lo, hi)
        xs = Log(lo, hi, px, px + pw)
        ys = Linear(yt[0], yt[-1], py + ph, py)
        x_log_axis(svg, px, py, pw, ph, xs, lo, hi, "latency, submission to completion (µs, log axis)")
        y_axis(svg, px, py, pw, ph, lambda t: ys(t), yt, ylabel, fmt=yfmt)
        svg.text(px + pw / 2, py - 8, title, size=13, anchor="middle", weight="bold")
        for p, name in ((0.5, "p50"), (0.99, "p99")):
            if yt[0] <= yf(p) <= yt[-1]:
                svg.line(px, ys(yf(p)), px + pw, ys(yf(p)), colour="#bbb", dash="2,3")
                svg.text(px + pw - 4, ys(yf(p)) - 4, name, size=10, anchor="end", colour="#888")
        frame(svg, px, py, pw, ph)
        cid = svg.clip(px, py - 2, pw, ph + 4)
        for name, qd, colour, dash, bins in series:
            n = sum(c for _, c in bins)
            pts, seen = [], 0
            for v, c in bins:
                x = xs(min(max(v / 1e3, lo / 10), hi * 10))
                if not pts:
                    pts.append((x, ys(yf(0))))
                seen += c
                if seen < n or k == 0:
                    pts.append((x, ys(min(yf(seen / n), yt[-1] + 0.5))))
            svg.polyline(pts, colour, width=2.2, dash=dash, clip=cid)
        for case, (p50s, p99s) in marks.items():
            filled = case.endswith("qd32")
            for v, p in ((statistics.median(p50s), 0.5), (statistics.median(p99s), 0.99)):
                svg.marker(xs(v), ys(yf(p)), "diamond", SWAP, filled=filled, r=4)
    # Legend: three columns under the panels.
    entries = []
    for name, qd, colour, dash, bins in series:
        n = sum(c for _, c in bins)
        entries.append(("%s QD%d" % ("ours (dio_bench)" if name == "ours" else "fio", qd), colour, dash, None,
                        "p50 %s · p99 %s · p99.9 %s µs · %s I/Os" % (
                            us(percentile(bins, 50) / 1e3), us(percentile(bins, 99) / 1e3),
                            us(percentile(bins, 99.9) / 1e3), si(n))))
    for case, (p50s, p99s) in sorted(marks.items(), key=lambda kv: int(re.sub(r"\D", "", kv[0]) or 0)):
        p50, p99 = statistics.median(p50s), statistics.median(p99s)
        entries.append(("swap bench %s" % case, SWAP, None, ("diamond", case.endswith("qd32")),
                        "p50 %s · p99 %s µs (median of %d run%s)" % (us(p50), us(p99), len(p50s),
                                                                    "s" if len(p50s) > 1 else "")))
    ly0 = py + ph + 68
    for i, (label, colour, dash, mark, detail) in enumerate(entries):
        lx, ly = 60 + (i // 2) * 300, ly0 + (i % 2) * 38
        if mark:
            svg.marker(lx + 14, ly - 4, mark[0], colour, filled=mark[1], r=4)
        else:
            svg.line(lx, ly - 4, lx + 28, ly - 4, colour=colour, width=2.5, dash=dash)
        svg.text(lx + 36, ly, label, size=12)
        svg.text(lx + 36, ly + 15, detail, size=10, colour="#555")
    svg.text(svg.w / 2, svg.h - 12,
             "ours: examples/dio_bench.rs (DirectIo::submit, one page per read) · fio: lat_ns bins of "
             "--output-format=json+ · swap bench: SwapDevice::swap_readpage, p50 / p99 only",
             size=10, anchor="middle", colour="#555")
    svg.write(out, "Swap-in latency CDF")
    have = {(s[0], s[1]) for s in series}
    missing = ["%s QD%d" % k for k in (("ours", 1), ("fio", 1), ("ours", 32), ("fio", 32)) if k not in have]
    if not marks:
        missing.append("swap bench markers")
    return None if not missing else "partial: no data for %s" % ", ".join(missing)


def plot_paging(paging_dir, out):
    data, nfiles, pages = paging(paging_dir)
    if not data:
        return "no paging-r*.json in %s (run benches/plots.sh, or paging_bench --json > %s/paging-r1.json)" % (
            paging_dir, paging_dir)
    m = machine(paging_dir)
    sides = [s for s in ("kernel", "pager-anon", "pager-memfd") if any(k[0] == s for k in data)]
    patterns = [p for p in ("random", "runs", "seq") if any(k[1] == p for k in data)]
    runs = max(len(d["out"]) for d in data.values())
    svg = Svg(960, 460)
    size = ", ".join("%d pages (%d MiB), %d threads" % (p, p * 4 // 1024, t) for p, t in sorted(pages))
    extra = [size, "vm.page-cluster %s" % m.get("page-cluster", "?"),
             "median of %d run%s%s" % (runs, "s" if runs > 1 else "", ", whiskers min–max" if runs > 1 else "")]
    if "kernel" not in sides:
        extra.append("kernel side skipped (needs root)")
    heading(svg, "Paging through one swap file: the kernel's swap against the userfaultfd pager",
            subtitle_of(m, extra))
    labels = {"kernel": "kernel swap (MADV_PAGEOUT / major faults)",
              "pager-anon": "pager, anonymous (UFFDIO_COPY)",
              "pager-memfd": "pager, memfd (UFFDIO_CONTINUE)"}
    widths = [20 + 7.0 * len(labels[s]) + 24 for s in sides]
    x = (svg.w - sum(widths)) / 2
    for s, wd in zip(sides, widths):
        svg.rect(x, 54, 14, 12, SIDE_COLOURS[s])
        svg.text(x + 20, 65, labels[s], size=12)
        x += wd
    top = max(max(d[k]) for d in data.values() for k in ("out", "in") if d[k])
    yt = nice_ticks(0, top * 1.12)
    pw, ph, py = 400, 300, 100
    for i, (direction, title) in enumerate((("out", "swap-out"), ("in", "swap-in"))):
        px = 95 + i * 460
        ys = Linear(0, yt[-1], py + ph, py)
        y_axis(svg, px, py, pw, ph, ys, yt, "pages per second (4 KiB)" if i == 0 else "")
        svg.text(px + pw / 2, py - 8, title, size=13, anchor="middle", weight="bold")
        gw = pw / max(len(patterns), 1)
        bw = min(36, (gw - 20) / max(len(sides), 1))
        for g, pat in enumerate(patterns):
            gx = px + g * gw + (gw - bw * len(sides)) / 2
            svg.text(px + g * gw + gw / 2, py + ph + 18, pat, size=12, anchor="middle")
            kern = data.get(("kernel", pat), {}).get(direction)
            for b, side in enumerate(sides):
                v = data.get((side, pat), {}).get(direction)
                if not v:
                    continue
                med = statistics.median(v)
                x = gx + b * bw
                svg.rect(x + 1, ys(med), bw - 2, ys(0) - ys(med), SIDE_COLOURS[side])
                cx = x + bw / 2
                top_y = ys(med)
                if len(v) > 1:
                    svg.line(cx, ys(min(v)), cx, ys(max(v)), colour="#222", width=1.2)
                    svg.line(cx - 3, ys(max(v)), cx + 3, ys(max(v)), colour="#222", width=1.2)
                    svg.line(cx - 3, ys(min(v)), cx + 3, ys(min(v)), colour="#222", width=1.2)
                    top_y = min(top_y, ys(max(v)))
                svg.text(cx, top_y - 4, si(med), size=9.5, anchor="middle")
                if side != "kernel" and kern:
                    r = med / statistics.median(kern)
                    svg.text(cx, top_y - 15, ("%.1f×" if r >= 10 else "%.2f×") % r, size=9.5, anchor="middle",
                             colour="#000" if r >= 1 else "#666", weight="bold" if r >= 1 else "normal")
        svg.text(px + pw / 2, py + ph + 38, "access pattern (ratio to the kernel above the pager bars)",
                 size=11, anchor="middle", colour="#555")
        frame(svg, px, py, pw, ph)
    svg.write(out, "Kernel swap against the userfaultfd pager")
    missing = [s for s in ("kernel", "pager-anon", "pager-memfd") if s not in sides]
    return None if not missing else "partial: no data for %s" % ", ".join(missing)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(root, "target")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--qd-dir", default=os.path.join(target, "bench-plots", "qd-sweep"))
    ap.add_argument("--paging-dir", default=os.path.join(target, "bench-plots", "paging"))
    ap.add_argument("--out", default=os.path.join(root, "benches", "plots"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    drawn = 0
    for name, fn, src in (("qd-sweep-iops.svg", plot_qd, a.qd_dir),
                          ("swapin-latency-cdf.svg", plot_cdf, a.qd_dir),
                          ("paging-kernel-vs-pager.svg", plot_paging, a.paging_dir)):
        path = os.path.join(a.out, name)
        tmp = path + ".tmp"
        try:
            why = fn(src, tmp)
        except Exception as e:  # one bad input must not stop the others
            why = "failed: %s: %s" % (type(e).__name__, e)
            if os.path.exists(tmp):
                os.remove(tmp)
        if os.path.exists(tmp):
            os.replace(tmp, path)
            drawn += 1
            shown = os.path.relpath(path)
            print("plots.py: wrote %s%s" % (path if shown.startswith("..") else shown,
                                            " (%s)" % why if why else ""))
        else:
            print("plots.py: SKIPPED %s: %s%s" % (name, why,
                  "; the old file is left as it was" if os.path.exists(path) else ""), file=sys.stderr)
    return 0 if drawn else 1


if __name__ == "__main__":
    sys.exit(main())
