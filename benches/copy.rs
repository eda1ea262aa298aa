//! Copy throughput of every iterator kind against two baselines on the same
//! segment layout, plus advance/revert and `import_iovec` (with a count of
//! heap allocations per call).
//!
//! ```text
//! cargo bench --bench copy            # ~3-4 minutes on 2 cores
//! cargo run --release --example copy_report   # markdown table from the results
//! ```
//!
//! Every copy moves 64 KiB between one contiguous buffer and a segment
//! layout: 1×64 KiB, 16×4 KiB, 128×512 B or 1024×64 B. Buffers are 4 KiB
//! aligned and small enough to stay in L2: this measures the iterator's
//! overhead on top of `memcpy`, not DRAM bandwidth.
//!
//! - `copy_to/<kind>/<layout>`: `copy_to_iter` from the contiguous buffer
//!   into the segments (a `read`); `copy_from/...`: `copy_from_iter` out of
//!   the segments into the contiguous buffer (a `write`). The iterator is
//!   built inside the timed loop (a user pays for it on every call);
//!   `copy_to_prebuilt` / `copy_from_prebuilt` build it once and rewind it
//!   with `restore` (O(1)) instead.
//! - Baselines on the same layout: `memcpy` is a plain loop of
//!   `copy_from_slice` over the segment slices; `std` is `Read::read_vectored`
//!   of a `&[u8]` into `IoSliceMut`s (copy_to) and `Write::write_vectored` of
//!   `IoSlice`s into a `&mut [u8]` (copy_from); both std impls fill every
//!   buffer in one call. `memcpy-pages` / `std-pages` are the same over the
//!   pages a `Bvec` uses.
//! - `Ubuf` has one segment: only the 1×64 KiB layout. `Discard` copies
//!   nothing (copy_to only). A bvec never crosses a page, so `Bvec` at
//!   "1x64KiB" is 16 full pages, the same layout as 16×4 KiB.
//! - `advance_revert/<kind>/<layout>`: `advance(64 KiB)` then `revert(64 KiB)`
//!   on a prebuilt source iterator; `advance_revert_step` advances one
//!   segment per call instead.
//! - `import_iovec/{fresh,reused}/<n>`: `import_iovec` of n 64-byte segments
//!   with a new `IovecArray` per call, or one kept across calls.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput, measurement::WallTime};
use iov_iter::{
    AnyIter, Bvec, BvecSeg, BvecSegMut, Dest, Discard, IoSeg, IoSegMut, IovIter, Iovec, IovecArray,
    Kvec, PAGE_SIZE, Page, Source, Ubuf, UserIovec, import_iovec,
};

// ---------------------------------------------------------------------------
// Counting allocator.

/// `System`, counting allocations and reallocations.
struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static REALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        // SAFETY: forwarded with the caller's promises.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        // SAFETY: forwarded with the caller's promises.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        REALLOCS.fetch_add(1, Relaxed);
        // SAFETY: forwarded with the caller's promises.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's promises.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// (allocations, reallocations) made while `f` runs on this (the only) thread.
fn count_allocs<R>(f: impl FnOnce() -> R) -> (usize, usize) {
    let (a0, r0) = (ALLOCS.load(Relaxed), REALLOCS.load(Relaxed));
    black_box(f());
    (ALLOCS.load(Relaxed) - a0, REALLOCS.load(Relaxed) - r0)
}

// ---------------------------------------------------------------------------
// Layouts and buffers.

const TOTAL: usize = 64 * 1024;

#[derive(Clone, Copy)]
struct Shape {
    name: &'static str,
    nsegs: usize,
    seg: usize,
}

const SHAPES: [Shape; 4] = [
    Shape {
        name: "1x64KiB",
        nsegs: 1,
        seg: 64 * 1024,
    },
    Shape {
        name: "16x4KiB",
        nsegs: 16,
        seg: 4096,
    },
    Shape {
        name: "128x512B",
        nsegs: 128,
        seg: 512,
    },
    Shape {
        name: "1024x64B",
        nsegs: 1024,
        seg: 64,
    },
];

impl Shape {
    /// The segment length a bvec can have: at most a page.
    fn bvec_seg(self) -> usize {
        self.seg.min(PAGE_SIZE)
    }
}

