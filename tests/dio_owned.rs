//! The one I/O contract over owned buffers, on every backend: async kiocbs
//! carrying an `OwnedIter` go through `DirectIo::submit`, are queued where
//! the backend can overlap (io_uring; the RAM backend when it defers), and
//! come back exactly once through the kiocb's completion with the buffer,
//! advanced by what was transferred. Validation and splitting are the same
//! everywhere.
//!
//! The RAM-backend tests make no syscalls and run under Miri (Stacked and
//! Tree Borrows); the file and io_uring tests use real `O_DIRECT` files
//! under `CARGO_TARGET_TMPDIR`.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use common::{all_bytes, block, byte};
use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, PendingOrder};
use iov_iter::buf::{AlignedBuf, IoBuf, IoBufMut, OwnedIter};
use iov_iter::dio::{AsyncMode, DioAlign, DirectIo};
use iov_iter::kiocb::{Completed, Kiocb, RwfFlags, Submitted};
use iov_iter::{
    AnyIter, Bvec, BvecSegMut, Dest, Discard, Errno, Error, IoSeg, IoSegMut, IovIter, Iovec, Kvec,
    Page, Source, Ubuf,
};

/// Completions in the order they ran, with the position each started at.
type Log<B> = Arc<Mutex<Vec<(u64, Completed<B>)>>>;

/// A kiocb whose callback records the completion (in the order they run).
fn recording<B: Send + 'static>(pos: u64, buf: B, log: &Log<B>) -> Kiocb<B> {
    let log = Arc::clone(log);
    Kiocb::with_callback(pos, buf, move |done| log.lock().unwrap().push((pos, done)))
}

#[test]
fn ram_backend_sixteen_reads_and_writes_in_flight_complete_out_of_order() {
    const N: u64 = 16;
    const BS: usize = 512;
    let dev = MemDevice::new(N as usize * BS);
    dev.defer_completions(Some(PendingOrder::Shuffled(0xfeed)));
    assert_eq!(dev.async_mode(), AsyncMode::Queued);

    let writes = Arc::new(Mutex::new(Vec::new()));
    for b in 0..N {
        let src = OwnedIter::<Source, _>::new(AlignedBuf::from_slice(512, &block(b, BS)).unwrap());
        let mut kiocb = recording(b * BS as u64, src, &writes);
        assert_eq!(dev.submit(&mut kiocb), Ok(Submitted::Queued));
        assert!(!kiocb.has_completion(), "the I/O owns the completion now");
    }
    assert_eq!(dev.pending(), N as usize, "all sixteen in flight");
    assert!(writes.lock().unwrap().is_empty(), "nothing completed yet");
    assert!(all_bytes(&dev.snapshot(), 0), "no data moved yet");
    assert_eq!(dev.drive(1), Ok(N as usize));
    let writes = writes.lock().unwrap();
    let order: Vec<u64> = writes.iter().map(|(pos, _)| pos / BS as u64).collect();
    assert_ne!(order, (0..N).collect::<Vec<_>>(), "completed out of order");
    for (pos, done) in writes.iter() {
        assert_eq!((done.result, done.pos), (Ok(BS), pos + BS as u64));
        assert_eq!(done.buf.count(), 0, "the source was consumed");
    }
    let snap = dev.snapshot();
    for b in 0..N {
        assert_eq!(snap[b as usize * BS..][..BS], block(b, BS)[..], "block {b}");
    }

    dev.defer_completions(Some(PendingOrder::Reverse));
    let reads = Arc::new(Mutex::new(Vec::new()));
    for b in 0..N {
        let dst = OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(512, BS).unwrap());
        let mut kiocb = recording(b * BS as u64, dst, &reads);
        assert!(dev.submit(&mut kiocb).unwrap().is_queued());
    }
    assert_eq!(dev.pending(), N as usize);
    assert_eq!(dev.complete_pending(usize::MAX), N as usize);
    let reads = reads.lock().unwrap();
    let order: Vec<u64> = reads.iter().map(|(pos, _)| pos / BS as u64).collect();
    assert_eq!(
        order,
        (0..N).rev().collect::<Vec<_>>(),
        "last in, first out"
    );
    for (pos, done) in reads.iter() {
        assert_eq!(done.result, Ok(BS));
        let buf = done.buf.buf();
        assert_eq!(buf.len(), BS, "the read initialised the buffer");
        assert_eq!(buf[..], block(pos / BS as u64, BS)[..]);
    }
}

