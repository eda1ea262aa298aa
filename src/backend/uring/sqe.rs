//! Ring set-up and the SQEs and CQEs of one operation: read or write
//! (plain, vectored, or on a registered buffer), fsync (no state).

use std::io;
use std::os::fd::RawFd;

use io_uring::{IoUring, opcode, types};

use crate::error::{Errno, Error, Result};
use crate::kiocb::{RwType, RwfFlags};
use crate::seg::UserIovec;

/// The task-work flags a ring was set up with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct TaskRun {
    /// `IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG`.
    pub(super) coop: bool,
    /// `IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
    /// IORING_SETUP_TASKRUN_FLAG`.
    pub(super) single_issuer: bool,
}

/// io_uring_setup(2) for a queue of `entries`: with `single`,
/// `IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
/// IORING_SETUP_TASKRUN_FLAG` where the kernel has them (Linux 6.1); else,
/// with `coop`, `IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG`
/// where it has those (5.19); plain otherwise. Returns the ring and which
/// took.
pub(super) fn setup_ring(entries: u32, coop: bool, single: bool) -> io::Result<(IoUring, TaskRun)> {
    if single {
        match IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_taskrun_flag()
            .build(entries)
        {
            Ok(ring) => {
                let took = TaskRun {
                    coop: false,
                    single_issuer: true,
                };
                return Ok((ring, took));
            }
            // EINVAL: a kernel that predates the flags.
            Err(e) if e.raw_os_error() == Some(Errno::EINVAL.raw()) => {}
            Err(e) => return Err(e),
        }
    }
    let (ring, coop) = setup_coop(entries, coop)?;
    let took = TaskRun {
        coop,
        single_issuer: false,
    };
    Ok((ring, took))
}

fn setup_coop(entries: u32, coop: bool) -> io::Result<(IoUring, bool)> {
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

/// Whether the kernel has `IORING_OP_READ` / `IORING_OP_WRITE` (one release
/// after `READV` / `WRITEV`, 5.6; so did the probe, so a failed probe means
/// no).
pub(super) fn has_single_ops(ring: &IoUring) -> bool {
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe).is_ok()
        && probe.is_supported(opcode::Read::CODE)
        && probe.is_supported(opcode::Write::CODE)
}

/// Which file an SQE names: a descriptor, or a slot of the ring's
/// registered-file table (`IOSQE_FIXED_FILE`, the SQE's `fd` is the slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Target {
    /// A plain descriptor, looked up (`fget`) by the kernel per request.
    Fd(RawFd),
    /// A slot of the registered-file table.
    Fixed(u32),
}

impl Target {
    /// Whether the SQE names a registered file.
    pub(super) fn is_fixed(self) -> bool {
        matches!(self, Target::Fixed(_))
    }
}

/// Evaluates `$build` with `$fd` bound to `$target` as the opcode builders
/// take it: `types::Fd`, or `types::Fixed` (which sets `IOSQE_FIXED_FILE`).
/// The io-uring crate seals the trait both implement, so the builder is
/// spelled out once per kind.
macro_rules! with_target {
    ($target:expr, |$fd:ident| $build:expr) => {
        match $target {
            Target::Fd(raw) => {
                let $fd = types::Fd(raw);
                $build
            }
            Target::Fixed(slot) => {
                let $fd = types::Fixed(slot);
                $build
            }
        }
    };
}

/// One read or write as the SQE builders need it (the memory aside).
#[derive(Clone, Copy, Debug)]
pub(super) struct RwReq {
    pub(super) rw: RwType,
    pub(super) pos: u64,
    pub(super) ioprio: u16,
    pub(super) flags: RwfFlags,
}

