//! `kernel_swap`: the kernel's own swap on a swap file, as the anchor the
//! demo's userfaultfd pager is measured against (BENCHMARKS.md, "Swap
//! that really swaps").
//!
//! ```sh
//! cargo run --release -p iov-iter-swap --bin kernel_swap -- [--file PATH] [--pages N] [--json]
//! ```
//!
//! As root (`swapon(2)` needs `CAP_SYS_ADMIN`): activates the swap file
//! (created, mkswap format, every byte written, if it does not exist),
//! then for each access pattern (`random`: every page once in random
//! order; `runs`: runs of 16 consecutive pages, the runs shuffled; `seq`:
//! in order):
//!
//! 1. fills an anonymous region of N pages with checksummed pages;
//! 2. swap-out, timed: `madvise(MADV_PAGEOUT)` over the region, until
//!    writeback has ended (`nr_writeback` back where it was) and `pswpout`
//!    has grown;
//! 3. written pages stay in the swap cache (a touch would be a minor
//!    fault), so every page is touched once and paged out again (clean:
//!    dropped without I/O);
//! 4. swap-in, timed: every page touched in the pattern's order and
//!    verified byte for byte (major faults; readahead by `vm.page-cluster`);
//!    `pswpin` and the major faults counted.
//!
//! The area is swapped off at the end, in a guard that also runs on a
//! panic. Nothing else may use the file meanwhile.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use iov_iter::PAGE_SIZE;
use iov_iter_swap::activate::create_swap_file;
use iov_iter_swap::content::{check_page, fill_page, shuffle};
use iov_iter_swap::header::{Label, Uuid};
use iov_iter_swap::kernel::{SwapOn, page_cluster, vmstat_swap};
use iov_iter_swap::swapmap::SlotRng;
use rustix::mm::{Advice, MapFlags, ProtFlags};

const USAGE: &str = "\
usage: kernel_swap [--file PATH] [--pages N] [--seed N] [--json]

The kernel's own swap on a swap file (as root): swap-out with MADV_PAGEOUT and
swap-in by major faults, in random order, in runs of 16 and sequentially.
Without --file: target/kernel-swap/area.swap (created, kept). --pages: region
size in 4 KiB pages (default 32768).
";

/// Pages per run in the `runs` pattern.
const RUN: usize = 16;

struct Options {
    file: PathBuf,
    pages: usize,
    seed: u64,
    json: bool,
}

fn parse(args: &[String]) -> Result<Option<Options>, String> {
    let mut o = Options {
        file: PathBuf::from(
            std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into()),
        )
        .join("kernel-swap")
        .join("area.swap"),
        pages: 32768,
        seed: 0x5eed_c0de,
        json: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--help" | "-h" => return Ok(None),
            "--file" => o.file = PathBuf::from(val("--file")?),
            "--pages" => {
                o.pages = val("--pages")?
                    .parse()
                    .map_err(|e| format!("--pages: {e}"))?;
                if o.pages == 0 {
                    return Err("--pages: at least 1".into());
                }
            }
            "--seed" => o.seed = val("--seed")?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--json" => o.json = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(o))
}

/// A global counter of `/proc/vmstat`.
fn vmstat(key: &str) -> u64 {
    std::fs::read_to_string("/proc/vmstat")
        .ok()
        .and_then(|vm| {
            vm.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// This process's major faults (`/proc/self/stat`, field 12).
fn major_faults() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            rest.split_whitespace().nth(9)?.parse().ok()
        })
        .unwrap_or(0)
}

/// An anonymous private mapping, unmapped on drop.
struct Region {
    ptr: *mut u8,
    pages: usize,
}

impl Region {
    fn new(pages: usize) -> Result<Region, String> {
        // SAFETY: a fresh anonymous mapping: no existing memory is
        // affected.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                pages * PAGE_SIZE,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }
        .map_err(|e| format!("mmap: {e}"))?;
        Ok(Region {
            ptr: ptr.cast(),
            pages,
        })
    }

    fn page(&mut self, i: usize) -> &mut [u8; PAGE_SIZE] {
        assert!(i < self.pages);
        // SAFETY: page `i` lies inside the mapping, which lives as long as
        // `self`; `&mut self` makes the borrow unique.
        unsafe { &mut *self.ptr.add(i * PAGE_SIZE).cast::<[u8; PAGE_SIZE]>() }
    }

    /// Touches page `i` (a read of its first byte, which faults it in).
    fn touch(&self, i: usize) -> u8 {
        // SAFETY: inside the mapping; a volatile read so the fault happens.
        unsafe { self.ptr.add(i * PAGE_SIZE).read_volatile() }
    }

    fn pageout(&self) -> Result<(), String> {
        // SAFETY: the range is this mapping; MADV_PAGEOUT only reclaims
        // its pages (their contents stay, in swap).
        unsafe {
            rustix::mm::madvise(
                self.ptr.cast(),
                self.pages * PAGE_SIZE,
                Advice::LinuxPageOut,
            )
        }
        .map_err(|e| format!("madvise(MADV_PAGEOUT): {e}"))
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        let _ = unsafe { rustix::mm::munmap(self.ptr.cast(), self.pages * PAGE_SIZE) };
    }
}

/// This process's resident pages (`/proc/self/statm`, field 2).
fn resident() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Waits until writeback is back to `base` pages (or 10 s pass).
fn wait_writeback(base: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while vmstat("nr_writeback") > base && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(200));
    }
}

struct Measured {
    pattern: &'static str,
    out_secs: f64,
    pswpout: u64,
    in_secs: f64,
    pswpin: u64,
    majflt: u64,
    bad: u64,
    /// Pages still resident when the swap-in started.
    resident_left: u64,
    /// MADV_PAGEOUT passes it took to get there.
    passes: u32,
}

