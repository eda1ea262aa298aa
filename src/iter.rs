//! [`IovIter`]: the one walking engine, generic over direction and kind, and
//! every `iov_iter` operation on top of it.
//!
//! Linux reference: `include/linux/uio.h`, `include/linux/iov_iter.h`
//! (`iterate_and_advance2`), `lib/iov_iter.c`.
//!
//! The engine walks the remaining bytes one contiguous chunk at a time and
//! hands each chunk to a *step* (the kernel's `iov_step_f`): the step returns
//! how many bytes it did **not** process, and the walk stops at the first
//! short step. Segments are walked as the kernel does: zero-length segments
//! are skipped, fully consumed segments are popped (so `nr_segs` reaches 0),
//! and a [`Bvec`] step never crosses a page boundary, even inside a
//! multi-page segment over a [`Folio`](crate::Folio): `iterate_bvec` maps and
//! hands out one page at a time (`kmap_local_page(bv_page + offset /
//! PAGE_SIZE)`, step length at most `PAGE_SIZE - offset % PAGE_SIZE`).
//! [`IovIter::raw_chunks`] is not a step walk: it gives each segment whole.

use core::cmp::min;
use core::fmt;
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ptr::NonNull;

use crate::dir::{Dest, Direction, Source};
use crate::error::{Error, Result};
#[cfg(feature = "alloc")]
use crate::page::check_range_in;
use crate::page::{PAGE_OFFSET_MASK, PAGE_SIZE, Page, check_range};
use crate::seg::{
    Bvec, BvecSeg, BvecSegMut, Discard, Elem, IoSeg, IoSegMut, Iovec, IterType, Kind, Kvec,
    PageAddr, Ubuf,
};

/// `MAX_RW_COUNT`: the most one read or write transfers (`INT_MAX &
/// PAGE_MASK`, 0x7ffff000).
pub const MAX_RW_COUNT: usize = (i32::MAX as usize) & !PAGE_OFFSET_MASK;

/// A scatter-gather iterator over memory of kind `K` ([`Iovec`], [`Kvec`],
/// [`Bvec`], [`Ubuf`] or [`Discard`]) in direction `D` ([`Source`] or
/// [`Dest`]): the kernel's `struct iov_iter`, in 40 bytes like it.
///
/// # Examples
///
/// Gather from three buffers, the way `writev` would:
///
/// ```
/// use iov_iter::{IoSeg, IovIter, Iovec, Source};
/// let (a, b, c) = (*b"scat", *b"ter-", *b"gather");
/// let segs = [IoSeg::new(&a), IoSeg::new(&b), IoSeg::new(&c)];
/// let mut it = IovIter::<Source, Iovec>::new(&segs);
/// assert_eq!((it.count(), it.nr_segs()), (14, 3));
///
/// let mut out = [0u8; 6];
/// assert_eq!(it.copy_from_iter(&mut out), 6);
/// assert_eq!(&out, b"scatte");
/// assert_eq!((it.count(), it.nr_segs(), it.iov_offset()), (8, 2, 2));
///
/// it.revert(6)?; // back to the start
/// assert_eq!(it.count(), 14);
/// # Ok::<(), iov_iter::Error>(())
/// ```
///
/// # Invariants
///
/// - Array kinds ([`Iovec`], [`Kvec`], [`Bvec`]): `base` points to `len`
///   elements valid for `'a`; `idx <= len`; `iov_offset <=` the length of
///   element `idx` (0 when `idx == len`); `count` is at most the bytes left in
///   elements `idx..` minus `iov_offset`.
/// - [`Ubuf`]: `base` points to `len` bytes valid for `'a`; [`Discard`]: `len`
///   is the original count and `base` is dangling. For both, `iov_offset <=
///   len` is the number of bytes consumed and `count <= len - iov_offset`.
/// - The memory is readable for `'a` ([`Source`]), or writable and not
///   accessed through anything else for `'a` ([`Dest`]); the segments of a
///   [`Dest`] iterator do not overlap.
#[doc(alias = "iov_iter")]
pub struct IovIter<'a, D: Direction, K: Kind> {
    base: NonNull<u8>,
    len: usize,
    idx: usize,
    iov_offset: usize,
    count: usize,
    _marker: PhantomData<(&'a mut [u8], D, K)>,
}

static_assertions::assert_eq_size!(IovIter<'static, Source, Iovec>, [usize; 5]);
static_assertions::assert_eq_size!(IovIter<'static, Dest, Bvec>, [usize; 5]);
static_assertions::assert_impl_all!(IovIter<'static, Dest, Iovec>: Send, Sync);
static_assertions::assert_impl_all!(IovIter<'static, Source, Kvec>: Send, Sync, Clone);
static_assertions::assert_not_impl_any!(IovIter<'static, Dest, Kvec>: Clone);

// SAFETY: an iterator is a borrow of `[u8]` memory (shared for a source,
// exclusive for a destination) plus a borrow of the segment array; `[u8]` is
// `Send` and `Sync`, and the segment elements are plain data (a `Bvec`'s
// `Page` is `Sync`).
unsafe impl<D: Direction, K: Kind> Send for IovIter<'_, D, K> {}
// SAFETY: `&IovIter` reads only the iterator's own fields and the segment
// array; reading the bytes through `&self` is offered for sources only.
unsafe impl<D: Direction, K: Kind> Sync for IovIter<'_, D, K> {}

/// A saved iterator position (`struct iov_iter_state`), from
/// [`IovIter::save_state`], for [`IovIter::restore`].
#[doc(alias = "iov_iter_state")]
pub struct IterState<'a, D: Direction, K: Kind> {
    iov_offset: usize,
    count: usize,
    idx: usize,
    base: NonNull<u8>,
    len: usize,
    _marker: PhantomData<IovIter<'a, D, K>>,
}

impl<D: Direction, K: Kind> Clone for IterState<'_, D, K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<D: Direction, K: Kind> Copy for IterState<'_, D, K> {}

impl<D: Direction, K: Kind> IterState<'_, D, K> {
    /// `count` at the time of the save.
    pub fn count(&self) -> usize {
        self.count
    }
    /// `iov_offset` at the time of the save.
    pub fn iov_offset(&self) -> usize {
        self.iov_offset
    }
    /// `nr_segs` at the time of the save.
    pub fn nr_segs(&self) -> usize {
        nr_segs_of::<K>(self.len, self.idx)
    }
}

impl<D: Direction, K: Kind> fmt::Debug for IterState<'_, D, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IterState")
            .field("iov_offset", &self.iov_offset)
            .field("count", &self.count)
            .field("nr_segs", &self.nr_segs())
            .finish()
    }
}

/// What [`IovIter::extract_pages`] and [`IovIter::get_pages`] extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extracted {
    /// Bytes covered (the iterator advanced by this much).
    pub bytes: usize,
    /// Offset of the data in the first page (`offset0`, `*start`).
    pub offset0: usize,
    /// Pages pushed to the output.
    pub npages: usize,
}

#[inline(always)]
fn nr_segs_of<K: Kind>(len: usize, idx: usize) -> usize {
    match K::ITER_TYPE {
        IterType::Ubuf => 1,
        IterType::Discard => 0,
        _ => len - idx,
    }
}

#[inline(always)]
const fn is_array<K: Kind>() -> bool {
    matches!(
        K::ITER_TYPE,
        IterType::Iovec | IterType::Kvec | IterType::Bvec
    )
}

/// Sum of the segment lengths, saturating at `usize::MAX`. The common case
/// is one pass of independent wrapping adds (the OR of the lengths proves
/// that no wrap happened); only absurd layouts take the saturating pass.
fn saturating_total<E: Elem>(elems: &[E]) -> usize {
    let (mut sum, mut or) = (0usize, 0usize);
    for e in elems {
        sum = sum.wrapping_add(e.len());
        or |= e.len();
    }
    // OVERFLOW: every length is <= `or`; if `or * n` fits, so does the sum.
    if elems.is_empty() || or <= usize::MAX / elems.len() {
        sum
    } else {
        elems
            .iter()
            .fold(0usize, |acc, e| acc.saturating_add(e.len()))
    }
}

