//! [`DirectFile`]: a real file opened with `O_DIRECT`, read and written with
//! `preadv2` / `pwritev2`. Requires the `std` feature (and Linux).
//!
//! # Alignment
//!
//! [`DirectFile`] learns its [`DioAlign`] when it is opened, in this order
//! ([`AlignSource`] says which one answered):
//!
//! 1. `statx(STATX_DIOALIGN)` (Linux 6.1): `stx_dio_mem_align` and
//!    `stx_dio_offset_align`, when the kernel sets `STATX_DIOALIGN` in
//!    `stx_mask` and both are non-zero. When it sets the bit and reports 0,
//!    the file does not support direct I/O and opening fails with
//!    [`Error::NotSupported`] (`EOPNOTSUPP`). Where the kernel also sets
//!    `STATX_DIO_READ_ALIGN` (Linux 6.14) with a non-zero
//!    `stx_dio_read_offset_align`, reads check offsets and lengths against
//!    that smaller value ([`DioAlign::read_offset`]).
//! 2. The filesystem block size (`fstatvfs`'s `f_bsize`) as the offset and
//!    length alignment, and the smaller of it and [`PAGE_SIZE`] as the memory
//!    alignment, when it is a power of two from 512 to 64 KiB. The logical
//!    block size of the device (`BLKSSZGET`) is what old kernels check, but
//!    it needs an ioctl on the block device, which an ordinary file does not
//!    give; the filesystem block size is a multiple of it, so it is a safe
//!    (stricter) stand-in.
//! 3. 4096 / 4096.
//!
//! The kernel checks alignment again and answers `EINVAL`; the crate's check
//! ([`DioAlign::check`], in the generic path every backend shares) only makes that
//! answer typed and guarantees nothing was transferred.
//!
//! # Transfers
//!
//! [`DirectIo::transfer`] passes the `RWF_*` flags through to `preadv2` /
//! `pwritev2`, retries `EINTR`, and continues a partial transfer until it is
//! done, the kernel returns 0, or a transfer ends off the offset alignment
//! (which only end of file does under `O_DIRECT`). `EAGAIN` (an
//! `RWF_NOWAIT` I/O that would block) becomes [`Error::WouldBlock`]; other
//! errnos become [`Error::Os`]. An error after some bytes were transferred
//! returns the short count (the error repeats on the next call).
//!
//! # Examples
//!
//! ```
//! use iov_iter::backend::file::DirectFile;
//! use iov_iter::dio::DirectIo;
//! use iov_iter::kiocb::{Kiocb, Submitted};
//! use iov_iter::{Errno, IovIter, Page, Source, Ubuf};
//! # struct Rm(std::path::PathBuf);
//! # impl Drop for Rm {
//! #     fn drop(&mut self) {
//! #         let _ = std::fs::remove_file(&self.0);
//! #     }
//! # }
//! # let tmp = Rm(std::env::temp_dir().join(format!("iov-iter-doc-{}-module", std::process::id())));
//! # let path = &tmp.0;
//!
//! let file = match DirectFile::options().create(true).open(path) {
//!     Ok(file) => file,
//!     Err(e) if e.errno() == Errno::EINVAL => return Ok(()), // no O_DIRECT here
//!     Err(e) => return Err(e),
//! };
//! let page = Page::new(); // 4096-aligned
//! let mut kiocb = Kiocb::new_sync(0);
//! let mut src = IovIter::<Source, Ubuf>::new(page.as_bytes());
//! assert_eq!(file.direct_io(&mut kiocb, &mut src)?, Submitted::Done(4096));
//! assert_eq!(kiocb.pos, 4096);
//! file.sync()?;
//! # Ok::<(), iov_iter::Error>(())
//! ```
//!
//! # References
//!
//! - open(2), "NOTES: O_DIRECT": <https://man7.org/linux/man-pages/man2/open.2.html>
//! - preadv2(2) / pwritev2(2) and the `RWF_*` flags: <https://man7.org/linux/man-pages/man2/preadv2.2.html>
//! - statx(2), `STATX_DIOALIGN`: <https://man7.org/linux/man-pages/man2/statx.2.html>

use std::fs::File;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FallocateFlags, Mode, OFlags, StatxAttributes, StatxFlags};
use rustix::io::ReadWriteFlags;
use smallvec::SmallVec;

use crate::dio::{DioAlign, DirectIo};
use crate::error::{Errno, Error, Result};
use crate::kiocb::{FileCaps, RwType, RwfFlags};
use crate::page::PAGE_SIZE;
use crate::seg::UserIovec;

/// `STATX_WRITE_ATOMIC` (Linux 6.11), which rustix does not name.
const STATX_WRITE_ATOMIC: u32 = 0x0001_0000;
/// `STATX_DIO_READ_ALIGN` (Linux 6.14): `stx_dio_read_offset_align` is
/// valid.
const STATX_DIO_READ_ALIGN: u32 = 0x0002_0000;
/// `STATX_ATTR_WRITE_ATOMIC` (Linux 6.11).
const STATX_ATTR_WRITE_ATOMIC: u64 = 0x0040_0000;
/// The fallback alignment when nothing better is known.
const FALLBACK_ALIGN: u32 = 4096;

fn os_err(e: rustix::io::Errno) -> Error {
    Error::from(Errno::from_raw(e.raw_os_error()))
}

/// Where a [`DirectFile`]'s alignment came from (see the
/// [module documentation](self)).
///
/// # Examples
///
/// ```
/// use iov_iter::backend::file::AlignSource;
/// use iov_iter::dio::{DioAlign, DirectIo};
/// # struct Rm(std::path::PathBuf);
/// # impl Drop for Rm {
/// #     fn drop(&mut self) {
/// #         let _ = std::fs::remove_file(&self.0);
/// #     }
/// # }
/// # let tmp = Rm(std::env::temp_dir().join(format!("iov-iter-doc-{}-align-source", std::process::id())));
/// # let file = match iov_iter::backend::file::DirectFile::options().create(true).open(&tmp.0) {
/// #     Ok(file) => file,
/// #     // No O_DIRECT on this filesystem (EINVAL): nothing to show.
/// #     Err(e) if matches!(e.errno(), iov_iter::Errno::EINVAL | iov_iter::Errno::EOPNOTSUPP) => {
/// #         return Ok(());
/// #     }
/// #     Err(e) => return Err(e.into()),
/// # };
/// let align = file.dio_align();
/// match file.align_source() {
///     // Linux 6.1 and later on ext4, XFS, btrfs...: the kernel's own answer.
///     AlignSource::Statx => {}
///     // Older kernels: the filesystem block size, at most a page for memory.
///     AlignSource::FsBlockSize => assert!(align.mem <= align.offset),
///     AlignSource::Default => assert_eq!((align.mem, align.offset), (4096, 4096)),
///     AlignSource::Caller => unreachable!("only with_align sets it"),
/// }
/// let file = file.with_align(DioAlign::new(4096, 4096)?);
/// assert_eq!(file.align_source(), AlignSource::Caller);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlignSource {
    /// `statx(STATX_DIOALIGN)`.
    #[doc(alias = "STATX_DIOALIGN")]
    Statx,
    /// The filesystem block size (`f_bsize`).
    #[doc(alias = "f_bsize")]
    FsBlockSize,
    /// The 4096 / 4096 default.
    Default,
    /// Set by the caller ([`DirectFile::with_align`]).
    Caller,
}

