//! Prints markdown tables from the results of `cargo bench --bench copy`:
//! GB/s per direction × kind × layout with the ratio to the per-segment
//! `memcpy` loop and to std's vectored I/O on the same layout, then the
//! advance/revert and `import_iovec` times.
//!
//! ```text
//! cargo bench --bench copy
//! cargo run --release --example copy_report [-- [--median] CRITERION_DIR...]
//! ```
//!
//! With no directory it reads `target/criterion` (or
//! `$CARGO_TARGET_DIR/criterion`). Several directories (copies of
//! `target/criterion` from separate runs) are combined. The figure used is the
//! time per iteration of the fastest criterion sample (`new/sample.json`)
//! over all runs: on a shared machine interference only ever adds time, so
//! the fastest sample is the least disturbed one. `--median` uses the lowest
//! of the runs' median estimates (`new/estimates.json`) instead. GB/s is
//! 10^9 bytes per second of the 64 KiB each iteration copies.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

const TOTAL: f64 = 65536.0;
const LAYOUTS: [(&str, &str, usize); 4] = [
    ("1x64KiB", "1×64 KiB", 65536),
    ("16x4KiB", "16×4 KiB", 4096),
    ("128x512B", "128×512 B", 512),
    ("1024x64B", "1024×64 B", 64),
];
/// Ratios this close below 1 count as "equal within noise" against std: the
/// run-to-run spread of one bench on the shared 2-core VM this was written on.
const NOISE: f64 = 0.02;
const KINDS: [&str; 5] = ["Iovec", "Kvec", "Bvec", "Ubuf", "Discard"];

/// The numbers of a JSON array `"key":[...]`, without a JSON library.
fn json_array(text: &str, key: &str) -> Option<Vec<f64>> {
    let pat = format!("\"{key}\":[");
    let rest = &text[text.find(&pat)? + pat.len()..];
    rest[..rest.find(']')?]
        .split(',')
        .map(|v| v.trim().parse().ok())
        .collect()
}

/// The time per iteration (ns) of the fastest sample in one `sample.json`.
fn best_ns(path: &Path) -> Option<f64> {
    let text = fs::read_to_string(path).ok()?;
    let iters = json_array(&text, "iters")?;
    let times = json_array(&text, "times")?;
    iters
        .iter()
        .zip(&times)
        .map(|(i, t)| t / i)
        .min_by(f64::total_cmp)
}

/// The median point estimate (ns) in one `estimates.json`: the first
/// `"point_estimate":` after `"median":`.
fn median_ns(path: &Path) -> Option<f64> {
    let text = fs::read_to_string(path).ok()?;
    let rest = &text[text.find("\"median\"")?..];
    let key = "\"point_estimate\":";
    let rest = rest[rest.find(key)? + key.len()..].trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

struct Results {
    roots: Vec<PathBuf>,
    median: bool,
}

impl Results {
    /// ns per iteration: the fastest sample over every run directory (or,
    /// with `--median`, the lowest of the runs' medians).
    fn ns(&self, group: &str, func: &str, param: &str) -> Option<f64> {
        self.roots
            .iter()
            .filter_map(|root| {
                let dir = root.join(group).join(func).join(param).join("new");
                if self.median {
                    median_ns(&dir.join("estimates.json"))
                } else {
                    best_ns(&dir.join("sample.json"))
                }
            })
            .min_by(f64::total_cmp)
    }
    fn gbps(&self, group: &str, func: &str, param: &str) -> Option<f64> {
        self.ns(group, func, param).map(|ns| TOTAL / ns)
    }
}

fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.prec$}"))
}

/// The issue's target for the ratio to memcpy at this segment size, if any.
fn memcpy_target(seg: usize) -> Option<f64> {
    match seg {
        s if s >= 4096 => Some(0.95),
        64 => Some(0.8),
        _ => None,
    }
}

