//! The swap cache's state machine ([`SwapDevice`] over a RAM device) under
//! random interleavings of swap-out, swap-in, `swap_free`, redirtying and
//! completion, checked against a model of what each slot holds.
//!
//! Each input picks a small swap area (2 to 17 slots, so freed slots come
//! back at once), an I/O mode (sync, async inline, or async with
//! completions deferred by the `MemDevice` in FIFO, reverse or shuffled
//! order), the device's `max_segs` (so batches split) and the readahead
//! cluster; then an op stream: swap-out of one page (a fresh page, an
//! all-zero page, or one the program still holds: redirtied, modified in
//! place) to a new slot, a slot held, or any index (freed, the header, out
//! of range), with or without the one `SwapPlug`; plugged batches over
//! `alloc_contiguous` runs; swap-in (`swap_readpage`) with or without the
//! plug; waiting on a handle or dropping it; `swap_free`; slot allocation
//! (next-fit, random, contiguous); redirtying a page under writeback;
//! dropping the program's reference to a page (under writeback or not);
//! unplugging; completing some or all deferred requests in the device's
//! order; `poll`; `drain`; faults (EIO, short transfers) on the next
//! transfers, reads, writes or both; changing the readahead cluster.
//!
//! The model, per slot: allocated or not (from the program's side), what
//! the device holds there (a page's tag, or unknown after a failed write),
//! the zero mark, redirtied, the page whose write is on its way. It learns
//! a write's outcome when its page's writeback ends (from the swap cache's
//! redirtied entry, or the page's `DIRTY` bit). Checked:
//!
//! * every call's outcome is the one the contract gives for the model's
//!   state (`Busy`, `BadSlot`, `InMemory`, `Ok(false)` for a clean page,
//!   double frees refused);
//! * a swap-in returns the page under writeback itself (`Arc::ptr_eq`), the
//!   zeros of a zero slot, or exactly the bytes of the last page
//!   successfully written to the slot, read or read ahead; `Err(Read)` only
//!   after a read fault was armed; never a page not uptodate as data;
//! * a failed write leaves its page `DIRTY` with its bytes, `RECLAIM` and
//!   `WRITEBACK` clear, and the slot redirtied; the program may then change
//!   the page in place (`Arc::get_mut` works: nobody else holds it);
//! * a slot freed under writeback is not handed out again until the write
//!   has landed (every allocation is checked against the writes on their
//!   way), and the device holds, for every slot with no write on its way,
//!   the model's bytes (so no late write overwrote a reused slot);
//! * whenever nothing is in flight or plugged: no I/O in flight, the
//!   allocated-slot count and the redirtied set equal the model's;
//! * at the end (unplug, drain, every handle waited, every slot freed):
//!   no swap-cache entry, no read-ahead page, no allocated slot, every page
//!   the program holds referenced once and never weakly (nothing leaked),
//!   the header slot untouched, and the counters consistent with the model
//!   (`pswpout`, zero pages in and out, batch histograms, read outcomes,
//!   redirtied pages, cache hits, deferred frees).
//!
//! Not covered: large folios (`swap_writefolio` / `swap_readfolio`), reads
//! into the caller's memory (`swap_read_into`), threads.

#![no_main]

use std::sync::{Arc, OnceLock, Weak};

use arbitrary::{Result, Unstructured};
use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, PendingOrder};
use iov_iter::dio::DirectIo;
use iov_iter::{PAGE_SIZE, Page, PageFlags, PageRef};
use iov_iter_swap::swapio::{IoMode, SwapDevice, SwapError, SwapIn, SwapPlug};
use iov_iter_swap::swapmap::{Slot, SlotRng};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = fuzz_one(&mut u);
});

/// Distinct page contents: tag `t` is `PAGE_SIZE` bytes of [`table`] from
/// `t * STRIDE`.
const TAGS: u16 = 1024;
const STRIDE: usize = 64;
/// Tags below this are the device's initial bytes (slot `s` holds tag `s`).
const FIRST_PAGE_TAG: u16 = 32;
/// Most pages one input creates.
const MAX_PAGES: usize = 48;
/// Most ops one input runs.
const MAX_OPS: usize = 300;

