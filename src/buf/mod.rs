//! Owned buffers: memory an asynchronous I/O holds until its completion.
//!
//! Linux reference: `include/linux/bvec.h` (a `bio_vec` holds a page
//! reference for as long as the I/O runs), `block/bio.c`
//! (`bio_iov_iter_get_pages`, the pin taken on user pages), and the
//! buffer-ownership model of io_uring runtimes (tokio-uring's `IoBuf` /
//! `IoBufMut`).
//!
//! A borrowed [`IovIter`](crate::IovIter) cannot outlive the call it is lent
//! to, so an I/O that completes later must *own* its memory. [`IoBuf`] (the
//! source of a write) and [`IoBufMut`] (the destination of a read) describe
//! owned memory as a list of segments at addresses that do not change when
//! the owner moves. An [`OwnedIter`] wraps such a buffer with an iterator
//! position (count, segment, offset): it moves into an in-flight I/O
//! through the kiocb and comes back with the completion, advanced by what
//! was transferred, so a short transfer resumes where it stopped.
//!
//! | buffer | [`IoBuf`] (write) segments | [`IoBufMut`] (read) segments | initialised after a read |
//! |---|---|---|---|
//! | `Vec<u8>` | its `len` bytes | its whole capacity, spare capacity included | `len` grows to cover what landed |
//! | `Box<[u8]>` | all | all | always |
//! | [`AlignedBuf`] | its `len` bytes | its whole capacity | as `Vec<u8>` |
//! | [`Page`] | the frame | the frame | always |
//! | [`PageRef`] | the frame | (not a destination: others may read it) | |
//! | [`Folio`], [`FolioRef`] | the folio, one segment | the folio ([`Folio`] only) | always |
//! | [`GuestBuf<Source>`](GuestBuf) (guest memory, [`SharedRegion`] or vm-memory) | its ranges, in order (they may overlap) | (not a destination) | |
//! | [`GuestBuf<Dest>`](GuestBuf) | its ranges | its ranges (disjoint) | always (marks its dirty log, if any) |
//! | `Vec<B>`, `Box<[B]>`, `SmallVec<[B; N]>` of any of these | the segments of each, in order | as for each | as for each |
//!
//! Reads may land in uninitialised memory (a `Vec<u8>`'s spare capacity, an
//! [`AlignedBuf`] made with [`AlignedBuf::with_capacity`]): the I/O writes
//! it without a zeroing pass, and [`IoBufMut::set_init`] tells the buffer
//! how much became initialised.
//!
//! # Implementing the traits
//!
//! The traits are `unsafe` because the kernel (or a device thread) reads or
//! writes the memory while nobody in Rust holds a borrow of it. A type that
//! owns memory at a stable address can implement them; see the safety
//! sections, and the test `tests/dio_owned.rs`, which runs a buffer type of
//! its own through asynchronous I/O.

mod aligned;
mod guest;
mod owned;

use alloc::boxed::Box;
use alloc::vec::Vec;

pub use aligned::AlignedBuf;
pub use guest::{GuestBuf, SharedRegion};
pub use owned::OwnedIter;
pub(crate) use owned::SegArray;

use crate::folio::{Folio, FolioRef};
use crate::page::{PAGE_SIZE, Page, PageRef};

