//! Ports of the kernel's KUnit iov_iter tests (`lib/tests/kunit_iov_iter.c`
//! in torvalds/linux; `lib/kunit_iov_iter.c` before 6.13) for the flavours
//! this crate has: KVEC and BVEC as in
//! mainline, plus the IOVEC and UBUF variants of dhowells' 2023 series.
//!
//! Fixtures as in the kernel: a 1 MiB page-aligned buffer (256 pages), the
//! *current* pattern `pattern(x) = (u8)x + (u8)(x >> 8) + (u8)(x >> 16)`, the
//! `kvec_test_ranges` and `bvec_test_ranges` tables exactly as given, and a
//! comparison of the whole 1 MiB image after each copy.
//!
//! Differences from the kernel, all forced by userspace:
//! - the kernel vmaps bulk-allocated pages (and swaps half of them so the
//!   buffer is not physically contiguous); here the KVEC/IOVEC/UBUF buffer is
//!   a `Vec<PageFrame>` seen as one slice, and a page's identity is its
//!   page-aligned address;
//! - the BVEC pages are 256 separate `Page::new()` allocations and our bvecs
//!   are single-page, so the loader never merges ranges: 8 bvecs, one per
//!   table row (the kernel's `iov_kunit_load_bvec` merges contiguous ranges
//!   of one page, giving 5 to 8 depending on the allocation; its checks do
//!   not depend on the count);
//! - UBUF has one buffer per iterator, so (like the kernel's folioq/xarray
//!   tests) each table range gets its own iterator.
//!
//! Everything is syscall-free and runs under Miri at full size (the pattern
//! is filled 256 bytes at a time so Miri stays fast).

use std::cmp::min;

use iov_iter::{
    Bvec, BvecSeg, BvecSegMut, Dest, Direction, IoSeg, IoSegMut, IovIter, Iovec, Kind, Kvec,
    PAGE_SIZE, Page, PageAddr, PageFrame, Source, Ubuf,
};

const BUFSIZE: usize = 0x10_0000;
const NPAGES: usize = BUFSIZE / PAGE_SIZE;

/// `kvec_test_ranges`: `{from, to}` byte offsets into the 1 MiB buffer.
const KVEC_TEST_RANGES: [(usize, usize); 8] = [
    (0x00002, 0x00002),
    (0x00027, 0x03000),
    (0x05193, 0x18794),
    (0x20000, 0x20000),
    (0x20000, 0x24000),
    (0x24000, 0x27001),
    (0x29000, 0xffffb),
    (0xffffd, 0xffffe),
];
/// The table's total: 0xf45d7 bytes in 8 segments (checked at compile
/// time below, so a typo in the table cannot pass for a crate bug).
const KVEC_TOTAL: usize = 0xf45d7;

/// `bvec_test_ranges`: `{page, from, to}`, offsets inside page `page`.
#[derive(Clone, Copy)]
struct BvecRange {
    page: usize,
    from: usize,
    to: usize,
}

const fn br(page: usize, from: usize, to: usize) -> BvecRange {
    BvecRange { page, from, to }
}

const BVEC_TEST_RANGES: [BvecRange; 8] = [
    br(0, 0x0002, 0x0002),
    br(1, 0x0027, 0x0893),
    br(2, 0x0193, 0x0794),
    br(3, 0x0000, 0x1000),
    br(4, 0x0000, 0x1000),
    br(5, 0x0000, 0x1000),
    br(6, 0x0000, 0x0ffb),
    br(6, 0x0ffd, 0x0ffe),
];
/// The table's total (checked at compile time below).
const BVEC_TOTAL: usize = 0x4e69;

/// The current kernel pattern.
const fn pattern(x: usize) -> u8 {
    (x as u8)
        .wrapping_add((x >> 8) as u8)
        .wrapping_add((x >> 16) as u8)
}

