//! Helpers shared by the package's tests: scratch directories under the
//! cargo target dir (never /tmp, which may be tmpfs) and util-linux lookup.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A per-test scratch directory under `$CARGO_TARGET_DIR` (or
/// `<manifest>/target`), removed on drop.
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    /// Creates `<target>/swap-example-tests/<name>-<pid>-<n>`, fresh.
    pub fn new(name: &str) -> TestDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target")));
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = target
            .join("swap-example-tests")
            .join(format!("{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("creating test dir {}: {e}", path.display()));
        TestDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Finds a util-linux tool on `$PATH`, then in /usr/sbin and /sbin.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Like [`find_tool`], but prints a loud SKIP line when the tool is missing.
pub fn require_tool(name: &str) -> Option<PathBuf> {
    let found = find_tool(name);
    if found.is_none() {
        eprintln!(
            "\n**************** SKIP: {name} not found (install util-linux) ****************\n"
        );
    }
    found
}

/// Whether this process has `CAP_SYS_ADMIN` in its effective set (what
/// `swapon(2)` needs), from `CapEff` in `/proc/self/status`.
pub fn has_cap_sys_admin() -> bool {
    const CAP_SYS_ADMIN: u32 = 21;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim();
            u64::from_str_radix(hex, 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_ADMIN) != 0)
}

/// `f_type` of the filesystem holding `path` (`statfs(2)`).
pub fn fs_magic(path: &Path) -> std::io::Result<u64> {
    #[allow(clippy::unnecessary_cast)] // `f_type`'s type varies by architecture
    Ok(rustix::fs::statfs(path)?.f_type as u64)
}

/// `EXT4_SUPER_MAGIC` (also ext2 and ext3).
pub const EXT4_SUPER_MAGIC: u64 = 0xef53;
/// `XFS_SUPER_MAGIC`.
pub const XFS_SUPER_MAGIC: u64 = 0x5846_5342;

/// What the kernel makes of `path` as a swap file: `swapon(path, 0)`
/// (the system call, not swapon(8) and its own checks), the area's usable
/// pages from `/proc/swaps` (Size in KiB / 4: the kernel's `si->pages`),
/// and `swapoff` at once. `Err` is swapon's error.
///
/// # Panics
///
/// When the area is not listed in `/proc/swaps` after a successful
/// swapon, or is still listed after swapoff.
pub fn kernel_swapon_pages(path: &Path) -> std::io::Result<u64> {
    let area = crate::kernel::SwapOn::new(path)?;
    let kib = crate::kernel::proc_swaps_size_kib(path);
    area.swapoff()?;
    assert!(
        crate::kernel::proc_swaps_size_kib(path).is_none(),
        "{} still active after swapoff",
        path.display()
    );
    let kib = kib.unwrap_or_else(|| panic!("{} not in /proc/swaps after swapon", path.display()));
    Ok(kib / 4)
}

/// A swap device of `slots` slots on a RAM device; with `deferred`, async
/// kiocbs stay in flight until the device is driven (`IoMode::Uring` over
/// completions the RAM device defers), else sync kiocbs.
pub fn ram_swap_device(
    slots: u64,
    deferred: bool,
) -> (
    std::sync::Arc<iov_iter::backend::mem::MemDevice>,
    crate::swapio::SwapDevice,
) {
    use iov_iter::backend::mem::{MemDevice, PendingOrder};
    use std::sync::Arc;
    let mem = Arc::new(MemDevice::new(slots as usize * iov_iter::PAGE_SIZE));
    let mode = if deferred {
        mem.defer_completions(Some(PendingOrder::Fifo));
        crate::swapio::IoMode::Uring
    } else {
        crate::swapio::IoMode::Sync
    };
    let dev = crate::swapio::SwapDevice::new(mem.clone(), mode, slots).expect("a swap map");
    (mem, dev)
}

/// A `qemu-nbd` serving `image` (raw, `--cache=none`, up to 4 clients) on
/// a unix socket next to it, killed by its pid on drop; `None` after a loud
/// SKIP where qemu-nbd or libnbd is missing. (The crate's own NBD tests
/// have a fuller one in `tests/common`.)
#[cfg(feature = "nbd")]
pub struct NbdServer {
    child: std::process::Child,
    /// `nbd+unix:///?socket=...`.
    pub uri: String,
}

#[cfg(feature = "nbd")]
impl NbdServer {
    /// Starts the server and waits for its socket.
    pub fn start(image: &Path) -> Option<NbdServer> {
        if let Err(why) = iov_iter::backend::nbd::available() {
            eprintln!("\n***** SKIPPED: libnbd cannot be loaded: {why} *****\n");
            return None;
        }
        let sock = image.with_extension("sock");
        let _ = std::fs::remove_file(&sock);
        let child = match std::process::Command::new("qemu-nbd")
            .args(["--cache=none", "--format=raw", "--persistent", "--shared=4"])
            .arg(format!("--socket={}", sock.display()))
            .arg(image)
            .stderr(std::process::Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!(
                    "\n***** SKIPPED: qemu-nbd cannot start ({e}): install qemu-utils *****\n"
                );
                return None;
            }
        };
        let server = NbdServer {
            child,
            uri: format!("nbd+unix:///?socket={}", sock.display()),
        };
        for _ in 0..500 {
            // Accepting, not only bound: the socket file appears at bind(2),
            // before listen(2), when a connect is still refused.
            if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
                return Some(server);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        eprintln!(
            "\n***** SKIPPED: qemu-nbd did not open {} *****\n",
            sock.display()
        );
        None
    }
}

#[cfg(feature = "nbd")]
impl NbdServer {
    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL to the server's pid, and reaps it (a server killed
    /// mid-I/O; start a new one on the same image to restart it).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(feature = "nbd")]
impl Drop for NbdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tests' page contents: [`crate::content`]'s natively. Under Miri,
/// filling or checking that 4 KiB pattern takes about half a second, and
/// the tests move hundreds of pages: there, 63 pages in 64 (all but
/// indices 31, 95, 159, ...) carry a cheap stand-in instead: index and
/// seed stamped at four places, zeros between, checked at those four
/// places. Every page still goes through the same I/O paths.
pub mod pages {
    use crate::content::{self, Mismatch};
    use iov_iter::{PAGE_SIZE, Page, PageFlags, PageRef};

    fn cheap(index: u64) -> bool {
        cfg!(miri) && index % 64 != 31
    }

    fn stamps(index: u64, seed: u64) -> [(usize, u64); 4] {
        [
            (0, index),
            (8, seed),
            (PAGE_SIZE / 2, index ^ seed),
            (PAGE_SIZE - 8, !index ^ seed),
        ]
    }

    /// [`content::fill_page`], or under Miri the stand-in.
    pub fn fill_page(bytes: &mut [u8; PAGE_SIZE], index: u64, seed: u64) {
        if !cheap(index) {
            return content::fill_page(bytes, index, seed);
        }
        // One copy of a constant, not a loop of 4096 byte stores.
        *bytes = [0; PAGE_SIZE];
        for (at, v) in stamps(index, seed) {
            bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
    }

    /// [`content::make_page`], or under Miri the stand-in.
    pub fn make_page(index: u64, seed: u64) -> PageRef {
        let mut page = Page::new();
        fill_page(page.as_mut_bytes(), index, seed);
        page.set_flags(PageFlags::UPTODATE | PageFlags::DIRTY);
        PageRef::new(page)
    }

    /// [`content::check_page`], or under Miri the stand-in's check.
    ///
    /// # Errors
    ///
    /// The first difference found.
    pub fn check_page(bytes: &[u8; PAGE_SIZE], index: u64, seed: u64) -> Result<(), Mismatch> {
        if !cheap(index) {
            return content::check_page(bytes, index, seed);
        }
        for (at, v) in stamps(index, seed) {
            if bytes[at..at + 8] != v.to_le_bytes() {
                return Err(Mismatch::Byte { offset: at });
            }
        }
        Ok(())
    }

    /// [`content::check_swapped_in`], or under Miri the stand-in's check.
    ///
    /// # Errors
    ///
    /// [`Mismatch::NotUptodate`], or the first difference.
    pub fn check_swapped_in(page: &Page, index: u64, seed: u64) -> Result<(), Mismatch> {
        if !page.test(PageFlags::UPTODATE) || page.test(PageFlags::LOCKED) {
            return Err(Mismatch::NotUptodate);
        }
        check_page(page.as_bytes(), index, seed)
    }
}