/// Pseudo-random bytes, never zero (so only a zero page is all zeros),
/// made once: a page's bytes are a slice of it, copied and compared with
/// `memcpy` / `memcmp` rather than byte loops.
fn table() -> &'static [u8] {
    static T: OnceLock<Vec<u8>> = OnceLock::new();
    T.get_or_init(|| {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..PAGE_SIZE + usize::from(TAGS) * STRIDE)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8 | 1
            })
            .collect()
    })
}

static ZEROS: [u8; PAGE_SIZE] = [0; PAGE_SIZE];

/// What a page or a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bytes {
    Tag(u16),
    Zero,
    /// Unknown: a failed (possibly partial) write went there.
    Any,
}

impl Bytes {
    fn bytes(self) -> Option<&'static [u8]> {
        match self {
            Bytes::Tag(t) => {
                let at = usize::from(t) * STRIDE;
                Some(&table()[at..at + PAGE_SIZE])
            }
            Bytes::Zero => Some(&ZEROS),
            Bytes::Any => None,
        }
    }
}

#[derive(Debug, Clone)]
struct SlotM {
    /// Allocated, from the program's side (a deferred free counts as
    /// freed).
    allocated: bool,
    /// What the device holds at the slot.
    dev: Bytes,
    /// The zero map's mark.
    zero: bool,
    /// The last write failed (and the slot was neither written again nor
    /// freed since).
    redirtied: bool,
    /// The page (index into `St::pages`) whose write to the slot is in a
    /// plug or in flight.
    writing: Option<usize>,
    /// A swap-in may have a read of the slot on its way.
    maybe_reading: bool,
}

struct PageM {
    /// The program's reference (`None` once it dropped the page).
    page: Option<PageRef>,
    /// Kept only for a page dropped under writeback, to see the write end.
    weak: Option<Weak<Page>>,
    /// The page's identity.
    ptr: usize,
    /// Its bytes.
    tag: Bytes,
    /// What its `DIRTY` bit must be.
    dirty: bool,
    /// The slot it is being written to.
    wb: Option<u32>,
    /// The program set `DIRTY` again while it was under writeback.
    redirtied_by_us: bool,
}

/// A swap-in handle and what it must resolve to.
struct H {
    h: SwapIn,
    slot: u32,
    want: Bytes,
    /// The page it must be (a page under writeback).
    ptr: Option<usize>,
}

struct St {
    mem: Arc<MemDevice>,
    dev: SwapDevice,
    deferred: bool,
    nslots: u32,
    slots: Vec<SlotM>,
    pages: Vec<PageM>,
    handles: Vec<H>,
    plug: SwapPlug,
    next_tag: u16,
    read_faults: bool,
    rng: SlotRng,
    buf: Vec<u8>,
    // Tallies for the counters.
    pswpout: u64,
    zero_out: u64,
    zero_in: u64,
    wb_hits: u64,
    deferred_known: u64,
    failed_known: u64,
    failed_unknown: u64,
}

