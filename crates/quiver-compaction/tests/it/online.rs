//! Compaction while readers and writers run: model equality, guards held
//! across the switch, disk usage, reopen.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use quiver_storage::{StoreOptions, VectorStore};

fn vector(id: u64, version: u64) -> Vec<f32> {
    (0..8).map(|i| (id * 1000 + version * 10 + i) as f32).collect()
}

fn options() -> StoreOptions {
    StoreOptions::new(8).initial_file_bytes(64 << 10).growth_step_bytes(64 << 10, 1 << 20)
}

fn data_file_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("list")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".qvd"))
        .map(|e| e.metadata().expect("metadata").len())
        .sum()
}

// Proves a compaction of a store with 75% garbage keeps exactly the live
// vectors, shrinks the data file accordingly, and survives reopen.
#[test]
fn compaction_keeps_the_model_and_shrinks_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    let store: VectorStore<f32> = options().open(&path).expect("open");
    let mut model = BTreeMap::new();
    for id in 0..4000u64 {
        store.store(id, &vector(id, 0)).expect("store");
        model.insert(id, vector(id, 0));
    }
    for id in (0..4000u64).filter(|id| id % 4 != 0) {
        assert!(store.delete(id).expect("delete"));
        model.remove(&id);
    }
    store.checkpoint().expect("checkpoint");
    let before = data_file_bytes(&path);
    let stats = quiver_compaction::compact(&store).expect("compact");
    let after = data_file_bytes(&path);
    assert_eq!(stats.live_records, 1000);
    assert!(after * 3 < before, "data file {before} -> {after} bytes");
    for (id, v) in &model {
        assert_eq!(store.retrieve(*id).as_ref(), Some(v));
    }
    assert_eq!(store.len(), model.len());
    store.store(5000, &vector(5000, 1)).expect("store after compaction");
    model.insert(5000, vector(5000, 1));
    drop(store);
    let store: VectorStore<f32> = options().open(&path).expect("reopen");
    assert_eq!(store.len(), model.len());
    for (id, v) in &model {
        assert_eq!(store.retrieve(*id).as_ref(), Some(v));
    }
    store.close().expect("close");
    let store: VectorStore<f32> = options().open(&path).expect("reopen after close");
    let mut ids = store.ids();
    ids.sort_unstable();
    assert_eq!(ids, model.keys().copied().collect::<Vec<_>>());
}

// Proves a guard taken before compaction reads the same bytes after the
// switch, and that a store whose vectors are all deleted compacts to a small
// file.
#[test]
fn guard_survives_compaction_and_empty_store_compacts_small() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    let store: VectorStore<f32> = options().open(&path).expect("open");
    for id in 0..500u64 {
        store.store(id, &vector(id, 0)).expect("store");
    }
    let guard = store.get(7).expect("present");
    let copy = guard.to_vec();
    store.store(7, &vector(7, 1)).expect("overwrite");
    quiver_compaction::compact(&store).expect("compact");
    assert_eq!(&*guard, &copy[..]);
    assert_eq!(store.retrieve(7), Some(vector(7, 1)));
    drop(guard);
    for id in 0..500u64 {
        store.delete(id).expect("delete");
    }
    quiver_compaction::compact(&store).expect("compact empty");
    assert!(store.is_empty());
    assert!(data_file_bytes(&path) <= 256 << 10, "{} bytes", data_file_bytes(&path));
}

