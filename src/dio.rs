//! Direct I/O: the [`DirectIo`] entry point (`->direct_IO`), alignment rules
//! ([`DioAlign`], statx `STATX_DIOALIGN`), dirty tracking after reads into
//! user-backed memory ([`DirtyTracker`], [`DirtyBitmap`]) and the generic
//! path every backend shares ([`dio_rw`], the `iomap_dio_rw` analogue).
//!
//! Linux reference: `fs/iomap/direct-io.c` (`iomap_dio_rw`,
//! `IOMAP_DIO_DIRTY`), `fs/direct-io.c` (`should_dirty`), `block/bio.c`
//! (`bio_set_pages_dirty`), `include/uapi/linux/stat.h`
//! (`stx_dio_mem_align`, `stx_dio_offset_align`).
//!
//! A backend implements only [`Transfer`] (one raw vectored read or write at
//! a position); [`dio_rw`] does the rest: validate alignment before any I/O,
//! split at [`UIO_MAXIOV`] segments, submit, stop at a short transfer (end of
//! file) without looping, advance the iterator and `ki_pos` by what was
//! transferred, report dirtied pages, and complete a sync or async
//! [`Kiocb`].

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use smallvec::SmallVec;

use crate::dir::Direction;
use crate::error::{Error, Misalignment, Result};
use crate::import::UIO_MAXIOV;
use crate::seg::UserIovec;
use crate::iter::IovIter;
use crate::kiocb::{FileCaps, IocbFlags, Kiocb, RwType, RwfFlags, Submitted};
use crate::page::{PAGE_OFFSET_MASK, PAGE_SIZE, PageFrame};
use crate::seg::{IterType, Kind};

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
    K::USER_BACKED && !D::IS_SOURCE
}

impl<D: Direction, K: Kind> IovIter<'_, D, K> {
    /// [`should_dirty`] for this iterator's type.
    pub const SHOULD_DIRTY: bool = should_dirty::<D, K>();
}

/// Direct-I/O alignment, as `statx(STATX_DIOALIGN)` reports it: memory
/// alignment of each segment's address, and alignment of the file offset
/// and of each segment's (and the total) length.
#[doc(alias = "STATX_DIOALIGN")]
#[doc(alias = "stx_dio_mem_align")]
#[doc(alias = "stx_dio_offset_align")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DioAlign {
    /// `stx_dio_mem_align`: required alignment of buffer addresses.
    pub mem: u32,
    /// `stx_dio_offset_align`: required alignment of file offsets and of
    /// segment and total lengths.
    pub offset: u32,
}

