//! Registered buffers (`IORING_REGISTER_BUFFERS`): [`FixedBufPool`], an
//! arena of equal buffers a queue registered with its ring, and
//! [`FixedBuf`], one buffer checked out of it; and the address lookup
//! through which the queue sends a request inside a registered buffer as
//! `IORING_OP_READ_FIXED` / `IORING_OP_WRITE_FIXED`.
//!
//! Registration pins the buffers' pages in the kernel once, so a fixed
//! read or write skips the per-request `pin_user_pages` and its release,
//! which a plain one pays for every segment.
//!
//! No syscalls here (the queue registers): unit-tested under Miri.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, PoisonError};

use crate::buf::{AlignedBuf, IoBuf, IoBufMut};
use crate::error::{Error, Result};
use crate::seg::UserIovec;

/// Most buffers one ring registers (the kernel's `IORING_MAX_REG_BUFFERS`).
pub(super) const MAX_BUFFERS: usize = 1 << 14;
/// Largest registered buffer (the kernel refuses more than 1 GiB).
pub(super) const MAX_BUF_SIZE: usize = 1 << 30;

/// The memory of a pool: `count` buffers of `size` bytes, `stride` bytes
/// apart, in one zeroed allocation, and which of them are free.
///
/// Every byte is initialised (zeroed at allocation; written since only
/// with initialised bytes, by Rust code or by the kernel's I/O), so a
/// [`FixedBuf`] may expose any prefix of its buffer.
pub(super) struct Arena {
    /// Owns the memory; not touched after `base` was taken from it.
    _mem: AlignedBuf,
    /// Start of buffer 0, valid for reads and writes of
    /// `count * stride` bytes while `_mem` lives (the `IoBufMut`
    /// contract).
    base: NonNull<u8>,
    size: usize,
    stride: usize,
    count: usize,
    align: usize,
    /// Indices of the buffers not checked out.
    free: Mutex<Vec<u16>>,
}

// SAFETY: the arena owns its memory (through `_mem`, which is `Send`);
// `base` only addresses it. Each buffer is reached by at most one
// `FixedBuf` at a time (the free list under its mutex hands each index to
// one), and the arena itself never reads or writes buffer memory.
unsafe impl Send for Arena {}
// SAFETY: as above: shared access only reads `base` and the sizes, or
// goes through the free list's mutex.
unsafe impl Sync for Arena {}

impl Arena {
    /// `count` zeroed buffers of `size` bytes at addresses aligned to
    /// `align`.
    ///
    /// # Errors
    ///
    /// EINVAL when `count` is 0 or above [`MAX_BUFFERS`], `size` is 0 or
    /// above [`MAX_BUF_SIZE`], `align` is not a power of two, or the total
    /// overflows; ENOMEM when the memory cannot be had.
    pub(super) fn new(count: usize, size: usize, align: usize) -> Result<Arena> {
        if count == 0 || count > MAX_BUFFERS {
            return Err(Error::InvalidArgument(
                "registered buffer count must be 1..=16384",
            ));
        }
        if size == 0 || size > MAX_BUF_SIZE {
            return Err(Error::InvalidArgument(
                "registered buffer size must be 1 byte..=1 GiB",
            ));
        }
        if !align.is_power_of_two() {
            return Err(Error::InvalidArgument("alignment must be a power of two"));
        }
        let stride = size
            .checked_next_multiple_of(align)
            .ok_or(Error::InvalidArgument("registered buffers too large"))?;
        let total = stride
            .checked_mul(count)
            .filter(|&t| t <= isize::MAX as usize)
            .ok_or(Error::InvalidArgument("registered buffers too large"))?;
        let mut mem = AlignedBuf::zeroed(align, total)?;
        let mut base = None;
        mem.for_each_seg_mut(&mut |p, _| base = NonNull::new(p));
        let base = base.ok_or(Error::InvalidArgument("registered buffers too large"))?;
        Ok(Arena {
            _mem: mem,
            base,
            size,
            stride,
            count,
            align,
            // Hand buffer 0 out first.
            free: Mutex::new((0..count as u16).rev().collect()),
        })
    }

    fn buf_ptr(&self, index: u16) -> NonNull<u8> {
        debug_assert!((index as usize) < self.count);
        // SAFETY: `index < count`, so the offset stays inside the
        // allocation of `count * stride` bytes that `base` starts.
        unsafe { self.base.add(index as usize * self.stride) }
    }

