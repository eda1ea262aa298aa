//! Direct I/O: the one I/O contract every backend implements
//! ([`DirectIo`], the kernel's `->direct_IO`), alignment rules
//! ([`DioAlign`], statx `STATX_DIOALIGN`), dirty tracking after reads into
//! user-backed memory ([`DirtyTracker`], [`DirtyBitmap`]) and the owned
//! request a backend completes asynchronously ([`AsyncIo`]).
//!
//! Linux reference: `fs/iomap/direct-io.c` (`iomap_dio_rw`,
//! `IOMAP_DIO_DIRTY`, `-EIOCBQUEUED`, `ki_complete`), `fs/direct-io.c`
//! (`should_dirty`), `fs/read_write.c` (`rw_verify_area`), `block/bio.c`
//! (`bio_set_pages_dirty`, `bio_split`, `bio_chain`),
//! `include/uapi/linux/stat.h` (`stx_dio_mem_align`, `stx_dio_offset_align`).
//!
//! # One contract
//!
//! | what the caller holds | kiocb | what happens |
//! |---|---|---|
//! | a borrowed iterator ([`IovIter`] of any kind, [`AnyIter`]) | sync | [`DirectIo::direct_io`] transfers, advances the iterator and `kiocb.pos`, returns [`Submitted::Done`]: zero-copy, no allocation |
//! | a borrowed iterator | async | the same transfer, then the completion runs before the call returns ([`Submitted::Queued`]): a borrowed iterator cannot outlive the call |
//! | an owned iterator ([`OwnedIter`](crate::buf::OwnedIter)) in the kiocb | sync | [`DirectIo::submit`] transfers through the buffer, which stays in the kiocb, advanced ([`Kiocb::buf`]) |
//! | an owned iterator in the kiocb | async | [`DirectIo::submit`] *queues* it ([`Submitted::Queued`]) where the backend can overlap ([`AsyncMode::Queued`]: io_uring; the RAM backend when it defers); the completion runs exactly once, later, with the buffer |
//!
//! The same rules hold on every backend, sync or async, in this order,
//! before any I/O: the position (`EINVAL` when the request reaches past
//! `i64::MAX`, `rw_verify_area`), the `RWF_*` twins of the kiocb's flags
//! against [`DirectIo::caps`] (`EOPNOTSUPP`), an empty request (0 bytes,
//! nothing submitted), the alignment ([`DioAlign::check`], `EINVAL`). A
//! request of more than [`DirectIo::max_segs`] segments is split into
//! transfers of at most that many (sync: one after another, stopping at a
//! short one; async: all in flight, merged as if sequential). An error
//! before anything was queued leaves an async kiocb's completion, and its
//! buffer, in the kiocb (the [`kiocb`](crate::kiocb) contract).
//!
//! # Implementing a backend
//!
//! A backend implements [`DirectIo::dio_align`], [`DirectIo::transfer`]
//! (one raw vectored read or write of memory borrowed for the call) and,
//! to overlap asynchronous I/O, [`DirectIo::start`] (take an [`AsyncIo`],
//! complete it later) with [`DirectIo::drive`] (deliver completions). The
//! rest is provided. [`DirectIo::read_iter`] and [`DirectIo::write_iter`]
//! are the hooks a layer above a device overrides (a filesystem zero-fills
//! holes in a read's destination there).
//!
//! # Dispatch
//!
//! `DirectIo` is object-safe: a VFS-like caller holds `Box<dyn DirectIo>`
//! or `Arc<dyn DirectIo>` and calls [`DirectIo::direct_io`] with any
//! iterator kind, and [`DirectIo::submit`] with any owned iterator, on it
//! (`DirectIo` is implemented for `Box<T>`, `Arc<T>` and `&T`). Those two
//! are generic, so they need a sized receiver: on a bare `&dyn DirectIo`,
//! call them through a reference to it, `(&target).submit(&mut kiocb)`.
//!
//! ```
//! use iov_iter::backend::mem::MemDevice;
//! use iov_iter::dio::DirectIo;
//! use iov_iter::kiocb::{Kiocb, Submitted};
//! use iov_iter::{AnyIter, Dest, IoSegMut, IovIter, Kvec, Source, Ubuf};
//!
//! // Vec memory is byte-aligned: a device that asks 512-byte lengths only.
//! let align = iov_iter::dio::DioAlign::new(1, 512)?;
//! let targets: Vec<Box<dyn DirectIo>> = vec![Box::new(MemDevice::new(4096).with_align(align))];
//! let data = vec![0x5au8; 512];
//! let mut src = IovIter::<Source, Ubuf>::new(&data);
//! assert_eq!(targets[0].direct_io(&mut Kiocb::new_sync(0), &mut src)?, Submitted::Done(512));
//!
//! let mut back = vec![0u8; 512];
//! let mut segs = [IoSegMut::new(&mut back)];
//! let mut dst = AnyIter::from(IovIter::<Dest, Kvec>::new(&mut segs));
//! assert_eq!(targets[0].direct_io(&mut Kiocb::new_sync(0), &mut dst)?, Submitted::Done(512));
//! assert_eq!(dst.count(), 0);
//! drop(dst);
//! assert_eq!(back, data);
//! # Ok::<(), iov_iter::Error>(())
//! ```

