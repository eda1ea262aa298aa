//! `struct kiocb`: the per-I/O control block, its `IOCB_*` / `RWF_*` flags,
//! and the synchronous / asynchronous completion contract.
//!
//! Linux reference: `include/linux/fs.h` (`struct kiocb`, `IOCB_*`,
//! `init_sync_kiocb`, `kiocb_set_rw_flags`), `include/uapi/linux/fs.h`
//! (`RWF_*`), `fs/iomap/direct-io.c` (`-EIOCBQUEUED`, `ki_complete`).
//!
//! # Flags
//!
//! [`IocbFlags`] are the kernel's `ki_flags` bits with the kernel's values.
//! [`RwfFlags`] are the per-call `preadv2` / `pwritev2` / io_uring flags.
//! [`Kiocb::set_rw_flags`] validates them against a file's capabilities
//! ([`FileCaps`]) in exactly the order `kiocb_set_rw_flags` uses, and leaves
//! the kiocb untouched when it fails.
//!
//! # Sync and async kiocbs
//!
//! A kiocb built with [`Kiocb::new_sync`] has no completion: it is
//! *synchronous* ([`Kiocb::is_sync`], the kernel's `is_sync_kiocb`). A kiocb
//! built with [`Kiocb::with_completion`] (a callback) or [`Kiocb::new_async`]
//! (a [`Future`]) is *asynchronous* and stays so for its
//! whole life. Async kiocbs need the `alloc` feature.
//!
//! The contract every submit path (for example direct I/O) follows, and that
//! its callers may rely on:
//!
//! * **Sync kiocb.** Submit returns `Ok(Submitted::Done(n))` or `Err(e)`,
//!   never [`Submitted::Queued`]. On success the submitter has advanced
//!   [`Kiocb::pos`] by `n` (see [`Kiocb::advance_pos`]).
//! * **Async kiocb.** Submit either
//!   * takes the completion with [`Kiocb::take_completion`] and returns
//!     `Ok(Submitted::Queued)` (the kernel's `-EIOCBQUEUED`). From then on
//!     the I/O owns the [`Completion`], which runs **exactly once** with the
//!     byte count or the error, possibly before submit even returns (inline
//!     completion). Everything that happens after the request was queued,
//!     including an immediate failure or an instant success, is delivered
//!     through the completion, never through submit's return value; or
//!   * returns `Err(e)` *before anything was queued*, leaving the completion
//!     in the kiocb untouched. The caller then decides: deliver the error
//!     through the completion with [`Kiocb::complete`] (what `fs/aio.c`'s
//!     `aio_rw_done` does with any return other than `-EIOCBQUEUED`), retry,
//!     or drop the kiocb.
//!
//!   An async submit never returns `Submitted::Done`.
//! * **Exactly once, enforced by types.** [`Completion::complete`] consumes
//!   the completion, and [`Completion`] is not `Clone`. A completion dropped
//!   without being completed (including the one inside a kiocb that is
//!   dropped before submission) runs with
//!   `Err(Error::Os(Errno::ECANCELED))`, so a waiter never hangs. A second
//!   [`Kiocb::take_completion`] returns `None`, so one async kiocb cannot be
//!   queued twice.
//! * **The position advances on completion.** [`Completed::pos`] is the start
//!   position plus the bytes transferred on success, and the start position
//!   on failure.
//!
//! # Examples
//!
//! A direct-I/O-like submit path, driven by a future:
//!
//! ```
//! use iov_iter::kiocb::{Kiocb, Submitted};
//! use iov_iter::Result;
//!
//! // The submit side: queue the "I/O" on another thread.
//! fn submit(kiocb: &mut Kiocb, len: usize) -> Result<Submitted> {
//!     if kiocb.is_sync() {
//!         kiocb.advance_pos(len);
//!         return Ok(Submitted::Done(len));
//!     }
//!     let start = kiocb.pos;
//!     let Some(completion) = kiocb.take_completion() else {
//!         return Err(iov_iter::Error::InvalidArgument("kiocb already queued"));
//!     };
//!     std::thread::spawn(move || completion.complete(start, Ok(len)));
//!     Ok(Submitted::Queued)
//! }
//!
//! let mut sync = Kiocb::new_sync(4096);
//! assert_eq!(submit(&mut sync, 512)?, Submitted::Done(512));
//! assert_eq!(sync.pos, 4608);
//!
//! let (mut kiocb, done) = Kiocb::new_async(4096);
//! assert_eq!(submit(&mut kiocb, 512)?, Submitted::Queued);
//! let completed = done.wait();
//! assert_eq!(completed.result, Ok(512));
//! assert_eq!(completed.pos, 4608);
//! # Ok::<(), iov_iter::Error>(())
//! ```

use core::fmt;

use crate::error::{Errno, Error, Result};

#[cfg(feature = "alloc")]
pub use self::async_completion::{Completion, CompletionFuture};

