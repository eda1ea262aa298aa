//! [`AnyIter`]: "any iterator of direction `D`", for callers that must hold
//! iterators of several kinds in one type (what `import_iovec` returns).

use crate::dir::{Dest, Direction, Source};
use crate::error::Result;
use crate::iter::{Extracted, IovIter, RawChunks};
use crate::seg::{Bvec, Discard, Iovec, IterType, Kvec, PageAddr, Ubuf};

/// An iterator of any kind in direction `D`: the type-erased form, one
/// `match` per call. Code that knows its kind should use [`IovIter`]
/// directly, which is monomorphic.
///
/// # Examples
///
/// Iterators of two kinds in one `Vec`, filled by the same code:
///
/// ```
/// use iov_iter::{AnyIter, Dest, IoSegMut, IovIter, IterType, Kvec, Ubuf};
///
/// let (mut a, mut b) = ([0u8; 4], [0u8; 4]);
/// let mut segs = [IoSegMut::new(&mut a)];
/// let mut iters: Vec<AnyIter<'_, Dest>> = vec![
///     IovIter::<Dest, Kvec>::new(&mut segs).into(),
///     IovIter::<Dest, Ubuf>::new(&mut b).into(),
/// ];
/// for it in &mut iters {
///     assert_eq!(it.copy_to_iter(b"abcd"), 4);
/// }
/// assert_eq!(iters[0].iter_type(), IterType::Kvec);
/// drop(iters);
/// assert_eq!((&a, &b), (b"abcd", b"abcd"));
/// ```
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
    ///
    /// # Examples
    ///
    /// Code generic over the direction reaches the discard iterator through
    /// the slot (for a [`Source`] the arm is never taken):
    ///
    /// ```
    /// use iov_iter::any::DiscardSlot;
    /// use iov_iter::{AnyIter, Dest, Direction, Discard, IovIter};
    ///
    /// fn dropped<D: Direction>(it: &AnyIter<'_, D>) -> Option<usize> {
    ///     match it {
    ///         AnyIter::Discard(slot) => Some(slot.get().iov_offset()),
    ///         _ => None,
    ///     }
    /// }
    /// let mut it = AnyIter::from(IovIter::<Dest, Discard>::new(100));
    /// assert_eq!(it.zero(30), 30);
    /// assert_eq!(dropped(&it), Some(30)); // bytes dropped so far
    /// ```
    fn get(&self) -> &Self::Iter;
    /// The iterator, mutably.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::any::DiscardSlot;
    /// use iov_iter::{AnyIter, Dest, Direction, Discard, IovIter};
    ///
    /// // Skip `n` bytes of a discard iterator only.
    /// fn skip_discard<D: Direction>(it: &mut AnyIter<'_, D>, n: usize) {
    ///     if let AnyIter::Discard(slot) = it {
    ///         slot.get_mut().advance(n);
    ///     }
    /// }
    /// let mut it = AnyIter::from(IovIter::<Dest, Discard>::new(100));
    /// skip_discard(&mut it, 40);
    /// assert_eq!(it.count(), 60);
    /// ```
    fn get_mut(&mut self) -> &mut Self::Iter;
    /// The iterator, by value.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::any::DiscardSlot;
    /// use iov_iter::{AnyIter, Dest, Direction, Discard, IovIter, Ubuf};
    ///
    /// fn into_discard<D: Direction>(it: AnyIter<'_, D>) -> Option<IovIter<'_, D, Discard>> {
    ///     match it {
    ///         AnyIter::Discard(slot) => Some(slot.into_iter()),
    ///         _ => None,
    ///     }
    /// }
    /// let it = into_discard(AnyIter::from(IovIter::<Dest, Discard>::new(100)));
    /// assert_eq!(it.map(|it| it.count()), Some(100));
    /// let mut buf = [0u8; 4];
    /// assert!(into_discard(AnyIter::from(IovIter::<Dest, Ubuf>::new(&mut buf))).is_none());
    /// ```
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
///
/// # Examples
///
/// Code handed a `NoDiscard` cannot be reached, and says so with an empty
/// `match`:
///
/// ```
/// use iov_iter::{AnyIter, IovIter, NoDiscard, Source, Ubuf};
///
/// fn never(slot: NoDiscard<'_>) -> usize {
///     match slot {}
/// }
/// fn remaining(it: &AnyIter<'_, Source>) -> usize {
///     match it {
///         AnyIter::Discard(slot) => never(*slot),
///         other => other.count(),
///     }
/// }
/// assert_eq!(remaining(&IovIter::<Source, Ubuf>::new(b"data").into()), 4);
/// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{AnyIter, IoSeg, IovIter, Kvec, Source};
    /// let segs = [IoSeg::new(b"head"), IoSeg::new(b"payload!")];
    /// let mut it = AnyIter::from(IovIter::<Source, Kvec>::new(&segs));
    /// assert_eq!(it.count(), 12);
    /// it.advance(4);
    /// assert_eq!(it.count(), 8);
    /// ```
    #[doc(alias = "iov_iter_count")]
    pub fn count(&self) -> usize {
        each!(self, it => it.count())
    }

    /// See [`IovIter::is_empty`].
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{AnyIter, Dest, Discard, IoSeg, IovIter, Kvec, Source};
    /// let segs = [IoSeg::new(b"head"), IoSeg::new(b"payload!")];
    /// let mut it = AnyIter::from(IovIter::<Source, Kvec>::new(&segs));
    /// assert!(!it.is_empty());
    /// let mut out = [0u8; 12];
    /// assert!(it.copy_from_iter_full(&mut out));
    /// assert!(it.is_empty());
    /// assert!(AnyIter::from(IovIter::<Dest, Discard>::new(0)).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// See [`IovIter::nr_segs`].
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{AnyIter, IoSeg, IovIter, Kvec, Source, Ubuf};
    /// let segs = [IoSeg::new(b"head"), IoSeg::new(b"payload!")];
    /// let mut it = AnyIter::from(IovIter::<Source, Kvec>::new(&segs));
    /// assert_eq!(it.nr_segs(), 2);
    /// it.advance(4); // the first segment is consumed and popped
    /// assert_eq!(it.nr_segs(), 1);
    /// // A ubuf is always one segment.
    /// assert_eq!(AnyIter::from(IovIter::<Source, Ubuf>::new(b"x")).nr_segs(), 1);
    /// ```
    pub fn nr_segs(&self) -> usize {
        each!(self, it => it.nr_segs())
    }

    /// See [`IovIter::iov_offset`].
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{AnyIter, IoSeg, IovIter, Kvec, Source};
    /// let segs = [IoSeg::new(b"head"), IoSeg::new(b"payload!")];
    /// let mut it = AnyIter::from(IovIter::<Source, Kvec>::new(&segs));
    /// it.advance(6);
    /// // Two bytes into "payload!", the one segment left.
    /// assert_eq!((it.nr_segs(), it.iov_offset()), (1, 2));
    /// ```
    pub fn iov_offset(&self) -> usize {
        each!(self, it => it.iov_offset())
    }

    /// See [`IovIter::iter_type`].
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{AnyIter, IoSeg, IovIter, IterType, Kvec, Source, Ubuf};
    /// let segs = [IoSeg::new(b"head"), IoSeg::new(b"payload!")];
    /// let kvec = AnyIter::from(IovIter::<Source, Kvec>::new(&segs));
    /// let ubuf = AnyIter::from(IovIter::<Source, Ubuf>::new(b"data"));
    /// assert_eq!(kvec.iter_type(), IterType::Kvec);
    /// assert_eq!(ubuf.iter_type(), IterType::Ubuf);
    /// assert_eq!(ubuf.iter_type() as u8, 0); // the kernel's ITER_UBUF
    /// ```
    #[doc(alias = "iov_iter_type")]
    pub fn iter_type(&self) -> IterType {
        each!(self, it => it.iter_type())
    }

    /// See [`IovIter::is_user_backed`].
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{AnyIter, IoSeg, IovIter, Iovec, Kvec, Source};
    /// let segs = [IoSeg::new(b"head"), IoSeg::new(b"payload!")];
    /// // The same memory, described as user (iovec) or kernel (kvec) memory.
    /// let user = AnyIter::from(IovIter::<Source, Iovec>::new(&segs));
    /// let kernel = AnyIter::from(IovIter::<Source, Kvec>::new(&segs));
    /// assert!(user.is_user_backed());
    /// assert!(!kernel.is_user_backed());
    /// ```
    #[doc(alias = "user_backed_iter")]
    pub fn is_user_backed(&self) -> bool {
        each!(self, it => it.is_user_backed())
    }

    /// See [`IovIter::advance`].
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{AnyIter, IoSeg, IovIter, Kvec, Source};
    /// let segs = [IoSeg::new(b"head"), IoSeg::new(b"payload!")];
    /// let mut it = AnyIter::from(IovIter::<Source, Kvec>::new(&segs));
    /// it.advance(6);
    /// let mut rest = [0u8; 6];
    /// assert_eq!(it.copy_from_iter(&mut rest), 6);
    /// assert_eq!(&rest, b"yload!");
    /// it.advance(100); // clamped to what is left
    /// assert_eq!(it.count(), 0);
    /// ```
    #[doc(alias = "iov_iter_advance")]
    pub fn advance(&mut self, n: usize) {
        each!(self, it => it.advance(n))
    }

    /// See [`IovIter::revert`].
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{AnyIter, Errno, IoSeg, IovIter, Kvec, Source};
    /// let segs = [IoSeg::new(b"head"), IoSeg::new(b"payload!")];
    /// let mut it = AnyIter::from(IovIter::<Source, Kvec>::new(&segs));
    /// it.advance(6);
    /// it.revert(4)?; // back into the popped first segment
    /// assert_eq!((it.count(), it.nr_segs()), (10, 2));
    /// // Only 2 bytes are consumed now: reverting 3 is refused, nothing changes.
    /// assert_eq!(it.revert(3).unwrap_err().errno(), Errno::EINVAL);
    /// assert_eq!(it.count(), 10);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "iov_iter_revert")]
    pub fn revert(&mut self, n: usize) -> Result<()> {
        each!(self, it => it.revert(n))
    }

    /// See [`IovIter::truncate`].
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{AnyIter, IoSeg, IovIter, Kvec, Source};
    /// let segs = [IoSeg::new(b"head"), IoSeg::new(b"payload!")];
    /// let mut it = AnyIter::from(IovIter::<Source, Kvec>::new(&segs));
    /// it.truncate(4);
    /// it.truncate(100); // an upper bound: never raises the count
    /// assert_eq!(it.count(), 4);
    /// let mut out = [0u8; 12];
    /// assert_eq!(it.copy_from_iter(&mut out), 4);
    /// assert_eq!(&out[..4], b"head");
    /// ```
    #[doc(alias = "iov_iter_truncate")]
    pub fn truncate(&mut self, limit: u64) {
        each!(self, it => it.truncate(limit))
    }

    /// See [`IovIter::reexpand`].
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{AnyIter, Errno, IoSeg, IovIter, Kvec, Source};
    /// let segs = [IoSeg::new(b"head"), IoSeg::new(b"payload!")];
    /// let mut it = AnyIter::from(IovIter::<Source, Kvec>::new(&segs));
    /// it.truncate(4);
    /// it.reexpand(12)?;
    /// assert_eq!(it.count(), 12);
    /// // Past what the segments hold.
    /// assert_eq!(it.reexpand(13).unwrap_err().errno(), Errno::EINVAL);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "iov_iter_reexpand")]
    pub fn reexpand(&mut self, count: usize) -> Result<()> {
        each!(self, it => it.reexpand(count))
    }

    /// See [`IovIter::single_seg_count`].
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{AnyIter, IoSeg, IovIter, Kvec, Source};
    /// let segs = [IoSeg::new(b"head"), IoSeg::new(b"payload!")];
    /// let mut it = AnyIter::from(IovIter::<Source, Kvec>::new(&segs));
    /// assert_eq!(it.single_seg_count(), 4); // "head"
    /// it.advance(5);
    /// assert_eq!(it.single_seg_count(), 7); // the rest of "payload!"
    /// ```
    #[doc(alias = "iov_iter_single_seg_count")]
    pub fn single_seg_count(&self) -> usize {
        each!(self, it => it.single_seg_count())
    }

    /// See [`IovIter::alignment`].
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{AnyIter, IoSeg, IovIter, Kvec, Source};
    /// # #[repr(align(4096))]
    /// # struct Aligned([u8; 4096]);
    /// let buf = Aligned([0; 4096]); // page-aligned
    /// let segs = [IoSeg::new(&buf.0[512..1536]), IoSeg::new(&buf.0[2048..2560])];
    /// let it = AnyIter::from(IovIter::<Source, Kvec>::new(&segs));
    /// // Starts 512 and 2048, lengths 1024 and 512, OR-ed together.
    /// assert_eq!(it.alignment() & 4095, 512 | 1024 | 2048);
    /// assert_eq!(it.alignment() & 511, 0); // fit for 512-byte direct I/O
    /// ```
    #[doc(alias = "iov_iter_alignment")]
    pub fn alignment(&self) -> usize {
        each!(self, it => it.alignment())
    }

    /// See [`IovIter::is_aligned`].
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{AnyIter, IoSeg, IovIter, Kvec, Source};
    /// # #[repr(align(4096))]
    /// # struct Aligned([u8; 4096]);
    /// let buf = Aligned([0; 4096]); // page-aligned
    /// let segs = [IoSeg::new(&buf.0[512..1536]), IoSeg::new(&buf.0[2048..2560])];
    /// let it = AnyIter::from(IovIter::<Source, Kvec>::new(&segs));
    /// assert!(it.is_aligned(511, 511));
    /// assert!(!it.is_aligned(4095, 511)); // the segments start inside the page
    /// assert!(!it.is_aligned(511, 1023)); // the second one is 512 bytes long
    /// ```
    #[doc(alias = "iov_iter_is_aligned")]
    pub fn is_aligned(&self, addr_mask: usize, len_mask: usize) -> bool {
        each!(self, it => it.is_aligned(addr_mask, len_mask))
    }

    /// See [`IovIter::npages`].
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{AnyIter, IoSeg, IovIter, Kvec, Source};
    /// # #[repr(align(4096))]
    /// # struct Aligned([u8; 8192]);
    /// let buf = Aligned([0; 8192]); // two pages
    /// // 4096 bytes from offset 100 touch both pages.
    /// let segs = [IoSeg::new(&buf.0[100..4196])];
    /// let it = AnyIter::from(IovIter::<Source, Kvec>::new(&segs));
    /// assert_eq!(it.npages(16), 2);
    /// assert_eq!(it.npages(1), 1); // at most `maxpages`
    /// ```
    #[doc(alias = "iov_iter_npages")]
    pub fn npages(&self, maxpages: usize) -> usize {
        each!(self, it => it.npages(maxpages))
    }

    /// See [`IovIter::extract_pages`].
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{AnyIter, Dest, Discard, Errno, IoSeg, IovIter, Kvec, Source};
    /// # #[repr(align(4096))]
    /// # struct Aligned([u8; 8192]);
    /// let buf = Aligned([0; 8192]); // two pages
    /// let segs = [IoSeg::new(&buf.0[100..4196])];
    /// let mut it = AnyIter::from(IovIter::<Source, Kvec>::new(&segs));
    /// let mut pages = Vec::new();
    /// let got = it.extract_pages(usize::MAX, 8, &mut pages)?;
    /// assert_eq!((got.bytes, got.offset0, got.npages), (4096, 100, 2));
    /// assert_eq!(pages[0].0, buf.0.as_ptr() as usize);
    /// assert!(it.is_empty());
    /// // A discard iterator has no pages.
    /// let mut discard = AnyIter::from(IovIter::<Dest, Discard>::new(512));
    /// assert_eq!(discard.extract_pages(512, 1, &mut pages).unwrap_err().errno(), Errno::EFAULT);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "iov_iter_extract_pages")]
    pub fn extract_pages(
        &mut self,
        maxsize: usize,
        maxpages: usize,
        out: &mut impl Extend<PageAddr>,
    ) -> Result<Extracted> {
        each!(self, it => it.extract_pages(maxsize, maxpages, out))
    }

    /// See [`IovIter::raw_chunks`].
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{AnyIter, IoSeg, IovIter, Kvec, Source};
    /// let (head, body) = (*b"head", *b"payload!");
    /// let segs = [IoSeg::new(&head), IoSeg::new(&[]), IoSeg::new(&body)];
    /// let it = AnyIter::from(IovIter::<Source, Kvec>::new(&segs));
    /// let chunks: Vec<_> = it.raw_chunks().map(|(p, len)| (p.as_ptr().cast_const(), len)).collect();
    /// // The empty segment gives no chunk; nothing is consumed.
    /// assert_eq!(chunks, [(head.as_ptr(), 4), (body.as_ptr(), 8)]);
    /// assert_eq!(it.count(), 12);
    /// ```
    pub fn raw_chunks(&self) -> RawChunks<'_> {
        each!(self, it => it.raw_chunks())
    }
}

