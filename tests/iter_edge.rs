//! Edge cases of the kernel's iov_iter (`lib/iov_iter.c`, `include/linux/uio.h`:
//! empty segments, popping, revert, truncate / reexpand) and the typed
//! errors this crate returns where C has undefined behaviour, a `BUG` or a
//! `WARN`. Every expected value is computed by hand from the kernel rules
//! (page-aligned buffers make addresses predictable), not read back from the
//! implementation. No test makes a syscall, so all run under Miri (except the
//! `MAX_RW_COUNT` clamping test, see there).

mod common;
use common::all_bytes;

use std::io::{IoSlice, IoSliceMut, Read, Write};

use iov_iter::{
    AnyIter, Bvec, BvecSeg, Dest, Direction, Discard, Errno, Error, IoSeg, IoSegMut, IovIter,
    Iovec, IovecArray, Kind, Kvec, MAX_RW_COUNT, PAGE_SIZE, Page, PageAddr, PageFrame, Source,
    UIO_FASTIOV, UIO_MAXIOV, Ubuf, UserIovec, import_iovec,
};

// ------------------------------------------------------------------ helpers

/// `n` page frames seen as one page-aligned byte buffer, so that the low
/// 12 bits of every address are the offset we chose.
struct Frames(Vec<PageFrame>);

impl Frames {
    fn new(n: usize) -> Frames {
        Frames((0..n).map(|_| PageFrame::zeroed()).collect())
    }
    fn addr(&self) -> usize {
        self.0.as_ptr() as usize
    }
    fn bytes(&self) -> &[u8] {
        // SAFETY: a Vec's elements are contiguous; `PageFrame` is `repr(C)`
        // around `[u8; PAGE_SIZE]` with no padding, so these are
        // `len * PAGE_SIZE` initialised bytes borrowed from `self`.
        unsafe {
            std::slice::from_raw_parts(self.0.as_ptr().cast::<u8>(), self.0.len() * PAGE_SIZE)
        }
    }
}

/// `(count, nr_segs, iov_offset)`: the position a test compares.
fn pos<D: Direction, K: Kind>(it: &IovIter<'_, D, K>) -> (usize, usize, usize) {
    (it.count(), it.nr_segs(), it.iov_offset())
}

/// Reverting one byte more than was consumed is `RevertPastStart` (EINVAL)
/// and changes nothing; reverting exactly what was consumed then works and
/// gives back `count_at_start`.
fn check_revert_past_start<D: Direction, K: Kind>(
    it: &mut IovIter<'_, D, K>,
    consumed: usize,
    count_at_start: usize,
) {
    let before = pos(it);
    let err = it.revert(consumed + 1).unwrap_err();
    assert_eq!(
        err,
        Error::RevertPastStart {
            requested: consumed + 1,
            consumed
        }
    );
    assert_eq!(err.errno(), Errno::EINVAL);
    assert_eq!(
        pos(it),
        before,
        "a failed revert must not move the iterator"
    );
    it.revert(consumed).unwrap();
    assert_eq!(it.count(), count_at_start);
    assert_eq!(it.iov_offset(), 0);
}

fn copy_all<K: Kind>(it: &mut IovIter<'_, Source, K>) -> Vec<u8> {
    let mut out = vec![0u8; it.count()];
    assert_eq!(it.copy_from_iter(&mut out), out.len());
    out
}

// ----------------------------------------------------- segments and popping

#[test]
fn copy_skips_zero_length_segments() {
    let (mut a, mut b) = ([0u8; 3], [0u8; 2]);
    {
        let mut segs = [
            IoSegMut::new(&mut []),
            IoSegMut::new(&mut a),
            IoSegMut::new(&mut []),
            IoSegMut::new(&mut []),
            IoSegMut::new(&mut b),
        ];
        let mut it = IovIter::<Dest, Kvec>::new(&mut segs);
        assert_eq!(pos(&it), (5, 5, 0));
        assert_eq!(it.copy_to_iter(b"hello"), 5);
        assert_eq!(pos(&it), (0, 0, 0));
    }
    assert_eq!((&a, &b), (b"hel", b"lo"));

    // The step never sees an empty chunk, and `progress` runs on.
    let (x, y) = (*b"abc", *b"de");
    let segs = [
        IoSeg::new(&[]),
        IoSeg::new(&x),
        IoSeg::new(&[]),
        IoSeg::new(&y),
        IoSeg::new(&[]),
    ];
    let mut it = IovIter::<Source, Iovec>::new(&segs);
    let mut steps = Vec::new();
    let n = it.iterate(usize::MAX, |chunk, progress| {
        steps.push((chunk.to_vec(), progress));
        0
    });
    assert_eq!(n, 5);
    assert_eq!(steps, vec![(b"abc".to_vec(), 0), (b"de".to_vec(), 3)]);
    let it = IovIter::<Source, Iovec>::new(&segs);
    let chunks: Vec<&[u8]> = it.chunks().collect();
    assert_eq!(chunks, vec![&b"abc"[..], &b"de"[..]]);
}

#[test]
fn consumed_segments_are_popped() {
    let (a, b, c) = (*b"0123", *b"4567", *b"89ab");
    let segs = [IoSeg::new(&a), IoSeg::new(&b), IoSeg::new(&c)];
    let mut it = IovIter::<Source, Kvec>::new(&segs);
    let mut out = [0u8; 16];
    assert_eq!(it.copy_from_iter(&mut out[..2]), 2);
    assert_eq!(pos(&it), (10, 3, 2));
    // Exactly to the end of a segment: popped, offset 0 in the next.
    assert_eq!(it.copy_from_iter(&mut out[2..4]), 2);
    assert_eq!(pos(&it), (8, 2, 0));
    assert_eq!(it.copy_from_iter(&mut out[4..9]), 5);
    assert_eq!(pos(&it), (3, 1, 1));
    // Asking for more than is left copies what is left and pops the rest.
    assert_eq!(it.copy_from_iter(&mut out[9..]), 3);
    assert_eq!(pos(&it), (0, 0, 0));
    assert_eq!(&out[..12], b"0123456789ab");
    assert_eq!(it.copy_from_iter(&mut out), 0);

    // Same walk over page segments.
    let (p0, p1) = (Page::new(), Page::new());
    let segs = [
        BvecSeg::new(&p0, 100, 4).unwrap(),
        BvecSeg::new(&p1, 4000, 96).unwrap(),
    ];
    let mut it = IovIter::<Source, Bvec>::new(&segs);
    assert_eq!(it.copy_from_iter(&mut out[..4]), 4);
    assert_eq!(pos(&it), (96, 1, 0));
    let mut big = [0u8; 200];
    assert_eq!(it.copy_from_iter(&mut big), 96);
    assert_eq!(pos(&it), (0, 0, 0));
}

#[test]
fn trailing_empty_segment_copy_keeps_it_advance_pops_it() {
    // iterate_iovec stops as soon as the length runs out, so a trailing empty
    // segment is still there after a copy to the end; iov_iter_advance walks
    // `size < len` and pops it.
    let a = *b"abc";
    let segs = [IoSeg::new(&a), IoSeg::new(&[])];
    let mut it = IovIter::<Source, Kvec>::new(&segs);
    assert_eq!(copy_all(&mut it), b"abc");
    assert_eq!(pos(&it), (0, 1, 0));

    let mut it = IovIter::<Source, Kvec>::new(&segs);
    it.advance(3);
    assert_eq!(pos(&it), (0, 0, 0));
}

#[test]
fn advance_on_empty_iterator_does_not_move() {
    let a = *b"abcd";
    let segs = [IoSeg::new(&[]), IoSeg::new(&a)];
    // With count > 0, even advance(0) pops the leading empty segment...
    let mut it = IovIter::<Source, Kvec>::new(&segs);
    it.advance(0);
    assert_eq!(pos(&it), (4, 1, 0));
    // ...but with count == 0 the kernel returns at once.
    let mut it = IovIter::<Source, Kvec>::new(&segs);
    it.truncate(0);
    it.advance(0);
    it.advance(10);
    assert_eq!(pos(&it), (0, 2, 0));

    let (p0, p1) = (Page::new(), Page::new());
    let segs = [BvecSeg::new(&p0, 0, 0).unwrap(), BvecSeg::full(&p1)];
    let mut it = IovIter::<Source, Bvec>::new(&segs);
    it.truncate(0);
    it.advance(4096);
    assert_eq!(pos(&it), (0, 2, 0));
}

