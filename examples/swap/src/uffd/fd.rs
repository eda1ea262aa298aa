//! The userfaultfd itself: opening it (with `UFFD_USER_MODE_ONLY`), the
//! `UFFDIO_API` handshake, the `UFFDIO_*` ioctls on it, and its events.

use core::time::Duration;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::io::Errno;
use rustix::ioctl::{Updater, ioctl};
use rustix::mm::UserfaultfdFlags;

use super::error::{Error, Result};
use super::flags::flags;
use super::range::Range;
use super::sys;

flags! {
    /// `UFFD_FEATURE_*` bits of the `UFFDIO_API` handshake.
    pub struct Features {
        /// `UFFD_FEATURE_PAGEFAULT_FLAG_WP`.
        const PAGEFAULT_FLAG_WP = 1u64 << 0;
        /// `UFFD_FEATURE_EVENT_FORK` (needs CAP_SYS_PTRACE).
        const EVENT_FORK = 1u64 << 1;
        /// `UFFD_FEATURE_EVENT_REMAP`.
        const EVENT_REMAP = 1u64 << 2;
        /// `UFFD_FEATURE_EVENT_REMOVE`.
        const EVENT_REMOVE = 1u64 << 3;
        /// `UFFD_FEATURE_MISSING_HUGETLBFS`.
        const MISSING_HUGETLBFS = 1u64 << 4;
        /// `UFFD_FEATURE_MISSING_SHMEM`: MISSING mode on shmem/memfd.
        const MISSING_SHMEM = 1u64 << 5;
        /// `UFFD_FEATURE_EVENT_UNMAP`.
        const EVENT_UNMAP = 1u64 << 6;
        /// `UFFD_FEATURE_SIGBUS`: faults raise SIGBUS instead of events.
        const SIGBUS = 1u64 << 7;
        /// `UFFD_FEATURE_THREAD_ID`: events carry the faulting thread id.
        const THREAD_ID = 1u64 << 8;
        /// `UFFD_FEATURE_MINOR_HUGETLBFS`.
        const MINOR_HUGETLBFS = 1u64 << 9;
        /// `UFFD_FEATURE_MINOR_SHMEM`: MINOR mode on shmem/memfd.
        const MINOR_SHMEM = 1u64 << 10;
        /// `UFFD_FEATURE_EXACT_ADDRESS`: events carry the unmasked address.
        const EXACT_ADDRESS = 1u64 << 11;
        /// `UFFD_FEATURE_WP_HUGETLBFS_SHMEM`.
        const WP_HUGETLBFS_SHMEM = 1u64 << 12;
        /// `UFFD_FEATURE_WP_UNPOPULATED`.
        const WP_UNPOPULATED = 1u64 << 13;
        /// `UFFD_FEATURE_POISON`: `UFFDIO_POISON` exists (Linux 6.6+).
        const POISON = 1u64 << 14;
        /// `UFFD_FEATURE_WP_ASYNC`.
        const WP_ASYNC = 1u64 << 15;
        /// `UFFD_FEATURE_MOVE`: `UFFDIO_MOVE` exists (Linux 6.8+).
        const MOVE = 1u64 << 16;
    }
}

flags! {
    /// Which `UFFDIO_*` ioctls are allowed (`ioctls` masks of `UFFDIO_API`
    /// and `UFFDIO_REGISTER`).
    pub struct Ioctls {
        /// `UFFDIO_REGISTER`.
        const REGISTER = 1u64 << sys::NR_REGISTER;
        /// `UFFDIO_UNREGISTER`.
        const UNREGISTER = 1u64 << sys::NR_UNREGISTER;
        /// `UFFDIO_WAKE`.
        const WAKE = 1u64 << sys::NR_WAKE;
        /// `UFFDIO_COPY`.
        const COPY = 1u64 << sys::NR_COPY;
        /// `UFFDIO_ZEROPAGE`.
        const ZEROPAGE = 1u64 << sys::NR_ZEROPAGE;
        /// `UFFDIO_MOVE`.
        const MOVE = 1u64 << sys::NR_MOVE;
        /// `UFFDIO_WRITEPROTECT`.
        const WRITEPROTECT = 1u64 << sys::NR_WRITEPROTECT;
        /// `UFFDIO_CONTINUE`.
        const CONTINUE = 1u64 << sys::NR_CONTINUE;
        /// `UFFDIO_POISON`.
        const POISON = 1u64 << sys::NR_POISON;
        /// `UFFDIO_API`.
        const API = 1u64 << sys::NR_API;
    }
}

