//! [`AsyncIo`]: an owned request as a backend receives it, and the split of
//! a request into transfers of at most `max_segs` segments.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use smallvec::SmallVec;

use crate::buf::SegArray;
use crate::error::{Errno, Error, Result};
use crate::kiocb::{Completion, RwType, RwfFlags};
use crate::seg::UserIovec;
use crate::sync::SpinLock;

use super::rw::DioBuf;

/// The type-erased owner of an in-flight request's memory: the kiocb's
/// completion holding the buffer, and the iovec array submitted.
pub(crate) trait Erased: Send {
    /// The iovec array (inside the request's heap allocation).
    fn iovecs(&self) -> &[UserIovec];
    /// Hands the buffer back, advanced, through the completion.
    fn finish(self: Box<Self>, res: Result<usize>);
}

/// A queued owned request: the completion (which holds the owned iterator)
/// and the chunks submitted.
pub(crate) struct Req<I: DioBuf> {
    pub(crate) completion: Completion<I>,
    pub(crate) chunks: SegArray,
    /// The kiocb's position (the request's own may be moved by a layer
    /// that maps it, [`AsyncIo::set_pos`]).
    pub(crate) start: u64,
}

// SAFETY: the chunk addresses point into the buffer the completion holds
// (`I: Send`), which owns that memory; they are only read through.
unsafe impl<I: DioBuf> Send for Req<I> {}

impl<I: DioBuf> Erased for Req<I> {
    fn iovecs(&self) -> &[UserIovec] {
        &self.chunks
    }

    fn finish(self: Box<Self>, res: Result<usize>) {
        let Req {
            mut completion,
            start,
            ..
        } = *self;
        let res = res.map(|n| n.min(completion.buf().io_count()));
        if let Ok(n) = res {
            completion.buf_mut().transferred(n);
        }
        completion.complete(start, res);
    }
}

enum Owner {
    /// The whole request; the pointer is a leaked `Box`, freed by
    /// `finish` (a raw pointer, so moving the `AsyncIo` never retags the
    /// allocation its iovecs point into).
    Whole(NonNull<dyn Erased>),
    /// Part `.1` of a split request.
    Part(Arc<Split>, usize),
    /// A request whose result passes through a hook first
    /// ([`AsyncIo::on_complete`]); a leaked `Box`, freed by `finish`.
    Hooked(NonNull<dyn Hook>),
    Done,
}

/// An asynchronous direct-I/O request over owned memory, as a backend's
/// [`DirectIo::start`](super::DirectIo::start) receives it (the kernel's
/// kiocb plus iterator on the `-EIOCBQUEUED` path, or one `bio` of it).
///
/// The memory its [`AsyncIo::iovecs`] describe stays valid, and is reached
/// by nothing else, until [`AsyncIo::complete`] runs (or the request is
/// dropped, which completes it with `ECANCELED`): a backend may hand the
/// addresses to the kernel or a device thread and complete later, from any
/// thread. The completion runs the kiocb's (the user's callback or future)
/// exactly once, with the buffer advanced by the bytes transferred.
///
/// # Examples
///
/// A backend that completes every request with a short count of 0 (end of
/// file), from the thread that starts it:
///
/// ```
/// use iov_iter::buf::{AlignedBuf, OwnedIter};
/// use iov_iter::dio::{AsyncIo, DioAlign, DirectIo};
/// use iov_iter::kiocb::{Kiocb, RwType, RwfFlags};
/// use iov_iter::{Dest, Result, UserIovec};
///
/// struct Empty;
/// impl DirectIo for Empty {
///     fn dio_align(&self) -> DioAlign {
///         DioAlign::new(1, 1).unwrap()
///     }
///     unsafe fn transfer(&self, _: RwType, _: u64, _: &[UserIovec], _: RwfFlags) -> Result<usize> {
///         Ok(0)
///     }
///     fn start(&self, io: AsyncIo) {
///         assert_eq!((io.rw(), io.len(), io.iovecs().len()), (RwType::Read, 100, 1));
///         io.complete(Ok(0));
///     }
/// }
///
/// let buf = OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(8, 100)?);
/// let (mut kiocb, fut) = Kiocb::new_async_with(0, buf);
/// assert!(Empty.submit(&mut kiocb)?.is_queued());
/// let done = fut.wait();
/// assert_eq!((done.result, done.buf.count()), (Ok(0), 100));
/// # Ok::<(), iov_iter::Error>(())
/// ```
#[doc(alias = "bio")]
pub struct AsyncIo {
    rw: RwType,
    pos: u64,
    flags: RwfFlags,
    ioprio: u16,
    iov: NonNull<UserIovec>,
    nr: usize,
    len: usize,
    owner: Owner,
}

// SAFETY: the iovecs describe memory owned by the request (its `Erased`
// owner is `Send`), or by the split parent it keeps alive (`Arc<Split>`,
// `Send + Sync`); `&AsyncIo` only reads the addresses.
unsafe impl Send for AsyncIo {}
// SAFETY: as above.
unsafe impl Sync for AsyncIo {}

