//! Counters and latency histograms a store keeps about itself.
//!
//! The histogram is log-linear (16 linear sub-buckets per power of two, so
//! any reported value is within 1/16 of the true one) and its percentiles use
//! the nearest-rank definition: the p-th percentile of n samples is the
//! sample of rank `ceil(p/100 * n)` (1-based), the rank the seed got wrong.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

/// A lock-free latency histogram in nanoseconds.
#[derive(Debug)]
pub(crate) struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
        }
    }
}

fn bucket_of(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= SUB_BITS
    let shift = exp - SUB_BITS;
    let sub = (v >> shift) & (SUB - 1);
    ((shift as u64 + 1) * SUB + sub) as usize
}

/// The largest value that falls in bucket `b`.
fn bucket_high(b: usize) -> u64 {
    let b = b as u64;
    if b < SUB {
        return b;
    }
    let shift = b / SUB - 1;
    let sub = b % SUB;
    let low = (SUB + sub) << shift;
    low + ((1u64 << shift) - 1)
}

impl Histogram {
    /// Records one sample.
    pub(crate) fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    /// A point-in-time summary.
    pub(crate) fn summary(&self) -> LatencySummary {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let count: u64 = counts.iter().sum();
        let max_ns = self.max_ns.load(Ordering::Relaxed);
        let pct = |p: f64| -> Duration {
            if count == 0 {
                return Duration::ZERO;
            }
            let rank = ((p / 100.0) * count as f64).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (b, &c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return Duration::from_nanos(bucket_high(b).min(max_ns));
                }
            }
            Duration::from_nanos(max_ns)
        };
        LatencySummary {
            count,
            mean: Duration::from_nanos(self.sum_ns.load(Ordering::Relaxed).checked_div(count).unwrap_or(0)),
            p50: pct(50.0),
            p99: pct(99.0),
            p999: pct(99.9),
            max: Duration::from_nanos(max_ns),
        }
    }
}

/// Percentiles of one latency histogram (nearest rank, within 1/16).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencySummary {
    /// Samples recorded.
    pub count: u64,
    /// Mean.
    pub mean: Duration,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Largest sample.
    pub max: Duration,
}

/// A snapshot of a store's counters, sizes and latencies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Live vectors.
    pub live_vectors: u64,
    /// Vectors written by `store`/`store_batch` since open.
    pub vectors_stored: u64,
    /// Ids deleted since open.
    pub vectors_deleted: u64,
    /// Batches committed since open (one per `store`, `store_batch`, `delete`).
    pub batches_committed: u64,
    /// `fdatasync` calls on the WAL since open.
    pub wal_syncs: u64,
    /// Checkpoints since open.
    pub checkpoints: u64,
    /// Automatic checkpoints that failed since open (each one postpones
    /// the next attempt by another `checkpoint_wal_bytes` of WAL).
    pub checkpoint_failures: u64,
    /// Growth steps since open.
    pub growth_events: u64,
    /// Bytes reserved for the data file.
    pub file_bytes: u64,
    /// Bytes of records written to the data file (header page included).
    pub committed_bytes: u64,
    /// Bytes of the data file in memory (the page cache), by `mincore`
    /// over its mapped windows: what the kernel can hand a read without
    /// I/O. Counted in the process's RSS only once touched through the
    /// mapping, and reclaimable like any file cache — a large RSS of a
    /// store that was scanned is this cache, not a leak. 0 if the kernel
    /// would not say. Counting it makes `metrics()` cost one `mincore` walk
    /// of the data file (a byte per page, in chunks of 64 Ki pages), so
    /// poll `metrics()` every few seconds, not per operation.
    pub resident_bytes: u64,
    /// Bytes of address space the data file's windows take (virtual, not
    /// memory: a 64 GiB window over a 1 GiB file costs page tables only for
    /// pages read).
    pub mapped_bytes: u64,
    /// Bytes of live records.
    pub live_bytes: u64,
    /// Bytes of records no longer live (overwritten, deleted, tombstones):
    /// what compaction reclaims.
    pub garbage_bytes: u64,
    /// Bytes in the current WAL segment.
    pub wal_bytes: u64,
    /// Latency of data file growth steps.
    pub growth_latency: LatencySummary,
    /// Latency of WAL (and data) syncs.
    pub sync_latency: LatencySummary,
    /// Latency of whole commits, from call to acknowledgement.
    pub commit_latency: LatencySummary,
}

/// The live counters behind [`Metrics`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub vectors_stored: AtomicU64,
    pub vectors_deleted: AtomicU64,
    pub batches_committed: AtomicU64,
    pub wal_syncs: AtomicU64,
    pub checkpoints: AtomicU64,
    pub checkpoint_failures: AtomicU64,
    pub growth_events: AtomicU64,
    pub growth_latency: Histogram,
    pub sync_latency: Histogram,
    pub commit_latency: Histogram,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves nearest-rank percentiles on 1..=100 µs: p50 is the 50th sample
    // and p99 the 99th (the seed reported the 100th), within bucket error.
    #[test]
    fn percentiles_use_nearest_rank() {
        let h = Histogram::default();
        for us in 1..=100u64 {
            h.record(Duration::from_micros(us));
        }
        let s = h.summary();
        let close = |d: Duration, us: u64| {
            let ns = d.as_nanos() as f64;
            let want = (us * 1000) as f64;
            ns >= want && ns <= want * (1.0 + 1.0 / 16.0)
        };
        assert_eq!(s.count, 100);
        assert!(close(s.p50, 50), "p50 {:?}", s.p50);
        assert!(close(s.p99, 99), "p99 {:?}", s.p99);
        assert!(!close(s.p99, 100) || close(s.p99, 99));
        assert_eq!(s.max, Duration::from_micros(100));
        assert_eq!(s.mean, Duration::from_nanos(50_500));
    }

    // Proves every value lands in a bucket whose high bound is >= it and
    // within 1/16 of it.
    #[test]
    fn buckets_bound_values() {
        for v in (0..10_000u64).chain([u64::MAX / 3, u64::MAX]) {
            let high = bucket_high(bucket_of(v));
            assert!(high >= v, "{v} -> {high}");
            assert!(high - v <= v / 16 + 1, "{v} -> {high}");
        }
    }
}
