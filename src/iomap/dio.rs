//! [`IomapDio`]: direct I/O over a filesystem's mapping and a device (the
//! kernel's `iomap_dio_rw`).

use alloc::sync::Arc;
use core::fmt;

use smallvec::SmallVec;

use crate::buf::{AlignedBuf, SegArray};
use crate::dio::{AsyncIo, AsyncMode, DioAlign, DirectIo, split};
use crate::error::{BadExtent, Error, Result};
use crate::kiocb::{FileCaps, RwType, RwfFlags};
use crate::seg::UserIovec;

use super::{EndIoFlags, Extent, ExtentFlags, ExtentKind, IoMap, IomapOp};

/// A file as a [`DirectIo`] target: a filesystem's mapping ([`IoMap`]) over
/// a device (any [`DirectIo`]), with the direct-I/O rules of the kernel's
/// `iomap_dio_rw` applied once, here.
///
/// What a request goes through, after the crate's usual validation
/// (position, `RWF_*` flags, alignment against the device's
/// [`DioAlign`], all before any I/O):
///
/// - **Reads stop at the file size** ([`IoMap::size`]): a read at or past
///   it is `Ok(0)` without I/O; one crossing it is reported short, at the
///   size (the I/O itself covers the last aligned block, as the kernel's
///   does, and the bytes past the size are not counted).
/// - **Split at extent boundaries**: each extent's part goes to the device
///   at the extent's address ([`Extent::addr_at`]). Async requests
///   ([`DirectIo::submit`] with an async kiocb) have every part in flight
///   at once on a queued device, and complete once, merged.
/// - **Holes and unwritten extents read as zeros** without I/O.
/// - **Writes allocate through the mapping** ([`IoMap::begin`] with
///   [`IomapOp::WRITE`]); a sub-block write into a new or unwritten block
///   (or past the size) first zeroes the rest of that block on the device
///   (`iomap_dio_zero`), so no stale bytes become readable; when the write
///   has completed, [`IoMap::end_io`] converts unwritten extents and grows
///   the size.
/// - **Errors**: an error before anything was transferred is the result;
///   after some progress the result is the bytes transferred contiguously
///   from the start (a short count), exactly those are counted in the
///   buffer, and [`IoMap::end_io`] is told exactly those. A write part
///   after a failed one may still have reached the device, as with any
///   short write; its unwritten extents stay unwritten (they read as
///   zeros), so nothing past the count becomes visible. A mapping's bad
///   extent is an [`Error::BadExtent`] (EIO).
///
/// The mapping is called from the submitting thread; [`IoMap::end_io`]
/// from the thread that completes the request (a device's reaper).
///
/// # Examples
///
/// An asynchronous write into a hole, on a RAM device that defers
/// completions: the mapping allocates (unwritten), the data goes to the
/// device, and the conversion happens at completion.
///
/// ```
/// use std::sync::Mutex;
/// use iov_iter::backend::mem::{MemDevice, PendingOrder};
/// use iov_iter::buf::{AlignedBuf, OwnedIter};
/// use iov_iter::dio::DirectIo;
/// use iov_iter::iomap::{EndIoFlags, Extent, ExtentFlags, IoMap, IomapDio, IomapOp};
/// use iov_iter::kiocb::Kiocb;
/// use iov_iter::{Result, Source};
///
/// /// One extent at device offset 0: a hole until written.
/// #[derive(Default)]
/// struct OneExtent {
///     state: Mutex<(bool, u64)>, // (allocated, size)
/// }
/// impl IoMap for OneExtent {
///     fn size(&self) -> u64 {
///         self.state.lock().unwrap().1
///     }
///     fn begin(&self, _pos: u64, _len: u64, op: IomapOp) -> Result<Extent> {
///         let mut st = self.state.lock().unwrap();
///         Ok(match (st.0, op.contains(IomapOp::WRITE)) {
///             (false, false) => Extent::hole(0, 1 << 20),
///             (false, true) => {
///                 st.0 = true;
///                 Extent::unwritten(0, 1 << 20, 0).with_flags(ExtentFlags::NEW)
///             }
///             (true, _) => Extent::mapped(0, 1 << 20, 0),
///         })
///     }
///     fn end_io(&self, pos: u64, written: u64, flags: EndIoFlags) -> Result<()> {
///         assert!(flags.contains(EndIoFlags::UNWRITTEN));
///         let mut st = self.state.lock().unwrap();
///         st.1 = st.1.max(pos + written);
///         Ok(())
///     }
/// }
///
/// let dev = MemDevice::new(1 << 20);
/// dev.defer_completions(Some(PendingOrder::Fifo));
/// let file = IomapDio::new(OneExtent::default(), dev);
/// let data = OwnedIter::<Source, _>::new(AlignedBuf::from_slice(512, &[7u8; 4096])?);
/// let (mut kiocb, fut) = Kiocb::new_async_with(0, data);
/// assert!(file.submit(&mut kiocb)?.is_queued());
/// assert_eq!(file.map().size(), 0, "the size grows when the write completes");
/// assert_eq!(file.block_on(fut).result, Ok(4096));
/// assert_eq!(file.map().size(), 4096);
/// assert_eq!(&file.device().snapshot()[..4096], &[7u8; 4096][..]);
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[doc(alias = "iomap_dio_rw")]
pub struct IomapDio<M, D> {
    map: Arc<M>,
    dev: D,
}

