//! The io_uring direct-I/O backend: [`UringQueue`], truly asynchronous
//! `IORING_OP_READV` / `IORING_OP_WRITEV` on one `O_DIRECT` file
//! (`IORING_OP_READ` / `IORING_OP_WRITE` for a single segment), behind the
//! crate's one I/O contract ([`DirectIo`]). Requires the `uring` feature
//! (Linux 5.5 or later; single-segment `READ` / `WRITE` from 5.6, the
//! [`UringBuilder::coop_taskrun`] option from 5.19).
//!
//! Linux reference: `io_uring/rw.c` (`io_prep_rw`, `io_read`, `io_write`),
//! `io_uring/cancel.c` (`IORING_OP_ASYNC_CANCEL`), `fs/iomap/direct-io.c`
//! (`-EIOCBQUEUED`, `ki_complete`). Man pages: io_uring_enter(2),
//! io_uring_setup(2), preadv2(2), statx(2) (`STATX_DIOALIGN`), open(2)
//! (`O_DIRECT`).
//!
//! # Buffer lifetime: how this is sound
//!
//! Memory handed to the kernel stays valid until its completion (CQE)
//! arrives, whatever the caller does meanwhile. Three rules give that:
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
//! 3. **Wait on drop of the ring.** Dropping a [`UringQueue`] with I/O in
//!    flight submits an `IORING_OP_ASYNC_CANCEL` for every request, then
//!    waits for *every* outstanding CQE, completing each request (cancelled
//!    ones with `ECANCELED`, others normally, buffers handed back), before
//!    it frees the ring. A drop therefore blocks for as long as the slowest
//!    in-flight I/O takes. Should waiting fail (a broken ring), the queue
//!    leaks the ring and every in-flight request rather than free or hand
//!    back memory the kernel may still write: those completions never run.
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
//! queue.submit(&mut kiocb)?;
//! let back = queue.block_on(done).buf.into_inner();
//! assert_eq!(back.len(), 8192);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod sqe;
mod table;

use std::fmt;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use io_uring::{IoUring, opcode, types};

use self::sqe::{cqe_result, has_single_ops, io_err, retryable, rw_entry, setup_ring};
use self::table::{CANCEL_KEY, OpTable, Reaped, Sink};
use crate::backend::file::DirectFile;
use crate::dio::{AsyncIo, AsyncMode, DioAlign, DirectIo};
use crate::error::{Errno, Error, Result};
use crate::import::UIO_MAXIOV;
use crate::kiocb::{FileCaps, RwType, RwfFlags};
use crate::seg::UserIovec;

/// Completes reaped requests outside the lock: every one, even when some
/// completion panics (the first panic is raised again after).
fn deliver(reaped: Reaped) {
    crate::sync::run_all(reaped, |(io, res)| io.complete(res));
}

struct State {
    /// Dropped by hand in `UringQueue::drop`, after every CQE arrived (or
    /// leaked when waiting failed).
    ring: ManuallyDrop<IoUring>,
    ops: OpTable,
    /// Live [`UringPlug`]s: while non-zero, async submissions stay in the
    /// SQ until a plug ends or somebody waits.
    plugged: usize,
}

