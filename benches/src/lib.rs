//! Shared helpers for Quiver's benchmark binaries: interleaved runs, medians
//! with spread, and ratio tables. Absolute times on shared machines are
//! noise; every figure these benches print is a ratio against a baseline
//! measured in the same run.
//!
//! [`baselines`] holds Quiver's durable import and the raw-file baseline.
//! `peers` (with the `peers` feature) holds the peer engines (heed, redb,
//! the seed's `MmapStorage`) loaded the way each one's documentation
//! recommends for a bulk import, so the import and read benches compare like
//! with like. The feature keeps the peers' builds (LMDB's C code among them)
//! out of `cargo nextest run --workspace`; CI checks them with
//! `--features quiver-benches/peers`.

pub mod baselines;
#[cfg(feature = "peers")]
pub mod peers;

use std::path::Path;
use std::time::{Duration, Instant};

/// Times `f` once.
pub fn time<R>(f: impl FnOnce() -> R) -> (Duration, R) {
    let started = Instant::now();
    let r = f();
    (started.elapsed(), r)
}

/// Median and (min, max) of `samples`.
pub fn median_spread(samples: &[f64]) -> (f64, f64, f64) {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 };
    (median, s[0], s[n - 1])
}

/// Prints one table row: a ratio's median and spread over interleaved runs.
pub fn print_ratio(what: &str, ratios: &[f64], target: &str) {
    let (m, lo, hi) = median_spread(ratios);
    println!("| {what} | {m:.2} | {lo:.2}..{hi:.2} | {} | {target} |", ratios.len());
}

/// Prints the header of a ratio table, after a line saying what was run.
pub fn print_table_header(title: &str) {
    println!("{title}");
    println!("| what | median | spread | runs | target |");
    println!("|---|---|---|---|---|");
}

/// An environment variable parsed as a number, or a default.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// An environment variable parsed as a comma-separated list of numbers, or
/// a default.
pub fn env_list_or(name: &str, default: &[u64]) -> Vec<u64> {
    match std::env::var(name) {
        Ok(v) => v.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
        Err(_) => default.to_vec(),
    }
}

/// Writes back every dirty page of the system (`sync(2)`), so that the next
/// timed step does not pay for the write-back of the one before it: a
/// durable step that follows a 300 MB write otherwise waits for those
/// pages at its own `fsync`, and whichever side runs second looks slower.
pub fn settle() {
    rustix::fs::sync();
}

/// A temporary directory for one bench's stores, under `QUIVER_BENCH_DIR`
/// (default: the current directory, so the stores land on the same file
/// system as the work tree rather than on a tmpfs).
pub fn bench_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(std::env::var("QUIVER_BENCH_DIR").unwrap_or_else(|_| ".".into())).expect("tempdir")
}

/// A deterministic vector.
pub fn vector(id: u64, dim: usize) -> Vec<f32> {
    let mut x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..dim)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

/// `reads` pseudo-random ids below `count` (xorshift, so every run and every
/// engine reads the same sequence).
pub fn random_ids(count: u64, reads: u64, seed: u64) -> Vec<u64> {
    let mut x = seed | 1;
    (0..reads)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % count
        })
        .collect()
}

/// The sum of every element, in eight lanes so the loop measures memory,
/// not one adder's latency.
#[inline]
pub fn sum(v: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    for chunk in v.chunks_exact(8) {
        for i in 0..8 {
            acc[i] += chunk[i];
        }
    }
    acc.iter().sum::<f32>() + v.chunks_exact(8).remainder().iter().sum::<f32>()
}

/// The dot product, in eight lanes (as [`sum`]).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = a.chunks_exact(8).remainder().iter().zip(b.chunks_exact(8).remainder()).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// The sum of the elements of a byte slice read as little-endian `f32`s:
/// zero-copy when the bytes are 4-aligned, otherwise copied into `scratch`
/// first. Returns the sum and whether a copy was needed.
#[inline]
pub fn sum_bytes(bytes: &[u8], scratch: &mut Vec<f32>) -> (f32, bool) {
    match bytemuck::try_cast_slice::<u8, f32>(bytes) {
        Ok(v) => (sum(v), false),
        Err(_) => {
            scratch.resize(bytes.len() / 4, 0.0);
            bytemuck::cast_slice_mut::<f32, u8>(scratch).copy_from_slice(bytes);
            (sum(scratch), true)
        }
    }
}

