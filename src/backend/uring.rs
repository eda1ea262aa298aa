//! The io_uring direct-I/O backend: [`UringQueue`], truly asynchronous
//! `IORING_OP_READV` / `IORING_OP_WRITEV` on one `O_DIRECT` file
//! (`IORING_OP_READ` / `IORING_OP_WRITE` for a single segment). Requires
//! the `uring` feature (Linux 5.5 or later; single-segment `READ` / `WRITE`
//! from 5.6, the [`UringBuilder::coop_taskrun`] option from 5.19).
//!
//! Linux reference: `io_uring/rw.c` (`io_prep_rw`, `io_read`, `io_write`),
//! `io_uring/cancel.c` (`IORING_OP_ASYNC_CANCEL`), `mm/page_io.c`
//! (`struct swap_iocb`, `sio_read_complete`), `fs/iomap/direct-io.c`
//! (`-EIOCBQUEUED`, `ki_complete`). Man pages: io_uring_enter(2),
//! io_uring_setup(2), preadv2(2), statx(2) (`STATX_DIOALIGN`), open(2)
//! (`O_DIRECT`).
//!
//! # Buffer lifetime: how this is sound
//!
//! Memory handed to the kernel stays valid until its completion (CQE)
//! arrives, whatever the caller does meanwhile. Three rules give that:
//!
//! 1. **Asynchronous I/O owns its buffers.** [`UringQueue::submit_read`]
//!    takes a [`PageBatch`] of owned [`Page`]s, [`UringQueue::submit_write`]
//!    a batch of owned pages or [`PageRef`]s (page references, held as the
//!    kernel's `bio_vec` holds them). The batch *and* the heap-allocated
//!    iovec array the SQE points to move into a table inside the queue,
//!    keyed by the SQE's `user_data`, and leave it only when that
//!    `user_data`'s CQE has been reaped (the queue then keeps the emptied
//!    iovec array's allocation for a later request). A page frame never
//!    moves when its `Page` or `PageRef` moves, so the addresses in the
//!    iovec array stay valid. Nobody else can write a frame meanwhile: an
//!    owned `Page` is unreachable inside the queue, and writing a `Page`
//!    behind a shared `PageRef` needs `&mut Page`, which `Arc::get_mut`
//!    refuses while the queue holds its reference. The [`UringOp`] handle
//!    (a [`Future`]) only *observes* the operation: dropping it, or never
//!    polling it, detaches it, and the buffers are freed after the CQE
//!    instead of being handed back.
//! 2. **Borrowed memory waits.** The [`Transfer`] implementation (and so
//!    [`DirectIo`](crate::dio::DirectIo) on any borrowed iterator) submits
//!    one read or write SQE and waits for its CQE before returning, like a
//!    synchronous `preadv2`. If the ring could not be waited on any more
//!    while the kernel holds borrowed memory, there is no safe way out and
//!    the process aborts (io_uring_enter(2) fails that way only on a broken
//!    ring).
//! 3. **Wait on drop of the ring.** Dropping a [`UringQueue`] with I/O in
//!    flight submits an `IORING_OP_ASYNC_CANCEL` for every operation, then
//!    waits for *every* outstanding CQE before it frees any buffer, iovec
//!    array or the ring itself. Cancelled operations complete with
//!    `ECANCELED`; operations the device already started complete normally.
//!    A drop therefore blocks for as long as the slowest in-flight I/O
//!    takes. Should waiting fail (a broken ring), the queue leaks the ring
//!    and every in-flight buffer rather than free memory the kernel may
//!    still write, and runs those operations' kiocb completions with
//!    `ECANCELED`.
//!
//! No `unsafe` is needed by callers of this module.
//!
//! # Completions without a runtime
//!
//! Nothing runs in the background: CQEs are reaped, and completions
//! delivered, when somebody calls [`UringQueue::reap`] (non-blocking),
//! [`UringQueue::wait`], [`UringQueue::block_on`], [`UringOp::wait`], or
//! submits while the queue is full. Delivery runs the kiocb's
//! [`Completion`] exactly once (`ki_complete`, with the byte count or the
//! error and the advanced position), then resolves the operation's
//! [`UringOp`] with the same [`Completed`] and the buffers. Delivery happens
//! on the reaping thread, outside the queue's lock, so a completion may
//! submit more I/O. The [`UringOp`] future works with any executor, as long
//! as some thread drives the queue.
//!
//! # Sync and async kiocbs
//!
//! Submission follows the [`kiocb`](crate::kiocb) contract: an async kiocb
//! ([`Kiocb::new_async`], [`Kiocb::with_completion`]) gets
//! [`Submitted::Queued`] and its result through the completion; a sync
//! kiocb ([`Kiocb::new_sync`]) submits, waits, advances [`Kiocb::pos`] and
//! gets [`Submitted::Done`]. Errors found before anything is queued
//! (alignment, too many segments, a bad position) come back as a
//! [`BufError`] that returns the buffers, and leave an async kiocb's
//! completion in place. The request goes out with the kiocb's position,
//! `ki_ioprio` and the `RWF_*` twins of its `IOCB_*` flags. Reads into
//! pages never dirty anything: [`Page`]s are the caller's own memory, a
//! [`Bvec`] in kernel terms (`should_dirty` is false).
//!
//! # Examples
//!
//! ```no_run
//! use iov_iter::backend::file::DirectFile;
//! use iov_iter::backend::uring::{PageBatch, UringQueue};
//! use iov_iter::kiocb::Kiocb;
//! use iov_iter::{Page, PageRef};
//!
//! // O_DIRECT, alignment from statx(STATX_DIOALIGN), a 32-entry ring.
//! let file = DirectFile::options().create(true).open("/var/tmp/data")?;
//! let queue = UringQueue::new(file, 32)?;
//! // Write two pages at offset 0 (a swap_iocb-style batch of whole pages).
//! let pages: Vec<PageRef> = (0..2).map(|_| PageRef::new(Page::new())).collect();
//! let (mut kiocb, done) = Kiocb::new_async(0);
//! let op = queue.submit_write(&mut kiocb, pages)?;
//! // Drive the ring until the operation has completed; get the pages back.
//! let out = queue.block_on(op);
//! assert_eq!(out.completed.result, Ok(8192));
//! assert_eq!(done.try_get().unwrap().pos, 8192);
//!
//! // A sync kiocb submits and waits.
//! let mut kiocb = Kiocb::new_sync(0);
//! let batch: PageBatch<Page> = (0..2).map(|_| Page::new()).collect();
//! let out = queue.submit_read(&mut kiocb, batch)?.try_take().unwrap();
//! assert_eq!(kiocb.pos, 8192);
//! assert_eq!(out.buffers.nr_segs(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Duration;

use io_uring::{IoUring, opcode, types};
use smallvec::SmallVec;

use crate::backend::file::DirectFile;
use crate::dio::{DioAlign, Transfer, rwf_of};
use crate::error::{Errno, Error, Result};
use crate::import::UIO_MAXIOV;
use crate::seg::UserIovec;
use crate::kiocb::{Completed, Completion, FileCaps, Kiocb, RwType, RwfFlags, Submitted};
use crate::page::{PAGE_SIZE, Page, PageRef};
use crate::seg::{Bvec, BvecSeg, BvecSegMut};
use crate::{Dest, IovIter, Source};

// ---------------------------------------------------------------------------
// Page handles and batches.

mod sealed {
    pub trait Sealed {}
}

/// A page an operation may own while it is in flight: [`Page`] (owned
/// outright) or [`PageRef`] (a reference, `get_page`). Sealed: the
/// soundness argument relies on the frame's address staying put and valid
/// while the handle lives, and on nobody writing the frame through another
/// path while the queue holds the handle.
pub trait PageHandle: sealed::Sealed + Send + 'static {
    /// The page.
    fn page(&self) -> &Page;
}

impl sealed::Sealed for Page {}
impl PageHandle for Page {
    #[inline]
    fn page(&self) -> &Page {
        self
    }
}

impl sealed::Sealed for PageRef {}
impl PageHandle for PageRef {
    #[inline]
    fn page(&self) -> &Page {
        self
    }
}

/// An owned batch of page segments for one request, contiguous in the file
/// (the `bio_vec` array of a `struct swap_iocb`): each entry is a page and a
/// byte range in it, whole pages by default.
///
/// `P` is [`Page`] for reads (exclusive pages the data lands in) and
/// [`Page`] or [`PageRef`] for writes. A batch is built from a `Vec` of
/// pages (whole pages), collected from an iterator, or pushed to one
/// segment at a time; at most [`UIO_MAXIOV`] segments go in one request.
///
/// # Examples
///
/// ```
/// use iov_iter::backend::uring::PageBatch;
/// use iov_iter::Page;
///
/// let mut batch: PageBatch<Page> = vec![Page::new(), Page::new()].into();
/// batch.push_range(Page::new(), 0, 512)?;
/// assert_eq!((batch.nr_segs(), batch.len()), (3, 2 * 4096 + 512));
/// // A range that leaves its page is refused, and the page comes back.
/// let err = batch.push_range(Page::new(), 4000, 512).unwrap_err();
/// assert_eq!(err.error.errno(), iov_iter::Errno::EFAULT);
/// let _page: Page = err.buffers;
/// # Ok::<(), iov_iter::backend::uring::BufError<Page>>(())
/// ```
#[doc(alias = "swap_iocb")]
#[doc(alias = "bio_vec")]
pub struct PageBatch<P> {
    pages: Vec<P>,
    /// `(offset, len)` of each segment in its page; always inside the page.
    /// Empty while every segment is a whole page (the usual batch, which
    /// then costs one allocation, not two); otherwise one entry per page.
    ranges: Vec<(u32, u32)>,
}

/// The range of a whole page.
const WHOLE_PAGE: (u32, u32) = (0, PAGE_SIZE as u32);

impl<P> PageBatch<P> {
    /// An empty batch.
    pub const fn new() -> PageBatch<P> {
        PageBatch {
            pages: Vec::new(),
            ranges: Vec::new(),
        }
    }

    /// An empty batch with room for `n` segments.
    pub fn with_capacity(n: usize) -> PageBatch<P> {
        PageBatch {
            pages: Vec::with_capacity(n),
            ranges: Vec::new(),
        }
    }

    /// Appends a whole page.
    pub fn push(&mut self, page: P) {
        if !self.ranges.is_empty() {
            self.ranges.push(WHOLE_PAGE);
        }
        self.pages.push(page);
    }

