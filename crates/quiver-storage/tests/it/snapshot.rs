//! `Snapshot<T>`: isolation from later writes, atomic batches under
//! concurrent writers, LSNs, slots, file-order iteration, followers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use quiver_storage::{Snapshot, VectorStore};

use crate::common::{open, small, store_path, vector};

const DIM: usize = 8;

fn model_of(snapshot: &Snapshot<f32>) -> BTreeMap<u64, Vec<f32>> {
    snapshot.iter().map(|(id, v)| (id, v.to_vec())).collect()
}

// Proves a snapshot is owned, cheap to clone and shareable across threads
// (the compiler checks the bounds), and that an index can keep one in a
// struct with no lifetime.
#[test]
fn snapshot_is_owned_clone_send_sync() {
    fn assert_bounds<S: Clone + Send + Sync + 'static>() {}
    assert_bounds::<Snapshot<f32>>();
    assert_bounds::<Snapshot<u8>>();
    struct AnnIndex {
        vectors: Snapshot<f32>,
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&store_path(&dir), &small(DIM));
    store.store(1, &vector(1, 0, DIM)).expect("store");
    let index = AnnIndex { vectors: store.snapshot() };
    let held = std::thread::spawn(move || index.vectors.get(1).map(<[f32]>::to_vec)).join().expect("thread");
    assert_eq!(held, Some(vector(1, 0, DIM)));
}

// Proves a snapshot holds exactly what was written before it and nothing
// after — overwrites, deletes and new ids alike — through every read
// method, its LSN is the last batch's, and its slices stay valid and
// unchanged while the store moves on (and after the store is dropped).
#[test]
fn snapshot_sees_exactly_the_writes_before_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&store_path(&dir), &small(DIM));
    let mut model = BTreeMap::new();
    for id in 0..300u64 {
        store.store(id, &vector(id, 0, DIM)).expect("store");
        model.insert(id, vector(id, 0, DIM));
    }
    for id in (0..300u64).step_by(3) {
        store.delete(id).expect("delete");
        model.remove(&id);
    }
    let snapshot = store.snapshot();
    assert_eq!(snapshot.lsn(), 400, "300 stores and 100 deletes are 400 batches");
    let held = snapshot.get(1).expect("id 1");
    for id in 0..300u64 {
        store.store(id, &vector(id, 1, DIM)).expect("overwrite");
    }
    store.delete(1).expect("delete 1");
    store.store(1000, &vector(1000, 0, DIM)).expect("a new id");
    assert_eq!(held, &vector(1, 0, DIM)[..], "a slice from the snapshot never changes");
    assert_eq!(snapshot.len(), model.len());
    assert_eq!(model_of(&snapshot), model);
    for id in 0..1001u64 {
        assert_eq!(snapshot.get(id).map(<[f32]>::to_vec), model.get(&id).cloned(), "id {id}");
        assert_eq!(snapshot.contains(id), model.contains_key(&id));
    }
    let mut ids: Vec<u64> = snapshot.ids().collect();
    ids.sort_unstable();
    assert_eq!(ids, model.keys().copied().collect::<Vec<_>>());
    let now = store.snapshot();
    assert_eq!(now.lsn(), 400 + 300 + 2);
    assert_eq!(now.get(1), None);
    assert_eq!(now.get(2), Some(&vector(2, 1, DIM)[..]));
    drop(store);
    assert_eq!(model_of(&snapshot), model, "the snapshot outlives the store");
}

