//! `quiver demo`: builds a fresh store of deterministic synthetic vectors,
//! closes it, reopens it, checks every vector, times zero-copy random reads
//! and prints a summary. Everything it does goes through the public API.

use std::fs;
use std::hint::black_box;
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use quiver::{SnapshotOutcome, StoreOptions, VectorStore};

use crate::Outcome;
use crate::units::{bytes, count, duration};

/// Seed of the synthetic vectors; fixed so every run writes the same data.
const SEED: u64 = 0x5155_4956_4552_2024;

/// Arguments of `quiver demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Directory for the store. It must not exist, be empty, or hold a
    /// Quiver store (which is removed first). [default: quiver-demo in the
    /// system temporary directory]
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Number of vectors to import.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,
    /// Elements per vector (f32).
    #[arg(long, default_value_t = 768, value_parser = clap::value_parser!(u32).range(1..=i64::from(quiver::limits::MAX_DIMENSION)))]
    dim: u32,
    /// Vectors per `store_batch` call.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=i64::from(quiver::limits::MAX_BATCH_VECTORS)))]
    batch: u32,
    /// Random zero-copy reads to time.
    #[arg(long, default_value_t = 100_000)]
    reads: u64,
}

/// Runs the demo.
pub(crate) fn run(args: &Args) -> Result<Outcome> {
    let dir = args.dir.clone().unwrap_or_else(|| std::env::temp_dir().join("quiver-demo"));
    let dim = args.dim as usize;
    let n = args.count;
    let payload_bytes = n * u64::from(args.dim) * 4;
    prepare_dir(&dir)?;

    println!(
        "Quiver demo: {} vectors of {dim} f32 ({} of payload) in {}",
        count(n),
        bytes(payload_bytes),
        dir.display()
    );
    let import = import(&dir, dim, n, args.batch as usize)?;

    // Reopen: the clean close checkpointed, so this loads the snapshot
    // instead of replaying the WAL.
    let started = Instant::now();
    let store: VectorStore<f32> = VectorStore::open(&dir, dim).context("reopening the store")?;
    let reopen_time = started.elapsed();
    let outcome = match &store.recovery_report().snapshot {
        SnapshotOutcome::Loaded { entries } => format!("snapshot loaded, {} entries", count(*entries)),
        SnapshotOutcome::Rebuilt { reason } => format!("index rebuilt from the data file: {reason}"),
        SnapshotOutcome::NoCheckpoint => "no checkpoint; the WAL was replayed".to_string(),
        other => format!("{other:?}"),
    };
    let replayed = store.recovery_report().batches_replayed;

    let (verify_time, mismatches) = verify_all(&store, dim, n)?;
    let read_ns = random_reads(&store, n, args.reads);
    let metrics = store.metrics();
    let info = quiver::inspect(&dir).context("inspecting the store")?;
    store.close().context("closing the store")?;

    let secs = import.elapsed.as_secs_f64().max(1e-9);
    println!();
    println!("  dir              {}", dir.display());
    println!("  vectors          {} x {dim} f32", count(n));
    println!(
        "  import           {} ({} vectors/s, {:.0} MB/s; reserve_capacity + {} batches + flush)",
        duration(import.elapsed),
        count((n as f64 / secs) as u64),
        payload_bytes as f64 / secs / 1e6,
        count(n.div_ceil(u64::from(args.batch))),
    );
    println!("  close            {} (flush + checkpoint)", duration(import.close));
    println!("  reopen           {} ({outcome}; {replayed} WAL batches replayed)", duration(reopen_time));
    println!(
        "  verify           {} (every vector read back and compared with the generated one)",
        duration(verify_time)
    );
    match read_ns {
        Some(ns) => {
            println!("  random get       {ns:.0} ns/op ({} zero-copy reads, summing every element)", count(args.reads))
        }
        None => println!("  random get       skipped (--reads 0)"),
    }
    println!(
        "  data file        {} reserved, {} allocated on disk, {} of records ({} live)",
        bytes(metrics.file_bytes),
        bytes(info.data_file_allocated_bytes),
        bytes(metrics.committed_bytes),
        bytes(metrics.live_bytes),
    );
    println!(
        "  snapshot, WAL    {} snapshot; {} in {} WAL segment(s)",
        bytes(info.snapshot_bytes),
        bytes(info.wal_bytes),
        info.wal_segments
    );
    println!();
    println!("The store is at {}. Next, try:", dir.display());
    println!("  quiver info {}", dir.display());
    println!("  quiver verify {}", dir.display());
    println!("(from a checkout: cargo run --release -p quiver-cli -- info {})", dir.display());
    if mismatches > 0 {
        eprintln!("error: {mismatches} vectors read back differ from the ones written");
        return Ok(Outcome::Problems);
    }
    Ok(Outcome::Clean)
}

/// Makes sure `dir` can hold a fresh store: absent, empty, or a previous
/// Quiver store, which is removed. Anything else is refused.
fn prepare_dir(dir: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    if !meta.is_dir() {
        bail!("{} exists and is not a directory; choose another --dir", dir.display());
    }
    if dir.join("QUIVER").is_file() {
        println!("Removing the previous store at {}", dir.display());
        return fs::remove_dir_all(dir).with_context(|| format!("removing the previous store at {}", dir.display()));
    }
    let empty = fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?.next().is_none();
    ensure!(
        empty,
        "{} exists, is not empty and is not a Quiver store; refusing to overwrite it (choose another --dir)",
        dir.display()
    );
    Ok(())
}

/// Timings of the import phase.
struct Import {
    /// `reserve_capacity`, every `store_batch` and the final `flush`
    /// (generating the vectors is not counted).
    elapsed: Duration,
    /// `close`: the final checkpoint.
    close: Duration,
}

