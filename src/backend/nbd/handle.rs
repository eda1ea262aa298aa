//! [`Handle`]: a safe wrapper over one `struct nbd_handle` (one NBD
//! connection), on the functions [`ffi`](super::ffi) resolves.
//!
//! libnbd handles are thread-safe: every call takes the handle's own lock,
//! so a `Handle` is `Send` and `Sync`. Only the non-blocking `nbd_aio_*`
//! calls are used once connected (a blocking call holds that lock while it
//! polls, which would stall every other thread using the connection).

use core::ffi::{CStr, c_int};
use core::ptr::NonNull;
use std::os::fd::RawFd;

use super::ffi::{self, Api, NbdHandleRaw};
use crate::error::{Errno, Error, Result};

/// An NBD command's cookie (`nbd_aio_*`'s return value).
pub(super) type Cookie = u64;

/// The calling thread's last libnbd error (`nbd_get_errno`, thread-local),
/// as an [`Error::Os`]; `EIO` when libnbd recorded no errno.
pub(super) fn last_error(api: &Api) -> Error {
    // SAFETY: `nbd_get_errno` takes nothing and reads thread-local state.
    let e = unsafe { (api.nbd_get_errno)() };
    Error::Os(if e > 0 {
        Errno::from_raw(e)
    } else {
        Errno::EIO
    })
}