flags! {
    /// `UFFDIO_REGISTER_MODE_*`.
    pub struct RegisterMode {
        /// Report faults on pages that are not present at all.
        const MISSING = 1u64 << 0;
        /// Report write faults on write-protected pages.
        const WP = 1u64 << 1;
        /// Report faults on pages present in the page cache but not mapped
        /// (shmem / hugetlbfs only).
        const MINOR = 1u64 << 2;
    }
}

flags! {
    /// Mode bits shared by `UFFDIO_COPY`, `ZEROPAGE`, `CONTINUE` and `POISON`.
    pub struct FillFlags {
        /// `*_MODE_DONTWAKE`: do not wake the faulting threads (call
        /// [`Uffd::wake`] later).
        const DONTWAKE = 1u64 << 0;
        /// `*_MODE_WP`: map write-protected (`COPY` and `CONTINUE` only).
        const WP = 1u64 << 1;
    }
}

flags! {
    /// `UFFD_PAGEFAULT_FLAG_*` of a page-fault event.
    pub struct FaultFlags {
        /// The access was a write.
        const WRITE = sys::UFFD_PAGEFAULT_FLAG_WRITE;
        /// A write-protect fault.
        const WP = sys::UFFD_PAGEFAULT_FLAG_WP;
        /// A minor fault: the page is in the page cache but not mapped.
        const MINOR = sys::UFFD_PAGEFAULT_FLAG_MINOR;
    }
}

/// A page fault reported by the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pagefault {
    /// Faulting address, rounded down to the page (unless
    /// [`Features::EXACT_ADDRESS`] was enabled).
    pub address: usize,
    /// What kind of fault it is. Neither `MINOR` nor `WP` means MISSING.
    pub flags: FaultFlags,
    /// The faulting thread id, when [`Features::THREAD_ID`] is enabled.
    pub thread_id: Option<u32>,
}

impl Pagefault {
    /// A MISSING fault (neither MINOR nor WP).
    pub fn is_missing(&self) -> bool {
        !self.flags.intersects(FaultFlags::MINOR | FaultFlags::WP)
    }

    /// A MINOR fault.
    pub fn is_minor(&self) -> bool {
        self.flags.contains(FaultFlags::MINOR)
    }

    /// A write access.
    pub fn is_write(&self) -> bool {
        self.flags.contains(FaultFlags::WRITE)
    }

    /// The page containing the faulting address.
    pub fn page(&self) -> Range {
        Range::page_of(self.address)
    }
}

/// An event read from the userfaultfd.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// `UFFD_EVENT_PAGEFAULT`.
    Pagefault(Pagefault),
    /// `UFFD_EVENT_FORK` (only with [`Features::EVENT_FORK`]): the child's
    /// new userfaultfd, now owned by the caller.
    Fork(OwnedFd),
    /// `UFFD_EVENT_REMAP` (only with [`Features::EVENT_REMAP`]).
    Remap {
        /// Old start address.
        from: usize,
        /// New start address.
        to: usize,
        /// Length.
        len: usize,
    },
    /// `UFFD_EVENT_REMOVE` (only with [`Features::EVENT_REMOVE`]): e.g.
    /// `MADV_DONTNEED` on a registered range.
    Remove {
        /// Start address.
        start: usize,
        /// End address.
        end: usize,
    },
    /// `UFFD_EVENT_UNMAP` (only with [`Features::EVENT_UNMAP`]).
    Unmap {
        /// Start address.
        start: usize,
        /// End address.
        end: usize,
    },
    /// An event number this crate does not know.
    Unknown(u8),
}

