#!/usr/bin/env bash
# The swap example's direct-I/O paths side by side with fio, on the same file.
#
#   benches/fio_compare.sh [--time SECS] [--size SIZE] [--file PATH] [--out DIR]
#                          [--fio-first] [--cpu N|none]
#
# 1. Installs fio if it is missing (apt-get), builds the swap example
#    (release), and creates (or reuses) a swap file of SIZE (default 1G,
#    zero-filled by the example, so every extent is written) under the cargo
#    target dir, after checking that its filesystem is not tmpfs and takes
#    O_DIRECT.
# 2. For each case, runs ours (`swap bench --case NAME --json`) and then fio
#    with the same parameters on the same file, interleaved, so both see the
#    same machine state (--fio-first swaps the order within each pair, to
#    check for an order bias between two runs): 4k randread and randwrite, direct=1, psync QD1,
#    io_uring QD1 and QD32, time_based for SECS (default 10), norandommap,
#    randrepeat=0, over the swap area's usable slots (offset=4096,
#    size=(max_pages - 1) * 4096: fio never touches the header page).
#    Both sides run under `taskset -c N` (default CPU 0; --cpu none lets
#    the scheduler place them): where a thread runs relative to the CPU
#    that takes the device's interrupt (a single-queue virtio-blk
#    interrupts one CPU) changes its QD1 rate by 20 % and more, and left to
#    the scheduler the two sides land differently from run to run.
# 3. Runs the plugged swap-out cases (32 contiguous pages per kiocb) and
#    compares their pages/s with fio's 4k randwrite QD1 IOPS (target >= 4x).
# 4. Prints a table (fio IOPS, ours, ratio, latency, CPU seconds per 100k
#    I/Os for both), a table of user and system CPU microseconds and
#    context switches per I/O (the thread's, for both) with the mean
#    latency and the mean number of I/Os in flight (rate x mean latency,
#    Little's law: how full each side kept its queue), and keeps the raw
#    JSON and logs in the output directory.
#
# CPU: fio reports usr_cpu/sys_cpu as percentages of the job's run time
# (getrusage(RUSAGE_THREAD) of the job thread); here they become
# (usr_cpu + sys_cpu) / 100 * job_runtime / total_ios * 100000. Ours is the
# bench thread's utime + stime from /proc/thread-self/stat, per 100k pages.
#
# Defaults take about 2.5 minutes: 14 runs of 10 s plus setup.
set -euo pipefail

TIME=10
SIZE=1G
FILE=""
OUT=""
FIO_FIRST=0
CPU=0

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case "$1" in
    -t | --time) TIME="$2"; shift 2 ;;
    --time=*) TIME="${1#*=}"; shift ;;
    -s | --size) SIZE="$2"; shift 2 ;;
    --size=*) SIZE="${1#*=}"; shift ;;
    -f | --file) FILE="$2"; shift 2 ;;
    --file=*) FILE="${1#*=}"; shift ;;
    -o | --out) OUT="$2"; shift 2 ;;
    --out=*) OUT="${1#*=}"; shift ;;
    --fio-first) FIO_FIRST=1; shift ;;
    --cpu) CPU="$2"; shift 2 ;;
    --cpu=*) CPU="${1#*=}"; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "fio_compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$TIME" in
'' | *[!0-9]*) echo "fio_compare.sh: --time takes whole seconds (fio's runtime)" >&2; exit 2 ;;
esac
[ "$TIME" -gt 0 ] || { echo "fio_compare.sh: --time must be positive" >&2; exit 2; }

cd "$(dirname "$0")/.."
T0=$(date +%s)

# --- Tools, binaries, the file ---------------------------------------------
. benches/common.sh
bench_pin fio_compare.sh "$CPU"
bench_tools fio_compare.sh
FIO_VERSION=$(fio --version)
bench_build
if [ -z "$FILE" ]; then
    FILE="$TARGET_DIR/fio-compare/bench-$SIZE.swap"
fi
bench_check_dir fio_compare.sh

if [ -z "$OUT" ]; then
    OUT="$TARGET_DIR/fio-compare/run-$(date +%Y%m%d-%H%M%S)"
fi
mkdir -p "$OUT"

