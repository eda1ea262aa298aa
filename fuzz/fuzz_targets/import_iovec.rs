//! `import_iovec`: arrays of `(base, len)` pairs against an independent
//! reference of the documented rules (0 segments: empty; one: `Ubuf`,
//! clamped then `access_ok`; more than 1024: EINVAL; any length above
//! `isize::MAX`: EINVAL, the whole array checked first; a null base with a
//! non-zero length or a wrapping range: EFAULT; the total clamped to
//! `MAX_RW_COUNT`).
//!
//! # Why every call is sound
//!
//! `import_iovec` is `unsafe`: each pair it *accepts* must describe memory
//! valid for the direction (readable for a source; writable, unaliased and
//! disjoint for a destination) for the iterator's lifetime. The target makes
//! three kinds of calls:
//!
//! 1. **Owned pairs.** Every base points into a buffer this target owns, and
//!    every length is clipped to that buffer (or the pair is `(null, 0)`,
//!    which promises nothing). For a destination the pairs are disjoint;
//!    for a source they may overlap, since overlapping reads are fine. The
//!    buffer is only accessed through the iterator while it lives (the raw
//!    base pointer is derived once from `as_mut_ptr` and no reference to the
//!    buffer is held meanwhile). So the contract holds for every pair,
//!    accepted or not, and the target copies through the iterator.
//! 2. **Big owned source.** Up to 1024 overlapping source pairs over one
//!    4 MiB buffer add up to more than `MAX_RW_COUNT`, so the clamping runs
//!    on real memory. Still owned and readable: case 1.
//! 3. **Arbitrary pairs (error paths).** Bases and lengths come from the
//!    input. The call is made *only* when the reference predicts an error,
//!    so no pair is accepted and the contract asks nothing. The target
//!    asserts on the `Result` alone and never uses an iterator built from
//!    such pairs: if the crate wrongly accepted, the assertion panics at
//!    once and the iterator is dropped untouched (building and dropping an
//!    `IovIter` stores the pairs and reads no byte behind them). When the
//!    reference predicts success for arbitrary pairs, the call is skipped.

#![no_main]

use arbitrary::{Result, Unstructured};
use iov_iter::{
    AnyIter, Dest, Direction, Error, IovecArray, MAX_RW_COUNT, PAGE_SIZE, Source, UIO_FASTIOV,
    UIO_MAXIOV, UserIovec, import_iovec,
};
use libfuzzer_sys::fuzz_target;

const BUF: usize = 2 * PAGE_SIZE;
const BIG: usize = 4 << 20;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = fuzz_one(&mut u);
});

/// What the reference expects of a successful import.
#[derive(Debug, PartialEq)]
struct Expect {
    ubuf: bool,
    /// Segment lengths after clamping.
    lens: Vec<usize>,
}

/// The documented rules, written independently of `src/import.rs`.
fn reference(pairs: &[(usize, usize)]) -> Result<Expect, Error> {
    // access_ok: a non-empty range below the user address-space end,
    // without wrapping; NULL refused on its own.
    let bad_range = |index: usize, b: usize, l: usize| -> Option<Error> {
        if l == 0 {
            return None;
        }
        if b == 0 {
            return Some(Error::NullSegment { index });
        }
        match (b.checked_add(l), iov_iter::USER_ADDR_END) {
            (None, _) => Some(Error::BadAddress { index }),
            (Some(end), Some(top)) if end > top => Some(Error::BadAddress { index }),
            _ => None,
        }
    };
    if let [(b, l)] = *pairs {
        if l > isize::MAX as usize {
            return Err(Error::SegmentTooLong { index: 0, len: l });
        }
        let l = l.min(MAX_RW_COUNT);
        if let Some(e) = bad_range(0, b, l) {
            return Err(e);
        }
        return Ok(Expect {
            ubuf: true,
            lens: vec![l],
        });
    }
    if pairs.len() > UIO_MAXIOV {
        return Err(Error::TooManySegments(pairs.len()));
    }
    if let Some(index) = pairs.iter().position(|&(_, l)| l > isize::MAX as usize) {
        return Err(Error::SegmentTooLong {
            index,
            len: pairs[index].1,
        });
    }
    let mut total = 0usize;
    let mut lens = Vec::with_capacity(pairs.len());
    for (index, &(b, l)) in pairs.iter().enumerate() {
        if let Some(e) = bad_range(index, b, l) {
            return Err(e);
        }
        let l = l.min(MAX_RW_COUNT - total);
        total += l;
        lens.push(l);
    }
    Ok(Expect { ubuf: false, lens })
}

