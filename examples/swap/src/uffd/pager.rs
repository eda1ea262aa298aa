//! The pager: a region of this process's memory whose cold pages live on
//! the swap device, brought back by a userfaultfd handler when touched.
//!
//! * [`Pager::new`] maps the region (anonymous, or a memfd mapped twice),
//!   fills every page through a callback, and registers it: `MISSING` for
//!   anonymous memory, `MISSING | MINOR` for the memfd.
//! * [`Pager::serve`] is the fault thread's loop, and the only thread that
//!   does swap I/O: on io_uring with `COOP_TASKRUN` a completion is
//!   delivered to the thread that submitted it, so one thread submits and
//!   reaps everything. Per round it reads the pending fault events, starts
//!   a swap-in for each faulting page plus `fault_around` following swapped
//!   pages (all in one [`SwapPlug`], so consecutive slots merge into one
//!   kiocb; a fault just past an earlier window is a sequential stream and
//!   doubles its window, up to `fault_around_max`), takes the queued
//!   reclaim requests (at most `writeback_max` pages under writeback),
//!   unplugs, and maps every swap-in that completed (on the memfd one
//!   `UFFDIO_CONTINUE` per run of consecutive pages). Many faults (two
//!   workers faulting at once, and the pages read around them) are in
//!   flight together.
//! * [`Pager::reclaim`] (any thread) asks the fault thread to swap pages
//!   out and waits: each resident page is copied into a fresh [`Page`] and
//!   swapped out (runs of pages get runs of slots, one kiocb per run),
//!   and when its write has completed the region's page is dropped
//!   (`MADV_DONTNEED`, or `fallocate(PUNCH_HOLE)` on the memfd). A page
//!   whose write failed stays resident.
//!
//! # Mapping a swapped-in page
//!
//! * Anonymous: [`SwapDevice::swap_readpage`] (swap cache, device readahead
//!   of the slot's cluster) into a pool page, then `UFFDIO_COPY`.
//! * memfd, zero copy: [`SwapDevice::swap_read_into`] reads the slot with
//!   direct I/O straight into the memfd's page-cache page, reached through
//!   the unregistered alias mapping (the device's access allocates the
//!   shmem page), then `UFFDIO_CONTINUE` maps that very page at the user
//!   address. No `UFFDIO_COPY`, no bounce page ([`PagerStats::copies`]
//!   stays 0). A worker touching the page while its read is in flight takes
//!   a MINOR fault (the page cache holds the page by then); it waits for
//!   the same `CONTINUE`.
//!
//! # Outcomes of the ioctls
//!
//! `EEXIST` (the page is mapped already: a duplicate event, or a fault on
//! a page that was mapped meanwhile) counts as served and the range is
//! woken. `EAGAIN` (the address space is changing) is retried.
//! [`SwapError::Busy`] (a read of the slot already on its way in the swap
//! cache) restarts the swap-in in the next round.
//!
//! # I/O errors
//!
//! A failed read never maps anything: the swap-in is started again, up to
//! [`PagerConfig::read_attempts`] reads in all; then the page is poisoned
//! (`UFFDIO_POISON`, Linux 6.6+): the faulting thread, and every later
//! access, gets `SIGBUS` (for the memfd the page cache page, which may hold
//! part of a failed read, is punched out first). The slot is freed. On a
//! kernel without `UFFDIO_POISON` the swap-in is retried for ever instead
//! (the faulting thread waits; [`PagerStats::read_retries`] grows).
//!
//! # What reclaim assumes
//!
//! Reclaim copies a page when the fault thread takes the request and drops
//! it after the write completed. A write to the page in between would be
//! lost, so the caller reclaims only pages nobody writes meanwhile (the
//! demo's workers only read). Write-protecting pages under writeback
//! (`UFFDIO_WRITEPROTECT`) would lift that rule; it is not done here.

use std::fmt;
use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use iov_iter::buf::{GuestBuf, SharedRegion};
use iov_iter::{Dest, PAGE_SIZE, Page, PageFlags, PageRef};
use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec, eventfd, poll};
use rustix::io::Errno;

use super::error::Error;
use super::fd::{Event, FillFlags, Ioctls, Pagefault, RegisterMode, Uffd};
use super::range::{Range, page_size};
use super::region::{AnonRegion, MemfdRegion};
use crate::latency::{LatencyHist, LatencySummary};
use crate::swapio::{IntoFill, SwapDevice, SwapError, SwapIn, SwapInto, SwapPlug};
use crate::swapmap::Slot;

/// The runs of consecutive page indices in `items` (sorted by `index`):
/// each run's first index and length.
fn runs<'a, T>(
    items: &'a [T],
    index: impl Fn(&T) -> usize + 'a,
) -> impl Iterator<Item = (usize, usize)> + 'a {
    let mut k = 0;
    std::iter::from_fn(move || {
        let first = index(items.get(k)?);
        let mut n = 1;
        while items.get(k + n).is_some_and(|x| index(x) == first + n) {
            n += 1;
        }
        k += n;
        Some((first, n))
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Which memory the pager manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegionKind {
    /// Private anonymous memory: `MADV_DONTNEED` drops a page, a MISSING
    /// fault brings it back with `UFFDIO_COPY`.
    Anon,
    /// A memfd (shmem) mapped twice: `fallocate(PUNCH_HOLE)` drops a page,
    /// a MISSING fault brings it back zero-copy (direct I/O into the page
    /// cache through the alias mapping, then `UFFDIO_CONTINUE`).
    Memfd,
}

impl RegionKind {
    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            RegionKind::Anon => "anon",
            RegionKind::Memfd => "memfd",
        }
    }
}

