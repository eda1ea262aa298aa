//! Guest memory: `SharedRegion` (memory others may touch, reached from
//! Rust only through bounds-checked raw copies) and `GuestBuf` (an owned
//! buffer over ranges of it, for asynchronous direct I/O with no bounce
//! buffer). Bad ranges are refused with the kernel's errno (EFAULT out of
//! range, EINVAL for overlapping destination ranges, EBUSY for a range an
//! in-flight buffer holds); data goes through the RAM backend with deferred,
//! reordered completions; a destination marks the pages it landed in.
//!
//! The heap-region tests make no syscalls and run under Miri (Stacked and
//! Tree Borrows): the region is a test-owned heap allocation behind
//! `SharedRegion::from_raw_parts`. The mmap, `O_DIRECT` and vm-memory tests
//! are skipped there.

#![cfg(feature = "std")]

// The shared helpers trip clippy's `type_complexity` (`Recorder::seen`).
mod common;

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use common::{Recorder, all_bytes, block};
use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice, PendingOrder};
use iov_iter::buf::{GuestBuf, IoBuf, IoBufMut, OwnedIter, SharedRegion};
use iov_iter::dio::{DirectIo, DirtyBitmap};
use iov_iter::kiocb::{Completed, Kiocb, Submitted};
use iov_iter::{Dest, Errno, Error, PAGE_SIZE, Source};

/// Runs `f` on a region over `len` zeroed bytes of test-owned heap memory
/// (page-aligned), then checks that nothing kept the region and frees the
/// memory.
fn with_heap_ram(len: usize, f: impl FnOnce(&Arc<SharedRegion>)) {
    let layout = Layout::from_size_align(len, PAGE_SIZE).unwrap();
    // SAFETY: `len` is not 0 in these tests.
    let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).expect("heap guest RAM");
    // SAFETY: `len` zeroed bytes, freed only below, after the region is
    // gone (checked), and reached by nothing but the region meanwhile.
    let ram = Arc::new(unsafe { SharedRegion::from_raw_parts(ptr, len) });
    f(&ram);
    assert_eq!(Arc::strong_count(&ram), 1, "a GuestBuf outlived the test");
    drop(ram);
    // SAFETY: allocated above with this layout; the region is gone.
    unsafe { dealloc(ptr.as_ptr(), layout) };
}

fn read(ram: &SharedRegion, offset: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    assert_eq!(ram.read_at(offset, &mut v), Ok(len));
    v
}

fn errno<T: std::fmt::Debug>(r: iov_iter::Result<T>) -> Errno {
    r.unwrap_err().errno()
}

#[test]
fn accessors_copy_all_or_nothing_and_refuse_out_of_range_with_efault() {
    with_heap_ram(2 * PAGE_SIZE, |ram| {
        let len = ram.len() as u64;
        assert_eq!(ram.write_at(4094, b"span"), Ok(4));
        assert_eq!(read(ram, 4094, 4), b"span");
        assert_eq!(ram.fill(10, 3, 0xee), Ok(3));
        assert_eq!(read(ram, 9, 5), [0, 0xee, 0xee, 0xee, 0]);
        // The last byte, and an empty access at the very end.
        assert_eq!(ram.write_at(len - 1, b"z"), Ok(1));
        assert_eq!(ram.read_at(len, &mut []), Ok(0));
        assert_eq!(ram.fill(len, 0, 1), Ok(0));

        let mut buf = [0u8; 8];
        for offset in [len - 7, len + 1, u64::MAX, 1 << 63] {
            assert_eq!(
                errno(ram.read_at(offset, &mut buf)),
                Errno::EFAULT,
                "{offset}"
            );
            assert_eq!(errno(ram.write_at(offset, &buf)), Errno::EFAULT, "{offset}");
            assert_eq!(errno(ram.fill(offset, 8, 1)), Errno::EFAULT, "{offset}");
        }
        assert_eq!(errno(ram.fill(0, usize::MAX, 1)), Errno::EFAULT);
        // A refused write changed nothing, not even the part inside.
        assert_eq!(read(ram, len - 7, 7), [0, 0, 0, 0, 0, 0, b'z']);
        assert!(matches!(
            ram.read_at(len, &mut buf),
            Err(Error::Os(Errno::EFAULT))
        ));
    });
}

