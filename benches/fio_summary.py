#!/usr/bin/env python3
"""Summarises several runs of benches/fio_compare.sh: for every case, the
ours/fio ratio of each run, then the median, minimum and maximum, and the
median CPU microseconds per I/O of both sides.

    python3 benches/fio_summary.py target/fio-compare/run-A target/fio-compare/run-B ...

Each argument is an output directory of fio_compare.sh (it holds the raw
JSON of both sides). Prints Markdown tables.
"""
import json
import os
import statistics
import sys


def load(path):
    with open(path) as f:
        text = f.read()
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    return json.loads(text[min(starts):])


def fio(run, name, rw):
    j = load(os.path.join(run, "fio-%s.json" % name))["jobs"][0]
    d = j["read" if rw == "randread" else "write"]
    ios = d["total_ios"] or 1
    cpu_us = (j["usr_cpu"] + j["sys_cpu"]) / 100.0 * j["job_runtime"] * 1e3 / ios
    return d["iops"], cpu_us


def swap_case(run, name):
    rows = load(os.path.join(run, "ours-%s.json" % name))
    o = rows[0]
    n = max(o["kiocbs"], 1)
    return o, (o["cpu_user_s"] + o["cpu_sys_s"]) * 1e6 / n


def dio_case(run, name):
    o = load(os.path.join(run, "dio-%s.json" % name))
    return o, (o["cpu_user_s"] + o["cpu_sys_s"]) * 1e6 / max(o["ios"], 1)


def pairs(run, fname):
    path = os.path.join(run, fname)
    if not os.path.exists(path):
        return []
    return [l.split() for l in open(path) if l.strip()]


def row(label, job, ratios, ocpu, fcpu, unit="×"):
    med = statistics.median(ratios)
    print("| %s | %s | %s | **%.2f%s** | %.2f–%.2f%s | %.2f / %.2f |" % (
        label, job, " ".join("%.2f" % r for r in ratios), med, unit,
        min(ratios), max(ratios), unit, statistics.median(fcpu), statistics.median(ocpu)))


def qd8_pages_row(runs, case, job, rw, pages, label, desc):
    """A multi-page case of ours against fio at QD8 with `pages` pages per
    block, in pages per second; skipped when the runs predate the pair. A
    `%.1f` in `label` takes ours' median pages per kiocb."""
    ratios, ocpu, fcpu, ppk = [], [], [], []
    for run in runs:
        if not os.path.exists(os.path.join(run, "fio-%s.json" % job)):
            break
        o, oc = swap_case(run, case)
        fi, fc = fio(run, job, rw)
        ratios.append(o["pages_s"] / (fi * pages))
        ocpu.append(oc)
        fcpu.append(fc)
        ppk.append(o["pages_s"] / max(o["iops"], 1))
    if ratios:
        if "%" in label:
            label = label % statistics.median(ppk)
        row(label, desc, ratios, ocpu, fcpu)


def main(runs):
    print("| case | fio job | ours/fio per run | median | min–max | fio / ours CPU µs per I/O (median) |")
    print("|---|---|---|--:|--:|--:|")
    for name, rw, engine, depth in pairs(runs[0], "pairs.txt"):
        ratios, ocpu, fcpu = [], [], []
        for run in runs:
            (o, oc), (fi, fc) = swap_case(run, name), fio(run, name, rw)
            ratios.append(o["iops"] / fi)
            ocpu.append(oc)
            fcpu.append(fc)
        row(name, "%s %s QD%s" % (rw, engine, depth), ratios, ocpu, fcpu)
    # Plugged, 8 kiocbs of 32 pages in flight, against fio's 128 KiB QD8.
    qd8_pages_row(runs, "swapout-plugged-async-qd8", "plugged128k", "randwrite", 32,
                  "swapout-plugged-async-qd8 (pages/s)",
                  "randwrite 128k io_uring QD8 (×32 pages)")
    # Readahead swap-in, 8 clusters of 8 pages in flight, against fio's
    # 32 KiB QD8 (ours also reports its pages per kiocb: the readahead
    # window adapts, so not every kiocb holds 8).
    qd8_pages_row(runs, "swapin-readahead-async-qd8", "readahead32k", "randread", 8,
                  "swapin-readahead-async-qd8 (pages/s; %.1f pages per kiocb)",
                  "randread 32k io_uring QD8 (×8 pages)")
    for name, rw, bs, depth, extra in pairs(runs[0], "dio_pairs.txt"):
        ratios, ocpu, fcpu = [], [], []
        for run in runs:
            (o, oc), (fi, fc) = dio_case(run, name), fio(run, name, rw)
            ratios.append(o["iops"] / fi)
            ocpu.append(oc)
            fcpu.append(fc)
        job = "%s %s io_uring QD%s%s" % (rw, bs, depth, "" if extra == "-" else " " + extra.replace(",", " "))
        row(name, job, ratios, ocpu, fcpu)
    # 64 KiB as one folio segment against sixteen page segments (ours).
    print()
    print("| 64 KiB requests, QD8 | folio pages/s per run | 16 × 4 KiB pages/s per run | folio / pages (median) |")
    print("|---|---|---|--:|")
    for rw in ("read", "write"):
        f = [dio_case(r, "rand64k-%s-qd8-folio" % rw)[0]["pages_s"] for r in runs]
        p = [dio_case(r, "rand64k-%s-qd8-pages" % rw)[0]["pages_s"] for r in runs]
        print("| %s | %s | %s | **%.2f×** |" % (
            rw, " ".join("%.0f" % x for x in f), " ".join("%.0f" % x for x in p),
            statistics.median([a / b for a, b in zip(f, p)])))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    main(sys.argv[1:])
