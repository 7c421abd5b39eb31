//! Random operation sequences with compactions, against a `BTreeMap` model:
//! the store equals the model after every operation, after every compaction
//! and after every reopen, and a guard taken before a compaction reads the
//! same bytes after it.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use quiver_storage::{Durability, StoreOptions, VectorStore};

const DIM: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    Store(u64, u16),
    Batch(Vec<(u64, u16)>),
    Delete(u64),
    Compact,
    CompactHoldingGuard(u64),
    Checkpoint,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..48u64, any::<u16>()).prop_map(|(id, v)| Op::Store(id, v)),
        2 => prop::collection::vec((0..48u64, any::<u16>()), 1..12).prop_map(Op::Batch),
        3 => (0..48u64).prop_map(Op::Delete),
        2 => Just(Op::Compact),
        1 => (0..48u64).prop_map(Op::CompactHoldingGuard),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Reopen),
    ]
}

fn vector(id: u64, v: u16) -> Vec<f32> {
    (0..DIM as u64).map(|i| (id * 100_000 + u64::from(v) * 4 + i) as f32).collect()
}

fn options(durability: Durability) -> StoreOptions {
    StoreOptions::new(DIM)
        .durability(durability)
        .initial_file_bytes(16 << 10)
        .growth_step_bytes(16 << 10, 256 << 10)
        .checkpoint_wal_bytes(8 << 10)
}

fn check(store: &VectorStore<f32>, model: &BTreeMap<u64, Vec<f32>>) {
    assert_eq!(store.len(), model.len());
    let mut ids = store.ids();
    ids.sort_unstable();
    assert_eq!(ids, model.keys().copied().collect::<Vec<_>>());
    for id in 0..48u64 {
        assert_eq!(store.retrieve(id).as_ref(), model.get(&id), "id {id}");
    }
}

fn run(path: &Path, durability: Durability, ops: &[Op]) {
    let opts = options(durability);
    let mut store: VectorStore<f32> = opts.open(path).expect("open");
    let mut model = BTreeMap::new();
    for op in ops {
        match op {
            Op::Store(id, v) => {
                store.store(*id, &vector(*id, *v)).expect("store");
                model.insert(*id, vector(*id, *v));
            }
            Op::Batch(items) => {
                let vectors: Vec<(u64, Vec<f32>)> = items.iter().map(|&(id, v)| (id, vector(id, v))).collect();
                let refs: Vec<(u64, &[f32])> = vectors.iter().map(|(id, v)| (*id, &v[..])).collect();
                store.store_batch(&refs).expect("batch");
                for (id, v) in vectors {
                    model.insert(id, v);
                }
            }
            Op::Delete(id) => {
                assert_eq!(store.delete(*id).expect("delete"), model.remove(id).is_some());
            }
            Op::Compact => {
                quiver_compaction::compact(&store).expect("compact");
            }
            Op::CompactHoldingGuard(id) => {
                let guard = store.get(*id);
                let before = guard.as_ref().map(|g| g.to_vec());
                quiver_compaction::compact(&store).expect("compact");
                assert_eq!(guard.as_ref().map(|g| g.to_vec()), before, "a guard changed across compaction");
            }
            Op::Checkpoint => store.checkpoint().expect("checkpoint"),
            Op::Reopen => {
                drop(store);
                store = opts.open(path).expect("reopen");
            }
        }
        check(&store, &model);
    }
    store.close().expect("close");
    let store: VectorStore<f32> = opts.open(path).expect("final reopen");
    check(&store, &model);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    // Proves model equality with compactions interleaved, at the default
    // durability.
    #[test]
    fn compaction_keeps_the_model_buffered(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().expect("tempdir");
        run(&dir.path().join("s"), Durability::Buffered, &ops);
    }

    // Proves the same at `Sync`, where batches become visible only after
    // their shared sync.
    #[test]
    fn compaction_keeps_the_model_sync(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().expect("tempdir");
        run(&dir.path().join("s"), Durability::Sync, &ops);
    }

    // Proves the same at `Deferred`, where frames sit in a user-space buffer
    // until a checkpoint or switch writes them.
    #[test]
    fn compaction_keeps_the_model_deferred(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().expect("tempdir");
        run(&dir.path().join("s"), Durability::Deferred, &ops);
    }
}