/// How to open a [`Uffd`].
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Ask for `UFFD_USER_MODE_ONLY` (default `true`): only faults taken in
    /// user mode are reported; a kernel access (e.g. `read(2)` into the
    /// region) fails with `EFAULT` instead. This is allowed without
    /// privilege even when `vm.unprivileged_userfaultfd = 0`. If the kernel
    /// predates the flag (EINVAL), the open falls back to plain mode.
    pub user_mode_only: bool,
    /// Features to enable when the kernel offers them.
    pub wanted: Features,
    /// Features without which [`Uffd::open_with`] fails.
    pub required: Features,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            user_mode_only: true,
            wanted: Features::MISSING_SHMEM
                | Features::MINOR_SHMEM
                | Features::POISON
                | Features::THREAD_ID,
            required: Features::empty(),
        }
    }
}

/// A userfaultfd, opened non-blocking and close-on-exec, after the
/// `UFFDIO_API` handshake. All methods take `&self`; share it between
/// threads with `Arc`.
#[derive(Debug)]
pub struct Uffd {
    fd: OwnedFd,
    user_mode_only: bool,
    enabled: Features,
    available: Features,
    api_ioctls: Ioctls,
}

/// Messages read per `read(2)`.
const MSGS_PER_READ: usize = 16;

impl Uffd {
    /// Opens with [`Options::default`].
    pub fn open() -> Result<Uffd> {
        Uffd::open_with(Options::default())
    }

    /// Opens a userfaultfd and performs the handshake.
    ///
    /// The kernel fails the handshake on any unknown feature bit, and a
    /// userfaultfd accepts only one handshake; so a first, throw-away fd
    /// asks with no features what the kernel offers, and the real fd then
    /// asks for `wanted ∩ offered`.
    pub fn open_with(opts: Options) -> Result<Uffd> {
        let (probe, _) = open_fd(opts.user_mode_only)?;
        let offered = handshake(&probe, Features::empty())?;
        drop(probe);
        let available = Features::from_bits_retain(offered.features);
        if !available.contains(opts.required) {
            return Err(Error::Unsupported("required userfaultfd feature"));
        }
        let request = (opts.wanted | opts.required) & available;
        let (fd, user_mode_only) = open_fd(opts.user_mode_only)?;
        let reply = handshake(&fd, request)?;
        Ok(Uffd {
            fd,
            user_mode_only,
            enabled: request,
            available,
            api_ioctls: Ioctls::from_bits_retain(reply.ioctls),
        })
    }

    /// The features enabled on this fd (requested and offered).
    pub fn features(&self) -> Features {
        self.enabled
    }

    /// All features the kernel offered in the handshake.
    pub fn available_features(&self) -> Features {
        self.available
    }

    /// The ioctls the handshake reported (fd-level ones).
    pub fn api_ioctls(&self) -> Ioctls {
        self.api_ioctls
    }

    /// Whether the fd was opened with `UFFD_USER_MODE_ONLY`.
    pub fn user_mode_only(&self) -> bool {
        self.user_mode_only
    }

    /// `UFFDIO_REGISTER`: report faults in `range` on this fd. Returns the
    /// ioctls allowed on the range (e.g. whether `CONTINUE`/`POISON` work).
    ///
    /// # Safety
    ///
    /// `range` must be memory that the caller owns and that no Rust
    /// reference (`&T`/`&mut T`) points into while registered: after this,
    /// the fault handler decides the contents of missing pages (and may
    /// poison them), and threads touching the range block until a handler
    /// serves them. Access it through raw pointers only.
    pub unsafe fn register(&self, range: Range, mode: RegisterMode) -> Result<Ioctls> {
        let mut arg = sys::UffdioRegister {
            range: range.raw(),
            mode: mode.bits(),
            ioctls: 0,
        };
        // SAFETY: UFFDIO_REGISTER takes a `struct uffdio_register`, which
        // `UffdioRegister` mirrors (size checked in `sys`); the kernel only
        // reads and writes that struct.
        unsafe {
            ioctl(
                &self.fd,
                Updater::<{ sys::UFFDIO_REGISTER }, _>::new(&mut arg),
            )
        }
        .map_err(Error::os("UFFDIO_REGISTER"))?;
        Ok(Ioctls::from_bits_retain(arg.ioctls))
    }

