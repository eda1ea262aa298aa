//! `swap_header`: `SwapHeader::parse` (the swap package's `header`) over
//! arbitrary 4096-byte pages and arbitrary `AreaInfo`.
//!
//! - No input may panic.
//! - The result must match an independent reference of the kernel's
//!   `read_swap_header` order (magic, byte order, version, `last_page`,
//!   area size, bad pages on a file, bad-page count, bad-page range), error
//!   variant included; every error is `EINVAL` and displays.
//! - A successful parse round-trips: `parse(to_page(h), area) == h`.
//!
//! Pages come either raw from the input or from a valid header that the
//! input then mutates (fields, bad pages, magic, byte order), so the deep
//! checks are reached quickly.

#![no_main]

use arbitrary::{Result, Unstructured};
use iov_iter_swap::header::{
    AreaInfo, BADPAGES_OFFSET, EINVAL, Endian, HeaderError, LAST_PAGE_OFFSET, Label, MAGIC_OFFSET,
    MAGIC_V0, MAGIC_V1, MAX_SWAP_BADPAGES, NR_BADPAGES_OFFSET, PAGE_SIZE, SwapHeader, Uuid,
    VERSION_OFFSET,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = fuzz_one(&mut u);
});

fn fuzz_one(u: &mut Unstructured) -> Result<()> {
    let mut page = [0u8; PAGE_SIZE];
    if u.arbitrary()? {
        // Raw bytes, optionally with the v1 magic so parsing goes on.
        let n = u.len().min(PAGE_SIZE);
        page[..n].copy_from_slice(u.bytes(n)?);
        if u.arbitrary()? {
            page[MAGIC_OFFSET..].copy_from_slice(MAGIC_V1);
        }
    } else {
        page = valid_page(u)?;
        mutate(u, &mut page)?;
    }
    let area = AreaInfo {
        size_pages: match u.int_in_range(0u8..=3)? {
            0 => None,
            1 => Some(u.int_in_range(0..=100)?),
            _ => Some(u.arbitrary()?),
        },
        regular_file: u.arbitrary()?,
    };
    check(&page, area);
    Ok(())
}

/// A header mkswap could have written, in either byte order.
fn valid_page(u: &mut Unstructured) -> Result<[u8; PAGE_SIZE]> {
    let pages: u64 = match u.int_in_range(0u8..=2)? {
        0 => u.int_in_range(10..=100)?,
        1 => u.int_in_range(10..=u64::from(u32::MAX))?,
        _ => u.arbitrary()?,
    };
    let label_len = u.int_in_range(0..=16)?;
    let label: Vec<u8> = (0..label_len)
        .map(|_| u.int_in_range(1u8..=255))
        .collect::<Result<_>>()?;
    let mut h = SwapHeader::new(
        pages.max(10),
        Uuid(u.arbitrary()?),
        Label::from_bytes(&label).expect("1..=255, at most 16"),
    )
    .expect("at least 10 pages");
    if u.arbitrary()? {
        let n = u.int_in_range(0..=MAX_SWAP_BADPAGES as usize)?;
        let bad: Vec<u32> = (0..n)
            .map(|_| u.int_in_range(1..=h.last_page))
            .collect::<Result<_>>()?;
        h = h.with_badpages(bad).expect("in range, not too many");
    }
    if u.arbitrary()? {
        h.endian = match Endian::NATIVE {
            Endian::Little => Endian::Big,
            Endian::Big => Endian::Little,
        };
    }
    Ok(h.to_page())
}

