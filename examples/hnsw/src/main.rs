//! Builds an HNSW index over a Quiver store's slots and measures it against
//! Quiver's exact search: build time, query time and recall@10.
//!
//! ```text
//! cargo run -p quiver-hnsw-example --release -- [VECTORS] [DIM]
//! cargo run -p quiver-hnsw-example --release --features compare -- [VECTORS] [DIM]
//! ```
//!
//! The store is created in a temporary directory with clustered synthetic
//! vectors (defaults: 20,000 of 64 dimensions). With the `compare` feature
//! the same points are also indexed with `instant-distance` (points that
//! borrow the snapshot's vectors, so neither copies them) and with
//! `hnsw_rs` holding its own copy of every vector, for the record of why
//! the example uses `hnsw_rs` over slots.
#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use quiver::{Metric, Search, VectorStore};
use quiver_hnsw_example::{Params, SlotIndex};

const QUERIES: usize = 200;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().map_or(Ok(20_000), |a| a.parse())?;
    let dim: usize = args.next().map_or(Ok(64), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let store: VectorStore<f32> = VectorStore::open(dir.path().join("vectors"), dim)?;
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let clusters = (count / 10).max(1) as u64;
    let centres: Vec<Vec<f32>> = (0..clusters).map(|_| (0..dim).map(|_| unit(&mut seed) * 2.0).collect()).collect();
    let near =
        |seed: &mut u64, c: u64| -> Vec<f32> { centres[c as usize].iter().map(|x| x + unit(seed) * 2.0).collect() };
    store.reserve_capacity(count)?;
    for start in (0..count as u64).step_by(10_000) {
        let vectors: Vec<(u64, Vec<f32>)> =
            (start..(start + 10_000).min(count as u64)).map(|id| (id, near(&mut seed, id % clusters))).collect();
        let batch: Vec<(u64, &[f32])> = vectors.iter().map(|(id, v)| (*id, &v[..])).collect();
        store.store_batch(&batch)?;
    }
    let queries: Vec<Vec<f32>> = (0..QUERIES as u64).map(|i| near(&mut seed, (i * 7) % clusters)).collect();
    let snapshot = store.snapshot();

    let started = Instant::now();
    let truth: Vec<Vec<u64>> = queries
        .iter()
        .map(|q| Ok(snapshot.search(q, 10, Metric::L2)?.iter().map(|h| h.id).collect()))
        .collect::<Result<_, quiver::SearchError>>()?;
    let exact_time = started.elapsed();
    println!("{count} vectors of {dim} f32, {QUERIES} queries, recall@10 against quiver's exact search");
    println!("{:<34} {:>10} {:>14} {:>10}", "index", "build", "per query", "recall@10");
    row("exact search (quiver Search)", Duration::ZERO, exact_time, 1.0);

    let started = Instant::now();
    let index = SlotIndex::build(&snapshot, Params::default());
    let build = started.elapsed();
    let started = Instant::now();
    let found: Vec<Vec<u64>> =
        queries.iter().map(|q| index.search(q, 10).iter().map(|&(id, _)| id).collect()).collect();
    row("hnsw_rs over slots (this example)", build, started.elapsed(), recall(&found, &truth));

    #[cfg(feature = "compare")]
    compare::run(&snapshot, &queries, &truth);
    Ok(())
}

fn unit(seed: &mut u64) -> f32 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    (*seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
}

fn recall(found: &[Vec<u64>], truth: &[Vec<u64>]) -> f64 {
    let hits: usize = found
        .iter()
        .zip(truth)
        .map(|(f, t)| {
            let t: HashSet<&u64> = t.iter().collect();
            f.iter().filter(|id| t.contains(id)).count()
        })
        .sum();
    hits as f64 / (10 * truth.len()) as f64
}

fn row(name: &str, build: Duration, queries: Duration, recall: f64) {
    let per_query = queries / QUERIES as u32;
    println!("{name:<34} {:>9.2}s {:>12.1}µs {recall:>10.3}", build.as_secs_f64(), per_query.as_secs_f64() * 1e6);
}

/// The two alternatives the example was chosen over, on the same points.
#[cfg(feature = "compare")]
mod compare {
    use std::time::Instant;

    use anndists::dist::DistL2;
    use hnsw_rs::hnsw::Hnsw;
    use quiver::Snapshot;

    use super::{Params, recall, row};

    /// A point of `instant-distance`: a vector borrowed from the snapshot.
    #[derive(Clone, Copy)]
    struct Borrowed<'a>(&'a [f32]);

    impl instant_distance::Point for Borrowed<'_> {
        fn distance(&self, other: &Self) -> f32 {
            self.0.iter().zip(other.0).map(|(x, y)| (x - y) * (x - y)).sum()
        }
    }

    pub(super) fn run(snapshot: &Snapshot<f32>, queries: &[Vec<f32>], truth: &[Vec<u64>]) {
        let p = Params::default();
        let started = Instant::now();
        let (points, ids): (Vec<Borrowed<'_>>, Vec<u64>) = snapshot.iter().map(|(id, v)| (Borrowed(v), id)).unzip();
        let map = instant_distance::Builder::default()
            .ef_construction(p.ef_construction)
            .ef_search(p.ef_search)
            .build(points, ids);
        let build = started.elapsed();
        let started = Instant::now();
        let mut search = instant_distance::Search::default();
        let found: Vec<Vec<u64>> = queries
            .iter()
            .map(|q| map.search(&Borrowed(q), &mut search).take(10).map(|i| *i.value).collect())
            .collect();
        row("instant-distance (borrowed)", build, started.elapsed(), recall(&found, truth));

        let started = Instant::now();
        let graph = Hnsw::<f32, DistL2>::new(p.max_connections, snapshot.len(), 16, p.ef_construction, DistL2 {});
        let copies: Vec<(Vec<f32>, usize)> = snapshot.iter().map(|(id, v)| (v.to_vec(), id as usize)).collect();
        let batch: Vec<(&Vec<f32>, usize)> = copies.iter().map(|(v, id)| (v, *id)).collect();
        graph.parallel_insert(&batch);
        let build = started.elapsed();
        let started = Instant::now();
        let found: Vec<Vec<u64>> =
            queries.iter().map(|q| graph.search(q, 10, p.ef_search).iter().map(|n| n.d_id as u64).collect()).collect();
        row("hnsw_rs holding its own copies", build, started.elapsed(), recall(&found, truth));
    }
}
