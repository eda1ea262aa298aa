//! Real `O_DIRECT` I/O through `backend::file::DirectFile`, on files under
//! `CARGO_TARGET_TMPDIR` (a real filesystem, never tmpfs: a test on tmpfs
//! prints "SKIP" and returns). Where the filesystem refuses `O_DIRECT`
//! (`EINVAL` / `EOPNOTSUPP`), each test prints a loud SKIP line and returns.
//!
//! Not covered: `EINTR` retry in `DirectFile::transfer` (a signal cannot be
//! made to land inside `preadv2` reliably from a test). Deterministic
//! `EAGAIN` under `RWF_NOWAIT` is covered by the `mem` backend tests
//! (`tests/dio_mem.rs`); here a NOWAIT write only checks that either the
//! kernel did it or it said `EAGAIN` with nothing transferred.
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use iov_iter::backend::file::{AlignSource, DirectFile};
use iov_iter::dio::{DioAlign, DioIter, DirectIo, DirtyBitmap};
use iov_iter::kiocb::{Completed, FileCaps, IocbFlags, Kiocb, RwType, RwfFlags, Submitted};
use iov_iter::{
    Bvec, BvecSeg, Dest, Discard, Errno, Error, IoSeg, IoSegMut, IovIter, Iovec, Kvec,
    Misalignment, PAGE_SIZE, Page, Source, Ubuf, UserIovec,
};

/// `TMPFS_MAGIC` from `linux/magic.h`.
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// 4096-aligned scratch memory.
#[repr(C, align(4096))]
struct Buf<const N: usize>([u8; N]);

fn buf<const N: usize>() -> Box<Buf<N>> {
    Box::new(Buf([0; N]))
}

fn pattern(seed: u8, out: &mut [u8]) {
    for (i, b) in out.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8;
    }
}

struct TestFile {
    file: DirectFile,
    path: PathBuf,
}

impl TestFile {
    fn contents(&self) -> Vec<u8> {
        std::fs::read(&self.path).unwrap()
    }
}

impl Drop for TestFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A fresh file named after the test, or `None` (after a loud SKIP line)
/// where O_DIRECT is refused or the directory is on tmpfs.
fn open(name: &str) -> Option<TestFile> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("dio_file-{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    match DirectFile::options()
        .create(true)
        .truncate(true)
        .open(&path)
    {
        Ok(file) => {
            if let Ok(st) = rustix::fs::fstatfs(&file) {
                // `f_type`'s integer type differs between architectures.
                #[allow(clippy::useless_conversion)]
                let is_tmpfs = i64::from(st.f_type) == TMPFS_MAGIC;
                if is_tmpfs {
                    eprintln!(
                        "SKIP: {} is on tmpfs; direct I/O tests need a real filesystem",
                        dir.display()
                    );
                    let _ = std::fs::remove_file(&path);
                    return None;
                }
            }
            Some(TestFile { file, path })
        }
        Err(e) if matches!(e.errno(), Errno::EINVAL | Errno::EOPNOTSUPP) => {
            eprintln!("SKIP: O_DIRECT refused on {}: {e}", path.display());
            let _ = std::fs::remove_file(&path);
            None
        }
        Err(e) => panic!("opening {}: {e}", path.display()),
    }
}

macro_rules! open_or_skip {
    ($name:expr) => {
        match open($name) {
            Some(t) => t,
            None => return,
        }
    };
}

fn sync_io<T: DirectIo>(t: &T, pos: u64, it: &mut impl DioIter) -> iov_iter::Result<usize> {
    let mut kiocb = Kiocb::new_sync(pos);
    match t.direct_io(&mut kiocb, it)? {
        Submitted::Done(n) => {
            assert_eq!(kiocb.pos, pos + n as u64);
            Ok(n)
        }
        Submitted::Queued => panic!("a sync kiocb was queued"),
    }
}

/// Writes `len` bytes of `pattern(seed)` at `pos` with a Ubuf.
fn fill(t: &TestFile, pos: u64, len: usize, seed: u8) -> Vec<u8> {
    let mut b = buf::<{ 16 * PAGE_SIZE }>();
    assert!(len <= b.0.len());
    pattern(seed, &mut b.0[..len]);
    let mut it = IovIter::<Source, Ubuf>::new(&b.0[..len]);
    assert_eq!(sync_io(&t.file, pos, &mut it), Ok(len));
    b.0[..len].to_vec()
}

