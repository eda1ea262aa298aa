//! [`Folio`]: 2^order physically contiguous, naturally aligned pages with one
//! set of flags (`struct folio`), the memory of a multi-page
//! [`Bvec`](crate::Bvec) segment.
//!
//! Linux reference: `include/linux/mm_types.h` (`struct folio`),
//! `include/linux/mm.h` (`folio_order`, `folio_nr_pages`, `folio_size`,
//! `folio_shift`, `folio_address`, `folio_put`), `include/linux/gfp.h`
//! (`folio_alloc`), `include/linux/pagemap.h` (`folio_trylock`,
//! `folio_unlock`), `include/linux/bvec.h` (`bvec_set_folio`, multi-page
//! bvecs).
//!
//! A [`Folio`] of order `n` owns `PAGE_SIZE << n` bytes, aligned to that
//! size as the buddy allocator aligns a compound page. Its flags are those
//! of its head page: the crate's [`Page`] at the folio's first frame, which
//! is what a [`BvecSeg`]'s [`page`](BvecSeg::page) (`bv_page`) names for a
//! segment over a folio, as the kernel's `bvec_set_folio` stores
//! `&folio->page`. A folio segment may cover the whole folio: `bv_len` and
//! `bv_offset` may exceed [`PAGE_SIZE`], and the page walks of an iterator
//! ([`npages`](crate::IovIter::npages),
//! [`extract_pages`](crate::IovIter::extract_pages),
//! [`get_pages`](crate::IovIter::get_pages)) still count and name single
//! pages, while a direct-I/O backend receives the segment as one chunk
//! ([`raw_chunks`](crate::IovIter::raw_chunks)).
//!
//! | kernel | here |
//! |---|---|
//! | `struct folio` | [`Folio`] |
//! | `folio_alloc` (`__GFP_ZERO`) | [`Folio::new`] |
//! | `folio_get` / `folio_put` | [`FolioRef`] (`Arc::clone` / drop) |
//! | `folio_order`, `folio_nr_pages`, `folio_size`, `folio_shift` | [`Folio::order`], [`Folio::nr_pages`], [`Folio::size`], [`Folio::shift`] |
//! | `folio_address` | [`Folio::addr`] |
//! | `folio_test_*`, `folio_set_*`, `folio_clear_*`, `folio_trylock`, `folio_unlock` | [`Folio::test`], [`Folio::set_flags`], [`Folio::clear_flags`], [`Folio::trylock`], [`Folio::unlock`] |
//! | `bvec_set_folio` | [`Folio::bvec`], [`Folio::bvec_mut`], [`BvecSeg::from_folio`], [`BvecSegMut::from_folio`] |
//! | `MAX_PAGE_ORDER` | [`MAX_PAGE_ORDER`] |
//! | a `mempool_t` of folios of one order | [`FolioPool`] |

use core::alloc::Layout;
use core::fmt;
use core::ptr::NonNull;

use crate::error::{Errno, Error, Result};
use crate::page::{PAGE_SHIFT, PAGE_SIZE, Page, PageFlags, PageFrame, check_disjoint_ranges};
use crate::seg::{BvecSeg, BvecSegMut};

/// The largest folio order [`Folio::new`] accepts (`MAX_PAGE_ORDER`, 10 on
/// x86-64: 1024 pages, 4 MiB). Order 9 (`PMD_ORDER`, 2 MiB) is the size of
/// a transparent huge page.
///
/// # Examples
///
/// ```
/// use iov_iter::{Errno, Folio, MAX_PAGE_ORDER, PAGE_SIZE};
/// assert_eq!(PAGE_SIZE << MAX_PAGE_ORDER, 4 << 20);
/// let err = Folio::new(MAX_PAGE_ORDER + 1).unwrap_err();
/// assert_eq!(err.errno(), Errno::EINVAL);
/// ```
#[doc(alias = "MAX_ORDER")]
pub const MAX_PAGE_ORDER: u32 = 10;