// Proves the slot API: `slot_of` and `vector_at` agree with `get`, the old
// slot of an overwritten id still reads its old vector but is not live
// (`id_at`), slots past `slot_count` are refused, and `iter` is in file
// order.
#[test]
fn slots_address_vectors_and_say_what_is_live() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&store_path(&dir), &small(DIM));
    store.store_batch(&[(10, &vector(10, 0, DIM)[..]), (20, &vector(20, 0, DIM)[..])]).expect("batch");
    let before = store.snapshot();
    let old_slot = before.slot_of(10).expect("10 has a slot");
    store.store(10, &vector(10, 1, DIM)).expect("overwrite");
    store.delete(20).expect("delete");
    let after = store.snapshot();
    let new_slot = after.slot_of(10).expect("10 has a slot");
    assert_ne!(old_slot, new_slot, "an overwrite goes to a new slot");
    assert_eq!(after.vector_at(new_slot), Some(&vector(10, 1, DIM)[..]));
    assert_eq!(after.vector_at(old_slot), Some(&vector(10, 0, DIM)[..]), "the old slot keeps its vector");
    assert_eq!(after.id_at(new_slot), Some(10));
    assert_eq!(after.id_at(old_slot), None, "the old slot is not live in the newer view");
    assert_eq!(before.id_at(old_slot), Some(10), "but it is in the older one");
    assert_eq!(after.slot_count(), 4, "two puts, an overwrite and a tombstone");
    assert_eq!(after.id_at(3), None, "a tombstone's slot is never live");
    assert_eq!(after.vector_at(4), None);
    assert_eq!(after.id_at(u64::MAX), None);
    assert_eq!(before.vector_at(new_slot), None, "past the older view's end");
    for (id, v) in after.iter() {
        assert_eq!(after.vector_at(after.slot_of(id).expect("live")), Some(v));
    }
    let order: Vec<u64> = before.iter().map(|(id, _)| before.slot_of(id).expect("live")).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "file order: {order:?}");
    let same: Vec<(u64, u64)> = after.relabel_from(&before).collect();
    assert!(same.is_empty(), "nothing kept its record: {same:?}");
}

// Proves snapshots taken while writers commit batches see each batch whole
// and never go back in time: every batch sets all ids of a group to one
// version, so a snapshot must see one version per group, and versions (and
// LSNs) never decrease from one snapshot to the next.
#[test]
fn snapshots_see_whole_batches_under_concurrent_writers() {
    const GROUPS: u64 = 8;
    const PER_GROUP: u64 = 16;
    let dir = tempfile::tempdir().expect("tempdir");
    let store: VectorStore<f32> = open(&store_path(&dir), &small(DIM));
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        for g in 0..GROUPS {
            let store = &store;
            let done = &done;
            s.spawn(move || {
                let mut version = 0u64;
                while !done.load(Ordering::Relaxed) && version < 400 {
                    let batch: Vec<(u64, Vec<f32>)> =
                        (0..PER_GROUP).map(|i| (g * 1000 + i, vec![version as f32; DIM])).collect();
                    let refs: Vec<(u64, &[f32])> = batch.iter().map(|(id, v)| (*id, &v[..])).collect();
                    store.store_batch(&refs).expect("batch");
                    // A delete of an id outside the groups, so tombstones and
                    // garbage slots interleave with the batches.
                    store.delete(g * 1000 + 999).expect("delete");
                    store.store(g * 1000 + 999, &[0.5; DIM]).expect("store");
                    version += 1;
                }
            });
        }
        let mut last_versions = vec![-1.0f32; GROUPS as usize];
        let mut last_lsn = 0;
        for _ in 0..300 {
            let snap = store.snapshot();
            assert!(snap.lsn() >= last_lsn, "LSNs never go back");
            last_lsn = snap.lsn();
            assert_eq!(snap.iter().count(), snap.len());
            for g in 0..GROUPS {
                let seen: Vec<Option<f32>> = (0..PER_GROUP).map(|i| snap.get(g * 1000 + i).map(|v| v[0])).collect();
                assert!(seen.windows(2).all(|w| w[0] == w[1]), "group {g} mixes batches: {seen:?}");
                if let Some(v) = seen[0] {
                    assert!(
                        v >= last_versions[g as usize],
                        "group {g} went back from {} to {v}",
                        last_versions[g as usize]
                    );
                    last_versions[g as usize] = v;
                }
            }
        }
        done.store(true, Ordering::Relaxed);
    });
}

