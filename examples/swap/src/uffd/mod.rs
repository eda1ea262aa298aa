//! userfaultfd: a region of this process's own memory paged by the swap
//! device, the way the kernel pages anonymous and shmem memory through
//! swap, but from user space.
//!
//! Linux reference: `fs/userfaultfd.c`, `mm/userfaultfd.c`,
//! `include/uapi/linux/userfaultfd.h`, `Documentation/admin-guide/mm/userfaultfd.rst`.
//!
//! One concept per file:
//!
//! | file | what |
//! |---|---|
//! | `sys` | `#[repr(C)]` mirrors of the uapi structures, the ioctl opcodes (computed with rustix) |
//! | `flags` | the bit-flag types' generator |
//! | `error` | [`Error`]: what an ioctl's outcome means to a fault handler (`EEXIST`, `EAGAIN`) |
//! | `range` | [`Range`]: page-aligned address ranges |
//! | `fd` | [`Uffd`]: the fd, the `UFFDIO_API` handshake, the `UFFDIO_*` ioctls, [`Event`]s |
//! | `region` | [`AnonRegion`], [`MemfdRegion`]: memory to register, and the ways to make its pages fault again |
//! | `pager` | [`Pager`]: the region, the userfaultfd and a [`SwapDevice`](crate::swapio::SwapDevice), with reclaim and the fault-serving loop |
//!
//! # Kernel behaviour this relies on (measured on Linux 6.18)
//!
//! * `UFFD_USER_MODE_ONLY` (5.11+) lets an unprivileged process open a
//!   userfaultfd even with `vm.unprivileged_userfaultfd = 0`; the price is
//!   that a *kernel-mode* access to a missing registered page (`read(2)` or
//!   `O_DIRECT` into it) fails with `EFAULT` and raises no event. So no I/O
//!   ever targets the registered mapping: swap-ins land in a page of ours
//!   (anonymous: then `UFFDIO_COPY`) or in the memfd's page cache through
//!   an unregistered alias mapping (then `UFFDIO_CONTINUE`).
//! * On a memfd registered `MISSING | MINOR`: after
//!   `fallocate(PUNCH_HOLE)` the next access is a MISSING fault;
//!   `MADV_DONTNEED` of the user mapping alone gives a MINOR one (the page
//!   cache keeps the page). `UFFDIO_CONTINUE` resolves a MISSING fault too
//!   once the page cache holds the page (it maps whatever is there and
//!   wakes), and fails `EFAULT` when it does not. Registering MINOR only
//!   would let a punched page fault in as a fresh zero page, silently.
//! * A fill (`COPY`, `ZEROPAGE`, `CONTINUE`, `POISON`) whose first page is
//!   already mapped fails `EEXIST` having done nothing and woken nobody
//!   ([`Error::Exists`]: served by someone else; wake and move on); a
//!   multi-page fill that meets a mapped page later stops there with
//!   `EAGAIN` and the bytes done ([`Error::Again`]).
//! * `UFFDIO_POISON` (6.6+) makes the faulting access, and every later
//!   one, `SIGBUS`.
//! * `PR_SET_IO_FLUSHER` needs `CAP_SYS_RESOURCE` (`EPERM` without).

mod error;
mod fd;
mod flags;
mod pager;
mod range;
mod region;
mod sys;

pub use error::{Error, Result};
pub use fd::{
    Event, FaultFlags, Features, FillFlags, Ioctls, Options, Pagefault, RegisterMode, Uffd,
};
pub use pager::{
    HandlerSetup, PageState, Pager, PagerConfig, PagerError, PagerStats, ReclaimOutcome,
    RegionKind, harden_handler_thread,
};
pub use range::{Range, page_size};
pub use region::{AnonRegion, MemfdRegion};
