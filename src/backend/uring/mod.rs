//! The io_uring direct-I/O backend: [`UringQueue`], truly asynchronous
//! `IORING_OP_READV` / `IORING_OP_WRITEV` on `O_DIRECT` files
//! (`IORING_OP_READ` / `IORING_OP_WRITE` for a single segment,
//! `IORING_OP_READ_FIXED` / `IORING_OP_WRITE_FIXED` for one inside a
//! registered buffer), behind the crate's one I/O contract ([`DirectIo`]).
//! Requires the `uring` feature (Linux 5.5 or later; single-segment `READ` /
//! `WRITE` from 5.6, the [`UringBuilder::coop_taskrun`] option from 5.19).
//!
//! Linux reference: `io_uring/rw.c` (`io_prep_rw`, `io_read`, `io_write`,
//! `io_import_fixed`), `io_uring/rsrc.c` (registered files and buffers),
//! `io_uring/sync.c` (`io_fsync`), `io_uring/cancel.c`
//! (`IORING_OP_ASYNC_CANCEL`), `fs/iomap/direct-io.c` (`-EIOCBQUEUED`,
//! `ki_complete`). Man pages: io_uring_enter(2), io_uring_setup(2),
//! io_uring_register(2), preadv2(2), fsync(2), statx(2) (`STATX_DIOALIGN`),
//! open(2) (`O_DIRECT`).
//!
//! # One ring, several files, registered resources
//!
//! A queue is built on one file; [`UringQueue::add_file`] puts more files
//! on the same ring ([`UringFile`], each a [`DirectIo`] of its own with its
//! own alignment), sharing its depth, in-flight table and plugs. Two
//! registrations are opt-in, and each falls back to the plain path where
//! the kernel refuses it, so code written for them runs everywhere:
//!
//! * **Files** ([`UringBuilder::register_files`], `IORING_REGISTER_FILES`):
//!   SQEs name a slot of the ring's file table (`IOSQE_FIXED_FILE`) rather
//!   than a descriptor the kernel looks up and reference-counts per request
//!   ([`UringQueue::is_fixed_file`]).
//! * **Buffers** ([`UringQueue::register_buffers`],
//!   `IORING_REGISTER_BUFFERS`): a [`FixedBufPool`] of aligned buffers whose
//!   pages the kernel pins once. A request that is one segment inside one of
//!   them (found by address, whatever type owns it) goes out as
//!   `READ_FIXED` / `WRITE_FIXED`; everything else as before
//!   ([`UringQueue::stats`] counts which).
//!
//! Reads and writes still go only through [`DirectIo::submit`] (owned
//! buffers) and [`DirectIo::direct_io`] (borrowed iterators);
//! [`UringQueue::fsync`] (`IORING_OP_FSYNC`) follows the same kiocb
//! contract.
//!
//! # Buffer lifetime: how this is sound
//!
//! Memory handed to the kernel stays valid until its completion (CQE)
//! arrives, whatever the caller does meanwhile. Four rules give that:
//!
//! 1. **Asynchronous I/O owns its buffers.** [`DirectIo::submit`] with an
//!    async kiocb moves the kiocb's [`OwnedIter`](crate::buf::OwnedIter)
//!    (inside the kiocb's completion) into an [`AsyncIo`]; the queue pushes
//!    its SQE and keeps the request in a table, keyed by the SQE's
//!    `user_data`, until that key's CQE has been reaped. Only then does the
//!    request complete, handing the buffer back through the kiocb's
//!    completion. Dropping the kiocb's future, or never polling it, changes
//!    nothing: the buffer is dropped with the outcome after the CQE.
//! 2. **Borrowed memory waits.** [`DirectIo::transfer`] (and so
//!    [`DirectIo::direct_io`] on any borrowed iterator, and a sync kiocb)
//!    submits one SQE and waits for its CQE before returning, like a
//!    synchronous `preadv2`. If the ring could not be waited on any more
//!    while the kernel holds borrowed memory, there is no safe way out and
//!    the process aborts (io_uring_enter(2) fails that way only on a broken
//!    ring).
//! 3. **Wait on drop of the ring.** The queue and each [`UringFile`] keep
//!    the ring alive; dropping one of them cancels nothing (its requests
//!    complete when the ring is driven through another, and its file is
//!    closed after its last CQE). Dropping the **last** of them submits an
//!    `IORING_OP_ASYNC_CANCEL` for every request of every file, then waits
//!    for *every* outstanding CQE, completing each request (cancelled ones
//!    with `ECANCELED`, others normally, buffers handed back), before it
//!    frees the ring. That drop therefore blocks for as long as the slowest
//!    in-flight I/O takes. Should waiting fail (a broken ring), the ring and
//!    every in-flight request are leaked rather than memory the kernel may
//!    still write being freed or handed back: those completions never run.
//! 4. **Registered memory outlives the registration.** A [`FixedBufPool`]'s
//!    memory stays allocated for as long as the ring that registered it
//!    (the kernel's registration ends with the ring), and each
//!    [`FixedBuf`] keeps it too, so no buffer the kernel pinned is freed or
//!    reused while a fixed request may reach it.
//!
//! No `unsafe` is needed by callers of this module.
//!
//! # Completions without a runtime
//!
//! Nothing runs in the background: CQEs are reaped, and completions
//! delivered, when somebody calls [`UringQueue::reap`] (non-blocking),
//! [`UringQueue::wait`] (the queue's [`DirectIo::drive`]),
//! [`DirectIo::block_on`], a sync transfer, or submits while the queue is
//! full. Delivery runs the kiocb's completion (callback or future) exactly
//! once, on the reaping thread, outside the queue's lock, so a completion
//! may submit more I/O. A completion callback that panics does not stop
//! the others reaped with it: every one is delivered, then the first panic
//! is raised again in the thread that reaped.
//!
//! # Examples
//!
//! ```no_run
//! use iov_iter::backend::file::DirectFile;
//! use iov_iter::backend::uring::UringQueue;
//! use iov_iter::buf::{AlignedBuf, OwnedIter};
//! use iov_iter::dio::DirectIo;
//! use iov_iter::kiocb::Kiocb;
//! use iov_iter::{Dest, Source};
//!
//! // O_DIRECT, alignment from statx(STATX_DIOALIGN), a 32-entry ring.
//! let file = DirectFile::options().create(true).open("/var/tmp/data")?;
//! let queue = UringQueue::builder().depth(32).build(file)?;
//! // Write 8 KiB at offset 0 from an owned, aligned buffer.
//! let data = AlignedBuf::from_slice(4096, &[0xa5; 8192])?;
//! let (mut kiocb, done) = Kiocb::new_async_with(0, OwnedIter::<Source, _>::new(data));
//! assert!(queue.submit(&mut kiocb)?.is_queued()); // in flight now
//! let out = queue.block_on(done); // drive the ring until it completed
//! assert_eq!((out.result, out.pos, out.buf.count()), (Ok(8192), 8192, 0));
//!
//! // Read it back into uninitialised memory.
//! let buf = AlignedBuf::with_capacity(4096, 8192)?;
//! let (mut kiocb, done) = Kiocb::new_async_with(0, OwnedIter::<Dest, _>::new(buf));
//! assert!(queue.submit(&mut kiocb)?.is_queued());
//! let back = queue.block_on(done).buf.into_inner();
//! assert_eq!(back.len(), 8192);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod file;
mod file_table;
mod fixed_buf;
mod ring;
mod sqe;
mod table;

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::sync::Arc;

