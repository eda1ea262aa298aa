//! Phase A2's large folios: `swap_writefolio` / `swap_readfolio` of folios
//! of orders 1 to 4 (some all zeros) on a RAM device with faults and
//! deferred, reordered completions. A folio is in memory, on one aligned
//! run of slots (written whole, or marked zero), or split into pages on
//! slots of their own; every page of every folio is verified each round.

use std::sync::Arc;
use std::time::{Duration, Instant};

use iov_iter::backend::mem::MemDevice;
use iov_iter::{Folio, FolioRef, PAGE_SIZE, PageFlags, PageRef};

use iov_iter_swap::content::{check_page, fill_page};
use iov_iter_swap::swapio::{FolioIn, FolioOut, IoMode, SwapDevice, SwapError};
use iov_iter_swap::swapmap::{Slot, SlotRange, SlotRng};

use crate::Config;
use crate::common::{FaultyMem, Summary, rate, tag};

#[derive(Debug, Default)]
pub struct FolioReport {
    pub ops: u64,
    pub faults: u64,
    pub write_failures: u64,
    pub read_failures: u64,
    pub retries: u64,
    pub whole_out: u64,
    pub whole_in: u64,
    pub zero: u64,
    pub splits: u64,
    pub fallbacks: u64,
    pub verified: u64,
    pub lost: u64,
    pub time: Duration,
}

impl FolioReport {
    pub fn print(&self) {
        println!(
            "    {} page ops, {:.2} s, {:.0} ops/s; folios written whole {}, read whole {}, \
             zero {}, split {}, swapped in page by page {}",
            self.ops,
            self.time.as_secs_f64(),
            rate(self.ops, self.time),
            self.whole_out,
            self.whole_in,
            self.zero,
            self.splits,
            self.fallbacks
        );
        println!(
            "    faults injected {}; folio writes failed {}, reads failed {}, retried {}; \
             verified {} pages; lost {}",
            self.faults,
            self.write_failures,
            self.read_failures,
            self.retries,
            self.verified,
            self.lost
        );
    }

    pub fn add_to(&self, s: &mut Summary) {
        s.ops += self.ops;
        s.faults += self.faults;
        s.failures += self.write_failures + self.read_failures;
        s.retries += self.retries;
        s.lost += self.lost;
        s.verified += self.verified;
        s.time += self.time;
    }
}

enum Loc {
    Mem(FolioRef),
    /// On one aligned run (written whole, or marked zero).
    Whole(SlotRange),
    /// Split: each page on its slot, resident (`Some`, after a write that
    /// failed every attempt) or not.
    Pages(Vec<(Slot, Option<PageRef>)>),
}

struct Lf {
    order: u32,
    generation: u32,
    zero: bool,
    loc: Loc,
}

struct Run<'a> {
    seed: u64,
    rng: SlotRng,
    mem: Arc<MemDevice>,
    faulty: Arc<FaultyMem>,
    dev: SwapDevice,
    lfs: Vec<Lf>,
    r: &'a mut FolioReport,
}

/// The content page `k` of folio `j` at `generation` is made of.
fn ftag(j: usize, k: usize, generation: u32) -> u64 {
    tag(j * 16 + k, generation)
}

