//! [`MemDevice`]: a RAM block device with direct-I/O alignment rules and
//! fault injection. No syscalls; runs under Miri.
//!
//! The device is a fixed-size byte array. It behaves like a block device
//! opened with `O_DIRECT` (`block/fops.c`, `blkdev_read_iter` /
//! `blkdev_write_iter`):
//!
//! * a read that reaches the end is short, and a read at or past the end
//!   returns 0 (end of file);
//! * a write that crosses the end is short, and a write at or past the end
//!   fails with `ENOSPC`; `RWF_APPEND` writes at the end, so it fails too;
//! * the alignment ([`DioAlign`], default 512 / 512) is what
//!   [`DirectIo`] checks before any I/O; the device itself
//!   accepts any [`DirectIo::transfer`] call.
//!
//! # Fault injection
//!
//! [`MemDevice::inject`] arms a [`FaultPlan`]: a [`Fault`] (an error such as
//! `EIO`, a short transfer of a prefix, or "would block" under `RWF_NOWAIT`)
//! and a [`Trigger`] saying which transfers it hits (by sequence number, the
//! next *n*, or every one that overlaps a byte range), optionally limited to
//! reads or writes. Every call of [`DirectIo::transfer`] gets the next
//! sequence number, starting at 0, and is counted in [`MemStats`].
//! [`MemDevice::snapshot`], [`MemDevice::read_at`] and
//! [`MemDevice::write_at`] reach the bytes without faults or counting, for
//! test set-up and verification.
//!
//! # Examples
//!
//! ```
//! use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice};
//! use iov_iter::dio::DirectIo;
//! use iov_iter::kiocb::{Kiocb, Submitted};
//! use iov_iter::{Dest, Errno, Error, IovIter, Page, Source, Ubuf};
//!
//! let dev = MemDevice::new(8192);
//! let mut page = Page::new();
//! page.as_mut_bytes().fill(0xab);
//!
//! // A sync direct write of one page at 4096.
//! let mut kiocb = Kiocb::new_sync(4096);
//! let mut src = IovIter::<Source, Ubuf>::new(page.as_bytes());
//! assert_eq!(dev.direct_io(&mut kiocb, &mut src)?, Submitted::Done(4096));
//! assert_eq!(kiocb.pos, 8192);
//! assert!(dev.snapshot()[4096..].iter().all(|&b| b == 0xab));
//!
//! // The next transfer fails with EIO.
//! dev.inject(FaultPlan::next(1, Fault::EIO));
//! let mut kiocb = Kiocb::new_sync(0);
//! let mut dst = IovIter::<Dest, Ubuf>::new(page.as_mut_bytes());
//! assert_eq!(dev.direct_io(&mut kiocb, &mut dst), Err(Error::Os(Errno::EIO)));
//! assert_eq!(dev.stats().ios(), 2);
//! # Ok::<(), iov_iter::Error>(())
//! ```

use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use crate::dio::{AsyncIo, AsyncMode, DioAlign, DirectIo};
use crate::error::{Errno, Error, Result};
use crate::import::UIO_MAXIOV;
use crate::kiocb::{FileCaps, RwType, RwfFlags};
use crate::seg::UserIovec;
use crate::sync::SpinLock;

/// What an injected fault does to the transfer it hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Fail with this error, transferring nothing.
    Error(Error),
    /// Transfer only the first `n` bytes of the request (fewer if the
    /// request or the device is smaller) and return that count: a short
    /// transfer, which direct I/O takes for end of file.
    Short(usize),
    /// Fail with [`Error::WouldBlock`] (`EAGAIN`), transferring nothing, if
    /// the transfer carries `RWF_NOWAIT`. Without `RWF_NOWAIT` the transfer
    /// may block, so the fault does not hit it (and is not used up).
    WouldBlock,
}

impl Fault {
    /// An I/O error (`EIO`).
    pub const EIO: Fault = Fault::Error(Error::Os(Errno::EIO));
}