// The flag types live in a private module and are re-exported: the methods
// `bitflags!` generates (`empty`, `contains`, `iter`, ...) carry bitflags'
// own documentation, which cannot take an example, so they are not counted
// as this crate's items (as for `PageFlags` and the `iomap` flags). The
// documentation a user reads is the same.
mod flags {
    bitflags::bitflags! {
        /// The kernel's `ki_flags` (`IOCB_*`), with the kernel's bit values.
        ///
        /// The low bits mirror [`RwfFlags`] one for one (the IOCB value equals
        /// the RWF value); bits 16 and up are kernel-internal.
        ///
        /// # Examples
        ///
        /// ```
        /// use iov_iter::kiocb::{IocbFlags, RwfFlags};
        /// assert_eq!(IocbFlags::NOWAIT.bits(), RwfFlags::NOWAIT.bits());
        /// assert_eq!(IocbFlags::DIRECT.bits(), 1 << 17);
        /// ```
        #[doc(alias = "ki_flags")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct IocbFlags: u32 {
            /// Poll for completion (`IOCB_HIPRI`).
            #[doc(alias = "IOCB_HIPRI")]
            const HIPRI = 0x1;
            /// `O_DSYNC` semantics for this I/O (`IOCB_DSYNC`).
            #[doc(alias = "IOCB_DSYNC")]
            const DSYNC = 0x2;
            /// `O_SYNC` semantics for this I/O (`IOCB_SYNC`).
            #[doc(alias = "IOCB_SYNC")]
            const SYNC = 0x4;
            /// Return `EAGAIN` rather than block (`IOCB_NOWAIT`).
            #[doc(alias = "IOCB_NOWAIT")]
            const NOWAIT = 0x8;
            /// Write at the end of the file (`IOCB_APPEND`).
            #[doc(alias = "IOCB_APPEND")]
            const APPEND = 0x10;
            /// Untorn (atomic) write (`IOCB_ATOMIC`, Linux 6.11).
            #[doc(alias = "IOCB_ATOMIC")]
            const ATOMIC = 0x40;
            /// Uncached buffered I/O (`IOCB_DONTCACHE`, Linux 6.14).
            #[doc(alias = "IOCB_DONTCACHE")]
            const DONTCACHE = 0x80;
            /// No `SIGPIPE` on pipe or socket writes (`IOCB_NOSIGNAL`).
            #[doc(alias = "IOCB_NOSIGNAL")]
            const NOSIGNAL = 0x100;
            /// Signal an eventfd on completion (`IOCB_EVENTFD`).
            #[doc(alias = "IOCB_EVENTFD")]
            const EVENTFD = 1 << 16;
            /// `O_DIRECT` I/O (`IOCB_DIRECT`).
            #[doc(alias = "IOCB_DIRECT")]
            const DIRECT = 1 << 17;
            /// The I/O is a write (`IOCB_WRITE`).
            #[doc(alias = "IOCB_WRITE")]
            const WRITE = 1 << 18;
            /// `ki_waitq` is valid: async buffered read (`IOCB_WAITQ`).
            #[doc(alias = "IOCB_WAITQ")]
            const WAITQ = 1 << 19;
            /// Do not start any I/O (`IOCB_NOIO`); set together with `NOWAIT`.
            #[doc(alias = "IOCB_NOIO")]
            const NOIO = 1 << 20;
            /// May use the bio allocation cache (`IOCB_ALLOC_CACHE`).
            #[doc(alias = "IOCB_ALLOC_CACHE")]
            const ALLOC_CACHE = 1 << 21;
            /// The issuer runs the direct-I/O completion (`IOCB_DIO_CALLER_COMP`).
            #[doc(alias = "IOCB_DIO_CALLER_COMP")]
            const DIO_CALLER_COMP = 1 << 22;
            /// Submitted through `fs/aio.c` (`IOCB_AIO_RW`).
            #[doc(alias = "IOCB_AIO_RW")]
            const AIO_RW = 1 << 23;
            /// The request carries integrity metadata (`IOCB_HAS_METADATA`).
            #[doc(alias = "IOCB_HAS_METADATA")]
            const HAS_METADATA = 1 << 24;
        }
    }

    bitflags::bitflags! {
        /// Per-call read/write flags (`rwf_t`, `RWF_*`) of `preadv2`,
        /// `pwritev2`, aio and io_uring, with the kernel's bit values.
        ///
        /// Build from a raw user value with [`RwfFlags::from_raw_bits`], which
        /// keeps unknown bits so that
        /// [`Kiocb::set_rw_flags`](super::Kiocb::set_rw_flags) can reject them
        /// with `EOPNOTSUPP`.
        ///
        /// # Examples
        ///
        /// ```
        /// use iov_iter::kiocb::RwfFlags;
        /// let raw = RwfFlags::from_raw_bits(0x8 | 0x8000);
        /// assert!(raw.contains(RwfFlags::NOWAIT));
        /// assert!(!RwfFlags::SUPPORTED.contains(raw)); // 0x8000 is unknown
        /// ```
        #[doc(alias = "rwf_t")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct RwfFlags: u32 {
            /// High-priority (polled) request (`RWF_HIPRI`).
            #[doc(alias = "RWF_HIPRI")]
            const HIPRI = 0x1;
            /// Per-I/O `O_DSYNC` (`RWF_DSYNC`).
            #[doc(alias = "RWF_DSYNC")]
            const DSYNC = 0x2;
            /// Per-I/O `O_SYNC` (`RWF_SYNC`); implies `DSYNC` on the kiocb.
            #[doc(alias = "RWF_SYNC")]
            const SYNC = 0x4;
            /// Per-I/O non-blocking mode (`RWF_NOWAIT`).
            #[doc(alias = "RWF_NOWAIT")]
            const NOWAIT = 0x8;
            /// Per-I/O `O_APPEND` (`RWF_APPEND`).
            #[doc(alias = "RWF_APPEND")]
            const APPEND = 0x10;
            /// Per-I/O negation of `O_APPEND` (`RWF_NOAPPEND`): honour the
            /// offset. Has no `IOCB_*` twin.
            #[doc(alias = "RWF_NOAPPEND")]
            const NOAPPEND = 0x20;
            /// Untorn (atomic) write (`RWF_ATOMIC`).
            #[doc(alias = "RWF_ATOMIC")]
            const ATOMIC = 0x40;
            /// Uncached buffered I/O (`RWF_DONTCACHE`).
            #[doc(alias = "RWF_DONTCACHE")]
            const DONTCACHE = 0x80;
            /// No `SIGPIPE` (`RWF_NOSIGNAL`).
            #[doc(alias = "RWF_NOSIGNAL")]
            const NOSIGNAL = 0x100;
        }
    }
}

pub use flags::{IocbFlags, RwfFlags};

impl RwfFlags {
    /// Every flag this crate (and mainline Linux) knows (`RWF_SUPPORTED`).
    #[doc(alias = "RWF_SUPPORTED")]
    pub const SUPPORTED: RwfFlags = RwfFlags::all();

    /// Wraps a raw `rwf_t` value, **keeping** unknown bits (bitflags'
    /// `from_bits_retain`), so that validation can reject them.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::kiocb::RwfFlags;
    /// // The flags argument of a preadv2 call, with an unknown bit 0x8000.
    /// let raw = RwfFlags::from_raw_bits(0x8000 | 0x2);
    /// assert_eq!(raw.bits(), 0x8002); // kept, for validation to refuse
    /// assert!(raw.contains(RwfFlags::DSYNC));
    /// // bitflags' `from_bits_truncate` would have dropped it silently.
    /// assert_eq!(RwfFlags::from_bits_truncate(0x8002), RwfFlags::DSYNC);
    /// ```
    #[inline]
    pub const fn from_raw_bits(bits: u32) -> RwfFlags {
        RwfFlags::from_bits_retain(bits)
    }
}

// The RWF-mirrored IOCB bits equal their RWF twins, and RWF_SUPPORTED does
// not overlap the kernel-private IOCB bits (the kernel's BUILD_BUG_ON).
static_assertions::const_assert_eq!(IocbFlags::HIPRI.bits(), RwfFlags::HIPRI.bits());
static_assertions::const_assert_eq!(IocbFlags::DSYNC.bits(), RwfFlags::DSYNC.bits());
static_assertions::const_assert_eq!(IocbFlags::SYNC.bits(), RwfFlags::SYNC.bits());
static_assertions::const_assert_eq!(IocbFlags::NOWAIT.bits(), RwfFlags::NOWAIT.bits());
static_assertions::const_assert_eq!(IocbFlags::APPEND.bits(), RwfFlags::APPEND.bits());
static_assertions::const_assert_eq!(IocbFlags::ATOMIC.bits(), RwfFlags::ATOMIC.bits());
static_assertions::const_assert_eq!(IocbFlags::DONTCACHE.bits(), RwfFlags::DONTCACHE.bits());
static_assertions::const_assert_eq!(IocbFlags::NOSIGNAL.bits(), RwfFlags::NOSIGNAL.bits());
static_assertions::const_assert_eq!(RwfFlags::SUPPORTED.bits() & IocbFlags::EVENTFD.bits(), 0);
static_assertions::const_assert_eq!(RwfFlags::SUPPORTED.bits() & 0xffff_0000, 0);

