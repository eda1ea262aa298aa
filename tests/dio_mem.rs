//! Direct I/O through the RAM backend (`backend::mem::MemDevice`): round
//! trips through every iterator kind, sync and async kiocbs (borrowed
//! iterators, owned buffers, deferred completions), alignment errors, end
//! of device, positions past `i64::MAX`, RWF validation, NOWAIT, dirty
//! tracking, splitting at UIO_MAXIOV and fault injection. No syscalls:
//! runs under Miri (sizes are kept small).

mod common;
use common::{all_bytes, fill_pattern, pattern};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, MemStats, PendingOrder, Trigger};
use iov_iter::buf::{AlignedBuf, OwnedIter};
use iov_iter::dio::{DioAlign, DioIter, DirectIo, DirtyBitmap, should_dirty};
use iov_iter::kiocb::{Completed, FileCaps, Kiocb, RwType, RwfFlags, Submitted};
use iov_iter::{
    Bvec, BvecSeg, Dest, Discard, Errno, Error, IoSeg, IoSegMut, IovIter, Iovec, Kvec,
    Misalignment, PAGE_SIZE, Page, Source, Ubuf,
};

const DEV: usize = 4 * PAGE_SIZE;

/// 4096-aligned scratch memory.
#[repr(C, align(4096))]
struct Buf<const N: usize>([u8; N]);

fn buf<const N: usize>() -> Box<Buf<N>> {
    Box::new(Buf([0; N]))
}

fn sync_io(dev: &MemDevice, pos: u64, it: &mut impl DioIter) -> iov_iter::Result<usize> {
    let mut kiocb = Kiocb::new_sync(pos);
    match dev.direct_io(&mut kiocb, it)? {
        Submitted::Done(n) => {
            assert_eq!(kiocb.pos, pos + n as u64);
            Ok(n)
        }
        Submitted::Queued => panic!("a sync kiocb was queued"),
    }
}

fn misaligned(e: iov_iter::Result<usize>) -> Misalignment {
    match e {
        Err(Error::Misaligned {
            what,
            mem_align,
            offset_align,
        }) => {
            assert_eq!((mem_align, offset_align), (512, 512));
            assert_eq!(
                Error::Misaligned {
                    what,
                    mem_align,
                    offset_align
                }
                .errno(),
                Errno::EINVAL
            );
            what
        }
        other => panic!("expected Misaligned, got {other:?}"),
    }
}

// ------------------------------------------------------------ round trips

#[test]
fn round_trip_iovec() {
    let dev = MemDevice::new(DEV);
    let mut src = buf::<8192>();
    fill_pattern(&mut src.0, 1);
    let (a, b) = src.0.split_at(1024);
    let segs = [
        IoSeg::new(a),
        IoSeg::new(&b[..3072]),
        IoSeg::new(&b[3072..]),
    ];
    let mut it = IovIter::<Source, Iovec>::new(&segs);
    assert_eq!(sync_io(&dev, 4096, &mut it), Ok(8192));
    assert!(it.is_empty());
    assert_eq!(dev.snapshot()[4096..12288], src.0[..]);

    let mut dst = buf::<8192>();
    let (a, b) = dst.0.split_at_mut(512);
    let mut segs = [IoSegMut::new(a), IoSegMut::new(b)];
    let mut it = IovIter::<Dest, Iovec>::new(&mut segs);
    assert_eq!(sync_io(&dev, 4096, &mut it), Ok(8192));
    assert!(it.is_empty());
    assert_eq!(dst.0[..], src.0[..]);
    assert_eq!(
        dev.stats(),
        MemStats {
            reads: 1,
            writes: 1,
            bytes_read: 8192,
            bytes_written: 8192,
            faults: 0
        }
    );
}

#[test]
fn round_trip_kvec() {
    let dev = MemDevice::new(DEV);
    let mut src = buf::<4096>();
    fill_pattern(&mut src.0, 2);
    let segs = [IoSeg::new(&src.0[..2048]), IoSeg::new(&src.0[2048..])];
    let mut it = IovIter::<Source, Kvec>::new(&segs);
    assert_eq!(sync_io(&dev, 0, &mut it), Ok(4096));

    let mut dst = buf::<4096>();
    let (a, b) = dst.0.split_at_mut(3584);
    let mut segs = [IoSegMut::new(a), IoSegMut::new(b)];
    let mut it = IovIter::<Dest, Kvec>::new(&mut segs);
    assert_eq!(sync_io(&dev, 0, &mut it), Ok(4096));
    assert_eq!(dst.0[..], src.0[..]);
}

#[test]
fn round_trip_bvec() {
    let dev = MemDevice::new(DEV);
    let (mut p0, mut p1) = (Page::new(), Page::new());
    fill_pattern(p0.as_mut_bytes(), 3);
    fill_pattern(p1.as_mut_bytes(), 4);
    let segs = [BvecSeg::full(&p0), BvecSeg::new(&p1, 512, 1024).unwrap()];
    let mut it = IovIter::<Source, Bvec>::new(&segs);
    assert_eq!(sync_io(&dev, 8192, &mut it), Ok(5120));
    let snap = dev.snapshot();
    assert_eq!(snap[8192..12288], p0.as_bytes()[..]);
    assert_eq!(snap[12288..13312], p1.as_bytes()[512..1536]);

    let (mut q0, mut q1) = (Page::new(), Page::new());
    {
        let mut segs = [
            q0.bvec_mut(0, 4096).unwrap(),
            q1.bvec_mut(2048, 1024).unwrap(),
        ];
        let mut it = IovIter::<Dest, Bvec>::new(&mut segs);
        assert_eq!(sync_io(&dev, 8192, &mut it), Ok(5120));
    }
    assert_eq!(q0.as_bytes()[..], p0.as_bytes()[..]);
    assert_eq!(q1.as_bytes()[2048..3072], p1.as_bytes()[512..1536]);
    assert!(all_bytes(&q1.as_bytes()[..2048], 0));
}

