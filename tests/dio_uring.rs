//! The io_uring backend on a real `O_DIRECT` file: round trips at QD1 and
//! QD32, exactly-once completions, positions, alignment errors, short reads,
//! dropped futures and a queue dropped with I/O in flight.
//!
//! Each test skips loudly (prints `SKIPPED` and the reason) when io_uring is
//! unavailable (ENOSYS, EPERM) or the filesystem refuses `O_DIRECT`.
#![cfg(feature = "uring")]

use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use iov_iter::backend::file::DirectFile;
use iov_iter::backend::uring::{PageBatch, UringBuilder, UringOp, UringQueue};
use iov_iter::dio::{DioAlign, DirectIo, Transfer};
use iov_iter::kiocb::{Completed, IocbFlags, Kiocb, Submitted};
use iov_iter::{
    Dest, Errno, Error, IoSegMut, IovIter, Iovec, Misalignment, PAGE_SIZE, Page, PageRef, Source,
    Ubuf,
};

const PS: u64 = PAGE_SIZE as u64;

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("dio_uring_{name}_{}", std::process::id()))
}

fn skip(name: &str, why: &str) {
    eprintln!("SKIPPED dio_uring::{name}: {why}");
}

/// A fresh, empty file and a queue on it, or `None` (after a loud skip
/// message) when io_uring or O_DIRECT is unavailable here.
fn setup(name: &str, depth: u32) -> Option<(UringQueue, PathBuf)> {
    setup_with(name, UringQueue::builder().depth(depth))
}