pub use self::file::UringFile;
pub use self::fixed_buf::{FixedBuf, FixedBufPool};
pub use self::ring::UringStats;

use self::file::Handle;
use self::file_table::FileTable;
use self::fixed_buf::{Arena, Registered};
use self::ring::Shared;
use self::sqe::{has_single_ops, io_err, iovec_slice, setup_ring};
use crate::backend::file::DirectFile;
use crate::dio::{AsyncIo, AsyncMode, DioAlign, DirectIo};
use crate::error::{Errno, Error, Result};
use crate::kiocb::{FileCaps, Kiocb, RwType, RwfFlags, Submitted};
use crate::seg::UserIovec;

/// An io_uring instance doing direct I/O on an `O_DIRECT` file, behind
/// [`DirectIo`]: asynchronous owned-buffer requests are in flight when
/// [`DirectIo::submit`] returns ([`AsyncMode::Queued`]), and complete when
/// the queue is driven ([`UringQueue::wait`], [`UringQueue::reap`],
/// [`DirectIo::block_on`]). More files go on the same ring with
/// [`UringQueue::add_file`]. See the [module docs](self) for the
/// buffer-lifetime contract.
///
/// At most [`UringQueue::depth`] operations are in flight, over all files;
/// submitting more blocks (reaping completions) until one finishes, as a
/// block device's tag allocation does. The queue is `Send` and `Sync`:
/// several threads may submit and reap; one lock serialises access to the
/// ring, and a thread blocked waiting holds it (others' non-blocking
/// [`UringQueue::reap`] then returns 0 at once).
///
/// Dropping the queue when it is the ring's last handle (no [`UringFile`]
/// left) cancels what is in flight and **waits for every outstanding
/// completion** before freeing the ring; with files left, the ring lives on
/// with them (see [`UringFile`]).
///
/// # Examples
///
/// ```no_run
/// use iov_iter::backend::uring::UringQueue;
/// use iov_iter::dio::DirectIo;
/// use iov_iter::kiocb::{Kiocb, Submitted};
/// use iov_iter::{Dest, IovIter, Ubuf};
///
/// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
/// // A borrowed buffer: one SQE, waited for.
/// let mut buf = vec![0u8; 4096 + 4096];
/// let off = buf.as_ptr().align_offset(4096);
/// let mut dst = IovIter::<Dest, Ubuf>::new(&mut buf[off..off + 4096]);
/// assert!(matches!(queue.direct_io(&mut Kiocb::new_sync(0), &mut dst)?, Submitted::Done(_)));
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[doc(alias = "io_uring")]
#[doc(alias = "io_uring_setup")]
#[doc(alias = "IORING_OP_ASYNC_CANCEL")]
pub struct UringQueue {
    h: Handle,
}

