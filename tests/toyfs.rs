//! A downstream case: a toy extent filesystem written against the crate's
//! one I/O contract. It implements `DirectIo` by mapping file ranges to
//! extents (mapped at a device offset, or holes) and passing each piece of
//! a request on to its device: asynchronous reads split at extent
//! boundaries with `AsyncIo::split_at` and remapped with `AsyncIo::set_pos`
//! go to the device all at once, holes are zero-filled without I/O
//! (`AsyncIo::zero_fill`), reads stop at the file size. The caller's owned
//! buffer receives the data directly: the device sees only addresses inside
//! it. (The crate's generic iomap path will take this job from filesystems;
//! here it shows the contract is enough to write one.)
//!
//! On the RAM backend (deferred completions, runs under Miri) and on
//! io_uring over a real file.

mod common;

use std::sync::Arc;

use common::{Recorder, block};
use iov_iter::backend::mem::{MemDevice, PendingOrder};
use iov_iter::buf::{AlignedBuf, OwnedIter};
use iov_iter::dio::{AsyncIo, AsyncMode, DioAlign, DirectIo};
use iov_iter::kiocb::{Kiocb, RwType, RwfFlags, Submitted};
use iov_iter::{Dest, Errno, Error, IovIter, Result, Source, Ubuf, UserIovec};

#[derive(Debug, Clone, Copy)]
enum Kind {
    Mapped { dev: u64 },
    Hole,
}

#[derive(Debug, Clone, Copy)]
struct Extent {
    off: u64,
    len: u64,
    kind: Kind,
}

/// A file of `size` bytes made of `extents` (sorted, contiguous, covering
/// at least `[0, size)`) on a device.
struct ToyFs<D> {
    dev: D,
    extents: Vec<Extent>,
    size: u64,
}

impl<D: DirectIo> ToyFs<D> {
    /// The extent holding `pos`.
    fn extent(&self, pos: u64) -> Option<Extent> {
        self.extents
            .iter()
            .copied()
            .find(|e| e.off <= pos && pos < e.off + e.len)
    }
}

/// The iovecs covering bytes `[from, from + len)` of `iov`.
fn cut(iov: &[UserIovec], from: usize, len: usize) -> Vec<UserIovec> {
    let mut out = Vec::new();
    let (mut off, end) = (0usize, from + len);
    for v in iov {
        let (a, b) = (off, off + v.len);
        let (lo, hi) = (a.max(from), b.min(end));
        if lo < hi {
            out.push(UserIovec::new(v.base.wrapping_add(lo - a), hi - lo));
        }
        off = b;
    }
    out
}

impl<D: DirectIo> DirectIo for ToyFs<D> {
    fn dio_align(&self) -> DioAlign {
        self.dev.dio_align()
    }

    fn async_mode(&self) -> AsyncMode {
        self.dev.async_mode()
    }

    /// The sync path: extent by extent, stopping at a short piece.
    unsafe fn transfer(
        &self,
        rw: RwType,
        pos: u64,
        iov: &[UserIovec],
        flags: RwfFlags,
    ) -> Result<usize> {
        let total: usize = iov.iter().map(|v| v.len).sum();
        let mut done = 0usize;
        while done < total {
            let at = pos + done as u64;
            if rw == RwType::Read && at >= self.size {
                break;
            }
            let Some(e) = self.extent(at) else { break };
            let mut n = ((e.off + e.len - at) as usize).min(total - done);
            if rw == RwType::Read {
                n = n.min((self.size - at) as usize);
            }
            let piece = cut(iov, done, n);
            let got = match (e.kind, rw) {
                (Kind::Mapped { dev }, _) => {
                    // SAFETY: `piece` is part of the caller's memory, under
                    // the caller's promises for this call.
                    match unsafe { self.dev.transfer(rw, dev + (at - e.off), &piece, flags) } {
                        Ok(got) => got,
                        Err(e) if done == 0 => return Err(e),
                        Err(_) => break,
                    }
                }
                (Kind::Hole, RwType::Read) => {
                    for v in &piece {
                        // SAFETY: a read's memory is writable for the call.
                        unsafe { v.base.write_bytes(0, v.len) };
                    }
                    n
                }
                (Kind::Hole, RwType::Write) if done == 0 => {
                    return Err(Error::NotSupported("toy fs: no allocation"));
                }
                (Kind::Hole, RwType::Write) => break,
            };
            done += got;
            if got < n {
                break;
            }
        }
        Ok(done)
    }

