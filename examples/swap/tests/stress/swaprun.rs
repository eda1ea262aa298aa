//! The swap paths' rounds ([`SwapRun`]): swap-out and swap-in through a
//! [`SwapDevice`] with the model of where every logical page is, on any
//! target ([`Side`]); phases A (faults, async inline), A2 (the swap
//! cache: readahead and zero pages, deferred reordered completions) and
//! B2 (io_uring) run it, and the NBD phase with its server killed.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iov_iter::backend::mem::MemDevice;
use iov_iter::kiocb::RwType;
use iov_iter::{PAGE_SIZE, Page, PageFlags, PageRef};

use iov_iter_swap::content::{check_page, fill_page, make_page, shuffle};
use iov_iter_swap::swapio::{IoMode, SwapDevice, SwapError, SwapIn, SwapPlug};
use iov_iter_swap::swapmap::{Slot, SlotRng};

use crate::Config;
use crate::common::{FaultyMem, Injected, Summary, rate, tag};

/// Where a logical page lives.
enum Loc {
    /// In memory; `slot` is its swap-cache slot, if any (clean: the slot
    /// holds the same data).
    Mem { page: PageRef, slot: Option<Slot> },
    /// Only on the device.
    Swapped(Slot),
}

struct Lp {
    generation: u32,
    /// All zeros (the swap cache's zero map) rather than the pattern.
    zero: bool,
    loc: Loc,
}

/// What the device writes to, seen from the side (no faults, no I/O
/// path), and what happened to it.
pub trait Side {
    /// The bytes of `slot`, read around the path under test. Only with no
    /// I/O in flight.
    fn device_page(&self, slot: Slot) -> Box<[u8; PAGE_SIZE]>;
    /// The transfers that failed (faults injected) since the last call.
    fn take_faults(&mut self) -> Vec<Injected> {
        Vec::new()
    }
    /// Faults on (`true`) or off, for the final read-back.
    fn set_faults(&mut self, on: bool) {
        let _ = on;
    }
    /// During a first swap-out attempt, after `k` of `n` pages were
    /// handed to the device (chaos: a server killed).
    fn during_swap_out(&mut self, k: usize, n: usize) {
        let _ = (k, n);
    }
    /// After a swap-out or swap-in attempt, its I/O drained: recover what
    /// the chaos broke (restart, reconnect) before a retry.
    fn recover(&mut self) {}
    /// With no I/O in flight: restart what serves the device.
    fn restart(&mut self) {}
}

/// A RAM device with injected faults.
pub struct MemSide(pub Arc<FaultyMem>);

impl Side for MemSide {
    fn device_page(&self, slot: Slot) -> Box<[u8; PAGE_SIZE]> {
        let mut buf = Box::new([0u8; PAGE_SIZE]);
        assert_eq!(
            self.0.mem.read_at(slot.byte_offset(), &mut buf[..]),
            PAGE_SIZE
        );
        buf
    }
    fn take_faults(&mut self) -> Vec<Injected> {
        self.0.take_log()
    }
    fn set_faults(&mut self, on: bool) {
        self.0.set_enabled(on);
    }
}

/// A file, read back through the page cache.
pub struct FileSide(pub File);

impl Side for FileSide {
    fn device_page(&self, slot: Slot) -> Box<[u8; PAGE_SIZE]> {
        let mut buf = Box::new([0u8; PAGE_SIZE]);
        self.0
            .read_exact_at(&mut buf[..], slot.byte_offset())
            .unwrap();
        buf
    }
}

/// What a run of the swap paths ([`SwapRun`]) did.
#[derive(Debug, Default)]
pub struct SwapReport {
    pub page_ops: u64,
    pub faults: u64,
    pub write_faults: u64,
    pub read_faults: u64,
    pub redirtied: u64,
    pub retried: u64,
    pub read_failed: u64,
    pub read_retried: u64,
    pub dropped_handles: u64,
    pub verified_reads: u64,
    pub verified_invariant: u64,
    pub zero_out: u64,
    pub zero_in: u64,
    pub readahead_pages: u64,
    pub readahead_hits: u64,
    pub lost: u64,
    pub rounds: u64,
    pub time: Duration,
}

