//! The ring one [`UringQueue`](super::UringQueue) and its
//! [`UringFile`](super::UringFile)s share: the io_uring instance, the
//! in-flight table, the file table, the registered buffers and the
//! counters, behind one lock; freed (after every CQE) when the last handle
//! goes.

use std::io;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, TryLockError};
use std::thread::ThreadId;

use io_uring::{IoUring, opcode, squeue};

use super::file_table::{FileId, FileTable};
use super::fixed_buf::Registered;
use super::sqe::{io_err, retryable};
use super::table::{CANCEL_KEY, OpTable, Owned, Reaped, Sink};
use crate::error::{Errno, Error, Result};
use crate::seg::UserIovec;

/// Completes reaped requests outside the lock: every one, even when some
/// completion panics (the first panic is raised again after).
/// Drains `reaped` in place: the array lives on the caller's stack and is
/// not moved (by value it is a copy of every inline slot, full or not).
pub(super) fn deliver(reaped: &mut Reaped) {
    if !reaped.is_empty() {
        crate::sync::run_all(reaped.drain(..), |(op, res)| op.complete(res));
    }
}

/// The ring cannot be waited on while the kernel holds memory that will be
/// freed or reused when this thread returns: nothing safe remains.
#[cold]
pub(super) fn ring_failed(e: &io::Error) -> ! {
    eprintln!("iov_iter: io_uring_enter failed with I/O in flight ({e}); aborting");
    std::process::abort()
}

/// What the ring holds under its lock.
pub(super) struct State {
    /// Dropped by hand in `Shared::drop`, after every CQE arrived (or
    /// leaked when waiting failed).
    pub(super) ring: ManuallyDrop<IoUring>,
    pub(super) ops: OpTable,
    pub(super) files: FileTable,
    /// Live [`UringPlug`](super::UringPlug)s: while non-zero, async
    /// submissions stay in the SQ until a plug ends or somebody waits.
    pub(super) plugged: usize,
}

impl State {
    /// Reaps every available CQE; owned requests go to `out`. A file whose
    /// handle is gone closes with its last operation's CQE.
    pub(super) fn reap(&mut self, out: &mut Reaped) {
        let State {
            ring, ops, files, ..
        } = self;
        let (sub, _, cq) = ring.split();
        for cqe in cq {
            if let Some(file) = ops.complete(cqe.user_data(), cqe.result(), out) {
                files.op_done(&sub, file);
            }
        }
    }

    /// Submits what is queued and reaps what is posted, never blocking. A
    /// `DEFER_TASKRUN` ring posts CQEs only for an enter that asks for
    /// events; the submit asks when the kernel flags pending work.
    pub(super) fn submit_and_reap(&mut self, out: &mut Reaped) {
        let _ = self.ring.submit();
        self.reap(out);
    }

