//! The extent map of real files (`FiemapMap`, `FS_IOC_FIEMAP`): what the
//! filesystem reports for written, fallocated, sparse and punched files,
//! swap activation over it, and (as root) reads of a file through its map
//! from the raw block device, checked against the file's own bytes: the
//! kernel's page cache as the oracle of where the data lives.

#![cfg(target_os = "linux")]

mod common;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use common::{block, skip};
use iov_iter::backend::fiemap::FiemapMap;
use iov_iter::backend::file::DirectFile;
use iov_iter::buf::AlignedBuf;
use iov_iter::dio::DirectIo;
use iov_iter::iomap::{
    ExtentKind, IoMap, IomapDio, IomapOp, SwapActivateError, SwapRefusal, swapfile_activate,
};
use iov_iter::kiocb::{Kiocb, Submitted};
use iov_iter::{Dest, Errno, IovIter, Ubuf};
use rustix::fs::FallocateFlags;

const M: u64 = 1 << 20;

/// A fresh file under `CARGO_TARGET_TMPDIR`, or `None` after a loud skip
/// where the filesystem has no FIEMAP.
fn file(name: &str) -> Option<(File, PathBuf)> {
    let p =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}_{}", std::process::id()));
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&p)
        .unwrap();
    match FiemapMap::new(&f) {
        Ok(_) => Some((f, p)),
        Err(e) if e.errno() == Errno::EOPNOTSUPP => {
            skip(name, "no FIEMAP on this filesystem");
            let _ = std::fs::remove_file(&p);
            None
        }
        Err(e) => panic!("FIEMAP: {e}"),
    }
}

fn fallocate(f: &File, flags: FallocateFlags, off: u64, len: u64) {
    rustix::fs::fallocate(f, flags, off, len).unwrap();
}

fn punch(f: &File, off: u64, len: u64) {
    fallocate(
        f,
        FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
        off,
        len,
    );
}

#[test]
#[cfg_attr(miri, ignore = "ioctl")]
fn a_fallocated_file_is_unwritten_and_swap_accepts_it() {
    let Some((f, p)) = file("fiemap_falloc") else {
        return;
    };
    fallocate(&f, FallocateFlags::empty(), 0, 4 * M);
    let map = FiemapMap::new(&f).unwrap();
    assert_eq!(map.size(), 4 * M);
    assert!(!map.extents().is_empty());
    assert!(
        map.extents()
            .iter()
            .all(|e| e.kind == ExtentKind::Unwritten && e.addr.is_some()),
        "{:?}",
        map.extents()
    );
    assert_eq!(
        map.extents().iter().map(|e| e.len).sum::<u64>(),
        4 * M,
        "the extents cover the file"
    );
    let area = swapfile_activate(&map, u64::MAX).unwrap();
    assert_eq!(area.pages(), 4 * M / 4096 - 1);
    // A write mapping is the filesystem's business.
    assert_eq!(
        map.begin(0, 4096, IomapOp::WRITE | IomapOp::DIRECT)
            .unwrap_err()
            .errno(),
        Errno::EOPNOTSUPP
    );
    let _ = std::fs::remove_file(p);
}

#[test]
#[cfg_attr(miri, ignore = "ioctl")]
fn holes_are_the_gaps_and_a_punched_one_is_refused_by_swap_with_its_offset() {
    let Some((f, p)) = file("fiemap_holes") else {
        return;
    };
    f.write_all_at(&block(1, M as usize), 0).unwrap();
    f.set_len(4 * M).unwrap(); // [1M, 4M) sparse
    let map = FiemapMap::new(&f).unwrap();
    let e = map.begin(2 * M, 4096, IomapOp::REPORT).unwrap();
    assert_eq!(
        (e.kind, e.offset, e.end()),
        (ExtentKind::Hole, M, u64::MAX / 2)
    );
    assert_eq!(
        swapfile_activate(&map, u64::MAX),
        Err(SwapActivateError::Refused {
            why: SwapRefusal::Hole,
            offset: M,
            len: u64::MAX / 2 - M
        })
    );
    // Fill it, then punch 64K at 2M.
    fallocate(&f, FallocateFlags::empty(), 0, 4 * M);
    punch(&f, 2 * M, 65536);
    let map = FiemapMap::new(&f).unwrap();
    let e = map.begin(2 * M + 100, 1, IomapOp::REPORT).unwrap();
    assert_eq!((e.kind, e.offset, e.len), (ExtentKind::Hole, 2 * M, 65536));
    let err = swapfile_activate(&map, u64::MAX).unwrap_err();
    assert_eq!(
        err,
        SwapActivateError::Refused {
            why: SwapRefusal::Hole,
            offset: 2 * M,
            len: 65536
        }
    );
    assert_eq!(err.errno(), Errno::EINVAL);
    let _ = std::fs::remove_file(p);
}

