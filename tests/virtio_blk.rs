//! A downstream case: a virtio-blk-style request handler in a VMM, doing
//! asynchronous direct I/O straight into guest memory. Guest RAM is a
//! shared anonymous mapping that Rust code only touches through raw
//! pointer copies (the guest may touch it too: no `&[u8]` over it is ever
//! made); a request's data descriptors become an owned buffer type of this
//! test (`GuestBuf`, an `IoBufMut` / `IoBuf` over guest addresses), and the
//! kiocb's completion writes the status byte and returns the descriptor to
//! the used ring. No bounce buffer: the device sees only guest addresses.

#![cfg(all(target_os = "linux", feature = "uring"))]

mod common;

use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use common::{Recorder, block};
use iov_iter::buf::{IoBuf, IoBufMut, OwnedIter};
use iov_iter::dio::{DioBuf, DirectIo};
use iov_iter::kiocb::Kiocb;
use iov_iter::{Dest, Source};
use rustix::mm::{MapFlags, ProtFlags, mmap_anonymous, munmap};

/// Guest RAM: `len` bytes of a shared anonymous mapping.
struct GuestRam {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory, reached only through raw-pointer
// copies; sharing the handle shares no Rust reference to it.
unsafe impl Send for GuestRam {}
// SAFETY: as above.
unsafe impl Sync for GuestRam {}

impl GuestRam {
    fn new(len: usize) -> GuestRam {
        // SAFETY: a fresh anonymous mapping, no address hint.
        let p = unsafe {
            mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
            )
        }
        .expect("mmap guest RAM");
        GuestRam {
            base: NonNull::new(p.cast()).unwrap(),
            len,
        }
    }

    /// The host address of guest physical address `gpa`, `len` bytes in.
    fn host(&self, gpa: u64, len: usize) -> *mut u8 {
        assert!(gpa as usize + len <= self.len, "outside guest RAM");
        self.base.as_ptr().wrapping_add(gpa as usize)
    }

    /// What the guest does: copy into its memory.
    fn write(&self, gpa: u64, bytes: &[u8]) {
        // SAFETY: inside the mapping (checked); raw copy, no reference.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.host(gpa, bytes.len()), bytes.len())
        };
    }

    fn read(&self, gpa: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        // SAFETY: inside the mapping (checked); raw copy, no reference.
        unsafe { std::ptr::copy_nonoverlapping(self.host(gpa, len), v.as_mut_ptr(), len) };
        v
    }
}

