//! Guest memory: [`SharedRegion`], memory that parties outside this
//! program's Rust code may read and write at any time (a VMM's guest RAM, a
//! mapping shared with a device or another process), and [`GuestBuf`], an
//! owned buffer over ranges of it (a virtio descriptor chain) for
//! asynchronous direct I/O.
//!
//! Linux reference: `virt/kvm/kvm_main.c` (`kvm_read_guest`,
//! `kvm_write_guest`, `kvm_clear_guest`, `mark_page_dirty_in_slot`,
//! `KVM_GET_DIRTY_LOG`), `include/uapi/linux/virtio_ring.h`
//! (`struct vring_desc`). With the `vm-memory` feature, rust-vmm's
//! `vm-memory` (`GuestMemory`, `VolatileSlice`, `PtrGuard`).
//!
//! The rules (who may touch the memory when, what a concurrent writer can
//! and cannot do) are written on [`SharedRegion`]; the I/O side of them on
//! [`GuestBuf`].

use alloc::alloc::{Layout, alloc_zeroed, dealloc};
#[cfg(feature = "vm-memory")]
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;
use core::ptr::{self, NonNull};

use super::{IoBuf, IoBufMut};
use crate::dio::DirtyTracker;
use crate::dir::{Dest, Direction};
use crate::error::{Errno, Error, Result};
use crate::page::PAGE_SIZE;
use crate::sync::SpinLock;

/// Out of the region (or of guest memory): `EFAULT`, as `kvm_read_guest`.
const EFAULT: Error = Error::Os(Errno::EFAULT);
/// A range an in-flight [`GuestBuf`] holds: `EBUSY`.
const EBUSY: Error = Error::Os(Errno::EBUSY);

/// Who frees a [`SharedRegion`]'s memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// The caller of [`SharedRegion::from_raw_parts`].
    Caller,
    /// A page-aligned heap allocation of `len` bytes ([`SharedRegion::zeroed`]).
    Heap,
    /// A shared anonymous mapping of `len` bytes (`SharedRegion::anonymous`).
    #[cfg(feature = "std")]
    Mmap,
}

/// A range of host addresses a [`GuestBuf`] holds for its whole life.
#[derive(Debug, Clone, Copy)]
struct Lease {
    start: usize,
    end: usize,
    /// A destination's (no other Rust access at all), or a source's (Rust
    /// code may still read).
    exclusive: bool,
    /// The buffer holding it.
    id: u64,
}

#[derive(Debug, Default)]
struct Leases {
    next_id: u64,
    held: Vec<Lease>,
}

impl Leases {
    /// Whether Rust code may access `[start, end)` now, to write it or
    /// only to read it.
    fn conflicts(&self, start: usize, end: usize, write: bool) -> bool {
        start < end
            && self
                .held
                .iter()
                .any(|l| l.start < end && start < l.end && (write || l.exclusive))
    }
}

/// `[start, end)` host addresses of a segment.
fn span(ptr: NonNull<u8>, len: usize) -> (usize, usize) {
    let start = ptr.as_ptr().addr();
    (start, start + len)
}

/// A region of memory that parties other than this program's Rust code
/// may read and write at any time: a VMM's guest RAM (the guest's vCPUs
/// write it), a mapping shared with a device or another process. Rust code
/// reaches it only through bounds-checked raw-pointer copies
/// ([`read_at`](SharedRegion::read_at), [`write_at`](SharedRegion::write_at),
/// [`fill`](SharedRegion::fill)) and through [`GuestBuf`]s, which hand its
/// addresses to the kernel or a device: nothing here makes a `&[u8]` or
/// `&mut [u8]` over it.
///
/// It is shared through an [`Arc`]: every [`GuestBuf`] over it holds one, so
/// the memory outlives every I/O over it. Made by
/// `SharedRegion::anonymous` (a shared anonymous mapping, feature `std`),
/// [`SharedRegion::zeroed`] (page-aligned heap memory, no syscall) or, over
/// memory someone else owns, the unsafe [`SharedRegion::from_raw_parts`].
///
/// # Concurrency: what is promised
///
/// * Rust code never races with Rust code over the memory. The accessors
///   copy while holding the region's lock, so they are serialised with each
///   other (a [`read_at`](SharedRegion::read_at) never sees half of a
///   concurrent [`write_at`](SharedRegion::write_at)). A [`GuestBuf`]
///   *leases* its ranges for as long as it lives (that is, for the whole
///   I/O it is handed to): a destination's exclusively, a source's shared.
///   While a range is leased, an access that would race with the I/O is
///   refused with `EBUSY` (a write of any leased range, a read of a
///   destination's), and so is a [`GuestBuf`] that would conflict with it.
///   So a backend that copies in Rust (the RAM backend,
///   `backend::mem::MemDevice`) never races with an accessor or with
///   another such backend.
/// * The other parties are outside Rust: what they write concurrently with
///   a copy or an I/O may show up as any mix of old and new bytes (every
///   bit pattern is a valid `u8`, and no reference exists that the compiler
///   could assume stable), not as undefined behaviour in this program.
///   That is the footing of every mapping shared with another process
///   (Rust's memory model does not describe writers outside the program)
///   and the model of vm-memory's `VolatileSlice`, whose bulk copies are
///   the same raw copies.
///
/// # What is not promised
///
/// * No atomicity or order of a copy's bytes with respect to the other
///   parties, no snapshot: a range the guest is writing may be read torn.
///   Copy once, then validate the copy (never re-read guest memory between
///   a check and a use). Ring indices that need acquire / release ordering
///   are beyond these byte copies.
/// * A lent iterator is the one way to a Rust reference: Rust code holding
///   an iterator lent over a [`GuestBuf`] (`OwnedIter::with_iter`; a
///   `DirectIo::read_iter` / `write_iter` override on the sync-kiocb path)
///   can take slices of it (`IovIter::iterate`, `chunks`, `chunks_mut`).
///   For as long as such a slice lives, the other parties must not write
///   those bytes (rule 4 of [`SharedRegion::from_raw_parts`]); a device
///   model facing an untrusted guest takes no such slice. The asynchronous
///   `DirectIo::submit` path lends none: it hands raw addresses over.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use iov_iter::buf::SharedRegion;
/// use iov_iter::Errno;
///
/// let ram = Arc::new(SharedRegion::zeroed(64 * 1024)?);
/// ram.write_at(0x1000, b"virtio")?;
/// let mut hdr = [0u8; 6];
/// assert_eq!(ram.read_at(0x1000, &mut hdr)?, 6);
/// assert_eq!(&hdr, b"virtio");
/// // Out of the region: EFAULT, and nothing is copied.
/// assert_eq!(ram.read_at(64 * 1024 - 2, &mut hdr).unwrap_err().errno(), Errno::EFAULT);
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[doc(alias = "GuestRam")]
#[doc(alias = "guest memory")]
#[doc(alias = "kvm_userspace_memory_region")]
#[doc(alias = "memslot")]
pub struct SharedRegion {
    base: NonNull<u8>,
    len: usize,
    owner: Owner,
    leases: SpinLock<Leases>,
}