/// Which transfers a [`FaultPlan`] hits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// The transfer with this sequence number (see [`MemStats::ios`]), once.
    Seq(u64),
    /// The next `n` transfers that match the plan.
    Next(u32),
    /// Every transfer whose byte range `[pos, pos + len)` overlaps this
    /// range (until [`FaultPlan::times`] runs out or the plan is removed).
    Range(Range<u64>),
}

/// A fault to inject: what ([`Fault`]), when ([`Trigger`]), on which
/// direction, how many times. Arm it with [`MemDevice::inject`].
///
/// # Examples
///
/// ```
/// use iov_iter::backend::mem::{Fault, FaultPlan};
/// // The second and third writes that touch bytes 4096..8192 are cut to 512 bytes.
/// let plan = FaultPlan::in_range(4096..8192, Fault::Short(512)).writes_only().times(2);
/// # let _ = plan;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultPlan {
    fault: Fault,
    trigger: Trigger,
    op: Option<RwType>,
    times: Option<u32>,
}

impl FaultPlan {
    /// A plan hitting every transfer `trigger` selects, reads and writes.
    pub const fn new(trigger: Trigger, fault: Fault) -> FaultPlan {
        FaultPlan {
            fault,
            trigger,
            op: None,
            times: None,
        }
    }

    /// The next `n` transfers ([`Trigger::Next`]).
    pub const fn next(n: u32, fault: Fault) -> FaultPlan {
        FaultPlan::new(Trigger::Next(n), fault)
    }

    /// The transfer with sequence number `seq` ([`Trigger::Seq`]).
    pub const fn at_seq(seq: u64, fault: Fault) -> FaultPlan {
        FaultPlan::new(Trigger::Seq(seq), fault)
    }

    /// Every transfer overlapping `range` ([`Trigger::Range`]).
    pub const fn in_range(range: Range<u64>, fault: Fault) -> FaultPlan {
        FaultPlan::new(Trigger::Range(range), fault)
    }

    /// Only reads match.
    #[must_use]
    pub const fn reads_only(mut self) -> FaultPlan {
        self.op = Some(RwType::Read);
        self
    }

    /// Only writes match.
    #[must_use]
    pub const fn writes_only(mut self) -> FaultPlan {
        self.op = Some(RwType::Write);
        self
    }

    /// Hits at most `n` transfers, then disarms itself.
    #[must_use]
    pub const fn times(mut self, n: u32) -> FaultPlan {
        self.times = Some(n);
        self
    }

    /// How many more hits the plan allows (`None`: unlimited).
    fn budget(&self) -> Option<u32> {
        let by_trigger = match self.trigger {
            Trigger::Seq(_) => Some(1),
            Trigger::Next(n) => Some(n),
            Trigger::Range(_) => None,
        };
        match (by_trigger, self.times) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The order in which a [`MemDevice`] delivers deferred completions
/// ([`MemDevice::defer_completions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingOrder {
    /// First started, first completed.
    Fifo,
    /// Last started, first completed.
    Reverse,
    /// A pseudo-random order from this seed (the same seed gives the same
    /// order).
    Shuffled(u64),
}

struct Pending {
    order: Option<PendingOrder>,
    ios: Vec<AsyncIo>,
    rng: u64,
}

impl Pending {
    /// Removes the next request to complete (`ios` is not empty).
    fn pick(&mut self) -> AsyncIo {
        let i = match self.order {
            None | Some(PendingOrder::Fifo) => 0,
            Some(PendingOrder::Reverse) => self.ios.len() - 1,
            Some(PendingOrder::Shuffled(_)) => {
                // xorshift64
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                (self.rng % self.ios.len() as u64) as usize
            }
        };
        self.ios.remove(i)
    }
}

/// Identifies an armed [`FaultPlan`], for [`MemDevice::remove_fault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FaultId(u64);

/// Counters of a [`MemDevice`]. Every [`DirectIo::transfer`] call counts as
/// one read or write, whether it succeeded, failed or was short; bytes count
/// only what was transferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemStats {
    /// Read transfers.
    pub reads: u64,
    /// Write transfers.
    pub writes: u64,
    /// Bytes copied out of the device.
    pub bytes_read: u64,
    /// Bytes copied into the device.
    pub bytes_written: u64,
    /// Transfers an injected fault hit.
    pub faults: u64,
}