    /// Each buffer as a `struct iovec`, in index order (what
    /// `IORING_REGISTER_BUFFERS` takes).
    pub(super) fn iovecs(&self) -> Vec<UserIovec> {
        (0..self.count as u16)
            .map(|i| UserIovec::new(self.buf_ptr(i).as_ptr(), self.size))
            .collect()
    }

    fn free_list(&self) -> std::sync::MutexGuard<'_, Vec<u16>> {
        // Pushing or popping an index cannot leave the list half-changed.
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One registered range: buffer `index` spans `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BufRange {
    start: usize,
    end: usize,
    index: u16,
}

/// What a ring registered: the arena (kept alive, with its memory, for as
/// long as the registration lasts, which is the ring's life) and its
/// buffers' address ranges, sorted, for [`Registered::lookup`].
pub(super) struct Registered {
    ranges: Vec<BufRange>,
    _arena: Arc<Arena>,
}

impl Registered {
    /// The lookup table of `arena`'s buffers, which the kernel has just
    /// registered at indices `0..count` in order.
    pub(super) fn new(arena: Arc<Arena>) -> Registered {
        let mut ranges: Vec<BufRange> = arena
            .iovecs()
            .iter()
            .enumerate()
            .map(|(i, v)| BufRange {
                start: v.base as usize,
                end: v.base as usize + v.len,
                index: i as u16,
            })
            .collect();
        ranges.sort_unstable_by_key(|r| r.start);
        Registered {
            ranges,
            _arena: arena,
        }
    }

    /// The index of the registered buffer that holds all of
    /// `[addr, addr + len)`, by binary search over the sorted ranges: any
    /// memory inside a registered buffer qualifies, whatever type owns it,
    /// and nothing else does (a range that starts in one buffer and ends
    /// past it, or outside every buffer, gets `None`). Empty ranges get
    /// `None` too.
    pub(super) fn lookup(&self, addr: *const u8, len: usize) -> Option<u16> {
        let start = addr as usize;
        let end = start.checked_add(len)?;
        if len == 0 {
            return None;
        }
        // The last range starting at or before `start`.
        let i = self.ranges.partition_point(|r| r.start <= start);
        let r = self.ranges.get(i.checked_sub(1)?)?;
        (end <= r.end).then_some(r.index)
    }
}

/// A pool of equal, aligned buffers a [`UringQueue`](super::UringQueue)
/// registered with its ring ([`UringQueue::register_buffers`](super::UringQueue::register_buffers)),
/// handing out [`FixedBuf`]s.
///
/// A read or write whose memory is one segment inside one of these buffers
/// goes out as `IORING_OP_READ_FIXED` / `IORING_OP_WRITE_FIXED` on that
/// queue (and its [`UringFile`](super::UringFile)s): the queue recognises
/// the address, so a [`FixedBuf`] in an [`OwnedIter`](crate::buf::OwnedIter)
/// (advanced or not), or a borrowed iterator over part of one, all qualify.
/// Anything else, and everything when the kernel refused the registration
/// ([`FixedBufPool::is_registered`]), goes out as before.
///
/// The pool is a handle: clones share the buffers. The memory lives until
/// the pool, every buffer checked out, and the ring (which keeps the
/// registration until it is freed) are gone.
///
/// # Examples
///
/// ```no_run
/// use iov_iter::backend::uring::UringQueue;
/// use iov_iter::buf::OwnedIter;
/// use iov_iter::dio::DirectIo;
/// use iov_iter::kiocb::Kiocb;
/// use iov_iter::Source;
///
/// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
/// let pool = queue.register_buffers(8, 65536, 4096)?;
/// let mut buf = pool.get().expect("a free buffer");
/// buf.fill(0x5a);
/// let (mut kiocb, done) = Kiocb::new_async_with(0, OwnedIter::<Source, _>::new(buf));
/// assert!(queue.submit(&mut kiocb)?.is_queued()); // IORING_OP_WRITE_FIXED when registered
/// assert_eq!(queue.block_on(done).result, Ok(65536));
/// // The buffer went back to the pool with the completion's drop.
/// assert_eq!(pool.available(), 8);
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[derive(Clone)]
#[doc(alias = "IORING_REGISTER_BUFFERS")]
pub struct FixedBufPool {
    arena: Arc<Arena>,
    registered: bool,
}

impl FixedBufPool {
    pub(super) fn new(arena: Arc<Arena>, registered: bool) -> FixedBufPool {
        FixedBufPool { arena, registered }
    }