/// Untorn-write limits from `statx(STATX_WRITE_ATOMIC)`, from
/// [`DirectFile::atomic_write_units`].
///
/// # Examples
///
/// ```
/// use iov_iter::dio::DirectIo;
/// # struct Rm(std::path::PathBuf);
/// # impl Drop for Rm {
/// #     fn drop(&mut self) {
/// #         let _ = std::fs::remove_file(&self.0);
/// #     }
/// # }
/// # let tmp = Rm(std::env::temp_dir().join(format!("iov-iter-doc-{}-atomic-units", std::process::id())));
/// # let file = match iov_iter::backend::file::DirectFile::options().create(true).open(&tmp.0) {
/// #     Ok(file) => file,
/// #     // No O_DIRECT on this filesystem (EINVAL): nothing to show.
/// #     Err(e) if matches!(e.errno(), iov_iter::Errno::EINVAL | iov_iter::Errno::EOPNOTSUPP) => {
/// #         return Ok(());
/// #     }
/// #     Err(e) => return Err(e.into()),
/// # };
/// match file.atomic_write_units() {
///     Some(units) => {
///         assert!(file.caps().atomic_write); // RWF_ATOMIC is accepted
///         assert!(units.min <= units.max);
///     }
///     None => assert!(!file.caps().atomic_write),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AtomicWriteUnits {
    /// `stx_atomic_write_unit_min`, in bytes.
    #[doc(alias = "stx_atomic_write_unit_min")]
    pub min: u32,
    /// `stx_atomic_write_unit_max`, in bytes.
    #[doc(alias = "stx_atomic_write_unit_max")]
    pub max: u32,
    /// `stx_atomic_write_segments_max`.
    #[doc(alias = "stx_atomic_write_segments_max")]
    pub segments_max: u32,
}

/// Options for opening a [`DirectFile`] (like [`std::fs::OpenOptions`]);
/// from [`DirectFile::options`]. `O_DIRECT | O_CLOEXEC` are always set.
///
/// # Examples
///
/// ```
/// use iov_iter::backend::file::{DirectFile, DirectFileOptions};
/// use iov_iter::Errno;
///
/// // Plain values: build them once, in a `const` if you like.
/// const SCRATCH: DirectFileOptions = DirectFileOptions::new().create(true).truncate(true);
/// assert_eq!(DirectFile::options(), DirectFileOptions::default());
/// # struct Rm(std::path::PathBuf);
/// # impl Drop for Rm {
/// #     fn drop(&mut self) {
/// #         let _ = std::fs::remove_file(&self.0);
/// #     }
/// # }
/// # let tmp = Rm(std::env::temp_dir().join(format!("iov-iter-doc-{}-options", std::process::id())));
/// let file = match SCRATCH.open(&tmp.0) {
///     Ok(file) => file,
///     // Filesystems without direct I/O (tmpfs before Linux 6.6) refuse it.
///     Err(e) if e.errno() == Errno::EINVAL => return Ok(()),
///     Err(e) => return Err(e.into()),
/// };
/// assert!(file.is_empty()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectFileOptions {
    read: bool,
    write: bool,
    create: bool,
    create_new: bool,
    truncate: bool,
    mode: u32,
}

impl Default for DirectFileOptions {
    fn default() -> DirectFileOptions {
        DirectFileOptions::new()
    }
}

impl DirectFileOptions {
    /// Read and write, no creation, mode 0o644 for a created file.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::backend::file::DirectFileOptions;
    /// let missing = std::env::temp_dir().join(format!("iov-iter-doc-{}-new", std::process::id()));
    /// let err = DirectFileOptions::new().open(&missing).unwrap_err();
    /// assert_eq!(err.errno().raw(), 2); // ENOENT: nothing is created unless asked
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn new() -> DirectFileOptions {
        DirectFileOptions {
            read: true,
            write: true,
            create: false,
            create_new: false,
            truncate: false,
            mode: 0o644,
        }
    }

