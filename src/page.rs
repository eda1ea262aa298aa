//! [`Page`]: an aligned 4 KiB page frame with page flags, the memory a
//! [`Bvec`](crate::Bvec) iterator points into.
//!
//! Linux reference: `include/linux/mm_types.h` (`struct page`),
//! `include/linux/page-flags.h`.
//!
//! A [`Page`] owns one [`PageFrame`] (4096 bytes, 4096-aligned, so it is fit
//! for `O_DIRECT`) and a set of atomic [`PageFlags`]. Reading its bytes needs
//! `&Page`; writing them needs `&mut Page`, so the borrow checker plays the
//! role of the kernel's page lock for the data. [`PageRef`] is the refcounted
//! handle (`get_page` / `put_page`) that an I/O in flight holds on the pages
//! it reads from, as a `bio_vec` does.
//!
//! A [`Folio`](crate::Folio) (feature `alloc`) is 2^order such frames in one
//! naturally aligned block; its flags live in its head `Page`, as the
//! kernel's `folio->flags` are the head page's.

use core::fmt;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};

/// Size of a page, in bytes (`PAGE_SIZE`).
pub const PAGE_SIZE: usize = 4096;
/// `log2(PAGE_SIZE)` (`PAGE_SHIFT`).
pub const PAGE_SHIFT: u32 = 12;
/// Mask of the in-page offset bits (`PAGE_SIZE - 1`; the kernel's `~PAGE_MASK`).
pub const PAGE_OFFSET_MASK: usize = PAGE_SIZE - 1;

bitflags::bitflags! {
    /// Page flags (`PG_*`), a subset of the kernel's with its meaning.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct PageFlags: u32 {
        /// `PG_locked`: somebody holds the page lock.
        const LOCKED = 1 << 0;
        /// `PG_error`: an I/O error happened on the page (legacy).
        const ERROR = 1 << 1;
        /// `PG_uptodate`: the page holds valid data.
        const UPTODATE = 1 << 3;
        /// `PG_dirty`: the page must be written back before it is dropped.
        const DIRTY = 1 << 4;
        /// `PG_writeback`: the page is being written back.
        const WRITEBACK = 1 << 9;
        /// `PG_reclaim`: the page is to be reclaimed once writeback ends.
        const RECLAIM = 1 << 18;
    }
}

/// The bytes of one page: 4096 bytes aligned to 4096.
///
/// # Examples
///
/// ```
/// use iov_iter::{PageFrame, PAGE_SIZE};
/// assert_eq!(core::mem::align_of::<PageFrame>(), PAGE_SIZE);
/// let f = PageFrame::zeroed();
/// assert!(f.0.iter().all(|&b| b == 0));
/// ```
#[repr(C, align(4096))]
pub struct PageFrame(pub [u8; PAGE_SIZE]);

static_assertions::const_assert_eq!(core::mem::size_of::<PageFrame>(), PAGE_SIZE);
static_assertions::const_assert_eq!(core::mem::align_of::<PageFrame>(), PAGE_SIZE);

impl PageFrame {
    /// A frame of zeros.
    pub const fn zeroed() -> PageFrame {
        PageFrame([0; PAGE_SIZE])
    }
}

impl fmt::Debug for PageFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageFrame")
            .field("addr", &self.0.as_ptr())
            .finish()
    }
}

/// One page: a [`PageFrame`] plus atomic [`PageFlags`] (`struct page`).
///
/// # Invariants
///
/// `frame` points to a live, exclusively owned [`PageFrame`] for as long as
/// the `Page` exists: allocated by [`Page::new`] (and freed on drop), lent
/// for `'static` by [`Page::from_static`], or the first frame of a
/// [`Folio`](crate::Folio)'s memory, which the folio owns and frees after
/// this `Page`, its head, stops being reachable. In that last case the frame
/// is followed by the rest of the folio (`frame` carries the provenance of
/// the whole allocation), and nothing hands out a `&mut Page` for the head.
///
/// # Examples
///
/// ```
/// use iov_iter::{Page, PageFlags};
/// let mut page = Page::new();
/// page.as_mut_bytes()[..5].copy_from_slice(b"hello");
/// page.set_flags(PageFlags::UPTODATE | PageFlags::DIRTY);
/// assert!(page.test(PageFlags::DIRTY));
/// assert_eq!(&page.as_bytes()[..5], b"hello");
/// assert_eq!(page.addr() % 4096, 0);
/// ```
pub struct Page {
    frame: NonNull<PageFrame>,
    flags: AtomicU32,
    #[cfg_attr(not(feature = "alloc"), allow(dead_code))]
    owned: bool,
}

