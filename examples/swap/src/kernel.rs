//! The kernel's own swap, as the judge of swap areas and the anchor of the
//! benchmarks: `swapon(2)` in a guard that always ends in `swapoff(2)`,
//! `/proc/swaps`, and the swap counters of `/proc/vmstat`.
//!
//! `swapon(2)` needs `CAP_SYS_ADMIN`. rustix has no wrapper for it, so the
//! two calls go through `libc`.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A swap area the kernel has activated (`swapon(2)`); `swapoff(2)` when
/// dropped (also while a panic unwinds), so it never stays active past its
/// owner. A process killed outright cannot run it: keep the active span
/// short.
#[derive(Debug)]
pub struct SwapOn {
    path: PathBuf,
    c_path: CString,
    on: bool,
}

impl SwapOn {
    /// Activates the swap area at `path` with no flags.
    ///
    /// # Errors
    ///
    /// `swapon(2)`'s errno: `EPERM` without `CAP_SYS_ADMIN`, `EINVAL` for
    /// a file the kernel refuses, `EBUSY` for an area already active.
    pub fn new(path: &Path) -> io::Result<SwapOn> {
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(22 /* EINVAL */))?;
        // SAFETY: `c_path` is a NUL-terminated string that outlives the
        // call; swapon(2) only reads it.
        if unsafe { libc::swapon(c_path.as_ptr(), 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(SwapOn {
            path: path.to_owned(),
            c_path,
            on: true,
        })
    }

    /// The area's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Deactivates the area now, reporting `swapoff(2)`'s error.
    ///
    /// # Errors
    ///
    /// `swapoff(2)`'s errno (`ENOMEM` when the pages in it cannot be
    /// brought back into memory): the area stays active, and dropping the
    /// guard tries again.
    pub fn swapoff(mut self) -> io::Result<()> {
        self.off()
    }

    fn off(&mut self) -> io::Result<()> {
        if !self.on {
            return Ok(());
        }
        // SAFETY: `self.c_path` is a NUL-terminated string that outlives
        // the call; swapoff(2) only reads it.
        if unsafe { libc::swapoff(self.c_path.as_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        self.on = false;
        Ok(())
    }
}

impl Drop for SwapOn {
    fn drop(&mut self) {
        if let Err(e) = self.off() {
            eprintln!(
                "\n!!!!!!!! swapoff {} FAILED: {e}: the area is still active, run swapoff by hand !!!!!!!!\n",
                self.path.display()
            );
        }
    }
}

/// The Size column of `/proc/swaps` (KiB, the kernel's `si->pages` × 4)
/// for the active area at `path`.
pub fn proc_swaps_size_kib(path: &Path) -> Option<u64> {
    let canon = std::fs::canonicalize(path).ok()?;
    let swaps = std::fs::read_to_string("/proc/swaps").ok()?;
    swaps.lines().skip(1).find_map(|line| {
        let mut cols = line.split_whitespace();
        // /proc/swaps escapes spaces, tabs, newlines and backslashes in octal.
        let name = cols
            .next()?
            .replace("\\040", " ")
            .replace("\\011", "\t")
            .replace("\\012", "\n")
            .replace("\\134", "\\");
        let _kind = cols.next()?;
        let size = cols.next()?.parse().ok()?;
        (Path::new(&name) == canon).then_some(size)
    })
}

/// A counter of `/proc/vmstat` (`pswpin`, `nr_writeback`, ...).
pub fn vmstat(key: &str) -> Option<u64> {
    let vm = std::fs::read_to_string("/proc/vmstat").ok()?;
    vm.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

/// `pswpin` and `pswpout` of `/proc/vmstat`: pages the kernel read from and
/// wrote to swap since boot.
pub fn vmstat_swap() -> Option<(u64, u64)> {
    Some((vmstat("pswpin")?, vmstat("pswpout")?))
}

/// `vm.page-cluster` (the kernel's swap readahead order).
pub fn page_cluster() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/vm/page-cluster")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "/proc")]
    fn vmstat_and_page_cluster_read() {
        assert!(
            vmstat_swap().is_some(),
            "/proc/vmstat has pswpin and pswpout"
        );
        assert!(page_cluster().is_some_and(|n| n <= 31));
        assert_eq!(proc_swaps_size_kib(Path::new("/nonexistent")), None);
    }
}
