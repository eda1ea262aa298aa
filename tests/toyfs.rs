//! A toy extent filesystem that implements only a mapping
//! ([`IoMap`]: file range → extent, allocation on write, conversion of
//! unwritten extents at completion) over a file image, and gets from the
//! crate everything else: direct I/O sync and async ([`IomapDio`], more
//! than one extent in flight at once, straight into the caller's buffers),
//! and swap activation ([`swapfile_activate`]).
//!
//! On the RAM backend (deferred completions; runs under Miri) and on
//! io_uring over a real file image.

mod common;

use std::sync::{Arc, Mutex};

use common::{Recorder, block};

/// `len` bytes of pattern `seed`, cheap to build under Miri: 512-byte
/// chunks of [`block`], each stamped with its index.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let base = block(seed, 512);
    let mut v = Vec::with_capacity(len);
    for i in 0..len.div_ceil(512) {
        v.extend_from_slice(&base);
        v[i * 512..i * 512 + 2].copy_from_slice(&(i as u16).to_le_bytes());
    }
    v.truncate(len);
    v
}
use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, PendingOrder};
use iov_iter::buf::{AlignedBuf, OwnedIter};
use iov_iter::dio::DirectIo;
use iov_iter::iomap::{
    BadExtent, EndIoFlags, Extent, ExtentFlags, ExtentKind, IoMap, IomapDio, IomapOp,
    SwapActivateError, SwapRefusal, swapfile_activate,
};
use iov_iter::kiocb::{Kiocb, Submitted};
use iov_iter::{Dest, Errno, Error, IovIter, Result, Source, Ubuf};

const K: u64 = 1024;
/// The toy's block size (the device's direct-I/O alignment is 512).
const BS: u64 = 4096;

/// The toy filesystem's state: its extents (sorted, disjoint; the gaps are
/// holes), its size, and a bump allocator over the device.
#[derive(Debug)]
struct ToyState {
    extents: Vec<Extent>,
    size: u64,
    next_free: u64,
    dev_end: u64,
}

/// What the toy allocates for writes into holes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Alloc {
    /// Unwritten, converted at completion (ext4, XFS).
    Unwritten,
    /// Mapped at once.
    Mapped,
}

#[derive(Debug)]
struct ToyFs {
    st: Mutex<ToyState>,
    alloc: Alloc,
    /// Every `end_io` call: `(pos, written, flags)`.
    end_ios: Mutex<Vec<(u64, u64, EndIoFlags)>>,
    /// Make the next conversion fail (a journal error).
    fail_conversion: Mutex<bool>,
}

impl ToyFs {
    fn new(extents: Vec<Extent>, size: u64, free: std::ops::Range<u64>, alloc: Alloc) -> ToyFs {
        ToyFs {
            st: Mutex::new(ToyState {
                extents,
                size,
                next_free: free.start,
                dev_end: free.end,
            }),
            alloc,
            end_ios: Mutex::new(Vec::new()),
            fail_conversion: Mutex::new(false),
        }
    }

    fn extents(&self) -> Vec<Extent> {
        self.st.lock().unwrap().extents.clone()
    }
}

impl ToyState {
    /// The extent holding `pos`, or the hole around it.
    fn lookup(&self, pos: u64) -> std::result::Result<Extent, Extent> {
        let i = self.extents.partition_point(|e| e.end() <= pos);
        match self.extents.get(i) {
            Some(e) if e.offset <= pos => Ok(*e),
            next => {
                let start = self.extents[..i].last().map_or(0, Extent::end);
                let end = next.map_or(1 << 40, |e| e.offset);
                Err(Extent::hole(start, end - start))
            }
        }
    }

