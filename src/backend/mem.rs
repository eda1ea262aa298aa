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
///
/// # Examples
///
/// ```
/// # #![allow(dead_code, unused_imports)]
/// # use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, Trigger};
/// # use iov_iter::{dio::DirectIo, kiocb::{IocbFlags, Kiocb, Submitted}};
/// # use iov_iter::{Dest, Errno, Error, IovIter, Page, Result, Source, Ubuf};
/// # /// Sync page-sized transfers.
/// # fn read(dev: &MemDevice, mut k: Kiocb) -> Result<Submitted> {
/// #     dev.direct_io(&mut k, &mut IovIter::<Dest, Ubuf>::new(Page::new().as_mut_bytes()))
/// # }
/// # fn write(dev: &MemDevice, pos: u64) -> Result<Submitted> {
/// #     dev.direct_io(&mut Kiocb::new_sync(pos), &mut IovIter::<Source, Ubuf>::new(Page::new().as_bytes()))
/// # }
/// # fn at(pos: u64) -> Kiocb { Kiocb::new_sync(pos) }
/// let dev = MemDevice::new(8192);
/// dev.inject(FaultPlan::next(1, Fault::Error(Error::Os(Errno::ENOSPC))));
/// assert_eq!(write(&dev, 0), Err(Error::Os(Errno::ENOSPC)));
/// dev.inject(FaultPlan::next(1, Fault::Short(512)));
/// assert_eq!(read(&dev, at(0)), Ok(Submitted::Done(512)));
/// // WouldBlock hits only RWF_NOWAIT transfers; the others leave it armed.
/// dev.inject(FaultPlan::next(1, Fault::WouldBlock));
/// assert_eq!(read(&dev, at(0)), Ok(Submitted::Done(4096)));
/// let nowait = at(0).with_flags(IocbFlags::NOWAIT);
/// assert_eq!(read(&dev, nowait).unwrap_err().errno(), Errno::EAGAIN);
/// ```
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
    /// An I/O error (`EIO`), the usual fault.
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, Trigger};
    /// # use iov_iter::{dio::DirectIo, kiocb::{IocbFlags, Kiocb, Submitted}};
    /// # use iov_iter::{Dest, Errno, Error, IovIter, Page, Result, Source, Ubuf};
    /// # /// Sync page-sized transfers.
    /// # fn read(dev: &MemDevice, mut k: Kiocb) -> Result<Submitted> {
    /// #     dev.direct_io(&mut k, &mut IovIter::<Dest, Ubuf>::new(Page::new().as_mut_bytes()))
    /// # }
    /// # fn write(dev: &MemDevice, pos: u64) -> Result<Submitted> {
    /// #     dev.direct_io(&mut Kiocb::new_sync(pos), &mut IovIter::<Source, Ubuf>::new(Page::new().as_bytes()))
    /// # }
    /// # fn at(pos: u64) -> Kiocb { Kiocb::new_sync(pos) }
    /// assert_eq!(Fault::EIO, Fault::Error(Error::Os(Errno::EIO)));
    /// let dev = MemDevice::new(4096);
    /// dev.inject(FaultPlan::next(1, Fault::EIO));
    /// assert_eq!(read(&dev, at(0)).unwrap_err().errno(), Errno::EIO);
    /// ```
    pub const EIO: Fault = Fault::Error(Error::Os(Errno::EIO));
}

/// Which transfers a [`FaultPlan`] hits.
///
/// # Examples
///
/// ```
/// # #![allow(dead_code, unused_imports)]
/// # use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, Trigger};
/// # use iov_iter::{dio::DirectIo, kiocb::{IocbFlags, Kiocb, Submitted}};
/// # use iov_iter::{Dest, Errno, Error, IovIter, Page, Result, Source, Ubuf};
/// # /// Sync page-sized transfers.
/// # fn read(dev: &MemDevice, mut k: Kiocb) -> Result<Submitted> {
/// #     dev.direct_io(&mut k, &mut IovIter::<Dest, Ubuf>::new(Page::new().as_mut_bytes()))
/// # }
/// # fn write(dev: &MemDevice, pos: u64) -> Result<Submitted> {
/// #     dev.direct_io(&mut Kiocb::new_sync(pos), &mut IovIter::<Source, Ubuf>::new(Page::new().as_bytes()))
/// # }
/// # fn at(pos: u64) -> Kiocb { Kiocb::new_sync(pos) }
/// let dev = MemDevice::new(16384);
/// dev.inject(FaultPlan::new(Trigger::Range(8192..8193), Fault::EIO));
/// assert!(read(&dev, at(4096)).is_ok()); // bytes 4096..8192 do not reach it
/// assert!(read(&dev, at(8192)).is_err());
/// assert!(read(&dev, at(8192)).is_err()); // a range plan stays armed
/// dev.inject(FaultPlan::new(Trigger::Seq(dev.stats().ios() + 1), Fault::EIO));
/// assert!(read(&dev, at(0)).is_ok() && read(&dev, at(0)).is_err()); // the one after next
/// ```
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
/// # #![allow(dead_code, unused_imports)]
/// # use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, Trigger};
/// # use iov_iter::{dio::DirectIo, kiocb::{IocbFlags, Kiocb, Submitted}};
/// # use iov_iter::{Dest, Errno, Error, IovIter, Page, Result, Source, Ubuf};
/// # /// Sync page-sized transfers.
/// # fn read(dev: &MemDevice, mut k: Kiocb) -> Result<Submitted> {
/// #     dev.direct_io(&mut k, &mut IovIter::<Dest, Ubuf>::new(Page::new().as_mut_bytes()))
/// # }
/// # fn write(dev: &MemDevice, pos: u64) -> Result<Submitted> {
/// #     dev.direct_io(&mut Kiocb::new_sync(pos), &mut IovIter::<Source, Ubuf>::new(Page::new().as_bytes()))
/// # }
/// # fn at(pos: u64) -> Kiocb { Kiocb::new_sync(pos) }
/// // Writes touching bytes 4096..8192 are cut to 512 bytes, twice.
/// let dev = MemDevice::new(16384);
/// dev.inject(FaultPlan::in_range(4096..8192, Fault::Short(512)).writes_only().times(2));
/// assert_eq!(read(&dev, at(4096))?, Submitted::Done(4096)); // not a write
/// assert_eq!(write(&dev, 4096)?, Submitted::Done(512));
/// assert_eq!(write(&dev, 0)?, Submitted::Done(4096)); // not in the range
/// assert_eq!(write(&dev, 4096)?, Submitted::Done(512));
/// assert_eq!(write(&dev, 4096)?, Submitted::Done(4096)); // used up
/// assert_eq!(dev.armed_faults(), 0);
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[doc(alias = "fail_make_request")]
#[doc(alias = "should_fail")]
pub struct FaultPlan {
    fault: Fault,
    trigger: Trigger,
    op: Option<RwType>,
    times: Option<u32>,
}

