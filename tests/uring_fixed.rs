//! Registered buffers and files on the io_uring backend, through the one
//! I/O contract (`DirectIo::submit` with owned buffers, `DirectIo::direct_io`
//! with borrowed iterators), on real `O_DIRECT` files: `READ_FIXED` /
//! `WRITE_FIXED` round trips proven by the queue's counters, the fallback
//! for memory outside the arena, registered files on and off, two files on
//! one ring with I/O in flight on both, fsync (sync and async), the file
//! table's slots, and dropping handles with I/O in flight.
//!
//! Each test skips loudly (prints `SKIPPED` and the reason) when io_uring is
//! unavailable (ENOSYS, EPERM), the filesystem refuses `O_DIRECT`, or the
//! kernel refuses the registration a test is about.
#![cfg(all(target_os = "linux", feature = "uring"))]

use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use iov_iter::backend::file::DirectFile;
use iov_iter::backend::uring::{FixedBuf, UringBuilder, UringFile, UringQueue, UringStats};
use iov_iter::buf::{AlignedBuf, OwnedIter};
use iov_iter::dio::DirectIo;
use iov_iter::kiocb::{Completed, CompletionFuture, Kiocb, Submitted};
use iov_iter::{Dest, Errno, Error, IovIter, Source, Ubuf};

/// Bytes per block (and per registered buffer).
const BLK: usize = 8192;
const ALIGN: usize = 4096;

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("uring_fixed_{name}_{}", std::process::id()))
}

fn skip(name: &str, why: &str) {
    eprintln!("\n***** SKIPPED uring_fixed::{name}: {why} *****\n");
}

/// A fresh, empty `O_DIRECT` file, or `None` after a loud skip.
fn direct_file(name: &str) -> Option<(DirectFile, PathBuf)> {
    let p = path(name);
    let _ = std::fs::remove_file(&p);
    match DirectFile::options().create(true).truncate(true).open(&p) {
        Ok(f) => Some((f, p)),
        Err(e) if matches!(e.errno(), Errno::EINVAL | Errno::EOPNOTSUPP) => {
            skip(name, &format!("O_DIRECT refused on {}: {e}", p.display()));
            None
        }
        Err(e) => panic!("open {}: {e}", p.display()),
    }
}

/// A queue built by `builder` on a fresh file, or `None` after a loud skip.
fn queue(name: &str, builder: UringBuilder) -> Option<(UringQueue, PathBuf)> {
    let (f, p) = direct_file(name)?;
    match builder.build(f) {
        Ok(q) => Some((q, p)),
        Err(e) if matches!(e.errno(), Errno::ENOSYS | Errno::EPERM | Errno::ENOMEM) => {
            skip(name, &format!("io_uring setup failed: {e}"));
            None
        }
        Err(e) => panic!("io_uring setup: {e}"),
    }
}

/// Another fresh file on `q`'s ring.
fn add(q: &UringQueue, name: &str) -> Option<(UringFile, PathBuf)> {
    let (f, p) = direct_file(name)?;
    Some((q.add_file(f).expect("add_file"), p))
}

