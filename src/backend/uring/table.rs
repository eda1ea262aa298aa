//! The in-flight table: every operation the kernel may be using memory of,
//! keyed by SQE `user_data`, with the file each names (so the file table
//! knows when a file may close). No syscalls: unit-tested under Miri.

use smallvec::SmallVec;

use super::file_table::FileId;
use super::sqe::cqe_result;
use crate::dio::AsyncIo;
use crate::error::Result;
use crate::kiocb::Completion;

/// `user_data` of the queue's own `ASYNC_CANCEL` SQEs; never a table key.
pub(super) const CANCEL_KEY: u64 = u64::MAX;

/// An asynchronous operation the table owns until its CQE: completed
/// (outside the queue's lock) once that CQE is reaped.
pub(super) enum Owned {
    /// A read or write over owned memory; completing hands the buffer back.
    Io(AsyncIo),
    /// An fsync (no memory): completing runs the kiocb's completion with
    /// 0 bytes or the error.
    Fsync(Completion<()>),
}

impl Owned {
    /// Completes the operation with its CQE's outcome, exactly once.
    pub(super) fn complete(self, res: Result<usize>) {
        match self {
            Owned::Io(io) => io.complete(res),
            Owned::Fsync(c) => {
                let start = c.start_pos();
                c.complete(start, res.map(|_| 0));
            }
        }
    }
}

/// What owns the memory of one in-flight operation.
pub(super) enum Sink {
    /// An owned request, completed (buffer handed back) once its CQE is
    /// reaped.
    Owned(Owned),
    /// Memory borrowed by a thread blocked in a sync transfer; the result
    /// is parked in the table for it.
    Borrowed,
}

enum Slot {
    Free {
        generation: u32,
    },
    Busy {
        generation: u32,
        /// The file the SQE names (kept open until the CQE).
        file: FileId,
        sink: Sink,
    },
    /// A borrowed transfer's CQE arrived; its waiter has not collected it.
    Done {
        generation: u32,
        res: i32,
    },
}

/// Owned requests reaped under the queue's lock, completed after it is
/// released; a burst of up to 16 needs no heap allocation.
pub(super) type Reaped = SmallVec<[(Owned, Result<usize>); 16]>;

/// The slab of in-flight operations, keyed `generation << 32 | index`. An
/// entry, with the memory it owns, leaves only through
/// [`OpTable::complete`] (its CQE arrived) or [`OpTable::leak_all`].
pub(super) struct OpTable {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Busy and Done slots.
    pub(super) busy: usize,
    /// Busy slots holding owned requests.
    pub(super) owned: usize,
    cap: usize,
}

fn key_of(index: u32, generation: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(index)
}

fn split_key(key: u64) -> (usize, u32) {
    ((key & 0xffff_ffff) as usize, (key >> 32) as u32)
}

impl OpTable {
    pub(super) fn new(cap: usize) -> OpTable {
        OpTable {
            slots: Vec::with_capacity(cap),
            free: Vec::new(),
            busy: 0,
            owned: 0,
            cap,
        }
    }

    pub(super) fn is_full(&self) -> bool {
        self.busy >= self.cap
    }

    /// The key the next [`OpTable::insert`] will return.
    pub(super) fn next_key(&self) -> u64 {
        match self.free.last() {
            Some(&i) => match self.slots[i as usize] {
                Slot::Free { generation } => key_of(i, generation),
                _ => unreachable!("free list holds a busy slot"),
            },
            None => key_of(self.slots.len() as u32, 0),
        }
    }

