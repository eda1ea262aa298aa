//! `paging_bench`: the kernel's own swap and the demo's userfaultfd pager
//! (`iov_iter_swap::uffd::Pager`) paging the same amount of memory through
//! the same swap file, with the same access patterns, in one run
//! (BENCHMARKS.md, "Swap that really swaps").
//!
//! ```sh
//! cargo run --release -p iov-iter-swap --bin paging_bench -- [--file PATH] [--pages N] [--threads T] [--json]
//! ```
//!
//! Patterns: `random` (every page once in random order), `runs` (runs of
//! 16 consecutive pages, the runs shuffled), `seq` (in order). The order is
//! dealt out to T touching threads (default 4) the same way on both sides.
//!
//! **Kernel** (as root; skipped loudly otherwise): the swap file is
//! activated (`swapon(2)`, swapped off in a guard that also runs on a
//! panic), and per pattern:
//!
//! 1. an anonymous region of N pages is filled with checksummed pages;
//! 2. swap-out, timed: `madvise(MADV_PAGEOUT)` over the region, until
//!    writeback has ended (`nr_writeback` back where it was); `pswpout`;
//! 3. written pages stay in the swap cache (a touch would be a minor
//!    fault), so every page is touched once and paged out again (clean:
//!    dropped without I/O) until neither the region nor the swap cache
//!    (`nr_swapcached`) holds more than 1 % of it;
//! 4. swap-in, timed: the threads touch and verify every page in the
//!    pattern's order (major faults; readahead by `vm.page-cluster`);
//!    `pswpin` and the major faults counted. `pswpin` must have grown by
//!    the page count (less 1 %), or the pattern fails: a swap-in served
//!    from memory is not a swap-in.
//!
//! The swap file is three times the region (recreated when smaller): while
//! swap is more than half full the kernel frees the slot of a page it
//! swaps in, so step 3 would write half the region again and leave it in
//! the swap cache, under writeback, where the timed swap-in finds it.
//!
//! **Pager** (any user): after `swapoff`, the same file as a `SwapDevice`
//! on io_uring, and per pattern and region kind (anonymous memory served
//! with `UFFDIO_COPY`; a memfd served zero-copy with O_DIRECT reads into
//! its page cache and `UFFDIO_CONTINUE`): the region filled; swap-out,
//! timed (`Pager::reclaim` of every page, until every write has
//! completed); swap-in, timed (the threads read and verify every page in
//! the pattern's order, each fault served by the pager's fault thread).
//!
//! The file is created if missing (mkswap format, every byte written).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use iov_iter::PAGE_SIZE;
use iov_iter_swap::activate::{create_swap_file, open_swap_file};
use iov_iter_swap::content::{check_page, fill_page, shuffle};
use iov_iter_swap::header::{Label, Uuid};
use iov_iter_swap::kernel::{SwapOn, page_cluster, vmstat, vmstat_swap};
use iov_iter_swap::swapio::{IoMode, SwapDevice};
use iov_iter_swap::swapmap::SlotRng;
use iov_iter_swap::uffd::{Pager, PagerConfig, RegionKind};
use rustix::mm::{Advice, MapFlags, ProtFlags};

const USAGE: &str = "\
usage: paging_bench [--file PATH] [--pages N] [--threads T] [--seed N] [--json]
                    [--pattern random|runs|seq]... [--side kernel|anon|memfd]...

The kernel's own swap (as root) and the crate's userfaultfd pager on the same
swap file: swap-out, then swap-in by touching every page in random order, in
runs of 16 and sequentially, with T threads (default 4). Without --file:
target/paging-bench/area.swap (created, kept). --pages: the region, in 4 KiB
pages (default 32768). --pattern and --side (each may be given more than
once) pick what runs; all by default.
";

/// Pages per run in the `runs` pattern.
const RUN: usize = 16;

/// The pager device's io_uring depth.
const DEPTH: u32 = 64;

const PATTERNS: [&str; 3] = ["random", "runs", "seq"];

const SIDES: [&str; 3] = ["kernel", "anon", "memfd"];

struct Options {
    file: PathBuf,
    pages: usize,
    threads: usize,
    seed: u64,
    json: bool,
    /// Patterns to run (all by default).
    patterns: Vec<&'static str>,
    /// Sides to run: `kernel`, `anon`, `memfd` (all by default).
    sides: Vec<String>,
}