    /// Replaces the extents overlapping `[from, to)` of kind Unwritten by
    /// Mapped ones over the same blocks.
    fn convert(&mut self, from: u64, to: u64) {
        let mut out = Vec::new();
        for e in self.extents.drain(..) {
            if e.kind != ExtentKind::Unwritten || e.end() <= from || e.offset >= to {
                out.push(e);
                continue;
            }
            let (lo, hi) = (e.offset.max(from), e.end().min(to));
            let addr = |at: u64| e.addr_at(at).unwrap();
            if e.offset < lo {
                out.push(Extent::unwritten(e.offset, lo - e.offset, addr(e.offset)));
            }
            out.push(Extent::mapped(lo, hi - lo, addr(lo)));
            if hi < e.end() {
                out.push(Extent::unwritten(hi, e.end() - hi, addr(hi)));
            }
        }
        self.extents = out;
    }
}

impl IoMap for ToyFs {
    fn size(&self) -> u64 {
        self.st.lock().unwrap().size
    }

    fn block_size(&self) -> u32 {
        BS as u32
    }

    fn begin(&self, pos: u64, len: u64, op: IomapOp) -> Result<Extent> {
        let mut st = self.st.lock().unwrap();
        let hole = match st.lookup(pos) {
            Ok(e) => return Ok(e),
            Err(hole) => hole,
        };
        if !op.contains(IomapOp::WRITE) {
            return Ok(hole);
        }
        // Allocate whole blocks for [pos, pos + len), inside the hole.
        let start = (pos / BS * BS).max(hole.offset);
        let end = (pos + len).div_ceil(BS).saturating_mul(BS).min(hole.end());
        let addr = st.next_free;
        if addr + (end - start) > st.dev_end {
            return Err(Error::Os(Errno::ENOSPC));
        }
        st.next_free += end - start;
        let e = match self.alloc {
            Alloc::Unwritten => Extent::unwritten(start, end - start, addr),
            Alloc::Mapped => Extent::mapped(start, end - start, addr),
        }
        .with_flags(ExtentFlags::NEW);
        let i = st.extents.partition_point(|x| x.offset < start);
        st.extents.insert(
            i,
            Extent {
                flags: ExtentFlags::empty(),
                ..e
            },
        );
        Ok(e)
    }

    fn end_io(&self, pos: u64, written: u64, flags: EndIoFlags) -> Result<()> {
        self.end_ios.lock().unwrap().push((pos, written, flags));
        if std::mem::take(&mut *self.fail_conversion.lock().unwrap()) {
            return Err(Error::Os(Errno::EIO));
        }
        let mut st = self.st.lock().unwrap();
        if flags.contains(EndIoFlags::UNWRITTEN) {
            // Whole blocks: the crate zeroed what the write did not cover.
            st.convert(pos / BS * BS, (pos + written).div_ceil(BS) * BS);
        }
        st.size = st.size.max(pos + written);
        Ok(())
    }
}

/// `[0, 8K)` at device 64K, `[8K, 16K)` a hole, `[16K, 32K)` at device 8K,
/// `[32K, 40K)` unwritten at device 40K; the file is 36K long; the device
/// has free space from 128K.
fn toy(alloc: Alloc) -> ToyFs {
    ToyFs::new(
        vec![
            Extent::mapped(0, 8 * K, 64 * K),
            Extent::mapped(16 * K, 16 * K, 8 * K),
            Extent::unwritten(32 * K, 8 * K, 40 * K),
        ],
        36 * K,
        128 * K..256 * K,
        alloc,
    )
}

/// What the toy file reads as, `[0, 36K)`, over device bytes `dev`.
fn expected(dev: &[u8]) -> Vec<u8> {
    let k = K as usize;
    let mut v = dev[64 * k..72 * k].to_vec();
    v.resize(16 * k, 0);
    v.extend_from_slice(&dev[8 * k..24 * k]);
    v.resize(36 * k, 0);
    v
}

/// A RAM device of 256K holding a pattern (stale bytes everywhere).
fn device() -> MemDevice {
    let dev = MemDevice::new(256 * K as usize);
    dev.write_at(0, &pattern(1, 256 * K as usize));
    dev.reset_stats();
    dev
}

