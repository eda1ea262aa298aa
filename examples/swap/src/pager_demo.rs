//! The userfaultfd mode of the demo: a region of this process's memory,
//! filled with checksummed pages, paged by the library's
//! `iov_iter_swap::uffd::Pager` through the swap device.
//!
//! Threads: the fault thread (`Pager::serve`, hardened with
//! `PR_SET_IO_FLUSHER` and `mlock` where allowed), two workers that read
//! and verify pages at random and in runs, and a reclaim thread that keeps
//! at most a quarter of the region resident, swapping out runs of cold
//! pages (a clock over per-page touch epochs) through the pager. The
//! workers only read, which is what makes reclaim's copy-then-drop safe
//! (see the pager's docs). At the end a pass over the whole region checks
//! every byte.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use iov_iter::PAGE_SIZE;
use iov_iter_swap::content::{check_page, fill_page};
use iov_iter_swap::swapio::{SwapCounters, SwapDevice};
use iov_iter_swap::swapmap::SlotRng;
use iov_iter_swap::uffd::{
    HandlerSetup, PageState, Pager, PagerConfig, PagerStats, RegionKind, harden_handler_thread,
};

use iov_iter_swap::latency::LatencySummary;

/// Pages of the region by default (32 MiB).
pub const DEFAULT_PAGES: usize = 8192;

/// Worker threads.
const WORKERS: usize = 2;

/// Longest run a worker touches, and a reclaim run.
const MAX_RUN: usize = 32;

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct UffdConfig {
    /// The region's memory.
    pub kind: RegionKind,
    /// Its size in pages.
    pub pages: usize,
    /// Page contents seed.
    pub seed: u64,
    /// One page in this many is all zeros.
    pub zero_every: u64,
    /// Page touches per worker.
    pub touches: usize,
}

/// The outcome of one sub-mode.
#[derive(Debug)]
pub enum Outcome {
    /// It ran.
    Ran(Box<UffdReport>),
    /// userfaultfd is not available here: why.
    Skipped(String),
}

/// What one sub-mode did.
#[derive(Debug)]
pub struct UffdReport {
    /// The region's memory.
    pub kind: RegionKind,
    /// Pages in the region.
    pub pages: usize,
    /// Pages the workers touched.
    pub touched: u64,
    /// Workers and final pass, from the first touch to the last check.
    pub elapsed: Duration,
    /// The pager's counters.
    pub stats: PagerStats,
    /// The device's counters.
    pub counters: SwapCounters,
    /// Kiocbs in flight at most.
    pub max_in_flight: u64,
    /// Fault latencies (event read to wake).
    pub latency: LatencySummary,
    /// Whether the userfaultfd is `UFFD_USER_MODE_ONLY`.
    pub user_mode_only: bool,
    /// The fault thread's hardening.
    pub setup: Option<HandlerSetup>,
    /// Pages verified byte for byte in the final pass.
    pub verified: usize,
    /// Zero pages among them.
    pub zero_pages: usize,
    /// Wrong pages seen (by workers or the final pass), the first few.
    pub mismatches: Vec<String>,
    /// How many wrong pages in all.
    pub mismatch_count: usize,
}

impl UffdReport {
    /// Whether every page came back intact.
    pub fn ok(&self) -> bool {
        self.mismatch_count == 0 && self.verified == self.pages && self.stats.poisoned == 0
    }

    /// The mode's name in the verdict line.
    pub fn name(&self) -> String {
        format!("uffd-{}", self.kind)
    }
}

fn fmt_dur(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} us")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

