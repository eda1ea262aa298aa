//! Stress run of the I/O paths ("Hardening"): swap-out and swap-in, direct
//! I/O through a filesystem mapping, userfaultfd paging and NBD, under
//! injected faults, dropped futures and a killed server, every page
//! verified by checksum (or against a model), no page lost.
//!
//! The phases share `STRESS_OPS` page operations (a page written or read
//! through the path under test counts one): A 20%, A2 15%, B1 15%, B2
//! 10%, iomap 15%, uffd 15%, NBD the rest. Each ends with a line of the
//! table printed last (operations, faults injected, failures seen,
//! retries, pages lost, wall time); a lost page fails the run.
//!
//! * Phase A, faults ([`swaprun`]): a `SwapDevice` on the async-inline
//!   path over a `MemDevice`. About one transfer in 20 gets an injected
//!   fault (`EIO`, or a short transfer of a random length), armed as a
//!   one-shot `FaultPlan` just before the transfer it hits, so the test
//!   knows the exact byte range of every failed batch. Rounds of: dirty
//!   random pages, swap a random subset out through a `SwapPlug`
//!   (contiguous runs and scattered slots), retry the writes that failed,
//!   swap random pages in (plugged, a window of outstanding reads, one
//!   handle in 8 dropped unwaited), retry failed reads, free slots.
//!   Checked: exactly the pages of a failed write batch come back dirty and
//!   intact, exactly the pages of a failed read batch are not uptodate, the
//!   counters agree, no reference leaks; after every round, every page is
//!   either in memory and intact, or on the device and its read-back
//!   verifies. At the end every page goes out and comes back once more,
//!   faults off.
//! * Phase A2, the swap cache ([`swaprun`], [`folios`]): the same rounds
//!   with readahead on (`page_cluster` 3), zero pages (one new generation
//!   in 8), on a RAM device that defers completions and delivers them in a
//!   random order, with faults: a failed swap-in must have had its slot in
//!   a failed batch, every page read (asked for, read ahead, joined, or a
//!   zero slot) verifies. Then large folios (orders 1 to 4, some all
//!   zeros) through `swap_writefolio` / `swap_readfolio` on the same
//!   kind of device: a failed folio write leaves the folio dirty and
//!   intact, a failed folio read is retried, a fallback is swapped in page
//!   by page.
//! * Phase B1, dropped futures ([`uring_drop`]): a `UringQueue` on an
//!   `O_DIRECT` file under `CARGO_TARGET_TMPDIR`, random write and read
//!   batches at random slots, up to 32 in flight; 60% on callback kiocbs,
//!   40% on future kiocbs whose future is dropped at once (half after one
//!   poll): the buffers stay valid until the CQE and are freed after.
//!   Checked at every checkpoint: the file holds the last write of every
//!   slot, kept reads the expected versions, page references released,
//!   canary pages intact. Last, the queue is dropped with I/O in flight:
//!   every callback runs before the drop returns.
//! * Phase B2 ([`swaprun`]): phase A's rounds on the example's io_uring
//!   backend (`IoMode::Uring`) over another file, no faults, one swap-in
//!   handle in 3 dropped unwaited.
//! * Phase iomap ([`iomap`]): `IomapDio` over a toy mapping (mapped
//!   extents, unwritten ones converted by `end_io`, holes allocated on
//!   write) on a RAM device with faults (`EIO`, sector-aligned short
//!   transfers) and deferred, reordered completions; random page reads
//!   and writes through the one trait (`DirectIo::submit`, sync kiocbs and
//!   async ones, several in flight on disjoint ranges), checked against a
//!   model of the file per 512-byte sector: a failed write leaves the
//!   reported prefix new and the rest old (or new, where a later part of
//!   the same request reached a mapped extent), holes and unwritten
//!   extents read as zeros, nothing stale from the device ever shows.
//! * Phase uffd ([`uffd`]): a `Pager` over a `SwapDevice` on a RAM device
//!   with faults on reads and writes (deferred completions), worker
//!   threads touching and verifying pages while a reclaim thread swaps
//!   runs out: a failed swap-out keeps the page resident, a failed read is
//!   retried (enough attempts that nothing is poisoned: 0 poisoned is
//!   asserted).
//! * Phase NBD ([`nbd`]): phase A's rounds through a `SwapDevice` on an
//!   `NbdDevice` to `qemu-nbd` serving a file on a unix socket, flushed
//!   after every swap-out; in several rounds the server is SIGKILLed in
//!   the middle of a swap-out batch: the requests it failed carry a
//!   connection errno, their pages stay dirty in memory; the server is
//!   restarted on the same file, a new `NbdDevice` connected, the writes
//!   retried, every page verified from the restarted server.
//!
//! B skips loudly when io_uring or `O_DIRECT` is unavailable, uffd when
//! userfaultfd is, NBD when qemu-nbd or libnbd is. `STRESS_OPS=1000000
//! nice -n 19 cargo test --release --all-features -p iov-iter-swap --test
//! stress -- --ignored --nocapture` runs the full size (default
//! 1,000,000; `STRESS_SEED` replays a run, its seed printed at the start).
//! The non-ignored smoke test runs 20,000 in a few seconds.

