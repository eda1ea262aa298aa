//! The swap cache: what each slot holds in memory while its data moves, so
//! that no swap-in reads a slot's old bytes and no slot is reused while a
//! write to it is still on its way.
//!
//! Linux reference: `mm/swap_state.c` (`swap_cache_get_folio`,
//! `add_to_swap_cache`, `swap_cluster_readahead`), `mm/swapfile.c`
//! (`SWAP_HAS_CACHE`: a slot whose folio is in the swap cache is not freed
//! until the folio leaves it; the zeromap), the swap table of 6.18
//! (`mm/swap_table.h`: one entry per slot).
//!
//! Per slot, at most one entry:
//!
//! | entry | when | a swap-in of the slot | `swap_free` of the slot |
//! |---|---|---|---|
//! | `Writeback` | from `swap_writepage` (in a plug or in flight) until the write completes | gets the page being written, no I/O | deferred until the write completes |
//! | `Redirtied` | after a failed write, until the slot is written again or freed | refused: the slot's data is the dirty page its owner holds, the device's copy is stale (`SwapError::InMemory`), no I/O | at once |
//! | `Reading` | a read in flight (asked for, or read ahead) | shares that read | deferred until the read completes |
//! | `Readahead` | a page read ahead that nobody asked for yet | gets it, no I/O (a readahead hit) | at once (the page is dropped) |
//! | `FolioWriteback` | a large folio written as one segment over its run of slots, until the write completes | gets a copy of the folio's page, no I/O | deferred until the write completes |
//! | `FolioReading` | a large folio read as one segment | `Busy` | deferred until the read completes |
//!
//! A slot with no entry is on the device (or holds zeros: the swap map's
//! zero bits).
//! The cache holds a page under writeback weakly (its owner holds it, and
//! the write batch while in flight), a redirtied page not at all (its owner
//! holds it, and may change it in place: `Arc::get_mut` works on it), and
//! read-ahead pages strongly (nobody else does), at most [`READAHEAD_CACHE_MAX`] of
//! them, oldest evicted first.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Weak};

use iov_iter::{Folio, Page};

/// Most read-ahead pages kept while nobody asks for them (4 MiB); older
/// ones are dropped (reclaim of clean swap-cache pages).
pub const READAHEAD_CACHE_MAX: usize = 1024;

/// Hashes a slot number by one multiplication (Fibonacci hashing): the
/// cache is looked up two to four times per swap-in and swap-out, and the
/// standard library's SipHash, built to resist keys chosen by an attacker,
/// costs more than the rest of the lookup. Slot numbers come from the
/// device's own allocator (or its caller), so nothing here is exposed to
/// such keys. The low bits of the product (the table's bucket) depend on
/// the low bits of the slot, so neighbouring slots land in different
/// buckets; the high bits (the table's tag) on all of them.
#[derive(Default, Clone, Copy)]
struct SlotHasher(u64);

/// 2^64 divided by the golden ratio, odd: multiplying by it permutes the
/// low bits and spreads every bit of the key into the high ones.
const FIB: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for SlotHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used for `u32` keys; any bytes still hash.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(FIB);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0 ^ u64::from(n)).wrapping_mul(FIB);
    }
}

/// What the cache holds for one slot. `C` is the cell a read's completion
/// fills (the swap-in handles' shared state).
pub(crate) enum Entry<C> {
    /// Under writeback: the page being written.
    Writeback {
        page: Weak<Page>,
        /// `swap_free` came while the write was on its way.
        free: bool,
    },
    /// The last write failed: the page its owner holds in memory is the
    /// slot's data, the device's copy is stale.
    Redirtied,
    /// A read in flight.
    Reading {
        cell: Arc<C>,
        /// A swap-in asked for it (else it is read ahead).
        wanted: bool,
        /// `swap_free` came while the read was on its way.
        free: bool,
    },
    /// Read ahead, nobody asked yet.
    Readahead { page: Arc<Page> },
    /// Part of a large folio under writeback as one segment.
    FolioWriteback {
        folio: Weak<Folio>,
        /// The folio's first slot (this slot's page is `slot - first`).
        first: u32,
        /// `swap_free` came while the write was on its way.
        free: bool,
    },
    /// Part of a large folio being read as one segment.
    FolioReading {
        /// `swap_free` came while the read was on its way.
        free: bool,
    },
}

impl<C> Entry<C> {
    /// Whether `swap_free` of the slot is waiting for this entry's I/O.
    pub(crate) fn free_pending(&self) -> bool {
        matches!(
            self,
            Entry::Writeback { free: true, .. }
                | Entry::Reading { free: true, .. }
                | Entry::FolioWriteback { free: true, .. }
                | Entry::FolioReading { free: true }
        )
    }
}

