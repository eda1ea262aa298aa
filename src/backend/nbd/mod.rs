//! The network block device backend: [`NbdDevice`], an NBD export
//! (`nbd://host[:port]/export`, `nbd+unix:///export?socket=/path`) behind
//! the crate's one I/O contract ([`DirectIo`]), synchronous and truly
//! asynchronous (many commands in flight per connection, more than one
//! connection where the server allows it). Requires the `nbd` feature.
//!
//! The client is [libnbd], **loaded at run time** (`dlopen` of
//! `libnbd.so.0`, Debian package `libnbd0`): building the crate needs no
//! libnbd, and a machine without it gets [`Errno::ENOSYS`] from
//! [`NbdDevice::connect`] ([`available`] says so up front, with the
//! reason). libnbd's own Rust bindings are not on crates.io; this module
//! has a small FFI layer over the functions it uses (declarations and
//! loader only), checked against `<libnbd.h>` by a test that compiles its
//! declarations as C after the header ([`c_check_source`]), and a safe
//! wrapper over one handle, on which the device is built.
//!
//! Reference: the NBD protocol (`doc/proto.md` of the NBD project:
//! structured replies, `NBD_CMD_FLUSH`, `NBD_CMD_FLAG_FUA`,
//! `NBD_CMD_TRIM`, `NBD_INFO_BLOCK_SIZE`, `NBD_FLAG_CAN_MULTI_CONN`),
//! libnbd(3), nbd_aio_pread(3), nbd_aio_command_completed(3),
//! nbd_aio_notify_read(3), nbd_get_block_size(3), nbd_can_multi_conn(3);
//! Linux `drivers/block/nbd.c` (what the kernel's client maps a request's
//! flags to) and `block/fops.c` (`blkdev_read_iter` / `blkdev_write_iter`:
//! the end-of-device rules followed here).
//!
//! # How the contract maps onto NBD
//!
//! | contract | NBD |
//! |---|---|
//! | [`DirectIo::transfer`] (borrowed memory, sync) | one `NBD_CMD_READ` / `NBD_CMD_WRITE` per iovec (at most the server's maximum block size each), all in flight at once, waited for; the result is what a sequential transfer reports |
//! | [`DirectIo::start`] (an owned [`AsyncIo`]) | the same commands, queued (`nbd_aio_pread` / `nbd_aio_pwrite`); the request stays in the connection's table, keyed by cookie, until libnbd retires the last of them |
//! | [`DirectIo::drive`] | `poll(2)` on the connections' sockets (`nbd_aio_get_fd`, `nbd_aio_get_direction`), `nbd_aio_notify_read` / `_write`, then every retired cookie (`nbd_aio_peek_command_completed`, `nbd_aio_command_completed`) completes its request, outside every lock |
//! | `RWF_DSYNC` / `RWF_SYNC` on a write | `NBD_CMD_FLAG_FUA` where the server can (`nbd_can_fua`), else an `NBD_CMD_FLUSH` after the write completed (where the server has a cache to flush, `nbd_can_flush`) |
//! | [`DioAlign`] | offset and length alignment: the server's minimum block size (`NBD_INFO_BLOCK_SIZE`, 1 when it advertises none); memory alignment 1 |
//! | [`DirectIo::capacity`] | the export's size |
//! | swap discard | [`NbdDevice::trim`] (`NBD_CMD_TRIM`) |
//! | `fsync` | [`NbdDevice::flush`] (`NBD_CMD_FLUSH`) |
//!
//! Memory alignment is 1: NBD moves data through a socket (libnbd
//! `send`s from and `recv`s into the buffer), with no DMA from the
//! caller's memory, so no address alignment is needed; what the server
//! does with its own storage (`qemu-nbd --cache=none` opens it
//! `O_DIRECT`) is behind the server's own bounce buffers. The minimum
//! block size still applies to offsets and lengths: a server may refuse
//! or read-modify-write anything smaller.
//!
//! Structured replies are asked for by default
//! ([`NbdBuilder::structured_replies`]): a read's reply then carries the
//! server's errno for a failed chunk, and a server may send holes without
//! their zeroes; [`NbdInfo::structured_replies`] says whether the server
//! agreed.
//!
//! # Faults
//!
//! * **An errored reply**: the command's request completes with
//!   [`Error::Os`] carrying the errno the server sent (libnbd maps the
//!   NBD error code: `EPERM`, `EIO`, `ENOMEM`, `EINVAL`, `ENOSPC`,
//!   `EOVERFLOW`, `ENOTSUP`, `ESHUTDOWN`), other parts of the same request
//!   being merged as a sequential transfer would (bytes before the first
//!   failure count).
//! * **The server dying or the connection reset mid-I/O**: libnbd moves
//!   the connection to its dead state and fails every command in flight;
//!   each request completes exactly once with an error, its buffer handed
//!   back. libnbd fails the aborted commands with `ENOTCONN`; where the
//!   socket said why (`nbd_aio_notify_read` / `_write` failing), that errno
//!   is used instead: [`Errno::ECONNRESET`] for a reset (a TCP peer killed
//!   with unread data; a unix-socket peer too) and for a server that closed
//!   its socket mid-reply, [`Errno::EPIPE`] for a write to a socket the
//!   peer closed. Later requests on that connection
//!   fail at once with the same error; open a new device to reconnect.
//! * **A read-only export** (`qemu-nbd -r`): writes fail with
//!   [`Errno::EROFS`] before any I/O; with
//!   [`NbdBuilder::client_checks`] off they reach the server, whose error
//!   reply comes back (the protocol's code is `EPERM`; qemu-nbd 10 sends
//!   `EINVAL`).
//! * **Past the end**: as on a Linux block device, a read at or past the
//!   end transfers 0 bytes, a write there fails with `ENOSPC`, and a
//!   request crossing the end is cut short there. With
//!   [`NbdBuilder::client_checks`] off the request goes to the server
//!   as it is, and its error reply (`EINVAL` from qemu-nbd) comes back.
//! * **Dropping the device** with requests in flight closes every
//!   connection (`nbd_close`: libnbd touches none of their buffers
//!   afterwards) and then completes each with `ECANCELED`.
//!
//! A server that stops answering without closing its socket (a stopped
//! process, a partitioned network) is waited for: NBD has no command
//! timeout, and neither has this backend.
//!
//! # Buffer lifetime: how this is sound
//!
//! Borrowed memory ([`DirectIo::transfer`]) is returned only once libnbd
//! has retired every command issued over it, or the connection is dead
//! (libnbd then has failed them all and reads no more). Owned memory
//! ([`AsyncIo`]) stays in the connection's table until its commands are
//! retired; a connection's handle is closed before the requests still in
//! its table are dropped. No `unsafe` is needed by callers of this module.
//!
//! # Examples
//!
//! A server is needed (`qemu-nbd --socket=/tmp/nbd.sock --format=raw
//! disk.img`), hence `no_run`:
//!
//! ```no_run
//! use iov_iter::backend::nbd::NbdDevice;
//! use iov_iter::buf::{AlignedBuf, OwnedIter};
//! use iov_iter::dio::DirectIo;
//! use iov_iter::kiocb::{Kiocb, Submitted};
//! use iov_iter::{Dest, IovIter, Source, Ubuf};
//!
//! let dev = NbdDevice::builder()
//!     .connections(4)
//!     .connect("nbd+unix:///?socket=/tmp/nbd.sock")?;
//! // A borrowed buffer, synchronously.
//! let data = vec![0xa5u8; 4096];
//! let mut src = IovIter::<Source, Ubuf>::new(&data);
//! assert_eq!(dev.direct_io(&mut Kiocb::new_sync(0), &mut src)?, Submitted::Done(4096));
//! // 32 owned buffers in flight at once.
//! let mut futs = Vec::new();
//! for i in 0..32u64 {
//!     let buf = OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(512, 4096)?);
//!     let (mut kiocb, fut) = Kiocb::new_async_with(i * 4096, buf);
//!     assert!(dev.submit(&mut kiocb)?.is_queued());
//!     futs.push(fut);
//! }
//! for fut in futs {
//!     assert_eq!(dev.block_on(fut).result, Ok(4096));
//! }
//! dev.flush()?;
//! # Ok::<(), iov_iter::Error>(())
//! ```
//!
//! [libnbd]: https://libguestfs.org/libnbd.3.html

