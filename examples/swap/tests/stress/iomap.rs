//! Phase iomap: [`IomapDio`] over a toy mapping on a RAM device with
//! faults and deferred, reordered completions, against a model of the
//! file kept per 512-byte sector.
//!
//! The file starts as extents of random lengths and kinds: mapped (its
//! blocks hold data), unwritten (allocated, never written: the device
//! holds garbage there, which must never show), holes. A write into a
//! hole allocates an unwritten extent (`IOMAP_F_NEW`); `end_io` converts
//! the unwritten sectors of the bytes the write reported. Random page
//! reads and writes go through the one trait (`DirectIo::submit`): sync
//! kiocbs, and async ones, up to 8 in flight on disjoint ranges, whose
//! completions the device delivers in a random order. The model's rule
//! for a failed or short write of `n` bytes: the first `n` are new; a
//! sector past them is old, or (on an extent that was mapped, where a
//! later part of the same request may have landed) old or new, learnt at
//! its next read. Reads of holes and unwritten extents give zeros.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use iov_iter::backend::mem::MemDevice;
use iov_iter::buf::OwnedIter;
use iov_iter::dio::DirectIo;
use iov_iter::iomap::{EndIoFlags, Extent, ExtentFlags, IoMap, IomapDio, IomapOp};
use iov_iter::kiocb::{Kiocb, Submitted};
use iov_iter::{Dest, Errno, Error, PAGE_SIZE, Page, Source};

use iov_iter_swap::content::fill_page;
use iov_iter_swap::swapmap::SlotRng;

use crate::Config;
use crate::common::{FaultyMem, PS, Summary, lock, tag};

const SECTOR: u64 = 512;
const PER_PAGE: usize = PAGE_SIZE / SECTOR as usize;
const MAX_IN_FLIGHT: usize = 8;
/// The garbage unallocated and unwritten device blocks hold.
const GARBAGE: u8 = 0xe7;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Mapped,
    Unwritten,
    Hole,
}

#[derive(Debug, Clone, Copy)]
struct Ext {
    len: u64,
    kind: Kind,
    addr: u64,
}

/// A file of fixed size: extents by file offset, a bump allocator on the
/// device for holes written.
#[derive(Debug)]
struct ToyMap {
    size: u64,
    state: Mutex<MapState>,
}

#[derive(Debug)]
struct MapState {
    exts: BTreeMap<u64, Ext>,
    next_addr: u64,
    dev_size: u64,
    allocated: u64,
    converted: u64,
}

impl MapState {
    /// The extent holding `pos`: (its offset, it).
    fn find(&self, pos: u64) -> (u64, Ext) {
        let (&off, &e) = self
            .exts
            .range(..=pos)
            .next_back()
            .expect("extents cover the file");
        assert!(pos < off + e.len, "extents cover the file");
        (off, e)
    }

    /// Splits so that an extent starts at `pos`.
    fn split_at(&mut self, pos: u64) {
        let (off, e) = self.find(pos);
        if off == pos {
            return;
        }
        let head = pos - off;
        self.exts.insert(off, Ext { len: head, ..e });
        let addr = if e.kind == Kind::Hole {
            0
        } else {
            e.addr + head
        };
        self.exts.insert(
            pos,
            Ext {
                len: e.len - head,
                kind: e.kind,
                addr,
            },
        );
    }

    fn kind_at(&self, pos: u64) -> Kind {
        self.find(pos).1.kind
    }
}

impl IoMap for ToyMap {
    fn size(&self) -> u64 {
        self.size
    }

    fn begin(&self, pos: u64, len: u64, op: IomapOp) -> iov_iter::Result<Extent> {
        let mut st = lock(&self.state);
        let (off, e) = st.find(pos);
        Ok(match e.kind {
            Kind::Mapped => Extent::mapped(off, e.len, e.addr),
            Kind::Unwritten => Extent::unwritten(off, e.len, e.addr),
            Kind::Hole if !op.contains(IomapOp::WRITE) => Extent::hole(off, e.len),
            Kind::Hole => {
                // Allocate what the write covers of the hole, unwritten.
                let end = (pos + len).min(off + e.len);
                let n = end - pos;
                if st.next_addr + n > st.dev_size {
                    return Err(Error::Os(Errno::ENOSPC));
                }
                let addr = st.next_addr;
                st.next_addr += n;
                st.allocated += n;
                st.split_at(pos);
                if end < off + e.len {
                    st.split_at(end);
                }
                st.exts.insert(
                    pos,
                    Ext {
                        len: n,
                        kind: Kind::Unwritten,
                        addr,
                    },
                );
                Extent::unwritten(pos, n, addr).with_flags(ExtentFlags::NEW)
            }
        })
    }

