//! The basic promises end to end: store, overwrite, delete, reopen.

use crate::common::*;
use quiver_storage::{Durability, SnapshotOutcome};

// Proves writes survive a drop without close (WAL replay) and a clean close
// (snapshot, no replay), at every durability level.
#[test]
fn writes_survive_reopen_at_every_level() {
    for level in [Durability::Sync, Durability::Buffered, Durability::Deferred] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = store_path(&dir);
        let opts = small(8).durability(level);
        {
            let s = open(&path, &opts);
            for id in 0..200u64 {
                s.store(id, &vector(id, 0, 8)).expect("store");
            }
            let batch: Vec<(u64, Vec<f32>)> = (200..400).map(|id| (id, vector(id, 1, 8))).collect();
            let refs: Vec<(u64, &[f32])> = batch.iter().map(|(i, v)| (*i, &v[..])).collect();
            assert_eq!(s.store_batch(&refs).expect("batch"), 200);
            s.store(5, &vector(5, 9, 8)).expect("overwrite");
            assert!(s.delete(6).expect("delete"));
            assert!(!s.delete(6).expect("delete again"));
            assert_eq!(s.len(), 399);
            s.flush().expect("flush");
        }
        {
            let s = open(&path, &opts);
            assert!(s.recovery_report().batches_replayed > 0, "{level:?}");
            assert_eq!(s.len(), 399);
            assert_eq!(s.retrieve(5), Some(vector(5, 9, 8)));
            assert_eq!(s.retrieve(6), None);
            assert_eq!(s.retrieve(300), Some(vector(300, 1, 8)));
            s.close().expect("close");
        }
        let s = open(&path, &opts);
        assert_eq!(s.recovery_report().batches_replayed, 0);
        assert!(matches!(s.recovery_report().snapshot, SnapshotOutcome::Loaded { entries: 399 }));
        assert_eq!(s.retrieve(7), Some(vector(7, 0, 8)));
    }
}
