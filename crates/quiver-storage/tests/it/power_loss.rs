//! Power-loss crash matrices: a seeded workload runs under the
//! `io::sim::PowerCut` simulator, the power is cut after step N for every N
//! the workload takes (store creation, writes, growth, checkpoints), and the
//! durable image — with unsynced pages lost, or surviving torn and out of
//! order — is reopened by the real store.
//!
//! After every recovery: the store opens; it equals the model at some point
//! between the last write acknowledged as durable and the last write issued
//! (so nothing durable is lost, batches are all-or-nothing and nothing
//! deleted returns); `verify` finds every index entry on a checksum-valid
//! record; no temporary file is left; a second writer gets `Locked`.
//!
//! `QUIVER_TEST_SEED` replays one seed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use quiver_storage::io::sim::{PowerCut, Survivors};
use quiver_storage::{Durability, Error, StoreOptions, VectorStore};

const DIM: usize = 4;
const IDS: u64 = 12;

type Model = BTreeMap<u64, Vec<f32>>;

#[derive(Clone, Debug)]
enum Op {
    Store(u64, u32),
    Batch(Vec<(u64, u32)>),
    Delete(u64),
    Flush,
    Checkpoint,
}

fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn workload(mut seed: u64, len: usize) -> Vec<Op> {
    let mut version = 0u32;
    (0..len)
        .map(|_| {
            version += 1;
            match rng(&mut seed) % 10 {
                0..=3 => Op::Store(rng(&mut seed) % IDS, version),
                4..=5 => {
                    // Batches above the inline limit log locations only.
                    let n = 1 + rng(&mut seed) % 6;
                    Op::Batch((0..n).map(|i| (rng(&mut seed) % IDS, version * 8 + i as u32)).collect())
                }
                6..=7 => Op::Delete(rng(&mut seed) % IDS),
                8 => Op::Flush,
                _ => Op::Checkpoint,
            }
        })
        .collect()
}

fn vector(id: u64, version: u32) -> Vec<f32> {
    (0..DIM as u64).map(|i| (id * 1_000_000 + u64::from(version) * 4 + i) as f32).collect()
}

fn options(level: Durability) -> StoreOptions {
    StoreOptions::new(DIM)
        .durability(level)
        .initial_file_bytes(4096 + 2 * 128)
        .growth_step_bytes(512, 4096)
        .inline_batch_max_bytes(3 * DIM * 4)
        .checkpoint_wal_bytes(1024)
}

/// Where crash images go: tmpfs when there is one (syncs are simulated, so
/// real ones would only cost time).
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().expect("tempdir")
}

/// Runs `ops` on a store under `sim`, returning the model after each op
/// (index 0: before any), the last op acknowledged as durable and the last
/// op issued.
fn run(root: &Path, level: Durability, ops: &[Op], sim: Arc<PowerCut>) -> (Vec<Model>, usize, usize) {
    run_from(root, level, ops, sim, Model::new())
}

/// `run`, on a store whose contents are `initial`.
fn run_from(
    root: &Path,
    level: Durability,
    ops: &[Op],
    sim: Arc<PowerCut>,
    initial: Model,
) -> (Vec<Model>, usize, usize) {
    let mut states = vec![initial];
    let mut durable = 0;
    let opened: Result<VectorStore<f32>, Error> = options(level).fault_injector(sim).open(root.join("store"));
    let Ok(store) = opened else {
        return (states, 0, 0);
    };
    for (i, op) in ops.iter().enumerate() {
        let k = i + 1;
        let mut model = states[k - 1].clone();
        let result = match op {
            Op::Store(id, v) => {
                model.insert(*id, vector(*id, *v));
                store.store(*id, &vector(*id, *v))
            }
            Op::Batch(items) => {
                let vs: Vec<(u64, Vec<f32>)> = items.iter().map(|&(id, v)| (id, vector(id, v))).collect();
                let refs: Vec<(u64, &[f32])> = vs.iter().map(|(id, v)| (*id, &v[..])).collect();
                for (id, v) in &vs {
                    model.insert(*id, v.clone());
                }
                store.store_batch(&refs).map(|_| ())
            }
            Op::Delete(id) => {
                model.remove(id);
                store.delete(*id).map(|_| ())
            }
            Op::Flush => store.flush(),
            Op::Checkpoint => store.checkpoint(),
        };
        states.push(model);
        match result {
            Ok(()) => {
                let acked_durable = match op {
                    Op::Flush | Op::Checkpoint => true,
                    _ => level == Durability::Sync,
                };
                if acked_durable {
                    durable = k;
                }
            }
            Err(_) => return (states, durable, k),
        }
    }
    let last = ops.len();
    drop(store);
    (states, durable, last)
}

/// Phase 1 at `Buffered` (its writes reach the page cache only), then a
/// process crash (drop without close), then phase 2 at `Sync` on the same
/// files, all under one simulator: the power may be cut in either phase or
/// during the recovery between them.
fn run_two_phase(root: &Path, first: &[Op], second: &[Op], sim: Arc<PowerCut>) -> (Vec<Model>, usize, usize) {
    let (mut states, mut durable, issued) = run(root, Durability::Buffered, first, Arc::clone(&sim));
    if issued < first.len() || sim.is_cut() {
        return (states, durable, issued);
    }
    let base = states.len() - 1;
    let (states2, durable2, issued2) = run_from(root, Durability::Sync, second, sim, states[base].clone());
    states.extend(states2.into_iter().skip(1));
    if durable2 > 0 {
        durable = base + durable2;
    }
    (states, durable, base + issued2)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in [dir.to_path_buf(), dir.join("wal")] {
        if let Ok(entries) = std::fs::read_dir(&sub) {
            out.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
        }
    }
    out
}