/// A buffer type of this test, not the crate's: scattered boxed chunks
/// that learn how much of them a read initialised.
#[derive(Debug)]
struct Scatter {
    chunks: Vec<Box<[u8]>>,
    init: usize,
    set_init_calls: usize,
}

impl Scatter {
    fn new(sizes: &[usize]) -> Scatter {
        Scatter {
            chunks: sizes
                .iter()
                .map(|&n| vec![0u8; n].into_boxed_slice())
                .collect(),
            init: 0,
            set_init_calls: 0,
        }
    }

    fn filled(sizes: &[usize], b: u64) -> Scatter {
        let mut s = Scatter::new(sizes);
        let data = block(b, sizes.iter().sum());
        let mut i = 0;
        for c in &mut s.chunks {
            c.copy_from_slice(&data[i..i + c.len()]);
            i += c.len();
        }
        s.init = i;
        s
    }

    fn bytes(&self) -> Vec<u8> {
        self.chunks.concat()
    }
}

// SAFETY: each chunk is a boxed slice, owned only by `Scatter`, whose heap
// memory does not move when `Scatter` does; the first `init` bytes (in
// chunk order) are reported; nothing writes them while `&self` is held.
unsafe impl IoBuf for Scatter {
    fn for_each_seg(&self, f: &mut dyn FnMut(*const u8, usize)) {
        let mut left = self.init;
        for c in &self.chunks {
            let n = c.len().min(left);
            if n == 0 {
                break;
            }
            f(c.as_ptr(), n);
            left -= n;
        }
    }
}

// SAFETY: the chunks are disjoint, writable, reached only through this
// value, and start with the initialised bytes; `set_init` only records.
unsafe impl IoBufMut for Scatter {
    fn for_each_seg_mut(&mut self, f: &mut dyn FnMut(*mut u8, usize)) {
        for c in &mut self.chunks {
            f(c.as_mut_ptr(), c.len());
        }
    }
    unsafe fn set_init(&mut self, n: usize) {
        self.set_init_calls += 1;
        self.init = self.init.max(n);
    }
}

#[test]
fn a_buffer_type_defined_here_goes_through_async_io() {
    // Byte alignment in memory (boxed slices are not 512-aligned), 512 in
    // the file.
    let dev = MemDevice::new(8192).with_align(DioAlign::new(1, 512).unwrap());
    dev.defer_completions(Some(PendingOrder::Fifo));
    let sizes = [1024, 512, 1536];
    let (mut kiocb, fut) = Kiocb::new_async_with(
        1024,
        OwnedIter::<Source, _>::new(Scatter::filled(&sizes, 9)),
    );
    assert_eq!(kiocb.buf().unwrap().nr_segs(), 3);
    assert!(dev.submit(&mut kiocb).unwrap().is_queued());
    let done = dev.block_on(fut);
    assert_eq!((done.result, done.pos), (Ok(3072), 4096));
    assert_eq!(dev.snapshot()[1024..4096], block(9, 3072)[..]);

    let (mut kiocb, fut) =
        Kiocb::new_async_with(1024, OwnedIter::<Dest, _>::new(Scatter::new(&sizes)));
    assert!(dev.submit(&mut kiocb).unwrap().is_queued());
    let done = dev.block_on(fut);
    assert_eq!(done.result, Ok(3072));
    let back = done.buf.into_inner();
    assert_eq!((back.init, back.set_init_calls), (3072, 1));
    assert_eq!(back.bytes(), block(9, 3072));
}

#[test]
fn a_short_transfer_resumes_where_it_stopped() {
    let dev = MemDevice::new(8192);
    dev.inject(FaultPlan::next(1, Fault::Short(1024)));
    let src = OwnedIter::<Source, _>::new(AlignedBuf::from_slice(512, &block(3, 4096)).unwrap());
    let (mut kiocb, fut) = Kiocb::new_async_with(0, src);
    assert!(dev.submit(&mut kiocb).unwrap().is_queued());
    let done = fut.wait(); // inline: already complete
    assert_eq!((done.result, done.pos), (Ok(1024), 1024));
    let iter = done.buf;
    assert_eq!(
        (iter.count(), iter.nr_segs(), iter.iov_offset()),
        (3072, 1, 1024)
    );
    // Submit the rest from where it stopped.
    let (mut kiocb, fut) = Kiocb::new_async_with(done.pos, iter);
    assert!(dev.submit(&mut kiocb).unwrap().is_queued());
    let done = fut.wait();
    assert_eq!(
        (done.result, done.pos, done.buf.count()),
        (Ok(3072), 4096, 0)
    );
    assert_eq!(dev.snapshot()[..4096], block(3, 4096)[..]);
}

