//! Latency logs: a fixed-size histogram that completions record into with
//! one relaxed atomic add (no lock, no allocation, bounded memory however
//! long the device runs), and the percentiles read from it.
//!
//! Buckets are log-linear, as fio's latency histogram: values below
//! 2^[`SUB_BITS`] ns each have their own bucket, above that every power of
//! two is split into 2^`SUB_BITS` equal buckets, so a percentile is exact
//! to within 1/2^`SUB_BITS` (about 3 %) of its value. Values from 1 ns to
//! about 5 hours have buckets; longer ones count in the last.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Sub-buckets per power of two, as a number of bits.
pub const SUB_BITS: u32 = 5;

/// Powers of two covered: up to 2^44 ns (about 4.9 hours).
const GROUPS: usize = 45 - SUB_BITS as usize;

/// Buckets in a histogram.
pub const BUCKETS: usize = (GROUPS + 1) << SUB_BITS;

/// The bucket of a latency of `ns` nanoseconds.
fn index(ns: u64) -> usize {
    let msb = 63 - (ns | 1).leading_zeros();
    let shift = msb.saturating_sub(SUB_BITS);
    (((shift as usize) << SUB_BITS) + (ns >> shift) as usize).min(BUCKETS - 1)
}

/// The lowest value of bucket `i` and its width, in nanoseconds.
fn bounds(i: usize) -> (u64, u64) {
    let sub = 1usize << SUB_BITS;
    if i < 2 * sub {
        return (i as u64, 1);
    }
    let shift = (i >> SUB_BITS) - 1;
    let lo = ((i - (shift << SUB_BITS)) as u64) << shift;
    (lo, 1 << shift)
}

/// A latency histogram that threads record into concurrently.
///
/// ```
/// use std::time::Duration;
/// use iov_iter_swap::latency::LatencyHist;
///
/// let h = LatencyHist::new();
/// for us in 1..=100 {
///     h.record(Duration::from_micros(us));
/// }
/// let s = h.take();
/// assert_eq!(s.count, 100);
/// // Within the buckets' 1/32 of the exact nearest-rank values.
/// assert!(s.p50.abs_diff(Duration::from_micros(50)) <= Duration::from_micros(50) / 32);
/// assert!(s.p99.abs_diff(Duration::from_micros(99)) <= Duration::from_micros(99) / 32);
/// assert_eq!(s.max, Duration::from_micros(100));
/// // Taking empties it.
/// assert_eq!(h.take().count, 0);
/// ```
pub struct LatencyHist {
    buckets: Box<[AtomicU64; BUCKETS]>,
    /// Sum of the recorded nanoseconds (the mean's numerator).
    sum_ns: AtomicU64,
    /// The largest recorded value, in nanoseconds.
    max_ns: AtomicU64,
}

impl LatencyHist {
    /// An empty histogram ([`BUCKETS`] counters, 9 KiB).
    pub fn new() -> LatencyHist {
        LatencyHist {
            // A constant array, copied: not `BUCKETS` separate stores (a
            // device makes two of these; Miri interprets each store).
            buckets: Box::new([const { AtomicU64::new(0) }; BUCKETS]),
            sum_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
        }
    }

    /// Records one latency.
    pub fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[index(ns)].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        if ns > self.max_ns.load(Ordering::Relaxed) {
            self.max_ns.fetch_max(ns, Ordering::Relaxed);
        }
    }

    /// The summary of what was recorded since the last take, and a fresh
    /// start. A value recorded while this runs counts in this summary or
    /// the next (its bucket, sum and maximum may be split between them).
    pub fn take(&self) -> LatencySummary {
        // Nothing recorded (a value above 0 ns sets the maximum, one of 0
        // ns counts in bucket 0): nothing to read. A value being recorded
        // meanwhile counts in the next summary.
        if self.max_ns.load(Ordering::Relaxed) == 0 && self.buckets[0].load(Ordering::Relaxed) == 0
        {
            return LatencySummary::default();
        }
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.swap(0, Ordering::Relaxed))
            .collect();
        let sum = self.sum_ns.swap(0, Ordering::Relaxed);
        let max = self.max_ns.swap(0, Ordering::Relaxed);
        LatencySummary::of_buckets(&counts, sum, max)
    }
}

impl Default for LatencyHist {
    fn default() -> LatencyHist {
        LatencyHist::new()
    }
}

impl std::fmt::Debug for LatencyHist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count: u64 = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum();
        f.debug_struct("LatencyHist")
            .field("count", &count)
            .finish()
    }
}

