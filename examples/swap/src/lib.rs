//! Swap over a filesystem, built on `iov-iter`: the part of the swap demo a
//! user would copy. Pages go out to a swap file and come back in through
//! direct I/O the way Linux does it for swap files (`mm/page_io.c`, the
//! `->swap_rw` path): batched into kiocbs of up to 32 pages carrying owned
//! page iterators, through the crate's one I/O contract
//! (`DirectIo::submit`), synchronous, asynchronous inline, or in flight on
//! io_uring.
//!
//! Modules, one concern each:
//!
//! | module | what |
//! |---|---|
//! | [`header`] | the on-disk swap header (mkswap format), parsed with the kernel's `read_swap_header` rules |
//! | [`activate`] | creating a swap file, and the checks `swapon(2)` makes (extent walk through FIEMAP and `iov_iter::iomap::swapfile_activate`) |
//! | [`swapmap`] | slot allocation (`si->swap_map`) and the zero map (`si->zeromap`) |
//! | [`swapcache`] | the swap cache: per-slot state while data moves (writeback, reads, readahead) |
//! | [`swapio`] | the swap I/O paths: plugging, kiocbs, completions, the swap cache's use, readahead, zero pages, counters |
//! | [`latency`] | per-kiocb latency histograms (lock-free, bounded) and their percentiles |
//! | [`kernel`] | the kernel's own swap: `swapon(2)` in a guard that always swaps off, `/proc/swaps`, `/proc/vmstat` |
//! | [`content`] | checksummed page contents and swap-out orders the demo, the tests and the stress run verify |
//! | [`uffd`] | userfaultfd: the fd and its ioctls, registrable regions (anonymous, memfd with an alias), and [`uffd::Pager`], which pages a region of the process's own memory through a [`swapio::SwapDevice`] |
//!
//! The demo binary (`cargo run --release -p iov-iter-swap`) sits around this
//! library: its CLI, the scratch area, the workload and the `bench`
//! subcommand are in `src/main.rs` and its modules.

pub mod activate;
pub mod content;
pub mod header;
pub mod kernel;
pub mod latency;
pub mod swapcache;
pub mod swapio;
pub mod swapmap;
/// Helpers for this package's tests (scratch directories, util-linux,
/// `swapon(2)` in a guard); not part of the library. Built for the unit
/// tests and, through the `testutil` feature, for the binary's and the
/// integration tests.
#[cfg(any(test, feature = "testutil"))]
#[doc(hidden)]
pub mod testutil;
pub mod uffd;
