//! The swap area header: one 4096-byte page at offset 0 of a swap file.
//!
//! Linux reference: `union swap_header` in `include/linux/swap.h`,
//! `read_swap_header()` in `mm/swapfile.c`, and util-linux `mkswap`.
//!
//! Layout of the version-1 header (`SWAPSPACE2`), all integers in the byte
//! order of whoever wrote it:
//!
//! | offset          | size | field                                   |
//! |-----------------|------|-----------------------------------------|
//! | 0               | 1024 | `bootbits` (zeroed by mkswap)           |
//! | 1024            | 4    | `version` (must be 1)                   |
//! | 1028            | 4    | `last_page` (index of last usable page) |
//! | 1032            | 4    | `nr_badpages`                           |
//! | 1036            | 16   | `sws_uuid`                              |
//! | 1052            | 16   | `sws_volume` (label, NUL padded)        |
//! | 1068            | 468  | padding                                 |
//! | 1536            | 4·n  | `badpages[nr_badpages]`                 |
//! | PAGE_SIZE - 10  | 10   | magic `"SWAPSPACE2"`                    |
//!
//! This module is pure byte manipulation; no I/O except `getrandom` for
//! [`Uuid::new_v4`].

use std::fmt;
use std::str::FromStr;

/// Size of the header page and of every swap slot. The format ties the magic's
/// position to the page size; this crate only speaks 4 KiB pages.
pub const PAGE_SIZE: usize = 4096;

/// mkswap refuses areas smaller than this many pages (header included).
pub const MIN_GOODPAGES: u64 = 10;

/// Offset of the `version` field (end of `bootbits`).
pub const VERSION_OFFSET: usize = 1024;
/// Offset of `last_page`.
pub const LAST_PAGE_OFFSET: usize = 1028;
/// Offset of `nr_badpages`.
pub const NR_BADPAGES_OFFSET: usize = 1032;
/// Offset of the 16-byte UUID.
pub const UUID_OFFSET: usize = 1036;
/// Offset of the 16-byte volume label.
pub const LABEL_OFFSET: usize = 1052;
/// Offset of the `badpages[]` array.
pub const BADPAGES_OFFSET: usize = 1536;
/// Offset of the 10-byte magic.
pub const MAGIC_OFFSET: usize = PAGE_SIZE - MAGIC_LEN;
/// Length of the magic.
pub const MAGIC_LEN: usize = 10;
/// Current (version 1) signature.
pub const MAGIC_V1: &[u8; MAGIC_LEN] = b"SWAPSPACE2";
/// Ancient version 0 signature, no longer supported by Linux.
pub const MAGIC_V0: &[u8; MAGIC_LEN] = b"SWAP-SPACE";
/// Maximum length of a label in bytes.
pub const LABEL_LEN: usize = 16;
/// Room for bad page entries between `badpages` and the magic: 637 with
/// 4 KiB pages (mkswap: `(ps - 1024 - 512 - 10) / 4`).
pub const MAX_SWAP_BADPAGES: u32 = ((MAGIC_OFFSET - BADPAGES_OFFSET) / 4) as u32;

const _: () = assert!(MAX_SWAP_BADPAGES == 637);

/// `EINVAL`, the errno swapon(2) returns for every header rejection.
pub const EINVAL: i32 = 22;

/// Everything that can be wrong with a swap header, its label or its UUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Neither `SWAPSPACE2` nor `SWAP-SPACE` at `PAGE_SIZE - 10`.
    NoSignature,
    /// The ancient version-0 `SWAP-SPACE` bitmap format.
    OldV0Signature,
    /// `nr_badpages` exceeds [`MAX_SWAP_BADPAGES`].
    TooManyBadPages {
        /// The count found (or requested).
        nr_badpages: u32,
    },
    /// `version` is neither 1 nor byte-swapped 1.
    UnsupportedVersion {
        /// The version field as read (in the detected byte order).
        version: u32,
    },
    /// `last_page == 0`.
    EmptySwapFile,
    /// The file holds fewer pages than `last_page + 1`.
    AreaShorterThanSignature {
        /// Pages the header claims (`last_page + 1`).
        header_pages: u64,
        /// Whole pages in the file.
        file_pages: u64,
    },
    /// A regular file must not list bad pages.
    BadPagesOnRegularFile {
        /// The count found.
        nr_badpages: u32,
    },
    /// A bad page entry is the header page or beyond `last_page`.
    BadPageOutOfRange {
        /// The entry.
        page: u32,
        /// The header's `last_page`.
        last_page: u32,
    },
    /// Fewer than [`MIN_GOODPAGES`] pages requested.
    AreaTooSmall {
        /// Pages requested (header included).
        pages: u64,
    },
    /// Label longer than 16 bytes.
    LabelTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// Label contains a NUL byte (the on-disk label is NUL terminated/padded).
    LabelContainsNul,
    /// Text that is not an 8-4-4-4-12 hex UUID.
    InvalidUuid {
        /// The rejected input.
        input: String,
    },
    /// `getrandom(2)` failed while generating a UUID.
    Random(rustix::io::Errno),
}