mod ffi;
mod handle;

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;
use std::fmt;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};
use smallvec::SmallVec;

use self::handle::{Cookie, Handle};
use crate::dio::{AsyncIo, AsyncMode, DioAlign, DirectIo};
use crate::error::{Errno, Error, Result};
use crate::import::UIO_MAXIOV;
use crate::kiocb::{FileCaps, RwType, RwfFlags};
use crate::seg::UserIovec;

/// Largest data command sent when the server advertises no maximum block
/// size (the NBD protocol's recommended limit; libnbd refuses more than
/// 64 MiB).
const DEFAULT_MAX_REQUEST: u64 = 32 << 20;

/// Longest one `poll(2)` waits before the sockets' directions are looked
/// at again (a command queued by another thread meanwhile may need the
/// socket to become writable).
const POLL_SLICE: Duration = Duration::from_millis(10);

/// Whether libnbd can be loaded here: `Ok(())`, or why not (the loader's
/// message). Loaded once, on first use, and kept for the process's life.
///
/// # Examples
///
/// ```
/// use iov_iter::backend::nbd;
/// match nbd::available() {
///     Ok(()) => println!("libnbd is here"),
///     Err(why) => println!("no NBD: {why}"),
/// }
/// ```
pub fn available() -> core::result::Result<(), &'static str> {
    ffi::api().map(drop)
}

/// The C translation unit that checks this backend's FFI declarations
/// against libnbd's header: `#include <libnbd.h>`, then every function
/// declared again as the Rust function-pointer types say, and
/// `_Static_assert`s on the layout of `nbd_completion_callback` and on the
/// constants used. It compiles (`cc -fsyntax-only -x c -`) exactly when the
/// two agree: a parameter or return type that differs is a "conflicting
/// types" error.
///
/// # Examples
///
/// ```
/// let src = iov_iter::backend::nbd::c_check_source();
/// assert!(src.contains("#include <libnbd.h>"));
/// assert!(src.contains("extern int64_t nbd_aio_pread (struct nbd_handle *, void *, size_t, uint64_t, nbd_completion_callback, uint32_t);"));
/// ```
pub fn c_check_source() -> String {
    ffi::c_check_source()
}