impl fmt::Display for RegionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How to build a [`Pager`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PagerConfig {
    /// The region's memory.
    pub kind: RegionKind,
    /// Its size, in pages (at least 1).
    pub pages: usize,
    /// Swapped pages after a faulting one that are swapped in with it
    /// (fault-around; 0: none).
    pub fault_around: usize,
    /// Most pages a sequential stream's fault-around grows to. A fault on
    /// the first page past the window an earlier fault read around is the
    /// stream going on: its window doubles, up to this (the kernel's
    /// readahead ramp-up); any other fault starts at `fault_around`. At most
    /// `fault_around` (no growth) is fine.
    pub fault_around_max: usize,
    /// Reads of a page tried before it is poisoned (at least 1).
    pub read_attempts: u32,
    /// Pages under writeback at once (at least 1). A larger reclaim
    /// request is written in windows of this many pages, and the frames
    /// the copies go through are reused from one window to the next (a
    /// fresh frame costs an allocation and a page fault per page).
    pub writeback_max: usize,
}

impl PagerConfig {
    /// `pages` pages of `kind`, fault-around 8 growing to 64 for
    /// sequential streams, 3 read attempts, 1024
    /// pages under writeback at once (32 kiocbs of `SWAP_CLUSTER_MAX`).
    pub fn new(kind: RegionKind, pages: usize) -> PagerConfig {
        PagerConfig {
            kind,
            pages,
            fault_around: 8,
            fault_around_max: 2 * crate::swapio::SWAP_CLUSTER_MAX,
            read_attempts: 3,
            writeback_max: 32 * crate::swapio::SWAP_CLUSTER_MAX,
        }
    }
}

/// Where a page of the region is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PageState {
    /// In memory (mapped).
    Resident = 0,
    /// In memory, its swap-out on its way.
    Writeback = 1,
    /// On the swap device only.
    Swapped = 2,
    /// Being swapped in.
    SwappingIn = 3,
    /// Its reads failed; poisoned (touching it is `SIGBUS`).
    Poisoned = 4,
}

impl PageState {
    fn from_u8(v: u8) -> PageState {
        match v {
            0 => PageState::Resident,
            1 => PageState::Writeback,
            2 => PageState::Swapped,
            3 => PageState::SwappingIn,
            _ => PageState::Poisoned,
        }
    }
}

/// What can go wrong building or running a [`Pager`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PagerError {
    /// userfaultfd (or a region syscall) failed. `ENOSYS` / `EPERM` from
    /// `userfaultfd` mean the facility is unavailable here.
    Uffd(Error),
    /// The swap device failed (not a read error of one page: those are
    /// retried, then poisoned).
    Swap(SwapError),
    /// The pager cannot work here, and why.
    Unsupported(String),
}

impl PagerError {
    /// The kernel's errno for this error, as a raw value (what a C caller
    /// of the same facility would see): the userfaultfd or syscall errno,
    /// the swap device's ([`SwapError::errno`]), `EOPNOTSUPP` for a pager
    /// that cannot work here.
    ///
    /// ```
    /// use iov_iter_swap::uffd::PagerError;
    ///
    /// let e = PagerError::Unsupported("no userfaultfd".into());
    /// assert_eq!(e.errno(), libc::EOPNOTSUPP);
    /// ```
    pub fn errno(&self) -> i32 {
        match self {
            PagerError::Uffd(e) => e.errno().raw_os_error(),
            PagerError::Swap(e) => e.errno(),
            PagerError::Unsupported(_) => libc::EOPNOTSUPP,
        }
    }

    /// Whether this says userfaultfd is unavailable (no kernel support,
    /// or not permitted), as opposed to a failure while paging.
    pub fn is_unavailable(&self) -> bool {
        match self {
            PagerError::Uffd(Error::Os { op, errno }) => {
                *op == "userfaultfd"
                    || *op == "UFFDIO_API"
                    || matches!(*errno, Errno::NOSYS | Errno::PERM)
            }
            PagerError::Uffd(Error::Unsupported(_)) | PagerError::Unsupported(_) => true,
            _ => false,
        }
    }
}

impl fmt::Display for PagerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PagerError::Uffd(e) => write!(f, "userfaultfd: {e}"),
            PagerError::Swap(e) => write!(f, "swap: {e}"),
            PagerError::Unsupported(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for PagerError {}

impl From<Error> for PagerError {
    fn from(e: Error) -> PagerError {
        PagerError::Uffd(e)
    }
}

impl From<SwapError> for PagerError {
    fn from(e: SwapError) -> PagerError {
        PagerError::Swap(e)
    }
}

/// What the pager did (the device's own counters are
/// [`SwapDevice::counters`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PagerStats {
    /// Page-fault events read.
    pub faults: u64,
    /// ... of which MISSING.
    pub missing: u64,
    /// ... of which MINOR.
    pub minor: u64,
    /// Fault events resolved: their page mapped (or found mapped) and the
    /// thread woken. Poisoned ones are not counted here.
    pub served: u64,
    /// Faults on a page whose swap-in was already on its way (a second
    /// thread, or a MINOR fault during a memfd read).
    pub joined: u64,
    /// Successful `UFFDIO_COPY`s (anonymous memory only).
    pub copies: u64,
    /// Successful `UFFDIO_CONTINUE`s (memfd only; one maps a run of
    /// consecutive pages whose reads completed together).
    pub continues: u64,
    /// Faults served by a wake only (the page was mapped already).
    pub wakes: u64,
    /// `EEXIST` from a fill ioctl: served by someone else, woken.
    pub eexist: u64,
    /// `EAGAIN` from a fill ioctl, retried.
    pub eagain: u64,
    /// Swap-ins restarted because the slot's read was busy in the swap
    /// cache (`SwapError::Busy`).
    pub busy: u64,
    /// Reads that failed and were started again.
    pub read_retries: u64,
    /// Pages poisoned after their last read failed.
    pub poisoned: u64,
    /// Pages swapped in and mapped (faulted or read around a fault).
    pub swapped_in: u64,
    /// Pages swapped in ahead of a fault (fault-around).
    pub fault_around: u64,
    /// Faults that found their page being read ahead.
    pub fault_around_hits: u64,
    /// Faults that continued a sequential stream (on the first page past
    /// an earlier fault-around window), whose window grew.
    pub streams: u64,
    /// Windows started early: a fault on a page read ahead and still on its
    /// way started its stream's next window.
    pub async_readahead: u64,
    /// memfd swap-ins read by the device straight into the page cache.
    pub into_read: u64,
    /// memfd swap-ins copied from the swap cache (no I/O).
    pub into_cached: u64,
    /// memfd swap-ins of zero slots (zero-filled, no I/O).
    pub into_zero: u64,
    /// Pages swapped out and dropped from the region.
    pub reclaimed: u64,
    /// Pages a reclaim request skipped (not resident, no slot, busy).
    pub reclaim_skipped: u64,
    /// Pages whose swap-out failed; they stay resident.
    pub reclaim_failed: u64,
    /// The most swap-ins in flight at once.
    pub max_swapins_in_flight: u64,
}