impl HeaderError {
    /// The positive errno for this error. Every header rejection is `EINVAL`,
    /// as in swapon(2); a `getrandom` failure keeps its own errno.
    pub fn errno(&self) -> i32 {
        match self {
            HeaderError::Random(e) => e.raw_os_error(),
            _ => EINVAL,
        }
    }
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::NoSignature => write!(
                f,
                "unable to find swap-space signature (no \"SWAPSPACE2\" at offset {MAGIC_OFFSET})"
            ),
            HeaderError::OldV0Signature => write!(
                f,
                "old swap format v0 (\"SWAP-SPACE\") is not supported; re-create the area with mkswap"
            ),
            HeaderError::TooManyBadPages { nr_badpages } => write!(
                f,
                "swap header lists {nr_badpages} bad pages, more than the maximum {MAX_SWAP_BADPAGES}"
            ),
            HeaderError::UnsupportedVersion { version } => {
                write!(f, "unable to handle swap header version {version}")
            }
            HeaderError::EmptySwapFile => write!(f, "empty swap file (last_page is 0)"),
            HeaderError::AreaShorterThanSignature {
                header_pages,
                file_pages,
            } => write!(
                f,
                "swap area shorter than signature indicates: header says {header_pages} pages, \
                 file holds {file_pages}"
            ),
            HeaderError::BadPagesOnRegularFile { nr_badpages } => write!(
                f,
                "swap header lists {nr_badpages} bad pages, but bad pages are not allowed in a regular file"
            ),
            HeaderError::BadPageOutOfRange { page, last_page } => write!(
                f,
                "bad page entry {page} is outside the swap area (valid: 1..={last_page})"
            ),
            HeaderError::AreaTooSmall { pages } => write!(
                f,
                "swap area needs to be at least {} KiB ({MIN_GOODPAGES} pages), got {pages} pages",
                MIN_GOODPAGES * PAGE_SIZE as u64 / 1024
            ),
            HeaderError::LabelTooLong { len } => write!(
                f,
                "swap label is {len} bytes long, at most {LABEL_LEN} bytes fit in the header"
            ),
            HeaderError::LabelContainsNul => write!(f, "swap label must not contain NUL bytes"),
            HeaderError::InvalidUuid { input } => write!(
                f,
                "invalid UUID {input:?}: expected 8-4-4-4-12 hexadecimal digits"
            ),
            HeaderError::Random(e) => write!(f, "getrandom failed while generating a UUID: {e}"),
        }
    }
}

impl std::error::Error for HeaderError {}

// ---------------------------------------------------------------------------
// UUID
// ---------------------------------------------------------------------------

/// A 16-byte UUID as stored in `sws_uuid` (RFC 4122 byte order, which is
/// also the order blkid and mkswap print).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// The all-zero UUID (`mkswap -U clear`).
    pub const NIL: Uuid = Uuid([0; 16]);

    /// Wraps raw bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Uuid {
        Uuid(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Whether this is the all-zero UUID.
    pub fn is_nil(&self) -> bool {
        self.0 == [0; 16]
    }

    /// A random (version 4, RFC 4122 variant) UUID from `getrandom(2)`.
    pub fn new_v4() -> Result<Uuid, HeaderError> {
        let mut b = [0u8; 16];
        let mut filled = 0;
        while filled < b.len() {
            match rustix::rand::getrandom(&mut b[filled..], rustix::rand::GetRandomFlags::empty()) {
                Ok(n) => filled += n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(HeaderError::Random(e)),
            }
        }
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Ok(Uuid(b))
    }

    /// The version nibble (4 for random UUIDs).
    pub fn version(&self) -> u8 {
        self.0[6] >> 4
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uuid({self})")
    }
}

impl FromStr for Uuid {
    type Err = HeaderError;