// ------------------------------------------------------------ opening

#[test]
#[cfg_attr(miri, ignore)]
fn open_reads_alignment_from_statx() {
    let t = open_or_skip!("open");
    let a = t.file.dio_align();
    eprintln!(
        "dio_align = {a:?} from {:?}, caps = {:?}",
        t.file.align_source(),
        t.file.caps()
    );
    assert!(a.mem.is_power_of_two() && a.offset.is_power_of_two());
    assert!(
        a.offset as usize <= PAGE_SIZE,
        "tests assume offset alignment <= 4096"
    );
    // Linux >= 6.1 on ext4/xfs/btrfs reports STATX_DIOALIGN.
    assert_eq!(t.file.align_source(), AlignSource::Statx);
    assert!(t.file.caps().nowait);
    assert_eq!(
        t.file.caps().atomic_write,
        t.file.atomic_write_units().is_some()
    );
    let flags = rustix::fs::fcntl_getfl(&t.file).unwrap();
    assert!(flags.contains(rustix::fs::OFlags::DIRECT));
    assert_eq!(t.file.len(), Ok(0));
    assert!(format!("{:?}", t.file).contains("DirectFile"));
}

#[test]
#[cfg_attr(miri, ignore)]
fn from_file_sets_o_direct() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("dio_file-from_file-{}", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    let file = match DirectFile::from_file(f) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("SKIP: O_DIRECT refused on {}: {e}", path.display());
            let _ = std::fs::remove_file(&path);
            return;
        }
    };
    assert!(
        rustix::fs::fcntl_getfl(&file)
            .unwrap()
            .contains(rustix::fs::OFlags::DIRECT)
    );
    let t = TestFile { file, path };
    let data = fill(&t, 0, PAGE_SIZE, 1);
    assert_eq!(t.contents(), data);
}

#[test]
#[cfg_attr(miri, ignore)]
fn open_errors_are_typed() {
    let missing = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dio_file-does-not-exist/x");
    assert_eq!(
        DirectFile::open(&missing).unwrap_err(),
        Error::Os(Errno::from_raw(2))
    ); // ENOENT
    let err = DirectFile::options()
        .read(false)
        .write(false)
        .open(&missing)
        .unwrap_err();
    assert_eq!(err.errno(), Errno::EINVAL);
}

#[test]
#[cfg_attr(miri, ignore)]
fn len_set_len_allocate_sync() {
    let t = open_or_skip!("len");
    t.file.set_len(3 * PAGE_SIZE as u64).unwrap();
    assert_eq!(t.file.len(), Ok(3 * PAGE_SIZE as u64));
    match t.file.allocate(8 * PAGE_SIZE as u64) {
        Ok(()) => assert_eq!(t.file.len(), Ok(8 * PAGE_SIZE as u64)),
        Err(e) => assert_eq!(e.errno(), Errno::EOPNOTSUPP),
    }
    t.file.sync().unwrap();
    t.file.sync_data().unwrap();
    t.file.set_len(0).unwrap();
    assert_eq!(t.file.is_empty(), Ok(true));
}

// ------------------------------------------------------------ round trips

