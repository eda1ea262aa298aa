//! A filesystem's mapping of file ranges to extents, and what the crate
//! builds on it: the generic direct-I/O path ([`IomapDio`], the kernel's
//! `iomap_dio_rw`) and swap activation ([`swapfile_activate`], the
//! kernel's `iomap_swapfile_activate`).
//!
//! A filesystem implements one trait, [`IoMap`]: given a file range and
//! what it is for ([`IomapOp`]), say which [`Extent`] holds its start
//! (mapped at a device address, a hole, unwritten, delayed allocation,
//! inline) and how far that extent goes; for writes, allocate or convert
//! ([`IoMap::begin`] with [`IomapOp::WRITE`], [`IoMap::end_io`]). The
//! direct-I/O rules (alignment, the kiocb contract, splitting a request at
//! extent boundaries, zero-filling holes, short reads at the file size)
//! live once, in [`IomapDio`]; the swap rules (no holes, no shared or
//! inline extents, page-aligned physical runs) once, in
//! [`swapfile_activate`].
//!
//! Linux reference: `include/linux/iomap.h` (`struct iomap`, `IOMAP_*`
//! types and flags, `struct iomap_ops`, `struct iomap_dio_ops`),
//! `fs/iomap/direct-io.c` (`iomap_dio_rw`, `iomap_dio_zero`),
//! `fs/iomap/swapfile.c` (`iomap_swapfile_activate`), `fs/iomap/iter.c`
//! (`iomap_iter_done`'s sanity checks).
//!
//! | kernel | here |
//! |---|---|
//! | `struct iomap_ops` (`iomap_begin`, `iomap_end`) | [`IoMap`] ([`IoMap::begin`], [`IoMap::end`]) |
//! | `struct iomap_dio_ops` `end_io`, `IOMAP_DIO_UNWRITTEN`, `IOMAP_DIO_COW` | [`IoMap::end_io`], [`EndIoFlags`] |
//! | `struct iomap` (`offset`, `length`, `addr`, `type`, `flags`), `IOMAP_NULL_ADDR` | [`Extent`] (`addr: None`) |
//! | `IOMAP_HOLE`, `IOMAP_DELALLOC`, `IOMAP_MAPPED`, `IOMAP_UNWRITTEN`, `IOMAP_INLINE` | [`ExtentKind`] |
//! | `IOMAP_F_NEW`, `IOMAP_F_DIRTY`, `IOMAP_F_SHARED`, `IOMAP_F_MERGED` | [`ExtentFlags`] |
//! | `IOMAP_WRITE`, `IOMAP_REPORT`, `IOMAP_DIRECT`, `IOMAP_NOWAIT`, ... | [`IomapOp`] |
//! | `iomap_dio_rw` | [`IomapDio`] (a [`DirectIo`](crate::dio::DirectIo) target) |
//! | `iomap_swapfile_activate`, `struct swap_extent`, `add_swap_extent` | [`swapfile_activate`], [`SwapExtent`], [`SwapExtents`] |
//!
//! # Examples
//!
//! A file of 12 KiB on a RAM device: its first 8 KiB at device offset
//! 64 KiB, then a hole. A read of the whole file reads 8 KiB from the
//! device and zero-fills the rest without I/O:
//!
//! ```
//! use iov_iter::backend::mem::MemDevice;
//! use iov_iter::buf::AlignedBuf;
//! use iov_iter::dio::DirectIo;
//! use iov_iter::iomap::{Extent, IoMap, IomapDio, IomapOp};
//! use iov_iter::kiocb::{Kiocb, Submitted};
//! use iov_iter::{Dest, IovIter, Result, Ubuf};
//!
//! struct TwoExtents;
//! impl IoMap for TwoExtents {
//!     fn size(&self) -> u64 {
//!         12 << 10
//!     }
//!     fn begin(&self, pos: u64, _len: u64, _op: IomapOp) -> Result<Extent> {
//!         Ok(if pos < 8 << 10 {
//!             Extent::mapped(0, 8 << 10, 64 << 10)
//!         } else {
//!             Extent::hole(8 << 10, 1 << 20)
//!         })
//!     }
//! }
//!
//! let dev = MemDevice::new(128 << 10);
//! dev.fill(0xab);
//! let file = IomapDio::new(TwoExtents, dev);
//! let mut buf = AlignedBuf::from_slice(512, &[0xff; 16 << 10])?;
//! let mut it = IovIter::<Dest, Ubuf>::new(&mut buf);
//! let mut kiocb = Kiocb::new_sync(0);
//! // 12 KiB: the read stops at the file size.
//! assert_eq!(file.direct_io(&mut kiocb, &mut it)?, Submitted::Done(12 << 10));
//! assert!(buf[..8 << 10].iter().all(|&b| b == 0xab));
//! assert!(buf[8 << 10..12 << 10].iter().all(|&b| b == 0));
//! assert_eq!(file.device().stats().reads, 1, "the hole needed no I/O");
//! # Ok::<(), iov_iter::Error>(())
//! ```

pub use crate::error::BadExtent;
use crate::error::{Error, Result};

mod dio;
mod swapfile;

pub use dio::IomapDio;
pub use swapfile::{SwapActivateError, SwapExtent, SwapExtents, SwapRefusal, swapfile_activate};

/// What an extent holds (the kernel's `iomap->type`).
///
/// # Examples
///
/// ```
/// use iov_iter::iomap::{Extent, ExtentKind};
/// assert_eq!(Extent::unwritten(0, 4096, 8192).kind, ExtentKind::Unwritten);
/// assert!(ExtentKind::Unwritten.is_allocated() && !ExtentKind::Hole.is_allocated());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExtentKind {
    /// No blocks allocated: reads as zeros; a write must allocate.
    #[doc(alias = "IOMAP_HOLE")]
    Hole,
    /// Delayed allocation: blocks reserved, not yet placed (never seen by
    /// direct I/O on a synced file).
    #[doc(alias = "IOMAP_DELALLOC")]
    Delalloc,
    /// Blocks allocated at [`Extent::addr`] holding data.
    #[doc(alias = "IOMAP_MAPPED")]
    Mapped,
    /// Blocks allocated at [`Extent::addr`] but never written: reads as
    /// zeros; a write lands there and is converted at completion
    /// ([`IoMap::end_io`] with [`EndIoFlags::UNWRITTEN`]).
    #[doc(alias = "IOMAP_UNWRITTEN")]
    Unwritten,
    /// Data stored inline in the inode (no device address).
    #[doc(alias = "IOMAP_INLINE")]
    Inline,
}

