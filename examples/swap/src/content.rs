//! Checksummed page contents and swap-out orders: what the demo, the tests
//! and the stress run write into pages and verify when they come back.
//!
//! A page starts with [`MAGIC`], its index and a seed, then a payload
//! derived from both, and ends with an FNV-1a checksum of the rest, so a
//! page that comes back from the wrong slot, stale or torn is told apart
//! ([`Mismatch`]).

use std::fmt;

use iov_iter::{PAGE_SIZE, Page, PageFlags, PageRef};

use crate::swapcache::is_zero_filled;
use crate::swapio::{SwapDevice, SwapError};
use crate::swapmap::{Slot, SlotRng};

/// The first 8 bytes of every demo page.
pub const MAGIC: &[u8; 8] = b"IOVSWAP1";
/// Header: magic, page index, seed, FNV-1a of the payload (4 × 8 bytes).
const HEADER_LEN: usize = 32;

/// The payload checksum: FNV-1a, 64 bits, over the payload's 64-bit
/// little-endian words (a word at a step, not a byte: an eighth of the
/// work, for the demo and for Miri alike). A trailing part shorter than a
/// word is hashed as a zero-padded word.
pub fn checksum(data: &[u8]) -> u64 {
    data.chunks(8).fold(0xcbf2_9ce4_8422_2325, |h, c| {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        (h ^ u64::from_le_bytes(w)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The payload stream of page `index` under `seed` (xorshift64*).
fn payload(index: u64, seed: u64) -> impl FnMut() -> u64 {
    let mut x = (seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1;
    move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Fills a page: magic, `index`, `seed`, the payload's FNV-1a, then a
/// pseudo-random payload derived from `index` and `seed`.
pub fn fill_page(bytes: &mut [u8; PAGE_SIZE], index: u64, seed: u64) {
    let mut next = payload(index, seed);
    for chunk in bytes[HEADER_LEN..].chunks_exact_mut(8) {
        chunk.copy_from_slice(&next().to_le_bytes());
    }
    let sum = checksum(&bytes[HEADER_LEN..]);
    bytes[..8].copy_from_slice(MAGIC);
    bytes[8..16].copy_from_slice(&index.to_le_bytes());
    bytes[16..24].copy_from_slice(&seed.to_le_bytes());
    bytes[24..32].copy_from_slice(&sum.to_le_bytes());
}

/// How a page differs from what [`fill_page`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// No magic: not a demo page (zeros, or another slot's garbage).
    Magic,
    /// A demo page, but another page's.
    Index {
        /// The index found.
        found: u64,
    },
    /// A demo page from another run.
    Seed {
        /// The seed found.
        found: u64,
    },
    /// The payload does not match its checksum.
    Checksum {
        /// Stored in the header.
        stored: u64,
        /// Computed over the payload.
        computed: u64,
    },
    /// Header and checksum agree, but this byte differs from the pattern.
    Byte {
        /// Offset in the page.
        offset: usize,
    },
    /// The page is not uptodate (or still locked): its read failed.
    NotUptodate,
    /// A zero page ([`zero_page`]) with this byte not zero.
    NotZero {
        /// Offset in the page.
        offset: usize,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Magic => f.write_str("no page magic"),
            Mismatch::Index { found } => write!(f, "holds page {found}"),
            Mismatch::Seed { found } => write!(f, "holds seed {found:#x}"),
            Mismatch::Checksum { stored, computed } => {
                write!(f, "checksum {computed:#018x}, header says {stored:#018x}")
            }
            Mismatch::Byte { offset } => write!(f, "byte {offset} differs"),
            Mismatch::NotUptodate => f.write_str("page not uptodate"),
            Mismatch::NotZero { offset } => write!(f, "zero page has byte {offset} set"),
        }
    }
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Checks every byte of a page against page `index` of `seed`: header,
/// checksum, then the regenerated payload.
///
/// # Errors
///
/// The first difference found.
pub fn check_page(bytes: &[u8; PAGE_SIZE], index: u64, seed: u64) -> Result<(), Mismatch> {
    if &bytes[..8] != MAGIC {
        return Err(Mismatch::Magic);
    }
    let found = u64_at(bytes, 8);
    if found != index {
        return Err(Mismatch::Index { found });
    }
    let found = u64_at(bytes, 16);
    if found != seed {
        return Err(Mismatch::Seed { found });
    }
    let stored = u64_at(bytes, 24);
    let computed = checksum(&bytes[HEADER_LEN..]);
    if stored != computed {
        return Err(Mismatch::Checksum { stored, computed });
    }
    let mut next = payload(index, seed);
    for (i, chunk) in bytes[HEADER_LEN..].chunks_exact(8).enumerate() {
        let want = next().to_le_bytes();
        if chunk != want {
            let j = chunk
                .iter()
                .zip(want)
                .position(|(a, b)| *a != b)
                .unwrap_or(0);
            return Err(Mismatch::Byte {
                offset: HEADER_LEN + 8 * i + j,
            });
        }
    }
    Ok(())
}

/// Checks a swapped-in page: uptodate, unlocked, and [`check_page`].
///
/// # Errors
///
/// [`Mismatch::NotUptodate`], or the first difference.
pub fn check_swapped_in(page: &Page, index: u64, seed: u64) -> Result<(), Mismatch> {
    if !page.test(PageFlags::UPTODATE) || page.test(PageFlags::LOCKED) {
        return Err(Mismatch::NotUptodate);
    }
    check_page(page.as_bytes(), index, seed)
}

/// A fresh page holding page `index` of `seed`, uptodate and dirty (as
/// `add_to_swap` leaves an anonymous page).
pub fn make_page(index: u64, seed: u64) -> PageRef {
    let mut page = Page::new();
    fill_page(page.as_mut_bytes(), index, seed);
    page.set_flags(PageFlags::UPTODATE | PageFlags::DIRTY);
    PageRef::new(page)
}

/// An all-zero page, dirty and uptodate: what a workload swaps out to show
/// the zero map (no write, zeros on swap-in).
pub fn zero_page() -> PageRef {
    let page = Page::new();
    page.set_flags(PageFlags::UPTODATE | PageFlags::DIRTY);
    PageRef::new(page)
}

/// Checks a swapped-in zero page: uptodate, unlocked, every byte zero.
///
/// # Errors
///
/// [`Mismatch::NotUptodate`], or [`Mismatch::NotZero`] at the first byte
/// set.
pub fn check_zero(page: &Page) -> Result<(), Mismatch> {
    if !page.test(PageFlags::UPTODATE) || page.test(PageFlags::LOCKED) {
        return Err(Mismatch::NotUptodate);
    }
    let bytes = page.as_bytes();
    if is_zero_filled(bytes) {
        return Ok(());
    }
    let offset = bytes.iter().position(|&b| b != 0).unwrap_or(0);
    Err(Mismatch::NotZero { offset })
}

/// Fisher-Yates with the map's deterministic generator.
pub fn shuffle<T>(v: &mut [T], rng: &mut SlotRng) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u32 + 1) as usize;
        v.swap(i, j);
    }
}

/// The swap-out order for `pages` pages: half of them in contiguous runs of
/// 1 to `max_run` slots (each run written in slot order, so the plug merges
/// it), the other half on random slots, the runs and single slots shuffled
/// together. Allocates every slot.
///
/// # Errors
///
/// [`SwapError::NoSpace`] when the area has fewer than `pages` free slots.
pub fn plan(
    dev: &SwapDevice,
    pages: usize,
    max_run: u32,
    rng: &mut SlotRng,
) -> Result<Vec<Slot>, SwapError> {
    let free = dev.free_slots();
    if pages as u64 > u64::from(free) {
        return Err(SwapError::NoSpace {
            wanted: pages as u64,
            free: u64::from(free),
        });
    }
    let mut units: Vec<Vec<Slot>> = Vec::new();
    let in_runs = pages / 2;
    let mut left = in_runs;
    while left > 0 {
        let len = (1 + rng.below(max_run.max(1))).min(left as u32);
        match dev.alloc_contiguous(len) {
            Some(run) => units.push(run.iter().collect()),
            // Fragmented: fall back to single slots.
            None => units.extend((0..len).filter_map(|_| dev.alloc_slot()).map(|s| vec![s])),
        }
        left -= len as usize;
    }
    for _ in in_runs..pages {
        if let Some(s) = dev.alloc_random(rng) {
            units.push(vec![s]);
        }
    }
    shuffle(&mut units, rng);
    Ok(units.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_round_trips_and_detects_damage() {
        let seed = 42;
        let page = make_page(7, seed);
        assert!(page.test(PageFlags::DIRTY | PageFlags::UPTODATE));
        let bytes = *page.as_bytes();
        assert_eq!(check_page(&bytes, 7, seed), Ok(()));
        assert_eq!(
            check_page(&bytes, 8, seed),
            Err(Mismatch::Index { found: 7 })
        );
        assert_eq!(
            check_page(&bytes, 7, seed + 1),
            Err(Mismatch::Seed { found: seed })
        );
        assert_eq!(check_page(&[0; PAGE_SIZE], 7, seed), Err(Mismatch::Magic));
        let mut flipped = bytes;
        flipped[1000] ^= 1;
        assert!(matches!(
            check_page(&flipped, 7, seed),
            Err(Mismatch::Checksum { .. })
        ));
        // A payload change that keeps the checksum (the header rewritten to
        // match) is still caught by the byte comparison.
        let mut forged = bytes;
        forged[2000] ^= 0x80;
        let sum = checksum(&forged[HEADER_LEN..]);
        forged[24..32].copy_from_slice(&sum.to_le_bytes());
        assert_eq!(
            check_page(&forged, 7, seed),
            Err(Mismatch::Byte { offset: 2000 })
        );
        // Different pages differ.
        assert_ne!(
            make_page(8, seed).as_bytes()[HEADER_LEN..],
            bytes[HEADER_LEN..]
        );
    }

    #[test]
    fn swapped_in_pages_must_be_uptodate_and_unlocked() {
        let mut page = Page::new();
        fill_page(page.as_mut_bytes(), 3, 9);
        assert_eq!(check_swapped_in(&page, 3, 9), Err(Mismatch::NotUptodate));
        page.set_flags(PageFlags::UPTODATE | PageFlags::LOCKED);
        assert_eq!(check_swapped_in(&page, 3, 9), Err(Mismatch::NotUptodate));
        page.unlock();
        assert_eq!(check_swapped_in(&page, 3, 9), Ok(()));
    }

    #[test]
    fn shuffle_is_a_deterministic_permutation() {
        let mut a: Vec<u32> = (0..1000).collect();
        let mut b = a.clone();
        shuffle(&mut a, &mut SlotRng::new(1));
        shuffle(&mut b, &mut SlotRng::new(1));
        assert_eq!(a, b);
        assert_ne!(a, (0..1000).collect::<Vec<_>>());
        a.sort_unstable();
        assert_eq!(a, (0..1000).collect::<Vec<_>>());
    }
}
