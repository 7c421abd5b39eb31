//! A failure at every durability step of compaction, followed by a crash
//! (the store is dropped with the step and every later one failing, then
//! reopened without faults): the store reopens with exactly its contents,
//! in either the old or the new generation, with no leftover files.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use quiver_storage::io::{FaultAction, FaultInjector, IoStep};
use quiver_storage::{StoreOptions, VectorStore};

/// Counts steps while armed and fails the `fail_at`-th and every later one.
#[derive(Debug, Default)]
struct CrashAt {
    armed: AtomicBool,
    seen: AtomicU64,
    fail_at: AtomicU64,
    enospc: AtomicBool,
}

impl FaultInjector for CrashAt {
    fn before(&self, step: IoStep<'_>) -> FaultAction {
        if !self.armed.load(Ordering::SeqCst) {
            return FaultAction::Proceed;
        }
        if self.enospc.load(Ordering::SeqCst) {
            // A full disk fails allocations, not unlinks or syncs.
            return match step {
                IoStep::Allocate { .. } => FaultAction::Fail(io::Error::from_raw_os_error(28)),
                _ => FaultAction::Proceed,
            };
        }
        let n = self.seen.fetch_add(1, Ordering::SeqCst);
        if n >= self.fail_at.load(Ordering::SeqCst) {
            return FaultAction::Fail(io::Error::from_raw_os_error(5));
        }
        FaultAction::Proceed
    }
}

fn vector(id: u64) -> Vec<f32> {
    (0..4).map(|i| (id * 10 + i) as f32).collect()
}

fn populate(store: &VectorStore<f32>) -> BTreeMap<u64, Vec<f32>> {
    let mut model = BTreeMap::new();
    for id in 0..300u64 {
        store.store(id, &vector(id)).expect("store");
        model.insert(id, vector(id));
    }
    for id in (0..300u64).step_by(3) {
        store.delete(id).expect("delete");
        model.remove(&id);
    }
    model
}

fn files(dir: &std::path::Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

// Proves every crash point of a compaction (each durability step failing,
// then the process "dying") leaves a store that reopens with exactly the
// model, one data file, one snapshot and no temporary files.
#[test]
fn crash_after_every_compaction_step() {
    // Count the steps of one compaction.
    let total = {
        let dir = tempfile::tempdir().expect("tempdir");
        let faults = Arc::new(CrashAt { fail_at: AtomicU64::new(u64::MAX), ..Default::default() });
        let store: VectorStore<f32> =
            StoreOptions::new(4).fault_injector(faults.clone()).open(dir.path().join("s")).expect("open");
        populate(&store);
        faults.armed.store(true, Ordering::SeqCst);
        quiver_compaction::compact(&store).expect("compact");
        faults.seen.load(Ordering::SeqCst)
    };
    assert!(total >= 8, "a compaction takes at least 8 durability steps, saw {total}");
    let mut new_generation = 0;
    for fail_at in 0..=total {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        let faults = Arc::new(CrashAt { fail_at: AtomicU64::new(fail_at), ..Default::default() });
        let (model, compacted) = {
            let store: VectorStore<f32> =
                StoreOptions::new(4).fault_injector(faults.clone()).open(&path).expect("open");
            let model = populate(&store);
            store.checkpoint().expect("checkpoint");
            faults.armed.store(true, Ordering::SeqCst);
            // Failures after the manifest rename are cleanup and do not fail
            // the compaction; a compaction that reported success must be the
            // generation found after the crash.
            (model, quiver_compaction::compact(&store).is_ok())
        };
        let store: VectorStore<f32> = StoreOptions::new(4).open(&path).expect("reopen");
        assert_eq!(store.len(), model.len(), "crash at step {fail_at}");
        for (id, v) in &model {
            assert_eq!(store.retrieve(*id).as_ref(), Some(v), "crash at step {fail_at}, id {id}");
        }
        let names = files(&path);
        assert_eq!(names.iter().filter(|n| n.ends_with(".qvd")).count(), 1, "step {fail_at}: {names:?}");
        assert!(names.iter().filter(|n| n.ends_with(".qvs")).count() <= 1, "step {fail_at}: {names:?}");
        assert!(!names.iter().any(|n| n.ends_with(".tmp")), "step {fail_at}: {names:?}");
        let in_new = names.contains(&"data-00000002.qvd".to_string());
        assert!(!compacted || in_new, "step {fail_at}: a successful compaction was lost: {names:?}");
        new_generation += usize::from(in_new);
    }
    println!("{} crash points, {new_generation} recovered into the new generation", total + 1);
    assert!(new_generation > 0 && new_generation <= total as usize, "{new_generation}");
}

// Proves ENOSPC while reserving the new generation is an error, the old
// generation stays in use and writable, and no file of the new one is left.
#[test]
fn enospc_during_compaction_leaves_the_old_generation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s");
    let faults = Arc::new(CrashAt { fail_at: AtomicU64::new(0), ..Default::default() });
    faults.enospc.store(true, Ordering::SeqCst);
    let store: VectorStore<f32> = StoreOptions::new(4).fault_injector(faults.clone()).open(&path).expect("open");
    let model = populate(&store);
    let before = files(&path);
    faults.armed.store(true, Ordering::SeqCst);
    let err = quiver_compaction::compact(&store).expect_err("no space");
    faults.armed.store(false, Ordering::SeqCst);
    assert_eq!(err.raw_os_error(), Some(28), "{err}");
    assert_eq!(files(&path), before);
    store.store(1000, &vector(1000)).expect("still writable");
    for (id, v) in &model {
        assert_eq!(store.retrieve(*id).as_ref(), Some(v));
    }
    quiver_compaction::compact(&store).expect("compacts once space is back");
    assert_eq!(store.len(), model.len() + 1);
}