#[test]
fn sync_reads_zero_fill_holes_and_unwritten_without_io_and_stop_at_the_size() {
    let file = IomapDio::new(toy(Alloc::Unwritten), device());
    let mut buf = AlignedBuf::from_slice(512, &[0xee; 48 * K as usize]).unwrap();
    let mut it = IovIter::<Dest, Ubuf>::new(&mut buf);
    let mut kiocb = Kiocb::new_sync(0);
    assert_eq!(
        file.direct_io(&mut kiocb, &mut it),
        Ok(Submitted::Done(36 * K as usize)),
        "stops at the size"
    );
    assert_eq!((it.count(), kiocb.pos), (12 * K as usize, 36 * K));
    assert_eq!(
        buf[..36 * K as usize],
        expected(&file.device().snapshot())[..]
    );
    assert!(
        buf[36 * K as usize..] == vec![0xee; 12 * K as usize][..],
        "nothing past the size"
    );
    let st = file.device().stats();
    assert_eq!(
        st.reads, 2,
        "one read per mapped extent, none for the hole or unwritten"
    );
    // At and past the size: 0, no I/O.
    let mut it = IovIter::<Dest, Ubuf>::new(&mut buf[..4096]);
    assert_eq!(
        file.direct_io(&mut Kiocb::new_sync(36 * K), &mut it),
        Ok(Submitted::Done(0))
    );
    assert_eq!(file.device().stats().ios(), 2);
}

#[test]
fn async_reads_keep_every_extent_in_flight_straight_into_the_callers_buffer() {
    let mem = device();
    mem.defer_completions(Some(PendingOrder::Reverse));
    let file = IomapDio::new(toy(Alloc::Unwritten), Recorder::new(mem));
    let buf = AlignedBuf::with_capacity(512, 40 * K as usize).unwrap();
    let (start, cap) = (buf.as_ptr() as usize, buf.capacity());
    let (mut kiocb, fut) = Kiocb::new_async_with(0, OwnedIter::<Dest, _>::new(buf));
    assert_eq!(file.submit(&mut kiocb), Ok(Submitted::Queued));
    let dev = file.device();
    assert_eq!(
        dev.inner.pending(),
        2,
        "both mapped extents at the device at once"
    );
    let seen: Vec<(u64, usize)> = dev
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(pos, r)| (*pos, r.iter().map(|x| x.1).sum()))
        .collect();
    assert_eq!(seen, [(64 * K, 8 * K as usize), (8 * K, 16 * K as usize)]);
    assert!(dev.all_inside(start, cap), "no bounce buffer");
    let done = file.block_on(fut);
    assert_eq!((done.result, done.pos), (Ok(36 * K as usize), 36 * K));
    let got = done.buf.into_inner();
    assert_eq!(
        got.len(),
        36 * K as usize,
        "initialised as far as the file goes"
    );
    assert_eq!(got.as_slice(), &expected(&dev.inner.snapshot())[..]);
}

#[test]
fn a_read_crossing_the_size_in_mid_block_reads_the_block_and_counts_to_the_size() {
    let fs = toy(Alloc::Unwritten);
    fs.st.lock().unwrap().size = 20 * K + 100;
    let file = IomapDio::new(fs, device());
    let mut buf = AlignedBuf::zeroed(512, 8 * K as usize).unwrap();
    let mut it = IovIter::<Dest, Ubuf>::new(&mut buf);
    assert_eq!(
        file.direct_io(&mut Kiocb::new_sync(16 * K), &mut it),
        Ok(Submitted::Done(4 * K as usize + 100))
    );
    assert_eq!(
        it.count(),
        4 * K as usize - 100,
        "the iterator matches the count"
    );
    // The device read was aligned: 4K + 512.
    assert_eq!(file.device().stats().bytes_read, 4 * K + 512);
    let dev = file.device().snapshot();
    assert_eq!(buf[..4196], dev[8 * K as usize..8 * K as usize + 4196]);
}

