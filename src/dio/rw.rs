//! The generic direct-I/O path (`iomap_dio_rw`): one validation, one split
//! rule, sync and async, for every backend.

use alloc::boxed::Box;
use alloc::vec::Vec;

use smallvec::SmallVec;

use super::async_io::{AsyncIo, Req, split};
use super::{DioAlign, DirectIo, DirtyTracker, rwf_of, should_dirty_raw};
use crate::any::{AnyIter, with_any};
use crate::buf::{IoBuf, IoBufMut, OwnedIter, SegArray};
use crate::dir::{Dest, Direction, Source};
use crate::error::{Error, Result};
use crate::iter::IovIter;
use crate::kiocb::{IocbFlags, Kiocb, RwType, RwfFlags, Submitted, check_caps};
use crate::page::{PAGE_SIZE, PageFrame};
use crate::seg::{IterType, Kind, UserIovec};

mod sealed {
    pub trait Sealed {}
}

impl<K: Kind> sealed::Sealed for IovIter<'_, Dest, K> {}
impl<K: Kind> sealed::Sealed for IovIter<'_, Source, K> {}
impl sealed::Sealed for AnyIter<'_, Dest> {}
impl sealed::Sealed for AnyIter<'_, Source> {}
impl<B> sealed::Sealed for OwnedIter<Source, B> {}
impl<B> sealed::Sealed for OwnedIter<Dest, B> {}

/// A borrowed iterator [`DirectIo::direct_io`] takes: an [`IovIter`] of
/// any kind or an [`AnyIter`], in either direction. Sealed.
///
/// # Examples
///
/// ```
/// use iov_iter::dio::{DioIter, DirectIo};
/// use iov_iter::kiocb::Kiocb;
/// use iov_iter::Result;
///
/// // Generic over every kind and direction.
/// fn at_zero(dev: &dyn DirectIo, iter: &mut impl DioIter) -> Result<()> {
///     // Through `&&dyn DirectIo`: `direct_io` is generic (see "Dispatch").
///     (&dev).direct_io(&mut Kiocb::new_sync(0), iter).map(drop)
/// }
///
/// let dev = iov_iter::backend::mem::MemDevice::new(4096);
/// let mut page = iov_iter::Page::new();
/// let mut segs = [iov_iter::BvecSegMut::full(&mut page)];
/// at_zero(&dev, &mut iov_iter::IovIter::<iov_iter::Dest, iov_iter::Bvec>::new(&mut segs))?;
/// # Ok::<(), iov_iter::Error>(())
/// ```
pub trait DioIter: sealed::Sealed {
    /// Runs the I/O on `target` (hidden: use [`DirectIo::direct_io`]).
    #[doc(hidden)]
    fn direct_io<T: DirectIo + ?Sized>(
        &mut self,
        target: &T,
        kiocb: &mut Kiocb,
        dirty: &dyn DirtyTracker,
    ) -> Result<Submitted>;
}

impl<K: Kind> DioIter for IovIter<'_, Dest, K> {
    fn direct_io<T: DirectIo + ?Sized>(
        &mut self,
        target: &T,
        kiocb: &mut Kiocb,
        dirty: &dyn DirtyTracker,
    ) -> Result<Submitted> {
        with_any(self, |it| target.read_iter(kiocb, it, dirty))
    }
}

impl<K: Kind> DioIter for IovIter<'_, Source, K> {
    fn direct_io<T: DirectIo + ?Sized>(
        &mut self,
        target: &T,
        kiocb: &mut Kiocb,
        _: &dyn DirtyTracker,
    ) -> Result<Submitted> {
        with_any(self, |it| target.write_iter(kiocb, it))
    }
}

impl DioIter for AnyIter<'_, Dest> {
    fn direct_io<T: DirectIo + ?Sized>(
        &mut self,
        target: &T,
        kiocb: &mut Kiocb,
        dirty: &dyn DirtyTracker,
    ) -> Result<Submitted> {
        target.read_iter(kiocb, self, dirty)
    }
}

impl DioIter for AnyIter<'_, Source> {
    fn direct_io<T: DirectIo + ?Sized>(
        &mut self,
        target: &T,
        kiocb: &mut Kiocb,
        _: &dyn DirtyTracker,
    ) -> Result<Submitted> {
        target.write_iter(kiocb, self)
    }
}

