//! The swap demo: swap-out and swap-in of pages through `DirectIo::submit`
//! with owned page batches, over a real swap file.
//!
//! ```sh
//! cargo run --release -p iov-iter-swap                 # every mode
//! cargo run --release -p iov-iter-swap -- --help
//! ```
//!
//! The swap machinery is the package's library (`iov_iter_swap`); around it
//! here, one concern per file: `area.rs` (where the swap file lives),
//! `cli.rs` (arguments), `workload.rs` (the demo workload and its
//! statistics), `pager_demo.rs` (the userfaultfd mode: the process's own
//! memory paged through the swap file), `bench.rs` (the `bench` subcommand:
//! 4 KiB swap-in / swap-out against the clock, for `benches/fio_compare.sh`).

mod area;
mod bench;
mod cli;
#[cfg(feature = "nbd")]
mod nbd_area;
mod pager_demo;
mod workload;

use std::process::ExitCode;
use std::time::Instant;

use cli::{Command, DemoOptions};
use iov_iter_swap::swapio::{IoMode, SwapDevice, SwapError};
use iov_iter_swap::uffd::RegionKind;
use workload::WorkloadConfig;

/// io_uring queue depth, and swap-in reads outstanding.
const DEPTH: u32 = 64;

/// One page in this many is all zeros (the zero map's case).
const ZERO_EVERY: u64 = 32;

fn main() -> ExitCode {
    match cli::parse(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            print!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Ok(Command::Bench(args)) => bench::main(&args),
        Ok(Command::Demo(opts)) => match demo(&opts) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("swap: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("swap: {e}\n(see swap --help)");
            ExitCode::from(2)
        }
    }
}

/// The async mode of this build: io_uring with the `uring` feature, async
/// kiocbs completed inline without it.
fn async_mode() -> IoMode {
    if IoMode::URING_AVAILABLE {
        IoMode::Uring
    } else {
        println!(
            "note: built without the `uring` feature, so the async mode runs async kiocbs on \
             the O_DIRECT file, completed inline through ki_complete; for io_uring: \
             cargo run --release -p iov-iter-swap --features uring"
        );
        IoMode::AsyncInline
    }
}

/// Opens a swap device on the demo's area for a mode.
type Opener = dyn Fn(IoMode) -> Result<SwapDevice, SwapError>;

fn describe(mode: IoMode, on_nbd: bool) -> &'static str {
    if on_nbd {
        return match mode {
            IoMode::Sync => "NBD export (libnbd), sync kiocbs",
            _ => "NBD export (libnbd), async kiocbs in flight",
        };
    }
    match mode {
        IoMode::Sync => "DirectFile (O_DIRECT, preadv2/pwritev2), sync kiocbs",
        IoMode::AsyncInline => "DirectFile (O_DIRECT), async kiocbs completed inline",
        IoMode::Uring => "io_uring on the O_DIRECT file, async kiocbs",
    }
}

/// Opens the device for `mode`; io_uring refused by the kernel (ENOSYS,
/// EPERM) falls back to inline async completion, with a message.
fn open_device(area: &area::Area, mode: IoMode) -> Result<SwapDevice, SwapError> {
    match SwapDevice::open(&area.swap, mode, DEPTH) {
        Err(SwapError::Backend(e)) if mode == IoMode::Uring => {
            println!("note: io_uring is not available here ({e}); async kiocbs run inline instead");
            SwapDevice::open(&area.swap, IoMode::AsyncInline, DEPTH)
        }
        r => r,
    }
}

