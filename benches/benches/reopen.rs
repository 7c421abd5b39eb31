//! Reopen after a clean close of N × 768 `f32`, against heed (LMDB) and redb
//! holding the same vectors (issue 10's target: Quiver's open ≤ 3× heed's,
//! at 10^5 and 10^6, the same at any size; never a full WAL replay).
//!
//! Two measures, each engine reopened from a warm page cache:
//!
//! - **open**: from nothing to a handle that can read: `VectorStore::open`;
//!   heed's `EnvOpenOptions::open` plus opening its database; redb's
//!   `Database::create` of the existing file.
//! - **open + 1000 reads**: the same, then 1000 random ids read and summed,
//!   so any cost open defers to the first reads (Quiver checks each
//!   snapshot block the first time it is touched) is counted too.
//!
//! The bench asserts that every Quiver open mapped the snapshot and replayed
//! no batch, and every read found its vector.
//!
//! `cargo bench -p quiver-benches --features peers --bench reopen`
//! (QUIVER_BENCH_VECTORS, default 1000000; QUIVER_BENCH_RUNS, default 7;
//! QUIVER_BENCH_DIR).

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use quiver_benches::baselines::quiver_import;
use quiver_benches::peers::{Heed, Redb};
use quiver_benches::{Dataset, bench_dir, env_or, print_ratio, print_table_header, random_ids, sum, sum_bytes, time};
use quiver_storage::{SnapshotOutcome, VectorStore};

const DIM: usize = 768;
const READS: u64 = 1000;

/// Quiver: open, then read `ids` (none for the open-only measure).
fn quiver_open(path: &Path, count: u64, ids: &[u64]) -> Duration {
    let (t, total) = time(|| {
        let store = VectorStore::<f32>::open(path, DIM).expect("open");
        let mut total = 0.0f32;
        for &id in ids {
            total += sum(&store.get(id).expect("a stored id"));
        }
        (store, total)
    });
    let (store, total) = total;
    black_box(total);
    let report = store.recovery_report();
    assert!(
        matches!(report.snapshot, SnapshotOutcome::Loaded { entries } if entries == count),
        "open did not map the snapshot: {report:?}"
    );
    assert_eq!(report.batches_replayed, 0, "a clean close leaves nothing to replay");
    // Dropped, not closed: nothing changed, and the drop is not timed.
    drop(store);
    t
}

fn heed_open(path: &Path, ds: &Dataset, ids: &[u64]) -> Duration {
    let mut scratch = Vec::new();
    let (t, (heed, total)) = time(|| {
        let heed = Heed::create(path, ds);
        let db = heed.db();
        let mut total = 0.0f32;
        {
            let rtxn = heed.read_txn();
            for &id in ids {
                let bytes = db.get(&rtxn, &id).expect("get").expect("a stored id");
                total += sum_bytes(bytes, &mut scratch).0;
            }
        }
        (heed, total)
    });
    black_box(total);
    drop(heed);
    t
}

fn redb_open(path: &Path, ids: &[u64]) -> Duration {
    let mut scratch = Vec::new();
    let (t, (redb, total)) = time(|| {
        let redb = Redb::create(path, None);
        let mut total = 0.0f32;
        if !ids.is_empty() {
            let table = redb.read_table();
            for &id in ids {
                let v = table.get(id).expect("get").expect("a stored id");
                total += sum_bytes(v.value(), &mut scratch).0;
            }
        }
        (redb, total)
    });
    black_box(total);
    drop(redb);
    t
}

fn main() {
    let count = env_or("QUIVER_BENCH_VECTORS", 1_000_000);
    let runs = env_or("QUIVER_BENCH_RUNS", 7) as usize;
    let dir = bench_dir();
    let ds = Dataset::new(count, DIM);
    let (qpath, hpath, rpath) = (dir.path().join("quiver"), dir.path().join("heed"), dir.path().join("redb.db"));
    let (import, store) = quiver_import(&qpath, &ds);
    store.close().expect("close");
    eprintln!("quiver: imported {count} vectors in {:.1} s", import.as_secs_f64());
    {
        let heed = Heed::create(&hpath, &ds);
        eprintln!("heed: imported in {:.1} s", heed.import(&ds).as_secs_f64());
    }
    {
        let redb = Redb::create(&rpath, None);
        eprintln!("redb: imported in {:.1} s", redb.import(&ds).as_secs_f64());
    }
    let ids = random_ids(count, READS, 7);
    // Warm the page cache for all three, reads included.
    quiver_open(&qpath, count, &ids);
    heed_open(&hpath, &ds, &ids);
    redb_open(&rpath, &ids);

    let (mut open_heed, mut open_redb, mut read_heed, mut read_redb) = (vec![], vec![], vec![], vec![]);
    for run in 0..runs {
        // Three engines, rotated so each takes every position.
        let mut t = [[0.0f64; 3]; 2];
        for k in 0..3 {
            let engine = (run + k) % 3;
            for (m, reads) in [&[][..], &ids[..]].into_iter().enumerate() {
                t[m][engine] = match engine {
                    0 => quiver_open(&qpath, count, reads),
                    1 => heed_open(&hpath, &ds, reads),
                    _ => redb_open(&rpath, reads),
                }
                .as_secs_f64();
            }
        }
        open_heed.push(t[0][0] / t[0][1]);
        open_redb.push(t[0][0] / t[0][2]);
        read_heed.push(t[1][0] / t[1][1]);
        read_redb.push(t[1][0] / t[1][2]);
        eprintln!(
            "run {run}: open quiver {:.3} ms, heed {:.3} ms, redb {:.3} ms; open + {READS} reads quiver {:.3} ms, heed \
             {:.3} ms, redb {:.3} ms",
            t[0][0] * 1e3,
            t[0][1] * 1e3,
            t[0][2] * 1e3,
            t[1][0] * 1e3,
            t[1][1] * 1e3,
            t[1][2] * 1e3
        );
    }
    print_table_header(&format!(
        "reopen after clean close, {count} x {DIM} f32, warm page cache, {runs} rotated runs (time ratios)"
    ));
    print_ratio("open: quiver / heed", &open_heed, "<= 3.00");
    print_ratio("open: quiver / redb", &open_redb, "(no target)");
    print_ratio(&format!("open + {READS} random reads: quiver / heed"), &read_heed, "<= 3.00");
    print_ratio(&format!("open + {READS} random reads: quiver / redb"), &read_redb, "(no target)");
}
