//! Segments carved out of one buffer.

use iov_iter::IterType;

use crate::Model;

/// Segments inside one buffer, in iterator order and ascending, disjoint:
/// `lead` bytes before the first, then for each segment a gap and a length,
/// and `tail` bytes after the last (canary room on both sides).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Bytes before the first segment's gap.
    pub lead: usize,
    /// `(gap, len)` per segment: `gap` bytes after the previous segment (or
    /// the lead), then `len` bytes of segment.
    pub segs: Vec<(usize, usize)>,
    /// Bytes after the last segment.
    pub tail: usize,
}

impl Layout {
    /// `(start in the buffer, len)` of every segment, in order.
    pub fn spans(&self) -> Vec<(usize, usize)> {
        let mut at = self.lead;
        self.segs
            .iter()
            .map(|&(gap, len)| {
                let start = at + gap;
                at = start + len;
                (start, len)
            })
            .collect()
    }

    /// The bytes the segments hold.
    pub fn total(&self) -> usize {
        self.segs.iter().map(|s| s.1).sum()
    }

    /// The buffer's length: lead, gaps, segments and tail.
    pub fn buf_len(&self) -> usize {
        self.lead + self.segs.iter().map(|s| s.0 + s.1).sum::<usize>() + self.tail
    }

    /// The model of an `Iovec` or `Kvec` iterator (`kind`) over this layout
    /// in `buf` (at least [`buf_len`](Layout::buf_len) bytes): the segments
    /// at their addresses in `buf`, holding what `buf` holds now.
    pub fn model(&self, kind: IterType, buf: &[u8]) -> Model {
        let spans = self.spans();
        let base = buf.as_ptr().addr();
        let segs: Vec<(usize, usize)> = spans.iter().map(|&(s, l)| (base + s, l)).collect();
        Model::new(kind, &segs, concat(buf, &spans))
    }
}

/// Splits `buf` into the disjoint, ascending `spans` (`(start, len)`).
pub fn split_spans<'b>(mut buf: &'b mut [u8], spans: &[(usize, usize)]) -> Vec<&'b mut [u8]> {
    let mut at = 0;
    let mut out = Vec::with_capacity(spans.len());
    for &(start, len) in spans {
        let (_, rest) = buf.split_at_mut(start - at);
        let (seg, rest) = rest.split_at_mut(len);
        out.push(seg);
        buf = rest;
        at = start + len;
    }
    out
}

/// The bytes of `spans` (`(start, len)`, any order, overlaps allowed) of
/// `buf`, concatenated.
pub fn concat(buf: &[u8], spans: &[(usize, usize)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(spans.iter().map(|s| s.1).sum());
    for &(s, l) in spans {
        out.extend_from_slice(&buf[s..s + l]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_lengths() {
        let l = Layout {
            lead: 2,
            segs: vec![(0, 3), (1, 0), (2, 4)],
            tail: 3,
        };
        assert_eq!(l.spans(), [(2, 3), (6, 0), (8, 4)]);
        assert_eq!((l.total(), l.buf_len()), (7, 15));
        let mut buf: Vec<u8> = (0..15).collect();
        assert_eq!(concat(&buf, &l.spans()), [2, 3, 4, 8, 9, 10, 11]);
        let parts = split_spans(&mut buf, &l.spans());
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [3, 0, 4]);
        assert_eq!(parts[2][0], 8);
    }
}
