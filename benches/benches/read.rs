//! Zero-copy `get` + sum of every element, random ids, hot, against an
//! in-RAM `FxHashMap<u64, Box<[f32]>>` doing the same (BRIEF §4: <= 1.2x),
//! with 1 and 2 reader threads, interleaved run by run; and the same through
//! a `Snapshot` (issue 8: <= 1.0x), plus the lookup alone (the first element
//! only: <= 1.1x).
//!
//! With `QUIVER_BENCH_REOPEN=1` the store is closed and reopened after the
//! import, so every lookup goes through the mapped snapshot (the index's
//! base) instead of the in-memory shards a fresh import fills.
//!
//! `cargo bench -p quiver-benches --bench read` (QUIVER_BENCH_VECTORS,
//! QUIVER_BENCH_RUNS, QUIVER_BENCH_READS, QUIVER_BENCH_REOPEN).

use std::hint::black_box;

use quiver_benches::{env_or, print_ratio, random_ids, sum, time, vector};
use quiver_storage::VectorStore;
use rustc_hash::FxHashMap;

const DIM: usize = 768;

fn main() {
    let count = env_or("QUIVER_BENCH_VECTORS", 200_000);
    let runs = env_or("QUIVER_BENCH_RUNS", 5) as usize;
    let reads = env_or("QUIVER_BENCH_READS", 1_000_000);
    let dir = tempfile::tempdir_in(std::env::var("QUIVER_BENCH_DIR").unwrap_or_else(|_| ".".into())).expect("tempdir");
    let reopen = env_or("QUIVER_BENCH_REOPEN", 0) == 1;
    let mut store: VectorStore<f32> = VectorStore::open(dir.path().join("store"), DIM).expect("open");
    store.reserve_capacity(count as usize).expect("reserve");
    let mut map: FxHashMap<u64, Box<[f32]>> = FxHashMap::default();
    map.reserve(count as usize);
    for chunk in (0..count).collect::<Vec<_>>().chunks(1000) {
        let vs: Vec<(u64, Vec<f32>)> = chunk.iter().map(|&id| (id, vector(id, DIM))).collect();
        let refs: Vec<(u64, &[f32])> = vs.iter().map(|(id, v)| (*id, &v[..])).collect();
        store.store_batch(&refs).expect("import");
        for (id, v) in vs {
            map.insert(id, v.into_boxed_slice());
        }
    }
    if reopen {
        store.close().expect("close");
        store = VectorStore::open(dir.path().join("store"), DIM).expect("reopen");
        eprintln!("reopened: {:?}", store.recovery_report().snapshot);
    }
    let order = random_ids(count, reads, 42);
    let snapshot = store.snapshot();
    // Each pass reads every id of `order` and folds it into a sum: the whole
    // vector (`get` + sum), or only its first element (the lookup alone).
    let quiver_pass = |order: &[u64]| {
        let mut total = 0.0f32;
        for &id in order {
            total += sum(&store.get(id).expect("present"));
        }
        black_box(total)
    };
    let snapshot_pass = |order: &[u64]| {
        let mut total = 0.0f32;
        for &id in order {
            total += sum(snapshot.get(id).expect("present"));
        }
        black_box(total)
    };
    let map_pass = |order: &[u64]| {
        let mut total = 0.0f32;
        for &id in order {
            total += sum(map.get(&id).expect("present"));
        }
        black_box(total)
    };
    let snapshot_lookup = |order: &[u64]| {
        let mut total = 0.0f32;
        for &id in order {
            total += snapshot.get(id).expect("present")[0];
        }
        black_box(total)
    };
    let map_lookup = |order: &[u64]| {
        let mut total = 0.0f32;
        for &id in order {
            total += map.get(&id).expect("present")[0];
        }
        black_box(total)
    };
    // 64 ids at a time through `get_many_into`, every vector summed.
    let many_pass = |order: &[u64]| {
        let mut total = 0.0f32;
        let mut out = Vec::with_capacity(64);
        for ids in order.chunks(64) {
            snapshot.get_many_into(ids, &mut out);
            for v in &out {
                total += sum(v.expect("present"));
            }
        }
        black_box(total)
    };
    // The index probe alone, no vector touched.
    let snapshot_probe = |order: &[u64]| {
        let mut total = 0u64;
        for &id in order {
            total += snapshot.slot_of(id).expect("present");
        }
        black_box(total)
    };
    let map_probe = |order: &[u64]| {
        let mut total = 0usize;
        for &id in order {
            total += map.get(&id).expect("present").len();
        }
        black_box(total)
    };
    let halves: Vec<&[u64]> = order.chunks(order.len() / 2).collect();
    let two_threads = |pass: &(dyn Fn(&[u64]) -> f32 + Sync)| {
        time(|| {
            std::thread::scope(|s| {
                for h in &halves {
                    s.spawn(move || pass(h));
                }
            })
        })
        .0
    };
    // Warm every path.
    quiver_pass(&order);
    snapshot_pass(&order);
    map_pass(&order);
    let (mut one, mut two, mut snap_one, mut snap_two, mut lookup, mut probe, mut many) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let (m, _) = time(|| map_pass(&order));
        let (q, _) = time(|| quiver_pass(&order));
        let (sn, _) = time(|| snapshot_pass(&order));
        let (gm, _) = time(|| many_pass(&order));
        many.push(m.as_secs_f64() / gm.as_secs_f64());
        one.push(q.as_secs_f64() / m.as_secs_f64());
        snap_one.push(sn.as_secs_f64() / m.as_secs_f64());
        let m2 = two_threads(&map_pass);
        let q2 = two_threads(&quiver_pass);
        let s2 = two_threads(&snapshot_pass);
        two.push(q2.as_secs_f64() / m2.as_secs_f64());
        snap_two.push(s2.as_secs_f64() / m2.as_secs_f64());
        let (ml, _) = time(|| map_lookup(&order));
        let (sl, _) = time(|| snapshot_lookup(&order));
        lookup.push(sl.as_secs_f64() / ml.as_secs_f64());
        let (mp, _) = time(|| map_probe(&order));
        let (sp, _) = time(|| snapshot_probe(&order));
        probe.push(sp.as_secs_f64() / mp.as_secs_f64());
        let ns = |d: std::time::Duration| d.as_secs_f64() * 1e9 / reads as f64;
        eprintln!(
            "ns/get: map {:.0}, quiver {:.0}, snapshot {:.0}, get_many of 64 {:.0}; 2 threads: map {:.0}, quiver {:.0}, snapshot {:.0}; \
             lookup alone: map {:.0}, snapshot {:.0}; probe alone: map {:.0}, snapshot {:.0}",
            ns(m),
            ns(q),
            ns(sn),
            ns(gm),
            ns(m2),
            ns(q2),
            ns(s2),
            ns(ml),
            ns(sl),
            ns(mp),
            ns(sp)
        );
    }
    // What a live view costs a writer: a 64-id overwrite batch right after a
    // new snapshot (every shard it touches is shared, so it is copied
    // first), against the same batch with no view held.
    drop(snapshot);
    let batch_ids = random_ids(count, 64 * 200, 7);
    // Room for every batch below, so no run pays a growth step.
    store.reserve_capacity(2 * runs * batch_ids.len()).expect("reserve");
    let vectors: Vec<Vec<f32>> = (0..64).map(|i| vector(i + 1, DIM)).collect();
    let batch_of =
        |ids: &[u64]| -> Vec<(u64, &[f32])> { ids.iter().zip(&vectors).map(|(&id, v)| (id, &v[..])).collect() };
    let mut cow = Vec::new();
    for _ in 0..runs {
        let (plain, ()) = time(|| {
            for ids in batch_ids.chunks(64) {
                store.store_batch(&batch_of(ids)).expect("batch");
            }
        });
        let mut with_view = std::time::Duration::ZERO;
        for ids in batch_ids.chunks(64) {
            let view = store.snapshot();
            let batch = batch_of(ids);
            let (t, _) = time(|| store.store_batch(&batch).expect("batch"));
            with_view += t;
            drop(view);
        }
        cow.push(with_view.as_secs_f64() / plain.as_secs_f64());
        eprintln!(
            "64-id batch: {:.1} us alone, {:.1} us right after a new snapshot",
            plain.as_secs_f64() * 1e6 / 200.0,
            with_view.as_secs_f64() * 1e6 / 200.0
        );
    }
    println!("zero-copy get + sum, {count} x {DIM} f32, {reads} random reads per run, {runs} interleaved runs");
    println!("| what | median | spread | runs | target |");
    println!("|---|---|---|---|---|");
    print_ratio("quiver get / FxHashMap get, 1 thread (time)", &one, "<= 1.20");
    print_ratio("quiver get / FxHashMap get, 2 threads (time)", &two, "<= 1.20");
    print_ratio("snapshot get / FxHashMap get, 1 thread (time)", &snap_one, "<= 1.00");
    print_ratio("snapshot get / FxHashMap get, 2 threads (time)", &snap_two, "<= 1.00");
    print_ratio("FxHashMap get loop / snapshot get_many of 64 (speed-up per vector)", &many, ">= 2.00");
    print_ratio("snapshot lookup / FxHashMap lookup (first element only)", &lookup, "<= 1.10");
    print_ratio("snapshot slot_of / FxHashMap get, no vector touched", &probe, "(diagnostic)");
    print_ratio("64-id batch right after a new snapshot / with no view (time)", &cow, "(the copy-on-write cost)");
}