/// How to set up a [`UringQueue`]: [`UringQueue::builder`], then
/// [`build`](UringBuilder::build) on an open [`DirectFile`] or
/// [`open`](UringBuilder::open) a path.
///
/// # Examples
///
/// ```no_run
/// use iov_iter::backend::uring::UringQueue;
///
/// let queue = UringQueue::builder()
///     .depth(64)
///     .register_files(true)
///     .open("/var/tmp/disk.img")?;
/// assert_eq!(queue.depth(), 64);
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct UringBuilder {
    depth: u32,
    coop_taskrun: bool,
    single_issuer: bool,
    align: Option<DioAlign>,
    caps: Option<FileCaps>,
    register_files: bool,
    max_files: u32,
}

/// Default size of the registered-file table ([`UringBuilder::max_files`]).
const DEFAULT_MAX_FILES: u32 = 64;

impl UringBuilder {
    /// Most operations in flight at once: the SQ size, rounded up to a
    /// power of two by the kernel, at most 4096. Default 32.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().depth(100).open("/var/tmp/disk.img")?;
    /// assert_eq!(queue.depth(), 128);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
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
    /// batches (BENCHMARKS.md measures what it is worth).
    ///
    /// Turn it on when the threads that submit are the threads that wait
    /// (one thread per queue, or each thread waiting for its own
    /// operations). The io_uring_setup(2) manual warns against it where one
    /// thread waits for completions of operations another thread submitted:
    /// depending on the kernel, those may only be posted once the submitter
    /// enters the kernel again.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().coop_taskrun(true).open("/var/tmp/disk.img")?;
    /// println!("cooperative task running: {}", queue.is_coop_taskrun());
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "IORING_SETUP_COOP_TASKRUN")]
    #[doc(alias = "IORING_SETUP_TASKRUN_FLAG")]
    pub fn coop_taskrun(mut self, on: bool) -> UringBuilder {
        self.coop_taskrun = on;
        self
    }

    /// `IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN` (Linux
    /// 6.1; on an older kernel the queue is set up as without it, and
    /// [`UringQueue::is_single_issuer`] says so). Default off.
    ///
    /// The kernel then runs completion work only when the one thread
    /// allowed to use the ring waits for completions, in batches, and
    /// never interrupts it: the cheapest set-up for a queue driven by one
    /// thread (fio's io_uring engine sets it up so). That thread is the
    /// one that calls [`UringBuilder::build`]. From any other thread,
    /// submissions are refused with `EEXIST` before anything reaches the
    /// ring (an async kiocb completes with it), and so are waits; a
    /// completion is delivered only when the building thread waits or
    /// reaps. Dropping the queue on another thread with requests in
    /// flight cannot wait for them: those whose completions the kernel has
    /// posted complete, the ring and the others' buffers are leaked (never
    /// freed under the kernel) and they never complete.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().single_issuer(true).open("/var/tmp/disk.img")?;
    /// println!("single issuer: {}", queue.is_single_issuer());
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "IORING_SETUP_SINGLE_ISSUER")]
    #[doc(alias = "IORING_SETUP_DEFER_TASKRUN")]
    pub fn single_issuer(mut self, on: bool) -> UringBuilder {
        self.single_issuer = on;
        self
    }

    /// Replaces the alignment the file reports (for a device with stricter
    /// rules than it reports, or to test misalignment handling). The kernel
    /// still enforces its own, with `EINVAL`. Applies to the queue's file,
    /// not to files added later (a [`DirectFile::with_align`] does that).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    /// use iov_iter::dio::{DioAlign, DirectIo};
    ///
    /// let align = DioAlign::new(4096, 4096)?;
    /// let queue = UringQueue::builder().align(align).open("/var/tmp/disk.img")?;
    /// assert_eq!(queue.dio_align(), align);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn align(mut self, align: DioAlign) -> UringBuilder {
        self.align = Some(align);
        self
    }

    /// Replaces the capabilities the file reports, for `RWF_*` validation
    /// ([`DirectIo::caps`]). Applies to the queue's file.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    /// use iov_iter::dio::DirectIo;
    /// use iov_iter::kiocb::FileCaps;
    ///
    /// let queue = UringQueue::builder().caps(FileCaps::new()).open("/var/tmp/disk.img")?;
    /// assert!(!queue.caps().nowait);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn caps(mut self, caps: FileCaps) -> UringBuilder {
        self.caps = Some(caps);
        self
    }

    /// Registers the queue's files with the ring (`IORING_REGISTER_FILES`,
    /// a table of [`UringBuilder::max_files`] slots): SQEs then name a slot
    /// (`IOSQE_FIXED_FILE`) instead of a descriptor, which spares the
    /// kernel a descriptor lookup and a reference count per request (more
    /// so once the process has threads, which share its descriptor table).
    /// Default off.
    ///
    /// Where the kernel refuses the table (`EINVAL`, `ENOMEM`, `EMFILE`,
    /// `EPERM`, ...), or once it is full, files go by their descriptors as
    /// without it: [`UringQueue::is_fixed_file`] and
    /// [`UringFile::is_fixed_file`] say which way each goes. Either way the
    /// bytes are the same.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().register_files(true).open("/var/tmp/disk.img")?;
    /// if !queue.is_fixed_file() {
    ///     eprintln!("registered files refused: plain descriptors");
    /// }
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "IORING_REGISTER_FILES")]
    #[doc(alias = "IOSQE_FIXED_FILE")]
    pub fn register_files(mut self, on: bool) -> UringBuilder {
        self.register_files = on;
        self
    }

    /// Slots of the registered-file table ([`UringBuilder::register_files`]):
    /// the queue's file takes one, each [`UringFile`] one while it lives
    /// (its slot is emptied and reused after it closed). Files beyond go by
    /// their descriptors. Default 64; the kernel refuses more than the
    /// process's `RLIMIT_NOFILE`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::file::DirectFile;
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder()
    ///     .register_files(true)
    ///     .max_files(1)
    ///     .open("/var/tmp/a.img")?;
    /// let b = queue.add_file(DirectFile::open("/var/tmp/b.img")?)?;
    /// assert!(!b.is_fixed_file()); // the one slot is the queue's
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn max_files(mut self, slots: u32) -> UringBuilder {
        self.max_files = slots;
        self
    }

    /// A queue on an open [`DirectFile`], taking over its alignment and
    /// capabilities (unless replaced here).
    ///
    /// # Errors
    ///
    /// EINVAL when the depth is 0; the io_uring_setup(2) error (ENOSYS: no
    /// io_uring; EPERM: disabled by `kernel.io_uring_disabled`; ENOMEM).
    /// A refused file registration is no error (see
    /// [`UringBuilder::register_files`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::file::DirectFile;
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let file = DirectFile::options().create(true).open("/var/tmp/new.img")?;
    /// let queue = UringQueue::builder().build(file)?;
    /// # drop(queue);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn build(self, file: DirectFile) -> Result<UringQueue> {
        if self.depth == 0 {
            return Err(Error::InvalidArgument("io_uring queue depth 0"));
        }
        let (ring, took) = setup_ring(self.depth.min(4096), self.coop_taskrun, self.single_issuer)
            .map_err(io_err)?;
        let issuer = took.single_issuer.then(|| std::thread::current().id());
        let depth = ring.params().sq_entries() as usize;
        let single_ops = has_single_ops(&ring);
        let mut files = FileTable::new();
        if self.register_files {
            // Refused: plain descriptors (`is_fixed_file` says so).
            let _ = files.register(&ring.submitter(), self.max_files);
        }
        let align = self.align.unwrap_or(file.dio_align());
        let caps = self.caps.unwrap_or(file.caps());
        let shared = Shared::new(ring, files, depth, took.coop, issuer, single_ops);
        Ok(UringQueue {
            h: Handle::attach(shared, file.into_fd(), align, caps),
        })
    }

    /// Opens an existing file read-write with `O_DIRECT`
    /// ([`DirectFile::open`]) and builds the queue on it.
    ///
    /// # Errors
    ///
    /// As [`DirectFile::open`], then as [`UringBuilder::build`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
    /// assert_eq!(queue.in_flight(), 0);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn open<P: AsRef<Path>>(self, path: P) -> Result<UringQueue> {
        self.build(DirectFile::open(path)?)
    }
}

