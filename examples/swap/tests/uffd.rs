//! The userfaultfd pager (`iov_iter_swap::uffd`): real memory of this test
//! process paged through a swap device, on a RAM device (deterministic,
//! faults injectable) and on a real swap file through io_uring. Plus the
//! kernel behaviour the pager is built on (fault kinds, EEXIST / EAGAIN,
//! USER_MODE_ONLY, poison), checked on the raw `Uffd`. Last, the bad input
//! of the userfaultfd table in `iov_iter::bad_input`: bad ranges, bad
//! registrations, missing features, pager configurations and reclaims out
//! of range, a failed swap-out.
//!
//! Every test skips loudly where userfaultfd is unavailable.

// userfaultfd, mmap, memfd, fork: every test here makes syscalls, so none
// runs under Miri.
#![cfg(not(miri))]

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use iov_iter::PAGE_SIZE;
use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice};
use iov_iter_swap::activate::{create_swap_file, open_swap_file};
use iov_iter_swap::content::{check_page, fill_page};
use iov_iter_swap::header::{Label, Uuid};
use iov_iter_swap::swapio::{IoMode, SwapDevice, SwapError};
use iov_iter_swap::swapmap::SlotRng;
use iov_iter_swap::testutil::TestDir;
use iov_iter_swap::uffd::{
    AnonRegion, Error, Event, Features, FillFlags, MemfdRegion, Options, PageState, Pager,
    PagerConfig, PagerError, PagerStats, Range, RegionKind, RegisterMode, Uffd,
};
use rustix::io::Errno;

const SEED: u64 = 0x0ffd;
/// One page in this many is all zeros.
const ZERO_EVERY: usize = 16;

fn init(i: usize, bytes: &mut [u8; PAGE_SIZE]) {
    if i % ZERO_EVERY == 0 {
        bytes.fill(0);
    } else {
        fill_page(bytes, i as u64, SEED);
    }
}

fn verify(i: usize, bytes: &[u8; PAGE_SIZE]) -> Result<(), String> {
    if i % ZERO_EVERY == 0 {
        match bytes.iter().position(|&b| b != 0) {
            None => Ok(()),
            Some(at) => Err(format!("zero page {i}: byte {at} set")),
        }
    } else {
        check_page(bytes, i as u64, SEED).map_err(|m| format!("page {i}: {m}"))
    }
}

/// A userfaultfd, or `None` after a loud message where it is unavailable.
fn uffd_or_skip(what: &str) -> Option<Uffd> {
    match Uffd::open() {
        Ok(u) => Some(u),
        Err(e) => {
            eprintln!("\n***** SKIPPED {what}: userfaultfd unavailable: {e} *****\n");
            None
        }
    }
}

fn pager_or_skip(cfg: PagerConfig, dev: SwapDevice, what: &str) -> Option<Pager> {
    match Pager::new(cfg, dev, init) {
        Ok(p) => Some(p),
        Err(e) if e.is_unavailable() => {
            eprintln!("\n***** SKIPPED {what}: {e} *****\n");
            None
        }
        Err(e) => panic!("{what}: {e}"),
    }
}

/// A RAM device of `slots` slots whose async kiocbs stay in flight until
/// driven (the io_uring mode's behaviour, deterministic).
fn ram_device(slots: u64) -> (Arc<MemDevice>, SwapDevice) {
    iov_iter_swap::testutil::ram_swap_device(slots, true)
}

/// What a run of workers and a reclaimer over a pager saw.
#[derive(Debug)]
struct Run {
    stats: PagerStats,
    touched: usize,
    mismatches: Vec<String>,
    swapped_out: usize,
}