fn order(pattern: &str, n: usize, rng: &mut SlotRng) -> Vec<usize> {
    match pattern {
        "random" => {
            let mut v: Vec<usize> = (0..n).collect();
            shuffle(&mut v, rng);
            v
        }
        "runs" => {
            let mut runs: Vec<Vec<usize>> = (0..n)
                .step_by(RUN)
                .map(|s| (s..(s + RUN).min(n)).collect())
                .collect();
            shuffle(&mut runs, rng);
            runs.into_iter().flatten().collect()
        }
        _ => (0..n).collect(),
    }
}

fn measure(pattern: &'static str, o: &Options, rng: &mut SlotRng) -> Result<Measured, String> {
    let base = resident();
    let mut r = Region::new(o.pages)?;
    for i in 0..o.pages {
        fill_page(r.page(i), i as u64, o.seed);
    }
    // 2. Swap-out.
    let wb = vmstat("nr_writeback");
    let (_, out0) = vmstat_swap().ok_or("no /proc/vmstat")?;
    let t = Instant::now();
    r.pageout()?;
    wait_writeback(wb);
    let out_secs = t.elapsed().as_secs_f64();
    let (_, out1) = vmstat_swap().ok_or("no /proc/vmstat")?;
    // 3. Out of the swap cache: touched, then paged out again (clean, so
    // no I/O) until the region is no longer resident (a page the first
    // pass found under writeback is left for the next).
    for i in 0..o.pages {
        r.touch(i);
    }
    let mut passes = 0;
    while passes < 8 && resident() > base + (o.pages as u64) / 100 {
        r.pageout()?;
        wait_writeback(wb);
        passes += 1;
    }
    let left = resident().saturating_sub(base);
    // 4. Swap-in.
    let seq = order(pattern, o.pages, rng);
    let (in0, _) = vmstat_swap().ok_or("no /proc/vmstat")?;
    let maj0 = major_faults();
    let t = Instant::now();
    let mut bad = 0u64;
    for &i in &seq {
        r.touch(i);
        if check_page(r.page(i), i as u64, o.seed).is_err() {
            bad += 1;
        }
    }
    let in_secs = t.elapsed().as_secs_f64();
    let (in1, _) = vmstat_swap().ok_or("no /proc/vmstat")?;
    Ok(Measured {
        pattern,
        out_secs,
        pswpout: out1 - out0,
        in_secs,
        pswpin: in1 - in0,
        majflt: major_faults() - maj0,
        bad,
        resident_left: left,
        passes,
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = match parse(&args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("kernel_swap: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if !o.file.exists() {
        if let Some(dir) = o.file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let size = (o.pages as u64 + 1024) * PAGE_SIZE as u64;
        if let Err(e) = create_swap_file(
            &o.file,
            size,
            &Label::new("kernel-swap").unwrap(),
            Uuid::NIL,
        ) {
            eprintln!("kernel_swap: creating {}: {e}", o.file.display());
            return ExitCode::FAILURE;
        }
    }
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    if swaps.lines().count() > 1 {
        eprintln!("note: other swap areas are active; the kernel may use them too:\n{swaps}");
    }
    let area = match SwapOn::new(&o.file) {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "\n***** SKIPPED kernel_swap: swapon {}: {e} (needs root) *****\n",
                o.file.display()
            );
            return ExitCode::from(if e.raw_os_error() == Some(1) { 0 } else { 1 });
        }
    };
    eprintln!(
        "kernel swap on {} ({} pages, vm.page-cluster {})",
        o.file.display(),
        o.pages,
        page_cluster().map_or("?".to_owned(), |n| n.to_string())
    );
    let mut rng = SlotRng::new(o.seed);
    let mut results = Vec::new();
    let mut failed = false;
    for pattern in ["random", "runs", "seq"] {
        match measure(pattern, &o, &mut rng) {
            Ok(m) => {
                let n = o.pages as f64;
                eprintln!(
                    "kernel {:<6} swap-out {:>7.0} pages/s (pswpout +{}, {:.3} s)   \
                     swap-in {:>7.0} pages/s (pswpin +{}, {} major faults, {:.3} s; {} pages \
                     resident before, {} pageout passes)   verify {}",
                    m.pattern,
                    m.pswpout as f64 / m.out_secs,
                    m.pswpout,
                    m.out_secs,
                    n / m.in_secs,
                    m.pswpin,
                    m.majflt,
                    m.in_secs,
                    m.resident_left,
                    m.passes,
                    if m.bad == 0 {
                        "OK".to_owned()
                    } else {
                        format!("FAILED ({} bad pages)", m.bad)
                    }
                );
                failed |= m.bad > 0 || m.pswpout == 0;
                results.push(m);
            }
            Err(e) => {
                eprintln!("kernel_swap: {pattern}: {e}");
                failed = true;
            }
        }
    }
    if let Err(e) = area.swapoff() {
        eprintln!("kernel_swap: swapoff: {e}");
        failed = true;
    }
    if o.json {
        let items: Vec<String> = results
            .iter()
            .map(|m| {
                format!(
                    "{{\"side\":\"kernel\",\"pattern\":\"{}\",\"pages\":{},\"out_pages_per_s\":{:.0},\
                     \"pswpout\":{},\"in_pages_per_s\":{:.0},\"pswpin\":{},\"major_faults\":{},\"bad\":{}}}",
                    m.pattern,
                    o.pages,
                    m.pswpout as f64 / m.out_secs,
                    m.pswpout,
                    o.pages as f64 / m.in_secs,
                    m.pswpin,
                    m.majflt,
                    m.bad
                )
            })
            .collect();
        println!("[{}]", items.join(","));
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