// SAFETY: a region is an address, a length and a lock. The memory is
// reached only through raw-pointer copies made under the lock, from
// whichever thread holds it, and through `GuestBuf`s (which are `Send`);
// nothing in it is tied to a thread, and the heap allocation or mapping it
// may own can be freed from any thread.
unsafe impl Send for SharedRegion {}
// SAFETY: every `&self` method that touches the memory does so under the
// lock, after checking the leases, so copies from several threads are
// serialised and never race with an I/O over a leased range; the rest is
// read-only data.
unsafe impl Sync for SharedRegion {}

impl SharedRegion {
    /// A region over `len` bytes at `ptr` that someone else owns (and
    /// frees, after the region is dropped).
    ///
    /// # Safety
    ///
    /// From this call until the returned region is dropped (every [`Arc`]
    /// of it and every [`GuestBuf`] over it is gone):
    ///
    /// 1. `ptr` is valid for reads and writes of `len` bytes, inside one
    ///    allocation or mapping (so `len <= isize::MAX`), and is not freed,
    ///    unmapped or remapped;
    /// 2. every byte is initialised (memory a mapping, the kernel or a
    ///    zeroing allocator gave out is; a `Vec`'s spare capacity is not);
    /// 3. no Rust code reads or writes it other than through this region
    ///    and its [`GuestBuf`]s (not through another region over the same
    ///    memory either), and no Rust reference (`&` or `&mut` of any type)
    ///    covers any of it, except slices taken of an iterator lent over a
    ///    [`GuestBuf`] (rule 4);
    /// 4. parties outside Rust (a guest's vCPUs, a device, the kernel,
    ///    another process) may read and write it at any time, except the
    ///    bytes under such a slice while the slice lives: those they leave
    ///    alone (they may read those of a source). The virtio rule gives
    ///    this for a well-behaved driver: it does not touch a buffer
    ///    between making it available and the device using it. Code that
    ///    cannot rely on that never takes slices of a lent iterator (see
    ///    the type's documentation).
    ///
    /// # Examples
    ///
    /// Heap memory owned by the caller, freed after the region (no
    /// syscall: this runs under Miri).
    ///
    /// ```
    /// use std::alloc::{Layout, alloc_zeroed, dealloc};
    /// use std::ptr::NonNull;
    /// use iov_iter::buf::SharedRegion;
    ///
    /// let layout = Layout::from_size_align(8192, 4096).unwrap();
    /// // SAFETY: a non-zero size.
    /// let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).expect("allocation");
    /// // SAFETY: 8192 zeroed bytes, freed only below, after the region is
    /// // gone, and never reached by anything but the region meanwhile.
    /// let ram = unsafe { SharedRegion::from_raw_parts(ptr, 8192) };
    /// ram.write_at(4095, b"xy")?;
    /// let mut two = [0u8; 2];
    /// ram.read_at(4095, &mut two)?;
    /// assert_eq!(&two, b"xy");
    /// drop(ram);
    /// // SAFETY: allocated above with this layout; the region is gone.
    /// unsafe { dealloc(ptr.as_ptr(), layout) };
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub unsafe fn from_raw_parts(ptr: NonNull<u8>, len: usize) -> SharedRegion {
        SharedRegion::with_owner(ptr, len, Owner::Caller)
    }

    fn with_owner(base: NonNull<u8>, len: usize, owner: Owner) -> SharedRegion {
        SharedRegion {
            base,
            len,
            owner,
            leases: SpinLock::new(Leases::default()),
        }
    }

