//! The swap map: which slots (page indices in the swap file) are free, and
//! which hold a page of zeros.
//!
//! Linux reference: `si->swap_map` and the cluster allocator in
//! `mm/swapfile.c`. Slot 0 holds the header and, like bad pages, is reserved
//! at setup (the kernel marks it `SWAP_MAP_BAD`); reserved slots are never
//! handed out and cannot be freed.
//!
//! The map is a bitmap (one bit per slot, set = taken), kept beside two
//! more: the reserved slots and the zero map (`si->zeromap`: slots whose
//! page was all zeros, nothing written). The three words of each 64 slots
//! sit together, so the checks a swap-in or swap-out makes of one slot read
//! one cache line. Scans skip full words, so allocation is O(slots / 64) worst case and usually
//! O(1) thanks to a next-fit cursor. The cursor plays the role of the
//! kernel's per-CPU current cluster: successive allocations land on
//! successive slots, which is what lets batched swap-out merge neighbouring
//! pages into one I/O. There are no per-CPU clusters, reference counts or
//! alignment rules here.

use std::fmt;

use crate::header::EINVAL;

/// Slots per cluster (`SWAPFILE_CLUSTER`, `HPAGE_PMD_NR` on x86-64): the
/// largest naturally aligned run [`SwapMap::alloc_aligned`] gives.
pub const SWAPFILE_CLUSTER: u32 = 512;

/// A slot: the index of a page-sized cell in the swap file (byte offset
/// `index * 4096`). Slot 0 is the header and never allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot(u32);

impl Slot {
    /// Wraps an index (no validation; the map checks on free).
    pub const fn new(index: u32) -> Slot {
        Slot(index)
    }
    /// The page index in the swap file.
    pub const fn index(self) -> u32 {
        self.0
    }
    /// Byte offset of the slot in the swap file.
    pub const fn byte_offset(self) -> u64 {
        self.0 as u64 * crate::header::PAGE_SIZE as u64
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "slot {}", self.0)
    }
}

/// A run of consecutive slots `[start, start + len)`, `len >= 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SlotRange {
    start: u32,
    len: u32,
}

impl SlotRange {
    /// `[start, start + len)`. Panics if `len == 0` or it overflows `u32`.
    pub fn new(start: Slot, len: u32) -> SlotRange {
        assert!(len > 0, "empty slot range");
        assert!(start.0.checked_add(len).is_some(), "slot range overflows");
        SlotRange {
            start: start.0,
            len,
        }
    }
    /// First slot.
    pub fn start(self) -> Slot {
        Slot(self.start)
    }
    /// One past the last slot index.
    pub fn end(self) -> u32 {
        self.start + self.len
    }
    /// Number of slots (at least 1).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(self) -> u32 {
        self.len
    }
    /// Byte offset of the first slot.
    pub fn byte_offset(self) -> u64 {
        self.start().byte_offset()
    }
    /// Length in bytes.
    pub fn byte_len(self) -> u64 {
        u64::from(self.len) * crate::header::PAGE_SIZE as u64
    }
    /// Whether `slot` is in the range.
    pub fn contains(self, slot: Slot) -> bool {
        (self.start..self.end()).contains(&slot.0)
    }
    /// The slots, in order.
    pub fn iter(self) -> impl ExactSizeIterator<Item = Slot> + DoubleEndedIterator {
        (self.start..self.end()).map(Slot)
    }
}

/// Small deterministic PRNG (SplitMix64) for reproducible "random slot
/// order" runs: the same seed gives the same sequence of slots.
#[derive(Clone, Debug)]
pub struct SlotRng(u64);