/// What a [`Pager::reclaim`] request did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReclaimOutcome {
    /// Written and dropped from the region.
    pub swapped: usize,
    /// Not resident, no slot free, or refused by the device.
    pub skipped: usize,
    /// Their write failed: still resident.
    pub failed: usize,
}

/// What [`harden_handler_thread`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandlerSetup {
    /// `PR_SET_IO_FLUSHER` (needs `CAP_SYS_RESOURCE`; `EPERM` without).
    pub io_flusher: Result<(), Errno>,
    /// `mlock` of a window of the calling thread's stack.
    pub mlock_stack: Result<(), Errno>,
}

/// Bytes of the calling thread's stack [`harden_handler_thread`] locks.
pub const HANDLER_STACK_LOCK: usize = 64 * 1024;

/// Hardens the calling thread as a fault handler: `PR_SET_IO_FLUSHER`
/// (memory allocations of a thread that does I/O on reclaim's behalf must
/// not recurse into reclaim) and `mlock` of `HANDLER_STACK_LOCK` (64 KiB) bytes of
/// its stack below the caller's frame (a handler must not fault on its own
/// memory). Neither is needed for correctness here (the region is the
/// only memory the handler serves); both are reported, not required.
///
/// Call it on a thread whose stack has `HANDLER_STACK_LOCK` (64 KiB) bytes to
/// spare below the current frame (the default 2 MiB of a spawned thread).
pub fn harden_handler_thread() -> HandlerSetup {
    let io_flusher = rustix::process::configure_io_flusher_behavior(true);
    let ps = page_size();
    let marker = 0u8;
    let top = (core::ptr::addr_of!(marker) as usize & !(ps - 1)) + ps;
    let low = top - HANDLER_STACK_LOCK;
    // SAFETY: mlock only pins pages and does not change memory; `low..top`
    // lies in this thread's stack (the caller's promise of room below its
    // frame), which stays mapped while the thread lives.
    let mlock_stack = unsafe { rustix::mm::mlock(low as *mut _, top - low) };
    HandlerSetup {
        io_flusher,
        mlock_stack,
    }
}

/// The region's memory.
enum Memory {
    Anon(AnonRegion),
    Memfd {
        region: MemfdRegion,
        /// The alias mapping, for reads into the page cache.
        alias: Arc<SharedRegion>,
    },
}

/// A swap-in on its way.
enum Handle {
    /// Into a pool page (anonymous memory).
    Page(SwapIn),
    /// Into the page cache through the alias (memfd).
    Into(SwapInto),
}

impl Handle {
    fn is_done(&self) -> bool {
        match self {
            Handle::Page(h) => h.is_done(),
            Handle::Into(h) => h.is_done(),
        }
    }
}

/// The fault thread's view of a page.
enum Slotted {
    Resident,
    Writeback {
        slot: Slot,
        page: PageRef,
        ticket: Arc<Ticket>,
    },
    Swapped {
        slot: Slot,
    },
    SwappingIn {
        slot: Slot,
        /// Reads tried so far.
        attempts: u32,
        /// When each waiting fault was read.
        waiters: Vec<Instant>,
        /// Started by fault-around, no fault on it yet.
        ahead: bool,
    },
    Poisoned,
}

/// A reclaim request's completion.
struct Ticket {
    left: Mutex<(usize, ReclaimOutcome)>,
    done: Condvar,
}

impl Ticket {
    fn new(n: usize) -> Arc<Ticket> {
        Arc::new(Ticket {
            left: Mutex::new((n, ReclaimOutcome::default())),
            done: Condvar::new(),
        })
    }

    fn account(&self, f: impl FnOnce(&mut ReclaimOutcome)) {
        let mut g = lock(&self.left);
        f(&mut g.1);
        g.0 = g.0.saturating_sub(1);
        if g.0 == 0 {
            self.done.notify_all();
        }
    }

    fn wait(&self) -> ReclaimOutcome {
        let mut g = lock(&self.left);
        while g.0 > 0 {
            g = self.done.wait(g).unwrap_or_else(PoisonError::into_inner);
        }
        g.1
    }
}

struct Request {
    pages: Vec<usize>,
    /// The first page of `pages` not taken yet.
    next: usize,
    ticket: Arc<Ticket>,
}

impl Request {
    /// Answers the pages not taken yet as skipped.
    fn skip_rest(self) {
        for _ in self.next..self.pages.len() {
            self.ticket.account(|o| o.skipped += 1);
        }
    }
}

/// The fault thread's state.
struct Serve {
    pages: Vec<Slotted>,
    /// Swap-ins on their way: page index and handle.
    reads: Vec<(usize, Handle)>,
    /// Pages in `SwappingIn` whose read must be started (again).
    restart: Vec<usize>,
    /// Pages under writeback.
    /// Pages under writeback, in submission order (completions mostly
    /// come in that order, so the front is checked, not the whole list).
    writebacks: std::collections::VecDeque<usize>,
    /// Reclaim requests taken, in order, the first one maybe partly
    /// started (at most `writeback_max` pages are under writeback).
    reclaim: std::collections::VecDeque<Request>,
    /// Frames of ended writebacks, reused for the next copies (at most
    /// `writeback_max`).
    frames: Vec<Page>,
    /// Sequential streams: the first page past a fault-around window, and
    /// that window's size.
    streams: std::collections::BTreeMap<usize, usize>,
    stats: PagerStats,
}

/// A region of this process's memory paged through a [`SwapDevice`] by a
/// userfaultfd. See the [module documentation](super).
pub struct Pager {
    cfg: PagerConfig,
    uffd: Uffd,
    dev: SwapDevice,
    /// The registered mapping's first byte.
    base: NonNull<u8>,
    len: usize,
    mem: std::mem::ManuallyDrop<Memory>,
    ioctls: Ioctls,
    /// Mirror of the page states for other threads.
    states: Vec<AtomicU8>,
    resident: AtomicUsize,
    serve: Mutex<Serve>,
    /// Fault latencies.
    latency: LatencyHist,
    queue: Mutex<Vec<Request>>,
    /// Set when no `serve` will take requests any more.
    closed: AtomicBool,
    /// Wakes the fault thread for a request.
    kick: OwnedFd,
}

// SAFETY: `base` points into the mapping `mem` owns, reached only through
// raw-pointer copies (`read_page`) and the kernel; every other field is
// `Send` (the regions, the fd, the device, locks and atomics).
unsafe impl Send for Pager {}
// SAFETY: as above; shared access goes through locks, atomics, the
// kernel's own serialisation of the ioctls, and raw reads of memory no
// Rust code writes after construction.
unsafe impl Sync for Pager {}

