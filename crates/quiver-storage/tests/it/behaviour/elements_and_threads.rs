//! Every element type round-trips, and one store is shared by threads:
//! `VectorStore<T>` is `Send + Sync`, concurrent writers and readers end
//! with exactly the union of the writes, never showing a torn or
//! half-applied batch, and at `Durability::Sync` a reader sees a write only
//! once its fdatasync has returned.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use half::{bf16, f16};
use quiver_storage::io::{FaultAction, IoStep};
use quiver_storage::{Durability, Element, VectorStore};

use super::{XorShift, in_wal, injector, refs, test_seed};
use crate::common::{small, store_path, vector};

fn assert_send_sync<T: Send + Sync>() {}

// A compile-time proof: if VectorStore<T> stopped being Send + Sync for any
// element type, this test binary would not build.
const _: fn() = || {
    assert_send_sync::<VectorStore<f32>>();
    assert_send_sync::<VectorStore<f64>>();
    assert_send_sync::<VectorStore<u8>>();
    assert_send_sync::<VectorStore<i8>>();
    assert_send_sync::<VectorStore<f16>>();
    assert_send_sync::<VectorStore<bf16>>();
};

/// Stores, overwrites and deletes vectors of `T`, then checks them after a
/// drop-and-reopen (WAL replay) and after a close-and-reopen (snapshot).
fn round_trip<T: Element + PartialEq + Debug>(make: fn(u64, usize) -> T) {
    const DIM: usize = 5;
    let name = std::any::type_name::<T>();
    let v = |id: u64, version: u64| -> Vec<T> { (0..DIM).map(|i| make(id * 7 + version, i)).collect() };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let opts = small(DIM);
    let mut model: BTreeMap<u64, Vec<T>> = BTreeMap::new();
    {
        let s: VectorStore<T> = opts.open(&path).unwrap_or_else(|e| panic!("create a {name} store: {e}"));
        for id in 0..40 {
            s.store(id, &v(id, 0)).expect("store");
            model.insert(id, v(id, 0));
        }
        let batch: Vec<(u64, Vec<T>)> = (10..20).map(|id| (id, v(id, 1))).collect();
        s.store_batch(&refs(&batch)).expect("batch");
        model.extend(batch);
        for id in 0..5 {
            assert!(s.delete(id).expect("delete"));
            model.remove(&id);
        }
        assert_eq!(s.get(15).as_deref(), Some(&v(15, 1)[..]), "{name}");
    }
    for close in [false, true] {
        let s: VectorStore<T> = opts.open(&path).unwrap_or_else(|e| panic!("reopen the {name} store: {e}"));
        assert_eq!(s.len(), model.len(), "{name}");
        for id in 0..40 {
            assert_eq!(s.get(id).map(|g| g.to_vec()).as_ref(), model.get(&id), "{name} id {id}");
        }
        if close {
            s.close().expect("close");
        }
    }
}

// Proves f64, u8, i8, half::f16 and half::bf16 vectors (and f32) round-trip
// exactly through store, batch overwrite, delete, reopen after a drop and
// reopen after a close.
#[test]
fn every_element_type_round_trips() {
    round_trip::<f32>(|a, i| a as f32 * 0.5 - i as f32);
    round_trip::<f64>(|a, i| a as f64 * 0.25 - 3.0 + i as f64 * 1e-9);
    round_trip::<u8>(|a, i| (a.wrapping_mul(13) + i as u64) as u8);
    round_trip::<i8>(|a, i| (a.wrapping_mul(13) + i as u64) as u8 as i8);
    round_trip::<f16>(|a, i| f16::from_f32(a as f32 * 0.5 - i as f32));
    round_trip::<bf16>(|a, i| bf16::from_f32(a as f32 * 0.5 - i as f32));
}

/// What one writer thread did to its own ids.
fn writer_workload(s: &VectorStore<f32>, writer: u64, per_writer: u64) -> BTreeMap<u64, Vec<f32>> {
    let base = writer * 1_000_000;
    let mut model = BTreeMap::new();
    for k in 0..per_writer {
        let id = base + k;
        s.store(id, &vector(id, 0, 4)).expect("store");
        model.insert(id, vector(id, 0, 4));
        if k % 5 == 0 {
            // Version 1 is overwritten inside the same batch: no reader may
            // ever see it.
            let pairs = [(id, vector(id, 1, 4)), (id, vector(id, 2, 4))];
            assert_eq!(s.store_batch(&refs(&pairs)).expect("batch"), 1);
            model.insert(id, vector(id, 2, 4));
        }
        if k % 7 == 6 {
            let victim = base + k - 3;
            assert_eq!(s.delete(victim).expect("delete"), model.remove(&victim).is_some());
        }
    }
    model
}

