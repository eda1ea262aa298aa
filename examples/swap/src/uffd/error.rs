//! Errors of the userfaultfd layer: what an ioctl's outcome means to a
//! fault handler (`EEXIST`: served by someone else; `EAGAIN`: retry the
//! rest), and the system errors.

use core::fmt;

use rustix::io::Errno;

/// Result type of the userfaultfd layer.
pub type Result<T> = core::result::Result<T, Error>;

/// Errors of the userfaultfd layer. Nothing here panics on bad input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A syscall or ioctl failed with `errno`; `op` names it.
    Os {
        /// The failing operation, e.g. `"UFFDIO_REGISTER"`.
        op: &'static str,
        /// The error number the kernel returned.
        errno: Errno,
    },
    /// `EEXIST` from `UFFDIO_COPY` / `ZEROPAGE` / `CONTINUE` / `POISON`: the
    /// first page of the range is already mapped (someone else served the
    /// fault). Nothing was done and nobody was woken: treat the fault as
    /// served and [`Uffd::wake`](super::Uffd::wake) the range if you used
    /// [`FillFlags::DONTWAKE`](super::FillFlags::DONTWAKE) anywhere, or just to be safe.
    Exists,
    /// `EAGAIN`: the operation stopped early. Either the address space was
    /// changing (`mmap_changing`, `done == 0`: retry), or the kernel filled
    /// only the first `done` bytes (the `copy`/`mapped`/... field), e.g.
    /// because a later page already existed. The `done` bytes were filled
    /// and woken (unless `DONTWAKE`); retry the rest from `dst + done`.
    Again {
        /// Bytes already handled before the kernel stopped.
        done: usize,
    },
    /// An address or length is not page aligned, is zero, overflows, or
    /// lies outside the region it was meant for.
    BadRange {
        /// Start address (or offset) given.
        start: usize,
        /// Length given.
        len: usize,
    },
    /// The kernel (or this uffd's handshake) lacks something required.
    Unsupported(&'static str),
}

impl Error {
    /// The errno: the kernel's for [`Error::Os`]; `EEXIST`, `EAGAIN`;
    /// `EINVAL` for a bad range (what the `UFFDIO_*` ioctls answer for
    /// one); `EOPNOTSUPP` for something the kernel lacks.
    pub fn errno(&self) -> Errno {
        match self {
            Error::Os { errno, .. } => *errno,
            Error::Exists => Errno::EXIST,
            Error::Again { .. } => Errno::AGAIN,
            Error::BadRange { .. } => Errno::INVAL,
            Error::Unsupported(_) => Errno::OPNOTSUPP,
        }
    }

    pub(crate) fn os(op: &'static str) -> impl FnOnce(Errno) -> Error {
        move |errno| Error::Os { op, errno }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Os { op, errno } => write!(f, "{op}: {errno}"),
            Error::Exists => f.write_str("page already mapped (EEXIST)"),
            Error::Again { done } => write!(f, "retry needed (EAGAIN) after {done} bytes"),
            Error::BadRange { start, len } => write!(f, "bad range {start:#x}+{len:#x}"),
            Error::Unsupported(what) => write!(f, "unsupported: {what}"),
        }
    }
}

impl std::error::Error for Error {}
