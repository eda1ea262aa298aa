//! Large folios in swap: one segment over `2^order` naturally aligned
//! slots where mainline allows large swap entries (a block device; here the
//! RAM backend), split into pages where it does not (a swap file), with the
//! swap cache's rules for the folio's slots.

use std::sync::Arc;

use iov_iter::backend::mem::{Fault, FaultPlan};
use iov_iter::{Folio, FolioRef, PAGE_SIZE, PageFlags};
use iov_iter_swap::swapio::{FolioFallback, FolioIn, FolioOut, IoMode, SwapDevice, SwapError};
use iov_iter_swap::swapmap::Slot;
// Under Miri, cheap stand-ins for most pages (see `testutil::pages`).
use iov_iter_swap::testutil::pages::{check_swapped_in, fill_page};

const SEED: u64 = 0xf01;

/// A dirty folio of `order` whose page `k` is content page `base + k`.
fn folio(order: u32, base: u64) -> FolioRef {
    let mut f = Folio::new(order).unwrap();
    for (k, chunk) in f.as_mut_bytes().chunks_exact_mut(PAGE_SIZE).enumerate() {
        fill_page(chunk.try_into().unwrap(), base + k as u64, SEED);
    }
    f.set_flags(PageFlags::UPTODATE | PageFlags::DIRTY);
    FolioRef::new(f)
}

use iov_iter_swap::testutil::ram_swap_device as device;

#[test]
fn a_64k_folio_goes_out_and_comes_back_as_one_segment() {
    let (mem, dev) = device(64, false);
    assert!(dev.large_folios(), "a RAM device is a block device");
    let f = folio(4, 100);
    let FolioOut::Whole(range) = dev.swap_writefolio(f.clone(), None).unwrap() else {
        panic!("not written whole")
    };
    assert_eq!(
        (range.start().index() % 16, range.len()),
        (0, 16),
        "naturally aligned"
    );
    assert_eq!(
        (mem.stats().writes, mem.stats().bytes_written),
        (1, 65536),
        "one kiocb"
    );
    assert!(!f.test(PageFlags::DIRTY | PageFlags::WRITEBACK));
    let c = dev.counters();
    assert_eq!((c.folios_out, c.pswpout, c.folio_splits), (1, 16, 0));
    let FolioIn::Reading(h) = dev.swap_readfolio(range.start(), 4).unwrap() else {
        panic!("not read whole")
    };
    let back = h.wait().unwrap();
    assert_eq!(back.as_bytes(), f.as_bytes());
    assert!(back.test(PageFlags::UPTODATE));
    assert_eq!(
        (mem.stats().reads, mem.stats().bytes_read),
        (1, 65536),
        "one kiocb"
    );
    assert_eq!(dev.counters().folios_in, 1);
    // A page of it can also come back alone.
    dev.set_page_cluster(0);
    let p = dev
        .swap_readpage(Slot::new(range.start().index() + 5), None)
        .unwrap();
    assert_eq!(check_swapped_in(&p.wait().unwrap(), 105, SEED), Ok(()));
}

#[test]
fn under_writeback_its_pages_come_from_the_swap_cache_and_its_slots_stay() {
    let (mem, dev) = device(64, true);
    let f = folio(3, 7);
    let FolioOut::Whole(range) = dev.swap_writefolio(f.clone(), None).unwrap() else {
        panic!("not written whole")
    };
    assert_eq!(mem.pending(), 1, "in flight");
    let s = Slot::new(range.start().index() + 2);
    let got = dev.swap_readpage(s, None).unwrap().wait().unwrap();
    assert_eq!(
        check_swapped_in(&got, 9, SEED),
        Ok(()),
        "a copy of the folio's page"
    );
    assert_eq!(mem.stats().reads, 0);
    assert!(matches!(
        dev.swap_writepage(got, s, None),
        Err(SwapError::Busy(_))
    ));
    dev.swap_free(s).unwrap(); // deferred
    assert_eq!(dev.counters().deferred_frees, 1);
    dev.drain().unwrap();
    assert_eq!(dev.used_slots(), 7, "freed once the write landed");
}

