//! Property test: random sequences of stores, batches (with duplicate ids),
//! deletes, checkpoints, flushes and reopens (after `close` and after a drop
//! without `close`) leave the store equal to a `BTreeMap` model after every
//! operation and every reopen, at every durability level.
//!
//! Ids come from a small range so overwrites, deletes and batch duplicates
//! collide, and the WAL checkpoint threshold is tiny so automatic
//! checkpoints happen mid-sequence. The run prints its seed; set
//! `QUIVER_TEST_SEED=<n>` to replay one.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use quiver_storage::{Durability, StoreOptions, VectorStore};

use crate::common::{small, store_path, vector};

const DIM: usize = 3;
const ID_RANGE: u64 = 64;
const CASES: u32 = 48;
const MAX_OPS: usize = 80;
/// WAL bytes that trigger an automatic checkpoint: small enough that
/// sequences cross it between explicit checkpoints and reopens.
const CHECKPOINT_WAL_BYTES: u64 = 1 << 10;

/// One step of a generated workload.
#[derive(Clone, Debug)]
enum Op {
    Store(u64, u64),
    /// `(id, version)` pairs; ids may repeat, the last occurrence wins.
    Batch(Vec<(u64, u64)>),
    Delete(u64),
    Checkpoint,
    Flush,
    ReopenAfterClose,
    ReopenAfterDrop,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0..ID_RANGE, 0..1000u64).prop_map(|(id, v)| Op::Store(id, v)),
        5 => prop::collection::vec((0..ID_RANGE, 0..1000u64), 0..24).prop_map(Op::Batch),
        5 => (0..ID_RANGE).prop_map(Op::Delete),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Flush),
        1 => Just(Op::ReopenAfterClose),
        1 => Just(Op::ReopenAfterDrop),
    ]
}

use crate::common::test_seed;

fn chacha_seed(seed: u64) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_exact_mut(8).enumerate() {
        let word = seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    bytes
}

fn fail(what: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(what.to_string())
}

fn open_store(path: &Path, opts: &StoreOptions) -> Result<VectorStore<f32>, TestCaseError> {
    opts.open(path).map_err(|e| fail(format!("open {}: {e}", path.display())))
}

/// Every read the store offers agrees with the model.
fn check(store: &VectorStore<f32>, model: &BTreeMap<u64, Vec<f32>>, when: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(store.len(), model.len(), "len after {}", when);
    prop_assert_eq!(store.is_empty(), model.is_empty(), "is_empty after {}", when);
    for id in 0..ID_RANGE {
        let want = model.get(&id).cloned();
        prop_assert_eq!(store.contains(id), want.is_some(), "contains({}) after {}", id, when);
        prop_assert_eq!(store.retrieve(id), want.clone(), "retrieve({}) after {}", id, when);
        prop_assert_eq!(store.get(id).map(|g| g.to_vec()), want, "get({}) after {}", id, when);
    }
    let mut ids = store.ids();
    ids.sort_unstable();
    let want: Vec<u64> = model.keys().copied().collect();
    prop_assert_eq!(ids, want, "ids() after {}", when);
    Ok(())
}

