//! The demo workload: checksummed pages swapped out (contiguous runs and
//! random slots, interleaved, so the plug both merges and flushes), dropped
//! from memory, swapped back in (the runs in slot order, the runs and
//! single pages in random order, so readahead both hits and stays off) and
//! verified byte for byte;
//! and the statistics it reports (throughput, IOPS, latency percentiles,
//! batching, counters).

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use iov_iter::{PAGE_SIZE, PageFlags, PageRef};
use iov_iter_swap::content::{
    Mismatch, check_page, check_swapped_in, check_zero, make_page, plan, shuffle, zero_page,
};
use iov_iter_swap::latency::LatencySummary;
use iov_iter_swap::swapio::{IoMode, SwapCounters, SwapDevice, SwapError, SwapIn, SwapPlug};
use iov_iter_swap::swapmap::{Slot, SlotRng};

/// Throughput and latency of one phase.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PhaseReport {
    /// Pages moved.
    pub pages: u64,
    /// Kiocbs submitted.
    pub kiocbs: u64,
    /// Wall time of the phase.
    pub elapsed: Duration,
    /// Per-kiocb latency.
    pub latency: LatencySummary,
    /// The most kiocbs in flight at once during the phase.
    pub max_in_flight: u64,
}

impl PhaseReport {
    fn secs(&self) -> f64 {
        self.elapsed.as_secs_f64().max(1e-9)
    }

    /// MiB per second.
    pub fn mib_per_s(&self) -> f64 {
        self.pages as f64 * PAGE_SIZE as f64 / (1024.0 * 1024.0) / self.secs()
    }

    /// Kiocbs per second.
    pub fn iops(&self) -> f64 {
        self.kiocbs as f64 / self.secs()
    }
}

/// Parameters of [`run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadConfig {
    /// Pages to swap out and in.
    pub pages: usize,
    /// Seed of the page contents, the slot choice and the orders.
    pub seed: u64,
    /// Swap-in handles outstanding before the oldest is waited for (the
    /// read queue depth).
    pub window: usize,
    /// Longest contiguous run in the plan.
    pub max_run: u32,
    /// Rounds of retrying failed writes and reads.
    pub retries: u32,
    /// Every `zero_every`-th page is all zeros (0: none): the swap cache's
    /// zero map skips its write and fills it on swap-in.
    pub zero_every: u64,
}

impl WorkloadConfig {
    fn is_zero(&self, index: u64) -> bool {
        self.zero_every > 0 && index % self.zero_every == self.zero_every - 1
    }

    /// Checks a swapped-in page against what page `index` was.
    fn check(&self, page: &iov_iter::Page, index: u64) -> Result<(), Mismatch> {
        if self.is_zero(index) {
            check_zero(page)
        } else {
            check_swapped_in(page, index, self.seed)
        }
    }
}

impl Default for WorkloadConfig {
    fn default() -> WorkloadConfig {
        WorkloadConfig {
            pages: 1024,
            seed: 0x5eed_0000_5a9d_3a05,
            window: 64,
            max_run: 48,
            retries: 2,
            zero_every: 0,
        }
    }
}

/// What one run of the workload did.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The I/O path.
    pub mode: IoMode,
    /// Pages in the workload.
    pub pages: usize,
    /// The swap-out phase (first attempt of every page).
    pub swap_out: PhaseReport,
    /// The swap-in phase (first attempt of every page).
    pub swap_in: PhaseReport,
    /// Pages swapped in and verified byte for byte.
    pub verified: u64,
    /// Pages swapped in with wrong contents.
    pub mismatches: u64,
    /// The first few of them.
    pub first_mismatches: Vec<(Slot, Mismatch)>,
    /// Pages whose write still failed after the retries (kept in memory,
    /// still dirty).
    pub unwritten: u64,
    /// Of those, pages whose memory copy is intact.
    pub unwritten_intact: u64,
    /// Pages whose read still failed after the retries.
    pub unread: u64,
    /// Pages still under writeback, or still referenced by the I/O path,
    /// when they were to be dropped.
    pub leaked: u64,
    /// Slots still allocated at the end.
    pub slots_left: u32,
    /// The device's counters at the end.
    pub counters: SwapCounters,
    /// The first error messages.
    pub errors: Vec<String>,
}