/// Runs the demo; `Ok(false)` when a page did not come back intact.
fn demo(opts: &DemoOptions) -> Result<bool, String> {
    let t0 = Instant::now();
    if opts.file.as_ref().is_some_and(|p| p.exists()) && opts.size.is_some() {
        println!(
            "note: --size ignored: {} exists",
            opts.file.as_ref().unwrap().display()
        );
    }
    // Where the area is, and how a swap device on it is opened per mode.
    let (opener, usable): (Box<Opener>, u64) = match &opts.nbd {
        #[cfg(not(feature = "nbd"))]
        Some(_) => return Err("--nbd: built without the `nbd` feature".into()),
        #[cfg(feature = "nbd")]
        Some(uri) => {
            let a = nbd_area::open(uri)?;
            let info = a.dev.info();
            println!(
                "swap area on {uri} ({}): {:.1} MiB export, {} connection(s), label \"{}\", {} slots \
                 of 4 KiB ({} usable)",
                if a.created {
                    "header written"
                } else {
                    "existing header"
                },
                info.size as f64 / (1 << 20) as f64,
                a.dev.connections(),
                a.header.label,
                a.max_pages(),
                a.max_pages().saturating_sub(1),
            );
            let (dev, max) = (std::sync::Arc::clone(&a.dev), a.max_pages());
            let open = move |mode: IoMode| {
                // The export keeps async kiocbs in flight: the queued mode.
                let mode = if mode == IoMode::Sync {
                    IoMode::Sync
                } else {
                    IoMode::Uring
                };
                let target: std::sync::Arc<dyn iov_iter::dio::DirectIo> = dev.clone();
                SwapDevice::new(target, mode, max)
            };
            (Box::new(open), max.saturating_sub(1))
        }
        None => {
            let size = opts.size.unwrap_or(cli::DEFAULT_SIZE);
            let area = area::prepare(opts.file.as_deref(), size, &mut |n| println!("note: {n}"))?;
            let sf = &area.swap;
            let label = if sf.label().is_empty() {
                "(none)".to_owned()
            } else {
                format!("\"{}\"", sf.label())
            };
            println!(
                "swap area {} ({}): {:.1} MiB, label {label}, UUID {}, {} slots of 4 KiB ({} usable)",
                sf.path.display(),
                if area.created { "created" } else { "existing" },
                sf.activation.file_size as f64 / (1 << 20) as f64,
                sf.uuid(),
                sf.max_pages(),
                sf.usable_pages(),
            );
            let usable = sf.usable_pages();
            // The scratch area goes when the opener does.
            (Box::new(move |mode| open_device(&area, mode)), usable)
        }
    };
    let on_nbd = opts.nbd.is_some();
    let usable = usize::try_from(usable).unwrap_or(usize::MAX);
    let pages = match opts.pages {
        Some(n) if n > usable => {
            return Err(format!(
                "--pages {n}: the area has only {usable} usable slots (use a larger --size)"
            ));
        }
        Some(n) => n,
        None => cli::DEFAULT_PAGES.min(usable),
    };
    let mut modes = Vec::new();
    let (sync, asynchronous) = opts.mode.device_modes();
    if sync {
        modes.push(IoMode::Sync);
    }
    if asynchronous {
        modes.push(async_mode());
    }
    let cfg = WorkloadConfig {
        pages,
        seed: opts.seed.unwrap_or(WorkloadConfig::default().seed),
        window: DEPTH as usize,
        zero_every: ZERO_EVERY,
        ..WorkloadConfig::default()
    };
    if !modes.is_empty() {
        println!(
            "workload: {pages} pages ({:.1} MiB), seed {:#x}: half in contiguous runs of 1-{} slots, \
         half on random slots, one in {ZERO_EVERY} all zeros, swapped out through a plug (<= {} pages per kiocb), dropped, \
         swapped in (runs in slot order, runs and single pages shuffled; readahead up to 2^page-cluster = 8 pages, adaptive) ({} reads outstanding), every byte verified",
            (pages * 4096) as f64 / (1 << 20) as f64,
            cfg.seed,
            cfg.max_run,
            iov_iter_swap::swapio::SWAP_CLUSTER_MAX,
            cfg.window,
        );
    }
    let mut all_ok = true;
    let mut verdicts = Vec::new();
    for mode in modes {
        let dev = opener(mode).map_err(|e| e.to_string())?;
        let a = dev.dio_align();
        println!(
            "[{}] {} (DIO alignment: memory {}, offset {})",
            dev.mode(),
            describe(dev.mode(), on_nbd),
            a.mem,
            a.offset
        );
        let report = workload::run(&dev, &cfg).map_err(|e| format!("{}: {e}", dev.mode()))?;
        println!("{report}");
        let folio_ok = folio_round_trip(&dev).map_err(|e| format!("{}: folio: {e}", dev.mode()))?;
        all_ok &= folio_ok;
        verdicts.push(format!(
            "{} {}",
            report.mode,
            if report.ok() { "OK" } else { "FAILED" }
        ));
        all_ok &= report.ok();
    }
    if opts.mode.uffd() {
        let pages = opts.pages.unwrap_or(pager_demo::DEFAULT_PAGES.min(usable));
        all_ok &= uffd_modes(&*opener, on_nbd, pages, cfg.seed, &mut verdicts)?;
    }
    drop(opener);
    println!(
        "result: {} ({}) in {:.2} s",
        if all_ok {
            "every page came back intact"
        } else {
            "FAILED"
        },
        verdicts.join(", "),
        t0.elapsed().as_secs_f64()
    );
    Ok(all_ok)
}