    /// `len` zero bytes of heap memory, aligned to [`PAGE_SIZE`] (so
    /// direct I/O into it is aligned), freed when the region is dropped. No
    /// syscall: the region for tests and for guests of a VMM that maps its
    /// heap into them.
    ///
    /// # Errors
    ///
    /// `Error::Os(Errno::ENOMEM)` when the memory cannot be had.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::buf::SharedRegion;
    /// use iov_iter::{Errno, PAGE_SIZE};
    /// let ram = SharedRegion::zeroed(2 * PAGE_SIZE)?;
    /// assert_eq!(ram.as_ptr() as usize % PAGE_SIZE, 0);
    /// assert_eq!(SharedRegion::zeroed(usize::MAX).unwrap_err().errno(), Errno::ENOMEM);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn zeroed(len: usize) -> Result<SharedRegion> {
        let layout =
            Layout::from_size_align(len, PAGE_SIZE).map_err(|_| Error::Os(Errno::ENOMEM))?;
        let base = if len == 0 {
            // Nothing to allocate: a dangling, aligned address.
            NonNull::new(ptr::without_provenance_mut::<u8>(PAGE_SIZE))
                .ok_or(Error::Os(Errno::ENOMEM))?
        } else {
            // SAFETY: the layout has a non-zero size.
            let raw = unsafe { alloc_zeroed(layout) };
            NonNull::new(raw).ok_or(Error::Os(Errno::ENOMEM))?
        };
        Ok(SharedRegion::with_owner(base, len, Owner::Heap))
    }

    /// `len` bytes of a shared anonymous mapping (`mmap(MAP_SHARED |
    /// MAP_ANONYMOUS)`, zero-filled, page-aligned), unmapped when the
    /// region is dropped: what a VMM registers as guest RAM
    /// (`KVM_SET_USER_MEMORY_REGION`) or shares with a child process.
    /// Requires the `std` feature.
    ///
    /// # Errors
    ///
    /// The errno of `mmap` (`EINVAL` for a length of 0, `ENOMEM`).
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::buf::SharedRegion;
    /// let ram = SharedRegion::anonymous(1 << 20)?;
    /// ram.fill(0, 1 << 20, 0xff)?;
    /// let mut last = [0u8];
    /// ram.read_at((1 << 20) - 1, &mut last)?;
    /// assert_eq!(last, [0xff]);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[cfg(feature = "std")]
    #[doc(alias = "mmap")]
    #[doc(alias = "MAP_SHARED")]
    pub fn anonymous(len: usize) -> Result<SharedRegion> {
        use rustix::mm::{MapFlags, ProtFlags, mmap_anonymous};
        // SAFETY: a fresh mapping at an address of the kernel's choosing
        // (no hint, no MAP_FIXED): nothing else is mapped over.
        let raw = unsafe {
            mmap_anonymous(
                ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
            )
        }
        .map_err(|e| Error::from(Errno::from_raw(e.raw_os_error())))?;
        let base = NonNull::new(raw.cast::<u8>()).ok_or(Error::Os(Errno::ENOMEM))?;
        Ok(SharedRegion::with_owner(base, len, Owner::Mmap))
    }

    /// The length in bytes.
    ///
    /// ```
    /// # use iov_iter::buf::SharedRegion;
    /// assert_eq!(SharedRegion::zeroed(4096)?.len(), 4096);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the length is 0.
    ///
    /// ```
    /// # use iov_iter::buf::SharedRegion;
    /// assert!(SharedRegion::zeroed(0)?.is_empty());
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The address of the first byte, to hand to the other party (a KVM
    /// memory slot's `userspace_addr`, a device). Whoever it is handed to
    /// is bound by rule 4 of [`SharedRegion::from_raw_parts`]; Rust code
    /// that dereferences it, by rule 3 (so: don't, use the accessors).
    ///
    /// ```
    /// # use iov_iter::buf::SharedRegion;
    /// let ram = SharedRegion::zeroed(4096)?;
    /// let userspace_addr = ram.as_ptr() as u64;
    /// assert_ne!(userspace_addr, 0);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// The start of `[offset, offset + len)` as an index, if the range is
    /// inside the region.
    fn check(&self, offset: u64, len: usize) -> Result<usize> {
        usize::try_from(offset)
            .ok()
            .filter(|&start| start <= self.len && len <= self.len - start)
            .ok_or(EFAULT)
    }

    /// Runs `copy` on the address of `[offset, offset + len)` under the
    /// lock, when the range is inside the region and no lease forbids the
    /// access.
    fn access(
        &self,
        offset: u64,
        len: usize,
        write: bool,
        copy: impl FnOnce(*mut u8),
    ) -> Result<usize> {
        let start = self.check(offset, len)?;
        if len == 0 {
            return Ok(0);
        }
        let at = self.base.as_ptr().wrapping_add(start);
        let leases = self.leases.lock();
        if leases.conflicts(at.addr(), at.addr() + len, write) {
            return Err(EBUSY);
        }
        copy(at);
        drop(leases);
        Ok(len)
    }

    /// Copies `buf.len()` bytes at `offset` into `buf`: all of them, or
    /// none and an error. A raw copy (`ptr::copy_nonoverlapping`): bytes
    /// another party writes meanwhile may be read old or new.
    ///
    /// # Errors
    ///
    /// `EFAULT` when the range leaves the region; `EBUSY` when it overlaps
    /// a destination [`GuestBuf`] that is alive (an I/O may be landing
    /// there).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use iov_iter::buf::{GuestBuf, SharedRegion};
    /// use iov_iter::{Dest, Errno};
    ///
    /// let ram = Arc::new(SharedRegion::zeroed(8192)?);
    /// let mut b = [0u8; 4];
    /// assert_eq!(ram.read_at(8188, &mut b)?, 4);
    /// assert_eq!(ram.read_at(8189, &mut b).unwrap_err().errno(), Errno::EFAULT);
    /// let dst = GuestBuf::<Dest>::new(&ram, [(4096, 512)])?;
    /// assert_eq!(ram.read_at(4096, &mut b).unwrap_err().errno(), Errno::EBUSY);
    /// drop(dst);
    /// assert_eq!(ram.read_at(4096, &mut b)?, 4);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "kvm_read_guest")]
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let (dst, n) = (buf.as_mut_ptr(), buf.len());
        self.access(offset, n, false, |src| {
            // SAFETY: `src` is `n` bytes inside the region, valid for reads
            // and initialised (the constructors' promise), and not written
            // by Rust code meanwhile (the lock serialises the accessors; no
            // destination lease covers them, so no I/O writes them). `dst`
            // is `buf`: valid for writes of `n` bytes, and disjoint from
            // `src`, since `buf` can be region memory only as a `&mut` slice
            // of an iterator lent over a destination `GuestBuf`, inside its
            // exclusive lease, which `src` does not reach (checked above).
            unsafe { ptr::copy_nonoverlapping(src, dst, n) }
        })
    }

    /// Copies `buf` to `offset`: all of it, or nothing and an error. A raw
    /// copy: another party may see the bytes land in any order.
    ///
    /// # Errors
    ///
    /// `EFAULT` when the range leaves the region; `EBUSY` when it overlaps
    /// a [`GuestBuf`] that is alive (an I/O may be reading or writing
    /// there).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use iov_iter::buf::{GuestBuf, SharedRegion};
    /// use iov_iter::{Errno, Source};
    ///
    /// let ram = Arc::new(SharedRegion::zeroed(8192)?);
    /// assert_eq!(ram.write_at(100, b"status")?, 6);
    /// assert_eq!(ram.write_at(8190, b"abc").unwrap_err().errno(), Errno::EFAULT);
    /// let src = GuestBuf::<Source>::new(&ram, [(0, 512)])?;
    /// assert_eq!(ram.write_at(100, b"x").unwrap_err().errno(), Errno::EBUSY);
    /// let mut b = [0u8; 6];
    /// ram.read_at(100, &mut b)?; // reading a source's range is fine
    /// assert_eq!(&b, b"status");
    /// drop(src);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "kvm_write_guest")]
    pub fn write_at(&self, offset: u64, buf: &[u8]) -> Result<usize> {
        let (src, n) = (buf.as_ptr(), buf.len());
        self.access(offset, n, true, |dst| {
            // SAFETY: `dst` is `n` bytes inside the region, valid for
            // writes, and neither read nor written by Rust code meanwhile
            // (the lock serialises the accessors; no lease covers them, so
            // no I/O reads or writes them). `src` is `buf`: valid for reads
            // of `n` bytes, and disjoint from `dst`, since `buf` can be
            // region memory only as a slice of an iterator lent over a
            // `GuestBuf`, inside its lease, which `dst` does not reach.
            unsafe { ptr::copy_nonoverlapping(src, dst, n) }
        })
    }

    /// Sets `len` bytes at `offset` to `byte` (`kvm_clear_guest` with 0):
    /// all of them, or none and an error.
    ///
    /// # Errors
    ///
    /// As [`SharedRegion::write_at`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use iov_iter::buf::SharedRegion;
    /// let ram = SharedRegion::zeroed(4096)?;
    /// assert_eq!(ram.fill(16, 4, 0xaa)?, 4);
    /// let mut b = [0u8; 6];
    /// ram.read_at(15, &mut b)?;
    /// assert_eq!(b, [0, 0xaa, 0xaa, 0xaa, 0xaa, 0]);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "kvm_clear_guest")]
    pub fn fill(&self, offset: u64, len: usize, byte: u8) -> Result<usize> {
        self.access(offset, len, true, |dst| {
            // SAFETY: `dst` is `len` bytes inside the region, valid for
            // writes and reached by no other Rust code meanwhile (as in
            // `write_at`).
            unsafe { ptr::write_bytes(dst, byte, len) }
        })
    }

    /// Leases the segments for buffer `id`'s life, or refuses with `EBUSY`
    /// when one conflicts with a lease held (any, for an exclusive one; an
    /// exclusive one, for a shared one). Returns the lease's id.
    fn lease(&self, segs: &[Seg], exclusive: bool) -> Result<u64> {
        let mut leases = self.leases.lock();
        for s in segs {
            let (start, end) = span(s.ptr, s.len);
            if leases.conflicts(start, end, exclusive) {
                return Err(EBUSY);
            }
        }
        let id = leases.next_id;
        leases.next_id += 1;
        leases.held.reserve(segs.len());
        for s in segs {
            let (start, end) = span(s.ptr, s.len);
            leases.held.push(Lease {
                start,
                end,
                exclusive,
                id,
            });
        }
        Ok(id)
    }

    fn release(&self, id: u64) {
        self.leases.lock().held.retain(|l| l.id != id);
    }
}