#[test]
#[cfg_attr(miri, ignore)]
fn round_trip_iovec() {
    let t = open_or_skip!("iovec");
    let mut src = buf::<{ 4 * PAGE_SIZE }>();
    pattern(2, &mut src.0);
    let (a, b) = src.0.split_at(PAGE_SIZE);
    let segs = [IoSeg::new(a), IoSeg::new(&b[..512]), IoSeg::new(&b[512..])];
    let mut it = IovIter::<Source, Iovec>::new(&segs);
    assert_eq!(sync_io(&t.file, 4096, &mut it), Ok(4 * PAGE_SIZE));
    assert!(it.is_empty());
    let c = t.contents();
    assert_eq!(c.len(), 5 * PAGE_SIZE);
    assert_eq!(c[4096..], src.0[..]);

    let mut dst = buf::<{ 4 * PAGE_SIZE }>();
    {
        let (a, b) = dst.0.split_at_mut(3 * PAGE_SIZE);
        let mut segs = [IoSegMut::new(b), IoSegMut::new(a)]; // reversed order
        let mut it = IovIter::<Dest, Iovec>::new(&mut segs);
        assert_eq!(sync_io(&t.file, 4096, &mut it), Ok(4 * PAGE_SIZE));
    }
    assert_eq!(dst.0[3 * PAGE_SIZE..], src.0[..PAGE_SIZE]);
    assert_eq!(dst.0[..3 * PAGE_SIZE], src.0[PAGE_SIZE..]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn round_trip_kvec() {
    let t = open_or_skip!("kvec");
    let mut src = buf::<{ 2 * PAGE_SIZE }>();
    pattern(3, &mut src.0);
    let segs = [IoSeg::new(&src.0[..1024]), IoSeg::new(&src.0[1024..])];
    let mut it = IovIter::<Source, Kvec>::new(&segs);
    assert_eq!(sync_io(&t.file, 0, &mut it), Ok(2 * PAGE_SIZE));
    let mut dst = buf::<{ 2 * PAGE_SIZE }>();
    {
        let mut segs = [IoSegMut::new(&mut dst.0)];
        let mut it = IovIter::<Dest, Kvec>::new(&mut segs);
        assert_eq!(sync_io(&t.file, 0, &mut it), Ok(2 * PAGE_SIZE));
    }
    assert_eq!(dst.0[..], src.0[..]);
    assert_eq!(t.contents(), src.0);
}

#[test]
#[cfg_attr(miri, ignore)]
fn round_trip_bvec() {
    let t = open_or_skip!("bvec");
    let (mut p0, mut p1) = (Page::new(), Page::new());
    pattern(4, p0.as_mut_bytes());
    pattern(5, p1.as_mut_bytes());
    let segs = [BvecSeg::full(&p0), BvecSeg::full(&p1)];
    let mut it = IovIter::<Source, Bvec>::new(&segs);
    assert_eq!(sync_io(&t.file, 0, &mut it), Ok(2 * PAGE_SIZE));
    let (mut q0, mut q1) = (Page::new(), Page::new());
    {
        let mut segs = [
            q0.bvec_mut(0, PAGE_SIZE).unwrap(),
            q1.bvec_mut(0, PAGE_SIZE).unwrap(),
        ];
        let mut it = IovIter::<Dest, Bvec>::new(&mut segs);
        assert_eq!(sync_io(&t.file, 0, &mut it), Ok(2 * PAGE_SIZE));
    }
    assert_eq!(q0.as_bytes(), p0.as_bytes());
    assert_eq!(q1.as_bytes(), p1.as_bytes());
}

#[test]
#[cfg_attr(miri, ignore)]
fn round_trip_ubuf() {
    let t = open_or_skip!("ubuf");
    let data = fill(&t, 8192, 3 * PAGE_SIZE, 6);
    let mut dst = buf::<{ 3 * PAGE_SIZE }>();
    let mut it = IovIter::<Dest, Ubuf>::new(&mut dst.0);
    assert_eq!(sync_io(&t.file, 8192, &mut it), Ok(3 * PAGE_SIZE));
    assert_eq!(dst.0[..], data[..]);
    // The hole before it reads as zeros.
    assert!(t.contents()[..8192].iter().all(|&b| b == 0));
}

#[test]
#[cfg_attr(miri, ignore)]
fn discard_read() {
    let t = open_or_skip!("discard");
    fill(&t, 0, 4 * PAGE_SIZE, 7);
    let mut it = IovIter::<Dest, Discard>::new(3 * PAGE_SIZE);
    assert_eq!(
        sync_io(&t.file, PAGE_SIZE as u64, &mut it),
        Ok(3 * PAGE_SIZE)
    );
    assert!(it.is_empty());
    // Past the end: short.
    let mut it = IovIter::<Dest, Discard>::new(4 * PAGE_SIZE);
    assert_eq!(
        sync_io(&t.file, 2 * PAGE_SIZE as u64, &mut it),
        Ok(2 * PAGE_SIZE)
    );
    assert_eq!(it.count(), 2 * PAGE_SIZE);
}

// ------------------------------------------------------------ async

#[test]
#[cfg_attr(miri, ignore)]
fn async_future_and_callback() {
    let t = open_or_skip!("async");
    let mut src = buf::<{ 2 * PAGE_SIZE }>();
    pattern(8, &mut src.0);
    let (mut kiocb, fut) = Kiocb::new_async(PAGE_SIZE as u64);
    let mut it = IovIter::<Source, Ubuf>::new(&src.0);
    assert_eq!(t.file.direct_io(&mut kiocb, &mut it), Ok(Submitted::Queued));
    assert!(it.is_empty());
    assert_eq!(
        fut.wait(),
        Completed {
            result: Ok(2 * PAGE_SIZE),
            pos: 3 * PAGE_SIZE as u64,
            buf: (),
        }
    );

    let calls = Arc::new(AtomicUsize::new(0));
    let got = Arc::new(std::sync::Mutex::new(None));
    let mut dst = buf::<{ 4 * PAGE_SIZE }>();
    {
        let (c, g) = (Arc::clone(&calls), Arc::clone(&got));
        let mut kiocb = Kiocb::with_completion(PAGE_SIZE as u64, move |done| {
            c.fetch_add(1, Ordering::SeqCst);
            *g.lock().unwrap() = Some(done);
        });
        let mut it = IovIter::<Dest, Ubuf>::new(&mut dst.0);
        assert_eq!(t.file.direct_io(&mut kiocb, &mut it), Ok(Submitted::Queued));
        assert_eq!(it.count(), 2 * PAGE_SIZE); // short at end of file
        // A second submission is refused before any I/O.
        assert!(matches!(
            t.file.direct_io(&mut kiocb, &mut it),
            Err(Error::InvalidArgument(_))
        ));
        assert_eq!(it.count(), 2 * PAGE_SIZE);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        *got.lock().unwrap(),
        Some(Completed {
            result: Ok(2 * PAGE_SIZE),
            pos: 3 * PAGE_SIZE as u64,
            buf: (),
        })
    );
    assert_eq!(dst.0[..2 * PAGE_SIZE], src.0[..]);
}

// ------------------------------------------------------------ alignment

fn what(r: iov_iter::Result<usize>, a: DioAlign) -> Misalignment {
    match r {
        Err(Error::Misaligned {
            what,
            mem_align,
            offset_align,
        }) => {
            assert_eq!((mem_align, offset_align), (a.mem, a.offset));
            what
        }
        other => panic!("expected Misaligned, got {other:?}"),
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn misaligned_requests_are_einval_and_write_nothing() {
    let t = open_or_skip!("misaligned");
    let before = fill(&t, 0, 4 * PAGE_SIZE, 9);
    let a = t.file.dio_align();
    let (mem, off) = (a.mem as usize, a.offset as usize);
    let mut src = buf::<{ 4 * PAGE_SIZE }>();
    pattern(10, &mut src.0);

    if mem >= 2 {
        let segs = [
            IoSeg::new(&src.0[..off]),
            IoSeg::new(&src.0[PAGE_SIZE + mem / 2..][..off]),
        ];
        let mut it = IovIter::<Source, Iovec>::new(&segs);
        assert_eq!(
            what(sync_io(&t.file, 0, &mut it), a),
            Misalignment::SegmentAddress { index: 1 }
        );
        assert_eq!(it.count(), 2 * off);
    } else {
        eprintln!("note: memory alignment is 1 byte; no misaligned address exists");
    }
    if off >= 2 {
        let segs = [
            IoSeg::new(&src.0[..off / 2]),
            IoSeg::new(&src.0[PAGE_SIZE..][..off + off / 2]),
        ];
        let mut it = IovIter::<Source, Kvec>::new(&segs);
        assert_eq!(
            what(sync_io(&t.file, 0, &mut it), a),
            Misalignment::SegmentLength { index: 0 }
        );
        let mut it = IovIter::<Source, Ubuf>::new(&src.0[..off]);
        assert_eq!(
            what(sync_io(&t.file, off as u64 / 2, &mut it), a),
            Misalignment::FileOffset
        );
        let mut it = IovIter::<Source, Ubuf>::new(&src.0[..off + 1]);
        assert_eq!(
            what(sync_io(&t.file, 0, &mut it), a),
            Misalignment::TotalLength
        );
    }
    assert_eq!(t.contents(), before);

    // The kernel agrees: the same misaligned offset sent straight to the
    // backend, past the crate's check, is EINVAL from pwritev2, and nothing
    // is written either.
    if off >= 2 {
        let iov = [UserIovec::new(src.0.as_mut_ptr(), off)];
        // SAFETY: `src` is live, readable for `off` bytes and not written
        // during the call.
        let r = unsafe {
            t.file
                .transfer(RwType::Write, off as u64 / 2, &iov, RwfFlags::empty())
        };
        assert_eq!(r, Err(Error::Os(Errno::EINVAL)));
        assert_eq!(t.contents(), before);
    }

    // Reads: the destination is untouched.
    if mem >= 2 {
        let mut dst = buf::<{ 2 * PAGE_SIZE }>();
        {
            let mut it = IovIter::<Dest, Ubuf>::new(&mut dst.0[mem / 2..][..off]);
            assert_eq!(
                what(sync_io(&t.file, 0, &mut it), a),
                Misalignment::SegmentAddress { index: 0 }
            );
        }
        assert!(dst.0.iter().all(|&b| b == 0));
    }
}

// ------------------------------------------------------------ end of file

#[test]
#[cfg_attr(miri, ignore)]
fn read_past_eof_is_short_and_stops() {
    let t = open_or_skip!("eof");
    let data = fill(&t, 0, 2 * PAGE_SIZE, 11);
    let mut dst = buf::<{ 4 * PAGE_SIZE }>();
    {
        let (a, b) = dst.0.split_at_mut(2 * PAGE_SIZE);
        let (a0, a1) = a.split_at_mut(PAGE_SIZE);
        let mut segs = [IoSegMut::new(a0), IoSegMut::new(a1), IoSegMut::new(b)];
        let mut it = IovIter::<Dest, Iovec>::new(&mut segs);
        let mut kiocb = Kiocb::new_sync(PAGE_SIZE as u64);
        assert_eq!(
            t.file.direct_io(&mut kiocb, &mut it),
            Ok(Submitted::Done(PAGE_SIZE))
        );
        assert_eq!(kiocb.pos, 2 * PAGE_SIZE as u64);
        assert_eq!(it.count(), 3 * PAGE_SIZE);
        assert_eq!(it.nr_segs(), 2);
        // At EOF: 0, nothing moves.
        assert_eq!(
            t.file.direct_io(&mut kiocb, &mut it),
            Ok(Submitted::Done(0))
        );
        assert_eq!(
            (kiocb.pos, it.count()),
            (2 * PAGE_SIZE as u64, 3 * PAGE_SIZE)
        );
    }
    assert_eq!(dst.0[..PAGE_SIZE], data[PAGE_SIZE..]);
    assert!(dst.0[PAGE_SIZE..].iter().all(|&b| b == 0));
}

#[test]
#[cfg_attr(miri, ignore)]
fn read_of_unaligned_file_size_is_short_by_the_tail() {
    let t = open_or_skip!("tail");
    let data = fill(&t, 0, 2 * PAGE_SIZE, 12);
    t.file.set_len(5000).unwrap();
    let mut dst = buf::<{ 4 * PAGE_SIZE }>();
    let mut it = IovIter::<Dest, Ubuf>::new(&mut dst.0);
    let mut kiocb = Kiocb::new_sync(0);
    assert_eq!(
        t.file.direct_io(&mut kiocb, &mut it),
        Ok(Submitted::Done(5000))
    );
    assert_eq!((kiocb.pos, it.count()), (5000, 4 * PAGE_SIZE - 5000));
    assert_eq!(dst.0[..5000], data[..5000]);
}

// ------------------------------------------------------------ RWF flags

#[test]
#[cfg_attr(miri, ignore)]
fn rw_flags_through_set_rw_flags() {
    let t = open_or_skip!("rwf");
    fill(&t, 0, 2 * PAGE_SIZE, 13);
    let caps = t.file.caps();

    // NOWAIT read of written blocks: supported and does not block.
    let mut kiocb = Kiocb::new_sync(0).with_flags(IocbFlags::DIRECT);
    kiocb
        .set_rw_flags(RwfFlags::NOWAIT, RwType::Read, &caps)
        .unwrap();
    assert!(kiocb.flags.contains(IocbFlags::NOWAIT | IocbFlags::NOIO));
    let mut dst = buf::<PAGE_SIZE>();
    let mut it = IovIter::<Dest, Ubuf>::new(&mut dst.0);
    assert_eq!(
        t.file.direct_io(&mut kiocb, &mut it),
        Ok(Submitted::Done(PAGE_SIZE))
    );

    // DSYNC / SYNC / HIPRI pass through to pwritev2.
    let mut kiocb = Kiocb::new_sync(PAGE_SIZE as u64);
    kiocb
        .set_rw_flags(
            RwfFlags::DSYNC | RwfFlags::SYNC | RwfFlags::HIPRI,
            RwType::Write,
            &caps,
        )
        .unwrap();
    let src = buf::<PAGE_SIZE>();
    let mut it = IovIter::<Source, Ubuf>::new(&src.0);
    assert_eq!(
        t.file.direct_io(&mut kiocb, &mut it),
        Ok(Submitted::Done(PAGE_SIZE))
    );
    assert!(t.contents()[PAGE_SIZE..].iter().all(|&b| b == 0));

    // ATOMIC: refused by validation unless statx reported untorn writes.
    let mut kiocb = Kiocb::new_sync(0);
    let r = kiocb.set_rw_flags(RwfFlags::ATOMIC, RwType::Write, &caps);
    assert_eq!(r.is_ok(), caps.atomic_write);
    assert_eq!(
        kiocb
            .set_rw_flags(RwfFlags::ATOMIC, RwType::Read, &caps)
            .unwrap_err()
            .errno(),
        Errno::EOPNOTSUPP
    );
    // Unknown bits.
    assert_eq!(
        kiocb
            .set_rw_flags(RwfFlags::from_raw_bits(0x8000), RwType::Read, &caps)
            .unwrap_err()
            .errno(),
        Errno::EOPNOTSUPP
    );
    // A file without NOWAIT support refuses RWF_NOWAIT up front.
    let no = FileCaps {
        nowait: false,
        ..caps
    };
    assert_eq!(
        kiocb
            .set_rw_flags(RwfFlags::NOWAIT, RwType::Read, &no)
            .unwrap_err()
            .errno(),
        Errno::EOPNOTSUPP
    );
}

/// `RWF_DONTCACHE`: the capability the backend reports is what the kernel
/// does with the flag on this file (a raw `preadv2` on another `O_DIRECT`
/// descriptor of it, the kernel as the oracle), and a kiocb carrying it
/// goes through when it says yes.
#[test]
#[cfg_attr(miri, ignore)]
fn dontcache_capability_is_what_the_kernel_does() {
    use std::io::IoSliceMut;
    use std::os::unix::fs::OpenOptionsExt;
    let t = open_or_skip!("dontcache");
    fill(&t, 0, PAGE_SIZE, 21);
    let raw = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(&t.path)
        .unwrap();
    let mut dst = buf::<PAGE_SIZE>();
    let kernel = rustix::io::preadv2(
        &raw,
        &mut [IoSliceMut::new(&mut dst.0)],
        0,
        rustix::io::ReadWriteFlags::from_bits_retain(RwfFlags::DONTCACHE.bits()),
    );
    let caps = t.file.caps();
    assert_eq!(caps.dontcache, kernel.is_ok(), "kernel said {kernel:?}");
    let mut kiocb = Kiocb::new_sync(0);
    match kiocb.set_rw_flags(RwfFlags::DONTCACHE, RwType::Read, &caps) {
        Ok(()) => {
            assert!(caps.dontcache);
            let mut it = IovIter::<Dest, Ubuf>::new(&mut dst.0);
            assert_eq!(
                t.file.direct_io(&mut kiocb, &mut it),
                Ok(Submitted::Done(PAGE_SIZE))
            );
        }
        Err(e) => {
            assert!(!caps.dontcache);
            assert_eq!(e.errno(), Errno::EOPNOTSUPP);
        }
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn nowait_extending_write_is_done_or_eagain_with_nothing_written() {
    let t = open_or_skip!("nowait");
    let mut kiocb = Kiocb::new_sync(0);
    kiocb
        .set_rw_flags(RwfFlags::NOWAIT, RwType::Write, &t.file.caps())
        .unwrap();
    let mut src = buf::<{ 4 * PAGE_SIZE }>();
    pattern(14, &mut src.0);
    let mut it = IovIter::<Source, Ubuf>::new(&src.0);
    match t.file.direct_io(&mut kiocb, &mut it) {
        Ok(Submitted::Done(n)) => {
            eprintln!(
                "note: the kernel did a NOWAIT extending write of {n} bytes without blocking"
            );
            assert_eq!(t.contents()[..n], src.0[..n]);
        }
        Err(Error::WouldBlock) => {
            eprintln!("note: NOWAIT extending write -> EAGAIN");
            assert_eq!((kiocb.pos, it.count()), (0, 4 * PAGE_SIZE));
            assert_eq!(t.file.len(), Ok(0));
        }
        other => panic!("unexpected {other:?}"),
    }
}

// ------------------------------------------------------------ dirty tracking

#[test]
#[cfg_attr(miri, ignore)]
fn dirty_pages_after_real_reads() {
    let t = open_or_skip!("dirty");
    fill(&t, 0, 4 * PAGE_SIZE, 15);
    let mut dst = buf::<{ 4 * PAGE_SIZE }>();
    let bm = DirtyBitmap::for_slice(&dst.0);
    // Iovec: pages 1 and 3 only.
    {
        let (a, b) = dst.0.split_at_mut(2 * PAGE_SIZE);
        let mut segs = [
            IoSegMut::new(&mut a[PAGE_SIZE..]),
            IoSegMut::new(&mut b[PAGE_SIZE..]),
        ];
        let mut it = IovIter::<Dest, Iovec>::new(&mut segs);
        let r = t
            .file
            .direct_io_tracked(&mut Kiocb::new_sync(0), &mut it, &bm);
        assert_eq!(r, Ok(Submitted::Done(2 * PAGE_SIZE)));
    }
    assert_eq!(bm.dirty_pages().collect::<Vec<_>>(), [1, 3]);
    // Ubuf, short at EOF: the whole destination.
    bm.clear();
    {
        let mut it = IovIter::<Dest, Ubuf>::new(&mut dst.0[..3 * PAGE_SIZE]);
        let r = t
            .file
            .direct_io_tracked(&mut Kiocb::new_sync(3 * PAGE_SIZE as u64), &mut it, &bm);
        assert_eq!(r, Ok(Submitted::Done(PAGE_SIZE)));
    }
    assert_eq!(bm.dirty_pages().collect::<Vec<_>>(), [0, 1, 2]);
    // Kvec and Bvec reads, and writes: nothing.
    bm.clear();
    {
        let mut segs = [IoSegMut::new(&mut dst.0)];
        let mut it = IovIter::<Dest, Kvec>::new(&mut segs);
        assert!(
            t.file
                .direct_io_tracked(&mut Kiocb::new_sync(0), &mut it, &bm)
                .is_ok()
        );
        let segs = [IoSeg::new(&dst.0)];
        let mut it = IovIter::<Source, Iovec>::new(&segs);
        assert!(
            t.file
                .direct_io_tracked(&mut Kiocb::new_sync(0), &mut it, &bm)
                .is_ok()
        );
        let mut it = IovIter::<Source, Ubuf>::new(&dst.0);
        assert!(
            t.file
                .direct_io_tracked(&mut Kiocb::new_sync(0), &mut it, &bm)
                .is_ok()
        );
    }
    let mut page = Page::new();
    let pbm = DirtyBitmap::new(page.addr(), PAGE_SIZE);
    {
        let mut segs = [page.bvec_mut(0, PAGE_SIZE).unwrap()];
        let mut it = IovIter::<Dest, Bvec>::new(&mut segs);
        assert!(
            t.file
                .direct_io_tracked(&mut Kiocb::new_sync(0), &mut it, &pbm)
                .is_ok()
        );
    }
    assert_eq!(bm.dirty_pages().count(), 0);
    assert_eq!(pbm.dirty_pages().count(), 0);
}

// ------------------------------------------------------------ splitting

/// A `DirectIo` wrapper counting calls and failing chosen ones with EIO:
/// fault injection over a real file.
struct Counting<'a> {
    file: &'a DirectFile,
    calls: AtomicUsize,
    fail_call: Option<usize>,
}

impl DirectIo for Counting<'_> {
    fn dio_align(&self) -> DioAlign {
        self.file.dio_align()
    }
    fn caps(&self) -> FileCaps {
        self.file.caps()
    }
    unsafe fn transfer(
        &self,
        rw: RwType,
        pos: u64,
        iov: &[UserIovec],
        flags: RwfFlags,
    ) -> iov_iter::Result<usize> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        assert!(iov.len() <= iov_iter::UIO_MAXIOV);
        if Some(call) == self.fail_call {
            return Err(Error::Os(Errno::EIO));
        }
        // SAFETY: forwarded from our caller's promise.
        unsafe { self.file.transfer(rw, pos, iov, flags) }
    }
}

const NSEG: usize = 2048;
const SEG: usize = 512;

#[test]
#[cfg_attr(miri, ignore)]
fn more_than_uio_maxiov_segments_are_split() {
    let t = open_or_skip!("split");
    let a = t.file.dio_align();
    if a.offset as usize > SEG || a.mem as usize > SEG {
        eprintln!("SKIP: alignment {a:?} exceeds the {SEG}-byte segments of this test");
        return;
    }
    let mut src = vec![0u8; NSEG * SEG + PAGE_SIZE];
    let off = src.as_ptr().align_offset(PAGE_SIZE);
    let src = &mut src[off..off + NSEG * SEG];
    pattern(16, src);
    let segs: Vec<IoSeg<'_>> = src.chunks(SEG).map(IoSeg::new).collect();
    let counting = Counting {
        file: &t.file,
        calls: AtomicUsize::new(0),
        fail_call: None,
    };
    let mut it = IovIter::<Source, Iovec>::new(&segs);
    assert_eq!(sync_io(&counting, 0, &mut it), Ok(NSEG * SEG));
    assert_eq!(counting.calls.load(Ordering::SeqCst), 2);
    assert_eq!(t.contents(), src);

    let mut dst = vec![0u8; NSEG * SEG + PAGE_SIZE];
    let off = dst.as_ptr().align_offset(PAGE_SIZE);
    let dst = &mut dst[off..off + NSEG * SEG];
    {
        let mut segs: Vec<IoSegMut<'_>> = dst.chunks_mut(SEG).map(IoSegMut::new).collect();
        let mut it = IovIter::<Dest, Iovec>::new(&mut segs);
        assert_eq!(sync_io(&t.file, 0, &mut it), Ok(NSEG * SEG));
    }
    assert!(dst == src);
}

#[test]
#[cfg_attr(miri, ignore)]
fn eio_on_second_batch_returns_the_first() {
    let t = open_or_skip!("split-eio");
    let a = t.file.dio_align();
    if a.offset as usize > SEG || a.mem as usize > SEG {
        eprintln!("SKIP: alignment {a:?} exceeds the {SEG}-byte segments of this test");
        return;
    }
    let mut src = vec![0u8; NSEG * SEG + PAGE_SIZE];
    let off = src.as_ptr().align_offset(PAGE_SIZE);
    let src = &mut src[off..off + NSEG * SEG];
    pattern(17, src);
    let segs: Vec<IoSeg<'_>> = src.chunks(SEG).map(IoSeg::new).collect();
    let counting = Counting {
        file: &t.file,
        calls: AtomicUsize::new(0),
        fail_call: Some(1),
    };
    let mut it = IovIter::<Source, Iovec>::new(&segs);
    let mut kiocb = Kiocb::new_sync(0);
    assert_eq!(
        counting.direct_io(&mut kiocb, &mut it),
        Ok(Submitted::Done(1024 * SEG))
    );
    assert_eq!(kiocb.pos, (1024 * SEG) as u64);
    assert_eq!((it.count(), it.nr_segs()), (1024 * SEG, 1024));
    assert_eq!(t.contents(), src[..1024 * SEG]);

    // A failure on the first batch is the error, nothing moves.
    let counting = Counting {
        file: &t.file,
        calls: AtomicUsize::new(0),
        fail_call: Some(0),
    };
    let mut it = IovIter::<Source, Iovec>::new(&segs);
    assert_eq!(sync_io(&counting, 0, &mut it), Err(Error::Os(Errno::EIO)));
    assert_eq!(it.count(), NSEG * SEG);
}
