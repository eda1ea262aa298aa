//! Integration tests for `iov_iter::kiocb`: IOCB_*/RWF_* values,
//! `kiocb_set_rw_flags` validation order, and the exactly-once async
//! completion contract (callback and future).

use iov_iter::kiocb::{FileCaps, IocbFlags, Kiocb, RwType, RwfFlags, Submitted};
use iov_iter::{Errno, Error};

fn errno<T: std::fmt::Debug>(r: iov_iter::Result<T>) -> Errno {
    r.unwrap_err().errno()
}

const ALL_CAPS: FileCaps = FileCaps {
    nowait: true,
    atomic_write: true,
    dontcache: true,
    append_only: false,
    dax: false,
};
const NO_CAPS: FileCaps = FileCaps::new();

// ---------------------------------------------------------------- bit values

#[test]
fn iocb_bit_values_match_kernel() {
    let table: [(IocbFlags, u32); 17] = [
        (IocbFlags::HIPRI, 0x1),
        (IocbFlags::DSYNC, 0x2),
        (IocbFlags::SYNC, 0x4),
        (IocbFlags::NOWAIT, 0x8),
        (IocbFlags::APPEND, 0x10),
        (IocbFlags::ATOMIC, 0x40),
        (IocbFlags::DONTCACHE, 0x80),
        (IocbFlags::NOSIGNAL, 0x100),
        (IocbFlags::EVENTFD, 1 << 16),
        (IocbFlags::DIRECT, 1 << 17),
        (IocbFlags::WRITE, 1 << 18),
        (IocbFlags::WAITQ, 1 << 19),
        (IocbFlags::NOIO, 1 << 20),
        (IocbFlags::ALLOC_CACHE, 1 << 21),
        (IocbFlags::DIO_CALLER_COMP, 1 << 22),
        (IocbFlags::AIO_RW, 1 << 23),
        (IocbFlags::HAS_METADATA, 1 << 24),
    ];
    let mut union = 0;
    for (flag, bits) in table {
        assert_eq!(flag.bits(), bits, "{flag:?}");
        union |= bits;
    }
    assert_eq!(IocbFlags::all().bits(), union);
}

#[test]
fn rwf_bit_values_match_kernel() {
    let table: [(RwfFlags, u32); 9] = [
        (RwfFlags::HIPRI, 0x1),
        (RwfFlags::DSYNC, 0x2),
        (RwfFlags::SYNC, 0x4),
        (RwfFlags::NOWAIT, 0x8),
        (RwfFlags::APPEND, 0x10),
        (RwfFlags::NOAPPEND, 0x20),
        (RwfFlags::ATOMIC, 0x40),
        (RwfFlags::DONTCACHE, 0x80),
        (RwfFlags::NOSIGNAL, 0x100),
    ];
    for (flag, bits) in table {
        assert_eq!(flag.bits(), bits, "{flag:?}");
    }
    assert_eq!(RwfFlags::SUPPORTED.bits(), 0x1ff);
    // RWF_SUPPORTED does not overlap IOCB_EVENTFD (the kernel's BUILD_BUG_ON).
    assert_eq!(RwfFlags::SUPPORTED.bits() & IocbFlags::EVENTFD.bits(), 0);
    // from_raw_bits keeps unknown bits.
    assert_eq!(RwfFlags::from_raw_bits(0x8000_0200).bits(), 0x8000_0200);
}

// ---------------------------------------------------------------- validation

#[test]
fn zero_flags_is_ok_even_with_nothing_supported() {
    let mut k = Kiocb::new_sync(0).with_flags(IocbFlags::APPEND | IocbFlags::DIRECT);
    k.set_rw_flags(RwfFlags::empty(), RwType::Read, &NO_CAPS)
        .unwrap();
    assert_eq!(k.flags, IocbFlags::APPEND | IocbFlags::DIRECT);
}

#[test]
fn unknown_bits_are_eopnotsupp() {
    for bit in 9..32 {
        let mut k = Kiocb::new_sync(0);
        let rwf = RwfFlags::from_raw_bits(1 << bit);
        let err = k.set_rw_flags(rwf, RwType::Write, &ALL_CAPS).unwrap_err();
        assert_eq!(err.errno(), Errno::EOPNOTSUPP, "bit {bit}");
        assert!(matches!(err, Error::NotSupported(_)));
        assert_eq!(k.flags, IocbFlags::empty());
    }
}