/// The per-slot state table.
pub(crate) struct SwapCache<C> {
    entries: HashMap<u32, Entry<C>, BuildHasherDefault<SlotHasher>>,
    /// Read-ahead slots in the order they were cached (entries may have
    /// left since).
    readahead: VecDeque<u32>,
    readahead_cached: usize,
}

impl<C> SwapCache<C> {
    /// An empty cache.
    pub(crate) fn new() -> SwapCache<C> {
        SwapCache {
            entries: HashMap::default(),
            readahead: VecDeque::new(),
            readahead_cached: 0,
        }
    }

    pub(crate) fn get(&self, slot: u32) -> Option<&Entry<C>> {
        self.entries.get(&slot)
    }

    pub(crate) fn get_mut(&mut self, slot: u32) -> Option<&mut Entry<C>> {
        self.entries.get_mut(&slot)
    }

    /// Sets the slot's entry, returning the old one.
    pub(crate) fn insert(&mut self, slot: u32, entry: Entry<C>) -> Option<Entry<C>> {
        let is_ra = matches!(entry, Entry::Readahead { .. });
        let old = self.entries.insert(slot, entry);
        if matches!(old, Some(Entry::Readahead { .. })) {
            self.readahead_cached -= 1;
        }
        if is_ra {
            self.readahead_cached += 1;
            self.readahead.push_back(slot);
        }
        old
    }

    /// Removes the slot's entry.
    pub(crate) fn remove(&mut self, slot: u32) -> Option<Entry<C>> {
        let old = self.entries.remove(&slot);
        if matches!(old, Some(Entry::Readahead { .. })) {
            self.readahead_cached -= 1;
        }
        old
    }

    /// Removes the slot's entry if `pred` holds for it (one lookup: a
    /// completion taking its own entry out, and no other).
    pub(crate) fn remove_if(
        &mut self,
        slot: u32,
        pred: impl FnOnce(&Entry<C>) -> bool,
    ) -> Option<Entry<C>> {
        use std::collections::hash_map::Entry as Slot;
        let old = match self.entries.entry(slot) {
            Slot::Occupied(o) if pred(o.get()) => o.remove(),
            _ => return None,
        };
        if matches!(old, Entry::Readahead { .. }) {
            self.readahead_cached -= 1;
        }
        Some(old)
    }

    /// Drops the oldest read-ahead pages beyond [`READAHEAD_CACHE_MAX`];
    /// returns how many.
    pub(crate) fn shrink(&mut self) -> usize {
        let mut evicted = 0;
        while self.readahead_cached > READAHEAD_CACHE_MAX {
            let Some(slot) = self.readahead.pop_front() else {
                break;
            };
            if matches!(self.entries.get(&slot), Some(Entry::Readahead { .. })) {
                self.remove(slot);
                evicted += 1;
            }
        }
        // Forget slots whose entry left by other ways, now and then.
        if self.readahead.len() > 4 * READAHEAD_CACHE_MAX {
            let entries = &self.entries;
            self.readahead
                .retain(|s| matches!(entries.get(s), Some(Entry::Readahead { .. })));
        }
        evicted
    }

    /// Read-ahead pages held.
    pub(crate) fn readahead_cached(&self) -> usize {
        self.readahead_cached
    }

    /// Entries of any kind.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Whether every byte of the page is zero (`is_folio_zero_filled`).
pub fn is_zero_filled(bytes: &[u8]) -> bool {
    let (head, words, tail) = {
        // SAFETY: every bit pattern is a valid u64; `align_to` gives the
        // aligned middle and the unaligned ends.
        unsafe { bytes.align_to::<u64>() }
    };
    head.iter().all(|&b| b == 0) && words.iter().all(|&w| w == 0) && tail.iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_filled_pages() {
        let mut page = [0u8; 4096];
        assert!(is_zero_filled(&page));
        page[4095] = 1;
        assert!(!is_zero_filled(&page));
        page[4095] = 0;
        page[0] = 1;
        assert!(!is_zero_filled(&page));
    }

    #[test]
    fn readahead_pages_are_bounded_oldest_first() {
        let mut c = SwapCache::<()>::new();
        for s in 0..(READAHEAD_CACHE_MAX as u32 + 10) {
            c.insert(
                s,
                Entry::Readahead {
                    page: Arc::new(Page::new()),
                },
            );
        }
        c.remove(5); // left by a hit
        assert_eq!(c.readahead_cached(), READAHEAD_CACHE_MAX + 9);
        assert_eq!(c.shrink(), 9);
        assert_eq!(c.readahead_cached(), READAHEAD_CACHE_MAX);
        assert!(c.get(4).is_none() && c.get(9).is_none(), "oldest gone");
        assert!(c.get(10).is_some());
    }
}
