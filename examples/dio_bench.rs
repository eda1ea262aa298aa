//! `dio_bench`: raw asynchronous direct I/O through `DirectIo::submit` on
//! io_uring, for the cases the swap benchmark does not cover: registered
//! buffers and files (`READ_FIXED` / `WRITE_FIXED`) against fio's
//! `--fixedbufs --registerfiles`, and 64 KiB requests as one folio segment
//! against sixteen 4 KiB page segments (and fio's 64 KiB blocks).
//!
//! ```sh
//! cargo run --release --example dio_bench -- FILE CASE SECS [--lat-hist]
//! ```
//!
//! `FILE` is an existing, written file (`benches/fio_compare.sh` passes the
//! swap area it prepared: zero-filled, so every extent is written); offsets
//! are uniform over `[4096, size)`, aligned to the block size, like fio's
//! `randread` / `randwrite` with `norandommap --offset=4096`. One JSON
//! object on stdout: I/Os per second, pages per second, mean latency, and
//! the benchmarking thread's user and system CPU time (from
//! `/proc/thread-self/stat`, as fio's `getrusage(RUSAGE_THREAD)`).
//!
//! Cases: `rand4k-{read,write}-qd32` (single pages), the same with
//! `-fixed` (registered files and a registered buffer pool), and
//! `rand64k-{read,write}-qd8-{folio,pages}` (one order-4 folio segment, or a
//! `Vec` of sixteen pages, per request). Any depth of the single-page cases:
//! `rand4k-{read,write}-qd{N}`, N from 1 to 1024 (the queue-depth sweep of
//! `benches/qd_sweep.sh`; `qd32` is the case above).
//!
//! Latency is per request, from just before the kiocb is built and submitted
//! to its completion callback (fio's `lat`: submission plus completion).
//! `--lat-hist` adds to the JSON object nearest-rank `p50_us`, `p99_us`,
//! `p999_us` and `lat_hist`: `[[ns, count], ...]`, the non-empty buckets of
//! a log-linear histogram (32 buckets per power of two, under 3.2 % wide;
//! `ns` is a bucket's middle, as fio's `json+` `bins`), ascending.

#[cfg(all(target_os = "linux", feature = "uring"))]
fn main() -> std::process::ExitCode {
    imp::main()
}

#[cfg(not(all(target_os = "linux", feature = "uring")))]
fn main() {
    eprintln!("dio_bench needs Linux and the `uring` feature");
}

#[cfg(all(target_os = "linux", feature = "uring"))]
mod imp {
    use std::process::ExitCode;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use iov_iter::backend::file::DirectFile;
    use iov_iter::backend::uring::UringQueue;
    use iov_iter::buf::{IoBuf, IoBufMut, OwnedIter};
    use iov_iter::dio::{DioBuf, DirectIo};
    use iov_iter::kiocb::{IocbFlags, Kiocb};
    use iov_iter::{Dest, Folio, PAGE_SIZE, Page, Source};

    #[derive(Clone, Copy, PartialEq)]
    enum Mem {
        Page,
        Fixed,
        Folio,
        Pages16,
    }

    #[derive(Clone, Copy)]
    struct Case {
        name: &'static str,
        write: bool,
        depth: usize,
        bs: usize,
        mem: Mem,
    }

    const CASES: [Case; 8] = [
        Case {
            name: "rand4k-read-qd32",
            write: false,
            depth: 32,
            bs: 4096,
            mem: Mem::Page,
        },
        Case {
            name: "rand4k-write-qd32",
            write: true,
            depth: 32,
            bs: 4096,
            mem: Mem::Page,
        },
        Case {
            name: "rand4k-read-qd32-fixed",
            write: false,
            depth: 32,
            bs: 4096,
            mem: Mem::Fixed,
        },
        Case {
            name: "rand4k-write-qd32-fixed",
            write: true,
            depth: 32,
            bs: 4096,
            mem: Mem::Fixed,
        },
        Case {
            name: "rand64k-read-qd8-folio",
            write: false,
            depth: 8,
            bs: 65536,
            mem: Mem::Folio,
        },
        Case {
            name: "rand64k-write-qd8-folio",
            write: true,
            depth: 8,
            bs: 65536,
            mem: Mem::Folio,
        },
        Case {
            name: "rand64k-read-qd8-pages",
            write: false,
            depth: 8,
            bs: 65536,
            mem: Mem::Pages16,
        },
        Case {
            name: "rand64k-write-qd8-pages",
            write: true,
            depth: 8,
            bs: 65536,
            mem: Mem::Pages16,
        },
    ];

