//! Stress run of the swap example's I/O paths ("Hardening", part 4): async
//! swap-out and swap-in under random injected faults, and io_uring
//! operations whose futures are dropped at random, every page verified by
//! checksum.
//!
//! * Phase A, faults (half the page operations): a [`SwapDevice`] on the
//!   async-inline path over a [`MemDevice`]. About one transfer in 20 gets
//!   an injected fault (`EIO`, or a short transfer of a random length),
//!   armed as a one-shot [`FaultPlan`] just before the transfer it hits, so
//!   the test knows the exact byte range of every failed batch. Rounds of:
//!   dirty random pages, swap a random subset out through a [`SwapPlug`]
//!   (contiguous runs and scattered slots), retry the writes that failed,
//!   swap random pages in (plugged, a window of outstanding reads, one
//!   handle in 8 dropped unwaited), retry failed reads, free slots.
//!   Checked: exactly the pages of a failed write batch come back dirty and
//!   intact, exactly the pages of a failed read batch are not uptodate, the
//!   counters agree, no reference leaks; after every round, every page is
//!   either in memory and intact, or on the device and its read-back
//!   verifies.
//! * Phase B1, dropped futures (a quarter): a [`UringQueue`] on an
//!   `O_DIRECT` file under `CARGO_TARGET_TMPDIR`, random write (owned pages
//!   or page references) and read batches at random slots, up to 32 in
//!   flight. 60% are kept: a callback kiocb ([`Kiocb::with_callback`])
//!   whose callback tracks the slots and hands the buffers back for
//!   checking. 40% go on a future kiocb ([`Kiocb::new_async_with`]) whose
//!   future is dropped at once (half of them after one poll): the buffers
//!   must stay valid until the CQE and be freed after. A slot has at most
//!   one write in flight, and no write while it is read, so the last
//!   completed write per slot is well defined. Nobody sees a dropped
//!   future's completion, so its slots stay marked until the next
//!   checkpoint has drained the queue (one comes early when such slots
//!   make up a quarter of the file). Checked at every checkpoint and at
//!   the end: the file (read back through the page cache, not the path
//!   under test) holds the last write of every slot, kept reads hold the
//!   expected versions, the pages handed back and the page references given
//!   to writes still hold their patterns and are released, a pool of canary
//!   pages (churned, so that freed read buffers get reused) is intact.
//!   Last, the queue is dropped with I/O in flight: every callback runs
//!   (done or `ECANCELED`) before the drop returns, every slot holds the
//!   old or new data.
//! * Phase B2 (the rest): phase A's rounds on the example's io_uring backend
//!   (`IoMode::Uring`) over another file, no faults, one swap-in handle
//!   in 3 dropped unwaited.
//!
//! Phase B skips loudly when io_uring or `O_DIRECT` is unavailable.
//! `cargo test --release --all-features -p iov-iter-swap --test stress --
//! --ignored --nocapture` runs the full size (`STRESS_OPS` page operations, each page
//! swapped out or in counting one, default 1,000,000; `STRESS_SEED` replays
//! a run, its seed printed at the start). The non-ignored smoke test runs
//! 20,000 in a few seconds.

// io_uring, O_DIRECT, and the package's Unix file handling. Not under Miri:
// every test here makes syscalls.
#![cfg(all(target_os = "linux", not(miri)))]

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use iov_iter::backend::file::DirectFile;
use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice};
use iov_iter::backend::uring::UringQueue;
use iov_iter::buf::OwnedIter;
use iov_iter::dio::{DioAlign, DioBuf, DirectIo};
use iov_iter::kiocb::{Completed, FileCaps, IocbFlags, Kiocb, RwType, RwfFlags};
use iov_iter::{Dest, Errno, PAGE_SIZE, Page, PageFlags, PageRef, Source, UserIovec};

use iov_iter_swap::content::{check_page, check_swapped_in, fill_page, make_page, shuffle};
use iov_iter_swap::swapio::{IoMode, SwapDevice, SwapError, SwapIn, SwapPlug};
use iov_iter_swap::swapmap::{Slot, SlotRng};

const PS: u64 = PAGE_SIZE as u64;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------
// Configuration and report.

#[derive(Debug, Clone, Copy)]
struct Config {
    seed: u64,
    /// Page operations in all (each page swapped out or in counts one),
    /// split evenly between the phases.
    ops: u64,
    /// Phase A: logical pages, and swap slots (slot 0 is never handed out).
    pages: usize,
    slots: u64,
    /// Phase A: one transfer in this many gets a fault.
    fault_one_in: u32,
    /// Phase B: slots in the file.
    file_slots: u32,
    /// Phase B: page operations between two full verifications.
    check_every: u64,
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim().replace('_', "");
    let parsed = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|e| panic!("{name}={v}: {e}")))
}

fn seed_from_env() -> u64 {
    env_u64("STRESS_SEED").unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mut r = SlotRng::new(t.as_nanos() as u64 ^ (u64::from(std::process::id()) << 48));
        r.next_u64()
    })
}

/// What a run of the swap paths ([`SwapRun`]) did.
#[derive(Debug, Default)]
struct SwapReport {
    page_ops: u64,
    faults: u64,
    write_faults: u64,
    read_faults: u64,
    redirtied: u64,
    retried: u64,
    read_failed: u64,
    dropped_handles: u64,
    verified_reads: u64,
    verified_invariant: u64,
    rounds: u64,
    time: Duration,
}

#[derive(Debug, Default)]
struct Report {
    a: SwapReport,
    b_skipped: Option<String>,
    b_page_ops: u64,
    b_submitted: u64,
    b_dropped: u64,
    b_dropped_polled: u64,
    b_verified_read_pages: u64,
    b_verified_write_pages: u64,
    b_verified_slots: u64,
    /// Checkpoints, and of them those that came before `check_every`
    /// page ops to free the slots held by dropped-future operations.
    b_checkpoints: u64,
    b_early_checkpoints: u64,
    /// Operations in flight when the queue was dropped (both kinds), the
    /// callback-tracked ones among them, and how many of those the drop
    /// cancelled (ECANCELED).
    b_in_flight_at_drop: u64,
    b_tracked_at_drop: u64,
    b_tracked_cancelled_on_drop: u64,
    b_time: Duration,
    c: SwapReport,
}

