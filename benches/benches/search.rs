//! Exact top-k search (`quiver-search`) over a snapshot, hot, against
//! summing an equal in-RAM `Vec<f32>` (issue 8: one query >= 90% of that
//! bandwidth; 2 threads >= 1.8x one; a batch of 64 >= 10x the per-query
//! throughput of single queries), interleaved run by run.
//!
//! Rows, all k = 10, Dot unless named:
//! - the baseline: the sum of an equal `Vec<f32>` (the faster of 8 and 32
//!   lanes, so the baseline is not held back by one adder's latency);
//! - one query, 1 and 2 threads; Cosine and L2 on 1 thread; for context,
//!   the snapshot's `iter()` + sum and the `Vec` sum on 2 threads (what
//!   the machine lets two threads read);
//! - a batch of 64, 1 and 2 threads; L2 batch;
//! - the same batch capped at AVX2 and at the baseline instruction set
//!   (what chose the SIMD route);
//! - f16 and i8 stores of the same vectors: one query and a batch of 64.
//!
//! `cargo bench -p quiver-benches --bench search` (QUIVER_BENCH_VECTORS,
//! default 200000; QUIVER_BENCH_RUNS, default 3; QUIVER_BENCH_DIR). Full
//! size: `QUIVER_BENCH_VECTORS=1000000`. The data are `quiver_benches::vector(id % 1000)`
//! and the queries `vector(10^9 + i)`, which `benches/peers/faiss_flat.py`
//! regenerates for the faiss comparison.

use std::hint::black_box;
use std::time::Duration;

use quiver_benches::{Dataset, env_or, median_spread, print_ratio, print_table_header, sum, time, vector};
use quiver_search::{InstructionSet, Metric, Search, SearchOptions};
use quiver_storage::{Element, Snapshot, VectorStore};

const DIM: usize = 768;
const K: usize = 10;
const BATCH: usize = 64;

