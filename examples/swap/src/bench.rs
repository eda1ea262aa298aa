//! `swap bench`: 4 KiB swap-in and swap-out through the example's real swap
//! paths ([`SwapDevice::swap_readpage`] / [`SwapDevice::swap_writepage`]:
//! owned page batches through `DirectIo::submit`, sync kiocbs on the
//! `O_DIRECT` file or async ones on io_uring), each case for a fixed time,
//! at random slots of a
//! preallocated swap file, for comparison with fio
//! (`benches/fio_compare.sh`).
//!
//! # What a case measures
//!
//! * State: the file's page cache is dropped before each case
//!   (`posix_fadvise(POSIX_FADV_DONTNEED)`, fio's `invalidate=1`).
//! * Offsets: a slot drawn uniformly from the area's usable slots (1 to
//!   `max_pages - 1`; slot 0 is the header) for every kiocb, with
//!   replacement: fio's `randread` / `randwrite` with `norandommap` over
//!   `offset=4096, size=(max_pages - 1) * 4096`. Plugged cases draw the
//!   first slot of a run of 32.
//! * Depth: sync cases have one kiocb at a time. Async cases (io_uring)
//!   keep `depth` kiocbs in flight: a new one is submitted as soon as one
//!   completes ([`SwapDevice::wait_any`]), single pages for QD32 (fio's
//!   `iodepth=32 bs=4k`), not 32-page batches. The case's thread opens
//!   the device and alone drives it, so its ring is set up as fio's
//!   (`SINGLE_ISSUER | DEFER_TASKRUN`, [`SwapDevice::open_uring`]).
//! * Readahead (`swapin-readahead-async-qd8`): `page-cluster` 3; each
//!   kiocb starts at the first slot of a random aligned cluster of 8, the
//!   device reads as much of the cluster as its adaptive readahead window
//!   says (up to 8 pages, one kiocb), and the loop then swaps in the
//!   cluster's other slots, from the swap cache or by reads of their own;
//!   compared with fio's 32 KiB `randread` at QD8 in pages per second.
//! * Swap-out writes the same pool of dirty pages again and again (one page
//!   per kiocb slot in flight), each `swap_writepage` taking the `DIRTY`
//!   bit, setting `WRITEBACK` and merging into the plug as the demo does.
//!   Swap-in takes a locked page per read (the swap-cache folio) from the
//!   device's page pool, takes it back through its [`SwapIn`] handle when
//!   the read completes, as a faulting task would, and returns it to the
//!   pool ([`SwapDevice::put_page`]), so frames are reused without zeroing.
//! * IOPS: kiocbs completed per second of wall time, from the first
//!   submission to the last completion (submissions stop at the deadline,
//!   in-flight kiocbs are waited for). Pages per second count 4 KiB pages
//!   (32 per plugged kiocb). Latency: per kiocb, submission to completion
//!   (the device's own timestamps), nearest-rank p50 and p99.
//! * CPU: user + system time of the benchmarking thread, from
//!   `/proc/thread-self/stat` (`utime` and `stime`, fields 14 and 15, in
//!   clock ticks of `USER_HZ` = 100 per second on Linux: `sysconf(_SC_CLK_TCK)`
//!   is not reachable without a new dependency, and `USER_HZ` is 100 on
//!   every architecture this crate builds for). That is what fio's
//!   `usr_cpu` / `sys_cpu` measure (`getrusage(RUSAGE_THREAD)` of the job
//!   thread), so the two compare: kernel work done in io_uring's worker
//!   threads is in neither. Reported per 100k pages (= per 100k I/Os for
//!   the 4 KiB cases). The kernel scales the ticks to the thread's exact
//!   run time, so the only error is rounding to 10 ms.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[cfg(feature = "uring")]
use iov_iter::backend::uring::UringQueue;
use iov_iter::{PAGE_SIZE, PageFlags, PageRef};

use crate::area::{self, Area};
use crate::cli::{self, BenchCommand, BenchOptions};
use iov_iter_swap::content::make_page;
use iov_iter_swap::latency::LatencySummary;
use iov_iter_swap::swapio::{IoMode, SWAP_CLUSTER_MAX, SwapDevice, SwapError, SwapIn, SwapPlug};
use iov_iter_swap::swapmap::{Slot, SlotRng};

/// Sync kiocbs, or async ones on io_uring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseMode {
    /// Sync kiocbs through `DirectIo` on the `O_DIRECT` file.
    Sync,
    /// Async kiocbs on io_uring.
    Async,
}

impl CaseMode {
    /// `"sync"` or `"async"`.
    pub fn name(self) -> &'static str {
        match self {
            CaseMode::Sync => "sync",
            CaseMode::Async => "async",
        }
    }
}

/// Swap-in (reads) or swap-out (writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rw {
    /// Swap-in.
    Read,
    /// Swap-out.
    Write,
}

impl Rw {
    /// `"read"` or `"write"`.
    pub fn name(self) -> &'static str {
        match self {
            Rw::Read => "read",
            Rw::Write => "write",
        }
    }
}

/// One benchmark case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// The name `--case` takes.
    pub name: &'static str,
    /// Sync or io_uring.
    pub mode: CaseMode,
    /// Swap-in or swap-out.
    pub rw: Rw,
    /// Kiocbs in flight.
    pub depth: u32,
    /// 32 contiguous pages per kiocb through a [`SwapPlug`].
    pub plugged: bool,
    /// Swap-in with readahead (`page-cluster` 3): each kiocb reads an
    /// aligned cluster of 8 slots, the first page asked for and 7 read
    /// ahead into the swap cache, which the loop then takes as a faulting
    /// task touching its neighbours would (readahead hits, no I/O).
    pub readahead: bool,
}

impl Case {
    const fn new(name: &'static str, mode: CaseMode, rw: Rw, depth: u32, plugged: bool) -> Case {
        Case {
            name,
            mode,
            rw,
            depth,
            plugged,
            readahead: false,
        }
    }

    const fn with_readahead(mut self) -> Case {
        self.readahead = true;
        self
    }

    /// Pages per kiocb (for the readahead case at most: its window adapts).
    pub fn pages_per_kiocb(&self) -> usize {
        if self.plugged {
            SWAP_CLUSTER_MAX
        } else if self.readahead {
            READAHEAD_PAGES
        } else {
            1
        }
    }
}

