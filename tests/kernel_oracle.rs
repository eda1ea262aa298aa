//! Differential property tests with the running kernel as the oracle.
//!
//! Every case builds a random segment layout (1 to 1024 segments, empty
//! segments, odd lengths, segments at odd offsets of one larger buffer) twice:
//! once for an [`IovIter`] and once as a `struct iovec` array for the kernel.
//! Then:
//!
//! - (a) `copy_to_iter` into a `Dest` iterator must leave exactly the bytes
//!   (canary bytes between and around the segments included) that
//!   `preadv(memfd, layout, off)` leaves in the twin layout, and return what
//!   `preadv` returns;
//! - (b) `copy_from_iter` out of a `Source` iterator must produce exactly the
//!   bytes `pwritev(memfd, layout, off)` writes to the file (read back with
//!   `pread`);
//! - (c) after a random sequence of `advance`, `revert` (valid and invalid),
//!   `truncate`, `reexpand` and partial copies, every copy must land where
//!   `preadv` (or come from where `pwritev` takes it) on the layout sliced at
//!   the same stream offset and length; the kernel decides where the bytes
//!   go, the test only tracks the stream position and count.
//!
//! `UIO_MAXIOV` is 1024, the most segments `preadv`/`pwritev` accept (1025
//! gives `EINVAL`; rustix would silently clamp), so 1024-segment layouts are
//! legal and are generated on purpose, as are 1-segment ones (the kernel's
//! `ITER_UBUF` fast path in `import_iovec`).
//!
//! These tests make syscalls, so they are ignored under Miri.
#![cfg(target_os = "linux")]

use std::cmp::min;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::OwnedFd;

use iov_iter::{Dest, Direction, IoSeg, IoSegMut, IovIter, Iovec, Kind, Kvec, Source, UIO_MAXIOV};
use iov_iter_model::{Amt, Layout, Model, PosOp, canary, random_vec, split_spans};
use proptest::prelude::*;
use proptest::test_runner::{RngAlgorithm, TestCaseError};
use rustix::fs::{MemfdFlags, ftruncate, memfd_create};
use rustix::io::{pread, preadv, pwrite, pwritev};

/// Upper bound on the bytes a layout holds, so thousands of cases stay fast.
const MAX_TOTAL: usize = 256 * 1024;

type TestResult<T = ()> = Result<T, TestCaseError>;

// ---------------------------------------------------------------- layouts

/// Trailing canary bytes after a layout's last segment.
const TAIL: usize = 7;

fn seg_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        2 => Just(0usize),
        4 => 1..=16usize,
        3 => 1..=600usize,
        1 => 1..=9000usize,
    ]
}

fn gap() -> impl Strategy<Value = usize> {
    prop_oneof![
        4 => Just(0usize),
        2 => 1..=3usize,
        1 => 4..=64usize,
    ]
}

fn nr_segs() -> impl Strategy<Value = usize> {
    prop_oneof![
        1 => Just(1usize),
        1 => Just(UIO_MAXIOV),
        3 => 1..=8usize,
        3 => 1..=UIO_MAXIOV,
    ]
}

/// Segments inside one buffer: `lead` bytes before the first, then for each
/// segment a gap and a length, then [`TAIL`] bytes. Gaps and lengths are
/// often odd, so segments start at odd addresses.
fn layout() -> impl Strategy<Value = Layout> {
    (0..8usize, nr_segs())
        .prop_flat_map(|(lead, n)| (Just(lead), proptest::collection::vec((gap(), seg_len()), n)))
        .prop_map(|(lead, mut segs)| {
            // Keep the total moderate: clip the lengths once the cap is hit
            // (this also makes trailing empty segments common in big layouts).
            let mut total = 0;
            for s in &mut segs {
                s.1 = min(s.1, MAX_TOTAL - total);
                total += s.1;
            }
            Layout {
                lead,
                segs,
                tail: TAIL,
            }
        })
}

/// A length relative to the layout's total: exactly it, a fraction of it, or
/// a bit more.
#[derive(Debug, Clone, Copy)]
enum RelLen {
    Exact,
    Permille(u16),
    Plus(u16),
}

impl RelLen {
    fn of(self, total: usize) -> usize {
        match self {
            RelLen::Exact => total,
            RelLen::Permille(p) => total * p as usize / 1000,
            RelLen::Plus(k) => total + k as usize,
        }
    }
}