/// The pattern byte `i` of block `block` of file `tag`: different for every
/// file, block and offset (mod 2^64 words).
fn fill(buf: &mut [u8], tag: u64, block: u64) {
    for (w, chunk) in buf.chunks_mut(8).enumerate() {
        let x = (tag << 48) ^ (block << 24) ^ (w as u64) ^ 0x9e37_79b9_7f4a_7c15;
        let x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
}

fn pattern(tag: u64, block: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    fill(&mut v, tag, block);
    v
}

/// Asserts `bytes` is block `block` of file `tag`, byte for byte.
fn verify(bytes: &[u8], tag: u64, block: u64, what: &str) {
    let want = pattern(tag, block, bytes.len());
    if let Some(i) = bytes.iter().zip(&want).position(|(a, b)| a != b) {
        panic!("{what}: block {block} of file {tag:#x} differs at byte {i}");
    }
}

/// Asserts the file at `p` holds blocks `0..n` of `tag` (read back through
/// the page cache, which `O_DIRECT` writes keep coherent).
fn verify_file(p: &PathBuf, tag: u64, n: u64) {
    let data = std::fs::read(p).unwrap();
    assert!(data.len() >= n as usize * BLK, "{} is short", p.display());
    for b in 0..n {
        let at = b as usize * BLK;
        verify(&data[at..at + BLK], tag, b, &p.display().to_string());
    }
}

fn delta(after: UringStats, before: UringStats) -> (u64, u64, u64, u64) {
    (
        after.fixed_buffer_ops - before.fixed_buffer_ops,
        after.plain_ops - before.plain_ops,
        after.fsyncs - before.fsyncs,
        after.fixed_file_ops - before.fixed_file_ops,
    )
}

/// An aligned buffer holding block `block` of `tag`.
fn aligned_block(tag: u64, block: u64) -> AlignedBuf {
    AlignedBuf::from_slice(ALIGN, &pattern(tag, block, BLK)).unwrap()
}

/// Writes blocks `0..n` of `tag` on `dev` from aligned buffers, all in
/// flight at once, and waits for them.
fn write_blocks<T: DirectIo>(dev: &T, tag: u64, n: u64) {
    let futs: Vec<_> = (0..n)
        .map(|b| {
            let src = OwnedIter::<Source, _>::new(aligned_block(tag, b));
            let (mut kiocb, fut) = Kiocb::new_async_with(b * BLK as u64, src);
            assert!(dev.submit(&mut kiocb).unwrap().is_queued());
            fut
        })
        .collect();
    for fut in futs {
        assert_eq!(dev.block_on(fut).result, Ok(BLK));
    }
}

/// Reads blocks `0..n` on `dev` into aligned buffers, all in flight at
/// once, and checks they hold `tag`'s pattern.
fn read_blocks<T: DirectIo>(dev: &T, tag: u64, n: u64) {
    let futs: Vec<_> = (0..n)
        .map(|b| {
            let dst = OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(ALIGN, BLK).unwrap());
            let (mut kiocb, fut) = Kiocb::new_async_with(b * BLK as u64, dst);
            assert!(dev.submit(&mut kiocb).unwrap().is_queued());
            (b, fut)
        })
        .collect();
    for (b, fut) in futs {
        let done = dev.block_on(fut);
        assert_eq!(done.result, Ok(BLK));
        verify(&done.buf.into_inner(), tag, b, "aligned read");
    }
}

fn run<T: DirectIo, I: iov_iter::dio::DioBuf>(dev: &T, pos: u64, iter: I) -> Completed<I> {
    let (mut kiocb, fut) = Kiocb::new_async_with(pos, iter);
    assert!(dev.submit(&mut kiocb).unwrap().is_queued());
    dev.block_on(fut)
}

#[test]
#[cfg_attr(miri, ignore)]
fn fixed_buffers_round_trip_sixteen_async_reads_and_writes() {
    let name = "round_trip";
    let Some((q, p)) = queue(name, UringQueue::builder().depth(32)) else {
        return;
    };
    let pool = q.register_buffers(16, BLK, ALIGN).unwrap();
    if !pool.is_registered() {
        skip(name, "the kernel refused IORING_REGISTER_BUFFERS");
        return;
    }
    assert_eq!(
        (pool.len(), pool.buf_size(), pool.available()),
        (16, BLK, 16)
    );
    let before = q.stats();

    // 16 writes from registered buffers, all in flight at once.
    let mut futs = Vec::new();
    {
        let _plug = q.plug();
        for b in 0..16u64 {
            let mut buf = pool.get().expect("16 buffers");
            assert_eq!(buf.len(), BLK);
            assert_eq!(buf.as_ptr() as usize % ALIGN, 0);
            fill(&mut buf, 1, b);
            let (mut kiocb, fut) =
                Kiocb::new_async_with(b * BLK as u64, OwnedIter::<Source, _>::new(buf));
            assert!(q.submit(&mut kiocb).unwrap().is_queued());
            futs.push(fut);
        }
        assert!(pool.get().is_none(), "every buffer is in flight");
        assert_eq!((q.in_flight(), q.unsubmitted()), (16, 16));
    }
    for (b, fut) in futs.into_iter().enumerate() {
        let done = q.block_on(fut);
        assert_eq!(
            (done.result, done.pos),
            (Ok(BLK), (b + 1) as u64 * BLK as u64)
        );
        assert_eq!(done.buf.count(), 0);
        // The written buffer comes back, still holding what was written.
        verify(&done.buf.into_inner(), 1, b as u64, "written buffer");
    }
    assert_eq!(pool.available(), 16, "buffers went back to the pool");
    assert_eq!(delta(q.stats(), before), (16, 0, 0, 0), "WRITE_FIXED x16");
    verify_file(&p, 1, 16);

    // 16 reads into registered buffers, scribbled over first.
    let before = q.stats();
    let mut futs = Vec::new();
    {
        let _plug = q.plug();
        for b in 0..16u64 {
            let mut buf = pool.get().unwrap();
            buf.fill(0xee);
            let (mut kiocb, fut) =
                Kiocb::new_async_with(b * BLK as u64, OwnedIter::<Dest, _>::new(buf));
            assert!(q.submit(&mut kiocb).unwrap().is_queued());
            futs.push(fut);
        }
        assert_eq!(q.in_flight(), 16);
    }
    for (b, fut) in futs.into_iter().enumerate() {
        let done = q.block_on(fut);
        assert_eq!(done.result, Ok(BLK));
        let buf: FixedBuf = done.buf.into_inner();
        assert_eq!(buf.len(), BLK);
        verify(&buf, 1, b as u64, "READ_FIXED");
    }
    assert_eq!(delta(q.stats(), before), (16, 0, 0, 0), "READ_FIXED x16");
    assert_eq!(pool.available(), 16);
}

