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
//! | kernel | here |
//! |---|---|
//! | `struct iov_iter` | [`IovIter`] (40 bytes, like the kernel's) |
//! | `ITER_SOURCE` / `WRITE`, `ITER_DEST` / `READ` | [`Source`], [`Dest`] (type parameters) |
//! | `ITER_IOVEC`, `ITER_KVEC`, `ITER_BVEC`, `ITER_UBUF`, `ITER_DISCARD` | [`Iovec`], [`Kvec`], [`Bvec`], [`Ubuf`], [`Discard`] |
//! | `struct iovec`, `struct kvec` | [`IoSeg`], [`IoSegMut`] |
//! | `struct bio_vec`, `struct page` | [`BvecSeg`], [`BvecSegMut`], [`Page`], [`PageRef`] |
//! | `mempool_t` of pages, `mempool_alloc` / `mempool_free` | [`PagePool`], [`PagePool::get`], [`PagePool::put`] |
//! | `struct folio`, `folio_alloc`, `folio_get` / `folio_put`, `MAX_PAGE_ORDER` | [`Folio`], [`Folio::new`], [`FolioRef`], [`MAX_PAGE_ORDER`] (feature `alloc`) |
//! | `folio_order`, `folio_nr_pages`, `folio_size`, `folio_shift`, `folio_address` | [`Folio::order`], [`Folio::nr_pages`], [`Folio::size`], [`Folio::shift`], [`Folio::addr`] |
//! | `folio_test_*` / `folio_set_*` / `folio_clear_*`, `folio_trylock`, `folio_unlock` | [`Folio::test`], [`Folio::set_flags`], [`Folio::clear_flags`], [`Folio::trylock`], [`Folio::unlock`] |
//! | `bvec_set_folio` (multi-page `bio_vec`) | [`BvecSeg::from_folio`], [`BvecSegMut::from_folio`], [`Folio::bvec`], [`Folio::bvec_mut`] |
//! | `copy_folio_to_iter`, `copy_folio_from_iter` | [`IovIter::copy_folio_to_iter`], [`IovIter::copy_folio_from_iter`] |
//! | `mempool_t` of folios of one order | [`FolioPool`], [`FolioPool::get`], [`FolioPool::put`] |
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
//! | `struct kiocb`, `IOCB_*`, `RWF_*`, `kiocb_set_rw_flags`, `-EIOCBQUEUED` | [`kiocb::Kiocb`], [`kiocb::IocbFlags`], [`kiocb::RwfFlags`], [`kiocb::Kiocb::set_rw_flags`], [`kiocb::Submitted::Queued`] |
//! | `->direct_IO`, `iomap_dio_rw`, `should_dirty` | `dio::DirectIo` (`direct_io` over borrowed iterators, `submit` over owned ones), `dio::should_dirty` (feature `alloc`) |
//! | `-EIOCBQUEUED` then `ki_complete(iocb, res)` with the pages handed back | `dio::DirectIo::submit` returning `Submitted::Queued`; the kiocb's callback or `CompletionFuture` receiving `Completed { result, pos, buf }` |
//! | `struct bio` (a request a device completes later), `bio_split`, `bio_chain`, `bi_sector` | `dio::AsyncIo`, `AsyncIo::split_at`, the merged completion of split parts, `AsyncIo::set_pos` |
//! | a `bio_vec` holding page references / pinned user pages (`bio_iov_iter_get_pages`) | owned buffers: `buf::IoBuf`, `buf::IoBufMut`, `buf::OwnedIter`, `buf::AlignedBuf` (feature `alloc`) |
//! | `kvm_read_guest`, `kvm_write_guest`, `kvm_clear_guest` (guest memory) | `buf::SharedRegion`, `buf::SharedRegion::read_at`, `write_at`, `fill` (feature `alloc`) |
//! | a `struct vring_desc` chain as an I/O buffer, `mark_page_dirty` | `buf::GuestBuf`, `buf::GuestBuf::with_dirty_log` |
//! | `STATX_DIO_READ_ALIGN`, `stx_dio_read_offset_align` | `dio::DioAlign::read_offset`, `dio::DioAlign::offset_for` |
//! | `IORING_REGISTER_FILES` / `IOSQE_FIXED_FILE`, `IORING_REGISTER_BUFFERS` + `IORING_OP_READ_FIXED` / `WRITE_FIXED`, `IORING_OP_FSYNC` | `backend::uring::UringBuilder::register_files`, `UringQueue::register_buffers` (`FixedBufPool`, `FixedBuf`), `UringQueue::fsync`; more files on one ring: `UringQueue::add_file` (`UringFile`) |
//! | `statx` `STATX_DIOALIGN`, `bio_set_pages_dirty` | `dio::DioAlign`, `dio::DirtyTracker`, `dio::DirtyBitmap` |
//! | `struct iomap_ops` (`iomap_begin` / `iomap_end`), `struct iomap`, `IOMAP_HOLE` / `MAPPED` / `UNWRITTEN` / `DELALLOC` / `INLINE`, `IOMAP_F_*`, `iomap_dio_ops->end_io` | `iomap::IoMap`, `iomap::Extent`, `iomap::ExtentKind`, `iomap::ExtentFlags`, `iomap::IoMap::end_io` (feature `alloc`) |
//! | `iomap_dio_rw`, `iomap_dio_zero`, `iomap_iter_done`'s checks | `iomap::IomapDio` (a `DirectIo` target over a mapping and a device), `iomap::Extent::check`, [`Error::BadExtent`] |
//! | `iomap_swapfile_activate`, `struct swap_extent`, `add_swap_extent` | `iomap::swapfile_activate`, `iomap::SwapExtent`, `iomap::SwapExtents` |
//! | `FS_IOC_FIEMAP`, `struct fiemap`, `FIEMAP_FLAG_SYNC`, `FIEMAP_EXTENT_*` | `backend::fiemap::FiemapMap` (`std`, Linux) |
//! | `bi_end_io` / `bio_chain` completion hooks, `bdev_nr_bytes` | `dio::AsyncIo::on_complete`, `dio::DirectIo::capacity` |
//! | `O_DIRECT` + `preadv2`/`pwritev2`, io_uring `READV`/`WRITEV` (`READ`/`WRITE` for one segment) | `backend::file::DirectFile` (`std`), `backend::uring::UringQueue` (`uring`), `backend::mem::MemDevice` |
//! | `drivers/block/nbd.c` (`NBD_CMD_READ` / `WRITE` / `FLUSH` / `TRIM`, `NBD_CMD_FLAG_FUA` for `REQ_FUA`) | `backend::nbd::NbdDevice` (`nbd`), `NbdDevice::flush`, `NbdDevice::trim` |
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
