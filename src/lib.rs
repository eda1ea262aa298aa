//! Typed scatter-gather iterators and direct I/O modelled on the Linux
//! kernel's `struct iov_iter`, `struct kiocb` and `->direct_IO`.
//!
//! An [`IovIter<'a, D, K>`](IovIter) walks memory of one kind `K` ([`Iovec`],
//! [`Kvec`], [`Bvec`], [`Ubuf`] or [`Discard`]) in one direction `D`
//! ([`Source`]: data is read out of the buffers; [`Dest`]: data lands in
//! them). The direction is a type, so a copy the wrong way does not compile;
//! where the kernel has undefined behaviour, a `BUG` or a `WARN` (reverting
//! past the start, reexpanding past the end, a page copy outside its page),
//! this crate returns an [`Error`] carrying the kernel's errno.
//!
//! ```
//! use iov_iter::{Dest, IoSegMut, IovIter, Iovec};
//!
//! let (mut head, mut body) = ([0u8; 4], [0u8; 8]);
//! let mut segs = [IoSegMut::new(&mut head), IoSegMut::new(&mut body)];
//! let mut it = IovIter::<Dest, Iovec>::new(&mut segs);
//! assert_eq!(it.copy_to_iter(b"HEADpayload!"), 12);
//! assert_eq!(it.nr_segs(), 0); // consumed segments are popped
//! drop(it);
//! assert_eq!(&head, b"HEAD");
//! assert_eq!(&body, b"payload!");
//! ```
//!
//! # Kernel name → crate item
//!
//! Where to find, here, what the kernel (and the Rust ecosystem it is
//! compared with) calls by another name. Items of the optional `uring`,
//! `nbd` and `vm-memory` features, and the Linux-only file backends, are
//! named rather than linked; every item also carries its kernel names as
//! search aliases.
//!
//! ## Iterators
//!
//! | kernel | here |
//! |---|---|
//! | `struct iov_iter` | [`IovIter`] (40 bytes, like the kernel's) |
//! | `ITER_SOURCE` / `WRITE`, `ITER_DEST` / `READ` | [`Source`], [`Dest`] (type parameters) |
//! | `ITER_IOVEC`, `ITER_KVEC`, `ITER_BVEC`, `ITER_UBUF`, `ITER_DISCARD` | [`Iovec`], [`Kvec`], [`Bvec`], [`Ubuf`], [`Discard`] |
//! | `struct iovec`, `struct kvec` | [`IoSeg`], [`IoSegMut`] |
//! | `user_backed_iter` | [`Kind::USER_BACKED`], [`IovIter::is_user_backed`] |
//! | `iov_iter_init`, `iov_iter_kvec`, `iov_iter_bvec`, `iov_iter_ubuf`, `iov_iter_discard` | `IovIter::<D, K>::new` |
//! | `iov_iter_count`, `nr_segs`, `iov_offset` | [`IovIter::count`], [`IovIter::nr_segs`], [`IovIter::iov_offset`] |
//! | `iov_iter_advance`, `iov_iter_revert` | [`IovIter::advance`], [`IovIter::revert`] |
//! | `iov_iter_truncate`, `iov_iter_reexpand` | [`IovIter::truncate`], [`IovIter::reexpand`] |
//! | `iov_iter_save_state`, `iov_iter_restore` | [`IovIter::save_state`], [`IovIter::restore`] |
//! | `copy_to_iter`, `copy_from_iter` (`_full`) | [`IovIter::copy_to_iter`], [`IovIter::copy_from_iter`], `…_full` |
//! | `copy_page_to_iter`, `copy_page_from_iter` | [`IovIter::copy_page_to_iter`], [`IovIter::copy_page_from_iter`] |
//! | `iov_iter_zero` | [`IovIter::zero`] |
//! | `iterate_and_advance` (step functions) | [`IovIter::iterate`], [`IovIter::chunks`], [`IovIter::chunks_mut`] |
//! | `iov_iter_single_seg_count` | [`IovIter::single_seg_count`] |
//! | `iov_iter_alignment`, `iov_iter_gap_alignment`, `iov_iter_is_aligned` | [`IovIter::alignment`], `gap_alignment`, [`IovIter::is_aligned`] |
//! | `iov_iter_npages` | [`IovIter::npages`] |
//! | `iov_iter_get_pages2`, `iov_iter_extract_pages` | [`IovIter::get_pages`], [`IovIter::extract_pages`] |
//! | `dup_iter` | [`IovIter::dup`] (sources only) |
//! | `import_iovec`, `UIO_FASTIOV`, `UIO_MAXIOV`, `MAX_RW_COUNT` | [`import_iovec`], [`UIO_FASTIOV`], [`UIO_MAXIOV`], [`MAX_RW_COUNT`] |
//! | `access_ok`'s limit, `TASK_SIZE_MAX` | [`USER_ADDR_END`] |
//! | `iov_iter_type`, `iov_iter_rw`, `data_source` | [`IovIter::iter_type`], [`IovIter::is_source`], [`Direction::IS_SOURCE`] |
//! | an `iov_iter` of whatever type a caller hands in (what `->read_iter` / `->direct_IO` receive; what `import_iovec` builds) | [`AnyIter`] (one type for all five kinds, dispatched at run time) |
//! | `errno.h` values, `-EFAULT` / `-EINVAL` / ... returns | [`Errno`], [`Error::errno`] |
//!
//! ## Pages and folios
//!
//! | kernel | here |
//! |---|---|
//! | `struct bio_vec`, `struct page` | [`BvecSeg`], [`BvecSegMut`], [`Page`], [`PageRef`] |
//! | `mempool_t` of pages, `mempool_alloc` / `mempool_free` | [`PagePool`], [`PagePool::get`], [`PagePool::put`] |
//! | `struct folio`, `folio_alloc`, `folio_get` / `folio_put`, `MAX_PAGE_ORDER` | [`Folio`], [`Folio::new`], [`FolioRef`], [`MAX_PAGE_ORDER`] (feature `alloc`) |
//! | `folio_order`, `folio_nr_pages`, `folio_size`, `folio_shift`, `folio_address` | [`Folio::order`], [`Folio::nr_pages`], [`Folio::size`], [`Folio::shift`], [`Folio::addr`] |
//! | `folio_test_*` / `folio_set_*` / `folio_clear_*`, `folio_trylock`, `folio_unlock` | [`Folio::test`], [`Folio::set_flags`], [`Folio::clear_flags`], [`Folio::trylock`], [`Folio::unlock`] |
//! | `bvec_set_folio`: one `bio_vec` over a multi-page folio | [`BvecSeg::from_folio`], [`BvecSegMut::from_folio`], [`Folio::bvec`], [`Folio::bvec_mut`]; as an owned I/O buffer a [`Folio`] or [`FolioRef`] is one [`buf::IoBuf`] segment, however many pages |
//! | `copy_folio_to_iter`, `copy_folio_from_iter` | [`IovIter::copy_folio_to_iter`], [`IovIter::copy_folio_from_iter`] |
//! | `mempool_t` of folios of one order | [`FolioPool`], [`FolioPool::get`], [`FolioPool::put`] |
//!
//! ## The kiocb and the asynchronous contract
//!
//! | kernel | here |
//! |---|---|
//! | `struct kiocb` (`ki_pos`, `ki_flags`, `ki_ioprio`), `init_sync_kiocb`, `is_sync_kiocb` | [`kiocb::Kiocb`], [`kiocb::Kiocb::new_sync`], [`kiocb::Kiocb::is_sync`] |
//! | `IOCB_*`, `RWF_*`, `kiocb_set_rw_flags`, `FMODE_NOWAIT` and the other capabilities | [`kiocb::IocbFlags`], [`kiocb::RwfFlags`], [`kiocb::Kiocb::set_rw_flags`], [`kiocb::FileCaps`] |
//! | `RWF_SUPPORTED` | [`kiocb::RwfFlags::SUPPORTED`] |
//! | `STATX_WRITE_ATOMIC` (`stx_atomic_write_unit_min` / `_max`) | `backend::file::DirectFile::atomic_write_units` (`std`, Linux) |
//! | `-EIOCBQUEUED`: the I/O is in flight, the result comes later | [`kiocb::Submitted::Queued`] (against [`kiocb::Submitted::Done`]) |
//! | `ki_complete(iocb, res)`, run once, the pages handed back | [`kiocb::Completion::complete`]: the kiocb's callback ([`kiocb::Kiocb::with_callback`]) or future ([`kiocb::Kiocb::new_async_with`], [`kiocb::CompletionFuture`]) receives [`kiocb::Completed`] `{ result, pos, buf }` (feature `alloc`) |
//!
//! ## Direct I/O
//!
//! | kernel | here |
//! |---|---|
//! | `->direct_IO`, the contract of `iomap_dio_rw` | [`dio::DirectIo`]: [`dio::DirectIo::direct_io`] over borrowed iterators, [`dio::DirectIo::submit`] over owned ones (feature `alloc`) |
//! | `preadv2` / `pwritev2` under it; `submit_bio` | [`dio::DirectIo::transfer`]; [`dio::DirectIo::start`], [`dio::DirectIo::drive`] |
//! | `struct bio` (a request a device completes later), `bio_split`, `bi_end_io` / `bio_chain`, `bi_iter.bi_sector`, `bio_endio`, `zero_fill_bio` | [`dio::AsyncIo`], [`dio::AsyncIo::split_at`], [`dio::AsyncIo::on_complete`] (split parts complete merged), [`dio::AsyncIo::set_pos`], [`dio::AsyncIo::complete`], [`dio::AsyncIo::zero_fill`] |
//! | `should_dirty`, `IOMAP_DIO_DIRTY`, `bio_set_pages_dirty` | [`dio::should_dirty`], [`dio::DirtyTracker`], [`dio::DirtyBitmap`], [`dio::DirectIo::direct_io_tracked`] |
//! | `statx` `STATX_DIOALIGN`, `STATX_DIO_READ_ALIGN`, `stx_dio_read_offset_align` | [`dio::DioAlign`], [`dio::DioAlign::read_offset`], [`dio::DioAlign::offset_for`] |
//! | `bdev_nr_bytes` | [`dio::DirectIo::capacity`] |
//!
//! ## Owned buffers
//!
//! | kernel (and Rust) | here |
//! |---|---|
//! | a `bio_vec` holding a page reference for as long as the I/O runs (`get_page` / `put_page`; user pages pinned by `bio_iov_iter_get_pages`); in Rust, tokio-uring's `IoBuf` / `IoBufMut` (`bytes_init`, `bytes_total`, `set_init`) | [`buf::IoBuf`], [`buf::IoBufMut`] ([`buf::IoBuf::bytes_init`], [`buf::IoBufMut::bytes_total`], [`buf::IoBufMut::set_init`]), [`buf::OwnedIter`] (an iterator position over one), [`buf::AlignedBuf`]; shared references: [`PageRef`], [`FolioRef`] (feature `alloc`) |
//! | `kvm_read_guest`, `kvm_write_guest`, `kvm_clear_guest` (guest memory) | [`buf::SharedRegion`], [`buf::SharedRegion::read_at`], `write_at`, `fill` |
//! | a `struct vring_desc` chain as an I/O buffer, `mark_page_dirty` | [`buf::GuestBuf`], [`buf::GuestBuf::with_dirty_log`]; over rust-vmm's `vm-memory`: `GuestBuf::from_guest_memory` (feature `vm-memory`) |
//!
//! ## The iomap layer
//!
//! | kernel | here |
//! |---|---|
//! | `struct iomap_ops`: `iomap_begin`, `iomap_end` | [`iomap::IoMap`], [`iomap::IoMap::begin`], [`iomap::IoMap::end`] (feature `alloc`) |
//! | `i_size_read`, `i_blocksize` | [`iomap::IoMap::size`], [`iomap::IoMap::block_size`] |
//! | `struct iomap` (`offset`, `length`, `addr`, `type`, `flags`), `IOMAP_NULL_ADDR` | [`iomap::Extent`] (`addr: None`) |
//! | `IOMAP_HOLE`, `IOMAP_DELALLOC`, `IOMAP_MAPPED`, `IOMAP_UNWRITTEN`, `IOMAP_INLINE` | [`iomap::ExtentKind`]: [`Hole`](iomap::ExtentKind::Hole), [`Delalloc`](iomap::ExtentKind::Delalloc), [`Mapped`](iomap::ExtentKind::Mapped), [`Unwritten`](iomap::ExtentKind::Unwritten), [`Inline`](iomap::ExtentKind::Inline) |
//! | `IOMAP_F_NEW`, `IOMAP_F_DIRTY`, `IOMAP_F_SHARED`, `IOMAP_F_MERGED`; `FIEMAP_EXTENT_ENCODED` | [`iomap::ExtentFlags`]: [`NEW`](iomap::ExtentFlags::NEW), [`DIRTY`](iomap::ExtentFlags::DIRTY), [`SHARED`](iomap::ExtentFlags::SHARED), [`MERGED`](iomap::ExtentFlags::MERGED); [`ENCODED`](iomap::ExtentFlags::ENCODED) |
//! | `IOMAP_WRITE`, `IOMAP_ZERO`, `IOMAP_REPORT`, `IOMAP_DIRECT`, `IOMAP_NOWAIT` | [`iomap::IomapOp`]: [`WRITE`](iomap::IomapOp::WRITE), [`ZERO`](iomap::IomapOp::ZERO), [`REPORT`](iomap::IomapOp::REPORT), [`DIRECT`](iomap::IomapOp::DIRECT), [`NOWAIT`](iomap::IomapOp::NOWAIT) |
//! | `iomap_dio_rw`, `iomap_dio_zero` | [`iomap::IomapDio`]: a [`dio::DirectIo`] target over a mapping and a device |
//! | `iomap_dio_ops->end_io`, `IOMAP_DIO_UNWRITTEN` | [`iomap::IoMap::end_io`], [`iomap::EndIoFlags`] ([`UNWRITTEN`](iomap::EndIoFlags::UNWRITTEN)) |
//! | `iomap_iter_done`'s checks | [`iomap::Extent::check`], [`Error::BadExtent`] ([`BadExtent`]) |
//! | `iomap_swapfile_activate`, `struct swap_extent`, `add_swap_extent`, the `swapon:` refusals | [`iomap::swapfile_activate`], [`iomap::SwapExtent`], [`iomap::SwapExtents`], [`iomap::SwapRefusal`], [`iomap::SwapActivateError`] |
//! | `FS_IOC_FIEMAP`, `struct fiemap`, `FIEMAP_FLAG_SYNC`, `FIEMAP_EXTENT_*` | `backend::fiemap::FiemapMap`, an [`iomap::IoMap`] over a real file (`std`, Linux) |
//!
//! ## Backends
//!
//! | kernel (and libraries) | here |
//! |---|---|
//! | `O_DIRECT` + `preadv2` / `pwritev2` | `backend::file::DirectFile` (`std`, Linux) |
//! | io_uring `IORING_OP_READV` / `WRITEV` (`READ` / `WRITE` for one segment), `IORING_OP_FSYNC` | `backend::uring::UringQueue`, `UringQueue::fsync` (feature `uring`) |
//! | registered buffers: `io_uring_register(2)` `IORING_REGISTER_BUFFERS`, then `IORING_OP_READ_FIXED` / `IORING_OP_WRITE_FIXED` | `UringQueue::register_buffers`, giving a `FixedBufPool` of `FixedBuf`s (owned buffers) |
//! | registered files: `IORING_REGISTER_FILES`, `IOSQE_FIXED_FILE` | `UringBuilder::register_files`; more files on one ring: `UringQueue::add_file` (`UringFile`) |
//! | a RAM disk (`drivers/block/brd.c`) with a block device's end-of-device rules (`blkdev_read_iter` / `blkdev_write_iter`) | [`backend::mem::MemDevice`] (feature `alloc`; no syscalls) |
//! | fault injection (`fail_make_request`, `should_fail`); completions that come later, in any order | [`backend::mem::FaultPlan`] ([`backend::mem::Fault`], [`backend::mem::Trigger`]), [`backend::mem::MemDevice::inject`], [`backend::mem::MemStats`]; [`backend::mem::MemDevice::defer_completions`] ([`backend::mem::PendingOrder`]) |
//! | the NBD protocol: `NBD_CMD_READ` / `WRITE` / `FLUSH` / `TRIM`, `NBD_CMD_FLAG_FUA` (for `REQ_FUA`, `RWF_DSYNC`), `NBD_FLAG_CAN_MULTI_CONN`, `NBD_INFO_BLOCK_SIZE`, structured replies; the kernel's client, `drivers/block/nbd.c` | `backend::nbd::NbdDevice` (a `DirectIo` target), `NbdDevice::flush`, `NbdDevice::trim`, `NbdBuilder::connections`, `NbdInfo` (feature `nbd`) |
//! | libnbd: `nbd_connect_uri`, `nbd_aio_pread` / `nbd_aio_pwrite`, `nbd_aio_command_completed`, `nbd_get_size`, `nbd_get_block_size`, `nbd_get_error` | `NbdBuilder::connect`, `NbdDevice`'s `DirectIo::start` / `drive`, `NbdInfo::size`, `NbdInfo::block_min`, `nbd::last_error_message`; libnbd is loaded at run time: `nbd::available` |
//!
//! # Relation with `std::io`
//!
//! [`IoSeg`] and [`IoSegMut`] have the layout of `struct iovec`, like std's
//! `IoSlice` and `IoSliceMut`, and arrays of the latter become iterators
//! without copying (`IovIter::from_io_slices`). What std lacks and an
//! iterator adds: a position (count, segment, offset) that can be advanced,
//! reverted, truncated, saved and restored; a direction in the type; kinds
//! that say whose memory it is; alignment queries for direct I/O. With the
//! `std` feature, a source iterator is an `io::Read` and a destination an
//! `io::Write`.
//!
//! # Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `std` | yes | `std::io::Read`/`Write` impls, `IoSlice` conversions, `From<Error> for io::Error`, the `O_DIRECT` file backend; implies `alloc` |
//! | `alloc` | via `std` | heap [`Page`]s, [`PageRef`] and [`PagePool`], folios ([`Folio`], [`FolioRef`], [`FolioPool`]), owned buffers (`buf`), [`import_iovec`] (spills past 8 segments), async [`kiocb`] completions and their `Future`, the `dio` layer, the `iomap` layer (a filesystem's mapping, direct I/O and swap activation over it) and the RAM backend |
//! | `uring` | no | the io_uring backend (`backend::uring`); implies `std` |
//! | `nbd` | no | the network block device backend (`backend::nbd`) over libnbd, loaded at run time (`libnbd.so.0`; none needed to build); implies `std` |
//! | `vm-memory` | no | `buf::GuestBuf::from_guest_memory`: guest buffers over rust-vmm's `vm-memory` (`GuestMemoryMmap`, any `GuestMemory`); implies `std` |
//!
//! Without features the crate is `#![no_std]` and makes no syscalls.
//!
//! # Bad input
//!
//! Where the kernel has undefined behaviour, a `BUG` or a `WARN`, this crate
//! returns an [`Error`] and changes nothing. [`bad_input`] lists every
//! invalid input a caller can hand the crate (iterators, [`import_iovec`],
//! direct I/O, `RWF_*` flags, and the swap example's headers), the error
//! variant and errno each gets, and the test that shows it.
//!
//! # Safety
//!
//! No undefined behaviour is reachable from safe code. The unsafe
//! constructors ([`import_iovec`], `IovIter::from_raw_iovecs`,
//! `IovIter::from_raw_buf`, `buf::SharedRegion::from_raw_parts`) and the
//! unsafe traits a user implements for owned buffers (`buf::IoBuf`,
//! `buf::IoBufMut`) list what their caller or implementer promises.
#![cfg_attr(not(feature = "std"), no_std)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs, unsafe_op_in_unsafe_fn, rustdoc::broken_intra_doc_links)]
#![warn(missing_debug_implementations, clippy::undocumented_unsafe_blocks)]
#![doc(test(attr(deny(warnings))))]