    /// Open for reading (default `true`).
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::backend::file::DirectFile;
    /// use iov_iter::Error;
    /// // Neither reading nor writing is refused before any system call.
    /// let err = DirectFile::options().read(false).write(false).open("/nonexistent").unwrap_err();
    /// assert!(matches!(err, Error::InvalidArgument(_)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub const fn read(mut self, read: bool) -> DirectFileOptions {
        self.read = read;
        self
    }

    /// Open for writing (default `true`).
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::backend::file::DirectFile;
    /// use iov_iter::buf::AlignedBuf;
    /// use iov_iter::dio::DirectIo;
    /// use iov_iter::kiocb::Kiocb;
    /// use iov_iter::{Errno, IovIter, Source, Ubuf};
    /// # struct Rm(std::path::PathBuf);
    /// # impl Drop for Rm {
    /// #     fn drop(&mut self) {
    /// #         let _ = std::fs::remove_file(&self.0);
    /// #     }
    /// # }
    /// # let tmp = Rm(std::env::temp_dir().join(format!("iov-iter-doc-{}-write", std::process::id())));
    /// # let file = match iov_iter::backend::file::DirectFile::options().create(true).open(&tmp.0) {
    /// #     Ok(file) => file,
    /// #     // No O_DIRECT on this filesystem (EINVAL): nothing to show.
    /// #     Err(e) if matches!(e.errno(), iov_iter::Errno::EINVAL | iov_iter::Errno::EOPNOTSUPP) => {
    /// #         return Ok(());
    /// #     }
    /// #     Err(e) => return Err(e.into()),
    /// # };
    /// let read_only = DirectFile::options().write(false).open(&tmp.0)?;
    /// let a = read_only.dio_align();
    /// let buf = AlignedBuf::zeroed(a.mem as usize, a.offset as usize)?;
    /// let mut src = IovIter::<Source, Ubuf>::new(&buf);
    /// let err = read_only.direct_io(&mut Kiocb::new_sync(0), &mut src).unwrap_err();
    /// assert_eq!(err.errno(), Errno::EBADF); // a write on a read-only descriptor
    /// # drop(file);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub const fn write(mut self, write: bool) -> DirectFileOptions {
        self.write = write;
        self
    }

    /// Create the file if it does not exist (`O_CREAT`).
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::backend::file::DirectFile;
    /// use iov_iter::Errno;
    /// # struct Rm(std::path::PathBuf);
    /// # impl Drop for Rm {
    /// #     fn drop(&mut self) {
    /// #         let _ = std::fs::remove_file(&self.0);
    /// #     }
    /// # }
    /// # let tmp = Rm(std::env::temp_dir().join(format!("iov-iter-doc-{}-create", std::process::id())));
    /// assert!(!tmp.0.exists());
    /// let file = match DirectFile::options().create(true).open(&tmp.0) {
    ///     Ok(file) => file,
    ///     Err(e) if e.errno() == Errno::EINVAL => return Ok(()), // no O_DIRECT here
    ///     Err(e) => return Err(e.into()),
    /// };
    /// assert!(tmp.0.exists());
    /// assert_eq!(file.len()?, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "O_CREAT")]
    #[must_use]
    pub const fn create(mut self, create: bool) -> DirectFileOptions {
        self.create = create;
        self
    }

    /// Create the file, failing with `EEXIST` if it exists
    /// (`O_CREAT | O_EXCL`).
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::backend::file::DirectFile;
    /// # struct Rm(std::path::PathBuf);
    /// # impl Drop for Rm {
    /// #     fn drop(&mut self) {
    /// #         let _ = std::fs::remove_file(&self.0);
    /// #     }
    /// # }
    /// # let tmp = Rm(std::env::temp_dir().join(format!("iov-iter-doc-{}-create-new", std::process::id())));
    /// # let file = match iov_iter::backend::file::DirectFile::options().create(true).open(&tmp.0) {
    /// #     Ok(file) => file,
    /// #     // No O_DIRECT on this filesystem (EINVAL): nothing to show.
    /// #     Err(e) if matches!(e.errno(), iov_iter::Errno::EINVAL | iov_iter::Errno::EOPNOTSUPP) => {
    /// #         return Ok(());
    /// #     }
    /// #     Err(e) => return Err(e.into()),
    /// # };
    /// // The file exists now: create_new refuses it.
    /// let err = DirectFile::options().create_new(true).open(&tmp.0).unwrap_err();
    /// assert_eq!(err.errno().raw(), 17); // EEXIST
    /// # drop(file);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "O_EXCL")]
    #[must_use]
    pub const fn create_new(mut self, create_new: bool) -> DirectFileOptions {
        self.create_new = create_new;
        self
    }

    /// Truncate the file to 0 (`O_TRUNC`).
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::backend::file::DirectFile;
    /// # struct Rm(std::path::PathBuf);
    /// # impl Drop for Rm {
    /// #     fn drop(&mut self) {
    /// #         let _ = std::fs::remove_file(&self.0);
    /// #     }
    /// # }
    /// # let tmp = Rm(std::env::temp_dir().join(format!("iov-iter-doc-{}-truncate", std::process::id())));
    /// # let file = match iov_iter::backend::file::DirectFile::options().create(true).open(&tmp.0) {
    /// #     Ok(file) => file,
    /// #     // No O_DIRECT on this filesystem (EINVAL): nothing to show.
    /// #     Err(e) if matches!(e.errno(), iov_iter::Errno::EINVAL | iov_iter::Errno::EOPNOTSUPP) => {
    /// #         return Ok(());
    /// #     }
    /// #     Err(e) => return Err(e.into()),
    /// # };
    /// file.set_len(8192)?;
    /// let again = DirectFile::options().truncate(true).open(&tmp.0)?;
    /// assert_eq!((again.len()?, file.len()?), (0, 0)); // the same file, emptied
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "O_TRUNC")]
    #[must_use]
    pub const fn truncate(mut self, truncate: bool) -> DirectFileOptions {
        self.truncate = truncate;
        self
    }

    /// Permission bits of a created file (default 0o644).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::fs::PermissionsExt;
    /// use iov_iter::backend::file::DirectFile;
    /// use iov_iter::Errno;
    /// # struct Rm(std::path::PathBuf);
    /// # impl Drop for Rm {
    /// #     fn drop(&mut self) {
    /// #         let _ = std::fs::remove_file(&self.0);
    /// #     }
    /// # }
    /// # let tmp = Rm(std::env::temp_dir().join(format!("iov-iter-doc-{}-mode", std::process::id())));
    /// let file = match DirectFile::options().create(true).mode(0o600).open(&tmp.0) {
    ///     Ok(file) => file,
    ///     Err(e) if e.errno() == Errno::EINVAL => return Ok(()), // no O_DIRECT here
    ///     Err(e) => return Err(e.into()),
    /// };
    /// let mode = std::fs::metadata(&tmp.0)?.permissions().mode();
    /// assert_eq!(mode & 0o777, 0o600); // the usual umasks (022, 077) keep all of it
    /// # drop(file);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub const fn mode(mut self, mode: u32) -> DirectFileOptions {
        self.mode = mode;
        self
    }

    fn oflags(&self) -> Result<OFlags> {
        let mut f = OFlags::DIRECT | OFlags::CLOEXEC;
        f |= match (self.read, self.write) {
            (true, true) => OFlags::RDWR,
            (true, false) => OFlags::RDONLY,
            (false, true) => OFlags::WRONLY,
            (false, false) => return Err(Error::InvalidArgument("neither read nor write")),
        };
        if self.create_new {
            f |= OFlags::CREATE | OFlags::EXCL;
        } else if self.create {
            f |= OFlags::CREATE;
        }
        if self.truncate {
            f |= OFlags::TRUNC;
        }
        Ok(f)
    }

    /// Opens `path` with `O_DIRECT` and reads its alignment.
    ///
    /// # Errors
    ///
    /// The `open` errno (`EINVAL` where the filesystem refuses `O_DIRECT`),
    /// [`Error::NotSupported`] when `statx` says the file has no direct I/O,
    /// [`Error::InvalidArgument`] when neither read nor write is asked.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::backend::file::DirectFile;
    /// use iov_iter::Errno;
    ///
    /// // A character device takes no O_DIRECT: EINVAL, as a filesystem without it.
    /// let err = DirectFile::options().open("/dev/null").unwrap_err();
    /// assert_eq!(err.errno(), Errno::EINVAL);
    /// # struct Rm(std::path::PathBuf);
    /// # impl Drop for Rm {
    /// #     fn drop(&mut self) {
    /// #         let _ = std::fs::remove_file(&self.0);
    /// #     }
    /// # }
    /// # let tmp = Rm(std::env::temp_dir().join(format!("iov-iter-doc-{}-opts-open", std::process::id())));
    /// let file = match DirectFile::options().create(true).open(&tmp.0) {
    ///     Ok(file) => file,
    ///     Err(e) if e.errno() == Errno::EINVAL => return Ok(()), // no O_DIRECT here
    ///     Err(e) => return Err(e.into()),
    /// };
    /// assert!(file.is_empty()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "O_DIRECT")]
    pub fn open<P: AsRef<Path>>(&self, path: P) -> Result<DirectFile> {
        let fd = rustix::fs::open(
            path.as_ref(),
            self.oflags()?,
            Mode::from_raw_mode(self.mode),
        )
        .map_err(os_err)?;
        DirectFile::probe(fd)
    }
}

