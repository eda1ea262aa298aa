//! Folios (`struct folio`) and multi-page bvecs: allocation and alignment of
//! every order, flags, the folio pool, and a [`Bvec`] iterator over two
//! order-4 folios and a page, checked against the kernel's rules
//! (`include/linux/iov_iter.h` `iterate_bvec`, `lib/iov_iter.c`
//! `bvec_npages`, `iov_iter_extract_bvec_pages`, `first_bvec_segment`,
//! `iov_iter_alignment_bvec`). Expected values are worked out by hand from
//! those rules and the natural alignment of folios, not read back from the
//! implementation. No test makes a syscall, so all run under Miri.

mod common;
use common::{all_bytes, pattern};

use iov_iter::buf::{IoBuf, IoBufMut};
use iov_iter::{
    Bvec, BvecSeg, BvecSegMut, Dest, Direction, Errno, Error, Folio, FolioPool, FolioRef, IoSeg,
    IovIter, Kind, Kvec, MAX_PAGE_ORDER, PAGE_SIZE, Page, PageAddr, PageFlags, Source,
};

/// Order of the two folios of the mixed iterator: 16 pages, 64 KiB.
const ORDER: u32 = 4;
const FSIZE: usize = PAGE_SIZE << ORDER;

/// `(count, nr_segs, iov_offset)`.
fn pos<D: Direction, K: Kind>(it: &IovIter<'_, D, K>) -> (usize, usize, usize) {
    (it.count(), it.nr_segs(), it.iov_offset())
}

/// Page addresses `first..first + n` pages from `base`.
fn pages_from(base: usize, first: usize, n: usize) -> Vec<PageAddr> {
    (first..first + n)
        .map(|k| PageAddr(base + k * PAGE_SIZE))
        .collect()
}

/// The segment layout the mixed tests use, as `(offset, len)` in folio A,
/// folio B and the page: odd offsets and lengths, so that steps start and end
/// inside pages.
const A: (usize, usize) = (1001, FSIZE - 1001 - 7); // 64528 bytes, pages 0..16
const B: (usize, usize) = (0, FSIZE); // the whole folio
const P: (usize, usize) = (13, 4000);
const TOTAL: usize = A.1 + B.1 + P.1;

// ------------------------------------------------------------ allocation

#[test]
fn every_order_is_allocated_aligned_to_its_size() {
    for order in 0..=9 {
        let mut folio = Folio::new(order).unwrap();
        let size = PAGE_SIZE << order;
        assert_eq!(folio.order(), order);
        assert_eq!(folio.nr_pages(), 1 << order);
        assert_eq!(folio.size(), size);
        assert_eq!(folio.shift(), 12 + order);
        assert_eq!(folio.addr() % size, 0, "order {order} naturally aligned");
        assert_eq!(folio.as_bytes().len(), size);
        assert_eq!(folio.as_bytes().as_ptr() as usize, folio.addr());
        assert!(folio.flags().is_empty());
        // Zeroed: the first and last byte of every page (a full scan of
        // 2 MiB is slow under Miri).
        for p in 0..folio.nr_pages() {
            assert_eq!(folio.as_bytes()[p * PAGE_SIZE], 0);
            assert_eq!(folio.as_bytes()[p * PAGE_SIZE + PAGE_SIZE - 1], 0);
        }
        // Every byte is writable through `as_mut_bytes`.
        let bytes = folio.as_mut_bytes();
        bytes[0] = 1;
        bytes[size - 1] = 2;
        assert_eq!((folio.as_bytes()[0], folio.as_bytes()[size - 1]), (1, 2));
    }
    // A small folio is zero all through.
    assert!(all_bytes(Folio::new(2).unwrap().as_bytes(), 0));
}

#[test]
fn the_largest_order_is_allocated() {
    let folio = Folio::new(MAX_PAGE_ORDER).unwrap();
    assert_eq!(folio.size(), 4 << 20);
    assert_eq!(folio.addr() % (4 << 20), 0);
}

#[test]
fn orders_above_max_page_order_are_einval() {
    for order in [MAX_PAGE_ORDER + 1, 32, u32::MAX] {
        let err = Folio::new(order).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        assert_eq!(err.errno(), Errno::EINVAL);
        let err = FolioPool::with_capacity(order, 4).unwrap_err();
        assert_eq!(err.errno(), Errno::EINVAL);
    }
}