// Proves 4 writer threads and 2 reader threads on one store (scoped threads,
// at Sync with group commit and at Buffered) end with exactly the union of
// the writes, before and after a reopen, and that readers only ever see
// whole vectors of versions that were visible (never the version a batch
// overwrote within itself).
#[test]
fn concurrent_writers_and_readers_end_with_the_union() {
    const WRITERS: u64 = 4;
    let seed = test_seed();
    println!("concurrency: seed {seed} (replay with QUIVER_TEST_SEED={seed})");
    for (level, per_writer) in [(Durability::Sync, 150), (Durability::Buffered, 1500)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = store_path(&dir);
        let opts = small(4).durability(level);
        let s: VectorStore<f32> = opts.open(&path).expect("open");
        let done = AtomicBool::new(false);
        let (s_ref, done_ref) = (&s, &done);
        let union: BTreeMap<u64, Vec<f32>> = std::thread::scope(|scope| {
            let writers: Vec<_> =
                (0..WRITERS).map(|w| scope.spawn(move || writer_workload(s_ref, w, per_writer))).collect();
            let readers: Vec<_> = (0..2u64)
                .map(|r| {
                    scope.spawn(move || {
                        let mut rng = XorShift::new(seed ^ (r + 1));
                        let mut seen = 0u64;
                        while !done_ref.load(Ordering::Acquire) {
                            let id = (rng.next_u64() % WRITERS) * 1_000_000 + rng.next_u64() % per_writer;
                            if let Some(g) = s_ref.get(id) {
                                let ok = g[..] == vector(id, 0, 4)[..] || g[..] == vector(id, 2, 4)[..];
                                assert!(ok, "{level:?}: id {id} read as {:?}", &g[..]);
                                seen += 1;
                            }
                            assert!(s_ref.len() as u64 <= WRITERS * per_writer);
                        }
                        seen
                    })
                })
                .collect();
            let mut union = BTreeMap::new();
            for w in writers {
                union.extend(w.join().expect("writer thread"));
            }
            done.store(true, Ordering::Release);
            let seen: u64 = readers.into_iter().map(|r| r.join().expect("reader thread")).sum();
            println!("concurrency {level:?}: {} live ids, readers saw {seen} vectors", union.len());
            union
        });
        let check = |s: &VectorStore<f32>, when: &str| {
            let mut ids = s.ids();
            ids.sort_unstable();
            assert_eq!(ids, union.keys().copied().collect::<Vec<_>>(), "{level:?} {when}");
            for (id, want) in &union {
                assert_eq!(s.retrieve(*id).as_ref(), Some(want), "{level:?} {when}: id {id}");
            }
        };
        check(&s, "after the threads");
        drop(s);
        let s: VectorStore<f32> = opts.open(&path).expect("reopen");
        check(&s, "after reopen");
    }
}

// Proves that at Durability::Sync a write is invisible to readers while its
// WAL fdatasync is in progress (the injector parks the sync until the reader
// has looked) and visible once it has returned.
#[test]
fn sync_write_is_invisible_until_its_fdatasync_returns() {
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let armed = Arc::new(AtomicBool::new(false));
    let parked = Arc::new((Mutex::new(entered_tx), Mutex::new(release_rx)));
    let (a, p) = (Arc::clone(&armed), Arc::clone(&parked));
    let faults = injector(move |step| {
        if let IoStep::SyncData { path } = step
            && in_wal(path)
            && a.swap(false, Ordering::SeqCst)
        {
            let _ = p.0.lock().expect("lock").send(());
            let _ = p.1.lock().expect("lock").recv_timeout(Duration::from_secs(60));
        }
        FaultAction::Proceed
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let s: VectorStore<f32> = small(4).durability(Durability::Sync).fault_injector(faults).open(&path).expect("open");
    s.store(1, &vector(1, 0, 4)).expect("store");
    armed.store(true, Ordering::SeqCst);
    let s = &s;
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || s.store(42, &vector(42, 0, 4)));
        entered_rx.recv_timeout(Duration::from_secs(30)).expect("the writer never reached its sync");
        assert!(!s.contains(42), "visible before its fdatasync returned");
        assert!(s.get(42).is_none() && s.retrieve(42).is_none());
        assert_eq!(s.len(), 1);
        assert_eq!(s.ids(), vec![1]);
        release_tx.send(()).expect("release the sync");
        writer.join().expect("writer thread").expect("the store succeeds once synced");
    });
    assert_eq!(s.retrieve(42), Some(vector(42, 0, 4)));
}

// Proves a batch becomes visible atomically and len()/ids() are consistent
// snapshots: while a writer stores batches of 16 fresh ids (at Sync and at
// Buffered), two reader threads never see a batch partly applied in ids(),
// and len() is always a whole number of batches.
#[test]
fn batches_become_visible_atomically() {
    const GROUP: u64 = 16;
    for (level, groups) in [(Durability::Sync, 60u64), (Durability::Buffered, 1000)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = store_path(&dir);
        let s: VectorStore<f32> = small(4).durability(level).open(&path).expect("open");
        let done = AtomicBool::new(false);
        let (s, done) = (&s, &done);
        std::thread::scope(|scope| {
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    scope.spawn(move || {
                        let mut snapshots = 0u64;
                        while !done.load(Ordering::Acquire) {
                            let mut per_group: BTreeMap<u64, u64> = BTreeMap::new();
                            for id in s.ids() {
                                *per_group.entry(id / GROUP).or_default() += 1;
                            }
                            for (group, n) in per_group {
                                assert_eq!(n, GROUP, "{level:?}: batch {group} seen partly applied");
                            }
                            let len = s.len() as u64;
                            assert_eq!(len % GROUP, 0, "{level:?}: len() {len} splits a batch");
                            snapshots += 1;
                        }
                        snapshots
                    })
                })
                .collect();
            for g in 0..groups {
                let pairs: Vec<(u64, Vec<f32>)> =
                    (g * GROUP..(g + 1) * GROUP).map(|id| (id, vector(id, 0, 4))).collect();
                assert_eq!(s.store_batch(&refs(&pairs)).expect("batch"), GROUP as usize);
            }
            done.store(true, Ordering::Release);
            let snapshots: u64 = readers.into_iter().map(|r| r.join().expect("reader thread")).sum();
            println!("atomic batches {level:?}: {snapshots} consistent snapshots");
        });
        assert_eq!(s.len() as u64, groups * GROUP);
    }
}