fn pattern(i: usize) -> u8 {
    ((i as u32).wrapping_mul(0x9E37_79B1) >> 24) as u8
}

fn small_len(u: &mut Unstructured, max: usize) -> Result<usize> {
    Ok(match u.int_in_range(0u8..=3)? {
        0 => 0,
        1 => u.int_in_range(1..=8)?,
        _ => u.int_in_range(0..=max)?,
    }
    .min(max))
}

fn fuzz_one(u: &mut Unstructured) -> Result<()> {
    match u.int_in_range(0u8..=9)? {
        0..=2 => owned::<Source>(u),
        3..=5 => owned::<Dest>(u),
        6 => big_source(u),
        _ => arbitrary_pairs(u),
    }
}

/// The number of pairs: usually a few, sometimes around the limits.
fn count(u: &mut Unstructured) -> Result<usize> {
    Ok(match u.int_in_range(0u8..=9)? {
        0 => 0,
        1 => 1,
        2 => u.int_in_range(UIO_FASTIOV - 1..=UIO_FASTIOV + 1)?,
        3 => *u.choose(&[UIO_MAXIOV - 1, UIO_MAXIOV, UIO_MAXIOV + 1])?,
        4 => u.int_in_range(UIO_MAXIOV + 1..=UIO_MAXIOV + 64)?,
        _ => u.int_in_range(0..=24)?,
    })
}

/// Case 1: every pair lies in `buf` (disjoint for a destination) or is
/// `(null, 0)`.
fn owned<D: Direction>(u: &mut Unstructured) -> Result<()>
where
    for<'a> AnyIter<'a, D>: Copier,
{
    let mut buf: Vec<u8> = (0..BUF).map(pattern).collect();
    let n = count(u)?;
    // (offset in buf or None for a null pair, len)
    let mut specs: Vec<(Option<usize>, usize)> = Vec::with_capacity(n);
    let mut cursor = 0;
    for _ in 0..n {
        if u.ratio(1u8, 10)? {
            specs.push((None, 0));
            continue;
        }
        if D::IS_SOURCE {
            let start = u.int_in_range(0..=BUF)?;
            specs.push((Some(start), small_len(u, BUF - start)?));
        } else {
            // Disjoint: increasing, never overlapping.
            let gap = u.int_in_range(0..=16usize)?.min(BUF - cursor);
            cursor += gap;
            let len = small_len(u, (BUF - cursor).min(64))?;
            specs.push((Some(cursor), len));
            cursor += len;
        }
    }
    let reuse = u.arbitrary::<bool>()?;
    let mut storage = IovecArray::new();
    if reuse {
        // A previous import into the same storage must not leak into this one.
        let junk = [UserIovec::new(core::ptr::null_mut(), 0); 12];
        // SAFETY: every pair is (null, 0), which promises nothing.
        let it = unsafe { import_iovec::<D>(&junk, &mut storage) }.expect("empty pairs");
        assert_eq!(it.count(), 0);
    }
    // One raw pointer for the whole buffer; no reference to `buf` is used
    // until the iterator is gone.
    let base = buf.as_mut_ptr();
    let pairs: Vec<UserIovec> = specs
        .iter()
        .map(|&(off, len)| match off {
            Some(o) => UserIovec::new(base.wrapping_add(o), len),
            None => UserIovec::new(core::ptr::null_mut(), 0),
        })
        .collect();
    let addrs: Vec<(usize, usize)> = pairs.iter().map(|p| (p.base as usize, p.len)).collect();
    let want = reference(&addrs);
    // SAFETY: case 1 of the module docs: each pair is in `buf`, which lives
    // until the end of this function and is only reached through `base`
    // meanwhile; destination pairs are disjoint; null pairs are empty.
    let got = unsafe { import_iovec::<D>(&pairs, &mut storage) };
    let exp = match (got, want) {
        (Err(g), Err(w)) => {
            assert_eq!(g, w);
            return Ok(());
        }
        (Ok(it), Ok(exp)) => {
            check_shape(&it, &exp);
            let mut it = it;
            it.copy_through(&specs, base, u)?;
            exp
        }
        (g, w) => panic!(
            "import_iovec gave {:?}, reference {w:?} for {addrs:?}",
            g.map(|it| (it.iter_type(), it.count()))
        ),
    };
    if !exp.ubuf {
        assert_eq!(storage.len(), n);
        if n > UIO_FASTIOV {
            assert!(storage.spilled(), "{n} segments stayed inline");
        } else if !reuse {
            assert!(!storage.spilled(), "{n} segments spilled");
        }
    }
    // After the iterator is gone: check what it wrote (or that a source was
    // left alone).
    if !D::IS_SOURCE {
        let mut want: Vec<u8> = (0..BUF).map(pattern).collect();
        let mut k = 0usize;
        for &(off, len) in &specs {
            if let Some(o) = off {
                for b in &mut want[o..o + len] {
                    *b = fill_byte(k);
                    k += 1;
                }
            }
        }
        assert_eq!(buf, want, "destination bytes");
    } else {
        assert!(buf.iter().enumerate().all(|(i, &b)| b == pattern(i)));
    }
    Ok(())
}