// Proves writes that race with compaction are carried over: a writer thread
// stores and deletes while compactions run; afterwards (and after reopen)
// the store equals the writer's model.
#[test]
fn concurrent_writes_are_carried_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    let store: VectorStore<f32> = options().open(&path).expect("open");
    let done = AtomicBool::new(false);
    let model = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut model = BTreeMap::new();
            let mut round = 0u64;
            while !done.load(Ordering::Acquire) || round < 2000 {
                round += 1;
                let id = round % 700;
                if round % 5 == 4 {
                    store.delete(id).expect("delete");
                    model.remove(&id);
                } else {
                    store.store(id, &vector(id, round)).expect("store");
                    model.insert(id, vector(id, round));
                }
            }
            model
        });
        let reader = s.spawn(|| {
            let mut reads = 0u64;
            while !done.load(Ordering::Acquire) {
                for id in 0..700u64 {
                    if let Some(g) = store.get(id) {
                        // Every element must come from one whole write of
                        // this id: vector(id, v)[i] = id*1000 + v*10 + i.
                        let base = g[0] as u64;
                        assert!(base >= id * 1000 && (base - id * 1000).is_multiple_of(10), "id {id}: {:?}", &*g);
                        assert!(g.iter().enumerate().all(|(i, &x)| x == g[0] + i as f32), "torn: {:?}", &*g);
                        reads += 1;
                    }
                }
            }
            reads
        });
        let compactions = 20;
        for _ in 0..compactions {
            quiver_compaction::compact(&store).expect("compact");
        }
        done.store(true, Ordering::Release);
        let model = writer.join().expect("writer");
        let reads = reader.join().expect("reader");
        println!("{compactions} compactions, {reads} reads during them");
        model
    });
    let check = |store: &VectorStore<f32>| {
        assert_eq!(store.len(), model.len());
        for (id, v) in &model {
            assert_eq!(store.retrieve(*id).as_ref(), Some(v), "id {id}");
        }
    };
    check(&store);
    drop(store);
    let store: VectorStore<f32> = options().open(&path).expect("reopen");
    check(&store);
}

// Proves the background compactor compacts once garbage passes its
// threshold, while writes go on, and stops cleanly on close.
//
// The threshold is exactly the garbage the deletes leave (each delete makes
// two slots dead: the vector's and its tombstone's), so the compactor cannot
// start halfway through them: a run that started early would carry the later
// deletes over as garbage below the ratio, and nothing would ever compact
// them (this test once failed that way on a loaded machine).
#[test]
fn background_compactor_reclaims_and_stops_on_close() {
    use std::time::Duration;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    let store: VectorStore<f32> = options().open(&path).expect("open");
    for id in 0..2000u64 {
        store.store(id, &vector(id, 0)).expect("store");
    }
    let record = store.metrics().live_bytes / 2000;
    assert!(record > 0);
    let policy = quiver_compaction::BackgroundPolicy {
        garbage_ratio: 0.5,
        min_garbage_bytes: 2 * 1800 * record,
        check_interval: Duration::from_millis(5),
        ..Default::default()
    };
    let store = quiver_compaction::BackgroundCompactor::spawn(store, policy);
    for id in 0..1800u64 {
        store.delete(id).expect("delete");
    }
    // Wait (bounded) for the compactor to notice.
    let mut waited = 0;
    while store.metrics().garbage_bytes > 0 && waited < 10_000 {
        std::thread::sleep(Duration::from_millis(5));
        waited += 5;
    }
    assert_eq!(store.metrics().garbage_bytes, 0, "the compactor did not run within 10 s");
    let runs = store.close().expect("close");
    assert!(!runs.is_empty() && runs.iter().all(|r| r.is_ok()), "{runs:?}");
    let store: VectorStore<f32> = options().open(&path).expect("reopen");
    assert_eq!(store.len(), 200);
    assert_eq!(store.retrieve(1999), Some(vector(1999, 0)));
}

// Proves a read-only follower reloads after a compaction switches
// generations, sees exactly the writer's vectors, and a guard it handed out
// before keeps reading the old bytes.
#[test]
fn follower_reloads_after_compaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    let store: VectorStore<f32> = options().open(&path).expect("open");
    for id in 0..300u64 {
        store.store(id, &vector(id, 0)).expect("store");
    }
    let reader: quiver_storage::VectorReader<f32> = options().open_reader(&path).expect("reader");
    let guard = reader.get(5).expect("present");
    for id in 0..200u64 {
        store.delete(id).expect("delete");
    }
    store.store(250, &vector(250, 1)).expect("overwrite");
    quiver_compaction::compact(&store).expect("compact");
    let outcome = reader.refresh().expect("refresh");
    assert!(outcome.reloaded);
    assert_eq!(reader.len(), 100);
    assert_eq!(reader.retrieve(250), Some(vector(250, 1)));
    assert_eq!(reader.retrieve(5), None);
    assert_eq!(&*guard, &vector(5, 0)[..]);
}