#[test]
fn writes_into_holes_allocate_and_zero_the_rest_of_a_new_block() {
    for alloc in [Alloc::Unwritten, Alloc::Mapped] {
        let file = IomapDio::new(toy(alloc), device());
        // 1K in the middle of the hole's first block: [9K, 10K).
        let data = block(9, K as usize);
        let src = AlignedBuf::from_slice(512, &data).unwrap();
        let mut it = IovIter::<Source, Ubuf>::new(&src);
        assert_eq!(
            file.direct_io(&mut Kiocb::new_sync(9 * K), &mut it),
            Ok(Submitted::Done(K as usize)),
            "{alloc:?}"
        );
        let e = file.map().begin(8 * K, 4 * K, IomapOp::REPORT).unwrap();
        assert_eq!(
            (e.offset, e.len, e.kind, e.addr),
            (8 * K, 4 * K, ExtentKind::Mapped, Some(128 * K)),
            "{alloc:?}: the block written allocated, converted at completion"
        );
        let ends = file.map().end_ios.lock().unwrap().clone();
        let flags = if alloc == Alloc::Unwritten {
            EndIoFlags::UNWRITTEN | EndIoFlags::NEW
        } else {
            EndIoFlags::NEW
        };
        assert_eq!(ends, [(9 * K, K, flags)]);
        // Read the whole new block back: zeros around the 1K, never the
        // device's stale pattern.
        let mut back = AlignedBuf::zeroed(512, 4 * K as usize).unwrap();
        let mut it = IovIter::<Dest, Ubuf>::new(&mut back);
        assert_eq!(
            file.direct_io(&mut Kiocb::new_sync(8 * K), &mut it),
            Ok(Submitted::Done(4 * K as usize))
        );
        let mut want = vec![0u8; 4 * K as usize];
        want[K as usize..2 * K as usize].copy_from_slice(&data);
        assert_eq!(&back[..], &want[..], "{alloc:?}");
    }
}

#[test]
fn async_writes_grow_the_file_when_they_complete_and_convert_unwritten_extents() {
    let mem = device();
    mem.defer_completions(Some(PendingOrder::Shuffled(7)));
    let file = IomapDio::new(toy(Alloc::Unwritten), mem);
    // [28K, 44K): mapped, then unwritten, then past the end (a hole).
    let data = pattern(5, 16 * K as usize);
    let (mut kiocb, fut) = Kiocb::new_async_with(
        28 * K,
        OwnedIter::<Source, _>::new(AlignedBuf::from_slice(512, &data).unwrap()),
    );
    assert!(file.submit(&mut kiocb).unwrap().is_queued());
    assert_eq!(file.device().pending(), 3, "three extents in flight");
    assert_eq!(file.map().size(), 36 * K, "the size grows at completion");
    let done = file.block_on(fut);
    assert_eq!((done.result, done.pos), (Ok(16 * K as usize), 44 * K));
    assert_eq!(file.map().size(), 44 * K);
    let kinds: Vec<ExtentKind> = file
        .map()
        .extents()
        .iter()
        .filter(|e| e.end() > 32 * K)
        .map(|e| e.kind)
        .collect();
    assert!(kinds.iter().all(|&k| k == ExtentKind::Mapped), "{kinds:?}");
    let mut back = AlignedBuf::zeroed(512, 16 * K as usize).unwrap();
    let mut it = IovIter::<Dest, Ubuf>::new(&mut back);
    assert_eq!(
        file.direct_io(&mut Kiocb::new_sync(28 * K), &mut it),
        Ok(Submitted::Done(16 * K as usize))
    );
    assert_eq!(&back[..], &data[..]);
}

