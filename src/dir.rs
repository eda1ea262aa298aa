//! Direction markers: [`Source`] (`ITER_SOURCE`, `WRITE`) and [`Dest`]
//! (`ITER_DEST`, `READ`).
//!
//! Linux reference: `include/linux/uio.h` (`ITER_SOURCE`, `ITER_DEST`,
//! `iov_iter_rw`).
//!
//! The kernel stores the direction in a field and checks it at run time: a
//! `copy_to_iter` on a source iterator warns once and copies nothing. Here the
//! direction is a type parameter, so the same mistake does not compile:
//!
//! ```compile_fail,E0599
//! use iov_iter::{IovIter, Kvec, IoSeg, Source};
//! let data = [0u8; 8];
//! let segs = [IoSeg::new(&data)];
//! let mut it = IovIter::<Source, Kvec>::new(&segs);
//! // A Source iterator is read from, never written to: this does not compile.
//! it.copy_to_iter(&[1, 2, 3]);
//! ```
//!
//! ```compile_fail,E0599
//! use iov_iter::{Dest, IovIter, Kvec, IoSegMut};
//! let mut data = [0u8; 8];
//! let mut segs = [IoSegMut::new(&mut data)];
//! let mut it = IovIter::<Dest, Kvec>::new(&mut segs);
//! let mut out = [0u8; 8];
//! // A Dest iterator is written to, never read from: this does not compile.
//! it.copy_from_iter(&mut out);
//! ```

mod sealed {
    pub trait Sealed {}
}

/// The direction of an iterator: where the data goes. Sealed; the only
/// implementations are [`Source`] and [`Dest`].
///
/// Code generic over the direction reads it from the type, at compile time.
///
/// # Examples
///
/// ```
/// use iov_iter::{Dest, Direction, IovIter, Kind, Source, Ubuf};
/// // The kernel's `iov_iter_rw()`.
/// fn rw<D: Direction, K: Kind>(_: &IovIter<'_, D, K>) -> &'static str {
///     if D::IS_SOURCE { "WRITE" } else { "READ" }
/// }
/// let (data, mut buf) = ([1u8; 8], [0u8; 8]);
/// assert_eq!(rw(&IovIter::<Source, Ubuf>::new(&data)), "WRITE");
/// assert_eq!(rw(&IovIter::<Dest, Ubuf>::new(&mut buf)), "READ");
/// assert_eq!((Source::NAME, Dest::NAME), ("ITER_SOURCE", "ITER_DEST"));
/// ```
pub trait Direction: sealed::Sealed + Copy + Send + Sync + Unpin + 'static {
    /// `true` for [`Source`] (the kernel's `data_source`, `WRITE`).
    #[doc(alias = "data_source")]
    const IS_SOURCE: bool;
    /// The kernel's name: `"ITER_SOURCE"` or `"ITER_DEST"`.
    const NAME: &'static str;
    /// What the iterator's borrow looks like: `&'a [u8]` for a source,
    /// `&'a mut [u8]` for a destination. Sets variance and auto traits.
    #[doc(hidden)]
    type Borrow<'a>: Send + Sync;
    /// What [`AnyIter::Discard`](crate::AnyIter::Discard) holds in this
    /// direction: the discard iterator for [`Dest`]; for [`Source`], which
    /// has none, the uninhabited [`NoDiscard`](crate::NoDiscard), so a
    /// `match` on an `AnyIter<'_, Source>` needs no arm for it.
    type DiscardSlot<'a>: crate::any::DiscardSlot<Iter = crate::IovIter<'a, Self, crate::Discard>>
        + core::fmt::Debug
        + Send
        + Sync;
}

/// Data is read *out of* the iterator's buffers: the iterator is the source
/// of a write (`ITER_SOURCE`, `WRITE`; `iov_iter_rw() == WRITE`).
///
/// # Examples
///
/// ```
/// use iov_iter::{IovIter, Source, Ubuf};
/// let data = *b"to disk";
/// let mut it = IovIter::<Source, Ubuf>::new(&data);
/// let mut out = [0u8; 7];
/// assert_eq!(it.copy_from_iter(&mut out), 7); // what a write hands the device
/// assert_eq!(&out, b"to disk");
/// assert!(it.is_source() && it.is_empty());
/// ```
#[doc(alias = "ITER_SOURCE")]
#[doc(alias = "WRITE")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {}

/// Data lands *in* the iterator's buffers: the iterator is the destination
/// of a read (`ITER_DEST`, `READ`; `iov_iter_rw() == READ`).
///
/// # Examples
///
/// ```
/// use iov_iter::{Dest, IovIter, Ubuf};
/// let mut buf = [0u8; 5];
/// let mut it = IovIter::<Dest, Ubuf>::new(&mut buf);
/// assert_eq!(it.copy_to_iter(b"hello, world"), 5); // only what fits
/// assert!(!it.is_source());
/// drop(it);
/// assert_eq!(&buf, b"hello");
/// ```
#[doc(alias = "ITER_DEST")]
#[doc(alias = "READ")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dest {}

impl sealed::Sealed for Source {}
impl sealed::Sealed for Dest {}

impl Direction for Source {
    const IS_SOURCE: bool = true;
    const NAME: &'static str = "ITER_SOURCE";
    type Borrow<'a> = &'a [u8];
    type DiscardSlot<'a> = crate::NoDiscard<'a>;
}

impl Direction for Dest {
    const IS_SOURCE: bool = false;
    const NAME: &'static str = "ITER_DEST";
    type Borrow<'a> = &'a mut [u8];
    type DiscardSlot<'a> = crate::IovIter<'a, Dest, crate::Discard>;
}