impl SwapReport {
    pub fn print(&self) {
        println!(
            "    {} page ops in {} rounds, {:.2} s, {:.0} ops/s",
            self.page_ops,
            self.rounds,
            self.time.as_secs_f64(),
            rate(self.page_ops, self.time),
        );
        if self.faults == 0 {
            println!(
                "    no faults injected; swap-in handles dropped {}",
                self.dropped_handles
            );
        } else {
            println!(
                "    faults injected {} ({} on writes, {} on reads); pages redirtied {}, \
                 rewritten after a failure {}; page reads failed {}, read again {}; swap-in \
                 handles dropped {}",
                self.faults,
                self.write_faults,
                self.read_faults,
                self.redirtied,
                self.retried,
                self.read_failed,
                self.read_retried,
                self.dropped_handles,
            );
        }
        if self.zero_out + self.readahead_pages > 0 {
            println!(
                "    zero pages out {} / in {}; pages read ahead {}, readahead hits {}",
                self.zero_out, self.zero_in, self.readahead_pages, self.readahead_hits
            );
        }
        println!(
            "    verified: {} pages swapped in, {} page checks of the per-round invariant; \
             lost {}",
            self.verified_reads, self.verified_invariant, self.lost
        );
    }

    pub fn verified(&self) -> u64 {
        self.verified_reads + self.verified_invariant
    }

    pub fn summary(&self, name: &'static str) -> Summary {
        Summary {
            name,
            ops: self.page_ops,
            faults: self.faults,
            failures: self.write_faults + self.read_faults,
            retries: self.retried + self.read_retried,
            lost: self.lost,
            verified: self.verified(),
            time: self.time,
            skipped: None,
        }
    }
}

/// Rounds of swap-out and swap-in through a [`SwapDevice`], with the model
/// of where every logical page is.
pub struct SwapRun<'a> {
    seed: u64,
    rng: SlotRng,
    pub side: Box<dyn Side + 'a>,
    pub dev: SwapDevice,
    lps: Vec<Lp>,
    /// Drop one swap-in handle in this many at once (0: never).
    drop_one_in: u32,
    /// The swap cache's paths: readahead on (so a read batch holds pages
    /// nobody asked for, and a swap-in may be served by an earlier batch)
    /// and one new generation in 8 a zero page. The per-batch predictions
    /// become implications: a failed swap-in's slot was in a failed batch.
    cache: bool,
    pub report: &'a mut SwapReport,
}

const WRITE_ATTEMPTS: usize = 3;
const READ_ATTEMPTS: usize = 3;
const READ_WINDOW: usize = 48;

fn assert_settled(page: &Page, what: &str) {
    let busy = PageFlags::WRITEBACK | PageFlags::RECLAIM | PageFlags::LOCKED | PageFlags::ERROR;
    assert!(!page.flags().intersects(busy), "{what}: {page:?}");
}