#[test]
fn a_device_error_mid_request_reports_exactly_what_was_written() {
    let dev = device();
    // The second extent's write fails: [32K, 40K) is unwritten at 40K.
    dev.inject(
        FaultPlan::in_range(40 * K..48 * K, Fault::Error(Error::Os(Errno::EIO))).writes_only(),
    );
    let file = IomapDio::new(toy(Alloc::Unwritten), dev);
    let data = pattern(3, 8 * K as usize);
    let src = AlignedBuf::from_slice(512, &data).unwrap();
    let mut it = IovIter::<Source, Ubuf>::new(&src);
    let mut kiocb = Kiocb::new_sync(28 * K);
    assert_eq!(
        file.direct_io(&mut kiocb, &mut it),
        Ok(Submitted::Done(4 * K as usize))
    );
    assert_eq!((it.count(), kiocb.pos), (4 * K as usize, 32 * K));
    assert_eq!(
        file.map().end_ios.lock().unwrap().last().copied(),
        Some((28 * K, 4 * K, EndIoFlags::empty())),
        "end_io hears exactly the bytes written; nothing unwritten was converted"
    );
    assert!(
        file.map()
            .extents()
            .iter()
            .any(|e| e.kind == ExtentKind::Unwritten)
    );
    // The same failure with nothing written before it: the error.
    let mut it = IovIter::<Source, Ubuf>::new(&src[..4096]);
    assert_eq!(
        file.direct_io(&mut Kiocb::new_sync(32 * K), &mut it)
            .unwrap_err()
            .errno(),
        Errno::EIO
    );
    assert_eq!(it.count(), 4096, "nothing consumed");
}

#[test]
fn an_async_write_split_at_the_devices_segment_limit_completes_once_for_the_mapping() {
    // One segment per device transfer: the request's two pages go to the
    // device as two parts; the first fails.
    let mem = device().with_max_segs(1);
    mem.defer_completions(Some(PendingOrder::Reverse));
    mem.inject(
        FaultPlan::in_range(40 * K..44 * K, Fault::Error(Error::Os(Errno::EIO))).writes_only(),
    );
    let file = IomapDio::new(toy(Alloc::Unwritten), mem);
    let bufs = vec![
        AlignedBuf::from_slice(512, &pattern(6, 4096)).unwrap(),
        AlignedBuf::from_slice(512, &pattern(7, 4096)).unwrap(),
    ];
    let (mut kiocb, fut) = Kiocb::new_async_with(32 * K, OwnedIter::<Source, _>::new(bufs));
    assert!(file.submit(&mut kiocb).unwrap().is_queued());
    assert_eq!(file.device().pending(), 2, "two parts in flight");
    let done = file.block_on(fut);
    assert_eq!(done.result.unwrap_err().errno(), Errno::EIO);
    assert_eq!(done.buf.count(), 8192, "nothing counted");
    // The mapping heard of the request once, with nothing written: the
    // second part's bytes landed but stay unwritten (they read as zeros).
    assert_eq!(
        *file.map().end_ios.lock().unwrap(),
        [(32 * K, 0, EndIoFlags::UNWRITTEN)]
    );
    assert_eq!(file.map().size(), 36 * K);
    assert!(
        file.map()
            .extents()
            .iter()
            .any(|e| e.kind == ExtentKind::Unwritten && e.offset == 32 * K)
    );
}

#[test]
fn a_failed_conversion_fails_the_write() {
    let mem = device();
    mem.defer_completions(Some(PendingOrder::Fifo));
    let file = IomapDio::new(toy(Alloc::Unwritten), mem);
    *file.map().fail_conversion.lock().unwrap() = true;
    let (mut kiocb, fut) = Kiocb::new_async_with(
        32 * K,
        OwnedIter::<Source, _>::new(AlignedBuf::zeroed(512, 4096).unwrap()),
    );
    assert!(file.submit(&mut kiocb).unwrap().is_queued());
    let done = file.block_on(fut);
    assert_eq!(done.result.unwrap_err().errno(), Errno::EIO);
    assert_eq!(
        done.buf.count(),
        4096,
        "the buffer comes back, not advanced"
    );
    assert_eq!(file.map().size(), 36 * K);
}

