//! Read-only followers (`VectorReader`): they take no lock, change no file,
//! see a writer's batches whole and in order after `refresh`, keep up across
//! checkpoints, reload when they lag past the WAL's grace period, and stop
//! quietly at a torn tail the writer has not cut yet.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::common::*;
use quiver_storage::{StoreOptions, VectorReader, VectorStore};

const DIM: usize = 8;

fn options() -> StoreOptions {
    small(DIM).checkpoint_wal_bytes(16 << 10)
}

fn reader(path: &std::path::Path) -> VectorReader<f32> {
    options().open_reader(path).expect("open reader")
}

fn same(reader: &VectorReader<f32>, model: &BTreeMap<u64, Vec<f32>>) {
    assert_eq!(reader.len(), model.len());
    let mut ids = reader.ids();
    ids.sort_unstable();
    assert_eq!(ids, model.keys().copied().collect::<Vec<_>>());
    for (id, v) in model {
        assert_eq!(reader.retrieve(*id).as_ref(), Some(v), "id {id}");
    }
}

// Proves a reader opens beside a live writer (no lock), sees nothing new
// until it refreshes, then exactly the writer's state, across overwrites,
// deletes and checkpoints.
#[test]
fn reader_follows_writes_deletes_and_checkpoints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    // No automatic checkpoints: this test counts the explicit ones.
    let writer: VectorStore<f32> = open(&path, &small(DIM));
    let mut model = BTreeMap::new();
    for id in 0..50u64 {
        writer.store(id, &vector(id, 0, DIM)).expect("store");
        model.insert(id, vector(id, 0, DIM));
    }
    let r = reader(&path);
    same(&r, &model);
    for round in 1..6u64 {
        for id in 0..50u64 {
            if (id + round) % 7 == 0 {
                writer.delete(id).expect("delete");
                model.remove(&id);
            } else {
                writer.store(id, &vector(id, round, DIM)).expect("store");
                model.insert(id, vector(id, round, DIM));
            }
        }
        if round == 3 {
            writer.checkpoint().expect("checkpoint");
        }
        let outcome = r.refresh().expect("refresh");
        assert!(!outcome.reloaded, "round {round}: one checkpoint is within the grace period");
        same(&r, &model);
    }
    // Lag past two checkpoints: the reader's segment is gone; it reloads.
    writer.store(1000, &vector(1000, 0, DIM)).expect("store");
    model.insert(1000, vector(1000, 0, DIM));
    writer.checkpoint().expect("checkpoint");
    writer.store(1001, &vector(1001, 0, DIM)).expect("store");
    model.insert(1001, vector(1001, 0, DIM));
    writer.checkpoint().expect("checkpoint");
    writer.store(1002, &vector(1002, 0, DIM)).expect("store");
    model.insert(1002, vector(1002, 0, DIM));
    writer.checkpoint().expect("checkpoint");
    let outcome = r.refresh().expect("refresh");
    assert!(outcome.reloaded, "a reader past the grace period reloads from the snapshot");
    same(&r, &model);
}

// Proves a guard taken from a reader keeps reading the same bytes across
// refreshes that overwrite its id and reload the view.
#[test]
fn reader_guards_survive_refresh_and_reload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let writer: VectorStore<f32> = open(&path, &options());
    writer.store(7, &vector(7, 0, DIM)).expect("store");
    let r = reader(&path);
    let guard = r.get(7).expect("present");
    for round in 1..4u64 {
        writer.store(7, &vector(7, round, DIM)).expect("overwrite");
        writer.checkpoint().expect("checkpoint");
        r.refresh().expect("refresh");
    }
    assert_eq!(&*guard, &vector(7, 0, DIM)[..]);
    assert_eq!(r.retrieve(7), Some(vector(7, 3, DIM)));
}