#[test]
fn folio_ref_is_shared_and_freed_with_the_last_reference() {
    let folio = FolioRef::new(Folio::new(1).unwrap());
    let other = FolioRef::clone(&folio);
    assert_eq!(FolioRef::strong_count(&folio), 2);
    // A segment over a shared folio reads it.
    let segs = [BvecSeg::from_folio(&other, 4090, 10).unwrap()];
    let mut out = [1u8; 10];
    assert_eq!(
        IovIter::<Source, Bvec>::new(&segs).copy_from_iter(&mut out),
        10
    );
    assert_eq!(out, [0; 10]);
    drop(other);
    assert_eq!(FolioRef::strong_count(&folio), 1);
    assert!(format!("{folio:?}").contains("order: 1"));
}

// ------------------------------------------------------------------ flags

#[test]
fn flags_follow_the_page_flag_api() {
    let folio = Folio::new(3).unwrap();
    folio.set_flags(PageFlags::UPTODATE | PageFlags::DIRTY);
    assert!(folio.test(PageFlags::DIRTY));
    assert!(folio.test(PageFlags::UPTODATE | PageFlags::DIRTY));
    assert!(!folio.test(PageFlags::DIRTY | PageFlags::WRITEBACK));
    assert!(folio.test_and_clear(PageFlags::DIRTY)); // folio_clear_dirty_for_io
    assert!(!folio.test_and_clear(PageFlags::DIRTY));
    assert!(!folio.test_and_set(PageFlags::WRITEBACK)); // folio_test_set_writeback
    assert!(folio.test_and_set(PageFlags::WRITEBACK));
    folio.clear_flags(PageFlags::WRITEBACK);
    assert_eq!(folio.flags(), PageFlags::UPTODATE);

    assert!(folio.trylock());
    assert!(!folio.trylock(), "the lock bit is taken");
    assert!(folio.test(PageFlags::LOCKED));
    folio.unlock();
    assert!(folio.trylock());
    folio.unlock();
    assert_eq!(folio.flags(), PageFlags::UPTODATE);
}

#[test]
fn a_folio_segment_sees_the_folio_flags_through_its_head_page() {
    let mut folio = Folio::new(ORDER).unwrap();
    folio.set_flags(PageFlags::UPTODATE);
    let addr = folio.addr();
    {
        let seg = folio.bvec(5 * PAGE_SIZE + 3, 100).unwrap();
        // bv_page is the head page (`&folio->page`); bv_offset counts from it.
        assert_eq!(seg.page().addr(), addr);
        assert_eq!(seg.offset(), 5 * PAGE_SIZE + 3);
        assert_eq!(seg.page().flags(), PageFlags::UPTODATE);
        seg.page().set_flags(PageFlags::DIRTY);
        assert!(folio.test(PageFlags::DIRTY), "one set of flags");
    }
    let seg = folio.bvec_mut(FSIZE - 1, 1).unwrap();
    assert_eq!(seg.page_addr(), addr);
    assert_eq!(seg.page_flags(), PageFlags::UPTODATE | PageFlags::DIRTY);
}

// ------------------------------------------------------------------- pool

#[test]
fn the_pool_recycles_folios_without_zeroing_and_clears_flags() {
    let pool = FolioPool::with_capacity(ORDER, 2).unwrap();
    assert_eq!((pool.order(), pool.max_cached()), (ORDER, 2));
    assert!(pool.is_empty());
    let mut folio = pool.get().unwrap();
    assert_eq!(folio.order(), ORDER);
    assert!(all_bytes(folio.as_bytes(), 0), "fresh is zeroed");
    folio.as_mut_bytes().fill(0x5c);
    folio.set_flags(PageFlags::all());
    let addr = folio.addr();
    pool.put(folio);
    assert_eq!(pool.len(), 1);

    let folio = pool.get().unwrap();
    assert_eq!(folio.addr(), addr, "the same memory");
    assert_eq!(folio.flags(), PageFlags::empty());
    assert!(folio.trylock(), "a recycled folio is unlocked");
    assert!(all_bytes(folio.as_bytes(), 0x5c), "stale");
    assert!(pool.is_empty());
    pool.put(folio);
}