impl ExtentKind {
    /// Whether the extent has blocks on the device ([`ExtentKind::Mapped`]
    /// or [`ExtentKind::Unwritten`]): what swap accepts.
    ///
    /// ```
    /// use iov_iter::iomap::ExtentKind;
    /// assert!(ExtentKind::Mapped.is_allocated() && ExtentKind::Unwritten.is_allocated());
    /// // Reserved but not placed: no device address yet.
    /// assert!(!ExtentKind::Delalloc.is_allocated() && !ExtentKind::Inline.is_allocated());
    /// ```
    pub const fn is_allocated(self) -> bool {
        matches!(self, ExtentKind::Mapped | ExtentKind::Unwritten)
    }

    /// Whether a read of the extent is zeros without I/O
    /// ([`ExtentKind::Hole`] or [`ExtentKind::Unwritten`]).
    ///
    /// ```
    /// # use iov_iter::backend::mem::MemDevice;
    /// # use iov_iter::dio::DirectIo;
    /// # use iov_iter::iomap::{Extent, IoMap, IomapDio, IomapOp};
    /// # use iov_iter::{kiocb::{Kiocb, Submitted}, Dest, IovIter, Page, Ubuf};
    /// # struct One(Extent);
    /// # impl IoMap for One {
    /// #     fn size(&self) -> u64 { 1 << 20 }
    /// #     fn begin(&self, _: u64, _: u64, _: IomapOp) -> iov_iter::Result<Extent> { Ok(self.0) }
    /// # }
    /// let ext = Extent::unwritten(0, 1 << 20, 0);
    /// assert!(ext.kind.reads_as_zeros());
    /// let file = IomapDio::new(One(ext), MemDevice::new(1 << 20));
    /// file.device().fill(0xff); // stale bytes on the device
    /// let mut page = Page::new();
    /// let mut dst = IovIter::<Dest, Ubuf>::new(page.as_mut_bytes());
    /// assert_eq!(file.direct_io(&mut Kiocb::new_sync(0), &mut dst)?, Submitted::Done(4096));
    /// drop(dst);
    /// assert!(page.as_bytes().iter().all(|&b| b == 0));
    /// assert_eq!(file.device().stats().reads, 0);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub const fn reads_as_zeros(self) -> bool {
        matches!(self, ExtentKind::Hole | ExtentKind::Unwritten)
    }
}

