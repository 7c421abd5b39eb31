//! The snapshot a handle lends its `get` views from, reused until the next
//! write (or refresh) so that a run of reads takes one snapshot, not one
//! per read (each live snapshot makes the next write copy the index shards
//! it touches; see `quiver::Snapshot`).

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::snapshot::AnySnapshot;

/// A snapshot tagged with the write count it was taken after.
#[derive(Default)]
pub(crate) struct SnapshotCache {
    writes: AtomicU64,
    current: Mutex<Option<(u64, AnySnapshot)>>,
}

impl SnapshotCache {
    /// The cached snapshot if no write happened since it was taken, else a
    /// new one from `take`. A snapshot taken after reading the write count
    /// holds every write that count covers, so a thread always reads its
    /// own writes.
    pub(crate) fn get(&self, take: impl FnOnce() -> AnySnapshot) -> AnySnapshot {
        let writes = self.writes.load(Ordering::Acquire);
        if let Some((at, snapshot)) = &*self.current.lock()
            && *at == writes
        {
            return snapshot.clone();
        }
        let snapshot = take();
        *self.current.lock() = Some((writes, snapshot.clone()));
        snapshot
    }

    /// Called after every write: the cached snapshot is stale, and dropped
    /// at once so that it costs later writes no copy-on-write.
    pub(crate) fn invalidate(&self) {
        self.writes.fetch_add(1, Ordering::AcqRel);
        self.current.lock().take();
    }
}