#[test]
fn round_trip_ubuf() {
    let dev = MemDevice::new(DEV);
    let mut src = buf::<4096>();
    fill_pattern(&mut src.0, 5);
    let mut it = IovIter::<Source, Ubuf>::new(&src.0[..1536]);
    assert_eq!(sync_io(&dev, 512, &mut it), Ok(1536));
    let mut dst = buf::<4096>();
    let mut it = IovIter::<Dest, Ubuf>::new(&mut dst.0[..1536]);
    assert_eq!(sync_io(&dev, 512, &mut it), Ok(1536));
    assert_eq!(dst.0[..1536], src.0[..1536]);
    assert_eq!(dev.snapshot()[..512], [0; 512]);
}

#[test]
fn discard_read_reads_and_drops() {
    let dev = MemDevice::new(DEV);
    dev.fill(0x5a);
    let mut it = IovIter::<Dest, Discard>::new(8192);
    assert_eq!(sync_io(&dev, 4096, &mut it), Ok(8192));
    assert!(it.is_empty());
    assert_eq!(dev.stats().bytes_read, 8192);
    // Short at the end of the device, like any read.
    let mut it = IovIter::<Dest, Discard>::new(8192);
    assert_eq!(sync_io(&dev, 12288, &mut it), Ok(4096));
    assert_eq!(it.count(), 4096);
    // Misaligned length is still EINVAL.
    let mut it = IovIter::<Dest, Discard>::new(100);
    assert_eq!(
        misaligned(sync_io(&dev, 0, &mut it)),
        Misalignment::TotalLength
    );
    // An injected error surfaces.
    dev.inject(FaultPlan::next(1, Fault::EIO));
    let mut it = IovIter::<Dest, Discard>::new(512);
    assert_eq!(sync_io(&dev, 0, &mut it), Err(Error::Os(Errno::EIO)));
    assert_eq!(it.count(), 512);
}

#[test]
fn zero_length_does_no_io() {
    let dev = MemDevice::new(DEV);
    let mut it = IovIter::<Source, Ubuf>::new(&[]);
    assert_eq!(sync_io(&dev, 3, &mut it), Ok(0)); // not even the offset is checked
    assert_eq!(dev.stats().ios(), 0);
}

// ------------------------------------------------------------ async

#[test]
fn async_future_completes_once_with_pos() {
    let dev = MemDevice::new(DEV);
    let mut src = buf::<4096>();
    fill_pattern(&mut src.0, 6);
    let (mut kiocb, fut) = Kiocb::new_async(4096);
    let mut it = IovIter::<Source, Ubuf>::new(&src.0);
    assert_eq!(dev.direct_io(&mut kiocb, &mut it), Ok(Submitted::Queued));
    assert!(it.is_empty());
    assert_eq!(
        fut.try_get(),
        Some(Completed {
            result: Ok(4096),
            pos: 8192,
            buf: ()
        })
    );
    assert_eq!(dev.snapshot()[4096..8192], src.0[..]);

    // Queued twice: refused before any I/O.
    let before = dev.stats();
    let mut it = IovIter::<Source, Ubuf>::new(&src.0);
    assert!(matches!(
        dev.direct_io(&mut kiocb, &mut it),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(it.count(), 4096);
    assert_eq!(dev.stats(), before);
}

#[test]
fn async_callback_runs_exactly_once() {
    let dev = MemDevice::new(DEV);
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(std::sync::Mutex::new(None));
    let mut dst = buf::<8192>();
    {
        let (c, s) = (Arc::clone(&calls), Arc::clone(&seen));
        let mut kiocb = Kiocb::with_completion(12288, move |done| {
            c.fetch_add(1, Ordering::SeqCst);
            *s.lock().unwrap() = Some(done);
        });
        let mut it = IovIter::<Dest, Ubuf>::new(&mut dst.0);
        assert_eq!(dev.direct_io(&mut kiocb, &mut it), Ok(Submitted::Queued));
        // Short read at the end of the device: 4096 of 8192.
        assert_eq!(it.count(), 4096);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(!kiocb.has_completion());
        drop(kiocb);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        *seen.lock().unwrap(),
        Some(Completed {
            result: Ok(4096),
            pos: 16384,
            buf: ()
        })
    );
}

#[test]
fn async_errors_go_through_the_completion() {
    let dev = MemDevice::new(DEV);
    let calls = Arc::new(AtomicUsize::new(0));
    let mut src = buf::<1024>();
    fill_pattern(&mut src.0, 7);

    // Misaligned: refused before anything is queued, the completion left
    // in the kiocb; the caller delivers the error through it (what
    // `aio_rw_done` does with a return other than -EIOCBQUEUED). Nothing
    // written.
    let c = Arc::clone(&calls);
    let mut kiocb = Kiocb::with_completion(100, move |done| {
        assert!(matches!(
            done.result,
            Err(Error::Misaligned {
                what: Misalignment::FileOffset,
                ..
            })
        ));
        assert_eq!(done.pos, 100);
        c.fetch_add(1, Ordering::SeqCst);
    });
    let mut it = IovIter::<Source, Ubuf>::new(&src.0);
    let err = dev.direct_io(&mut kiocb, &mut it).unwrap_err();
    assert_eq!(misaligned(Err(err)), Misalignment::FileOffset);
    assert!(kiocb.has_completion());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert!(kiocb.complete(Err(err)));
    assert!(!kiocb.has_completion());
    drop(kiocb);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(it.count(), 1024);
    assert_eq!(dev.stats().ios(), 0);

    // EIO through the future.
    dev.inject(FaultPlan::next(1, Fault::EIO));
    let (mut kiocb, fut) = Kiocb::new_async(0);
    assert_eq!(dev.direct_io(&mut kiocb, &mut it), Ok(Submitted::Queued));
    assert_eq!(
        fut.try_get(),
        Some(Completed {
            result: Err(Error::Os(Errno::EIO)),
            pos: 0,
            buf: ()
        })
    );
    assert!(all_bytes(&dev.snapshot(), 0));
}

/// Deferred completions (`defer_completions`): owned requests stay pending
/// (nothing transferred yet) until the device is driven, then complete in
/// the chosen order, each handing its buffer back; completion callbacks
/// that panic do not stop the others, and the first panic is raised again
/// once, after them.
#[test]
fn deferred_completions_run_in_order_and_survive_panics() {
    let dev = MemDevice::new(DEV);
    let data = pattern(DEV, 17);
    dev.write_at(0, &data);
    dev.defer_completions(Some(PendingOrder::Reverse));
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    for i in 0..4u64 {
        let o = Arc::clone(&order);
        let buf = OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(512, 512).unwrap());
        let mut kiocb = Kiocb::with_callback(i * 512, buf, move |done| {
            if i == 1 || i == 2 {
                o.lock().unwrap().push((i, None));
                panic!("completion {i} panics");
            }
            o.lock().unwrap().push((i, Some(done)));
        });
        assert_eq!(dev.submit(&mut kiocb), Ok(Submitted::Queued));
        assert!(!kiocb.has_completion());
    }
    assert_eq!(dev.pending(), 4);
    assert_eq!(dev.stats().ios(), 0, "the data moves when they complete");
    assert!(order.lock().unwrap().is_empty());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        dev.complete_pending(usize::MAX)
    }));
    let payload = r.expect_err("a completion panicked");
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("completion 2 panics"),
        "the first panic, in completion order"
    );
    assert_eq!(dev.pending(), 0);
    assert_eq!(dev.stats().reads, 4);
    let order = std::mem::take(&mut *order.lock().unwrap());
    assert_eq!(
        order.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        [3, 2, 1, 0]
    );
    for (i, done) in order {
        let Some(done) = done else { continue };
        assert_eq!((done.result, done.pos), (Ok(512), (i + 1) * 512));
        let at = i as usize * 512;
        assert_eq!(done.buf.into_inner()[..], data[at..at + 512]);
    }
    // Nothing is left over to raise or run.
    assert_eq!(dev.complete_pending(usize::MAX), 0);
    assert_eq!(dev.drive(1), Ok(0));
}