fn rate(ops: u64, t: Duration) -> f64 {
    ops as f64 / t.as_secs_f64().max(1e-9)
}

impl SwapReport {
    fn print(&self) {
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
                 rewritten after a failure {}; page reads failed {}; swap-in handles \
                 dropped {}",
                self.faults,
                self.write_faults,
                self.read_faults,
                self.redirtied,
                self.retried,
                self.read_failed,
                self.dropped_handles,
            );
        }
        println!(
            "    verified: {} pages swapped in, {} page checks of the per-round invariant",
            self.verified_reads, self.verified_invariant,
        );
    }

    fn verified(&self) -> u64 {
        self.verified_reads + self.verified_invariant
    }
}

impl Report {
    fn print(&self, cfg: &Config) {
        let total_ops = self.a.page_ops + self.b_page_ops + self.c.page_ops;
        let total_time = self.a.time + self.b_time + self.c.time;
        println!(
            "swap_stress: seed {:#018x} (STRESS_SEED to replay)",
            cfg.seed
        );
        println!(
            "  phase A: SwapDevice async-inline on MemDevice, faults on 1 transfer in {}",
            cfg.fault_one_in
        );
        self.a.print();
        match &self.b_skipped {
            Some(why) => println!("  phase B SKIPPED: {why}"),
            None => {
                println!(
                    "  phase B1: UringQueue on an O_DIRECT file, <= {MAX_IN_FLIGHT} in flight: \
                     {} page ops in {} operations, {:.2} s, {:.0} ops/s",
                    self.b_page_ops,
                    self.b_submitted,
                    self.b_time.as_secs_f64(),
                    rate(self.b_page_ops, self.b_time),
                );
                println!(
                    "    {} operations with completion callbacks, {} with futures dropped \
                     in flight ({} after one poll)",
                    self.b_submitted - self.b_dropped,
                    self.b_dropped,
                    self.b_dropped_polled,
                );
                println!(
                    "    queue dropped with {} operations in flight: {} with callbacks, {} of \
                     them cancelled; {} with dropped futures",
                    self.b_in_flight_at_drop,
                    self.b_tracked_at_drop,
                    self.b_tracked_cancelled_on_drop,
                    self.b_in_flight_at_drop - self.b_tracked_at_drop,
                );
                println!(
                    "    verified: {} pages read back through callbacks, {} write pages \
                     handed back or released, {} slots of the file in {} checkpoints \
                     ({} early)",
                    self.b_verified_read_pages,
                    self.b_verified_write_pages,
                    self.b_verified_slots,
                    self.b_checkpoints,
                    self.b_early_checkpoints,
                );
                println!(
                    "  phase B2: SwapDevice on io_uring (queue depth {MAX_IN_FLIGHT}), \
                     swap-in handles dropped at random"
                );
                self.c.print();
            }
        }
        println!(
            "  total: {} page ops, {} pages verified, {:.2} s, {:.0} ops/s",
            total_ops,
            self.a.verified()
                + self.b_verified_read_pages
                + self.b_verified_write_pages
                + self.b_verified_slots
                + self.c.verified(),
            total_time.as_secs_f64(),
            rate(total_ops, total_time),
        );
    }
}

fn run(cfg: Config) {
    println!("swap_stress: seed {:#018x}, {} page ops", cfg.seed, cfg.ops);
    let mut report = Report::default();
    phase_a(&cfg, &mut report);
    phase_b(&cfg, &mut report);
    if report.b_skipped.is_none() {
        let left = cfg
            .ops
            .saturating_sub(report.a.page_ops + report.b_page_ops);
        phase_b2(&cfg, &mut report, left);
    }
    report.print(&cfg);
}

/// The full run: `STRESS_OPS` page operations (default 1,000,000).
#[test]
#[ignore = "long: run with --release -- --ignored --nocapture"]
fn stress_swap_full() {
    run(Config {
        seed: seed_from_env(),
        ops: env_u64("STRESS_OPS").unwrap_or(1_000_000),
        pages: 1024,
        slots: 1536,
        fault_one_in: 20,
        file_slots: 4096,
        check_every: 1 << 15,
    });
}

/// A few seconds of the same paths, for CI.
#[test]
#[cfg_attr(miri, ignore)] // io_uring and O_DIRECT syscalls; far too slow anyway
fn stress_swap_smoke() {
    run(Config {
        seed: seed_from_env(),
        ops: 20_000,
        pages: 192,
        slots: 320,
        fault_one_in: 20,
        file_slots: 512,
        check_every: 2500,
    });
}

// ---------------------------------------------------------------------------
// Phase A: faults on the async-inline path.

/// A transfer a fault was injected into.
#[derive(Debug, Clone, Copy)]
struct Injected {
    rw: RwType,
    pos: u64,
    len: usize,
}

impl Injected {
    fn covers(&self, slot: Slot) -> bool {
        let p = slot.byte_offset();
        self.pos <= p && p + PS <= self.pos + self.len as u64
    }
}

struct Injector {
    rng: SlotRng,
    one_in: u32,
    enabled: bool,
    log: Vec<Injected>,
}

/// A [`MemDevice`] whose transfers get a one-shot [`FaultPlan`] at random,
/// armed just before the transfer (so the fault's target and the request's
/// length are known), and logged.
struct FaultyMem {
    mem: Arc<MemDevice>,
    inj: Mutex<Injector>,
}

impl FaultyMem {
    fn set_enabled(&self, on: bool) {
        lock(&self.inj).enabled = on;
    }

    fn take_log(&self) -> Vec<Injected> {
        std::mem::take(&mut lock(&self.inj).log)
    }
}

// The default `start` runs `transfer` inline: every async request
// completes before its submission returns (the async-inline path).
impl DirectIo for FaultyMem {
    fn dio_align(&self) -> DioAlign {
        DirectIo::dio_align(&*self.mem)
    }

    fn caps(&self) -> FileCaps {
        DirectIo::caps(&*self.mem)
    }