fn rel_len() -> impl Strategy<Value = RelLen> {
    prop_oneof![
        2 => Just(RelLen::Exact),
        2 => (0..=1000u16).prop_map(RelLen::Permille),
        1 => (1..=5000u16).prop_map(RelLen::Plus),
    ]
}

/// Chunk size for copying in several calls (`usize::MAX`: one call).
fn chunk() -> impl Strategy<Value = usize> {
    prop_oneof![
        3 => Just(usize::MAX),
        2 => 1..=4096usize,
        1 => 1..=300_000usize,
    ]
}

fn file_off() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), 0..=9000u64]
}

// ---------------------------------------------------------------- helpers

/// The spans restricted to the stream range `[from, to)` of their
/// concatenation: the layout a kernel iovec has once `from` bytes have been
/// consumed and it is truncated to `to - from`.
fn trim(spans: &[(usize, usize)], from: usize, to: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut cum = 0;
    for &(start, len) in spans {
        let (lo, hi) = (from.max(cum), to.min(cum + len));
        if lo < hi {
            out.push((start + (lo - cum), hi - lo));
        }
        cum += len;
    }
    out
}

fn memfd() -> OwnedFd {
    memfd_create("iov-iter-oracle", MemfdFlags::CLOEXEC).expect("memfd_create")
}

fn pwrite_all(fd: &OwnedFd, mut data: &[u8], mut off: u64) {
    while !data.is_empty() {
        let n = pwrite(fd, data, off).expect("pwrite");
        assert!(n > 0);
        data = &data[n..];
        off += n as u64;
    }
}

fn pread_exact(fd: &OwnedFd, mut buf: &mut [u8], mut off: u64) {
    while !buf.is_empty() {
        let n = pread(fd, &mut *buf, off).expect("pread");
        assert!(n > 0, "short file");
        buf = &mut buf[n..];
        off += n as u64;
    }
}

/// The kernel's answer: `preadv` into `spans` of `buf` from `fd` at `off`.
fn kernel_preadv(fd: &OwnedFd, buf: &mut [u8], spans: &[(usize, usize)], off: u64) -> usize {
    // rustix clamps the array to UIO_MAXIOV silently; never hand it more.
    assert!(spans.len() <= UIO_MAXIOV);
    let mut iov: Vec<IoSliceMut<'_>> = split_spans(buf, spans)
        .into_iter()
        .map(IoSliceMut::new)
        .collect();
    preadv(fd, &mut iov, off).expect("preadv")
}

/// The kernel's answer: `pwritev` from `spans` of `buf` to `fd` at `off`.
fn kernel_pwritev(fd: &OwnedFd, buf: &[u8], spans: &[(usize, usize)], off: u64) -> usize {
    assert!(spans.len() <= UIO_MAXIOV);
    let iov: Vec<IoSlice<'_>> = spans
        .iter()
        .map(|&(s, l)| IoSlice::new(&buf[s..s + l]))
        .collect();
    pwritev(fd, &iov, off).expect("pwritev")
}

fn assert_same_image(ours: &[u8], kernel: &[u8], what: &str) -> TestResult {
    prop_assert_eq!(ours.len(), kernel.len());
    if ours == kernel {
        return Ok(());
    }
    if let Some(i) = ours.iter().zip(kernel).position(|(a, b)| a != b) {
        return Err(TestCaseError::fail(format!(
            "{what}: first difference at byte {i}: ours {:#04x}, kernel {:#04x}",
            ours[i], kernel[i]
        )));
    }
    Ok(())
}

/// `copy_to_iter` of `src` in chunks of `chunk` bytes until the source or
/// the iterator runs out; checks every return value; returns the total.
fn drive_to<K: Kind>(mut it: IovIter<'_, Dest, K>, src: &[u8], chunk: usize) -> TestResult<usize> {
    let mut cur = 0usize;
    loop {
        let end = min(src.len(), cur.saturating_add(chunk));
        let (want, before) = (end - cur, it.count());
        let k = it.copy_to_iter(&src[cur..end]);
        prop_assert_eq!(k, min(want, before));
        prop_assert_eq!(it.count(), before - k);
        cur += k;
        if k < want || cur == src.len() {
            return Ok(cur);
        }
    }
}