#[test]
fn out_of_range_guest_buffers_are_efault() {
    with_heap_ram(4 * PAGE_SIZE, |ram| {
        let len = ram.len() as u64;
        for bad in [
            vec![(len - 511, 512)],
            vec![(0, 512), (len, 1)],
            vec![(u64::MAX, 1)],
            vec![(len + 1, 0)], // empty, but not inside either
            vec![(1, usize::MAX)],
        ] {
            assert_eq!(
                errno(GuestBuf::<Dest>::new(ram, bad.clone())),
                Errno::EFAULT,
                "{bad:?}"
            );
            assert_eq!(
                errno(GuestBuf::<Source>::new(ram, bad.clone())),
                Errno::EFAULT,
                "{bad:?}"
            );
        }
        // An empty range at the end is inside, and skipped.
        let buf = GuestBuf::<Dest>::new(ram, [(len, 0), (0, 512)]).unwrap();
        assert_eq!((buf.len(), buf.nr_segs()), (512, 1));
        // Bounds come first: out of range *and* overlapping is EFAULT.
        let e = GuestBuf::<Dest>::new(ram, [(1024, 512), (1024, 512), (len, 1)]);
        assert_eq!(errno(e), Errno::EFAULT);
    });
}

#[test]
fn overlapping_destination_ranges_are_einval_and_sources_may_overlap() {
    with_heap_ram(4 * PAGE_SIZE, |ram| {
        for bad in [
            vec![(0, 512), (511, 2)],
            vec![(4096, 512), (0, 8192)],
            vec![(100, 1), (100, 1)],
        ] {
            let e = GuestBuf::<Dest>::new(ram, bad.clone()).unwrap_err();
            assert_eq!(e, Error::OverlappingRanges, "{bad:?}");
            assert_eq!(e.errno(), Errno::EINVAL);
            // The same chain is a fine source (a device may read twice).
            let src = GuestBuf::<Source>::new(ram, bad.clone()).unwrap();
            assert_eq!(src.nr_segs(), bad.len());
        }
        // Adjacent is not overlapping.
        let dst = GuestBuf::<Dest>::new(ram, [(512, 512), (0, 512), (1024, 1)]).unwrap();
        assert_eq!(
            dst.ranges().collect::<Vec<_>>(),
            [(512, 512), (0, 512), (1024, 1)]
        );
        // A refused buffer took no lease: the memory is free again.
        drop(dst);
        assert!(GuestBuf::<Dest>::new(ram, [(0, 8192)]).is_ok());
    });
}

#[test]
fn a_live_buffer_leases_its_ranges() {
    with_heap_ram(4 * PAGE_SIZE, |ram| {
        let mut b = [0u8; 16];
        let dst = GuestBuf::<Dest>::new(ram, [(4096, 512), (8192, 512)]).unwrap();
        // A destination's ranges: no Rust access at all.
        assert_eq!(errno(ram.read_at(4096 + 500, &mut b)), Errno::EBUSY);
        assert_eq!(errno(ram.write_at(8192, &b)), Errno::EBUSY);
        assert_eq!(errno(ram.fill(8000, 200, 0)), Errno::EBUSY);
        assert_eq!(
            errno(GuestBuf::<Dest>::new(ram, [(8192 + 511, 1)])),
            Errno::EBUSY
        );
        assert_eq!(
            errno(GuestBuf::<Source>::new(ram, [(4000, 100)])),
            Errno::EBUSY
        );
        // Next to them is free.
        assert_eq!(ram.read_at(4096 - 16, &mut b), Ok(16));
        assert_eq!(ram.write_at(4096 + 512, &b), Ok(16));
        let beside = GuestBuf::<Dest>::new(ram, [(4096 + 512, 512)]).unwrap();

        // A source's ranges: Rust may read, not write.
        let src = GuestBuf::<Source>::new(ram, [(0, 1024)]).unwrap();
        assert_eq!(ram.read_at(1000, &mut b), Ok(16));
        assert_eq!(errno(ram.write_at(1000, &b)), Errno::EBUSY);
        let src2 = GuestBuf::<Source>::new(ram, [(512, 1024)]).unwrap();
        assert_eq!(errno(GuestBuf::<Dest>::new(ram, [(1023, 2)])), Errno::EBUSY);

        drop((dst, beside, src, src2));
        assert_eq!(ram.write_at(4096, &b), Ok(16));
        assert_eq!(ram.write_at(1000, &b), Ok(16));
        let all = GuestBuf::<Dest>::new(ram, [(0, ram.len())]).unwrap();
        assert_eq!(all.bytes_init(), ram.len());
    });
}