    /// Appends `len` bytes at `offset` of `page`.
    ///
    /// # Errors
    ///
    /// [`Error::PageRange`] (EFAULT) when the range leaves the page; the
    /// page comes back in the error.
    pub fn push_range(&mut self, page: P, offset: usize, len: usize) -> Result<(), BufError<P>> {
        match offset.checked_add(len) {
            Some(PAGE_SIZE) if offset == 0 => {
                self.push(page);
                Ok(())
            }
            // Both fit in u32: offset + len <= PAGE_SIZE.
            Some(end) if end <= PAGE_SIZE => {
                if self.ranges.is_empty() {
                    // The first partial page: spell out the whole ones.
                    self.ranges
                        .reserve(self.pages.capacity().max(self.pages.len() + 1));
                    self.ranges.resize(self.pages.len(), WHOLE_PAGE);
                }
                self.pages.push(page);
                self.ranges.push((offset as u32, len as u32));
                Ok(())
            }
            _ => Err(BufError {
                error: Error::PageRange { offset, len },
                buffers: page,
            }),
        }
    }

    /// Number of segments (pages).
    pub fn nr_segs(&self) -> usize {
        self.pages.len()
    }

    /// Total bytes of all segments.
    pub fn len(&self) -> usize {
        if self.ranges.is_empty() {
            self.pages.len() * PAGE_SIZE
        } else {
            self.ranges.iter().map(|&(_, len)| len as usize).sum()
        }
    }

    /// Whether the batch holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pages, in file order.
    pub fn pages(&self) -> &[P] {
        &self.pages
    }

    /// The pages, mutably (to fill them before a write, or to read what a
    /// read brought in).
    pub fn pages_mut(&mut self) -> &mut [P] {
        &mut self.pages
    }

    /// The `(offset, len)` range of segment `index` in its page.
    pub fn range(&self, index: usize) -> Option<(usize, usize)> {
        (index < self.pages.len()).then(|| {
            let (off, len) = self.range_u32(index);
            (off as usize, len as usize)
        })
    }

    /// The range of segment `index`, which must be below `nr_segs`.
    #[inline]
    fn range_u32(&self, index: usize) -> (u32, u32) {
        if self.ranges.is_empty() {
            WHOLE_PAGE
        } else {
            self.ranges[index]
        }
    }

    /// The pages, in file order, dropping the ranges.
    pub fn into_pages(self) -> Vec<P> {
        self.pages
    }
}

impl<P> Default for PageBatch<P> {
    fn default() -> Self {
        PageBatch::new()
    }
}

impl<P> From<Vec<P>> for PageBatch<P> {
    /// A batch of whole pages.
    fn from(pages: Vec<P>) -> Self {
        PageBatch {
            pages,
            ranges: Vec::new(),
        }
    }
}

impl<P> FromIterator<P> for PageBatch<P> {
    /// A batch of whole pages.
    fn from_iter<I: IntoIterator<Item = P>>(iter: I) -> Self {
        iter.into_iter().collect::<Vec<P>>().into()
    }
}

impl<P: PageHandle> fmt::Debug for PageBatch<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageBatch")
            .field("nr_segs", &self.nr_segs())
            .field("len", &self.len())
            .finish()
    }
}

/// An error that hands the caller's buffers back: a request refused before
/// anything was queued (for a sync kiocb: the I/O's error, after it ended).
///
/// Converts into [`Error`] (dropping the buffers), so `?` works in
/// functions returning [`Result`].
pub struct BufError<B> {
    /// What went wrong.
    pub error: Error,
    /// The buffers, untouched by the kernel (refused before submission) or
    /// as the failed I/O left them.
    pub buffers: B,
}

impl<B> BufError<B> {
    /// The buffers.
    pub fn into_buffers(self) -> B {
        self.buffers
    }
}

impl<B> fmt::Debug for BufError<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<B> fmt::Display for BufError<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl<B> std::error::Error for BufError<B> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<B> From<BufError<B>> for Error {
    fn from(e: BufError<B>) -> Error {
        e.error
    }
}

impl<B> From<BufError<B>> for io::Error {
    fn from(e: BufError<B>) -> io::Error {
        e.error.into()
    }
}

// ---------------------------------------------------------------------------
// Request preparation (no syscalls).

/// A heap-allocated iovec array that an SQE points into. The heap buffer
/// never moves (the `Vec` is never grown after the SQE is built), so moving
/// an `IovArray` leaves the SQE's pointer valid. After the operation's CQE
/// the table keeps the emptied `Vec` for a later operation
/// ([`OpTable::recycle_iov`]), saving an allocation per request.
struct IovArray(Vec<UserIovec>);

// SAFETY: the array holds addresses only; the memory they describe is owned
// by the same in-flight operation's buffers (which are `Send`), or borrowed
// by a thread that is blocked until the operation completes. A recycled
// array is empty.
unsafe impl Send for IovArray {}

/// Segments of one request held without a heap allocation: the bvec array
/// of a `struct swap_iocb` (`SWAP_CLUSTER_MAX` = 32 pages).
const INLINE_SEGS: usize = 32;

/// A request's iovecs as validated, before they are copied into the
/// [`IovArray`] the SQE points to (under the queue's lock, where a recycled
/// array is at hand).
type IovStage = SmallVec<[UserIovec; INLINE_SEGS]>;

/// The kernel's `rw_verify_area` bounds: a position above `i64::MAX` is
/// negative as `loff_t` (and `-1` means "current position" to io_uring),
/// and the end must not pass it either.
fn check_pos(pos: u64, len: usize) -> Result<()> {
    match pos.checked_add(len as u64) {
        Some(end) if end <= i64::MAX as u64 => Ok(()),
        _ => Err(Error::InvalidArgument(
            "file position beyond the largest loff_t",
        )),
    }
}

/// Validates a write batch (segment count, position, alignment through a
/// [`Source`] [`Bvec`] iterator over it) and lists its iovecs.
fn write_iov<P: PageHandle>(batch: &PageBatch<P>, pos: u64, align: DioAlign) -> Result<IovStage> {
    if batch.nr_segs() > UIO_MAXIOV {
        return Err(Error::TooManySegments(batch.nr_segs()));
    }
    check_pos(pos, batch.len())?;
    let segs = batch
        .pages
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (off, len) = batch.range_u32(i);
            BvecSeg::new(p.page(), off as usize, len as usize)
        })
        .collect::<Result<SmallVec<[_; INLINE_SEGS]>>>()?;
    let iter = IovIter::<Source, Bvec>::new(&segs);
    align.check(pos, &iter)?;
    Ok(iter
        .raw_chunks()
        .map(|(p, len)| UserIovec::new(p.as_ptr(), len))
        .collect())
}

/// Validates a read batch (as [`write_iov`], through a [`Dest`] [`Bvec`]
/// iterator) and lists its iovecs.
fn read_iov(batch: &mut PageBatch<Page>, pos: u64, align: DioAlign) -> Result<IovStage> {
    if batch.nr_segs() > UIO_MAXIOV {
        return Err(Error::TooManySegments(batch.nr_segs()));
    }
    check_pos(pos, batch.len())?;
    let PageBatch { pages, ranges } = batch;
    let mut segs = pages
        .iter_mut()
        .enumerate()
        .map(|(i, p)| {
            let (off, len) = ranges.get(i).copied().unwrap_or(WHOLE_PAGE);
            BvecSegMut::new(p, off as usize, len as usize)
        })
        .collect::<Result<SmallVec<[_; INLINE_SEGS]>>>()?;
    let iter = IovIter::<Dest, Bvec>::new(&mut segs);
    align.check(pos, &iter)?;
    Ok(iter
        .raw_chunks()
        .map(|(p, len)| UserIovec::new(p.as_ptr(), len))
        .collect())
}

/// io_uring_setup(2) for a queue of `entries`; with `coop`,
/// `IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG` where the kernel
/// has them (Linux 5.19) and plain otherwise. Returns the ring and whether
/// the flags took.
fn setup_ring(entries: u32, coop: bool) -> io::Result<(IoUring, bool)> {
    if coop {
        match IoUring::builder()
            .setup_coop_taskrun()
            .setup_taskrun_flag()
            .build(entries)
        {
            Ok(ring) => return Ok((ring, true)),
            // EINVAL: a kernel that predates the flags.
            Err(e) if e.raw_os_error() == Some(Errno::EINVAL.raw()) => {}
            Err(e) => return Err(e),
        }
    }
    Ok((IoUring::new(entries)?, false))
}

/// The SQE for one read or write at `pos` over `iov` (not empty, at most
/// `u32::MAX` entries). With `single_ops` (the kernel has them), a single
/// segment goes out as `IORING_OP_READ` / `IORING_OP_WRITE`, which spares
/// the kernel the import of a one-entry iovec array (fio does the same by
/// default); several as `IORING_OP_READV` / `IORING_OP_WRITEV`. Both take
/// the kiocb's `RWF_*` flags and ioprio. The SQE points into `iov`
/// (vectored) or into the memory its one entry describes.
fn rw_entry(
    rw: RwType,
    fd: types::Fd,
    iov: &[UserIovec],
    pos: u64,
    ioprio: u16,
    flags: RwfFlags,
    single_ops: bool,
) -> io_uring::squeue::Entry {
    let rwf = flags.bits() as i32;
    if let ([one], true) = (iov, single_ops) {
        if let Ok(len) = u32::try_from(one.len) {
            return match rw {
                RwType::Read => opcode::Read::new(fd, one.base, len)
                    .offset(pos)
                    .ioprio(ioprio)
                    .rw_flags(rwf)
                    .build(),
                RwType::Write => opcode::Write::new(fd, one.base.cast_const(), len)
                    .offset(pos)
                    .ioprio(ioprio)
                    .rw_flags(rwf)
                    .build(),
            };
        }
    }
    // The caller checked that the count fits the SQE's u32.
    let nr = iov.len() as u32;
    let ptr = iovec_ptr(iov);
    match rw {
        RwType::Read => opcode::Readv::new(fd, ptr, nr)
            .offset(pos)
            .ioprio(ioprio)
            .rw_flags(rwf)
            .build(),
        RwType::Write => opcode::Writev::new(fd, ptr, nr)
            .offset(pos)
            .ioprio(ioprio)
            .rw_flags(rwf)
            .build(),
    }
}

/// The iovec array as the pointer type an opcode builder expects (the
/// io-uring crate's `*const libc::iovec`), without naming `libc`: `T` is
/// inferred from the builder, and a compile-time assertion checks that it
/// has the size and alignment of [`UserIovec`] (`struct iovec`: a pointer
/// and a `size_t`).
#[inline]
fn iovec_ptr<T>(iov: &[UserIovec]) -> *const T {
    const {
        assert!(core::mem::size_of::<T>() == core::mem::size_of::<UserIovec>());
        assert!(core::mem::align_of::<T>() == core::mem::align_of::<UserIovec>());
    }
    iov.as_ptr().cast::<T>()
}

