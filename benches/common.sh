# Shared by benches/fio_compare.sh and benches/qd_sweep.sh (sourced, not
# run): the tools, the release binaries, the O_DIRECT-capable bench file and
# the CPU both sides are pinned to.
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

# Sets PIN, the command prefix that pins a benchmark process to CPU (a
# number, or `none` for the scheduler's placement): `taskset -c CPU`. Both
# sides of a comparison run under it, so that neither runs where the
# device's interrupt lands while the other does not (a single-queue
# virtio-blk interrupts one CPU; a QD1 thread there runs about 20 % faster).
bench_pin() { # script cpu
    PIN=()
    case "$2" in
    none) ;;
    '' | *[!0-9]*) echo "$1: --cpu takes a CPU number or none" >&2; exit 2 ;;
    *)
        [ "$2" -lt "$(nproc)" ] || { echo "$1: --cpu $2: only $(nproc) CPUs" >&2; exit 2; }
        command -v taskset >/dev/null 2>&1 || { echo "$1: taskset (util-linux) is needed to pin; or --cpu none" >&2; exit 2; }
        PIN=(taskset -c "$2")
        ;;
    esac
}

# The pinning, for machine.txt.
bench_pin_line() { # cpu
    if [ "$1" = none ]; then echo "no (the scheduler's placement)"; else echo "both sides on CPU $1 (taskset)"; fi
}
