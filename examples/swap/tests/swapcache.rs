//! The swap cache through the public API: the two losses it exists to
//! prevent (a slot reused under a write still on its way; a swap-in
//! reading a slot's old bytes while its new page is being written), with
//! the write in a plug, deferred on a RAM device, and in flight on a real
//! io_uring; readahead into the cache; zero pages; shared reads;
//! redirtied pages.

use std::sync::Arc;

use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice};
use iov_iter::dio::DirectIo;
use iov_iter::{PAGE_SIZE, Page, PageFlags, PageRef};
use iov_iter_swap::content::{check_swapped_in, make_page};
use iov_iter_swap::swapio::{IoMode, SwapDevice, SwapError, SwapPlug};
use iov_iter_swap::swapmap::Slot;

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
    z.set_flags(PageFlags::DIRTY);
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
