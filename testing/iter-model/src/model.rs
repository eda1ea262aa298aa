//! The flat model.

use std::cmp::min;

use iov_iter::{Error, IterType, MAX_RW_COUNT, PAGE_SIZE};

/// One segment, in iterator order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seg {
    /// Address of its first byte (`iov_base`, or for a bvec the page's
    /// address plus `bv_offset`).
    pub addr: usize,
    /// Its length (`iov_len`, `bv_len`).
    pub len: usize,
    /// Offset of its first byte in the concatenation of all the segments.
    pub flat: usize,
    /// For a bvec: `bv_offset` (at most `PAGE_SIZE`), so the page
    /// (`bv_page`) is at `addr - bv_offset`. `None` for the other kinds.
    pub bv_offset: Option<usize>,
}

impl Seg {
    /// The page (`bv_page`) of a bvec segment.
    pub fn page(&self) -> Option<usize> {
        self.bv_offset.map(|o| self.addr - o)
    }
}

/// The part of a [`Model`] that `iov_iter_save_state` keeps and
/// `iov_iter_restore` puts back: the position, `count` and the segment
/// position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snap {
    /// [`Model::pos`].
    pub pos: usize,
    /// [`Model::count`].
    pub count: usize,
    /// [`Model::idx`].
    pub idx: usize,
    /// [`Model::off`].
    pub off: usize,
}

/// The flat model of an iterator: what it covers, as one run of bytes, and
/// where it stands.
///
/// The bytes are the concatenation of the segments ([`bytes`](Model::bytes));
/// the position in it is [`pos`](Model::pos), the bytes left to process are
/// [`count`](Model::count), and the kernel's segment position
/// ([`idx`](Model::idx), [`off`](Model::off): `nr_segs` and `iov_offset`)
/// follows the kernel's popping rules for the array kinds (`Iovec`, `Kvec`,
/// `Bvec`; `iterate_iovec` / `iterate_bvec` in `include/linux/iov_iter.h`,
/// `iov_iter_iovec_advance` / `iov_iter_bvec_advance` and `iov_iter_revert`
/// in `lib/iov_iter.c`):
///
/// - **advance** ([`advance`](Model::advance), when `count > 0`) and
///   **revert** ([`revert`](Model::revert)) past the current segment's start
///   leave the iterator on the first segment whose end is beyond `pos`:
///   every empty segment at or before `pos` is popped, trailing ones too, so
///   `nr_segs` is 0 once everything is consumed. `advance` with
///   `count == 0` does not move at all; a revert within the current segment
///   only lowers `iov_offset`.
/// - **copy / zero** ([`copy`](Model::copy), [`take`](Model::take)) of
///   `k > 0` bytes pops every segment it finishes and the empty segments it
///   crosses, but stops right after the segment holding the last byte it
///   copied: empty segments that follow are *not* popped (so `nr_segs` can
///   stay above 0 with `count == 0`). A copy of 0 bytes does not move.
/// - `Ubuf`: `nr_segs` is always 1 and `iov_offset` is `pos`. `Discard`:
///   `nr_segs` is 0 and `iov_offset` is `pos` (this crate's choice; the
///   kernel leaves it alone), and there are no bytes: writes to a discard
///   are dropped.
///
/// The other operations: `iov_iter_truncate` ([`truncate`](Model::truncate))
/// lowers `count` only; `iov_iter_reexpand` ([`reexpand`](Model::reexpand))
/// sets it, up to what the segments hold from `pos`; save / restore are
/// [`snap`](Model::snap) / [`set`](Model::set); `iov_iter_extract_pages` is
/// [`user_extract`] (user-backed and kvec iterators, `first_iovec_segment`)
/// and [`extract_bvec`](Model::extract_bvec)
/// (`iov_iter_extract_bvec_pages`), after which the kernel advances by the
/// bytes extracted. The crate's errors are modelled exactly: revert by more
/// than `MAX_RW_COUNT` is `RevertTooLarge`, by more than was consumed
/// `RevertPastStart`, reexpand past the segments `ReexpandPastEnd`, and
/// nothing moves then.
///
/// Every method that moves the position moves [`idx`](Model::idx) /
/// [`off`](Model::off) by one of these rules; which rule an iterator
/// operation follows is the driver's claim. `tests/model.rs` checks
/// `nr_segs` and `iov_offset` against them after every operation; the
/// `iter_ops` fuzz target, whose walks may also stop short, checks the
/// iterator's bookkeeping only for consistency with `pos`.
#[derive(Clone, Debug)]
pub struct Model {
    /// The iterator type (`iter_type`): which of the rules apply.
    pub kind: IterType,
    /// The segments in iterator order: the array for `Iovec`, `Kvec` and
    /// `Bvec`, the one buffer for `Ubuf`, none for `Discard`.
    pub segs: Vec<Seg>,
    /// Bytes the iterator covers from its start: the segments' total, or a
    /// discard's initial count. `capacity()` is `total - pos`.
    pub total: usize,
    /// The concatenated segment bytes: what a source holds, or what a
    /// destination's memory must hold once the iterator is done (empty for
    /// `Discard`).
    pub bytes: Vec<u8>,
    /// Bytes consumed from the start: advanced or copied, minus reverted.
    pub pos: usize,
    /// `iov_iter_count`: bytes left to process (at most `total - pos`).
    pub count: usize,
    /// Array kinds: the current segment, so `nr_segs` is
    /// `segs.len() - idx` (`segs.len()` once they are all popped). 0 for
    /// `Ubuf` and `Discard`.
    pub idx: usize,
    /// Array kinds: `iov_offset`, the bytes of segment `idx` consumed. 0
    /// for `Ubuf` and `Discard` (their `iov_offset` is `pos`).
    pub off: usize,
}

