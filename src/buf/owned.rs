//! [`OwnedIter`]: an owned buffer with an iterator position.

use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;

use smallvec::SmallVec;

use super::{IoBuf, IoBufMut};
use crate::dir::{Dest, Direction, Source};
use crate::error::Result;
use crate::iter::IovIter;
use crate::seg::{Kvec, UserIovec};

/// Segment arrays: one entry inline (a page, a folio, an aligned buffer,
/// a `Vec<u8>`: the common case), longer ones on the heap. An owned
/// iterator and its request travel by value through submission and
/// completion, so every inline entry is copied at each move: with the
/// kernel's on-stack `UIO_FASTIOV` (8) those copies were the largest
/// user-space cost of a 4 KiB request on io_uring (BENCHMARKS.md).
pub(crate) type SegArray = SmallVec<[UserIovec; 1]>;

/// An owned buffer `B` and an iterator position over it (count, segment,
/// offset): the owning form of [`IovIter`], for I/O that outlives the call
/// that starts it.
///
/// A source ([`Source`], the data of a write) iterates over the buffer's
/// initialised bytes ([`IoBuf`]); a destination ([`Dest`], where a read
/// lands) over its whole capacity ([`IoBufMut`]). The segment list is taken
/// once, at construction (inline for a single segment; a buffer of
/// several segments, such as a `Vec` of pages, keeps its list on the
/// heap).
///
/// It moves into an asynchronous I/O inside a [`Kiocb`](crate::kiocb::Kiocb)
/// and comes back in the completion, advanced by the bytes transferred:
/// after a short transfer, submitting it again resumes where it stopped.
/// A destination that received `n` bytes tells its buffer
/// ([`IoBufMut::set_init`]), so a `Vec<u8>` read into its spare capacity
/// has grown its length.
///
/// The iterator operations (advance, revert, truncate, copies) work on a
/// lent [`IovIter`] ([`OwnedIter::with_iter`]) of kind [`Kvec`]: owned
/// memory is the program's own, so a direct read into it never dirties
/// anything (`should_dirty` is false).
///
/// # Examples
///
/// ```
/// use iov_iter::buf::OwnedIter;
/// use iov_iter::{Dest, Source};
///
/// let mut src = OwnedIter::<Source, _>::new(vec![b"head".to_vec(), b"payload".to_vec()]);
/// assert_eq!((src.count(), src.nr_segs()), (11, 2));
/// let mut out = [0u8; 6];
/// assert_eq!(src.with_iter(|it| it.copy_from_iter(&mut out)), 6);
/// assert_eq!(&out, b"headpa");
/// assert_eq!((src.count(), src.nr_segs(), src.iov_offset()), (5, 1, 2));
///
/// // A destination over a Vec's spare capacity.
/// let mut dst = OwnedIter::<Dest, _>::new(Vec::<u8>::with_capacity(16));
/// assert_eq!(dst.count(), 16);
/// dst.with_iter(|it| it.copy_to_iter(b"abc"));
/// assert_eq!(dst.into_inner()[..3], *b"abc");
/// ```
pub struct OwnedIter<D: Direction, B> {
    buf: B,
    /// The segments as taken at construction: their lengths and the
    /// numeric addresses (for alignment) drive the position. Anything that
    /// touches the memory takes them again from the buffer where it is now
    /// ([`OwnedIter::fresh_segs`]), so no pointer outlives a move of the
    /// buffer (a `Box<[u8]>`'s pointer is re-derived after the box moved).
    segs: SegArray,
    idx: usize,
    iov_offset: usize,
    count: usize,
    /// Bytes of the buffer known to be initialised, from its start (for a
    /// destination; a source's are all initialised).
    init: usize,
    _dir: PhantomData<D>,
}

// SAFETY: the segment addresses point into `buf`, which is `Send` (the
// buffer traits require it) and owns that memory; the rest is plain data.
unsafe impl<D: Direction, B: Send> Send for OwnedIter<D, B> {}
// SAFETY: `&OwnedIter` reads only the position and the segment array.
unsafe impl<D: Direction, B: Sync> Sync for OwnedIter<D, B> {}

fn total(segs: &[UserIovec]) -> usize {
    segs.iter().fold(0usize, |t, s| t.saturating_add(s.len))
}

impl<B: IoBuf> OwnedIter<Source, B> {
    /// A source over the initialised bytes of `buf`.
    pub fn new(buf: B) -> OwnedIter<Source, B> {
        let mut segs = SegArray::new();
        buf.for_each_seg(&mut |p, len| segs.push(UserIovec::new(p.cast_mut(), len)));
        let count = total(&segs);
        OwnedIter {
            buf,
            segs,
            idx: 0,
            iov_offset: 0,
            count,
            init: count,
            _dir: PhantomData,
        }
    }
}

