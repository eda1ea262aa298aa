//! `std::io` interop (feature `std`): a source iterator is a
//! [`Read`](std::io::Read), a destination iterator a
//! [`Write`](std::io::Write), and `IoSlice` / `IoSliceMut` arrays become
//! [`Iovec`] iterators without copying.

use std::io::{self, IoSlice, IoSliceMut};

use crate::dir::{Dest, Source};
use crate::iter::IovIter;
use crate::seg::{IoSeg, IoSegMut, Iovec, Kind};

/// Reading drains the iterator (`copy_from_iter`); 0 means it is empty.
impl<K: Kind> io::Read for IovIter<'_, Source, K> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.copy_from_iter(buf))
    }
}

/// Writing fills the iterator (`copy_to_iter`); 0 means it is full, so
/// `write_all` past the end fails with `WriteZero`.
impl<K: Kind> io::Write for IovIter<'_, Dest, K> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(self.copy_to_iter(buf))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> IovIter<'a, Source, Iovec> {
    /// A source iterator over std `IoSlice`s, without copying the array.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{IoSlice, Read};
    /// use iov_iter::{IovIter, Iovec, Source};
    /// let bufs = [IoSlice::new(b"ab"), IoSlice::new(b"cd")];
    /// let mut it = IovIter::<Source, Iovec>::from_io_slices(&bufs);
    /// let mut s = String::new();
    /// it.read_to_string(&mut s)?;
    /// assert_eq!(s, "abcd");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_io_slices(bufs: &'a [IoSlice<'_>]) -> Self {
        // SAFETY: on Unix `IoSlice` is guaranteed ABI-compatible with
        // `struct iovec` (https://doc.rust-lang.org/1.85.0/std/io/struct.IoSlice.html),
        // as is `IoSeg` (asserted in `seg.rs`), and both borrow `[u8]` for
        // their lifetime.
        let segs = unsafe { &*(core::ptr::from_ref(bufs) as *const [IoSeg<'_>]) };
        IovIter::<Source, Iovec>::new(segs)
    }
}

impl<'a> IovIter<'a, Dest, Iovec> {
    /// A destination iterator over std `IoSliceMut`s, without copying the
    /// array.
    pub fn from_io_slices_mut(bufs: &'a mut [IoSliceMut<'_>]) -> Self {
        // SAFETY: `IoSliceMut` is guaranteed ABI-compatible with
        // `struct iovec` on Unix, as is `IoSegMut`, and both are exclusive
        // borrows of disjoint `[u8]`.
        let segs = unsafe { &mut *(core::ptr::from_mut(bufs) as *mut [IoSegMut<'_>]) };
        IovIter::<Dest, Iovec>::new(segs)
    }
}

impl<'a> From<&'a [IoSlice<'_>]> for IovIter<'a, Source, Iovec> {
    fn from(bufs: &'a [IoSlice<'_>]) -> Self {
        Self::from_io_slices(bufs)
    }
}

impl<'a> From<&'a mut [IoSliceMut<'_>]> for IovIter<'a, Dest, Iovec> {
    fn from(bufs: &'a mut [IoSliceMut<'_>]) -> Self {
        Self::from_io_slices_mut(bufs)
    }
}