/// Copies `len` bytes from `src` to `dst`: small chunks inline with
/// unaligned word moves (a libc `memcpy` call costs more than a 64-byte
/// copy), larger ones through `copy_nonoverlapping`.
///
/// # Safety
///
/// As `core::ptr::copy_nonoverlapping`: `src` readable and `dst` writable
/// for `len` bytes, the two ranges disjoint.
#[inline(always)]
unsafe fn copy_chunk(src: *const u8, dst: *mut u8, len: usize) {
    type W = [u8; 16];
    if (16..=64).contains(&len) {
        let mut i = 0;
        while i + 16 < len {
            // SAFETY: i + 16 < len, so both 16-byte blocks are in range.
            unsafe {
                dst.add(i)
                    .cast::<W>()
                    .write_unaligned(src.add(i).cast::<W>().read_unaligned())
            };
            i += 16;
        }
        // The last block, overlapping the previous one when len % 16 != 0.
        // SAFETY: len >= 16, so [len - 16, len) is in range.
        unsafe {
            dst.add(len - 16)
                .cast::<W>()
                .write_unaligned(src.add(len - 16).cast::<W>().read_unaligned())
        };
    } else {
        // SAFETY: as the caller promises.
        unsafe { core::ptr::copy_nonoverlapping(src, dst, len) };
    }
}

impl<'a, D: Direction, K: Kind> IovIter<'a, D, K> {
    /// # Safety
    ///
    /// The fields must satisfy the type invariants for `'a`.
    #[inline]
    const unsafe fn from_parts(base: NonNull<u8>, len: usize, count: usize) -> Self {
        IovIter {
            base,
            len,
            idx: 0,
            iov_offset: 0,
            count,
            _marker: PhantomData,
        }
    }

    /// Builds an array-kind iterator over `elems`, which the caller borrows
    /// appropriately for `'a` (see the invariants).
    #[inline]
    fn from_elems(elems: &'a [K::Elem]) -> Self {
        let count = saturating_total(elems);
        // SAFETY: base/len describe `elems`, valid for 'a; idx = offset = 0;
        // count is at most the total (saturating). The memory borrow is the
        // caller's (each constructor takes the right kind of borrow).
        unsafe { Self::from_parts(NonNull::from(elems).cast(), elems.len(), count) }
    }

    /// An iterator over the `len` elements at `base`, positioned at element
    /// `idx`, `iov_offset` bytes in, with `count` bytes left: the inverse of
    /// [`IovIter::position`], for owners of a segment array that lend
    /// iterators over it ([`OwnedIter`](crate::buf::OwnedIter)).
    ///
    /// # Safety
    ///
    /// The fields must satisfy the type invariants for `'a` (for an array
    /// kind: `base` points to `len` live elements, `idx <= len`,
    /// `iov_offset` within element `idx`, `count` within what follows).
    #[cfg(feature = "alloc")]
    #[inline]
    pub(crate) unsafe fn from_position(
        base: NonNull<u8>,
        len: usize,
        (idx, iov_offset, count): (usize, usize, usize),
    ) -> Self {
        IovIter {
            base,
            len,
            idx,
            iov_offset,
            count,
            _marker: PhantomData,
        }
    }

    /// An iterator with nothing left over no memory (valid for every kind):
    /// what stands in for one moved out for a moment.
    #[cfg(feature = "alloc")]
    pub(crate) const fn empty() -> Self {
        IovIter {
            base: NonNull::dangling(),
            len: 0,
            idx: 0,
            iov_offset: 0,
            count: 0,
            _marker: PhantomData,
        }
    }

    /// `(idx, iov_offset, count)`: the position, relative to the element
    /// array the iterator was built over.
    #[cfg(feature = "alloc")]
    #[inline]
    pub(crate) fn position(&self) -> (usize, usize, usize) {
        (self.idx, self.iov_offset, self.count)
    }

    #[inline(always)]
    fn elems(&self) -> *const K::Elem {
        self.base.as_ptr().cast::<K::Elem>().cast_const()
    }

    /// Element `i`.
    ///
    /// BOUNDS: callers pass `i < self.len` on an array kind.
    #[inline(always)]
    fn elem(&self, i: usize) -> K::Elem {
        debug_assert!(is_array::<K>() && i < self.len);
        // SAFETY: by the invariant `base` points to `len` live elements and
        // the caller passes `i < len`.
        unsafe { *self.elems().add(i) }
    }

    /// Bytes left in `count` (`iov_iter_count`).
    #[doc(alias = "iov_iter_count")]
    #[inline]
    pub fn count(&self) -> usize {
        self.count
    }

    /// Whether `count` is 0.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Segments left, the current one included (`nr_segs`): always 1 for a
    /// [`Ubuf`], 0 for a [`Discard`].
    #[inline]
    pub fn nr_segs(&self) -> usize {
        nr_segs_of::<K>(self.len, self.idx)
    }

    /// Offset inside the current segment (`iov_offset`); for a [`Ubuf`] the
    /// offset from the buffer's start, for a [`Discard`] the bytes dropped.
    #[inline]
    pub fn iov_offset(&self) -> usize {
        self.iov_offset
    }

    /// The kernel's iterator type.
    #[doc(alias = "iov_iter_type")]
    pub const fn iter_type(&self) -> IterType {
        K::ITER_TYPE
    }

    /// Whether the memory is user-backed (`user_backed_iter`).
    #[doc(alias = "user_backed_iter")]
    pub const fn is_user_backed(&self) -> bool {
        K::USER_BACKED
    }

    /// Whether this is a source iterator (`iov_iter_rw() == WRITE`).
    #[doc(alias = "iov_iter_rw")]
    pub const fn is_source(&self) -> bool {
        D::IS_SOURCE
    }

    /// Bytes the remaining segments hold past the current position: the most
    /// `count` may be (re)expanded to.
    pub fn capacity(&self) -> usize {
        if is_array::<K>() {
            let mut total = 0usize;
            for i in self.idx..self.len {
                total = total.saturating_add(self.elem(i).len());
            }
            total - self.iov_offset
        } else {
            self.len - self.iov_offset
        }
    }

    /// The engine (`iterate_and_advance2`): walks up to `len` bytes (clamped
    /// to `count`) a chunk at a time, calls `step(ptr, chunk_len, progress)`,
    /// which returns the bytes it did *not* process, stops at the first short
    /// step, advances by exactly what was processed and returns that.
    ///
    /// # Safety
    ///
    /// `step` receives pointers into the iterator's memory: it may read
    /// `chunk_len` bytes; on a [`Dest`] iterator it may also write them. It
    /// must not keep the pointer past the call.
    #[inline(always)]
    unsafe fn walk<F>(&mut self, len: usize, mut step: F) -> usize
    where
        F: FnMut(*mut u8, usize, usize) -> usize,
    {
        let mut len = min(len, self.count);
        if len == 0 {
            return 0;
        }
        match K::ITER_TYPE {
            IterType::Discard => {
                self.count -= len;
                self.iov_offset += len;
                len
            }
            IterType::Ubuf => {
                // SAFETY: iov_offset <= len (invariant), so the pointer stays
                // in (or one past) the buffer.
                let p = unsafe { self.base.as_ptr().add(self.iov_offset) };
                let done = len - min(step(p, len, 0), len);
                self.iov_offset += done;
                self.count -= done;
                done
            }
            _ => {
                let mut idx = self.idx;
                let mut skip = self.iov_offset;
                let mut progress = 0usize;
                // BOUNDS: count <= bytes left in elements idx.., so the walk
                // finds len bytes before idx reaches self.len; the check
                // guards the invariant anyway.
                while idx < self.len {
                    let e = self.elem(idx);
                    let elen = e.len();
                    let mut part = min(len, elen - skip);
                    if K::ITER_TYPE == IterType::Bvec {
                        // As `iterate_bvec`: a step ends at the next page
                        // boundary, which only a multi-page (folio) bvec
                        // has inside it.
                        let in_page = e.align_base().wrapping_add(skip) & PAGE_OFFSET_MASK;
                        part = min(part, PAGE_SIZE - in_page);
                    }
                    if part != 0 {
                        // SAFETY: skip < elen, so the pointer is inside the
                        // segment and `part` bytes follow it.
                        let p = unsafe { e.base().add(skip) };
                        let remain = min(step(p, part, progress), part);
                        let consumed = part - remain;
                        progress += consumed;
                        skip += consumed;
                        len -= consumed;
                        if skip < elen {
                            if remain != 0 || len == 0 {
                                break;
                            }
                            // A page boundary inside a bvec: same segment.
                            continue;
                        }
                    }
                    idx += 1;
                    skip = 0;
                    if len == 0 {
                        break;
                    }
                }
                // INVARIANT: skip < len of element idx, or skip == 0.
                self.idx = idx;
                self.iov_offset = skip;
                self.count -= progress;
                progress
            }
        }
    }