#[test]
fn append_and_noappend_is_einval() {
    let mut k = Kiocb::new_sync(0);
    let err = k
        .set_rw_flags(
            RwfFlags::APPEND | RwfFlags::NOAPPEND,
            RwType::Write,
            &ALL_CAPS,
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)));
    assert_eq!(err.errno(), Errno::EINVAL);
}

#[test]
fn nowait_needs_fmode_nowait_and_sets_noio() {
    let mut k = Kiocb::new_sync(0);
    assert_eq!(
        errno(k.set_rw_flags(RwfFlags::NOWAIT, RwType::Read, &NO_CAPS)),
        Errno::EOPNOTSUPP
    );
    assert_eq!(k.flags, IocbFlags::empty());
    let caps = FileCaps {
        nowait: true,
        ..FileCaps::default()
    };
    k.set_rw_flags(RwfFlags::NOWAIT, RwType::Read, &caps)
        .unwrap();
    assert_eq!(k.flags, IocbFlags::NOWAIT | IocbFlags::NOIO);
}

#[test]
fn atomic_needs_write_and_fmode_can_atomic_write() {
    let mut k = Kiocb::new_sync(0);
    // On a read: EOPNOTSUPP even when the file supports atomic writes.
    assert_eq!(
        errno(k.set_rw_flags(RwfFlags::ATOMIC, RwType::Read, &ALL_CAPS)),
        Errno::EOPNOTSUPP
    );
    // On a write without the capability.
    let caps = FileCaps {
        atomic_write: false,
        ..ALL_CAPS
    };
    assert_eq!(
        errno(k.set_rw_flags(RwfFlags::ATOMIC, RwType::Write, &caps)),
        Errno::EOPNOTSUPP
    );
    assert_eq!(k.flags, IocbFlags::empty());
    let caps = FileCaps {
        atomic_write: true,
        ..FileCaps::default()
    };
    k.set_rw_flags(RwfFlags::ATOMIC, RwType::Write, &caps)
        .unwrap();
    assert_eq!(k.flags, IocbFlags::ATOMIC);
}

#[test]
fn dontcache_needs_fop_dontcache_and_no_dax() {
    let mut k = Kiocb::new_sync(0);
    let no_fop = FileCaps {
        dontcache: false,
        ..ALL_CAPS
    };
    let dax = FileCaps {
        dax: true,
        ..ALL_CAPS
    };
    for rw in [RwType::Read, RwType::Write] {
        assert_eq!(
            errno(k.set_rw_flags(RwfFlags::DONTCACHE, rw, &no_fop)),
            Errno::EOPNOTSUPP
        );
        assert_eq!(
            errno(k.set_rw_flags(RwfFlags::DONTCACHE, rw, &dax)),
            Errno::EOPNOTSUPP
        );
        assert_eq!(k.flags, IocbFlags::empty());
    }
    let ok = FileCaps {
        dontcache: true,
        ..FileCaps::default()
    };
    k.set_rw_flags(RwfFlags::DONTCACHE, RwType::Read, &ok)
        .unwrap();
    assert_eq!(k.flags, IocbFlags::DONTCACHE);
}

#[test]
fn capability_free_flags_are_accepted_and_copied() {
    for (rwf, iocb) in [
        (RwfFlags::HIPRI, IocbFlags::HIPRI),
        (RwfFlags::DSYNC, IocbFlags::DSYNC),
        (RwfFlags::SYNC, IocbFlags::SYNC | IocbFlags::DSYNC),
        (RwfFlags::APPEND, IocbFlags::APPEND),
        (RwfFlags::NOSIGNAL, IocbFlags::NOSIGNAL),
        (RwfFlags::NOAPPEND, IocbFlags::empty()),
    ] {
        for rw in [RwType::Read, RwType::Write] {
            let mut k = Kiocb::new_sync(0);
            k.set_rw_flags(rwf, rw, &NO_CAPS).unwrap();
            assert_eq!(k.flags, iocb, "{rwf:?}");
        }
    }
}