impl Model {
    /// An `Iovec`, `Kvec` (any number of segments) or `Ubuf` (exactly one)
    /// model: segment `i` is `segs[i] = (addr, len)`; `bytes` is their
    /// initial contents, concatenated.
    pub fn new(kind: IterType, segs: &[(usize, usize)], bytes: Vec<u8>) -> Model {
        match kind {
            IterType::Iovec | IterType::Kvec => {}
            IterType::Ubuf => assert_eq!(segs.len(), 1, "a ubuf is one segment"),
            _ => panic!("Model::new for {kind:?}: use Model::bvec or Model::discard"),
        }
        let segs = segs.iter().map(|&(addr, len)| (addr, len, None));
        Model::build(kind, segs, bytes)
    }

    /// A `Bvec` model: segment `i` is `segs[i] = (page address, bv_offset,
    /// bv_len)`; `bytes` is their initial contents, concatenated.
    pub fn bvec(segs: &[(usize, usize, usize)], bytes: Vec<u8>) -> Model {
        let segs = segs.iter().map(|&(page, o, len)| {
            assert!(o <= PAGE_SIZE && len <= PAGE_SIZE - o, "bvec ({o}, {len})");
            (page + o, len, Some(o))
        });
        Model::build(IterType::Bvec, segs, bytes)
    }

    /// A `Discard` model of `total` bytes.
    pub fn discard(total: usize) -> Model {
        Model {
            kind: IterType::Discard,
            segs: Vec::new(),
            total,
            bytes: Vec::new(),
            pos: 0,
            count: total,
            idx: 0,
            off: 0,
        }
    }

    fn build(
        kind: IterType,
        segs: impl Iterator<Item = (usize, usize, Option<usize>)>,
        bytes: Vec<u8>,
    ) -> Model {
        let mut flat = 0;
        let segs: Vec<Seg> = segs
            .map(|(addr, len, bv_offset)| {
                let s = Seg {
                    addr,
                    len,
                    flat,
                    bv_offset,
                };
                flat += len;
                s
            })
            .collect();
        assert_eq!(bytes.len(), flat, "bytes vs the segments' total");
        Model {
            kind,
            segs,
            total: flat,
            bytes,
            pos: 0,
            count: flat,
            idx: 0,
            off: 0,
        }
    }

    /// `Iovec`, `Kvec` or `Bvec`: a segment array, with the popping rules.
    pub fn is_array(&self) -> bool {
        matches!(self.kind, IterType::Iovec | IterType::Kvec | IterType::Bvec)
    }

