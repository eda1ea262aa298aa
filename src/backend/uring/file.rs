//! One file on a ring: [`UringFile`], and the per-file I/O both it and
//! [`UringQueue`](super::UringQueue) run (SQE choice, borrowed and owned
//! transfers, fsync).

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use super::UringPlug;
use super::file_table::FileId;
use super::ring::{OpKind, Shared};
use super::sqe::{RwReq, Target, cqe_result, fsync_entry, rw_entry, rw_fixed_entry};
use super::table::Owned;
use crate::dio::{AsyncIo, DioAlign, DirectIo};
use crate::error::{Errno, Error, Result};
use crate::import::UIO_MAXIOV;
use crate::kiocb::{FileCaps, Kiocb, RwType, RwfFlags, Submitted};
use crate::seg::UserIovec;

/// A file's place on a ring, and the I/O on it.
pub(super) struct Handle {
    /// The handle's reference to the descriptor (the file table holds
    /// another until the last operation naming it is done).
    fd: Arc<OwnedFd>,
    id: FileId,
    target: Target,
    align: DioAlign,
    caps: FileCaps,
    /// Last: released after the file is closed in the table.
    pub(super) ring: Arc<Shared>,
}

impl Handle {
    /// Adds `fd` to the ring's file table (its registered-file table when
    /// that is on and has room).
    pub(super) fn attach(
        ring: Arc<Shared>,
        fd: OwnedFd,
        align: DioAlign,
        caps: FileCaps,
    ) -> Handle {
        let fd = Arc::new(fd);
        let (id, target) = {
            let mut st = ring.lock();
            let st = &mut *st;
            st.files.add(&st.ring.submitter(), Arc::clone(&fd))
        };
        Handle {
            fd,
            id,
            target,
            align,
            caps,
            ring,
        }
    }

    pub(super) fn is_fixed_file(&self) -> bool {
        self.target.is_fixed()
    }

    pub(super) fn dio_align(&self) -> DioAlign {
        self.align
    }

    pub(super) fn caps(&self) -> FileCaps {
        self.caps
    }

    pub(super) fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    pub(super) fn plug(&self) -> UringPlug<'_> {
        UringPlug::new(&self.ring)
    }

    /// The SQE for a read or write over `iov` (not empty, at most
    /// `u32::MAX` entries): `READ_FIXED` / `WRITE_FIXED` when it is one
    /// segment inside a buffer registered with this ring, else as
    /// [`rw_entry`] picks.
    fn rw_sqe(&self, req: RwReq, iov: &[UserIovec]) -> (io_uring::squeue::Entry, OpKind) {
        if let [one] = iov {
            if let Some(index) = self.ring.fixed_index(one) {
                if let Some(e) = rw_fixed_entry(req, self.target, one, index) {
                    return (e, OpKind::FixedBuf);
                }
            }
        }
        let e = rw_entry(req, self.target, iov, self.ring.single_ops);
        (e, OpKind::Plain)
    }

    /// [`DirectIo::transfer`]: one SQE over the borrowed `iov`, waited
    /// for; a CQE of `-EINTR` is resubmitted.
    ///
    /// # Safety
    ///
    /// As [`DirectIo::transfer`].
    pub(super) unsafe fn transfer(
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
        let req = RwReq {
            rw,
            pos,
            ioprio: 0,
            flags,
        };
        loop {
            // `iov` is not empty and its length fits the SQE's u32
            // (checked against UIO_MAXIOV above).
            let (entry, kind) = self.rw_sqe(req, iov);
            // SAFETY: `iov` and the memory it describes are valid for the
            // whole call (the caller's promise), and `run_borrowed` returns
            // only after the CQE.
            let res = unsafe {
                self.ring
                    .run_borrowed(entry, self.id, kind, self.target.is_fixed())
            }?;
            if res == -Errno::EINTR.raw() {
                continue;
            }
            return cqe_result(res);
        }
    }

    /// [`DirectIo::start`]: the request's SQE, pushed (unless plugged,
    /// submitted), the request kept until its CQE.
    pub(super) fn start(&self, io: AsyncIo) {
        let entry = if io.iovecs().len() > UIO_MAXIOV {
            Err(Error::TooManySegments(io.iovecs().len()))
        } else {
            Ok(self.rw_sqe(
                RwReq {
                    rw: io.rw(),
                    pos: io.pos(),
                    ioprio: io.ioprio(),
                    flags: io.flags(),
                },
                io.iovecs(),
            ))
        };
        let kind = entry.as_ref().map_or(OpKind::Plain, |&(_, k)| k);
        // SAFETY: the SQE points into the request's iovec array and the
        // memory it describes, which the request owns, valid and reached
        // by nobody else until it completes (the `AsyncIo` contract).
        unsafe {
            self.ring.run_owned(
                entry.map(|(e, _)| e),
                Owned::Io(io),
                self.id,
                kind,
                self.target.is_fixed(),
            );
        }
    }

    /// [`UringQueue::fsync`](super::UringQueue::fsync).
    pub(super) fn fsync(&self, kiocb: &mut Kiocb, datasync: bool) -> Result<Submitted> {
        let entry = fsync_entry(self.target, datasync);
        let fixed = self.target.is_fixed();
        if kiocb.is_sync() {
            loop {
                // SAFETY: an FSYNC SQE points to no memory.
                let res = unsafe {
                    self.ring
                        .run_borrowed(entry.clone(), self.id, OpKind::Fsync, fixed)
                }?;
                if res == -Errno::EINTR.raw() {
                    continue;
                }
                cqe_result(res)?;
                return Ok(Submitted::Done(0));
            }
        }
        let Some(completion) = kiocb.take_completion() else {
            return Err(Error::InvalidArgument("async kiocb already queued"));
        };
        // SAFETY: an FSYNC SQE points to no memory.
        unsafe {
            self.ring.run_owned(
                Ok(entry),
                Owned::Fsync(completion),
                self.id,
                OpKind::Fsync,
                fixed,
            );
        }
        Ok(Submitted::Queued)
    }
}