    /// `UFFDIO_UNREGISTER`: stop reporting faults in `range`; blocked
    /// threads are woken and retry the fault the normal way.
    pub fn unregister(&self, range: Range) -> Result<()> {
        let mut arg = range.raw();
        // SAFETY: UFFDIO_UNREGISTER takes a `struct uffdio_range`, which
        // `UffdioRange` mirrors; the kernel only reads it. Unregistering
        // hands the range back to normal fault handling: no memory hazard.
        unsafe {
            ioctl(
                &self.fd,
                Updater::<{ sys::UFFDIO_UNREGISTER }, _>::new(&mut arg),
            )
        }
        .map_err(Error::os("UFFDIO_UNREGISTER"))
    }

    /// `UFFDIO_WAKE`: wake threads blocked on faults in `range`; they retry
    /// the access (and fault again if the page is still absent).
    pub fn wake(&self, range: Range) -> Result<()> {
        let mut arg = range.raw();
        // SAFETY: UFFDIO_WAKE takes a `struct uffdio_range`; the kernel only
        // reads it and wakes waiters; no memory is changed.
        unsafe { ioctl(&self.fd, Updater::<{ sys::UFFDIO_WAKE }, _>::new(&mut arg)) }
            .map_err(Error::os("UFFDIO_WAKE"))
    }

    /// `UFFDIO_COPY`: atomically allocate pages at `dst` filled with `src`
    /// and map them, then wake the faulting threads (unless `DONTWAKE`).
    /// `dst` and `src.len()` must be page aligned. Returns the bytes copied
    /// (`src.len()` on success); see [`Error::Exists`] and [`Error::Again`]
    /// for the distinct outcomes. Works for MISSING faults (anon or shmem).
    pub fn copy(&self, dst: usize, src: &[u8], flags: FillFlags) -> Result<usize> {
        let range = Range::new(dst, src.len())?;
        let mut arg = sys::UffdioCopy {
            dst: range.start() as u64,
            src: src.as_ptr() as u64,
            len: range.len() as u64,
            mode: flags.bits(),
            copy: 0,
        };
        // SAFETY: UFFDIO_COPY takes a `struct uffdio_copy`, mirrored by
        // `UffdioCopy`. The kernel reads `len` bytes from `src`, a live
        // slice of exactly that length, and writes only to not-yet-present
        // pages of a range registered on this fd (see `register`'s
        // contract), failing otherwise.
        let ret = unsafe { ioctl(&self.fd, Updater::<{ sys::UFFDIO_COPY }, _>::new(&mut arg)) };
        fill_result("UFFDIO_COPY", ret, arg.copy)
    }

    /// `UFFDIO_ZEROPAGE`: map zero pages at `range` (MISSING faults, anon
    /// or shmem). Returns bytes mapped. `FillFlags::WP` is rejected.
    pub fn zeropage(&self, range: Range, flags: FillFlags) -> Result<usize> {
        let mut arg = sys::UffdioZeropage {
            range: range.raw(),
            mode: flags.bits(),
            zeropage: 0,
        };
        // SAFETY: UFFDIO_ZEROPAGE takes a `struct uffdio_zeropage`, mirrored
        // by `UffdioZeropage`; the kernel maps zeroes only into not-present
        // pages of a registered range (see `register`).
        let ret = unsafe {
            ioctl(
                &self.fd,
                Updater::<{ sys::UFFDIO_ZEROPAGE }, _>::new(&mut arg),
            )
        };
        fill_result("UFFDIO_ZEROPAGE", ret, arg.zeropage)
    }