    /// What save / restore keep.
    pub fn snap(&self) -> Snap {
        Snap {
            pos: self.pos,
            count: self.count,
            idx: self.idx,
            off: self.off,
        }
    }

    /// Puts a [`snap`](Model::snap) back.
    pub fn set(&mut self, s: Snap) {
        (self.pos, self.count, self.idx, self.off) = (s.pos, s.count, s.idx, s.off);
    }

    /// `nr_segs` (see [`idx`](Model::idx)).
    pub fn nr_segs(&self) -> usize {
        match self.kind {
            IterType::Ubuf => 1,
            IterType::Discard => 0,
            _ => self.segs.len() - self.idx,
        }
    }

    /// `iov_offset` (see [`off`](Model::off)).
    pub fn iov_offset(&self) -> usize {
        if self.is_array() { self.off } else { self.pos }
    }

    /// Index of the first segment whose end is beyond flat offset `q`: the
    /// (non-empty) one holding byte `q`, or `segs.len()` if `q` is past
    /// them all.
    fn index_of(&self, q: usize) -> usize {
        self.segs.partition_point(|s| s.flat + s.len <= q)
    }

    /// Segment position after an advance, or a revert, to `pos`: the first
    /// segment whose end is beyond `pos` (none: past the last segment).
    fn seek(&self, pos: usize) -> (usize, usize) {
        let i = self.index_of(pos);
        match self.segs.get(i) {
            Some(s) => (i, pos - s.flat),
            None => (i, pos - self.total),
        }
    }

    /// Segment position after a copy that ended at `pos > 0`: inside the
    /// segment holding byte `pos - 1`, or just past it when that was its last
    /// byte.
    fn after_copy(&self, pos: usize) -> (usize, usize) {
        let i = self.index_of(pos - 1);
        let s = self.segs.get(i).expect("copy ended past the segments");
        if pos == s.flat + s.len {
            (i + 1, 0)
        } else {
            (i, pos - s.flat)
        }
    }

    /// The (non-empty) segment holding flat byte `q < total`.
    pub fn seg_of(&self, q: usize) -> &Seg {
        let s = &self.segs[self.index_of(q)];
        assert!(s.flat <= q && q < s.flat + s.len);
        s
    }

    /// The address of flat byte `q < total`.
    pub fn addr_of(&self, q: usize) -> usize {
        let s = self.seg_of(q);
        s.addr + (q - s.flat)
    }

    /// Contiguous pieces `(flat, len)` covering `len` bytes from `start`,
    /// split at segment ends: the chunks a walk hands out (none for a
    /// discard).
    pub fn pieces(&self, start: usize, len: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        if self.kind == IterType::Discard {
            return out;
        }
        let (mut q, end) = (start, start + len);
        while q < end {
            let s = self.seg_of(q);
            let l = (s.flat + s.len).min(end) - q;
            out.push((q, l));
            q += l;
        }
        out
    }

    /// `iov_iter_advance(n)`: by `min(n, count)`.
    pub fn advance(&mut self, n: usize) {
        if self.is_array() && self.count == 0 {
            return;
        }
        let k = min(n, self.count);
        self.pos += k;
        self.count -= k;
        if self.is_array() {
            (self.idx, self.off) = self.seek(self.pos);
        }
    }

    /// A copy (or zero) of up to `n` bytes: moves by `k = min(n, count)` and
    /// returns `(start, k)`, `start` being where it began in
    /// [`bytes`](Model::bytes).
    pub fn copy(&mut self, n: usize) -> (usize, usize) {
        let (start, k) = (self.pos, min(n, self.count));
        self.take(k);
        (start, k)
    }

    /// A copy that processed exactly `n` bytes (`n <= count`, asserted).
    pub fn take(&mut self, n: usize) {
        assert!(n <= self.count, "take({n}) with count {}", self.count);
        if n == 0 {
            return;
        }
        self.pos += n;
        self.count -= n;
        if self.is_array() {
            (self.idx, self.off) = self.after_copy(self.pos);
        }
    }