    /// The case called `name`: one of [`CASES`], or `rand4k-{read,write}-qd{N}`.
    fn find_case(name: &str) -> Option<Case> {
        if let Some(c) = CASES.iter().find(|c| c.name == name) {
            return Some(*c);
        }
        let (write, depth) = if let Some(d) = name.strip_prefix("rand4k-read-qd") {
            (false, d)
        } else {
            (true, name.strip_prefix("rand4k-write-qd")?)
        };
        // Digits only: no sign, no leading zero, no suffix.
        if depth.starts_with('0') || !depth.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let depth: usize = depth.parse().ok().filter(|d| (1..=1024).contains(d))?;
        Some(Case {
            // One case per process: leaking its name is simpler than a
            // lifetime on every `Case`.
            name: Box::leak(name.to_owned().into_boxed_str()),
            write,
            depth,
            bs: 4096,
            mem: Mem::Page,
        })
    }

    /// Sub-buckets per power of two of the latency histogram (2^5).
    const HIST_BITS: u32 = 5;
    /// Buckets: enough for any `u64` nanoseconds.
    const HIST_LEN: usize = ((64 - HIST_BITS as usize) << HIST_BITS) + (2 << HIST_BITS);

    /// The histogram bucket of `ns`: exact below 64, then 32 buckets per
    /// power of two (HdrHistogram's layout).
    fn hist_index(ns: u64) -> usize {
        let msb = 63 - (ns | 1).leading_zeros();
        let shift = msb.saturating_sub(HIST_BITS);
        ((shift as usize) << HIST_BITS) + (ns >> shift) as usize
    }

    /// The lowest value and the width of bucket `i`.
    fn hist_bounds(i: usize) -> (u64, u64) {
        let sub = 1usize << HIST_BITS;
        if i < 2 * sub {
            return (i as u64, 1);
        }
        let shift = (i >> HIST_BITS) - 1;
        let lo = ((i - (shift << HIST_BITS)) as u64) << shift;
        (lo, 1 << shift)
    }