impl Drop for SharedRegion {
    fn drop(&mut self) {
        match self.owner {
            Owner::Caller => {}
            Owner::Heap if self.len == 0 => {}
            Owner::Heap => {
                // The layout `zeroed` allocated with (valid then, so now).
                if let Ok(layout) = Layout::from_size_align(self.len, PAGE_SIZE) {
                    // SAFETY: allocated by `zeroed` with this layout; every
                    // `GuestBuf` holds an `Arc` of the region, so none is
                    // left to reach the memory.
                    unsafe { dealloc(self.base.as_ptr(), layout) };
                }
            }
            #[cfg(feature = "std")]
            Owner::Mmap => {
                // SAFETY: the mapping made by `anonymous`, of `len` bytes;
                // nothing in Rust reaches it any more (as above).
                let res = unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), self.len) };
                debug_assert!(res.is_ok(), "munmap of guest memory: {res:?}");
            }
        }
    }
}

impl fmt::Debug for SharedRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedRegion")
            .field("base", &self.base)
            .field("len", &self.len)
            .field("owner", &self.owner)
            .field("leased_ranges", &self.leases.lock().held.len())
            .finish()
    }
}

/// One segment of a [`GuestBuf`]: host address and length, and the address
/// the dirty log knows it by (region offset, or guest physical address).
#[derive(Debug, Clone, Copy)]
struct Seg {
    ptr: NonNull<u8>,
    len: usize,
    addr: u64,
}

/// What holds a [`GuestBuf`]'s memory alive.
enum Mem {
    /// A region, and the lease taken on it.
    Region {
        region: Arc<SharedRegion>,
        lease: u64,
    },
    /// vm-memory guest memory: the pointer guards (declared first, so
    /// dropped before the memory), and the memory with its bitmap.
    #[cfg(feature = "vm-memory")]
    Vm {
        _guards: vm::Guards,
        mem: Box<dyn vm::Marker>,
    },
}

impl Mem {
    /// Whether the memory keeps a dirty bitmap of its own.
    fn has_bitmap(&self) -> bool {
        match self {
            Mem::Region { .. } => false,
            #[cfg(feature = "vm-memory")]
            Mem::Vm { .. } => true,
        }
    }

    /// Marks `len` bytes at `addr` in the memory's own bitmap, if any.
    fn mark_dirty(&self, addr: u64, len: usize) {
        match self {
            Mem::Region { .. } => {}
            #[cfg(feature = "vm-memory")]
            Mem::Vm { mem, .. } => mem.mark_dirty(addr, len),
        }
        let _ = (addr, len); // unused without vm-memory
    }
}