impl FaultPlan {
    /// A plan hitting every transfer `trigger` selects, reads and writes.
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, Trigger};
    /// # use iov_iter::{dio::DirectIo, kiocb::{IocbFlags, Kiocb, Submitted}};
    /// # use iov_iter::{Dest, Errno, Error, IovIter, Page, Result, Source, Ubuf};
    /// # /// Sync page-sized transfers.
    /// # fn read(dev: &MemDevice, mut k: Kiocb) -> Result<Submitted> {
    /// #     dev.direct_io(&mut k, &mut IovIter::<Dest, Ubuf>::new(Page::new().as_mut_bytes()))
    /// # }
    /// # fn write(dev: &MemDevice, pos: u64) -> Result<Submitted> {
    /// #     dev.direct_io(&mut Kiocb::new_sync(pos), &mut IovIter::<Source, Ubuf>::new(Page::new().as_bytes()))
    /// # }
    /// # fn at(pos: u64) -> Kiocb { Kiocb::new_sync(pos) }
    /// assert_eq!(FaultPlan::new(Trigger::Next(2), Fault::EIO), FaultPlan::next(2, Fault::EIO));
    /// let dev = MemDevice::new(8192);
    /// dev.inject(FaultPlan::new(Trigger::Next(2), Fault::EIO));
    /// assert!(read(&dev, at(0)).is_err() && write(&dev, 0).is_err()); // both directions
    /// assert!(read(&dev, at(0)).is_ok());
    /// ```
    pub const fn new(trigger: Trigger, fault: Fault) -> FaultPlan {
        FaultPlan {
            fault,
            trigger,
            op: None,
            times: None,
        }
    }

    /// The next `n` transfers ([`Trigger::Next`]).
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, Trigger};
    /// # use iov_iter::{dio::DirectIo, kiocb::{IocbFlags, Kiocb, Submitted}};
    /// # use iov_iter::{Dest, Errno, Error, IovIter, Page, Result, Source, Ubuf};
    /// # /// Sync page-sized transfers.
    /// # fn read(dev: &MemDevice, mut k: Kiocb) -> Result<Submitted> {
    /// #     dev.direct_io(&mut k, &mut IovIter::<Dest, Ubuf>::new(Page::new().as_mut_bytes()))
    /// # }
    /// # fn write(dev: &MemDevice, pos: u64) -> Result<Submitted> {
    /// #     dev.direct_io(&mut Kiocb::new_sync(pos), &mut IovIter::<Source, Ubuf>::new(Page::new().as_bytes()))
    /// # }
    /// # fn at(pos: u64) -> Kiocb { Kiocb::new_sync(pos) }
    /// let dev = MemDevice::new(8192);
    /// dev.inject(FaultPlan::next(2, Fault::Short(0)));
    /// assert_eq!(read(&dev, at(0))?, Submitted::Done(0)); // end of file, as far as it knows
    /// assert_eq!(read(&dev, at(4096))?, Submitted::Done(0));
    /// assert_eq!(read(&dev, at(0))?, Submitted::Done(4096));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub const fn next(n: u32, fault: Fault) -> FaultPlan {
        FaultPlan::new(Trigger::Next(n), fault)
    }

    /// The transfer with sequence number `seq` ([`Trigger::Seq`]): the
    /// transfers so far are numbered from 0 ([`MemStats::ios`]).
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, Trigger};
    /// # use iov_iter::{dio::DirectIo, kiocb::{IocbFlags, Kiocb, Submitted}};
    /// # use iov_iter::{Dest, Errno, Error, IovIter, Page, Result, Source, Ubuf};
    /// # /// Sync page-sized transfers.
    /// # fn read(dev: &MemDevice, mut k: Kiocb) -> Result<Submitted> {
    /// #     dev.direct_io(&mut k, &mut IovIter::<Dest, Ubuf>::new(Page::new().as_mut_bytes()))
    /// # }
    /// # fn write(dev: &MemDevice, pos: u64) -> Result<Submitted> {
    /// #     dev.direct_io(&mut Kiocb::new_sync(pos), &mut IovIter::<Source, Ubuf>::new(Page::new().as_bytes()))
    /// # }
    /// # fn at(pos: u64) -> Kiocb { Kiocb::new_sync(pos) }
    /// let dev = MemDevice::new(8192);
    /// dev.inject(FaultPlan::at_seq(1, Fault::EIO));
    /// assert!(write(&dev, 0).is_ok()); // transfer 0
    /// assert_eq!(read(&dev, at(0)).unwrap_err().errno(), Errno::EIO); // transfer 1
    /// assert!(read(&dev, at(0)).is_ok());
    /// ```
    pub const fn at_seq(seq: u64, fault: Fault) -> FaultPlan {
        FaultPlan::new(Trigger::Seq(seq), fault)
    }

    /// Every transfer overlapping `range` ([`Trigger::Range`]): a bad
    /// sector.
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, Trigger};
    /// # use iov_iter::{dio::DirectIo, kiocb::{IocbFlags, Kiocb, Submitted}};
    /// # use iov_iter::{Dest, Errno, Error, IovIter, Page, Result, Source, Ubuf};
    /// # /// Sync page-sized transfers.
    /// # fn read(dev: &MemDevice, mut k: Kiocb) -> Result<Submitted> {
    /// #     dev.direct_io(&mut k, &mut IovIter::<Dest, Ubuf>::new(Page::new().as_mut_bytes()))
    /// # }
    /// # fn write(dev: &MemDevice, pos: u64) -> Result<Submitted> {
    /// #     dev.direct_io(&mut Kiocb::new_sync(pos), &mut IovIter::<Source, Ubuf>::new(Page::new().as_bytes()))
    /// # }
    /// # fn at(pos: u64) -> Kiocb { Kiocb::new_sync(pos) }
    /// let dev = MemDevice::new(8192);
    /// dev.inject(FaultPlan::in_range(5000..5001, Fault::EIO)); // inside the second page
    /// assert!(read(&dev, at(0)).is_ok());
    /// assert!(read(&dev, at(4096)).is_err() && write(&dev, 4096).is_err());
    /// ```
    pub const fn in_range(range: Range<u64>, fault: Fault) -> FaultPlan {
        FaultPlan::new(Trigger::Range(range), fault)
    }

    /// Only reads match.
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, Trigger};
    /// # use iov_iter::{dio::DirectIo, kiocb::{IocbFlags, Kiocb, Submitted}};
    /// # use iov_iter::{Dest, Errno, Error, IovIter, Page, Result, Source, Ubuf};
    /// # /// Sync page-sized transfers.
    /// # fn read(dev: &MemDevice, mut k: Kiocb) -> Result<Submitted> {
    /// #     dev.direct_io(&mut k, &mut IovIter::<Dest, Ubuf>::new(Page::new().as_mut_bytes()))
    /// # }
    /// # fn write(dev: &MemDevice, pos: u64) -> Result<Submitted> {
    /// #     dev.direct_io(&mut Kiocb::new_sync(pos), &mut IovIter::<Source, Ubuf>::new(Page::new().as_bytes()))
    /// # }
    /// # fn at(pos: u64) -> Kiocb { Kiocb::new_sync(pos) }
    /// let dev = MemDevice::new(4096);
    /// dev.inject(FaultPlan::next(1, Fault::EIO).reads_only());
    /// assert!(write(&dev, 0).is_ok()); // passes, and leaves the plan armed
    /// assert!(read(&dev, at(0)).is_err());
    /// ```
    #[must_use]
    pub const fn reads_only(mut self) -> FaultPlan {
        self.op = Some(RwType::Read);
        self
    }

    /// Only writes match.
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, Trigger};
    /// # use iov_iter::{dio::DirectIo, kiocb::{IocbFlags, Kiocb, Submitted}};
    /// # use iov_iter::{Dest, Errno, Error, IovIter, Page, Result, Source, Ubuf};
    /// # /// Sync page-sized transfers.
    /// # fn read(dev: &MemDevice, mut k: Kiocb) -> Result<Submitted> {
    /// #     dev.direct_io(&mut k, &mut IovIter::<Dest, Ubuf>::new(Page::new().as_mut_bytes()))
    /// # }
    /// # fn write(dev: &MemDevice, pos: u64) -> Result<Submitted> {
    /// #     dev.direct_io(&mut Kiocb::new_sync(pos), &mut IovIter::<Source, Ubuf>::new(Page::new().as_bytes()))
    /// # }
    /// # fn at(pos: u64) -> Kiocb { Kiocb::new_sync(pos) }
    /// let dev = MemDevice::new(4096);
    /// dev.inject(FaultPlan::next(1, Fault::Error(Error::Os(Errno::ENOSPC))).writes_only());
    /// assert!(read(&dev, at(0)).is_ok());
    /// assert_eq!(write(&dev, 0).unwrap_err().errno(), Errno::ENOSPC);
    /// ```
    #[must_use]
    pub const fn writes_only(mut self) -> FaultPlan {
        self.op = Some(RwType::Write);
        self
    }

    /// Hits at most `n` transfers, then disarms itself.
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, Trigger};
    /// # use iov_iter::{dio::DirectIo, kiocb::{IocbFlags, Kiocb, Submitted}};
    /// # use iov_iter::{Dest, Errno, Error, IovIter, Page, Result, Source, Ubuf};
    /// # /// Sync page-sized transfers.
    /// # fn read(dev: &MemDevice, mut k: Kiocb) -> Result<Submitted> {
    /// #     dev.direct_io(&mut k, &mut IovIter::<Dest, Ubuf>::new(Page::new().as_mut_bytes()))
    /// # }
    /// # fn write(dev: &MemDevice, pos: u64) -> Result<Submitted> {
    /// #     dev.direct_io(&mut Kiocb::new_sync(pos), &mut IovIter::<Source, Ubuf>::new(Page::new().as_bytes()))
    /// # }
    /// # fn at(pos: u64) -> Kiocb { Kiocb::new_sync(pos) }
    /// let dev = MemDevice::new(4096);
    /// // A range plan is unlimited, but for `times`.
    /// dev.inject(FaultPlan::in_range(0..4096, Fault::EIO).times(1));
    /// assert!(read(&dev, at(0)).is_err());
    /// assert!(read(&dev, at(0)).is_ok());
    /// assert_eq!(dev.armed_faults(), 0);
    /// ```
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
///
/// # Examples
///
/// ```
/// # use iov_iter::backend::mem::{MemDevice, PendingOrder};
/// # use iov_iter::{buf::{AlignedBuf, OwnedIter}, dio::DirectIo, Dest};
/// # use iov_iter::kiocb::{CompletionFuture, Kiocb};
/// # /// Queues an async read of one page at `pos`.
/// # fn queue(dev: &MemDevice, pos: u64) -> iov_iter::Result<CompletionFuture<OwnedIter<Dest, AlignedBuf>>> {
/// #     let buf = OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(512, 4096)?);
/// #     let (mut kiocb, fut) = Kiocb::new_async_with(pos, buf);
/// #     assert!(dev.submit(&mut kiocb)?.is_queued());
/// #     Ok(fut)
/// # }
/// let dev = MemDevice::new(8192);
/// dev.defer_completions(Some(PendingOrder::Reverse));
/// let (first, second) = (queue(&dev, 0)?, queue(&dev, 4096)?);
/// assert_eq!(dev.complete_pending(1), 1);
/// assert!(second.is_complete() && !first.is_complete()); // last in, first out
/// # Ok::<(), iov_iter::Error>(())
/// ```
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
///
/// # Examples
///
/// ```
/// use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice};
/// let dev = MemDevice::new(4096);
/// let (a, b) = (dev.inject(FaultPlan::next(1, Fault::EIO)), dev.inject(FaultPlan::next(1, Fault::EIO)));
/// assert_ne!(a, b);
/// assert!(dev.remove_fault(a));
/// assert_eq!(dev.armed_faults(), 1); // `b` is still there
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FaultId(u64);