impl<B: IoBuf> OwnedIter<Source, B> {
    /// The segments taken again from the buffer where it is now.
    pub(crate) fn fresh_segs(&mut self) -> SegArray {
        let mut segs = SegArray::new();
        self.buf
            .for_each_seg(&mut |p, len| segs.push(UserIovec::new(p.cast_mut(), len)));
        segs
    }
}

impl<B: IoBufMut> OwnedIter<Dest, B> {
    /// A destination over the whole capacity of `buf`.
    pub fn new(mut buf: B) -> OwnedIter<Dest, B> {
        let init = buf.bytes_init();
        let mut segs = SegArray::new();
        buf.for_each_seg_mut(&mut |p, len| segs.push(UserIovec::new(p, len)));
        let count = total(&segs);
        OwnedIter {
            buf,
            segs,
            idx: 0,
            iov_offset: 0,
            count,
            init,
            _dir: PhantomData,
        }
    }

    /// The segments taken again from the buffer where it is now, writable.
    pub(crate) fn fresh_segs(&mut self) -> SegArray {
        let mut segs = SegArray::new();
        self.buf
            .for_each_seg_mut(&mut |p, len| segs.push(UserIovec::new(p, len)));
        segs
    }

    /// Bytes `[start, start + n)` of the buffer were written by I/O: tell
    /// the buffer what is now initialised from its start.
    pub(crate) fn landed(&mut self, start: usize, n: usize) {
        if n != 0 && start <= self.init {
            self.init = self.init.max(start.saturating_add(n));
            // SAFETY: bytes `[0, init)` were initialised before and
            // `[start, start + n)` were just written, with `start <= init`.
            unsafe { self.buf.set_init(self.init) };
        }
    }

    /// Zero-fills what is not initialised in `[0, end)`, so that a lent
    /// iterator never exposes uninitialised bytes.
    fn init_up_to(&mut self, end: usize) {
        if end <= self.init {
            return;
        }
        let mut off = 0usize;
        for s in &self.fresh_segs() {
            let (a, b) = (off, off.saturating_add(s.len));
            let (lo, hi) = (a.max(self.init), b.min(end));
            if lo < hi {
                // SAFETY: `[lo - a, hi - a)` is inside segment `s`, writable
                // memory owned by `buf` (the `IoBufMut` contract), not
                // borrowed by anyone now (`&mut self`).
                unsafe { core::ptr::write_bytes(s.base.add(lo - a), 0, hi - lo) };
            }
            off = b;
            if off >= end {
                break;
            }
        }
        self.init = end;
        // SAFETY: `[0, end)` is initialised now.
        unsafe { self.buf.set_init(end) };
    }
}

impl<D: Direction, B> OwnedIter<D, B> {
    /// Bytes left (`iov_iter_count`).
    pub fn count(&self) -> usize {
        self.count
    }

    /// Whether no byte is left.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Segments left, the current one included (`nr_segs`).
    pub fn nr_segs(&self) -> usize {
        self.segs.len() - self.idx
    }

    /// Offset into the current segment (`iov_offset`).
    pub fn iov_offset(&self) -> usize {
        self.iov_offset
    }

    /// Bytes from the start of the buffer to the position.
    pub fn consumed(&self) -> usize {
        total(&self.segs[..self.idx]).saturating_add(self.iov_offset)
    }

    /// The buffer.
    pub fn buf(&self) -> &B {
        &self.buf
    }

    /// The buffer, giving up the position.
    pub fn into_inner(self) -> B {
        self.buf
    }

    /// An iterator at this position over the `len` segments at `segs`.
    ///
    /// # Safety
    ///
    /// `segs` points to `len == self.segs.len()` segments with the lengths
    /// of `self.segs` (the buffer's, as taken at construction or again),
    /// alive for `'s`; for an iterator that touches the memory, they
    /// describe the buffer where it is now, readable (a source) or
    /// writable, initialised and reached through nothing else (a
    /// destination) for `'s`.
    unsafe fn iter_at<'s>(&self, segs: NonNull<UserIovec>, len: usize) -> IovIter<'s, D, Kvec> {
        debug_assert_eq!(len, self.segs.len());
        // SAFETY: as the caller promises; the position keeps the invariants
        // for these lengths (maintained by `reposition`).
        unsafe { IovIter::from_position(segs.cast(), len, (self.idx, self.iov_offset, self.count)) }
    }

