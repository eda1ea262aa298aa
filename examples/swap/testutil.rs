//! Helpers shared by the example's unit tests: scratch directories under the
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
            .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target")));
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
