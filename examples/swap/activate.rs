//! Creating and activating a swap file: the checks swapon(8) and the
//! kernel's `swapon(2)` (`claim_swapfile`, `read_swap_header`,
//! `iomap_swapfile_activate`) make before a file may back swap.
//!
//! Order of checks in [`open_swap_file`] / [`activate`]:
//!
//! 1. the file is a regular file (`claim_swapfile`; block devices are out of
//!    scope here);
//! 2. `st_blocks * 512 >= st_size` (swapon(8)'s quick "appears to have holes"
//!    test);
//! 3. the file holds at least the header page;
//! 4. the header page parses ([`SwapHeader::parse`], the kernel's rules);
//! 5. no hole in `[0, max_pages * 4096)` according to `SEEK_HOLE`/`SEEK_DATA`
//!    (the userspace stand-in for the iomap extent walk);
//! 6. at least one usable page besides the header.
//!
//! The area is `min(last_page + 1, file_size / 4096)` pages: a trailing
//! partial page is ignored, and a header promising more pages than the file
//! holds is rejected in step 4. Page 0 is the header and never a slot.
//!
//! Caveat: `SEEK_HOLE` reports preallocated-but-never-written (unwritten)
//! extents as holes on ext4, XFS, btrfs and tmpfs, while the kernel's iomap
//! walk accepts them. A file made with plain `fallocate -l` is therefore
//! refused here (with a message saying so); [`create_swap_file`] writes zeros
//! over its preallocation so the whole area is data.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{FallocateFlags, SeekFrom};

use crate::header::{AreaInfo, EINVAL, HeaderError, Label, PAGE_SIZE, SwapHeader, Uuid};

const PAGE: u64 = PAGE_SIZE as u64;

/// Why a file cannot be created as, or activated as, a swap file.
#[derive(Debug)]
pub enum ActivateError {
    /// A system call failed.
    Io {
        /// What was being done, with the path if known.
        context: String,
        /// The OS error.
        source: io::Error,
    },
    /// The header page is invalid (or the requested area is too small).
    Header(HeaderError),
    /// Not a regular file.
    NotRegularFile {
        /// "directory", "block device", ...
        kind: &'static str,
    },
    /// `st_blocks * 512 < st_size`: swapon(8)'s "appears to have holes".
    AppearsToHaveHoles {
        /// `st_blocks * 512`.
        allocated: u64,
        /// `st_size`.
        size: u64,
    },
    /// `SEEK_HOLE` found a hole (or unwritten extent) inside the area.
    Hole {
        /// First byte of the hole.
        start: u64,
        /// End of the hole (exclusive), clipped to the area.
        end: u64,
    },
    /// The file is smaller than one page, so it cannot hold a header.
    TooSmallForHeader {
        /// File size in bytes.
        size: u64,
    },
}

impl ActivateError {
    /// The positive errno: the OS error for I/O failures, `EINVAL` for every
    /// rejection (as swapon(2) returns).
    pub fn errno(&self) -> i32 {
        match self {
            ActivateError::Io { source, .. } => source.raw_os_error().unwrap_or(5 /* EIO */),
            ActivateError::Header(h) => h.errno(),
            _ => EINVAL,
        }
    }

    fn io(context: impl Into<String>, source: impl Into<io::Error>) -> ActivateError {
        ActivateError::Io {
            context: context.into(),
            source: source.into(),
        }
    }
}

impl std::fmt::Display for ActivateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ActivateError::Io { context, source } => write!(f, "{context}: {source}"),
            ActivateError::Header(h) => write!(f, "invalid swap header: {h}"),
            ActivateError::NotRegularFile { kind } => {
                write!(
                    f,
                    "not a regular file ({kind}); only swap files are supported"
                )
            }
            ActivateError::AppearsToHaveHoles { allocated, size } => write!(
                f,
                "swap file appears to have holes: {allocated} bytes allocated for {size} bytes \
                 (sparse files cannot be used for swap)"
            ),
            ActivateError::Hole { start, end } => write!(
                f,
                "swap file has a hole or an unwritten extent at bytes [{start}, {end}): sparse \
                 files cannot be used for swap, and SEEK_HOLE cannot tell a hole from space \
                 that was preallocated but never written; fill the file with zeros (e.g. dd) \
                 rather than only fallocating it"
            ),
            ActivateError::TooSmallForHeader { size } => write!(
                f,
                "file is {size} bytes, too small to hold a {PAGE_SIZE}-byte swap header"
            ),
        }
    }
}

