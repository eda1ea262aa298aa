//! Bad input that no other test file covered, for the table in the crate
//! docs (`iov_iter::bad_input`): page ranges outside the page for every bvec
//! constructor, overlapping ranges in `Page::bvecs_mut`, a `DioAlign` that
//! is not a pair of powers of two, every `Error` variant's errno, owned
//! buffers misaligned for the device or with a bad alignment of their own,
//! the async contract's edges (a future dropped in flight, a kiocb dropped
//! unsubmitted, a completion that panics inline), and a file whose
//! `statx(STATX_DIOALIGN)` says it has no direct I/O.
//!
//! Every test but the last makes no syscall and runs under Miri. The last
//! one builds a real ext4 image with `inline_data` (a tiny file then lives
//! in its inode, and ext4 reports `stx_dio_mem_align == 0`), loop-mounts it
//! and opens a file on it: it needs root, `mkfs.ext4` and a loop device, and
//! prints a loud SKIP line and returns where any of them is missing.

mod common;
use common::all_bytes;

use iov_iter::backend::mem::{MemDevice, PendingOrder};
use iov_iter::buf::{AlignedBuf, IoBuf, IoBufMut, OwnedIter};
use iov_iter::dio::{DioAlign, DioBuf, DirectIo};
use iov_iter::kiocb::{Kiocb, Submitted};
use iov_iter::{
    BvecSeg, BvecSegMut, Dest, Direction, Errno, Error, IovIter, Misalignment, PAGE_SIZE, Page,
    Source, Ubuf,
};

/// Ranges that leave the page: past the end, an offset past the end with
/// nothing in it, and `offset + len` overflowing.
const OUTSIDE: [(usize, usize); 5] = [
    (4000, 100),
    (0, PAGE_SIZE + 1),
    (PAGE_SIZE + 1, 0),
    (usize::MAX, 2),
    (1, usize::MAX),
];

#[test]
fn bvec_range_outside_the_page_is_efault() {
    let mut page = Page::new();
    page.as_mut_bytes().fill(0x5a);
    for (offset, len) in OUTSIDE {
        let want = Error::PageRange { offset, len };
        assert_eq!(want.errno(), Errno::EFAULT);
        assert_eq!(BvecSeg::new(&page, offset, len).unwrap_err(), want);
        assert_eq!(page.bvec(offset, len).unwrap_err(), want);
        assert_eq!(
            BvecSegMut::new(&mut page, offset, len).unwrap_err(),
            want,
            "BvecSegMut::new({offset}, {len})"
        );
        assert_eq!(page.bvec_mut(offset, len).unwrap_err(), want);
        assert_eq!(page.bvecs_mut([(offset, len)]).unwrap_err(), want);
        // The bad range is reported whatever its position.
        assert_eq!(page.bvecs_mut([(0, 1), (offset, len)]).unwrap_err(), want);
    }
    // The edges are inside: the empty range at the very end, the whole page.
    assert_eq!(BvecSeg::new(&page, PAGE_SIZE, 0).unwrap().len(), 0);
    assert_eq!(page.bvec_mut(0, PAGE_SIZE).unwrap().len(), PAGE_SIZE);
    assert!(all_bytes(page.as_bytes(), 0x5a));
}

#[test]
fn bvecs_mut_overlapping_ranges_are_einval() {
    let mut page = Page::new();
    for ranges in [
        [(0, 10), (5, 10)],
        [(5, 10), (0, 10)],
        [(100, 1), (100, 1)],
        [(0, PAGE_SIZE), (PAGE_SIZE - 1, 1)],
    ] {
        let err = page.bvecs_mut(ranges).unwrap_err();
        assert_eq!(err, Error::OverlappingRanges, "{ranges:?}");
        assert_eq!(err.errno(), Errno::EINVAL);
    }
    // Ranges are checked in order: whichever problem comes first wins.
    assert_eq!(
        page.bvecs_mut([(0, 10), (5, 1), (PAGE_SIZE, 1)])
            .unwrap_err(),
        Error::OverlappingRanges
    );
    assert_eq!(
        page.bvecs_mut([(0, 10), (PAGE_SIZE, 1), (5, 1)])
            .unwrap_err(),
        Error::PageRange {
            offset: PAGE_SIZE,
            len: 1
        }
    );
    // Adjacent ranges and empty ranges do not overlap.
    let segs = page.bvecs_mut([(0, 10), (10, 10), (5, 0)]).unwrap();
    assert_eq!(segs.iter().map(BvecSegMut::len).sum::<usize>(), 20);
}

