//! The NBD backend against a real server: `qemu-nbd --cache=none` over a
//! file the test wrote (every 4 KiB block `b` holds `common::block(b,
//! 4096)`), on a unix socket or loopback port of the test's own, killed by
//! its pid. Round trips sync and async (64 in flight, over more than one
//! connection), every byte verified; the server killed mid-I/O and
//! restarted; a connection reset; a read-only export; errored replies;
//! FUA, flush and trim; a device dropped with I/O in flight; the FFI
//! declarations compiled against `<libnbd.h>`; and the bad input of the
//! NBD table in `iov_iter::bad_input` (URIs, no server, misaligned
//! requests, flags NBD has no command for).
//!
//! Each test skips loudly (prints `SKIPPED` and the reason) where libnbd
//! cannot be loaded, qemu-nbd is missing or cannot start, or (the header
//! check) the header or a C compiler is missing. Waits on completions are
//! bounded (a thread drives, the test waits on a channel with a timeout),
//! so a hang fails the test instead of stalling it.
#![cfg(all(target_os = "linux", feature = "nbd"))]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{QemuNbd, block, skip, unix_listening};
use iov_iter::backend::nbd::{self, NbdDevice};
use iov_iter::buf::{AlignedBuf, OwnedIter};
use iov_iter::dio::DirectIo;
use iov_iter::kiocb::{Completed, IocbFlags, Kiocb, Submitted};
use iov_iter::{Dest, Errno, Error, IoSeg, IoSegMut, IovIter, Kvec, Source, Ubuf};

const BLK: usize = QemuNbd::BLOCK;
/// 8 MiB images.
const IMG: usize = 8 << 20;
/// Longest any test waits for one completion.
const TIMEOUT: Duration = Duration::from_secs(20);

/// The image's pattern over `[off, off + len)`.
fn pattern(off: usize, len: usize) -> Vec<u8> {
    (off..off + len)
        .map(|i| common::byte((i / BLK) as u64, i % BLK))
        .collect()
}

/// A new pattern (`version`) for writes.
fn fresh(off: usize, len: usize, version: u8) -> Vec<u8> {
    (off..off + len)
        .map(|i| (i as u8).wrapping_mul(13) ^ version ^ ((i >> 12) as u8))
        .collect()
}

fn connect(srv: &QemuNbd) -> NbdDevice {
    NbdDevice::connect(&srv.uri)
        .unwrap_or_else(|e| panic!("connect {}: {e} ({:?})", srv.uri, nbd::last_error_message()))
}

/// Drives `dev` on a thread of its own until nothing is in flight.
fn drive_in_background(dev: &Arc<NbdDevice>) -> std::thread::JoinHandle<()> {
    let dev = Arc::clone(dev);
    std::thread::spawn(move || {
        while dev.in_flight() > 0 {
            dev.drive(1).expect("drive");
        }
    })
}

type Done = (usize, Completed<OwnedIter<Dest, AlignedBuf>>);
type DoneW = (usize, Completed<OwnedIter<Source, AlignedBuf>>);

/// Waits for `n` completions on `rx`, each within [`TIMEOUT`], and then
/// checks that no further one arrives.
fn collect<T>(rx: &mpsc::Receiver<(usize, T)>, n: usize) -> Vec<(usize, T)> {
    let mut out = Vec::with_capacity(n);
    let mut seen = HashSet::new();
    for _ in 0..n {
        let (id, c) = rx
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|_| panic!("completion {} of {n} did not arrive: a hang", out.len()));
        assert!(seen.insert(id), "request {id} completed twice");
        out.push((id, c));
    }
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "a completion arrived after every request had completed once"
    );
    out.sort_by_key(|(id, _)| *id);
    out
}

