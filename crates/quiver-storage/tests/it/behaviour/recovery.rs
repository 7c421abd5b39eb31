//! Recovery behaviour the seed got wrong: deletes undone by replay (defect
//! 3), a torn first WAL frame hiding every later write (defect 2), and an
//! empty index file opening silently as an empty store (defect 9).

use std::path::{Path, PathBuf};

use quiver_storage::format::wal_frame::{FRAME_HEADER_BYTES, SegmentHeader};
use quiver_storage::{Durability, Error, SnapshotOutcome, StoreOptions};

use super::{assert_same_tree, refs};
use crate::common::{open, small, snapshot_tree, store_path, vector};

const LEVELS: [Durability; 3] = [Durability::Sync, Durability::Buffered, Durability::Deferred];

/// Where the checkpoint falls relative to the delete, and how the session ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    /// Puts and delete only in the WAL; drop without close.
    NoCheckpoint,
    /// Puts in the snapshot, delete in the WAL.
    CheckpointBeforeDelete,
    /// Puts and delete both covered by the snapshot.
    CheckpointAfterDelete,
    /// close() after the delete.
    Close,
    /// Puts and delete before a checkpoint whose snapshot is then removed:
    /// the index is rebuilt from the data file.
    SnapshotLost,
    /// Puts in one session, delete in the next.
    DeleteAfterReopen,
}

fn snapshot_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list store")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("snapshot-")))
        .collect();
    out.sort();
    out
}

fn check_deleted(path: &Path, opts: &StoreOptions, when: &str) {
    let s = open(path, opts);
    assert!(!s.contains(5) && s.retrieve(5).is_none(), "{when}: deleted id 5 came back");
    assert!(!s.contains(25) && s.retrieve(25).is_none(), "{when}: deleted id 25 came back");
    assert_eq!(s.len(), 28, "{when}");
    assert_eq!(s.retrieve(6), Some(vector(6, 1, 4)), "{when}: the overwrite was lost");
    assert_eq!(s.retrieve(24), Some(vector(24, 0, 4)), "{when}");
}

// Proves a deleted id stays deleted across reopen at every durability level,
// whether the checkpoint comes before or after the delete, after close, when
// the snapshot is lost and the index is rebuilt, and when the delete happens
// in a later session than the put (seed defect 3); and that it stays deleted
// after further sessions that write, drop and close.
#[test]
fn deleted_ids_stay_deleted_across_reopen() {
    use Variant::*;
    for level in LEVELS {
        for variant in
            [NoCheckpoint, CheckpointBeforeDelete, CheckpointAfterDelete, Close, SnapshotLost, DeleteAfterReopen]
        {
            let when = format!("{level:?} {variant:?}");
            let dir = tempfile::tempdir().expect("tempdir");
            let path = store_path(&dir);
            let opts = small(4).durability(level);
            let mut s = open(&path, &opts);
            for id in 0..20 {
                s.store(id, &vector(id, 0, 4)).expect("store");
            }
            let batch: Vec<(u64, Vec<f32>)> = (20..30).map(|id| (id, vector(id, 0, 4))).collect();
            s.store_batch(&refs(&batch)).expect("batch");
            if variant == CheckpointBeforeDelete {
                s.checkpoint().expect("checkpoint");
            }
            if variant == DeleteAfterReopen {
                drop(s);
                s = open(&path, &opts);
            }
            assert!(s.delete(5).expect("delete"), "{when}");
            assert!(!s.delete(5).expect("delete again"), "{when}");
            assert!(s.delete(25).expect("delete"), "{when}");
            s.store(6, &vector(6, 1, 4)).expect("overwrite");
            match variant {
                CheckpointAfterDelete | SnapshotLost => {
                    s.checkpoint().expect("checkpoint");
                    drop(s);
                }
                Close => s.close().expect("close"),
                _ => drop(s),
            }
            if variant == SnapshotLost {
                let snaps = snapshot_files(&path);
                assert_eq!(snaps.len(), 1, "{when}: {snaps:?}");
                std::fs::remove_file(&snaps[0]).expect("remove snapshot");
                let s = open(&path, &opts);
                assert!(
                    matches!(s.recovery_report().snapshot, SnapshotOutcome::Rebuilt { .. }),
                    "{when}: {:?}",
                    s.recovery_report().snapshot
                );
            }
            check_deleted(&path, &opts, &when);
            {
                let s = open(&path, &opts);
                s.store(100, &vector(100, 0, 4)).expect("store after reopen");
                assert!(s.delete(100).expect("delete"));
            }
            check_deleted(&path, &opts, &format!("{when}, second session"));
            open(&path, &opts).close().expect("close");
            check_deleted(&path, &opts, &format!("{when}, after close"));
        }
    }
}