    fn end_io(&self, pos: u64, written: u64, flags: EndIoFlags) -> iov_iter::Result<()> {
        assert_eq!(written % SECTOR, 0, "sector-aligned transfers only");
        if written == 0 || !flags.contains(EndIoFlags::UNWRITTEN) {
            return Ok(());
        }
        let mut st = lock(&self.state);
        let end = pos + written;
        st.split_at(pos);
        if end < self.size {
            st.split_at(end);
        }
        let keys: Vec<u64> = st.exts.range(pos..end).map(|(&k, _)| k).collect();
        for k in keys {
            let e = st.exts.get_mut(&k).unwrap();
            if e.kind == Kind::Unwritten {
                e.kind = Kind::Mapped;
                st.converted += 1;
            }
        }
        Ok(())
    }
}

/// A sector's possible contents: tags of the page writes it may hold
/// (0: zeros).
type Cands = smallvec::SmallVec<[u64; 2]>;

struct Model {
    seed: u64,
    sectors: Vec<Cands>,
    /// Pages with an operation in flight.
    busy: Vec<bool>,
    uncertain: u64,
    collapsed: u64,
}

/// The bytes of sector `k` (of a page) holding `t`.
fn sector_bytes(t: u64, k: usize, seed: u64, out: &mut [u8; PAGE_SIZE]) -> &[u8] {
    if t == 0 {
        out.fill(0);
    } else {
        fill_page(out, t, seed);
    }
    &out[k * SECTOR as usize..(k + 1) * SECTOR as usize]
}

impl Model {
    /// Checks the `got` bytes read of page `p` (all, or the first
    /// `upto` sectors), narrowing what each sector holds.
    fn check_read(&mut self, p: u64, page: &Page, upto: usize) -> Result<(), String> {
        let mut scratch = Box::new([0u8; PAGE_SIZE]);
        for k in 0..upto {
            let s = p as usize * PER_PAGE + k;
            let got = &page.as_bytes()[k * SECTOR as usize..(k + 1) * SECTOR as usize];
            let hit = self.sectors[s]
                .iter()
                .copied()
                .find(|&t| sector_bytes(t, k, self.seed, &mut scratch) == got);
            match hit {
                Some(t) => {
                    if self.sectors[s].len() > 1 {
                        self.collapsed += 1;
                        self.sectors[s] = smallvec::smallvec![t];
                    }
                }
                None => {
                    let garbage = got.iter().all(|&b| b == GARBAGE);
                    return Err(format!(
                        "page {p} sector {k}: none of {:?}{}",
                        self.sectors[s],
                        if garbage {
                            " (stale device garbage)"
                        } else {
                            ""
                        }
                    ));
                }
            }
        }
        Ok(())
    }
}

/// What an async operation's callback hands back.
struct Done {
    first: u64,
    pages: usize,
    write: Option<(Vec<u64>, Vec<Kind>)>,
    result: iov_iter::Result<usize>,
    read: Option<Vec<Page>>,
}