// Proves a snapshot taken after a reopen reports the LSN the store
// recovered to (with batches replayed after a checkpoint, and with nothing
// to replay after a close), and one taken from a follower holds what the
// follower applied, unchanged by its later refreshes.
#[test]
fn snapshot_lsn_after_reopen_and_from_a_follower() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let opts = small(DIM);
    {
        let store = open(&path, &opts);
        for id in 0..50u64 {
            store.store(id, &vector(id, 0, DIM)).expect("store");
        }
        store.checkpoint().expect("checkpoint");
        for id in 50..60u64 {
            store.store(id, &vector(id, 0, DIM)).expect("store");
        }
        store.flush().expect("flush");
    }
    let store = open(&path, &opts);
    assert_eq!(store.snapshot().lsn(), 60, "a checkpoint at 50 and 10 replayed batches");
    store.close().expect("close");
    let store = open(&path, &opts);
    assert_eq!(store.recovery_report().batches_replayed, 0, "close checkpointed");
    let snap = store.snapshot();
    assert_eq!((snap.lsn(), snap.slot_count(), snap.len()), (60, 60, 60), "the checkpoint's position");
    drop(snap);
    let reader = opts.open_reader::<f32>(&path).expect("reader");
    assert_eq!(reader.snapshot().lsn(), 60, "a follower opened right after a checkpoint");
    let seen = reader.snapshot();
    assert_eq!((seen.lsn(), seen.len()), (60, 60));
    store.store(60, &vector(60, 0, DIM)).expect("store");
    store.flush().expect("flush");
    reader.refresh().expect("refresh");
    assert_eq!(reader.snapshot().lsn(), 61);
    assert_eq!((seen.lsn(), seen.len(), seen.get(60)), (60, 60, None), "the older view did not move");
}

// Proves `get_many` and `get_many_into` answer exactly what `get` does for
// every id, present or absent, repeated or not, in the order asked, and
// that the reused buffer is cleared first.
#[test]
fn get_many_answers_what_get_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&store_path(&dir), &small(DIM));
    for id in 0..200u64 {
        store.store(id, &vector(id, 0, DIM)).expect("store");
    }
    for id in (0..200u64).step_by(7) {
        store.delete(id).expect("delete");
    }
    let snapshot = store.snapshot();
    let ids: Vec<u64> = (0..400u64).map(|i| (i * 37) % 250).chain([5, 5, u64::MAX]).collect();
    let expected: Vec<Option<&[f32]>> = ids.iter().map(|&id| snapshot.get(id)).collect();
    assert_eq!(snapshot.get_many(&ids), expected);
    let mut out = vec![snapshot.get(1); 3];
    snapshot.get_many_into(&ids[..10], &mut out);
    assert_eq!(out, expected[..10]);
    snapshot.get_many_into(&[], &mut out);
    assert!(out.is_empty());
}

