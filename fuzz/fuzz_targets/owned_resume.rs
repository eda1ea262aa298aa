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

    let dev = MemDevice::new(DEV).with_max_segs(max_segs);
    let dev_seed = 0xa5;
    let init: Vec<u8> = (0..DEV).map(|i| pattern(dev_seed, i)).collect();
    dev.write_at(0, &init);
    dev.defer_completions(order);

    // The model: what the device and the buffer must hold at the end.
    let buf_seed = 0x3c;
    let buf_bytes: Vec<u8> = (0..total).map(|i| pattern(buf_seed, i)).collect();
    let mut model_dev = init.clone();
    let mut model_buf = if write { buf_bytes.clone() } else { vec![0u8; total] };

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
            for i in 0..n {
                model_dev[pos as usize + i] = model_buf[moved + i];
            }
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
    let got: Vec<u8> = back.iter().flat_map(|b| b.as_slice().iter().copied()).collect();
    assert_eq!(got.len(), total);
    let s0 = start as usize;
    for i in 0..DEV {
        let in_req = i >= s0 && i < s0 + total;
        let ok = if !in_req || !write || i < s0 + moved {
            snap[i] == model_dev[i]
        } else {
            snap[i] == init[i] || snap[i] == buf_bytes[i - s0]
        };
        assert!(ok, "device byte {i} (request {s0}+{total}, moved {moved})");
    }
    for i in 0..total {
        let ok = if write || i < moved {
            got[i] == model_buf[i]
        } else {
            got[i] == 0 || (s0 + i < DEV && got[i] == init[s0 + i])
        };
        assert!(ok, "buffer byte {i} (moved {moved} of {total})");
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
    assert_eq!(count, left - n, "the iterator advanced by the bytes reported");
    if result.is_ok() {
        assert_eq!(new_pos, pos + n as u64);
    } else {
        assert_eq!(new_pos, pos);
    }
    Ok(n)
}