// ------------------------------------------------------------ alignment

#[test]
fn misaligned_requests_are_einval_and_write_nothing() {
    let dev = MemDevice::new(DEV);
    dev.fill(0xee);
    let before = dev.snapshot();
    let mut src = buf::<8192>();
    fill_pattern(&mut src.0, 8);

    // Segment address.
    let segs = [IoSeg::new(&src.0[..512]), IoSeg::new(&src.0[520..1032])];
    let mut it = IovIter::<Source, Iovec>::new(&segs);
    assert_eq!(
        misaligned(sync_io(&dev, 0, &mut it)),
        Misalignment::SegmentAddress { index: 1 }
    );
    assert_eq!(it.count(), 1024);
    // Segment length (total aligned).
    let segs = [IoSeg::new(&src.0[..256]), IoSeg::new(&src.0[512..1280])];
    let mut it = IovIter::<Source, Kvec>::new(&segs);
    assert_eq!(
        misaligned(sync_io(&dev, 0, &mut it)),
        Misalignment::SegmentLength { index: 0 }
    );
    // File offset.
    let mut it = IovIter::<Source, Ubuf>::new(&src.0[..512]);
    assert_eq!(
        misaligned(sync_io(&dev, 256, &mut it)),
        Misalignment::FileOffset
    );
    // Total length.
    let mut it = IovIter::<Source, Ubuf>::new(&src.0[..1000]);
    assert_eq!(
        misaligned(sync_io(&dev, 0, &mut it)),
        Misalignment::TotalLength
    );
    // Bvec: the in-page offset is the address.
    let mut page = Page::new();
    fill_pattern(page.as_mut_bytes(), 9);
    let segs = [BvecSeg::new(&page, 100, 512).unwrap()];
    let mut it = IovIter::<Source, Bvec>::new(&segs);
    assert_eq!(
        misaligned(sync_io(&dev, 0, &mut it)),
        Misalignment::SegmentAddress { index: 0 }
    );

    assert_eq!(dev.snapshot(), before);
    assert_eq!(dev.stats().ios(), 0);

    // Reads: the destination is untouched too.
    let mut dst = buf::<4096>();
    let mut it = IovIter::<Dest, Ubuf>::new(&mut dst.0[8..520]);
    assert_eq!(
        misaligned(sync_io(&dev, 0, &mut it)),
        Misalignment::SegmentAddress { index: 0 }
    );
    assert!(all_bytes(&dst.0, 0));
    assert_eq!(dev.stats().ios(), 0);
}

#[test]
fn custom_and_bogus_alignment() {
    let dev = MemDevice::new(DEV).with_align(DioAlign::new(4096, 4096).unwrap());
    let src = buf::<8192>();
    let mut it = IovIter::<Source, Ubuf>::new(&src.0[512..4608]);
    assert!(matches!(
        sync_io(&dev, 0, &mut it),
        Err(Error::Misaligned {
            what: Misalignment::SegmentAddress { index: 0 },
            mem_align: 4096,
            ..
        })
    ));
    assert!(DioAlign::new(0, 512).is_err());
    assert!(DioAlign::new(512, 384).is_err());
    // Built from its public fields: refused, not a panic.
    let dev = MemDevice::new(DEV).with_align(DioAlign {
        mem: 0,
        offset: 0,
        read_offset: 0,
    });
    let mut it = IovIter::<Source, Ubuf>::new(&src.0[..512]);
    assert_eq!(
        sync_io(&dev, 0, &mut it).unwrap_err().errno(),
        Errno::EINVAL
    );
}

// ------------------------------------------------------------ end of device