#[test]
fn requests_past_max_segs_split_and_merge_as_a_sequential_transfer_would() {
    let dev = MemDevice::new(16 * 512).with_max_segs(4);
    dev.defer_completions(Some(PendingOrder::Reverse));
    let segs: Vec<AlignedBuf> = (0..10)
        .map(|b| AlignedBuf::from_slice(512, &block(b, 512)).unwrap())
        .collect();
    let (mut kiocb, fut) = Kiocb::new_async_with(0, OwnedIter::<Source, _>::new(segs));
    assert!(dev.submit(&mut kiocb).unwrap().is_queued());
    assert_eq!(dev.pending(), 3, "10 segments in parts of 4, 4 and 2");
    let done = dev.block_on(fut);
    assert_eq!(done.result, Ok(5120));
    let snap = dev.snapshot();
    for b in 0..10u64 {
        assert_eq!(snap[b as usize * 512..][..512], block(b, 512)[..]);
    }

    // The second part is short: the request reports the first part and
    // the short one's bytes, as a sequential transfer would have stopped
    // there; the iterator is advanced by exactly that.
    dev.defer_completions(Some(PendingOrder::Fifo));
    let dst: Vec<AlignedBuf> = (0..10)
        .map(|_| AlignedBuf::with_capacity(512, 512).unwrap())
        .collect();
    let (mut kiocb, fut) = Kiocb::new_async_with(0, OwnedIter::<Dest, _>::new(dst));
    assert!(dev.submit(&mut kiocb).unwrap().is_queued());
    dev.inject(FaultPlan::at_seq(dev.stats().ios() + 1, Fault::Short(1024)));
    let done = dev.block_on(fut);
    assert_eq!(done.result, Ok(4 * 512 + 1024));
    assert_eq!(done.buf.count(), 10 * 512 - 3072);
    let back = done.buf.into_inner();
    for (b, buf) in back.iter().enumerate().take(6) {
        assert_eq!(buf.as_slice(), &block(b as u64, 512)[..], "segment {b}");
    }

    // The first part fails: the error, nothing transferred.
    let dst: Vec<AlignedBuf> = (0..10)
        .map(|_| AlignedBuf::with_capacity(512, 512).unwrap())
        .collect();
    let (mut kiocb, fut) = Kiocb::new_async_with(0, OwnedIter::<Dest, _>::new(dst));
    assert!(dev.submit(&mut kiocb).unwrap().is_queued());
    dev.inject(FaultPlan::at_seq(dev.stats().ios(), Fault::EIO));
    let done = dev.block_on(fut);
    assert_eq!(
        (done.result, done.buf.count()),
        (Err(Error::Os(Errno::EIO)), 5120)
    );
}

#[test]
fn validation_is_the_same_sync_and_async_and_leaves_the_kiocb_intact() {
    let dev = MemDevice::new(4096).with_nowait(false);
    let buf = || OwnedIter::<Source, _>::new(AlignedBuf::zeroed(512, 512).unwrap());
    let past = 1u64 << 63;
    for pos in [past, past - 256, u64::MAX] {
        let mut sync = Kiocb::new_sync_with(pos, buf());
        assert_eq!(
            dev.submit(&mut sync).unwrap_err().errno(),
            Errno::EINVAL,
            "{pos}"
        );
        let (mut kiocb, _fut) = Kiocb::new_async_with(pos, buf());
        assert_eq!(
            dev.submit(&mut kiocb).unwrap_err().errno(),
            Errno::EINVAL,
            "{pos}"
        );
        assert!(kiocb.has_completion() && kiocb.buf().is_some());
    }
    // Misaligned position; the buffer stays in the kiocb.
    let (mut kiocb, _fut) = Kiocb::new_async_with(100, buf());
    assert!(matches!(
        dev.submit(&mut kiocb),
        Err(Error::Misaligned { .. })
    ));
    assert_eq!(kiocb.buf().unwrap().count(), 512);
    // RWF_NOWAIT on a target without it.
    let (kiocb, _fut) = Kiocb::new_async_with(0, buf());
    let mut kiocb = kiocb.with_flags(iov_iter::kiocb::IocbFlags::NOWAIT);
    assert_eq!(
        dev.submit(&mut kiocb).unwrap_err().errno(),
        Errno::EOPNOTSUPP
    );
    // The same for a borrowed iterator.
    let data = [0u8; 512];
    let mut it = IovIter::<Source, Ubuf>::new(&data);
    let mut k = Kiocb::new_sync(past);
    assert_eq!(
        dev.direct_io(&mut k, &mut it).unwrap_err().errno(),
        Errno::EINVAL
    );
    assert_eq!(dev.stats().ios(), 0, "nothing reached the device");
    // An empty owned request completes at once with 0.
    let (mut kiocb, fut) = Kiocb::new_async_with(
        0,
        OwnedIter::<Source, _>::new(AlignedBuf::zeroed(512, 0).unwrap()),
    );
    assert_eq!(dev.submit(&mut kiocb), Ok(Submitted::Queued));
    assert_eq!(fut.wait().result, Ok(0));
    // A queued kiocb cannot be queued twice.
    let (mut kiocb, _fut) = Kiocb::new_async_with(0, buf());
    assert!(dev.submit(&mut kiocb).unwrap().is_queued());
    assert_eq!(dev.submit(&mut kiocb).unwrap_err().errno(), Errno::EINVAL);
}