    /// Inserts an operation on `file` (the table has room:
    /// [`OpTable::is_full`] is false) and returns its key, which
    /// [`OpTable::next_key`] announced.
    pub(super) fn insert(&mut self, sink: Sink, file: FileId) -> u64 {
        debug_assert!(!self.is_full(), "in-flight table overflow");
        if matches!(sink, Sink::Owned(_)) {
            self.owned += 1;
        }
        self.busy += 1;
        match self.free.pop() {
            Some(i) => {
                let generation = match self.slots[i as usize] {
                    Slot::Free { generation } => generation,
                    _ => unreachable!("free list holds a busy slot"),
                };
                self.slots[i as usize] = Slot::Busy {
                    generation,
                    file,
                    sink,
                };
                key_of(i, generation)
            }
            None => {
                let i = self.slots.len() as u32;
                self.slots.push(Slot::Busy {
                    generation: 0,
                    file,
                    sink,
                });
                key_of(i, 0)
            }
        }
    }

    fn release(&mut self, index: usize, generation: u32) {
        self.slots[index] = Slot::Free {
            generation: generation.wrapping_add(1),
        };
        self.free.push(index as u32);
        self.busy -= 1;
    }

    /// The CQE for `key` arrived with `res`. An owned request leaves the
    /// table and goes to `out` with its result; a borrowed one parks its
    /// result. Returns the file the operation named (the kernel is done
    /// with it). Unknown keys (the queue's cancel SQEs) are ignored
    /// (`None`).
    pub(super) fn complete(&mut self, key: u64, res: i32, out: &mut Reaped) -> Option<FileId> {
        let (index, generation) = split_key(key);
        match self.slots.get(index) {
            Some(Slot::Busy { generation: g, .. }) if *g == generation => {}
            _ => return None,
        }
        let Slot::Busy { sink, file, .. } =
            core::mem::replace(&mut self.slots[index], Slot::Done { generation, res })
        else {
            unreachable!()
        };
        if let Sink::Owned(op) = sink {
            self.owned -= 1;
            self.release(index, generation);
            out.push((op, cqe_result(res)));
        }
        Some(file)
    }

    /// Collects a borrowed transfer's parked result.
    pub(super) fn take_done(&mut self, key: u64) -> Option<i32> {
        let (index, generation) = split_key(key);
        match self.slots.get(index) {
            Some(&Slot::Done { generation: g, res }) if g == generation => {
                self.release(index, generation);
                Some(res)
            }
            _ => None,
        }
    }