impl Run<'_> {
    fn check_bytes(&self, j: usize, k: usize, bytes: &[u8]) -> Result<(), String> {
        let lf = &self.lfs[j];
        let bytes: &[u8; PAGE_SIZE] = bytes.try_into().unwrap();
        if lf.zero {
            return match bytes.iter().position(|&b| b != 0) {
                None => Ok(()),
                Some(at) => Err(format!("zero folio {j} page {k}: byte {at} set")),
            };
        }
        check_page(bytes, ftag(j, k, lf.generation), self.seed)
            .map_err(|m| format!("folio {j} page {k}: {m}"))
    }

    fn check_folio(&self, j: usize, f: &Folio) -> Result<(), String> {
        for (k, chunk) in f.as_bytes().chunks_exact(PAGE_SIZE).enumerate() {
            self.check_bytes(j, k, chunk)?;
        }
        Ok(())
    }

    fn device_page(&self, slot: Slot) -> Vec<u8> {
        let mut buf = vec![0u8; PAGE_SIZE];
        assert_eq!(self.mem.read_at(slot.byte_offset(), &mut buf), PAGE_SIZE);
        buf
    }

    fn new_folio(&mut self, j: usize) -> FolioRef {
        let lf = &mut self.lfs[j];
        lf.generation += 1;
        lf.zero = self.rng.below(6) == 0;
        let mut f = Folio::new(lf.order).unwrap();
        if !lf.zero {
            for (k, chunk) in f.as_mut_bytes().chunks_exact_mut(PAGE_SIZE).enumerate() {
                fill_page(
                    chunk.try_into().unwrap(),
                    ftag(j, k, lf.generation),
                    self.seed,
                );
            }
        }
        f.set_flags(PageFlags::UPTODATE | PageFlags::DIRTY);
        FolioRef::new(f)
    }

    fn free_range(&self, range: SlotRange) {
        for s in range.iter() {
            self.dev.swap_free(s).unwrap();
        }
    }

    fn swap_out(&mut self) {
        let mut whole = Vec::new();
        let mut split = Vec::new();
        for j in 0..self.lfs.len() {
            if !matches!(self.lfs[j].loc, Loc::Mem(_)) || self.rng.below(2) == 0 {
                continue;
            }
            if self.rng.below(3) == 0 {
                let f = self.new_folio(j);
                self.lfs[j].loc = Loc::Mem(f);
            }
            let Loc::Mem(f) = &self.lfs[j].loc else {
                unreachable!()
            };
            let f = FolioRef::clone(f);
            f.set_flags(PageFlags::DIRTY);
            let n = f.nr_pages() as u64;
            match self.dev.swap_writefolio(FolioRef::clone(&f), None) {
                Ok(FolioOut::Zero(range)) => {
                    assert!(self.lfs[j].zero, "folio {j} marked zero");
                    self.r.zero += 1;
                    self.r.ops += n;
                    self.lfs[j].loc = Loc::Whole(range);
                }
                Ok(FolioOut::Whole(range)) => {
                    self.r.ops += n;
                    whole.push((j, range, f));
                }
                Ok(FolioOut::Split { pages, .. }) => {
                    self.r.ops += n;
                    self.r.splits += 1;
                    split.push((j, pages));
                }
                Ok(FolioOut::Clean) => panic!("folio {j}: dirty, yet clean"),
                Err(SwapError::NoSpace { .. }) => {} // stays in memory
                Err(e) => panic!("swap_writefolio folio {j}: {e}"),
            }
        }
        self.dev.drain().unwrap();
        for (j, range, f) in whole {
            assert!(!f.test(PageFlags::WRITEBACK), "{f:?}");
            if f.test(PageFlags::DIRTY) {
                // Failed: dirty, intact, in memory; its slots go.
                self.r.write_failures += 1;
                self.check_folio(j, &f).unwrap();
                self.free_range(range);
                continue;
            }
            assert_eq!(Arc::strong_count(&f), 2, "folio {j}: a reference leaked");
            self.r.whole_out += 1;
            self.lfs[j].loc = Loc::Whole(range);
        }
        for (j, pages) in split {
            let mut out = Vec::new();
            for (k, (slot, page)) in pages.into_iter().enumerate() {
                let mut ok = !page.test(PageFlags::DIRTY);
                for _ in 0..3 {
                    if ok {
                        break;
                    }
                    self.r.write_failures += 1;
                    self.r.retries += 1;
                    self.r.ops += 1;
                    self.check_bytes(j, k, page.as_bytes()).unwrap();
                    assert!(
                        self.dev
                            .swap_writepage(PageRef::clone(&page), slot, None)
                            .unwrap()
                    );
                    self.dev.drain().unwrap();
                    ok = !page.test(PageFlags::DIRTY);
                }
                out.push((slot, (!ok).then_some(page)));
            }
            self.lfs[j].loc = Loc::Pages(out);
        }
    }

    /// A folio of `j`'s order from its pages' bytes.
    fn assemble(&self, j: usize, pages: &[PageRef]) -> FolioRef {
        let mut f = Folio::new(self.lfs[j].order).unwrap();
        for (k, p) in pages.iter().enumerate() {
            f.as_mut_bytes()[k * PAGE_SIZE..(k + 1) * PAGE_SIZE].copy_from_slice(p.as_bytes());
        }
        f.set_flags(PageFlags::UPTODATE | PageFlags::DIRTY);
        FolioRef::new(f)
    }

    /// Reads pages one by one; all of them, or `None` (the failed ones
    /// counted) and nothing changes.
    fn read_pages(&mut self, j: usize, slots: &[(Slot, Option<PageRef>)]) -> Option<Vec<PageRef>> {
        let mut got = Vec::new();
        for (k, (slot, page)) in slots.iter().enumerate() {
            let p = match page {
                Some(p) => PageRef::clone(p),
                None => match self.dev.swap_readpage(*slot, None).unwrap().wait() {
                    Ok(p) => p,
                    Err(SwapError::Read { .. }) => {
                        self.r.read_failures += 1;
                        return None;
                    }
                    Err(e) => panic!("folio {j} page {k} at {slot}: {e}"),
                },
            };
            self.r.ops += 1;
            self.check_bytes(j, k, p.as_bytes()).unwrap();
            got.push(p);
        }
        Some(got)
    }

    fn swap_in(&mut self, all: bool) {
        let mut reading = Vec::new();
        for j in 0..self.lfs.len() {
            if !all && self.rng.below(2) == 0 {
                continue;
            }
            match &self.lfs[j].loc {
                Loc::Mem(_) => {}
                Loc::Whole(range) => {
                    let range = *range;
                    match self
                        .dev
                        .swap_readfolio(range.start(), self.lfs[j].order)
                        .unwrap()
                    {
                        FolioIn::Zero(f) => {
                            assert!(self.lfs[j].zero);
                            self.r.ops += f.nr_pages() as u64;
                            self.check_folio(j, &f).unwrap();
                            self.free_range(range);
                            f.set_flags(PageFlags::DIRTY);
                            self.lfs[j].loc = Loc::Mem(f);
                        }
                        FolioIn::Reading(h) => reading.push((j, range, h)),
                        FolioIn::Fallback(_) => {
                            self.r.fallbacks += 1;
                            let slots: Vec<(Slot, Option<PageRef>)> =
                                range.iter().map(|s| (s, None)).collect();
                            if let Some(pages) = self.read_pages(j, &slots) {
                                let f = self.assemble(j, &pages);
                                self.free_range(range);
                                self.lfs[j].loc = Loc::Mem(f);
                            }
                        }
                    }
                }
                Loc::Pages(slots) => {
                    let slots: Vec<(Slot, Option<PageRef>)> = slots.clone();
                    if let Some(pages) = self.read_pages(j, &slots) {
                        let f = self.assemble(j, &pages);
                        for (s, _) in &slots {
                            self.dev.swap_free(*s).unwrap();
                        }
                        self.lfs[j].loc = Loc::Mem(f);
                    }
                }
            }
        }
        for (j, range, h) in reading {
            self.r.ops += u64::from(range.len());
            match h.wait() {
                Ok(f) => {
                    assert!(f.test(PageFlags::UPTODATE));
                    self.check_folio(j, &f).unwrap();
                    self.r.whole_in += 1;
                    self.free_range(range);
                    f.set_flags(PageFlags::DIRTY);
                    self.lfs[j].loc = Loc::Mem(f);
                }
                Err(SwapError::Read { .. }) => {
                    // Stays on its slots; read again later.
                    self.r.read_failures += 1;
                    self.r.retries += 1;
                }
                Err(e) => panic!("folio {j}: {e}"),
            }
        }
        self.dev.drain().unwrap();
    }

    fn check_all(&mut self) {
        for j in 0..self.lfs.len() {
            let n = 1usize << self.lfs[j].order;
            match &self.lfs[j].loc {
                Loc::Mem(f) => {
                    assert_eq!(Arc::strong_count(f), 1, "folio {j}: a reference leaked");
                    self.check_folio(j, f).unwrap();
                }
                Loc::Whole(range) => {
                    if !self.lfs[j].zero {
                        for (k, s) in range.iter().enumerate() {
                            self.check_bytes(j, k, &self.device_page(s)).unwrap();
                        }
                    }
                }
                Loc::Pages(slots) => {
                    for (k, (s, p)) in slots.iter().enumerate() {
                        match p {
                            Some(p) => self.check_bytes(j, k, p.as_bytes()).unwrap(),
                            // A zero page's slot is only marked.
                            None if self.lfs[j].zero => {}
                            None => self.check_bytes(j, k, &self.device_page(*s)).unwrap(),
                        }
                    }
                }
            }
            self.r.verified += n as u64;
        }
        assert_eq!(self.dev.in_flight(), 0);
    }
}