fn scratch() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().expect("tempdir")
}

// Proves a power cut after every step of a compaction (with unsynced pages
// lost, or surviving torn) leaves either the old or the new generation,
// complete: the store reopens with exactly the model, a compaction that
// reported success is never undone, and no leftover file remains.
#[test]
fn power_cut_at_every_compaction_step() {
    use quiver_storage::io::sim::{PowerCut, Survivors};
    let opts = || StoreOptions::new(4).initial_file_bytes(8192).growth_step_bytes(4096, 65536);
    let total = {
        let root = scratch();
        let sim = Arc::new(PowerCut::new(root.path(), None).expect("sim"));
        let store: VectorStore<f32> = opts().fault_injector(sim.clone()).open(root.path().join("s")).expect("open");
        populate(&store);
        store.flush().expect("flush");
        let before = sim.steps();
        quiver_compaction::compact(&store).expect("compact");
        (before, sim.steps())
    };
    let mut images = 0;
    for cut_after in total.0..=total.1 {
        for survivors in [Survivors::None, Survivors::Torn(cut_after)] {
            let root = scratch();
            let sim = Arc::new(PowerCut::new(root.path(), Some(cut_after)).expect("sim"));
            let (model, compacted) = {
                let store: VectorStore<f32> =
                    opts().fault_injector(sim.clone()).open(root.path().join("s")).expect("open");
                let model = populate(&store);
                store.flush().expect("flush before the cut");
                (model, quiver_compaction::compact(&store).is_ok())
            };
            let image = scratch();
            sim.materialize(image.path(), survivors).expect("materialize");
            let path = image.path().join("s");
            let what = format!("cut after step {cut_after} ({} .. {}), {survivors:?}", total.0, total.1);
            let store: VectorStore<f32> = opts().open(&path).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(store.len(), model.len(), "{what}");
            for (id, v) in &model {
                assert_eq!(store.retrieve(*id).as_ref(), Some(v), "{what}: id {id}");
            }
            let names = files(&path);
            assert_eq!(names.iter().filter(|n| n.ends_with(".qvd")).count(), 1, "{what}: {names:?}");
            assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{what}: {names:?}");
            let in_new = names.contains(&"data-00000002.qvd".to_string());
            assert!(!compacted || in_new, "{what}: an acknowledged compaction was undone");
            assert!(store.verify().expect("verify").problems.is_empty(), "{what}");
            images += 1;
        }
    }
    println!("{} compaction crash points, {images} images recovered", total.1 - total.0 + 1);
}