#[test]
#[cfg_attr(miri, ignore)]
fn memory_outside_the_arena_falls_back_and_still_works() {
    let name = "fallback";
    let Some((q, p)) = queue(name, UringQueue::builder().depth(8)) else {
        return;
    };
    let pool = q.register_buffers(4, BLK, ALIGN).unwrap();
    let fixed = u64::from(pool.is_registered());
    if fixed == 0 {
        skip(
            name,
            "IORING_REGISTER_BUFFERS refused: checking the plain path only",
        );
    }

    // An aligned heap buffer is not in the arena: plain WRITE / READ.
    let s0 = q.stats();
    let done = run(&q, 0, OwnedIter::<Source, _>::new(aligned_block(2, 0)));
    assert_eq!(done.result, Ok(BLK));
    let done = run(
        &q,
        0,
        OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(ALIGN, BLK).unwrap()),
    );
    verify(&done.buf.into_inner(), 2, 0, "plain read");
    assert_eq!(delta(q.stats(), s0), (0, 2, 0, 0));

    // Two registered buffers are two segments: one READV / WRITEV, plain.
    let s0 = q.stats();
    let mut two = vec![pool.get().unwrap(), pool.get().unwrap()];
    fill(&mut two[0], 2, 1);
    fill(&mut two[1], 2, 2);
    assert_eq!(
        run(&q, BLK as u64, OwnedIter::<Source, _>::new(two)).result,
        Ok(2 * BLK)
    );
    let back = vec![pool.get().unwrap(), pool.get().unwrap()];
    let done = run(&q, BLK as u64, OwnedIter::<Dest, _>::new(back));
    assert_eq!(done.result, Ok(2 * BLK));
    let back = done.buf.into_inner();
    verify(&back[0], 2, 1, "vectored read, first");
    verify(&back[1], 2, 2, "vectored read, second");
    drop(back);
    assert_eq!(delta(q.stats(), s0), (0, 2, 0, 0));

    // One segment that starts inside a registered buffer (an owned
    // iterator advanced past its first half) still qualifies.
    let s0 = q.stats();
    let mut buf = pool.get().unwrap();
    buf.fill(0);
    let mut dst = OwnedIter::<Dest, _>::new(buf);
    dst.advance(BLK / 2);
    let done = run(&q, 0, dst); // the first half of block 0 lands in the second half
    assert_eq!(done.result, Ok(BLK / 2));
    let buf = done.buf.into_inner();
    assert!(buf[..BLK / 2].iter().all(|&b| b == 0));
    verify(
        &buf[BLK / 2..],
        2,
        0,
        "read into the middle of a fixed buffer",
    );
    drop(buf);
    assert_eq!(delta(q.stats(), s0), (fixed, 1 - fixed, 0, 0));

    // Borrowed iterators: a slice of a registered buffer qualifies, a
    // slice of anything else does not.
    let s0 = q.stats();
    let mut buf = pool.get().unwrap();
    buf.fill(0);
    let mut it = IovIter::<Dest, Ubuf>::new(&mut buf[..ALIGN]);
    assert_eq!(
        q.direct_io(&mut Kiocb::new_sync(0), &mut it),
        Ok(Submitted::Done(ALIGN))
    );
    verify(&buf[..ALIGN], 2, 0, "borrowed fixed read");
    let mut other = AlignedBuf::zeroed(ALIGN, ALIGN).unwrap();
    let mut it = IovIter::<Dest, Ubuf>::new(&mut other[..]);
    assert_eq!(
        q.direct_io(&mut Kiocb::new_sync(0), &mut it),
        Ok(Submitted::Done(ALIGN))
    );
    verify(&other, 2, 0, "borrowed plain read");
    // A sync kiocb with an owned fixed buffer goes the borrowed way too.
    let mut kiocb = Kiocb::new_sync_with(0, OwnedIter::<Dest, _>::new(buf));
    assert_eq!(q.submit(&mut kiocb), Ok(Submitted::Done(BLK)));
    verify(
        &kiocb.take_buf().unwrap().into_inner(),
        2,
        0,
        "sync owned fixed read",
    );
    assert_eq!(delta(q.stats(), s0), (2 * fixed, 3 - 2 * fixed, 0, 0));

    // A buffer registered with another ring is nothing special here.
    if let Some((other_q, _p2)) = queue("fallback_other", UringQueue::builder()) {
        let foreign = other_q.register_buffers(1, BLK, ALIGN).unwrap();
        let s0 = q.stats();
        let mut fb = foreign.get().unwrap();
        fb.fill(0);
        let done = run(&q, 0, OwnedIter::<Dest, _>::new(fb));
        assert_eq!(done.result, Ok(BLK));
        verify(&done.buf.into_inner(), 2, 0, "another ring's buffer");
        assert_eq!(delta(q.stats(), s0), (0, 1, 0, 0));
        assert_eq!(
            other_q.stats().fixed_buffer_ops + other_q.stats().plain_ops,
            0
        );
    }
    let _ = p;
}