// io_uring, O_DIRECT, userfaultfd, qemu-nbd. Not under Miri: every test
// here makes syscalls.
#![cfg(all(target_os = "linux", not(miri)))]

mod common;
mod folios;
mod iomap;
mod nbd;
mod swaprun;
mod uffd;
mod uring_drop;

use std::time::Instant;

use common::{Summary, env_u64, rate, seed_from_env};

#[derive(Debug, Clone, Copy)]
struct Config {
    seed: u64,
    /// Page operations in all, split between the phases.
    ops: u64,
    /// Phase A: logical pages, and swap slots (slot 0 is never handed out).
    pages: usize,
    slots: u64,
    /// Phases A, A2, iomap, uffd: one transfer in this many gets a fault.
    fault_one_in: u32,
    /// Phase B: slots in the file.
    file_slots: u32,
    /// Phase B: page operations between two full verifications.
    check_every: u64,
    /// Phase iomap: pages in the file.
    iomap_pages: u64,
    /// Phase uffd: pages in the region, worker threads.
    uffd_pages: usize,
    uffd_workers: usize,
    /// Phase NBD: logical pages (slots: twice as many), server kills.
    nbd_pages: usize,
    nbd_kills: u32,
}

/// Shares of `ops` in percent, in phase order (NBD gets the rest).
const SHARES: [u64; 6] = [20, 15, 15, 10, 15, 15];