    /// Advances by `size` bytes, clamped to `count` (`iov_iter_advance`).
    /// Consumed segments are popped; an iterator with `count == 0` does not
    /// move at all.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{IoSeg, IovIter, Kvec, Source};
    /// let (a, b) = ([0u8; 4], [0u8; 4]);
    /// let segs = [IoSeg::new(&a), IoSeg::new(&[]), IoSeg::new(&b)];
    /// let mut it = IovIter::<Source, Kvec>::new(&segs);
    /// it.advance(4); // the first segment and the empty one are popped
    /// assert_eq!((it.nr_segs(), it.iov_offset(), it.count()), (1, 0, 4));
    /// it.advance(100); // clamped
    /// assert_eq!((it.nr_segs(), it.count()), (0, 0));
    /// ```
    #[doc(alias = "iov_iter_advance")]
    pub fn advance(&mut self, size: usize) {
        let size = min(size, self.count);
        if !is_array::<K>() {
            self.iov_offset += size;
            self.count -= size;
            return;
        }
        if self.count == 0 {
            return;
        }
        self.count -= size;
        let mut size = size + self.iov_offset;
        let mut idx = self.idx;
        while idx < self.len {
            let l = self.elem(idx).len();
            if size < l {
                break;
            }
            size -= l;
            idx += 1;
        }
        // INVARIANT: size <= bytes left (count invariant), so either idx is a
        // live element with size < its length, or size == 0.
        self.idx = idx;
        self.iov_offset = size;
    }

    /// Moves back by `unroll` bytes (`iov_iter_revert`), re-entering popped
    /// segments from their end.
    ///
    /// # Errors
    ///
    /// Where C has undefined behaviour or a `BUG`, this is an error and the
    /// iterator is unchanged: [`Error::RevertPastStart`] (EINVAL) for more
    /// than was consumed, [`Error::RevertTooLarge`] (EINVAL) above
    /// [`MAX_RW_COUNT`] (a `WARN` in C).
    #[doc(alias = "iov_iter_revert")]
    pub fn revert(&mut self, unroll: usize) -> Result<()> {
        if unroll == 0 {
            return Ok(());
        }
        if unroll > MAX_RW_COUNT {
            return Err(Error::RevertTooLarge(unroll));
        }
        if unroll <= self.iov_offset {
            self.iov_offset -= unroll;
            self.count = self.count.saturating_add(unroll);
            return Ok(());
        }
        if !is_array::<K>() {
            return Err(Error::RevertPastStart {
                requested: unroll,
                consumed: self.iov_offset,
            });
        }
        let mut rem = unroll - self.iov_offset;
        let mut idx = self.idx;
        while idx > 0 {
            idx -= 1;
            let n = self.elem(idx).len();
            if rem <= n {
                // INVARIANT: the bytes walked back over are real segment
                // bytes, so count + unroll stays within what is left.
                self.idx = idx;
                self.iov_offset = n - rem;
                self.count = self.count.saturating_add(unroll);
                return Ok(());
            }
            rem -= n;
        }
        Err(Error::RevertPastStart {
            requested: unroll,
            consumed: unroll - rem,
        })
    }

    /// Lowers `count` to at most `limit` (`iov_iter_truncate`). `limit` is an
    /// upper bound, not a new size, and may exceed `usize`.
    #[doc(alias = "iov_iter_truncate")]
    #[inline]
    pub fn truncate(&mut self, limit: u64) {
        if (self.count as u64) > limit {
            self.count = limit as usize;
        }
    }

    /// Sets `count` back up after a [`truncate`](Self::truncate)
    /// (`iov_iter_reexpand`).
    ///
    /// # Errors
    ///
    /// [`Error::ReexpandPastEnd`] (EINVAL) when `count` exceeds what the
    /// remaining segments hold; C trusts the caller here.
    #[doc(alias = "iov_iter_reexpand")]
    pub fn reexpand(&mut self, count: usize) -> Result<()> {
        let available = self.capacity();
        if count > available {
            return Err(Error::ReexpandPastEnd {
                requested: count,
                available,
            });
        }
        self.count = count;
        Ok(())
    }

