//! `import_iovec`: build an iterator from a caller-supplied array of
//! `(base, len)` pairs, as a syscall server or a VMM receives them.
//!
//! Linux reference: `lib/iov_iter.c` (`__import_iovec`, `iovec_from_user`,
//! `import_ubuf`), `include/uapi/linux/uio.h` (`UIO_FASTIOV`, `UIO_MAXIOV`).

use smallvec::SmallVec;

use crate::any::AnyIter;
use crate::dir::Direction;
use crate::error::{Error, Result};
use crate::iter::{IovIter, MAX_RW_COUNT};
use crate::seg::{IoSeg, UserIovec};

/// Segments that stay on the stack (`UIO_FASTIOV`).
pub const UIO_FASTIOV: usize = 8;
/// Most segments one call accepts (`UIO_MAXIOV`, `IOV_MAX`).
#[doc(alias = "IOV_MAX")]
pub const UIO_MAXIOV: usize = 1024;

static_assertions::assert_eq_size!(UserIovec, IoSeg<'static>);

/// Storage for the imported segment array: up to [`UIO_FASTIOV`] segments
/// inline (no heap allocation), more on the heap (the kernel's on-stack
/// `iovstack` and its `kmalloc`ed spill).
#[derive(Debug, Default)]
pub struct IovecArray {
    segs: SmallVec<[UserIovec; UIO_FASTIOV]>,
}

impl IovecArray {
    /// An empty array; allocates nothing.
    pub fn new() -> Self {
        IovecArray {
            segs: SmallVec::new(),
        }
    }
    /// Whether the segments spilled to the heap (more than [`UIO_FASTIOV`]).
    pub fn spilled(&self) -> bool {
        self.segs.spilled()
    }
    /// Segments held (after import, with clamped lengths).
    pub fn len(&self) -> usize {
        self.segs.len()
    }
    /// Whether no segment is held.
    pub fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }
}

/// Checks one pair like `copy_iovec_from_user` (a length that is negative as
/// `ssize_t` is EINVAL).
fn check_len(index: usize, v: &UserIovec) -> Result<()> {
    if v.len > isize::MAX as usize {
        return Err(Error::SegmentTooLong { index, len: v.len });
    }
    Ok(())
}

/// One past the highest user address the kernel's `access_ok` accepts on
/// this architecture (`TASK_SIZE_MAX`), where it is fixed: x86-64 with
/// 4-level paging, `2^47 - 4096` (the 5-level paging limit, `2^56 - 4096`,
/// is only reached by memory mapped with a hint above `2^47`, and is
/// refused here); arm64 with 48-bit virtual addresses, `2^48`. `None`:
/// only wrapping ranges are refused.
pub const USER_ADDR_END: Option<usize> = user_addr_end();

const fn user_addr_end() -> Option<usize> {
    if cfg!(all(target_arch = "x86_64", target_pointer_width = "64")) {
        Some((1usize << 47) - 4096)
    } else if cfg!(all(target_arch = "aarch64", target_pointer_width = "64")) {
        Some(1usize << 48)
    } else {
        None
    }
}

/// Checks one pair like `access_ok`: a non-empty range must lie below
/// [`USER_ADDR_END`] without wrapping ([`Error::BadAddress`], EFAULT), and
/// needs a non-null base ([`Error::NullSegment`], EFAULT; the kernel lets
/// NULL through and faults during the copy instead, see [`import_iovec`]).
fn access_ok(index: usize, base: *mut u8, len: usize) -> Result<()> {
    if len == 0 {
        return Ok(());
    }
    if base.is_null() {
        return Err(Error::NullSegment { index });
    }
    let end = (base as usize).checked_add(len);
    match (end, USER_ADDR_END) {
        (None, _) => Err(Error::BadAddress { index }),
        (Some(end), Some(top)) if end > top => Err(Error::BadAddress { index }),
        _ => Ok(()),
    }
}