fn check_recovery(image: &Path, level: Durability, states: &[Model], durable: usize, issued: usize, what: &str) {
    let path = image.join("store");
    let store: VectorStore<f32> =
        options(level).open(&path).unwrap_or_else(|e| panic!("{what}: the crash image does not open: {e}"));
    let mut found: Model = Model::new();
    for id in store.ids() {
        found.insert(id, store.retrieve(id).unwrap_or_else(|| panic!("{what}: id {id} listed but absent")));
    }
    let matches: Vec<usize> = (durable..=issued).filter(|&k| states[k] == found).collect();
    assert!(
        !matches.is_empty(),
        "{what}: recovered state matches no model state between the last durable op {durable} and the last issued op {issued}\nfound: {found:?}\ndurable state: {:?}",
        states[durable]
    );
    let report = store.verify().unwrap_or_else(|e| panic!("{what}: verify failed: {e}"));
    assert!(report.problems.is_empty(), "{what}: {:?}", report.problems);
    let leftovers: Vec<_> = files(&path)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "tmp") || p.to_string_lossy().contains("quiver-new"))
        .collect();
    assert!(leftovers.is_empty(), "{what}: leftover files {leftovers:?}");
    assert!(
        matches!(options(level).open::<f32>(&path), Err(Error::Locked { .. })),
        "{what}: a second writer was not refused"
    );
}

fn matrix(level: Durability, seed: u64, ops_len: usize) -> (u64, u64) {
    let ops = workload(seed, ops_len);
    // Count the steps of an uninterrupted run.
    let total = {
        let root = scratch();
        let sim = Arc::new(PowerCut::new(root.path(), None).expect("sim"));
        run(root.path(), level, &ops, Arc::clone(&sim));
        sim.steps()
    };
    let mut images = 0;
    for cut_after in 0..=total {
        for survivors in [Survivors::None, Survivors::Torn(seed ^ cut_after.wrapping_mul(0x9E37_79B9))] {
            let root = scratch();
            let sim = Arc::new(PowerCut::new(root.path(), Some(cut_after)).expect("sim"));
            let (states, durable, issued) = run(root.path(), level, &ops, Arc::clone(&sim));
            let image = scratch();
            sim.materialize(image.path(), survivors).expect("materialize");
            let what = format!("{level:?}, seed {seed}, cut after step {cut_after} of {total}, {survivors:?}");
            check_recovery(image.path(), level, &states, durable, issued, &what);
            images += 1;
        }
    }
    (total, images)
}

fn seeds() -> Vec<u64> {
    match std::env::var("QUIVER_TEST_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => vec![0x5EED_0001, 0x5EED_0002],
    }
}

// Proves the contract of `Durability::Sync` at every crash point: each
// acknowledged write survives power loss.
#[test]
fn power_cut_at_every_step_sync() {
    for seed in seeds() {
        let (steps, images) = matrix(Durability::Sync, seed, 30);
        println!("Sync: seed {seed}: {steps} crash points, {images} images recovered");
    }
}

// Proves the contract of `Durability::Buffered`: writes acknowledged before
// a successful flush or checkpoint survive power loss; later ones may be
// lost, but only whole batches, in order.
#[test]
fn power_cut_at_every_step_buffered() {
    for seed in seeds() {
        let (steps, images) = matrix(Durability::Buffered, seed, 30);
        println!("Buffered: seed {seed}: {steps} crash points, {images} images recovered");
    }
}

// Proves the same for `Durability::Deferred`.
#[test]
fn power_cut_at_every_step_deferred() {
    for seed in seeds() {
        let (steps, images) = matrix(Durability::Deferred, seed, 30);
        println!("Deferred: seed {seed}: {steps} crash points, {images} images recovered");
    }
}

// Proves recovery makes what it replayed durable: phase 1 writes at
// `Buffered` without a flush and the process crashes; the store is reopened
// at `Sync` and acknowledges more writes; a power cut anywhere (in phase 1,
// in recovery, in phase 2) never loses a write acknowledged in phase 2, nor
// the phase 1 writes it was built on.
#[test]
fn power_cut_after_a_process_crash_and_recovery() {
    for seed in seeds() {
        let first: Vec<Op> =
            workload(seed, 16).into_iter().filter(|op| !matches!(op, Op::Flush | Op::Checkpoint)).collect();
        let second = workload(seed ^ 0xABCD, 12);
        let total = {
            let root = scratch();
            let sim = Arc::new(PowerCut::new(root.path(), None).expect("sim"));
            run_two_phase(root.path(), &first, &second, Arc::clone(&sim));
            sim.steps()
        };
        let mut images = 0;
        for cut_after in 0..=total {
            for survivors in [Survivors::None, Survivors::Torn(seed ^ cut_after)] {
                let root = scratch();
                let sim = Arc::new(PowerCut::new(root.path(), Some(cut_after)).expect("sim"));
                let (states, durable, issued) = run_two_phase(root.path(), &first, &second, Arc::clone(&sim));
                let image = scratch();
                sim.materialize(image.path(), survivors).expect("materialize");
                let what = format!("two phases, seed {seed}, cut after step {cut_after} of {total}, {survivors:?}");
                check_recovery(image.path(), Durability::Sync, &states, durable, issued, &what);
                images += 1;
            }
        }
        println!("two phases: seed {seed}: {total} crash points, {images} images recovered");
    }
}