impl fmt::Display for UffdReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stats;
        let c = &self.counters;
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        writeln!(
            f,
            "  faults    {} served in {:.3} s: {:.0} faults/s ({} MISSING, {} MINOR, {} joined \
             a swap-in on its way), latency p50 {} p99 {} max {}",
            s.served,
            self.elapsed.as_secs_f64(),
            s.served as f64 / secs,
            s.missing,
            s.minor,
            s.joined,
            fmt_dur(self.latency.p50),
            fmt_dur(self.latency.p99),
            fmt_dur(self.latency.max),
        )?;
        let mapping = match self.kind {
            RegionKind::Anon => format!("UFFDIO_COPY {}", s.copies),
            RegionKind::Memfd => format!(
                "UFFDIO_CONTINUE {} (zero copy: {} read by the device into the page cache, \
                 {} from the swap cache, {} zero), UFFDIO_COPY {}",
                s.continues, s.into_read, s.into_cached, s.into_zero, s.copies
            ),
        };
        writeln!(
            f,
            "  paging    {} pages touched by {WORKERS} workers; swapped out {} (pswpout {}), \
             swapped in {} (pswpin {}), {mapping}",
            self.touched, s.reclaimed, c.pswpout, s.swapped_in, c.pswpin,
        )?;
        writeln!(
            f,
            "  batching  reads: {} kiocbs for {} pages ({} merged, max {}), {} swap-ins and \
             {} kiocbs in flight at most; writes: {} kiocbs ({} merged)",
            c.read_batches,
            c.read_pages(),
            c.merged_read_pages,
            c.max_read_batch(),
            s.max_swapins_in_flight,
            self.max_in_flight,
            c.write_batches,
            c.merged_write_pages,
        )?;
        writeln!(
            f,
            "  ahead     fault-around {} pages, {} faults found theirs on its way ({} windows \
             started early), {} sequential streams grown; device readahead {} pages, {} hits; \
             swap-cache hits {}",
            s.fault_around,
            s.fault_around_hits,
            s.async_readahead,
            s.streams,
            c.readahead_pages,
            c.readahead_hits,
            c.cache_hits,
        )?;
        writeln!(
            f,
            "  zero      {} zero pages skipped on swap-out (no write), {} swapped in as zeros \
             (no read)",
            c.zero_pages_out, c.zero_pages_in,
        )?;
        writeln!(
            f,
            "  retries   EEXIST {} EAGAIN {} EBUSY {}; read errors {} retried {} poisoned {}; \
             reclaim skipped {} failed {}",
            s.eexist,
            s.eagain,
            s.busy,
            c.read_errors,
            s.read_retries,
            s.poisoned,
            s.reclaim_skipped,
            s.reclaim_failed,
        )?;
        let setup = match &self.setup {
            Some(h) => format!(
                "PR_SET_IO_FLUSHER {}, mlock(fault thread stack) {}",
                match h.io_flusher {
                    Ok(()) => "on".to_owned(),
                    Err(e) => format!("refused ({e}: needs CAP_SYS_RESOURCE), going on"),
                },
                match h.mlock_stack {
                    Ok(()) => "ok".to_owned(),
                    Err(e) => format!("refused ({e})"),
                }
            ),
            None => "not run".to_owned(),
        };
        writeln!(
            f,
            "  handler   userfaultfd {}; {setup}",
            if self.user_mode_only {
                "UFFD_USER_MODE_ONLY (no privilege needed)"
            } else {
                "plain"
            },
        )?;
        let verdict = if self.ok() { "OK" } else { "FAILED" };
        write!(
            f,
            "  verify    {verdict}: {}/{} pages verified byte for byte after the run ({} zero \
             pages), {} wrong pages seen",
            self.verified, self.pages, self.zero_pages, self.mismatch_count,
        )?;
        for m in &self.mismatches {
            write!(f, "\n    mismatch: {m}")?;
        }
        Ok(())
    }
}

fn is_zero(cfg: &UffdConfig, i: usize) -> bool {
    cfg.zero_every > 0 && (i as u64) % cfg.zero_every == 0
}

fn init(cfg: &UffdConfig, i: usize, bytes: &mut [u8; PAGE_SIZE]) {
    if is_zero(cfg, i) {
        bytes.fill(0);
    } else {
        fill_page(bytes, i as u64, cfg.seed);
    }
}

fn verify(cfg: &UffdConfig, i: usize, bytes: &[u8; PAGE_SIZE]) -> Result<(), String> {
    if is_zero(cfg, i) {
        match bytes.iter().position(|&b| b != 0) {
            None => Ok(()),
            Some(at) => Err(format!("zero page {i}: byte {at} set")),
        }
    } else {
        check_page(bytes, i as u64, cfg.seed).map_err(|m| format!("page {i}: {m}"))
    }
}