impl RunReport {
    /// Every page came back intact and nothing leaked.
    pub fn ok(&self) -> bool {
        self.verified == self.pages as u64
            && self.mismatches == 0
            && self.unwritten == 0
            && self.unread == 0
            && self.leaked == 0
            && self.slots_left == 0
    }
}

fn fmt_dur(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = |f: &mut fmt::Formatter<'_>, name: &str, p: &PhaseReport| {
            writeln!(
                f,
                "  {name:<9} {} pages in {:.3} s: {:.1} MiB/s, {:.0} IOPS ({} kiocbs, \
                 in flight max {}), latency p50 {} p99 {} max {}",
                p.pages,
                p.elapsed.as_secs_f64(),
                p.mib_per_s(),
                p.iops(),
                p.kiocbs,
                p.max_in_flight,
                fmt_dur(p.latency.p50),
                fmt_dur(p.latency.p99),
                fmt_dur(p.latency.max),
            )
        };
        phase(f, "swap-out", &self.swap_out)?;
        phase(f, "swap-in", &self.swap_in)?;
        let c = &self.counters;
        let avg = |pages: u64, batches: u64| pages as f64 / batches.max(1) as f64;
        writeln!(
            f,
            "  batching  writes: {} kiocbs for {} pages ({} merged, avg {:.2}, max {}); \
             reads: {} kiocbs for {} pages ({} merged, max {})",
            c.write_batches,
            c.written_pages(),
            c.merged_write_pages,
            avg(c.written_pages(), c.write_batches),
            c.max_write_batch(),
            c.read_batches,
            c.read_pages(),
            c.merged_read_pages,
            c.max_read_batch(),
        )?;
        writeln!(
            f,
            "  counters  pswpout {} pswpin {} write_errors {} read_errors {} \
             redirtied {} read_failed {}",
            c.pswpout,
            c.pswpin,
            c.write_errors,
            c.read_errors,
            c.redirtied_pages,
            c.read_failed_pages,
        )?;
        writeln!(
            f,
            "  cache     swap-cache hits {} readahead {} pages, {} hits, {} evicted; \
             zero pages {} out {} in; deferred frees {}",
            c.cache_hits,
            c.readahead_pages,
            c.readahead_hits,
            c.readahead_evicted,
            c.zero_pages_out,
            c.zero_pages_in,
            c.deferred_frees,
        )?;
        let verdict = if self.ok() { "OK" } else { "FAILED" };
        write!(
            f,
            "  verify    {verdict}: {}/{} pages verified byte for byte, {} mismatches, \
             {} unwritten ({} intact in memory), {} unread, {} leaked, {} slots left",
            self.verified,
            self.pages,
            self.mismatches,
            self.unwritten,
            self.unwritten_intact,
            self.unread,
            self.leaked,
            self.slots_left,
        )?;
        for (slot, m) in &self.first_mismatches {
            write!(f, "\n    mismatch at {slot}: {m}")?;
        }
        for e in &self.errors {
            write!(f, "\n    error: {e}")?;
        }
        Ok(())
    }
}

/// Waits for the oldest outstanding swap-in, unplugging first if it is
/// still in the plug.
fn wait_oldest(
    window: &mut VecDeque<(SwapIn, u64)>,
    plug: &mut SwapPlug,
    out: &mut Vec<(Slot, u64, PageRef, Result<(), SwapError>)>,
) {
    if let Some((h, index)) = window.pop_front() {
        if h.is_plugged() {
            plug.read_unplug();
        }
        let slot = h.slot();
        let (page, r) = h.wait_page();
        out.push((slot, index, page, r));
    }
}

