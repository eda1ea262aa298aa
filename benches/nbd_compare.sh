#!/usr/bin/env bash
# The NBD backend side by side with fio's own nbd engine, on the same export.
#
#   benches/nbd_compare.sh [--time SECS] [--size SIZE]
#
# Starts qemu-nbd (--cache=none --format=raw --shared=8 --persistent) on a
# unix socket over a written image of SIZE (default 256M) under the cargo
# target dir, then for 4 KiB randread and randwrite at QD1 and QD32 runs
# fio (--ioengine=nbd --uri=..., norandommap, time_based for SECS, default
# 5) and ours (examples/nbd_bench.rs: DirectIo::submit on NbdDevice, one
# connection, QD requests kept in flight), interleaved, and prints IOPS,
# mean latency and the ratio ours / fio. A smoke run: short, one pass.
# Needs qemu-nbd (qemu-utils), fio with its nbd engine, and libnbd.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=5
size=256M
while [ $# -gt 0 ]; do
  case "$1" in
    --time) secs=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    *) echo "usage: $0 [--time SECS] [--size SIZE]" >&2; exit 2 ;;
  esac
done
for tool in qemu-nbd fio; do
  command -v "$tool" >/dev/null || { echo "$tool is missing (apt-get install qemu-utils fio)" >&2; exit 1; }
done
fio --enghelp=nbd >/dev/null 2>&1 || { echo "this fio has no nbd engine" >&2; exit 1; }

cargo build -q --release --features nbd --example nbd_bench
bench=target/release/examples/nbd_bench
dir=$(mktemp -d "$(realpath "${CARGO_TARGET_DIR:-target}")/nbd_compare.XXXXXX")
img=$dir/disk.img
sock=$dir/sock
# A written image (not sparse), so reads hit data on disk.
head -c "$size" /dev/urandom >"$img" 2>/dev/null || dd if=/dev/urandom of="$img" bs=1M count=256 status=none
qemu-nbd --cache=none --format=raw --persistent --shared=8 --socket="$sock" "$img" &
srv=$!
trap 'kill "$srv" 2>/dev/null; wait "$srv" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || { echo "qemu-nbd did not start" >&2; exit 1; }
uri="nbd+unix:///?socket=$sock"

printf '%-16s %10s %10s %7s %12s %12s\n' case fio_iops our_iops ratio fio_lat_us our_lat_us
for rw in randread randwrite; do
  for qd in 1 32; do
    fj=$(fio --name=nbd --ioengine=nbd --uri="$uri" --rw="$rw" --bs=4k --iodepth="$qd" \
      --norandommap --randrepeat=0 --time_based --runtime="$secs" --size="$size" \
      --output-format=json 2>/dev/null | sed -n '/^{/,$p')
    key=read; [ "$rw" = randwrite ] && key=write
    read -r fiops flat < <(printf '%s' "$fj" | python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0][sys.argv[1]]
print(round(j["iops"]), round(j["lat_ns"]["mean"] / 1000, 1))' "$key")
    oj=$("$bench" "$uri" "$rw" "$qd" "$secs")
    read -r oiops olat < <(printf '%s' "$oj" | python3 -c '
import json, sys
j = json.load(sys.stdin)
print(round(j["iops"]), j["lat_us"])')
    ratio=$(python3 -c "print(f'{$oiops / max($fiops, 1):.2f}')")
    printf '%-16s %10s %10s %7s %12s %12s\n' "$rw-qd$qd" "$fiops" "$oiops" "$ratio" "$flat" "$olat"
  done
done
