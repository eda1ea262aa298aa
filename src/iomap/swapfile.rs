//! Swap activation over a mapping (the kernel's `iomap_swapfile_activate`).

use alloc::vec::Vec;
use core::fmt;

use crate::error::{Errno, Error};
use crate::page::PAGE_SIZE;

use super::{ExtentFlags, ExtentKind, IoMap, IomapOp};

const PAGE: u64 = PAGE_SIZE as u64;

/// One run of swap pages on the device (the kernel's `struct swap_extent`):
/// swap pages `[start_page, start_page + nr_pages)` are device pages
/// `[start_block, start_block + nr_pages)`.
///
/// ```
/// use iov_iter::iomap::SwapExtent;
/// let e = SwapExtent { start_page: 0, nr_pages: 16, start_block: 100 };
/// assert_eq!(e.device_page(3), Some(103));
/// assert_eq!(e.device_page(16), None);
/// ```
#[doc(alias = "swap_extent")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SwapExtent {
    /// First swap page (page 0 is the header).
    pub start_page: u64,
    /// Pages in the run.
    pub nr_pages: u64,
    /// First device page (device byte address / 4096).
    pub start_block: u64,
}

impl SwapExtent {
    /// The device page of swap page `page`, when the run holds it.
    pub const fn device_page(&self, page: u64) -> Option<u64> {
        if page >= self.start_page && page - self.start_page < self.nr_pages {
            Some(self.start_block + (page - self.start_page))
        } else {
            None
        }
    }
}

/// The swap area a file gives ([`swapfile_activate`]): its extents, pages
/// and span, as the kernel's `swapon(2)` computes them.
///
/// ```
/// use iov_iter::iomap::{swapfile_activate, Extent, IoMap, IomapOp};
/// struct Contig;
/// impl IoMap for Contig {
///     fn size(&self) -> u64 { 64 << 10 }
///     fn begin(&self, _: u64, _: u64, _: IomapOp) -> iov_iter::Result<Extent> {
///         Ok(Extent::mapped(0, 64 << 10, 1 << 20))
///     }
/// }
/// let area = swapfile_activate(&Contig, u64::MAX)?;
/// assert_eq!((area.max(), area.pages(), area.span()), (16, 15, 15));
/// assert_eq!(area.device_offset(1), Some((1 << 20) + 4096));
/// # Ok::<(), iov_iter::iomap::SwapActivateError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapExtents {
    extents: Vec<SwapExtent>,
    nr_pages: u64,
    lowest: u64,
    highest: u64,
}

impl SwapExtents {
    /// The runs, in swap-page order, adjacent runs merged
    /// (`add_swap_extent`).
    pub fn extents(&self) -> &[SwapExtent] {
        &self.extents
    }

    /// Pages of the area, the header page included (the kernel's
    /// `sis->max`).
    pub fn max(&self) -> u64 {
        self.nr_pages
    }

    /// Usable swap pages: [`SwapExtents::max`] less the header page (the
    /// kernel's `sis->pages`, before bad pages are taken off; `/proc/swaps`
    /// shows it in KiB).
    pub fn pages(&self) -> u64 {
        self.nr_pages - 1
    }

    /// Device pages from the lowest to the highest used, the header
    /// excluded (the kernel's `span`, printed by `swapon`'s "across:").
    pub fn span(&self) -> u64 {
        (1 + self.highest).saturating_sub(self.lowest)
    }

    /// The device byte address of swap page `page` (the kernel's
    /// `swap_page_sector` through the extent tree).
    pub fn device_offset(&self, page: u64) -> Option<u64> {
        let i = self
            .extents
            .partition_point(|e| e.start_page + e.nr_pages <= page);
        self.extents.get(i)?.device_page(page).map(|p| p * PAGE)
    }
}

/// Why a file cannot back swap (the kernel's `swapon:` messages).
///
/// ```
/// use iov_iter::iomap::SwapRefusal;
/// assert_eq!(SwapRefusal::Hole.to_string(), "file has unallocated extents");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SwapRefusal {
    /// A hole (`IOMAP_HOLE`): "file has unallocated extents".
    Hole,
    /// Delayed allocation (`IOMAP_DELALLOC`): unallocated as well.
    Delalloc,
    /// Inline data (`IOMAP_INLINE`): "file is inline".
    Inline,
    /// Shared, reflinked blocks (`IOMAP_F_SHARED`): "file has shared
    /// extents".
    Shared,
    /// Uncommitted metadata (`IOMAP_F_DIRTY`): "file is not committed".
    Dirty,
    /// Encoded (compressed, encrypted) blocks ([`ExtentFlags::ENCODED`];
    /// btrfs: "swapfile must not be compressed").
    Encoded,
    /// Blocks at an unknown location (no device address,
    /// `FIEMAP_EXTENT_UNKNOWN`).
    UnknownAddress,
}