/// Deferred submission on a ring, from [`UringQueue::plug`] (or
/// [`UringFile::plug`]) until it is dropped (`blk_finish_plug`).
///
/// # Examples
///
/// ```no_run
/// use iov_iter::backend::uring::UringQueue;
///
/// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
/// let plug = queue.plug();
/// // ... queue a burst ...
/// plug.flush()?; // hand it over now, keep deferring
/// drop(plug);
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[must_use = "dropping the plug at once submits at once"]
#[doc(alias = "blk_plug")]
pub struct UringPlug<'q> {
    ring: &'q Shared,
}

impl<'q> UringPlug<'q> {
    fn new(ring: &'q Arc<Shared>) -> UringPlug<'q> {
        ring.plug();
        UringPlug { ring }
    }

    /// Hands every queued SQE to the kernel now and keeps the plug.
    /// Returns how many were submitted.
    ///
    /// # Errors
    ///
    /// The io_uring_enter(2) error; the SQEs stay queued and the next
    /// submit or wait retries them.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
    /// let plug = queue.plug();
    /// assert_eq!(plug.flush()?, 0); // nothing queued yet
    /// # drop(plug);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn flush(&self) -> Result<usize> {
        self.ring.flush()
    }
}

impl Drop for UringPlug<'_> {
    fn drop(&mut self) {
        // An error leaves the SQEs queued: the next submit or wait hands
        // them over.
        self.ring.unplug();
    }
}

