//! Segment kinds ([`Iovec`], [`Kvec`], [`Bvec`], [`Ubuf`], [`Discard`]) and the
//! segment elements the array kinds are built from ([`IoSeg`], [`IoSegMut`],
//! [`BvecSeg`], [`BvecSegMut`]).
//!
//! Linux reference: `include/linux/uio.h` (`enum iter_type`, `struct kvec`,
//! `user_backed_iter`), `include/uapi/linux/uio.h` (`struct iovec`),
//! `include/linux/bvec.h` (`struct bio_vec`).
//!
//! | kernel          | kind        | element                      | user-backed |
//! |-----------------|-------------|------------------------------|-------------|
//! | `ITER_UBUF`     | [`Ubuf`]    | one `&[u8]` / `&mut [u8]`    | yes         |
//! | `ITER_IOVEC`    | [`Iovec`]   | [`IoSeg`] / [`IoSegMut`]     | yes         |
//! | `ITER_BVEC`     | [`Bvec`]    | [`BvecSeg`] / [`BvecSegMut`] | no          |
//! | `ITER_KVEC`     | [`Kvec`]    | [`IoSeg`] / [`IoSegMut`]     | no          |
//! | `ITER_DISCARD`  | [`Discard`] | none (a byte count)          | no          |
//!
//! "User-backed" is the kernel's `user_backed_iter()`: memory that belongs to
//! somebody else (a process, a guest) and must be marked dirty after a direct
//! read lands in it. [`Kvec`] and [`Bvec`] memory is the caller's own.
//!
//! A [`Bvec`] segment lies in one [`Page`], or (feature `alloc`) in one
//! [`Folio`](crate::Folio): the kernel's multi-page bvec, whose `bv_page` is
//! the folio's head page and whose `bv_offset` and `bv_len` may exceed
//! `PAGE_SIZE` ([`BvecSeg::from_folio`], [`BvecSegMut::from_folio`]).

use core::fmt;

use crate::dir::Direction;
use core::marker::PhantomData;
use core::ptr::NonNull;

#[cfg(feature = "alloc")]
use crate::page::check_range_in;
use crate::page::{Page, check_range};

mod sealed {
    pub trait Sealed {}
}

/// The kernel's `enum iter_type`, with its values.
#[doc(alias = "iter_type")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum IterType {
    /// `ITER_UBUF`
    Ubuf = 0,
    /// `ITER_IOVEC`
    Iovec = 1,
    /// `ITER_BVEC`
    Bvec = 2,
    /// `ITER_KVEC`
    Kvec = 3,
    /// `ITER_DISCARD`
    Discard = 6,
}

/// A segment kind. Sealed: the kinds are [`Iovec`], [`Kvec`], [`Bvec`],
/// [`Ubuf`] and [`Discard`].
pub trait Kind: sealed::Sealed + Copy + Send + Sync + Unpin + 'static {
    /// Whether the memory is user-backed (`user_backed_iter`): true for
    /// [`Iovec`] and [`Ubuf`]. A direct read into user-backed memory dirties
    /// the pages it touched; into [`Kvec`] or [`Bvec`] memory it never does.
    #[doc(alias = "user_backed_iter")]
    const USER_BACKED: bool;
    /// The kernel's iterator type.
    const ITER_TYPE: IterType;
    /// The element type of the segment array ([`IoSeg`] layout for
    /// [`Iovec`]/[`Kvec`], `bio_vec` layout for [`Bvec`]).
    #[doc(hidden)]
    type Elem: Elem;
    /// The iterator, type-erased.
    #[doc(hidden)]
    fn into_any<D: Direction>(it: crate::IovIter<'_, D, Self>) -> crate::AnyIter<'_, D>;
    /// Takes an iterator of this kind back out of an [`AnyIter`], or
    /// returns it if it holds another kind.
    #[doc(hidden)]
    fn from_any<D: Direction>(
        it: crate::AnyIter<'_, D>,
    ) -> core::result::Result<crate::IovIter<'_, D, Self>, crate::AnyIter<'_, D>>;
}

/// Internal view of one array element.
#[doc(hidden)]
pub trait Elem: Copy {
    /// Address of the first byte.
    fn base(&self) -> *mut u8;
    /// Length in bytes.
    fn len(&self) -> usize;
    /// What `iov_iter_alignment` ORs in for the start: the virtual address,
    /// or the in-page offset for a `bio_vec`.
    fn align_base(&self) -> usize;
}