    /// Saves the position (`iov_iter_save_state`).
    #[doc(alias = "iov_iter_save_state")]
    #[inline]
    pub fn save_state(&self) -> IterState<'a, D, K> {
        IterState {
            iov_offset: self.iov_offset,
            count: self.count,
            idx: self.idx,
            base: self.base,
            len: self.len,
            _marker: PhantomData,
        }
    }

    /// Restores a position saved by [`save_state`](Self::save_state)
    /// (`iov_iter_restore`), on this iterator or any other over the same
    /// segment array.
    ///
    /// # Errors
    ///
    /// [`Error::ForeignState`] (EINVAL) for a state saved from an iterator
    /// over other segments.
    #[doc(alias = "iov_iter_restore")]
    pub fn restore(&mut self, state: &IterState<'a, D, K>) -> Result<()> {
        if state.base != self.base || state.len != self.len || state.idx > self.len {
            return Err(Error::ForeignState);
        }
        // INVARIANT: the state was taken from an iterator over this very
        // segment array (same address and length, same kind and direction,
        // borrowed for 'a so unchanged since), where it satisfied the
        // invariants, which depend on the array alone.
        self.idx = state.idx;
        self.iov_offset = state.iov_offset;
        self.count = state.count;
        Ok(())
    }

    /// A shorter-lived iterator at the same position over the same memory.
    /// Progress made through it is not reflected here (as with a copied
    /// `struct iov_iter`); use [`save_state`](Self::save_state) or
    /// [`advance`](Self::advance) to carry it over.
    #[inline]
    pub fn reborrow(&mut self) -> IovIter<'_, D, K> {
        IovIter {
            base: self.base,
            len: self.len,
            idx: self.idx,
            iov_offset: self.iov_offset,
            count: self.count,
            _marker: PhantomData,
        }
    }

    /// Bytes left in the current segment, clamped to `count`, when more than
    /// one segment is left; `count` otherwise (`iov_iter_single_seg_count`).
    #[doc(alias = "iov_iter_single_seg_count")]
    pub fn single_seg_count(&self) -> usize {
        if is_array::<K>() && self.nr_segs() > 1 {
            return min(self.count, self.elem(self.idx).len() - self.iov_offset);
        }
        self.count
    }

    /// The OR of every remaining segment's start and (clamped) length
    /// (`iov_iter_alignment`). For a [`Bvec`] the start is `bv_offset` plus
    /// the offset into the segment, as in `iov_iter_alignment_bvec`: the
    /// offset from the segment's page, or from its folio's start for a folio
    /// segment (a folio is naturally aligned, so the low bits are the
    /// address's). `(pos | alignment) & (block - 1) != 0` means misaligned.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{Bvec, BvecSeg, IovIter, Page, Source};
    /// let page = Page::new();
    /// let segs = [BvecSeg::new(&page, 512, 1024)?, BvecSeg::new(&page, 0, 512)?];
    /// let it = IovIter::<Source, Bvec>::new(&segs);
    /// assert_eq!(it.alignment(), 512 | 1024);
    /// assert_eq!(it.alignment() & 511, 0);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "iov_iter_alignment")]
    pub fn alignment(&self) -> usize {
        match K::ITER_TYPE {
            IterType::Ubuf => {
                if self.count == 0 {
                    0
                } else {
                    (self.base.as_ptr() as usize).wrapping_add(self.iov_offset) | self.count
                }
            }
            IterType::Discard => 0,
            kind => {
                let mut res = 0usize;
                let mut size = self.count;
                let mut skip = self.iov_offset;
                let mut idx = self.idx;
                while idx < self.len {
                    let e = self.elem(idx);
                    let len = e.len() - skip;
                    // Iovec and kvec skip empty segments; bvec does not.
                    if len != 0 || kind == IterType::Bvec {
                        res |= e.align_base().wrapping_add(skip);
                        let len = min(len, size);
                        res |= len;
                        size -= len;
                    }
                    idx += 1;
                    skip = 0;
                    if size == 0 {
                        break;
                    }
                }
                res
            }
        }
    }

    /// Whether every remaining segment starts on `addr_mask + 1` and has a
    /// (clamped) length that is a multiple of `len_mask + 1`
    /// (`iov_iter_is_aligned`, removed from Linux in 6.18). For a [`Bvec`]
    /// the first segment's length is measured from the current offset,
    /// where the kernel measured the whole `bv_len`.
    #[doc(alias = "iov_iter_is_aligned")]
    pub fn is_aligned(&self, addr_mask: usize, len_mask: usize) -> bool {
        match K::ITER_TYPE {
            IterType::Discard => true,
            IterType::Ubuf => {
                self.count & len_mask == 0
                    && (self.base.as_ptr() as usize).wrapping_add(self.iov_offset) & addr_mask == 0
            }
            _ => {
                let mut size = self.count;
                let mut skip = self.iov_offset;
                let mut idx = self.idx;
                while idx < self.len {
                    let e = self.elem(idx);
                    let len = min(e.len() - skip, size);
                    if len & len_mask != 0 || e.align_base().wrapping_add(skip) & addr_mask != 0 {
                        return false;
                    }
                    size -= len;
                    idx += 1;
                    skip = 0;
                    if size == 0 {
                        break;
                    }
                }
                true
            }
        }
    }

    /// Pages spanned by the remaining data, at most `maxpages`
    /// (`iov_iter_npages`); 0 when `count` is 0 and for a [`Discard`]. A
    /// [`Bvec`] segment over a folio counts every page it touches
    /// (`bvec_npages`): 16 for a whole 64 KiB folio.
    #[doc(alias = "iov_iter_npages")]
    pub fn npages(&self, maxpages: usize) -> usize {
        if self.count == 0 {
            return 0;
        }
        match K::ITER_TYPE {
            IterType::Discard => 0,
            IterType::Ubuf => {
                let offs =
                    (self.base.as_ptr() as usize).wrapping_add(self.iov_offset) & PAGE_OFFSET_MASK;
                min((offs + self.count).div_ceil(PAGE_SIZE), maxpages)
            }
            _ => {
                let mut npages = 0usize;
                let mut size = self.count;
                let mut skip = self.iov_offset;
                let mut idx = self.idx;
                while size != 0 && idx < self.len {
                    let e = self.elem(idx);
                    let len = min(e.len() - skip, size);
                    // Iovec and kvec skip empty segments; an empty bvec with
                    // a non-zero offset still counts its page, as in the kernel.
                    if len != 0 || K::ITER_TYPE == IterType::Bvec {
                        let offs = e.align_base().wrapping_add(skip) & PAGE_OFFSET_MASK;
                        size -= len;
                        npages += (offs + len).div_ceil(PAGE_SIZE);
                        if npages > maxpages {
                            return maxpages;
                        }
                    }
                    idx += 1;
                    skip = 0;
                }
                npages
            }
        }
    }

    /// Address of the current position, for the user-backed page walks.
    /// Skips empty segments like `first_iovec_segment`, clamping `size` to
    /// the segment. Only called with `count > 0`.
    fn first_segment(&self, size: &mut usize) -> usize {
        if K::ITER_TYPE == IterType::Ubuf {
            return (self.base.as_ptr() as usize).wrapping_add(self.iov_offset);
        }
        let mut skip = self.iov_offset;
        for i in self.idx..self.len {
            let e = self.elem(i);
            let len = e.len() - skip;
            if len != 0 {
                *size = min(*size, len);
                return (e.base() as usize).wrapping_add(skip);
            }
            skip = 0;
        }
        0
    }

    /// Pushes the page addresses covering `size` bytes from `addr`, at most
    /// `maxpages`, and returns how many bytes they cover and how many pages.
    fn push_addr_pages(
        addr: usize,
        size: usize,
        maxpages: usize,
        out: &mut impl Extend<PageAddr>,
    ) -> (usize, usize) {
        let offset = addr & PAGE_OFFSET_MASK;
        let n = min((size + offset).div_ceil(PAGE_SIZE), maxpages);
        let first = addr - offset;
        out.extend((0..n).map(|k| PageAddr(first.wrapping_add(k * PAGE_SIZE))));
        (min(size, (n * PAGE_SIZE).saturating_sub(offset)), n)
    }

    /// Lists the pages of the first contiguous run of the remaining data,
    /// pushes their addresses to `out` and advances past the bytes they cover
    /// (`iov_iter_extract_pages`). At most `maxsize` bytes (and
    /// [`MAX_RW_COUNT`]) and `maxpages` pages. User-backed and [`Kvec`]
    /// iterators give the first non-empty segment; a [`Bvec`] gathers
    /// following pages while each ends on a page boundary and the next starts
    /// at offset 0, walking a multi-page (folio) bvec one page at a time as
    /// `bvec_iter_bvec` does, so a whole 64 KiB folio gives 16 addresses.
    /// Userspace takes no pins: the addresses name the pages.
    ///
    /// # Errors
    ///
    /// [`Error::NoPages`] (EFAULT) for a [`Discard`].
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{Bvec, BvecSeg, IovIter, Page, Source};
    /// let (p0, p1) = (Page::new(), Page::new());
    /// let segs = [BvecSeg::new(&p0, 100, 3996)?, BvecSeg::full(&p1)];
    /// let mut it = IovIter::<Source, Bvec>::new(&segs);
    /// let mut pages = Vec::new();
    /// let got = it.extract_pages(usize::MAX, 8, &mut pages)?;
    /// assert_eq!((got.bytes, got.offset0, got.npages), (8092, 100, 2));
    /// assert_eq!(pages[1].0, p1.addr());
    /// assert!(it.is_empty());
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "iov_iter_extract_pages")]
    pub fn extract_pages(
        &mut self,
        maxsize: usize,
        maxpages: usize,
        out: &mut impl Extend<PageAddr>,
    ) -> Result<Extracted> {
        let mut maxsize = min(min(maxsize, self.count), MAX_RW_COUNT);
        let none = Extracted {
            bytes: 0,
            offset0: 0,
            npages: 0,
        };
        if maxsize == 0 || maxpages == 0 {
            return Ok(none);
        }
        match K::ITER_TYPE {
            IterType::Discard => Err(Error::NoPages),
            IterType::Ubuf | IterType::Iovec => {
                let addr = self.first_segment(&mut maxsize);
                let (bytes, npages) = Self::push_addr_pages(addr, maxsize, maxpages, out);
                self.advance(bytes);
                Ok(Extracted {
                    bytes,
                    offset0: addr & PAGE_OFFSET_MASK,
                    npages,
                })
            }
            IterType::Kvec => {
                // Pop leading empty segments, as the kernel does.
                while self.idx < self.len && self.elem(self.idx).len() == self.iov_offset {
                    self.idx += 1;
                    self.iov_offset = 0;
                }
                if self.idx == self.len {
                    return Ok(none);
                }
                let e = self.elem(self.idx);
                let size = min(maxsize, e.len() - self.iov_offset);
                let addr = (e.base() as usize).wrapping_add(self.iov_offset);
                let (bytes, npages) = Self::push_addr_pages(addr, size, maxpages, out);
                self.advance(bytes);
                Ok(Extracted {
                    bytes,
                    offset0: addr & PAGE_OFFSET_MASK,
                    npages,
                })
            }
            IterType::Bvec => {
                if self.idx == self.len {
                    return Ok(none);
                }
                if self.iov_offset == self.elem(self.idx).len() {
                    self.idx += 1;
                    self.iov_offset = 0;
                }
                let maxpages = min((maxsize + self.iov_offset).div_ceil(PAGE_SIZE), maxpages);
                let (mut k, mut size, mut offset0) = (0usize, 0usize, 0usize);
                let (mut bi_idx, mut done, mut bi_size) = (self.idx, self.iov_offset, maxsize);
                while bi_size != 0 && bi_idx < self.len {
                    let e = self.elem(bi_idx);
                    // As `bvec_iter_bvec`: the single page holding the
                    // current byte, the offset in it and the bytes left in
                    // it (a multi-page folio bvec yields one page at a
                    // time). Only an empty bvec at the end of its page or
                    // folio lands on the following page frame.
                    let pos = e.align_base() + done;
                    let off = pos & PAGE_OFFSET_MASK;
                    let frame = e.base() as usize - e.align_base();
                    let blen = min(min(bi_size, e.len() - done), PAGE_SIZE - off);
                    if k != 0 {
                        if off != 0 {
                            break;
                        }
                    } else {
                        offset0 = off;
                    }
                    out.extend(core::iter::once(PageAddr(
                        frame + (pos & !PAGE_OFFSET_MASK),
                    )));
                    k += 1;
                    size += blen;
                    if k >= maxpages || off + blen != PAGE_SIZE {
                        break;
                    }
                    done += blen;
                    bi_size -= blen;
                    if done == e.len() {
                        bi_idx += 1;
                        done = 0;
                    }
                }
                self.advance(size);
                Ok(Extracted {
                    bytes: size,
                    offset0,
                    npages: k,
                })
            }
        }
    }

    /// Like [`extract_pages`](Self::extract_pages) with the kernel's
    /// `iov_iter_get_pages2` rules: the pages of the first segment only (for
    /// a [`Bvec`], the current bvec, every page of it for a folio segment, as
    /// `first_bvec_segment` gives `bv_page + offset / PAGE_SIZE` and the
    /// pages after it), and [`Error::NoPages`] (EFAULT) for [`Kvec`] and
    /// [`Discard`], whose pages the kernel cannot reference.
    #[doc(alias = "iov_iter_get_pages2")]
    #[doc(alias = "iov_iter_get_pages_alloc2")]
    pub fn get_pages(
        &mut self,
        maxsize: usize,
        maxpages: usize,
        out: &mut impl Extend<PageAddr>,
    ) -> Result<Extracted> {
        if maxpages == 0 {
            return Ok(Extracted {
                bytes: 0,
                offset0: 0,
                npages: 0,
            });
        }
        let mut maxsize = min(min(maxsize, self.count), MAX_RW_COUNT);
        if maxsize == 0 {
            return Ok(Extracted {
                bytes: 0,
                offset0: 0,
                npages: 0,
            });
        }
        match K::ITER_TYPE {
            IterType::Ubuf | IterType::Iovec => self.extract_pages(maxsize, maxpages, out),
            IterType::Bvec => {
                let e = self.elem(self.idx);
                maxsize = min(maxsize, e.len() - self.iov_offset);
                let start = e.align_base() + self.iov_offset;
                let frame = e.base() as usize - e.align_base();
                let n = min(
                    (maxsize + (start & PAGE_OFFSET_MASK)).div_ceil(PAGE_SIZE),
                    maxpages,
                );
                out.extend((0..n).map(|k| PageAddr(frame + (start / PAGE_SIZE + k) * PAGE_SIZE)));
                let bytes = min(
                    maxsize,
                    (n * PAGE_SIZE).saturating_sub(start & PAGE_OFFSET_MASK),
                );
                self.count -= bytes;
                self.iov_offset += bytes;
                if self.iov_offset == e.len() {
                    self.iov_offset = 0;
                    self.idx += 1;
                }
                Ok(Extracted {
                    bytes,
                    offset0: start & PAGE_OFFSET_MASK,
                    npages: n,
                })
            }
            _ => Err(Error::NoPages),
        }
    }

    /// The remaining data as raw `(address, length)` chunks, without
    /// advancing: what a backend turns into an iovec array for `preadv2` or
    /// io_uring. One chunk per non-empty segment: a [`Bvec`] segment over a
    /// folio is one chunk however many pages it spans, as a multi-page bvec
    /// is one segment of a bio. Empty segments are skipped; lengths are
    /// clamped to `count`; a [`Discard`] has no chunks.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{Bvec, BvecSeg, Folio, IovIter, Page, Source};
    /// let (folio, page) = (Folio::new(4)?, Page::new());
    /// let segs = [BvecSeg::full_folio(&folio), BvecSeg::new(&page, 0, 512)?];
    /// let it = IovIter::<Source, Bvec>::new(&segs);
    /// let chunks: Vec<(usize, usize)> =
    ///     it.raw_chunks().map(|(p, len)| (p.as_ptr() as usize, len)).collect();
    /// assert_eq!(chunks, [(folio.addr(), 65536), (page.addr(), 512)]);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn raw_chunks(&self) -> RawChunks<'_> {
        RawChunks {
            next: if K::ITER_TYPE == IterType::Discard {
                None
            } else {
                Some(self.walk_state())
            },
            _marker: PhantomData,
        }
    }

    fn walk_state(&self) -> WalkState {
        WalkState {
            elems: self.base.as_ptr().cast_const(),
            elem_size: core::mem::size_of::<K::Elem>(),
            get: if K::ITER_TYPE == IterType::Ubuf {
                ubuf_get
            } else {
                elem_get::<K::Elem>
            },
            idx: self.idx,
            len: if K::ITER_TYPE == IterType::Ubuf {
                1
            } else {
                self.len
            },
            skip: self.iov_offset,
            ubuf_len: self.len,
            remaining: self.count,
        }
    }
}