impl fmt::Display for SwapRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SwapRefusal::Hole | SwapRefusal::Delalloc => "file has unallocated extents",
            SwapRefusal::Inline => "file is inline",
            SwapRefusal::Shared => "file has shared extents",
            SwapRefusal::Dirty => "file is not committed",
            SwapRefusal::Encoded => "file has encoded (compressed or encrypted) extents",
            SwapRefusal::UnknownAddress => "file has extents at an unknown location",
        })
    }
}

/// Why [`swapfile_activate`] refused a file. EINVAL, as `swapon(2)`,
/// except for the mapping's own errors.
///
/// ```
/// use iov_iter::iomap::{SwapActivateError, SwapRefusal};
/// use iov_iter::Errno;
/// let e = SwapActivateError::Refused { why: SwapRefusal::Hole, offset: 8192, len: 4096 };
/// assert_eq!(e.errno(), Errno::EINVAL);
/// assert_eq!(e.to_string(), "swapon: file has unallocated extents: bytes [8192, 12288)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SwapActivateError {
    /// An extent swap cannot use: why, and the extent's file byte range.
    Refused {
        /// Why.
        why: SwapRefusal,
        /// File offset of the extent.
        offset: u64,
        /// Its length.
        len: u64,
    },
    /// Not one page-aligned run of device pages: "Cannot find a single
    /// usable page in file".
    NoUsablePage,
    /// The mapping failed or returned a bad extent ([`Error::BadExtent`]).
    Map(Error),
}

impl SwapActivateError {
    /// The errno `swapon(2)` returns.
    pub const fn errno(&self) -> Errno {
        match self {
            SwapActivateError::Refused { .. } | SwapActivateError::NoUsablePage => Errno::EINVAL,
            SwapActivateError::Map(e) => e.errno(),
        }
    }
}

impl fmt::Display for SwapActivateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SwapActivateError::Refused { why, offset, len } => write!(
                f,
                "swapon: {why}: bytes [{offset}, {})",
                offset.saturating_add(*len)
            ),
            SwapActivateError::NoUsablePage => {
                f.write_str("swapon: Cannot find a single usable page in file")
            }
            SwapActivateError::Map(e) => write!(f, "swapon: mapping: {e}"),
        }
    }
}

impl core::error::Error for SwapActivateError {}

impl From<SwapActivateError> for Error {
    /// A refusal becomes [`Error::InvalidArgument`] (EINVAL).
    fn from(e: SwapActivateError) -> Error {
        match e {
            SwapActivateError::Map(e) => e,
            _ => Error::InvalidArgument("file cannot back swap"),
        }
    }
}

/// A run of the file being accumulated: file offset, device address, bytes.
#[derive(Clone, Copy)]
struct Run {
    offset: u64,
    addr: u64,
    len: u64,
}

#[derive(Default)]
struct Builder {
    extents: Vec<SwapExtent>,
    nr_pages: u64,
    lowest: u64,
    highest: u64,
    max: u64,
}

impl Builder {
    /// Adds a physically contiguous run, trimmed inward to whole device
    /// pages (`iomap_swapfile_add_extent`).
    fn add(&mut self, run: Run) {
        if self.nr_pages >= self.max {
            return;
        }
        let first = run.addr.div_ceil(PAGE);
        let next = (run.addr + run.len) / PAGE;
        if first >= next {
            return; // too short once page-aligned
        }
        let nr = (next - first).min(self.max - self.nr_pages);
        // The header page (file offset 0) is no part of the span.
        let reported_first = first + u64::from(run.offset == 0);
        self.lowest = self.lowest.min(reported_first);
        self.highest = self.highest.max(next - 1);
        match self.extents.last_mut() {
            Some(last) if last.start_block + last.nr_pages == first => last.nr_pages += nr,
            _ => self.extents.push(SwapExtent {
                start_page: self.nr_pages,
                nr_pages: nr,
                start_block: first,
            }),
        }
        self.nr_pages += nr;
    }
}

