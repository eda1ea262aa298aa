//! `iter_ops`: the iterator as an op-code interpreter, checked against a flat
//! model.
//!
//! The input first picks a kind and a direction (Iovec, Kvec, Bvec, Ubuf ×
//! Source/Dest, or a Discard destination) and the segments (lengths, empty
//! segments, gaps, bvec offsets including the empty bvec at offset
//! `PAGE_SIZE`, any order, overlapping for sources). Then every following
//! op-code applies one operation (advance, revert, truncate, reexpand,
//! save/restore, copies, zero, iterate, chunks, extract/get pages, page
//! copies, std I/O, dup/reborrow) to the iterator *and* to a [`Model`] (the
//! flat model shared with `tests/model.rs`, crate `iov-iter-model`): the
//! concatenated bytes plus `pos` (bytes consumed) and `count`. Any divergence
//! (a return value, an error variant, a byte, a page address, the position)
//! panics. At the end, destination memory is compared byte for byte with the
//! model, and bytes outside the segments must be untouched.
//!
//! Segment bookkeeping (`nr_segs`, `iov_offset`) is checked for consistency
//! with the flat position, not against the model's popping rules (that is
//! `tests/model.rs`'s job): `prefix(idx) + iov_offset == pos`, the current
//! segment is never over-consumed, and `advance` leaves it non-exhausted.

#![no_main]

use std::io::{Read, Write};
use std::mem::MaybeUninit;
use std::sync::LazyLock;

use arbitrary::{Result, Unstructured};
use iov_iter::{
    Bvec, BvecSeg, BvecSegMut, Dest, Direction, Discard, Error, Extracted, IoSeg, IoSegMut,
    IovIter, Iovec, IterState, IterType, Kind, Kvec, MAX_RW_COUNT, PAGE_SIZE, Page, PageAddr,
    Source, Ubuf,
};
use iov_iter_model::{Model, Snap, Step, concat, split_spans, user_extract};
use libfuzzer_sys::fuzz_target;

/// Pages of the contiguous buffer behind Iovec / Kvec / Ubuf segments.
const BUF_PAGES: usize = 4;
const BUF_LEN: usize = BUF_PAGES * PAGE_SIZE;
/// Pages behind Bvec segments.
const MAX_BVEC_PAGES: usize = 4;
const MAX_SEGS: usize = 16;
const MAX_OPS: usize = 200;
/// Longest buffer one copy allocates.
const MAX_COPY: usize = 3 * PAGE_SIZE;
const SLOTS: usize = 3;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = fuzz_one(&mut u);
});

/// An amount for advance / revert / reexpand / zero: mostly near the
/// position, sometimes an edge value.
fn amount(u: &mut Unstructured, m: &Model) -> Result<usize> {
    Ok(match u.int_in_range(0u8..=11)? {
        0..=4 => u.int_in_range(0..=m.count.saturating_add(4).min(1 << 20))?,
        5 => m.count,
        6 => m.pos,
        7 => m.pos.saturating_add(1),
        8 => m.total - m.pos,
        9 => (m.total - m.pos).saturating_add(1),
        10 => *u.choose(&[
            0,
            1,
            MAX_RW_COUNT,
            MAX_RW_COUNT + 1,
            isize::MAX as usize,
            usize::MAX,
        ])?,
        _ => u.arbitrary()?,
    })
}

/// A length for a buffer the fuzzer allocates.
fn copy_len(u: &mut Unstructured, m: &Model) -> Result<usize> {
    Ok(match u.int_in_range(0u8..=3)? {
        0 => u.int_in_range(0..=16)?,
        1 => m.count.min(MAX_COPY),
        2 => m.count.saturating_add(1).min(MAX_COPY),
        _ => u.int_in_range(0..=MAX_COPY)?,
    })
}

/// An `(offset, len)` page range, usually inside the page.
fn page_range(u: &mut Unstructured) -> Result<(usize, usize)> {
    Ok(match u.int_in_range(0u8..=7)? {
        0 => (u.arbitrary()?, u.arbitrary()?),
        1 => {
            let off = u.int_in_range(0..=PAGE_SIZE + 1)?;
            (off, u.int_in_range(0..=PAGE_SIZE + 1)?)
        }
        2 => (PAGE_SIZE, 0),
        _ => {
            let off = u.int_in_range(0..=PAGE_SIZE)?;
            (off, u.int_in_range(0..=PAGE_SIZE - off)?)
        }
    })
}

fn range_ok(off: usize, len: usize) -> bool {
    off.checked_add(len).is_some_and(|e| e <= PAGE_SIZE)
}

/// A segment length: often 0 or tiny, sometimes a page or more.
fn seg_len(u: &mut Unstructured, max: usize) -> Result<usize> {
    let l = match u.int_in_range(0u8..=7)? {
        0 | 1 => 0,
        2 | 3 => u.int_in_range(1..=16)?,
        4 | 5 => u.int_in_range(1..=700)?,
        6 => PAGE_SIZE,
        _ => u.int_in_range(0..=2 * PAGE_SIZE + 100)?,
    };
    Ok(l.min(max))
}

/// Initial memory contents: every buffer is a window of one fixed,
/// position-dependent byte pattern, starting at a fuzzer-chosen offset
/// (`seed`). Copies and compares go through `memcpy`/`memcmp`, so that the
/// coverage instrumentation of per-byte loops does not dominate.
const PAT_LEN: usize = 1024 + BUF_LEN + MAX_BVEC_PAGES * PAGE_SIZE + MAX_COPY;
static PAT: LazyLock<Vec<u8>> = LazyLock::new(|| {
    (0..PAT_LEN)
        .map(|i| ((i as u32).wrapping_mul(0x9E37_79B1) >> 24) as u8)
        .collect()
});