/// As [`setup`], with the queue built by `builder`.
fn setup_with(name: &str, builder: UringBuilder) -> Option<(UringQueue, PathBuf)> {
    let p = path(name);
    let _ = std::fs::remove_file(&p);
    let file = match DirectFile::options().create(true).truncate(true).open(&p) {
        Ok(f) => f,
        Err(e) if matches!(e.errno(), Errno::EINVAL | Errno::EOPNOTSUPP) => {
            skip(name, &format!("O_DIRECT refused on {}: {e}", p.display()));
            return None;
        }
        Err(e) => panic!("open {}: {e}", p.display()),
    };
    match builder.build(file) {
        Ok(q) => Some((q, p)),
        Err(e) if matches!(e.errno(), Errno::ENOSYS | Errno::EPERM | Errno::ENOMEM) => {
            skip(name, &format!("io_uring setup failed: {e}"));
            None
        }
        Err(e) => panic!("io_uring setup: {e}"),
    }
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// Fills a page with a self-describing pattern: file page index, version,
/// then a pseudo-random body derived from both.
fn pattern(index: u64, version: u64) -> Page {
    let mut page = Page::new();
    let b = page.as_mut_bytes();
    b[..8].copy_from_slice(&index.to_le_bytes());
    b[8..16].copy_from_slice(&version.to_le_bytes());
    let mut x = (index.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ version) | 1;
    for chunk in b[16..].chunks_mut(8) {
        x = xorshift(x);
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    page
}

/// Checks a page holds an intact pattern; returns its (index, version).
fn check(bytes: &[u8]) -> (u64, u64) {
    let index = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    let version = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
    let want = pattern(index, version);
    assert!(
        bytes == &want.as_bytes()[..],
        "page (index {index}, version {version}) is corrupted"
    );
    (index, version)
}

fn pages(range: std::ops::Range<u64>, version: u64) -> Vec<PageRef> {
    range.map(|i| PageRef::new(pattern(i, version))).collect()
}

fn blank(n: usize) -> PageBatch<Page> {
    (0..n).map(|_| Page::new()).collect()
}

/// A park-based executor that does not know about the queue: completions
/// must come from another thread driving it.
fn park_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// An async kiocb whose completion counts its runs and records the outcome.
fn counted(pos: u64, runs: &Arc<AtomicUsize>, log: &Arc<Mutex<Vec<(u64, Completed)>>>) -> Kiocb {
    let (runs, log) = (Arc::clone(runs), Arc::clone(log));
    Kiocb::with_completion(pos, move |done| {
        runs.fetch_add(1, Ordering::SeqCst);
        log.lock().unwrap().push((pos, done));
    })
}

#[test]
#[cfg_attr(miri, ignore)]
fn sync_round_trip_qd1() {
    let Some((q, p)) = setup("sync_qd1", 1) else {
        return;
    };
    assert_eq!(q.depth(), 1);
    let mut kiocb = Kiocb::new_sync(0);
    let op = q.submit_write(&mut kiocb, pages(0..4, 1)).unwrap();
    assert_eq!(op.submitted(), Submitted::Done(4 * PAGE_SIZE));
    assert_eq!(kiocb.pos, 4 * PS);
    let out = op.try_take().unwrap();
    assert_eq!(out.completed.result, Ok(4 * PAGE_SIZE));
    assert_eq!(out.buffers.nr_segs(), 4);
    // A second sync write continues at the advanced position.
    q.submit_write(&mut kiocb, pages(4..5, 1)).unwrap();
    assert_eq!(kiocb.pos, 5 * PS);

    let mut kiocb = Kiocb::new_sync(0);
    let out = q
        .submit_read(&mut kiocb, blank(5))
        .unwrap()
        .try_take()
        .unwrap();
    assert_eq!(kiocb.pos, 5 * PS);
    for (i, page) in out.buffers.pages().iter().enumerate() {
        assert_eq!(check(page.as_bytes()), (i as u64, 1));
    }
    assert_eq!(std::fs::read(&p).unwrap().len(), 5 * PAGE_SIZE);
    assert_eq!(q.in_flight(), 0);
}

#[test]
#[cfg_attr(miri, ignore)]
fn async_round_trip_qd1() {
    let Some((q, _p)) = setup("async_qd1", 1) else {
        return;
    };
    for i in 0..8 {
        let (mut kiocb, done) = Kiocb::new_async(i * PS);
        let op = q.submit_write(&mut kiocb, pages(i..i + 1, 7)).unwrap();
        assert_eq!(op.submitted(), Submitted::Queued);
        assert!(!kiocb.has_completion());
        let out = q.block_on(op);
        assert_eq!(out.completed, done.try_get().unwrap());
        assert_eq!(
            out.completed.pos,
            (i + 1) * PS,
            "position advances on completion"
        );
    }
    for i in (0..8).rev() {
        let (mut kiocb, done) = Kiocb::new_async(i * PS);
        let op = q.submit_read(&mut kiocb, blank(1)).unwrap();
        let out = op.wait(&q);
        assert_eq!(out.completed.result, Ok(PAGE_SIZE));
        assert_eq!(done.try_get().unwrap().pos, (i + 1) * PS);
        assert_eq!(check(out.buffers.pages()[0].as_bytes()), (i, 7));
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn async_round_trip_qd32_many_in_flight() {
    let Some((q, p)) = setup("async_qd32", 32) else {
        return;
    };
    assert_eq!(q.depth(), 32);
    let n = 96u64; // three times the depth: submission waits for room
    let runs = Arc::new(AtomicUsize::new(0));
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut ops = Vec::new();
    let mut peak = 0;
    for i in 0..n {
        let mut kiocb = counted(i * PS, &runs, &log);
        ops.push(q.submit_write(&mut kiocb, pages(i..i + 1, 3)).unwrap());
        peak = peak.max(q.in_flight());
        assert!(q.in_flight() <= q.depth());
    }
    assert!(peak > 1, "several operations were in flight at once");
    q.drain().unwrap();
    assert_eq!(q.in_flight(), 0);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        n as usize,
        "each completion ran once"
    );
    for op in ops {
        assert_eq!(op.try_take().unwrap().completed.result, Ok(PAGE_SIZE));
    }
    let mut seen: Vec<_> = log.lock().unwrap().drain(..).collect();
    seen.sort_by_key(|&(pos, _)| pos);
    for (i, (pos, done)) in seen.iter().enumerate() {
        assert_eq!(
            (*pos, done.result, done.pos),
            (i as u64 * PS, Ok(PAGE_SIZE), *pos + PS)
        );
    }

    // Read back with 32 two-page reads in flight, delivered by reap/wait.
    let mut reads = Vec::new();
    for i in (0..n).step_by(2) {
        let mut kiocb = counted(i * PS, &runs, &log);
        reads.push((i, q.submit_read(&mut kiocb, blank(2)).unwrap()));
    }
    while q.in_flight() > 0 {
        q.reap();
        q.wait(4).unwrap();
    }
    assert_eq!(runs.load(Ordering::SeqCst), n as usize + reads.len());
    for (i, op) in reads {
        let out = op.try_take().unwrap();
        assert_eq!(out.completed.result, Ok(2 * PAGE_SIZE));
        for (k, page) in out.buffers.pages().iter().enumerate() {
            assert_eq!(check(page.as_bytes()), (i + k as u64, 3));
        }
    }
    assert_eq!(std::fs::metadata(&p).unwrap().len(), n * PS);
}

/// With `COOP_TASKRUN` (the queue the swap example uses), one thread that
/// submits and waits sees every completion: single-page operations (which
/// go out as `IORING_OP_READ` / `WRITE`) and multi-page ones (`READV` /
/// `WRITEV`), full and short, sync and async, with the depth exhausted.
#[test]
#[cfg_attr(miri, ignore)]
fn coop_taskrun_queue_single_and_vectored_round_trips() {
    let builder = UringQueue::builder().depth(8).coop_taskrun(true);
    let Some((q, p)) = setup_with("coop", builder) else {
        return;
    };
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut v = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let (major, minor) = (v.next().unwrap_or(0), v.next().unwrap_or(0));
    if (major, minor) >= (5, 19) {
        assert!(
            q.is_coop_taskrun(),
            "kernel {release} has IORING_SETUP_COOP_TASKRUN"
        );
    }
    assert!(!setup("coop_off", 8).unwrap().0.is_coop_taskrun());
    // 40 single-page async writes: five times the depth.
    let runs = Arc::new(AtomicUsize::new(0));
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut ops = Vec::new();
    for i in 0..40u64 {
        let mut kiocb = counted(i * PS, &runs, &log);
        ops.push(q.submit_write(&mut kiocb, pages(i..i + 1, 3)).unwrap());
    }
    for op in ops {
        assert_eq!(op.wait(&q).completed.result, Ok(PAGE_SIZE));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 40, "each completion ran once");
    // Vectored: 8 pages per read, async, then one sync.
    for i in (0..5u64).rev().map(|k| k * 8) {
        let (mut kiocb, done) = Kiocb::new_async(i * PS);
        let out = q.block_on(q.submit_read(&mut kiocb, blank(8)).unwrap());
        assert_eq!(out.completed.result, Ok(8 * PAGE_SIZE));
        assert_eq!(done.try_get().unwrap().pos, (i + 8) * PS);
        for (k, page) in out.buffers.pages().iter().enumerate() {
            assert_eq!(check(page.as_bytes()), (i + k as u64, 3));
        }
    }
    // Single pages, sync: the last one written, then one at EOF (reads 0).
    let mut sync = Kiocb::new_sync(39 * PS);
    let out = q
        .submit_read(&mut sync, blank(1))
        .unwrap()
        .try_take()
        .unwrap();
    assert_eq!(check(out.buffers.pages()[0].as_bytes()), (39, 3));
    assert_eq!(sync.pos, 40 * PS);
    let out = q
        .submit_read(&mut sync, blank(1))
        .unwrap()
        .try_take()
        .unwrap();
    assert_eq!(out.completed.result, Ok(0), "one page at EOF reads nothing");
    // A single-page write at EOF grows the file by exactly one page.
    let mut w = Kiocb::new_sync(40 * PS);
    q.submit_write(&mut w, pages(40..41, 3)).unwrap();
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 41 * PS);
    assert_eq!(q.in_flight(), 0);
}

/// A plug holds async submissions in the SQ and its end submits them all;
/// anything that waits submits first, so nothing can wait on a plug; plugs
/// nest; a sync kiocb under a plug is not held back.
#[test]
#[cfg_attr(miri, ignore)]
fn plug_defers_submission_until_it_ends_or_somebody_waits() {
    let Some((q, _p)) = setup("plug", 16) else {
        return;
    };
    let mut ops = Vec::new();
    {
        let outer = q.plug();
        {
            let _inner = q.plug();
            for i in 0..8u64 {
                let (mut kiocb, _done) = Kiocb::new_async(i * PS);
                ops.push(q.submit_write(&mut kiocb, pages(i..i + 1, 4)).unwrap());
            }
            assert_eq!(q.unsubmitted(), 8, "held in the SQ");
        }
        assert_eq!(q.unsubmitted(), 8, "the outer plug still holds them");
        assert_eq!(outer.flush().unwrap(), 8);
        assert_eq!(q.unsubmitted(), 0);
        // Two more, then the plug ends.
        for i in 8..10u64 {
            let (mut kiocb, _done) = Kiocb::new_async(i * PS);
            ops.push(q.submit_write(&mut kiocb, pages(i..i + 1, 4)).unwrap());
        }
        assert_eq!(q.unsubmitted(), 2);
    }
    assert_eq!(q.unsubmitted(), 0, "the plug's end submits");
    for op in ops.drain(..) {
        assert_eq!(op.wait(&q).completed.result, Ok(PAGE_SIZE));
    }
    // Waiting under a plug submits what it holds instead of hanging.
    {
        let _plug = q.plug();
        let (mut kiocb, done) = Kiocb::new_async(0);
        let op = q.submit_read(&mut kiocb, blank(10)).unwrap();
        assert_eq!(q.unsubmitted(), 1);
        let out = op.wait(&q);
        assert_eq!(out.completed.result, Ok(10 * PAGE_SIZE));
        assert_eq!(done.try_get().unwrap().pos, 10 * PS);
        for (i, page) in out.buffers.pages().iter().enumerate() {
            assert_eq!(check(page.as_bytes()), (i as u64, 4));
        }
        // A sync kiocb goes out at once, with whatever is queued.
        let (mut kiocb, _done) = Kiocb::new_async(0);
        let queued = q.submit_read(&mut kiocb, blank(1)).unwrap();
        let mut sync = Kiocb::new_sync(PS);
        let out = q
            .submit_read(&mut sync, blank(1))
            .unwrap()
            .try_take()
            .unwrap();
        assert_eq!(check(out.buffers.pages()[0].as_bytes()), (1, 4));
        assert_eq!(q.unsubmitted(), 0);
        assert_eq!(q.block_on(queued).completed.result, Ok(PAGE_SIZE));
    }
    assert_eq!(q.in_flight(), 0);
}

/// Without `COOP_TASKRUN` (the default), a thread that submits and then
/// sleeps (here: parks) still has its completions delivered by a driver
/// thread that waits on the queue; the io_uring_setup(2) manual names this
/// as the case `COOP_TASKRUN` is not for.
#[test]
#[cfg_attr(miri, ignore)]
fn futures_work_with_any_executor() {
    let Some((q, _p)) = setup("any_executor", 8) else {
        return;
    };
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // The driver: reaps and delivers on its own thread.
        s.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                if q.in_flight() == 0 {
                    std::thread::yield_now();
                } else {
                    q.wait(1).unwrap();
                }
            }
        });
        for round in 0..16u64 {
            let (mut kiocb, done) = Kiocb::new_async(round * PS);
            let op = q
                .submit_write(&mut kiocb, pages(round..round + 1, 9))
                .unwrap();
            let out = park_on(op);
            assert_eq!(out.completed.result, Ok(PAGE_SIZE));
            // The kiocb completion ran before the operation resolved.
            assert_eq!(done.try_get().unwrap(), out.completed);
            let (mut kiocb, done) = Kiocb::new_async(round * PS);
            let op = q.submit_read(&mut kiocb, blank(1)).unwrap();
            let out = park_on(op);
            assert_eq!(check(out.buffers.pages()[0].as_bytes()), (round, 9));
            assert_eq!(park_on(done).pos, (round + 1) * PS);
        }
        stop.store(true, Ordering::SeqCst);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn misaligned_is_einval_with_nothing_queued() {
    let Some((q, p)) = setup("misaligned", 8) else {
        return;
    };
    let align = q.dio_align();
    eprintln!("dio_uring: statx alignment {align:?}");
    let (mut kiocb, done) = Kiocb::new_async(u64::from(align.offset) / 2 + 1);
    let err = q.submit_write(&mut kiocb, pages(0..1, 1)).unwrap_err();
    assert_eq!(err.error.errno(), Errno::EINVAL);
    assert!(matches!(
        err.error,
        Error::Misaligned {
            what: Misalignment::FileOffset,
            ..
        }
    ));
    // The pages come back untouched, the completion stays in the kiocb.
    assert_eq!(check(err.buffers.pages()[0].as_bytes()), (0, 1));
    assert!(kiocb.has_completion());
    assert!(!done.is_complete());
    assert_eq!(q.in_flight(), 0);

    // A segment starting off the memory alignment (when it is above 1).
    if align.mem > 1 && (align.mem as usize) < PAGE_SIZE {
        kiocb.pos = 0;
        let mut batch = PageBatch::new();
        let len = align.offset.max(align.mem) as usize;
        batch
            .push_range(Page::new(), align.mem as usize / 2, len)
            .unwrap();
        let err = q.submit_read(&mut kiocb, batch).unwrap_err();
        assert!(
            matches!(err.error, Error::Misaligned { .. }),
            "{:?}",
            err.error
        );
    }
    // A stricter alignment than the file's.
    let q = q.with_align(DioAlign::new(4096, 8192).unwrap());
    let mut sync = Kiocb::new_sync(4096);
    let err = q.submit_write(&mut sync, pages(0..1, 1)).unwrap_err();
    assert_eq!(err.error.errno(), Errno::EINVAL);
    assert_eq!(sync.pos, 4096);
    drop(kiocb);
    assert_eq!(
        done.try_get().unwrap().result,
        Err(Error::Os(Errno::ECANCELED))
    );
    assert_eq!(
        std::fs::metadata(&p).unwrap().len(),
        0,
        "nothing was written"
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn read_past_eof_is_short() {
    let Some((q, _p)) = setup("eof", 4) else {
        return;
    };
    let mut kiocb = Kiocb::new_sync(0);
    q.submit_write(&mut kiocb, pages(0..2, 5)).unwrap();
    let (mut kiocb, done) = Kiocb::new_async(0);
    let out = q.block_on(q.submit_read(&mut kiocb, blank(4)).unwrap());
    assert_eq!(out.completed.result, Ok(2 * PAGE_SIZE));
    assert_eq!(done.try_get().unwrap().pos, 2 * PS);
    assert_eq!(check(out.buffers.pages()[1].as_bytes()), (1, 5));
    assert!(out.buffers.pages()[2].as_bytes().iter().all(|&b| b == 0));
    let mut sync = Kiocb::new_sync(8 * PS);
    let op = q.submit_read(&mut sync, blank(1)).unwrap();
    assert_eq!(op.submitted(), Submitted::Done(0));
    assert_eq!(sync.pos, 8 * PS);
}

#[test]
#[cfg_attr(miri, ignore)]
fn empty_batches_complete_at_once() {
    let Some((q, _p)) = setup("empty", 2) else {
        return;
    };
    let (mut kiocb, done) = Kiocb::new_async(0);
    let op = q.submit_read(&mut kiocb, PageBatch::new()).unwrap();
    assert_eq!(op.submitted(), Submitted::Queued);
    assert_eq!(done.try_get().unwrap().result, Ok(0));
    assert_eq!(op.try_take().unwrap().buffers.nr_segs(), 0);
    // An async kiocb cannot be queued twice.
    let err = q.submit_write(&mut kiocb, pages(0..1, 0)).unwrap_err();
    assert_eq!(err.error.errno(), Errno::EINVAL);
}

#[test]
#[cfg_attr(miri, ignore)]
fn io_errors_come_back_with_the_buffers() {
    let Some((q, p)) = setup("ebadf", 2) else {
        return;
    };
    drop(q);
    // Read-only: the kernel refuses writes with EBADF.
    let ro = DirectFile::options().write(false).open(&p).unwrap();
    let q = UringQueue::new(ro, 2).unwrap();
    let mut sync = Kiocb::new_sync(0);
    let err = q.submit_write(&mut sync, pages(0..1, 2)).unwrap_err();
    assert_eq!(err.error, Error::Os(Errno::EBADF));
    assert_eq!(check(err.buffers.pages()[0].as_bytes()), (0, 2));
    assert_eq!(sync.pos, 0);
    let (mut kiocb, done) = Kiocb::new_async(0);
    let out = q.block_on(q.submit_write(&mut kiocb, pages(0..1, 2)).unwrap());
    assert_eq!(out.completed.result, Err(Error::Os(Errno::EBADF)));
    assert_eq!(done.try_get().unwrap().pos, 0, "no progress on error");
}

#[test]
#[cfg_attr(miri, ignore)]
fn transfer_serves_borrowed_iterators() {
    let Some((q, p)) = setup("transfer", 4) else {
        return;
    };
    // Sync direct I/O from a borrowed Ubuf (an aligned page's bytes).
    let src = pattern(0, 11);
    let mut kiocb = Kiocb::new_sync(0).with_flags(IocbFlags::DSYNC);
    let mut it = IovIter::<Source, Ubuf>::new(src.as_bytes());
    assert_eq!(
        q.direct_io(&mut kiocb, &mut it).unwrap(),
        Submitted::Done(PAGE_SIZE)
    );
    assert_eq!(kiocb.pos, PS);
    // An async kiocb through dio_rw completes inline.
    let second = pattern(1, 11);
    let (mut kiocb, done) = Kiocb::new_async(PS);
    let mut it = IovIter::<Source, Ubuf>::new(second.as_bytes());
    assert_eq!(q.direct_io(&mut kiocb, &mut it).unwrap(), Submitted::Queued);
    assert_eq!(done.try_get().unwrap().pos, 2 * PS);
    // Read both into two borrowed pages through an Iovec destination.
    let (mut a, mut b) = (Page::new(), Page::new());
    let mut segs = [
        IoSegMut::new(a.as_mut_bytes()),
        IoSegMut::new(b.as_mut_bytes()),
    ];
    let mut kiocb = Kiocb::new_sync(0);
    assert_eq!(
        q.direct_io(&mut kiocb, &mut IovIter::<Dest, Iovec>::new(&mut segs))
            .unwrap(),
        Submitted::Done(2 * PAGE_SIZE)
    );
    assert_eq!(check(a.as_bytes()), (0, 11));
    assert_eq!(check(b.as_bytes()), (1, 11));
    // Misaligned borrowed I/O is refused before submission.
    let mut kiocb = Kiocb::new_sync(1);
    let mut it = IovIter::<Source, Ubuf>::new(src.as_bytes());
    assert_eq!(
        q.direct_io(&mut kiocb, &mut it).unwrap_err().errno(),
        Errno::EINVAL
    );
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 2 * PS);
}

#[test]
#[cfg_attr(miri, ignore)]
fn stress_dropped_futures_keep_memory_valid() {
    let Some((q, p)) = setup("stress", 32) else {
        return;
    };
    let npages = 48u64;
    let mut rng = 0x2545_f491_4f6c_dd1d_u64 ^ u64::from(std::process::id());
    let mut next = || {
        rng = xorshift(rng);
        rng
    };
    let runs = Arc::new(AtomicUsize::new(0));
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut submitted = 0usize;
    let mut held: Vec<PageRef> = Vec::new(); // references kept to write pages
    let mut kept_reads: Vec<UringOp<PageBatch<Page>>> = Vec::new();
    let mut final_version = vec![0u64; npages as usize];
    let mut peak = 0;
    // Version 0 everywhere first, so every read finds a pattern.
    let mut sync = Kiocb::new_sync(0);
    q.submit_write(&mut sync, pages(0..npages, 0)).unwrap();

    for pass in 1..=12u64 {
        // Each pass writes every page once, in random order, in runs of
        // 1-3 contiguous pages, dropping most futures at once; random reads
        // are interleaved. Writes of one pass never overlap each other.
        let mut order: Vec<u64> = (0..npages).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, (next() % (i as u64 + 1)) as usize);
        }
        let mut written = vec![false; npages as usize];
        let mut plan = Vec::new();
        for &start in &order {
            if written[start as usize] {
                continue;
            }
            let mut end = start + 1;
            let want = 1 + next() % 3;
            while end < npages && end - start < want && !written[end as usize] {
                end += 1;
            }
            for i in start..end {
                written[i as usize] = true;
                final_version[i as usize] = pass;
            }
            // Patterns are built before submitting, so that submissions
            // come fast enough to keep many operations in flight.
            plan.push((start, pages(start..end, pass)));
        }
        for (start, batch) in plan {
            if next() % 4 == 0 {
                held.extend(batch.iter().cloned());
            }
            let mut kiocb = counted(start * PS, &runs, &log);
            let op = q.submit_write(&mut kiocb, batch).unwrap();
            submitted += 1;
            peak = peak.max(q.in_flight());
            drop(op); // detach at once: the queue owns the pages

            let at = next() % npages;
            let n = 1 + (next() % 4).min(npages - at - 1);
            let mut kiocb = counted(at * PS, &runs, &log);
            let op = q.submit_read(&mut kiocb, blank(n as usize)).unwrap();
            submitted += 1;
            if next() % 8 == 0 {
                kept_reads.push(op);
            } else {
                drop(op);
            }
            if next() % 16 == 0 {
                q.reap();
            }
        }
        q.drain().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), submitted);
    }
    eprintln!("dio_uring: stress ran {submitted} operations, at most {peak} in flight");
    assert!(submitted > 500, "{submitted} operations");
    for (pos, done) in log.lock().unwrap().iter() {
        let n = done.result.unwrap();
        assert_eq!(done.pos, pos + n as u64);
    }
    // Pages referenced during their write still hold their pattern.
    for page in &held {
        check(page.as_bytes());
        assert_eq!(
            PageRef::strong_count(page),
            1,
            "the queue released its reference"
        );
    }
    // Reads that were kept got whole, consistent pages of the right index.
    for op in kept_reads {
        let out = op.try_take().unwrap();
        let at = out.completed.pos / PS - out.buffers.nr_segs() as u64;
        for (k, page) in out.buffers.pages().iter().enumerate() {
            assert_eq!(check(page.as_bytes()).0, at + k as u64);
        }
    }
    let data = std::fs::read(&p).unwrap();
    assert_eq!(data.len() as u64, npages * PS);
    for (i, chunk) in data.chunks(PAGE_SIZE).enumerate() {
        assert_eq!(check(chunk), (i as u64, final_version[i]), "page {i}");
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn dropping_the_queue_waits_for_io_in_flight() {
    let Some((q, p)) = setup("drop_queue", 32) else {
        return;
    };
    const K: u64 = 64; // pages per operation: 256 KiB, so some are in flight
    let mut sync = Kiocb::new_sync(0);
    for r in 0..32 {
        q.submit_write(&mut sync, pages(r * K..(r + 1) * K, 0))
            .unwrap();
    }
    let runs = Arc::new(AtomicUsize::new(0));
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut writes = Vec::new();
    let mut reads = Vec::new();
    let mut held = Vec::new();
    // Build everything first, then submit in a tight loop.
    let batches: Vec<_> = (0..16u64).map(|r| pages(r * K..(r + 1) * K, 1)).collect();
    let blanks: Vec<_> = (0..16).map(|_| blank(K as usize)).collect();
    for ((r, batch), dest) in (0..16u64).zip(batches).zip(blanks) {
        held.push(PageRef::clone(&batch[0]));
        let mut kiocb = counted(r * K * PS, &runs, &log);
        writes.push(q.submit_write(&mut kiocb, batch).unwrap());
        let mut kiocb = counted((16 + r) * K * PS, &runs, &log);
        let op = q.submit_read(&mut kiocb, dest).unwrap();
        if r % 2 == 0 {
            reads.push(((16 + r) * K, op));
        }
    }
    let in_flight = q.in_flight();
    assert!(in_flight > 0);
    let before = runs.load(Ordering::SeqCst);
    drop(q); // cancels and waits for every CQE
    assert_eq!(
        runs.load(Ordering::SeqCst),
        32,
        "every completion ran exactly once"
    );
    let cancelled = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, d)| d.result.is_err())
        .count();
    eprintln!(
        "dio_uring: {in_flight} in flight at drop ({before} delivered before), {cancelled} cancelled"
    );
    for (_, done) in log.lock().unwrap().iter() {
        match done.result {
            Ok(n) => assert_eq!(n, K as usize * PAGE_SIZE),
            Err(e) => assert_eq!(e, Error::Os(Errno::ECANCELED)),
        }
    }
    for (first, op) in reads {
        let out = op.try_take().expect("resolved by the drop");
        if out.completed.result.is_ok() {
            for (k, page) in out.buffers.pages().iter().enumerate() {
                assert_eq!(check(page.as_bytes()), (first + k as u64, 0));
            }
        }
    }
    let data = std::fs::read(&p).unwrap();
    for (r, op) in writes.into_iter().enumerate() {
        let out = op.try_take().expect("resolved by the drop");
        let want = if out.completed.result.is_ok() { 1 } else { 0 };
        let first = r * K as usize;
        for i in first..first + K as usize {
            assert_eq!(check(&data[i * PAGE_SIZE..][..PAGE_SIZE]), (i as u64, want));
        }
        // The output handed the pages back; dropping it puts them.
        assert_eq!(PageRef::strong_count(&held[r]), 2);
    }
    for page in &held {
        assert_eq!(PageRef::strong_count(page), 1);
        check(page.as_bytes());
    }
}
