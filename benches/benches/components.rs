//! Criterion micro-benches, one group per component, for criterion's
//! statistics, its change detection between runs and its HTML report
//! (target/criterion/report/index.html). The ratio binaries beside this one
//! keep the side-by-side tables against baselines and peers; these give
//! absolute times, which are only comparable on one machine between runs.
//!
//! Groups (768-d `f32`; every store under `QUIVER_BENCH_DIR`):
//! - `append`: `store` of one vector and `store_batch` of 1000, Buffered
//!   durability, into a store presized with `reserve_capacity` (growth is
//!   not measured). The bench moves to a fresh store, outside the timing,
//!   every [`APPEND_STORE_VECTORS`] vectors so the disk use stays bounded;
//!   the WAL's automatic checkpoints stay in, as in any long run of appends.
//! - `get`, `snapshot_get`, `get_many`: 1024 random ids per iteration (taken
//!   in turn from 2^20 of them, so the vectors come from memory rather than
//!   from the CPU caches) of a hot store of `QUIVER_BENCH_VECTORS` vectors,
//!   every vector summed: `VectorStore::get`, `Snapshot::get`, and
//!   `Snapshot::get_many` / `get_many_into` of 64 ids at a time.
//! - `scan`: every vector of the same store summed, in file order, through
//!   `VectorStore::for_each` and `Snapshot::iter` (throughput: payload
//!   bytes).
//! - `search_kernel`: one exact top-10 Cosine query, one thread, over the
//!   same store's snapshot (throughput: payload bytes scanned).
//! - `import`: `import_file` of an `.npy` of `QUIVER_BENCH_BULK_VECTORS`
//!   vectors into a fresh store (Buffered, `ImportOptions::default()`, so
//!   the import ends with its `flush`: durable against power loss).
//! - `compaction`: `quiver_compaction::compact` of a store of
//!   `QUIVER_BENCH_BULK_VECTORS` vectors, half of them overwritten (a fresh
//!   store each iteration, built outside the timing).
//! - `reopen`: `VectorStore::open` of the read store after a clean close
//!   (snapshot loaded, nothing replayed; the drop is not timed).
//!
//! `cargo bench -p quiver-benches --features criterion --bench components` (QUIVER_BENCH_VECTORS,
//! default 100000; QUIVER_BENCH_BULK_VECTORS, default 10000;
//! QUIVER_BENCH_DIR). Criterion's own options follow `--`: a filter
//! (`-- get`), `--quick`, `--sample-size`, `--measurement-time`,
//! `--save-baseline` / `--baseline`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use quiver_benches::{Dataset, bench_dir, env_or, random_ids, settle, sum, vector};
use quiver_formats::{Format, ImportOptions, NpyWriter, Scalar, WriteRows, import_file};
use quiver_search::{Metric, Search, SearchOptions};
use quiver_storage::{Durability, ElementType, Snapshot, SnapshotOutcome, StoreOptions, VectorStore};
use tempfile::TempDir;

const DIM: usize = 768;
/// Vectors an `append` store holds before the bench moves to a fresh one
/// (96 MiB of payload): enough that opening a store is rare, few enough
/// that the bench never fills a disk.
const APPEND_STORE_VECTORS: u64 = 1 << 15;
/// Vectors per `store_batch` in the `append` group.
const APPEND_BATCH_VECTORS: u64 = 1000;
/// Random ids read per iteration of the read groups.
const READS_PER_ITER: usize = 1024;
/// Ids per `get_many` call.
const MANY_IDS: usize = 64;
/// Length of the random id sequence the read groups walk through.
const ID_SEQUENCE: u64 = 1 << 20;
const K: usize = 10;

/// A store of `ds` at `path`, presized, filled in batches of 1000, flushed.
fn filled_store(path: &Path, ds: &Dataset) -> VectorStore<f32> {
    let store: VectorStore<f32> = VectorStore::open(path, DIM).expect("open");
    store.reserve_capacity(ds.count as usize).expect("reserve");
    for batch in ds.batches() {
        store.store_batch(&batch).expect("store_batch");
    }
    store.flush().expect("flush");
    store
}

/// The `append` group's target: a Buffered store presized for
/// [`APPEND_STORE_VECTORS`], replaced by a fresh one when full.
struct Appender {
    root: TempDir,
    /// The store comes first so it drops before its directory.
    store: Option<(VectorStore<f32>, TempDir)>,
    next_id: u64,
}