/// Completions with their start positions, in the order they ran.
type Log<B> = Arc<Mutex<Vec<(u64, Completed<B>)>>>;

/// A kiocb whose callback records the completion on `log`.
fn recording<B: Send + 'static>(pos: u64, buf: B, log: &Log<B>) -> Kiocb<B> {
    let log = Arc::clone(log);
    Kiocb::with_callback(pos, buf, move |done| log.lock().unwrap().push((pos, done)))
}

#[test]
fn round_trip_through_the_ram_backend_with_deferred_reverse_completions() {
    const N: u64 = 8;
    const BS: usize = 512;
    with_heap_ram(64 * 1024, |ram| {
        // Request i writes disk blocks 2i, 2i+1 from two scattered guest
        // ranges, then reads them back into two others.
        let src = |i: u64| [(0x1000 + i * 0x1000, BS), (0x800 + i * 0x1000, BS)];
        let dst = |i: u64| [(0x8000 + i * 0x800 + 0x200, BS), (0x8000 + i * 0x800, BS)];
        for i in 0..N {
            for (part, (off, n)) in src(i).into_iter().enumerate() {
                ram.write_at(off, &block(2 * i + part as u64, n)).unwrap();
            }
        }
        let disk = Recorder::new(MemDevice::new(2 * N as usize * BS));
        disk.inner.defer_completions(Some(PendingOrder::Reverse));

        let writes = Arc::new(Mutex::new(Vec::new()));
        for i in 0..N {
            let buf = GuestBuf::<Source>::new(ram, src(i)).unwrap();
            let mut kiocb = recording(i * 2 * BS as u64, OwnedIter::<Source, _>::new(buf), &writes);
            assert_eq!(disk.submit(&mut kiocb), Ok(Submitted::Queued));
        }
        assert_eq!(disk.inner.pending(), N as usize, "all in flight");
        // While they are: the guest data may be read, not written.
        let (off, _) = src(3)[1];
        assert_eq!(read(ram, off, 4), block(7, 4));
        assert_eq!(errno(ram.write_at(off, b"late")), Errno::EBUSY);
        assert_eq!(disk.inner.complete_pending(usize::MAX), N as usize);
        let done = std::mem::take(&mut *writes.lock().unwrap());
        let order: Vec<u64> = done.iter().map(|(pos, _)| pos / (2 * BS as u64)).collect();
        assert_eq!(
            order,
            (0..N).rev().collect::<Vec<_>>(),
            "last in, first out"
        );
        for (pos, d) in &done {
            assert_eq!((d.result, d.pos), (Ok(2 * BS), pos + 2 * BS as u64));
            assert_eq!(d.buf.count(), 0);
        }
        drop(done); // the buffers, and their leases
        assert_eq!(ram.write_at(off, &block(7, 4)), Ok(4));
        let snap = disk.inner.snapshot();
        for b in 0..2 * N {
            assert_eq!(snap[b as usize * BS..][..BS], block(b, BS)[..], "block {b}");
        }

        let mut futs = Vec::new();
        for i in 0..N {
            let buf = GuestBuf::<Dest>::new(ram, dst(i)).unwrap();
            let (mut kiocb, fut) =
                Kiocb::new_async_with(i * 2 * BS as u64, OwnedIter::<Dest, _>::new(buf));
            assert!(disk.submit(&mut kiocb).unwrap().is_queued());
            futs.push(fut);
        }
        assert_eq!(disk.inner.pending(), N as usize);
        assert!(futs.iter().all(|f| !f.is_complete()));
        let mut four = [0u8; 4];
        assert_eq!(errno(ram.read_at(dst(0)[0].0, &mut four)), Errno::EBUSY);
        assert_eq!(disk.inner.stats().bytes_read, 0, "nothing landed yet");
        for (i, fut) in futs.into_iter().enumerate() {
            let done = disk.block_on(fut);
            assert_eq!(done.result, Ok(2 * BS), "read {i}");
            let back = done.buf.into_inner();
            assert_eq!(back.ranges().collect::<Vec<_>>(), dst(i as u64));
        }
        for i in 0..N {
            for (part, (off, n)) in dst(i).into_iter().enumerate() {
                assert_eq!(
                    read(ram, off, n),
                    block(2 * i + part as u64, n),
                    "read {i}.{part}"
                );
            }
        }
        // No bounce buffer: every byte the device moved was guest memory.
        assert!(disk.all_inside(ram.as_ptr() as usize, ram.len()));
        assert_eq!(disk.seen.lock().unwrap().len(), 2 * N as usize);
    });
}