/// The fault thread serving `pager`, `workers` threads each touching
/// `touches` pages (half at random, half in runs of up to 16) and
/// verifying every byte, a reclaim thread swapping runs of resident pages
/// out meanwhile; then a final pass over the whole region.
fn drive(pager: &Pager, workers: usize, touches: usize) -> Run {
    let stop = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let touched = AtomicUsize::new(0);
    let n = pager.pages();
    let (mismatches, swapped_out) = std::thread::scope(|s| {
        let server = s.spawn(|| pager.serve(&stop));
        // Most of the region out before the workers start.
        let all: Vec<usize> = (0..n).collect();
        let first = pager.reclaim(&all[..n * 3 / 4]).swapped;
        let done = &done;
        let reclaimer = s.spawn(move || {
            let mut rng = SlotRng::new(SEED);
            let mut out = first;
            while !done.load(Ordering::Acquire) {
                let start = rng.below(n as u32) as usize;
                let len = 1 + rng.below(32) as usize;
                let run: Vec<usize> = (start..(start + len).min(n))
                    .filter(|&i| pager.page_state(i) == PageState::Resident)
                    .collect();
                out += pager.reclaim(&run).swapped;
                std::thread::sleep(Duration::from_micros(200));
            }
            out
        });
        let hs: Vec<_> = (0..workers)
            .map(|w| {
                let touched = &touched;
                s.spawn(move || {
                    let mut rng = SlotRng::new(SEED + 1 + w as u64);
                    let mut buf = Box::new([0u8; PAGE_SIZE]);
                    let mut bad = Vec::new();
                    let mut left = touches;
                    while left > 0 {
                        let start = rng.below(n as u32) as usize;
                        let len = if rng.below(2) == 0 {
                            1
                        } else {
                            1 + rng.below(16) as usize
                        };
                        for i in start..(start + len).min(n) {
                            pager.read_page(i, &mut buf);
                            if let Err(e) = verify(i, &buf) {
                                bad.push(e);
                            }
                            touched.fetch_add(1, Ordering::Relaxed);
                            left = left.saturating_sub(1);
                        }
                    }
                    bad
                })
            })
            .collect();
        let mut bad: Vec<String> = hs.into_iter().flat_map(|h| h.join().unwrap()).collect();
        done.store(true, Ordering::Release);
        let swapped_out = reclaimer.join().unwrap();
        // Every byte, at the end.
        let mut buf = Box::new([0u8; PAGE_SIZE]);
        for i in 0..n {
            pager.read_page(i, &mut buf);
            if let Err(e) = verify(i, &buf) {
                bad.push(e);
            }
        }
        stop.store(true, Ordering::Release);
        server.join().unwrap().unwrap();
        (bad, swapped_out)
    });
    Run {
        stats: pager.stats(),
        touched: touched.into_inner(),
        mismatches,
        swapped_out,
    }
}

fn assert_clean(run: &Run, pager: &Pager) {
    assert!(run.mismatches.is_empty(), "{:?}", &run.mismatches[..]);
    assert!(run.touched > 0);
    let s = &run.stats;
    assert!(s.served > 0 && s.missing > 0, "{s:?}");
    assert!(run.swapped_out > 0 && s.reclaimed > 0, "{s:?}");
    assert_eq!(s.poisoned, 0, "{s:?}");
    assert_eq!(s.swapped_in, s.reclaimed, "every page out came back: {s:?}");
    assert_eq!(pager.resident_pages(), pager.pages(), "all back in");
    assert_eq!(pager.device().used_slots(), 0, "every slot freed");
    let c = pager.device().counters();
    assert!(c.pswpin > 0 && c.pswpout > 0, "{c:?}");
    assert!(c.zero_pages_out > 0, "zero pages skipped: {c:?}");
    assert!(c.merged_write_pages > 0, "runs merged: {c:?}");
}

/// Anonymous memory on a RAM device: MISSING faults, swap-in through the
/// swap cache, UFFDIO_COPY; every byte verified by 3 workers and a final
/// pass while a reclaimer keeps swapping pages out under them.
#[test]
fn anon_pager_on_ram_device_serves_every_byte() {
    let (_mem, dev) = ram_device(2048);
    let Some(pager) = pager_or_skip(PagerConfig::new(RegionKind::Anon, 1024), dev, "anon pager")
    else {
        return;
    };
    let run = drive(&pager, 3, 3000);
    eprintln!("anon/ram: {run:?}");
    assert_clean(&run, &pager);
    let s = run.stats;
    assert!(s.copies > 0 && s.continues == 0, "{s:?}");
    assert_eq!(s.minor, 0, "anonymous memory has no MINOR faults");
    assert!(s.fault_around > 0, "{s:?}");
    let c = pager.device().counters();
    assert!(c.merged_read_pages > 0, "fault-around reads merged: {c:?}");
    assert!(
        pager.device().max_in_flight() > 1,
        "swap-ins in flight together: {}",
        pager.device().max_in_flight()
    );
}

/// memfd on a RAM device: the zero-copy path. The device writes straight
/// into the page-cache page through the alias mapping and UFFDIO_CONTINUE
/// maps it: no UFFDIO_COPY ever, and the data arrives (CONTINUE maps what
/// the page cache holds, which nothing but the device's read filled).
#[test]
fn memfd_pager_is_zero_copy() {
    let (mem, dev) = ram_device(2048);
    let Some(pager) = pager_or_skip(
        PagerConfig::new(RegionKind::Memfd, 1024),
        dev,
        "memfd pager",
    ) else {
        return;
    };
    let run = drive(&pager, 3, 3000);
    eprintln!("memfd/ram: {run:?}");
    assert_clean(&run, &pager);
    let s = run.stats;
    assert_eq!(s.copies, 0, "no UFFDIO_COPY on the memfd path: {s:?}");
    assert!(s.continues > 0 && s.into_read > 0, "{s:?}");
    assert!(s.into_zero > 0, "zero slots zero-filled, no I/O: {s:?}");
    assert!(mem.stats().reads > 0);
}