    /// The async path: every piece of the request at once.
    fn start(&self, io: AsyncIo) {
        let mut rest = Some(io);
        while let Some(io) = rest.take() {
            let pos = io.pos();
            if io.rw() == RwType::Read && pos >= self.size {
                io.complete(Ok(0)); // end of file
                continue;
            }
            let Some(e) = self.extent(pos) else {
                io.complete(Err(Error::Os(Errno::EIO)));
                continue;
            };
            let mut n = (e.off + e.len - pos) as usize;
            if io.rw() == RwType::Read {
                n = n.min((self.size - pos) as usize);
            }
            let mut piece = match io.split_at(n) {
                Ok((piece, tail)) => {
                    rest = Some(tail);
                    piece
                }
                Err(whole) => whole, // it fits in this extent
            };
            match e.kind {
                Kind::Mapped { dev } => {
                    piece.set_pos(dev + (pos - e.off));
                    self.dev.start(piece);
                }
                Kind::Hole => {
                    if let Err(write) = piece.zero_fill() {
                        write.complete(Err(Error::NotSupported("toy fs: no allocation")));
                    }
                }
            }
        }
    }

    fn drive(&self, min_complete: usize) -> Result<usize> {
        self.dev.drive(min_complete)
    }
}

const K: u64 = 1024;

/// `[0, 8K)` at device 64K, `[8K, 16K)` a hole, `[16K, 32K)` at device 8K;
/// the file is 28K long.
fn layout<D>(dev: D) -> ToyFs<D> {
    ToyFs {
        dev,
        extents: vec![
            Extent {
                off: 0,
                len: 8 * K,
                kind: Kind::Mapped { dev: 64 * K },
            },
            Extent {
                off: 8 * K,
                len: 8 * K,
                kind: Kind::Hole,
            },
            Extent {
                off: 16 * K,
                len: 16 * K,
                kind: Kind::Mapped { dev: 8 * K },
            },
        ],
        size: 28 * K,
    }
}

/// What the file reads as, `[0, 28K)`: device blocks 64K.. then zeros,
/// then device blocks 8K...
fn expected(dev_bytes: &[u8]) -> Vec<u8> {
    let mut v = dev_bytes[64 * K as usize..72 * K as usize].to_vec();
    v.extend(std::iter::repeat_n(0u8, 8 * K as usize));
    v.extend_from_slice(&dev_bytes[8 * K as usize..20 * K as usize]);
    v
}

#[test]
fn async_reads_keep_every_extent_in_flight_and_fill_holes_without_io() {
    let mem = MemDevice::new(96 * K as usize);
    mem.write_at(0, &block(1, 96 * K as usize));
    mem.defer_completions(Some(PendingOrder::Reverse));
    let fs = layout(Recorder::new(mem));
    let buf = AlignedBuf::with_capacity(512, 32 * K as usize).unwrap();
    let (start, cap) = (buf.as_ptr() as usize, buf.capacity());
    let (mut kiocb, fut) = Kiocb::new_async_with(0, OwnedIter::<Dest, _>::new(buf));
    assert_eq!(fs.submit(&mut kiocb), Ok(Submitted::Queued));
    // Both mapped extents are at the device at once; the hole needed none.
    assert_eq!(fs.dev.inner.pending(), 2);
    let seen = fs.dev.seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter()
            .map(|(pos, r)| (*pos, r.iter().map(|x| x.1).sum::<usize>()))
            .collect::<Vec<_>>(),
        [(64 * K, 8 * K as usize), (8 * K, 12 * K as usize)]
    );
    assert!(
        fs.dev.all_inside(start, cap),
        "straight into the caller's buffer"
    );
    let done = fs.block_on(fut);
    assert_eq!(
        (done.result, done.pos),
        (Ok(28 * K as usize), 28 * K),
        "stops at the size"
    );
    assert_eq!(fs.dev.inner.stats().reads, 2, "no read for the hole");
    let got = done.buf.into_inner();
    assert_eq!(
        got.len(),
        28 * K as usize,
        "initialised as far as the file goes"
    );
    assert_eq!(got.as_slice(), &expected(&fs.dev.inner.snapshot())[..]);
}