/// Runs one sub-mode on `dev` (which the pager takes over).
///
/// # Errors
///
/// The pager failing while it runs (not: userfaultfd unavailable, which
/// is [`Outcome::Skipped`]).
pub fn run(dev: SwapDevice, cfg: &UffdConfig) -> Result<Outcome, String> {
    let pages = cfg.pages.min(dev.usable_slots() as usize);
    let pcfg = PagerConfig::new(cfg.kind, pages);
    let pager = match Pager::new(pcfg, dev, |i, b| init(cfg, i, b)) {
        Ok(p) => p,
        Err(e) if e.is_unavailable() => return Ok(Outcome::Skipped(e.to_string())),
        Err(e) => return Err(e.to_string()),
    };
    let stop = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    // Clock epochs: a page touched in the current or the last epoch is hot.
    let epoch = AtomicU32::new(2);
    let touched_at: Vec<AtomicU32> = (0..pages).map(|_| AtomicU32::new(0)).collect();
    let touched = AtomicU64::new(0);
    let mut setup = None;
    let mut mismatches: Vec<String> = Vec::new();
    let mut verified = 0;
    let mut zero_pages = 0;
    let serve_result = std::thread::scope(|s| {
        let server = s.spawn(|| {
            let h = harden_handler_thread();
            (h, pager.serve(&stop))
        });
        // Three quarters of the region out before the workers start.
        let all: Vec<usize> = (0..pages).collect();
        pager.reclaim(&all[..pages * 3 / 4]);
        let t0 = Instant::now();
        let reclaimer = s.spawn(|| {
            let target = (pages / 4).max(1);
            let mut hand = 0usize;
            while !done.load(Ordering::Acquire) {
                if pager.resident_pages() <= target {
                    std::thread::sleep(Duration::from_micros(100));
                    continue;
                }
                let now = epoch.load(Ordering::Relaxed);
                let run: Vec<usize> = (hand..(hand + MAX_RUN).min(pages))
                    .filter(|&i| {
                        pager.page_state(i) == PageState::Resident
                            && touched_at[i].load(Ordering::Relaxed) + 1 < now
                    })
                    .collect();
                hand += MAX_RUN;
                if hand >= pages {
                    hand = 0;
                    epoch.fetch_add(1, Ordering::Relaxed);
                }
                pager.reclaim(&run);
            }
        });
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (touched_at, touched, epoch, pager) = (&touched_at, &touched, &epoch, &pager);
                s.spawn(move || {
                    let mut rng = SlotRng::new(cfg.seed ^ (0x5eed + w as u64));
                    let mut buf = Box::new([0u8; PAGE_SIZE]);
                    let mut bad = Vec::new();
                    let mut left = cfg.touches;
                    while left > 0 {
                        let start = rng.below(pages as u32) as usize;
                        let len = if rng.below(2) == 0 {
                            1
                        } else {
                            1 + rng.below(MAX_RUN as u32) as usize
                        };
                        let end = (start + len).min(pages);
                        for (i, at) in touched_at.iter().enumerate().take(end).skip(start) {
                            at.store(epoch.load(Ordering::Relaxed), Ordering::Relaxed);
                            pager.read_page(i, &mut buf);
                            if let Err(e) = verify(cfg, i, &buf) {
                                bad.push(e);
                            }
                            touched.fetch_add(1, Ordering::Relaxed);
                            left = left.saturating_sub(1);
                        }
                    }
                    bad
                })
            })
            .collect();
        for w in workers {
            mismatches.extend(w.join().expect("worker"));
        }
        done.store(true, Ordering::Release);
        reclaimer.join().expect("reclaimer");
        // Every byte of the region, at the end.
        let mut buf = Box::new([0u8; PAGE_SIZE]);
        for i in 0..pages {
            pager.read_page(i, &mut buf);
            match verify(cfg, i, &buf) {
                Ok(()) => verified += 1,
                Err(e) => mismatches.push(e),
            }
            zero_pages += usize::from(is_zero(cfg, i));
        }
        let elapsed = t0.elapsed();
        stop.store(true, Ordering::Release);
        let (h, r) = server.join().expect("fault thread");
        setup = Some(h);
        r.map(|()| elapsed)
    });
    let elapsed = serve_result.map_err(|e| format!("fault thread: {e}"))?;
    let mismatch_count = mismatches.len();
    mismatches.truncate(8);
    Ok(Outcome::Ran(Box::new(UffdReport {
        kind: cfg.kind,
        pages,
        touched: touched.into_inner(),
        elapsed,
        stats: pager.stats(),
        counters: pager.device().counters(),
        max_in_flight: pager.device().max_in_flight(),
        latency: pager.take_latencies(),
        user_mode_only: pager.uffd().user_mode_only(),
        setup,
        verified,
        zero_pages,
        mismatches,
        mismatch_count,
    })))
}