mod async_io;
mod dirty;
mod rw;

#[cfg(feature = "std")]
use core::future::Future;

pub use async_io::AsyncIo;
pub(crate) use async_io::split;
pub use dirty::{DirtyBitmap, DirtyTracker, NoDirtyTracking};
pub use rw::{DioBuf, DioIter};

use crate::any::AnyIter;
use crate::dir::{Dest, Direction, Source};
use crate::error::{Error, Misalignment, Result};
use crate::import::UIO_MAXIOV;
use crate::iter::IovIter;
use crate::kiocb::{FileCaps, IocbFlags, Kiocb, RwType, RwfFlags, Submitted};
use crate::seg::{Kind, UserIovec};

/// Whether a direct read through an iterator of kind `K` in direction `D`
/// must dirty the pages it lands in: user-backed memory ([`Iovec`](crate::Iovec),
/// [`Ubuf`](crate::Ubuf)) and a destination. Never for [`Bvec`](crate::Bvec)
/// or [`Kvec`](crate::Kvec), never for a write. The kernel's
/// `user_backed_iter(iter) && iov_iter_rw(iter) == READ`, decided at compile
/// time.
///
/// # Examples
///
/// ```
/// use iov_iter::dio::should_dirty;
/// use iov_iter::{Bvec, Dest, Iovec, Kvec, Source, Ubuf};
/// const { assert!(should_dirty::<Dest, Iovec>()) };
/// const { assert!(should_dirty::<Dest, Ubuf>()) };
/// const { assert!(!should_dirty::<Dest, Bvec>()) };
/// const { assert!(!should_dirty::<Dest, Kvec>()) };
/// const { assert!(!should_dirty::<Source, Iovec>()) };
/// ```
#[doc(alias = "IOMAP_DIO_DIRTY")]
pub const fn should_dirty<D: Direction, K: Kind>() -> bool {
    should_dirty_raw(D::IS_SOURCE, K::USER_BACKED)
}

/// [`should_dirty`] from the direction and kind as values (for a
/// type-erased [`AnyIter`]).
const fn should_dirty_raw(is_source: bool, user_backed: bool) -> bool {
    user_backed && !is_source
}

/// Direct-I/O alignment, as `statx(STATX_DIOALIGN | STATX_DIO_READ_ALIGN)`
/// reports it: memory alignment of each segment's address, and alignment
/// of the file offset and of each segment's (and the total) length, which
/// may be smaller for reads (Linux 6.14).
///
/// # Examples
///
/// ```
/// use iov_iter::dio::DioAlign;
/// use iov_iter::kiocb::RwType;
/// // A file whose writes need 4 KiB but whose reads take 512-byte offsets.
/// let a = DioAlign::new(512, 4096)?.with_read_offset(512)?;
/// assert_eq!((a.offset_for(RwType::Read), a.offset_for(RwType::Write)), (512, 4096));
/// assert!(DioAlign::new(512, 512)?.with_read_offset(4096).is_err());
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[doc(alias = "STATX_DIOALIGN")]
#[doc(alias = "STATX_DIO_READ_ALIGN")]
#[doc(alias = "stx_dio_mem_align")]
#[doc(alias = "stx_dio_offset_align")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DioAlign {
    /// `stx_dio_mem_align`: required alignment of buffer addresses.
    pub mem: u32,
    /// `stx_dio_offset_align`: required alignment of file offsets and of
    /// segment and total lengths.
    pub offset: u32,
    /// `stx_dio_read_offset_align`: the same for reads, when smaller than
    /// [`DioAlign::offset`]; 0 when reads have the general rule.
    #[doc(alias = "stx_dio_read_offset_align")]
    pub read_offset: u32,
}