#[test]
fn reads_land_in_uninitialised_capacity_without_zeroing() {
    let dev = MemDevice::new(8192).with_align(DioAlign::new(1, 512).unwrap());
    dev.write_at(0, &block(5, 8192));
    // A Vec's spare capacity: its length grows to what the read covered.
    let mut v: Vec<u8> = Vec::with_capacity(4096);
    v.extend_from_slice(&[1, 2, 3]); // overwritten: a read lands from the start
    let (mut kiocb, fut) = Kiocb::new_async_with(0, OwnedIter::<Dest, _>::new(v));
    assert!(dev.submit(&mut kiocb).unwrap().is_queued());
    let done = fut.wait();
    let cap = done.buf.buf().capacity();
    assert_eq!(done.result, Ok(cap));
    let v = done.buf.into_inner();
    assert_eq!(v.len(), cap);
    assert_eq!(v[..], block(5, 8192)[..cap]);

    // A short read (end of device) initialises only what it read.
    let (mut kiocb, fut) = Kiocb::new_async_with(
        7680,
        OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(512, 4096).unwrap()),
    );
    assert!(dev.submit(&mut kiocb).unwrap().is_queued());
    let done = fut.wait();
    assert_eq!(done.result, Ok(512));
    assert_eq!(done.buf.count(), 4096 - 512);
    assert_eq!(done.buf.buf().as_slice(), &block(5, 8192)[7680..]);
}

#[test]
fn every_completion_runs_exactly_once_whatever_is_dropped() {
    let dev = MemDevice::new(8192);
    dev.defer_completions(Some(PendingOrder::Fifo));
    let runs = Arc::new(Mutex::new(Vec::new()));
    // A future dropped while its read is in flight: the I/O still runs, and
    // the buffer is freed after it (Miri checks nothing leaks or dangles).
    let (mut kiocb, fut) = Kiocb::new_async_with(
        0,
        OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(512, 4096).unwrap()),
    );
    assert!(dev.submit(&mut kiocb).unwrap().is_queued());
    drop(fut);
    drop(kiocb);
    // Callbacks whose device goes away with them pending: ECANCELED, with
    // the buffer handed back.
    for b in 0..3u64 {
        let src = OwnedIter::<Source, _>::new(AlignedBuf::from_slice(512, &block(b, 512)).unwrap());
        let mut kiocb = recording(b * 512, src, &runs);
        assert!(dev.submit(&mut kiocb).unwrap().is_queued());
    }
    assert_eq!(dev.pending(), 4);
    assert_eq!(dev.complete_pending(1), 1);
    drop(dev);
    let runs = runs.lock().unwrap();
    assert_eq!(runs.len(), 3);
    for (b, (_, done)) in runs.iter().enumerate() {
        assert_eq!(done.result, Err(Error::Os(Errno::ECANCELED)));
        assert_eq!(done.buf.count(), 512, "nothing transferred");
        assert_eq!(done.buf.buf().as_slice(), &block(b as u64, 512)[..]);
    }
}

