//! # Bad input
//!
//! Every invalid input a caller can hand this crate, the error it gets
//! (an [`Error`] variant and its errno, see [`Error::errno`]) and the test
//! that shows it. Where the kernel has undefined behaviour, a `BUG` or a
//! `WARN` for the same input, this crate returns the error and changes
//! nothing: the iterator, the kiocb and the memory are as they were (the
//! tests check that too).
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