fn parse(args: &[String]) -> Result<Option<Options>, String> {
    let target = std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into());
    let mut o = Options {
        file: PathBuf::from(target).join("paging-bench").join("area.swap"),
        pages: 32768,
        threads: 4,
        seed: 0x5eed_c0de,
        json: false,
        patterns: Vec::new(),
        sides: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let mut count = |name: &str| -> Result<usize, String> {
            match val(name)?.parse() {
                Ok(0) => Err(format!("{name}: at least 1")),
                Ok(n) => Ok(n),
                Err(e) => Err(format!("{name}: {e}")),
            }
        };
        match a.as_str() {
            "--help" | "-h" => return Ok(None),
            "--file" => o.file = PathBuf::from(val("--file")?),
            "--pages" => o.pages = count("--pages")?,
            "--threads" => o.threads = count("--threads")?,
            "--seed" => o.seed = val("--seed")?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--json" => o.json = true,
            "--pattern" => {
                let v = val("--pattern")?;
                let p = PATTERNS
                    .iter()
                    .find(|p| **p == v)
                    .ok_or_else(|| format!("--pattern: one of {PATTERNS:?}, not {v:?}"))?;
                o.patterns.push(p);
            }
            "--side" => {
                let v = val("--side")?;
                if !SIDES.contains(&v.as_str()) {
                    return Err(format!("--side: one of {SIDES:?}, not {v:?}"));
                }
                o.sides.push(v);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.patterns.is_empty() {
        o.patterns = PATTERNS.to_vec();
    }
    if o.sides.is_empty() {
        o.sides = SIDES.iter().map(|s| s.to_string()).collect();
    }
    Ok(Some(o))
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
    while vmstat("nr_writeback").unwrap_or(0) > base && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// An anonymous private mapping the kernel swaps, unmapped on drop.
struct Region {
    ptr: *mut u8,
    pages: usize,
}

// SAFETY: the mapping is plain memory; threads only read it through
// `read` (no Rust reference to it outlives a call).
unsafe impl Sync for Region {}

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

    fn fill(&mut self, seed: u64) {
        for i in 0..self.pages {
            // SAFETY: page `i` lies inside the mapping; `&mut self` makes
            // this the only access.
            let page = unsafe { &mut *self.ptr.add(i * PAGE_SIZE).cast::<[u8; PAGE_SIZE]>() };
            fill_page(page, i as u64, seed);
        }
    }

    /// Copies page `i` out (a read that faults it in).
    fn read(&self, i: usize, out: &mut [u8; PAGE_SIZE]) {
        assert!(i < self.pages);
        // SAFETY: inside the mapping; a raw copy, nobody writes the region
        // while it is read.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr.add(i * PAGE_SIZE), out.as_mut_ptr(), PAGE_SIZE)
        };
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

/// The touching order of a pattern.
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

/// Touches every page of `seq`, dealt out to `threads` threads in runs of
/// [`RUN`] entries (so a run stays on one thread), with `read` copying a
/// page out; returns the time and the pages that did not verify.
fn touch_all(
    seq: &[usize],
    threads: usize,
    seed: u64,
    read: &(dyn Fn(usize, &mut [u8; PAGE_SIZE]) + Sync),
) -> (f64, u64) {
    let t = Instant::now();
    let bad: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                s.spawn(move || {
                    let mut buf = Box::new([0u8; PAGE_SIZE]);
                    let mut bad = 0;
                    for chunk in seq.chunks(RUN).skip(k).step_by(threads) {
                        for &i in chunk {
                            read(i, &mut buf);
                            if check_page(&buf, i as u64, seed).is_err() {
                                bad += 1;
                            }
                        }
                    }
                    bad
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("toucher"))
            .sum()
    });
    (t.elapsed().as_secs_f64(), bad)
}

/// One side's figures for one pattern.
struct Measured {
    side: String,
    pattern: &'static str,
    out_secs: f64,
    /// Pages written (kernel: `pswpout`; pager: the device's).
    written: u64,
    in_secs: f64,
    /// Pages read (kernel: `pswpin`; pager: the device's).
    read: u64,
    /// Faults that waited for I/O (kernel: major faults; pager: faults
    /// served).
    faults: u64,
    bad: u64,
    note: String,
}

fn kernel(pattern: &'static str, o: &Options, rng: &mut SlotRng) -> Result<Measured, String> {
    let base = resident();
    // Before any page of the region is in the swap cache.
    let cached0 = vmstat("nr_swapcached").unwrap_or(0);
    let mut r = Region::new(o.pages)?;
    r.fill(o.seed);
    let wb = vmstat("nr_writeback").unwrap_or(0);
    let (_, out0) = vmstat_swap().ok_or("no /proc/vmstat")?;
    let t = Instant::now();
    r.pageout()?;
    wait_writeback(wb);
    let out_secs = t.elapsed().as_secs_f64();
    let (_, out1) = vmstat_swap().ok_or("no /proc/vmstat")?;
    // Out of the swap cache: every page touched, then paged out again
    // (clean: no I/O), until neither the region nor the swap cache holds
    // more than 1 % of it. A page written again (its slot freed when it
    // was touched: the kernel does that when swap is more than half full,
    // which the area's size prevents) is under writeback when the pageout
    // returns and stays in the swap cache after, unmapped: hence another
    // pass.
    let slack = (o.pages as u64) / 100;
    let cached = || vmstat("nr_swapcached").unwrap_or(0).saturating_sub(cached0);
    let mut buf = Box::new([0u8; PAGE_SIZE]);
    let mut passes = 0;
    loop {
        for i in 0..o.pages {
            r.read(i, &mut buf);
            std::hint::black_box(&buf); // the read must happen: it faults the page in
        }
        r.pageout()?;
        wait_writeback(wb);
        passes += 1;
        if passes == 8 || (resident() <= base + slack && cached() <= slack) {
            break;
        }
    }
    let left = resident().saturating_sub(base);
    let left_cached = cached();
    let seq = order(pattern, o.pages, rng);
    let (in0, _) = vmstat_swap().ok_or("no /proc/vmstat")?;
    let maj0 = major_faults();
    let (in_secs, bad) = touch_all(&seq, o.threads, o.seed, &|i, b| r.read(i, b));
    let (in1, _) = vmstat_swap().ok_or("no /proc/vmstat")?;
    // A swap-in that found its pages in memory measures nothing.
    if in1 - in0 + slack < o.pages as u64 {
        return Err(format!(
            "pswpin grew by {} for {} pages: the rest came from the swap cache, not the \
             disk ({left} resident, {left_cached} in the swap cache before the swap-in)",
            in1 - in0,
            o.pages
        ));
    }
    Ok(Measured {
        side: "kernel".into(),
        pattern,
        out_secs,
        written: out1 - out0,
        in_secs,
        read: in1 - in0,
        faults: major_faults() - maj0,
        bad,
        note: format!(
            "{left} pages resident and {left_cached} in the swap cache before swap-in, \
             {passes} pageout passes"
        ),
    })
}

fn pager(
    kind: RegionKind,
    pattern: &'static str,
    o: &Options,
    rng: &mut SlotRng,
) -> Result<Measured, String> {
    let sf = open_swap_file(&o.file).map_err(|e| e.to_string())?;
    let dev = SwapDevice::open(&sf, IoMode::Uring, DEPTH).map_err(|e| e.to_string())?;
    let seed = o.seed;
    let p = Pager::new(PagerConfig::new(kind, o.pages), dev, |i, b| {
        fill_page(b, i as u64, seed)
    })
    .map_err(|e| e.to_string())?;
    let stop = AtomicBool::new(false);
    let seq = order(pattern, o.pages, rng);
    let all: Vec<usize> = (0..o.pages).collect();
    let (out_secs, reclaimed, in_secs, bad, served) = std::thread::scope(|s| {
        let server = s.spawn(|| p.serve(&stop));
        let t = Instant::now();
        let out = p.reclaim(&all);
        let out_secs = t.elapsed().as_secs_f64();
        let (in_secs, bad) = touch_all(&seq, o.threads, o.seed, &|i, b| p.read_page(i, b));
        let served = p.stats().served;
        // The fault thread sees it within its 10 ms poll.
        stop.store(true, std::sync::atomic::Ordering::Release);
        let r = server.join().expect("fault thread");
        r.map(|()| (out_secs, out.swapped, in_secs, bad, served))
    })
    .map_err(|e| e.to_string())?;
    let c = p.device().counters();
    let st = p.stats();
    Ok(Measured {
        side: format!("pager-{kind}"),
        pattern,
        out_secs,
        written: c.pswpout,
        in_secs,
        read: c.pswpin,
        faults: served,
        bad,
        note: format!(
            "{reclaimed} reclaimed, {} zero; {} swap-ins in flight at most, {} reads merged, \
             {} readahead hits, fault-around {}",
            c.zero_pages_out,
            st.max_swapins_in_flight,
            c.merged_read_pages,
            c.readahead_hits,
            st.fault_around
        ),
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
            eprintln!("paging_bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Three times the region: the kernel frees a swapped-in page's slot
    // (and so must write the page again at the next pageout) while swap is
    // more than half full (`vm_swap_full`); at a third full it keeps it.
    let size = (3 * o.pages as u64 + 1024) * PAGE_SIZE as u64;
    let small = std::fs::metadata(&o.file).is_ok_and(|m| m.len() < size);
    if small {
        eprintln!(
            "{}: smaller than {size} bytes, created again",
            o.file.display()
        );
        if let Err(e) = std::fs::remove_file(&o.file) {
            eprintln!("paging_bench: removing {}: {e}", o.file.display());
            return ExitCode::FAILURE;
        }
    }
    if !o.file.exists() {
        if let Some(dir) = o.file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let label = Label::new("paging-bench").expect("a short label");
        if let Err(e) = create_swap_file(&o.file, size, &label, Uuid::NIL) {
            eprintln!("paging_bench: creating {}: {e}", o.file.display());
            return ExitCode::FAILURE;
        }
    }
    let mut results = Vec::new();
    let mut failed = false;
    let mut rng = SlotRng::new(o.seed);
    // The kernel first, on the same file; swapped off before the pager.
    let kernel_side = o.sides.iter().any(|s| s == "kernel");
    match kernel_side.then(|| SwapOn::new(&o.file)).transpose() {
        Ok(None) => {}
        Ok(Some(area)) => {
            let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
            if swaps.lines().count() > 2 {
                eprintln!(
                    "note: other swap areas are active; the kernel may use them too:\n{swaps}"
                );
            }
            eprintln!(
                "kernel swap on {} ({} pages, {} threads, vm.page-cluster {})",
                o.file.display(),
                o.pages,
                o.threads,
                page_cluster().map_or("?".to_owned(), |n| n.to_string())
            );
            for &pattern in &o.patterns {
                match kernel(pattern, &o, &mut rng) {
                    Ok(m) => results.push(m),
                    Err(e) => {
                        eprintln!("paging_bench: kernel {pattern}: {e}");
                        failed = true;
                    }
                }
            }
            if let Err(e) = area.swapoff() {
                eprintln!("paging_bench: swapoff: {e}");
                return ExitCode::FAILURE;
            }
        }
        Err(e) => eprintln!(
            "\n***** SKIPPED the kernel side: swapon {}: {e} (needs root) *****\n",
            o.file.display()
        ),
    }
    let mut rng = SlotRng::new(o.seed);
    for kind in [RegionKind::Anon, RegionKind::Memfd] {
        if !o.sides.iter().any(|s| *s == kind.name()) {
            continue;
        }
        for &pattern in &o.patterns {
            match pager(kind, pattern, &o, &mut rng) {
                Ok(m) => results.push(m),
                Err(e) => {
                    eprintln!("paging_bench: pager {kind} {pattern}: {e}");
                    failed = true;
                }
            }
        }
    }
    let n = o.pages as f64;
    for m in &results {
        eprintln!(
            "{:<13} {:<6} swap-out {:>7.0} pages/s ({} written, {:.3} s)   swap-in {:>7.0} pages/s \
             ({} read, {} faults, {:.3} s)   verify {}   [{}]",
            m.side,
            m.pattern,
            n / m.out_secs,
            m.written,
            m.out_secs,
            n / m.in_secs,
            m.read,
            m.faults,
            m.in_secs,
            if m.bad == 0 {
                "OK".to_owned()
            } else {
                format!("FAILED ({} bad)", m.bad)
            },
            m.note
        );
        failed |= m.bad > 0;
    }
    if o.json {
        let items: Vec<String> = results
            .iter()
            .map(|m| {
                format!(
                    "{{\"side\":\"{}\",\"pattern\":\"{}\",\"pages\":{},\"threads\":{},\
                     \"out_pages_per_s\":{:.0},\"written\":{},\"in_pages_per_s\":{:.0},\
                     \"read\":{},\"faults\":{},\"bad\":{}}}",
                    m.side,
                    m.pattern,
                    o.pages,
                    o.threads,
                    n / m.out_secs,
                    m.written,
                    n / m.in_secs,
                    m.read,
                    m.faults,
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
