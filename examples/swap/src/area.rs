//! Finding a place for the swap area and opening it: a directory where
//! `O_DIRECT` works (the system temp dir, else under `./target`), a new
//! swap file there (removed when done) or the user's own area.

use std::fs;
use std::path::{Path, PathBuf};

use iov_iter::backend::file::DirectFile;

use iov_iter_swap::activate::{ActivateError, SwapFile, create_swap_file, open_swap_file};
use iov_iter_swap::header::{Label, Uuid};

/// The label of the swap files the demo creates.
pub const DEMO_LABEL: &str = "iov-iter-demo";

/// An opened swap area.
#[derive(Debug)]
pub struct Area {
    /// The activated swap file.
    pub swap: SwapFile,
    /// Whether this run created it.
    pub created: bool,
    /// Remove the file when the area is dropped (a scratch file).
    remove: bool,
}

impl Drop for Area {
    fn drop(&mut self) {
        if self.remove {
            let _ = fs::remove_file(&self.swap.path);
        }
    }
}

/// Whether `dir` can hold a swap file: it takes `O_DIRECT` files and
/// reports their extents (FIEMAP, which activation walks). Creates, opens
/// and removes a probe.
///
/// # Errors
///
/// The open error (`EINVAL` on filesystems without direct I/O), or
/// FIEMAP's (`EOPNOTSUPP` on tmpfs, which has direct I/O since Linux 6.6
/// but no extents).
pub fn direct_io_works(dir: &Path) -> Result<(), iov_iter::Error> {
    let probe = dir.join(format!(".iov-iter-odirect-probe-{}", std::process::id()));
    let r = DirectFile::options()
        .create(true)
        .truncate(true)
        .open(&probe)
        .and_then(|f| iov_iter::backend::fiemap::FiemapMap::new(f).map(drop));
    let _ = fs::remove_file(&probe);
    r
}

/// Where the target directory of this build is: `$CARGO_TARGET_DIR`, else
/// `./target` if it exists, else the current directory.
fn fallback_base() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let target = PathBuf::from("target");
    if target.is_dir() {
        target
    } else {
        PathBuf::from(".")
    }
}

/// A directory for a scratch swap file where `O_DIRECT` works: the system
/// temp dir, or `swap-demo` under the target dir. Returns the directory and
/// a note to print when it fell back.
///
/// # Errors
///
/// When neither directory takes `O_DIRECT` files.
pub fn scratch_dir() -> Result<(PathBuf, Option<String>), String> {
    pick_dir(
        std::env::temp_dir(),
        fallback_base().join("swap-demo"),
        direct_io_works,
    )
}

/// [`scratch_dir`] with the candidates and the probe as parameters.
fn pick_dir(
    tmp: PathBuf,
    fallback: PathBuf,
    probe: impl Fn(&Path) -> Result<(), iov_iter::Error>,
) -> Result<(PathBuf, Option<String>), String> {
    let why = match probe(&tmp) {
        Ok(()) => return Ok((tmp, None)),
        Err(e) => e,
    };
    fs::create_dir_all(&fallback).map_err(|e| format!("creating {}: {e}", fallback.display()))?;
    match probe(&fallback) {
        Ok(()) => {
            let note = format!(
                "O_DIRECT or FIEMAP is refused in {} ({why}; tmpfs?): using {} instead",
                tmp.display(),
                fallback.display()
            );
            Ok((fallback, Some(note)))
        }
        Err(e) => Err(format!(
            "O_DIRECT or FIEMAP is refused in {} ({why}) and in {} ({e}); use --file on a disk filesystem",
            tmp.display(),
            fallback.display()
        )),
    }
}

/// Whether `path` is listed in `/proc/swaps` (an active swap area: the
/// kernel owns it).
pub fn is_active_swap(path: &Path) -> bool {
    let Ok(swaps) = fs::read_to_string("/proc/swaps") else {
        return false;
    };
    let Ok(canon) = fs::canonicalize(path) else {
        return false;
    };
    swaps.lines().skip(1).any(|line| {
        let name = line.split_whitespace().next().unwrap_or("");
        // /proc/swaps escapes spaces, tabs, newlines and backslashes in octal.
        let name = name
            .replace("\\040", " ")
            .replace("\\011", "\t")
            .replace("\\012", "\n")
            .replace("\\134", "\\");
        Path::new(&name) == canon
    })
}

fn create(path: &Path, size: u64) -> Result<SwapFile, String> {
    let uuid = Uuid::new_v4().map_err(|e| e.to_string())?;
    let label = Label::new(DEMO_LABEL).map_err(|e| e.to_string())?;
    create_swap_file(path, size, &label, uuid)
        .map_err(|e| format!("creating swap file {}: {e}", path.display()))?;
    open_swap_file(path).map_err(|e| format!("activating {}: {e}", path.display()))
}

