//! Reopen after a clean close of N × 768 `f32` (BRIEF §4: <= 1.5× reading
//! the snapshot into a presized `FxHashMap` in a bare loop; never a full WAL
//! replay). The baseline reads the same snapshot file (`fs::read`) and
//! inserts its 16-byte `(id, slot)` entries (docs/FORMAT.md, "Snapshot")
//! into an `FxHashMap` presized for them, without checking anything. Both
//! read the snapshot from the page cache; the bench asserts that every open
//! loaded the snapshot and replayed no batch.
//!
//! `cargo bench -p quiver-benches --bench reopen` (QUIVER_BENCH_VECTORS,
//! default 1000000, the target's size; QUIVER_BENCH_RUNS, default 7;
//! QUIVER_BENCH_DIR).

use std::hint::black_box;
use std::path::{Path, PathBuf};

use quiver_benches::baselines::quiver_import;
use quiver_benches::{Dataset, bench_dir, env_or, print_ratio, print_table_header, time};
use quiver_storage::format::snapshot::{SNAPSHOT_ENTRY_BYTES, SnapshotHeader};
use quiver_storage::{SnapshotOutcome, VectorStore};
use rustc_hash::FxHashMap;

const DIM: usize = 768;

fn snapshot_file(store_dir: &Path) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir(store_dir)
        .expect("list store")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("snapshot-")))
        .collect();
    assert_eq!(found.len(), 1, "one snapshot after a clean close: {found:?}");
    found.pop().expect("one")
}

/// The baseline: the snapshot read and loaded into a presized map.
fn bare_load(path: &Path) -> FxHashMap<u64, u64> {
    let bytes = std::fs::read(path).expect("read snapshot");
    let body = &bytes[SnapshotHeader::ENCODED_LEN..];
    let mut map = FxHashMap::with_capacity_and_hasher(body.len() / SNAPSHOT_ENTRY_BYTES, Default::default());
    for e in body.chunks_exact(SNAPSHOT_ENTRY_BYTES) {
        let id = u64::from_le_bytes(e[..8].try_into().expect("8 bytes"));
        let slot = u64::from_le_bytes(e[8..].try_into().expect("8 bytes"));
        map.insert(id, slot);
    }
    map
}

fn main() {
    let count = env_or("QUIVER_BENCH_VECTORS", 1_000_000);
    let runs = env_or("QUIVER_BENCH_RUNS", 7) as usize;
    let dir = bench_dir();
    let path = dir.path().join("store");
    let ds = Dataset::new(count, DIM);
    let (import, store) = quiver_import(&path, &ds);
    store.close().expect("close");
    let snapshot = snapshot_file(&path);
    eprintln!(
        "imported {count} vectors in {:.1} s; snapshot {} ({} MB)",
        import.as_secs_f64(),
        snapshot.display(),
        std::fs::metadata(&snapshot).expect("stat").len() / 1_000_000
    );
    // Warm the page cache for both.
    assert_eq!(bare_load(&snapshot).len() as u64, count);
    drop(VectorStore::<f32>::open(&path, DIM).expect("open"));
    let mut ratios = Vec::new();
    for run in 0..runs {
        let mut bare = 0.0;
        let mut open = 0.0;
        for k in 0..2 {
            if (run + k) % 2 == 0 {
                let (t, map) = time(|| bare_load(&snapshot));
                bare = t.as_secs_f64();
                assert_eq!(map.len() as u64, count);
                black_box(map);
            } else {
                let (t, store) = time(|| VectorStore::<f32>::open(&path, DIM).expect("open"));
                open = t.as_secs_f64();
                let report = store.recovery_report();
                assert!(
                    matches!(report.snapshot, SnapshotOutcome::Loaded { entries } if entries == count),
                    "open did not load the snapshot: {report:?}"
                );
                assert_eq!(report.batches_replayed, 0, "a clean close leaves nothing to replay");
                assert_eq!(store.len() as u64, count);
                // Dropped, not closed: nothing changed, and close would
                // write a new snapshot.
                drop(store);
            }
        }
        ratios.push(open / bare);
        eprintln!("run {run}: bare snapshot load {:.1} ms, quiver open {:.1} ms", bare * 1e3, open * 1e3);
    }
    print_table_header(&format!(
        "reopen after clean close, {count} x {DIM} f32, warm page cache, {runs} interleaved runs"
    ));
    print_ratio("quiver open / bare snapshot load into a presized FxHashMap (time)", &ratios, "<= 1.50");
}