impl Appender {
    fn new() -> Self {
        let mut a = Self { root: bench_dir(), store: None, next_id: 0 };
        a.rotate();
        a
    }

    /// Drops the current store and opens a fresh, presized one (not timed).
    fn rotate(&mut self) {
        self.store = None;
        let dir = tempfile::tempdir_in(self.root.path()).expect("tempdir");
        let store: VectorStore<f32> =
            StoreOptions::new(DIM).durability(Durability::Buffered).open(dir.path().join("store")).expect("open");
        store.reserve_capacity(APPEND_STORE_VECTORS as usize).expect("reserve");
        self.store = Some((store, dir));
        self.next_id = 0;
    }

    /// Times `calls` calls of `step` (each storing `per_call` vectors from
    /// the current id on), moving to a fresh store between runs of them
    /// whenever the next call would not fit.
    fn time(&mut self, calls: u64, per_call: u64, mut step: impl FnMut(&VectorStore<f32>, u64)) -> Duration {
        let mut total = Duration::ZERO;
        let mut left = calls;
        while left > 0 {
            let room = (APPEND_STORE_VECTORS - self.next_id) / per_call;
            if room == 0 {
                self.rotate();
                continue;
            }
            let n = room.min(left);
            let (store, _) = self.store.as_ref().expect("a store is open");
            let first = self.next_id;
            let started = Instant::now();
            for call in 0..n {
                step(store, first + call * per_call);
            }
            total += started.elapsed();
            self.next_id += n * per_call;
            left -= n;
        }
        total
    }
}

fn append(c: &mut Criterion) {
    let ds = Dataset::new(APPEND_BATCH_VECTORS, DIM);
    // Opened on first use, so a filter that skips the group opens nothing.
    let mut appender: Option<Appender> = None;
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Elements(1));
    group.bench_function("store", |b| {
        let appender = appender.get_or_insert_with(Appender::new);
        b.iter_custom(|iters| appender.time(iters, 1, |store, id| store.store(id, ds.vector(id)).expect("store")))
    });
    group.throughput(Throughput::Elements(APPEND_BATCH_VECTORS));
    group.bench_function(BenchmarkId::new("store_batch", APPEND_BATCH_VECTORS), |b| {
        let appender = appender.get_or_insert_with(Appender::new);
        b.iter_custom(|iters| {
            appender.time(iters, APPEND_BATCH_VECTORS, |store, first| {
                let batch: Vec<(u64, &[f32])> =
                    (first..first + APPEND_BATCH_VECTORS).map(|id| (id, ds.vector(id))).collect();
                store.store_batch(&batch).expect("store_batch");
            })
        })
    });
    group.finish();
}

/// The store the read, search and reopen groups share, built on first use
/// (so a filter that selects none of them never builds it).
struct ReadStore {
    store: VectorStore<f32>,
    snapshot: Snapshot<f32>,
    path: PathBuf,
    dir: TempDir,
    /// [`ID_SEQUENCE`] random ids below the store's count.
    ids: Vec<u64>,
    /// Which [`READS_PER_ITER`]-chunk of `ids` the next iteration reads.
    cursor: usize,
}

impl ReadStore {
    fn build(count: u64) -> Self {
        let dir = bench_dir();
        let path = dir.path().join("reads");
        let store = filled_store(&path, &Dataset::new(count, DIM));
        let snapshot = store.snapshot();
        // Hot: every page of the data file faulted in once.
        let mut total = 0.0f32;
        for (_, v) in snapshot.iter() {
            total += sum(v);
        }
        black_box(total);
        let ids = random_ids(count, ID_SEQUENCE, 42);
        Self { store, snapshot, path, dir, ids, cursor: 0 }
    }

    /// The next [`READS_PER_ITER`] random ids.
    fn next_ids<'a>(ids: &'a [u64], cursor: &mut usize) -> &'a [u64] {
        let chunks = ids.len() / READS_PER_ITER;
        let at = *cursor % chunks * READS_PER_ITER;
        *cursor += 1;
        &ids[at..at + READS_PER_ITER]
    }

    /// Closes the store cleanly (a snapshot written, the WAL empty) and
    /// hands back its path and the directory that owns it.
    fn close(self) -> (PathBuf, TempDir) {
        drop(self.snapshot);
        self.store.close().expect("close");
        (self.path, self.dir)
    }
}

