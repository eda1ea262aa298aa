//! [`AnyIter`]: "any iterator of direction `D`", for callers that must hold
//! iterators of several kinds in one type (what `import_iovec` returns).

use crate::dir::{Dest, Direction, Source};
use crate::error::Result;
use crate::iter::{Extracted, IovIter, RawChunks};
use crate::seg::{Bvec, Discard, Iovec, IterType, Kvec, PageAddr, Ubuf};

/// An iterator of any kind in direction `D`: the type-erased form, one
/// `match` per call. Code that knows its kind should use [`IovIter`]
/// directly, which is monomorphic.
#[derive(Debug)]
pub enum AnyIter<'a, D: Direction> {
    /// `ITER_UBUF`
    Ubuf(IovIter<'a, D, Ubuf>),
    /// `ITER_IOVEC`
    Iovec(IovIter<'a, D, Iovec>),
    /// `ITER_KVEC`
    Kvec(IovIter<'a, D, Kvec>),
    /// `ITER_BVEC`
    Bvec(IovIter<'a, D, Bvec>),
    /// `ITER_DISCARD`: an `IovIter<'a, Dest, Discard>` for [`Dest`]; for
    /// [`Source`] the uninhabited [`NoDiscard`] (there is no source discard
    /// iterator), so a `match` on an `AnyIter<'_, Source>` can leave this
    /// arm out:
    ///
    /// ```
    /// use iov_iter::{AnyIter, Source};
    /// fn kind(it: AnyIter<'_, Source>) -> &'static str {
    ///     match it {
    ///         AnyIter::Ubuf(_) => "ubuf",
    ///         AnyIter::Iovec(_) => "iovec",
    ///         AnyIter::Kvec(_) => "kvec",
    ///         AnyIter::Bvec(_) => "bvec",
    ///     }
    /// }
    /// let data = [0u8; 4];
    /// assert_eq!(kind(AnyIter::from(iov_iter::IovIter::<Source, iov_iter::Ubuf>::new(&data))), "ubuf");
    /// ```
    Discard(D::DiscardSlot<'a>),
}

/// What [`AnyIter::Discard`] holds for a direction ([`Direction`]'s
/// `DiscardSlot`): the iterator itself for [`Dest`], [`NoDiscard`] for
/// [`Source`]. Sealed: implemented by those two only.
///
/// # Examples
///
/// ```
/// use iov_iter::any::DiscardSlot;
/// use iov_iter::{Dest, Discard, IovIter};
/// let slot = IovIter::<Dest, Discard>::new(512);
/// assert_eq!(slot.get().count(), 512);
/// ```
pub trait DiscardSlot: sealed::Sealed + Sized {
    /// The discard iterator type of the direction.
    type Iter;
    /// The iterator.
    fn get(&self) -> &Self::Iter;
    /// The iterator, mutably.
    fn get_mut(&mut self) -> &mut Self::Iter;
    /// The iterator, by value.
    fn into_iter(self) -> Self::Iter;
    /// The slot holding `it`.
    #[doc(hidden)]
    fn from_iter(it: Self::Iter) -> Self;
}

mod sealed {
    pub trait Sealed {}
}

/// There is no source discard iterator: what [`AnyIter::Discard`] holds in
/// an `AnyIter<'_, Source>`, a type with no values.
#[derive(Debug, Clone, Copy)]
pub enum NoDiscard<'a> {
    /// Uninhabited ([`Infallible`](core::convert::Infallible)).
    #[doc(hidden)]
    Never(core::convert::Infallible, core::marker::PhantomData<&'a ()>),
}

impl sealed::Sealed for NoDiscard<'_> {}
impl sealed::Sealed for IovIter<'_, Dest, Discard> {}

impl<'a> DiscardSlot for NoDiscard<'a> {
    type Iter = IovIter<'a, Source, Discard>;
    fn get(&self) -> &Self::Iter {
        match self {
            NoDiscard::Never(never, _) => match *never {},
        }
    }
    fn get_mut(&mut self) -> &mut Self::Iter {
        match self {
            NoDiscard::Never(never, _) => match *never {},
        }
    }
    fn into_iter(self) -> Self::Iter {
        match self {
            NoDiscard::Never(never, _) => match never {},
        }
    }
    fn from_iter(_: Self::Iter) -> Self {
        // No `IovIter<Source, Discard>` can be built (no constructor, and
        // every other way to get one starts from one), so this never runs.
        unreachable!("there is no source discard iterator")
    }
}

impl<'a> DiscardSlot for IovIter<'a, Dest, Discard> {
    type Iter = Self;
    fn get(&self) -> &Self {
        self
    }
    fn get_mut(&mut self) -> &mut Self {
        self
    }
    fn into_iter(self) -> Self {
        self
    }
    fn from_iter(it: Self) -> Self {
        it
    }
}

/// A slot borrowed shared or exclusive, as the iterator borrowed the same
/// way (what `each!` needs for its `Discard` arm).
trait View {
    type Out;
    fn view(self) -> Self::Out;
}

impl<'r, T: DiscardSlot> View for &'r T {
    type Out = &'r T::Iter;
    fn view(self) -> &'r T::Iter {
        self.get()
    }
}

impl<'r, T: DiscardSlot> View for &'r mut T {
    type Out = &'r mut T::Iter;
    fn view(self) -> &'r mut T::Iter {
        self.get_mut()
    }
}

macro_rules! each {
    ($self:expr, $it:ident => $e:expr) => {
        match $self {
            AnyIter::Ubuf($it) => $e,
            AnyIter::Iovec($it) => $e,
            AnyIter::Kvec($it) => $e,
            AnyIter::Bvec($it) => $e,
            AnyIter::Discard(slot) => {
                let $it = View::view(slot);
                $e
            }
        }
    };
}

impl<'a, D: Direction> AnyIter<'a, D> {
    /// See [`IovIter::count`].
    pub fn count(&self) -> usize {
        each!(self, it => it.count())
    }
    /// See [`IovIter::is_empty`].
    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }
    /// See [`IovIter::nr_segs`].
    pub fn nr_segs(&self) -> usize {
        each!(self, it => it.nr_segs())
    }
    /// See [`IovIter::iov_offset`].
    pub fn iov_offset(&self) -> usize {
        each!(self, it => it.iov_offset())
    }
    /// See [`IovIter::iter_type`].
    pub fn iter_type(&self) -> IterType {
        each!(self, it => it.iter_type())
    }
    /// See [`IovIter::is_user_backed`].
    pub fn is_user_backed(&self) -> bool {
        each!(self, it => it.is_user_backed())
    }
    /// See [`IovIter::advance`].
    pub fn advance(&mut self, n: usize) {
        each!(self, it => it.advance(n))
    }
    /// See [`IovIter::revert`].
    pub fn revert(&mut self, n: usize) -> Result<()> {
        each!(self, it => it.revert(n))
    }
    /// See [`IovIter::truncate`].
    pub fn truncate(&mut self, limit: u64) {
        each!(self, it => it.truncate(limit))
    }
    /// See [`IovIter::reexpand`].
    pub fn reexpand(&mut self, count: usize) -> Result<()> {
        each!(self, it => it.reexpand(count))
    }
    /// See [`IovIter::single_seg_count`].
    pub fn single_seg_count(&self) -> usize {
        each!(self, it => it.single_seg_count())
    }
    /// See [`IovIter::alignment`].
    pub fn alignment(&self) -> usize {
        each!(self, it => it.alignment())
    }
    /// See [`IovIter::is_aligned`].
    pub fn is_aligned(&self, addr_mask: usize, len_mask: usize) -> bool {
        each!(self, it => it.is_aligned(addr_mask, len_mask))
    }
    /// See [`IovIter::npages`].
    pub fn npages(&self, maxpages: usize) -> usize {
        each!(self, it => it.npages(maxpages))
    }
    /// See [`IovIter::extract_pages`].
    pub fn extract_pages(
        &mut self,
        maxsize: usize,
        maxpages: usize,
        out: &mut impl Extend<PageAddr>,
    ) -> Result<Extracted> {
        each!(self, it => it.extract_pages(maxsize, maxpages, out))
    }
    /// See [`IovIter::raw_chunks`].
    pub fn raw_chunks(&self) -> RawChunks<'_> {
        each!(self, it => it.raw_chunks())
    }
}