#[test]
fn flags_are_ored_into_existing_flags() {
    let mut k = Kiocb::new_sync(0).with_flags(IocbFlags::DIRECT | IocbFlags::WRITE);
    let all_but_noappend = RwfFlags::SUPPORTED - RwfFlags::NOAPPEND;
    k.set_rw_flags(all_but_noappend, RwType::Write, &ALL_CAPS)
        .unwrap();
    assert_eq!(
        k.flags,
        IocbFlags::DIRECT
            | IocbFlags::WRITE
            | IocbFlags::HIPRI
            | IocbFlags::DSYNC
            | IocbFlags::SYNC
            | IocbFlags::NOWAIT
            | IocbFlags::NOIO
            | IocbFlags::APPEND
            | IocbFlags::ATOMIC
            | IocbFlags::DONTCACHE
            | IocbFlags::NOSIGNAL
    );
    // Nothing outside the named IOCB bits leaks in (no stray 0x20).
    assert_eq!(k.flags.bits() & !IocbFlags::all().bits(), 0);
}

#[test]
fn noappend_clears_append_or_eperm_on_append_only() {
    let mut k = Kiocb::new_sync(0).with_flags(IocbFlags::APPEND | IocbFlags::DIRECT);
    k.set_rw_flags(
        RwfFlags::NOAPPEND | RwfFlags::DSYNC,
        RwType::Write,
        &NO_CAPS,
    )
    .unwrap();
    assert_eq!(k.flags, IocbFlags::DIRECT | IocbFlags::DSYNC);
    assert_eq!(k.flags.bits() & 0x20, 0);

    let append_only = FileCaps {
        append_only: true,
        ..ALL_CAPS
    };
    let mut k = Kiocb::new_sync(0).with_flags(IocbFlags::APPEND);
    let err = k
        .set_rw_flags(
            RwfFlags::NOAPPEND | RwfFlags::SYNC,
            RwType::Write,
            &append_only,
        )
        .unwrap_err();
    assert_eq!(err, Error::Os(Errno::EPERM));
    assert_eq!(k.flags, IocbFlags::APPEND);

    // NOAPPEND on an append-only inode whose kiocb lacks APPEND: nothing to
    // clear, so no EPERM (the check is on the kiocb's APPEND).
    let mut k = Kiocb::new_sync(0);
    k.set_rw_flags(RwfFlags::NOAPPEND, RwType::Write, &append_only)
        .unwrap();
    assert_eq!(k.flags, IocbFlags::empty());
}

#[test]
fn error_order_when_several_rules_are_broken() {
    let unknown = RwfFlags::from_raw_bits(0x400);
    let both = RwfFlags::APPEND | RwfFlags::NOAPPEND;
    let append_only = FileCaps {
        append_only: true,
        ..NO_CAPS
    };
    let cases: &[(RwfFlags, RwType, FileCaps, Errno)] = &[
        // 2 before 3
        (unknown | both, RwType::Write, NO_CAPS, Errno::EOPNOTSUPP),
        // 2 before everything
        (
            unknown | both | RwfFlags::NOWAIT | RwfFlags::ATOMIC | RwfFlags::DONTCACHE,
            RwType::Read,
            NO_CAPS,
            Errno::EOPNOTSUPP,
        ),
        // 3 before 4, 5, 6
        (
            both | RwfFlags::NOWAIT,
            RwType::Write,
            NO_CAPS,
            Errno::EINVAL,
        ),
        (
            both | RwfFlags::ATOMIC,
            RwType::Read,
            NO_CAPS,
            Errno::EINVAL,
        ),
        (
            both | RwfFlags::DONTCACHE,
            RwType::Write,
            FileCaps {
                dax: true,
                ..NO_CAPS
            },
            Errno::EINVAL,
        ),
        // 4, 5, 6 (all EOPNOTSUPP) before 8's EPERM
        (
            RwfFlags::NOAPPEND | RwfFlags::NOWAIT,
            RwType::Write,
            append_only,
            Errno::EOPNOTSUPP,
        ),
        (
            RwfFlags::NOAPPEND | RwfFlags::ATOMIC,
            RwType::Write,
            append_only,
            Errno::EOPNOTSUPP,
        ),
        (
            RwfFlags::NOAPPEND | RwfFlags::DONTCACHE,
            RwType::Write,
            append_only,
            Errno::EOPNOTSUPP,
        ),
        // 8 alone
        (RwfFlags::NOAPPEND, RwType::Write, append_only, Errno::EPERM),
    ];
    for &(rwf, rw, caps, want) in cases {
        let before = IocbFlags::APPEND | IocbFlags::DIRECT;
        let mut k = Kiocb::new_sync(7).with_flags(before);
        let got = errno(k.set_rw_flags(rwf, rw, &caps));
        assert_eq!(got, want, "{rwf:?} {rw:?} {caps:?}");
        assert_eq!(k.flags, before, "flags changed on error: {rwf:?}");
        assert_eq!(k.pos, 7);
    }
}