impl fmt::Debug for UringPlug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UringPlug").finish_non_exhaustive()
    }
}

static_assertions::assert_impl_all!(UringQueue: Send, Sync);

impl UringQueue {
    /// Options for a queue: depth, ring setup flags, alignment and
    /// capability overrides, file registration. The one way to make a
    /// queue.
    ///
    /// # Examples
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
            single_issuer: false,
            align: None,
            caps: None,
            register_files: false,
            max_files: DEFAULT_MAX_FILES,
        }
    }

    /// Whether the ring runs with `IORING_SETUP_COOP_TASKRUN` (asked for
    /// with [`UringBuilder::coop_taskrun`] and supported by the kernel).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
    /// assert!(!queue.is_coop_taskrun()); // not asked for
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn is_coop_taskrun(&self) -> bool {
        self.h.ring.coop_taskrun
    }

    /// Whether the ring runs with `IORING_SETUP_SINGLE_ISSUER |
    /// IORING_SETUP_DEFER_TASKRUN` (asked for with
    /// [`UringBuilder::single_issuer`] and supported by the kernel).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
    /// assert!(!queue.is_single_issuer()); // not asked for
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn is_single_issuer(&self) -> bool {
        self.h.ring.issuer.is_some()
    }

    /// Most operations in flight at once (the SQ size), over all files.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().depth(8).open("/var/tmp/disk.img")?;
    /// assert_eq!(queue.depth(), 8);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn depth(&self) -> usize {
        self.h.ring.depth
    }

    /// Asynchronous requests (reads, writes, fsyncs) submitted and not yet
    /// reaped, on every file of the ring.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    /// use iov_iter::buf::OwnedIter;
    /// use iov_iter::dio::DirectIo;
    /// use iov_iter::kiocb::Kiocb;
    /// use iov_iter::{Dest, Page};
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
    /// let (mut kiocb, fut) = Kiocb::new_async_with(0, OwnedIter::<Dest, _>::new(Page::new()));
    /// assert!(queue.submit(&mut kiocb)?.is_queued());
    /// assert!(queue.in_flight() <= 1); // 0 once reaped
    /// queue.block_on(fut);
    /// assert_eq!(queue.in_flight(), 0);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn in_flight(&self) -> usize {
        self.h.ring.in_flight()
    }

    /// SQEs in the submission queue that the kernel has not been handed yet
    /// (held back by a [`UringPlug`], or left by a failed submit).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
    /// assert_eq!(queue.unsubmitted(), 0);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn unsubmitted(&self) -> usize {
        self.h.ring.unsubmitted()
    }

    /// Starts deferring submission (`blk_start_plug`): until the returned
    /// plug ends, asynchronous requests ([`DirectIo::submit`] with an async
    /// kiocb, [`UringQueue::fsync`] with one) on any file of the ring only
    /// queue their SQE, and the plug's end (or [`UringPlug::flush`]) hands
    /// all of them to the kernel with one `io_uring_enter`, as liburing's
    /// prepare-then-`io_uring_submit` does. A burst of N requests then
    /// costs one system call instead of N.
    ///
    /// Use it where a burst is ready at once (a virtqueue's worth of
    /// descriptors, a readahead window). Each request waits in the SQ until
    /// the burst ends, so plugging a trickle of requests that would
    /// otherwise go out one by one lowers the device's effective queue
    /// depth (BENCHMARKS.md shows by how much).
    ///
    /// Nothing waits on a plug: anything that waits on this queue
    /// ([`UringQueue::wait`], [`DirectIo::block_on`], a sync kiocb, a
    /// submission into a full queue) and [`UringQueue::reap`] submit what
    /// is queued first, like the kernel flushing a task's plug when it
    /// sleeps. Plugs nest (the last to end submits) and are per ring, not
    /// per thread: while one is alive, other threads' async submissions on
    /// this ring wait for it too, so hold it around a burst, not for long.
    /// A plug that is leaked with [`core::mem::forget`] leaves submission to
    /// the next wait or reap.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    /// use iov_iter::buf::OwnedIter;
    /// use iov_iter::dio::DirectIo;
    /// use iov_iter::kiocb::Kiocb;
    /// use iov_iter::{Dest, PAGE_SIZE, Page};
    ///
    /// let queue = UringQueue::builder().depth(32).open("/var/tmp/disk.img")?;
    /// let mut futs = Vec::new();
    /// {
    ///     let _plug = queue.plug();
    ///     for i in 0..16u64 {
    ///         let buf = OwnedIter::<Dest, _>::new(Page::new());
    ///         let (mut kiocb, fut) = Kiocb::new_async_with(i * PAGE_SIZE as u64, buf);
    ///         assert!(queue.submit(&mut kiocb)?.is_queued());
    ///         futs.push(fut);
    ///     }
    /// } // one io_uring_enter submits all 16
    /// for fut in futs {
    ///     assert_eq!(queue.block_on(fut).result, Ok(PAGE_SIZE));
    /// }
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "blk_start_plug")]
    #[doc(alias = "io_uring_submit")]
    pub fn plug(&self) -> UringPlug<'_> {
        self.h.plug()
    }

    /// Reaps every completion already posted and delivers it, without
    /// blocking (`io_uring_peek_cqe`). Also flushes SQEs a failed submit
    /// left in the ring. Returns the requests completed by this call; 0
    /// when another thread holds the ring (it delivers them).
    ///
    /// # Panics
    ///
    /// Raises again the first panic of a completion callback it ran, after
    /// running the others.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
    /// assert_eq!(queue.reap(), 0); // nothing in flight
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "io_uring_peek_cqe")]
    pub fn reap(&self) -> usize {
        self.h.ring.reap()
    }

    /// Blocks until this call has completed at least `min_complete`
    /// asynchronous requests, or none is in flight any more
    /// (`io_uring_enter` with `IORING_ENTER_GETEVENTS`). Returns how many
    /// it completed. The queue's [`DirectIo::drive`]; completes requests
    /// of every file on the ring.
    ///
    /// # Errors
    ///
    /// The io_uring_enter(2) error (other than EINTR, EAGAIN and EBUSY,
    /// which are retried); completions reaped before it are still
    /// delivered. Nothing is lost: requests stay in flight.
    ///
    /// # Panics
    ///
    /// As [`UringQueue::reap`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
    /// assert_eq!(queue.wait(1)?, 0); // nothing in flight: returns at once
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "io_uring_wait_cqe_nr")]
    #[doc(alias = "io_uring_enter")]
    pub fn wait(&self, min_complete: usize) -> Result<usize> {
        self.h.ring.wait(min_complete)
    }

    /// Waits until every asynchronous request in flight, on every file of
    /// the ring, has completed.
    ///
    /// # Errors
    ///
    /// As [`UringQueue::wait`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
    /// queue.drain()?;
    /// assert_eq!(queue.in_flight(), 0);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn drain(&self) -> Result<()> {
        while self.wait(usize::MAX)? > 0 {}
        Ok(())
    }

    /// Puts another `O_DIRECT` file on this queue's ring: a [`UringFile`],
    /// a [`DirectIo`] with the file's own alignment and capabilities (from
    /// `statx`, as [`DirectFile`] reports them), sharing the ring's depth,
    /// in-flight table, plugs, registered buffers and counters. With
    /// [`UringBuilder::register_files`], it takes a free slot of the
    /// registered-file table (`IORING_REGISTER_FILES_UPDATE`), if any.
    ///
    /// The handle keeps the ring alive; see [`UringFile`] for what dropping
    /// it, or the queue, does.
    ///
    /// # Errors
    ///
    /// None today (a refused or full file table means a plain descriptor);
    /// the `Result` leaves room for limits to come.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::file::DirectFile;
    /// use iov_iter::backend::uring::UringQueue;
    /// use iov_iter::dio::DirectIo;
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/a.img")?;
    /// let b = queue.add_file(DirectFile::open("/var/tmp/b.img")?)?;
    /// println!("b aligns to {:?}", b.dio_align());
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "IORING_REGISTER_FILES_UPDATE")]
    pub fn add_file(&self, file: DirectFile) -> Result<UringFile> {
        let (align, caps) = (file.dio_align(), file.caps());
        let ring = Arc::clone(&self.h.ring);
        Ok(UringFile::new(Handle::attach(
            ring,
            file.into_fd(),
            align,
            caps,
        )))
    }

    /// Whether the queue's file goes by a slot of the registered-file
    /// table (`IOSQE_FIXED_FILE`): [`UringBuilder::register_files`] was
    /// asked for and the kernel accepted the table.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let plain = UringQueue::builder().open("/var/tmp/disk.img")?;
    /// assert!(!plain.is_fixed_file());
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "IOSQE_FIXED_FILE")]
    pub fn is_fixed_file(&self) -> bool {
        self.h.is_fixed_file()
    }

    /// Allocates `count` zeroed buffers of `size` bytes each, at addresses
    /// aligned to `align` (one allocation, each buffer starting on a
    /// multiple of `align`), and registers them with the ring
    /// (`IORING_REGISTER_BUFFERS`, buffer `i` at index `i`): a
    /// [`FixedBufPool`] handing out [`FixedBuf`]s. From then on a read or
    /// write on this ring (any file) whose memory is one segment inside one
    /// registered buffer goes out as `IORING_OP_READ_FIXED` /
    /// `IORING_OP_WRITE_FIXED`, however that memory is owned or borrowed;
    /// anything else goes out as before.
    ///
    /// Where the kernel refuses the registration (`ENOMEM` past
    /// `RLIMIT_MEMLOCK`, `EPERM`, ...), the pool still works, with plain
    /// reads and writes ([`FixedBufPool::is_registered`] is `false`), and a
    /// later call may try again. The memory stays allocated while the pool,
    /// a buffer of it, or (once registered) the ring lives.
    ///
    /// For direct I/O, pick `align` at least the files' memory alignment
    /// (`dio_align().mem`) and `size` a multiple of their offset alignment.
    ///
    /// # Errors
    ///
    /// EINVAL ([`Error::InvalidArgument`]) when `count` is 0 or above
    /// 16384, `size` is 0 or above 1 GiB, or `align` is not a power of
    /// two; ENOMEM when the memory cannot be had; EBUSY when buffers are
    /// registered with this ring already (one pool per ring).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    /// use iov_iter::buf::OwnedIter;
    /// use iov_iter::dio::DirectIo;
    /// use iov_iter::kiocb::Kiocb;
    /// use iov_iter::Dest;
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
    /// let pool = queue.register_buffers(16, 65536, 4096)?;
    /// let buf = pool.get().unwrap();
    /// let (mut kiocb, done) = Kiocb::new_async_with(0, OwnedIter::<Dest, _>::new(buf));
    /// assert!(queue.submit(&mut kiocb)?.is_queued());
    /// let done = queue.block_on(done);
    /// assert_eq!(queue.stats().fixed_buffer_ops, u64::from(pool.is_registered()));
    /// # drop(done);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "IORING_REGISTER_BUFFERS")]
    #[doc(alias = "io_uring_register_buffers")]
    pub fn register_buffers(
        &self,
        count: usize,
        size: usize,
        align: usize,
    ) -> Result<FixedBufPool> {
        let ring = &self.h.ring;
        if ring.registered().is_some() {
            return Err(Error::Os(Errno::EBUSY));
        }
        let arena = Arc::new(Arena::new(count, size, align)?);
        let mut st = ring.lock();
        if ring.registered().is_some() {
            return Err(Error::Os(Errno::EBUSY));
        }
        let iov: Vec<UserIovec> = arena.iovecs();
        // SAFETY: `T` is inferred as the io-uring crate's `libc::iovec`
        // (from `register_buffers` below), which is `struct iovec`.
        let bufs = unsafe { iovec_slice(&iov) };
        // SAFETY: the iovecs describe the arena's buffers, which stay
        // allocated for as long as the registration lasts: on success the
        // ring keeps the arena (`set_registered`) until it is freed, which
        // is what ends the registration. The kernel reaches the memory
        // only through the pages it pinned here, and only for the fixed
        // SQEs this module pushes, whose memory a request owns or borrows.
        let registered = unsafe { st.ring.submitter().register_buffers(bufs) }.is_ok();
        if registered {
            ring.set_registered(&mut st, Registered::new(Arc::clone(&arena)));
        }
        Ok(FixedBufPool::new(arena, registered))
    }

    /// Flushes the queue's file to stable storage (`IORING_OP_FSYNC`;
    /// with `datasync`, `IORING_FSYNC_DATASYNC`: `fdatasync` semantics,
    /// the data and only the metadata needed to read it).
    ///
    /// The kiocb contract holds: a sync kiocb waits for it and gets
    /// [`Submitted::Done`]`(0)`; an async kiocb is queued
    /// ([`Submitted::Queued`], deferred by a plug like any async request)
    /// and its completion runs exactly once, with `Ok(0)` or the error, at
    /// the kiocb's position (which an fsync does not move). The kiocb's
    /// flags and priority do not apply.
    ///
    /// As with fsync(2), what it makes durable is the writes that
    /// *completed* before it started: io_uring runs requests in flight
    /// together, so an fsync submitted while writes are still in flight
    /// need not cover them. Wait for the writes' completions first.
    ///
    /// # Errors
    ///
    /// A sync kiocb: the fsync's errno (EIO: writeback failed; ...), or an
    /// io_uring_enter(2) error. An async kiocb: EINVAL when it was queued
    /// already (nothing changes); errors after that come through its
    /// completion.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    /// use iov_iter::dio::DirectIo;
    /// use iov_iter::kiocb::{Kiocb, Submitted};
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
    /// // ... writes, completed ...
    /// assert_eq!(queue.fsync(&mut Kiocb::new_sync(0), false)?, Submitted::Done(0));
    ///
    /// let (mut kiocb, done) = Kiocb::new_async(0);
    /// assert!(queue.fsync(&mut kiocb, true)?.is_queued());
    /// assert_eq!(queue.block_on(done).result, Ok(0));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "IORING_OP_FSYNC")]
    #[doc(alias = "IORING_FSYNC_DATASYNC")]
    #[doc(alias = "fdatasync")]
    pub fn fsync(&self, kiocb: &mut Kiocb, datasync: bool) -> Result<Submitted> {
        self.h.fsync(kiocb, datasync)
    }

    /// Counts of the SQEs pushed on this ring, every file's: fixed-buffer
    /// versus plain reads and writes, fsyncs, registered-file SQEs.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
    /// let s = queue.stats();
    /// assert_eq!((s.fixed_buffer_ops, s.plain_ops, s.fsyncs, s.fixed_file_ops), (0, 0, 0, 0));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn stats(&self) -> UringStats {
        self.h.ring.stats()
    }
}

