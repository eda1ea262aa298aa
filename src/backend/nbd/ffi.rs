//! The FFI layer over libnbd: declarations and the run-time loader only.
//!
//! Every function is declared once, in the `libnbd!` table below, with its
//! Rust parameter and return types written in brackets; the macro makes
//! from that one table both the struct of typed function pointers that
//! [`api`] resolves from `libnbd.so.0` (`dlopen`, through `libloading`)
//! and the C prototype each pointer type corresponds to
//! ([`c_check_source`]), which a test compiles after `#include <libnbd.h>`:
//! a C declaration that disagrees with the header's is a compile error
//! ("conflicting types"), so a Rust type that disagrees with libnbd's is
//! caught. Only functions libnbd 1.14 (Debian 12) has are declared.
//!
//! Reference: `/usr/include/libnbd.h` (Debian `libnbd-dev`), libnbd(3),
//! nbd_aio_pread(3), nbd_aio_command_completed(3), nbd_aio_notify_read(3).

use core::ffi::{c_char, c_int, c_uint, c_void};
use std::sync::OnceLock;

/// `struct nbd_handle`: opaque.
#[repr(C)]
pub(super) struct NbdHandleRaw {
    _private: [u8; 0],
}

/// `nbd_completion_callback`: passed by value to every `nbd_aio_*`
/// command. This layer always passes the null one (`NBD_NULL_COMPLETION`)
/// and retires commands by cookie instead.
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct CompletionCallback {
    /// `int (*callback) (void *user_data, int *error)`.
    pub(super) callback: Option<unsafe extern "C" fn(*mut c_void, *mut c_int) -> c_int>,
    /// `void *user_data`.
    pub(super) user_data: *mut c_void,
    /// `void (*free) (void *user_data)`.
    pub(super) free: Option<unsafe extern "C" fn(*mut c_void)>,
}

/// `NBD_NULL_COMPLETION`.
pub(super) const NULL_COMPLETION: CompletionCallback = CompletionCallback {
    callback: None,
    user_data: core::ptr::null_mut(),
    free: None,
};

/// `LIBNBD_SIZE_MINIMUM`.
pub(super) const SIZE_MINIMUM: c_int = 0;
/// `LIBNBD_SIZE_PREFERRED`.
pub(super) const SIZE_PREFERRED: c_int = 1;
/// `LIBNBD_SIZE_MAXIMUM`.
pub(super) const SIZE_MAXIMUM: c_int = 2;
/// `LIBNBD_CMD_FLAG_FUA`.
pub(super) const CMD_FLAG_FUA: u32 = 0x01;
/// `LIBNBD_AIO_DIRECTION_READ`.
pub(super) const AIO_DIRECTION_READ: c_uint = 1;
/// `LIBNBD_AIO_DIRECTION_WRITE`.
pub(super) const AIO_DIRECTION_WRITE: c_uint = 2;
/// `LIBNBD_STRICT_COMMANDS` (client-side refusal of commands the server
/// did not advertise, such as a write to a read-only export).
pub(super) const STRICT_COMMANDS: u32 = 0x01;
/// `LIBNBD_STRICT_BOUNDS` (client-side refusal of requests past the
/// export's end).
pub(super) const STRICT_BOUNDS: u32 = 0x04;

/// The C spelling of a Rust type of the table (`c_ty!(*mut c_void)`).
macro_rules! c_ty {
    (()) => {
        "void"
    };
    (c_int) => {
        "int"
    };
    (c_uint) => {
        "unsigned"
    };
    (bool) => {
        "bool"
    };
    (u32) => {
        "uint32_t"
    };
    (u64) => {
        "uint64_t"
    };
    (i64) => {
        "int64_t"
    };
    (usize) => {
        "size_t"
    };
    (*mut NbdHandleRaw) => {
        "struct nbd_handle *"
    };
    (*mut c_void) => {
        "void *"
    };
    (*const c_void) => {
        "const void *"
    };
    (*const c_char) => {
        "const char *"
    };
    (CompletionCallback) => {
        "nbd_completion_callback"
    };
}

