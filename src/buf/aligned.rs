//! [`AlignedBuf`]: a heap buffer of any length at any power-of-two
//! alignment, for `O_DIRECT`.

use alloc::alloc::{Layout, alloc, alloc_zeroed, dealloc};
use core::fmt;
use core::mem::MaybeUninit;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

use super::{IoBuf, IoBufMut};
use crate::dio::DioAlign;
use crate::error::{Errno, Error, Result};

/// A heap buffer whose address is aligned to a power of two, of any
/// capacity, with a length of initialised bytes like a `Vec<u8>`: the
/// memory direct I/O wants (`posix_memalign` plus a length).
///
/// [`AlignedBuf::with_capacity`] leaves the memory uninitialised (a read
/// then fills it without a zeroing pass); [`AlignedBuf::zeroed`] zeroes it.
/// It dereferences to its initialised bytes (`&[u8]` / `&mut [u8]`).
///
/// # Examples
///
/// ```
/// use iov_iter::buf::AlignedBuf;
/// use iov_iter::dio::DioAlign;
///
/// let mut buf = AlignedBuf::zeroed(4096, 8192)?;
/// assert_eq!(buf.as_ptr() as usize % 4096, 0);
/// buf[..5].copy_from_slice(b"hello");
/// assert_eq!(&buf[..5], b"hello");
///
/// // Room for 64 KiB for a file that takes 512-byte aligned memory,
/// // nothing initialised: page-aligned all the same (see `for_dio`).
/// let empty = AlignedBuf::for_dio(DioAlign::new(512, 512)?, 65536)?;
/// assert_eq!((empty.len(), empty.capacity(), empty.align()), (0, 65536, 4096));
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[doc(alias = "posix_memalign")]
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
    cap: usize,
    align: usize,
}