#[test]
fn read_past_end_is_short_and_stops() {
    let dev = MemDevice::new(DEV);
    dev.write_at(0, &pattern(DEV, 10));
    let mut dst = buf::<12288>();
    let (a, b) = dst.0.split_at_mut(4096);
    let mut segs = [IoSegMut::new(a), IoSegMut::new(b)];
    let mut it = IovIter::<Dest, Iovec>::new(&mut segs);
    let mut kiocb = Kiocb::new_sync(8192);
    assert_eq!(
        dev.direct_io(&mut kiocb, &mut it),
        Ok(Submitted::Done(8192))
    );
    assert_eq!(kiocb.pos, 16384);
    assert_eq!(it.count(), 4096); // advanced by exactly the short count
    assert_eq!(it.nr_segs(), 1);
    assert_eq!(dev.stats().reads, 1); // one transfer, no loop
    // Again, at the end: 0, still one transfer.
    assert_eq!(dev.direct_io(&mut kiocb, &mut it), Ok(Submitted::Done(0)));
    assert_eq!((kiocb.pos, it.count()), (16384, 4096));
    assert_eq!(dev.stats().reads, 2);
    // Way past the end.
    kiocb.pos = 1 << 40;
    assert_eq!(dev.direct_io(&mut kiocb, &mut it), Ok(Submitted::Done(0)));
    assert_eq!(dst.0[..8192], pattern(DEV, 10)[8192..]);
    assert!(all_bytes(&dst.0[8192..], 0));
}

#[test]
fn write_past_end_is_short_then_enospc() {
    let dev = MemDevice::new(DEV);
    let mut src = buf::<8192>();
    fill_pattern(&mut src.0, 11);
    let mut it = IovIter::<Source, Ubuf>::new(&src.0);
    assert_eq!(sync_io(&dev, 12288, &mut it), Ok(4096));
    assert_eq!(it.count(), 4096);
    assert_eq!(sync_io(&dev, 16384, &mut it), Err(Error::Os(Errno::ENOSPC)));
    assert_eq!(it.count(), 4096);
    assert_eq!(dev.snapshot()[12288..], src.0[..4096]);
}

/// `rw_verify_area`: a request that reaches past `i64::MAX` (at or past
/// 2^63, or ending past it) is EINVAL before any I/O, as on every backend.
/// (The RAM backend used to answer a read there with 0 and a write with
/// ENOSPC, as for any position past its end.)
#[test]
fn position_past_i64_max_is_einval_sync_and_async() {
    const TOP: u64 = 1 << 63;
    let is_pos_einval = |r: iov_iter::Result<Submitted>| match r {
        Err(e @ Error::InvalidArgument(_)) => e.errno() == Errno::EINVAL,
        _ => false,
    };
    let dev = MemDevice::new(DEV);
    dev.fill(0x33);
    let before = dev.snapshot();
    let mut src = buf::<512>();
    fill_pattern(&mut src.0, 16);
    let mut dst = buf::<512>();

    // Sync, borrowed, both directions: at 2^63, past it, ending past
    // i64::MAX, and u64::MAX.
    for pos in [TOP, TOP + 4096, u64::MAX - 511, TOP - 256] {
        let mut kiocb = Kiocb::new_sync(pos);
        let mut it = IovIter::<Source, Ubuf>::new(&src.0);
        assert!(
            is_pos_einval(dev.direct_io(&mut kiocb, &mut it)),
            "write at {pos:#x}"
        );
        assert_eq!((kiocb.pos, it.count()), (pos, 512));
        let mut kiocb = Kiocb::new_sync(pos);
        let mut it = IovIter::<Dest, Ubuf>::new(&mut dst.0);
        assert!(
            is_pos_einval(dev.direct_io(&mut kiocb, &mut it)),
            "read at {pos:#x}"
        );
        assert_eq!((kiocb.pos, it.count()), (pos, 512));
    }
    // The last request that ends at i64::MAX + 1 is refused; one ending a
    // block earlier is an ordinary request past the end of the device.
    let mut kiocb = Kiocb::new_sync(TOP - 512);
    let mut it = IovIter::<Source, Ubuf>::new(&src.0);
    assert!(is_pos_einval(dev.direct_io(&mut kiocb, &mut it)));
    assert_eq!(dev.stats().ios(), 0);
    let mut kiocb = Kiocb::new_sync(TOP - 1024);
    let mut it = IovIter::<Dest, Ubuf>::new(&mut dst.0);
    assert_eq!(dev.direct_io(&mut kiocb, &mut it), Ok(Submitted::Done(0)));
    let mut it = IovIter::<Source, Ubuf>::new(&src.0);
    assert_eq!(
        dev.direct_io(&mut kiocb, &mut it),
        Err(Error::Os(Errno::ENOSPC))
    );
    assert_eq!(dev.stats().ios(), 2);
    dev.reset_stats();

    // The position is checked first: before the flags (ATOMIC is not
    // supported here), the empty request and the alignment.
    let mut kiocb = Kiocb::new_sync(TOP).with_flags(iov_iter::kiocb::IocbFlags::ATOMIC);
    let mut it = IovIter::<Source, Ubuf>::new(&src.0);
    assert!(is_pos_einval(dev.direct_io(&mut kiocb, &mut it)));
    let mut it = IovIter::<Source, Ubuf>::new(&[]);
    assert!(is_pos_einval(
        dev.direct_io(&mut Kiocb::new_sync(TOP), &mut it)
    ));
    let mut it = IovIter::<Source, Ubuf>::new(&src.0[..100]);
    assert!(is_pos_einval(
        dev.direct_io(&mut Kiocb::new_sync(TOP + 1), &mut it)
    ));

    // Async, borrowed: returned before queueing, the completion stays.
    let (mut kiocb, fut) = Kiocb::new_async(TOP);
    let mut it = IovIter::<Dest, Ubuf>::new(&mut dst.0);
    assert!(is_pos_einval(dev.direct_io(&mut kiocb, &mut it)));
    assert!(kiocb.has_completion());
    assert!(!fut.is_complete());
    assert_eq!(it.count(), 512);
    drop(kiocb);
    assert_eq!(fut.wait().result, Err(Error::Os(Errno::ECANCELED)));

    // Async, owned, with deferred completions too: nothing pending, the
    // completion and its buffer still in the kiocb.
    for defer in [None, Some(PendingOrder::Fifo)] {
        dev.defer_completions(defer);
        let data = AlignedBuf::from_slice(512, &src.0).unwrap();
        let (mut kiocb, mut fut) = Kiocb::new_async_with(TOP, OwnedIter::<Source, _>::new(data));
        assert!(is_pos_einval(dev.submit(&mut kiocb)));
        assert!(kiocb.has_completion());
        assert_eq!(kiocb.buf().map(OwnedIter::count), Some(512));
        assert_eq!(dev.pending(), 0);
        assert!(fut.try_take().is_none());
        let into = AlignedBuf::zeroed(512, 512).unwrap();
        let (mut rk, rfut) = Kiocb::new_async_with(u64::MAX - 511, OwnedIter::<Dest, _>::new(into));
        assert!(is_pos_einval(dev.submit(&mut rk)));
        assert!(rk.has_completion());
        assert_eq!(rk.buf().map(OwnedIter::count), Some(512));
        assert!(!rfut.is_complete());
        // Dropped unsubmitted: cancelled, the buffer handed back unread.
        drop((kiocb, rk));
        let done = fut.try_take().unwrap();
        assert_eq!(
            (done.result, done.pos),
            (Err(Error::Os(Errno::ECANCELED)), TOP)
        );
        assert_eq!(done.buf.into_inner()[..], src.0[..]);
        let done = rfut.wait();
        assert_eq!(done.buf.count(), 512);
        assert!(all_bytes(&done.buf.into_inner(), 0));
    }
    dev.defer_completions(None);

    // Sync, owned: the buffer stays in the kiocb, not advanced.
    let mut kiocb = Kiocb::new_sync_with(TOP, OwnedIter::<Dest, _>::new(vec![0u8; 512]));
    assert!(is_pos_einval(dev.submit(&mut kiocb)));
    assert_eq!(
        (kiocb.pos, kiocb.buf().map(OwnedIter::count)),
        (TOP, Some(512))
    );

    assert_eq!(dev.stats().ios(), 0);
    assert_eq!(dev.snapshot(), before);
    assert!(all_bytes(&dst.0, 0));
}

