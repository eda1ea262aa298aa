//! Random extent maps × random iterators through the generic direct-I/O
//! path ([`IomapDio`]), checked against a flat model of the file.
//!
//! Each input builds a file layout: extents covering `[0, L)` at a random
//! granularity (512 bytes or the block size, 512 or 4096), each mapped at a
//! random non-overlapping device address, unwritten (allocated, reads as
//! zeros) or a hole, and a file size anywhere in `[0, L]` (it may cut the
//! last extent, off the 512-byte grid). The mapping ([`Layout`]) allocates
//! holes on `begin(WRITE)` from a free device range (unwritten + NEW or
//! mapped + NEW, a fuzzer choice per allocation), converts unwritten
//! granules on `end_io(UNWRITTEN)` and grows the size; it may be told to
//! answer one `begin` call of an operation with a bad extent (empty, not
//! covering the position, past the device, misaligned on the device, a hole
//! for a write).
//!
//! The model is the file's bytes (what a read of any offset must return,
//! would the size cover it) and its size. A few operations run on it: sync
//! reads and writes through a borrowed iterator (Ubuf or Kvec over
//! `AlignedBuf`s), async reads and writes with owned buffers (one
//! `AlignedBuf` or several) on a RAM device that defers completions in a
//! random order and splits requests at a random `max_segs`, and misaligned
//! requests (refused with `Error::Misaligned` before any I/O: no mapping
//! call, no device transfer). After each: a read returns
//! `min(len, size - pos)` bytes (0 at or past the size), exactly the model's;
//! a write returns its length and the model takes the bytes and the size;
//! a bad extent is `Error::BadExtent` (EIO) when it is the first extent of
//! the request, else a short count ending where it starts. Then the whole
//! device is checked: every byte of a mapped extent holds the model's byte
//! of the file (so the parts of a new or unwritten block a sub-block write
//! did not cover are zeros, never stale device bytes), every byte of the
//! file not mapped is zero in the model, and every other device byte is
//! unchanged (or zeroed, inside an allocated extent the write touched).

#![no_main]

use std::sync::Mutex;

use arbitrary::{Result, Unstructured};
use iov_iter::backend::mem::{MemDevice, PendingOrder};
use iov_iter::buf::{AlignedBuf, OwnedIter};
use iov_iter::dio::DirectIo;
use iov_iter::iomap::{EndIoFlags, Extent, ExtentFlags, IoMap, IomapDio, IomapOp};
use iov_iter::kiocb::{Kiocb, Submitted};
use iov_iter::{Dest, Errno, Error, IoSeg, IoSegMut, IovIter, Kvec, Source, Ubuf};
use libfuzzer_sys::fuzz_target;

const SECTOR: u64 = 512;
/// Past the layout: a hole this long.
const TAIL_HOLE: u64 = 1 << 40;


fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = fuzz_one(&mut u);
});

fn rd(x: u64, a: u64) -> u64 {
    x - x % a
}
fn ru(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

/// Longest pattern asked for: the largest device (about 310 KiB) with room.
const PATTERN_MAX: usize = 512 * 1024;
/// Where seed `s`'s pattern starts in [`pattern_table`].
const PATTERN_STRIDE: usize = 97;

/// Pseudo-random bytes, never zero (a zeroed byte where data belongs is
/// always visible), made once: each input's device and write bytes are a
/// slice of it (per-byte loops under the fuzzer's comparison tracing cost
/// more than the I/O itself).
fn pattern_table() -> &'static [u8] {
    static T: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..PATTERN_MAX + 256 * PATTERN_STRIDE)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8 | 1
            })
            .collect()
    })
}

/// `len` bytes of seed `seed`'s pattern.
fn pattern(seed: u8, len: usize) -> &'static [u8] {
    let at = usize::from(seed) * PATTERN_STRIDE;
    &pattern_table()[at..at + len]
}

static ZEROS: [u8; 16384] = [0; 16384];

/// Whether every byte is zero (a `memcmp` a chunk at a time).
fn all_zero(b: &[u8]) -> bool {
    b.chunks(ZEROS.len()).all(|c| c == &ZEROS[..c.len()])
}