/// Pages per readahead kiocb: `page-cluster` 3 (the kernel's default).
pub const READAHEAD_PAGES: usize = 1 << 3;

/// Every case, in the order they run.
pub const CASES: [Case; 10] = [
    Case::new("swapin-sync-qd1", CaseMode::Sync, Rw::Read, 1, false),
    Case::new("swapin-async-qd1", CaseMode::Async, Rw::Read, 1, false),
    Case::new("swapin-async-qd32", CaseMode::Async, Rw::Read, 32, false),
    Case::new("swapout-sync-qd1", CaseMode::Sync, Rw::Write, 1, false),
    Case::new("swapout-async-qd1", CaseMode::Async, Rw::Write, 1, false),
    Case::new("swapout-async-qd32", CaseMode::Async, Rw::Write, 32, false),
    Case::new("swapout-plugged-sync", CaseMode::Sync, Rw::Write, 1, true),
    Case::new("swapout-plugged-async", CaseMode::Async, Rw::Write, 1, true),
    Case::new(
        "swapout-plugged-async-qd8",
        CaseMode::Async,
        Rw::Write,
        8,
        true,
    ),
    Case::new(
        "swapin-readahead-async-qd8",
        CaseMode::Async,
        Rw::Read,
        8,
        false,
    )
    .with_readahead(),
];

/// The case called `name`.
pub fn find_case(name: &str) -> Option<&'static Case> {
    CASES.iter().find(|c| c.name == name)
}

// ---------------------------------------------------------------------------
// CPU time.

/// Clock ticks per second in `/proc/*/stat` (`USER_HZ`; see the module
/// docs).
pub const CLK_TCK: u64 = 100;

/// User and system CPU time, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CpuTime {
    /// User time.
    pub user: f64,
    /// System time.
    pub system: f64,
}

impl CpuTime {
    /// Both.
    pub fn total(&self) -> f64 {
        self.user + self.system
    }

    /// `self - earlier`.
    pub fn since(&self, earlier: &CpuTime) -> CpuTime {
        CpuTime {
            user: (self.user - earlier.user).max(0.0),
            system: (self.system - earlier.system).max(0.0),
        }
    }
}

/// `utime` and `stime` (ticks) from a `/proc/.../stat` line: fields 14 and
/// 15, counted after the `)` that ends the command name (which may hold
/// spaces and parentheses).
pub fn parse_stat_times(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts at field 3 (state).
    let mut fields = rest.split_whitespace().skip(14 - 3);
    let utime = fields.next()?.parse().ok()?;
    let stime = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// Voluntary plus involuntary context switches in a `/proc/.../status`
/// file (what fio reports as `ctx`: `ru_nvcsw + ru_nivcsw`).
pub fn parse_ctx_switches(status: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .trim()
            .parse()
            .ok()
    };
    Some(field("voluntary_ctxt_switches:")? + field("nonvoluntary_ctxt_switches:")?)
}

/// The calling thread's context switches so far.
pub fn thread_ctx_switches() -> Option<u64> {
    parse_ctx_switches(&std::fs::read_to_string("/proc/thread-self/status").ok()?)
}

/// The calling thread's CPU time, or `None` when `/proc` is not there.
pub fn thread_cpu_time() -> Option<CpuTime> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let (u, s) = parse_stat_times(&stat)?;
    Some(CpuTime {
        user: u as f64 / CLK_TCK as f64,
        system: s as f64 / CLK_TCK as f64,
    })
}

// ---------------------------------------------------------------------------
// Results.

/// What one case measured.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case.
    pub case: Case,
    /// The device's I/O path.
    pub backend: IoMode,
    /// Kiocbs completed.
    pub kiocbs: u64,
    /// Pages moved.
    pub pages: u64,
    /// Kiocbs that failed or came back short.
    pub errors: u64,
    /// First submission to last completion.
    pub elapsed: Duration,
    /// Per-kiocb latency.
    pub latency: LatencySummary,
    /// CPU time of the benchmarking thread meanwhile (`None`: no `/proc`).
    pub cpu: Option<CpuTime>,
    /// Context switches of the benchmarking thread meanwhile.
    pub ctx_switches: Option<u64>,
}

