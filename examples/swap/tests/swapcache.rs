//! The swap cache through the public API: the two losses it exists to
//! prevent (a slot reused under a write still on its way; a swap-in
//! reading a slot's old bytes while its new page is being written), with
//! the write in a plug, deferred on a RAM device, and in flight on a real
//! io_uring; readahead into the cache; zero pages; shared reads;
//! redirtied pages. Then the swap cache's bad input (the rows of its table
//! in `iov_iter::bad_input`): slots not allocated, double frees, pages not
//! uptodate, second swap-ins, redirtied pages, bad large-folio requests and
//! failed swap-outs. No test here makes a syscall but the io_uring one.

use std::sync::Arc;

use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice};
use iov_iter::buf::{GuestBuf, SharedRegion};
use iov_iter::dio::DirectIo;
use iov_iter::{
    Dest, Error as IoError, Folio, FolioRef, MAX_PAGE_ORDER, PAGE_SIZE, Page, PageFlags, PageRef,
};
use iov_iter_swap::content::zero_page;
use iov_iter_swap::swapio::{
    FolioFallback, FolioIn, FolioOut, IntoFill, IoMode, SwapDevice, SwapError, SwapPlug,
};
use iov_iter_swap::swapmap::{Slot, SwapMapError};
// Under Miri, cheap stand-ins for most pages (see `testutil::pages`).
use iov_iter_swap::testutil::pages::{check_page, check_swapped_in, fill_page, make_page};

const SEED: u64 = 0x5ca;

fn on_device(mem: &MemDevice, slot: Slot) -> Vec<u8> {
    let mut buf = vec![0u8; PAGE_SIZE];
    assert_eq!(mem.read_at(slot.byte_offset(), &mut buf), PAGE_SIZE);
    buf
}

use iov_iter_swap::testutil::ram_swap_device as device;

/// How a test keeps a write on its way: in a plug, or in flight.
trait OnItsWay {
    /// Starts the write of `page` to `slot`; it does not land yet.
    fn start(&mut self, dev: &SwapDevice, page: PageRef, slot: Slot);
    /// Lets it land.
    fn finish(&mut self, dev: &SwapDevice);
}

/// A write held in a `SwapPlug`.
#[derive(Default)]
struct Plugged(Option<SwapPlug>);

impl OnItsWay for Plugged {
    fn start(&mut self, dev: &SwapDevice, page: PageRef, slot: Slot) {
        let mut plug = SwapPlug::new();
        assert!(dev.swap_writepage(page, slot, Some(&mut plug)).unwrap());
        assert_eq!(plug.pending(), (1, 0));
        self.0 = Some(plug);
    }
    fn finish(&mut self, dev: &SwapDevice) {
        self.0.take();
        dev.drain().unwrap();
    }
}

/// A write in flight on a RAM device that defers completions.
struct Deferred(Arc<MemDevice>);

impl OnItsWay for Deferred {
    fn start(&mut self, dev: &SwapDevice, page: PageRef, slot: Slot) {
        assert!(dev.swap_writepage(page, slot, None).unwrap());
        assert_eq!(self.0.pending(), 1, "in flight");
    }
    fn finish(&mut self, dev: &SwapDevice) {
        dev.drain().unwrap();
    }
}

/// Loss 1, and its fix: a slot freed while its write is on its way is not
/// handed out again until the write has landed, so the next page written
/// there is never overwritten by the old one.
fn a_freed_slot_is_not_reused_under_a_write_on_its_way(
    mem: &MemDevice,
    dev: &SwapDevice,
    way: &mut dyn OnItsWay,
) {
    let a = dev.alloc_slot().unwrap();
    let b = dev.alloc_slot().unwrap();
    assert_eq!(dev.free_slots(), 0);
    let old = make_page(1, SEED);
    way.start(dev, old.clone(), a);
    dev.swap_free(a).unwrap(); // deferred
    assert_eq!(dev.counters().deferred_frees, 1);
    assert_eq!(
        dev.alloc_slot(),
        None,
        "not reusable while its write is on its way"
    );
    assert!(matches!(
        dev.swap_writepage(make_page(9, SEED), a, None),
        Err(SwapError::BadSlot(_))
    ));
    assert!(
        matches!(dev.swap_free(a), Err(SwapError::Map(_))),
        "freed once"
    );
    way.finish(dev);
    assert!(!old.test(PageFlags::WRITEBACK));
    let again = dev.alloc_slot().unwrap();
    assert_eq!(again, a, "free once the write has landed");
    let new = make_page(2, SEED);
    dev.swap_writepage(new.clone(), a, None).unwrap();
    dev.drain().unwrap();
    assert_eq!(on_device(mem, a), new.as_bytes()[..], "the new page stays");
    dev.swap_free(a).unwrap();
    dev.swap_free(b).unwrap();
}