#[test]
fn dio_align_not_power_of_two_is_einval() {
    for (mem, offset) in [(0, 512), (512, 0), (384, 512), (512, 384), (3, 3)] {
        let err = DioAlign::new(mem, offset).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        assert_eq!(err.errno(), Errno::EINVAL);
    }
    assert_eq!(
        DioAlign::new(1, 4096),
        Ok(DioAlign {
            mem: 1,
            offset: 4096,
            read_offset: 0,
        })
    );

    // Built from its public fields, it is refused when used: before any
    // I/O, with the iterator and the position untouched.
    let dev = MemDevice::new(1 << 16).with_align(DioAlign {
        mem: 512,
        offset: 384,
        read_offset: 0,
    });
    let src = Page::new();
    let mut it = IovIter::<Source, Ubuf>::new(&src.as_bytes()[..1536]);
    let mut kiocb = Kiocb::new_sync(0);
    let err = dev.direct_io(&mut kiocb, &mut it).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    assert_eq!(err.errno(), Errno::EINVAL);
    assert_eq!((it.count(), kiocb.pos), (1536, 0));
    assert_eq!(dev.stats().ios(), 0);
    // A valid one for comparison: the same request goes through.
    let dev = dev.with_align(DioAlign::new(512, 512).unwrap());
    assert_eq!(
        dev.direct_io(&mut kiocb, &mut it),
        Ok(Submitted::Done(1536))
    );
}

/// The errno column of the table, variant by variant.
#[test]
fn every_error_variant_has_its_errno() {
    let misaligned = |what| Error::Misaligned {
        what,
        mem_align: 512,
        offset_align: 512,
    };
    let cases = [
        (
            Error::RevertPastStart {
                requested: 2,
                consumed: 1,
            },
            Errno::EINVAL,
        ),
        (Error::RevertTooLarge(usize::MAX), Errno::EINVAL),
        (
            Error::ReexpandPastEnd {
                requested: 2,
                available: 1,
            },
            Errno::EINVAL,
        ),
        (Error::ForeignState, Errno::EINVAL),
        (Error::TooManySegments(1025), Errno::EINVAL),
        (
            Error::SegmentTooLong {
                index: 0,
                len: usize::MAX,
            },
            Errno::EINVAL,
        ),
        (Error::NullSegment { index: 0 }, Errno::EFAULT),
        (Error::PageRange { offset: 1, len: 0 }, Errno::EFAULT),
        (Error::OverlappingRanges, Errno::EINVAL),
        (Error::NoPages, Errno::EFAULT),
        (
            misaligned(Misalignment::SegmentAddress { index: 0 }),
            Errno::EINVAL,
        ),
        (
            misaligned(Misalignment::SegmentLength { index: 0 }),
            Errno::EINVAL,
        ),
        (misaligned(Misalignment::FileOffset), Errno::EINVAL),
        (misaligned(Misalignment::TotalLength), Errno::EINVAL),
        (Error::InvalidArgument("x"), Errno::EINVAL),
        (Error::NotSupported("x"), Errno::EOPNOTSUPP),
        (Error::WouldBlock, Errno::EAGAIN),
        (Error::Os(Errno::EPERM), Errno::EPERM),
    ];
    for (err, errno) in cases {
        assert_eq!(err.errno(), errno, "{err:?}");
        assert!(!err.to_string().is_empty());
        let io = std::io::Error::from(err);
        assert_eq!(io.raw_os_error(), Some(errno.raw()), "{err:?}");
    }
    // EAGAIN from a backend becomes the typed WouldBlock.
    assert_eq!(Error::from(Errno::EAGAIN), Error::WouldBlock);
}