/// The same on a real swap file through io_uring (O_DIRECT reads into the
/// memfd's page cache): 6 workers, many swap-ins and kiocbs in flight.
#[test]
fn pager_on_a_real_file_through_io_uring() {
    if !IoMode::URING_AVAILABLE {
        eprintln!("\n***** SKIPPED pager on io_uring: built without `uring` *****\n");
        return;
    }
    for kind in [RegionKind::Anon, RegionKind::Memfd] {
        let dir = TestDir::new(&format!("uffd-{kind}"));
        let path = dir.join("swapfile");
        create_swap_file(&path, 2048 * 4096, &Label::EMPTY, Uuid::NIL).unwrap();
        let sf = open_swap_file(&path).unwrap();
        let dev = match SwapDevice::open(&sf, IoMode::Uring, 64) {
            Ok(d) => d,
            Err(e @ (SwapError::Open(_) | SwapError::Backend(_))) => {
                eprintln!("\n***** SKIPPED pager on io_uring: {e} *****\n");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let Some(pager) = pager_or_skip(PagerConfig::new(kind, 1024), dev, "pager on io_uring")
        else {
            return;
        };
        let run = drive(&pager, 6, 2000);
        eprintln!(
            "{kind}/uring: {run:?}, max in flight {}",
            pager.device().max_in_flight()
        );
        assert_clean(&run, &pager);
        assert!(run.stats.max_swapins_in_flight > 1, "{:?}", run.stats);
        assert!(
            pager.device().max_in_flight() > 1,
            "kiocbs in flight together on io_uring"
        );
        if kind == RegionKind::Memfd {
            assert_eq!(run.stats.copies, 0);
            assert!(run.stats.into_read > 0);
        }
    }
}

/// A read that fails once is retried, and the right bytes are mapped; the
/// failed read mapped nothing.
#[test]
fn a_failed_read_is_retried_never_mapped() {
    for kind in [RegionKind::Anon, RegionKind::Memfd] {
        let (mem, dev) = ram_device(256);
        let mut cfg = PagerConfig::new(kind, 64);
        cfg.fault_around = 0;
        let Some(pager) = pager_or_skip(cfg, dev, "read retry") else {
            return;
        };
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let server = s.spawn(|| pager.serve(&stop));
            let all: Vec<usize> = (0..64).collect();
            assert_eq!(pager.reclaim(&all).swapped, 64);
            assert_eq!(pager.page_state(5), PageState::Swapped);
            // The next two reads fail: EIO, then a short read.
            mem.inject(FaultPlan::next(1, Fault::EIO).reads_only());
            mem.inject(FaultPlan::next(1, Fault::Short(512)).reads_only());
            let mut buf = Box::new([0u8; PAGE_SIZE]);
            pager.read_page(5, &mut buf);
            assert_eq!(verify(5, &buf), Ok(()), "{kind}");
            for i in 0..64 {
                pager.read_page(i, &mut buf);
                assert_eq!(verify(i, &buf), Ok(()), "{kind}");
            }
            stop.store(true, Ordering::Release);
            server.join().unwrap().unwrap();
        });
        let s = pager.stats();
        eprintln!("{kind} retry: {s:?}");
        assert_eq!(s.read_retries, 2, "{kind}: {s:?}");
        assert_eq!(s.poisoned, 0);
        assert_eq!(pager.device().counters().read_errors, 2);
    }
}

const POISON_ENV: &str = "IOV_ITER_SWAP_UFFD_POISON_CHILD";

/// A page whose every read fails is poisoned: the thread touching it gets
/// SIGBUS (in a child process: this test binary run again).
#[test]
fn a_page_that_cannot_be_read_is_poisoned_sigbus() {
    let Some(u) = uffd_or_skip("poison") else {
        return;
    };
    if !u
        .available_features()
        .contains(iov_iter_swap::uffd::Features::POISON)
    {
        eprintln!("\n***** SKIPPED poison: no UFFD_FEATURE_POISON (Linux 6.6+) *****\n");
        return;
    }
    for kind in ["anon", "memfd"] {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "poison_child", "--nocapture", "--test-threads=1"])
            .env(POISON_ENV, kind)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!("{kind} child: {:?}\n{stderr}", out.status);
        assert_eq!(
            out.status.signal(),
            Some(rustix::process::Signal::BUS.as_raw()),
            "{kind}: the child must die of SIGBUS"
        );
        assert!(
            stderr.contains("child: every read fails, touching page 7"),
            "{kind}"
        );
    }
}

/// Runs only as the child of the test above.
#[test]
fn poison_child() {
    let Some(kind) = std::env::var_os(POISON_ENV) else {
        return;
    };
    let kind = if kind == "memfd" {
        RegionKind::Memfd
    } else {
        RegionKind::Anon
    };
    let (mem, dev) = ram_device(64);
    let mut cfg = PagerConfig::new(kind, 16);
    cfg.fault_around = 0;
    let pager = Pager::new(cfg, dev, init).unwrap();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| pager.serve(&stop));
        assert_eq!(pager.reclaim(&[7]).swapped, 1);
        mem.inject(FaultPlan::in_range(0..u64::MAX, Fault::EIO).reads_only());
        // The pager tries 3 reads, then poisons: this access dies.
        eprintln!("child: every read fails, touching page 7");
        let mut buf = Box::new([0u8; PAGE_SIZE]);
        pager.read_page(7, &mut buf);
        eprintln!("child: read page 7 without SIGBUS: {:?}", pager.stats());
        std::process::exit(3);
    });
    std::process::exit(4);
}

