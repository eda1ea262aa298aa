#!/usr/bin/env bash
# Regenerates the plots of BENCHMARKS.md ("Plots"): runs the benchmarks they
# are drawn from, then draws benches/plots/*.svg with benches/plots.py.
#
#   benches/plots.sh                 # everything (as root, for the kernel swap)
#   benches/plots.sh --plot-only     # only redraw from the JSON already there
#
# Options (and environment defaults, the flags win):
#   --time SECS   (SECS, 10)     run time of each qd-sweep run
#   --runs N      (RUNS, 3)      runs of the qd sweep and of paging_bench;
#                                the plots show the median and min-max
#   --qds "..."   (QDS, "1 2 4 8 16 32 64")
#   --pages N     (PAGES, 32768) paging_bench's region, in 4 KiB pages
#   --file PATH                  the qd sweep's file (see benches/qd_sweep.sh)
#   --no-paging                  skip paging_bench (keep its old JSON)
#   --no-sweep                   skip the qd sweep (keep its old JSON)
#
# 1. benches/qd_sweep.sh: IOPS of ours (dio_bench) and fio at each QD, with
#    per-I/O latency histograms, and the swap bench's swap-in p50/p99, into
#    target/bench-plots/qd-sweep/.
# 2. paging_bench --json, RUNS times, into target/bench-plots/paging/ (the
#    kernel side needs root: run through sudo when not root; without root it
#    is skipped and only the pager is plotted).
# 3. python3 benches/plots.py: benches/plots/qd-sweep-iops.svg,
#    swapin-latency-cdf.svg, paging-kernel-vs-pager.svg.
#
# About 17 minutes with the defaults, on a quiet machine.
set -euo pipefail

SECS="${SECS:-10}"
RUNS="${RUNS:-3}"
QDS="${QDS:-1 2 4 8 16 32 64}"
PAGES="${PAGES:-32768}"
FILE=""
PLOT_ONLY=0
PAGING=1
SWEEP=1

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case "$1" in
    --plot-only) PLOT_ONLY=1; shift ;;
    -t | --time) SECS="$2"; shift 2 ;;
    --time=*) SECS="${1#*=}"; shift ;;
    --runs) RUNS="$2"; shift 2 ;;
    --runs=*) RUNS="${1#*=}"; shift ;;
    --qds) QDS="$2"; shift 2 ;;
    --qds=*) QDS="${1#*=}"; shift ;;
    --pages) PAGES="$2"; shift 2 ;;
    --pages=*) PAGES="${1#*=}"; shift ;;
    -f | --file) FILE="$2"; shift 2 ;;
    --file=*) FILE="${1#*=}"; shift ;;
    --no-paging) PAGING=0; shift ;;
    --no-sweep) SWEEP=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "plots.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/.."
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
command -v python3 >/dev/null 2>&1 || { echo "plots.sh: python3 is needed" >&2; exit 1; }

if [ "$PLOT_ONLY" = 0 ]; then
    case "$PAGES$RUNS" in
    '' | *[!0-9]*) echo "plots.sh: --pages and --runs take whole numbers" >&2; exit 2 ;;
    esac
    if [ "$SWEEP" = 1 ]; then
        args=(--time "$SECS" --runs "$RUNS" --qds "$QDS")
        [ -z "$FILE" ] || args+=(--file "$FILE")
        benches/qd_sweep.sh "${args[@]}"
    fi
    if [ "$PAGING" = 1 ]; then
        echo "building paging_bench (release)..."
        cargo build --release -p iov-iter-swap --bin paging_bench --quiet
        PB="$TARGET_DIR/release/paging_bench"
        POUT="$TARGET_DIR/bench-plots/paging"
        mkdir -p "$POUT"
        rm -f "$POUT"/paging-*.json "$POUT"/paging-*.log
        AS_ROOT=()
        if [ "$(id -u)" -ne 0 ]; then
            if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
                AS_ROOT=(sudo -n)
            else
                echo "plots.sh: not root and no sudo: paging_bench's kernel side will be skipped" >&2
            fi
        fi
        {
            echo "date:       $(date -u +%Y-%m-%dT%H:%M:%SZ)"
            echo "commit:     $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
            echo "pages:      $PAGES"
            echo "runs:       $RUNS"
            echo "page-cluster: $(cat /proc/sys/vm/page-cluster 2>/dev/null || echo '?')"
            echo "load avg:   $(cut -d' ' -f1-3 /proc/loadavg) (before)"
        } | tee "$POUT/machine.txt"
        for run in $(seq 1 "$RUNS"); do
            echo "paging_bench run $run/$RUNS (--pages $PAGES)..."
            f="$POUT/paging-r$run"
            # A failed pattern still leaves the others' JSON: keep it, say so.
            "${AS_ROOT[@]}" "$PB" --pages "$PAGES" --json >"$f.json" 2>"$f.log" || {
                cat "$f.log" >&2
                echo "plots.sh: paging_bench run $run failed (its JSON, if any, is kept: $f.json)" >&2
            }
            grep -E 'SKIPPED|note:' "$f.log" >&2 || true
        done
    fi
fi

python3 benches/plots.py