#[test]
#[cfg_attr(miri, ignore = "ioctl")]
fn delayed_allocations_are_synced_first() {
    let Some((f, p)) = file("fiemap_delalloc") else {
        return;
    };
    // Buffered writes not yet written back: delayed allocation on ext4 and
    // XFS. FIEMAP_FLAG_SYNC writes them back, so they come back mapped.
    f.write_all_at(&block(2, 256 * 1024), 0).unwrap();
    let map = FiemapMap::new(&f).unwrap();
    assert!(
        map.extents()
            .iter()
            .all(|e| e.kind == ExtentKind::Mapped && e.addr.is_some()),
        "{:?}",
        map.extents()
    );
    let _ = std::fs::remove_file(p);
}

/// The block device holding `path`'s filesystem, from `/sys/dev/block`.
fn block_device_of(path: &std::path::Path) -> Option<PathBuf> {
    let st = rustix::fs::stat(path).ok()?;
    let (maj, min) = (rustix::fs::major(st.st_dev), rustix::fs::minor(st.st_dev));
    let uevent = std::fs::read_to_string(format!("/sys/dev/block/{maj}:{min}/uevent")).ok()?;
    let name = uevent.lines().find_map(|l| l.strip_prefix("DEVNAME="))?;
    Some(PathBuf::from("/dev").join(name))
}

#[test]
#[cfg_attr(miri, ignore = "ioctl, block device")]
fn reads_through_the_map_from_the_block_device_give_the_files_bytes() {
    let Some((f, p)) = file("fiemap_bdev") else {
        return;
    };
    // Written data, an unwritten range, a punched hole, a tail that is not
    // a block multiple.
    let size = 3 * M + 1000;
    fallocate(&f, FallocateFlags::empty(), 0, size);
    let data = block(3, size as usize);
    f.write_all_at(&data[..2 * M as usize], 0).unwrap();
    f.write_all_at(&data[(2 * M + 512 * 1024) as usize..], 2 * M + 512 * 1024)
        .unwrap();
    punch(&f, M, 128 * 1024);
    let map = FiemapMap::new(f.try_clone().unwrap()).unwrap();
    let Some(dev_path) = block_device_of(&p) else {
        skip(
            "fiemap_bdev",
            "no block device found for the test directory",
        );
        return;
    };
    let dev = match DirectFile::options().write(false).open(&dev_path) {
        Ok(d) => d,
        Err(e) => {
            skip(
                "fiemap_bdev",
                &format!("cannot open {} ({e}): needs root", dev_path.display()),
            );
            return;
        }
    };
    let file = IomapDio::new(map, dev);
    let mut buf = AlignedBuf::zeroed(4096, 4 * M as usize).unwrap();
    let mut it = IovIter::<Dest, Ubuf>::new(&mut buf);
    let mut kiocb = Kiocb::new_sync(0);
    assert_eq!(
        file.direct_io(&mut kiocb, &mut it),
        Ok(Submitted::Done(size as usize)),
        "stops at the size"
    );
    // What the file reads as through the kernel.
    let mut want = vec![0u8; size as usize];
    f.read_exact_at(&mut want, 0).unwrap();
    assert!(
        want[M as usize..M as usize + 128 * 1024]
            .iter()
            .all(|&b| b == 0)
    );
    assert!(
        buf[..size as usize] == want[..],
        "the map and the device agree with the file"
    );
    let _ = std::fs::remove_file(p);
}

#[test]
#[cfg_attr(miri, ignore = "ioctl")]
fn tmpfs_has_no_extent_map() {
    let dir = std::path::Path::new("/dev/shm");
    let is_tmpfs = rustix::fs::statfs(dir).is_ok_and(|s| s.f_type == 0x0102_1994);
    if !is_tmpfs {
        skip("tmpfs_has_no_extent_map", "/dev/shm is not a tmpfs here");
        return;
    }
    let p = dir.join(format!("iov-iter-fiemap-{}", std::process::id()));
    let f = File::create(&p).unwrap();
    let _ = std::fs::remove_file(&p);
    assert_eq!(FiemapMap::new(f).unwrap_err().errno(), Errno::EOPNOTSUPP);
}