/// `copy_from_iter` into `dst` in chunks; checks every return value and
/// that nothing past the returned prefix is written; returns the total.
fn drive_from<K: Kind>(
    mut it: IovIter<'_, Source, K>,
    dst: &mut [u8],
    chunk: usize,
) -> TestResult<usize> {
    let mut cur = 0usize;
    loop {
        let end = min(dst.len(), cur.saturating_add(chunk));
        let (want, before) = (end - cur, it.count());
        let k = it.copy_from_iter(&mut dst[cur..end]);
        prop_assert_eq!(k, min(want, before));
        prop_assert_eq!(it.count(), before - k);
        cur += k;
        if k < want || cur == dst.len() {
            return Ok(cur);
        }
    }
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // No regression files: the suite must not create files in tests/.
        failure_persistence: None,
        // ChaCha, the default, dominates the run time in a debug build.
        rng_algorithm: RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    }
}

// ------------------------------------------------- (a) and (b): whole copies

fn check_copy_to_iter(
    layout: &Layout,
    seed: u64,
    off: u64,
    src_len: RelLen,
    chunk: usize,
    kvec: bool,
) -> TestResult {
    let spans = layout.spans();
    let src = random_vec(seed, src_len.of(layout.total()));
    let mut ours = canary(0, layout.buf_len());
    let mut kernel = ours.clone();

    let mut segs: Vec<IoSegMut<'_>> = split_spans(&mut ours, &spans)
        .into_iter()
        .map(IoSegMut::new)
        .collect();
    let copied = if kvec {
        drive_to(IovIter::<Dest, Kvec>::new(&mut segs), &src, chunk)?
    } else {
        drive_to(IovIter::<Dest, Iovec>::new(&mut segs), &src, chunk)?
    };
    drop(segs);

    let fd = memfd();
    pwrite_all(&fd, &src, off);
    let ret = kernel_preadv(&fd, &mut kernel, &spans, off);
    prop_assert_eq!(copied, ret, "bytes copied vs preadv's return");
    assert_same_image(&ours, &kernel, "destination buffer")
}

fn check_copy_from_iter(
    layout: &Layout,
    seed: u64,
    off: u64,
    dst_len: RelLen,
    chunk: usize,
    kvec: bool,
) -> TestResult {
    let spans = layout.spans();
    let total = layout.total();
    let buf = random_vec(seed, layout.buf_len());
    let dst_len = dst_len.of(total);
    let mut out = canary(0, dst_len + 64);

    let segs: Vec<IoSeg<'_>> = spans
        .iter()
        .map(|&(s, l)| IoSeg::new(&buf[s..s + l]))
        .collect();
    let copied = if kvec {
        drive_from(
            IovIter::<Source, Kvec>::new(&segs),
            &mut out[..dst_len],
            chunk,
        )?
    } else {
        drive_from(
            IovIter::<Source, Iovec>::new(&segs),
            &mut out[..dst_len],
            chunk,
        )?
    };

    let fd = memfd();
    let ret = kernel_pwritev(&fd, &buf, &spans, off);
    prop_assert_eq!(ret, total, "pwritev wrote short");
    let mut written = vec![0u8; ret];
    pread_exact(&fd, &mut written, off);
    prop_assert_eq!(copied, min(dst_len, ret));
    assert_same_image(&out[..copied], &written[..copied], "copied-out bytes")?;
    let fresh = canary(0, out.len());
    assert_same_image(&out[copied..], &fresh[copied..], "bytes past the copy")
}

proptest! {
    #![proptest_config(config(2000))]

    /// (a) `copy_to_iter` on a Dest iovec/kvec iterator == `preadv`.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn copy_to_iter_matches_preadv(
        layout in layout(),
        seed in any::<u64>(),
        off in file_off(),
        src_len in rel_len(),
        chunk in chunk(),
        kvec in any::<bool>(),
    ) {
        check_copy_to_iter(&layout, seed, off, src_len, chunk, kvec)?;
    }

    /// (b) `copy_from_iter` on a Source iovec/kvec iterator == `pwritev`.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn copy_from_iter_matches_pwritev(
        layout in layout(),
        seed in any::<u64>(),
        off in file_off(),
        dst_len in rel_len(),
        chunk in chunk(),
        kvec in any::<bool>(),
    ) {
        check_copy_from_iter(&layout, seed, off, dst_len, chunk, kvec)?;
    }
}

// ---------------------------------------- (c) position ops, partial copies