    /// The segment array and position as a lent iterator, for position
    /// and alignment arithmetic only: it never touches the memory.
    pub(crate) fn raw_iter(&self) -> IovIter<'_, D, Kvec> {
        // SAFETY: `self.segs` itself, borrowed by `&self`; the iterator is
        // only used for arithmetic on the addresses.
        unsafe { self.iter_at(NonNull::from(&self.segs[..]).cast(), self.segs.len()) }
    }

    /// Runs `f` on `it` (an iterator at this position) and makes where it
    /// ended the new position.
    fn reposition<R>(
        &mut self,
        mut it: IovIter<'_, D, Kvec>,
        f: impl FnOnce(&mut IovIter<'_, D, Kvec>) -> R,
    ) -> R {
        let r = f(&mut it);
        (self.idx, self.iov_offset, self.count) = it.position();
        r
    }

    /// [`OwnedIter::reposition`] over the position arithmetic alone
    /// ([`OwnedIter::raw_iter`]).
    fn move_by<R>(&mut self, f: impl FnOnce(&mut IovIter<'_, D, Kvec>) -> R) -> R {
        let (r, pos) = {
            let mut it = self.raw_iter();
            let r = f(&mut it);
            (r, it.position())
        };
        (self.idx, self.iov_offset, self.count) = pos;
        r
    }

    /// The remaining chunks of `fresh` (the segments taken again from the
    /// buffer), trimmed to the position and count: what a backend submits.
    pub(crate) fn chunks_of(&self, fresh: &SegArray) -> SegArray {
        // SAFETY: `fresh` has the segments' layout and lengths (taken from
        // the same buffer); the iterator only computes addresses.
        let it = unsafe { self.iter_at(NonNull::from(&fresh[..]).cast(), fresh.len()) };
        it.raw_chunks()
            .map(|(p, len)| UserIovec::new(p.as_ptr(), len))
            .collect()
    }

    /// Advances by `n` bytes, clamped to the count (`iov_iter_advance`).
    pub fn advance(&mut self, n: usize) {
        self.move_by(|it| it.advance(n));
    }

    /// Steps back `n` bytes (`iov_iter_revert`).
    ///
    /// # Errors
    ///
    /// As [`IovIter::revert`]: [`Error::RevertPastStart`](crate::Error::RevertPastStart)
    /// (EINVAL) past the start of the buffer; nothing changes.
    pub fn revert(&mut self, n: usize) -> Result<()> {
        self.move_by(|it| it.revert(n))
    }

    /// Caps the count at `limit` (`iov_iter_truncate`).
    pub fn truncate(&mut self, limit: u64) {
        self.move_by(|it| it.truncate(limit));
    }

    /// Sets the count back to `count` after a truncate
    /// (`iov_iter_reexpand`).
    ///
    /// # Errors
    ///
    /// As [`IovIter::reexpand`]: more than the segments hold left; nothing
    /// changes.
    pub fn reexpand(&mut self, count: usize) -> Result<()> {
        self.move_by(|it| it.reexpand(count))
    }
}

impl<B: IoBuf> OwnedIter<Source, B> {
    /// Runs `f` on an [`IovIter`] over the buffer at the current position;
    /// what `f` consumes (or reverts, truncates) moves this position.
    pub fn with_iter<R>(&mut self, f: impl FnOnce(&mut IovIter<'_, Source, Kvec>) -> R) -> R {
        let fresh = self.fresh_segs();
        // SAFETY: `fresh` describes the buffer's initialised, readable
        // memory where it is now, borrowed (through `&mut self`) for the
        // iterator's life.
        let it = unsafe { self.iter_at(NonNull::from(&fresh[..]).cast(), fresh.len()) };
        self.reposition(it, f)
    }
}

impl<B: IoBufMut> OwnedIter<Dest, B> {
    /// Runs `f` on an [`IovIter`] over the buffer at the current position;
    /// what `f` consumes (or reverts, truncates) moves this position, and
    /// what it writes counts as initialised.
    ///
    /// A destination iterator can hand out `&mut [u8]`, which must not
    /// cover uninitialised bytes: any that the lent range covers are zeroed
    /// first. (Direct I/O through the kiocb never lends, and never zeroes.)
    pub fn with_iter<R>(&mut self, f: impl FnOnce(&mut IovIter<'_, Dest, Kvec>) -> R) -> R {
        let end = self.consumed().saturating_add(self.raw_iter().capacity());
        self.init_up_to(end);
        let mut fresh = self.fresh_segs();
        // SAFETY: `fresh` describes the buffer's writable memory where it
        // is now, reached only through this iterator while `self` is
        // borrowed exclusively; every byte it covers is initialised (just
        // above).
        let it = unsafe { self.iter_at(NonNull::from(&mut fresh[..]).cast(), fresh.len()) };
        self.reposition(it, f)
    }
}

impl<D: Direction, B: fmt::Debug> fmt::Debug for OwnedIter<D, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedIter")
            .field("dir", &if D::IS_SOURCE { "source" } else { "dest" })
            .field("count", &self.count)
            .field("nr_segs", &self.nr_segs())
            .field("iov_offset", &self.iov_offset)
            .field("buf", &self.buf)
            .finish()
    }
}