#[test]
fn every_error_leaves_flags_unchanged_exhaustive() {
    // All 2^9 combinations of known bits, plus one unknown bit, against a
    // few capability sets: on error nothing changes; on success the result
    // is a superset of the copied bits.
    let caps_sets = [
        NO_CAPS,
        ALL_CAPS,
        FileCaps {
            append_only: true,
            dax: true,
            ..ALL_CAPS
        },
    ];
    let step = if cfg!(miri) { 37 } else { 1 };
    for raw in (0..0x400u32).step_by(step) {
        let rwf = RwfFlags::from_raw_bits(raw);
        for caps in &caps_sets {
            for rw in [RwType::Read, RwType::Write] {
                let before = IocbFlags::APPEND | IocbFlags::EVENTFD;
                let mut k = Kiocb::new_sync(0).with_flags(before);
                match k.set_rw_flags(rwf, rw, caps) {
                    Err(_) => assert_eq!(k.flags, before),
                    Ok(()) => {
                        assert_eq!(raw & !0x1ff, 0);
                        let copied = IocbFlags::from_bits_truncate(raw & !0x20);
                        assert!(k.flags.contains(copied));
                        assert!(k.flags.contains(IocbFlags::EVENTFD));
                        assert_eq!(
                            k.flags.contains(IocbFlags::APPEND),
                            raw & 0x20 == 0,
                            "{rwf:?}"
                        );
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- sync kiocb

#[test]
fn sync_kiocb_basics() {
    let mut k = Kiocb::new_sync(100)
        .with_ioprio(4)
        .with_flags(IocbFlags::DIRECT);
    assert!(k.is_sync());
    #[cfg(feature = "alloc")]
    {
        assert!(!k.has_completion());
        assert!(k.take_completion().is_none());
        assert!(!k.complete(Ok(5)));
    }
    assert_eq!(k.pos, 100);
    k.advance_pos(28);
    assert_eq!(k.pos, 128);
    k.pos = u64::MAX - 1;
    k.advance_pos(10);
    assert_eq!(k.pos, u64::MAX);
    assert_eq!(k.ioprio, 4);
    let d = Kiocb::default();
    assert!(d.is_sync() && d.pos == 0 && d.flags.is_empty() && d.ioprio == 0);
    assert!(Submitted::Queued.is_queued());
    assert!(!Submitted::Done(3).is_queued());
}

/// Async completion (callback and future): needs the `alloc` feature.
#[cfg(feature = "alloc")]
mod completion {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll, Wake, Waker};
    use std::thread;

    use iov_iter::kiocb::{Completed, CompletionFuture, Kiocb};
    use iov_iter::{Errno, Error};

    #[cfg(miri)]
    const THREADS: usize = 2;
    #[cfg(not(miri))]
    const THREADS: usize = 16;
    #[cfg(miri)]
    const ROUNDS: usize = 3;
    #[cfg(not(miri))]
    const ROUNDS: usize = 200;

    // ---------------------------------------------------------------- helpers

    struct ThreadWaker {
        thread: thread::Thread,
        wakes: AtomicUsize,
    }

    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.wakes.fetch_add(1, Ordering::SeqCst);
            self.thread.unpark();
        }
    }

    /// A tiny executor: polls on the current thread, parks between polls.
    fn block_on<F: Future>(fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        let waker = Waker::from(Arc::new(ThreadWaker {
            thread: thread::current(),
            wakes: AtomicUsize::new(0),
        }));
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
            thread::park();
        }
    }

    fn counting_waker() -> (Waker, Arc<ThreadWaker>) {
        let inner = Arc::new(ThreadWaker {
            thread: thread::current(),
            wakes: AtomicUsize::new(0),
        });
        (Waker::from(Arc::clone(&inner)), inner)
    }

    fn poll_once(fut: &mut CompletionFuture, waker: &Waker) -> Poll<Completed> {
        Pin::new(fut).poll(&mut Context::from_waker(waker))
    }

    // ---------------------------------------------------------------- completion

    fn counting_kiocb(pos: u64) -> (Kiocb, Arc<AtomicUsize>, Arc<Mutex<Vec<Completed>>>) {
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (c, s) = (Arc::clone(&count), Arc::clone(&seen));
        let k = Kiocb::with_completion(pos, move |done| {
            c.fetch_add(1, Ordering::SeqCst);
            s.lock().unwrap().push(done);
        });
        (k, count, seen)
    }

    #[test]
    fn callback_completion_runs_exactly_once() {
        let (mut k, count, seen) = counting_kiocb(4096);
        assert!(!k.is_sync());
        assert!(k.has_completion());
        let c = k.take_completion().expect("async kiocb has a completion");
        // Still async after the take, and cannot be queued twice.
        assert!(!k.is_sync());
        assert!(k.take_completion().is_none());
        assert!(!k.complete(Ok(1)));
        assert_eq!(c.start_pos(), 4096);
        assert_eq!(count.load(Ordering::SeqCst), 0);
        c.complete(4096, Ok(512));
        drop(k);
        assert_eq!(count.load(Ordering::SeqCst), 1);
        assert_eq!(
            *seen.lock().unwrap(),
            vec![Completed {
                result: Ok(512),
                pos: 4608,
                buf: (),
            }]
        );
    }

    #[test]
    fn callback_completion_from_other_threads_runs_once_each() {
        let total = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let t = Arc::clone(&total);
                let mut k = Kiocb::with_completion(i as u64, move |done| {
                    assert_eq!(done.result, Ok(i));
                    assert_eq!(done.pos, 2 * i as u64);
                    t.fetch_add(1, Ordering::SeqCst);
                });
                let c = k.take_completion().unwrap();
                let start = k.pos;
                thread::spawn(move || c.complete(start, Ok(i)))
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(total.load(Ordering::SeqCst), THREADS);
    }

    #[test]
    fn failed_completion_leaves_pos_at_start() {
        let (mut k, count, seen) = counting_kiocb(1000);
        k.take_completion()
            .unwrap()
            .complete(1000, Err(Error::Os(Errno::EIO)));
        assert_eq!(count.load(Ordering::SeqCst), 1);
        assert_eq!(
            seen.lock().unwrap()[0],
            Completed {
                result: Err(Error::Os(Errno::EIO)),
                pos: 1000,
                buf: (),
            }
        );
    }

    #[test]
    fn dropping_kiocb_before_submit_cancels_once_at_current_pos() {
        let (mut k, count, seen) = counting_kiocb(10);
        k.pos = 20;
        drop(k);
        assert_eq!(count.load(Ordering::SeqCst), 1);
        assert_eq!(
            seen.lock().unwrap()[0],
            Completed {
                result: Err(Error::Os(Errno::ECANCELED)),
                pos: 20,
                buf: (),
            }
        );
    }

    #[test]
    fn dropping_taken_completion_cancels_once() {
        let (mut k, count, seen) = counting_kiocb(30);
        let c = k.take_completion().unwrap();
        drop(k);
        assert_eq!(count.load(Ordering::SeqCst), 0);
        // Drop on another thread.
        thread::spawn(move || drop(c)).join().unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 1);
        let done = seen.lock().unwrap()[0];
        assert_eq!(done.result.unwrap_err().errno(), Errno::ECANCELED);
        assert_eq!(done.pos, 30);
    }

    #[test]
    fn caller_side_complete_delivers_submit_error_once() {
        let (mut k, count, seen) = counting_kiocb(5);
        assert!(k.complete(Err(Error::InvalidArgument("misaligned"))));
        assert!(!k.complete(Ok(1)));
        assert!(!k.is_sync());
        drop(k);
        assert_eq!(count.load(Ordering::SeqCst), 1);
        assert_eq!(seen.lock().unwrap()[0].pos, 5);

        let (mut k, count, seen) = counting_kiocb(5);
        assert!(k.complete(Ok(7)));
        assert_eq!(k.pos, 12);
        drop(k);
        assert_eq!(count.load(Ordering::SeqCst), 1);
        assert_eq!(
            seen.lock().unwrap()[0],
            Completed {
                result: Ok(7),
                pos: 12,
                buf: (),
            }
        );
    }

    #[test]
    fn completion_pos_saturates() {
        let (mut k, _count, seen) = counting_kiocb(u64::MAX - 3);
        k.take_completion()
            .unwrap()
            .complete(u64::MAX - 3, Ok(usize::MAX));
        assert_eq!(seen.lock().unwrap()[0].pos, u64::MAX);
    }

    // ---------------------------------------------------------------- future

    #[test]
    fn future_resolves_when_completed_from_another_thread() {
        for round in 0..ROUNDS {
            let start = 4096 * round as u64;
            let (mut k, fut) = Kiocb::new_async(start);
            let c = k.take_completion().unwrap();
            let t = thread::spawn(move || {
                thread::yield_now();
                c.complete(start, Ok(100));
            });
            let done = block_on(fut);
            assert_eq!(
                done,
                Completed {
                    result: Ok(100),
                    pos: start + 100,
                    buf: (),
                }
            );
            t.join().unwrap();
        }
    }

    #[test]
    fn many_futures_many_threads() {
        let pairs: Vec<_> = (0..THREADS)
            .map(|i| {
                let (mut k, fut) = Kiocb::new_async(i as u64 * 10);
                let c = k.take_completion().unwrap();
                let pos = k.pos;
                let t = thread::spawn(move || {
                    if i % 2 == 0 {
                        c.complete(pos, Ok(i));
                    } else {
                        c.complete(pos, Err(Error::Os(Errno::EIO)));
                    }
                });
                (fut, t, i)
            })
            .collect();
        for (fut, t, i) in pairs {
            let done = block_on(fut);
            if i % 2 == 0 {
                assert_eq!(done.result, Ok(i));
                assert_eq!(done.pos, i as u64 * 11);
            } else {
                assert_eq!(done.result, Err(Error::Os(Errno::EIO)));
                assert_eq!(done.pos, i as u64 * 10);
            }
            t.join().unwrap();
        }
    }

    #[test]
    fn future_is_woken_through_the_latest_waker() {
        let (mut k, mut fut) = Kiocb::new_async(0);
        let (w1, c1) = counting_waker();
        let (w2, c2) = counting_waker();
        assert!(poll_once(&mut fut, &w1).is_pending());
        assert!(poll_once(&mut fut, &w1).is_pending()); // same waker, kept
        assert!(poll_once(&mut fut, &w2).is_pending()); // replaced
        assert!(!fut.is_complete());
        assert_eq!(fut.try_get(), None);
        let c = k.take_completion().unwrap();
        thread::spawn(move || c.complete(0, Ok(9))).join().unwrap();
        assert_eq!(c1.wakes.load(Ordering::SeqCst), 0);
        assert_eq!(c2.wakes.load(Ordering::SeqCst), 1);
        let want = Completed {
            result: Ok(9),
            pos: 9,
            buf: (),
        };
        assert_eq!(fut.try_get(), Some(want));
        assert_eq!(poll_once(&mut fut, &w2), Poll::Ready(want));
        // The outcome (and its buffer) was handed out: nothing is left to
        // copy, and polling again after Ready panics.
        assert!(fut.is_complete());
        assert_eq!(fut.try_get(), None);
        assert!(fut.try_take().is_none());
        let again =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| poll_once(&mut fut, &w1)));
        assert!(again.is_err(), "polling after Ready must panic");
        assert_eq!(c1.wakes.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn future_cancelled_when_kiocb_or_completion_dropped() {
        let (k, fut) = Kiocb::new_async(77);
        thread::spawn(move || drop(k)).join().unwrap();
        let done = block_on(fut);
        assert_eq!(done.result, Err(Error::Os(Errno::ECANCELED)));
        assert_eq!(done.pos, 77);

        let (mut k, fut) = Kiocb::new_async(88);
        let c = k.take_completion().unwrap();
        let t = thread::spawn(move || drop(c));
        assert_eq!(block_on(fut).result.unwrap_err().errno(), Errno::ECANCELED);
        t.join().unwrap();
    }

    #[test]
    fn dropping_future_before_completion_is_fine() {
        let (mut k, mut fut) = Kiocb::new_async(0);
        let (w, counter) = counting_waker();
        assert!(poll_once(&mut fut, &w).is_pending());
        drop(fut);
        let c = k.take_completion().unwrap();
        thread::spawn(move || c.complete(0, Ok(1))).join().unwrap();
        // The registered waker may be woken; nothing else happens.
        assert!(counter.wakes.load(Ordering::SeqCst) <= 1);

        // And with no poll at all.
        let (mut k, fut) = Kiocb::new_async(0);
        drop(fut);
        k.take_completion().unwrap().complete(0, Ok(1));
        drop(k);
    }

    /// A kiocb carrying a buffer hands it back exactly once, whichever way
    /// it completes: by the I/O, by the caller, or cancelled by a drop (of
    /// the kiocb, or of its taken completion). A sync kiocb keeps its own.
    #[test]
    fn the_buffer_comes_back_with_every_outcome() {
        let (mut k, mut fut) = Kiocb::new_async_with(8, vec![1u8, 2, 3]);
        assert_eq!(k.buf().map(Vec::len), Some(3));
        k.buf_mut().unwrap().push(4);
        assert!(
            k.take_buf().is_none(),
            "an async buffer comes back through the completion"
        );
        let c = k.take_completion().unwrap();
        assert!(k.buf().is_none(), "the buffer travels with the completion");
        assert_eq!(c.buf(), &vec![1, 2, 3, 4]);
        thread::spawn(move || c.complete(8, Ok(2))).join().unwrap();
        let done = fut.try_take().unwrap();
        assert_eq!(
            (done.result, done.pos, done.buf),
            (Ok(2), 10, vec![1, 2, 3, 4])
        );
        assert!(fut.is_complete());
        assert!(fut.try_take().is_none(), "taken once");

        let (tx, rx) = std::sync::mpsc::channel();
        let sender = |pos: u64, buf: &str| {
            let tx = tx.clone();
            Kiocb::with_callback(pos, String::from(buf), move |d| tx.send(d).unwrap())
        };
        let mut k = sender(5, "a");
        assert!(k.complete(Err(Error::Os(Errno::EIO))));
        drop(k);
        drop(sender(6, "b"));
        let mut k = sender(7, "c");
        let c = k.take_completion().unwrap();
        drop(k);
        thread::spawn(move || drop(c)).join().unwrap();
        drop(tx);
        let got: Vec<Completed<String>> = rx.iter().collect();
        let cancelled = Err(Error::Os(Errno::ECANCELED));
        assert_eq!(
            got,
            [
                Completed::with_buf(5, Err(Error::Os(Errno::EIO)), "a".to_owned()),
                Completed::with_buf(6, cancelled, "b".to_owned()),
                Completed::with_buf(7, cancelled, "c".to_owned()),
            ]
        );

        let mut s = Kiocb::new_sync_with(0, vec![9u8; 4]);
        assert!(s.is_sync() && !s.has_completion());
        assert_eq!(s.buf().map(Vec::len), Some(4));
        assert_eq!(s.take_buf(), Some(vec![9u8; 4]));
        assert_eq!(s.take_buf(), None);
    }

    #[cfg(feature = "std")]
    #[test]
    fn blocking_wait_and_caller_side_complete_with_future() {
        let (mut k, fut) = Kiocb::new_async(3);
        assert!(k.complete(Err(Error::WouldBlock)));
        let done = fut.wait();
        assert_eq!(done.result.unwrap_err().errno(), Errno::EAGAIN);
        assert_eq!(done.pos, 3);
    }

    #[test]
    fn send_bounds() {
        fn is_send<T: Send>() {}
        fn is_sync<T: Sync>() {}
        is_send::<Kiocb>();
        is_send::<iov_iter::kiocb::Completion>();
        is_send::<CompletionFuture>();
        is_sync::<CompletionFuture>();
    }
}