#[test]
#[cfg_attr(miri, ignore)]
fn registered_files_on_and_off_give_the_same_bytes() {
    let name = "files_on_off";
    let mut contents = Vec::new();
    for on in [false, true] {
        let Some((q, p)) = queue(
            &format!("{name}_{on}"),
            UringQueue::builder().register_files(on),
        ) else {
            return;
        };
        if on && !q.is_fixed_file() {
            skip(
                name,
                "IORING_REGISTER_FILES refused: both queues use descriptors",
            );
        }
        assert!(on || !q.is_fixed_file());
        // Registered buffers too, on the second queue: a fixed file and a
        // fixed buffer in one SQE.
        let pool = on.then(|| q.register_buffers(2, BLK, ALIGN).unwrap());
        let s0 = q.stats();
        write_blocks(&q, 3, 8);
        read_blocks(&q, 3, 8);
        if let Some(pool) = &pool {
            let mut buf = pool.get().unwrap();
            fill(&mut buf, 3, 8);
            assert_eq!(
                run(&q, 8 * BLK as u64, OwnedIter::<Source, _>::new(buf)).result,
                Ok(BLK)
            );
            let done = run(
                &q,
                8 * BLK as u64,
                OwnedIter::<Dest, _>::new(pool.get().unwrap()),
            );
            verify(&done.buf.into_inner(), 3, 8, "fixed file, fixed buffer");
        } else {
            write_blocks_at(&q, 3, 8);
        }
        assert_eq!(
            q.fsync(&mut Kiocb::new_sync(0), false),
            Ok(Submitted::Done(0))
        );
        let d = delta(q.stats(), s0);
        let ops = d.0 + d.1 + d.2;
        assert_eq!(ops, 8 + 8 + 2 + 1);
        assert_eq!(
            d.3,
            if q.is_fixed_file() { ops } else { 0 },
            "fixed-file SQEs"
        );
        drop(q);
        contents.push(std::fs::read(&p).unwrap());
    }
    assert_eq!(contents[0].len(), 9 * BLK);
    assert!(contents[0] == contents[1], "the same bytes either way");
}