impl SwapRun<'_> {
    fn seed(&self) -> u64 {
        self.seed
    }

    fn one_in(&mut self, n: u32) -> bool {
        self.rng.below(n) == 0
    }

    fn mem_page(&self, i: usize) -> (&PageRef, Option<Slot>) {
        match &self.lps[i].loc {
            Loc::Mem { page, slot } => (page, *slot),
            Loc::Swapped(_) => unreachable!("page {i} is not in memory"),
        }
    }

    /// Gives page `i` new contents (a new generation): it must be ours
    /// alone, so the I/O path kept no reference.
    fn modify(&mut self, i: usize) {
        let seed = self.seed();
        let zero = self.cache && self.one_in(8);
        let lp = &mut self.lps[i];
        lp.generation += 1;
        lp.zero = zero;
        let t = tag(i, lp.generation);
        let Loc::Mem { page, .. } = &mut lp.loc else {
            unreachable!()
        };
        let p = PageRef::get_mut(page)
            .unwrap_or_else(|| panic!("page {i}: a reference leaked from the I/O path"));
        if zero {
            p.as_mut_bytes().fill(0);
        } else {
            fill_page(p.as_mut_bytes(), t, seed);
        }
        p.set_flags(PageFlags::UPTODATE | PageFlags::DIRTY);
    }

    /// The bytes of `slot`, read from the side (no faults; through the
    /// page cache for a file). Only with no I/O in flight.
    fn device_page(&self, slot: Slot) -> Box<[u8; PAGE_SIZE]> {
        self.side.device_page(slot)
    }

    /// The faults injected since the last call.
    fn take_faults(&mut self) -> Vec<Injected> {
        self.side.take_faults()
    }

    /// Whether `slot` on the device holds page `i` (a zero page's slot is
    /// only marked: its bytes are not looked at).
    fn check_on_device(&self, slot: Slot, i: usize) -> Result<(), String> {
        if self.lps[i].zero {
            return Ok(());
        }
        self.check_lp(&self.device_page(slot), i)
    }

    /// Whether `bytes` hold logical page `i`'s current contents.
    fn check_lp(&self, bytes: &[u8; PAGE_SIZE], i: usize) -> Result<(), String> {
        let lp = &self.lps[i];
        if lp.zero {
            match bytes.iter().position(|&b| b != 0) {
                None => Ok(()),
                Some(at) => Err(format!("zero page {i}: byte {at} is set")),
            }
        } else {
            check_page(bytes, tag(i, lp.generation), self.seed).map_err(|m| m.to_string())
        }
    }

    /// Slots for the pages of `picked` that have none: contiguous runs (so
    /// the plug merges them) or random slots. Returns the write order:
    /// runs and single pages shuffled together, or sorted by slot.
    fn plan_writes(&mut self, picked: Vec<usize>) -> Vec<(usize, Slot)> {
        let (with, without): (Vec<usize>, Vec<usize>) = picked
            .into_iter()
            .partition(|&i| self.mem_page(i).1.is_some());
        let mut units: Vec<Vec<(usize, Slot)>> = with
            .into_iter()
            .map(|i| vec![(i, self.mem_page(i).1.unwrap())])
            .collect();
        let mut rest = &without[..];
        while !rest.is_empty() {
            let n = 1 + self.rng.below(rest.len().min(40) as u32) as usize;
            let (run, tail) = rest.split_at(n);
            rest = tail;
            let slots: Vec<Slot> = match self.dev.alloc_contiguous(n as u32) {
                Some(r) if !self.one_in(4) => r.iter().collect(),
                other => {
                    if let Some(r) = other {
                        for s in r.iter() {
                            self.dev.swap_free(s).unwrap();
                        }
                    }
                    run.iter()
                        .map_while(|_| self.dev.alloc_random(&mut self.rng))
                        .collect()
                }
            };
            // Out of slots: the pages left over stay in memory, slotless.
            let unit: Vec<(usize, Slot)> = run.iter().copied().zip(slots).collect();
            for &(i, s) in &unit {
                let Loc::Mem { slot, .. } = &mut self.lps[i].loc else {
                    unreachable!()
                };
                *slot = Some(s);
            }
            units.push(unit);
        }
        shuffle(&mut units, &mut self.rng);
        let mut order: Vec<(usize, Slot)> = units.into_iter().flatten().collect();
        if self.one_in(4) {
            order.sort_by_key(|&(_, s)| s.index());
        }
        order
    }

    /// Swaps the pages of `order` out, retrying failed writes; evicts what
    /// was written (or was clean already).
    fn swap_out(&mut self, order: Vec<(usize, Slot)>) {
        let mut todo = order;
        for attempt in 0..WRITE_ATTEMPTS {
            if todo.is_empty() {
                break;
            }
            let c0 = self.dev.counters();
            let mut written = Vec::with_capacity(todo.len());
            let mut clean = Vec::new();
            {
                let mut plug = SwapPlug::new();
                let n = todo.len();
                for (k, &(i, slot)) in todo.iter().enumerate() {
                    if attempt == 0 {
                        self.side.during_swap_out(k, n);
                    }
                    let page = PageRef::clone(self.mem_page(i).0);
                    if self
                        .dev
                        .swap_writepage(page, slot, Some(&mut plug))
                        .unwrap_or_else(|e| panic!("swap_writepage page {i} to {slot}: {e}"))
                    {
                        written.push((i, slot));
                    } else {
                        clean.push((i, slot));
                    }
                    if self.one_in(64) {
                        plug.write_unplug();
                    }
                }
            }
            self.dev.drain().unwrap();
            assert_eq!(self.dev.in_flight(), 0);
            assert!(
                attempt == 0 || clean.is_empty(),
                "a failed write left a clean page"
            );
            self.report.page_ops += written.len() as u64;
            if attempt > 0 {
                self.report.retried += written.len() as u64;
            }
            let faults = self.take_faults();
            assert!(faults.iter().all(|f| f.rw == RwType::Write), "{faults:?}");
            self.report.write_faults += faults.len() as u64;
            let mut failed = Vec::new();
            for &(i, slot) in &written {
                let (page, _) = self.mem_page(i);
                assert_settled(page, "after writeback");
                assert!(page.test(PageFlags::UPTODATE));
                let hit = faults.iter().any(|f| f.covers(slot));
                assert_eq!(
                    page.test(PageFlags::DIRTY),
                    hit,
                    "page {i} at {slot}: dirty after writeback iff its batch failed \
                     (faults {faults:?})"
                );
                if hit {
                    // Still in memory, intact, for a retry.
                    let bytes: &[u8; PAGE_SIZE] = page.as_bytes();
                    self.check_lp(bytes, i)
                        .unwrap_or_else(|m| panic!("redirtied page {i} corrupt: {m}"));
                    failed.push((i, slot));
                }
            }
            let zeros = written.iter().filter(|&&(i, _)| self.lps[i].zero).count() as u64;
            self.report.zero_out += zeros;
            let c1 = self.dev.counters();
            assert_eq!(c1.zero_pages_out - c0.zero_pages_out, zeros);
            assert_eq!(c1.pswpout - c0.pswpout, written.len() as u64 - zeros);
            assert_eq!(
                c1.written_pages() - c0.written_pages(),
                written.len() as u64 - zeros
            );
            assert_eq!(c1.write_errors - c0.write_errors, faults.len() as u64);
            assert_eq!(c1.redirtied_pages - c0.redirtied_pages, failed.len() as u64);
            self.report.redirtied += failed.len() as u64;
            // Evict what is safely on the device.
            for &(i, slot) in written.iter().chain(&clean) {
                if failed.iter().any(|&(j, _)| j == i) {
                    continue;
                }
                let (page, _) = self.mem_page(i);
                assert_eq!(
                    PageRef::strong_count(page),
                    1,
                    "page {i}: the I/O path kept a reference"
                );
                if clean.iter().any(|&(j, _)| j == i) {
                    // Clean with a slot: the slot must hold it already.
                    self.check_on_device(slot, i)
                        .unwrap_or_else(|m| panic!("clean page {i}, {slot} stale: {m}"));
                }
                self.lps[i].loc = Loc::Swapped(slot);
            }
            todo = failed;
            self.side.recover();
        }
        // Writes that failed every attempt: the pages stay in memory, dirty,
        // keeping their slots; later rounds write them again.
    }

    /// Swaps `picked` in (plugged, a window of outstanding reads), retrying
    /// failed reads; the pages read become resident, keeping their slot or
    /// not.
    fn swap_in(&mut self, picked: Vec<usize>) {
        let mut todo = picked;
        for _attempt in 0..READ_ATTEMPTS {
            if todo.is_empty() {
                break;
            }
            let c0 = self.dev.counters();
            let mut results: Vec<(usize, Slot, PageRef, Result<(), SwapError>)> =
                Vec::with_capacity(todo.len());
            let mut dropped: Vec<(usize, Slot)> = Vec::new();
            {
                let mut plug = SwapPlug::new();
                let mut window: VecDeque<(usize, SwapIn)> = VecDeque::new();
                let wait_oldest = |window: &mut VecDeque<(usize, SwapIn)>,
                                   plug: &mut SwapPlug,
                                   results: &mut Vec<_>| {
                    let (i, h): (usize, SwapIn) = window.pop_front().unwrap();
                    if h.is_plugged() {
                        plug.read_unplug();
                    }
                    let slot = h.slot();
                    let (page, r) = h.wait_page();
                    results.push((i, slot, page, r));
                };
                for &i in &todo {
                    let Loc::Swapped(slot) = self.lps[i].loc else {
                        unreachable!()
                    };
                    let h = self
                        .dev
                        .swap_readpage(slot, Some(&mut plug))
                        .unwrap_or_else(|e| panic!("swap_readpage {slot}: {e}"));
                    if self.drop_one_in > 0 && self.one_in(self.drop_one_in) {
                        // The page stays swapped out; the read goes on
                        // without anybody waiting for it.
                        dropped.push((i, slot));
                        drop(h);
                        continue;
                    }
                    window.push_back((i, h));
                    if window.len() > READ_WINDOW {
                        wait_oldest(&mut window, &mut plug, &mut results);
                    }
                    if self.one_in(64) {
                        plug.read_unplug();
                    }
                }
                plug.unplug();
                while !window.is_empty() {
                    wait_oldest(&mut window, &mut plug, &mut results);
                }
            }
            // Reads whose handles were dropped complete too.
            self.dev.drain().unwrap();
            assert_eq!(self.dev.in_flight(), 0);
            self.report.page_ops += (results.len() + dropped.len()) as u64;
            self.report.dropped_handles += dropped.len() as u64;
            let faults = self.take_faults();
            assert!(faults.iter().all(|f| f.rw == RwType::Read), "{faults:?}");
            self.report.read_faults += faults.len() as u64;
            let dropped_failed = dropped
                .iter()
                .filter(|&&(_, slot)| faults.iter().any(|f| f.covers(slot)))
                .count() as u64;
            let dropped_ok = dropped.len() as u64 - dropped_failed;
            let (mut ok, mut failed) = (0u64, Vec::new());
            for (i, slot, page, outcome) in results {
                assert_settled(&page, "after a read");
                let hit = faults.iter().any(|f| f.covers(slot));
                if self.cache {
                    // Its page may come from an earlier batch (read ahead,
                    // or joined), failed or not; a failure needs one.
                    assert!(
                        outcome.is_ok() || hit,
                        "page {i} at {slot}: read failed with no failed batch ({outcome:?})"
                    );
                } else {
                    assert_eq!(
                        outcome.is_err(),
                        hit,
                        "page {i} at {slot}: read failed iff its batch failed ({outcome:?})"
                    );
                }
                match outcome {
                    Ok(()) => {
                        assert!(page.test(PageFlags::UPTODATE), "{page:?}");
                        if self.lps[i].zero {
                            self.report.zero_in += 1;
                        }
                        self.check_lp(page.as_bytes(), i)
                            .unwrap_or_else(|m| panic!("swapped-in page {i}, {slot}: {m}"));
                        assert!(!page.test(PageFlags::DIRTY), "a read dirtied {page:?}");
                        assert_eq!(PageRef::strong_count(&page), 1);
                        ok += 1;
                        let slot = if self.one_in(2) {
                            Some(slot)
                        } else {
                            self.dev.swap_free(slot).unwrap();
                            // No copy on the device any more.
                            page.set_flags(PageFlags::DIRTY);
                            None
                        };
                        self.lps[i].loc = Loc::Mem { page, slot };
                    }
                    Err(SwapError::Read { slot: s, .. }) => {
                        assert_eq!(s, slot);
                        assert!(!page.test(PageFlags::UPTODATE), "failed read: {page:?}");
                        failed.push(i);
                    }
                    Err(e) => panic!("swap-in of {slot}: unexpected {e}"),
                }
            }
            let c1 = self.dev.counters();
            assert_eq!(c1.read_errors - c0.read_errors, faults.len() as u64);
            if self.cache {
                // Read-ahead pages count too.
                assert!(c1.read_failed_pages - c0.read_failed_pages >= failed.len() as u64);
                self.report.read_failed += c1.read_failed_pages - c0.read_failed_pages;
            } else {
                assert_eq!(c1.pswpin - c0.pswpin, ok + dropped_ok);
                assert_eq!(
                    c1.read_failed_pages - c0.read_failed_pages,
                    failed.len() as u64 + dropped_failed
                );
                self.report.read_failed += failed.len() as u64 + dropped_failed;
            }
            self.report.verified_reads += ok;
            self.report.read_retried += failed.len() as u64;
            todo = failed;
            self.side.recover();
        }
        // Reads that failed every attempt: the pages stay swapped out.
    }

    /// Frees swap-cache slots, and replaces some pages by new ones (a
    /// process exiting and another faulting pages in).
    fn churn(&mut self) {
        for i in 0..self.lps.len() {
            if self.one_in(60) {
                let slot = match &self.lps[i].loc {
                    Loc::Mem { slot, .. } => *slot,
                    Loc::Swapped(s) => Some(*s),
                };
                if let Some(s) = slot {
                    self.dev.swap_free(s).unwrap();
                }
                let generation = self.lps[i].generation + 1;
                self.lps[i] = Lp {
                    generation,
                    zero: false,
                    loc: Loc::Mem {
                        page: make_page(tag(i, generation), self.seed()),
                        slot: None,
                    },
                };
                continue;
            }
            let free_it = self.one_in(4);
            if let Loc::Mem { page, slot } = &mut self.lps[i].loc {
                if free_it {
                    if let Some(s) = slot.take() {
                        self.dev.swap_free(s).unwrap();
                        page.set_flags(PageFlags::DIRTY);
                    }
                }
            }
        }
    }

    /// Every page is in memory and intact, or on the device and its
    /// read-back verifies; the slot map holds exactly the slots in use.
    fn check_invariant(&mut self) {
        let mut used = 0u32;
        for i in 0..self.lps.len() {
            match &self.lps[i].loc {
                Loc::Mem { page, slot } => {
                    assert_settled(page, "resident page");
                    assert!(page.test(PageFlags::UPTODATE), "page {i}: {page:?}");
                    assert_eq!(PageRef::strong_count(page), 1, "page {i}: leaked reference");
                    self.check_lp(page.as_bytes(), i)
                        .unwrap_or_else(|m| panic!("resident page {i}: {m}"));
                    if let Some(s) = slot {
                        used += 1;
                        if !page.test(PageFlags::DIRTY) {
                            self.check_on_device(*s, i)
                                .unwrap_or_else(|m| panic!("clean page {i}: {s} stale: {m}"));
                        }
                    }
                }
                Loc::Swapped(s) => {
                    used += 1;
                    self.check_on_device(*s, i)
                        .unwrap_or_else(|m| panic!("swapped page {i} at {s}: {m}"));
                }
            }
            self.report.verified_invariant += 1;
        }
        assert_eq!(self.dev.used_slots(), used, "slot map out of step");
        assert_eq!(self.dev.in_flight(), 0);
    }

    fn round(&mut self) {
        let resident: Vec<usize> = (0..self.lps.len())
            .filter(|&i| matches!(self.lps[i].loc, Loc::Mem { .. }))
            .collect();
        for &i in &resident {
            if self.one_in(8) {
                self.modify(i);
            }
        }
        let picked: Vec<usize> = resident.into_iter().filter(|_| self.one_in(3)).collect();
        let order = self.plan_writes(picked);
        self.swap_out(order);

        let mut picked: Vec<usize> = (0..self.lps.len())
            .filter(|&i| matches!(self.lps[i].loc, Loc::Swapped(_)))
            .collect::<Vec<usize>>()
            .into_iter()
            .filter(|_| self.one_in(3))
            .collect();
        shuffle(&mut picked, &mut self.rng);
        if self.one_in(3) {
            picked.sort_by_key(|&i| match self.lps[i].loc {
                Loc::Swapped(s) => s.index(),
                Loc::Mem { .. } => unreachable!(),
            });
        }
        self.swap_in(picked);

        self.churn();
        self.check_invariant();
        self.report.rounds += 1;
    }
}