/// 2^order contiguous pages, aligned to their total size, with atomic
/// [`PageFlags`] (`struct folio`).
///
/// Reading the bytes needs `&Folio`, writing them `&mut Folio`, as for a
/// [`Page`]. The memory is zeroed when the folio is allocated
/// ([`Folio::new`]); a [`FolioPool`] hands out recycled folios without
/// zeroing them.
///
/// # Invariants
///
/// `head` is a [`Page`] over the first frame of an allocation of
/// `PAGE_SIZE << order` bytes aligned to that size, `order <=
/// MAX_PAGE_ORDER`; the memory is initialised, owned by this folio alone and
/// freed when it drops. `head` does not free it and is never lent as
/// `&mut`.
///
/// # Examples
///
/// ```
/// use iov_iter::{Folio, PageFlags, PAGE_SIZE};
/// let mut folio = Folio::new(4)?; // 16 pages, 64 KiB
/// assert_eq!((folio.nr_pages(), folio.size()), (16, 16 * PAGE_SIZE));
/// assert_eq!(folio.addr() % folio.size(), 0); // naturally aligned
/// folio.as_mut_bytes()[PAGE_SIZE - 2..PAGE_SIZE + 2].copy_from_slice(b"span");
/// folio.set_flags(PageFlags::UPTODATE);
/// assert!(folio.test(PageFlags::UPTODATE));
/// assert_eq!(&folio.as_bytes()[PAGE_SIZE - 2..PAGE_SIZE + 2], b"span");
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[doc(alias = "folio")]
pub struct Folio {
    head: Page,
    order: u8,
}

static_assertions::assert_impl_all!(Folio: Send, Sync);

impl Folio {
    /// The allocation layout of a folio of `order`, or EINVAL above
    /// [`MAX_PAGE_ORDER`].
    fn layout(order: u32) -> Result<Layout> {
        if order > MAX_PAGE_ORDER {
            return Err(Error::InvalidArgument("folio order above MAX_PAGE_ORDER"));
        }
        let size = PAGE_SIZE << order;
        // A power of two up to 4 MiB: always a valid layout.
        Layout::from_size_align(size, size)
            .map_err(|_| Error::InvalidArgument("folio order above MAX_PAGE_ORDER"))
    }

    /// Allocates a zeroed folio of `PAGE_SIZE << order` bytes, aligned to
    /// its size (`folio_alloc(GFP_KERNEL | __GFP_ZERO, order)`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] (EINVAL) for `order > MAX_PAGE_ORDER`;
    /// [`Error::Os`]`(ENOMEM)` when the memory cannot be allocated (no
    /// abort).
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{Errno, Folio};
    /// let folio = Folio::new(2)?;
    /// assert_eq!(folio.size(), 16384);
    /// assert!(folio.as_bytes().iter().all(|&b| b == 0));
    /// assert_eq!(Folio::new(11).unwrap_err().errno(), Errno::EINVAL);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "folio_alloc")]
    #[doc(alias = "alloc_pages")]
    pub fn new(order: u32) -> Result<Folio> {
        let layout = Self::layout(order)?;
        // SAFETY: the layout has a non-zero size (at least PAGE_SIZE).
        let ptr = unsafe { alloc::alloc::alloc_zeroed(layout) };
        let frame = NonNull::new(ptr.cast::<PageFrame>()).ok_or(Error::Os(Errno::ENOMEM))?;
        // SAFETY: `frame` starts a fresh, zeroed allocation of the folio's
        // size (the pointer the allocator returned, so it covers all of it),
        // owned by the folio built here, which frees it only in `drop`, after
        // its head stops being reachable, and lends its head only as `&Page`.
        let head = unsafe { Page::folio_head(frame) };
        // INVARIANT: as above; `order <= MAX_PAGE_ORDER` (checked by
        // `layout`), so it fits in a u8.
        Ok(Folio {
            head,
            order: order as u8,
        })
    }

    /// The order: the folio holds `1 << order` pages (`folio_order`).
    ///
    /// # Examples
    ///
    /// ```
    /// let folio = iov_iter::Folio::new(3)?;
    /// assert_eq!(folio.order(), 3);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "folio_order")]
    #[inline]
    pub fn order(&self) -> u32 {
        u32::from(self.order)
    }

    /// Number of pages (`folio_nr_pages`): `1 << order`.
    ///
    /// # Examples
    ///
    /// ```
    /// let folio = iov_iter::Folio::new(3)?;
    /// assert_eq!(folio.nr_pages(), 8);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "folio_nr_pages")]
    #[inline]
    pub fn nr_pages(&self) -> usize {
        1 << self.order
    }

