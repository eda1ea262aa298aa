//! Swap-out and swap-in of whole pages through direct I/O, batched like the
//! kernel's `struct swap_iocb`.
//!
//! Linux reference: `mm/page_io.c` (`swap_writepage_fs`, `swap_write_unplug`,
//! `sio_write_complete`, `swap_read_folio_fs`, `swap_read_unplug`,
//! `sio_read_complete`), `mm/vmscan.c` (`pageout`: `folio_clear_dirty_for_io`,
//! `folio_set_reclaim`), `mm/filemap.c` (`folio_end_writeback`).
//!
//! # The path of a page
//!
//! * **Swap-out** ([`SwapDevice::swap_writepage`]): the page's `DIRTY` bit is
//!   taken with `test_and_clear` (a clean page is not written), `RECLAIM`
//!   and `WRITEBACK` are set, `PSWPOUT` is counted (at submission, as
//!   mainline does), and the page joins the [`SwapPlug`]'s write batch. A
//!   batch is one kiocb over a [`Source`] [`OwnedIter`] of up to
//!   [`SWAP_CLUSTER_MAX`] page references at consecutive slots of one
//!   device (the kernel's bvec of page references); it is
//!   submitted when it is full, when the next page is not at the next slot
//!   (or is for another device), and on unplug. Without a plug every page is
//!   its own kiocb.
//! * **Write completion** (`sio_write_complete`): anything but the full
//!   length marks *every* page of the batch `DIRTY` again and clears
//!   `RECLAIM` (the error may be temporary; the pages stay in memory for a
//!   retry, and no `ERROR` bit is set). Then writeback ends on every page
//!   (`WRITEBACK` and, as `folio_end_writeback` does, `RECLAIM` cleared).
//! * **Swap-in** ([`SwapDevice::swap_readpage`]): a page is taken from the
//!   device's [`PagePool`] (a recycled frame, not zeroed, since the read
//!   overwrites it, or a fresh zeroed one) and `LOCKED` (the swap-cache
//!   folio), and joins the plug's read batch,
//!   merged by the same rules, read through a [`Dest`] [`OwnedIter`] of the
//!   pages (the program's own memory, like a bvec: `should_dirty` is
//!   false and no page is dirtied by the read).
//! * **Read completion** (`sio_read_complete`): the full length marks every
//!   page `UPTODATE` and counts `PSWPIN` (at completion, as the fs path does);
//!   anything else marks *no* page uptodate and reports the error for every
//!   page of the batch. Every page is unlocked either way. [`SwapIn`] is the
//!   caller's handle on the page, like waiting on the folio lock. A caller
//!   done with a swapped-in page hands it back with
//!   [`SwapDevice::put_page`]. A recycled page whose read failed keeps
//!   stale bytes from its last use; it is not uptodate, so nobody reads it
//!   as data.
//!
//! # One I/O path ([`IoMode`])
//!
//! Every batch is one kiocb carrying an [`OwnedIter`] of its pages (page
//! references for a write, locked pool pages for a read), submitted with
//! [`DirectIo::submit`] to an `Arc<dyn DirectIo>`: the same call and the
//! same buffer types in every mode. The pages come back with the
//! completion, which runs `sio_write_complete` / `sio_read_complete`.
//!
//! * [`IoMode::Sync`]: sync kiocbs ([`Kiocb::new_sync_with`]); the
//!   submission returns the byte count, fed to the completion at once, as
//!   `swap_write_unplug` does with any return other than `-EIOCBQUEUED`.
//! * [`IoMode::AsyncInline`]: async kiocbs ([`Kiocb::with_callback`]) on a
//!   target that completes them before `submit` returns (the `O_DIRECT`
//!   file, a RAM device).
//! * [`IoMode::Uring`]: async kiocbs on a target that keeps them in flight
//!   (io_uring, feature `uring`); completions run when the device is
//!   driven ([`SwapDevice::poll`], [`SwapDevice::drain`],
//!   [`SwapDevice::wait_any`], [`SwapIn::wait`]).
//!
//! # Swap-in into the caller's memory
//!
//! [`SwapDevice::swap_read_into`] reads a slot into one page of memory the
//! caller owns (a [`GuestBuf`] over a [`SharedRegion`](iov_iter::buf::SharedRegion),
//! e.g. the page-cache page of a memfd behind an alias mapping) instead of
//! a pool page: the same swap cache rules (a page under writeback,
//! redirtied or read ahead is copied, a zero slot zero-filled, both without
//! I/O), and on a miss a read kiocb straight over the caller's memory,
//! merged in the plug with reads of the next slots like the page reads.

use std::fmt;
use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use iov_iter::backend::file::DirectFile;
#[cfg(feature = "uring")]
use iov_iter::backend::uring::{UringBuilder, UringQueue};
use iov_iter::buf::{GuestBuf, IoBuf, IoBufMut, OwnedIter};
use iov_iter::dio::{DioAlign, DioBuf, DirectIo};
use iov_iter::kiocb::{IocbFlags, Kiocb, Submitted};
use iov_iter::{
    Dest, Error as IoError, Folio, FolioRef, PAGE_SIZE, Page, PageFlags, PagePool, PageRef, Source,
};

use crate::activate::SwapFile;
use crate::latency::{LatencyHist, LatencySummary};
use crate::swapcache::{Entry, SwapCache, is_zero_filled};
use crate::swapmap::{Slot, SlotRange, SlotRng, SwapMap, SwapMapError};
use smallvec::SmallVec;

/// Most pages in one swap kiocb (`SWAP_CLUSTER_MAX`, the size of
/// `swap_iocb.bvec[]`).
pub const SWAP_CLUSTER_MAX: usize = 32;

/// How many error messages a device keeps (the kernel rate-limits them).
const ERROR_LOG_MAX: usize = 16;

/// Most swap-in pages a device keeps for reuse (1 MiB): more than a queue
/// depth of 32 and the pages its caller still holds.
pub const PAGE_POOL_MAX: usize = 8 * SWAP_CLUSTER_MAX;

/// The default readahead cluster, `2^3 = 8` slots (`vm.page-cluster`).
pub const PAGE_CLUSTER_DEFAULT: u32 = 3;

/// The largest readahead cluster accepted, `2^5 = 32` slots (a kiocb's
/// worth).
pub const PAGE_CLUSTER_MAX: u32 = 5;

/// A swap-out of a page (or folio) that is not uptodate: refused, as the
/// kernel's `folio_alloc_swap` does not take one (`VM_BUG_ON`).
const NOT_UPTODATE: IoError = IoError::InvalidArgument("swap-out of a page that is not uptodate");

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Completions never panic while holding these locks; a poisoned lock
    // still holds consistent data.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------
// Errors.

/// Why a batch did not complete: the `ret != sio->len` of the completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoFailure {
    /// The backend (or the submission) failed with this error.
    Error(IoError),
    /// Only `done` of `len` bytes were transferred.
    Short {
        /// Bytes transferred.
        done: usize,
        /// Bytes asked.
        len: usize,
    },
}

impl IoFailure {
    /// `None` for a complete transfer of `len` bytes.
    fn check(result: Result<usize, IoError>, len: usize) -> Option<IoFailure> {
        match result {
            Ok(n) if n == len => None,
            Ok(done) => Some(IoFailure::Short { done, len }),
            Err(e) => Some(IoFailure::Error(e)),
        }
    }
}

impl fmt::Display for IoFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoFailure::Error(e) => write!(f, "{e}"),
            IoFailure::Short { done, len } => write!(f, "short transfer: {done} of {len} bytes"),
        }
    }
}

/// What can go wrong on the swap paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwapError {
    /// The read batch holding `slot` failed; the page is not uptodate.
    Read {
        /// The slot read.
        slot: Slot,
        /// Why the batch failed.
        failure: IoFailure,
    },
    /// The page is already under writeback, or the slot is (a swap-out to
    /// a slot whose write or whose requested swap-in is on its way).
    Busy(Slot),
    /// A swap-in of a slot whose last write failed: its data is the
    /// redirtied page its owner holds (dirty, in memory), and the device's
    /// copy is stale, so nothing is read. Written again or freed, the slot
    /// reads normally.
    InMemory(Slot),
    /// The slot is not allocated in the swap map (or out of range).
    BadSlot(Slot),
    /// A swap-map operation failed.
    Map(SwapMapError),
    /// Setting up or driving the backend failed.
    Backend(IoError),
    /// Opening the swap file for direct I/O failed.
    Open(String),
    /// The requested mode is not available in this build.
    Unsupported(&'static str),
    /// Not enough free slots.
    NoSpace {
        /// Slots asked for.
        wanted: u64,
        /// Slots free.
        free: u64,
    },
}

impl fmt::Display for SwapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SwapError::Read { slot, failure } => write!(f, "read error on swap {slot}: {failure}"),
            SwapError::Busy(slot) => write!(f, "page for swap {slot} is already under writeback"),
            SwapError::InMemory(slot) => write!(
                f,
                "swap {slot}: its last write failed; its data is the redirtied page in memory"
            ),
            SwapError::BadSlot(slot) => write!(f, "swap {slot} is not allocated"),
            SwapError::Map(e) => write!(f, "{e}"),
            SwapError::Backend(e) => write!(f, "swap backend: {e}"),
            SwapError::Open(msg) => f.write_str(msg),
            SwapError::Unsupported(msg) => f.write_str(msg),
            SwapError::NoSpace { wanted, free } => {
                write!(f, "swap area full: {wanted} slots wanted, {free} free")
            }
        }
    }
}

impl std::error::Error for SwapError {}

impl SwapError {
    /// The positive errno: the backend's for I/O and backend failures
    /// (`EIO` for a short read), `EBUSY`, `EEXIST` for a slot whose data is
    /// the redirtied page in memory, `EINVAL` for a slot not allocated and
    /// for swap-map errors, `EOPNOTSUPP`, `ENOSPC`.
    pub fn errno(&self) -> i32 {
        match self {
            SwapError::Read {
                failure: IoFailure::Error(e),
                ..
            }
            | SwapError::Backend(e) => e.errno().raw(),
            SwapError::Read { .. } => libc::EIO,
            SwapError::Busy(_) => libc::EBUSY,
            SwapError::InMemory(_) => libc::EEXIST,
            SwapError::BadSlot(_) | SwapError::Open(_) => libc::EINVAL,
            SwapError::Map(e) => e.errno(),
            SwapError::Unsupported(_) => libc::EOPNOTSUPP,
            SwapError::NoSpace { .. } => libc::ENOSPC,
        }
    }
}

// ---------------------------------------------------------------------------
// Counters.

/// A snapshot of a device's counters (`/proc/vmstat`'s `pswpin` and
/// `pswpout`, plus what batching and error handling did).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwapCounters {
    /// Pages read in successfully (counted at completion).
    pub pswpin: u64,
    /// Pages submitted for swap-out (counted at submission).
    pub pswpout: u64,
    /// Write kiocbs submitted.
    pub write_batches: u64,
    /// Read kiocbs submitted.
    pub read_batches: u64,
    /// Pages that joined an existing write batch (`pages - batches`).
    pub merged_write_pages: u64,
    /// Pages that joined an existing read batch.
    pub merged_read_pages: u64,
    /// Write kiocbs that completed with anything but their full length.
    pub write_errors: u64,
    /// Read kiocbs that completed with anything but their full length.
    pub read_errors: u64,
    /// Pages marked dirty again by failed writes.
    pub redirtied_pages: u64,
    /// Pages left not uptodate by failed reads.
    pub read_failed_pages: u64,
    /// `write_batch_sizes[n]`: write kiocbs of `n` pages.
    pub write_batch_sizes: [u64; SWAP_CLUSTER_MAX + 1],
    /// `read_batch_sizes[n]`: read kiocbs of `n` pages.
    pub read_batch_sizes: [u64; SWAP_CLUSTER_MAX + 1],
    /// Swap-ins served from the swap cache without I/O: a page under
    /// writeback or redirtied, or a read already on its way.
    pub cache_hits: u64,
    /// Pages read ahead (neighbours of a swap-in nobody asked for yet).
    pub readahead_pages: u64,
    /// Swap-ins that found their page read ahead (cached, or in flight).
    pub readahead_hits: u64,
    /// Read-ahead pages dropped unused (the cache's bound).
    pub readahead_evicted: u64,
    /// Swap-outs of all-zero pages: no write, the slot marked (zeromap).
    pub zero_pages_out: u64,
    /// Swap-ins of zero slots: zeros, no read.
    pub zero_pages_in: u64,
    /// `swap_free`s deferred until the slot's I/O completed.
    pub deferred_frees: u64,
    /// Large folios written as one segment (`THP_SWPOUT` / mTHP
    /// `swpout`).
    pub folios_out: u64,
    /// Large folios read as one segment (mTHP `swpin`).
    pub folios_in: u64,
    /// Large folios split into pages for swap-out
    /// (`THP_SWPOUT_FALLBACK`).
    pub folio_splits: u64,
}

impl SwapCounters {
    /// Pages submitted in write kiocbs.
    pub fn written_pages(&self) -> u64 {
        weighted(&self.write_batch_sizes)
    }

    /// Pages submitted in read kiocbs.
    pub fn read_pages(&self) -> u64 {
        weighted(&self.read_batch_sizes)
    }

    /// The largest write kiocb, in pages.
    pub fn max_write_batch(&self) -> usize {
        self.write_batch_sizes
            .iter()
            .rposition(|&n| n > 0)
            .unwrap_or(0)
    }

    /// The largest read kiocb, in pages.
    pub fn max_read_batch(&self) -> usize {
        self.read_batch_sizes
            .iter()
            .rposition(|&n| n > 0)
            .unwrap_or(0)
    }
}

fn weighted(hist: &[u64]) -> u64 {
    hist.iter().enumerate().map(|(i, &n)| i as u64 * n).sum()
}

/// Per-kiocb latencies (submission to completion) since the last
/// [`SwapDevice::take_latencies`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latencies {
    /// Write kiocbs.
    pub write: LatencySummary,
    /// Read kiocbs.
    pub read: LatencySummary,
}

/// What completions update: counters, latencies, the error log. Shared with
/// completions running on other threads; holds no backend (so an in-flight
/// completion does not keep the device alive).
///
/// The counters every kiocb updates come first and share one cache line
/// (`repr(C)` keeps the order, the alignment starts the line): a swap-in
/// or swap-out touches few lines of its own.
#[repr(C, align(64))]
struct Stats {
    pswpin: AtomicU64,
    pswpout: AtomicU64,
    write_batches: AtomicU64,
    read_batches: AtomicU64,
    writes_in_flight: AtomicU64,
    reads_in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    merged_write_pages: AtomicU64,
    merged_read_pages: AtomicU64,
    write_errors: AtomicU64,
    read_errors: AtomicU64,
    redirtied_pages: AtomicU64,
    read_failed_pages: AtomicU64,
    cache_hits: AtomicU64,
    readahead_pages: AtomicU64,
    readahead_hits: AtomicU64,
    readahead_evicted: AtomicU64,
    zero_pages_out: AtomicU64,
    zero_pages_in: AtomicU64,
    deferred_frees: AtomicU64,
    folios_out: AtomicU64,
    folios_in: AtomicU64,
    folio_splits: AtomicU64,
    write_hist: [AtomicU64; SWAP_CLUSTER_MAX + 1],
    read_hist: [AtomicU64; SWAP_CLUSTER_MAX + 1],
    write_lat: LatencyHist,
    read_lat: LatencyHist,
    errors: Mutex<Vec<String>>,
}