impl DioAlign {
    /// An alignment pair; both must be powers of two (EINVAL otherwise).
    /// Reads follow the same offset alignment.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] (EINVAL) when `mem` or `offset` is not a
    /// power of two.
    ///
    /// ```
    /// use iov_iter::dio::DioAlign;
    /// use iov_iter::Errno;
    /// let a = DioAlign::new(512, 4096)?;
    /// assert_eq!((a.mem, a.offset, a.read_offset), (512, 4096, 0));
    /// assert_eq!(DioAlign::new(512, 1000).unwrap_err().errno(), Errno::EINVAL);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn new(mem: u32, offset: u32) -> Result<DioAlign> {
        if !mem.is_power_of_two() || !offset.is_power_of_two() {
            return Err(Error::InvalidArgument(
                "DIO alignment must be a power of two",
            ));
        }
        Ok(DioAlign {
            mem,
            offset,
            read_offset: 0,
        })
    }

    /// The same, with a smaller offset alignment for reads
    /// (`stx_dio_read_offset_align`); 0 restores the general rule.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] (EINVAL) for a value that is neither 0
    /// nor a power of two at most [`DioAlign::offset`] (the kernel's
    /// promise for the field).
    ///
    /// ```
    /// use iov_iter::dio::DioAlign;
    /// use iov_iter::Errno;
    /// let a = DioAlign::new(512, 4096)?.with_read_offset(512)?;
    /// assert_eq!(a.read_offset, 512);
    /// assert_eq!(a.with_read_offset(0)?, DioAlign::new(512, 4096)?);
    /// assert_eq!(a.with_read_offset(8192).unwrap_err().errno(), Errno::EINVAL); // above `offset`
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn with_read_offset(mut self, read_offset: u32) -> Result<DioAlign> {
        if read_offset != 0 && (!read_offset.is_power_of_two() || read_offset > self.offset) {
            return Err(Error::InvalidArgument(
                "DIO read offset alignment must be 0 or a power of two at most the offset alignment",
            ));
        }
        self.read_offset = read_offset;
        Ok(self)
    }

    /// The offset (and length) alignment in force for a read or a write.
    ///
    /// ```
    /// use iov_iter::dio::DioAlign;
    /// use iov_iter::kiocb::RwType;
    /// let plain = DioAlign::new(512, 4096)?;
    /// assert_eq!(plain.offset_for(RwType::Read), 4096);
    /// let a = plain.with_read_offset(512)?;
    /// assert_eq!((a.offset_for(RwType::Read), a.offset_for(RwType::Write)), (512, 4096));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn offset_for(&self, rw: RwType) -> u32 {
        match rw {
            RwType::Read if self.read_offset != 0 => self.read_offset,
            _ => self.offset,
        }
    }

    /// Checks a request before any I/O: the file position, the total length,
    /// and each remaining chunk's address (memory alignment) and length
    /// (offset alignment). Says which part is misaligned.
    ///
    /// # Errors
    ///
    /// [`Error::Misaligned`] (EINVAL). [`Error::InvalidArgument`] (EINVAL)
    /// when `self` (built from its public fields) is not a pair of powers of
    /// two.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::dio::DioAlign;
    /// use iov_iter::{Error, IovIter, Misalignment, Page, Source, Ubuf};
    /// let a = DioAlign::new(512, 512)?;
    /// let page = Page::new(); // page-aligned memory
    /// assert!(a.check(4096, &IovIter::<Source, Ubuf>::new(page.as_bytes())).is_ok());
    /// let odd = IovIter::<Source, Ubuf>::new(&page.as_bytes()[1..513]);
    /// let err = a.check(0, &odd).unwrap_err();
    /// assert!(matches!(err, Error::Misaligned { what: Misalignment::SegmentAddress { index: 0 }, .. }));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn check<D: Direction, K: Kind>(&self, pos: u64, iter: &IovIter<'_, D, K>) -> Result<()> {
        self.check_chunks(rw::rw_of::<D>(), pos, iter.count(), iter.raw_chunks())
    }

    /// [`DioAlign::check`] over `count` bytes of raw chunks of a read or a
    /// write.
    pub(crate) fn check_chunks(
        &self,
        rw: RwType,
        pos: u64,
        count: usize,
        chunks: impl Iterator<Item = (core::ptr::NonNull<u8>, usize)>,
    ) -> Result<()> {
        let offset = self.offset_for(rw);
        if !self.mem.is_power_of_two() || !offset.is_power_of_two() {
            return Err(Error::InvalidArgument(
                "DIO alignment must be a power of two",
            ));
        }
        let err = |what| Error::Misaligned {
            what,
            mem_align: self.mem,
            offset_align: offset,
        };
        let (mem_mask, off_mask) = (self.mem as usize - 1, offset as usize - 1);
        if pos & off_mask as u64 != 0 {
            return Err(err(Misalignment::FileOffset));
        }
        if count & off_mask != 0 {
            return Err(err(Misalignment::TotalLength));
        }
        for (index, (p, len)) in chunks.enumerate() {
            if p.as_ptr() as usize & mem_mask != 0 {
                return Err(err(Misalignment::SegmentAddress { index }));
            }
            if len & off_mask != 0 {
                return Err(err(Misalignment::SegmentLength { index }));
            }
        }
        Ok(())
    }
}