impl std::error::Error for ActivateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ActivateError::Io { source, .. } => Some(source),
            ActivateError::Header(h) => Some(h),
            _ => None,
        }
    }
}

impl From<HeaderError> for ActivateError {
    fn from(h: HeaderError) -> ActivateError {
        ActivateError::Header(h)
    }
}

/// Size facts about a candidate swap file (from `fstat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo {
    /// `st_size`.
    pub size: u64,
    /// `st_blocks * 512`.
    pub allocated: u64,
}

impl FileInfo {
    /// Whole pages in the file (`st_size / 4096`).
    pub fn pages(&self) -> u64 {
        self.size / PAGE
    }
}

/// Result of activation: the geometry of the swap area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activation {
    /// File size in bytes (may include a trailing partial page or pages past
    /// the header's `last_page`; both are ignored).
    pub file_size: u64,
    /// Slots in the area, header page included: `min(last_page + 1,
    /// file_size / 4096)` (the kernel's `maxpages` / `si->max`). Slot `i`
    /// lives at byte `i * 4096`.
    pub max_pages: u64,
    /// Slots that can hold swapped pages: `max_pages - 1 - bad pages`.
    pub usable_pages: u64,
}

/// Checks 1–3: regular file, swapon(8)'s `st_blocks` test, room for a header.
pub fn check_file(file: &File) -> Result<FileInfo, ActivateError> {
    let meta = file
        .metadata()
        .map_err(|e| ActivateError::io("fstat on swap file", e))?;
    let ft = meta.file_type();
    if !ft.is_file() {
        let kind = if ft.is_dir() {
            "directory"
        } else if ft.is_block_device() {
            "block device"
        } else if ft.is_char_device() {
            "character device"
        } else if ft.is_fifo() {
            "fifo"
        } else if ft.is_socket() {
            "socket"
        } else {
            "unknown file type"
        };
        return Err(ActivateError::NotRegularFile { kind });
    }
    let info = FileInfo {
        size: meta.size(),
        allocated: meta.blocks().saturating_mul(512),
    };
    if info.allocated < info.size {
        return Err(ActivateError::AppearsToHaveHoles {
            allocated: info.allocated,
            size: info.size,
        });
    }
    if info.size < PAGE {
        return Err(ActivateError::TooSmallForHeader { size: info.size });
    }
    Ok(info)
}

/// First hole in `[0, len)` according to `SEEK_HOLE`/`SEEK_DATA`, as a byte
/// range clipped to `len`, or `None` if the range is all data.
///
/// Moves the file offset (it is restored to 0); all swap I/O is positioned.
pub fn find_hole(file: &File, len: u64) -> io::Result<Option<(u64, u64)>> {
    if len == 0 {
        return Ok(None);
    }
    let result = (|| {
        let hole = match rustix::fs::seek(file, SeekFrom::Hole(0)) {
            Ok(h) => h,
            // Offset 0 is at or past EOF: the file is empty, all hole.
            Err(rustix::io::Errno::NXIO) => return Ok(Some((0, len))),
            Err(e) => return Err(io::Error::from(e)),
        };
        if hole >= len {
            return Ok(None);
        }
        let end = match rustix::fs::seek(file, SeekFrom::Data(hole)) {
            Ok(d) => d.min(len),
            // No data after the hole: it runs to EOF.
            Err(rustix::io::Errno::NXIO) => len,
            Err(e) => return Err(io::Error::from(e)),
        };
        Ok(Some((hole, end)))
    })();
    rustix::fs::seek(file, SeekFrom::Start(0))?;
    result
}