#[test]
fn misaligned_requests_are_refused_before_any_io_or_mapping() {
    let file = IomapDio::new(toy(Alloc::Unwritten), device());
    let mut buf = AlignedBuf::zeroed(512, 8 * K as usize).unwrap();
    for (pos, len) in [(100, 4096), (0, 1000)] {
        let mut it = IovIter::<Dest, Ubuf>::new(&mut buf[..len]);
        assert!(matches!(
            file.direct_io(&mut Kiocb::new_sync(pos), &mut it),
            Err(Error::Misaligned { .. })
        ));
    }
    let src = AlignedBuf::zeroed(512, 4096).unwrap();
    let (mut kiocb, _fut) = Kiocb::new_async_with(8 * K + 1, OwnedIter::<Source, _>::new(src));
    assert!(matches!(
        file.submit(&mut kiocb),
        Err(Error::Misaligned { .. })
    ));
    assert!(kiocb.buf().is_some(), "the buffer stays in the kiocb");
    assert_eq!(file.device().stats().ios(), 0);
    assert_eq!(file.map().extents().len(), 3, "nothing allocated");
}

/// A mapping that answers a fixed list, whatever it is asked: for bad maps.
struct Fixed(Vec<Extent>, u64);

impl IoMap for Fixed {
    fn size(&self) -> u64 {
        self.1
    }
    fn begin(&self, pos: u64, _len: u64, _op: IomapOp) -> Result<Extent> {
        // The first extent whose end is past `pos`, else the last.
        Ok(*self
            .0
            .iter()
            .find(|e| e.end() > pos)
            .unwrap_or(self.0.last().unwrap()))
    }
}

#[test]
fn bad_maps_are_typed_errors_after_exactly_the_good_part() {
    let cases: Vec<(&str, Vec<Extent>, BadExtent)> = vec![
        ("empty", vec![Extent::mapped(0, 0, 0)], BadExtent::Empty),
        (
            "not covering",
            vec![Extent::mapped(4096, 4096, 0)],
            BadExtent::NotCovering,
        ),
        (
            "past the device",
            vec![Extent::mapped(0, 8192, 252 * K)],
            BadExtent::PastDevice,
        ),
        (
            "overlapping",
            vec![Extent::mapped(0, 4096, 0), Extent::mapped(2048, 8192, 8192)],
            BadExtent::Overlap,
        ),
        (
            "misaligned address",
            vec![Extent::mapped(0, 8192, 100)],
            BadExtent::Misaligned,
        ),
        (
            "write to a hole",
            vec![Extent::hole(0, 1 << 20)],
            BadExtent::Unallocated,
        ),
    ];
    for (name, extents, why) in cases {
        let good = if why == BadExtent::Overlap { 4096 } else { 0 };
        let file = IomapDio::new(Fixed(extents, 1 << 20), device());
        let src = AlignedBuf::zeroed(512, 8192).unwrap();
        let mut it = IovIter::<Source, Ubuf>::new(&src);
        let res = file.direct_io(&mut Kiocb::new_sync(0), &mut it);
        if good == 0 {
            let err = res.unwrap_err();
            assert_eq!(err.errno(), Errno::EIO, "{name}");
            assert!(
                matches!(err, Error::BadExtent { why: w, pos: 0, .. } if w == why),
                "{name}: {err:?}"
            );
            assert_eq!(file.device().stats().ios(), 0, "{name}: no I/O");
        } else {
            assert_eq!(res, Ok(Submitted::Done(good)), "{name}");
        }
        // The async path says the same.
        let (mut kiocb, fut) = Kiocb::new_async_with(
            0,
            OwnedIter::<Source, _>::new(AlignedBuf::zeroed(512, 8192).unwrap()),
        );
        assert!(file.submit(&mut kiocb).unwrap().is_queued());
        let done = file.block_on(fut);
        if good == 0 {
            assert!(
                matches!(done.result, Err(Error::BadExtent { why: w, .. }) if w == why),
                "{name}"
            );
        } else {
            assert_eq!(done.result, Ok(good), "{name}");
        }
    }
}

