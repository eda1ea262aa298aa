//! Phase B1: io_uring operations whose futures are dropped at random, on
//! a [`UringQueue`] over an `O_DIRECT` file (see the crate docs in
//! `main.rs`).

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use iov_iter::backend::file::DirectFile;
use iov_iter::backend::uring::UringQueue;
use iov_iter::buf::OwnedIter;
use iov_iter::dio::{DioBuf, DirectIo};
use iov_iter::kiocb::{Completed, IocbFlags, Kiocb};
use iov_iter::{Dest, Errno, PAGE_SIZE, Page, PageRef, Source};

use iov_iter_swap::content::{check_page, fill_page};
use iov_iter_swap::swapmap::SlotRng;

use crate::Config;
use crate::common::{PS, Summary, lock, rate};

/// What phase B1 did.
#[derive(Debug, Default)]
pub struct Report {
    pub b_skipped: Option<String>,
    pub b_page_ops: u64,
    pub b_submitted: u64,
    pub b_dropped: u64,
    pub b_dropped_polled: u64,
    pub b_verified_read_pages: u64,
    pub b_verified_write_pages: u64,
    pub b_verified_slots: u64,
    /// Checkpoints, and of them those that came before `check_every`
    /// page ops to free the slots held by dropped-future operations.
    pub b_checkpoints: u64,
    pub b_early_checkpoints: u64,
    /// Operations in flight when the queue was dropped (both kinds), the
    /// callback-tracked ones among them, and how many of those the drop
    /// cancelled (ECANCELED).
    pub b_in_flight_at_drop: u64,
    pub b_tracked_at_drop: u64,
    pub b_tracked_cancelled_on_drop: u64,
    pub b_time: Duration,
}

impl Report {
    pub fn print(&self) {
        println!(
            "    {} page ops in {} operations, {:.2} s, {:.0} ops/s",
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
    }

    pub fn summary(&self) -> Summary {
        Summary {
            name: "B1 uring dropped futures",
            ops: self.b_page_ops,
            faults: 0,
            failures: self.b_tracked_cancelled_on_drop,
            retries: 0,
            lost: 0,
            verified: self.b_verified_read_pages
                + self.b_verified_write_pages
                + self.b_verified_slots,
            time: self.b_time,
            skipped: self.b_skipped.clone(),
        }
    }
}

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

pub const MAX_IN_FLIGHT: usize = 32;
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
pub fn open_queue(path: &PathBuf, slots: u32) -> Result<UringQueue, String> {
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

pub fn phase_b(cfg: &Config, ops: u64) -> Report {
    let mut report = Report::default();
    let report = &mut report;
    let t0 = Instant::now();
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "swap_stress_{}_{:x}.swap",
        std::process::id(),
        cfg.seed & 0xffff_ffff
    ));
    let queue = match open_queue(&path, cfg.file_slots) {
        Ok(q) => q,
        Err(why) => {
            report.b_skipped = Some(crate::common::skip("B", &why));
            return std::mem::take(report);
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
    let target = ops;
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
    std::mem::take(b.report)
}