// The flag types live in a private module and are re-exported: the methods
// `bitflags!` generates (`empty`, `contains`, `iter`, ...) carry bitflags'
// own documentation, which cannot take an example, so they are not counted
// as this crate's items (as for `PageFlags`). The documentation a user reads
// is the same.
mod flags {
    bitflags::bitflags! {
        /// An extent's flags (the kernel's `IOMAP_F_*`, plus what FIEMAP
        /// reports and swap must refuse).
        ///
        /// ```
        /// use iov_iter::iomap::{Extent, ExtentFlags};
        /// let e = Extent::mapped(0, 4096, 0).with_flags(ExtentFlags::SHARED);
        /// assert!(e.flags.contains(ExtentFlags::SHARED));
        /// ```
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct ExtentFlags: u32 {
            /// Blocks allocated by this mapping call (`IOMAP_F_NEW`): the
            /// parts of a block a sub-block write does not cover are zeroed.
            ///
            /// ```
            /// # use iov_iter::backend::mem::MemDevice;
            /// # use iov_iter::buf::AlignedBuf;
            /// # use iov_iter::dio::DirectIo;
            /// # use iov_iter::iomap::{Extent, ExtentFlags, IoMap, IomapDio, IomapOp};
            /// # use iov_iter::{kiocb::Kiocb, IovIter, Source, Ubuf};
            /// # struct One(Extent);
            /// # impl IoMap for One {
            /// #     fn size(&self) -> u64 { 1 << 20 }
            /// #     fn block_size(&self) -> u32 { 4096 }
            /// #     fn begin(&self, _: u64, _: u64, _: IomapOp) -> iov_iter::Result<Extent> { Ok(self.0) }
            /// # }
            /// # /// Writes 512 bytes of 7 at 0 over a device of 0xff; its first block after.
            /// # fn write_512(ext: Extent) -> iov_iter::Result<Vec<u8>> {
            /// #     let file = IomapDio::new(One(ext), MemDevice::new(1 << 20));
            /// #     file.device().fill(0xff);
            /// #     let data = AlignedBuf::from_slice(512, &[7; 512])?;
            /// #     let _ = file.direct_io(&mut Kiocb::new_sync(0), &mut IovIter::<Source, Ubuf>::new(&data))?;
            /// #     Ok(file.device().snapshot()[..4096].to_vec())
            /// # }
            /// // A 512-byte write into a 4 KiB block just allocated: the rest
            /// // of the block is zeroed, no stale bytes become readable.
            /// let block = write_512(Extent::mapped(0, 1 << 20, 0).with_flags(ExtentFlags::NEW))?;
            /// assert!(block[..512].iter().all(|&b| b == 7) && block[512..].iter().all(|&b| b == 0));
            /// // Without NEW the block holds file data: the rest is left alone.
            /// let block = write_512(Extent::mapped(0, 1 << 20, 0))?;
            /// assert!(block[512..].iter().all(|&b| b == 0xff));
            /// # Ok::<(), iov_iter::Error>(())
            /// ```
            #[doc(alias = "IOMAP_F_NEW")]
            const NEW = 1 << 0;
            /// The mapping's metadata is not committed (`IOMAP_F_DIRTY`):
            /// swap refuses it.
            ///
            /// ```
            /// # use iov_iter::iomap::{swapfile_activate, Extent, ExtentFlags, IoMap, IomapOp};
            /// # use iov_iter::iomap::{SwapActivateError, SwapRefusal};
            /// # struct One(Extent);
            /// # impl IoMap for One {
            /// #     fn size(&self) -> u64 { self.0.len }
            /// #     fn begin(&self, _: u64, _: u64, _: IomapOp) -> iov_iter::Result<Extent> { Ok(self.0) }
            /// # }
            /// let ext = Extent::unwritten(0, 1 << 20, 1 << 30);
            /// assert!(swapfile_activate(&One(ext), u64::MAX).is_ok());
            /// let err = swapfile_activate(&One(ext.with_flags(ExtentFlags::DIRTY)), u64::MAX);
            /// assert!(matches!(err, Err(SwapActivateError::Refused { why: SwapRefusal::Dirty, .. })));
            /// ```
            #[doc(alias = "IOMAP_F_DIRTY")]
            const DIRTY = 1 << 1;
            /// The blocks are shared with another file (`IOMAP_F_SHARED`,
            /// reflinked; `FIEMAP_EXTENT_SHARED`): swap refuses it.
            ///
            /// ```
            /// # use iov_iter::iomap::{swapfile_activate, Extent, ExtentFlags, IoMap, IomapOp};
            /// # use iov_iter::iomap::{SwapActivateError, SwapRefusal};
            /// # struct One(Extent);
            /// # impl IoMap for One {
            /// #     fn size(&self) -> u64 { self.0.len }
            /// #     fn begin(&self, _: u64, _: u64, _: IomapOp) -> iov_iter::Result<Extent> { Ok(self.0) }
            /// # }
            /// let reflinked = Extent::mapped(0, 1 << 20, 1 << 30).with_flags(ExtentFlags::SHARED);
            /// let err = swapfile_activate(&One(reflinked), u64::MAX).unwrap_err();
            /// assert_eq!(err, SwapActivateError::Refused { why: SwapRefusal::Shared, offset: 0, len: 1 << 20 });
            /// assert_eq!(err.errno(), iov_iter::Errno::EINVAL);
            /// ```
            #[doc(alias = "IOMAP_F_SHARED")]
            #[doc(alias = "FIEMAP_EXTENT_SHARED")]
            const SHARED = 1 << 2;
            /// Merged from several on-disk extents (`IOMAP_F_MERGED`,
            /// `FIEMAP_EXTENT_MERGED`): information only, nothing refuses it.
            ///
            /// ```
            /// # use iov_iter::iomap::{swapfile_activate, Extent, ExtentFlags, IoMap, IomapOp};
            /// # struct One(Extent);
            /// # impl IoMap for One {
            /// #     fn size(&self) -> u64 { self.0.len }
            /// #     fn begin(&self, _: u64, _: u64, _: IomapOp) -> iov_iter::Result<Extent> { Ok(self.0) }
            /// # }
            /// let merged = Extent::mapped(0, 1 << 20, 1 << 30).with_flags(ExtentFlags::MERGED);
            /// let area = swapfile_activate(&One(merged), u64::MAX)?;
            /// assert_eq!(area.device_offset(1), Some((1 << 30) + 4096));
            /// # Ok::<(), iov_iter::iomap::SwapActivateError>(())
            /// ```
            #[doc(alias = "IOMAP_F_MERGED")]
            #[doc(alias = "FIEMAP_EXTENT_MERGED")]
            const MERGED = 1 << 3;
            /// The data is encoded on the device (compressed or encrypted,
            /// `FIEMAP_EXTENT_ENCODED`, `FIEMAP_EXTENT_DATA_ENCRYPTED`): its
            /// blocks do not hold the file's bytes, so neither direct I/O
            /// through the mapping nor swap may use them.
            ///
            /// ```
            /// # use iov_iter::backend::mem::MemDevice;
            /// # use iov_iter::dio::DirectIo;
            /// # use iov_iter::iomap::{Extent, ExtentFlags, IoMap, IomapDio, IomapOp};
            /// # use iov_iter::{kiocb::Kiocb, Dest, Errno, IovIter, Page, Ubuf};
            /// # struct One(Extent);
            /// # impl IoMap for One {
            /// #     fn size(&self) -> u64 { 1 << 20 }
            /// #     fn begin(&self, _: u64, _: u64, _: IomapOp) -> iov_iter::Result<Extent> { Ok(self.0) }
            /// # }
            /// let compressed = Extent::mapped(0, 1 << 20, 0).with_flags(ExtentFlags::ENCODED);
            /// let file = IomapDio::new(One(compressed), MemDevice::new(1 << 20));
            /// let mut page = Page::new();
            /// let mut dst = IovIter::<Dest, Ubuf>::new(page.as_mut_bytes());
            /// let err = file.direct_io(&mut Kiocb::new_sync(0), &mut dst).unwrap_err();
            /// assert_eq!(err.errno(), Errno::EOPNOTSUPP);
            /// ```
            #[doc(alias = "FIEMAP_EXTENT_ENCODED")]
            #[doc(alias = "FIEMAP_EXTENT_DATA_ENCRYPTED")]
            const ENCODED = 1 << 12;
        }
    }