/// The device's bytes, into `buf` (reused across inputs: no fresh pages to
/// fault in for each snapshot).
fn snapshot_into(dev: &MemDevice, buf: &mut Vec<u8>) {
    buf.resize(dev.len() as usize, 0);
    dev.read_at(0, buf);
}

thread_local! {
    /// Snapshot buffers, kept from one input to the next.
    static BUFS: std::cell::RefCell<(Vec<u8>, Vec<u8>)> = Default::default();
}

/// `IOMAP_DIO_TRACE` set (read once, not per op).
fn trace() -> bool {
    static T: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *T.get_or_init(|| std::env::var_os("IOMAP_DIO_TRACE").is_some())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Hole,
    Mapped,
    Unwritten,
}

#[derive(Debug, Clone, Copy)]
struct Ext {
    off: u64,
    len: u64,
    kind: Kind,
    addr: u64,
}

impl Ext {
    fn end(&self) -> u64 {
        self.off + self.len
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bad {
    Empty,
    NotCovering,
    PastDevice,
    DevMisaligned,
    /// A hole for a write (not allocated); for a read, not covering.
    Unallocated,
}

#[derive(Debug)]
struct State {
    exts: Vec<Ext>,
    size: u64,
    /// Next free device address.
    bump: u64,
    dev_len: u64,
    /// Per allocation: unwritten + NEW (true) or mapped + NEW.
    alloc_unwritten: Vec<bool>,
    nalloc: usize,
    /// `begin` calls during the current operation.
    calls: usize,
    /// Answer the n-th `begin` call of the operation with a bad extent.
    inject: Option<(usize, Bad)>,
    /// Where it was answered.
    injected_at: Option<u64>,
    /// `end_io` calls: (pos, written, flags).
    end_ios: Vec<(u64, u64, EndIoFlags)>,
}

#[derive(Debug)]
struct Layout {
    st: Mutex<State>,
    bs: u32,
    gran: u64,
}

impl State {
    fn layout_end(&self) -> u64 {
        self.exts.last().map_or(0, Ext::end)
    }

    fn find(&self, pos: u64) -> Option<usize> {
        self.exts.iter().position(|e| e.off <= pos && pos < e.end())
    }

    /// Replaces `[a, b)` inside extent `i` by `new`, splitting it.
    fn carve(&mut self, i: usize, a: u64, b: u64, kind: Kind, addr: u64) -> usize {
        let e = self.exts[i];
        assert!(e.off <= a && a < b && b <= e.end());
        let mut parts = Vec::new();
        if e.off < a {
            parts.push(Ext { len: a - e.off, ..e });
        }
        let mid = parts.len();
        parts.push(Ext {
            off: a,
            len: b - a,
            kind,
            addr,
        });
        if b < e.end() {
            parts.push(Ext {
                off: b,
                len: e.end() - b,
                kind: e.kind,
                addr: if e.kind == Kind::Hole { 0 } else { e.addr + (b - e.off) },
            });
        }
        self.exts.splice(i..=i, parts);
        i + mid
    }
}

impl Layout {
    fn to_extent(e: &Ext) -> Extent {
        match e.kind {
            Kind::Hole => Extent::hole(e.off, e.len),
            Kind::Mapped => Extent::mapped(e.off, e.len, e.addr),
            Kind::Unwritten => Extent::unwritten(e.off, e.len, e.addr),
        }
    }
}

impl IoMap for Layout {
    fn size(&self) -> u64 {
        self.st.lock().unwrap().size
    }

    fn block_size(&self) -> u32 {
        self.bs
    }

    fn begin(&self, pos: u64, len: u64, op: IomapOp) -> iov_iter::Result<Extent> {
        let mut st = self.st.lock().unwrap();
        st.calls += 1;
        let write = op.contains(IomapOp::WRITE);
        if let Some((n, bad)) = st.inject {
            if n + 1 == st.calls {
                st.injected_at = Some(pos);
                let dev_len = st.dev_len;
                return Ok(match bad {
                    Bad::Empty => Extent::mapped(pos, 0, 0),
                    Bad::NotCovering => Extent::hole(pos + SECTOR, SECTOR),
                    Bad::Unallocated if !write => Extent::hole(pos + SECTOR, SECTOR),
                    Bad::Unallocated => Extent::hole(pos, len.max(SECTOR)),
                    Bad::PastDevice => Extent::mapped(pos, 4 * SECTOR, dev_len - SECTOR),
                    Bad::DevMisaligned => Extent::mapped(pos, 4 * SECTOR, 100),
                });
            }
        }
        let end = st.layout_end();
        if pos >= end {
            if !write {
                return Ok(Extent::hole(end, TAIL_HOLE));
            }
            // Grow the layout with a hole up to the end of the write.
            let to = ru(pos + len.max(1), self.gran);
            st.exts.push(Ext {
                off: end,
                len: to - end,
                kind: Kind::Hole,
                addr: 0,
            });
        }
        let i = st.find(pos).expect("the layout covers pos");
        let e = st.exts[i];
        if !write || e.kind != Kind::Hole {
            return Ok(Layout::to_extent(&e));
        }
        // Allocate the granules of the hole the write covers.
        let a = e.off.max(rd(pos, self.gran));
        let b = e.end().min(ru(pos + len.max(1), self.gran));
        let addr = ru(st.bump, self.gran);
        if addr + (b - a) > st.dev_len {
            return Err(Error::Os(Errno::ENOSPC));
        }
        st.bump = addr + (b - a);
        let unwritten = st.alloc_unwritten[st.nalloc % st.alloc_unwritten.len()];
        st.nalloc += 1;
        let kind = if unwritten { Kind::Unwritten } else { Kind::Mapped };
        let j = st.carve(i, a, b, kind, addr);
        Ok(Layout::to_extent(&st.exts[j]).with_flags(ExtentFlags::NEW))
    }

    fn end_io(&self, pos: u64, written: u64, flags: EndIoFlags) -> iov_iter::Result<()> {
        let mut st = self.st.lock().unwrap();
        st.end_ios.push((pos, written, flags));
        if written == 0 {
            return Ok(());
        }
        if flags.contains(EndIoFlags::UNWRITTEN) {
            let (a, b) = (rd(pos, self.gran), ru(pos + written, self.gran));
            let mut at = a;
            while at < b {
                let Some(i) = st.find(at) else { break };
                let e = st.exts[i];
                let hi = e.end().min(b);
                if e.kind == Kind::Unwritten {
                    let addr = e.addr + (at - e.off);
                    st.carve(i, at, hi, Kind::Mapped, addr);
                }
                at = hi;
            }
        }
        st.size = st.size.max(pos + written);
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    SyncRead,
    SyncWrite,
    AsyncRead,
    AsyncWrite,
    Misaligned,
}

type File = IomapDio<Layout, MemDevice>;

struct Model {
    /// What a read of each offset must return.
    file: Vec<u8>,
    size: u64,
}

fn fuzz_one(u: &mut Unstructured<'_>) -> Result<()> {
    let bs: u64 = if u.arbitrary()? { 4096 } else { 512 };
    let gran = if bs > SECTOR && u.arbitrary()? { SECTOR } else { bs };
    let max_gr = (12 * 1024 / gran).max(1);

    // The layout.
    let nexts = u.int_in_range(0..=6usize)?;
    let mut exts = Vec::new();
    let mut off = 0;
    for _ in 0..nexts {
        let len = u.int_in_range(1..=max_gr)? * gran;
        let kind = match u.int_in_range(0..=2u8)? {
            0 => Kind::Hole,
            1 => Kind::Mapped,
            _ => Kind::Unwritten,
        };
        exts.push(Ext {
            off,
            len,
            kind,
            addr: 0,
        });
        off += len;
    }
    let layout_end = off;
    // Device addresses: allocated extents in a random order, random gaps.
    let mut order: Vec<usize> = (0..exts.len()).filter(|&i| exts[i].kind != Kind::Hole).collect();
    for i in (1..order.len()).rev() {
        let j = u.int_in_range(0..=i)?;
        order.swap(i, j);
    }
    let mut cursor = 0;
    for &i in &order {
        cursor += u.int_in_range(0..=3u64)? * gran;
        exts[i].addr = cursor;
        cursor += exts[i].len;
    }
    let free_start = ru(cursor, bs) + bs;
    let size = u.int_in_range(0..=layout_end)?;

    let nops = u.int_in_range(1..=6usize)?;
    let max_pos = (layout_end + 8192) / SECTOR;
    let max_write = 4 * 8 * SECTOR;
    // Room for every write's allocations: granules of holes inside the
    // write rounded out to granules, at most `len + 2 * gran` a write.
    let dev_len = free_start + nops as u64 * (max_write + 2 * bs) + 8192;
    let file_max = (layout_end + 8192 + max_write + 2 * bs) as usize;

    let max_segs = u.int_in_range(1..=4usize)?;
    let order = match u.int_in_range(0..=3u8)? {
        0 => None,
        1 => Some(PendingOrder::Fifo),
        2 => Some(PendingOrder::Reverse),
        _ => Some(PendingOrder::Shuffled(u.arbitrary()?)),
    };
    let alloc_unwritten: Vec<bool> = (0..4).map(|_| u.arbitrary()).collect::<Result<_>>()?;

    let dev_seed: u8 = u.arbitrary()?;
    let init = pattern(dev_seed, dev_len as usize);
    let dev = MemDevice::from_vec(init.to_vec()).with_max_segs(max_segs);
    dev.defer_completions(order);

    let mut model = Model {
        file: vec![0u8; file_max],
        size,
    };
    for e in &exts {
        if e.kind == Kind::Mapped {
            let (o, a, l) = (e.off as usize, e.addr as usize, e.len as usize);
            model.file[o..o + l].copy_from_slice(&init[a..a + l]);
        }
    }
    let map = Layout {
        st: Mutex::new(State {
            exts,
            size,
            bump: free_start,
            dev_len,
            alloc_unwritten,
            nalloc: 0,
            calls: 0,
            inject: None,
            injected_at: None,
            end_ios: Vec::new(),
        }),
        bs: bs as u32,
        gran,
    };
    let file = IomapDio::new(map, dev);
    let (mut before, mut snap) = BUFS.with(|b| std::mem::take(&mut *b.borrow_mut()));
    check_device(&file, &mut model, init, None, &mut snap);

    for op_no in 0..nops {
        let kind = match u.int_in_range(0..=8u8)? {
            0 | 1 => OpKind::SyncRead,
            2 | 3 => OpKind::SyncWrite,
            4 | 5 => OpKind::AsyncRead,
            6 | 7 => OpKind::AsyncWrite,
            _ => OpKind::Misaligned,
        };
        let pos = u.int_in_range(0..=max_pos)? * SECTOR;
        let nsegs = u.int_in_range(1..=4usize)?;
        let lens: Vec<usize> = (0..nsegs)
            .map(|_| Ok(u.int_in_range(0..=8usize)? * SECTOR as usize))
            .collect::<Result<_>>()?;
        let inject = if u.int_in_range(0..=3u8)? == 0 {
            let bad = match u.int_in_range(0..=4u8)? {
                0 => Bad::Empty,
                1 => Bad::NotCovering,
                2 => Bad::PastDevice,
                3 => Bad::DevMisaligned,
                _ => Bad::Unallocated,
            };
            Some((u.int_in_range(0..=3usize)?, bad))
        } else {
            None
        };
        let seed = (op_no as u8).wrapping_mul(37) ^ 0x5a;
        snapshot_into(file.device(), &mut before);
        {
            let mut st = file.map().st.lock().unwrap();
            st.calls = 0;
            st.inject = inject;
            st.injected_at = None;
            st.end_ios.clear();
        }
        if trace() {
            eprintln!(
                "op {op_no}: {kind:?} pos {pos} lens {lens:?} inject {inject:?}; bs {bs} gran {gran} \
                 max_segs {max_segs} order {order:?} size {} layout {:?}",
                model.size,
                file.map().st.lock().unwrap().exts
            );
        }
        let ctx = Ctx {
            file: &file,
            pos,
            lens: &lens,
            seed,
            deferred: order.is_some(),
        };
        let allow = match kind {
            OpKind::SyncRead | OpKind::AsyncRead => {
                ctx.read(kind == OpKind::AsyncRead, &mut model);
                None
            }
            OpKind::SyncWrite | OpKind::AsyncWrite => {
                ctx.write(kind == OpKind::AsyncWrite, &mut model)
            }
            OpKind::Misaligned => {
                let skew = u.int_in_range(1..=511u64)?;
                let write = u.arbitrary()?;
                let asynchronous = u.arbitrary()?;
                ctx.misaligned(pos + skew, write, asynchronous);
                None
            }
        };
        check_device(&file, &mut model, &before, allow.as_ref(), &mut snap);
        assert_eq!(file.device().pending(), 0, "everything completed");
    }
    BUFS.with(|b| *b.borrow_mut() = (before, snap));
    Ok(())
}

/// What a write may have left on the device besides the model's bytes: the
/// file range `[from, to)` past a short count (a later part of a split
/// async request may have landed), and the bytes it would have written.
struct Allow {
    from: u64,
    to: u64,
    data: Vec<u8>,
    pos: u64,
    /// The request's range rounded to blocks: allocated extents inside it
    /// may have been zeroed on the device.
    touched: (u64, u64),
}

struct Ctx<'a> {
    file: &'a File,
    pos: u64,
    lens: &'a [usize],
    seed: u8,
    deferred: bool,
}

/// An error a request may end with: a bad extent (EIO), and nothing else.
fn expect_bad(e: &Error) {
    assert!(matches!(e, Error::BadExtent { .. }), "unexpected error {e:?}");
    assert_eq!(e.errno(), Errno::EIO);
}

impl Ctx<'_> {
    fn total(&self) -> usize {
        self.lens.iter().sum()
    }

    fn injected_at(&self) -> Option<u64> {
        self.file.map().st.lock().unwrap().injected_at
    }

    /// The count a read must report, or `None` for an error.
    fn read_expect(&self, size: u64) -> Option<usize> {
        let total = self.total() as u64;
        let mut n = if self.pos >= size || total == 0 {
            0
        } else {
            total.min(size - self.pos)
        };
        if let Some(at) = self.injected_at() {
            assert!(at >= self.pos && at < self.pos + total.max(1), "mapping asked at {at}");
            if at == self.pos {
                return None;
            }
            n = n.min(at - self.pos);
        }
        Some(n as usize)
    }

    fn read(&self, asynchronous: bool, model: &mut Model) {
        let size = model.size;
        let total = self.total();
        let fill = 0xee;
        let (res, got): (iov_iter::Result<usize>, Vec<u8>) = if asynchronous {
            let segs: Vec<AlignedBuf> = self
                .lens
                .iter()
                .map(|&l| AlignedBuf::from_slice(512, &vec![fill; l]).unwrap())
                .collect();
            let (res, got, left) = if self.lens.len() == 1 {
                let it = OwnedIter::<Dest, _>::new(segs.into_iter().next().unwrap());
                let done = self.run_async(it);
                let left = done.buf.count();
                (done.result, done.buf.into_inner().as_slice().to_vec(), left)
            } else {
                let it = OwnedIter::<Dest, _>::new(segs);
                let done = self.run_async(it);
                let left = done.buf.count();
                let mut got = Vec::with_capacity(total);
                for b in done.buf.into_inner().iter() {
                    got.extend_from_slice(b.as_slice());
                }
                (done.result, got, left)
            };
            let n = res.as_ref().map_or(0, |&n| n);
            assert_eq!(left, total - n, "the owned iterator advanced by the count");
            (res, got)
        } else {
            let mut bufs: Vec<AlignedBuf> = self
                .lens
                .iter()
                .map(|&l| AlignedBuf::from_slice(512, &vec![fill; l]).unwrap())
                .collect();
            let mut kiocb = Kiocb::new_sync(self.pos);
            let (res, left) = if bufs.len() == 1 {
                let mut it = IovIter::<Dest, Ubuf>::new(bufs[0].as_mut_slice());
                let r = self.file.direct_io(&mut kiocb, &mut it);
                (r, it.count())
            } else {
                let mut segs: Vec<IoSegMut<'_>> =
                    bufs.iter_mut().map(|b| IoSegMut::new(b.as_mut_slice())).collect();
                let mut it = IovIter::<Dest, Kvec>::new(&mut segs);
                let r = self.file.direct_io(&mut kiocb, &mut it);
                (r, it.count())
            };
            let res = res.map(|s| match s {
                Submitted::Done(n) => n,
                Submitted::Queued => panic!("a sync kiocb was queued"),
            });
            let n = res.as_ref().map_or(0, |&n| n);
            assert_eq!(left, total - n, "the iterator advanced by the count");
            assert_eq!(kiocb.pos, self.pos + n as u64, "kiocb.pos advanced by the count");
            let mut got = Vec::with_capacity(total);
            for b in &bufs {
                got.extend_from_slice(b.as_slice());
            }
            // A sync read touches nothing past the last sector it counted.
            let touched = ru(n as u64, SECTOR) as usize;
            if res.is_ok() {
                assert!(
                    got[touched.min(total)..] == vec![fill; total - touched.min(total)][..],
                    "a sync read wrote past sector {touched} of its buffer (count {n})"
                );
            }
            (res, got)
        };
        assert_eq!(got.len(), total);
        match (self.read_expect(size), res) {
            (Some(want), Ok(n)) => {
                assert_eq!(n, want, "read at {} of {total}, size {size}", self.pos);
                let p = self.pos as usize;
                if got[..n] != model.file[p..p + n] {
                    let i = (0..n).find(|&i| got[i] != model.file[p + i]).unwrap();
                    panic!(
                        "read at {} of {total}: byte {} is {:#x}, the model's {:#x}",
                        self.pos,
                        p + i,
                        got[i],
                        model.file[p + i]
                    );
                }
            }
            (None, Err(e)) => expect_bad(&e),
            (want, got) => panic!("read at {} of {total} (size {size}): expected {want:?}, got {got:?}", self.pos),
        }
        assert_eq!(self.file.map().size(), size, "a read changed the size");
    }

    fn run_async<I: iov_iter::dio::DioBuf>(&self, it: I) -> iov_iter::kiocb::Completed<I> {
        let size = self.file.map().size();
        let (mut kiocb, fut) = Kiocb::new_async_with(self.pos, it);
        match self.file.submit(&mut kiocb) {
            Ok(q) => assert!(q.is_queued()),
            Err(e) => panic!("an aligned async request was refused: {e:?}"),
        }
        if self.deferred {
            assert_eq!(self.file.map().size(), size, "the size grew before completion");
        }
        let done = self.file.block_on(fut);
        match &done.result {
            Ok(n) => assert_eq!(done.pos, self.pos + *n as u64),
            Err(_) => assert_eq!(done.pos, self.pos),
        }
        done
    }

    fn write(&self, asynchronous: bool, model: &mut Model) -> Option<Allow> {
        let size = model.size;
        let total = self.total();
        let data: Vec<u8> = pattern(self.seed, total).to_vec();
        let bufs: Vec<AlignedBuf> = {
            let mut off = 0;
            self.lens
                .iter()
                .map(|&l| {
                    off += l;
                    AlignedBuf::from_slice(512, &data[off - l..off]).unwrap()
                })
                .collect()
        };
        let res = if asynchronous {
            let (res, left) = if bufs.len() == 1 {
                let done = self.run_async(OwnedIter::<Source, _>::new(bufs.into_iter().next().unwrap()));
                (done.result, done.buf.count())
            } else {
                let done = self.run_async(OwnedIter::<Source, _>::new(bufs));
                (done.result, done.buf.count())
            };
            let n = res.as_ref().map_or(0, |&n| n);
            assert_eq!(left, total - n, "the owned iterator advanced by the count");
            res
        } else {
            let mut kiocb = Kiocb::new_sync(self.pos);
            let (res, left) = if bufs.len() == 1 {
                let mut it = IovIter::<Source, Ubuf>::new(bufs[0].as_slice());
                let r = self.file.direct_io(&mut kiocb, &mut it);
                (r, it.count())
            } else {
                let segs: Vec<IoSeg<'_>> = bufs.iter().map(|b| IoSeg::new(b.as_slice())).collect();
                let mut it = IovIter::<Source, Kvec>::new(&segs);
                let r = self.file.direct_io(&mut kiocb, &mut it);
                (r, it.count())
            };
            let res = res.map(|s| match s {
                Submitted::Done(n) => n,
                Submitted::Queued => panic!("a sync kiocb was queued"),
            });
            let n = res.as_ref().map_or(0, |&n| n);
            assert_eq!(left, total - n, "the iterator advanced by the count");
            assert_eq!(kiocb.pos, self.pos + n as u64, "kiocb.pos advanced by the count");
            res
        };
        let injected = self.injected_at();
        let want = match injected {
            Some(at) => {
                assert!(at >= self.pos && at < self.pos + total as u64, "mapping asked at {at}");
                (at > self.pos).then(|| (at - self.pos) as usize)
            }
            None => Some(total),
        };
        let n = match (want, &res) {
            (Some(w), Ok(n)) if w == *n => *n,
            (None, Err(e)) => {
                expect_bad(e);
                0
            }
            (want, got) => panic!(
                "write at {} of {total} (size {size}, injected at {injected:?}): expected {want:?}, got {got:?}",
                self.pos
            ),
        };
        // The model: the bytes written, the size.
        let p = self.pos as usize;
        model.file[p..p + n].copy_from_slice(&data[..n]);
        let end = self.pos + n as u64;
        if n > 0 {
            model.size = model.size.max(end);
        }
        let bs = u64::from(self.file.map().bs);
        let st = self.file.map().st.lock().unwrap();
        assert_eq!(
            st.size, model.size,
            "the size after a write of {n} of {total} at {} (injected at {injected:?}, end_io calls {:?})",
            self.pos, st.end_ios
        );
        // One completion for the whole request, however the device split
        // it: `end_io` hears of exactly the bytes counted.
        for (i, e) in st.end_ios.iter().enumerate() {
            assert!(
                e.0 >= self.pos && e.0 + e.1 <= end,
                "end_io #{i} {e:?} told of bytes outside the count [{}, {end}) (all: {:?})",
                self.pos,
                st.end_ios
            );
        }
        // Every byte written is mapped now.
        let mut at = self.pos;
        while at < end {
            let e = st.exts[st.find(at).expect("written bytes are in the layout")];
            assert_eq!(e.kind, Kind::Mapped, "written byte {at} is in {e:?}");
            at = e.end();
        }
        // The tail of the last block past the size is zeroed on the device
        // (`iomap_dio_zero`): the model's bytes there are zeros, when the
        // block is allocated and inside one extent.
        let tail = end % bs;
        if n > 0 && injected.is_none() && end >= size && tail != 0 {
            if let Some(i) = st.find(end - 1) {
                let e = st.exts[i];
                if e.kind != Kind::Hole && end + (bs - tail) <= e.end() {
                    let to = (end + bs - tail) as usize;
                    model.file[end as usize..to].fill(0);
                }
            }
        }
        let touched = (rd(self.pos, bs), ru(self.pos + total as u64, bs));
        if injected.is_some() || n < total {
            Some(Allow {
                from: end,
                to: touched.1,
                data,
                pos: self.pos,
                touched,
            })
        } else {
            Some(Allow {
                from: end,
                to: end,
                data,
                pos: self.pos,
                touched,
            })
        }
    }

    fn misaligned(&self, pos: u64, write: bool, asynchronous: bool) {
        let stats = self.file.device().stats();
        let size = self.file.map().size();
        let total = self.total().max(512);
        let mut buf = AlignedBuf::from_slice(512, &vec![0x11; total]).unwrap();
        let res = match (write, asynchronous) {
            (false, false) => {
                let mut it = IovIter::<Dest, Ubuf>::new(buf.as_mut_slice());
                self.file.direct_io(&mut Kiocb::new_sync(pos), &mut it)
            }
            (true, false) => {
                let mut it = IovIter::<Source, Ubuf>::new(buf.as_slice());
                self.file.direct_io(&mut Kiocb::new_sync(pos), &mut it)
            }
            (false, true) => {
                let (mut kiocb, fut) = Kiocb::new_async_with(pos, OwnedIter::<Dest, _>::new(buf));
                let r = self.file.submit(&mut kiocb);
                drop(kiocb);
                assert_eq!(fut.wait().result, Err(Error::Os(Errno::ECANCELED)));
                r
            }
            (true, true) => {
                let (mut kiocb, fut) = Kiocb::new_async_with(pos, OwnedIter::<Source, _>::new(buf));
                let r = self.file.submit(&mut kiocb);
                drop(kiocb);
                assert_eq!(fut.wait().result, Err(Error::Os(Errno::ECANCELED)));
                r
            }
        };
        assert!(
            matches!(res, Err(Error::Misaligned { .. })),
            "misaligned request at {pos}: {res:?}"
        );
        assert_eq!(self.file.device().stats(), stats, "a refused request did I/O");
        let st = self.file.map().st.lock().unwrap();
        assert_eq!(st.calls, 0, "a refused request called the mapping");
        assert!(st.end_ios.is_empty(), "a refused request called end_io");
        assert_eq!(st.size, size);
    }
}

/// The whole device against the model: mapped extents hold the file's
/// bytes, the file is zeros where nothing is mapped, everything else is as
/// it was (`before`), except allocated extents a write touched, which may
/// have been zeroed, and (`allow`) bytes past a short write's count.
fn check_device(
    file: &File,
    model: &mut Model,
    before: &[u8],
    allow: Option<&Allow>,
    snap: &mut Vec<u8>,
) {
    snapshot_into(file.device(), snap);
    let snap = &snap[..];
    let st = file.map().st.lock().unwrap();
    let in_allow = |o: u64| allow.is_some_and(|al| o >= al.from && o < al.to);
    let touched = |o: u64| allow.is_some_and(|al| o >= al.touched.0 && o < al.touched.1);
    let mut owned: Vec<(u64, u64)> = Vec::new(); // device ranges of extents
    let mut prev_end = 0;
    for e in &st.exts {
        assert_eq!(e.off, prev_end, "the layout is contiguous: {:?}", st.exts);
        assert!(e.len > 0);
        prev_end = e.end();
        let (o, l) = (e.off as usize, e.len as usize);
        if e.kind == Kind::Hole {
            assert!(
                all_zero(&model.file[o..o + l]),
                "model: a hole byte in {e:?} is not zero"
            );
            continue;
        }
        owned.push((e.addr, e.addr + e.len));
        let a = e.addr as usize;
        let dev = &snap[a..a + l];
        if e.kind == Kind::Mapped {
            if dev == &model.file[o..o + l] {
                continue;
            }
            for k in 0..l {
                let (b, want, fo) = (dev[k], model.file[o + k], e.off + k as u64);
                if b == want {
                    continue;
                }
                // Past a short write's count, a later part of a split
                // async request may have landed: the write's byte, or a
                // zeroed block tail. The model takes it.
                let ok = allow.filter(|_| in_allow(fo)).is_some_and(|al| {
                    b == 0 || al.data.get((fo - al.pos) as usize) == Some(&b)
                });
                assert!(
                    ok,
                    "device byte {} (file offset {fo}, mapped) is {b:#x}, the model's {want:#x} \
                     (before {:#x}); layout {:?}",
                    a + k,
                    before[a + k],
                    st.exts
                );
                model.file[o + k] = b;
            }
        } else {
            assert!(
                all_zero(&model.file[o..o + l]),
                "model: an unwritten byte in {e:?} is not zero"
            );
            if dev == &before[a..a + l] {
                continue;
            }
            for k in 0..l {
                let (b, fo) = (dev[k], e.off + k as u64);
                let ok = b == before[a + k]
                    || (touched(fo)
                        && (b == 0
                            || allow.is_some_and(|al| {
                                fo >= al.pos && al.data.get((fo - al.pos) as usize) == Some(&b)
                            })));
                assert!(ok, "device byte {} (file offset {fo}, unwritten) changed to {b:#x}", a + k);
            }
        }
    }
    // Nothing else on the device changed.
    owned.sort_unstable();
    let mut at = 0u64;
    for &(a, b) in owned.iter().chain([(snap.len() as u64, snap.len() as u64)].iter()) {
        assert!(a >= at, "device range [{a}, {b}) mapped twice: {:?}", st.exts);
        let (x, y) = (at as usize, a as usize);
        if snap[x..y] != before[x..y] {
            let i = (x..y).find(|&i| snap[i] != before[i]).unwrap();
            panic!(
                "device byte {i}, outside every extent, changed ({:#x} -> {:#x}); layout {:?}",
                before[i], snap[i], st.exts
            );
        }
        at = b;
    }
    assert_eq!(st.size, model.size);
}
