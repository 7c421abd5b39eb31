//! Proves the index snapshot is only an accelerator (a Bitcask hint file):
//! when it is missing, truncated, empty or has a flipped bit in what open
//! checks (header, checksum table), open rebuilds the index from the data
//! file and the WAL, says so in the recovery report, holds exactly the live
//! vectors with their latest values (no deleted id comes back), and writes
//! a fresh snapshot so the next open loads it. A flipped bit in a block of
//! buckets, which open does not read, is caught by the first read of that
//! block: the store answers correctly from a rebuild and its next
//! checkpoint replaces the file. Also proves stray temporary files are
//! removed at open.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;
use quiver_storage::format::snapshot::{SnapshotHeader, check_block};
use quiver_storage::{SnapshotOutcome, VectorStore};

const DIM: usize = 8;

/// What the test expects the store to hold: id -> vector.
type Model = BTreeMap<u64, Vec<f32>>;

/// How the snapshot file is damaged before reopening.
#[derive(Clone, Copy, Debug)]
enum Damage {
    Delete,
    Truncate,
    Empty,
    FlipHeaderBit,
    FlipChecksumTableBit,
    FlipEntryBit,
}

/// Every kind of damage open itself finds.
const FOUND_AT_OPEN: [Damage; 5] =
    [Damage::Delete, Damage::Truncate, Damage::Empty, Damage::FlipHeaderBit, Damage::FlipChecksumTableBit];

/// Stores ids 0..300 (half of them in batches), overwrites every 5th,
/// deletes every 7th (so some overwritten ids are deleted too), deletes and
/// then re-stores every 11th, and checkpoints. Returns the model.
fn write_and_checkpoint(s: &VectorStore<f32>) -> Model {
    let mut model = Model::new();
    for id in 0..150u64 {
        s.store(id, &vector(id, 0, DIM)).expect("store");
        model.insert(id, vector(id, 0, DIM));
    }
    let batch: Vec<(u64, Vec<f32>)> = (150..300u64).map(|id| (id, vector(id, 0, DIM))).collect();
    let refs: Vec<(u64, &[f32])> = batch.iter().map(|(i, v)| (*i, &v[..])).collect();
    assert_eq!(s.store_batch(&refs).expect("batch"), 150);
    model.extend(batch);
    for id in (0..300u64).step_by(5) {
        s.store(id, &vector(id, 1, DIM)).expect("overwrite");
        model.insert(id, vector(id, 1, DIM));
    }
    for id in (0..300u64).step_by(7) {
        assert!(s.delete(id).expect("delete"), "id {id} was present");
        model.remove(&id);
    }
    for id in (0..300u64).step_by(11) {
        s.delete(id).expect("delete before re-store");
        s.store(id, &vector(id, 2, DIM)).expect("re-store");
        model.insert(id, vector(id, 2, DIM));
    }
    s.checkpoint().expect("checkpoint");
    model
}

/// Writes after the checkpoint, so they live only in the WAL: new ids,
/// overwrites of checkpointed ids, deletes of checkpointed ids.
fn write_after_checkpoint(s: &VectorStore<f32>, model: &mut Model) {
    for id in 300..340u64 {
        s.store(id, &vector(id, 0, DIM)).expect("store after checkpoint");
        model.insert(id, vector(id, 0, DIM));
    }
    for id in (1..300u64).step_by(13) {
        s.store(id, &vector(id, 3, DIM)).expect("overwrite after checkpoint");
        model.insert(id, vector(id, 3, DIM));
    }
    for id in (2..300u64).step_by(17) {
        s.delete(id).expect("delete after checkpoint");
        model.remove(&id);
    }
}

fn snapshot_files(path: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(path)
        .expect("list the store dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("snapshot-") && name.ends_with(".qvs")
        })
        .collect();
    out.sort();
    out
}