#[test]
fn the_pool_keeps_at_most_max_cached_folios_of_its_order() {
    let pool = FolioPool::with_capacity(1, 2).unwrap();
    let folios: Vec<Folio> = (0..4).map(|_| pool.get().unwrap()).collect();
    let addrs: Vec<usize> = folios.iter().map(Folio::addr).collect();
    for f in folios {
        pool.put(f);
    }
    assert_eq!(pool.len(), 2, "the rest were freed");
    // A folio of another order is freed, never handed out as this order.
    pool.put(Folio::new(2).unwrap());
    assert_eq!(pool.len(), 2);
    // Last in, first out.
    assert_eq!(pool.get().unwrap().addr(), addrs[1]);
    assert_eq!(pool.get().unwrap().addr(), addrs[0]);
    let fresh = pool.get().unwrap();
    assert_eq!(fresh.order(), 1);
    assert!(all_bytes(fresh.as_bytes(), 0));

    let none = FolioPool::with_capacity(0, 0).unwrap();
    none.put(Folio::new(0).unwrap());
    assert!(none.is_empty());
    assert!(format!("{none:?}").contains("max_cached: 0"));
}

#[test]
fn threads_share_a_pool() {
    let pool = std::sync::Arc::new(FolioPool::with_capacity(1, 4).unwrap());
    let threads: Vec<_> = (0..3u8)
        .map(|t| {
            let pool = std::sync::Arc::clone(&pool);
            std::thread::spawn(move || {
                for _ in 0..3 {
                    let mut folio = pool.get().unwrap();
                    folio.as_mut_bytes().fill(t);
                    assert!(all_bytes(folio.as_bytes(), t));
                    pool.put(folio);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!((1..=3).contains(&pool.len()));
}

// ------------------------------------------- the mixed iterator: copies

/// Fills the three segments through a destination iterator in pieces of
/// odd sizes, then reads them back through a source iterator in other odd
/// pieces, and checks the bytes landed at the right places.
#[test]
fn copies_round_trip_over_two_folios_and_a_page_at_odd_offsets() {
    let (mut fa, mut fb, mut page) = (
        Folio::new(ORDER).unwrap(),
        Folio::new(ORDER).unwrap(),
        Page::new(),
    );
    let data = pattern(TOTAL, 0xa5);
    {
        let mut segs = [
            fa.bvec_mut(A.0, A.1).unwrap(),
            BvecSegMut::full_folio(&mut fb),
            page.bvec_mut(P.0, P.1).unwrap(),
        ];
        let mut it = IovIter::<Dest, Bvec>::new(&mut segs);
        assert_eq!(pos(&it), (TOTAL, 3, 0));
        let mut done = 0;
        for piece in [1, 4095, 4097, 60_000, 3, 65_536, 331] {
            let n = it.copy_to_iter(&data[done..done + piece]);
            assert_eq!(n, piece);
            done += n;
        }
        // 1 + 4095 + 4097 + 60000 = 68193: folio A (64528) done, 3665 into B;
        // then 3 + 65536 = 65539 more: the 61868 bytes left in B, and 3668
        // into the page; then 331 more. One byte is left.
        assert_eq!(pos(&it), (1, 1, 3668 + 331));
        let rest = it.copy_to_iter(&data[done..]);
        assert_eq!(done + rest, TOTAL);
        assert_eq!(pos(&it), (0, 0, 0));
    }
    // By hand: where each part of `data` must be.
    assert_eq!(&fa.as_bytes()[A.0..A.0 + A.1], &data[..A.1]);
    assert!(all_bytes(&fa.as_bytes()[..A.0], 0));
    assert!(all_bytes(&fa.as_bytes()[A.0 + A.1..], 0));
    assert_eq!(fb.as_bytes(), &data[A.1..A.1 + B.1]);
    assert_eq!(&page.as_bytes()[P.0..P.0 + P.1], &data[A.1 + B.1..]);

    let segs = [
        fa.bvec(A.0, A.1).unwrap(),
        BvecSeg::full_folio(&fb),
        BvecSeg::new(&page, P.0, P.1).unwrap(),
    ];
    let mut it = IovIter::<Source, Bvec>::new(&segs);
    let mut out = vec![0u8; TOTAL];
    let mut done = 0;
    for piece in [7, 64_521, 1, 12_345, 53_190, 2, 3998] {
        assert_eq!(it.copy_from_iter(&mut out[done..done + piece]), piece);
        done += piece;
    }
    assert_eq!(done, TOTAL);
    assert_eq!(out, data);
    assert!(it.is_empty());

    // Revert into the middle of folio B and read again.
    it.revert(P.1 + 10_000).unwrap();
    assert_eq!(pos(&it), (P.1 + 10_000, 2, FSIZE - 10_000));
    let mut again = vec![0u8; 10_000];
    assert!(it.copy_from_iter_full(&mut again));
    assert_eq!(again, &data[A.1 + FSIZE - 10_000..A.1 + FSIZE]);
    assert_eq!(pos(&it), (P.1, 1, 0));
}

#[test]
fn copy_steps_stop_at_page_boundaries_inside_a_folio() {
    let (fa, fb, page) = (
        Folio::new(ORDER).unwrap(),
        Folio::new(ORDER).unwrap(),
        Page::new(),
    );
    let segs = [
        fa.bvec(A.0, A.1).unwrap(),
        BvecSeg::full_folio(&fb),
        page.bvec(P.0, P.1).unwrap(),
    ];
    let mut it = IovIter::<Source, Bvec>::new(&segs);
    let mut steps = Vec::new();
    let n = it.iterate(usize::MAX, |chunk, progress| {
        steps.push((chunk.as_ptr() as usize, chunk.len(), progress));
        0
    });
    assert_eq!(n, TOTAL);
    // iterate_bvec: part = min(len, bv_len - skip, PAGE_SIZE - offset % PAGE_SIZE).
    let mut expect = Vec::new();
    let mut progress = 0;
    // Folio A from 1001: 4096 - 1001 = 3095 bytes in page 0, 14 whole pages,
    // then 65529 - 15 * 4096 = 4089 bytes in page 15.
    expect.push((fa.addr() + 1001, 3095, progress));
    progress += 3095;
    for k in 1..15 {
        expect.push((fa.addr() + k * PAGE_SIZE, PAGE_SIZE, progress));
        progress += PAGE_SIZE;
    }
    expect.push((fa.addr() + 15 * PAGE_SIZE, 4089, progress));
    progress += 4089;
    for k in 0..16 {
        expect.push((fb.addr() + k * PAGE_SIZE, PAGE_SIZE, progress));
        progress += PAGE_SIZE;
    }
    expect.push((page.addr() + 13, 4000, progress));
    assert_eq!(steps, expect);
    assert_eq!(steps.len(), 16 + 16 + 1);

    // A short step stops the walk inside the folio, mid-page; the segment
    // is not popped and the next walk resumes there.
    let mut it = IovIter::<Source, Bvec>::new(&segs);
    let n = it.iterate(usize::MAX, |chunk, progress| {
        if progress + chunk.len() > 10_000 {
            progress + chunk.len() - 10_000
        } else {
            0
        }
    });
    assert_eq!(n, 10_000);
    assert_eq!(pos(&it), (TOTAL - 10_000, 3, 10_000));
    let mut first = None;
    it.iterate(1, |chunk, _| {
        first = Some(chunk.as_ptr() as usize);
        0
    });
    assert_eq!(first, Some(fa.addr() + 1001 + 10_000));
}

#[test]
fn zero_and_folio_copies_span_pages() {
    let mut folio = Folio::new(2).unwrap();
    folio.as_mut_bytes().fill(0xff);
    {
        let mut segs = [folio.bvec_mut(4000, 8500).unwrap()];
        let mut it = IovIter::<Dest, Bvec>::new(&mut segs);
        assert_eq!(it.zero(usize::MAX), 8500);
    }
    let b = folio.as_bytes();
    assert!(all_bytes(&b[..4000], 0xff));
    assert!(all_bytes(&b[4000..12_500], 0));
    assert!(all_bytes(&b[12_500..], 0xff));

    // copy_folio_to_iter / copy_folio_from_iter: ranges across pages,
    // checked against the folio's size.
    let src = pattern(9000, 3);
    let segs = [IoSeg::new(&src)];
    let mut it = IovIter::<Source, Kvec>::new(&segs);
    assert_eq!(
        it.copy_folio_from_iter(&mut folio, 3000, 9000).unwrap(),
        9000
    );
    assert_eq!(&folio.as_bytes()[3000..12_000], &src[..]);
    let mut out = vec![0u8; 9000];
    {
        let mut it = IovIter::<Dest, iov_iter::Ubuf>::new(&mut out);
        assert_eq!(it.copy_folio_to_iter(&folio, 3000, 9000).unwrap(), 9000);
        let err = it.copy_folio_to_iter(&folio, 16_000, 385).unwrap_err();
        assert_eq!(
            err,
            Error::PageRange {
                offset: 16_000,
                len: 385
            }
        );
    }
    assert_eq!(out, src);
}

// ---------------------------------------------- the mixed iterator: pages

#[test]
fn npages_counts_every_page_of_a_folio_segment() {
    let (fa, fb, page) = (
        Folio::new(ORDER).unwrap(),
        Folio::new(ORDER).unwrap(),
        Page::new(),
    );
    let segs = [
        fa.bvec(A.0, A.1).unwrap(),
        BvecSeg::full_folio(&fb),
        page.bvec(P.0, P.1).unwrap(),
    ];
    let mut it = IovIter::<Source, Bvec>::new(&segs);
    // bvec_npages: DIV_ROUND_UP(offs % PAGE_SIZE + len, PAGE_SIZE) per bvec:
    // A: (1001 + 64528) / 4096 -> 16; B: 16; the page: (13 + 4000) -> 1.
    assert_eq!(it.npages(usize::MAX), 33);
    assert_eq!(it.npages(20), 20);
    let whole = [BvecSeg::full_folio(&fb)];
    assert_eq!(
        IovIter::<Source, Bvec>::new(&whole).npages(usize::MAX),
        16,
        "a 64 KiB folio segment is 16 pages"
    );
    // 3094 bytes in: 1 byte left in page 0 of A; still 16 + 16 + 1.
    it.advance(3094);
    assert_eq!(it.npages(usize::MAX), 33);
    // One more: page 0 of A is done.
    it.advance(1);
    assert_eq!(it.npages(usize::MAX), 32);
    // Truncated to the first 5000 bytes from page 1 of A: 2 pages.
    it.truncate(5000);
    assert_eq!(it.npages(usize::MAX), 2);
}

#[test]
fn extract_pages_splits_folio_segments_at_page_boundaries() {
    let (fa, fb, page) = (
        Folio::new(ORDER).unwrap(),
        Folio::new(ORDER).unwrap(),
        Page::new(),
    );
    let segs = [
        fa.bvec(A.0, A.1).unwrap(),
        BvecSeg::full_folio(&fb),
        page.bvec(P.0, P.1).unwrap(),
    ];
    let mut it = IovIter::<Source, Bvec>::new(&segs);
    let mut out = Vec::new();
    // Folio A ends 7 bytes short of its last page: the run stops there
    // (`bv_offset + bv_len != PAGE_SIZE`) after its 16 pages.
    let got = it.extract_pages(usize::MAX, 64, &mut out).unwrap();
    assert_eq!((got.bytes, got.offset0, got.npages), (A.1, 1001, 16));
    assert_eq!(out, pages_from(fa.addr(), 0, 16));
    assert_eq!(pos(&it), (TOTAL - A.1, 2, 0));

    // Folio B is page-aligned at both ends, so the run goes on into the
    // page, which starts at offset 13: it stops before it.
    out.clear();
    let got = it.extract_pages(usize::MAX, 64, &mut out).unwrap();
    assert_eq!((got.bytes, got.offset0, got.npages), (FSIZE, 0, 16));
    assert_eq!(out, pages_from(fb.addr(), 0, 16));
    out.clear();
    let got = it.extract_pages(usize::MAX, 64, &mut out).unwrap();
    assert_eq!((got.bytes, got.offset0, got.npages), (P.1, 13, 1));
    assert_eq!(out, [PageAddr(page.addr())]);
    assert!(it.is_empty());

    // maxpages and maxsize split a folio segment mid-way; the next call
    // resumes at the following page.
    let mut it = IovIter::<Source, Bvec>::new(&segs);
    it.advance(3095); // page 1 of A, offset 0
    out.clear();
    let got = it.extract_pages(usize::MAX, 3, &mut out).unwrap();
    assert_eq!((got.bytes, got.offset0, got.npages), (3 * PAGE_SIZE, 0, 3));
    assert_eq!(out, pages_from(fa.addr(), 1, 3));
    out.clear();
    let got = it.extract_pages(5000, 64, &mut out).unwrap();
    assert_eq!((got.bytes, got.offset0, got.npages), (5000, 0, 2));
    assert_eq!(out, pages_from(fa.addr(), 4, 2));
    // Now 904 bytes into page 5 of A.
    assert_eq!(
        pos(&it),
        (
            TOTAL - 3095 - 3 * PAGE_SIZE - 5000,
            3,
            3095 + 3 * PAGE_SIZE + 5000
        )
    );
    out.clear();
    let got = it.extract_pages(usize::MAX, 2, &mut out).unwrap();
    assert_eq!(
        (got.bytes, got.offset0, got.npages),
        (PAGE_SIZE - 904 + PAGE_SIZE, 904, 2)
    );
    assert_eq!(out, pages_from(fa.addr(), 5, 2));

    // Two whole folios in a row are one run of 32 pages.
    let whole = [BvecSeg::full_folio(&fa), BvecSeg::full_folio(&fb)];
    let mut it = IovIter::<Source, Bvec>::new(&whole);
    out.clear();
    let got = it.extract_pages(usize::MAX, 64, &mut out).unwrap();
    assert_eq!((got.bytes, got.offset0, got.npages), (2 * FSIZE, 0, 32));
    let mut expect = pages_from(fa.addr(), 0, 16);
    expect.extend(pages_from(fb.addr(), 0, 16));
    assert_eq!(out, expect);
}

#[test]
fn get_pages_gives_the_pages_of_the_current_folio_segment() {
    let (fa, fb, page) = (
        Folio::new(ORDER).unwrap(),
        Folio::new(ORDER).unwrap(),
        Page::new(),
    );
    let segs = [
        fa.bvec(A.0, A.1).unwrap(),
        BvecSeg::full_folio(&fb),
        page.bvec(P.0, P.1).unwrap(),
    ];
    let mut it = IovIter::<Source, Bvec>::new(&segs);
    let mut out = Vec::new();
    // first_bvec_segment: bv_page + (bv_offset + skip) / PAGE_SIZE, and the
    // pages after it, up to the end of the bvec.
    let got = it.get_pages(usize::MAX, 64, &mut out).unwrap();
    assert_eq!((got.bytes, got.offset0, got.npages), (A.1, 1001, 16));
    assert_eq!(out, pages_from(fa.addr(), 0, 16));
    assert_eq!(pos(&it), (TOTAL - A.1, 2, 0));

    // 5000 bytes into folio B: page 1, offset 904; 4 pages cover
    // 4 * 4096 - 904 bytes.
    it.advance(5000);
    out.clear();
    let got = it.get_pages(usize::MAX, 4, &mut out).unwrap();
    assert_eq!(
        (got.bytes, got.offset0, got.npages),
        (4 * PAGE_SIZE - 904, 904, 4)
    );
    assert_eq!(out, pages_from(fb.addr(), 1, 4));
    out.clear();
    let got = it.get_pages(usize::MAX, 64, &mut out).unwrap();
    assert_eq!(got.npages, 11);
    assert_eq!(got.bytes, FSIZE - 5 * PAGE_SIZE);
    assert_eq!(out, pages_from(fb.addr(), 5, 11));
    assert_eq!(pos(&it), (P.1, 1, 0), "folio B was popped");

    let whole = [BvecSeg::full_folio(&fb)];
    out.clear();
    let got = IovIter::<Source, Bvec>::new(&whole)
        .get_pages(usize::MAX, 64, &mut out)
        .unwrap();
    assert_eq!((got.bytes, got.npages), (FSIZE, 16));
    assert_eq!(out, pages_from(fb.addr(), 0, 16));
}

#[test]
fn raw_chunks_give_one_chunk_per_segment() {
    let (fa, fb, page) = (
        Folio::new(ORDER).unwrap(),
        Folio::new(ORDER).unwrap(),
        Page::new(),
    );
    let segs = [
        fa.bvec(A.0, A.1).unwrap(),
        BvecSeg::full_folio(&fb),
        BvecSeg::from_folio(&fb, FSIZE, 0).unwrap(), // empty: skipped
        page.bvec(P.0, P.1).unwrap(),
    ];
    let mut it = IovIter::<Source, Bvec>::new(&segs);
    let chunks = |it: &IovIter<'_, Source, Bvec>| -> Vec<(usize, usize)> {
        it.raw_chunks()
            .map(|(p, len)| (p.as_ptr() as usize, len))
            .collect()
    };
    assert_eq!(
        chunks(&it),
        [
            (fa.addr() + A.0, A.1),
            (fb.addr(), FSIZE),
            (page.addr() + P.0, P.1)
        ]
    );
    let slices: Vec<usize> = it.chunks().map(<[u8]>::len).collect();
    assert_eq!(slices, [A.1, FSIZE, P.1]);

    // After 10000 bytes, and clamped by truncate inside folio B.
    it.advance(A.1 + 10_000);
    it.truncate(20_000);
    assert_eq!(chunks(&it), [(fb.addr() + 10_000, 20_000)]);

    // The same for a destination iterator.
    let mut folio = Folio::new(ORDER).unwrap();
    let addr = folio.addr();
    let mut segs = [BvecSegMut::full_folio(&mut folio)];
    let mut it = IovIter::<Dest, Bvec>::new(&mut segs);
    let v: Vec<(usize, usize)> = it
        .raw_chunks()
        .map(|(p, len)| (p.as_ptr() as usize, len))
        .collect();
    assert_eq!(v, [(addr, 65_536)]);
    assert_eq!(
        it.chunks_mut().map(|c| c.len()).collect::<Vec<_>>(),
        [65_536]
    );
}

#[test]
fn alignment_uses_the_offset_from_the_folio_start() {
    let folio = Folio::new(ORDER).unwrap();
    // iov_iter_alignment_bvec: res |= bv_offset + skip; res |= len.
    let segs = [
        folio.bvec(3 * PAGE_SIZE + 512, 8 * PAGE_SIZE).unwrap(),
        BvecSeg::full_folio(&folio),
    ];
    let mut it = IovIter::<Source, Bvec>::new(&segs);
    assert_eq!(
        it.alignment(),
        (3 * PAGE_SIZE + 512) | (8 * PAGE_SIZE) | FSIZE
    );
    assert_eq!(it.alignment() & 511, 0);
    assert!(it.is_aligned(511, 511));
    assert!(!it.is_aligned(PAGE_SIZE - 1, 511));
    it.advance(1);
    assert_eq!(
        it.alignment(),
        (3 * PAGE_SIZE + 513) | (8 * PAGE_SIZE - 1) | FSIZE
    );
}

// ------------------------------------------------------------ bad ranges

#[test]
fn ranges_outside_the_folio_are_refused_with_typed_errors() {
    let mut folio = Folio::new(ORDER).unwrap();
    // The end of the folio is a valid empty range; one byte more is not.
    assert_eq!(folio.bvec(FSIZE, 0).unwrap().len(), 0);
    assert_eq!(folio.bvec(0, FSIZE).unwrap().len(), FSIZE);
    for (offset, len) in [
        (FSIZE, 1),
        (0, FSIZE + 1),
        (FSIZE + 1, 0),
        (usize::MAX, 2),
        (1, usize::MAX),
    ] {
        let expect = Error::PageRange { offset, len };
        assert_eq!(
            BvecSeg::from_folio(&folio, offset, len).unwrap_err(),
            expect
        );
        assert_eq!(folio.bvec(offset, len).unwrap_err(), expect);
        assert_eq!(
            BvecSegMut::from_folio(&mut folio, offset, len).unwrap_err(),
            expect
        );
        assert_eq!(folio.bvec_mut(offset, len).unwrap_err(), expect);
        assert_eq!(expect.errno(), Errno::EFAULT);
    }
    // Several destination segments in one folio: in range and disjoint.
    assert_eq!(
        folio.bvecs_mut([(0, 10), (FSIZE - 5, 6)]).unwrap_err(),
        Error::PageRange {
            offset: FSIZE - 5,
            len: 6
        }
    );
    let err = folio
        .bvecs_mut([(PAGE_SIZE, 2 * PAGE_SIZE), (2 * PAGE_SIZE, 1)])
        .unwrap_err();
    assert_eq!(
        (err, err.errno()),
        (Error::OverlappingRanges, Errno::EINVAL)
    );
    // A page range that fits a folio still does not fit a page.
    let page = Page::new();
    assert_eq!(
        BvecSeg::new(&page, 0, PAGE_SIZE + 1).unwrap_err(),
        Error::PageRange {
            offset: 0,
            len: PAGE_SIZE + 1
        }
    );
    // copy_folio_*: page_copy_sane on the folio's size.
    let src = [0u8; 4];
    let s = [IoSeg::new(&src)];
    let mut it = IovIter::<Source, Kvec>::new(&s);
    assert_eq!(
        it.copy_folio_from_iter(&mut folio, FSIZE - 3, 4)
            .unwrap_err(),
        Error::PageRange {
            offset: FSIZE - 3,
            len: 4
        }
    );
    assert_eq!(it.count(), 4, "nothing copied");
}

#[test]
fn disjoint_destination_segments_in_one_folio() {
    let mut folio = Folio::new(2).unwrap();
    {
        let mut segs = folio
            .bvecs_mut([(12_000, 4000), (1, 9000), (9001, 0)])
            .unwrap();
        let mut it = IovIter::<Dest, Bvec>::new(&mut segs);
        let data = pattern(13_000, 9);
        assert_eq!(it.copy_to_iter(&data), 13_000);
    }
    let data = pattern(13_000, 9);
    assert_eq!(&folio.as_bytes()[12_000..16_000], &data[..4000]);
    assert_eq!(&folio.as_bytes()[1..9001], &data[4000..]);
    assert_eq!(folio.as_bytes()[0], 0);
}

// ------------------------------------------------------- owned buffers

#[test]
fn folios_are_owned_buffers_of_one_segment() {
    let mut folio = Folio::new(ORDER).unwrap();
    let addr = folio.addr();
    let mut segs = Vec::new();
    folio.for_each_seg(&mut |p, len| segs.push((p as usize, len)));
    assert_eq!(segs, [(addr, FSIZE)]);
    assert_eq!(folio.bytes_init(), FSIZE);
    let mut segs = Vec::new();
    folio.for_each_seg_mut(&mut |p, len| segs.push((p as usize, len)));
    assert_eq!(segs, [(addr, FSIZE)]);
    assert_eq!(folio.bytes_total(), FSIZE);
    // SAFETY: a folio is always initialised; set_init records nothing.
    unsafe { folio.set_init(0) };
    assert_eq!(folio.bytes_init(), FSIZE);

    let shared = FolioRef::new(folio);
    let mut segs = Vec::new();
    shared.for_each_seg(&mut |p, len| segs.push((p as usize, len)));
    assert_eq!(segs, [(addr, FSIZE)]);

    // A Vec of folios and pages: the segments of each, in order.
    let page = Page::new();
    let v = vec![Folio::new(1).unwrap(), Folio::new(0).unwrap()];
    let mut lens = Vec::new();
    v.for_each_seg(&mut |_, len| lens.push(len));
    assert_eq!(lens, [8192, 4096]);
    assert_eq!(page.bytes_init(), PAGE_SIZE);
}

#[test]
fn bvec_iterators_stay_40_bytes() {
    assert_eq!(std::mem::size_of::<IovIter<'static, Dest, Bvec>>(), 40);
    assert_eq!(std::mem::size_of::<BvecSeg<'static>>(), 16);
    assert_eq!(std::mem::size_of::<BvecSegMut<'static>>(), 16);
}
