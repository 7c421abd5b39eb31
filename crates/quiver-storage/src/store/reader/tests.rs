//! Unit tests of the follower's WAL walk that need the writer to act at one
//! exact instant inside a `refresh`, through the test-only hook in
//! `reader::hooks`. The integration tests in `tests/it/follower.rs` cover the
//! same rules from the outside, with real threads.

use std::sync::Arc;

use super::{RefreshOutcome, VectorReader, hooks};
use crate::{StoreOptions, VectorStore};

const DIM: usize = 4;

fn vector(id: u64) -> Vec<f32> {
    (0..DIM).map(|i| (id * 10 + i as u64) as f32).collect()
}

fn sorted_ids(reader: &VectorReader<f32>) -> Vec<u64> {
    let mut ids = reader.ids();
    ids.sort_unstable();
    ids
}

// Proves the race behind the rotation stall is closed: the writer appends a
// frame to segment N and rotates to N+1 right after a refresh has read N,
// and that same refresh still applies the frame (it reads N again, to its
// final end, once N+1 exists) and then continues into N+1 — without a
// reload, and without skipping anything. The old walk read N once, saw N+1,
// moved on, met a later LSN there and stopped on every refresh after.
#[test]
fn refresh_reads_a_segment_to_its_end_before_moving_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    let opts = StoreOptions::new(DIM);
    let writer: Arc<VectorStore<f32>> = Arc::new(opts.open(&path).expect("open the writer"));
    writer.store(1, &vector(1)).expect("store 1");
    let reader: VectorReader<f32> = opts.open_reader(&path).expect("open the reader");
    writer.store(2, &vector(2)).expect("store 2");

    let w = Arc::clone(&writer);
    hooks::once_after_segment_read(move |_segment| {
        // Logged into segment N after the reader's read of it...
        w.store(3, &vector(3)).expect("store 3");
        // ...then N is finished: the checkpoint creates N+1 ...
        w.checkpoint().expect("checkpoint");
        // ... and the next batch goes there.
        w.store(4, &vector(4)).expect("store 4");
    });
    let outcome = reader.refresh().expect("refresh");
    assert_eq!(sorted_ids(&reader), vec![1, 2, 3, 4], "the refresh skipped frames at the rotation");
    assert_eq!(outcome, RefreshOutcome { batches_applied: 3, reloaded: false });
    for id in 1..=4 {
        assert_eq!(reader.retrieve(id), Some(vector(id)), "id {id}");
    }
    // And the reader keeps following the new segment.
    writer.store(5, &vector(5)).expect("store 5");
    assert_eq!(reader.refresh().expect("refresh").batches_applied, 1);
    assert_eq!(reader.retrieve(5), Some(vector(5)));
}