    /// Submits what is queued and blocks until at least one CQE is
    /// available. Transient errors count as a spurious wakeup.
    pub(super) fn enter_wait(&mut self) -> io::Result<()> {
        match self.ring.submit_and_wait(1) {
            Ok(_) => Ok(()),
            Err(e) if retryable(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Waits until the table has room for one more operation.
    pub(super) fn make_room(&mut self, out: &mut Reaped) -> Result<()> {
        loop {
            self.reap(out);
            if !self.ops.is_full() {
                return Ok(());
            }
            self.enter_wait().map_err(io_err)?;
        }
    }

    /// Pushes `entry` (whose `user_data` is the table's next key).
    ///
    /// # Safety
    ///
    /// Every address in `entry` must stay valid as the opcode requires until
    /// the CQE of that key is reaped, which the caller ensures by recording
    /// the owner ([`State::track`]) right after this succeeds, under the
    /// same lock.
    pub(super) unsafe fn push(&mut self, entry: &squeue::Entry) -> Result<()> {
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

    /// Records the owner of the SQE just pushed, naming `file`; returns
    /// its key.
    pub(super) fn track(&mut self, sink: Sink, file: FileId) -> u64 {
        self.files.op_started(file);
        self.ops.insert(sink, file)
    }

    /// Submits unless a plug holds submissions back. An error leaves the
    /// SQEs in the ring: the next io_uring_enter submits them.
    pub(super) fn kick(&mut self) {
        if self.plugged == 0 {
            let _ = self.ring.submit();
        }
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

/// What one submitted SQE was, for [`UringStats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum OpKind {
    /// `READ_FIXED` / `WRITE_FIXED`.
    FixedBuf,
    /// `READ` / `WRITE` / `READV` / `WRITEV`.
    Plain,
    /// `FSYNC`.
    Fsync,
}

/// Counts of the SQEs a [`UringQueue`](super::UringQueue)'s ring has
/// pushed, over all its files, since it was built
/// ([`UringQueue::stats`](super::UringQueue::stats)): what tells whether
/// the registered-buffer and registered-file paths were taken.
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
/// let pool = queue.register_buffers(4, 4096, 4096)?;
/// let buf = pool.get().expect("a free buffer");
/// let (mut kiocb, done) = Kiocb::new_async_with(0, OwnedIter::<Dest, _>::new(buf));
/// assert!(queue.submit(&mut kiocb)?.is_queued());
/// queue.block_on(done);
/// let stats = queue.stats();
/// assert_eq!(stats.fixed_buffer_ops + stats.plain_ops, 1);
/// if pool.is_registered() {
///     assert_eq!(stats.fixed_buffer_ops, 1); // went out as IORING_OP_READ_FIXED
/// }
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct UringStats {
    /// Reads and writes that went out as `IORING_OP_READ_FIXED` /
    /// `IORING_OP_WRITE_FIXED`: one segment inside a registered buffer.
    #[doc(alias = "IORING_OP_READ_FIXED")]
    #[doc(alias = "IORING_OP_WRITE_FIXED")]
    pub fixed_buffer_ops: u64,
    /// Reads and writes that went out as `IORING_OP_READ` / `WRITE` /
    /// `READV` / `WRITEV`: memory outside the registered buffers, or more
    /// than one segment.
    pub plain_ops: u64,
    /// `IORING_OP_FSYNC`s.
    #[doc(alias = "IORING_OP_FSYNC")]
    pub fsyncs: u64,
    /// SQEs of any of these that named a registered file
    /// (`IOSQE_FIXED_FILE`) instead of a descriptor.
    #[doc(alias = "IOSQE_FIXED_FILE")]
    pub fixed_file_ops: u64,
}

#[derive(Default)]
struct Counters {
    fixed_buffer: AtomicU64,
    plain: AtomicU64,
    fsync: AtomicU64,
    fixed_file: AtomicU64,
}

/// The state the queue and its files share.
pub(super) struct Shared {
    state: Mutex<State>,
    pub(super) depth: usize,
    pub(super) coop_taskrun: bool,
    /// Set up with `IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN`: only this
    /// thread (the one that built the queue) may push SQEs or wait.
    pub(super) issuer: Option<ThreadId>,
    /// The kernel has `IORING_OP_READ` / `IORING_OP_WRITE`.
    pub(super) single_ops: bool,
    /// The registered buffers, once registered: kept (and their memory
    /// with them) until the ring is freed, which ends the registration.
    bufs: OnceLock<Registered>,
    counters: Counters,
}

static_assertions::assert_impl_all!(Shared: Send, Sync);

impl Shared {
    pub(super) fn new(
        ring: IoUring,
        files: FileTable,
        depth: usize,
        coop_taskrun: bool,
        issuer: Option<ThreadId>,
        single_ops: bool,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(State {
                ring: ManuallyDrop::new(ring),
                ops: OpTable::new(depth),
                files,
                plugged: 0,
            }),
            depth,
            coop_taskrun,
            issuer,
            single_ops,
            bufs: OnceLock::new(),
            counters: Counters::default(),
        })
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // No user code runs under the lock; after a panic in ours the table
        // still describes exactly what the kernel holds.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The lock if nobody holds it.
    pub(super) fn try_lock(&self) -> Option<MutexGuard<'_, State>> {
        match self.state.try_lock() {
            Ok(st) => Some(st),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// `EEXIST` (what the kernel answers a second submitter) on a ring
    /// set up for a single issuer, from any other thread than its own:
    /// checked before anything is pushed, since an SQE pushed by another
    /// thread would wait in the SQ for the issuer's next entry (a borrowed
    /// buffer's SQE would outlive the borrow).
    pub(super) fn check_issuer(&self) -> Result<()> {
        match self.issuer {
            Some(id) if std::thread::current().id() != id => Err(Error::Os(Errno::EEXIST)),
            _ => Ok(()),
        }
    }

    /// The registered buffers, if any.
    pub(super) fn registered(&self) -> Option<&Registered> {
        self.bufs.get()
    }

    /// Keeps `bufs` (registered with the kernel just now, under the lock
    /// `_st` proves is held) for the life of the ring.
    pub(super) fn set_registered(&self, _st: &mut State, bufs: Registered) {
        if self.bufs.set(bufs).is_err() {
            unreachable!("buffers registered twice under the lock");
        }
    }

    /// The registered-buffer index holding all of `iov`, if any.
    pub(super) fn fixed_index(&self, iov: &UserIovec) -> Option<u16> {
        self.registered()?.lookup(iov.base.cast_const(), iov.len)
    }

    /// Counts one pushed SQE.
    pub(super) fn count(&self, kind: OpKind, fixed_file: bool) {
        let c = &self.counters;
        let n = match kind {
            OpKind::FixedBuf => &c.fixed_buffer,
            OpKind::Plain => &c.plain,
            OpKind::Fsync => &c.fsync,
        };
        n.fetch_add(1, Ordering::Relaxed);
        if fixed_file {
            c.fixed_file.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn stats(&self) -> UringStats {
        let c = &self.counters;
        UringStats {
            fixed_buffer_ops: c.fixed_buffer.load(Ordering::Relaxed),
            plain_ops: c.plain.load(Ordering::Relaxed),
            fsyncs: c.fsync.load(Ordering::Relaxed),
            fixed_file_ops: c.fixed_file.load(Ordering::Relaxed),
        }
    }

    /// Owned operations (reads, writes, fsyncs) in flight, every file's.
    pub(super) fn in_flight(&self) -> usize {
        self.lock().ops.owned
    }

    pub(super) fn unsubmitted(&self) -> usize {
        self.lock().ring.submission().len()
    }

    pub(super) fn plug(&self) {
        self.lock().plugged += 1;
    }

    pub(super) fn unplug(&self) {
        let mut st = self.lock();
        st.plugged -= 1;
        st.kick();
    }

    pub(super) fn flush(&self) -> Result<usize> {
        self.lock().ring.submit().map_err(io_err)
    }

    /// [`UringQueue::reap`](super::UringQueue::reap).
    pub(super) fn reap(&self) -> usize {
        let mut reaped = Reaped::new();
        {
            let Some(mut st) = self.try_lock() else {
                return 0;
            };
            st.submit_and_reap(&mut reaped);
        }
        let n = reaped.len();
        deliver(&mut reaped);
        n
    }

    /// [`UringQueue::wait`](super::UringQueue::wait).
    pub(super) fn wait(&self, min_complete: usize) -> Result<usize> {
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
                    if reaped.is_empty() && min_complete == 0 && st.ops.owned > 0 {
                        st.submit_and_reap(&mut reaped);
                    }
                    Ok(st.ops.owned)
                }
            };
            got += reaped.len();
            deliver(&mut reaped);
            match step {
                Err(e) => return Err(io_err(e)),
                Ok(left) if got >= min_complete || left == 0 => return Ok(got),
                Ok(_) => {}
            }
        }
    }

    /// Pushes `entry` for memory borrowed by the calling thread (or none),
    /// naming `file`, and waits for its CQE; returns the raw result.
    ///
    /// # Safety
    ///
    /// Every address in `entry` stays valid as its opcode requires for the
    /// whole call (this returns only after the CQE, or aborts the process).
    pub(super) unsafe fn run_borrowed(
        &self,
        entry: squeue::Entry,
        file: FileId,
        kind: OpKind,
        fixed_file: bool,
    ) -> Result<i32> {
        self.check_issuer()?;
        let mut reaped = Reaped::new();
        let res = (|| {
            let mut st = self.lock();
            st.make_room(&mut reaped)?;
            let key = st.ops.next_key();
            let entry = entry.user_data(key);
            // SAFETY: the memory `entry` points to stays valid for the
            // whole call (the caller's promise), and this function does not
            // return before the CQE of `key` is reaped below (or aborts the
            // process).
            unsafe { st.push(&entry) }?;
            st.track(Sink::Borrowed, file);
            self.count(kind, fixed_file);
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
        deliver(&mut reaped);
        res
    }

    /// Pushes `entry` for the owned operation `op`, naming `file`, and
    /// keeps `op` until the CQE (unless plugged, submits). Waits for room
    /// when the table is full; a failure completes `op` with the error.
    ///
    /// # Safety
    ///
    /// Every address in `entry` points into memory `op` owns (or none), as
    /// its opcode requires.
    pub(super) unsafe fn run_owned(
        &self,
        entry: Result<squeue::Entry>,
        op: Owned,
        file: FileId,
        kind: OpKind,
        fixed_file: bool,
    ) {
        let mut reaped = Reaped::new();
        if let Err(e) = self.check_issuer() {
            reaped.push((op, Err(e)));
            deliver(&mut reaped);
            return;
        }
        {
            let mut st = self.lock();
            let pushed = st.make_room(&mut reaped).and_then(|()| {
                let entry = entry?.user_data(st.ops.next_key());
                // SAFETY: the SQE points into memory `op` owns (the
                // caller's promise), which stays valid, and reached by
                // nobody else, until `op` completes; `op` moves into the
                // table right below, under this lock, before any CQE can be
                // reaped, and leaves it only with its CQE.
                unsafe { st.push(&entry) }
            });
            match pushed {
                Ok(()) => {
                    st.track(Sink::Owned(op), file);
                    self.count(kind, fixed_file);
                    // Under a plug, the plug's end or the next wait submits.
                    st.kick();
                }
                Err(e) => reaped.push((op, Err(e))),
            }
        }
        deliver(&mut reaped);
    }

    /// The handle of `file` is gone.
    pub(super) fn close_file(&self, file: FileId) {
        let mut st = self.lock();
        let State { ring, files, .. } = &mut *st;
        files.close(&ring.submitter(), file);
    }
}

impl Drop for Shared {
    /// Waits on drop: cancels every in-flight request of every file
    /// (`IORING_OP_ASYNC_CANCEL`), waits for every CQE and completes each
    /// request, then frees the ring; leaks both if the ring fails
    /// meanwhile. A completion that panics does not stop the others or
    /// leak the ring: the panic is raised again once the ring is freed.
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        let mut reaped = Reaped::new();
        let drained = st.cancel_and_drain(&mut reaped);
        let mut panic = None;
        for (op, res) in reaped {
            if let Err(p) =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op.complete(res)))
            {
                panic.get_or_insert(p);
            }
        }
        if drained {
            // SAFETY: every CQE has been reaped: the kernel holds no memory
            // of ours, and the ring is not used after this. The registered
            // buffers' memory (`bufs`) is freed after this, with the fields.
            unsafe { ManuallyDrop::drop(&mut st.ring) };
        } else {
            eprintln!("iov_iter: io_uring ring failed on drop; leaking in-flight buffers");
            st.ops.leak_all();
            // The kernel may still write the registered buffers too.
            if let Some(bufs) = self.bufs.take() {
                core::mem::forget(bufs);
            }
        }
        if let Some(p) = panic {
            if !std::thread::panicking() {
                std::panic::resume_unwind(p);
            }
        }
    }
}