// The fixtures, checked when this file compiles (they are the test's own
// data, not the crate's behaviour): the tables add up to their totals, two
// kvec ranges are empty, every range is inside the buffer or its page, and
// the pattern has the kernel's values.
const _: () = {
    let (mut kvec, mut empty, mut i) = (0, 0, 0);
    while i < KVEC_TEST_RANGES.len() {
        let (f, t) = KVEC_TEST_RANGES[i];
        assert!(f <= t && t <= BUFSIZE);
        kvec += t - f;
        if f == t {
            empty += 1;
        }
        i += 1;
    }
    assert!(kvec == KVEC_TOTAL && empty == 2);
    let (mut bvec, mut i) = (0, 0);
    while i < BVEC_TEST_RANGES.len() {
        let r = BVEC_TEST_RANGES[i];
        assert!(r.from <= r.to && r.to <= PAGE_SIZE);
        bvec += r.to - r.from;
        i += 1;
    }
    assert!(bvec == BVEC_TOTAL);
    assert!(pattern(0x27) == 0x27);
    assert!(pattern(0x5193) == 0xe4); // 0x93 + 0x51
    assert!(pattern(0x10101) == 3);
    assert!(pattern(0xfffff) == 0x0d); // 0xff + 0xff + 0x0f = 0x20d
    assert!(pattern(0x100ff) == 0x00); // 0xff + 0x00 + 0x01
};

/// `RAMP[i] == i as u8`.
const RAMP: [u8; 512] = {
    let mut r = [0u8; 512];
    let mut i = 0;
    while i < 512 {
        r[i] = i as u8;
        i += 1;
    }
    r
};

/// Writes `pattern(start + k)` into `dst[k]`. Within an aligned 256-byte
/// block only the low byte of `x` changes, so the pattern there is a ramp
/// that goes up by one (mod 256): copy it from `RAMP` a block at a time
/// rather than byte by byte (Miri would take minutes over 1 MiB otherwise).
// Correct by construction: within one 256-byte block only the low byte of
// `x` changes, so the pattern steps by one, which is `RAMP` from `pattern(x)`
// (512 entries, so the wrap past 255 is there too).
fn fill_pattern(dst: &mut [u8], start: usize) {
    let mut k = 0;
    while k < dst.len() {
        let x = start + k;
        let n = min(256 - (x & 0xff), dst.len() - k);
        let c = pattern(x) as usize;
        dst[k..k + n].copy_from_slice(&RAMP[c..c + n]);
        k += n;
    }
}

/// `n` page frames, seen as one page-aligned contiguous byte buffer.
struct Buffer {
    frames: Vec<PageFrame>,
}

impl Buffer {
    fn new(n: usize) -> Buffer {
        let mut frames = Vec::with_capacity(n);
        for _ in 0..n {
            frames.push(PageFrame::zeroed());
        }
        Buffer { frames }
    }

    fn len(&self) -> usize {
        self.frames.len() * PAGE_SIZE
    }

    fn addr(&self) -> usize {
        self.frames.as_ptr() as usize
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: a Vec stores its elements contiguously; `PageFrame` is
        // `repr(C)` around `[u8; PAGE_SIZE]` with size == PAGE_SIZE (no
        // padding), so the `frames.len()` frames are `len()` initialised
        // bytes; the slice borrows `self`.
        unsafe { std::slice::from_raw_parts(self.frames.as_ptr().cast::<u8>(), self.len()) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        let len = self.len();
        // SAFETY: as in `bytes`; the exclusive borrow of `self` makes this the
        // only access for the slice's lifetime.
        unsafe { std::slice::from_raw_parts_mut(self.frames.as_mut_ptr().cast::<u8>(), len) }
    }
}

/// A 1 MiB buffer with `pattern(i)` at every byte `i`.
fn pattern_buffer() -> Buffer {
    let mut b = Buffer::new(NPAGES);
    fill_pattern(b.bytes_mut(), 0);
    b
}

/// Splits `buf` into disjoint slices at the (sorted, non-overlapping)
/// `ranges`, as `iov_kunit_load_kvec` points kvecs into the buffer.
fn split_ranges<'a>(mut buf: &'a mut [u8], ranges: &[(usize, usize)]) -> Vec<&'a mut [u8]> {
    let mut pos = 0;
    let mut out = Vec::with_capacity(ranges.len());
    for &(from, to) in ranges {
        assert!(pos <= from && from <= to, "ranges must be sorted");
        let rest = std::mem::take(&mut buf);
        let (_, rest) = rest.split_at_mut(from - pos);
        let (seg, rest) = rest.split_at_mut(to - from);
        out.push(seg);
        buf = rest;
        pos = to;
    }
    out
}