/// Builds the swap area of a file from its mapping, as the kernel's
/// `iomap_swapfile_activate` does at `swapon(2)`: the whole file rounded
/// down to pages is walked ([`IomapOp::REPORT`]); mapped and unwritten
/// extents are accepted, anything else refused with the extent's byte
/// range; physically contiguous extents are merged, each run trimmed
/// inward to device pages (too-short runs skipped) and the area limited to
/// `max_pages` pages, the header page included (the header's
/// `last_page + 1`; `u64::MAX` for no limit). The logical order does not
/// matter: swap pages are numbered densely over the runs.
///
/// Commit the file's metadata first (the kernel fsyncs;
/// [`FiemapMap`](crate::backend::fiemap::FiemapMap) asks FIEMAP to sync):
/// uncommitted extents ([`ExtentFlags::DIRTY`]) are refused.
///
/// # Errors
///
/// [`SwapActivateError::Refused`] for a hole, delayed allocation, inline,
/// shared, dirty, encoded or unknown-location extent anywhere in the
/// walked range, [`SwapActivateError::NoUsablePage`], or the mapping's own
/// error ([`SwapActivateError::Map`]).
///
/// # Examples
///
/// A punched hole in the middle of a file is refused, naming it:
///
/// ```
/// use iov_iter::iomap::{swapfile_activate, Extent, IoMap, IomapOp, SwapActivateError, SwapRefusal};
/// struct Punched;
/// impl IoMap for Punched {
///     fn size(&self) -> u64 { 1 << 20 }
///     fn begin(&self, pos: u64, _: u64, _: IomapOp) -> iov_iter::Result<Extent> {
///         Ok(match pos {
///             p if p < 65536 => Extent::unwritten(0, 65536, 1 << 30),
///             p if p < 69632 => Extent::hole(65536, 4096),
///             _ => Extent::unwritten(69632, (1 << 20) - 69632, (1 << 30) + 69632),
///         })
///     }
/// }
/// assert_eq!(
///     swapfile_activate(&Punched, u64::MAX),
///     Err(SwapActivateError::Refused { why: SwapRefusal::Hole, offset: 65536, len: 4096 })
/// );
/// ```
#[doc(alias = "iomap_swapfile_activate")]
#[doc(alias = "swap_activate")]
pub fn swapfile_activate<M: IoMap + ?Sized>(
    map: &M,
    max_pages: u64,
) -> Result<SwapExtents, SwapActivateError> {
    let len = map.size() & !(PAGE - 1);
    let mut b = Builder {
        lowest: u64::MAX,
        max: max_pages,
        ..Builder::default()
    };
    let (mut pos, mut prev_end, mut acc) = (0u64, None, None::<Run>);
    while pos < len {
        let ext = map
            .begin(pos, len - pos, IomapOp::REPORT)
            .map_err(SwapActivateError::Map)?;
        ext.check(pos, prev_end, None)
            .map_err(SwapActivateError::Map)?;
        prev_end = Some(ext.end());
        let refused = |why| SwapActivateError::Refused {
            why,
            offset: ext.offset,
            len: ext.len,
        };
        match ext.kind {
            ExtentKind::Mapped | ExtentKind::Unwritten => {}
            ExtentKind::Inline => return Err(refused(SwapRefusal::Inline)),
            ExtentKind::Hole => return Err(refused(SwapRefusal::Hole)),
            ExtentKind::Delalloc => return Err(refused(SwapRefusal::Delalloc)),
        }
        for (flag, why) in [
            (ExtentFlags::DIRTY, SwapRefusal::Dirty),
            (ExtentFlags::SHARED, SwapRefusal::Shared),
            (ExtentFlags::ENCODED, SwapRefusal::Encoded),
        ] {
            if ext.flags.contains(flag) {
                return Err(refused(why));
            }
        }
        let Some(addr) = ext.addr_at(pos) else {
            return Err(refused(SwapRefusal::UnknownAddress));
        };
        let count = ext.end().min(len) - pos;
        acc = match acc {
            Some(mut run) if run.addr.checked_add(run.len) == Some(addr) => {
                run.len += count;
                Some(run)
            }
            Some(run) => {
                b.add(run);
                Some(Run {
                    offset: pos,
                    addr,
                    len: count,
                })
            }
            None => Some(Run {
                offset: pos,
                addr,
                len: count,
            }),
        };
        pos += count;
    }
    if let Some(run) = acc {
        b.add(run);
    }
    if b.nr_pages == 0 {
        return Err(SwapActivateError::NoUsablePage);
    }
    Ok(SwapExtents {
        extents: b.extents,
        nr_pages: b.nr_pages,
        lowest: b.lowest,
        highest: b.highest,
    })
}