    bitflags::bitflags! {
        /// What a mapping call is for (the kernel's `IOMAP_*` operation
        /// flags, with its bit values).
        ///
        /// ```
        /// use iov_iter::iomap::IomapOp;
        /// assert_eq!(IomapOp::WRITE.bits() | IomapOp::DIRECT.bits(), 0x11);
        /// ```
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct IomapOp: u32 {
            /// A write: holes must be allocated (`IOMAP_WRITE`).
            ///
            /// ```
            /// # use iov_iter::backend::mem::MemDevice;
            /// # use iov_iter::dio::DirectIo;
            /// # use iov_iter::iomap::{Extent, IoMap, IomapDio, IomapOp};
            /// # use iov_iter::{kiocb::Kiocb, Errno, Error, IovIter, Page, Result, Source, Ubuf};
            /// /// A read-only filesystem: nothing may be allocated.
            /// struct ReadOnly;
            /// impl IoMap for ReadOnly {
            ///     fn size(&self) -> u64 { 1 << 20 }
            ///     fn begin(&self, _: u64, _: u64, op: IomapOp) -> Result<Extent> {
            ///         if op.contains(IomapOp::WRITE) {
            ///             return Err(Error::Os(Errno::EROFS));
            ///         }
            ///         Ok(Extent::mapped(0, 1 << 20, 0))
            ///     }
            /// }
            /// let file = IomapDio::new(ReadOnly, MemDevice::new(1 << 20));
            /// let page = Page::new();
            /// let mut src = IovIter::<Source, Ubuf>::new(page.as_bytes());
            /// assert_eq!(file.direct_io(&mut Kiocb::new_sync(0), &mut src), Err(Error::Os(Errno::EROFS)));
            /// ```
            #[doc(alias = "IOMAP_WRITE")]
            const WRITE = 1 << 0;
            /// Zeroing (`IOMAP_ZERO`): a range is to be zeroed, which
            /// allocates nothing by itself (not a [`IomapOp::WRITE`]).
            ///
            /// ```
            /// use iov_iter::iomap::IomapOp;
            /// assert_eq!(IomapOp::ZERO.bits(), 0x2); // the kernel's value
            /// assert!(!IomapOp::ZERO.contains(IomapOp::WRITE));
            /// ```
            #[doc(alias = "IOMAP_ZERO")]
            const ZERO = 1 << 1;
            /// Reporting only, nothing allocated (`IOMAP_REPORT`, FIEMAP and
            /// swap activation).
            ///
            /// ```
            /// # use std::sync::Mutex;
            /// # use iov_iter::iomap::{swapfile_activate, Extent, IoMap, IomapOp};
            /// /// Records what each mapping call is for.
            /// # struct Rec(Mutex<Vec<IomapOp>>);
            /// # impl IoMap for Rec {
            /// #     fn size(&self) -> u64 { 1 << 20 }
            /// #     fn begin(&self, _: u64, _: u64, op: IomapOp) -> iov_iter::Result<Extent> {
            /// #         self.0.lock().unwrap().push(op);
            /// #         Ok(Extent::unwritten(0, 1 << 20, 1 << 30))
            /// #     }
            /// # }
            /// let map = Rec(Mutex::default());
            /// swapfile_activate(&map, u64::MAX)?;
            /// assert_eq!(*map.0.lock().unwrap(), [IomapOp::REPORT]);
            /// # Ok::<(), iov_iter::iomap::SwapActivateError>(())
            /// ```
            #[doc(alias = "IOMAP_REPORT")]
            const REPORT = 1 << 2;
            /// Direct I/O (`IOMAP_DIRECT`): every call [`IomapDio`](super::IomapDio)
            /// makes carries it.
            ///
            /// ```
            /// # use std::sync::Mutex;
            /// # use iov_iter::backend::mem::MemDevice;
            /// # use iov_iter::dio::DirectIo;
            /// # use iov_iter::iomap::{Extent, IoMap, IomapDio, IomapOp};
            /// # use iov_iter::{kiocb::{Kiocb, Submitted}, Dest, IovIter, Page, Source, Ubuf};
            /// /// Records what each mapping call is for.
            /// # struct Rec(Mutex<Vec<IomapOp>>);
            /// # impl IoMap for Rec {
            /// #     fn size(&self) -> u64 { 1 << 20 }
            /// #     fn begin(&self, _: u64, _: u64, op: IomapOp) -> iov_iter::Result<Extent> {
            /// #         self.0.lock().unwrap().push(op);
            /// #         Ok(Extent::mapped(0, 1 << 20, 0))
            /// #     }
            /// # }
            /// let file = IomapDio::new(Rec(Mutex::default()), MemDevice::new(1 << 20));
            /// let mut page = Page::new();
            /// let mut dst = IovIter::<Dest, Ubuf>::new(page.as_mut_bytes());
            /// assert_eq!(file.direct_io(&mut Kiocb::new_sync(0), &mut dst)?, Submitted::Done(4096));
            /// drop(dst);
            /// let mut src = IovIter::<Source, Ubuf>::new(page.as_bytes());
            /// assert_eq!(file.direct_io(&mut Kiocb::new_sync(0), &mut src)?, Submitted::Done(4096));
            /// let ops = file.map().0.lock().unwrap().clone();
            /// assert_eq!(ops, [IomapOp::DIRECT, IomapOp::DIRECT | IomapOp::WRITE]);
            /// # Ok::<(), iov_iter::Error>(())
            /// ```
            #[doc(alias = "IOMAP_DIRECT")]
            const DIRECT = 1 << 4;
            /// Do not block (`IOMAP_NOWAIT`, from `RWF_NOWAIT`): answer
            /// [`Error::WouldBlock`](crate::Error::WouldBlock) rather than
            /// wait.
            ///
            /// ```
            /// # use iov_iter::backend::mem::MemDevice;
            /// # use iov_iter::dio::DirectIo;
            /// # use iov_iter::iomap::{Extent, IoMap, IomapDio, IomapOp};
            /// # use iov_iter::kiocb::{IocbFlags, Kiocb, Submitted};
            /// # use iov_iter::{Dest, Errno, Error, IovIter, Page, Result, Ubuf};
            /// /// A mapping whose extents are not cached: finding one would block.
            /// struct Cold;
            /// impl IoMap for Cold {
            ///     fn size(&self) -> u64 { 1 << 20 }
            ///     fn begin(&self, _: u64, _: u64, op: IomapOp) -> Result<Extent> {
            ///         if op.contains(IomapOp::NOWAIT) {
            ///             return Err(Error::WouldBlock);
            ///         }
            ///         Ok(Extent::mapped(0, 1 << 20, 0)) // (after reading metadata)
            ///     }
            /// }
            /// let file = IomapDio::new(Cold, MemDevice::new(1 << 20));
            /// let mut page = Page::new();
            /// let mut dst = IovIter::<Dest, Ubuf>::new(page.as_mut_bytes());
            /// let mut nowait = Kiocb::new_sync(0).with_flags(IocbFlags::NOWAIT);
            /// assert_eq!(file.direct_io(&mut nowait, &mut dst).unwrap_err().errno(), Errno::EAGAIN);
            /// assert_eq!(file.direct_io(&mut Kiocb::new_sync(0), &mut dst), Ok(Submitted::Done(4096)));
            /// ```
            #[doc(alias = "IOMAP_NOWAIT")]
            const NOWAIT = 1 << 5;
        }
    }