fn kvec_segs(buf: &[u8]) -> Vec<IoSeg<'_>> {
    KVEC_TEST_RANGES
        .iter()
        .map(|&(from, to)| IoSeg::new(&buf[from..to]))
        .collect()
}

fn kvec_segs_mut(buf: &mut [u8]) -> Vec<IoSegMut<'_>> {
    split_ranges(buf, &KVEC_TEST_RANGES)
        .into_iter()
        .map(IoSegMut::new)
        .collect()
}

/// 256 zeroed pages, the bvec fixture.
fn new_pages() -> Vec<Page> {
    (0..NPAGES).map(|_| Page::new()).collect()
}

/// 256 pages where byte `j` of page `k` is `pattern(k * PAGE_SIZE + j)`,
/// like the kernel's vmapped source buffer.
fn pattern_pages() -> Vec<Page> {
    let mut pages = new_pages();
    for (k, p) in pages.iter_mut().enumerate() {
        fill_pattern(p.as_mut_bytes(), k * PAGE_SIZE);
    }
    pages
}

fn bvec_segs(pages: &[Page]) -> Vec<BvecSeg<'_>> {
    BVEC_TEST_RANGES
        .iter()
        .map(|r| BvecSeg::new(&pages[r.page], r.from, r.to - r.from).unwrap())
        .collect()
}

/// One destination bvec per table row. Rows sharing a page (page 6) come
/// from one `bvecs_mut` call; the table is sorted by page, so walking the
/// pages in order keeps the table's order.
fn bvec_segs_mut(pages: &mut [Page]) -> Vec<BvecSegMut<'_>> {
    assert!(BVEC_TEST_RANGES.windows(2).all(|w| w[0].page <= w[1].page));
    let mut segs = Vec::new();
    for (idx, page) in pages.iter_mut().enumerate() {
        let rows: Vec<(usize, usize)> = BVEC_TEST_RANGES
            .iter()
            .filter(|r| r.page == idx)
            .map(|r| (r.from, r.to - r.from))
            .collect();
        match rows[..] {
            [] => {}
            [a] => segs.extend(page.bvecs_mut([a]).unwrap()),
            [a, b] => segs.extend(page.bvecs_mut([a, b]).unwrap()),
            _ => panic!("more than two rows in page {idx}"),
        }
    }
    assert_eq!(segs.len(), BVEC_TEST_RANGES.len());
    segs
}

/// The image `copy_to_*` must leave: `pattern(0), pattern(1), ...` (one
/// running counter) in each range, in order, and zeros elsewhere.
fn expected_to_image(ranges: impl Iterator<Item = (usize, usize)>) -> Vec<u8> {
    let mut img = vec![0u8; BUFSIZE];
    let mut patt = 0;
    for (from, to) in ranges {
        fill_pattern(&mut img[from..to], patt);
        patt += to - from;
    }
    img
}

/// The stream `copy_from_*` must produce: `pattern(j)` for each `j` in each
/// range (absolute buffer offsets), concatenated, then zeros.
fn expected_from_image(ranges: impl Iterator<Item = (usize, usize)>) -> Vec<u8> {
    let mut img = vec![0u8; BUFSIZE];
    let mut i = 0;
    for (from, to) in ranges {
        fill_pattern(&mut img[i..i + (to - from)], from);
        i += to - from;
    }
    img
}

fn kvec_abs_ranges() -> impl Iterator<Item = (usize, usize)> {
    KVEC_TEST_RANGES.iter().copied()
}

fn bvec_abs_ranges() -> impl Iterator<Item = (usize, usize)> {
    BVEC_TEST_RANGES
        .iter()
        .map(|r| (r.page * PAGE_SIZE + r.from, r.page * PAGE_SIZE + r.to))
}

/// Compares whole images and names the first differing offset.
fn assert_image(got: &[u8], want: &[u8]) {
    assert_eq!(got.len(), want.len());
    if got != want {
        let i = got.iter().zip(want).position(|(a, b)| a != b).unwrap();
        panic!(
            "image differs at i={i:#x}: got {:#04x}, want {:#04x}",
            got[i], want[i]
        );
    }
}