/// Direction of the request, the `rw_type` argument of `kiocb_set_rw_flags`
/// (the kernel's `READ` / `WRITE`).
///
/// # Examples
///
/// ```
/// use iov_iter::kiocb::{FileCaps, IocbFlags, Kiocb, RwType, RwfFlags};
/// use iov_iter::Errno;
///
/// let caps = FileCaps { atomic_write: true, ..FileCaps::new() };
/// let mut kiocb = Kiocb::new_sync(0);
/// // Untorn writes exist; untorn reads do not.
/// let err = kiocb.set_rw_flags(RwfFlags::ATOMIC, RwType::Read, &caps).unwrap_err();
/// assert_eq!(err.errno(), Errno::EOPNOTSUPP);
/// kiocb.set_rw_flags(RwfFlags::ATOMIC, RwType::Write, &caps)?;
/// assert_eq!(kiocb.flags, IocbFlags::ATOMIC);
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[doc(alias = "rw_type")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RwType {
    /// A read (`READ`).
    #[doc(alias = "READ")]
    Read,
    /// A write (`WRITE`).
    #[doc(alias = "WRITE")]
    Write,
}

/// What the file (and its filesystem and inode) supports, as far as
/// [`Kiocb::set_rw_flags`] needs to know. `Default` is "supports nothing".
///
/// # Examples
///
/// ```
/// use iov_iter::kiocb::FileCaps;
/// let caps = FileCaps { nowait: true, ..FileCaps::default() };
/// assert!(caps.nowait && !caps.atomic_write);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FileCaps {
    /// The file supports non-blocking I/O (`FMODE_NOWAIT`); needed for
    /// `RWF_NOWAIT`.
    #[doc(alias = "FMODE_NOWAIT")]
    pub nowait: bool,
    /// The file supports untorn writes (`FMODE_CAN_ATOMIC_WRITE`); needed for
    /// `RWF_ATOMIC`.
    #[doc(alias = "FMODE_CAN_ATOMIC_WRITE")]
    pub atomic_write: bool,
    /// The filesystem supports uncached buffered I/O (`FOP_DONTCACHE`);
    /// needed for `RWF_DONTCACHE`.
    #[doc(alias = "FOP_DONTCACHE")]
    pub dontcache: bool,
    /// The inode is append-only (`IS_APPEND`, `chattr +a`): `RWF_NOAPPEND`
    /// on an `O_APPEND` kiocb is `EPERM`.
    #[doc(alias = "IS_APPEND")]
    #[doc(alias = "S_APPEND")]
    pub append_only: bool,
    /// The inode is a DAX mapping (`IS_DAX`): `RWF_DONTCACHE` is refused.
    #[doc(alias = "IS_DAX")]
    pub dax: bool,
}

impl FileCaps {
    /// A file that supports nothing optional (same as `Default`), usable in
    /// a `const`.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::kiocb::{FileCaps, Kiocb, RwType, RwfFlags};
    /// use iov_iter::Errno;
    ///
    /// const PLAIN: FileCaps = FileCaps::new();
    /// assert_eq!(PLAIN, FileCaps::default());
    /// // Without FMODE_NOWAIT, RWF_NOWAIT is refused.
    /// let mut kiocb = Kiocb::new_sync(0);
    /// let err = kiocb.set_rw_flags(RwfFlags::NOWAIT, RwType::Read, &PLAIN).unwrap_err();
    /// assert_eq!(err.errno(), Errno::EOPNOTSUPP);
    /// ```
    pub const fn new() -> FileCaps {
        FileCaps {
            nowait: false,
            atomic_write: false,
            dontcache: false,
            append_only: false,
            dax: false,
        }
    }
}

/// What a submit path (for example direct I/O) returns when it did not fail
/// up front. See the [module documentation](self) for the contract.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "alloc")] {
/// use iov_iter::backend::mem::MemDevice;
/// use iov_iter::dio::DirectIo;
/// use iov_iter::kiocb::{Kiocb, Submitted};
/// use iov_iter::{IovIter, Page, Source, Ubuf};
///
/// let (dev, page) = (MemDevice::new(8192), Page::new());
/// // A sync kiocb: the bytes moved are the answer.
/// let mut src = IovIter::<Source, Ubuf>::new(page.as_bytes());
/// assert_eq!(dev.direct_io(&mut Kiocb::new_sync(0), &mut src)?, Submitted::Done(4096));
/// // An async kiocb: the answer comes through its completion.
/// let (mut kiocb, fut) = Kiocb::new_async(4096);
/// let mut src = IovIter::<Source, Ubuf>::new(page.as_bytes());
/// assert_eq!(dev.direct_io(&mut kiocb, &mut src)?, Submitted::Queued);
/// assert_eq!(fut.try_get().map(|done| done.result), Some(Ok(4096)));
/// # }
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[must_use = "a Queued request completes through the kiocb's completion"]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Submitted {
    /// The I/O finished synchronously and moved this many bytes. Only for
    /// sync kiocbs.
    Done(usize),
    /// The I/O was queued (`-EIOCBQUEUED`): the result arrives, exactly
    /// once, through the kiocb's completion. Only for async kiocbs.
    #[doc(alias = "EIOCBQUEUED")]
    #[doc(alias = "-EIOCBQUEUED")]
    Queued,
}

impl Submitted {
    /// `true` for [`Submitted::Queued`]: the caller must wait for the
    /// completion rather than use a byte count.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::kiocb::Submitted;
    /// assert!(Submitted::Queued.is_queued());
    /// assert!(!Submitted::Done(0).is_queued()); // done, even with 0 bytes
    /// ```
    #[inline]
    pub const fn is_queued(self) -> bool {
        matches!(self, Submitted::Queued)
    }
}

/// The outcome an async kiocb's completion receives (the `res` of
/// `ki_complete`, plus the advanced `ki_pos`).
///
/// # Examples
///
/// ```
/// use iov_iter::kiocb::Kiocb;
/// let (mut kiocb, fut) = Kiocb::new_async(100);
/// let c = kiocb.take_completion().unwrap();
/// c.complete(100, Ok(28));
/// let done = fut.try_get().unwrap();
/// assert_eq!((done.result, done.pos), (Ok(28), 128));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completed<B = ()> {
    /// Bytes transferred, or the error (the errno of `ki_complete`'s `res`).
    pub result: Result<usize>,
    /// The byte position after completion: the start position plus the bytes
    /// transferred on success (saturating at `u64::MAX`), the start position
    /// on failure.
    pub pos: u64,
    /// The kiocb's buffer, handed back: for owned I/O an
    /// [`OwnedIter`](crate::buf::OwnedIter) advanced by the bytes
    /// transferred; `()` for a kiocb without one.
    pub buf: B,
}

impl Completed {
    /// Builds the outcome of an I/O without a buffer that started at
    /// `start_pos`.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::kiocb::Completed;
    /// use iov_iter::{Errno, Error};
    ///
    /// let ok = Completed::new(4096, Ok(512));
    /// assert_eq!((ok.result, ok.pos), (Ok(512), 4608));
    /// // A failed I/O leaves the position where it started.
    /// assert_eq!(Completed::new(4096, Err(Error::Os(Errno::EIO))).pos, 4096);
    /// assert_eq!(Completed::new(u64::MAX - 1, Ok(8)).pos, u64::MAX); // saturates
    /// ```
    pub fn new(start_pos: u64, result: Result<usize>) -> Completed {
        Completed::with_buf(start_pos, result, ())
    }
}

impl<B> Completed<B> {
    /// Builds the outcome of an I/O that started at `start_pos`, handing
    /// `buf` back.
    ///
    /// ```
    /// use iov_iter::kiocb::Completed;
    /// let done = Completed::with_buf(512, Ok(512), vec![0u8; 512]);
    /// assert_eq!((done.pos, done.buf.len()), (1024, 512));
    /// ```
    pub fn with_buf(start_pos: u64, result: Result<usize>, buf: B) -> Completed<B> {
        let pos = match result {
            Ok(n) => add_pos(start_pos, n),
            Err(_) => start_pos,
        };
        Completed { result, pos, buf }
    }
}

