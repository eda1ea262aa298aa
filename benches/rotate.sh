#!/usr/bin/env bash
# Rotated rounds: one or more builds of the swap demo and fio, in an order
# that rotates every round, for before/after comparisons on a device whose
# rate drifts between runs (on the benchmark VM, by up to 25 % between
# back-to-back runs: more than most changes worth measuring).
#
#   benches/rotate.sh [--rounds N] [--time SECS] [--cases "C1 C2 ..."]
#                     [--file PATH] [--size SIZE] [--out DIR] [--cpu N|none]
#                     SWAP_BIN [SWAP_BIN...]
#
# Each SWAP_BIN is a `swap` binary (e.g. target/release/swap copied aside
# after building each commit). Each round runs every case once per binary
# and once with fio, the order of the sides rotating by one each round,
# every side under `taskset -c N` (default CPU 0), fio with
# benches/fio_compare.sh's flags on the same written swap area (created by
# the first binary if missing). The cases are the 4 KiB ones
# (default: all six: swap-in and swap-out, sync QD1, io_uring QD1 and
# QD32). Defaults: 5 rounds of 3 s.
#
# Prints per case and side: the median IOPS, the median over rounds of
# side / fio in the same round (the figure to quote: it cancels the
# device's drift between rounds), its minimum, the user and total CPU
# microseconds per I/O (the thread's, both sides) and the mean number in
# flight (rate x mean latency). Raw JSON stays in the output directory.
set -euo pipefail

ROUNDS=5
TIME=3
CASES="swapin-sync-qd1 swapin-async-qd1 swapin-async-qd32 swapout-sync-qd1 swapout-async-qd1 swapout-async-qd32"
FILE=""
SIZE=1G
OUT=""
CPU=0
BINS=()

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --time) TIME="$2"; shift 2 ;;
    --cases) CASES="$2"; shift 2 ;;
    --file) FILE="$2"; shift 2 ;;
    --size) SIZE="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --cpu) CPU="$2"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "rotate.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) BINS+=("$1"); shift ;;
    esac
done
[ ${#BINS[@]} -gt 0 ] || { echo "rotate.sh: give at least one swap binary (see --help)" >&2; exit 2; }
for b in "${BINS[@]}"; do
    [ -x "$b" ] || { echo "rotate.sh: $b is not an executable" >&2; exit 2; }
done
for v in "$ROUNDS" "$TIME"; do
    case "$v" in
    '' | *[!0-9]* | 0) echo "rotate.sh: --rounds and --time take positive whole numbers" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/.."
. benches/common.sh
bench_pin rotate.sh "$CPU"
bench_tools rotate.sh
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
[ -n "$FILE" ] || FILE="$TARGET_DIR/fio-compare/bench-$SIZE.swap"
bench_check_dir rotate.sh
[ -n "$OUT" ] || OUT="$TARGET_DIR/fio-compare/rotate-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
BIN="${BINS[0]}"
bench_prepare "$SIZE"
USABLE=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["usable"])' "$OUT/area.json")
REGION=$((USABLE * 4096))

fio_job() { # case -> "rw engine depth"
    case "$1" in
    swapin-sync-qd1) echo "randread psync 1" ;;
    swapin-async-qd1) echo "randread io_uring 1" ;;
    swapin-async-qd32) echo "randread io_uring 32" ;;
    swapout-sync-qd1) echo "randwrite psync 1" ;;
    swapout-async-qd1) echo "randwrite io_uring 1" ;;
    swapout-async-qd32) echo "randwrite io_uring 32" ;;
    *) echo "rotate.sh: $1 has no fio job here (4 KiB cases only)" >&2; exit 2 ;;
    esac
}
for c in $CASES; do fio_job "$c" >/dev/null; done