/// Checks 4–6 for a file whose header has already been parsed (check 1–3 are
/// rerun). Returns the area's geometry. Never writes to the file.
pub fn activate(file: &File, header: &SwapHeader) -> Result<Activation, ActivateError> {
    let info = check_file(file)?;
    activate_with(file, header, info)
}

fn activate_with(
    file: &File,
    header: &SwapHeader,
    info: FileInfo,
) -> Result<Activation, ActivateError> {
    if !header.badpages.is_empty() {
        return Err(HeaderError::BadPagesOnRegularFile {
            nr_badpages: header.badpages.len() as u32,
        }
        .into());
    }
    let file_pages = info.pages();
    if header.max_pages() > file_pages {
        return Err(HeaderError::AreaShorterThanSignature {
            header_pages: header.max_pages(),
            file_pages,
        }
        .into());
    }
    let max_pages = header.max_pages().min(file_pages);
    if let Some((start, end)) = find_hole(file, max_pages * PAGE)
        .map_err(|e| ActivateError::io("SEEK_HOLE/SEEK_DATA on swap file", e))?
    {
        return Err(ActivateError::Hole { start, end });
    }
    // max_pages >= 2 because last_page != 0 was checked by the parser, so
    // there is always at least one usable slot ("Cannot find a single usable
    // page" cannot happen without bad pages, which files may not have).
    Ok(Activation {
        file_size: info.size,
        max_pages,
        usable_pages: max_pages - 1,
    })
}

/// One page, aligned for O_DIRECT.
#[repr(C, align(4096))]
struct AlignedPage([u8; PAGE_SIZE]);

/// Reads and parses the header page (checks 3–4). Works on O_DIRECT files.
pub fn read_header(file: &File, info: FileInfo) -> Result<SwapHeader, ActivateError> {
    if info.size < PAGE {
        return Err(ActivateError::TooSmallForHeader { size: info.size });
    }
    let mut page = Box::new(AlignedPage([0; PAGE_SIZE]));
    file.read_exact_at(&mut page.0, 0)
        .map_err(|e| ActivateError::io("reading swap header page", e))?;
    Ok(SwapHeader::parse(
        &page.0,
        AreaInfo {
            size_pages: Some(info.pages()),
            regular_file: true,
        },
    )?)
}

/// An activated swap file.
#[derive(Debug)]
pub struct SwapFile {
    /// The open file (read-write).
    pub file: File,
    /// Where it was opened from.
    pub path: PathBuf,
    /// The parsed header, unchanged on disk.
    pub header: SwapHeader,
    /// Area geometry.
    pub activation: Activation,
}

impl SwapFile {
    /// The volume label.
    pub fn label(&self) -> &Label {
        &self.header.label
    }
    /// The volume UUID.
    pub fn uuid(&self) -> Uuid {
        self.header.uuid
    }
    /// The header's `last_page`.
    pub fn last_page(&self) -> u32 {
        self.header.last_page
    }
    /// Slots including the header page (valid slot indices are
    /// `1..max_pages`).
    pub fn max_pages(&self) -> u64 {
        self.activation.max_pages
    }
    /// Slots available for swapped pages.
    pub fn usable_pages(&self) -> u64 {
        self.activation.usable_pages
    }
    /// Byte offset of slot `index` in the file.
    pub fn slot_offset(index: u64) -> u64 {
        index * PAGE
    }
}

/// Opens `path` read-write and activates it (see [`open_swap_file_with`]).
pub fn open_swap_file(path: impl AsRef<Path>) -> Result<SwapFile, ActivateError> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(true);
    open_swap_file_with(path, &opts)
}