/// Writes block `b` of `tag` at block `b` from an aligned buffer.
fn write_blocks_at<T: DirectIo>(dev: &T, tag: u64, b: u64) {
    let done = run(
        dev,
        b * BLK as u64,
        OwnedIter::<Source, _>::new(aligned_block(tag, b)),
    );
    assert_eq!(done.result, Ok(BLK));
    let done = run(
        dev,
        b * BLK as u64,
        OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(ALIGN, BLK).unwrap()),
    );
    verify(&done.buf.into_inner(), tag, b, "aligned block");
}

#[test]
#[cfg_attr(miri, ignore)]
fn two_files_on_one_queue_with_io_in_flight_on_both() {
    let name = "two_files";
    let Some((q, pa)) = queue(name, UringQueue::builder().depth(32).register_files(true)) else {
        return;
    };
    let Some((b, pb)) = add(&q, "two_files_b") else {
        return;
    };
    assert_eq!(b.is_fixed_file(), q.is_fixed_file());
    let pool = q.register_buffers(8, BLK, ALIGN).unwrap();
    let (ta, tb) = (0xa, 0xb);

    // Writes: 8 per file, different data, all 16 in flight together; file
    // A's from registered buffers, file B's from aligned heap buffers.
    let mut fa = Vec::new();
    let mut fb = Vec::new();
    {
        let _plug = q.plug();
        for blk in 0..8u64 {
            let mut buf = pool.get().unwrap();
            fill(&mut buf, ta, blk);
            let (mut kiocb, fut) =
                Kiocb::new_async_with(blk * BLK as u64, OwnedIter::<Source, _>::new(buf));
            assert!(q.submit(&mut kiocb).unwrap().is_queued());
            fa.push(fut);
            let src = OwnedIter::<Source, _>::new(aligned_block(tb, blk));
            let (mut kiocb, fut) = Kiocb::new_async_with(blk * BLK as u64, src);
            assert!(b.submit(&mut kiocb).unwrap().is_queued());
            fb.push(fut);
        }
        assert_eq!(
            (q.in_flight(), b.in_flight(), q.unsubmitted()),
            (16, 16, 16)
        );
    }
    // Completions of either file come through either handle.
    for (x, y) in fa.into_iter().zip(fb) {
        assert_eq!(b.block_on(x).result, Ok(BLK));
        assert_eq!(q.block_on(y).result, Ok(BLK));
    }
    assert_eq!(q.in_flight(), 0);
    verify_file(&pa, ta, 8);
    verify_file(&pb, tb, 8);

    // Reads: B's into registered buffers this time, A's into heap ones.
    let mut ra = Vec::new();
    let mut rb = Vec::new();
    {
        let _plug = b.plug();
        for blk in 0..8u64 {
            let dst = OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(ALIGN, BLK).unwrap());
            let (mut kiocb, fut) = Kiocb::new_async_with(blk * BLK as u64, dst);
            assert!(q.submit(&mut kiocb).unwrap().is_queued());
            ra.push(fut);
            let mut buf = pool.get().unwrap();
            buf.fill(0);
            let (mut kiocb, fut) =
                Kiocb::new_async_with(blk * BLK as u64, OwnedIter::<Dest, _>::new(buf));
            assert!(b.submit(&mut kiocb).unwrap().is_queued());
            rb.push(fut);
        }
        assert!(q.in_flight() > 1);
        assert_eq!(q.in_flight(), 16);
    }
    for (blk, (x, y)) in ra.into_iter().zip(rb).enumerate() {
        let x = q.block_on(x);
        let y = b.block_on(y);
        assert_eq!((x.result, y.result), (Ok(BLK), Ok(BLK)));
        verify(&x.buf.into_inner(), ta, blk as u64, "file A");
        verify(&y.buf.into_inner(), tb, blk as u64, "file B");
    }
    // Each file has its own descriptor.
    assert_ne!(q.as_fd().as_raw_fd(), b.as_fd().as_raw_fd());
}