/// An owned iterator [`DirectIo::submit`] takes from the kiocb: an
/// [`OwnedIter<Source, B>`](OwnedIter) over an [`IoBuf`] (a write) or an
/// [`OwnedIter<Dest, B>`](OwnedIter) over an [`IoBufMut`] (a read).
/// Sealed.
///
/// # Examples
///
/// ```
/// use iov_iter::buf::OwnedIter;
/// use iov_iter::dio::{DioBuf, DirectIo};
/// use iov_iter::kiocb::Kiocb;
/// use iov_iter::Result;
///
/// // Queue any owned read or write, then drive the target until it is done.
/// fn run<I: DioBuf>(dev: &impl DirectIo, pos: u64, iter: I) -> Result<I> {
///     let (mut kiocb, fut) = Kiocb::new_async_with(pos, iter);
///     assert!(dev.submit(&mut kiocb)?.is_queued());
///     let done = dev.block_on(fut);
///     done.result.map(|_| done.buf)
/// }
///
/// let dev = iov_iter::backend::mem::MemDevice::new(4096)
///     .with_align(iov_iter::dio::DioAlign::new(1, 512)?);
/// let written = run(&dev, 0, OwnedIter::<iov_iter::Source, _>::new(vec![9u8; 512]))?;
/// assert_eq!(written.count(), 0);
/// let read = run(&dev, 0, OwnedIter::<iov_iter::Dest, _>::new(Vec::<u8>::with_capacity(512)))?;
/// assert_eq!(read.into_inner(), [9u8; 512]);
/// # Ok::<(), iov_iter::Error>(())
/// ```
pub trait DioBuf: sealed::Sealed + Send + Sized + 'static {
    /// Read or write.
    #[doc(hidden)]
    const RW: RwType;
    /// Bytes left.
    #[doc(hidden)]
    fn io_count(&self) -> usize;
    /// Alignment of what is left.
    #[doc(hidden)]
    fn check_align(&self, align: DioAlign, pos: u64) -> Result<()>;
    /// The chunks to submit, taken from the buffer where it is now.
    #[doc(hidden)]
    fn io_chunks(&mut self) -> SegArray;
    /// `n` bytes were transferred from the position.
    #[doc(hidden)]
    fn transferred(&mut self, n: usize);
    /// A sync transfer through the target's borrowed-iterator path.
    #[doc(hidden)]
    fn sync_io<T: DirectIo + ?Sized>(&mut self, target: &T, kiocb: &mut Kiocb)
    -> Result<Submitted>;
}

/// The methods both directions' `DioBuf` impls share.
macro_rules! owned_iter_io {
    () => {
        fn io_count(&self) -> usize {
            self.count()
        }
        fn check_align(&self, align: DioAlign, pos: u64) -> Result<()> {
            align.check(pos, &self.raw_iter())
        }
        fn io_chunks(&mut self) -> SegArray {
            let fresh = self.fresh_segs();
            self.chunks_of(&fresh)
        }
    };
}

impl<B: IoBuf> DioBuf for OwnedIter<Source, B> {
    const RW: RwType = RwType::Write;
    owned_iter_io!();
    fn transferred(&mut self, n: usize) {
        self.advance(n);
    }
    fn sync_io<T: DirectIo + ?Sized>(
        &mut self,
        target: &T,
        kiocb: &mut Kiocb,
    ) -> Result<Submitted> {
        self.with_iter(|it| with_any(it, |it| target.write_iter(kiocb, it)))
    }
}

impl<B: IoBufMut> DioBuf for OwnedIter<Dest, B> {
    const RW: RwType = RwType::Read;
    owned_iter_io!();
    fn transferred(&mut self, n: usize) {
        let start = self.consumed();
        self.landed(start, n);
        self.advance(n);
    }
    fn sync_io<T: DirectIo + ?Sized>(
        &mut self,
        target: &T,
        kiocb: &mut Kiocb,
    ) -> Result<Submitted> {
        // `read_iter` may hand `&mut [u8]` out: `with_iter` zeroes what is
        // not initialised first (async reads never do).
        self.with_iter(|it| {
            with_any(it, |it| {
                target.read_iter(kiocb, it, &super::NoDirtyTracking)
            })
        })
    }
}

/// `READ` for a destination, `WRITE` for a source.
pub(super) const fn rw_of<D: Direction>() -> RwType {
    if D::IS_SOURCE {
        RwType::Write
    } else {
        RwType::Read
    }
}

