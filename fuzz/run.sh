#!/usr/bin/env bash
# Runs every cargo-fuzz target in this directory for SECONDS each (default
# 15), installing cargo-fuzz and the nightly toolchain if they are missing.
#
#   fuzz/run.sh [SECONDS]
#
# Exits non-zero as soon as a target finds a crash (the input is left in
# fuzz/artifacts/<target>/; replay it with `cargo +nightly fuzz run <target>
# <file>`). The corpus grows in fuzz/corpus/<target>/ (git-ignored).
set -euo pipefail
secs="${1:-15}"
cd "$(dirname "$0")"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked || cargo install cargo-fuzz
fi

targets=$(cargo +nightly fuzz list)
# One build for all targets, so the per-target time below is fuzzing only.
cargo +nightly fuzz build
for t in $targets; do
  printf '\n=== fuzz %s for %ss\n' "$t" "$secs"
  cargo +nightly fuzz run "$t" -- -max_total_time="$secs" -print_final_stats=1
done
printf '\n=== fuzz: %s ran %ss each, no crash\n' "$(echo $targets | tr '\n' ' ')" "$secs"