/// Many threads faulting on the same pages at once: one swap-in per page,
/// the other faults join it (duplicates are normal), every thread gets the
/// right bytes.
#[test]
fn concurrent_faults_on_one_page_share_its_swap_in() {
    let (_mem, dev) = ram_device(128);
    let mut cfg = PagerConfig::new(RegionKind::Anon, 32);
    cfg.fault_around = 0;
    let Some(pager) = pager_or_skip(cfg, dev, "shared faults") else {
        return;
    };
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let server = s.spawn(|| pager.serve(&stop));
        for round in 0..8 {
            let all: Vec<usize> = (0..32).collect();
            assert_eq!(pager.reclaim(&all).swapped, 32, "round {round}");
            let barrier = Barrier::new(8);
            std::thread::scope(|s2| {
                for _ in 0..8 {
                    s2.spawn(|| {
                        let mut buf = Box::new([0u8; PAGE_SIZE]);
                        barrier.wait();
                        for i in 0..32 {
                            pager.read_page(i, &mut buf);
                            assert_eq!(verify(i, &buf), Ok(()));
                        }
                    });
                }
            });
        }
        stop.store(true, Ordering::Release);
        server.join().unwrap().unwrap();
    });
    let s = pager.stats();
    eprintln!("shared faults: {s:?}");
    assert_eq!(
        pager.device().counters().pswpin,
        8 * 32 * 15 / 16,
        "one read per page"
    );
    assert!(s.faults > s.copies, "duplicate faults: {s:?}");
    assert!(s.joined + s.wakes + s.eexist > 0, "{s:?}");
    assert_eq!(s.served, s.faults, "every fault served: {s:?}");
}

/// A pager whose serve loop is gone answers reclaim at once (nothing
/// waits for ever), and a region too large for the device is refused.
#[test]
fn reclaim_without_a_server_and_bad_configs() {
    let (_mem, dev) = ram_device(8);
    match Pager::new(PagerConfig::new(RegionKind::Anon, 64), dev, init) {
        Err(PagerError::Unsupported(why)) => assert!(why.contains("swap slots"), "{why}"),
        Err(e) if e.is_unavailable() => {
            eprintln!("\n***** SKIPPED: {e} *****\n");
            return;
        }
        other => panic!("{other:?}"),
    }
    let (_mem, dev) = ram_device(64);
    let Some(pager) = pager_or_skip(PagerConfig::new(RegionKind::Anon, 8), dev, "no server") else {
        return;
    };
    let stop = AtomicBool::new(true);
    pager.serve(&stop).unwrap();
    let o = pager.reclaim(&[0, 1]);
    assert_eq!((o.swapped, o.skipped), (0, 2));
    assert_eq!(pager.page_state(0), PageState::Resident);
}

// ---------------------------------------------------------------------------
// The kernel behaviour the pager relies on, on the raw fd.

/// On a memfd registered MISSING | MINOR: a punched page faults MISSING,
/// a page whose user PTE alone was zapped faults MINOR; CONTINUE on a hole
/// is EFAULT; after the page cache was filled through the alias, CONTINUE
/// resolves a MISSING fault (the zero-copy sequence).
#[test]
fn memfd_fault_kinds_and_continue_on_missing() {
    let Some(uffd) = uffd_or_skip("memfd fault kinds") else {
        return;
    };
    let ps = PAGE_SIZE;
    let r = MemfdRegion::new("kinds", 4 * ps).unwrap();
    r.register(&uffd, RegisterMode::MISSING | RegisterMode::MINOR)
        .unwrap();
    let user = r.user_ptr() as usize;
    assert_eq!(
        uffd.continue_(r.user_pages(3, 1).unwrap(), FillFlags::empty()),
        Err(Error::Os {
            op: "UFFDIO_CONTINUE",
            errno: Errno::FAULT
        })
    );
    let kinds = std::thread::scope(|s| {
        let touch = |i: usize| {
            s.spawn(move || {
                // SAFETY: inside the live user mapping; a plain read that
                // faults into the handler below.
                unsafe { core::ptr::read_volatile((user + i * ps + 8) as *const u8) }
            })
        };
        let mut kinds = Vec::new();
        let serve_one = |fill_alias: bool| -> String {
            loop {
                if !uffd.wait(Some(Duration::from_secs(5))).unwrap() {
                    panic!("no fault event");
                }
                for ev in uffd.read_events().unwrap() {
                    let Event::Pagefault(pf) = ev else { continue };
                    let i = (pf.address - user) / ps;
                    if fill_alias {
                        // SAFETY: the alias is unregistered; byte 8 of page i.
                        unsafe { core::ptr::write_volatile(r.alias_ptr().add(i * ps + 8), 0x42) };
                    }
                    let res = uffd.continue_(pf.page(), FillFlags::empty());
                    assert!(matches!(res, Ok(_) | Err(Error::Exists)), "{res:?}");
                    return if pf.is_minor() { "MINOR" } else { "MISSING" }.to_owned();
                }
            }
        };
        // Written through the alias, never mapped in user: MINOR.
        // SAFETY: the alias is unregistered.
        unsafe { core::ptr::write_volatile(r.alias_ptr().add(8), 0x11) };
        let h = touch(0);
        kinds.push(serve_one(false));
        assert_eq!(h.join().unwrap(), 0x11);
        // User PTE zapped, page cache kept: MINOR.
        r.zap_user(r.user_pages(0, 1).unwrap()).unwrap();
        let h = touch(0);
        kinds.push(serve_one(false));
        assert_eq!(h.join().unwrap(), 0x11);
        // Punched: MISSING; filled through the alias, CONTINUE maps it.
        r.punch_hole(0, ps).unwrap();
        let h = touch(0);
        kinds.push(serve_one(true));
        assert_eq!(h.join().unwrap(), 0x42);
        kinds
    });
    assert_eq!(kinds, ["MINOR", "MINOR", "MISSING"]);
}