/// Runs the workload on a fresh `dev` (its slots must be free):
///
/// 1. plan the slots ([`plan`]) and fill `cfg.pages` pages with checksummed
///    patterns, dirty and uptodate;
/// 2. swap them all out through one plug, unplug, drain (timed); retry the
///    pages a failed write left dirty;
/// 3. drop them from memory, checking that writeback ended and that the
///    I/O path kept no reference;
/// 4. swap them in, the contiguous runs in slot order and the runs and
///    single pages shuffled, `cfg.window` reads outstanding
///    (timed); retry failed reads;
/// 5. verify every byte, hand the pages back to the device's page pool,
///    free every slot.
///
/// # Errors
///
/// [`SwapError::NoSpace`] when the area is too small, or a submission or
/// backend error. I/O failures are not errors: they are counted.
pub fn run(dev: &SwapDevice, cfg: &WorkloadConfig) -> Result<RunReport, SwapError> {
    let mut rng = SlotRng::new(cfg.seed);
    let order = plan(dev, cfg.pages, cfg.max_run, &mut rng)?;
    let pages: Vec<PageRef> = (0..order.len())
        .map(|i| {
            if cfg.is_zero(i as u64) {
                zero_page()
            } else {
                make_page(i as u64, cfg.seed)
            }
        })
        .collect();
    let _ = dev.take_latencies();
    let c0 = dev.counters();

    // 2. Swap-out.
    dev.reset_max_in_flight();
    let t = Instant::now();
    {
        let mut plug = SwapPlug::new();
        for (page, &slot) in pages.iter().zip(&order) {
            dev.swap_writepage(PageRef::clone(page), slot, Some(&mut plug))?;
        }
        plug.unplug();
    }
    dev.drain()?;
    let c1 = dev.counters();
    let swap_out = PhaseReport {
        pages: pages.len() as u64,
        kiocbs: c1.write_batches - c0.write_batches,
        elapsed: t.elapsed(),
        latency: dev.take_latencies().write,
        max_in_flight: dev.max_in_flight(),
    };
    for _ in 0..cfg.retries {
        let dirty: Vec<usize> = (0..pages.len())
            .filter(|&i| pages[i].test(PageFlags::DIRTY))
            .collect();
        if dirty.is_empty() {
            break;
        }
        let mut plug = SwapPlug::new();
        for i in dirty {
            dev.swap_writepage(PageRef::clone(&pages[i]), order[i], Some(&mut plug))?;
        }
        plug.unplug();
        drop(plug);
        dev.drain()?;
    }

    // 3. Drop from memory what is safely on the device.
    let (mut unwritten, mut unwritten_intact, mut leaked) = (0u64, 0u64, 0u64);
    let mut entries: Vec<(Slot, u64)> = Vec::with_capacity(pages.len());
    for (i, page) in pages.into_iter().enumerate() {
        if page.test(PageFlags::WRITEBACK) || PageRef::strong_count(&page) != 1 {
            leaked += 1;
        }
        if page.test(PageFlags::DIRTY) {
            // The write failed for good: the data is still here, in memory.
            unwritten += 1;
            if cfg.check(&page, i as u64).is_ok()
                || check_page(page.as_bytes(), i as u64, cfg.seed).is_ok()
            {
                unwritten_intact += 1;
            }
            dev.swap_free(order[i])?;
        } else {
            entries.push((order[i], i as u64));
        }
    }
    let _ = dev.take_latencies();

    // 4. Swap-in: runs in slot order (readahead's case), the runs and
    // single pages in random order (readahead stays off).
    let mut units: Vec<Vec<(Slot, u64)>> = Vec::new();
    for e in entries.drain(..) {
        match units.last_mut() {
            Some(u) if u.last().is_some_and(|l| l.0.index() + 1 == e.0.index()) => u.push(e),
            _ => units.push(vec![e]),
        }
    }
    shuffle(&mut units, &mut rng);
    let entries: Vec<(Slot, u64)> = units.into_iter().flatten().collect();
    let c2 = dev.counters();
    dev.reset_max_in_flight();
    let t = Instant::now();
    let mut results = Vec::with_capacity(entries.len());
    {
        let mut plug = SwapPlug::new();
        let mut window = VecDeque::with_capacity(cfg.window + 1);
        for &(slot, index) in &entries {
            window.push_back((dev.swap_readpage(slot, Some(&mut plug))?, index));
            if window.len() > cfg.window.max(1) {
                wait_oldest(&mut window, &mut plug, &mut results);
            }
        }
        plug.unplug();
        while !window.is_empty() {
            wait_oldest(&mut window, &mut plug, &mut results);
        }
    }
    let c3 = dev.counters();
    let swap_in = PhaseReport {
        pages: entries.len() as u64,
        kiocbs: c3.read_batches - c2.read_batches,
        elapsed: t.elapsed(),
        latency: dev.take_latencies().read,
        max_in_flight: dev.max_in_flight(),
    };
    for _ in 0..cfg.retries {
        for r in results.iter_mut().filter(|r| r.3.is_err()) {
            let (page, outcome) = dev.swap_readpage(r.0, None)?.wait_page();
            // The failed read's page holds nothing worth keeping.
            dev.put_page(std::mem::replace(&mut r.2, page));
            r.3 = outcome;
        }
    }

    // 5. Verify and free.
    let (mut verified, mut mismatches, mut unread) = (0u64, 0u64, 0u64);
    let mut first_mismatches = Vec::new();
    for (slot, index, page, outcome) in results {
        if outcome.is_err() {
            unread += 1;
        } else {
            match cfg.check(&page, index) {
                Ok(()) => verified += 1,
                Err(m) => {
                    mismatches += 1;
                    if first_mismatches.len() < 8 {
                        first_mismatches.push((slot, m));
                    }
                }
            }
        }
        // Verified (or failed): the data is no longer needed.
        dev.put_page(page);
        dev.swap_free(slot)?;
    }
    Ok(RunReport {
        mode: dev.mode(),
        pages: cfg.pages,
        swap_out,
        swap_in,
        verified,
        mismatches,
        first_mismatches,
        unwritten,
        unwritten_intact,
        unread,
        leaked,
        slots_left: dev.used_slots(),
        counters: dev.counters(),
        errors: dev.error_log(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice};
    use iov_iter_swap::activate::{create_swap_file, open_swap_file};
    use iov_iter_swap::header::{Label, Uuid};
    use iov_iter_swap::testutil::TestDir;
    use std::sync::Arc;

    /// Under Miri, smaller runs: filling and checking one page's pattern
    /// takes about a second there.
    const MIRI: bool = cfg!(miri);

    /// The whole workload, end to end, on a real O_DIRECT swap file, in
    /// every mode this build has.
    #[test]
    #[cfg_attr(miri, ignore = "O_DIRECT file, io_uring")]
    fn end_to_end_on_a_real_file() {
        let dir = TestDir::new("workload-e2e");
        let path = dir.join("swapfile");
        create_swap_file(&path, 1 << 20, &Label::new("e2e").unwrap(), Uuid::NIL).unwrap();
        let sf = open_swap_file(&path).unwrap();
        let mut modes = vec![IoMode::Sync, IoMode::AsyncInline];
        if IoMode::URING_AVAILABLE {
            modes.push(IoMode::Uring);
        }
        for mode in modes {
            let dev = match SwapDevice::open(&sf, mode, 32) {
                Ok(dev) => dev,
                Err(e) => {
                    eprintln!("\n***** SKIPPED workload end to end, {mode}: {e} *****\n");
                    continue;
                }
            };
            let cfg = WorkloadConfig {
                pages: 240,
                window: 32,
                zero_every: 16,
                ..WorkloadConfig::default()
            };
            let report = run(&dev, &cfg).unwrap();
            assert!(report.ok(), "{mode}:\n{report}");
            assert_eq!(report.verified, 240);
            assert_eq!(report.swap_out.pages, 240);
            let c = report.counters;
            let zero = 240 / 16;
            assert_eq!(c.pswpout, 240 - zero, "zero pages are not written");
            assert_eq!((c.zero_pages_out, c.zero_pages_in), (zero, zero));
            // Pages read, readahead included (PSWPIN counts both).
            assert_eq!(c.pswpin, c.read_pages());
            assert!(c.pswpin + c.readahead_hits >= 240 - zero, "{report}");
            assert!(c.readahead_hits > 0, "runs are read ahead: {report}");
            assert!(c.merged_write_pages > 0, "contiguous runs merge");
            assert_eq!(report.swap_out.kiocbs, c.write_batches);
            assert_eq!(report.swap_out.latency.count as u64, c.write_batches);
            assert_eq!(report.swap_in.latency.count as u64, c.read_batches);
            let text = report.to_string();
            assert!(text.contains("verify    OK: 240/240"), "{text}");
            let in_flight = (report.swap_out.max_in_flight, report.swap_in.max_in_flight);
            match mode {
                IoMode::Sync | IoMode::AsyncInline => assert_eq!(in_flight, (1, 1), "{mode}"),
                // Many kiocbs overlap, never more than the queue's depth
                // (how many depends on how fast the device completes).
                IoMode::Uring => {
                    assert!((2..=32).contains(&in_flight.0), "{mode} {in_flight:?}");
                    assert!((2..=32).contains(&in_flight.1), "{mode} {in_flight:?}");
                }
            }
            // The area is reusable: every slot was freed.
            assert_eq!(dev.used_slots(), 0);
        }
        // The demo never touches the header.
        assert_eq!(open_swap_file(&path).unwrap().label().as_str(), Some("e2e"));
    }

    /// The same trait calls on a RAM device that keeps async kiocbs in
    /// flight and completes them in a shuffled order: every page still
    /// comes back, and many kiocbs were in flight at once.
    #[test]
    fn out_of_order_completions_lose_nothing() {
        use iov_iter::backend::mem::PendingOrder;
        let mem = Arc::new(MemDevice::new(600 * PAGE_SIZE));
        mem.defer_completions(Some(PendingOrder::Shuffled(7)));
        let dev = SwapDevice::new(mem.clone(), IoMode::Uring, 600).unwrap();
        dev.set_page_cluster(0); // every swap-in its own read
        let cfg = WorkloadConfig {
            pages: if MIRI { 8 } else { 300 },
            window: if MIRI { 3 } else { 16 },
            ..WorkloadConfig::default()
        };
        let report = run(&dev, &cfg).unwrap();
        assert!(report.ok(), "{report}");
        assert!(
            report.swap_out.max_in_flight > cfg.window as u64 / 2,
            "{report}"
        );
        assert_eq!(report.swap_in.max_in_flight, cfg.window as u64, "{report}");
        assert_eq!(mem.pending(), 0);
    }

    /// The workload's own accounting under faults: retries recover what
    /// failed, and a run whose faults outlast the retries says so.
    #[test]
    fn run_reports_and_retries_failures() {
        let mem = Arc::new(MemDevice::new(600 * PAGE_SIZE));
        let dev = SwapDevice::new(mem.clone(), IoMode::AsyncInline, 600).unwrap();
        dev.set_page_cluster(0); // the faults' sequence numbers count single reads
        // A few transient faults: the retries recover. (Under Miri, fewer
        // pages, the last two faults still in the swap-in.)
        let (pages, late, few) = if MIRI { (6, 7, 2) } else { (500, 400, 50) };
        for seq in [3, 10, late, late + 1] {
            mem.inject(FaultPlan::at_seq(seq, Fault::EIO));
        }
        let cfg = WorkloadConfig {
            pages,
            ..WorkloadConfig::default()
        };
        let report = run(&dev, &cfg).unwrap();
        assert!(report.ok(), "{report}");
        assert!(report.counters.write_errors + report.counters.read_errors >= 3);
        assert!(!report.errors.is_empty());
        // Every write fails, every time: nothing is dropped from memory.
        let before = report.counters.pswpout;
        mem.inject(FaultPlan::new(
            iov_iter::backend::mem::Trigger::Range(0..u64::MAX),
            Fault::EIO,
        ));
        let report = run(&dev, &WorkloadConfig { pages: few, ..cfg }).unwrap();
        assert!(!report.ok());
        assert_eq!(
            (report.unwritten, report.unwritten_intact),
            (few as u64, few as u64)
        );
        assert_eq!(
            report.counters.pswpout - before,
            few as u64 * 3,
            "3 attempts per page"
        );
        assert!(report.to_string().contains("FAILED"));
        assert_eq!(dev.used_slots(), 0);
    }

    #[test]
    fn phase_rates() {
        let p = PhaseReport {
            pages: 256,
            kiocbs: 8,
            elapsed: Duration::from_secs(2),
            latency: LatencySummary::default(),
            max_in_flight: 1,
        };
        assert_eq!((p.mib_per_s(), p.iops()), (0.5, 4.0));
    }
}