/// Opens `path` with `options` (e.g. with `custom_flags(O_DIRECT)`; it should
/// allow reading and, for swap-out, writing), reads and parses the header and
/// runs every activation check. The file is never modified: mkswap's UUID and
/// label are kept.
pub fn open_swap_file_with(
    path: impl AsRef<Path>,
    options: &OpenOptions,
) -> Result<SwapFile, ActivateError> {
    let path = path.as_ref();
    let file = options
        .open(path)
        .map_err(|e| ActivateError::io(format!("opening {}", path.display()), e))?;
    let info = check_file(&file)?;
    let header = read_header(&file, info)?;
    let activation = activate_with(&file, &header, info)?;
    Ok(SwapFile {
        file,
        path: path.to_owned(),
        header,
        activation,
    })
}

/// Creates (or replaces) `path` as a swap file of `size_bytes` rounded down
/// to whole pages, like `fallocate` + zero fill + `mkswap -L label -U uuid`:
///
/// * at least [`crate::header::MIN_GOODPAGES`] pages, else
///   [`HeaderError::AreaTooSmall`] (nothing is created);
/// * mode 0600;
/// * space reserved with `fallocate(mode 0)` (skipped if the filesystem does
///   not support it), then every page written with zeros so no part of the
///   area is a hole or an unwritten extent;
/// * the header written at offset 0, then `fsync`.
///
/// On failure after the file was opened, it is removed. Returns the header
/// written.
pub fn create_swap_file(
    path: impl AsRef<Path>,
    size_bytes: u64,
    label: &Label,
    uuid: Uuid,
) -> Result<SwapHeader, ActivateError> {
    let path = path.as_ref();
    let header = SwapHeader::new(size_bytes / PAGE, uuid, *label)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| ActivateError::io(format!("creating {}", path.display()), e))?;
    let result = fill_swap_file(&file, path, &header);
    if result.is_err() && file.metadata().is_ok_and(|m| m.is_file()) {
        let _ = std::fs::remove_file(path);
    }
    result.map(|()| header)
}