/// The SQE for one read or write at `req.pos` over `iov` (not empty, at
/// most `u32::MAX` entries). With `single_ops` (the kernel has them), a
/// single segment goes out as `IORING_OP_READ` / `IORING_OP_WRITE`, which
/// spares the kernel the import of a one-entry iovec array (fio does the
/// same by default); several as `IORING_OP_READV` / `IORING_OP_WRITEV`.
/// Both take the kiocb's `RWF_*` flags and ioprio. The SQE points into
/// `iov` (vectored) or into the memory its one entry describes.
pub(super) fn rw_entry(
    req: RwReq,
    target: Target,
    iov: &[UserIovec],
    single_ops: bool,
) -> io_uring::squeue::Entry {
    let rwf = req.flags.bits() as i32;
    if let ([one], true) = (iov, single_ops) {
        if let Ok(len) = u32::try_from(one.len) {
            return match req.rw {
                RwType::Read => with_target!(target, |fd| opcode::Read::new(fd, one.base, len)
                    .offset(req.pos)
                    .ioprio(req.ioprio)
                    .rw_flags(rwf)
                    .build()),
                RwType::Write => with_target!(target, |fd| opcode::Write::new(
                    fd,
                    one.base.cast_const(),
                    len
                )
                .offset(req.pos)
                .ioprio(req.ioprio)
                .rw_flags(rwf)
                .build()),
            };
        }
    }
    // The caller checked that the count fits the SQE's u32.
    let nr = iov.len() as u32;
    match req.rw {
        RwType::Read => with_target!(target, |fd| opcode::Readv::new(fd, iovec_ptr(iov), nr)
            .offset(req.pos)
            .ioprio(req.ioprio)
            .rw_flags(rwf)
            .build()),
        RwType::Write => with_target!(target, |fd| opcode::Writev::new(fd, iovec_ptr(iov), nr)
            .offset(req.pos)
            .ioprio(req.ioprio)
            .rw_flags(rwf)
            .build()),
    }
}

/// The `IORING_OP_READ_FIXED` / `IORING_OP_WRITE_FIXED` SQE for one
/// segment that lies inside registered buffer `buf_index` (the kernel
/// checks that `[base, base + len)` does, `EFAULT` otherwise, and uses the
/// pages it pinned at registration). `None` when the length does not fit
/// the SQE's u32 (a registered buffer never exceeds 1 GiB, so a segment
/// inside one always fits).
pub(super) fn rw_fixed_entry(
    req: RwReq,
    target: Target,
    one: &UserIovec,
    buf_index: u16,
) -> Option<io_uring::squeue::Entry> {
    let len = u32::try_from(one.len).ok()?;
    let rwf = req.flags.bits() as i32;
    Some(match req.rw {
        RwType::Read => with_target!(target, |fd| opcode::ReadFixed::new(
            fd, one.base, len, buf_index
        )
        .offset(req.pos)
        .ioprio(req.ioprio)
        .rw_flags(rwf)
        .build()),
        RwType::Write => with_target!(target, |fd| opcode::WriteFixed::new(
            fd,
            one.base.cast_const(),
            len,
            buf_index
        )
        .offset(req.pos)
        .ioprio(req.ioprio)
        .rw_flags(rwf)
        .build()),
    })
}

/// The `IORING_OP_FSYNC` SQE for the whole file; with `datasync`,
/// `IORING_FSYNC_DATASYNC` (`fdatasync` semantics). Points to no memory.
pub(super) fn fsync_entry(target: Target, datasync: bool) -> io_uring::squeue::Entry {
    let flags = if datasync {
        types::FsyncFlags::DATASYNC
    } else {
        types::FsyncFlags::empty()
    };
    with_target!(target, |fd| opcode::Fsync::new(fd).flags(flags).build())
}

/// The iovec array as the pointer type an opcode builder expects (the
/// io-uring crate's `*const libc::iovec`), without naming `libc`: `T` is
/// inferred from the builder, and a compile-time assertion checks that it
/// has the size and alignment of [`UserIovec`] (`struct iovec`: a pointer
/// and a `size_t`).
#[inline]
pub(super) fn iovec_ptr<T>(iov: &[UserIovec]) -> *const T {
    const {
        assert!(core::mem::size_of::<T>() == core::mem::size_of::<UserIovec>());
        assert!(core::mem::align_of::<T>() == core::mem::align_of::<UserIovec>());
    }
    iov.as_ptr().cast::<T>()
}