// ------------------------------------------------------------ RWF flags, NOWAIT

#[test]
fn rw_flags_are_validated_against_device_caps() {
    let dev = MemDevice::new(DEV);
    let mut kiocb = Kiocb::new_sync(0);
    kiocb
        .set_rw_flags(
            RwfFlags::NOWAIT | RwfFlags::DSYNC,
            RwType::Read,
            &dev.caps(),
        )
        .unwrap();
    assert!(kiocb.flags.contains(iov_iter::kiocb::IocbFlags::NOWAIT));
    let err = kiocb
        .set_rw_flags(RwfFlags::ATOMIC, RwType::Write, &dev.caps())
        .unwrap_err();
    assert_eq!(err.errno(), Errno::EOPNOTSUPP);

    let slow = MemDevice::new(DEV).with_nowait(false);
    let mut kiocb = Kiocb::new_sync(0);
    let err = kiocb
        .set_rw_flags(RwfFlags::NOWAIT, RwType::Read, &slow.caps())
        .unwrap_err();
    assert_eq!(err.errno(), Errno::EOPNOTSUPP);
    assert!(kiocb.flags.is_empty());

    let atomic = MemDevice::new(DEV).with_caps(FileCaps {
        atomic_write: true,
        ..MemDevice::DEFAULT_CAPS
    });
    let mut kiocb = Kiocb::new_sync(0);
    kiocb
        .set_rw_flags(RwfFlags::ATOMIC, RwType::Write, &atomic.caps())
        .unwrap();
    let src = buf::<512>();
    let mut it = IovIter::<Source, Ubuf>::new(&src.0);
    assert_eq!(
        atomic.direct_io(&mut kiocb, &mut it),
        Ok(Submitted::Done(512))
    );
    // RWF_ATOMIC the device does not support is refused even when the
    // kiocb never went through `set_rw_flags`: direct I/O checks the
    // flags against the caps before any transfer.
    let mut kiocb = Kiocb::new_sync(0).with_flags(iov_iter::kiocb::IocbFlags::ATOMIC);
    let mut it = IovIter::<Source, Ubuf>::new(&src.0);
    assert_eq!(
        dev.direct_io(&mut kiocb, &mut it).unwrap_err().errno(),
        Errno::EOPNOTSUPP
    );
    assert_eq!((dev.stats().ios(), it.count()), (0, 512));
}