fn pages_image(pages: &[Page]) -> Vec<u8> {
    let mut img = Vec::with_capacity(BUFSIZE);
    for p in pages {
        img.extend_from_slice(p.as_bytes());
    }
    img
}

// ------------------------------------------------------------- copy to/from

/// `copy_to_iter` of the whole count; the kernel's three expectations.
fn copy_to_all<K: Kind>(it: &mut IovIter<'_, Dest, K>, scratch: &[u8], want_size: usize) {
    let size = it.count();
    assert_eq!(size, want_size);
    let copied = it.copy_to_iter(&scratch[..size]);
    assert_eq!(copied, size);
    assert_eq!(it.count(), 0);
    assert_eq!(it.nr_segs(), 0);
}

/// `copy_from_iter` into `scratch`; the kernel's three expectations.
fn copy_from_all<K: Kind>(it: &mut IovIter<'_, Source, K>, scratch: &mut [u8], want: usize) {
    assert_eq!(it.count(), want);
    let copied = it.copy_from_iter(scratch);
    assert_eq!(copied, want);
    assert_eq!(it.count(), 0);
    assert_eq!(it.nr_segs(), 0);
}

#[test]
fn copy_to_kvec() {
    let scratch = pattern_buffer();
    let mut buffer = Buffer::new(NPAGES);
    {
        let mut segs = kvec_segs_mut(buffer.bytes_mut());
        let mut it = IovIter::<Dest, Kvec>::new(&mut segs);
        assert_eq!(it.nr_segs(), 8);
        copy_to_all(&mut it, scratch.bytes(), KVEC_TOTAL);
    }
    assert_image(buffer.bytes(), &expected_to_image(kvec_abs_ranges()));
}

#[test]
fn copy_from_kvec() {
    let buffer = pattern_buffer();
    let mut scratch = Buffer::new(NPAGES);
    {
        let segs = kvec_segs(buffer.bytes());
        let mut it = IovIter::<Source, Kvec>::new(&segs);
        let size = min(it.count(), BUFSIZE);
        copy_from_all(&mut it, &mut scratch.bytes_mut()[..size], KVEC_TOTAL);
    }
    assert_image(scratch.bytes(), &expected_from_image(kvec_abs_ranges()));
}

#[test]
fn copy_to_iovec() {
    let scratch = pattern_buffer();
    let mut buffer = Buffer::new(NPAGES);
    {
        let mut segs = kvec_segs_mut(buffer.bytes_mut());
        let mut it = IovIter::<Dest, Iovec>::new(&mut segs);
        assert_eq!(it.nr_segs(), 8);
        copy_to_all(&mut it, scratch.bytes(), KVEC_TOTAL);
    }
    assert_image(buffer.bytes(), &expected_to_image(kvec_abs_ranges()));
}

#[test]
fn copy_from_iovec() {
    let buffer = pattern_buffer();
    let mut scratch = Buffer::new(NPAGES);
    {
        let segs = kvec_segs(buffer.bytes());
        let mut it = IovIter::<Source, Iovec>::new(&segs);
        // Offer the whole 1 MiB: the copy must stop at `count` and write
        // nothing past it (the image's zero tail checks that).
        copy_from_all(&mut it, scratch.bytes_mut(), KVEC_TOTAL);
    }
    assert_image(scratch.bytes(), &expected_from_image(kvec_abs_ranges()));
}

#[test]
fn copy_to_bvec() {
    let scratch = pattern_buffer();
    let mut pages = new_pages();
    {
        let mut segs = bvec_segs_mut(&mut pages);
        let mut it = IovIter::<Dest, Bvec>::new(&mut segs);
        assert_eq!(it.nr_segs(), 8);
        copy_to_all(&mut it, scratch.bytes(), BVEC_TOTAL);
    }
    assert_image(&pages_image(&pages), &expected_to_image(bvec_abs_ranges()));
}

#[test]
fn copy_from_bvec() {
    let pages = pattern_pages();
    let mut scratch = Buffer::new(NPAGES);
    {
        let segs = bvec_segs(&pages);
        let mut it = IovIter::<Source, Bvec>::new(&segs);
        let size = min(it.count(), BUFSIZE);
        copy_from_all(&mut it, &mut scratch.bytes_mut()[..size], BVEC_TOTAL);
    }
    assert_image(scratch.bytes(), &expected_from_image(bvec_abs_ranges()));
}