// The README's Rust examples run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod any;
#[cfg(feature = "alloc")]
pub mod backend;
pub mod bad_input;
#[cfg(feature = "alloc")]
pub mod buf;
#[cfg(feature = "alloc")]
pub mod dio;
mod dir;
pub mod error;
#[cfg(feature = "alloc")]
mod folio;
#[cfg(feature = "alloc")]
mod import;
#[cfg(feature = "std")]
mod io_std;
#[cfg(feature = "alloc")]
pub mod iomap;
mod iter;
pub mod kiocb;
mod page;
mod seg;
#[cfg(feature = "alloc")]
mod sync;

pub use any::{AnyIter, NoDiscard};
pub use dir::{Dest, Direction, Source};
pub use error::{BadExtent, Errno, Error, Misalignment, Result};
#[cfg(feature = "alloc")]
pub use folio::{Folio, FolioPool, FolioRef, MAX_PAGE_ORDER};
#[cfg(feature = "alloc")]
pub use import::{IovecArray, UIO_FASTIOV, UIO_MAXIOV, USER_ADDR_END, import_iovec};
pub use iter::{Extracted, IovIter, IterState, MAX_RW_COUNT, RawChunks};
pub use page::{PAGE_OFFSET_MASK, PAGE_SHIFT, PAGE_SIZE, Page, PageFlags, PageFrame};
#[cfg(feature = "alloc")]
pub use page::{PagePool, PageRef};
pub use seg::{
    Bvec, BvecSeg, BvecSegMut, Discard, IoSeg, IoSegMut, Iovec, IterType, Kind, Kvec, PageAddr,
    Ubuf, UserIovec,
};