/// Loss 2, and its fix: a swap-in of a slot whose page is being written
/// gets that page, without reading the device's old bytes.
fn a_swap_in_under_writeback_gets_the_page_being_written(
    mem: &MemDevice,
    dev: &SwapDevice,
    way: &mut dyn OnItsWay,
) {
    let s = dev.alloc_slot().unwrap();
    mem.write_at(s.byte_offset(), &[0xee; PAGE_SIZE]); // the old bytes
    let page = make_page(7, SEED);
    way.start(dev, page.clone(), s);
    let reads = mem.stats().reads;
    let got = dev.swap_readpage(s, None).unwrap();
    assert!(got.is_done(), "no I/O to wait for");
    let got = got.wait().unwrap();
    assert!(Arc::ptr_eq(&got, &page), "the swap cache's page");
    assert_eq!(check_swapped_in(&got, 7, SEED), Ok(()));
    assert_eq!(mem.stats().reads, reads, "no read");
    assert_eq!(dev.counters().cache_hits, 1);
    drop(got);
    way.finish(dev);
    dev.swap_free(s).unwrap();
}

#[test]
fn plugged_writes_keep_their_slot_and_serve_swap_ins() {
    let (mem, dev) = device(3, false);
    a_freed_slot_is_not_reused_under_a_write_on_its_way(&mem, &dev, &mut Plugged::default());
    a_swap_in_under_writeback_gets_the_page_being_written(&mem, &dev, &mut Plugged::default());
}

#[test]
fn writes_in_flight_keep_their_slot_and_serve_swap_ins() {
    let (mem, dev) = device(3, true);
    let mut way = Deferred(mem.clone());
    a_freed_slot_is_not_reused_under_a_write_on_its_way(&mem, &dev, &mut way);
    a_swap_in_under_writeback_gets_the_page_being_written(&mem, &dev, &mut way);
}

#[cfg(target_os = "linux")]
#[test]
#[cfg_attr(miri, ignore = "O_DIRECT file, io_uring")]
fn writes_in_flight_on_io_uring_keep_their_slot_and_serve_swap_ins() {
    use std::os::unix::fs::FileExt;

    use iov_iter::backend::file::DirectFile;
    use iov_iter::backend::uring::UringQueue;
    use iov_iter_swap::testutil::TestDir;

    let dir = TestDir::new("swapcache-uring");
    let path = dir.join("area");
    let file = match DirectFile::options()
        .create(true)
        .truncate(true)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("\n***** SKIPPED swap cache on io_uring: O_DIRECT refused: {e} *****\n");
            return;
        }
    };
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all_at(&[0xee; 3 * PAGE_SIZE], 0)
        .unwrap();
    let q = match UringQueue::builder().depth(8).build(file) {
        Ok(q) => Arc::new(q),
        Err(e) => {
            eprintln!("\n***** SKIPPED swap cache on io_uring: {e} *****\n");
            return;
        }
    };
    let dev = SwapDevice::new(q.clone() as Arc<dyn DirectIo>, IoMode::Uring, 3).unwrap();
    let reread = std::fs::File::open(&path).unwrap();
    let on_file = |slot: Slot| {
        let mut buf = vec![0u8; PAGE_SIZE];
        reread.read_exact_at(&mut buf, slot.byte_offset()).unwrap();
        buf
    };
    // Loss 1: the write is in flight (its SQE held by the ring's plug).
    let a = dev.alloc_slot().unwrap();
    let _b = dev.alloc_slot().unwrap();
    let old = make_page(1, SEED);
    {
        let _held = q.plug();
        dev.swap_writepage(old.clone(), a, None).unwrap();
        assert_eq!(dev.in_flight(), 1);
        dev.swap_free(a).unwrap();
        assert_eq!(dev.alloc_slot(), None, "not reusable while in flight");
        // Loss 2: a swap-in meanwhile gets the page being written.
        // (The slot is freed: a swap-in of it is refused instead.)
        assert!(matches!(
            dev.swap_readpage(a, None),
            Err(SwapError::BadSlot(_))
        ));
    }
    dev.drain().unwrap();
    assert_eq!(dev.alloc_slot(), Some(a));
    let new = make_page(2, SEED);
    let mut held = Some(q.plug());
    dev.swap_writepage(new.clone(), a, None).unwrap();
    let got = dev.swap_readpage(a, None).unwrap().wait().unwrap();
    assert!(
        Arc::ptr_eq(&got, &new),
        "served from the swap cache while in flight"
    );
    held.take();
    dev.drain().unwrap();
    assert_eq!(
        on_file(a),
        new.as_bytes()[..],
        "the new page landed, not the old"
    );
}