/// The newest WAL segment that holds at least one frame.
fn newest_segment_with_frames(store: &Path) -> PathBuf {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(store.join("wal"))
        .expect("list wal")
        .map(|e| e.expect("entry").path())
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > SegmentHeader::ENCODED_LEN as u64))
        .collect();
    segments.sort();
    segments.pop().expect("a WAL segment with frames")
}

// Proves that after the first frame of the newest WAL segment is damaged
// (one byte flipped inside it), open cuts the tail at that frame, and 1000
// writes made afterwards, flushed, survive the next restart (seed defect 2:
// 0 of 1000 came back), at every durability level.
#[test]
fn writes_after_a_torn_first_frame_come_back() {
    for level in LEVELS {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = store_path(&dir);
        let opts = small(8).durability(level);
        {
            let s = open(&path, &opts);
            for id in 0..10 {
                s.store(id, &vector(id, 0, 8)).expect("store");
            }
        }
        let segment = newest_segment_with_frames(&path);
        let mut bytes = std::fs::read(&segment).expect("read segment");
        let inside_first_frame = SegmentHeader::ENCODED_LEN + FRAME_HEADER_BYTES + 4;
        bytes[inside_first_frame] ^= 0xFF;
        std::fs::write(&segment, &bytes).expect("write damaged segment");
        {
            let s = open(&path, &opts);
            let torn = s.recovery_report().torn_tail.clone().expect("the damaged frame is reported as a torn tail");
            assert_eq!(torn.path, segment, "{level:?}");
            assert_eq!(torn.offset, SegmentHeader::ENCODED_LEN as u64, "{level:?}: {torn:?}");
            assert_eq!(s.len(), 0, "{level:?}: writes at and after the torn frame are cut");
            for id in 1000..2000 {
                s.store(id, &vector(id, 0, 8)).expect("store after the cut");
            }
            s.flush().expect("flush");
        }
        let s = open(&path, &opts);
        assert!(s.recovery_report().torn_tail.is_none(), "{level:?}: {:?}", s.recovery_report().torn_tail);
        assert_eq!(s.len(), 1000, "{level:?}: writes after the torn frame were lost");
        for id in 1000..2000 {
            assert_eq!(s.retrieve(id), Some(vector(id, 0, 8)), "{level:?} id {id}");
        }
    }
}

// Proves an empty (and a missing) MANIFEST is Error::Corrupted naming the
// file, not an empty store, and that the refused open changes nothing.
#[test]
fn empty_manifest_is_corruption_not_an_empty_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let opts = small(4);
    {
        let s = open(&path, &opts);
        for id in 0..20 {
            s.store(id, &vector(id, 0, 4)).expect("store");
        }
        s.close().expect("close");
    }
    let manifest = path.join("MANIFEST");
    std::fs::write(&manifest, b"").expect("empty the manifest");
    let before = snapshot_tree(dir.path());
    let e = opts.open::<f32>(&path).expect_err("an empty manifest must not open");
    assert!(matches!(&e, Error::Corrupted { path: p, .. } if *p == manifest), "{e}");
    assert!(e.to_string().contains("MANIFEST"), "the message does not name the file: {e}");
    assert_same_tree(&before, &snapshot_tree(dir.path()), "after the refused open");

    std::fs::remove_file(&manifest).expect("remove the manifest");
    let e = opts.open::<f32>(&path).expect_err("a missing manifest must not open");
    assert!(matches!(&e, Error::Corrupted { path: p, .. } if *p == manifest), "{e}");
}