impl Drop for Handle {
    /// Closes the file once no operation names it any more; the ring goes
    /// with its last handle (waiting for every CQE first).
    fn drop(&mut self) {
        // The last handle leaves the file to the ring's teardown, which
        // closes every file after the last CQE. (A count above 1 that drops
        // meanwhile only costs a needless close here.)
        if Arc::strong_count(&self.ring) > 1 {
            self.ring.close_file(self.id);
        }
    }
}

impl AsFd for Handle {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Another `O_DIRECT` file on a [`UringQueue`](super::UringQueue)'s ring
/// ([`UringQueue::add_file`](super::UringQueue::add_file)), behind
/// [`DirectIo`] like the queue itself: its own alignment and capabilities,
/// the ring's depth, in-flight table, plugs, registered buffers and
/// counters. I/O on the queue and on its files is in flight together and
/// completes whichever of them is driven.
///
/// # Lifetime
///
/// Every handle (the queue and each file) keeps the ring alive. Dropping
/// a handle cancels nothing: its requests stay in flight and complete when
/// the ring is driven through another handle, and the file is closed once
/// the last of them is done (so no SQE waiting in the ring ever names a
/// descriptor that was closed or a registered slot that was reused).
/// Dropping the **last** handle, file or queue, cancels what is in flight
/// on every file (`IORING_OP_ASYNC_CANCEL`), waits for every CQE,
/// completes each request, and only then frees the ring; see the
/// [module docs](super).
///
/// # Examples
///
/// ```no_run
/// use iov_iter::backend::file::DirectFile;
/// use iov_iter::backend::uring::UringQueue;
/// use iov_iter::buf::{AlignedBuf, OwnedIter};
/// use iov_iter::dio::DirectIo;
/// use iov_iter::kiocb::{CompletionFuture, Kiocb};
/// use iov_iter::Source;
///
/// fn write(dev: &impl DirectIo, byte: u8) -> iov_iter::Result<CompletionFuture<OwnedIter<Source, AlignedBuf>>> {
///     let data = AlignedBuf::from_slice(4096, &[byte; 4096])?;
///     let (mut kiocb, done) = Kiocb::new_async_with(0, OwnedIter::<Source, _>::new(data));
///     assert!(dev.submit(&mut kiocb)?.is_queued());
///     Ok(done)
/// }
///
/// let queue = UringQueue::builder().register_files(true).open("/var/tmp/a.img")?;
/// let b = queue.add_file(DirectFile::open("/var/tmp/b.img")?)?;
/// let (da, db) = (write(&queue, 0xaa)?, write(&b, 0xbb)?); // both in flight
/// assert_eq!(queue.block_on(da).result, Ok(4096));
/// assert_eq!(b.block_on(db).result, Ok(4096));
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[doc(alias = "IORING_REGISTER_FILES")]
pub struct UringFile {
    h: Handle,
}

static_assertions::assert_impl_all!(UringFile: Send, Sync);

impl UringFile {
    pub(super) fn new(h: Handle) -> UringFile {
        UringFile { h }
    }