impl<'a> SwapRun<'a> {
    pub fn new(
        seed: u64,
        pages: usize,
        side: Box<dyn Side + 'a>,
        dev: SwapDevice,
        drop_one_in: u32,
        cache: bool,
        report: &'a mut SwapReport,
    ) -> SwapRun<'a> {
        let lps = (0..pages)
            .map(|i| Lp {
                generation: 0,
                zero: false,
                loc: Loc::Mem {
                    page: make_page(tag(i, 0), seed),
                    slot: None,
                },
            })
            .collect();
        SwapRun {
            seed,
            rng: SlotRng::new(seed ^ 0x05a9_0000_05a9),
            side,
            dev,
            lps,
            drop_one_in,
            cache,
            report,
        }
    }

    /// Rounds until `ops` page operations; then, faults off, every page
    /// swapped out (where slots last) and everything swapped in again,
    /// verified, its slot freed. A page that cannot be read back is lost.
    pub fn run(&mut self, ops: u64) {
        let t = Instant::now();
        self.run_rounds(ops);
        self.finish();
        self.report.time = t.elapsed();
    }

    /// Rounds until `ops` page operations.
    pub fn run_rounds(&mut self, ops: u64) {
        while self.report.page_ops < ops {
            self.round();
        }
    }

    /// The last trip out and in, faults off, and the final checks.
    pub fn finish(&mut self) {
        self.side.set_faults(false);
        self.drop_one_in = 0;
        let resident: Vec<usize> = (0..self.lps.len())
            .filter(|&i| matches!(self.lps[i].loc, Loc::Mem { .. }))
            .collect();
        for &i in &resident {
            // Dirty: the last trip writes every page.
            self.mem_page(i).0.set_flags(PageFlags::DIRTY);
        }
        let order = self.plan_writes(resident);
        self.swap_out(order);
        let swapped: Vec<usize> = (0..self.lps.len())
            .filter(|&i| matches!(self.lps[i].loc, Loc::Swapped(_)))
            .collect();
        self.swap_in(swapped);
        for i in 0..self.lps.len() {
            match &mut self.lps[i].loc {
                Loc::Mem { slot, .. } => {
                    if let Some(s) = slot.take() {
                        self.dev.swap_free(s).unwrap();
                    }
                }
                Loc::Swapped(s) => {
                    eprintln!("LOST: page {i} at {s} could not be read back without faults");
                    self.report.lost += 1;
                    let s = *s;
                    self.dev.swap_free(s).unwrap();
                    let generation = self.lps[i].generation;
                    self.lps[i].zero = false;
                    self.lps[i].loc = Loc::Mem {
                        page: make_page(tag(i, generation), self.seed),
                        slot: None,
                    };
                }
            }
        }
        self.check_invariant();
        assert_eq!(self.dev.used_slots(), 0);
        let c = self.dev.counters();
        assert_eq!(c.redirtied_pages, self.report.redirtied);
        assert_eq!(c.read_failed_pages, self.report.read_failed);
        if !self.cache {
            assert_eq!(c.pswpout + c.read_pages(), self.report.page_ops);
        } else {
            self.report.readahead_pages = c.readahead_pages;
            self.report.readahead_hits = c.readahead_hits;
            assert!(c.readahead_pages > 0 && c.readahead_hits > 0, "{c:?}");
            assert!(c.zero_pages_out > 0 && c.zero_pages_in > 0, "{c:?}");
        }
        assert_eq!(
            c.write_errors + c.read_errors,
            self.report.write_faults + self.report.read_faults
        );
        if c.write_errors + c.read_errors > 0 {
            assert!(!self.dev.error_log().is_empty(), "failures were not logged");
        }
    }
}