    /// Size in bytes (`folio_size`): `PAGE_SIZE << order`.
    ///
    /// # Examples
    ///
    /// ```
    /// let folio = iov_iter::Folio::new(0)?;
    /// assert_eq!(folio.size(), iov_iter::PAGE_SIZE);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "folio_size")]
    #[inline]
    pub fn size(&self) -> usize {
        PAGE_SIZE << self.order
    }

    /// `log2` of the size (`folio_shift`): `PAGE_SHIFT + order`.
    ///
    /// # Examples
    ///
    /// ```
    /// let folio = iov_iter::Folio::new(4)?;
    /// assert_eq!(1 << folio.shift(), folio.size());
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "folio_shift")]
    #[inline]
    pub fn shift(&self) -> u32 {
        PAGE_SHIFT + self.order()
    }

    /// Start address (`folio_address`): a multiple of [`Folio::size`], and
    /// the [`Page::addr`] of its head page.
    ///
    /// # Examples
    ///
    /// ```
    /// let folio = iov_iter::Folio::new(5)?;
    /// assert_eq!(folio.addr() % (4096 << 5), 0);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "folio_address")]
    #[inline]
    pub fn addr(&self) -> usize {
        self.head.addr()
    }

    /// The folio's bytes, all of its pages.
    ///
    /// # Examples
    ///
    /// ```
    /// let folio = iov_iter::Folio::new(1)?;
    /// assert_eq!(folio.as_bytes().len(), 8192);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: by the invariant the head's frame starts `size()` live,
        // initialised bytes owned by this folio (and its pointer covers them
        // all); `&self` excludes writers, which need `&mut Folio`.
        unsafe { core::slice::from_raw_parts(self.head.data_ptr(), self.size()) }
    }

    /// The folio's bytes, mutably.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut folio = iov_iter::Folio::new(1)?;
    /// folio.as_mut_bytes()[8191] = 7;
    /// assert_eq!(folio.as_bytes()[8191], 7);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[inline]
    pub fn as_mut_bytes(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_bytes`; `&mut self` makes this the only access.
        unsafe { core::slice::from_raw_parts_mut(self.head.data_ptr(), self.size()) }
    }

    /// The head page, whose flags are the folio's (`&folio->page`).
    #[inline]
    pub(crate) fn head(&self) -> &Page {
        &self.head
    }

    /// The current flags (`folio->flags`).
    ///
    /// # Examples
    ///
    /// ```
    /// let folio = iov_iter::Folio::new(0)?;
    /// assert!(folio.flags().is_empty());
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[inline]
    pub fn flags(&self) -> PageFlags {
        self.head.flags()
    }

    /// Whether all of `flags` are set (`folio_test_dirty`,
    /// `folio_test_uptodate`, ...).
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{Folio, PageFlags};
    /// let folio = Folio::new(0)?;
    /// folio.set_flags(PageFlags::DIRTY);
    /// assert!(folio.test(PageFlags::DIRTY));
    /// assert!(!folio.test(PageFlags::DIRTY | PageFlags::UPTODATE));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "folio_test_dirty")]
    #[doc(alias = "folio_test_uptodate")]
    #[doc(alias = "folio_test_locked")]
    #[doc(alias = "folio_test_writeback")]
    #[inline]
    pub fn test(&self, flags: PageFlags) -> bool {
        self.head.test(flags)
    }

    /// Sets `flags` (`folio_mark_dirty`, `folio_mark_uptodate`,
    /// `folio_set_reclaim`, ...).
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{Folio, PageFlags};
    /// let folio = Folio::new(0)?;
    /// folio.set_flags(PageFlags::UPTODATE | PageFlags::DIRTY);
    /// assert_eq!(folio.flags(), PageFlags::UPTODATE | PageFlags::DIRTY);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "folio_mark_dirty")]
    #[doc(alias = "folio_mark_uptodate")]
    #[doc(alias = "folio_set_reclaim")]
    #[inline]
    pub fn set_flags(&self, flags: PageFlags) {
        self.head.set_flags(flags);
    }

    /// Clears `flags` (`folio_clear_dirty`, `folio_clear_reclaim`, ...).
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{Folio, PageFlags};
    /// let folio = Folio::new(0)?;
    /// folio.set_flags(PageFlags::UPTODATE | PageFlags::DIRTY);
    /// folio.clear_flags(PageFlags::DIRTY);
    /// assert_eq!(folio.flags(), PageFlags::UPTODATE);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "folio_clear_dirty")]
    #[doc(alias = "folio_clear_reclaim")]
    #[inline]
    pub fn clear_flags(&self, flags: PageFlags) {
        self.head.clear_flags(flags);
    }

    /// Sets `flags` and says whether all of them were already set
    /// (`folio_test_set_writeback`).
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{Folio, PageFlags};
    /// let folio = Folio::new(0)?;
    /// assert!(!folio.test_and_set(PageFlags::WRITEBACK));
    /// assert!(folio.test_and_set(PageFlags::WRITEBACK));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "folio_test_set_writeback")]
    #[inline]
    pub fn test_and_set(&self, flags: PageFlags) -> bool {
        self.head.test_and_set(flags)
    }

    /// Clears `flags` and says whether all of them were set
    /// (`folio_test_clear_dirty`, `folio_clear_dirty_for_io`).
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{Folio, PageFlags};
    /// let folio = Folio::new(0)?;
    /// folio.set_flags(PageFlags::DIRTY);
    /// assert!(folio.test_and_clear(PageFlags::DIRTY));
    /// assert!(!folio.test_and_clear(PageFlags::DIRTY));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "folio_test_clear_dirty")]
    #[doc(alias = "folio_clear_dirty_for_io")]
    #[inline]
    pub fn test_and_clear(&self, flags: PageFlags) -> bool {
        self.head.test_and_clear(flags)
    }

    /// Takes the folio lock bit if it is free (`folio_trylock`). As for a
    /// [`Page`], the lock is a flag for the caller's protocol; byte access is
    /// governed by borrows.
    ///
    /// # Examples
    ///
    /// ```
    /// let folio = iov_iter::Folio::new(0)?;
    /// assert!(folio.trylock());
    /// assert!(!folio.trylock());
    /// folio.unlock();
    /// assert!(folio.trylock());
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "folio_trylock")]
    #[inline]
    pub fn trylock(&self) -> bool {
        self.head.trylock()
    }

    /// Releases the folio lock bit (`folio_unlock`).
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{Folio, PageFlags};
    /// let folio = Folio::new(0)?;
    /// assert!(folio.trylock());
    /// folio.unlock();
    /// assert!(!folio.test(PageFlags::LOCKED));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "folio_unlock")]
    #[inline]
    pub fn unlock(&self) {
        self.head.unlock();
    }

    /// A [`BvecSeg`] over `len` bytes at `offset` of this folio, for a
    /// [`Source`](crate::Source) iterator (`bvec_set_folio`); see
    /// [`BvecSeg::from_folio`].
    ///
    /// # Errors
    ///
    /// [`Error::PageRange`] (EFAULT) when the range leaves the folio.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{Bvec, Folio, IovIter, Source};
    /// let mut folio = Folio::new(1)?;
    /// folio.as_mut_bytes()[4094..4098].copy_from_slice(b"abcd");
    /// let segs = [folio.bvec(4094, 4)?];
    /// let mut out = [0u8; 4];
    /// assert_eq!(IovIter::<Source, Bvec>::new(&segs).copy_from_iter(&mut out), 4);
    /// assert_eq!(&out, b"abcd");
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "bvec_set_folio")]
    pub fn bvec(&self, offset: usize, len: usize) -> Result<BvecSeg<'_>> {
        BvecSeg::from_folio(self, offset, len)
    }

    /// A [`BvecSegMut`] over `len` bytes at `offset` of this folio, for a
    /// [`Dest`](crate::Dest) iterator; see [`BvecSegMut::from_folio`].
    ///
    /// # Errors
    ///
    /// [`Error::PageRange`] (EFAULT) when the range leaves the folio.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{Bvec, Dest, Folio, IovIter};
    /// let mut folio = Folio::new(1)?;
    /// let mut segs = [folio.bvec_mut(4094, 4)?];
    /// assert_eq!(IovIter::<Dest, Bvec>::new(&mut segs).copy_to_iter(b"abcd"), 4);
    /// drop(segs);
    /// assert_eq!(&folio.as_bytes()[4094..4098], b"abcd");
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "bvec_set_folio")]
    pub fn bvec_mut(&mut self, offset: usize, len: usize) -> Result<BvecSegMut<'_>> {
        BvecSegMut::from_folio(self, offset, len)
    }

    /// Several disjoint [`BvecSegMut`]s over one folio, given as `(offset,
    /// len)` pairs, as [`Page::bvecs_mut`] does for a page. Ranges must lie
    /// in the folio ([`Error::PageRange`], EFAULT) and must not overlap
    /// ([`Error::OverlappingRanges`], EINVAL).
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{Bvec, Dest, Error, Folio, IovIter};
    /// let mut folio = Folio::new(2)?;
    /// let mut segs = folio.bvecs_mut([(8192, 8192), (0, 100)])?;
    /// let it = IovIter::<Dest, Bvec>::new(&mut segs);
    /// assert_eq!(it.count(), 8292);
    /// drop(segs);
    /// assert_eq!(folio.bvecs_mut([(0, 10), (5, 10)]).unwrap_err(), Error::OverlappingRanges);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn bvecs_mut<const N: usize>(
        &mut self,
        ranges: [(usize, usize); N],
    ) -> Result<[BvecSegMut<'_>; N]> {
        check_disjoint_ranges(&ranges, self.size())?;
        let this: &Folio = self;
        // SAFETY: every range lies in the folio and no two overlap (checked
        // above), and `self` stays mutably borrowed for the returned
        // segments' lifetime, so each segment is the only access to its bytes.
        Ok(ranges.map(|(off, len)| unsafe { BvecSegMut::new_unchecked(this.head(), off, len) }))
    }
}

