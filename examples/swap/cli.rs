//! Command-line parsing for the swap example (hand-written, no
//! dependencies).

use std::fmt;
use std::path::PathBuf;

/// The help text.
pub const USAGE: &str = "\
usage: swap [OPTIONS]          swap pages out and back in, verify them, report
       swap bench [ARGS]       benchmarks (not implemented yet)

Without options: a 64 MiB swap file in the system temp dir (or under ./target
when O_DIRECT is refused there), both modes, then the file is removed.

options:
  --file PATH     use the swap area at PATH (its label and UUID are printed);
                  if PATH does not exist, create a swap area there and keep it.
                  The demo overwrites the area's slots, never its header.
  --size SIZE     size of a new swap file: bytes, or with a suffix
                  K/M/G/T (= KiB/MiB/GiB/TiB) or KB/MB/GB/TB (powers of 1000);
                  default 64M
  --mode MODE     sync   sync kiocbs through DirectIo::direct_io (preadv2/pwritev2)
                  async  async kiocbs on io_uring (feature `uring`; without it,
                         async kiocbs completed inline by the same O_DIRECT file)
                  both   sync, then async (default)
  --pages N       pages to swap out and in (default: 12000, at most the area's
                  usable slots)
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
}

/// Options of the demo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    /// `--file`.
    pub file: Option<PathBuf>,
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
            size: None,
            mode: ModeArg::Both,
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
            "--size" => {
                let v = parse_size(&value(inline)?)?;
                set(&mut o.size, "--size", v)?;
            }
            "--mode" => {
                let v = match value(inline)?.as_str() {
                    "sync" => ModeArg::Sync,
                    "async" => ModeArg::Async,
                    "both" => ModeArg::Both,
                    other => {
                        return err(format!(
                            "--mode: unknown mode {other:?} (sync, async or both)"
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
}