macro_rules! kind {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {}
        impl sealed::Sealed for $name {}
    };
}

kind!(
    /// `ITER_IOVEC`: an array of user-backed segments ([`IoSeg`] /
    /// [`IoSegMut`], laid out as `struct iovec`).
    #[doc(alias = "ITER_IOVEC")]
    Iovec
);
kind!(
    /// `ITER_KVEC`: an array of segments of the caller's own memory ([`IoSeg`]
    /// / [`IoSegMut`], laid out as `struct kvec`). Not user-backed.
    #[doc(alias = "ITER_KVEC")]
    Kvec
);
kind!(
    /// `ITER_BVEC`: an array of (page, offset, length) segments
    /// ([`BvecSeg`] / [`BvecSegMut`], laid out as `struct bio_vec`).
    #[doc(alias = "ITER_BVEC")]
    Bvec
);
kind!(
    /// `ITER_UBUF`: a single user buffer, the fast path for one segment.
    #[doc(alias = "ITER_UBUF")]
    Ubuf
);
kind!(
    /// `ITER_DISCARD`: a destination that counts bytes and drops them. There
    /// is no source discard iterator:
    ///
    /// ```compile_fail,E0599
    /// use iov_iter::{Discard, IovIter, Source};
    /// let it = IovIter::<Source, Discard>::new(100);
    /// ```
    #[doc(alias = "ITER_DISCARD")]
    Discard
);