fn fuzz_one(u: &mut Unstructured<'_>) -> Result<()> {
    let nslots = u.int_in_range(2..=17u32)?;
    let mode = match u.int_in_range(0..=5u8)? {
        0 => IoMode::Sync,
        1 => IoMode::AsyncInline,
        _ => IoMode::Uring,
    };
    let order = match u.int_in_range(0..=3u8)? {
        0 => PendingOrder::Fifo,
        1 => PendingOrder::Reverse,
        _ => PendingOrder::Shuffled(u.arbitrary()?),
    };
    let max_segs = match u.int_in_range(0..=3u8)? {
        0 => u.int_in_range(1..=4usize)?,
        _ => usize::MAX,
    };
    let page_cluster = u.int_in_range(0..=3u32)?;
    let seed: u64 = u.arbitrary()?;

    // The device: slot `s` starts with tag `s`.
    let mut init = Vec::with_capacity(nslots as usize * PAGE_SIZE);
    for s in 0..nslots {
        init.extend_from_slice(Bytes::Tag(s as u16).bytes().unwrap());
    }
    let mut mem = MemDevice::from_vec(init);
    if max_segs != usize::MAX {
        mem = mem.with_max_segs(max_segs);
    }
    let mem = Arc::new(mem);
    let deferred = mode == IoMode::Uring;
    if deferred {
        mem.defer_completions(Some(order));
    }
    let dev = SwapDevice::new(mem.clone() as Arc<dyn DirectIo>, mode, u64::from(nslots))
        .expect("a swap map");
    dev.set_page_cluster(page_cluster);
    let mut st = St {
        mem,
        dev,
        deferred,
        nslots,
        slots: (0..nslots)
            .map(|s| SlotM {
                allocated: false,
                dev: Bytes::Tag(s as u16),
                zero: false,
                redirtied: false,
                writing: None,
                maybe_reading: false,
            })
            .collect(),
        pages: Vec::new(),
        handles: Vec::new(),
        plug: SwapPlug::new(),
        next_tag: FIRST_PAGE_TAG,
        read_faults: false,
        rng: SlotRng::new(seed),
        buf: vec![0; PAGE_SIZE],
        pswpout: 0,
        zero_out: 0,
        zero_in: 0,
        wb_hits: 0,
        deferred_known: 0,
        failed_known: 0,
        failed_unknown: 0,
    };
    let mut ops = 0;
    while !u.is_empty() && ops < MAX_OPS {
        ops += 1;
        if st.op(u).is_err() {
            break;
        }
        st.refresh();
        st.check_pages();
        st.check_deferred_frees();
        if st.quiescent() {
            st.check_quiescent();
        }
    }
    st.finish();
    Ok(())
}

impl St {
    fn op(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        match u.int_in_range(0..=23u8)? {
            0..=3 => {
                let pi = self.pick_page(u)?;
                let s = self.pick_slot(u, true)?;
                let plugged = u.arbitrary()?;
                self.swap_out(pi, s, plugged);
            }
            4 => self.batch(u)?,
            5..=8 => {
                let s = self.pick_slot(u, false)?;
                let plugged = u.int_in_range(0..=2u8)? == 0;
                self.swap_in(s, plugged);
            }
            9 | 10 => {
                if !self.handles.is_empty() {
                    let i = u.choose_index(self.handles.len())?;
                    let unplug = u.arbitrary()?;
                    self.wait(i, unplug);
                }
            }
            11 => {
                if !self.handles.is_empty() {
                    let i = u.choose_index(self.handles.len())?;
                    drop(self.handles.swap_remove(i));
                }
            }
            12 | 13 => {
                let s = self.pick_slot(u, false)?;
                self.free(s);
            }
            14 => {
                let how = u.int_in_range(0..=2u8)?;
                let n = u.int_in_range(1..=4u32)?;
                self.alloc(how, n);
            }
            15 => {
                // Redirty a page under writeback.
                let wb: Vec<usize> = (0..self.pages.len())
                    .filter(|&i| self.pages[i].wb.is_some() && self.pages[i].page.is_some())
                    .collect();
                if !wb.is_empty() {
                    let i = wb[u.choose_index(wb.len())?];
                    let pm = &mut self.pages[i];
                    pm.page.as_ref().unwrap().set_flags(PageFlags::DIRTY);
                    pm.dirty = true;
                    pm.redirtied_by_us = true;
                }
            }
            16 => {
                // The program drops its reference to a page.
                let alive: Vec<usize> = (0..self.pages.len())
                    .filter(|&i| self.pages[i].page.is_some())
                    .collect();
                if !alive.is_empty() {
                    let i = alive[u.choose_index(alive.len())?];
                    let pm = &mut self.pages[i];
                    let page = pm.page.take().unwrap();
                    if pm.wb.is_some() {
                        pm.weak = Some(Arc::downgrade(&page));
                    }
                }
            }
            17 => match u.int_in_range(0..=3u8)? {
                0 => self.plug.write_unplug(),
                1 => self.plug.read_unplug(),
                2 => self.plug.unplug(),
                _ => self.plug = SwapPlug::new(),
            },
            18 | 19 => {
                let n = u.int_in_range(1..=4usize)?;
                self.mem.complete_pending(n);
            }
            20 => match u.int_in_range(0..=2u8)? {
                0 => {
                    self.mem.complete_pending(usize::MAX);
                }
                1 => {
                    self.dev.poll();
                }
                _ => {
                    self.plug.unplug();
                    self.dev.drain().expect("drain");
                    assert_eq!(self.mem.pending(), 0);
                    assert_eq!(self.dev.in_flight(), 0);
                }
            },
            21 => {
                let fault = match u.int_in_range(0..=2u8)? {
                    0 => Fault::EIO,
                    1 => Fault::Short(u.int_in_range(0..=8u32)? as usize * 512),
                    _ => Fault::Short(u.int_in_range(0..=3 * PAGE_SIZE)?),
                };
                let n = u.int_in_range(1..=2u32)?;
                let plan = FaultPlan::next(n, fault);
                let plan = match u.int_in_range(0..=2u8)? {
                    0 => plan.writes_only(),
                    1 => {
                        self.read_faults = true;
                        plan.reads_only()
                    }
                    _ => {
                        self.read_faults = true;
                        plan
                    }
                };
                self.mem.inject(plan);
            }
            22 => self.dev.set_page_cluster(u.int_in_range(0..=3u32)?),
            _ => {
                // The program changes a page it holds in place.
                let alive: Vec<usize> = (0..self.pages.len())
                    .filter(|&i| self.pages[i].page.is_some() && self.pages[i].wb.is_none())
                    .collect();
                if !alive.is_empty() {
                    let i = alive[u.choose_index(alive.len())?];
                    let zero = u.int_in_range(0..=5u8)? == 0;
                    self.modify(i, zero);
                }
            }
        }
        Ok(())
    }