/// The table: `fn name([rust type] param, ...) -> [rust type];`.
macro_rules! libnbd {
    ($(fn $name:ident($($p:ident: [$($t:tt)+]),*) -> [$($r:tt)+];)*) => {
        /// Typed pointers to the libnbd functions this backend uses,
        /// resolved once from `libnbd.so.0`.
        #[allow(non_snake_case)]
        pub(super) struct Api {
            $(
                pub(super) $name: unsafe extern "C" fn($($($t)+),*) -> $($r)+,
            )*
            /// Keeps the library mapped for as long as the process runs
            /// (the `Api` lives in a `static`).
            _lib: libloading::Library,
        }

        impl Api {
            /// Opens `libnbd.so.0` and resolves every symbol.
            fn load() -> Result<Api, String> {
                // SAFETY: loading libnbd runs its ELF constructors, which
                // only set up its thread-local error storage (libnbd has
                // no other initialisation); the library is never unloaded.
                let lib = unsafe { libloading::Library::new(SONAME) }
                    .map_err(|e| format!("cannot load {SONAME}: {e}"))?;
                Ok(Api {
                    $(
                        // SAFETY: the pointer type is the one the C
                        // prototype below declares, which the header check
                        // (`c_check_source`) shows to be the header's.
                        $name: *unsafe {
                            lib.get::<unsafe extern "C" fn($($($t)+),*) -> $($r)+>(
                                concat!(stringify!($name), "\0").as_bytes(),
                            )
                        }
                        .map_err(|e| format!("{SONAME}: {}: {e}", stringify!($name)))?,
                    )*
                    _lib: lib,
                })
            }
        }

        /// The C prototypes the pointer types correspond to.
        const PROTOTYPES: &[&str] = &[$(
            concat!(
                "extern ", c_ty!($($r)+), " ", stringify!($name), " (",
                libnbd!(@params $([$($t)+])*),
                ");"
            ),
        )*];
    };
    (@params) => { "void" };
    (@params [$($t:tt)+] $([$($u:tt)+])*) => {
        concat!(c_ty!($($t)+) $(, ", ", c_ty!($($u)+))*)
    };
}

libnbd! {
    fn nbd_create() -> [*mut NbdHandleRaw];
    fn nbd_close(h: [*mut NbdHandleRaw]) -> [()];
    fn nbd_get_error() -> [*const c_char];
    fn nbd_get_errno() -> [c_int];
    fn nbd_set_request_structured_replies(h: [*mut NbdHandleRaw], request: [bool]) -> [c_int];
    fn nbd_get_structured_replies_negotiated(h: [*mut NbdHandleRaw]) -> [c_int];
    fn nbd_set_strict_mode(h: [*mut NbdHandleRaw], flags: [u32]) -> [c_int];
    fn nbd_connect_uri(h: [*mut NbdHandleRaw], uri: [*const c_char]) -> [c_int];
    fn nbd_get_size(h: [*mut NbdHandleRaw]) -> [i64];
    fn nbd_is_read_only(h: [*mut NbdHandleRaw]) -> [c_int];
    fn nbd_can_flush(h: [*mut NbdHandleRaw]) -> [c_int];
    fn nbd_can_fua(h: [*mut NbdHandleRaw]) -> [c_int];
    fn nbd_can_trim(h: [*mut NbdHandleRaw]) -> [c_int];
    fn nbd_can_multi_conn(h: [*mut NbdHandleRaw]) -> [c_int];
    fn nbd_get_block_size(h: [*mut NbdHandleRaw], size_type: [c_int]) -> [i64];
    fn nbd_aio_pread(
        h: [*mut NbdHandleRaw],
        buf: [*mut c_void],
        count: [usize],
        offset: [u64],
        completion: [CompletionCallback],
        flags: [u32]
    ) -> [i64];
    fn nbd_aio_pwrite(
        h: [*mut NbdHandleRaw],
        buf: [*const c_void],
        count: [usize],
        offset: [u64],
        completion: [CompletionCallback],
        flags: [u32]
    ) -> [i64];
    fn nbd_aio_flush(h: [*mut NbdHandleRaw], completion: [CompletionCallback], flags: [u32]) -> [i64];
    fn nbd_aio_trim(
        h: [*mut NbdHandleRaw],
        count: [u64],
        offset: [u64],
        completion: [CompletionCallback],
        flags: [u32]
    ) -> [i64];
    fn nbd_aio_command_completed(h: [*mut NbdHandleRaw], cookie: [u64]) -> [c_int];
    fn nbd_aio_peek_command_completed(h: [*mut NbdHandleRaw]) -> [i64];
    fn nbd_aio_in_flight(h: [*mut NbdHandleRaw]) -> [c_int];
    fn nbd_aio_get_fd(h: [*mut NbdHandleRaw]) -> [c_int];
    fn nbd_aio_get_direction(h: [*mut NbdHandleRaw]) -> [c_uint];
    fn nbd_aio_notify_read(h: [*mut NbdHandleRaw]) -> [c_int];
    fn nbd_aio_notify_write(h: [*mut NbdHandleRaw]) -> [c_int];
    fn nbd_aio_is_dead(h: [*mut NbdHandleRaw]) -> [c_int];
    fn nbd_aio_is_closed(h: [*mut NbdHandleRaw]) -> [c_int];
}