/// Owned memory that can be the source of an asynchronous write: a list of
/// segments of initialised bytes at stable addresses.
///
/// # Safety
///
/// An implementation promises, for as long as the value lives and is not
/// accessed through `&mut` (by [`IoBufMut`] methods or otherwise):
///
/// 1. [`IoBuf::for_each_seg`] reports segments that are valid for reads of
///    their length and initialised, and reports the same segments on every
///    call;
/// 2. the addresses do not change when the value is moved (heap memory, a
///    page frame; not an inline array);
/// 3. nothing writes that memory (other handles to it may read it);
/// 4. the memory may be read from any thread (the type is `Send`).
///
/// # Examples
///
/// A buffer type of one's own: 512-byte sectors, each a heap allocation
/// of its own (a `Vec` of boxes), as the source of an asynchronous write.
///
/// ```
/// use iov_iter::backend::mem::MemDevice;
/// use iov_iter::buf::{IoBuf, OwnedIter};
/// use iov_iter::dio::{DioAlign, DirectIo};
/// use iov_iter::kiocb::Kiocb;
/// use iov_iter::Source;
///
/// struct Sectors(Vec<Box<[u8; 512]>>);
///
/// // SAFETY: each box is initialised, stays where it is when `Sectors`
/// // moves, and is written only through `&mut Sectors`.
/// unsafe impl IoBuf for Sectors {
///     fn for_each_seg(&self, f: &mut dyn FnMut(*const u8, usize)) {
///         for s in &self.0 {
///             f(s.as_ptr(), s.len());
///         }
///     }
/// }
///
/// let data = Sectors(vec![Box::new([1; 512]), Box::new([2; 512])]);
/// assert_eq!(data.bytes_init(), 1024);
/// let dev = MemDevice::new(4096).with_align(DioAlign::new(1, 512)?); // boxes: any address
/// let (mut kiocb, mut fut) = Kiocb::new_async_with(512, OwnedIter::<Source, _>::new(data));
/// assert!(dev.submit(&mut kiocb)?.is_queued());
/// let done = fut.try_take().expect("the RAM device completes inline");
/// assert_eq!(done.result, Ok(1024));
/// assert_eq!(done.buf.into_inner().0.len(), 2); // the buffer comes back
/// assert!(dev.snapshot()[512..1024].iter().all(|&b| b == 1) && dev.snapshot()[1024] == 2);
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[doc(alias = "bio_iov_iter_get_pages")]
pub unsafe trait IoBuf: Send + 'static {
    /// Calls `f` with the address and length of each segment, in order.
    ///
    /// ```
    /// use iov_iter::buf::IoBuf;
    /// let parts: Vec<Box<[u8]>> = vec![Box::new(*b"abc"), Box::new(*b"de")];
    /// let mut segs = Vec::new();
    /// parts.for_each_seg(&mut |p, len| segs.push((p, len)));
    /// assert_eq!(segs, [(parts[0].as_ptr(), 3), (parts[1].as_ptr(), 2)]);
    /// ```
    fn for_each_seg(&self, f: &mut dyn FnMut(*const u8, usize));

    /// The total length of the segments: what a write from the buffer
    /// transfers at most.
    ///
    /// ```
    /// use iov_iter::buf::IoBuf;
    /// let mut v = Vec::with_capacity(4096);
    /// v.extend_from_slice(b"hello");
    /// assert_eq!(v.bytes_init(), 5); // the length, not the capacity
    /// assert_eq!(vec![v.clone(), v].bytes_init(), 10);
    /// ```
    fn bytes_init(&self) -> usize {
        let mut n = 0usize;
        self.for_each_seg(&mut |_, len| n = n.saturating_add(len));
        n
    }
}

/// Owned memory that can be the destination of an asynchronous read: a
/// list of segments, initialised or not, at stable addresses, that nothing
/// else reaches while the value is held.
///
/// # Safety
///
/// As [`IoBuf`], and for as long as the value lives and is not accessed
/// through another `&mut` method:
///
/// 1. [`IoBufMut::for_each_seg_mut`] reports segments valid for writes of
///    their length, that do not overlap, and the same ones on every call;
///    they start with the segments [`IoBuf::for_each_seg`] reports (the
///    initialised bytes come first, in the same order);
/// 2. nothing else reads or writes that memory (no other handle reaches
///    it);
/// 3. [`IoBufMut::set_init`] only records a length: it does not move or
///    free the memory.
///
/// # Examples
///
/// The sectors of [`IoBuf`]'s example as the destination of an
/// asynchronous read:
///
/// ```
/// use iov_iter::backend::mem::MemDevice;
/// use iov_iter::buf::{IoBuf, IoBufMut, OwnedIter};
/// use iov_iter::dio::{DioAlign, DirectIo};
/// use iov_iter::kiocb::Kiocb;
/// use iov_iter::Dest;
///
/// struct Sectors(Vec<Box<[u8; 512]>>);
/// # // SAFETY: as in `IoBuf`'s example.
/// # unsafe impl IoBuf for Sectors {
/// #     fn for_each_seg(&self, f: &mut dyn FnMut(*const u8, usize)) {
/// #         for s in &self.0 {
/// #             f(s.as_ptr(), s.len());
/// #         }
/// #     }
/// # }
///
/// // SAFETY: the boxes are disjoint, owned by `Sectors` alone, reported in
/// // the same order as by `for_each_seg`, and always initialised.
/// unsafe impl IoBufMut for Sectors {
///     fn for_each_seg_mut(&mut self, f: &mut dyn FnMut(*mut u8, usize)) {
///         for s in &mut self.0 {
///             f(s.as_mut_ptr(), s.len());
///         }
///     }
///     unsafe fn set_init(&mut self, _: usize) {}
/// }
///
/// let dev = MemDevice::new(4096).with_align(DioAlign::new(1, 512)?);
/// dev.write_at(0, &[7; 1024]);
/// let bufs = Sectors(vec![Box::new([0; 512]), Box::new([0; 512])]);
/// let (mut kiocb, mut fut) = Kiocb::new_async_with(0, OwnedIter::<Dest, _>::new(bufs));
/// assert!(dev.submit(&mut kiocb)?.is_queued());
/// let done = fut.try_take().expect("the RAM device completes inline");
/// assert_eq!(done.result, Ok(1024));
/// assert!(done.buf.into_inner().0.iter().all(|s| s.iter().all(|&b| b == 7)));
/// # Ok::<(), iov_iter::Error>(())
/// ```
pub unsafe trait IoBufMut: IoBuf {
    /// Calls `f` with the address and writable length of each segment, in
    /// order.
    ///
    /// ```
    /// use iov_iter::buf::IoBufMut;
    /// let mut v: Vec<u8> = Vec::with_capacity(64);
    /// v.push(1);
    /// let (ptr, cap) = (v.as_mut_ptr(), v.capacity());
    /// let mut segs = Vec::new();
    /// v.for_each_seg_mut(&mut |p, len| segs.push((p, len)));
    /// assert_eq!(segs, [(ptr, cap)]); // the spare capacity too
    /// ```
    fn for_each_seg_mut(&mut self, f: &mut dyn FnMut(*mut u8, usize));