impl CaseResult {
    fn secs(&self) -> f64 {
        self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Kiocbs per second.
    pub fn iops(&self) -> f64 {
        self.kiocbs as f64 / self.secs()
    }

    /// Pages per second.
    pub fn pages_per_s(&self) -> f64 {
        self.pages as f64 / self.secs()
    }

    /// MiB per second.
    pub fn mib_s(&self) -> f64 {
        self.pages_per_s() * PAGE_SIZE as f64 / f64::from(1 << 20)
    }

    /// CPU seconds per 100 000 pages.
    pub fn cpu_s_per_100k(&self) -> Option<f64> {
        let cpu = self.cpu?;
        Some(cpu.total() * 100_000.0 / self.pages.max(1) as f64)
    }
}

/// The header of [`result_line`].
pub fn header_line() -> String {
    format!(
        "{:<22} {:<5} {:<5} {:>3} {:<4} {:>9} {:>9} {:>8} {:>8} {:>8} {:>11}",
        "case",
        "mode",
        "rw",
        "QD",
        "plug",
        "IOPS",
        "pages/s",
        "MiB/s",
        "p50 µs",
        "p99 µs",
        "CPU s/100k"
    )
}

/// One human-readable line.
pub fn result_line(r: &CaseResult) -> String {
    let c = &r.case;
    let cpu = r
        .cpu_s_per_100k()
        .map_or_else(|| "n/a".to_owned(), |v| format!("{v:.3}"));
    let mut line = format!(
        "{:<22} {:<5} {:<5} {:>3} {:<4} {:>9.0} {:>9.0} {:>8.1} {:>8.1} {:>8.1} {:>11}",
        c.name,
        c.mode.name(),
        c.rw.name(),
        c.depth,
        if c.plugged {
            "32"
        } else if c.readahead {
            "ra8"
        } else {
            "no"
        },
        r.iops(),
        r.pages_per_s(),
        r.mib_s(),
        us(r.latency.p50),
        us(r.latency.p99),
        cpu,
    );
    if r.errors > 0 {
        let _ = write!(line, "  ({} failed kiocbs)", r.errors);
    }
    line
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number (`null` for NaN and infinities, which JSON lacks).
fn json_num(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "null".to_owned()
    }
}

/// One case as a JSON object (one line).
pub fn result_json(r: &CaseResult) -> String {
    let c = &r.case;
    let opt = |v: Option<f64>, d| v.map_or_else(|| "null".to_owned(), |v| json_num(v, d));
    format!(
        "{{\"name\": {}, \"mode\": {}, \"backend\": {}, \"rw\": {}, \"depth\": {}, \
         \"plugged\": {}, \"pages_per_kiocb\": {}, \"iops\": {}, \"pages_s\": {}, \
         \"mib_s\": {}, \"mean_us\": {}, \"p50_us\": {}, \"p99_us\": {}, \"cpu_s_per_100k\": {}, \
         \"cpu_user_s\": {}, \"cpu_sys_s\": {}, \"ctx_switches\": {}, \"kiocbs\": {}, \
         \"pages\": {}, \"errors\": {}, \"elapsed_s\": {}}}",
        json_str(c.name),
        json_str(c.mode.name()),
        json_str(r.backend.name()),
        json_str(c.rw.name()),
        c.depth,
        c.plugged,
        c.pages_per_kiocb(),
        json_num(r.iops(), 1),
        json_num(r.pages_per_s(), 1),
        json_num(r.mib_s(), 2),
        json_num(us(r.latency.mean), 1),
        json_num(us(r.latency.p50), 1),
        json_num(us(r.latency.p99), 1),
        opt(r.cpu_s_per_100k(), 4),
        opt(r.cpu.map(|c| c.user), 2),
        opt(r.cpu.map(|c| c.system), 2),
        r.ctx_switches
            .map_or_else(|| "null".to_owned(), |n| n.to_string()),
        r.kiocbs,
        r.pages,
        r.errors,
        json_num(r.elapsed.as_secs_f64(), 3),
    )
}

/// The JSON array of `--json`.
pub fn results_json(results: &[CaseResult]) -> String {
    let mut out = String::from("[");
    for (i, r) in results.iter().enumerate() {
        out.push_str(if i == 0 { "\n  " } else { ",\n  " });
        out.push_str(&result_json(r));
    }
    out.push_str(if results.is_empty() { "]\n" } else { "\n]\n" });
    out
}

// ---------------------------------------------------------------------------
// Running the cases.

/// Why a case did not run.
#[derive(Debug)]
pub enum CaseError {
    /// Not available here (no io_uring): skipped, not a failure.
    Skipped(String),
    /// It failed.
    Failed(String),
}

/// Opens the device for `case` on `area`.
fn open(case: &Case, area: &Area) -> Result<SwapDevice, CaseError> {
    let mode = match case.mode {
        CaseMode::Sync => IoMode::Sync,
        CaseMode::Async if !IoMode::URING_AVAILABLE => {
            return Err(CaseError::Skipped(
                "built without the `uring` feature".to_owned(),
            ));
        }
        CaseMode::Async => IoMode::Uring,
    };
    // The case's thread opens the device and alone drives it, as fio's
    // job thread does its ring: io_uring set up for one issuer, as fio's
    // (SINGLE_ISSUER | DEFER_TASKRUN).
    #[cfg(feature = "uring")]
    let opened = match mode {
        IoMode::Uring => SwapDevice::open_uring(
            &area.swap,
            UringQueue::builder()
                .depth(case.depth)
                .coop_taskrun(true)
                .single_issuer(true),
        ),
        _ => SwapDevice::open(&area.swap, mode, case.depth),
    };
    #[cfg(not(feature = "uring"))]
    let opened = SwapDevice::open(&area.swap, mode, case.depth);
    match opened {
        Ok(dev) => {
            // 4 KiB random reads, as fio's: no readahead (`vm.page-cluster
            // = 0`, the usual setting for swap on SSDs); the readahead case
            // reads clusters of 8 (`page-cluster` 3), as fio's 32 KiB.
            dev.set_page_cluster(if case.readahead {
                READAHEAD_PAGES.trailing_zeros()
            } else {
                0
            });
            Ok(dev)
        }
        Err(SwapError::Backend(e)) if mode == IoMode::Uring => Err(CaseError::Skipped(format!(
            "io_uring is not available here ({e})"
        ))),
        Err(e) => Err(CaseError::Failed(e.to_string())),
    }
}

/// What a timed loop leaves for the result.
struct Timed {
    elapsed: Duration,
    cpu: Option<CpuTime>,
    ctx: Option<u64>,
}

/// Runs `case` for `time` on `area`, offsets from `seed`.
///
/// # Errors
///
/// [`CaseError::Skipped`] when io_uring is not available,
/// [`CaseError::Failed`] when the device cannot be opened or driven.
pub fn run_case(
    case: &Case,
    area: &Area,
    time: Duration,
    seed: u64,
) -> Result<CaseResult, CaseError> {
    // Like fio's `invalidate=1`: no page cache left over from creating the
    // file (buffered zero fill) or from the header reads, so every case
    // starts from the same state and O_DIRECT writes have nothing to
    // invalidate. Advisory: a failure changes nothing that matters.
    let _ = rustix::fs::fadvise(&area.swap.file, 0, None, rustix::fs::Advice::DontNeed);
    let dev = open(case, area)?;
    let failed = |e: SwapError| CaseError::Failed(format!("{}: {e}", case.name));
    // Every usable slot is allocated up front: the I/O paths check that a
    // slot is allocated, as the kernel's swap entries are.
    let usable = dev.usable_slots();
    let run = case.pages_per_kiocb() as u32;
    if usable < run || dev.alloc_contiguous(usable).is_none() {
        return Err(CaseError::Failed(format!(
            "{}: the area has {usable} usable slots, fewer than the {run} needed (or fragmented)",
            case.name
        )));
    }
    let mut rng = SlotRng::new(seed);
    // First slots a kiocb may start at: 1 ..= usable - run + 1.
    let span = usable - run + 1;
    let _ = dev.take_latencies();
    let c0 = dev.counters();
    let timed = match case.rw {
        Rw::Read if case.readahead => {
            readahead_loop(&dev, case, time, usable, &mut rng).map_err(failed)?
        }
        Rw::Read => read_loop(&dev, case, time, span, &mut rng).map_err(failed)?,
        Rw::Write => write_loop(&dev, case, time, span, seed, &mut rng).map_err(failed)?,
    };
    let c = dev.counters();
    let lat = dev.take_latencies();
    let (kiocbs, pages, errors, latency) = match case.rw {
        Rw::Read => (
            c.read_batches - c0.read_batches,
            c.read_pages() - c0.read_pages(),
            c.read_errors - c0.read_errors,
            lat.read,
        ),
        Rw::Write => (
            c.write_batches - c0.write_batches,
            c.written_pages() - c0.written_pages(),
            c.write_errors - c0.write_errors,
            lat.write,
        ),
    };
    Ok(CaseResult {
        case: *case,
        backend: dev.mode(),
        kiocbs,
        pages,
        errors,
        elapsed: timed.elapsed,
        latency,
        cpu: timed.cpu,
        ctx_switches: timed.ctx,
    })
}

/// The clock and CPU time around a timed loop.
struct Meter {
    start: Instant,
    cpu: Option<CpuTime>,
    ctx: Option<u64>,
}

impl Meter {
    fn start() -> Meter {
        let (cpu, ctx) = (thread_cpu_time(), thread_ctx_switches());
        Meter {
            start: Instant::now(),
            cpu,
            ctx,
        }
    }