thread_local! {
    static LAST_MESSAGE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// libnbd's message for the last [`NbdBuilder::connect`] (or
/// [`NbdDevice::connect`]) that failed on this thread (`nbd_get_error`,
/// such as `"connect: Connection refused"`), or the loader's message when
/// libnbd could not be loaded. The error returned carries only the errno.
///
/// # Examples
///
/// ```
/// use iov_iter::backend::nbd::{NbdDevice, last_error_message};
/// // No server there (or no libnbd): the message says which.
/// assert!(NbdDevice::connect("nbd+unix:///?socket=/nonexistent/sock").is_err());
/// assert!(last_error_message().is_some());
/// ```
#[doc(alias = "nbd_get_error")]
pub fn last_error_message() -> Option<String> {
    LAST_MESSAGE.with(|m| m.borrow().clone())
}

fn set_message(m: Option<String>) {
    LAST_MESSAGE.with(|slot| *slot.borrow_mut() = m);
}

/// What the server advertised for an export, as the first connection
/// negotiated it ([`NbdDevice::info`]).
///
/// # Examples
///
/// ```no_run
/// use iov_iter::backend::nbd::NbdDevice;
/// let dev = NbdDevice::connect("nbd://127.0.0.1:10809/")?;
/// let info = dev.info();
/// println!("{} bytes, FUA {}, trim {}", info.size, info.can_fua, info.can_trim);
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct NbdInfo {
    /// The export's size in bytes (`nbd_get_size`).
    #[doc(alias = "nbd_get_size")]
    pub size: u64,
    /// The export is read-only (`NBD_FLAG_READ_ONLY`).
    #[doc(alias = "NBD_FLAG_READ_ONLY")]
    #[doc(alias = "nbd_is_read_only")]
    pub read_only: bool,
    /// The server takes `NBD_CMD_FLUSH` (`NBD_FLAG_SEND_FLUSH`).
    #[doc(alias = "NBD_FLAG_SEND_FLUSH")]
    #[doc(alias = "nbd_can_flush")]
    pub can_flush: bool,
    /// The server takes `NBD_CMD_FLAG_FUA` (`NBD_FLAG_SEND_FUA`).
    #[doc(alias = "NBD_FLAG_SEND_FUA")]
    #[doc(alias = "nbd_can_fua")]
    pub can_fua: bool,
    /// The server takes `NBD_CMD_TRIM` (`NBD_FLAG_SEND_TRIM`).
    #[doc(alias = "NBD_FLAG_SEND_TRIM")]
    #[doc(alias = "nbd_can_trim")]
    pub can_trim: bool,
    /// The server allows more than one connection to share the export
    /// consistently (`NBD_FLAG_CAN_MULTI_CONN`).
    #[doc(alias = "NBD_FLAG_CAN_MULTI_CONN")]
    #[doc(alias = "nbd_can_multi_conn")]
    pub can_multi_conn: bool,
    /// Minimum block size (`NBD_INFO_BLOCK_SIZE`); 0 when not advertised.
    #[doc(alias = "NBD_INFO_BLOCK_SIZE")]
    #[doc(alias = "nbd_get_block_size")]
    pub block_min: u64,
    /// Preferred block size; 0 when not advertised.
    pub block_preferred: u64,
    /// Maximum block size (largest data command); 0 when not advertised.
    pub block_max: u64,
    /// The server agreed to structured replies.
    #[doc(alias = "NBD_OPT_STRUCTURED_REPLY")]
    pub structured_replies: bool,
}

/// How to connect an [`NbdDevice`]: [`NbdDevice::builder`], options, then
/// [`NbdBuilder::connect`].
///
/// # Examples
///
/// ```no_run
/// use iov_iter::backend::nbd::NbdDevice;
/// let dev = NbdDevice::builder()
///     .connections(4)
///     .structured_replies(true)
///     .connect("nbd+unix:///?socket=/tmp/nbd.sock")?;
/// if let Some(why) = dev.multi_conn_refused() {
///     println!("one connection only: {why}");
/// }
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NbdBuilder {
    connections: usize,
    structured_replies: bool,
    client_checks: bool,
    fua: bool,
}

impl Default for NbdBuilder {
    fn default() -> NbdBuilder {
        NbdBuilder {
            connections: 1,
            structured_replies: true,
            client_checks: true,
            fua: true,
        }
    }
}

impl NbdBuilder {
    /// Opens `n` connections (at least 1; default 1) where the server
    /// advertises multi-conn (`NBD_FLAG_CAN_MULTI_CONN`), else one
    /// ([`NbdDevice::multi_conn_refused`] says why). Requests are spread
    /// over them, each request on one connection.
    ///
    /// ```
    /// use iov_iter::backend::nbd::NbdDevice;
    /// assert_ne!(NbdDevice::builder().connections(4), NbdDevice::builder());
    /// // At least one: 0 means the default, 1.
    /// assert_eq!(NbdDevice::builder().connections(0), NbdDevice::builder());
    /// ```
    pub fn connections(mut self, n: usize) -> NbdBuilder {
        self.connections = n.max(1);
        self
    }

    /// Asks for structured replies (`NBD_OPT_STRUCTURED_REPLY`; default
    /// on).
    ///
    /// ```
    /// use iov_iter::backend::nbd::NbdDevice;
    /// // On by default.
    /// assert_eq!(NbdDevice::builder().structured_replies(true), NbdDevice::builder());
    /// assert_ne!(NbdDevice::builder().structured_replies(false), NbdDevice::builder());
    /// ```
    pub fn structured_replies(mut self, on: bool) -> NbdBuilder {
        self.structured_replies = on;
        self
    }

    /// Whether `RWF_DSYNC` / `RWF_SYNC` writes use `NBD_CMD_FLAG_FUA`
    /// where the server takes it (default on). Off (or where the server
    /// does not take FUA), each such write is followed, once it completed,
    /// by an `NBD_CMD_FLUSH`, and completes after the flush.
    ///
    /// ```
    /// use iov_iter::backend::nbd::NbdDevice;
    /// // On by default.
    /// assert_eq!(NbdDevice::builder().fua(true), NbdDevice::builder());
    /// assert_ne!(NbdDevice::builder().fua(false), NbdDevice::builder());
    /// ```
    pub fn fua(mut self, on: bool) -> NbdBuilder {
        self.fua = on;
        self
    }

    /// Whether the client refuses, before any I/O, what the server would
    /// refuse (default on): writes to a read-only export (`EROFS`),
    /// requests past the end (block-device rules: short, or `ENOSPC`),
    /// and libnbd's own strict checks (`nbd_set_strict_mode`). Off,
    /// requests go to the server as they are and its error reply is what
    /// the caller sees: for tests of servers, not for use.
    ///
    /// ```
    /// use iov_iter::backend::nbd::NbdDevice;
    /// // On by default.
    /// assert_eq!(NbdDevice::builder().client_checks(true), NbdDevice::builder());
    /// assert_ne!(NbdDevice::builder().client_checks(false), NbdDevice::builder());
    /// ```
    pub fn client_checks(mut self, on: bool) -> NbdBuilder {
        self.client_checks = on;
        self
    }

    /// Connects to `uri` (`nbd://host[:port]/export`,
    /// `nbd+unix:///export?socket=/path`; see nbd_connect_uri(3)) and
    /// negotiates; blocks until done.
    ///
    /// # Errors
    ///
    /// [`Errno::ENOSYS`] when libnbd cannot be loaded; `EINVAL` for a URI
    /// with a NUL byte; libnbd's errno when it cannot connect or the
    /// server refuses (`ECONNREFUSED`, `ENOENT` for a missing socket, ...),
    /// the message kept for [`last_error_message`]; an export whose
    /// minimum block size is not a power of two is `EINVAL`.
    ///
    /// # Examples
    ///
    /// What a failed connection reports (this runs without a server):
    ///
    /// ```
    /// use iov_iter::backend::nbd::{self, NbdDevice};
    /// use iov_iter::Errno;
    /// let libnbd = nbd::available().is_ok();
    /// // A URI with a NUL byte cannot reach libnbd.
    /// let err = NbdDevice::builder().connect("nbd://host/\0").unwrap_err();
    /// assert_eq!(err.errno(), if libnbd { Errno::EINVAL } else { Errno::ENOSYS });
    /// // Nobody listening: libnbd's errno, and its message.
    /// let err = NbdDevice::builder().connect("nbd+unix:///?socket=/nonexistent/nbd.sock").unwrap_err();
    /// let enoent = Errno::from_raw(2);
    /// assert_eq!(err.errno(), if libnbd { enoent } else { Errno::ENOSYS });
    /// assert!(nbd::last_error_message().is_some());
    /// ```
    #[doc(alias = "nbd_connect_uri")]
    pub fn connect(self, uri: &str) -> Result<NbdDevice> {
        let api = ffi::api().map_err(|why| {
            set_message(Some(why.to_string()));
            Error::Os(Errno::ENOSYS)
        })?;
        let uri = CString::new(uri).map_err(|_| Error::InvalidArgument("NBD URI with a NUL"))?;
        let first = self.open(api, &uri)?;
        let h = &first.h;
        let info = (|| {
            Ok::<_, Error>(NbdInfo {
                size: h.size()?,
                read_only: h.is_read_only()?,
                can_flush: h.can_flush()?,
                can_fua: h.can_fua()?,
                can_trim: h.can_trim()?,
                can_multi_conn: h.can_multi_conn()?,
                block_min: h.block_size(ffi::SIZE_MINIMUM)?,
                block_preferred: h.block_size(ffi::SIZE_PREFERRED)?,
                block_max: h.block_size(ffi::SIZE_MAXIMUM)?,
                structured_replies: h.structured_replies_negotiated()?,
            })
        })()
        .inspect_err(|_| set_message(handle::last_message(api)))?;
        let min = u32::try_from(info.block_min.max(1))
            .map_err(|_| Error::InvalidArgument("NBD minimum block size above 4 GiB"))?;
        let align = DioAlign::new(1, min)?;
        let mut max = if info.block_max == 0 {
            DEFAULT_MAX_REQUEST
        } else {
            info.block_max.min(DEFAULT_MAX_REQUEST * 2)
        };
        max -= max % u64::from(min);
        let max_request = (max.max(u64::from(min))) as usize;
        let mut conns = vec![first];
        let multi_conn_refused = if self.connections > 1 && !info.can_multi_conn {
            Some("the server does not advertise NBD_FLAG_CAN_MULTI_CONN")
        } else {
            for _ in 1..self.connections {
                conns.push(self.open(api, &uri)?);
            }
            None
        };
        Ok(NbdDevice {
            conns,
            next: AtomicUsize::new(0),
            info,
            align,
            max_request,
            client_checks: self.client_checks,
            fua: self.fua && info.can_fua,
            multi_conn_refused,
        })
    }

    /// One connection, negotiated.
    fn open(&self, api: &'static ffi::Api, uri: &CString) -> Result<Conn> {
        let fail = |e: Error| {
            set_message(handle::last_message(api));
            e
        };
        let h = Handle::new(api).map_err(fail)?;
        h.set_request_structured_replies(self.structured_replies)
            .map_err(fail)?;
        if !self.client_checks {
            h.set_strict_mode(0).map_err(fail)?;
        }
        h.connect_uri(uri).map_err(fail)?;
        set_message(None);
        Ok(Conn {
            h,
            st: Mutex::new(ConnState::default()),
        })
    }
}

/// A request waiting on a command.
enum Pending {
    /// One part of an async request (one command): completes it.
    Io { io: AsyncIo, flush_after: bool },
    /// An async write done, its flush (`NBD_CMD_FLUSH`) in flight.
    FlushAfter { io: AsyncIo, n: usize },
    /// One command of a synchronous call, whose thread waits for it.
    Sync { w: Arc<Waiter>, idx: usize },
}

/// The outcomes of a synchronous call's commands.
#[derive(Default)]
struct Waiter {
    results: Mutex<Vec<Option<Result<()>>>>,
}

impl Waiter {
    fn new(n: usize) -> Arc<Waiter> {
        Arc::new(Waiter {
            results: Mutex::new(vec![None; n]),
        })
    }

    fn set(&self, idx: usize, r: Result<()>) {
        lock(&self.results)[idx] = Some(r);
    }

    fn done(&self) -> bool {
        lock(&self.results).iter().all(Option::is_some)
    }

    fn take(&self) -> Vec<Result<()>> {
        lock(&self.results)
            .iter()
            .map(|r| r.unwrap_or(Err(Error::Os(Errno::ECANCELED))))
            .collect()
    }
}

#[derive(Default)]
struct ConnState {
    /// Every command in flight on the connection, by cookie. A cookie is
    /// inserted under this lock in the same critical section that issues
    /// it, and retired only under it, so no completion can miss its entry.
    pending: HashMap<Cookie, Pending>,
    /// Async requests (parts) in `pending`.
    async_n: usize,
    /// Set once the connection died: every later command fails with it.
    dead: Option<Error>,
    /// The socket error that killed the connection, where one was seen.
    cause: Option<Error>,
}

/// One NBD connection.
struct Conn {
    /// First: dropped (`nbd_close`) before the requests in `st`, so no
    /// buffer is handed back while libnbd might still reach it.
    h: Handle,
    st: Mutex<ConnState>,
}

/// Locks, ignoring poisoning (the state stays consistent: no panic can
/// happen between the updates a critical section makes).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

type Done = SmallVec<[(AsyncIo, Result<usize>); 8]>;

impl Conn {
    /// Retires every completed command, and completes what the
    /// connection's death left; the requests now finished go to `done`
    /// (completed by the caller, outside the lock).
    fn reap(&self, done: &mut Done) {
        let mut st = lock(&self.st);
        let mut aborted = None;
        while let Some(cookie) = self.h.peek_completed() {
            let Some(mut r) = self.h.command_completed(cookie) else {
                break;
            };
            if let (Err(Error::Os(Errno::ENOTCONN)), Some(cause)) = (r, st.cause) {
                // A command libnbd aborted when the connection died: the
                // socket's own error says more (ECONNRESET for a reset).
                r = Err(cause);
            }
            if let Err(e @ Error::Os(Errno::ENOTCONN)) = r {
                aborted.get_or_insert(e);
            }
            let Some(p) = st.pending.remove(&cookie) else {
                continue;
            };
            match p {
                Pending::Io { io, flush_after } => match r {
                    Ok(()) if flush_after => {
                        let n = io.len();
                        match self.h.aio_flush() {
                            Ok(c) => {
                                st.pending.insert(c, Pending::FlushAfter { io, n });
                            }
                            Err(e) => {
                                st.async_n -= 1;
                                done.push((io, Err(e)));
                            }
                        }
                    }
                    r => {
                        st.async_n -= 1;
                        let n = io.len();
                        done.push((io, r.map(|()| n)));
                    }
                },
                Pending::FlushAfter { io, n } => {
                    st.async_n -= 1;
                    done.push((io, r.map(|()| n)));
                }
                Pending::Sync { w, idx } => w.set(idx, r),
            }
        }
        if !self.h.is_gone() {
            return;
        }
        let fallback = match st.cause {
            Some(cause) => cause,
            None => aborted.unwrap_or(Error::Os(Errno::ENOTCONN)),
        };
        let err = *st.dead.get_or_insert(fallback);
        if !st.pending.is_empty() {
            // libnbd failed every command when the connection died, and
            // they were retired above; anything left is completed here so
            // nothing waits for a connection that cannot answer.
            for (_, p) in st.pending.drain() {
                match p {
                    Pending::Io { io, .. } | Pending::FlushAfter { io, .. } => {
                        done.push((io, Err(err)));
                    }
                    Pending::Sync { w, idx } => w.set(idx, Err(err)),
                }
            }
            st.async_n = 0;
        }
    }

    /// The error every command on the connection now fails with, once it
    /// is dead: the socket's error that killed it, else what libnbd
    /// reported (`ENOTCONN`).
    fn dead_error(&self, st: &mut ConnState) -> Option<Error> {
        if st.dead.is_none() && self.h.is_gone() {
            st.dead = Some(st.cause.unwrap_or(Error::Os(Errno::ENOTCONN)));
        }
        st.dead
    }

    /// Records why the connection failed (the first socket error that
    /// `nbd_aio_notify_*` reported).
    fn note_cause(&self, e: Error) {
        lock(&self.st).cause.get_or_insert(e);
    }
}

/// What the socket `fd` is ready for now, of reading (`r`) and writing
/// (`w`): a poll that does not wait.
fn ready_now(fd: i32, r: bool, w: bool) -> PollFlags {
    let mut ev = PollFlags::empty();
    if r {
        ev |= PollFlags::IN;
    }
    if w {
        ev |= PollFlags::OUT;
    }
    if ev.is_empty() {
        return ev;
    }
    // SAFETY: `fd` is the socket of a live libnbd handle, under the
    // connection's lock (so no notify of another thread can close it
    // meanwhile); poll(2) only reads its readiness.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let mut one = [PollFd::from_borrowed_fd(fd, ev)];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match rustix::event::poll(&mut one, Some(&zero)) {
        Ok(_) => one[0].revents(),
        Err(_) => PollFlags::empty(),
    }
}