impl Kind for Iovec {
    const USER_BACKED: bool = true;
    const ITER_TYPE: IterType = IterType::Iovec;
    type Elem = UserIovec;
    fn from_any<D: Direction>(
        it: crate::AnyIter<'_, D>,
    ) -> core::result::Result<crate::IovIter<'_, D, Self>, crate::AnyIter<'_, D>> {
        match it {
            crate::AnyIter::Iovec(it) => Ok(it),
            other => Err(other),
        }
    }
    fn into_any<D: Direction>(it: crate::IovIter<'_, D, Self>) -> crate::AnyIter<'_, D> {
        crate::AnyIter::Iovec(it)
    }
}
impl Kind for Kvec {
    const USER_BACKED: bool = false;
    const ITER_TYPE: IterType = IterType::Kvec;
    type Elem = UserIovec;
    fn from_any<D: Direction>(
        it: crate::AnyIter<'_, D>,
    ) -> core::result::Result<crate::IovIter<'_, D, Self>, crate::AnyIter<'_, D>> {
        match it {
            crate::AnyIter::Kvec(it) => Ok(it),
            other => Err(other),
        }
    }
    fn into_any<D: Direction>(it: crate::IovIter<'_, D, Self>) -> crate::AnyIter<'_, D> {
        crate::AnyIter::Kvec(it)
    }
}
impl Kind for Ubuf {
    const USER_BACKED: bool = true;
    const ITER_TYPE: IterType = IterType::Ubuf;
    type Elem = UserIovec;
    fn from_any<D: Direction>(
        it: crate::AnyIter<'_, D>,
    ) -> core::result::Result<crate::IovIter<'_, D, Self>, crate::AnyIter<'_, D>> {
        match it {
            crate::AnyIter::Ubuf(it) => Ok(it),
            other => Err(other),
        }
    }
    fn into_any<D: Direction>(it: crate::IovIter<'_, D, Self>) -> crate::AnyIter<'_, D> {
        crate::AnyIter::Ubuf(it)
    }
}
impl Kind for Discard {
    const USER_BACKED: bool = false;
    const ITER_TYPE: IterType = IterType::Discard;
    type Elem = UserIovec;
    fn from_any<D: Direction>(
        it: crate::AnyIter<'_, D>,
    ) -> core::result::Result<crate::IovIter<'_, D, Self>, crate::AnyIter<'_, D>> {
        match it {
            crate::AnyIter::Discard(slot) => Ok(crate::any::DiscardSlot::into_iter(slot)),
            other => Err(other),
        }
    }
    fn into_any<D: Direction>(it: crate::IovIter<'_, D, Self>) -> crate::AnyIter<'_, D> {
        crate::AnyIter::Discard(crate::any::DiscardSlot::from_iter(it))
    }
}
impl Kind for Bvec {
    const USER_BACKED: bool = false;
    const ITER_TYPE: IterType = IterType::Bvec;
    type Elem = RawBvec;
    fn from_any<D: Direction>(
        it: crate::AnyIter<'_, D>,
    ) -> core::result::Result<crate::IovIter<'_, D, Self>, crate::AnyIter<'_, D>> {
        match it {
            crate::AnyIter::Bvec(it) => Ok(it),
            other => Err(other),
        }
    }
    fn into_any<D: Direction>(it: crate::IovIter<'_, D, Self>) -> crate::AnyIter<'_, D> {
        crate::AnyIter::Bvec(it)
    }
}

/// The page-aligned address of a page: what
/// [`extract_pages`](crate::IovIter::extract_pages) and
/// [`get_pages`](crate::IovIter::get_pages) give. Userspace cannot pin
/// pages; the address names the page, as `virt_to_page` would, and for a
/// [`Bvec`] it equals [`Page::addr`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PageAddr(pub usize);

impl fmt::Debug for PageAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PageAddr({:#x})", self.0)
    }
}

/// A raw `struct iovec` (and `struct kvec`): an address and a length, with
/// no lifetime and nothing promised. It is the element of [`Iovec`] and
/// [`Kvec`] iterators, what [`import_iovec`](crate::import_iovec) takes, and
/// what a backend's raw transfer receives.
///
/// # Examples
///
/// ```
/// use iov_iter::UserIovec;
/// let mut buf = [0u8; 8];
/// let v = UserIovec::new(buf.as_mut_ptr(), buf.len());
/// assert_eq!(v.len, 8);
/// assert_eq!(core::mem::size_of::<UserIovec>(), 2 * core::mem::size_of::<usize>());
/// ```
#[doc(alias = "iovec")]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserIovec {
    /// `iov_base`.
    pub base: *mut u8,
    /// `iov_len`.
    pub len: usize,
}

impl UserIovec {
    /// A pair from an address and a length.
    pub const fn new(base: *mut u8, len: usize) -> Self {
        UserIovec { base, len }
    }
}

impl Elem for UserIovec {
    #[inline(always)]
    fn base(&self) -> *mut u8 {
        self.base
    }
    #[inline(always)]
    fn len(&self) -> usize {
        self.len
    }
    #[inline(always)]
    fn align_base(&self) -> usize {
        self.base as usize
    }
}

/// `struct bio_vec` without a lifetime.
///
/// `page` is `bv_page`: a lone [`Page`], or a folio's head page, in which
/// case `offset + len` may reach the folio's size, past the head's own frame
/// (the head's frame pointer covers the whole folio).
#[doc(hidden)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawBvec {
    pub(crate) page: NonNull<Page>,
    pub(crate) len: u32,
    pub(crate) offset: u32,
}

impl Elem for RawBvec {
    #[inline(always)]
    fn base(&self) -> *mut u8 {
        // SAFETY: a `RawBvec` only exists inside a `BvecSeg`/`BvecSegMut`
        // whose page (or folio) is borrowed for the segment's lifetime, and
        // `offset` is at most the memory the page heads (PAGE_SIZE, or the
        // folio's size for a folio's head page; checked at construction), so
        // the pointer stays inside (or one past) that memory.
        unsafe { (*self.page.as_ptr()).data_ptr().add(self.offset as usize) }
    }
    #[inline(always)]
    fn len(&self) -> usize {
        self.len as usize
    }
    #[inline(always)]
    fn align_base(&self) -> usize {
        self.offset as usize
    }
}

/// One source segment: `len` readable bytes at `base`, laid out exactly as
/// `struct iovec` (and `struct kvec`), so an array of them goes to `readv`,
/// `pwritev2` or io_uring without copying. Used by [`Iovec`] and [`Kvec`]
/// source iterators.
///
/// # Examples
///
/// ```
/// use iov_iter::{IoSeg, IovIter, Iovec, Source};
/// let (a, b) = (*b"abc", *b"defg");
/// let segs = [IoSeg::new(&a), IoSeg::new(&b)];
/// let mut it = IovIter::<Source, Iovec>::new(&segs);
/// let mut out = [0u8; 7];
/// assert_eq!(it.copy_from_iter(&mut out), 7);
/// assert_eq!(&out, b"abcdefg");
/// ```
#[doc(alias = "iovec")]
#[doc(alias = "kvec")]
#[repr(transparent)]
#[derive(Clone, Copy)]
pub struct IoSeg<'a> {
    raw: UserIovec,
    _borrow: PhantomData<&'a [u8]>,
}

/// One destination segment: `len` writable bytes at `base`, laid out exactly as
/// `struct iovec`. Built from a `&mut [u8]`, so segments never overlap. Used by
/// [`Iovec`] and [`Kvec`] destination iterators.
#[repr(transparent)]
pub struct IoSegMut<'a> {
    raw: UserIovec,
    _borrow: PhantomData<&'a mut [u8]>,
}

// Layout identity with `struct iovec` (`{ void *iov_base; size_t iov_len; }`).
static_assertions::assert_eq_size!(IoSeg<'static>, [usize; 2]);
static_assertions::assert_eq_size!(IoSegMut<'static>, [usize; 2]);
static_assertions::assert_eq_align!(IoSeg<'static>, usize);
static_assertions::const_assert_eq!(core::mem::offset_of!(UserIovec, base), 0);
static_assertions::const_assert_eq!(
    core::mem::offset_of!(UserIovec, len),
    core::mem::size_of::<usize>()
);
#[cfg(all(feature = "std", unix))]
static_assertions::assert_eq_size!(IoSeg<'static>, std::io::IoSlice<'static>);
#[cfg(all(feature = "std", unix))]
static_assertions::assert_eq_align!(IoSeg<'static>, std::io::IoSlice<'static>);
#[cfg(all(feature = "std", unix))]
static_assertions::assert_eq_size!(IoSegMut<'static>, std::io::IoSliceMut<'static>);

// SAFETY: an `IoSeg` is a `&[u8]` in iovec form; `[u8]` is `Sync`.
unsafe impl Send for IoSeg<'_> {}
// SAFETY: as above.
unsafe impl Sync for IoSeg<'_> {}
// SAFETY: an `IoSegMut` is a `&mut [u8]` in iovec form.
unsafe impl Send for IoSegMut<'_> {}
// SAFETY: shared access to an `IoSegMut` reads no bytes.
unsafe impl Sync for IoSegMut<'_> {}

impl<'a> IoSeg<'a> {
    /// A segment over `buf`.
    #[inline]
    pub const fn new(buf: &'a [u8]) -> IoSeg<'a> {
        IoSeg {
            raw: UserIovec {
                base: buf.as_ptr().cast_mut(),
                len: buf.len(),
            },
            _borrow: PhantomData,
        }
    }

    /// The segment's bytes.
    #[inline]
    pub fn as_slice(&self) -> &'a [u8] {
        // SAFETY: built from a `&'a [u8]` of exactly this base and length.
        unsafe { core::slice::from_raw_parts(self.raw.base, self.raw.len) }
    }

    /// Start address (`iov_base`).
    #[inline]
    pub fn base(&self) -> *const u8 {
        self.raw.base
    }

    /// Length in bytes (`iov_len`).
    #[inline]
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.raw.len
    }
}

impl<'a> IoSegMut<'a> {
    /// A segment over `buf`.
    #[inline]
    pub fn new(buf: &'a mut [u8]) -> IoSegMut<'a> {
        IoSegMut {
            raw: UserIovec {
                base: buf.as_mut_ptr(),
                len: buf.len(),
            },
            _borrow: PhantomData,
        }
    }

    /// The segment's bytes.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: built from a `&'a mut [u8]` of exactly this base and length,
        // and `&mut self` makes this the only access.
        unsafe { core::slice::from_raw_parts_mut(self.raw.base, self.raw.len) }
    }

    /// Start address (`iov_base`).
    #[inline]
    pub fn base(&self) -> *mut u8 {
        self.raw.base
    }

    /// Length in bytes (`iov_len`).
    #[inline]
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.raw.len
    }
}

impl<'a> From<&'a [u8]> for IoSeg<'a> {
    fn from(b: &'a [u8]) -> Self {
        IoSeg::new(b)
    }
}
impl<'a> From<&'a mut [u8]> for IoSegMut<'a> {
    fn from(b: &'a mut [u8]) -> Self {
        IoSegMut::new(b)
    }
}