    /// Checks a free buffer out, or `None` when all are out. Its length
    /// is its whole [`FixedBuf::capacity`]; its bytes are what the last
    /// user left (zero at first).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
    /// let pool = queue.register_buffers(2, 4096, 4096)?;
    /// let (a, b) = (pool.get().unwrap(), pool.get().unwrap());
    /// assert!(pool.get().is_none());
    /// drop(a); // back to the pool
    /// assert!(pool.get().is_some());
    /// # drop(b);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn get(&self) -> Option<FixedBuf> {
        let index = self.arena.free_list().pop()?;
        Some(FixedBuf {
            ptr: self.arena.buf_ptr(index),
            len: self.arena.size,
            index,
            arena: Arc::clone(&self.arena),
        })
    }

    /// Whether the kernel registered the buffers: only then do requests in
    /// them go out as `IORING_OP_READ_FIXED` / `IORING_OP_WRITE_FIXED`.
    /// When it refused (`ENOMEM` past `RLIMIT_MEMLOCK`, `EPERM`, ...), the
    /// buffers still work, as plain reads and writes.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
    /// let pool = queue.register_buffers(4, 4096, 4096)?;
    /// if !pool.is_registered() {
    ///     eprintln!("no registered buffers here: plain reads and writes");
    /// }
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn is_registered(&self) -> bool {
        self.registered
    }

    /// How many buffers the pool has.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
    /// let pool = queue.register_buffers(4, 4096, 4096)?;
    /// assert_eq!((pool.len(), pool.buf_size()), (4, 4096));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.arena.count
    }

    /// Always `false`: a pool has at least one buffer.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
    /// assert!(!queue.register_buffers(1, 4096, 4096)?.is_empty());
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.arena.count == 0
    }

    /// The size of each buffer, in bytes.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
    /// let pool = queue.register_buffers(4, 8192, 4096)?;
    /// assert_eq!(pool.get().unwrap().capacity(), pool.buf_size());
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn buf_size(&self) -> usize {
        self.arena.size
    }

    /// The alignment of every buffer's address.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
    /// let pool = queue.register_buffers(4, 4096, 4096)?;
    /// assert_eq!(pool.get().unwrap().as_ptr() as usize % pool.align(), 0);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn align(&self) -> usize {
        self.arena.align
    }

    /// How many buffers are free (not checked out) now.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
    /// let pool = queue.register_buffers(4, 4096, 4096)?;
    /// let buf = pool.get().unwrap();
    /// assert_eq!(pool.available(), 3);
    /// drop(buf);
    /// assert_eq!(pool.available(), 4);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn available(&self) -> usize {
        self.arena.free_list().len()
    }
}

impl fmt::Debug for FixedBufPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedBufPool")
            .field("len", &self.len())
            .field("buf_size", &self.buf_size())
            .field("align", &self.align())
            .field("available", &self.available())
            .field("registered", &self.registered)
            .finish()
    }
}

/// One buffer of a [`FixedBufPool`], checked out ([`FixedBufPool::get`])
/// until it is dropped, when it goes back to the pool. Owned memory for
/// asynchronous I/O ([`IoBuf`] / [`IoBufMut`]) that the queue that
/// registered the pool reads and writes with `IORING_OP_READ_FIXED` /
/// `IORING_OP_WRITE_FIXED`.
///
/// Like an [`AlignedBuf`] made with [`AlignedBuf::zeroed`], it has a
/// length (the bytes a write sends, and that it dereferences to) within a
/// fixed capacity (where a read lands), and every byte is initialised, so
/// [`FixedBuf::set_len`] is safe.
///
/// # Examples
///
/// ```no_run
/// use iov_iter::backend::uring::UringQueue;
/// use iov_iter::buf::OwnedIter;
/// use iov_iter::dio::DirectIo;
/// use iov_iter::kiocb::Kiocb;
/// use iov_iter::Dest;
///
/// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
/// let pool = queue.register_buffers(4, 4096, 4096)?;
/// let buf = pool.get().unwrap();
/// let (mut kiocb, done) = Kiocb::new_async_with(0, OwnedIter::<Dest, _>::new(buf));
/// assert!(queue.submit(&mut kiocb)?.is_queued()); // IORING_OP_READ_FIXED when registered
/// let back = queue.block_on(done).buf.into_inner();
/// println!("first byte {}", back[0]);
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[doc(alias = "IORING_OP_READ_FIXED")]
#[doc(alias = "IORING_OP_WRITE_FIXED")]
pub struct FixedBuf {
    /// Start of the buffer, inside `arena`.
    ptr: NonNull<u8>,
    len: usize,
    index: u16,
    arena: Arc<Arena>,
}