/// [`Fixed`] with a block size of its own.
struct Blocks(Fixed, u32);

impl IoMap for Blocks {
    fn size(&self) -> u64 {
        self.0.size()
    }
    fn block_size(&self) -> u32 {
        self.1
    }
    fn begin(&self, pos: u64, len: u64, op: IomapOp) -> Result<Extent> {
        self.0.begin(pos, len, op)
    }
}

#[test]
fn inline_and_encoded_extents_and_bad_block_sizes_are_refused_before_io() {
    for e in [
        Extent::new(0, 64 * K, ExtentKind::Inline, None),
        Extent::mapped(0, 64 * K, 0).with_flags(ExtentFlags::ENCODED),
    ] {
        let file = IomapDio::new(Fixed(vec![e], 64 * K), device());
        let mut buf = AlignedBuf::zeroed(512, 4096).unwrap();
        let mut it = IovIter::<Dest, Ubuf>::new(&mut buf);
        let err = file
            .direct_io(&mut Kiocb::new_sync(0), &mut it)
            .unwrap_err();
        assert_eq!(err.errno(), Errno::EOPNOTSUPP, "{e:?}");
        assert_eq!(file.device().stats().ios(), 0);
    }
    // A sub-block write into a new block needs the block size: 1000 is
    // not one.
    let new = Extent::mapped(0, 64 * K, 0).with_flags(ExtentFlags::NEW);
    let file = IomapDio::new(Blocks(Fixed(vec![new], 64 * K), 1000), device());
    let src = AlignedBuf::zeroed(512, 512).unwrap();
    let mut it = IovIter::<Source, Ubuf>::new(&src);
    let err = file
        .direct_io(&mut Kiocb::new_sync(0), &mut it)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    assert_eq!(file.device().stats().ios(), 0);
}

#[test]
fn swap_activation_goes_through_the_same_mapping() {
    // A hole at [8K, 16K) is refused, naming it.
    let fs = toy(Alloc::Unwritten);
    assert_eq!(
        swapfile_activate(&fs, u64::MAX),
        Err(SwapActivateError::Refused {
            why: SwapRefusal::Hole,
            offset: 8 * K,
            len: 8 * K
        })
    );
    // Fill it by writing (allocation through the mapping): now accepted,
    // unwritten extents included; the area is the file rounded down to
    // pages: 9 pages, 8 usable.
    let file = IomapDio::new(fs, device());
    let src = AlignedBuf::zeroed(512, 8 * K as usize).unwrap();
    let mut it = IovIter::<Source, Ubuf>::new(&src);
    assert_eq!(
        file.direct_io(&mut Kiocb::new_sync(8 * K), &mut it),
        Ok(Submitted::Done(8 * K as usize))
    );
    let area = swapfile_activate(file.map(), u64::MAX).unwrap();
    assert_eq!((area.max(), area.pages()), (9, 8));
    // Swap page 0 (the header) is file offset 0, at device 64K.
    assert_eq!(area.device_offset(0), Some(64 * K));
    // Pages 2..4 are the new blocks at 128K, page 4 the file's [16K, 20K).
    assert_eq!(area.device_offset(2), Some(128 * K));
    assert_eq!(area.device_offset(4), Some(8 * K));
    assert_eq!(area.device_offset(9), None);
    // The header's limit clamps the area.
    assert_eq!(swapfile_activate(file.map(), 5).unwrap().pages(), 4);
}