/// Opens the swap area at `file` (created with `size` bytes if it does not
/// exist, and kept), or creates a scratch one of `size` bytes in
/// [`scratch_dir`], removed when the [`Area`] is dropped. Notes for the user
/// go to `note`.
///
/// # Errors
///
/// A message: the path is an active swap area, the area does not activate,
/// creation failed, or no directory takes `O_DIRECT`.
pub fn prepare(file: Option<&Path>, size: u64, note: &mut dyn FnMut(&str)) -> Result<Area, String> {
    match file {
        Some(path) if path.exists() => {
            if is_active_swap(path) {
                return Err(format!(
                    "{} is an active swap area (listed in /proc/swaps); swapoff it first",
                    path.display()
                ));
            }
            let swap = open_swap_file(path).map_err(|e| match e {
                ActivateError::Header(h) => format!(
                    "{} is not a usable swap area: {h} (create one with mkswap, or pass a new path)",
                    path.display()
                ),
                e => format!("{}: {e}", path.display()),
            })?;
            Ok(Area {
                swap,
                created: false,
                remove: false,
            })
        }
        Some(path) => Ok(Area {
            swap: create(path, size)?,
            created: true,
            remove: false,
        }),
        None => {
            let (dir, fallback) = scratch_dir()?;
            if let Some(msg) = fallback {
                note(&msg);
            }
            let path = dir.join(format!("iov-iter-swap-demo-{}.swap", std::process::id()));
            let swap = create(&path, size)?;
            Ok(Area {
                swap,
                created: true,
                remove: true,
            })
        }
    }
}

// Every test here makes syscalls (files, O_DIRECT): none runs under Miri.
#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;
    use iov_iter_swap::testutil::TestDir;

    #[test]
    fn prepare_creates_keeps_and_reopens() {
        let dir = TestDir::new("area");
        if let Err(e) = direct_io_works(dir.path()) {
            eprintln!("SKIPPED area::prepare_creates_keeps_and_reopens: O_DIRECT refused: {e}");
            return;
        }
        let path = dir.join("kept.swap");
        let mut notes = Vec::new();
        let area = prepare(Some(&path), 1 << 20, &mut |n| notes.push(n.to_owned())).unwrap();
        assert!(area.created);
        assert_eq!(area.swap.max_pages(), 256);
        assert_eq!(area.swap.label().as_str(), Some(DEMO_LABEL));
        let uuid = area.swap.uuid();
        drop(area);
        assert!(path.exists(), "a --file area is kept");
        let again = prepare(Some(&path), 8 << 20, &mut |n| notes.push(n.to_owned())).unwrap();
        assert!(!again.created);
        assert_eq!(again.swap.uuid(), uuid);
        assert_eq!(
            again.swap.max_pages(),
            256,
            "--size does not resize an existing area"
        );
        assert!(notes.is_empty());
        assert!(!is_active_swap(&path));
    }

    #[test]
    fn prepare_refuses_a_file_that_is_not_a_swap_area() {
        let dir = TestDir::new("area-bad");
        let path = dir.join("not-swap");
        fs::write(&path, vec![0u8; 64 * 4096]).unwrap();
        let e = prepare(Some(&path), 1 << 20, &mut |_| {}).unwrap_err();
        assert!(e.contains("not a usable swap area"), "{e}");
    }

    #[test]
    fn refused_temp_dir_falls_back_with_a_note() {
        let dir = TestDir::new("area-fallback");
        let (tmp, fallback) = (dir.join("tmp"), dir.join("target/swap-demo"));
        let einval = || iov_iter::Error::Os(iov_iter::Errno::EINVAL);
        let ok = pick_dir(tmp.clone(), fallback.clone(), |_| Ok(())).unwrap();
        assert_eq!(ok, (tmp.clone(), None));
        let refuse_tmp = |p: &Path| if p == tmp { Err(einval()) } else { Ok(()) };
        let (got, note) = pick_dir(tmp.clone(), fallback.clone(), refuse_tmp).unwrap();
        assert_eq!(got, fallback);
        assert!(fallback.is_dir(), "created");
        let note = note.unwrap();
        assert!(
            note.contains("O_DIRECT or FIEMAP is refused") && note.contains("using"),
            "{note}"
        );
        let e = pick_dir(tmp, fallback, |_| Err(einval())).unwrap_err();
        assert!(e.contains("use --file"), "{e}");
    }

    #[test]
    fn scratch_areas_are_removed() {
        let (dir, _) = match scratch_dir() {
            Ok(d) => d,
            Err(e) => {
                eprintln!("SKIPPED area::scratch_areas_are_removed: {e}");
                return;
            }
        };
        let area = prepare(None, 1 << 20, &mut |_| {}).unwrap();
        let path = area.swap.path.clone();
        assert!(path.starts_with(&dir) && path.exists());
        drop(area);
        assert!(!path.exists());
    }
}
