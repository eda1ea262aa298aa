//! [`FiemapMap`]: the extent mapping of a real file, read with the
//! `FS_IOC_FIEMAP` ioctl, as an [`IoMap`].
//!
//! Linux reference: `include/uapi/linux/fiemap.h` (`struct fiemap`,
//! `struct fiemap_extent`, `FIEMAP_FLAG_SYNC`, `FIEMAP_EXTENT_*`),
//! `Documentation/filesystems/fiemap.rst`, `fs/ioctl.c` (`ioctl_fiemap`).
//!
//! The ioctl number is computed by rustix's `opcode::read_write` from the
//! header's size (`_IOWR('f', 11, struct fiemap)`), so it is right on
//! every architecture.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};

use alloc::vec::Vec;

use rustix::ioctl::{Ioctl, IoctlOutput, Opcode, opcode};

use crate::error::{Error, Result};
use crate::iomap::{Extent, ExtentFlags, ExtentKind, IoMap, IomapOp};

/// `struct fiemap` without its flexible array (32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FiemapHdr {
    fm_start: u64,
    fm_length: u64,
    fm_flags: u32,
    fm_mapped_extents: u32,
    fm_extent_count: u32,
    fm_reserved: u32,
}

/// `struct fiemap_extent` (56 bytes).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FiemapExtent {
    fe_logical: u64,
    fe_physical: u64,
    fe_length: u64,
    fe_reserved64: [u64; 2],
    fe_flags: u32,
    fe_reserved: [u32; 3],
}

static_assertions::assert_eq_size!(FiemapHdr, [u8; 32]);
static_assertions::assert_eq_size!(FiemapExtent, [u8; 56]);

/// Extents asked for per ioctl.
const BATCH: usize = 128;

/// The ioctl's argument: the header followed by room for `BATCH` extents.
#[repr(C)]
struct FiemapReq {
    hdr: FiemapHdr,
    ext: [FiemapExtent; BATCH],
}

const FIEMAP_FLAG_SYNC: u32 = 0x1;
const FIEMAP_EXTENT_LAST: u32 = 0x1;
const FIEMAP_EXTENT_UNKNOWN: u32 = 0x2;
const FIEMAP_EXTENT_DELALLOC: u32 = 0x4;
const FIEMAP_EXTENT_ENCODED: u32 = 0x8;
const FIEMAP_EXTENT_DATA_ENCRYPTED: u32 = 0x80;
const FIEMAP_EXTENT_DATA_INLINE: u32 = 0x200;
const FIEMAP_EXTENT_DATA_TAIL: u32 = 0x400;
const FIEMAP_EXTENT_UNWRITTEN: u32 = 0x800;
const FIEMAP_EXTENT_MERGED: u32 = 0x1000;
const FIEMAP_EXTENT_SHARED: u32 = 0x2000;

/// `FS_IOC_FIEMAP`: `_IOWR('f', 11, struct fiemap)`.
const FS_IOC_FIEMAP: Opcode = opcode::read_write::<FiemapHdr>(b'f', 11);

struct FiemapCall<'a>(&'a mut FiemapReq);

// SAFETY: FS_IOC_FIEMAP reads the header and writes at most
// `fm_extent_count` extents after it, which `FiemapReq` has room for
// (`fm_extent_count` is set to `BATCH`); it returns 0 on success.
unsafe impl Ioctl for FiemapCall<'_> {
    type Output = ();
    const IS_MUTATING: bool = true;

    fn opcode(&self) -> Opcode {
        FS_IOC_FIEMAP
    }

    fn as_ptr(&mut self) -> *mut core::ffi::c_void {
        (self.0 as *mut FiemapReq).cast()
    }

    unsafe fn output_from_ptr(_: IoctlOutput, _: *mut core::ffi::c_void) -> rustix::io::Result<()> {
        Ok(())
    }
}