#[test]
fn advance_clamps_to_count() {
    let (a, b) = (*b"abcd", *b"efgh");
    let segs = [IoSeg::new(&a), IoSeg::new(&b)];
    let mut it = IovIter::<Source, Iovec>::new(&segs);
    it.advance(100);
    assert_eq!(pos(&it), (0, 0, 0));

    // Clamped to a truncated count: stops 5 bytes in, inside `b`.
    let mut it = IovIter::<Source, Iovec>::new(&segs);
    it.truncate(5);
    it.advance(100);
    assert_eq!(pos(&it), (0, 1, 1));
    it.reexpand(3).unwrap();
    assert_eq!(copy_all(&mut it), b"fgh");

    let buf = [7u8; 10];
    let mut it = IovIter::<Source, Ubuf>::new(&buf);
    it.advance(3);
    assert_eq!(pos(&it), (7, 1, 3));
    it.advance(usize::MAX);
    assert_eq!(pos(&it), (0, 1, 10));

    let mut it = IovIter::<Dest, Discard>::new(10);
    it.advance(usize::MAX);
    assert_eq!(pos(&it), (0, 0, 10));

    let p = Page::new();
    let segs = [BvecSeg::new(&p, 10, 20).unwrap()];
    let mut it = IovIter::<Source, Bvec>::new(&segs);
    it.advance(21);
    assert_eq!(pos(&it), (0, 0, 0));
}

// ------------------------------------------------------------------- revert

#[test]
fn revert_past_start_every_kind() {
    let (a, b) = (*b"abc", *b"defgh");
    let segs = [IoSeg::new(&a), IoSeg::new(&[]), IoSeg::new(&b)];

    let mut it = IovIter::<Source, Iovec>::new(&segs);
    check_revert_past_start(&mut it, 0, 8);
    it.advance(6);
    assert_eq!(pos(&it), (2, 1, 3));
    check_revert_past_start(&mut it, 6, 8);
    assert_eq!(it.nr_segs(), 3);

    let mut it = IovIter::<Source, Kvec>::new(&segs);
    assert_eq!(copy_all(&mut it), b"abcdefgh");
    check_revert_past_start(&mut it, 8, 8);

    let (mut c, mut d) = ([0u8; 3], [0u8; 5]);
    let mut msegs = [IoSegMut::new(&mut c), IoSegMut::new(&mut d)];
    let mut it = IovIter::<Dest, Kvec>::new(&mut msegs);
    assert_eq!(it.copy_to_iter(b"1234"), 4);
    check_revert_past_start(&mut it, 4, 8);

    let mut msegs = [IoSegMut::new(&mut c)];
    let mut it = IovIter::<Dest, Iovec>::new(&mut msegs);
    check_revert_past_start(&mut it, 0, 3);

    let (p0, p1) = (Page::new(), Page::new());
    let bsegs = [BvecSeg::new(&p0, 4000, 96).unwrap(), BvecSeg::full(&p1)];
    let mut it = IovIter::<Source, Bvec>::new(&bsegs);
    it.advance(96 + 10);
    assert_eq!(pos(&it), (4086, 1, 10));
    check_revert_past_start(&mut it, 106, 4192);

    let buf = *b"0123456789";
    let mut it = IovIter::<Source, Ubuf>::new(&buf);
    check_revert_past_start(&mut it, 0, 10);
    it.advance(3);
    check_revert_past_start(&mut it, 3, 10);

    let mut ubuf = [0u8; 10];
    let mut it = IovIter::<Dest, Ubuf>::new(&mut ubuf);
    assert_eq!(it.copy_to_iter(&[1; 4]), 4);
    check_revert_past_start(&mut it, 4, 10);

    let mut it = IovIter::<Dest, Discard>::new(10);
    check_revert_past_start(&mut it, 0, 10);
    assert_eq!(it.copy_to_iter(&[0; 4]), 4);
    check_revert_past_start(&mut it, 4, 10);
}

#[test]
fn revert_above_max_rw_count_is_too_large() {
    let buf = [0u8; 16];
    let mut it = IovIter::<Source, Ubuf>::new(&buf);
    it.advance(8);
    let before = pos(&it);
    let err = it.revert(MAX_RW_COUNT + 1).unwrap_err();
    assert_eq!(err, Error::RevertTooLarge(MAX_RW_COUNT + 1));
    assert_eq!(err.errno(), Errno::EINVAL);
    assert_eq!(pos(&it), before);
    // MAX_RW_COUNT itself passes that check and fails the next one.
    assert!(matches!(
        it.revert(MAX_RW_COUNT),
        Err(Error::RevertPastStart { .. })
    ));
    assert_eq!(
        it.revert(usize::MAX),
        Err(Error::RevertTooLarge(usize::MAX))
    );

    let segs = [IoSeg::new(&buf)];
    let mut it = IovIter::<Source, Kvec>::new(&segs);
    assert_eq!(
        it.revert(MAX_RW_COUNT + 1),
        Err(Error::RevertTooLarge(MAX_RW_COUNT + 1))
    );
    let mut it = IovIter::<Dest, Discard>::new(usize::MAX);
    it.advance(usize::MAX);
    assert_eq!(
        it.revert(MAX_RW_COUNT + 1),
        Err(Error::RevertTooLarge(MAX_RW_COUNT + 1))
    );
    assert_eq!(pos(&it), (0, 0, usize::MAX));
    // revert(0) is always a no-op.
    it.revert(0).unwrap();
    assert_eq!(pos(&it), (0, 0, usize::MAX));
}

#[test]
fn revert_across_segments_recounts_empty_ones() {
    let (a, b, c) = (*b"abc", *b"de", *b"fghi");
    let segs = [
        IoSeg::new(&a),
        IoSeg::new(&[]),
        IoSeg::new(&[]),
        IoSeg::new(&b),
        IoSeg::new(&c),
    ];
    let mut it = IovIter::<Source, Kvec>::new(&segs);
    let mut out = [0u8; 7];
    assert_eq!(it.copy_from_iter(&mut out), 7);
    assert_eq!(pos(&it), (2, 1, 2));

    // Within the current segment: offset only.
    it.revert(2).unwrap();
    assert_eq!(pos(&it), (4, 1, 0));
    // One byte into `b`, re-entered from its end.
    it.revert(1).unwrap();
    assert_eq!(pos(&it), (5, 2, 1));
    // Back across `b` and the two empty segments into `a`: all counted.
    it.revert(3).unwrap();
    assert_eq!(pos(&it), (8, 5, 1));
    assert_eq!(copy_all(&mut it), b"bcdefghi");

    // advance pops `a` and both empties; reverting 3 re-enters all three.
    let mut it = IovIter::<Source, Kvec>::new(&segs);
    it.advance(3);
    assert_eq!(pos(&it), (6, 2, 0));
    it.revert(3).unwrap();
    assert_eq!(pos(&it), (9, 5, 0));

    // Same over bvecs, with a truncated count.
    let (p0, p1, p2) = (Page::new(), Page::new(), Page::new());
    let bsegs = [
        BvecSeg::new(&p0, 4000, 96).unwrap(),
        BvecSeg::new(&p1, 0, 0).unwrap(),
        BvecSeg::full(&p1),
        BvecSeg::new(&p2, 0, 100).unwrap(),
    ];
    let mut it = IovIter::<Source, Bvec>::new(&bsegs);
    it.truncate(96 + 4096 + 50);
    it.advance(96 + 4096 + 50);
    assert_eq!(pos(&it), (0, 1, 50));
    it.revert(50 + 4096 + 1).unwrap();
    assert_eq!(pos(&it), (4147, 4, 95));
    it.revert(95).unwrap();
    assert_eq!(pos(&it), (96 + 4096 + 50, 4, 0));
}

// ------------------------------------------------------- truncate, reexpand