/// Polls the sockets of `conns` for what libnbd waits for, at most
/// `timeout`, and lets libnbd act on what is ready.
fn wait_events(conns: &[&Conn], timeout: Duration) -> Result<()> {
    let mut which: SmallVec<[(usize, i32, PollFlags); 4]> = SmallVec::new();
    for (i, c) in conns.iter().enumerate() {
        if c.h.is_gone() {
            continue;
        }
        let Some(fd) = c.h.fd() else { continue };
        let (r, w) = c.h.direction();
        let mut ev = PollFlags::empty();
        if r {
            ev |= PollFlags::IN;
        }
        if w {
            ev |= PollFlags::OUT;
        }
        if !ev.is_empty() {
            which.push((i, fd, ev));
        }
    }
    if which.is_empty() {
        return Ok(());
    }
    let mut fds: SmallVec<[PollFd<'_>; 4]> = which
        .iter()
        .map(|&(_, fd, ev)| {
            // SAFETY: `fd` is the socket of a live libnbd handle. Another
            // thread's notify may see the connection die and libnbd close
            // it during the poll; poll(2) then reports POLLNVAL (or, were
            // the number reused, a spurious wake-up): it only reads the
            // descriptor's readiness, never its data.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            PollFd::from_borrowed_fd(fd, ev)
        })
        .collect();
    let ts = rustix::event::Timespec {
        tv_sec: timeout.as_secs() as _,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    match rustix::event::poll(&mut fds, Some(&ts)) {
        Ok(_) => {}
        Err(rustix::io::Errno::INTR) => return Ok(()),
        Err(e) => return Err(Error::Os(Errno::from_raw(e.raw_os_error()))),
    }
    for (fd, &(i, _, _)) in fds.iter().zip(&which) {
        if fd.revents().is_empty() {
            continue;
        }
        let c = conns[i];
        // Under the connection's lock, which every call that moves
        // libnbd's state machine (issuing, notifying, retiring) holds, the
        // socket is looked at again: another thread may have read the
        // replies or sent what was queued since this poll began. A
        // notify the socket is not ready for is not harmless: libnbd 1.14
        // left in `REPLY.START` by a `recv` that found nothing waits there
        // for a reply, and commands issued meanwhile are queued unsent
        // behind it, so nothing more ever arrives (a hang, found by
        // `threads_share_one_device`).
        let st = lock(&c.st);
        if c.h.is_gone() {
            continue;
        }
        let Some(raw) = c.h.fd() else { continue };
        let (r, w) = c.h.direction();
        let rev = ready_now(raw, r, w);
        if rev.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL) {
            if let Err(e) = c.h.notify_read() {
                drop(st);
                c.note_cause(e);
                continue;
            }
        }
        if rev.contains(PollFlags::OUT) && !c.h.is_gone() && c.h.direction().1 {
            if let Err(e) = c.h.notify_write() {
                drop(st);
                c.note_cause(e);
            }
        }
    }
    Ok(())
}

/// A network block device export, behind [`DirectIo`]: see the [module
/// documentation](self).
///
/// `Send` and `Sync`: any thread may submit, transfer and drive; each
/// connection's table is behind its own lock, held only to issue or
/// retire commands (never while waiting on the socket). Completions run on
/// the thread that drives ([`DirectIo::drive`], [`DirectIo::block_on`], a
/// synchronous transfer on the same connection), outside every lock.
///
/// # Examples
///
/// ```no_run
/// use iov_iter::backend::nbd::NbdDevice;
/// use iov_iter::dio::DirectIo;
/// use iov_iter::kiocb::{Kiocb, Submitted};
/// use iov_iter::{Dest, IovIter, Ubuf};
///
/// let dev = NbdDevice::connect("nbd+unix:///?socket=/tmp/nbd.sock")?;
/// let mut buf = vec![0u8; 8192];
/// let mut dst = IovIter::<Dest, Ubuf>::new(&mut buf);
/// assert_eq!(dev.direct_io(&mut Kiocb::new_sync(0), &mut dst)?, Submitted::Done(8192));
/// dev.trim(0, 4096)?; // NBD_CMD_TRIM, where the server takes it
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[doc(alias = "nbd")]
pub struct NbdDevice {
    conns: Vec<Conn>,
    next: AtomicUsize,
    info: NbdInfo,
    align: DioAlign,
    max_request: usize,
    client_checks: bool,
    /// FUA in use for `RWF_DSYNC` writes.
    fua: bool,
    multi_conn_refused: Option<&'static str>,
}

impl fmt::Debug for NbdDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NbdDevice")
            .field("connections", &self.conns.len())
            .field("info", &self.info)
            .field("align", &self.align)
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl NbdDevice {
    /// A builder with the defaults: one connection, structured replies
    /// asked for, client checks on.
    ///
    /// ```
    /// use iov_iter::backend::nbd::{NbdBuilder, NbdDevice};
    /// assert_eq!(NbdDevice::builder(), NbdBuilder::default());
    /// ```
    pub fn builder() -> NbdBuilder {
        NbdBuilder::default()
    }

    /// Connects one connection to `uri` with the defaults
    /// (`NbdDevice::builder().connect(uri)`).
    ///
    /// # Errors
    ///
    /// As [`NbdBuilder::connect`].
    ///
    /// A server is needed, hence `no_run`:
    ///
    /// ```no_run
    /// use iov_iter::dio::DirectIo;
    /// let dev = iov_iter::backend::nbd::NbdDevice::connect("nbd://localhost/")?;
    /// assert_eq!(dev.connections(), 1);
    /// assert_eq!(dev.capacity(), Some(dev.info().size));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn connect(uri: &str) -> Result<NbdDevice> {
        NbdBuilder::default().connect(uri)
    }

    /// What the server advertised. A server is needed, hence `no_run`:
    ///
    /// ```no_run
    /// use iov_iter::dio::DirectIo;
    /// let dev = iov_iter::backend::nbd::NbdDevice::connect("nbd://localhost/")?;
    /// let info = dev.info();
    /// // The device's alignment is the server's minimum block size.
    /// assert_eq!(u64::from(dev.dio_align().offset), info.block_min.max(1));
    /// if info.read_only {
    ///     println!("writes will fail with EROFS");
    /// }
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn info(&self) -> NbdInfo {
        self.info
    }

    /// Connections open (1 unless [`NbdBuilder::connections`] asked for
    /// more and the server allows multi-conn). A server is needed, hence
    /// `no_run`:
    ///
    /// ```no_run
    /// use iov_iter::backend::nbd::NbdDevice;
    /// let dev = NbdDevice::builder().connections(4).connect("nbd://localhost/")?;
    /// let want = if dev.info().can_multi_conn { 4 } else { 1 };
    /// assert_eq!(dev.connections(), want);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Why fewer connections were opened than asked for, or `None`. A
    /// server is needed, hence `no_run`:
    ///
    /// ```no_run
    /// use iov_iter::backend::nbd::NbdDevice;
    /// let dev = NbdDevice::builder().connections(4).connect("nbd://localhost/")?;
    /// match dev.multi_conn_refused() {
    ///     None => assert_eq!(dev.connections(), 4),
    ///     Some(why) => {
    ///         assert_eq!(dev.connections(), 1);
    ///         println!("one connection: {why}");
    ///     }
    /// }
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn multi_conn_refused(&self) -> Option<&'static str> {
        self.multi_conn_refused
    }

    /// Largest data command sent (the server's maximum block size, or
    /// 32 MiB where it advertises none); longer segments are cut. A server
    /// is needed, hence `no_run`:
    ///
    /// ```no_run
    /// use iov_iter::dio::DirectIo;
    /// let dev = iov_iter::backend::nbd::NbdDevice::connect("nbd://localhost/")?;
    /// let max = dev.max_request() as u64;
    /// assert_eq!(max % u64::from(dev.dio_align().offset), 0); // whole blocks
    /// assert!(dev.info().block_max == 0 || max <= dev.info().block_max);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn max_request(&self) -> usize {
        self.max_request
    }

    /// Async requests (parts) in flight over every connection. A server is
    /// needed, hence `no_run`:
    ///
    /// ```no_run
    /// use iov_iter::buf::{AlignedBuf, OwnedIter};
    /// use iov_iter::dio::DirectIo;
    /// use iov_iter::kiocb::Kiocb;
    /// use iov_iter::Dest;
    /// let dev = iov_iter::backend::nbd::NbdDevice::connect("nbd://localhost/")?;
    /// let buf = OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(512, 4096)?);
    /// let (mut kiocb, fut) = Kiocb::new_async_with(0, buf);
    /// assert!(dev.submit(&mut kiocb)?.is_queued());
    /// assert_eq!(dev.in_flight(), 1); // until the device is driven
    /// assert_eq!(dev.block_on(fut).result, Ok(4096));
    /// assert_eq!(dev.in_flight(), 0);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn in_flight(&self) -> usize {
        self.conns.iter().map(|c| lock(&c.st).async_n).sum()
    }

    /// NBD commands libnbd has in flight over every connection
    /// (`nbd_aio_in_flight`). A server is needed, hence `no_run`:
    ///
    /// ```no_run
    /// use iov_iter::buf::{AlignedBuf, OwnedIter};
    /// use iov_iter::dio::DirectIo;
    /// use iov_iter::kiocb::Kiocb;
    /// use iov_iter::Dest;
    /// let dev = iov_iter::backend::nbd::NbdDevice::connect("nbd://localhost/")?;
    /// assert_eq!(dev.commands_in_flight(), 0);
    /// let buf = OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(512, 4096)?);
    /// let (mut kiocb, fut) = Kiocb::new_async_with(0, buf);
    /// assert!(dev.submit(&mut kiocb)?.is_queued());
    /// assert!(dev.commands_in_flight() >= 1); // one per part: more past `max_request`
    /// dev.block_on(fut);
    /// assert_eq!(dev.commands_in_flight(), 0);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "nbd_aio_in_flight")]
    pub fn commands_in_flight(&self) -> usize {
        self.conns.iter().map(|c| c.h.in_flight()).sum()
    }

    /// Whether every connection is dead (the server went away): every
    /// request now fails at once. A server is needed, hence `no_run`:
    ///
    /// ```no_run
    /// use iov_iter::dio::DirectIo;
    /// use iov_iter::kiocb::Kiocb;
    /// use iov_iter::{Dest, IovIter, Ubuf};
    /// let dev = iov_iter::backend::nbd::NbdDevice::connect("nbd://localhost/")?;
    /// assert!(!dev.is_dead());
    /// let mut buf = vec![0u8; 512];
    /// let res = dev.direct_io(&mut Kiocb::new_sync(0), &mut IovIter::<Dest, Ubuf>::new(&mut buf));
    /// // A dead device fails every request (with the connection's errno).
    /// assert!(!dev.is_dead() || res.is_err());
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn is_dead(&self) -> bool {
        self.conns.iter().all(|c| lock(&c.st).dead.is_some())
    }

    /// `NBD_CMD_FLUSH`: makes every write completed so far (on any
    /// connection: multi-conn servers promise that) durable; waits. A
    /// server without a write cache (`!info().can_flush`) needs none: `Ok`.
    ///
    /// # Errors
    ///
    /// The server's errno, or the connection's error.
    ///
    /// ```no_run
    /// let dev = iov_iter::backend::nbd::NbdDevice::connect("nbd://localhost/")?;
    /// dev.flush()?;
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "NBD_CMD_FLUSH")]
    pub fn flush(&self) -> Result<()> {
        if !self.info.can_flush {
            return Ok(());
        }
        let conn = self.pick();
        let rs = self.run_sync(conn, 1, |h, _| h.aio_flush());
        rs.into_iter().collect()
    }

    /// `NBD_CMD_TRIM` of `len` bytes at `offset` (a discard: the range
    /// may read back as anything, zeroes on most servers); waits. Cut into
    /// commands of at most 4 GiB less one block.
    ///
    /// # Errors
    ///
    /// `EOPNOTSUPP` where the server takes no trim, `EROFS` on a read-only
    /// export, `EINVAL` past the end or for an offset or length not a
    /// multiple of the minimum block size (client checks on); the
    /// server's errno.
    ///
    /// ```no_run
    /// let dev = iov_iter::backend::nbd::NbdDevice::connect("nbd://localhost/")?;
    /// dev.trim(1 << 20, 1 << 20)?;
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "NBD_CMD_TRIM")]
    #[doc(alias = "discard")]
    pub fn trim(&self, offset: u64, len: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        if self.client_checks {
            if !self.info.can_trim {
                return Err(Error::NotSupported("the NBD server takes no trim"));
            }
            if self.info.read_only {
                return Err(Error::Os(Errno::EROFS));
            }
            let min = u64::from(self.align.offset);
            if offset % min != 0 || len % min != 0 {
                return Err(Error::InvalidArgument("trim not aligned to the block size"));
            }
            if offset.checked_add(len).is_none_or(|e| e > self.info.size) {
                return Err(Error::InvalidArgument("trim past the end of the export"));
            }
        }
        let step = u64::from(u32::MAX) & !(u64::from(self.align.offset) - 1);
        let n = len.div_ceil(step) as usize;
        let conn = self.pick();
        let rs = self.run_sync(conn, n, |h, i| {
            let off = i as u64 * step;
            h.aio_trim(step.min(len - off), offset + off)
        });
        rs.into_iter().collect()
    }

    /// The connection for the next request: round robin over the live
    /// ones.
    fn pick(&self) -> &Conn {
        let n = self.conns.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| &self.conns[(start + k) % n])
            .find(|c| lock(&c.st).dead.is_none())
            .unwrap_or(&self.conns[start % n])
    }

    /// Whether a write with `flags` needs FUA, and whether a flush after.
    fn sync_mode(&self, rw: RwType, flags: RwfFlags) -> (u32, bool) {
        let dsync = rw == RwType::Write && flags.intersects(RwfFlags::DSYNC | RwfFlags::SYNC);
        if !dsync {
            (0, false)
        } else if self.fua {
            (ffi::CMD_FLAG_FUA, false)
        } else {
            (0, self.info.can_flush)
        }
    }

    /// Issues `n` commands on `conn` (`issue(handle, i)`), all in flight,
    /// and waits until every one is retired (or the connection died);
    /// their outcomes in order. Async requests that complete meanwhile on
    /// the connection are completed too.
    fn run_sync(
        &self,
        conn: &Conn,
        n: usize,
        mut issue: impl FnMut(&Handle, usize) -> Result<Cookie>,
    ) -> Vec<Result<()>> {
        let w = Waiter::new(n);
        {
            let mut st = lock(&conn.st);
            for i in 0..n {
                let r = match conn.dead_error(&mut st) {
                    Some(e) => Err(e),
                    None => issue(&conn.h, i),
                };
                match r {
                    Ok(c) => {
                        st.pending.insert(
                            c,
                            Pending::Sync {
                                w: Arc::clone(&w),
                                idx: i,
                            },
                        );
                    }
                    Err(e) => {
                        let e = conn.dead_error(&mut st).unwrap_or(e);
                        // Nothing after a failed issue is sent.
                        for j in i..n {
                            w.set(j, Err(e));
                        }
                        break;
                    }
                }
            }
        }
        let mut done = Done::new();
        loop {
            conn.reap(&mut done);
            for (io, r) in done.drain(..) {
                io.complete(r);
            }
            if w.done() {
                return w.take();
            }
            if let Err(e) = wait_events(&[conn], POLL_SLICE) {
                // A poll that fails for good (not EINTR) cannot wait for
                // the server; the commands stay owned by the table until
                // the connection is closed. Record and keep trying is the
                // only sound choice with borrowed memory out: back off.
                conn.note_cause(e);
                std::thread::sleep(POLL_SLICE);
            }
        }
    }

    /// Cuts `io` into parts of one iovec of at most `max_request` bytes.
    fn cut(&self, io: AsyncIo) -> SmallVec<[AsyncIo; 4]> {
        let mut out = SmallVec::new();
        for part in crate::dio::split(io, 1) {
            let mut rest = part;
            loop {
                match rest.split_at(self.max_request) {
                    Ok((head, tail)) => {
                        out.push(head);
                        rest = tail;
                    }
                    Err(last) => {
                        out.push(last);
                        break;
                    }
                }
            }
        }
        out
    }

    /// The client-side checks of a request at `pos` of `len` bytes: the
    /// bytes it may move (block-device rules at the end), or its error.
    fn bounds(&self, rw: RwType, pos: u64, len: usize) -> Result<usize> {
        if !self.client_checks {
            return Ok(len);
        }
        if rw == RwType::Write && self.info.read_only {
            return Err(Error::Os(Errno::EROFS));
        }
        let room = self.info.size.saturating_sub(pos);
        if room == 0 && rw == RwType::Write {
            return Err(Error::Os(Errno::ENOSPC));
        }
        Ok((len as u64).min(room) as usize)
    }
}