// SAFETY: the buffer's memory is reached only through this value (the
// pool handed its index out once and takes it back on drop), and the
// arena it points into is `Send + Sync` and kept alive by `arena`.
unsafe impl Send for FixedBuf {}
// SAFETY: `&FixedBuf` only reads the buffer.
unsafe impl Sync for FixedBuf {}

impl FixedBuf {
    /// The bytes in use (what a write sends).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
    /// let mut buf = queue.register_buffers(1, 8192, 4096)?.get().unwrap();
    /// assert_eq!(buf.len(), 8192);
    /// buf.set_len(4096);
    /// assert_eq!(buf.len(), 4096);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no byte is in use.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
    /// let mut buf = queue.register_buffers(1, 4096, 4096)?.get().unwrap();
    /// buf.set_len(0);
    /// assert!(buf.is_empty());
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The size of the buffer ([`FixedBufPool::buf_size`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
    /// let buf = queue.register_buffers(1, 4096, 4096)?.get().unwrap();
    /// assert_eq!(buf.capacity(), 4096);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.arena.size
    }

    /// Sets the bytes in use to the first `len` (every byte is
    /// initialised, so any length up to the capacity is sound).
    ///
    /// # Panics
    ///
    /// When `len` exceeds [`FixedBuf::capacity`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
    /// let mut buf = queue.register_buffers(1, 8192, 4096)?.get().unwrap();
    /// buf.set_len(512);
    /// assert_eq!(buf.as_slice().len(), 512);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn set_len(&mut self, len: usize) {
        assert!(
            len <= self.capacity(),
            "FixedBuf::set_len({len}) past the capacity {}",
            self.capacity()
        );
        self.len = len;
    }

    /// The index of the buffer in its pool (and in the ring's registered
    /// buffer table, when registered): the `buf_index` of its fixed SQEs.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
    /// let pool = queue.register_buffers(2, 4096, 4096)?;
    /// let (a, b) = (pool.get().unwrap(), pool.get().unwrap());
    /// assert_ne!(a.index(), b.index());
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn index(&self) -> u16 {
        self.index
    }