impl Drop for GuestRam {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`; every request holding guest
        // memory holds an `Arc` of this, so none is in flight now.
        unsafe { munmap(self.base.as_ptr().cast(), self.len) }.unwrap();
    }
}

/// A request's data descriptors, `(guest address, length)`: an owned
/// buffer over guest memory. Between submission and completion the guest
/// does not touch them (virtio: the driver owns a buffer again only once
/// the device has used it), so nothing else reaches that memory.
struct GuestBuf {
    ram: Arc<GuestRam>,
    descs: Vec<(u64, usize)>,
}

// SAFETY: the descriptors are inside the mapping (checked), which lives as
// long as the `Arc`; the addresses do not move; while the request holds the
// buffer the guest leaves that memory alone (the virtio rule above).
unsafe impl IoBuf for GuestBuf {
    fn for_each_seg(&self, f: &mut dyn FnMut(*const u8, usize)) {
        for &(gpa, len) in &self.descs {
            f(self.ram.host(gpa, len), len);
        }
    }
}

// SAFETY: as above; descriptors of one request do not overlap (checked by
// the handler); guest memory is always initialised (a mapping reads zeros).
unsafe impl IoBufMut for GuestBuf {
    fn for_each_seg_mut(&mut self, f: &mut dyn FnMut(*mut u8, usize)) {
        for &(gpa, len) in &self.descs {
            f(self.ram.host(gpa, len), len);
        }
    }
    unsafe fn set_init(&mut self, _: usize) {}
}

const VIRTIO_BLK_T_IN: u32 = 0;
const VIRTIO_BLK_T_OUT: u32 = 1;
const VIRTIO_BLK_S_OK: u8 = 0;
const VIRTIO_BLK_S_IOERR: u8 = 1;

/// A descriptor chain as the device reads it: the header's guest address,
/// the data descriptors, the status byte's address.
struct Chain {
    head: u16,
    header: u64,
    data: Vec<(u64, usize)>,
    status: u64,
}

/// The device side of a virtio-blk queue: parses each chain's header from
/// guest memory and submits one kiocb over the data descriptors.
struct BlkDevice<T> {
    ram: Arc<GuestRam>,
    disk: Arc<T>,
    used: Arc<Mutex<Vec<(u16, u8)>>>,
}

impl<T: DirectIo + 'static> BlkDevice<T> {
    fn handle(&self, chain: Chain) {
        let hdr = self.ram.read(chain.header, 16);
        let kind = u32::from_le_bytes(hdr[0..4].try_into().unwrap());
        let sector = u64::from_le_bytes(hdr[8..16].try_into().unwrap());
        let buf = GuestBuf {
            ram: Arc::clone(&self.ram),
            descs: chain.data,
        };
        let (ram, used, head, status) = (
            Arc::clone(&self.ram),
            Arc::clone(&self.used),
            chain.head,
            chain.status,
        );
        let len: usize = buf.descs.iter().map(|d| d.1).sum();
        let complete = move |ok: bool| {
            let s = if ok {
                VIRTIO_BLK_S_OK
            } else {
                VIRTIO_BLK_S_IOERR
            };
            ram.write(status, &[s]);
            used.lock().unwrap().push((head, s));
        };
        let pos = sector * 512;
        match kind {
            VIRTIO_BLK_T_IN => self.submit(Kiocb::with_callback(
                pos,
                OwnedIter::<Dest, _>::new(buf),
                move |d| complete(d.result == Ok(len)),
            )),
            VIRTIO_BLK_T_OUT => self.submit(Kiocb::with_callback(
                pos,
                OwnedIter::<Source, _>::new(buf),
                move |d| complete(d.result == Ok(len)),
            )),
            _ => panic!("unsupported request type {kind}"),
        }
    }

    /// Submits; a request refused before queueing completes through its
    /// callback all the same (an error status).
    fn submit<I: DioBuf>(&self, mut kiocb: Kiocb<I>) {
        if let Err(e) = self.disk.submit(&mut kiocb) {
            kiocb.complete(Err(e));
        }
    }
}

fn header(ram: &GuestRam, gpa: u64, kind: u32, sector: u64) {
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&kind.to_le_bytes());
    h[8..16].copy_from_slice(&sector.to_le_bytes());
    ram.write(gpa, &h);
}

#[test]
#[cfg_attr(miri, ignore = "mmap and io_uring")]
fn requests_go_straight_between_guest_memory_and_the_disk() {
    let Some((q, path)) = common::uring_queue("virtio_blk", 64) else {
        return;
    };
    const MIB: usize = 1 << 20;
    let ram = Arc::new(GuestRam::new(4 * MIB));
    let disk = Arc::new(Recorder::new(q));
    let dev = BlkDevice {
        ram: Arc::clone(&ram),
        disk: Arc::clone(&disk),
        used: Arc::new(Mutex::new(Vec::new())),
    };
    // 16 writes, each of two 4 KiB data descriptors at scattered guest
    // addresses, to sectors 0, 16, 32, ...; then 16 reads of the same
    // sectors into other guest memory. Headers at 0x1000 + 32 * i, status
    // bytes right after.
    let data_gpa = |i: u64, part: u64| MIB as u64 + (i * 2 + part) * 12288;
    let read_gpa = |i: u64, part: u64| 3 * MIB as u64 + (i * 2 + part) * 4096;
    {
        let _plug = disk.inner.plug();
        for i in 0..16u64 {
            for part in 0..2 {
                ram.write(data_gpa(i, part), &block(i * 2 + part, 4096));
            }
            header(&ram, 0x1000 + 32 * i, VIRTIO_BLK_T_OUT, i * 16);
            dev.handle(Chain {
                head: i as u16,
                header: 0x1000 + 32 * i,
                data: vec![(data_gpa(i, 0), 4096), (data_gpa(i, 1), 4096)],
                status: 0x1000 + 32 * i + 16,
            });
        }
        assert_eq!(
            disk.inner.in_flight(),
            16,
            "all sixteen writes in flight at once"
        );
    }
    disk.inner.drain().unwrap();
    assert_eq!(dev.used.lock().unwrap().len(), 16);
    {
        let _plug = disk.inner.plug();
        for i in 0..16u64 {
            header(&ram, 0x2000 + 32 * i, VIRTIO_BLK_T_IN, i * 16);
            dev.handle(Chain {
                head: 16 + i as u16,
                header: 0x2000 + 32 * i,
                data: vec![(read_gpa(i, 0), 4096), (read_gpa(i, 1), 4096)],
                status: 0x2000 + 32 * i + 16,
            });
        }
        assert_eq!(
            disk.inner.in_flight(),
            16,
            "all sixteen reads in flight at once"
        );
    }
    disk.inner.drain().unwrap();
    let used = dev.used.lock().unwrap().clone();
    assert_eq!(used.len(), 32);
    assert!(used.iter().all(|&(_, s)| s == VIRTIO_BLK_S_OK), "{used:?}");
    for i in 0..16u64 {
        for part in 0..2 {
            assert_eq!(
                ram.read(read_gpa(i, part), 4096),
                block(i * 2 + part, 4096),
                "req {i}"
            );
        }
        assert_eq!(ram.read(0x1000 + 32 * i + 16, 1), [VIRTIO_BLK_S_OK]);
    }
    // No bounce buffer: every byte the disk moved was guest memory.
    assert!(disk.all_inside(ram.base.as_ptr() as usize, ram.len));
    assert_eq!(disk.seen.lock().unwrap().len(), 32);
    // A request past the end of the disk completes with an error status.
    header(&ram, 0x3000, VIRTIO_BLK_T_IN, 1 << 40);
    dev.handle(Chain {
        head: 99,
        header: 0x3000,
        data: vec![(read_gpa(0, 0), 4096)],
        status: 0x3010,
    });
    disk.inner.drain().unwrap();
    let last = *dev.used.lock().unwrap().last().unwrap();
    assert_eq!(
        last,
        (99, VIRTIO_BLK_S_IOERR),
        "a short read is an I/O error"
    );
    assert_eq!(ram.read(0x3010, 1), [VIRTIO_BLK_S_IOERR]);
    drop(dev);
    drop(disk);
    let _ = std::fs::remove_file(path);
}