#[test]
#[cfg_attr(miri, ignore)]
fn fsync_sync_and_async() {
    let name = "fsync";
    let Some((q, _pa)) = queue(name, UringQueue::builder().register_files(true)) else {
        return;
    };
    let Some((b, _pb)) = add(&q, "fsync_b") else {
        return;
    };
    write_blocks(&q, 4, 2);
    write_blocks(&b, 5, 2);
    let s0 = q.stats();

    // Sync kiocbs wait and report 0 bytes; the position does not move.
    for datasync in [false, true] {
        let mut kiocb = Kiocb::new_sync(4096);
        assert_eq!(q.fsync(&mut kiocb, datasync), Ok(Submitted::Done(0)));
        assert_eq!(kiocb.pos, 4096);
        assert_eq!(
            b.fsync(&mut Kiocb::new_sync(0), datasync),
            Ok(Submitted::Done(0))
        );
    }

    // Async with a future: queued, then Ok(0) at the kiocb's position.
    let (mut kiocb, fut) = Kiocb::new_async(1234);
    assert_eq!(q.fsync(&mut kiocb, false), Ok(Submitted::Queued));
    // Queued once: a second fsync on the same kiocb is refused.
    assert_eq!(
        q.fsync(&mut kiocb, false).map_err(|e| e.errno()),
        Err(Errno::EINVAL)
    );
    let done = q.block_on(fut);
    assert_eq!((done.result, done.pos), (Ok(0), 1234));

    // Async with callbacks, held back by a plug: each runs exactly once.
    let runs = Arc::new(AtomicUsize::new(0));
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    {
        let _plug = q.plug();
        for (i, datasync) in [false, true, false, true].into_iter().enumerate() {
            let (runs, outcomes) = (Arc::clone(&runs), Arc::clone(&outcomes));
            let mut kiocb = Kiocb::with_completion(i as u64, move |done| {
                runs.fetch_add(1, Ordering::SeqCst);
                outcomes.lock().unwrap().push(done);
            });
            let queued = if i % 2 == 0 {
                q.fsync(&mut kiocb, datasync)
            } else {
                b.fsync(&mut kiocb, datasync)
            };
            assert!(queued.unwrap().is_queued());
        }
        assert_eq!((q.in_flight(), q.unsubmitted()), (4, 4));
        assert_eq!(runs.load(Ordering::SeqCst), 0, "nothing ran under the plug");
    }
    q.drain().unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 4);
    let mut outcomes: Vec<Completed> = outcomes.lock().unwrap().drain(..).collect();
    outcomes.sort_by_key(|d| d.pos);
    for (i, d) in outcomes.iter().enumerate() {
        assert_eq!((d.result, d.pos), (Ok(0), i as u64));
    }
    let d = delta(q.stats(), s0);
    assert_eq!((d.0, d.1, d.2), (0, 0, 4 + 1 + 4));
    if q.is_fixed_file() {
        assert_eq!(d.3, 9, "every fsync named a registered file");
    }
}

/// Counted async kiocbs: every completion records its outcome.
type Log<B> = Arc<Mutex<Vec<Completed<B>>>>;

fn counted<B: Send + 'static>(pos: u64, buf: B, runs: &Arc<AtomicUsize>, log: &Log<B>) -> Kiocb<B> {
    let (runs, log) = (Arc::clone(runs), Arc::clone(log));
    Kiocb::with_callback(pos, buf, move |done| {
        runs.fetch_add(1, Ordering::SeqCst);
        log.lock().unwrap().push(done);
    })
}

/// Big writes (so that some are still in flight when the handles go) of
/// blocks of `tag`, `per` blocks per request, starting at request `first`.
fn big_write(tag: u64, r: u64, per: u64) -> OwnedIter<Source, AlignedBuf> {
    let mut v = Vec::with_capacity((per as usize) * BLK);
    for b in r * per..(r + 1) * per {
        v.extend_from_slice(&pattern(tag, b, BLK));
    }
    OwnedIter::<Source, _>::new(AlignedBuf::from_slice(ALIGN, &v).unwrap())
}