// SAFETY: `Page` owns its frame like a `Box<[u8; 4096]>` does: shared access
// only reads the bytes, writes need `&mut Page`, and the flags are atomic.
unsafe impl Send for Page {}
// SAFETY: as above; `&Page` gives read-only access to the bytes and atomic
// access to the flags.
unsafe impl Sync for Page {}

impl Page {
    /// Allocates a zeroed page. Aborts through
    /// [`handle_alloc_error`](alloc::alloc::handle_alloc_error) when memory is
    /// exhausted; see [`Page::try_new`] for the fallible form.
    #[doc(alias = "alloc_page")]
    #[cfg(feature = "alloc")]
    pub fn new() -> Page {
        match Page::try_new() {
            Ok(p) => p,
            Err(_) => alloc::alloc::handle_alloc_error(Self::layout()),
        }
    }

    /// Allocates a zeroed page, or fails with ENOMEM.
    #[cfg(feature = "alloc")]
    pub fn try_new() -> crate::Result<Page> {
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc::alloc::alloc_zeroed(Self::layout()) };
        match NonNull::new(ptr.cast::<PageFrame>()) {
            // INVARIANT: a fresh allocation of the right layout, owned here.
            Some(frame) => Ok(Page {
                frame,
                flags: AtomicU32::new(0),
                owned: true,
            }),
            None => Err(crate::Error::Os(crate::Errno::ENOMEM)),
        }
    }

    #[cfg(feature = "alloc")]
    fn layout() -> core::alloc::Layout {
        core::alloc::Layout::new::<PageFrame>()
    }

    /// The head page of a folio: a `Page` over the first frame of `frame`'s
    /// memory that does not free it.
    ///
    /// # Safety
    ///
    /// `frame` points to the start of live, initialised memory that the
    /// caller owns exclusively (a folio's frames, pointer taken from the
    /// allocation so it covers all of them) and keeps alive, unmoved, for as
    /// long as the returned `Page` exists; the caller never hands out a
    /// `&mut` to the returned `Page`.
    #[cfg(feature = "alloc")]
    pub(crate) unsafe fn folio_head(frame: NonNull<PageFrame>) -> Page {
        // INVARIANT: the caller keeps the frame live and owned for the
        // page's life; `owned: false`, so dropping the page frees nothing.
        Page {
            frame,
            flags: AtomicU32::new(0),
            owned: false,
        }
    }

    /// Clears every flag through the unique handle (a pool taking a page or
    /// folio back).
    #[cfg(feature = "alloc")]
    #[inline]
    pub(crate) fn reset_flags(&mut self) {
        *self.flags.get_mut() = 0;
    }

    /// Wraps a frame that lives forever (for `no_std` users without an
    /// allocator).
    pub fn from_static(frame: &'static mut PageFrame) -> Page {
        // INVARIANT: the frame is exclusively borrowed for 'static.
        Page {
            frame: NonNull::from(frame),
            flags: AtomicU32::new(0),
            owned: false,
        }
    }

    /// The page's bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8; PAGE_SIZE] {
        // SAFETY: by the type invariant the frame is live and owned by this
        // page; `&self` excludes writers, which need `&mut Page`.
        unsafe { &self.frame.as_ref().0 }
    }

    /// The page's bytes, mutably.
    #[inline]
    pub fn as_mut_bytes(&mut self) -> &mut [u8; PAGE_SIZE] {
        // SAFETY: by the type invariant the frame is live and owned by this
        // page; `&mut self` makes this the only access.
        unsafe { &mut self.frame.as_mut().0 }
    }

    /// Start address of the frame: the page's identity, always a multiple of
    /// [`PAGE_SIZE`] (`page_address`).
    #[doc(alias = "page_address")]
    #[inline]
    pub fn addr(&self) -> usize {
        self.frame.as_ptr() as usize
    }

    /// Raw pointer to the first byte of the frame.
    #[inline]
    pub(crate) fn data_ptr(&self) -> *mut u8 {
        self.frame.as_ptr().cast::<u8>()
    }

    /// The current flags.
    #[inline]
    pub fn flags(&self) -> PageFlags {
        PageFlags::from_bits_retain(self.flags.load(Ordering::Acquire))
    }

    /// Whether all of `flags` are set (`PageDirty`, `PageUptodate`, ...).
    #[doc(alias = "PageDirty")]
    #[doc(alias = "PageUptodate")]
    #[inline]
    pub fn test(&self, flags: PageFlags) -> bool {
        self.flags().contains(flags)
    }

    /// Sets `flags` (`SetPageDirty`, `SetPageUptodate`, ...).
    #[doc(alias = "SetPageDirty")]
    #[doc(alias = "SetPageUptodate")]
    #[doc(alias = "set_page_dirty")]
    #[inline]
    pub fn set_flags(&self, flags: PageFlags) {
        self.flags.fetch_or(flags.bits(), Ordering::AcqRel);
    }

    /// Clears `flags` (`ClearPageDirty`, `ClearPageReclaim`, ...).
    #[doc(alias = "ClearPageDirty")]
    #[doc(alias = "ClearPageReclaim")]
    #[inline]
    pub fn clear_flags(&self, flags: PageFlags) {
        self.flags.fetch_and(!flags.bits(), Ordering::AcqRel);
    }

    /// Sets `flags` and says whether all of them were already set
    /// (`TestSetPageWriteback`).
    #[inline]
    pub fn test_and_set(&self, flags: PageFlags) -> bool {
        PageFlags::from_bits_retain(self.flags.fetch_or(flags.bits(), Ordering::AcqRel))
            .contains(flags)
    }

    /// Clears `flags` and says whether all of them were set
    /// (`TestClearPageDirty`, `clear_page_dirty_for_io`).
    #[doc(alias = "clear_page_dirty_for_io")]
    #[inline]
    pub fn test_and_clear(&self, flags: PageFlags) -> bool {
        PageFlags::from_bits_retain(self.flags.fetch_and(!flags.bits(), Ordering::AcqRel))
            .contains(flags)
    }

    /// Takes the page lock bit if it is free (`trylock_page`). The lock is a
    /// flag for the caller's protocol; byte access is governed by borrows.
    #[doc(alias = "trylock_page")]
    #[inline]
    pub fn trylock(&self) -> bool {
        !self.test_and_set(PageFlags::LOCKED)
    }

    /// Releases the page lock bit (`unlock_page`).
    #[doc(alias = "unlock_page")]
    #[inline]
    pub fn unlock(&self) {
        self.clear_flags(PageFlags::LOCKED);
    }

    /// A [`BvecSeg`](crate::BvecSeg) over `len` bytes at `offset` of this page,
    /// for a [`Source`](crate::Source) iterator.
    pub fn bvec(&self, offset: usize, len: usize) -> crate::Result<crate::BvecSeg<'_>> {
        crate::BvecSeg::new(self, offset, len)
    }

    /// A [`BvecSegMut`](crate::BvecSegMut) over `len` bytes at `offset` of
    /// this page, for a [`Dest`](crate::Dest) iterator.
    pub fn bvec_mut(&mut self, offset: usize, len: usize) -> crate::Result<crate::BvecSegMut<'_>> {
        crate::BvecSegMut::new(self, offset, len)
    }

    /// Several disjoint [`BvecSegMut`](crate::BvecSegMut)s over one page, given
    /// as `(offset, len)` pairs: the way to point two destination segments
    /// into one page. Ranges must lie in the page (EFAULT) and must not
    /// overlap (EINVAL).
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{Dest, IovIter, Bvec, Page};
    /// let mut page = Page::new();
    /// let mut segs = page.bvecs_mut([(0, 0xffb), (0xffd, 1)])?;
    /// let it = IovIter::<Dest, Bvec>::new(&mut segs);
    /// assert_eq!(it.count(), 0xffc);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn bvecs_mut<const N: usize>(
        &mut self,
        ranges: [(usize, usize); N],
    ) -> crate::Result<[crate::BvecSegMut<'_>; N]> {
        check_disjoint_ranges(&ranges, PAGE_SIZE)?;
        let this: &Page = self;
        // SAFETY: every range lies in the page and no two overlap (checked
        // above), and `self` stays mutably borrowed for the returned
        // segments' lifetime, so each segment is the only access to its bytes.
        Ok(ranges.map(|(off, len)| unsafe { crate::BvecSegMut::new_unchecked(this, off, len) }))
    }
}

