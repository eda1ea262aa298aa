//! Direct-I/O backends: each implements [`DirectIo`](crate::dio::DirectIo)
//! (the crate's one I/O contract) by providing its raw transfer, and, where
//! it can overlap I/O, [`DirectIo::start`](crate::dio::DirectIo::start) and
//! [`DirectIo::drive`](crate::dio::DirectIo::drive). Validation, splitting,
//! short-transfer handling, dirty reporting and the kiocb contract are the
//! crate's, the same on every backend.
//!
//! | backend | feature | what it is | async requests |
//! |---|---|---|---|
//! | [`mem`] | `alloc` | a RAM block device with the same alignment rules, fault injection (EIO, short transfers, EAGAIN under `RWF_NOWAIT`) and counters; no syscalls, runs under Miri | inline, or deferred and completed in an order a test picks |
//! | `file` | `std`, Linux | `DirectFile`: a real file opened with `O_DIRECT`, alignment from `statx(STATX_DIOALIGN)`, I/O through `preadv2` / `pwritev2` with the `RWF_*` flags | inline (the syscalls block) |
//! | `fiemap` | `std`, Linux | `FiemapMap`: not a device but the extent map of a real file (`FS_IOC_FIEMAP`), an [`IoMap`](crate::iomap::IoMap) for swap activation and reads through `iomap::IomapDio` | - |
//! | `uring` | `uring`, Linux | `UringQueue`: io_uring on `O_DIRECT` files (more than one per ring with `UringFile`), registered files and buffers (`READ_FIXED` / `WRITE_FIXED`) opt-in, fsync | queued: in flight when `submit` returns |
//! | `nbd` | `nbd`, Linux | `NbdDevice`: a network block device export (`nbd://`, `nbd+unix://`) through libnbd, loaded at run time; FUA / flush from `RWF_DSYNC`, trim, block-size constraints, multi-conn | queued: many commands in flight per connection |
//!
//! Mocks are for fault injection only: the `file` and `uring` backends are
//! what run real direct I/O.

pub mod mem;

#[cfg(all(feature = "std", target_os = "linux"))]
pub mod fiemap;

#[cfg(all(feature = "std", target_os = "linux"))]
pub mod file;

#[cfg(all(feature = "uring", target_os = "linux"))]
pub mod uring;

#[cfg(all(feature = "nbd", target_os = "linux"))]
pub mod nbd;
