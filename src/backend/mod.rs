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
//!
//! # Examples
//!
//! The same code over two backends:
//!
//! ```
//! use iov_iter::backend::mem::MemDevice;
//! use iov_iter::dio::DirectIo;
//! use iov_iter::kiocb::{Kiocb, Submitted};
//! use iov_iter::{IovIter, Page, Source, Ubuf};
//!
//! fn write_page(target: &impl DirectIo, page: &Page) -> iov_iter::Result<Submitted> {
//!     let mut src = IovIter::<Source, Ubuf>::new(page.as_bytes());
//!     target.direct_io(&mut Kiocb::new_sync(0), &mut src)
//! }
//! let page = Page::new();
//! assert_eq!(write_page(&MemDevice::new(1 << 20), &page)?, Submitted::Done(4096));
//! # #[cfg(all(feature = "std", target_os = "linux"))] {
//! # struct Rm(std::path::PathBuf);
//! # impl Drop for Rm {
//! #     fn drop(&mut self) {
//! #         let _ = std::fs::remove_file(&self.0);
//! #     }
//! # }
//! # let tmp = Rm(std::env::temp_dir().join(format!("iov-iter-doc-{}-backends", std::process::id())));
//! # let path = &tmp.0;
//! use iov_iter::backend::file::DirectFile;
//! match DirectFile::options().create(true).open(path) {
//!     Ok(file) => assert_eq!(write_page(&file, &page)?, Submitted::Done(4096)),
//!     Err(e) => assert_eq!(e.errno(), iov_iter::Errno::EINVAL), // no O_DIRECT here
//! }
//! # }
//! # Ok::<(), iov_iter::Error>(())
//! ```

pub mod mem;

#[cfg(all(feature = "std", target_os = "linux"))]
pub mod fiemap;

#[cfg(all(feature = "std", target_os = "linux"))]
pub mod file;

#[cfg(all(feature = "uring", target_os = "linux"))]
pub mod uring;

#[cfg(all(feature = "nbd", target_os = "linux"))]
pub mod nbd;