bench_prepare "$SIZE"
read -r USABLE DIO_MEM DIO_OFF < <(python3 -c '
import json, sys
a = json.load(open(sys.argv[1]))
print(a["usable"], a["dio_mem_align"], a["dio_offset_align"])' "$OUT/area.json")
REGION=$((USABLE * 4096))

{
    echo "date:       $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cpu:        $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "kernel:     $(uname -r)"
    echo "file:       $FILE on $(df --output=source "$DIR" | tail -1) ($FSTYPE), $SIZE, $USABLE usable slots"
    echo "dio align:  memory $DIO_MEM, offset $DIO_OFF (statx STATX_DIOALIGN)"
    echo "fio:        $FIO_VERSION"
    echo "runtime:    $TIME s per run, $([ "$FIO_FIRST" = 1 ] && echo "fio first" || echo "ours first") in each pair"
    echo "cpu pinned: $(bench_pin_line "$CPU")"
    echo "load avg:   $(cut -d' ' -f1-3 /proc/loadavg) (before)"
} | tee "$OUT/machine.txt"

# --- The runs --------------------------------------------------------------
FIO_COMMON=(
    --filename="$FILE" --offset=4096 --size="$REGION"
    --bs=4k --direct=1 --time_based --runtime="$TIME"
    --norandommap --randrepeat=0 --lat_percentiles=1
    --allow_file_create=0 --fallocate=none --invalidate=1
    --output-format=json
)

ours() { # case
    echo "  ours: swap bench --case $1 --time $TIME"
    "${PIN[@]}" "$BIN" bench --file "$FILE" --case "$1" --time "$TIME" --json \
        >"$OUT/ours-$1.json" 2>"$OUT/ours-$1.log" || {
        cat "$OUT/ours-$1.log" >&2
        echo "fio_compare.sh: swap bench --case $1 failed" >&2
        exit 1
    }
}

fio_run() { # case rw engine depth
    echo "  fio:  --rw=$2 --ioengine=$3 --iodepth=$4 --runtime=$TIME"
    "${PIN[@]}" fio --name="$1" --rw="$2" --ioengine="$3" --iodepth="$4" "${FIO_COMMON[@]}" \
        >"$OUT/fio-$1.json" 2>"$OUT/fio-$1.log" || {
        cat "$OUT/fio-$1.log" >&2
        echo "fio_compare.sh: fio $1 failed" >&2
        exit 1
    }
}

# case            fio rw     engine   depth
PAIRS="
swapin-sync-qd1    randread  psync    1
swapin-async-qd1   randread  io_uring 1
swapin-async-qd32  randread  io_uring 32
swapout-sync-qd1   randwrite psync    1
swapout-async-qd1  randwrite io_uring 1
swapout-async-qd32 randwrite io_uring 32
"
echo "$PAIRS" | grep -v '^$' >"$OUT/pairs.txt"
while read -r name rw engine depth; do
    echo "$name:"
    if [ "$FIO_FIRST" = 1 ]; then
        fio_run "$name" "$rw" "$engine" "$depth"
        ours "$name"
    else
        ours "$name"
        fio_run "$name" "$rw" "$engine" "$depth"
    fi
done <"$OUT/pairs.txt"
for name in swapout-plugged-sync swapout-plugged-async; do
    echo "$name:"
    ours "$name"
done
# Plugged swap-out with 8 kiocbs of 32 pages in flight, against fio writing
# 128 KiB blocks (32 pages) at QD8 on io_uring: the same bytes per I/O and
# the same depth.
# fio on io_uring at DEPTH with BS blocks, as job NAME (fio-NAME.json).
fio_extra() { # name rw bs depth [extra fio args...]
    local name=$1 rw=$2 bs=$3 depth=$4
    shift 4
    echo "  fio:  --rw=$rw --bs=$bs --ioengine=io_uring --iodepth=$depth $*"
    "${PIN[@]}" fio --name="$name" --rw="$rw" --ioengine=io_uring --iodepth="$depth" "${FIO_COMMON[@]}" --bs="$bs" "$@" \
        >"$OUT/fio-$name.json" 2>"$OUT/fio-$name.log" || {
        cat "$OUT/fio-$name.log" >&2
        echo "fio_compare.sh: fio $name failed" >&2
        exit 1
    }
}
# A multi-page case of ours against fio at QD8, in the run's order.
pair_qd8() { # case name rw bs
    echo "$1:"
    if [ "$FIO_FIRST" = 1 ]; then fio_extra "$2" "$3" "$4" 8; ours "$1"; else ours "$1"; fio_extra "$2" "$3" "$4" 8; fi
}
# Plugged swap-out with 8 kiocbs of 32 pages in flight, against fio writing
# 128 KiB blocks (32 pages) at QD8: the same bytes per I/O and the same
# depth.
pair_qd8 swapout-plugged-async-qd8 plugged128k randwrite 128k
# Readahead swap-in (page-cluster 3: aligned clusters of 8 slots, one
# kiocb each, the rest of the cluster taken from the swap cache), 8
# clusters in flight, against fio reading 32 KiB blocks (8 pages) at QD8;
# compared in pages per second (fio's IOPS × 8).
pair_qd8 swapin-readahead-async-qd8 readahead32k randread 32k

# Raw DirectIo::submit on io_uring (examples/dio_bench.rs): registered
# buffers and files against fio's --fixedbufs --registerfiles, plain 4 KiB
# QD32 beside them, and 64 KiB requests as one folio segment or sixteen
# page segments against fio's 64 KiB blocks at QD8.
dio_run() { # case
    echo "  ours: dio_bench $1 $TIME"
    "${PIN[@]}" "$DIO" "$FILE" "$1" "$TIME" >"$OUT/dio-$1.json" 2>"$OUT/dio-$1.log" || {
        cat "$OUT/dio-$1.log" >&2
        echo "fio_compare.sh: dio_bench $1 failed" >&2
        exit 1
    }
}
# case                     fio rw     bs   depth fio extra
DIO_PAIRS="
rand4k-read-qd32          randread  4k   32 -
rand4k-write-qd32         randwrite 4k   32 -
rand4k-read-qd32-fixed    randread  4k   32 --fixedbufs=1,--registerfiles=1
rand4k-write-qd32-fixed   randwrite 4k   32 --fixedbufs=1,--registerfiles=1
rand64k-read-qd8-folio    randread  64k  8  -
rand64k-read-qd8-pages    randread  64k  8  -
rand64k-write-qd8-folio   randwrite 64k  8  -
rand64k-write-qd8-pages   randwrite 64k  8  -
"
echo "$DIO_PAIRS" | grep -v '^$' >"$OUT/dio_pairs.txt"
while read -r name rw bs depth extra; do
    echo "$name:"
    args=()
    [ "$extra" = "-" ] || IFS=, read -r -a args <<<"$extra"
    if [ "$FIO_FIRST" = 1 ]; then
        fio_extra "$name" "$rw" "$bs" "$depth" "${args[@]}"
        dio_run "$name"
    else
        dio_run "$name"
        fio_extra "$name" "$rw" "$bs" "$depth" "${args[@]}"
    fi
done <"$OUT/dio_pairs.txt"

# --- The table -------------------------------------------------------------
python3 - "$OUT" <<'PY' | tee "$OUT/table.txt"
import json, os, sys

out = sys.argv[1]

def load(path):
    with open(path) as f:
        text = f.read()
    # fio may print notes before its JSON.
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    return json.loads(text[min(starts):])

def ours(name):
    path = os.path.join(out, "ours-%s.json" % name)
    rows = load(path)
    return rows[0] if rows else None

def fio(name, rw):
    j = load(os.path.join(out, "fio-%s.json" % name))["jobs"][0]
    d = j["read" if rw == "randread" else "write"]
    pct = d["lat_ns"].get("percentile", {})
    cpu_s = (j["usr_cpu"] + j["sys_cpu"]) / 100.0 * j["job_runtime"] / 1000.0
    ios = d["total_ios"]
    return {
        "iops": d["iops"],
        "p50_us": pct.get("50.000000", 0) / 1000.0,
        "p99_us": pct.get("99.000000", 0) / 1000.0,
        "mean_us": d["lat_ns"]["mean"] / 1000.0,
        "cpu_s_per_100k": cpu_s * 1e5 / ios if ios else float("nan"),
        "errors": j.get("error", 0),
        "usr_us": j["usr_cpu"] / 100.0 * j["job_runtime"] * 1e3 / ios if ios else float("nan"),
        "sys_us": j["sys_cpu"] / 100.0 * j["job_runtime"] * 1e3 / ios if ios else float("nan"),
        "ctx": j["ctx"] / ios if ios else float("nan"),
    }

def f(v, fmt):
    return "n/a" if v is None else fmt % v

pairs = [l.split() for l in open(os.path.join(out, "pairs.txt")) if l.strip()]
print()
print("| case | fio job | fio IOPS | ours IOPS | ours/fio | fio p50/p99 µs | ours p50/p99 µs "
      "| fio CPU s/100k | ours CPU s/100k |")
print("|---|---|--:|--:|--:|--:|--:|--:|--:|")
fio_qd1_write = {}
for name, rw, engine, depth in pairs:
    o, x = ours(name), fio(name, rw)
    if rw == "randwrite" and depth == "1":
        fio_qd1_write[engine] = x["iops"]
    ratio = o["iops"] / x["iops"] if o and x["iops"] else None
    print("| %s | %s %s QD%s | %.0f | %s | %s | %.0f / %.0f | %s | %.2f | %s |" % (
        name, rw, engine, depth, x["iops"],
        f(o and o["iops"], "%.0f"), f(ratio, "**%.2f×**"),
        x["p50_us"], x["p99_us"],
        "%.0f / %.0f" % (o["p50_us"], o["p99_us"]) if o else "n/a",
        x["cpu_s_per_100k"], f(o and o["cpu_s_per_100k"], "%.2f")))
print()
print("| case | fio usr / sys µs per I/O | ours usr / sys µs per I/O | fio ctx sw. per I/O "
      "| ours ctx sw. per I/O | fio / ours mean lat. µs | fio / ours in flight |")
print("|---|--:|--:|--:|--:|--:|--:|")
for name, rw, engine, depth in pairs:
    o, x = ours(name), fio(name, rw)
    if not o:
        continue
    n = max(o["kiocbs"], 1)
    octx = o.get("ctx_switches")
    omean = o.get("mean_us")
    # Little's law: mean I/Os in flight = rate x mean latency.
    print("| %s | %.2f / %.2f | %.2f / %.2f | %.2f | %s | %.0f / %s | %.1f / %s |" % (
        name, x["usr_us"], x["sys_us"], o["cpu_user_s"] * 1e6 / n, o["cpu_sys_s"] * 1e6 / n,
        x["ctx"], "n/a" if octx is None else "%.2f" % (octx / n),
        x["mean_us"], f(omean, "%.0f"),
        x["iops"] * x["mean_us"] / 1e6, f(omean and o["iops"] * omean / 1e6, "%.1f")))
print()
print("| plugged swap-out (32 pages/kiocb) | kiocbs/s | ours pages/s | fio randwrite psync QD1 IOPS "
      "| ratio | fio randwrite io_uring QD1 IOPS | ratio | ours CPU s/100k pages |")
print("|---|--:|--:|--:|--:|--:|--:|--:|")
for name in ("swapout-plugged-sync", "swapout-plugged-async"):
    o = ours(name)
    if not o:
        print("| %s | skipped | | | | | | |" % name)
        continue
    ps, pu = fio_qd1_write.get("psync"), fio_qd1_write.get("io_uring")
    print("| %s | %.0f | %.0f | %.0f | **%.1f×** | %.0f | **%.1f×** | %s |" % (
        name, o["iops"], o["pages_s"], ps, o["pages_s"] / ps, pu, o["pages_s"] / pu,
        f(o["cpu_s_per_100k"], "%.3f")))
print()
print("| plugged swap-out, 8 kiocbs in flight | ours kiocbs/s | ours pages/s | fio 128k randwrite io_uring QD8 IOPS "
      "| fio pages/s | ours/fio | ours / fio CPU µs per 128 KiB |")
print("|---|--:|--:|--:|--:|--:|--:|")
o, x = ours("swapout-plugged-async-qd8"), fio("plugged128k", "randwrite")
if o:
    fio_cpu = (x["usr_us"] + x["sys_us"])
    ours_cpu = (o["cpu_user_s"] + o["cpu_sys_s"]) * 1e6 / max(o["kiocbs"], 1)
    print("| swapout-plugged-async-qd8 | %.0f | %.0f | %.0f | %.0f | **%.2f×** | %.1f / %.1f |" % (
        o["iops"], o["pages_s"], x["iops"], x["iops"] * 32, o["pages_s"] / (x["iops"] * 32),
        ours_cpu, fio_cpu))
else:
    print("| swapout-plugged-async-qd8 | skipped | | | | | |")
print()
print("| DirectIo::submit on io_uring | fio job | fio IOPS | ours IOPS | ours/fio | pages/s ours | "
      "fio / ours mean lat. µs | fio / ours CPU µs per I/O | fixed-buffer SQEs |")
print("|---|---|--:|--:|--:|--:|--:|--:|--:|")
for line in open(os.path.join(out, "dio_pairs.txt")):
    if not line.strip():
        continue
    name, rw, bs, depth, extra = line.split()
    o = load(os.path.join(out, "dio-%s.json" % name))
    x = fio(name, rw)
    job = "%s %s QD%s%s" % (rw, bs, depth, "" if extra == "-" else " " + extra.replace(",", " "))
    ocpu = (o["cpu_user_s"] + o["cpu_sys_s"]) * 1e6 / max(o["ios"], 1)
    print("| %s | %s | %.0f | %.0f | **%.2f×** | %.0f | %.0f / %.0f | %.2f / %.2f | %d |" % (
        name, job, x["iops"], o["iops"], o["iops"] / x["iops"], o["pages_s"],
        x["mean_us"], o["mean_us"], x["usr_us"] + x["sys_us"], ocpu, o["fixed_ops"]))
PY

echo
echo "load avg: $(cut -d' ' -f1-3 /proc/loadavg) (after)" | tee -a "$OUT/machine.txt"
echo "raw JSON and logs: $OUT"
echo "total time: $(($(date +%s) - T0)) s"