impl fmt::Debug for IoSeg<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoSeg")
            .field("base", &self.raw.base)
            .field("len", &self.raw.len)
            .finish()
    }
}
impl fmt::Debug for IoSegMut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoSegMut")
            .field("base", &self.raw.base)
            .field("len", &self.raw.len)
            .finish()
    }
}

/// One source page segment (`struct bio_vec`): `len` bytes at `offset` in a
/// [`Page`] ([`BvecSeg::new`]) or in a [`Folio`](crate::Folio)
/// ([`BvecSeg::from_folio`], a multi-page bvec that may cover the whole
/// folio). The range never leaves its page or folio. Copies step through a
/// multi-page segment one page at a time, as the kernel's `iterate_bvec`
/// does; [`IovIter::raw_chunks`](crate::IovIter::raw_chunks) gives it as
/// one chunk.
///
/// # Examples
///
/// ```
/// use iov_iter::{Bvec, BvecSeg, IovIter, Page, Source};
/// let mut page = Page::new();
/// page.as_mut_bytes()[100..104].copy_from_slice(b"data");
/// let segs = [BvecSeg::new(&page, 100, 4)?];
/// let mut it = IovIter::<Source, Bvec>::new(&segs);
/// let mut out = [0u8; 4];
/// assert_eq!(it.copy_from_iter(&mut out), 4);
/// assert_eq!(&out, b"data");
/// // A range that leaves the page is refused.
/// assert!(BvecSeg::new(&page, 4000, 100).is_err());
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[doc(alias = "bio_vec")]
#[repr(transparent)]
#[derive(Clone, Copy)]
pub struct BvecSeg<'a> {
    raw: RawBvec,
    _borrow: PhantomData<&'a Page>,
}