pub fn phase_folios(cfg: &Config, ops: u64) -> FolioReport {
    let mut r = FolioReport::default();
    let t = Instant::now();
    let slots = cfg.slots * 2;
    let mem = Arc::new(MemDevice::new(slots as usize * PAGE_SIZE));
    let faulty = Arc::new(FaultyMem::new(
        Arc::clone(&mem),
        cfg.seed ^ 0xf011,
        cfg.fault_one_in,
        1,
        true,
    ));
    let dev = SwapDevice::new(faulty.clone(), IoMode::Uring, slots).unwrap();
    dev.set_page_cluster(0);
    assert!(dev.large_folios());
    let mut rng = SlotRng::new(cfg.seed ^ 0xf0110);
    let n = (cfg.pages / 8).max(8);
    let lfs = (0..n)
        .map(|_| Lf {
            order: 1 + rng.below(4),
            generation: 0,
            zero: false,
            loc: Loc::Mem(FolioRef::new(Folio::new(1).unwrap())),
        })
        .collect();
    let mut run = Run {
        seed: cfg.seed,
        rng,
        mem: Arc::clone(&mem),
        faulty: Arc::clone(&faulty),
        dev,
        lfs,
        r: &mut r,
    };
    for j in 0..n {
        let f = run.new_folio(j);
        run.lfs[j].loc = Loc::Mem(f);
    }
    let mut round = 0u32;
    while run.r.ops < ops {
        // One round in 4 as on a swap file: folios split on the way out,
        // and swapped in page by page. The first two rounds take one of
        // each, so that a short run (the smoke's) covers both.
        let large = match round {
            0 => true,
            1 => false,
            _ => run.rng.below(4) != 0,
        };
        round += 1;
        run.dev.set_large_folios(large);
        run.swap_out();
        run.swap_in(false);
        run.check_all();
    }
    run.faulty.set_enabled(false);
    run.dev.set_large_folios(true);
    for _ in 0..3 {
        run.swap_in(true);
    }
    for j in 0..n {
        if !matches!(run.lfs[j].loc, Loc::Mem(_)) {
            eprintln!("LOST: folio {j} could not be read back without faults");
            run.r.lost += 1;
        }
    }
    run.check_all();
    assert_eq!(run.dev.used_slots(), 0);
    let c = run.dev.counters();
    assert!(
        c.folios_out > 0 && c.folios_in > 0 && c.folio_splits > 0,
        "{c:?}"
    );
    drop(run);
    r.faults = mem.stats().faults;
    r.time = t.elapsed();
    r
}