/// The iovec array as the slice type `Submitter::register_buffers` expects
/// (`&[libc::iovec]`), without naming `libc`: `T` is inferred from the
/// call, and [`iovec_ptr`] checks its size and alignment at compile time.
///
/// # Safety
///
/// `T` must be `struct iovec` (a pointer then a `size_t`, every bit pattern
/// valid), as the io-uring crate's `libc::iovec` is.
#[inline]
pub(super) unsafe fn iovec_slice<T>(iov: &[UserIovec]) -> &[T] {
    let ptr = iovec_ptr::<T>(iov);
    // SAFETY: `ptr` points to `iov.len()` initialised `UserIovec`s, which
    // have `T`'s layout (the caller's promise, sizes checked by
    // `iovec_ptr`), for the lifetime of the borrow of `iov`.
    unsafe { core::slice::from_raw_parts(ptr, iov.len()) }
}

// `UserIovec` is `struct iovec`, as std's `IoSlice` is on Unix.
static_assertions::assert_eq_size!(UserIovec, io::IoSlice<'static>);
static_assertions::assert_eq_align!(UserIovec, io::IoSlice<'static>);

/// An io_uring CQE result: bytes, or a negative errno.
pub(super) fn cqe_result(res: i32) -> Result<usize> {
    if res >= 0 {
        Ok(res as usize)
    } else {
        Err(Error::from(Errno::from_raw(-res)))
    }
}

/// An error from io_uring_enter(2) that only asks to try again.
pub(super) fn retryable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::EINTR | Errno::EAGAIN | Errno::EBUSY)
    )
}

/// An io_uring_enter(2) error as the crate's error.
pub(super) fn io_err(e: io::Error) -> Error {
    Error::from(Errno::from_raw(
        e.raw_os_error().unwrap_or(Errno::EIO.raw()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iovec_pointer_cast_checks_layout() {
        let iov = [UserIovec::new(core::ptr::null_mut(), 0)];
        let p: *const io::IoSlice<'static> = iovec_ptr(&iov);
        assert_eq!(p.cast::<u8>(), iov.as_ptr().cast::<u8>());
    }

    /// `IOSQE_FIXED_FILE` is bit 0 of the SQE's flags, which `Entry`
    /// shows only through `Debug`.
    fn names_a_fixed_file(e: &io_uring::squeue::Entry) -> bool {
        format!("{e:?}").contains("flags: 1,")
    }

    #[test]
    fn sqes_name_the_opcode_and_the_file_they_were_built_for() {
        let mut buf = [0u8; 64];
        let one = UserIovec::new(buf.as_mut_ptr(), 64);
        let two = [one, one];
        let req = |rw| RwReq {
            rw,
            pos: 512,
            ioprio: 0,
            flags: RwfFlags::empty(),
        };
        for target in [Target::Fd(7), Target::Fixed(3)] {
            let fixed = target.is_fixed();
            let cases = [
                (
                    rw_entry(req(RwType::Read), target, &[one], true),
                    opcode::Read::CODE,
                ),
                (
                    rw_entry(req(RwType::Write), target, &[one], true),
                    opcode::Write::CODE,
                ),
                (
                    rw_entry(req(RwType::Read), target, &[one], false),
                    opcode::Readv::CODE,
                ),
                (
                    rw_entry(req(RwType::Write), target, &two, true),
                    opcode::Writev::CODE,
                ),
                (
                    rw_fixed_entry(req(RwType::Read), target, &one, 2).unwrap(),
                    opcode::ReadFixed::CODE,
                ),
                (
                    rw_fixed_entry(req(RwType::Write), target, &one, 2).unwrap(),
                    opcode::WriteFixed::CODE,
                ),
                (fsync_entry(target, true), opcode::Fsync::CODE),
                (fsync_entry(target, false), opcode::Fsync::CODE),
            ];
            for (entry, code) in cases {
                assert_eq!(entry.get_opcode(), u32::from(code));
                assert_eq!(names_a_fixed_file(&entry), fixed, "{entry:?}");
            }
        }
        let huge = UserIovec::new(buf.as_mut_ptr(), u32::MAX as usize + 1);
        assert!(rw_fixed_entry(req(RwType::Read), Target::Fd(0), &huge, 0).is_none());
    }

    #[test]
    fn cqe_results_map_to_bytes_or_errno() {
        assert_eq!(cqe_result(4096), Ok(4096));
        assert_eq!(cqe_result(-5), Err(Error::Os(Errno::EIO)));
        assert_eq!(cqe_result(-11), Err(Error::WouldBlock));
    }
}