impl State {
    /// Reaps every available CQE; owned requests go to `out`.
    fn reap(&mut self, out: &mut Reaped) {
        let State { ring, ops, .. } = self;
        for cqe in ring.completion() {
            ops.complete(cqe.user_data(), cqe.result(), out);
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
    fn make_room(&mut self, out: &mut Reaped) -> Result<()> {
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

    /// Cancels every owned request, then waits for every CQE. `false`
    /// when the ring failed and operations are still in flight.
    fn cancel_and_drain(&mut self, out: &mut Reaped) -> bool {
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

    fn drain(&mut self, out: &mut Reaped) -> bool {
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

/// An io_uring instance doing direct I/O on one `O_DIRECT` file, behind
/// [`DirectIo`]: asynchronous owned-buffer requests are in flight when
/// [`DirectIo::submit`] returns ([`AsyncMode::Queued`]), and complete when
/// the queue is driven ([`UringQueue::wait`], [`UringQueue::reap`],
/// [`DirectIo::block_on`]). See the [module docs](self) for the
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
/// outstanding completion** before freeing the ring.
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
}

/// How to set up a [`UringQueue`]: [`UringQueue::builder`], then
/// [`build`](UringBuilder::build) on an open [`DirectFile`] or
/// [`open`](UringBuilder::open) a path.
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct UringBuilder {
    depth: u32,
    coop_taskrun: bool,
    align: Option<DioAlign>,
    caps: Option<FileCaps>,
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
    /// batches (BENCHMARKS.md measures what it is worth).
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

    /// Replaces the alignment the file reports (for a device with stricter
    /// rules than it reports, or to test misalignment handling). The kernel
    /// still enforces its own, with `EINVAL`.
    pub fn align(mut self, align: DioAlign) -> UringBuilder {
        self.align = Some(align);
        self
    }

    /// Replaces the capabilities the file reports, for `RWF_*` validation
    /// ([`DirectIo::caps`]).
    pub fn caps(mut self, caps: FileCaps) -> UringBuilder {
        self.caps = Some(caps);
        self
    }

    /// A queue on an open [`DirectFile`], taking over its alignment and
    /// capabilities (unless replaced here).
    ///
    /// # Errors
    ///
    /// EINVAL when the depth is 0; the io_uring_setup(2) error (ENOSYS: no
    /// io_uring; EPERM: disabled by `kernel.io_uring_disabled`; ENOMEM).
    pub fn build(self, file: DirectFile) -> Result<UringQueue> {
        if self.depth == 0 {
            return Err(Error::InvalidArgument("io_uring queue depth 0"));
        }
        let (ring, coop_taskrun) =
            setup_ring(self.depth.min(4096), self.coop_taskrun).map_err(io_err)?;
        let depth = ring.params().sq_entries() as usize;
        let single_ops = has_single_ops(&ring);
        let align = self.align.unwrap_or(file.dio_align());
        let caps = self.caps.unwrap_or(file.caps());
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
        })
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

impl UringQueue {
    /// Options for a queue: depth, ring setup flags, alignment and
    /// capability overrides. The one way to make a queue.
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
            align: None,
            caps: None,
        }
    }

    /// Whether the ring runs with `IORING_SETUP_COOP_TASKRUN` (asked for
    /// with [`UringBuilder::coop_taskrun`] and supported by the kernel).
    pub fn is_coop_taskrun(&self) -> bool {
        self.coop_taskrun
    }

    /// Most operations in flight at once (the SQ size).
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Asynchronous requests submitted and not yet reaped.
    pub fn in_flight(&self) -> usize {
        self.lock().ops.owned
    }

    /// SQEs in the submission queue that the kernel has not been handed yet
    /// (held back by a [`UringPlug`], or left by a failed submit).
    pub fn unsubmitted(&self) -> usize {
        self.lock().ring.submission().len()
    }

    /// Starts deferring submission (`blk_start_plug`): until the returned
    /// plug ends, asynchronous requests ([`DirectIo::submit`] with an async
    /// kiocb) only queue their SQE, and the plug's end (or
    /// [`UringPlug::flush`]) hands all of them to the kernel with one
    /// `io_uring_enter`, as liburing's prepare-then-`io_uring_submit` does.
    /// A burst of N requests then costs one system call instead of N.
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
    /// sleeps. Plugs nest (the last to end submits) and are per queue, not
    /// per thread: while one is alive, other threads' async submissions on
    /// this queue wait for it too, so hold it around a burst, not for long.
    /// A plug that is leaked with [`core::mem::forget`] leaves submission to
    /// the next wait or reap.
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
    ///         queue.submit(&mut kiocb)?;
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
        self.lock().plugged += 1;
        UringPlug { queue: self }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No user code runs under the lock; after a panic in ours the table
        // still describes exactly what the kernel holds.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
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
    #[doc(alias = "io_uring_peek_cqe")]
    pub fn reap(&self) -> usize {
        let mut reaped = Reaped::new();
        {
            let mut st = match self.state.try_lock() {
                Ok(st) => st,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return 0,
            };
            let _ = st.ring.submit();
            st.reap(&mut reaped);
        }
        let n = reaped.len();
        deliver(reaped);
        n
    }

    /// Blocks until this call has completed at least `min_complete`
    /// asynchronous requests, or none is in flight any more
    /// (`io_uring_enter` with `IORING_ENTER_GETEVENTS`). Returns how many
    /// it completed. The queue's [`DirectIo::drive`].
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
    #[doc(alias = "io_uring_wait_cqe_nr")]
    #[doc(alias = "io_uring_enter")]
    pub fn wait(&self, min_complete: usize) -> Result<usize> {
        let mut got = 0;
        loop {
            let mut reaped = Reaped::new();
            let step = {
                let mut st = self.lock();
                st.reap(&mut reaped);
                if reaped.is_empty() && got < min_complete && st.ops.owned > 0 {
                    let r = st.enter_wait();
                    st.reap(&mut reaped);
                    r.map(|()| st.ops.owned)
                } else {
                    Ok(st.ops.owned)
                }
            };
            got += reaped.len();
            deliver(reaped);
            match step {
                Err(e) => return Err(io_err(e)),
                Ok(left) if got >= min_complete || left == 0 => return Ok(got),
                Ok(_) => {}
            }
        }
    }

    /// Waits until every asynchronous request in flight has completed.
    ///
    /// # Errors
    ///
    /// As [`UringQueue::wait`].
    pub fn drain(&self) -> Result<()> {
        while self.wait(usize::MAX)? > 0 {}
        Ok(())
    }

    /// One read or write SQE over borrowed memory, waited for; returns the
    /// raw CQE result.
    ///
    /// # Safety
    ///
    /// As [`DirectIo::transfer`].
    unsafe fn transfer_once(
        &self,
        rw: RwType,
        pos: u64,
        iov: &[UserIovec],
        flags: RwfFlags,
    ) -> Result<i32> {
        let mut reaped = Reaped::new();
        let res = (|| {
            let mut st = self.lock();
            st.make_room(&mut reaped)?;
            let key = st.ops.next_key();
            let fd = types::Fd(self.fd.as_raw_fd());
            let entry = rw_entry(rw, fd, iov, pos, 0, flags, self.single_ops).user_data(key);
            // SAFETY: `iov` and the memory it describes are valid for the
            // whole call (the caller's promise), and this function does not
            // return before the CQE of `key` is reaped below (or aborts the
            // process).
            unsafe { st.push(&entry) }?;
            st.ops.insert(Sink::Borrowed);
            let _ = st.ring.submit();
            loop {
                st.reap(&mut reaped);
                if let Some(res) = st.ops.take_done(key) {
                    return Ok(res);
                }
                if let Err(e) = st.enter_wait() {
                    ring_failed(&e);
                }
            }
        })();
        deliver(reaped);
        res
    }
}

/// The ring cannot be waited on while the kernel holds memory that will be
/// freed or reused when this thread returns: nothing safe remains.
#[cold]
fn ring_failed(e: &io::Error) -> ! {
    eprintln!("iov_iter: io_uring_enter failed with I/O in flight ({e}); aborting");
    std::process::abort()
}

impl DirectIo for UringQueue {
    fn dio_align(&self) -> DioAlign {
        self.align
    }

    fn caps(&self) -> FileCaps {
        self.caps
    }

    fn async_mode(&self) -> AsyncMode {
        AsyncMode::Queued
    }

    /// One `IORING_OP_READV` / `IORING_OP_WRITEV` over the borrowed `iov`
    /// (`READ` / `WRITE` for one segment), waiting for its CQE before
    /// returning (so the borrow outlives the kernel's use). A CQE of
    /// `-EINTR` is resubmitted.
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

    /// Pushes the request's SQE (unless plugged, submits it) and keeps the
    /// request until its CQE is reaped. Waits for room when the queue is
    /// full; a failure to submit completes the request with the error.
    fn start(&self, io: AsyncIo) {
        let mut reaped = Reaped::new();
        {
            let mut st = self.lock();
            let pushed = st.make_room(&mut reaped).and_then(|()| {
                if io.iovecs().len() > UIO_MAXIOV {
                    return Err(Error::TooManySegments(io.iovecs().len()));
                }
                let key = st.ops.next_key();
                let fd = types::Fd(self.fd.as_raw_fd());
                let entry = rw_entry(
                    io.rw(),
                    fd,
                    io.iovecs(),
                    io.pos(),
                    io.ioprio(),
                    io.flags(),
                    self.single_ops,
                )
                .user_data(key);
                // SAFETY: the SQE points into the request's iovec array and
                // the memory it describes, which stay valid (and reached by
                // nobody else) until the request completes; the request
                // moves into the table right below, under this lock, before
                // any CQE can be reaped, and leaves it only with its CQE.
                unsafe { st.push(&entry) }
            });
            match pushed {
                Ok(()) => {
                    st.ops.insert(Sink::Owned(io));
                    // An error leaves the SQE in the ring: the next
                    // io_uring_enter submits it. Under a plug, that is the
                    // plug's end or the next wait.
                    if st.plugged == 0 {
                        let _ = st.ring.submit();
                    }
                }
                Err(e) => reaped.push((io, Err(e))),
            }
        }
        deliver(reaped);
    }

    fn drive(&self, min_complete: usize) -> Result<usize> {
        self.wait(min_complete)
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
    /// Waits on drop: cancels every in-flight request
    /// (`IORING_OP_ASYNC_CANCEL`), waits for every CQE and completes each
    /// request, then frees the ring; leaks both if the ring fails
    /// meanwhile. A completion that panics does not stop the others or
    /// leak the ring: the panic is raised again once the ring is freed.
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        let mut reaped = Reaped::new();
        let drained = st.cancel_and_drain(&mut reaped);
        let mut panic = None;
        for (io, res) in reaped {
            if let Err(p) =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| io.complete(res)))
            {
                panic.get_or_insert(p);
            }
        }
        if drained {
            // SAFETY: every CQE has been reaped: the kernel holds no memory
            // of ours, and the ring is not used after this.
            unsafe { ManuallyDrop::drop(&mut st.ring) };
        } else {
            eprintln!("iov_iter: io_uring ring failed on drop; leaking in-flight buffers");
            st.ops.leak_all();
        }
        if let Some(p) = panic {
            if !std::thread::panicking() {
                std::panic::resume_unwind(p);
            }
        }
    }
}