fn main() {
    let mut median = false;
    let mut roots = Vec::new();
    for a in env::args().skip(1) {
        if a == "--median" {
            median = true;
        } else {
            roots.push(PathBuf::from(a));
        }
    }
    if roots.is_empty() {
        let target =
            env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
        roots.push(target.join("criterion"));
    }
    for root in &roots {
        if !root.is_dir() {
            eprintln!(
                "{} not found: run `cargo bench --bench copy` first (or pass criterion directories)",
                root.display()
            );
            std::process::exit(1);
        }
    }
    let stat = if median {
        "lowest median over the runs"
    } else {
        "fastest sample over the runs"
    };
    let r = Results { roots, median };
    let mut misses = Vec::new();

    println!("### Copy throughput (GB/s, {stat}; iterator built inside the timed loop)\n");
    println!(
        "Ratios compare the iterator (built in the loop) with the baselines on the same layout: \
         `memcpy` = per-segment `copy_from_slice` loop, `std` = `Read::read_vectored` of a `&[u8]` \
         (copy_to) or `Write::write_vectored` into a `&mut [u8]` (copy_from). Bvec rows use the \
         same baselines over its pages. \"prebuilt\" = iterator built once, rewound with `restore`.\n"
    );
    println!("| direction | kind | layout | GB/s | GB/s prebuilt | × memcpy | × std | targets |");
    println!("|---|---|---|---:|---:|---:|---:|---|");
    for (group, pre) in [
        ("copy_to", "copy_to_prebuilt"),
        ("copy_from", "copy_from_prebuilt"),
    ] {
        for kind in KINDS {
            if group == "copy_from" && kind == "Discard" {
                continue;
            }
            for (param, label, seg) in LAYOUTS {
                let label = if kind == "Bvec" && seg > 4096 {
                    format!("{label} (16 pages: 16×4 KiB)")
                } else {
                    label.to_string()
                };
                let got = r.gbps(group, kind, param);
                if got.is_none() {
                    let why = match kind {
                        "Ubuf" => "one segment",
                        "Discard" => "no segments",
                        _ => "not measured",
                    };
                    println!("| {group} | {kind} | {label} | n/a ({why}) | | | | |");
                    continue;
                }
                let (mc, sd) = if kind == "Bvec" {
                    ("memcpy-pages", "std-pages")
                } else {
                    ("memcpy", "std")
                };
                let x_mc = if kind == "Discard" {
                    None
                } else {
                    Some(got.unwrap() / r.gbps(group, mc, param).unwrap_or(f64::NAN))
                };
                let x_std = if kind == "Discard" {
                    None
                } else {
                    Some(got.unwrap() / r.gbps(group, sd, param).unwrap_or(f64::NAN))
                };
                let mut verdict = Vec::new();
                if let (Some(t), Some(x)) = (memcpy_target(seg), x_mc) {
                    let ok = x >= t;
                    verdict.push(format!("{} ≥{t}×memcpy", if ok { "✓" } else { "✗" }));
                    if !ok {
                        misses.push(format!(
                            "{group} {kind} {label}: {x:.3}× memcpy (target {t})"
                        ));
                    }
                }
                if let Some(x) = x_std {
                    if x >= 1.0 {
                        verdict.push("✓ ≥std".to_string());
                    } else if x >= 1.0 - NOISE {
                        verdict.push("≈std (within noise)".to_string());
                    } else {
                        verdict.push("✗ ≥std".to_string());
                        misses.push(format!("{group} {kind} {label}: {x:.3}× std"));
                    }
                }
                if kind == "Discard" {
                    println!(
                        "| {group} | {kind} | {label} | no copy: {} ns per call | {} ns | n/a | n/a | |",
                        fmt_opt(r.ns(group, kind, param), 1),
                        fmt_opt(r.ns(pre, kind, param), 1),
                    );
                    continue;
                }
                println!(
                    "| {group} | {kind} | {label} | {} | {} | {} | {} | {} |",
                    fmt_opt(got, 2),
                    fmt_opt(r.gbps(pre, kind, param), 2),
                    fmt_opt(x_mc, 2),
                    fmt_opt(x_std, 2),
                    verdict.join(", ")
                );
            }
        }
    }

    println!("\n### Baselines (GB/s, {stat})\n");
    println!("| direction | layout | memcpy | std | memcpy-pages | std-pages |");
    println!("|---|---|---:|---:|---:|---:|");
    for group in ["copy_to", "copy_from"] {
        for (param, label, _) in LAYOUTS {
            println!(
                "| {group} | {label} | {} | {} | {} | {} |",
                fmt_opt(r.gbps(group, "memcpy", param), 2),
                fmt_opt(r.gbps(group, "std", param), 2),
                fmt_opt(r.gbps(group, "memcpy-pages", param), 2),
                fmt_opt(r.gbps(group, "std-pages", param), 2),
            );
        }
    }

    println!("\n### advance(64 KiB) + revert(64 KiB), ns per round trip ({stat})\n");
    println!("| kind | layout | one advance call | one advance per segment |");
    println!("|---|---|---:|---:|");
    for kind in ["Iovec", "Kvec", "Bvec", "Ubuf"] {
        for (param, label, _) in LAYOUTS {
            let a = r.ns("advance_revert", kind, param);
            let s = r.ns("advance_revert_step", kind, param);
            if a.is_none() && s.is_none() {
                continue;
            }
            println!(
                "| {kind} | {label} | {} | {} |",
                fmt_opt(a, 1),
                fmt_opt(s, 1)
            );
        }
    }

    println!("\n### import_iovec, ns per call ({stat}; 64-byte segments)\n");
    println!("| segments | new IovecArray per call | IovecArray reused |");
    println!("|---:|---:|---:|");
    for n in ["1", "8", "9", "1024"] {
        println!(
            "| {n} | {} | {} |",
            fmt_opt(r.ns("import_iovec", "fresh", n), 1),
            fmt_opt(r.ns("import_iovec", "reused", n), 1)
        );
    }

    println!("\n### Missed throughput targets\n");
    if misses.is_empty() {
        println!("None.");
    }
    for m in misses {
        println!("- {m}");
    }
}