/// Creates the store, imports `n` vectors in batches with a progress bar,
/// flushes and closes it.
fn import(dir: &Path, dim: usize, n: u64, batch: usize) -> Result<Import> {
    let store: VectorStore<f32> = StoreOptions::new(dim).open(dir).context("creating the store")?;
    let progress = progress_bar(n)?;
    let mut elapsed = Duration::ZERO;
    let started = Instant::now();
    store.reserve_capacity(usize::try_from(n).context("--count does not fit in memory")?).with_context(|| {
        format!("reserving room for {} vectors (is there {} free?)", count(n), bytes(n * dim as u64 * 4))
    })?;
    elapsed += started.elapsed();

    let mut buffer = vec![0f32; batch * dim];
    let mut first = 0u64;
    while first < n {
        let len = (n - first).min(batch as u64) as usize;
        let vectors = &mut buffer[..len * dim];
        for (i, v) in vectors.chunks_exact_mut(dim).enumerate() {
            synthetic_vector(first + i as u64, v);
        }
        let pairs: Vec<(u64, &[f32])> =
            vectors.chunks_exact(dim).enumerate().map(|(i, v)| (first + i as u64, v)).collect();
        let started = Instant::now();
        let stored = store.store_batch(&pairs).with_context(|| format!("storing vectors {first}.."))?;
        elapsed += started.elapsed();
        ensure!(stored == len, "store_batch stored {stored} of {len} distinct vectors");
        progress.inc(len as u64);
        first += len as u64;
    }
    let started = Instant::now();
    store.flush().context("flushing the store")?;
    elapsed += started.elapsed();
    progress.finish_and_clear();

    let started = Instant::now();
    store.close().context("closing the store")?;
    Ok(Import { elapsed, close: started.elapsed() })
}

/// A progress bar on stdout, hidden when stdout is not a terminal.
fn progress_bar(n: u64) -> Result<ProgressBar> {
    if !io::stdout().is_terminal() {
        return Ok(ProgressBar::hidden());
    }
    let bar = ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stdout());
    bar.set_style(
        ProgressStyle::with_template(
            "  importing {bar:40} {human_pos}/{human_len} vectors, {elapsed} elapsed, eta {eta}",
        )
        .context("building the progress bar style")?,
    );
    Ok(bar)
}

/// Reads every vector back through the zero-copy `get` and compares it,
/// bit for bit, with the generated one. Returns the time taken and the
/// number of vectors that were missing or differed.
fn verify_all(store: &VectorStore<f32>, dim: usize, n: u64) -> Result<(Duration, u64)> {
    ensure!(store.len() as u64 == n, "the reopened store holds {} vectors, not {}", store.len(), n);
    let started = Instant::now();
    let mut expected = vec![0f32; dim];
    let mut mismatches = 0u64;
    for id in 0..n {
        synthetic_vector(id, &mut expected);
        let same = store
            .get(id)
            .is_some_and(|g| g.len() == dim && g.iter().zip(&expected).all(|(a, b)| a.to_bits() == b.to_bits()));
        mismatches += u64::from(!same);
    }
    Ok((started.elapsed(), mismatches))
}

/// Times `reads` zero-copy reads of random ids, each summing every element.
/// Returns nanoseconds per read, or `None` when no read was asked for.
fn random_reads(store: &VectorStore<f32>, n: u64, reads: u64) -> Option<f64> {
    if reads == 0 {
        return None;
    }
    let mut rng = SplitMix64(SEED.rotate_left(17));
    let ids: Vec<u64> = (0..reads).map(|_| rng.next_u64() % n).collect();
    let started = Instant::now();
    let mut total = 0f32;
    for &id in &ids {
        if let Some(g) = store.get(black_box(id)) {
            total += sum(&g);
        }
    }
    black_box(total);
    Some(started.elapsed().as_nanos() as f64 / reads as f64)
}

/// The sum of `v`, in eight independent lanes so the compiler can vectorize
/// it (a plain `iter().sum()` is one dependent chain of float additions and
/// would time the adder's latency rather than the read).
fn sum(v: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = v.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (lane, x) in lanes.iter_mut().zip(chunk) {
            *lane += x;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Fills `out` with the vector of `id`: uniform values in [-1, 1), from a
/// generator seeded by the id, so any vector can be regenerated alone.
fn synthetic_vector(id: u64, out: &mut [f32]) {
    let mut rng = SplitMix64(SEED ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    for pair in out.chunks_mut(2) {
        let bits = rng.next_u64();
        pair[0] = unit(bits as u32);
        if let Some(second) = pair.get_mut(1) {
            *second = unit((bits >> 32) as u32);
        }
    }
}

/// The top 24 bits of `bits` as a float in [-1, 1) (exact in f32).
fn unit(bits: u32) -> f32 {
    (bits >> 8) as f32 * (2.0 / (1u32 << 24) as f32) - 1.0
}

/// SplitMix64 (Steele, Lea and Flood): a tiny, well-mixed generator, enough
/// for synthetic data and random ids.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the synthetic vectors are deterministic per id, differ between
    // ids, and stay in [-1, 1).
    #[test]
    fn synthetic_vectors_are_deterministic_and_bounded() {
        let (mut a, mut b, mut c) = (vec![0f32; 7], vec![0f32; 7], vec![0f32; 7]);
        synthetic_vector(42, &mut a);
        synthetic_vector(42, &mut b);
        synthetic_vector(43, &mut c);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().chain(&c).all(|x| (-1.0..1.0).contains(x)));
        assert_eq!(unit(0), -1.0);
        assert!(unit(u32::MAX) < 1.0);
        let v: Vec<f32> = (1..=19).map(|x| x as f32).collect();
        assert_eq!(sum(&v), 190.0);
    }
}