impl Drop for Folio {
    fn drop(&mut self) {
        // `layout` cannot fail for an order `new` accepted.
        if let Ok(layout) = Self::layout(self.order()) {
            // SAFETY: by the invariant the memory at the head's frame was
            // allocated by `new` with this layout and is owned by this folio
            // alone; the head page, dropped next, does not touch it.
            unsafe { alloc::alloc::dealloc(self.head.data_ptr(), layout) };
        }
    }
}

impl fmt::Debug for Folio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Folio")
            .field("addr", &format_args!("{:#x}", self.addr()))
            .field("order", &self.order)
            .field("flags", &self.flags())
            .finish()
    }
}

/// A refcounted folio handle (`folio_get` / `folio_put`), as an I/O in flight
/// holds on the folios it reads. Cloning takes a reference; dropping the last
/// one frees the folio.
///
/// # Examples
///
/// ```
/// use iov_iter::{Folio, FolioRef};
/// let folio: FolioRef = FolioRef::new(Folio::new(2)?);
/// let in_flight = FolioRef::clone(&folio); // folio_get
/// assert_eq!(FolioRef::strong_count(&folio), 2);
/// drop(in_flight); // folio_put
/// assert_eq!(folio.size(), 16384);
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[doc(alias = "folio_get")]
#[doc(alias = "folio_put")]
pub type FolioRef = alloc::sync::Arc<Folio>;

