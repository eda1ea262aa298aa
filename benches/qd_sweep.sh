#!/usr/bin/env bash
# Queue-depth sweep: 4 KiB random read and random write on io_uring, ours
# (`examples/dio_bench.rs`, `DirectIo::submit`) against fio, on the same
# written file, for the plots of BENCHMARKS.md (benches/plots.py).
#
#   benches/qd_sweep.sh [--time SECS] [--qds "1 2 4 8 16 32 64"] [--runs N]
#                       [--file PATH] [--out DIR] [--no-swap-bench] [--cpu N|none]
#
# Environment defaults (the flags win): SECS (10), QDS, RUNS (3).
#
# 1. Installs fio if it is missing (apt-get), builds dio_bench and the swap
#    example (release), prepares the file with `swap bench --prepare`: by
#    default target/fio-compare/bench-1G.swap, the file of
#    benches/fio_compare.sh (created zero-filled if missing, so every extent
#    is written; reused otherwise). Refuses tmpfs and file systems without
#    O_DIRECT.
# 2. Clears the JSON of an earlier sweep in DIR (default
#    target/bench-plots/qd-sweep), then for each run, each QD and each of
#    read / write, one pair, interleaved: `dio_bench FILE rand4k-RW-qdQD SECS
#    --lat-hist` and fio --rw=randRW --ioengine=io_uring --direct=1 --bs=4k
#    --iodepth=QD, time_based for SECS, norandommap, randrepeat=0, over
#    [4096, size) as dio_bench, --output-format=json+ (latency bins). Ours
#    runs first in the pairs of odd runs, fio first in even runs.
#    Files: ours-RW-qdQD-rRUN.json, fio-RW-qdQD-rRUN.json.
# 3. Per run, unless --no-swap-bench: the swap example's own swap-in path
#    (`swap bench --case swapin-async-qd1,swapin-async-qd32`, SECS each), whose
#    p50 / p99 the latency plot marks: swap-swapin-rRUN.json.
#
# Every process runs under `taskset -c N` (default CPU 0), as in
# benches/fio_compare.sh.
#
# Time: RUNS x (4 x #QDS + 2) x SECS, about 15 min with the defaults.
set -euo pipefail

SECS="${SECS:-10}"
QDS="${QDS:-1 2 4 8 16 32 64}"
RUNS="${RUNS:-3}"
FILE=""
OUT=""
SWAP_BENCH=1
CPU=0

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case "$1" in
    -t | --time) SECS="$2"; shift 2 ;;
    --time=*) SECS="${1#*=}"; shift ;;
    --qds) QDS="$2"; shift 2 ;;
    --qds=*) QDS="${1#*=}"; shift ;;
    --runs) RUNS="$2"; shift 2 ;;
    --runs=*) RUNS="${1#*=}"; shift ;;
    -f | --file) FILE="$2"; shift 2 ;;
    --file=*) FILE="${1#*=}"; shift ;;
    -o | --out) OUT="$2"; shift 2 ;;
    --out=*) OUT="${1#*=}"; shift ;;
    --no-swap-bench) SWAP_BENCH=0; shift ;;
    --cpu) CPU="$2"; shift 2 ;;
    --cpu=*) CPU="${1#*=}"; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "qd_sweep.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
for v in "$SECS" "$RUNS" $QDS; do
    case "$v" in
    '' | *[!0-9]* | 0*) echo "qd_sweep.sh: --time, --runs and --qds take positive whole numbers (got '$v')" >&2; exit 2 ;;
    esac
done
[ -n "$QDS" ] || { echo "qd_sweep.sh: --qds is empty" >&2; exit 2; }

cd "$(dirname "$0")/.."
T0=$(date +%s)

. benches/common.sh
bench_pin qd_sweep.sh "$CPU"
bench_tools qd_sweep.sh
bench_build
[ -n "$FILE" ] || FILE="$TARGET_DIR/fio-compare/bench-1G.swap"
bench_check_dir qd_sweep.sh

[ -n "$OUT" ] || OUT="$TARGET_DIR/bench-plots/qd-sweep"
mkdir -p "$OUT"
rm -f "$OUT"/ours-*.json "$OUT"/fio-*.json "$OUT"/swap-*.json "$OUT"/*.log

bench_prepare 1G
SIZE=$(stat -c %s "$FILE")
# dio_bench's offsets: 4096 + k * 4096 for k < (size - 4096) / 4096.
REGION=$(((SIZE - 4096) / 4096 * 4096))

{
    echo "date:       $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit:     $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (dirty tree)')"
    echo "cpu:        $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "kernel:     $(uname -r)"
    echo "file:       $FILE on $(df --output=source "$DIR" | tail -1) ($FSTYPE), $SIZE bytes"
    echo "fio:        $(fio --version)"
    echo "secs:       $SECS"
    echo "runs:       $RUNS"
    echo "cpu pinned: $(bench_pin_line "$CPU")"
    echo "qds:        $QDS"
    echo "load avg:   $(cut -d' ' -f1-3 /proc/loadavg) (before)"
} | tee "$OUT/machine.txt"

FIO_COMMON=(
    --filename="$FILE" --offset=4096 --size="$REGION"
    --bs=4k --direct=1 --ioengine=io_uring --time_based --runtime="$SECS"
    --norandommap --randrepeat=0 --lat_percentiles=1
    --allow_file_create=0 --fallocate=none --invalidate=1
    --output-format=json+
)

ours() { # rw qd run
    local f="$OUT/ours-$1-qd$2-r$3"
    echo "  ours: dio_bench rand4k-$1-qd$2 $SECS"
    "${PIN[@]}" "$DIO" "$FILE" "rand4k-$1-qd$2" "$SECS" --lat-hist >"$f.json" 2>"$f.log" || {
        cat "$f.log" >&2
        echo "qd_sweep.sh: dio_bench rand4k-$1-qd$2 failed" >&2
        exit 1
    }
}

fio_run() { # rw qd run
    local f="$OUT/fio-$1-qd$2-r$3"
    echo "  fio:  --rw=rand$1 --iodepth=$2 --runtime=$SECS"
    "${PIN[@]}" fio --name="rand$1-qd$2" --rw="rand$1" --iodepth="$2" "${FIO_COMMON[@]}" >"$f.json" 2>"$f.log" || {
        cat "$f.log" >&2
        echo "qd_sweep.sh: fio rand$1 QD$2 failed" >&2
        exit 1
    }
}

for run in $(seq 1 "$RUNS"); do
    for qd in $QDS; do
        for rw in read write; do
            echo "run $run/$RUNS, $rw QD$qd:"
            if [ $((run % 2)) = 1 ]; then
                ours "$rw" "$qd" "$run"
                fio_run "$rw" "$qd" "$run"
            else
                fio_run "$rw" "$qd" "$run"
                ours "$rw" "$qd" "$run"
            fi
        done
    done
    if [ "$SWAP_BENCH" = 1 ]; then
        echo "run $run/$RUNS, swap bench swapin-async-qd1,swapin-async-qd32:"
        f="$OUT/swap-swapin-r$run"
        "${PIN[@]}" "$BIN" bench --file "$FILE" --case swapin-async-qd1,swapin-async-qd32 --time "$SECS" --json \
            >"$f.json" 2>"$f.log" || {
            cat "$f.log" >&2
            echo "qd_sweep.sh: swap bench failed" >&2
            exit 1
        }
    fi
done

echo "load avg:   $(cut -d' ' -f1-3 /proc/loadavg) (after)" | tee -a "$OUT/machine.txt"
echo "JSON and logs: $OUT ($(($(date +%s) - T0)) s)"