#[test]
fn truncate_is_an_upper_limit() {
    let (a, b) = (*b"abcd", *b"efgh");
    let segs = [IoSeg::new(&a), IoSeg::new(&b)];
    let mut it = IovIter::<Source, Kvec>::new(&segs);
    it.truncate(u64::MAX);
    assert_eq!(pos(&it), (8, 2, 0));
    it.truncate(9);
    assert_eq!(it.count(), 8);
    it.truncate(5);
    assert_eq!(pos(&it), (5, 2, 0), "truncate does not touch the segments");
    let mut out = [0u8; 8];
    assert_eq!(it.copy_from_iter(&mut out), 5);
    assert_eq!(&out[..5], b"abcde");
    it.truncate(0);
    assert!(it.is_empty());

    let buf = [1u8; 10];
    let mut it = IovIter::<Source, Ubuf>::new(&buf);
    it.truncate(u64::MAX);
    assert_eq!(it.count(), 10);
    it.truncate(4);
    assert_eq!(it.count(), 4);
    assert_eq!(it.chunks().map(<[u8]>::len).sum::<usize>(), 4);

    let mut it = IovIter::<Dest, Discard>::new(usize::MAX);
    it.truncate(u64::MAX);
    assert_eq!(it.count(), usize::MAX);
    it.truncate(7);
    assert_eq!(it.count(), 7);
}

#[test]
fn reexpand_within_and_past_capacity() {
    let (a, b) = (*b"abcd", *b"efghij");
    let segs = [IoSeg::new(&a), IoSeg::new(&b)];
    let mut it = IovIter::<Source, Kvec>::new(&segs);
    it.advance(3);
    assert_eq!(it.capacity(), 7);
    it.truncate(2);
    it.reexpand(7).unwrap();
    assert_eq!(pos(&it), (7, 2, 3));
    it.truncate(2);
    let err = it.reexpand(8).unwrap_err();
    assert_eq!(
        err,
        Error::ReexpandPastEnd {
            requested: 8,
            available: 7
        }
    );
    assert_eq!(err.errno(), Errno::EINVAL);
    assert_eq!(pos(&it), (2, 2, 3));
    it.reexpand(0).unwrap();
    assert_eq!(it.count(), 0);

    let buf = [0u8; 10];
    let mut it = IovIter::<Source, Ubuf>::new(&buf);
    it.advance(3);
    it.truncate(1);
    it.reexpand(7).unwrap();
    assert_eq!(it.count(), 7);
    assert_eq!(
        it.reexpand(8),
        Err(Error::ReexpandPastEnd {
            requested: 8,
            available: 7
        })
    );
    assert_eq!(it.count(), 7);

    let mut it = IovIter::<Dest, Discard>::new(10);
    assert_eq!(it.copy_to_iter(&[0; 4]), 4);
    it.truncate(0);
    it.reexpand(6).unwrap();
    assert_eq!(
        it.reexpand(7),
        Err(Error::ReexpandPastEnd {
            requested: 7,
            available: 6
        })
    );

    let (p0, p1) = (Page::new(), Page::new());
    let bsegs = [BvecSeg::new(&p0, 100, 50).unwrap(), BvecSeg::full(&p1)];
    let mut it = IovIter::<Source, Bvec>::new(&bsegs);
    it.advance(60);
    it.truncate(1);
    it.reexpand(4086).unwrap();
    assert!(matches!(
        it.reexpand(4087),
        Err(Error::ReexpandPastEnd {
            requested: 4087,
            available: 4086
        })
    ));
}

// ------------------------------------------------------------- save/restore

#[test]
fn save_restore_round_trip() {
    let (a, b) = (*b"abc", *b"defg");
    let segs = [IoSeg::new(&a), IoSeg::new(&[]), IoSeg::new(&b)];
    let mut it = IovIter::<Source, Kvec>::new(&segs);
    let start = it.save_state();
    let mut out = [0u8; 4];
    assert_eq!(it.copy_from_iter(&mut out), 4);
    let mid = it.save_state();
    assert_eq!((mid.count(), mid.nr_segs(), mid.iov_offset()), (3, 1, 1));
    assert_eq!(copy_all(&mut it), b"efg");
    assert_eq!(pos(&it), (0, 0, 0));
    it.restore(&mid).unwrap();
    assert_eq!(pos(&it), (3, 1, 1));
    assert_eq!(copy_all(&mut it), b"efg");
    it.restore(&start).unwrap();
    assert_eq!(pos(&it), (7, 3, 0));
    // A state restores onto another iterator over the same array.
    let mut twin = IovIter::<Source, Kvec>::new(&segs);
    twin.restore(&mid).unwrap();
    assert_eq!(copy_all(&mut twin), b"efg");

    let buf = *b"0123456789";
    let mut it = IovIter::<Source, Ubuf>::new(&buf);
    it.advance(4);
    let s = it.save_state();
    it.advance(100);
    it.restore(&s).unwrap();
    assert_eq!(pos(&it), (6, 1, 4));
    assert_eq!(copy_all(&mut it), b"456789");

    let mut c = [0u8; 5];
    {
        let mut msegs = [IoSegMut::new(&mut c)];
        let mut it = IovIter::<Dest, Iovec>::new(&mut msegs);
        it.advance(1);
        let s = it.save_state();
        assert_eq!(it.copy_to_iter(b"xxxx"), 4);
        it.restore(&s).unwrap();
        assert_eq!(pos(&it), (4, 1, 1));
        assert_eq!(it.copy_to_iter(b"WXYZ"), 4);
    }
    assert_eq!(&c, b"\0WXYZ");

    let p = Page::new();
    let bsegs = [
        BvecSeg::new(&p, 0, 10).unwrap(),
        BvecSeg::new(&p, 20, 10).unwrap(),
    ];
    let mut it = IovIter::<Source, Bvec>::new(&bsegs);
    it.advance(15);
    let s = it.save_state();
    it.advance(5);
    it.restore(&s).unwrap();
    assert_eq!(pos(&it), (5, 1, 5));
}

#[test]
fn restore_foreign_state_is_einval() {
    let (a, b) = (*b"abcd", *b"efgh");
    let segs_a = [IoSeg::new(&a), IoSeg::new(&b)];
    let segs_b = [IoSeg::new(&b), IoSeg::new(&a)];
    let mut other = IovIter::<Source, Kvec>::new(&segs_b);
    other.advance(5);
    let foreign = other.save_state();
    let mut it = IovIter::<Source, Kvec>::new(&segs_a);
    it.advance(2);
    let err = it.restore(&foreign).unwrap_err();
    assert_eq!(err, Error::ForeignState);
    assert_eq!(err.errno(), Errno::EINVAL);
    assert_eq!(pos(&it), (6, 2, 2));

    // A prefix of the same array is another array too.
    let mut short = IovIter::<Source, Kvec>::new(&segs_a[..1]);
    let s = short.save_state();
    assert_eq!(it.restore(&s), Err(Error::ForeignState));
    short.advance(1);
    assert_eq!(pos(&it), (6, 2, 2));

    let (x, y) = ([0u8; 8], [0u8; 8]);
    let mut ux = IovIter::<Source, Ubuf>::new(&x);
    let uy = IovIter::<Source, Ubuf>::new(&y);
    ux.advance(3);
    assert_eq!(ux.restore(&uy.save_state()), Err(Error::ForeignState));
    assert_eq!(pos(&ux), (5, 1, 3));
}

// ----------------------------------------------------------- copies, zero

