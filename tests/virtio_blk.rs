//! A downstream case: a virtio-blk-style request handler in a VMM, doing
//! asynchronous direct I/O straight into guest memory. Guest RAM is a
//! `SharedRegion` (a shared anonymous mapping that Rust code only touches
//! through raw-pointer copies: the guest may touch it too, so no `&[u8]`
//! over it is ever made); a request's data descriptors become a `GuestBuf`
//! (an owned buffer over guest addresses, validated and leased for the
//! I/O's life), and the kiocb's completion writes the status byte and
//! returns the descriptor to the used ring. No bounce buffer: the device
//! sees only guest addresses.

#![cfg(all(target_os = "linux", feature = "uring"))]

mod common;

use std::sync::{Arc, Mutex};

use common::{Recorder, block};
use iov_iter::buf::{GuestBuf, OwnedIter, SharedRegion};
use iov_iter::dio::{DioBuf, DirectIo};
use iov_iter::kiocb::Kiocb;
use iov_iter::{Dest, Source};

/// What the guest driver does: copies into and out of its memory.
trait Guest {
    fn write(&self, gpa: u64, bytes: &[u8]);
    fn read(&self, gpa: u64, len: usize) -> Vec<u8>;
}

impl Guest for SharedRegion {
    fn write(&self, gpa: u64, bytes: &[u8]) {
        assert_eq!(self.write_at(gpa, bytes), Ok(bytes.len()));
    }
    fn read(&self, gpa: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        assert_eq!(self.read_at(gpa, &mut v), Ok(len));
        v
    }
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
    ram: Arc<SharedRegion>,
    disk: Arc<T>,
    used: Arc<Mutex<Vec<(u16, u8)>>>,
}

impl<T: DirectIo + 'static> BlkDevice<T> {
    fn handle(&self, chain: Chain) {
        let hdr = self.ram.read(chain.header, 16);
        let kind = u32::from_le_bytes(hdr[0..4].try_into().unwrap());
        let sector = u64::from_le_bytes(hdr[8..16].try_into().unwrap());
        let (ram, used, head, status) = (
            Arc::clone(&self.ram),
            Arc::clone(&self.used),
            chain.head,
            chain.status,
        );
        let len: usize = chain.data.iter().map(|d| d.1).sum();
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
        // A descriptor outside guest RAM, or overlapping destination
        // descriptors, are refused here (EFAULT / EINVAL): an error status.
        match kind {
            VIRTIO_BLK_T_IN => match GuestBuf::<Dest>::new(&self.ram, chain.data) {
                Ok(buf) => self.submit(Kiocb::with_callback(
                    pos,
                    OwnedIter::<Dest, _>::new(buf),
                    move |d| complete(d.result == Ok(len)),
                )),
                Err(_) => complete(false),
            },
            VIRTIO_BLK_T_OUT => match GuestBuf::<Source>::new(&self.ram, chain.data) {
                Ok(buf) => self.submit(Kiocb::with_callback(
                    pos,
                    OwnedIter::<Source, _>::new(buf),
                    move |d| complete(d.result == Ok(len)),
                )),
                Err(_) => complete(false),
            },
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

fn header(ram: &SharedRegion, gpa: u64, kind: u32, sector: u64) {
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
    let ram = Arc::new(SharedRegion::anonymous(4 * MIB).unwrap());
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
    assert!(disk.all_inside(ram.as_ptr() as usize, ram.len()));
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
    // A descriptor outside guest RAM: refused, an error status, no I/O.
    let before = disk.seen.lock().unwrap().len();
    header(&ram, 0x3000, VIRTIO_BLK_T_IN, 0);
    dev.handle(Chain {
        head: 100,
        header: 0x3000,
        data: vec![(4 * MIB as u64 - 512, 4096)],
        status: 0x3010,
    });
    assert_eq!(
        *dev.used.lock().unwrap().last().unwrap(),
        (100, VIRTIO_BLK_S_IOERR)
    );
    assert_eq!(disk.seen.lock().unwrap().len(), before);
    drop(dev);
    drop(disk);
    let _ = std::fs::remove_file(path);
}