fn read_store(slot: &mut Option<ReadStore>, count: u64) -> &mut ReadStore {
    slot.get_or_insert_with(|| ReadStore::build(count))
}

fn reads(c: &mut Criterion, slot: &mut Option<ReadStore>, count: u64) {
    let mut group = c.benchmark_group("get");
    group.throughput(Throughput::Elements(READS_PER_ITER as u64));
    group.bench_function(BenchmarkId::new("random_hot_sum", count), |b| {
        let r = read_store(slot, count);
        b.iter(|| {
            let mut total = 0.0f32;
            for &id in ReadStore::next_ids(&r.ids, &mut r.cursor) {
                total += sum(&r.store.get(id).expect("present"));
            }
            total
        })
    });
    group.finish();

    let mut group = c.benchmark_group("snapshot_get");
    group.throughput(Throughput::Elements(READS_PER_ITER as u64));
    group.bench_function(BenchmarkId::new("random_hot_sum", count), |b| {
        let r = read_store(slot, count);
        b.iter(|| {
            let mut total = 0.0f32;
            for &id in ReadStore::next_ids(&r.ids, &mut r.cursor) {
                total += sum(r.snapshot.get(id).expect("present"));
            }
            total
        })
    });
    group.finish();

    let mut group = c.benchmark_group("get_many");
    group.throughput(Throughput::Elements(READS_PER_ITER as u64));
    group.bench_function(BenchmarkId::new("get_many_64", count), |b| {
        let r = read_store(slot, count);
        b.iter(|| {
            let mut total = 0.0f32;
            for ids in ReadStore::next_ids(&r.ids, &mut r.cursor).chunks(MANY_IDS) {
                for v in r.snapshot.get_many(ids) {
                    total += sum(v.expect("present"));
                }
            }
            total
        })
    });
    group.bench_function(BenchmarkId::new("get_many_into_64", count), |b| {
        let r = read_store(slot, count);
        let mut out = Vec::with_capacity(MANY_IDS);
        b.iter(|| {
            let mut total = 0.0f32;
            for ids in ReadStore::next_ids(&r.ids, &mut r.cursor).chunks(MANY_IDS) {
                r.snapshot.get_many_into(ids, &mut out);
                for v in &out {
                    total += sum(v.expect("present"));
                }
            }
            total
        })
    });
    group.finish();

    let mut group = c.benchmark_group("scan");
    group.throughput(Throughput::Bytes(count * (DIM * 4) as u64));
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function(BenchmarkId::new("for_each_sum", count), |b| {
        let r = read_store(slot, count);
        b.iter(|| {
            let mut total = 0.0f32;
            r.store.for_each(|_, v| total += sum(v));
            total
        })
    });
    group.bench_function(BenchmarkId::new("snapshot_iter_sum", count), |b| {
        let r = read_store(slot, count);
        b.iter(|| {
            let mut total = 0.0f32;
            for (_, v) in r.snapshot.iter() {
                total += sum(v);
            }
            total
        })
    });
    group.finish();

    let mut group = c.benchmark_group("search_kernel");
    group.throughput(Throughput::Bytes(count * (DIM * 4) as u64));
    // Tens of milliseconds a query at the default size: the same number of
    // queries in every sample.
    group.sampling_mode(SamplingMode::Flat);
    let query = vector(1_000_000_000, DIM);
    let options = SearchOptions::new(K, Metric::Cosine).threads(1);
    group.bench_function(BenchmarkId::new("cosine_k10_1_thread", count), |b| {
        let r = read_store(slot, count);
        // The first search also sorts the view's entries by slot, once.
        black_box(r.snapshot.search_with(&query, &options).expect("search"));
        b.iter(|| r.snapshot.search_with(&query, &options).expect("search"))
    });
    group.finish();
}

/// Writes `ds` as an `.npy` of `f32` rows at `path` (not timed).
fn write_npy(path: &Path, ds: &Dataset) {
    let mut w: Box<dyn WriteRows> =
        Box::new(NpyWriter::create(path, Scalar::Element(ElementType::F32), Some(DIM), ds.count).expect("npy"));
    for b in 0..ds.batch_count() {
        w.write_rows(&[], ds.batch_bytes(b)).expect("write");
    }
    w.finish().expect("finish");
}