#[inline]
fn add_pos(pos: u64, bytes: usize) -> u64 {
    pos.saturating_add(u64::try_from(bytes).unwrap_or(u64::MAX))
}

/// The per-I/O control block (`struct kiocb`): position, flags, priority and,
/// for asynchronous I/O, the completion.
///
/// A kiocb without a completion is synchronous ([`Kiocb::new_sync`]); one with
/// a completion ([`Kiocb::with_completion`], [`Kiocb::new_async`], `alloc`
/// feature) is asynchronous. See the [module documentation](self) for the
/// submit / completion contract.
///
/// Dropping an async kiocb whose completion was never taken runs the
/// completion with `ECANCELED`.
///
/// # Examples
///
/// ```
/// use iov_iter::kiocb::{FileCaps, IocbFlags, Kiocb, RwType, RwfFlags};
///
/// let mut kiocb = Kiocb::new_sync(0).with_flags(IocbFlags::DIRECT);
/// let caps = FileCaps { nowait: true, ..FileCaps::default() };
/// kiocb.set_rw_flags(RwfFlags::NOWAIT | RwfFlags::SYNC, RwType::Read, &caps)?;
/// assert_eq!(
///     kiocb.flags,
///     IocbFlags::DIRECT | IocbFlags::NOWAIT | IocbFlags::NOIO | IocbFlags::SYNC | IocbFlags::DSYNC
/// );
/// assert!(kiocb.is_sync());
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[doc(alias = "kiocb")]
pub struct Kiocb<B = ()> {
    /// The file position of the I/O, in bytes (`ki_pos`).
    #[doc(alias = "ki_pos")]
    pub pos: u64,
    /// The `IOCB_*` flags (`ki_flags`).
    #[doc(alias = "ki_flags")]
    pub flags: IocbFlags,
    /// The I/O priority (`ki_ioprio`), in the kernel's `IOPRIO_PRIO_VALUE`
    /// encoding.
    #[doc(alias = "ki_ioprio")]
    pub ioprio: u16,
    /// `Some` until the submit path takes it; an async kiocb's buffer
    /// lives inside it.
    #[cfg(feature = "alloc")]
    completion: Option<Completion<B>>,
    /// A sync kiocb's buffer (an async kiocb keeps its own in the
    /// completion, which hands it back).
    buf: Option<B>,
    /// Whether the kiocb was built with a completion (stays `true` after the
    /// completion is taken, like a non-NULL `ki_complete`).
    #[cfg(feature = "alloc")]
    is_async: bool,
}

impl Kiocb {
    /// A synchronous kiocb at byte position `pos`, with no buffer, no flags and priority
    /// 0 (`init_sync_kiocb`; the kernel then copies the file's
    /// `f_iocb_flags`, see [`Kiocb::with_flags`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::kiocb::Kiocb;
    /// let kiocb = Kiocb::new_sync(512);
    /// assert!(kiocb.is_sync());
    /// assert_eq!(kiocb.pos, 512);
    /// ```
    #[doc(alias = "init_sync_kiocb")]
    pub const fn new_sync(pos: u64) -> Kiocb {
        Kiocb::new_sync_with(pos, ())
    }
}

impl<B> Kiocb<B> {
    /// A synchronous kiocb at byte position `pos` carrying `buf`: for owned
    /// I/O, an [`OwnedIter`](crate::buf::OwnedIter) the submit path reads
    /// or writes and advances in place ([`Kiocb::buf`],
    /// [`Kiocb::take_buf`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::buf::OwnedIter;
    /// use iov_iter::kiocb::Kiocb;
    /// use iov_iter::Source;
    /// let mut kiocb = Kiocb::new_sync_with(0, OwnedIter::<Source, _>::new(vec![7u8; 512]));
    /// assert_eq!(kiocb.buf().unwrap().count(), 512);
    /// assert_eq!(kiocb.take_buf().unwrap().into_inner(), vec![7u8; 512]);
    /// ```
    pub const fn new_sync_with(pos: u64, buf: B) -> Kiocb<B> {
        Kiocb {
            pos,
            flags: IocbFlags::empty(),
            ioprio: 0,
            #[cfg(feature = "alloc")]
            completion: None,
            buf: Some(buf),
            #[cfg(feature = "alloc")]
            is_async: false,
        }
    }

    /// Replaces the flags (for instance with the file's `f_iocb_flags`).
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::kiocb::{IocbFlags, Kiocb};
    /// // A file opened with O_DIRECT | O_APPEND.
    /// let kiocb = Kiocb::new_sync(0).with_flags(IocbFlags::DIRECT | IocbFlags::APPEND);
    /// assert_eq!(kiocb.flags, IocbFlags::DIRECT | IocbFlags::APPEND);
    /// // It replaces, it does not add.
    /// assert_eq!(kiocb.with_flags(IocbFlags::DSYNC).flags, IocbFlags::DSYNC);
    /// ```
    #[doc(alias = "f_iocb_flags")]
    #[must_use]
    pub fn with_flags(mut self, flags: IocbFlags) -> Kiocb<B> {
        self.flags = flags;
        self
    }

    /// Replaces the I/O priority, in the kernel's `IOPRIO_PRIO_VALUE(class,
    /// level)` encoding: the class in bits 13 to 15, the level below.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::kiocb::Kiocb;
    /// assert_eq!(Kiocb::new_sync(0).ioprio, 0); // IOPRIO_CLASS_NONE
    /// // IOPRIO_PRIO_VALUE(IOPRIO_CLASS_BE, 4)
    /// let kiocb = Kiocb::new_sync(0).with_ioprio(2 << 13 | 4);
    /// assert_eq!((kiocb.ioprio >> 13, kiocb.ioprio & 0x1fff), (2, 4));
    /// ```
    #[doc(alias = "IOPRIO_PRIO_VALUE")]
    #[must_use]
    pub fn with_ioprio(mut self, ioprio: u16) -> Kiocb<B> {
        self.ioprio = ioprio;
        self
    }

    /// The kiocb's buffer: a sync kiocb's, or an async kiocb's until it is
    /// queued (then it travels with the I/O and comes back in
    /// [`Completed::buf`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::kiocb::Kiocb;
    /// let kiocb = Kiocb::new_sync_with(0, *b"data");
    /// assert_eq!(kiocb.buf(), Some(b"data"));
    /// # #[cfg(feature = "alloc")] {
    /// let (mut kiocb, _fut) = Kiocb::new_async_with(0, vec![0u8; 512]);
    /// assert_eq!(kiocb.buf().map(Vec::len), Some(512));
    /// let completion = kiocb.take_completion().unwrap();
    /// assert_eq!(kiocb.buf(), None); // it travels with the I/O now
    /// # drop(completion);
    /// # }
    /// ```
    pub fn buf(&self) -> Option<&B> {
        #[cfg(feature = "alloc")]
        if let Some(c) = &self.completion {
            return c.buf.as_ref();
        }
        self.buf.as_ref()
    }

    /// The kiocb's buffer, mutably (see [`Kiocb::buf`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::kiocb::Kiocb;
    /// let mut kiocb = Kiocb::new_sync_with(0, [0u8; 4]);
    /// kiocb.buf_mut().unwrap().copy_from_slice(b"read");
    /// assert_eq!(kiocb.take_buf(), Some(*b"read"));
    /// assert_eq!(kiocb.buf_mut(), None); // taken
    /// ```
    pub fn buf_mut(&mut self) -> Option<&mut B> {
        #[cfg(feature = "alloc")]
        if let Some(c) = &mut self.completion {
            return c.buf.as_mut();
        }
        self.buf.as_mut()
    }

