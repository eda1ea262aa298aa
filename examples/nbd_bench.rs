//! `nbd_bench`: random 4 KiB (or `BS`) reads or writes through
//! `DirectIo::submit` on the NBD backend, `QD` requests kept in flight,
//! for a side-by-side run with fio's own nbd engine on the same export
//! (`benches/nbd_compare.sh`).
//!
//! ```sh
//! cargo run --release --features nbd --example nbd_bench -- URI randread|randwrite QD SECS [BS]
//! ```
//!
//! Offsets are uniform over the export, aligned to `BS`, like fio's
//! `randread` / `randwrite` with `norandommap`. One JSON object on stdout:
//! I/Os per second, MiB per second, mean latency in microseconds.

#[cfg(all(target_os = "linux", feature = "nbd"))]
fn main() -> std::process::ExitCode {
    imp::main()
}

#[cfg(not(all(target_os = "linux", feature = "nbd")))]
fn main() {
    eprintln!("nbd_bench needs Linux and the `nbd` feature");
}

#[cfg(all(target_os = "linux", feature = "nbd"))]
mod imp {
    use std::process::ExitCode;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use iov_iter::backend::nbd::NbdDevice;
    use iov_iter::buf::{AlignedBuf, OwnedIter};
    use iov_iter::dio::DirectIo;
    use iov_iter::kiocb::Kiocb;
    use iov_iter::{Dest, Source};

    enum Buf {
        R(OwnedIter<Dest, AlignedBuf>),
        W(OwnedIter<Source, AlignedBuf>),
    }

    /// xorshift64*: the offsets' generator.
    fn next(x: &mut u64) -> u64 {
        *x ^= *x >> 12;
        *x ^= *x << 25;
        *x ^= *x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn main() -> ExitCode {
        let args: Vec<String> = std::env::args().collect();
        let (Some(uri), Some(rw), Some(qd), Some(secs)) =
            (args.get(1), args.get(2), args.get(3), args.get(4))
        else {
            eprintln!("usage: nbd_bench URI randread|randwrite QD SECS [BS]");
            return ExitCode::from(2);
        };
        let write = match rw.as_str() {
            "randread" => false,
            "randwrite" => true,
            _ => {
                eprintln!("nbd_bench: {rw}: randread or randwrite");
                return ExitCode::from(2);
            }
        };
        let qd: usize = qd.parse().unwrap_or(1).max(1);
        let secs: f64 = secs.parse().unwrap_or(5.0);
        let bs: usize = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(4096);
        let dev = match NbdDevice::connect(uri) {
            Ok(d) => d,
            Err(e) => {
                let why = iov_iter::backend::nbd::last_error_message();
                eprintln!("nbd_bench: connect {uri}: {e} ({why:?})");
                return ExitCode::FAILURE;
            }
        };
        let blocks = dev.info().size / bs as u64;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let (tx, rx) = mpsc::channel::<(usize, Buf, bool)>();
        let mut started = vec![Instant::now(); qd];
        let submit = |slot: usize, buf: Buf, seed: &mut u64, started: &mut [Instant]| {
            let pos = (next(seed) % blocks) * bs as u64;
            let tx = tx.clone();
            started[slot] = Instant::now();
            let r = match buf {
                Buf::R(b) => {
                    let mut k = Kiocb::with_callback(pos, b, move |c| {
                        let ok = c.result == Ok(bs);
                        let _ = tx.send((
                            slot,
                            Buf::R(OwnedIter::<Dest, _>::new(c.buf.into_inner())),
                            ok,
                        ));
                    });
                    dev.submit(&mut k)
                }
                Buf::W(b) => {
                    let mut k = Kiocb::with_callback(pos, b, move |c| {
                        let ok = c.result == Ok(bs);
                        let _ = tx.send((
                            slot,
                            Buf::W(OwnedIter::<Source, _>::new(c.buf.into_inner())),
                            ok,
                        ));
                    });
                    dev.submit(&mut k)
                }
            };
            r.map(drop)
        };
        for slot in 0..qd {
            let buf = if write {
                Buf::W(OwnedIter::<Source, _>::new(
                    AlignedBuf::from_slice(4096, &vec![0x5a; bs]).unwrap(),
                ))
            } else {
                Buf::R(OwnedIter::<Dest, _>::new(
                    AlignedBuf::with_capacity(4096, bs).unwrap(),
                ))
            };
            if let Err(e) = submit(slot, buf, &mut seed, &mut started) {
                eprintln!("nbd_bench: submit: {e}");
                return ExitCode::FAILURE;
            }
        }
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs_f64(secs);
        let (mut ios, mut lat_ns, mut errors) = (0u64, 0u128, 0u64);
        let mut draining = false;
        loop {
            if let Err(e) = dev.drive(1) {
                eprintln!("nbd_bench: drive: {e}");
                return ExitCode::FAILURE;
            }
            while let Ok((slot, buf, ok)) = rx.try_recv() {
                ios += 1;
                errors += u64::from(!ok);
                lat_ns += started[slot].elapsed().as_nanos();
                if !draining && Instant::now() < end {
                    if let Err(e) = submit(slot, buf, &mut seed, &mut started) {
                        eprintln!("nbd_bench: submit: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            if Instant::now() >= end {
                draining = true;
            }
            if draining && dev.in_flight() == 0 {
                break;
            }
        }
        let el = t0.elapsed().as_secs_f64();
        println!(
            "{{\"rw\":\"{rw}\",\"qd\":{qd},\"bs\":{bs},\"ios\":{ios},\"errors\":{errors},\"secs\":{el:.3},\"iops\":{:.0},\"mib_s\":{:.1},\"lat_us\":{:.1}}}",
            ios as f64 / el,
            ios as f64 * bs as f64 / el / 1048576.0,
            lat_ns as f64 / ios.max(1) as f64 / 1000.0
        );
        if errors > 0 {
            eprintln!("nbd_bench: {errors} requests failed");
            return ExitCode::FAILURE;
        }
        ExitCode::SUCCESS
    }
}