// Proves a reader refreshing in a loop beside a busy writer thread only
// ever sees whole vectors, and ends equal to the writer.
#[test]
fn reader_beside_a_busy_writer_sees_whole_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let writer: VectorStore<f32> = open(&path, &options());
    writer.store(0, &vector(0, 0, DIM)).expect("store");
    let r = reader(&path);
    let done = AtomicBool::new(false);
    let model = std::thread::scope(|s| {
        let w = s.spawn(|| {
            let mut model = BTreeMap::new();
            model.insert(0, vector(0, 0, DIM));
            for round in 1..3000u64 {
                let ids: Vec<u64> = (0..4).map(|k| (round * 4 + k) % 97).collect();
                let vs: Vec<(u64, Vec<f32>)> = ids.iter().map(|&id| (id, vector(id, round, DIM))).collect();
                let refs: Vec<(u64, &[f32])> = vs.iter().map(|(id, v)| (*id, &v[..])).collect();
                writer.store_batch(&refs).expect("batch");
                for (id, v) in vs {
                    model.insert(id, v);
                }
            }
            done.store(true, Ordering::Release);
            model
        });
        let mut refreshes = 0;
        while !done.load(Ordering::Acquire) {
            r.refresh().expect("refresh");
            refreshes += 1;
            for id in r.ids() {
                let v = r.retrieve(id).expect("listed");
                // A whole write: v == vector(id, version) for the version its
                // first element implies (7 * 143 = 1 mod 1000), modulo 1000.
                let v0 = (v[0] * 2.0) as i64;
                let base = (143 * (v0 - 31 * id as i64)).rem_euclid(1000) as u64;
                let whole = (0..3).any(|k| v == vector(id, base + 1000 * k, DIM));
                assert!(whole, "id {id}: a torn or foreign vector {v:?}");
            }
        }
        println!("{refreshes} refreshes while the writer ran");
        w.join().expect("writer")
    });
    r.refresh().expect("final refresh");
    same(&r, &model);
}

// Proves a reader of a store with a torn WAL tail (and no writer to cut it)
// stops before the tear and changes nothing on disk.
#[test]
fn reader_stops_at_a_torn_tail_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    {
        let writer: VectorStore<f32> = open(&path, &options());
        for id in 0..10u64 {
            writer.store(id, &vector(id, 0, DIM)).expect("store");
        }
    }
    let segment = std::fs::read_dir(path.join("wal"))
        .expect("wal")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("segment");
    let len = std::fs::metadata(&segment).expect("len").len();
    std::fs::OpenOptions::new().write(true).open(&segment).expect("open").set_len(len - 5).expect("tear");
    let before = snapshot_tree(&path);
    let r = reader(&path);
    assert_eq!(r.len(), 9, "the torn last batch is not applied");
    assert!(r.refresh().expect("refresh").batches_applied == 0);
    assert!(snapshot_tree(&path) == before, "a reader changed the store's files");
    drop(r);
    // The writer's recovery cuts the tail; the reader then follows new writes.
    let writer: VectorStore<f32> = open(&path, &options());
    let r = reader(&path);
    writer.store(50, &vector(50, 0, DIM)).expect("store");
    r.refresh().expect("refresh");
    assert_eq!(r.len(), 10);
    assert_eq!(r.retrieve(50), Some(vector(50, 0, DIM)));
}

// Proves a reader refuses (with `Corrupted`) a data file shorter than the
// records its checkpoint covers, instead of mapping past the end of the
// file (a read there would be SIGBUS).
#[test]
fn reader_refuses_a_data_file_shorter_than_its_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    {
        let writer: VectorStore<f32> = open(&path, &small(DIM));
        for id in 0..100u64 {
            writer.store(id, &vector(id, 0, DIM)).expect("store");
        }
        writer.close().expect("close");
    }
    let data = path.join(quiver_storage::format::data_file_name(1));
    std::fs::OpenOptions::new().write(true).open(&data).expect("open").set_len(4096 + 10 * 128).expect("truncate");
    let r: Result<VectorReader<f32>, quiver_storage::Error> = small(DIM).open_reader(&path);
    assert!(matches!(r, Err(quiver_storage::Error::Corrupted { .. })), "{r:?}");
}