/// Reads one element's `(base, len)` for [`RawChunks`].
type GetFn = unsafe fn(*const u8, usize, usize, usize) -> (*mut u8, usize);

/// # Safety
///
/// `elems` points to at least `idx + 1` live `E`s.
unsafe fn elem_get<E: Elem>(
    elems: *const u8,
    _size: usize,
    idx: usize,
    _ulen: usize,
) -> (*mut u8, usize) {
    // SAFETY: as the caller promises.
    let e = unsafe { *elems.cast::<E>().add(idx) };
    (e.base(), e.len())
}

/// # Safety
///
/// None: returns the buffer itself.
unsafe fn ubuf_get(base: *const u8, _size: usize, _idx: usize, ulen: usize) -> (*mut u8, usize) {
    (base.cast_mut(), ulen)
}

#[derive(Clone, Copy)]
struct WalkState {
    elems: *const u8,
    #[allow(dead_code)]
    elem_size: usize,
    get: GetFn,
    idx: usize,
    len: usize,
    skip: usize,
    ubuf_len: usize,
    remaining: usize,
}

/// Iterator over an [`IovIter`]'s remaining data as raw `(pointer, length)`
/// chunks, from [`IovIter::raw_chunks`].
pub struct RawChunks<'i> {
    next: Option<WalkState>,
    _marker: PhantomData<&'i ()>,
}