    bitflags::bitflags! {
        /// What a completed direct write touched, as
        /// [`IoMap::end_io`](super::IoMap::end_io) learns it (the kernel's
        /// `IOMAP_DIO_UNWRITTEN`, `IOMAP_DIO_NEW`-style flags of
        /// `iomap_dio_ops->end_io`).
        ///
        /// ```
        /// use iov_iter::iomap::EndIoFlags;
        /// assert!((EndIoFlags::UNWRITTEN | EndIoFlags::NEW).contains(EndIoFlags::NEW));
        /// ```
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct EndIoFlags: u32 {
            /// Part of the write went to unwritten extents: convert them.
            ///
            /// ```
            /// # use std::sync::Mutex;
            /// # use iov_iter::backend::mem::MemDevice;
            /// # use iov_iter::dio::DirectIo;
            /// # use iov_iter::iomap::{EndIoFlags, Extent, IoMap, IomapDio, IomapOp};
            /// # use iov_iter::{kiocb::Kiocb, IovIter, Page, Source, Ubuf};
            /// # /// One extent; records the flags `end_io` gets.
            /// # struct Rec(Extent, Mutex<Vec<EndIoFlags>>);
            /// # impl IoMap for Rec {
            /// #     fn size(&self) -> u64 { 1 << 20 }
            /// #     fn begin(&self, _: u64, _: u64, _: IomapOp) -> iov_iter::Result<Extent> { Ok(self.0) }
            /// #     fn end_io(&self, _: u64, _: u64, flags: EndIoFlags) -> iov_iter::Result<()> {
            /// #         Ok(self.1.lock().unwrap().push(flags))
            /// #     }
            /// # }
            /// # /// Writes a page at 0 into `ext`: the flags `end_io` got.
            /// # fn write_page(ext: Extent) -> iov_iter::Result<Vec<EndIoFlags>> {
            /// #     let file = IomapDio::new(Rec(ext, Mutex::default()), MemDevice::new(1 << 20));
            /// #     let page = Page::new();
            /// #     let _ = file.direct_io(&mut Kiocb::new_sync(0), &mut IovIter::<Source, Ubuf>::new(page.as_bytes()))?;
            /// #     Ok(file.map().1.lock().unwrap().clone())
            /// # }
            /// assert_eq!(write_page(Extent::unwritten(0, 1 << 20, 0))?, [EndIoFlags::UNWRITTEN]);
            /// assert_eq!(write_page(Extent::mapped(0, 1 << 20, 0))?, [EndIoFlags::empty()]);
            /// # Ok::<(), iov_iter::Error>(())
            /// ```
            #[doc(alias = "IOMAP_DIO_UNWRITTEN")]
            const UNWRITTEN = 1 << 0;
            /// Part of the write went to blocks the mapping just allocated
            /// ([`ExtentFlags::NEW`]).
            ///
            /// ```
            /// # use std::sync::Mutex;
            /// # use iov_iter::backend::mem::MemDevice;
            /// # use iov_iter::dio::DirectIo;
            /// # use iov_iter::iomap::{EndIoFlags, Extent, ExtentFlags, IoMap, IomapDio, IomapOp};
            /// # use iov_iter::{kiocb::Kiocb, IovIter, Page, Source, Ubuf};
            /// # /// One extent; records the flags `end_io` gets.
            /// # struct Rec(Extent, Mutex<Vec<EndIoFlags>>);
            /// # impl IoMap for Rec {
            /// #     fn size(&self) -> u64 { 1 << 20 }
            /// #     fn begin(&self, _: u64, _: u64, _: IomapOp) -> iov_iter::Result<Extent> { Ok(self.0) }
            /// #     fn end_io(&self, _: u64, _: u64, flags: EndIoFlags) -> iov_iter::Result<()> {
            /// #         Ok(self.1.lock().unwrap().push(flags))
            /// #     }
            /// # }
            /// # /// Writes a page at 0 into `ext`: the flags `end_io` got.
            /// # fn write_page(ext: Extent) -> iov_iter::Result<Vec<EndIoFlags>> {
            /// #     let file = IomapDio::new(Rec(ext, Mutex::default()), MemDevice::new(1 << 20));
            /// #     let page = Page::new();
            /// #     let _ = file.direct_io(&mut Kiocb::new_sync(0), &mut IovIter::<Source, Ubuf>::new(page.as_bytes()))?;
            /// #     Ok(file.map().1.lock().unwrap().clone())
            /// # }
            /// let fresh = Extent::unwritten(0, 1 << 20, 0).with_flags(ExtentFlags::NEW);
            /// assert_eq!(write_page(fresh)?, [EndIoFlags::UNWRITTEN | EndIoFlags::NEW]);
            /// # Ok::<(), iov_iter::Error>(())
            /// ```
            const NEW = 1 << 2;
        }
    }
}

pub use flags::{EndIoFlags, ExtentFlags, IomapOp};

/// One extent of a file (the kernel's `struct iomap`): bytes
/// `[offset, offset + len)` of the file, of a [`ExtentKind`], at device
/// address `addr` when allocated.
///
/// # Examples
///
/// ```
/// use iov_iter::iomap::Extent;
/// let e = Extent::mapped(8192, 4096, 1 << 20);
/// assert_eq!((e.end(), e.addr_at(8192 + 100)), (12288, Some((1 << 20) + 100)));
/// assert_eq!(Extent::hole(0, 4096).addr, None);
/// ```
#[doc(alias = "iomap")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Extent {
    /// File offset of the first byte.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// What it holds.
    pub kind: ExtentKind,
    /// Device address (bytes) of the first byte, for
    /// [`ExtentKind::Mapped`] and [`ExtentKind::Unwritten`]; `None` when
    /// there is none or it is unknown (`IOMAP_NULL_ADDR`,
    /// `FIEMAP_EXTENT_UNKNOWN`).
    #[doc(alias = "IOMAP_NULL_ADDR")]
    pub addr: Option<u64>,
    /// Its flags.
    pub flags: ExtentFlags,
}

impl Extent {
    /// An extent holding data at device address `addr`.
    ///
    /// ```
    /// use iov_iter::iomap::{Extent, ExtentKind};
    /// let e = Extent::mapped(4096, 8192, 1 << 20);
    /// assert_eq!((e.kind, e.addr, e.end()), (ExtentKind::Mapped, Some(1 << 20), 12288));
    /// assert!(e.flags.is_empty());
    /// ```
    pub const fn mapped(offset: u64, len: u64, addr: u64) -> Extent {
        Extent::new(offset, len, ExtentKind::Mapped, Some(addr))
    }