// Proves compactions never overlap: two threads compacting the same store
// over and over, beside a writer, either compact or are refused with
// `CompactionInProgress`; the store then reopens with exactly the writes.
#[test]
fn concurrent_compactions_are_refused_not_interleaved() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    let store: VectorStore<f32> = options().open(&path).expect("open");
    let done = AtomicBool::new(false);
    let (model, refused) = std::thread::scope(|s| {
        let compactors: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut refused = 0;
                    while !done.load(Ordering::Acquire) {
                        match quiver_compaction::compact(&store) {
                            Ok(_) => {}
                            Err(quiver_storage::Error::CompactionInProgress) => refused += 1,
                            Err(e) => panic!("compaction failed: {e}"),
                        }
                    }
                    refused
                })
            })
            .collect();
        let mut model = BTreeMap::new();
        for round in 0..3000u64 {
            let id = round % 300;
            store.store(id, &vector(id, round)).expect("store");
            model.insert(id, vector(id, round));
        }
        done.store(true, Ordering::Release);
        let refused: u64 = compactors.into_iter().map(|c| c.join().expect("compactor")).sum();
        (model, refused)
    });
    println!("{refused} compactions refused while another ran");
    store.close().expect("close");
    let store: VectorStore<f32> = options().open(&path).expect("reopen");
    assert_eq!(store.len(), model.len());
    for (id, v) in &model {
        assert_eq!(store.retrieve(*id).as_ref(), Some(v));
    }
    assert!(store.verify().expect("verify").problems.is_empty());
}

/// Writes to the store once, at the moment the compaction creates its
/// staged snapshot: after its last unlocked catch-up and before the writer
/// lock, so everything written lands in the final catch-up, under the lock.
#[derive(Debug, Default)]
struct WriteWhileStaging {
    store: std::sync::OnceLock<std::sync::Weak<VectorStore<f32>>>,
    fired: AtomicBool,
}

impl quiver_storage::io::FaultInjector for WriteWhileStaging {
    fn before(&self, step: quiver_storage::io::IoStep<'_>) -> quiver_storage::io::FaultAction {
        if let quiver_storage::io::IoStep::Create { path } = step
            && path.to_string_lossy().ends_with("-staged.qvs.tmp")
            && !self.fired.swap(true, Ordering::SeqCst)
        {
            let store = self.store.get().and_then(std::sync::Weak::upgrade).expect("the store is alive");
            for id in 0..100u64 {
                store.delete(id * 3).expect("delete a staged id");
            }
            for id in 200..260u64 {
                store.store(id, &vector(id, 1)).expect("overwrite a staged id");
            }
            for id in 10_000..10_030u64 {
                store.store(id, &vector(id, 0)).expect("store a new id");
            }
            store.store(20_000, &vector(20_000, 0)).expect("store");
            store.delete(20_000).expect("delete");
        }
        quiver_storage::io::FaultAction::Proceed
    }
}

// Proves the changes a compaction copies in its final catch-up, under the
// writer lock (staged ids deleted — more of them than new ids, so the
// snapshot shrinks — and overwritten, new ids, an id stored and deleted),
// reach the snapshot it finishes there, at Buffered and at Sync: a reopen
// loads that snapshot, not a rebuild, and holds exactly the writer's vectors.
#[test]
fn final_catch_up_changes_reach_the_staged_snapshot() {
    for durability in [quiver_storage::Durability::Buffered, quiver_storage::Durability::Sync] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store");
        let hook = Arc::new(WriteWhileStaging::default());
        let store: Arc<VectorStore<f32>> =
            Arc::new(options().durability(durability).fault_injector(hook.clone()).open(&path).expect("open"));
        hook.store.set(Arc::downgrade(&store)).expect("set once");
        for id in 0..1000u64 {
            store.store(id, &vector(id, 0)).expect("store");
        }
        for id in 500..1000u64 {
            store.delete(id).expect("delete");
        }
        let stats = quiver_compaction::compact(&store).expect("compact");
        assert!(hook.fired.load(Ordering::SeqCst), "the hook ran");
        let mut model: BTreeMap<u64, Vec<f32>> = (0..500u64).map(|id| (id, vector(id, 0))).collect();
        for id in 0..100u64 {
            model.remove(&(id * 3));
        }
        for id in 200..260u64 {
            model.insert(id, vector(id, 1));
        }
        for id in 10_000..10_030u64 {
            model.insert(id, vector(id, 0));
        }
        // The new file holds the 500 live records, then the final
        // catch-up's records verbatim: 100 tombstones, 60 + 30 puts, a put
        // and a tombstone.
        assert_eq!(stats.live_records, 500 + 100 + 60 + 30 + 2, "{durability:?}");
        let check = |store: &VectorStore<f32>| {
            assert_eq!(store.len(), model.len(), "{durability:?}");
            for (id, v) in &model {
                assert_eq!(store.retrieve(*id).as_ref(), Some(v), "{durability:?}: id {id}");
            }
            assert_eq!(store.retrieve(20_000), None);
        };
        check(&store);
        // Dropped, not closed: no checkpoint after the switch's own.
        drop(Arc::try_unwrap(store).expect("the only handle"));
        let store: VectorStore<f32> = options().durability(durability).open(&path).expect("reopen");
        assert_eq!(
            store.recovery_report().snapshot,
            quiver_storage::SnapshotOutcome::Loaded { entries: model.len() as u64 },
            "{durability:?}: {:?}",
            store.recovery_report()
        );
        check(&store);
    }
}