/// A free list of folios of one order (a `mempool` of folios), as
/// [`PagePool`](crate::PagePool) is for pages: [`FolioPool::get`] hands out
/// a recycled [`Folio`] when it has one, **without zeroing it**, and
/// allocates a fresh zeroed folio otherwise; [`FolioPool::put`] takes a
/// folio back, up to [`FolioPool::max_cached`] folios, and frees the rest.
///
/// # Stale data
///
/// As with [`PagePool`](crate::PagePool#stale-data): a recycled folio holds
/// whatever its previous user left in it (initialised, so reading is safe,
/// but stale). Flags are cleared when a folio is put back, so a folio from
/// the pool is unlocked, clean and not uptodate. [`Folio::new`] always
/// zeroes.
///
/// The pool is `Send` and `Sync`: one spin lock, held for a push or a pop,
/// guards the free list.
///
/// # Examples
///
/// ```
/// use iov_iter::{FolioPool, PageFlags};
///
/// let pool = FolioPool::with_capacity(4, 2)?; // order-4 (64 KiB) folios
/// let mut folio = pool.get()?; // empty pool: fresh and zeroed
/// assert_eq!(folio.order(), 4);
/// folio.as_mut_bytes()[65535] = 0xaa;
/// folio.set_flags(PageFlags::LOCKED | PageFlags::DIRTY);
/// let addr = folio.addr();
/// pool.put(folio);
///
/// let folio = pool.get()?; // the same memory, flags cleared, bytes kept
/// assert_eq!((folio.addr(), folio.flags()), (addr, PageFlags::empty()));
/// assert_eq!(folio.as_bytes()[65535], 0xaa);
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[doc(alias = "mempool")]
#[doc(alias = "mempool_t")]
pub struct FolioPool {
    free: crate::sync::FreeList<Folio>,
    order: u32,
}