/// An owned buffer over ranges of guest memory (a virtio descriptor
/// chain): the destination of a read (`GuestBuf<Dest>`, an [`IoBufMut`])
/// or the source of a write (`GuestBuf<Source>`, an [`IoBuf`]), to move
/// into an [`OwnedIter`](super::OwnedIter) and through `DirectIo::submit`. No bounce buffer: the kernel or the device reads or
/// writes the guest's memory itself.
///
/// Built over `(offset, len)` ranges of a [`SharedRegion`]
/// ([`GuestBuf::new`]) or, with the `vm-memory` feature, over
/// `(GuestAddress, len)` ranges of vm-memory guest memory
/// (`GuestBuf::from_guest_memory`). Ranges are checked at construction,
/// in this order: each inside the memory (`EFAULT`); for a destination,
/// none overlapping another (`EINVAL`, [`Error::OverlappingRanges`]: a
/// device cannot write two places at once); over a region, none
/// conflicting with another live [`GuestBuf`] (`EBUSY`: a destination
/// conflicts with any, a source with a destination). Zero-length ranges
/// are skipped. The buffer holds the memory alive (an [`Arc`]) and its
/// lease until it is dropped, which an I/O does only after it completed.
///
/// # Safety argument
///
/// The buffer traits ask that the segments stay valid and that nothing
/// else touches them while the buffer is held ([`IoBuf`] 3, [`IoBufMut`]
/// 2). Here: valid, because the ranges were checked and the buffer holds
/// the memory; untouched by Rust code, because of the lease (for the
/// vm-memory case, see `GuestBuf::from_guest_memory`); untouched by the
/// other parties is *not* promised and not needed: the kernel or device
/// receives raw addresses, the RAM backend copies with raw pointers, and
/// no Rust reference is made — so a guest that scribbles over a buffer in
/// flight (against the virtio rules) corrupts its own data, nothing else.
/// The exception is a slice taken of a lent iterator (see
/// [`SharedRegion`]).
///
/// # Dirty log
///
/// A destination can carry a dirty log ([`GuestBuf::with_dirty_log`], a
/// [`DirtyTracker`] such as [`DirtyBitmap`](crate::dio::DirtyBitmap)): the
/// pages a read may have landed in are marked after it lands, for a VMM's
/// live migration. See that method for what is marked when.
///
/// # Examples
///
/// Eight writes from guest memory in flight at once on a RAM disk that
/// completes them last first, then eight reads into other guest memory.
///
/// ```
/// use std::sync::Arc;
/// use iov_iter::backend::mem::{MemDevice, PendingOrder};
/// use iov_iter::buf::{GuestBuf, OwnedIter, SharedRegion};
/// use iov_iter::dio::DirectIo;
/// use iov_iter::kiocb::Kiocb;
/// use iov_iter::{Dest, Errno, Source};
///
/// let ram = Arc::new(SharedRegion::zeroed(64 * 1024)?);
/// let disk = MemDevice::new(8 * 1024);
/// disk.defer_completions(Some(PendingOrder::Reverse));
/// for i in 0..8u64 {
///     ram.fill(i * 1024, 1024, i as u8 + 1)?; // what the guest wrote
///     // A chain of two 512-byte descriptors per request.
///     let buf = GuestBuf::<Source>::new(&ram, [(i * 1024, 512), (i * 1024 + 512, 512)])?;
///     let (mut kiocb, _) = Kiocb::new_async_with(i * 1024, OwnedIter::<Source, _>::new(buf));
///     assert!(disk.submit(&mut kiocb)?.is_queued());
/// }
/// assert_eq!(disk.pending(), 8);
/// // In flight, the guest data may be read but not written from Rust.
/// assert_eq!(ram.write_at(0, b"late").unwrap_err().errno(), Errno::EBUSY);
/// assert_eq!(disk.drive(1)?, 8);
///
/// let mut futs = Vec::new();
/// for i in 0..8u64 {
///     let buf = GuestBuf::<Dest>::new(&ram, [(32 * 1024 + i * 1024, 1024)])?;
///     let (mut kiocb, fut) = Kiocb::new_async_with(i * 1024, OwnedIter::<Dest, _>::new(buf));
///     assert!(disk.submit(&mut kiocb)?.is_queued());
///     futs.push(fut);
/// }
/// for fut in futs {
///     assert_eq!(disk.block_on(fut).result, Ok(1024)); // the buffer is dropped here
/// }
/// let mut back = [0u8; 1024];
/// ram.read_at(32 * 1024 + 5 * 1024, &mut back)?;
/// assert!(back.iter().all(|&b| b == 6));
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[doc(alias = "vring_desc")]
#[doc(alias = "descriptor chain")]
pub struct GuestBuf<D: Direction> {
    segs: Vec<Seg>,
    len: usize,
    log: Option<Arc<dyn DirtyTracker + Send + Sync>>,
    /// Writable addresses were handed out ([`IoBufMut::for_each_seg_mut`]):
    /// whoever took them may have written, so dropping marks the log.
    lent_mut: bool,
    mem: Mem,
    _dir: PhantomData<D>,
}

// SAFETY: the buffer is a list of addresses into memory it holds alive (an
// `Arc` of a `Send + Sync` region, or of `Send + Sync` vm-memory guest
// memory with `Send` pointer guards) and an optional `Send + Sync` dirty
// log; nothing in it is tied to a thread.
unsafe impl<D: Direction> Send for GuestBuf<D> {}
// SAFETY: `&GuestBuf` only reads the address list and lengths.
unsafe impl<D: Direction> Sync for GuestBuf<D> {}

/// `Err(OverlappingRanges)` when two segments share a byte.
fn check_disjoint(segs: &[Seg]) -> Result<()> {
    let mut spans: Vec<(usize, usize)> = segs.iter().map(|s| span(s.ptr, s.len)).collect();
    spans.sort_unstable();
    if spans.windows(2).any(|w| w[0].1 > w[1].0) {
        return Err(Error::OverlappingRanges);
    }
    Ok(())
}