/// Fails the creation of a WAL segment once armed: in a compaction's
/// commit, that is the step under the writer lock after the snapshot is
/// finished and renamed.
#[derive(Debug, Default)]
struct FailSegmentCreate {
    armed: AtomicBool,
}

impl quiver_storage::io::FaultInjector for FailSegmentCreate {
    fn before(&self, step: quiver_storage::io::IoStep<'_>) -> quiver_storage::io::FaultAction {
        if let quiver_storage::io::IoStep::Create { path } = step
            && path.extension().is_some_and(|e| e == "qwal")
            && self.armed.swap(false, Ordering::SeqCst)
        {
            return quiver_storage::io::FaultAction::Fail(std::io::Error::from_raw_os_error(5));
        }
        quiver_storage::io::FaultAction::Proceed
    }
}

// Proves a compaction that fails under the writer lock, after its snapshot
// was finished and renamed, leaves nothing of the next generation behind
// (no data file, no snapshot, no staged snapshot) in the process that goes
// on, which keeps serving and writing the old generation, and that a
// second compaction then succeeds.
#[test]
fn failed_commit_leaves_nothing_behind_and_a_retry_succeeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    let faults = Arc::new(FailSegmentCreate::default());
    let store: VectorStore<f32> = options().fault_injector(faults.clone()).open(&path).expect("open");
    for id in 0..300u64 {
        store.store(id, &vector(id, 0)).expect("store");
    }
    for id in 0..200u64 {
        store.delete(id).expect("delete");
    }
    let before = files(&path);
    faults.armed.store(true, Ordering::SeqCst);
    let err = quiver_compaction::compact(&store).expect_err("the segment creation fails");
    assert!(!faults.armed.load(Ordering::SeqCst), "the fault fired");
    assert!(matches!(err, quiver_storage::Error::Io { .. }), "{err:?}");
    assert_eq!(files(&path), before, "the failed compaction left files behind");
    store.store(1000, &vector(1000, 0)).expect("the store still writes");
    let stats = quiver_compaction::compact(&store).expect("a second compaction");
    assert_eq!(stats.generation, 2);
    assert_eq!(store.len(), 101);
    assert_eq!(store.retrieve(250), Some(vector(250, 0)));
}

fn files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for d in [dir.to_path_buf(), dir.join("wal")] {
        for e in std::fs::read_dir(&d).expect("list") {
            out.push(e.expect("entry").file_name().to_string_lossy().into_owned());
        }
    }
    out.retain(|n| n != "wal" && n != "LOCK");
    out.sort();
    out
}