static_assertions::assert_impl_all!(FolioPool: Send, Sync);

impl FolioPool {
    /// An empty pool of folios of `order` that keeps at most `max_cached`
    /// folios put back (nothing is allocated up front). With 0,
    /// [`FolioPool::put`] frees every folio and [`FolioPool::get`] always
    /// allocates.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] (EINVAL) for `order > MAX_PAGE_ORDER`.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{Errno, FolioPool, MAX_PAGE_ORDER};
    /// let pool = FolioPool::with_capacity(9, 8)?;
    /// assert_eq!((pool.order(), pool.max_cached(), pool.len()), (9, 8, 0));
    /// let err = FolioPool::with_capacity(MAX_PAGE_ORDER + 1, 8).unwrap_err();
    /// assert_eq!(err.errno(), Errno::EINVAL);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "mempool_create")]
    pub const fn with_capacity(order: u32, max_cached: usize) -> Result<FolioPool> {
        if order > MAX_PAGE_ORDER {
            return Err(Error::InvalidArgument("folio order above MAX_PAGE_ORDER"));
        }
        Ok(FolioPool {
            free: crate::sync::FreeList::new(max_cached),
            order,
        })
    }

    /// A folio of the pool's order: the most recently put back one if there
    /// is any (its bytes are stale, see the [type docs](FolioPool#stale-data);
    /// its flags are clear), else a freshly allocated zeroed folio
    /// ([`Folio::new`]).
    ///
    /// # Errors
    ///
    /// [`Error::Os`]`(ENOMEM)` when the pool is empty and no folio can be
    /// allocated.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = iov_iter::FolioPool::with_capacity(1, 1)?;
    /// let folio = pool.get()?;
    /// assert_eq!(folio.size(), 8192);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "mempool_alloc")]
    #[doc(alias = "folio_alloc")]
    pub fn get(&self) -> Result<Folio> {
        // The lock is released before a fresh folio is allocated.
        match self.free.take() {
            Some(folio) => Ok(folio),
            None => Folio::new(self.order),
        }
    }

    /// Takes `folio` back: clears its flags and keeps it for a later
    /// [`FolioPool::get`], or frees it when the pool already holds
    /// [`FolioPool::max_cached`] folios or when the folio is of another
    /// order than the pool's. The bytes are left as they are.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{Folio, FolioPool};
    /// let pool = FolioPool::with_capacity(1, 4)?;
    /// pool.put(pool.get()?);
    /// pool.put(Folio::new(2)?); // another order: freed, not kept
    /// assert_eq!(pool.len(), 1);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "mempool_free")]
    #[doc(alias = "folio_put")]
    pub fn put(&self, mut folio: Folio) {
        if folio.order() != self.order {
            return;
        }
        folio.head.reset_flags();
        self.free.give(folio);
    }

    /// Folios held for reuse.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = iov_iter::FolioPool::with_capacity(0, 4)?;
    /// pool.put(pool.get()?);
    /// assert_eq!(pool.len(), 1);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.free.len()
    }

    /// Whether the pool holds no folio.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = iov_iter::FolioPool::with_capacity(0, 4)?;
    /// assert!(pool.is_empty());
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Most folios the pool keeps.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = iov_iter::FolioPool::with_capacity(0, 4)?;
    /// assert_eq!(pool.max_cached(), 4);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn max_cached(&self) -> usize {
        self.free.max()
    }

    /// The order of the pool's folios.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = iov_iter::FolioPool::with_capacity(3, 4)?;
    /// assert_eq!(pool.order(), 3);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn order(&self) -> u32 {
        self.order
    }
}

impl fmt::Debug for FolioPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FolioPool")
            .field("order", &self.order)
            .field("len", &self.len())
            .field("max_cached", &self.max_cached())
            .finish()
    }
}