    /// Parses the canonical 36-character `8-4-4-4-12` form (either case).
    fn from_str(s: &str) -> Result<Uuid, HeaderError> {
        let invalid = || HeaderError::InvalidUuid {
            input: s.to_owned(),
        };
        let bytes = s.as_bytes();
        if bytes.len() != 36 {
            return Err(invalid());
        }
        let mut out = [0u8; 16];
        let mut nibbles = 0usize;
        for (i, &c) in bytes.iter().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                if c != b'-' {
                    return Err(invalid());
                }
                continue;
            }
            let v = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return Err(invalid()),
            };
            out[nibbles / 2] |= if nibbles % 2 == 0 { v << 4 } else { v };
            nibbles += 1;
        }
        debug_assert_eq!(nibbles, 32);
        Ok(Uuid(out))
    }
}

// ---------------------------------------------------------------------------
// Label
// ---------------------------------------------------------------------------

/// A swap volume label: at most 16 bytes, no NUL, stored NUL padded.
///
/// Unlike mkswap, which truncates a long label with a warning, [`Label::new`]
/// rejects labels longer than 16 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Label {
    bytes: [u8; LABEL_LEN],
    len: u8,
}

impl Label {
    /// The empty label (`sws_volume` all zero).
    pub const EMPTY: Label = Label {
        bytes: [0; LABEL_LEN],
        len: 0,
    };

    /// A label from text; errors if longer than 16 bytes or containing NUL.
    pub fn new(label: &str) -> Result<Label, HeaderError> {
        Label::from_bytes(label.as_bytes())
    }

    /// A label from raw bytes; errors if longer than 16 bytes or containing NUL.
    pub fn from_bytes(label: &[u8]) -> Result<Label, HeaderError> {
        if label.len() > LABEL_LEN {
            return Err(HeaderError::LabelTooLong { len: label.len() });
        }
        if label.contains(&0) {
            return Err(HeaderError::LabelContainsNul);
        }
        let mut bytes = [0u8; LABEL_LEN];
        bytes[..label.len()].copy_from_slice(label);
        Ok(Label {
            bytes,
            len: label.len() as u8,
        })
    }

    /// Decodes the on-disk `sws_volume` field: bytes up to the first NUL (or
    /// all 16 if there is none). Never fails.
    pub fn from_disk(field: &[u8; LABEL_LEN]) -> Label {
        let len = field.iter().position(|&b| b == 0).unwrap_or(LABEL_LEN);
        let mut bytes = [0u8; LABEL_LEN];
        bytes[..len].copy_from_slice(&field[..len]);
        Label {
            bytes,
            len: len as u8,
        }
    }

    /// The label bytes, without padding.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// The 16-byte on-disk field (NUL padded).
    pub fn to_disk(self) -> [u8; LABEL_LEN] {
        self.bytes
    }

    /// Whether the label is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The label as UTF-8 text, if it is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()).ok()
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Label({:?})", String::from_utf8_lossy(self.as_bytes()))
    }
}

impl FromStr for Label {
    type Err = HeaderError;
    fn from_str(s: &str) -> Result<Label, HeaderError> {
        Label::new(s)
    }
}

// ---------------------------------------------------------------------------
// Header
// ---------------------------------------------------------------------------

/// Byte order of the header's integer fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    /// Little endian.
    Little,
    /// Big endian.
    Big,
}

impl Endian {
    /// The byte order of the machine running this code.
    pub const NATIVE: Endian = if cfg!(target_endian = "big") {
        Endian::Big
    } else {
        Endian::Little
    };

    fn put(self, page: &mut [u8], off: usize, v: u32) {
        let b = match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        };
        page[off..off + 4].copy_from_slice(&b);
    }
}

/// What the caller knows about the area the header was read from; the
/// kernel's `read_swap_header` needs both facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AreaInfo {
    /// Size of the file or device in whole pages (`i_size >> PAGE_SHIFT`).
    /// `None` skips the "shorter than signature" check (the kernel skips it
    /// when the size is 0, i.e. unknown).
    pub size_pages: Option<u64>,
    /// True for a regular file (bad pages are then forbidden), false for a
    /// block device.
    pub regular_file: bool,
}

impl AreaInfo {
    /// A regular file of `size_bytes` bytes (rounded down to whole pages).
    pub fn regular_file(size_bytes: u64) -> AreaInfo {
        AreaInfo {
            size_pages: Some(size_bytes / PAGE_SIZE as u64),
            regular_file: true,
        }
    }
}