fn fill_byte(k: usize) -> u8 {
    (k as u8).wrapping_mul(13).wrapping_add(1)
}

fn check_shape<D: Direction>(it: &AnyIter<'_, D>, exp: &Expect) {
    let total: usize = exp.lens.iter().sum();
    assert_eq!(it.count(), total, "count");
    if exp.ubuf {
        assert!(matches!(it, AnyIter::Ubuf(_)), "one segment is a Ubuf");
        assert_eq!(it.nr_segs(), 1);
    } else {
        assert!(
            matches!(it, AnyIter::Iovec(_)),
            "not one segment is an Iovec"
        );
        assert_eq!(it.nr_segs(), exp.lens.len());
    }
    assert!(it.is_user_backed());
    // The chunks are the non-empty clamped segments, in order.
    let got: Vec<usize> = it.raw_chunks().map(|(_, l)| l).collect();
    let want: Vec<usize> = exp.lens.iter().copied().filter(|&l| l != 0).collect();
    assert_eq!(got, want, "chunk lengths");
}

/// Copies through an imported iterator and checks the bytes.
trait Copier {
    fn copy_through(
        &mut self,
        specs: &[(Option<usize>, usize)],
        base: *mut u8,
        u: &mut Unstructured,
    ) -> Result<()>;
}

impl Copier for AnyIter<'_, Source> {
    fn copy_through(
        &mut self,
        specs: &[(Option<usize>, usize)],
        base: *mut u8,
        _u: &mut Unstructured,
    ) -> Result<()> {
        let mut out = vec![0u8; self.count()];
        assert_eq!(self.copy_from_iter(&mut out), out.len());
        let want: Vec<u8> = specs
            .iter()
            .filter_map(|&(off, len)| off.map(|o| (o, len)))
            .flat_map(|(o, len)| (o..o + len).map(pattern))
            .collect();
        assert_eq!(out, want, "bytes read through the import");
        let _ = base;
        Ok(())
    }
}

impl Copier for AnyIter<'_, Dest> {
    fn copy_through(
        &mut self,
        _specs: &[(Option<usize>, usize)],
        _base: *mut u8,
        _u: &mut Unstructured,
    ) -> Result<()> {
        let src: Vec<u8> = (0..self.count()).map(fill_byte).collect();
        assert_eq!(self.copy_to_iter(&src), src.len());
        assert!(self.is_empty());
        Ok(())
    }
}

/// Case 2: overlapping source pairs over one 4 MiB buffer, adding up to
/// more than `MAX_RW_COUNT`: the clamp runs on real memory.
fn big_source(u: &mut Unstructured) -> Result<()> {
    let mut buf = vec![0u8; BIG];
    for (i, b) in buf[..PAGE_SIZE].iter_mut().enumerate() {
        *b = pattern(i);
    }
    let n = u.int_in_range(2..=UIO_MAXIOV)?;
    let mut specs = Vec::with_capacity(n);
    for _ in 0..n {
        let (start, len) = match u.int_in_range(0u8..=3)? {
            0 => (0, BIG),
            1 => {
                let s = u.int_in_range(0..=BIG)?;
                (s, BIG - s)
            }
            2 => (u.int_in_range(0..=PAGE_SIZE)?, u.int_in_range(0..=8)?),
            _ => (0, u.int_in_range(BIG / 2..=BIG)?),
        };
        specs.push((start, len));
    }
    let base = buf.as_mut_ptr();
    let pairs: Vec<UserIovec> = specs
        .iter()
        .map(|&(s, l)| UserIovec::new(base.wrapping_add(s), l))
        .collect();
    let addrs: Vec<(usize, usize)> = pairs.iter().map(|p| (p.base as usize, p.len)).collect();
    let exp = reference(&addrs).expect("owned pairs");
    let mut storage = IovecArray::new();
    // SAFETY: case 2 of the module docs: every pair lies in `buf`, read
    // only, alive and not otherwise accessed until the iterator is dropped.
    let mut it = unsafe { import_iovec::<Source>(&pairs, &mut storage) }.expect("owned pairs");
    check_shape(&it, &exp);
    // Read a little at the start, then the last bytes before the clamp.
    let total: usize = exp.lens.iter().sum();
    let head = total.min(64);
    let mut out = vec![0u8; head];
    assert_eq!(it.copy_from_iter(&mut out), head);
    let want: Vec<u8> = flat_bytes(&specs, &exp.lens, 0, head, &buf_view(base));
    assert_eq!(out, want);
    let skip = u.int_in_range(0..=total - head)?;
    it.advance(skip);
    let tail = (total - head - skip).min(64);
    let mut out = vec![0u8; tail];
    assert_eq!(it.copy_from_iter(&mut out), tail);
    let want = flat_bytes(&specs, &exp.lens, head + skip, tail, &buf_view(base));
    assert_eq!(out, want);
    drop(buf);
    Ok(())
}

