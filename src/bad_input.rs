//! # Bad input
//!
//! Every invalid input a caller can hand this crate, the error it gets
//! (an [`Error`] variant and its errno, see [`Error::errno`]) and the test
//! that shows it. Where the kernel has undefined behaviour, a `BUG` or a
//! `WARN` for the same input, this crate returns the error and changes
//! nothing: the iterator, the kiocb and the memory are as they were (the
//! tests check that too).
//!
//! For example, a revert by more than was consumed changes nothing and
//! says why, with the kernel's errno:
//!
//! ```
//! use iov_iter::{Errno, Error, IovIter, Kvec, Source};
//!
//! let data = [1u8; 8];
//! let segs = [iov_iter::IoSeg::new(&data)];
//! let mut it = IovIter::<Source, Kvec>::new(&segs);
//! it.advance(3);
//! let e = it.revert(4).unwrap_err();
//! assert!(matches!(e, Error::RevertPastStart { requested: 4, consumed: 3 }));
//! assert_eq!(e.errno(), Errno::EINVAL);
//! assert_eq!(it.count(), 5); // as it was
//! ```
//!
//! Test names are `file`: `function`; run one with
//! `cargo test --all-features --test <file> <function>`, the swap example's
//! with `cargo test -p iov-iter-swap <function>`. Tests marked † make
//! syscalls and are skipped under Miri; all others run under Miri as well.
//!
//! ## Iterators
//!
//! | bad input | where | error | errno | test |
//! |---|---|---|---|---|
//! | revert by more than was consumed | [`IovIter::revert`] | [`Error::RevertPastStart`] | `EINVAL` | `tests/iter_edge.rs`: `revert_past_start_every_kind` |
//! | revert by more than [`MAX_RW_COUNT`] | [`IovIter::revert`] | [`Error::RevertTooLarge`] | `EINVAL` | `tests/iter_edge.rs`: `revert_above_max_rw_count_is_too_large` |
//! | reexpand past what the remaining segments hold ([`IovIter::capacity`]) | [`IovIter::reexpand`] | [`Error::ReexpandPastEnd`] | `EINVAL` | `tests/iter_edge.rs`: `reexpand_within_and_past_capacity` |
//! | restore a state saved from an iterator over another segment array | [`IovIter::restore`] | [`Error::ForeignState`] | `EINVAL` | `tests/iter_edge.rs`: `restore_foreign_state_is_einval` |
//! | a page range outside its page (`offset + len > PAGE_SIZE`, overflow included) | [`BvecSeg::new`], [`BvecSegMut::new`], [`Page::bvec`], [`Page::bvec_mut`], [`Page::bvecs_mut`] | [`Error::PageRange`] | `EFAULT` | `tests/bad_input.rs`: `bvec_range_outside_the_page_is_efault` |
//! | the same, for a page copy (`page_copy_sane`) | [`IovIter::copy_page_to_iter`], [`IovIter::copy_page_from_iter`] | [`Error::PageRange`] | `EFAULT` | `tests/iter_edge.rs`: `copy_page_range_outside_page_is_efault` |
//! | overlapping non-empty ranges | [`Page::bvecs_mut`] | [`Error::OverlappingRanges`] | `EINVAL` | `tests/bad_input.rs`: `bvecs_mut_overlapping_ranges_are_einval` |
//! | pages of a [`Discard`] iterator | [`IovIter::extract_pages`], [`IovIter::get_pages`] | [`Error::NoPages`] | `EFAULT` | `tests/iter_edge.rs`: `extract_pages_rules`, `get_pages_rules` |
//! | `get_pages` on a [`Kvec`] iterator | [`IovIter::get_pages`] | [`Error::NoPages`] | `EFAULT` | `tests/iter_edge.rs`: `get_pages_rules` |
//!
//! Reading or writing a direction the iterator does not have, duplicating a
//! destination and a source [`Discard`] do not compile (`compile_fail`
//! doctests on [`Discard`] and `IovIter::dup`); they have no runtime error.
//!
//! ## `import_iovec`
//!
//! The checks run in the kernel's order: the count, then every length, then
//! every base; the first failure wins and nothing is built.
//!
//! | bad input | error | errno | test |
//! |---|---|---|---|
//! | more than [`UIO_MAXIOV`] (1024) pairs | [`Error::TooManySegments`] | `EINVAL` | `tests/iter_edge.rs`: `import_too_many_segments_is_einval` |
//! | a length above `isize::MAX` (negative as `ssize_t`) | [`Error::SegmentTooLong`] | `EINVAL` | `tests/iter_edge.rs`: `import_negative_length_is_einval` |
//! | a null base with a non-zero length (the kernel lets NULL through `access_ok` and faults during the copy, a partial transfer; a userspace iterator cannot take that fault, so the whole array is refused: see `import_iovec`) | [`Error::NullSegment`] | `EFAULT` | `tests/iter_edge.rs`: `import_null_base_is_efault` |
//! | a range that wraps the address space, or reaches past the user address space ([`USER_ADDR_END`], the kernel's `TASK_SIZE_MAX`: kernel addresses such as `0xffff888000000000`, `0x7ffffffff000` + 1 MiB on x86-64) | [`Error::BadAddress`] | `EFAULT` | same test |
//!
//! A total above [`MAX_RW_COUNT`] is not an error: it is clamped
//! (`tests/iter_edge.rs`: `import_clamps_to_max_rw_count`).
//!
//! ## Direct I/O
//!
//! | bad input | where | error | errno | test |
//! |---|---|---|---|---|
//! | a segment address not a multiple of the memory alignment | [`dio::DirectIo::direct_io`], [`dio::DirectIo::submit`] ([`dio::DioAlign::check`]) | [`Error::Misaligned`] with [`Misalignment::SegmentAddress`] | `EINVAL` | `tests/dio_mem.rs`: `misaligned_requests_are_einval_and_write_nothing`; † `tests/dio_file.rs`: same name |
//! | a segment length not a multiple of the offset alignment | same | [`Error::Misaligned`] with [`Misalignment::SegmentLength`] | `EINVAL` | same two tests |
//! | a file offset not a multiple of the offset alignment | same | [`Error::Misaligned`] with [`Misalignment::FileOffset`] | `EINVAL` | same two tests |
//! | a total length not a multiple of the offset alignment | same | [`Error::Misaligned`] with [`Misalignment::TotalLength`] | `EINVAL` | same two tests |
//! | an alignment that is not a pair of powers of two | [`dio::DioAlign::new`]; [`dio::DioAlign::check`] for one built from its fields | [`Error::InvalidArgument`] | `EINVAL` | `tests/bad_input.rs`: `dio_align_not_power_of_two_is_einval`; `tests/dio_mem.rs`: `custom_and_bogus_alignment` |
//! | an async kiocb submitted again after it was queued | [`dio::DirectIo::direct_io`], [`dio::DirectIo::submit`]; [`Kiocb::take_completion`] gives `None` | [`Error::InvalidArgument`] | `EINVAL` | `tests/dio_mem.rs`: `async_future_completes_once_with_pos`; `tests/kiocb.rs`: `completion::callback_completion_runs_exactly_once` |
//! | `RWF_NOWAIT` I/O that would block | [`dio::DirectIo::direct_io`] through a backend | [`Error::WouldBlock`] | `EAGAIN` | `tests/dio_mem.rs`: `nowait_that_would_block_is_eagain`; † `tests/dio_file.rs`: `nowait_extending_write_is_done_or_eagain_with_nothing_written` (the real kernel may also just do it) |
//! | a request reaching past `i64::MAX` (at or past 2^63), sync or async, on any backend | same, before the flags, the empty-request shortcut and alignment | [`Error::InvalidArgument`]; an async kiocb keeps its completion and buffer | `EINVAL` | `tests/dio_mem.rs`: `position_past_i64_max_is_einval_sync_and_async`; `tests/dio_owned.rs`: `validation_is_the_same_sync_and_async_and_leaves_the_kiocb_intact` |
//! | `RWF_*` twins in the kiocb's flags the target does not support | same | [`Error::NotSupported`] | `EOPNOTSUPP` | `tests/dio_owned.rs`: `validation_is_the_same_sync_and_async_and_leaves_the_kiocb_intact` |
//! | a sync kiocb without a buffer given to [`dio::DirectIo::submit`] (its buffer taken out) | [`dio::DirectIo::submit`] | [`Error::InvalidArgument`] | `EINVAL` | `tests/dio_owned.rs`: `a_sync_kiocb_whose_buffer_was_taken_is_einval` |
//! | a file without direct-I/O support (`statx(STATX_DIOALIGN)` reports 0) | `backend::file::DirectFile::open`, `from_fd`, `from_file` | [`Error::NotSupported`] | `EOPNOTSUPP` | † `tests/bad_input.rs`: `direct_file_without_dio_support_is_eopnotsupp` (a real ext4 image with `inline_data`, loop-mounted: needs root, `mkfs.ext4` and a loop device, and prints SKIP without them) |
//!
//! A filesystem that refuses `O_DIRECT` altogether fails `open` itself with
//! the kernel's `EINVAL` ([`Error::Os`]); `tests/dio_file.rs` skips loudly
//! there.
//!
//! ## Owned buffers and the async contract
//!
//! Owned buffers ([`buf`](crate::buf)) carry their memory into an
//! asynchronous request; the checks of the direct-I/O table above apply to
//! them unchanged, before anything is queued: the buffer stays in the
//! kiocb and an async kiocb keeps its completion. Once queued, everything
//! is delivered through the completion, exactly once.
//!
//! | bad input | where | error | errno | test |
//! |---|---|---|---|---|
//! | an owned buffer with a segment at a misaligned address, a segment or total length not a multiple of the offset alignment, or a misaligned position (reads and writes, sync and async) | [`dio::DirectIo::submit`] | [`Error::Misaligned`] naming the part; nothing reaches the device | `EINVAL` | `tests/bad_input.rs`: `owned_buffers_misaligned_for_the_device_are_einval_and_stay_in_the_kiocb`; `tests/dio_owned.rs`: `validation_is_the_same_sync_and_async_and_leaves_the_kiocb_intact` |
//! | an [`AlignedBuf`] alignment that is not a power of two (0 included), or a size it cannot hold | [`AlignedBuf::with_capacity`], [`AlignedBuf::zeroed`], [`AlignedBuf::from_slice`] | [`Error::InvalidArgument`], nothing allocated | `EINVAL` | `tests/bad_input.rs`: `aligned_buf_with_a_bad_alignment_or_size_is_einval` |
//! | a guest-buffer range outside its region (overflow included) | [`GuestBuf::new`] | [`Error::Os`] | `EFAULT` | `tests/guest.rs`: `out_of_range_guest_buffers_are_efault` |
//! | overlapping ranges in a destination | [`GuestBuf::new`] | [`Error::OverlappingRanges`] | `EINVAL` | `tests/guest.rs`: `overlapping_destination_ranges_are_einval_and_sources_may_overlap` |
//! | a range (or an access) conflicting with a live [`GuestBuf`]: any with a destination's, a write or a destination with a source's | [`GuestBuf::new`], [`SharedRegion::read_at`], [`SharedRegion::write_at`], [`SharedRegion::fill`] | [`Error::Os`] | `EBUSY` | `tests/guest.rs`: `a_live_buffer_leases_its_ranges` |
//! | an access past the region's end (overflow included) | [`SharedRegion::read_at`], [`SharedRegion::write_at`], [`SharedRegion::fill`] | [`Error::Os`], nothing copied | `EFAULT` | `tests/guest.rs`: `accessors_copy_all_or_nothing_and_refuse_out_of_range_with_efault` |
//! | an async kiocb submitted twice | see the direct-I/O table | | | |
//! | an async kiocb dropped before it was submitted | `Drop` of [`Kiocb`] | its completion runs with [`Error::Os`], the buffer handed back | `ECANCELED` | `tests/bad_input.rs`: `a_dropped_future_does_not_cancel_its_write` |
//! | the target dropped with requests in flight | `Drop` of `backend::mem::MemDevice`, `backend::nbd::NbdDevice` | each completes with [`Error::Os`], its buffer handed back | `ECANCELED` | `tests/dio_owned.rs`: `every_completion_runs_exactly_once_whatever_is_dropped`; † `tests/nbd.rs`: `dropping_the_device_completes_in_flight_io` |
//! | a submission or a wait on a single-issuer io_uring queue from a thread other than the one that built it | `UringQueue` / `UringFile` (`UringBuilder::single_issuer`): `submit`, `direct_io`, `wait` | refused before anything reaches the ring: sync, the error (the buffer stays in the kiocb); async, the kiocb completes with it, its buffer handed back; dropped there with requests in flight, those already posted complete, the others never do: the ring and their buffers are leaked, never freed under the kernel | `EEXIST` | `tests/dio_uring.rs`: `single_issuer_queue_serves_its_thread_and_refuses_others` |
//! | a completion callback that panics | [`dio::DirectIo::drive`] (`MemDevice::complete_pending`); [`dio::DirectIo::submit`] on a target completing inline | the other completions are still delivered, then the first panic is raised again; inline, the panic leaves `submit` after the I/O was done | | `tests/dio_owned.rs`: `panicking_completions_do_not_stop_the_others`; `tests/bad_input.rs`: `a_panicking_inline_completion_leaves_submit_after_the_io` |
//!
//! Not errors: the future of a request dropped while it is in flight (the
//! I/O runs to its end, a write lands, and the buffer is freed after it:
//! `tests/bad_input.rs`: `a_dropped_future_does_not_cancel_its_write`,
//! `tests/dio_owned.rs`: `every_completion_runs_exactly_once_whatever_is_dropped`);
//! an empty owned buffer (completes at once with 0); a read buffer longer
//! than what is left of the device (a short count, the rest of the buffer
//! untouched: `tests/dio_owned.rs`:
//! `reads_land_in_uninitialised_capacity_without_zeroing`).
//!
//! ## NBD (`backend::nbd`)
//!
//! An NBD export (`backend::nbd::NbdDevice`, feature `nbd`) answers with
//! the crate's [`Error`]. The client checks by default what the server
//! would refuse, before any I/O (`NbdBuilder::client_checks`). The tests
//! run a `qemu-nbd` of their own and skip loudly without libnbd or
//! qemu-nbd; all are †, in `tests/nbd.rs`.
//!
//! | bad input | where | error | errno | test |
//! |---|---|---|---|---|
//! | libnbd missing (`libnbd.so.0` cannot be loaded) | `NbdDevice::connect`, `NbdBuilder::connect` | [`Error::Os`]; `nbd::available` and `nbd::last_error_message` give the loader's reason | `ENOSYS` | `uris_that_do_not_parse_or_reach_no_server_are_typed_errors` (that branch runs only where libnbd is missing) |
//! | a URI with a NUL byte | same | [`Error::InvalidArgument`] | `EINVAL` | same test |
//! | a URI that does not parse, has no or an unknown scheme, or a `nbd+unix` URI without its socket | same | [`Error::Os`], libnbd's message kept (`nbd::last_error_message`) | `EINVAL` | same test |
//! | a unix socket that does not exist | same | [`Error::Os`] | `ENOENT` | same test; `connect_reports_the_export` |
//! | a socket or TCP port where no server listens | same | [`Error::Os`] | `ECONNREFUSED` | same test |
//! | a request past the export's end | [`dio::DirectIo::direct_io`], [`dio::DirectIo::submit`] | block-device rules: a read crossing the end is short, one at or past it reads 0 bytes; a write crossing it is cut short there, one at or past it fails; with the client checks off, the server's error reply | `ENOSPC` (write); the server's (`EINVAL` from qemu-nbd) | `past_the_end_and_errored_replies` |
//! | a write to a read-only export | same | [`Error::Os`], before any I/O; with the client checks off, the server's reply | `EROFS` (the server: `EPERM`, qemu-nbd 10 `EINVAL`) | `read_only_export_refuses_writes` |
//! | a trim where the server takes none (a read-only export included: checked before `EROFS`) | `NbdDevice::trim` | [`Error::NotSupported`] | `EOPNOTSUPP` | `misaligned_requests_and_flags_the_server_does_not_take` |
//! | a trim past the end | `NbdDevice::trim` | [`Error::InvalidArgument`] | `EINVAL` | `fua_flush_and_trim` |
//! | a position or length (a trim's too) not a multiple of the export's minimum block size (`NBD_INFO_BLOCK_SIZE`; memory alignment is 1) | [`dio::DirectIo::direct_io`], [`dio::DirectIo::submit`], `NbdDevice::trim` | [`Error::Misaligned`]; [`Error::InvalidArgument`] for a trim | `EINVAL` | `misaligned_requests_and_flags_the_server_does_not_take` (it needs an export advertising a block size, and says SKIPPED where qemu-nbd advertises 1, as qemu-nbd 10 does to libnbd 1.14 even over `blkdebug` with `align=4096`) |
//! | `RWF_NOWAIT`, `RWF_ATOMIC` (NBD has no command for them) | same | [`Error::NotSupported`], the kiocb intact | `EOPNOTSUPP` | `misaligned_requests_and_flags_the_server_does_not_take` |
//! | the server dying, or the connection reset, mid-request | every request in flight, sync or async | each completes once with [`Error::Os`], its buffer handed back; later requests on the connection fail at once with the same | `ECONNRESET`, `EPIPE`, `ENOTCONN` | `server_killed_mid_io_then_restarted`, `server_killed_during_a_sync_transfer`, `connection_reset_over_tcp` |
//!
//! Not errors: `RWF_DSYNC` / `RWF_SYNC` where the server takes no FUA (a
//! flush follows the write: the `NbdBuilder::fua(false)` path of
//! `fua_flush_and_trim`); more connections than the server allows (one,
//! `NbdDevice::multi_conn_refused` says why); `connections(0)` (one). Not
//! tested: an export whose minimum block size is not a power of two
//! (`EINVAL` at connect; no server at hand sends one).
//!
//! ## Extent maps (`iomap`)
//!
//! A filesystem's [`iomap::IoMap`] is input too: [`iomap::IomapDio`] and
//! [`iomap::swapfile_activate`] check every extent it returns
//! ([`iomap::Extent::check`], what the kernel's `iomap_iter_done` warns
//! about). A bad extent after some progress ends the request short, with
//! exactly the bytes before it; with none, it is the error.
//!
//! | bad input | where | error | errno | test |
//! |---|---|---|---|---|
//! | an empty extent, one not covering the position, one that ends before it (backwards), one overlapping the previous, one past the device ([`dio::DirectIo::capacity`]), a device address misaligned for direct I/O | [`iomap::IomapDio`] sync and async; [`iomap::swapfile_activate`] (as [`iomap::SwapActivateError::Map`]) | [`Error::BadExtent`] with [`BadExtent`] | `EIO` | `tests/toyfs.rs`: `bad_maps_are_typed_errors_after_exactly_the_good_part` |
//! | a hole or delayed allocation returned for a write (the mapping did not allocate) | [`iomap::IomapDio`] | [`Error::BadExtent`] with [`BadExtent::Unallocated`] | `EIO` | same test |
//! | direct I/O to inline data or an encoded (compressed, encrypted) extent | [`iomap::IomapDio`] | [`Error::NotSupported`] | `EOPNOTSUPP` | `tests/toyfs.rs`: `inline_and_encoded_extents_and_bad_block_sizes_are_refused_before_io` |
//! | a mapping block size that is not a power of two of at least 512 | [`iomap::IomapDio`] writes | [`Error::InvalidArgument`] | `EINVAL` | same test |
//! | a misaligned request (position, length, memory) | [`iomap::IomapDio`], before any mapping call or I/O | [`Error::Misaligned`] | `EINVAL` | `tests/toyfs.rs`: `misaligned_requests_are_refused_before_any_io_or_mapping` |
//! | a device error in the middle of a request | [`iomap::IomapDio`] | a short count of exactly the bytes before it ([`iomap::IoMap::end_io`] told the same), or the error when nothing was transferred | the device's | `tests/toyfs.rs`: `a_device_error_mid_request_reports_exactly_what_was_written` |
//! | a conversion of unwritten extents that fails at completion | [`iomap::IoMap::end_io`] | the mapping's error is the write's result; the buffer comes back | the mapping's | `tests/toyfs.rs`: `a_failed_conversion_fails_the_write` |
//! | a hole, delayed allocation, inline, shared (reflinked), uncommitted, encoded or unknown-location extent in a swap file | [`iomap::swapfile_activate`] | [`iomap::SwapActivateError::Refused`] naming the extent's byte range | `EINVAL` | `tests/toyfs.rs`: `swap_activation_refuses_shared_encoded_inline_and_unknown_extents`, `swap_activation_goes_through_the_same_mapping`; † `tests/fiemap.rs`: `holes_are_the_gaps_and_a_punched_one_is_refused_by_swap_with_its_offset` |
//! | a file without one page-aligned run of device pages | [`iomap::swapfile_activate`] | [`iomap::SwapActivateError::NoUsablePage`] | `EINVAL` | `tests/toyfs.rs`: `swap_activation_refuses_shared_encoded_inline_and_unknown_extents` |
//! | a write mapping asked of a FIEMAP map (report-only) | `backend::fiemap::FiemapMap` | [`Error::NotSupported`] | `EOPNOTSUPP` | † `tests/fiemap.rs`: `a_fallocated_file_is_unwritten_and_swap_accepts_it` |
//! | FIEMAP on a filesystem without extent maps (tmpfs) | `backend::fiemap::FiemapMap::new` | [`Error::Os`] | `EOPNOTSUPP` | † `tests/fiemap.rs`: `tmpfs_has_no_extent_map` |
//!
//! ## `RWF_*` flags
//!
//! [`Kiocb::set_rw_flags`] checks in the kernel's order (the first failure
//! wins) and leaves [`Kiocb::flags`] unchanged on error
//! (`tests/kiocb.rs`: `error_order_when_several_rules_are_broken`,
//! `every_error_leaves_flags_unchanged_exhaustive`).
//!
//! | bad input | error | errno | test (`tests/kiocb.rs`) |
//! |---|---|---|---|
//! | bits outside [`RwfFlags::SUPPORTED`] | [`Error::NotSupported`] | `EOPNOTSUPP` | `unknown_bits_are_eopnotsupp` |
//! | `APPEND` and `NOAPPEND` together | [`Error::InvalidArgument`] | `EINVAL` | `append_and_noappend_is_einval` |
//! | `NOWAIT` on a file without `FMODE_NOWAIT` | [`Error::NotSupported`] | `EOPNOTSUPP` | `nowait_needs_fmode_nowait_and_sets_noio` |
//! | `ATOMIC` on a read, or on a file without `FMODE_CAN_ATOMIC_WRITE` | [`Error::NotSupported`] | `EOPNOTSUPP` | `atomic_needs_write_and_fmode_can_atomic_write` |
//! | `DONTCACHE` without `FOP_DONTCACHE`, or on a DAX inode | [`Error::NotSupported`] | `EOPNOTSUPP` | `dontcache_needs_fop_dontcache_and_no_dax` |
//! | `NOAPPEND` on an `IOCB_APPEND` kiocb of an append-only inode | [`Error::Os`]`(`[`Errno::EPERM`]`)` | `EPERM` | `noappend_clears_append_or_eperm_on_append_only` |
//!
//! ## Swap areas (the `swap` example)
//!
//! The swap package (`examples/swap`, `iov-iter-swap`) parses and activates
//! swap files on top of the crate. Its errors are its own types
//! (`HeaderError`, `ActivateError`), `EINVAL` as swapon(2) answers; the
//! tests are unit tests in the package's library modules.
//!
//! | bad input | error | errno | test |
//! |---|---|---|---|
//! | no `SWAPSPACE2` magic at `PAGE_SIZE - 10` | `HeaderError::NoSignature` | `EINVAL` | `examples/swap/src/header.rs`: `tests::wrong_magic` |
//! | the version-0 `SWAP-SPACE` magic | `HeaderError::OldV0Signature` | `EINVAL` | `examples/swap/src/header.rs`: `tests::v0_magic_has_its_own_error` |
//! | a version other than 1 (in either byte order) | `HeaderError::UnsupportedVersion` | `EINVAL` | `examples/swap/src/header.rs`: `tests::wrong_version` |
//! | `last_page == 0` | `HeaderError::EmptySwapFile` | `EINVAL` | `examples/swap/src/header.rs`: `tests::empty_swap_file` |
//! | more than 637 bad pages | `HeaderError::TooManyBadPages` | `EINVAL` | `examples/swap/src/header.rs`: `tests::too_many_bad_pages` |
//! | an area shorter than the header says | `HeaderError::AreaShorterThanSignature` | `EINVAL` | `examples/swap/src/header.rs`: `tests::file_shorter_than_header` |
//! | bad pages listed in a regular file | `HeaderError::BadPagesOnRegularFile` | `EINVAL` | `examples/swap/src/header.rs`: `tests::bad_pages_on_regular_file` |
//! | a bad page that is the header or past `last_page` | `HeaderError::BadPageOutOfRange` | `EINVAL` | `examples/swap/src/header.rs`: `tests::bad_page_out_of_range` |
//! | a sparse swap file, a hole inside the area or past `last_page` (the whole file is walked, as `swapon(2)` does) | `ActivateError::Extents` ([`iomap::SwapActivateError::Refused`], the hole's byte range named) | `EINVAL` | † `examples/swap/src/activate.rs`: `tests::sparse_file_is_refused_naming_the_hole`, `tests::hole_in_the_middle_is_refused`, `tests::hole_hidden_from_st_blocks_is_refused`, `tests::hole_past_last_page_is_refused`; the table against the kernel: `tests::kernel::activation_agrees_with_the_kernels_swapon` (as root) |
//! | a swap file on a filesystem without extent maps (tmpfs) | `ActivateError::Io` (FIEMAP's `EOPNOTSUPP`, with a hint) | `EOPNOTSUPP` | † `examples/swap/src/activate.rs`: `tests::file_without_extent_map_is_refused_with_hint` |
//!
//! ## The swap cache (the `swap` example)
//!
//! `SwapDevice` (`examples/swap/src/swapio.rs`) answers with `SwapError`,
//! whose `SwapError::errno` gives the errno. A refused call does no I/O and
//! changes nothing: the slot counts, the swap cache, the page's flags and
//! a plug are as they were. The tests are in
//! `examples/swap/tests/swapcache.rs` unless named otherwise (run one with
//! `cargo test -p iov-iter-swap --test swapcache <function>`); they make no
//! syscall (a RAM device) and run under Miri.
//!
//! | bad input | where | error | errno | test |
//! |---|---|---|---|---|
//! | a slot never allocated or already freed (a double free, also while the first free waits for the slot's I/O, and after) | `SwapDevice::swap_free` | `SwapError::Map(SwapMapError::DoubleFree)` | `EINVAL` | `swap_free_of_a_free_reserved_or_out_of_range_slot_is_einval_and_frees_nothing`, `plugged_writes_keep_their_slot_and_serve_swap_ins` |
//! | the header slot (0) or a bad page | `SwapDevice::swap_free` | `SwapError::Map(SwapMapError::Reserved)` | `EINVAL` | `swap_free_of_a_free_reserved_or_out_of_range_slot_is_einval_and_frees_nothing` |
//! | a slot past the end (`u32::MAX` included) | `SwapDevice::swap_free` | `SwapError::Map(SwapMapError::OutOfRange)` | `EINVAL` | same test |
//! | a swap-in of a slot not allocated (never, freed, its free waiting for I/O, the header, past the end) | `swap_readpage`, `read_page`, `swap_read_into` | `SwapError::BadSlot`; nothing joins the plug, the destination is dropped | `EINVAL` | `swap_in_of_a_slot_not_allocated_is_einval_with_no_io`, `writes_in_flight_on_io_uring_keep_their_slot_and_serve_swap_ins` (†) |
//! | a `swap_read_into` destination that is not one page | `swap_read_into` | `SwapError::Backend(Error::InvalidArgument)` | `EINVAL` | `swap_in_of_a_slot_not_allocated_is_einval_with_no_io` |
//! | a swap-out to a slot not allocated (as above), with or without a plug | `swap_writepage` | `SwapError::BadSlot`; the page still dirty, not under writeback, not held; a zero page not marked | `EINVAL` | `swap_out_to_a_slot_not_allocated_is_einval_and_leaves_the_page_dirty`, `plugged_writes_keep_their_slot_and_serve_swap_ins` |
//! | a page or folio that is not uptodate (a failed read's page, a fresh one nobody filled: the kernel's `folio_alloc_swap` `BUG`s on it) | `swap_writepage`, `swap_writefolio` | `SwapError::Backend(Error::InvalidArgument)`; untouched, no slot taken, not marked zero | `EINVAL` | `a_page_or_folio_that_is_not_uptodate_is_not_swapped_out` |
//! | a swap-out of a page or folio under writeback (redirtied while its write is on its way), to its slot or another; to a slot whose write, requested swap-in or folio I/O is on its way | `swap_writepage`, `swap_writefolio` | `SwapError::Busy`; when the write lands the redirtied page stays dirty (the redirty is not lost) and is written again later | `EBUSY` | `a_page_redirtied_under_writeback_stays_dirty_when_the_write_lands`, `swap_ins_of_a_slot_being_read_share_the_read`, `large_folio_requests_with_a_bad_order_or_misaligned_first_slot`; `examples/swap/tests/folio.rs`: `under_writeback_its_pages_come_from_the_swap_cache_and_its_slots_stay` |
//! | a second swap-in while a read of the slot is on its way: into the caller's memory (`swap_read_into`, either read's), or of a slot of a large folio being read | `swap_read_into`, `swap_readpage` | `SwapError::Busy` (retry once the read completed); the refused destination is dropped; a second `swap_readpage` is no error: it shares the read | `EBUSY` | `a_second_swap_in_while_one_is_reading_shares_it_or_is_busy`, `swap_ins_of_a_slot_being_read_share_the_read` |
//! | a swap-in of a slot whose last write failed | `swap_readpage`, `swap_read_into` | `SwapError::InMemory`, no I/O: the data is the redirtied page its owner holds | `EEXIST` | `a_failed_write_leaves_the_redirtied_page_as_the_slots_data`, `a_failed_swap_out_leaves_pages_and_folios_dirty_and_in_memory` |
//! | a large-folio swap-in whose first slot is not aligned to the folio's size, whose run passes the end, or whose slots are not all allocated | `swap_readfolio` | not an error: `FolioIn::Fallback(FolioFallback::NotOneFolio)` (page by page, each with the rows above), no I/O | | `large_folio_requests_with_a_bad_order_or_misaligned_first_slot` |
//! | an order above [`MAX_PAGE_ORDER`](crate::MAX_PAGE_ORDER) (`u32::MAX` included) | `swap_readfolio` | `SwapError::Backend(Error::InvalidArgument)` | `EINVAL` | same test |
//! | an order-0 folio | `swap_writefolio` | `SwapError::Unsupported` (a page goes through `swap_writepage`) | `EOPNOTSUPP` | same test |
//! | a swap-out whose write fails or is short: alone, in a plugged batch, in flight, a whole large folio | the write's completion | no partial success: every page of the kiocb (the folio) is dirty again, off writeback, its bytes intact in its owner's hands; the slots answer `InMemory` until written again or freed; counted (`write_errors`, `redirtied_pages`) | the device's | `a_failed_swap_out_leaves_pages_and_folios_dirty_and_in_memory`, `a_failed_write_leaves_the_redirtied_page_as_the_slots_data` |
//!
//! Documented panics (caller bugs that cannot be answered): waiting on a
//! swap-in whose read is still in a plug (`SwapIn::wait`: it would never
//! end; unplug first).
//!
//! ## userfaultfd (the `swap` example's `uffd`)
//!
//! The userfaultfd layer (`examples/swap/src/uffd`) answers with
//! `uffd::Error` (`Error::errno` gives the errno) and, for the pager,
//! `PagerError`. The tests are in `examples/swap/tests/uffd.rs`, all †
//! (they skip loudly where userfaultfd is unavailable).
//!
//! | bad input | where | error | errno | test |
//! |---|---|---|---|---|
//! | a range not page aligned, empty, or wrapping the address space; a region of such a length | `Range::new`, `AnonRegion::new`, `MemfdRegion::new`, `Uffd::copy` | `Error::BadRange`, before any syscall | `EINVAL` | `unaligned_empty_or_wrapping_ranges_are_einval`, `partial_copy_is_eagain_and_mapped_is_eexist` |
//! | a sub-range outside the region, or overflowing | `AnonRegion::pages`, `AnonRegion::drop_pages`, `MemfdRegion::user_pages`, `MemfdRegion::punch_hole`, `MemfdRegion::zap_user` | `Error::BadRange`; nothing dropped, punched or zapped | `EINVAL` | `a_range_outside_the_region_is_einval_and_touches_nothing` |
//! | registering a range no process can map (below `vm.mmap_min_addr`, past the user address space), or with no mode or an unknown mode bit | `Uffd::register`, `AnonRegion::register` | `Error::Os { op: "UFFDIO_REGISTER", .. }`, the kernel's errno | `EINVAL` | `registering_a_range_nobody_can_map_or_no_mode_is_the_kernels_einval` |
//! | a fill onto a page already mapped; a multi-page fill meeting one | `Uffd::copy`, `zeropage`, `continue_`, `poison` | `Error::Exists` (nothing done); `Error::Again { done }` | `EEXIST`; `EAGAIN` | `partial_copy_is_eagain_and_mapped_is_eexist`, `racing_servers_one_wins_the_loser_wakes` |
//! | `UFFDIO_CONTINUE` where the page cache has no page | `Uffd::continue_` | `Error::Os` | `EFAULT` | `memfd_fault_kinds_and_continue_on_missing` |
//! | a feature or ioctl the kernel lacks: a required feature not offered, `UFFDIO_POISON` before Linux 6.6, `UFFDIO_CONTINUE` on the memfd | `Uffd::open_with`, `Uffd::poison`, `Pager::new` | `Error::Unsupported` / `PagerError::Unsupported` naming it; `PagerError::is_unavailable` says so, and the tests and the demo skip loudly with the reason | `EOPNOTSUPP` | `unsupported_features_are_refused_saying_why` |
//! | no userfaultfd at all (`ENOSYS`, `EPERM`) | `Uffd::open`, `Pager::new` | `Error::Os { op: "userfaultfd", .. }`; `is_unavailable` | the kernel's | same test |
//! | a kernel-mode access (`read(2)`) into a missing registered page (`UFFD_USER_MODE_ONLY`) | the syscall | the syscall's `EFAULT`, no event | `EFAULT` | `user_mode_only_kernel_access_is_efault` |
//! | a swap-in whose read fails (an error, a short read) | `Pager::serve` | never mapped: read again, up to `PagerConfig::read_attempts` reads; then the page is poisoned (`UFFDIO_POISON`): the faulting access and every later one get `SIGBUS`; without `UFFDIO_POISON`, read again for ever | (`SIGBUS`) | `a_failed_read_is_retried_never_mapped`, `a_page_that_cannot_be_read_is_poisoned_sigbus` |
//! | a swap-out whose write fails | `Pager::reclaim` | the page stays resident with its bytes, its slot freed (`ReclaimOutcome::failed`); a later reclaim writes it | | `a_failed_swap_out_leaves_the_page_resident_with_its_bytes` |
//! | a pager configuration out of range: no pages, no read attempts, no writeback, more pages than usable slots | `Pager::new` | `PagerError::Unsupported` saying which, before anything is mapped | | `pager_configs_and_reclaims_out_of_range`, `reclaim_without_a_server_and_bad_configs` |
//! | a fault-around (or its maximum) reaching past the region, `usize::MAX` included | `Pager::serve` | not an error: cut at the region's end | | `pager_configs_and_reclaims_out_of_range` |
//! | reclaim of pages outside the region (`usize::MAX` included), named twice, not resident, or with no `serve` running | `Pager::reclaim` | not an error: those pages are skipped (`ReclaimOutcome::skipped`) | | `pager_configs_and_reclaims_out_of_range`, `reclaim_without_a_server_and_bad_configs` |
//!
//! Documented panics: `Pager::page_state` and `Pager::read_page` of a page
//! index outside the region.
//!
//! ## Fuzzing
//!
//! The `fuzz/` directory (cargo-fuzz, outside the workspace; `fuzz/run.sh`)
//! feeds the same inputs at random: `iter_ops` (revert, reexpand, restore,
//! page ranges, `bvecs_mut`, pages of every kind, against a flat model),
//! `import_iovec` (every row of that table, arbitrary pairs only on error
//! paths), `rwf_flags` (every `RWF_*` rule against a reference of
//! `kiocb_set_rw_flags`), `swap_header` (every header row against a
//! reference of `read_swap_header`), `owned_resume` (owned iterators
//! through async direct I/O, resumed after short transfers) and
//! `iomap_dio` (random extent maps, bad ones included, × random iterators
//! through [`iomap::IomapDio`], against a flat model of the file).