impl MemStats {
    /// All transfers (`reads + writes`): also the sequence number the next
    /// transfer gets, until [`MemDevice::reset_stats`].
    pub const fn ios(&self) -> u64 {
        self.reads + self.writes
    }
}

struct Armed {
    id: FaultId,
    plan: FaultPlan,
    left: Option<u32>,
}

struct Inner {
    data: Vec<u8>,
    faults: Vec<Armed>,
    next_id: u64,
    stats: MemStats,
}

impl Inner {
    /// Finds and uses up the first armed fault that hits this transfer.
    fn take_fault(
        &mut self,
        seq: u64,
        rw: RwType,
        pos: u64,
        len: usize,
        nowait: bool,
    ) -> Option<Fault> {
        // A sequence-number plan whose transfer has gone by can never hit.
        self.faults
            .retain(|a| !matches!(a.plan.trigger, Trigger::Seq(s) if s < seq));
        let end = pos.saturating_add(len as u64);
        let i = self.faults.iter().position(|a| {
            let p = &a.plan;
            a.left != Some(0)
                && p.op.is_none_or(|op| op == rw)
                && (nowait || p.fault != Fault::WouldBlock)
                && match &p.trigger {
                    Trigger::Seq(s) => *s == seq,
                    Trigger::Next(_) => true,
                    Trigger::Range(r) => pos < r.end && r.start < end.max(pos.saturating_add(1)),
                }
        })?;
        let armed = &mut self.faults[i];
        let fault = armed.plan.fault;
        if let Some(left) = &mut armed.left {
            *left -= 1;
        }
        if armed.left == Some(0) {
            self.faults.remove(i);
        }
        self.stats.faults += 1;
        Some(fault)
    }
}

/// A RAM block device for direct I/O: fixed size, [`DioAlign`] rules,
/// [`FileCaps`] for `RWF_*` validation, fault injection and counters. See
/// the [module documentation](self).
///
/// Shared by reference (`&MemDevice` is `Send + Sync`); transfers are
/// serialised by an internal spin lock, held only while bytes are copied.
pub struct MemDevice {
    inner: SpinLock<Inner>,
    pending: SpinLock<Pending>,
    align: DioAlign,
    caps: FileCaps,
    max_segs: usize,
}

impl MemDevice {
    /// The default alignment: 512-byte memory and offset alignment.
    pub const DEFAULT_ALIGN: DioAlign = DioAlign {
        mem: 512,
        offset: 512,
        read_offset: 0,
    };

    /// The default capabilities: `RWF_NOWAIT` supported (like `FMODE_NOWAIT`
    /// on a block device), nothing else.
    pub const DEFAULT_CAPS: FileCaps = FileCaps {
        nowait: true,
        ..FileCaps::new()
    };

    /// A zeroed device of `size` bytes with [`MemDevice::DEFAULT_ALIGN`] and
    /// [`MemDevice::DEFAULT_CAPS`]. Aborts (through
    /// [`handle_alloc_error`](alloc::alloc::handle_alloc_error)) when the
    /// memory cannot be allocated; see [`MemDevice::try_new`].
    pub fn new(size: usize) -> MemDevice {
        match MemDevice::try_new(size) {
            Ok(dev) => dev,
            Err(_) => alloc::alloc::handle_alloc_error(
                core::alloc::Layout::from_size_align(size.min(isize::MAX as usize), 1)
                    .unwrap_or(core::alloc::Layout::new::<u8>()),
            ),
        }
    }