/// The extents of a real file, read once with `FS_IOC_FIEMAP`
/// (`FIEMAP_FLAG_SYNC`: delayed allocations are written back first, so
/// they have addresses), as an [`IoMap`]: gaps between extents are holes,
/// unwritten (fallocated) extents are [`ExtentKind::Unwritten`], and the
/// flags swap must refuse (shared, encoded, inline, unknown location) are
/// kept. What [`swapfile_activate`](crate::iomap::swapfile_activate)
/// walks to judge a swap file as `swapon(2)` does.
///
/// A snapshot: [`FiemapMap::refresh`] reads it again. Report-only: a
/// write mapping ([`IomapOp::WRITE`]) is `EOPNOTSUPP`, since allocation
/// belongs to the file's filesystem. Device addresses are on the
/// filesystem's block device.
///
/// # Examples
///
/// A fallocated file is one unwritten extent, accepted by swap:
///
/// ```
/// use iov_iter::backend::fiemap::FiemapMap;
/// use iov_iter::iomap::{swapfile_activate, ExtentKind, IoMap, IomapOp};
///
/// let path = std::env::temp_dir().join(format!("iov-iter-fiemap-doc-{}", std::process::id()));
/// let file = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path)?;
/// rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, 1 << 20)?;
/// let map = FiemapMap::new(file)?;
/// # let _ = std::fs::remove_file(&path);
/// # if map.extents().is_empty() { return Ok(()) } // a filesystem without FIEMAP extents (tmpfs)
/// assert_eq!(map.begin(0, 4096, IomapOp::REPORT)?.kind, ExtentKind::Unwritten);
/// assert_eq!(swapfile_activate(&map, u64::MAX)?.pages(), 255);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias = "fiemap")]
#[doc(alias = "FS_IOC_FIEMAP")]
#[derive(Debug)]
pub struct FiemapMap<F = File> {
    file: F,
    size: u64,
    /// Sorted, non-overlapping extents that hold data (holes left out).
    extents: Vec<Extent>,
}

impl<F: AsFd> FiemapMap<F> {
    /// Reads the mapping of `file` (and its size).
    ///
    /// # Errors
    ///
    /// The ioctl's errno (`EOPNOTSUPP` where the filesystem has no
    /// FIEMAP, `EBADF`), `fstat`'s.
    ///
    /// # Examples
    ///
    /// Written bytes are a mapped extent with a device address (delayed
    /// allocation is flushed first, `FIEMAP_FLAG_SYNC`):
    ///
    /// ```
    /// use std::io::Write;
    /// use iov_iter::backend::fiemap::FiemapMap;
    /// use iov_iter::iomap::{ExtentKind, IoMap, IomapOp};
    ///
    /// let p = std::env::temp_dir().join(format!("iov-iter-fiemap-n-{}", std::process::id()));
    /// let mut f = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&p)?;
    /// std::fs::remove_file(&p)?;
    /// f.write_all(&[7u8; 8192])?;
    /// let map = FiemapMap::new(f)?;
    /// # if map.extents().is_empty() { return Ok(()) } // a filesystem without FIEMAP extents (tmpfs)
    /// assert_eq!(map.size(), 8192);
    /// let e = map.begin(0, 8192, IomapOp::REPORT)?;
    /// assert_eq!(e.kind, ExtentKind::Mapped);
    /// assert!(e.addr.is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(file: F) -> Result<FiemapMap<F>> {
        let mut map = FiemapMap {
            file,
            size: 0,
            extents: Vec::new(),
        };
        map.refresh()?;
        Ok(map)
    }

    /// Reads the mapping and the size again.
    ///
    /// # Errors
    ///
    /// As [`FiemapMap::new`]; the old snapshot is kept on error.
    ///
    /// ```
    /// use iov_iter::backend::fiemap::FiemapMap;
    /// use iov_iter::iomap::IoMap;
    /// let file = tempfile_for_doc()?;
    /// let mut map = FiemapMap::new(&file)?;
    /// file.set_len(8192)?;
    /// map.refresh()?;
    /// assert_eq!(map.size(), 8192);
    /// # fn tempfile_for_doc() -> std::io::Result<std::fs::File> {
    /// #     let p = std::env::temp_dir().join(format!("iov-iter-fiemap-r-{}", std::process::id()));
    /// #     let f = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&p)?;
    /// #     std::fs::remove_file(&p)?;
    /// #     Ok(f)
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn refresh(&mut self) -> Result<()> {
        let size = rustix::fs::fstat(&self.file).map_err(os)?.st_size as u64;
        let mut extents = Vec::new();
        let mut req = alloc::boxed::Box::new(FiemapReq {
            hdr: FiemapHdr::default(),
            ext: [FiemapExtent::default(); BATCH],
        });
        let mut start = 0u64;
        'walk: loop {
            req.hdr = FiemapHdr {
                fm_start: start,
                fm_length: u64::MAX - start,
                fm_flags: FIEMAP_FLAG_SYNC,
                fm_extent_count: BATCH as u32,
                ..FiemapHdr::default()
            };
            // SAFETY: `FiemapCall` describes FS_IOC_FIEMAP and its buffer
            // (see its `Ioctl` impl).
            unsafe { rustix::ioctl::ioctl(&self.file, FiemapCall(&mut req)) }.map_err(os)?;
            let n = (req.hdr.fm_mapped_extents as usize).min(BATCH);
            if n == 0 {
                break;
            }
            for fe in &req.ext[..n] {
                extents.push(extent_of(fe));
                start = fe.fe_logical.saturating_add(fe.fe_length);
                if fe.fe_flags & FIEMAP_EXTENT_LAST != 0 {
                    break 'walk;
                }
            }
            if n < BATCH {
                break;
            }
        }
        extents.sort_by_key(|e| e.offset);
        self.size = size;
        self.extents = extents;
        Ok(())
    }

    /// The extents holding data, in file order (holes are the gaps).
    ///
    /// ```
    /// use iov_iter::backend::fiemap::FiemapMap;
    /// let p = std::env::temp_dir().join(format!("iov-iter-fiemap-e-{}", std::process::id()));
    /// let f = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&p)?;
    /// std::fs::remove_file(&p)?;
    /// f.set_len(1 << 20)?; // sparse: no extent at all
    /// assert!(FiemapMap::new(f)?.extents().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn extents(&self) -> &[Extent] {
        &self.extents
    }

    /// The file.
    ///
    /// ```
    /// use iov_iter::backend::fiemap::FiemapMap;
    /// let p = std::env::temp_dir().join(format!("iov-iter-fiemap-f-{}", std::process::id()));
    /// let f = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&p)?;
    /// std::fs::remove_file(&p)?;
    /// assert_eq!(FiemapMap::new(f)?.file().metadata()?.len(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn file(&self) -> &F {
        &self.file
    }
}