    fn max_segs(&self) -> usize {
        DirectIo::max_segs(&*self.mem)
    }

    unsafe fn transfer(
        &self,
        rw: RwType,
        pos: u64,
        iov: &[UserIovec],
        flags: RwfFlags,
    ) -> iov_iter::Result<usize> {
        let len: usize = iov.iter().map(|v| v.len).sum();
        {
            let mut inj = lock(&self.inj);
            let one_in = inj.one_in;
            if inj.enabled && len > 0 && inj.rng.below(one_in) == 0 {
                let fault = if inj.rng.below(2) == 0 {
                    Fault::EIO
                } else {
                    // Anything from nothing to all but one byte: partial
                    // pages and whole pages of a batch.
                    Fault::Short(inj.rng.below(len as u32) as usize)
                };
                self.mem.inject(FaultPlan::next(1, fault));
                inj.log.push(Injected { rw, pos, len });
            }
        }
        // SAFETY: the caller's promise for `iov` covers this call, which
        // forwards it unchanged for the duration of this one.
        let r = unsafe { DirectIo::transfer(&*self.mem, rw, pos, iov, flags) };
        assert_eq!(self.mem.armed_faults(), 0, "a one-shot fault was not used");
        r
    }
}

fn tag(index: usize, generation: u32) -> u64 {
    ((index as u64) << 32) | u64::from(generation)
}

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
    loc: Loc,
}

/// What the device writes to, seen from the side (no faults, no I/O path).
enum Target {
    Mem(Arc<FaultyMem>),
    File(File),
}

/// Rounds of swap-out and swap-in through a [`SwapDevice`], with the model
/// of where every logical page is.
struct SwapRun<'a> {
    seed: u64,
    rng: SlotRng,
    target: Target,
    dev: SwapDevice,
    lps: Vec<Lp>,
    /// Drop one swap-in handle in this many at once (0: never).
    drop_one_in: u32,
    report: &'a mut SwapReport,
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
        let lp = &mut self.lps[i];
        lp.generation += 1;
        let t = tag(i, lp.generation);
        let Loc::Mem { page, .. } = &mut lp.loc else {
            unreachable!()
        };
        let p = PageRef::get_mut(page)
            .unwrap_or_else(|| panic!("page {i}: a reference leaked from the I/O path"));
        fill_page(p.as_mut_bytes(), t, seed);
        p.set_flags(PageFlags::UPTODATE | PageFlags::DIRTY);
    }

    /// The bytes of `slot`, read from the side (no faults; through the
    /// page cache for a file). Only with no I/O in flight.
    fn device_page(&self, slot: Slot) -> Box<[u8; PAGE_SIZE]> {
        let mut buf = Box::new([0u8; PAGE_SIZE]);
        match &self.target {
            Target::Mem(f) => {
                assert_eq!(f.mem.read_at(slot.byte_offset(), &mut buf[..]), PAGE_SIZE);
            }
            Target::File(f) => f.read_exact_at(&mut buf[..], slot.byte_offset()).unwrap(),
        }
        buf
    }

    /// The faults injected since the last call.
    fn take_faults(&self) -> Vec<Injected> {
        match &self.target {
            Target::Mem(f) => f.take_log(),
            Target::File(_) => Vec::new(),
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
                for &(i, slot) in &todo {
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
                    check_page(page.as_bytes(), tag(i, self.lps[i].generation), self.seed())
                        .unwrap_or_else(|m| panic!("redirtied page {i} corrupt: {m}"));
                    failed.push((i, slot));
                }
            }
            let c1 = self.dev.counters();
            assert_eq!(c1.pswpout - c0.pswpout, written.len() as u64);
            assert_eq!(
                c1.written_pages() - c0.written_pages(),
                written.len() as u64
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
                    check_page(
                        &self.device_page(slot),
                        tag(i, self.lps[i].generation),
                        self.seed(),
                    )
                    .unwrap_or_else(|m| panic!("clean page {i}, {slot} stale: {m}"));
                }
                self.lps[i].loc = Loc::Swapped(slot);
            }
            todo = failed;
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
                assert_eq!(
                    outcome.is_err(),
                    hit,
                    "page {i} at {slot}: read failed iff its batch failed ({outcome:?})"
                );
                match outcome {
                    Ok(()) => {
                        check_swapped_in(&page, tag(i, self.lps[i].generation), self.seed())
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
            assert_eq!(c1.pswpin - c0.pswpin, ok + dropped_ok);
            assert_eq!(c1.read_errors - c0.read_errors, faults.len() as u64);
            assert_eq!(
                c1.read_failed_pages - c0.read_failed_pages,
                failed.len() as u64 + dropped_failed
            );
            self.report.verified_reads += ok;
            self.report.read_failed += failed.len() as u64 + dropped_failed;
            todo = failed;
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
            let t = tag(i, self.lps[i].generation);
            match &self.lps[i].loc {
                Loc::Mem { page, slot } => {
                    assert_settled(page, "resident page");
                    assert!(page.test(PageFlags::UPTODATE), "page {i}: {page:?}");
                    assert_eq!(PageRef::strong_count(page), 1, "page {i}: leaked reference");
                    check_page(page.as_bytes(), t, self.seed())
                        .unwrap_or_else(|m| panic!("resident page {i}: {m}"));
                    if let Some(s) = slot {
                        used += 1;
                        if !page.test(PageFlags::DIRTY) {
                            check_page(&self.device_page(*s), t, self.seed())
                                .unwrap_or_else(|m| panic!("clean page {i}: {s} stale: {m}"));
                        }
                    }
                }
                Loc::Swapped(s) => {
                    used += 1;
                    check_page(&self.device_page(*s), t, self.seed())
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
    fn new(
        seed: u64,
        pages: usize,
        target: Target,
        dev: SwapDevice,
        drop_one_in: u32,
        report: &'a mut SwapReport,
    ) -> SwapRun<'a> {
        let lps = (0..pages)
            .map(|i| Lp {
                generation: 0,
                loc: Loc::Mem {
                    page: make_page(tag(i, 0), seed),
                    slot: None,
                },
            })
            .collect();
        SwapRun {
            seed,
            rng: SlotRng::new(seed ^ 0x05a9_0000_05a9),
            target,
            dev,
            lps,
            drop_one_in,
            report,
        }
    }

    /// Rounds until `ops` page operations, then everything swapped in,
    /// verified and its slot freed.
    fn run(&mut self, ops: u64) {
        let t = Instant::now();
        while self.report.page_ops < ops {
            self.round();
        }
        if let Target::Mem(f) = &self.target {
            f.set_enabled(false);
        }
        self.drop_one_in = 0;
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
                    panic!("page {i} at {s} could not be read back without faults")
                }
            }
        }
        self.check_invariant();
        assert_eq!(self.dev.used_slots(), 0);
        let c = self.dev.counters();
        assert_eq!(c.redirtied_pages, self.report.redirtied);
        assert_eq!(c.read_failed_pages, self.report.read_failed);
        assert_eq!(c.pswpout + c.read_pages(), self.report.page_ops);
        assert_eq!(
            c.write_errors + c.read_errors,
            self.report.write_faults + self.report.read_faults
        );
        if c.write_errors + c.read_errors > 0 {
            assert!(!self.dev.error_log().is_empty(), "failures were not logged");
        }
        self.report.time = t.elapsed();
    }
}