/// A multi-page COPY meeting a mapped page stops there: EAGAIN with the
/// bytes done; a COPY onto a mapped page is EEXIST, nothing done.
#[test]
fn partial_copy_is_eagain_and_mapped_is_eexist() {
    let Some(uffd) = uffd_or_skip("partial copy") else {
        return;
    };
    let ps = PAGE_SIZE;
    let region = AnonRegion::new(4 * ps).unwrap();
    region.register(&uffd, RegisterMode::MISSING).unwrap();
    let base = region.as_ptr() as usize;
    let src = vec![7u8; 4 * ps];
    assert_eq!(
        uffd.copy(base + 2 * ps, &src[..ps], FillFlags::empty()),
        Ok(ps)
    );
    assert_eq!(
        uffd.copy(base, &src, FillFlags::empty()),
        Err(Error::Again { done: 2 * ps })
    );
    assert_eq!(
        uffd.copy(base + 2 * ps, &src[..ps], FillFlags::empty()),
        Err(Error::Exists)
    );
    assert!(matches!(
        uffd.copy(base + 1, &src[..ps], FillFlags::empty()),
        Err(Error::BadRange { .. })
    ));
}

/// Two servers racing on one fault with DONTWAKE: exactly one COPY wins,
/// the other gets EEXIST having woken nobody, and its wake is what
/// unblocks the faulting thread.
#[test]
fn racing_servers_one_wins_the_loser_wakes() {
    let Some(uffd) = uffd_or_skip("racing servers") else {
        return;
    };
    const PAGES: usize = 16;
    let ps = PAGE_SIZE;
    let region = AnonRegion::new(PAGES * ps).unwrap();
    region.register(&uffd, RegisterMode::MISSING).unwrap();
    let base = region.as_ptr() as usize;
    let src = vec![0x5au8; ps];
    let done = AtomicBool::new(false);
    let mut outcomes = Vec::new();
    std::thread::scope(|s| {
        let worker = s.spawn(|| {
            let sum: u64 = (0..PAGES)
                // SAFETY: inside the live region; plain reads that fault.
                .map(|i| {
                    u64::from(unsafe { core::ptr::read_volatile((base + i * ps) as *const u8) })
                })
                .sum();
            done.store(true, Ordering::Release);
            sum
        });
        while !done.load(Ordering::Acquire) {
            if !uffd.wait(Some(Duration::from_millis(20))).unwrap() {
                continue;
            }
            for ev in uffd.read_events().unwrap() {
                let Event::Pagefault(pf) = ev else { continue };
                let barrier = Barrier::new(2);
                let rs: Vec<_> = std::thread::scope(|s2| {
                    let hs: Vec<_> = (0..2)
                        .map(|_| {
                            s2.spawn(|| {
                                barrier.wait();
                                let r = uffd.copy(pf.page().start(), &src, FillFlags::DONTWAKE);
                                if r == Err(Error::Exists) {
                                    uffd.wake(pf.page()).unwrap();
                                }
                                r
                            })
                        })
                        .collect();
                    hs.into_iter().map(|h| h.join().unwrap()).collect()
                });
                outcomes.push(rs);
            }
        }
        assert_eq!(worker.join().unwrap(), 0x5a * PAGES as u64);
    });
    assert_eq!(outcomes.len(), PAGES);
    for rs in outcomes {
        assert!(
            rs.contains(&Ok(ps)) && rs.contains(&Err(Error::Exists)),
            "{rs:?}"
        );
    }
}