    fn fresh_tag(&mut self, zero: bool) -> Bytes {
        if zero {
            return Bytes::Zero;
        }
        let t = self.next_tag;
        self.next_tag = if t + 1 >= TAGS { FIRST_PAGE_TAG } else { t + 1 };
        Bytes::Tag(t)
    }

    /// A page of the program's: an existing one, or a new dirty one.
    fn pick_page(&mut self, u: &mut Unstructured<'_>) -> Result<usize> {
        let alive: Vec<usize> = (0..self.pages.len())
            .filter(|&i| self.pages[i].page.is_some())
            .collect();
        if !alive.is_empty() && (self.pages.len() >= MAX_PAGES || u.int_in_range(0..=2u8)? == 0) {
            return Ok(alive[u.choose_index(alive.len())?]);
        }
        if self.pages.len() >= MAX_PAGES {
            return Err(arbitrary::Error::NotEnoughData);
        }
        let zero = u.int_in_range(0..=7u8)? == 0;
        Ok(self.new_page(zero))
    }

    fn new_page(&mut self, zero: bool) -> usize {
        let tag = self.fresh_tag(zero);
        let mut page = Page::new();
        page.as_mut_bytes().copy_from_slice(tag.bytes().unwrap());
        page.set_flags(PageFlags::UPTODATE | PageFlags::DIRTY);
        let page = PageRef::new(page);
        self.pages.push(PageM {
            ptr: Arc::as_ptr(&page) as usize,
            page: Some(page),
            weak: None,
            tag,
            dirty: true,
            wb: None,
            redirtied_by_us: false,
        });
        self.pages.len() - 1
    }

    /// A slot index: mostly one the model holds (or, for a swap-out, a new
    /// one), else anything from the header to one past the end.
    fn pick_slot(&mut self, u: &mut Unstructured<'_>, may_alloc: bool) -> Result<u32> {
        let held: Vec<u32> = (0..self.nslots)
            .filter(|&s| self.slots[s as usize].allocated)
            .collect();
        match u.int_in_range(0..=7u8)? {
            0 => u.int_in_range(0..=self.nslots),
            1..=3 if may_alloc => Ok(self.alloc(0, 1).unwrap_or(0)),
            _ if !held.is_empty() => Ok(held[u.choose_index(held.len())?]),
            _ => u.int_in_range(0..=self.nslots),
        }
    }