#[test]
fn on_a_swap_file_or_without_an_aligned_run_the_folio_is_split_saying_why() {
    let (_mem, dev) = device(64, false);
    dev.set_large_folios(false); // as on a swap file
    let f = folio(2, 40);
    let FolioOut::Split { why, pages } = dev.swap_writefolio(f.clone(), None).unwrap() else {
        panic!("not split")
    };
    assert_eq!(why, FolioFallback::NotBlockDevice);
    assert_eq!(pages.len(), 4);
    assert!(!f.test(PageFlags::DIRTY), "its data is in the pages now");
    dev.set_page_cluster(0);
    for (k, (slot, page)) in pages.iter().enumerate() {
        assert!(
            !page.test(PageFlags::DIRTY | PageFlags::WRITEBACK),
            "written"
        );
        let back = dev.swap_readpage(*slot, None).unwrap().wait().unwrap();
        assert_eq!(check_swapped_in(&back, 40 + k as u64, SEED), Ok(()));
    }
    assert_eq!(dev.counters().folio_splits, 1);
    assert!(matches!(
        dev.swap_readfolio(pages[0].0, 2).unwrap(),
        FolioIn::Fallback(FolioFallback::NotBlockDevice)
    ));
    // Fragmented: every other slot taken, no aligned run of 2.
    let (_mem, dev) = device(16, false);
    let taken: Vec<Slot> = (0..15).filter_map(|_| dev.alloc_slot()).collect();
    for s in taken.iter().step_by(2) {
        dev.swap_free(*s).unwrap();
    }
    let FolioOut::Split { why, .. } = dev.swap_writefolio(folio(1, 0), None).unwrap() else {
        panic!("not split")
    };
    assert_eq!(why, FolioFallback::NoAlignedRun);
}

#[test]
#[cfg_attr(miri, ignore = "O_DIRECT file")]
fn a_file_area_splits_by_default() {
    use iov_iter::backend::file::DirectFile;
    use iov_iter_swap::testutil::TestDir;
    let dir = TestDir::new("folio-file");
    let path = dir.join("area");
    let Ok(file) = DirectFile::options()
        .create(true)
        .truncate(true)
        .open(&path)
    else {
        eprintln!("\n***** SKIPPED folio on a file: O_DIRECT refused *****\n");
        return;
    };
    file.set_len(64 * PAGE_SIZE as u64).unwrap();
    let dev = SwapDevice::new(Arc::new(file), IoMode::Sync, 64).unwrap();
    assert!(!dev.large_folios(), "a regular file: no large swap entries");
    assert!(matches!(
        dev.swap_writefolio(folio(4, 0), None).unwrap(),
        FolioOut::Split {
            why: FolioFallback::NotBlockDevice,
            ..
        }
    ));
}

#[test]
fn zero_folios_and_swap_in_fallbacks() {
    let (mem, dev) = device(64, false);
    let z = FolioRef::new(Folio::new(3).unwrap());
    z.set_flags(PageFlags::UPTODATE | PageFlags::DIRTY);
    let FolioOut::Zero(range) = dev.swap_writefolio(z, None).unwrap() else {
        panic!("not marked zero")
    };
    assert_eq!(mem.stats().writes, 0);
    let FolioIn::Zero(back) = dev.swap_readfolio(range.start(), 3).unwrap() else {
        panic!("not read as zeros")
    };
    assert!(back.as_bytes().iter().all(|&b| b == 0) && back.test(PageFlags::UPTODATE));
    assert_eq!(mem.stats().reads, 0);
    // Unaligned; not all allocated; mixed zero; cached.
    let f = folio(3, 0);
    let FolioOut::Whole(r) = dev.swap_writefolio(f, None).unwrap() else {
        panic!()
    };
    let start = r.start().index();
    let fallback =
        |first: u32, order: u32| match dev.swap_readfolio(Slot::new(first), order).unwrap() {
            FolioIn::Fallback(why) => Some(why),
            _ => None,
        };
    assert_eq!(fallback(start + 1, 2), Some(FolioFallback::NotOneFolio));
    assert_eq!(
        fallback(start, 5),
        Some(FolioFallback::NotOneFolio),
        "slots past it are free"
    );
    // Mixed: slots [8, 16) written page by page, half of them zero pages.
    let (_m, small) = device(17, false);
    let run = small.alloc_contiguous(16).unwrap();
    assert_eq!(run.start().index(), 1);
    for s in 8..16u32 {
        let p = if s < 12 {
            iov_iter::PageRef::new(iov_iter::Page::new())
        } else {
            iov_iter_swap::testutil::pages::make_page(u64::from(s), SEED)
        };
        p.set_flags(PageFlags::UPTODATE | PageFlags::DIRTY);
        small.swap_writepage(p, Slot::new(s), None).unwrap();
    }
    assert!(matches!(
        small.swap_readfolio(Slot::new(8), 3).unwrap(),
        FolioIn::Fallback(FolioFallback::MixedZero)
    ));
    mem.inject(FaultPlan::next(1, Fault::EIO).writes_only());
    let g = folio(3, 50);
    let FolioOut::Whole(r2) = dev.swap_writefolio(g.clone(), None).unwrap() else {
        panic!()
    };
    assert!(
        g.test(PageFlags::DIRTY),
        "a failed write redirties the folio"
    );
    assert_eq!(fallback(r2.start().index(), 3), Some(FolioFallback::Cached));
    assert_eq!(
        dev.swap_readpage(r2.start(), None).unwrap_err(),
        SwapError::InMemory(r2.start())
    );
}