fn phase_a(cfg: &Config, report: &mut Report) {
    let mem = Arc::new(MemDevice::new(cfg.slots as usize * PAGE_SIZE));
    let faulty = Arc::new(FaultyMem {
        mem: Arc::clone(&mem),
        inj: Mutex::new(Injector {
            rng: SlotRng::new(cfg.seed ^ 0xfa17_fa17_fa17_fa17),
            one_in: cfg.fault_one_in,
            enabled: true,
            log: Vec::new(),
        }),
    });
    let dev = SwapDevice::new(faulty.clone(), IoMode::AsyncInline, cfg.slots).unwrap();
    // The model counts reads one per swap-in: no readahead here.
    dev.set_page_cluster(0);
    let mut run = SwapRun::new(
        cfg.seed,
        cfg.pages,
        Target::Mem(faulty),
        dev,
        8,
        &mut report.a,
    );
    run.run(cfg.ops / 2);
    let faults = mem.stats().faults;
    report.a.faults = faults;
    assert_eq!(faults, report.a.write_faults + report.a.read_faults);
}

// ---------------------------------------------------------------------------
// Phase B: dropped futures on io_uring.

/// What a slot of the file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotData {
    /// Never written.
    Never,
    /// The pattern of this version.
    Known(u32),
    /// A write of `new` failed, was cancelled, or its outcome is unknown
    /// (its future was dropped before the queue was): `new` or the old
    /// contents.
    Either(Option<u32>, u32),
}

impl SlotData {
    fn version(self) -> Option<u32> {
        match self {
            SlotData::Known(v) => Some(v),
            _ => None,
        }
    }
}

/// Per-slot bookkeeping. The completion callbacks of kept operations
/// update it when they run; an operation whose future was dropped is
/// accounted for by [`PhaseB::release_dropped`], once the queue has no I/O
/// in flight.
struct Track {
    data: Vec<SlotData>,
    version: Vec<u32>,
    writer: Vec<bool>,
    readers: Vec<u32>,
    /// Operations submitted, both kinds.
    submitted: u64,
    /// Completion callbacks run, plus dropped-future operations released
    /// after a drain.
    completed: u64,
    /// Completion callbacks that saw anything but the full length.
    failed: u64,
    anomalies: Vec<String>,
}

impl Track {
    fn anomaly(&mut self, msg: String) {
        if self.anomalies.len() < 16 {
            self.anomalies.push(msg);
        }
    }
}

fn slot_tag(slot: u32, version: u32) -> u64 {
    (1 << 63) | (u64::from(slot) << 32) | u64::from(version)
}

/// Counts wake-ups of futures polled once and then dropped.
struct CountWake(AtomicU64);

impl Wake for CountWake {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Where a kept operation's completion callback leaves its outcome, with
/// the buffers it hands back.
type DoneSlot<B> = Arc<Mutex<Option<Completed<B>>>>;

type OwnedWrite = OwnedIter<Source, Vec<Page>>;
type RefWrite = OwnedIter<Source, Vec<PageRef>>;
type PageRead = OwnedIter<Dest, Vec<Page>>;

/// An operation on a callback kiocb: the callback tracks it and hands its
/// buffers back in `done`.
enum Kept {
    WriteOwned {
        done: DoneSlot<OwnedWrite>,
        first: u32,
        versions: Vec<u32>,
    },
    WriteRef {
        done: DoneSlot<RefWrite>,
        first: u32,
        versions: Vec<u32>,
    },
    Read {
        done: DoneSlot<PageRead>,
        first: u32,
        expect: Vec<SlotData>,
    },
}

impl Kept {
    fn is_complete(&self) -> bool {
        match self {
            Kept::WriteOwned { done, .. } => lock(done).is_some(),
            Kept::WriteRef { done, .. } => lock(done).is_some(),
            Kept::Read { done, .. } => lock(done).is_some(),
        }
    }
}

/// An operation on a future kiocb whose future was dropped: nobody sees its
/// completion, so its slots stay marked (writer or readers) until the queue
/// has been drained, when it has certainly completed.
struct Dropped {
    write: bool,
    first: u32,
    /// A write's new versions (empty for a read).
    versions: Vec<u32>,
    /// What its slots held when it was submitted.
    old: Vec<SlotData>,
}

struct PhaseB<'a> {
    cfg: &'a Config,
    rng: SlotRng,
    queue: Option<UringQueue>,
    track: Arc<Mutex<Track>>,
    kept: VecDeque<Kept>,
    dropped: Vec<Dropped>,
    /// Slots marked by `dropped`.
    held_slots: usize,
    /// Page references given to writes (kept or dropped): intact, and ours
    /// alone once the queue is drained.
    watch: Vec<(PageRef, u64)>,
    canaries: Vec<(PageRef, u64)>,
    canary_serial: u64,
    wakes: Arc<CountWake>,
    path: PathBuf,
    report: &'a mut Report,
}