/// The calling thread's last libnbd error message (`nbd_get_error`).
pub(super) fn last_message(api: &Api) -> Option<String> {
    // SAFETY: `nbd_get_error` takes nothing and returns NULL or a string
    // valid until the thread's next libnbd call.
    let p = unsafe { (api.nbd_get_error)() };
    if p.is_null() {
        return None;
    }
    // SAFETY: non-null: a NUL-terminated string owned by libnbd, copied
    // at once, before any other libnbd call on this thread.
    Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// One libnbd handle, closed (`nbd_close`) on drop.
pub(super) struct Handle {
    api: &'static Api,
    h: NonNull<NbdHandleRaw>,
}

// SAFETY: libnbd handles may be used from any thread (libnbd(3),
// "MULTITHREADING": each call locks the handle).
unsafe impl Send for Handle {}
// SAFETY: as above: concurrent calls on one handle are serialised by
// libnbd's own lock.
unsafe impl Sync for Handle {}

/// `int` result of a libnbd call: -1 is an error, anything else is `Ok`.
fn int(api: &Api, r: c_int) -> Result<c_int> {
    if r < 0 { Err(last_error(api)) } else { Ok(r) }
}

/// `int64_t` result of a libnbd call.
fn int64(api: &Api, r: i64) -> Result<u64> {
    if r < 0 {
        Err(last_error(api))
    } else {
        Ok(r as u64)
    }
}

impl Handle {
    /// A new, unconnected handle (`nbd_create`).
    pub(super) fn new(api: &'static Api) -> Result<Handle> {
        // SAFETY: `nbd_create` takes nothing; NULL on failure.
        let h = unsafe { (api.nbd_create)() };
        let h = NonNull::new(h).ok_or_else(|| last_error(api))?;
        Ok(Handle { api, h })
    }

    fn raw(&self) -> *mut NbdHandleRaw {
        self.h.as_ptr()
    }

    /// `nbd_set_request_structured_replies`.
    pub(super) fn set_request_structured_replies(&self, on: bool) -> Result<()> {
        // SAFETY: `raw()` is a live handle (closed only on drop).
        int(self.api, unsafe {
            (self.api.nbd_set_request_structured_replies)(self.raw(), on)
        })
        .map(drop)
    }

    /// `nbd_get_structured_replies_negotiated`.
    pub(super) fn structured_replies_negotiated(&self) -> Result<bool> {
        // SAFETY: a live handle.
        int(self.api, unsafe {
            (self.api.nbd_get_structured_replies_negotiated)(self.raw())
        })
        .map(|r| r != 0)
    }

    /// `nbd_set_strict_mode`.
    pub(super) fn set_strict_mode(&self, flags: u32) -> Result<()> {
        // SAFETY: a live handle.
        int(self.api, unsafe {
            (self.api.nbd_set_strict_mode)(self.raw(), flags)
        })
        .map(drop)
    }

    /// `nbd_connect_uri`: connects and negotiates (blocking).
    pub(super) fn connect_uri(&self, uri: &CStr) -> Result<()> {
        // SAFETY: a live handle and a NUL-terminated string valid for the
        // call (libnbd copies what it keeps).
        int(self.api, unsafe {
            (self.api.nbd_connect_uri)(self.raw(), uri.as_ptr())
        })
        .map(drop)
    }

    /// `nbd_get_size`.
    pub(super) fn size(&self) -> Result<u64> {
        // SAFETY: a live handle.
        int64(self.api, unsafe { (self.api.nbd_get_size)(self.raw()) })
    }

    /// `nbd_get_block_size`: 0 where the server advertised none.
    pub(super) fn block_size(&self, kind: c_int) -> Result<u64> {
        // SAFETY: a live handle.
        int64(self.api, unsafe {
            (self.api.nbd_get_block_size)(self.raw(), kind)
        })
    }

    /// One of the `nbd_is_*` / `nbd_can_*` flag queries.
    fn flag(&self, f: unsafe extern "C" fn(*mut NbdHandleRaw) -> c_int) -> Result<bool> {
        // SAFETY: a live handle; `f` is one of the handle-only queries.
        int(self.api, unsafe { f(self.raw()) }).map(|r| r != 0)
    }

    /// `nbd_is_read_only`.
    pub(super) fn is_read_only(&self) -> Result<bool> {
        self.flag(self.api.nbd_is_read_only)
    }

    /// `nbd_can_flush`.
    pub(super) fn can_flush(&self) -> Result<bool> {
        self.flag(self.api.nbd_can_flush)
    }

    /// `nbd_can_fua`.
    pub(super) fn can_fua(&self) -> Result<bool> {
        self.flag(self.api.nbd_can_fua)
    }

    /// `nbd_can_trim`.
    pub(super) fn can_trim(&self) -> Result<bool> {
        self.flag(self.api.nbd_can_trim)
    }

    /// `nbd_can_multi_conn`.
    pub(super) fn can_multi_conn(&self) -> Result<bool> {
        self.flag(self.api.nbd_can_multi_conn)
    }

    /// `nbd_aio_pread`: queues a read of `len` bytes at `off` into `buf`.
    ///
    /// # Safety
    ///
    /// `buf` is valid for writes of `len` bytes, and reached by nothing
    /// else, until the returned cookie is retired
    /// ([`Handle::command_completed`] returned `Some`) or the handle is
    /// closed (dropped).
    pub(super) unsafe fn aio_pread(
        &self,
        buf: *mut u8,
        len: usize,
        off: u64,
        flags: u32,
    ) -> Result<Cookie> {
        // SAFETY: a live handle; the caller keeps `buf` valid for the
        // command's life; the null completion owns nothing.
        int64(self.api, unsafe {
            (self.api.nbd_aio_pread)(
                self.raw(),
                buf.cast(),
                len,
                off,
                ffi::NULL_COMPLETION,
                flags,
            )
        })
    }

    /// `nbd_aio_pwrite`: queues a write of `len` bytes at `off` from `buf`.
    ///
    /// # Safety
    ///
    /// `buf` is valid for reads of `len` bytes, and not written by
    /// anything, until the returned cookie is retired or the handle is
    /// closed.
    pub(super) unsafe fn aio_pwrite(
        &self,
        buf: *const u8,
        len: usize,
        off: u64,
        flags: u32,
    ) -> Result<Cookie> {
        // SAFETY: a live handle; the caller keeps `buf` valid for the
        // command's life; the null completion owns nothing.
        int64(self.api, unsafe {
            (self.api.nbd_aio_pwrite)(
                self.raw(),
                buf.cast(),
                len,
                off,
                ffi::NULL_COMPLETION,
                flags,
            )
        })
    }

    /// `nbd_aio_flush` (`NBD_CMD_FLUSH`).
    pub(super) fn aio_flush(&self) -> Result<Cookie> {
        // SAFETY: a live handle; a flush points to no memory.
        int64(self.api, unsafe {
            (self.api.nbd_aio_flush)(self.raw(), ffi::NULL_COMPLETION, 0)
        })
    }

    /// `nbd_aio_trim` (`NBD_CMD_TRIM`).
    pub(super) fn aio_trim(&self, len: u64, off: u64) -> Result<Cookie> {
        // SAFETY: a live handle; a trim points to no memory.
        int64(self.api, unsafe {
            (self.api.nbd_aio_trim)(self.raw(), len, off, ffi::NULL_COMPLETION, 0)
        })
    }

    /// `nbd_aio_peek_command_completed`: a completed, not yet retired
    /// cookie, if any.
    pub(super) fn peek_completed(&self) -> Option<Cookie> {
        // SAFETY: a live handle.
        let r = unsafe { (self.api.nbd_aio_peek_command_completed)(self.raw()) };
        (r > 0).then_some(r as u64)
    }

    /// `nbd_aio_command_completed`: `None` while in flight; once complete,
    /// retires the command and gives its outcome (the server's errno, or
    /// libnbd's for a command the connection's death aborted).
    pub(super) fn command_completed(&self, cookie: Cookie) -> Option<Result<()>> {
        // SAFETY: a live handle.
        match unsafe { (self.api.nbd_aio_command_completed)(self.raw(), cookie) } {
            0 => None,
            r if r > 0 => Some(Ok(())),
            _ => Some(Err(last_error(self.api))),
        }
    }

    /// `nbd_aio_in_flight`.
    pub(super) fn in_flight(&self) -> usize {
        // SAFETY: a live handle.
        let r = unsafe { (self.api.nbd_aio_in_flight)(self.raw()) };
        r.max(0) as usize
    }

    /// `nbd_aio_get_fd`: the socket to poll (`None` when there is none
    /// any more: dead or closed).
    pub(super) fn fd(&self) -> Option<RawFd> {
        // SAFETY: a live handle.
        let fd = unsafe { (self.api.nbd_aio_get_fd)(self.raw()) };
        (fd >= 0).then_some(fd)
    }

    /// `nbd_aio_get_direction`: `(wants read, wants write)`.
    pub(super) fn direction(&self) -> (bool, bool) {
        // SAFETY: a live handle.
        let d = unsafe { (self.api.nbd_aio_get_direction)(self.raw()) };
        (
            d & ffi::AIO_DIRECTION_READ != 0,
            d & ffi::AIO_DIRECTION_WRITE != 0,
        )
    }

    /// `nbd_aio_notify_read`.
    pub(super) fn notify_read(&self) -> Result<()> {
        // SAFETY: a live handle.
        int(self.api, unsafe {
            (self.api.nbd_aio_notify_read)(self.raw())
        })
        .map(drop)
    }

    /// `nbd_aio_notify_write`.
    pub(super) fn notify_write(&self) -> Result<()> {
        // SAFETY: a live handle.
        int(self.api, unsafe {
            (self.api.nbd_aio_notify_write)(self.raw())
        })
        .map(drop)
    }

    /// `nbd_aio_is_dead() || nbd_aio_is_closed()`: the connection is gone
    /// and every command that was in flight has been completed (with an
    /// error) by libnbd.
    pub(super) fn is_gone(&self) -> bool {
        // SAFETY: a live handle.
        let dead = unsafe { (self.api.nbd_aio_is_dead)(self.raw()) } > 0;
        // SAFETY: a live handle.
        dead || unsafe { (self.api.nbd_aio_is_closed)(self.raw()) } > 0
    }
}

impl Drop for Handle {
    /// `nbd_close`: closes the socket and frees every command still in
    /// flight; libnbd touches none of their buffers afterwards.
    fn drop(&mut self) {
        // SAFETY: the handle is live and this is its only close.
        unsafe { (self.api.nbd_close)(self.raw()) }
    }
}