impl<D: Direction> GuestBuf<D> {
    /// A buffer over `(offset, len)` ranges of `region`, in order. See the
    /// type's documentation for the checks.
    ///
    /// # Errors
    ///
    /// `EFAULT` for a range outside the region; for a destination,
    /// [`Error::OverlappingRanges`] (`EINVAL`) when two ranges overlap;
    /// `EBUSY` when a range conflicts with a live [`GuestBuf`] over the
    /// region; [`Error::InvalidArgument`] (`EINVAL`) when the lengths add
    /// up past `usize::MAX` (overlapping source ranges).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use iov_iter::buf::{GuestBuf, IoBuf, SharedRegion};
    /// use iov_iter::{Dest, Errno, Error, Source};
    ///
    /// let ram = Arc::new(SharedRegion::zeroed(16 * 1024)?);
    /// let src = GuestBuf::<Source>::new(&ram, [(0, 512), (8192, 100), (0, 512)])?;
    /// assert_eq!((src.len(), src.nr_segs(), src.bytes_init()), (1124, 3, 1124));
    /// let e = GuestBuf::<Dest>::new(&ram, [(0, 512), (256, 512)]).unwrap_err();
    /// assert_eq!(e, Error::OverlappingRanges);
    /// let e = GuestBuf::<Dest>::new(&ram, [(16 * 1024 - 1, 2)]).unwrap_err();
    /// assert_eq!(e.errno(), Errno::EFAULT);
    /// // A source may overlap another source, not a destination.
    /// let again = GuestBuf::<Source>::new(&ram, [(0, 4096)])?;
    /// assert_eq!(GuestBuf::<Dest>::new(&ram, [(4000, 512)]).unwrap_err().errno(), Errno::EBUSY);
    /// # drop((src, again));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn new(
        region: &Arc<SharedRegion>,
        ranges: impl IntoIterator<Item = (u64, usize)>,
    ) -> Result<GuestBuf<D>> {
        let mut segs = Vec::new();
        let mut len = 0usize;
        for (offset, n) in ranges {
            let start = region.check(offset, n)?;
            if n == 0 {
                continue;
            }
            len = len.checked_add(n).ok_or(Error::InvalidArgument(
                "guest buffer longer than usize::MAX",
            ))?;
            // In bounds (checked above), so not null: the region's base
            // is not, and `start + n <= len` does not wrap.
            let ptr = NonNull::new(region.base.as_ptr().wrapping_add(start)).ok_or(EFAULT)?;
            segs.push(Seg {
                ptr,
                len: n,
                addr: offset,
            });
        }
        if !D::IS_SOURCE {
            check_disjoint(&segs)?;
        }
        let lease = region.lease(&segs, !D::IS_SOURCE)?;
        Ok(GuestBuf {
            segs,
            len,
            log: None,
            lent_mut: false,
            mem: Mem::Region {
                region: Arc::clone(region),
                lease,
            },
            _dir: PhantomData,
        })
    }

    /// The total length in bytes.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use iov_iter::buf::{GuestBuf, SharedRegion};
    /// let ram = Arc::new(SharedRegion::zeroed(8192)?);
    /// assert_eq!(GuestBuf::<iov_iter::Dest>::new(&ram, [(0, 16), (512, 0)])?.len(), 16);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer has no byte.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use iov_iter::buf::{GuestBuf, SharedRegion};
    /// let ram = Arc::new(SharedRegion::zeroed(8192)?);
    /// assert!(GuestBuf::<iov_iter::Dest>::new(&ram, [])?.is_empty());
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number of segments (ranges, minus the empty ones; a range of
    /// vm-memory guest memory that spans regions counts once per region).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use iov_iter::buf::{GuestBuf, SharedRegion};
    /// let ram = Arc::new(SharedRegion::zeroed(8192)?);
    /// let buf = GuestBuf::<iov_iter::Source>::new(&ram, [(0, 16), (512, 0), (64, 8)])?;
    /// assert_eq!(buf.nr_segs(), 2);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn nr_segs(&self) -> usize {
        self.segs.len()
    }

    /// The segments as `(address, len)`, in order: region offsets, or
    /// guest physical addresses for vm-memory guest memory.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use iov_iter::buf::{GuestBuf, SharedRegion};
    /// let ram = Arc::new(SharedRegion::zeroed(8192)?);
    /// let buf = GuestBuf::<iov_iter::Dest>::new(&ram, [(4096, 16), (0, 8)])?;
    /// assert_eq!(buf.ranges().collect::<Vec<_>>(), [(4096, 16), (0, 8)]);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn ranges(&self) -> impl Iterator<Item = (u64, usize)> + '_ {
        self.segs.iter().map(|s| (s.addr, s.len))
    }

    /// Marks the first `n` bytes (over the segments, in order) in the
    /// dirty log and, for vm-memory guest memory, its bitmap.
    fn mark_dirty(&self, mut n: usize) {
        if self.log.is_none() && !self.mem.has_bitmap() {
            return;
        }
        for s in &self.segs {
            if n == 0 {
                break;
            }
            let take = s.len.min(n);
            if let Some(log) = &self.log {
                // An address past usize is past any bitmap: ignored.
                log.mark_dirty(usize::try_from(s.addr).unwrap_or(usize::MAX), take);
            }
            self.mem.mark_dirty(s.addr, take);
            n -= take;
        }
    }
}

impl GuestBuf<Dest> {
    /// Marks the pages this destination's reads land in on `log` (a
    /// [`DirtyBitmap`](crate::dio::DirtyBitmap), a VMM's dirty log for live
    /// migration: `mark_page_dirty`), by the addresses
    /// [`GuestBuf::ranges`] reports: region offsets, so a bitmap over
    /// `(0, region.len())` has bit *i* for page *i* of the region, as a KVM
    /// memory slot's log (guest physical addresses for vm-memory memory).
    ///
    /// When: whenever a read lands ([`IoBufMut::set_init`], which the
    /// owned-I/O completion calls), and again when the buffer is dropped if
    /// writable addresses were ever handed out — a read that failed or was
    /// short may still have written (a device's DMA before its error), and
    /// a sync read marks only then. Always after the write, the order a
    /// migration loop needs (a page copied before its bit was set is copied
    /// again). It marks whole buffers: never fewer pages than were written,
    /// sometimes more.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use iov_iter::backend::mem::MemDevice;
    /// use iov_iter::buf::{GuestBuf, OwnedIter, SharedRegion};
    /// use iov_iter::dio::{DirectIo, DirtyBitmap};
    /// use iov_iter::kiocb::Kiocb;
    /// use iov_iter::Dest;
    ///
    /// let ram = Arc::new(SharedRegion::zeroed(16 * 4096)?);
    /// let log = Arc::new(DirtyBitmap::new(0, ram.len()));
    /// let disk = MemDevice::new(8192);
    /// let buf = GuestBuf::<Dest>::new(&ram, [(3 * 4096, 4096), (9 * 4096 + 512, 512)])?
    ///     .with_dirty_log(log.clone());
    /// let (mut kiocb, fut) = Kiocb::new_async_with(0, OwnedIter::<Dest, _>::new(buf));
    /// assert!(disk.submit(&mut kiocb)?.is_queued());
    /// assert_eq!(disk.block_on(fut).result, Ok(4608));
    /// assert_eq!(log.take_dirty(), [3, 9]);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "mark_page_dirty")]
    #[doc(alias = "mark_page_dirty_in_slot")]
    #[must_use]
    pub fn with_dirty_log(mut self, log: Arc<dyn DirtyTracker + Send + Sync>) -> GuestBuf<Dest> {
        self.log = Some(log);
        self
    }
}

impl<D: Direction> Drop for GuestBuf<D> {
    fn drop(&mut self) {
        if self.lent_mut {
            self.mark_dirty(usize::MAX);
        }
        match &self.mem {
            Mem::Region { region, lease } => region.release(*lease),
            #[cfg(feature = "vm-memory")]
            Mem::Vm { .. } => {}
        }
    }
}

