//! Phase uffd: a userfaultfd [`Pager`] (anonymous memory of this process)
//! over a [`SwapDevice`] on a RAM device with faults on reads and writes
//! and deferred, reordered completions. Worker threads touch random pages
//! and runs of pages and verify every byte; a reclaim thread swaps runs of
//! resident pages out meanwhile. A failed swap-out keeps its page
//! resident; a failed read is retried (50 attempts: nothing is poisoned,
//! and 0 poisoned is asserted). Last, every page is read and verified.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use iov_iter::PAGE_SIZE;
use iov_iter::backend::mem::MemDevice;

use iov_iter_swap::content::{check_page, fill_page};
use iov_iter_swap::swapio::{IoMode, SwapDevice};
use iov_iter_swap::swapmap::SlotRng;
use iov_iter_swap::uffd::{PageState, Pager, PagerConfig, RegionKind};

use crate::Config;
use crate::common::{FaultyMem, Summary, skip, tag};

/// One page in this many is all zeros.
const ZERO_EVERY: usize = 16;

fn init(seed: u64) -> impl Fn(usize, &mut [u8; PAGE_SIZE]) {
    move |i, bytes| {
        if i % ZERO_EVERY == 0 {
            bytes.fill(0);
        } else {
            fill_page(bytes, tag(i, 7), seed);
        }
    }
}

fn verify(seed: u64, i: usize, bytes: &[u8; PAGE_SIZE]) -> Result<(), String> {
    if i % ZERO_EVERY == 0 {
        match bytes.iter().position(|&b| b != 0) {
            None => Ok(()),
            Some(at) => Err(format!("zero page {i}: byte {at} set")),
        }
    } else {
        check_page(bytes, tag(i, 7), seed).map_err(|m| format!("page {i}: {m}"))
    }
}

pub fn phase_uffd(cfg: &Config, ops: u64) -> Summary {
    let mut sum = Summary::new("uffd Pager");
    let t0 = Instant::now();
    let seed = cfg.seed ^ 0x0ffd;
    let n = cfg.uffd_pages;
    let slots = (n * 2) as u64;
    let mem = Arc::new(MemDevice::new(slots as usize * PAGE_SIZE));
    let faulty = Arc::new(FaultyMem::new(
        Arc::clone(&mem),
        seed,
        cfg.fault_one_in,
        1,
        true,
    ));
    let dev = SwapDevice::new(faulty.clone(), IoMode::Uring, slots).unwrap();
    let mut pcfg = PagerConfig::new(RegionKind::Anon, n);
    pcfg.read_attempts = 50;
    let pager = match Pager::new(pcfg, dev, init(seed)) {
        Ok(p) => p,
        Err(e) if e.is_unavailable() => {
            sum.skipped = Some(skip("uffd", &format!("userfaultfd unavailable: {e}")));
            return sum;
        }
        Err(e) => panic!("pager: {e}"),
    };
    let stop = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let touched = AtomicU64::new(0);
    let verified = AtomicU64::new(0);
    let page_ops = |p: &Pager| {
        let s = p.stats();
        s.reclaimed + s.reclaim_failed + s.swapped_in
    };
    let (bad, reclaim) = std::thread::scope(|s| {
        let server = s.spawn(|| pager.serve(&stop));
        let reclaimer = s.spawn(|| {
            let mut rng = SlotRng::new(seed ^ 0xec1a);
            let (mut swapped, mut failed) = (0usize, 0usize);
            while !done.load(Ordering::Acquire) {
                let start = rng.below(n as u32) as usize;
                let len = 1 + rng.below(48) as usize;
                let run: Vec<usize> = (start..(start + len).min(n))
                    .filter(|&i| pager.page_state(i) == PageState::Resident)
                    .collect();
                let o = pager.reclaim(&run);
                swapped += o.swapped;
                failed += o.failed;
                if rng.below(4) == 0 {
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
            (swapped, failed)
        });
        let workers: Vec<_> = (0..cfg.uffd_workers)
            .map(|w| {
                let (pager, done, touched, verified) = (&pager, &done, &touched, &verified);
                s.spawn(move || {
                    let mut rng = SlotRng::new(seed + 1 + w as u64);
                    let mut buf = Box::new([0u8; PAGE_SIZE]);
                    let mut bad = Vec::new();
                    while !done.load(Ordering::Acquire) {
                        let start = rng.below(n as u32) as usize;
                        let len = if rng.below(2) == 0 {
                            1
                        } else {
                            1 + rng.below(16) as usize
                        };
                        for i in start..(start + len).min(n) {
                            pager.read_page(i, &mut buf);
                            match verify(seed, i, &buf) {
                                Ok(()) => verified.fetch_add(1, Ordering::Relaxed),
                                Err(e) => {
                                    bad.push(e);
                                    0
                                }
                            };
                            touched.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    bad
                })
            })
            .collect();
        while page_ops(&pager) < ops {
            std::thread::sleep(Duration::from_millis(5));
        }
        done.store(true, Ordering::Release);
        let mut bad: Vec<String> = workers
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let reclaim = reclaimer.join().unwrap();
        // Every page, at the end (faults still on).
        let mut buf = Box::new([0u8; PAGE_SIZE]);
        for i in 0..n {
            pager.read_page(i, &mut buf);
            match verify(seed, i, &buf) {
                Ok(()) => {
                    verified.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => bad.push(e),
            }
        }
        stop.store(true, Ordering::Release);
        server.join().unwrap().unwrap();
        (bad, reclaim)
    });
    let st = pager.stats();
    let c = pager.device().counters();
    let faults = faulty.injected();
    for b in bad.iter().take(10) {
        eprintln!("LOST: uffd {b}");
    }
    sum.ops = page_ops(&pager);
    sum.faults = faults;
    sum.failures = c.write_errors + c.read_errors;
    sum.retries = st.read_retries;
    sum.lost = bad.len() as u64 + st.poisoned;
    sum.verified = verified.load(Ordering::Relaxed);
    sum.time = t0.elapsed();
    println!(
        "    {} page ops ({} swapped out, {} swap-outs failed and stayed resident, {} swapped \
         in), {} touches by {} workers, {:.2} s",
        sum.ops,
        st.reclaimed,
        st.reclaim_failed,
        st.swapped_in,
        touched.load(Ordering::Relaxed),
        cfg.uffd_workers,
        sum.time.as_secs_f64()
    );
    println!(
        "    faults injected {faults}: write kiocbs failed {}, read kiocbs failed {}; reads \
         retried {}, poisoned {}; faults served {}, fault-around {}; verified {} pages",
        c.write_errors,
        c.read_errors,
        st.read_retries,
        st.poisoned,
        st.served,
        st.fault_around,
        sum.verified
    );
    assert_eq!(st.poisoned, 0, "a page was poisoned: {st:?}");
    assert!(
        bad.is_empty(),
        "{} pages read wrong: {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
    assert_eq!(reclaim.1 as u64, st.reclaim_failed);
    assert!(st.reclaimed > 0 && st.swapped_in > 0, "{st:?}");
    assert!(faults > 0, "no fault injected");
    sum
}