#[test]
fn copy_full_short_returns_false_and_keeps_position() {
    let (a, b) = (*b"abc", *b"def");
    let segs = [IoSeg::new(&a), IoSeg::new(&b)];
    let mut it = IovIter::<Source, Kvec>::new(&segs);
    it.advance(1);
    let mut out = [0u8; 6];
    assert!(!it.copy_from_iter_full(&mut out));
    assert_eq!(pos(&it), (5, 2, 1));
    assert!(it.copy_from_iter_full(&mut out[..5]));
    assert_eq!(&out[..5], b"bcdef");
    assert_eq!(pos(&it), (0, 0, 0));
    assert!(it.copy_from_iter_full(&mut []), "an empty copy is complete");

    let mut it = IovIter::<Source, Kvec>::new(&segs);
    it.truncate(4);
    assert!(!it.copy_from_iter_full(&mut out[..5]));
    assert_eq!(pos(&it), (4, 2, 0));

    let (mut c, mut d) = ([0u8; 3], [0u8; 3]);
    {
        let mut msegs = [IoSegMut::new(&mut c), IoSegMut::new(&mut d)];
        let mut it = IovIter::<Dest, Iovec>::new(&mut msegs);
        assert!(!it.copy_to_iter_full(b"1234567"));
        assert_eq!(pos(&it), (6, 2, 0));
        assert!(it.copy_to_iter_full(b"1234"));
        assert_eq!(pos(&it), (2, 1, 1));
        assert!(!it.copy_to_iter_full(b"xyz"));
        assert_eq!(pos(&it), (2, 1, 1));
        assert!(it.copy_to_iter_full(b"56"));
    }
    assert_eq!((&c, &d), (b"123", b"456"));

    let mut it = IovIter::<Dest, Discard>::new(3);
    assert!(!it.copy_to_iter_full(b"1234"));
    assert_eq!(it.count(), 3);
}

#[test]
fn copy_page_range_outside_page_is_efault() {
    let mut src = Page::new();
    for (i, b) in src.as_mut_bytes().iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    let mut dst = [0u8; 16];
    {
        let mut msegs = [IoSegMut::new(&mut dst)];
        let mut it = IovIter::<Dest, Kvec>::new(&mut msegs);
        let err = it.copy_page_to_iter(&src, 4090, 10).unwrap_err();
        assert_eq!(
            err,
            Error::PageRange {
                offset: 4090,
                len: 10
            }
        );
        assert_eq!(err.errno(), Errno::EFAULT);
        assert_eq!(pos(&it), (16, 1, 0));
        assert!(matches!(
            it.copy_page_to_iter(&src, usize::MAX, 2),
            Err(Error::PageRange { .. })
        ));
        assert!(matches!(
            it.copy_page_to_iter(&src, 4097, 0),
            Err(Error::PageRange { .. })
        ));
        assert_eq!(pos(&it), (16, 1, 0));
        assert_eq!(it.copy_page_to_iter(&src, 4096, 0), Ok(0));
        // In range: the last 6 bytes of the page, then more than fits.
        assert_eq!(it.copy_page_to_iter(&src, 4090, 6), Ok(6));
        assert_eq!(it.copy_page_to_iter(&src, 0, 100), Ok(10));
        assert!(it.is_empty());
    }
    let want: Vec<u8> = (4090..4096).chain(0..10).map(|i| (i % 251) as u8).collect();
    assert_eq!(&dst[..], &want[..]);

    let data: Vec<u8> = (0u8..200).collect();
    let segs = [IoSeg::new(&data)];
    let mut it = IovIter::<Source, Kvec>::new(&segs);
    let mut page = Page::new();
    let err = it.copy_page_from_iter(&mut page, 4000, 200).unwrap_err();
    assert_eq!(
        err,
        Error::PageRange {
            offset: 4000,
            len: 200
        }
    );
    assert_eq!(err.errno(), Errno::EFAULT);
    assert_eq!(pos(&it), (200, 1, 0));
    assert!(all_bytes(page.as_bytes(), 0), "nothing copied");
    assert_eq!(it.copy_page_from_iter(&mut page, 3896, 200), Ok(200));
    assert_eq!(&page.as_bytes()[3896..], &data[..]);
    assert_eq!(page.as_bytes()[3895], 0);
}

#[test]
fn zero_writes_zeros_and_advances() {
    let (mut a, mut b) = ([0xffu8; 3], [0xffu8; 4]);
    {
        let mut msegs = [
            IoSegMut::new(&mut a),
            IoSegMut::new(&mut []),
            IoSegMut::new(&mut b),
        ];
        let mut it = IovIter::<Dest, Kvec>::new(&mut msegs);
        assert_eq!(it.zero(5), 5);
        assert_eq!(pos(&it), (2, 1, 2));
        assert_eq!(it.zero(100), 2);
        assert_eq!(it.zero(1), 0);
    }
    assert_eq!((a, b), ([0; 3], [0; 4]));

    let mut c = [0xffu8; 6];
    {
        let mut it = IovIter::<Dest, Ubuf>::new(&mut c);
        it.advance(1);
        assert_eq!(it.zero(3), 3);
        assert_eq!(pos(&it), (2, 1, 4));
    }
    assert_eq!(c, [0xff, 0, 0, 0, 0xff, 0xff]);

    let mut p = Page::new();
    p.as_mut_bytes().fill(0xee);
    {
        let mut segs = p.bvecs_mut([(10, 5), (100, 5)]).unwrap();
        let mut it = IovIter::<Dest, Bvec>::new(&mut segs);
        assert_eq!(it.zero(7), 7);
        assert_eq!(pos(&it), (3, 1, 2));
    }
    let zeros: Vec<usize> = (0..PAGE_SIZE).filter(|&i| p.as_bytes()[i] == 0).collect();
    assert_eq!(zeros, vec![10, 11, 12, 13, 14, 100, 101]);

    let mut it = IovIter::<Dest, Discard>::new(5);
    assert_eq!(it.zero(8), 5);
    assert!(it.is_empty());
}

// --------------------------------------------------------------- queries

#[test]
fn single_seg_count() {
    let (a, b) = ([0u8; 4], [0u8; 6]);
    let segs = [IoSeg::new(&a), IoSeg::new(&b)];
    let mut it = IovIter::<Source, Kvec>::new(&segs);
    assert_eq!(it.single_seg_count(), 4);
    it.advance(1);
    assert_eq!(it.single_seg_count(), 3);
    it.truncate(2);
    assert_eq!(it.single_seg_count(), 2, "clamped to count");
    it.reexpand(9).unwrap();
    it.advance(3);
    // Last segment: the whole count, even when truncated below its length.
    assert_eq!((it.nr_segs(), it.single_seg_count()), (1, 6));
    it.truncate(2);
    assert_eq!(it.single_seg_count(), 2);

    // One segment left means `count`, not the segment length.
    let segs1 = [IoSeg::new(&b)];
    let mut it = IovIter::<Source, Iovec>::new(&segs1);
    it.truncate(5);
    assert_eq!(it.single_seg_count(), 5);

    // The kernel does not skip an empty current segment here.
    let segs0 = [IoSeg::new(&[]), IoSeg::new(&a)];
    let it = IovIter::<Source, Iovec>::new(&segs0);
    assert_eq!(it.single_seg_count(), 0);

    let (p0, p1) = (Page::new(), Page::new());
    let bsegs = [
        BvecSeg::new(&p0, 0, 100).unwrap(),
        BvecSeg::new(&p1, 0, 200).unwrap(),
    ];
    let mut it = IovIter::<Source, Bvec>::new(&bsegs);
    assert_eq!(it.single_seg_count(), 100);
    it.advance(100);
    assert_eq!(it.single_seg_count(), 200);

    let buf = [0u8; 9];
    let mut it = IovIter::<Source, Ubuf>::new(&buf);
    it.advance(2);
    assert_eq!(it.single_seg_count(), 7);
    assert_eq!(IovIter::<Dest, Discard>::new(33).single_seg_count(), 33);
}