#[test]
fn swap_activation_refuses_shared_encoded_inline_and_unknown_extents() {
    let cases = [
        (
            Extent::mapped(0, 1 << 20, 0).with_flags(ExtentFlags::SHARED),
            SwapRefusal::Shared,
        ),
        (
            Extent::mapped(0, 1 << 20, 0).with_flags(ExtentFlags::ENCODED),
            SwapRefusal::Encoded,
        ),
        (
            Extent::mapped(0, 1 << 20, 0).with_flags(ExtentFlags::DIRTY),
            SwapRefusal::Dirty,
        ),
        (
            Extent::new(0, 1 << 20, ExtentKind::Inline, None),
            SwapRefusal::Inline,
        ),
        (
            Extent::new(0, 1 << 20, ExtentKind::Mapped, None),
            SwapRefusal::UnknownAddress,
        ),
        (
            Extent::new(0, 1 << 20, ExtentKind::Delalloc, None),
            SwapRefusal::Delalloc,
        ),
    ];
    for (e, why) in cases {
        let err = swapfile_activate(&Fixed(vec![e], 1 << 20), u64::MAX).unwrap_err();
        assert_eq!(
            err,
            SwapActivateError::Refused {
                why,
                offset: 0,
                len: 1 << 20
            }
        );
        assert_eq!(err.errno(), Errno::EINVAL);
    }
    // Physically contiguous extents merge; runs are trimmed to pages; a run
    // shorter than a page once trimmed gives nothing.
    let map = Fixed(
        vec![
            Extent::mapped(0, 8192, 1 << 20),
            Extent::unwritten(8192, 8192, (1 << 20) + 8192),
            Extent::mapped(16384, 9216, (2 << 20) + 1024),
        ],
        26624,
    );
    let area = swapfile_activate(&map, u64::MAX).unwrap();
    assert_eq!(area.extents().len(), 2);
    assert_eq!((area.max(), area.pages()), (5, 4));
    let tiny = Fixed(vec![Extent::mapped(0, 4096, 100)], 4096);
    assert_eq!(
        swapfile_activate(&tiny, u64::MAX),
        Err(SwapActivateError::NoUsablePage)
    );
}

#[cfg(all(target_os = "linux", feature = "uring"))]
#[test]
#[cfg_attr(miri, ignore = "io_uring")]
fn on_io_uring_over_a_file_image_more_than_one_extent_is_in_flight() {
    use std::os::unix::fs::FileExt;
    let Some((q, path)) = common::uring_queue("toyfs", 32) else {
        return;
    };
    let image = pattern(4, 256 * K as usize);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all_at(&image, 0)
        .unwrap();
    let file = Arc::new(IomapDio::new(toy(Alloc::Unwritten), Recorder::new(q)));
    let mut futs = Vec::new();
    {
        let _plug = file.device().inner.plug(); // so none completes before we look
        for _ in 0..4 {
            let buf = AlignedBuf::with_capacity(4096, 40 * K as usize).unwrap();
            let (mut kiocb, fut) = Kiocb::new_async_with(0, OwnedIter::<Dest, _>::new(buf));
            assert_eq!(file.submit(&mut kiocb), Ok(Submitted::Queued));
            futs.push(fut);
        }
        assert_eq!(
            file.device().inner.in_flight(),
            8,
            "two extents per read, all in flight"
        );
    }
    for fut in futs {
        let done = file.block_on(fut);
        assert_eq!(done.result, Ok(36 * K as usize));
        assert_eq!(done.buf.into_inner().as_slice(), &expected(&image)[..]);
    }
    // A sub-block write into the hole, then read back through the queue.
    let data = block(8, 1024);
    let (mut kiocb, fut) = Kiocb::new_async_with(
        9 * K,
        OwnedIter::<Source, _>::new(AlignedBuf::from_slice(4096, &data).unwrap()),
    );
    assert!(file.submit(&mut kiocb).unwrap().is_queued());
    assert_eq!(file.block_on(fut).result, Ok(1024));
    let (mut kiocb, fut) = Kiocb::new_async_with(
        8 * K,
        OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(4096, 4096).unwrap()),
    );
    assert!(file.submit(&mut kiocb).unwrap().is_queued());
    let back = file.block_on(fut).buf.into_inner();
    let mut want = vec![0u8; 4096];
    want[1024..2048].copy_from_slice(&data);
    assert_eq!(back.as_slice(), &want[..]);
    let _ = std::fs::remove_file(path);
}