    /// Allocated, never written blocks at device address `addr`.
    ///
    /// ```
    /// use iov_iter::iomap::{Extent, ExtentKind};
    /// let e = Extent::unwritten(0, 4096, 1 << 20);
    /// assert_eq!((e.kind, e.addr_at(100)), (ExtentKind::Unwritten, Some((1 << 20) + 100)));
    /// assert!(e.kind.is_allocated() && e.kind.reads_as_zeros());
    /// ```
    pub const fn unwritten(offset: u64, len: u64, addr: u64) -> Extent {
        Extent::new(offset, len, ExtentKind::Unwritten, Some(addr))
    }

    /// A hole: no blocks, no device address.
    ///
    /// ```
    /// use iov_iter::iomap::{Extent, ExtentKind};
    /// let e = Extent::hole(8192, 4096);
    /// assert_eq!((e.kind, e.addr, e.addr_at(8192)), (ExtentKind::Hole, None, None));
    /// ```
    pub const fn hole(offset: u64, len: u64) -> Extent {
        Extent::new(offset, len, ExtentKind::Hole, None)
    }

    /// An extent of any kind.
    ///
    /// ```
    /// use iov_iter::iomap::{Extent, ExtentKind};
    /// let inline = Extent::new(0, 60, ExtentKind::Inline, None);
    /// assert_eq!(inline.end(), 60);
    /// ```
    pub const fn new(offset: u64, len: u64, kind: ExtentKind, addr: Option<u64>) -> Extent {
        Extent {
            offset,
            len,
            kind,
            addr,
            flags: ExtentFlags::empty(),
        }
    }

    /// The same extent with `flags` added (to those it has).
    ///
    /// ```
    /// use iov_iter::iomap::{Extent, ExtentFlags};
    /// let e = Extent::mapped(0, 4096, 0).with_flags(ExtentFlags::SHARED).with_flags(ExtentFlags::MERGED);
    /// assert_eq!(e.flags, ExtentFlags::SHARED | ExtentFlags::MERGED);
    /// ```
    pub const fn with_flags(mut self, flags: ExtentFlags) -> Extent {
        self.flags = self.flags.union(flags);
        self
    }

    /// One past its last byte (saturating).
    ///
    /// ```
    /// use iov_iter::iomap::Extent;
    /// assert_eq!(Extent::hole(4096, 512).end(), 4608);
    /// // A hole "to the end of all files" does not wrap around.
    /// assert_eq!(Extent::hole(1 << 20, u64::MAX).end(), u64::MAX);
    /// ```
    pub const fn end(&self) -> u64 {
        self.offset.saturating_add(self.len)
    }

    /// The device address of file offset `pos` (inside the extent), when
    /// the extent has an address; `None` for a `pos` before the extent.
    ///
    /// ```
    /// use iov_iter::iomap::Extent;
    /// let e = Extent::mapped(8192, 4096, 1 << 20);
    /// assert_eq!(e.addr_at(8192 + 512), Some((1 << 20) + 512));
    /// assert_eq!(e.addr_at(4096), None);
    /// ```
    pub const fn addr_at(&self, pos: u64) -> Option<u64> {
        match self.addr {
            Some(a) if pos >= self.offset => Some(a.wrapping_add(pos - self.offset)),
            _ => None,
        }
    }

    /// Checks the extent a mapping returned for file position `pos`, the
    /// previous extent of the same walk ending at `prev_end` (if any), on a
    /// device of `dev_size` bytes (if known): what the kernel's
    /// `iomap_iter_done` warns about, as a typed error.
    ///
    /// # Errors
    ///
    /// [`Error::BadExtent`] (EIO) naming the problem.
    ///
    /// ```
    /// use iov_iter::iomap::{BadExtent, Extent};
    /// use iov_iter::{Errno, Error};
    /// let e = Extent::mapped(0, 4096, 1 << 20);
    /// assert!(e.check(100, None, None).is_ok());
    /// let err = e.check(100, None, Some(1 << 20)).unwrap_err();
    /// assert!(matches!(err, Error::BadExtent { why: BadExtent::PastDevice, pos: 100, .. }));
    /// assert_eq!(err.errno(), Errno::EIO);
    /// ```
    #[doc(alias = "iomap_iter_done")]
    pub fn check(&self, pos: u64, prev_end: Option<u64>, dev_size: Option<u64>) -> Result<()> {
        let why = if self.len == 0 {
            Some(BadExtent::Empty)
        } else if self.offset.checked_add(self.len).is_none() {
            Some(BadExtent::Overflow)
        } else if self.offset > pos {
            Some(BadExtent::NotCovering)
        } else if self.end() <= pos {
            Some(BadExtent::Backwards)
        } else if prev_end.is_some_and(|end| self.offset < end) {
            Some(BadExtent::Overlap)
        } else if let Some(addr) = self.addr {
            match addr.checked_add(self.len) {
                None => Some(BadExtent::PastDevice),
                Some(end) if dev_size.is_some_and(|size| end > size) => Some(BadExtent::PastDevice),
                _ => None,
            }
        } else {
            None
        };
        match why {
            Some(why) => Err(Error::BadExtent {
                pos,
                offset: self.offset,
                len: self.len,
                why,
            }),
            None => Ok(()),
        }
    }
}