/// Reads byte `i` of the 4 MiB buffer through the raw base (a source: only
/// reads, alongside the iterator's reads).
fn buf_view(base: *mut u8) -> impl Fn(usize) -> u8 {
    move |i| {
        assert!(i < BIG);
        // SAFETY: `base` is the start of the live 4 MiB buffer `buf` in
        // `big_source`, which outlives this closure's uses; `i < BIG`; all
        // accesses to it meanwhile are reads.
        unsafe { base.add(i).read() }
    }
}

/// `len` bytes from flat offset `from` of the clamped concatenation.
fn flat_bytes(
    specs: &[(usize, usize)],
    lens: &[usize],
    from: usize,
    len: usize,
    read: &impl Fn(usize) -> u8,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut flat = 0usize;
    for (&(s, _), &l) in specs.iter().zip(lens) {
        let (lo, hi) = (from.max(flat), (from + len).min(flat + l));
        if lo < hi {
            out.extend((lo..hi).map(|q| read(s + (q - flat))));
        }
        flat += l;
    }
    out
}

/// Case 3: arbitrary pairs, only where the reference predicts an error.
fn arbitrary_pairs(u: &mut Unstructured) -> Result<()> {
    let buf = [0u8; 64];
    let n = count(u)?;
    let mut pairs = Vec::with_capacity(n);
    for _ in 0..n {
        let pair = match u.int_in_range(0u8..=5)? {
            // Good: inside `buf` (read-only: only the error path is taken).
            0 | 1 => {
                let s = u.int_in_range(0..=buf.len())?;
                let l = u.int_in_range(0..=buf.len() - s)?;
                UserIovec::new(buf.as_ptr().cast_mut().wrapping_add(s), l)
            }
            _ => {
                let base: usize = match u.int_in_range(0u8..=4)? {
                    0 => 0,
                    1 => usize::MAX - u.int_in_range(0..=4096)?,
                    2 => u.int_in_range(1..=4096)?,
                    _ => u.arbitrary()?,
                };
                let len: usize = match u.int_in_range(0u8..=5)? {
                    0 => 0,
                    1 => isize::MAX as usize + 1,
                    2 => usize::MAX,
                    3 => MAX_RW_COUNT + u.int_in_range(0..=1)?,
                    4 => u.int_in_range(1..=4096)?,
                    _ => u.arbitrary()?,
                };
                UserIovec::new(core::ptr::without_provenance_mut(base), len)
            }
        };
        pairs.push(pair);
    }
    let addrs: Vec<(usize, usize)> = pairs.iter().map(|p| (p.base as usize, p.len)).collect();
    let Err(want) = reference(&addrs) else {
        // Would be accepted: calling would hand the crate pairs that promise
        // memory nobody owns. Skip.
        return Ok(());
    };
    let mut storage = IovecArray::new();
    let got = if u.arbitrary()? {
        // SAFETY: case 3 of the module docs: the reference predicts an
        // error, so no pair is accepted and the contract asks nothing; the
        // result is only compared, never used to copy.
        unsafe { import_iovec::<Source>(&pairs, &mut storage) }.map(|it| it.count())
    } else {
        // SAFETY: as above.
        unsafe { import_iovec::<Dest>(&pairs, &mut storage) }.map(|it| it.count())
    };
    assert_eq!(got, Err(want), "pairs {addrs:?}");
    assert_eq!(want.errno(), got.unwrap_err().errno());
    Ok(())
}
