//! Creating and activating a swap file: the checks the kernel's `swapon(2)`
//! (`claim_swapfile`, `read_swap_header`, `setup_swap_extents` →
//! `iomap_swapfile_activate`) makes before a file may back swap.
//!
//! Order of checks in [`open_swap_file`] / [`activate`]:
//!
//! 1. the file is a regular file (`claim_swapfile`; block devices are out of
//!    scope here);
//! 2. the file holds at least the header page;
//! 3. the header page parses ([`SwapHeader::parse`], the kernel's
//!    `read_swap_header` rules), has no bad pages (refused on a file) and
//!    does not promise more pages than the file holds ("Swap area shorter
//!    than signature indicates");
//! 4. the file's extents, read with `FS_IOC_FIEMAP` after an `fdatasync`
//!    ([`FiemapMap`], the kernel fsyncs too), pass
//!    [`swapfile_activate`] with the header's `last_page + 1` as the limit:
//!    the whole file rounded down to pages (not only the area) must be
//!    mapped or unwritten, no hole, delayed allocation, inline, shared
//!    (reflinked), encoded or unknown-location extent; physically
//!    contiguous extents are merged and trimmed to whole device pages;
//! 5. at least one usable page besides the header ("Cannot find a single
//!    usable page").
//!
//! A filesystem without extent maps (tmpfs: FIEMAP is `EOPNOTSUPP`) cannot
//! host a swap file, here as in the kernel.
//!
//! Preallocated but never written (unwritten) extents are accepted, as the
//! kernel accepts them: `fallocate -l 64M f && mkswap f` makes a usable
//! area. There is no `st_blocks` test (that is swapon(8)'s heuristic, not
//! the kernel's).
//!
//! The area is what the extent walk gives ([`SwapExtents::max`], the
//! kernel's `si->max`): `min(last_page + 1, file_size / 4096)` pages on a
//! filesystem with 4 KiB blocks, fewer if some runs are not page-aligned on
//! the device. A trailing partial page is ignored, and page 0 is the header
//! and never a slot.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use iov_iter::backend::fiemap::FiemapMap;
use iov_iter::iomap::{SwapActivateError, SwapExtents, SwapRefusal, swapfile_activate};
use rustix::fs::FallocateFlags;

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
    /// The extent walk refused the file (a hole, a shared extent, ...:
    /// the extent and its byte range are named) or found no usable page,
    /// as the kernel's `iomap_swapfile_activate` would.
    Extents(SwapActivateError),
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
            ActivateError::Extents(e) => e.errno().raw(),
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
            ActivateError::Extents(e) => {
                write!(f, "the swap file's extents cannot back swap: {e}")?;
                if let SwapActivateError::Refused {
                    why: SwapRefusal::Hole | SwapRefusal::Delalloc,
                    ..
                } = e
                {
                    f.write_str(
                        " (sparse files cannot be used for swap: allocate the whole file, \
                         with fallocate or dd, before mkswap)",
                    )?;
                }
                Ok(())
            }
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
            ActivateError::Extents(e) => Some(e),
            _ => None,
        }
    }
}

impl From<HeaderError> for ActivateError {
    fn from(h: HeaderError) -> ActivateError {
        ActivateError::Header(h)
    }
}

impl From<SwapActivateError> for ActivateError {
    fn from(e: SwapActivateError) -> ActivateError {
        ActivateError::Extents(e)
    }
}

/// Size facts about a candidate swap file (from `fstat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo {
    /// `st_size`.
    pub size: u64,
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
    /// Slots in the area, header page included ([`SwapExtents::max`], the
    /// kernel's `si->max`): `min(last_page + 1, file_size / 4096)` when
    /// every run is page-aligned on the device. Slot `i` lives at byte
    /// `i * 4096` of the file.
    pub max_pages: u64,
    /// Slots that can hold swapped pages ([`SwapExtents::pages`], the
    /// kernel's `si->pages`, which `/proc/swaps` shows in KiB):
    /// `max_pages - 1`.
    pub usable_pages: u64,
    /// Swap extents after merging physically contiguous runs (swapon's
    /// "extents:").
    pub nr_extents: usize,
    /// Device pages from the lowest to the highest used, header excluded
    /// ([`SwapExtents::span`], swapon's "across:").
    pub span: u64,
}