impl DioAlign {
    /// An alignment pair; both must be powers of two (EINVAL otherwise).
    pub fn new(mem: u32, offset: u32) -> Result<DioAlign> {
        if !mem.is_power_of_two() || !offset.is_power_of_two() {
            return Err(Error::InvalidArgument(
                "DIO alignment must be a power of two",
            ));
        }
        Ok(DioAlign { mem, offset })
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
    pub fn check<D: Direction, K: Kind>(&self, pos: u64, iter: &IovIter<'_, D, K>) -> Result<()> {
        if !self.mem.is_power_of_two() || !self.offset.is_power_of_two() {
            return Err(Error::InvalidArgument(
                "DIO alignment must be a power of two",
            ));
        }
        let err = |what| Error::Misaligned {
            what,
            mem_align: self.mem,
            offset_align: self.offset,
        };
        let (mem_mask, off_mask) = (self.mem as usize - 1, self.offset as usize - 1);
        if pos & off_mask as u64 != 0 {
            return Err(err(Misalignment::FileOffset));
        }
        if iter.count() & off_mask != 0 {
            return Err(err(Misalignment::TotalLength));
        }
        for (index, (p, len)) in iter.raw_chunks().enumerate() {
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

/// Receives the pages a direct read landed in (the kernel's
/// `bio_set_pages_dirty` / `set_page_dirty_lock`). Called only for
/// [`should_dirty`] iterators, with byte ranges of the destination memory.
pub trait DirtyTracker {
    /// `len` bytes at address `addr` were (or may have been) written.
    fn mark_dirty(&self, addr: usize, len: usize);
}

/// Tracks nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDirtyTracking;

impl DirtyTracker for NoDirtyTracking {
    fn mark_dirty(&self, _: usize, _: usize) {}
}

/// One bit per page over a memory region, set atomically: the dirty log a
/// VMM keeps for live migration (in the spirit of vm-memory's
/// `AtomicBitmap`). Ranges outside the region are ignored.
///
/// # Examples
///
/// ```
/// use iov_iter::dio::{DirtyBitmap, DirtyTracker};
/// let bm = DirtyBitmap::new(0x10000, 8 * 4096);
/// bm.mark_dirty(0x10000 + 4095, 2); // straddles pages 0 and 1
/// assert_eq!(bm.dirty_pages().collect::<Vec<_>>(), [0, 1]);
/// bm.clear();
/// assert_eq!(bm.dirty_pages().count(), 0);
/// ```
#[derive(Debug)]
pub struct DirtyBitmap {
    start: usize,
    len: usize,
    bits: Vec<AtomicU64>,
}

impl DirtyBitmap {
    /// A clean bitmap over `len` bytes at address `start`.
    pub fn new(start: usize, len: usize) -> DirtyBitmap {
        let pages = len
            .saturating_add(start & PAGE_OFFSET_MASK)
            .div_ceil(PAGE_SIZE);
        DirtyBitmap {
            start,
            len,
            bits: (0..pages.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// A clean bitmap over the memory of `buf`.
    pub fn for_slice(buf: &[u8]) -> DirtyBitmap {
        DirtyBitmap::new(buf.as_ptr() as usize, buf.len())
    }

    /// Whether page `index` (counted from the page holding `start`) is dirty.
    pub fn is_dirty(&self, index: usize) -> bool {
        self.bits
            .get(index / 64)
            .is_some_and(|w| w.load(Ordering::Acquire) & (1 << (index % 64)) != 0)
    }

    /// Indices of the dirty pages, ascending.
    pub fn dirty_pages(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.bits.len() * 64).filter(|&i| self.is_dirty(i))
    }

    /// Clears every bit.
    pub fn clear(&self) {
        for w in &self.bits {
            w.store(0, Ordering::Release);
        }
    }
}

impl DirtyTracker for DirtyBitmap {
    fn mark_dirty(&self, addr: usize, len: usize) {
        let end = addr
            .saturating_add(len)
            .min(self.start.saturating_add(self.len));
        let addr = addr.max(self.start);
        if len == 0 || addr >= end {
            return;
        }
        let base = self.start & !PAGE_OFFSET_MASK;
        for page in (addr - base) / PAGE_SIZE..=(end - 1 - base) / PAGE_SIZE {
            self.bits[page / 64].fetch_or(1 << (page % 64), Ordering::AcqRel);
        }
    }
}

/// The one thing a backend implements: a raw vectored transfer at a file
/// position (`preadv2` / `pwritev2` / an io_uring `READV`). Everything else
/// (alignment, splitting, dirtying, completion) is [`dio_rw`]'s.
///
/// # Implementer notes
///
/// Return the bytes transferred; a short count means end of file (read) or
/// no more space (write) and is not retried. Retry `EINTR` yourself. Map
/// `EAGAIN` under `RWF_NOWAIT` to [`Error::WouldBlock`].
pub trait Transfer {
    /// The target's alignment rules.
    fn dio_align(&self) -> DioAlign;

    /// What the target supports (for `RWF_*` validation).
    fn caps(&self) -> FileCaps {
        FileCaps::default()
    }

    /// Most segments one transfer takes ([`UIO_MAXIOV`] by default).
    fn max_segs(&self) -> usize {
        UIO_MAXIOV
    }

    /// Transfers between `pos` and the memory of `iov`.
    ///
    /// # Safety
    ///
    /// Each `iov` entry describes memory valid for reads (a [`RwType::Write`])
    /// or for writes (a [`RwType::Read`]) for the duration of the call, not
    /// accessed by anything else meanwhile (for a [`RwType::Read`], not
    /// written by anything else nor overlapping another entry).
    unsafe fn transfer(
        &self,
        rw: RwType,
        pos: u64,
        iov: &[UserIovec],
        flags: RwfFlags,
    ) -> Result<usize>;
}

/// The kernel's `->direct_IO`: a direct I/O on `iter` at `kiocb.pos`,
/// generic over direction and kind. Implemented for every [`Transfer`]
/// backend through [`dio_rw`].
#[doc(alias = "direct_IO")]
pub trait DirectIo {
    /// Direct I/O with no dirty tracking.
    fn direct_io<D: Direction, K: Kind>(
        &self,
        kiocb: &mut Kiocb,
        iter: &mut IovIter<'_, D, K>,
    ) -> Result<Submitted> {
        self.direct_io_tracked(kiocb, iter, &NoDirtyTracking)
    }

    /// Direct I/O that reports dirtied destination pages to `dirty` (only
    /// when [`should_dirty`] holds for `D` and `K`).
    fn direct_io_tracked<D: Direction, K: Kind>(
        &self,
        kiocb: &mut Kiocb,
        iter: &mut IovIter<'_, D, K>,
        dirty: &dyn DirtyTracker,
    ) -> Result<Submitted>;
}

impl<T: Transfer + ?Sized> DirectIo for T {
    fn direct_io_tracked<D: Direction, K: Kind>(
        &self,
        kiocb: &mut Kiocb,
        iter: &mut IovIter<'_, D, K>,
        dirty: &dyn DirtyTracker,
    ) -> Result<Submitted> {
        dio_rw(self, kiocb, iter, dirty)
    }
}

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

/// The generic direct-I/O path (`iomap_dio_rw`): validate, split, submit,
/// complete, dirty, advance.
///
/// 1. A zero count transfers nothing: `Done(0)`.
/// 2. Alignment ([`DioAlign::check`]) is checked before any I/O; a
///    misaligned address, segment length, position or total length is
///    EINVAL and nothing is transferred.
/// 3. The remaining chunks go to [`Transfer::transfer`] in batches of at
///    most [`Transfer::max_segs`] segments; a short batch (end of file) ends
///    the request without looping. A [`Discard`](crate::Discard)
///    destination has no memory: its bytes are read into a bounce buffer
///    and dropped.
/// 4. The iterator advances by exactly the bytes transferred (the kernel
///    reverts by what was not) and so does `kiocb.pos` (a sync kiocb; an
///    async one reports the new position in
///    [`Completed::pos`](crate::kiocb::Completed::pos)).
/// 5. For a [`should_dirty`] iterator, the pages transferred into are
///    reported to `dirty`; after an error or a short read the whole
///    destination is, since part of it may have landed.
/// 6. A sync kiocb gets `Done(n)` (or the error when nothing was
///    transferred); an async kiocb gets `Queued` and the result through its
///    completion, exactly once. (The transfer itself runs before this
///    returns: a borrowed iterator cannot outlive the call, so truly
///    asynchronous I/O takes owned buffers; see the `uring` backend.)
///
/// # Errors
///
/// [`Error::Misaligned`], the backend's error when nothing was transferred
/// (a sync kiocb), [`Error::WouldBlock`] for `NOWAIT` I/O that would block.
/// An async kiocb whose completion was already taken gets
/// [`Error::InvalidArgument`] before any I/O.
pub fn dio_rw<D: Direction, K: Kind, T: Transfer + ?Sized>(
    target: &T,
    kiocb: &mut Kiocb,
    iter: &mut IovIter<'_, D, K>,
    dirty: &dyn DirtyTracker,
) -> Result<Submitted> {
    let rw = if D::IS_SOURCE {
        RwType::Write
    } else {
        RwType::Read
    };
    let start = kiocb.pos;
    if kiocb.is_sync() {
        let n = dio_transfer(target, rw, start, kiocb.flags, iter, dirty)?;
        kiocb.advance_pos(n);
        return Ok(Submitted::Done(n));
    }
    // Take the completion before any I/O: an async kiocb that was already
    // queued must fail with nothing transferred.
    let Some(c) = kiocb.take_completion() else {
        return Err(Error::InvalidArgument("async kiocb already queued"));
    };
    c.complete(
        start,
        dio_transfer(target, rw, start, kiocb.flags, iter, dirty),
    );
    Ok(Submitted::Queued)
}

fn dio_transfer<D: Direction, K: Kind, T: Transfer + ?Sized>(
    target: &T,
    rw: RwType,
    pos: u64,
    flags: IocbFlags,
    iter: &mut IovIter<'_, D, K>,
    dirty: &dyn DirtyTracker,
) -> Result<usize> {
    if iter.count() == 0 {
        return Ok(0);
    }
    target.dio_align().check(pos, iter)?;
    let rwf = rwf_of(flags);
    if K::ITER_TYPE == IterType::Discard {
        let (done, outcome) = discard_read(target, pos, iter.count(), rwf);
        iter.advance(done);
        return match outcome {
            Err(e) if done == 0 => Err(e),
            _ => Ok(done),
        };
    }
    let max_segs = target.max_segs().max(1);
    let mut done = 0usize;
    let mut iov: SmallVec<[UserIovec; 8]> = SmallVec::new();
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
        // OVERFLOW: pos + done stays within the file the backend accepted.
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
    if should_dirty::<D, K>() {
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
fn discard_read<T: Transfer + ?Sized>(
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