const MAX_IN_FLIGHT: usize = 32;
const MAX_KEPT: usize = 64;
const CANARIES: usize = 256;

fn page_with(t: u64, seed: u64) -> Page {
    let mut p = Page::new();
    fill_page(p.as_mut_bytes(), t, seed);
    p
}

impl PhaseB<'_> {
    fn queue(&self) -> &UringQueue {
        self.queue.as_ref().expect("queue alive")
    }

    fn seed(&self) -> u64 {
        self.cfg.seed
    }

    fn check_slot_bytes(&self, bytes: &[u8; PAGE_SIZE], slot: u32, data: SlotData, what: &str) {
        let seed = self.seed();
        let ok = match data {
            SlotData::Never => bytes.iter().all(|&b| b == 0),
            SlotData::Known(v) => check_page(bytes, slot_tag(slot, v), seed).is_ok(),
            SlotData::Either(old, new) => {
                check_page(bytes, slot_tag(slot, new), seed).is_ok()
                    || match old {
                        Some(v) => check_page(bytes, slot_tag(slot, v), seed).is_ok(),
                        None => true,
                    }
            }
        };
        if !ok {
            let got = check_page(bytes, slot_tag(slot, 0), seed);
            panic!("{what}: slot {slot} should hold {data:?}; check against v0: {got:?}");
        }
    }

    /// Verifies a kept operation's outcome and the buffers it handed back.
    fn finish_kept(&mut self, k: Kept) {
        let seed = self.seed();
        match k {
            Kept::WriteOwned {
                done,
                first,
                versions,
            } => {
                let out = lock(&done).take().expect("complete");
                assert_eq!(out.result, Ok(versions.len() * PAGE_SIZE));
                assert_eq!(out.buf.count(), 0, "write buffer not advanced");
                let pages = out.buf.into_inner();
                assert_eq!(pages.len(), versions.len());
                for (j, (p, v)) in pages.iter().zip(&versions).enumerate() {
                    check_page(p.as_bytes(), slot_tag(first + j as u32, *v), seed)
                        .unwrap_or_else(|m| panic!("owned write page handed back: {m}"));
                }
                self.report.b_verified_write_pages += versions.len() as u64;
            }
            Kept::WriteRef {
                done,
                first,
                versions,
            } => {
                let out = lock(&done).take().expect("complete");
                assert_eq!(out.result, Ok(versions.len() * PAGE_SIZE));
                assert_eq!(out.buf.count(), 0, "write buffer not advanced");
                let refs = out.buf.into_inner();
                assert_eq!(refs.len(), versions.len());
                for (j, (p, v)) in refs.iter().zip(&versions).enumerate() {
                    check_page(p.as_bytes(), slot_tag(first + j as u32, *v), seed)
                        .unwrap_or_else(|m| panic!("write page reference handed back: {m}"));
                }
                self.report.b_verified_write_pages += versions.len() as u64;
            }
            Kept::Read {
                done,
                first,
                expect,
            } => {
                let out = lock(&done).take().expect("complete");
                assert_eq!(out.result, Ok(expect.len() * PAGE_SIZE));
                assert_eq!(out.buf.count(), 0, "read buffer not advanced");
                let pages = out.buf.into_inner();
                assert_eq!(pages.len(), expect.len());
                for (j, (p, d)) in pages.iter().zip(&expect).enumerate() {
                    self.check_slot_bytes(p.as_bytes(), first + j as u32, *d, "kept read");
                }
                self.report.b_verified_read_pages += expect.len() as u64;
            }
        }
    }

    /// Finishes the kept operations that completed; waits for the oldest
    /// while more than [`MAX_KEPT`] are outstanding.
    fn harvest(&mut self) {
        let mut i = 0;
        while i < self.kept.len() {
            if self.kept[i].is_complete() {
                let k = self.kept.remove(i).unwrap();
                self.finish_kept(k);
            } else {
                i += 1;
            }
        }
        while self.kept.len() > MAX_KEPT {
            let k = self.kept.pop_front().unwrap();
            while !k.is_complete() {
                self.queue().wait(1).unwrap();
            }
            self.finish_kept(k);
        }
    }

    /// Picks `n` consecutive slots that a write (no I/O in flight on them)
    /// or a read (no write in flight) may use, and marks them.
    fn claim(&mut self, write: bool) -> Option<(u32, Vec<u32>, Vec<SlotData>)> {
        let slots = self.cfg.file_slots;
        let n = if self.rng.below(8) == 0 {
            1 + self.rng.below(32)
        } else {
            1 + self.rng.below(8)
        };
        let mut t = lock(&self.track);
        for _ in 0..8 {
            let first = self.rng.below(slots - n + 1);
            let range = first as usize..(first + n) as usize;
            let free = if write {
                range.clone().all(|s| !t.writer[s] && t.readers[s] == 0)
            } else {
                range.clone().all(|s| !t.writer[s])
            };
            if !free {
                continue;
            }
            let mut versions = Vec::with_capacity(n as usize);
            let mut expect = Vec::with_capacity(n as usize);
            for s in range {
                expect.push(t.data[s]);
                if write {
                    t.writer[s] = true;
                    t.version[s] += 1;
                    versions.push(t.version[s]);
                } else {
                    t.readers[s] += 1;
                }
            }
            t.submitted += 1;
            return Some((first, versions, expect));
        }
        None
    }

    /// A callback kiocb for a kept write: the callback tracks the slots
    /// and leaves the outcome, with the buffer, in `slot`.
    fn write_kiocb<I: Send + 'static>(
        &self,
        first: u32,
        versions: &[u32],
        old: Vec<SlotData>,
        iter: I,
        slot: DoneSlot<I>,
    ) -> Kiocb<I> {
        let track = Arc::clone(&self.track);
        let pos = u64::from(first) * PS;
        let len = versions.len() * PAGE_SIZE;
        let versions = versions.to_vec();
        Kiocb::with_callback(pos, iter, move |done: Completed<I>| {
            {
                let mut t = lock(&track);
                t.completed += 1;
                let ok = done.result == Ok(len);
                if ok && done.pos != pos + len as u64 {
                    t.anomaly(format!("write at {pos}: completion position {}", done.pos));
                }
                if !ok {
                    t.failed += 1;
                    if done.result != Err(iov_iter::Error::Os(Errno::ECANCELED)) {
                        t.anomaly(format!("write at {pos} ({len} bytes): {:?}", done.result));
                    }
                }
                for (j, (&v, o)) in versions.iter().zip(old).enumerate() {
                    let s = first as usize + j;
                    if !t.writer[s] {
                        t.anomaly(format!("slot {s}: write completed twice"));
                    }
                    t.writer[s] = false;
                    t.data[s] = if ok {
                        SlotData::Known(v)
                    } else {
                        SlotData::Either(o.version(), v)
                    };
                }
            }
            *lock(&slot) = Some(done);
        })
        .with_flags(IocbFlags::DIRECT)
    }

    /// A callback kiocb for a kept read (as [`PhaseB::write_kiocb`]).
    fn read_kiocb<I: Send + 'static>(
        &self,
        first: u32,
        n: usize,
        iter: I,
        slot: DoneSlot<I>,
    ) -> Kiocb<I> {
        let track = Arc::clone(&self.track);
        let pos = u64::from(first) * PS;
        let len = n * PAGE_SIZE;
        Kiocb::with_callback(pos, iter, move |done: Completed<I>| {
            {
                let mut t = lock(&track);
                t.completed += 1;
                if done.result != Ok(len) {
                    t.failed += 1;
                    if done.result != Err(iov_iter::Error::Os(Errno::ECANCELED)) {
                        t.anomaly(format!("read at {pos} ({len} bytes): {:?}", done.result));
                    }
                } else if done.pos != pos + len as u64 {
                    t.anomaly(format!("read at {pos}: completion position {}", done.pos));
                }
                for s in first as usize..first as usize + n {
                    match t.readers[s].checked_sub(1) {
                        Some(r) => t.readers[s] = r,
                        None => t.anomaly(format!("slot {s}: read completed twice")),
                    }
                }
            }
            *lock(&slot) = Some(done);
        })
        .with_flags(IocbFlags::DIRECT)
    }

    /// Submits a kept operation's kiocb: in flight on return.
    fn submit_kept<I: DioBuf>(&self, kiocb: &mut Kiocb<I>) {
        let r = self
            .queue()
            .submit(kiocb)
            .unwrap_or_else(|e| panic!("submit: {e}"));
        assert!(r.is_queued(), "{r:?}");
    }

    /// Submits `iter` on a future kiocb and drops the future at once, after
    /// polling it once in half the cases (so a waker is registered when it
    /// goes). The I/O goes on; its buffers must stay valid until its CQE,
    /// and be freed after.
    fn submit_dropped<I: DioBuf>(&mut self, pos: u64, iter: I, len: usize) {
        let (kiocb, mut fut) = Kiocb::new_async_with(pos, iter);
        let mut kiocb = kiocb.with_flags(IocbFlags::DIRECT);
        let r = self
            .queue()
            .submit(&mut kiocb)
            .unwrap_or_else(|e| panic!("submit: {e}"));
        assert!(r.is_queued(), "{r:?}");
        drop(kiocb);
        self.report.b_dropped += 1;
        if self.rng.below(2) == 0 {
            let waker = Waker::from(Arc::clone(&self.wakes));
            let mut cx = Context::from_waker(&waker);
            match Pin::new(&mut fut).poll(&mut cx) {
                Poll::Pending => self.report.b_dropped_polled += 1,
                // Completed already: it must have succeeded.
                Poll::Ready(done) => {
                    if done.result != Ok(len) {
                        lock(&self.track).anomaly(format!(
                            "dropped-future op at {pos} ({len} bytes): {:?}",
                            done.result
                        ));
                    }
                }
            }
        }
        drop(fut);
    }

    /// Submits one random write or read; `Some(pages)` when submitted.
    fn submit_one(&mut self, fill: Option<u32>) -> Option<u64> {
        let seed = self.seed();
        let write = fill.is_some() || self.rng.below(2) == 0;
        let (first, versions, expect) = match fill {
            Some(first) => {
                let mut t = lock(&self.track);
                let n = (self.cfg.file_slots - first).min(32);
                let mut versions = Vec::new();
                let mut old = Vec::new();
                for s in first as usize..(first + n) as usize {
                    assert!(!t.writer[s]);
                    t.writer[s] = true;
                    t.version[s] += 1;
                    versions.push(t.version[s]);
                    old.push(t.data[s]);
                }
                t.submitted += 1;
                (first, versions, old)
            }
            None => self.claim(write)?,
        };
        let keep = fill.is_some() || self.rng.below(100) >= 40;
        let n = expect.len();
        let pos = u64::from(first) * PS;
        let len = n * PAGE_SIZE;
        if !keep {
            self.held_slots += n;
            self.dropped.push(Dropped {
                write,
                first,
                versions: versions.clone(),
                old: expect.clone(),
            });
        }
        if write {
            let pages = versions
                .iter()
                .enumerate()
                .map(|(j, &v)| page_with(slot_tag(first + j as u32, v), seed));
            if self.rng.below(2) == 0 {
                let iter = OwnedIter::<Source, _>::new(pages.collect::<Vec<Page>>());
                if keep {
                    let done = DoneSlot::default();
                    let mut k = self.write_kiocb(first, &versions, expect, iter, done.clone());
                    self.submit_kept(&mut k);
                    self.kept.push_back(Kept::WriteOwned {
                        done,
                        first,
                        versions,
                    });
                } else {
                    self.submit_dropped(pos, iter, len);
                }
            } else {
                let refs: Vec<PageRef> = pages.map(PageRef::new).collect();
                for (j, p) in refs.iter().enumerate() {
                    let t = slot_tag(first + j as u32, versions[j]);
                    self.watch.push((PageRef::clone(p), t));
                }
                let iter = OwnedIter::<Source, _>::new(refs);
                if keep {
                    let done = DoneSlot::default();
                    let mut k = self.write_kiocb(first, &versions, expect, iter, done.clone());
                    self.submit_kept(&mut k);
                    self.kept.push_back(Kept::WriteRef {
                        done,
                        first,
                        versions,
                    });
                } else {
                    self.submit_dropped(pos, iter, len);
                }
            }
        } else {
            let pages: Vec<Page> = (0..n).map(|_| Page::new()).collect();
            let iter = OwnedIter::<Dest, _>::new(pages);
            if keep {
                let done = DoneSlot::default();
                let mut k = self.read_kiocb(first, n, iter, done.clone());
                self.submit_kept(&mut k);
                self.kept.push_back(Kept::Read {
                    done,
                    first,
                    expect,
                });
            } else {
                self.submit_dropped(pos, iter, len);
            }
        }
        self.report.b_submitted += 1;
        self.report.b_page_ops += n as u64;
        Some(n as u64)
    }

    /// Accounts for the dropped-future operations, which the caller knows
    /// have completed (no I/O in flight): their slots are free again, and a
    /// write's slots hold its data (`certain`, no faults in phase B1), or
    /// the old data or the new (after the queue was dropped with them in
    /// flight).
    fn release_dropped(&mut self, certain: bool) {
        let mut t = lock(&self.track);
        for d in self.dropped.drain(..) {
            t.completed += 1;
            for (j, &o) in d.old.iter().enumerate() {
                let s = d.first as usize + j;
                if d.write {
                    if !t.writer[s] {
                        t.anomaly(format!("slot {s}: dropped write lost its mark"));
                    }
                    t.writer[s] = false;
                    let v = d.versions[j];
                    t.data[s] = if certain {
                        SlotData::Known(v)
                    } else {
                        SlotData::Either(o.version(), v)
                    };
                } else {
                    match t.readers[s].checked_sub(1) {
                        Some(r) => t.readers[s] = r,
                        None => t.anomaly(format!("slot {s}: dropped read lost its mark")),
                    }
                }
            }
        }
        self.held_slots = 0;
    }

    fn churn_canaries(&mut self) {
        let k = self.rng.below(CANARIES as u32) as usize;
        let (page, t) = &self.canaries[k];
        check_page(page.as_bytes(), *t, self.seed())
            .unwrap_or_else(|m| panic!("canary page {k} corrupted: {m}"));
        self.canary_serial += 1;
        let t = (1 << 62) | self.canary_serial;
        self.canaries[k] = (PageRef::new(page_with(t, self.seed())), t);
    }

    /// Drains the queue and checks everything.
    fn checkpoint(&mut self) {
        self.queue().drain().unwrap();
        assert_eq!(self.queue().in_flight(), 0);
        while let Some(k) = self.kept.pop_front() {
            assert!(k.is_complete(), "drained queue left an operation pending");
            self.finish_kept(k);
        }
        // Drained: the operations whose futures were dropped are done.
        self.release_dropped(true);
        {
            let t = lock(&self.track);
            assert!(t.anomalies.is_empty(), "{:#?}", t.anomalies);
            assert_eq!(t.failed, 0, "operations failed");
            assert_eq!(t.submitted, t.completed, "completions missing");
            assert!(t.writer.iter().all(|&w| !w) && t.readers.iter().all(|&r| r == 0));
        }
        for (p, t) in self.watch.drain(..) {
            assert_eq!(
                PageRef::strong_count(&p),
                1,
                "the queue kept a page reference"
            );
            check_page(p.as_bytes(), t, self.cfg.seed)
                .unwrap_or_else(|m| panic!("page given to a write corrupted: {m}"));
            self.report.b_verified_write_pages += 1;
        }
        for (k, (p, t)) in self.canaries.iter().enumerate() {
            check_page(p.as_bytes(), *t, self.cfg.seed)
                .unwrap_or_else(|m| panic!("canary page {k} corrupted: {m}"));
        }
        self.verify_file();
        self.report.b_checkpoints += 1;
    }

    /// Reads the file back through the page cache (not the path under
    /// test) and checks every slot.
    fn verify_file(&mut self) {
        let f = File::open(&self.path).unwrap();
        let mut buf = vec![0u8; self.cfg.file_slots as usize * PAGE_SIZE];
        f.read_exact_at(&mut buf, 0).unwrap();
        let data = lock(&self.track).data.clone();
        for (s, d) in data.into_iter().enumerate() {
            let bytes: &[u8; PAGE_SIZE] =
                buf[s * PAGE_SIZE..(s + 1) * PAGE_SIZE].try_into().unwrap();
            self.check_slot_bytes(bytes, s as u32, d, "file");
        }
        self.report.b_verified_slots += u64::from(self.cfg.file_slots);
    }

    fn wait_room(&self) {
        while self.queue().in_flight() >= MAX_IN_FLIGHT {
            self.queue().wait(1).unwrap();
        }
    }
}