// Proves `range` returns exactly the model's ids in the bounds, in order
// and reversed, for every kind of bound, and that `seek`, `seek_back` and
// mixing `next` with `next_back` behave like a cursor over that range.
#[test]
fn range_is_an_ordered_cursor_from_both_ends() {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&store_path(&dir), &small(DIM));
    let mut model = BTreeMap::new();
    for k in 0..300u64 {
        let id = (k * 7919) % 1000; // scattered ids, in no order
        store.store(id, &vector(id, 0, DIM)).expect("store");
        model.insert(id, vector(id, 0, DIM));
    }
    for id in (0..1000u64).step_by(11) {
        store.delete(id).expect("delete");
        model.remove(&id);
    }
    let snap = store.snapshot();
    let bounds = [
        (Unbounded, Unbounded),
        (Included(100), Excluded(500)),
        (Excluded(100), Included(500)),
        (Included(999), Unbounded),
        (Unbounded, Excluded(0)),
        (Included(400), Included(400)),
        (Excluded(400), Excluded(401)),
        (Included(5000), Unbounded),
    ];
    for (lo, hi) in bounds {
        let want: Vec<(u64, Vec<f32>)> = model.range((lo, hi)).map(|(k, v)| (*k, v.clone())).collect();
        let got: Vec<(u64, Vec<f32>)> = snap.range((lo, hi)).map(|(k, v)| (k, v.to_vec())).collect();
        assert_eq!(got, want, "{lo:?}..{hi:?}");
        let back: Vec<u64> = snap.range((lo, hi)).rev().map(|(k, _)| k).collect();
        assert_eq!(back, want.iter().rev().map(|(k, _)| *k).collect::<Vec<_>>(), "reversed {lo:?}..{hi:?}");
        assert_eq!(snap.range((lo, hi)).len(), want.len());
    }
    let ids: Vec<u64> = model.keys().copied().collect();
    let mut cursor = snap.range(200..800);
    cursor.seek(333);
    let first = ids.iter().copied().find(|&i| i >= 333).expect("an id above 333");
    assert_eq!(cursor.next().map(|(k, _)| k), Some(first));
    cursor.seek_back(600);
    let last = ids.iter().copied().rfind(|&i| i <= 600).expect("an id below 600");
    assert_eq!(cursor.next_back().map(|(k, _)| k), Some(last));
    let rest: Vec<u64> = cursor.by_ref().map(|(k, _)| k).collect();
    assert_eq!(rest, ids.iter().copied().filter(|&i| i > first && i < last).collect::<Vec<_>>());
    cursor.seek(0);
    assert_eq!(cursor.next().map(|(k, _)| k), ids.iter().copied().find(|&i| i >= 200), "seek back to the start");
    cursor.seek(10_000);
    assert_eq!(cursor.next(), None, "past the range's end");
}

// Proves a view's LSN, contents and slot count are one state at Sync, where
// a batch is published before its group sync and made visible after: one
// writer stores a marker whose value is the number of writes so far (its
// LSN, as it is the only writer), each write one record, while snapshots
// are taken; each must read the marker equal to its LSN and cover exactly
// that many slots — never a record whose batch is not visible yet.
#[test]
fn lsn_contents_and_slot_count_agree_at_sync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&store_path(&dir), &small(DIM).durability(quiver_storage::Durability::Sync));
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for k in 1..=300u64 {
                store.store(7, &[k as f32; DIM]).expect("store");
            }
            done.store(true, Ordering::Release);
        });
        let mut seen = 0;
        while !done.load(Ordering::Acquire) {
            let snap = store.snapshot();
            let lsn = snap.lsn();
            assert_eq!(snap.slot_count(), lsn, "the view covers exactly its batches' records");
            match snap.get(7) {
                None => assert_eq!(lsn, 0),
                Some(v) => assert_eq!(v[0], lsn as f32, "the marker is the view's LSN"),
            }
            assert!(snap.vector_at(lsn).is_none(), "no slot past the view's batches");
            seen += 1;
        }
        assert!(seen > 0);
    });
    assert_eq!(store.snapshot().lsn(), 300);
}

// Proves a store's snapshot keeps the directory locked: after the store is
// dropped, a reopen is refused while the view lives (its recovery could
// rewrite slots the view lends out), the view still reads, and once it is
// dropped the directory opens.
#[test]
fn snapshot_keeps_the_directory_locked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let store = open(&path, &small(DIM));
    store.store(1, &vector(1, 0, DIM)).expect("store");
    let snap = store.snapshot();
    drop(store);
    let err = small(DIM).open::<f32>(&path).expect_err("a view still holds the lock");
    assert!(matches!(err, quiver_storage::Error::Locked { .. }), "{err:?}");
    assert_eq!(snap.get(1), Some(&vector(1, 0, DIM)[..]));
    drop(snap);
    let store = open(&path, &small(DIM));
    assert_eq!(store.snapshot().get(1), Some(&vector(1, 0, DIM)[..]));
}
