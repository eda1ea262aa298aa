//! Memory regions to register with a [`Uffd`]: anonymous private memory,
//! and a memfd (shmem) mapped twice (a "user" mapping to register and an
//! unregistered "alias" of the same pages).
//!
//! Regions hand out raw pointers only, never references: once registered,
//! the contents are decided by the fault handler and the kernel, so treat
//! them like volatile memory.

use core::ffi::c_void;
use core::ptr::{NonNull, null_mut};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{FallocateFlags, MemfdFlags, fallocate, ftruncate, memfd_create};
use rustix::mm::{Advice, MapFlags, ProtFlags, madvise, mmap, mmap_anonymous, munmap};

use super::error::{Error, Result};
use super::fd::{Ioctls, RegisterMode, Uffd};
use super::range::{Range, page_size};

/// One private anonymous read/write mapping.
#[derive(Debug)]
pub struct AnonRegion {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the region is raw memory reached only through raw pointers; the
// handle itself (address + length) can move and be shared between threads.
unsafe impl Send for AnonRegion {}
// SAFETY: as above; the `&self` methods are syscalls that the kernel
// serialises.
unsafe impl Sync for AnonRegion {}

impl AnonRegion {
    /// Maps `len` bytes (a non-zero multiple of the page size).
    pub fn new(len: usize) -> Result<AnonRegion> {
        Range::new(0, len)?;
        // SAFETY: a fresh anonymous mapping at a kernel-chosen address does
        // not touch any existing memory.
        let ptr = unsafe {
            mmap_anonymous(
                null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }
        .map_err(Error::os("mmap"))?;
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(Error::Unsupported("mmap returned NULL"))?;
        Ok(AnonRegion { ptr, len })
    }

    /// First byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The whole region.
    pub fn range(&self) -> Range {
        Range::from_mapping(self.ptr.as_ptr() as usize, self.len)
    }

    /// Pages `first .. first + count` of the region.
    pub fn pages(&self, first: usize, count: usize) -> Result<Range> {
        sub_range(self.range(), first, count)
    }

    /// Registers the whole region on `uffd`.
    pub fn register(&self, uffd: &Uffd, mode: RegisterMode) -> Result<Ioctls> {
        // SAFETY: we own the mapping and hand out only raw pointers into it,
        // so no Rust reference can observe contents the handler decides.
        unsafe { uffd.register(self.range(), mode) }
    }

    /// `MADV_DONTNEED`: throw the pages away; the next access of a
    /// registered region is a MISSING fault (unregistered: zero page).
    pub fn drop_pages(&self, range: Range) -> Result<()> {
        check_inside(self.range(), range)?;
        // SAFETY: the range lies inside our own mapping, which nobody holds
        // references into; discarding its pages is what the caller asked.
        unsafe {
            madvise(
                range.start() as *mut c_void,
                range.len(),
                Advice::LinuxDontNeed,
            )
        }
        .map_err(Error::os("madvise(MADV_DONTNEED)"))
    }
}

impl Drop for AnonRegion {
    fn drop(&mut self) {
        // SAFETY: we created this mapping and nothing refers into it any
        // more. Unmapping also drops any uffd registration of it.
        let _ = unsafe { munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// A memfd (shmem) of `len` bytes mapped shared twice: `user` (to register)
/// and `alias` (never registered; same page-cache pages).
#[derive(Debug)]
pub struct MemfdRegion {
    fd: OwnedFd,
    user: NonNull<u8>,
    alias: NonNull<u8>,
    len: usize,
}

// SAFETY: raw shared memory reached only through raw pointers, plus an fd;
// the handle can move and be shared between threads.
unsafe impl Send for MemfdRegion {}
// SAFETY: as above.
unsafe impl Sync for MemfdRegion {}

impl MemfdRegion {
    /// Creates a memfd named `name` of `len` bytes (non-zero multiple of
    /// the page size) and maps it twice.
    pub fn new(name: &str, len: usize) -> Result<MemfdRegion> {
        Range::new(0, len)?;
        let fd = memfd_create(name, MemfdFlags::CLOEXEC).map_err(Error::os("memfd_create"))?;
        ftruncate(&fd, len as u64).map_err(Error::os("ftruncate"))?;
        let map = |fd: &OwnedFd| -> Result<NonNull<u8>> {
            // SAFETY: a fresh shared mapping of our own memfd at a
            // kernel-chosen address does not touch existing memory.
            let p = unsafe {
                mmap(
                    null_mut(),
                    len,
                    ProtFlags::READ | ProtFlags::WRITE,
                    MapFlags::SHARED,
                    fd,
                    0,
                )
            }
            .map_err(Error::os("mmap(memfd)"))?;
            NonNull::new(p.cast::<u8>()).ok_or(Error::Unsupported("mmap returned NULL"))
        };
        let user = map(&fd)?;
        let alias = match map(&fd) {
            Ok(a) => a,
            Err(e) => {
                // SAFETY: `user` was just mapped by us and is not used.
                let _ = unsafe { munmap(user.as_ptr().cast(), len) };
                return Err(e);
            }
        };
        Ok(MemfdRegion {
            fd,
            user,
            alias,
            len,
        })
    }

    /// The memfd.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// First byte of the user mapping.
    pub fn user_ptr(&self) -> *mut u8 {
        self.user.as_ptr()
    }

    /// First byte of the alias mapping.
    pub fn alias_ptr(&self) -> *mut u8 {
        self.alias.as_ptr()
    }

    /// The whole user mapping.
    pub fn user_range(&self) -> Range {
        Range::from_mapping(self.user.as_ptr() as usize, self.len)
    }

    /// Pages `first .. first + count` of the user mapping.
    pub fn user_pages(&self, first: usize, count: usize) -> Result<Range> {
        sub_range(self.user_range(), first, count)
    }

    /// File offset of a user-mapping address, if inside.
    pub fn offset_of(&self, user_addr: usize) -> Option<usize> {
        let start = self.user.as_ptr() as usize;
        (user_addr >= start && user_addr < start + self.len).then(|| user_addr - start)
    }

    /// Registers the user mapping on `uffd` (typically MISSING | MINOR).
    pub fn register(&self, uffd: &Uffd, mode: RegisterMode) -> Result<Ioctls> {
        // SAFETY: we own the mapping and hand out only raw pointers into it.
        unsafe { uffd.register(self.user_range(), mode) }
    }

    /// `fallocate(PUNCH_HOLE | KEEP_SIZE)`: frees the page-cache pages at
    /// file `offset .. offset + len` and zaps them from both mappings; the
    /// next user-mapping access is a MISSING fault.
    pub fn punch_hole(&self, offset: usize, len: usize) -> Result<()> {
        check_offsets(self.len, offset, len)?;
        fallocate(
            &self.fd,
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            offset as u64,
            len as u64,
        )
        .map_err(Error::os("fallocate(PUNCH_HOLE)"))
    }

    /// `MADV_DONTNEED` on the user mapping only: removes its page-table
    /// entries but keeps the page cache; the next user access is a MINOR
    /// fault (when registered MINOR).
    pub fn zap_user(&self, range: Range) -> Result<()> {
        check_inside(self.user_range(), range)?;
        // SAFETY: the range lies inside our own shared mapping; on a shared
        // mapping DONTNEED drops only page-table entries, no data.
        unsafe {
            madvise(
                range.start() as *mut c_void,
                range.len(),
                Advice::LinuxDontNeed,
            )
        }
        .map_err(Error::os("madvise(MADV_DONTNEED)"))
    }
}

impl Drop for MemfdRegion {
    fn drop(&mut self) {
        // SAFETY: we created both mappings and nothing refers into them.
        unsafe {
            let _ = munmap(self.user.as_ptr().cast(), self.len);
            let _ = munmap(self.alias.as_ptr().cast(), self.len);
        }
    }
}

fn sub_range(whole: Range, first: usize, count: usize) -> Result<Range> {
    let ps = page_size();
    let bad = Error::BadRange {
        start: first,
        len: count,
    };
    let off = first.checked_mul(ps).ok_or(bad)?;
    let len = count.checked_mul(ps).ok_or(bad)?;
    let r = Range::new(whole.start().checked_add(off).ok_or(bad)?, len)?;
    check_inside(whole, r)?;
    Ok(r)
}

fn check_inside(whole: Range, r: Range) -> Result<()> {
    if whole.contains(&r) {
        Ok(())
    } else {
        Err(Error::BadRange {
            start: r.start(),
            len: r.len(),
        })
    }
}

fn check_offsets(total: usize, offset: usize, len: usize) -> Result<()> {
    Range::new(offset, len)?;
    match offset.checked_add(len) {
        Some(end) if end <= total => Ok(()),
        _ => Err(Error::BadRange { start: offset, len }),
    }
}
