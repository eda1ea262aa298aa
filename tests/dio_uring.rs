//! The io_uring backend on a real `O_DIRECT` file, through the one I/O
//! contract (`DirectIo::submit` with owned page batches in the kiocb,
//! `DirectIo::direct_io` with borrowed iterators): round trips at QD1 and
//! QD32, exactly-once completions that hand the pages back, positions,
//! alignment errors, short reads, dropped futures, panicking completions
//! and a queue dropped with I/O in flight.
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
use iov_iter::backend::uring::{UringBuilder, UringQueue};
use iov_iter::buf::OwnedIter;
use iov_iter::dio::{DioAlign, DirectIo};
use iov_iter::kiocb::{Completed, CompletionFuture, IocbFlags, Kiocb, Submitted};
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

/// Whether the running kernel is at least `major.minor`
/// (`/proc/sys/kernel/osrelease`).
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut v = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    (v.next().unwrap_or(0), v.next().unwrap_or(0)) >= (major, minor)
}

/// As [`setup_with`], for a builder that asked for a set-up flag:
/// checks that `is_on` says it took from kernel `since` on, and that a
/// queue built without asking does not have it.
fn setup_flagged(
    name: &str,
    builder: UringBuilder,
    is_on: fn(&UringQueue) -> bool,
    since: (u32, u32),
) -> Option<(UringQueue, PathBuf)> {
    let (q, p) = setup_with(name, builder)?;
    if kernel_at_least(since.0, since.1) {
        assert!(
            is_on(&q),
            "{name}: the kernel has the flag (since {since:?})"
        );
    }
    assert!(
        !is_on(&setup(&format!("{name}_off"), 8)?.0),
        "{name}: not asked for"
    );
    Some((q, p))
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

/// The source of an owned write: pages `range` at `version`.
type WriteBuf = OwnedIter<Source, Vec<PageRef>>;
/// The destination of an owned read: fresh pages.
type ReadBuf = OwnedIter<Dest, Vec<Page>>;

fn src(range: std::ops::Range<u64>, version: u64) -> WriteBuf {
    OwnedIter::<Source, _>::new(pages(range, version))
}

fn blank(n: usize) -> ReadBuf {
    OwnedIter::<Dest, _>::new((0..n).map(|_| Page::new()).collect())
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

/// What counted completions record: the start position and the outcome,
/// with the buffer handed back.
type Log<B> = Arc<Mutex<Vec<(u64, Completed<B>)>>>;

fn log<B>() -> Log<B> {
    Arc::new(Mutex::new(Vec::new()))
}

/// An async kiocb carrying `buf`, whose completion counts its runs and
/// records the outcome (and the buffer it hands back).
fn counted<B: Send + 'static>(pos: u64, buf: B, runs: &Arc<AtomicUsize>, log: &Log<B>) -> Kiocb<B> {
    let (runs, log) = (Arc::clone(runs), Arc::clone(log));
    Kiocb::with_callback(pos, buf, move |done| {
        runs.fetch_add(1, Ordering::SeqCst);
        log.lock().unwrap().push((pos, done));
    })
}

/// Drives the queue until `fut` has completed, with `wait` / `is_complete`
/// / `try_take` rather than `block_on`.
fn wait_for<B>(q: &UringQueue, mut fut: CompletionFuture<B>) -> Completed<B> {
    while !fut.is_complete() {
        q.wait(1).unwrap();
    }
    fut.try_take().expect("complete, not taken yet")
}

#[test]
#[cfg_attr(miri, ignore)]
fn sync_round_trip_qd1() {
    let Some((q, p)) = setup("sync_qd1", 1) else {
        return;
    };
    assert_eq!(q.depth(), 1);
    let mut kiocb = Kiocb::new_sync_with(0, src(0..4, 1));
    assert_eq!(q.submit(&mut kiocb), Ok(Submitted::Done(4 * PAGE_SIZE)));
    assert_eq!(kiocb.pos, 4 * PS);
    // The buffer stays in the sync kiocb, advanced to its end.
    let buf = kiocb.buf().unwrap();
    assert_eq!((buf.count(), buf.nr_segs(), buf.buf().len()), (0, 0, 4));
    // A second sync write continues at the advanced position.
    *kiocb.buf_mut().unwrap() = src(4..5, 1);
    assert_eq!(q.submit(&mut kiocb), Ok(Submitted::Done(PAGE_SIZE)));
    assert_eq!(kiocb.pos, 5 * PS);

    let mut kiocb = Kiocb::new_sync_with(0, blank(5));
    assert_eq!(q.submit(&mut kiocb), Ok(Submitted::Done(5 * PAGE_SIZE)));
    assert_eq!(kiocb.pos, 5 * PS);
    let back = kiocb.take_buf().unwrap();
    assert_eq!(back.count(), 0);
    for (i, page) in back.into_inner().iter().enumerate() {
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
        let (mut kiocb, done) = Kiocb::new_async_with(i * PS, src(i..i + 1, 7));
        assert_eq!(q.submit(&mut kiocb), Ok(Submitted::Queued));
        assert!(!kiocb.has_completion());
        assert!(kiocb.buf().is_none(), "the pages travel with the I/O");
        let out = q.block_on(done);
        assert_eq!(out.result, Ok(PAGE_SIZE));
        assert_eq!(out.pos, (i + 1) * PS, "position advances on completion");
        assert_eq!(out.buf.count(), 0, "handed back advanced");
    }
    for i in (0..8).rev() {
        let (mut kiocb, done) = Kiocb::new_async_with(i * PS, blank(1));
        assert!(q.submit(&mut kiocb).unwrap().is_queued());
        let out = wait_for(&q, done);
        assert_eq!(out.result, Ok(PAGE_SIZE));
        assert_eq!(out.pos, (i + 1) * PS);
        assert_eq!(check(out.buf.into_inner()[0].as_bytes()), (i, 7));
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
    let wlog = log();
    let mut peak = 0;
    for i in 0..n {
        let mut kiocb = counted(i * PS, src(i..i + 1, 3), &runs, &wlog);
        assert_eq!(q.submit(&mut kiocb), Ok(Submitted::Queued));
        peak = peak.max(q.in_flight());
    }
    assert!(peak > 1, "several operations were in flight at once");
    q.drain().unwrap();
    assert_eq!(q.in_flight(), 0);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        n as usize,
        "each completion ran once"
    );
    let mut seen: Vec<_> = wlog.lock().unwrap().drain(..).collect();
    seen.sort_by_key(|&(pos, _)| pos);
    assert_eq!(seen.len(), n as usize);
    for (i, (pos, done)) in seen.iter().enumerate() {
        assert_eq!(
            (*pos, done.result, done.pos),
            (i as u64 * PS, Ok(PAGE_SIZE), *pos + PS)
        );
        assert_eq!(check(done.buf.buf()[0].as_bytes()), (i as u64, 3));
    }

    // Read back with 32 two-page reads in flight, delivered by reap/wait.
    let rlog = log();
    let mut reads = 0;
    for i in (0..n).step_by(2) {
        let mut kiocb = counted(i * PS, blank(2), &runs, &rlog);
        assert_eq!(q.submit(&mut kiocb), Ok(Submitted::Queued));
        reads += 1;
    }
    while q.in_flight() > 0 {
        q.reap();
        q.wait(4).unwrap();
    }
    assert_eq!(runs.load(Ordering::SeqCst), n as usize + reads);
    let seen: Vec<_> = rlog.lock().unwrap().drain(..).collect();
    assert_eq!(seen.len(), reads);
    for (i, done) in seen {
        assert_eq!(done.result, Ok(2 * PAGE_SIZE));
        assert_eq!(done.pos, i + 2 * PS);
        for (k, page) in done.buf.into_inner().iter().enumerate() {
            assert_eq!(check(page.as_bytes()), (i / PS + k as u64, 3));
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
    let Some((q, p)) = setup_flagged("coop", builder, UringQueue::is_coop_taskrun, (5, 19)) else {
        return;
    };
    // 40 single-page async writes: five times the depth.
    let runs = Arc::new(AtomicUsize::new(0));
    let wlog = log();
    let mut futs = Vec::new();
    for i in 0..40u64 {
        if i % 2 == 0 {
            let mut kiocb = counted(i * PS, src(i..i + 1, 3), &runs, &wlog);
            assert!(q.submit(&mut kiocb).unwrap().is_queued());
        } else {
            let (mut kiocb, done) = Kiocb::new_async_with(i * PS, src(i..i + 1, 3));
            assert!(q.submit(&mut kiocb).unwrap().is_queued());
            futs.push(done);
        }
    }
    for done in futs {
        assert_eq!(wait_for(&q, done).result, Ok(PAGE_SIZE));
    }
    while runs.load(Ordering::SeqCst) < 20 && q.in_flight() > 0 {
        q.wait(1).unwrap();
    }
    assert_eq!(runs.load(Ordering::SeqCst), 20, "each completion ran once");
    assert!(
        wlog.lock()
            .unwrap()
            .iter()
            .all(|(pos, d)| d.result == Ok(PAGE_SIZE) && d.pos == pos + PS)
    );
    // Vectored: 8 pages per read, async, then one sync.
    for i in (0..5u64).rev().map(|k| k * 8) {
        let (mut kiocb, done) = Kiocb::new_async_with(i * PS, blank(8));
        assert!(q.submit(&mut kiocb).unwrap().is_queued());
        let out = q.block_on(done);
        assert_eq!(out.result, Ok(8 * PAGE_SIZE));
        assert_eq!(out.pos, (i + 8) * PS);
        for (k, page) in out.buf.into_inner().iter().enumerate() {
            assert_eq!(check(page.as_bytes()), (i + k as u64, 3));
        }
    }
    let mut sync = Kiocb::new_sync_with(8 * PS, blank(8));
    assert_eq!(q.submit(&mut sync), Ok(Submitted::Done(8 * PAGE_SIZE)));
    for (k, page) in sync.take_buf().unwrap().into_inner().iter().enumerate() {
        assert_eq!(check(page.as_bytes()), (8 + k as u64, 3));
    }
    // Single pages, sync: the last one written, then one at EOF (reads 0).
    let mut sync = Kiocb::new_sync_with(39 * PS, blank(1));
    assert_eq!(q.submit(&mut sync), Ok(Submitted::Done(PAGE_SIZE)));
    let out = sync.buf().unwrap();
    assert_eq!(check(out.buf()[0].as_bytes()), (39, 3));
    assert_eq!(sync.pos, 40 * PS);
    *sync.buf_mut().unwrap() = blank(1);
    assert_eq!(
        q.submit(&mut sync),
        Ok(Submitted::Done(0)),
        "one page at EOF reads nothing"
    );
    assert_eq!(sync.buf().unwrap().count(), PAGE_SIZE);
    // A single-page write at EOF grows the file by exactly one page.
    let mut w = Kiocb::new_sync_with(40 * PS, src(40..41, 3));
    assert_eq!(q.submit(&mut w), Ok(Submitted::Done(PAGE_SIZE)));
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 41 * PS);
    assert_eq!(q.in_flight(), 0);
}

/// `drive(0)` (deliver what has completed, never block) makes progress on
/// a single-issuer queue too: a `DEFER_TASKRUN` ring posts a CQE only for
/// an enter that asks for events, so a poll that only looked at the CQ
/// would never see a completion nobody waited for.
#[test]
#[cfg_attr(miri, ignore)]
fn polling_a_single_issuer_queue_delivers_what_has_completed() {
    let builder = UringQueue::builder().depth(4).single_issuer(true);
    let Some((q, _p)) = setup_flagged(
        "single_issuer_poll",
        builder,
        UringQueue::is_single_issuer,
        (6, 1),
    ) else {
        return;
    };
    let (mut kiocb, mut done) = Kiocb::new_async_with(0, src(0..1, 4));
    assert!(q.submit(&mut kiocb).unwrap().is_queued());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let out = loop {
        if let Some(out) = done.try_take() {
            break out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "drive(0) never delivered a completed write"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
        q.drive(0).unwrap();
    };
    assert_eq!(out.result, Ok(PAGE_SIZE));
    assert_eq!(q.in_flight(), 0);
}

/// A single-issuer queue (`IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN`)
/// does the round trips of any queue on the thread that built it, with
/// more than one request in flight; from another thread every submission
/// is refused with `EEXIST` before it reaches the ring (sync: the error;
/// async: the kiocb completes with it, once, buffer back) and so is a wait,
/// and the building thread goes on as if nothing happened.
#[test]
#[cfg_attr(miri, ignore)]
fn single_issuer_queue_serves_its_thread_and_refuses_others() {
    let builder = UringQueue::builder().depth(16).single_issuer(true);
    let Some((q, p)) = setup_flagged(
        "single_issuer",
        builder,
        UringQueue::is_single_issuer,
        (6, 1),
    ) else {
        return;
    };
    // 32 async writes, then 32 async reads, all submitted before any wait.
    let mut futs = Vec::new();
    for i in 0..32u64 {
        let (mut kiocb, done) = Kiocb::new_async_with(i * PS, src(i..i + 1, 5));
        assert!(q.submit(&mut kiocb).unwrap().is_queued());
        futs.push(done);
    }
    if q.is_single_issuer() {
        assert!(q.in_flight() > 1, "requests wait for the issuer's wait");
    }
    for done in futs {
        assert_eq!(wait_for(&q, done).result, Ok(PAGE_SIZE));
    }
    let mut reads = Vec::new();
    for i in (0..32u64).rev() {
        let (mut kiocb, done) = Kiocb::new_async_with(i * PS, blank(1));
        assert!(q.submit(&mut kiocb).unwrap().is_queued());
        reads.push((i, done));
    }
    for (i, done) in reads {
        let out = wait_for(&q, done);
        assert_eq!(out.result, Ok(PAGE_SIZE));
        assert_eq!(check(out.buf.into_inner()[0].as_bytes()), (i, 5));
    }
    if !q.is_single_issuer() {
        return;
    }
    // Another thread: refused, nothing queued, every buffer back once.
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut sync = Kiocb::new_sync_with(0, blank(1));
            assert_eq!(q.submit(&mut sync), Err(Error::Os(Errno::EEXIST)));
            assert!(
                sync.take_buf().is_some(),
                "the sync buffer stays with the caller"
            );
            let (mut kiocb, mut done) = Kiocb::new_async_with(PS, src(1..2, 9));
            let r = q.submit(&mut kiocb);
            let out = match r {
                Ok(Submitted::Queued) => done.try_take().expect("completed at once"),
                other => panic!("an async kiocb completes through its future: {other:?}"),
            };
            assert_eq!(out.result, Err(Error::Os(Errno::EEXIST)));
            assert_eq!(out.buf.into_inner().len(), 1);
            // Page-aligned (a Vec's bytes may be misaligned: EINVAL first).
            let mut borrowed = Page::new();
            let mut it = IovIter::<Dest, Ubuf>::new(borrowed.as_mut_bytes());
            let e = q.direct_io(&mut Kiocb::new_sync(0), &mut it).unwrap_err();
            assert_eq!(e.errno(), Errno::EEXIST);
            assert_eq!(q.in_flight(), 0);
        });
    });
    // The building thread: page 1 still holds version 5 (the refused
    // write never happened), and the queue works on.
    let mut sync = Kiocb::new_sync_with(PS, blank(1));
    assert_eq!(q.submit(&mut sync), Ok(Submitted::Done(PAGE_SIZE)));
    assert_eq!(
        check(sync.take_buf().unwrap().into_inner()[0].as_bytes()),
        (1, 5)
    );
    // Dropped on another thread with writes in flight: that thread cannot
    // wait for them, so the ring and their buffers are leaked (the kernel
    // keeps writing into memory nobody frees); the process goes on. A
    // write whose completion the building thread's last entries into the
    // kernel posted completes, then or in the drop (which reaps what is
    // posted), with its result; the last one's completion could only be
    // posted by a wait of the building thread: it never completes, nor
    // does any other left.
    let mut pending = Vec::new();
    for i in 0..4u64 {
        let (mut kiocb, done) = Kiocb::new_async_with(i * PS, src(i..i + 1, 6));
        assert!(q.submit(&mut kiocb).unwrap().is_queued());
        pending.push(done);
    }
    std::thread::spawn(move || drop(q)).join().unwrap();
    let mut left = Vec::new();
    for mut done in pending {
        match done.try_take() {
            Some(out) => assert_eq!(out.result, Ok(PAGE_SIZE)),
            None => left.push(done),
        }
    }
    assert!(
        !left.is_empty(),
        "the last write was still in flight at the drop"
    );
    std::thread::sleep(std::time::Duration::from_millis(50));
    for mut done in left {
        assert!(
            done.try_take().is_none(),
            "a leaked request never completes"
        );
    }
    let _ = std::fs::remove_file(p);
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
    let mut futs = Vec::new();
    {
        let outer = q.plug();
        {
            let _inner = q.plug();
            for i in 0..8u64 {
                let (mut kiocb, done) = Kiocb::new_async_with(i * PS, src(i..i + 1, 4));
                assert!(q.submit(&mut kiocb).unwrap().is_queued());
                futs.push(done);
            }
            assert_eq!(q.unsubmitted(), 8, "held in the SQ");
        }
        assert_eq!(q.unsubmitted(), 8, "the outer plug still holds them");
        assert_eq!(outer.flush().unwrap(), 8);
        assert_eq!(q.unsubmitted(), 0);
        // Two more, then the plug ends.
        for i in 8..10u64 {
            let (mut kiocb, done) = Kiocb::new_async_with(i * PS, src(i..i + 1, 4));
            assert!(q.submit(&mut kiocb).unwrap().is_queued());
            futs.push(done);
        }
        assert_eq!(q.unsubmitted(), 2);
    }
    assert_eq!(q.unsubmitted(), 0, "the plug's end submits");
    for done in futs.drain(..) {
        assert_eq!(wait_for(&q, done).result, Ok(PAGE_SIZE));
    }
    // Waiting under a plug submits what it holds instead of hanging.
    {
        let _plug = q.plug();
        let (mut kiocb, done) = Kiocb::new_async_with(0, blank(10));
        assert!(q.submit(&mut kiocb).unwrap().is_queued());
        assert_eq!(q.unsubmitted(), 1);
        let out = wait_for(&q, done);
        assert_eq!(out.result, Ok(10 * PAGE_SIZE));
        assert_eq!(out.pos, 10 * PS);
        for (i, page) in out.buf.into_inner().iter().enumerate() {
            assert_eq!(check(page.as_bytes()), (i as u64, 4));
        }
        // A sync kiocb goes out at once, with whatever is queued.
        let (mut kiocb, queued) = Kiocb::new_async_with(0, blank(1));
        assert!(q.submit(&mut kiocb).unwrap().is_queued());
        assert_eq!(q.unsubmitted(), 1);
        let mut sync = Kiocb::new_sync_with(PS, blank(1));
        assert_eq!(q.submit(&mut sync), Ok(Submitted::Done(PAGE_SIZE)));
        assert_eq!(check(sync.buf().unwrap().buf()[0].as_bytes()), (1, 4));
        assert_eq!(q.unsubmitted(), 0);
        let out = q.block_on(queued);
        assert_eq!(out.result, Ok(PAGE_SIZE));
        assert_eq!(check(out.buf.into_inner()[0].as_bytes()), (0, 4));
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
            let (mut kiocb, done) = Kiocb::new_async_with(round * PS, src(round..round + 1, 9));
            assert!(q.submit(&mut kiocb).unwrap().is_queued());
            let out = park_on(done);
            assert_eq!(out.result, Ok(PAGE_SIZE));
            assert_eq!(out.pos, (round + 1) * PS);
            let (mut kiocb, done) = Kiocb::new_async_with(round * PS, blank(1));
            assert!(q.submit(&mut kiocb).unwrap().is_queued());
            let out = park_on(done);
            assert_eq!(out.pos, (round + 1) * PS);
            assert_eq!(check(out.buf.into_inner()[0].as_bytes()), (round, 9));
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
    let (mut kiocb, mut done) =
        Kiocb::new_async_with(u64::from(align.offset) / 2 + 1, src(0..1, 1));
    let err = q.submit(&mut kiocb).unwrap_err();
    assert_eq!(err.errno(), Errno::EINVAL);
    assert!(matches!(
        err,
        Error::Misaligned {
            what: Misalignment::FileOffset,
            ..
        }
    ));
    // The completion, and the pages with it, stay in the kiocb untouched.
    assert!(kiocb.has_completion());
    let buf = kiocb.buf().expect("the buffer stays in the kiocb");
    assert_eq!(buf.count(), PAGE_SIZE);
    assert_eq!(check(buf.buf()[0].as_bytes()), (0, 1));
    assert!(!done.is_complete());
    assert_eq!(q.in_flight(), 0);

    // A segment starting off the memory alignment (when it is above 1).
    if align.mem > 1 && (align.mem as usize) < PAGE_SIZE {
        let len = align.offset.max(align.mem) as usize;
        let mut dest = blank(2);
        dest.advance(align.mem as usize / 2);
        dest.truncate(len as u64);
        let (mut rk, rdone) = Kiocb::new_async_with(0, dest);
        let err = q.submit(&mut rk).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Misaligned {
                    what: Misalignment::SegmentAddress { index: 0 },
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(rk.has_completion());
        assert_eq!(rk.buf().map(OwnedIter::count), Some(len));
        assert!(!rdone.is_complete());
        assert_eq!(q.in_flight(), 0);
    }
    // A stricter alignment than the file's.
    let strict = UringQueue::builder()
        .depth(8)
        .align(DioAlign::new(4096, 8192).unwrap())
        .open(&p)
        .unwrap();
    assert_eq!(strict.dio_align(), DioAlign::new(4096, 8192).unwrap());
    let mut sync = Kiocb::new_sync_with(4096, src(0..1, 1));
    let err = strict.submit(&mut sync).unwrap_err();
    assert_eq!(err.errno(), Errno::EINVAL);
    assert_eq!(sync.pos, 4096);
    assert_eq!(sync.buf().map(OwnedIter::count), Some(PAGE_SIZE));
    drop(kiocb);
    let cancelled = done.try_take().expect("dropping the kiocb completes it");
    assert_eq!(cancelled.result, Err(Error::Os(Errno::ECANCELED)));
    assert_eq!(check(cancelled.buf.into_inner()[0].as_bytes()), (0, 1));
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
    let mut kiocb = Kiocb::new_sync_with(0, src(0..2, 5));
    assert_eq!(q.submit(&mut kiocb), Ok(Submitted::Done(2 * PAGE_SIZE)));
    let (mut kiocb, done) = Kiocb::new_async_with(0, blank(4));
    assert!(q.submit(&mut kiocb).unwrap().is_queued());
    let out = q.block_on(done);
    assert_eq!(out.result, Ok(2 * PAGE_SIZE));
    assert_eq!(out.pos, 2 * PS);
    // Advanced by the short count: resubmitting would resume at page 2.
    assert_eq!((out.buf.count(), out.buf.nr_segs()), (2 * PAGE_SIZE, 2));
    let back = out.buf.into_inner();
    assert_eq!(check(back[1].as_bytes()), (1, 5));
    assert!(back[2].as_bytes().iter().all(|&b| b == 0));
    let mut sync = Kiocb::new_sync_with(8 * PS, blank(1));
    assert_eq!(q.submit(&mut sync), Ok(Submitted::Done(0)));
    assert_eq!(sync.pos, 8 * PS);
}

#[test]
#[cfg_attr(miri, ignore)]
fn empty_batches_complete_at_once() {
    let Some((q, _p)) = setup("empty", 2) else {
        return;
    };
    let (mut kiocb, mut done) = Kiocb::new_async_with(0, blank(0));
    assert_eq!(q.submit(&mut kiocb), Ok(Submitted::Queued));
    let out = done.try_take().expect("completed before submit returned");
    assert_eq!((out.result, out.pos), (Ok(0), 0));
    assert_eq!(out.buf.nr_segs(), 0);
    assert_eq!(q.in_flight(), 0);
    // An async kiocb cannot be queued twice.
    let err = q.submit(&mut kiocb).unwrap_err();
    assert_eq!(err.errno(), Errno::EINVAL);
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
    let q = UringQueue::builder().depth(2).build(ro).unwrap();
    let mut sync = Kiocb::new_sync_with(0, src(0..1, 2));
    assert_eq!(q.submit(&mut sync), Err(Error::Os(Errno::EBADF)));
    let buf = sync.take_buf().expect("a sync kiocb keeps its buffer");
    assert_eq!(buf.count(), PAGE_SIZE, "nothing was consumed");
    assert_eq!(check(buf.buf()[0].as_bytes()), (0, 2));
    assert_eq!(sync.pos, 0);
    let (mut kiocb, done) = Kiocb::new_async_with(0, src(0..1, 2));
    assert!(q.submit(&mut kiocb).unwrap().is_queued());
    let out = q.block_on(done);
    assert_eq!(out.result, Err(Error::Os(Errno::EBADF)));
    assert_eq!(out.pos, 0, "no progress on error");
    assert_eq!(out.buf.count(), PAGE_SIZE);
    assert_eq!(check(out.buf.into_inner()[0].as_bytes()), (0, 2));
}

/// Completion callbacks that panic, reaped together: every other
/// completion in the batch still runs, the panic is raised again once in
/// the thread that reaped, and the queue stays usable (no abort, nothing
/// leaked).
#[test]
#[cfg_attr(miri, ignore)]
fn panicking_completions_do_not_stop_the_others() {
    let Some((q, p)) = setup("panic", 8) else {
        return;
    };
    let mut sync = Kiocb::new_sync_with(0, src(0..4, 6));
    assert_eq!(q.submit(&mut sync), Ok(Submitted::Done(4 * PAGE_SIZE)));
    let runs = Arc::new(AtomicUsize::new(0));
    let rlog = log();
    {
        let _plug = q.plug();
        for i in 0..4u64 {
            if i % 2 == 1 {
                let runs = Arc::clone(&runs);
                let mut kiocb = Kiocb::with_callback(i * PS, blank(1), move |_done| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    panic!("completion {i} panics");
                });
                assert!(q.submit(&mut kiocb).unwrap().is_queued());
            } else {
                let mut kiocb = counted(i * PS, blank(1), &runs, &rlog);
                assert!(q.submit(&mut kiocb).unwrap().is_queued());
            }
        }
        assert_eq!(q.unsubmitted(), 4);
    }
    // Let all four CQEs arrive, so that one wait reaps them together.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let first = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| q.wait(4)));
    let payload = first.expect_err("the first panic is raised again");
    let msg = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .unwrap_or("");
    assert!(
        msg.starts_with("completion ") && msg.ends_with(" panics"),
        "{msg:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 4, "every completion ran");
    assert_eq!(q.in_flight(), 0);
    // Nothing else is raised later: the second panic was not kept around.
    assert_eq!(q.wait(1), Ok(0));
    assert_eq!(q.reap(), 0);
    let seen = rlog.lock().unwrap().drain(..).collect::<Vec<_>>();
    assert_eq!(seen.len(), 2);
    for (pos, done) in seen {
        assert_eq!(done.result, Ok(PAGE_SIZE));
        assert_eq!(check(done.buf.into_inner()[0].as_bytes()), (pos / PS, 6));
    }
    // The queue still works.
    let (mut kiocb, done) = Kiocb::new_async_with(3 * PS, blank(1));
    assert!(q.submit(&mut kiocb).unwrap().is_queued());
    let out = q.block_on(done);
    assert_eq!(check(out.buf.into_inner()[0].as_bytes()), (3, 6));
    drop(q);
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 4 * PS);
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
    // An async kiocb on a borrowed iterator completes before direct_io
    // returns (a borrowed iterator cannot outlive the call).
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

/// Futures dropped before their I/O completes (and never polled): the queue
/// keeps the request's pages until the CQE, then drops them with the
/// outcome. Mixed with counted callbacks and kept futures, many in flight.
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
    let wlog = log();
    let rlog = log();
    let mut submitted = 0usize;
    let mut counted_ops = 0usize;
    let mut dropped = 0usize;
    let mut held: Vec<PageRef> = Vec::new(); // references kept to write pages
    let mut kept_reads: Vec<(u64, CompletionFuture<ReadBuf>)> = Vec::new();
    let mut final_version = vec![0u64; npages as usize];
    let mut peak = 0;
    // Version 0 everywhere first, so every read finds a pattern.
    let mut sync = Kiocb::new_sync_with(0, src(0..npages, 0));
    assert_eq!(
        q.submit(&mut sync),
        Ok(Submitted::Done(npages as usize * PAGE_SIZE))
    );

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
            let batch = OwnedIter::<Source, _>::new(batch);
            if next() % 4 == 0 {
                let mut kiocb = counted(start * PS, batch, &runs, &wlog);
                assert!(q.submit(&mut kiocb).unwrap().is_queued());
                counted_ops += 1;
            } else {
                let (mut kiocb, done) = Kiocb::new_async_with(start * PS, batch);
                assert!(q.submit(&mut kiocb).unwrap().is_queued());
                drop(done); // detach at once: the queue owns the pages
                dropped += 1;
            }
            submitted += 1;
            peak = peak.max(q.in_flight());

            let at = next() % npages;
            let n = 1 + (next() % 4).min(npages - at - 1);
            match next() % 8 {
                0 => {
                    let (mut kiocb, done) = Kiocb::new_async_with(at * PS, blank(n as usize));
                    assert!(q.submit(&mut kiocb).unwrap().is_queued());
                    kept_reads.push((at, done));
                }
                1..=3 => {
                    let mut kiocb = counted(at * PS, blank(n as usize), &runs, &rlog);
                    assert!(q.submit(&mut kiocb).unwrap().is_queued());
                    counted_ops += 1;
                }
                _ => {
                    let (mut kiocb, done) = Kiocb::new_async_with(at * PS, blank(n as usize));
                    assert!(q.submit(&mut kiocb).unwrap().is_queued());
                    drop((kiocb, done));
                    dropped += 1;
                }
            }
            submitted += 1;
            if next() % 16 == 0 {
                q.reap();
            }
        }
        q.drain().unwrap();
        assert_eq!(q.in_flight(), 0);
        assert_eq!(runs.load(Ordering::SeqCst), counted_ops);
    }
    eprintln!(
        "dio_uring: stress ran {submitted} operations ({dropped} with dropped futures), \
         at most {peak} in flight"
    );
    assert!(submitted > 500, "{submitted} operations");
    assert!(dropped > submitted / 4, "{dropped} dropped futures");
    for (pos, done) in wlog.lock().unwrap().iter() {
        let n = done.result.unwrap();
        assert_eq!(done.pos, pos + n as u64);
        assert_eq!(done.buf.count(), 0);
    }
    for (pos, done) in rlog.lock().unwrap().iter() {
        let n = done.result.unwrap();
        assert_eq!(done.pos, pos + n as u64);
        assert_eq!(done.buf.count(), 0);
    }
    wlog.lock().unwrap().clear();
    // Pages referenced during their write still hold their pattern, and the
    // queue released its reference (even where the future was dropped).
    for page in &held {
        check(page.as_bytes());
        assert_eq!(
            PageRef::strong_count(page),
            1,
            "the queue released its reference"
        );
    }
    // Reads that were kept got whole, consistent pages of the right index.
    for (at, mut done) in kept_reads {
        let out = done.try_take().expect("drained");
        let pages = out.buf.into_inner();
        assert_eq!(out.pos, (at + pages.len() as u64) * PS);
        for (k, page) in pages.iter().enumerate() {
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
    let mut sync = Kiocb::new_sync_with(0, src(0..0, 0));
    for r in 0..32 {
        *sync.buf_mut().unwrap() = src(r * K..(r + 1) * K, 0);
        assert_eq!(
            q.submit(&mut sync),
            Ok(Submitted::Done(K as usize * PAGE_SIZE))
        );
    }
    let runs = Arc::new(AtomicUsize::new(0));
    let wlog = log();
    let rlog = log();
    let mut unpolled_reads = Vec::new();
    let mut held = Vec::new();
    // Build everything first, then submit in a tight loop.
    let batches: Vec<_> = (0..16u64).map(|r| src(r * K..(r + 1) * K, 1)).collect();
    let blanks: Vec<_> = (0..16).map(|_| blank(K as usize)).collect();
    for ((r, batch), dest) in (0..16u64).zip(batches).zip(blanks) {
        held.push(PageRef::clone(&batch.buf()[0]));
        let mut kiocb = counted(r * K * PS, batch, &runs, &wlog);
        assert!(q.submit(&mut kiocb).unwrap().is_queued());
        if r % 2 == 0 {
            let mut kiocb = counted((16 + r) * K * PS, dest, &runs, &rlog);
            assert!(q.submit(&mut kiocb).unwrap().is_queued());
        } else {
            let (mut kiocb, done) = Kiocb::new_async_with((16 + r) * K * PS, dest);
            assert!(q.submit(&mut kiocb).unwrap().is_queued());
            if r % 4 == 1 {
                drop(done); // nobody will look: the pages go with the outcome
            } else {
                // Nobody polls it before the queue goes away.
                unpolled_reads.push(((16 + r) * K, done));
            }
        }
    }
    let in_flight = q.in_flight();
    assert!(in_flight > 0);
    let before = runs.load(Ordering::SeqCst);
    drop(q); // cancels and waits for every CQE
    assert_eq!(
        runs.load(Ordering::SeqCst),
        24,
        "every completion ran exactly once"
    );
    let mut cancelled = 0;
    // Every read resolved by the drop: completed whole, or cancelled.
    let mut reads: Vec<(u64, Completed<ReadBuf>)> = rlog
        .lock()
        .unwrap()
        .drain(..)
        .map(|(pos, d)| (pos / PS, d))
        .collect();
    for (first, mut done) in unpolled_reads {
        reads.push((first, done.try_take().expect("resolved by the drop")));
    }
    assert_eq!(reads.len(), 12);
    for (first, done) in reads {
        match done.result {
            Ok(n) => {
                assert_eq!(n, K as usize * PAGE_SIZE);
                for (k, page) in done.buf.into_inner().iter().enumerate() {
                    assert_eq!(check(page.as_bytes()), (first + k as u64, 0));
                }
            }
            Err(e) => {
                assert_eq!(e, Error::Os(Errno::ECANCELED));
                cancelled += 1;
            }
        }
    }
    let data = std::fs::read(&p).unwrap();
    let mut writes: Vec<_> = wlog.lock().unwrap().drain(..).collect();
    writes.sort_by_key(|&(pos, _)| pos);
    assert_eq!(writes.len(), 16);
    for (r, (pos, done)) in writes.into_iter().enumerate() {
        assert_eq!(pos, r as u64 * K * PS);
        let want = match done.result {
            Ok(n) => {
                assert_eq!(n, K as usize * PAGE_SIZE);
                1
            }
            Err(e) => {
                assert_eq!(e, Error::Os(Errno::ECANCELED));
                cancelled += 1;
                0
            }
        };
        let first = r * K as usize;
        for i in first..first + K as usize {
            assert_eq!(check(&data[i * PAGE_SIZE..][..PAGE_SIZE]), (i as u64, want));
        }
        // The completion handed the pages back; dropping them puts them.
        assert_eq!(PageRef::strong_count(&held[r]), 2);
        drop(done);
        assert_eq!(PageRef::strong_count(&held[r]), 1);
    }
    eprintln!(
        "dio_uring: {in_flight} in flight at drop ({before} delivered before), {cancelled} cancelled"
    );
    for page in &held {
        assert_eq!(PageRef::strong_count(page), 1);
        check(page.as_bytes());
    }
}