#[test]
fn copy_to_ubuf() {
    let scratch = pattern_buffer();
    let mut buffer = Buffer::new(NPAGES);
    let buf = buffer.bytes_mut();
    let mut i = 0;
    for &(from, to) in &KVEC_TEST_RANGES {
        let size = to - from;
        let mut it = IovIter::<Dest, Ubuf>::new(&mut buf[from..to]);
        assert_eq!(it.count(), size);
        let copied = it.copy_to_iter(&scratch.bytes()[i..i + size]);
        assert_eq!(copied, size);
        assert_eq!(it.count(), 0);
        assert_eq!(it.nr_segs(), 1, "a ubuf always has one segment");
        assert_eq!(
            it.iov_offset(),
            size,
            "ubuf keeps its base, moves the offset"
        );
        i += size;
    }
    assert_eq!(i, KVEC_TOTAL);
    assert_image(buffer.bytes(), &expected_to_image(kvec_abs_ranges()));
}

#[test]
fn copy_from_ubuf() {
    let buffer = pattern_buffer();
    let mut scratch = Buffer::new(NPAGES);
    let out = scratch.bytes_mut();
    let mut i = 0;
    for &(from, to) in &KVEC_TEST_RANGES {
        let size = to - from;
        let mut it = IovIter::<Source, Ubuf>::new(&buffer.bytes()[from..to]);
        // Offer everything left of the scratch buffer: only `size` may land.
        let copied = it.copy_from_iter(&mut out[i..]);
        assert_eq!(copied, size);
        assert_eq!(it.count(), 0);
        assert_eq!(it.nr_segs(), 1);
        assert_eq!(it.iov_offset(), size);
        i += size;
    }
    assert_eq!(i, KVEC_TOTAL);
    assert_image(scratch.bytes(), &expected_from_image(kvec_abs_ranges()));
}

// ------------------------------------------------------------- extract_pages

/// The loop of `iov_kunit_extract_pages_{kvec,bvec}`: extract with
/// `maxsize = 100 KiB` into an 8-entry page list until the iterator is empty,
/// and walk the returned pages alongside the ranges. `ranges` are the
/// `(from, to)` offsets the kernel walks (`from` tracks the position in the
/// current range); `page_of(r, from)` is the page that must hold byte `from`
/// of range `r`. Returns the bytes left unaccounted (must be 0).
fn check_extract<D: Direction, K: Kind>(
    it: &mut IovIter<'_, D, K>,
    ranges: &[(usize, usize)],
    page_of: impl Fn(usize, usize) -> usize,
) -> usize {
    const MAXPAGES: usize = 8;
    let mut size = it.count();
    let mut r = 0;
    let mut from = ranges[0].0;
    let mut pages: Vec<PageAddr> = Vec::with_capacity(MAXPAGES);
    let mut calls = 0;
    loop {
        pages.clear();
        let got = it
            .extract_pages(100 * 1024, MAXPAGES, &mut pages)
            .expect("extract_pages failed");
        calls += 1;
        let mut len = got.bytes;
        assert!(len <= size, "len {len:#x} > remaining {size:#x}");
        assert_eq!(it.count(), size - len);
        assert_eq!(got.npages, pages.len());
        assert!(pages.len() <= MAXPAGES);
        size -= len;
        if len == 0 {
            break;
        }
        let mut offset0 = got.offset0;
        assert!(offset0 < PAGE_SIZE);

        let mut used = 0;
        for (i, &page) in pages.iter().enumerate() {
            let part = min(len, PAGE_SIZE - offset0);
            while from == ranges[r].1 {
                r += 1;
                assert!(r < ranges.len(), "extracted past the end of the table");
                from = ranges[r].0;
            }
            assert_eq!(
                page,
                PageAddr(page_of(r, from)),
                "call {calls}, page {i}: range {r}, from {from:#x}"
            );
            assert_eq!(offset0, from % PAGE_SIZE, "call {calls}, page {i}");
            from += part;
            len -= part;
            used = i + 1;
            if len == 0 {
                break;
            }
            offset0 = 0;
        }
        assert_eq!(len, 0, "call {calls}: the pages do not cover the bytes");
        assert_eq!(used, pages.len(), "call {calls}: more pages than bytes");
        if it.count() == 0 {
            break;
        }
    }
    assert_eq!(it.count(), 0);
    size
}