    /// A zeroed device of `size` bytes, or `ENOMEM`.
    ///
    /// # Errors
    ///
    /// `Error::Os(Errno::ENOMEM)` when `size` bytes cannot be allocated.
    pub fn try_new(size: usize) -> Result<MemDevice> {
        let mut data = Vec::new();
        data.try_reserve_exact(size)
            .map_err(|_| Error::Os(Errno::ENOMEM))?;
        // SAFETY: the reservation made room for `size` bytes; they are all
        // initialised (zeroed) before the length covers them. (One memset
        // rather than `resize`, whose per-byte loop is slow under Miri.)
        unsafe {
            core::ptr::write_bytes(data.as_mut_ptr(), 0, size);
            data.set_len(size);
        }
        Ok(MemDevice::from_vec(data))
    }

    /// A device holding `data` (its size is `data.len()`).
    pub fn from_vec(data: Vec<u8>) -> MemDevice {
        MemDevice {
            inner: SpinLock::new(Inner {
                data,
                faults: Vec::new(),
                next_id: 0,
                stats: MemStats::default(),
            }),
            pending: SpinLock::new(Pending {
                order: None,
                ios: Vec::new(),
                rng: 0x9e37_79b9_7f4a_7c15,
            }),
            align: MemDevice::DEFAULT_ALIGN,
            caps: MemDevice::DEFAULT_CAPS,
            max_segs: UIO_MAXIOV,
        }
    }

    /// Replaces the alignment rules.
    #[must_use]
    pub fn with_align(mut self, align: DioAlign) -> MemDevice {
        self.align = align;
        self
    }

    /// Replaces the capabilities.
    #[must_use]
    pub fn with_caps(mut self, caps: FileCaps) -> MemDevice {
        self.caps = caps;
        self
    }

    /// Whether `RWF_NOWAIT` is supported ([`FileCaps::nowait`]).
    #[must_use]
    pub fn with_nowait(mut self, nowait: bool) -> MemDevice {
        self.caps.nowait = nowait;
        self
    }

    /// The most segments one transfer takes (default [`UIO_MAXIOV`]; at
    /// least 1).
    #[must_use]
    pub fn with_max_segs(mut self, max_segs: usize) -> MemDevice {
        self.max_segs = max_segs.max(1);
        self
    }

    /// Defers the completion of asynchronous requests
    /// ([`DirectIo::start`]) until [`MemDevice::complete_pending`] or
    /// [`DirectIo::drive`] runs them, in `order`; `None` (the default)
    /// completes each inline, before [`DirectIo::submit`] returns. A
    /// deferred request's transfer happens when it completes, so tests see
    /// the data land out of order.
    pub fn defer_completions(&self, order: Option<PendingOrder>) {
        let mut p = self.pending.lock();
        p.order = order;
        if let Some(PendingOrder::Shuffled(seed)) = order {
            // The same seed gives the same order, each time it is set.
            p.rng = seed | 1;
        }
    }

    /// Asynchronous requests started and not completed yet.
    pub fn pending(&self) -> usize {
        self.pending.lock().ios.len()
    }

    /// Removes the deferred requests without running them, in the order
    /// they were started: for a test that plays the device itself (the
    /// requests complete, with `ECANCELED`, if dropped).
    pub fn take_pending(&self) -> Vec<AsyncIo> {
        core::mem::take(&mut self.pending.lock().ios)
    }

    /// Transfers and completes up to `max` deferred requests, in the order
    /// set by [`MemDevice::defer_completions`] (first in, first out when
    /// deferral was switched off since). Returns how many completed. A
    /// completion callback that panics does not stop the others; the first
    /// panic is raised again after them (with `std`).
    pub fn complete_pending(&self, max: usize) -> usize {
        let picked: Vec<AsyncIo> = {
            let mut p = self.pending.lock();
            let n = max.min(p.ios.len());
            (0..n).map(|_| p.pick()).collect()
        };
        let n = picked.len();
        crate::sync::run_all(picked, |io| {
            // SAFETY: the request owns its memory until it completes, and
            // its iovecs describe that memory as `transfer` requires.
            let res = unsafe { self.transfer(io.rw(), io.pos(), io.iovecs(), io.flags()) };
            io.complete(res);
        });
        n
    }