#[test]
fn nowait_that_would_block_is_eagain() {
    let dev = MemDevice::new(DEV);
    let mut src = buf::<1024>();
    fill_pattern(&mut src.0, 12);
    dev.inject(FaultPlan::next(1, Fault::WouldBlock));

    // Without NOWAIT the I/O may block: the fault does not hit.
    let mut it = IovIter::<Source, Ubuf>::new(&src.0);
    assert_eq!(sync_io(&dev, 0, &mut it), Ok(1024));
    assert_eq!(dev.armed_faults(), 1);

    let mut kiocb = Kiocb::new_sync(4096);
    kiocb
        .set_rw_flags(RwfFlags::NOWAIT, RwType::Write, &dev.caps())
        .unwrap();
    let mut it = IovIter::<Source, Ubuf>::new(&src.0);
    let err = dev.direct_io(&mut kiocb, &mut it).unwrap_err();
    assert_eq!(err, Error::WouldBlock);
    assert_eq!(err.errno(), Errno::EAGAIN);
    assert_eq!((kiocb.pos, it.count()), (4096, 1024));
    assert!(all_bytes(&dev.snapshot()[4096..], 0));
    // Used up: the retry goes through.
    assert_eq!(
        dev.direct_io(&mut kiocb, &mut it),
        Ok(Submitted::Done(1024))
    );
    assert_eq!(dev.stats().faults, 1);

    // Async NOWAIT: EAGAIN through the completion.
    dev.inject(FaultPlan::in_range(0..512, Fault::WouldBlock).reads_only());
    let (mut kiocb, fut) = Kiocb::new_async(0);
    kiocb
        .set_rw_flags(RwfFlags::NOWAIT, RwType::Read, &dev.caps())
        .unwrap();
    let mut dst = buf::<512>();
    let mut it = IovIter::<Dest, Ubuf>::new(&mut dst.0);
    assert_eq!(dev.direct_io(&mut kiocb, &mut it), Ok(Submitted::Queued));
    assert_eq!(fut.try_get().unwrap().result, Err(Error::WouldBlock));
}

// ------------------------------------------------------------ dirty tracking

#[test]
fn should_dirty_matrix() {
    assert!(should_dirty::<Dest, Iovec>());
    assert!(should_dirty::<Dest, Ubuf>());
    assert!(!should_dirty::<Dest, Kvec>());
    assert!(!should_dirty::<Dest, Bvec>());
    assert!(!should_dirty::<Dest, Discard>());
    assert!(!should_dirty::<Source, Iovec>());
    assert!(!should_dirty::<Source, Ubuf>());
    assert!(!should_dirty::<Source, Kvec>());
    assert!(!should_dirty::<Source, Bvec>());
    const { assert!(should_dirty::<Dest, Ubuf>()) };
}

fn dirty_of(bm: &DirtyBitmap) -> Vec<usize> {
    bm.dirty_pages().collect()
}

#[test]
fn dirty_iovec_read_marks_exactly_the_pages_touched() {
    let dev = MemDevice::new(DEV);
    let mut dst = buf::<{ 4 * PAGE_SIZE }>();
    let bm = DirtyBitmap::for_slice(&dst.0);
    let (p01, p23) = dst.0.split_at_mut(2 * PAGE_SIZE);
    // Page 0 whole, nothing of page 1, the first 512 bytes of page 3.
    let mut segs = [
        IoSegMut::new(&mut p01[..PAGE_SIZE]),
        IoSegMut::new(&mut p23[PAGE_SIZE..PAGE_SIZE + 512]),
    ];
    let mut it = IovIter::<Dest, Iovec>::new(&mut segs);
    let mut kiocb = Kiocb::new_sync(0);
    assert_eq!(
        dev.direct_io_tracked(&mut kiocb, &mut it, &bm),
        Ok(Submitted::Done(4608))
    );
    assert_eq!(dirty_of(&bm), [0, 3]);
}

#[test]
fn dirty_ubuf_read_marks_exactly_the_pages_touched() {
    let dev = MemDevice::new(DEV);
    let mut dst = buf::<{ 4 * PAGE_SIZE }>();
    let bm = DirtyBitmap::for_slice(&dst.0);
    let mut it = IovIter::<Dest, Ubuf>::new(&mut dst.0[PAGE_SIZE + 3584..PAGE_SIZE + 3584 + 1024]);
    let mut kiocb = Kiocb::new_sync(0);
    assert_eq!(
        dev.direct_io_tracked(&mut kiocb, &mut it, &bm),
        Ok(Submitted::Done(1024))
    );
    assert_eq!(dirty_of(&bm), [1, 2]);
}

#[test]
fn dirty_after_error_or_short_read_is_the_whole_destination() {
    let dev = MemDevice::new(DEV);
    let mut dst = buf::<{ 4 * PAGE_SIZE }>();
    let bm = DirtyBitmap::for_slice(&dst.0);

    // EIO: nothing transferred, the whole destination reported.
    dev.inject(FaultPlan::next(1, Fault::EIO));
    {
        let (a, b) = dst.0.split_at_mut(2 * PAGE_SIZE);
        let mut segs = [
            IoSegMut::new(&mut a[..512]),
            IoSegMut::new(&mut b[PAGE_SIZE..]),
        ];
        let mut it = IovIter::<Dest, Iovec>::new(&mut segs);
        let mut kiocb = Kiocb::new_sync(0);
        assert_eq!(
            dev.direct_io_tracked(&mut kiocb, &mut it, &bm),
            Err(Error::Os(Errno::EIO))
        );
        assert_eq!(it.count(), 512 + PAGE_SIZE);
    }
    assert_eq!(dirty_of(&bm), [0, 3]);

    // Injected short read: whole destination too.
    bm.clear();
    dev.inject(FaultPlan::next(1, Fault::Short(512)));
    {
        let mut it = IovIter::<Dest, Ubuf>::new(&mut dst.0[PAGE_SIZE..3 * PAGE_SIZE]);
        let mut kiocb = Kiocb::new_sync(0);
        assert_eq!(
            dev.direct_io_tracked(&mut kiocb, &mut it, &bm),
            Ok(Submitted::Done(512))
        );
        assert_eq!(it.count(), 2 * PAGE_SIZE - 512);
    }
    assert_eq!(dirty_of(&bm), [1, 2]);

    // Short at the end of the device: whole destination.
    bm.clear();
    {
        let mut it = IovIter::<Dest, Ubuf>::new(&mut dst.0[2 * PAGE_SIZE..]);
        let mut kiocb = Kiocb::new_sync(3 * PAGE_SIZE as u64);
        assert_eq!(
            dev.direct_io_tracked(&mut kiocb, &mut it, &bm),
            Ok(Submitted::Done(PAGE_SIZE))
        );
    }
    assert_eq!(dirty_of(&bm), [2, 3]);
}