#[test]
fn a_sync_kiocb_reads_and_writes_in_place() {
    with_heap_ram(16 * 1024, |ram| {
        let disk = MemDevice::new(4096);
        ram.write_at(0, &block(1, 1024)).unwrap();
        let src = GuestBuf::<Source>::new(ram, [(512, 512), (0, 512)]).unwrap();
        let mut kiocb = Kiocb::new_sync_with(1024, OwnedIter::<Source, _>::new(src));
        assert_eq!(disk.submit(&mut kiocb), Ok(Submitted::Done(1024)));
        assert_eq!(kiocb.pos, 2048);
        drop(kiocb);
        assert_eq!(disk.snapshot()[1024..1536], block(1, 1024)[512..]);
        assert_eq!(disk.snapshot()[1536..2048], block(1, 1024)[..512]);

        let dst = GuestBuf::<Dest>::new(ram, [(8192, 1024)]).unwrap();
        let mut kiocb = Kiocb::new_sync_with(1024, OwnedIter::<Dest, _>::new(dst));
        assert_eq!(disk.submit(&mut kiocb), Ok(Submitted::Done(1024)));
        drop(kiocb.take_buf());
        assert_eq!(read(ram, 8192, 512), block(1, 1024)[512..]);
    });
}

#[test]
fn a_destination_marks_the_pages_it_landed_in_on_its_dirty_log() {
    with_heap_ram(16 * PAGE_SIZE, |ram| {
        let log = Arc::new(DirtyBitmap::new(0, ram.len()));
        let disk = MemDevice::new(16 * 1024);
        disk.defer_completions(Some(PendingOrder::Fifo));
        let page = |p: u64| p * PAGE_SIZE as u64;

        // A read over page 2 and the end of page 5 / start of page 6.
        let buf = GuestBuf::<Dest>::new(ram, [(page(2), 4096), (page(6) - 512, 1024)])
            .unwrap()
            .with_dirty_log(log.clone());
        let (mut kiocb, fut) = Kiocb::new_async_with(0, OwnedIter::<Dest, _>::new(buf));
        assert!(disk.submit(&mut kiocb).unwrap().is_queued());
        assert!(
            log.take_dirty().is_empty(),
            "nothing marked before the data lands"
        );
        let done = disk.block_on(fut);
        assert_eq!(done.result, Ok(5120));
        assert_eq!(log.take_dirty(), [2, 5, 6], "marked when it landed");
        drop(done);
        assert_eq!(log.take_dirty(), [2, 5, 6], "and again when dropped");

        // A failed read may have written: marked when the buffer goes.
        disk.inject(FaultPlan::next(1, Fault::EIO));
        let buf = GuestBuf::<Dest>::new(ram, [(page(9), 512)])
            .unwrap()
            .with_dirty_log(log.clone());
        let (mut kiocb, fut) = Kiocb::new_async_with(0, OwnedIter::<Dest, _>::new(buf));
        assert!(disk.submit(&mut kiocb).unwrap().is_queued());
        let done = disk.block_on(fut);
        assert_eq!(done.result, Err(Error::Os(Errno::EIO)));
        drop(done);
        assert_eq!(log.take_dirty(), [9]);

        // A sync read marks too (when the buffer goes).
        disk.defer_completions(None);
        let buf = GuestBuf::<Dest>::new(ram, [(page(12), 512)])
            .unwrap()
            .with_dirty_log(log.clone());
        let mut kiocb = Kiocb::new_sync_with(0, OwnedIter::<Dest, _>::new(buf));
        assert_eq!(disk.submit(&mut kiocb), Ok(Submitted::Done(512)));
        drop(kiocb);
        assert_eq!(log.take_dirty(), [12]);

        // Never handed out for writing: nothing marked.
        let mut buf = GuestBuf::<Dest>::new(ram, [(page(13), 512)])
            .unwrap()
            .with_dirty_log(log.clone());
        assert_eq!(buf.bytes_total(), 512);
        drop(buf);
        // Writes (sources) never mark: the device only reads guest memory.
        let src = GuestBuf::<Source>::new(ram, [(page(14), 512)]).unwrap();
        let (mut kiocb, fut) = Kiocb::new_async_with(0, OwnedIter::<Source, _>::new(src));
        assert!(disk.submit(&mut kiocb).unwrap().is_queued());
        assert_eq!(disk.block_on(fut).result, Ok(512));
        assert!(log.take_dirty().is_empty());
    });
}