/// The library's soname (Debian `libnbd0`).
pub(super) const SONAME: &str = "libnbd.so.0";

static API: OnceLock<Result<Api, String>> = OnceLock::new();

/// libnbd, loaded on first use; the reason when it cannot be.
pub(super) fn api() -> Result<&'static Api, &'static str> {
    API.get_or_init(Api::load).as_ref().map_err(String::as_str)
}

/// A C translation unit that includes `<libnbd.h>` and then declares every
/// function as this layer's pointer types say, and asserts the layout of
/// `nbd_completion_callback` and the constants used: it compiles
/// (`cc -fsyntax-only`) exactly when the Rust declarations match the header.
pub(super) fn c_check_source() -> String {
    use core::mem::{offset_of, size_of};
    let mut s = String::from(
        "/* Generated by iov-iter's nbd backend: its FFI types, in C. */\n\
         #include <stdbool.h>\n#include <stddef.h>\n#include <stdint.h>\n#include <libnbd.h>\n\n",
    );
    for p in PROTOTYPES {
        s.push_str(p);
        s.push('\n');
    }
    let asserts = [
        (
            "sizeof (nbd_completion_callback)".to_string(),
            size_of::<CompletionCallback>(),
        ),
        (
            "offsetof (nbd_completion_callback, callback)".into(),
            offset_of!(CompletionCallback, callback),
        ),
        (
            "offsetof (nbd_completion_callback, user_data)".into(),
            offset_of!(CompletionCallback, user_data),
        ),
        (
            "offsetof (nbd_completion_callback, free)".into(),
            offset_of!(CompletionCallback, free),
        ),
        ("LIBNBD_SIZE_MINIMUM".into(), SIZE_MINIMUM as usize),
        ("LIBNBD_SIZE_PREFERRED".into(), SIZE_PREFERRED as usize),
        ("LIBNBD_SIZE_MAXIMUM".into(), SIZE_MAXIMUM as usize),
        ("LIBNBD_CMD_FLAG_FUA".into(), CMD_FLAG_FUA as usize),
        (
            "LIBNBD_AIO_DIRECTION_READ".into(),
            AIO_DIRECTION_READ as usize,
        ),
        (
            "LIBNBD_AIO_DIRECTION_WRITE".into(),
            AIO_DIRECTION_WRITE as usize,
        ),
        ("LIBNBD_STRICT_COMMANDS".into(), STRICT_COMMANDS as usize),
        ("LIBNBD_STRICT_BOUNDS".into(), STRICT_BOUNDS as usize),
    ];
    s.push('\n');
    for (expr, val) in asserts {
        s.push_str(&format!(
            "_Static_assert ({expr} == {val}, \"{}\");\n",
            expr.replace('"', "")
        ));
    }
    s
}