run_side() { # side-index case round
    local k=$1 c=$2 r=$3
    if [ "$k" -eq "${#BINS[@]}" ]; then
        local job
        read -r -a job < <(fio_job "$c")
        "${PIN[@]}" fio --name="$c" --rw="${job[0]}" --ioengine="${job[1]}" --iodepth="${job[2]}" \
            --filename="$FILE" --offset=4096 --size="$REGION" --bs=4k --direct=1 \
            --time_based --runtime="$TIME" --norandommap --randrepeat=0 \
            --allow_file_create=0 --fallocate=none --invalidate=1 --output-format=json \
            >"$OUT/$c.fio.$r.json" 2>"$OUT/$c.fio.$r.log" || {
            cat "$OUT/$c.fio.$r.log" >&2
            echo "rotate.sh: fio $c failed (round $r)" >&2
            exit 1
        }
    else
        "${PIN[@]}" "${BINS[$k]}" bench --file "$FILE" --case "$c" --time "$TIME" --json \
            >"$OUT/$c.b$k.$r.json" 2>"$OUT/$c.b$k.$r.log" || {
            cat "$OUT/$c.b$k.$r.log" >&2
            echo "rotate.sh: ${BINS[$k]} bench --case $c failed (round $r)" >&2
            exit 1
        }
    fi
}

SIDES=$((${#BINS[@]} + 1))
for r in $(seq 1 "$ROUNDS"); do
    echo "round $r of $ROUNDS"
    for c in $CASES; do
        for i in $(seq 0 $((SIDES - 1))); do
            run_side $(((i + r) % SIDES)) "$c" "$r"
        done
    done
done
printf '%s\n' "${BINS[@]}" >"$OUT/binaries.txt"

python3 - "$OUT" "$TIME" <<'PY'
import collections, glob, json, os, statistics as st, sys

out, secs = sys.argv[1], float(sys.argv[2])
bins = open(os.path.join(out, "binaries.txt")).read().split()
runs = collections.defaultdict(dict)  # (case, side) -> round -> (iops, inflight, cpu, user)
for path in glob.glob(os.path.join(out, "*.json")):
    name = os.path.basename(path)
    if name == "area.json":
        continue
    case, side, rnd, _ = name.split(".")
    j = json.load(open(path))
    if side == "fio":
        job = j["jobs"][0]
        d = job["read"] if job["read"]["total_ios"] else job["write"]
        n = d["total_ios"]
        cpu = (job["usr_cpu"] + job["sys_cpu"]) / 100 * secs / n * 1e6
        usr = job["usr_cpu"] / 100 * secs / n * 1e6
        runs[(case, side)][int(rnd)] = (d["iops"], d["iops"] * d["lat_ns"]["mean"] / 1e9, cpu, usr)
    else:
        x = j[0]
        n = x["kiocbs"]
        runs[(case, side)][int(rnd)] = (
            x["iops"], x["iops"] * x["mean_us"] / 1e6,
            (x["cpu_user_s"] + x["cpu_sys_s"]) / n * 1e6, x["cpu_user_s"] / n * 1e6)

print("| case | side | median IOPS | side / fio, per-round median | min | user / CPU µs per I/O | in flight |")
print("|---|---|--:|--:|--:|--:|--:|")
for case in sorted({c for c, _ in runs}):
    fio = runs[(case, "fio")]
    for side in [f"b{k}" for k in range(len(bins))] + ["fio"]:
        rs = runs[(case, side)]
        med = lambda i: st.median(v[i] for v in rs.values())
        if side == "fio":
            ratio = mn = "-"
            label = "fio"
        else:
            rounds = [v[0] / fio[r][0] for r, v in rs.items() if r in fio]
            ratio, mn = f"**{st.median(rounds):.3f}×**", f"{min(rounds):.3f}×"
            label = bins[int(side[1:])]
        print(f"| {case} | {label} | {med(0):.0f} | {ratio} | {mn} | {med(3):.2f} / {med(2):.2f} | {med(1):.1f} |")
PY
echo "raw JSON: $OUT"