/// A 64 KiB folio out and back in: one segment where mainline allows
/// large swap entries (a block device), split into pages where it does not
/// (this swap file), saying which. `Ok(false)` when a byte came back wrong.
fn folio_round_trip(dev: &SwapDevice) -> Result<bool, SwapError> {
    use iov_iter::{Folio, FolioRef, PageFlags};
    use iov_iter_swap::content::{check_page, fill_page};
    use iov_iter_swap::swapio::{FolioIn, FolioOut};
    let mut f = Folio::new(4).map_err(SwapError::Backend)?;
    for (k, chunk) in f.as_mut_bytes().chunks_exact_mut(4096).enumerate() {
        fill_page(chunk.try_into().expect("a page"), k as u64, 0xf0110);
    }
    f.set_flags(PageFlags::UPTODATE | PageFlags::DIRTY);
    let f = FolioRef::new(f);
    let (how, ok) = match dev.swap_writefolio(f.clone(), None)? {
        FolioOut::Whole(range) => {
            dev.drain()?;
            let back = match dev.swap_readfolio(range.start(), 4)? {
                FolioIn::Reading(h) => h.wait()?,
                other => {
                    return Err(SwapError::Unsupported(
                        if matches!(other, FolioIn::Zero(_)) {
                            "a data folio read back as zeros"
                        } else {
                            "a folio written whole did not read back whole"
                        },
                    ));
                }
            };
            for slot in range.iter() {
                dev.swap_free(slot)?;
            }
            (
                "one segment out and in (large swap entries)".to_owned(),
                back.as_bytes() == f.as_bytes(),
            )
        }
        FolioOut::Split { why, pages } => {
            dev.drain()?;
            let mut ok = true;
            for (k, (slot, _)) in pages.iter().enumerate() {
                let p = dev.read_page(*slot)?;
                ok &= check_page(p.as_bytes(), k as u64, 0xf0110).is_ok();
                dev.put_page(p);
                dev.swap_free(*slot)?;
            }
            (format!("split into {} pages ({why})", pages.len()), ok)
        }
        FolioOut::Zero(_) | FolioOut::Clean => ("not written".to_owned(), false),
    };
    println!(
        "  folio     64 KiB folio: {how}; {}",
        if ok { "verify OK" } else { "verify FAILED" }
    );
    Ok(ok)
}