/// Checks each completed write landed (or was cancelled, `ECANCELED`,
/// leaving the file unwritten there, which reads as zeros or short).
fn check_writes(p: &PathBuf, tag: u64, per: u64, log: &Log<OwnedIter<Source, AlignedBuf>>) {
    let data = std::fs::read(p).unwrap();
    for done in log.lock().unwrap().iter() {
        let first = (done.pos / BLK as u64)
            - match done.result {
                Ok(n) => n as u64 / BLK as u64,
                Err(_) => 0,
            };
        match done.result {
            Ok(n) => {
                assert_eq!(n, per as usize * BLK);
                for b in first..first + per {
                    let at = b as usize * BLK;
                    verify(&data[at..at + BLK], tag, b, "write completed by the drop");
                }
            }
            Err(e) => assert_eq!(e, Error::Os(Errno::ECANCELED)),
        }
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn dropping_the_queue_with_io_in_flight_on_two_files_completes_every_request() {
    let name = "drop_two";
    let Some((q, pa)) = queue(name, UringQueue::builder().depth(32).register_files(true)) else {
        return;
    };
    let Some((b, pb)) = add(&q, "drop_two_b") else {
        return;
    };
    let pool = q.register_buffers(16, BLK, ALIGN).unwrap();
    const PER: u64 = 32; // 256 KiB per write
    let runs = Arc::new(AtomicUsize::new(0));
    let (la, lb) = (Log::default(), Log::default());
    let reads: Log<OwnedIter<Dest, FixedBuf>> = Log::default();
    for r in 0..8u64 {
        let mut k = counted(r * PER * BLK as u64, big_write(0xa, r, PER), &runs, &la);
        assert!(q.submit(&mut k).unwrap().is_queued());
        let mut k = counted(r * PER * BLK as u64, big_write(0xb, r, PER), &runs, &lb);
        assert!(b.submit(&mut k).unwrap().is_queued());
        // Fixed-buffer reads on B, far from the writes (reading holes).
        let dst = OwnedIter::<Dest, _>::new(pool.get().unwrap());
        let mut k = counted((1000 + r) * BLK as u64, dst, &runs, &reads);
        assert!(b.submit(&mut k).unwrap().is_queued());
    }
    // An unpolled future, and one dropped: both resolved by the drop.
    let (mut k, unpolled) =
        Kiocb::new_async_with(0, OwnedIter::<Dest, _>::new(pool.get().unwrap()));
    assert!(q.submit(&mut k).unwrap().is_queued());
    let (mut k, dropped) = Kiocb::new_async(0);
    assert!(b.fsync(&mut k, true).unwrap().is_queued());
    drop(dropped);
    assert!(q.in_flight() > 0);

    // The file handle goes first: nothing is cancelled, its requests stay
    // in flight on the ring the queue still holds.
    drop(b);
    assert!(runs.load(Ordering::SeqCst) <= 24);
    // The queue is the last handle: cancel, wait for every CQE, free.
    drop(q);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        24,
        "every completion ran exactly once"
    );
    let mut unpolled: CompletionFuture<_> = unpolled;
    let done = unpolled.try_take().expect("resolved by the drop");
    assert!(matches!(
        done.result,
        Ok(_) | Err(Error::Os(Errno::ECANCELED))
    ));
    // Every buffer came back to the pool (the pool outlives the ring).
    drop(done);
    for done in reads.lock().unwrap().drain(..) {
        match done.result {
            Ok(n) => assert!(n == 0 || n == BLK, "a read of a hole: {n}"),
            Err(e) => assert_eq!(e, Error::Os(Errno::ECANCELED)),
        }
    }
    assert_eq!(pool.available(), 16);
    check_writes(&pa, 0xa, PER, &la);
    check_writes(&pb, 0xb, PER, &lb);
    assert_eq!(la.lock().unwrap().len() + lb.lock().unwrap().len(), 16);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_file_outliving_the_queue_keeps_the_ring() {
    let name = "outlive";
    let Some((q, pa)) = queue(name, UringQueue::builder().depth(16)) else {
        return;
    };
    let Some((b, pb)) = add(&q, "outlive_b") else {
        return;
    };
    let src = OwnedIter::<Source, _>::new(aligned_block(6, 0));
    let (mut k, on_q) = Kiocb::new_async_with(0, src);
    assert!(q.submit(&mut k).unwrap().is_queued());
    drop(q); // not the last handle: cancels nothing
    // The queue's request completes through the file's handle.
    let done = b.block_on(on_q);
    assert_eq!(done.result, Ok(BLK), "not cancelled");
    verify_file(&pa, 6, 1);
    // The ring still works for the file.
    write_blocks(&b, 7, 4);
    read_blocks(&b, 7, 4);
    assert_eq!(
        b.fsync(&mut Kiocb::new_sync(0), false),
        Ok(Submitted::Done(0))
    );
    verify_file(&pb, 7, 4);
}

#[test]
#[cfg_attr(miri, ignore)]
fn file_table_slots_are_reused_only_when_free_and_overflow_falls_back() {
    let name = "slots";
    let builder = UringQueue::builder().register_files(true).max_files(2);
    let Some((q, _pa)) = queue(name, builder) else {
        return;
    };
    if !q.is_fixed_file() {
        skip(name, "IORING_REGISTER_FILES refused");
        return;
    }
    let Some((b, pb)) = add(&q, "slots_b") else {
        return;
    };
    let Some((c, pc)) = add(&q, "slots_c") else {
        return;
    };
    assert!(b.is_fixed_file(), "the second slot");
    assert!(!c.is_fixed_file(), "the table is full: a descriptor");
    write_blocks(&c, 0xc, 2);
    verify_file(&pc, 0xc, 2);

    // A file dropped while its write still waits in the SQ (a plug): its
    // slot stays taken until the CQE, so the next file cannot get it and
    // the write still lands in the dropped file.
    let plug = q.plug();
    let src = OwnedIter::<Source, _>::new(aligned_block(0xb, 0));
    let (mut k, fut) = Kiocb::new_async_with(0, src);
    assert!(b.submit(&mut k).unwrap().is_queued());
    assert_eq!(q.unsubmitted(), 1);
    drop(b);
    let Some((d, pd)) = add(&q, "slots_d") else {
        return;
    };
    assert!(!d.is_fixed_file(), "b's slot is still in use");
    drop(plug);
    assert_eq!(q.block_on(fut).result, Ok(BLK));
    verify_file(&pb, 0xb, 1);
    assert_eq!(
        std::fs::metadata(&pd).unwrap().len(),
        0,
        "nothing went to d"
    );

    // Now b's slot is free again: the next file gets it.
    let Some((e, pe)) = add(&q, "slots_e") else {
        return;
    };
    assert!(e.is_fixed_file(), "b's slot, emptied and reused");
    write_blocks(&e, 0xe, 2);
    read_blocks(&e, 0xe, 2);
    verify_file(&pe, 0xe, 2);
    verify_file(&pb, 0xb, 1);
    assert_eq!(std::fs::metadata(&pd).unwrap().len(), 0);
    write_blocks(&d, 0xd, 1);
    verify_file(&pd, 0xd, 1);
}

#[test]
#[cfg_attr(miri, ignore)]
fn pools_hand_buffers_out_once_and_outlive_the_ring() {
    let name = "pool";
    let Some((q, _p)) = queue(name, UringQueue::builder()) else {
        return;
    };
    for (n, size, align) in [(0, BLK, ALIGN), (1, 0, ALIGN), (1, BLK, 3), (16385, 1, 1)] {
        assert_eq!(
            q.register_buffers(n, size, align)
                .map(drop)
                .map_err(|e| e.errno()),
            Err(Errno::EINVAL),
            "{n} x {size} @ {align}"
        );
    }
    let pool = q.register_buffers(3, BLK, ALIGN).unwrap();
    if pool.is_registered() {
        assert_eq!(
            q.register_buffers(1, BLK, ALIGN)
                .map(drop)
                .map_err(|e| e.errno()),
            Err(Errno::EBUSY),
            "one pool per ring"
        );
    }
    let bufs: Vec<FixedBuf> = (0..3).map(|_| pool.get().unwrap()).collect();
    assert!(pool.get().is_none());
    let mut idx: Vec<u16> = bufs.iter().map(FixedBuf::index).collect();
    idx.sort_unstable();
    assert_eq!(idx, [0, 1, 2]);
    let mut bufs = bufs;
    bufs[0].fill(0x42);
    let clone = pool.clone();
    drop(q);
    drop(pool);
    // The memory outlives the ring and the first pool handle.
    assert!(bufs[0].iter().all(|&b| b == 0x42));
    drop(bufs);
    assert_eq!(clone.available(), 3);
}