impl AsyncIo {
    /// A request owned by `req`, of `len` bytes in `req`'s iovecs.
    pub(crate) fn new(
        req: Box<dyn Erased>,
        rw: RwType,
        pos: u64,
        flags: RwfFlags,
        ioprio: u16,
        len: usize,
    ) -> AsyncIo {
        let owner = NonNull::from(Box::leak(req));
        // SAFETY: `owner` is the live allocation just leaked; the shared
        // borrow ends at once, the raw pointers stay valid until `finish`.
        let iov = unsafe { owner.as_ref() }.iovecs();
        AsyncIo {
            rw,
            pos,
            flags,
            ioprio,
            iov: NonNull::from(iov).cast(),
            nr: iov.len(),
            len,
            owner: Owner::Whole(owner),
        }
    }

    /// A read ([`RwType::Read`]: the memory is written) or a write.
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use std::sync::Mutex;
    /// # use iov_iter::buf::{AlignedBuf, OwnedIter};
    /// # use iov_iter::dio::{AsyncIo, AsyncMode, DioAlign, DioBuf, DirectIo};
    /// # use iov_iter::kiocb::{IocbFlags, Kiocb, RwType, RwfFlags};
    /// # use iov_iter::{Dest, Errno, Result, Source, UserIovec};
    /// # /// Keeps the request it is given: the example plays the device.
    /// # struct Keep(Mutex<Option<AsyncIo>>);
    /// # impl DirectIo for Keep {
    /// #     fn dio_align(&self) -> DioAlign { DioAlign::new(1, 1).unwrap() }
    /// #     unsafe fn transfer(&self, _: RwType, _: u64, _: &[UserIovec], _: RwfFlags) -> Result<usize> {
    /// #         unreachable!("async only")
    /// #     }
    /// #     fn async_mode(&self) -> AsyncMode { AsyncMode::Queued }
    /// #     fn start(&self, io: AsyncIo) { *self.0.lock().unwrap() = Some(io) }
    /// # }
    /// # /// Submits `kiocb`: the request a backend's `start` receives.
    /// # fn started<I: DioBuf>(mut kiocb: Kiocb<I>) -> AsyncIo {
    /// #     let dev = Keep(Mutex::default());
    /// #     assert!(dev.submit(&mut kiocb).unwrap().is_queued());
    /// #     dev.0.into_inner().unwrap().unwrap()
    /// # }
    /// # fn read_100() -> Result<OwnedIter<Dest, AlignedBuf>> {
    /// #     Ok(OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(8, 100)?))
    /// # }
    /// let (kiocb, _fut) = Kiocb::new_async_with(0, read_100()?);
    /// assert_eq!(started(kiocb).rw(), RwType::Read);
    /// let (kiocb, _fut) = Kiocb::new_async_with(0, OwnedIter::<Source, _>::new(vec![0u8; 100]));
    /// assert_eq!(started(kiocb).rw(), RwType::Write);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn rw(&self) -> RwType {
        self.rw
    }

    /// The byte position on the target (`ki_pos`).
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use std::sync::Mutex;
    /// # use iov_iter::buf::{AlignedBuf, OwnedIter};
    /// # use iov_iter::dio::{AsyncIo, AsyncMode, DioAlign, DioBuf, DirectIo};
    /// # use iov_iter::kiocb::{IocbFlags, Kiocb, RwType, RwfFlags};
    /// # use iov_iter::{Dest, Errno, Result, Source, UserIovec};
    /// # /// Keeps the request it is given: the example plays the device.
    /// # struct Keep(Mutex<Option<AsyncIo>>);
    /// # impl DirectIo for Keep {
    /// #     fn dio_align(&self) -> DioAlign { DioAlign::new(1, 1).unwrap() }
    /// #     unsafe fn transfer(&self, _: RwType, _: u64, _: &[UserIovec], _: RwfFlags) -> Result<usize> {
    /// #         unreachable!("async only")
    /// #     }
    /// #     fn async_mode(&self) -> AsyncMode { AsyncMode::Queued }
    /// #     fn start(&self, io: AsyncIo) { *self.0.lock().unwrap() = Some(io) }
    /// # }
    /// # /// Submits `kiocb`: the request a backend's `start` receives.
    /// # fn started<I: DioBuf>(mut kiocb: Kiocb<I>) -> AsyncIo {
    /// #     let dev = Keep(Mutex::default());
    /// #     assert!(dev.submit(&mut kiocb).unwrap().is_queued());
    /// #     dev.0.into_inner().unwrap().unwrap()
    /// # }
    /// # fn read_100() -> Result<OwnedIter<Dest, AlignedBuf>> {
    /// #     Ok(OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(8, 100)?))
    /// # }
    /// let (kiocb, _fut) = Kiocb::new_async_with(4096, read_100()?);
    /// assert_eq!(started(kiocb).pos(), 4096);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "bi_sector")]
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// The `RWF_*` flags, validated against the target's capabilities:
    /// the kiocb's `IOCB_*` flags that have an `RWF_*` twin.
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use std::sync::Mutex;
    /// # use iov_iter::buf::{AlignedBuf, OwnedIter};
    /// # use iov_iter::dio::{AsyncIo, AsyncMode, DioAlign, DioBuf, DirectIo};
    /// # use iov_iter::kiocb::{IocbFlags, Kiocb, RwType, RwfFlags};
    /// # use iov_iter::{Dest, Errno, Result, Source, UserIovec};
    /// # /// Keeps the request it is given: the example plays the device.
    /// # struct Keep(Mutex<Option<AsyncIo>>);
    /// # impl DirectIo for Keep {
    /// #     fn dio_align(&self) -> DioAlign { DioAlign::new(1, 1).unwrap() }
    /// #     unsafe fn transfer(&self, _: RwType, _: u64, _: &[UserIovec], _: RwfFlags) -> Result<usize> {
    /// #         unreachable!("async only")
    /// #     }
    /// #     fn async_mode(&self) -> AsyncMode { AsyncMode::Queued }
    /// #     fn start(&self, io: AsyncIo) { *self.0.lock().unwrap() = Some(io) }
    /// # }
    /// # /// Submits `kiocb`: the request a backend's `start` receives.
    /// # fn started<I: DioBuf>(mut kiocb: Kiocb<I>) -> AsyncIo {
    /// #     let dev = Keep(Mutex::default());
    /// #     assert!(dev.submit(&mut kiocb).unwrap().is_queued());
    /// #     dev.0.into_inner().unwrap().unwrap()
    /// # }
    /// # fn read_100() -> Result<OwnedIter<Dest, AlignedBuf>> {
    /// #     Ok(OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(8, 100)?))
    /// # }
    /// let (kiocb, _fut) = Kiocb::new_async_with(0, read_100()?);
    /// let kiocb = kiocb.with_flags(IocbFlags::DSYNC | IocbFlags::DIRECT);
    /// assert_eq!(started(kiocb).flags(), RwfFlags::DSYNC); // IOCB_DIRECT has no twin
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn flags(&self) -> RwfFlags {
        self.flags
    }

    /// The I/O priority (`ki_ioprio`).
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use std::sync::Mutex;
    /// # use iov_iter::buf::{AlignedBuf, OwnedIter};
    /// # use iov_iter::dio::{AsyncIo, AsyncMode, DioAlign, DioBuf, DirectIo};
    /// # use iov_iter::kiocb::{IocbFlags, Kiocb, RwType, RwfFlags};
    /// # use iov_iter::{Dest, Errno, Result, Source, UserIovec};
    /// # /// Keeps the request it is given: the example plays the device.
    /// # struct Keep(Mutex<Option<AsyncIo>>);
    /// # impl DirectIo for Keep {
    /// #     fn dio_align(&self) -> DioAlign { DioAlign::new(1, 1).unwrap() }
    /// #     unsafe fn transfer(&self, _: RwType, _: u64, _: &[UserIovec], _: RwfFlags) -> Result<usize> {
    /// #         unreachable!("async only")
    /// #     }
    /// #     fn async_mode(&self) -> AsyncMode { AsyncMode::Queued }
    /// #     fn start(&self, io: AsyncIo) { *self.0.lock().unwrap() = Some(io) }
    /// # }
    /// # /// Submits `kiocb`: the request a backend's `start` receives.
    /// # fn started<I: DioBuf>(mut kiocb: Kiocb<I>) -> AsyncIo {
    /// #     let dev = Keep(Mutex::default());
    /// #     assert!(dev.submit(&mut kiocb).unwrap().is_queued());
    /// #     dev.0.into_inner().unwrap().unwrap()
    /// # }
    /// # fn read_100() -> Result<OwnedIter<Dest, AlignedBuf>> {
    /// #     Ok(OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(8, 100)?))
    /// # }
    /// let (kiocb, _fut) = Kiocb::new_async_with(0, read_100()?);
    /// let idle = 3 << 13; // IOPRIO_PRIO_VALUE(IOPRIO_CLASS_IDLE, 0)
    /// assert_eq!(started(kiocb.with_ioprio(idle)).ioprio(), idle);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "bi_ioprio")]
    #[doc(alias = "ki_ioprio")]
    pub fn ioprio(&self) -> u16 {
        self.ioprio
    }

    /// Bytes the request covers (the sum of the iovec lengths).
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use std::sync::Mutex;
    /// # use iov_iter::buf::{AlignedBuf, OwnedIter};
    /// # use iov_iter::dio::{AsyncIo, AsyncMode, DioAlign, DioBuf, DirectIo};
    /// # use iov_iter::kiocb::{IocbFlags, Kiocb, RwType, RwfFlags};
    /// # use iov_iter::{Dest, Errno, Result, Source, UserIovec};
    /// # /// Keeps the request it is given: the example plays the device.
    /// # struct Keep(Mutex<Option<AsyncIo>>);
    /// # impl DirectIo for Keep {
    /// #     fn dio_align(&self) -> DioAlign { DioAlign::new(1, 1).unwrap() }
    /// #     unsafe fn transfer(&self, _: RwType, _: u64, _: &[UserIovec], _: RwfFlags) -> Result<usize> {
    /// #         unreachable!("async only")
    /// #     }
    /// #     fn async_mode(&self) -> AsyncMode { AsyncMode::Queued }
    /// #     fn start(&self, io: AsyncIo) { *self.0.lock().unwrap() = Some(io) }
    /// # }
    /// # /// Submits `kiocb`: the request a backend's `start` receives.
    /// # fn started<I: DioBuf>(mut kiocb: Kiocb<I>) -> AsyncIo {
    /// #     let dev = Keep(Mutex::default());
    /// #     assert!(dev.submit(&mut kiocb).unwrap().is_queued());
    /// #     dev.0.into_inner().unwrap().unwrap()
    /// # }
    /// # fn read_100() -> Result<OwnedIter<Dest, AlignedBuf>> {
    /// #     Ok(OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(8, 100)?))
    /// # }
    /// let (kiocb, _fut) = Kiocb::new_async_with(0, read_100()?);
    /// let io = started(kiocb);
    /// assert_eq!(io.len(), io.iovecs().iter().map(|v| v.len).sum::<usize>());
    /// assert_eq!(io.len(), 100);
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "bi_size")]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the request covers no byte (never, for a started one: an
    /// empty request completes without reaching the backend).
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use std::sync::Mutex;
    /// # use iov_iter::buf::{AlignedBuf, OwnedIter};
    /// # use iov_iter::dio::{AsyncIo, AsyncMode, DioAlign, DioBuf, DirectIo};
    /// # use iov_iter::kiocb::{IocbFlags, Kiocb, RwType, RwfFlags};
    /// # use iov_iter::{Dest, Errno, Result, Source, UserIovec};
    /// # /// Keeps the request it is given: the example plays the device.
    /// # struct Keep(Mutex<Option<AsyncIo>>);
    /// # impl DirectIo for Keep {
    /// #     fn dio_align(&self) -> DioAlign { DioAlign::new(1, 1).unwrap() }
    /// #     unsafe fn transfer(&self, _: RwType, _: u64, _: &[UserIovec], _: RwfFlags) -> Result<usize> {
    /// #         unreachable!("async only")
    /// #     }
    /// #     fn async_mode(&self) -> AsyncMode { AsyncMode::Queued }
    /// #     fn start(&self, io: AsyncIo) { *self.0.lock().unwrap() = Some(io) }
    /// # }
    /// # /// Submits `kiocb`: the request a backend's `start` receives.
    /// # fn started<I: DioBuf>(mut kiocb: Kiocb<I>) -> AsyncIo {
    /// #     let dev = Keep(Mutex::default());
    /// #     assert!(dev.submit(&mut kiocb).unwrap().is_queued());
    /// #     dev.0.into_inner().unwrap().unwrap()
    /// # }
    /// # fn read_100() -> Result<OwnedIter<Dest, AlignedBuf>> {
    /// #     Ok(OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(8, 100)?))
    /// # }
    /// let (kiocb, _fut) = Kiocb::new_async_with(0, read_100()?);
    /// assert!(!started(kiocb).is_empty());
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The memory, as `struct iovec`s: valid, and reached by nothing
    /// else, until the request completes.
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use std::sync::Mutex;
    /// # use iov_iter::buf::{AlignedBuf, OwnedIter};
    /// # use iov_iter::dio::{AsyncIo, AsyncMode, DioAlign, DioBuf, DirectIo};
    /// # use iov_iter::kiocb::{IocbFlags, Kiocb, RwType, RwfFlags};
    /// # use iov_iter::{Dest, Errno, Result, Source, UserIovec};
    /// # /// Keeps the request it is given: the example plays the device.
    /// # struct Keep(Mutex<Option<AsyncIo>>);
    /// # impl DirectIo for Keep {
    /// #     fn dio_align(&self) -> DioAlign { DioAlign::new(1, 1).unwrap() }
    /// #     unsafe fn transfer(&self, _: RwType, _: u64, _: &[UserIovec], _: RwfFlags) -> Result<usize> {
    /// #         unreachable!("async only")
    /// #     }
    /// #     fn async_mode(&self) -> AsyncMode { AsyncMode::Queued }
    /// #     fn start(&self, io: AsyncIo) { *self.0.lock().unwrap() = Some(io) }
    /// # }
    /// # /// Submits `kiocb`: the request a backend's `start` receives.
    /// # fn started<I: DioBuf>(mut kiocb: Kiocb<I>) -> AsyncIo {
    /// #     let dev = Keep(Mutex::default());
    /// #     assert!(dev.submit(&mut kiocb).unwrap().is_queued());
    /// #     dev.0.into_inner().unwrap().unwrap()
    /// # }
    /// # fn read_100() -> Result<OwnedIter<Dest, AlignedBuf>> {
    /// #     Ok(OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(8, 100)?))
    /// # }
    /// let parts: Vec<Box<[u8]>> = vec![vec![1; 60].into(), vec![2; 40].into()];
    /// let first = parts[0].as_ptr();
    /// let (kiocb, _fut) = Kiocb::new_async_with(0, OwnedIter::<Source, _>::new(parts));
    /// let io = started(kiocb);
    /// let segs: Vec<_> = io.iovecs().iter().map(|v| (v.base.cast_const(), v.len)).collect();
    /// assert_eq!((segs.len(), segs[0], segs[1].1), (2, (first, 60), 40));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "bi_io_vec")]
    pub fn iovecs(&self) -> &[UserIovec] {
        // SAFETY: `iov` points to `nr` iovecs inside the owner's allocation
        // (or the split parent's), alive until `finish`, which needs `self`.
        unsafe { core::slice::from_raw_parts(self.iov.as_ptr(), self.nr) }
    }

    /// Moves the request to byte position `pos` on the device: what a layer
    /// that maps file offsets to device offsets does before passing a part
    /// of a request on (a `bio`'s `bi_sector`). The kiocb's position, in
    /// its completion, is not changed.
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use std::sync::Mutex;
    /// # use iov_iter::buf::{AlignedBuf, OwnedIter};
    /// # use iov_iter::dio::{AsyncIo, AsyncMode, DioAlign, DioBuf, DirectIo};
    /// # use iov_iter::kiocb::{IocbFlags, Kiocb, RwType, RwfFlags};
    /// # use iov_iter::{Dest, Errno, Result, Source, UserIovec};
    /// # /// Keeps the request it is given: the example plays the device.
    /// # struct Keep(Mutex<Option<AsyncIo>>);
    /// # impl DirectIo for Keep {
    /// #     fn dio_align(&self) -> DioAlign { DioAlign::new(1, 1).unwrap() }
    /// #     unsafe fn transfer(&self, _: RwType, _: u64, _: &[UserIovec], _: RwfFlags) -> Result<usize> {
    /// #         unreachable!("async only")
    /// #     }
    /// #     fn async_mode(&self) -> AsyncMode { AsyncMode::Queued }
    /// #     fn start(&self, io: AsyncIo) { *self.0.lock().unwrap() = Some(io) }
    /// # }
    /// # /// Submits `kiocb`: the request a backend's `start` receives.
    /// # fn started<I: DioBuf>(mut kiocb: Kiocb<I>) -> AsyncIo {
    /// #     let dev = Keep(Mutex::default());
    /// #     assert!(dev.submit(&mut kiocb).unwrap().is_queued());
    /// #     dev.0.into_inner().unwrap().unwrap()
    /// # }
    /// # fn read_100() -> Result<OwnedIter<Dest, AlignedBuf>> {
    /// #     Ok(OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(8, 100)?))
    /// # }
    /// let (kiocb, mut fut) = Kiocb::new_async_with(4096, read_100()?);
    /// let mut io = started(kiocb);
    /// io.set_pos((1 << 20) + 4096); // file offset 4096 lives at 1 MiB + 4096
    /// assert_eq!(io.pos(), (1 << 20) + 4096);
    /// io.complete(Ok(100));
    /// assert_eq!(fut.try_take().map(|done| done.pos), Some(4096 + 100)); // the file's
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    pub fn set_pos(&mut self, pos: u64) {
        self.pos = pos;
    }

    /// Splits the request at byte `at` into the first `at` bytes and the
    /// rest, at positions `pos` and `pos + at` (`bio_split`). The two
    /// complete independently, in any order, on any thread; the original
    /// request completes once both have, with what a sequential transfer
    /// would report: the bytes moved contiguously from the start (the first
    /// part's error if it moved nothing). A layer above a device splits a
    /// request at extent boundaries this way and keeps every part in
    /// flight at once.
    ///
    /// # Errors
    ///
    /// The request itself, unchanged, when `at` is 0 or not below
    /// [`AsyncIo::len`].
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::buf::{AlignedBuf, OwnedIter};
    /// use iov_iter::dio::{AsyncIo, DioAlign, DirectIo};
    /// use iov_iter::kiocb::{Kiocb, RwType, RwfFlags};
    /// use iov_iter::{Dest, Result, UserIovec};
    ///
    /// /// Byte 0..512 is a hole; the rest reads 0xee.
    /// struct HoleThenData;
    /// impl DirectIo for HoleThenData {
    ///     fn dio_align(&self) -> DioAlign {
    ///         DioAlign::new(512, 512).unwrap()
    ///     }
    ///     unsafe fn transfer(&self, _: RwType, _: u64, _: &[UserIovec], _: RwfFlags) -> Result<usize> {
    ///         unimplemented!("async only")
    ///     }
    ///     fn start(&self, io: AsyncIo) {
    ///         let (hole, data) = io.split_at(512).unwrap();
    ///         hole.zero_fill().unwrap();
    ///         for v in data.iovecs() {
    ///             // SAFETY: a read's memory is ours to write until it completes.
    ///             unsafe { v.base.write_bytes(0xee, v.len) };
    ///         }
    ///         let n = data.len();
    ///         data.complete(Ok(n));
    ///     }
    /// }
    ///
    /// let buf = OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(512, 2048)?);
    /// let (mut kiocb, fut) = Kiocb::new_async_with(0, buf);
    /// assert!(HoleThenData.submit(&mut kiocb)?.is_queued());
    /// let done = fut.wait();
    /// assert_eq!(done.result, Ok(2048));
    /// let bytes = done.buf.into_inner();
    /// assert!(bytes[..512].iter().all(|&b| b == 0) && bytes[512..].iter().all(|&b| b == 0xee));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "bio_split")]
    pub fn split_at(self, at: usize) -> core::result::Result<(AsyncIo, AsyncIo), AsyncIo> {
        if at == 0 || at >= self.len {
            return Err(self);
        }
        let (mut head, mut tail) = (SegArray::new(), SegArray::new());
        let mut off = 0usize;
        for v in self.iovecs() {
            let (a, b) = (off, off + v.len);
            if b <= at {
                head.push(*v);
            } else if a >= at {
                tail.push(*v);
            } else {
                let k = at - a;
                head.push(UserIovec::new(v.base, k));
                // `k < v.len`: the pointer stays inside the iovec's memory.
                tail.push(UserIovec::new(v.base.wrapping_add(k), v.len - k));
            }
            off = b;
        }
        let (rw, pos, flags, ioprio, len) = (self.rw, self.pos, self.flags, self.ioprio, self.len);
        let split = Arc::new(Split {
            parent: SpinLock::new(None),
            results: SpinLock::new(alloc::vec![None; 2]),
            lens: alloc::vec![at, len - at],
            left: AtomicUsize::new(2),
            iovs: alloc::vec![head, tail],
        });
        *split.parent.lock() = Some(self);
        let part = |i: usize, pos: u64, len: usize| AsyncIo {
            rw,
            pos,
            flags,
            ioprio,
            // The arrays live in the `Split`, which the parts keep alive.
            iov: NonNull::from(&split.iovs[i][..]).cast(),
            nr: split.iovs[i].len(),
            len,
            owner: Owner::Part(Arc::clone(&split), i),
        };
        let head = part(0, pos, at);
        let tail = part(1, pos.saturating_add(at as u64), len - at);
        Ok((head, tail))
    }

    /// Completes a read as if every byte read zero, without I/O: what a
    /// filesystem does for a hole or an unwritten extent. The memory is
    /// zeroed and the request completes with its full length.
    ///
    /// # Errors
    ///
    /// The request itself, for a write (whose memory is the data to write,
    /// not to be overwritten).
    ///
    /// # Examples
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use std::sync::Mutex;
    /// # use iov_iter::buf::{AlignedBuf, OwnedIter};
    /// # use iov_iter::dio::{AsyncIo, AsyncMode, DioAlign, DioBuf, DirectIo};
    /// # use iov_iter::kiocb::{IocbFlags, Kiocb, RwType, RwfFlags};
    /// # use iov_iter::{Dest, Errno, Result, Source, UserIovec};
    /// # /// Keeps the request it is given: the example plays the device.
    /// # struct Keep(Mutex<Option<AsyncIo>>);
    /// # impl DirectIo for Keep {
    /// #     fn dio_align(&self) -> DioAlign { DioAlign::new(1, 1).unwrap() }
    /// #     unsafe fn transfer(&self, _: RwType, _: u64, _: &[UserIovec], _: RwfFlags) -> Result<usize> {
    /// #         unreachable!("async only")
    /// #     }
    /// #     fn async_mode(&self) -> AsyncMode { AsyncMode::Queued }
    /// #     fn start(&self, io: AsyncIo) { *self.0.lock().unwrap() = Some(io) }
    /// # }
    /// # /// Submits `kiocb`: the request a backend's `start` receives.
    /// # fn started<I: DioBuf>(mut kiocb: Kiocb<I>) -> AsyncIo {
    /// #     let dev = Keep(Mutex::default());
    /// #     assert!(dev.submit(&mut kiocb).unwrap().is_queued());
    /// #     dev.0.into_inner().unwrap().unwrap()
    /// # }
    /// # fn read_100() -> Result<OwnedIter<Dest, AlignedBuf>> {
    /// #     Ok(OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(8, 100)?))
    /// # }
    /// let (kiocb, mut fut) = Kiocb::new_async_with(0, OwnedIter::<Dest, _>::new(vec![0xffu8; 100]));
    /// started(kiocb).zero_fill().unwrap();
    /// let done = fut.try_take().unwrap();
    /// assert_eq!((done.result, done.buf.into_inner()), (Ok(100), vec![0; 100]));
    /// let (kiocb, _fut) = Kiocb::new_async_with(0, OwnedIter::<Source, _>::new(vec![1u8; 100]));
    /// assert!(started(kiocb).zero_fill().is_err()); // a write's data stays
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "zero_fill_bio")]
    pub fn zero_fill(self) -> core::result::Result<(), AsyncIo> {
        if self.rw != RwType::Read {
            return Err(self);
        }
        for v in self.iovecs() {
            // SAFETY: a read's iovecs describe memory the request owns,
            // valid for writes and reached by nothing else until it
            // completes (the `AsyncIo` contract).
            unsafe { core::ptr::write_bytes(v.base, 0, v.len) };
        }
        let n = self.len;
        self.complete(Ok(n));
        Ok(())
    }

    /// The same request, whose result passes through `hook` before the
    /// request completes: what a layer that must act when the I/O is done
    /// uses (a filesystem converting unwritten extents or growing the file
    /// size, the kernel's `iomap_dio_ops->end_io` and `bi_end_io` chaining).
    /// The hook runs exactly once, on the thread that completes the request,
    /// with the merged result of everything the request was split into; what
    /// it returns is the result the kiocb's completion gets. A request
    /// dropped without completing runs the hook with `ECANCELED`. One
    /// allocation.
    ///
    /// # Examples
    ///
    /// ```
    /// use iov_iter::buf::{AlignedBuf, OwnedIter};
    /// use iov_iter::dio::{AsyncIo, DioAlign, DirectIo};
    /// use iov_iter::kiocb::{Kiocb, RwType, RwfFlags};
    /// use iov_iter::{Result, Source, UserIovec};
    ///
    /// /// Accepts the data, then fails the commit of the last half.
    /// struct HalfCommit;
    /// impl DirectIo for HalfCommit {
    ///     fn dio_align(&self) -> DioAlign {
    ///         DioAlign::new(1, 1).unwrap()
    ///     }
    ///     unsafe fn transfer(&self, _: RwType, _: u64, _: &[UserIovec], _: RwfFlags) -> Result<usize> {
    ///         unreachable!()
    ///     }
    ///     fn start(&self, io: AsyncIo) {
    ///         let io = io.on_complete(|res| res.map(|n| n / 2));
    ///         let n = io.len();
    ///         io.complete(Ok(n));
    ///     }
    /// }
    ///
    /// let buf = OwnedIter::<Source, _>::new(AlignedBuf::zeroed(8, 100)?);
    /// let (mut kiocb, fut) = Kiocb::new_async_with(0, buf);
    /// assert!(HalfCommit.submit(&mut kiocb)?.is_queued());
    /// let done = fut.wait();
    /// assert_eq!((done.result, done.buf.count()), (Ok(50), 50));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "bi_end_io")]
    pub fn on_complete<F>(self, hook: F) -> AsyncIo
    where
        F: FnOnce(Result<usize>) -> Result<usize> + Send + 'static,
    {
        let (rw, pos, flags, ioprio, iov, nr, len) = (
            self.rw,
            self.pos,
            self.flags,
            self.ioprio,
            self.iov,
            self.nr,
            self.len,
        );
        // The request's iovecs live in its owner's heap allocation (or a
        // split's), not in the `AsyncIo` moved into the hook: `iov` stays
        // valid.
        let hooked: Box<dyn Hook> = Box::new(Hooked { parent: self, hook });
        AsyncIo {
            rw,
            pos,
            flags,
            ioprio,
            iov,
            nr,
            len,
            owner: Owner::Hooked(NonNull::from(Box::leak(hooked))),
        }
    }

    /// Completes the request with the bytes transferred (a short count is
    /// end of file or of space) or the error: the kiocb's completion runs,
    /// with the buffer advanced by the bytes, exactly once.
    ///
    /// ```
    /// # #![allow(dead_code, unused_imports)]
    /// # use std::sync::Mutex;
    /// # use iov_iter::buf::{AlignedBuf, OwnedIter};
    /// # use iov_iter::dio::{AsyncIo, AsyncMode, DioAlign, DioBuf, DirectIo};
    /// # use iov_iter::kiocb::{IocbFlags, Kiocb, RwType, RwfFlags};
    /// # use iov_iter::{Dest, Errno, Result, Source, UserIovec};
    /// # /// Keeps the request it is given: the example plays the device.
    /// # struct Keep(Mutex<Option<AsyncIo>>);
    /// # impl DirectIo for Keep {
    /// #     fn dio_align(&self) -> DioAlign { DioAlign::new(1, 1).unwrap() }
    /// #     unsafe fn transfer(&self, _: RwType, _: u64, _: &[UserIovec], _: RwfFlags) -> Result<usize> {
    /// #         unreachable!("async only")
    /// #     }
    /// #     fn async_mode(&self) -> AsyncMode { AsyncMode::Queued }
    /// #     fn start(&self, io: AsyncIo) { *self.0.lock().unwrap() = Some(io) }
    /// # }
    /// # /// Submits `kiocb`: the request a backend's `start` receives.
    /// # fn started<I: DioBuf>(mut kiocb: Kiocb<I>) -> AsyncIo {
    /// #     let dev = Keep(Mutex::default());
    /// #     assert!(dev.submit(&mut kiocb).unwrap().is_queued());
    /// #     dev.0.into_inner().unwrap().unwrap()
    /// # }
    /// # fn read_100() -> Result<OwnedIter<Dest, AlignedBuf>> {
    /// #     Ok(OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(8, 100)?))
    /// # }
    /// let (kiocb, mut fut) = Kiocb::new_async_with(0, read_100()?);
    /// started(kiocb).complete(Ok(40)); // a short read: end of file at 40
    /// let done = fut.try_take().unwrap();
    /// assert_eq!((done.result, done.pos, done.buf.count()), (Ok(40), 40, 60));
    /// let (kiocb, mut fut) = Kiocb::new_async_with(0, read_100()?);
    /// started(kiocb).complete(Err(Errno::EIO.into()));
    /// let done = fut.try_take().unwrap();
    /// assert_eq!((done.result.unwrap_err().errno(), done.buf.count()), (Errno::EIO, 100));
    /// # Ok::<(), iov_iter::Error>(())
    /// ```
    #[doc(alias = "bio_endio")]
    #[doc(alias = "ki_complete")]
    pub fn complete(mut self, result: Result<usize>) {
        self.finish(result);
    }

    fn finish(&mut self, result: Result<usize>) {
        match core::mem::replace(&mut self.owner, Owner::Done) {
            Owner::Whole(p) => {
                // SAFETY: `p` came from `Box::leak` in `new` and is freed
                // only here, once (the owner is now `Done`).
                let owner = unsafe { Box::from_raw(p.as_ptr()) };
                owner.finish(result);
            }
            Owner::Part(split, i) => split.part_done(i, result),
            Owner::Hooked(p) => {
                // SAFETY: `p` came from `Box::leak` in `on_complete` and is
                // freed only here, once (the owner is now `Done`).
                let hook = unsafe { Box::from_raw(p.as_ptr()) };
                hook.finish(result);
            }
            Owner::Done => {}
        }
    }
}