impl DirectIo for UringQueue {
    fn dio_align(&self) -> DioAlign {
        self.h.dio_align()
    }

    fn caps(&self) -> FileCaps {
        self.h.caps()
    }

    fn async_mode(&self) -> AsyncMode {
        AsyncMode::Queued
    }

    /// One `IORING_OP_READV` / `IORING_OP_WRITEV` over the borrowed `iov`
    /// (`READ` / `WRITE` for one segment, `READ_FIXED` / `WRITE_FIXED` for
    /// one inside a registered buffer), waiting for its CQE before
    /// returning (so the borrow outlives the kernel's use). A CQE of
    /// `-EINTR` is resubmitted.
    unsafe fn transfer(
        &self,
        rw: RwType,
        pos: u64,
        iov: &[UserIovec],
        flags: RwfFlags,
    ) -> Result<usize> {
        // SAFETY: forwarded with the caller's promises.
        unsafe { self.h.transfer(rw, pos, iov, flags) }
    }

    /// Pushes the request's SQE (unless plugged, submits it) and keeps the
    /// request until its CQE is reaped. Waits for room when the queue is
    /// full; a failure to submit completes the request with the error.
    fn start(&self, io: AsyncIo) {
        self.h.start(io);
    }

    fn drive(&self, min_complete: usize) -> Result<usize> {
        self.wait(min_complete)
    }
}

impl AsFd for UringQueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.h.as_fd()
    }
}

impl fmt::Debug for UringQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let in_flight = self.h.ring.try_lock().map(|st| st.ops.owned);
        f.debug_struct("UringQueue")
            .field("fd", &self.h.raw_fd())
            .field("depth", &self.depth())
            .field("align", &self.h.dio_align())
            .field("fixed_file", &self.is_fixed_file())
            .field("in_flight", &in_flight)
            .finish()
    }
}
