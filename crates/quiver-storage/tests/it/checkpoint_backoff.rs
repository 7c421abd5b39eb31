//! A failing automatic checkpoint (here: the snapshot cannot be created, as
//! on a full disk) must not be retried, with its syncs and its O(n)
//! snapshot, on every write: it backs off by a threshold's worth of WAL, the
//! writes all succeed, and the failures are counted in the metrics.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::common::*;
use quiver_storage::io::{FaultAction, FaultInjector, IoStep};

#[derive(Debug, Default)]
struct NoSnapshots {
    refusing: AtomicBool,
    refused: AtomicU64,
}

impl FaultInjector for NoSnapshots {
    fn before(&self, step: IoStep<'_>) -> FaultAction {
        match step {
            IoStep::Create { path }
                if self.refusing.load(Ordering::SeqCst) && path.to_string_lossy().contains("snapshot-") =>
            {
                self.refused.fetch_add(1, Ordering::SeqCst);
                FaultAction::Fail(io::Error::from_raw_os_error(28))
            }
            _ => FaultAction::Proceed,
        }
    }
}

// Proves the backoff: 2,000 writes past a 4 KiB threshold with every
// snapshot refused attempt a checkpoint about once per 4 KiB of WAL, not
// once per write; once snapshots work again, the next one succeeds.
#[test]
fn failing_automatic_checkpoints_back_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let faults = Arc::new(NoSnapshots::default());
    let opts = small(8).checkpoint_wal_bytes(4096).fault_injector(faults.clone());
    let s = open(&store_path(&dir), &opts);
    faults.refusing.store(true, Ordering::SeqCst);
    for id in 0..2000u64 {
        s.store(id, &vector(id, 0, 8)).expect("a write succeeds whatever its checkpoint does");
    }
    let m = s.metrics();
    let attempts = faults.refused.load(Ordering::SeqCst);
    let expected = m.wal_bytes / 4096;
    println!("{attempts} refused checkpoints for {} WAL bytes", m.wal_bytes);
    assert_eq!(m.checkpoint_failures, attempts);
    assert!(attempts >= 2 && attempts <= expected + 2, "{attempts} attempts for {} WAL bytes", m.wal_bytes);
    faults.refusing.store(false, Ordering::SeqCst);
    s.checkpoint().expect("a checkpoint works again");
    assert!(s.metrics().wal_bytes < 4096);
}