/// A parsed or to-be-written version-1 swap header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapHeader {
    /// Index of the last usable page; the area is `last_page + 1` pages,
    /// page 0 being this header.
    pub last_page: u32,
    /// Volume UUID.
    pub uuid: Uuid,
    /// Volume label.
    pub label: Label,
    /// Bad page indices (only for block devices; must be empty in a file).
    pub badpages: Vec<u32>,
    /// Byte order the header was found in (or will be written in).
    pub endian: Endian,
}

impl SwapHeader {
    /// Header for an area of `pages` pages (header page included), like
    /// `mkswap`: `last_page = pages - 1`, no bad pages, native byte order.
    ///
    /// Errors with [`HeaderError::AreaTooSmall`] below [`MIN_GOODPAGES`].
    /// More than 2^32 pages are truncated to `u32::MAX` pages, as mkswap
    /// does (with a warning there).
    pub fn new(pages: u64, uuid: Uuid, label: Label) -> Result<SwapHeader, HeaderError> {
        if pages < MIN_GOODPAGES {
            return Err(HeaderError::AreaTooSmall { pages });
        }
        let pages = pages.min(u64::from(u32::MAX));
        Ok(SwapHeader {
            last_page: (pages - 1) as u32,
            uuid,
            label,
            badpages: Vec::new(),
            endian: Endian::NATIVE,
        })
    }

    /// Replaces the bad page list (block devices only). Entries must lie in
    /// `1..=last_page` and be at most [`MAX_SWAP_BADPAGES`].
    pub fn with_badpages(mut self, badpages: Vec<u32>) -> Result<SwapHeader, HeaderError> {
        if badpages.len() > MAX_SWAP_BADPAGES as usize {
            return Err(HeaderError::TooManyBadPages {
                nr_badpages: badpages.len().try_into().unwrap_or(u32::MAX),
            });
        }
        check_badpages(&badpages, self.last_page)?;
        self.badpages = badpages;
        Ok(self)
    }

    /// Number of pages in the area, header included (`last_page + 1`): the
    /// kernel's `maxpages`, i.e. the number of swap-map slots.
    pub fn max_pages(&self) -> u64 {
        u64::from(self.last_page) + 1
    }

    /// Serialises into one page, in `self.endian` byte order: bootbits and
    /// padding zeroed, fields, bad pages, then the `SWAPSPACE2` magic.
    pub fn to_page(&self) -> [u8; PAGE_SIZE] {
        let mut page = [0u8; PAGE_SIZE];
        self.write_page(&mut page);
        page
    }

    /// Like [`to_page`](Self::to_page) but into a caller-provided page (for
    /// example an aligned O_DIRECT buffer). The whole page is overwritten.
    pub fn write_page(&self, page: &mut [u8; PAGE_SIZE]) {
        assert!(self.badpages.len() <= MAX_SWAP_BADPAGES as usize);
        page.fill(0);
        let e = self.endian;
        e.put(page, VERSION_OFFSET, 1);
        e.put(page, LAST_PAGE_OFFSET, self.last_page);
        e.put(page, NR_BADPAGES_OFFSET, self.badpages.len() as u32);
        page[UUID_OFFSET..UUID_OFFSET + 16].copy_from_slice(&self.uuid.0);
        page[LABEL_OFFSET..LABEL_OFFSET + LABEL_LEN].copy_from_slice(&self.label.to_disk());
        for (i, &bad) in self.badpages.iter().enumerate() {
            e.put(page, BADPAGES_OFFSET + 4 * i, bad);
        }
        page[MAGIC_OFFSET..].copy_from_slice(MAGIC_V1);
    }