/// How a target completes asynchronous I/O ([`DirectIo::async_mode`]).
///
/// # Examples
///
/// ```
/// use iov_iter::backend::mem::{MemDevice, PendingOrder};
/// use iov_iter::dio::{AsyncMode, DirectIo};
/// use iov_iter::kiocb::Kiocb;
/// use iov_iter::{buf::OwnedIter, Source};
///
/// let dev = MemDevice::new(4096).with_align(iov_iter::dio::DioAlign::new(1, 512)?);
/// for (mode, order) in [(AsyncMode::Inline, None), (AsyncMode::Queued, Some(PendingOrder::Fifo))] {
///     dev.defer_completions(order);
///     assert_eq!(dev.async_mode(), mode);
///     let (mut kiocb, fut) = Kiocb::new_async_with(0, OwnedIter::<Source, _>::new(vec![0u8; 512]));
///     assert!(dev.submit(&mut kiocb)?.is_queued());
///     // Inline: done before `submit` returned; queued: once driven.
///     assert_eq!(fut.is_complete(), mode == AsyncMode::Inline);
///     dev.complete_pending(usize::MAX);
/// }
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AsyncMode {
    /// Every async request completes before [`DirectIo::submit`] returns
    /// (the `O_DIRECT` file backend: `preadv2` / `pwritev2` block).
    Inline,
    /// Async requests are in flight when [`DirectIo::submit`] returns and
    /// complete later, when the target is driven ([`DirectIo::drive`]):
    /// io_uring, or the RAM backend deferring completions.
    Queued,
}

/// The kernel's `->direct_IO`: the one I/O contract of every backend (see
/// the [module documentation](self) for the rules).
///
/// Callers use [`DirectIo::direct_io`] (a borrowed iterator) and
/// [`DirectIo::submit`] (an owned iterator inside the kiocb). Backends
/// implement [`DirectIo::dio_align`] and [`DirectIo::transfer`], and to
/// overlap I/O [`DirectIo::start`] and [`DirectIo::drive`].
///
/// # Examples
///
/// Sixteen asynchronous reads in flight at once on a RAM device that
/// defers its completions, delivered in reverse order, each handing its
/// buffer back:
///
/// ```
/// use iov_iter::backend::mem::{MemDevice, PendingOrder};
/// use iov_iter::buf::{AlignedBuf, OwnedIter};
/// use iov_iter::dio::DirectIo;
/// use iov_iter::kiocb::Kiocb;
/// use iov_iter::Dest;
///
/// let dev = MemDevice::new(16 * 512);
/// dev.write_at(0, &(0..16 * 512).map(|i| (i / 512) as u8).collect::<Vec<_>>());
/// dev.defer_completions(Some(PendingOrder::Reverse));
/// let mut futs = Vec::new();
/// for i in 0..16u64 {
///     let buf = OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(512, 512)?);
///     let (mut kiocb, fut) = Kiocb::new_async_with(i * 512, buf);
///     assert!(dev.submit(&mut kiocb)?.is_queued());
///     futs.push(fut);
/// }
/// assert_eq!(dev.pending(), 16); // all in flight
/// for (i, fut) in futs.into_iter().enumerate() {
///     let done = dev.block_on(fut); // drives the device
///     assert_eq!(done.result, Ok(512));
///     assert!(done.buf.into_inner().iter().all(|&b| b == i as u8));
/// }
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[doc(alias = "direct_IO")]
#[doc(alias = "iomap_dio_rw")]
pub trait DirectIo: Send + Sync {
    /// The target's alignment rules.
    ///
    /// ```
    /// use iov_iter::backend::mem::MemDevice;
    /// use iov_iter::dio::{DioAlign, DirectIo};
    /// assert_eq!(MemDevice::new(4096).dio_align(), DioAlign::new(512, 512)?);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    fn dio_align(&self) -> DioAlign;

    /// What the target supports (for `RWF_*` validation). Default: nothing
    /// optional.
    ///
    /// ```
    /// use iov_iter::backend::mem::MemDevice;
    /// use iov_iter::dio::DirectIo;
    /// assert!(MemDevice::new(4096).caps().nowait); // a block device has FMODE_NOWAIT
    /// ```
    fn caps(&self) -> FileCaps {
        FileCaps::new()
    }

    /// Most segments one transfer takes ([`UIO_MAXIOV`] by default);
    /// longer requests are split.
    ///
    /// ```
    /// use iov_iter::backend::mem::MemDevice;
    /// use iov_iter::dio::DirectIo;
    /// assert_eq!(MemDevice::new(4096).max_segs(), iov_iter::UIO_MAXIOV);
    /// assert_eq!(MemDevice::new(4096).with_max_segs(4).max_segs(), 4);
    /// ```
    fn max_segs(&self) -> usize {
        UIO_MAXIOV
    }

    /// The target's size in bytes, where it is fixed (a block device, the
    /// RAM backend); `None` (the default) where it is not known or grows
    /// (a regular file). A layer mapping requests onto the target
    /// ([`IomapDio`](crate::iomap::IomapDio)) refuses extents past it.
    ///
    /// ```
    /// use iov_iter::backend::mem::MemDevice;
    /// use iov_iter::dio::DirectIo;
    /// assert_eq!(MemDevice::new(4096).capacity(), Some(4096));
    /// ```
    #[doc(alias = "bdev_nr_bytes")]
    fn capacity(&self) -> Option<u64> {
        None
    }