#[test]
fn alignment_ors_starts_and_clamped_lengths() {
    let f = Frames::new(4);
    let base = f.addr();
    let m = f.bytes();
    assert_eq!(base % PAGE_SIZE, 0);
    let segs = [
        IoSeg::new(&m[512..1536]),
        IoSeg::new(&m[1..1]), // empty, at an odd address: skipped
        IoSeg::new(&m[2048..2560]),
    ];
    let it = IovIter::<Source, Kvec>::new(&segs);
    // 512 | 1024 | 2048 | 512 = 0xe00
    assert_eq!(it.alignment(), base | 0xe00);
    assert_eq!(it.alignment() & 511, 0, "512-byte aligned");
    assert_ne!(it.alignment() & 1023, 0, "not 1024-byte aligned");

    let mut it = IovIter::<Source, Iovec>::new(&segs);
    it.advance(1);
    // 513 | 1023 | 2048 | 512 = 0xbff
    assert_eq!(it.alignment(), base | 0xbff);

    let mut it = IovIter::<Source, Kvec>::new(&segs);
    it.truncate(1024 + 100);
    // 512 | 1024 | 2048 | 100 = 0xe64
    assert_eq!(it.alignment(), base | 0xe64);
    it.truncate(1024);
    // The walk ends with the bytes: 512 | 1024.
    assert_eq!(it.alignment(), base | 0x600);

    // Bvec: in-page offsets, and an empty bvec is not skipped.
    let (p0, p1) = (Page::new(), Page::new());
    let bsegs = [
        BvecSeg::new(&p0, 1, 0).unwrap(),
        BvecSeg::new(&p0, 512, 1024).unwrap(),
        BvecSeg::full(&p1),
    ];
    let mut it = IovIter::<Source, Bvec>::new(&bsegs);
    // 1 | 0 | 512 | 1024 | 0 | 4096
    assert_eq!(it.alignment(), 0x1601);
    it.advance(100);
    // 612 | 924 | 0 | 4096
    assert_eq!(it.alignment(), 0x13fc);

    let mut it = IovIter::<Source, Ubuf>::new(&m[100..300]);
    assert_eq!(it.alignment(), base | 100 | 200);
    it.advance(28);
    // 128 | 172
    assert_eq!(it.alignment(), base | 0xac);
    it.advance(172);
    assert_eq!(it.alignment(), 0, "ubuf with count 0");
    assert_eq!(IovIter::<Source, Ubuf>::new(&m[7..7]).alignment(), 0);
    assert_eq!(IovIter::<Dest, Discard>::new(4097).alignment(), 0);
}

#[test]
fn gap_alignment_of_iovecs() {
    let f = Frames::new(2);
    let base = f.addr();
    let m = f.bytes();
    let segs = [
        IoSeg::new(&m[0..512]),
        IoSeg::new(&m[1024..1536]),
        IoSeg::new(&m[7..7]),
        IoSeg::new(&m[2056..2156]),
    ];
    let it = IovIter::<Source, Iovec>::new(&segs);
    // (1024 | 512) | (2056 | 1536), the empty segment skipped.
    assert_eq!(it.gap_alignment(), base | 0xe08);
    // It ignores iov_offset.
    let mut it2 = IovIter::<Source, Iovec>::new(&segs);
    it2.advance(1);
    assert_eq!(it2.gap_alignment(), base | 0xe08);
    // It stops at the segment holding the last byte of count.
    let mut it3 = IovIter::<Source, Iovec>::new(&segs);
    it3.truncate(600);
    assert_eq!(it3.gap_alignment(), base | 0x600);
    // One segment has no gap.
    let one = [IoSeg::new(&m[3..900])];
    assert_eq!(IovIter::<Source, Iovec>::new(&one).gap_alignment(), 0);
    assert_eq!(IovIter::<Source, Ubuf>::new(&m[3..900]).gap_alignment(), 0);
}

#[test]
fn is_aligned_checks_every_start_and_length() {
    let f = Frames::new(2);
    let m = f.bytes();
    let segs = [IoSeg::new(&m[512..1536]), IoSeg::new(&m[2048..2560])];
    let it = IovIter::<Source, Kvec>::new(&segs);
    assert!(it.is_aligned(511, 511));
    assert!(!it.is_aligned(1023, 0), "start 512 not on 1024");
    assert!(!it.is_aligned(0, 1023), "length 512 not a multiple of 1024");
    let mut it = IovIter::<Source, Kvec>::new(&segs);
    it.truncate(1024 + 100);
    assert!(!it.is_aligned(511, 511), "clamped length 100");
    assert!(it.is_aligned(511, 3));
    let mut it = IovIter::<Source, Iovec>::new(&segs);
    it.advance(512);
    assert!(it.is_aligned(1023, 511));
    // Like the kernel's helper, an empty segment's start is checked too.
    let with_empty = [
        IoSeg::new(&m[512..1536]),
        IoSeg::new(&m[1..1]),
        IoSeg::new(&m[2048..2560]),
    ];
    assert!(!IovIter::<Source, Kvec>::new(&with_empty).is_aligned(511, 511));

    let mut it = IovIter::<Source, Ubuf>::new(&m[512..1536]);
    assert!(it.is_aligned(511, 1023));
    assert!(!it.is_aligned(1023, 0));
    it.advance(1);
    assert!(!it.is_aligned(511, 0));
    assert!(!it.is_aligned(0, 511));

    let (p0, p1) = (Page::new(), Page::new());
    let bsegs = [BvecSeg::new(&p0, 512, 1024).unwrap(), BvecSeg::full(&p1)];
    let it = IovIter::<Source, Bvec>::new(&bsegs);
    assert!(it.is_aligned(511, 511));
    assert!(!it.is_aligned(1023, 0));

    assert!(IovIter::<Dest, Discard>::new(3).is_aligned(4095, 4095));
}

#[test]
fn npages_for_each_kind() {
    let f = Frames::new(4);
    let m = f.bytes();
    // 4000..4200 spans pages 0 and 1; 8192..12288 is page 2.
    let segs = [
        IoSeg::new(&m[4000..4200]),
        IoSeg::new(&m[5..5]),
        IoSeg::new(&m[8192..12288]),
    ];
    let it = IovIter::<Source, Kvec>::new(&segs);
    assert_eq!(it.npages(usize::MAX), 3);
    assert_eq!(it.npages(3), 3);
    assert_eq!(it.npages(2), 2);
    assert_eq!(it.npages(0), 0);
    let mut it = IovIter::<Source, Iovec>::new(&segs);
    assert_eq!(it.npages(16), 3);
    it.advance(96); // now at 4096: one page for the rest of the segment
    assert_eq!(it.npages(16), 2);
    let mut it = IovIter::<Source, Iovec>::new(&segs);
    it.truncate(150); // 4000..4150 still crosses a page boundary
    assert_eq!(it.npages(16), 2);
    it.truncate(96);
    assert_eq!(it.npages(16), 1);
    it.truncate(0);
    assert_eq!(it.npages(16), 0);

    let mut it = IovIter::<Source, Ubuf>::new(&m[4000..12288]);
    assert_eq!(it.npages(16), 3);
    assert_eq!(it.npages(1), 1);
    it.advance(8288);
    assert_eq!(it.npages(16), 0);
    assert_eq!(IovIter::<Source, Ubuf>::new(&m[0..8192]).npages(16), 2);

    let (p0, p1, p2) = (Page::new(), Page::new(), Page::new());
    let bsegs = [
        BvecSeg::new(&p0, 4000, 96).unwrap(),
        BvecSeg::full(&p1),
        BvecSeg::new(&p2, 0, 10).unwrap(),
    ];
    let it = IovIter::<Source, Bvec>::new(&bsegs);
    assert_eq!(it.npages(16), 3);
    assert_eq!(it.npages(2), 2);

    assert_eq!(IovIter::<Dest, Discard>::new(1 << 20).npages(16), 0);
}

// ------------------------------------------------------------------ pages