/// Adds `n` to a counter (no atomic operation for 0: most kiocbs merge no
/// pages and read none ahead).
fn add(c: &AtomicU64, n: u64) {
    if n != 0 {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl Stats {
    fn new() -> Stats {
        Stats {
            pswpin: AtomicU64::new(0),
            pswpout: AtomicU64::new(0),
            write_batches: AtomicU64::new(0),
            read_batches: AtomicU64::new(0),
            writes_in_flight: AtomicU64::new(0),
            reads_in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
            merged_write_pages: AtomicU64::new(0),
            merged_read_pages: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            read_errors: AtomicU64::new(0),
            redirtied_pages: AtomicU64::new(0),
            read_failed_pages: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            readahead_pages: AtomicU64::new(0),
            readahead_hits: AtomicU64::new(0),
            readahead_evicted: AtomicU64::new(0),
            zero_pages_out: AtomicU64::new(0),
            zero_pages_in: AtomicU64::new(0),
            deferred_frees: AtomicU64::new(0),
            folios_out: AtomicU64::new(0),
            folios_in: AtomicU64::new(0),
            folio_splits: AtomicU64::new(0),
            write_hist: std::array::from_fn(|_| AtomicU64::new(0)),
            read_hist: std::array::from_fn(|_| AtomicU64::new(0)),
            write_lat: LatencyHist::new(),
            read_lat: LatencyHist::new(),
            errors: Mutex::new(Vec::new()),
        }
    }

    fn snapshot(&self) -> SwapCounters {
        SwapCounters {
            pswpin: get(&self.pswpin),
            pswpout: get(&self.pswpout),
            write_batches: get(&self.write_batches),
            read_batches: get(&self.read_batches),
            merged_write_pages: get(&self.merged_write_pages),
            merged_read_pages: get(&self.merged_read_pages),
            write_errors: get(&self.write_errors),
            read_errors: get(&self.read_errors),
            redirtied_pages: get(&self.redirtied_pages),
            read_failed_pages: get(&self.read_failed_pages),
            write_batch_sizes: std::array::from_fn(|i| get(&self.write_hist[i])),
            read_batch_sizes: std::array::from_fn(|i| get(&self.read_hist[i])),
            cache_hits: get(&self.cache_hits),
            readahead_pages: get(&self.readahead_pages),
            readahead_hits: get(&self.readahead_hits),
            readahead_evicted: get(&self.readahead_evicted),
            zero_pages_out: get(&self.zero_pages_out),
            zero_pages_in: get(&self.zero_pages_in),
            deferred_frees: get(&self.deferred_frees),
            folios_out: get(&self.folios_out),
            folios_in: get(&self.folios_in),
            folio_splits: get(&self.folio_splits),
        }
    }

    fn log_error(&self, msg: String) {
        let mut log = lock(&self.errors);
        if log.len() < ERROR_LOG_MAX {
            log.push(msg);
        }
    }

    /// A write kiocb of `pages` pages is being submitted.
    fn start_write(&self, pages: usize) {
        add(&self.write_batches, 1);
        add(&self.merged_write_pages, pages as u64 - 1);
        add(&self.write_hist[pages], 1);
        add(&self.writes_in_flight, 1);
    }

    /// A kiocb was submitted: what is in flight now counts for the
    /// maximum. Counted after the submission returned, so a kiocb still
    /// waiting for room in a full queue does not count, and at least 1 (the
    /// kiocb itself was in flight, if only until an inline completion).
    fn note_in_flight(&self) {
        let n = self.writes_in_flight.load(Ordering::Acquire)
            + self.reads_in_flight.load(Ordering::Acquire);
        if n.max(1) > self.max_in_flight.load(Ordering::Relaxed) {
            self.max_in_flight.fetch_max(n.max(1), Ordering::Relaxed);
        }
    }

    /// A read kiocb of `pages` pages is being submitted.
    fn start_read(&self, pages: usize) {
        add(&self.read_batches, 1);
        add(&self.merged_read_pages, pages as u64 - 1);
        add(&self.read_hist[pages], 1);
        add(&self.reads_in_flight, 1);
    }

    /// `sio_write_complete`, and the end of writeback in the swap cache: a
    /// slot freed meanwhile is freed now; after a failure the redirtied
    /// page stays the slot's data.
    fn write_complete(
        &self,
        slots: &Slots,
        pos: u64,
        pages: &[PageRef],
        result: Result<usize, IoError>,
        start: Instant,
    ) {
        self.write_lat.record(start.elapsed());
        let failure = IoFailure::check(result, pages.len() * PAGE_SIZE);
        {
            let mut book = lock(&slots.book);
            let first = (pos / PAGE_SIZE as u64) as u32;
            for (i, page) in pages.iter().enumerate() {
                let slot = first + i as u32;
                let ours = |e: &Entry<InCell>| match e {
                    Entry::Writeback { page: w, .. } => std::ptr::eq(w.as_ptr(), Arc::as_ptr(page)),
                    _ => false,
                };
                if let Some(Entry::Writeback { page: w, free }) = book.cache.remove_if(slot, ours) {
                    if free {
                        let _ = book.map.free(Slot::new(slot));
                    } else if failure.is_some() {
                        drop(w);
                        book.cache.insert(slot, Entry::Redirtied);
                    }
                }
            }
        }
        if let Some(failure) = failure {
            // No partial success: the whole batch goes back to dirty, to be
            // written again; the error may be temporary, so no ERROR bit.
            add(&self.write_errors, 1);
            add(&self.redirtied_pages, pages.len() as u64);
            self.log_error(format!(
                "Write error {failure} on dio swapfile ({pos}, {} pages)",
                pages.len()
            ));
            for page in pages {
                page.set_flags(PageFlags::DIRTY);
                page.clear_flags(PageFlags::RECLAIM);
            }
        }
        // folio_end_writeback: a RECLAIM page is rotated (RECLAIM cleared),
        // then WRITEBACK ends.
        for page in pages {
            page.clear_flags(PageFlags::RECLAIM | PageFlags::WRITEBACK);
        }
        self.writes_in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// `sio_read_complete`, and the swap cache: a page asked for goes to
    /// its swap-in handles, a page read ahead stays cached until asked for,
    /// a slot freed meanwhile is freed now.
    fn read_complete(
        &self,
        slots: &Slots,
        pos: u64,
        pages: ReadPages,
        cells: &[Arc<InCell>],
        result: Result<usize, IoError>,
        start: Instant,
    ) {
        self.read_lat.record(start.elapsed());
        let n = pages.len() as u64;
        let failure = IoFailure::check(result, pages.len() * PAGE_SIZE);
        match failure {
            None => add(&self.pswpin, n),
            Some(f) => {
                add(&self.read_errors, 1);
                add(&self.read_failed_pages, n);
                self.log_error(format!("Read-error on swap-device ({pos}, {n} pages): {f}"));
            }
        }
        for (page, cell) in pages.into_iter().zip(cells) {
            if failure.is_none() {
                page.set_flags(PageFlags::UPTODATE);
            }
            page.unlock();
            let outcome = match failure {
                None => Ok(()),
                Some(failure) => Err(SwapError::Read {
                    slot: cell.slot,
                    failure,
                }),
            };
            let slot = cell.slot.index();
            let mut book = lock(&slots.book);
            // Not ours when a swap-out replaced a read-ahead that nobody
            // wanted.
            let ours = |e: &Entry<InCell>| match e {
                Entry::Reading { cell: c, .. } => Arc::ptr_eq(c, cell),
                _ => false,
            };
            match book.cache.remove_if(slot, ours) {
                Some(Entry::Reading { wanted, free, .. }) => {
                    if free {
                        let _ = book.map.free(cell.slot);
                    }
                    if wanted {
                        drop(book);
                        cell.finish(PageRef::new(page), outcome);
                    } else if outcome.is_ok() && !free {
                        book.cache.insert(
                            slot,
                            Entry::Readahead {
                                page: PageRef::new(page),
                            },
                        );
                        let evicted = book.cache.shrink();
                        add(&self.readahead_evicted, evicted as u64);
                    } else {
                        drop(book);
                        slots.pool.put(page);
                    }
                }
                _ => {
                    drop(book);
                    slots.pool.put(page);
                }
            }
        }
        self.reads_in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// The completion of a read into the caller's memory: the counters as
    /// `sio_read_complete`, the slot leaves the swap cache (freed now if
    /// `swap_free` came meanwhile), swap-ins that joined the read get a
    /// copy in a page of their own, and the caller's handle its outcome,
    /// after its buffer (and so its lease on the memory) was dropped.
    fn read_into_complete(
        &self,
        slots: &Slots,
        pos: u64,
        bufs: IntoBufs,
        cells: &[(Arc<IntoCell>, Arc<InCell>)],
        result: Result<usize, IoError>,
        start: Instant,
    ) {
        self.read_lat.record(start.elapsed());
        let n = bufs.len() as u64;
        let failure = IoFailure::check(result, bufs.len() * PAGE_SIZE);
        match failure {
            None => add(&self.pswpin, n),
            Some(f) => {
                add(&self.read_errors, 1);
                add(&self.read_failed_pages, n);
                self.log_error(format!("Read-error on swap-device ({pos}, {n} pages): {f}"));
            }
        }
        for (buf, (into, cached)) in bufs.into_iter().zip(cells) {
            let outcome = match failure {
                None => Ok(()),
                Some(failure) => Err(SwapError::Read {
                    slot: cached.slot,
                    failure,
                }),
            };
            let slot = cached.slot.index();
            {
                let mut book = lock(&slots.book);
                let ours = |e: &Entry<InCell>| match e {
                    Entry::Reading { cell, .. } => Arc::ptr_eq(cell, cached),
                    _ => false,
                };
                if let Some(Entry::Reading { free: true, .. }) = book.cache.remove_if(slot, ours) {
                    let _ = book.map.free(cached.slot);
                }
            }
            // Out of the cache: no swap-in joins any more.
            if cached.handles.load(Ordering::Acquire) > 0 {
                let mut page = slots.pool.get().unwrap_or_else(|_| Page::new());
                if outcome.is_ok() {
                    copy_from_buf(&buf, page.as_mut_bytes());
                    page.set_flags(PageFlags::UPTODATE);
                }
                cached.finish(PageRef::new(page), outcome.clone());
            }
            drop(buf);
            *lock(&into.state) = IntoState::Done(outcome.map(|()| IntoFill::Read));
        }
        self.reads_in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

// ---------------------------------------------------------------------------
// Swap-in handles.

enum InState {
    /// In a plug, not submitted yet.
    Plugged,
    /// Submitted; the completion has not run.
    InFlight,
    /// Completed: the page (uptodate or not) and the outcome.
    Done(PageRef, Result<(), SwapError>),
    /// Handed to the caller.
    Taken,
}

/// Where a read's completion leaves its page for the [`SwapIn`] handles
/// (more than one when several swap-ins of the slot share the read).
pub(crate) struct InCell {
    slot: Slot,
    state: Mutex<InState>,
    /// Live [`SwapIn`] handles.
    handles: AtomicUsize,
}

impl InCell {
    fn new(slot: Slot, state: InState) -> Arc<InCell> {
        Arc::new(InCell {
            slot,
            state: Mutex::new(state),
            handles: AtomicUsize::new(0),
        })
    }

    fn set_in_flight(&self) {
        *lock(&self.state) = InState::InFlight;
    }

    fn finish(&self, page: PageRef, outcome: Result<(), SwapError>) {
        *lock(&self.state) = InState::Done(page, outcome);
    }
}

/// A page being swapped in: the caller's handle on the locked swap-cache
/// page, resolved by the read's completion (waiting on it is the kernel's
/// `folio_wait_locked`), or at once when the swap cache had the page.
pub struct SwapIn {
    cell: Arc<InCell>,
    dev: Arc<Shared>,
}

impl Drop for SwapIn {
    fn drop(&mut self) {
        self.cell.handles.fetch_sub(1, Ordering::AcqRel);
    }
}

impl SwapIn {
    fn new(cell: Arc<InCell>, dev: &Arc<Shared>) -> SwapIn {
        cell.handles.fetch_add(1, Ordering::AcqRel);
        SwapIn {
            cell,
            dev: Arc::clone(dev),
        }
    }

    /// A swap-in served without I/O.
    fn ready(slot: Slot, page: PageRef, dev: &Arc<Shared>) -> SwapIn {
        SwapIn::new(InCell::new(slot, InState::Done(page, Ok(()))), dev)
    }

    /// The slot being read.
    pub fn slot(&self) -> Slot {
        self.cell.slot
    }

    /// Whether the read is still in a plug (not submitted).
    pub fn is_plugged(&self) -> bool {
        matches!(*lock(&self.cell.state), InState::Plugged)
    }

    /// Whether the read has completed.
    pub fn is_done(&self) -> bool {
        matches!(*lock(&self.cell.state), InState::Done(..))
    }

    /// Waits for the read (driving the device's queue) and returns the
    /// page with the outcome: on failure the page is there but not
    /// uptodate. The page is unlocked either way.
    ///
    /// # Panics
    ///
    /// If the read is still in a [`SwapPlug`]: unplug first (waiting on a
    /// page whose I/O was never started would never end).
    pub fn wait_page(self) -> (PageRef, Result<(), SwapError>) {
        loop {
            {
                let mut st = lock(&self.cell.state);
                match &*st {
                    // Other handles share the read: they get the page too.
                    InState::Done(page, outcome)
                        if self.cell.handles.load(Ordering::Acquire) > 1 =>
                    {
                        return (PageRef::clone(page), outcome.clone());
                    }
                    InState::Done(..) => {
                        if let InState::Done(page, outcome) =
                            std::mem::replace(&mut *st, InState::Taken)
                        {
                            return (page, outcome);
                        }
                        unreachable!()
                    }
                    InState::Plugged => panic!(
                        "SwapIn::wait on {} while its read is still in a SwapPlug; unplug first",
                        self.cell.slot
                    ),
                    InState::InFlight => {}
                    InState::Taken => unreachable!("SwapIn consumed twice"),
                }
            }
            self.dev.wait_some();
        }
    }

    /// Waits for the read: the uptodate page, or the error.
    ///
    /// # Panics
    ///
    /// As [`SwapIn::wait_page`].
    pub fn wait(self) -> Result<PageRef, SwapError> {
        let (page, outcome) = self.wait_page();
        outcome.map(|()| page)
    }
}

impl fmt::Debug for SwapIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SwapIn")
            .field("slot", &self.cell.slot)
            .field("done", &self.is_done())
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Swap-in into the caller's memory.

/// How a [`SwapInto`] filled the caller's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntoFill {
    /// The device read the slot straight into it (direct I/O, no copy).
    Read,
    /// Copied from the swap cache, no I/O: the page under writeback or
    /// redirtied, or read ahead.
    Cached,
    /// A zero slot: zero-filled, no I/O.
    Zero,
}

enum IntoState {
    /// In a plug, not submitted yet.
    Plugged,
    /// Submitted; the completion has not run.
    InFlight,
    /// Completed.
    Done(Result<IntoFill, SwapError>),
    /// Handed to the caller.
    Taken,
}

/// Where a read into the caller's memory leaves its outcome.
struct IntoCell {
    slot: Slot,
    state: Mutex<IntoState>,
}

/// A swap-in into the caller's memory ([`SwapDevice::swap_read_into`]),
/// resolved by the read's completion, or at once when the swap cache or
/// the zero map served it.
pub struct SwapInto {
    cell: Arc<IntoCell>,
    dev: Arc<Shared>,
}

impl SwapInto {
    fn ready(slot: Slot, fill: IntoFill, dev: &Arc<Shared>) -> SwapInto {
        SwapInto {
            cell: Arc::new(IntoCell {
                slot,
                state: Mutex::new(IntoState::Done(Ok(fill))),
            }),
            dev: Arc::clone(dev),
        }
    }

    /// The slot being read.
    pub fn slot(&self) -> Slot {
        self.cell.slot
    }

    /// Whether the read is still in a [`SwapPlug`] (not submitted).
    pub fn is_plugged(&self) -> bool {
        matches!(*lock(&self.cell.state), IntoState::Plugged)
    }

    /// Whether the read has completed ([`SwapInto::wait`] returns at once).
    pub fn is_done(&self) -> bool {
        matches!(*lock(&self.cell.state), IntoState::Done(_))
    }

    /// Waits for the read (driving the device's queue): how the memory was
    /// filled, or the read error. After an error the memory holds
    /// unspecified bytes (the device may have written some of them): never
    /// use them as the slot's data. Either way the destination buffer is
    /// dropped by then, its lease on the memory released.
    ///
    /// # Panics
    ///
    /// If the read is still in a [`SwapPlug`]: unplug first.
    pub fn wait(self) -> Result<IntoFill, SwapError> {
        loop {
            {
                let mut st = lock(&self.cell.state);
                match &*st {
                    IntoState::Done(_) => {
                        if let IntoState::Done(r) = std::mem::replace(&mut *st, IntoState::Taken) {
                            return r;
                        }
                        unreachable!()
                    }
                    IntoState::Plugged => panic!(
                        "SwapInto::wait on {} while its read is still in a SwapPlug; unplug first",
                        self.cell.slot
                    ),
                    IntoState::InFlight => {}
                    IntoState::Taken => unreachable!("SwapInto consumed twice"),
                }
            }
            self.dev.wait_some();
        }
    }
}

impl fmt::Debug for SwapInto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SwapInto")
            .field("slot", &self.cell.slot)
            .field("done", &self.is_done())
            .finish()
    }
}

/// Copies `src`, or zeros, into a one-page destination buffer.
/// The page of swap slot `slot` in a large folio whose first slot is
/// `first` (a swap-in of a slot under folio writeback gets a copy of it).
fn folio_page(folio: &Folio, first: u32, slot: u32) -> &[u8; PAGE_SIZE] {
    let at = (slot - first) as usize * PAGE_SIZE;
    folio.as_bytes()[at..at + PAGE_SIZE]
        .try_into()
        .expect("a page of the folio")
}

fn fill_buf(dst: &mut GuestBuf<Dest>, src: Option<&[u8; PAGE_SIZE]>) {
    let mut at = 0usize;
    dst.for_each_seg_mut(&mut |ptr, len| {
        let len = len.min(PAGE_SIZE - at);
        match src {
            Some(src) => {
                let from = &src[at..at + len];
                // SAFETY: the `IoBufMut` contract: the segment is valid for
                // writes of `len` bytes and nothing else in Rust reaches it
                // while the buffer lives; `from` is a live slice of another
                // allocation (a page), so they do not overlap.
                unsafe { core::ptr::copy_nonoverlapping(from.as_ptr(), ptr, len) }
            }
            // SAFETY: as above, the segment is valid for writes of `len`.
            None => unsafe { core::ptr::write_bytes(ptr, 0, len) },
        }
        at += len;
    });
}

/// Copies a one-page buffer's bytes into `page`.
fn copy_from_buf(src: &GuestBuf<Dest>, page: &mut [u8; PAGE_SIZE]) {
    let mut at = 0usize;
    src.for_each_seg(&mut |ptr, len| {
        let len = len.min(PAGE_SIZE - at);
        let to = &mut page[at..at + len];
        // SAFETY: the `IoBuf` contract: the segment is valid for reads of
        // `len` initialised bytes, not written by Rust code while the buffer
        // lives (its read has completed); `to` is a page of our own.
        unsafe { core::ptr::copy_nonoverlapping(ptr, to.as_mut_ptr(), len) }
        at += len;
    });
}

// ---------------------------------------------------------------------------
// Batches (struct swap_iocb) and the plug.

/// A write batch's page references: one inline (an unplugged swap-out
/// allocates no list), a cluster's worth on the heap.
type WritePages = SmallVec<[PageRef; 1]>;

/// A read batch's pages, held the same way.
type ReadPages = SmallVec<[Page; 1]>;

/// A write batch: up to [`SWAP_CLUSTER_MAX`] pages at consecutive slots.
struct WriteSio {
    dev: Arc<Shared>,
    pos: u64,
    pages: WritePages,
}

/// A read batch: locked pages from the pool for consecutive slots.
struct ReadSio {
    dev: Arc<Shared>,
    pos: u64,
    pages: ReadPages,
    cells: SmallVec<[Arc<InCell>; 1]>,
}

/// A read-into batch's destination buffers, held like the pages.
type IntoBufs = SmallVec<[GuestBuf<Dest>; 1]>;

/// A read batch into the caller's memory: one-page buffers for consecutive
/// slots, with each slot's handle cell and swap-cache cell.
struct IntoSio {
    dev: Arc<Shared>,
    pos: u64,
    bufs: IntoBufs,
    cells: SmallVec<[(Arc<IntoCell>, Arc<InCell>); 1]>,
}

fn end_of(pos: u64, pages: usize) -> u64 {
    pos + (pages * PAGE_SIZE) as u64
}

/// The per-task plug (`wbc->swap_plug` for writes, the `swap_iocb **plug`
/// of swap readahead): holds at most one open write batch and one open read
/// batch. Dropping it unplugs.
#[derive(Default)]
pub struct SwapPlug {
    write: Option<WriteSio>,
    read: Option<ReadSio>,
    /// Reads into the caller's memory ([`SwapDevice::swap_read_into`]).
    read_into: Option<IntoSio>,
}

impl SwapPlug {
    /// An empty plug.
    pub fn new() -> SwapPlug {
        SwapPlug::default()
    }

    /// Submits the open write batch, if any (`swap_write_unplug`).
    pub fn write_unplug(&mut self) {
        if let Some(sio) = self.write.take() {
            sio.submit();
        }
    }

    /// Submits the open read batches, if any (`swap_read_unplug`): the
    /// one into pool pages and the one into the caller's memory.
    pub fn read_unplug(&mut self) {
        if let Some(sio) = self.read.take() {
            sio.submit();
        }
        if let Some(sio) = self.read_into.take() {
            sio.submit();
        }
    }

    /// Submits both batches.
    pub fn unplug(&mut self) {
        self.write_unplug();
        self.read_unplug();
    }

    /// Pages waiting in the plug (write, read; reads into the caller's
    /// memory count as reads).
    pub fn pending(&self) -> (usize, usize) {
        (
            self.write.as_ref().map_or(0, |s| s.pages.len()),
            self.read.as_ref().map_or(0, |s| s.pages.len())
                + self.read_into.as_ref().map_or(0, |s| s.bufs.len()),
        )
    }
}

impl Drop for SwapPlug {
    fn drop(&mut self) {
        self.unplug();
    }
}

impl fmt::Debug for SwapPlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (w, r) = self.pending();
        f.debug_struct("SwapPlug")
            .field("write_pages", &w)
            .field("read_pages", &r)
            .finish()
    }
}

/// What a sync kiocb's submission amounts to: bytes or the error.
fn sync_result(r: Result<Submitted, IoError>) -> Result<usize, IoError> {
    match r? {
        Submitted::Done(n) => Ok(n),
        // A sync kiocb is never queued (the kiocb contract).
        Submitted::Queued => Err(IoError::InvalidArgument("sync kiocb was queued")),
    }
}

/// Submits a kiocb carrying an owned batch: the one trait call every mode
/// makes. A sync kiocb's outcome (and batch) goes to `complete` at once; an
/// async kiocb's completion was built to run `complete` itself, and an
/// error before anything was queued is delivered through it
/// (`aio_rw_done` feeding a non-`-EIOCBQUEUED` return to `ki_complete`).
fn submit_batch<I: DioBuf>(
    target: &Arc<dyn DirectIo>,
    mut kiocb: Kiocb<I>,
    complete: impl FnOnce(Result<usize, IoError>, I),
) {
    let r = target.submit(&mut kiocb);
    if kiocb.is_sync() {
        if let Some(buf) = kiocb.take_buf() {
            complete(sync_result(r), buf);
        }
    } else if let Err(e) = r {
        kiocb.complete(Err(e));
    }
}

/// Builds the kiocb `dev`'s mode asks for over the owned iterator `iter`
/// at `pos` (sync, or async with a completion callback), submits it
/// ([`submit_batch`]) and notes what is in flight: `done` gets the outcome
/// and the buffer back, at once for a sync kiocb, at completion for an
/// async one. The one way every batch reaches the device.
fn submit_owned<I>(
    dev: &Shared,
    pos: u64,
    iter: I,
    done: impl FnOnce(Result<usize, IoError>, I) + Send + 'static,
) where
    I: DioBuf + Send + 'static,
{
    match dev.mode {
        IoMode::Sync => submit_batch(
            &dev.target,
            Kiocb::new_sync_with(pos, iter).with_flags(IocbFlags::DIRECT),
            done,
        ),
        IoMode::AsyncInline | IoMode::Uring => {
            let kiocb = Kiocb::with_callback(pos, iter, move |c| done(c.result, c.buf));
            submit_batch(&dev.target, kiocb.with_flags(IocbFlags::DIRECT), |_, _| {
                unreachable!("an async kiocb completes through its callback")
            });
        }
    }
    dev.stats.note_in_flight();
}

impl WriteSio {
    /// `swap_write_unplug`: one kiocb over a `Source` iterator of the
    /// batch's page references, which come back with the completion
    /// (`sio_write_complete`).
    fn submit(self) {
        let WriteSio { dev, pos, pages } = self;
        let stats = Arc::clone(&dev.stats);
        let slots = Arc::clone(&dev.slots);
        stats.start_write(pages.len());
        let start = Instant::now();
        let iter = OwnedIter::<Source, _>::new(pages);
        let done = move |result, iter: OwnedIter<Source, WritePages>| {
            stats.write_complete(&slots, pos, &iter.into_inner(), result, start);
        };
        submit_owned(&dev, pos, iter, done);
    }
}

impl ReadSio {
    /// `swap_read_unplug`: one kiocb over a `Dest` iterator of the batch's
    /// locked pages, which come back with the completion
    /// (`sio_read_complete`).
    fn submit(self) {
        let ReadSio {
            dev,
            pos,
            pages,
            cells,
        } = self;
        let stats = Arc::clone(&dev.stats);
        let slots = Arc::clone(&dev.slots);
        stats.start_read(pages.len());
        for cell in &cells {
            cell.set_in_flight();
        }
        let start = Instant::now();
        let iter = OwnedIter::<Dest, _>::new(pages);
        let done = move |result, iter: OwnedIter<Dest, ReadPages>| {
            stats.read_complete(&slots, pos, iter.into_inner(), &cells, result, start);
        };
        submit_owned(&dev, pos, iter, done);
    }
}

impl IntoSio {
    /// One kiocb over a `Dest` iterator of the caller's buffers, which come
    /// back with the completion (`read_into_complete`).
    fn submit(self) {
        let IntoSio {
            dev,
            pos,
            bufs,
            cells,
        } = self;
        let stats = Arc::clone(&dev.stats);
        let slots = Arc::clone(&dev.slots);
        stats.start_read(bufs.len());
        for (into, cached) in &cells {
            *lock(&into.state) = IntoState::InFlight;
            cached.set_in_flight();
        }
        let start = Instant::now();
        let iter = OwnedIter::<Dest, _>::new(bufs);
        let done = move |result, iter: OwnedIter<Dest, IntoBufs>| {
            stats.read_into_complete(&slots, pos, iter.into_inner(), &cells, result, start);
        };
        submit_owned(&dev, pos, iter, done);
    }
}

// ---------------------------------------------------------------------------
// The device.

/// Which kiocbs a [`SwapDevice`] submits, and so how its I/O completes: the
/// calls and buffer types are the same in every mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IoMode {
    /// Sync kiocbs: each batch completes before its submission returns.
    Sync,
    /// Async kiocbs on a target that completes them inline (an `O_DIRECT`
    /// file through `preadv2` / `pwritev2`, or a RAM device).
    AsyncInline,
    /// Async kiocbs on a target that keeps them in flight: io_uring
    /// (feature `uring`), or in tests a RAM device that defers its
    /// completions. They complete when the device is driven
    /// ([`SwapDevice::poll`], [`SwapDevice::wait_any`], [`SwapIn::wait`]).
    Uring,
}

