//! Page-aligned address ranges, the unit every `UFFDIO_*` ioctl takes.

use super::error::{Error, Result};
use super::sys;

/// The system page size.
pub fn page_size() -> usize {
    rustix::param::page_size()
}

/// A non-empty, page-aligned address range `[start, start + len)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Range {
    start: usize,
    len: usize,
}

impl Range {
    /// Checks that `start` and `len` are page aligned, `len > 0`, and the
    /// range does not wrap around.
    pub fn new(start: usize, len: usize) -> Result<Range> {
        let ps = page_size();
        if len == 0 || start % ps != 0 || len % ps != 0 || start.checked_add(len).is_none() {
            return Err(Error::BadRange { start, len });
        }
        Ok(Range { start, len })
    }

    /// For callers that know the range is valid (a live mapping).
    pub(super) fn from_mapping(start: usize, len: usize) -> Range {
        debug_assert!(Range::new(start, len).is_ok());
        Range { start, len }
    }

    /// The single page containing `addr`.
    pub fn page_of(addr: usize) -> Range {
        let ps = page_size();
        let start = addr & !(ps - 1);
        // A page-aligned address is at most usize::MAX + 1 - ps, so no overflow.
        Range { start, len: ps }
    }

    /// First address.
    pub fn start(&self) -> usize {
        self.start
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false` (ranges are non-empty); for clippy's sake.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// One past the last address.
    pub fn end(&self) -> usize {
        self.start + self.len
    }

    /// Whether `other` lies entirely inside `self`.
    pub fn contains(&self, other: &Range) -> bool {
        other.start >= self.start && other.end() <= self.end()
    }

    pub(super) fn raw(&self) -> sys::UffdioRange {
        sys::UffdioRange {
            start: self.start as u64,
            len: self.len as u64,
        }
    }
}