// SAFETY: the buffer owns its allocation exclusively, like a `Vec<u8>`.
unsafe impl Send for AlignedBuf {}
// SAFETY: `&AlignedBuf` only reads.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    fn layout(align: usize, cap: usize) -> Result<Layout> {
        if !align.is_power_of_two() {
            return Err(Error::InvalidArgument("alignment must be a power of two"));
        }
        Layout::from_size_align(cap, align)
            .map_err(|_| Error::InvalidArgument("buffer too large for its alignment"))
    }

    fn allocate(align: usize, cap: usize, zero: bool) -> Result<AlignedBuf> {
        let layout = AlignedBuf::layout(align, cap)?;
        let ptr = if cap == 0 {
            // A dangling pointer at the alignment: nothing is allocated.
            NonNull::new(core::ptr::without_provenance_mut::<u8>(align))
                .ok_or(Error::InvalidArgument("alignment 0"))?
        } else {
            // SAFETY: the layout has a non-zero size.
            let raw = unsafe {
                if zero {
                    alloc_zeroed(layout)
                } else {
                    alloc(layout)
                }
            };
            NonNull::new(raw).ok_or(Error::Os(Errno::ENOMEM))?
        };
        Ok(AlignedBuf {
            ptr,
            len: if zero { cap } else { 0 },
            cap,
            align,
        })
    }

    /// Room for `cap` bytes at an address aligned to `align`, none of them
    /// initialised (length 0).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] (EINVAL) when `align` is not a power of
    /// two or `cap` rounded up to it overflows `isize`;
    /// `Error::Os(Errno::ENOMEM)` when the memory cannot be had.
    pub fn with_capacity(align: usize, cap: usize) -> Result<AlignedBuf> {
        AlignedBuf::allocate(align, cap, false)
    }

    /// `len` zero bytes at an address aligned to `align` (length `len`).
    ///
    /// # Errors
    ///
    /// As [`AlignedBuf::with_capacity`].
    pub fn zeroed(align: usize, len: usize) -> Result<AlignedBuf> {
        AlignedBuf::allocate(align, len, true)
    }

    /// Room for `cap` bytes for direct I/O under `align`, uninitialised:
    /// at its memory alignment ([`DioAlign::mem`]) or the page size,
    /// whichever is larger. Page alignment costs nothing the kernel can
    /// see and spares it a segment per page boundary crossed (a 4 KiB
    /// buffer at a 512-byte boundary pins two pages); it also keeps clear
    /// of drivers that mishandle partial-page segments: on Linux 6.18, a
    /// 4 KiB `O_DIRECT` read from zram into a buffer 512 bytes into a page
    /// overwrites the rest of both pages it touches, though `statx`
    /// reports 512-byte memory alignment. For exactly `align.mem`, use
    /// [`AlignedBuf::with_capacity`].
    ///
    /// ```
    /// use iov_iter::buf::AlignedBuf;
    /// use iov_iter::dio::DioAlign;
    ///
    /// let buf = AlignedBuf::for_dio(DioAlign::new(512, 512)?, 4096)?;
    /// assert_eq!(buf.as_ptr() as usize % 4096, 0);
    /// let big = AlignedBuf::for_dio(DioAlign::new(8192, 512)?, 8192)?;
    /// assert_eq!(big.as_ptr() as usize % 8192, 0);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`AlignedBuf::with_capacity`].
    pub fn for_dio(align: DioAlign, cap: usize) -> Result<AlignedBuf> {
        AlignedBuf::with_capacity((align.mem as usize).max(crate::PAGE_SIZE), cap)
    }

    /// A copy of `bytes` at an address aligned to `align`.
    ///
    /// # Errors
    ///
    /// As [`AlignedBuf::with_capacity`].
    pub fn from_slice(align: usize, bytes: &[u8]) -> Result<AlignedBuf> {
        let mut buf = AlignedBuf::with_capacity(align, bytes.len())?;
        buf.spare_capacity_mut()[..bytes.len()]
            .iter_mut()
            .zip(bytes)
            .for_each(|(d, &s)| {
                d.write(s);
            });
        buf.len = bytes.len();
        Ok(buf)
    }

    /// Initialised bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no byte is initialised.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes the buffer holds, initialised or not.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// The alignment of the address.
    pub fn align(&self) -> usize {
        self.align
    }

    /// The address of the first byte.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// The initialised bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the first `len` bytes of the allocation are initialised.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The initialised bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above; `&mut self` is the only access.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes past the length, possibly uninitialised.
    pub fn spare_capacity_mut(&mut self) -> &mut [MaybeUninit<u8>] {
        // SAFETY: `len <= cap`, so the range is inside the allocation;
        // `MaybeUninit` needs no initialisation.
        unsafe {
            core::slice::from_raw_parts_mut(
                self.ptr.as_ptr().add(self.len).cast::<MaybeUninit<u8>>(),
                self.cap - self.len,
            )
        }
    }

    /// Sets the length to `len` (at most the capacity), zeroing the bytes
    /// that become part of it, as `Vec::resize(len, 0)` does.
    pub fn resize_zeroed(&mut self, len: usize) {
        let len = len.min(self.cap);
        if len > self.len {
            let grow = len - self.len;
            self.spare_capacity_mut()[..grow].iter_mut().for_each(|b| {
                b.write(0);
            });
        }
        self.len = len;
    }

    /// Drops the length to 0, keeping the memory.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if self.cap != 0 {
            // SAFETY: allocated in `allocate` with this layout (validated
            // there), and not freed since.
            unsafe {
                dealloc(
                    self.ptr.as_ptr(),
                    Layout::from_size_align_unchecked(self.cap, self.align),
                );
            }
        }
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

impl fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .field("capacity", &self.cap)
            .field("align", &self.align)
            .finish()
    }
}

// SAFETY: the allocation is owned exclusively, does not move with the
// value, and its first `len` bytes are initialised.
unsafe impl IoBuf for AlignedBuf {
    fn for_each_seg(&self, f: &mut dyn FnMut(*const u8, usize)) {
        f(self.ptr.as_ptr(), self.len);
    }
    fn bytes_init(&self) -> usize {
        self.len
    }
}

// SAFETY: the whole capacity is writable and reached only through this
// value; it starts with the initialised bytes; `set_init` only grows the
// length, within the capacity.
unsafe impl IoBufMut for AlignedBuf {
    fn for_each_seg_mut(&mut self, f: &mut dyn FnMut(*mut u8, usize)) {
        f(self.ptr.as_ptr(), self.cap);
    }
    unsafe fn set_init(&mut self, n: usize) {
        if n > self.len {
            self.len = n.min(self.cap);
        }
    }
}