/// Counters of a [`MemDevice`]. Every [`DirectIo::transfer`] call counts as
/// one read or write, whether it succeeded, failed or was short; bytes count
/// only what was transferred.
///
/// # Examples
///
/// ```
/// # #![allow(dead_code, unused_imports)]
/// # use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, Trigger};
/// # use iov_iter::{dio::DirectIo, kiocb::{IocbFlags, Kiocb, Submitted}};
/// # use iov_iter::{Dest, Errno, Error, IovIter, Page, Result, Source, Ubuf};
/// # /// Sync page-sized transfers.
/// # fn read(dev: &MemDevice, mut k: Kiocb) -> Result<Submitted> {
/// #     dev.direct_io(&mut k, &mut IovIter::<Dest, Ubuf>::new(Page::new().as_mut_bytes()))
/// # }
/// # fn write(dev: &MemDevice, pos: u64) -> Result<Submitted> {
/// #     dev.direct_io(&mut Kiocb::new_sync(pos), &mut IovIter::<Source, Ubuf>::new(Page::new().as_bytes()))
/// # }
/// # fn at(pos: u64) -> Kiocb { Kiocb::new_sync(pos) }
/// # use iov_iter::backend::mem::MemStats;
/// let dev = MemDevice::new(8192);
/// dev.inject(FaultPlan::next(1, Fault::Short(512)));
/// assert_eq!(write(&dev, 0)?, Submitted::Done(512));
/// assert_eq!(read(&dev, at(0))?, Submitted::Done(4096));
/// let want = MemStats { reads: 1, writes: 1, bytes_read: 4096, bytes_written: 512, faults: 1 };
/// assert_eq!(dev.stats(), want);
/// # Ok::<(), iov_iter::Error>(())
/// ```
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
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, Trigger};
    /// # use iov_iter::{dio::DirectIo, kiocb::{IocbFlags, Kiocb, Submitted}};
    /// # use iov_iter::{Dest, Errno, Error, IovIter, Page, Result, Source, Ubuf};
    /// # /// Sync page-sized transfers.
    /// # fn read(dev: &MemDevice, mut k: Kiocb) -> Result<Submitted> {
    /// #     dev.direct_io(&mut k, &mut IovIter::<Dest, Ubuf>::new(Page::new().as_mut_bytes()))
    /// # }
    /// # fn write(dev: &MemDevice, pos: u64) -> Result<Submitted> {
    /// #     dev.direct_io(&mut Kiocb::new_sync(pos), &mut IovIter::<Source, Ubuf>::new(Page::new().as_bytes()))
    /// # }
    /// # fn at(pos: u64) -> Kiocb { Kiocb::new_sync(pos) }
    /// let dev = MemDevice::new(4096);
    /// dev.inject(FaultPlan::next(1, Fault::EIO));
    /// assert!(read(&dev, at(0)).is_err()); // counted all the same
    /// assert!(write(&dev, 0).is_ok());
    /// assert_eq!(dev.stats().ios(), 2);
    /// ```
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
///
/// # Examples
///
/// Two threads writing a page each into one device:
///
/// ```
/// use iov_iter::backend::mem::MemDevice;
/// use iov_iter::dio::DirectIo;
/// use iov_iter::kiocb::{Kiocb, Submitted};
/// use iov_iter::{IovIter, Page, Source, Ubuf};
///
/// let dev = MemDevice::new(8192);
/// std::thread::scope(|s| {
///     for i in 0..2u8 {
///         let dev = &dev;
///         s.spawn(move || {
///             let mut page = Page::new();
///             page.as_mut_bytes().fill(i + 1);
///             let mut src = IovIter::<Source, Ubuf>::new(page.as_bytes());
///             let done = dev.direct_io(&mut Kiocb::new_sync(u64::from(i) * 4096), &mut src);
///             assert_eq!(done, Ok(Submitted::Done(4096)));
///         });
///     }
/// });
/// let bytes = dev.snapshot();
/// assert!(bytes[..4096].iter().all(|&b| b == 1) && bytes[4096..].iter().all(|&b| b == 2));
/// ```
#[doc(alias = "brd")]
#[doc(alias = "ramdisk")]
pub struct MemDevice {
    inner: SpinLock<Inner>,
    pending: SpinLock<Pending>,
    align: DioAlign,
    caps: FileCaps,
    max_segs: usize,
}