/// Builds an iterator over `uvec` (`import_iovec`), with the kernel's rules:
///
/// - 0 segments: an empty iterator;
/// - more than [`UIO_MAXIOV`] (1024): [`Error::TooManySegments`] (EINVAL);
/// - a length above `isize::MAX`: [`Error::SegmentTooLong`] (EINVAL);
/// - a non-empty range that wraps the address space or reaches past the
///   user address space ([`USER_ADDR_END`], the kernel's `TASK_SIZE_MAX`):
///   [`Error::BadAddress`] (EFAULT, as `access_ok`);
/// - a null base with a non-zero length: [`Error::NullSegment`] (EFAULT).
///   This differs from the kernel, whose `access_ok` lets NULL through (it
///   is a user address) so that the copy faults at the first byte and the
///   syscall returns what it copied before (a short transfer, or EFAULT if
///   nothing was). A userspace iterator cannot take a fault and carry on:
///   touching unmapped memory is undefined behaviour, not an error. So the
///   crate refuses the whole array, before building anything, for the one
///   address it knows can never be mapped; any other unmapped address is
///   the caller's promise (see Safety);
/// - the total is clamped to [`MAX_RW_COUNT`] by shortening the segment that
///   crosses it (later segments become empty);
/// - exactly one segment becomes a [`Ubuf`](crate::Ubuf) (clamped the same
///   way), the rest an [`Iovec`](crate::Iovec) iterator;
/// - up to [`UIO_FASTIOV`] (8) segments are held in `storage` without a heap
///   allocation.
///
/// # Safety
///
/// For `'a`, each pair that is accepted must describe memory that:
/// - is valid for reads of `len` bytes (a [`Source`](crate::Source)
///   iterator) or reads and writes (a [`Dest`](crate::Dest) iterator);
/// - is not written by anything else (a source), or not accessed by
///   anything else and not overlapped by another pair (a destination).
///
/// # Examples
///
/// ```
/// use iov_iter::{import_iovec, AnyIter, IovecArray, Source, UserIovec};
/// let (a, b) = (*b"head", *b"tail");
/// let raw = [UserIovec::new(a.as_ptr().cast_mut(), 4), UserIovec::new(b.as_ptr().cast_mut(), 4)];
/// let mut storage = IovecArray::new();
/// // SAFETY: `a` and `b` outlive the iterator and nothing writes them.
/// let mut it = unsafe { import_iovec::<Source>(&raw, &mut storage)? };
/// assert!(matches!(it, AnyIter::Iovec(_)));
/// let mut out = [0u8; 8];
/// assert_eq!(it.copy_from_iter(&mut out), 8);
/// assert_eq!(&out, b"headtail");
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[doc(alias = "__import_iovec")]
#[doc(alias = "iovec_from_user")]
pub unsafe fn import_iovec<'a, D: Direction>(
    uvec: &[UserIovec],
    storage: &'a mut IovecArray,
) -> Result<AnyIter<'a, D>> {
    storage.segs.clear();
    if uvec.len() == 1 {
        // The ITER_UBUF fast path (`__import_iovec_ubuf` + `import_ubuf`).
        let v = uvec[0];
        check_len(0, &v)?;
        let len = v.len.min(MAX_RW_COUNT);
        access_ok(0, v.base, len)?;
        // SAFETY: the caller promises the pair is valid for 'a as the
        // direction needs; the clamped length is no longer than promised.
        return Ok(AnyIter::Ubuf(unsafe { IovIter::from_raw_buf(v.base, len) }));
    }
    if uvec.len() > UIO_MAXIOV {
        return Err(Error::TooManySegments(uvec.len()));
    }
    // `iovec_from_user` reads (and length-checks) the whole array first.
    for (i, v) in uvec.iter().enumerate() {
        check_len(i, v)?;
    }
    storage.segs.reserve_exact(uvec.len());
    let mut total = 0usize;
    for (i, v) in uvec.iter().enumerate() {
        access_ok(i, v.base, v.len)?;
        // OVERFLOW: total <= MAX_RW_COUNT, so the subtraction cannot wrap.
        let len = v.len.min(MAX_RW_COUNT - total);
        total += len;
        storage.segs.push(UserIovec { base: v.base, len });
    }
    // SAFETY: `storage` holds `len` initialised pairs laid out as
    // `struct iovec` (`UserIovec` is what `IoSeg` wraps), borrowed for 'a and
    // not modified meanwhile, whose lengths add up to `total`; the memory
    // promise is the caller's.
    Ok(AnyIter::Iovec(unsafe {
        IovIter::from_raw_iovecs_counted(
            storage.segs.as_ptr().cast::<IoSeg<'a>>(),
            storage.segs.len(),
            total,
        )
    }))
}
