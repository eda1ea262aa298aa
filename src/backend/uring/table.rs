//! The in-flight table: every operation the kernel may be using memory of,
//! keyed by SQE `user_data`. No syscalls: unit-tested under Miri.

use smallvec::SmallVec;

use super::sqe::cqe_result;
use crate::dio::AsyncIo;
use crate::error::Result;

/// `user_data` of the queue's own `ASYNC_CANCEL` SQEs; never a table key.
pub(super) const CANCEL_KEY: u64 = u64::MAX;

/// What owns the memory of one in-flight operation.
pub(super) enum Sink {
    /// An owned request, completed (buffer handed back) once its CQE is
    /// reaped.
    Owned(AsyncIo),
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
pub(super) type Reaped = SmallVec<[(AsyncIo, Result<usize>); 16]>;

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

    /// Inserts an operation (the table has room: [`OpTable::is_full`] is
    /// false) and returns its key, which [`OpTable::next_key`] announced.
    pub(super) fn insert(&mut self, sink: Sink) -> u64 {
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
                self.slots[i as usize] = Slot::Busy { generation, sink };
                key_of(i, generation)
            }
            None => {
                let i = self.slots.len() as u32;
                self.slots.push(Slot::Busy {
                    generation: 0,
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
    /// result. Unknown keys (the queue's cancel SQEs) are ignored.
    pub(super) fn complete(&mut self, key: u64, res: i32, out: &mut Reaped) {
        let (index, generation) = split_key(key);
        match self.slots.get(index) {
            Some(Slot::Busy { generation: g, .. }) if *g == generation => {}
            _ => return,
        }
        let Slot::Busy { sink, .. } =
            core::mem::replace(&mut self.slots[index], Slot::Done { generation, res })
        else {
            unreachable!()
        };
        if let Sink::Owned(io) = sink {
            self.owned -= 1;
            self.release(index, generation);
            out.push((io, cqe_result(res)));
        }
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
                } => Some(key_of(i as u32, *generation)),
                _ => None,
            })
            .collect()
    }

    /// The ring can no longer be waited on: leaks every in-flight request
    /// (the kernel may still use its memory, so its buffer can be neither
    /// freed nor handed back; its completion never runs).
    pub(super) fn leak_all(&mut self) {
        for slot in &mut self.slots {
            if let Slot::Busy {
                sink: Sink::Owned(io),
                ..
            } = core::mem::replace(slot, Slot::Free { generation: 0 })
            {
                core::mem::forget(io);
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
        let a = t.insert(Sink::Borrowed);
        let mut out = Reaped::new();
        t.complete(a, 0, &mut out);
        assert_eq!(t.take_done(a), Some(0));
        let b = t.next_key();
        assert_eq!(t.insert(Sink::Borrowed), b);
        assert_eq!(split_key(a).0, split_key(b).0);
        assert_ne!(a, b);
        // A stale key is ignored.
        t.complete(a, 7, &mut out);
        assert_eq!(t.take_done(a), None);
        assert_eq!(t.busy, 1);
    }

    #[test]
    fn an_owned_read_completes_with_its_buffer_after_the_cqe() {
        let (io, mut fut) = read_request(512);
        assert_eq!(io.rw(), RwType::Read);
        let iov = io.iovecs()[0];
        let mut t = OpTable::new(4);
        let key = t.insert(Sink::Owned(io));
        assert_eq!(t.owned, 1);
        // The "kernel" writes the memory while the table holds it.
        // SAFETY: the iovec describes the 512 bytes the request owns.
        unsafe { core::ptr::write_bytes(iov.base, 0xcd, iov.len) };
        let mut out = Reaped::new();
        t.complete(key, 512, &mut out);
        assert_eq!((t.owned, t.busy, fut.try_take().is_none()), (0, 0, true));
        for (io, res) in out {
            io.complete(res);
        }
        let done = fut.try_take().unwrap();
        assert_eq!(done.result, Ok(512));
        assert!(done.buf.into_inner().iter().all(|&b| b == 0xcd));
    }

    #[test]
    fn failed_io_reports_the_errno() {
        let (io, mut fut) = read_request(512);
        let mut t = OpTable::new(1);
        let key = t.insert(Sink::Owned(io));
        assert!(t.is_full());
        let mut out = Reaped::new();
        t.complete(key, -5, &mut out);
        out.into_iter().for_each(|(io, res)| io.complete(res));
        let done = fut.try_take().unwrap();
        assert_eq!((done.result, done.pos), (Err(Error::Os(Errno::EIO)), 0));
        assert_eq!(done.buf.count(), 512, "nothing was transferred");
    }

    #[test]
    #[cfg_attr(miri, ignore = "leaks on purpose")]
    fn leak_all_forgets_requests_without_completing_them() {
        let (io, mut fut) = read_request(512);
        let mut t = OpTable::new(2);
        t.insert(Sink::Owned(io));
        t.leak_all();
        assert_eq!((t.busy, t.owned), (0, 0));
        assert!(fut.try_take().is_none(), "a leaked request never completes");
        assert!(t.owned_keys().is_empty());
    }
}