impl fmt::Debug for RawChunks<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawChunks").finish_non_exhaustive()
    }
}

impl Iterator for RawChunks<'_> {
    type Item = (NonNull<u8>, usize);

    fn next(&mut self) -> Option<Self::Item> {
        let st = self.next.as_mut()?;
        while st.remaining != 0 && st.idx < st.len {
            // SAFETY: idx < len elements (or the ubuf), live for the borrow
            // of the iterator this walk came from.
            let (base, len) = unsafe { (st.get)(st.elems, st.elem_size, st.idx, st.ubuf_len) };
            let part = min(len - st.skip, st.remaining);
            // SAFETY: skip <= len, so this stays in (or one past) the segment.
            let p = unsafe { base.add(st.skip) };
            st.idx += 1;
            st.skip = 0;
            if part != 0 {
                st.remaining -= part;
                // A non-empty segment has a non-null base.
                return NonNull::new(p).map(|p| (p, part));
            }
        }
        self.next = None;
        None
    }
}

// ---------------------------------------------------------------------------
// Constructors.

impl<'a> IovIter<'a, Source, Iovec> {
    /// A source iterator over user-backed segments (`iov_iter_init(WRITE)`).
    #[doc(alias = "iov_iter_init")]
    pub fn new(segs: &'a [IoSeg<'_>]) -> Self {
        // SAFETY: `IoSeg` is `repr(transparent)` over `UserIovec`.
        Self::from_elems(unsafe { &*(core::ptr::from_ref(segs) as *const [crate::seg::UserIovec]) })
    }
}
impl<'a> IovIter<'a, Dest, Iovec> {
    /// A destination iterator over user-backed segments (`iov_iter_init(READ)`).
    #[doc(alias = "iov_iter_init")]
    pub fn new(segs: &'a mut [IoSegMut<'_>]) -> Self {
        // SAFETY: `IoSegMut` is `repr(transparent)` over `UserIovec`; the
        // segments are exclusively borrowed for 'a and disjoint.
        Self::from_elems(unsafe { &*(core::ptr::from_mut(segs) as *const [crate::seg::UserIovec]) })
    }
}
impl<'a> IovIter<'a, Source, Kvec> {
    /// A source iterator over the caller's own memory (`iov_iter_kvec(WRITE)`).
    #[doc(alias = "iov_iter_kvec")]
    pub fn new(segs: &'a [IoSeg<'_>]) -> Self {
        // SAFETY: `IoSeg` is `repr(transparent)` over `UserIovec`.
        Self::from_elems(unsafe { &*(core::ptr::from_ref(segs) as *const [crate::seg::UserIovec]) })
    }
}
impl<'a> IovIter<'a, Dest, Kvec> {
    /// A destination iterator over the caller's own memory
    /// (`iov_iter_kvec(READ)`).
    #[doc(alias = "iov_iter_kvec")]
    pub fn new(segs: &'a mut [IoSegMut<'_>]) -> Self {
        // SAFETY: as for `Iovec`.
        Self::from_elems(unsafe { &*(core::ptr::from_mut(segs) as *const [crate::seg::UserIovec]) })
    }
}
impl<'a> IovIter<'a, Source, Bvec> {
    /// A source iterator over page segments (`iov_iter_bvec(WRITE)`).
    #[doc(alias = "iov_iter_bvec")]
    pub fn new(segs: &'a [BvecSeg<'_>]) -> Self {
        // SAFETY: `BvecSeg` is `repr(transparent)` over `RawBvec`.
        Self::from_elems(unsafe { &*(core::ptr::from_ref(segs) as *const [crate::seg::RawBvec]) })
    }
}
impl<'a> IovIter<'a, Dest, Bvec> {
    /// A destination iterator over page segments (`iov_iter_bvec(READ)`).
    #[doc(alias = "iov_iter_bvec")]
    pub fn new(segs: &'a mut [BvecSegMut<'_>]) -> Self {
        // SAFETY: `BvecSegMut` is `repr(transparent)` over `RawBvec`; its
        // ranges are exclusively borrowed and disjoint.
        Self::from_elems(unsafe { &*(core::ptr::from_mut(segs) as *const [crate::seg::RawBvec]) })
    }
}
impl<'a> IovIter<'a, Source, Ubuf> {
    /// A source iterator over one buffer (`iov_iter_ubuf(WRITE)`).
    #[doc(alias = "iov_iter_ubuf")]
    pub fn new(buf: &'a [u8]) -> Self {
        // SAFETY: base/len describe `buf`, readable for 'a.
        unsafe { Self::from_parts(NonNull::from(buf).cast(), buf.len(), buf.len()) }
    }
}
impl<'a> IovIter<'a, Dest, Ubuf> {
    /// A destination iterator over one buffer (`iov_iter_ubuf(READ)`).
    #[doc(alias = "iov_iter_ubuf")]
    pub fn new(buf: &'a mut [u8]) -> Self {
        // SAFETY: base/len describe `buf`, exclusively borrowed for 'a.
        unsafe { Self::from_parts(NonNull::from(&mut *buf).cast(), buf.len(), buf.len()) }
    }
}
impl IovIter<'static, Dest, Discard> {
    /// A destination that accepts `count` bytes and drops them
    /// (`iov_iter_discard`).
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{Discard, Dest, IovIter};
    /// let mut it = IovIter::<Dest, Discard>::new(10);
    /// assert_eq!(it.copy_to_iter(&[7; 16]), 10);
    /// assert!(it.is_empty());
    /// ```
    #[doc(alias = "iov_iter_discard")]
    pub const fn new(count: usize) -> Self {
        // SAFETY: a discard iterator touches no memory; len = count.
        unsafe { Self::from_parts(NonNull::dangling(), count, count) }
    }
}

/// Unsafe constructors from raw parts, for callers that hold iovec arrays
/// from elsewhere (a syscall server, a VMM's guest-memory mapping).
impl<'a, D: Direction> IovIter<'a, D, Iovec> {
    /// An iterator over `nr_segs` raw iovecs at `iov`.
    ///
    /// # Safety
    ///
    /// For `'a`:
    /// - `iov` points to `nr_segs` initialised `(base, len)` pairs laid out as
    ///   `struct iovec` that nothing modifies;
    /// - each `base` is valid for reads of `len` bytes (and for writes, for a
    ///   [`Dest`] iterator), or `len` is 0;
    /// - for a [`Dest`] iterator, no two segments overlap and nothing else
    ///   reads or writes the memory; for a [`Source`] iterator nothing writes
    ///   it.
    pub unsafe fn from_raw_iovecs(iov: *const IoSeg<'a>, nr_segs: usize) -> Self {
        // SAFETY: the caller promises `nr_segs` live elements for 'a.
        let elems =
            unsafe { core::slice::from_raw_parts(iov.cast::<crate::seg::UserIovec>(), nr_segs) };
        Self::from_elems(elems)
    }

    /// [`from_raw_iovecs`](Self::from_raw_iovecs) with the total already
    /// known (`import_iovec` computes it while clamping).
    ///
    /// # Safety
    ///
    /// As [`from_raw_iovecs`](Self::from_raw_iovecs), and `count` is at most
    /// the sum of the `nr_segs` lengths.
    #[cfg(feature = "alloc")]
    pub(crate) unsafe fn from_raw_iovecs_counted(
        iov: *const IoSeg<'a>,
        nr_segs: usize,
        count: usize,
    ) -> Self {
        debug_assert!(count <= nr_segs.saturating_mul(isize::MAX as usize));
        // SAFETY: base/len describe the caller's `nr_segs` live elements and
        // `count` is within their total, as the caller promises.
        unsafe {
            Self::from_parts(
                NonNull::new_unchecked(iov.cast_mut()).cast(),
                nr_segs,
                count,
            )
        }
    }
}