    /// How async requests complete. Default [`AsyncMode::Inline`] (the
    /// default [`DirectIo::start`]).
    ///
    /// ```
    /// use iov_iter::backend::mem::{MemDevice, PendingOrder};
    /// use iov_iter::dio::{AsyncMode, DirectIo};
    /// let dev = MemDevice::new(4096);
    /// assert_eq!(dev.async_mode(), AsyncMode::Inline);
    /// dev.defer_completions(Some(PendingOrder::Fifo));
    /// assert_eq!(dev.async_mode(), AsyncMode::Queued);
    /// ```
    fn async_mode(&self) -> AsyncMode {
        AsyncMode::Inline
    }

    /// One raw vectored transfer between `pos` and the memory of `iov`
    /// (`preadv2` / `pwritev2`), validated already (position, flags,
    /// alignment, at most [`DirectIo::max_segs`] entries).
    ///
    /// Return the bytes transferred; a short count means end of file (read)
    /// or no more space (write) and is not retried. Retry `EINTR` yourself.
    /// Map `EAGAIN` under `RWF_NOWAIT` to [`Error::WouldBlock`].
    ///
    /// # Safety
    ///
    /// Each `iov` entry describes memory valid for reads (a [`RwType::Write`])
    /// or for writes (a [`RwType::Read`]) for the duration of the call, not
    /// accessed by anything else meanwhile (for a [`RwType::Read`], not
    /// written by anything else nor overlapping another entry).
    ///
    /// # Examples
    ///
    /// A backend of its own: `/dev/zero` as a 1 MiB block device.
    ///
    /// ```
    /// use iov_iter::dio::{DioAlign, DirectIo};
    /// use iov_iter::kiocb::{Kiocb, RwType, RwfFlags, Submitted};
    /// use iov_iter::{Dest, IovIter, Result, Ubuf, UserIovec};
    ///
    /// struct Zero;
    /// impl DirectIo for Zero {
    ///     fn dio_align(&self) -> DioAlign {
    ///         DioAlign::new(1, 1).unwrap()
    ///     }
    ///     unsafe fn transfer(&self, rw: RwType, pos: u64, iov: &[UserIovec], _: RwfFlags) -> Result<usize> {
    ///         let mut left = (1u64 << 20).saturating_sub(pos) as usize; // short at the end
    ///         let mut done = 0;
    ///         for v in iov {
    ///             let n = v.len.min(left);
    ///             if rw == RwType::Read {
    ///                 // SAFETY: a read's iovecs are valid for writes of `v.len` bytes.
    ///                 unsafe { v.base.write_bytes(0, n) };
    ///             }
    ///             (done, left) = (done + n, left - n);
    ///         }
    ///         Ok(done)
    ///     }
    /// }
    ///
    /// let mut buf = [0xffu8; 100];
    /// let mut dst = IovIter::<Dest, Ubuf>::new(&mut buf);
    /// assert_eq!(Zero.direct_io(&mut Kiocb::new_sync((1 << 20) - 60), &mut dst)?, Submitted::Done(60));
    /// drop(dst);
    /// assert!(buf[..60].iter().all(|&b| b == 0) && buf[60..].iter().all(|&b| b == 0xff));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "preadv2")]
    #[doc(alias = "pwritev2")]
    unsafe fn transfer(
        &self,
        rw: RwType,
        pos: u64,
        iov: &[UserIovec],
        flags: RwfFlags,
    ) -> Result<usize>;

    /// Starts an asynchronous request over owned memory, validated already
    /// (at most [`DirectIo::max_segs`] segments), and completes it exactly
    /// once ([`AsyncIo::complete`]), now or later. The default transfers it
    /// now through [`DirectIo::transfer`] ([`AsyncMode::Inline`]).
    ///
    /// # Examples
    ///
    /// A backend that keeps requests until it is driven, then accepts every
    /// write whole:
    ///
    /// ```
    /// use std::sync::Mutex;
    /// use iov_iter::buf::OwnedIter;
    /// use iov_iter::dio::{AsyncIo, AsyncMode, DioAlign, DirectIo};
    /// use iov_iter::kiocb::{Kiocb, RwType, RwfFlags};
    /// use iov_iter::{Result, Source, UserIovec};
    ///
    /// struct Later(Mutex<Vec<AsyncIo>>);
    /// impl DirectIo for Later {
    ///     fn dio_align(&self) -> DioAlign {
    ///         DioAlign::new(1, 1).unwrap()
    ///     }
    ///     unsafe fn transfer(&self, _: RwType, _: u64, iov: &[UserIovec], _: RwfFlags) -> Result<usize> {
    ///         Ok(iov.iter().map(|v| v.len).sum())
    ///     }
    ///     fn async_mode(&self) -> AsyncMode {
    ///         AsyncMode::Queued
    ///     }
    ///     fn start(&self, io: AsyncIo) {
    ///         self.0.lock().unwrap().push(io); // completes later, in `drive`
    ///     }
    ///     fn drive(&self, _min_complete: usize) -> Result<usize> {
    ///         let ios = std::mem::take(&mut *self.0.lock().unwrap());
    ///         let n = ios.len();
    ///         for io in ios {
    ///             let len = io.len();
    ///             io.complete(Ok(len));
    ///         }
    ///         Ok(n)
    ///     }
    /// }
    ///
    /// let dev = Later(Mutex::default());
    /// let (mut kiocb, mut fut) = Kiocb::new_async_with(0, OwnedIter::<Source, _>::new(vec![1u8; 100]));
    /// assert!(dev.submit(&mut kiocb)?.is_queued());
    /// assert!(!fut.is_complete());
    /// assert_eq!(dev.drive(1)?, 1);
    /// assert_eq!(fut.try_take().map(|done| done.result), Some(Ok(100)));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "submit_bio")]
    fn start(&self, io: AsyncIo) {
        // SAFETY: the request owns its memory until it completes, and its
        // iovecs describe that memory as `transfer` requires.
        let res = unsafe { self.transfer(io.rw(), io.pos(), io.iovecs(), io.flags()) };
        io.complete(res);
    }