/// A 4 KiB-aligned zeroed buffer of `len` bytes (over-allocated `Vec`).
struct Aligned {
    v: Vec<u8>,
    off: usize,
    len: usize,
}

impl Aligned {
    fn new(len: usize) -> Self {
        let v = vec![0u8; len + PAGE_SIZE];
        let off = v.as_ptr().align_offset(PAGE_SIZE);
        Aligned { v, off, len }
    }
    fn patterned(len: usize, seed: u8) -> Self {
        let mut a = Self::new(len);
        for (i, b) in a.bytes_mut().iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(31).wrapping_add(seed);
        }
        a
    }
    fn bytes(&self) -> &[u8] {
        &self.v[self.off..self.off + self.len]
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.v[self.off..self.off + self.len]
    }
}

fn pages() -> Vec<Page> {
    (0..TOTAL / PAGE_SIZE)
        .map(|k| {
            let mut p = Page::new();
            for (i, b) in p.as_mut_bytes().iter_mut().enumerate() {
                *b = (i as u8).wrapping_mul(7).wrapping_add(k as u8);
            }
            p
        })
        .collect()
}

/// Destination bvecs of `PAGE_SIZE / N` bytes, N per page.
fn bvecs_mut_n<const N: usize>(pages: &mut [Page]) -> Vec<BvecSegMut<'_>> {
    let len = PAGE_SIZE / N;
    let mut v = Vec::with_capacity(pages.len() * N);
    for p in pages {
        v.extend(
            p.bvecs_mut(core::array::from_fn::<_, N, _>(|i| (i * len, len)))
                .unwrap(),
        );
    }
    v
}

fn bvecs_mut(pages: &mut [Page], seg: usize) -> Vec<BvecSegMut<'_>> {
    match PAGE_SIZE / seg {
        1 => bvecs_mut_n::<1>(pages),
        8 => bvecs_mut_n::<8>(pages),
        64 => bvecs_mut_n::<64>(pages),
        n => unreachable!("{n} bvecs per page"),
    }
}

fn bvecs(pages: &[Page], seg: usize) -> Vec<BvecSeg<'_>> {
    pages
        .iter()
        .flat_map(|p| (0..PAGE_SIZE / seg).map(move |i| BvecSeg::new(p, i * seg, seg).unwrap()))
        .collect()
}

/// The slices of every page, cut into `seg`-byte pieces.
fn page_slices_mut(pages: &mut [Page], seg: usize) -> Vec<&mut [u8]> {
    pages
        .iter_mut()
        .flat_map(|p| p.as_mut_bytes().chunks_mut(seg))
        .collect()
}

fn page_slices(pages: &[Page], seg: usize) -> Vec<&[u8]> {
    pages
        .iter()
        .flat_map(|p| p.as_bytes().chunks(seg))
        .collect()
}

// ---------------------------------------------------------------------------
// Baselines.

/// Scatter `src` into `segs` with a plain `copy_from_slice` loop.
#[inline(never)]
fn memcpy_scatter(src: &[u8], segs: &mut [&mut [u8]]) -> usize {
    let mut off = 0;
    for s in segs.iter_mut() {
        let n = s.len();
        s.copy_from_slice(&src[off..off + n]);
        off += n;
    }
    off
}

/// Gather `segs` into `dst` with a plain `copy_from_slice` loop.
#[inline(never)]
fn memcpy_gather(segs: &[&[u8]], dst: &mut [u8]) -> usize {
    let mut off = 0;
    for s in segs {
        let n = s.len();
        dst[off..off + n].copy_from_slice(s);
        off += n;
    }
    off
}