impl<M: IoMap + 'static, D: DirectIo> IomapDio<M, D> {
    /// The file `map` describes, on `dev`.
    pub fn new(map: M, dev: D) -> IomapDio<M, D> {
        IomapDio {
            map: Arc::new(map),
            dev,
        }
    }

    /// The mapping.
    ///
    /// ```
    /// use iov_iter::backend::mem::MemDevice;
    /// use iov_iter::iomap::{Extent, IoMap, IomapDio, IomapOp};
    /// struct Empty;
    /// impl IoMap for Empty {
    ///     fn size(&self) -> u64 { 0 }
    ///     fn begin(&self, pos: u64, _: u64, _: IomapOp) -> iov_iter::Result<Extent> {
    ///         Ok(Extent::hole(pos, 512))
    ///     }
    /// }
    /// assert_eq!(IomapDio::new(Empty, MemDevice::new(512)).map().size(), 0);
    /// ```
    pub fn map(&self) -> &M {
        &self.map
    }

    /// The device.
    ///
    /// ```
    /// use iov_iter::backend::mem::MemDevice;
    /// use iov_iter::iomap::{Extent, IoMap, IomapDio, IomapOp};
    /// struct Empty;
    /// impl IoMap for Empty {
    ///     fn size(&self) -> u64 { 0 }
    ///     fn begin(&self, pos: u64, _: u64, _: IomapOp) -> iov_iter::Result<Extent> {
    ///         Ok(Extent::hole(pos, 512))
    ///     }
    /// }
    /// assert_eq!(IomapDio::new(Empty, MemDevice::new(512)).device().len(), 512);
    /// ```
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// What a request's walk reads once, not per extent.
    fn walk(&self, rw: RwType, flags: RwfFlags) -> Walk {
        Walk {
            rw,
            op: op_for(rw, flags),
            align: u64::from(self.dev.dio_align().offset_for(rw).max(1)),
            dev_size: self.dev.capacity(),
            size: self.map.size(),
        }
    }

    /// How far a request of `total` bytes at `pos` walks the mapping, and
    /// the count it may report at most (reads crossing the size).
    fn limits(&self, w: &Walk, pos: u64, total: usize) -> (usize, Option<usize>) {
        if w.rw == RwType::Write {
            return (total, None);
        }
        let size = w.size;
        if pos >= size {
            return (0, None);
        }
        let avail = size - pos;
        if avail >= total as u64 {
            return (total, None);
        }
        // The I/O covers the last aligned block; the count stops at the size.
        let walk = avail.div_ceil(w.align).saturating_mul(w.align);
        (walk.min(total as u64) as usize, Some(avail as usize))
    }

    /// Maps the part of a request at file position `at` (`want` bytes
    /// left): the extent, how much of the request it covers, what to do.
    fn plan(&self, w: &Walk, at: u64, want: usize, prev_end: Option<u64>) -> Result<Plan> {
        let rw = w.rw;
        let ext = self.map.begin(at, want as u64, w.op)?;
        ext.check(at, prev_end, w.dev_size)?;
        let n = (ext.end() - at).min(want as u64) as usize;
        let bad = |why| Error::BadExtent {
            pos: at,
            offset: ext.offset,
            len: ext.len,
            why,
        };
        if ext.kind == ExtentKind::Inline {
            return Err(Error::NotSupported("direct I/O to inline data"));
        }
        if ext.flags.contains(ExtentFlags::ENCODED) {
            return Err(Error::NotSupported("direct I/O to an encoded extent"));
        }
        let action = match (rw, ext.kind) {
            (RwType::Read, ExtentKind::Hole | ExtentKind::Unwritten) => Action::Zero,
            (RwType::Write, ExtentKind::Hole | ExtentKind::Delalloc) => {
                return Err(bad(BadExtent::Unallocated));
            }
            _ => {
                let addr = ext.addr_at(at).ok_or(bad(BadExtent::NoAddress))?;
                if addr % w.align != 0 || (n < want && n as u64 % w.align != 0) {
                    return Err(bad(BadExtent::Misaligned));
                }
                let zero = if rw == RwType::Write {
                    self.zero_around(w, &ext, at, n as u64)?
                } else {
                    [None, None]
                };
                Action::Io { addr, zero }
            }
        };
        let mut end_flags = EndIoFlags::empty();
        if rw == RwType::Write {
            if ext.kind == ExtentKind::Unwritten {
                end_flags |= EndIoFlags::UNWRITTEN;
            }
            if ext.flags.contains(ExtentFlags::NEW) {
                end_flags |= EndIoFlags::NEW;
            }
        }
        Ok(Plan {
            ext,
            at,
            n,
            action,
            end_flags,
        })
    }

    /// The device ranges to zero around a write of `[at, at + n)` into
    /// `ext` (`iomap_dio_zero`): the head and tail of partly covered
    /// blocks that are new, unwritten, or (the tail) at or past the size.
    fn zero_around(
        &self,
        w: &Walk,
        ext: &Extent,
        at: u64,
        n: u64,
    ) -> Result<[Option<(u64, u64)>; 2]> {
        let bs = u64::from(self.map.block_size());
        if bs < 512 || !bs.is_power_of_two() {
            return Err(Error::InvalidArgument(
                "mapping block size is not a power of two of at least 512",
            ));
        }
        let fresh = ext.kind == ExtentKind::Unwritten || ext.flags.contains(ExtentFlags::NEW);
        let mut out = [None, None];
        let head = at & (bs - 1);
        if fresh && head != 0 && at - head >= ext.offset {
            out[0] = ext.addr_at(at - head).map(|a| (a, head));
        }
        let end = at + n;
        let tail = end & (bs - 1);
        if (fresh || end >= w.size) && tail != 0 && end + (bs - tail) <= ext.end() {
            out[1] = ext.addr_at(end).map(|a| (a, bs - tail));
        }
        Ok(out)
    }

    /// One extent's part of a sync request: transfers of at most the
    /// device's `max_segs` iovecs, one after another, stopping at a short
    /// one.
    ///
    /// # Safety
    ///
    /// As [`DirectIo::transfer`] for `iov`.
    unsafe fn transfer_split(
        &self,
        rw: RwType,
        addr: u64,
        iov: &[UserIovec],
        flags: RwfFlags,
    ) -> Result<usize> {
        let mut done = 0usize;
        for chunk in iov.chunks(self.dev.max_segs().max(1)) {
            let len: usize = chunk.iter().map(|v| v.len).sum();
            // SAFETY: `chunk` is part of `iov`, under the caller's promises.
            let res = unsafe { self.dev.transfer(rw, addr + done as u64, chunk, flags) };
            match res {
                Ok(n) => {
                    done += n.min(len);
                    if n < len {
                        break;
                    }
                }
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(done)
    }

    /// Writes zeros over the device ranges `zero`.
    fn write_zeros(&self, zero: &[Option<(u64, u64)>; 2], flags: RwfFlags) -> Result<()> {
        for &(addr, len) in zero.iter().flatten() {
            let buf = AlignedBuf::zeroed(self.dev.dio_align().mem as usize, len as usize)?;
            let iov = [UserIovec::new(buf.as_ptr().cast_mut(), buf.len())];
            // SAFETY: `iov` describes `buf`, alive and unshared for the call.
            let got = unsafe { self.dev.transfer(RwType::Write, addr, &iov, flags) }?;
            if got != buf.len() {
                return Err(Error::Os(crate::Errno::ENOSPC));
            }
        }
        Ok(())
    }
}

/// What a request's walk reads once: its direction and mapping operation,
/// the device's offset alignment and size, the file size.
struct Walk {
    rw: RwType,
    op: IomapOp,
    align: u64,
    dev_size: Option<u64>,
    size: u64,
}

/// What to do with one extent's part of a request.
#[derive(Debug, Clone, Copy)]
enum Action {
    /// A read of a hole or unwritten extent: zeros, no I/O.
    Zero,
    /// I/O at device address `addr`, after zeroing the device ranges.
    Io {
        addr: u64,
        zero: [Option<(u64, u64)>; 2],
    },
}

#[derive(Debug, Clone, Copy)]
struct Plan {
    ext: Extent,
    at: u64,
    n: usize,
    action: Action,
    end_flags: EndIoFlags,
}

fn op_for(rw: RwType, flags: RwfFlags) -> IomapOp {
    let mut op = IomapOp::DIRECT;
    if rw == RwType::Write {
        op |= IomapOp::WRITE;
    }
    if flags.contains(RwfFlags::NOWAIT) {
        op |= IomapOp::NOWAIT;
    }
    op
}

/// The iovecs covering bytes `[from, from + len)` of `iov`.
fn cut(iov: &[UserIovec], from: usize, len: usize) -> SegArray {
    let mut out = SegArray::new();
    let (mut off, end) = (0usize, from + len);
    for v in iov {
        let (a, b) = (off, off + v.len);
        let (lo, hi) = (a.max(from), b.min(end));
        if lo < hi {
            // `lo - a < v.len`: inside the iovec's memory.
            out.push(UserIovec::new(v.base.wrapping_add(lo - a), hi - lo));
        }
        if b >= end {
            break;
        }
        off = b;
    }
    out
}

impl<M: IoMap + 'static, D: DirectIo> DirectIo for IomapDio<M, D> {
    fn dio_align(&self) -> DioAlign {
        self.dev.dio_align()
    }

    fn caps(&self) -> FileCaps {
        self.dev.caps()
    }

    /// No limit: the path splits requests itself, at the device's
    /// `max_segs` after the extents, so that an asynchronous request's
    /// completion (and [`IoMap::end_io`]) sees it whole, every part merged.
    fn max_segs(&self) -> usize {
        usize::MAX
    }

    fn async_mode(&self) -> AsyncMode {
        self.dev.async_mode()
    }

    /// The sync path: extent after extent, stopping at a short part.
    unsafe fn transfer(
        &self,
        rw: RwType,
        pos: u64,
        iov: &[UserIovec],
        flags: RwfFlags,
    ) -> Result<usize> {
        let total: usize = iov.iter().map(|v| v.len).sum();
        let w = self.walk(rw, flags);
        let (limit, cap) = self.limits(&w, pos, total);
        let op = w.op;
        let (mut done, mut prev_end, mut err) = (0usize, None, None);
        let mut end_flags = EndIoFlags::empty();
        while done < limit {
            let plan = match self.plan(&w, pos + done as u64, limit - done, prev_end) {
                Ok(plan) => plan,
                Err(e) => {
                    err = Some(e);
                    break;
                }
            };
            prev_end = Some(plan.ext.end());
            let piece = cut(iov, done, plan.n);
            let res = match plan.action {
                Action::Zero => {
                    for v in &piece {
                        // SAFETY: a read's memory is valid for writes for
                        // the call (the caller's promise).
                        unsafe { v.base.write_bytes(0, v.len) };
                    }
                    Ok(plan.n)
                }
                Action::Io { addr, zero } => self.write_zeros(&zero, flags).and_then(|()| {
                    // SAFETY: `piece` is part of the caller's memory, under
                    // the caller's promises for this call.
                    unsafe { self.transfer_split(rw, addr, &piece, flags) }
                }),
            };
            let got = res.as_ref().map_or(0, |&n| n.min(plan.n));
            if got > 0 {
                end_flags |= plan.end_flags;
            }
            let ended = self
                .map
                .end(plan.at, plan.n as u64, got as u64, op, &plan.ext);
            done += got;
            if let Err(e) = res.and(ended) {
                err = Some(e);
                break;
            }
            if got < plan.n {
                break;
            }
        }
        if rw == RwType::Write {
            self.map.end_io(pos, done as u64, end_flags)?;
        }
        match err {
            Some(e) if done == 0 => Err(e),
            _ => Ok(cap.map_or(done, |c| done.min(c))),
        }
    }

    /// The async path: every extent's part of the request started at once.
    fn start(&self, io: AsyncIo) {
        let (rw, pos, flags) = (io.rw(), io.pos(), io.flags());
        let w = self.walk(rw, flags);
        let (limit, cap) = self.limits(&w, pos, io.len());
        if limit == 0 {
            io.complete(Ok(0));
            return;
        }
        let op = w.op;
        let mut plans: SmallVec<[Plan; 4]> = SmallVec::new();
        let (mut planned, mut prev_end, mut err) = (0usize, None, None);
        while planned < limit {
            match self.plan(&w, pos + planned as u64, limit - planned, prev_end) {
                Ok(plan) => {
                    prev_end = Some(plan.ext.end());
                    planned += plan.n;
                    plans.push(plan);
                }
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        if plans.is_empty() {
            io.complete(Err(err.unwrap_or(Error::Os(crate::Errno::EIO))));
            if rw == RwType::Write {
                let _ = self.map.end_io(pos, 0, EndIoFlags::empty());
            }
            return;
        }
        let io = if rw == RwType::Write || cap.is_some() {
            let map = Arc::clone(&self.map);
            let end_flags = plans
                .iter()
                .fold(EndIoFlags::empty(), |f, p| f | p.end_flags);
            io.on_complete(move |res| {
                let res = res.map(|n| cap.map_or(n, |c| n.min(c)));
                if rw == RwType::Write {
                    let written = res.as_ref().map_or(0, |&n| n as u64);
                    map.end_io(pos, written, end_flags)?;
                }
                res
            })
        } else {
            io
        };
        let mut rest = Some(io);
        for plan in &plans {
            let Some(io) = rest.take() else { break };
            let piece = match io.split_at(plan.n) {
                Ok((piece, tail)) => {
                    rest = Some(tail);
                    piece
                }
                Err(whole) => whole,
            };
            match plan.action {
                Action::Zero => {
                    // Plans of writes never zero-fill: `plan` refuses holes.
                    if let Err(write) = piece.zero_fill() {
                        write.complete(Err(Error::Os(crate::Errno::EIO)));
                    }
                }
                Action::Io { addr, zero } => match self.write_zeros(&zero, flags) {
                    Ok(()) => {
                        let mut piece = piece;
                        piece.set_pos(addr);
                        for part in split(piece, self.dev.max_segs()) {
                            self.dev.start(part);
                        }
                    }
                    Err(e) => piece.complete(Err(e)),
                },
            }
            if let Err(e) = self
                .map
                .end(plan.at, plan.n as u64, plan.n as u64, op, &plan.ext)
            {
                err = Some(e);
                break;
            }
        }
        if let Some(rest) = rest {
            rest.complete(err.map_or(Ok(0), Err));
        }
    }

    fn drive(&self, min_complete: usize) -> Result<usize> {
        self.dev.drive(min_complete)
    }
}

impl<M: fmt::Debug, D: fmt::Debug> fmt::Debug for IomapDio<M, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IomapDio")
            .field("map", &self.map)
            .field("dev", &self.dev)
            .finish()
    }
}