// Proves an empty snapshot file is not read as an empty index (seed defect
// 9): open rebuilds the index from the data file and the WAL (all vectors,
// overwrites and deletes included) and says so, after a close and after a
// drop with WAL writes past the checkpoint; in the latter case the fresh
// snapshot is loaded by the next open.
#[test]
fn empty_snapshot_rebuilds_the_index() {
    for close in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = store_path(&dir);
        let opts = small(4);
        {
            let s = open(&path, &opts);
            for id in 0..100 {
                s.store(id, &vector(id, 0, 4)).expect("store");
            }
            s.checkpoint().expect("checkpoint");
            for id in 100..150 {
                s.store(id, &vector(id, 0, 4)).expect("store");
            }
            assert!(s.delete(10).expect("delete"));
            s.store(20, &vector(20, 1, 4)).expect("overwrite");
            if close {
                s.close().expect("close");
            }
        }
        let snaps = snapshot_files(&path);
        assert_eq!(snaps.len(), 1, "{snaps:?}");
        std::fs::write(&snaps[0], b"").expect("empty the snapshot");
        let check = |s: &quiver_storage::VectorStore<f32>| {
            assert_eq!(s.len(), 149, "close={close}");
            assert!(!s.contains(10));
            assert_eq!(s.retrieve(20), Some(vector(20, 1, 4)));
            for id in (0..150).filter(|&id| id != 10 && id != 20) {
                assert_eq!(s.retrieve(id), Some(vector(id, 0, 4)), "close={close} id {id}");
            }
        };
        {
            let s = open(&path, &opts);
            let outcome = &s.recovery_report().snapshot;
            assert!(matches!(outcome, SnapshotOutcome::Rebuilt { .. }), "close={close}: {outcome:?}");
            check(&s);
        }
        let s = open(&path, &opts);
        let outcome = &s.recovery_report().snapshot;
        // After a close nothing follows the checkpoint, and the rebuilt index
        // is not re-snapshotted (the known bug that
        // snapshot_rebuild::damaged_snapshot_is_rebuilt_and_replaced pins),
        // so only the data is checked there.
        if !close {
            assert!(matches!(outcome, SnapshotOutcome::Loaded { .. }), "close={close}: {outcome:?}");
        }
        check(&s);
    }
}

// Proves a torn frame in one WAL segment followed by a later segment that
// holds batches is reported as damage (naming the torn segment), never
// replayed around: the later batches depend on the lost one. The writer
// never leaves such a log (it starts a segment only after a checkpoint), so
// the test builds it by restoring an older manifest over a rotated log.
#[test]
fn torn_segment_followed_by_a_segment_with_batches_is_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let opts = small(4);
    let store = open(&path, &opts);
    for id in 0..4 {
        store.store(id, &vector(id, 0, 4)).expect("store in segment 1");
    }
    let first_manifest = std::fs::read(path.join("MANIFEST")).expect("manifest naming segment 1");
    store.checkpoint().expect("checkpoint: the log moves to segment 2");
    for id in 4..8 {
        store.store(id, &vector(id, 0, 4)).expect("store in segment 2");
    }
    drop(store);
    let wal = path.join("wal");
    let segment1 = wal.join(quiver_storage::format::wal_segment_name(1));
    assert!(segment1.exists(), "segment 1 is kept for the grace period");
    std::fs::write(path.join("MANIFEST"), &first_manifest).expect("restore the older manifest");
    let len = std::fs::metadata(&segment1).expect("segment 1").len();
    let file = std::fs::OpenOptions::new().write(true).open(&segment1).expect("open segment 1");
    file.set_len(len - 3).expect("tear the last frame of segment 1");
    drop(file);
    let before = snapshot_tree(&path);
    match opts.open::<f32>(&path) {
        Err(Error::Corrupted { path: named, reason, .. }) => {
            assert!(reason.contains("torn") && reason.contains("later batches"), "{reason}");
            assert_eq!(named, segment1, "the error names the torn segment");
        }
        Err(e) => panic!("expected Corrupted, got {e}"),
        Ok(s) => panic!("opened with {} vectors around a torn segment", s.len()),
    }
    let after = snapshot_tree(&path);
    let wal_files =
        |t: &[(PathBuf, Vec<u8>)]| t.iter().filter(|(p, _)| p.starts_with(&wal)).cloned().collect::<Vec<_>>();
    assert_same_tree(&wal_files(&before), &wal_files(&after), "the refused open changed the WAL");
}