impl fmt::Debug for Pager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pager")
            .field("kind", &self.cfg.kind)
            .field("pages", &self.cfg.pages)
            .field("resident", &self.resident_pages())
            .field("user_mode_only", &self.uffd.user_mode_only())
            .finish()
    }
}

impl Pager {
    /// Maps `cfg.pages` pages of `cfg.kind` memory, fills page `i` with
    /// `init(i, bytes)`, opens a userfaultfd (`UFFD_USER_MODE_ONLY`, so no
    /// privilege is needed) and registers the region, every page resident.
    /// The swap device is the pager's from now on: only [`Pager::serve`]
    /// submits to it.
    ///
    /// # Errors
    ///
    /// [`PagerError::Uffd`] when userfaultfd or a mapping fails
    /// ([`PagerError::is_unavailable`] tells "not here" from other
    /// failures); [`PagerError::Unsupported`] when the page size is not
    /// 4 KiB, the device has fewer slots than pages, or the kernel lacks an
    /// ioctl the kind needs (`UFFDIO_CONTINUE` for the memfd).
    pub fn new(
        cfg: PagerConfig,
        dev: SwapDevice,
        mut init: impl FnMut(usize, &mut [u8; PAGE_SIZE]),
    ) -> Result<Pager, PagerError> {
        if page_size() != PAGE_SIZE {
            return Err(PagerError::Unsupported(format!(
                "page size {} (swap slots are {PAGE_SIZE} bytes)",
                page_size()
            )));
        }
        if cfg.pages == 0 || cfg.read_attempts == 0 || cfg.writeback_max == 0 {
            return Err(PagerError::Unsupported(
                "a pager needs at least one page, one read attempt and one page of writeback"
                    .into(),
            ));
        }
        if (dev.usable_slots() as usize) < cfg.pages {
            return Err(PagerError::Unsupported(format!(
                "{} pages but only {} usable swap slots",
                cfg.pages,
                dev.usable_slots()
            )));
        }
        let len = cfg
            .pages
            .checked_mul(PAGE_SIZE)
            .ok_or_else(|| PagerError::Unsupported("region too large".into()))?;
        let uffd = Uffd::open()?;
        let mem = match cfg.kind {
            RegionKind::Anon => Memory::Anon(AnonRegion::new(len)?),
            RegionKind::Memfd => {
                let region = MemfdRegion::new("iov-iter-swap-pager", len)?;
                let alias = NonNull::new(region.alias_ptr())
                    .ok_or(PagerError::Unsupported("null alias mapping".into()))?;
                // SAFETY: the alias is a live shared mapping of `len`
                // initialised bytes (a memfd's pages read as zeros until
                // written) that `region` keeps mapped; the pager drops every
                // `Arc` of this `SharedRegion` before the mapping (the
                // device is drained first, see `Drop`). No Rust code touches
                // the alias other than through it: the pager fills pages
                // through the user mapping before registering, and later
                // reaches the alias only with `read_at` and with
                // `GuestBuf`s for swap-ins. The user mapping shows the same
                // pages, read by workers only once the pager has mapped
                // them, after their read completed and its lease ended.
                let alias = Arc::new(unsafe { SharedRegion::from_raw_parts(alias, len) });
                Memory::Memfd { region, alias }
            }
        };
        let base = match &mem {
            Memory::Anon(r) => r.as_ptr(),
            Memory::Memfd { region, .. } => region.user_ptr(),
        };
        let base = NonNull::new(base).ok_or(PagerError::Unsupported("null mapping".into()))?;
        let mut buf = Box::new([0u8; PAGE_SIZE]);
        for i in 0..cfg.pages {
            init(i, &mut buf);
            // SAFETY: page `i` lies inside the mapping (`i < pages`), which
            // is not registered yet, so the write is a plain one; `buf` is
            // a separate heap allocation; no Rust reference covers the
            // mapping.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    buf.as_ptr(),
                    base.as_ptr().add(i * PAGE_SIZE),
                    PAGE_SIZE,
                )
            };
        }
        let (ioctls, needed) = match &mem {
            Memory::Anon(r) => (r.register(&uffd, RegisterMode::MISSING)?, Ioctls::COPY),
            Memory::Memfd { region, .. } => (
                region.register(&uffd, RegisterMode::MISSING | RegisterMode::MINOR)?,
                Ioctls::CONTINUE,
            ),
        };
        if !ioctls.contains(needed | Ioctls::WAKE) {
            return Err(PagerError::Unsupported(format!(
                "the kernel allows only {ioctls:?} on a {} region",
                cfg.kind
            )));
        }
        let kick = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(Error::os("eventfd"))?;
        Ok(Pager {
            cfg,
            uffd,
            dev,
            base,
            len,
            mem: std::mem::ManuallyDrop::new(mem),
            ioctls,
            states: (0..cfg.pages).map(|_| AtomicU8::new(0)).collect(),
            resident: AtomicUsize::new(cfg.pages),
            serve: Mutex::new(Serve {
                pages: (0..cfg.pages).map(|_| Slotted::Resident).collect(),
                reads: Vec::new(),
                restart: Vec::new(),
                writebacks: std::collections::VecDeque::new(),
                reclaim: std::collections::VecDeque::new(),
                frames: Vec::new(),
                streams: std::collections::BTreeMap::new(),
                stats: PagerStats::default(),
            }),
            latency: LatencyHist::new(),
            queue: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            kick,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PagerConfig {
        &self.cfg
    }

    /// Pages in the region.
    pub fn pages(&self) -> usize {
        self.cfg.pages
    }

    /// The registered mapping's first byte (for raw accesses; prefer
    /// [`Pager::read_page`]).
    pub fn base(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// The region's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false` (a region has at least one page).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The userfaultfd.
    pub fn uffd(&self) -> &Uffd {
        &self.uffd
    }

    /// The ioctls the kernel allows on the registered region.
    pub fn ioctls(&self) -> Ioctls {
        self.ioctls
    }

    /// The swap device.
    pub fn device(&self) -> &SwapDevice {
        &self.dev
    }

    /// Where page `i` is, as last published by the fault thread.
    ///
    /// # Panics
    ///
    /// If `i` is out of the region.
    pub fn page_state(&self, i: usize) -> PageState {
        PageState::from_u8(self.states[i].load(Ordering::Acquire))
    }

    /// Pages resident (or under writeback) now.
    pub fn resident_pages(&self) -> usize {
        self.resident.load(Ordering::Acquire)
    }

    /// Copies page `i` into `out`: a user-mode read of the region that
    /// faults a swapped page in through [`Pager::serve`], which must be
    /// running on another thread (else this blocks for ever). A poisoned
    /// page raises `SIGBUS`.
    ///
    /// # Panics
    ///
    /// If `i` is out of the region.
    pub fn read_page(&self, i: usize, out: &mut [u8; PAGE_SIZE]) {
        assert!(i < self.cfg.pages, "page {i} out of the region");
        // SAFETY: page `i` lies inside the live registered mapping; the read
        // is a raw copy in user mode (a missing page blocks until served).
        // After construction no Rust code writes the region: its bytes
        // change only by the pager dropping a page and mapping the same
        // bytes back, so the copy sees the page's one content. `out` is a
        // separate allocation.
        unsafe {
            core::ptr::copy_nonoverlapping(
                self.base.as_ptr().add(i * PAGE_SIZE),
                out.as_mut_ptr(),
                PAGE_SIZE,
            )
        };
    }

    /// The counters.
    pub fn stats(&self) -> PagerStats {
        lock(&self.serve).stats
    }

    /// Fault latencies (event read to the ioctl that woke the thread)
    /// since the last call.
    pub fn take_latencies(&self) -> LatencySummary {
        self.latency.take()
    }

    /// Swaps `pages` (indices) out: the fault thread ([`Pager::serve`],
    /// running on another thread) copies each resident one, writes it
    /// (consecutive pages as runs of slots, merged kiocbs), and drops it
    /// from the region when the write has completed. Returns when every
    /// page is dropped, skipped or failed; at once (all skipped) when no
    /// `serve` runs any more. See the module docs for what the caller must
    /// ensure (no writes to those pages meanwhile).
    pub fn reclaim(&self, pages: &[usize]) -> ReclaimOutcome {
        if pages.is_empty() {
            return ReclaimOutcome::default();
        }
        let ticket = Ticket::new(pages.len());
        {
            let mut q = lock(&self.queue);
            if self.closed.load(Ordering::Acquire) {
                return ReclaimOutcome {
                    skipped: pages.len(),
                    ..ReclaimOutcome::default()
                };
            }
            q.push(Request {
                pages: pages.to_vec(),
                next: 0,
                ticket: Arc::clone(&ticket),
            });
        }
        let _ = rustix::io::write(&self.kick, &1u64.to_ne_bytes());
        ticket.wait()
    }

    fn publish(&self, i: usize, s: PageState) {
        let old = PageState::from_u8(self.states[i].swap(s as u8, Ordering::AcqRel));
        let was = matches!(old, PageState::Resident | PageState::Writeback);
        let is = matches!(s, PageState::Resident | PageState::Writeback);
        if was && !is {
            self.resident.fetch_sub(1, Ordering::AcqRel);
        } else if is && !was {
            self.resident.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn page_range(&self, i: usize) -> Range {
        Range::page_of(self.base.as_ptr() as usize + i * PAGE_SIZE)
    }

    fn index_of(&self, pf: &Pagefault) -> Option<usize> {
        let off = pf.address.checked_sub(self.base.as_ptr() as usize)?;
        (off < self.len).then_some(off / PAGE_SIZE)
    }

    /// The fault thread's loop: serves faults, reclaim requests and
    /// completions until `stop` is set and nothing is left to do (no
    /// swap-in or write on its way, no request queued). Only one `serve`
    /// runs at a time. Call [`harden_handler_thread`] first if wanted.
    ///
    /// # Errors
    ///
    /// A userfaultfd ioctl or the device failing in a way no retry cures;
    /// queued reclaim requests are answered (skipped) either way.
    pub fn serve(&self, stop: &AtomicBool) -> Result<(), PagerError> {
        self.closed.store(false, Ordering::Release);
        let r = self.serve_loop(stop);
        // No one takes requests any more: answer those queued, and the
        // rest of those taken (only after an error are any left).
        let left = {
            let mut q = lock(&self.queue);
            self.closed.store(true, Ordering::Release);
            std::mem::take(&mut *q)
        };
        let taken = std::mem::take(&mut lock(&self.serve).reclaim);
        for req in taken.into_iter().chain(left) {
            req.skip_rest();
        }
        r
    }

    fn serve_loop(&self, stop: &AtomicBool) -> Result<(), PagerError> {
        let mut events = Vec::with_capacity(64);
        loop {
            let progress = {
                let mut st = lock(&self.serve);
                self.round(&mut st, &mut events)?
            };
            if progress {
                continue;
            }
            let busy = {
                let st = lock(&self.serve);
                !st.reads.is_empty()
                    || !st.writebacks.is_empty()
                    || !st.restart.is_empty()
                    || !st.reclaim.is_empty()
            };
            if busy {
                if self.dev.in_flight() > 0 {
                    self.dev.wait_any()?;
                } else {
                    std::thread::yield_now();
                }
                continue;
            }
            if stop.load(Ordering::Acquire) && lock(&self.queue).is_empty() {
                return Ok(());
            }
            self.idle(Duration::from_millis(10))?;
        }
    }

    /// Sleeps until a fault event or a request arrives, or `timeout`.
    fn idle(&self, timeout: Duration) -> Result<(), PagerError> {
        let ts = Timespec::try_from(timeout).ok();
        let mut fds = [
            PollFd::new(&self.uffd, PollFlags::IN),
            PollFd::new(&self.kick, PollFlags::IN),
        ];
        match poll(&mut fds, ts.as_ref()) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(Error::os("poll")(e).into()),
        }
        if fds[1].revents().contains(PollFlags::IN) {
            let mut b = [0u8; 8];
            let _ = rustix::io::read(&self.kick, &mut b);
        }
        Ok(())
    }

    /// One round: events, requests, restarts, then completions. Returns
    /// whether anything happened.
    fn round(&self, st: &mut Serve, events: &mut Vec<Event>) -> Result<bool, PagerError> {
        let mut progress = false;
        let mut plug = SwapPlug::new();
        events.clear();
        while events.len() < 256 && self.uffd.read_events_into(events)? > 0 {}
        let now = Instant::now();
        for ev in events.drain(..) {
            if let Event::Pagefault(pf) = ev {
                self.on_fault(st, &pf, now, &mut plug)?;
                progress = true;
            }
        }
        st.reclaim.extend(std::mem::take(&mut *lock(&self.queue)));
        progress |= self.start_reclaim(st, &mut plug);
        for i in std::mem::take(&mut st.restart) {
            self.start_swapin(st, i, &mut plug)?;
        }
        drop(plug);
        st.stats.max_swapins_in_flight = st.stats.max_swapins_in_flight.max(st.reads.len() as u64);
        self.dev.poll();
        progress |= self.complete_reads(st)?;
        progress |= self.complete_writebacks(st)?;
        Ok(progress)
    }

    fn on_fault(
        &self,
        st: &mut Serve,
        pf: &Pagefault,
        now: Instant,
        plug: &mut SwapPlug,
    ) -> Result<(), PagerError> {
        st.stats.faults += 1;
        if pf.is_minor() {
            st.stats.minor += 1;
        } else {
            st.stats.missing += 1;
        }
        let Some(i) = self.index_of(pf) else {
            // Not ours (cannot happen: only the region is registered).
            self.uffd.wake(pf.page())?;
            return Ok(());
        };
        match &mut st.pages[i] {
            Slotted::Resident | Slotted::Writeback { .. } => {
                // Mapped already (a duplicate event), or, on the memfd, a
                // page-cache page the user mapping lost: CONTINUE maps it.
                if pf.is_minor() {
                    self.fill(st, i, |u, r| u.continue_(r, FillFlags::empty()))?;
                } else {
                    self.uffd.wake(self.page_range(i))?;
                    st.stats.wakes += 1;
                }
                st.stats.served += 1;
                self.latency.record(now.elapsed());
            }
            Slotted::Swapped { slot } => {
                let slot = *slot;
                st.pages[i] = Slotted::SwappingIn {
                    slot,
                    attempts: 0,
                    waiters: vec![now],
                    ahead: false,
                };
                self.publish(i, PageState::SwappingIn);
                self.start_swapin(st, i, plug)?;
                self.fault_around(st, i, plug)?;
            }
            Slotted::SwappingIn { waiters, ahead, .. } => {
                waiters.push(now);
                st.stats.joined += 1;
                if std::mem::take(ahead) {
                    st.stats.fault_around_hits += 1;
                    self.async_readahead(st, i, plug)?;
                }
            }
            Slotted::Poisoned => {
                // The marker is there (the access raised SIGBUS, no
                // event): a stale event. Poison again; EEXIST is fine.
                let _ = self.uffd.poison(self.page_range(i), FillFlags::empty());
                self.uffd.wake(self.page_range(i))?;
            }
        }
        Ok(())
    }

    /// Swaps in the swapped pages after `i`: `fault_around` of them, or
    /// twice the last window (up to `fault_around_max`) when `i` is the
    /// first page past an earlier window (a sequential stream).
    fn fault_around(
        &self,
        st: &mut Serve,
        i: usize,
        plug: &mut SwapPlug,
    ) -> Result<(), PagerError> {
        let window = match st.streams.remove(&i) {
            Some(w) => {
                st.stats.streams += 1;
                self.grow(w)
            }
            None => self.cfg.fault_around,
        };
        self.read_window(st, i + 1, window, plug)
    }

    /// A fault on page `i`, read ahead and still on its way: the task has
    /// caught up with its stream's window, so the next window is started
    /// now rather than when the task faults past this one (the kernel's
    /// asynchronous readahead on a `PG_readahead` page).
    fn async_readahead(
        &self,
        st: &mut Serve,
        i: usize,
        plug: &mut SwapPlug,
    ) -> Result<(), PagerError> {
        let Some((&end, &w)) = st.streams.range(i + 1..).next() else {
            return Ok(());
        };
        if end - i > w {
            // `i` is not in the window that ends there.
            return Ok(());
        }
        st.streams.remove(&end);
        st.stats.async_readahead += 1;
        let window = self.grow(w);
        self.read_window(st, end, window, plug)
    }

    /// A stream's next window: twice `w`, at most `fault_around_max`.
    fn grow(&self, w: usize) -> usize {
        w.saturating_mul(2)
            .min(self.cfg.fault_around_max.max(self.cfg.fault_around))
    }

    /// Starts the swap-in of the swapped pages among the `window` pages
    /// from `start` on, and remembers the window's end for its stream.
    fn read_window(
        &self,
        st: &mut Serve,
        start: usize,
        window: usize,
        plug: &mut SwapPlug,
    ) -> Result<(), PagerError> {
        if window == 0 || start >= self.cfg.pages {
            return Ok(());
        }
        let end = start.saturating_add(window).min(self.cfg.pages);
        if end < self.cfg.pages {
            // Bounded: streams nobody continued are forgotten in bulk.
            if st.streams.len() >= 4096 {
                st.streams.clear();
            }
            st.streams.insert(end, window);
        }
        for j in start..end {
            let Slotted::Swapped { slot } = st.pages[j] else {
                continue;
            };
            st.pages[j] = Slotted::SwappingIn {
                slot,
                attempts: 0,
                waiters: Vec::new(),
                ahead: true,
            };
            self.publish(j, PageState::SwappingIn);
            st.stats.fault_around += 1;
            self.start_swapin(st, j, plug)?;
        }
        Ok(())
    }

    /// Starts (or restarts) the read of page `i`, in state `SwappingIn`.
    fn start_swapin(
        &self,
        st: &mut Serve,
        i: usize,
        plug: &mut SwapPlug,
    ) -> Result<(), PagerError> {
        let Slotted::SwappingIn { slot, attempts, .. } = &mut st.pages[i] else {
            return Ok(());
        };
        let slot = *slot;
        *attempts += 1;
        let started = match &*self.mem {
            Memory::Anon(_) => self.dev.swap_readpage(slot, Some(plug)).map(Handle::Page),
            Memory::Memfd { alias, .. } => {
                let dst = GuestBuf::<Dest>::new(alias, [((i * PAGE_SIZE) as u64, PAGE_SIZE)])
                    .map_err(|e| PagerError::Swap(SwapError::Backend(e)))?;
                self.dev
                    .swap_read_into(slot, dst, Some(plug))
                    .map(Handle::Into)
            }
        };
        match started {
            Ok(h) => st.reads.push((i, h)),
            Err(SwapError::Busy(_)) => {
                // A read of the slot is on its way in the swap cache: try
                // again next round (not an attempt).
                if let Slotted::SwappingIn { attempts, .. } = &mut st.pages[i] {
                    *attempts -= 1;
                }
                st.stats.busy += 1;
                st.restart.push(i);
            }
            Err(e) => self.read_failed(st, i, &e)?,
        }
        Ok(())
    }

    /// Maps every completed swap-in. Returns whether any was.
    fn complete_reads(&self, st: &mut Serve) -> Result<bool, PagerError> {
        let mut progress = false;
        // memfd pages read into the page cache, mapped below by one
        // `UFFDIO_CONTINUE` per run of consecutive pages.
        let mut read = Vec::new();
        let mut k = 0;
        while k < st.reads.len() {
            if !st.reads[k].1.is_done() {
                k += 1;
                continue;
            }
            progress = true;
            let (i, h) = st.reads.swap_remove(k);
            match h {
                Handle::Page(h) => match h.wait() {
                    Ok(page) => {
                        self.fill(st, i, |u, r| {
                            u.copy(r.start(), page.as_bytes(), FillFlags::empty())
                        })?;
                        self.dev.put_page(page);
                        self.mapped(st, i)?;
                    }
                    Err(e) => self.read_failed(st, i, &e)?,
                },
                Handle::Into(h) => match h.wait() {
                    Ok(fill) => {
                        match fill {
                            IntoFill::Read => st.stats.into_read += 1,
                            IntoFill::Cached => st.stats.into_cached += 1,
                            IntoFill::Zero => st.stats.into_zero += 1,
                        }
                        read.push(i);
                    }
                    Err(e) => self.read_failed(st, i, &e)?,
                },
            }
        }
        read.sort_unstable();
        for (first, n) in runs(&read, |&i| i) {
            self.continue_run(st, first, n)?;
            for i in first..first + n {
                self.mapped(st, i)?;
            }
        }
        Ok(progress)
    }

    /// Maps the `n` page-cache pages from page `first` on with one
    /// `UFFDIO_CONTINUE`; page by page (see [`Pager::fill`]) when that one
    /// is not simply done (a page of the run mapped meanwhile, `EAGAIN`:
    /// what the ioctl mapped before it stopped is `EEXIST` the second time).
    fn continue_run(&self, st: &mut Serve, first: usize, n: usize) -> Result<(), PagerError> {
        if n > 1 {
            let start = self.base.as_ptr() as usize + first * PAGE_SIZE;
            let range = Range::new(start, n * PAGE_SIZE)?;
            if self.uffd.continue_(range, FillFlags::empty()).is_ok() {
                st.stats.continues += 1;
                return Ok(());
            }
        }
        for i in first..first + n {
            self.fill(st, i, |u, r| u.continue_(r, FillFlags::empty()))?;
        }
        Ok(())
    }

    /// Runs a fill ioctl on page `i` until it is done: `EAGAIN` retried,
    /// `EEXIST` (mapped by someone else) woken and taken as done.
    fn fill(
        &self,
        st: &mut Serve,
        i: usize,
        op: impl Fn(&Uffd, Range) -> Result<usize, Error>,
    ) -> Result<(), PagerError> {
        let range = self.page_range(i);
        loop {
            match op(&self.uffd, range) {
                Ok(_) => {
                    match &*self.mem {
                        Memory::Anon(_) => st.stats.copies += 1,
                        Memory::Memfd { .. } => st.stats.continues += 1,
                    }
                    return Ok(());
                }
                Err(Error::Exists) => {
                    st.stats.eexist += 1;
                    self.uffd.wake(range)?;
                    return Ok(());
                }
                Err(Error::Again { .. }) => {
                    st.stats.eagain += 1;
                    std::thread::yield_now();
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Page `i` is mapped: its slot is freed, its waiters were woken.
    fn mapped(&self, st: &mut Serve, i: usize) -> Result<(), PagerError> {
        let old = std::mem::replace(&mut st.pages[i], Slotted::Resident);
        self.publish(i, PageState::Resident);
        if let Slotted::SwappingIn { slot, waiters, .. } = old {
            self.dev.swap_free(slot)?;
            st.stats.swapped_in += 1;
            st.stats.served += waiters.len() as u64;
            for w in &waiters {
                self.latency.record(w.elapsed());
            }
        }
        Ok(())
    }

    /// A read of page `i` failed: start it again, or poison the page.
    fn read_failed(&self, st: &mut Serve, i: usize, _e: &SwapError) -> Result<(), PagerError> {
        let Slotted::SwappingIn { attempts, .. } = &st.pages[i] else {
            return Ok(());
        };
        let poison_ok = self.ioctls.contains(Ioctls::POISON);
        if *attempts < self.cfg.read_attempts || !poison_ok {
            st.stats.read_retries += 1;
            st.restart.push(i);
            return Ok(());
        }
        let range = self.page_range(i);
        if let Memory::Memfd { region, .. } = &*self.mem {
            // The failed read may have left bytes in the page cache.
            region.punch_hole(i * PAGE_SIZE, PAGE_SIZE)?;
        }
        match self.uffd.poison(range, FillFlags::empty()) {
            Ok(_) | Err(Error::Exists) => {}
            Err(e) => return Err(e.into()),
        }
        self.uffd.wake(range)?;
        if let Slotted::SwappingIn { slot, .. } =
            std::mem::replace(&mut st.pages[i], Slotted::Poisoned)
        {
            self.dev.swap_free(slot)?;
        }
        self.publish(i, PageState::Poisoned);
        st.stats.poisoned += 1;
        Ok(())
    }

    /// Starts the swap-out of the taken requests' resident pages, in
    /// order, while fewer than `writeback_max` pages are under writeback.
    /// Returns whether any page was taken.
    fn start_reclaim(&self, st: &mut Serve, plug: &mut SwapPlug) -> bool {
        let max = self.cfg.writeback_max.max(1);
        let mut progress = false;
        while let Some(mut req) = st.reclaim.pop_front() {
            let pages = std::mem::take(&mut req.pages);
            let mut k = req.next;
            while k < pages.len() {
                let room = max.saturating_sub(st.writebacks.len());
                if room == 0 {
                    break;
                }
                progress = true;
                // A run of consecutive resident pages gets a run of slots.
                let mut run = 1;
                while k + run < pages.len()
                    && run < crate::swapio::SWAP_CLUSTER_MAX.min(room)
                    && pages[k].checked_add(run) == Some(pages[k + run])
                    && pages[k + run] < self.cfg.pages
                    && matches!(st.pages[pages[k + run]], Slotted::Resident)
                {
                    run += 1;
                }
                let first = pages[k];
                let resident =
                    first < self.cfg.pages && matches!(st.pages[first], Slotted::Resident);
                if !resident {
                    st.stats.reclaim_skipped += 1;
                    req.ticket.account(|o| o.skipped += 1);
                    k += 1;
                    continue;
                }
                let slots: Vec<Slot> = match self.dev.alloc_contiguous(run as u32) {
                    Some(r) => r.iter().collect(),
                    None => (0..run).map_while(|_| self.dev.alloc_slot()).collect(),
                };
                for (n, &i) in pages[k..k + run].iter().enumerate() {
                    match slots.get(n) {
                        Some(&slot) => self.swap_out(st, i, slot, &req.ticket, plug),
                        None => {
                            st.stats.reclaim_skipped += 1;
                            req.ticket.account(|o| o.skipped += 1);
                        }
                    }
                }
                k += run;
            }
            if k < pages.len() {
                // The window is full: go on from here once writebacks end.
                req.pages = pages;
                req.next = k;
                st.reclaim.push_front(req);
                break;
            }
        }
        progress
    }

    /// Copies resident page `i` and starts its write to `slot`.
    fn swap_out(
        &self,
        st: &mut Serve,
        i: usize,
        slot: Slot,
        ticket: &Arc<Ticket>,
        plug: &mut SwapPlug,
    ) {
        // A recycled frame (fully overwritten below), back in `frames`
        // when the writeback has ended.
        let mut page = match st.frames.pop() {
            Some(page) => page,
            None => match self.dev.get_page() {
                Ok(page) => page,
                Err(_) => Page::new(),
            },
        };
        let src = match &*self.mem {
            // Resident: mapped, so this user-mode read does not fault.
            Memory::Anon(r) => r.as_ptr(),
            // The alias is never registered.
            Memory::Memfd { region, .. } => region.alias_ptr(),
        };
        // SAFETY: page `i` lies inside the mapping (checked by the caller);
        // the read is a raw user-mode copy of a present page (anonymous) or
        // of the unregistered alias (memfd), into a page of our own. No
        // swap-in writes the page meanwhile (it is resident).
        unsafe {
            core::ptr::copy_nonoverlapping(
                src.add(i * PAGE_SIZE),
                page.as_mut_bytes().as_mut_ptr(),
                PAGE_SIZE,
            )
        };
        page.set_flags(PageFlags::UPTODATE | PageFlags::DIRTY);
        let page = PageRef::new(page);
        match self
            .dev
            .swap_writepage(PageRef::clone(&page), slot, Some(plug))
        {
            Ok(true) => {
                st.pages[i] = Slotted::Writeback {
                    slot,
                    page,
                    ticket: Arc::clone(ticket),
                };
                self.publish(i, PageState::Writeback);
                st.writebacks.push_back(i);
            }
            Ok(false) | Err(_) => {
                let _ = self.dev.swap_free(slot);
                st.stats.reclaim_skipped += 1;
                ticket.account(|o| o.skipped += 1);
            }
        }
    }

    /// Drops the pages whose write completed; keeps those whose write
    /// failed. Returns whether any writeback ended.
    fn complete_writebacks(&self, st: &mut Serve) -> Result<bool, PagerError> {
        let mut progress = false;
        let mut dropped = Vec::new();
        // From the front, while writeback has ended: O(1) per page. A page
        // completed behind one still in flight waits for it.
        while let Some(&i) = st.writebacks.front() {
            let ended = match &st.pages[i] {
                Slotted::Writeback { page, .. } => !page.test(PageFlags::WRITEBACK),
                _ => true,
            };
            if !ended {
                break;
            }
            progress = true;
            st.writebacks.pop_front();
            let Slotted::Writeback { slot, page, ticket } =
                std::mem::replace(&mut st.pages[i], Slotted::Resident)
            else {
                continue;
            };
            if page.test(PageFlags::DIRTY) {
                // The write failed: the page stays; the slot goes.
                self.dev.swap_free(slot)?;
                self.publish(i, PageState::Resident);
                st.stats.reclaim_failed += 1;
                ticket.account(|o| o.failed += 1);
                continue;
            }
            st.pages[i] = Slotted::Swapped { slot };
            // The copy is on the device: its frame is reused by the next
            // copy, or goes back to the device's pool.
            match PageRef::try_unwrap(page) {
                Ok(frame) if st.frames.len() < self.cfg.writeback_max => {
                    frame.clear_flags(PageFlags::all());
                    st.frames.push(frame);
                }
                Ok(frame) => self.dev.put_page(PageRef::new(frame)),
                Err(page) => drop(page),
            }
            dropped.push((i, ticket));
        }
        // The region's pages go in runs: one madvise / fallocate per run of
        // consecutive pages. Only then are they published as swapped and
        // their reclaim requests answered (a caller woken by its answer
        // finds them gone).
        dropped.sort_unstable_by_key(|(i, _)| *i);
        let mut failed = None;
        for (first, n) in runs(&dropped, |(i, _)| *i) {
            let r = match &*self.mem {
                Memory::Anon(r) => {
                    let start = self.base.as_ptr() as usize + first * PAGE_SIZE;
                    Range::new(start, n * PAGE_SIZE).and_then(|range| r.drop_pages(range))
                }
                Memory::Memfd { region, .. } => region.punch_hole(first * PAGE_SIZE, n * PAGE_SIZE),
            };
            if let Err(e) = r {
                // The pages stay mapped (their bytes are the slot's): the
                // requests are still answered below, then the error.
                failed.get_or_insert(e);
            }
        }
        for (i, ticket) in dropped {
            self.publish(i, PageState::Swapped);
            st.stats.reclaimed += 1;
            ticket.account(|o| o.swapped += 1);
        }
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(progress),
        }
    }
}

impl Drop for Pager {
    fn drop(&mut self) {
        // Swap-ins may be writing into the alias mapping: let them land
        // before it goes. If the device cannot be drained, leak the
        // mapping rather than unmap memory a read may still write.
        let drained = self.dev.drain().is_ok();
        lock(&self.serve).reads.clear();
        if drained {
            // SAFETY: `mem` is not used after this, and no I/O reaches it
            // any more (drained; the handles are gone).
            unsafe { std::mem::ManuallyDrop::drop(&mut self.mem) };
        }
    }
}