// `UserIovec` is `struct iovec`, as std's `IoSlice` is on Unix.
static_assertions::assert_eq_size!(UserIovec, io::IoSlice<'static>);
static_assertions::assert_eq_align!(UserIovec, io::IoSlice<'static>);

/// An io_uring CQE result: bytes, or a negative errno.
fn cqe_result(res: i32) -> Result<usize> {
    if res >= 0 {
        Ok(res as usize)
    } else {
        Err(Error::from(Errno::from_raw(-res)))
    }
}

// ---------------------------------------------------------------------------
// Operation handles.

/// The outcome of an owned-buffer operation: what the kiocb's completion
/// received, and the buffers handed back.
pub struct OpOutput<B> {
    /// The result and the position after the I/O (as the kiocb's completion
    /// saw them).
    pub completed: Completed,
    /// The buffers the operation owned: for a read, the pages hold the data
    /// read (up to the byte count).
    pub buffers: B,
}

impl<B> fmt::Debug for OpOutput<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpOutput")
            .field("completed", &self.completed)
            .finish_non_exhaustive()
    }
}

enum OpState<B> {
    Pending(Option<Waker>),
    Ready(OpOutput<B>),
    Taken,
    /// The queue failed with the operation in flight and leaked its buffers.
    Lost,
}

struct OpShared<B> {
    state: Mutex<OpState<B>>,
    /// Set once `state` has left `Pending` (never cleared): lets
    /// [`UringOp::is_complete`] answer without taking the lock, which a
    /// caller that scans many operations per completion would otherwise
    /// take for each of them.
    done: AtomicBool,
}

impl<B> OpShared<B> {
    fn new() -> OpShared<B> {
        OpShared {
            state: Mutex::new(OpState::Pending(None)),
            done: AtomicBool::new(false),
        }
    }

    fn ready(out: OpOutput<B>) -> OpShared<B> {
        OpShared {
            state: Mutex::new(OpState::Ready(out)),
            done: AtomicBool::new(true),
        }
    }

    fn lock(&self) -> MutexGuard<'_, OpState<B>> {
        // The critical sections run no user code but `Waker::clone`; a
        // poisoned state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, next: OpState<B>) {
        let done = !matches!(next, OpState::Pending(_));
        let old = core::mem::replace(&mut *self.lock(), next);
        // After the state: whoever sees `done` and then locks finds it.
        if done {
            self.done.store(true, Ordering::Release);
        }
        // Wake (and drop the old waker) outside the lock.
        if let OpState::Pending(Some(w)) = old {
            w.wake();
        }
    }

    fn is_complete(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    fn poll_take(&self, cx: &mut Context<'_>) -> Poll<OpOutput<B>> {
        let mut state = self.lock();
        match &mut *state {
            OpState::Pending(w) => {
                let old = match w {
                    Some(w) if w.will_wake(cx.waker()) => None,
                    _ => w.replace(cx.waker().clone()),
                };
                drop(state);
                drop(old);
                Poll::Pending
            }
            OpState::Ready(_) => match core::mem::replace(&mut *state, OpState::Taken) {
                OpState::Ready(out) => Poll::Ready(out),
                _ => unreachable!(),
            },
            OpState::Taken => panic!("UringOp polled after it returned Ready"),
            OpState::Lost => panic!(
                "the io_uring queue failed with this operation in flight; its buffers were leaked"
            ),
        }
    }
}

/// Where a finished owned operation's buffers go (for buffer types other
/// than page batches: see [`Owned`]).
trait OwnedSink: Send {
    /// Hands the buffers back through the operation's handle.
    fn finish(self: Box<Self>, completed: Completed);
    /// Leaks the buffers (the kernel may still use them) and marks the
    /// handle lost.
    fn lose(self: Box<Self>);
}

struct OpSink<B> {
    buffers: B,
    shared: Arc<OpShared<B>>,
}

impl<B> OpSink<B> {
    fn finish(self, completed: Completed) {
        let OpSink { buffers, shared } = self;
        shared.set(OpState::Ready(OpOutput { completed, buffers }));
    }

    fn lose(self) {
        let OpSink { buffers, shared } = self;
        core::mem::forget(buffers);
        shared.set(OpState::Lost);
    }
}

/// Boxed as an `Option` so that [`Owned::new`] has no failure path: it
/// runs after the SQE is pushed, where unwinding would free buffers the
/// kernel may be using. It is always `Some`.
impl<B: Send> OwnedSink for Option<OpSink<B>> {
    fn finish(self: Box<Self>, completed: Completed) {
        if let Some(sink) = *self {
            sink.finish(completed);
        }
    }

    fn lose(self: Box<Self>) {
        if let Some(sink) = *self {
            sink.lose();
        }
    }
}

/// An owned operation's buffers and handle, as the table holds them. Page
/// batches, the only buffers [`UringQueue::submit_read`] and
/// [`UringQueue::submit_write`] take, are held inline in the table entry;
/// other buffer types would be boxed.
enum Owned {
    Pages(OpSink<PageBatch<Page>>),
    Refs(OpSink<PageBatch<PageRef>>),
    Boxed(Box<dyn OwnedSink>),
}

impl Owned {
    /// Wraps `sink` without panicking (it runs after the SQE is pushed).
    fn new<B: Send + 'static>(sink: OpSink<B>) -> Owned {
        // By-value downcasts (through `Option::take`); `B` is one of the
        // batch types in practice.
        let mut sink = Some(sink);
        let any: &mut dyn Any = &mut sink;
        if let Some(s) = any
            .downcast_mut::<Option<OpSink<PageBatch<Page>>>>()
            .and_then(Option::take)
        {
            return Owned::Pages(s);
        }
        let any: &mut dyn Any = &mut sink;
        if let Some(s) = any
            .downcast_mut::<Option<OpSink<PageBatch<PageRef>>>>()
            .and_then(Option::take)
        {
            return Owned::Refs(s);
        }
        Owned::Boxed(Box::new(sink))
    }

    fn finish(self, completed: Completed) {
        match self {
            Owned::Pages(s) => s.finish(completed),
            Owned::Refs(s) => s.finish(completed),
            Owned::Boxed(s) => s.finish(completed),
        }
    }

    fn lose(self) {
        match self {
            Owned::Pages(s) => s.lose(),
            Owned::Refs(s) => s.lose(),
            Owned::Boxed(s) => s.lose(),
        }
    }
}

/// A submitted owned-buffer operation: a [`Future`] resolving to its
/// [`OpOutput`] (result and buffers), and a handle to wait on it without a
/// runtime.
///
/// It only observes the operation: dropping it before completion detaches
/// it, and the queue frees the buffers once the CQE arrives. The future is
/// woken when some thread delivers the completion ([`UringQueue::reap`],
/// [`UringQueue::wait`], [`UringQueue::block_on`], [`UringOp::wait`]).
///
/// # Panics
///
/// Polling it again after it returned `Ready` panics, and so does polling
/// an operation whose queue failed and leaked it (see the
/// [module docs](self), rule 3).
pub struct UringOp<B> {
    shared: Arc<OpShared<B>>,
    submitted: Submitted,
    key: u64,
    queue_id: u64,
}

impl<B> UringOp<B> {
    /// [`Submitted::Queued`] for an async kiocb, [`Submitted::Done`] with the
    /// byte count for a sync kiocb (whose operation is already complete).
    pub fn submitted(&self) -> Submitted {
        self.submitted
    }

    /// Whether the completion has been delivered.
    pub fn is_complete(&self) -> bool {
        self.shared.is_complete()
    }

    /// The outcome if the completion has been delivered, else the handle
    /// back. Does not drive the queue.
    ///
    /// # Panics
    ///
    /// As for polling (after the outcome was taken, or when lost).
    pub fn try_take(self) -> Result<OpOutput<B>, UringOp<B>> {
        let waker = Waker::noop();
        match self.shared.poll_take(&mut Context::from_waker(waker)) {
            Poll::Ready(out) => Ok(out),
            Poll::Pending => Err(self),
        }
    }

    /// Drives `queue` until this operation has completed, and returns its
    /// outcome.
    ///
    /// # Panics
    ///
    /// When `queue` is not the queue the operation was submitted to, and as
    /// for polling.
    pub fn wait(self, queue: &UringQueue) -> OpOutput<B> {
        assert_eq!(
            self.queue_id, queue.id,
            "UringOp::wait on a queue it was not submitted to"
        );
        queue.wait_for_key(self.key);
        // The CQE was reaped; its delivery may still be running on another
        // thread: park until it wakes us.
        park_on(self)
    }
}

impl<B> Future for UringOp<B> {
    type Output = OpOutput<B>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<OpOutput<B>> {
        self.shared.poll_take(cx)
    }
}

impl<B> fmt::Debug for UringOp<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UringOp")
            .field("submitted", &self.submitted)
            .field("complete", &self.is_complete())
            .finish()
    }
}

/// Wakes a parked thread.
struct Unparker(Thread);

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

fn thread_waker() -> Waker {
    thread_local! {
        /// Made once per thread: waiting allocates nothing.
        static WAKER: Waker = Waker::from(Arc::new(Unparker(thread::current())));
    }
    WAKER
        .try_with(Waker::clone)
        .unwrap_or_else(|_| Waker::from(Arc::new(Unparker(thread::current()))))
}

/// Polls `fut` on this thread, parking between polls.
fn park_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let waker = thread_waker();
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park();
    }
}

// ---------------------------------------------------------------------------
// The in-flight table (no syscalls: unit-tested under Miri).

/// `user_data` of the queue's own `ASYNC_CANCEL` SQEs; never a table key.
const CANCEL_KEY: u64 = u64::MAX;

/// Largest iovec array (in entries) the table keeps for reuse.
const RECYCLE_IOV_MAX: usize = 64;

enum Sink {
    /// Owned buffers, handed back through a [`UringOp`].
    Owned(Owned),
    /// Memory borrowed by a thread blocked in [`Transfer::transfer`]; the
    /// result is parked in the table for it.
    Borrowed,
}

/// One operation the kernel may be using memory of.
struct InFlight {
    /// What the SQE's `addr` points to. Freed only after the CQE.
    iov: IovArray,
    start: u64,
    /// The kiocb's completion (async kiocbs only).
    completion: Option<Completion>,
    sink: Sink,
}

enum Slot {
    Free {
        generation: u32,
    },
    Busy {
        generation: u32,
        op: InFlight,
    },
    /// A borrowed transfer's CQE arrived; its waiter has not collected it.
    Done {
        generation: u32,
        res: i32,
    },
}

/// The slab of in-flight operations, keyed by SQE `user_data`
/// (`generation << 32 | index`). An entry, with its buffers and iovec
/// array, leaves only through [`OpTable::complete`] (its CQE arrived) or
/// [`OpTable::leak_all`].
struct OpTable {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Emptied iovec arrays of completed operations, for reuse; at most
    /// `cap`, each of at most [`RECYCLE_IOV_MAX`] entries.
    spare_iovs: Vec<IovArray>,
    /// Busy and Done slots.
    busy: usize,
    /// Busy slots holding owned buffers.
    owned: usize,
    cap: usize,
}

