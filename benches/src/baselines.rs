//! What every comparison is measured against, and needs no peer engine:
//! Quiver's own durable bulk import and the physical baseline (a plain file
//! written sequentially and fsynced). Each `import` returns the time from
//! after the store is opened to when the whole data set is durable.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use quiver_storage::VectorStore;

use crate::{Dataset, time};

/// Quiver: opens a new store at `path` and imports `ds` durably.
pub fn quiver_import(path: &Path, ds: &Dataset) -> (Duration, VectorStore<f32>) {
    let store: VectorStore<f32> = VectorStore::open(path, ds.dim).expect("open quiver");
    let (t, ()) = time(|| {
        store.reserve_capacity(ds.count as usize).expect("reserve");
        for batch in ds.batches() {
            store.store_batch(&batch).expect("store_batch");
        }
        store.flush().expect("flush");
    });
    assert_eq!(store.len() as u64, ds.count);
    (t, store)
}

/// The physical baseline: the payload bytes of `ds`, written to a new plain
/// file at `path` one batch (3 MB at 768 × f32) per `write`, then `fsync`.
pub fn raw_import(path: &Path, ds: &Dataset) -> Duration {
    let mut f = File::create(path).expect("create raw file");
    let (t, ()) = time(|| {
        for b in 0..ds.batch_count() {
            f.write_all(ds.batch_bytes(b)).expect("write");
        }
        f.sync_all().expect("fsync");
    });
    t
}