    /// The first `n` bytes, counted over the segments of
    /// [`IoBufMut::for_each_seg_mut`] in order, are initialised (a read
    /// landed there). Buffers that are always initialised ignore it; a
    /// `Vec<u8>` grows its length to cover them.
    ///
    /// # Safety
    ///
    /// The first `n` bytes are initialised.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::buf::IoBufMut;
    /// let mut v: Vec<u8> = Vec::with_capacity(8);
    /// v.for_each_seg_mut(&mut |p, len| {
    ///     assert!(len >= 4);
    ///     // SAFETY: the segment is valid for writes of `len` bytes.
    ///     unsafe { p.write_bytes(7, 4) };
    /// });
    /// // SAFETY: the first 4 bytes were just written.
    /// unsafe { v.set_init(4) };
    /// assert_eq!(v, [7; 4]);
    /// ```
    unsafe fn set_init(&mut self, n: usize);

    /// The total writable length of the segments: what a read into the
    /// buffer transfers at most.
    ///
    /// ```
    /// use iov_iter::buf::IoBufMut;
    /// let mut parts: Vec<Box<[u8]>> = vec![vec![0; 512].into(), vec![0; 100].into()];
    /// assert_eq!(parts.bytes_total(), 612);
    /// ```
    fn bytes_total(&mut self) -> usize {
        let mut n = 0usize;
        self.for_each_seg_mut(&mut |_, len| n = n.saturating_add(len));
        n
    }
}

