//! Ring set-up and the SQEs and CQEs of one read or write (no state).

use std::io;

use io_uring::{IoUring, opcode, types};

use crate::error::{Errno, Error, Result};
use crate::kiocb::{RwType, RwfFlags};
use crate::seg::UserIovec;

/// io_uring_setup(2) for a queue of `entries`; with `coop`,
/// `IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG` where the kernel
/// has them (Linux 5.19) and plain otherwise. Returns the ring and whether
/// the flags took.
pub(super) fn setup_ring(entries: u32, coop: bool) -> io::Result<(IoUring, bool)> {
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

/// The SQE for one read or write at `pos` over `iov` (not empty, at most
/// `u32::MAX` entries). With `single_ops` (the kernel has them), a single
/// segment goes out as `IORING_OP_READ` / `IORING_OP_WRITE`, which spares
/// the kernel the import of a one-entry iovec array (fio does the same by
/// default); several as `IORING_OP_READV` / `IORING_OP_WRITEV`. Both take
/// the kiocb's `RWF_*` flags and ioprio. The SQE points into `iov`
/// (vectored) or into the memory its one entry describes.
pub(super) fn rw_entry(
    rw: RwType,
    fd: types::Fd,
    iov: &[UserIovec],
    pos: u64,
    ioprio: u16,
    flags: RwfFlags,
    single_ops: bool,
) -> io_uring::squeue::Entry {
    let rwf = flags.bits() as i32;
    if let ([one], true) = (iov, single_ops) {
        if let Ok(len) = u32::try_from(one.len) {
            return match rw {
                RwType::Read => opcode::Read::new(fd, one.base, len)
                    .offset(pos)
                    .ioprio(ioprio)
                    .rw_flags(rwf)
                    .build(),
                RwType::Write => opcode::Write::new(fd, one.base.cast_const(), len)
                    .offset(pos)
                    .ioprio(ioprio)
                    .rw_flags(rwf)
                    .build(),
            };
        }
    }
    // The caller checked that the count fits the SQE's u32.
    let nr = iov.len() as u32;
    let ptr = iovec_ptr(iov);
    match rw {
        RwType::Read => opcode::Readv::new(fd, ptr, nr)
            .offset(pos)
            .ioprio(ioprio)
            .rw_flags(rwf)
            .build(),
        RwType::Write => opcode::Writev::new(fd, ptr, nr)
            .offset(pos)
            .ioprio(ioprio)
            .rw_flags(rwf)
            .build(),
    }
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

    #[test]
    fn cqe_results_map_to_bytes_or_errno() {
        assert_eq!(cqe_result(4096), Ok(4096));
        assert_eq!(cqe_result(-5), Err(Error::Os(Errno::EIO)));
        assert_eq!(cqe_result(-11), Err(Error::WouldBlock));
    }
}