/// An amount resolved against the state when the op runs: the base is the
/// bytes consumed for a revert, what the segments still hold for a
/// reexpand, `count` for the others; `Over` is invalid for revert /
/// reexpand.
fn amt() -> impl Strategy<Value = Amt> {
    prop_oneof![
        4 => (0..=1000u16).prop_map(Amt::Permille),
        1 => (0..=64u16).prop_map(Amt::Over),
        2 => (0..=40u16).prop_map(Amt::Abs),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Op {
    /// Advance, revert (valid, past the start, above `MAX_RW_COUNT`),
    /// truncate, reexpand.
    Pos(PosOp),
    /// A copy of an amount of `count`.
    Copy(Amt),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => amt().prop_map(|a| Op::Pos(PosOp::Advance(a))),
        3 => amt().prop_map(|a| Op::Pos(PosOp::Revert(a))),
        1 => Just(Op::Pos(PosOp::RevertHuge)),
        2 => amt().prop_map(|a| Op::Pos(PosOp::Truncate(a))),
        1 => Just(Op::Pos(PosOp::TruncateMax)),
        2 => amt().prop_map(|a| Op::Pos(PosOp::Reexpand(a))),
        3 => amt().prop_map(Op::Copy),
    ]
}

/// Position op `i` on `it` and on its model `m`, checking the result.
fn pos_op<D: Direction, K: Kind>(
    it: &mut IovIter<'_, D, K>,
    m: &mut Model,
    p: PosOp,
    i: usize,
) -> TestResult {
    let step = p.resolve(m);
    let (got, want) = m.step(it, step);
    prop_assert_eq!(got, want, "op {}: {:?}", i, step);
    Ok(())
}

/// The stream position after op `i`: `count` and `capacity`.
fn check_pos<D: Direction, K: Kind>(it: &IovIter<'_, D, K>, m: &Model, i: usize) -> TestResult {
    prop_assert_eq!(it.count(), m.count, "op {}: count", i);
    prop_assert_eq!(it.capacity(), m.total - m.pos, "op {}: capacity", i);
    Ok(())
}

/// Runs `ops` on `it` and on its model `m`. Only the model's stream
/// position (`pos`, `count`, `total`) is checked: the kernel decides where
/// the bytes go.
fn check_ops_dest<K: Kind>(
    mut it: IovIter<'_, Dest, K>,
    mut m: Model,
    kernel: &mut [u8],
    spans: &[(usize, usize)],
    ops: &[Op],
    seed: u64,
) -> TestResult {
    let fd = memfd();
    // The last op copies whatever is left (and a bit more).
    let last = Op::Copy(Amt::Over(3));
    for (i, &op) in ops.iter().chain([&last]).enumerate() {
        match op {
            Op::Copy(a) => {
                let src = random_vec(seed ^ (i as u64).wrapping_mul(0x9e37_79b9), a.of(m.count));
                let k = it.copy_to_iter(&src);
                // The kernel: the same data as a file, read into the layout
                // sliced at [pos, pos + count).
                ftruncate(&fd, 0).expect("ftruncate");
                pwrite_all(&fd, &src, 0);
                let ret = kernel_preadv(&fd, kernel, &trim(spans, m.pos, m.pos + m.count), 0);
                prop_assert_eq!(k, ret, "op {}: copy_to_iter vs preadv", i);
                let (start, _) = m.copy(k);
                m.write(start, &src[..k]);
            }
            Op::Pos(p) => pos_op(&mut it, &mut m, p, i)?,
        }
        check_pos(&it, &m, i)?;
    }
    Ok(())
}

/// The same for a source over `spans` of `buf`.
fn check_ops_source<K: Kind>(
    mut it: IovIter<'_, Source, K>,
    mut m: Model,
    buf: &[u8],
    spans: &[(usize, usize)],
    ops: &[Op],
) -> TestResult {
    let fd = memfd();
    let last = Op::Copy(Amt::Over(3));
    for (i, &op) in ops.iter().chain([&last]).enumerate() {
        match op {
            Op::Copy(a) => {
                let n = a.of(m.count);
                let mut out = canary(0, n + 16);
                let k = it.copy_from_iter(&mut out[..n]);
                // The kernel: what writev takes from the layout sliced at
                // [pos, pos + n) (clamped to count).
                ftruncate(&fd, 0).expect("ftruncate");
                let ret = kernel_pwritev(&fd, buf, &trim(spans, m.pos, m.pos + min(n, m.count)), 0);
                prop_assert_eq!(k, ret, "op {}: copy_from_iter vs pwritev", i);
                let mut written = vec![0u8; ret];
                pread_exact(&fd, &mut written, 0);
                assert_same_image(&out[..k], &written, "copied-out bytes")?;
                assert_same_image(&out[k..], &canary(0, n + 16)[k..], "bytes past the copy")?;
                m.copy(k);
            }
            Op::Pos(p) => pos_op(&mut it, &mut m, p, i)?,
        }
        check_pos(&it, &m, i)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(1000))]

    /// (c) Position ops then partial copies into a Dest iterator: every copy
    /// lands where `preadv` on the trimmed layout puts it.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn position_ops_then_copy_to_iter_match_preadv(
        layout in layout(),
        ops in proptest::collection::vec(op(), 0..=8),
        seed in any::<u64>(),
        kvec in any::<bool>(),
    ) {
        let spans = layout.spans();
        let mut ours = canary(0, layout.buf_len());
        let mut kernel = ours.clone();
        let kind = if kvec { Kvec::ITER_TYPE } else { Iovec::ITER_TYPE };
        let m = layout.model(kind, &ours);
        let mut segs: Vec<IoSegMut<'_>> = split_spans(&mut ours, &spans)
            .into_iter()
            .map(IoSegMut::new)
            .collect();
        if kvec {
            check_ops_dest(IovIter::<Dest, Kvec>::new(&mut segs), m, &mut kernel, &spans, &ops, seed)?;
        } else {
            check_ops_dest(IovIter::<Dest, Iovec>::new(&mut segs), m, &mut kernel, &spans, &ops, seed)?;
        }
        drop(segs);
        assert_same_image(&ours, &kernel, "destination buffer")?;
    }
}