fn damage(path: &Path, how: Damage) {
    let snaps = snapshot_files(path);
    assert_eq!(snaps.len(), 1, "one snapshot after a checkpoint: {snaps:?}");
    let snap = &snaps[0];
    let mut bytes = fs::read(snap).expect("read the snapshot");
    assert!(bytes.len() > 64 + 16, "the snapshot holds entries");
    match how {
        Damage::Delete => {
            fs::remove_file(snap).expect("delete the snapshot");
            return;
        }
        Damage::Truncate => bytes.truncate(bytes.len() - 5),
        Damage::Empty => bytes.clear(),
        // Byte 20 is inside the LSN field of the header.
        Damage::FlipHeaderBit => bytes[20] ^= 0x04,
        // The first block's checksum, right after the header.
        Damage::FlipChecksumTableBit => bytes[65] ^= 0x08,
        // The middle of the bucket area, which starts at 4096 here.
        Damage::FlipEntryBit => {
            let mid = 4096 + (bytes.len() - 4096) / 2;
            bytes[mid] ^= 0x10;
        }
    }
    fs::write(snap, &bytes).expect("write the damaged snapshot");
}

/// Checks the store holds exactly `model`: the same ids, the same values,
/// no deleted id readable.
fn assert_holds(s: &VectorStore<f32>, model: &Model, context: &str) {
    let mut ids = s.ids();
    ids.sort_unstable();
    let expected: Vec<u64> = model.keys().copied().collect();
    assert_eq!(ids, expected, "{context}: ids");
    assert_eq!(s.len(), model.len(), "{context}: len");
    for (id, v) in model {
        assert_eq!(s.retrieve(*id).as_ref(), Some(v), "{context}: id {id}");
    }
    for id in 0..400u64 {
        if !model.contains_key(&id) {
            assert!(s.get(id).is_none() && !s.contains(id), "{context}: deleted or never stored id {id} is readable");
        }
    }
}

/// Reopens after `how` damaged the snapshot and checks the rebuild, then
/// reopens again and checks the fresh snapshot is loaded.
fn reopen_and_check_rebuild(path: &Path, how: Damage, model: &Model, expect_replay: bool) {
    let opts = small(DIM);
    let context = format!("{how:?}");
    {
        let s = open(path, &opts);
        let report = s.recovery_report();
        assert!(
            matches!(&report.snapshot, SnapshotOutcome::Rebuilt { reason } if reason.contains("snapshot-")),
            "{context}: the report names the rebuild and the file: {:?}",
            report.snapshot
        );
        assert_eq!(report.batches_replayed > 0, expect_replay, "{context}: WAL replay after the rebuild");
        assert_holds(&s, model, &format!("{context}, rebuilt"));
        // Dropped without close: the fresh snapshot must come from open.
    }
    let s = open(path, &opts);
    let entries = model.len() as u64;
    assert!(
        matches!(s.recovery_report().snapshot, SnapshotOutcome::Loaded { entries: e } if e == entries),
        "{context}: open after a rebuild loads the snapshot it wrote: {:?}",
        s.recovery_report().snapshot
    );
    assert_holds(&s, model, &format!("{context}, reloaded"));
    assert_eq!(snapshot_files(path).len(), 1, "{context}: one snapshot, the old one replaced");
}

/// Reopens after a bucket of the snapshot was damaged: open accepts the
/// file (it reads no bucket), every read is still right (the damaged block
/// is caught when first read and the store answers from a rebuild), and the
/// next checkpoint, although nothing changed, writes a snapshot whose every
/// block checks, which the next open loads.
fn reopen_with_a_damaged_block(path: &Path, model: &Model) {
    let opts = small(DIM);
    let damaged = fs::read(&snapshot_files(path)[0]).expect("read the damaged snapshot");
    {
        let s = open(path, &opts);
        assert!(
            matches!(s.recovery_report().snapshot, SnapshotOutcome::Loaded { .. }),
            "open reads no bucket, so it maps the file: {:?}",
            s.recovery_report().snapshot
        );
        assert_holds(&s, model, "damaged block, first open");
        s.checkpoint().expect("the checkpoint replaces the damaged snapshot");
        let manifest = fs::read(path.join("MANIFEST")).expect("read the manifest");
        s.checkpoint().expect("a second checkpoint");
        assert_eq!(fs::read(path.join("MANIFEST")).expect("read"), manifest, "once replaced, nothing to rewrite");
    }
    let fresh = fs::read(&snapshot_files(path)[0]).expect("read the new snapshot");
    assert_ne!(fresh, damaged, "the damaged snapshot was replaced");
    let h = SnapshotHeader::decode_from(&fresh).expect("the new snapshot decodes");
    for block in 0..h.block_count() {
        check_block(&h, &fresh, block).expect("every block of the new snapshot checks");
    }
    let s = open(path, &opts);
    assert!(matches!(s.recovery_report().snapshot, SnapshotOutcome::Loaded { .. }));
    assert_holds(&s, model, "damaged block, after the checkpoint");
}