#[test]
fn get_pages_rules() {
    let f = Frames::new(4);
    let base = f.addr();
    let m = f.bytes();
    let segs = [IoSeg::new(&m[4000..4200]), IoSeg::new(&m[8192..8292])];

    // Kvec pages cannot be referenced: EFAULT, nothing moves.
    let mut it = IovIter::<Source, Kvec>::new(&segs);
    let mut out: Vec<PageAddr> = Vec::new();
    let err = it.get_pages(usize::MAX, 8, &mut out).unwrap_err();
    assert_eq!(err, Error::NoPages);
    assert_eq!(err.errno(), Errno::EFAULT);
    assert_eq!(pos(&it), (300, 2, 0));
    assert!(out.is_empty());
    // maxpages == 0 returns 0 before looking at the kind.
    assert_eq!(it.get_pages(usize::MAX, 0, &mut out).unwrap().bytes, 0);

    let mut it = IovIter::<Dest, Discard>::new(10);
    assert_eq!(it.get_pages(10, 8, &mut out), Err(Error::NoPages));
    assert_eq!(it.count(), 10);

    // Iovec: the first segment only.
    let mut it = IovIter::<Source, Iovec>::new(&segs);
    let got = it.get_pages(usize::MAX, 8, &mut out).unwrap();
    assert_eq!((got.bytes, got.offset0, got.npages), (200, 4000, 2));
    assert_eq!(out, vec![PageAddr(base), PageAddr(base + PAGE_SIZE)]);
    assert_eq!(pos(&it), (100, 1, 0));
    // maxpages caps the bytes to what the pages cover.
    let mut it = IovIter::<Source, Iovec>::new(&segs);
    out.clear();
    let got = it.get_pages(usize::MAX, 1, &mut out).unwrap();
    assert_eq!((got.bytes, got.offset0, got.npages), (96, 4000, 1));
    assert_eq!(pos(&it), (204, 2, 96));

    let mut it = IovIter::<Source, Ubuf>::new(&m[4000..4200]);
    out.clear();
    let got = it.get_pages(150, 8, &mut out).unwrap();
    assert_eq!((got.bytes, got.offset0, got.npages), (150, 4000, 2));
    assert_eq!(pos(&it), (50, 1, 150));

    // Bvec: the current bvec only, where extract_pages would gather both.
    let (p0, p1) = (Page::new(), Page::new());
    let bsegs = [BvecSeg::new(&p0, 100, 3996).unwrap(), BvecSeg::full(&p1)];
    let mut it = IovIter::<Source, Bvec>::new(&bsegs);
    out.clear();
    let got = it.get_pages(usize::MAX, 8, &mut out).unwrap();
    assert_eq!((got.bytes, got.offset0, got.npages), (3996, 100, 1));
    assert_eq!(out, vec![PageAddr(p0.addr())]);
    assert_eq!(pos(&it), (4096, 1, 0));
    out.clear();
    let got = it.get_pages(usize::MAX, 8, &mut out).unwrap();
    assert_eq!((got.bytes, got.offset0, got.npages), (4096, 0, 1));
    assert_eq!(out, vec![PageAddr(p1.addr())]);
    assert!(it.is_empty());

    let mut it = IovIter::<Source, Bvec>::new(&bsegs);
    out.clear();
    let got = it.extract_pages(usize::MAX, 8, &mut out).unwrap();
    assert_eq!((got.bytes, got.offset0, got.npages), (8092, 100, 2));
    assert_eq!(out, vec![PageAddr(p0.addr()), PageAddr(p1.addr())]);
}

#[test]
fn extract_pages_rules() {
    let f = Frames::new(4);
    let base = f.addr();
    let m = f.bytes();
    let segs = [
        IoSeg::new(&m[9..9]),
        IoSeg::new(&m[4000..4200]),
        IoSeg::new(&m[8192..12288]),
    ];
    let mut it = IovIter::<Source, Kvec>::new(&segs);
    let mut out = Vec::new();
    // One segment per call, leading empty segments skipped.
    let got = it.extract_pages(usize::MAX, 8, &mut out).unwrap();
    assert_eq!((got.bytes, got.offset0, got.npages), (200, 4000, 2));
    assert_eq!(out, vec![PageAddr(base), PageAddr(base + PAGE_SIZE)]);
    assert_eq!(pos(&it), (4096, 1, 0));
    out.clear();
    let got = it.extract_pages(50, 8, &mut out).unwrap();
    assert_eq!((got.bytes, got.offset0, got.npages), (50, 0, 1));
    assert_eq!(out, vec![PageAddr(base + 2 * PAGE_SIZE)]);
    assert_eq!(pos(&it), (4046, 1, 50));

    // Discard has no pages: EFAULT, nothing moves.
    let mut it = IovIter::<Dest, Discard>::new(100);
    out.clear();
    let err = it.extract_pages(100, 8, &mut out).unwrap_err();
    assert_eq!(err, Error::NoPages);
    assert_eq!(err.errno(), Errno::EFAULT);
    assert_eq!(pos(&it), (100, 0, 0));
    assert!(out.is_empty());
}

// ----------------------------------------------------- dup, discard, std io

#[test]
fn dup_is_independent() {
    let (a, b) = (*b"abcd", *b"efgh");
    let segs = [IoSeg::new(&a), IoSeg::new(&b)];
    let mut it = IovIter::<Source, Kvec>::new(&segs);
    it.advance(3);
    let mut d = it.dup();
    it.advance(3);
    assert_eq!(pos(&d), (5, 2, 3));
    assert_eq!(copy_all(&mut d), b"defgh");
    assert_eq!(pos(&it), (2, 1, 2));
    assert_eq!(copy_all(&mut it), b"gh");

    let buf = *b"0123456789";
    let mut u = IovIter::<Source, Ubuf>::new(&buf);
    u.advance(8);
    let mut du = u.dup();
    du.revert(8).unwrap();
    assert_eq!(pos(&u), (2, 1, 8));
    assert_eq!(copy_all(&mut du), b"0123456789");
}

#[test]
fn discard_counts_and_drops() {
    let mut it = IovIter::<Dest, Discard>::new(10);
    assert_eq!(pos(&it), (10, 0, 0));
    assert!(!it.is_user_backed());
    assert_eq!(it.copy_to_iter(&[7; 4]), 4);
    assert_eq!(pos(&it), (6, 0, 4));
    assert_eq!(it.copy_to_iter(&[1; 16]), 6);
    assert_eq!(pos(&it), (0, 0, 10));
    assert_eq!(it.copy_to_iter(&[1; 16]), 0);
    assert!(it.is_empty());
    let mut it = IovIter::<Dest, Discard>::new(10);
    assert_eq!(it.chunks_mut().count(), 0);
    assert_eq!(it.raw_chunks().count(), 0);
    assert!(it.write_all(&[0; 10]).is_ok());
    assert_eq!(
        it.write_all(&[0; 1]).unwrap_err().kind(),
        std::io::ErrorKind::WriteZero
    );
}

#[test]
fn error_converts_to_io_error_with_errno() {
    let buf = [0u8; 4];
    let segs = [IoSeg::new(&buf)];
    let mut it = IovIter::<Source, Kvec>::new(&segs);
    let mut out = Vec::new();
    let errors = [
        it.revert(1).unwrap_err(),
        it.revert(MAX_RW_COUNT + 1).unwrap_err(),
        it.reexpand(5).unwrap_err(),
        it.get_pages(4, 1, &mut out).unwrap_err(),
        IovIter::<Dest, Discard>::new(1)
            .extract_pages(1, 1, &mut out)
            .unwrap_err(),
        BvecSeg::new(&Page::new(), 4096, 1).unwrap_err(),
    ];
    let want = [22, 22, 22, 14, 14, 14];
    for (e, w) in errors.into_iter().zip(want) {
        assert_eq!(e.errno().raw(), w, "{e:?}");
        let io: std::io::Error = e.into();
        assert_eq!(io.raw_os_error(), Some(w), "{e:?}");
    }
    // `?` in an io::Result function.
    fn revert_io(it: &mut IovIter<'_, Source, Kvec>) -> std::io::Result<()> {
        it.revert(2)?;
        Ok(())
    }
    assert_eq!(revert_io(&mut it).unwrap_err().raw_os_error(), Some(22));
}

#[test]
fn std_read_and_write() {
    let (a, b) = (*b"abc", *b"defg");
    let segs = [IoSeg::new(&a), IoSeg::new(&[]), IoSeg::new(&b)];
    let mut it = IovIter::<Source, Kvec>::new(&segs);
    let mut first = [0u8; 2];
    it.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"ab");
    let mut rest = Vec::new();
    assert_eq!(it.read_to_end(&mut rest).unwrap(), 5);
    assert_eq!(rest, b"cdefg");
    assert!(it.is_empty());
    assert_eq!(it.read(&mut first).unwrap(), 0);

    let (mut c, mut d) = ([0u8; 3], [0u8; 3]);
    {
        let mut msegs = [IoSegMut::new(&mut c), IoSegMut::new(&mut d)];
        let mut it = IovIter::<Dest, Iovec>::new(&mut msegs);
        it.write_all(b"1234").unwrap();
        let err = it.write_all(b"5678").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::WriteZero);
        assert!(it.is_empty());
        it.flush().unwrap();
    }
    assert_eq!((&c, &d), (b"123", b"456"));
}