    /// Nearest-rank percentile `p` (0 to 100) of the histogram, in µs (a
    /// bucket's middle).
    fn hist_percentile(hist: &[u64], p: f64) -> f64 {
        let n: u64 = hist.iter().sum();
        if n == 0 {
            return 0.0;
        }
        let rank = ((p / 100.0 * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (i, &c) in hist.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, w) = hist_bounds(i);
                return (lo as f64 + (w - 1) as f64 / 2.0) / 1e3;
            }
        }
        unreachable!("rank <= total")
    }

    /// `,"p50_us":..,"p99_us":..,"p999_us":..,"lat_hist":[[ns,count],...]`.
    fn hist_json(hist: &[u64]) -> String {
        use std::fmt::Write;
        let mut out = format!(
            ",\"p50_us\":{:.2},\"p99_us\":{:.2},\"p999_us\":{:.2},\"lat_hist\":[",
            hist_percentile(hist, 50.0),
            hist_percentile(hist, 99.0),
            hist_percentile(hist, 99.9)
        );
        let mut first = true;
        for (i, &c) in hist.iter().enumerate().filter(|(_, c)| **c > 0) {
            let (lo, w) = hist_bounds(i);
            let _ = write!(
                out,
                "{}[{},{c}]",
                if first { "" } else { "," },
                lo + (w - 1) / 2
            );
            first = false;
        }
        out.push(']');
        out
    }

    /// The thread's (user, system) CPU seconds, from `/proc/thread-self/stat`
    /// (fields 14 and 15 after the command name, in `USER_HZ` = 100 ticks).
    fn thread_cpu() -> (f64, f64) {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        // After the command name: state (field 3), ..., utime (14), stime
        // (15).
        let f: Vec<&str> = rest.split_whitespace().collect();
        match (
            f.get(11).and_then(|x| x.parse::<u64>().ok()),
            f.get(12).and_then(|x| x.parse::<u64>().ok()),
        ) {
            (Some(u), Some(s)) => (u as f64 / 100.0, s as f64 / 100.0),
            _ => (0.0, 0.0),
        }
    }

    struct Shared<B> {
        free: Vec<B>,
        done: u64,
        errors: u64,
        lat: Duration,
        /// Latencies, by [`hist_index`] of their nanoseconds.
        hist: Vec<u64>,
    }

    /// What every run takes besides the case and its buffers.
    #[derive(Clone, Copy)]
    struct Params {
        /// Run time in seconds.
        secs: u64,
        /// Requests of `case.bs` in the file after its first 4 KiB.
        slots: u64,
        /// Add the percentiles and the latency histogram to the JSON.
        lat_hist: bool,
    }

    /// Keeps `case.depth` requests in flight for `p.secs`, each buffer handed
    /// back by its completion and submitted again at a new offset.
    fn run<B, I>(
        q: &UringQueue,
        case: &Case,
        p: Params,
        bufs: Vec<B>,
        wrap: fn(B) -> I,
        unwrap: fn(I) -> B,
    ) -> String
    where
        B: Send + 'static,
        I: DioBuf,
    {
        let shared = Arc::new(Mutex::new(Shared {
            free: bufs,
            done: 0,
            errors: 0,
            lat: Duration::ZERO,
            hist: vec![0; HIST_LEN],
        }));
        let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
        let (u0, s0) = thread_cpu();
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(p.secs);
        let mut submitted = 0u64;
        while Instant::now() < deadline {
            // At most one queue's worth per round: on a device that
            // completes during submission (zram), each submission's room
            // search reaps the one before, the free list never empties, and
            // an unbounded loop would never look at the clock again.
            for _ in 0..case.depth {
                let Some(b) = shared.lock().unwrap().free.pop() else {
                    break;
                };
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let pos = 4096 + (rng % p.slots) * case.bs as u64;
                let start = Instant::now();
                let sh = Arc::clone(&shared);
                let bs = case.bs;
                let mut kiocb = Kiocb::with_callback(pos, wrap(b), move |c| {
                    let lat = start.elapsed();
                    let mut s = sh.lock().unwrap();
                    s.done += 1;
                    s.lat += lat;
                    let ns = u64::try_from(lat.as_nanos()).unwrap_or(u64::MAX);
                    s.hist[hist_index(ns)] += 1;
                    if c.result != Ok(bs) {
                        s.errors += 1;
                    }
                    s.free.push(unwrap(c.buf));
                })
                .with_flags(IocbFlags::DIRECT);
                if let Err(e) = q.submit(&mut kiocb) {
                    eprintln!("submit: {e}");
                    return String::new();
                }
                submitted += 1;
            }
            q.wait(1).expect("io_uring wait");
        }
        q.drain().expect("io_uring drain");
        let elapsed = t0.elapsed().as_secs_f64();
        let (u1, s1) = thread_cpu();
        let s = shared.lock().unwrap();
        let fixed = q.stats().fixed_buffer_ops;
        format!(
            "{{\"case\":\"{}\",\"ios\":{},\"submitted\":{},\"errors\":{},\"iops\":{:.1},\"pages_s\":{:.1},\
             \"mean_us\":{:.2},\"cpu_user_s\":{:.3},\"cpu_sys_s\":{:.3},\"fixed_ops\":{},\"elapsed_s\":{:.3}{}}}",
            case.name,
            s.done,
            submitted,
            s.errors,
            s.done as f64 / elapsed,
            s.done as f64 * (case.bs / PAGE_SIZE) as f64 / elapsed,
            s.lat.as_secs_f64() * 1e6 / s.done.max(1) as f64,
            u1 - u0,
            s1 - s0,
            fixed,
            elapsed,
            if p.lat_hist {
                hist_json(&s.hist)
            } else {
                String::new()
            },
        )
    }

    /// A page filled with a pattern (what a write sends).
    fn page(i: usize) -> Page {
        let mut p = Page::new();
        p.as_mut_bytes().fill(i as u8 | 1);
        p
    }

    fn go<B: IoBuf + IoBufMut>(q: &UringQueue, case: &Case, p: Params, bufs: Vec<B>) -> String {
        if case.write {
            run(
                q,
                case,
                p,
                bufs,
                OwnedIter::<Source, B>::new,
                OwnedIter::into_inner,
            )
        } else {
            run(
                q,
                case,
                p,
                bufs,
                OwnedIter::<Dest, B>::new,
                OwnedIter::into_inner,
            )
        }
    }

    pub fn main() -> ExitCode {
        let args: Vec<String> = std::env::args().collect();
        let usage = || {
            eprintln!("usage: dio_bench FILE CASE SECS [--lat-hist]; cases:");
            for c in &CASES {
                eprintln!("  {}", c.name);
            }
            eprintln!("  rand4k-read-qd{{N}}, rand4k-write-qd{{N}} (N: 1 to 1024)");
            ExitCode::from(2)
        };
        let (Some(file), Some(name), Some(secs)) = (args.get(1), args.get(2), args.get(3)) else {
            return usage();
        };
        let lat_hist = match args.get(4).map(String::as_str) {
            None => false,
            Some("--lat-hist") if args.len() == 5 => true,
            Some(other) => {
                eprintln!("dio_bench: unexpected argument {other}");
                return usage();
            }
        };
        let Some(case) = find_case(name) else {
            eprintln!("dio_bench: unknown case {name}");
            return ExitCode::from(2);
        };
        let case = &case;
        let secs: u64 = secs.parse().unwrap_or(5);
        let f = match DirectFile::open(file) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("dio_bench: open {file}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let size = f.len().unwrap_or(0);
        let slots = size.saturating_sub(4096) / case.bs as u64;
        if slots == 0 {
            eprintln!("dio_bench: {file} is too small");
            return ExitCode::FAILURE;
        }
        let q = match UringQueue::builder()
            .depth(case.depth as u32)
            .single_issuer(true)
            .coop_taskrun(true)
            .register_files(case.mem == Mem::Fixed)
            .build(f)
        {
            Ok(q) => q,
            Err(e) => {
                eprintln!("dio_bench: io_uring: {e}");
                return ExitCode::FAILURE;
            }
        };
        let d = case.depth;
        let p = Params {
            secs,
            slots,
            lat_hist,
        };
        let line = match case.mem {
            Mem::Page => go(&q, case, p, (0..d).map(page).collect()),
            Mem::Fixed => {
                let pool = match q.register_buffers(d, case.bs, PAGE_SIZE) {
                    Ok(p) => p,
                    Err(e) => {
                        eprintln!("dio_bench: register_buffers: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                if !pool.is_registered() {
                    eprintln!("dio_bench: the kernel refused to register the buffers");
                }
                let bufs: Vec<_> = (0..d).map_while(|_| pool.get()).collect();
                go(&q, case, p, bufs)
            }
            Mem::Folio => {
                let bufs: Vec<Folio> = (0..d).map(|_| Folio::new(4).expect("folio")).collect();
                go(&q, case, p, bufs)
            }
            Mem::Pages16 => {
                let bufs: Vec<Vec<Page>> = (0..d).map(|_| (0..16).map(page).collect()).collect();
                go(&q, case, p, bufs)
            }
        };
        if line.is_empty() {
            return ExitCode::FAILURE;
        }
        println!("{line}");
        ExitCode::SUCCESS
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn histogram_buckets_cover_every_value_once() {
            let mut v = 0u64;
            let mut last = 0;
            while v < 1 << 20 {
                let i = hist_index(v);
                let (lo, w) = hist_bounds(i);
                assert!(lo <= v && v < lo + w, "{v} in bucket {i} = [{lo}, +{w})");
                assert!(i == last || i == last + 1, "{v}: {last} -> {i}");
                assert!(w == 1 || (w as f64) / (lo as f64) < 0.032, "{v}");
                last = i;
                v += 1 + v / 1000;
            }
            assert!(hist_index(u64::MAX) < HIST_LEN);
            let (lo, w) = hist_bounds(hist_index(u64::MAX));
            assert_eq!(lo.wrapping_add(w), 0, "the last bucket ends at 2^64");
        }

        #[test]
        fn percentiles_and_json() {
            let mut h = vec![0; HIST_LEN];
            for ns in [10, 20, 30, 40] {
                h[hist_index(ns)] += 1;
            }
            h[hist_index(100_000)] += 96;
            assert_eq!(hist_percentile(&h, 1.0), 0.01);
            assert_eq!(hist_percentile(&h, 4.0), 0.04);
            let p50 = hist_percentile(&h, 50.0);
            assert!((p50 - 100.0).abs() < 2.0, "{p50}");
            let j = hist_json(&h);
            assert!(j.starts_with(",\"p50_us\":"), "{j}");
            assert!(
                j.contains("\"lat_hist\":[[10,1],[20,1],[30,1],[40,1],[") && j.ends_with(",96]]"),
                "{j}"
            );
        }

        #[test]
        fn case_names() {
            assert_eq!(find_case("rand4k-read-qd32").unwrap().depth, 32);
            assert!(find_case("rand4k-read-qd32-fixed").unwrap().mem == Mem::Fixed);
            let c = find_case("rand4k-write-qd7").unwrap();
            assert!(c.write && c.depth == 7 && c.bs == 4096 && c.mem == Mem::Page);
            assert_eq!(find_case("rand4k-read-qd1024").unwrap().depth, 1024);
            for bad in [
                "rand4k-read-qd0",
                "rand4k-read-qd01",
                "rand4k-read-qd1025",
                "rand4k-read-qd+4",
                "rand4k-read-qd",
                "rand4k-qd4",
            ] {
                assert!(find_case(bad).is_none(), "{bad}");
            }
        }
    }
}