    /// `UFFDIO_CONTINUE`: map the pages already in the page cache at
    /// `range` (MINOR-registered shmem/hugetlbfs). Returns bytes mapped.
    /// Fails (`EFAULT` on shmem) where the page cache has no page.
    pub fn continue_(&self, range: Range, flags: FillFlags) -> Result<usize> {
        let mut arg = sys::UffdioContinue {
            range: range.raw(),
            mode: flags.bits(),
            mapped: 0,
        };
        // SAFETY: UFFDIO_CONTINUE takes a `struct uffdio_continue`, mirrored
        // by `UffdioContinue`; the kernel only installs page-table entries
        // for existing page-cache pages of a registered range.
        let ret = unsafe {
            ioctl(
                &self.fd,
                Updater::<{ sys::UFFDIO_CONTINUE }, _>::new(&mut arg),
            )
        };
        fill_result("UFFDIO_CONTINUE", ret, arg.mapped)
    }

    /// `UFFDIO_POISON` (Linux 6.6+): mark `range` poisoned; the faulting
    /// thread (and any later access) gets `SIGBUS`. Returns bytes marked.
    pub fn poison(&self, range: Range, flags: FillFlags) -> Result<usize> {
        if !self.available.contains(Features::POISON) {
            return Err(Error::Unsupported("UFFDIO_POISON (Linux 6.6+)"));
        }
        let mut arg = sys::UffdioPoison {
            range: range.raw(),
            mode: flags.bits(),
            updated: 0,
        };
        // SAFETY: UFFDIO_POISON takes a `struct uffdio_poison`, mirrored by
        // `UffdioPoison`; the kernel only installs poison markers in
        // not-present pages of a registered range: accesses then SIGBUS,
        // which is a crash, not memory corruption.
        let ret = unsafe {
            ioctl(
                &self.fd,
                Updater::<{ sys::UFFDIO_POISON }, _>::new(&mut arg),
            )
        };
        fill_result("UFFDIO_POISON", ret, arg.updated)
    }

    /// Reads all pending events without blocking (empty when none).
    pub fn read_events(&self) -> Result<Vec<Event>> {
        let mut out = Vec::new();
        while self.read_events_into(&mut out)? == MSGS_PER_READ {}
        Ok(out)
    }

    /// One non-blocking `read(2)` of up to 16 messages, appended to `out`
    /// (reusing its capacity). Returns how many were appended; 0 if none.
    pub fn read_events_into(&self, out: &mut Vec<Event>) -> Result<usize> {
        let mut msgs = [sys::UffdMsg::ZERO; MSGS_PER_READ];
        let bytes = {
            // SAFETY: `msgs` is a live, exclusively borrowed array of
            // plain-old-data messages; viewing it as bytes of the same
            // length is valid, and any bytes the kernel writes form valid
            // `UffdMsg`s (all bit patterns are).
            let buf = unsafe {
                core::slice::from_raw_parts_mut(
                    msgs.as_mut_ptr().cast::<u8>(),
                    core::mem::size_of_val(&msgs),
                )
            };
            match rustix::io::read(&self.fd, buf) {
                Ok(n) => n,
                Err(Errno::AGAIN) | Err(Errno::INTR) => return Ok(0),
                Err(e) => {
                    return Err(Error::Os {
                        op: "read(userfaultfd)",
                        errno: e,
                    });
                }
            }
        };
        let n = bytes / core::mem::size_of::<sys::UffdMsg>();
        for msg in &msgs[..n] {
            out.push(self.parse(msg));
        }
        Ok(n)
    }

    fn parse(&self, msg: &sys::UffdMsg) -> Event {
        match msg.event {
            sys::UFFD_EVENT_PAGEFAULT => {
                // SAFETY: union read of plain integers: any bits are valid.
                let pf = unsafe { msg.arg.pagefault };
                Event::Pagefault(Pagefault {
                    address: pf.address as usize,
                    flags: FaultFlags::from_bits_retain(pf.flags),
                    thread_id: self
                        .enabled
                        .contains(Features::THREAD_ID)
                        .then_some(pf.ptid),
                })
            }
            sys::UFFD_EVENT_FORK => {
                // SAFETY: union read of plain integers: any bits are valid.
                let ufd = unsafe { msg.arg.fork }.ufd as i32;
                // SAFETY: for a fork event the kernel has just installed
                // this new fd in our table and hands it over to us.
                Event::Fork(unsafe { OwnedFd::from_raw_fd(ufd) })
            }
            sys::UFFD_EVENT_REMAP => {
                // SAFETY: union read of plain integers: any bits are valid.
                let r = unsafe { msg.arg.remap };
                Event::Remap {
                    from: r.from as usize,
                    to: r.to as usize,
                    len: r.len as usize,
                }
            }
            sys::UFFD_EVENT_REMOVE => {
                // SAFETY: union read of plain integers: any bits are valid.
                let r = unsafe { msg.arg.remove };
                Event::Remove {
                    start: r.start as usize,
                    end: r.end as usize,
                }
            }
            sys::UFFD_EVENT_UNMAP => {
                // SAFETY: union read of plain integers: any bits are valid.
                let r = unsafe { msg.arg.remove };
                Event::Unmap {
                    start: r.start as usize,
                    end: r.end as usize,
                }
            }
            other => Event::Unknown(other),
        }
    }

