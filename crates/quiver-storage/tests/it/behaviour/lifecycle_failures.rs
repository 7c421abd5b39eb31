//! Open and close when something fails, and the files a failure leaves: a
//! failed `close` keeps at least what Drop would, a failed open of a new
//! store leaves nothing behind, a relative path survives a change of
//! directory, a rotation that failed twice does not wedge later checkpoints,
//! and a missing WAL segment is damage even when the checkpoint covers no
//! batch.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use quiver_storage::format::wal_segment_name;
use quiver_storage::io::{FaultAction, IoStep};
use quiver_storage::{Durability, Error, VectorStore};

use super::{EIO, fail_once_armed, in_wal, injector, names_in, os_error, refs};
use crate::common::{open, small, store_path, vector};

// Proves `close()` failing at Deferred still writes the buffered frames out
// as Drop would (before the fix, close marked the store closed and the
// failed write had taken the frames out of the buffer, so both were lost).
#[test]
fn failed_close_at_deferred_keeps_what_drop_would_have_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let (armed, faults) = fail_once_armed(|step| matches!(step, IoStep::Write { path, .. } if in_wal(path)));
    let opts = small(4).durability(Durability::Deferred);
    let store: VectorStore<f32> = open(&path, &opts.clone().fault_injector(faults));
    let batch: Vec<(u64, Vec<f32>)> = (0..5).map(|id| (id, vector(id, 0, 4))).collect();
    store.store_batch(&refs(&batch)).expect("store (buffered in memory)");
    store.store(9, &vector(9, 0, 4)).expect("store");
    armed.store(true, Ordering::SeqCst);
    let e = store.close().expect_err("the injected WAL write failure is reported");
    assert!(matches!(e, Error::Io { .. }), "{e}");
    assert!(!armed.load(Ordering::SeqCst), "the injector fired");

    let reopened = open(&path, &opts);
    assert_eq!(reopened.len(), 6, "the frames Drop writes out after a failed close are replayed");
    assert_eq!(reopened.retrieve(9), Some(vector(9, 0, 4)));
    reopened.close().expect("close");
}

// Proves a failed open of a store that the same call created removes it:
// nothing is left behind, in the directory or beside it. The failure is the
// sync of `wal/` after the first open creates segment 1, a step of the open
// that follows the new store's rename into place.
#[test]
fn failed_open_of_a_new_store_leaves_nothing_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let parent = std::fs::canonicalize(dir.path()).expect("canonical temp dir");
    let path = parent.join("store");
    let target = path.join("wal");
    let faults = injector(move |step| match step {
        IoStep::SyncDir { path } if path == target => FaultAction::Fail(os_error(EIO)),
        _ => FaultAction::Proceed,
    });
    let e = small(4).fault_injector(faults).open::<f32>(&path).expect_err("the injected failure is reported");
    assert!(matches!(e, Error::Io { .. }), "{e}");
    assert!(!path.exists(), "the store created by the failed open is still there");
    assert!(names_in(&parent).is_empty(), "left beside it: {:?}", names_in(&parent));
    // And the path works for a later open.
    open(&path, &small(4)).close().expect("close");
}

/// Restores the working directory when dropped, also when the test fails.
struct Cwd(std::path::PathBuf);

impl Drop for Cwd {
    fn drop(&mut self) {
        let _ = std::env::set_current_dir(&self.0);
    }
}

// Proves a store opened through a relative path keeps working after the
// process changes directory: checkpoints and reopen find its files (the path
// is made absolute at open; before, a checkpoint wrote relative to the new
// working directory and failed).
#[test]
fn relative_path_survives_a_change_of_directory() {
    let home = tempfile::tempdir().expect("tempdir");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let _restore = Cwd(std::env::current_dir().expect("cwd"));
    std::env::set_current_dir(home.path()).expect("chdir");
    let store: VectorStore<f32> = open(Path::new("relative-store"), &small(4));
    assert!(store.path().is_absolute(), "{}", store.path().display());
    store.store(1, &vector(1, 0, 4)).expect("store");
    std::env::set_current_dir(elsewhere.path()).expect("chdir");
    store.store(2, &vector(2, 0, 4)).expect("store after chdir");
    store.checkpoint().expect("checkpoint after chdir");
    store.close().expect("close after chdir");
    assert!(names_in(elsewhere.path()).is_empty(), "files were written to the new working directory");
    let reopened = open(&home.path().join("relative-store"), &small(4));
    assert_eq!(reopened.len(), 2);
}

// Proves a rotation that fails and then cannot remove the segment it created
// (two failures) does not wedge every later checkpoint with "file exists":
// the next checkpoint removes the leftover and succeeds.
#[test]
fn leftover_segment_of_a_failed_rotation_does_not_wedge_checkpoints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let failures_left = Arc::new(AtomicU32::new(0));
    let left = Arc::clone(&failures_left);
    let next_segment = wal_segment_name(2);
    let faults = injector(move |step| {
        let is_next = |p: &Path| in_wal(p) && p.file_name().is_some_and(|n| n == next_segment.as_str());
        match step {
            IoStep::SyncAll { path } | IoStep::Remove { path }
                if is_next(path)
                    && left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() =>
            {
                FaultAction::Fail(os_error(EIO))
            }
            _ => FaultAction::Proceed,
        }
    });
    let opts = small(4);
    let store: VectorStore<f32> = open(&path, &opts.clone().fault_injector(faults));
    store.store(1, &vector(1, 0, 4)).expect("store");
    failures_left.store(2, Ordering::SeqCst);
    store.checkpoint().expect_err("the rotation's sync fails, then its cleanup");
    assert_eq!(failures_left.load(Ordering::SeqCst), 0, "both failures fired");
    assert!(path.join("wal").join(wal_segment_name(2)).exists(), "the leftover segment is there");
    store.store(2, &vector(2, 0, 4)).expect("writes continue on the old segment");
    store.checkpoint().expect("a later checkpoint removes the leftover and succeeds");
    store.store(3, &vector(3, 0, 4)).expect("store");
    drop(store);
    let reopened = open(&path, &opts);
    assert_eq!(reopened.len(), 3);
    reopened.close().expect("close");
}

// Proves a missing WAL segment named by the manifest is damage even when the
// checkpoint covers no batch (checkpoint_lsn 0 with a snapshot): batches
// logged after that checkpoint were in it. Before the fix such a store
// opened empty, silently.
#[test]
fn missing_manifest_segment_after_an_empty_checkpoint_is_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let store: VectorStore<f32> = open(&path, &small(4));
    store.checkpoint().expect("checkpoint of the empty store");
    let batch: Vec<(u64, Vec<f32>)> = (0..10).map(|id| (id, vector(id, 0, 4))).collect();
    store.store_batch(&refs(&batch)).expect("store");
    drop(store);
    let wal = path.join("wal");
    let logged = wal.join(wal_segment_name(2));
    assert!(logged.exists(), "the checkpoint started segment 2: {:?}", names_in(&wal));
    std::fs::remove_file(&logged).expect("remove the segment");
    match small(4).open::<f32>(&path) {
        Err(Error::Corrupted { reason, .. }) => assert!(reason.contains("missing"), "{reason}"),
        Err(e) => panic!("expected Corrupted, got {e}"),
        Ok(s) => panic!("opened silently with {} of the 10 logged vectors", s.len()),
    }
}