    /// Delivers completions of requests in flight: blocks until at least
    /// `min_complete` were delivered or none is in flight, and returns how
    /// many were. Default: nothing is ever in flight, `Ok(0)`.
    ///
    /// # Errors
    ///
    /// The backend's error while waiting; nothing in flight is lost.
    ///
    /// ```
    /// use iov_iter::backend::mem::{MemDevice, PendingOrder};
    /// use iov_iter::buf::{AlignedBuf, OwnedIter};
    /// use iov_iter::dio::DirectIo;
    /// use iov_iter::kiocb::Kiocb;
    /// use iov_iter::Source;
    ///
    /// let dev = MemDevice::new(4096);
    /// dev.defer_completions(Some(PendingOrder::Fifo));
    /// let (mut kiocb, fut) =
    ///     Kiocb::new_async_with(0, OwnedIter::<Source, _>::new(AlignedBuf::zeroed(512, 512)?));
    /// assert!(dev.submit(&mut kiocb)?.is_queued());
    /// assert!(!fut.is_complete());
    /// assert_eq!(dev.drive(1)?, 1);
    /// assert!(fut.is_complete());
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    fn drive(&self, min_complete: usize) -> Result<usize> {
        let _ = min_complete;
        Ok(0)
    }

    /// The read half of [`DirectIo::direct_io`], object-safe: the
    /// generic path (validate, split, transfer, dirty, advance, complete)
    /// over any destination iterator. A layer above a device overrides it
    /// (a filesystem zero-fills holes with [`AnyIter::zero`]).
    ///
    /// # Examples
    ///
    /// A layer that counts the bytes read through it, and leaves the I/O
    /// to the device:
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use iov_iter::backend::mem::MemDevice;
    /// use iov_iter::dio::{DioAlign, DirectIo, DirtyTracker};
    /// use iov_iter::kiocb::{Kiocb, RwType, RwfFlags, Submitted};
    /// use iov_iter::{AnyIter, Dest, IovIter, Page, Result, Ubuf, UserIovec};
    ///
    /// struct Counted<D>(D, AtomicUsize);
    /// impl<D: DirectIo> DirectIo for Counted<D> {
    ///     fn dio_align(&self) -> DioAlign {
    ///         self.0.dio_align()
    ///     }
    ///     unsafe fn transfer(&self, rw: RwType, pos: u64, iov: &[UserIovec], f: RwfFlags) -> Result<usize> {
    ///         // SAFETY: forwarded with the caller's promises.
    ///         unsafe { self.0.transfer(rw, pos, iov, f) }
    ///     }
    ///     fn read_iter(&self, kiocb: &mut Kiocb, iter: &mut AnyIter<'_, Dest>, dirty: &dyn DirtyTracker) -> Result<Submitted> {
    ///         let before = iter.count();
    ///         let res = self.0.read_iter(kiocb, iter, dirty);
    ///         self.1.fetch_add(before - iter.count(), Ordering::Relaxed);
    ///         res
    ///     }
    /// }
    ///
    /// let dev = Counted(MemDevice::new(8192), AtomicUsize::new(0));
    /// let mut page = Page::new();
    /// let mut dst = IovIter::<Dest, Ubuf>::new(page.as_mut_bytes());
    /// assert_eq!(dev.direct_io(&mut Kiocb::new_sync(4096), &mut dst)?, Submitted::Done(4096));
    /// assert_eq!(dev.1.load(Ordering::Relaxed), 4096);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    fn read_iter(
        &self,
        kiocb: &mut Kiocb,
        iter: &mut AnyIter<'_, Dest>,
        dirty: &dyn DirtyTracker,
    ) -> Result<Submitted> {
        rw::borrowed(self, kiocb, iter, dirty)
    }

    /// The write half of [`DirectIo::direct_io`], object-safe.
    ///
    /// ```
    /// use iov_iter::backend::mem::MemDevice;
    /// use iov_iter::dio::DirectIo;
    /// use iov_iter::kiocb::{Kiocb, Submitted};
    /// use iov_iter::{AnyIter, IovIter, Page, Source, Ubuf};
    /// let dev = MemDevice::new(8192);
    /// let page = Page::new();
    /// let mut it = AnyIter::from(IovIter::<Source, Ubuf>::new(page.as_bytes()));
    /// assert_eq!(dev.write_iter(&mut Kiocb::new_sync(4096), &mut it)?, Submitted::Done(4096));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    fn write_iter(&self, kiocb: &mut Kiocb, iter: &mut AnyIter<'_, Source>) -> Result<Submitted> {
        rw::borrowed(self, kiocb, iter, &NoDirtyTracking)
    }

    /// Direct I/O on a borrowed iterator of any kind ([`IovIter`] or
    /// [`AnyIter`]) at `kiocb.pos`: a read into a [`Dest`], a write from a
    /// [`Source`]. See the [module documentation](self).
    ///
    /// # Errors
    ///
    /// `EINVAL` ([`Error::InvalidArgument`]) for a position past
    /// `i64::MAX` or an async kiocb already queued; `EOPNOTSUPP` for flags
    /// the target lacks; [`Error::Misaligned`] (`EINVAL`); the backend's
    /// error when nothing was transferred (a sync kiocb);
    /// [`Error::WouldBlock`] for `NOWAIT` I/O that would block.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::backend::mem::MemDevice;
    /// use iov_iter::dio::DirectIo;
    /// use iov_iter::kiocb::{Kiocb, Submitted};
    /// use iov_iter::{Bvec, BvecSegMut, Dest, IovIter, Page};
    ///
    /// let dev = MemDevice::new(8192);
    /// dev.fill(7);
    /// let mut page = Page::new();
    /// let mut segs = [BvecSegMut::full(&mut page)];
    /// let mut it = IovIter::<Dest, Bvec>::new(&mut segs);
    /// let mut kiocb = Kiocb::new_sync(4096);
    /// assert_eq!(dev.direct_io(&mut kiocb, &mut it)?, Submitted::Done(4096));
    /// assert_eq!((it.count(), kiocb.pos), (0, 8192));
    /// drop(it);
    /// assert!(page.as_bytes().iter().all(|&b| b == 7));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    fn direct_io<I: DioIter + ?Sized>(&self, kiocb: &mut Kiocb, iter: &mut I) -> Result<Submitted>
    where
        Self: Sized,
    {
        iter.direct_io(self, kiocb, &NoDirtyTracking)
    }

    /// [`DirectIo::direct_io`] that reports the destination pages a read
    /// dirtied to `dirty` (only for [`should_dirty`] iterators).
    ///
    /// # Errors
    ///
    /// As [`DirectIo::direct_io`].
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::backend::mem::MemDevice;
    /// use iov_iter::dio::{DirectIo, DirtyBitmap};
    /// use iov_iter::kiocb::{Kiocb, Submitted};
    /// use iov_iter::{Bvec, BvecSegMut, Dest, IovIter, Page, Ubuf};
    ///
    /// let dev = MemDevice::new(8192);
    /// let mut page = Page::new();
    /// let log = DirtyBitmap::for_slice(page.as_bytes());
    /// // User-backed memory (a `Ubuf`): the page is logged dirty.
    /// let mut dst = IovIter::<Dest, Ubuf>::new(page.as_mut_bytes());
    /// assert_eq!(dev.direct_io_tracked(&mut Kiocb::new_sync(0), &mut dst, &log)?, Submitted::Done(4096));
    /// assert_eq!(log.take_dirty(), [0]);
    /// // Kernel pages (a `Bvec`) are not user-backed: nothing is logged.
    /// let mut segs = [BvecSegMut::full(&mut page)];
    /// let mut dst = IovIter::<Dest, Bvec>::new(&mut segs);
    /// assert_eq!(dev.direct_io_tracked(&mut Kiocb::new_sync(0), &mut dst, &log)?, Submitted::Done(4096));
    /// assert!(log.take_dirty().is_empty());
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "bio_set_pages_dirty")]
    fn direct_io_tracked<I: DioIter + ?Sized>(
        &self,
        kiocb: &mut Kiocb,
        iter: &mut I,
        dirty: &dyn DirtyTracker,
    ) -> Result<Submitted>
    where
        Self: Sized,
    {
        iter.direct_io(self, kiocb, dirty)
    }

    /// Direct I/O on the owned iterator the kiocb carries
    /// ([`Kiocb::new_async_with`], [`Kiocb::with_callback`],
    /// [`Kiocb::new_sync_with`]): a read into an
    /// [`OwnedIter<Dest, _>`](crate::buf::OwnedIter), a write from an
    /// [`OwnedIter<Source, _>`](crate::buf::OwnedIter).
    ///
    /// An async kiocb is queued ([`Submitted::Queued`]): its completion
    /// runs exactly once with the result and the buffer, advanced by what
    /// was transferred, when the target completes it (at once on an
    /// [`AsyncMode::Inline`] target). A sync kiocb transfers now and keeps
    /// the advanced buffer ([`Submitted::Done`]).
    ///
    /// # Errors
    ///
    /// As [`DirectIo::direct_io`], before anything is queued: the buffer
    /// and completion stay in the kiocb.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::backend::mem::MemDevice;
    /// use iov_iter::buf::{AlignedBuf, OwnedIter};
    /// use iov_iter::dio::DirectIo;
    /// use iov_iter::kiocb::{Kiocb, Submitted};
    /// use iov_iter::{Dest, Error};
    ///
    /// let dev = MemDevice::new(8192);
    /// dev.fill(3);
    /// // A sync kiocb: done now, the buffer stays in the kiocb, advanced.
    /// let mut kiocb = Kiocb::new_sync_with(0, OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(512, 4096)?));
    /// assert_eq!(dev.submit(&mut kiocb)?, Submitted::Done(4096));
    /// assert_eq!((kiocb.pos, kiocb.buf().map(|b| b.count())), (4096, Some(0)));
    /// // A misaligned async request fails before anything is queued.
    /// let buf = OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(512, 4096)?);
    /// let (mut kiocb, _fut) = Kiocb::new_async_with(100, buf);
    /// assert!(matches!(dev.submit(&mut kiocb), Err(Error::Misaligned { .. })));
    /// assert!(kiocb.buf().is_some() && kiocb.has_completion());
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "EIOCBQUEUED")]
    fn submit<I: DioBuf>(&self, kiocb: &mut Kiocb<I>) -> Result<Submitted>
    where
        Self: Sized,
    {
        rw::owned(kiocb, self)
    }

    /// Runs `fut` to completion on this thread, driving this target while
    /// it is pending ([`DirectIo::drive`]): a minimal executor for
    /// [`CompletionFuture`](crate::kiocb::CompletionFuture)s. Requires the
    /// `std` feature.
    ///
    /// ```
    /// use iov_iter::backend::mem::{MemDevice, PendingOrder};
    /// use iov_iter::buf::{AlignedBuf, OwnedIter};
    /// use iov_iter::dio::DirectIo;
    /// use iov_iter::kiocb::Kiocb;
    /// use iov_iter::Dest;
    ///
    /// let dev = MemDevice::new(4096);
    /// dev.defer_completions(Some(PendingOrder::Fifo));
    /// let (mut kiocb, fut) =
    ///     Kiocb::new_async_with(0, OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(512, 512)?));
    /// assert!(dev.submit(&mut kiocb)?.is_queued());
    /// assert_eq!(dev.block_on(fut).result, Ok(512));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[cfg(feature = "std")]
    fn block_on<F: Future>(&self, fut: F) -> F::Output
    where
        Self: Sized,
    {
        crate::sync::drive_on(fut, || {
            if !matches!(self.drive(1), Ok(n) if n > 0) {
                std::thread::park_timeout(core::time::Duration::from_millis(1));
            }
        })
    }
}