    /// Parses a header page following the kernel's `read_swap_header`, in its
    /// order:
    ///
    /// 1. magic must be `SWAPSPACE2` (`SWAP-SPACE` gets its own error);
    /// 2. if `swab32(version) == 1` the header was written in the other byte
    ///    order: swap the fields, rejecting `nr_badpages > 637` before
    ///    touching the bad page array;
    /// 3. `version == 1`;
    /// 4. `last_page != 0`;
    /// 5. the area (`last_page + 1` pages) must fit in `area.size_pages`;
    /// 6. no bad pages on a regular file;
    /// 7. `nr_badpages <= 637`.
    ///
    /// Then, like `setup_swap_map`, every bad page must lie in `1..=last_page`.
    pub fn parse(page: &[u8; PAGE_SIZE], area: AreaInfo) -> Result<SwapHeader, HeaderError> {
        let magic = &page[MAGIC_OFFSET..];
        if magic != MAGIC_V1 {
            return Err(if magic == MAGIC_V0 {
                HeaderError::OldV0Signature
            } else {
                HeaderError::NoSignature
            });
        }

        let raw = |off: usize| u32::from_ne_bytes(page[off..off + 4].try_into().unwrap());
        let mut version = raw(VERSION_OFFSET);
        let mut last_page = raw(LAST_PAGE_OFFSET);
        let mut nr_badpages = raw(NR_BADPAGES_OFFSET);
        let mut swapped = false;
        if version.swap_bytes() == 1 {
            swapped = true;
            version = version.swap_bytes();
            last_page = last_page.swap_bytes();
            nr_badpages = nr_badpages.swap_bytes();
            if nr_badpages > MAX_SWAP_BADPAGES {
                return Err(HeaderError::TooManyBadPages { nr_badpages });
            }
        }
        let endian = match (swapped, Endian::NATIVE) {
            (false, e) => e,
            (true, Endian::Little) => Endian::Big,
            (true, Endian::Big) => Endian::Little,
        };

        if version != 1 {
            return Err(HeaderError::UnsupportedVersion { version });
        }
        if last_page == 0 {
            return Err(HeaderError::EmptySwapFile);
        }
        let header_pages = u64::from(last_page) + 1;
        if let Some(file_pages) = area.size_pages {
            if header_pages > file_pages {
                return Err(HeaderError::AreaShorterThanSignature {
                    header_pages,
                    file_pages,
                });
            }
        }
        if nr_badpages != 0 && area.regular_file {
            return Err(HeaderError::BadPagesOnRegularFile { nr_badpages });
        }
        if nr_badpages > MAX_SWAP_BADPAGES {
            return Err(HeaderError::TooManyBadPages { nr_badpages });
        }

        let badpages: Vec<u32> = (0..nr_badpages as usize)
            .map(|i| {
                let v = raw(BADPAGES_OFFSET + 4 * i);
                if swapped { v.swap_bytes() } else { v }
            })
            .collect();
        check_badpages(&badpages, last_page)?;

        let uuid = Uuid(page[UUID_OFFSET..UUID_OFFSET + 16].try_into().unwrap());
        let label = Label::from_disk(
            page[LABEL_OFFSET..LABEL_OFFSET + LABEL_LEN]
                .try_into()
                .unwrap(),
        );
        Ok(SwapHeader {
            last_page,
            uuid,
            label,
            badpages,
            endian,
        })
    }
}