fn mutate(u: &mut Unstructured, page: &mut [u8; PAGE_SIZE]) -> Result<()> {
    for _ in 0..u.int_in_range(0..=4)? {
        let put = |page: &mut [u8; PAGE_SIZE], off: usize, v: u32| {
            page[off..off + 4].copy_from_slice(&v.to_ne_bytes())
        };
        match u.int_in_range(0u8..=9)? {
            0 => put(page, VERSION_OFFSET, u.arbitrary()?),
            1 => put(page, LAST_PAGE_OFFSET, u.arbitrary()?),
            2 => put(page, LAST_PAGE_OFFSET, 0),
            3 => put(page, NR_BADPAGES_OFFSET, u.arbitrary()?),
            4 => {
                let n = *u.choose(&[MAX_SWAP_BADPAGES, MAX_SWAP_BADPAGES + 1])?;
                let n = if u.arbitrary()? { n.swap_bytes() } else { n };
                put(page, NR_BADPAGES_OFFSET, n)
            }
            5 => {
                let i = u.int_in_range(0..=MAX_SWAP_BADPAGES as usize - 1)?;
                put(page, BADPAGES_OFFSET + 4 * i, u.arbitrary()?)
            }
            6 => page[MAGIC_OFFSET..].copy_from_slice(MAGIC_V0),
            7 => {
                let i = u.int_in_range(MAGIC_OFFSET..=PAGE_SIZE - 1)?;
                page[i] = u.arbitrary()?;
            }
            _ => {
                let i = u.int_in_range(0..=PAGE_SIZE - 1)?;
                page[i] = u.arbitrary()?;
            }
        }
    }
    Ok(())
}

/// `read_swap_header` (mm/swapfile.c) and `setup_swap_map`'s bad-page
/// range check, in order, written independently of `header.rs`.
fn reference(page: &[u8; PAGE_SIZE], area: AreaInfo) -> Result<(u32, Vec<u32>), HeaderError> {
    let magic = &page[PAGE_SIZE - 10..];
    if magic != b"SWAPSPACE2" {
        return Err(if magic == b"SWAP-SPACE" {
            HeaderError::OldV0Signature
        } else {
            HeaderError::NoSignature
        });
    }
    let word =
        |off: usize| u32::from_ne_bytes([page[off], page[off + 1], page[off + 2], page[off + 3]]);
    let swab = word(1024).swap_bytes() == 1;
    let get = |off: usize| {
        if swab {
            word(off).swap_bytes()
        } else {
            word(off)
        }
    };
    let (version, last_page, nr_badpages) = (get(1024), get(1028), get(1032));
    if swab && nr_badpages > 637 {
        return Err(HeaderError::TooManyBadPages { nr_badpages });
    }
    if version != 1 {
        return Err(HeaderError::UnsupportedVersion { version });
    }
    if last_page == 0 {
        return Err(HeaderError::EmptySwapFile);
    }
    let header_pages = u64::from(last_page) + 1;
    if let Some(file_pages) = area.size_pages
        && file_pages < header_pages
    {
        return Err(HeaderError::AreaShorterThanSignature {
            header_pages,
            file_pages,
        });
    }
    if area.regular_file && nr_badpages != 0 {
        return Err(HeaderError::BadPagesOnRegularFile { nr_badpages });
    }
    if nr_badpages > 637 {
        return Err(HeaderError::TooManyBadPages { nr_badpages });
    }
    let bad: Vec<u32> = (0..nr_badpages as usize)
        .map(|i| get(1536 + 4 * i))
        .collect();
    if let Some(&page) = bad.iter().find(|&&p| p == 0 || p > last_page) {
        return Err(HeaderError::BadPageOutOfRange { page, last_page });
    }
    Ok((last_page, bad))
}

fn check(page: &[u8; PAGE_SIZE], area: AreaInfo) {
    let got = SwapHeader::parse(page, area);
    let want = reference(page, area);
    match (&got, &want) {
        (Ok(h), Ok((last_page, bad))) => {
            assert_eq!((h.last_page, &h.badpages), (*last_page, bad));
            assert_eq!(&h.uuid.0[..], &page[1036..1052]);
            let label = &page[1052..1068];
            let end = label.iter().position(|&b| b == 0).unwrap_or(16);
            assert_eq!(h.label.as_bytes(), &label[..end]);
            assert_eq!(h.max_pages(), u64::from(h.last_page) + 1);
            // Round trip.
            let again = SwapHeader::parse(&h.to_page(), area);
            assert_eq!(again.as_ref(), Ok(h), "round trip");
            let mut p2 = [0xffu8; PAGE_SIZE];
            h.write_page(&mut p2);
            assert_eq!(p2, h.to_page());
        }
        (Err(g), Err(w)) => {
            assert_eq!(g, w);
            assert_eq!(g.errno(), EINVAL);
            assert!(!g.to_string().is_empty());
        }
        _ => panic!("parse gave {got:?}, reference {want:?}"),
    }
}