macro_rules! forward_direct_io {
    ($($ty:ty),*) => {$(
        impl<T: DirectIo + ?Sized> DirectIo for $ty {
            fn dio_align(&self) -> DioAlign {
                (**self).dio_align()
            }
            fn caps(&self) -> FileCaps {
                (**self).caps()
            }
            fn max_segs(&self) -> usize {
                (**self).max_segs()
            }
            fn capacity(&self) -> Option<u64> {
                (**self).capacity()
            }
            fn async_mode(&self) -> AsyncMode {
                (**self).async_mode()
            }
            unsafe fn transfer(
                &self,
                rw: RwType,
                pos: u64,
                iov: &[UserIovec],
                flags: RwfFlags,
            ) -> Result<usize> {
                // SAFETY: forwarded with the caller's promises.
                unsafe { (**self).transfer(rw, pos, iov, flags) }
            }
            fn start(&self, io: AsyncIo) {
                (**self).start(io)
            }
            fn drive(&self, min_complete: usize) -> Result<usize> {
                (**self).drive(min_complete)
            }
            fn read_iter(
                &self,
                kiocb: &mut Kiocb,
                iter: &mut AnyIter<'_, Dest>,
                dirty: &dyn DirtyTracker,
            ) -> Result<Submitted> {
                (**self).read_iter(kiocb, iter, dirty)
            }
            fn write_iter(
                &self,
                kiocb: &mut Kiocb,
                iter: &mut AnyIter<'_, Source>,
            ) -> Result<Submitted> {
                (**self).write_iter(kiocb, iter)
            }
        }
    )*};
}

forward_direct_io!(&T, alloc::boxed::Box<T>, alloc::sync::Arc<T>);

/// The RWF flags a kiocb's IOCB flags carry to the syscall (also used by
/// the io_uring backend for the `rw_flags` of its SQEs).
pub(crate) fn rwf_of(flags: IocbFlags) -> RwfFlags {
    let mirrored = IocbFlags::HIPRI
        | IocbFlags::DSYNC
        | IocbFlags::SYNC
        | IocbFlags::NOWAIT
        | IocbFlags::APPEND
        | IocbFlags::ATOMIC
        | IocbFlags::DONTCACHE;
    RwfFlags::from_raw_bits((flags & mirrored).bits())
}