fn check_badpages(badpages: &[u32], last_page: u32) -> Result<(), HeaderError> {
    match badpages.iter().find(|&&p| p == 0 || p > last_page) {
        Some(&page) => Err(HeaderError::BadPageOutOfRange { page, last_page }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_area(pages: u64) -> AreaInfo {
        AreaInfo {
            size_pages: Some(pages),
            regular_file: true,
        }
    }

    fn bdev_area(pages: u64) -> AreaInfo {
        AreaInfo {
            size_pages: Some(pages),
            regular_file: false,
        }
    }

    fn sample() -> SwapHeader {
        SwapHeader::new(
            64,
            "0123abcd-4567-4def-89ab-cdef01234567".parse().unwrap(),
            Label::new("demo-swap").unwrap(),
        )
        .unwrap()
    }

    fn put_ne(page: &mut [u8; PAGE_SIZE], off: usize, v: u32) {
        page[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    }

    #[test]
    fn layout_matches_mkswap() {
        let h = sample();
        let p = h.to_page();
        assert!(p[..1024].iter().all(|&b| b == 0), "bootbits zeroed");
        assert_eq!(&p[1024..1028], &1u32.to_le_bytes());
        assert_eq!(&p[1028..1032], &63u32.to_le_bytes());
        assert_eq!(&p[1032..1036], &0u32.to_le_bytes());
        assert_eq!(&p[1036..1052], h.uuid.as_bytes());
        assert_eq!(&p[1052..1061], b"demo-swap");
        assert!(p[1061..1068].iter().all(|&b| b == 0), "label NUL padded");
        assert!(p[1068..PAGE_SIZE - 10].iter().all(|&b| b == 0));
        assert_eq!(&p[4086..], b"SWAPSPACE2");
    }

    #[test]
    fn round_trip() {
        let h = sample();
        let parsed = SwapHeader::parse(&h.to_page(), file_area(64)).unwrap();
        assert_eq!(parsed, h);
        assert_eq!(parsed.max_pages(), 64);
        assert_eq!(parsed.endian, Endian::NATIVE);
        // A longer file is fine; the header decides the area size.
        assert_eq!(SwapHeader::parse(&h.to_page(), file_area(1000)).unwrap(), h);
        // Unknown size skips the length check.
        let unknown = AreaInfo {
            size_pages: None,
            regular_file: true,
        };
        assert_eq!(SwapHeader::parse(&h.to_page(), unknown).unwrap(), h);
    }

    #[test]
    fn round_trip_with_badpages_on_block_device() {
        let h = sample().with_badpages(vec![5, 7, 63]).unwrap();
        let p = h.to_page();
        assert_eq!(&p[1032..1036], &3u32.to_le_bytes());
        assert_eq!(&p[1536..1540], &5u32.to_le_bytes());
        assert_eq!(SwapHeader::parse(&p, bdev_area(64)).unwrap(), h);
    }

    #[test]
    fn too_small_area_is_rejected() {
        let e = SwapHeader::new(9, Uuid::NIL, Label::EMPTY).unwrap_err();
        assert_eq!(e, HeaderError::AreaTooSmall { pages: 9 });
        assert_eq!(e.errno(), EINVAL);
        assert!(e.to_string().contains("at least 40 KiB"), "{e}");
        assert!(SwapHeader::new(10, Uuid::NIL, Label::EMPTY).is_ok());
    }

    #[test]
    fn huge_area_is_truncated_to_u32() {
        let h = SwapHeader::new(1 << 40, Uuid::NIL, Label::EMPTY).unwrap();
        assert_eq!(h.last_page, u32::MAX - 1);
    }

    #[test]
    fn wrong_magic() {
        let mut p = sample().to_page();
        p[PAGE_SIZE - 1] = b'3';
        let e = SwapHeader::parse(&p, file_area(64)).unwrap_err();
        assert_eq!(e, HeaderError::NoSignature);
        assert_eq!(e.errno(), EINVAL);
        assert!(e.to_string().contains("swap-space signature"));
        // An all-zero page too.
        let e = SwapHeader::parse(&[0; PAGE_SIZE], file_area(64)).unwrap_err();
        assert_eq!(e, HeaderError::NoSignature);
    }

    #[test]
    fn v0_magic_has_its_own_error() {
        let mut p = sample().to_page();
        p[MAGIC_OFFSET..].copy_from_slice(MAGIC_V0);
        let e = SwapHeader::parse(&p, file_area(64)).unwrap_err();
        assert_eq!(e, HeaderError::OldV0Signature);
        assert_eq!(e.errno(), EINVAL);
        assert!(e.to_string().contains("v0"));
    }

    #[test]
    fn wrong_version() {
        let mut p = sample().to_page();
        put_ne(&mut p, VERSION_OFFSET, 2);
        let e = SwapHeader::parse(&p, file_area(64)).unwrap_err();
        assert_eq!(e, HeaderError::UnsupportedVersion { version: 2 });
        assert_eq!(e.errno(), EINVAL);
        put_ne(&mut p, VERSION_OFFSET, 0);
        assert_eq!(
            SwapHeader::parse(&p, file_area(64)).unwrap_err(),
            HeaderError::UnsupportedVersion { version: 0 }
        );
    }

    #[test]
    fn byte_swapped_header_is_accepted() {
        let other = match Endian::NATIVE {
            Endian::Little => Endian::Big,
            Endian::Big => Endian::Little,
        };
        let mut h = sample()
            .with_badpages(vec![2, 0x0102_0304 % 63 + 1])
            .unwrap();
        h.endian = other;
        let p = h.to_page();
        // Really written in the other order.
        assert_eq!(
            u32::from_ne_bytes(p[1028..1032].try_into().unwrap()),
            63u32.swap_bytes()
        );
        let parsed = SwapHeader::parse(&p, bdev_area(64)).unwrap();
        assert_eq!(parsed.last_page, 63);
        assert_eq!(parsed.badpages, h.badpages);
        assert_eq!(parsed.endian, other);
        assert_eq!(parsed.uuid, h.uuid);
        assert_eq!(parsed.label, h.label);

        // Big-endian specifically, as mkswap -e big writes it.
        let mut be = sample();
        be.endian = Endian::Big;
        let p = be.to_page();
        assert_eq!(&p[1024..1028], &[0, 0, 0, 1]);
        let parsed = SwapHeader::parse(&p, file_area(64)).unwrap();
        assert_eq!(parsed.last_page, 63);
        assert_eq!(parsed.endian, Endian::Big);
    }

    #[test]
    fn too_many_bad_pages() {
        // Native order: checked last (after the regular-file check), so use a
        // block device.
        let mut p = sample().to_page();
        put_ne(&mut p, NR_BADPAGES_OFFSET, MAX_SWAP_BADPAGES + 1);
        let e = SwapHeader::parse(&p, bdev_area(64)).unwrap_err();
        assert_eq!(e, HeaderError::TooManyBadPages { nr_badpages: 638 });
        assert_eq!(e.errno(), EINVAL);
        // On a regular file the "bad pages in a file" rule fires first.
        assert_eq!(
            SwapHeader::parse(&p, file_area(64)).unwrap_err(),
            HeaderError::BadPagesOnRegularFile { nr_badpages: 638 }
        );
        // Swapped order: checked immediately after swapping, before version.
        let mut h = sample();
        h.endian = match Endian::NATIVE {
            Endian::Little => Endian::Big,
            Endian::Big => Endian::Little,
        };
        let mut p = h.to_page();
        put_ne(&mut p, NR_BADPAGES_OFFSET, 5000u32.swap_bytes());
        put_ne(&mut p, LAST_PAGE_OFFSET, 0);
        assert_eq!(
            SwapHeader::parse(&p, file_area(64)).unwrap_err(),
            HeaderError::TooManyBadPages { nr_badpages: 5000 }
        );
        // Building one with too many is refused as well.
        let e = sample().with_badpages(vec![1; 638]).unwrap_err();
        assert_eq!(e, HeaderError::TooManyBadPages { nr_badpages: 638 });
        // Exactly the maximum is fine on a block device.
        let big = SwapHeader::new(1000, Uuid::NIL, Label::EMPTY)
            .unwrap()
            .with_badpages((1..=637).collect())
            .unwrap();
        assert_eq!(
            SwapHeader::parse(&big.to_page(), bdev_area(1000))
                .unwrap()
                .badpages
                .len(),
            637
        );
    }

    #[test]
    fn empty_swap_file() {
        let mut p = sample().to_page();
        put_ne(&mut p, LAST_PAGE_OFFSET, 0);
        let e = SwapHeader::parse(&p, file_area(64)).unwrap_err();
        assert_eq!(e, HeaderError::EmptySwapFile);
        assert_eq!(e.errno(), EINVAL);
        assert!(e.to_string().contains("empty swap file"));
    }

    #[test]
    fn file_shorter_than_header() {
        let p = sample().to_page();
        let e = SwapHeader::parse(&p, file_area(63)).unwrap_err();
        assert_eq!(
            e,
            HeaderError::AreaShorterThanSignature {
                header_pages: 64,
                file_pages: 63
            }
        );
        assert_eq!(e.errno(), EINVAL);
        assert!(e.to_string().contains("shorter than signature"));
        let e = SwapHeader::parse(&p, AreaInfo::regular_file(64 * 4096 - 1)).unwrap_err();
        assert!(matches!(e, HeaderError::AreaShorterThanSignature { .. }));
    }

    #[test]
    fn bad_pages_on_regular_file() {
        let p = sample().with_badpages(vec![3]).unwrap().to_page();
        let e = SwapHeader::parse(&p, file_area(64)).unwrap_err();
        assert_eq!(e, HeaderError::BadPagesOnRegularFile { nr_badpages: 1 });
        assert_eq!(e.errno(), EINVAL);
        assert!(SwapHeader::parse(&p, bdev_area(64)).is_ok());
    }

    #[test]
    fn bad_page_out_of_range() {
        let mut p = sample().with_badpages(vec![3]).unwrap().to_page();
        put_ne(&mut p, BADPAGES_OFFSET, 64);
        assert_eq!(
            SwapHeader::parse(&p, bdev_area(64)).unwrap_err(),
            HeaderError::BadPageOutOfRange {
                page: 64,
                last_page: 63
            }
        );
        put_ne(&mut p, BADPAGES_OFFSET, 0);
        assert!(matches!(
            SwapHeader::parse(&p, bdev_area(64)).unwrap_err(),
            HeaderError::BadPageOutOfRange { page: 0, .. }
        ));
        assert!(sample().with_badpages(vec![0]).is_err());
    }

    #[test]
    fn uuid_display_and_parse() {
        let s = "0123abcd-4567-4def-89ab-cdef01234567";
        let u: Uuid = s.parse().unwrap();
        assert_eq!(u.0[0], 0x01);
        assert_eq!(u.0[15], 0x67);
        assert_eq!(u.to_string(), s);
        let upper: Uuid = s.to_uppercase().parse().unwrap();
        assert_eq!(upper, u);
        assert_eq!(
            Uuid::NIL.to_string(),
            "00000000-0000-0000-0000-000000000000"
        );
        for bad in [
            "",
            "0123abcd45674def89abcdef01234567",
            "0123abcd-4567-4def-89ab-cdef0123456",
            "0123abcd-4567-4def-89ab-cdef012345678",
            "0123abcd_4567-4def-89ab-cdef01234567",
            "0123abcg-4567-4def-89ab-cdef01234567",
            "0123abcd-4567-4def-89ab-cdef01234567 ",
        ] {
            let e = bad.parse::<Uuid>().unwrap_err();
            assert!(matches!(e, HeaderError::InvalidUuid { .. }), "{bad:?}");
            assert_eq!(e.errno(), EINVAL);
        }
    }

    #[test]
    fn uuid_v4_is_random_and_well_formed() {
        let a = Uuid::new_v4().unwrap();
        let b = Uuid::new_v4().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.version(), 4);
        assert_eq!(a.0[8] & 0xc0, 0x80);
        assert_eq!(a.to_string().parse::<Uuid>().unwrap(), a);
    }

    #[test]
    fn label_rules() {
        assert_eq!(Label::new("").unwrap(), Label::EMPTY);
        let l = Label::new("exactly16bytes!!").unwrap();
        assert_eq!(l.as_bytes().len(), 16);
        assert_eq!(l.to_string(), "exactly16bytes!!");
        let e = Label::new("seventeen bytes!!").unwrap_err();
        assert_eq!(e, HeaderError::LabelTooLong { len: 17 });
        assert_eq!(e.errno(), EINVAL);
        assert!(e.to_string().contains("at most 16"));
        assert_eq!(
            Label::new("a\0b").unwrap_err(),
            HeaderError::LabelContainsNul
        );
        // Multi-byte UTF-8 counts bytes, like mkswap.
        assert!(Label::new("ääääääää").is_ok());
        assert!(Label::new("äääääääää").is_err());
        // A 16-byte label has no terminating NUL on disk.
        let mut h = sample();
        h.label = l;
        let parsed = SwapHeader::parse(&h.to_page(), file_area(64)).unwrap();
        assert_eq!(parsed.label, l);
        assert_eq!(parsed.label.as_str(), Some("exactly16bytes!!"));
        // Garbage after the first NUL on disk is ignored.
        assert_eq!(
            Label::from_disk(b"abc\0xyz\0\0\0\0\0\0\0\0\0"),
            Label::new("abc").unwrap()
        );
    }

    #[test]
    fn label_and_uuid_round_trip_through_header() {
        for label in ["", "x", "SWAP_LABEL", "exactly16bytes!!"] {
            let uuid = Uuid::new_v4().unwrap();
            let h = SwapHeader::new(10, uuid, label.parse().unwrap()).unwrap();
            let parsed = SwapHeader::parse(&h.to_page(), file_area(10)).unwrap();
            assert_eq!(parsed.uuid, uuid);
            assert_eq!(parsed.label.as_str(), Some(label));
        }
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            // Under Miri: fewer cases, and no regression file (no file system).
            #![proptest_config(if cfg!(miri) {
                ProptestConfig { cases: 8, failure_persistence: None, ..ProptestConfig::default() }
            } else {
                ProptestConfig::default()
            })]

            #[test]
            fn any_header_round_trips(
                pages in MIN_GOODPAGES..=u64::from(u32::MAX),
                uuid in any::<[u8; 16]>(),
                label in proptest::collection::vec(1u8..=255, 0..=16),
                big in any::<bool>(),
            ) {
                let mut h = SwapHeader::new(pages, Uuid(uuid), Label::from_bytes(&label).unwrap()).unwrap();
                h.endian = if big { Endian::Big } else { Endian::Little };
                let parsed = SwapHeader::parse(&h.to_page(), AreaInfo::regular_file(pages * 4096)).unwrap();
                prop_assert_eq!(parsed, h);
            }

            #[test]
            fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 64), magic in any::<bool>()) {
                let mut p = [0u8; PAGE_SIZE];
                p[1024..1088].copy_from_slice(&bytes);
                if magic {
                    p[MAGIC_OFFSET..].copy_from_slice(MAGIC_V1);
                }
                let _ = SwapHeader::parse(&p, AreaInfo { size_pages: Some(100), regular_file: false });
            }
        }
    }
}