impl<'a, D: Direction> IovIter<'a, D, Ubuf> {
    /// An iterator over one raw buffer.
    ///
    /// # Safety
    ///
    /// For `'a`, `base` is valid for reads of `len` bytes (and writes for a
    /// [`Dest`] iterator) and nothing else writes it (or, for a [`Dest`],
    /// reads it), or `len` is 0.
    pub unsafe fn from_raw_buf(base: *mut u8, len: usize) -> Self {
        let base = NonNull::new(base).unwrap_or(NonNull::dangling());
        // SAFETY: as the caller promises.
        unsafe { Self::from_parts(base, len, len) }
    }
}

impl<K: Kind> Clone for IovIter<'_, Source, K> {
    /// `dup_iter`: a source iterator can be duplicated freely; both copies
    /// read the same memory and the segment array is shared, not copied.
    fn clone(&self) -> Self {
        IovIter { ..*self }
    }
}

impl<K: Kind> IovIter<'_, Source, K> {
    /// A copy at the same position (`dup_iter`). Only source iterators can be
    /// duplicated: two destination iterators would write the same memory.
    ///
    /// ```compile_fail,E0599
    /// use iov_iter::{Dest, IovIter, Ubuf};
    /// let mut buf = [0u8; 4];
    /// let it = IovIter::<Dest, Ubuf>::new(&mut buf);
    /// let twin = it.dup(); // no dup for a destination
    /// ```
    #[doc(alias = "dup_iter")]
    pub fn dup(&self) -> Self {
        self.clone()
    }
}

// ---------------------------------------------------------------------------
// Source operations: data leaves the iterator's memory.

impl<'a, K: Kind> IovIter<'a, Source, K> {
    /// Copies up to `dst.len()` bytes out of the iterator into `dst` and
    /// advances (`copy_from_iter`). Returns the bytes copied:
    /// `min(dst.len(), count)`; nothing past them is written.
    #[doc(alias = "_copy_from_iter")]
    #[inline]
    pub fn copy_from_iter(&mut self, dst: &mut [u8]) -> usize {
        let d = dst.as_mut_ptr();
        // SAFETY: the step reads `len` bytes of the iterator's memory and
        // writes them at `d + progress`, which stays inside `dst` because the
        // walk never exceeds `dst.len()` bytes; `dst` is exclusively borrowed
        // so it cannot overlap the shared source memory.
        unsafe {
            self.walk(dst.len(), |src, len, progress| {
                copy_chunk(src, d.add(progress), len);
                0
            })
        }
    }

    /// [`copy_from_iter`](Self::copy_from_iter) into uninitialised memory;
    /// returns the initialised prefix.
    pub fn copy_from_iter_uninit<'d>(&mut self, dst: &'d mut [MaybeUninit<u8>]) -> &'d mut [u8] {
        let d = dst.as_mut_ptr().cast::<u8>();
        // SAFETY: as in `copy_from_iter`; writing initialised bytes into
        // `MaybeUninit<u8>` is always allowed.
        let n = unsafe {
            self.walk(dst.len(), |src, len, progress| {
                copy_chunk(src, d.add(progress), len);
                0
            })
        };
        // SAFETY: the first `n` bytes were just written.
        unsafe { core::slice::from_raw_parts_mut(d, n) }
    }

    /// Copies exactly `dst.len()` bytes or nothing (`copy_from_iter_full`):
    /// on a short copy the iterator is reverted and `false` returned.
    pub fn copy_from_iter_full(&mut self, dst: &mut [u8]) -> bool {
        if self.count < dst.len() {
            return false;
        }
        let n = self.copy_from_iter(dst);
        if n != dst.len() {
            // Cannot fail: n bytes were just consumed.
            let _ = self.revert(n);
            return false;
        }
        true
    }

    /// Copies `bytes` bytes from the iterator into `page` at `offset`
    /// (`copy_page_from_iter`).
    ///
    /// # Errors
    ///
    /// [`Error::PageRange`] (EFAULT) when the range leaves the page
    /// (`page_copy_sane`, a `WARN` in C); nothing is copied.
    pub fn copy_page_from_iter(
        &mut self,
        page: &mut Page,
        offset: usize,
        bytes: usize,
    ) -> Result<usize> {
        check_range(offset, bytes)?;
        Ok(self.copy_from_iter(&mut page.as_mut_bytes()[offset..offset + bytes]))
    }

    /// Copies `bytes` bytes from the iterator into `folio` at `offset`
    /// (`copy_folio_from_iter`); the range may span the folio's pages.
    ///
    /// # Errors
    ///
    /// [`Error::PageRange`] (EFAULT) when the range leaves the folio
    /// (`page_copy_sane` on the folio's size); nothing is copied.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{Folio, IoSeg, IovIter, Kvec, Source};
    /// let mut folio = Folio::new(1)?;
    /// let segs = [IoSeg::new(b"across")];
    /// let mut it = IovIter::<Source, Kvec>::new(&segs);
    /// assert_eq!(it.copy_folio_from_iter(&mut folio, 4093, 6)?, 6);
    /// assert_eq!(&folio.as_bytes()[4093..4099], b"across");
    /// assert!(it.copy_folio_from_iter(&mut folio, 8190, 6).is_err());
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[cfg(feature = "alloc")]
    pub fn copy_folio_from_iter(
        &mut self,
        folio: &mut crate::Folio,
        offset: usize,
        bytes: usize,
    ) -> Result<usize> {
        check_range_in(offset, bytes, folio.size())?;
        Ok(self.copy_from_iter(&mut folio.as_mut_bytes()[offset..offset + bytes]))
    }

    /// Walks up to `len` bytes without copying (the step-function design,
    /// `iterate_and_advance`): `step(chunk, progress)` gets each contiguous
    /// chunk and returns the bytes it did **not** process (0 = all); the walk
    /// stops at the first short step and the iterator advances by what was
    /// processed, which is returned. A chunk is a segment's remaining bytes,
    /// except that a [`Bvec`] chunk ends at each page boundary
    /// (`iterate_bvec`): a 64 KiB folio segment comes as 16 page chunks.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{Bvec, BvecSeg, Folio, IovIter, Source};
    /// let folio = Folio::new(2)?;
    /// let segs = [BvecSeg::from_folio(&folio, 100, 10_000)?];
    /// let mut it = IovIter::<Source, Bvec>::new(&segs);
    /// let mut steps = Vec::new();
    /// assert_eq!(it.iterate(usize::MAX, |chunk, _| { steps.push(chunk.len()); 0 }), 10_000);
    /// assert_eq!(steps, [3996, 4096, 1908]);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    ///
    /// ```
    /// use iov_iter::{IoSeg, IovIter, Kvec, Source};
    /// let segs = [IoSeg::new(b"hello "), IoSeg::new(b"world")];
    /// let mut it = IovIter::<Source, Kvec>::new(&segs);
    /// let mut sum = 0u32;
    /// let n = it.iterate(usize::MAX, |chunk, _progress| {
    ///     sum += chunk.iter().map(|&b| b as u32).sum::<u32>();
    ///     0
    /// });
    /// assert_eq!(n, 11);
    /// assert_eq!(sum, b"hello world".iter().map(|&b| b as u32).sum::<u32>());
    /// ```
    #[doc(alias = "iterate_and_advance")]
    #[doc(alias = "iterate_and_advance2")]
    pub fn iterate<F: FnMut(&[u8], usize) -> usize>(&mut self, len: usize, mut step: F) -> usize {
        // SAFETY: the chunk is `len` readable bytes of the source memory,
        // borrowed for 'a, and the slice does not outlive the call.
        unsafe {
            self.walk(len, |p, len, progress| {
                step(core::slice::from_raw_parts(p, len), progress)
            })
        }
    }

    /// The remaining data as `&[u8]` chunks, without advancing (empty
    /// segments skipped, clamped to `count`).
    pub fn chunks(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        // SAFETY: each raw chunk is readable source memory borrowed for 'a.
        self.raw_chunks()
            .map(|(p, len)| unsafe { core::slice::from_raw_parts(p.as_ptr(), len) })
    }
}