// SAFETY: a `Vec`'s heap buffer does not move when the `Vec` does; its
// first `len` bytes are initialised; only `&mut` methods (which the
// contract excludes) could reallocate or write it.
unsafe impl IoBuf for Vec<u8> {
    fn for_each_seg(&self, f: &mut dyn FnMut(*const u8, usize)) {
        f(self.as_ptr(), self.len());
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
}

// SAFETY: the whole capacity is writable and owned by the `Vec`; it starts
// with the `len` initialised bytes; `set_init` only grows `len`, within the
// capacity, over bytes the caller promises are initialised.
unsafe impl IoBufMut for Vec<u8> {
    fn for_each_seg_mut(&mut self, f: &mut dyn FnMut(*mut u8, usize)) {
        f(self.as_mut_ptr(), self.capacity());
    }
    unsafe fn set_init(&mut self, n: usize) {
        if n > self.len() {
            // SAFETY: `n` is clamped to the capacity; the caller promises the
            // first `n` bytes are initialised.
            unsafe { self.set_len(n.min(self.capacity())) };
        }
    }
}

// SAFETY: a boxed slice's heap memory does not move with the box, is
// initialised, and is reached only through the box.
unsafe impl IoBuf for Box<[u8]> {
    fn for_each_seg(&self, f: &mut dyn FnMut(*const u8, usize)) {
        f(self.as_ptr(), self.len());
    }
}

// SAFETY: as above; the memory is writable through the unique box.
unsafe impl IoBufMut for Box<[u8]> {
    fn for_each_seg_mut(&mut self, f: &mut dyn FnMut(*mut u8, usize)) {
        f(self.as_mut_ptr(), self.len());
    }
    unsafe fn set_init(&mut self, _: usize) {}
}

// SAFETY: a `Page` owns its frame exclusively (its invariant); the frame
// does not move with the `Page` and is always initialised.
unsafe impl IoBuf for Page {
    fn for_each_seg(&self, f: &mut dyn FnMut(*const u8, usize)) {
        f(self.as_bytes().as_ptr(), PAGE_SIZE);
    }
}

// SAFETY: as above; writing the frame needs the unique `Page`.
unsafe impl IoBufMut for Page {
    fn for_each_seg_mut(&mut self, f: &mut dyn FnMut(*mut u8, usize)) {
        f(self.as_mut_bytes().as_mut_ptr(), PAGE_SIZE);
    }
    unsafe fn set_init(&mut self, _: usize) {}
}

// SAFETY: a `PageRef` is a page reference (as a `bio_vec` holds one): the
// frame lives as long as any reference, does not move, and cannot be
// written while this reference exists (writing needs `&mut Page`, which
// `Arc::get_mut` refuses while it is shared). Not an `IoBufMut`: other
// references may read the frame.
unsafe impl IoBuf for PageRef {
    fn for_each_seg(&self, f: &mut dyn FnMut(*const u8, usize)) {
        f(self.as_bytes().as_ptr(), PAGE_SIZE);
    }
}

// SAFETY: a `Folio` owns its memory exclusively (its invariant); the memory
// does not move with the `Folio` and is always initialised. One segment: the
// whole folio, however many pages it holds.
unsafe impl IoBuf for Folio {
    fn for_each_seg(&self, f: &mut dyn FnMut(*const u8, usize)) {
        f(self.as_bytes().as_ptr(), self.size());
    }
}

// SAFETY: as above; writing the memory needs the unique `Folio`.
unsafe impl IoBufMut for Folio {
    fn for_each_seg_mut(&mut self, f: &mut dyn FnMut(*mut u8, usize)) {
        let len = self.size();
        f(self.as_mut_bytes().as_mut_ptr(), len);
    }
    unsafe fn set_init(&mut self, _: usize) {}
}

// SAFETY: a `FolioRef` is a folio reference (`folio_get`): the memory lives
// as long as any reference, does not move, and cannot be written while this
// reference exists (writing needs `&mut Folio`, which `Arc::get_mut` refuses
// while it is shared). Not an `IoBufMut`: other references may read it.
unsafe impl IoBuf for FolioRef {
    fn for_each_seg(&self, f: &mut dyn FnMut(*const u8, usize)) {
        f(self.as_bytes().as_ptr(), self.size());
    }
}

// SAFETY: each element keeps its own promises; the `Vec`'s own buffer is
// not part of the memory described, so moving or reading it changes
// nothing.
unsafe impl<B: IoBuf> IoBuf for Vec<B> {
    fn for_each_seg(&self, f: &mut dyn FnMut(*const u8, usize)) {
        for b in self {
            b.for_each_seg(f);
        }
    }
}

/// Hands the first `n` bytes out to the elements, in order.
fn set_init_each<B: IoBufMut>(bufs: &mut [B], mut n: usize) {
    for b in bufs {
        if n == 0 {
            break;
        }
        let take = n.min(b.bytes_total());
        // SAFETY: the caller of `set_init` promised the first `n` bytes
        // over all elements are initialised; these are the first `take` of
        // this element's.
        unsafe { b.set_init(take) };
        n -= take;
    }
}

// SAFETY: the elements' segments are disjoint (each element owns its
// memory exclusively) and each keeps its promises.
unsafe impl<B: IoBufMut> IoBufMut for Vec<B> {
    fn for_each_seg_mut(&mut self, f: &mut dyn FnMut(*mut u8, usize)) {
        for b in self {
            b.for_each_seg_mut(f);
        }
    }
    unsafe fn set_init(&mut self, n: usize) {
        set_init_each(self, n);
    }
}

// SAFETY: the elements may live inline and move with the `SmallVec`, but
// each element keeps its own promises, and those include that its
// segments do not move when it moves; the `SmallVec`'s own storage is not
// part of the memory described.
unsafe impl<B: IoBuf, const N: usize> IoBuf for smallvec::SmallVec<[B; N]> {
    fn for_each_seg(&self, f: &mut dyn FnMut(*const u8, usize)) {
        for b in self {
            b.for_each_seg(f);
        }
    }
}

// SAFETY: as above, and as for `Vec<B>`.
unsafe impl<B: IoBufMut, const N: usize> IoBufMut for smallvec::SmallVec<[B; N]> {
    fn for_each_seg_mut(&mut self, f: &mut dyn FnMut(*mut u8, usize)) {
        for b in self {
            b.for_each_seg_mut(f);
        }
    }
    unsafe fn set_init(&mut self, n: usize) {
        set_init_each(self, n);
    }
}

// SAFETY: as for `Vec<B>`.
unsafe impl<B: IoBuf> IoBuf for Box<[B]> {
    fn for_each_seg(&self, f: &mut dyn FnMut(*const u8, usize)) {
        for b in self.iter() {
            b.for_each_seg(f);
        }
    }
}

// SAFETY: as for `Vec<B>`.
unsafe impl<B: IoBufMut> IoBufMut for Box<[B]> {
    fn for_each_seg_mut(&mut self, f: &mut dyn FnMut(*mut u8, usize)) {
        for b in self.iter_mut() {
            b.for_each_seg_mut(f);
        }
    }
    unsafe fn set_init(&mut self, n: usize) {
        set_init_each(self, n);
    }
}