/// `len` pattern bytes from position `i` of the window at `seed`.
fn pat(seed: usize, i: usize, len: usize) -> &'static [u8] {
    &PAT[seed + i..seed + i + len]
}

const SENTINEL: u8 = 0xA5;
static SENT: [u8; MAX_COPY + PAGE_SIZE] = [SENTINEL; MAX_COPY + PAGE_SIZE];

/// Whether `s` is all [`SENTINEL`] (one `memcmp`).
fn untouched(s: &[u8]) -> bool {
    s == &SENT[..s.len()]
}

/// A page-aligned byte buffer (safe: an over-allocated `Vec` and an aligned
/// window of it).
struct AlignedBuf {
    raw: Vec<u8>,
    off: usize,
}

impl AlignedBuf {
    fn new(len: usize, seed: usize) -> AlignedBuf {
        let mut raw = vec![0u8; len + PAGE_SIZE];
        let off = raw.as_ptr().align_offset(PAGE_SIZE);
        raw[off..off + len].copy_from_slice(pat(seed, 0, len));
        AlignedBuf { raw, off }
    }
    fn bytes(&self) -> &[u8] {
        &self.raw[self.off..self.off + BUF_LEN]
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.off..self.off + BUF_LEN]
    }
}

/// Random `(start, len)` ranges in a buffer of `cap` bytes, anywhere
/// (overlaps allowed: for sources).
fn any_ranges(u: &mut Unstructured, cap: usize) -> Result<Vec<(usize, usize)>> {
    let n = u.int_in_range(0..=MAX_SEGS)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let start = u.int_in_range(0..=cap)?;
        let len = seg_len(u, cap - start)?;
        v.push((start, len));
    }
    Ok(v)
}

/// Disjoint ranges in increasing address order (for destinations), and a
/// permutation giving the iterator order.
/// `(start, len)` ranges and the order the iterator visits them in.
type Layout = (Vec<(usize, usize)>, Vec<usize>);

fn disjoint_ranges(u: &mut Unstructured, cap: usize) -> Result<Layout> {
    let n = u.int_in_range(0..=MAX_SEGS)?;
    let mut v = Vec::with_capacity(n);
    let mut cursor = 0;
    for _ in 0..n {
        let gap = match u.int_in_range(0u8..=3)? {
            0 | 1 => 0,
            2 => u.int_in_range(0..=64)?,
            _ => u.int_in_range(0..=PAGE_SIZE)?,
        }
        .min(cap - cursor);
        cursor += gap;
        let len = seg_len(u, cap - cursor)?;
        v.push((cursor, len));
        cursor += len;
    }
    let order = permutation(u, n)?;
    Ok((v, order))
}

fn permutation(u: &mut Unstructured, n: usize) -> Result<Vec<usize>> {
    let mut order: Vec<usize> = (0..n).collect();
    if u.arbitrary::<bool>()? {
        for i in (1..n).rev() {
            let j = u.int_in_range(0..=i)?;
            order.swap(i, j);
        }
    }
    Ok(order)
}

/// Builds the segment array pieces in the chosen order out of disjoint
/// `&mut` borrows of `buf`.
fn split_disjoint<'b>(
    buf: &'b mut [u8],
    ranges: &[(usize, usize)],
    order: &[usize],
) -> Vec<IoSegMut<'b>> {
    let mut by_addr: Vec<Option<IoSegMut<'b>>> = split_spans(buf, ranges)
        .into_iter()
        .map(|seg| Some(IoSegMut::new(seg)))
        .collect();
    order.iter().map(|&i| by_addr[i].take().unwrap()).collect()
}

/// The expected result of `Page::bvecs_mut(ranges)`: the first range (in
/// order) outside the page is EFAULT, else the first that overlaps an
/// earlier non-empty one is EINVAL.
fn bvecs_expect(ranges: &[(usize, usize)]) -> Result<(), Error> {
    for (i, &(off, len)) in ranges.iter().enumerate() {
        if !range_ok(off, len) {
            return Err(Error::PageRange { offset: off, len });
        }
        for &(off2, len2) in &ranges[..i] {
            if len != 0 && len2 != 0 && off < off2 + len2 && off2 < off + len {
                return Err(Error::OverlappingRanges);
            }
        }
    }
    Ok(())
}

/// A bvec range in a page: usually valid, sometimes not.
fn bvec_range(u: &mut Unstructured) -> Result<(usize, usize)> {
    Ok(match u.int_in_range(0u8..=9)? {
        0 => page_range(u)?,
        1 => (PAGE_SIZE, 0),
        2 => (0, PAGE_SIZE),
        _ => {
            let off = u.int_in_range(0..=PAGE_SIZE)?;
            let len = seg_len(u, PAGE_SIZE - off)?;
            (off, len)
        }
    })
}

fn fuzz_one(u: &mut Unstructured) -> Result<()> {
    let seed = u.int_in_range(0..=1023)?;
    match u.int_in_range(0u8..=8)? {
        0 => source_array::<Iovec>(u, seed),
        1 => source_array::<Kvec>(u, seed),
        2 => dest_array::<Iovec>(u, seed),
        3 => dest_array::<Kvec>(u, seed),
        4 => source_bvec(u, seed),
        5 => dest_bvec(u, seed),
        6 => source_ubuf(u, seed),
        7 => dest_ubuf(u, seed),
        _ => dest_discard(u),
    }
}