    /// Waits with `poll(2)` until events are readable or `timeout` passes
    /// (`None`: forever). Returns whether events are ready. `EINTR` counts
    /// as "not ready".
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool> {
        // A timeout too large for a timespec is as good as forever.
        let ts = timeout.and_then(|d| Timespec::try_from(d).ok());
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        match poll(&mut fds, ts.as_ref()) {
            Ok(n) => {
                let rev = fds[0].revents();
                if rev.intersects(PollFlags::ERR | PollFlags::NVAL) {
                    return Err(Error::Os {
                        op: "poll(userfaultfd)",
                        errno: Errno::BADF,
                    });
                }
                Ok(n > 0 && rev.contains(PollFlags::IN))
            }
            Err(Errno::INTR) => Ok(false),
            Err(e) => Err(Error::Os {
                op: "poll(userfaultfd)",
                errno: e,
            }),
        }
    }
}

impl AsFd for Uffd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Opens the fd, trying `UFFD_USER_MODE_ONLY` first if asked. Returns the
/// fd and whether user-mode-only took effect.
fn open_fd(user_mode_only: bool) -> Result<(OwnedFd, bool)> {
    let base = UserfaultfdFlags::CLOEXEC | UserfaultfdFlags::NONBLOCK;
    if user_mode_only {
        let flags = base | UserfaultfdFlags::from_bits_retain(sys::UFFD_USER_MODE_ONLY);
        // SAFETY: creating the fd is harmless by itself; it can only affect
        // memory once ranges are registered, which `register` guards.
        match unsafe { rustix::mm::userfaultfd(flags) } {
            Ok(fd) => return Ok((fd, true)),
            // Kernels before 5.11 do not know the flag.
            Err(Errno::INVAL) => {}
            Err(e) => {
                return Err(Error::Os {
                    op: "userfaultfd",
                    errno: e,
                });
            }
        }
    }
    // SAFETY: as above.
    let fd = unsafe { rustix::mm::userfaultfd(base) }.map_err(Error::os("userfaultfd"))?;
    Ok((fd, false))
}

fn handshake(fd: &OwnedFd, features: Features) -> Result<sys::UffdioApi> {
    let mut api = sys::UffdioApi {
        api: sys::UFFD_API,
        features: features.bits(),
        ioctls: 0,
    };
    // SAFETY: UFFDIO_API takes a `struct uffdio_api`, mirrored by
    // `UffdioApi`; the kernel only reads and writes that struct.
    unsafe { ioctl(fd, Updater::<{ sys::UFFDIO_API }, _>::new(&mut api)) }
        .map_err(Error::os("UFFDIO_API"))?;
    Ok(api)
}

/// Maps an mfill-style ioctl's return and its output field (bytes done or
/// a negated errno) to our result.
fn fill_result(op: &'static str, ret: rustix::io::Result<()>, out: i64) -> Result<usize> {
    let done = usize::try_from(out).unwrap_or(0);
    match ret {
        Ok(()) => Ok(done),
        Err(Errno::EXIST) => Err(Error::Exists),
        Err(Errno::AGAIN) => Err(Error::Again { done }),
        Err(errno) => Err(Error::Os { op, errno }),
    }
}