/// An owned buffer of one segment at `offset` bytes into an allocation
/// aligned to 512: an address no allocator guarantees to misalign.
struct Shifted {
    buf: AlignedBuf,
    offset: usize,
    len: usize,
}

impl Shifted {
    fn new(offset: usize, len: usize) -> Shifted {
        Shifted {
            buf: AlignedBuf::zeroed(512, offset + len).unwrap(),
            offset,
            len,
        }
    }
}

// SAFETY: the one segment lies inside the `AlignedBuf` the value owns (a
// heap allocation that does not move with it), initialised (zeroed), and
// reported the same on every call; nothing else reaches it.
unsafe impl IoBuf for Shifted {
    fn for_each_seg(&self, f: &mut dyn FnMut(*const u8, usize)) {
        f(self.buf.as_ptr().wrapping_add(self.offset), self.len);
    }
}

// SAFETY: as above; the segment is writable through `as_mut_slice`, and
// it starts with the segment `for_each_seg` reports (the same one).
unsafe impl IoBufMut for Shifted {
    fn for_each_seg_mut(&mut self, f: &mut dyn FnMut(*mut u8, usize)) {
        let p = self.buf.as_mut_slice().as_mut_ptr();
        f(p.wrapping_add(self.offset), self.len);
    }
    unsafe fn set_init(&mut self, _: usize) {}
}

/// Owned buffers that do not fit the device's alignment (512/512 here):
/// a segment at a misaligned address, a segment or a total length that is
/// not a multiple of 512, a misaligned position. Sync and async, reads and
/// writes: `Misaligned` (EINVAL) naming the part, before any I/O; the
/// buffer stays in the kiocb (and an async kiocb keeps its completion).
#[test]
fn owned_buffers_misaligned_for_the_device_are_einval_and_stay_in_the_kiocb() {
    let dev = MemDevice::new(1 << 16).with_align(DioAlign::new(512, 512).unwrap());
    dev.defer_completions(Some(PendingOrder::Fifo));
    fn check<D: Direction, B: Send + 'static>(
        dev: &MemDevice,
        pos: u64,
        buf: impl Fn() -> OwnedIter<D, B>,
        what: Misalignment,
    ) where
        OwnedIter<D, B>: DioBuf,
    {
        let count = buf().count();
        let mut sync = Kiocb::new_sync_with(pos, buf());
        let e = dev.submit(&mut sync).unwrap_err();
        assert!(
            matches!(e, Error::Misaligned { what: w, .. } if w == what),
            "{e:?}"
        );
        assert_eq!(e.errno(), Errno::EINVAL);
        assert_eq!((sync.pos, sync.buf().unwrap().count()), (pos, count));
        let (mut kiocb, mut fut) = Kiocb::new_async_with(pos, buf());
        let e = dev.submit(&mut kiocb).unwrap_err();
        assert!(
            matches!(e, Error::Misaligned { what: w, .. } if w == what),
            "{e:?}"
        );
        assert!(kiocb.has_completion());
        assert_eq!(kiocb.buf().unwrap().count(), count);
        assert!(fut.try_take().is_none(), "nothing completed");
    }
    use Misalignment::*;
    let src =
        |align, len| move || OwnedIter::<Source, _>::new(AlignedBuf::zeroed(align, len).unwrap());
    let dst = |len| move || OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(512, len).unwrap());
    check(
        &dev,
        0,
        || OwnedIter::<Source, _>::new(Shifted::new(1, 512)),
        SegmentAddress { index: 0 },
    );
    check(
        &dev,
        0,
        || OwnedIter::<Dest, _>::new(Shifted::new(256, 512)),
        SegmentAddress { index: 0 },
    );
    let two = || {
        OwnedIter::<Source, _>::new(vec![
            AlignedBuf::zeroed(512, 512).unwrap(),
            AlignedBuf::zeroed(512, 100).unwrap(),
            AlignedBuf::zeroed(512, 412).unwrap(),
        ])
    };
    check(&dev, 0, two, SegmentLength { index: 1 });
    check(&dev, 0, src(512, 100), TotalLength);
    check(&dev, 0, dst(4097), TotalLength);
    check(&dev, 256, src(512, 512), FileOffset);
    check(&dev, 513, dst(512), FileOffset);
    assert_eq!(dev.stats().ios(), 0, "nothing reached the device");
    assert_eq!(dev.pending(), 0);
    // The position comes first, then the total, then each segment.
    check(
        &dev,
        1,
        || OwnedIter::<Source, _>::new(Shifted::new(1, 100)),
        FileOffset,
    );
    check(
        &dev,
        0,
        || OwnedIter::<Source, _>::new(Shifted::new(1, 100)),
        TotalLength,
    );
    // An empty buffer is not misaligned: it completes at once with 0.
    let (mut kiocb, fut) = Kiocb::new_async_with(0, OwnedIter::<Dest, _>::new(Vec::<u8>::new()));
    assert_eq!(dev.submit(&mut kiocb), Ok(Submitted::Queued));
    assert_eq!(fut.wait().result, Ok(0));
}