/// Iovec and Kvec sources and destinations share their constructors'
/// signature; this picks the right one.
trait ArrayKind: Kind {
    fn source<'a>(segs: &'a [IoSeg<'_>]) -> IovIter<'a, Source, Self>;
    fn dest<'a>(segs: &'a mut [IoSegMut<'_>]) -> IovIter<'a, Dest, Self>;
}
impl ArrayKind for Iovec {
    fn source<'a>(segs: &'a [IoSeg<'_>]) -> IovIter<'a, Source, Iovec> {
        IovIter::<Source, Iovec>::new(segs)
    }
    fn dest<'a>(segs: &'a mut [IoSegMut<'_>]) -> IovIter<'a, Dest, Iovec> {
        IovIter::<Dest, Iovec>::new(segs)
    }
}
impl ArrayKind for Kvec {
    fn source<'a>(segs: &'a [IoSeg<'_>]) -> IovIter<'a, Source, Kvec> {
        IovIter::<Source, Kvec>::new(segs)
    }
    fn dest<'a>(segs: &'a mut [IoSegMut<'_>]) -> IovIter<'a, Dest, Kvec> {
        IovIter::<Dest, Kvec>::new(segs)
    }
}

fn source_array<K: ArrayKind>(u: &mut Unstructured, seed: usize) -> Result<()> {
    let buf = AlignedBuf::new(BUF_LEN, seed);
    let mem = buf.bytes();
    let base = mem.as_ptr() as usize;
    let ranges = any_ranges(u, BUF_LEN)?;
    let segs: Vec<IoSeg<'_>> = ranges
        .iter()
        .map(|&(s, l)| IoSeg::new(&mem[s..s + l]))
        .collect();
    let abs: Vec<(usize, usize)> = ranges.iter().map(|&(s, l)| (base + s, l)).collect();
    let mut m = Model::new(K::ITER_TYPE, &abs, concat(mem, &ranges));
    // Foreign: a proper prefix of the same array (same base, shorter), or
    // another array.
    let other = [7u8; 8];
    let other_segs = [IoSeg::new(&other)];
    let foreign = if segs.len() >= 2 {
        K::source(&segs[..segs.len() - 1]).save_state()
    } else {
        K::source(&other_segs).save_state()
    };
    let mut it = K::source(&segs);
    run(&mut it, &foreign, &mut m, u)?;
    assert!(
        buf.bytes() == pat(seed, 0, BUF_LEN),
        "source memory was written"
    );
    Ok(())
}

fn dest_array<K: ArrayKind>(u: &mut Unstructured, seed: usize) -> Result<()> {
    let mut buf = AlignedBuf::new(BUF_LEN, seed);
    let base = buf.bytes().as_ptr() as usize;
    let (ranges, order) = disjoint_ranges(u, BUF_LEN)?;
    let in_order: Vec<(usize, usize)> = order.iter().map(|&i| ranges[i]).collect();
    let abs: Vec<(usize, usize)> = in_order.iter().map(|&(s, l)| (base + s, l)).collect();
    let mut m = Model::new(K::ITER_TYPE, &abs, concat(buf.bytes(), &in_order));
    let mut other = [0u8; 8];
    let mut other_segs = [IoSegMut::new(&mut other)];
    let foreign = K::dest(&mut other_segs).save_state();
    {
        let mut segs = split_disjoint(buf.bytes_mut(), &ranges, &order);
        let mut it = K::dest(&mut segs);
        run(&mut it, &foreign, &mut m, u)?;
    }
    check_dest_memory(buf.bytes(), base, seed, &m);
    Ok(())
}

/// Destination memory equals the model inside the segments and the initial
/// pattern outside them.
fn check_dest_memory(mem: &[u8], base: usize, seed: usize, m: &Model) {
    let want = m.expect_memory(pat(seed, 0, mem.len()), base);
    if mem == &want[..] {
        return;
    }
    if let Some(i) = (0..mem.len()).find(|&i| mem[i] != want[i]) {
        panic!(
            "destination memory differs at buffer offset {i}: got {:#x}, model {:#x}",
            mem[i], want[i]
        );
    }
}

/// Page `p` starts as `pat(seed, p * PAGE_SIZE, PAGE_SIZE)`.
fn new_pages(n: usize, seed: usize) -> Vec<Page> {
    (0..n)
        .map(|p| {
            let mut page = Page::new();
            page.as_mut_bytes()
                .copy_from_slice(pat(seed, p * PAGE_SIZE, PAGE_SIZE));
            page
        })
        .collect()
}

fn source_bvec(u: &mut Unstructured, seed: usize) -> Result<()> {
    let npages = u.int_in_range(1..=MAX_BVEC_PAGES)?;
    let pages = new_pages(npages, seed);
    let n = u.int_in_range(0..=MAX_SEGS)?;
    let mut segs: Vec<BvecSeg<'_>> = Vec::with_capacity(n);
    for _ in 0..n {
        let page = &pages[u.choose_index(npages)?];
        let (off, len) = bvec_range(u)?;
        let r = if u.arbitrary()? {
            BvecSeg::new(page, off, len)
        } else {
            page.bvec(off, len)
        };
        match r {
            Ok(s) => {
                assert!(range_ok(off, len), "accepted ({off}, {len})");
                assert_eq!(
                    (s.offset(), s.len(), s.page().addr()),
                    (off, len, page.addr())
                );
                segs.push(s);
            }
            Err(e) => {
                assert!(!range_ok(off, len), "refused ({off}, {len}): {e}");
                assert_eq!(e, Error::PageRange { offset: off, len });
            }
        }
        if u.ratio(1u8, 16)? {
            segs.push(BvecSeg::full(page));
        }
    }
    let bv: Vec<(usize, usize, usize)> = segs
        .iter()
        .map(|s| (s.page().addr(), s.offset(), s.len()))
        .collect();
    let mut bytes = Vec::new();
    for s in &segs {
        bytes.extend_from_slice(&s.page().as_bytes()[s.offset()..s.offset() + s.len()]);
    }
    let mut m = Model::bvec(&bv, bytes);
    let other = Page::new();
    let other_segs = [BvecSeg::full(&other)];
    let foreign = IovIter::<Source, Bvec>::new(&other_segs).save_state();
    let mut it = IovIter::<Source, Bvec>::new(&segs);
    run(&mut it, &foreign, &mut m, u)?;
    for (p, page) in pages.iter().enumerate() {
        assert!(
            page.as_bytes()[..] == *pat(seed, p * PAGE_SIZE, PAGE_SIZE),
            "source page was written"
        );
    }
    Ok(())
}

fn dest_bvec(u: &mut Unstructured, seed: usize) -> Result<()> {
    let npages = u.int_in_range(1..=MAX_BVEC_PAGES)?;
    let mut pages = new_pages(npages, seed);
    let addrs: Vec<usize> = pages.iter().map(Page::addr).collect();
    let mut by_page: Vec<BvecSegMut<'_>> = Vec::new();
    for page in pages.iter_mut() {
        match u.int_in_range(0u8..=4)? {
            0 => {}
            1 => {
                let (off, len) = bvec_range(u)?;
                let r = if u.arbitrary()? {
                    BvecSegMut::new(page, off, len)
                } else {
                    page.bvec_mut(off, len)
                };
                match r {
                    Ok(s) => {
                        assert!(range_ok(off, len));
                        by_page.push(s);
                    }
                    Err(e) => assert_eq!(e, Error::PageRange { offset: off, len }),
                }
            }
            2 => by_page.push(BvecSegMut::full(page)),
            3 => {
                let r = [bvec_range(u)?, bvec_range(u)?];
                match page.bvecs_mut(r) {
                    Ok(s) => {
                        assert_eq!(bvecs_expect(&r), Ok(()), "{r:?}");
                        by_page.extend(s);
                    }
                    Err(e) => assert_eq!(bvecs_expect(&r), Err(e), "{r:?}"),
                }
            }
            _ => {
                let r = [bvec_range(u)?, bvec_range(u)?, bvec_range(u)?];
                match page.bvecs_mut(r) {
                    Ok(s) => {
                        assert_eq!(bvecs_expect(&r), Ok(()), "{r:?}");
                        by_page.extend(s);
                    }
                    Err(e) => assert_eq!(bvecs_expect(&r), Err(e), "{r:?}"),
                }
            }
        }
    }
    let order = permutation(u, by_page.len())?;
    let mut slots: Vec<Option<BvecSegMut<'_>>> = by_page.into_iter().map(Some).collect();
    let mut segs: Vec<BvecSegMut<'_>> = order.iter().map(|&i| slots[i].take().unwrap()).collect();
    let bv: Vec<(usize, usize, usize)> = segs
        .iter()
        .map(|s| (s.page_addr(), s.offset(), s.len()))
        .collect();
    // The pages are mutably borrowed by the segments: read the initial
    // bytes from the pattern they were filled with.
    let mut bytes = Vec::new();
    for &(page, off, len) in &bv {
        let p = addrs.iter().position(|&a| a == page).unwrap();
        bytes.extend_from_slice(pat(seed, p * PAGE_SIZE + off, len));
    }
    let mut m = Model::bvec(&bv, bytes);
    let mut other = Page::new();
    let mut other_segs = [BvecSegMut::full(&mut other)];
    let foreign = IovIter::<Dest, Bvec>::new(&mut other_segs).save_state();
    let mut it = IovIter::<Dest, Bvec>::new(&mut segs);
    run(&mut it, &foreign, &mut m, u)?;
    drop(segs);
    drop(slots);
    for (p, page) in pages.iter().enumerate() {
        let want = m.expect_memory(pat(seed, p * PAGE_SIZE, PAGE_SIZE), addrs[p]);
        if page.as_bytes()[..] == want[..] {
            continue;
        }
        if let Some(i) = (0..PAGE_SIZE).find(|&i| page.as_bytes()[i] != want[i]) {
            panic!(
                "page {p} differs at {i}: got {:#x}, model {:#x}",
                page.as_bytes()[i],
                want[i]
            );
        }
    }
    Ok(())
}

fn source_ubuf(u: &mut Unstructured, seed: usize) -> Result<()> {
    let buf = AlignedBuf::new(BUF_LEN, seed);
    let mem = buf.bytes();
    let base = mem.as_ptr() as usize;
    let start = u.int_in_range(0..=BUF_LEN)?;
    let len = seg_len(u, BUF_LEN - start)?;
    let mut m = Model::new(
        IterType::Ubuf,
        &[(base + start, len)],
        mem[start..start + len].to_vec(),
    );
    let other = [1u8; 4];
    let foreign = IovIter::<Source, Ubuf>::new(&other).save_state();
    let mut it = IovIter::<Source, Ubuf>::new(&mem[start..start + len]);
    run(&mut it, &foreign, &mut m, u)?;
    Ok(())
}

fn dest_ubuf(u: &mut Unstructured, seed: usize) -> Result<()> {
    let mut buf = AlignedBuf::new(BUF_LEN, seed);
    let base = buf.bytes().as_ptr() as usize;
    let start = u.int_in_range(0..=BUF_LEN)?;
    let len = seg_len(u, BUF_LEN - start)?;
    let mut m = Model::new(
        IterType::Ubuf,
        &[(base + start, len)],
        buf.bytes()[start..start + len].to_vec(),
    );
    let mut other = [1u8; 4];
    let foreign = IovIter::<Dest, Ubuf>::new(&mut other).save_state();
    {
        let mut it = IovIter::<Dest, Ubuf>::new(&mut buf.bytes_mut()[start..start + len]);
        run(&mut it, &foreign, &mut m, u)?;
    }
    check_dest_memory(buf.bytes(), base, seed, &m);
    Ok(())
}

fn dest_discard(u: &mut Unstructured) -> Result<()> {
    let total = match u.int_in_range(0u8..=3)? {
        0 => u.int_in_range(0..=64)?,
        1 => u.int_in_range(0..=1 << 20)?,
        2 => *u.choose(&[MAX_RW_COUNT, MAX_RW_COUNT + 1, usize::MAX])?,
        _ => u.arbitrary()?,
    };
    let mut m = Model::discard(total);
    let foreign = IovIter::<Dest, Discard>::new(total ^ 1).save_state();
    let mut it = IovIter::<Dest, Discard>::new(total);
    run(&mut it, &foreign, &mut m, u)
}

/// Position and bookkeeping agree with the model.
fn check<D: Direction, K: Kind>(it: &IovIter<'_, D, K>, m: &Model) {
    assert!(m.pos <= m.total && m.count <= m.total - m.pos, "{m:?}");
    assert_eq!(it.count(), m.count, "count");
    assert_eq!(it.is_empty(), m.count == 0);
    assert_eq!(it.capacity(), m.total - m.pos, "capacity");
    match m.kind {
        IterType::Ubuf => {
            assert_eq!(it.nr_segs(), 1);
            assert_eq!(it.iov_offset(), m.pos, "ubuf iov_offset");
        }
        IterType::Discard => {
            assert_eq!(it.nr_segs(), 0);
            assert_eq!(it.iov_offset(), m.pos, "discard iov_offset");
        }
        _ => {
            let n = m.segs.len();
            let nr = it.nr_segs();
            assert!(nr <= n, "nr_segs {nr} > {n}");
            let idx = n - nr;
            let off = it.iov_offset();
            let prefix = if idx < n { m.segs[idx].flat } else { m.total };
            assert_eq!(prefix + off, m.pos, "segment {idx} + offset {off} vs pos");
            if idx < n {
                assert!(off < m.segs[idx].len || off == 0, "segment over-consumed");
            } else {
                assert_eq!(off, 0);
            }
        }
    }
    let ssc = it.single_seg_count();
    if m.is_array() && it.nr_segs() > 1 {
        let s = &m.segs[m.segs.len() - it.nr_segs()];
        assert_eq!(
            ssc,
            m.count.min(s.len - it.iov_offset()),
            "single_seg_count"
        );
    } else {
        assert_eq!(ssc, m.count, "single_seg_count");
    }
}

/// `raw_chunks`: the remaining data, split at segment ends, never empty.
fn check_raw_chunks<D: Direction, K: Kind>(it: &IovIter<'_, D, K>, m: &Model) {
    let got: Vec<(usize, usize)> = it
        .raw_chunks()
        .map(|(p, l)| (p.as_ptr() as usize, l))
        .collect();
    let want: Vec<(usize, usize)> = m
        .pieces(m.pos, m.count)
        .into_iter()
        .map(|(q, l)| (m.addr_of(q), l))
        .collect();
    assert_eq!(got, want, "raw_chunks");
}

#[derive(Clone, Copy, PartialEq)]
enum PagesOp {
    Extract,
    Get,
}

/// `extract_pages` / `get_pages` against the model: zero-size and
/// kind refusals first, then the extracted bytes must be laid out at
/// `offset0` in the listed pages as if contiguous.
fn pages_op<D: Direction, K: Kind>(
    it: &mut IovIter<'_, D, K>,
    m: &mut Model,
    u: &mut Unstructured,
    op: PagesOp,
) -> Result<()> {
    let maxsize = amount(u, m)?;
    let maxpages = match u.int_in_range(0u8..=3)? {
        0 => 0,
        1 => 1,
        2 => u.int_in_range(0..=8)?,
        _ => usize::MAX,
    };
    let (nr_before, off_before) = (it.nr_segs(), it.iov_offset());
    let mut out: Vec<PageAddr> = Vec::new();
    let r = match op {
        PagesOp::Extract => it.extract_pages(maxsize, maxpages, &mut out),
        PagesOp::Get => it.get_pages(maxsize, maxpages, &mut out),
    };
    let ms = maxsize.min(m.count).min(MAX_RW_COUNT);
    let zero = Extracted {
        bytes: 0,
        offset0: 0,
        npages: 0,
    };
    if ms == 0 || maxpages == 0 {
        assert_eq!(r, Ok(zero));
        assert!(out.is_empty());
        return Ok(());
    }
    if m.kind == IterType::Discard || (op == PagesOp::Get && m.kind == IterType::Kvec) {
        assert_eq!(r, Err(Error::NoPages));
        assert!(out.is_empty());
        return Ok(());
    }
    let e = r.expect("pages of a memory-backed iterator");
    assert_eq!(out.len(), e.npages, "pushed vs npages");
    assert!(e.npages <= maxpages && e.bytes <= ms, "{e:?}");
    // Layout: byte j of the extraction sits at offset0 + j of the virtual
    // run of listed pages.
    for (q, l) in m.pieces(m.pos, e.bytes) {
        let a = m.addr_of(q);
        let v = e.offset0 + (q - m.pos);
        let (first, last) = (v / PAGE_SIZE, (v + l - 1) / PAGE_SIZE);
        assert_eq!(
            a,
            out[first].0 + v % PAGE_SIZE,
            "first byte of piece at {q}"
        );
        let (al, vl) = (a + l - 1, v + l - 1);
        assert_eq!(
            al,
            out[last].0 + vl % PAGE_SIZE,
            "last byte of piece at {q}"
        );
        if m.kind == IterType::Bvec {
            assert_eq!(first, last, "a bvec piece spans two listed pages");
        }
    }
    let need = (e.offset0 + e.bytes).div_ceil(PAGE_SIZE);
    match m.kind {
        IterType::Bvec => {
            if e.bytes == 0 {
                // Only an empty bvec at the position gives nothing; it still
                // lists its page (as the kernel does).
                assert!(e.npages <= 1, "{e:?}");
            } else {
                assert_eq!(m.addr_of(m.pos) % PAGE_SIZE, e.offset0, "offset0");
                // An empty bvec right after a page-ending one is listed too.
                let extra = if op == PagesOp::Extract { 1 } else { 0 };
                assert!(
                    e.npages >= need && e.npages <= need + extra,
                    "{e:?} needs {need}"
                );
            }
            if op == PagesOp::Get {
                let s = &m.segs[m.segs.len() - nr_before];
                assert!(e.bytes <= s.len - off_before, "get_pages left the bvec");
            }
        }
        _ => {
            // The first non-empty segment only, exactly.
            let s = m.seg_of(m.pos);
            let (bytes, offset0, pages) =
                user_extract(m.addr_of(m.pos), s.flat + s.len - m.pos, ms, maxpages);
            assert_eq!(
                e,
                Extracted {
                    bytes,
                    offset0,
                    npages: pages.len()
                }
            );
            let want: Vec<PageAddr> = pages.into_iter().map(PageAddr).collect();
            assert_eq!(out, want);
        }
    }
    // The kernel advances by what it extracted.
    m.advance(e.bytes);
    Ok(())
}

type Slot<'a, D, K> = Option<(IterState<'a, D, K>, Snap)>;

/// The interpreter.
fn run<'a, D: Direction, K: Kind>(
    it: &mut IovIter<'a, D, K>,
    foreign: &IterState<'a, D, K>,
    m: &mut Model,
    u: &mut Unstructured,
) -> Result<()>
where
    IovIter<'a, D, K>: DirOps,
{
    let mut slots: [Slot<'a, D, K>; SLOTS] = [None; SLOTS];
    check(it, m);
    for _ in 0..MAX_OPS {
        if u.is_empty() {
            break;
        }
        match u.int_in_range(0u8..=19)? {
            op @ 0..=5 => {
                let step = match op {
                    0 | 1 => Step::Advance(amount(u, m)?),
                    2 | 3 => Step::Revert(amount(u, m)?),
                    4 => Step::Truncate(if u.arbitrary()? {
                        amount(u, m)? as u64
                    } else {
                        u.arbitrary()?
                    }),
                    _ => Step::Reexpand(amount(u, m)?),
                };
                let had = m.count;
                let (got, want) = m.step(it, step);
                assert_eq!(got, want, "{step:?}");
                // Advance pops what it consumed: the current segment is
                // never exhausted or empty afterwards.
                if matches!(step, Step::Advance(_)) && m.is_array() && had != 0 && it.nr_segs() != 0
                {
                    let s = &m.segs[m.segs.len() - it.nr_segs()];
                    assert!(it.iov_offset() < s.len, "advance left a used-up segment");
                }
            }
            6 => {
                let s = it.save_state();
                assert_eq!(
                    (s.count(), s.iov_offset(), s.nr_segs()),
                    (it.count(), it.iov_offset(), it.nr_segs())
                );
                slots[u.choose_index(SLOTS)?] = Some((s, m.snap()));
            }
            7 => match slots[u.choose_index(SLOTS)?] {
                Some((s, snap)) if u.ratio(7u8, 8)? => {
                    assert_eq!(it.restore(&s), Ok(()));
                    m.set(snap);
                }
                _ => {
                    // A state of another segment array: refused, nothing moves.
                    // (Two Discards of the same count are interchangeable, but
                    // the foreign one has another count.)
                    assert_eq!(it.restore(foreign), Err(Error::ForeignState));
                }
            },
            8 | 9 => pages_op(it, m, u, PagesOp::Extract)?,
            10 => pages_op(it, m, u, PagesOp::Get)?,
            11 => check_raw_chunks(it, m),
            12 | 13 => it.copy_op(m, u)?,
            14 => it.copy_full_op(m, u)?,
            15 => it.alt_copy_op(m, u)?,
            16 => it.iterate_op(m, u)?,
            17 => it.chunks_op(m, u)?,
            18 => it.page_op(m, u)?,
            _ => {
                if u.arbitrary()? {
                    it.io_op(m, u)?
                } else {
                    it.twin_op(m, u)?
                }
            }
        }
        check(it, m);
    }
    Ok(())
}

/// The direction-specific operations.
trait DirOps {
    /// `copy_from_iter` / `copy_to_iter`.
    fn copy_op(&mut self, m: &mut Model, u: &mut Unstructured) -> Result<()>;
    /// The `_full` variants: all or nothing.
    fn copy_full_op(&mut self, m: &mut Model, u: &mut Unstructured) -> Result<()>;
    /// `copy_from_iter_uninit` / `zero`.
    fn alt_copy_op(&mut self, m: &mut Model, u: &mut Unstructured) -> Result<()>;
    /// `iterate` with steps that stop short.
    fn iterate_op(&mut self, m: &mut Model, u: &mut Unstructured) -> Result<()>;
    /// `chunks` / `chunks_mut` (no advance).
    fn chunks_op(&mut self, m: &mut Model, u: &mut Unstructured) -> Result<()>;
    /// `copy_page_from_iter` / `copy_page_to_iter`.
    fn page_op(&mut self, m: &mut Model, u: &mut Unstructured) -> Result<()>;
    /// `io::Read` / `io::Write`.
    fn io_op(&mut self, m: &mut Model, u: &mut Unstructured) -> Result<()>;
    /// `dup` / `reborrow`: work on a twin, the original does not move.
    fn twin_op(&mut self, m: &mut Model, u: &mut Unstructured) -> Result<()>;
}

/// Simulates the walk: `rets[i]` is what step `i` leaves unprocessed. Returns
/// the expected `(flat, len, progress)` steps and the bytes processed.
fn expect_walk(m: &Model, len: usize, rets: &[usize]) -> (Vec<(usize, usize, usize)>, usize) {
    let mut steps = Vec::new();
    let mut done = 0;
    let want = len.min(m.count);
    if m.kind == IterType::Discard {
        return (steps, want);
    }
    let mut q = m.pos;
    while done < want {
        let s = m.seg_of(q);
        let l = (s.flat + s.len - q).min(want - done);
        let left = rets.get(steps.len()).copied().unwrap_or(0).min(l);
        steps.push((q, l, done));
        done += l - left;
        q += l - left;
        if left != 0 {
            break;
        }
    }
    (steps, done)
}

fn step_returns(u: &mut Unstructured) -> Result<Vec<usize>> {
    let n = u.int_in_range(0..=4)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(match u.int_in_range(0u8..=3)? {
            0 | 1 => 0,
            2 => u.int_in_range(1..=8)?,
            _ => usize::MAX,
        });
    }
    Ok(v)
}

impl<K: Kind> DirOps for IovIter<'_, Source, K> {
    fn copy_op(&mut self, m: &mut Model, u: &mut Unstructured) -> Result<()> {
        let len = copy_len(u, m)?;
        let mut dst = vec![SENTINEL; len];
        let n = self.copy_from_iter(&mut dst);
        assert_eq!(n, len.min(m.count), "copy_from_iter");
        assert_eq!(&dst[..n], m.ahead(n), "copy_from_iter bytes");
        assert!(untouched(&dst[n..]), "wrote past n");
        m.take(n);
        Ok(())
    }

    fn copy_full_op(&mut self, m: &mut Model, u: &mut Unstructured) -> Result<()> {
        let len = copy_len(u, m)?;
        let mut dst = vec![SENTINEL; len];
        let ok = self.copy_from_iter_full(&mut dst);
        assert_eq!(ok, len <= m.count, "copy_from_iter_full");
        if ok {
            assert_eq!(&dst[..], m.ahead(len));
            m.take(len);
        } else {
            assert!(untouched(&dst));
        }
        Ok(())
    }

    fn alt_copy_op(&mut self, m: &mut Model, u: &mut Unstructured) -> Result<()> {
        let len = copy_len(u, m)?;
        let mut dst = vec![MaybeUninit::<u8>::uninit(); len];
        let init = self.copy_from_iter_uninit(&mut dst);
        let n = len.min(m.count);
        assert_eq!(init.len(), n, "copy_from_iter_uninit");
        assert_eq!(&init[..], m.ahead(n));
        m.take(n);
        Ok(())
    }

    fn iterate_op(&mut self, m: &mut Model, u: &mut Unstructured) -> Result<()> {
        let len = amount(u, m)?;
        let rets = step_returns(u)?;
        let (want, done) = expect_walk(m, len, &rets);
        let mut seen = Vec::new();
        let got = self.iterate(len, |chunk, progress| {
            let i = seen.len();
            seen.push((chunk.as_ptr() as usize, chunk.to_vec(), progress));
            rets.get(i).copied().unwrap_or(0)
        });
        assert_eq!(got, done, "iterate result");
        assert_eq!(seen.len(), want.len(), "iterate steps");
        for ((addr, bytes, progress), (q, l, p)) in seen.iter().zip(&want) {
            assert_eq!(
                (*addr, bytes.len(), *progress),
                (m.addr_of(*q), *l, *p),
                "step"
            );
            assert_eq!(&bytes[..], &m.bytes[*q..q + l], "step bytes");
        }
        m.take(done);
        Ok(())
    }

    fn chunks_op(&mut self, m: &mut Model, _u: &mut Unstructured) -> Result<()> {
        let got: Vec<(usize, Vec<u8>)> = self
            .chunks()
            .map(|c| (c.as_ptr() as usize, c.to_vec()))
            .collect();
        let want = m.pieces(m.pos, m.count);
        assert_eq!(got.len(), want.len(), "chunks");
        for ((addr, bytes), (q, l)) in got.iter().zip(&want) {
            assert_eq!((*addr, bytes.len()), (m.addr_of(*q), *l));
            assert_eq!(&bytes[..], &m.bytes[*q..q + l]);
        }
        Ok(())
    }

    fn page_op(&mut self, m: &mut Model, u: &mut Unstructured) -> Result<()> {
        let (off, bytes) = page_range(u)?;
        let mut page = Page::new();
        page.as_mut_bytes().fill(SENTINEL);
        let r = self.copy_page_from_iter(&mut page, off, bytes);
        if !range_ok(off, bytes) {
            assert_eq!(
                r,
                Err(Error::PageRange {
                    offset: off,
                    len: bytes
                })
            );
            assert!(untouched(page.as_bytes()));
            return Ok(());
        }
        let n = bytes.min(m.count);
        assert_eq!(r, Ok(n), "copy_page_from_iter");
        let p = page.as_bytes();
        assert_eq!(&p[off..off + n], m.ahead(n));
        assert!(untouched(&p[..off]) && untouched(&p[off + n..]));
        m.take(n);
        Ok(())
    }

    fn io_op(&mut self, m: &mut Model, u: &mut Unstructured) -> Result<()> {
        if u.ratio(1u8, 8)? && m.count <= MAX_COPY {
            let mut all = Vec::new();
            let n = self.read_to_end(&mut all).unwrap();
            assert_eq!(n, m.count);
            assert_eq!(&all[..], m.ahead(n));
            m.take(n);
            return Ok(());
        }
        let len = copy_len(u, m)?;
        let mut dst = vec![SENTINEL; len];
        let n = self.read(&mut dst).unwrap();
        assert_eq!(n, len.min(m.count), "read");
        assert_eq!(&dst[..n], m.ahead(n));
        m.take(n);
        Ok(())
    }

    fn twin_op(&mut self, m: &mut Model, u: &mut Unstructured) -> Result<()> {
        let k = amount(u, m)?;
        let len = copy_len(u, m)?;
        let k2 = k.min(m.count);
        let n = len.min(m.count - k2);
        let mut dst = vec![SENTINEL; len];
        if u.arbitrary()? {
            let mut twin = self.dup();
            twin.advance(k);
            assert_eq!(twin.copy_from_iter(&mut dst), n, "dup copy");
        } else {
            let mut twin = self.reborrow();
            twin.advance(k);
            assert_eq!(twin.copy_from_iter(&mut dst), n, "reborrow copy");
        }
        assert_eq!(&dst[..n], &m.bytes[m.pos + k2..m.pos + k2 + n]);
        Ok(())
    }
}

fn src_bytes(u: &mut Unstructured, len: usize) -> Result<Vec<u8>> {
    let at = u.int_in_range(0..=1023)?;
    Ok(pat(at, 0, len).to_vec())
}

impl<K: Kind> DirOps for IovIter<'_, Dest, K> {
    fn copy_op(&mut self, m: &mut Model, u: &mut Unstructured) -> Result<()> {
        let len = copy_len(u, m)?;
        let src = src_bytes(u, len)?;
        let n = self.copy_to_iter(&src);
        assert_eq!(n, len.min(m.count), "copy_to_iter");
        m.write(m.pos, &src[..n]);
        m.take(n);
        Ok(())
    }

    fn copy_full_op(&mut self, m: &mut Model, u: &mut Unstructured) -> Result<()> {
        let len = copy_len(u, m)?;
        let src = src_bytes(u, len)?;
        let ok = self.copy_to_iter_full(&src);
        assert_eq!(ok, len <= m.count, "copy_to_iter_full");
        if ok {
            m.write(m.pos, &src);
            m.take(len);
        }
        Ok(())
    }

    fn alt_copy_op(&mut self, m: &mut Model, u: &mut Unstructured) -> Result<()> {
        let len = amount(u, m)?;
        let n = self.zero(len);
        assert_eq!(n, len.min(m.count), "zero");
        m.fill(m.pos, n, 0);
        m.take(n);
        Ok(())
    }

    fn iterate_op(&mut self, m: &mut Model, u: &mut Unstructured) -> Result<()> {
        let len = amount(u, m)?;
        let rets = step_returns(u)?;
        let fill: u8 = u.arbitrary()?;
        let (want, done) = expect_walk(m, len, &rets);
        let mut seen = Vec::new();
        let got = self.iterate(len, |chunk, progress| {
            let i = seen.len();
            seen.push((chunk.as_ptr() as usize, chunk.len(), progress));
            // The whole chunk is written, processed or not.
            chunk.fill(fill.wrapping_add(i as u8));
            rets.get(i).copied().unwrap_or(0)
        });
        assert_eq!(got, done, "iterate result");
        assert_eq!(seen.len(), want.len(), "iterate steps");
        for (i, ((addr, len, progress), (q, l, p))) in seen.iter().zip(&want).enumerate() {
            assert_eq!((*addr, *len, *progress), (m.addr_of(*q), *l, *p), "step");
            m.fill(*q, *l, fill.wrapping_add(i as u8));
        }
        m.take(done);
        Ok(())
    }

    fn chunks_op(&mut self, m: &mut Model, u: &mut Unstructured) -> Result<()> {
        let fill: u8 = u.arbitrary()?;
        let mut seen = Vec::new();
        for (i, c) in self.chunks_mut().enumerate() {
            seen.push((c.as_ptr() as usize, c.len()));
            c.fill(fill ^ i as u8);
        }
        let want = m.pieces(m.pos, m.count);
        assert_eq!(seen.len(), want.len(), "chunks_mut");
        for (i, ((addr, len), (q, l))) in seen.iter().zip(&want).enumerate() {
            assert_eq!((*addr, *len), (m.addr_of(*q), *l));
            m.fill(*q, *l, fill ^ i as u8);
        }
        Ok(())
    }

    fn page_op(&mut self, m: &mut Model, u: &mut Unstructured) -> Result<()> {
        let (off, bytes) = page_range(u)?;
        let seed = u.int_in_range(0..=1023)?;
        let mut page = Page::new();
        page.as_mut_bytes().copy_from_slice(pat(seed, 0, PAGE_SIZE));
        let r = self.copy_page_to_iter(&page, off, bytes);
        if !range_ok(off, bytes) {
            assert_eq!(
                r,
                Err(Error::PageRange {
                    offset: off,
                    len: bytes
                })
            );
            return Ok(());
        }
        let n = bytes.min(m.count);
        assert_eq!(r, Ok(n), "copy_page_to_iter");
        m.write(m.pos, &page.as_bytes()[off..off + n]);
        m.take(n);
        Ok(())
    }

    fn io_op(&mut self, m: &mut Model, u: &mut Unstructured) -> Result<()> {
        let len = copy_len(u, m)?;
        let src = src_bytes(u, len)?;
        if u.arbitrary()? {
            let n = self.write(&src).unwrap();
            assert_eq!(n, len.min(m.count), "write");
            m.write(m.pos, &src[..n]);
            m.take(n);
        } else {
            let n = len.min(m.count);
            let r = self.write_all(&src);
            assert_eq!(r.is_ok(), len <= m.count, "write_all");
            if let Err(e) = r {
                assert_eq!(e.kind(), std::io::ErrorKind::WriteZero);
            }
            m.write(m.pos, &src[..n]);
            m.take(n);
        }
        self.flush().unwrap();
        Ok(())
    }

    fn twin_op(&mut self, m: &mut Model, u: &mut Unstructured) -> Result<()> {
        // Progress through a reborrow is not carried back; its writes are.
        let k = amount(u, m)?;
        let len = copy_len(u, m)?;
        let src = src_bytes(u, len)?;
        let k2 = k.min(m.count);
        let n = len.min(m.count - k2);
        let mut twin = self.reborrow();
        twin.advance(k);
        assert_eq!(twin.copy_to_iter(&src), n, "reborrow copy");
        m.write(m.pos + k2, &src[..n]);
        Ok(())
    }
}