impl<D: Direction> AnyIter<'_, D> {
    /// See [`IovIter::capacity`].
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{AnyIter, IoSeg, IovIter, Kvec, Source};
    /// let segs = [IoSeg::new(b"head"), IoSeg::new(b"payload!")];
    /// let mut it = AnyIter::from(IovIter::<Source, Kvec>::new(&segs));
    /// it.truncate(4);
    /// assert_eq!((it.count(), it.capacity()), (4, 12)); // room to reexpand
    /// it.advance(2);
    /// assert_eq!(it.capacity(), 10);
    /// ```
    pub fn capacity(&self) -> usize {
        each!(self, it => it.capacity())
    }
}

impl AnyIter<'_, Source> {
    /// See [`IovIter::copy_from_iter`].
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{AnyIter, IoSeg, IovIter, Kvec, Source};
    /// let segs = [IoSeg::new(b"head"), IoSeg::new(b"payload!")];
    /// let mut it = AnyIter::from(IovIter::<Source, Kvec>::new(&segs));
    /// let mut out = [0u8; 6];
    /// assert_eq!(it.copy_from_iter(&mut out), 6); // across the segment boundary
    /// assert_eq!(&out, b"headpa");
    /// let mut more = [0u8; 16];
    /// assert_eq!(it.copy_from_iter(&mut more), 6); // short: 6 bytes were left
    /// ```
    #[doc(alias = "_copy_from_iter")]
    pub fn copy_from_iter(&mut self, dst: &mut [u8]) -> usize {
        each!(self, it => it.copy_from_iter(dst))
    }

    /// See [`IovIter::copy_from_iter_full`].
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{AnyIter, IoSeg, IovIter, Kvec, Source};
    /// let segs = [IoSeg::new(b"head"), IoSeg::new(b"payload!")];
    /// let mut it = AnyIter::from(IovIter::<Source, Kvec>::new(&segs));
    /// let mut big = [0u8; 16];
    /// assert!(!it.copy_from_iter_full(&mut big)); // 12 bytes cannot fill 16
    /// assert_eq!(it.count(), 12); // reverted
    /// let mut exact = [0u8; 12];
    /// assert!(it.copy_from_iter_full(&mut exact));
    /// assert_eq!(&exact, b"headpayload!");
    /// ```
    pub fn copy_from_iter_full(&mut self, dst: &mut [u8]) -> bool {
        each!(self, it => it.copy_from_iter_full(dst))
    }
}