/// Checks that `len` bytes at `offset` lie inside one page (`page_copy_sane`
/// for a single page).
#[inline]
pub(crate) fn check_range(offset: usize, len: usize) -> crate::Result<()> {
    check_range_in(offset, len, PAGE_SIZE)
}

/// Checks that `len` bytes at `offset` lie inside `size` bytes
/// (`page_copy_sane`: a page, or a folio of `size` bytes).
#[inline]
pub(crate) fn check_range_in(offset: usize, len: usize, size: usize) -> crate::Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(crate::Error::PageRange { offset, len }),
    }
}

/// Checks that every `(offset, len)` range lies inside `size` bytes
/// ([`Error::PageRange`](crate::Error::PageRange), EFAULT) and that no two
/// non-empty ranges overlap ([`Error::OverlappingRanges`](crate::Error::OverlappingRanges),
/// EINVAL).
pub(crate) fn check_disjoint_ranges(ranges: &[(usize, usize)], size: usize) -> crate::Result<()> {
    for (i, &(off, len)) in ranges.iter().enumerate() {
        check_range_in(off, len, size)?;
        for &(off2, len2) in &ranges[..i] {
            // OVERFLOW: both ranges end at most at `size` (checked).
            if len != 0 && len2 != 0 && off < off2 + len2 && off2 < off + len {
                return Err(crate::Error::OverlappingRanges);
            }
        }
    }
    Ok(())
}