    /// Takes a sync kiocb's buffer out (`None` for an async kiocb, whose
    /// buffer comes back through its completion).
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::kiocb::Kiocb;
    /// let mut kiocb = Kiocb::new_sync_with(0, *b"abcd");
    /// assert_eq!(kiocb.take_buf(), Some(*b"abcd"));
    /// assert_eq!(kiocb.take_buf(), None); // once
    /// # #[cfg(feature = "alloc")] {
    /// let (mut kiocb, mut fut) = Kiocb::new_async_with(0, *b"abcd");
    /// assert_eq!(kiocb.take_buf(), None);
    /// drop(kiocb); // cancelled: the buffer comes back through the completion
    /// assert_eq!(fut.try_take().unwrap().buf, *b"abcd");
    /// # }
    /// ```
    pub fn take_buf(&mut self) -> Option<B> {
        self.buf.take()
    }

    /// `true` when the kiocb has no completion (`is_sync_kiocb`). A kiocb
    /// built async stays async after its completion is taken.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::kiocb::Kiocb;
    /// assert!(Kiocb::new_sync(0).is_sync());
    /// # #[cfg(feature = "alloc")] {
    /// let (mut kiocb, _fut) = Kiocb::new_async(0);
    /// assert!(!kiocb.is_sync());
    /// let completion = kiocb.take_completion().unwrap();
    /// assert!(!kiocb.is_sync()); // still async while the I/O is queued
    /// completion.complete(0, Ok(0));
    /// # }
    /// ```
    #[doc(alias = "is_sync_kiocb")]
    #[inline]
    pub const fn is_sync(&self) -> bool {
        #[cfg(feature = "alloc")]
        {
            !self.is_async
        }
        #[cfg(not(feature = "alloc"))]
        {
            true
        }
    }

    /// Advances [`Kiocb::pos`] by `bytes` (saturating): what a sync submit
    /// path does after transferring `bytes` (the kernel's `ki_pos += ret`).
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::kiocb::Kiocb;
    /// let mut kiocb = Kiocb::new_sync(4096);
    /// kiocb.advance_pos(512);
    /// assert_eq!(kiocb.pos, 4608);
    /// kiocb.pos = u64::MAX - 1;
    /// kiocb.advance_pos(4096);
    /// assert_eq!(kiocb.pos, u64::MAX); // saturates
    /// ```
    #[inline]
    pub fn advance_pos(&mut self, bytes: usize) {
        self.pos = add_pos(self.pos, bytes);
    }

    /// Validates per-call `RWF_*` flags and merges them into
    /// [`Kiocb::flags`] (`kiocb_set_rw_flags`).
    ///
    /// The checks run in the kernel's order, and the first failure wins:
    ///
    /// 1. `flags` empty: `Ok`, nothing changes.
    /// 2. Bits outside [`RwfFlags::SUPPORTED`]: `EOPNOTSUPP`.
    /// 3. Both `APPEND` and `NOAPPEND`: `EINVAL`.
    /// 4. `NOWAIT` without [`FileCaps::nowait`]: `EOPNOTSUPP`; otherwise
    ///    `IOCB_NOIO` is added as well.
    /// 5. `ATOMIC` on a [`RwType::Read`] or without
    ///    [`FileCaps::atomic_write`]: `EOPNOTSUPP`.
    /// 6. `DONTCACHE` without [`FileCaps::dontcache`], or on a
    ///    [`FileCaps::dax`] inode: `EOPNOTSUPP`.
    /// 7. The bits are copied one for one; `SYNC` also sets `IOCB_DSYNC`.
    /// 8. `NOAPPEND` while the kiocb has `IOCB_APPEND`: `EPERM` on an
    ///    [`FileCaps::append_only`] inode, otherwise `IOCB_APPEND` is
    ///    cleared.
    ///
    /// `HIPRI`, `DSYNC`, `SYNC`, `APPEND` and `NOSIGNAL` need no capability.
    /// On error [`Kiocb::flags`] is unchanged.
    ///
    /// One deliberate difference: the kernel also copies the `RWF_NOAPPEND`
    /// bit (0x20) into `ki_flags`, where it means nothing; this crate does
    /// not, so [`Kiocb::flags`] only ever holds named `IOCB_*` bits from here.
    ///
    /// # Errors
    ///
    /// [`Error::NotSupported`] (`EOPNOTSUPP`), [`Error::InvalidArgument`]
    /// (`EINVAL`) or `Error::Os(Errno::EPERM)`, as listed above.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::kiocb::{FileCaps, IocbFlags, Kiocb, RwType, RwfFlags};
    /// use iov_iter::Errno;
    ///
    /// let caps = FileCaps::default();
    /// let mut kiocb = Kiocb::new_sync(0).with_flags(IocbFlags::APPEND);
    ///
    /// // Unknown bits are checked before the APPEND/NOAPPEND conflict.
    /// let both = RwfFlags::APPEND | RwfFlags::NOAPPEND;
    /// let err = kiocb
    ///     .set_rw_flags(both | RwfFlags::from_raw_bits(0x4000), RwType::Write, &caps)
    ///     .unwrap_err();
    /// assert_eq!(err.errno(), Errno::EOPNOTSUPP);
    /// let err = kiocb.set_rw_flags(both, RwType::Write, &caps).unwrap_err();
    /// assert_eq!(err.errno(), Errno::EINVAL);
    /// assert_eq!(kiocb.flags, IocbFlags::APPEND); // unchanged
    ///
    /// // pwritev2(RWF_NOAPPEND) on an O_APPEND file honours the offset.
    /// kiocb.set_rw_flags(RwfFlags::NOAPPEND, RwType::Write, &caps)?;
    /// assert_eq!(kiocb.flags, IocbFlags::empty());
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "kiocb_set_rw_flags")]
    pub fn set_rw_flags(&mut self, flags: RwfFlags, rw: RwType, caps: &FileCaps) -> Result<()> {
        // 1.
        if flags.bits() == 0 {
            return Ok(());
        }
        // 2.
        if flags.bits() & !RwfFlags::SUPPORTED.bits() != 0 {
            return Err(Error::NotSupported("unknown RWF_* flag"));
        }
        // 3.
        if flags.contains(RwfFlags::APPEND | RwfFlags::NOAPPEND) {
            return Err(Error::InvalidArgument(
                "RWF_APPEND and RWF_NOAPPEND are mutually exclusive",
            ));
        }
        // 4.-6.
        check_caps(flags, rw, caps)?;
        let mut add = IocbFlags::empty();
        if flags.contains(RwfFlags::NOWAIT) {
            add |= IocbFlags::NOIO;
        }
        // 7. Every supported RWF bit except NOAPPEND has an IOCB twin with the
        // same value (asserted at compile time above).
        add |= IocbFlags::from_bits_truncate(flags.bits() & !RwfFlags::NOAPPEND.bits());
        if flags.contains(RwfFlags::SYNC) {
            add |= IocbFlags::DSYNC;
        }
        // 8.
        let mut base = self.flags;
        if flags.contains(RwfFlags::NOAPPEND) && base.contains(IocbFlags::APPEND) {
            if caps.append_only {
                return Err(Error::Os(Errno::EPERM));
            }
            base.remove(IocbFlags::APPEND);
        }
        // 9.
        self.flags = base | add;
        Ok(())
    }
}