/// With USER_MODE_ONLY a kernel-mode access to a missing registered page
/// (`pread` into it) fails EFAULT and raises no event: why the pager's I/O
/// never targets the registered mapping.
#[test]
fn user_mode_only_kernel_access_is_efault() {
    let Some(uffd) = uffd_or_skip("USER_MODE_ONLY") else {
        return;
    };
    assert!(uffd.user_mode_only());
    let region = AnonRegion::new(PAGE_SIZE).unwrap();
    region.register(&uffd, RegisterMode::MISSING).unwrap();
    let file = std::fs::File::open("/proc/self/exe").unwrap();
    // SAFETY: 16 bytes of a live region that nothing else accesses.
    let buf = unsafe {
        core::slice::from_raw_parts_mut(region.as_ptr().cast::<core::mem::MaybeUninit<u8>>(), 16)
    };
    let r = rustix::io::pread(&file, buf, 0).map(|(init, _)| init.len());
    assert_eq!(r, Err(Errno::FAULT));
    assert!(!uffd.wait(Some(Duration::ZERO)).unwrap(), "no event");
    // The plain (privileged) fd is refused without privilege; either way
    // the options say what they got.
    match Uffd::open_with(Options {
        user_mode_only: false,
        ..Options::default()
    }) {
        Ok(u) => assert!(!u.user_mode_only()),
        Err(e) => eprintln!("plain userfaultfd refused here: {e}"),
    }
}

// ---------------------------------------------------------------------------
// Bad input: the rows of the userfaultfd table in `iov_iter::bad_input`.

/// Ranges that are not page aligned, empty or wrap the address space are
/// `BadRange` (`EINVAL`, what `UFFDIO_REGISTER` answers for them), before
/// any syscall; so are regions of such a length.
#[test]
#[cfg_attr(miri, ignore)]
fn unaligned_empty_or_wrapping_ranges_are_einval() {
    let ps = PAGE_SIZE;
    for (start, len) in [
        (ps + 1, ps),
        (ps, ps - 1),
        (ps, 0),
        (0, 0),
        (usize::MAX - ps + 1, ps),
        (ps, usize::MAX - ps + 1),
    ] {
        let e = Range::new(start, len).unwrap_err();
        assert_eq!(e, Error::BadRange { start, len });
        assert_eq!(e.errno(), Errno::INVAL);
    }
    assert_eq!(Range::new(ps, ps).map(|r| r.end()), Ok(2 * ps));
    for len in [0, 1, ps + 1] {
        assert_eq!(
            AnonRegion::new(len).unwrap_err(),
            Error::BadRange { start: 0, len }
        );
        assert_eq!(
            MemfdRegion::new("bad-len", len).unwrap_err(),
            Error::BadRange { start: 0, len }
        );
    }
    // A fill whose destination or length is not page aligned, or empty.
    let Some(uffd) = uffd_or_skip("unaligned fills") else {
        return;
    };
    let region = AnonRegion::new(2 * ps).unwrap();
    region.register(&uffd, RegisterMode::MISSING).unwrap();
    let base = region.as_ptr() as usize;
    let src = vec![1u8; 2 * ps];
    for (dst, len) in [(base + 8, ps), (base, ps + 8), (base, 0)] {
        let e = uffd.copy(dst, &src[..len], FillFlags::empty()).unwrap_err();
        assert_eq!(e, Error::BadRange { start: dst, len });
    }
    // Nothing was mapped: a full copy still finds both pages missing.
    assert_eq!(uffd.copy(base, &src, FillFlags::empty()), Ok(2 * ps));
}

/// Sub-ranges of a region that leave it (or overflow computing it) are
/// `BadRange` before any syscall: nothing outside the region is dropped,
/// punched or zapped, and nothing inside either.
#[test]
#[cfg_attr(miri, ignore)]
fn a_range_outside_the_region_is_einval_and_touches_nothing() {
    let ps = PAGE_SIZE;
    let anon = AnonRegion::new(4 * ps).unwrap();
    // SAFETY: page 3 of a live, unregistered region of ours.
    unsafe { anon.as_ptr().add(3 * ps).write_volatile(0x33) };
    for (first, count) in [
        (3, 2),
        (4, 1),
        (0, 5),
        (0, 0),
        (usize::MAX, 1),
        (1, usize::MAX),
    ] {
        assert!(
            matches!(anon.pages(first, count), Err(Error::BadRange { .. })),
            "pages({first}, {count})"
        );
    }
    assert_eq!(anon.pages(0, 4), Ok(anon.range()));
    let end = anon.range().end();
    for r in [
        Range::new(end, ps).unwrap(),
        Range::new(end - ps, 2 * ps).unwrap(),
        Range::new(anon.range().start() - ps, 2 * ps).unwrap(),
    ] {
        let e = anon.drop_pages(r).unwrap_err();
        assert_eq!(
            e,
            Error::BadRange {
                start: r.start(),
                len: r.len()
            }
        );
        assert_eq!(e.errno(), Errno::INVAL);
    }
    // SAFETY: as above.
    assert_eq!(unsafe { anon.as_ptr().add(3 * ps).read_volatile() }, 0x33);

    let memfd = MemfdRegion::new("outside", 4 * ps).unwrap();
    // SAFETY: the alias of a live, unregistered memfd of ours.
    unsafe { memfd.alias_ptr().add(3 * ps).write_volatile(0x44) };
    assert!(matches!(
        memfd.user_pages(3, 2),
        Err(Error::BadRange { .. })
    ));
    for (offset, len) in [
        (4 * ps, ps),
        (3 * ps, 2 * ps),
        (ps, 0),
        (1, ps),
        (usize::MAX - ps + 1, ps),
    ] {
        assert!(
            matches!(memfd.punch_hole(offset, len), Err(Error::BadRange { .. })),
            "punch_hole({offset}, {len})"
        );
    }
    let outside = Range::new(memfd.user_range().end(), ps).unwrap();
    assert!(matches!(
        memfd.zap_user(outside),
        Err(Error::BadRange { .. })
    ));
    // SAFETY: as above.
    assert_eq!(
        unsafe { memfd.alias_ptr().add(3 * ps).read_volatile() },
        0x44
    );
}