/// A filesystem's mapping of file ranges to extents (the kernel's
/// `struct iomap_ops` and the `end_io` of `struct iomap_dio_ops`): all a
/// filesystem supplies to get direct I/O ([`IomapDio`]) and swap activation
/// ([`swapfile_activate`]) from the crate.
///
/// # Examples
///
/// A read-only file over a fixed, sorted list of extents, the gaps between
/// them holes: the whole implementation is [`IoMap::size`] and
/// [`IoMap::begin`].
///
/// ```
/// use iov_iter::iomap::{swapfile_activate, Extent, IoMap, IomapOp, SwapRefusal};
/// use iov_iter::{Errno, Error, Result};
///
/// struct Fixed {
///     size: u64,
///     extents: Vec<Extent>,
/// }
/// impl IoMap for Fixed {
///     fn size(&self) -> u64 {
///         self.size
///     }
///     fn begin(&self, pos: u64, _len: u64, op: IomapOp) -> Result<Extent> {
///         if op.contains(IomapOp::WRITE) {
///             return Err(Error::Os(Errno::EROFS));
///         }
///         Ok(match self.extents.iter().find(|e| pos < e.end()) {
///             Some(e) if e.offset <= pos => *e,
///             Some(e) => Extent::hole(pos, e.offset - pos),
///             None => Extent::hole(pos, u64::MAX - pos),
///         })
///     }
/// }
///
/// let file = Fixed {
///     size: 12 << 10,
///     extents: vec![Extent::mapped(0, 4096, 1 << 20), Extent::mapped(8192, 4096, 2 << 20)],
/// };
/// assert_eq!(file.begin(4096, 8192, IomapOp::REPORT)?, Extent::hole(4096, 4096));
/// assert_eq!(file.begin(9000, 1, IomapOp::REPORT)?.addr_at(9000), Some((2 << 20) + 808));
/// let refused = swapfile_activate(&file, u64::MAX).unwrap_err();
/// assert!(matches!(refused, iov_iter::iomap::SwapActivateError::Refused { why: SwapRefusal::Hole, .. }));
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[doc(alias = "iomap_ops")]
pub trait IoMap: Send + Sync {
    /// The file size (`i_size`): reads stop here.
    ///
    /// ```
    /// # use iov_iter::backend::mem::MemDevice;
    /// # use iov_iter::dio::DirectIo;
    /// # use iov_iter::iomap::{Extent, IoMap, IomapDio, IomapOp};
    /// # use iov_iter::kiocb::{Kiocb, Submitted};
    /// # use iov_iter::{Dest, IovIter, Page, Ubuf};
    /// /// A file of 1000 bytes in one extent.
    /// struct Short;
    /// impl IoMap for Short {
    ///     fn size(&self) -> u64 { 1000 }
    ///     fn begin(&self, _: u64, _: u64, _: IomapOp) -> iov_iter::Result<Extent> {
    ///         Ok(Extent::mapped(0, 1 << 20, 0))
    ///     }
    /// }
    /// let file = IomapDio::new(Short, MemDevice::new(1 << 20));
    /// let mut page = Page::new();
    /// let mut dst = IovIter::<Dest, Ubuf>::new(page.as_mut_bytes());
    /// assert_eq!(file.direct_io(&mut Kiocb::new_sync(0), &mut dst)?, Submitted::Done(1000));
    /// let mut dst = IovIter::<Dest, Ubuf>::new(page.as_mut_bytes());
    /// assert_eq!(file.direct_io(&mut Kiocb::new_sync(4096), &mut dst)?, Submitted::Done(0));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "i_size_read")]
    fn size(&self) -> u64;

    /// The filesystem block size (`i_blocksize`, a power of two, at least
    /// 512): a sub-block direct write into a new or unwritten block zeroes
    /// the rest of the block first. Default 512.
    ///
    /// ```
    /// # use iov_iter::backend::mem::MemDevice;
    /// # use iov_iter::buf::AlignedBuf;
    /// # use iov_iter::dio::DirectIo;
    /// # use iov_iter::iomap::{Extent, IoMap, IomapDio, IomapOp};
    /// # use iov_iter::{kiocb::{Kiocb, Submitted}, IovIter, Source, Ubuf};
    /// /// Unwritten blocks of `bs` bytes.
    /// struct Blocks(u32);
    /// impl IoMap for Blocks {
    ///     fn size(&self) -> u64 { 1 << 20 }
    ///     fn block_size(&self) -> u32 { self.0 }
    ///     fn begin(&self, _: u64, _: u64, _: IomapOp) -> iov_iter::Result<Extent> {
    ///         Ok(Extent::unwritten(0, 1 << 20, 0))
    ///     }
    /// }
    /// let file = IomapDio::new(Blocks(4096), MemDevice::new(1 << 20));
    /// file.device().fill(0xff); // stale bytes
    /// let data = AlignedBuf::from_slice(512, &[7; 512])?;
    /// let mut src = IovIter::<Source, Ubuf>::new(&data);
    /// assert_eq!(file.direct_io(&mut Kiocb::new_sync(0), &mut src)?, Submitted::Done(512));
    /// // The 512-byte write zeroed the rest of its 4 KiB block, not beyond.
    /// let dev = file.device().snapshot();
    /// assert!(dev[512..4096].iter().all(|&b| b == 0) && dev[4096] == 0xff);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "i_blocksize")]
    fn block_size(&self) -> u32 {
        512
    }

    /// The extent holding file position `pos`, for up to `len` bytes from
    /// it, for operation `op` (`iomap_begin`). The extent must contain
    /// `pos`; it may start before it and end before or after `pos + len`.
    ///
    /// For [`IomapOp::WRITE`] the mapping allocates: holes and delayed
    /// allocations come back [`ExtentKind::Mapped`] or
    /// [`ExtentKind::Unwritten`] (with [`ExtentFlags::NEW`] when just
    /// allocated), or the call fails (`ENOSPC`). With [`IomapOp::NOWAIT`]
    /// it may answer [`Error::WouldBlock`].
    ///
    /// # Errors
    ///
    /// The mapping's own (`ENOSPC`, `EIO`, `EAGAIN`...): the request stops
    /// there (an error when nothing was transferred yet, else a short
    /// count).
    ///
    /// # Examples
    ///
    /// An extent that does not contain `pos` is refused, as a typed error
    /// (here one that ends before it):
    ///
    /// ```
    /// # use iov_iter::backend::mem::MemDevice;
    /// # use iov_iter::dio::DirectIo;
    /// # use iov_iter::iomap::{BadExtent, Extent, IoMap, IomapDio, IomapOp};
    /// # use iov_iter::{kiocb::Kiocb, Dest, Errno, Error, IovIter, Page, Ubuf};
    /// /// Always answers the first 4 KiB, whatever `pos` is.
    /// struct Wrong;
    /// impl IoMap for Wrong {
    ///     fn size(&self) -> u64 { 1 << 20 }
    ///     fn begin(&self, _pos: u64, _: u64, _: IomapOp) -> iov_iter::Result<Extent> {
    ///         Ok(Extent::mapped(0, 4096, 0))
    ///     }
    /// }
    /// let file = IomapDio::new(Wrong, MemDevice::new(1 << 20));
    /// let mut page = Page::new();
    /// let mut dst = IovIter::<Dest, Ubuf>::new(page.as_mut_bytes());
    /// let err = file.direct_io(&mut Kiocb::new_sync(8192), &mut dst).unwrap_err();
    /// assert!(matches!(err, Error::BadExtent { why: BadExtent::Backwards, pos: 8192, .. }));
    /// assert_eq!(err.errno(), Errno::EIO);
    /// ```
    #[doc(alias = "iomap_begin")]
    fn begin(&self, pos: u64, len: u64, op: IomapOp) -> Result<Extent>;