impl SlotRng {
    /// Seeds the generator.
    pub fn new(seed: u64) -> SlotRng {
        SlotRng(seed)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`), without modulo bias.
    pub fn below(&mut self, n: u32) -> u32 {
        assert!(n > 0);
        // Lemire's multiply-shift with rejection.
        let n64 = u64::from(n);
        loop {
            let x = self.next_u64() >> 32;
            let m = x * n64;
            if (m as u32) >= n.wrapping_neg() % n {
                return (m >> 32) as u32;
            }
        }
    }
}

/// Misuse of the swap map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwapMapError {
    /// More slots than a `u32` index can address, or zero slots.
    InvalidSize {
        /// Requested slot count.
        nr_slots: u64,
    },
    /// A bad page index is the header slot or past the end.
    InvalidBadPage {
        /// The bad page.
        page: u32,
        /// Slots in the map.
        nr_slots: u32,
    },
    /// Slot index past the end of the map.
    OutOfRange {
        /// The slot.
        slot: Slot,
        /// Slots in the map.
        nr_slots: u32,
    },
    /// Freeing the header slot or a bad page.
    Reserved {
        /// The slot.
        slot: Slot,
    },
    /// Freeing a slot that is not allocated.
    DoubleFree {
        /// The slot.
        slot: Slot,
    },
}

impl SwapMapError {
    /// Positive errno: `EINVAL` for all (these are caller bugs).
    pub fn errno(&self) -> i32 {
        EINVAL
    }
}

impl fmt::Display for SwapMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SwapMapError::InvalidSize { nr_slots } => write!(
                f,
                "invalid swap map size {nr_slots}: need 1..=2^32-1 slots (header included)"
            ),
            SwapMapError::InvalidBadPage { page, nr_slots } => write!(
                f,
                "bad page {page} is outside the swap area (valid: 1..{nr_slots})"
            ),
            SwapMapError::OutOfRange { slot, nr_slots } => {
                write!(f, "{slot} is outside the swap map ({nr_slots} slots)")
            }
            SwapMapError::Reserved { slot } if slot.0 == 0 => {
                write!(f, "slot 0 holds the swap header and cannot be freed")
            }
            SwapMapError::Reserved { slot } => {
                write!(f, "{slot} is a bad page and cannot be freed")
            }
            SwapMapError::DoubleFree { slot } => {
                write!(f, "double free of swap {slot}: it is not allocated")
            }
        }
    }
}

impl std::error::Error for SwapMapError {}

/// The per-slot bits of 64 slots, side by side: a swap-in's or swap-out's
/// checks of one slot read one cache line (three separate bitmaps would be
/// three random pages of memory).
#[derive(Clone, Copy, Debug, Default)]
struct Bits {
    /// Set = not free (allocated, reserved, or padding past `nr_slots`).
    taken: u64,
    /// Set = reserved (header, bad pages).
    reserved: u64,
    /// Set = the slot's page was all zeros when swapped out: nothing on
    /// the device, zeros on swap-in (mainline's `si->zeromap`).
    zero: u64,
}

/// Slot allocator for one swap area, with its zero map.
#[derive(Clone, Debug)]
pub struct SwapMap {
    nr_slots: u32,
    bits: Vec<Bits>,
    free: u32,
    reserved_count: u32,
    /// Next-fit cursor: where the next scan starts.
    cursor: u32,
}

const fn word(i: u32) -> usize {
    (i / 64) as usize
}
const fn bit(i: u32) -> u64 {
    1 << (i % 64)
}

impl SwapMap {
    /// A map of `nr_slots` slots (the area's `max_pages`, header included):
    /// slot 0 and `bad_pages` reserved, every other slot free.
    pub fn new(nr_slots: u64, bad_pages: &[u32]) -> Result<SwapMap, SwapMapError> {
        if nr_slots == 0 || nr_slots > u64::from(u32::MAX) {
            return Err(SwapMapError::InvalidSize { nr_slots });
        }
        let n = nr_slots as u32;
        let words = n.div_ceil(64) as usize;
        let mut bits = vec![Bits::default(); words];
        if n % 64 != 0 {
            bits[words - 1].taken = !0u64 << (n % 64);
        }
        let mut map = SwapMap {
            nr_slots: n,
            bits,
            free: n,
            reserved_count: 0,
            cursor: 1,
        };
        map.reserve(0);
        for &page in bad_pages {
            if page == 0 || page >= n {
                return Err(SwapMapError::InvalidBadPage { page, nr_slots: n });
            }
            map.reserve(page);
        }
        Ok(map)
    }

    fn reserve(&mut self, i: u32) {
        if self.bits[word(i)].reserved & bit(i) == 0 {
            self.bits[word(i)].reserved |= bit(i);
            self.bits[word(i)].taken |= bit(i);
            self.reserved_count += 1;
            self.free -= 1;
        }
    }

    /// Slots in the map, header included.
    pub fn nr_slots(&self) -> u32 {
        self.nr_slots
    }
    /// Slots currently free.
    pub fn free_count(&self) -> u32 {
        self.free
    }
    /// Slots currently allocated.
    pub fn used_count(&self) -> u32 {
        self.nr_slots - self.free - self.reserved_count
    }
    /// Reserved slots (the header plus distinct bad pages).
    pub fn reserved_count(&self) -> u32 {
        self.reserved_count
    }
    /// Slots that can ever be allocated (`nr_slots - reserved`).
    pub fn usable(&self) -> u32 {
        self.nr_slots - self.reserved_count
    }
    /// Whether `slot` is allocated.
    pub fn is_allocated(&self, slot: Slot) -> bool {
        slot.0 < self.nr_slots
            && self.bits[word(slot.0)].taken & bit(slot.0) != 0
            && !self.is_reserved(slot)
    }
    /// Whether `slot` is the header or a bad page.
    pub fn is_reserved(&self, slot: Slot) -> bool {
        slot.0 < self.nr_slots && self.bits[word(slot.0)].reserved & bit(slot.0) != 0
    }
    /// Whether `slot` is free.
    pub fn is_free(&self, slot: Slot) -> bool {
        slot.0 < self.nr_slots && self.bits[word(slot.0)].taken & bit(slot.0) == 0
    }
    /// Whether `slot` is marked as holding a page of zeros (the zero map;
    /// out of range: no).
    pub fn is_zero(&self, slot: Slot) -> bool {
        slot.0 < self.nr_slots && self.bits[word(slot.0)].zero & bit(slot.0) != 0
    }
    /// Marks `slot` as holding a page of zeros, or not (out of range:
    /// ignored).
    pub fn set_zero(&mut self, slot: Slot, zero: bool) {
        if slot.0 < self.nr_slots {
            let w = &mut self.bits[word(slot.0)].zero;
            if zero {
                *w |= bit(slot.0);
            } else {
                *w &= !bit(slot.0);
            }
        }
    }

    /// First free slot in `[from, to)`.
    fn find_free(&self, from: u32, to: u32) -> Option<u32> {
        let mut i = from;
        while i < to {
            let w = !self.bits[word(i)].taken & (!0u64 << (i % 64));
            if w != 0 {
                let found = (i & !63) + w.trailing_zeros();
                return (found < to).then_some(found);
            }
            i = (i & !63) + 64;
        }
        None
    }

    /// First taken slot in `[from, to)`, or `to`.
    fn find_taken(&self, from: u32, to: u32) -> u32 {
        let mut i = from;
        while i < to {
            let w = self.bits[word(i)].taken & (!0u64 << (i % 64));
            if w != 0 {
                return ((i & !63) + w.trailing_zeros()).min(to);
            }
            i = (i & !63) + 64;
        }
        to
    }

    fn take(&mut self, start: u32, len: u32) {
        for i in start..start + len {
            debug_assert!(self.bits[word(i)].taken & bit(i) == 0);
            self.bits[word(i)].taken |= bit(i);
        }
        self.free -= len;
        self.cursor = if start + len >= self.nr_slots {
            1
        } else {
            start + len
        };
    }

    /// Allocates one slot, next-fit from the cursor (wrapping once).
    pub fn alloc(&mut self) -> Option<Slot> {
        if self.free == 0 {
            return None;
        }
        let found = self
            .find_free(self.cursor, self.nr_slots)
            .or_else(|| self.find_free(1, self.cursor))?;
        self.take(found, 1);
        Some(Slot(found))
    }

    /// Allocates `n` consecutive slots (for one batched I/O), first fit from
    /// the cursor, then from the start. `None` if `n == 0` or no free run of
    /// `n` slots exists (free space may be fragmented).
    pub fn alloc_contiguous(&mut self, n: u32) -> Option<SlotRange> {
        if n == 0 || n > self.free {
            return None;
        }
        let start = self
            .find_run(self.cursor, self.nr_slots, n)
            .or_else(|| self.find_run(1, self.nr_slots, n))?;
        self.take(start, n);
        Some(SlotRange { start, len: n })
    }

    /// Allocates `n` (a power of two, at most [`SWAPFILE_CLUSTER`])
    /// consecutive slots starting at a multiple of `n`, so inside one
    /// cluster: what a large folio's swap entries need (mainline allocates
    /// them naturally aligned in a cluster of their order). `None` when no
    /// such free run exists.
    pub fn alloc_aligned(&mut self, n: u32) -> Option<SlotRange> {
        if n == 0 || !n.is_power_of_two() || n > SWAPFILE_CLUSTER || n > self.free {
            return None;
        }
        let mut start = 0u32;
        while start.checked_add(n)? <= self.nr_slots {
            let end = self.find_taken(start, start + n);
            if end == start + n {
                self.take(start, n);
                return Some(SlotRange { start, len: n });
            }
            // The next aligned start past the taken slot.
            start = (end / n + 1) * n;
        }
        None
    }

    fn find_run(&self, mut from: u32, to: u32, n: u32) -> Option<u32> {
        while let Some(start) = self.find_free(from, to) {
            let end = self.find_taken(start, to);
            if end - start >= n {
                return Some(start);
            }
            from = end;
        }
        None
    }

    /// Allocates a slot chosen uniformly among the free ones (deterministic
    /// for a given `rng` state), for the demo's "random slot order".
    pub fn alloc_random(&mut self, rng: &mut SlotRng) -> Option<Slot> {
        if self.free == 0 {
            return None;
        }
        let mut k = rng.below(self.free);
        for (wi, b) in self.bits.iter().enumerate() {
            let free_bits = !b.taken;
            let ones = free_bits.count_ones();
            if k < ones {
                // Select the k-th set bit of free_bits.
                let mut b = free_bits;
                for _ in 0..k {
                    b &= b - 1;
                }
                let slot = wi as u32 * 64 + b.trailing_zeros();
                self.bits[wi].taken |= 1 << (slot % 64);
                self.free -= 1;
                return Some(Slot(slot));
            }
            k -= ones;
        }
        unreachable!("free count out of sync with bitmap")
    }

    fn check_free(&self, slot: Slot) -> Result<(), SwapMapError> {
        if slot.0 >= self.nr_slots {
            Err(SwapMapError::OutOfRange {
                slot,
                nr_slots: self.nr_slots,
            })
        } else if self.is_reserved(slot) {
            Err(SwapMapError::Reserved { slot })
        } else if self.is_free(slot) {
            Err(SwapMapError::DoubleFree { slot })
        } else {
            Ok(())
        }
    }

    /// Frees an allocated slot (and clears its zero bit). Freeing a free slot, a reserved slot or one
    /// past the end is an error and leaves the map unchanged.
    pub fn free(&mut self, slot: Slot) -> Result<(), SwapMapError> {
        self.check_free(slot)?;
        let b = &mut self.bits[word(slot.0)];
        b.taken &= !bit(slot.0);
        b.zero &= !bit(slot.0);
        self.free += 1;
        Ok(())
    }

    /// Frees every slot of `range`; all-or-nothing (checked first).
    pub fn free_range(&mut self, range: SlotRange) -> Result<(), SwapMapError> {
        for slot in range.iter() {
            self.check_free(slot)?;
        }
        for slot in range.iter() {
            let b = &mut self.bits[word(slot.0)];
            b.taken &= !bit(slot.0);
            b.zero &= !bit(slot.0);
        }
        self.free += range.len;
        Ok(())
    }

    /// Allocated slots in increasing order.
    pub fn allocated(&self) -> impl Iterator<Item = Slot> + '_ {
        (1..self.nr_slots)
            .map(Slot)
            .filter(|&s| self.is_allocated(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_bits() {
        let mut m = SwapMap::new(130, &[]).unwrap();
        assert!(!m.is_zero(Slot(129)));
        m.set_zero(Slot(129), true);
        m.set_zero(Slot(3), true);
        assert!(m.is_zero(Slot(129)) && m.is_zero(Slot(3)) && !m.is_zero(Slot(4)));
        // Independent of allocation.
        assert!(m.is_free(Slot(129)) && m.alloc_contiguous(129).is_some());
        assert!(m.is_zero(Slot(129)) && m.is_allocated(Slot(129)));
        m.set_zero(Slot(129), false);
        assert!(!m.is_zero(Slot(129)));
        m.set_zero(Slot(1000), true); // out of range: ignored
        assert!(!m.is_zero(Slot(1000)));
        // Freeing clears it.
        m.set_zero(Slot(5), true);
        m.free(Slot(5)).unwrap();
        assert!(!m.is_zero(Slot(5)));
    }

    #[test]
    fn aligned_runs_start_at_a_multiple_of_their_length() {
        let mut m = SwapMap::new(64, &[]).unwrap();
        // Slot 0 is the header: the first aligned run of 8 is [8, 16).
        assert_eq!(
            m.alloc_aligned(8).map(|r| (r.start().index(), r.len())),
            Some((8, 8))
        );
        let r = m.alloc_aligned(4).unwrap();
        assert_eq!(r.start().index(), 4, "[4, 8): [0, 4) holds the header");
        assert_eq!(m.alloc_aligned(16).map(|r| r.start().index()), Some(16));
        assert_eq!(m.alloc_aligned(32).map(|r| r.start().index()), Some(32));
        assert_eq!(m.alloc_aligned(2).map(|r| r.start().index()), Some(2));
        assert_eq!(m.alloc_aligned(2), None, "slot 1 is left, not a pair");
        assert_eq!(m.alloc_aligned(1).map(|r| r.start().index()), Some(1));
        assert_eq!(m.alloc_aligned(3), None, "not a power of two");
        assert_eq!(m.alloc_aligned(1024), None, "larger than a cluster");
    }
    use std::collections::BTreeSet;

    #[test]
    fn never_hands_out_header_or_bad_pages() {
        let bad = [3, 4, 64, 99];
        let mut m = SwapMap::new(100, &bad).unwrap();
        assert_eq!(m.nr_slots(), 100);
        assert_eq!(m.reserved_count(), 5);
        assert_eq!(m.usable(), 95);
        assert_eq!(m.free_count(), 95);
        let mut got = BTreeSet::new();
        while let Some(s) = m.alloc() {
            assert!(got.insert(s), "{s} handed out twice");
        }
        assert_eq!(got.len(), 95);
        assert!(!got.contains(&Slot(0)));
        for b in bad {
            assert!(!got.contains(&Slot(b)));
            assert!(m.is_reserved(Slot(b)));
        }
        assert_eq!(m.free_count(), 0);
        assert_eq!(m.used_count(), 95);
        assert_eq!(m.alloc_contiguous(1), None);
        assert_eq!(m.alloc_random(&mut SlotRng::new(1)), None);
    }

    #[test]
    fn random_and_contiguous_also_skip_reserved() {
        let bad: Vec<u32> = (1..200).step_by(7).collect();
        let mut m = SwapMap::new(200, &bad).unwrap();
        let mut rng = SlotRng::new(42);
        let mut n = 0;
        while let Some(s) = m.alloc_random(&mut rng) {
            assert_ne!(s.index(), 0);
            assert!(!bad.contains(&s.index()));
            n += 1;
        }
        assert_eq!(n, 199 - bad.len());
        let mut m = SwapMap::new(200, &bad).unwrap();
        while let Some(r) = m.alloc_contiguous(3) {
            for s in r.iter() {
                assert_ne!(s.index(), 0);
                assert!(!bad.contains(&s.index()), "{s}");
            }
        }
    }

    #[test]
    fn sequential_allocation_and_slot_offsets() {
        let mut m = SwapMap::new(10, &[]).unwrap();
        let s = m.alloc().unwrap();
        assert_eq!(s, Slot(1));
        assert_eq!(s.byte_offset(), 4096);
        assert_eq!(m.alloc(), Some(Slot(2)));
        m.free(Slot(1)).unwrap();
        // Next fit: continues after the cursor before reusing slot 1.
        assert_eq!(m.alloc(), Some(Slot(3)));
        for _ in 4..10 {
            m.alloc().unwrap();
        }
        assert_eq!(m.alloc(), Some(Slot(1)), "wraps to reuse freed slot");
        assert_eq!(m.alloc(), None);
    }

    #[test]
    fn double_free_is_an_error() {
        let mut m = SwapMap::new(16, &[5]).unwrap();
        let s = m.alloc().unwrap();
        m.free(s).unwrap();
        let e = m.free(s).unwrap_err();
        assert_eq!(e, SwapMapError::DoubleFree { slot: s });
        assert_eq!(e.errno(), EINVAL);
        assert!(e.to_string().contains("double free"), "{e}");
        assert_eq!(m.free_count(), 14);
        // Never allocated.
        assert_eq!(
            m.free(Slot(9)).unwrap_err(),
            SwapMapError::DoubleFree { slot: Slot(9) }
        );
        // Reserved slots.
        let e = m.free(Slot(0)).unwrap_err();
        assert_eq!(e, SwapMapError::Reserved { slot: Slot(0) });
        assert!(e.to_string().contains("header"));
        assert_eq!(
            m.free(Slot(5)).unwrap_err(),
            SwapMapError::Reserved { slot: Slot(5) }
        );
        // Out of range.
        assert_eq!(
            m.free(Slot(16)).unwrap_err(),
            SwapMapError::OutOfRange {
                slot: Slot(16),
                nr_slots: 16
            }
        );
        assert_eq!(m.free_count(), 14);
        assert_eq!(m.used_count(), 0);
    }

    #[test]
    fn contiguous_allocation() {
        let mut m = SwapMap::new(100, &[50]).unwrap();
        let a = m.alloc_contiguous(32).unwrap();
        assert_eq!((a.start(), a.len(), a.end()), (Slot(1), 32, 33));
        assert_eq!(a.byte_offset(), 4096);
        assert_eq!(a.byte_len(), 32 * 4096);
        // 33..50 is only 17 long: the next run of 32 starts after bad page 50.
        let b = m.alloc_contiguous(32).unwrap();
        assert_eq!(b.start(), Slot(51));
        assert!(!b.contains(Slot(50)));
        assert_eq!(m.used_count(), 64);
        // 17 + 17 free left, split by 50 and b: no run of 18.
        assert_eq!(m.alloc_contiguous(18), None);
        let c = m.alloc_contiguous(17).unwrap();
        assert_eq!(c.start(), Slot(83));
        let d = m.alloc_contiguous(17).unwrap();
        assert_eq!(d.start(), Slot(33), "wraps around to the first fit");
        assert_eq!(m.free_count(), 0);
        assert_eq!(m.alloc_contiguous(0), None);

        // Freeing a range makes it available again, all-or-nothing.
        m.free_range(b).unwrap();
        assert_eq!(m.free_count(), 32);
        assert_eq!(
            m.free_range(b).unwrap_err(),
            SwapMapError::DoubleFree { slot: Slot(51) }
        );
        m.free(Slot(40)).unwrap();
        let before = m.free_count();
        assert_eq!(
            m.free_range(SlotRange::new(Slot(39), 3)).unwrap_err(),
            SwapMapError::DoubleFree { slot: Slot(40) }
        );
        assert_eq!(m.free_count(), before, "failed free_range changed nothing");
        assert!(m.is_allocated(Slot(39)));
    }

    #[test]
    fn contiguous_runs_cross_word_boundaries() {
        let mut m = SwapMap::new(1000, &[]).unwrap();
        m.alloc_contiguous(60).unwrap();
        let r = m.alloc_contiguous(200).unwrap();
        assert_eq!((r.start().index(), r.end()), (61, 261));
        assert!(r.iter().all(|s| m.is_allocated(s)));
        assert_eq!(m.alloc_contiguous(1000), None);
        assert_eq!(m.alloc_contiguous(739).map(|r| r.start()), Some(Slot(261)));
        assert_eq!(m.free_count(), 0);
    }

    #[test]
    fn random_order_is_deterministic_per_seed_and_covers_everything() {
        let run = |seed| {
            let mut m = SwapMap::new(130, &[7]).unwrap();
            let mut rng = SlotRng::new(seed);
            std::iter::from_fn(|| m.alloc_random(&mut rng)).collect::<Vec<_>>()
        };
        let a = run(1);
        assert_eq!(a, run(1));
        assert_ne!(a, run(2));
        assert_eq!(a.len(), 128);
        let sorted: BTreeSet<_> = a.iter().copied().collect();
        assert_eq!(sorted.len(), 128);
        assert_ne!(
            a,
            sorted.iter().copied().collect::<Vec<_>>(),
            "not sequential"
        );
    }

    #[test]
    fn construction_errors() {
        assert_eq!(
            SwapMap::new(0, &[]).unwrap_err(),
            SwapMapError::InvalidSize { nr_slots: 0 }
        );
        assert!(SwapMap::new(1 << 32, &[]).is_err());
        assert_eq!(
            SwapMap::new(10, &[0]).unwrap_err(),
            SwapMapError::InvalidBadPage {
                page: 0,
                nr_slots: 10
            }
        );
        assert!(SwapMap::new(10, &[10]).is_err());
        // Header-only map: nothing to hand out.
        let mut m = SwapMap::new(1, &[]).unwrap();
        assert_eq!(m.alloc(), None);
        assert_eq!(m.usable(), 0);
        // Duplicate bad pages count once.
        assert_eq!(SwapMap::new(10, &[2, 2]).unwrap().reserved_count(), 2);
    }

    #[test]
    fn rng_below_is_in_range() {
        let mut r = SlotRng::new(0);
        for n in [1u32, 2, 3, 7, 64, 1000, u32::MAX] {
            for _ in 0..100 {
                assert!(r.below(n) < n);
            }
        }
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;
        use std::collections::BTreeSet;

        #[derive(Debug, Clone)]
        enum Op {
            Alloc,
            Contig(u32),
            Random(u64),
            FreeNth(usize),
            FreeAny(u32),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                Just(Op::Alloc),
                (1u32..70).prop_map(Op::Contig),
                any::<u64>().prop_map(Op::Random),
                any::<usize>().prop_map(Op::FreeNth),
                (0u32..300).prop_map(Op::FreeAny),
            ]
        }

        proptest! {
            // Under Miri: fewer cases, and no regression file (no file system).
            #![proptest_config(if cfg!(miri) {
                ProptestConfig { cases: 4, failure_persistence: None, ..ProptestConfig::default() }
            } else {
                ProptestConfig::default()
            })]

            #[test]
            fn matches_a_set_model(
                nr in 1u64..300,
                bad in proptest::collection::vec(1u32..300, 0..10),
                ops in proptest::collection::vec(op(), 0..if cfg!(miri) { 12 } else { 200 }),
            ) {
                let bad: Vec<u32> = bad.into_iter().filter(|&b| u64::from(b) < nr).collect();
                let mut m = SwapMap::new(nr, &bad).unwrap();
                let reserved: BTreeSet<u32> = bad.iter().copied().chain([0]).collect();
                let mut model = BTreeSet::new();
                let check_new = |model: &mut BTreeSet<u32>, s: Slot| {
                    assert!(u64::from(s.index()) < nr);
                    assert!(!reserved.contains(&s.index()), "reserved {s} handed out");
                    assert!(model.insert(s.index()), "{s} handed out twice");
                };
                for op in ops {
                    match op {
                        Op::Alloc => match m.alloc() {
                            Some(s) => check_new(&mut model, s),
                            None => prop_assert_eq!(m.free_count(), 0),
                        },
                        Op::Contig(n) => {
                            if let Some(r) = m.alloc_contiguous(n) {
                                prop_assert_eq!(r.len(), n);
                                for s in r.iter() { check_new(&mut model, s); }
                            }
                        }
                        Op::Random(seed) => match m.alloc_random(&mut SlotRng::new(seed)) {
                            Some(s) => check_new(&mut model, s),
                            None => prop_assert_eq!(m.free_count(), 0),
                        },
                        Op::FreeNth(i) => {
                            if !model.is_empty() {
                                let s = *model.iter().nth(i % model.len()).unwrap();
                                m.free(Slot::new(s)).unwrap();
                                model.remove(&s);
                            }
                        }
                        Op::FreeAny(s) => {
                            let r = m.free(Slot::new(s));
                            prop_assert_eq!(r.is_ok(), model.remove(&s));
                        }
                    }
                    prop_assert_eq!(m.used_count() as usize, model.len());
                    prop_assert_eq!(
                        m.free_count() as u64 + model.len() as u64 + reserved.len() as u64,
                        nr
                    );
                }
                prop_assert_eq!(m.allocated().map(Slot::index).collect::<BTreeSet<_>>(), model);
            }
        }
    }
}