// ---------------------------------------------------------------------------
// Destination operations: data lands in the iterator's memory.

impl<K: Kind> IovIter<'_, Dest, K> {
    /// Copies up to `src.len()` bytes into the iterator and advances
    /// (`copy_to_iter`). Returns `min(src.len(), count)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{Dest, IoSegMut, IovIter, Iovec};
    /// let (mut a, mut b) = ([0u8; 3], [0u8; 3]);
    /// let mut segs = [IoSegMut::new(&mut a), IoSegMut::new(&mut b)];
    /// let mut it = IovIter::<Dest, Iovec>::new(&mut segs);
    /// assert_eq!(it.copy_to_iter(b"abcdefgh"), 6);
    /// drop(it);
    /// assert_eq!((&a, &b), (b"abc", b"def"));
    /// ```
    #[doc(alias = "_copy_to_iter")]
    #[inline]
    pub fn copy_to_iter(&mut self, src: &[u8]) -> usize {
        let s = src.as_ptr();
        // SAFETY: the step writes `len` bytes into the iterator's exclusively
        // borrowed memory from `s + progress`, inside `src` because the walk
        // never exceeds `src.len()` bytes; `src` is a shared borrow, so it
        // cannot overlap the destination.
        unsafe {
            self.walk(src.len(), |dst, len, progress| {
                copy_chunk(s.add(progress), dst, len);
                0
            })
        }
    }

    /// Copies all of `src` or nothing (`copy_to_iter_full`): on a short copy
    /// the iterator is reverted and `false` returned.
    pub fn copy_to_iter_full(&mut self, src: &[u8]) -> bool {
        if self.count < src.len() {
            return false;
        }
        let n = self.copy_to_iter(src);
        if n != src.len() {
            let _ = self.revert(n);
            return false;
        }
        true
    }

    /// Writes up to `bytes` zeros and advances (`iov_iter_zero`). Only for
    /// destinations: zeroing a source would write memory lent read-only.
    #[doc(alias = "iov_iter_zero")]
    pub fn zero(&mut self, bytes: usize) -> usize {
        // SAFETY: the step writes `len` bytes of exclusively borrowed memory.
        unsafe {
            self.walk(bytes, |dst, len, _| {
                core::ptr::write_bytes(dst, 0, len);
                0
            })
        }
    }

    /// Copies `bytes` bytes of `page` at `offset` into the iterator
    /// (`copy_page_to_iter`).
    ///
    /// # Errors
    ///
    /// [`Error::PageRange`] (EFAULT) when the range leaves the page
    /// (`page_copy_sane`, a `WARN` in C); nothing is copied.
    pub fn copy_page_to_iter(&mut self, page: &Page, offset: usize, bytes: usize) -> Result<usize> {
        check_range(offset, bytes)?;
        Ok(self.copy_to_iter(&page.as_bytes()[offset..offset + bytes]))
    }

    /// Copies `bytes` bytes of `folio` at `offset` into the iterator
    /// (`copy_folio_to_iter`); the range may span the folio's pages.
    ///
    /// # Errors
    ///
    /// [`Error::PageRange`] (EFAULT) when the range leaves the folio
    /// (`page_copy_sane` on the folio's size); nothing is copied.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{Dest, Folio, IovIter, Ubuf};
    /// let mut folio = Folio::new(1)?;
    /// folio.as_mut_bytes()[4093..4099].copy_from_slice(b"across");
    /// let mut out = [0u8; 6];
    /// let mut it = IovIter::<Dest, Ubuf>::new(&mut out);
    /// assert_eq!(it.copy_folio_to_iter(&folio, 4093, 6)?, 6);
    /// assert!(it.copy_folio_to_iter(&folio, 8192, 1).is_err());
    /// drop(it);
    /// assert_eq!(&out, b"across");
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[cfg(feature = "alloc")]
    pub fn copy_folio_to_iter(
        &mut self,
        folio: &crate::Folio,
        offset: usize,
        bytes: usize,
    ) -> Result<usize> {
        check_range_in(offset, bytes, folio.size())?;
        Ok(self.copy_to_iter(&folio.as_bytes()[offset..offset + bytes]))
    }

    /// Walks up to `len` bytes handing out `&mut [u8]` chunks to fill in
    /// place (see the [`Source`] form); returns the bytes processed.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{Dest, IovIter, Ubuf};
    /// let mut buf = [0u8; 8];
    /// let mut it = IovIter::<Dest, Ubuf>::new(&mut buf);
    /// // Fill half, report the rest as not processed: the walk stops there.
    /// let n = it.iterate(8, |chunk, _| { chunk[..4].fill(9); chunk.len() - 4 });
    /// assert_eq!((n, it.count()), (4, 4));
    /// ```
    #[doc(alias = "iterate_and_advance")]
    pub fn iterate<F: FnMut(&mut [u8], usize) -> usize>(
        &mut self,
        len: usize,
        mut step: F,
    ) -> usize {
        // SAFETY: the chunk is `len` bytes of exclusively borrowed memory;
        // chunks never overlap and the slice does not outlive the call.
        unsafe {
            self.walk(len, |p, len, progress| {
                step(core::slice::from_raw_parts_mut(p, len), progress)
            })
        }
    }

    /// The remaining memory as disjoint `&mut [u8]` chunks, without
    /// advancing.
    pub fn chunks_mut(&mut self) -> impl Iterator<Item = &mut [u8]> + '_ {
        let chunks = RawChunks {
            next: Some(self.walk_state()),
            _marker: PhantomData,
        };
        let chunks = if K::ITER_TYPE == IterType::Discard {
            RawChunks {
                next: None,
                ..chunks
            }
        } else {
            chunks
        };
        // SAFETY: destination segments are disjoint and exclusively borrowed
        // through `&mut self`, so the chunks are disjoint live `&mut`s.
        chunks.map(|(p, len)| unsafe { core::slice::from_raw_parts_mut(p.as_ptr(), len) })
    }
}

impl<D: Direction, K: Kind> fmt::Debug for IovIter<'_, D, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IovIter")
            .field("dir", &D::NAME)
            .field("type", &K::ITER_TYPE)
            .field("count", &self.count)
            .field("nr_segs", &self.nr_segs())
            .field("iov_offset", &self.iov_offset)
            .finish()
    }
}

// Gap alignment exists for user iovecs only; other kinds do not have it.
impl<D: Direction> IovIter<'_, D, Iovec> {
    /// The OR, over consecutive non-empty segments, of each segment's start
    /// and the previous one's end (`iov_iter_gap_alignment`), for devices
    /// with a virtual boundary. Like the kernel, it starts at the current
    /// segment and ignores `iov_offset`.
    #[doc(alias = "iov_iter_gap_alignment")]
    pub fn gap_alignment(&self) -> usize {
        let (mut res, mut v, mut size) = (0usize, 0usize, self.count);
        for i in self.idx..self.len {
            let e = self.elem(i);
            if e.len() != 0 {
                let base = e.base() as usize;
                if v != 0 {
                    res |= base | v;
                }
                v = base.wrapping_add(e.len());
                if size <= e.len() {
                    break;
                }
                size -= e.len();
            }
        }
        res
    }
}
impl<D: Direction> IovIter<'_, D, Ubuf> {
    /// Always 0 for a single buffer (`iov_iter_gap_alignment`).
    #[doc(alias = "iov_iter_gap_alignment")]
    pub fn gap_alignment(&self) -> usize {
        0
    }
}
