//! Bad input that no other test file covered, for the table in the crate
//! docs (`iov_iter::bad_input`): page ranges outside the page for every bvec
//! constructor, overlapping ranges in `Page::bvecs_mut`, a `DioAlign` that
//! is not a pair of powers of two, every `Error` variant's errno, and a file
//! whose `statx(STATX_DIOALIGN)` says it has no direct I/O.
//!
//! Every test but the last makes no syscall and runs under Miri. The last
//! one builds a real ext4 image with `inline_data` (a tiny file then lives
//! in its inode, and ext4 reports `stx_dio_mem_align == 0`), loop-mounts it
//! and opens a file on it: it needs root, `mkfs.ext4` and a loop device, and
//! prints a loud SKIP line and returns where any of them is missing.

use iov_iter::backend::mem::MemDevice;
use iov_iter::dio::{DioAlign, DirectIo};
use iov_iter::kiocb::{Kiocb, Submitted};
use iov_iter::{
    BvecSeg, BvecSegMut, Errno, Error, IovIter, Misalignment, PAGE_SIZE, Page, Source, Ubuf,
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
    assert!(page.as_bytes().iter().all(|&b| b == 0x5a));
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
