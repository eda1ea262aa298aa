//! The crate's one error type, carrying the kernel's errno.
//!
//! Linux reference: `include/uapi/asm-generic/errno-base.h`, `errno.h`.
//!
//! Where the kernel answers bad input with a negative errno, a `WARN` or a
//! `BUG`, this crate returns an [`Error`]. Every variant maps to the errno the
//! kernel uses (or would use) for the same condition, through
//! [`Error::errno`], and converts into [`std::io::Error`] with that raw OS
//! error code.

use core::fmt;

/// A Linux errno value (positive, as in `errno.h`).
///
/// # Examples
///
/// ```
/// use iov_iter::Errno;
/// assert_eq!(Errno::EINVAL.raw(), 22);
/// assert_eq!(Errno::EINVAL.name(), "EINVAL");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct Errno(i32);

impl Errno {
    /// Operation not permitted.
    pub const EPERM: Errno = Errno(1);
    /// Interrupted system call.
    pub const EINTR: Errno = Errno(4);
    /// I/O error.
    pub const EIO: Errno = Errno(5);
    /// Bad file descriptor.
    pub const EBADF: Errno = Errno(9);
    /// Try again (the operation would block).
    pub const EAGAIN: Errno = Errno(11);
    /// Out of memory.
    pub const ENOMEM: Errno = Errno(12);
    /// Bad address.
    pub const EFAULT: Errno = Errno(14);
    /// Device or resource busy.
    pub const EBUSY: Errno = Errno(16);
    /// File exists; on io_uring, a second submitter on a single-issuer ring.
    pub const EEXIST: Errno = Errno(17);
    /// Invalid argument.
    pub const EINVAL: Errno = Errno(22);
    /// Broken pipe (a write to an NBD server that closed its socket).
    pub const EPIPE: Errno = Errno(32);
    /// Read-only file system (a write to a read-only NBD export).
    pub const EROFS: Errno = Errno(30);
    /// File too large.
    pub const EFBIG: Errno = Errno(27);
    /// No space left on device.
    pub const ENOSPC: Errno = Errno(28);
    /// Function not implemented.
    pub const ENOSYS: Errno = Errno(38);
    /// Protocol error (a malformed reply from an NBD server).
    pub const EPROTO: Errno = Errno(71);
    /// Operation not supported.
    pub const EOPNOTSUPP: Errno = Errno(95);
    /// Connection reset by peer (an NBD server gone mid-I/O).
    pub const ECONNRESET: Errno = Errno(104);
    /// Transport endpoint is not connected (an NBD connection that died).
    pub const ENOTCONN: Errno = Errno(107);
    /// Cannot send after transport endpoint shutdown.
    pub const ESHUTDOWN: Errno = Errno(108);
    /// Operation canceled.
    pub const ECANCELED: Errno = Errno(125);

    /// Wraps a raw positive errno value.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::Errno;
    /// // An errno from the OS, for instance out of a `std::io::Error`.
    /// let io = std::io::Error::from_raw_os_error(28);
    /// assert_eq!(Errno::from_raw(io.raw_os_error().unwrap()), Errno::ENOSPC);
    /// // Values this crate does not name are kept as they are.
    /// assert_eq!(Errno::from_raw(61).raw(), 61);
    /// ```
    #[inline]
    pub const fn from_raw(raw: i32) -> Errno {
        Errno(raw)
    }

    /// The raw positive errno value.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::Errno;
    /// assert_eq!(Errno::ENOTCONN.raw(), 107);
    /// // What `std::io::Error` (and libc) expect.
    /// let io = std::io::Error::from_raw_os_error(Errno::EAGAIN.raw());
    /// assert_eq!(io.kind(), std::io::ErrorKind::WouldBlock);
    /// ```
    #[inline]
    pub const fn raw(self) -> i32 {
        self.0
    }