    /// `iov_iter_revert(n)`: 0 is a no-op, then the `MAX_RW_COUNT` check,
    /// then "more than was consumed".
    pub fn revert(&mut self, n: usize) -> Result<(), Error> {
        if n == 0 {
            return Ok(());
        }
        if n > MAX_RW_COUNT {
            return Err(Error::RevertTooLarge(n));
        }
        if n > self.pos {
            return Err(Error::RevertPastStart {
                requested: n,
                consumed: self.pos,
            });
        }
        if self.is_array() {
            if n <= self.off {
                self.off -= n;
            } else {
                (self.idx, self.off) = self.seek(self.pos - n);
            }
        }
        self.pos -= n;
        self.count += n;
        Ok(())
    }

    /// `iov_iter_truncate(limit)`.
    pub fn truncate(&mut self, limit: u64) {
        self.count = min(self.count as u64, limit) as usize;
    }

    /// `iov_iter_reexpand(n)`, refused past what the segments hold from
    /// `pos`.
    pub fn reexpand(&mut self, n: usize) -> Result<(), Error> {
        let available = self.total - self.pos;
        if n > available {
            return Err(Error::ReexpandPastEnd {
                requested: n,
                available,
            });
        }
        self.count = n;
        Ok(())
    }

    /// The memory at flat offset `q` now holds `data` (dropped for a
    /// discard).
    pub fn write(&mut self, q: usize, data: &[u8]) {
        if self.kind != IterType::Discard {
            self.bytes[q..q + data.len()].copy_from_slice(data);
        }
    }

    /// The memory at flat offsets `[q, q + len)` now holds `b` (dropped for
    /// a discard).
    pub fn fill(&mut self, q: usize, len: usize, b: u8) {
        if self.kind != IterType::Discard {
            self.bytes[q..q + len].fill(b);
        }
    }

    /// The bytes `[pos, pos + n)`.
    pub fn ahead(&self, n: usize) -> &[u8] {
        &self.bytes[self.pos..self.pos + n]
    }

    /// The bytes left to process: `[pos, pos + count)`.
    pub fn remaining(&self) -> &[u8] {
        self.ahead(self.count)
    }

    /// What memory that starts at address `base` and held `initial` must
    /// hold now: `initial` with every non-empty segment inside it holding
    /// its part of [`bytes`](Model::bytes). A segment that straddles the
    /// range's edge panics (the driver's ranges are pages or whole buffers).
    pub fn expect_memory(&self, initial: &[u8], base: usize) -> Vec<u8> {
        let mut out = initial.to_vec();
        let end = base + initial.len();
        for s in self.segs.iter().filter(|s| s.len != 0) {
            if s.addr >= end || s.addr + s.len <= base {
                continue;
            }
            assert!(s.addr >= base && s.addr + s.len <= end, "{s:?} straddles");
            let o = s.addr - base;
            out[o..o + s.len].copy_from_slice(&self.bytes[s.flat..s.flat + s.len]);
        }
        out
    }

    /// Whether a bvec segment is a zero-length one at `bv_offset ==
    /// PAGE_SIZE` (offset 0 of the next page for `bvec_iter_bvec`).
    pub fn has_empty_bvec_at_page_end(&self) -> bool {
        self.segs
            .iter()
            .any(|s| s.bv_offset == Some(PAGE_SIZE) && s.len == 0)
    }

    /// `iov_iter_extract_bvec_pages` (with `want_pages_array` and the
    /// single-page split of `bvec_iter_bvec`) from the current segment
    /// position: `(bytes, offset0, page addresses)` for `maxsize` already
    /// clamped to `count` and non-zero. Gathers pages while each ends on a
    /// page boundary and the next starts at offset 0. Does not move the
    /// model (the kernel then advances by `bytes`).
    pub fn extract_bvec(&self, maxsize: usize, maxpages: usize) -> (usize, usize, Vec<usize>) {
        assert_eq!(self.kind, IterType::Bvec);
        let bv = &self.segs;
        let (mut idx, mut skip) = (self.idx, self.off);
        if idx == bv.len() {
            return (0, 0, Vec::new());
        }
        if skip == bv[idx].len {
            idx += 1;
            skip = 0;
        }
        let maxpages = min((maxsize + skip).div_ceil(PAGE_SIZE), maxpages);
        let (mut bi_idx, mut done, mut bi_size) = (idx, skip, maxsize);
        let (mut size, mut offset0, mut pages) = (0, 0, Vec::new());
        while bi_size != 0 && bi_idx < bv.len() {
            let s = &bv[bi_idx];
            let bv_offset = s.bv_offset.expect("a bvec segment");
            let (page, bv_len) = (s.addr - bv_offset, s.len);
            let mp_off = bv_offset + done;
            let off = mp_off % PAGE_SIZE;
            let len = min(min(bi_size, bv_len - done), PAGE_SIZE - off);
            if !pages.is_empty() {
                if off != 0 {
                    break;
                }
            } else {
                offset0 = off;
            }
            pages.push(page + mp_off / PAGE_SIZE * PAGE_SIZE);
            size += len;
            if pages.len() >= maxpages || off + len != PAGE_SIZE {
                break;
            }
            done += len;
            bi_size -= len;
            if done == bv_len {
                bi_idx += 1;
                done = 0;
            }
        }
        (size, offset0, pages)
    }
}