/// `AlignedBuf` with an alignment that is not a power of two (0
/// included), or a size its alignment cannot hold: `InvalidArgument`
/// (EINVAL), nothing allocated.
#[test]
fn aligned_buf_with_a_bad_alignment_or_size_is_einval() {
    for align in [0, 3, 384, usize::MAX] {
        for r in [
            AlignedBuf::with_capacity(align, 512),
            AlignedBuf::zeroed(align, 512),
            AlignedBuf::from_slice(align, &[1; 512]),
        ] {
            let e = r.unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{align}: {e:?}");
            assert_eq!(e.errno(), Errno::EINVAL);
        }
    }
    for cap in [usize::MAX, isize::MAX as usize] {
        let e = AlignedBuf::with_capacity(4096, cap).unwrap_err();
        assert_eq!(e.errno(), Errno::EINVAL, "{cap}: {e:?}");
    }
    assert_eq!(AlignedBuf::zeroed(1, 0).unwrap().len(), 0);
}

/// A future dropped while its write is in flight does not cancel the
/// write: it lands, and the buffer is freed after it (Miri checks nothing
/// dangles). A kiocb dropped before it was submitted completes with
/// ECANCELED, its buffer handed back.
#[test]
fn a_dropped_future_does_not_cancel_its_write() {
    let dev = MemDevice::new(8192);
    dev.defer_completions(Some(PendingOrder::Fifo));
    let data: Vec<u8> = (0..1024).map(|i| (i % 251) as u8).collect();
    let src = OwnedIter::<Source, _>::new(AlignedBuf::from_slice(512, &data).unwrap());
    let (mut kiocb, fut) = Kiocb::new_async_with(512, src);
    assert!(dev.submit(&mut kiocb).unwrap().is_queued());
    drop((fut, kiocb));
    assert_eq!(dev.pending(), 1);
    assert_eq!(dev.complete_pending(usize::MAX), 1);
    let mut back = vec![0u8; 1024];
    assert_eq!(dev.read_at(512, &mut back), 1024);
    assert_eq!(back, data, "the write landed");
    // Never submitted: cancelled, the buffer comes back.
    let (tx, rx) = std::sync::mpsc::channel();
    let src = OwnedIter::<Source, _>::new(AlignedBuf::from_slice(512, &data).unwrap());
    drop(Kiocb::with_callback(0, src, move |done| {
        tx.send(done).unwrap()
    }));
    let done = rx.recv().unwrap();
    assert_eq!(done.result, Err(Error::Os(Errno::ECANCELED)));
    assert_eq!(done.buf.buf().as_slice(), &data[..]);
    assert_eq!(dev.stats().writes, 1);
}