fn key_of(index: u32, generation: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(index)
}

fn split_key(key: u64) -> (usize, u32) {
    ((key & 0xffff_ffff) as usize, (key >> 32) as u32)
}

/// A reaped owned operation, delivered (kiocb completion, then handle) when
/// dropped: outside the queue's lock, and even while unwinding from a
/// panicking completion.
struct Finished {
    start: u64,
    result: Result<usize>,
    completion: Option<Completion>,
    sink: Option<Owned>,
}

/// Operations reaped under the queue's lock, delivered after it is
/// released; a burst of up to 16 needs no heap allocation.
type FinishedList = SmallVec<[Finished; 16]>;

impl Drop for Finished {
    fn drop(&mut self) {
        /// Hands the buffers back even if the completion panics.
        struct FinishGuard(Option<Owned>, Completed);
        impl Drop for FinishGuard {
            fn drop(&mut self) {
                if let Some(sink) = self.0.take() {
                    sink.finish(self.1);
                }
            }
        }
        let completed = Completed::new(self.start, self.result);
        let _guard = FinishGuard(self.sink.take(), completed);
        if let Some(c) = self.completion.take() {
            c.complete(self.start, self.result);
        }
    }
}

impl OpTable {
    fn new(cap: usize) -> OpTable {
        OpTable {
            slots: Vec::with_capacity(cap),
            free: Vec::new(),
            spare_iovs: Vec::new(),
            busy: 0,
            owned: 0,
            cap,
        }
    }

    fn is_full(&self) -> bool {
        self.busy >= self.cap
    }

    /// The key the next [`OpTable::insert`] will return.
    fn next_key(&self) -> u64 {
        match self.free.last() {
            Some(&i) => match self.slots[i as usize] {
                Slot::Free { generation } => key_of(i, generation),
                _ => unreachable!("free list holds a busy slot"),
            },
            None => key_of(self.slots.len() as u32, 0),
        }
    }

    fn insert(&mut self, op: InFlight) -> u64 {
        assert!(!self.is_full(), "in-flight table overflow");
        if matches!(op.sink, Sink::Owned(_)) {
            self.owned += 1;
        }
        self.busy += 1;
        match self.free.pop() {
            Some(i) => {
                let generation = match self.slots[i as usize] {
                    Slot::Free { generation } => generation,
                    _ => unreachable!("free list holds a busy slot"),
                };
                self.slots[i as usize] = Slot::Busy { generation, op };
                key_of(i, generation)
            }
            None => {
                let i = self.slots.len() as u32;
                self.slots.push(Slot::Busy { generation: 0, op });
                key_of(i, 0)
            }
        }
    }

    /// An iovec array holding a copy of `iov`: a recycled one when there
    /// is one.
    fn iov_array(&mut self, iov: &[UserIovec]) -> IovArray {
        let mut arr = self.spare_iovs.pop().unwrap_or(IovArray(Vec::new()));
        arr.0.extend_from_slice(iov);
        arr
    }

    /// Keeps the array of an operation the kernel is done with (its CQE
    /// was reaped, or it was never submitted) for [`OpTable::iov_array`].
    fn recycle_iov(&mut self, mut iov: IovArray) {
        if iov.0.capacity() != 0
            && iov.0.capacity() <= RECYCLE_IOV_MAX
            && self.spare_iovs.len() < self.cap
        {
            iov.0.clear();
            self.spare_iovs.push(iov);
        }
    }

    fn release(&mut self, index: usize, generation: u32) {
        self.slots[index] = Slot::Free {
            generation: generation.wrapping_add(1),
        };
        self.free.push(index as u32);
        self.busy -= 1;
    }

    /// The CQE for `key` arrived with `res`. An owned operation leaves the
    /// table (its iovec array is freed here) and is returned for delivery;
    /// a borrowed one parks its result. Unknown keys (the queue's cancel
    /// SQEs) are ignored.
    fn complete(&mut self, key: u64, res: i32) -> Option<Finished> {
        let (index, generation) = split_key(key);
        match self.slots.get(index) {
            Some(Slot::Busy { generation: g_, .. }) if *g_ == generation => {}
            _ => return None,
        }
        let Slot::Busy { op, .. } =
            core::mem::replace(&mut self.slots[index], Slot::Done { generation, res })
        else {
            unreachable!()
        };
        match op.sink {
            Sink::Borrowed => None,
            Sink::Owned(sink) => {
                self.owned -= 1;
                self.release(index, generation);
                // The kernel is done with the array: reuse it.
                self.recycle_iov(op.iov);
                Some(Finished {
                    start: op.start,
                    result: cqe_result(res),
                    completion: op.completion,
                    sink: Some(sink),
                })
            }
        }
    }

    /// Collects a borrowed transfer's parked result.
    fn take_done(&mut self, key: u64) -> Option<i32> {
        let (index, generation) = split_key(key);
        match self.slots.get(index) {
            Some(&Slot::Done {
                generation: g_,
                res,
            }) if g_ == generation => {
                self.release(index, generation);
                Some(res)
            }
            _ => None,
        }
    }

    /// Whether `key` is still in the table (in flight, or parked).
    fn contains(&self, key: u64) -> bool {
        let (index, generation) = split_key(key);
        matches!(self.slots.get(index),
            Some(Slot::Busy { generation: g_, .. } | Slot::Done { generation: g_, .. }) if *g_ == generation)
    }

    fn owned_keys(&self) -> Vec<u64> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Slot::Busy {
                    generation,
                    op:
                        InFlight {
                            sink: Sink::Owned(_),
                            ..
                        },
                } => Some(key_of(i as u32, *generation)),
                _ => None,
            })
            .collect()
    }

    /// The ring can no longer be waited on: leaks every in-flight buffer and
    /// iovec array (the kernel may still use them), runs their kiocb
    /// completions with `ECANCELED`, and marks their handles lost.
    fn leak_all(&mut self) {
        for slot in &mut self.slots {
            if let Slot::Busy { op, .. } = core::mem::replace(slot, Slot::Free { generation: 0 }) {
                core::mem::forget(op.iov);
                if let Some(c) = op.completion {
                    c.complete(op.start, Err(Error::Os(Errno::ECANCELED)));
                }
                match op.sink {
                    Sink::Owned(sink) => sink.lose(),
                    Sink::Borrowed => {}
                }
            }
        }
        self.slots.clear();
        self.free.clear();
        self.busy = 0;
        self.owned = 0;
    }
}

impl Drop for OpTable {
    /// Normally empty by now (the queue drained it). If it is not (a panic
    /// unwound through the queue with I/O in flight), freeing the buffers
    /// could hand memory the kernel still writes back to the allocator:
    /// leak them instead.
    fn drop(&mut self) {
        if self.busy > 0 {
            self.leak_all();
        }
    }
}

// ---------------------------------------------------------------------------
// The queue.

struct State {
    /// Dropped by hand in `UringQueue::drop`, after every CQE arrived (or
    /// leaked when waiting failed).
    ring: ManuallyDrop<IoUring>,
    ops: OpTable,
    /// Live [`UringPlug`]s: while non-zero, owned submissions stay in the
    /// SQ until a plug ends or somebody waits.
    plugged: usize,
}

/// An error from io_uring_enter(2) that only asks to try again.
fn retryable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc_errno::EINTR | libc_errno::EAGAIN | libc_errno::EBUSY)
    )
}

/// errno values compared against `io::Error::raw_os_error`.
mod libc_errno {
    pub const EINTR: i32 = 4;
    pub const EAGAIN: i32 = 11;
    pub const EBUSY: i32 = 16;
}

fn io_err(e: io::Error) -> Error {
    Error::from(Errno::from_raw(
        e.raw_os_error().unwrap_or(Errno::EIO.raw()),
    ))
}

impl State {
    /// Reaps every available CQE; owned operations go to `out`.
    fn reap(&mut self, out: &mut FinishedList) {
        let State { ring, ops, .. } = self;
        for cqe in ring.completion() {
            if let Some(f) = ops.complete(cqe.user_data(), cqe.result()) {
                out.push(f);
            }
        }
    }

