//! Dirty tracking after direct reads into user-backed memory: the
//! [`DirtyTracker`] hook and [`DirtyBitmap`], a VMM's dirty log.
//!
//! Linux reference: `block/bio.c` (`bio_set_pages_dirty`), `fs/iomap/direct-io.c`
//! (`IOMAP_DIO_DIRTY`).

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Errno, Error, Result};
use crate::page::{PAGE_OFFSET_MASK, PAGE_SIZE};

/// Receives the pages a direct read landed in (the kernel's
/// `bio_set_pages_dirty` / `set_page_dirty_lock`). Called only for
/// [`should_dirty`](super::should_dirty) iterators, with byte ranges of the destination memory.
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
    ///
    /// # Panics
    ///
    /// Never aborts on a size it cannot allocate: it panics (use
    /// [`DirtyBitmap::try_new`] for an error instead).
    pub fn new(start: usize, len: usize) -> DirtyBitmap {
        match DirtyBitmap::try_new(start, len) {
            Ok(bm) => bm,
            Err(e) => panic!("DirtyBitmap over {len} bytes: {e}"),
        }
    }

    /// A clean bitmap over `len` bytes at address `start`, or `ENOMEM` when
    /// its bits cannot be allocated (`DirtyBitmap::try_new(0, usize::MAX)`
    /// asks for 2^46 words).
    ///
    /// # Errors
    ///
    /// `Error::Os(Errno::ENOMEM)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::dio::DirtyBitmap;
    /// use iov_iter::Errno;
    /// assert_eq!(DirtyBitmap::try_new(0, usize::MAX).unwrap_err().errno(), Errno::ENOMEM);
    /// assert_eq!(DirtyBitmap::try_new(0, 8192)?.dirty_pages().count(), 0);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn try_new(start: usize, len: usize) -> Result<DirtyBitmap> {
        let pages = len
            .saturating_add(start & PAGE_OFFSET_MASK)
            .div_ceil(PAGE_SIZE);
        let words = pages.div_ceil(64);
        let mut bits = Vec::new();
        bits.try_reserve_exact(words)
            .map_err(|_| Error::Os(Errno::ENOMEM))?;
        bits.extend((0..words).map(|_| AtomicU64::new(0)));
        Ok(DirtyBitmap { start, len, bits })
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

    /// Takes the dirty log: returns the indices of the pages dirty now and
    /// clears exactly those bits, one atomic swap per word, so a page
    /// dirtied while this runs is either returned or stays set for the next
    /// call, never lost (a VMM's migration loop: copy what this returns,
    /// repeat).
    ///
    /// ```
    /// use iov_iter::dio::{DirtyBitmap, DirtyTracker};
    /// let bm = DirtyBitmap::new(0, 130 * 4096);
    /// bm.mark_dirty(129 * 4096, 1);
    /// bm.mark_dirty(0, 4097);
    /// assert_eq!(bm.take_dirty(), [0, 1, 129]);
    /// assert!(bm.take_dirty().is_empty());
    /// ```
    #[doc(alias = "KVM_GET_DIRTY_LOG")]
    pub fn take_dirty(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for (w, word) in self.bits.iter().enumerate() {
            let mut bits = word.swap(0, Ordering::AcqRel);
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                out.push(w * 64 + b);
                bits &= bits - 1;
            }
        }
        out
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