/// One destination page segment (`struct bio_vec`) over an exclusively
/// borrowed [`Page`] or [`Folio`](crate::Folio) ([`BvecSegMut::from_folio`]).
/// See [`Page::bvecs_mut`] (and `Folio::bvecs_mut`) for several segments in
/// one page (or folio).
///
/// # Examples
///
/// ```
/// use iov_iter::{Bvec, BvecSegMut, Dest, IovIter, Page};
/// let mut page = Page::new();
/// let mut segs = [BvecSegMut::new(&mut page, 10, 4)?];
/// assert_eq!(IovIter::<Dest, Bvec>::new(&mut segs).copy_to_iter(b"data"), 4);
/// drop(segs);
/// assert_eq!(&page.as_bytes()[10..14], b"data");
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[repr(transparent)]
pub struct BvecSegMut<'a> {
    raw: RawBvec,
    _borrow: PhantomData<&'a mut Page>,
}

// `struct bio_vec { struct page *bv_page; unsigned int bv_len; unsigned int bv_offset; }`
static_assertions::assert_eq_size!(BvecSeg<'static>, [usize; 2]);
static_assertions::const_assert_eq!(core::mem::offset_of!(RawBvec, page), 0);
static_assertions::const_assert_eq!(core::mem::offset_of!(RawBvec, len), 8);
static_assertions::const_assert_eq!(core::mem::offset_of!(RawBvec, offset), 12);

// SAFETY: a `BvecSeg` is a `&Page` plus a range; `Page` is `Sync`.
unsafe impl Send for BvecSeg<'_> {}
// SAFETY: as above.
unsafe impl Sync for BvecSeg<'_> {}
// SAFETY: a `BvecSegMut` is a `&mut Page` plus a range; `Page` is `Send`.
unsafe impl Send for BvecSegMut<'_> {}
// SAFETY: shared access to a `BvecSegMut` reads no bytes.
unsafe impl Sync for BvecSegMut<'_> {}

impl<'a> BvecSeg<'a> {
    /// A segment over `len` bytes at `offset` in `page`; EFAULT if the range
    /// leaves the page.
    pub fn new(page: &'a Page, offset: usize, len: usize) -> crate::Result<BvecSeg<'a>> {
        check_range(offset, len)?;
        // Both fit in u32: offset + len <= PAGE_SIZE.
        Ok(BvecSeg {
            raw: RawBvec {
                page: NonNull::from(page),
                len: len as u32,
                offset: offset as u32,
            },
            _borrow: PhantomData,
        })
    }

    /// A segment over the whole page.
    pub fn full(page: &'a Page) -> BvecSeg<'a> {
        BvecSeg {
            raw: RawBvec {
                page: NonNull::from(page),
                len: crate::PAGE_SIZE as u32,
                offset: 0,
            },
            _borrow: PhantomData,
        }
    }

    /// A segment over `len` bytes at `offset` in `folio`: a multi-page
    /// bvec (`bvec_set_folio`), whose [`page`](BvecSeg::page) is the folio's
    /// head page and whose offset and length may exceed `PAGE_SIZE`.
    ///
    /// # Errors
    ///
    /// [`Error::PageRange`](crate::Error::PageRange) (EFAULT) if the range
    /// leaves the folio, as [`BvecSeg::new`] reports a range leaving its
    /// page.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{Bvec, BvecSeg, Error, Folio, IovIter, Source};
    /// let folio = Folio::new(4)?; // 64 KiB
    /// let seg = BvecSeg::from_folio(&folio, 100, 65000)?;
    /// assert_eq!((seg.offset(), seg.len(), seg.page().addr()), (100, 65000, folio.addr()));
    /// let segs = [seg];
    /// let it = IovIter::<Source, Bvec>::new(&segs);
    /// assert_eq!(it.npages(usize::MAX), 16);
    /// assert_eq!(it.raw_chunks().count(), 1);
    /// let err = BvecSeg::from_folio(&folio, 65000, 1000).unwrap_err();
    /// assert_eq!(err, Error::PageRange { offset: 65000, len: 1000 });
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "bvec_set_folio")]
    #[cfg(feature = "alloc")]
    pub fn from_folio(
        folio: &'a crate::Folio,
        offset: usize,
        len: usize,
    ) -> crate::Result<BvecSeg<'a>> {
        check_range_in(offset, len, folio.size())?;
        // Both fit in u32: offset + len <= the folio's size, at most 4 MiB.
        Ok(BvecSeg {
            raw: RawBvec {
                page: NonNull::from(folio.head()),
                len: len as u32,
                offset: offset as u32,
            },
            _borrow: PhantomData,
        })
    }

    /// A segment over the whole folio (`bvec_set_folio(bv, folio,
    /// folio_size(folio), 0)`).
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{BvecSeg, Folio};
    /// let folio = Folio::new(2)?;
    /// let seg = BvecSeg::full_folio(&folio);
    /// assert_eq!((seg.offset(), seg.len()), (0, 16384));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[cfg(feature = "alloc")]
    pub fn full_folio(folio: &'a crate::Folio) -> BvecSeg<'a> {
        BvecSeg {
            raw: RawBvec {
                page: NonNull::from(folio.head()),
                // At most 4 MiB.
                len: folio.size() as u32,
                offset: 0,
            },
            _borrow: PhantomData,
        }
    }

    /// The page (`bv_page`): for a segment over a folio, the folio's head
    /// page (`&folio->page`), whose [`addr`](Page::addr) is the folio's and
    /// whose flags are the folio's; its [`as_bytes`](Page::as_bytes) covers
    /// the first page only.
    pub fn page(&self) -> &'a Page {
        // SAFETY: built from a `&'a Page`.
        unsafe { self.raw.page.as_ref() }
    }
    /// Offset from the start of the page (`bv_offset`): from the folio's
    /// start for a segment over a folio.
    pub fn offset(&self) -> usize {
        self.raw.offset as usize
    }
    /// Length (`bv_len`).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.raw.len as usize
    }
}