#[test]
#[cfg_attr(miri, ignore)]
fn ffi_declarations_match_libnbd_header() {
    let name = "ffi_declarations_match_libnbd_header";
    let header = std::path::Path::new("/usr/include/libnbd.h");
    if !header.exists() {
        return skip(name, "no /usr/include/libnbd.h (Debian libnbd-dev)");
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    if std::process::Command::new(&cc)
        .arg("--version")
        .output()
        .is_err()
    {
        return skip(name, "no C compiler (cc)");
    }
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let compile = |src: &str, file: &str| {
        let p = dir.join(file);
        std::fs::write(&p, src).unwrap();
        let out = std::process::Command::new(&cc)
            .args(["-fsyntax-only", "-Wall", "-Werror", "-std=gnu11"])
            .arg(&p)
            .output()
            .expect("run cc");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let src = nbd::c_check_source();
    assert!(src.lines().filter(|l| l.starts_with("extern ")).count() >= 28);
    let (ok, err) = compile(&src, "nbd_ffi_check.c");
    assert!(
        ok,
        "the FFI declarations disagree with libnbd.h:\n{err}\n{src}"
    );
    // The check has teeth: one wrong parameter type is a compile error.
    let bad = src.replacen(
        "nbd_aio_pread (struct nbd_handle *, void *, size_t,",
        "nbd_aio_pread (struct nbd_handle *, void *, uint32_t,",
        1,
    );
    assert_ne!(bad, src);
    let (ok, err) = compile(&bad, "nbd_ffi_check_bad.c");
    assert!(!ok && err.contains("conflicting types"), "{err}");
}

#[test]
#[cfg_attr(miri, ignore)]
fn connect_reports_the_export() {
    let Some(srv) = QemuNbd::start("connect_reports_the_export", IMG, &[]) else {
        return;
    };
    let dev = NbdDevice::builder()
        .connections(3)
        .connect(&srv.uri)
        .unwrap();
    let info = dev.info();
    eprintln!(
        "qemu-nbd export: {info:?}; multi-conn refusal: {:?}",
        dev.multi_conn_refused()
    );
    assert_eq!(info.size, IMG as u64);
    assert_eq!(dev.capacity(), Some(IMG as u64));
    assert!(!info.read_only && info.can_flush && info.can_fua && info.can_trim);
    assert!(info.structured_replies);
    assert_eq!(dev.async_mode(), iov_iter::dio::AsyncMode::Queued);
    let align = dev.dio_align();
    assert_eq!(align.mem, 1);
    assert_eq!(u64::from(align.offset), info.block_min.max(1));
    if info.can_multi_conn {
        assert_eq!((dev.connections(), dev.multi_conn_refused()), (3, None));
    } else {
        assert_eq!(dev.connections(), 1);
        assert!(dev.multi_conn_refused().is_some());
    }
    // Nobody listening: the errno, and libnbd's message.
    drop(srv);
    let err = NbdDevice::connect("nbd+unix:///?socket=/nonexistent/dir/sock").unwrap_err();
    eprintln!(
        "connect to nothing: {err:?}: {:?}",
        nbd::last_error_message()
    );
    assert!(matches!(err, Error::Os(_)));
    assert!(nbd::last_error_message().is_some());
}

#[test]
#[cfg_attr(miri, ignore)]
fn sync_round_trip_vectored_every_byte() {
    let Some(srv) = QemuNbd::start("sync_round_trip_vectored_every_byte", IMG, &[]) else {
        return;
    };
    let dev = connect(&srv);
    // The whole image, in one request of 8 segments (8 commands in
    // flight at once), some larger than one command can carry.
    let mut parts: Vec<Vec<u8>> = (0..8).map(|_| vec![0u8; IMG / 8]).collect();
    let mut segs: Vec<IoSegMut<'_>> = parts.iter_mut().map(|p| IoSegMut::new(p)).collect();
    let mut dst = IovIter::<Dest, Kvec>::new(&mut segs);
    let mut k = Kiocb::new_sync(0);
    assert_eq!(
        dev.direct_io(&mut k, &mut dst).unwrap(),
        Submitted::Done(IMG)
    );
    assert_eq!((dst.count(), k.pos), (0, IMG as u64));
    assert!(parts.concat() == pattern(0, IMG), "image read back differs");

    // Write 3 segments of a fresh pattern at 1 MiB, read back in one.
    let off = 1 << 20;
    let data = fresh(off, 3 * 64 * 1024, 1);
    let chunks: Vec<&[u8]> = data.chunks(64 * 1024).collect();
    let segs: Vec<IoSeg<'_>> = chunks.iter().map(|c| IoSeg::new(c)).collect();
    let mut src = IovIter::<Source, Kvec>::new(&segs);
    let mut k = Kiocb::new_sync(off as u64);
    k.flags |= IocbFlags::DSYNC; // FUA
    assert_eq!(
        dev.direct_io(&mut k, &mut src).unwrap(),
        Submitted::Done(data.len())
    );
    let mut back = vec![0u8; data.len() + 2 * BLK];
    let mut dst = IovIter::<Dest, Ubuf>::new(&mut back);
    assert_eq!(
        dev.direct_io(&mut Kiocb::new_sync((off - BLK) as u64), &mut dst)
            .unwrap(),
        Submitted::Done(data.len() + 2 * BLK)
    );
    assert!(back[..BLK] == pattern(off - BLK, BLK)[..]);
    assert!(back[BLK..BLK + data.len()] == data[..]);
    assert!(back[BLK + data.len()..] == pattern(off + data.len(), BLK)[..]);
    // A second device (a new connection) sees it, and so does the file.
    let other = connect(&srv);
    let mut again = vec![0u8; data.len()];
    let mut dst = IovIter::<Dest, Ubuf>::new(&mut again);
    assert!(
        other
            .direct_io(&mut Kiocb::new_sync(off as u64), &mut dst)
            .is_ok()
    );
    assert!(again == data);
    let file = std::fs::read(&srv.file).unwrap();
    assert!(file[off..off + data.len()] == data[..]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn async_64_in_flight_over_several_connections() {
    let Some(srv) = QemuNbd::start("async_64_in_flight_over_several_connections", IMG, &[]) else {
        return;
    };
    let dev = Arc::new(
        NbdDevice::builder()
            .connections(4)
            .connect(&srv.uri)
            .unwrap(),
    );
    eprintln!(
        "connections: {} ({:?})",
        dev.connections(),
        dev.multi_conn_refused()
    );
    const N: usize = 64;
    // 64 writes of 4..=64 KiB, all in flight before anything is driven.
    let (tx, rx) = mpsc::channel::<DoneW>();
    let mut layout = Vec::new();
    let mut off = 0usize;
    for i in 0..N {
        let len = BLK * (1 + i % 16);
        let data = fresh(off, len, 7);
        let buf = OwnedIter::<Source, _>::new(AlignedBuf::from_slice(BLK, &data).unwrap());
        let tx = tx.clone();
        let mut k = Kiocb::with_callback(off as u64, buf, move |c| tx.send((i, c)).unwrap());
        assert!(dev.submit(&mut k).unwrap().is_queued());
        layout.push((off, len, data));
        off += len + BLK; // a gap of untouched pattern between writes
    }
    assert_eq!(dev.in_flight(), N);
    assert!(
        dev.commands_in_flight() >= 32,
        "{}",
        dev.commands_in_flight()
    );
    let t = drive_in_background(&dev);
    for (i, c) in collect(&rx, N) {
        assert_eq!(c.result, Ok(layout[i].1), "write {i}");
        assert_eq!(c.buf.count(), 0);
    }
    t.join().unwrap();

    // 64 reads of each written range and the gap after it, in flight.
    let (tx, rx) = mpsc::channel::<Done>();
    for (i, (off, len, _)) in layout.iter().enumerate() {
        let buf = OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(BLK, len + BLK).unwrap());
        let tx = tx.clone();
        let mut k = Kiocb::with_callback(*off as u64, buf, move |c| tx.send((i, c)).unwrap());
        assert!(dev.submit(&mut k).unwrap().is_queued());
    }
    assert!(dev.commands_in_flight() >= 32);
    let t = drive_in_background(&dev);
    for (i, c) in collect(&rx, N) {
        let (off, len, data) = &layout[i];
        assert_eq!(c.result, Ok(len + BLK), "read {i}");
        let bytes = c.buf.into_inner();
        assert!(bytes[..*len] == data[..], "read {i}: written bytes differ");
        assert!(
            bytes[*len..] == pattern(off + len, BLK)[..],
            "read {i}: gap differs"
        );
    }
    t.join().unwrap();
    // And through the future API, on this thread.
    let buf = OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(BLK, IMG).unwrap());
    let (mut k, fut) = Kiocb::new_async_with(0, buf);
    assert!(dev.submit(&mut k).unwrap().is_queued());
    let done = dev.block_on(fut);
    assert_eq!(done.result, Ok(IMG));
    let mut want = pattern(0, IMG);
    for (off, len, data) in &layout {
        want[*off..off + len].copy_from_slice(data);
    }
    assert!(done.buf.into_inner()[..] == want[..]);
}

/// Submits `n` async requests of `len` bytes (reads at even ids, writes
/// of a fresh pattern at odd ids, every write's range its own), then kills
/// the server with them in flight; every one completes exactly once within
/// the timeout, each buffer back; what failed has a connection errno.
/// Returns the writes that succeeded (offset, data) and the errnos seen.
fn kill_mid_io(
    srv: &mut QemuNbd,
    n: usize,
    len: usize,
    drive_first: bool,
) -> (Vec<(usize, Vec<u8>)>, Vec<Errno>) {
    let dev = Arc::new(connect(srv));
    let (rtx, rrx) = mpsc::channel::<Done>();
    let (wtx, wrx) = mpsc::channel::<DoneW>();
    let mut writes = Vec::new();
    for i in 0..n {
        let off = i * len;
        if i % 2 == 0 {
            let buf = OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(BLK, len).unwrap());
            let tx = rtx.clone();
            let mut k = Kiocb::with_callback(off as u64, buf, move |c| tx.send((i, c)).unwrap());
            assert!(dev.submit(&mut k).unwrap().is_queued());
        } else {
            let data = fresh(off, len, 3);
            let buf = OwnedIter::<Source, _>::new(AlignedBuf::from_slice(BLK, &data).unwrap());
            let tx = wtx.clone();
            let mut k = Kiocb::with_callback(off as u64, buf, move |c| tx.send((i, c)).unwrap());
            assert!(dev.submit(&mut k).unwrap().is_queued());
            writes.push((i, off, data));
        }
    }
    assert_eq!(dev.in_flight(), n);
    // Let a little go through (or not), then SIGKILL the server by its pid.
    if drive_first {
        dev.drive(1).unwrap();
    }
    eprintln!(
        "killing qemu-nbd pid {} with {} in flight",
        srv.pid(),
        dev.in_flight()
    );
    srv.kill();
    let t = drive_in_background(&dev);
    let mut errnos = Vec::new();
    let reads = collect(&rrx, n.div_ceil(2));
    let wrote = collect(&wrx, n / 2);
    t.join().unwrap();
    for (i, c) in &reads {
        match c.result {
            Ok(got) => {
                assert_eq!(got, len, "read {i}");
                let off = i * len;
                assert!(c.buf.buf()[..] == pattern(off, len)[..], "read {i} data");
            }
            Err(e) => errnos.push(e.errno()),
        }
        assert_eq!(c.buf.buf().capacity(), len, "read {i}: buffer came back");
    }
    let mut ok_writes = Vec::new();
    for ((i, c), (wi, off, data)) in wrote.iter().zip(&writes) {
        assert_eq!(i, wi);
        match c.result {
            Ok(got) => {
                assert_eq!(got, len, "write {i}");
                ok_writes.push((*off, data.clone()));
            }
            Err(e) => errnos.push(e.errno()),
        }
        assert!(c.buf.buf()[..] == data[..], "write {i}: buffer came back");
    }
    assert!(!errnos.is_empty(), "nothing failed: the kill came too late");
    for e in &errnos {
        assert!(
            [
                Errno::ENOTCONN,
                Errno::ECONNRESET,
                Errno::EPIPE,
                Errno::ESHUTDOWN,
                Errno::EIO
            ]
            .contains(e),
            "unexpected errno {e:?}"
        );
    }
    // The connection is dead: later requests fail at once.
    assert!(dev.is_dead());
    let start = Instant::now();
    let mut one = vec![0u8; BLK];
    let mut dst = IovIter::<Dest, Ubuf>::new(&mut one);
    let err = dev
        .direct_io(&mut Kiocb::new_sync(0), &mut dst)
        .unwrap_err();
    let buf = OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(BLK, BLK).unwrap());
    let (mut k, mut fut) = Kiocb::new_async_with(0, buf);
    assert!(dev.submit(&mut k).unwrap().is_queued());
    let later = fut.try_take().expect("failed at once, not queued");
    assert!(later.result.is_err());
    assert!(start.elapsed() < Duration::from_secs(1));
    eprintln!("after the kill: sync {err:?}, async {:?}", later.result);
    (ok_writes, errnos)
}