/// Runs one generated sequence against a fresh store and the model.
/// `auto_checkpoints` counts checkpoints that writes triggered by
/// themselves, so the run can show the threshold was actually crossed.
fn run_case(level: Durability, ops: &[Op], auto_checkpoints: &AtomicU64) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(fail)?;
    let path = store_path(&dir);
    let opts = small(DIM).durability(level).checkpoint_wal_bytes(CHECKPOINT_WAL_BYTES);
    let mut store = Some(open_store(&path, &opts)?);
    let mut model: BTreeMap<u64, Vec<f32>> = BTreeMap::new();
    for (step, op) in ops.iter().enumerate() {
        let when = format!("step {step} {op:?}");
        let s = store.as_ref().expect("the store is open between steps");
        let checkpoints_before = s.metrics().checkpoints;
        let is_write = matches!(op, Op::Store(..) | Op::Batch(_) | Op::Delete(_));
        match op {
            Op::Store(id, version) => {
                let v = vector(*id, *version, DIM);
                s.store(*id, &v).map_err(|e| fail(format!("{when}: {e}")))?;
                model.insert(*id, v);
            }
            Op::Batch(pairs) => {
                let vectors: Vec<(u64, Vec<f32>)> = pairs.iter().map(|&(id, ver)| (id, vector(id, ver, DIM))).collect();
                let refs: Vec<(u64, &[f32])> = vectors.iter().map(|(id, v)| (*id, &v[..])).collect();
                let stored = s.store_batch(&refs).map_err(|e| fail(format!("{when}: {e}")))?;
                let mut distinct: Vec<u64> = pairs.iter().map(|p| p.0).collect();
                distinct.sort_unstable();
                distinct.dedup();
                prop_assert_eq!(stored, distinct.len(), "store_batch count at {}", when);
                // Later occurrences overwrite earlier ones: the last one wins.
                for (id, v) in vectors {
                    model.insert(id, v);
                }
            }
            Op::Delete(id) => {
                let existed = s.delete(*id).map_err(|e| fail(format!("{when}: {e}")))?;
                prop_assert_eq!(existed, model.remove(id).is_some(), "delete's result at {}", when);
            }
            Op::Checkpoint => s.checkpoint().map_err(|e| fail(format!("{when}: {e}")))?,
            Op::Flush => s.flush().map_err(|e| fail(format!("{when}: {e}")))?,
            Op::ReopenAfterClose => {
                let s = store.take().expect("open");
                s.close().map_err(|e| fail(format!("{when}: close: {e}")))?;
                store = Some(open_store(&path, &opts)?);
            }
            Op::ReopenAfterDrop => {
                drop(store.take());
                store = Some(open_store(&path, &opts)?);
            }
        }
        let s = store.as_ref().expect("open");
        if is_write && s.metrics().checkpoints > checkpoints_before {
            auto_checkpoints.fetch_add(1, Ordering::Relaxed);
        }
        check(s, &model, &when)?;
    }
    // A final reopen after a drop without close must also agree.
    drop(store.take());
    let s = open_store(&path, &opts)?;
    check(&s, &model, "the final reopen")?;
    s.close().map_err(|e| fail(format!("final close: {e}")))?;
    Ok(())
}

fn run_level(level: Durability) {
    let seed = test_seed();
    println!("model_proptest {level:?}: seed {seed} (replay with QUIVER_TEST_SEED={seed})");
    let config = Config { cases: CASES, failure_persistence: None, max_shrink_iters: 512, ..Config::default() };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &chacha_seed(seed));
    let mut runner = TestRunner::new_with_rng(config, rng);
    let strategy = prop::collection::vec(op_strategy(), 1..MAX_OPS);
    let auto_checkpoints = AtomicU64::new(0);
    if let Err(e) = runner.run(&strategy, |ops| run_case(level, &ops, &auto_checkpoints)) {
        panic!("model_proptest {level:?} failed with QUIVER_TEST_SEED={seed}: {e}");
    }
    let auto = auto_checkpoints.load(Ordering::Relaxed);
    println!("model_proptest {level:?}: {CASES} cases, {auto} automatic checkpoints");
    assert!(auto > 0, "no write crossed the WAL threshold; the test no longer covers automatic checkpoints");
}

// Proves that at `Durability::Sync` every operation sequence, including
// reopens after close and after a plain drop, matches the BTreeMap model.
#[test]
fn model_matches_at_sync() {
    run_level(Durability::Sync);
}

// Proves the same at `Durability::Buffered` (the default level).
#[test]
fn model_matches_at_buffered() {
    run_level(Durability::Buffered);
}

// Proves the same at `Durability::Deferred`: in one process, a drop without
// close writes the buffered frames out, so nothing acknowledged is lost.
#[test]
fn model_matches_at_deferred() {
    run_level(Durability::Deferred);
}