    /// Submits what is queued and blocks until at least one CQE is
    /// available. Transient errors count as a spurious wakeup.
    fn enter_wait(&mut self) -> io::Result<()> {
        match self.ring.submit_and_wait(1) {
            Ok(_) => Ok(()),
            Err(e) if retryable(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Waits until the table has room for one more operation.
    fn make_room(&mut self, out: &mut FinishedList) -> Result<()> {
        loop {
            self.reap(out);
            if !self.ops.is_full() {
                return Ok(());
            }
            self.enter_wait().map_err(io_err)?;
        }
    }

    /// Pushes `entry` (with `user_data` = the table's next key).
    ///
    /// # Safety
    ///
    /// Every address in `entry` must stay valid as the opcode requires until
    /// the CQE of that key is reaped, which the caller ensures by inserting
    /// the owner into the table right after this succeeds, under the same
    /// lock.
    unsafe fn push(&mut self, entry: &io_uring::squeue::Entry) -> Result<()> {
        // SAFETY: as the caller promises.
        if unsafe { self.ring.submission().push(entry) }.is_ok() {
            return Ok(());
        }
        // The SQ holds at most one entry per table slot, and the table has
        // room; flush anyway and retry once.
        let _ = self.ring.submit();
        // SAFETY: as above.
        unsafe { self.ring.submission().push(entry) }.map_err(|_| Error::Os(Errno::EBUSY))
    }

    /// Cancels every owned operation, then waits for every CQE. `false`
    /// when the ring failed and operations are still in flight.
    fn cancel_and_drain(&mut self, out: &mut FinishedList) -> bool {
        for key in self.ops.owned_keys() {
            let cancel = opcode::AsyncCancel::new(key).build().user_data(CANCEL_KEY);
            loop {
                // SAFETY: an ASYNC_CANCEL SQE points to no memory.
                if unsafe { self.ring.submission().push(&cancel) }.is_ok() {
                    break;
                }
                match self.ring.submit() {
                    Ok(_) => {}
                    Err(e) if retryable(&e) => self.reap(out),
                    Err(_) => return self.drain(out),
                }
            }
        }
        self.drain(out)
    }

    fn drain(&mut self, out: &mut FinishedList) -> bool {
        loop {
            self.reap(out);
            if self.ops.busy == 0 {
                return true;
            }
            if self.enter_wait().is_err() {
                return false;
            }
        }
    }
}

static NEXT_QUEUE_ID: AtomicU64 = AtomicU64::new(1);

/// An io_uring instance doing direct I/O on one `O_DIRECT` file: owned-page
/// reads and writes that complete asynchronously, and a [`Transfer`]
/// backend for borrowed iterators. See the [module docs](self) for the
/// buffer-lifetime contract.
///
/// At most [`UringQueue::depth`] operations are in flight; submitting more
/// blocks (reaping completions) until one finishes, as a block device's tag
/// allocation does. The queue is `Send` and `Sync`: several threads may
/// submit and reap; one lock serialises access to the ring, and a thread
/// blocked waiting holds it (others' non-blocking [`UringQueue::reap`] then
/// returns 0 at once).
///
/// Dropping the queue cancels what is in flight and **waits for every
/// outstanding completion** before freeing buffers and the ring.
#[doc(alias = "io_uring")]
#[doc(alias = "io_uring_setup")]
#[doc(alias = "IORING_OP_ASYNC_CANCEL")]
pub struct UringQueue {
    state: Mutex<State>,
    fd: OwnedFd,
    align: DioAlign,
    caps: FileCaps,
    depth: usize,
    coop_taskrun: bool,
    /// The kernel has `IORING_OP_READ` / `IORING_OP_WRITE`.
    single_ops: bool,
    id: u64,
}

/// How to set up a [`UringQueue`]: [`UringQueue::builder`], then
/// [`build`](UringBuilder::build) on an open [`DirectFile`] or
/// [`open`](UringBuilder::open) a path.
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct UringBuilder {
    depth: u32,
    coop_taskrun: bool,
}

impl UringBuilder {
    /// Most operations in flight at once: the SQ size, rounded up to a
    /// power of two by the kernel, at most 4096. Default 32.
    pub fn depth(mut self, depth: u32) -> UringBuilder {
        self.depth = depth;
        self
    }

    /// `IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG` (Linux 5.19;
    /// on an older kernel the queue is set up without them, and
    /// [`UringQueue::is_coop_taskrun`] says so). Default off.
    ///
    /// Without it, the kernel posts each completion from task work that it
    /// forces onto the thread that submitted the operation with an
    /// inter-processor interrupt, wherever that thread is. With it, the
    /// work waits for that thread's next entry into the kernel, which for a
    /// queue driven by the thread that submits is the `io_uring_enter` that
    /// submits or waits anyway: no interrupt, and completions are posted in
    /// batches. On this crate's benchmark machine it took 4 KiB random
    /// writes at QD32 from 0.65× to about 0.95× fio's IOPS (fio sets it
    /// too); see BENCHMARKS.md.
    ///
    /// Turn it on when the threads that submit are the threads that wait
    /// (one thread per queue, or each thread waiting for its own
    /// operations). The io_uring_setup(2) manual warns against it where one
    /// thread waits for completions of operations another thread submitted:
    /// depending on the kernel, those may only be posted once the submitter
    /// enters the kernel again.
    #[doc(alias = "IORING_SETUP_COOP_TASKRUN")]
    #[doc(alias = "IORING_SETUP_TASKRUN_FLAG")]
    pub fn coop_taskrun(mut self, on: bool) -> UringBuilder {
        self.coop_taskrun = on;
        self
    }

    /// A queue on an open [`DirectFile`], taking over its alignment and
    /// capabilities.
    ///
    /// # Errors
    ///
    /// EINVAL when the depth is 0; the io_uring_setup(2) error (ENOSYS: no
    /// io_uring; EPERM: disabled by `kernel.io_uring_disabled`; ENOMEM).
    pub fn build(self, file: DirectFile) -> Result<UringQueue> {
        UringQueue::with_ring(file, self.depth, self.coop_taskrun)
    }

    /// Opens an existing file read-write with `O_DIRECT`
    /// ([`DirectFile::open`]) and builds the queue on it.
    ///
    /// # Errors
    ///
    /// As [`DirectFile::open`], then as [`UringBuilder::build`].
    pub fn open<P: AsRef<Path>>(self, path: P) -> Result<UringQueue> {
        self.build(DirectFile::open(path)?)
    }
}

/// Deferred submission on a [`UringQueue`], from [`UringQueue::plug`]
/// until it is dropped (`blk_finish_plug`).
#[must_use = "dropping the plug at once submits at once"]
#[doc(alias = "blk_plug")]
pub struct UringPlug<'q> {
    queue: &'q UringQueue,
}

impl UringPlug<'_> {
    /// Hands every queued SQE to the kernel now and keeps the plug.
    /// Returns how many were submitted.
    ///
    /// # Errors
    ///
    /// The io_uring_enter(2) error; the SQEs stay queued and the next
    /// submit or wait retries them.
    pub fn flush(&self) -> Result<usize> {
        self.queue.lock().ring.submit().map_err(io_err)
    }
}

impl Drop for UringPlug<'_> {
    fn drop(&mut self) {
        let mut st = self.queue.lock();
        st.plugged -= 1;
        if st.plugged == 0 {
            // An error leaves the SQEs queued: the next submit or wait
            // hands them over.
            let _ = st.ring.submit();
        }
    }
}

impl fmt::Debug for UringPlug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UringPlug").finish_non_exhaustive()
    }
}

static_assertions::assert_impl_all!(UringQueue: Send, Sync);
static_assertions::assert_impl_all!(UringOp<PageBatch<Page>>: Send, Sync, Unpin);
static_assertions::assert_impl_all!(UringOp<PageBatch<PageRef>>: Send, Sync, Unpin);
static_assertions::assert_impl_all!(PageBatch<Page>: Send, Sync);

impl UringQueue {
    /// A queue of `depth` entries (rounded up to a power of two by the
    /// kernel, at most 4096) on an open [`DirectFile`], whose alignment
    /// (`statx(STATX_DIOALIGN)`) and capabilities it takes over.
    ///
    /// # Errors
    ///
    /// EINVAL when `depth` is 0; the io_uring_setup(2) error (ENOSYS: no
    /// io_uring; EPERM: disabled by `kernel.io_uring_disabled`; ENOMEM).
    pub fn new(file: DirectFile, depth: u32) -> Result<UringQueue> {
        UringQueue::builder().depth(depth).build(file)
    }