/// The kernel's `rw_verify_area` bounds: a position above `i64::MAX` is
/// negative as `loff_t`, and the end must not pass it either.
fn check_pos(pos: u64, len: usize) -> Result<()> {
    match pos.checked_add(len as u64) {
        Some(end) if end <= i64::MAX as u64 => Ok(()),
        _ => Err(Error::InvalidArgument(
            "file position beyond the largest loff_t",
        )),
    }
}

/// The checks every request passes before any I/O, in this order: the
/// position, the `RWF_*` twins of the kiocb's flags against the target's
/// capabilities. (Then an empty request is done, and alignment is
/// checked.) Returns the flags for the transfer.
fn validate<T: DirectIo + ?Sized>(
    target: &T,
    rw: RwType,
    pos: u64,
    count: usize,
    flags: IocbFlags,
) -> Result<RwfFlags> {
    check_pos(pos, count)?;
    let rwf = rwf_of(flags);
    check_caps(rwf, rw, &target.caps())?;
    Ok(rwf)
}

/// The borrowed-iterator path: validate, transfer (split at `max_segs`),
/// dirty, advance, complete a sync or async kiocb.
pub(super) fn borrowed<T: DirectIo + ?Sized, D: Direction>(
    target: &T,
    kiocb: &mut Kiocb,
    iter: &mut AnyIter<'_, D>,
    dirty: &dyn DirtyTracker,
) -> Result<Submitted> {
    let rw = rw_of::<D>();
    if !kiocb.is_sync() && !kiocb.has_completion() {
        return Err(Error::InvalidArgument("async kiocb already queued"));
    }
    let start = kiocb.pos;
    let rwf = validate(target, rw, start, iter.count(), kiocb.flags)?;
    if iter.count() != 0 {
        target
            .dio_align()
            .check_chunks(rw, start, iter.count(), iter.raw_chunks())?;
    }
    let result = transfer_iter(target, rw, start, rwf, iter, dirty);
    if kiocb.is_sync() {
        let n = result?;
        kiocb.advance_pos(n);
        return Ok(Submitted::Done(n));
    }
    if let Some(c) = kiocb.take_completion() {
        c.complete(start, result);
    }
    Ok(Submitted::Queued)
}

/// The owned-iterator path: a sync kiocb transfers through the
/// borrowed-iterator path and keeps its buffer; an async one is validated,
/// then queued as one [`AsyncIo`] (or several, split at `max_segs`).
pub(super) fn owned<I: DioBuf, T: DirectIo + ?Sized>(
    kiocb: &mut Kiocb<I>,
    target: &T,
) -> Result<Submitted> {
    if kiocb.is_sync() {
        let mut k = Kiocb::new_sync(kiocb.pos)
            .with_flags(kiocb.flags)
            .with_ioprio(kiocb.ioprio);
        let Some(buf) = kiocb.buf_mut() else {
            return Err(Error::InvalidArgument("sync kiocb without a buffer"));
        };
        let r = buf.sync_io(target, &mut k);
        kiocb.pos = k.pos;
        return r;
    }
    let (start, flags, ioprio) = (kiocb.pos, kiocb.flags, kiocb.ioprio);
    let Some(buf) = kiocb.buf() else {
        return Err(Error::InvalidArgument("async kiocb already queued"));
    };
    let count = buf.io_count();
    let rwf = validate(target, I::RW, start, count, flags)?;
    if count != 0 {
        buf.check_align(target.dio_align(), start)?;
    }
    let Some(mut completion) = kiocb.take_completion() else {
        return Err(Error::InvalidArgument("async kiocb already queued"));
    };
    if count == 0 {
        completion.complete(start, Ok(0));
        return Ok(Submitted::Queued);
    }
    let chunks = completion.buf_mut().io_chunks();
    let req: Box<dyn super::async_io::Erased> = Box::new(Req {
        completion,
        chunks,
        start,
    });
    let io = AsyncIo::new(req, I::RW, start, rwf, ioprio, count);
    // Every part is started even if starting one raises a panic (another
    // request's completion, delivered while making room): no part of this
    // request is cancelled by it.
    crate::sync::run_all(split(io, target.max_segs()), |part| target.start(part));
    Ok(Submitted::Queued)
}