fn os(e: rustix::io::Errno) -> Error {
    Error::from(crate::Errno::from_raw(e.raw_os_error()))
}

fn extent_of(fe: &FiemapExtent) -> Extent {
    let f = fe.fe_flags;
    let kind = if f & (FIEMAP_EXTENT_DATA_INLINE | FIEMAP_EXTENT_DATA_TAIL) != 0 {
        ExtentKind::Inline
    } else if f & FIEMAP_EXTENT_DELALLOC != 0 {
        ExtentKind::Delalloc
    } else if f & FIEMAP_EXTENT_UNWRITTEN != 0 {
        ExtentKind::Unwritten
    } else {
        ExtentKind::Mapped
    };
    let addr = (kind.is_allocated() && f & FIEMAP_EXTENT_UNKNOWN == 0).then_some(fe.fe_physical);
    let mut flags = ExtentFlags::empty();
    if f & FIEMAP_EXTENT_SHARED != 0 {
        flags |= ExtentFlags::SHARED;
    }
    if f & FIEMAP_EXTENT_MERGED != 0 {
        flags |= ExtentFlags::MERGED;
    }
    if f & (FIEMAP_EXTENT_ENCODED | FIEMAP_EXTENT_DATA_ENCRYPTED) != 0 {
        flags |= ExtentFlags::ENCODED;
    }
    Extent::new(fe.fe_logical, fe.fe_length, kind, addr).with_flags(flags)
}

impl<F: AsFd + Send + Sync> IoMap for FiemapMap<F> {
    fn size(&self) -> u64 {
        self.size
    }

    /// The extent holding `pos`, or the hole up to the next one (to
    /// `u64::MAX / 2` past the last).
    fn begin(&self, pos: u64, _len: u64, op: IomapOp) -> Result<Extent> {
        if op.contains(IomapOp::WRITE) {
            return Err(Error::NotSupported(
                "a FIEMAP mapping is report-only: the filesystem allocates",
            ));
        }
        let i = self.extents.partition_point(|e| e.end() <= pos);
        match self.extents.get(i) {
            Some(e) if e.offset <= pos => Ok(*e),
            next => {
                let start = self.extents[..i].last().map_or(0, Extent::end);
                let end = next.map_or(u64::MAX / 2, |e| e.offset).max(pos + 1);
                Ok(Extent::hole(start, end - start))
            }
        }
    }
}

impl<F: AsFd> AsFd for FiemapMap<F> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}