    fn stop(self) -> Timed {
        let elapsed = self.start.elapsed();
        let cpu = match (thread_cpu_time(), self.cpu) {
            (Some(now), Some(then)) => Some(now.since(&then)),
            _ => None,
        };
        let ctx = match (thread_ctx_switches(), self.ctx) {
            (Some(now), Some(then)) => Some(now.saturating_sub(then)),
            _ => None,
        };
        Timed { elapsed, cpu, ctx }
    }
}

/// The end of a case's submissions: the clock is read every 16th check
/// (a read costs about 50 ns on the benchmark VM; fio caches its clock
/// for the same check), so a case submits at most 15 I/Os past its time.
struct Deadline {
    at: Instant,
    checks: u32,
}

impl Deadline {
    fn new(at: Instant) -> Deadline {
        Deadline { at, checks: 0 }
    }

    fn passed(&mut self) -> bool {
        self.checks = self.checks.wrapping_add(1);
        self.checks % 16 == 0 && Instant::now() >= self.at
    }
}

/// Waits until fewer than `depth` kiocbs are in flight on `dev`.
fn wait_for_room(dev: &SwapDevice, depth: u64) -> Result<(), SwapError> {
    while dev.in_flight() >= depth {
        dev.wait_any()?;
    }
    Ok(())
}

/// Swap-out: `depth` groups of `pages_per_kiocb` dirty pages, each group
/// written again as soon as its previous write completed, at random slots.
fn write_loop(
    dev: &SwapDevice,
    case: &Case,
    time: Duration,
    span: u32,
    seed: u64,
    rng: &mut SlotRng,
) -> Result<Timed, SwapError> {
    let group = case.pages_per_kiocb();
    let depth = case.depth.max(1) as usize;
    let pool: Vec<PageRef> = (0..depth * group)
        .map(|i| make_page(i as u64, seed))
        .collect();
    let idle = |g: usize| {
        pool[g * group..(g + 1) * group]
            .iter()
            .all(|p| !p.test(PageFlags::WRITEBACK))
    };
    let mut plug = SwapPlug::new();
    let mut next = 0usize;
    // Each group's first slot; 0 (the header's) for one not written yet.
    let mut firsts: Vec<u32> = vec![0; depth];
    let width = group as u32;
    let meter = Meter::start();
    let mut deadline = Deadline::new(meter.start + time);
    while !deadline.passed() {
        // A group whose last write has completed (its pages are out of
        // writeback); with `depth` groups, at most `depth` kiocbs fly.
        let g = loop {
            if let Some(g) = (next..depth).chain(0..next).find(|&g| idle(g)) {
                break g;
            }
            dev.wait_any()?;
        };
        next = (g + 1) % depth;
        // Slots not under another group's write still in flight (the swap
        // cache refuses a second write to a slot on its way).
        let first = loop {
            let first = 1 + rng.below(span);
            // [f, f + width) and [first, first + width) overlap iff
            // f - first lies in (-width, width): one unsigned compare,
            // almost never true, so the branch predicts well (two
            // compares on random slots are each a coin toss for it), and
            // page flags are read only on an overlap.
            let overlaps = |f: u32| f.wrapping_sub(first).wrapping_add(width - 1) < 2 * width - 1;
            let clash = |h: usize| overlaps(firsts[h]) && h != g && !idle(h);
            if !(0..depth).any(clash) {
                break first;
            }
        };
        firsts[g] = first;
        for (k, page) in pool[g * group..(g + 1) * group].iter().enumerate() {
            // Dirtied again by its task since the last swap-out.
            page.set_flags(PageFlags::DIRTY);
            let slot = Slot::new(first + k as u32);
            // A slot whose last write is still on its way is busy (the
            // swap cache holds it): let that write finish first.
            loop {
                match dev.swap_writepage(
                    PageRef::clone(page),
                    slot,
                    case.plugged.then_some(&mut plug),
                ) {
                    Err(SwapError::Busy(_)) => {
                        plug.write_unplug();
                        dev.wait_any()?;
                    }
                    r => {
                        r?;
                        break;
                    }
                }
            }
        }
        // A full plug has submitted itself; this is for good measure.
        plug.write_unplug();
    }
    dev.drain()?;
    Ok(meter.stop())
}

/// Swap-in: a read of a random slot into a page from the device's pool,
/// `depth` in flight; completed reads are taken back in submission order
/// and their pages returned to the pool.
fn read_loop(
    dev: &SwapDevice,
    case: &Case,
    time: Duration,
    span: u32,
    rng: &mut SlotRng,
) -> Result<Timed, SwapError> {
    let depth = u64::from(case.depth.max(1));
    let mut pending: VecDeque<SwapIn> = VecDeque::with_capacity(2 * depth as usize);
    let take = |h: SwapIn| {
        // The page is uptodate, or the read failed (counted by the
        // device); either way the task is done with it.
        let (page, _) = h.wait_page();
        dev.put_page(page);
    };
    let meter = Meter::start();
    let mut deadline = Deadline::new(meter.start + time);
    while !deadline.passed() {
        wait_for_room(dev, depth)?;
        let slot = Slot::new(1 + rng.below(span));
        pending.push_back(dev.swap_readpage(slot, None)?);
        while pending.front().is_some_and(SwapIn::is_done) {
            take(pending.pop_front().expect("front exists"));
        }
    }
    dev.drain()?;
    pending.into_iter().for_each(take);
    Ok(meter.stop())
}

/// Swap-in with readahead: a read of the first slot of a random aligned
/// cluster of [`READAHEAD_PAGES`] (the device reads as much of the cluster
/// as its readahead window says, in one kiocb, the rest into the swap
/// cache), `depth` kiocbs in flight; when a cluster's first read has
/// completed, its other slots are swapped in too: from the swap cache, or,
/// where the window was smaller than the cluster (it adapts to hits, as the
/// kernel's does), by reads of their own, queued like any other.
fn readahead_loop(
    dev: &SwapDevice,
    case: &Case,
    time: Duration,
    usable: u32,
    rng: &mut SlotRng,
) -> Result<Timed, SwapError> {
    let n = READAHEAD_PAGES as u32;
    // Clusters 1 .. usable / n (cluster 0 holds the header's slot 0).
    let clusters = (usable / n).saturating_sub(1).max(1);
    let depth = u64::from(case.depth.max(1));
    // A cluster's first read (its rest to be asked for), or one of the rest.
    let mut pending: VecDeque<(Option<Slot>, SwapIn)> =
        VecDeque::with_capacity(2 * READAHEAD_PAGES * depth as usize);
    let take = |h: SwapIn| {
        let (page, _) = h.wait_page();
        dev.put_page(page);
    };
    let reap = |pending: &mut VecDeque<(Option<Slot>, SwapIn)>| -> Result<(), SwapError> {
        while pending.front().is_some_and(|(_, h)| h.is_done()) {
            let (first, h) = pending.pop_front().expect("front exists");
            take(h);
            if let Some(first) = first {
                for k in 1..n {
                    // Queued like any other: at most `depth` in flight
                    // (a slot the readahead brought is served from the
                    // swap cache without I/O).
                    wait_for_room(dev, depth)?;
                    let slot = Slot::new(first.index() + k);
                    pending.push_back((None, dev.swap_readpage(slot, None)?));
                }
            }
        }
        Ok(())
    };
    let meter = Meter::start();
    let mut deadline = Deadline::new(meter.start + time);
    while !deadline.passed() {
        wait_for_room(dev, depth)?;
        let first = Slot::new(n * (1 + rng.below(clusters)));
        pending.push_back((Some(first), dev.swap_readpage(first, None)?));
        reap(&mut pending)?;
    }
    while !pending.is_empty() {
        dev.drain()?;
        reap(&mut pending)?;
    }
    Ok(meter.stop())
}

// ---------------------------------------------------------------------------
// The subcommand.

/// A seed from the clock and the pid (fio's `randrepeat=0`).
fn clock_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32) ^ 0x5eed_b0a7_0000_0000
}