// Proves a clean open syncs nothing (so it costs the same at any size and
// does not wait for the disk), and that the first write syncs the store
// directory before it is acknowledged, at every durability level: when that
// sync fails, the write fails, is not stored, and the store is poisoned
// (the sync is never retried: a later success would prove nothing); after
// a reopen the first write syncs the directory and is stored.
#[test]
fn clean_open_leaves_the_directory_sync_to_the_first_write() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use quiver_storage::io::{FaultAction, IoStep};

    use super::{EIO, injector, os_error};

    for level in [Durability::Sync, Durability::Buffered, Durability::Deferred] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = store_path(&dir);
        let opts = small(4).durability(level);
        {
            let s = open(&path, &opts);
            s.store(1, &vector(1, 0, 4)).expect("store");
            s.close().expect("close");
        }
        let store_dir = std::fs::canonicalize(&path).expect("resolve");
        let syncs = Arc::new(AtomicUsize::new(0));
        let dir_syncs = Arc::new(Mutex::new(Vec::new()));
        let fail_dir_sync = Arc::new(AtomicBool::new(false));
        let faults = {
            let (syncs, dir_syncs, fail, store_dir) =
                (Arc::clone(&syncs), Arc::clone(&dir_syncs), Arc::clone(&fail_dir_sync), store_dir.clone());
            injector(move |step| match step {
                IoStep::SyncDir { path } => {
                    syncs.fetch_add(1, Ordering::SeqCst);
                    dir_syncs.lock().expect("lock").push(path.to_path_buf());
                    if path == store_dir && fail.load(Ordering::SeqCst) {
                        FaultAction::Fail(os_error(EIO))
                    } else {
                        FaultAction::Proceed
                    }
                }
                IoStep::SyncData { path } | IoStep::SyncAll { path } => {
                    syncs.fetch_add(1, Ordering::SeqCst);
                    dir_syncs.lock().expect("lock").push(path.to_path_buf());
                    FaultAction::Proceed
                }
                _ => FaultAction::Proceed,
            })
        };
        let s = open(&path, &opts.clone().fault_injector(faults));
        assert_eq!(syncs.load(Ordering::SeqCst), 0, "{level:?}: a clean open synced {:?}", dir_syncs.lock());
        assert_eq!(s.retrieve(1), Some(vector(1, 0, 4)), "{level:?}: reads need no sync");
        fail_dir_sync.store(true, Ordering::SeqCst);
        let e = s.store(2, &vector(2, 0, 4)).expect_err("the directory sync failed");
        assert!(matches!(e, Error::Io { .. }), "{level:?}: {e}");
        assert_eq!(dir_syncs.lock().expect("lock").first(), Some(&store_dir), "{level:?}: the first sync");
        assert!(!s.contains(2), "{level:?}: a write whose directory sync failed is stored");
        fail_dir_sync.store(false, Ordering::SeqCst);
        let e = s.store(3, &vector(3, 0, 4)).expect_err("the store is poisoned");
        assert!(matches!(e, Error::Poisoned { .. }), "{level:?}: the failed sync was retried: {e}");
        drop(s);
        let s = open(&path, &opts);
        assert_eq!((s.retrieve(1), s.retrieve(2), s.retrieve(3)), (Some(vector(1, 0, 4)), None, None));
        s.store(2, &vector(2, 0, 4)).expect("after a reopen the first write syncs the directory");
        s.close().expect("close");
        let s = open(&path, &opts);
        assert_eq!(s.retrieve(2), Some(vector(2, 0, 4)));
    }
}