    /// Allocates slots (`how`: next-fit, random, `n` contiguous) and checks
    /// each against the model; returns the first.
    fn alloc(&mut self, how: u8, n: u32) -> Option<u32> {
        // A write that ended inside this op (an unplug, an inline
        // completion) frees its slot: the model learns it first.
        self.refresh();
        let got: Vec<u32> = match how {
            0 => self.dev.alloc_slot().map(|s| vec![s.index()]),
            1 => self
                .dev
                .alloc_random(&mut self.rng)
                .map(|s| vec![s.index()]),
            _ => self
                .dev
                .alloc_contiguous(n)
                .map(|r| r.iter().map(Slot::index).collect()),
        }
        .unwrap_or_default();
        if got.is_empty() {
            let model_free = self.slots[1..].iter().filter(|m| !m.allocated).count() as u32;
            assert!(
                self.dev.free_slots() <= model_free,
                "free slots {} > model {model_free}",
                self.dev.free_slots()
            );
            if how < 2 {
                // Every slot the model calls free with no I/O on its way
                // would have been found.
                let idle_free = self.slots[1..]
                    .iter()
                    .filter(|m| !m.allocated && m.writing.is_none() && !m.maybe_reading)
                    .count();
                assert!(
                    idle_free == 0 || !self.quiescent_reads(),
                    "no slot allocated, {idle_free} free and idle"
                );
            }
        }
        for &s in &got {
            assert!(
                s >= 1 && s < self.nslots,
                "allocated slot {s} of {}",
                self.nslots
            );
            let m = &mut self.slots[s as usize];
            assert!(!m.allocated, "slot {s} allocated twice");
            assert!(
                m.writing.is_none(),
                "slot {s} handed out again while a write to it is on its way"
            );
            m.allocated = true;
            m.zero = false;
            m.redirtied = false;
        }
        got.first().copied()
    }

    /// Whether no read can be on its way (nothing deferred, nothing
    /// plugged).
    fn quiescent_reads(&self) -> bool {
        self.mem.pending() == 0 && self.plug.pending().1 == 0
    }

    fn quiescent(&self) -> bool {
        self.mem.pending() == 0 && self.plug.pending() == (0, 0)
    }

    fn swap_out(&mut self, pi: usize, s: u32, plugged: bool) {
        self.refresh();
        let pm = &self.pages[pi];
        let page = pm.page.clone().expect("an alive page");
        let page_wb = pm.wb.is_some();
        assert_eq!(
            page.test(PageFlags::WRITEBACK),
            page_wb,
            "page {pi} writeback"
        );
        let plug = if plugged { Some(&mut self.plug) } else { None };
        let res = self.dev.swap_writepage(page.clone(), Slot::new(s), plug);
        let sm = self.slots.get(s as usize).cloned();
        let allocated = sm.as_ref().is_some_and(|m| m.allocated);
        let writing = sm.as_ref().is_some_and(|m| m.writing.is_some());
        let reading = sm.as_ref().is_some_and(|m| m.maybe_reading);
        let dirty = self.pages[pi].dirty;
        let ok = match &res {
            _ if page_wb => matches!(res, Err(SwapError::Busy(_))),
            _ if !allocated => matches!(res, Err(SwapError::BadSlot(_))),
            _ if writing => matches!(res, Err(SwapError::Busy(_))),
            Err(SwapError::Busy(_)) => reading,
            Ok(d) => *d == dirty,
            _ => false,
        };
        assert!(
            ok,
            "swap-out of page {pi} to slot {s}: {res:?} (page under writeback {page_wb}, \
             slot {sm:?}, dirty {dirty})"
        );
        if res != Ok(true) {
            assert_eq!(
                page.test(PageFlags::DIRTY),
                dirty,
                "a refused swap-out left DIRTY alone"
            );
            return;
        }
        let pm = &mut self.pages[pi];
        pm.dirty = false;
        let m = &mut self.slots[s as usize];
        m.redirtied = false;
        if pm.tag == Bytes::Zero {
            assert!(
                !page.test(PageFlags::DIRTY | PageFlags::WRITEBACK),
                "a zero page is clean at once"
            );
            m.zero = true;
            self.zero_out += 1;
        } else {
            m.zero = false;
            m.writing = Some(pi);
            pm.wb = Some(s);
            self.pswpout += 1;
        }
    }

