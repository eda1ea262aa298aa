# Shared by benches/fio_compare.sh and benches/qd_sweep.sh (sourced, not
# run): the tools, the release binaries and the O_DIRECT-capable bench file.
# Each function takes the calling script's name for its messages.

# fio (installed with apt-get when missing) and python3 (to read its JSON).
bench_tools() { # script
    if ! command -v fio >/dev/null 2>&1; then
        echo "fio not found: installing it (apt-get)"
        local sudo=""
        if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
        $sudo apt-get update && $sudo apt-get install -y fio
    fi
    command -v python3 >/dev/null 2>&1 || { echo "$1: python3 is needed to read fio's JSON" >&2; exit 1; }
}

# Builds the swap demo and dio_bench; sets TARGET_DIR, BIN and DIO.
bench_build() {
    TARGET_DIR="${CARGO_TARGET_DIR:-target}"
    echo "building the swap demo and dio_bench (release)..."
    cargo build --release -p iov-iter-swap --bin swap --quiet
    cargo build --release --example dio_bench --quiet
    BIN="$TARGET_DIR/release/swap"
    DIO="$TARGET_DIR/release/examples/dio_bench"
}

# Checks that FILE's directory takes O_DIRECT (not tmpfs, a probe write);
# sets DIR and FSTYPE.
bench_check_dir() { # script
    DIR=$(dirname "$FILE")
    mkdir -p "$DIR"
    FSTYPE=$(df --output=fstype "$DIR" | tail -1 | tr -d ' ')
    if [ "$FSTYPE" = "tmpfs" ] || [ "$FSTYPE" = "ramfs" ]; then
        echo "$1: $DIR is on $FSTYPE, which has no O_DIRECT; use --file on a disk filesystem" >&2
        exit 1
    fi
    local probe="$DIR/.odirect-probe-$$"
    if ! dd if=/dev/zero of="$probe" bs=4096 count=1 oflag=direct status=none 2>/dev/null; then
        rm -f "$probe"
        echo "$1: O_DIRECT is refused in $DIR ($FSTYPE); use --file elsewhere" >&2
        exit 1
    fi
    rm -f "$probe"
}

# Creates FILE as a swap area of SIZE with every byte written (never only
# fallocated: unwritten extents read back as zeros without touching the
# disk) unless it exists; its description goes to OUT/area.json.
bench_prepare() { # size
    echo "preparing $FILE ($1; created and zero-filled if missing)..."
    "$BIN" bench --file "$FILE" --size "$1" --prepare --json >"$OUT/area.json" 2>"$OUT/area.log" || {
        cat "$OUT/area.log" >&2
        exit 1
    }
    cat "$OUT/area.log"
}