#[test]
fn extract_pages_kvec() {
    let mut buffer = Buffer::new(NPAGES);
    let base = buffer.addr();
    let mut segs = kvec_segs_mut(buffer.bytes_mut());
    let mut it = IovIter::<Dest, Kvec>::new(&mut segs);
    assert_eq!(it.count(), KVEC_TOTAL);
    let left = check_extract(&mut it, &KVEC_TEST_RANGES, |_, from| {
        base + from / PAGE_SIZE * PAGE_SIZE
    });
    assert_eq!(left, 0);
    assert_eq!(it.iov_offset(), 0);
    assert_eq!(it.nr_segs(), 0);
}

#[test]
fn extract_pages_iovec() {
    let buffer = Buffer::new(NPAGES);
    let base = buffer.addr();
    let segs = kvec_segs(buffer.bytes());
    let mut it = IovIter::<Source, Iovec>::new(&segs);
    let left = check_extract(&mut it, &KVEC_TEST_RANGES, |_, from| {
        base + from / PAGE_SIZE * PAGE_SIZE
    });
    assert_eq!(left, 0);
    assert_eq!(it.iov_offset(), 0);
    assert_eq!(it.nr_segs(), 0);
}

#[test]
fn extract_pages_bvec() {
    let mut pages = new_pages();
    let addrs: Vec<usize> = pages.iter().map(Page::addr).collect();
    let mut segs = bvec_segs_mut(&mut pages);
    let mut it = IovIter::<Dest, Bvec>::new(&mut segs);
    assert_eq!(it.count(), BVEC_TOTAL);
    let ranges: Vec<(usize, usize)> = BVEC_TEST_RANGES.iter().map(|r| (r.from, r.to)).collect();
    // The kernel's `pr->page + from / PAGE_SIZE`.
    let left = check_extract(&mut it, &ranges, |r, from| {
        addrs[BVEC_TEST_RANGES[r].page + from / PAGE_SIZE]
    });
    assert_eq!(left, 0);
    assert_eq!(it.iov_offset(), 0);
    assert_eq!(it.nr_segs(), 0);
}

/// The unmerged bvecs give exactly these extractions: the empty first bvec
/// is popped, then one call per run of bvecs that end and start on page
/// boundaries (pages 3, 4, 5 and the first range of page 6 form one run).
#[test]
fn extract_pages_bvec_runs() {
    let pages = pattern_pages();
    let segs = bvec_segs(&pages);
    let mut it = IovIter::<Source, Bvec>::new(&segs);
    let mut out = Vec::new();
    let mut calls = Vec::new();
    while !it.is_empty() {
        out.clear();
        let got = it.extract_pages(100 * 1024, 8, &mut out).unwrap();
        assert!(got.bytes > 0);
        let ids: Vec<usize> = out
            .iter()
            .map(|a| pages.iter().position(|p| p.addr() == a.0).unwrap())
            .collect();
        calls.push((got.bytes, got.offset0, ids));
    }
    assert_eq!(
        calls,
        vec![
            (0x86c, 0x27, vec![1]),
            (0x601, 0x193, vec![2]),
            (0x3000 + 0xffb, 0, vec![3, 4, 5, 6]),
            (1, 0xffd, vec![6]),
        ]
    );
}

#[test]
fn extract_pages_ubuf() {
    let mut buffer = Buffer::new(NPAGES);
    let base = buffer.addr();
    let buf = buffer.bytes_mut();
    for &(from, to) in &KVEC_TEST_RANGES {
        let mut it = IovIter::<Dest, Ubuf>::new(&mut buf[from..to]);
        let left = check_extract(&mut it, &[(from, to)], |_, f| {
            base + f / PAGE_SIZE * PAGE_SIZE
        });
        assert_eq!(left, 0);
        assert_eq!(it.iov_offset(), to - from);
        assert_eq!(it.nr_segs(), 1);
    }
}