/// Checks 1–2: regular file, room for a header.
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
    let info = FileInfo { size: meta.size() };
    if info.size < PAGE {
        return Err(ActivateError::TooSmallForHeader { size: info.size });
    }
    Ok(info)
}

/// The swap extents of `file` as `swapon(2)` builds them (check 4–5):
/// `fdatasync`, then the FIEMAP extent map walked by
/// [`swapfile_activate`] with at most `max_pages` pages (header included).
///
/// # Errors
///
/// [`ActivateError::Io`] when the sync or the FIEMAP ioctl fails
/// (`EOPNOTSUPP` on a filesystem without extent maps, such as tmpfs),
/// [`ActivateError::Extents`] when the walk refuses the file.
pub fn swap_extents(file: &File, max_pages: u64) -> Result<SwapExtents, ActivateError> {
    rustix::fs::fdatasync(file).map_err(|e| ActivateError::io("fdatasync on swap file", e))?;
    let map = FiemapMap::new(file).map_err(|e| {
        let hint = if e.errno() == iov_iter::Errno::EOPNOTSUPP {
            " (this filesystem has no extent map, tmpfs for instance, and the kernel \
             refuses swap files on it too: use a disk filesystem such as ext4 or XFS)"
        } else {
            ""
        };
        ActivateError::io(
            format!("reading the swap file's extent map (FS_IOC_FIEMAP){hint}"),
            io::Error::from(e),
        )
    })?;
    let size = iov_iter::iomap::IoMap::size(&map);
    swapfile_activate(&map, max_pages).map_err(|e| match e {
        // A hole after the last extent runs on past the end of the file in
        // the map; name only the part inside the file.
        SwapActivateError::Refused { why, offset, len } => {
            ActivateError::Extents(SwapActivateError::Refused {
                why,
                offset,
                len: len.min(size.saturating_sub(offset)),
            })
        }
        e => ActivateError::Extents(e),
    })
}