/// The vectors of a bench: `count` ids `0..count`, each mapped to one of
/// 1000 distinct deterministic vectors (`id % 1000`), so a data set of any
/// size costs 3 MB of RAM to describe and every engine stores the same
/// bytes.
pub struct Dataset {
    /// Number of vectors.
    pub count: u64,
    /// Elements per vector.
    pub dim: usize,
    pool: Vec<Vec<f32>>,
    pool_bytes: Vec<u8>,
}

/// Vectors per `store_batch` in every import.
pub const BATCH_VECTORS: usize = 1000;

impl Dataset {
    /// `count` vectors of `dim` elements.
    pub fn new(count: u64, dim: usize) -> Self {
        let pool: Vec<Vec<f32>> = (0..BATCH_VECTORS as u64).map(|i| vector(i, dim)).collect();
        let pool_bytes = pool.iter().flat_map(|v| bytemuck::cast_slice::<f32, u8>(v).iter().copied()).collect();
        Self { count, dim, pool, pool_bytes }
    }

    /// The vector of `id`.
    #[inline]
    pub fn vector(&self, id: u64) -> &[f32] {
        &self.pool[(id % BATCH_VECTORS as u64) as usize]
    }

    /// Bytes of one vector's payload.
    pub fn vector_bytes(&self) -> usize {
        self.dim * 4
    }

    /// Payload bytes of the whole data set.
    pub fn total_bytes(&self) -> u64 {
        self.count * self.vector_bytes() as u64
    }

    /// The ids in batches of [`BATCH_VECTORS`], in ascending order.
    pub fn batches(&self) -> impl Iterator<Item = Vec<(u64, &[f32])>> + '_ {
        (0..self.count.div_ceil(BATCH_VECTORS as u64)).map(move |b| {
            let first = b * BATCH_VECTORS as u64;
            let end = (first + BATCH_VECTORS as u64).min(self.count);
            (first..end).map(|id| (id, self.vector(id))).collect()
        })
    }

    /// The payload bytes of batch `b` ([`Dataset::batches`] order), as one
    /// contiguous buffer: what a raw file write of the same data writes.
    pub fn batch_bytes(&self, b: u64) -> &[u8] {
        let first = b * BATCH_VECTORS as u64;
        let n = (self.count - first).min(BATCH_VECTORS as u64) as usize;
        // Batch b holds ids first..first+n, i.e. pool entries 0..n in order.
        &self.pool_bytes[..n * self.vector_bytes()]
    }

    /// Number of batches.
    pub fn batch_count(&self) -> u64 {
        self.count.div_ceil(BATCH_VECTORS as u64)
    }
}

/// Drops `path`'s pages from the page cache (`posix_fadvise(DONTNEED)`
/// after `fdatasync`), so the next read of it comes from the disk. Only
/// pages no process maps are dropped. Unlike `/proc/sys/vm/drop_caches`,
/// this leaves other users of the machine their caches.
pub fn evict_from_page_cache(path: &Path) -> std::io::Result<()> {
    let f = std::fs::File::open(path)?;
    f.sync_data()?;
    rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed)?;
    Ok(())
}

/// Latency samples in nanoseconds, summarised by nearest rank.
#[derive(Debug, Default, Clone)]
pub struct Latencies(pub Vec<u64>);

impl Latencies {
    /// Records one sample.
    pub fn record(&mut self, d: Duration) {
        self.0.push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// The p-th percentile (nearest rank), in microseconds; 0 when empty.
    pub fn percentile_us(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        let mut s = self.0.clone();
        s.sort_unstable();
        let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
        s[rank.min(s.len()) - 1] as f64 / 1e3
    }

    /// The largest sample, in microseconds; 0 when empty.
    pub fn max_us(&self) -> f64 {
        self.0.iter().copied().max().unwrap_or(0) as f64 / 1e3
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no sample.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