/// A file opened with `O_DIRECT`: a [`DirectIo`] target whose async
/// requests complete inline. See the [module documentation](self).
///
/// # Examples
///
/// ```
/// use iov_iter::backend::file::DirectFile;
/// use iov_iter::buf::AlignedBuf;
/// use iov_iter::dio::DirectIo;
/// use iov_iter::kiocb::{Kiocb, Submitted};
/// use iov_iter::{Dest, Errno, IovIter, Source, Ubuf};
/// # struct Rm(std::path::PathBuf);
/// # impl Drop for Rm {
/// #     fn drop(&mut self) {
/// #         let _ = std::fs::remove_file(&self.0);
/// #     }
/// # }
/// # let tmp = Rm(std::env::temp_dir().join(format!("iov-iter-doc-{}-direct-file", std::process::id())));
/// let file = match DirectFile::options().create(true).open(&tmp.0) {
///     Ok(file) => file,
///     // Some filesystems refuse O_DIRECT (EINVAL): nothing to show there.
///     Err(e) if e.errno() == Errno::EINVAL => return Ok(()),
///     Err(e) => return Err(e.into()),
/// };
/// // One block, at the file's memory alignment.
/// let a = file.dio_align();
/// let (mem, block) = (a.mem as usize, a.offset as usize);
/// let data = AlignedBuf::from_slice(mem, &vec![0x5a; block])?;
/// let mut src = IovIter::<Source, Ubuf>::new(&data);
/// assert_eq!(file.direct_io(&mut Kiocb::new_sync(0), &mut src)?, Submitted::Done(block));
///
/// let mut back = AlignedBuf::zeroed(mem, block)?;
/// let mut dst = IovIter::<Dest, Ubuf>::new(&mut back);
/// assert_eq!(file.direct_io(&mut Kiocb::new_sync(0), &mut dst)?, Submitted::Done(block));
/// drop(dst);
/// assert_eq!(back.as_slice(), data.as_slice());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias = "O_DIRECT")]
#[derive(Debug)]
pub struct DirectFile {
    fd: OwnedFd,
    align: DioAlign,
    align_source: AlignSource,
    caps: FileCaps,
    atomic: Option<AtomicWriteUnits>,
}

impl DirectFile {
    /// Options for [`DirectFileOptions::open`].
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::backend::file::DirectFile;
    /// use iov_iter::Errno;
    /// # struct Rm(std::path::PathBuf);
    /// # impl Drop for Rm {
    /// #     fn drop(&mut self) {
    /// #         let _ = std::fs::remove_file(&self.0);
    /// #     }
    /// # }
    /// # let tmp = Rm(std::env::temp_dir().join(format!("iov-iter-doc-{}-options-fn", std::process::id())));
    /// let file = match DirectFile::options().create(true).read(false).open(&tmp.0) {
    ///     Ok(file) => file,
    ///     Err(e) if e.errno() == Errno::EINVAL => return Ok(()), // no O_DIRECT here
    ///     Err(e) => return Err(e.into()),
    /// };
    /// assert_eq!(file.len()?, 0); // write-only, created
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn options() -> DirectFileOptions {
        DirectFileOptions::new()
    }