impl IoMode {
    /// Whether this build has the io_uring backend.
    pub const URING_AVAILABLE: bool = cfg!(feature = "uring");

    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            IoMode::Sync => "sync",
            IoMode::AsyncInline => "async-inline",
            IoMode::Uring => "async-uring",
        }
    }
}

impl fmt::Display for IoMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The slot map and the swap cache, under one lock.
struct Book {
    map: SwapMap,
    cache: SwapCache<InCell>,
}

/// What completions update besides the counters: the book and the page
/// pool (shared with them; holds no backend).
struct Slots {
    book: Mutex<Book>,
    /// Swap-in pages: the reads overwrite them, so recycled frames need no
    /// zeroing.
    pool: PagePool,
}

struct Shared {
    /// The direct-I/O target, whatever backend it is.
    target: Arc<dyn DirectIo>,
    mode: IoMode,
    stats: Arc<Stats>,
    slots: Arc<Slots>,
    align: DioAlign,
    /// Readahead: a swap-in reads at most the aligned cluster of
    /// `2^page_cluster` slots around its own (`vm.page-cluster`).
    page_cluster: std::sync::atomic::AtomicU32,
    /// The readahead window's history.
    ra: Readahead,
    /// Whether large folios get large swap entries (one segment over
    /// `2^order` slots); else they are split.
    large_folios: AtomicBool,
}

/// The adaptive readahead window of mainline's `swapin_nr_pages`: it grows
/// with the hits of the last readahead and collapses to one page for
/// random access (no hits, and not next to the last miss), halving at
/// most per step.
#[derive(Default)]
struct Readahead {
    /// Readahead hits since the last window was chosen.
    hits: std::sync::atomic::AtomicU32,
    /// The slot of the last swap-in chosen without hits.
    prev: std::sync::atomic::AtomicU32,
    /// The last window, in pages.
    last: std::sync::atomic::AtomicU32,
}

