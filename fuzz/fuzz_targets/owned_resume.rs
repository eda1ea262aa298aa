//! Owned iterators through asynchronous direct I/O, resumed after random
//! short transfers, against a flat model of the device and the buffer.
//!
//! Each input picks a segment layout (up to 12 `AlignedBuf`s of 0 to 8
//! sectors), a direction, where the request starts, the RAM device's
//! `max_segs` (so requests split) and whether it defers completions (and in
//! which order), then a list of faults (short transfers of any length,
//! `EIO`). The target submits the owned iterator, and after each
//! completion checks the contract: the result never exceeds what was left;
//! the iterator came back advanced by exactly the bytes reported, its
//! position (count, consumed) consistent; `pos` advanced by the same; then
//! it resubmits the rest from where it stopped, until nothing is left or a
//! transfer moves nothing. At the end the device (a write) or the buffer (a
//! read) must equal the model, byte for byte: exactly the bytes reported
//! moved, in order.

#![no_main]

use arbitrary::{Result, Unstructured};
use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, PendingOrder};
use iov_iter::buf::{AlignedBuf, OwnedIter};
use iov_iter::dio::DirectIo;
use iov_iter::kiocb::Kiocb;
use iov_iter::{Dest, Errno, Error, Source};
use libfuzzer_sys::fuzz_target;

const SECTOR: usize = 512;
const DEV: usize = 64 * SECTOR;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = fuzz_one(&mut u);
});

fn pattern(seed: u8, i: usize) -> u8 {
    seed ^ (i as u8).wrapping_mul(13) ^ ((i >> 8) as u8)
}

/// The largest request: 12 segments of 8 sectors.
const MAX_TOTAL: usize = 12 * 8 * SECTOR;

/// The device's initial bytes and the write buffer's bytes, made once (a
/// per-byte loop under the fuzzer's comparison tracing cost more than the
/// whole I/O; every input used the same bytes anyway).
fn patterns() -> &'static (Vec<u8>, Vec<u8>) {
    static P: std::sync::OnceLock<(Vec<u8>, Vec<u8>)> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        (
            (0..DEV).map(|i| pattern(0xa5, i)).collect(),
            (0..MAX_TOTAL).map(|i| pattern(0x3c, i)).collect(),
        )
    })
}

/// Whether every byte of `got` is the byte of `a` or of `b` at its place:
/// whole sectors compared at once, byte by byte only in a mixed sector.
fn each_from(got: &[u8], a: &[u8], b: &[u8]) -> Option<usize> {
    let mut at = 0;
    for ((g, x), y) in got
        .chunks(SECTOR)
        .zip(a.chunks(SECTOR))
        .zip(b.chunks(SECTOR))
    {
        if g != x && g != y {
            if let Some(k) = (0..g.len()).find(|&k| g[k] != x[k] && g[k] != y[k]) {
                return Some(at + k);
            }
        }
        at += g.len();
    }
    None
}