    /// The symbolic name (`"EINVAL"`), or `"E?"` for a value this crate does
    /// not name. `Debug` and `Display` show it with the number.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::Errno;
    /// assert_eq!(Errno::ECANCELED.name(), "ECANCELED");
    /// assert_eq!(Errno::from_raw(61).name(), "E?");
    /// assert_eq!(format!("{:?}", Errno::EIO), "EIO(5)");
    /// assert_eq!(Errno::EIO.to_string(), "EIO (errno 5)");
    /// ```
    pub const fn name(self) -> &'static str {
        match self.0 {
            1 => "EPERM",
            4 => "EINTR",
            5 => "EIO",
            9 => "EBADF",
            11 => "EAGAIN",
            12 => "ENOMEM",
            14 => "EFAULT",
            16 => "EBUSY",
            17 => "EEXIST",
            22 => "EINVAL",
            30 => "EROFS",
            32 => "EPIPE",
            27 => "EFBIG",
            28 => "ENOSPC",
            38 => "ENOSYS",
            71 => "EPROTO",
            95 => "EOPNOTSUPP",
            104 => "ECONNRESET",
            107 => "ENOTCONN",
            108 => "ESHUTDOWN",
            125 => "ECANCELED",
            _ => "E?",
        }
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (errno {})", self.name(), self.0)
    }
}

/// Which part of a direct I/O request broke the alignment rules.
///
/// Carried by [`Error::Misaligned`]; see `DioAlign` in the direct-I/O layer.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "alloc")] {
/// use iov_iter::dio::DioAlign;
/// use iov_iter::{Error, IoSeg, IovIter, Kvec, Misalignment, Source};
///
/// let align = DioAlign::new(1, 512)?; // any address; offsets and lengths in 512s
/// let (a, b) = ([0u8; 512], [0u8; 512]);
/// let segs = [IoSeg::new(&a), IoSeg::new(&b[..100]), IoSeg::new(&b[100..])];
/// let it = IovIter::<Source, Kvec>::new(&segs); // 1024 bytes in all
/// let what = |r: iov_iter::Result<()>| match r {
///     Err(Error::Misaligned { what, .. }) => what,
///     other => panic!("not misaligned: {other:?}"),
/// };
/// assert_eq!(what(align.check(100, &it)), Misalignment::FileOffset);
/// assert_eq!(what(align.check(0, &it)), Misalignment::SegmentLength { index: 1 });
/// let short = IovIter::<Source, Kvec>::new(&segs[..2]); // 612 bytes
/// assert_eq!(what(align.check(0, &short)), Misalignment::TotalLength);
/// assert_eq!(Misalignment::SegmentLength { index: 1 }.to_string(), "length of segment 1");
/// # }
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Misalignment {
    /// A segment's start address is not a multiple of the memory alignment.
    SegmentAddress {
        /// Index of the segment, counted from the iterator's current one.
        index: usize,
    },
    /// A segment's length is not a multiple of the offset/length alignment.
    SegmentLength {
        /// Index of the segment, counted from the iterator's current one.
        index: usize,
    },
    /// The file position is not a multiple of the offset alignment.
    FileOffset,
    /// The total length is not a multiple of the offset alignment.
    TotalLength,
}

impl fmt::Display for Misalignment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Misalignment::SegmentAddress { index } => write!(f, "address of segment {index}"),
            Misalignment::SegmentLength { index } => write!(f, "length of segment {index}"),
            Misalignment::FileOffset => f.write_str("file offset"),
            Misalignment::TotalLength => f.write_str("total length"),
        }
    }
}

/// What is wrong with an extent a mapping returned (carried by
/// [`Error::BadExtent`], EIO: the kernel `WARN`s and fails the I/O).
///
/// ```
/// use iov_iter::BadExtent;
/// assert_eq!(BadExtent::Overlap.to_string(), "overlaps the previous extent");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BadExtent {
    /// Zero length (the walk would not advance).
    Empty,
    /// `offset + len` overflows.
    Overflow,
    /// It starts after the position asked for (the position is not
    /// covered).
    NotCovering,
    /// It ends at or before the position asked for (the map goes
    /// backwards).
    Backwards,
    /// It starts before the end of the previous extent of the same walk.
    Overlap,
    /// Its device range ends past the device.
    PastDevice,
    /// Its device address is not aligned like its file offset for direct
    /// I/O.
    Misaligned,
    /// A write mapped to a hole or delayed allocation: the mapping did not
    /// allocate (`WARN_ON_ONCE(iomi->flags & IOMAP_WRITE)` in the kernel).
    Unallocated,
    /// Direct I/O to an extent without a device address (unknown location,
    /// delayed allocation).
    NoAddress,
}