impl Readahead {
    /// The window, in pages (a power of two, at most `max`), for a
    /// swap-in of `slot`.
    fn window(&self, slot: u32, max: u32) -> u32 {
        if max <= 1 {
            return 1;
        }
        let hits = self.hits.swap(0, Ordering::Relaxed);
        let prev = self.prev.load(Ordering::Relaxed);
        let mut pages = if hits == 0 {
            // Nothing to judge by: read ahead only for sequential access.
            if slot == prev.wrapping_add(1) || slot == prev.wrapping_sub(1) {
                2
            } else {
                1
            }
        } else {
            (hits + 2).next_power_of_two().max(4)
        };
        pages = pages.min(max).max(self.last.load(Ordering::Relaxed) / 2);
        if hits == 0 {
            self.prev.store(slot, Ordering::Relaxed);
        }
        self.last.store(pages, Ordering::Relaxed);
        pages
    }
}

impl Shared {
    /// Blocks until at least one completion was delivered (a target that
    /// keeps I/O in flight); the others complete before submission
    /// returns, so there is nothing to wait for.
    fn wait_some(&self) {
        if let Err(e) = self.target.drive(1) {
            panic!("waiting for swap I/O failed: {e}");
        }
    }
}

/// The swap file opened again with `O_DIRECT` (a duplicate of its
/// descriptor), the target every mode's device reaches it through.
fn direct_file(sf: &SwapFile) -> Result<DirectFile, SwapError> {
    let file: File = sf
        .file
        .try_clone()
        .map_err(|e| SwapError::Open(format!("dup {}: {e}", sf.path.display())))?;
    DirectFile::from_file(file)
        .map_err(|e| SwapError::Open(format!("O_DIRECT on {}: {e}", sf.path.display())))
}

/// A swap area with its slot map and I/O path: swap-out, swap-in and
/// slot management, all through `&self` (shareable between threads).
pub struct SwapDevice {
    shared: Arc<Shared>,
}

impl SwapDevice {
    /// A device over `target` with a swap map of `nr_slots` slots (the
    /// area's `max_pages`; slot 0, the header, is never handed out),
    /// submitting the kiocbs `mode` says.
    ///
    /// # Errors
    ///
    /// [`SwapError::Map`] for a slot count the map cannot hold.
    pub fn new(
        target: Arc<dyn DirectIo>,
        mode: IoMode,
        nr_slots: u64,
    ) -> Result<SwapDevice, SwapError> {
        let map = SwapMap::new(nr_slots, &[]).map_err(SwapError::Map)?;
        let cache = SwapCache::new();
        let align = target.dio_align();
        // A device of a fixed size (a block device, the RAM backend) is a
        // `SWP_BLKDEV` area; a regular file is not.
        let large = target.capacity().is_some();
        Ok(SwapDevice {
            shared: Arc::new(Shared {
                target,
                mode,
                stats: Arc::new(Stats::new()),
                slots: Arc::new(Slots {
                    book: Mutex::new(Book { map, cache }),
                    pool: PagePool::with_capacity(PAGE_POOL_MAX),
                }),
                align,
                page_cluster: std::sync::atomic::AtomicU32::new(PAGE_CLUSTER_DEFAULT),
                ra: Readahead::default(),
                large_folios: AtomicBool::new(large),
            }),
        })
    }

    /// A device on an activated swap file, opened again with `O_DIRECT`
    /// (the header and activation checks were done by
    /// [`open_swap_file`](crate::activate::open_swap_file)): the file itself
    /// for [`IoMode::Sync`] and [`IoMode::AsyncInline`], an io_uring queue
    /// of `depth` on it for [`IoMode::Uring`].
    ///
    /// # Errors
    ///
    /// [`SwapError::Open`] when the file cannot be reopened or the
    /// filesystem refuses `O_DIRECT`; [`SwapError::Backend`] when io_uring
    /// cannot be set up; [`SwapError::Unsupported`] for [`IoMode::Uring`]
    /// without the `uring` feature.
    pub fn open(sf: &SwapFile, mode: IoMode, depth: u32) -> Result<SwapDevice, SwapError> {
        match mode {
            IoMode::Sync | IoMode::AsyncInline => {
                SwapDevice::new(Arc::new(direct_file(sf)?), mode, sf.max_pages())
            }
            #[cfg(feature = "uring")]
            // Completions may wait for the driving thread's next
            // io_uring_enter instead of interrupting it.
            IoMode::Uring => {
                SwapDevice::open_uring(sf, UringQueue::builder().depth(depth).coop_taskrun(true))
            }
            #[cfg(not(feature = "uring"))]
            IoMode::Uring => {
                let _ = depth;
                Err(SwapError::Unsupported(
                    "io_uring mode needs the `uring` feature",
                ))
            }
        }
    }

    /// A device in [`IoMode::Uring`] on an activated swap file, on an
    /// io_uring queue that `builder` sets up: its depth, and options
    /// [`SwapDevice::open`] leaves off, such as
    /// [`single_issuer`](UringBuilder::single_issuer) for a device that
    /// only the opening thread drives (fio's set-up; other threads' swap
    /// I/O then fails with `EEXIST`).
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    /// use iov_iter_swap::activate::open_swap_file;
    /// use iov_iter_swap::swapio::SwapDevice;
    ///
    /// let sf = open_swap_file("/var/tmp/swapfile")?;
    /// let dev = SwapDevice::open_uring(&sf, UringQueue::builder().depth(32).single_issuer(true))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`SwapDevice::open`].
    #[cfg(feature = "uring")]
    pub fn open_uring(sf: &SwapFile, builder: UringBuilder) -> Result<SwapDevice, SwapError> {
        let queue = builder
            .build(direct_file(sf)?)
            .map_err(SwapError::Backend)?;
        SwapDevice::new(Arc::new(queue), IoMode::Uring, sf.max_pages())
    }

    /// The kiocbs it submits.
    pub fn mode(&self) -> IoMode {
        self.shared.mode
    }

    /// The backend's direct-I/O alignment.
    pub fn dio_align(&self) -> DioAlign {
        self.shared.align
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        lock(&self.shared.slots.book)
    }

    /// Readahead: a swap-in reads the aligned cluster of `2^n` slots around
    /// its own (`vm.page-cluster`; 0 turns readahead off). At most
    /// [`PAGE_CLUSTER_MAX`].
    pub fn set_page_cluster(&self, n: u32) {
        self.shared
            .page_cluster
            .store(n.min(PAGE_CLUSTER_MAX), Ordering::Relaxed);
    }

    /// The readahead cluster's order ([`SwapDevice::set_page_cluster`]).
    pub fn page_cluster(&self) -> u32 {
        self.shared.page_cluster.load(Ordering::Relaxed)
    }

    /// Swaps `page` out to `slot` (`swap_writepage` for an `FS_OPS` swap
    /// file), into `plug`'s write batch, or as its own kiocb without a plug.
    /// The page is in the swap cache from now until its write completes
    /// (and after a failed write, until the slot is written again or
    /// freed): a swap-in of the slot meanwhile gets this page, without
    /// I/O. An all-zero page is not written at all: the slot is marked and
    /// reads back as zeros (mainline's zeromap).
    ///
    /// Returns `Ok(false)` for a page that is not dirty (nothing to write:
    /// `pageout`'s `PAGE_CLEAN`), `Ok(true)` once the page is under
    /// writeback (or, for a zero page, clean). The outcome of the I/O shows
    /// in the page's flags when its writeback ends: clean, or `DIRTY` again
    /// after a failure.
    ///
    /// # Errors
    ///
    /// [`SwapError::BadSlot`] for a slot not allocated (or freed, its free
    /// waiting for I/O); [`SwapError::Busy`] for a page already under
    /// writeback, or a slot whose write or requested swap-in is on its way;
    /// [`SwapError::Backend`] (`EINVAL`) for a page that is not uptodate
    /// (a failed read's: no data to keep). The page is untouched.
    pub fn swap_writepage(
        &self,
        page: PageRef,
        slot: Slot,
        plug: Option<&mut SwapPlug>,
    ) -> Result<bool, SwapError> {
        if !page.test(PageFlags::UPTODATE) {
            return Err(SwapError::Backend(NOT_UPTODATE));
        }
        if page.test(PageFlags::WRITEBACK) {
            return Err(SwapError::Busy(slot));
        }
        let s = slot.index();
        {
            let mut book = self.book();
            if !book.map.is_allocated(slot) {
                return Err(SwapError::BadSlot(slot));
            }
            match book.cache.get(s) {
                Some(e) if e.free_pending() => return Err(SwapError::BadSlot(slot)),
                Some(
                    Entry::Writeback { .. }
                    | Entry::Reading { wanted: true, .. }
                    | Entry::FolioWriteback { .. }
                    | Entry::FolioReading { .. },
                ) => return Err(SwapError::Busy(slot)),
                _ => {}
            }
            // pageout(): folio_clear_dirty_for_io.
            if !page.test_and_clear(PageFlags::DIRTY) {
                return Ok(false);
            }
            // A read ahead of the slot, or a redirtied page, is stale now:
            // removed, or replaced by the page under writeback.
            if is_zero_filled(page.as_bytes()) {
                // swap_writeout: a zero-filled folio is only marked.
                book.cache.remove(s);
                book.map.set_zero(slot, true);
                add(&self.shared.stats.zero_pages_out, 1);
                return Ok(true);
            }
            book.map.set_zero(slot, false);
            book.cache.insert(
                s,
                Entry::Writeback {
                    page: Arc::downgrade(&page),
                    free: false,
                },
            );
        }
        // folio_set_reclaim; swap_writepage_fs: count at submission, start
        // writeback.
        page.set_flags(PageFlags::RECLAIM);
        add(&self.shared.stats.pswpout, 1);
        page.set_flags(PageFlags::WRITEBACK);
        let pos = slot.byte_offset();
        let new_sio = |page| WriteSio {
            dev: Arc::clone(&self.shared),
            pos,
            pages: {
                let mut v = WritePages::new();
                v.push(page);
                v
            },
        };
        let Some(plug) = plug else {
            new_sio(page).submit();
            return Ok(true);
        };
        if let Some(sio) = &plug.write {
            if !Arc::ptr_eq(&sio.dev, &self.shared) || end_of(sio.pos, sio.pages.len()) != pos {
                plug.write_unplug();
            }
        }
        match &mut plug.write {
            Some(sio) => {
                // A batch that grows past its first page: room for a
                // whole cluster at once.
                sio.pages.reserve_exact(SWAP_CLUSTER_MAX - sio.pages.len());
                sio.pages.push(page)
            }
            None => plug.write = Some(new_sio(page)),
        }
        if plug
            .write
            .as_ref()
            .is_some_and(|s| s.pages.len() >= SWAP_CLUSTER_MAX)
        {
            plug.write_unplug();
        }
        Ok(true)
    }

    /// Swaps `slot` in (`swap_read_folio` for an `FS_OPS` swap file, after
    /// `swap_cache_get_folio`). The swap cache first: a page under
    /// writeback or redirtied, a read already on its way, a page read
    /// ahead, or a zero slot are served without I/O. Otherwise a locked
    /// page from the device's pool (recycled, or freshly allocated) joins
    /// `plug`'s read batch (or a plug of its own), with the readahead
    /// cluster: the other allocated slots of the aligned
    /// `2^page_cluster` slots around it that the cache does not hold, read
    /// into the swap cache in the same, merged, kiocbs
    /// (`swap_cluster_readahead`). The returned handle resolves to the page
    /// when its read completes.
    ///
    /// # Errors
    ///
    /// [`SwapError::BadSlot`] for a slot not allocated (or freed, its free
    /// waiting for I/O); [`SwapError::InMemory`] for a slot whose last
    /// write failed (its data is the redirtied page); [`SwapError::Backend`]
    /// (ENOMEM) when no page can be allocated.
    pub fn swap_readpage(
        &self,
        slot: Slot,
        plug: Option<&mut SwapPlug>,
    ) -> Result<SwapIn, SwapError> {
        let sh = &self.shared;
        let s = slot.index();
        let pc = self.page_cluster();
        let mut reads: SmallVec<[Arc<InCell>; 8]> = SmallVec::new();
        let handle = {
            let mut book = self.book();
            if !book.map.is_allocated(slot) {
                return Err(SwapError::BadSlot(slot));
            }
            match book.cache.get_mut(s) {
                Some(e) if e.free_pending() => return Err(SwapError::BadSlot(slot)),
                Some(Entry::Redirtied) => return Err(SwapError::InMemory(slot)),
                Some(Entry::Writeback { page, .. }) => {
                    // The write batch holds the page until the entry
                    // leaves, under this lock.
                    let page = page.upgrade().ok_or(SwapError::Busy(slot))?;
                    add(&sh.stats.cache_hits, 1);
                    return Ok(SwapIn::ready(slot, page, sh));
                }
                Some(Entry::FolioWriteback { folio, first, .. }) => {
                    // A page of a large folio being written: a copy of it.
                    let folio = folio.upgrade().ok_or(SwapError::Busy(slot))?;
                    let first = *first;
                    drop(book);
                    let mut page = sh.slots.pool.get().map_err(SwapError::Backend)?;
                    page.as_mut_bytes()
                        .copy_from_slice(folio_page(&folio, first, s));
                    page.set_flags(PageFlags::UPTODATE);
                    add(&sh.stats.cache_hits, 1);
                    return Ok(SwapIn::ready(slot, PageRef::new(page), sh));
                }
                Some(Entry::FolioReading { .. }) => return Err(SwapError::Busy(slot)),
                Some(Entry::Reading { cell, wanted, .. }) => {
                    if *wanted {
                        add(&sh.stats.cache_hits, 1);
                    } else {
                        add(&sh.stats.readahead_hits, 1);
                        sh.ra.hits.fetch_add(1, Ordering::Relaxed);
                    }
                    *wanted = true;
                    return Ok(SwapIn::new(Arc::clone(cell), sh));
                }
                Some(Entry::Readahead { .. }) => {
                    if let Some(Entry::Readahead { page }) = book.cache.remove(s) {
                        add(&sh.stats.readahead_hits, 1);
                        sh.ra.hits.fetch_add(1, Ordering::Relaxed);
                        return Ok(SwapIn::ready(slot, page, sh));
                    }
                    unreachable!()
                }
                None => {}
            }
            if book.map.is_zero(slot) {
                drop(book);
                let mut page = sh.slots.pool.get().map_err(SwapError::Backend)?;
                page.as_mut_bytes().fill(0);
                page.set_flags(PageFlags::UPTODATE);
                add(&sh.stats.zero_pages_in, 1);
                return Ok(SwapIn::ready(slot, PageRef::new(page), sh));
            }
            // The cluster, in slot order: this slot, and its neighbours
            // that are allocated, not freed, not cached and not zero.
            let size = sh.ra.window(s, 1 << pc);
            let first = s & !(size - 1);
            let last = first
                .saturating_add(size - 1)
                .min(book.map.nr_slots().saturating_sub(1));
            for t in first..=last {
                let other = Slot::new(t);
                if t != s
                    && (!book.map.is_allocated(other)
                        || book.cache.get(t).is_some()
                        || book.map.is_zero(other))
                {
                    continue;
                }
                let cell = InCell::new(other, InState::Plugged);
                book.cache.insert(
                    t,
                    Entry::Reading {
                        cell: Arc::clone(&cell),
                        wanted: t == s,
                        free: false,
                    },
                );
                reads.push(cell);
            }
            let mine = reads.iter().find(|c| c.slot == slot).map(Arc::clone);
            SwapIn::new(mine.expect("the slot itself is read"), sh)
        };
        // Pages for the reads, outside the lock; a read whose page cannot
        // be allocated is dropped from the cache again (the slot's own
        // read failing is the error).
        let mut batch: SmallVec<[(Arc<InCell>, Page); 8]> = SmallVec::new();
        for cell in reads {
            match sh.slots.pool.get() {
                Ok(page) => batch.push((cell, page)),
                Err(e) => {
                    let mut book = self.book();
                    let ours = |e: &Entry<InCell>| match e {
                        Entry::Reading { cell: c, .. } => Arc::ptr_eq(c, &cell),
                        _ => false,
                    };
                    book.cache.remove_if(cell.slot.index(), ours);
                    if cell.slot == slot {
                        drop(book);
                        for (_, page) in batch {
                            sh.slots.pool.put(page);
                        }
                        return Err(SwapError::Backend(e));
                    }
                }
            }
        }
        add(&sh.stats.readahead_pages, batch.len() as u64 - 1);
        let mut own = SwapPlug::new();
        let plug = match plug {
            Some(plug) => plug,
            None => &mut own,
        };
        for (cell, page) in batch {
            self.add_read(plug, cell, page);
        }
        Ok(handle)
    }