/// `UFFDIO_REGISTER` of a range no process can map (below
/// `vm.mmap_min_addr`, or past the user address space), or with no mode,
/// is the kernel's `EINVAL`, typed.
#[test]
#[cfg_attr(miri, ignore)]
fn registering_a_range_nobody_can_map_or_no_mode_is_the_kernels_einval() {
    let Some(uffd) = uffd_or_skip("bad registrations") else {
        return;
    };
    let ps = PAGE_SIZE;
    let high = Range::new(1usize << 63, ps).unwrap();
    // SAFETY: nothing is (or can be) mapped at a non-canonical address, so
    // no memory of anyone's is registered; the kernel refuses it.
    let e = unsafe { uffd.register(high, RegisterMode::MISSING) }.unwrap_err();
    assert_eq!(
        e,
        Error::Os {
            op: "UFFDIO_REGISTER",
            errno: Errno::INVAL
        }
    );
    assert_eq!(e.errno(), Errno::INVAL);
    let low = Range::new(ps, ps).unwrap();
    // SAFETY: page 1 is below every vm.mmap_min_addr Linux ships with
    // (4096 at the least), so it is never mapped: nobody's memory.
    let e = unsafe { uffd.register(low, RegisterMode::MISSING) }.unwrap_err();
    eprintln!("UFFDIO_REGISTER of page 1: {e}");
    assert!(
        matches!(e, Error::Os { errno, .. } if errno == Errno::INVAL || errno == Errno::NOMEM),
        "{e:?}"
    );
    let region = AnonRegion::new(ps).unwrap();
    for mode in [
        RegisterMode::empty(),
        RegisterMode::from_bits_retain(1 << 20),
    ] {
        let e = region.register(&uffd, mode).unwrap_err();
        assert_eq!(e.errno(), Errno::INVAL, "{mode:?}: {e:?}");
    }
    // Still unregistered: a plain write does not fault into anyone.
    // SAFETY: the live, unregistered region of ours.
    unsafe { region.as_ptr().write_volatile(1) };
}

/// Features the kernel does not offer are refused with the reason
/// (`Unsupported`, `EOPNOTSUPP`), which the pager reports as "unavailable
/// here" (tests and the demo then skip loudly, saying why); `UFFDIO_POISON`
/// without `UFFD_FEATURE_POISON` is refused the same way.
#[test]
#[cfg_attr(miri, ignore)]
fn unsupported_features_are_refused_saying_why() {
    let Some(uffd) = uffd_or_skip("unsupported features") else {
        return;
    };
    let unknown = Features::from_bits_retain(1 << 63);
    let e = Uffd::open_with(Options {
        required: unknown,
        ..Options::default()
    })
    .unwrap_err();
    assert!(
        matches!(e, Error::Unsupported(why) if !why.is_empty()),
        "{e:?}"
    );
    assert_eq!(e.errno(), Errno::OPNOTSUPP);
    assert!(PagerError::Uffd(e).is_unavailable());
    for (op, errno, unavailable) in [
        ("userfaultfd", Errno::NOSYS, true),
        ("userfaultfd", Errno::PERM, true),
        ("UFFDIO_API", Errno::INVAL, true),
        ("UFFDIO_COPY", Errno::FAULT, false),
    ] {
        let e = PagerError::Uffd(Error::Os { op, errno });
        assert_eq!(e.is_unavailable(), unavailable, "{e}");
        assert_eq!(e.errno(), errno.raw_os_error(), "{e}");
    }
    let bad_slot = PagerError::Swap(SwapError::BadSlot(iov_iter_swap::swapmap::Slot::new(1)));
    assert!(!bad_slot.is_unavailable());
    assert_eq!(bad_slot.errno(), libc::EINVAL);
    assert_eq!(
        PagerError::Unsupported("x".into()).errno(),
        libc::EOPNOTSUPP
    );
    let region = AnonRegion::new(PAGE_SIZE).unwrap();
    region.register(&uffd, RegisterMode::MISSING).unwrap();
    let r = uffd.poison(region.range(), FillFlags::empty());
    if uffd.available_features().contains(Features::POISON) {
        assert_eq!(r, Ok(PAGE_SIZE));
    } else {
        assert!(matches!(r, Err(Error::Unsupported(_))), "{r:?}");
    }
}