#[test]
fn accessors_from_threads_are_serialised() {
    with_heap_ram(PAGE_SIZE, |ram| {
        let rounds = if cfg!(miri) { 10 } else { 2000 };
        std::thread::scope(|s| {
            for byte in [0x11u8, 0x22] {
                s.spawn(move || {
                    for _ in 0..rounds {
                        ram.write_at(64, &[byte; 256]).unwrap();
                    }
                });
            }
            s.spawn(|| {
                for _ in 0..rounds {
                    let v = read(ram, 64, 256);
                    assert!(all_bytes(&v, v[0]), "a torn copy: {v:?}");
                }
            });
        });
    });
}

#[test]
fn zeroed_regions_are_page_aligned_and_free_themselves() {
    let ram = Arc::new(SharedRegion::zeroed(3 * PAGE_SIZE).unwrap());
    assert_eq!(ram.as_ptr() as usize % PAGE_SIZE, 0);
    assert!(all_bytes(&read(&ram, 0, 3 * PAGE_SIZE), 0));
    let disk = MemDevice::new(4096);
    disk.fill(0x5a);
    let buf = GuestBuf::<Dest>::new(&ram, [(PAGE_SIZE as u64, 4096)]).unwrap();
    let (mut kiocb, fut) = Kiocb::new_async_with(0, OwnedIter::<Dest, _>::new(buf));
    assert!(disk.submit(&mut kiocb).unwrap().is_queued());
    assert_eq!(disk.block_on(fut).result, Ok(4096));
    assert!(
        read(&ram, PAGE_SIZE as u64, 4096)
            .iter()
            .all(|&b| b == 0x5a)
    );
    let empty = SharedRegion::zeroed(0).unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.read_at(0, &mut []), Ok(0));
    assert_eq!(errno(empty.write_at(0, b"x")), Errno::EFAULT);
    assert_eq!(errno(SharedRegion::zeroed(usize::MAX)), Errno::ENOMEM);
}