impl Drop for AsyncIo {
    /// A request dropped without completing (a backend shutting down)
    /// completes with `ECANCELED`.
    fn drop(&mut self) {
        self.finish(Err(Error::Os(Errno::ECANCELED)));
    }
}

impl fmt::Debug for AsyncIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncIo")
            .field("rw", &self.rw)
            .field("pos", &self.pos)
            .field("len", &self.len)
            .field("nr_segs", &self.nr)
            .field("flags", &self.flags)
            .finish()
    }
}

/// The owner of a hooked request ([`AsyncIo::on_complete`]).
trait Hook: Send {
    fn finish(self: Box<Self>, res: Result<usize>);
}

struct Hooked<F> {
    parent: AsyncIo,
    hook: F,
}

impl<F: FnOnce(Result<usize>) -> Result<usize> + Send> Hook for Hooked<F> {
    fn finish(self: Box<Self>, res: Result<usize>) {
        let Hooked { parent, hook } = *self;
        // A panicking hook drops `parent`, which completes with ECANCELED.
        let res = hook(res);
        parent.complete(res);
    }
}

/// A request split into parts: completes once every part has, with the
/// bytes transferred contiguously from the start (as a sequential transfer
/// would have stopped at the first short or failed part).
struct Split {
    parent: SpinLock<Option<AsyncIo>>,
    results: SpinLock<Vec<Option<Result<usize>>>>,
    lens: Vec<usize>,
    left: AtomicUsize,
    /// The parts' own iovec arrays, where a cut fell inside an iovec (empty
    /// when the parts point into the parent's array).
    iovs: Vec<SegArray>,
}

