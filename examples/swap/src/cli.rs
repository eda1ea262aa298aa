//! Command-line parsing for the swap example (hand-written, no
//! dependencies).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The help text.
pub const USAGE: &str = "\
usage: swap [OPTIONS]          swap pages out and back in, verify them, report
       swap bench [ARGS]       4 KiB swap-in / swap-out benchmarks (swap bench --help)

Without options: a 64 MiB swap file in the system temp dir (or under ./target
when O_DIRECT or FIEMAP is refused there), every mode, then the file is removed.

options:
  --file PATH     use the swap area at PATH (its label and UUID are printed);
                  if PATH does not exist, create a swap area there and keep it.
                  The demo overwrites the area's slots, never its header.
  --nbd URI       use an NBD export instead (nbd://host[:port]/name or
                  nbd+unix:///name?socket=PATH; libnbd is loaded at run time):
                  a mkswap-format area on it is used, or one is written there.
  --size SIZE     size of a new swap file: bytes, or with a suffix
                  K/M/G/T (= KiB/MiB/GiB/TiB) or KB/MB/GB/TB (powers of 1000);
                  default 64M
  --mode MODE     sync   sync kiocbs through DirectIo::direct_io (preadv2/pwritev2)
                  async  async kiocbs on io_uring (feature `uring`; without it,
                         async kiocbs completed inline by the same O_DIRECT file)
                  both   sync, then async
                  uffd   userfaultfd: a region of this process's memory (anonymous,
                         then a memfd) paged through the swap file by a fault
                         thread while workers read it; needs no privilege
                         (UFFD_USER_MODE_ONLY), skipped loudly where userfaultfd
                         is unavailable
                  all    sync, async, then uffd (default)
  --pages N       pages to swap out and in (default: 12000, at most the area's
                  usable slots; the uffd mode's region: default 8192 pages)
  --seed N        seed of the page contents and the slot orders (decimal or 0x..)
  -h, --help      this text
";

/// Default size of a new swap file.
pub const DEFAULT_SIZE: u64 = 64 << 20;

/// Default page count (capped at the area's usable slots).
pub const DEFAULT_PAGES: usize = 12000;

/// Which I/O paths the demo runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeArg {
    /// Sync kiocbs only.
    Sync,
    /// Async kiocbs only.
    Async,
    /// Sync, then async.
    Both,
    /// The userfaultfd pager only.
    Uffd,
    /// Sync, async, then the userfaultfd pager.
    All,
}

impl ModeArg {
    /// The swap-device modes it runs (`sync`, `async`).
    pub fn device_modes(self) -> (bool, bool) {
        match self {
            ModeArg::Sync => (true, false),
            ModeArg::Async => (false, true),
            ModeArg::Both | ModeArg::All => (true, true),
            ModeArg::Uffd => (false, false),
        }
    }

    /// Whether it runs the userfaultfd mode.
    pub fn uffd(self) -> bool {
        matches!(self, ModeArg::Uffd | ModeArg::All)
    }
}

/// Options of the demo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    /// `--file`.
    pub file: Option<PathBuf>,
    /// `--nbd`: an NBD export (URI) instead of a file.
    pub nbd: Option<String>,
    /// `--size`, if given.
    pub size: Option<u64>,
    /// `--mode`.
    pub mode: ModeArg,
    /// `--pages`.
    pub pages: Option<usize>,
    /// `--seed`.
    pub seed: Option<u64>,
}

impl Default for DemoOptions {
    fn default() -> DemoOptions {
        DemoOptions {
            file: None,
            nbd: None,
            size: None,
            mode: ModeArg::All,
            pages: None,
            seed: None,
        }
    }
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the demo.
    Demo(DemoOptions),
    /// `bench` and the arguments after it.
    Bench(Vec<String>),
    /// Print the help.
    Help,
}

/// A command-line error (exit status 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

fn err<T>(msg: impl Into<String>) -> Result<T, CliError> {
    Err(CliError(msg.into()))
}