    /// The size in bytes.
    pub fn len(&self) -> u64 {
        self.inner.lock().data.len() as u64
    }

    /// Whether the size is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of the whole device.
    pub fn snapshot(&self) -> Vec<u8> {
        self.inner.lock().data.clone()
    }

    /// Copies bytes at `pos` into `buf`, bypassing faults and counters;
    /// short (possibly 0) at the end of the device.
    pub fn read_at(&self, pos: u64, buf: &mut [u8]) -> usize {
        let inner = self.inner.lock();
        let Some(src) = usize::try_from(pos).ok().and_then(|p| inner.data.get(p..)) else {
            return 0;
        };
        let n = buf.len().min(src.len());
        buf[..n].copy_from_slice(&src[..n]);
        n
    }

    /// Copies `buf` to `pos`, bypassing faults and counters; short (possibly
    /// 0) at the end of the device.
    pub fn write_at(&self, pos: u64, buf: &[u8]) -> usize {
        let mut inner = self.inner.lock();
        let Some(dst) = usize::try_from(pos)
            .ok()
            .and_then(|p| inner.data.get_mut(p..))
        else {
            return 0;
        };
        let n = buf.len().min(dst.len());
        dst[..n].copy_from_slice(&buf[..n]);
        n
    }

    /// Sets every byte to `byte`.
    pub fn fill(&self, byte: u8) {
        self.inner.lock().data.fill(byte);
    }

    /// Arms a fault plan; plans are tried in the order they were armed and
    /// at most one hits a transfer.
    pub fn inject(&self, plan: FaultPlan) -> FaultId {
        let mut inner = self.inner.lock();
        let id = FaultId(inner.next_id);
        inner.next_id += 1;
        let left = plan.budget();
        if left != Some(0) {
            inner.faults.push(Armed { id, plan, left });
        }
        id
    }

    /// Disarms a plan; `false` if it was not armed (any more).
    pub fn remove_fault(&self, id: FaultId) -> bool {
        let mut inner = self.inner.lock();
        let before = inner.faults.len();
        inner.faults.retain(|a| a.id != id);
        inner.faults.len() != before
    }

    /// Disarms every plan.
    pub fn clear_faults(&self) {
        self.inner.lock().faults.clear();
    }

    /// Plans still armed.
    pub fn armed_faults(&self) -> usize {
        self.inner.lock().faults.len()
    }

    /// The counters.
    pub fn stats(&self) -> MemStats {
        self.inner.lock().stats
    }

    /// Zeroes the counters (and so restarts sequence numbers at 0).
    pub fn reset_stats(&self) {
        self.inner.lock().stats = MemStats::default();
    }
}

impl fmt::Debug for MemDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.lock();
        f.debug_struct("MemDevice")
            .field("len", &inner.data.len())
            .field("align", &self.align)
            .field("caps", &self.caps)
            .field("max_segs", &self.max_segs)
            .field("armed_faults", &inner.faults.len())
            .field("stats", &inner.stats)
            .finish()
    }
}

impl Drop for MemDevice {
    /// Deferred requests still pending complete with `ECANCELED` (their
    /// buffers come back through their completions).
    fn drop(&mut self) {
        let ios = core::mem::take(&mut self.pending.lock().ios);
        crate::sync::run_all(ios, drop);
    }
}

impl DirectIo for MemDevice {
    fn dio_align(&self) -> DioAlign {
        self.align
    }

    fn capacity(&self) -> Option<u64> {
        Some(self.len())
    }

    fn async_mode(&self) -> AsyncMode {
        if self.pending.lock().order.is_some() {
            AsyncMode::Queued
        } else {
            AsyncMode::Inline
        }
    }

