//! Helpers shared by the integration tests that use them (`mod common;`):
//! byte patterns, real `O_DIRECT` files and io_uring queues that skip
//! loudly where the machine refuses them, and a target wrapper that
//! records the memory every request hands the device.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Mutex;

use iov_iter::dio::{AsyncIo, AsyncMode, DioAlign, DirectIo};
use iov_iter::kiocb::{FileCaps, RwType, RwfFlags};
use iov_iter::{Result, UserIovec};

/// The byte at offset `i` of block `block` in every pattern.
pub fn byte(block: u64, i: usize) -> u8 {
    (block as u8).wrapping_mul(31) ^ (i as u8).wrapping_mul(7) ^ 0x5a
}

/// `len` pattern bytes of block `b`.
pub fn block(b: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| byte(b, i)).collect()
}

/// Prints a loud skip line (the test then returns without asserting).
pub fn skip(name: &str, why: &str) {
    eprintln!("\n***** SKIPPED {name}: {why} *****\n");
}

/// A fresh `O_DIRECT` file under `CARGO_TARGET_TMPDIR`, or `None` after a
/// loud skip when the filesystem refuses `O_DIRECT`.
#[cfg(target_os = "linux")]
pub fn direct_file(name: &str) -> Option<(iov_iter::backend::file::DirectFile, PathBuf)> {
    use iov_iter::Errno;
    use iov_iter::backend::file::DirectFile;
    let p =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}_{}", std::process::id()));
    match DirectFile::options().create(true).truncate(true).open(&p) {
        Ok(f) => Some((f, p)),
        Err(e) if matches!(e.errno(), Errno::EINVAL | Errno::EOPNOTSUPP) => {
            skip(name, &format!("O_DIRECT refused on {}: {e}", p.display()));
            None
        }
        Err(e) => panic!("open {}: {e}", p.display()),
    }
}

/// An io_uring queue of `depth` on a fresh `O_DIRECT` file, or `None`
/// after a loud skip.
#[cfg(all(target_os = "linux", feature = "uring"))]
pub fn uring_queue(
    name: &str,
    depth: u32,
) -> Option<(iov_iter::backend::uring::UringQueue, PathBuf)> {
    use iov_iter::Errno;
    use iov_iter::backend::uring::UringQueue;
    let (f, p) = direct_file(name)?;
    match UringQueue::builder().depth(depth).build(f) {
        Ok(q) => Some((q, p)),
        Err(e) if matches!(e.errno(), Errno::ENOSYS | Errno::EPERM | Errno::ENOMEM) => {
            skip(name, &format!("io_uring setup failed: {e}"));
            None
        }
        Err(e) => panic!("io_uring setup: {e}"),
    }
}

/// One request as a [`Recorder`] saw it: its position and the memory
/// ranges `(address, length)` of its iovecs.
pub type Seen = (u64, Vec<(usize, usize)>);

/// Wraps a target and records, for every request that reaches it, its
/// position and the memory ranges of its iovecs (to show that I/O lands in
/// the caller's memory, with no bounce buffer in between).
pub struct Recorder<T> {
    pub inner: T,
    pub seen: Mutex<Vec<Seen>>,
}

impl<T> Recorder<T> {
    pub fn new(inner: T) -> Recorder<T> {
        Recorder {
            inner,
            seen: Mutex::new(Vec::new()),
        }
    }

    fn note(&self, pos: u64, iov: &[UserIovec]) {
        let ranges = iov.iter().map(|v| (v.base as usize, v.len)).collect();
        self.seen.lock().unwrap().push((pos, ranges));
    }

    /// Every recorded range lies inside `[start, start + len)`.
    pub fn all_inside(&self, start: usize, len: usize) -> bool {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(_, r)| r.iter())
            .all(|&(a, n)| a >= start && a + n <= start + len)
    }
}

impl<T: DirectIo> DirectIo for Recorder<T> {
    fn dio_align(&self) -> DioAlign {
        self.inner.dio_align()
    }
    fn caps(&self) -> FileCaps {
        self.inner.caps()
    }
    fn max_segs(&self) -> usize {
        self.inner.max_segs()
    }
    fn capacity(&self) -> Option<u64> {
        self.inner.capacity()
    }
    fn async_mode(&self) -> AsyncMode {
        self.inner.async_mode()
    }
    unsafe fn transfer(
        &self,
        rw: RwType,
        pos: u64,
        iov: &[UserIovec],
        flags: RwfFlags,
    ) -> Result<usize> {
        self.note(pos, iov);
        // SAFETY: forwarded with the caller's promises.
        unsafe { self.inner.transfer(rw, pos, iov, flags) }
    }
    fn start(&self, io: AsyncIo) {
        self.note(io.pos(), io.iovecs());
        self.inner.start(io)
    }
    fn drive(&self, min_complete: usize) -> Result<usize> {
        self.inner.drive(min_complete)
    }
}