fn fill_swap_file(file: &File, path: &Path, header: &SwapHeader) -> Result<(), ActivateError> {
    let ft = file
        .metadata()
        .map_err(|e| ActivateError::io(format!("fstat on {}", path.display()), e))?
        .file_type();
    if !ft.is_file() {
        return Err(ActivateError::NotRegularFile {
            kind: if ft.is_block_device() {
                "block device"
            } else {
                "not a regular file"
            },
        });
    }
    let len = header.max_pages() * PAGE;
    match rustix::fs::fallocate(file, FallocateFlags::empty(), 0, len) {
        Ok(()) => {}
        // Not supported here: the zero fill below allocates instead.
        Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS) => {}
        Err(e) => {
            return Err(ActivateError::io(
                format!("fallocate {len} bytes for {}", path.display()),
                e,
            ));
        }
    }
    const CHUNK: usize = 1 << 20;
    let zeros = vec![0u8; CHUNK];
    let mut off = PAGE;
    while off < len {
        let n = (len - off).min(CHUNK as u64) as usize;
        file.write_all_at(&zeros[..n], off)
            .map_err(|e| ActivateError::io(format!("zero-filling {}", path.display()), e))?;
        off += n as u64;
    }
    file.write_all_at(&header.to_page(), 0)
        .map_err(|e| ActivateError::io(format!("writing header to {}", path.display()), e))?;
    file.sync_all()
        .map_err(|e| ActivateError::io(format!("fsync {}", path.display()), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::{Endian, MIN_GOODPAGES};
    use crate::testutil::{TestDir, require_tool};
    use std::io::Write;
    use std::process::Command;

    fn label(s: &str) -> Label {
        Label::new(s).unwrap()
    }

    fn write_zero_file(path: &Path, len: u64) {
        let mut f = File::create(path).unwrap();
        let zeros = vec![0u8; 64 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            f.write_all(&zeros[..n]).unwrap();
            left -= n as u64;
        }
        f.sync_all().unwrap();
    }

    fn mtime(path: &Path) -> (i64, i64) {
        let m = std::fs::metadata(path).unwrap();
        (m.mtime(), m.mtime_nsec())
    }

    #[test]
    fn create_then_open_round_trip() {
        let dir = TestDir::new("create-open");
        let path = dir.join("swapfile");
        let uuid = Uuid::new_v4().unwrap();
        let written = create_swap_file(&path, 64 * PAGE, &label("rt-label"), uuid).unwrap();
        assert_eq!(written.last_page, 63);

        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), 64 * PAGE);
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert!(meta.blocks() * 512 >= meta.len(), "not preallocated");

        let sf = open_swap_file(&path).unwrap();
        assert_eq!(sf.label(), &label("rt-label"));
        assert_eq!(sf.uuid(), uuid);
        assert_eq!(sf.last_page(), 63);
        assert_eq!(sf.max_pages(), 64);
        assert_eq!(sf.usable_pages(), 63);
        assert_eq!(sf.header, written);
        assert_eq!(SwapFile::slot_offset(3), 3 * 4096);
        assert_eq!(find_hole(&sf.file, 64 * PAGE).unwrap(), None);
        // activate() on an already-open file agrees.
        assert_eq!(activate(&sf.file, &sf.header).unwrap(), sf.activation);
    }

    #[test]
    fn create_rounds_down_and_refuses_tiny_areas() {
        let dir = TestDir::new("create-small");
        let path = dir.join("swapfile");
        let h = create_swap_file(&path, 20 * PAGE + 123, &Label::EMPTY, Uuid::NIL).unwrap();
        assert_eq!(h.last_page, 19);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 20 * PAGE);

        let tiny = dir.join("tiny");
        let e = create_swap_file(
            &tiny,
            (MIN_GOODPAGES - 1) * PAGE + 4095,
            &Label::EMPTY,
            Uuid::NIL,
        )
        .unwrap_err();
        assert!(matches!(
            e,
            ActivateError::Header(HeaderError::AreaTooSmall { pages: 9 })
        ));
        assert_eq!(e.errno(), EINVAL);
        assert!(!tiny.exists(), "nothing created for a refused size");
    }

    #[test]
    fn create_replaces_an_existing_file() {
        let dir = TestDir::new("create-replace");
        let path = dir.join("swapfile");
        std::fs::write(&path, vec![0xAA; 100 * 4096]).unwrap();
        create_swap_file(&path, 16 * PAGE, &label("new"), Uuid::NIL).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 16 * PAGE);
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes[PAGE_SIZE..].iter().all(|&b| b == 0));
        assert_eq!(open_swap_file(&path).unwrap().label(), &label("new"));
    }

    #[test]
    fn sparse_file_is_refused() {
        let dir = TestDir::new("sparse");
        let path = dir.join("swapfile");
        let f = File::create(&path).unwrap();
        rustix::fs::ftruncate(&f, 64 * PAGE).unwrap();
        drop(f);
        let e = open_swap_file(&path).unwrap_err();
        assert!(
            matches!(e, ActivateError::AppearsToHaveHoles { size: 262144, .. }),
            "{e:?}"
        );
        assert_eq!(e.errno(), EINVAL);
        assert!(e.to_string().contains("holes"), "{e}");
        // SEEK_HOLE sees the whole file as a hole.
        let f = File::open(&path).unwrap();
        assert_eq!(find_hole(&f, 64 * PAGE).unwrap(), Some((0, 64 * PAGE)));
    }

    #[test]
    fn hole_in_the_middle_is_refused() {
        let dir = TestDir::new("middle-hole");
        let path = dir.join("swapfile");
        let header = SwapHeader::new(64, Uuid::NIL, label("holey")).unwrap();
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        f.write_all_at(&header.to_page(), 0).unwrap();
        f.write_all_at(&[0x55; PAGE_SIZE], 63 * PAGE).unwrap();
        f.sync_all().unwrap();
        drop(f);
        let e = open_swap_file(&path).unwrap_err();
        assert!(
            matches!(e, ActivateError::AppearsToHaveHoles { .. }),
            "{e:?}"
        );
        assert_eq!(e.errno(), EINVAL);
        let f = File::open(&path).unwrap();
        let (start, end) = find_hole(&f, 64 * PAGE).unwrap().expect("a hole");
        assert!((PAGE..2 * PAGE).contains(&start), "{start}");
        assert!((62 * PAGE + 1..=63 * PAGE).contains(&end), "{end}");
    }

    /// A hole that the st_blocks quick check misses (blocks preallocated past
    /// EOF make up for it) is still found by SEEK_HOLE.
    #[test]
    fn hole_hidden_from_st_blocks_is_refused() {
        let dir = TestDir::new("hidden-hole");
        let path = dir.join("swapfile");
        create_swap_file(&path, 64 * PAGE, &label("hidden"), Uuid::NIL).unwrap();
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let punch = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
        if let Err(e) = rustix::fs::fallocate(&f, punch, 10 * PAGE, 4 * PAGE) {
            eprintln!("SKIP: hole punching unsupported here: {e}");
            return;
        }
        rustix::fs::fallocate(&f, FallocateFlags::KEEP_SIZE, 64 * PAGE, 16 * PAGE).unwrap();
        f.sync_all().unwrap();
        let meta = f.metadata().unwrap();
        assert!(
            meta.blocks() * 512 >= meta.len(),
            "setup: st_blocks check fooled"
        );
        let e = open_swap_file(&path).unwrap_err();
        match e {
            ActivateError::Hole { start, end, .. } => {
                assert!(start <= 10 * PAGE && end >= 14 * PAGE, "[{start}, {end})");
            }
            other => panic!("expected Hole, got {other:?}"),
        }
        // The header itself is intact.
        let info = check_file(&f).unwrap();
        assert_eq!(read_header(&f, info).unwrap().label, label("hidden"));
    }

    /// fallocate without writing leaves unwritten extents, which SEEK_HOLE
    /// reports as holes; the error says so.
    #[test]
    fn fallocated_but_unwritten_file_is_refused_with_hint() {
        let dir = TestDir::new("unwritten");
        let path = dir.join("swapfile");
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        if let Err(e) = rustix::fs::fallocate(&f, FallocateFlags::empty(), 0, 64 * PAGE) {
            eprintln!("SKIP: fallocate unsupported here: {e}");
            return;
        }
        let header = SwapHeader::new(64, Uuid::NIL, Label::EMPTY).unwrap();
        f.write_all_at(&header.to_page(), 0).unwrap();
        f.sync_all().unwrap();
        match open_swap_file(&path) {
            Err(e @ ActivateError::Hole { start: PAGE, .. }) => {
                assert_eq!(e.errno(), EINVAL);
                assert!(e.to_string().contains("never written"), "{e}");
            }
            Err(e) => panic!("unexpected error {e:?}"),
            Ok(_) => eprintln!("NOTE: this filesystem reports unwritten extents as data"),
        }
    }

    #[test]
    fn partial_trailing_page_is_ignored() {
        let dir = TestDir::new("partial-page");
        let path = dir.join("swapfile");
        create_swap_file(&path, 32 * PAGE, &label("partial"), Uuid::NIL).unwrap();
        let f = OpenOptions::new().append(true).open(&path).unwrap();
        (&f).write_all(&[0u8; 1000]).unwrap();
        f.sync_all().unwrap();
        let sf = open_swap_file(&path).unwrap();
        assert_eq!(sf.activation.file_size, 32 * PAGE + 1000);
        assert_eq!(sf.max_pages(), 32);
        assert_eq!(sf.usable_pages(), 31);
    }

    #[test]
    fn file_longer_than_header_uses_header_size() {
        let dir = TestDir::new("longer");
        let path = dir.join("swapfile");
        create_swap_file(&path, 40 * PAGE, &Label::EMPTY, Uuid::NIL).unwrap();
        // Rewrite the header to claim only 20 pages, add a partial page.
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let h = SwapHeader::new(20, Uuid::NIL, Label::EMPTY).unwrap();
        f.write_all_at(&h.to_page(), 0).unwrap();
        f.write_all_at(&[0; 100], 40 * PAGE).unwrap();
        drop(f);
        let sf = open_swap_file(&path).unwrap();
        assert_eq!(sf.max_pages(), 20);
        assert_eq!(sf.usable_pages(), 19);
    }

    #[test]
    fn file_shorter_than_header_is_refused() {
        let dir = TestDir::new("shorter");
        let path = dir.join("swapfile");
        create_swap_file(&path, 40 * PAGE, &Label::EMPTY, Uuid::NIL).unwrap();
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let h = SwapHeader::new(41, Uuid::NIL, Label::EMPTY).unwrap();
        f.write_all_at(&h.to_page(), 0).unwrap();
        drop(f);
        let e = open_swap_file(&path).unwrap_err();
        assert!(matches!(
            e,
            ActivateError::Header(HeaderError::AreaShorterThanSignature {
                header_pages: 41,
                file_pages: 40
            })
        ));
        assert_eq!(e.errno(), EINVAL);
    }

    #[test]
    fn header_errors_surface_through_open() {
        let dir = TestDir::new("bad-header");
        let path = dir.join("swapfile");
        write_zero_file(&path, 16 * PAGE);
        let e = open_swap_file(&path).unwrap_err();
        assert!(matches!(e, ActivateError::Header(HeaderError::NoSignature)));
        assert_eq!(e.errno(), EINVAL);
        assert!(e.to_string().contains("signature"), "{e}");

        // Bad pages are forbidden in a file.
        let h = SwapHeader::new(16, Uuid::NIL, Label::EMPTY)
            .unwrap()
            .with_badpages(vec![4])
            .unwrap();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&h.to_page(), 0).unwrap();
        drop(f);
        let e = open_swap_file(&path).unwrap_err();
        assert!(matches!(
            e,
            ActivateError::Header(HeaderError::BadPagesOnRegularFile { nr_badpages: 1 })
        ));

        // A big-endian header is accepted.
        let mut h = SwapHeader::new(16, Uuid::NIL, label("be")).unwrap();
        h.endian = Endian::Big;
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&h.to_page(), 0).unwrap();
        drop(f);
        let sf = open_swap_file(&path).unwrap();
        assert_eq!(sf.last_page(), 15);
        assert_eq!(sf.header.endian, Endian::Big);
    }

    #[test]
    fn too_small_file_is_refused() {
        let dir = TestDir::new("tiny-file");
        let path = dir.join("swapfile");
        std::fs::write(&path, [0u8; 100]).unwrap();
        let e = open_swap_file(&path).unwrap_err();
        assert!(
            matches!(e, ActivateError::TooSmallForHeader { size: 100 }),
            "{e:?}"
        );
        assert_eq!(e.errno(), EINVAL);
    }

    #[test]
    fn non_regular_files_are_refused() {
        let dir = TestDir::new("not-regular");
        let d = File::open(dir.path()).unwrap();
        let e = check_file(&d).unwrap_err();
        assert!(matches!(
            e,
            ActivateError::NotRegularFile { kind: "directory" }
        ));
        assert_eq!(e.errno(), EINVAL);
        assert!(e.to_string().contains("not a regular file"), "{e}");

        let e = open_swap_file("/dev/null").unwrap_err();
        assert!(
            matches!(
                e,
                ActivateError::NotRegularFile {
                    kind: "character device"
                }
            ),
            "{e:?}"
        );
        let e = open_swap_file(dir.join("missing")).unwrap_err();
        assert_eq!(e.errno(), 2 /* ENOENT */);
    }

    #[test]
    fn open_with_o_direct() {
        let dir = TestDir::new("odirect");
        let path = dir.join("swapfile");
        create_swap_file(&path, 16 * PAGE, &label("direct"), Uuid::NIL).unwrap();
        let mut opts = OpenOptions::new();
        opts.read(true)
            .write(true)
            .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32);
        match open_swap_file_with(&path, &opts) {
            Ok(sf) => assert_eq!(sf.label(), &label("direct")),
            Err(ActivateError::Io { source, .. }) if source.raw_os_error() == Some(EINVAL) => {
                eprintln!("SKIP: O_DIRECT unsupported on this filesystem");
            }
            Err(e) => panic!("{e:?}"),
        }
    }

    /// (a) A file made by util-linux mkswap opens with its label and UUID, the
    /// header page is byte-identical to ours, and opening changes nothing.
    #[test]
    fn interop_mkswap_file_opens_unchanged() {
        let Some(mkswap) = require_tool("mkswap") else {
            return;
        };
        let dir = TestDir::new("interop-mkswap");
        let path = dir.join("swapfile");
        write_zero_file(&path, 64 * PAGE + 100);
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let uuid = Uuid::new_v4().unwrap();
        let out = Command::new(&mkswap)
            .args(["-L", "mkswap-label", "-U", &uuid.to_string()])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mkswap failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        let before = std::fs::read(&path).unwrap();
        let mtime_before = mtime(&path);
        let sf = open_swap_file(&path).unwrap();
        assert_eq!(sf.label().as_str(), Some("mkswap-label"));
        assert_eq!(sf.uuid(), uuid);
        assert_eq!(sf.last_page(), 63, "mkswap rounds the size down to pages");
        assert_eq!(sf.max_pages(), 64);
        assert_eq!(sf.usable_pages(), 63);
        assert_eq!(sf.header.endian, Endian::NATIVE);
        drop(sf);
        assert!(
            std::fs::read(&path).unwrap() == before,
            "open modified the file"
        );
        assert_eq!(mtime(&path), mtime_before);

        // mkswap's header page is exactly what we would have written.
        let ours = SwapHeader::new(64, uuid, label("mkswap-label"))
            .unwrap()
            .to_page();
        assert!(
            before[..PAGE_SIZE] == ours[..],
            "header page differs from mkswap's"
        );
    }

    /// (b) blkid's low-level probe recognises our file as swap with our
    /// label and UUID.
    #[test]
    fn interop_blkid_recognises_created_file() {
        let Some(blkid) = require_tool("blkid") else {
            return;
        };
        let dir = TestDir::new("interop-blkid");
        let path = dir.join("swapfile");
        let uuid = Uuid::new_v4().unwrap();
        create_swap_file(&path, 32 * PAGE, &label("blkid_LABEL"), uuid).unwrap();
        let out = Command::new(&blkid)
            .args(["-p", "-o", "export"])
            .arg(&path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "blkid failed ({}): {stdout} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let get = |key: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_owned)
        };
        assert_eq!(get("TYPE").as_deref(), Some("swap"), "{stdout}");
        assert_eq!(get("LABEL").as_deref(), Some("blkid_LABEL"), "{stdout}");
        assert_eq!(get("UUID"), Some(uuid.to_string()), "{stdout}");
        if let Some(v) = get("VERSION") {
            assert_eq!(v, "1", "{stdout}");
        }
    }

    /// mkswap -e big (util-linux >= 2.39) output is accepted.
    #[test]
    fn interop_mkswap_big_endian() {
        let Some(mkswap) = require_tool("mkswap") else {
            return;
        };
        let help = Command::new(&mkswap).arg("--help").output().unwrap();
        if !String::from_utf8_lossy(&help.stdout).contains("--endianness") {
            eprintln!("SKIP: this mkswap has no --endianness option");
            return;
        }
        let dir = TestDir::new("interop-mkswap-be");
        let path = dir.join("swapfile");
        write_zero_file(&path, 16 * PAGE);
        let out = Command::new(&mkswap)
            .args(["-q", "-e", "big", "-L", "be"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sf = open_swap_file(&path).unwrap();
        assert_eq!(sf.header.endian, Endian::Big);
        assert_eq!(sf.last_page(), 15);
        assert_eq!(sf.label().as_str(), Some("be"));
    }
}
