//! Batches with duplicate ids (seed defect 6: a leaked slot) and the
//! counters of `metrics()`: they match the operations performed and the byte
//! accounting adds up.

use quiver_storage::format::{DATA_HEADER_BYTES, record_size_bytes};
use quiver_storage::{DEFAULT_INLINE_BATCH_MAX_BYTES, Durability};

use super::refs;
use crate::common::{open, small, store_path, vector};

// Proves that in one batch the last occurrence of an id wins, the count is
// the number of distinct ids, and no slot leaks (garbage_bytes stays 0), for
// batches logged inline and for batches logged as locations, and across a
// reopen.
#[test]
fn duplicate_ids_in_a_batch_last_wins_and_leak_no_slot() {
    let record = u64::from(record_size_bytes(4, 4));
    for inline_max in [DEFAULT_INLINE_BATCH_MAX_BYTES, 1] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = store_path(&dir);
        let opts = small(4).inline_batch_max_bytes(inline_max);
        {
            let s = open(&path, &opts);
            let pairs: Vec<(u64, Vec<f32>)> = [(1, 0), (2, 0), (1, 1), (3, 0), (2, 1), (1, 2)]
                .iter()
                .map(|&(id, v)| (id, vector(id, v, 4)))
                .collect();
            assert_eq!(s.store_batch(&refs(&pairs)).expect("batch"), 3, "inline max {inline_max}");
            assert_eq!(s.retrieve(1), Some(vector(1, 2, 4)));
            assert_eq!(s.retrieve(2), Some(vector(2, 1, 4)));
            assert_eq!(s.retrieve(3), Some(vector(3, 0, 4)));
            let m = s.metrics();
            assert_eq!(m.garbage_bytes, 0, "a duplicate leaked a slot (inline max {inline_max})");
            assert_eq!(m.live_bytes, 3 * record);
            assert_eq!(m.committed_bytes, DATA_HEADER_BYTES + 3 * record);
            assert_eq!(m.vectors_stored, 3);
        }
        let s = open(&path, &opts);
        assert_eq!(s.len(), 3);
        assert_eq!(s.retrieve(1), Some(vector(1, 2, 4)));
        assert_eq!(s.retrieve(2), Some(vector(2, 1, 4)));
        assert_eq!(s.metrics().garbage_bytes, 0, "after reopen (inline max {inline_max})");
    }
}

// Proves metrics() counts what was done: stores, batches, deletes (a delete
// of an absent id counts nothing), live and garbage bytes that add up to the
// committed records, WAL syncs and sync latency after a flush at Buffered,
// checkpoints, and growth events with their latency.
#[test]
fn metrics_match_the_operations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let s = open(&path, &small(4).durability(Durability::Buffered));
    let record = u64::from(record_size_bytes(4, 4));

    for id in 0..10 {
        s.store(id, &vector(id, 0, 4)).expect("store");
    }
    let pairs: Vec<(u64, Vec<f32>)> = [8, 9, 10, 11, 8].iter().map(|&id| (id, vector(id, 1, 4))).collect();
    assert_eq!(s.store_batch(&refs(&pairs)).expect("batch"), 4);
    for id in 0..3 {
        assert!(s.delete(id).expect("delete"));
    }
    assert!(!s.delete(50).expect("delete of an absent id"));

    let m = s.metrics();
    assert_eq!(m.live_vectors, 9);
    assert_eq!(m.vectors_stored, 14);
    assert_eq!(m.vectors_deleted, 3);
    assert_eq!(m.batches_committed, 14, "10 stores, 1 batch, 3 deletes; the absent delete writes nothing");
    assert_eq!(m.commit_latency.count, 14);
    // 10 + 4 puts and 3 tombstones.
    assert_eq!(m.committed_bytes, DATA_HEADER_BYTES + 17 * record);
    assert_eq!(m.live_bytes, 9 * record);
    assert_eq!(m.garbage_bytes, 8 * record, "2 overwritten, 3 deleted, 3 tombstones");
    assert_eq!(m.live_bytes + m.garbage_bytes + DATA_HEADER_BYTES, m.committed_bytes);
    assert!(m.file_bytes >= m.committed_bytes);
    assert!(m.wal_bytes > 0);
    assert_eq!(m.checkpoints, 0);

    s.flush().expect("flush");
    let m = s.metrics();
    assert!(m.wal_syncs >= 1, "{m:?}");
    assert!(m.sync_latency.count > 0, "no sync latency after flush: {m:?}");
    assert!(m.sync_latency.max >= m.sync_latency.p50);

    s.checkpoint().expect("checkpoint");
    assert_eq!(s.metrics().checkpoints, 1);

    let growth_before = s.metrics().growth_events;
    let capacity = (s.metrics().file_bytes - DATA_HEADER_BYTES) / record;
    for id in 100..100 + capacity + 10 {
        s.store(id, &vector(id, 0, 4)).expect("store");
    }
    let m = s.metrics();
    assert!(m.growth_events > growth_before, "{m:?}");
    assert_eq!(m.growth_latency.count, m.growth_events);
    assert_eq!(m.live_vectors, s.len() as u64);
    assert_eq!(m.live_bytes + m.garbage_bytes + DATA_HEADER_BYTES, m.committed_bytes);
    assert!(m.file_bytes >= m.committed_bytes);
}