    /// Whether this file's SQEs name a slot of the ring's registered-file
    /// table (`IOSQE_FIXED_FILE`) rather than its descriptor: registration
    /// is on ([`UringBuilder::register_files`](super::UringBuilder::register_files)),
    /// the kernel accepted it, and the table had a free slot
    /// ([`UringBuilder::max_files`](super::UringBuilder::max_files)).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::file::DirectFile;
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().register_files(true).open("/var/tmp/a.img")?;
    /// let b = queue.add_file(DirectFile::open("/var/tmp/b.img")?)?;
    /// assert_eq!(b.is_fixed_file(), queue.is_fixed_file());
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "IOSQE_FIXED_FILE")]
    pub fn is_fixed_file(&self) -> bool {
        self.h.is_fixed_file()
    }

    /// Flushes this file to stable storage: [`UringQueue::fsync`](super::UringQueue::fsync)
    /// on this file.
    ///
    /// # Errors
    ///
    /// As [`UringQueue::fsync`](super::UringQueue::fsync).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::file::DirectFile;
    /// use iov_iter::backend::uring::UringQueue;
    /// use iov_iter::kiocb::{Kiocb, Submitted};
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/a.img")?;
    /// let b = queue.add_file(DirectFile::open("/var/tmp/b.img")?)?;
    /// assert_eq!(b.fsync(&mut Kiocb::new_sync(0), true)?, Submitted::Done(0));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "IORING_OP_FSYNC")]
    pub fn fsync(&self, kiocb: &mut Kiocb, datasync: bool) -> Result<Submitted> {
        self.h.fsync(kiocb, datasync)
    }

    /// Defers submission on the ring ([`UringQueue::plug`](super::UringQueue::plug)):
    /// the plug holds back every file's asynchronous SQEs, this one's and
    /// the queue's alike.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::file::DirectFile;
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/a.img")?;
    /// let b = queue.add_file(DirectFile::open("/var/tmp/b.img")?)?;
    /// let plug = b.plug();
    /// // ... submit a burst on `b` and on `queue` ...
    /// drop(plug); // one io_uring_enter for all of it
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "blk_start_plug")]
    pub fn plug(&self) -> UringPlug<'_> {
        self.h.plug()
    }

    /// Asynchronous requests in flight on the ring, every file's
    /// ([`UringQueue::in_flight`](super::UringQueue::in_flight)).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::file::DirectFile;
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/a.img")?;
    /// let b = queue.add_file(DirectFile::open("/var/tmp/b.img")?)?;
    /// assert_eq!(b.in_flight(), queue.in_flight());
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn in_flight(&self) -> usize {
        self.h.ring.in_flight()
    }
}

impl DirectIo for UringFile {
    fn dio_align(&self) -> DioAlign {
        self.h.dio_align()
    }

    fn caps(&self) -> FileCaps {
        self.h.caps()
    }

    fn async_mode(&self) -> crate::dio::AsyncMode {
        crate::dio::AsyncMode::Queued
    }

    /// As the queue's: one SQE over the borrowed `iov`, waited for.
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

    /// As the queue's: the request's SQE pushed, the request kept until
    /// its CQE.
    fn start(&self, io: AsyncIo) {
        self.h.start(io);
    }

    /// Drives the ring ([`UringQueue::wait`](super::UringQueue::wait)):
    /// completes requests of every file on it.
    fn drive(&self, min_complete: usize) -> Result<usize> {
        self.h.ring.wait(min_complete)
    }
}

impl AsFd for UringFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.h.as_fd()
    }
}

impl fmt::Debug for UringFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UringFile")
            .field("fd", &self.h.raw_fd())
            .field("fixed_file", &self.h.is_fixed_file())
            .field("align", &self.h.dio_align())
            .finish_non_exhaustive()
    }
}