#[test]
fn dirty_never_for_kvec_bvec_reads_or_any_write() {
    let dev = MemDevice::new(DEV);
    let mut mem = buf::<{ 2 * PAGE_SIZE }>();
    let bm = DirtyBitmap::for_slice(&mem.0);
    let mut kiocb = Kiocb::new_sync(0);
    {
        let mut segs = [IoSegMut::new(&mut mem.0)];
        let mut it = IovIter::<Dest, Kvec>::new(&mut segs);
        assert!(dev.direct_io_tracked(&mut kiocb, &mut it, &bm).is_ok());
    }
    // Even after an error.
    dev.inject(FaultPlan::next(1, Fault::EIO));
    {
        let mut segs = [IoSegMut::new(&mut mem.0)];
        let mut it = IovIter::<Dest, Kvec>::new(&mut segs);
        assert!(
            dev.direct_io_tracked(&mut Kiocb::new_sync(0), &mut it, &bm)
                .is_err()
        );
    }
    let mut page = Page::new();
    let pbm = DirtyBitmap::new(page.addr(), PAGE_SIZE);
    {
        let mut segs = [page.bvec_mut(0, PAGE_SIZE).unwrap()];
        let mut it = IovIter::<Dest, Bvec>::new(&mut segs);
        assert!(
            dev.direct_io_tracked(&mut Kiocb::new_sync(0), &mut it, &pbm)
                .is_ok()
        );
    }
    // Writes of every kind.
    {
        let segs = [IoSeg::new(&mem.0)];
        let mut it = IovIter::<Source, Iovec>::new(&segs);
        assert!(
            dev.direct_io_tracked(&mut Kiocb::new_sync(0), &mut it, &bm)
                .is_ok()
        );
        let mut it = IovIter::<Source, Kvec>::new(&segs);
        assert!(
            dev.direct_io_tracked(&mut Kiocb::new_sync(0), &mut it, &bm)
                .is_ok()
        );
        let mut it = IovIter::<Source, Ubuf>::new(&mem.0);
        assert!(
            dev.direct_io_tracked(&mut Kiocb::new_sync(0), &mut it, &bm)
                .is_ok()
        );
        let segs = [BvecSeg::full(&page)];
        let mut it = IovIter::<Source, Bvec>::new(&segs);
        assert!(
            dev.direct_io_tracked(&mut Kiocb::new_sync(0), &mut it, &pbm)
                .is_ok()
        );
    }
    assert_eq!(dirty_of(&bm), [] as [usize; 0]);
    assert_eq!(dirty_of(&pbm), [] as [usize; 0]);
}

// ------------------------------------------------------------ splitting

/// Small segments keep this Miri-sized: 8-byte alignment and segments.
const SEG: usize = 8;

fn small_align_dev() -> MemDevice {
    MemDevice::new(2048 * SEG).with_align(DioAlign::new(8, 8).unwrap())
}

#[test]
fn more_than_uio_maxiov_segments_are_split() {
    let dev = small_align_dev();
    let mut src = buf::<{ 2048 * SEG }>();
    fill_pattern(&mut src.0, 13);
    let segs: Vec<IoSeg<'_>> = src.0.chunks(SEG).map(IoSeg::new).collect();
    assert_eq!(segs.len(), 2048);
    let mut it = IovIter::<Source, Iovec>::new(&segs);
    assert_eq!(sync_io(&dev, 0, &mut it), Ok(2048 * SEG));
    assert_eq!(dev.stats().writes, 2);
    assert_eq!(dev.snapshot()[..2048 * SEG], src.0[..]);

    let mut dst = buf::<{ 2048 * SEG }>();
    {
        let mut segs: Vec<IoSegMut<'_>> = dst.0.chunks_mut(SEG).map(IoSegMut::new).collect();
        let mut it = IovIter::<Dest, Iovec>::new(&mut segs);
        assert_eq!(sync_io(&dev, 0, &mut it), Ok(2048 * SEG));
    }
    assert_eq!(dev.stats().reads, 2);
    assert_eq!(dst.0[..], src.0[..]);

    // 1025 segments: two transfers; max_segs 100: eleven.
    dev.reset_stats();
    let mut it = IovIter::<Source, Iovec>::new(&segs[..1025]);
    assert_eq!(sync_io(&dev, 0, &mut it), Ok(1025 * SEG));
    assert_eq!(dev.stats().writes, 2);
    let dev = small_align_dev().with_max_segs(100);
    let mut it = IovIter::<Source, Iovec>::new(&segs[..1025]);
    assert_eq!(sync_io(&dev, 0, &mut it), Ok(1025 * SEG));
    assert_eq!(dev.stats().writes, 11);
}

#[test]
fn eio_on_second_batch_returns_the_first() {
    let dev = small_align_dev();
    let mut src = buf::<{ 2048 * SEG }>();
    fill_pattern(&mut src.0, 14);
    let segs: Vec<IoSeg<'_>> = src.0.chunks(SEG).map(IoSeg::new).collect();
    dev.inject(FaultPlan::at_seq(1, Fault::EIO));
    let mut it = IovIter::<Source, Iovec>::new(&segs);
    let mut kiocb = Kiocb::new_sync(0);
    assert_eq!(
        dev.direct_io(&mut kiocb, &mut it),
        Ok(Submitted::Done(1024 * SEG))
    );
    assert_eq!(kiocb.pos, (1024 * SEG) as u64);
    assert_eq!(it.count(), 1024 * SEG);
    assert_eq!(it.nr_segs(), 1024);
    let snap = dev.snapshot();
    assert_eq!(snap[..1024 * SEG], src.0[..1024 * SEG]);
    assert!(all_bytes(&snap[1024 * SEG..], 0));

    // Read side: the dirty report covers the whole destination.
    let mut dst = buf::<{ 2048 * SEG }>();
    let bm = DirtyBitmap::for_slice(&dst.0);
    dev.reset_stats();
    dev.inject(FaultPlan::at_seq(1, Fault::EIO));
    {
        let mut segs: Vec<IoSegMut<'_>> = dst.0.chunks_mut(SEG).map(IoSegMut::new).collect();
        let mut it = IovIter::<Dest, Iovec>::new(&mut segs);
        let mut kiocb = Kiocb::new_sync(0);
        assert_eq!(
            dev.direct_io_tracked(&mut kiocb, &mut it, &bm),
            Ok(Submitted::Done(1024 * SEG))
        );
        assert_eq!(it.count(), 1024 * SEG);
    }
    assert_eq!(
        dirty_of(&bm),
        (0..2048 * SEG / PAGE_SIZE).collect::<Vec<_>>()
    );
    assert_eq!(dst.0[..1024 * SEG], src.0[..1024 * SEG]);
    assert!(all_bytes(&dst.0[1024 * SEG..], 0));
}

