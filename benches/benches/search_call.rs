//! The Rust side of `benches/python/bench_search.py`: the call that
//! `Snapshot.search` makes from Python (`Search::search_batch_with` on a
//! follower's snapshot, one query or a batch of 64, k = 10, cosine), timed
//! in-process on a store directory the Python bench wrote, with the queries
//! it wrote, so both sides search the same bytes with the same arguments.
//!
//! Prints one JSON object on stdout: per case (`one` / `batch` and 1 / 0
//! threads, 0 meaning one per core, as in Python) the median, min and max
//! seconds per call over the repetitions, and the ids of query 0's hits,
//! which the Python bench compares with its own.
//!
//! `QUIVER_SEARCH_STORE=DIR QUIVER_SEARCH_QUERIES=FILE.f32 cargo bench -p
//! quiver-benches --bench search_call`; FILE holds at least 64 queries as
//! raw little-endian f32 (numpy's `tofile`). QUIVER_SEARCH_REPEAT_ONE
//! (default 30) and QUIVER_SEARCH_REPEAT_BATCH (default 5) set the timed
//! calls per case, after one untimed warm-up call. Without
//! QUIVER_SEARCH_STORE it builds its own store of QUIVER_BENCH_VECTORS
//! (default 100000) x 768 under QUIVER_BENCH_DIR, with queries
//! `vector(10^9 + i)`, so it also runs alone.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use quiver::{Metric, Search, SearchOptions, Snapshot, StoreOptions};
use quiver_benches::baselines::quiver_import;
use quiver_benches::{Dataset, bench_dir, env_or, median_spread, time, vector};

const DIM_DEFAULT: usize = 768;
const K: usize = 10;
const BATCH: usize = 64;

/// Raw little-endian f32 values.
fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).expect("read the queries file");
    assert!(bytes.len().is_multiple_of(4), "{} is not whole f32 values", path.display());
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// Times `repeat` calls of the search of `queries` (after one warm-up),
/// returning (median, min, max) seconds per call and query 0's hit ids.
fn time_case(snapshot: &Snapshot<f32>, queries: &[f32], threads: usize, repeat: usize) -> ((f64, f64, f64), Vec<u64>) {
    let options = SearchOptions::new(K, Metric::Cosine).threads(threads);
    let first = snapshot.search_batch_with(queries, &options).expect("search");
    let ids = first[0].iter().map(|h| h.id).collect();
    let samples: Vec<f64> = (0..repeat)
        .map(|_| {
            let (t, hits) = time(|| snapshot.search_batch_with(queries, &options).expect("search"));
            black_box(hits);
            t.as_secs_f64()
        })
        .collect();
    (median_spread(&samples), ids)
}

fn main() {
    let repeat_one = env_or("QUIVER_SEARCH_REPEAT_ONE", 30) as usize;
    let repeat_batch = env_or("QUIVER_SEARCH_REPEAT_BATCH", 5) as usize;
    // Kept alive until the end: the standalone store lives in it.
    let mut _scratch = None;
    let (dir, dim, queries): (PathBuf, usize, Vec<f32>) = match std::env::var_os("QUIVER_SEARCH_STORE") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            let dim = quiver::inspect(&dir).expect("inspect the store").dimension as usize;
            let file = std::env::var_os("QUIVER_SEARCH_QUERIES").expect("QUIVER_SEARCH_QUERIES with the store");
            (dir, dim, read_f32(Path::new(&file)))
        }
        None => {
            let scratch = bench_dir();
            let dir = scratch.path().join("store");
            let ds = Dataset::new(env_or("QUIVER_BENCH_VECTORS", 100_000), DIM_DEFAULT);
            let (_, store) = quiver_import(&dir, &ds);
            store.close().expect("close");
            _scratch = Some(scratch);
            let queries = (0..BATCH as u64).flat_map(|i| vector(1_000_000_000 + i, DIM_DEFAULT)).collect();
            (dir, DIM_DEFAULT, queries)
        }
    };
    assert!(queries.len() >= BATCH * dim, "need {BATCH} queries of {dim}, got {} values", queries.len());
    let reader = StoreOptions::new(dim).open_reader::<f32>(&dir).expect("open the store as a follower");
    let snapshot = reader.snapshot();
    let cases = [
        ("one", 1, 1, repeat_one),
        ("one", 1, 0, repeat_one),
        ("batch", BATCH, 1, repeat_batch),
        ("batch", BATCH, 0, repeat_batch),
    ];
    let mut rows = Vec::new();
    for (name, n, threads, repeat) in cases {
        let ((median, lo, hi), ids) = time_case(&snapshot, &queries[..n * dim], threads, repeat);
        let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
        rows.push(format!(
            "{{\"case\": \"{name}\", \"queries\": {n}, \"threads\": {threads}, \"repeat\": {repeat}, \
             \"median_s\": {median:e}, \"min_s\": {lo:e}, \"max_s\": {hi:e}, \"ids0\": [{}]}}",
            ids.join(", ")
        ));
    }
    println!("{{\"vectors\": {}, \"dim\": {dim}, \"k\": {K}, \"cases\": [{}]}}", snapshot.len(), rows.join(", "));
}