#[cfg(feature = "alloc")]
impl Default for Page {
    fn default() -> Self {
        Page::new()
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        #[cfg(feature = "alloc")]
        if self.owned {
            // SAFETY: `owned` pages were allocated by `try_new` with this
            // layout, and this is the only owner.
            unsafe { alloc::alloc::dealloc(self.frame.as_ptr().cast(), Self::layout()) };
        }
    }
}

impl fmt::Debug for Page {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Page")
            .field("addr", &format_args!("{:#x}", self.addr()))
            .field("flags", &self.flags())
            .finish()
    }
}

/// A free list of page frames (a `mempool` of pages): [`PagePool::get`]
/// hands out a recycled [`Page`] when it has one, **without zeroing it**,
/// and allocates a fresh zeroed page otherwise; [`PagePool::put`] takes a
/// page back, up to [`PagePool::max_cached`] pages, and frees the rest.
///
/// This is for pages that an I/O is about to overwrite, such as a swap-in
/// page that a read fills completely: the kernel does not zero a swap-in
/// folio either. Zeroing a 4 KiB page and allocating it aligned costs more
/// than the rest of a 4 KiB read's user-space work.
///
/// # Stale data
///
/// A recycled page holds **whatever its previous user left in it**. The
/// bytes are initialised, so reading them is safe, but they are stale: a
/// read that comes back short leaves the rest of the page with old data,
/// not zeros (check the byte count, as the swap path does by not marking
/// such a page uptodate), and a page put back here can show its contents
/// to the next user of the pool. Do not put pages holding data that the
/// pool's other users must not see; [`Page::new`] and [`Page::try_new`]
/// always zero. Flags are cleared when a page is put back, so a page from
/// the pool is unlocked, clean and not uptodate.
///
/// The pool is `Send` and `Sync`: one lock (a spin lock held for a push or
/// a pop, so no `std` is needed) guards the free list.
///
/// # Examples
///
/// ```
/// use iov_iter::{PageFlags, PagePool};
///
/// let pool = PagePool::with_capacity(8);
/// let mut page = pool.get()?; // The pool is empty: a fresh, zeroed page.
/// assert!(page.as_bytes().iter().all(|&b| b == 0));
/// page.as_mut_bytes()[0] = 0xaa;
/// page.set_flags(PageFlags::UPTODATE | PageFlags::LOCKED);
/// let addr = page.addr();
/// pool.put(page);
/// assert_eq!(pool.len(), 1);
///
/// // The same frame comes back, flags cleared and bytes NOT zeroed.
/// let page = pool.get()?;
/// assert_eq!(page.addr(), addr);
/// assert!(page.flags().is_empty());
/// assert_eq!(page.as_bytes()[0], 0xaa);
/// assert!(pool.is_empty());
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[doc(alias = "alloc_page")]
#[doc(alias = "mempool")]
#[doc(alias = "mempool_t")]
#[cfg(feature = "alloc")]
pub struct PagePool {
    free: crate::sync::FreeList<Page>,
}

#[cfg(feature = "alloc")]
static_assertions::assert_impl_all!(PagePool: Send, Sync);

#[cfg(feature = "alloc")]
impl PagePool {
    /// An empty pool that keeps at most `max_cached` pages put back
    /// (`mempool_create` without a reserve: nothing is allocated up front).
    /// With 0, [`PagePool::put`] frees every page and [`PagePool::get`]
    /// always allocates.
    #[doc(alias = "mempool_create")]
    pub const fn with_capacity(max_cached: usize) -> PagePool {
        PagePool {
            free: crate::sync::FreeList::new(max_cached),
        }
    }