impl Split {
    fn part_done(&self, i: usize, res: Result<usize>) {
        self.results.lock()[i] = Some(res);
        if self.left.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let merged = merge(&self.results.lock(), &self.lens);
        let parent = self.parent.lock().take();
        if let Some(parent) = parent {
            parent.complete(merged);
        }
    }
}

// SAFETY: the iovec arrays hold addresses of memory the parent request
// owns (and keeps until every part has completed); they are only read. The
// rest is behind spin locks or atomic.
unsafe impl Send for Split {}
// SAFETY: as above: shared access only reads the arrays and the lengths.
unsafe impl Sync for Split {}

/// What a sequential transfer of the parts would have reported.
fn merge(results: &[Option<Result<usize>>], lens: &[usize]) -> Result<usize> {
    let mut total = 0usize;
    for (r, &len) in results.iter().zip(lens) {
        match r {
            Some(Ok(n)) => {
                total += (*n).min(len);
                if *n < len {
                    break;
                }
            }
            Some(Err(e)) => {
                if total == 0 {
                    return Err(*e);
                }
                break;
            }
            None => break,
        }
    }
    Ok(total)
}

/// Splits `io` into parts of at most `max_segs` iovecs (all of it when it
/// has no more).
pub(crate) fn split(io: AsyncIo, max_segs: usize) -> SmallVec<[AsyncIo; 1]> {
    let max_segs = max_segs.max(1);
    let mut out = SmallVec::new();
    if io.nr <= max_segs {
        out.push(io);
        return out;
    }
    let (rw, pos, flags, ioprio) = (io.rw, io.pos, io.flags, io.ioprio);
    let ranges: Vec<(usize, usize, usize)> = {
        let iov = io.iovecs();
        let mut v = Vec::new();
        let mut first = 0;
        let mut off = 0usize;
        while first < iov.len() {
            let n = (iov.len() - first).min(max_segs);
            let bytes = iov[first..first + n].iter().map(|v| v.len).sum::<usize>();
            v.push((first, n, off));
            off += bytes;
            first += n;
        }
        v
    };
    let lens: Vec<usize> = {
        let iov = io.iovecs();
        ranges
            .iter()
            .map(|&(f, n, _)| iov[f..f + n].iter().map(|v| v.len).sum())
            .collect()
    };
    let base = io.iov;
    let split = Arc::new(Split {
        parent: SpinLock::new(None),
        results: SpinLock::new(alloc::vec![None; ranges.len()]),
        lens: lens.clone(),
        left: AtomicUsize::new(ranges.len()),
        iovs: Vec::new(),
    });
    *split.parent.lock() = Some(io);
    for (i, &(first, n, off)) in ranges.iter().enumerate() {
        out.push(AsyncIo {
            rw,
            pos: pos.saturating_add(off as u64),
            flags,
            ioprio,
            // SAFETY: `first + n <= nr`: inside the parent's iovec array,
            // which the `Split` keeps alive until every part has finished.
            iov: unsafe { base.add(first) },
            nr: n,
            len: lens[i],
            owner: Owner::Part(Arc::clone(&split), i),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::merge;
    use crate::{Errno, Error};

    #[test]
    fn merge_is_what_a_sequential_transfer_reports() {
        let eio = Err(Error::Os(Errno::EIO));
        assert_eq!(merge(&[Some(Ok(4)), Some(Ok(4))], &[4, 4]), Ok(8));
        assert_eq!(merge(&[Some(Ok(2)), Some(Ok(4))], &[4, 4]), Ok(2));
        assert_eq!(merge(&[Some(Ok(4)), Some(eio)], &[4, 4]), Ok(4));
        assert_eq!(merge(&[Some(eio), Some(Ok(4))], &[4, 4]), eio);
    }
}