    /// Adds a locked page's read to `plug`'s read batch (merging by the
    /// batch rules).
    fn add_read(&self, plug: &mut SwapPlug, cell: Arc<InCell>, page: Page) {
        // The swap-cache folio is locked until its read completes.
        let locked = page.trylock();
        debug_assert!(locked, "a page from the pool is unlocked");
        let pos = cell.slot.byte_offset();
        if let Some(sio) = &plug.read {
            if !Arc::ptr_eq(&sio.dev, &self.shared) || end_of(sio.pos, sio.pages.len()) != pos {
                plug.read_unplug();
            }
        }
        match &mut plug.read {
            Some(sio) => {
                sio.pages.reserve_exact(SWAP_CLUSTER_MAX - sio.pages.len());
                sio.cells.reserve_exact(SWAP_CLUSTER_MAX - sio.cells.len());
                sio.pages.push(page);
                sio.cells.push(cell);
            }
            None => {
                plug.read = Some(ReadSio {
                    dev: Arc::clone(&self.shared),
                    pos,
                    pages: smallvec::smallvec![page],
                    cells: smallvec::smallvec![cell],
                })
            }
        }
        if plug
            .read
            .as_ref()
            .is_some_and(|s| s.pages.len() >= SWAP_CLUSTER_MAX)
        {
            plug.read_unplug();
        }
    }

    /// Reads `slot` without a plug and waits: the uptodate page or the
    /// error.
    ///
    /// # Errors
    ///
    /// As [`SwapDevice::swap_readpage`], and [`SwapError::Read`].
    pub fn read_page(&self, slot: Slot) -> Result<PageRef, SwapError> {
        self.swap_readpage(slot, None)?.wait()
    }

    /// Swaps `slot` in straight into the caller's memory: `dst`, one page
    /// ([`PAGE_SIZE`] bytes, aligned for the device's direct I/O) of a
    /// [`SharedRegion`](iov_iter::buf::SharedRegion), e.g. the page-cache
    /// page of a memfd behind an alias mapping, so that nothing copies the
    /// data (a userfaultfd pager then maps it with `UFFDIO_CONTINUE`).
    ///
    /// The swap cache first, as [`SwapDevice::swap_readpage`]: a page under
    /// writeback or redirtied, or read ahead, is copied into `dst`
    /// ([`IntoFill::Cached`]); a zero slot zero-fills it
    /// ([`IntoFill::Zero`]); no I/O. Otherwise the read joins `plug`'s
    /// read-into batch (merged with reads into other buffers for the next
    /// slots, up to [`SWAP_CLUSTER_MAX`]; without a plug it is submitted at
    /// once) and the slot is in the swap cache while it is on its way: a
    /// swap-out of the slot is `Busy`, a `swap_free` deferred, and a
    /// [`SwapDevice::swap_readpage`] of the slot meanwhile shares the read
    /// (it gets a copy in a page of its own). No readahead: the read covers
    /// the caller's page only. The buffer is dropped when the read
    /// completes (or at once when served from the cache).
    ///
    /// # Errors
    ///
    /// [`SwapError::BadSlot`] for a slot not allocated (or freed, its free
    /// waiting for I/O); [`SwapError::InMemory`] as for `swap_readpage`;
    /// [`SwapError::Busy`] when a read of the slot into a pool page is on
    /// its way (a `swap_readpage`'s or a readahead's: wait for it and
    /// retry, or use `swap_readpage`); [`SwapError::Backend`]
    /// (`EINVAL`) when `dst` is not one page long. `dst` is dropped.
    pub fn swap_read_into(
        &self,
        slot: Slot,
        mut dst: GuestBuf<Dest>,
        plug: Option<&mut SwapPlug>,
    ) -> Result<SwapInto, SwapError> {
        if dst.len() != PAGE_SIZE {
            return Err(SwapError::Backend(IoError::InvalidArgument(
                "swap_read_into: the destination must be one page",
            )));
        }
        let sh = &self.shared;
        let s = slot.index();
        let cached = {
            let mut book = self.book();
            if !book.map.is_allocated(slot) {
                return Err(SwapError::BadSlot(slot));
            }
            match book.cache.get(s) {
                Some(e) if e.free_pending() => return Err(SwapError::BadSlot(slot)),
                Some(Entry::FolioReading { .. }) => return Err(SwapError::Busy(slot)),
                Some(Entry::FolioWriteback { folio, first, .. }) => {
                    let folio = folio.upgrade().ok_or(SwapError::Busy(slot))?;
                    let first = *first;
                    drop(book);
                    fill_buf(&mut dst, Some(folio_page(&folio, first, s)));
                    add(&sh.stats.cache_hits, 1);
                    return Ok(SwapInto::ready(slot, IntoFill::Cached, sh));
                }
                Some(Entry::Redirtied) => return Err(SwapError::InMemory(slot)),
                Some(Entry::Writeback { page, .. }) => {
                    let page = page.upgrade().ok_or(SwapError::Busy(slot))?;
                    drop(book);
                    fill_buf(&mut dst, Some(page.as_bytes()));
                    add(&sh.stats.cache_hits, 1);
                    return Ok(SwapInto::ready(slot, IntoFill::Cached, sh));
                }
                Some(Entry::Reading { .. }) => return Err(SwapError::Busy(slot)),
                Some(Entry::Readahead { .. }) => {
                    if let Some(Entry::Readahead { page }) = book.cache.remove(s) {
                        drop(book);
                        fill_buf(&mut dst, Some(page.as_bytes()));
                        add(&sh.stats.readahead_hits, 1);
                        sh.ra.hits.fetch_add(1, Ordering::Relaxed);
                        self.put_page(page);
                        return Ok(SwapInto::ready(slot, IntoFill::Cached, sh));
                    }
                    unreachable!()
                }
                None => {}
            }
            if book.map.is_zero(slot) {
                drop(book);
                fill_buf(&mut dst, None);
                add(&sh.stats.zero_pages_in, 1);
                return Ok(SwapInto::ready(slot, IntoFill::Zero, sh));
            }
            let cell = InCell::new(slot, InState::Plugged);
            book.cache.insert(
                s,
                Entry::Reading {
                    cell: Arc::clone(&cell),
                    wanted: true,
                    free: false,
                },
            );
            cell
        };
        let into = Arc::new(IntoCell {
            slot,
            state: Mutex::new(IntoState::Plugged),
        });
        let mut own = SwapPlug::new();
        let plug = match plug {
            Some(plug) => plug,
            None => &mut own,
        };
        let pos = slot.byte_offset();
        if let Some(sio) = &plug.read_into {
            if !Arc::ptr_eq(&sio.dev, sh) || end_of(sio.pos, sio.bufs.len()) != pos {
                plug.read_unplug();
            }
        }
        let entry = (Arc::clone(&into), cached);
        match &mut plug.read_into {
            Some(sio) => {
                sio.bufs.push(dst);
                sio.cells.push(entry);
            }
            None => {
                plug.read_into = Some(IntoSio {
                    dev: Arc::clone(sh),
                    pos,
                    bufs: smallvec::smallvec![dst],
                    cells: smallvec::smallvec![entry],
                })
            }
        }
        if plug
            .read_into
            .as_ref()
            .is_some_and(|s| s.bufs.len() >= SWAP_CLUSTER_MAX)
        {
            plug.read_unplug();
        }
        Ok(SwapInto {
            cell: into,
            dev: Arc::clone(sh),
        })
    }

    /// Drops a reference to a swapped-in page whose data is no longer
    /// needed (`put_page`): the last reference hands the frame back to the
    /// device's page pool for a later swap-in, flags cleared and bytes
    /// left as they are. Pages the pool has no room for are freed.
    #[doc(alias = "folio_put")]
    pub fn put_page(&self, page: PageRef) {
        if let Ok(page) = PageRef::try_unwrap(page) {
            self.shared.slots.pool.put(page);
        }
    }

    /// A page from the device's pool for a swap-out: a recycled frame (its
    /// bytes are whatever it held: overwrite them) or a fresh zeroed one;
    /// hand it back with [`SwapDevice::put_page`] when its writeback has
    /// ended (`mempool_alloc` for the pages a pager copies out).
    ///
    /// # Errors
    ///
    /// [`SwapError::Backend`] (ENOMEM) when no page can be allocated.
    #[doc(alias = "mempool_alloc")]
    pub fn get_page(&self) -> Result<Page, SwapError> {
        self.shared.slots.pool.get().map_err(SwapError::Backend)
    }

    /// Pages the device keeps for reuse by swap-in.
    pub fn pooled_pages(&self) -> usize {
        self.shared.slots.pool.len()
    }

    /// Pages read ahead and held by the swap cache, nobody having asked
    /// for them yet.
    pub fn readahead_cached(&self) -> usize {
        self.book().cache.readahead_cached()
    }

    /// Slots with a swap-cache entry (under writeback, redirtied, being
    /// read, read ahead).
    pub fn cache_entries(&self) -> usize {
        self.book().cache.len()
    }

    /// Whether `page` is under writeback to `slot` in the swap cache.
    pub fn caches(&self, slot: Slot, page: &PageRef) -> bool {
        matches!(
            self.book().cache.get(slot.index()),
            Some(Entry::Writeback { page: w, .. }) if std::ptr::eq(w.as_ptr(), Arc::as_ptr(page))
        )
    }

    /// Whether `slot`'s last write failed, so that its data is the
    /// redirtied page in memory ([`SwapError::InMemory`] on swap-in).
    pub fn is_redirtied(&self, slot: Slot) -> bool {
        matches!(self.book().cache.get(slot.index()), Some(Entry::Redirtied))
    }

    /// Frees `slot` (`swap_free`): the page was swapped in for good, or
    /// dropped. A slot whose write or read is on its way stays allocated
    /// until that I/O completes (`SWAP_HAS_CACHE`), so it is never reused
    /// under a write in flight; its page leaves the swap cache.
    ///
    /// # Errors
    ///
    /// [`SwapError::Map`]: double free (a deferred free included), reserved
    /// or out-of-range slot.
    pub fn swap_free(&self, slot: Slot) -> Result<(), SwapError> {
        let s = slot.index();
        let mut book = self.book();
        match book.cache.get_mut(s) {
            Some(
                Entry::Writeback { free, .. }
                | Entry::Reading { free, .. }
                | Entry::FolioWriteback { free, .. }
                | Entry::FolioReading { free },
            ) => {
                if *free {
                    return Err(SwapError::Map(SwapMapError::DoubleFree { slot }));
                }
                *free = true;
                add(&self.shared.stats.deferred_frees, 1);
                return Ok(());
            }
            Some(_) => {
                book.cache.remove(s);
            }
            None => {}
        }
        book.map.free(slot).map_err(SwapError::Map)?;
        Ok(())
    }

    /// Allocates one slot, next-fit.
    pub fn alloc_slot(&self) -> Option<Slot> {
        self.book().map.alloc()
    }

    /// Allocates `n` consecutive slots.
    pub fn alloc_contiguous(&self, n: u32) -> Option<SlotRange> {
        self.book().map.alloc_contiguous(n)
    }

    /// Allocates a slot chosen at random among the free ones.
    pub fn alloc_random(&self, rng: &mut SlotRng) -> Option<Slot> {
        self.book().map.alloc_random(rng)
    }

    /// Slots that can ever hold a page.
    pub fn usable_slots(&self) -> u32 {
        self.book().map.usable()
    }

    /// Slots currently allocated.
    pub fn used_slots(&self) -> u32 {
        self.book().map.used_count()
    }

    /// Slots currently free.
    pub fn free_slots(&self) -> u32 {
        self.book().map.free_count()
    }

    /// Delivers the completions already available, without blocking;
    /// returns how many kiocbs are still in flight.
    pub fn poll(&self) -> u64 {
        if self.in_flight() > 0 {
            let _ = self.shared.target.drive(0);
        }
        self.in_flight()
    }

    /// Blocks until at least one in-flight kiocb has completed and its
    /// completion has run; returns at once when nothing is in flight (on
    /// targets that complete inline, nothing ever is). Used to keep a fixed
    /// number of kiocbs in flight.
    ///
    /// # Errors
    ///
    /// [`SwapError::Backend`] when the target cannot be waited on.
    pub fn wait_any(&self) -> Result<(), SwapError> {
        if self.in_flight() > 0 {
            self.shared.target.drive(1).map_err(SwapError::Backend)?;
        }
        Ok(())
    }

    /// Kiocbs submitted whose completion has not run.
    pub fn in_flight(&self) -> u64 {
        let s = &self.shared.stats;
        s.writes_in_flight.load(Ordering::Acquire) + s.reads_in_flight.load(Ordering::Acquire)
    }

    /// The most kiocbs that were in flight at once since the device was
    /// made (or since [`SwapDevice::reset_max_in_flight`]).
    pub fn max_in_flight(&self) -> u64 {
        self.shared.stats.max_in_flight.load(Ordering::Relaxed)
    }

    /// Restarts [`SwapDevice::max_in_flight`] from what is in flight now.
    pub fn reset_max_in_flight(&self) {
        self.shared
            .stats
            .max_in_flight
            .store(self.in_flight(), Ordering::Relaxed);
    }

    /// Waits until every submitted kiocb has completed. Batches still in a
    /// plug are not submitted: unplug first.
    ///
    /// # Errors
    ///
    /// [`SwapError::Backend`] when the target cannot be waited on.
    pub fn drain(&self) -> Result<(), SwapError> {
        while self.in_flight() > 0 {
            self.shared
                .target
                .drive(usize::MAX)
                .map_err(SwapError::Backend)?;
        }
        Ok(())
    }

    /// The counters.
    pub fn counters(&self) -> SwapCounters {
        self.shared.stats.snapshot()
    }

    /// Per-kiocb latencies recorded since the last call.
    pub fn take_latencies(&self) -> Latencies {
        let stats = &self.shared.stats;
        Latencies {
            write: stats.write_lat.take(),
            read: stats.read_lat.take(),
        }
    }