#[test]
fn panicking_completions_do_not_stop_the_others() {
    let dev = MemDevice::new(8192);
    dev.defer_completions(Some(PendingOrder::Fifo));
    let ran = Arc::new(Mutex::new(Vec::new()));
    for i in 0..4u64 {
        let ran = Arc::clone(&ran);
        let src = OwnedIter::<Source, _>::new(AlignedBuf::zeroed(512, 512).unwrap());
        let mut kiocb = Kiocb::with_callback(i * 512, src, move |done| {
            ran.lock().unwrap().push((i, done.result));
            if i % 2 == 0 {
                panic!("completion {i} panics");
            }
        });
        assert!(dev.submit(&mut kiocb).unwrap().is_queued());
    }
    let r = catch_unwind(AssertUnwindSafe(|| dev.complete_pending(usize::MAX)));
    let msg = r.unwrap_err();
    assert_eq!(
        msg.downcast_ref::<String>().map(String::as_str),
        Some("completion 0 panics")
    );
    let ran = ran.lock().unwrap();
    assert_eq!(ran.iter().map(|r| r.0).collect::<Vec<_>>(), [0, 1, 2, 3]);
    assert!(ran.iter().all(|r| r.1 == Ok(512)));
    assert_eq!(dev.pending(), 0);
}

/// A layer above a device that zero-fills holes in a read's destination
/// through the object-safe hook (here: everything below 1024 is a hole).
struct HoleBelow1k(MemDevice);

impl DirectIo for HoleBelow1k {
    fn dio_align(&self) -> DioAlign {
        self.0.dio_align()
    }
    unsafe fn transfer(
        &self,
        rw: iov_iter::kiocb::RwType,
        pos: u64,
        iov: &[iov_iter::UserIovec],
        flags: RwfFlags,
    ) -> iov_iter::Result<usize> {
        // SAFETY: forwarded with the caller's promises.
        unsafe { self.0.transfer(rw, pos, iov, flags) }
    }
    fn read_iter(
        &self,
        kiocb: &mut Kiocb,
        iter: &mut AnyIter<'_, Dest>,
        dirty: &dyn iov_iter::dio::DirtyTracker,
    ) -> iov_iter::Result<Submitted> {
        if kiocb.pos < 1024 && kiocb.is_sync() {
            let hole = (1024 - kiocb.pos as usize).min(iter.count());
            let n = iter.zero(hole);
            kiocb.advance_pos(n);
            let rest = self.0.read_iter(kiocb, iter, dirty)?;
            return Ok(match rest {
                Submitted::Done(m) => Submitted::Done(n + m),
                q => q,
            });
        }
        self.0.read_iter(kiocb, iter, dirty)
    }
}

#[test]
fn box_dyn_targets_take_every_iterator_kind() {
    // Vec memory is byte-aligned: the devices want 512-byte lengths only.
    let align = DioAlign::new(1, 512).unwrap();
    let plain = MemDevice::new(4096).with_align(align);
    plain.write_at(0, &block(1, 4096));
    let layered = MemDevice::new(4096).with_align(align);
    layered.write_at(0, &block(1, 4096));
    let targets: Vec<Box<dyn DirectIo>> = vec![Box::new(plain), Box::new(HoleBelow1k(layered))];
    for (t, dev) in targets.iter().enumerate() {
        let expect = |range: std::ops::Range<usize>| -> Vec<u8> {
            range
                .map(|i| if t == 1 && i < 1024 { 0 } else { byte(1, i) })
                .collect()
        };
        // Ubuf.
        let mut a = vec![0u8; 512];
        let mut it = IovIter::<Dest, Ubuf>::new(&mut a);
        assert_eq!(
            dev.direct_io(&mut Kiocb::new_sync(512), &mut it),
            Ok(Submitted::Done(512))
        );
        assert_eq!(a, expect(512..1024), "target {t}");
        // Iovec (two segments) and Kvec.
        let (mut x, mut y) = (vec![0u8; 512], vec![0u8; 1024]);
        {
            let mut segs = [IoSegMut::new(&mut x), IoSegMut::new(&mut y)];
            let mut it = IovIter::<Dest, Iovec>::new(&mut segs);
            assert_eq!(
                dev.direct_io(&mut Kiocb::new_sync(0), &mut it),
                Ok(Submitted::Done(1536))
            );
            assert_eq!(it.count(), 0, "the caller's iterator advanced");
        }
        assert_eq!([x, y].concat(), expect(0..1536), "target {t}");
        let mut z = vec![0u8; 1024];
        {
            let mut segs = [IoSegMut::new(&mut z)];
            let mut it = AnyIter::from(IovIter::<Dest, Kvec>::new(&mut segs));
            assert_eq!(
                dev.direct_io(&mut Kiocb::new_sync(2048), &mut it),
                Ok(Submitted::Done(1024))
            );
            assert_eq!(it.count(), 0);
        }
        assert_eq!(z, expect(2048..3072));
        // Bvec over a page, and Discard.
        let mut page = Page::new();
        {
            let mut segs = [BvecSegMut::full(&mut page)];
            let mut it = IovIter::<Dest, Bvec>::new(&mut segs);
            assert_eq!(
                dev.direct_io(&mut Kiocb::new_sync(0), &mut it),
                Ok(Submitted::Done(4096))
            );
        }
        assert_eq!(page.as_bytes()[..], expect(0..4096)[..]);
        let mut d = IovIter::<Dest, Discard>::new(4096);
        assert_eq!(
            dev.direct_io(&mut Kiocb::new_sync(0), &mut d),
            Ok(Submitted::Done(4096))
        );
        // A source, and an owned request, through the same box.
        let src = [7u8; 512];
        let segs = [IoSeg::new(&src)];
        let mut w = IovIter::<Source, Kvec>::new(&segs);
        assert_eq!(
            dev.direct_io(&mut Kiocb::new_sync(3584), &mut w),
            Ok(Submitted::Done(512))
        );
        let (mut kiocb, fut) = Kiocb::new_async_with(
            3584,
            OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(512, 512).unwrap()),
        );
        assert!(dev.submit(&mut kiocb).unwrap().is_queued());
        assert_eq!(dev.block_on(fut).buf.into_inner().as_slice(), &src[..]);
    }
}