/// `iov_iter_extract_pages` on a user-backed or kvec iterator
/// (`first_iovec_segment`, the same walk for a kvec): the pages of
/// `[addr, addr + size)`, at most `maxpages` of them, where `(addr, len)` is
/// what is left of the first non-empty segment from the position and
/// `size = min(maxsize, len)`. Returns `(bytes, offset0, page addresses)`.
pub fn user_extract(
    addr: usize,
    len: usize,
    maxsize: usize,
    maxpages: usize,
) -> (usize, usize, Vec<usize>) {
    let size = min(maxsize, len);
    let offset = addr % PAGE_SIZE;
    let n = min((size + offset).div_ceil(PAGE_SIZE), maxpages);
    let pages = (0..n).map(|k| addr - offset + k * PAGE_SIZE).collect();
    (min(size, n * PAGE_SIZE - offset), offset, pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[4, 0, 4, 0]`: the popping rules of the type documentation.
    #[test]
    fn popping_rules() {
        let mut m = Model::new(
            IterType::Kvec,
            &[(0x1000, 4), (0x2000, 0), (0x3000, 4), (0x4000, 0)],
            vec![0; 8],
        );
        assert_eq!(m.copy(4), (0, 4));
        assert_eq!((m.nr_segs(), m.iov_offset()), (3, 0));
        m.advance(0);
        assert_eq!((m.nr_segs(), m.iov_offset()), (2, 0));
        assert_eq!(m.copy(9), (4, 4));
        assert_eq!((m.nr_segs(), m.count), (1, 0));
        m.revert(8).unwrap();
        assert_eq!((m.nr_segs(), m.iov_offset(), m.count), (4, 0, 8));
        m.advance(8);
        assert_eq!((m.nr_segs(), m.iov_offset(), m.count), (0, 0, 0));
        m.revert(1).unwrap();
        assert_eq!((m.nr_segs(), m.iov_offset(), m.count), (2, 3, 1));
        assert_eq!(
            m.revert(8),
            Err(Error::RevertPastStart {
                requested: 8,
                consumed: 7
            })
        );
        assert_eq!(m.addr_of(7), 0x3003);
        assert_eq!(m.pieces(2, 4), [(2, 2), (4, 2)]);
    }

    #[test]
    fn memory_and_pages() {
        let mut m = Model::new(IterType::Iovec, &[(0x1002, 2), (0x1008, 3)], vec![1; 5]);
        m.write(1, &[7, 8]);
        assert_eq!(
            m.expect_memory(&[0; 12], 0x1000),
            [0, 0, 1, 7, 0, 0, 0, 0, 8, 1, 1, 0]
        );
        assert_eq!(
            user_extract(0x1ffe, 10, 5, 8),
            (5, 0xffe, vec![0x1000, 0x2000])
        );
        assert_eq!(user_extract(0x1ffe, 10, 5, 1), (2, 0xffe, vec![0x1000]));
        let b = Model::bvec(
            &[(0x5000, PAGE_SIZE, 0), (0x7000, 0, PAGE_SIZE)],
            vec![0; PAGE_SIZE],
        );
        assert!(b.has_empty_bvec_at_page_end());
        assert_eq!(b.segs[1].page(), Some(0x7000));
    }
}