// Proves that every kind of snapshot damage, when every write is covered by
// the checkpoint, makes open rebuild an index that holds exactly the live
// vectors, and that a new snapshot is written so the next open loads it.
#[test]
fn damaged_snapshot_is_rebuilt_and_replaced() {
    for how in FOUND_AT_OPEN {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = store_path(&dir);
        let model = {
            let s = open(&path, &small(DIM));
            let model = write_and_checkpoint(&s);
            s.close().expect("close");
            model
        };
        damage(&path, how);
        reopen_and_check_rebuild(&path, how, &model, false);
    }
}

// Proves a damaged bucket, which open does not read, never yields a wrong
// answer, with and without writes after the checkpoint, and is replaced by
// the next checkpoint.
#[test]
fn damaged_block_is_caught_when_read_and_replaced() {
    for write_after in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = store_path(&dir);
        let model = {
            let s = open(&path, &small(DIM));
            let mut model = write_and_checkpoint(&s);
            if write_after {
                write_after_checkpoint(&s, &mut model);
            } else {
                s.close().expect("close");
            }
            model
        };
        damage(&path, Damage::FlipEntryBit);
        reopen_with_a_damaged_block(&path, &model);
    }
}

// Proves writes made after the checkpoint (only in the WAL: new ids,
// overwrites and deletes of checkpointed ids) are replayed on top of the
// rebuilt index, and the fresh snapshot covers them.
#[test]
fn rebuild_replays_the_wal_written_after_the_checkpoint() {
    for how in FOUND_AT_OPEN {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = store_path(&dir);
        let model = {
            let s = open(&path, &small(DIM));
            let mut model = write_and_checkpoint(&s);
            write_after_checkpoint(&s, &mut model);
            // Dropped without close, so the later writes stay in the WAL.
            model
        };
        damage(&path, how);
        reopen_and_check_rebuild(&path, how, &model, true);
    }
}

// Proves stray temporary files (`*.tmp`) in the store directory and in
// `wal/`, and a snapshot the manifest does not name, are removed at open and
// listed in `recovery_report().files_removed`, without touching the data.
#[test]
fn stray_temp_files_are_removed_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let model = {
        let s = open(&path, &small(DIM));
        let model = write_and_checkpoint(&s);
        s.close().expect("close");
        model
    };
    let live_snapshot = snapshot_files(&path).pop().expect("a snapshot");
    let strays = [
        path.join("MANIFEST.tmp"),
        path.join("snapshot-00000001-00000000000000000001.qvs.tmp"),
        path.join("wal").join("00000000000000000099.qwal.tmp"),
        path.join("wal").join("junk.tmp"),
    ];
    for p in &strays {
        fs::write(p, b"half-written").expect("write a stray temp file");
    }
    let old_snapshot = path.join("snapshot-00000001-00000000000000000001.qvs");
    fs::copy(&live_snapshot, &old_snapshot).expect("plant an unreferenced snapshot");

    let s = open(&path, &small(DIM));
    let report = s.recovery_report();
    for p in strays.iter().chain([&old_snapshot]) {
        assert!(!p.exists(), "{} was removed", p.display());
        assert!(report.files_removed.contains(p), "{} is reported removed: {:?}", p.display(), report.files_removed);
    }
    assert!(live_snapshot.exists(), "the manifest's snapshot is kept");
    assert!(!report.files_removed.contains(&live_snapshot));
    assert!(
        matches!(report.snapshot, SnapshotOutcome::Loaded { entries } if entries == model.len() as u64),
        "{:?}",
        report.snapshot
    );
    assert_holds(&s, &model, "after removing strays");
}