/// Parses a size: digits, then an optional suffix `K`/`M`/`G`/`T` (or
/// `KiB`...: powers of 1024) or `KB`/`MB`/`GB`/`TB` (powers of 1000), or `B`;
/// case-insensitive, as util-linux reads sizes.
///
/// # Errors
///
/// Empty, zero, malformed or overflowing sizes.
pub fn parse_size(s: &str) -> Result<u64, CliError> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (num, suffix) = s.split_at(digits);
    if num.is_empty() {
        return err(format!("invalid size {s:?}: expected digits, e.g. 64M"));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| CliError(format!("invalid size {s:?}: too large")))?;
    let mult: u64 = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return err(format!(
                "invalid size {s:?}: unknown suffix {suffix:?} (use K, M, G, T or KB, MB, GB, TB)"
            ));
        }
    };
    match n.checked_mul(mult) {
        Some(0) => err(format!("invalid size {s:?}: must be positive")),
        Some(v) => Ok(v),
        None => err(format!("invalid size {s:?}: too large")),
    }
}

fn parse_u64(opt: &str, s: &str) -> Result<u64, CliError> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|_| CliError(format!("{opt}: invalid number {s:?}")))
}

fn set<T>(slot: &mut Option<T>, opt: &str, v: T) -> Result<(), CliError> {
    if slot.replace(v).is_some() {
        return err(format!("{opt} given twice"));
    }
    Ok(())
}

/// Parses the arguments after the program name.
///
/// # Errors
///
/// Unknown options, missing or invalid values, options given twice.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, CliError> {
    let mut args = args.into_iter();
    let mut o = DemoOptions::default();
    let mut mode = None;
    let mut first = true;
    while let Some(arg) = args.next() {
        if first && arg == "bench" {
            return Ok(Command::Bench(args.collect()));
        }
        first = false;
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |inline: Option<String>| -> Result<String, CliError> {
            match inline.or_else(|| args.next()) {
                Some(v) => Ok(v),
                None => err(format!("{name} needs a value")),
            }
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--file" => {
                let v = value(inline)?;
                if v.is_empty() {
                    return err("--file: empty path");
                }
                set(&mut o.file, "--file", PathBuf::from(v))?;
            }
            "--nbd" => {
                let v = value(inline)?;
                if v.is_empty() {
                    return err("--nbd: empty URI");
                }
                set(&mut o.nbd, "--nbd", v)?;
            }
            "--size" => {
                let v = parse_size(&value(inline)?)?;
                set(&mut o.size, "--size", v)?;
            }
            "--mode" => {
                let v = match value(inline)?.as_str() {
                    "sync" => ModeArg::Sync,
                    "async" => ModeArg::Async,
                    "both" => ModeArg::Both,
                    "uffd" => ModeArg::Uffd,
                    "all" => ModeArg::All,
                    other => {
                        return err(format!(
                            "--mode: unknown mode {other:?} (sync, async, both, uffd or all)"
                        ));
                    }
                };
                set(&mut mode, "--mode", v)?;
            }
            "--pages" => {
                let v = parse_u64("--pages", &value(inline)?)?;
                if v == 0 {
                    return err("--pages: must be at least 1");
                }
                let v = usize::try_from(v).map_err(|_| CliError("--pages: too large".into()))?;
                set(&mut o.pages, "--pages", v)?;
            }
            "--seed" => {
                let v = parse_u64("--seed", &value(inline)?)?;
                set(&mut o.seed, "--seed", v)?;
            }
            "bench" => return err("`bench` must come first: swap bench [ARGS]"),
            other if other.starts_with('-') => return err(format!("unknown option {other}")),
            other => return err(format!("unexpected argument {other:?}")),
        }
    }
    if let Some(m) = mode {
        o.mode = m;
    }
    Ok(Command::Demo(o))
}

// ---------------------------------------------------------------------------
// `swap bench`.

/// The help text of `swap bench`.
pub const BENCH_USAGE: &str = "\
usage: swap bench [OPTIONS]