pub fn phase_iomap(cfg: &Config, ops: u64) -> Summary {
    let mut sum = Summary::new("iomap IomapDio");
    let t0 = Instant::now();
    let seed = cfg.seed ^ 0x10a9;
    let mut rng = SlotRng::new(seed);
    let pages = cfg.iomap_pages;
    let size = pages * PS;
    let dev_size = size * 2;
    let mem = Arc::new(MemDevice::new(dev_size as usize));
    mem.fill(GARBAGE);
    // Extents: runs of 1 to 16 pages of random kinds, allocated on the
    // device in a shuffled order (so neighbours in the file are not on
    // the device).
    let mut runs = Vec::new();
    let mut off = 0;
    while off < size {
        let len = ((1 + rng.below(16)) as u64 * PS).min(size - off);
        let kind = match rng.below(3) {
            0 => Kind::Mapped,
            1 => Kind::Unwritten,
            _ => Kind::Hole,
        };
        runs.push((off, len, kind));
        off += len;
    }
    let mut order: Vec<usize> = (0..runs.len()).collect();
    iov_iter_swap::content::shuffle(&mut order, &mut rng);
    let mut exts = BTreeMap::new();
    let mut next_addr = 0;
    let mut model_sectors = vec![Cands::new(); (size / SECTOR) as usize];
    let mut scratch = Box::new([0u8; PAGE_SIZE]);
    for k in order {
        let (off, len, kind) = runs[k];
        let addr = if kind == Kind::Hole { 0 } else { next_addr };
        if kind != Kind::Hole {
            next_addr += len;
        }
        exts.insert(off, Ext { len, kind, addr });
        for p in off / PS..(off + len) / PS {
            let t = if kind == Kind::Mapped {
                let t = tag(p as usize, 1);
                fill_page(&mut scratch, t, seed);
                mem.write_at(addr + (p * PS - off), &scratch[..]);
                t
            } else {
                0
            };
            for k in 0..PER_PAGE {
                model_sectors[p as usize * PER_PAGE + k] = smallvec::smallvec![t];
            }
        }
    }
    let map = ToyMap {
        size,
        state: Mutex::new(MapState {
            exts,
            next_addr,
            dev_size,
            allocated: 0,
            converted: 0,
        }),
    };
    let faulty = FaultyMem::new(
        Arc::clone(&mem),
        seed,
        cfg.fault_one_in,
        SECTOR as usize,
        true,
    );
    let file = IomapDio::new(map, faulty);
    let mut model = Model {
        seed,
        sectors: model_sectors,
        busy: vec![false; pages as usize],
        uncertain: 0,
        collapsed: 0,
    };
    let done: Arc<Mutex<Vec<Done>>> = Arc::new(Mutex::new(Vec::new()));
    let mut in_flight = 0usize;
    let mut generation = 1u32;
    let (mut writes, mut reads, mut write_failed, mut read_failed) = (0u64, 0u64, 0u64, 0u64);
    let mut rewrites = 0u64;
    // Pages a failed write left uncertain: written again soon.
    let mut redo: Vec<u64> = Vec::new();

    let settle = |d: Done, model: &mut Model, sum: &mut Summary| -> Option<u64> {
        for p in d.first..d.first + d.pages as u64 {
            model.busy[p as usize] = false;
        }
        let len = d.pages * PAGE_SIZE;
        match (d.write, d.read) {
            (Some((tags, kinds)), _) => {
                let n = match &d.result {
                    Ok(n) => *n,
                    Err(_) => 0,
                };
                assert!(
                    n <= len && n as u64 % SECTOR == 0,
                    "write result {:?}",
                    d.result
                );
                for (j, &t) in tags.iter().enumerate() {
                    for k in 0..PER_PAGE {
                        let s = (d.first as usize + j) * PER_PAGE + k;
                        let at = (j * PER_PAGE + k) as u64 * SECTOR;
                        if at < n as u64 {
                            model.sectors[s] = smallvec::smallvec![t];
                        } else if kinds[j * PER_PAGE + k] == Kind::Mapped
                            && !model.sectors[s].contains(&t)
                        {
                            model.sectors[s].push(t);
                            model.uncertain += 1;
                        }
                    }
                }
                (n < len).then_some(d.first)
            }
            (None, Some(buf)) => {
                let n = match &d.result {
                    Ok(n) => *n,
                    Err(_) => 0,
                };
                assert!(
                    n <= len && n as u64 % SECTOR == 0,
                    "read result {:?}",
                    d.result
                );
                for (j, page) in buf.iter().enumerate() {
                    let upto = (n.saturating_sub(j * PAGE_SIZE) / SECTOR as usize).min(PER_PAGE);
                    if let Err(m) = model.check_read(d.first + j as u64, page, upto) {
                        panic!("iomap: {m}");
                    }
                    if upto == PER_PAGE {
                        sum.verified += 1;
                    }
                }
                (n < len).then_some(u64::MAX)
            }
            _ => unreachable!(),
        }
    };

    let mut ops_done = 0u64;
    while ops_done < ops || in_flight > 0 {
        // Harvest.
        let finished: Vec<Done> = std::mem::take(&mut *lock(&done));
        for d in finished {
            in_flight -= 1;
            let write = d.write.is_some();
            let (first, n) = (d.first, d.pages);
            match settle(d, &mut model, &mut sum) {
                Some(_) if write => {
                    write_failed += 1;
                    redo.extend(first..first + n as u64);
                }
                Some(_) => read_failed += 1,
                None => {}
            }
        }
        if ops_done >= ops {
            file.drive(1).unwrap();
            continue;
        }
        if in_flight >= MAX_IN_FLIGHT || (in_flight > 0 && rng.below(3) == 0) {
            file.drive(1).unwrap();
            continue;
        }
        // Pick a free range of 1 to 8 pages (or a page to redo).
        let n = 1 + rng.below(8) as u64;
        let (first, n, is_redo) = match redo.pop() {
            Some(p) if !model.busy[p as usize] => (p, 1, true),
            Some(p) => {
                redo.push(p);
                (rng.below((pages - n + 1) as u32) as u64, n, false)
            }
            None => (rng.below((pages - n + 1) as u32) as u64, n, false),
        };
        if (first..first + n).any(|p| model.busy[p as usize]) {
            file.drive(1).unwrap();
            continue;
        }
        let write = is_redo || rng.below(2) == 0;
        if is_redo {
            rewrites += 1;
        }
        let pos = first * PS;
        let use_async = rng.below(3) != 0;
        ops_done += n;
        sum.ops += n;
        if write {
            writes += 1;
            generation += 1;
            let tags: Vec<u64> = (first..first + n)
                .map(|p| tag(p as usize, generation))
                .collect();
            let kinds: Vec<Kind> = {
                let st = lock(&file.map().state);
                (0..n * PER_PAGE as u64)
                    .map(|k| st.kind_at(pos + k * SECTOR))
                    .collect()
            };
            let bufs: Vec<Page> = tags
                .iter()
                .map(|&t| {
                    let mut p = Page::new();
                    fill_page(p.as_mut_bytes(), t, seed);
                    p
                })
                .collect();
            let iter = OwnedIter::<Source, _>::new(bufs);
            for p in first..first + n {
                model.busy[p as usize] = true;
            }
            if use_async {
                let done = Arc::clone(&done);
                let mut k = Kiocb::with_callback(pos, iter, move |c| {
                    lock(&done).push(Done {
                        first,
                        pages: n as usize,
                        write: Some((tags, kinds)),
                        result: c.result,
                        read: None,
                    })
                });
                match file.submit(&mut k) {
                    Ok(Submitted::Queued) => in_flight += 1,
                    other => panic!("async write: {other:?}"),
                }
            } else {
                let mut k = Kiocb::new_sync_with(pos, iter);
                let result = match file.submit(&mut k) {
                    Ok(Submitted::Done(n)) => Ok(n),
                    Ok(Submitted::Queued) => panic!("a sync kiocb queued"),
                    Err(e) => Err(e),
                };
                in_flight += 1;
                lock(&done).push(Done {
                    first,
                    pages: n as usize,
                    write: Some((tags, kinds)),
                    result,
                    read: None,
                });
            }
        } else {
            reads += 1;
            let bufs: Vec<Page> = (0..n).map(|_| Page::new()).collect();
            let iter = OwnedIter::<Dest, _>::new(bufs);
            for p in first..first + n {
                model.busy[p as usize] = true;
            }
            if use_async {
                let done = Arc::clone(&done);
                let mut k = Kiocb::with_callback(pos, iter, move |c| {
                    lock(&done).push(Done {
                        first,
                        pages: n as usize,
                        write: None,
                        result: c.result,
                        read: Some(c.buf.into_inner()),
                    })
                });
                match file.submit(&mut k) {
                    Ok(Submitted::Queued) => in_flight += 1,
                    other => panic!("async read: {other:?}"),
                }
            } else {
                let mut k = Kiocb::new_sync_with(pos, iter);
                let result = match file.submit(&mut k) {
                    Ok(Submitted::Done(n)) => Ok(n),
                    Ok(Submitted::Queued) => panic!("a sync kiocb queued"),
                    Err(e) => Err(e),
                };
                let buf = k
                    .take_buf()
                    .expect("a sync kiocb keeps its buffer")
                    .into_inner();
                in_flight += 1;
                lock(&done).push(Done {
                    first,
                    pages: n as usize,
                    write: None,
                    result,
                    read: Some(buf),
                });
            }
        }
    }
    // Faults off: every page read back and checked against the model.
    file.device().set_enabled(false);
    let mut lost = 0u64;
    for p in 0..pages {
        let mut k = Kiocb::new_sync_with(p * PS, OwnedIter::<Dest, _>::new(vec![Page::new()]));
        assert_eq!(file.submit(&mut k).unwrap(), Submitted::Done(PAGE_SIZE));
        let buf = k.take_buf().unwrap().into_inner();
        if let Err(m) = model.check_read(p, &buf[0], PER_PAGE) {
            eprintln!("LOST: iomap {m}");
            lost += 1;
        }
        sum.verified += 1;
    }
    assert_eq!(file.device().pending(), 0);
    let st = lock(&file.map().state);
    let faults = file.device().injected();
    println!(
        "    {} page ops ({} writes, {} reads, through DirectIo::submit), {} pages written \
         again after a failed write, {:.2} s",
        sum.ops,
        writes,
        reads,
        rewrites,
        t0.elapsed().as_secs_f64()
    );
    println!(
        "    faults injected {faults}; writes failed or short {write_failed}, reads {read_failed}; \
         sectors left uncertain by a failed write {} ({} resolved by a read); hole bytes \
         allocated {}, unwritten extents converted {}, extents now {}; verified {} pages; \
         lost {lost}",
        model.uncertain,
        model.collapsed,
        st.allocated,
        st.converted,
        st.exts.len(),
        sum.verified
    );
    assert!(faults > 0 && write_failed > 0, "no faults hit");
    assert!(
        st.allocated > 0 && st.converted > 0,
        "holes never allocated or converted"
    );
    sum.faults = faults;
    sum.failures = write_failed + read_failed;
    sum.retries = rewrites;
    sum.lost = lost;
    sum.time = t0.elapsed();
    sum
}