#[test]
#[cfg_attr(miri, ignore = "mmap")]
fn anonymous_shared_mappings_work_like_heap_regions() {
    let ram = Arc::new(SharedRegion::anonymous(1 << 20).unwrap());
    assert_eq!(ram.len(), 1 << 20);
    assert_eq!(ram.as_ptr() as usize % PAGE_SIZE, 0);
    ram.write_at(0x4_0000, &block(3, 8192)).unwrap();
    let disk = MemDevice::new(8192);
    let src = GuestBuf::<Source>::new(&ram, [(0x4_0000, 8192)]).unwrap();
    let (mut kiocb, fut) = Kiocb::new_async_with(0, OwnedIter::<Source, _>::new(src));
    assert!(disk.submit(&mut kiocb).unwrap().is_queued());
    assert_eq!(disk.block_on(fut).result, Ok(8192));
    assert_eq!(disk.snapshot(), block(3, 8192));
    assert_eq!(errno(SharedRegion::anonymous(0)), Errno::EINVAL);
}

/// The kernel reads and writes guest memory itself: `O_DIRECT` I/O between
/// a shared mapping and a real file.
#[cfg(target_os = "linux")]
#[test]
#[cfg_attr(miri, ignore = "mmap and O_DIRECT")]
fn o_direct_file_io_goes_straight_between_a_shared_mapping_and_the_file() {
    let Some((file, path)) = common::direct_file("guest_o_direct") else {
        return;
    };
    let ram = Arc::new(SharedRegion::anonymous(1 << 20).unwrap());
    for i in 0..4u64 {
        ram.write_at(i * 0x2_0000, &block(i, 4096)).unwrap();
    }
    let chain: Vec<(u64, usize)> = (0..4u64).map(|i| (i * 0x2_0000, 4096)).collect();
    let src = GuestBuf::<Source>::new(&ram, chain).unwrap();
    let (mut kiocb, fut) = Kiocb::new_async_with(0, OwnedIter::<Source, _>::new(src));
    assert!(file.submit(&mut kiocb).unwrap().is_queued());
    assert_eq!(file.block_on(fut).result, Ok(4 * 4096));
    let back: Vec<(u64, usize)> = (0..4u64)
        .rev()
        .map(|i| (0x8_0000 + i * 0x1000, 4096))
        .collect();
    let dst = GuestBuf::<Dest>::new(&ram, back).unwrap();
    let (mut kiocb, fut) = Kiocb::new_async_with(0, OwnedIter::<Dest, _>::new(dst));
    assert!(file.submit(&mut kiocb).unwrap().is_queued());
    assert_eq!(file.block_on(fut).result, Ok(4 * 4096));
    for i in 0..4u64 {
        // Descriptor i (block i) was at 0x8_0000 + (3 - i) * 0x1000.
        assert_eq!(
            read(&ram, 0x8_0000 + (3 - i) * 0x1000, 4096),
            block(i, 4096)
        );
    }
    drop(file);
    let _ = std::fs::remove_file(path);
}

#[cfg(feature = "vm-memory")]
mod vm {
    use super::*;
    use vm_memory::bitmap::{AtomicBitmap, Bitmap};
    use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

    type Mem = GuestMemoryMmap<AtomicBitmap>;

    /// Two adjacent regions, [0, 64 KiB) and [64 KiB, 128 KiB), then a hole,
    /// then [1 MiB, 1 MiB + 64 KiB).
    fn guest() -> Arc<Mem> {
        Arc::new(
            Mem::from_ranges(&[
                (GuestAddress(0), 0x1_0000),
                (GuestAddress(0x1_0000), 0x1_0000),
                (GuestAddress(0x10_0000), 0x1_0000),
            ])
            .unwrap(),
        )
    }

    fn dirty(mem: &Mem, addr: u64) -> bool {
        let (region, off) = mem.to_region_addr(GuestAddress(addr)).unwrap();
        region.bitmap().dirty_at(off.0 as usize)
    }