    /// A plugged batch of fresh pages over a contiguous run of new slots.
    fn batch(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        let n = u.int_in_range(2..=8u32)?;
        let Some(first) = self.alloc(2, n) else {
            return Ok(());
        };
        for s in first..first + n {
            let pi = if self.pages.len() < MAX_PAGES {
                let zero = u.int_in_range(0..=7u8)? == 0;
                self.new_page(zero)
            } else {
                self.pick_page(u)?
            };
            self.swap_out(pi, s, true);
        }
        if u.arbitrary()? {
            self.plug.write_unplug();
        }
        Ok(())
    }

    fn swap_in(&mut self, s: u32, plugged: bool) {
        self.refresh();
        let plug = if plugged { Some(&mut self.plug) } else { None };
        let res = self.dev.swap_readpage(Slot::new(s), plug);
        let Some(m) = self.slots.get(s as usize).cloned().filter(|m| m.allocated) else {
            assert!(
                matches!(res, Err(SwapError::BadSlot(_))),
                "swap-in of free slot {s}: {res:?}"
            );
            return;
        };
        if m.redirtied {
            assert_eq!(
                res.err(),
                Some(SwapError::InMemory(Slot::new(s))),
                "swap-in of redirtied slot {s}"
            );
            return;
        }
        let h = match res {
            Ok(h) => h,
            Err(e) => panic!("swap-in of slot {s} ({m:?}): {e:?}"),
        };
        assert_eq!(h.slot(), Slot::new(s));
        let (want, ptr) = if let Some(pi) = m.writing {
            assert!(h.is_done(), "a swap-in under writeback needs no I/O");
            self.wb_hits += 1;
            (self.pages[pi].tag, Some(self.pages[pi].ptr))
        } else if m.zero {
            assert!(h.is_done(), "a swap-in of a zero slot needs no I/O");
            self.zero_in += 1;
            (Bytes::Zero, None)
        } else {
            self.slots[s as usize].maybe_reading = true;
            (m.dev, None)
        };
        self.handles.push(H {
            h,
            slot: s,
            want,
            ptr,
        });
    }

    fn wait(&mut self, i: usize, unplug: bool) {
        if self.handles[i].h.is_plugged() {
            if !unplug {
                return;
            }
            self.plug.read_unplug();
            assert!(!self.handles[i].h.is_plugged());
        }
        let H { h, slot, want, ptr } = self.handles.swap_remove(i);
        let (page, outcome) = h.wait_page();
        self.refresh();
        match outcome {
            Ok(()) => {
                assert!(
                    page.test(PageFlags::UPTODATE),
                    "swap-in of slot {slot}: not uptodate"
                );
                if let Some(p) = ptr {
                    assert_eq!(
                        Arc::as_ptr(&page) as usize,
                        p,
                        "slot {slot}: not the page under writeback"
                    );
                }
                if let Some(b) = want.bytes() {
                    assert!(
                        page.as_bytes()[..] == *b,
                        "swap-in of slot {slot}: not the bytes of {want:?}"
                    );
                }
            }
            Err(SwapError::Read { slot: rs, .. }) => {
                assert_eq!(rs.index(), slot);
                assert!(
                    self.read_faults,
                    "slot {slot}: a read failed without a fault"
                );
                assert!(
                    ptr.is_none() && want != Bytes::Zero,
                    "slot {slot}: served from memory, yet failed"
                );
                assert!(
                    !page.test(PageFlags::UPTODATE),
                    "a failed read left the page uptodate"
                );
            }
            Err(e) => panic!("swap-in of slot {slot}: {e:?}"),
        }
        assert!(
            !page.test(PageFlags::LOCKED),
            "a swapped-in page stays locked"
        );
        if ptr.is_none() {
            self.dev.put_page(page);
        }
    }