// ---------------------------------------------------------------------------
// Real files: O_DIRECT (inline) and io_uring (queued).

#[cfg(target_os = "linux")]
mod real {
    use super::*;
    use common::direct_file as file;

    /// Sixteen async writes then sixteen async reads of 4 KiB blocks
    /// through the one trait, every byte verified; returns the most
    /// requests seen in flight by a callback-free check after each submit.
    pub(super) fn sixteen_each(dev: &dyn DirectIo, in_flight: &dyn Fn() -> usize) -> usize {
        const N: u64 = 16;
        const BS: usize = 4096;
        let mut max = 0;
        let mut futs = Vec::new();
        for b in 0..N {
            let src =
                OwnedIter::<Source, _>::new(AlignedBuf::from_slice(4096, &block(b, BS)).unwrap());
            let (mut kiocb, fut) = Kiocb::new_async_with(b * BS as u64, src);
            assert_eq!((&dev).submit(&mut kiocb), Ok(Submitted::Queued));
            max = max.max(in_flight());
            futs.push(fut);
        }
        for fut in futs {
            let done = (&dev).block_on(fut);
            assert_eq!(done.result, Ok(BS));
        }
        let mut futs = Vec::new();
        for b in 0..N {
            let dst = OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(4096, BS).unwrap());
            let (mut kiocb, fut) = Kiocb::new_async_with(b * BS as u64, dst);
            assert!((&dev).submit(&mut kiocb).unwrap().is_queued());
            max = max.max(in_flight());
            futs.push((b, fut));
        }
        for (b, fut) in futs {
            let done = (&dev).block_on(fut);
            assert_eq!(done.result, Ok(BS));
            assert_eq!(
                done.buf.into_inner().as_slice(),
                &block(b, BS)[..],
                "block {b}"
            );
        }
        max
    }

    #[test]
    #[cfg_attr(miri, ignore = "O_DIRECT file")]
    fn file_backend_sixteen_async_reads_and_writes_complete_inline() {
        let Some((f, p)) = file("inline") else { return };
        assert_eq!(f.async_mode(), AsyncMode::Inline);
        let max = sixteen_each(&f, &|| 0);
        assert_eq!(max, 0, "the file backend completes before submit returns");
        // Said so: a future is complete right after submit.
        let (mut kiocb, fut) = Kiocb::new_async_with(
            0,
            OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(4096, 4096).unwrap()),
        );
        assert!(f.submit(&mut kiocb).unwrap().is_queued());
        assert!(fut.is_complete());
        let _ = std::fs::remove_file(p);
    }

    #[cfg(feature = "uring")]
    mod uring {
        use super::*;
        use common::uring_queue as queue;

        #[test]
        #[cfg_attr(miri, ignore = "io_uring")]
        fn sixteen_async_reads_and_writes_overlap() {
            let Some((q, p)) = queue("uring16", 32) else {
                return;
            };
            assert_eq!(q.async_mode(), AsyncMode::Queued);
            let max = sixteen_each(&q, &|| q.in_flight());
            assert!(max > 1, "requests overlapped: {max} in flight at most");
            let _ = std::fs::remove_file(p);
        }

        #[test]
        #[cfg_attr(miri, ignore = "io_uring")]
        fn under_a_plug_all_sixteen_are_in_flight_before_any_completion() {
            let Some((q, p)) = queue("uring_plug", 32) else {
                return;
            };
            let log = Arc::new(Mutex::new(Vec::new()));
            {
                let _plug = q.plug();
                for b in 0..16u64 {
                    let src = OwnedIter::<Source, _>::new(
                        AlignedBuf::from_slice(4096, &block(b, 4096)).unwrap(),
                    );
                    let mut kiocb = recording(b * 4096, src, &log);
                    assert!(q.submit(&mut kiocb).unwrap().is_queued());
                }
                assert_eq!((q.in_flight(), q.unsubmitted()), (16, 16));
                assert!(log.lock().unwrap().is_empty(), "none completed");
            }
            q.drain().unwrap();
            let log = log.lock().unwrap();
            assert_eq!(log.len(), 16);
            assert!(
                log.iter()
                    .all(|(_, d)| d.result == Ok(4096) && d.buf.count() == 0)
            );
            let mut back = vec![0u8; 16 * 4096];
            use std::os::unix::fs::FileExt;
            std::fs::File::open(&p)
                .unwrap()
                .read_exact_at(&mut back, 0)
                .unwrap();
            for b in 0..16u64 {
                assert_eq!(back[b as usize * 4096..][..4096], block(b, 4096)[..]);
            }
            let _ = std::fs::remove_file(p);
        }

        #[test]
        #[cfg_attr(miri, ignore = "io_uring")]
        fn more_than_1024_segments_split_with_every_part_in_flight() {
            let Some((q, p)) = queue("uring_split", 8) else {
                return;
            };
            let n = 1100;
            let segs: Vec<AlignedBuf> = (0..n)
                .map(|b| AlignedBuf::from_slice(512, &block(b, 512)).unwrap())
                .collect();
            let (mut kiocb, fut) = Kiocb::new_async_with(0, OwnedIter::<Source, _>::new(segs));
            assert!(q.submit(&mut kiocb).unwrap().is_queued());
            assert_eq!(q.in_flight(), 2, "1024 + 76 segments");
            assert_eq!(q.block_on(fut).result, Ok(n as usize * 512));
            let dst: Vec<AlignedBuf> = (0..n)
                .map(|_| AlignedBuf::with_capacity(512, 512).unwrap())
                .collect();
            let (mut kiocb, fut) = Kiocb::new_async_with(0, OwnedIter::<Dest, _>::new(dst));
            assert!(q.submit(&mut kiocb).unwrap().is_queued());
            let done = q.block_on(fut);
            assert_eq!(done.result, Ok(n as usize * 512));
            for (b, buf) in done.buf.into_inner().iter().enumerate() {
                assert_eq!(buf.as_slice(), &block(b as u64, 512)[..]);
            }
            let _ = std::fs::remove_file(p);
        }

        #[test]
        #[cfg_attr(miri, ignore = "io_uring")]
        fn dropping_the_queue_completes_every_request_with_its_buffer() {
            let Some((q, p)) = queue("uring_drop", 32) else {
                return;
            };
            let log = Arc::new(Mutex::new(Vec::new()));
            for b in 0..24u64 {
                let src = OwnedIter::<Source, _>::new(
                    AlignedBuf::from_slice(4096, &block(b, 4096)).unwrap(),
                );
                let mut kiocb = recording(b * 4096, src, &log);
                assert!(q.submit(&mut kiocb).unwrap().is_queued());
            }
            let (mut kiocb, fut) = Kiocb::new_async_with(
                0,
                OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(4096, 4096).unwrap()),
            );
            assert!(q.submit(&mut kiocb).unwrap().is_queued());
            drop(fut); // nobody waits for this one
            drop(q);
            let log = log.lock().unwrap();
            assert_eq!(log.len(), 24, "every callback ran before the drop returned");
            for (pos, d) in log.iter() {
                match d.result {
                    Ok(n) => assert_eq!((n, d.buf.count()), (4096, 0)),
                    Err(e) => assert_eq!((e.errno(), d.buf.count()), (Errno::ECANCELED, 4096)),
                }
                assert_eq!(d.buf.buf().as_slice(), &block(pos / 4096, 4096)[..]);
            }
            let _ = std::fs::remove_file(p);
        }

        #[test]
        #[cfg_attr(miri, ignore = "io_uring")]
        fn two_panicking_completions_in_one_reap_do_not_abort() {
            let Some((q, p)) = queue("uring_panic", 32) else {
                return;
            };
            let ran = Arc::new(Mutex::new(0));
            {
                let _plug = q.plug();
                for b in 0..4u64 {
                    let ran = Arc::clone(&ran);
                    let src = OwnedIter::<Source, _>::new(AlignedBuf::zeroed(4096, 4096).unwrap());
                    let mut kiocb = Kiocb::with_callback(b * 4096, src, move |_| {
                        *ran.lock().unwrap() += 1;
                        if b < 2 {
                            panic!("completion {b}");
                        }
                    });
                    assert!(q.submit(&mut kiocb).unwrap().is_queued());
                }
            }
            let mut panics = 0;
            while q.in_flight() > 0 {
                if catch_unwind(AssertUnwindSafe(|| q.wait(usize::MAX))).is_err() {
                    panics += 1;
                }
            }
            assert_eq!(*ran.lock().unwrap(), 4, "every completion ran");
            assert!(
                (1..=2).contains(&panics),
                "re-raised once per reap: {panics}"
            );
            // The queue still works.
            let (mut kiocb, fut) = Kiocb::new_async_with(
                0,
                OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(4096, 4096).unwrap()),
            );
            assert!(q.submit(&mut kiocb).unwrap().is_queued());
            assert_eq!(q.block_on(fut).result, Ok(4096));
            let _ = std::fs::remove_file(p);
        }
    }
}