/// The file and a queue on it, or why not (after a loud message).
fn open_queue(path: &PathBuf, slots: u32) -> Result<UringQueue, String> {
    let _ = std::fs::remove_file(path);
    let file = match DirectFile::options().create(true).truncate(true).open(path) {
        Ok(f) => f,
        Err(e) if matches!(e.errno(), Errno::EINVAL | Errno::EOPNOTSUPP) => {
            return Err(format!("O_DIRECT refused on {}: {e}", path.display()));
        }
        Err(e) => panic!("open {}: {e}", path.display()),
    };
    file.set_len(u64::from(slots) * PS).unwrap();
    match UringQueue::builder()
        .depth(MAX_IN_FLIGHT as u32)
        .build(file)
    {
        Ok(q) => Ok(q),
        Err(e) if matches!(e.errno(), Errno::ENOSYS | Errno::EPERM | Errno::ENOMEM) => {
            Err(format!("io_uring setup failed: {e}"))
        }
        Err(e) => panic!("io_uring setup: {e}"),
    }
}

fn phase_b(cfg: &Config, report: &mut Report) {
    let t0 = Instant::now();
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "swap_stress_{}_{:x}.swap",
        std::process::id(),
        cfg.seed & 0xffff_ffff
    ));
    let queue = match open_queue(&path, cfg.file_slots) {
        Ok(q) => q,
        Err(why) => {
            eprintln!("\n**************** SKIPPED swap_stress phase B: {why} ****************\n");
            report.b_skipped = Some(why);
            return;
        }
    };
    assert!(
        queue.depth() >= MAX_IN_FLIGHT,
        "queue depth {}",
        queue.depth()
    );
    let n = cfg.file_slots as usize;
    let mut b = PhaseB {
        cfg,
        rng: SlotRng::new(cfg.seed ^ 0xd20b_d20b_d20b_d20b),
        queue: Some(queue),
        track: Arc::new(Mutex::new(Track {
            data: vec![SlotData::Never; n],
            version: vec![0; n],
            writer: vec![false; n],
            readers: vec![0; n],
            submitted: 0,
            completed: 0,
            failed: 0,
            anomalies: Vec::new(),
        })),
        kept: VecDeque::new(),
        dropped: Vec::new(),
        held_slots: 0,
        watch: Vec::new(),
        canaries: Vec::new(),
        canary_serial: 0,
        wakes: Arc::new(CountWake(AtomicU64::new(0))),
        path: path.clone(),
        report,
    };
    b.canaries = (0..CANARIES as u64)
        .map(|k| {
            let t = (1 << 62) | k;
            (PageRef::new(page_with(t, cfg.seed)), t)
        })
        .collect();
    b.canary_serial = CANARIES as u64;

    // Fill every slot once, 32 pages per write, all kept.
    for first in (0..cfg.file_slots).step_by(32) {
        b.wait_room();
        b.submit_one(Some(first)).unwrap();
        b.harvest();
    }
    b.checkpoint();

    // The slots of dropped-future operations stay marked until a
    // checkpoint: one comes early when they hold a quarter of the file.
    let held_max = cfg.file_slots as usize / 4;
    let target = (cfg.ops - cfg.ops / 2) / 2;
    let mut next_check = b.report.b_page_ops + cfg.check_every;
    while b.report.b_page_ops < target {
        b.wait_room();
        let mut stuck = false;
        if b.submit_one(None).is_none() {
            if b.queue().in_flight() == 0 {
                // Only dropped-future operations, done, are in the way.
                stuck = true;
            } else {
                // Every pick collided with I/O in flight: let some finish.
                b.queue().wait(1).unwrap();
            }
        }
        if b.rng.below(4) == 0 {
            b.queue().reap();
        }
        b.harvest();
        if b.rng.below(8) == 0 {
            b.churn_canaries();
        }
        let early = stuck || b.held_slots >= held_max;
        if b.report.b_page_ops >= next_check || early {
            if b.report.b_page_ops < next_check {
                b.report.b_early_checkpoints += 1;
            }
            b.checkpoint();
            next_check = b.report.b_page_ops + cfg.check_every;
        }
    }
    b.checkpoint();
    let wakes = b.wakes.0.load(Ordering::Relaxed);
    assert!(
        wakes <= b.report.b_dropped_polled,
        "{wakes} wake-ups for {} registered wakers",
        b.report.b_dropped_polled
    );

    // Last: drop the queue with up to 32 writes and reads in flight, kept
    // ones (their callbacks) and dropped-future ones. Every callback runs
    // (done or ECANCELED) before the drop returns, and the file holds, per
    // slot, the new data or the old.
    for _ in 0..MAX_IN_FLIGHT {
        b.submit_one(None);
    }
    // Nobody looks at the kept outcomes any more: the callbacks still run
    // and track, and free the buffers.
    let kept: Vec<Kept> = b.kept.drain(..).collect();
    drop(kept);
    let (failed_before, tracked) = {
        let t = lock(&b.track);
        (t.failed, t.submitted - t.completed - b.dropped.len() as u64)
    };
    b.report.b_in_flight_at_drop = b.queue().in_flight() as u64;
    b.report.b_tracked_at_drop = tracked;
    assert!(tracked <= b.report.b_in_flight_at_drop);
    drop(b.queue.take());
    {
        let t = lock(&b.track);
        assert!(t.anomalies.is_empty(), "{:#?}", t.anomalies);
        assert_eq!(
            t.submitted - t.completed,
            b.dropped.len() as u64,
            "queue drop lost completions"
        );
        b.report.b_tracked_cancelled_on_drop = t.failed - failed_before;
    }
    // Every CQE was reaped before the drop returned: the dropped-future
    // operations are done too, with the old data or the new.
    b.release_dropped(false);
    {
        let t = lock(&b.track);
        assert!(t.anomalies.is_empty(), "{:#?}", t.anomalies);
        assert_eq!(t.submitted, t.completed);
        assert!(t.writer.iter().all(|&w| !w) && t.readers.iter().all(|&r| r == 0));
    }
    for (p, t) in b.watch.drain(..) {
        assert_eq!(PageRef::strong_count(&p), 1, "dropped queue kept a page");
        check_page(p.as_bytes(), t, cfg.seed).unwrap();
    }
    for (k, (p, t)) in b.canaries.iter().enumerate() {
        check_page(p.as_bytes(), *t, cfg.seed)
            .unwrap_or_else(|m| panic!("canary page {k} corrupted: {m}"));
    }
    b.verify_file();
    b.report.b_time = t0.elapsed();
    let _ = std::fs::remove_file(&path);
}

/// Phase B2: the example's swap paths on io_uring (`IoMode::Uring`),
/// swap-in handles dropped at random (one in 3), the queue's depth the
/// in-flight limit. No faults: a real file.
fn phase_b2(cfg: &Config, report: &mut Report, ops: u64) {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "swap_stress_dev_{}_{:x}.swap",
        std::process::id(),
        cfg.seed & 0xffff_ffff
    ));
    let queue = match open_queue(&path, cfg.file_slots) {
        Ok(q) => q,
        Err(why) => panic!("phase B1 ran, but now: {why}"),
    };
    let side = File::open(&path).unwrap();
    let dev = SwapDevice::new(Arc::new(queue), IoMode::Uring, u64::from(cfg.file_slots)).unwrap();
    dev.set_page_cluster(0); // as phase A

    let mut run = SwapRun::new(
        cfg.seed ^ 0xb2,
        cfg.pages,
        Target::File(side),
        dev,
        3,
        &mut report.c,
    );
    run.run(ops);
    drop(run);
    let _ = std::fs::remove_file(&path);
}