/// The sum in 32 lanes: the other baseline, in case 8 lanes are add-bound.
fn sum32(v: &[f32]) -> f32 {
    let mut acc = [0.0f32; 32];
    let (chunks, tail) = v.as_chunks::<32>();
    for c in chunks {
        for i in 0..32 {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + tail.iter().sum::<f32>()
}

/// The sum of `v` split over two threads: what the machine allows two
/// threads to read, the context for the 2-thread search rows.
fn sum_2_threads(v: &[f32]) -> f32 {
    let (a, b) = v.split_at(v.len() / 2);
    std::thread::scope(|s| {
        let other = s.spawn(|| sum(b));
        sum(a) + other.join().expect("sum thread")
    })
}

/// Imports `ds` into a new store of `T` at `path`, each value converted by
/// `convert`; returns the store's snapshot (the store is kept open).
fn import<T: Element>(path: &std::path::Path, ds: &Dataset, convert: impl Fn(f32) -> T) -> VectorStore<T> {
    let store: VectorStore<T> = VectorStore::open(path, ds.dim).expect("open");
    store.reserve_capacity(ds.count as usize).expect("reserve");
    for batch in ds.batches() {
        let owned: Vec<(u64, Vec<T>)> =
            batch.iter().map(|(id, v)| (*id, v.iter().map(|&x| convert(x)).collect())).collect();
        let refs: Vec<(u64, &[T])> = owned.iter().map(|(id, v)| (*id, &v[..])).collect();
        store.store_batch(&refs).expect("store_batch");
    }
    store.flush().expect("flush");
    store
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn main() {
    let count = env_or("QUIVER_BENCH_VECTORS", 200_000);
    let runs = env_or("QUIVER_BENCH_RUNS", 3) as usize;
    let dir = quiver_benches::bench_dir();
    let ds = Dataset::new(count, DIM);
    let f32_store = import(&dir.path().join("f32"), &ds, |x| x);
    let f16_store = import(&dir.path().join("f16"), &ds, quiver::f16::from_f32);
    // The vectors are in [0, 1): scaled to the i8 range.
    let i8_store = import(&dir.path().join("i8"), &ds, |x| (x * 127.0) as i8);
    let (f32s, f16s, i8s) = (f32_store.snapshot(), f16_store.snapshot(), i8_store.snapshot());
    let mut all = Vec::with_capacity(count as usize * DIM);
    for id in 0..count {
        all.extend_from_slice(ds.vector(id));
    }
    let queries: Vec<f32> = (0..BATCH as u64).flat_map(|i| vector(1_000_000_000 + i, DIM)).collect();
    let one = &queries[..DIM];

    let single = |s: &Snapshot<f32>, options: &SearchOptions<'_>| {
        let (t, hits) = time(|| s.search_with(one, options).expect("search"));
        black_box(hits);
        t
    };
    fn batch<T: quiver_search::SearchElement>(s: &Snapshot<T>, q: &[f32], options: &SearchOptions<'_>) -> Duration {
        let (t, hits) = time(|| s.search_batch_with(q, options).expect("search"));
        black_box(hits);
        t
    }
    fn one_of<T: quiver_search::SearchElement>(s: &Snapshot<T>, q: &[f32], options: &SearchOptions<'_>) -> Duration {
        let (t, hits) = time(|| s.search_with(q, options).expect("search"));
        black_box(hits);
        t
    }
    let dot = SearchOptions::new(K, Metric::Dot);
    // Warm up: fault every page of every mapping in, sort each view's
    // entries by slot once, and check the three stores agree on the best.
    let best = [one_of(&f32s, one, &dot), one_of(&f16s, one, &dot), one_of(&i8s, one, &dot)];
    black_box(best);
    let top = f32s.search(one, 3, Metric::Dot).expect("search");
    eprintln!("f32 top 3 for query 0: {top:?}");
    black_box(sum(&all));

    let mut rows: Vec<(&str, Vec<f64>, &str)> = Vec::new();
    let mut add = |name: &'static str, target: &'static str, v: f64| {
        if let Some(r) = rows.iter_mut().find(|r| r.0 == name) {
            r.1.push(v);
        } else {
            rows.push((name, vec![v], target));
        }
    };
    let mut ms_per_query: Vec<(&str, Vec<f64>)> = Vec::new();
    let mut note = |name: &'static str, v: f64| {
        if let Some(r) = ms_per_query.iter_mut().find(|r| r.0 == name) {
            r.1.push(v);
        } else {
            ms_per_query.push((name, vec![v]));
        }
    };
    for run in 0..runs {
        let (s8, _) = time(|| black_box(sum(&all)));
        let (s32, _) = time(|| black_box(sum32(&all)));
        let base = secs(s8.min(s32));
        let gb_s = |t: f64| (count as f64 * DIM as f64 * 4.0) / t / 1e9;

        let (ti, _) = time(|| black_box(f32s.iter().map(|(_, v)| sum(v)).sum::<f32>()));
        let t1 = secs(single(&f32s, &dot));
        let t2 = secs(single(&f32s, &SearchOptions::new(K, Metric::Dot).threads(2)));
        let (s2, _) = time(|| black_box(sum_2_threads(&all)));
        let tc = secs(single(&f32s, &SearchOptions::new(K, Metric::Cosine)));
        let tl = secs(single(&f32s, &SearchOptions::new(K, Metric::L2)));
        let (b_after, _) = time(|| black_box(sum(&all)));
        add("one query, 1 thread (bandwidth / Vec sum's)", ">= 0.90", base / t1);
        add("context: the snapshot's iter() + sum (bandwidth / Vec sum's)", "-", base / secs(ti));
        add("one query, Cosine, 1 thread (bandwidth / Vec sum's)", "-", base / tc);
        add("one query, L2, 1 thread (bandwidth / Vec sum's)", "-", base / tl);
        add("one query, 2 threads (speed-up over 1)", ">= 1.8", t1 / t2);
        add("context: Vec sum on 2 threads (speed-up over 1)", "-", secs(s8) / secs(s2));

        let b1 = secs(batch(&f32s, &queries, &dot));
        let b2 = secs(batch(&f32s, &queries, &SearchOptions::new(K, Metric::Dot).threads(2)));
        let bl = secs(batch(&f32s, &queries, &SearchOptions::new(K, Metric::L2)));
        let bc = secs(batch(&f32s, &queries, &SearchOptions::new(K, Metric::Cosine)));
        let b_avx2 =
            secs(batch(&f32s, &queries, &SearchOptions::new(K, Metric::Dot).instruction_set(InstructionSet::Avx2)));
        let b_base =
            secs(batch(&f32s, &queries, &SearchOptions::new(K, Metric::Dot).instruction_set(InstructionSet::Baseline)));
        let t1_base =
            secs(single(&f32s, &SearchOptions::new(K, Metric::Dot).instruction_set(InstructionSet::Baseline)));
        let per = |b: f64| b / BATCH as f64;
        add("batch of 64, 1 thread (per-query throughput / one query's)", ">= 10", t1 / per(b1));
        add("batch of 64, 2 threads (per-query throughput / one query's, 2 threads)", ">= 10", t2 / per(b2));
        add("batch of 64, 2 threads (speed-up over 1)", "-", b1 / b2);
        add("batch of 64, Cosine (per-query throughput / one Dot query's)", "-", t1 / per(bc));
        add("batch of 64, L2 (per-query throughput / one Dot query's)", "-", t1 / per(bl));
        add("batch of 64 capped at AVX2 (throughput / AVX-512's)", "-", b1 / b_avx2);
        add("batch of 64 capped at baseline SSE2 (throughput / AVX-512's)", "-", b1 / b_base);
        add("one query capped at baseline SSE2 (throughput / AVX-512's)", "-", t1 / t1_base);

        let h1 = secs(one_of(&f16s, one, &dot));
        let hb = secs(batch(&f16s, &queries, &dot));
        let i1 = secs(one_of(&i8s, one, &dot));
        let ib = secs(batch(&i8s, &queries, &dot));
        add("f16 store, one query (vectors/s / f32's)", "-", t1 / h1);
        add("f16 store, batch of 64 (per-query throughput / one f16 query's)", "-", h1 / per(hb));
        add("i8 store, one query (vectors/s / f32's)", "-", t1 / i1);
        add("i8 store, batch of 64 (per-query throughput / one i8 query's)", "-", i1 / per(ib));

        note("f32 one query, 1 thread", t1 * 1e3);
        note("f32 one query, 2 threads", t2 * 1e3);
        note("f32 batch 64, 1 thread, per query", per(b1) * 1e3);
        note("f32 batch 64, 2 threads, per query", per(b2) * 1e3);
        note("f16 one query, 1 thread", h1 * 1e3);
        note("i8 one query, 1 thread", i1 * 1e3);
        eprintln!(
            "run {run}: Vec sum {:.1} GB/s (8 lanes {:.1}, 32 lanes {:.1}, after {:.1}); one query {:.1} GB/s; batch 64 1 thread {:.1} ms, 2 threads {:.1} ms",
            gb_s(base),
            gb_s(secs(s8)),
            gb_s(secs(s32)),
            gb_s(secs(b_after)),
            gb_s(t1),
            b1 * 1e3,
            b2 * 1e3
        );
    }
    print_table_header(&format!(
        "exact search, k = {K}, {count} x {DIM} ({} MB of f32), hot, detected instruction set {}, {runs} interleaved runs",
        count * DIM as u64 * 4 / 1_000_000,
        InstructionSet::detected().name()
    ));
    for (name, values, target) in &rows {
        print_ratio(name, values, target);
    }
    println!("(milliseconds per query, median (min..max); absolute figures are noise here)");
    for (name, values) in &ms_per_query {
        let (m, lo, hi) = median_spread(values);
        println!("  {name}: {m:.2} ({lo:.2}..{hi:.2})");
    }
}