fn run(cfg: Config) {
    println!("swap_stress: seed {:#018x}, {} page ops", cfg.seed, cfg.ops);
    let t0 = Instant::now();
    let share = |k: usize| cfg.ops * SHARES[k] / 100;
    let mut table: Vec<Summary> = Vec::new();

    println!(
        "  phase A: SwapDevice async-inline on MemDevice, faults on 1 transfer in {}",
        cfg.fault_one_in
    );
    let a = swaprun::phase_a(&cfg, share(0));
    a.print();
    table.push(a.summary("A swap async-inline"));

    println!("  phase A2: swap cache (readahead, zero pages), deferred reordered completions");
    let a2_ops = share(1);
    let a2 = swaprun::phase_a2(&cfg, a2_ops - a2_ops / 3);
    a2.print();
    let mut s = a2.summary("A2 swap cache");
    println!("  phase A2 folios: large folios (orders 1-4, zero folios), faults");
    let f = folios::phase_folios(&cfg, a2_ops / 3);
    f.print();
    f.add_to(&mut s);
    table.push(s);

    println!(
        "  phase B1: UringQueue on an O_DIRECT file, <= {} in flight",
        uring_drop::MAX_IN_FLIGHT
    );
    let b = uring_drop::phase_b(&cfg, share(2));
    match &b.b_skipped {
        Some(why) => println!("    SKIPPED: {why}"),
        None => b.print(),
    }
    table.push(b.summary());
    if b.b_skipped.is_none() {
        println!(
            "  phase B2: SwapDevice on io_uring (queue depth {}), swap-in handles dropped",
            uring_drop::MAX_IN_FLIGHT
        );
        let c = swaprun::phase_b2(&cfg, share(3));
        c.print();
        table.push(c.summary("B2 swap on io_uring"));
    }

    println!("  phase iomap: IomapDio over a toy mapping on MemDevice, faults, reordered");
    let m = iomap::phase_iomap(&cfg, share(4));
    table.push(m);

    println!("  phase uffd: Pager over SwapDevice on MemDevice, faults on reads and writes");
    let u = uffd::phase_uffd(&cfg, share(5));
    table.push(u);

    let done: u64 = table.iter().map(|s| s.ops).sum();
    let left = cfg.ops.saturating_sub(done).max(cfg.ops / 10);
    println!("  phase NBD: SwapDevice on NbdDevice to qemu-nbd, server killed and restarted");
    let n = nbd::phase_nbd(&cfg, left);
    table.push(n);

    println!(
        "swap_stress: seed {:#018x} (STRESS_SEED to replay)",
        cfg.seed
    );
    println!(
        "  {:<26} {:>9} {:>8} {:>8} {:>8} {:>5} {:>10} {:>8}",
        "phase", "page ops", "faults", "failures", "retries", "lost", "verified", "time s"
    );
    for s in &table {
        match &s.skipped {
            Some(why) => println!("  {:<26} SKIPPED: {why}", s.name),
            None => println!(
                "  {:<26} {:>9} {:>8} {:>8} {:>8} {:>5} {:>10} {:>8.2}",
                s.name,
                s.ops,
                s.faults,
                s.failures,
                s.retries,
                s.lost,
                s.verified,
                s.time.as_secs_f64()
            ),
        }
    }
    let ops: u64 = table.iter().map(|s| s.ops).sum();
    let lost: u64 = table.iter().map(|s| s.lost).sum();
    let t = t0.elapsed();
    println!(
        "  {:<26} {:>9} {:>8} {:>8} {:>8} {:>5} {:>10} {:>8.2}   ({:.0} ops/s)",
        "total",
        ops,
        table.iter().map(|s| s.faults).sum::<u64>(),
        table.iter().map(|s| s.failures).sum::<u64>(),
        table.iter().map(|s| s.retries).sum::<u64>(),
        lost,
        table.iter().map(|s| s.verified).sum::<u64>(),
        t.as_secs_f64(),
        rate(ops, t),
    );
    assert_eq!(lost, 0, "pages lost");
    for s in &table {
        assert!(
            s.skipped.is_some() || s.ops > 0,
            "phase {} did nothing",
            s.name
        );
    }
}

/// The full run: `STRESS_OPS` page operations (default 1,000,000).
#[test]
#[ignore = "long: run with --release -- --ignored --nocapture"]
fn stress_swap_full() {
    run(Config {
        seed: seed_from_env(),
        ops: env_u64("STRESS_OPS").unwrap_or(1_000_000),
        pages: 1024,
        slots: 1536,
        fault_one_in: 20,
        file_slots: 4096,
        check_every: 1 << 15,
        iomap_pages: 1024,
        uffd_pages: 1024,
        uffd_workers: 2,
        nbd_pages: 1024,
        nbd_kills: 8,
    });
}

/// A few seconds of the same paths, for CI.
#[test]
fn stress_swap_smoke() {
    run(Config {
        seed: seed_from_env(),
        ops: 20_000,
        pages: 192,
        slots: 320,
        fault_one_in: 20,
        file_slots: 512,
        check_every: 2500,
        iomap_pages: 128,
        uffd_pages: 192,
        uffd_workers: 2,
        nbd_pages: 192,
        nbd_kills: 3,
    });
}