    /// Keys of the owned requests in flight (to cancel them).
    pub(super) fn owned_keys(&self) -> Vec<u64> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Slot::Busy {
                    generation,
                    sink: Sink::Owned(_),
                    ..
                } => Some(key_of(i as u32, *generation)),
                _ => None,
            })
            .collect()
    }

    /// The ring can no longer be waited on: leaks every in-flight request
    /// (the kernel may still use its memory, so its buffer can be neither
    /// freed nor handed back; its completion never runs). Fsyncs, which
    /// hold no memory, are leaked alike: their completions do not run
    /// either, so no user code runs from here (a drop that may unwind).
    pub(super) fn leak_all(&mut self) {
        for slot in &mut self.slots {
            if let Slot::Busy {
                sink: Sink::Owned(op),
                ..
            } = core::mem::replace(slot, Slot::Free { generation: 0 })
            {
                core::mem::forget(op);
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
    /// unwound through the queue with I/O in flight), completing the
    /// requests would hand back memory the kernel may still write: leak
    /// them instead.
    fn drop(&mut self) {
        if self.busy > 0 {
            self.leak_all();
        }
    }
}

#[cfg(test)]
mod tests {
    //! The bookkeeping without syscalls (runs under Miri): a "kernel" that
    //! writes through the iovecs after the request moved into the table.

    use super::*;
    use crate::backend::mem::{MemDevice, PendingOrder};
    use crate::buf::{AlignedBuf, OwnedIter};
    use crate::dio::DirectIo;
    use crate::kiocb::{CompletionFuture, Kiocb, RwType};
    use crate::{Dest, Errno, Error};

    /// An owned read request of `len` bytes, as `DirectIo::start` gets it.
    fn read_request(len: usize) -> (AsyncIo, CompletionFuture<OwnedIter<Dest, AlignedBuf>>) {
        let dev = MemDevice::new(len);
        dev.defer_completions(Some(PendingOrder::Fifo));
        let buf = AlignedBuf::zeroed(512, len).unwrap();
        let (mut kiocb, fut) = Kiocb::new_async_with(0, OwnedIter::<Dest, _>::new(buf));
        assert!(dev.submit(&mut kiocb).unwrap().is_queued());
        (dev.take_pending().pop().unwrap(), fut)
    }

    #[test]
    fn keys_are_reused_with_a_new_generation() {
        let mut t = OpTable::new(2);
        let a = t.insert(Sink::Borrowed, 3);
        let mut out = Reaped::new();
        assert_eq!(t.complete(a, 0, &mut out), Some(3));
        assert_eq!(t.take_done(a), Some(0));
        let b = t.next_key();
        assert_eq!(t.insert(Sink::Borrowed, 0), b);
        assert_eq!(split_key(a).0, split_key(b).0);
        assert_ne!(a, b);
        // A stale key is ignored.
        assert_eq!(t.complete(a, 7, &mut out), None);
        assert_eq!(t.take_done(a), None);
        assert_eq!(t.busy, 1);
    }

    #[test]
    fn an_fsync_completes_its_kiocb_with_zero_bytes() {
        let (mut kiocb, mut fut) = Kiocb::new_async(4096);
        let c = kiocb.take_completion().unwrap();
        let mut t = OpTable::new(1);
        let key = t.insert(Sink::Owned(Owned::Fsync(c)), 1);
        assert_eq!(t.owned_keys(), [key]);
        let mut out = Reaped::new();
        assert_eq!(t.complete(key, 0, &mut out), Some(1));
        assert!(fut.try_take().is_none(), "completed outside the table");
        out.into_iter().for_each(|(op, res)| op.complete(res));
        let done = fut.try_take().unwrap();
        assert_eq!((done.result, done.pos), (Ok(0), 4096));
    }

    #[test]
    fn an_owned_read_completes_with_its_buffer_after_the_cqe() {
        let (io, mut fut) = read_request(512);
        assert_eq!(io.rw(), RwType::Read);
        let iov = io.iovecs()[0];
        let mut t = OpTable::new(4);
        let key = t.insert(Sink::Owned(Owned::Io(io)), 0);
        assert_eq!(t.owned, 1);
        // The "kernel" writes the memory while the table holds it.
        // SAFETY: the iovec describes the 512 bytes the request owns.
        unsafe { core::ptr::write_bytes(iov.base, 0xcd, iov.len) };
        let mut out = Reaped::new();
        t.complete(key, 512, &mut out);
        assert_eq!((t.owned, t.busy, fut.try_take().is_none()), (0, 0, true));
        for (op, res) in out {
            op.complete(res);
        }
        let done = fut.try_take().unwrap();
        assert_eq!(done.result, Ok(512));
        assert!(done.buf.into_inner().iter().all(|&b| b == 0xcd));
    }

    #[test]
    fn failed_io_reports_the_errno() {
        let (io, mut fut) = read_request(512);
        let mut t = OpTable::new(1);
        let key = t.insert(Sink::Owned(Owned::Io(io)), 0);
        assert!(t.is_full());
        let mut out = Reaped::new();
        t.complete(key, -5, &mut out);
        out.into_iter().for_each(|(op, res)| op.complete(res));
        let done = fut.try_take().unwrap();
        assert_eq!((done.result, done.pos), (Err(Error::Os(Errno::EIO)), 0));
        assert_eq!(done.buf.count(), 512, "nothing was transferred");
    }

    #[test]
    #[cfg_attr(miri, ignore = "leaks on purpose")]
    fn leak_all_forgets_requests_without_completing_them() {
        let (io, mut fut) = read_request(512);
        let mut t = OpTable::new(2);
        t.insert(Sink::Owned(Owned::Io(io)), 0);
        t.leak_all();
        assert_eq!((t.busy, t.owned), (0, 0));
        assert!(fut.try_take().is_none(), "a leaked request never completes");
        assert!(t.owned_keys().is_empty());
    }
}