// ------------------------------------------------------------ fault plans

#[test]
fn short_fault_transfers_only_the_prefix() {
    let dev = MemDevice::new(DEV);
    let mut src = buf::<4096>();
    fill_pattern(&mut src.0, 15);
    dev.inject(FaultPlan::next(1, Fault::Short(700)).writes_only());
    let segs = [IoSeg::new(&src.0[..512]), IoSeg::new(&src.0[512..])];
    let mut it = IovIter::<Source, Iovec>::new(&segs);
    assert_eq!(sync_io(&dev, 0, &mut it), Ok(700));
    assert_eq!(it.count(), 4096 - 700);
    let snap = dev.snapshot();
    assert_eq!(snap[..700], src.0[..700]);
    assert!(all_bytes(&snap[700..], 0));
    assert_eq!(dev.stats().bytes_written, 700);
}

#[test]
fn range_seq_times_and_removal() {
    let dev = MemDevice::new(DEV);
    let src = buf::<512>();
    let write = |pos| {
        let mut it = IovIter::<Source, Ubuf>::new(&src.0);
        sync_io(&dev, pos, &mut it)
    };
    let id = dev.inject(FaultPlan::in_range(4096..8192, Fault::EIO).writes_only());
    assert_eq!(write(0), Ok(512));
    assert_eq!(write(3584), Ok(512)); // ends at 4096: no overlap
    assert_eq!(write(4096), Err(Error::Os(Errno::EIO)));
    assert_eq!(write(7680), Err(Error::Os(Errno::EIO))); // persistent
    assert!(dev.remove_fault(id));
    assert!(!dev.remove_fault(id));
    assert_eq!(write(4096), Ok(512));

    dev.inject(FaultPlan::in_range(0..u64::MAX, Fault::Error(Error::Os(Errno::EBUSY))).times(2));
    assert_eq!(write(0), Err(Error::Os(Errno::EBUSY)));
    assert_eq!(write(0), Err(Error::Os(Errno::EBUSY)));
    assert_eq!(write(0), Ok(512));
    assert_eq!(dev.armed_faults(), 0);

    // Sequence numbers count every transfer; a passed one is dropped.
    let seq = dev.stats().ios();
    dev.inject(FaultPlan::new(Trigger::Seq(seq + 1), Fault::EIO));
    dev.inject(FaultPlan::at_seq(0, Fault::EIO)); // already gone by
    assert_eq!(write(0), Ok(512));
    assert_eq!(write(0), Err(Error::Os(Errno::EIO)));
    assert_eq!(write(0), Ok(512));
    assert_eq!(dev.armed_faults(), 0);

    dev.inject(FaultPlan::next(3, Fault::EIO).reads_only());
    assert_eq!(write(0), Ok(512));
    assert_eq!(dev.armed_faults(), 1);
    dev.clear_faults();
    assert_eq!(dev.armed_faults(), 0);
    assert_eq!(dev.stats().faults, 5);
}

#[test]
fn append_writes_at_the_end_of_a_fixed_device() {
    let dev = MemDevice::new(DEV);
    let src = buf::<512>();
    let mut kiocb = Kiocb::new_sync(0).with_flags(iov_iter::kiocb::IocbFlags::APPEND);
    let mut it = IovIter::<Source, Ubuf>::new(&src.0);
    assert_eq!(
        dev.direct_io(&mut kiocb, &mut it),
        Err(Error::Os(Errno::ENOSPC))
    );
}

#[test]
fn concurrent_transfers_from_two_threads() {
    let dev = MemDevice::new(DEV);
    std::thread::scope(|s| {
        for t in 0..2u8 {
            let dev = &dev;
            s.spawn(move || {
                let mut src = buf::<1024>();
                src.0.fill(t + 1);
                for i in 0..4u64 {
                    let mut it = IovIter::<Source, Ubuf>::new(&src.0);
                    let pos = u64::from(t) * 8192 + i * 1024;
                    assert_eq!(sync_io(dev, pos, &mut it), Ok(1024));
                }
            });
        }
    });
    let snap = dev.snapshot();
    assert!(all_bytes(&snap[..4096], 1));
    assert!(all_bytes(&snap[8192..12288], 2));
    assert_eq!(dev.stats().writes, 8);
}

#[test]
fn read_at_write_at_bypass_faults() {
    let dev = MemDevice::new(1000);
    dev.inject(FaultPlan::next(10, Fault::EIO));
    assert_eq!(dev.write_at(990, &[7; 20]), 10);
    let mut out = [0u8; 20];
    assert_eq!(dev.read_at(990, &mut out), 10);
    assert_eq!(out[..10], [7; 10]);
    assert_eq!(dev.read_at(5000, &mut out), 0);
    assert_eq!(dev.stats(), MemStats::default());
    assert_eq!(dev.len(), 1000);
    assert!(MemDevice::try_new(usize::MAX).is_err());
    assert!(format!("{dev:?}").contains("MemDevice"));
}