    /// Opens an existing file for reading and writing with `O_DIRECT`.
    ///
    /// # Errors
    ///
    /// As [`DirectFileOptions::open`].
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::backend::file::DirectFile;
    /// use iov_iter::Errno;
    /// # struct Rm(std::path::PathBuf);
    /// # impl Drop for Rm {
    /// #     fn drop(&mut self) {
    /// #         let _ = std::fs::remove_file(&self.0);
    /// #     }
    /// # }
    /// # let tmp = Rm(std::env::temp_dir().join(format!("iov-iter-doc-{}-open", std::process::id())));
    /// assert_eq!(DirectFile::open(&tmp.0).unwrap_err().errno().raw(), 2); // ENOENT
    /// std::fs::write(&tmp.0, vec![7u8; 8192])?;
    /// match DirectFile::open(&tmp.0) {
    ///     Ok(file) => assert_eq!(file.len()?, 8192),
    ///     Err(e) => assert_eq!(e.errno(), Errno::EINVAL), // no O_DIRECT here
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "O_DIRECT")]
    pub fn open<P: AsRef<Path>>(path: P) -> Result<DirectFile> {
        DirectFileOptions::new().open(path)
    }

    /// Wraps an open file descriptor, setting `O_DIRECT` on it
    /// (`fcntl(F_SETFL)`) if it is not set yet.
    ///
    /// # Errors
    ///
    /// The `fcntl` errno (`EINVAL` where the filesystem refuses
    /// `O_DIRECT`), or as [`DirectFileOptions::open`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::fd::OwnedFd;
    /// use iov_iter::backend::file::DirectFile;
    /// use iov_iter::Errno;
    /// # struct Rm(std::path::PathBuf);
    /// # impl Drop for Rm {
    /// #     fn drop(&mut self) {
    /// #         let _ = std::fs::remove_file(&self.0);
    /// #     }
    /// # }
    /// # let tmp = Rm(std::env::temp_dir().join(format!("iov-iter-doc-{}-from-fd", std::process::id())));
    /// let std_file = std::fs::File::options().read(true).write(true).create(true).open(&tmp.0)?;
    /// std_file.set_len(4096)?;
    /// // Opened without O_DIRECT; from_fd adds it.
    /// let file = match DirectFile::from_fd(OwnedFd::from(std_file)) {
    ///     Ok(file) => file,
    ///     Err(e) if e.errno() == Errno::EINVAL => return Ok(()), // no O_DIRECT here
    ///     Err(e) => return Err(e.into()),
    /// };
    /// assert_eq!(file.len()?, 4096);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_fd(fd: OwnedFd) -> Result<DirectFile> {
        let flags = rustix::fs::fcntl_getfl(&fd).map_err(os_err)?;
        if !flags.contains(OFlags::DIRECT) {
            rustix::fs::fcntl_setfl(&fd, flags | OFlags::DIRECT).map_err(os_err)?;
        }
        DirectFile::probe(fd)
    }

    /// Wraps a [`File`], as [`DirectFile::from_fd`].
    ///
    /// # Errors
    ///
    /// As [`DirectFile::from_fd`].
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::backend::file::DirectFile;
    /// use iov_iter::Errno;
    /// // /dev/null refuses O_DIRECT: fcntl(F_SETFL) fails with EINVAL.
    /// let null = std::fs::File::open("/dev/null")?;
    /// assert_eq!(DirectFile::from_file(null).unwrap_err().errno(), Errno::EINVAL);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_file(file: File) -> Result<DirectFile> {
        DirectFile::from_fd(OwnedFd::from(file))
    }

    fn probe(fd: OwnedFd) -> Result<DirectFile> {
        let mask = StatxFlags::DIOALIGN
            | StatxFlags::from_bits_retain(STATX_WRITE_ATOMIC | STATX_DIO_READ_ALIGN);
        let stx = rustix::fs::statx(&fd, "", AtFlags::EMPTY_PATH, mask).ok();
        let mut caps = FileCaps {
            // Regular files on the filesystems that do O_DIRECT (ext4, xfs,
            // btrfs, ...) have FMODE_NOWAIT.
            nowait: true,
            ..FileCaps::new()
        };
        let mut atomic = None;
        let mut found = None;
        if let Some(stx) = &stx {
            caps.append_only = stx.stx_attributes.contains(StatxAttributes::APPEND);
            caps.dax = stx.stx_attributes.contains(StatxAttributes::DAX);
            if stx.stx_mask & StatxFlags::DIOALIGN.bits() != 0 {
                let (mem, off) = (stx.stx_dio_mem_align, stx.stx_dio_offset_align);
                if mem == 0 || off == 0 {
                    return Err(Error::NotSupported(
                        "statx(STATX_DIOALIGN) reports no direct I/O on this file",
                    ));
                }
                found = DioAlign::new(mem, off).ok();
                // A smaller offset alignment for reads, where the kernel
                // reports one (Linux 6.14; 0 means the same as writes).
                if stx.stx_mask & STATX_DIO_READ_ALIGN != 0 {
                    let r = stx.stx_dio_read_offset_align;
                    found = found.map(|a| a.with_read_offset(r).unwrap_or(a));
                }
            }
            if stx.stx_mask & STATX_WRITE_ATOMIC != 0
                && stx.stx_atomic_write_unit_min != 0
                && stx.stx_attributes.bits() & STATX_ATTR_WRITE_ATOMIC != 0
            {
                caps.atomic_write = true;
                atomic = Some(AtomicWriteUnits {
                    min: stx.stx_atomic_write_unit_min,
                    max: stx.stx_atomic_write_unit_max,
                    segments_max: stx.stx_atomic_write_segments_max,
                });
            }
        }
        let (align, align_source) = match found {
            Some(a) => (a, AlignSource::Statx),
            None => match fs_block_align(&fd) {
                Some(a) => (a, AlignSource::FsBlockSize),
                None => (
                    DioAlign {
                        mem: FALLBACK_ALIGN,
                        offset: FALLBACK_ALIGN,
                        read_offset: 0,
                    },
                    AlignSource::Default,
                ),
            },
        };
        caps.dontcache = probe_dontcache(&fd, align);
        Ok(DirectFile {
            fd,
            align,
            align_source,
            caps,
            atomic,
        })
    }

    /// Replaces the alignment (for instance with a stricter one). The
    /// kernel still enforces its own, with `EINVAL`.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::buf::AlignedBuf;
    /// use iov_iter::dio::{DioAlign, DirectIo};
    /// use iov_iter::kiocb::Kiocb;
    /// use iov_iter::{Error, IovIter, Misalignment, Source, Ubuf};
    /// # struct Rm(std::path::PathBuf);
    /// # impl Drop for Rm {
    /// #     fn drop(&mut self) {
    /// #         let _ = std::fs::remove_file(&self.0);
    /// #     }
    /// # }
    /// # let tmp = Rm(std::env::temp_dir().join(format!("iov-iter-doc-{}-with-align", std::process::id())));
    /// # let file = match iov_iter::backend::file::DirectFile::options().create(true).open(&tmp.0) {
    /// #     Ok(file) => file,
    /// #     // No O_DIRECT on this filesystem (EINVAL): nothing to show.
    /// #     Err(e) if matches!(e.errno(), iov_iter::Errno::EINVAL | iov_iter::Errno::EOPNOTSUPP) => {
    /// #         return Ok(());
    /// #     }
    /// #     Err(e) => return Err(e.into()),
    /// # };
    /// let a = file.dio_align();
    /// // Stricter: whole 64 KiB units only.
    /// let file = file.with_align(DioAlign::new(a.mem, a.offset.max(65536))?);
    /// let buf = AlignedBuf::zeroed(a.mem as usize, 4096)?;
    /// let mut src = IovIter::<Source, Ubuf>::new(&buf);
    /// let err = file.direct_io(&mut Kiocb::new_sync(0), &mut src).unwrap_err();
    /// assert!(matches!(err, Error::Misaligned { what: Misalignment::TotalLength, .. }));
    /// assert_eq!(file.len()?, 0); // nothing was written
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_align(mut self, align: DioAlign) -> DirectFile {
        self.align = align;
        self.align_source = AlignSource::Caller;
        self
    }

    /// Where [`DirectIo::dio_align`] came from.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::backend::file::AlignSource;
    /// use iov_iter::dio::DirectIo;
    /// # struct Rm(std::path::PathBuf);
    /// # impl Drop for Rm {
    /// #     fn drop(&mut self) {
    /// #         let _ = std::fs::remove_file(&self.0);
    /// #     }
    /// # }
    /// # let tmp = Rm(std::env::temp_dir().join(format!("iov-iter-doc-{}-align-source-fn", std::process::id())));
    /// # let file = match iov_iter::backend::file::DirectFile::options().create(true).open(&tmp.0) {
    /// #     Ok(file) => file,
    /// #     // No O_DIRECT on this filesystem (EINVAL): nothing to show.
    /// #     Err(e) if matches!(e.errno(), iov_iter::Errno::EINVAL | iov_iter::Errno::EOPNOTSUPP) => {
    /// #         return Ok(());
    /// #     }
    /// #     Err(e) => return Err(e.into()),
    /// # };
    /// assert_ne!(file.align_source(), AlignSource::Caller); // probed at open
    /// let align = file.dio_align();
    /// let file = file.with_align(align);
    /// assert_eq!(file.align_source(), AlignSource::Caller);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn align_source(&self) -> AlignSource {
        self.align_source
    }

    /// Untorn-write limits, when `statx` reports atomic-write support
    /// (then [`FileCaps::atomic_write`] is set).
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::buf::AlignedBuf;
    /// use iov_iter::dio::DirectIo;
    /// use iov_iter::kiocb::{IocbFlags, Kiocb};
    /// use iov_iter::{Errno, IovIter, Source, Ubuf};
    /// # struct Rm(std::path::PathBuf);
    /// # impl Drop for Rm {
    /// #     fn drop(&mut self) {
    /// #         let _ = std::fs::remove_file(&self.0);
    /// #     }
    /// # }
    /// # let tmp = Rm(std::env::temp_dir().join(format!("iov-iter-doc-{}-atomic-units-fn", std::process::id())));
    /// # let file = match iov_iter::backend::file::DirectFile::options().create(true).open(&tmp.0) {
    /// #     Ok(file) => file,
    /// #     // No O_DIRECT on this filesystem (EINVAL): nothing to show.
    /// #     Err(e) if matches!(e.errno(), iov_iter::Errno::EINVAL | iov_iter::Errno::EOPNOTSUPP) => {
    /// #         return Ok(());
    /// #     }
    /// #     Err(e) => return Err(e.into()),
    /// # };
    /// if file.atomic_write_units().is_none() {
    ///     // No untorn writes on this file: an IOCB_ATOMIC write is refused up front.
    ///     let a = file.dio_align();
    ///     let buf = AlignedBuf::zeroed(a.mem as usize, a.offset as usize)?;
    ///     let mut kiocb = Kiocb::new_sync(0).with_flags(IocbFlags::ATOMIC);
    ///     let mut src = IovIter::<Source, Ubuf>::new(&buf);
    ///     let err = file.direct_io(&mut kiocb, &mut src).unwrap_err();
    ///     assert_eq!(err.errno(), Errno::EOPNOTSUPP);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "STATX_WRITE_ATOMIC")]
    pub fn atomic_write_units(&self) -> Option<AtomicWriteUnits> {
        self.atomic
    }

    /// The file size in bytes (`fstat`).
    ///
    /// # Errors
    ///
    /// The `fstat` errno.
    ///
    /// # Examples
    ///
    /// ```
    /// # struct Rm(std::path::PathBuf);
    /// # impl Drop for Rm {
    /// #     fn drop(&mut self) {
    /// #         let _ = std::fs::remove_file(&self.0);
    /// #     }
    /// # }
    /// # let tmp = Rm(std::env::temp_dir().join(format!("iov-iter-doc-{}-len", std::process::id())));
    /// # let file = match iov_iter::backend::file::DirectFile::options().create(true).open(&tmp.0) {
    /// #     Ok(file) => file,
    /// #     // No O_DIRECT on this filesystem (EINVAL): nothing to show.
    /// #     Err(e) if matches!(e.errno(), iov_iter::Errno::EINVAL | iov_iter::Errno::EOPNOTSUPP) => {
    /// #         return Ok(());
    /// #     }
    /// #     Err(e) => return Err(e.into()),
    /// # };
    /// assert_eq!(file.len()?, 0);
    /// file.set_len(12288)?;
    /// assert_eq!(file.len()?, 12288);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> Result<u64> {
        let st = rustix::fs::fstat(&self.fd).map_err(os_err)?;
        Ok(u64::try_from(st.st_size).unwrap_or(0))
    }

    /// Whether the file is empty.
    ///
    /// # Errors
    ///
    /// As [`DirectFile::len`].
    ///
    /// # Examples
    ///
    /// ```
    /// # struct Rm(std::path::PathBuf);
    /// # impl Drop for Rm {
    /// #     fn drop(&mut self) {
    /// #         let _ = std::fs::remove_file(&self.0);
    /// #     }
    /// # }
    /// # let tmp = Rm(std::env::temp_dir().join(format!("iov-iter-doc-{}-is-empty", std::process::id())));
    /// # let file = match iov_iter::backend::file::DirectFile::options().create(true).open(&tmp.0) {
    /// #     Ok(file) => file,
    /// #     // No O_DIRECT on this filesystem (EINVAL): nothing to show.
    /// #     Err(e) if matches!(e.errno(), iov_iter::Errno::EINVAL | iov_iter::Errno::EOPNOTSUPP) => {
    /// #         return Ok(());
    /// #     }
    /// #     Err(e) => return Err(e.into()),
    /// # };
    /// assert!(file.is_empty()?);
    /// file.set_len(1)?; // any size, aligned or not
    /// assert!(!file.is_empty()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Truncates or extends the file to `len` bytes (`ftruncate`).
    ///
    /// # Errors
    ///
    /// The `ftruncate` errno.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::buf::AlignedBuf;
    /// use iov_iter::dio::DirectIo;
    /// use iov_iter::kiocb::{Kiocb, Submitted};
    /// use iov_iter::{Dest, IovIter, Ubuf};
    /// # struct Rm(std::path::PathBuf);
    /// # impl Drop for Rm {
    /// #     fn drop(&mut self) {
    /// #         let _ = std::fs::remove_file(&self.0);
    /// #     }
    /// # }
    /// # let tmp = Rm(std::env::temp_dir().join(format!("iov-iter-doc-{}-set-len", std::process::id())));
    /// # let file = match iov_iter::backend::file::DirectFile::options().create(true).open(&tmp.0) {
    /// #     Ok(file) => file,
    /// #     // No O_DIRECT on this filesystem (EINVAL): nothing to show.
    /// #     Err(e) if matches!(e.errno(), iov_iter::Errno::EINVAL | iov_iter::Errno::EOPNOTSUPP) => {
    /// #         return Ok(());
    /// #     }
    /// #     Err(e) => return Err(e.into()),
    /// # };
    /// let a = file.dio_align();
    /// let mut buf = AlignedBuf::zeroed(a.mem as usize, a.offset as usize)?;
    /// file.set_len(u64::from(a.offset))?; // one block of zeros
    /// let mut dst = IovIter::<Dest, Ubuf>::new(&mut buf);
    /// assert_eq!(file.direct_io(&mut Kiocb::new_sync(0), &mut dst)?, Submitted::Done(a.offset as usize));
    /// file.set_len(0)?; // a read now finds the end of the file
    /// let mut dst = IovIter::<Dest, Ubuf>::new(&mut buf);
    /// assert_eq!(file.direct_io(&mut Kiocb::new_sync(0), &mut dst)?, Submitted::Done(0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "ftruncate")]
    pub fn set_len(&self, len: u64) -> Result<()> {
        rustix::fs::ftruncate(&self.fd, len).map_err(os_err)
    }

    /// Allocates blocks for the first `len` bytes, extending the file if
    /// needed (`fallocate(fd, 0, 0, len)`).
    ///
    /// # Errors
    ///
    /// The `fallocate` errno (`EOPNOTSUPP` where the filesystem cannot).
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::Errno;
    /// # struct Rm(std::path::PathBuf);
    /// # impl Drop for Rm {
    /// #     fn drop(&mut self) {
    /// #         let _ = std::fs::remove_file(&self.0);
    /// #     }
    /// # }
    /// # let tmp = Rm(std::env::temp_dir().join(format!("iov-iter-doc-{}-allocate", std::process::id())));
    /// # let file = match iov_iter::backend::file::DirectFile::options().create(true).open(&tmp.0) {
    /// #     Ok(file) => file,
    /// #     // No O_DIRECT on this filesystem (EINVAL): nothing to show.
    /// #     Err(e) if matches!(e.errno(), iov_iter::Errno::EINVAL | iov_iter::Errno::EOPNOTSUPP) => {
    /// #         return Ok(());
    /// #     }
    /// #     Err(e) => return Err(e.into()),
    /// # };
    /// match file.allocate(1 << 20) {
    ///     Ok(()) => assert_eq!(file.len()?, 1 << 20),
    ///     Err(e) => assert_eq!(e.errno(), Errno::EOPNOTSUPP), // no fallocate here
    /// }
    /// file.allocate(0)?; // nothing to do
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "fallocate")]
    pub fn allocate(&self, len: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        rustix::fs::fallocate(&self.fd, FallocateFlags::empty(), 0, len).map_err(os_err)
    }

    /// Flushes data and metadata to stable storage (`fsync`).
    ///
    /// # Errors
    ///
    /// The `fsync` errno.
    ///
    /// # Examples
    ///
    /// ```
    /// # struct Rm(std::path::PathBuf);
    /// # impl Drop for Rm {
    /// #     fn drop(&mut self) {
    /// #         let _ = std::fs::remove_file(&self.0);
    /// #     }
    /// # }
    /// # let tmp = Rm(std::env::temp_dir().join(format!("iov-iter-doc-{}-sync", std::process::id())));
    /// # let file = match iov_iter::backend::file::DirectFile::options().create(true).open(&tmp.0) {
    /// #     Ok(file) => file,
    /// #     // No O_DIRECT on this filesystem (EINVAL): nothing to show.
    /// #     Err(e) if matches!(e.errno(), iov_iter::Errno::EINVAL | iov_iter::Errno::EOPNOTSUPP) => {
    /// #         return Ok(());
    /// #     }
    /// #     Err(e) => return Err(e.into()),
    /// # };
    /// file.set_len(8192)?; // metadata only
    /// file.sync()?;
    /// assert_eq!(std::fs::metadata(&tmp.0)?.len(), 8192);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "fsync")]
    pub fn sync(&self) -> Result<()> {
        rustix::fs::fsync(&self.fd).map_err(os_err)
    }

    /// Flushes data (and the metadata needed to read it) to stable storage
    /// (`fdatasync`).
    ///
    /// # Errors
    ///
    /// The `fdatasync` errno.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::buf::AlignedBuf;
    /// use iov_iter::dio::DirectIo;
    /// use iov_iter::kiocb::{Kiocb, Submitted};
    /// use iov_iter::{IovIter, Source, Ubuf};
    /// # struct Rm(std::path::PathBuf);
    /// # impl Drop for Rm {
    /// #     fn drop(&mut self) {
    /// #         let _ = std::fs::remove_file(&self.0);
    /// #     }
    /// # }
    /// # let tmp = Rm(std::env::temp_dir().join(format!("iov-iter-doc-{}-sync-data", std::process::id())));
    /// # let file = match iov_iter::backend::file::DirectFile::options().create(true).open(&tmp.0) {
    /// #     Ok(file) => file,
    /// #     // No O_DIRECT on this filesystem (EINVAL): nothing to show.
    /// #     Err(e) if matches!(e.errno(), iov_iter::Errno::EINVAL | iov_iter::Errno::EOPNOTSUPP) => {
    /// #         return Ok(());
    /// #     }
    /// #     Err(e) => return Err(e.into()),
    /// # };
    /// let a = file.dio_align();
    /// let data = AlignedBuf::from_slice(a.mem as usize, &vec![b'x'; a.offset as usize])?;
    /// let mut src = IovIter::<Source, Ubuf>::new(&data);
    /// assert_eq!(file.direct_io(&mut Kiocb::new_sync(0), &mut src)?, Submitted::Done(data.len()));
    /// file.sync_data()?;
    /// assert_eq!(std::fs::read(&tmp.0)?, data.as_slice());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "fdatasync")]
    pub fn sync_data(&self) -> Result<()> {
        rustix::fs::fdatasync(&self.fd).map_err(os_err)
    }

    /// The file descriptor.
    ///
    /// # Examples
    ///
    /// ```
    /// # struct Rm(std::path::PathBuf);
    /// # impl Drop for Rm {
    /// #     fn drop(&mut self) {
    /// #         let _ = std::fs::remove_file(&self.0);
    /// #     }
    /// # }
    /// # let tmp = Rm(std::env::temp_dir().join(format!("iov-iter-doc-{}-into-fd", std::process::id())));
    /// # let file = match iov_iter::backend::file::DirectFile::options().create(true).open(&tmp.0) {
    /// #     Ok(file) => file,
    /// #     // No O_DIRECT on this filesystem (EINVAL): nothing to show.
    /// #     Err(e) if matches!(e.errno(), iov_iter::Errno::EINVAL | iov_iter::Errno::EOPNOTSUPP) => {
    /// #         return Ok(());
    /// #     }
    /// #     Err(e) => return Err(e.into()),
    /// # };
    /// file.set_len(4096)?;
    /// // Back to std, still O_DIRECT.
    /// let std_file = std::fs::File::from(file.into_fd());
    /// assert_eq!(std_file.metadata()?.len(), 4096);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