impl<D: Direction> fmt::Debug for GuestBuf<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let memory = match &self.mem {
            Mem::Region { .. } => "region",
            #[cfg(feature = "vm-memory")]
            Mem::Vm { .. } => "vm-memory",
        };
        f.debug_struct("GuestBuf")
            .field("dir", &D::NAME)
            .field("memory", &memory)
            .field("ranges", &self.ranges().collect::<Vec<_>>())
            .field("dirty_log", &self.log.is_some())
            .finish()
    }
}

// SAFETY: the `IoBuf` contract, item by item:
// 1. The segments are fixed at construction and reported the same on every
//    call. Each is inside the memory (checked: `SharedRegion::check`, or
//    vm-memory's `get_slices`), which is valid for reads and initialised
//    for as long as the region / guest memory lives (the constructors'
//    promises, or `from_raw_parts`' caller's), and the buffer holds it
//    alive (an `Arc`; for vm-memory also the pointer guards).
// 2. The addresses are the guest memory's, not the buffer's: moving the
//    buffer moves a `Vec` of addresses.
// 3. Nothing in Rust writes the memory while the buffer lives: the lease
//    (shared for a source, exclusive for a destination) makes the region
//    refuse `write_at` / `fill` and any destination `GuestBuf` over these
//    ranges (vm-memory memory: see `from_guest_memory`). Parties outside
//    Rust may still write (rule 4 of `SharedRegion::from_raw_parts` keeps
//    them only off the bytes under a lent slice): an I/O then reads
//    whatever bytes are there, old or new, through raw addresses, and no
//    Rust reference exists that could be invalidated.
// 4. `GuestBuf` is `Send` (above): the memory may be read from any thread.
unsafe impl<D: Direction> IoBuf for GuestBuf<D> {
    fn for_each_seg(&self, f: &mut dyn FnMut(*const u8, usize)) {
        for s in &self.segs {
            f(s.ptr.as_ptr(), s.len);
        }
    }
    fn bytes_init(&self) -> usize {
        self.len
    }
}

// SAFETY: the `IoBufMut` contract, item by item:
// 1. The segments are valid for writes (as for reads above: the region is
//    valid for both; vm-memory memory was checked for `Permissions::Write`
//    and its writable guards are held), do not overlap (checked at
//    construction: `check_disjoint`, on host addresses), are the same on
//    every call, and are exactly the `IoBuf` segments (all initialised: the
//    memory always is).
// 2. Nothing else in Rust reads or writes them while the buffer lives: the
//    exclusive lease makes the region refuse `read_at`, `write_at`, `fill`
//    and every other `GuestBuf` over them. Parties outside Rust: as in
//    `IoBuf` 3 — the kernel or device writes through raw addresses, the RAM
//    backend through raw copies, so a concurrent writer outside Rust only
//    changes which bytes end up there.
// 3. `set_init` records nothing (the memory is always initialised) and
//    marks the dirty log: it moves and frees nothing.
unsafe impl IoBufMut for GuestBuf<Dest> {
    fn for_each_seg_mut(&mut self, f: &mut dyn FnMut(*mut u8, usize)) {
        self.lent_mut = true;
        for s in &self.segs {
            f(s.ptr.as_ptr(), s.len);
        }
    }
    unsafe fn set_init(&mut self, n: usize) {
        self.mark_dirty(n);
    }
    fn bytes_total(&mut self) -> usize {
        self.len
    }
}

#[cfg(feature = "vm-memory")]
mod vm {
    //! vm-memory guest memory behind a [`GuestBuf`](super::GuestBuf).

    use alloc::sync::Arc;
    use alloc::vec::Vec;

    use vm_memory::bitmap::Bitmap;
    use vm_memory::volatile_memory::{PtrGuard, PtrGuardMut};
    use vm_memory::{GuestAddress, GuestMemory, Permissions};

    /// Guest memory held alive, type-erased, that marks its own bitmap.
    pub(super) trait Marker: Send + Sync {
        /// `len` bytes at guest address `addr` were (or may have been)
        /// written behind vm-memory's back (through raw addresses, which
        /// its bitmap does not see).
        fn mark_dirty(&self, addr: u64, len: usize);
    }

    /// The guest memory, held through the caller's `Arc`.
    pub(super) struct Held<M>(pub(super) Arc<M>);

    impl<M: GuestMemory + Send + Sync + 'static> Marker for Held<M> {
        fn mark_dirty(&self, addr: u64, len: usize) {
            let Ok(slices) = self
                .0
                .get_slices(GuestAddress(addr), len, Permissions::Write)
            else {
                return;
            };
            for s in slices.flatten() {
                s.bitmap().mark_dirty(0, s.len());
            }
        }
    }

    /// vm-memory's pointer guards: without its `xen` feature an address
    /// and a length; with it, also the on-demand mapping of a Xen grant
    /// or foreign region, unmapped when the guard is dropped. Held for the
    /// buffer's life, so the addresses stay mapped.
    pub(super) enum Guard {
        Read(PtrGuard),
        Write(PtrGuardMut),
    }

    impl Guard {
        pub(super) fn as_ptr(&self) -> *mut u8 {
            match self {
                Guard::Read(g) => g.as_ptr().cast_mut(),
                Guard::Write(g) => g.as_ptr(),
            }
        }
    }

    pub(super) struct Guards {
        pub(super) _held: Vec<Guard>,
    }

    // SAFETY: a guard is an address and a length, plus (Xen) a mapping
    // made through a file it owns, which any thread may unmap; the guards
    // are only dropped, never used to reach memory from two threads.
    unsafe impl Send for Guards {}
    // SAFETY: `&Guards` is never used (the guards are only held).
    unsafe impl Sync for Guards {}
}