//!
//! [`Error`]: crate::Error
//! [`Error::errno`]: crate::Error::errno
//! [`Error::RevertPastStart`]: crate::Error::RevertPastStart
//! [`Error::RevertTooLarge`]: crate::Error::RevertTooLarge
//! [`Error::ReexpandPastEnd`]: crate::Error::ReexpandPastEnd
//! [`Error::ForeignState`]: crate::Error::ForeignState
//! [`Error::PageRange`]: crate::Error::PageRange
//! [`Error::OverlappingRanges`]: crate::Error::OverlappingRanges
//! [`Error::NoPages`]: crate::Error::NoPages
//! [`Error::TooManySegments`]: crate::Error::TooManySegments
//! [`Error::SegmentTooLong`]: crate::Error::SegmentTooLong
//! [`Error::NullSegment`]: crate::Error::NullSegment
//! [`Error::BadAddress`]: crate::Error::BadAddress
//! [`USER_ADDR_END`]: crate::USER_ADDR_END
//! [`Error::Misaligned`]: crate::Error::Misaligned
//! [`Error::InvalidArgument`]: crate::Error::InvalidArgument
//! [`Error::NotSupported`]: crate::Error::NotSupported
//! [`Error::WouldBlock`]: crate::Error::WouldBlock
//! [`Error::Os`]: crate::Error::Os
//! [`Error::BadExtent`]: crate::Error::BadExtent
//! [`BadExtent`]: crate::BadExtent
//! [`BadExtent::Unallocated`]: crate::BadExtent::Unallocated
//! [`iomap::IoMap`]: crate::iomap::IoMap
//! [`iomap::IoMap::end_io`]: crate::iomap::IoMap::end_io
//! [`iomap::IomapDio`]: crate::iomap::IomapDio
//! [`iomap::Extent::check`]: crate::iomap::Extent::check
//! [`iomap::swapfile_activate`]: crate::iomap::swapfile_activate
//! [`iomap::SwapActivateError::Refused`]: crate::iomap::SwapActivateError::Refused
//! [`iomap::SwapActivateError::Map`]: crate::iomap::SwapActivateError::Map
//! [`iomap::SwapActivateError::NoUsablePage`]: crate::iomap::SwapActivateError::NoUsablePage
//! [`dio::DirectIo::capacity`]: crate::dio::DirectIo::capacity
//! [`Errno::EPERM`]: crate::Errno::EPERM
//! [`Misalignment::SegmentAddress`]: crate::Misalignment::SegmentAddress
//! [`Misalignment::SegmentLength`]: crate::Misalignment::SegmentLength
//! [`Misalignment::FileOffset`]: crate::Misalignment::FileOffset
//! [`Misalignment::TotalLength`]: crate::Misalignment::TotalLength
//! [`IovIter::revert`]: crate::IovIter::revert
//! [`IovIter::capacity`]: crate::IovIter::capacity
//! [`IovIter::reexpand`]: crate::IovIter::reexpand
//! [`IovIter::restore`]: crate::IovIter::restore
//! [`IovIter::copy_page_to_iter`]: crate::IovIter::copy_page_to_iter
//! [`IovIter::copy_page_from_iter`]: crate::IovIter::copy_page_from_iter
//! [`IovIter::extract_pages`]: crate::IovIter::extract_pages
//! [`IovIter::get_pages`]: crate::IovIter::get_pages
//! [`MAX_RW_COUNT`]: crate::MAX_RW_COUNT
//! [`BvecSeg::new`]: crate::BvecSeg::new
//! [`BvecSegMut::new`]: crate::BvecSegMut::new
//! [`Page::bvec`]: crate::Page::bvec
//! [`Page::bvec_mut`]: crate::Page::bvec_mut
//! [`Page::bvecs_mut`]: crate::Page::bvecs_mut
//! [`Discard`]: crate::Discard
//! [`Kvec`]: crate::Kvec
//! [`UIO_MAXIOV`]: crate::UIO_MAXIOV
//! [`dio::DirectIo::direct_io`]: crate::dio::DirectIo::direct_io
//! [`dio::DirectIo::submit`]: crate::dio::DirectIo::submit
//! [`dio::DioAlign::check`]: crate::dio::DioAlign::check
//! [`dio::DioAlign::new`]: crate::dio::DioAlign::new
//! [`Kiocb::take_completion`]: crate::kiocb::Kiocb::take_completion
//! [`Kiocb::set_rw_flags`]: crate::kiocb::Kiocb::set_rw_flags
//! [`Kiocb::flags`]: crate::kiocb::Kiocb::flags
//! [`RwfFlags::SUPPORTED`]: crate::kiocb::RwfFlags::SUPPORTED
//! [`AlignedBuf`]: crate::buf::AlignedBuf
//! [`AlignedBuf::with_capacity`]: crate::buf::AlignedBuf::with_capacity
//! [`AlignedBuf::zeroed`]: crate::buf::AlignedBuf::zeroed
//! [`AlignedBuf::from_slice`]: crate::buf::AlignedBuf::from_slice
//! [`GuestBuf`]: crate::buf::GuestBuf
//! [`GuestBuf::new`]: crate::buf::GuestBuf::new
//! [`SharedRegion::read_at`]: crate::buf::SharedRegion::read_at
//! [`SharedRegion::write_at`]: crate::buf::SharedRegion::write_at
//! [`SharedRegion::fill`]: crate::buf::SharedRegion::fill
//! [`Kiocb`]: crate::kiocb::Kiocb
//! [`dio::DirectIo::drive`]: crate::dio::DirectIo::drive
