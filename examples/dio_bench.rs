//! `dio_bench`: raw asynchronous direct I/O through `DirectIo::submit` on
//! io_uring, for the cases the swap benchmark does not cover: registered
//! buffers and files (`READ_FIXED` / `WRITE_FIXED`) against fio's
//! `--fixedbufs --registerfiles`, and 64 KiB requests as one folio segment
//! against sixteen 4 KiB page segments (and fio's 64 KiB blocks).
//!
//! ```sh
//! cargo run --release --example dio_bench -- FILE CASE SECS
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
//! `Vec` of sixteen pages, per request).

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
    }

    /// Keeps `case.depth` requests in flight for `secs`, each buffer handed
    /// back by its completion and submitted again at a new offset.
    fn run<B, I>(
        q: &UringQueue,
        case: &Case,
        secs: u64,
        slots: u64,
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
        }));
        let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
        let (u0, s0) = thread_cpu();
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(secs);
        let mut submitted = 0u64;
        while Instant::now() < deadline {
            loop {
                let Some(b) = shared.lock().unwrap().free.pop() else {
                    break;
                };
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let pos = 4096 + (rng % slots) * case.bs as u64;
                let start = Instant::now();
                let sh = Arc::clone(&shared);
                let bs = case.bs;
                let mut kiocb = Kiocb::with_callback(pos, wrap(b), move |c| {
                    let mut s = sh.lock().unwrap();
                    s.done += 1;
                    s.lat += start.elapsed();
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
             \"mean_us\":{:.2},\"cpu_user_s\":{:.3},\"cpu_sys_s\":{:.3},\"fixed_ops\":{},\"elapsed_s\":{:.3}}}",
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
        )
    }

    /// A page filled with a pattern (what a write sends).
    fn page(i: usize) -> Page {
        let mut p = Page::new();
        p.as_mut_bytes().fill(i as u8 | 1);
        p
    }

    fn go<B: IoBuf + IoBufMut>(
        q: &UringQueue,
        case: &Case,
        secs: u64,
        slots: u64,
        bufs: Vec<B>,
    ) -> String {
        if case.write {
            run(
                q,
                case,
                secs,
                slots,
                bufs,
                OwnedIter::<Source, B>::new,
                OwnedIter::into_inner,
            )
        } else {
            run(
                q,
                case,
                secs,
                slots,
                bufs,
                OwnedIter::<Dest, B>::new,
                OwnedIter::into_inner,
            )
        }
    }

    pub fn main() -> ExitCode {
        let args: Vec<String> = std::env::args().collect();
        let (Some(file), Some(name), Some(secs)) = (args.get(1), args.get(2), args.get(3)) else {
            eprintln!("usage: dio_bench FILE CASE SECS; cases:");
            for c in &CASES {
                eprintln!("  {}", c.name);
            }
            return ExitCode::from(2);
        };
        let Some(case) = CASES.iter().find(|c| c.name == name) else {
            eprintln!("dio_bench: unknown case {name}");
            return ExitCode::from(2);
        };
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
        let line = match case.mem {
            Mem::Page => go(&q, case, secs, slots, (0..d).map(page).collect()),
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
                go(&q, case, secs, slots, bufs)
            }
            Mem::Folio => {
                let bufs: Vec<Folio> = (0..d).map(|_| Folio::new(4).expect("folio")).collect();
                go(&q, case, secs, slots, bufs)
            }
            Mem::Pages16 => {
                let bufs: Vec<Vec<Page>> = (0..d).map(|_| (0..16).map(page).collect()).collect();
                go(&q, case, secs, slots, bufs)
            }
        };
        if line.is_empty() {
            return ExitCode::FAILURE;
        }
        println!("{line}");
        ExitCode::SUCCESS
    }
}