4 KiB swap-in (random reads) and swap-out (random writes) through the swap
paths of this example (owned page batches through DirectIo::submit), each
case for a fixed time on a preallocated swap file, offsets uniform over its
usable slots (like fio's randread/randwrite with norandommap). Cases:

  swapin-sync-qd1       sync kiocbs, preadv2, one read at a time
  swapin-async-qd1      io_uring, one read in flight
  swapin-async-qd32     io_uring, 32 single-page reads in flight
  swapout-sync-qd1      sync kiocbs, pwritev2, one write at a time
  swapout-async-qd1     io_uring, one write in flight
  swapout-async-qd32    io_uring, 32 single-page writes in flight
  swapout-plugged-sync  32 contiguous pages per kiocb (SwapPlug), sync
  swapout-plugged-async 32 contiguous pages per kiocb (SwapPlug), io_uring,
                        one batch in flight
  swapout-plugged-async-qd8
                        32 contiguous pages per kiocb (SwapPlug), io_uring,
                        8 batches in flight
  swapin-readahead-async-qd8
                        readahead (page-cluster 3): each kiocb reads an
                        aligned cluster of 8 slots, 7 into the swap cache,
                        then taken from there; io_uring, 8 clusters in flight

One line per case: IOPS (kiocbs/s), pages/s, MiB/s, p50/p99 latency per
kiocb, CPU seconds of the benchmarking thread per 100k pages.

options:
  --file PATH     swap area to use (created with --size if missing, and kept);
                  default: a scratch file in the temp dir (or ./target), removed
  --size SIZE     size of a new swap file (K/M/G/T suffixes as for the demo);
                  default 1G
  --time SECS     run time per case, decimal seconds allowed; default 5
  --case NAME     run only this case (repeat, or comma-separate, for several)
  --seed N        seed of the random offsets (default: from the clock)
  --json          print a JSON array, one object per case, on stdout (the
                  human-readable lines go to stderr)
  --prepare       create or open the area, print its geometry, run nothing
  --list          print the case names
  -h, --help      this text
";

/// Default size of the bench's swap file.
pub const BENCH_DEFAULT_SIZE: u64 = 1 << 30;

/// Default run time per case.
pub const BENCH_DEFAULT_TIME: Duration = Duration::from_secs(5);

/// Options of `swap bench`.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchOptions {
    /// `--file`.
    pub file: Option<PathBuf>,
    /// `--size`, if given.
    pub size: Option<u64>,
    /// `--time`.
    pub time: Duration,
    /// `--case` names, in the order given; empty: every case.
    pub cases: Vec<String>,
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--json`.
    pub json: bool,
    /// `--prepare`.
    pub prepare: bool,
}

impl Default for BenchOptions {
    fn default() -> BenchOptions {
        BenchOptions {
            file: None,
            size: None,
            time: BENCH_DEFAULT_TIME,
            cases: Vec::new(),
            seed: None,
            json: false,
            prepare: false,
        }
    }
}

/// What `swap bench` is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum BenchCommand {
    /// Run the cases (or only prepare the area).
    Run(BenchOptions),
    /// Print the case names.
    List,
    /// Print the help.
    Help,
}

/// Parses a duration in decimal seconds (`5`, `0.25`), positive, at most a
/// day.
///
/// # Errors
///
/// Malformed, non-positive or too long durations.
pub fn parse_secs(s: &str) -> Result<Duration, CliError> {
    let ok = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let v: f64 = match s.parse() {
        Ok(v) if ok => v,
        _ => {
            return err(format!(
                "--time: invalid duration {s:?} (seconds, e.g. 5 or 0.5)"
            ));
        }
    };
    if v <= 0.0 || v > 86_400.0 {
        return err(format!("--time: {s} s is out of range (0 to 86400 s)"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// Parses the arguments after `bench`; `known` says whether a case name
/// exists.
///
/// # Errors
///
/// Unknown options or cases, missing or invalid values, options given
/// twice.
pub fn parse_bench<I: IntoIterator<Item = String>>(
    args: I,
    known: impl Fn(&str) -> bool,
) -> Result<BenchCommand, CliError> {
    let mut args = args.into_iter();
    let mut o = BenchOptions::default();
    let mut time = None;
    let mut list = false;
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |inline: Option<String>| -> Result<String, CliError> {
            match inline.or_else(|| args.next()) {
                Some(v) => Ok(v),
                None => err(format!("{name} needs a value")),
            }
        };
        let flag = |inline: &Option<String>| -> Result<(), CliError> {
            match inline {
                Some(_) => err(format!("{name} takes no value")),
                None => Ok(()),
            }
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(BenchCommand::Help),
            "--list" => {
                flag(&inline)?;
                list = true;
            }
            "--json" => {
                flag(&inline)?;
                o.json = true;
            }
            "--prepare" => {
                flag(&inline)?;
                o.prepare = true;
            }
            "--file" => {
                let v = value(inline)?;
                if v.is_empty() {
                    return err("--file: empty path");
                }
                set(&mut o.file, "--file", PathBuf::from(v))?;
            }
            "--size" => {
                let v = parse_size(&value(inline)?)?;
                set(&mut o.size, "--size", v)?;
            }
            "--time" => {
                let v = parse_secs(&value(inline)?)?;
                set(&mut time, "--time", v)?;
            }
            "--seed" => {
                let v = parse_u64("--seed", &value(inline)?)?;
                set(&mut o.seed, "--seed", v)?;
            }
            "--case" => {
                for c in value(inline)?.split(',').map(str::trim) {
                    if !known(c) {
                        return err(format!(
                            "--case: unknown case {c:?} (see swap bench --list)"
                        ));
                    }
                    if !o.cases.iter().any(|x| x == c) {
                        o.cases.push(c.to_owned());
                    }
                }
            }
            other if other.starts_with('-') => return err(format!("unknown bench option {other}")),
            other => return err(format!("unexpected bench argument {other:?}")),
        }
    }
    if list {
        return Ok(BenchCommand::List);
    }
    if let Some(t) = time {
        o.time = t;
    }
    Ok(BenchCommand::Run(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| (*a).to_owned()).collect()
    }

    fn demo(s: &[&str]) -> DemoOptions {
        match parse(args(s)) {
            Ok(Command::Demo(o)) => o,
            other => panic!("{s:?}: {other:?}"),
        }
    }

    fn error(s: &[&str]) -> String {
        match parse(args(s)) {
            Err(e) => e.0,
            other => panic!("{s:?} should fail: {other:?}"),
        }
    }

    #[test]
    fn usage_states_the_defaults() {
        assert!(USAGE.contains(&format!("default: {DEFAULT_PAGES},")));
        let uffd_pages = crate::pager_demo::DEFAULT_PAGES;
        assert!(USAGE.contains(&format!("region: default {uffd_pages} pages")));
        assert_eq!(DEFAULT_SIZE, parse_size("64M").unwrap());
        assert!(USAGE.contains("default 64M"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("2T"), Ok(2 << 40));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("100b"), Ok(100));
        for bad in [
            "",
            "M",
            "0",
            "0M",
            "12Q",
            "1.5G",
            "-1",
            "99999999999999999999",
            "20000000T",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn defaults_and_options() {
        assert_eq!(demo(&[]), DemoOptions::default());
        let o = demo(&[
            "--file",
            "/x/swap",
            "--size=1G",
            "--mode",
            "sync",
            "--pages",
            "100",
            "--seed",
            "0x10",
        ]);
        assert_eq!(o.file, Some(PathBuf::from("/x/swap")));
        assert_eq!(o.size, Some(1 << 30));
        assert_eq!(o.mode, ModeArg::Sync);
        assert_eq!(o.pages, Some(100));
        assert_eq!(o.seed, Some(16));
        assert_eq!(demo(&["--mode=async"]).mode, ModeArg::Async);
        assert_eq!(demo(&["--mode", "both"]).mode, ModeArg::Both);
        assert_eq!(demo(&["--mode", "uffd"]).mode, ModeArg::Uffd);
        assert_eq!(demo(&["--mode", "all"]).mode, ModeArg::All);
        assert_eq!(demo(&[]).mode, ModeArg::All, "every mode by default");
        assert_eq!(ModeArg::All.device_modes(), (true, true));
        assert!(ModeArg::All.uffd() && ModeArg::Uffd.uffd() && !ModeArg::Both.uffd());
        assert_eq!(ModeArg::Uffd.device_modes(), (false, false));
    }

    #[test]
    fn help_and_bench() {
        assert_eq!(parse(args(&["--help"])), Ok(Command::Help));
        assert_eq!(parse(args(&["--pages", "3", "-h"])), Ok(Command::Help));
        assert_eq!(
            parse(args(&["bench", "--x", "1"])),
            Ok(Command::Bench(args(&["--x", "1"])))
        );
        assert!(error(&["--pages", "3", "bench"]).contains("must come first"));
    }

    #[test]
    fn errors() {
        assert!(error(&["--mode", "fast"]).contains("unknown mode"));
        assert!(error(&["--mode"]).contains("needs a value"));
        assert!(error(&["--pages", "0"]).contains("at least 1"));
        assert!(error(&["--pages", "many"]).contains("invalid number"));
        assert!(error(&["--size", "big"]).contains("invalid size"));
        assert!(error(&["--frobnicate"]).contains("unknown option"));
        assert!(error(&["stray"]).contains("unexpected argument"));
        assert!(error(&["--pages", "1", "--pages", "2"]).contains("twice"));
        assert!(error(&["--file="]).contains("empty path"));
    }

    fn bench(s: &[&str]) -> Result<BenchCommand, String> {
        parse_bench(args(s), |c| ["a-case", "b-case"].contains(&c)).map_err(|e| e.0)
    }

    fn bench_opts(s: &[&str]) -> BenchOptions {
        match bench(s) {
            Ok(BenchCommand::Run(o)) => o,
            other => panic!("{s:?}: {other:?}"),
        }
    }

    #[test]
    fn bench_usage_states_the_defaults() {
        assert_eq!(BENCH_DEFAULT_SIZE, parse_size("1G").unwrap());
        assert!(BENCH_USAGE.contains("default 1G"));
        assert_eq!(BENCH_DEFAULT_TIME, Duration::from_secs(5));
        assert!(BENCH_USAGE.contains("default 5\n"));
    }

    #[test]
    fn bench_defaults_and_options() {
        assert_eq!(bench_opts(&[]), BenchOptions::default());
        let o = bench_opts(&[
            "--file",
            "/x/bench.swap",
            "--size=256M",
            "--time",
            "0.25",
            "--case",
            "b-case",
            "--case=a-case,b-case",
            "--seed",
            "0x2a",
            "--json",
            "--prepare",
        ]);
        assert_eq!(o.file, Some(PathBuf::from("/x/bench.swap")));
        assert_eq!(o.size, Some(256 << 20));
        assert_eq!(o.time, Duration::from_millis(250));
        assert_eq!(o.cases, ["b-case", "a-case"], "in order, without repeats");
        assert_eq!(o.seed, Some(42));
        assert!(o.json && o.prepare);
        assert_eq!(bench_opts(&["--time=10"]).time, Duration::from_secs(10));
        assert_eq!(bench(&["--json", "-h"]), Ok(BenchCommand::Help));
        assert_eq!(bench(&["--list", "--json"]), Ok(BenchCommand::List));
        // Through the top-level parser.
        assert_eq!(
            parse(args(&["bench", "--time", "1"])),
            Ok(Command::Bench(args(&["--time", "1"])))
        );
    }

    #[test]
    fn bench_errors() {
        let e = |s: &[&str]| bench(s).unwrap_err();
        assert!(e(&["--case", "c-case"]).contains("unknown case \"c-case\""));
        assert!(e(&["--case", "a-case,"]).contains("unknown case \"\""));
        assert!(e(&["--case"]).contains("needs a value"));
        for bad in ["0", "-1", "abc", "", "1e3", "99999", "1.2.3", "nan", "inf"] {
            assert!(e(&["--time", bad]).contains("--time"), "{bad:?}");
        }
        assert!(e(&["--time", "1", "--time", "2"]).contains("twice"));
        assert!(e(&["--size", "0"]).contains("invalid size"));
        assert!(e(&["--seed", "x"]).contains("invalid number"));
        assert!(e(&["--json=yes"]).contains("takes no value"));
        assert!(e(&["--file="]).contains("empty path"));
        assert!(e(&["--pages", "3"]).contains("unknown bench option"));
        assert!(e(&["stray"]).contains("unexpected bench argument"));
    }
}