fn std_scatter(src: &[u8], bufs: &mut [IoSliceMut<'_>]) -> usize {
    let mut r: &[u8] = src;
    r.read_vectored(bufs).unwrap()
}

fn std_gather(bufs: &[IoSlice<'_>], dst: &mut [u8]) -> usize {
    let mut w: &mut [u8] = dst;
    w.write_vectored(bufs).unwrap()
}

// ---------------------------------------------------------------------------
// Correctness of what is timed (once, before timing).

fn check_copies() {
    let src = Aligned::patterned(TOTAL, 1);
    for sh in SHAPES {
        // copy_to through every array kind lands the same bytes as memcpy.
        let mut a = Aligned::new(TOTAL);
        let mut segs: Vec<IoSegMut<'_>> = a
            .bytes_mut()
            .chunks_mut(sh.seg)
            .map(IoSegMut::new)
            .collect();
        assert_eq!(
            IovIter::<Dest, Iovec>::new(&mut segs).copy_to_iter(src.bytes()),
            TOTAL
        );
        drop(segs);
        assert_eq!(a.bytes(), src.bytes());

        let mut pg = pages();
        let mut bv = bvecs_mut(&mut pg, sh.bvec_seg());
        assert_eq!(bv.len(), TOTAL / sh.bvec_seg());
        assert_eq!(
            IovIter::<Dest, Bvec>::new(&mut bv).copy_to_iter(src.bytes()),
            TOTAL
        );
        drop(bv);
        let back: Vec<u8> = pg
            .iter()
            .flat_map(|p| p.as_bytes().iter().copied())
            .collect();
        assert_eq!(&back[..], src.bytes());

        let mut out = vec![0u8; TOTAL];
        let bv = bvecs(&pg, sh.bvec_seg());
        assert_eq!(
            IovIter::<Source, Bvec>::new(&bv).copy_from_iter(&mut out),
            TOTAL
        );
        assert_eq!(&out[..], src.bytes());

        let segs: Vec<IoSeg<'_>> = src.bytes().chunks(sh.seg).map(IoSeg::new).collect();
        let mut out = vec![0u8; TOTAL];
        assert_eq!(
            IovIter::<Source, Kvec>::new(&segs).copy_from_iter(&mut out),
            TOTAL
        );
        assert_eq!(&out[..], src.bytes());
    }
}

/// The issue's size target: an iterator is at most 40 bytes, like the
/// kernel's `struct iov_iter`.
fn check_sizes() {
    use std::mem::size_of;
    let sizes = [
        (
            "IovIter<Source, Iovec>",
            size_of::<IovIter<'static, Source, Iovec>>(),
        ),
        (
            "IovIter<Dest, Iovec>",
            size_of::<IovIter<'static, Dest, Iovec>>(),
        ),
        (
            "IovIter<Source, Kvec>",
            size_of::<IovIter<'static, Source, Kvec>>(),
        ),
        (
            "IovIter<Dest, Bvec>",
            size_of::<IovIter<'static, Dest, Bvec>>(),
        ),
        (
            "IovIter<Source, Ubuf>",
            size_of::<IovIter<'static, Source, Ubuf>>(),
        ),
        (
            "IovIter<Dest, Discard>",
            size_of::<IovIter<'static, Dest, Discard>>(),
        ),
        ("AnyIter<Source>", size_of::<AnyIter<'static, Source>>()),
    ];
    for (name, s) in sizes {
        println!("size_of::<{name}>() = {s} bytes");
    }
    for (name, s) in &sizes[..6] {
        assert!(*s <= 40, "{name} is {s} bytes, over the 40-byte target");
    }
}

/// `import_iovec` allocations per call: the issue's target is none for up to
/// `UIO_FASTIOV` (8) segments.
fn check_import_allocs() {
    let buf = Aligned::patterned(TOTAL, 3);
    for n in [1usize, 8, 9, 1024] {
        let uv = user_iovecs(&buf, n);
        // Warm once so lazy runtime allocations are not counted.
        let mut st = IovecArray::new();
        // SAFETY: the iovecs describe `buf`, alive and unwritten meanwhile.
        let _ = unsafe { import_iovec::<Source>(&uv, &mut st) }
            .unwrap()
            .count();
        let (fa, fr) = count_allocs(|| {
            let mut st = IovecArray::new();
            // SAFETY: as above.
            let c = unsafe { import_iovec::<Source>(&uv, &mut st) }
                .unwrap()
                .count();
            assert_eq!(st.spilled(), n > 8);
            c
        });
        let (ra, rr) = count_allocs(|| {
            // SAFETY: as above.
            unsafe { import_iovec::<Source>(&uv, &mut st) }
                .unwrap()
                .count()
        });
        println!(
            "import_iovec({n:4} segs): fresh IovecArray: {fa} alloc + {fr} realloc per call; \
             reused IovecArray: {ra} alloc + {rr} realloc per call"
        );
        if n <= 8 {
            assert_eq!((fa, fr), (0, 0), "import_iovec of {n} segments allocated");
        } else {
            assert!(
                fa >= 1,
                "import_iovec of {n} segments must spill to the heap"
            );
        }
        assert_eq!(
            (ra, rr),
            (0, 0),
            "a reused IovecArray must not allocate again"
        );
    }
}

fn user_iovecs(buf: &Aligned, n: usize) -> Vec<UserIovec> {
    buf.bytes()
        .chunks(64)
        .take(n)
        .map(|c| UserIovec::new(c.as_ptr().cast_mut(), c.len()))
        .collect()
}

// ---------------------------------------------------------------------------
// Benches.

type Group<'c> = BenchmarkGroup<'c, WallTime>;

fn group<'c>(c: &'c mut Criterion, name: &str) -> Group<'c> {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Bytes(TOTAL as u64));
    g
}

/// copy_to_iter (contiguous → segments), iterator built in the loop, and the
/// scatter baselines.
fn bench_copy_to(c: &mut Criterion) {
    let src = Aligned::patterned(TOTAL, 1);
    let src = src.bytes();
    let mut g = group(c, "copy_to");
    for sh in SHAPES {
        let id = |k: &str| BenchmarkId::new(k, sh.name);
        let mut buf = Aligned::new(TOTAL);
        {
            let mut segs: Vec<IoSegMut<'_>> = buf
                .bytes_mut()
                .chunks_mut(sh.seg)
                .map(IoSegMut::new)
                .collect();
            g.bench_function(id("Iovec"), |b| {
                b.iter(|| {
                    IovIter::<Dest, Iovec>::new(black_box(&mut segs)).copy_to_iter(black_box(src))
                })
            });
            g.bench_function(id("Kvec"), |b| {
                b.iter(|| {
                    IovIter::<Dest, Kvec>::new(black_box(&mut segs)).copy_to_iter(black_box(src))
                })
            });
        }
        if sh.nsegs == 1 {
            let bytes = buf.bytes_mut();
            g.bench_function(id("Ubuf"), |b| {
                b.iter(|| {
                    IovIter::<Dest, Ubuf>::new(black_box(&mut *bytes)).copy_to_iter(black_box(src))
                })
            });
            g.bench_function(id("Discard"), |b| {
                b.iter(|| {
                    IovIter::<Dest, Discard>::new(black_box(TOTAL)).copy_to_iter(black_box(src))
                })
            });
        }
        {
            let mut slices: Vec<&mut [u8]> = buf.bytes_mut().chunks_mut(sh.seg).collect();
            g.bench_function(id("memcpy"), |b| {
                b.iter(|| memcpy_scatter(black_box(src), black_box(&mut slices)))
            });
        }
        {
            let mut ios: Vec<IoSliceMut<'_>> = buf
                .bytes_mut()
                .chunks_mut(sh.seg)
                .map(IoSliceMut::new)
                .collect();
            g.bench_function(id("std"), |b| {
                b.iter(|| std_scatter(black_box(src), black_box(&mut ios)))
            });
        }
        let mut pg = pages();
        {
            let mut bv = bvecs_mut(&mut pg, sh.bvec_seg());
            g.bench_function(id("Bvec"), |b| {
                b.iter(|| {
                    IovIter::<Dest, Bvec>::new(black_box(&mut bv)).copy_to_iter(black_box(src))
                })
            });
        }
        {
            let mut slices = page_slices_mut(&mut pg, sh.bvec_seg());
            g.bench_function(id("memcpy-pages"), |b| {
                b.iter(|| memcpy_scatter(black_box(src), black_box(&mut slices)))
            });
        }
        {
            let mut ios: Vec<IoSliceMut<'_>> = page_slices_mut(&mut pg, sh.bvec_seg())
                .into_iter()
                .map(IoSliceMut::new)
                .collect();
            g.bench_function(id("std-pages"), |b| {
                b.iter(|| std_scatter(black_box(src), black_box(&mut ios)))
            });
        }
    }
    g.finish();
}

/// copy_to_iter with the iterator built once and rewound with `restore`.
fn bench_copy_to_prebuilt(c: &mut Criterion) {
    let src = Aligned::patterned(TOTAL, 1);
    let src = src.bytes();
    let mut g = group(c, "copy_to_prebuilt");
    macro_rules! prebuilt {
        ($id:expr, $it:expr) => {{
            let mut it = $it;
            let st = it.save_state();
            g.bench_function($id, |b| {
                b.iter(|| {
                    it.restore(&st).unwrap();
                    it.copy_to_iter(black_box(src))
                })
            });
        }};
    }
    for sh in SHAPES {
        let id = |k: &str| BenchmarkId::new(k, sh.name);
        let mut buf = Aligned::new(TOTAL);
        {
            let mut segs: Vec<IoSegMut<'_>> = buf
                .bytes_mut()
                .chunks_mut(sh.seg)
                .map(IoSegMut::new)
                .collect();
            prebuilt!(id("Iovec"), IovIter::<Dest, Iovec>::new(&mut segs));
            prebuilt!(id("Kvec"), IovIter::<Dest, Kvec>::new(&mut segs));
        }
        if sh.nsegs == 1 {
            prebuilt!(id("Ubuf"), IovIter::<Dest, Ubuf>::new(buf.bytes_mut()));
            prebuilt!(id("Discard"), IovIter::<Dest, Discard>::new(TOTAL));
        }
        let mut pg = pages();
        let mut bv = bvecs_mut(&mut pg, sh.bvec_seg());
        prebuilt!(id("Bvec"), IovIter::<Dest, Bvec>::new(&mut bv));
    }
    g.finish();
}

/// copy_from_iter (segments → contiguous), iterator built in the loop, and
/// the gather baselines.
fn bench_copy_from(c: &mut Criterion) {
    let mut dst = Aligned::new(TOTAL);
    let dst = dst.bytes_mut();
    let buf = Aligned::patterned(TOTAL, 2);
    let pg = pages();
    let mut g = group(c, "copy_from");
    for sh in SHAPES {
        let id = |k: &str| BenchmarkId::new(k, sh.name);
        let segs: Vec<IoSeg<'_>> = buf.bytes().chunks(sh.seg).map(IoSeg::new).collect();
        g.bench_function(id("Iovec"), |b| {
            b.iter(|| {
                IovIter::<Source, Iovec>::new(black_box(&segs)).copy_from_iter(black_box(&mut *dst))
            })
        });
        g.bench_function(id("Kvec"), |b| {
            b.iter(|| {
                IovIter::<Source, Kvec>::new(black_box(&segs)).copy_from_iter(black_box(&mut *dst))
            })
        });
        if sh.nsegs == 1 {
            g.bench_function(id("Ubuf"), |b| {
                b.iter(|| {
                    IovIter::<Source, Ubuf>::new(black_box(buf.bytes()))
                        .copy_from_iter(black_box(&mut *dst))
                })
            });
        }
        let slices: Vec<&[u8]> = buf.bytes().chunks(sh.seg).collect();
        g.bench_function(id("memcpy"), |b| {
            b.iter(|| memcpy_gather(black_box(&slices), black_box(&mut *dst)))
        });
        let ios: Vec<IoSlice<'_>> = buf.bytes().chunks(sh.seg).map(IoSlice::new).collect();
        g.bench_function(id("std"), |b| {
            b.iter(|| std_gather(black_box(&ios), black_box(&mut *dst)))
        });

        let bv = bvecs(&pg, sh.bvec_seg());
        g.bench_function(id("Bvec"), |b| {
            b.iter(|| {
                IovIter::<Source, Bvec>::new(black_box(&bv)).copy_from_iter(black_box(&mut *dst))
            })
        });
        let slices = page_slices(&pg, sh.bvec_seg());
        g.bench_function(id("memcpy-pages"), |b| {
            b.iter(|| memcpy_gather(black_box(&slices), black_box(&mut *dst)))
        });
        let ios: Vec<IoSlice<'_>> = slices.iter().map(|s| IoSlice::new(s)).collect();
        g.bench_function(id("std-pages"), |b| {
            b.iter(|| std_gather(black_box(&ios), black_box(&mut *dst)))
        });
    }
    g.finish();
}

/// copy_from_iter with the iterator built once and rewound with `restore`.
fn bench_copy_from_prebuilt(c: &mut Criterion) {
    let mut dst = Aligned::new(TOTAL);
    let dst = dst.bytes_mut();
    let buf = Aligned::patterned(TOTAL, 2);
    let pg = pages();
    let mut g = group(c, "copy_from_prebuilt");
    macro_rules! prebuilt {
        ($id:expr, $it:expr) => {{
            let mut it = $it;
            let st = it.save_state();
            g.bench_function($id, |b| {
                b.iter(|| {
                    it.restore(&st).unwrap();
                    it.copy_from_iter(black_box(&mut *dst))
                })
            });
        }};
    }
    for sh in SHAPES {
        let id = |k: &str| BenchmarkId::new(k, sh.name);
        let segs: Vec<IoSeg<'_>> = buf.bytes().chunks(sh.seg).map(IoSeg::new).collect();
        prebuilt!(id("Iovec"), IovIter::<Source, Iovec>::new(&segs));
        prebuilt!(id("Kvec"), IovIter::<Source, Kvec>::new(&segs));
        if sh.nsegs == 1 {
            prebuilt!(id("Ubuf"), IovIter::<Source, Ubuf>::new(buf.bytes()));
        }
        let bv = bvecs(&pg, sh.bvec_seg());
        prebuilt!(id("Bvec"), IovIter::<Source, Bvec>::new(&bv));
    }
    g.finish();
}

/// advance through everything, then revert everything, on a prebuilt
/// source iterator (back at the start after each iteration).
fn bench_advance_revert(c: &mut Criterion) {
    let buf = Aligned::patterned(TOTAL, 4);
    let pg = pages();
    for (name, step) in [("advance_revert", false), ("advance_revert_step", true)] {
        let mut g = c.benchmark_group(name);
        macro_rules! ar {
            ($id:expr, $it:expr, $seg:expr) => {{
                let mut it = $it;
                let seg: usize = $seg;
                g.bench_function($id, |b| {
                    b.iter(|| {
                        if step {
                            for _ in 0..TOTAL / seg {
                                it.advance(black_box(seg));
                            }
                        } else {
                            it.advance(black_box(TOTAL));
                        }
                        debug_assert_eq!(it.count(), 0);
                        it.revert(black_box(TOTAL)).unwrap();
                        it.count()
                    })
                });
                assert_eq!(it.count(), TOTAL);
            }};
        }
        for sh in SHAPES {
            let id = |k: &str| BenchmarkId::new(k, sh.name);
            let segs: Vec<IoSeg<'_>> = buf.bytes().chunks(sh.seg).map(IoSeg::new).collect();
            ar!(id("Iovec"), IovIter::<Source, Iovec>::new(&segs), sh.seg);
            ar!(id("Kvec"), IovIter::<Source, Kvec>::new(&segs), sh.seg);
            if sh.nsegs == 1 {
                ar!(
                    id("Ubuf"),
                    IovIter::<Source, Ubuf>::new(buf.bytes()),
                    sh.seg
                );
            }
            let bv = bvecs(&pg, sh.bvec_seg());
            ar!(id("Bvec"), IovIter::<Source, Bvec>::new(&bv), sh.bvec_seg());
        }
        g.finish();
    }
}

/// import_iovec of n 64-byte segments (n = 1 is the Ubuf fast path).
fn bench_import(c: &mut Criterion) {
    let buf = Aligned::patterned(TOTAL, 3);
    let mut g = c.benchmark_group("import_iovec");
    for n in [1usize, 8, 9, 1024] {
        let uv = user_iovecs(&buf, n);
        g.bench_function(BenchmarkId::new("fresh", n), |b| {
            b.iter(|| {
                let mut st = IovecArray::new();
                // SAFETY: the iovecs describe `buf`, alive and unwritten.
                let it = unsafe { import_iovec::<Source>(black_box(&uv), &mut st) }.unwrap();
                it.count()
            })
        });
        let mut st = IovecArray::new();
        g.bench_function(BenchmarkId::new("reused", n), |b| {
            b.iter(|| {
                // SAFETY: as above.
                let it = unsafe { import_iovec::<Source>(black_box(&uv), &mut st) }.unwrap();
                it.count()
            })
        });
    }
    g.finish();
}

fn main() {
    check_sizes();
    check_import_allocs();
    check_copies();

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30)
        .configure_from_args();
    bench_copy_to(&mut c);
    bench_copy_to_prebuilt(&mut c);
    bench_copy_from(&mut c);
    bench_copy_from_prebuilt(&mut c);
    bench_advance_revert(&mut c);
    bench_import(&mut c);
    c.final_summary();
}