#[test]
fn readahead_grows_with_its_hits_reads_merged_kiocbs_and_serves_the_neighbours() {
    let (mem, dev) = device(64, false);
    let run: Vec<Slot> = dev.alloc_contiguous(20).unwrap().iter().collect();
    assert_eq!(run[0].index(), 1);
    let mut plug = SwapPlug::new();
    for (i, &s) in run.iter().enumerate() {
        dev.swap_writepage(make_page(i as u64, SEED), s, Some(&mut plug))
            .unwrap();
    }
    drop(plug);
    // A hole in the cluster [8, 16): slot 12 is freed.
    dev.swap_free(Slot::new(12)).unwrap();
    assert_eq!(dev.page_cluster(), 3);
    let reads = mem.stats().reads;
    // A sequential scan: the window starts at 2 pages (next to the last
    // miss) and grows with the hits, up to 2^page_cluster = 8, aligned.
    let mut misses = Vec::new();
    for s in (1..=20u32).filter(|&s| s != 12 && s != 18) {
        let before = mem.stats().reads;
        let p = dev.swap_readpage(Slot::new(s), None).unwrap();
        if mem.stats().reads > before {
            misses.push(s);
        }
        assert_eq!(
            check_swapped_in(&p.wait().unwrap(), u64::from(s) - 1, SEED),
            Ok(())
        );
        if s == 16 {
            assert_eq!(dev.readahead_cached(), 4, "17..=20 read ahead");
            // Freeing a slot drops its read-ahead page.
            dev.swap_free(Slot::new(18)).unwrap();
            assert_eq!(dev.readahead_cached(), 3);
        }
    }
    assert_eq!(
        misses,
        [1, 2, 4, 8, 16],
        "windows of 2 (slot 0 is the header), 2, 4, 8, 8"
    );
    let c = dev.counters();
    assert_eq!(
        mem.stats().reads - reads,
        6,
        "[8, 12) and [13, 16) are two kiocbs"
    );
    assert_eq!(c.readahead_pages, 1 + 3 + 6 + 4);
    assert_eq!(c.readahead_hits, 1 + 3 + 6 + 3);
    assert_eq!(c.merged_read_pages, 1 + 3 + (3 + 2) + 4);
    assert_eq!(dev.readahead_cached(), 0);
    // Random access: no hits, not next to the last miss: one page.
    let far = dev.alloc_contiguous(30).unwrap();
    let mut plug = SwapPlug::new();
    for (i, s) in far.iter().enumerate() {
        dev.swap_writepage(make_page(100 + i as u64, SEED), s, Some(&mut plug))
            .unwrap();
    }
    drop(plug);
    // The window halves at most per miss (the scan's hits still count at
    // the first), then stays at one page.
    let mut extra = Vec::new();
    for k in [27u32, 3, 15, 9, 22] {
        let before = dev.counters().readahead_pages;
        let s = Slot::new(far.start().index() + k);
        dev.swap_readpage(s, None).unwrap().wait().unwrap();
        extra.push(dev.counters().readahead_pages - before);
    }
    assert_eq!(extra[3..], [0, 0], "{extra:?}");
    // Off: every swap-in is one read.
    dev.set_page_cluster(0);
    let reads = mem.stats().reads;
    let before = dev.counters().readahead_pages;
    dev.swap_readpage(Slot::new(far.start().index() + 20), None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(mem.stats().reads - reads, 1);
    assert_eq!(dev.counters().readahead_pages, before);
}

#[test]
fn swap_ins_of_a_slot_being_read_share_the_read() {
    let (mem, dev) = device(8, true);
    dev.set_page_cluster(0);
    let s = dev.alloc_slot().unwrap();
    let page = make_page(3, SEED);
    dev.swap_writepage(page, s, None).unwrap();
    dev.drain().unwrap();
    let one = dev.swap_readpage(s, None).unwrap();
    let two = dev.swap_readpage(s, None).unwrap();
    assert_eq!(mem.pending(), 1, "one read for both");
    assert!(matches!(
        dev.swap_writepage(make_page(4, SEED), s, None),
        Err(SwapError::Busy(_))
    ));
    let (a, b) = (one.wait().unwrap(), two.wait().unwrap());
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(check_swapped_in(&a, 3, SEED), Ok(()));
    assert_eq!(dev.counters().cache_hits, 1);
    // A free while a read is on its way waits for it.
    let three = dev.swap_readpage(s, None).unwrap();
    dev.swap_free(s).unwrap();
    assert_eq!(dev.used_slots(), 1);
    assert_eq!(check_swapped_in(&three.wait().unwrap(), 3, SEED), Ok(()));
    assert_eq!(dev.used_slots(), 0);
}

#[test]
fn zero_pages_are_marked_not_written_and_read_back_as_zeros() {
    let (mem, dev) = device(8, false);
    let s = dev.alloc_slot().unwrap();
    mem.write_at(s.byte_offset(), &[0xee; PAGE_SIZE]);
    let zero = Page::new();
    zero.set_flags(PageFlags::UPTODATE | PageFlags::DIRTY);
    let zero = PageRef::new(zero);
    assert!(dev.swap_writepage(zero.clone(), s, None).unwrap());
    assert!(
        !zero.test(PageFlags::DIRTY | PageFlags::WRITEBACK),
        "clean at once"
    );
    let c = dev.counters();
    assert_eq!((c.zero_pages_out, c.pswpout, mem.stats().writes), (1, 0, 0));
    let back = dev.swap_readpage(s, None).unwrap().wait().unwrap();
    assert!(back.test(PageFlags::UPTODATE));
    assert!(
        back.as_bytes().iter().all(|&b| b == 0),
        "zeros, not the device's bytes"
    );
    assert_eq!((dev.counters().zero_pages_in, mem.stats().reads), (1, 0));
    // A real page over it goes to the device; the mark is gone.
    let page = make_page(5, SEED);
    dev.swap_writepage(page.clone(), s, None).unwrap();
    assert_eq!(on_device(&mem, s), page.as_bytes()[..]);
    dev.set_page_cluster(0);
    let back = dev.swap_readpage(s, None).unwrap().wait().unwrap();
    assert_eq!(check_swapped_in(&back, 5, SEED), Ok(()));
    assert_eq!(mem.stats().reads, 1);
    // Freed, the mark does not survive into the slot's next use.
    let (mem2, dev2) = device(2, false); // one slot: it comes back
    let t = dev2.alloc_slot().unwrap();
    let z = Page::new();
    z.set_flags(PageFlags::UPTODATE | PageFlags::DIRTY);
    dev2.swap_writepage(PageRef::new(z), t, None).unwrap();
    dev2.swap_free(t).unwrap();
    assert_eq!(dev2.alloc_slot(), Some(t));
    mem2.write_at(t.byte_offset(), &[0x11; PAGE_SIZE]);
    dev2.set_page_cluster(0);
    let back = dev2.swap_readpage(t, None).unwrap().wait().unwrap();
    assert_eq!(back.as_bytes()[0], 0x11, "read from the device");
}

#[test]
fn a_failed_write_leaves_the_redirtied_page_as_the_slots_data() {
    let (mem, dev) = device(8, false);
    let s = dev.alloc_slot().unwrap();
    mem.inject(FaultPlan::next(1, Fault::EIO).writes_only());
    let mut page = make_page(6, SEED);
    dev.swap_writepage(page.clone(), s, None).unwrap();
    assert!(page.test(PageFlags::DIRTY), "redirtied");
    assert!(dev.is_redirtied(s) && !dev.caches(s, &page));
    // The owner may change its page in place: nobody else holds it.
    assert!(PageRef::get_mut(&mut page).is_some());
    // A swap-in reads nothing stale: the data is the page in memory.
    let reads = mem.stats().reads;
    assert_eq!(
        dev.swap_readpage(s, None).unwrap_err(),
        SwapError::InMemory(s)
    );
    assert_eq!(mem.stats().reads, reads);
    // Writing the slot again (or freeing it) ends that.
    dev.swap_writepage(make_page(8, SEED), s, None).unwrap();
    assert!(!dev.is_redirtied(s));
    dev.set_page_cluster(0);
    let back = dev.swap_readpage(s, None).unwrap().wait().unwrap();
    assert_eq!(check_swapped_in(&back, 8, SEED), Ok(()));
}

// ---------------------------------------------------------------------------
// Bad input: the rows of the swap-cache table in `iov_iter::bad_input`.
// A refused call does no I/O and changes nothing: the slot counts, the
// swap cache, the page's flags are as they were.

/// A dirty, uptodate folio of `order` whose page `k` is content page
/// `base + k`.
fn folio(order: u32, base: u64) -> FolioRef {
    let mut f = Folio::new(order).unwrap();
    for (k, chunk) in f.as_mut_bytes().chunks_exact_mut(PAGE_SIZE).enumerate() {
        fill_page(chunk.try_into().unwrap(), base + k as u64, SEED);
    }
    f.set_flags(PageFlags::UPTODATE | PageFlags::DIRTY);
    FolioRef::new(f)
}

/// Why a large-folio swap-in fell back to pages, if it did.
fn fallback(r: Result<FolioIn, SwapError>) -> Option<FolioFallback> {
    match r {
        Ok(FolioIn::Fallback(why)) => Some(why),
        _ => None,
    }
}

/// Slots no swap-in or swap-out may use on an 8-slot device: never
/// allocated, the header, just past the end, the last index.
const BAD: [u32; 4] = [5, 0, 8, u32::MAX];

#[test]
fn swap_free_of_a_free_reserved_or_out_of_range_slot_is_einval_and_frees_nothing() {
    let (_mem, dev) = device(8, true);
    let used = dev.alloc_slot().unwrap();
    let written = dev.alloc_slot().unwrap();
    dev.swap_writepage(make_page(1, SEED), written, None)
        .unwrap(); // in flight
    let before = (dev.used_slots(), dev.free_slots(), dev.cache_entries());
    for s in BAD {
        let slot = Slot::new(s);
        let want = match s {
            0 => SwapMapError::Reserved { slot },
            5 => SwapMapError::DoubleFree { slot },
            _ => SwapMapError::OutOfRange { slot, nr_slots: 8 },
        };
        let e = dev.swap_free(slot).unwrap_err();
        assert_eq!(e, SwapError::Map(want));
        assert_eq!(e.errno(), libc::EINVAL);
    }
    assert_eq!(
        (dev.used_slots(), dev.free_slots(), dev.cache_entries()),
        before
    );
    // Freed twice: the second is a double free, also while the first
    // waits for the slot's write, and after it.
    let double = |slot| Err(SwapError::Map(SwapMapError::DoubleFree { slot }));
    dev.swap_free(used).unwrap();
    assert_eq!(dev.swap_free(used), double(used));
    dev.swap_free(written).unwrap(); // deferred
    assert_eq!(dev.swap_free(written), double(written));
    assert_eq!(
        dev.counters().deferred_frees,
        1,
        "one deferred free, not two"
    );
    dev.drain().unwrap();
    assert_eq!(dev.swap_free(written), double(written));
    assert_eq!((dev.used_slots(), dev.free_slots()), (0, 7));
}

#[test]
fn swap_in_of_a_slot_not_allocated_is_einval_with_no_io() {
    let (mem, dev) = device(8, false);
    let s = dev.alloc_slot().unwrap();
    dev.swap_writepage(make_page(1, SEED), s, None).unwrap();
    let freed = dev.alloc_slot().unwrap();
    dev.swap_writepage(make_page(2, SEED), freed, None).unwrap();
    dev.swap_free(freed).unwrap();
    let ios = mem.stats().ios();
    let region = Arc::new(SharedRegion::zeroed(2 * PAGE_SIZE).unwrap());
    for slot in BAD.map(Slot::new).into_iter().chain([freed]) {
        let e = dev.swap_readpage(slot, None).unwrap_err();
        assert_eq!(e, SwapError::BadSlot(slot));
        assert_eq!(e.errno(), libc::EINVAL);
        assert_eq!(dev.read_page(slot).unwrap_err(), SwapError::BadSlot(slot));
        let dst = GuestBuf::<Dest>::new(&region, [(0, PAGE_SIZE)]).unwrap();
        assert_eq!(
            dev.swap_read_into(slot, dst, None).unwrap_err(),
            SwapError::BadSlot(slot)
        );
        let mut plug = SwapPlug::new();
        assert!(dev.swap_readpage(slot, Some(&mut plug)).is_err());
        assert_eq!(plug.pending(), (0, 0), "nothing joined the plug");
        assert_eq!(
            fallback(dev.swap_readfolio(slot, 1)),
            Some(FolioFallback::NotOneFolio)
        );
    }
    assert_eq!(mem.stats().ios(), ios, "no I/O");
    assert_eq!(dev.cache_entries(), 0);
    // Each refused destination was dropped: its lease is gone.
    drop(GuestBuf::<Dest>::new(&region, [(0, 2 * PAGE_SIZE)]).unwrap());
    // A destination that is not one page: EINVAL, before the slot.
    for len in [0, 512, 2 * PAGE_SIZE] {
        let dst = GuestBuf::<Dest>::new(&region, [(0, len)]).unwrap();
        let e = dev.swap_read_into(s, dst, None).unwrap_err();
        assert!(
            matches!(e, SwapError::Backend(IoError::InvalidArgument(_))),
            "{e:?}"
        );
        assert_eq!(e.errno(), libc::EINVAL);
    }
    assert_eq!(mem.stats().ios(), ios);
    dev.set_page_cluster(0);
    assert_eq!(
        check_swapped_in(&dev.read_page(s).unwrap(), 1, SEED),
        Ok(())
    );
}

#[test]
fn swap_out_to_a_slot_not_allocated_is_einval_and_leaves_the_page_dirty() {
    let (mem, dev) = device(8, false);
    let freed = dev.alloc_slot().unwrap();
    dev.swap_free(freed).unwrap();
    let mut page = make_page(3, SEED);
    let zero = zero_page();
    let mut plug = SwapPlug::new();
    for slot in BAD.map(Slot::new).into_iter().chain([freed]) {
        for p in [&page, &zero] {
            let e = dev.swap_writepage(p.clone(), slot, None).unwrap_err();
            assert_eq!(e, SwapError::BadSlot(slot));
            assert_eq!(e.errno(), libc::EINVAL);
            assert_eq!(
                dev.swap_writepage(p.clone(), slot, Some(&mut plug)),
                Err(SwapError::BadSlot(slot))
            );
            assert!(p.test(PageFlags::DIRTY), "still dirty");
            assert!(!p.test(PageFlags::WRITEBACK | PageFlags::RECLAIM));
        }
    }
    assert_eq!(plug.pending(), (0, 0));
    drop(plug);
    assert_eq!(mem.stats().ios(), 0);
    let c = dev.counters();
    assert_eq!((c.pswpout, c.zero_pages_out), (0, 0));
    assert_eq!(dev.cache_entries(), 0);
    assert!(
        PageRef::get_mut(&mut page).is_some(),
        "the device kept no reference"
    );
}

#[test]
fn a_page_or_folio_that_is_not_uptodate_is_not_swapped_out() {
    let (mem, dev) = device(64, false);
    dev.set_page_cluster(0);
    let s = dev.alloc_slot().unwrap();
    dev.swap_writepage(make_page(4, SEED), s, None).unwrap();
    // The page of a failed read holds no data of the slot's.
    mem.inject(FaultPlan::next(1, Fault::Short(512)).reads_only());
    let (failed, r) = dev.swap_readpage(s, None).unwrap().wait_page();
    assert!(matches!(r, Err(SwapError::Read { .. })), "{r:?}");
    assert!(!failed.test(PageFlags::UPTODATE));
    // A caller mistaking it for its data: refused, untouched.
    failed.set_flags(PageFlags::DIRTY);
    let fresh = PageRef::new(Page::new()); // nobody filled it: all zeros
    fresh.set_flags(PageFlags::DIRTY);
    let writes = mem.stats().writes;
    for p in [&failed, &fresh] {
        let e = dev.swap_writepage(p.clone(), s, None).unwrap_err();
        assert!(
            matches!(e, SwapError::Backend(IoError::InvalidArgument(_))),
            "{e:?}"
        );
        assert_eq!(e.errno(), libc::EINVAL);
        assert!(p.test(PageFlags::DIRTY) && !p.test(PageFlags::WRITEBACK));
    }
    assert_eq!(mem.stats().writes, writes);
    assert_eq!(dev.counters().zero_pages_out, 0, "not marked zero either");
    assert_eq!(
        check_swapped_in(&dev.read_page(s).unwrap(), 4, SEED),
        Ok(()),
        "the slot kept its data"
    );
    // A folio likewise: no slots taken.
    let f = FolioRef::new(Folio::new(2).unwrap());
    f.set_flags(PageFlags::DIRTY);
    let e = dev.swap_writefolio(f.clone(), None).unwrap_err();
    assert_eq!(e.errno(), libc::EINVAL, "{e:?}");
    assert!(f.test(PageFlags::DIRTY) && !f.test(PageFlags::WRITEBACK));
    assert_eq!((dev.used_slots(), mem.stats().writes), (1, writes));
}

#[test]
fn a_second_swap_in_while_one_is_reading_shares_it_or_is_busy() {
    let (mem, dev) = device(64, true);
    dev.set_page_cluster(0);
    let s = dev.alloc_slot().unwrap();
    dev.swap_writepage(make_page(5, SEED), s, None).unwrap();
    dev.drain().unwrap();
    let region = Arc::new(SharedRegion::zeroed(2 * PAGE_SIZE).unwrap());
    let into =
        |k: u64| GuestBuf::<Dest>::new(&region, [(k * PAGE_SIZE as u64, PAGE_SIZE)]).unwrap();
    // A read into a pool page on its way: another swap_readpage shares it,
    // a read into the caller's memory is Busy (retry), and so is a
    // swap-out.
    let one = dev.swap_readpage(s, None).unwrap();
    assert_eq!(mem.pending(), 1);
    let e = dev.swap_read_into(s, into(0), None).unwrap_err();
    assert_eq!(e, SwapError::Busy(s));
    assert_eq!(e.errno(), libc::EBUSY);
    drop(into(0)); // the refused destination was dropped
    let e = dev.swap_writepage(make_page(6, SEED), s, None).unwrap_err();
    assert_eq!(e, SwapError::Busy(s));
    let two = dev.swap_readpage(s, None).unwrap();
    assert_eq!(mem.pending(), 1, "one read");
    let (a, b) = (one.wait().unwrap(), two.wait().unwrap());
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(check_swapped_in(&a, 5, SEED), Ok(()));
    // A read into the caller's memory on its way: a second one is Busy,
    // a swap_readpage shares it (a copy of its own).
    let first = dev.swap_read_into(s, into(0), None).unwrap();
    assert_eq!(
        dev.swap_read_into(s, into(1), None).unwrap_err(),
        SwapError::Busy(s)
    );
    let page = dev.swap_readpage(s, None).unwrap();
    assert_eq!(mem.pending(), 1, "one read");
    assert_eq!(first.wait(), Ok(IntoFill::Read));
    assert_eq!(check_swapped_in(&page.wait().unwrap(), 5, SEED), Ok(()));
    let mut bytes = Box::new([0u8; PAGE_SIZE]);
    region.read_at(0, &mut bytes[..]).unwrap();
    assert_eq!(check_page(&bytes, 5, SEED), Ok(()));
    region.read_at(PAGE_SIZE as u64, &mut bytes[..]).unwrap();
    assert!(bytes.iter().all(|&b| b == 0), "the Busy one read nothing");
    // A large folio being read: every swap-in of its slots is Busy.
    let f = folio(2, 50);
    let FolioOut::Whole(range) = dev.swap_writefolio(f.clone(), None).unwrap() else {
        panic!("not written whole")
    };
    dev.drain().unwrap();
    let FolioIn::Reading(h) = dev.swap_readfolio(range.start(), 2).unwrap() else {
        panic!("not read whole")
    };
    for slot in range.iter() {
        assert_eq!(
            dev.swap_readpage(slot, None).unwrap_err(),
            SwapError::Busy(slot)
        );
        assert_eq!(
            dev.swap_read_into(slot, into(1), None).unwrap_err(),
            SwapError::Busy(slot)
        );
    }
    assert_eq!(
        fallback(dev.swap_readfolio(range.start(), 2)),
        Some(FolioFallback::Cached)
    );
    assert_eq!(mem.pending(), 1);
    assert_eq!(h.wait().unwrap().as_bytes(), f.as_bytes());
}

#[test]
fn a_page_redirtied_under_writeback_stays_dirty_when_the_write_lands() {
    let (mem, dev) = device(8, true);
    let s = dev.alloc_slot().unwrap();
    let t = dev.alloc_slot().unwrap();
    let mut page = make_page(7, SEED);
    dev.swap_writepage(page.clone(), s, None).unwrap();
    assert!(page.test(PageFlags::WRITEBACK) && !page.test(PageFlags::DIRTY));
    assert!(
        PageRef::get_mut(&mut page).is_none(),
        "its bytes cannot change under the write"
    );
    // Dirtied again while its write is on its way.
    page.set_flags(PageFlags::DIRTY);
    for slot in [s, t] {
        let e = dev.swap_writepage(page.clone(), slot, None).unwrap_err();
        assert_eq!(e, SwapError::Busy(slot));
        assert_eq!(e.errno(), libc::EBUSY);
    }
    assert_eq!(mem.pending(), 1, "no second write");
    dev.drain().unwrap();
    assert!(
        page.test(PageFlags::DIRTY) && !page.test(PageFlags::WRITEBACK),
        "the write's end does not clean a redirtied page"
    );
    assert_eq!(on_device(&mem, s), page.as_bytes()[..]);
    // Changed and written again, it is clean and on the device.
    fill_page(PageRef::get_mut(&mut page).unwrap().as_mut_bytes(), 8, SEED);
    dev.swap_writepage(page.clone(), s, None).unwrap();
    dev.drain().unwrap();
    assert!(!page.test(PageFlags::DIRTY | PageFlags::WRITEBACK));
    let mut want = [0u8; PAGE_SIZE];
    fill_page(&mut want, 8, SEED);
    assert_eq!(on_device(&mem, s), want[..]);
}

#[test]
fn large_folio_requests_with_a_bad_order_or_misaligned_first_slot() {
    let (mem, dev) = device(64, false);
    let f = folio(3, 20);
    let FolioOut::Whole(range) = dev.swap_writefolio(f.clone(), None).unwrap() else {
        panic!("not written whole")
    };
    let first = range.start().index();
    assert_eq!((first % 8, range.len()), (0, 8));
    let ios = mem.stats().ios();
    // Not the first slot of a naturally aligned run of allocated slots:
    // page by page.
    for (at, order) in [
        (first + 1, 3),
        (first + 4, 3),
        (first, 4),
        (0, 3),
        (!7u32, 3),
    ] {
        assert_eq!(
            fallback(dev.swap_readfolio(Slot::new(at), order)),
            Some(FolioFallback::NotOneFolio),
            "{at}, order {order}"
        );
    }
    assert!(matches!(
        dev.swap_readfolio(range.start(), 0).unwrap(),
        FolioIn::Fallback(_)
    ));
    // An order no folio has: EINVAL.
    for order in [MAX_PAGE_ORDER + 1, 31, 32, 40, u32::MAX] {
        let e = dev.swap_readfolio(range.start(), order).unwrap_err();
        assert!(
            matches!(e, SwapError::Backend(IoError::InvalidArgument(_))),
            "order {order}: {e:?}"
        );
        assert_eq!(e.errno(), libc::EINVAL);
    }
    assert_eq!(mem.stats().ios(), ios, "no I/O");
    assert_eq!(dev.cache_entries(), 0);
    let FolioIn::Reading(h) = dev.swap_readfolio(range.start(), 3).unwrap() else {
        panic!("not read whole")
    };
    assert_eq!(h.wait().unwrap().as_bytes(), f.as_bytes());
    // swap_writefolio: an order-0 folio is a page's job; a folio under
    // writeback is busy.
    let small = FolioRef::new(Folio::new(0).unwrap());
    small.set_flags(PageFlags::UPTODATE | PageFlags::DIRTY);
    let e = dev.swap_writefolio(small.clone(), None).unwrap_err();
    assert!(matches!(e, SwapError::Unsupported(_)), "{e:?}");
    assert_eq!(e.errno(), libc::EOPNOTSUPP);
    assert!(small.test(PageFlags::DIRTY));
    let (mem, dev) = device(64, true);
    let g = folio(2, 60);
    assert!(matches!(
        dev.swap_writefolio(g.clone(), None).unwrap(),
        FolioOut::Whole(_)
    ));
    g.set_flags(PageFlags::DIRTY);
    let used = dev.used_slots();
    assert!(matches!(
        dev.swap_writefolio(g.clone(), None),
        Err(SwapError::Busy(_))
    ));
    assert_eq!((dev.used_slots(), mem.pending()), (used, 1));
    dev.drain().unwrap();
    assert!(
        g.test(PageFlags::DIRTY),
        "redirtied under writeback: still dirty"
    );
}

#[test]
fn a_failed_swap_out_leaves_pages_and_folios_dirty_and_in_memory() {
    // A batch of four pages, one kiocb failing in flight (an error, or a
    // short write: no partial success).
    for fault in [Fault::EIO, Fault::Short(PAGE_SIZE)] {
        let (mem, dev) = device(64, true);
        dev.set_page_cluster(0);
        let run: Vec<Slot> = dev.alloc_contiguous(4).unwrap().iter().collect();
        let pages: Vec<PageRef> = (0..4).map(|i| make_page(10 + i, SEED)).collect();
        mem.inject(FaultPlan::next(1, fault).writes_only());
        let mut plug = SwapPlug::new();
        for (&s, p) in run.iter().zip(&pages) {
            assert!(dev.swap_writepage(p.clone(), s, Some(&mut plug)).unwrap());
        }
        drop(plug);
        assert_eq!(mem.pending(), 1, "one kiocb");
        dev.drain().unwrap();
        for (k, (&s, p)) in run.iter().zip(&pages).enumerate() {
            assert!(
                p.test(PageFlags::DIRTY) && !p.test(PageFlags::WRITEBACK),
                "{fault:?}: page {k} redirtied"
            );
            assert_eq!(check_page(p.as_bytes(), 10 + k as u64, SEED), Ok(()));
            assert!(dev.is_redirtied(s));
            let e = dev.swap_readpage(s, None).unwrap_err();
            assert_eq!(e, SwapError::InMemory(s));
            assert_eq!(e.errno(), libc::EEXIST);
        }
        let c = dev.counters();
        assert_eq!((c.write_errors, c.redirtied_pages), (1, 4), "{fault:?}");
        // Written again, they land and read back.
        for (&s, p) in run.iter().zip(&pages) {
            assert!(dev.swap_writepage(p.clone(), s, None).unwrap());
        }
        dev.drain().unwrap();
        for (k, &s) in run.iter().enumerate() {
            let back = dev.read_page(s).unwrap();
            assert_eq!(check_swapped_in(&back, 10 + k as u64, SEED), Ok(()));
        }
    }
    // A large folio written as one segment, failing: the folio is dirty,
    // every slot of it in memory.
    let (mem, dev) = device(64, true);
    let f = folio(3, 30);
    mem.inject(FaultPlan::next(1, Fault::EIO).writes_only());
    let FolioOut::Whole(range) = dev.swap_writefolio(f.clone(), None).unwrap() else {
        panic!("not written whole")
    };
    dev.drain().unwrap();
    assert!(f.test(PageFlags::DIRTY) && !f.test(PageFlags::WRITEBACK));
    for s in range.iter() {
        assert!(dev.is_redirtied(s));
        assert_eq!(
            dev.swap_readpage(s, None).unwrap_err(),
            SwapError::InMemory(s)
        );
    }
    assert_eq!(
        fallback(dev.swap_readfolio(range.start(), 3)),
        Some(FolioFallback::Cached)
    );
    for s in range.iter() {
        dev.swap_free(s).unwrap();
    }
    let FolioOut::Whole(again) = dev.swap_writefolio(f.clone(), None).unwrap() else {
        panic!("not written whole")
    };
    dev.drain().unwrap();
    let FolioIn::Reading(h) = dev.swap_readfolio(again.start(), 3).unwrap() else {
        panic!("not read whole")
    };
    assert_eq!(h.wait().unwrap().as_bytes(), f.as_bytes());
}
