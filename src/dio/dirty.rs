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
///
/// # Examples
///
/// A tracker of one's own, recording the ranges a read landed in:
///
/// ```
/// use std::sync::Mutex;
/// use iov_iter::backend::mem::MemDevice;
/// use iov_iter::dio::{DirectIo, DirtyTracker};
/// use iov_iter::kiocb::{Kiocb, Submitted};
/// use iov_iter::{Dest, IovIter, Page, Ubuf};
///
/// struct Ranges(Mutex<Vec<(usize, usize)>>);
/// impl DirtyTracker for Ranges {
///     fn mark_dirty(&self, addr: usize, len: usize) {
///         self.0.lock().unwrap().push((addr, len));
///     }
/// }
///
/// let dev = MemDevice::new(8192);
/// let mut page = Page::new();
/// let addr = page.as_bytes().as_ptr() as usize;
/// let log = Ranges(Mutex::default());
/// let mut dst = IovIter::<Dest, Ubuf>::new(&mut page.as_mut_bytes()[..1024]);
/// assert_eq!(dev.direct_io_tracked(&mut Kiocb::new_sync(0), &mut dst, &log)?, Submitted::Done(1024));
/// assert_eq!(*log.0.lock().unwrap(), [(addr, 1024)]);
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[doc(alias = "bio_set_pages_dirty")]
#[doc(alias = "set_page_dirty_lock")]
pub trait DirtyTracker {
    /// `len` bytes at address `addr` were (or may have been) written.
    ///
    /// ```
    /// use iov_iter::dio::{DirtyBitmap, DirtyTracker};
    /// let log = DirtyBitmap::new(0x10000, 2 * 4096);
    /// log.mark_dirty(0x10000 + 4096, 1);
    /// log.mark_dirty(0x40000, 4096); // outside the region: ignored
    /// assert_eq!(log.take_dirty(), [1]);
    /// ```
    fn mark_dirty(&self, addr: usize, len: usize);
}

/// Tracks nothing: what [`DirectIo::direct_io`](super::DirectIo::direct_io)
/// passes.
///
/// ```
/// use iov_iter::backend::mem::MemDevice;
/// use iov_iter::dio::{DirectIo, NoDirtyTracking};
/// use iov_iter::kiocb::{Kiocb, Submitted};
/// use iov_iter::{Dest, IovIter, Page, Ubuf};
/// let dev = MemDevice::new(4096);
/// let mut page = Page::new();
/// let mut dst = IovIter::<Dest, Ubuf>::new(page.as_mut_bytes());
/// let done = dev.direct_io_tracked(&mut Kiocb::new_sync(0), &mut dst, &NoDirtyTracking);
/// assert_eq!(done, Ok(Submitted::Done(4096)));
/// ```
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
#[doc(alias = "dirty_bitmap")]
#[doc(alias = "AtomicBitmap")]
pub struct DirtyBitmap {
    start: usize,
    len: usize,
    bits: Vec<AtomicU64>,
}

impl DirtyBitmap {
    /// A clean bitmap over `len` bytes at address `start`: bit `i` is the
    /// `i`-th page from the one holding `start`.
    ///
    /// ```
    /// use iov_iter::dio::{DirtyBitmap, DirtyTracker};
    /// let log = DirtyBitmap::new(0x1800, 4096); // from the middle of a page
    /// log.mark_dirty(0x1800 + 4095, 1); // the last byte: in the next page
    /// assert_eq!((log.is_dirty(0), log.is_dirty(1)), (false, true));
    /// ```
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
    ///
    /// ```
    /// use iov_iter::dio::{DirtyBitmap, DirtyTracker};
    /// let buf = vec![0u8; 3 * 4096];
    /// let log = DirtyBitmap::for_slice(&buf);
    /// log.mark_dirty(buf.as_ptr() as usize + buf.len(), 1); // just past it: ignored
    /// assert_eq!(log.dirty_pages().count(), 0);
    /// log.mark_dirty(buf.as_ptr() as usize, 1);
    /// assert!(log.is_dirty(0));
    /// ```
    pub fn for_slice(buf: &[u8]) -> DirtyBitmap {
        DirtyBitmap::new(buf.as_ptr() as usize, buf.len())
    }

    /// Whether page `index` (counted from the page holding `start`) is dirty.
    ///
    /// ```
    /// use iov_iter::dio::{DirtyBitmap, DirtyTracker};
    /// let log = DirtyBitmap::new(0, 2 * 4096);
    /// log.mark_dirty(4096, 4096);
    /// assert!(!log.is_dirty(0) && log.is_dirty(1));
    /// assert!(!log.is_dirty(1000)); // past the region
    /// ```
    pub fn is_dirty(&self, index: usize) -> bool {
        self.bits
            .get(index / 64)
            .is_some_and(|w| w.load(Ordering::Acquire) & (1 << (index % 64)) != 0)
    }

    /// Indices of the dirty pages, ascending (without clearing them: see
    /// [`DirtyBitmap::take_dirty`]).
    ///
    /// ```
    /// use iov_iter::dio::{DirtyBitmap, DirtyTracker};
    /// let log = DirtyBitmap::new(0, 100 * 4096);
    /// log.mark_dirty(70 * 4096, 1);
    /// log.mark_dirty(3 * 4096, 2 * 4096);
    /// assert_eq!(log.dirty_pages().collect::<Vec<_>>(), [3, 4, 70]);
    /// assert_eq!(log.dirty_pages().count(), 3); // still set
    /// ```
    pub fn dirty_pages(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.bits.len() * 64).filter(|&i| self.is_dirty(i))
    }

    /// Clears every bit.
    ///
    /// ```
    /// use iov_iter::dio::{DirtyBitmap, DirtyTracker};
    /// let log = DirtyBitmap::new(0, 4096);
    /// log.mark_dirty(0, 1);
    /// log.clear();
    /// assert!(!log.is_dirty(0));
    /// ```
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