    fn free(&mut self, s: u32) {
        let res = self.dev.swap_free(Slot::new(s));
        let Some(m) = self.slots.get_mut(s as usize).filter(|m| m.allocated) else {
            assert!(
                matches!(res, Err(SwapError::Map(_))),
                "free of free slot {s}: {res:?}"
            );
            return;
        };
        assert_eq!(res, Ok(()), "free of slot {s}");
        m.allocated = false;
        m.zero = false;
        m.redirtied = false;
        if m.writing.is_some() {
            self.deferred_known += 1;
        }
    }

    fn modify(&mut self, i: usize, zero: bool) {
        let extra = self
            .handles
            .iter()
            .filter(|h| h.ptr == Some(self.pages[i].ptr))
            .count();
        let tag = self.fresh_tag(zero);
        let pm = &mut self.pages[i];
        let page = pm.page.as_mut().unwrap();
        assert_eq!(
            Arc::weak_count(page),
            0,
            "a page not under writeback is held weakly"
        );
        assert_eq!(
            Arc::strong_count(page),
            1 + extra,
            "page {i}: references leaked"
        );
        let Some(p) = PageRef::get_mut(page) else {
            assert!(extra > 0);
            return;
        };
        p.as_mut_bytes().copy_from_slice(tag.bytes().unwrap());
        p.set_flags(PageFlags::DIRTY);
        pm.tag = tag;
        pm.dirty = true;
    }

    /// Learns the outcome of every write whose page's writeback ended.
    fn refresh(&mut self) {
        for i in 0..self.pages.len() {
            let Some(s) = self.pages[i].wb else { continue };
            let pm = &self.pages[i];
            let alive = pm
                .page
                .clone()
                .or_else(|| pm.weak.as_ref().and_then(Weak::upgrade));
            if alive.as_ref().is_some_and(|p| p.test(PageFlags::WRITEBACK)) {
                continue;
            }
            let m = &self.slots[s as usize];
            assert_eq!(m.writing, Some(i));
            let failed = if m.allocated {
                Some(self.dev.is_redirtied(Slot::new(s)))
            } else if !pm.redirtied_by_us {
                alive.as_ref().map(|p| p.test(PageFlags::DIRTY))
            } else {
                None
            };
            if let Some(p) = &alive {
                assert!(
                    !p.test(PageFlags::RECLAIM),
                    "RECLAIM left set after writeback"
                );
                let dirty = p.test(PageFlags::DIRTY);
                if pm.redirtied_by_us {
                    assert!(dirty, "the DIRTY bit the program set is kept");
                } else if let Some(f) = failed {
                    assert_eq!(
                        dirty, f,
                        "page {i} to slot {s}: DIRTY after the write (failed {f})"
                    );
                }
                if failed == Some(true) {
                    assert!(
                        p.as_bytes()[..] == *pm.tag.bytes().unwrap(),
                        "a failed write changed the page's bytes"
                    );
                }
            }
            let dirty_now = alive.as_ref().is_some_and(|p| p.test(PageFlags::DIRTY));
            drop(alive);
            let (m, pm) = (&mut self.slots[s as usize], &mut self.pages[i]);
            m.writing = None;
            pm.wb = None;
            pm.weak = None;
            pm.redirtied_by_us = false;
            pm.dirty = dirty_now;
            match failed {
                Some(false) => m.dev = pm.tag,
                Some(true) => {
                    m.dev = Bytes::Any;
                    m.redirtied = m.allocated;
                    self.failed_known += 1;
                }
                None => {
                    m.dev = Bytes::Any;
                    self.failed_unknown += 1;
                }
            }
        }
    }

    /// The program's pages: flags as the model says; not under writeback,
    /// referenced by the program and its handles only.
    fn check_pages(&self) {
        for (i, pm) in self.pages.iter().enumerate() {
            let Some(page) = &pm.page else { continue };
            assert_eq!(
                page.test(PageFlags::WRITEBACK),
                pm.wb.is_some(),
                "page {i}: WRITEBACK"
            );
            assert_eq!(page.test(PageFlags::DIRTY), pm.dirty, "page {i}: DIRTY");
            if pm.wb.is_none() {
                let extra = self
                    .handles
                    .iter()
                    .filter(|h| h.ptr == Some(pm.ptr))
                    .count();
                assert_eq!(
                    Arc::strong_count(page),
                    1 + extra,
                    "page {i}: references leaked"
                );
                assert_eq!(Arc::weak_count(page), 0, "page {i}: weak references leaked");
            }
        }
    }