/// Phase A: a [`SwapDevice`] on the async-inline path over a RAM device
/// with faults on one transfer in `cfg.fault_one_in`, readahead off (the
/// model predicts every batch's outcome exactly).
pub fn phase_a(cfg: &Config, ops: u64) -> SwapReport {
    let mut report = SwapReport::default();
    let mem = Arc::new(MemDevice::new(cfg.slots as usize * PAGE_SIZE));
    let faulty = Arc::new(FaultyMem::new(
        Arc::clone(&mem),
        cfg.seed,
        cfg.fault_one_in,
        1,
        false,
    ));
    let dev = SwapDevice::new(faulty.clone(), IoMode::AsyncInline, cfg.slots).unwrap();
    // The model counts reads one per swap-in: no readahead here.
    dev.set_page_cluster(0);
    let mut run = SwapRun::new(
        cfg.seed,
        cfg.pages,
        Box::new(MemSide(faulty)),
        dev,
        8,
        false,
        &mut report,
    );
    run.run(ops);
    drop(run);
    let faults = mem.stats().faults;
    report.faults = faults;
    assert_eq!(faults, report.write_faults + report.read_faults);
    report
}

/// Phase A2, the swap cache: phase A's rounds with readahead on
/// (`page_cluster` 3: swap-ins served from pages read ahead, or joining
/// reads on their way), zero pages (one new generation in 8: marked, never
/// written, read back as zeros), on a RAM device that defers completions
/// and delivers them in a random order (`IoMode::Uring`), with faults.
pub fn phase_a2(cfg: &Config, ops: u64) -> SwapReport {
    let mut report = SwapReport::default();
    let mem = Arc::new(MemDevice::new(cfg.slots as usize * PAGE_SIZE));
    let faulty = Arc::new(FaultyMem::new(
        Arc::clone(&mem),
        cfg.seed ^ 0xa2,
        cfg.fault_one_in,
        1,
        true,
    ));
    let dev = SwapDevice::new(faulty.clone(), IoMode::Uring, cfg.slots).unwrap();
    dev.set_page_cluster(3);
    let mut run = SwapRun::new(
        cfg.seed ^ 0xa2,
        cfg.pages,
        Box::new(MemSide(faulty.clone())),
        dev,
        8,
        true,
        &mut report,
    );
    run.run(ops);
    drop(run);
    assert_eq!(faulty.pending(), 0);
    let faults = mem.stats().faults;
    report.faults = faults;
    assert_eq!(faults, report.write_faults + report.read_faults);
    report
}

/// Phase B2: the example's swap paths on io_uring (`IoMode::Uring`),
/// swap-in handles dropped at random (one in 3), the queue's depth the
/// in-flight limit. No faults: a real file.
pub fn phase_b2(cfg: &Config, ops: u64) -> SwapReport {
    let mut report = SwapReport::default();
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "swap_stress_dev_{}_{:x}.swap",
        std::process::id(),
        cfg.seed & 0xffff_ffff
    ));
    let queue = match crate::uring_drop::open_queue(&path, cfg.file_slots) {
        Ok(q) => q,
        Err(why) => panic!("phase B1 ran, but now: {why}"),
    };
    let side = File::open(&path).unwrap();
    let dev = SwapDevice::new(Arc::new(queue), IoMode::Uring, u64::from(cfg.file_slots)).unwrap();
    dev.set_page_cluster(0); // as phase A

    let mut run = SwapRun::new(
        cfg.seed ^ 0xb2,
        cfg.pages,
        Box::new(FileSide(side)),
        dev,
        3,
        false,
        &mut report,
    );
    run.run(ops);
    drop(run);
    let _ = std::fs::remove_file(&path);
    report
}