/// A pager configuration out of range: no pages, no read attempts, no
/// writeback, more pages than slots are refused before anything is mapped
/// (`PagerError::Unsupported`, saying which); a fault-around past the
/// region's end (`usize::MAX`) is cut at the end; reclaim requests naming
/// pages outside the region (`usize::MAX` included) or twice skip those
/// pages.
#[test]
#[cfg_attr(miri, ignore)]
fn pager_configs_and_reclaims_out_of_range() {
    for (pages, read_attempts, writeback_max, slots) in
        [(0, 3, 8, 64), (8, 0, 8, 64), (8, 3, 0, 64), (64, 3, 8, 8)]
    {
        let (_mem, dev) = ram_device(slots);
        let mut cfg = PagerConfig::new(RegionKind::Anon, pages);
        cfg.read_attempts = read_attempts;
        cfg.writeback_max = writeback_max;
        match Pager::new(cfg, dev, init) {
            Err(PagerError::Unsupported(why)) => eprintln!("refused: {why}"),
            Err(e) if e.is_unavailable() => {
                eprintln!("\n***** SKIPPED pager configs: {e} *****\n");
                return;
            }
            other => panic!("{cfg:?}: {other:?}"),
        }
    }
    let (_mem, dev) = ram_device(64);
    let mut cfg = PagerConfig::new(RegionKind::Anon, 16);
    cfg.fault_around = usize::MAX;
    cfg.fault_around_max = usize::MAX;
    let Some(pager) = pager_or_skip(cfg, dev, "pager configs") else {
        return;
    };
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let server = s.spawn(|| pager.serve(&stop));
        let o = pager.reclaim(&[usize::MAX, 0, 16, 17, 1, 1, usize::MAX - 1, 2]);
        assert_eq!((o.swapped, o.skipped, o.failed), (3, 5, 0), "{o:?}");
        let all: Vec<usize> = (3..16).collect();
        assert_eq!(pager.reclaim(&all).swapped, 13);
        // One fault brings the rest of the region in with it.
        let mut buf = Box::new([0u8; PAGE_SIZE]);
        pager.read_page(0, &mut buf);
        assert_eq!(verify(0, &buf), Ok(()));
        for i in 0..16 {
            pager.read_page(i, &mut buf);
            assert_eq!(verify(i, &buf), Ok(()), "page {i}");
        }
        stop.store(true, Ordering::Release);
        server.join().unwrap().unwrap();
    });
    let s = pager.stats();
    assert_eq!(s.fault_around, 15, "{s:?}");
    assert_eq!(s.reclaim_skipped, 5, "{s:?}");
    assert_eq!(pager.resident_pages(), 16);
}

/// A swap-out whose write fails leaves the page resident with its bytes
/// (the slot freed); a later reclaim of it succeeds.
#[test]
#[cfg_attr(miri, ignore)]
fn a_failed_swap_out_leaves_the_page_resident_with_its_bytes() {
    for kind in [RegionKind::Anon, RegionKind::Memfd] {
        let (mem, dev) = ram_device(64);
        let Some(pager) = pager_or_skip(PagerConfig::new(kind, 8), dev, "failed swap-out") else {
            return;
        };
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let server = s.spawn(|| pager.serve(&stop));
            mem.inject(FaultPlan::next(1, Fault::EIO).writes_only());
            let o = pager.reclaim(&[3, 4]);
            assert_eq!(
                (o.swapped, o.failed),
                (0, 2),
                "{kind}: one kiocb for both: {o:?}"
            );
            assert_eq!(pager.page_state(3), PageState::Resident);
            assert_eq!(pager.device().used_slots(), 0, "slots freed");
            let mut buf = Box::new([0u8; PAGE_SIZE]);
            for i in [3, 4] {
                pager.read_page(i, &mut buf);
                assert_eq!(verify(i, &buf), Ok(()), "{kind}");
            }
            assert_eq!(pager.reclaim(&[3, 4]).swapped, 2);
            assert_eq!(pager.page_state(4), PageState::Swapped);
            for i in [3, 4] {
                pager.read_page(i, &mut buf);
                assert_eq!(verify(i, &buf), Ok(()), "{kind}");
            }
            stop.store(true, Ordering::Release);
            server.join().unwrap().unwrap();
        });
        let s = pager.stats();
        assert_eq!(
            (s.reclaim_failed, s.reclaimed, s.poisoned),
            (2, 2, 0),
            "{kind}: {s:?}"
        );
        assert_eq!(pager.device().counters().write_errors, 1);
    }
}