    /// A slot freed while its write is on its way stays allocated.
    fn check_deferred_frees(&self) {
        let held = self.slots.iter().filter(|m| m.allocated).count() as u32;
        let deferred = self
            .slots
            .iter()
            .filter(|m| !m.allocated && m.writing.is_some())
            .count() as u32;
        assert!(
            self.dev.used_slots() >= held + deferred,
            "{} slots allocated, {held} held and {deferred} freed under writeback",
            self.dev.used_slots()
        );
    }

    /// The device holds the model's bytes at every slot no write is on
    /// its way to.
    fn check_device(&mut self) {
        for s in 0..self.nslots {
            let m = &self.slots[s as usize];
            let Some(want) = m.dev.bytes().filter(|_| m.writing.is_none()) else {
                continue;
            };
            self.mem.read_at(Slot::new(s).byte_offset(), &mut self.buf);
            assert!(
                self.buf[..] == *want,
                "slot {s}: the device does not hold {:?}",
                m.dev
            );
        }
    }

    fn check_quiescent(&mut self) {
        assert_eq!(self.dev.in_flight(), 0, "in flight with nothing pending");
        for (s, m) in self.slots.iter_mut().enumerate() {
            assert!(m.writing.is_none(), "slot {s}: write not ended");
            m.maybe_reading = false;
            if m.allocated {
                assert_eq!(
                    self.dev.is_redirtied(Slot::new(s as u32)),
                    m.redirtied,
                    "slot {s}: redirtied"
                );
            }
        }
        let held = self.slots.iter().filter(|m| m.allocated).count() as u32;
        assert_eq!(self.dev.used_slots(), held, "allocated slots");
        self.check_device();
    }

    fn finish(mut self) {
        self.mem.clear_faults();
        self.plug.unplug();
        self.dev.drain().expect("drain");
        self.refresh();
        while let Some(i) = self.handles.len().checked_sub(1) {
            self.wait(i, true);
        }
        assert!(self.quiescent());
        self.check_pages();
        self.check_quiescent();
        for s in 1..self.nslots {
            if self.slots[s as usize].allocated {
                self.free(s);
            }
        }
        assert_eq!(self.dev.used_slots(), 0, "slots leaked");
        assert_eq!(self.dev.cache_entries(), 0, "swap-cache entries leaked");
        assert_eq!(self.dev.readahead_cached(), 0);
        self.check_pages();
        // The header slot was never written.
        self.mem.read_at(0, &mut self.buf);
        assert!(
            self.buf[..] == *Bytes::Tag(0).bytes().unwrap(),
            "the header slot was written"
        );
        let c = self.dev.counters();
        assert_eq!(c.pswpout, self.pswpout, "pswpout");
        assert_eq!(c.written_pages(), c.pswpout, "pages in write kiocbs");
        assert_eq!(c.zero_pages_out, self.zero_out);
        assert_eq!(c.zero_pages_in, self.zero_in);
        assert_eq!(
            c.read_pages(),
            c.pswpin + c.read_failed_pages,
            "read outcomes"
        );
        assert!(c.write_errors <= c.write_batches && c.read_errors <= c.read_batches);
        assert!(
            c.redirtied_pages >= self.failed_known
                && c.redirtied_pages <= self.failed_known + self.failed_unknown,
            "redirtied pages {} vs known {} + unknown {}",
            c.redirtied_pages,
            self.failed_known,
            self.failed_unknown
        );
        assert!(c.cache_hits >= self.wb_hits);
        assert!(c.deferred_frees >= self.deferred_known);
        assert!(
            c.readahead_hits <= c.readahead_pages,
            "more readahead hits than pages read ahead"
        );
        if !self.deferred {
            assert!(self.dev.max_in_flight() <= 1);
        }
        assert_eq!(self.mem.pending(), 0);
    }
}