/// Steps 4 to 6 of [`Kiocb::set_rw_flags`]: the flags that need a
/// capability of the file. Direct I/O runs the same checks on the flags a
/// kiocb carries, on every backend.
pub(crate) fn check_caps(flags: RwfFlags, rw: RwType, caps: &FileCaps) -> Result<()> {
    if flags.contains(RwfFlags::NOWAIT) && !caps.nowait {
        return Err(Error::NotSupported(
            "RWF_NOWAIT on a file without FMODE_NOWAIT",
        ));
    }
    if flags.contains(RwfFlags::ATOMIC) {
        if rw != RwType::Write {
            return Err(Error::NotSupported("RWF_ATOMIC on a read"));
        }
        if !caps.atomic_write {
            return Err(Error::NotSupported(
                "RWF_ATOMIC on a file without FMODE_CAN_ATOMIC_WRITE",
            ));
        }
    }
    if flags.contains(RwfFlags::DONTCACHE) {
        if !caps.dontcache {
            return Err(Error::NotSupported(
                "RWF_DONTCACHE on a filesystem without FOP_DONTCACHE",
            ));
        }
        if caps.dax {
            return Err(Error::NotSupported("RWF_DONTCACHE on a DAX inode"));
        }
    }
    Ok(())
}

impl Default for Kiocb {
    /// Same as [`Kiocb::new_sync(0)`](Kiocb::new_sync).
    fn default() -> Kiocb {
        Kiocb::new_sync(0)
    }
}

impl<B> fmt::Debug for Kiocb<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Kiocb");
        d.field("pos", &self.pos)
            .field("flags", &self.flags)
            .field("ioprio", &self.ioprio)
            .field("sync", &self.is_sync());
        #[cfg(feature = "alloc")]
        d.field("completion_pending", &self.completion.is_some());
        d.finish()
    }
}

#[cfg(feature = "alloc")]
impl Kiocb {
    /// An asynchronous kiocb at byte position `pos`, without a buffer, whose completion calls
    /// `f` exactly once (`ki_complete`). Requires the `alloc` feature.
    ///
    /// `f` runs on whatever thread completes the I/O, or with `ECANCELED`
    /// where the kiocb (or its taken [`Completion`]) is dropped uncompleted.
    /// It should not panic.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use iov_iter::kiocb::Kiocb;
    ///
    /// let (tx, rx) = mpsc::channel();
    /// let mut kiocb = Kiocb::with_completion(10, move |done| tx.send(done).unwrap());
    /// assert!(!kiocb.is_sync());
    /// kiocb.take_completion().unwrap().complete(10, Ok(5));
    /// assert_eq!(rx.recv().unwrap().pos, 15);
    /// ```
    #[doc(alias = "ki_complete")]
    pub fn with_completion<F>(pos: u64, f: F) -> Kiocb
    where
        F: FnOnce(Completed) + Send + 'static,
    {
        Kiocb::with_callback(pos, (), f)
    }

    /// An asynchronous kiocb at byte position `pos`, and a future that
    /// resolves to its [`Completed`] outcome. Requires the `alloc` feature.
    ///
    /// The future needs no runtime: any executor, or
    /// [`CompletionFuture::wait`] with `std`, drives it.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::kiocb::Kiocb;
    /// use iov_iter::{Errno, Error};
    ///
    /// let (kiocb, fut) = Kiocb::new_async(0);
    /// drop(kiocb); // never submitted
    /// assert_eq!(fut.wait().result, Err(Error::Os(Errno::ECANCELED)));
    /// ```
    pub fn new_async(pos: u64) -> (Kiocb, CompletionFuture) {
        Kiocb::new_async_with(pos, ())
    }
}

#[cfg(feature = "alloc")]
impl<B: Send + 'static> Kiocb<B> {
    /// An asynchronous kiocb at byte position `pos` carrying `buf` (for
    /// owned I/O, an [`OwnedIter`](crate::buf::OwnedIter)), whose
    /// completion calls `f` exactly once with the outcome and the buffer.
    /// Requires the `alloc` feature.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use iov_iter::kiocb::Kiocb;
    ///
    /// let (tx, rx) = mpsc::channel();
    /// let kiocb = Kiocb::with_callback(0, vec![1u8; 4], move |done| tx.send(done).unwrap());
    /// drop(kiocb); // never submitted: cancelled, and the buffer comes back
    /// let done = rx.recv().unwrap();
    /// assert_eq!(done.buf, [1u8; 4]);
    /// assert_eq!(done.result.unwrap_err().errno(), iov_iter::Errno::ECANCELED);
    /// ```
    #[doc(alias = "ki_complete")]
    pub fn with_callback<F>(pos: u64, buf: B, f: F) -> Kiocb<B>
    where
        F: FnOnce(Completed<B>) + Send + 'static,
    {
        Kiocb::with(pos, Completion::from_callback(f, buf))
    }

    /// An asynchronous kiocb at byte position `pos` carrying `buf`, and a
    /// future that resolves to its [`Completed`] outcome with the buffer.
    /// Requires the `alloc` feature.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::kiocb::Kiocb;
    /// let (mut kiocb, fut) = Kiocb::new_async_with(8, String::from("buffer"));
    /// kiocb.take_completion().unwrap().complete(8, Ok(3));
    /// let done = fut.wait();
    /// assert_eq!((done.pos, done.buf.as_str()), (11, "buffer"));
    /// ```
    pub fn new_async_with(pos: u64, buf: B) -> (Kiocb<B>, CompletionFuture<B>) {
        let (completion, fut) = Completion::oneshot(buf);
        (Kiocb::with(pos, completion), fut)
    }

    fn with(pos: u64, completion: Completion<B>) -> Kiocb<B> {
        Kiocb {
            pos,
            flags: IocbFlags::empty(),
            ioprio: 0,
            completion: Some(completion),
            buf: None,
            is_async: true,
        }
    }
}

#[cfg(feature = "alloc")]
impl<B> Kiocb<B> {
    /// Takes the completion out of an async kiocb, for a submit path about
    /// to return [`Submitted::Queued`]. Requires the `alloc` feature.
    ///
    /// Returns `None` for a sync kiocb, or when the completion was already
    /// taken (an async kiocb can be queued only once). The returned
    /// completion remembers [`Kiocb::pos`] as its start position, used if it
    /// is dropped uncompleted.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::kiocb::Kiocb;
    /// assert!(Kiocb::new_sync(0).take_completion().is_none()); // nothing to take
    /// let (mut kiocb, fut) = Kiocb::new_async(512);
    /// let completion = kiocb.take_completion().unwrap();
    /// assert!(kiocb.take_completion().is_none()); // queued once only
    /// completion.complete(512, Ok(512));
    /// assert_eq!(fut.try_get().unwrap().pos, 1024);
    /// ```
    pub fn take_completion(&mut self) -> Option<Completion<B>> {
        let mut c = self.completion.take()?;
        c.start_pos = self.pos;
        Some(c)
    }