impl fmt::Display for BadExtent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BadExtent::Empty => "is empty",
            BadExtent::Overflow => "overflows the file offset range",
            BadExtent::NotCovering => "starts after the position",
            BadExtent::Backwards => "ends at or before the position (the map goes backwards)",
            BadExtent::Overlap => "overlaps the previous extent",
            BadExtent::PastDevice => "ends past the device",
            BadExtent::Misaligned => "has a device address misaligned for direct I/O",
            BadExtent::Unallocated => "is not allocated for a write",
            BadExtent::NoAddress => "has no device address",
        })
    }
}

/// Every error this crate returns. Each carries the kernel's errno for the
/// same condition: see [`Error::errno`].
///
/// # Examples
///
/// ```
/// use iov_iter::{Errno, Error, IovIter, Kvec, Source, IoSeg};
///
/// let data = [1u8, 2, 3, 4];
/// let segs = [IoSeg::new(&data)];
/// let mut it = IovIter::<Source, Kvec>::new(&segs);
/// it.advance(2);
/// // Reverting more than was consumed is UB in C; here it is EINVAL.
/// let err = it.revert(3).unwrap_err();
/// assert_eq!(err.errno(), Errno::EINVAL);
/// assert!(matches!(err, Error::RevertPastStart { requested: 3, consumed: 2 }));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `iov_iter_revert` by more than was consumed (UB or `BUG` in C). EINVAL.
    #[error("revert by {requested} bytes, but only {consumed} were consumed")]
    RevertPastStart {
        /// Bytes asked for.
        requested: usize,
        /// Bytes the iterator had consumed since it was built.
        consumed: usize,
    },
    /// `iov_iter_revert` by more than `MAX_RW_COUNT` (a `WARN` in C). EINVAL.
    #[error("revert by {0} bytes exceeds MAX_RW_COUNT")]
    RevertTooLarge(usize),
    /// `iov_iter_reexpand` past the bytes the segments still hold (a broken
    /// contract in C). EINVAL.
    #[error("reexpand to {requested} bytes, but the segments hold only {available}")]
    ReexpandPastEnd {
        /// Count asked for.
        requested: usize,
        /// Bytes the remaining segments hold.
        available: usize,
    },
    /// A saved [`IterState`](crate::IterState) that does not belong to this
    /// iterator. EINVAL.
    #[error("iterator state does not belong to this iterator")]
    ForeignState,
    /// More than `UIO_MAXIOV` (1024) segments. EINVAL.
    #[error("{0} segments exceed UIO_MAXIOV (1024)")]
    TooManySegments(usize),
    /// A segment length above `isize::MAX` (negative as `ssize_t`). EINVAL.
    #[error("segment {index} has length {len}, above isize::MAX")]
    SegmentTooLong {
        /// Index of the segment.
        index: usize,
        /// Its length.
        len: usize,
    },
    /// A null segment base with a non-zero length. EFAULT.
    #[error("segment {index} has a null base and a non-zero length")]
    NullSegment {
        /// Index of the segment.
        index: usize,
    },
    /// A segment that wraps the address space or reaches past the user
    /// address space (`access_ok` failing). EFAULT.
    #[error("segment {index} is outside the user address space")]
    BadAddress {
        /// Index of the segment.
        index: usize,
    },
    /// A page copy or page range that leaves its page (`page_copy_sane`
    /// failing, a `WARN` in C). EFAULT.
    #[error("{len} bytes at offset {offset} fall outside the page")]
    PageRange {
        /// Offset into the page.
        offset: usize,
        /// Length of the range.
        len: usize,
    },
    /// Page ranges that overlap each other. EINVAL.
    #[error("page ranges overlap")]
    OverlappingRanges,
    /// Pages asked of an iterator kind that cannot give them
    /// (`ITER_DISCARD`; `ITER_KVEC` for `get_pages`). EFAULT.
    #[error("this iterator kind cannot give pages")]
    NoPages,
    /// Direct I/O whose memory, file offset or length breaks the alignment
    /// rules. EINVAL; nothing was transferred.
    #[error(
        "misaligned direct I/O: {what} (memory alignment {mem_align}, offset alignment {offset_align})"
    )]
    Misaligned {
        /// Which part is misaligned.
        what: Misalignment,
        /// The required memory alignment.
        mem_align: u32,
        /// The required file offset / length alignment.
        offset_align: u32,
    },
    /// An argument outside what the operation accepts. EINVAL.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// An operation or flag the target does not support. EOPNOTSUPP.
    #[error("operation not supported: {0}")]
    NotSupported(&'static str),
    /// The operation would block and `NOWAIT` was asked. EAGAIN.
    #[error("operation would block")]
    WouldBlock,
    /// An extent a filesystem's mapping returned for position `pos` is
    /// unusable (`iomap_iter_done`'s warnings in the kernel). EIO.
    #[error("extent [{offset}, +{len}) mapped for position {pos} {why}")]
    BadExtent {
        /// The file position the mapping was asked for.
        pos: u64,
        /// The extent's file offset.
        offset: u64,
        /// The extent's length.
        len: u64,
        /// What is wrong with it.
        why: BadExtent,
    },
    /// Any other errno, from the kernel or a backend.
    #[error("{0}")]
    Os(Errno),
}