#[test]
#[cfg_attr(miri, ignore)]
fn server_killed_mid_io_then_restarted() {
    let Some(mut srv) = QemuNbd::start("server_killed_mid_io_then_restarted", IMG, &[]) else {
        return;
    };
    let len = 256 * 1024;
    let n = IMG / len; // 32 requests of 256 KiB, covering the image
    let (ok_writes, errnos) = kill_mid_io(&mut srv, n, len, true);
    eprintln!(
        "unix socket, SIGKILL: {} of {n} failed with {:?}; {} writes had completed",
        errnos.len(),
        errnos.iter().collect::<HashSet<_>>(),
        ok_writes.len()
    );
    // Restart on the same image; reconnect: nothing acknowledged is lost,
    // and what was never written is intact.
    assert!(srv.restart(), "qemu-nbd restart");
    let dev = connect(&srv);
    let mut img = vec![0u8; IMG];
    let mut dst = IovIter::<Dest, Ubuf>::new(&mut img);
    assert_eq!(
        dev.direct_io(&mut Kiocb::new_sync(0), &mut dst).unwrap(),
        Submitted::Done(IMG)
    );
    for (off, data) in &ok_writes {
        assert!(
            img[*off..off + len] == data[..],
            "acknowledged write at {off} lost"
        );
    }
    for i in (0..n).step_by(2) {
        let off = i * len;
        assert!(
            img[off..off + len] == pattern(off, len)[..],
            "unwritten range {off} changed"
        );
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn server_killed_during_a_sync_transfer() {
    let Some(mut srv) = QemuNbd::start("server_killed_during_a_sync_transfer", IMG, &[]) else {
        return;
    };
    let dev = Arc::new(connect(&srv));
    let (tx, rx) = mpsc::channel();
    let d = Arc::clone(&dev);
    let t = std::thread::spawn(move || {
        // Whole-image reads (8 commands of 1 MiB each in flight), until
        // one fails.
        let mut parts: Vec<Vec<u8>> = (0..8).map(|_| vec![0u8; IMG / 8]).collect();
        let mut rounds = 0u32;
        loop {
            let mut segs: Vec<IoSegMut<'_>> = parts.iter_mut().map(|p| IoSegMut::new(p)).collect();
            let mut dst = IovIter::<Dest, Kvec>::new(&mut segs);
            match d.direct_io(&mut Kiocb::new_sync(0), &mut dst) {
                Ok(Submitted::Done(n)) if n == IMG => rounds += 1,
                other => {
                    tx.send((rounds, other)).unwrap();
                    return;
                }
            }
            if rounds == 1 {
                tx.send((rounds, Ok(Submitted::Done(IMG)))).unwrap();
            }
        }
    });
    // One full round first, then the kill, mid-transfer.
    let (r, first) = rx.recv_timeout(TIMEOUT).expect("first round");
    assert_eq!((r, first), (1, Ok(Submitted::Done(IMG))));
    srv.kill();
    let (rounds, res) = rx.recv_timeout(TIMEOUT).expect("the sync transfer hung");
    t.join().unwrap();
    eprintln!("sync transfer after {rounds} rounds, server killed: {res:?}");
    // A short count (the commands before the failure) or the error.
    match res {
        Err(e) => assert!(
            [Errno::ENOTCONN, Errno::ECONNRESET, Errno::EPIPE].contains(&e.errno()),
            "{e:?}"
        ),
        Ok(Submitted::Done(n)) => assert!(n < IMG && n % (IMG / 8) == 0, "{n}"),
        Ok(other) => panic!("{other:?}"),
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn connection_reset_over_tcp() {
    let size = 64 << 20;
    let Some(mut srv) = QemuNbd::start_tcp("connection_reset_over_tcp", size, &[]) else {
        return;
    };
    // 64 requests of 1 MiB, half of them writes, not driven before the
    // kill: the server has unread data in its socket when it dies, so the
    // kernel resets the connection (RST) rather than closing it.
    let len = 1 << 20;
    let (_, errnos) = kill_mid_io(&mut srv, size / len, len, false);
    eprintln!(
        "TCP, SIGKILL with unread data: errnos {:?}",
        errnos.iter().collect::<HashSet<_>>()
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn read_only_export_refuses_writes() {
    let Some(srv) = QemuNbd::start("read_only_export_refuses_writes", IMG, &["-r"]) else {
        return;
    };
    let dev = connect(&srv);
    assert!(dev.info().read_only);
    // Reads work.
    let mut back = vec![0u8; 64 * 1024];
    let mut dst = IovIter::<Dest, Ubuf>::new(&mut back);
    assert!(dev.direct_io(&mut Kiocb::new_sync(4096), &mut dst).is_ok());
    assert!(back == pattern(4096, 64 * 1024));
    // Writes are refused before any I/O, sync and async: EROFS.
    let data = vec![1u8; BLK];
    let mut src = IovIter::<Source, Ubuf>::new(&data);
    let err = dev
        .direct_io(&mut Kiocb::new_sync(0), &mut src)
        .unwrap_err();
    assert_eq!(err, Error::Os(Errno::EROFS));
    assert_eq!(src.count(), BLK);
    let buf = OwnedIter::<Source, _>::new(AlignedBuf::from_slice(BLK, &data).unwrap());
    let (mut k, mut fut) = Kiocb::new_async_with(0, buf);
    assert!(dev.submit(&mut k).unwrap().is_queued());
    let done = fut.try_take().expect("refused at once");
    assert_eq!(done.result, Err(Error::Os(Errno::EROFS)));
    assert_eq!(done.buf.count(), BLK);
    assert!(dev.trim(0, BLK as u64).is_err());
    // With the client's checks off the write reaches the server, whose
    // error reply (EPERM) comes back typed.
    let raw = NbdDevice::builder()
        .client_checks(false)
        .connect(&srv.uri)
        .unwrap();
    let mut src = IovIter::<Source, Ubuf>::new(&data);
    let err = raw
        .direct_io(&mut Kiocb::new_sync(0), &mut src)
        .unwrap_err();
    // (qemu-nbd 10 answers EINVAL; the protocol's code for it is EPERM.)
    eprintln!("qemu-nbd -r, write sent anyway: {err:?}");
    let refused = [Error::Os(Errno::EPERM), Error::Os(Errno::EINVAL)];
    assert!(refused.contains(&err), "{err:?}");
    let buf = OwnedIter::<Source, _>::new(AlignedBuf::from_slice(BLK, &data).unwrap());
    let (mut k, fut) = Kiocb::new_async_with(0, buf);
    assert!(raw.submit(&mut k).unwrap().is_queued());
    assert_eq!(raw.block_on(fut).result, Err(err));
    assert!(std::fs::read(&srv.file).unwrap()[..BLK] == block(0, BLK)[..]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn past_the_end_and_errored_replies() {
    let Some(srv) = QemuNbd::start("past_the_end_and_errored_replies", IMG, &[]) else {
        return;
    };
    let dev = connect(&srv);
    // Block-device rules, checked by the client: a read crossing the end
    // is short, one at the end reads 0 bytes, a write there is ENOSPC.
    let mut back = vec![0u8; 2 * BLK];
    let mut dst = IovIter::<Dest, Ubuf>::new(&mut back);
    let r = dev.direct_io(&mut Kiocb::new_sync((IMG - BLK) as u64), &mut dst);
    assert_eq!(r.unwrap(), Submitted::Done(BLK));
    assert!(back[..BLK] == pattern(IMG - BLK, BLK)[..]);
    let mut dst = IovIter::<Dest, Ubuf>::new(&mut back);
    assert_eq!(
        dev.direct_io(&mut Kiocb::new_sync(IMG as u64), &mut dst)
            .unwrap(),
        Submitted::Done(0)
    );
    let data = vec![9u8; 2 * BLK];
    let mut src = IovIter::<Source, Ubuf>::new(&data);
    let err = dev
        .direct_io(&mut Kiocb::new_sync(IMG as u64), &mut src)
        .unwrap_err();
    assert_eq!(err, Error::Os(Errno::ENOSPC));
    // Async, crossing the end: the part inside is read, the rest is not.
    let buf = OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(BLK, 3 * BLK).unwrap());
    let (mut k, fut) = Kiocb::new_async_with((IMG - BLK) as u64, buf);
    assert!(dev.submit(&mut k).unwrap().is_queued());
    let done = dev.block_on(fut);
    assert_eq!(done.result, Ok(BLK));
    // Without the client's checks the server answers: an errored reply
    // (qemu-nbd: EINVAL for a request past the end), sync and async, and
    // the connection stays usable.
    let raw = NbdDevice::builder()
        .client_checks(false)
        .connect(&srv.uri)
        .unwrap();
    let mut dst = IovIter::<Dest, Ubuf>::new(&mut back);
    let err = raw
        .direct_io(&mut Kiocb::new_sync((IMG - BLK) as u64), &mut dst)
        .unwrap_err();
    eprintln!("read past the end, server's reply: {err:?}");
    assert_eq!(err, Error::Os(Errno::EINVAL));
    let buf = OwnedIter::<Source, _>::new(AlignedBuf::from_slice(BLK, &data).unwrap());
    let (mut k, fut) = Kiocb::new_async_with(IMG as u64, buf);
    assert!(raw.submit(&mut k).unwrap().is_queued());
    let done = raw.block_on(fut);
    eprintln!("write past the end, server's reply: {:?}", done.result);
    assert!(matches!(done.result, Err(Error::Os(e)) if e == Errno::EINVAL || e == Errno::ENOSPC));
    assert_eq!(done.buf.count(), 2 * BLK);
    // A request of two segments whose second fails: the first counts, as
    // a sequential transfer would report.
    let (mut a, mut b) = (vec![0u8; BLK], vec![0u8; BLK]);
    let mut segs = [IoSegMut::new(&mut a), IoSegMut::new(&mut b)];
    let mut dst = IovIter::<Dest, Kvec>::new(&mut segs);
    let r = raw.direct_io(&mut Kiocb::new_sync((IMG - BLK) as u64), &mut dst);
    assert_eq!(r.unwrap(), Submitted::Done(BLK));
    assert!(a == pattern(IMG - BLK, BLK));
    let mut dst = IovIter::<Dest, Ubuf>::new(&mut back);
    assert!(raw.direct_io(&mut Kiocb::new_sync(0), &mut dst).is_ok());
}

#[test]
#[cfg_attr(miri, ignore)]
fn fua_flush_and_trim() {
    let Some(srv) = QemuNbd::start("fua_flush_and_trim", IMG, &["--discard=unmap"]) else {
        return;
    };
    let dev = connect(&srv);
    assert!(dev.info().can_fua && dev.info().can_trim);
    // RWF_DSYNC / RWF_SYNC writes (FUA), sync and async; then a flush.
    let data = fresh(0, 4 * BLK, 5);
    let mut src = IovIter::<Source, Ubuf>::new(&data);
    let mut k = Kiocb::new_sync(0);
    k.flags |= IocbFlags::SYNC | IocbFlags::DSYNC;
    assert_eq!(
        dev.direct_io(&mut k, &mut src).unwrap(),
        Submitted::Done(4 * BLK)
    );
    let buf = OwnedIter::<Source, _>::new(AlignedBuf::from_slice(BLK, &data).unwrap());
    let (mut k, fut) = Kiocb::new_async_with((8 * BLK) as u64, buf);
    k.flags |= IocbFlags::DSYNC;
    assert!(dev.submit(&mut k).unwrap().is_queued());
    assert_eq!(dev.block_on(fut).result, Ok(4 * BLK));
    dev.flush().unwrap();
    let file = std::fs::read(&srv.file).unwrap();
    assert!(file[..4 * BLK] == data[..] && file[8 * BLK..12 * BLK] == data[..]);
    // The same with a flush after each write instead of FUA.
    let noflag = NbdDevice::builder().fua(false).connect(&srv.uri).unwrap();
    let data2 = fresh(0, 4 * BLK, 6);
    let segs = [IoSeg::new(&data2[..BLK]), IoSeg::new(&data2[BLK..])];
    let mut src = IovIter::<Source, Kvec>::new(&segs);
    let mut k = Kiocb::new_sync((16 * BLK) as u64);
    k.flags |= IocbFlags::DSYNC;
    assert_eq!(
        noflag.direct_io(&mut k, &mut src).unwrap(),
        Submitted::Done(4 * BLK)
    );
    let mut futs = Vec::new();
    for i in 0..8u64 {
        let buf = OwnedIter::<Source, _>::new(AlignedBuf::from_slice(BLK, &data2).unwrap());
        let (mut k, fut) = Kiocb::new_async_with((20 + 4 * i) * BLK as u64, buf);
        k.flags |= IocbFlags::DSYNC;
        assert!(noflag.submit(&mut k).unwrap().is_queued());
        futs.push(fut);
    }
    for fut in futs {
        assert_eq!(noflag.block_on(fut).result, Ok(4 * BLK));
    }
    assert_eq!(noflag.in_flight(), 0);
    let file = std::fs::read(&srv.file).unwrap();
    for i in 0..9 {
        let at = (16 + 4 * i) * BLK;
        assert!(file[at..at + 4 * BLK] == data2[..], "flushed write {i}");
    }
    // Trim 1 MiB at 2 MiB (qemu-nbd --discard=unmap punches a hole: reads
    // zeroes), the neighbours untouched.
    let (off, len) = (2 << 20, 1 << 20);
    dev.trim(off as u64, len as u64).unwrap();
    let mut back = vec![0xffu8; len + 2 * BLK];
    let mut dst = IovIter::<Dest, Ubuf>::new(&mut back);
    assert!(
        dev.direct_io(&mut Kiocb::new_sync((off - BLK) as u64), &mut dst)
            .is_ok()
    );
    assert!(back[..BLK] == pattern(off - BLK, BLK)[..]);
    assert!(
        back[BLK..BLK + len].iter().all(|&b| b == 0),
        "trimmed range not zero"
    );
    assert!(back[BLK + len..] == pattern(off + len, BLK)[..]);
    // Client checks on trim.
    assert_eq!(
        dev.trim(IMG as u64, BLK as u64).unwrap_err().errno(),
        Errno::EINVAL
    );
    assert_eq!(dev.trim(0, 0), Ok(()));
}

#[test]
#[cfg_attr(miri, ignore)]
fn dropping_the_device_completes_in_flight_io() {
    let Some(srv) = QemuNbd::start("dropping_the_device_completes_in_flight_io", IMG, &[]) else {
        return;
    };
    let dev = connect(&srv);
    let (tx, rx) = mpsc::channel::<Done>();
    const N: usize = 32;
    for i in 0..N {
        let buf = OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(BLK, 64 * 1024).unwrap());
        let tx = tx.clone();
        let mut k = Kiocb::with_callback((i * 64 * 1024) as u64, buf, move |c| {
            tx.send((i, c)).unwrap()
        });
        assert!(dev.submit(&mut k).unwrap().is_queued());
    }
    assert_eq!(dev.in_flight(), N);
    drop(dev);
    let done = collect(&rx, N);
    for (_, c) in &done {
        assert_eq!(c.result, Err(Error::Os(Errno::ECANCELED)));
        assert_eq!(c.buf.buf().capacity(), 64 * 1024);
    }
    // The server is fine: a new connection works.
    let dev = connect(&srv);
    let mut back = vec![0u8; BLK];
    let mut dst = IovIter::<Dest, Ubuf>::new(&mut back);
    assert!(dev.direct_io(&mut Kiocb::new_sync(0), &mut dst).is_ok());
    assert!(back == block(0, BLK));
}

#[test]
#[cfg_attr(miri, ignore)]
fn threads_share_one_device() {
    let Some(srv) = QemuNbd::start("threads_share_one_device", IMG, &[]) else {
        return;
    };
    let dev = Arc::new(
        NbdDevice::builder()
            .connections(2)
            .connect(&srv.uri)
            .unwrap(),
    );
    // Four threads, each on its own quarter: async writes driven by the
    // thread itself (while the others' sync reads wait on the same
    // connections), then sync reads verifying every byte.
    let quarter = IMG / 4;
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let dev = Arc::clone(&dev);
            std::thread::spawn(move || {
                let base = t * quarter;
                for round in 0..4u8 {
                    let mut futs = Vec::new();
                    for i in 0..32 {
                        let off = base + i * (quarter / 32);
                        let data = fresh(off, quarter / 32, round);
                        let buf = OwnedIter::<Source, _>::new(
                            AlignedBuf::from_slice(BLK, &data).unwrap(),
                        );
                        let (mut k, fut) = Kiocb::new_async_with(off as u64, buf);
                        assert!(dev.submit(&mut k).unwrap().is_queued());
                        futs.push(fut);
                    }
                    for fut in futs {
                        assert_eq!(dev.block_on(fut).result, Ok(quarter / 32));
                    }
                    let mut back = vec![0u8; quarter];
                    let mut dst = IovIter::<Dest, Ubuf>::new(&mut back);
                    let r = dev
                        .direct_io(&mut Kiocb::new_sync(base as u64), &mut dst)
                        .unwrap();
                    assert_eq!(r, Submitted::Done(quarter));
                    let want: Vec<u8> = (0..32)
                        .flat_map(|i| fresh(base + i * (quarter / 32), quarter / 32, round))
                        .collect();
                    assert!(back == want, "thread {t} round {round}");
                }
            })
        })
        .collect();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for t in threads {
            let r = t.join();
            tx.send(r.is_ok()).unwrap();
        }
    });
    for _ in 0..4 {
        let r = rx.recv_timeout(TIMEOUT * 3);
        if !matches!(r, Ok(true)) {
            eprintln!(
                "qemu-nbd log: {}",
                std::fs::read_to_string(srv.log()).unwrap_or_default()
            );
        }
        assert!(r.expect("a thread hung"), "a thread failed");
    }
}

// ---------------------------------------------------------------------------
// Bad input: the rows of the NBD table in `iov_iter::bad_input`.

/// URIs libnbd cannot parse, a NUL byte, and URIs that reach no server (a
/// missing socket, a socket nobody listens on, a TCP port nobody listens
/// on) are typed errors with libnbd's errno and message; without libnbd
/// every connect is `ENOSYS`, the loader's message kept.
#[test]
#[cfg_attr(miri, ignore)]
fn uris_that_do_not_parse_or_reach_no_server_are_typed_errors() {
    let name = "uris_that_do_not_parse_or_reach_no_server_are_typed_errors";
    if let Err(why) = nbd::available() {
        for uri in ["nbd://127.0.0.1/", "not a uri"] {
            assert_eq!(
                NbdDevice::connect(uri).unwrap_err(),
                Error::Os(Errno::ENOSYS)
            );
            assert_eq!(nbd::last_error_message().as_deref(), Some(why));
        }
        return skip(name, "libnbd cannot be loaded: only ENOSYS checked");
    }
    let e = NbdDevice::connect("nbd://127.0.0.1/\0export").unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    assert_eq!(e.errno(), Errno::EINVAL);
    for uri in [
        "",
        "not a uri",
        "http://127.0.0.1/",
        "nbd://[::1/",
        "nbd+unix:///",
    ] {
        let e = NbdDevice::connect(uri).unwrap_err();
        let msg = nbd::last_error_message();
        eprintln!("{uri:?}: {e:?}: {msg:?}");
        assert_eq!(e.errno(), Errno::EINVAL, "{uri:?}: {msg:?}");
        assert!(msg.is_some_and(|m| !m.is_empty()));
    }
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("nbd_uris_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.sock");
    let dead = dir.join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&dead).unwrap()); // the file stays
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // closed again at once
    let refused = Errno::from_raw(rustix::io::Errno::CONNREFUSED.raw_os_error());
    for (uri, want) in [
        (
            format!("nbd+unix:///?socket={}", missing.display()),
            Errno::from_raw(rustix::io::Errno::NOENT.raw_os_error()),
        ),
        (format!("nbd+unix:///?socket={}", dead.display()), refused),
        (format!("nbd://127.0.0.1:{port}/"), refused),
    ] {
        let e = NbdDevice::connect(&uri).unwrap_err();
        let msg = nbd::last_error_message();
        eprintln!("{uri}: {e:?}: {msg:?}");
        assert_eq!(e, Error::Os(want), "{uri}: {msg:?}");
        assert!(msg.is_some_and(|m| !m.is_empty()));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A second `qemu-nbd` over an image, with `args` before the image's
/// name, on a socket of its own; killed on drop.
struct ExtraServer {
    child: std::process::Child,
    uri: String,
}

impl ExtraServer {
    fn start(image: &std::path::Path, args: &[&str], file_arg: String) -> Option<ExtraServer> {
        let sock = image.with_extension("extra.sock");
        let _ = std::fs::remove_file(&sock);
        let log = std::fs::File::create(image.with_extension("extra.log")).ok()?;
        let child = std::process::Command::new("qemu-nbd")
            .args(["--persistent", "--shared=4"])
            .arg(format!("--socket={}", sock.display()))
            .args(args)
            .arg(file_arg)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .ok()?;
        let mut s = ExtraServer {
            child,
            uri: format!("nbd+unix:///?socket={}", sock.display()),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !unix_listening(&sock) {
            if Instant::now() > deadline || s.child.try_wait().ok().flatten().is_some() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(s)
    }
}

impl Drop for ExtraServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// On an export with a minimum block size (qemu's `blkdebug` filter with
/// `align=4096` under the raw format), requests whose position or length
/// is not a multiple of it are `Misaligned` (`EINVAL`) before any I/O,
/// trim too; memory alignment stays 1. On every export the flags NBD has
/// no command for (`RWF_NOWAIT`, `RWF_ATOMIC`) are `EOPNOTSUPP`, sync and
/// async, and a trim where the server takes none (a read-only export) is
/// `EOPNOTSUPP`.
#[test]
#[cfg_attr(miri, ignore)]
fn misaligned_requests_and_flags_the_server_does_not_take() {
    let name = "misaligned_requests_and_flags_the_server_does_not_take";
    let Some(srv) = QemuNbd::start(name, IMG, &["-r"]) else {
        return;
    };
    // Read-only: no trim at all (EOPNOTSUPP, before EROFS), writes EROFS.
    let ro = connect(&srv);
    assert!(
        ro.info().read_only && !ro.info().can_trim,
        "{:?}",
        ro.info()
    );
    assert_eq!(
        ro.trim(0, BLK as u64).unwrap_err().errno(),
        Errno::EOPNOTSUPP
    );
    // Flags NBD has no command for, on reads and writes, sync and async.
    for flag in [IocbFlags::NOWAIT, IocbFlags::ATOMIC] {
        let mut back = vec![0u8; BLK];
        let mut dst = IovIter::<Dest, Ubuf>::new(&mut back);
        let mut k = Kiocb::new_sync(0);
        k.flags |= flag;
        let e = ro.direct_io(&mut k, &mut dst).unwrap_err();
        assert_eq!(e.errno(), Errno::EOPNOTSUPP, "{flag:?}: {e:?}");
        assert_eq!(dst.count(), BLK);
        let buf = OwnedIter::<Source, _>::new(AlignedBuf::zeroed(BLK, BLK).unwrap());
        let (k, _fut) = Kiocb::new_async_with(0, buf);
        let mut k = k.with_flags(flag);
        let e = ro.submit(&mut k).unwrap_err();
        assert_eq!(e.errno(), Errno::EOPNOTSUPP, "{flag:?}: {e:?}");
        assert!(
            k.has_completion() && k.buf().is_some(),
            "the kiocb is intact"
        );
    }
    assert_eq!(ro.commands_in_flight(), 0);
    drop(ro);
    // An export with a 4 KiB minimum block size.
    let json = format!(
        "json:{{\"driver\":\"raw\",\"file\":{{\"driver\":\"blkdebug\",\"align\":4096,\
         \"image\":{{\"driver\":\"file\",\"filename\":\"{}\"}}}}}}",
        srv.file.display()
    );
    let Some(aligned) = ExtraServer::start(&srv.file, &["-r"], json) else {
        return skip(name, "qemu-nbd refuses the blkdebug filter");
    };
    let dev = NbdDevice::connect(&aligned.uri).unwrap();
    eprintln!("blkdebug align=4096 export: {:?}", dev.info());
    if dev.info().block_min != 4096 {
        return skip(
            name,
            &format!("the export advertises {:?}", dev.info().block_min),
        );
    }
    assert_eq!((dev.dio_align().mem, dev.dio_align().offset), (1, 4096));
    let mut back = vec![0u8; 3 * BLK];
    for (pos, len) in [(512u64, BLK), (0, 512), (0, BLK + 512), (100, 100)] {
        let mut dst = IovIter::<Dest, Ubuf>::new(&mut back[..len]);
        let e = dev
            .direct_io(&mut Kiocb::new_sync(pos), &mut dst)
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::Misaligned {
                    offset_align: 4096,
                    ..
                }
            ),
            "{pos}+{len}: {e:?}"
        );
        assert_eq!(e.errno(), Errno::EINVAL);
        assert_eq!(dst.count(), len, "nothing read");
        let buf = OwnedIter::<Dest, _>::new(AlignedBuf::with_capacity(1, len).unwrap());
        let (mut k, _fut) = Kiocb::new_async_with(pos, buf);
        assert!(matches!(dev.submit(&mut k), Err(Error::Misaligned { .. })));
        assert!(k.has_completion() && k.buf().is_some());
    }
    assert_eq!(dev.commands_in_flight(), 0);
    // Memory alignment is 1: a buffer at an odd address is fine.
    let mut dst = IovIter::<Dest, Ubuf>::new(&mut back[1..1 + BLK]);
    assert_eq!(
        dev.direct_io(&mut Kiocb::new_sync(BLK as u64), &mut dst),
        Ok(Submitted::Done(BLK))
    );
    assert!(back[1..1 + BLK] == pattern(BLK, BLK)[..]);
}