    /// `true` while an async kiocb still holds its completion (not yet
    /// queued, not yet completed). Requires the `alloc` feature.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::kiocb::Kiocb;
    /// assert!(!Kiocb::new_sync(0).has_completion());
    /// let (mut kiocb, fut) = Kiocb::new_async(0);
    /// assert!(kiocb.has_completion());
    /// let completion = kiocb.take_completion().unwrap();
    /// // Queued: the kiocb no longer holds it, though the I/O is not done.
    /// assert!(!kiocb.has_completion() && !fut.is_complete());
    /// # drop(completion);
    /// ```
    pub fn has_completion(&self) -> bool {
        self.completion.is_some()
    }

    /// Caller side of the contract: runs the kiocb's completion now with
    /// `result`, starting at [`Kiocb::pos`] (`aio_rw_done` feeding a
    /// non-`-EIOCBQUEUED` return to `ki_complete`). On `Ok(n)`,
    /// [`Kiocb::pos`] advances by `n`. Requires the `alloc` feature.
    ///
    /// Returns `false`, changing nothing, when there is no completion to run
    /// (sync kiocb, or already taken).
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::kiocb::Kiocb;
    /// use iov_iter::{Errno, Error};
    ///
    /// let (mut kiocb, fut) = Kiocb::new_async(0);
    /// // The submit path failed before queueing anything: deliver the error.
    /// assert!(kiocb.complete(Err(Error::Os(Errno::EIO))));
    /// assert!(!kiocb.complete(Ok(1))); // exactly once
    /// assert_eq!(fut.wait().result, Err(Error::Os(Errno::EIO)));
    /// ```
    #[doc(alias = "aio_rw_done")]
    pub fn complete(&mut self, result: Result<usize>) -> bool {
        let Some(c) = self.completion.take() else {
            return false;
        };
        let start = self.pos;
        if let Ok(n) = result {
            self.advance_pos(n);
        }
        c.complete(start, result);
        true
    }
}

#[cfg(feature = "alloc")]
impl<B> Drop for Kiocb<B> {
    fn drop(&mut self) {
        if let Some(mut c) = self.completion.take() {
            // Cancel at the kiocb's current position, not the one at build
            // time.
            c.start_pos = self.pos;
            drop(c);
        }
    }
}

#[cfg(feature = "alloc")]
mod async_completion {
    use alloc::boxed::Box;
    use alloc::sync::Arc;
    use core::fmt;
    use core::future::Future;
    use core::pin::Pin;
    use core::task::{Context, Poll, Waker};

    use super::{Completed, Errno, Error, Result};
    use crate::sync::SpinLock;

    /// The right, and the obligation, to complete one async I/O exactly once
    /// (`ki_complete`). Requires the `alloc` feature.
    ///
    /// Obtained from [`Kiocb::take_completion`](super::Kiocb::take_completion)
    /// by a submit path that returns
    /// [`Submitted::Queued`](super::Submitted::Queued). It is `Send`, so the
    /// I/O may complete on any thread. [`Completion::complete`] consumes it;
    /// dropping it uncompleted completes with
    /// `Err(Error::Os(Errno::ECANCELED))` at [`Completion::start_pos`].
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::kiocb::Kiocb;
    /// use iov_iter::{Errno, Error};
    ///
    /// let (mut kiocb, fut) = Kiocb::new_async(64);
    /// let completion = kiocb.take_completion().unwrap();
    /// assert_eq!(completion.start_pos(), 64);
    /// drop(completion); // the I/O was abandoned
    /// let done = fut.wait();
    /// assert_eq!((done.result, done.pos), (Err(Error::Os(Errno::ECANCELED)), 64));
    /// ```
    #[doc(alias = "ki_complete")]
    pub struct Completion<B = ()> {
        sink: Option<Sink<B>>,
        pub(super) buf: Option<B>,
        pub(super) start_pos: u64,
    }

    enum Sink<B> {
        Callback(Box<dyn FnOnce(Completed<B>) + Send + 'static>),
        Oneshot(Arc<Shared<B>>),
    }

    impl<B> Sink<B> {
        fn deliver(self, completed: Completed<B>) {
            match self {
                Sink::Callback(f) => f(completed),
                Sink::Oneshot(shared) => shared.set(completed),
            }
        }
    }

    impl<B: Send + 'static> Completion<B> {
        pub(super) fn from_callback<F>(f: F, buf: B) -> Completion<B>
        where
            F: FnOnce(Completed<B>) + Send + 'static,
        {
            Completion {
                sink: Some(Sink::Callback(Box::new(f))),
                buf: Some(buf),
                start_pos: 0,
            }
        }

        pub(super) fn oneshot(buf: B) -> (Completion<B>, CompletionFuture<B>) {
            let shared = Arc::new(Shared {
                slot: SpinLock::new(Slot {
                    done: None,
                    taken: false,
                    waker: None,
                }),
            });
            let completion = Completion {
                sink: Some(Sink::Oneshot(Arc::clone(&shared))),
                buf: Some(buf),
                start_pos: 0,
            };
            (completion, CompletionFuture { shared })
        }
    }

    impl<B> Completion<B> {
        /// The kiocb's position when the completion was taken (where a
        /// cancellation reports the position to be).
        ///
        /// # Examples
        ///
        /// ```
        /// use iov_iter::kiocb::Kiocb;
        /// let (mut kiocb, _fut) = Kiocb::new_async(0);
        /// kiocb.advance_pos(4096); // moved after the kiocb was built
        /// let completion = kiocb.take_completion().unwrap();
        /// assert_eq!(completion.start_pos(), 4096);
        /// # drop(completion);
        /// ```
        pub fn start_pos(&self) -> u64 {
            self.start_pos
        }

        /// The buffer the completion hands back (the kiocb's): the submit
        /// path reads or writes it, and the completion returns it.
        ///
        /// # Examples
        ///
        /// ```
        /// use iov_iter::kiocb::Kiocb;
        /// let (mut kiocb, _fut) = Kiocb::new_async_with(0, vec![0xaau8; 512]);
        /// let completion = kiocb.take_completion().unwrap();
        /// // A write's submit path finds the data in the buffer it carries.
        /// assert_eq!(completion.buf().len(), 512);
        /// assert!(completion.buf().iter().all(|&b| b == 0xaa));
        /// completion.complete(0, Ok(512));
        /// ```
        pub fn buf(&self) -> &B {
            self.buf
                .as_ref()
                .expect("a pending completion holds its buffer")
        }

        /// The buffer, mutably (see [`Completion::buf`]).
        ///
        /// # Examples
        ///
        /// ```
        /// use iov_iter::kiocb::Kiocb;
        /// let (mut kiocb, mut fut) = Kiocb::new_async_with(0, [0u8; 4]);
        /// let mut completion = kiocb.take_completion().unwrap();
        /// completion.buf_mut().copy_from_slice(b"read"); // the device fills it
        /// completion.complete(0, Ok(4));
        /// assert_eq!(fut.try_take().unwrap().buf, *b"read");
        /// ```
        pub fn buf_mut(&mut self) -> &mut B {
            self.buf
                .as_mut()
                .expect("a pending completion holds its buffer")
        }