impl<D: Direction> AnyIter<'_, D> {
    /// See [`IovIter::capacity`].
    pub fn capacity(&self) -> usize {
        each!(self, it => it.capacity())
    }
}

impl AnyIter<'_, Source> {
    /// See [`IovIter::copy_from_iter`].
    pub fn copy_from_iter(&mut self, dst: &mut [u8]) -> usize {
        each!(self, it => it.copy_from_iter(dst))
    }
    /// See [`IovIter::copy_from_iter_full`].
    pub fn copy_from_iter_full(&mut self, dst: &mut [u8]) -> bool {
        each!(self, it => it.copy_from_iter_full(dst))
    }
}

impl AnyIter<'_, Dest> {
    /// See [`IovIter::copy_to_iter`].
    pub fn copy_to_iter(&mut self, src: &[u8]) -> usize {
        each!(self, it => it.copy_to_iter(src))
    }
    /// See [`IovIter::copy_to_iter_full`].
    pub fn copy_to_iter_full(&mut self, src: &[u8]) -> bool {
        each!(self, it => it.copy_to_iter_full(src))
    }
    /// See [`IovIter::zero`].
    pub fn zero(&mut self, bytes: usize) -> usize {
        each!(self, it => it.zero(bytes))
    }
}

macro_rules! from_kind {
    ($k:ident) => {
        impl<'a, D: Direction> From<IovIter<'a, D, $k>> for AnyIter<'a, D> {
            fn from(it: IovIter<'a, D, $k>) -> Self {
                AnyIter::$k(it)
            }
        }
    };
}
from_kind!(Ubuf);
from_kind!(Iovec);
from_kind!(Kvec);
from_kind!(Bvec);

impl<'a> From<IovIter<'a, Dest, Discard>> for AnyIter<'a, Dest> {
    fn from(it: IovIter<'a, Dest, Discard>) -> Self {
        AnyIter::Discard(it)
    }
}

/// Runs `f` on `it` as an [`AnyIter`] and puts it back with its new
/// position. Should `f` replace the iterator with one of another kind, `it`
/// is left empty (count 0).
#[cfg(feature = "alloc")]
pub(crate) fn with_any<'a, D: Direction, K: crate::seg::Kind, R>(
    it: &mut IovIter<'a, D, K>,
    f: impl FnOnce(&mut AnyIter<'a, D>) -> R,
) -> R {
    let mut any = K::into_any(core::mem::replace(it, IovIter::empty()));
    let r = f(&mut any);
    if let Ok(back) = K::from_any(any) {
        *it = back;
    }
    r
}