/// A completion callback that panics on a target completing inline (in
/// `submit` itself): the panic leaves `submit`, the I/O was done, and the
/// target works on.
#[test]
fn a_panicking_inline_completion_leaves_submit_after_the_io() {
    let dev = MemDevice::new(8192);
    let src = OwnedIter::<Source, _>::new(AlignedBuf::from_slice(512, &[7; 512]).unwrap());
    let mut kiocb = Kiocb::with_callback(0, src, |done| {
        assert_eq!(done.result, Ok(512));
        panic!("completion panics");
    });
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dev.submit(&mut kiocb)));
    let msg = r.unwrap_err();
    assert_eq!(msg.downcast_ref::<&str>(), Some(&"completion panics"));
    assert!(!kiocb.has_completion(), "it ran");
    let mut back = [0u8; 512];
    assert_eq!(dev.read_at(0, &mut back), 512);
    assert_eq!(back, [7; 512]);
    let (mut k, fut) = Kiocb::new_async_with(
        512,
        OwnedIter::<Source, _>::new(AlignedBuf::zeroed(512, 512).unwrap()),
    );
    assert!(dev.submit(&mut k).unwrap().is_queued());
    assert_eq!(fut.wait().result, Ok(512));
}

/// I/O on a file without direct-I/O support: `statx(STATX_DIOALIGN)` sets
/// the bit and reports 0, and opening is `Error::NotSupported`
/// (EOPNOTSUPP). ext4 does that for a file whose data is inline in its
/// inode (also for data=journal, fs-verity and some encrypted files), so
/// the test makes such a file on a fresh loop-mounted ext4 image.
#[cfg(target_os = "linux")]
#[test]
#[cfg_attr(miri, ignore = "mkfs, mount and statx")]
fn direct_file_without_dio_support_is_eopnotsupp() {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use iov_iter::backend::file::DirectFile;

    /// Unmounts and removes the scratch files, even when the test panics.
    struct Scratch {
        dir: PathBuf,
        mounted: bool,
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            if self.mounted {
                let mnt = self.dir.join("mnt");
                let ok = Command::new("umount")
                    .arg(&mnt)
                    .status()
                    .is_ok_and(|s| s.success());
                if !ok {
                    let _ = Command::new("umount").arg("-l").arg(&mnt).status();
                }
            }
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
    fn skip(why: &str) {
        eprintln!(
            "SKIP direct_file_without_dio_support_is_eopnotsupp: {why} \
             (needs root, mkfs.ext4 and a loop device)"
        );
    }
    fn run(cmd: &mut Command) -> Result<(), String> {
        match cmd.output() {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(format!(
                "{cmd:?}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => Err(format!("{cmd:?}: {e}")),
        }
    }

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bad_input-nodio-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("mnt")).unwrap();
    let mut scratch = Scratch {
        dir: dir.clone(),
        mounted: false,
    };
    let img = dir.join("ext4.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(32 << 20)
        .unwrap();
    let mkfs = ["mkfs.ext4", "/sbin/mkfs.ext4", "/usr/sbin/mkfs.ext4"]
        .into_iter()
        .find(|m| {
            Command::new(m)
                .arg("-V")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let Some(mkfs) = mkfs else {
        return skip("no mkfs.ext4");
    };
    if let Err(e) = run(Command::new(mkfs)
        .args(["-q", "-F", "-O", "inline_data"])
        .arg(&img))
    {
        return skip(&e);
    }
    if let Err(e) = run(Command::new("mount")
        .args(["-o", "loop"])
        .arg(&img)
        .arg(dir.join("mnt")))
    {
        return skip(&e);
    }
    scratch.mounted = true;

    // Small enough to be stored inline.
    let path = dir.join("mnt/tiny");
    std::fs::write(&path, b"tiny").unwrap();
    let err = DirectFile::open(&path).unwrap_err();
    assert!(matches!(err, Error::NotSupported(_)), "{err:?}");
    assert_eq!(err.errno(), Errno::EOPNOTSUPP);
    let err = DirectFile::from_file(std::fs::File::open(&path).unwrap()).unwrap_err();
    assert_eq!(err.errno(), Errno::EOPNOTSUPP);

    // Control: a file on the same filesystem whose data is not inline
    // opens fine, so the refusal is about the file, not the mount.
    let big = dir.join("mnt/big");
    std::fs::write(&big, vec![1u8; 2 * PAGE_SIZE]).unwrap();
    assert!(DirectFile::open(&big).is_ok());
    drop(scratch);
}