/// Latency percentiles over per-kiocb latencies.
///
/// ```
/// use std::time::Duration;
/// use iov_iter_swap::latency::LatencySummary;
///
/// let ms = Duration::from_millis;
/// let s = LatencySummary::of((1..=100).rev().map(ms).collect());
/// assert_eq!((s.count, s.p50, s.p99, s.max), (100, ms(50), ms(99), ms(100)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatencySummary {
    /// Samples.
    pub count: usize,
    /// Arithmetic mean (with the rate, Little's law gives the mean number
    /// of kiocbs in flight).
    pub mean: Duration,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest.
    pub max: Duration,
}

impl LatencySummary {
    /// Nearest-rank percentiles of `samples`, exact.
    pub fn of(mut samples: Vec<Duration>) -> LatencySummary {
        if samples.is_empty() {
            return LatencySummary::default();
        }
        samples.sort_unstable();
        let n = samples.len();
        let rank = |p: usize| samples[((p * n).div_ceil(100)).clamp(1, n) - 1];
        let total: u128 = samples.iter().map(Duration::as_nanos).sum();
        // The mean is at most the largest sample, so it fits.
        let mean = Duration::from_nanos((total / n as u128) as u64);
        LatencySummary {
            count: n,
            mean,
            p50: rank(50),
            p99: rank(99),
            max: samples[n - 1],
        }
    }

    /// Nearest-rank percentiles of a histogram's bucket counts (a
    /// bucket's middle, never above `max_ns`), with the exact mean and
    /// maximum.
    fn of_buckets(counts: &[u64], sum_ns: u64, max_ns: u64) -> LatencySummary {
        let n: u64 = counts.iter().sum();
        if n == 0 {
            return LatencySummary::default();
        }
        let rank = |p: u64| {
            let want = (p * n).div_ceil(100).clamp(1, n);
            let mut seen = 0;
            for (i, &c) in counts.iter().enumerate() {
                seen += c;
                if seen >= want {
                    let (lo, width) = bounds(i);
                    return Duration::from_nanos((lo + width / 2).min(max_ns));
                }
            }
            Duration::from_nanos(max_ns)
        };
        LatencySummary {
            count: usize::try_from(n).unwrap_or(usize::MAX),
            mean: Duration::from_nanos(sum_ns / n),
            p50: rank(50),
            p99: rank(99),
            max: Duration::from_nanos(max_ns),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        // Each bucket's range starts where the previous one ended.
        let mut next = 0;
        for i in 0..BUCKETS - 1 {
            let (lo, width) = bounds(i);
            assert_eq!(lo, next, "bucket {i}");
            assert_eq!(index(lo), i);
            assert_eq!(index(lo + width - 1), i);
            next = lo + width;
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_are_within_a_bucket_of_the_exact_ones() {
        let h = LatencyHist::new();
        let mut exact = Vec::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        // Fewer under Miri, which interprets every step.
        for _ in 0..if cfg!(miri) { 300 } else { 10_000 } {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let d = Duration::from_nanos(1_000 + x % 5_000_000);
            h.record(d);
            exact.push(d);
        }
        let e = LatencySummary::of(exact);
        let s = h.take();
        assert_eq!((s.count, s.max), (e.count, e.max));
        assert!(s.mean.abs_diff(e.mean) <= Duration::from_nanos(1));
        for (a, b) in [(s.p50, e.p50), (s.p99, e.p99)] {
            assert!(a.abs_diff(b) <= b / 32, "{a:?} against {b:?}");
        }
    }

    #[test]
    fn exact_summary_is_nearest_rank() {
        let ms = Duration::from_millis;
        let s = LatencySummary::of((1..=100).rev().map(ms).collect());
        assert_eq!(s.mean, Duration::from_micros(50_500));
        let s = LatencySummary::of(vec![ms(5)]);
        assert_eq!((s.p50, s.p99, s.max), (ms(5), ms(5), ms(5)));
    }

    #[test]
    fn empty_and_huge() {
        assert_eq!(LatencyHist::new().take(), LatencySummary::default());
        let h = LatencyHist::new();
        h.record(Duration::ZERO);
        assert_eq!(h.take().count, 1, "a zero latency counts");
        assert_eq!(LatencySummary::of(Vec::new()), LatencySummary::default());
        let h = LatencyHist::new();
        h.record(Duration::MAX);
        let s = h.take();
        assert_eq!(s.count, 1);
        assert_eq!(s.max, Duration::from_nanos(u64::MAX));
    }
}