    /// The first error messages (write and read failures), rate-limited as
    /// the kernel's `pr_err_ratelimited` would.
    pub fn error_log(&self) -> Vec<String> {
        lock(&self.shared.stats.errors).clone()
    }
}

// ---------------------------------------------------------------------------
// Large folios.

/// Why a large folio was split for swap-out, or swapped in page by page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FolioFallback {
    /// The area is a swap file, not a block device: mainline allocates no
    /// large swap entries there (`cluster_alloc_swap_entry`: "Swapfile is
    /// not block device so unable to allocate large entries").
    NotBlockDevice,
    /// No naturally aligned run of `2^order` free slots in a cluster.
    NoAlignedRun,
    /// The slots are not one folio's: not aligned to its size, not all
    /// allocated, or one is freed.
    NotOneFolio,
    /// A slot is in the swap cache (under I/O, redirtied, read ahead).
    Cached,
    /// Some slots hold zeros and some do not.
    MixedZero,
}

impl fmt::Display for FolioFallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FolioFallback::NotBlockDevice => {
                "the area is a swap file, not a block device: no large swap entries (mainline)"
            }
            FolioFallback::NoAlignedRun => "no naturally aligned run of free slots",
            FolioFallback::NotOneFolio => "the slots are not one folio's",
            FolioFallback::Cached => "a slot is in the swap cache",
            FolioFallback::MixedZero => "some slots are zero pages and some not",
        })
    }
}

/// What [`SwapDevice::swap_writefolio`] did.
#[derive(Debug)]
pub enum FolioOut {
    /// Not dirty: nothing to write.
    Clean,
    /// All zeros: its slots are marked (the zeromap), nothing written.
    Zero(SlotRange),
    /// Under writeback as one segment over the run of slots (one kiocb).
    Whole(SlotRange),
    /// Split, and why: each page is a copy of one of the folio's, swapped
    /// out on its own to its slot (what the caller holds from now on; the
    /// folio is clean and may go).
    Split {
        /// Why.
        why: FolioFallback,
        /// The pages and their slots, in folio order.
        pages: Vec<(Slot, PageRef)>,
    },
}

/// What [`SwapDevice::swap_readfolio`] did.
#[derive(Debug)]
pub enum FolioIn {
    /// Every slot is a zero page: a zeroed folio, no I/O.
    Zero(FolioRef),
    /// Being read as one segment.
    Reading(SwapInFolio),
    /// Not a large swap-in, and why: swap the pages in one by one.
    Fallback(FolioFallback),
}

/// A large folio being swapped in ([`FolioIn::Reading`]).
pub struct SwapInFolio {
    cell: Arc<Mutex<Option<Result<FolioRef, SwapError>>>>,
    dev: Arc<Shared>,
}

impl SwapInFolio {
    /// Whether the read has completed.
    pub fn is_done(&self) -> bool {
        lock(&self.cell).is_some()
    }

    /// Waits for the read (driving the device): the uptodate folio, or the
    /// error.
    ///
    /// # Errors
    ///
    /// [`SwapError::Read`] when the read failed (the folio is not
    /// uptodate).
    pub fn wait(self) -> Result<FolioRef, SwapError> {
        loop {
            if let Some(r) = lock(&self.cell).take() {
                return r;
            }
            self.dev.wait_some();
        }
    }
}

impl fmt::Debug for SwapInFolio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SwapInFolio")
            .field("done", &self.is_done())
            .finish()
    }
}

impl Stats {
    /// The end of a large folio's writeback (`sio_write_complete` for one
    /// segment).
    fn folio_write_complete(
        &self,
        slots: &Slots,
        range: SlotRange,
        folio: &FolioRef,
        result: Result<usize, IoError>,
        start: Instant,
    ) {
        self.write_lat.record(start.elapsed());
        let failure = IoFailure::check(result, folio.size());
        {
            let mut book = lock(&slots.book);
            for slot in range.iter() {
                let ours = |e: &Entry<InCell>| match e {
                    Entry::FolioWriteback { folio: w, .. } => {
                        std::ptr::eq(w.as_ptr(), Arc::as_ptr(folio))
                    }
                    _ => false,
                };
                if let Some(Entry::FolioWriteback { free, .. }) =
                    book.cache.remove_if(slot.index(), ours)
                {
                    if free {
                        let _ = book.map.free(slot);
                    } else if failure.is_some() {
                        book.cache.insert(slot.index(), Entry::Redirtied);
                    }
                }
            }
        }
        if let Some(failure) = failure {
            add(&self.write_errors, 1);
            add(&self.redirtied_pages, u64::from(range.len()));
            self.log_error(format!(
                "Write error {failure} on dio swapfile ({}, folio of {} pages)",
                range.byte_offset(),
                range.len()
            ));
            folio.set_flags(PageFlags::DIRTY);
            folio.clear_flags(PageFlags::RECLAIM);
        }
        folio.clear_flags(PageFlags::RECLAIM | PageFlags::WRITEBACK);
        self.writes_in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// The end of a large folio's read (`sio_read_complete` for one
    /// segment).
    fn folio_read_complete(
        &self,
        slots: &Slots,
        range: SlotRange,
        folio: Folio,
        result: Result<usize, IoError>,
        start: Instant,
    ) -> Result<FolioRef, SwapError> {
        self.read_lat.record(start.elapsed());
        let failure = IoFailure::check(result, folio.size());
        {
            let mut book = lock(&slots.book);
            for slot in range.iter() {
                let ours = |e: &Entry<InCell>| matches!(e, Entry::FolioReading { .. });
                if let Some(Entry::FolioReading { free }) = book.cache.remove_if(slot.index(), ours)
                {
                    if free {
                        let _ = book.map.free(slot);
                    }
                }
            }
        }
        self.reads_in_flight.fetch_sub(1, Ordering::AcqRel);
        match failure {
            None => {
                add(&self.pswpin, u64::from(range.len()));
                add(&self.folios_in, 1);
                folio.set_flags(PageFlags::UPTODATE);
                Ok(FolioRef::new(folio))
            }
            Some(failure) => {
                add(&self.read_errors, 1);
                add(&self.read_failed_pages, u64::from(range.len()));
                self.log_error(format!(
                    "Read-error on swap-device ({}, folio of {} pages): {failure}",
                    range.byte_offset(),
                    range.len()
                ));
                Err(SwapError::Read {
                    slot: range.start(),
                    failure,
                })
            }
        }
    }
}

impl SwapDevice {
    /// Whether large folios get large swap entries (one segment over
    /// `2^order` naturally aligned slots), as mainline allows on block
    /// devices only. The default: yes for a target of a fixed size (a
    /// block device, the RAM backend: [`DirectIo::capacity`]), no for a
    /// regular file.
    pub fn large_folios(&self) -> bool {
        self.shared.large_folios.load(Ordering::Relaxed)
    }

    /// Overrides [`SwapDevice::large_folios`].
    pub fn set_large_folios(&self, on: bool) {
        self.shared.large_folios.store(on, Ordering::Relaxed);
    }

    /// Swaps out a large folio (order 1 or more; `swap_writepage` of a
    /// large folio after `folio_alloc_swap`): where large swap entries are
    /// allowed and a naturally aligned run of `2^order` free slots exists,
    /// the device allocates it and writes the folio as one segment, one
    /// kiocb (the swap cache holds the folio for each slot until the write
    /// completes, as for pages); else the folio is split: each page is
    /// copied into a page of its own and swapped out to a slot of its own
    /// ([`FolioOut::Split`] says why). An all-zero folio is only marked.
    /// The plug is for the split pages (the whole folio is its own
    /// kiocb).
    ///
    /// # Errors
    ///
    /// [`SwapError::Busy`] for a folio already under writeback;
    /// [`SwapError::NoSpace`] when a split finds too few free slots (none
    /// is kept); [`SwapError::Backend`] (ENOMEM) for pages of a split;
    /// [`SwapError::Unsupported`] for an order-0 folio (use
    /// [`SwapDevice::swap_writepage`]); [`SwapError::Backend`] (`EINVAL`)
    /// for a folio that is not uptodate. The folio is untouched.
    pub fn swap_writefolio(
        &self,
        folio: FolioRef,
        plug: Option<&mut SwapPlug>,
    ) -> Result<FolioOut, SwapError> {
        if folio.order() == 0 {
            return Err(SwapError::Unsupported(
                "swap_writefolio takes large folios; a page goes through swap_writepage",
            ));
        }
        if !folio.test(PageFlags::UPTODATE) {
            return Err(SwapError::Backend(NOT_UPTODATE));
        }
        if folio.test(PageFlags::WRITEBACK) {
            return Err(SwapError::Busy(Slot::new(0)));
        }
        let n = folio.nr_pages() as u32;
        let sh = &self.shared;
        let range = {
            let mut book = self.book();
            if !folio.test(PageFlags::DIRTY) {
                return Ok(FolioOut::Clean);
            }
            let run = if self.large_folios() {
                book.map.alloc_aligned(n).ok_or(FolioFallback::NoAlignedRun)
            } else {
                Err(FolioFallback::NotBlockDevice)
            };
            match run {
                Ok(range) => {
                    folio.clear_flags(PageFlags::DIRTY);
                    if is_zero_filled(folio.as_bytes()) {
                        for slot in range.iter() {
                            book.map.set_zero(slot, true);
                        }
                        add(&sh.stats.zero_pages_out, u64::from(n));
                        return Ok(FolioOut::Zero(range));
                    }
                    for slot in range.iter() {
                        book.map.set_zero(slot, false);
                        book.cache.insert(
                            slot.index(),
                            Entry::FolioWriteback {
                                folio: Arc::downgrade(&folio),
                                first: range.start().index(),
                                free: false,
                            },
                        );
                    }
                    range
                }
                Err(why) => {
                    drop(book);
                    return self.split_folio(&folio, why, plug);
                }
            }
        };
        folio.set_flags(PageFlags::RECLAIM | PageFlags::WRITEBACK);
        add(&sh.stats.pswpout, u64::from(n));
        add(&sh.stats.folios_out, 1);
        add(&sh.stats.write_batches, 1);
        sh.stats.writes_in_flight.fetch_add(1, Ordering::AcqRel);
        let stats = Arc::clone(&sh.stats);
        let slots = Arc::clone(&sh.slots);
        let start = Instant::now();
        let pos = range.byte_offset();
        let done = move |result, iter: OwnedIter<Source, FolioRef>| {
            stats.folio_write_complete(&slots, range, &iter.into_inner(), result, start);
        };
        let iter = OwnedIter::<Source, _>::new(folio);
        submit_owned(sh, pos, iter, done);
        Ok(FolioOut::Whole(range))
    }

    /// The split fallback: every page a copy, swapped out to a slot of
    /// its own.
    fn split_folio(
        &self,
        folio: &FolioRef,
        why: FolioFallback,
        mut plug: Option<&mut SwapPlug>,
    ) -> Result<FolioOut, SwapError> {
        let n = folio.nr_pages();
        let mut slots = Vec::with_capacity(n);
        {
            let mut book = self.book();
            for _ in 0..n {
                match book.map.alloc() {
                    Some(s) => slots.push(s),
                    None => {
                        for s in slots {
                            let _ = book.map.free(s);
                        }
                        return Err(SwapError::NoSpace {
                            wanted: n as u64,
                            free: u64::from(book.map.free_count()),
                        });
                    }
                }
            }
        }
        let mut copies = Vec::with_capacity(n);
        for k in 0..n {
            match self.get_page() {
                Ok(mut page) => {
                    page.as_mut_bytes()
                        .copy_from_slice(&folio.as_bytes()[k * PAGE_SIZE..(k + 1) * PAGE_SIZE]);
                    page.set_flags(PageFlags::UPTODATE | PageFlags::DIRTY);
                    copies.push(PageRef::new(page));
                }
                Err(e) => {
                    let mut book = self.book();
                    for s in slots {
                        let _ = book.map.free(s);
                    }
                    return Err(e);
                }
            }
        }
        // The folio's data now lives in the copies.
        folio.clear_flags(PageFlags::DIRTY);
        add(&self.shared.stats.folio_splits, 1);
        let mut pages = Vec::with_capacity(n);
        for (slot, page) in slots.into_iter().zip(copies) {
            // A fresh slot and a fresh dirty page: neither busy nor clean.
            self.swap_writepage(PageRef::clone(&page), slot, plug.as_deref_mut())?;
            pages.push((slot, page));
        }
        Ok(FolioOut::Split { why, pages })
    }