/// The userfaultfd mode: anonymous memory (UFFDIO_COPY), then a memfd
/// (zero copy: UFFDIO_CONTINUE), each on a device of the async mode.
/// `Ok(false)` when a page did not come back intact; userfaultfd being
/// unavailable is reported loudly and is not a failure.
fn uffd_modes(
    opener: &Opener,
    on_nbd: bool,
    pages: usize,
    seed: u64,
    verdicts: &mut Vec<String>,
) -> Result<bool, String> {
    let mut all_ok = true;
    for kind in [RegionKind::Anon, RegionKind::Memfd] {
        let dev = opener(async_mode()).map_err(|e| e.to_string())?;
        let how = match kind {
            RegionKind::Anon => {
                "anonymous memory: MADV_DONTNEED out, MISSING faults, swap-in into a pool page, \
                 UFFDIO_COPY"
            }
            RegionKind::Memfd => {
                "memfd mapped twice: PUNCH_HOLE out, MISSING faults (MINOR while a read is on \
                 its way), O_DIRECT read into the page cache through the alias, UFFDIO_CONTINUE \
                 (zero copy)"
            }
        };
        println!(
            "[uffd-{kind}] {pages} pages ({:.1} MiB) of this process's {how}; {} on {}; 2 \
             workers reading at random and in runs, a reclaim thread keeping 1/4 resident",
            (pages * 4096) as f64 / (1 << 20) as f64,
            dev.mode(),
            describe(dev.mode(), on_nbd),
        );
        let cfg = pager_demo::UffdConfig {
            kind,
            pages,
            seed,
            zero_every: ZERO_EVERY,
            touches: 2 * pages,
        };
        match pager_demo::run(dev, &cfg).map_err(|e| format!("uffd-{kind}: {e}"))? {
            pager_demo::Outcome::Ran(report) => {
                println!("{report}");
                verdicts.push(format!(
                    "{} {}",
                    report.name(),
                    if report.ok() { "OK" } else { "FAILED" }
                ));
                all_ok &= report.ok();
            }
            pager_demo::Outcome::Skipped(why) => {
                println!("***** SKIPPED uffd mode: {why} *****");
                verdicts.push("uffd SKIPPED".to_owned());
                break;
            }
        }
    }
    Ok(all_ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ModeArg;
    use iov_iter_swap::testutil::TestDir;

    /// The demo itself, both modes, on a swap file it creates and keeps
    /// (`--file`), then again on the existing area.
    #[test]
    #[cfg_attr(miri, ignore = "O_DIRECT file, io_uring")]
    fn demo_runs_end_to_end_on_a_real_file() {
        let dir = TestDir::new("demo");
        if let Err(e) = area::direct_io_works(dir.path()) {
            eprintln!("\n***** SKIPPED demo end to end: O_DIRECT refused: {e} *****\n");
            return;
        }
        let path = dir.join("demo.swap");
        let opts = DemoOptions {
            file: Some(path.clone()),
            size: Some(2 << 20),
            pages: Some(300),
            ..DemoOptions::default()
        };
        assert_eq!(demo(&opts), Ok(true));
        assert!(path.exists(), "--file areas are kept");
        let again = DemoOptions {
            size: None,
            mode: ModeArg::Async,
            seed: Some(99),
            ..opts.clone()
        };
        assert_eq!(demo(&again), Ok(true));
        let too_many = DemoOptions {
            pages: Some(512),
            ..again
        };
        let e = demo(&too_many).unwrap_err();
        assert!(e.contains("only 511 usable slots"), "{e}");
    }

    /// The demo over NBD: a real qemu-nbd on a written image; the demo
    /// writes the swap header, then every mode verifies every page.
    #[cfg(feature = "nbd")]
    #[test]
    #[cfg_attr(miri, ignore = "qemu-nbd, sockets, libnbd")]
    fn demo_runs_over_nbd_against_qemu_nbd() {
        let dir = TestDir::new("demo-nbd");
        let image = dir.join("export.img");
        std::fs::write(&image, vec![0x5a_u8; 4 << 20]).unwrap();
        let Some(server) = iov_iter_swap::testutil::NbdServer::start(&image) else {
            return;
        };
        let opts = DemoOptions {
            nbd: Some(server.uri.clone()),
            pages: Some(300),
            ..DemoOptions::default()
        };
        assert_eq!(demo(&opts), Ok(true));
        // The header the demo wrote is mkswap format, on the server's file.
        let img = std::fs::read(&image).unwrap();
        assert_eq!(&img[4096 - 10..4096], b"SWAPSPACE2");
        // Again, on the existing header.
        assert_eq!(
            demo(&DemoOptions {
                seed: Some(7),
                ..opts
            }),
            Ok(true)
        );
    }

    #[test]
    fn bench_arguments_are_checked_before_anything_runs() {
        let args = |s: &[&str]| s.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
        assert_eq!(bench::main(&args(&["--frobnicate"])), ExitCode::from(2));
        assert_eq!(bench::main(&args(&["--case", "nope"])), ExitCode::from(2));
        assert_eq!(bench::main(&args(&["--help"])), ExitCode::SUCCESS);
        assert_eq!(bench::main(&args(&["--list"])), ExitCode::SUCCESS);
    }
}