proptest! {
    #![proptest_config(config(1000))]

    /// (c') The same for a Source iterator against `pwritev`.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn position_ops_then_copy_from_iter_match_pwritev(
        layout in layout(),
        ops in proptest::collection::vec(op(), 0..=8),
        seed in any::<u64>(),
        kvec in any::<bool>(),
    ) {
        let spans = layout.spans();
        let buf = random_vec(seed, layout.buf_len());
        let segs: Vec<IoSeg<'_>> = spans
            .iter()
            .map(|&(s, l)| IoSeg::new(&buf[s..s + l]))
            .collect();
        let kind = if kvec { Kvec::ITER_TYPE } else { Iovec::ITER_TYPE };
        let m = layout.model(kind, &buf);
        if kvec {
            check_ops_source(IovIter::<Source, Kvec>::new(&segs), m, &buf, &spans, &ops)?;
        } else {
            check_ops_source(IovIter::<Source, Iovec>::new(&segs), m, &buf, &spans, &ops)?;
        }
    }
}

/// IOV_MAX note: `UIO_MAXIOV` (1024) is the most segments `preadv` accepts,
/// so a 1024-segment layout is legal and reaches the kernel whole (rustix
/// clamps longer arrays to 1024 silently, which is why the helpers above
/// assert the length). One-byte segments, odd addresses.
#[test]
#[cfg_attr(miri, ignore)]
fn uio_maxiov_segments_pass_whole() {
    assert_eq!(UIO_MAXIOV, 1024);
    let src = random_vec(42, 2 * UIO_MAXIOV);
    let fd = memfd();
    pwrite_all(&fd, &src, 0);
    let layout = Layout {
        lead: 1,
        segs: vec![(1, 1); UIO_MAXIOV],
        tail: TAIL,
    };
    let spans = layout.spans();
    let mut ours = canary(0, layout.buf_len());
    let mut kernel = ours.clone();
    assert_eq!(kernel_preadv(&fd, &mut kernel, &spans, 0), UIO_MAXIOV);
    let mut segs: Vec<IoSegMut<'_>> = split_spans(&mut ours, &spans)
        .into_iter()
        .map(IoSegMut::new)
        .collect();
    let mut it = IovIter::<Dest, Iovec>::new(&mut segs);
    assert_eq!(it.nr_segs(), UIO_MAXIOV);
    assert_eq!(it.copy_to_iter(&src), UIO_MAXIOV);
    assert_eq!(it.nr_segs(), 0);
    drop(segs);
    assert_eq!(ours, kernel);
}