// Proves the session refuses to go out of order — a catch-up or a commit
// before every live record is copied (which would let an older copy of an
// id land after its newer one, or drop the rest) — with an error that
// changes nothing, and refuses every step after one failed (a damaged
// record), so half-done work is never committed.
#[test]
fn compaction_session_refuses_misuse() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    let store: VectorStore<f32> = options().open(&path).expect("open");
    for id in 0..100u64 {
        store.store(id, &vector(id, 0)).expect("store");
    }
    let mut compaction = store.begin_compaction(quiver_storage::Headroom::default()).expect("begin");
    assert_eq!(compaction.copy_live(10).expect("copy ten"), 10);
    let err = compaction.catch_up().expect_err("a catch-up before the live copy is done");
    assert!(matches!(err, quiver_storage::Error::InvalidArgument(_)), "{err:?}");
    assert_eq!(compaction.copy_live(1000).expect("the rest"), 90, "the refusal changed nothing");
    assert_eq!(compaction.copy_live(1000).expect("done"), 0);
    drop(compaction);

    let compaction = store.begin_compaction(quiver_storage::Headroom::default()).expect("begin again");
    let err = compaction.commit().expect_err("a commit before the live copy");
    assert!(matches!(err, quiver_storage::Error::InvalidArgument(_)), "{err:?}");
    assert_eq!(files(&path).iter().filter(|n| n.ends_with(".qvd")).count(), 1, "the refused commit's file is gone");

    // Damage one live record's payload on disk: the copy must fail, and the
    // session must stay failed.
    let record = store.metrics().live_bytes / 100;
    let data = path.join("data-00000001.qvd");
    let offset = quiver_storage::format::DATA_HEADER_BYTES + 50 * record + 64; // the payload, after the 64-byte header
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&data).expect("open the data file");
        f.write_all_at(&[0xFF; 4], offset).expect("damage");
    }
    let mut compaction = store.begin_compaction(quiver_storage::Headroom::default()).expect("begin a third");
    let err = compaction.copy_live(1000).expect_err("a damaged record");
    assert!(matches!(err, quiver_storage::Error::Corrupted { .. }), "{err:?}");
    for err in [compaction.copy_live(1000).expect_err("again"), compaction.catch_up().expect_err("catch up")] {
        assert!(matches!(err, quiver_storage::Error::InvalidArgument(_)), "{err:?}");
    }
    let err = compaction.commit().expect_err("commit");
    assert!(matches!(err, quiver_storage::Error::InvalidArgument(_)), "{err:?}");
    assert_eq!(files(&path).iter().filter(|n| n.ends_with(".qvd")).count(), 1);
}

// Proves a snapshot taken before a compaction keeps reading the old
// generation (its file unlinked, its vectors unchanged), and that a view of
// the new generation relabels the old view's slots: every id kept with the
// same record maps to a slot holding the same vector, and an id written
// after the old view is not relabelled.
#[test]
fn snapshot_survives_compaction_and_relabels_its_slots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    let store: VectorStore<f32> = options().open(&path).expect("open");
    for id in 0..600u64 {
        store.store(id, &vector(id, 0)).expect("store");
    }
    for id in 0..300u64 {
        store.delete(id).expect("delete");
    }
    let old = store.snapshot();
    store.store(599, &vector(599, 1)).expect("overwrite after the old view");
    let stats = quiver_compaction::compact(&store).expect("compact");
    assert_eq!(stats.generation, 2);
    assert!(data_file_bytes(&path) > 0);
    assert!(!path.join("data-00000001.qvd").exists(), "the old data file is unlinked");
    assert_eq!((old.generation(), old.len()), (1, 300));
    for id in 300..600u64 {
        assert_eq!(old.get(id), Some(&vector(id, 0)[..]), "the old view reads the retired file: id {id}");
    }
    let new = store.snapshot();
    assert_eq!((new.generation(), new.len()), (2, 300));
    assert_eq!(new.lsn(), old.lsn() + 1, "the new generation's view is at the switch's LSN");
    assert_eq!(new.slot_count(), stats.live_records, "and covers the new file's records");
    let relabel: BTreeMap<u64, u64> = new.relabel_from(&old).collect();
    assert_eq!(relabel.len(), 299, "every id but the one overwritten since");
    for (&from, &to) in &relabel {
        assert_eq!(old.vector_at(from), new.vector_at(to), "slot {from} -> {to}");
        assert_eq!(old.id_at(from), new.id_at(to));
    }
    let overwritten = old.slot_of(599).expect("live in the old view");
    assert!(!relabel.contains_key(&overwritten));
}