    /// Options for a queue: depth and ring setup flags.
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// // One thread submits and waits: let completions wait for it.
    /// let queue = UringQueue::builder()
    ///     .depth(32)
    ///     .coop_taskrun(true)
    ///     .open("/var/tmp/disk.img")?;
    /// assert_eq!(queue.depth(), 32);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn builder() -> UringBuilder {
        UringBuilder {
            depth: 32,
            coop_taskrun: false,
        }
    }

    fn with_ring(file: DirectFile, depth: u32, coop: bool) -> Result<UringQueue> {
        if depth == 0 {
            return Err(Error::InvalidArgument("io_uring queue depth 0"));
        }
        let (ring, coop_taskrun) = setup_ring(depth.min(4096), coop).map_err(io_err)?;
        let depth = ring.params().sq_entries() as usize;
        // IORING_OP_READ / WRITE came one release after READV / WRITEV
        // (5.6); so did the probe, so a failed probe means no.
        let mut probe = io_uring::Probe::new();
        let single_ops = ring.submitter().register_probe(&mut probe).is_ok()
            && probe.is_supported(opcode::Read::CODE)
            && probe.is_supported(opcode::Write::CODE);
        let (align, caps) = (file.dio_align(), file.caps());
        Ok(UringQueue {
            state: Mutex::new(State {
                ring: ManuallyDrop::new(ring),
                ops: OpTable::new(depth),
                plugged: 0,
            }),
            fd: file.into_fd(),
            align,
            caps,
            depth,
            coop_taskrun,
            single_ops,
            id: NEXT_QUEUE_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Whether the ring runs with `IORING_SETUP_COOP_TASKRUN` (asked for
    /// with [`UringBuilder::coop_taskrun`] and supported by the kernel).
    pub fn is_coop_taskrun(&self) -> bool {
        self.coop_taskrun
    }

    /// Opens an existing file read-write with `O_DIRECT`
    /// ([`DirectFile::open`]) and builds a queue of `depth` entries on it.
    /// For other open options, open a [`DirectFile`] with
    /// [`DirectFile::options`] and use [`UringQueue::new`].
    ///
    /// # Errors
    ///
    /// As [`DirectFile::open`] (EINVAL: the filesystem refuses `O_DIRECT`),
    /// then as [`UringQueue::new`].
    pub fn open<P: AsRef<Path>>(path: P, depth: u32) -> Result<UringQueue> {
        UringQueue::new(DirectFile::open(path)?, depth)
    }

    /// A queue on an open file descriptor, setting `O_DIRECT` on it if
    /// needed ([`DirectFile::from_fd`]).
    ///
    /// # Errors
    ///
    /// As [`DirectFile::from_fd`], then as [`UringQueue::new`].
    pub fn from_fd(fd: OwnedFd, depth: u32) -> Result<UringQueue> {
        UringQueue::new(DirectFile::from_fd(fd)?, depth)
    }

    /// Replaces the alignment read from statx (for a device with stricter
    /// rules than it reports, or to test misalignment handling).
    #[must_use]
    pub fn with_align(mut self, align: DioAlign) -> UringQueue {
        self.align = align;
        self
    }

    /// Sets what the file supports, for `RWF_*` validation by callers
    /// ([`Transfer::caps`], [`Kiocb::set_rw_flags`]). Default: nothing.
    #[must_use]
    pub fn with_caps(mut self, caps: FileCaps) -> UringQueue {
        self.caps = caps;
        self
    }

    /// Most operations in flight at once (the SQ size).
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Owned-buffer operations submitted and not yet reaped.
    pub fn in_flight(&self) -> usize {
        self.lock().ops.owned
    }

    /// SQEs in the submission queue that the kernel has not been handed yet
    /// (held back by a [`UringPlug`], or left by a failed submit).
    pub fn unsubmitted(&self) -> usize {
        self.lock().ring.submission().len()
    }

    /// Starts deferring submission (`blk_start_plug`): until the returned
    /// plug ends, [`submit_read`](UringQueue::submit_read) and
    /// [`submit_write`](UringQueue::submit_write) on async kiocbs only
    /// queue their SQE, and the plug's end (or [`UringPlug::flush`])
    /// hands all of them to the kernel with one `io_uring_enter`, as
    /// liburing's prepare-then-`io_uring_submit` does. A burst of N
    /// requests then costs one system call instead of N.
    ///
    /// Use it where a burst is ready at once (a virtqueue's worth of
    /// descriptors, a readahead window). Each request waits in the SQ until
    /// the burst ends, so plugging a trickle of requests that would
    /// otherwise go out one by one lowers the device's effective queue
    /// depth: held across the swap example's QD32 benchmark loops (each
    /// refill going out only at the next wait), it cut random writes from
    /// about 150k to 103k IOPS and reads from 82k to 67k on this crate's
    /// benchmark machine.
    ///
    /// Nothing waits on a plug: anything that waits on this queue
    /// ([`UringQueue::wait`], [`UringOp::wait`], [`UringQueue::block_on`],
    /// a sync kiocb, a submission into a full queue) and
    /// [`UringQueue::reap`] submit what is queued first, like the kernel
    /// flushing a task's plug when it sleeps. Plugs nest (the last to end
    /// submits) and are per queue, not per thread: while one is alive,
    /// other threads' async submissions on this queue wait for it too, so
    /// hold it around a burst, not for long. A plug that is leaked with
    /// [`core::mem::forget`] leaves submission to the next wait or reap.
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::{PageBatch, UringQueue};
    /// use iov_iter::kiocb::Kiocb;
    /// use iov_iter::{PAGE_SIZE, Page};
    ///
    /// let queue = UringQueue::builder().depth(32).open("/var/tmp/disk.img")?;
    /// let mut ops = Vec::new();
    /// {
    ///     let _plug = queue.plug();
    ///     for i in 0..16u64 {
    ///         let (mut kiocb, _done) = Kiocb::new_async(i * PAGE_SIZE as u64);
    ///         let batch: PageBatch<Page> = vec![Page::new()].into();
    ///         ops.push(queue.submit_read(&mut kiocb, batch).map_err(|e| e.error)?);
    ///     }
    /// } // one io_uring_enter submits all 16
    /// for op in ops {
    ///     let out = op.wait(&queue);
    ///     assert_eq!(out.completed.result, Ok(PAGE_SIZE));
    /// }
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "blk_start_plug")]
    #[doc(alias = "io_uring_submit")]
    pub fn plug(&self) -> UringPlug<'_> {
        self.lock().plugged += 1;
        UringPlug { queue: self }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No user code runs under the lock; after a panic in ours the table
        // still describes exactly what the kernel holds.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads `batch.len()` bytes at `kiocb.pos` into the owned pages of
    /// `batch` (`IORING_OP_READV`; `IORING_OP_READ` for one page), with the
    /// kiocb's `ki_ioprio` and `RWF_*` flags. A read past the end of the file is short.
    ///
    /// Async kiocb: `Ok` with [`Submitted::Queued`]; the completion runs
    /// once with the bytes read, and the [`UringOp`] resolves to them and
    /// the pages. Sync kiocb: waits, advances [`Kiocb::pos`], and returns an
    /// operation that is already complete ([`Submitted::Done`]). An empty
    /// batch completes at once with 0 bytes, submitting nothing.
    ///
    /// # Errors
    ///
    /// Before anything is queued, with the pages handed back and an async
    /// kiocb's completion left in place: [`Error::Misaligned`] (EINVAL:
    /// the position, a page range or the total length breaks
    /// [`Transfer::dio_align`]), [`Error::TooManySegments`] (more than
    /// [`UIO_MAXIOV`]), [`Error::InvalidArgument`] (a position past
    /// `i64::MAX`, or an async kiocb already queued), or an io_uring_enter(2)
    /// error while waiting for room. For a sync kiocb, also the I/O's error.
    #[doc(alias = "IORING_OP_READV")]
    #[doc(alias = "swap_read_unplug")]
    pub fn submit_read(
        &self,
        kiocb: &mut Kiocb,
        batch: impl Into<PageBatch<Page>>,
    ) -> Result<UringOp<PageBatch<Page>>, BufError<PageBatch<Page>>> {
        let mut batch = batch.into();
        let iov = match read_iov(&mut batch, kiocb.pos, self.align) {
            Ok(iov) => iov,
            Err(error) => {
                return Err(BufError {
                    error,
                    buffers: batch,
                });
            }
        };
        let len = batch.len();
        // SAFETY: `iov` describes the frames of the pages `batch` owns
        // exclusively: their addresses do not change when `batch` moves, and
        // nothing else can reach them while the queue holds `batch`.
        unsafe { self.submit_owned(kiocb, RwType::Read, batch, &iov, len) }
    }

    /// Writes `batch.len()` bytes from the pages of `batch` at `kiocb.pos`
    /// (`IORING_OP_WRITEV`; `IORING_OP_WRITE` for one page), with the
    /// kiocb's `ki_ioprio` and `RWF_*` flags. The queue holds the pages
    /// (for [`PageRef`]s, a reference each) until the write completes.
    ///
    /// Completion, sync and async behaviour as for
    /// [`UringQueue::submit_read`]. With `IOCB_APPEND` in the kiocb's flags
    /// (`RWF_APPEND`) the kernel writes at the end of the file, but the
    /// reported position is still `kiocb.pos` plus the bytes written.
    ///
    /// # Errors
    ///
    /// As [`UringQueue::submit_read`].
    #[doc(alias = "IORING_OP_WRITEV")]
    #[doc(alias = "swap_write_unplug")]
    pub fn submit_write<P: PageHandle>(
        &self,
        kiocb: &mut Kiocb,
        batch: impl Into<PageBatch<P>>,
    ) -> Result<UringOp<PageBatch<P>>, BufError<PageBatch<P>>> {
        let batch = batch.into();
        let iov = match write_iov(&batch, kiocb.pos, self.align) {
            Ok(iov) => iov,
            Err(error) => {
                return Err(BufError {
                    error,
                    buffers: batch,
                });
            }
        };
        let len = batch.len();
        // SAFETY: `iov` describes frames of pages `batch` holds (owned, or
        // by reference): their addresses do not change when `batch` moves,
        // and nobody can write them while the queue holds `batch` (a shared
        // `PageRef` gives no `&mut Page`).
        unsafe { self.submit_owned(kiocb, RwType::Write, batch, &iov, len) }
    }

    /// The common owned-buffer submission. `iov` is copied into a
    /// heap-allocated [`IovArray`] (recycled when the table has one) that
    /// the SQE points to and the table owns with `buffers`.
    ///
    /// # Safety
    ///
    /// `iov` describes `len` bytes of memory owned by `buffers`, valid for
    /// writes (a read) or reads (a write) for as long as `buffers` lives,
    /// at addresses that do not change when `buffers` moves, and that
    /// nothing else accesses (a read) or writes (a write) while the queue
    /// holds `buffers`.
    unsafe fn submit_owned<B: Send + 'static>(
        &self,
        kiocb: &mut Kiocb,
        rw: RwType,
        buffers: B,
        iov: &[UserIovec],
        len: usize,
    ) -> Result<UringOp<B>, BufError<B>> {
        let sync = kiocb.is_sync();
        if !sync && !kiocb.has_completion() {
            return Err(BufError {
                error: Error::InvalidArgument("async kiocb already queued"),
                buffers,
            });
        }
        let start = kiocb.pos;
        if len == 0 {
            let out = OpOutput {
                completed: Completed::new(start, Ok(0)),
                buffers,
            };
            let submitted = if sync {
                Submitted::Done(0)
            } else {
                if let Some(c) = kiocb.take_completion() {
                    c.complete(start, Ok(0));
                }
                Submitted::Queued
            };
            return Ok(UringOp {
                shared: Arc::new(OpShared::ready(out)),
                submitted,
                key: u64::MAX,
                queue_id: self.id,
            });
        }
        if u32::try_from(iov.len()).is_err() {
            return Err(BufError {
                error: Error::TooManySegments(iov.len()),
                buffers,
            });
        }
        let shared = Arc::new(OpShared::new());
        let mut finished = FinishedList::new();
        let queued = {
            let mut st = self.lock();
            match st.make_room(&mut finished) {
                Err(error) => Err(BufError { error, buffers }),
                Ok(()) => {
                    let key = st.ops.next_key();
                    let fd = types::Fd(self.fd.as_raw_fd());
                    // Filled here and never grown after: `ptr` stays valid
                    // while the array moves into the table.
                    let iov = st.ops.iov_array(iov);
                    let rwf = rwf_of(kiocb.flags);
                    let entry = rw_entry(rw, fd, &iov.0, start, kiocb.ioprio, rwf, self.single_ops)
                        .user_data(key);
                    // SAFETY: the SQE points to `iov`'s heap array (filled
                    // above, never grown again) and, through it, to memory
                    // `buffers` owns (the caller's promise). Both move into
                    // the table right below, under this lock, before any CQE
                    // can be reaped, and stay there until this key's CQE is:
                    // moving them leaves the addresses valid (a `Vec`'s heap
                    // buffer and page frames do not move).
                    match unsafe { st.push(&entry) } {
                        Err(error) => {
                            // Not queued: the kernel never saw the array.
                            st.ops.recycle_iov(iov);
                            Err(BufError { error, buffers })
                        }
                        Ok(()) => {
                            let op = InFlight {
                                iov,
                                start,
                                completion: kiocb.take_completion(),
                                sink: Sink::Owned(Owned::new(OpSink {
                                    buffers,
                                    shared: Arc::clone(&shared),
                                })),
                            };
                            let inserted = st.ops.insert(op);
                            debug_assert_eq!(inserted, key);
                            // An error leaves the SQE in the ring: the next
                            // io_uring_enter submits it. Under a plug, that
                            // is the plug's end or the next wait.
                            if st.plugged == 0 || sync {
                                let _ = st.ring.submit();
                            }
                            Ok(key)
                        }
                    }
                }
            }
        };
        // Deliver what was reaped while making room, outside the lock.
        drop(finished);
        let key = queued?;
        let mut op = UringOp {
            shared,
            submitted: Submitted::Queued,
            key,
            queue_id: self.id,
        };
        if !sync {
            return Ok(op);
        }
        self.wait_for_key(key);
        // Delivery may still be running on another thread: park until it
        // wakes us.
        let out = park_on(&mut op);
        match out.completed.result {
            Ok(n) => {
                kiocb.advance_pos(n);
                // The same handle, holding the outcome again.
                *op.shared.lock() = OpState::Ready(out);
                op.submitted = Submitted::Done(n);
                Ok(op)
            }
            Err(error) => Err(BufError {
                error,
                buffers: out.buffers,
            }),
        }
    }

    /// Reaps every completion already posted and delivers it, without
    /// blocking (`io_uring_peek_cqe`). Also flushes SQEs a failed submit
    /// left in the ring. Returns the operations delivered by this call; 0
    /// when another thread holds the ring (it delivers them).
    #[doc(alias = "poll_completions")]
    #[doc(alias = "io_uring_peek_cqe")]
    pub fn reap(&self) -> usize {
        let mut finished = FinishedList::new();
        {
            let mut st = match self.state.try_lock() {
                Ok(st) => st,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return 0,
            };
            let _ = st.ring.submit();
            st.reap(&mut finished);
        }
        let n = finished.len();
        drop(finished);
        n
    }

    /// Blocks until this call has delivered at least `min_complete`
    /// owned-buffer completions, or none is in flight any more
    /// (`io_uring_enter` with `IORING_ENTER_GETEVENTS`). Returns how many
    /// it delivered.
    ///
    /// # Errors
    ///
    /// The io_uring_enter(2) error (other than EINTR, EAGAIN and EBUSY,
    /// which are retried); completions reaped before it are still
    /// delivered. Nothing is lost: operations stay in flight.
    #[doc(alias = "io_uring_wait_cqe_nr")]
    #[doc(alias = "io_uring_enter")]
    pub fn wait(&self, min_complete: usize) -> Result<usize> {
        let mut got = 0;
        loop {
            let mut finished = FinishedList::new();
            let step = {
                let mut st = self.lock();
                st.reap(&mut finished);
                if finished.is_empty() && got < min_complete && st.ops.owned > 0 {
                    let r = st.enter_wait();
                    st.reap(&mut finished);
                    r.map(|()| st.ops.owned)
                } else {
                    Ok(st.ops.owned)
                }
            };
            got += finished.len();
            drop(finished);
            match step {
                Err(e) => return Err(io_err(e)),
                Ok(left) if got >= min_complete || left == 0 => return Ok(got),
                Ok(_) => {}
            }
        }
    }

    /// Waits until every owned-buffer operation in flight has completed.
    ///
    /// # Errors
    ///
    /// As [`UringQueue::wait`].
    pub fn drain(&self) -> Result<()> {
        while self.wait(usize::MAX)? > 0 {}
        Ok(())
    }

    /// Runs `fut` to completion on this thread, driving this queue while it
    /// is pending: a minimal executor for [`UringOp`]s (and anything else
    /// woken by a thread waker).
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        let mut fut = pin!(fut);
        let waker = thread_waker();
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
            if self.in_flight() == 0 || self.wait(1).is_err() {
                thread::park_timeout(Duration::from_millis(1));
            }
        }
    }

    /// Drives the ring until `key` has left the table (its CQE was reaped,
    /// by this thread or another).
    fn wait_for_key(&self, key: u64) {
        loop {
            let mut finished = FinishedList::new();
            let gone = {
                let mut st = self.lock();
                st.reap(&mut finished);
                if st.ops.contains(key) {
                    if let Err(e) = st.enter_wait() {
                        ring_failed(&e);
                    }
                    st.reap(&mut finished);
                }
                !st.ops.contains(key)
            };
            drop(finished);
            if gone {
                return;
            }
        }
    }

    /// One read or write SQE over borrowed memory; returns the raw CQE
    /// result.
    ///
    /// # Safety
    ///
    /// As [`Transfer::transfer`].
    unsafe fn transfer_once(
        &self,
        rw: RwType,
        pos: u64,
        iov: &[UserIovec],
        flags: RwfFlags,
    ) -> Result<i32> {
        let mut finished = FinishedList::new();
        let res = {
            let mut st = self.lock();
            st.make_room(&mut finished)?;
            let key = st.ops.next_key();
            let fd = types::Fd(self.fd.as_raw_fd());
            let entry = rw_entry(rw, fd, iov, pos, 0, flags, self.single_ops).user_data(key);
            // SAFETY: `iov` and the memory it describes are valid for the
            // whole call (the caller's promise), and this function does not
            // return before the CQE of `key` is reaped below (or aborts the
            // process).
            unsafe { st.push(&entry) }?;
            st.ops.insert(InFlight {
                iov: IovArray(Vec::new()),
                start: pos,
                completion: None,
                sink: Sink::Borrowed,
            });
            let _ = st.ring.submit();
            loop {
                st.reap(&mut finished);
                if let Some(res) = st.ops.take_done(key) {
                    break res;
                }
                if let Err(e) = st.enter_wait() {
                    ring_failed(&e);
                }
            }
        };
        drop(finished);
        Ok(res)
    }
}