fn fuzz_one(u: &mut Unstructured<'_>) -> Result<()> {
    let nsegs = u.int_in_range(0..=12usize)?;
    let lens: Vec<usize> = (0..nsegs)
        .map(|_| Ok(u.int_in_range(0..=8usize)? * SECTOR))
        .collect::<Result<_>>()?;
    let total: usize = lens.iter().sum();
    let write = u.arbitrary::<bool>()?;
    let start = u.int_in_range(0..=(DEV / SECTOR) as u64)? * SECTOR as u64;
    let max_segs = u.int_in_range(1..=5usize)?;
    let order = match u.int_in_range(0..=3u8)? {
        0 => None,
        1 => Some(PendingOrder::Fifo),
        2 => Some(PendingOrder::Reverse),
        _ => Some(PendingOrder::Shuffled(u.arbitrary()?)),
    };

    let (init, all_buf_bytes) = patterns();
    let init: &[u8] = init;
    let dev = MemDevice::from_vec(init.to_vec()).with_max_segs(max_segs);
    dev.defer_completions(order);

    // The model: what the device and the buffer must hold at the end.
    let buf_bytes: &[u8] = &all_buf_bytes[..total];
    let mut model_dev = init.to_vec();
    let mut model_buf = if write {
        buf_bytes.to_vec()
    } else {
        vec![0u8; total]
    };

    let mut segs = Vec::new();
    let mut off = 0;
    for &l in &lens {
        let b = if write {
            AlignedBuf::from_slice(SECTOR, &buf_bytes[off..off + l]).unwrap()
        } else {
            AlignedBuf::zeroed(SECTOR, l).unwrap()
        };
        segs.push(b);
        off += l;
    }

    let mut pos = start;
    let mut moved = 0usize; // bytes transferred so far, from the start
    let mut rounds = 0;
    let back: Vec<AlignedBuf> = if write {
        let mut iter = OwnedIter::<Source, _>::new(segs);
        loop {
            arm_fault(u, &dev)?;
            let (left, done) = round(&dev, pos, iter);
            iter = done.buf;
            let n = check(left, done.result, iter.count(), done.pos, pos)?;
            model_dev[pos as usize..pos as usize + n].copy_from_slice(&model_buf[moved..moved + n]);
            moved += n;
            pos += n as u64;
            assert_eq!(iter.consumed(), moved);
            rounds += 1;
            if n == 0 || iter.count() == 0 || rounds > 64 {
                break;
            }
        }
        iter.into_inner()
    } else {
        let mut iter = OwnedIter::<Dest, _>::new(segs);
        loop {
            arm_fault(u, &dev)?;
            let (left, done) = round(&dev, pos, iter);
            iter = done.buf;
            let n = check(left, done.result, iter.count(), done.pos, pos)?;
            model_buf[moved..moved + n].copy_from_slice(&model_dev[pos as usize..pos as usize + n]);
            moved += n;
            pos += n as u64;
            assert_eq!(iter.consumed(), moved);
            rounds += 1;
            if n == 0 || iter.count() == 0 || rounds > 64 {
                break;
            }
        }
        iter.into_inner()
    };
    // Exactly the bytes reported moved, in order. Past them, a split
    // request's later parts may have moved data that a short or failed
    // earlier part kept from being reported: each such byte is either what
    // was there before or what the transfer would have put there.
    let snap = dev.snapshot();
    let mut got = Vec::with_capacity(total);
    for b in &back {
        got.extend_from_slice(b.as_slice());
    }
    assert_eq!(got.len(), total);
    let s0 = start as usize;
    // Compared a range at a time (byte by byte only to name a mismatch).
    let first_diff = |a: &[u8], b: &[u8]| (0..a.len()).find(|&k| a[k] != b[k]).unwrap_or(0);
    let req_end = (s0 + total).min(DEV);
    // Outside the request, and in it up to the bytes reported (all of it
    // for a read): the model.
    let exact_end = if write {
        (s0 + moved).min(DEV)
    } else {
        req_end
    };
    for (a, b) in [(0, exact_end), (req_end, DEV)] {
        if snap[a..b] != model_dev[a..b] {
            let i = a + first_diff(&snap[a..b], &model_dev[a..b]);
            panic!("device byte {i} (request {s0}+{total}, moved {moved})");
        }
    }
    if exact_end < req_end {
        let k = exact_end - s0;
        if let Some(j) = each_from(
            &snap[exact_end..req_end],
            &init[exact_end..req_end],
            &buf_bytes[k..k + req_end - exact_end],
        ) {
            panic!(
                "device byte {} (request {s0}+{total}, moved {moved})",
                exact_end + j
            );
        }
    }
    if write {
        if got != model_buf {
            panic!(
                "buffer byte {} (moved {moved} of {total})",
                first_diff(&got, &model_buf)
            );
        }
    } else {
        if got[..moved] != model_buf[..moved] {
            panic!(
                "buffer byte {} (moved {moved} of {total})",
                first_diff(&got, &model_buf)
            );
        }
        // Past the bytes reported: zeros, or what the device held there.
        let zeros = vec![0u8; total];
        let dev_end = DEV.min(s0 + total).max(s0 + moved);
        let on_dev = dev_end - (s0 + moved);
        if let Some(j) = each_from(
            &got[moved..moved + on_dev],
            &zeros[..on_dev],
            &init[s0 + moved..dev_end],
        ) {
            panic!("buffer byte {} (moved {moved} of {total})", moved + j);
        }
        if got[moved + on_dev..] != zeros[moved + on_dev..] {
            panic!(
                "buffer byte {} (moved {moved} of {total}), past the device",
                moved + on_dev
            );
        }
    }
    assert_eq!(dev.pending(), 0);
    Ok(())
}