impl DirectIo for NbdDevice {
    fn dio_align(&self) -> DioAlign {
        self.align
    }

    /// Nothing optional: `RWF_NOWAIT` (which would need a non-blocking
    /// submit that can refuse) and `RWF_ATOMIC` are refused with
    /// `EOPNOTSUPP` by the crate; `RWF_DSYNC` / `RWF_SYNC` need no
    /// capability and become FUA or a flush.
    fn caps(&self) -> FileCaps {
        FileCaps::new()
    }

    fn max_segs(&self) -> usize {
        UIO_MAXIOV
    }

    fn capacity(&self) -> Option<u64> {
        Some(self.info.size)
    }

    fn async_mode(&self) -> AsyncMode {
        AsyncMode::Queued
    }

    unsafe fn transfer(
        &self,
        rw: RwType,
        pos: u64,
        iov: &[UserIovec],
        flags: RwfFlags,
    ) -> Result<usize> {
        let total: usize = iov.iter().map(|v| v.len).sum();
        let allowed = self.bounds(rw, pos, total)?;
        // (address, length, position) of each command.
        let mut cmds: SmallVec<[(*mut u8, usize, u64); 8]> = SmallVec::new();
        let mut off = 0usize;
        'outer: for v in iov {
            let mut done = 0usize;
            while done < v.len {
                if off >= allowed {
                    break 'outer;
                }
                let n = (v.len - done).min(self.max_request).min(allowed - off);
                cmds.push((v.base.wrapping_add(done), n, pos + off as u64));
                done += n;
                off += n;
            }
        }
        if cmds.is_empty() {
            return Ok(0);
        }
        let (fua, flush_after) = self.sync_mode(rw, flags);
        let conn = self.pick();
        let rs = self.run_sync(conn, cmds.len(), |h, i| {
            let (base, len, at) = cmds[i];
            match rw {
                // SAFETY: `base..base + len` lies inside one of the
                // caller's iovecs, valid for writes and reached by nothing
                // else for the call (the `transfer` contract); `run_sync`
                // returns only once the command is retired or the
                // connection is dead.
                RwType::Read => unsafe { h.aio_pread(base, len, at, 0) },
                // SAFETY: as above, valid for reads.
                RwType::Write => unsafe { h.aio_pwrite(base, len, at, fua) },
            }
        });
        let mut moved = 0usize;
        for (r, &(_, len, _)) in rs.iter().zip(&cmds) {
            match r {
                Ok(()) => moved += len,
                Err(e) if moved == 0 => return Err(*e),
                Err(_) => break,
            }
        }
        if flush_after && moved > 0 {
            for r in self.run_sync(conn, 1, |h, _| h.aio_flush()) {
                r?;
            }
        }
        Ok(moved)
    }

    fn start(&self, io: AsyncIo) {
        let (rw, pos, len) = (io.rw(), io.pos(), io.len());
        let io = match self.bounds(rw, pos, len) {
            Err(e) => return io.complete(Err(e)),
            Ok(0) => return io.complete(Ok(0)),
            Ok(n) if n < len => match io.split_at(n) {
                Ok((head, tail)) => {
                    // The part past the end: nothing (a read) or no space.
                    tail.complete(match rw {
                        RwType::Read => Ok(0),
                        RwType::Write => Err(Error::Os(Errno::ENOSPC)),
                    });
                    head
                }
                Err(io) => io,
            },
            Ok(_) => io,
        };
        let (fua, flush_after) = self.sync_mode(rw, io.flags());
        let conn = self.pick();
        let parts = self.cut(io);
        let mut failed: SmallVec<[(AsyncIo, Error); 2]> = SmallVec::new();
        {
            let mut st = lock(&conn.st);
            for part in parts {
                let r = match conn.dead_error(&mut st) {
                    Some(e) => Err(e),
                    None => {
                        let v = part.iovecs()[0];
                        match rw {
                            // SAFETY: the part's one iovec describes memory
                            // the request owns, valid for writes and reached
                            // by nothing else until it completes (the
                            // `AsyncIo` contract); the part stays in the
                            // table until its cookie is retired or the
                            // handle is closed, before it is dropped.
                            RwType::Read => unsafe {
                                conn.h.aio_pread(v.base, v.len, part.pos(), 0)
                            },
                            // SAFETY: as above, valid for reads.
                            RwType::Write => unsafe {
                                conn.h.aio_pwrite(v.base, v.len, part.pos(), fua)
                            },
                        }
                    }
                };
                match r {
                    Ok(c) => {
                        st.async_n += 1;
                        st.pending.insert(
                            c,
                            Pending::Io {
                                io: part,
                                flush_after,
                            },
                        );
                    }
                    // An issue refused because the connection died just
                    // now ("invalid state"): the connection's error.
                    Err(e) => failed.push((part, conn.dead_error(&mut st).unwrap_or(e))),
                }
            }
        }
        for (part, e) in failed {
            part.complete(Err(e));
        }
    }

    fn drive(&self, min_complete: usize) -> Result<usize> {
        let conns: SmallVec<[&Conn; 4]> = self.conns.iter().collect();
        let mut delivered = 0usize;
        let mut timeout = Duration::ZERO;
        loop {
            wait_events(&conns, timeout)?;
            let mut done = Done::new();
            for c in &conns {
                c.reap(&mut done);
            }
            delivered += done.len();
            for (io, r) in done {
                io.complete(r);
            }
            if delivered >= min_complete || self.in_flight() == 0 {
                return Ok(delivered);
            }
            timeout = POLL_SLICE;
        }
    }
}