    #[test]
    #[cfg_attr(miri, ignore = "vm-memory mmaps")]
    fn bad_ranges_are_refused() {
        let mem = guest();
        let hole = [(GuestAddress(0x2_0000), 512)];
        assert_eq!(
            errno(GuestBuf::<Dest>::from_guest_memory(&mem, hole)),
            Errno::EFAULT
        );
        let past = [(GuestAddress(0x10_0000 + 0x1_0000 - 256), 512)];
        assert_eq!(
            errno(GuestBuf::<Source>::from_guest_memory(&mem, past)),
            Errno::EFAULT
        );
        let overlap = [(GuestAddress(0x1000), 512), (GuestAddress(0x1100), 512)];
        let e = GuestBuf::<Dest>::from_guest_memory(&mem, overlap).unwrap_err();
        assert_eq!(e, Error::OverlappingRanges);
        assert!(GuestBuf::<Source>::from_guest_memory(&mem, overlap).is_ok());
        // A range over the two adjacent regions: a segment in each.
        let across = [(GuestAddress(0x1_0000 - 512), 1024)];
        let buf = GuestBuf::<Dest>::from_guest_memory(&mem, across).unwrap();
        assert_eq!(
            buf.ranges().collect::<Vec<_>>(),
            [(0x1_0000 - 512, 512), (0x1_0000, 512)]
        );
    }

    #[test]
    #[cfg_attr(miri, ignore = "vm-memory mmaps")]
    fn round_trip_through_guest_memory_mmap_marks_its_bitmap() {
        let mem = guest();
        let disk = MemDevice::new(8 * 1024);
        disk.defer_completions(Some(PendingOrder::Reverse));
        for i in 0..4u64 {
            mem.write_slice(&block(i, 1024), GuestAddress(0x10_0000 + i * 0x1000))
                .unwrap();
        }
        let mut futs = Vec::new();
        for i in 0..4u64 {
            let chain = [(GuestAddress(0x10_0000 + i * 0x1000), 1024)];
            let buf = GuestBuf::<Source>::from_guest_memory(&mem, chain).unwrap();
            let (mut kiocb, fut) =
                Kiocb::new_async_with(i * 1024, OwnedIter::<Source, _>::new(buf));
            assert!(disk.submit(&mut kiocb).unwrap().is_queued());
            futs.push(fut);
        }
        assert_eq!(disk.pending(), 4);
        for fut in futs {
            assert_eq!(disk.block_on(fut).result, Ok(1024));
        }
        for i in 0..4u64 {
            assert_eq!(
                disk.snapshot()[i as usize * 1024..][..1024],
                block(i, 1024)[..]
            );
        }
        assert!(!dirty(&mem, 0x1_0000 - 512), "the reads have not run yet");

        // Read all four blocks back into a chain spanning the two adjacent
        // regions, with a dirty log on guest physical addresses too.
        let log = Arc::new(DirtyBitmap::new(0, 0x2_0000));
        let chain = [(GuestAddress(0x1_0000 - 2048), 4096)];
        let buf = GuestBuf::<Dest>::from_guest_memory(&mem, chain)
            .unwrap()
            .with_dirty_log(log.clone());
        assert_eq!(buf.nr_segs(), 2);
        let (mut kiocb, fut) = Kiocb::new_async_with(0, OwnedIter::<Dest, _>::new(buf));
        assert!(disk.submit(&mut kiocb).unwrap().is_queued());
        assert!(
            !dirty(&mem, 0x1_0000 - 2048),
            "nothing marked before it lands"
        );
        let done = disk.block_on(fut);
        assert_eq!(done.result, Ok(4096));
        drop(done);
        let mut back = vec![0u8; 4096];
        mem.read_slice(&mut back, GuestAddress(0x1_0000 - 2048))
            .unwrap();
        let want: Vec<u8> = (0..4).flat_map(|i| block(i, 1024)).collect();
        assert_eq!(back, want);
        // vm-memory's own bitmap saw the raw writes, in both regions...
        assert!(dirty(&mem, 0x1_0000 - 2048) && dirty(&mem, 0x1_0000 + 2047));
        assert!(!dirty(&mem, 0x1_0000 - 4097) && !dirty(&mem, 0x1_0000 + 4096));
        // ...and the log, by guest page frame.
        assert_eq!(log.take_dirty(), [15, 16]);
    }
}