/// Iovecs of one transfer that stay on the stack: a `struct swap_iocb`'s
/// 32 pages.
type IovBatch = SmallVec<[UserIovec; 32]>;

/// The transfer itself (validated): batches of at most `max_segs` chunks,
/// stopping at a short one; dirties and advances. The error only when
/// nothing was transferred.
fn transfer_iter<T: DirectIo + ?Sized, D: Direction>(
    target: &T,
    rw: RwType,
    pos: u64,
    rwf: RwfFlags,
    iter: &mut AnyIter<'_, D>,
    dirty: &dyn DirtyTracker,
) -> Result<usize> {
    if iter.count() == 0 {
        return Ok(0);
    }
    if iter.iter_type() == IterType::Discard {
        let (done, outcome) = discard_read(target, pos, iter.count(), rwf);
        iter.advance(done);
        return match outcome {
            Err(e) if done == 0 => Err(e),
            _ => Ok(done),
        };
    }
    let max_segs = target.max_segs().max(1);
    let mut done = 0usize;
    let mut iov = IovBatch::new();
    let mut outcome: Result<()> = Ok(());
    let mut chunks = iter.raw_chunks();
    loop {
        iov.clear();
        iov.extend(
            chunks
                .by_ref()
                .take(max_segs)
                .map(|(p, len)| UserIovec::new(p.as_ptr(), len)),
        );
        if iov.is_empty() {
            break;
        }
        let want: usize = iov.iter().map(|v| v.len).sum();
        let at = pos.saturating_add(done as u64);
        // SAFETY: the chunks are the iterator's remaining memory, readable
        // (source) or exclusively writable (destination) for the borrow of
        // `iter`, which lasts this call.
        match unsafe { target.transfer(rw, at, &iov, rwf) } {
            Ok(n) => {
                let n = n.min(want);
                done += n;
                if n < want {
                    break;
                }
            }
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    if should_dirty_raw(D::IS_SOURCE, iter.is_user_backed()) {
        let whole = outcome.is_err() || done < iter.count();
        let mut left = if whole { usize::MAX } else { done };
        for (p, len) in iter.raw_chunks() {
            if left == 0 {
                break;
            }
            let n = len.min(left);
            dirty.mark_dirty(p.as_ptr() as usize, n);
            left -= n;
        }
    }
    iter.advance(done);
    match outcome {
        Err(e) if done == 0 => Err(e),
        _ => Ok(done),
    }
}

/// Bounce buffer size for [`discard_read`], in pages (64 KiB).
const DISCARD_BOUNCE_PAGES: usize = 16;

/// A direct read into a [`Discard`](crate::Discard) destination: `count`
/// bytes at `pos` are read into a page-aligned bounce buffer and dropped,
/// stopping at a short read (end of file). The kernel has no such path
/// (`iov_iter_extract_pages` refuses `ITER_DISCARD` with EFAULT); here it
/// lets a caller skip or scrub a range with direct I/O. Returns the bytes
/// read and the error that stopped it, if any. A memory alignment above
/// [`PAGE_SIZE`] cannot be met by the bounce buffer: [`Error::NoPages`]
/// (EFAULT, the kernel's answer).
fn discard_read<T: DirectIo + ?Sized>(
    target: &T,
    pos: u64,
    count: usize,
    rwf: RwfFlags,
) -> (usize, Result<()>) {
    if target.dio_align().mem as usize > PAGE_SIZE {
        return (0, Err(Error::NoPages));
    }
    let pages = count.div_ceil(PAGE_SIZE).min(DISCARD_BOUNCE_PAGES);
    let mut bounce: Vec<PageFrame> = (0..pages).map(|_| PageFrame::zeroed()).collect();
    let cap = pages * PAGE_SIZE;
    let mut done = 0usize;
    while done < count {
        let want = (count - done).min(cap);
        let iov = [UserIovec::new(bounce.as_mut_ptr().cast::<u8>(), want)];
        let at = pos.saturating_add(done as u64);
        // SAFETY: `bounce` is owned by this function, `cap >= want` bytes
        // long, writable, and nothing else accesses it during the call.
        match unsafe { target.transfer(RwType::Read, at, &iov, rwf) } {
            Ok(n) => {
                let n = n.min(want);
                done += n;
                if n < want {
                    break;
                }
            }
            Err(e) => return (done, Err(e)),
        }
    }
    (done, Ok(()))
}