/// Arms a fault for the next transfer (or none).
fn arm_fault(u: &mut Unstructured<'_>, dev: &MemDevice) -> Result<()> {
    dev.clear_faults();
    match u.int_in_range(0..=3u8)? {
        0 => {
            let n = u.int_in_range(0..=(8 * SECTOR))?;
            dev.inject(FaultPlan::next(1, Fault::Short(n)));
        }
        1 => {
            dev.inject(FaultPlan::next(1, Fault::EIO));
        }
        _ => {}
    }
    Ok(())
}

/// One async submission of what is left, driven to completion.
fn round<I: iov_iter::dio::DioBuf>(
    dev: &MemDevice,
    pos: u64,
    iter: I,
) -> (usize, iov_iter::kiocb::Completed<I>)
where
    I: HasCount,
{
    let left = iter.left();
    let (mut kiocb, fut) = Kiocb::new_async_with(pos, iter);
    match dev.submit(&mut kiocb) {
        Ok(q) => assert!(q.is_queued()),
        // A short transfer that stopped off the 512-byte alignment leaves
        // the rest misaligned (the kernel's end of file): refused before
        // anything was queued, the buffer still in the kiocb. Dropping the
        // kiocb hands it back, cancelled.
        Err(Error::Misaligned { .. }) => {
            assert!(pos % SECTOR as u64 != 0 || left % SECTOR != 0 || kiocb_misaligned(&kiocb));
            drop(kiocb);
            let done = fut.wait();
            assert_eq!(done.result, Err(Error::Os(Errno::ECANCELED)));
            return (left, done);
        }
        Err(e) => panic!("validated request refused: {e}"),
    }
    (left, dev.block_on(fut))
}

/// Whether what is left starts inside a segment off the alignment.
fn kiocb_misaligned<I: HasCount>(kiocb: &Kiocb<I>) -> bool {
    kiocb.buf().is_some_and(|b| b.offset() % SECTOR != 0)
}

/// Bytes left in an owned iterator of either direction.
trait HasCount {
    fn left(&self) -> usize;
    fn offset(&self) -> usize;
}
impl<B> HasCount for OwnedIter<Source, B> {
    fn left(&self) -> usize {
        self.count()
    }
    fn offset(&self) -> usize {
        self.iov_offset()
    }
}
impl<B> HasCount for OwnedIter<Dest, B> {
    fn left(&self) -> usize {
        self.count()
    }
    fn offset(&self) -> usize {
        self.iov_offset()
    }
}

/// Checks one completion; returns the bytes it moved.
fn check(
    left: usize,
    result: iov_iter::Result<usize>,
    count: usize,
    new_pos: u64,
    pos: u64,
) -> Result<usize> {
    let n = match result {
        Ok(n) => n,
        // An error moves nothing (a split request's later part may fail
        // after an earlier one moved bytes: then the bytes are reported).
        // ENOSPC: a write at or past the end of the device.
        Err(Error::Os(Errno::EIO | Errno::ECANCELED | Errno::ENOSPC)) => 0,
        Err(e) => panic!("unexpected error {e}"),
    };
    assert!(n <= left, "{n} bytes reported of {left}");
    assert_eq!(
        count,
        left - n,
        "the iterator advanced by the bytes reported"
    );
    if result.is_ok() {
        assert_eq!(new_pos, pos + n as u64);
    } else {
        assert_eq!(new_pos, pos);
    }
    Ok(n)
}