#[test]
fn io_slice_conversions() {
    let bufs = [IoSlice::new(b"ab"), IoSlice::new(b""), IoSlice::new(b"cde")];
    let mut it = IovIter::<Source, Iovec>::from_io_slices(&bufs);
    assert_eq!(pos(&it), (5, 3, 0));
    let mut s = String::new();
    it.read_to_string(&mut s).unwrap();
    assert_eq!(s, "abcde");
    let mut it: IovIter<'_, Source, Iovec> = (&bufs[..]).into();
    it.advance(3);
    assert_eq!(copy_all(&mut it), b"de");

    let (mut x, mut y) = ([0u8; 2], [0u8; 4]);
    {
        let mut mbufs = [IoSliceMut::new(&mut x), IoSliceMut::new(&mut y)];
        let mut it = IovIter::<Dest, Iovec>::from_io_slices_mut(&mut mbufs);
        assert_eq!(pos(&it), (6, 2, 0));
        assert_eq!(it.copy_to_iter(b"uvwxyz!"), 6);
        let it2: IovIter<'_, Dest, Iovec> = (&mut mbufs[..]).into();
        assert_eq!(it2.count(), 6);
    }
    assert_eq!((&x, &y), (b"uv", b"wxyz"));
}

// ------------------------------------------------------------- import_iovec

fn uv(buf: &[u8]) -> UserIovec {
    UserIovec::new(buf.as_ptr().cast_mut(), buf.len())
}

#[test]
fn import_zero_segments_is_empty_iovec() {
    let mut storage = IovecArray::new();
    // SAFETY: no pairs, so nothing to promise.
    let it = unsafe { import_iovec::<Source>(&[], &mut storage) }.unwrap();
    assert!(matches!(it, AnyIter::Iovec(_)));
    assert_eq!((it.count(), it.nr_segs()), (0, 0));
    assert!(it.is_empty());
}

#[test]
fn import_one_segment_is_ubuf() {
    let data = *b"hello";
    let mut storage = IovecArray::new();
    // SAFETY: `data` outlives the iterator and nothing writes it.
    let mut it = unsafe { import_iovec::<Source>(&[uv(&data)], &mut storage) }.unwrap();
    assert!(matches!(it, AnyIter::Ubuf(_)));
    assert_eq!((it.count(), it.nr_segs()), (5, 1));
    let mut out = [0u8; 8];
    assert_eq!(it.copy_from_iter(&mut out), 5);
    assert_eq!(&out[..5], b"hello");

    let mut dst = [0u8; 4];
    let raw = [UserIovec::new(dst.as_mut_ptr(), dst.len())];
    let mut storage = IovecArray::new();
    {
        // SAFETY: `dst` outlives the iterator and is accessed only through it.
        let mut it = unsafe { import_iovec::<Dest>(&raw, &mut storage) }.unwrap();
        assert!(matches!(it, AnyIter::Ubuf(_)));
        assert_eq!(it.copy_to_iter(b"wxyz!"), 4);
    }
    assert_eq!(&dst, b"wxyz");

    // A null base is fine with length 0.
    let mut storage = IovecArray::new();
    let raw = [UserIovec::new(std::ptr::null_mut(), 0)];
    // SAFETY: an empty range promises nothing.
    let it = unsafe { import_iovec::<Source>(&raw, &mut storage) }.unwrap();
    assert!(matches!(it, AnyIter::Ubuf(_)));
    assert_eq!(it.count(), 0);
}

#[test]
fn import_several_segments_is_iovec_and_spills_past_fastiov() {
    assert_eq!((UIO_FASTIOV, UIO_MAXIOV), (8, 1024));
    let data = *b"012345678";
    let raw: Vec<UserIovec> = (0..9).map(|i| uv(&data[i..i + 1])).collect();

    let mut storage = IovecArray::new();
    assert!(!storage.spilled());
    {
        // SAFETY: `data` outlives the iterator and nothing writes it.
        let mut it = unsafe { import_iovec::<Source>(&raw[..8], &mut storage) }.unwrap();
        assert!(matches!(it, AnyIter::Iovec(_)));
        assert_eq!((it.count(), it.nr_segs()), (8, 8));
        let mut out = [0u8; 9];
        assert_eq!(it.copy_from_iter(&mut out), 8);
        assert_eq!(&out[..8], b"01234567");
    }
    assert!(!storage.spilled(), "8 segments stay inline");
    assert_eq!(storage.len(), 8);

    let mut storage = IovecArray::new();
    {
        // SAFETY: as above.
        let mut it = unsafe { import_iovec::<Source>(&raw, &mut storage) }.unwrap();
        assert_eq!((it.count(), it.nr_segs()), (9, 9));
        let mut out = [0u8; 9];
        assert_eq!(it.copy_from_iter(&mut out), 9);
        assert_eq!(&out, b"012345678");
    }
    assert!(storage.spilled(), "9 segments spill to the heap");
    assert_eq!(storage.len(), 9);

    // Two segments into one destination, split where asked.
    let mut dst = [0u8; 6];
    let p = dst.as_mut_ptr();
    // SAFETY: both halves lie in `dst`.
    let raw = unsafe { [UserIovec::new(p.add(4), 2), UserIovec::new(p, 4)] };
    let mut storage = IovecArray::new();
    {
        // SAFETY: the two ranges are disjoint parts of `dst`, which outlives
        // the iterator and is accessed only through it meanwhile.
        let mut it = unsafe { import_iovec::<Dest>(&raw, &mut storage) }.unwrap();
        assert!(matches!(it, AnyIter::Iovec(_)));
        assert_eq!(it.copy_to_iter(b"ABCDEF"), 6);
    }
    assert_eq!(&dst, b"CDEFAB");
}

#[test]
fn import_too_many_segments_is_einval() {
    let data = [0u8; 1];
    let mut storage = IovecArray::new();
    let raw = vec![uv(&data); UIO_MAXIOV + 1];
    // SAFETY: every pair is `data`, read-only and alive; the call fails anyway.
    let err = unsafe { import_iovec::<Source>(&raw, &mut storage) }.unwrap_err();
    assert_eq!(err, Error::TooManySegments(1025));
    assert_eq!(err.errno(), Errno::EINVAL);

    // 1024 is allowed.
    // SAFETY: as above.
    let it = unsafe { import_iovec::<Source>(&raw[..UIO_MAXIOV], &mut storage) }.unwrap();
    assert_eq!((it.count(), it.nr_segs()), (1024, 1024));
}

#[test]
fn import_negative_length_is_einval() {
    let data = [0u8; 8];
    let bad = isize::MAX as usize + 1;
    let mut storage = IovecArray::new();
    let cases: [(Vec<UserIovec>, usize); 4] = [
        (vec![UserIovec::new(data.as_ptr().cast_mut(), bad)], 0),
        (
            vec![uv(&data), UserIovec::new(data.as_ptr().cast_mut(), bad)],
            1,
        ),
        (
            vec![
                uv(&data),
                uv(&data),
                UserIovec::new(data.as_ptr().cast_mut(), usize::MAX),
            ],
            2,
        ),
        // The whole array is length-checked before any access_ok: a null
        // base in segment 0 loses to the bad length in segment 1.
        (
            vec![
                UserIovec::new(std::ptr::null_mut(), 5),
                UserIovec::new(data.as_ptr().cast_mut(), bad),
            ],
            1,
        ),
    ];
    for (raw, index) in cases {
        // SAFETY: every accepted pair would be `data`, read-only and alive;
        // these imports fail before anything is built.
        let err = unsafe { import_iovec::<Source>(&raw, &mut storage) }.unwrap_err();
        assert_eq!(
            err,
            Error::SegmentTooLong {
                index,
                len: raw[index].len
            }
        );
        assert_eq!(err.errno(), Errno::EINVAL);
    }
    // A single null pair with a bad length: EINVAL (read) before EFAULT.
    let raw = [UserIovec::new(std::ptr::null_mut(), bad)];
    // SAFETY: fails before anything is built.
    let err = unsafe { import_iovec::<Source>(&raw, &mut storage) }.unwrap_err();
    assert_eq!(err.errno(), Errno::EINVAL);
}

