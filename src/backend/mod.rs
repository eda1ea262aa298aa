//! Direct-I/O backends: each implements [`Transfer`](crate::dio::Transfer)
//! (one raw vectored read or write at a position), and so gets
//! [`DirectIo`](crate::dio::DirectIo) (alignment checks, splitting at
//! `UIO_MAXIOV`, short-transfer handling, dirty reporting, sync and async
//! completion) from [`dio_rw`](crate::dio::dio_rw).
//!
//! | backend | feature | what it is |
//! |---|---|---|
//! | [`mem`] | `alloc` | a RAM block device with the same alignment rules, fault injection (EIO, short transfers, EAGAIN under `RWF_NOWAIT`) and counters; no syscalls, runs under Miri |
//! | `file` | `std`, Linux | `DirectFile`: a real file opened with `O_DIRECT`, alignment from `statx(STATX_DIOALIGN)`, I/O through `preadv2` / `pwritev2` with the `RWF_*` flags |
//! | `uring` | `uring`, Linux | io_uring, truly asynchronous |
//!
//! Mocks are for fault injection only: the `file` backend is what runs real
//! direct I/O.

pub mod mem;

#[cfg(all(feature = "std", target_os = "linux"))]
pub mod file;

#[cfg(all(feature = "uring", target_os = "linux"))]
pub mod uring;