/// The ring cannot be waited on while the kernel holds memory that will be
/// freed or reused when this thread returns: nothing safe remains.
#[cold]
fn ring_failed(e: &io::Error) -> ! {
    eprintln!("iov_iter: io_uring_enter failed with I/O in flight ({e}); aborting");
    std::process::abort()
}

impl Transfer for UringQueue {
    fn dio_align(&self) -> DioAlign {
        self.align
    }

    fn caps(&self) -> FileCaps {
        self.caps
    }

    /// One `IORING_OP_READV` / `IORING_OP_WRITEV` over the borrowed `iov`
    /// (`READ` / `WRITE` for one segment),
    /// waiting for its CQE before returning (so the borrow outlives the
    /// kernel's use). `ioprio` is 0: the trait does not carry the kiocb's.
    /// A CQE of `-EINTR` is resubmitted.
    unsafe fn transfer(
        &self,
        rw: RwType,
        pos: u64,
        iov: &[UserIovec],
        flags: RwfFlags,
    ) -> Result<usize> {
        if iov.is_empty() {
            return Ok(0);
        }
        if iov.len() > UIO_MAXIOV {
            return Err(Error::TooManySegments(iov.len()));
        }
        let len = iov
            .iter()
            .try_fold(0usize, |acc, v| acc.checked_add(v.len))
            .ok_or(Error::InvalidArgument("iovec lengths overflow"))?;
        check_pos(pos, len)?;
        loop {
            // SAFETY: forwarded from the caller; `iov` is not empty and its
            // length fits the SQE's u32 (checked against UIO_MAXIOV above).
            let res = unsafe { self.transfer_once(rw, pos, iov, flags) }?;
            if res == -Errno::EINTR.raw() {
                continue;
            }
            return cqe_result(res);
        }
    }
}

impl AsFd for UringQueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl fmt::Debug for UringQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let in_flight = self.state.try_lock().ok().map(|st| st.ops.owned);
        f.debug_struct("UringQueue")
            .field("fd", &self.fd.as_raw_fd())
            .field("depth", &self.depth)
            .field("align", &self.align)
            .field("in_flight", &in_flight)
            .finish()
    }
}

impl Drop for UringQueue {
    /// Waits on drop: cancels every in-flight operation
    /// (`IORING_OP_ASYNC_CANCEL`) and waits for every CQE before freeing
    /// buffers and the ring; leaks both if the ring fails meanwhile.
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        let mut finished = FinishedList::new();
        let drained = st.cancel_and_drain(&mut finished);
        drop(finished);
        if drained {
            // SAFETY: every CQE has been reaped: the kernel holds no memory
            // of ours, and the ring is not used after this.
            unsafe { ManuallyDrop::drop(&mut st.ring) };
        } else {
            eprintln!("iov_iter: io_uring ring failed on drop; leaking in-flight buffers");
            st.ops.leak_all();
        }
    }
}

#[cfg(test)]
mod tests {
    //! The bookkeeping without syscalls (runs under Miri): a "kernel" that
    //! reads and writes through the iovec arrays after the buffers moved
    //! into the table.

    use super::*;
    use crate::kiocb::Kiocb;
    use std::sync::atomic::AtomicUsize;

    fn align512() -> DioAlign {
        DioAlign::new(512, 512).unwrap()
    }