/// Runs `f` until it does not fail with `EINTR`.
fn retry_eintr(mut f: impl FnMut() -> rustix::io::Result<usize>) -> rustix::io::Result<usize> {
    loop {
        match f() {
            Err(rustix::io::Errno::INTR) => continue,
            r => return r,
        }
    }
}

/// The filesystem block size as an alignment, if it is a sane power of two.
fn fs_block_align(fd: &OwnedFd) -> Option<DioAlign> {
    let bsize = rustix::fs::fstatvfs(fd).ok()?.f_bsize;
    let bsize = u32::try_from(bsize).ok()?;
    if !bsize.is_power_of_two() || !(512..=65536).contains(&bsize) {
        return None;
    }
    DioAlign::new(bsize.min(PAGE_SIZE as u32), bsize).ok()
}

impl AsFd for DirectFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl From<DirectFile> for OwnedFd {
    fn from(f: DirectFile) -> OwnedFd {
        f.fd
    }
}

/// Whether the kernel accepts `RWF_DONTCACHE` on `fd`: one aligned read of
/// one block at offset 0 with the flag (a read of an empty file returns 0
/// after the flag check). `false` for a write-only file and any error.
fn probe_dontcache(fd: &OwnedFd, align: DioAlign) -> bool {
    let writable_only =
        rustix::fs::fcntl_getfl(fd).is_ok_and(|fl| fl & OFlags::ACCMODE == OFlags::WRONLY);
    if writable_only {
        return false;
    }
    // `for_dio`'s alignment (page-aligned at least): a buffer at the bare
    // memory alignment is a partial-page segment, which zram on Linux 6.18
    // answers by overwriting whole pages around it.
    let len = align.offset_for(RwType::Read) as usize;
    let Ok(mut buf) = crate::buf::AlignedBuf::for_dio(align, len) else {
        return false;
    };
    buf.resize_zeroed(len);
    let flags = ReadWriteFlags::from_bits_retain(RwfFlags::DONTCACHE.bits());
    rustix::io::preadv2(fd, &mut [IoSliceMut::new(&mut buf)], 0, flags).is_ok()
}