    /// Swaps in a large folio of `order` from its run of slots starting at
    /// `first` (an mTHP swap-in): where large entries are allowed, `first`
    /// is aligned to the folio's size, every slot is allocated and in no
    /// swap-cache entry, and the slots are all zero pages or none, one read
    /// of one segment into a new folio (or a zeroed folio without I/O);
    /// else [`FolioIn::Fallback`] says why and the caller swaps the pages
    /// in one by one. The slots stay allocated (free them with
    /// [`SwapDevice::swap_free`]).
    ///
    /// # Errors
    ///
    /// [`SwapError::Backend`] (ENOMEM) when no folio can be allocated,
    /// (`EINVAL`) for an order above [`iov_iter::MAX_PAGE_ORDER`].
    pub fn swap_readfolio(&self, first: Slot, order: u32) -> Result<FolioIn, SwapError> {
        let sh = &self.shared;
        if order > iov_iter::MAX_PAGE_ORDER {
            return Err(SwapError::Backend(IoError::InvalidArgument(
                "folio order above MAX_PAGE_ORDER",
            )));
        }
        let n = 1u32 << order;
        if order == 0 || !self.large_folios() {
            return Ok(FolioIn::Fallback(FolioFallback::NotBlockDevice));
        }
        if first.index() % n != 0 || first.index().checked_add(n).is_none() {
            return Ok(FolioIn::Fallback(FolioFallback::NotOneFolio));
        }
        let range = SlotRange::new(first, n);
        let zero = {
            let mut book = self.book();
            let mut zeros = 0;
            for slot in range.iter() {
                if !book.map.is_allocated(slot) {
                    return Ok(FolioIn::Fallback(FolioFallback::NotOneFolio));
                }
                if book.cache.get(slot.index()).is_some() {
                    return Ok(FolioIn::Fallback(FolioFallback::Cached));
                }
                zeros += u32::from(book.map.is_zero(slot));
            }
            if zeros != 0 && zeros != n {
                return Ok(FolioIn::Fallback(FolioFallback::MixedZero));
            }
            if zeros == 0 {
                for slot in range.iter() {
                    book.cache
                        .insert(slot.index(), Entry::FolioReading { free: false });
                }
            }
            zeros == n
        };
        let folio = match Folio::new(order) {
            Ok(f) => f,
            Err(e) => {
                if !zero {
                    let mut book = self.book();
                    for slot in range.iter() {
                        book.cache.remove(slot.index());
                    }
                }
                return Err(SwapError::Backend(e));
            }
        };
        if zero {
            // A new folio is zeroed.
            folio.set_flags(PageFlags::UPTODATE);
            add(&sh.stats.zero_pages_in, u64::from(n));
            return Ok(FolioIn::Zero(FolioRef::new(folio)));
        }
        add(&sh.stats.read_batches, 1);
        sh.stats.reads_in_flight.fetch_add(1, Ordering::AcqRel);
        let cell = Arc::new(Mutex::new(None));
        let handle = SwapInFolio {
            cell: Arc::clone(&cell),
            dev: Arc::clone(sh),
        };
        let stats = Arc::clone(&sh.stats);
        let slots = Arc::clone(&sh.slots);
        let start = Instant::now();
        let done = move |result, iter: OwnedIter<Dest, Folio>| {
            let r = stats.folio_read_complete(&slots, range, iter.into_inner(), result, start);
            *lock(&cell) = Some(r);
        };
        let iter = OwnedIter::<Dest, _>::new(folio);
        let pos = range.byte_offset();
        submit_owned(sh, pos, iter, done);
        Ok(FolioIn::Reading(handle))
    }
}

impl Drop for SwapDevice {
    fn drop(&mut self) {
        // Let in-flight completions run while the caller still cares.
        let _ = self.drain();
    }
}

impl fmt::Debug for SwapDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SwapDevice")
            .field("mode", &self.mode())
            .field("align", &self.shared.align)
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activate::{create_swap_file, open_swap_file};
    use crate::content::{plan, shuffle};
    use crate::header::{Label, Uuid};
    use crate::testutil::TestDir;
    // Under Miri, cheap stand-ins for most pages (see `testutil::pages`).
    use crate::testutil::pages::{check_page, check_swapped_in, make_page};
    use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, PendingOrder};
    use iov_iter::{Errno, Error};

    const SEED: u64 = 0xfeed;
    const ASYNC_BACKENDS: [IoMode; 2] = [IoMode::Sync, IoMode::AsyncInline];

    /// A RAM device of `slots` slots and a swap device on it.
    fn mem_device(mode: IoMode, slots: u64) -> (Arc<MemDevice>, SwapDevice) {
        let mem = Arc::new(MemDevice::new(slots as usize * PAGE_SIZE));
        if mode == IoMode::Uring {
            // Async kiocbs kept in flight: the RAM device defers them.
            mem.defer_completions(Some(PendingOrder::Fifo));
        }
        (mem.clone(), SwapDevice::new(mem, mode, slots).unwrap())
    }

    fn on_device(mem: &MemDevice, slot: Slot) -> [u8; PAGE_SIZE] {
        let mut buf = [0u8; PAGE_SIZE];
        assert_eq!(mem.read_at(slot.byte_offset(), &mut buf), PAGE_SIZE);
        buf
    }

    fn assert_clean(page: &Page) {
        assert!(page.test(PageFlags::UPTODATE), "{page:?}");
        let busy = PageFlags::DIRTY | PageFlags::WRITEBACK | PageFlags::RECLAIM;
        assert!(!page.flags().intersects(busy), "{page:?}");
    }

    fn assert_redirtied(page: &Page) {
        assert!(
            page.test(PageFlags::DIRTY | PageFlags::UPTODATE),
            "{page:?}"
        );
        let gone = PageFlags::WRITEBACK | PageFlags::RECLAIM | PageFlags::ERROR;
        assert!(!page.flags().intersects(gone), "{page:?}");
    }

    fn run_slots(dev: &SwapDevice, n: u32) -> Vec<Slot> {
        dev.alloc_contiguous(n).unwrap().iter().collect()
    }

    #[test]
    fn plug_merges_contiguous_pages_up_to_32_per_kiocb() {
        // Under Miri, the async mode only (the sync one merges the same).
        for mode in ASYNC_BACKENDS.into_iter().skip(usize::from(cfg!(miri))) {
            let (mem, dev) = mem_device(mode, 128);
            let slots = run_slots(&dev, 100);
            let pages: Vec<PageRef> = (0..100).map(|i| make_page(i, SEED)).collect();
            let mut plug = SwapPlug::new();
            for (i, (page, &slot)) in pages.iter().zip(&slots).enumerate() {
                assert!(
                    dev.swap_writepage(page.clone(), slot, Some(&mut plug))
                        .unwrap()
                );
                // The batch goes out when it reaches 32 pages.
                assert_eq!(mem.stats().writes, (i as u64 + 1) / 32, "{mode} page {i}");
            }
            assert_eq!(plug.pending(), (4, 0));
            for page in &pages[96..] {
                // In the plug: dirty taken, under writeback, marked for reclaim.
                let f = page.flags();
                assert!(
                    f.contains(PageFlags::WRITEBACK | PageFlags::RECLAIM),
                    "{f:?}"
                );
                assert!(!f.contains(PageFlags::DIRTY));
            }
            assert_eq!(dev.counters().pswpout, 100, "counted at submission");
            plug.unplug();
            assert_eq!(mem.stats().writes, 4);
            let c = dev.counters();
            assert_eq!(c.write_batches, 4);
            assert_eq!(c.write_batch_sizes[32], 3);
            assert_eq!(c.write_batch_sizes[4], 1);
            assert_eq!((c.merged_write_pages, c.written_pages()), (96, 100));
            assert_eq!(c.max_write_batch(), SWAP_CLUSTER_MAX);
            for (i, (page, &slot)) in pages.iter().zip(&slots).enumerate() {
                assert_clean(page);
                assert_eq!(PageRef::strong_count(page), 1, "the I/O let go of it");
                assert_eq!(check_page(&on_device(&mem, slot), i as u64, SEED), Ok(()));
            }

            // Swap-in merges the same way: 4 read kiocbs.
            let handles: Vec<SwapIn> = slots
                .iter()
                .map(|&s| dev.swap_readpage(s, Some(&mut plug)).unwrap())
                .collect();
            assert!(handles[99].is_plugged() && !handles[0].is_plugged());
            drop(plug);
            assert_eq!(mem.stats().reads, 4);
            for (i, h) in handles.into_iter().enumerate() {
                let page = h.wait().unwrap();
                assert_eq!(check_swapped_in(&page, i as u64, SEED), Ok(()));
                assert!(!page.test(PageFlags::DIRTY), "a bvec read dirties nothing");
            }
            let c = dev.counters();
            assert_eq!(
                (c.read_batches, c.merged_read_pages, c.pswpin),
                (4, 96, 100)
            );
            assert_eq!(c.read_batch_sizes[32], 3);
            assert_eq!(dev.in_flight(), 0);
        }
    }

    #[test]
    fn non_contiguous_pages_flush_the_plug() {
        for mode in ASYNC_BACKENDS {
            let (mem, dev) = mem_device(mode, 64);
            let s = run_slots(&dev, 20);
            let mut plug = SwapPlug::new();
            let write = |i: usize, plug: &mut SwapPlug| {
                dev.swap_writepage(make_page(i as u64, SEED), s[i], Some(plug))
                    .unwrap()
            };
            for i in 0..3 {
                write(i, &mut plug);
            }
            assert_eq!(mem.stats().writes, 0);
            write(7, &mut plug); // a gap: the 3-page batch goes out
            assert_eq!((mem.stats().writes, plug.pending()), (1, (1, 0)));
            write(6, &mut plug); // backwards is not contiguous either
            assert_eq!((mem.stats().writes, plug.pending()), (2, (1, 0)));
            write(7 + 1, &mut plug); // not after 6
            assert_eq!(mem.stats().writes, 3);
            write(9, &mut plug); // after 8: merged
            assert_eq!((mem.stats().writes, plug.pending()), (3, (2, 0)));
            plug.write_unplug();
            assert_eq!((mem.stats().writes, plug.pending()), (4, (0, 0)));
            let c = dev.counters();
            assert_eq!(&c.write_batch_sizes[..4], &[0, 2, 1, 1]);
            assert_eq!(c.merged_write_pages, 3);
        }
    }

    #[test]
    fn another_device_flushes_the_plug() {
        let (mem_a, a) = mem_device(IoMode::Sync, 16);
        let (mem_b, b) = mem_device(IoMode::AsyncInline, 16);
        let sa = run_slots(&a, 2);
        let sb = run_slots(&b, 2);
        let mut plug = SwapPlug::new();
        a.swap_writepage(make_page(0, SEED), sa[0], Some(&mut plug))
            .unwrap();
        // Slot sa[1] on device b would be contiguous by position only.
        assert_eq!(sb[1], sa[1]);
        b.swap_writepage(make_page(1, SEED), sb[1], Some(&mut plug))
            .unwrap();
        assert_eq!((mem_a.stats().writes, mem_b.stats().writes), (1, 0));
        // Written out, so the reads go to the devices (not the swap cache).
        plug.write_unplug();
        a.set_page_cluster(0);
        b.set_page_cluster(0);
        let r = a.swap_readpage(sa[0], Some(&mut plug)).unwrap();
        let r2 = b.swap_readpage(sb[1], Some(&mut plug)).unwrap();
        assert_eq!(mem_a.stats().reads, 1);
        assert!(!r.is_plugged() && r2.is_plugged());
        drop(plug);
        assert_eq!((mem_a.stats().ios(), mem_b.stats().ios()), (2, 2));
        assert_eq!(check_swapped_in(&r.wait().unwrap(), 0, SEED), Ok(()));
        assert_eq!(check_swapped_in(&r2.wait().unwrap(), 1, SEED), Ok(()));
    }

    #[test]
    fn swap_in_reuses_pages_put_back_without_zeroing() {
        // Under Miri, one mode: the pool is the same in both.
        for mode in ASYNC_BACKENDS
            .into_iter()
            .take(if cfg!(miri) { 1 } else { 2 })
        {
            let (mem, dev) = mem_device(mode, 8);
            dev.set_page_cluster(0); // the pool's pages, one per swap-in
            let s = run_slots(&dev, 2);
            for (i, &slot) in s.iter().enumerate() {
                dev.swap_writepage(make_page(i as u64, SEED), slot, None)
                    .unwrap();
            }
            let first = dev.read_page(s[0]).unwrap();
            assert_eq!(check_swapped_in(&first, 0, SEED), Ok(()));
            let addr = first.addr();
            // Still referenced elsewhere: not pooled.
            dev.put_page(PageRef::clone(&first));
            assert_eq!(dev.pooled_pages(), 0);
            dev.put_page(first);
            assert_eq!(dev.pooled_pages(), 1);
            // The next swap-in gets the same frame, holding page 0's bytes
            // until the read overwrites all of them with page 1's.
            let second = dev.read_page(s[1]).unwrap();
            assert_eq!(second.addr(), addr);
            assert_eq!(check_swapped_in(&second, 1, SEED), Ok(()));
            assert_eq!(dev.pooled_pages(), 0);
            // A failed read of a recycled page: stale bytes, not uptodate.
            dev.put_page(second);
            mem.inject(FaultPlan::next(1, Fault::Short(0)).reads_only());
            let (page, r) = dev.swap_readpage(s[0], None).unwrap().wait_page();
            assert!(r.is_err());
            assert_eq!(page.addr(), addr);
            assert!(!page.test(PageFlags::UPTODATE) && !page.test(PageFlags::LOCKED));
            assert_eq!(check_page(page.as_bytes(), 1, SEED), Ok(()), "stale");
            dev.put_page(page);
            // The pool keeps at most PAGE_POOL_MAX pages.
            let pages: Vec<PageRef> = (0..PAGE_POOL_MAX + 3)
                .map(|_| dev.read_page(s[0]).unwrap())
                .collect();
            pages.into_iter().for_each(|p| dev.put_page(p));
            assert_eq!(dev.pooled_pages(), PAGE_POOL_MAX);
        }
    }

    #[test]
    fn without_a_plug_every_page_is_its_own_kiocb() {
        for mode in ASYNC_BACKENDS {
            let (mem, dev) = mem_device(mode, 16);
            dev.set_page_cluster(0); // no readahead: one kiocb per swap-in
            let s = run_slots(&dev, 4);
            for (i, &slot) in s.iter().enumerate() {
                let page = make_page(i as u64, SEED);
                assert!(dev.swap_writepage(page.clone(), slot, None).unwrap());
                assert_eq!(mem.stats().writes, i as u64 + 1);
                assert_clean(&page);
            }
            for (i, &slot) in s.iter().enumerate() {
                let page = dev.read_page(slot).unwrap();
                assert_eq!(check_swapped_in(&page, i as u64, SEED), Ok(()));
            }
            let c = dev.counters();
            assert_eq!(
                (c.write_batches, c.read_batches, c.merged_write_pages),
                (4, 4, 0)
            );
            assert_eq!((c.pswpout, c.pswpin), (4, 4));
        }
    }

    #[test]
    fn clean_busy_and_unallocated_pages() {
        let (mem, dev) = mem_device(IoMode::Sync, 16);
        let slot = dev.alloc_slot().unwrap();
        let clean = make_page(0, SEED);
        clean.clear_flags(PageFlags::DIRTY);
        assert_eq!(dev.swap_writepage(clean.clone(), slot, None), Ok(false));
        assert_eq!(mem.stats().ios(), 0, "a clean page is not written");
        let busy = make_page(0, SEED);
        busy.set_flags(PageFlags::WRITEBACK);
        assert_eq!(
            dev.swap_writepage(busy.clone(), slot, None),
            Err(SwapError::Busy(slot))
        );
        assert!(busy.test(PageFlags::DIRTY), "untouched");
        let free = Slot::new(9);
        assert_eq!(
            dev.swap_writepage(make_page(0, SEED), free, None),
            Err(SwapError::BadSlot(free))
        );
        assert_eq!(
            dev.swap_readpage(Slot::new(0), None).unwrap_err(),
            SwapError::BadSlot(Slot::new(0))
        );
        assert_eq!(dev.counters().pswpout, 0);
        assert_eq!(dev.used_slots(), 1);
        dev.swap_free(slot).unwrap();
        assert!(matches!(dev.swap_free(slot), Err(SwapError::Map(_))));
        assert_eq!(dev.used_slots(), 0);
    }

    #[test]
    #[should_panic(expected = "still in a SwapPlug")]
    fn waiting_on_a_plugged_read_panics() {
        let (_mem, dev) = mem_device(IoMode::Sync, 16);
        let slot = dev.alloc_slot().unwrap();
        let mut plug = SwapPlug::new();
        let h = dev.swap_readpage(slot, Some(&mut plug)).unwrap();
        let _ = h.wait_page();
    }

    #[test]
    fn a_failed_write_redirties_its_whole_batch() {
        let faults = [
            Fault::EIO,
            Fault::Short(5 * PAGE_SIZE),
            Fault::Short(512),
            Fault::Error(Error::Os(Errno::ENOSPC)),
        ];
        for (m, mode) in ASYNC_BACKENDS.into_iter().enumerate() {
            for (f, fault) in faults.into_iter().enumerate() {
                if cfg!(miri) && f != m {
                    continue; // Under Miri, EIO (sync) and a short write (async).
                }
                let (mem, dev) = mem_device(mode, 80);
                let s = run_slots(&dev, 64);
                let pages: Vec<PageRef> = (0..64).map(|i| make_page(i, SEED)).collect();
                // The second batch's transfer fails.
                mem.inject(FaultPlan::at_seq(1, fault));
                let mut plug = SwapPlug::new();
                for (p, &slot) in pages.iter().zip(&s) {
                    dev.swap_writepage(p.clone(), slot, Some(&mut plug))
                        .unwrap();
                }
                drop(plug);
                dev.drain().unwrap();
                pages[..32].iter().for_each(|p| assert_clean(p));
                pages[32..].iter().for_each(|p| assert_redirtied(p));
                let c = dev.counters();
                assert_eq!((c.pswpout, c.write_batches, c.write_errors), (64, 2, 1));
                assert_eq!(c.redirtied_pages, 32);
                let log = dev.error_log();
                assert_eq!(log.len(), 1);
                assert!(log[0].starts_with("Write error"), "{log:?}");
                // The data is still in memory; a retry writes it.
                for (i, p) in pages.iter().enumerate().skip(32) {
                    assert_eq!(check_page(p.as_bytes(), i as u64, SEED), Ok(()));
                    assert!(dev.swap_writepage(p.clone(), s[i], None).unwrap());
                    assert_clean(p);
                }
                assert_eq!(dev.counters().pswpout, 96);
                for (i, &slot) in s.iter().enumerate() {
                    assert_eq!(check_page(&on_device(&mem, slot), i as u64, SEED), Ok(()));
                }
            }
        }
    }

    #[test]
    fn a_failed_read_marks_no_page_uptodate() {
        for (m, mode) in ASYNC_BACKENDS.into_iter().enumerate() {
            let faults = [Fault::EIO, Fault::Short(3 * PAGE_SIZE), Fault::Short(0)];
            for (f, fault) in faults.into_iter().enumerate() {
                if cfg!(miri) && (f + m) % 2 != 0 {
                    continue; // Under Miri, each fault in one mode only.
                }
                let (mem, dev) = mem_device(mode, 40);
                let s = run_slots(&dev, 32);
                let mut plug = SwapPlug::new();
                for (i, &slot) in s.iter().enumerate() {
                    dev.swap_writepage(make_page(i as u64, SEED), slot, Some(&mut plug))
                        .unwrap();
                }
                plug.unplug();
                mem.inject(FaultPlan::next(1, fault).reads_only());
                let handles: Vec<SwapIn> = s
                    .iter()
                    .map(|&slot| dev.swap_readpage(slot, Some(&mut plug)).unwrap())
                    .collect();
                plug.unplug();
                assert_eq!(mem.stats().reads, 1, "one kiocb of 32 pages");
                let want = match fault {
                    Fault::Short(done) => IoFailure::Short {
                        done,
                        len: 32 * PAGE_SIZE,
                    },
                    _ => IoFailure::Error(Error::Os(Errno::EIO)),
                };
                for (h, &slot) in handles.into_iter().zip(&s) {
                    let (page, r) = h.wait_page();
                    assert_eq!(
                        r,
                        Err(SwapError::Read {
                            slot,
                            failure: want
                        })
                    );
                    assert!(!page.test(PageFlags::UPTODATE), "{page:?}");
                    assert!(!page.test(PageFlags::LOCKED), "unlocked anyway");
                }
                let c = dev.counters();
                assert_eq!((c.read_errors, c.read_failed_pages, c.pswpin), (1, 32, 0));
                assert!(dev.error_log()[0].starts_with("Read-error on swap-device"));
                // The data is intact on the device: a second try reads it.
                for (i, &slot) in s.iter().enumerate() {
                    let page = dev.read_page(slot).unwrap();
                    assert_eq!(check_swapped_in(&page, i as u64, SEED), Ok(()));
                }
                assert_eq!(dev.counters().pswpin, 32);
            }
        }
    }

    /// Thousands of pages out and in with EIO and short transfers on random
    /// I/Os: every page ends either dirty in memory (failed write) or on the
    /// device, provably (read back through the swap path); failed reads
    /// leave pages not uptodate; the counters add up; nothing is lost.
    #[test]
    fn random_faults_over_thousands_of_pages_lose_no_data() {
        // Under Miri, 48 pages in the async mode only.
        const PAGES: usize = if cfg!(miri) { 48 } else { 4096 };
        for (round, mode) in ASYNC_BACKENDS
            .into_iter()
            .enumerate()
            .skip(usize::from(cfg!(miri)))
        {
            let (mem, dev) = mem_device(mode, PAGES as u64 + 512);
            dev.set_page_cluster(0); // every read asked for, none ahead
            let mut rng = SlotRng::new(0xbad5eed + round as u64);
            // Roughly one I/O in 16 fails, reads and writes alike.
            let mut armed = 0;
            for seq in 0..if cfg!(miri) { 1000 } else { 9000u64 } {
                if rng.below(16) == 0 {
                    let fault = match rng.below(3) {
                        0 => Fault::EIO,
                        1 => Fault::Error(Error::Os(Errno::ENOSPC)),
                        // Shorter than any kiocb (one page at least).
                        _ => Fault::Short(512 * rng.below(8) as usize),
                    };
                    mem.inject(FaultPlan::at_seq(seq, fault));
                    armed += 1;
                }
            }
            assert!(armed > if cfg!(miri) { 40 } else { 400 });
            let order = plan(&dev, PAGES, 48, &mut rng).unwrap();
            let pages: Vec<PageRef> = (0..PAGES).map(|i| make_page(i as u64, SEED)).collect();

            // Swap-out.
            let mut plug = SwapPlug::new();
            for (p, &slot) in pages.iter().zip(&order) {
                dev.swap_writepage(p.clone(), slot, Some(&mut plug))
                    .unwrap();
            }
            plug.unplug();
            dev.drain().unwrap();
            let c = dev.counters();
            let dirty: Vec<usize> = (0..PAGES)
                .filter(|&i| pages[i].test(PageFlags::DIRTY))
                .collect();
            assert!(c.write_errors > 0, "{mode}: no write fault hit");
            assert_eq!(c.pswpout, PAGES as u64);
            assert_eq!(c.written_pages(), PAGES as u64);
            assert_eq!(c.redirtied_pages, dirty.len() as u64);
            assert_eq!(
                mem.stats().faults,
                c.write_errors,
                "one failed kiocb per fault"
            );
            for (i, p) in pages.iter().enumerate() {
                if p.test(PageFlags::DIRTY) {
                    // Failed: still in memory, intact, ready for a retry.
                    assert_redirtied(p);
                    assert_eq!(check_page(p.as_bytes(), i as u64, SEED), Ok(()));
                } else {
                    assert_clean(p);
                    assert_eq!(
                        check_page(&on_device(&mem, order[i]), i as u64, SEED),
                        Ok(()),
                        "{mode}: clean page {i} not on the device"
                    );
                }
                assert_eq!(PageRef::strong_count(p), 1);
            }

            // Swap-in of every clean page, random order, faults still armed.
            let mut clean: Vec<usize> = (0..PAGES)
                .filter(|&i| !pages[i].test(PageFlags::DIRTY))
                .collect();
            shuffle(&mut clean, &mut rng);
            let mut handles = Vec::new();
            for &i in &clean {
                handles.push((i, dev.swap_readpage(order[i], Some(&mut plug)).unwrap()));
            }
            plug.unplug();
            let mut failed_reads = Vec::new();
            for (i, h) in handles {
                let (page, r) = h.wait_page();
                assert!(!page.test(PageFlags::LOCKED));
                match r {
                    Ok(()) => assert_eq!(check_swapped_in(&page, i as u64, SEED), Ok(())),
                    Err(SwapError::Read { slot, .. }) => {
                        assert_eq!(slot, order[i]);
                        assert!(!page.test(PageFlags::UPTODATE));
                        failed_reads.push(i);
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            let c = dev.counters();
            assert!(c.read_errors > 0, "{mode}: no read fault hit");
            assert_eq!(c.read_pages(), clean.len() as u64);
            assert_eq!(c.read_failed_pages, failed_reads.len() as u64);
            assert_eq!(c.pswpin + c.read_failed_pages, clean.len() as u64);
            assert_eq!(mem.stats().faults, c.write_errors + c.read_errors);

            // With the faults gone, the retries bring everything back.
            mem.clear_faults();
            let mut plug = SwapPlug::new();
            for &i in &dirty {
                assert!(
                    dev.swap_writepage(pages[i].clone(), order[i], Some(&mut plug))
                        .unwrap()
                );
            }
            drop(plug);
            for (i, p) in pages.into_iter().enumerate() {
                assert_clean(&p);
                drop(p); // out of memory for good
                if failed_reads.contains(&i) || dirty.contains(&i) {
                    let page = dev.read_page(order[i]).unwrap();
                    assert_eq!(check_swapped_in(&page, i as u64, SEED), Ok(()));
                }
                dev.swap_free(order[i]).unwrap();
            }
            let c = dev.counters();
            assert_eq!(c.pswpout, (PAGES + dirty.len()) as u64);
            assert_eq!(c.pswpin, PAGES as u64);
            assert_eq!(dev.used_slots(), 0);
            assert_eq!(dev.in_flight(), 0);
        }
    }

    #[cfg(not(feature = "uring"))]
    #[test]
    #[cfg_attr(miri, ignore = "O_DIRECT file")]
    fn uring_mode_needs_the_feature() {
        eprintln!("SKIPPED swapio io_uring tests: built without the `uring` feature");
        let dir = TestDir::new("no-uring");
        let path = dir.join("swapfile");
        create_swap_file(&path, 64 * 4096, &Label::EMPTY, Uuid::NIL).unwrap();
        let sf = open_swap_file(&path).unwrap();
        assert!(matches!(
            SwapDevice::open(&sf, IoMode::Uring, 8),
            Err(SwapError::Unsupported(_))
        ));
    }

    /// A swap device of `mode` on a fresh swap file under the target dir,
    /// or `None` (after a loud message) when O_DIRECT or io_uring is not
    /// available here.
    fn file_device(dir: &TestDir, mode: IoMode, slots: u64) -> Option<(SwapFile, SwapDevice)> {
        let path = dir.join("swapfile");
        create_swap_file(&path, slots * 4096, &Label::new("test").unwrap(), Uuid::NIL).unwrap();
        let sf = open_swap_file(&path).unwrap();
        match SwapDevice::open(&sf, mode, 16) {
            Ok(dev) => Some((sf, dev)),
            Err(SwapError::Open(e)) => {
                eprintln!("\n***** SKIPPED {mode} on a real file: {e} *****\n");
                None
            }
            Err(SwapError::Backend(e))
                if matches!(e.errno(), Errno::ENOSYS | Errno::EPERM | Errno::ENOMEM) =>
            {
                eprintln!("\n***** SKIPPED {mode}: io_uring unavailable: {e} *****\n");
                None
            }
            Err(e) => panic!("{mode}: {e}"),
        }
    }

    /// Every mode on a real O_DIRECT swap file: plugging, completions,
    /// flags, the bytes in the file, and the way back.
    #[test]
    #[cfg_attr(miri, ignore = "O_DIRECT file, io_uring")]
    fn real_file_round_trip_in_every_mode() {
        let mut modes = vec![IoMode::Sync, IoMode::AsyncInline];
        if IoMode::URING_AVAILABLE {
            modes.push(IoMode::Uring);
        }
        for mode in modes {
            let dir = TestDir::new(&format!("swapio-{mode}"));
            let Some((sf, dev)) = file_device(&dir, mode, 512) else {
                continue;
            };
            assert_eq!(dev.mode(), mode);
            let mut rng = SlotRng::new(7);
            let mut order = run_slots(&dev, 100);
            order.extend((0..200).map(|_| dev.alloc_random(&mut rng).unwrap()));
            let pages: Vec<PageRef> = (0..300).map(|i| make_page(i, SEED)).collect();
            let mut plug = SwapPlug::new();
            for (p, &slot) in pages.iter().zip(&order) {
                dev.swap_writepage(p.clone(), slot, Some(&mut plug))
                    .unwrap();
            }
            plug.unplug();
            dev.drain().unwrap();
            assert_eq!(dev.in_flight(), 0);
            let c = dev.counters();
            assert_eq!(c.write_errors, 0, "{:?}", dev.error_log());
            assert!(c.write_batch_sizes[32] >= 3, "{mode}: {c:?}");
            assert_eq!(c.written_pages(), 300);
            // The bytes are in the file, at the slots' offsets.
            let file = std::fs::read(&sf.path).unwrap();
            for (i, (p, &slot)) in pages.iter().zip(&order).enumerate() {
                assert_clean(p);
                assert_eq!(PageRef::strong_count(p), 1, "{mode}: page {i} still held");
                let at = slot.byte_offset() as usize;
                let bytes: &[u8; PAGE_SIZE] = file[at..at + PAGE_SIZE].try_into().unwrap();
                assert_eq!(check_page(bytes, i as u64, SEED), Ok(()), "{mode}");
            }
            drop(pages);
            // And back, in reverse order, 16 reads outstanding.
            let mut pending = std::collections::VecDeque::new();
            for (i, &slot) in order.iter().enumerate().rev() {
                pending.push_back((i, dev.swap_readpage(slot, Some(&mut plug)).unwrap()));
                if pending.len() > 16 {
                    let (i, h) = pending.pop_front().unwrap();
                    if h.is_plugged() {
                        plug.unplug();
                    }
                    let page = h.wait().unwrap();
                    assert_eq!(check_swapped_in(&page, i as u64, SEED), Ok(()), "{mode}");
                }
            }
            plug.unplug();
            for (i, h) in pending {
                assert_eq!(check_swapped_in(&h.wait().unwrap(), i as u64, SEED), Ok(()));
            }
            let c = dev.counters();
            assert_eq!((c.pswpin, c.read_errors), (300, 0));
            assert!(dev.take_latencies().read.count as u64 == c.read_batches);
            for &slot in &order {
                dev.swap_free(slot).unwrap();
            }
            assert_eq!(dev.used_slots(), 0);
        }
    }

    /// io_uring completions arrive when the queue is driven: submitted
    /// writes stay under writeback until then.
    #[cfg(feature = "uring")]
    #[test]
    #[cfg_attr(miri, ignore = "O_DIRECT file, io_uring")]
    fn uring_completions_arrive_when_the_queue_is_driven() {
        let dir = TestDir::new("swapio-uring-async");
        let Some((_sf, dev)) = file_device(&dir, IoMode::Uring, 256) else {
            return;
        };
        let slots = run_slots(&dev, 64);
        let pages: Vec<PageRef> = (0..64).map(|i| make_page(i, SEED)).collect();
        let mut plug = SwapPlug::new();
        for (p, &s) in pages.iter().zip(&slots) {
            dev.swap_writepage(p.clone(), s, Some(&mut plug)).unwrap();
        }
        plug.unplug();
        // Nothing completes behind our back: whatever has not been reaped is
        // still under writeback and still referenced by the queue.
        let in_flight = dev.in_flight();
        let busy = pages
            .iter()
            .filter(|p| p.test(PageFlags::WRITEBACK))
            .count() as u64;
        assert_eq!(busy, 32 * in_flight);
        dev.drain().unwrap();
        assert_eq!(dev.in_flight(), 0);
        pages.iter().for_each(|p| assert_clean(p));
        let handles: Vec<SwapIn> = slots
            .iter()
            .map(|&s| dev.swap_readpage(s, Some(&mut plug)).unwrap())
            .collect();
        plug.unplug();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(check_swapped_in(&h.wait().unwrap(), i as u64, SEED), Ok(()));
        }
        assert_eq!(dev.counters().read_batches, 2);
        assert_eq!(dev.poll(), 0);
    }
}