fn import(c: &mut Criterion, bulk: u64) {
    let ds = Dataset::new(bulk, DIM);
    let root = bench_dir();
    let npy = root.path().join("source.npy");
    let mut written = false;
    let mut group = c.benchmark_group("import");
    group.throughput(Throughput::Bytes(ds.total_bytes()));
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function(BenchmarkId::new("npy_buffered_flushed", bulk), |b| {
        if !written {
            write_npy(&npy, &ds);
            written = true;
        }
        b.iter_batched(
            || {
                let dir = tempfile::tempdir_in(root.path()).expect("tempdir");
                let store: VectorStore<f32> = VectorStore::open(dir.path().join("store"), DIM).expect("open");
                // So that no import pays for the write-back of the last.
                settle();
                (store, dir)
            },
            |(store, dir)| {
                let summary = import_file(&store, &npy, Some(Format::Npy), &ImportOptions::default(), &mut |_| {})
                    .expect("import");
                assert_eq!(summary.rows, bulk);
                // Returned, so the store and its files go outside the timing.
                (store, dir)
            },
            // One store on disk at a time: each import takes milliseconds.
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn compaction(c: &mut Criterion, bulk: u64) {
    let ds = Dataset::new(bulk, DIM);
    let root = bench_dir();
    let mut group = c.benchmark_group("compaction");
    // Throughput: the live payload bytes the compaction copies.
    group.throughput(Throughput::Bytes(ds.total_bytes()));
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function(BenchmarkId::new("half_overwritten", bulk), |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir_in(root.path()).expect("tempdir");
                let store = filled_store(&dir.path().join("store"), &ds);
                // Every other id overwritten with another vector: half the
                // data file is garbage.
                let odd: Vec<u64> = (0..bulk).filter(|id| id % 2 == 1).collect();
                for chunk in odd.chunks(1000) {
                    let batch: Vec<(u64, &[f32])> = chunk.iter().map(|&id| (id, ds.vector(id + 1))).collect();
                    store.store_batch(&batch).expect("overwrite");
                }
                store.flush().expect("flush");
                settle();
                (store, dir)
            },
            |(store, dir)| {
                let stats = quiver_compaction::compact(&store).expect("compact");
                assert_eq!(stats.live_records, bulk);
                (store, dir)
            },
            // One store on disk at a time: each compaction takes milliseconds.
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn reopen(c: &mut Criterion, slot: &mut Option<ReadStore>, count: u64) {
    let mut closed: Option<(PathBuf, TempDir)> = None;
    let mut group = c.benchmark_group("reopen");
    group.throughput(Throughput::Elements(count));
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function(BenchmarkId::new("after_clean_close", count), |b| {
        let (path, _) = closed.get_or_insert_with(|| slot.take().unwrap_or_else(|| ReadStore::build(count)).close());
        // Checked once, outside the timing: every open loads the snapshot
        // and replays nothing (the store is dropped, never closed, so the
        // files stay as the clean close left them).
        let store = VectorStore::<f32>::open(&*path, DIM).expect("open");
        let report = store.recovery_report();
        assert!(
            matches!(report.snapshot, SnapshotOutcome::Loaded { entries } if entries == count),
            "open did not load the snapshot: {report:?}"
        );
        assert_eq!(report.batches_replayed, 0, "a clean close leaves nothing to replay");
        drop(store);
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                let store = VectorStore::<f32>::open(&*path, DIM).expect("open");
                total += started.elapsed();
                drop(black_box(store));
            }
            total
        })
    });
    group.finish();
}

/// Every group, in an order that lets the read groups and `reopen` share
/// one store.
fn components(c: &mut Criterion) {
    let count = env_or("QUIVER_BENCH_VECTORS", 100_000);
    let bulk = env_or("QUIVER_BENCH_BULK_VECTORS", 10_000);
    let mut read = None;
    append(c);
    reads(c, &mut read, count);
    import(c, bulk);
    compaction(c, bulk);
    reopen(c, &mut read, count);
}

criterion_group! {
    name = benches;
    // Short by default (the whole run takes a few minutes on 2 cores);
    // `-- --sample-size 100 --measurement-time 5` for criterion's defaults.
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2));
    targets = components
}
criterion_main!(benches);