    fn start(&self, io: AsyncIo) {
        let mut p = self.pending.lock();
        if p.order.is_some() {
            p.ios.push(io);
            return;
        }
        drop(p);
        // SAFETY: the request owns its memory until it completes, and its
        // iovecs describe that memory as `transfer` requires.
        let res = unsafe { self.transfer(io.rw(), io.pos(), io.iovecs(), io.flags()) };
        io.complete(res);
    }

    fn drive(&self, min_complete: usize) -> Result<usize> {
        let _ = min_complete;
        Ok(self.complete_pending(usize::MAX))
    }

    fn caps(&self) -> FileCaps {
        self.caps
    }

    fn max_segs(&self) -> usize {
        self.max_segs
    }

    /// Copies between the device and `iov`, after the injected faults had
    /// their say. Reads are short at the end of the device; writes are
    /// short across it and `ENOSPC` at or past it (`RWF_APPEND` writes at
    /// the end). `RWF_ATOMIC` without [`FileCaps::atomic_write`] is
    /// `EOPNOTSUPP`; other flags change nothing.
    unsafe fn transfer(
        &self,
        rw: RwType,
        pos: u64,
        iov: &[UserIovec],
        flags: RwfFlags,
    ) -> Result<usize> {
        let mut inner = self.inner.lock();
        let seq = inner.stats.ios();
        match rw {
            RwType::Read => inner.stats.reads += 1,
            RwType::Write => inner.stats.writes += 1,
        }
        if flags.contains(RwfFlags::ATOMIC) && !self.caps.atomic_write {
            return Err(Error::NotSupported(
                "RWF_ATOMIC on a device without atomic writes",
            ));
        }
        let want = iov.iter().fold(0usize, |acc, v| acc.saturating_add(v.len));
        let nowait = flags.contains(RwfFlags::NOWAIT);
        let mut limit = want;
        match inner.take_fault(seq, rw, pos, want, nowait) {
            None => {}
            Some(Fault::Error(e)) => return Err(e),
            Some(Fault::WouldBlock) => return Err(Error::WouldBlock),
            Some(Fault::Short(n)) => limit = n.min(want),
        }
        let size = inner.data.len() as u64;
        let pos = if rw == RwType::Write && flags.contains(RwfFlags::APPEND) {
            size
        } else {
            pos
        };
        if pos >= size {
            return match rw {
                RwType::Write if limit > 0 => Err(Error::Os(Errno::ENOSPC)),
                _ => Ok(0),
            };
        }
        // CAST: pos < size, which came from a usize.
        let start = pos as usize;
        let n = limit.min(inner.data.len() - start);
        let mut off = start;
        let end = start + n;
        // One pointer for the whole loop (re-slicing the Vec per segment
        // costs a retag of the whole buffer each time under Miri).
        let data = inner.data.as_mut_ptr();
        for v in iov {
            if off == end {
                break;
            }
            let part = v.len.min(end - off);
            if part == 0 {
                continue;
            }
            // SAFETY: `off + part <= end <= data.len()`, so this stays
            // inside the device's buffer.
            let dev = unsafe { data.add(off) };
            match rw {
                // SAFETY: the caller promises `v.base` is valid for writes
                // of `v.len >= part` bytes and not accessed by anything else
                // during the call (the `DirectIo::transfer` contract); `dev` points to
                // `part` bytes of the device, which no caller can reach
                // (no API hands out its address), so the two do not overlap.
                RwType::Read => unsafe { core::ptr::copy_nonoverlapping(dev, v.base, part) },
                // SAFETY: the caller promises `v.base` is valid for reads of
                // `v.len >= part` bytes and not written during the call;
                // `dev` is `part` writable device bytes, disjoint from it.
                RwType::Write => unsafe { core::ptr::copy_nonoverlapping(v.base, dev, part) },
            }
            off += part;
        }
        match rw {
            RwType::Read => inner.stats.bytes_read += n as u64,
            RwType::Write => inner.stats.bytes_written += n as u64,
        }
        Ok(n)
    }
}

static_assertions::assert_impl_all!(MemDevice: Send, Sync);