#[test]
fn writes_go_to_their_extents_and_holes_are_refused() {
    let mem = MemDevice::new(96 * K as usize);
    mem.defer_completions(Some(PendingOrder::Shuffled(3)));
    let fs = layout(mem);
    // [16K, 32K): one extent.
    let data = block(7, 16 * K as usize);
    let (mut kiocb, fut) = Kiocb::new_async_with(
        16 * K,
        OwnedIter::<Source, _>::new(AlignedBuf::from_slice(512, &data).unwrap()),
    );
    assert!(fs.submit(&mut kiocb).unwrap().is_queued());
    assert_eq!(fs.block_on(fut).result, Ok(16 * K as usize));
    assert_eq!(fs.dev.snapshot()[8 * K as usize..24 * K as usize], data[..]);
    // Into the hole: nothing written, the error, the buffer back.
    let (mut kiocb, fut) = Kiocb::new_async_with(
        8 * K,
        OwnedIter::<Source, _>::new(AlignedBuf::zeroed(512, 4096).unwrap()),
    );
    assert!(fs.submit(&mut kiocb).unwrap().is_queued());
    let done = fs.block_on(fut);
    assert_eq!(done.result.unwrap_err().errno(), Errno::EOPNOTSUPP);
    assert_eq!(done.buf.count(), 4096);
}

#[test]
fn sync_reads_through_borrowed_iterators_map_the_same_way() {
    let mem = MemDevice::new(96 * K as usize);
    mem.write_at(0, &block(2, 96 * K as usize));
    let fs = layout(mem);
    let mut buf = AlignedBuf::zeroed(512, 32 * K as usize).unwrap();
    let mut it = IovIter::<Dest, Ubuf>::new(&mut buf);
    let mut kiocb = Kiocb::new_sync(0);
    assert_eq!(
        fs.direct_io(&mut kiocb, &mut it),
        Ok(Submitted::Done(28 * K as usize))
    );
    assert_eq!((it.count(), kiocb.pos), (4 * K as usize, 28 * K));
    assert_eq!(buf[..28 * K as usize], expected(&fs.dev.snapshot())[..]);
    // Misaligned: refused before any I/O.
    let mut it = IovIter::<Dest, Ubuf>::new(&mut buf[..4096]);
    assert!(matches!(
        fs.direct_io(&mut Kiocb::new_sync(100), &mut it),
        Err(Error::Misaligned { .. })
    ));
    assert_eq!(fs.dev.stats().ios(), 2);
}

#[cfg(all(target_os = "linux", feature = "uring"))]
#[test]
#[cfg_attr(miri, ignore = "io_uring")]
fn on_io_uring_more_than_one_extent_is_in_flight() {
    use std::os::unix::fs::FileExt;
    let Some((q, path)) = common::uring_queue("toyfs", 32) else {
        return;
    };
    let data = block(4, 96 * K as usize);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all_at(&data, 0)
        .unwrap();
    let fs = Arc::new(layout(Recorder::new(q)));
    let mut futs = Vec::new();
    {
        let _plug = fs.dev.inner.plug(); // so none completes before we look
        for _ in 0..4 {
            let buf = AlignedBuf::with_capacity(4096, 32 * K as usize).unwrap();
            let (mut kiocb, fut) = Kiocb::new_async_with(0, OwnedIter::<Dest, _>::new(buf));
            assert_eq!(fs.submit(&mut kiocb), Ok(Submitted::Queued));
            futs.push(fut);
        }
        assert_eq!(
            fs.dev.inner.in_flight(),
            8,
            "two extents per read, all in flight"
        );
    }
    for fut in futs {
        let done = fs.block_on(fut);
        assert_eq!(done.result, Ok(28 * K as usize));
        assert_eq!(done.buf.into_inner().as_slice(), &expected(&data)[..]);
    }
    let _ = std::fs::remove_file(path);
}