    /// The address of the first byte.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
    /// let buf = queue.register_buffers(1, 4096, 4096)?.get().unwrap();
    /// assert_eq!(buf.as_ptr() as usize % 4096, 0);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// The bytes in use.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
    /// let buf = queue.register_buffers(1, 4096, 4096)?.get().unwrap();
    /// assert!(buf.as_slice().iter().all(|&b| b == 0)); // fresh: zeroed
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `len <= size`: inside this buffer, whose bytes are all
        // initialised (the arena's invariant) and written by nobody while
        // `&self` is borrowed (this value is the buffer's one handle).
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes in use, writable.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use iov_iter::backend::uring::UringQueue;
    ///
    /// let queue = UringQueue::builder().open("/var/tmp/disk.img")?;
    /// let mut buf = queue.register_buffers(1, 4096, 4096)?.get().unwrap();
    /// buf.as_mut_slice()[..2].copy_from_slice(b"hi");
    /// assert_eq!(&buf[..2], b"hi");
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`; `&mut self` makes this the only access.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for FixedBuf {
    /// Returns the buffer to its pool.
    fn drop(&mut self) {
        self.arena.free_list().push(self.index);
    }
}

impl Deref for FixedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl DerefMut for FixedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

impl fmt::Debug for FixedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedBuf")
            .field("index", &self.index)
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .finish()
    }
}

// SAFETY: the segment is this buffer's first `len` bytes: initialised (the
// arena's invariant), at an address that does not move (the arena's
// allocation, kept alive by `arena`), written by nobody else (one handle
// per buffer), readable from any thread.
unsafe impl IoBuf for FixedBuf {
    fn for_each_seg(&self, f: &mut dyn FnMut(*const u8, usize)) {
        f(self.ptr.as_ptr(), self.len);
    }
    fn bytes_init(&self) -> usize {
        self.len
    }
}

// SAFETY: the whole buffer is writable and reached only through this
// value; it starts with the `len` bytes `for_each_seg` reports; `set_init`
// only grows the length, within the capacity.
unsafe impl IoBufMut for FixedBuf {
    fn for_each_seg_mut(&mut self, f: &mut dyn FnMut(*mut u8, usize)) {
        f(self.ptr.as_ptr(), self.arena.size);
    }
    unsafe fn set_init(&mut self, n: usize) {
        if n > self.len {
            self.len = n.min(self.arena.size);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The arena, the pool and the lookup without a ring (runs under Miri).

    use super::*;

    fn pool(count: usize, size: usize, align: usize) -> (FixedBufPool, Registered) {
        let arena = Arc::new(Arena::new(count, size, align).unwrap());
        let reg = Registered::new(Arc::clone(&arena));
        (FixedBufPool::new(arena, true), reg)
    }

    #[test]
    fn bad_geometry_is_einval() {
        for (n, size, align) in [
            (0, 4096, 4096),
            (MAX_BUFFERS + 1, 1, 1),
            (1, 0, 4096),
            (1, MAX_BUF_SIZE + 1, 1),
            (1, 4096, 3),
        ] {
            assert_eq!(
                Arena::new(n, size, align).err().map(|e| e.errno()),
                Some(crate::Errno::EINVAL),
                "{n} x {size} @ {align}"
            );
        }
    }

    #[test]
    fn buffers_are_aligned_disjoint_zeroed_and_come_back() {
        let (pool, _reg) = pool(3, 100, 64);
        let bufs: Vec<FixedBuf> = (0..3).map(|_| pool.get().unwrap()).collect();
        assert!(pool.get().is_none());
        assert_eq!(pool.available(), 0);
        let mut starts: Vec<usize> = bufs.iter().map(|b| b.as_ptr() as usize).collect();
        assert!(starts.iter().all(|s| s % 64 == 0));
        starts.sort_unstable();
        assert!(starts.windows(2).all(|w| w[1] - w[0] >= 100));
        assert!(
            bufs.iter()
                .all(|b| b.len() == 100 && b.iter().all(|&x| x == 0))
        );
        let mut indices: Vec<u16> = bufs.iter().map(FixedBuf::index).collect();
        indices.sort_unstable();
        assert_eq!(indices, [0, 1, 2]);
        drop(bufs);
        assert_eq!(pool.available(), 3);
    }

    #[test]
    fn contents_survive_a_return_and_lengths_reset() {
        let (pool, _reg) = pool(1, 16, 8);
        let mut b = pool.get().unwrap();
        b.copy_from_slice(&[7; 16]);
        b.set_len(4);
        drop(b);
        let b = pool.get().unwrap();
        assert_eq!((b.len(), &b[..]), (16, &[7u8; 16][..]));
    }

    #[test]
    fn owned_io_traits_describe_the_buffer() {
        let (pool, _reg) = pool(1, 32, 16);
        let mut b = pool.get().unwrap();
        b.set_len(8);
        let mut segs = Vec::new();
        b.for_each_seg(&mut |p, len| segs.push((p as usize, len)));
        assert_eq!(segs, [(b.as_ptr() as usize, 8)]);
        assert_eq!(b.bytes_total(), 32);
        // SAFETY: every byte of a fixed buffer is initialised.
        unsafe { b.set_init(20) };
        assert_eq!(b.len(), 20);
        // SAFETY: as above.
        unsafe { b.set_init(5) };
        assert_eq!(b.len(), 20, "set_init never shrinks");
    }

    #[test]
    fn lookup_finds_exactly_the_ranges_inside_one_buffer() {
        let (pool, reg) = pool(4, 4096, 4096);
        let bufs: Vec<FixedBuf> = (0..4).map(|_| pool.get().unwrap()).collect();
        for b in &bufs {
            let p = b.as_ptr();
            assert_eq!(reg.lookup(p, 4096), Some(b.index()));
            assert_eq!(reg.lookup(p.wrapping_add(512), 1024), Some(b.index()));
            assert_eq!(reg.lookup(p.wrapping_add(4095), 1), Some(b.index()));
            // Past the end of the buffer (into the next one, or out).
            assert_eq!(reg.lookup(p.wrapping_add(512), 4096), None);
            assert_eq!(reg.lookup(p, 0), None);
        }
        let outside = vec![0u8; 4096];
        assert_eq!(reg.lookup(outside.as_ptr(), 4096), None);
        assert_eq!(reg.lookup(core::ptr::null(), 16), None);
        assert_eq!(
            reg.lookup(core::ptr::without_provenance(usize::MAX), 2),
            None
        );
    }

    #[test]
    fn lookup_honours_a_stride_gap() {
        // 100-byte buffers every 128 bytes: the 28-byte gaps belong to none.
        let (pool, reg) = pool(2, 100, 128);
        let b = pool.get().unwrap();
        let p = b.as_ptr();
        assert_eq!(reg.lookup(p, 100), Some(b.index()));
        assert_eq!(reg.lookup(p, 101), None);
        let base = p.wrapping_sub(b.index() as usize * 128);
        assert_eq!(reg.lookup(base.wrapping_add(110), 4), None);
        assert_eq!(reg.lookup(base.wrapping_add(128), 100), Some(1));
    }
}