impl MemDevice {
    /// The default alignment: 512-byte memory and offset alignment.
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, Trigger};
    /// # use iov_iter::{dio::DirectIo, kiocb::{IocbFlags, Kiocb, Submitted}};
    /// # use iov_iter::{Dest, Errno, Error, IovIter, Page, Result, Source, Ubuf};
    /// # /// Sync page-sized transfers.
    /// # fn read(dev: &MemDevice, mut k: Kiocb) -> Result<Submitted> {
    /// #     dev.direct_io(&mut k, &mut IovIter::<Dest, Ubuf>::new(Page::new().as_mut_bytes()))
    /// # }
    /// # fn write(dev: &MemDevice, pos: u64) -> Result<Submitted> {
    /// #     dev.direct_io(&mut Kiocb::new_sync(pos), &mut IovIter::<Source, Ubuf>::new(Page::new().as_bytes()))
    /// # }
    /// # fn at(pos: u64) -> Kiocb { Kiocb::new_sync(pos) }
    /// # use iov_iter::dio::DioAlign;
    /// assert_eq!(MemDevice::DEFAULT_ALIGN, DioAlign::new(512, 512)?);
    /// let dev = MemDevice::new(8192);
    /// assert_eq!(dev.dio_align(), MemDevice::DEFAULT_ALIGN);
    /// assert!(matches!(read(&dev, at(100)), Err(Error::Misaligned { .. })));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub const DEFAULT_ALIGN: DioAlign = DioAlign {
        mem: 512,
        offset: 512,
        read_offset: 0,
    };

    /// The default capabilities: `RWF_NOWAIT` supported (like `FMODE_NOWAIT`
    /// on a block device), nothing else.
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, Trigger};
    /// # use iov_iter::{dio::DirectIo, kiocb::{IocbFlags, Kiocb, Submitted}};
    /// # use iov_iter::{Dest, Errno, Error, IovIter, Page, Result, Source, Ubuf};
    /// # /// Sync page-sized transfers.
    /// # fn read(dev: &MemDevice, mut k: Kiocb) -> Result<Submitted> {
    /// #     dev.direct_io(&mut k, &mut IovIter::<Dest, Ubuf>::new(Page::new().as_mut_bytes()))
    /// # }
    /// # fn write(dev: &MemDevice, pos: u64) -> Result<Submitted> {
    /// #     dev.direct_io(&mut Kiocb::new_sync(pos), &mut IovIter::<Source, Ubuf>::new(Page::new().as_bytes()))
    /// # }
    /// # fn at(pos: u64) -> Kiocb { Kiocb::new_sync(pos) }
    /// let dev = MemDevice::new(4096);
    /// assert!(MemDevice::DEFAULT_CAPS.nowait && !MemDevice::DEFAULT_CAPS.atomic_write);
    /// assert!(read(&dev, at(0).with_flags(IocbFlags::NOWAIT)).is_ok());
    /// let atomic = at(0).with_flags(IocbFlags::ATOMIC);
    /// assert_eq!(read(&dev, atomic).unwrap_err().errno(), Errno::EOPNOTSUPP);
    /// ```
    pub const DEFAULT_CAPS: FileCaps = FileCaps {
        nowait: true,
        ..FileCaps::new()
    };

    /// A zeroed device of `size` bytes with [`MemDevice::DEFAULT_ALIGN`] and
    /// [`MemDevice::DEFAULT_CAPS`]. Aborts (through
    /// [`handle_alloc_error`](alloc::alloc::handle_alloc_error)) when the
    /// memory cannot be allocated; see [`MemDevice::try_new`].
    ///
    /// ```
    /// use iov_iter::backend::mem::MemDevice;
    /// let dev = MemDevice::new(1 << 20);
    /// assert_eq!(dev.len(), 1 << 20);
    /// assert!(dev.snapshot().iter().all(|&b| b == 0));
    /// ```
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
    ///
    /// ```
    /// use iov_iter::backend::mem::MemDevice;
    /// use iov_iter::Errno;
    /// assert_eq!(MemDevice::try_new(usize::MAX).unwrap_err().errno(), Errno::ENOMEM);
    /// assert_eq!(MemDevice::try_new(4096)?.len(), 4096);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
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
    ///
    /// ```
    /// use iov_iter::backend::mem::MemDevice;
    /// let dev = MemDevice::from_vec(b"disk image".to_vec());
    /// assert_eq!(dev.len(), 10);
    /// assert_eq!(dev.snapshot(), b"disk image");
    /// ```
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
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, Trigger};
    /// # use iov_iter::{dio::DirectIo, kiocb::{IocbFlags, Kiocb, Submitted}};
    /// # use iov_iter::{Dest, Errno, Error, IovIter, Page, Result, Source, Ubuf};
    /// # /// Sync page-sized transfers.
    /// # fn read(dev: &MemDevice, mut k: Kiocb) -> Result<Submitted> {
    /// #     dev.direct_io(&mut k, &mut IovIter::<Dest, Ubuf>::new(Page::new().as_mut_bytes()))
    /// # }
    /// # fn write(dev: &MemDevice, pos: u64) -> Result<Submitted> {
    /// #     dev.direct_io(&mut Kiocb::new_sync(pos), &mut IovIter::<Source, Ubuf>::new(Page::new().as_bytes()))
    /// # }
    /// # fn at(pos: u64) -> Kiocb { Kiocb::new_sync(pos) }
    /// # use iov_iter::dio::DioAlign;
    /// // A 4Kn disk: 4 KiB sectors.
    /// let dev = MemDevice::new(16384).with_align(DioAlign::new(4096, 4096)?);
    /// assert!(read(&dev, at(4096)).is_ok());
    /// assert!(matches!(read(&dev, at(512)), Err(Error::Misaligned { offset_align: 4096, .. })));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[must_use]
    pub fn with_align(mut self, align: DioAlign) -> MemDevice {
        self.align = align;
        self
    }

    /// Replaces the capabilities.
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, Trigger};
    /// # use iov_iter::{dio::DirectIo, kiocb::{IocbFlags, Kiocb, Submitted}};
    /// # use iov_iter::{Dest, Errno, Error, IovIter, Page, Result, Source, Ubuf};
    /// # /// Sync page-sized transfers.
    /// # fn read(dev: &MemDevice, mut k: Kiocb) -> Result<Submitted> {
    /// #     dev.direct_io(&mut k, &mut IovIter::<Dest, Ubuf>::new(Page::new().as_mut_bytes()))
    /// # }
    /// # fn write(dev: &MemDevice, pos: u64) -> Result<Submitted> {
    /// #     dev.direct_io(&mut Kiocb::new_sync(pos), &mut IovIter::<Source, Ubuf>::new(Page::new().as_bytes()))
    /// # }
    /// # fn at(pos: u64) -> Kiocb { Kiocb::new_sync(pos) }
    /// # use iov_iter::kiocb::FileCaps;
    /// let dev = MemDevice::new(4096).with_caps(FileCaps { atomic_write: true, ..FileCaps::new() });
    /// let page = Page::new();
    /// let mut src = IovIter::<Source, Ubuf>::new(page.as_bytes());
    /// let untorn = &mut Kiocb::new_sync(0).with_flags(IocbFlags::ATOMIC);
    /// assert_eq!(dev.direct_io(untorn, &mut src)?, Submitted::Done(4096));
    /// // The new caps replaced the default ones: no RWF_NOWAIT now.
    /// assert!(read(&dev, at(0).with_flags(IocbFlags::NOWAIT)).is_err());
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[must_use]
    pub fn with_caps(mut self, caps: FileCaps) -> MemDevice {
        self.caps = caps;
        self
    }

    /// Whether `RWF_NOWAIT` is supported ([`FileCaps::nowait`]).
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, Trigger};
    /// # use iov_iter::{dio::DirectIo, kiocb::{IocbFlags, Kiocb, Submitted}};
    /// # use iov_iter::{Dest, Errno, Error, IovIter, Page, Result, Source, Ubuf};
    /// # /// Sync page-sized transfers.
    /// # fn read(dev: &MemDevice, mut k: Kiocb) -> Result<Submitted> {
    /// #     dev.direct_io(&mut k, &mut IovIter::<Dest, Ubuf>::new(Page::new().as_mut_bytes()))
    /// # }
    /// # fn write(dev: &MemDevice, pos: u64) -> Result<Submitted> {
    /// #     dev.direct_io(&mut Kiocb::new_sync(pos), &mut IovIter::<Source, Ubuf>::new(Page::new().as_bytes()))
    /// # }
    /// # fn at(pos: u64) -> Kiocb { Kiocb::new_sync(pos) }
    /// let dev = MemDevice::new(4096).with_nowait(false);
    /// let nowait = at(0).with_flags(IocbFlags::NOWAIT);
    /// assert_eq!(read(&dev, nowait).unwrap_err().errno(), Errno::EOPNOTSUPP);
    /// ```
    #[must_use]
    pub fn with_nowait(mut self, nowait: bool) -> MemDevice {
        self.caps.nowait = nowait;
        self
    }

    /// The most segments one transfer takes (default [`UIO_MAXIOV`]; at
    /// least 1).
    ///
    /// ```
    /// use iov_iter::backend::mem::MemDevice;
    /// use iov_iter::dio::{DioAlign, DirectIo};
    /// use iov_iter::kiocb::{Kiocb, Submitted};
    /// use iov_iter::{Dest, IoSegMut, IovIter, Kvec};
    ///
    /// let dev = MemDevice::new(4096).with_align(DioAlign::new(1, 512)?).with_max_segs(2);
    /// let mut bufs = [[0u8; 512]; 5];
    /// let mut segs = bufs.each_mut().map(|b| IoSegMut::new(b));
    /// let mut dst = IovIter::<Dest, Kvec>::new(&mut segs);
    /// assert_eq!(dev.direct_io(&mut Kiocb::new_sync(0), &mut dst)?, Submitted::Done(2560));
    /// assert_eq!(dev.stats().reads, 3); // 2 + 2 + 1 segments
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
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
    ///
    /// ```
    /// # use iov_iter::backend::mem::{MemDevice, PendingOrder};
    /// # use iov_iter::{buf::{AlignedBuf, OwnedIter}, dio::DirectIo, Dest};
    /// # use iov_iter::kiocb::{CompletionFuture, Kiocb};
    /// # /// Queues an async read of one page at `pos`.
    /// # fn queue(dev: &MemDevice, pos: u64) -> iov_iter::Result<CompletionFuture<OwnedIter<Dest, AlignedBuf>>> {
    /// #     let buf = OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(512, 4096)?);
    /// #     let (mut kiocb, fut) = Kiocb::new_async_with(pos, buf);
    /// #     assert!(dev.submit(&mut kiocb)?.is_queued());
    /// #     Ok(fut)
    /// # }
    /// let dev = MemDevice::new(8192);
    /// let inline = queue(&dev, 0)?;
    /// assert!(inline.is_complete()); // by default, before `submit` returned
    /// dev.defer_completions(Some(PendingOrder::Fifo));
    /// let mut later = queue(&dev, 4096)?;
    /// assert!(!later.is_complete() && dev.pending() == 1);
    /// assert_eq!(dev.complete_pending(usize::MAX), 1);
    /// assert_eq!(later.try_take().map(|done| done.result), Some(Ok(4096)));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn defer_completions(&self, order: Option<PendingOrder>) {
        let mut p = self.pending.lock();
        p.order = order;
        if let Some(PendingOrder::Shuffled(seed)) = order {
            // The same seed gives the same order, each time it is set.
            p.rng = seed | 1;
        }
    }

    /// Asynchronous requests started and not completed yet.
    ///
    /// ```
    /// # use iov_iter::backend::mem::{MemDevice, PendingOrder};
    /// # use iov_iter::{buf::{AlignedBuf, OwnedIter}, dio::DirectIo, Dest};
    /// # use iov_iter::kiocb::{CompletionFuture, Kiocb};
    /// # /// Queues an async read of one page at `pos`.
    /// # fn queue(dev: &MemDevice, pos: u64) -> iov_iter::Result<CompletionFuture<OwnedIter<Dest, AlignedBuf>>> {
    /// #     let buf = OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(512, 4096)?);
    /// #     let (mut kiocb, fut) = Kiocb::new_async_with(pos, buf);
    /// #     assert!(dev.submit(&mut kiocb)?.is_queued());
    /// #     Ok(fut)
    /// # }
    /// let dev = MemDevice::new(8192);
    /// dev.defer_completions(Some(PendingOrder::Fifo));
    /// let _futs = (queue(&dev, 0)?, queue(&dev, 4096)?);
    /// assert_eq!(dev.pending(), 2);
    /// dev.complete_pending(1);
    /// assert_eq!(dev.pending(), 1);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn pending(&self) -> usize {
        self.pending.lock().ios.len()
    }

    /// Removes the deferred requests without running them, in the order
    /// they were started: for a test that plays the device itself (the
    /// requests complete, with `ECANCELED`, if dropped).
    ///
    /// ```
    /// # use iov_iter::backend::mem::{MemDevice, PendingOrder};
    /// # use iov_iter::{buf::{AlignedBuf, OwnedIter}, dio::DirectIo, Dest};
    /// # use iov_iter::kiocb::{CompletionFuture, Kiocb};
    /// # /// Queues an async read of one page at `pos`.
    /// # fn queue(dev: &MemDevice, pos: u64) -> iov_iter::Result<CompletionFuture<OwnedIter<Dest, AlignedBuf>>> {
    /// #     let buf = OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(512, 4096)?);
    /// #     let (mut kiocb, fut) = Kiocb::new_async_with(pos, buf);
    /// #     assert!(dev.submit(&mut kiocb)?.is_queued());
    /// #     Ok(fut)
    /// # }
    /// # use iov_iter::Errno;
    /// let dev = MemDevice::new(8192);
    /// dev.defer_completions(Some(PendingOrder::Fifo));
    /// let (mut a, mut b) = (queue(&dev, 0)?, queue(&dev, 4096)?);
    /// let mut ios = dev.take_pending();
    /// assert_eq!((ios.len(), ios[1].pos(), dev.pending()), (2, 4096, 0));
    /// ios.pop().unwrap().complete(Ok(0)); // the test plays the device: end of file
    /// drop(ios); // the other one is cancelled
    /// assert_eq!(b.try_take().map(|d| d.result), Some(Ok(0)));
    /// assert_eq!(a.try_take().map(|d| d.result.unwrap_err().errno()), Some(Errno::ECANCELED));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn take_pending(&self) -> Vec<AsyncIo> {
        core::mem::take(&mut self.pending.lock().ios)
    }

    /// Transfers and completes up to `max` deferred requests, in the order
    /// set by [`MemDevice::defer_completions`] (first in, first out when
    /// deferral was switched off since). Returns how many completed. A
    /// completion callback that panics does not stop the others; the first
    /// panic is raised again after them (with `std`).
    ///
    /// ```
    /// # use iov_iter::backend::mem::{MemDevice, PendingOrder};
    /// # use iov_iter::{buf::{AlignedBuf, OwnedIter}, dio::DirectIo, Dest};
    /// # use iov_iter::kiocb::{CompletionFuture, Kiocb};
    /// # /// Queues an async read of one page at `pos`.
    /// # fn queue(dev: &MemDevice, pos: u64) -> iov_iter::Result<CompletionFuture<OwnedIter<Dest, AlignedBuf>>> {
    /// #     let buf = OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(512, 4096)?);
    /// #     let (mut kiocb, fut) = Kiocb::new_async_with(pos, buf);
    /// #     assert!(dev.submit(&mut kiocb)?.is_queued());
    /// #     Ok(fut)
    /// # }
    /// let dev = MemDevice::new(4 * 4096);
    /// dev.write_at(0, &[1; 4096]);
    /// dev.defer_completions(Some(PendingOrder::Shuffled(7)));
    /// let futs = (0..4).map(|i| queue(&dev, i * 4096)).collect::<iov_iter::Result<Vec<_>>>()?;
    /// assert_eq!(dev.complete_pending(3), 3);
    /// assert_eq!(futs.iter().filter(|f| f.is_complete()).count(), 3);
    /// assert_eq!(dev.complete_pending(3), 1); // only one was left
    /// let first = futs.into_iter().next().unwrap().try_take().unwrap();
    /// assert!(first.buf.into_inner().iter().all(|&b| b == 1)); // the data moved at completion
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
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

    /// The size in bytes (also [`DirectIo::capacity`]).
    ///
    /// ```
    /// use iov_iter::backend::mem::MemDevice;
    /// use iov_iter::dio::DirectIo;
    /// let dev = MemDevice::new(8192);
    /// assert_eq!((dev.len(), dev.capacity()), (8192, Some(8192)));
    /// ```
    pub fn len(&self) -> u64 {
        self.inner.lock().data.len() as u64
    }

    /// Whether the size is 0: every read is end of file, every write
    /// `ENOSPC`.
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, Trigger};
    /// # use iov_iter::{dio::DirectIo, kiocb::{IocbFlags, Kiocb, Submitted}};
    /// # use iov_iter::{Dest, Errno, Error, IovIter, Page, Result, Source, Ubuf};
    /// # /// Sync page-sized transfers.
    /// # fn read(dev: &MemDevice, mut k: Kiocb) -> Result<Submitted> {
    /// #     dev.direct_io(&mut k, &mut IovIter::<Dest, Ubuf>::new(Page::new().as_mut_bytes()))
    /// # }
    /// # fn write(dev: &MemDevice, pos: u64) -> Result<Submitted> {
    /// #     dev.direct_io(&mut Kiocb::new_sync(pos), &mut IovIter::<Source, Ubuf>::new(Page::new().as_bytes()))
    /// # }
    /// # fn at(pos: u64) -> Kiocb { Kiocb::new_sync(pos) }
    /// let dev = MemDevice::new(0);
    /// assert!(dev.is_empty());
    /// assert_eq!(read(&dev, at(0))?, Submitted::Done(0));
    /// assert_eq!(write(&dev, 0).unwrap_err().errno(), Errno::ENOSPC);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of the whole device.
    ///
    /// ```
    /// use iov_iter::backend::mem::MemDevice;
    /// let dev = MemDevice::new(4);
    /// let before = dev.snapshot();
    /// dev.fill(9);
    /// assert_eq!((before, dev.snapshot()), (vec![0; 4], vec![9; 4]));
    /// ```
    pub fn snapshot(&self) -> Vec<u8> {
        self.inner.lock().data.clone()
    }

    /// Copies bytes at `pos` into `buf`, bypassing faults and counters;
    /// short (possibly 0) at the end of the device.
    ///
    /// ```
    /// use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice};
    /// let dev = MemDevice::from_vec(b"0123456789".to_vec());
    /// dev.inject(FaultPlan::next(1, Fault::EIO)); // not seen by read_at
    /// let mut buf = [0u8; 4];
    /// assert_eq!(dev.read_at(8, &mut buf), 2);
    /// assert_eq!(&buf[..2], b"89");
    /// assert_eq!(dev.read_at(10, &mut buf), 0);
    /// assert_eq!((dev.stats().ios(), dev.armed_faults()), (0, 1));
    /// ```
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
    ///
    /// ```
    /// use iov_iter::backend::mem::MemDevice;
    /// let dev = MemDevice::new(6);
    /// assert_eq!(dev.write_at(2, b"abcdef"), 4);
    /// assert_eq!(dev.snapshot(), b"\0\0abcd");
    /// assert_eq!(dev.write_at(6, b"x"), 0);
    /// assert_eq!(dev.stats().ios(), 0); // not counted
    /// ```
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

    /// Sets every byte to `byte` (bypassing faults and counters).
    ///
    /// ```
    /// use iov_iter::backend::mem::MemDevice;
    /// let dev = MemDevice::new(4096);
    /// dev.fill(0xa5);
    /// assert!(dev.snapshot().iter().all(|&b| b == 0xa5));
    /// ```
    pub fn fill(&self, byte: u8) {
        self.inner.lock().data.fill(byte);
    }

    /// Arms a fault plan; plans are tried in the order they were armed and
    /// at most one hits a transfer.
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, Trigger};
    /// # use iov_iter::{dio::DirectIo, kiocb::{IocbFlags, Kiocb, Submitted}};
    /// # use iov_iter::{Dest, Errno, Error, IovIter, Page, Result, Source, Ubuf};
    /// # /// Sync page-sized transfers.
    /// # fn read(dev: &MemDevice, mut k: Kiocb) -> Result<Submitted> {
    /// #     dev.direct_io(&mut k, &mut IovIter::<Dest, Ubuf>::new(Page::new().as_mut_bytes()))
    /// # }
    /// # fn write(dev: &MemDevice, pos: u64) -> Result<Submitted> {
    /// #     dev.direct_io(&mut Kiocb::new_sync(pos), &mut IovIter::<Source, Ubuf>::new(Page::new().as_bytes()))
    /// # }
    /// # fn at(pos: u64) -> Kiocb { Kiocb::new_sync(pos) }
    /// let dev = MemDevice::new(4096);
    /// dev.inject(FaultPlan::next(1, Fault::Short(512)));
    /// dev.inject(FaultPlan::next(1, Fault::EIO));
    /// assert_eq!(read(&dev, at(0))?, Submitted::Done(512)); // the first plan only
    /// assert_eq!(read(&dev, at(0)).unwrap_err().errno(), Errno::EIO); // then the second
    /// assert_eq!(dev.stats().faults, 2);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
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
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, Trigger};
    /// # use iov_iter::{dio::DirectIo, kiocb::{IocbFlags, Kiocb, Submitted}};
    /// # use iov_iter::{Dest, Errno, Error, IovIter, Page, Result, Source, Ubuf};
    /// # /// Sync page-sized transfers.
    /// # fn read(dev: &MemDevice, mut k: Kiocb) -> Result<Submitted> {
    /// #     dev.direct_io(&mut k, &mut IovIter::<Dest, Ubuf>::new(Page::new().as_mut_bytes()))
    /// # }
    /// # fn write(dev: &MemDevice, pos: u64) -> Result<Submitted> {
    /// #     dev.direct_io(&mut Kiocb::new_sync(pos), &mut IovIter::<Source, Ubuf>::new(Page::new().as_bytes()))
    /// # }
    /// # fn at(pos: u64) -> Kiocb { Kiocb::new_sync(pos) }
    /// let dev = MemDevice::new(4096);
    /// let id = dev.inject(FaultPlan::next(1, Fault::EIO));
    /// assert!(dev.remove_fault(id));
    /// assert!(read(&dev, at(0)).is_ok());
    /// let id = dev.inject(FaultPlan::next(1, Fault::EIO));
    /// assert!(read(&dev, at(0)).is_err()); // used up: disarmed itself
    /// assert!(!dev.remove_fault(id));
    /// ```
    pub fn remove_fault(&self, id: FaultId) -> bool {
        let mut inner = self.inner.lock();
        let before = inner.faults.len();
        inner.faults.retain(|a| a.id != id);
        inner.faults.len() != before
    }

    /// Disarms every plan.
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, Trigger};
    /// # use iov_iter::{dio::DirectIo, kiocb::{IocbFlags, Kiocb, Submitted}};
    /// # use iov_iter::{Dest, Errno, Error, IovIter, Page, Result, Source, Ubuf};
    /// # /// Sync page-sized transfers.
    /// # fn read(dev: &MemDevice, mut k: Kiocb) -> Result<Submitted> {
    /// #     dev.direct_io(&mut k, &mut IovIter::<Dest, Ubuf>::new(Page::new().as_mut_bytes()))
    /// # }
    /// # fn write(dev: &MemDevice, pos: u64) -> Result<Submitted> {
    /// #     dev.direct_io(&mut Kiocb::new_sync(pos), &mut IovIter::<Source, Ubuf>::new(Page::new().as_bytes()))
    /// # }
    /// # fn at(pos: u64) -> Kiocb { Kiocb::new_sync(pos) }
    /// let dev = MemDevice::new(4096);
    /// dev.inject(FaultPlan::in_range(0..4096, Fault::EIO));
    /// dev.inject(FaultPlan::next(3, Fault::Short(0)));
    /// dev.clear_faults();
    /// assert_eq!(read(&dev, at(0))?, Submitted::Done(4096));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn clear_faults(&self) {
        self.inner.lock().faults.clear();
    }

    /// Plans still armed.
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, Trigger};
    /// # use iov_iter::{dio::DirectIo, kiocb::{IocbFlags, Kiocb, Submitted}};
    /// # use iov_iter::{Dest, Errno, Error, IovIter, Page, Result, Source, Ubuf};
    /// # /// Sync page-sized transfers.
    /// # fn read(dev: &MemDevice, mut k: Kiocb) -> Result<Submitted> {
    /// #     dev.direct_io(&mut k, &mut IovIter::<Dest, Ubuf>::new(Page::new().as_mut_bytes()))
    /// # }
    /// # fn write(dev: &MemDevice, pos: u64) -> Result<Submitted> {
    /// #     dev.direct_io(&mut Kiocb::new_sync(pos), &mut IovIter::<Source, Ubuf>::new(Page::new().as_bytes()))
    /// # }
    /// # fn at(pos: u64) -> Kiocb { Kiocb::new_sync(pos) }
    /// let dev = MemDevice::new(4096);
    /// dev.inject(FaultPlan::next(2, Fault::EIO));
    /// assert!(read(&dev, at(0)).is_err());
    /// assert_eq!(dev.armed_faults(), 1); // one hit left
    /// assert!(read(&dev, at(0)).is_err());
    /// assert_eq!(dev.armed_faults(), 0);
    /// ```
    pub fn armed_faults(&self) -> usize {
        self.inner.lock().faults.len()
    }

    /// The counters.
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, Trigger};
    /// # use iov_iter::{dio::DirectIo, kiocb::{IocbFlags, Kiocb, Submitted}};
    /// # use iov_iter::{Dest, Errno, Error, IovIter, Page, Result, Source, Ubuf};
    /// # /// Sync page-sized transfers.
    /// # fn read(dev: &MemDevice, mut k: Kiocb) -> Result<Submitted> {
    /// #     dev.direct_io(&mut k, &mut IovIter::<Dest, Ubuf>::new(Page::new().as_mut_bytes()))
    /// # }
    /// # fn write(dev: &MemDevice, pos: u64) -> Result<Submitted> {
    /// #     dev.direct_io(&mut Kiocb::new_sync(pos), &mut IovIter::<Source, Ubuf>::new(Page::new().as_bytes()))
    /// # }
    /// # fn at(pos: u64) -> Kiocb { Kiocb::new_sync(pos) }
    /// let dev = MemDevice::new(8192);
    /// assert_eq!(read(&dev, at(4096))?, Submitted::Done(4096));
    /// assert_eq!(read(&dev, at(8192))?, Submitted::Done(0)); // end of device: counted, 0 bytes
    /// let stats = dev.stats();
    /// assert_eq!((stats.reads, stats.bytes_read, stats.writes), (2, 4096, 0));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn stats(&self) -> MemStats {
        self.inner.lock().stats
    }

    /// Zeroes the counters (and so restarts sequence numbers at 0).
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, Trigger};
    /// # use iov_iter::{dio::DirectIo, kiocb::{IocbFlags, Kiocb, Submitted}};
    /// # use iov_iter::{Dest, Errno, Error, IovIter, Page, Result, Source, Ubuf};
    /// # /// Sync page-sized transfers.
    /// # fn read(dev: &MemDevice, mut k: Kiocb) -> Result<Submitted> {
    /// #     dev.direct_io(&mut k, &mut IovIter::<Dest, Ubuf>::new(Page::new().as_mut_bytes()))
    /// # }
    /// # fn write(dev: &MemDevice, pos: u64) -> Result<Submitted> {
    /// #     dev.direct_io(&mut Kiocb::new_sync(pos), &mut IovIter::<Source, Ubuf>::new(Page::new().as_bytes()))
    /// # }
    /// # fn at(pos: u64) -> Kiocb { Kiocb::new_sync(pos) }
    /// let dev = MemDevice::new(4096);
    /// assert!(write(&dev, 0).is_ok());
    /// dev.reset_stats();
    /// assert_eq!(dev.stats().ios(), 0);
    /// dev.inject(FaultPlan::at_seq(0, Fault::EIO)); // the next transfer is 0 again
    /// assert!(read(&dev, at(0)).is_err());
    /// ```
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