#[cfg(feature = "vm-memory")]
impl<D: Direction> GuestBuf<D> {
    /// A buffer over `(GuestAddress, len)` ranges of vm-memory guest memory
    /// (a `GuestMemoryMmap`, or any `GuestMemory`, with an IOMMU or not)
    /// held in an [`Arc`]. Each range is translated and checked by
    /// vm-memory (`GuestMemory::get_slices`, for `Permissions::Read` for a
    /// source, `Permissions::Write` for a destination); one that spans
    /// regions becomes a segment per region. Requires the `vm-memory`
    /// feature.
    ///
    /// From a `GuestMemoryAtomic`, `atomic.memory().into_inner()` is the
    /// `Arc` of the current memory map: the buffer keeps that map (and its
    /// regions) alive even after a hot-plug replaces it.
    ///
    /// # Lifetime
    ///
    /// vm-memory promises that a `VolatileSlice<'a>` from `&'a M` points to
    /// memory valid for `'a`. The buffer keeps a clone of the `Arc`, so `M`
    /// is neither moved nor dropped, and no `&mut M` can exist while it
    /// lives (`Arc::get_mut` refuses a shared `Arc`): any `'a` up to the
    /// buffer's drop could have been the slices' borrow, and an `M` cannot
    /// tell a borrow kept from one given up, so the addresses stay valid
    /// for the buffer's life. (An `M` whose `&self` methods unmap memory
    /// would break vm-memory's own contract.) The buffer also keeps
    /// vm-memory's pointer guards (`PtrGuard`), which hold on-demand Xen
    /// mappings. With an IOMMU, the buffer keeps the translation made here
    /// (as a device does for a DMA it has started).
    ///
    /// Writes through these addresses bypass vm-memory's dirty bitmap, so a
    /// destination marks the bitmap itself (`Bitmap::mark_dirty` on the
    /// slices), when and as [`GuestBuf::with_dirty_log`] says; a
    /// `GuestMemoryMmap<()>` has no bitmap, and marking costs nothing.
    ///
    /// # What the lease cannot cover
    ///
    /// vm-memory's accessors (`Bytes::write_slice`, `VolatileSlice::copy_from`,
    /// ...) are safe and know nothing of this buffer, so no lease is taken:
    /// the exclusion Rust code gets over a [`SharedRegion`] is vm-memory's
    /// model here, where all guest memory is volatile memory that anyone
    /// may touch. Don't write a range through vm-memory while a buffer over
    /// it is in flight on a backend that copies in Rust (the RAM backend);
    /// the kernel backends copy outside Rust and are unaffected.
    ///
    /// # Errors
    ///
    /// `EFAULT` for a range vm-memory refuses (not backed by guest memory,
    /// or not accessible for the direction); for a destination,
    /// [`Error::OverlappingRanges`] (`EINVAL`) when two ranges overlap in
    /// host memory; [`Error::InvalidArgument`] (`EINVAL`) when the lengths
    /// add up past `usize::MAX`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
    /// use iov_iter::backend::mem::MemDevice;
    /// use iov_iter::buf::{GuestBuf, OwnedIter};
    /// use iov_iter::dio::DirectIo;
    /// use iov_iter::kiocb::Kiocb;
    /// use iov_iter::{Dest, Errno};
    ///
    /// // Two regions: 64 KiB at 0, 64 KiB at 1 MiB.
    /// let mem = Arc::new(
    ///     GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x10000), (GuestAddress(0x10_0000), 0x10000)])
    ///         .unwrap(),
    /// );
    /// let disk = MemDevice::new(4096);
    /// disk.write_at(0, &[7u8; 4096]);
    /// let buf = GuestBuf::<Dest>::from_guest_memory(&mem, [(GuestAddress(0x10_0000), 4096)])?;
    /// let (mut kiocb, fut) = Kiocb::new_async_with(0, OwnedIter::<Dest, _>::new(buf));
    /// assert!(disk.submit(&mut kiocb)?.is_queued());
    /// assert_eq!(disk.block_on(fut).result, Ok(4096));
    /// let mut back = [0u8; 4096];
    /// mem.read_slice(&mut back, GuestAddress(0x10_0000)).unwrap();
    /// assert_eq!(back, [7u8; 4096]);
    /// // Between the regions there is no memory.
    /// let e = GuestBuf::<Dest>::from_guest_memory(&mem, [(GuestAddress(0x2_0000), 512)]).unwrap_err();
    /// assert_eq!(e.errno(), Errno::EFAULT);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "VolatileSlice")]
    #[doc(alias = "get_slices")]
    pub fn from_guest_memory<M>(
        mem: &Arc<M>,
        ranges: impl IntoIterator<Item = (vm_memory::GuestAddress, usize)>,
    ) -> Result<GuestBuf<D>>
    where
        M: vm_memory::GuestMemory + Send + Sync + 'static,
    {
        use vm_memory::Permissions;
        let access = if D::IS_SOURCE {
            Permissions::Read
        } else {
            Permissions::Write
        };
        let mut segs = Vec::new();
        let mut guards = Vec::new();
        let mut len = 0usize;
        for (addr, n) in ranges {
            if n == 0 {
                continue;
            }
            len = len.checked_add(n).ok_or(Error::InvalidArgument(
                "guest buffer longer than usize::MAX",
            ))?;
            let slices = mem.get_slices(addr, n, access).map_err(|_| EFAULT)?;
            let (mut at, mut got) = (addr.0, 0usize);
            for s in slices {
                let s = s.map_err(|_| EFAULT)?;
                let guard = if D::IS_SOURCE {
                    vm::Guard::Read(s.ptr_guard())
                } else {
                    vm::Guard::Write(s.ptr_guard_mut())
                };
                let ptr = NonNull::new(guard.as_ptr()).ok_or(EFAULT)?;
                segs.push(Seg {
                    ptr,
                    len: s.len(),
                    addr: at,
                });
                guards.push(guard);
                at = at.wrapping_add(s.len() as u64);
                got += s.len();
            }
            // vm-memory: without an error, the slices cover `n` bytes.
            if got != n {
                return Err(EFAULT);
            }
        }
        if !D::IS_SOURCE {
            check_disjoint(&segs)?;
        }
        Ok(GuestBuf {
            segs,
            len,
            log: None,
            lent_mut: false,
            mem: Mem::Vm {
                _guards: vm::Guards { _held: guards },
                mem: Box::new(vm::Held(Arc::clone(mem))),
            },
            _dir: PhantomData,
        })
    }
}

static_assertions::assert_impl_all!(SharedRegion: Send, Sync);
static_assertions::assert_impl_all!(GuestBuf<Dest>: Send, Sync);
static_assertions::assert_impl_all!(GuestBuf<crate::Source>: Send, Sync);