/// Direct I/O on the file: `preadv2` / `pwritev2`, which block, so
/// asynchronous requests complete inline ([`AsyncMode::Inline`](crate::dio::AsyncMode::Inline), the
/// default [`DirectIo::start`]).
impl DirectIo for DirectFile {
    /// The alignment in force ([`DirectFile::align_source`] says where it
    /// came from).
    #[doc(alias = "STATX_DIOALIGN")]
    fn dio_align(&self) -> DioAlign {
        self.align
    }

    /// `RWF_NOWAIT` always (`FMODE_NOWAIT`), untorn writes when `statx`
    /// reports them, the append-only and DAX attributes from `statx`;
    /// `RWF_DONTCACHE` when the kernel took it on this file at open (one
    /// aligned `preadv2` at offset 0 with the flag: the filesystem's
    /// `FOP_DONTCACHE`, which direct I/O accepts and ignores; ext4 and XFS
    /// have it since Linux 6.15). A write-only file is not probed and says
    /// no.
    fn caps(&self) -> FileCaps {
        self.caps
    }

    /// `preadv2` / `pwritev2` at `pos` with `flags` (`pread` / `pwrite`
    /// for one segment and no flag, which spares the kernel an iovec
    /// import), continued until done, a 0 return, or a return that leaves
    /// the offset alignment (end of file); see the [module
    /// documentation](self).
    #[doc(alias = "preadv2")]
    #[doc(alias = "pwritev2")]
    #[doc(alias = "pread")]
    #[doc(alias = "pwrite")]
    unsafe fn transfer(
        &self,
        rw: RwType,
        pos: u64,
        iov: &[UserIovec],
        flags: RwfFlags,
    ) -> Result<usize> {
        let rflags = ReadWriteFlags::from_bits_retain(flags.bits());
        let total = iov.iter().fold(0usize, |acc, v| acc.saturating_add(v.len));
        let off_mask = self.align.offset_for(rw).max(1) as usize - 1;
        let mut done = 0usize;
        // One step: a syscall's outcome is folded into `done`; `Some(n)`
        // means go on after advancing the slices by `n`.
        let step = |r: rustix::io::Result<usize>, done: &mut usize| -> Result<Option<usize>> {
            match r {
                Ok(n) => {
                    let n = n.min(total - *done);
                    *done += n;
                    // 0: end of file (or no progress possible). Off the
                    // offset alignment: only end of file does that under
                    // O_DIRECT, and the next offset would be misaligned.
                    Ok((n != 0 && n & off_mask == 0).then_some(n))
                }
                Err(e) if *done == 0 => Err(os_err(e)),
                // Some bytes moved: report them; the error will repeat.
                Err(_) => Ok(None),
            }
        };
        match rw {
            RwType::Read => {
                let mut storage: SmallVec<[IoSliceMut<'_>; 8]> = iov
                    .iter()
                    .map(|v| {
                        if v.len == 0 || v.base.is_null() {
                            return IoSliceMut::new(&mut []);
                        }
                        // SAFETY: the `DirectIo::transfer` contract: `v` is valid for
                        // writes of `v.len` bytes for this call, not accessed
                        // by anything else and not overlapping another
                        // entry, so a unique slice over it is sound until
                        // this call returns.
                        IoSliceMut::new(unsafe { core::slice::from_raw_parts_mut(v.base, v.len) })
                    })
                    .collect();
                let mut bufs: &mut [IoSliceMut<'_>] = &mut storage;
                while done < total {
                    let at = pos.saturating_add(done as u64);
                    // One segment and no flag: pread(2), which the kernel
                    // serves without importing an iovec array.
                    let r = retry_eintr(|| match bufs {
                        [one] if rflags.is_empty() => rustix::io::pread(&self.fd, &mut **one, at),
                        _ => rustix::io::preadv2(&self.fd, bufs, at, rflags),
                    });
                    match step(r, &mut done)? {
                        Some(n) => IoSliceMut::advance_slices(&mut bufs, n),
                        None => break,
                    }
                }
            }
            RwType::Write => {
                let mut storage: SmallVec<[IoSlice<'_>; 8]> = iov
                    .iter()
                    .map(|v| {
                        if v.len == 0 || v.base.is_null() {
                            return IoSlice::new(&[]);
                        }
                        // SAFETY: the `DirectIo::transfer` contract: `v` is valid for
                        // reads of `v.len` bytes for this call and nothing
                        // writes it meanwhile.
                        IoSlice::new(unsafe {
                            core::slice::from_raw_parts(v.base.cast_const(), v.len)
                        })
                    })
                    .collect();
                let mut bufs: &mut [IoSlice<'_>] = &mut storage;
                while done < total {
                    let at = pos.saturating_add(done as u64);
                    let r = retry_eintr(|| match bufs {
                        [one] if rflags.is_empty() => rustix::io::pwrite(&self.fd, one, at),
                        _ => rustix::io::pwritev2(&self.fd, bufs, at, rflags),
                    });
                    match step(r, &mut done)? {
                        Some(n) => IoSlice::advance_slices(&mut bufs, n),
                        None => break,
                    }
                }
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::retry_eintr;
    use rustix::io::Errno;

    /// A syscall interrupted by a signal is made again, as often as it is
    /// interrupted; any other outcome, error or not, is returned at once.
    #[test]
    fn eintr_is_retried_and_nothing_else_is() {
        let mut calls = 0;
        let r = retry_eintr(|| {
            calls += 1;
            if calls <= 3 {
                Err(Errno::INTR)
            } else {
                Ok(4096)
            }
        });
        assert_eq!((r, calls), (Ok(4096), 4));
        for e in [Errno::AGAIN, Errno::IO, Errno::INVAL] {
            let mut calls = 0;
            let r = retry_eintr(|| {
                calls += 1;
                Err(e)
            });
            assert_eq!((r, calls), (Err(e), 1), "{e:?}");
        }
        let mut calls = 0;
        assert_eq!(
            retry_eintr(|| {
                calls += 1;
                Ok(0)
            }),
            Ok(0)
        );
        assert_eq!(calls, 1, "a zero-byte result (end of file) is final");
    }
}