    fn noop_cx() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    /// What the queue's submit does, minus the ring.
    fn queue_op<B: Send + 'static>(
        table: &mut OpTable,
        kiocb: &mut Kiocb,
        buffers: B,
        iov: IovStage,
    ) -> (u64, Arc<OpShared<B>>, Vec<UserIovec>) {
        let shared = Arc::new(OpShared::new());
        let iov = table.iov_array(&iov);
        let raw = iov.0.clone();
        let key = table.next_key();
        let got = table.insert(InFlight {
            iov,
            start: kiocb.pos,
            completion: kiocb.take_completion(),
            sink: Sink::Owned(Owned::new(OpSink {
                buffers,
                shared: Arc::clone(&shared),
            })),
        });
        assert_eq!(got, key);
        (key, shared, raw)
    }

    #[test]
    fn keys_are_reused_with_a_new_generation() {
        let mut t = OpTable::new(2);
        let b = |t: &mut OpTable| {
            t.insert(InFlight {
                iov: IovArray(Vec::new()),
                start: 0,
                completion: None,
                sink: Sink::Borrowed,
            })
        };
        let k0 = b(&mut t);
        let k1 = b(&mut t);
        assert!(t.is_full());
        assert_ne!(k0, k1);
        assert!(t.complete(k0, 7).is_none()); // borrowed: parked
        assert!(t.contains(k0));
        assert!(t.is_full());
        assert_eq!(t.take_done(k0), Some(7));
        assert!(!t.contains(k0));
        assert_eq!(t.take_done(k0), None);
        let k2 = t.next_key();
        assert_eq!(b(&mut t), k2);
        assert_ne!(k2, k0, "same slot, new generation");
        // Stale and cancel keys are ignored.
        assert!(t.complete(k0, 1).is_none());
        assert!(t.complete(CANCEL_KEY, -2).is_none());
        assert!(t.contains(k2) && t.contains(k1));
        assert_eq!(t.busy, 2);
    }

    #[test]
    fn owned_read_hands_pages_back_after_the_cqe() {
        let mut t = OpTable::new(4);
        let count = Arc::new(AtomicUsize::new(0));
        let c2 = Arc::clone(&count);
        let mut kiocb = Kiocb::with_completion(4096, move |done| {
            assert_eq!(done.result, Ok(8192));
            assert_eq!(done.pos, 4096 + 8192);
            c2.fetch_add(1, Ordering::SeqCst);
        });
        let mut batch: PageBatch<Page> = (0..2).map(|_| Page::new()).collect();
        let iov = read_iov(&mut batch, kiocb.pos, align512()).unwrap();
        let (key, shared, raw) = queue_op(&mut t, &mut kiocb, batch, iov);
        assert!(!kiocb.has_completion());
        assert_eq!(t.owned, 1);
        // The "kernel" fills the frames through the iovecs, after the pages
        // moved into the table.
        for (i, v) in raw.iter().enumerate() {
            // SAFETY: the frames are owned by the table entry, which nothing
            // else touches until `complete`.
            unsafe { core::ptr::write_bytes(v.base, 0xa0 + i as u8, v.len) };
        }
        assert_eq!(count.load(Ordering::SeqCst), 0);
        assert!(shared.poll_take(&mut noop_cx()).is_pending());
        let fin = t.complete(key, 8192).expect("owned op finishes");
        assert_eq!(t.owned, 0);
        assert!(!t.contains(key));
        drop(fin); // delivery
        assert_eq!(count.load(Ordering::SeqCst), 1);
        let Poll::Ready(out) = shared.poll_take(&mut noop_cx()) else {
            panic!("not ready")
        };
        assert_eq!(out.completed.result, Ok(8192));
        let pages = out.buffers.into_pages();
        assert!(pages[0].as_bytes().iter().all(|&b| b == 0xa0));
        assert!(pages[1].as_bytes().iter().all(|&b| b == 0xa1));
    }

    #[test]
    fn dropped_handle_keeps_write_pages_until_the_cqe() {
        let mut t = OpTable::new(4);
        let mut page = Page::new();
        page.as_mut_bytes().fill(0x5a);
        let page = PageRef::new(page);
        let (mut kiocb, fut) = Kiocb::new_async(0);
        let mut batch = PageBatch::new();
        batch.push_range(PageRef::clone(&page), 0, 1024).unwrap();
        let iov = write_iov(&batch, 0, align512()).unwrap();
        let (key, shared, raw) = queue_op(&mut t, &mut kiocb, batch, iov);
        drop(shared); // the future is dropped: detached
        assert_eq!(
            PageRef::strong_count(&page),
            2,
            "the table holds a reference"
        );
        assert_eq!(raw.len(), 1);
        // SAFETY: the table's reference keeps the frame alive; only read.
        let seen = unsafe { core::slice::from_raw_parts(raw[0].base, raw[0].len) };
        assert!(seen.iter().all(|&b| b == 0x5a));
        drop(t.complete(key, 1024));
        assert_eq!(PageRef::strong_count(&page), 1, "put after the CQE");
        assert_eq!(fut.try_get().unwrap().pos, 1024);
    }

    #[test]
    fn failed_io_reports_the_errno_and_start_position() {
        let mut t = OpTable::new(1);
        let (mut kiocb, fut) = Kiocb::new_async(512);
        let mut batch: PageBatch<Page> = vec![Page::new()].into();
        let iov = read_iov(&mut batch, 512, align512()).unwrap();
        let (key, shared, _) = queue_op(&mut t, &mut kiocb, batch, iov);
        drop(t.complete(key, -Errno::EIO.raw()));
        let done = fut.try_get().unwrap();
        assert_eq!((done.result, done.pos), (Err(Error::Os(Errno::EIO)), 512));
        let Poll::Ready(out) = shared.poll_take(&mut noop_cx()) else {
            panic!("not ready")
        };
        assert_eq!(out.completed, done);
    }

    #[test]
    fn misaligned_requests_are_refused_before_queueing() {
        let mut batch: PageBatch<Page> = vec![Page::new()].into();
        let err = read_iov(&mut batch, 100, align512()).err().unwrap();
        assert!(matches!(
            err,
            Error::Misaligned {
                what: crate::Misalignment::FileOffset,
                ..
            }
        ));
        let mut batch = PageBatch::new();
        batch.push_range(Page::new(), 256, 512).unwrap();
        let err = write_iov(&batch, 0, align512()).err().unwrap();
        assert_eq!(err.errno(), Errno::EINVAL);
        let mut batch = PageBatch::new();
        batch.push_range(Page::new(), 0, 100).unwrap();
        assert!(read_iov(&mut batch, 0, align512()).is_err());
        let batch: PageBatch<Page> = (0..UIO_MAXIOV + 1).map(|_| Page::new()).collect();
        assert_eq!(
            write_iov(&batch, 0, align512()).err(),
            Some(Error::TooManySegments(UIO_MAXIOV + 1))
        );
        let batch: PageBatch<Page> = vec![Page::new()].into();
        assert!(write_iov(&batch, i64::MAX as u64 - 511, align512()).is_err());
        assert!(write_iov(&batch, u64::MAX - 4095, align512()).is_err());
    }

    #[test]
    fn iovec_pointer_cast_checks_layout() {
        #[repr(C)]
        struct CIovec {
            _base: *mut core::ffi::c_void,
            _len: usize,
        }
        let v = [UserIovec::new(core::ptr::null_mut(), 0)];
        let p: *const CIovec = iovec_ptr(&v);
        assert_eq!(p as usize, v.as_ptr() as usize);
    }

    #[test]
    fn empty_segments_are_skipped_in_the_iovec() {
        let mut batch = PageBatch::new();
        batch.push(Page::new());
        batch.push_range(Page::new(), 0, 0).unwrap();
        batch.push(Page::new());
        let iov = read_iov(&mut batch, 0, align512()).unwrap();
        assert_eq!(iov.len(), 2);
        assert_eq!(batch.len(), 8192);
    }

    #[test]
    fn whole_page_batches_keep_no_ranges_until_a_partial_page() {
        let mut batch: PageBatch<Page> = (0..3).map(|_| Page::new()).collect();
        assert!(batch.ranges.is_empty());
        assert_eq!(
            (batch.len(), batch.range(2), batch.range(3)),
            (3 * 4096, Some((0, 4096)), None)
        );
        batch.push(Page::new());
        batch.push_range(Page::new(), 0, PAGE_SIZE).unwrap();
        assert!(batch.ranges.is_empty(), "whole pages spell out nothing");
        batch.push_range(Page::new(), 512, 1024).unwrap();
        batch.push(Page::new());
        assert_eq!(batch.ranges.len(), batch.nr_segs());
        assert_eq!(batch.nr_segs(), 7);
        assert_eq!(batch.len(), 6 * 4096 + 1024);
        assert_eq!(batch.range(4), Some((0, 4096)));
        assert_eq!(batch.range(5), Some((512, 1024)));
        assert_eq!(batch.range(6), Some((0, 4096)));
        assert_eq!(batch.range(7), None);
        let iov = read_iov(&mut batch, 0, align512()).unwrap();
        let lens: Vec<usize> = iov.iter().map(|v| v.len).collect();
        assert_eq!(lens, [4096, 4096, 4096, 4096, 4096, 1024, 4096]);
        assert_eq!(iov[5].base as usize, batch.pages()[5].addr() + 512);
        let mut empty = PageBatch::<Page>::with_capacity(2);
        empty.push_range(Page::new(), 0, 0).unwrap();
        assert_eq!(
            (empty.len(), empty.nr_segs(), empty.range(0)),
            (0, 1, Some((0, 0)))
        );
    }

    #[test]
    fn page_batches_are_held_inline() {
        let shared = Arc::new(OpShared::<PageBatch<Page>>::new());
        let sink = OpSink {
            buffers: PageBatch::<Page>::new(),
            shared: Arc::clone(&shared),
        };
        assert!(matches!(Owned::new(sink), Owned::Pages(_)));
        let refs = OpSink {
            buffers: PageBatch::<PageRef>::new(),
            shared: Arc::new(OpShared::new()),
        };
        assert!(matches!(Owned::new(refs), Owned::Refs(_)));
        let other = OpSink {
            buffers: vec![1u8],
            shared: Arc::new(OpShared::new()),
        };
        let other = Owned::new(other);
        assert!(matches!(other, Owned::Boxed(_)));
        other.finish(Completed::new(0, Ok(1)));
    }

    #[test]
    fn iovec_arrays_are_reused_after_the_cqe() {
        let mut t = OpTable::new(2);
        let mut batch: PageBatch<Page> = vec![Page::new()].into();
        let (mut kiocb, _fut) = Kiocb::new_async(0);
        let iov = read_iov(&mut batch, 0, align512()).unwrap();
        let (key, _shared, _) = queue_op(&mut t, &mut kiocb, batch, iov);
        let first = match &t.slots[0] {
            Slot::Busy { op, .. } => op.iov.0.as_ptr(),
            _ => panic!("not busy"),
        };
        assert!(t.spare_iovs.is_empty());
        drop(t.complete(key, 4096));
        assert_eq!(t.spare_iovs.len(), 1);
        let mut batch: PageBatch<Page> = vec![Page::new()].into();
        let (mut kiocb, _fut) = Kiocb::new_async(4096);
        let iov = read_iov(&mut batch, 4096, align512()).unwrap();
        let (key, _shared, raw) = queue_op(&mut t, &mut kiocb, batch, iov);
        let Slot::Busy { op, .. } = &t.slots[0] else {
            panic!("not busy")
        };
        assert_eq!(op.iov.0.as_ptr(), first, "the same heap array");
        assert_eq!(op.iov.0, raw);
        assert!(t.spare_iovs.is_empty());
        drop(t.complete(key, 4096));
        // Arrays too large to keep, and the spare list's bound.
        t.recycle_iov(IovArray(Vec::with_capacity(RECYCLE_IOV_MAX + 1)));
        t.recycle_iov(IovArray(Vec::new()));
        assert_eq!(t.spare_iovs.len(), 1);
        t.recycle_iov(IovArray(Vec::with_capacity(1)));
        t.recycle_iov(IovArray(Vec::with_capacity(1)));
        assert_eq!(t.spare_iovs.len(), 2, "at most one per slot");
    }

    #[test]
    fn thread_wakers_are_made_once_per_thread() {
        assert!(thread_waker().will_wake(&thread_waker()));
    }

    #[test]
    #[cfg_attr(miri, ignore = "leaks on purpose")]
    fn leak_all_cancels_completions_and_loses_handles() {
        let mut t = OpTable::new(2);
        let (mut kiocb, fut) = Kiocb::new_async(0);
        let mut batch: PageBatch<Page> = vec![Page::new()].into();
        let iov = read_iov(&mut batch, 0, align512()).unwrap();
        let (_, shared, _) = queue_op(&mut t, &mut kiocb, batch, iov);
        t.leak_all();
        assert_eq!(t.busy, 0);
        assert_eq!(
            fut.try_get().unwrap().result,
            Err(Error::Os(Errno::ECANCELED))
        );
        assert!(shared.is_complete());
        assert!(matches!(*shared.lock(), OpState::Lost));
    }

    #[test]
    fn a_panicking_completion_still_hands_buffers_back() {
        let mut t = OpTable::new(1);
        let mut kiocb = Kiocb::with_completion(0, |_| panic!("callback panics"));
        let mut batch: PageBatch<Page> = vec![Page::new()].into();
        let iov = read_iov(&mut batch, 0, align512()).unwrap();
        let (key, shared, _) = queue_op(&mut t, &mut kiocb, batch, iov);
        let fin = t.complete(key, 4096).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(fin)));
        assert!(r.is_err());
        assert!(matches!(*shared.lock(), OpState::Ready(_)));
        assert!(shared.is_complete());
    }

    #[test]
    fn is_complete_turns_true_with_delivery_and_stays() {
        let mut t = OpTable::new(1);
        let (mut kiocb, _done) = Kiocb::new_async(0);
        let mut batch: PageBatch<Page> = vec![Page::new()].into();
        let iov = read_iov(&mut batch, 0, align512()).unwrap();
        let (key, shared, _) = queue_op(&mut t, &mut kiocb, batch, iov);
        assert!(!shared.is_complete(), "in flight");
        // A waker registered while pending is still pending.
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(shared.poll_take(&mut cx).is_pending());
        assert!(!shared.is_complete());
        drop(t.complete(key, 4096).unwrap());
        assert!(shared.is_complete(), "delivered");
        assert!(shared.poll_take(&mut cx).is_ready());
        assert!(shared.is_complete(), "taken: still complete");
        assert!(
            OpShared::<Vec<u8>>::ready(OpOutput {
                completed: Completed::new(0, Ok(0)),
                buffers: Vec::new(),
            })
            .is_complete()
        );
    }
}
