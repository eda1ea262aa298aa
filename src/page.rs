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
/// the `Page` exists: allocated by [`Page::new`] (and freed on drop) or
/// lent for `'static` by [`Page::from_static`].
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
        for (i, &(off, len)) in ranges.iter().enumerate() {
            check_range(off, len)?;
            for &(off2, len2) in &ranges[..i] {
                if len != 0 && len2 != 0 && off < off2 + len2 && off2 < off + len {
                    return Err(crate::Error::OverlappingRanges);
                }
            }
        }
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
    match offset.checked_add(len) {
        Some(end) if end <= PAGE_SIZE => Ok(()),
        _ => Err(crate::Error::PageRange { offset, len }),
    }
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

/// A refcounted page handle (`get_page` / `put_page`): what an I/O in flight
/// holds on the pages it reads, as the kernel's `bio_vec` does. Cloning takes
/// a reference; dropping puts it.
#[doc(alias = "get_page")]
#[doc(alias = "put_page")]
#[cfg(feature = "alloc")]
pub type PageRef = alloc::sync::Arc<Page>;