impl<'a> BvecSegMut<'a> {
    /// A segment over `len` bytes at `offset` in `page`; EFAULT if the range
    /// leaves the page.
    pub fn new(page: &'a mut Page, offset: usize, len: usize) -> crate::Result<BvecSegMut<'a>> {
        check_range(offset, len)?;
        // SAFETY: the range lies in the page and `page` is exclusively
        // borrowed for 'a.
        Ok(unsafe { BvecSegMut::new_unchecked(page, offset, len) })
    }

    /// A segment over the whole page.
    pub fn full(page: &'a mut Page) -> BvecSegMut<'a> {
        // SAFETY: the whole page is in range and exclusively borrowed for 'a.
        unsafe { BvecSegMut::new_unchecked(page, 0, crate::PAGE_SIZE) }
    }

    /// A segment over `len` bytes at `offset` in an exclusively borrowed
    /// `folio`: a multi-page bvec (`bvec_set_folio`); see
    /// [`BvecSeg::from_folio`].
    ///
    /// # Errors
    ///
    /// [`Error::PageRange`](crate::Error::PageRange) (EFAULT) if the range
    /// leaves the folio.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{Bvec, BvecSegMut, Dest, Folio, IovIter};
    /// let mut folio = Folio::new(1)?;
    /// let addr = folio.addr();
    /// let mut segs = [BvecSegMut::from_folio(&mut folio, 4000, 200)?];
    /// assert_eq!((segs[0].page_addr(), segs[0].offset(), segs[0].len()), (addr, 4000, 200));
    /// let mut it = IovIter::<Dest, Bvec>::new(&mut segs);
    /// assert_eq!(it.copy_to_iter(&[7; 200]), 200);
    /// drop(segs);
    /// assert!(folio.as_bytes()[4000..4200].iter().all(|&b| b == 7));
    /// assert!(BvecSegMut::from_folio(&mut folio, 8000, 200).is_err());
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "bvec_set_folio")]
    #[cfg(feature = "alloc")]
    pub fn from_folio(
        folio: &'a mut crate::Folio,
        offset: usize,
        len: usize,
    ) -> crate::Result<BvecSegMut<'a>> {
        check_range_in(offset, len, folio.size())?;
        let folio: &'a crate::Folio = folio;
        // SAFETY: the range lies in the folio (checked above), whose head
        // page heads its memory, and `folio` is exclusively borrowed for 'a.
        Ok(unsafe { BvecSegMut::new_unchecked(folio.head(), offset, len) })
    }

    /// A segment over the whole, exclusively borrowed folio.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{BvecSegMut, Folio};
    /// let mut folio = Folio::new(2)?;
    /// let seg = BvecSegMut::full_folio(&mut folio);
    /// assert_eq!((seg.offset(), seg.len()), (0, 16384));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[cfg(feature = "alloc")]
    pub fn full_folio(folio: &'a mut crate::Folio) -> BvecSegMut<'a> {
        let size = folio.size();
        let folio: &'a crate::Folio = folio;
        // SAFETY: the whole folio is in range and exclusively borrowed for 'a.
        unsafe { BvecSegMut::new_unchecked(folio.head(), 0, size) }
    }

    /// # Safety
    ///
    /// - `offset + len` is at most `PAGE_SIZE`, or the folio's size when
    ///   `page` is a folio's head page;
    /// - for `'a`, nothing but this segment reads or writes those bytes
    ///   (for example `page` is exclusively borrowed, or the ranges handed
    ///   out of one exclusive borrow are disjoint).
    pub(crate) unsafe fn new_unchecked(
        page: &'a Page,
        offset: usize,
        len: usize,
    ) -> BvecSegMut<'a> {
        BvecSegMut {
            raw: RawBvec {
                page: NonNull::from(page),
                len: len as u32,
                offset: offset as u32,
            },
            _borrow: PhantomData,
        }
    }

    /// The page's flags (`bv_page`'s): the folio's for a segment over a
    /// folio. (No `&Page` is handed out: other segments of the same page may
    /// be written through meanwhile.)
    pub fn page_flags(&self) -> crate::PageFlags {
        // SAFETY: the page outlives 'a; only its atomic flags are read.
        unsafe { self.raw.page.as_ref() }.flags()
    }
    /// The page's address ([`Page::addr`]): the folio's
    /// ([`Folio::addr`](crate::Folio::addr)) for a segment over a folio.
    pub fn page_addr(&self) -> usize {
        // SAFETY: the page outlives 'a; only the frame address is read.
        unsafe { self.raw.page.as_ref() }.addr()
    }
    /// Offset from the start of the page (`bv_offset`): from the folio's
    /// start for a segment over a folio.
    pub fn offset(&self) -> usize {
        self.raw.offset as usize
    }
    /// Length (`bv_len`).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.raw.len as usize
    }
}

impl fmt::Debug for BvecSeg<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BvecSeg")
            .field("page", &format_args!("{:#x}", self.page().addr()))
            .field("offset", &self.raw.offset)
            .field("len", &self.raw.len)
            .finish()
    }
}
impl fmt::Debug for BvecSegMut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BvecSegMut")
            .field("page", &format_args!("{:#x}", self.page_addr()))
            .field("offset", &self.raw.offset)
            .field("len", &self.raw.len)
            .finish()
    }
}