impl AnyIter<'_, Dest> {
    /// See [`IovIter::copy_to_iter`].
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{AnyIter, Dest, Discard, IoSegMut, IovIter, Kvec};
    /// let (mut a, mut b) = ([0u8; 2], [0u8; 4]);
    /// let mut segs = [IoSegMut::new(&mut a), IoSegMut::new(&mut b)];
    /// let mut it = AnyIter::from(IovIter::<Dest, Kvec>::new(&mut segs));
    /// assert_eq!(it.copy_to_iter(b"abcdefgh"), 6); // what fits
    /// drop(it);
    /// assert_eq!((&a, &b), (b"ab", b"cdef"));
    /// // A discard iterator takes its count and keeps nothing.
    /// assert_eq!(AnyIter::from(IovIter::<Dest, Discard>::new(5)).copy_to_iter(b"abcdefgh"), 5);
    /// ```
    #[doc(alias = "_copy_to_iter")]
    pub fn copy_to_iter(&mut self, src: &[u8]) -> usize {
        each!(self, it => it.copy_to_iter(src))
    }

    /// See [`IovIter::copy_to_iter_full`].
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{AnyIter, Dest, IoSegMut, IovIter, Kvec};
    /// let (mut a, mut b) = ([0u8; 2], [0u8; 4]);
    /// let mut segs = [IoSegMut::new(&mut a), IoSegMut::new(&mut b)];
    /// let mut it = AnyIter::from(IovIter::<Dest, Kvec>::new(&mut segs));
    /// assert!(!it.copy_to_iter_full(b"too long")); // 8 bytes do not fit in 6
    /// assert_eq!(it.count(), 6); // reverted
    /// assert!(it.copy_to_iter_full(b"abcdef"));
    /// drop(it);
    /// assert_eq!((&a, &b), (b"ab", b"cdef"));
    /// ```
    pub fn copy_to_iter_full(&mut self, src: &[u8]) -> bool {
        each!(self, it => it.copy_to_iter_full(src))
    }

    /// See [`IovIter::zero`].
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{AnyIter, Dest, IovIter, Ubuf};
    /// let mut buf = [0xffu8; 8];
    /// let mut it = AnyIter::from(IovIter::<Dest, Ubuf>::new(&mut buf));
    /// it.advance(2);
    /// assert_eq!(it.zero(4), 4);
    /// assert_eq!(it.count(), 2);
    /// drop(it);
    /// assert_eq!(buf, [0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff]);
    /// ```
    #[doc(alias = "iov_iter_zero")]
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