    /// A page: the most recently put back one if there is any (its bytes
    /// are stale, see the [type docs](PagePool#stale-data); its flags are
    /// clear), else a freshly allocated zeroed page ([`Page::try_new`]).
    ///
    /// # Errors
    ///
    /// [`Error::Os`](crate::Error::Os)`(ENOMEM)` when the pool is empty and
    /// no page can be allocated.
    #[doc(alias = "mempool_alloc")]
    #[doc(alias = "alloc_page")]
    pub fn get(&self) -> crate::Result<Page> {
        // The lock is released before a fresh page is allocated.
        match self.free.take() {
            Some(page) => Ok(page),
            None => Page::try_new(),
        }
    }

    /// Takes `page` back: clears its flags and keeps it for a later
    /// [`PagePool::get`], or frees it when the pool already holds
    /// [`PagePool::max_cached`] pages. The bytes are left as they are.
    #[doc(alias = "mempool_free")]
    #[doc(alias = "put_page")]
    pub fn put(&self, mut page: Page) {
        page.reset_flags();
        self.free.give(page);
    }

    /// Pages held for reuse.
    pub fn len(&self) -> usize {
        self.free.len()
    }

    /// Whether the pool holds no page.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Most pages the pool keeps.
    pub fn max_cached(&self) -> usize {
        self.free.max()
    }
}

#[cfg(feature = "alloc")]
impl fmt::Debug for PagePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PagePool")
            .field("len", &self.len())
            .field("max_cached", &self.max_cached())
            .finish()
    }
}

/// A refcounted page handle (`get_page` / `put_page`): what an I/O in flight
/// holds on the pages it reads, as the kernel's `bio_vec` does. Cloning takes
/// a reference; dropping puts it.
#[doc(alias = "get_page")]
#[doc(alias = "put_page")]
#[cfg(feature = "alloc")]
pub type PageRef = alloc::sync::Arc<Page>;

#[cfg(all(test, feature = "alloc"))]
mod tests {
    //! The page pool, without syscalls (runs under Miri).

    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn recycled_pages_are_reused_with_flags_cleared_and_bytes_kept() {
        let pool = PagePool::with_capacity(4);
        assert!(pool.is_empty());
        let mut page = pool.get().unwrap();
        assert!(
            page.as_bytes()[..] == [0; PAGE_SIZE][..],
            "fresh pages are zeroed"
        );
        page.as_mut_bytes().fill(0x5c);
        page.set_flags(PageFlags::all());
        let addr = page.addr();
        pool.put(page);
        assert_eq!(pool.len(), 1);
        let page = pool.get().unwrap();
        assert_eq!(page.addr(), addr, "the same frame");
        assert_eq!(page.flags(), PageFlags::empty());
        assert!(page.trylock(), "a recycled page is unlocked");
        assert!(
            page.as_bytes()[..] == [0x5c; PAGE_SIZE][..],
            "stale, not zeroed"
        );
        assert!(pool.is_empty());
    }

    #[test]
    fn the_pool_keeps_at_most_max_cached_pages() {
        let pool = PagePool::with_capacity(2);
        assert_eq!(pool.max_cached(), 2);
        let pages: Vec<Page> = (0..5).map(|_| pool.get().unwrap()).collect();
        let addrs: Vec<usize> = pages.iter().map(Page::addr).collect();
        for page in pages {
            pool.put(page);
        }
        assert_eq!(pool.len(), 2, "the rest were freed");
        // Last in, first out: the first two pages put back were kept.
        assert_eq!(pool.get().unwrap().addr(), addrs[1]);
        assert_eq!(pool.get().unwrap().addr(), addrs[0]);
        assert!(pool.is_empty());
        // An empty pool allocates.
        let fresh = pool.get().unwrap();
        assert!(fresh.as_bytes()[..] == [0; PAGE_SIZE][..]);
    }

    #[test]
    fn a_pool_of_zero_frees_everything() {
        let pool = PagePool::with_capacity(0);
        pool.put(Page::new());
        assert_eq!(pool.len(), 0);
        assert!(alloc::format!("{pool:?}").contains("max_cached: 0"));
    }

    #[test]
    #[cfg(feature = "std")]
    fn threads_share_a_pool() {
        let pool = alloc::sync::Arc::new(PagePool::with_capacity(16));
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let pool = alloc::sync::Arc::clone(&pool);
                std::thread::spawn(move || {
                    for _ in 0..8 {
                        let mut page = pool.get().unwrap();
                        page.as_mut_bytes().fill(t);
                        assert!(page.as_bytes()[..] == [t; PAGE_SIZE][..]);
                        pool.put(page);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!((1..=4).contains(&pool.len()));
    }
}