        /// Completes the I/O that started at byte position `start_pos`
        /// with `result` (bytes transferred, or the error), exactly once,
        /// handing the buffer back.
        ///
        /// The completion receives [`Completed::with_buf(start_pos,
        /// result, buf)`](Completed::with_buf): on success the position has
        /// advanced by the bytes, on failure it is `start_pos`.
        ///
        /// # Examples
        ///
        /// ```
        /// use iov_iter::kiocb::Kiocb;
        /// use iov_iter::{Errno, Error};
        ///
        /// let (mut kiocb, fut) = Kiocb::new_async(1024);
        /// let completion = kiocb.take_completion().unwrap();
        /// completion.complete(1024, Err(Error::Os(Errno::EIO)));
        /// let done = fut.try_get().unwrap();
        /// assert_eq!((done.result, done.pos), (Err(Error::Os(Errno::EIO)), 1024));
        /// ```
        pub fn complete(mut self, start_pos: u64, result: Result<usize>) {
            if let (Some(sink), Some(buf)) = (self.sink.take(), self.buf.take()) {
                sink.deliver(Completed::with_buf(start_pos, result, buf));
            }
        }
    }

    impl<B> Drop for Completion<B> {
        fn drop(&mut self) {
            if let (Some(sink), Some(buf)) = (self.sink.take(), self.buf.take()) {
                sink.deliver(Completed::with_buf(
                    self.start_pos,
                    Err(Error::Os(Errno::ECANCELED)),
                    buf,
                ));
            }
        }
    }

    impl<B> fmt::Debug for Completion<B> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let kind = match self.sink {
                Some(Sink::Callback(_)) => "callback",
                Some(Sink::Oneshot(_)) => "future",
                None => "done",
            };
            f.debug_struct("Completion")
                .field("kind", &kind)
                .field("start_pos", &self.start_pos)
                .finish()
        }
    }

    /// Resolves to the [`Completed`] outcome (and buffer) of an async kiocb
    /// built with [`Kiocb::new_async`](super::Kiocb::new_async) or
    /// [`Kiocb::new_async_with`](super::Kiocb::new_async_with). Requires
    /// the `alloc` feature.
    ///
    /// Runtime-agnostic: completing from any thread wakes the last waker
    /// that polled it. Dropping it before completion is fine (the outcome,
    /// and the buffer, are then dropped when the I/O completes).
    ///
    /// # Panics
    ///
    /// Polling it again after it returned `Ready` panics (the buffer was
    /// handed out).
    ///
    /// # Examples
    ///
    /// Polled by hand, as any executor would:
    ///
    /// ```
    /// use std::future::Future;
    /// use std::pin::pin;
    /// use std::task::{Context, Poll, Waker};
    /// use iov_iter::kiocb::Kiocb;
    ///
    /// let (mut kiocb, fut) = Kiocb::new_async(0);
    /// let mut fut = pin!(fut);
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(fut.as_mut().poll(&mut cx).is_pending());
    /// kiocb.take_completion().unwrap().complete(0, Ok(8));
    /// let Poll::Ready(done) = fut.as_mut().poll(&mut cx) else { panic!("not ready") };
    /// assert_eq!(done.result, Ok(8));
    /// ```
    pub struct CompletionFuture<B = ()> {
        shared: Arc<Shared<B>>,
    }

    impl<B> CompletionFuture<B> {
        /// `true` once the completion has run.
        ///
        /// # Examples
        ///
        /// ```
        /// use iov_iter::kiocb::Kiocb;
        /// let (mut kiocb, fut) = Kiocb::new_async(0);
        /// assert!(!fut.is_complete());
        /// assert!(kiocb.complete(Ok(0)));
        /// assert!(fut.is_complete());
        /// ```
        pub fn is_complete(&self) -> bool {
            let slot = self.shared.slot.lock();
            slot.done.is_some() || slot.taken
        }

        /// Takes the outcome if the completion has run, without
        /// registering a waker.
        ///
        /// # Examples
        ///
        /// ```
        /// use iov_iter::kiocb::Kiocb;
        /// let (mut kiocb, mut fut) = Kiocb::new_async_with(0, vec![0u8; 16]);
        /// assert!(fut.try_take().is_none()); // not yet
        /// kiocb.complete(Ok(16));
        /// let done = fut.try_take().unwrap();
        /// assert_eq!((done.result, done.buf.len()), (Ok(16), 16));
        /// assert!(fut.try_take().is_none()); // taken once
        /// ```
        pub fn try_take(&mut self) -> Option<Completed<B>> {
            let mut slot = self.shared.slot.lock();
            let done = slot.done.take();
            if done.is_some() {
                slot.taken = true;
            }
            done
        }

        /// Blocks the current thread until the completion has run. Requires
        /// the `std` feature. Something must drive the I/O meanwhile (an
        /// inline backend already has; for a queue, see
        /// [`DirectIo::block_on`](crate::dio::DirectIo::block_on)).
        ///
        /// # Examples
        ///
        /// ```
        /// use iov_iter::kiocb::Kiocb;
        /// let (mut kiocb, fut) = Kiocb::new_async(0);
        /// let completion = kiocb.take_completion().unwrap();
        /// let io = std::thread::spawn(move || completion.complete(0, Ok(4096)));
        /// assert_eq!(fut.wait().result, Ok(4096)); // parks until the thread completes
        /// io.join().unwrap();
        /// ```
        #[cfg(feature = "std")]
        pub fn wait(self) -> Completed<B> {
            crate::sync::park_on(self)
        }
    }

    impl<B: Clone> CompletionFuture<B> {
        /// A copy of the outcome, if the completion has run, without taking
        /// it or registering a waker.
        ///
        /// # Examples
        ///
        /// ```
        /// use iov_iter::kiocb::Kiocb;
        /// let (mut kiocb, fut) = Kiocb::new_async(0);
        /// assert_eq!(fut.try_get(), None);
        /// kiocb.complete(Ok(1));
        /// // A copy: the outcome stays for the next look (or the await).
        /// assert_eq!(fut.try_get().map(|done| done.result), Some(Ok(1)));
        /// assert!(fut.try_get().is_some());
        /// ```
        pub fn try_get(&self) -> Option<Completed<B>> {
            self.shared.slot.lock().done.clone()
        }
    }

    impl<B> Future for CompletionFuture<B> {
        type Output = Completed<B>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Completed<B>> {
            let mut slot = self.shared.slot.lock();
            if let Some(done) = slot.done.take() {
                slot.taken = true;
                return Poll::Ready(done);
            }
            assert!(
                !slot.taken,
                "CompletionFuture polled after it returned Ready"
            );
            let old = match &slot.waker {
                Some(w) if w.will_wake(cx.waker()) => None,
                _ => slot.waker.replace(cx.waker().clone()),
            };
            drop(slot);
            // Drop the replaced waker outside the lock.
            drop(old);
            Poll::Pending
        }
    }

    impl<B> fmt::Debug for CompletionFuture<B> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("CompletionFuture")
                .field("complete", &self.is_complete())
                .finish()
        }
    }

    struct Shared<B> {
        slot: SpinLock<Slot<B>>,
    }

    struct Slot<B> {
        done: Option<Completed<B>>,
        taken: bool,
        waker: Option<Waker>,
    }

    impl<B> Shared<B> {
        fn set(&self, completed: Completed<B>) {
            let waker = {
                let mut slot = self.slot.lock();
                slot.done = Some(completed);
                slot.waker.take()
            };
            // Wake outside the lock: the task may poll right away.
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    static_assertions::assert_impl_all!(Completion: Send);
    static_assertions::assert_impl_all!(CompletionFuture: Send, Sync, Unpin);
    static_assertions::assert_impl_all!(super::Kiocb: Send);
    static_assertions::assert_not_impl_any!(Completion: Clone);
}

static_assertions::assert_impl_all!(Completed: Send, Sync, Copy);
static_assertions::assert_impl_all!(IocbFlags: Send, Sync, Copy);