#[test]
fn a_sync_kiocb_whose_buffer_was_taken_is_einval() {
    let dev = MemDevice::new(4096);
    let mut kiocb = Kiocb::new_sync_with(
        0,
        OwnedIter::<Source, _>::new(AlignedBuf::zeroed(512, 512).unwrap()),
    );
    let buf = kiocb.take_buf().unwrap();
    assert_eq!(dev.submit(&mut kiocb).unwrap_err().errno(), Errno::EINVAL);
    assert_eq!(dev.stats().ios(), 0);
    // Put back (a new kiocb), it goes through and stays in the kiocb.
    let mut kiocb = Kiocb::new_sync_with(0, buf);
    assert_eq!(dev.submit(&mut kiocb), Ok(Submitted::Done(512)));
    assert_eq!((kiocb.pos, kiocb.buf().unwrap().count()), (512, 0));
}

#[test]
fn reads_follow_the_smaller_read_offset_alignment() {
    // Writes need 4 KiB offsets, reads 512 (statx STATX_DIO_READ_ALIGN).
    let align = DioAlign::new(512, 4096)
        .unwrap()
        .with_read_offset(512)
        .unwrap();
    let dev = MemDevice::new(16384).with_align(align);
    dev.write_at(0, &block(6, 16384));
    let (mut kiocb, fut) = Kiocb::new_async_with(
        512,
        OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(512, 1024).unwrap()),
    );
    assert!(dev.submit(&mut kiocb).unwrap().is_queued());
    assert_eq!(
        fut.wait().buf.into_inner().as_slice(),
        &block(6, 16384)[512..1536]
    );
    let (mut kiocb, _fut) = Kiocb::new_async_with(
        512,
        OwnedIter::<Source, _>::new(AlignedBuf::zeroed(512, 4096).unwrap()),
    );
    match dev.submit(&mut kiocb) {
        Err(Error::Misaligned { offset_align, .. }) => assert_eq!(offset_align, 4096),
        other => panic!("{other:?}"),
    }
}

/// A 64 KiB folio reaches the device as one segment.
#[test]
fn a_folio_reaches_the_device_as_one_segment() {
    use iov_iter::Folio;
    let dev = common::Recorder::new(MemDevice::new(1 << 17));
    let mut folio = Folio::new(4).unwrap();
    folio.as_mut_bytes().copy_from_slice(&block(8, 65536));
    {
        let segs = [folio.bvec(0, 65536).unwrap()];
        let mut it = IovIter::<Source, Bvec>::new(&segs);
        assert_eq!(
            dev.direct_io(&mut Kiocb::new_sync(0), &mut it),
            Ok(Submitted::Done(65536))
        );
    }
    let (mut kiocb, fut) =
        Kiocb::new_async_with(0, OwnedIter::<Dest, _>::new(Folio::new(4).unwrap()));
    assert!(dev.submit(&mut kiocb).unwrap().is_queued());
    assert_eq!(fut.wait().buf.into_inner().as_bytes(), &block(8, 65536)[..]);
    let seen = dev.seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter().all(|(_, r)| r.len() == 1 && r[0].1 == 65536),
        "{seen:?}"
    );
}