/// Runs `swap bench` with parsed options. Human-readable output goes to
/// `out` (or `err` with `--json`, whose array goes to `out`). Returns the
/// results of the cases that ran.
///
/// # Errors
///
/// A message: the area cannot be prepared, or a case failed.
pub fn run(
    opts: &BenchOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Vec<CaseResult>, String> {
    let io = |e: std::io::Error| format!("writing output: {e}");
    if opts.file.as_ref().is_some_and(|p| p.exists()) && opts.size.is_some() {
        writeln!(
            err,
            "note: --size ignored: {} exists",
            opts.file
                .as_ref()
                .map_or_else(String::new, |p| p.display().to_string())
        )
        .map_err(io)?;
    }
    let size = opts.size.unwrap_or(cli::BENCH_DEFAULT_SIZE);
    let mut notes = Vec::new();
    let t_prep = Instant::now();
    let area = area::prepare(opts.file.as_deref(), size, &mut |n| {
        notes.push(n.to_owned())
    })?;
    for n in notes {
        writeln!(err, "note: {n}").map_err(io)?;
    }
    let sf = &area.swap;
    let align = iov_iter::backend::file::DirectFile::open(&sf.path)
        .map(|f| {
            (
                iov_iter::dio::DirectIo::dio_align(&f),
                format!("{:?}", f.align_source()),
            )
        })
        .map_err(|e| format!("O_DIRECT on {}: {e}", sf.path.display()))?;
    let seed = opts.seed.unwrap_or_else(clock_seed);
    let human: &mut dyn Write = if opts.json { &mut *err } else { &mut *out };
    writeln!(
        human,
        "swap area {} ({} in {:.1} s): {:.1} MiB, {} slots of 4 KiB ({} usable), \
         DIO alignment memory {} offset {} ({}){}",
        sf.path.display(),
        if area.created { "created" } else { "existing" },
        t_prep.elapsed().as_secs_f64(),
        sf.activation.file_size as f64 / f64::from(1 << 20),
        sf.max_pages(),
        sf.usable_pages(),
        align.0.mem,
        align.0.offset,
        align.1,
        if opts.prepare {
            String::new()
        } else {
            format!(
                "; {:.1} s per case, seed {seed:#x}",
                opts.time.as_secs_f64()
            )
        },
    )
    .map_err(io)?;
    if opts.prepare {
        if opts.json {
            writeln!(
                out,
                "{{\"file\": {}, \"file_bytes\": {}, \"max_pages\": {}, \"usable\": {}, \
                 \"first_slot\": 1, \"dio_mem_align\": {}, \"dio_offset_align\": {}, \
                 \"created\": {}}}",
                json_str(&sf.path.display().to_string()),
                sf.activation.file_size,
                sf.max_pages(),
                sf.usable_pages(),
                align.0.mem,
                align.0.offset,
                area.created,
            )
            .map_err(io)?;
        }
        return Ok(Vec::new());
    }
    let cases: Vec<&Case> = if opts.cases.is_empty() {
        CASES.iter().collect()
    } else {
        opts.cases.iter().filter_map(|n| find_case(n)).collect()
    };
    let human: &mut dyn Write = if opts.json { &mut *err } else { &mut *out };
    writeln!(human, "{}", header_line()).map_err(io)?;
    let mut results = Vec::new();
    let mut failures = Vec::new();
    for (i, case) in cases.into_iter().enumerate() {
        let case_seed = seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        match run_case(case, &area, opts.time, case_seed) {
            Ok(r) => {
                writeln!(human, "{}", result_line(&r)).map_err(io)?;
                if r.errors > 0 {
                    failures.push(format!("{}: {} kiocbs failed", case.name, r.errors));
                }
                results.push(r);
            }
            Err(CaseError::Skipped(why)) => {
                writeln!(human, "{:<22} SKIPPED: {why}", case.name).map_err(io)?;
            }
            Err(CaseError::Failed(why)) => {
                writeln!(human, "{:<22} FAILED: {why}", case.name).map_err(io)?;
                failures.push(why);
            }
        }
    }
    if opts.json {
        out.write_all(results_json(&results).as_bytes())
            .map_err(io)?;
    }
    drop(area);
    if failures.is_empty() {
        Ok(results)
    } else {
        Err(failures.join("; "))
    }
}

/// Runs `swap bench ARGS`.
pub fn main(args: &[String]) -> ExitCode {
    match cli::parse_bench(args.iter().cloned(), |n| find_case(n).is_some()) {
        Ok(BenchCommand::Help) => {
            print!("{}", cli::BENCH_USAGE);
            ExitCode::SUCCESS
        }
        Ok(BenchCommand::List) => {
            for c in &CASES {
                println!("{}", c.name);
            }
            ExitCode::SUCCESS
        }
        Ok(BenchCommand::Run(opts)) => {
            let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
            match run(&opts, &mut out, &mut err) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("swap bench: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("swap bench: {e}\n(see swap bench --help)");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iov_iter_swap::testutil::TestDir;

    /// A minimal JSON reader, enough to check the output's shape.
    #[derive(Debug, Clone, PartialEq)]
    enum Json {
        Null,
        Bool(bool),
        Num(f64),
        Str(String),
        Arr(Vec<Json>),
        Obj(Vec<(String, Json)>),
    }

    impl Json {
        fn get(&self, key: &str) -> Option<&Json> {
            match self {
                Json::Obj(kv) => kv.iter().find(|(k, _)| k == key).map(|(_, v)| v),
                _ => None,
            }
        }

        fn num(&self, key: &str) -> f64 {
            match self.get(key) {
                Some(Json::Num(v)) => *v,
                other => panic!("{key}: {other:?}"),
            }
        }

        fn str(&self, key: &str) -> &str {
            match self.get(key) {
                Some(Json::Str(s)) => s,
                other => panic!("{key}: {other:?}"),
            }
        }
    }

    struct Reader<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Reader<'_> {
        fn ws(&mut self) {
            while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
                self.i += 1;
            }
        }

        fn eat(&mut self, b: u8) -> Result<(), String> {
            self.ws();
            if self.s.get(self.i) == Some(&b) {
                self.i += 1;
                Ok(())
            } else {
                Err(format!("expected {:?} at {}", b as char, self.i))
            }
        }

        fn lit(&mut self, word: &str, v: Json) -> Result<Json, String> {
            if self.s[self.i..].starts_with(word.as_bytes()) {
                self.i += word.len();
                Ok(v)
            } else {
                Err(format!("bad literal at {}", self.i))
            }
        }

        fn string(&mut self) -> Result<String, String> {
            self.eat(b'"')?;
            let mut out = String::new();
            loop {
                match *self.s.get(self.i).ok_or("unterminated string")? {
                    b'"' => {
                        self.i += 1;
                        return Ok(out);
                    }
                    b'\\' => {
                        let e = *self.s.get(self.i + 1).ok_or("bad escape")?;
                        self.i += 2;
                        match e {
                            b'"' | b'\\' | b'/' => out.push(e as char),
                            b'n' => out.push('\n'),
                            b'u' => {
                                let hex = std::str::from_utf8(&self.s[self.i..self.i + 4])
                                    .map_err(|e| e.to_string())?;
                                let c = u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
                                out.push(char::from_u32(c).ok_or("bad \\u")?);
                                self.i += 4;
                            }
                            _ => return Err(format!("unknown escape {}", e as char)),
                        }
                    }
                    c if c < 0x20 => return Err("control character in string".into()),
                    _ => {
                        let rest =
                            std::str::from_utf8(&self.s[self.i..]).map_err(|e| e.to_string())?;
                        let ch = rest.chars().next().ok_or("eof")?;
                        out.push(ch);
                        self.i += ch.len_utf8();
                    }
                }
            }
        }

        fn value(&mut self) -> Result<Json, String> {
            self.ws();
            match *self.s.get(self.i).ok_or("unexpected end")? {
                b'n' => self.lit("null", Json::Null),
                b't' => self.lit("true", Json::Bool(true)),
                b'f' => self.lit("false", Json::Bool(false)),
                b'"' => self.string().map(Json::Str),
                b'[' => {
                    self.i += 1;
                    let mut v = Vec::new();
                    self.ws();
                    if self.s.get(self.i) == Some(&b']') {
                        self.i += 1;
                        return Ok(Json::Arr(v));
                    }
                    loop {
                        v.push(self.value()?);
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b']') => {
                                self.i += 1;
                                return Ok(Json::Arr(v));
                            }
                            _ => return Err(format!("bad array at {}", self.i)),
                        }
                    }
                }
                b'{' => {
                    self.i += 1;
                    let mut kv = Vec::new();
                    self.ws();
                    if self.s.get(self.i) == Some(&b'}') {
                        self.i += 1;
                        return Ok(Json::Obj(kv));
                    }
                    loop {
                        self.ws();
                        let k = self.string()?;
                        if kv.iter().any(|(x, _)| *x == k) {
                            return Err(format!("duplicate key {k}"));
                        }
                        self.eat(b':')?;
                        kv.push((k, self.value()?));
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b'}') => {
                                self.i += 1;
                                return Ok(Json::Obj(kv));
                            }
                            _ => return Err(format!("bad object at {}", self.i)),
                        }
                    }
                }
                _ => {
                    let start = self.i;
                    while self
                        .s
                        .get(self.i)
                        .is_some_and(|b| b.is_ascii_digit() || b"+-.eE".contains(b))
                    {
                        self.i += 1;
                    }
                    let t =
                        std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
                    t.parse()
                        .map(Json::Num)
                        .map_err(|_| format!("bad number {t:?} at {start}"))
                }
            }
        }
    }

    fn parse_json(s: &str) -> Result<Json, String> {
        let mut r = Reader {
            s: s.as_bytes(),
            i: 0,
        };
        let v = r.value()?;
        r.ws();
        if r.i != s.len() {
            return Err(format!("trailing data at {}", r.i));
        }
        Ok(v)
    }

    #[test]
    fn the_json_reader_reads_and_refuses() {
        let v = parse_json(r#" {"a": [1, -2.5e1, true, null], "b\"\u0041": {}} "#).unwrap();
        assert_eq!(
            v.get("a"),
            Some(&Json::Arr(vec![
                Json::Num(1.0),
                Json::Num(-25.0),
                Json::Bool(true),
                Json::Null
            ]))
        );
        assert_eq!(v.get("b\"A"), Some(&Json::Obj(vec![])));
        for bad in [
            "[1,]",
            "{\"a\" 1}",
            "[1] 2",
            "{\"a\":1,\"a\":2}",
            "\"x",
            "nul",
        ] {
            assert!(parse_json(bad).is_err(), "{bad}");
        }
    }

    fn sample(case: &Case, cpu: Option<CpuTime>) -> CaseResult {
        CaseResult {
            case: *case,
            backend: IoMode::Sync,
            kiocbs: 50_000,
            pages: 50_000 * case.pages_per_kiocb() as u64,
            errors: 0,
            elapsed: Duration::from_secs(2),
            latency: LatencySummary::of(vec![
                Duration::from_micros(40),
                Duration::from_micros(50),
                Duration::from_micros(900),
            ]),
            cpu,
            ctx_switches: cpu.map(|_| 1234),
        }
    }

    /// Every key of an object, with its type, in one place: what the
    /// compare script reads.
    fn check_object(o: &Json) {
        let Json::Obj(kv) = o else {
            panic!("not an object: {o:?}")
        };
        let keys: Vec<&str> = kv.iter().map(|(k, _)| k.as_str()).collect();
        for k in [
            "name",
            "mode",
            "backend",
            "rw",
            "depth",
            "plugged",
            "pages_per_kiocb",
            "iops",
            "pages_s",
            "mib_s",
            "mean_us",
            "p50_us",
            "p99_us",
            "cpu_s_per_100k",
            "cpu_user_s",
            "cpu_sys_s",
            "ctx_switches",
            "kiocbs",
            "pages",
            "errors",
            "elapsed_s",
        ] {
            assert!(keys.contains(&k), "missing {k} in {keys:?}");
        }
        let case = find_case(o.str("name")).expect("a known case");
        assert_eq!(o.str("mode"), case.mode.name());
        assert_eq!(o.str("rw"), case.rw.name());
        assert_eq!(o.num("depth"), f64::from(case.depth));
        assert_eq!(o.get("plugged"), Some(&Json::Bool(case.plugged)));
        assert_eq!(o.num("pages_per_kiocb"), case.pages_per_kiocb() as f64);
        assert!(["sync", "async-uring"].contains(&o.str("backend")));
        let iops = o.num("iops");
        assert!(iops >= 0.0);
        let pages_s = o.num("pages_s");
        if case.readahead {
            // The window adapts: 1 to 8 pages per kiocb.
            assert!(pages_s >= iops * 0.9 && pages_s <= iops * 8.0 * 1.1 + 1.0);
        } else {
            assert!((pages_s - iops * case.pages_per_kiocb() as f64).abs() <= 0.1 * pages_s + 1.0);
        }
        assert!(o.num("p50_us") <= o.num("p99_us"));
        assert!(o.num("mean_us") >= 0.0);
        assert!(matches!(
            o.get("cpu_s_per_100k"),
            Some(Json::Num(_) | Json::Null)
        ));
    }

    #[test]
    fn json_output_has_the_documented_shape() {
        assert_eq!(results_json(&[]), "[]\n");
        assert_eq!(parse_json(&results_json(&[])), Ok(Json::Arr(vec![])));
        let cpu = CpuTime {
            user: 0.25,
            system: 0.75,
        };
        // Under Miri, the cases up to the first plugged one (formatting and
        // parsing every case is most of this test's time there).
        let n = if cfg!(miri) { 7 } else { CASES.len() };
        let results: Vec<CaseResult> = CASES[..n]
            .iter()
            .enumerate()
            .map(|(i, c)| sample(c, (i % 2 == 0).then_some(cpu)))
            .collect();
        let text = results_json(&results);
        assert!(text.starts_with("[\n  {\"name\": \"swapin-sync-qd1\", \"mode\": \"sync\""));
        assert_eq!(text.lines().count(), n + 2, "one object a line");
        let Json::Arr(v) = parse_json(&text).unwrap() else {
            panic!("not an array")
        };
        assert_eq!(v.len(), n);
        v.iter().for_each(check_object);
        let first = &v[0];
        assert_eq!(first.num("iops"), 25_000.0);
        assert_eq!(first.num("mib_s"), 97.66);
        assert_eq!((first.num("p50_us"), first.num("p99_us")), (50.0, 900.0));
        assert_eq!(first.num("mean_us"), 330.0);
        // 1 CPU second for 50k pages: 2 s per 100k.
        assert_eq!(first.num("cpu_s_per_100k"), 2.0);
        assert_eq!(v[1].get("cpu_s_per_100k"), Some(&Json::Null));
        assert_eq!(first.num("ctx_switches"), 1234.0);
        assert_eq!(v[1].get("ctx_switches"), Some(&Json::Null));
        let plugged = &v[6];
        assert_eq!(plugged.str("name"), "swapout-plugged-sync");
        assert_eq!(plugged.num("pages_s"), 800_000.0);
        assert_eq!(plugged.num("cpu_s_per_100k"), 0.0625);
        // Strings are escaped, non-finite numbers are null.
        assert_eq!(json_str("a\"b\\c\n"), r#""a\"b\\c\u000a""#);
        assert_eq!(json_num(f64::NAN, 1), "null");
        // The human line carries the same numbers.
        let line = result_line(&results[0]);
        assert!(line.starts_with("swapin-sync-qd1"), "{line}");
        assert!(
            line.contains(" 25000 ") && line.ends_with(" 2.000"),
            "{line}"
        );
        assert_eq!(header_line().split_whitespace().next(), Some("case"));
    }

    #[test]
    #[cfg_attr(miri, ignore = "/proc/thread-self")]
    fn stat_times_are_fields_14_and_15() {
        let line = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 97 0 0 0 123 45 0 0 20 0 1 0 9 \
                    1000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat_times(line), Some((123, 45)));
        assert_eq!(parse_stat_times("1 (x) S 1 2"), None);
        assert_eq!(parse_stat_times("no paren"), None);
        let status = "Name:\tswap\nvoluntary_ctxt_switches:\t10\nnonvoluntary_ctxt_switches:\t 3\n";
        assert_eq!(parse_ctx_switches(status), Some(13));
        assert_eq!(parse_ctx_switches("voluntary_ctxt_switches: 1\n"), None);
        assert!(thread_ctx_switches().is_some());
        let now = thread_cpu_time().expect("/proc/thread-self/stat on Linux");
        // Burn some CPU: the thread's time does not go backwards.
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let later = thread_cpu_time().unwrap();
        assert!(later.total() >= now.total());
    }

    #[test]
    fn cases_are_unique_and_match_the_usage() {
        for (i, c) in CASES.iter().enumerate() {
            assert!(CASES[..i].iter().all(|d| d.name != c.name), "{}", c.name);
            assert!(cli::BENCH_USAGE.contains(c.name), "{}", c.name);
            assert_eq!(find_case(c.name), Some(c));
            assert_eq!(c.plugged, c.name.contains("plugged"));
            assert_eq!(c.readahead, c.name.contains("readahead"));
            assert_eq!(c.rw == Rw::Read, c.name.starts_with("swapin"));
            assert!(c.name.contains(c.mode.name()));
        }
        assert_eq!(find_case("nope"), None);
    }

    /// The whole subcommand on a small real swap file, every case for a
    /// moment, JSON parsed back; then `--prepare`, and a single `--case`.
    #[test]
    #[cfg_attr(miri, ignore = "O_DIRECT file, io_uring")]
    fn bench_runs_every_case_on_a_real_file() {
        let dir = TestDir::new("bench");
        if let Err(e) = area::direct_io_works(dir.path()) {
            eprintln!("\n***** SKIPPED bench smoke test: O_DIRECT refused: {e} *****\n");
            return;
        }
        let path = dir.join("bench.swap");
        let opts = BenchOptions {
            file: Some(path.clone()),
            size: Some(4 << 20),
            time: Duration::from_millis(40),
            json: true,
            seed: Some(7),
            ..BenchOptions::default()
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let results = run(&opts, &mut out, &mut err).unwrap();
        let (out, err) = (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        );
        assert!(path.exists(), "--file areas are kept");
        assert!(err.contains("1024 slots of 4 KiB (1023 usable)"), "{err}");
        if err.contains("SKIPPED") {
            eprintln!(
                "\n***** bench smoke test: async cases SKIPPED (io_uring unavailable) *****\n{err}"
            );
        } else {
            assert_eq!(results.len(), CASES.len(), "{err}");
        }
        let Json::Arr(v) = parse_json(&out).unwrap_or_else(|e| panic!("{e}: {out}")) else {
            panic!("not an array: {out}")
        };
        assert_eq!(v.len(), results.len());
        assert!(v.len() >= 3, "the sync cases always run: {err}");
        for (o, r) in v.iter().zip(&results) {
            check_object(o);
            assert_eq!(o.str("name"), r.case.name);
            assert!(r.kiocbs > 0 && r.errors == 0, "{}", result_line(r));
            if r.case.readahead {
                assert!(r.pages >= r.kiocbs && r.pages <= r.kiocbs * READAHEAD_PAGES as u64);
            } else {
                assert_eq!(r.pages, r.kiocbs * r.case.pages_per_kiocb() as u64);
            }
            assert!(r.latency.count as u64 == r.kiocbs, "{}", r.case.name);
            assert!(r.elapsed >= opts.time);
            assert!(err.contains(&result_line(r)), "human lines go to stderr");
            // Little's law: a closed loop of `depth` kiocbs has no more in
            // flight on average (the drain is inside the timed span).
            let in_flight = r.iops() * r.latency.mean.as_secs_f64();
            assert!(
                in_flight > 0.0 && in_flight <= f64::from(r.case.depth) + 0.05,
                "{}: {in_flight} kiocbs in flight on average at depth {}",
                r.case.name,
                r.case.depth
            );
        }

        // --prepare: the geometry the compare script reads.
        let prep = BenchOptions {
            prepare: true,
            size: None,
            ..opts.clone()
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert!(run(&prep, &mut out, &mut err).unwrap().is_empty());
        let g = parse_json(&String::from_utf8(out).unwrap()).unwrap();
        assert_eq!((g.num("max_pages"), g.num("usable")), (1024.0, 1023.0));
        assert_eq!(g.num("file_bytes"), f64::from(4 << 20));
        assert_eq!(g.get("created"), Some(&Json::Bool(false)));

        // One case, human output.
        let one = BenchOptions {
            cases: vec!["swapout-plugged-sync".into()],
            json: false,
            ..prep
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let r = run(
            &BenchOptions {
                prepare: false,
                ..one
            },
            &mut out,
            &mut err,
        )
        .unwrap();
        assert_eq!(r.len(), 1);
        let out = String::from_utf8(out).unwrap();
        assert_eq!(out.lines().count(), 3, "area, header, one case:\n{out}");
        assert!(
            out.lines()
                .nth(2)
                .unwrap()
                .starts_with("swapout-plugged-sync")
        );
        assert!(r[0].pages >= 32 && r[0].pages % 32 == 0);
    }
}