// Proves a snapshot that is whole and checksum-valid but from an older
// checkpoint (put in place of the current one) is not trusted: open
// rebuilds, ids deleted since that checkpoint do not come back, values
// written since it win, and the next open loads the replacement.
#[test]
fn stale_snapshot_in_place_of_the_current_one_is_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let (old_bytes, model) = {
        let s = open(&path, &small(DIM));
        let mut model = write_and_checkpoint(&s);
        let old = snapshot_files(&path).pop().expect("the first snapshot");
        let old_bytes = fs::read(old).expect("read the first snapshot");
        write_after_checkpoint(&s, &mut model);
        s.close().expect("close");
        (old_bytes, model)
    };
    let current = snapshot_files(&path).pop().expect("the current snapshot");
    assert_ne!(fs::read(&current).expect("read the current snapshot"), old_bytes, "the checkpoints differ");
    fs::write(&current, &old_bytes).expect("put the old snapshot in place");
    for round in 0..2 {
        let s = open(&path, &small(DIM));
        let outcome = &s.recovery_report().snapshot;
        if round == 0 {
            assert!(
                matches!(outcome, SnapshotOutcome::Rebuilt { reason } if reason.contains("manifest")),
                "the stale snapshot is rejected: {outcome:?}"
            );
        } else {
            assert!(
                matches!(outcome, SnapshotOutcome::Loaded { entries } if *entries == model.len() as u64),
                "the rebuild replaced the stale snapshot: {outcome:?}"
            );
        }
        assert_holds(&s, &model, &format!("stale snapshot, open {round}"));
    }
}

// Proves two independent faults, a damaged snapshot block and a damaged
// record below the checkpoint (so the data file cannot rebuild the block),
// never become a silent, permanent loss: the ids that can still be read are
// read right, `verify` reports the loss, and checkpoints, `close` and
// compaction are refused rather than write a snapshot or a generation
// without the lost ids; the damaged snapshot stays on disk as it was.
#[test]
fn a_loss_is_reported_and_never_made_permanent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let model = {
        let s = open(&path, &small(DIM));
        let model = write_and_checkpoint(&s);
        s.close().expect("close");
        model
    };
    damage(&path, Damage::FlipEntryBit);
    let data = path.join("data-00000001.qvd");
    let mut bytes = fs::read(&data).expect("read the data file");
    // Slot 0's record header, just past the 4 KiB data file header.
    bytes[4096 + 8] ^= 0x01;
    fs::write(&data, &bytes).expect("damage record 0");
    let snapshot = snapshot_files(&path)[0].clone();
    let damaged_snapshot = fs::read(&snapshot).expect("read the snapshot");

    let s = open(&path, &small(DIM));
    let ids = s.ids();
    assert!(ids.len() < model.len(), "the damaged block's ids are lost ({} of {})", ids.len(), model.len());
    assert_eq!(s.len(), ids.len(), "the count follows what is left");
    for id in &ids {
        assert_eq!(s.retrieve(*id).as_ref(), model.get(id), "id {id} is read right");
    }
    let report = s.verify().expect("verify runs");
    assert!(report.problems.iter().any(|p| p.reason.contains("lost")), "{:?}", report.problems);
    s.store(10_000, &vector(10_000, 0, DIM)).expect("writes go on, into the WAL");
    let refused = s.checkpoint().expect_err("a checkpoint would make the loss permanent").to_string();
    assert!(refused.contains("lost"), "{refused}");
    assert!(s.begin_compaction(quiver_storage::Headroom::new(0.0, 0)).is_err(), "a compaction would too");
    assert!(s.close().is_err(), "close checkpoints, so it is refused too");
    assert_eq!(fs::read(&snapshot).expect("read"), damaged_snapshot, "the damaged snapshot is kept for repair");
    let s = open(&path, &small(DIM));
    assert_eq!(s.retrieve(10_000), Some(vector(10_000, 0, DIM)), "the write after the loss was kept");
}