impl Error {
    /// The kernel errno for this error.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::{Errno, Error};
    /// assert_eq!(Error::WouldBlock.errno(), Errno::EAGAIN);
    /// assert_eq!(Error::NoPages.errno(), Errno::EFAULT);
    /// assert_eq!(Error::NotSupported("no TRIM").errno(), Errno::EOPNOTSUPP);
    /// assert_eq!(Error::Os(Errno::ENOSPC).errno(), Errno::ENOSPC);
    /// // An errno converts back into the matching variant.
    /// assert_eq!(Error::from(Errno::EAGAIN), Error::WouldBlock);
    /// # #[cfg(feature = "std")] {
    /// let io = std::io::Error::from(Error::InvalidArgument("bad length"));
    /// assert_eq!(io.raw_os_error(), Some(Errno::EINVAL.raw()));
    /// # }
    /// ```
    pub const fn errno(&self) -> Errno {
        match self {
            Error::RevertPastStart { .. }
            | Error::RevertTooLarge(_)
            | Error::ReexpandPastEnd { .. }
            | Error::ForeignState
            | Error::TooManySegments(_)
            | Error::SegmentTooLong { .. }
            | Error::OverlappingRanges
            | Error::Misaligned { .. }
            | Error::InvalidArgument(_) => Errno::EINVAL,
            Error::NullSegment { .. }
            | Error::BadAddress { .. }
            | Error::PageRange { .. }
            | Error::NoPages => Errno::EFAULT,
            Error::NotSupported(_) => Errno::EOPNOTSUPP,
            Error::WouldBlock => Errno::EAGAIN,
            Error::BadExtent { .. } => Errno::EIO,
            Error::Os(e) => *e,
        }
    }
}

impl From<Errno> for Error {
    fn from(e: Errno) -> Self {
        match e {
            Errno::EAGAIN => Error::WouldBlock,
            e => Error::Os(e),
        }
    }
}

#[cfg(feature = "std")]
impl From<Error> for std::io::Error {
    /// Converts with the raw OS error set to [`Error::errno`], so
    /// `raw_os_error()` gives the kernel's value.
    fn from(e: Error) -> Self {
        std::io::Error::from_raw_os_error(e.errno().raw())
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;