#[test]
fn import_null_base_is_efault() {
    let data = [0u8; 8];
    let null = std::ptr::null_mut();
    let mut storage = IovecArray::new();
    let cases: [(Vec<UserIovec>, usize); 3] = [
        (vec![UserIovec::new(null, 1)], 0),
        (vec![uv(&data), UserIovec::new(null, 4)], 1),
        (
            vec![UserIovec::new(null, 0), uv(&data), UserIovec::new(null, 8)],
            2,
        ),
    ];
    for (raw, index) in cases {
        // SAFETY: the non-null pairs are `data`, read-only and alive; the
        // import fails anyway.
        let err = unsafe { import_iovec::<Source>(&raw, &mut storage) }.unwrap_err();
        assert_eq!(err, Error::NullSegment { index });
        assert_eq!(err.errno(), Errno::EFAULT);
    }
    // A range that wraps the address space fails access_ok too.
    let wrap = std::ptr::without_provenance_mut::<u8>(usize::MAX - 10);
    for raw in [
        vec![UserIovec::new(wrap, 100)],
        vec![uv(&data), UserIovec::new(wrap, 100)],
    ] {
        // SAFETY: rejected before anything is built.
        let err = unsafe { import_iovec::<Source>(&raw, &mut storage) }.unwrap_err();
        assert!(matches!(err, Error::BadAddress { .. }), "{err:?}");
        assert_eq!(err.errno(), Errno::EFAULT);
    }
    // Past the user address space: kernel addresses, and a range that
    // crosses its end (as access_ok refuses them on x86-64 and arm64).
    if let Some(top) = iov_iter::USER_ADDR_END {
        let kernel = std::ptr::without_provenance_mut::<u8>(0xffff_8880_0000_0000);
        let below = std::ptr::without_provenance_mut::<u8>(top - 4096);
        for (raw, index) in [
            (vec![UserIovec::new(kernel, 4096)], 0),
            (vec![uv(&data), UserIovec::new(below, 1 << 20)], 1),
            (
                vec![UserIovec::new(
                    std::ptr::without_provenance_mut(top),
                    1 << 20,
                )],
                0,
            ),
        ] {
            // SAFETY: rejected before anything is built.
            let err = unsafe { import_iovec::<Source>(&raw, &mut storage) }.unwrap_err();
            assert_eq!(err, Error::BadAddress { index });
            assert_eq!(err.errno(), Errno::EFAULT);
        }
        // The last user page itself is a user address.
        let raw = [UserIovec::new(below, 4096), uv(&data)];
        // SAFETY: accepted but never read (the iterator is dropped unused).
        let it = unsafe { import_iovec::<Source>(&raw, &mut storage) }.unwrap();
        assert_eq!(it.count(), 4096 + 8);
    }
    // Null with length 0 among others is accepted and contributes nothing.
    let raw = [UserIovec::new(null, 0), uv(&data)];
    // SAFETY: `data` is alive and read-only; the empty pair promises nothing.
    let mut it = unsafe { import_iovec::<Source>(&raw, &mut storage) }.unwrap();
    assert_eq!((it.count(), it.nr_segs()), (8, 2));
    let mut out = [1u8; 8];
    assert_eq!(it.copy_from_iter(&mut out), 8);
    assert_eq!(out, [0; 8]);
}

/// The total is clamped to `MAX_RW_COUNT` by shortening the segment that
/// crosses it; later segments become empty but stay counted.
///
/// Honest about the contract: `import_iovec`'s safety promise (each pair
/// readable for `len` bytes) is NOT met here, because a test cannot own
/// 2 GiB. Clamping is arithmetic on the pairs: the test only reads
/// `count`/`nr_segs`/`capacity`, walks `raw_chunks` (addresses, never
/// dereferenced) and advances, so no byte behind the pairs is ever
/// accessed. Ignored under Miri since it breaks the documented contract.
#[test]
#[cfg_attr(
    miri,
    ignore = "breaks import_iovec's contract (lengths exceed the buffer), though nothing is dereferenced"
)]
fn import_clamps_to_max_rw_count() {
    let data = [0u8; 16];
    let p = data.as_ptr().cast_mut();
    let mut storage = IovecArray::new();

    // One segment: Ubuf clamped to MAX_RW_COUNT (import_ubuf).
    for len in [MAX_RW_COUNT + 1, isize::MAX as usize] {
        // SAFETY: see the function comment: not met, nothing dereferenced.
        let it =
            unsafe { import_iovec::<Source>(&[UserIovec::new(p, len)], &mut storage) }.unwrap();
        assert!(matches!(it, AnyIter::Ubuf(_)));
        assert_eq!((it.count(), it.nr_segs()), (MAX_RW_COUNT, 1));
    }

    // Several: 0x4000_0000 + 0x3fff_f000 = 0x7fff_f000; then 0, 0.
    let raw = [
        UserIovec::new(p, 0x4000_0000),
        UserIovec::new(p, 0x4000_0000),
        UserIovec::new(p, 0x1000),
        UserIovec::new(p, 5),
    ];
    // SAFETY: see the function comment: not met, nothing dereferenced.
    let mut it = unsafe { import_iovec::<Source>(&raw, &mut storage) }.unwrap();
    assert!(matches!(it, AnyIter::Iovec(_)));
    assert_eq!((it.count(), it.nr_segs()), (MAX_RW_COUNT, 4));
    assert_eq!(it.capacity(), MAX_RW_COUNT);
    let lens: Vec<usize> = it.raw_chunks().map(|(_, l)| l).collect();
    assert_eq!(lens, vec![0x4000_0000, 0x3fff_f000]);
    assert_eq!(it.single_seg_count(), 0x4000_0000);
    it.advance(0x4000_0000);
    assert_eq!(
        (it.count(), it.nr_segs(), it.single_seg_count()),
        (0x3fff_f000, 3, 0x3fff_f000)
    );
    it.advance(usize::MAX);
    // The two emptied segments are popped by the final advance.
    assert_eq!((it.count(), it.nr_segs()), (0, 0));

    // Exactly MAX_RW_COUNT is not clamped; one more shortens the last pair.
    let raw = [UserIovec::new(p, MAX_RW_COUNT - 16), UserIovec::new(p, 16)];
    // SAFETY: see the function comment: not met, nothing dereferenced.
    let it = unsafe { import_iovec::<Source>(&raw, &mut storage) }.unwrap();
    let lens: Vec<usize> = it.raw_chunks().map(|(_, l)| l).collect();
    assert_eq!(lens, vec![MAX_RW_COUNT - 16, 16]);
    let raw = [UserIovec::new(p, MAX_RW_COUNT - 15), UserIovec::new(p, 16)];
    // SAFETY: see the function comment: not met, nothing dereferenced.
    let it = unsafe { import_iovec::<Source>(&raw, &mut storage) }.unwrap();
    let lens: Vec<usize> = it.raw_chunks().map(|(_, l)| l).collect();
    assert_eq!(lens, vec![MAX_RW_COUNT - 15, 15]);
    assert_eq!(it.count(), MAX_RW_COUNT);
}

#[test]
fn max_rw_count_value() {
    assert_eq!(MAX_RW_COUNT, 0x7fff_f000);
}

/// `bvec_npages` counts a page for an empty bvec with a non-zero offset
/// (DIV_ROUND_UP(offs + 0, PAGE_SIZE) == 1), unlike iovec/kvec which skip
/// empty segments.
#[test]
fn npages_bvec_counts_empty_bvec_with_offset() {
    let (p0, p1) = (Page::new(), Page::new());
    let segs = [
        BvecSeg::new(&p0, 100, 0).unwrap(),
        BvecSeg::new(&p1, 0, 10).unwrap(),
    ];
    let it = IovIter::<Source, Bvec>::new(&segs);
    assert_eq!(it.npages(usize::MAX), 2);
    let empty_at_zero = [
        BvecSeg::new(&p0, 0, 0).unwrap(),
        BvecSeg::new(&p1, 0, 10).unwrap(),
    ];
    assert_eq!(
        IovIter::<Source, Bvec>::new(&empty_at_zero).npages(usize::MAX),
        1
    );
}
