//! Helpers shared by the integration tests that use them (`mod common;`):
//! byte patterns and checks (cheap under Miri), real `O_DIRECT` files and
//! io_uring queues that skip loudly where the machine refuses them, and a
//! target wrapper that records the memory every request hands the device.

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

/// `len` pattern bytes of block `b`: `byte(b, i)` for every `i`.
pub fn block(b: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    // `byte` repeats every 256 bytes.
    fill_periodic(&mut v, 256, |i| byte(b, i));
    v
}

/// Fills `out` with `f(i % period)` at every `i`: the first period byte by
/// byte, the rest by doubling copies. Under Miri a byte loop costs about a
/// fifth of a millisecond a byte (seconds per 64 KiB); a copy is one step.
pub fn fill_periodic(out: &mut [u8], period: usize, f: impl Fn(usize) -> u8) {
    let first = out.len().min(period);
    for (i, b) in out[..first].iter_mut().enumerate() {
        *b = f(i);
    }
    // `have` stays a multiple of the period, so each copy continues it.
    let mut have = first;
    while have < out.len() {
        let n = have.min(out.len() - have);
        out.copy_within(..n, have);
        have += n;
    }
}

/// `len` bytes of a pattern seeded by `seed` whose period is 251 bytes: a
/// prime, so no sector, segment, page or folio boundary lines up with it
/// and a byte misplaced by any such distance shows.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fill_pattern(&mut v, seed);
    v
}

/// Fills `out` with [`pattern`]`(out.len(), seed)`.
pub fn fill_pattern(out: &mut [u8], seed: u8) {
    // 31 is odd: the 251 bytes of a period are distinct.
    fill_periodic(out, 251, |i| (i as u8).wrapping_mul(31) ^ seed);
}

/// Whether every byte of `bytes` is `v`, compared a page at a time (a
/// memcmp each, not a byte loop: see [`fill_periodic`]).
pub fn all_bytes(bytes: &[u8], v: u8) -> bool {
    let page = [v; 4096];
    bytes.chunks(4096).all(|c| c == &page[..c.len()])
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

/// A `qemu-nbd` server of the test's own, over a file it filled with the
/// [`block`] pattern (every 4 KiB block `b` holds `block(b, 4096)`):
/// `qemu-nbd --cache=none --format=raw --persistent --shared=8` on a unix
/// socket in a fresh directory (or a loopback TCP port), killed by its pid
/// (SIGKILL) on drop. [`QemuNbd::start`] returns `None` after a loud skip
/// where libnbd cannot be loaded or the server cannot start.
#[cfg(all(target_os = "linux", feature = "nbd"))]
pub struct QemuNbd {
    child: Option<std::process::Child>,
    /// The directory holding the image and the socket.
    pub dir: PathBuf,
    /// The image the export serves.
    pub file: PathBuf,
    /// The URI to connect to.
    pub uri: String,
    name: String,
    extra: Vec<String>,
    tcp: Option<u16>,
}

#[cfg(all(target_os = "linux", feature = "nbd"))]
impl QemuNbd {
    /// Pattern block size of the image.
    pub const BLOCK: usize = 4096;

    /// A server on a unix socket over a fresh image of `len` bytes (a
    /// multiple of [`QemuNbd::BLOCK`]), with `extra` arguments (`-r`).
    pub fn start(name: &str, len: usize, extra: &[&str]) -> Option<QemuNbd> {
        Self::start_on(name, len, extra, false)
    }

    /// The same on a loopback TCP port (where SIGKILL with unread data in
    /// the server's socket resets the connection).
    pub fn start_tcp(name: &str, len: usize, extra: &[&str]) -> Option<QemuNbd> {
        Self::start_on(name, len, extra, true)
    }

    fn start_on(name: &str, len: usize, extra: &[&str], tcp: bool) -> Option<QemuNbd> {
        if let Err(why) = iov_iter::backend::nbd::available() {
            skip(name, &format!("libnbd cannot be loaded: {why}"));
            return None;
        }
        let ok = std::process::Command::new("qemu-nbd")
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            skip(name, "qemu-nbd is not installed (Debian qemu-utils)");
            return None;
        }
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("nbd_{name}_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let file = dir.join("disk.img");
        let mut img = Vec::with_capacity(len);
        for b in 0..(len / Self::BLOCK) as u64 {
            img.extend_from_slice(&block(b, Self::BLOCK));
        }
        std::fs::write(&file, &img).expect("write image");
        let mut s = QemuNbd {
            child: None,
            uri: String::new(),
            dir,
            file,
            name: name.to_string(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            tcp: None,
        };
        if tcp {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            s.tcp = Some(l.local_addr().unwrap().port());
        }
        s.spawn().then_some(s)
    }

    fn sock(&self) -> PathBuf {
        self.dir.join("sock")
    }

    /// The server's stderr.
    pub fn log(&self) -> PathBuf {
        self.dir.join("qemu-nbd.log")
    }

    /// Starts (again) the server; `false` after a loud skip.
    fn spawn(&mut self) -> bool {
        use std::process::{Command, Stdio};
        let _ = std::fs::remove_file(self.sock());
        let mut cmd = Command::new("qemu-nbd");
        cmd.args(["--cache=none", "--format=raw", "--persistent", "--shared=8"]);
        match self.tcp {
            Some(port) => {
                cmd.args(["--bind=127.0.0.1", &format!("--port={port}")]);
                self.uri = format!("nbd://127.0.0.1:{port}/");
            }
            None => {
                cmd.arg(format!("--socket={}", self.sock().display()));
                self.uri = format!("nbd+unix:///?socket={}", self.sock().display());
            }
        }
        cmd.args(&self.extra).arg(&self.file);
        // The server's messages go to a log beside the image (a pipe
        // nobody reads could fill and stall the server).
        let log = std::fs::File::create(self.log()).expect("create qemu-nbd log");
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                skip(&self.name, &format!("qemu-nbd does not start: {e}"));
                return false;
            }
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let up = match self.tcp {
                Some(port) => std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
                None => unix_listening(&self.sock()),
            };
            if up {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let err = std::fs::read_to_string(self.log()).unwrap_or_default();
                skip(&self.name, &format!("qemu-nbd exited ({status}): {err}"));
                return false;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                skip(&self.name, "qemu-nbd did not listen within 10 s");
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        self.child = Some(child);
        true
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// SIGKILL to the server's pid, and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same image and address.
    pub fn restart(&mut self) -> bool {
        self.kill();
        self.spawn()
    }
}

/// Whether a server accepts connections on the unix socket `sock`. The
/// socket file appears at bind(2), before listen(2): a client connecting in
/// between is refused, so the file existing is not enough.
#[cfg(all(target_os = "linux", feature = "nbd"))]
pub fn unix_listening(sock: &std::path::Path) -> bool {
    std::os::unix::net::UnixStream::connect(sock).is_ok()
}

#[cfg(all(target_os = "linux", feature = "nbd"))]
impl Drop for QemuNbd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