    /// After the I/O of an extent was issued (`iomap_end`): `len` bytes
    /// from `pos` were asked of `extent`, `done` of them issued. Default:
    /// nothing.
    ///
    /// # Errors
    ///
    /// The mapping's own; the request stops there.
    ///
    /// # Examples
    ///
    /// A read across two extents: one call per extent.
    ///
    /// ```
    /// # use std::sync::Mutex;
    /// # use iov_iter::backend::mem::MemDevice;
    /// # use iov_iter::dio::DirectIo;
    /// # use iov_iter::iomap::{Extent, IoMap, IomapDio, IomapOp};
    /// # use iov_iter::{kiocb::{Kiocb, Submitted}, Dest, IovIter, Ubuf};
    /// /// 4 KiB extents; records each `end` call.
    /// struct Pages(Mutex<Vec<(u64, u64, u64)>>);
    /// impl IoMap for Pages {
    ///     fn size(&self) -> u64 { 1 << 20 }
    ///     fn begin(&self, pos: u64, _: u64, _: IomapOp) -> iov_iter::Result<Extent> {
    ///         Ok(Extent::mapped(pos & !4095, 4096, pos & !4095))
    ///     }
    ///     fn end(&self, pos: u64, len: u64, done: u64, _: IomapOp, _: &Extent) -> iov_iter::Result<()> {
    ///         Ok(self.0.lock().unwrap().push((pos, len, done)))
    ///     }
    /// }
    /// let file = IomapDio::new(Pages(Mutex::default()), MemDevice::new(1 << 20));
    /// let mut buf = iov_iter::buf::AlignedBuf::zeroed(512, 4096)?;
    /// let mut dst = IovIter::<Dest, Ubuf>::new(&mut buf);
    /// assert_eq!(file.direct_io(&mut Kiocb::new_sync(2048), &mut dst)?, Submitted::Done(4096));
    /// assert_eq!(*file.map().0.lock().unwrap(), [(2048, 2048, 2048), (4096, 2048, 2048)]);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "iomap_end")]
    fn end(&self, pos: u64, len: u64, done: u64, op: IomapOp, extent: &Extent) -> Result<()> {
        let _ = (pos, len, done, op, extent);
        Ok(())
    }

    /// When a direct write has completed (`iomap_dio_ops->end_io`):
    /// `written` bytes from `pos` are on the device (the bytes counted in
    /// the result; `0` after an error). Convert unwritten extents in that
    /// range ([`EndIoFlags::UNWRITTEN`]) and grow the size when the write
    /// went past it. Default: nothing.
    ///
    /// # Errors
    ///
    /// The mapping's own (a conversion that failed): the write's result
    /// becomes that error.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::sync::Mutex;
    /// # use iov_iter::backend::mem::MemDevice;
    /// # use iov_iter::dio::DirectIo;
    /// # use iov_iter::iomap::{EndIoFlags, Extent, IoMap, IomapDio, IomapOp};
    /// # use iov_iter::{kiocb::{Kiocb, Submitted}, Errno, Error, IovIter, Page, Source, Ubuf};
    /// /// Unwritten blocks; the size grows with the writes, up to 8 KiB.
    /// struct Growing(Mutex<u64>);
    /// impl IoMap for Growing {
    ///     fn size(&self) -> u64 { *self.0.lock().unwrap() }
    ///     fn begin(&self, _: u64, _: u64, _: IomapOp) -> iov_iter::Result<Extent> {
    ///         Ok(Extent::unwritten(0, 1 << 20, 0))
    ///     }
    ///     fn end_io(&self, pos: u64, written: u64, flags: EndIoFlags) -> iov_iter::Result<()> {
    ///         assert!(flags.contains(EndIoFlags::UNWRITTEN));
    ///         if pos + written > 8192 {
    ///             return Err(Error::Os(Errno::EFBIG)); // the conversion failed
    ///         }
    ///         Ok(*self.0.lock().unwrap() = (pos + written).max(self.size()))
    ///     }
    /// }
    /// let file = IomapDio::new(Growing(Mutex::new(0)), MemDevice::new(1 << 20));
    /// let page = Page::new();
    /// let mut src = IovIter::<Source, Ubuf>::new(page.as_bytes());
    /// assert_eq!(file.direct_io(&mut Kiocb::new_sync(4096), &mut src)?, Submitted::Done(4096));
    /// assert_eq!(file.map().size(), 8192);
    /// let res = file.direct_io(&mut Kiocb::new_sync(8192), &mut IovIter::<Source, Ubuf>::new(page.as_bytes()));
    /// assert_eq!(res, Err(Error::Os(Errno::EFBIG)));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "iomap_dio_ops")]
    fn end_io(&self, pos: u64, written: u64, flags: EndIoFlags) -> Result<()> {
        let _ = (pos, written, flags);
        Ok(())
    }
}

macro_rules! forward_iomap {
    ($($ty:ty),*) => {$(
        impl<T: IoMap + ?Sized> IoMap for $ty {
            fn size(&self) -> u64 {
                (**self).size()
            }
            fn block_size(&self) -> u32 {
                (**self).block_size()
            }
            fn begin(&self, pos: u64, len: u64, op: IomapOp) -> Result<Extent> {
                (**self).begin(pos, len, op)
            }
            fn end(&self, pos: u64, len: u64, done: u64, op: IomapOp, extent: &Extent) -> Result<()> {
                (**self).end(pos, len, done, op, extent)
            }
            fn end_io(&self, pos: u64, written: u64, flags: EndIoFlags) -> Result<()> {
                (**self).end_io(pos, written, flags)
            }
        }
    )*};
}

forward_iomap!(&T, alloc::boxed::Box<T>, alloc::sync::Arc<T>);