/// Checks 3–5 for a file whose header has already been parsed (checks 1–2
/// are rerun). Returns the area's geometry. Never writes to the file.
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
    // The kernel's maxpages: min(last_page + 1, file pages), here equal to
    // last_page + 1 after the check above.
    let extents = swap_extents(file, header.max_pages().min(file_pages))?;
    Ok(Activation {
        file_size: info.size,
        max_pages: extents.max(),
        usable_pages: extents.pages(),
        nr_extents: extents.extents().len(),
        span: extents.span(),
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
///   not support it), then every page written with zeros;
/// * the header written at offset 0, then `fsync`.
///
/// Activation does not need the zero fill (unwritten extents are accepted,
/// as by the kernel; `fallocate` + `mkswap` is enough), but this example
/// does its swap I/O through the file with `O_DIRECT`, not to the block
/// device as the kernel does: there an unwritten extent reads as zeros
/// without any device I/O and its first write converts it (a metadata
/// update). Writing every page makes swap-in and swap-out real device
/// I/O from the start, which `swap bench` and `benches/fio_compare.sh`
/// (fio on the same file) rely on.
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

// Every test here makes syscalls (files, FIEMAP, O_DIRECT, mkswap, swapon):
// none runs under Miri.
#[cfg(all(test, not(miri)))]
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
        assert_eq!(swap_extents(&sf.file, 64).unwrap().pages(), 63);
        assert_eq!(
            swap_extents(&sf.file, 10).unwrap().max(),
            10,
            "clamped to the header's pages"
        );
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

    /// A file of `pages` pages: our header at offset 0, the rest left as a
    /// hole (`ftruncate`), synced.
    fn sparse_swap_file(path: &Path, pages: u64) -> File {
        let header = SwapHeader::new(pages, Uuid::NIL, label("holey")).unwrap();
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .unwrap();
        rustix::fs::ftruncate(&f, pages * PAGE).unwrap();
        f.write_all_at(&header.to_page(), 0).unwrap();
        f.sync_all().unwrap();
        f
    }

    fn refused_hole(e: &ActivateError) -> (u64, u64) {
        match e {
            ActivateError::Extents(SwapActivateError::Refused {
                why: SwapRefusal::Hole,
                offset,
                len,
            }) => (*offset, *len),
            other => panic!("expected a refused hole, got {other:?}"),
        }
    }

    #[test]
    fn sparse_file_is_refused_naming_the_hole() {
        let dir = TestDir::new("sparse");
        let path = dir.join("swapfile");
        drop(sparse_swap_file(&path, 64));
        let e = open_swap_file(&path).unwrap_err();
        // Only the header page is allocated: the hole is the rest of the file.
        assert_eq!(refused_hole(&e), (PAGE, 63 * PAGE), "{e}");
        assert_eq!(e.errno(), EINVAL);
        let msg = e.to_string();
        assert!(
            msg.contains("unallocated extents") && msg.contains("bytes [4096, 262144)"),
            "{msg}"
        );
        assert!(
            msg.contains("sparse files cannot be used for swap"),
            "{msg}"
        );

        // A file that is all hole is refused at offset 0.
        let f = File::create(dir.join("empty")).unwrap();
        rustix::fs::ftruncate(&f, 64 * PAGE).unwrap();
        let e = swap_extents(&f, 64).unwrap_err();
        assert_eq!(refused_hole(&e), (0, 64 * PAGE), "{e}");
    }

    #[test]
    fn hole_in_the_middle_is_refused() {
        let dir = TestDir::new("middle-hole");
        let path = dir.join("swapfile");
        let f = sparse_swap_file(&path, 64);
        f.write_all_at(&[0x55; PAGE_SIZE], 63 * PAGE).unwrap();
        f.sync_all().unwrap();
        drop(f);
        let e = open_swap_file(&path).unwrap_err();
        assert_eq!(refused_hole(&e), (PAGE, 62 * PAGE), "{e}");
        assert_eq!(e.errno(), EINVAL);
        assert!(e.to_string().contains("bytes [4096, 258048)"), "{e}");
    }

    /// A punched hole that swapon(8)'s `st_blocks` heuristic misses (blocks
    /// preallocated past EOF make up for it) is found by the extent walk,
    /// which names it.
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
        assert_eq!(refused_hole(&e), (10 * PAGE, 4 * PAGE), "{e}");
        assert_eq!(e.errno(), EINVAL);
        // The header itself is intact.
        let info = check_file(&f).unwrap();
        assert_eq!(read_header(&f, info).unwrap().label, label("hidden"));
    }

    /// The kernel walks the whole file, not only the header's area: a hole
    /// past `last_page` is refused as well.
    #[test]
    fn hole_past_last_page_is_refused() {
        let dir = TestDir::new("hole-past-area");
        let path = dir.join("swapfile");
        create_swap_file(&path, 64 * PAGE, &Label::EMPTY, Uuid::NIL).unwrap();
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        f.write_all_at(
            &SwapHeader::new(32, Uuid::NIL, Label::EMPTY)
                .unwrap()
                .to_page(),
            0,
        )
        .unwrap();
        let punch = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
        if let Err(e) = rustix::fs::fallocate(&f, punch, 48 * PAGE, 2 * PAGE) {
            eprintln!("SKIP: hole punching unsupported here: {e}");
            return;
        }
        drop(f);
        let e = open_swap_file(&path).unwrap_err();
        assert_eq!(refused_hole(&e), (48 * PAGE, 2 * PAGE), "{e}");
    }

    /// fallocate without writing leaves unwritten extents, which the kernel
    /// (and so the activation) accepts: `fallocate -l && mkswap` works.
    #[test]
    fn fallocated_but_unwritten_file_is_accepted() {
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
        // Space preallocated past EOF changes nothing.
        rustix::fs::fallocate(&f, FallocateFlags::KEEP_SIZE, 64 * PAGE, 32 * PAGE).unwrap();
        let map = FiemapMap::new(&f).unwrap();
        assert!(
            map.extents()
                .iter()
                .any(|e| e.kind == iov_iter::iomap::ExtentKind::Unwritten),
            "setup: no unwritten extent"
        );
        drop(f);
        let sf = open_swap_file(&path).unwrap();
        assert_eq!(sf.max_pages(), 64);
        assert_eq!(sf.usable_pages(), 63);
        assert!(sf.activation.nr_extents >= 1);
        assert_eq!(sf.activation.span, 63, "header page excluded from the span");
    }

    /// tmpfs has no extent map (FIEMAP is EOPNOTSUPP): the file is refused
    /// with a message saying why, as the kernel refuses it.
    #[test]
    fn file_without_extent_map_is_refused_with_hint() {
        let shm = Path::new("/dev/shm");
        if crate::testutil::fs_magic(shm).ok() != Some(0x0102_1994 /* TMPFS_MAGIC */) {
            eprintln!("SKIP: /dev/shm is not a tmpfs here");
            return;
        }
        let path = shm.join(format!("iov-iter-swap-test-{}", std::process::id()));
        let created = create_swap_file(&path, 16 * PAGE, &Label::EMPTY, Uuid::NIL);
        let opened = created.map(|_| open_swap_file(&path));
        let _ = std::fs::remove_file(&path);
        match opened.unwrap() {
            Err(e @ ActivateError::Io { .. }) => {
                assert_eq!(e.errno(), 95 /* EOPNOTSUPP */, "{e}");
                assert!(e.to_string().contains("no extent map"), "{e}");
            }
            Err(e) => panic!("unexpected error {e:?}"),
            Ok(_) => eprintln!("NOTE: this kernel's tmpfs reports extents"),
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

    /// The kernel comparison: `swapon(2)` against this example's activation.
    mod kernel {
        use super::*;
        use crate::testutil::{
            EXT4_SUPER_MAGIC, XFS_SUPER_MAGIC, fs_magic, has_cap_sys_admin, kernel_swapon_pages,
        };

        const MIB: u64 = 1 << 20;
        /// The size of every file in the table.
        const SIZE: u64 = 8 * MIB;
        const EPERM: i32 = 1;

        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Verdict {
            /// Usable pages (the kernel's `si->pages`).
            Accepted(u64),
            /// The errno.
            Refused(i32),
        }

        impl std::fmt::Display for Verdict {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self {
                    Verdict::Accepted(p) => write!(f, "accepted, {p} pages"),
                    Verdict::Refused(e) => {
                        write!(f, "refused, {}", iov_iter::Errno::from_raw(*e).name())
                    }
                }
            }
        }

        /// Runs util-linux mkswap on `path` (mode 0600 first), with an
        /// explicit size in KiB if given.
        fn mkswap(mkswap: &Path, path: &Path, kib: Option<u64>) {
            std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
            let mut cmd = Command::new(mkswap);
            cmd.arg("-q").arg(path);
            if let Some(kib) = kib {
                cmd.arg(kib.to_string());
            }
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "mkswap {}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }

        fn rw(path: &Path) -> File {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .unwrap()
        }

        /// `fallocate(2)` on `path` (created if missing), then fsync.
        fn falloc(path: &Path, flags: FallocateFlags, offset: u64, len: u64) {
            let f = rw(path);
            rustix::fs::fallocate(&f, flags, offset, len)
                .unwrap_or_else(|e| panic!("fallocate {flags:?} {offset} {len}: {e}"));
            f.sync_all().unwrap();
        }

        fn punch(path: &Path, offset: u64, len: u64) {
            falloc(
                path,
                FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
                offset,
                len,
            );
        }

        /// How to make one row's file at `path` (util-linux mkswap at the
        /// given path); `Err` skips the row, saying why.
        type Make = fn(&Path, &Path) -> Result<(), String>;

        fn cases() -> Vec<(&'static str, Make)> {
            vec![
                ("dd if=/dev/zero, mkswap", |p, m| {
                    write_zero_file(p, SIZE);
                    mkswap(m, p, None);
                    Ok(())
                }),
                ("fallocate only, mkswap", |p, m| {
                    falloc(p, FallocateFlags::empty(), 0, SIZE);
                    mkswap(m, p, None);
                    Ok(())
                }),
                ("fallocate, 1 MiB written at 2 MiB, mkswap", |p, m| {
                    falloc(p, FallocateFlags::empty(), 0, SIZE);
                    let f = rw(p);
                    f.write_all_at(&vec![0xa5; MIB as usize], 2 * MIB).unwrap();
                    f.sync_all().unwrap();
                    mkswap(m, p, None);
                    Ok(())
                }),
                ("sparse (truncate -s), mkswap", |p, m| {
                    rw(p).set_len(SIZE).unwrap();
                    mkswap(m, p, None);
                    Ok(())
                }),
                ("dd, mkswap, hole punched at 1 MiB (64 KiB)", |p, m| {
                    write_zero_file(p, SIZE);
                    mkswap(m, p, None);
                    punch(p, MIB, 64 << 10);
                    Ok(())
                }),
                (
                    "dd, mkswap 4096 KiB, hole at 6 MiB (past last_page)",
                    |p, m| {
                        write_zero_file(p, SIZE);
                        mkswap(m, p, Some(4096));
                        punch(p, 6 * MIB, 64 << 10);
                        Ok(())
                    },
                ),
                ("dd, mkswap 4096 KiB (header < file, no hole)", |p, m| {
                    write_zero_file(p, SIZE);
                    mkswap(m, p, Some(4096));
                    Ok(())
                }),
                (
                    "dd, mkswap, fallocate --keep-size 4 MiB past EOF",
                    |p, m| {
                        write_zero_file(p, SIZE);
                        mkswap(m, p, None);
                        falloc(p, FallocateFlags::KEEP_SIZE, SIZE, 4 * MIB);
                        Ok(())
                    },
                ),
                (
                    "dd 8 MiB + 1000 bytes (not a page multiple), mkswap",
                    |p, m| {
                        write_zero_file(p, SIZE + 1000);
                        mkswap(m, p, None);
                        Ok(())
                    },
                ),
                (
                    "dd, header promising 100 pages more than the file",
                    |p, _| {
                        write_zero_file(p, SIZE);
                        let h =
                            SwapHeader::new(SIZE / PAGE + 100, Uuid::NIL, Label::EMPTY).unwrap();
                        let f = rw(p);
                        f.write_all_at(&h.to_page(), 0).unwrap();
                        f.sync_all().unwrap();
                        Ok(())
                    },
                ),
                ("dd, mkswap, cp --reflink=always", |p, m| {
                    let src = p.with_extension("reflink-src");
                    write_zero_file(&src, SIZE);
                    mkswap(m, &src, None);
                    let out = Command::new("cp")
                        .arg("--reflink=always")
                        .arg(&src)
                        .arg(p)
                        .output()
                        .map_err(|e| format!("running cp: {e}"))?;
                    if !out.status.success() {
                        return Err(format!(
                            "cp --reflink=always failed (no reflinks on this filesystem, \
                             e.g. ext4): {}",
                            String::from_utf8_lossy(&out.stderr).trim()
                        ));
                    }
                    Ok(())
                }),
            ]
        }

        /// Every row: the example's activation and the kernel's `swapon(2)`
        /// agree on acceptance and usable pages, and on EINVAL.
        #[test]
        fn activation_agrees_with_the_kernels_swapon() {
            if !has_cap_sys_admin() {
                eprintln!(
                    "\n******** SKIP activation_agrees_with_the_kernels_swapon: swapon(2) needs \
                     CAP_SYS_ADMIN (run as root) ********\n"
                );
                return;
            }
            let Some(mkswap_bin) = require_tool("mkswap") else {
                return;
            };
            let dir = TestDir::new("kernel-swapon");
            let magic = fs_magic(dir.path()).unwrap();
            if magic != EXT4_SUPER_MAGIC && magic != XFS_SUPER_MAGIC {
                eprintln!(
                    "\n******** SKIP activation_agrees_with_the_kernels_swapon: {} is on a \
                     filesystem of type {magic:#x}, not ext4 or XFS (the iomap swapfile rules \
                     this example follows) ********\n",
                    dir.path().display()
                );
                return;
            }
            let mut rows = Vec::new();
            for (i, (case, make)) in cases().into_iter().enumerate() {
                let path = dir.join(&format!("case{i}.swap"));
                if let Err(why) = make(&path, &mkswap_bin) {
                    eprintln!("\n******** SKIP row \"{case}\": {why} ********\n");
                    rows.push((case, None, None, String::new()));
                    continue;
                }
                let (example, why) = match open_swap_file(&path) {
                    Ok(sf) => (
                        Verdict::Accepted(sf.usable_pages()),
                        format!(
                            "example: extents:{} across:{}k",
                            sf.activation.nr_extents,
                            sf.activation.span * 4
                        ),
                    ),
                    Err(e) => (Verdict::Refused(e.errno()), e.to_string()),
                };
                let kernel = match kernel_swapon_pages(&path) {
                    Ok(pages) => Verdict::Accepted(pages),
                    Err(e) if e.raw_os_error() == Some(EPERM) => {
                        eprintln!(
                            "\n******** SKIP activation_agrees_with_the_kernels_swapon: swapon: \
                             {e}: needs CAP_SYS_ADMIN ********\n"
                        );
                        return;
                    }
                    Err(e) => Verdict::Refused(e.raw_os_error().unwrap_or(0)),
                };
                rows.push((case, Some(kernel), Some(example), why));
            }

            let show =
                |v: &Option<Verdict>| v.map_or_else(|| "SKIPPED".to_owned(), |v| v.to_string());
            let mut table = format!("\n{:<54} {:<24} {:<24}\n", "case", "kernel", "example");
            for (case, kernel, example, why) in &rows {
                table += &format!("{case:<54} {:<24} {:<24}\n", show(kernel), show(example));
                if !why.is_empty() {
                    table += &format!("{:<54} ({why})\n", "");
                }
            }
            eprintln!("{table}");

            let mut disagree = Vec::new();
            for (case, kernel, example, _) in &rows {
                let (Some(kernel), Some(example)) = (kernel, example) else {
                    continue;
                };
                let agree = match (kernel, example) {
                    (Verdict::Accepted(k), Verdict::Accepted(e)) => k == e,
                    (Verdict::Refused(EINVAL), Verdict::Refused(e)) => *e == EINVAL,
                    (Verdict::Refused(_), Verdict::Refused(_)) => true,
                    _ => false,
                };
                if !agree {
                    disagree.push(format!("{case}: kernel {kernel}, example {example}"));
                }
            }
            assert!(
                disagree.is_empty(),
                "the example disagrees with swapon(2):\n{}",
                disagree.join("\n")
            );
            assert!(
                rows.iter()
                    .any(|r| matches!(r.1, Some(Verdict::Accepted(_))))
                    && rows
                        .iter()
                        .any(|r| matches!(r.1, Some(Verdict::Refused(_)))),
                "the table should have both accepted and refused rows"
            );
        }
    }
}
