//! Read-only followers (`VectorReader`): they take no lock, change no file,
//! see a writer's batches whole and in order after `refresh`, keep up across
//! checkpoints and WAL rotations without skipping a frame, reload when they
//! lag past the WAL's grace period or find a log that does not continue
//! where they stopped, and stop quietly at a torn tail the writer has not
//! cut yet. What they see at each durability level is what a crash and
//! reopen of the writer would recover, including at `Sync` a batch whose
//! sync is in flight or failed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use crate::behaviour::{EIO, in_wal, injector, os_error, refs};
use crate::common::*;
use quiver_storage::io::{FaultAction, IoStep};
use quiver_storage::{Durability, Error, StoreOptions, VectorReader, VectorStore};

const DIM: usize = 8;

fn options() -> StoreOptions {
    small(DIM).checkpoint_wal_bytes(16 << 10)
}

fn reader(path: &std::path::Path) -> VectorReader<f32> {
    options().open_reader(path).expect("open reader")
}

fn same(reader: &VectorReader<f32>, model: &BTreeMap<u64, Vec<f32>>) {
    assert_eq!(reader.len(), model.len());
    let mut ids = reader.ids();
    ids.sort_unstable();
    assert_eq!(ids, model.keys().copied().collect::<Vec<_>>());
    for (id, v) in model {
        assert_eq!(reader.retrieve(*id).as_ref(), Some(v), "id {id}");
    }
}

// Proves a reader opens beside a live writer (no lock), sees nothing new
// until it refreshes, then exactly the writer's state, across overwrites,
// deletes and checkpoints.
#[test]
fn reader_follows_writes_deletes_and_checkpoints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    // No automatic checkpoints: this test counts the explicit ones.
    let writer: VectorStore<f32> = open(&path, &small(DIM));
    let mut model = BTreeMap::new();
    for id in 0..50u64 {
        writer.store(id, &vector(id, 0, DIM)).expect("store");
        model.insert(id, vector(id, 0, DIM));
    }
    let r = reader(&path);
    same(&r, &model);
    for round in 1..6u64 {
        for id in 0..50u64 {
            if (id + round) % 7 == 0 {
                writer.delete(id).expect("delete");
                model.remove(&id);
            } else {
                writer.store(id, &vector(id, round, DIM)).expect("store");
                model.insert(id, vector(id, round, DIM));
            }
        }
        if round == 3 {
            writer.checkpoint().expect("checkpoint");
        }
        let outcome = r.refresh().expect("refresh");
        assert!(!outcome.reloaded, "round {round}: one checkpoint is within the grace period");
        same(&r, &model);
    }
    // Lag past two checkpoints: the reader's segment is gone; it reloads.
    writer.store(1000, &vector(1000, 0, DIM)).expect("store");
    model.insert(1000, vector(1000, 0, DIM));
    writer.checkpoint().expect("checkpoint");
    writer.store(1001, &vector(1001, 0, DIM)).expect("store");
    model.insert(1001, vector(1001, 0, DIM));
    writer.checkpoint().expect("checkpoint");
    writer.store(1002, &vector(1002, 0, DIM)).expect("store");
    model.insert(1002, vector(1002, 0, DIM));
    writer.checkpoint().expect("checkpoint");
    let outcome = r.refresh().expect("refresh");
    assert!(outcome.reloaded, "a reader past the grace period reloads from the snapshot");
    same(&r, &model);
}

// Proves a guard taken from a reader keeps reading the same bytes across
// refreshes that overwrite its id and reload the view.
#[test]
fn reader_guards_survive_refresh_and_reload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let writer: VectorStore<f32> = open(&path, &options());
    writer.store(7, &vector(7, 0, DIM)).expect("store");
    let r = reader(&path);
    let guard = r.get(7).expect("present");
    for round in 1..4u64 {
        writer.store(7, &vector(7, round, DIM)).expect("overwrite");
        writer.checkpoint().expect("checkpoint");
        r.refresh().expect("refresh");
    }
    assert_eq!(&*guard, &vector(7, 0, DIM)[..]);
    assert_eq!(r.retrieve(7), Some(vector(7, 3, DIM)));
}

// Proves a reader refreshing in a loop beside a busy writer thread only
// ever sees whole vectors, and ends equal to the writer.
#[test]
fn reader_beside_a_busy_writer_sees_whole_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let writer: VectorStore<f32> = open(&path, &options());
    writer.store(0, &vector(0, 0, DIM)).expect("store");
    let r = reader(&path);
    let done = AtomicBool::new(false);
    let model = std::thread::scope(|s| {
        let w = s.spawn(|| {
            let mut model = BTreeMap::new();
            model.insert(0, vector(0, 0, DIM));
            for round in 1..3000u64 {
                let ids: Vec<u64> = (0..4).map(|k| (round * 4 + k) % 97).collect();
                let vs: Vec<(u64, Vec<f32>)> = ids.iter().map(|&id| (id, vector(id, round, DIM))).collect();
                let refs: Vec<(u64, &[f32])> = vs.iter().map(|(id, v)| (*id, &v[..])).collect();
                writer.store_batch(&refs).expect("batch");
                for (id, v) in vs {
                    model.insert(id, v);
                }
            }
            done.store(true, Ordering::Release);
            model
        });
        let mut refreshes = 0;
        while !done.load(Ordering::Acquire) {
            r.refresh().expect("refresh");
            refreshes += 1;
            for id in r.ids() {
                let v = r.retrieve(id).expect("listed");
                // A whole write: v == vector(id, version) for the version its
                // first element implies (7 * 143 = 1 mod 1000), modulo 1000.
                let v0 = (v[0] * 2.0) as i64;
                let base = (143 * (v0 - 31 * id as i64)).rem_euclid(1000) as u64;
                let whole = (0..3).any(|k| v == vector(id, base + 1000 * k, DIM));
                assert!(whole, "id {id}: a torn or foreign vector {v:?}");
            }
        }
        println!("{refreshes} refreshes while the writer ran");
        w.join().expect("writer")
    });
    r.refresh().expect("final refresh");
    same(&r, &model);
}

// Proves a reader of a store with a torn WAL tail (and no writer to cut it)
// stops before the tear and changes nothing on disk.
#[test]
fn reader_stops_at_a_torn_tail_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    {
        let writer: VectorStore<f32> = open(&path, &options());
        for id in 0..10u64 {
            writer.store(id, &vector(id, 0, DIM)).expect("store");
        }
    }
    let segment = std::fs::read_dir(path.join("wal"))
        .expect("wal")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("segment");
    let len = std::fs::metadata(&segment).expect("len").len();
    std::fs::OpenOptions::new().write(true).open(&segment).expect("open").set_len(len - 5).expect("tear");
    let before = snapshot_tree(&path);
    let r = reader(&path);
    assert_eq!(r.len(), 9, "the torn last batch is not applied");
    assert!(r.refresh().expect("refresh").batches_applied == 0);
    assert!(snapshot_tree(&path) == before, "a reader changed the store's files");
    drop(r);
    // The writer's recovery cuts the tail; the reader then follows new writes.
    let writer: VectorStore<f32> = open(&path, &options());
    let r = reader(&path);
    writer.store(50, &vector(50, 0, DIM)).expect("store");
    r.refresh().expect("refresh");
    assert_eq!(r.len(), 10);
    assert_eq!(r.retrieve(50), Some(vector(50, 0, DIM)));
}

// Proves a reader refuses (with `Corrupted`) a data file shorter than the
// records its checkpoint covers, instead of mapping past the end of the
// file (a read there would be SIGBUS).
#[test]
fn reader_refuses_a_data_file_shorter_than_its_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    {
        let writer: VectorStore<f32> = open(&path, &small(DIM));
        for id in 0..100u64 {
            writer.store(id, &vector(id, 0, DIM)).expect("store");
        }
        writer.close().expect("close");
    }
    let data = path.join(quiver_storage::format::data_file_name(1));
    std::fs::OpenOptions::new().write(true).open(&data).expect("open").set_len(4096 + 10 * 128).expect("truncate");
    let r: Result<VectorReader<f32>, quiver_storage::Error> = small(DIM).open_reader(&path);
    assert!(matches!(r, Err(quiver_storage::Error::Corrupted { .. })), "{r:?}");
}

/// How `reader` differs from the writer's current state (ids, then every
/// vector), or `None` if it holds exactly the same.
fn difference(reader: &VectorReader<f32>, writer: &VectorStore<f32>) -> Option<String> {
    let mut want = writer.ids();
    want.sort_unstable();
    let mut got = reader.ids();
    got.sort_unstable();
    if got != want {
        let missing = want.iter().filter(|id| !reader.contains(**id)).count();
        return Some(format!(
            "the follower holds {} ids, the writer {} ({missing} of the writer's are missing)",
            got.len(),
            want.len()
        ));
    }
    want.iter()
        .find(|&&id| reader.retrieve(id) != writer.retrieve(id))
        .map(|id| format!("id {id} differs: follower {:?}, writer {:?}", reader.retrieve(*id), writer.retrieve(*id)))
}

/// Refreshes `reader` at most three times, stopping as soon as it holds
/// exactly the writer's state; returns what still differs after the last
/// refresh, and whether any refresh reloaded from a snapshot.
fn converge(reader: &VectorReader<f32>, writer: &VectorStore<f32>) -> (Option<String>, bool) {
    let mut reloaded = false;
    let mut diff = None;
    for _ in 0..3 {
        reloaded |= reader.refresh().expect("refresh").reloaded;
        diff = difference(reader, writer);
        if diff.is_none() {
            break;
        }
    }
    (diff, reloaded)
}

// Proves followers refreshing in a loop beside a writer whose automatic
// checkpoints rotate the WAL segment every 512 KiB never lose their place at
// a rotation: each time the writer goes idle, at most three refreshes bring
// every follower to the writer's exact ids and vectors.
//
// The old follower read segment N once and moved on as soon as N+1 existed,
// so frames appended to N between its read and that check were skipped; it
// then met a later LSN at the start of N+1 and stopped there on every
// refresh. To make that window wide on every rotation, not just when the
// scheduler happens to pause a follower, each phase logs one large location
// batch (slow to verify: one read per record) shortly before the rotation:
// a follower that read it is still checking its records while the writer
// appends the last frames to N and rotates.
#[test]
fn follower_converges_across_rotations() {
    const FOLLOWERS: usize = 2;
    const PHASES: u64 = 16;
    const SEGMENT_BYTES: u64 = 512 << 10;
    const BIG_BATCH_VECTORS: u64 = 16384;
    const IDS: u64 = 1 << 14;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    // Small batches are logged inline, the big one by location.
    let opts = small(DIM).checkpoint_wal_bytes(SEGMENT_BYTES).inline_batch_max_bytes(1024);
    let writer: VectorStore<f32> = open(&path, &opts);
    writer.store(0, &vector(0, 0, DIM)).expect("store");
    let readers: Vec<VectorReader<f32>> =
        (0..FOLLOWERS).map(|_| opts.open_reader(&path).expect("open reader")).collect();
    let mut round = 0u64;
    let mut reloads = 0;
    let small_batch = |round: &mut u64| {
        *round += 1;
        if round.is_multiple_of(13) {
            writer.delete(*round * 4 % IDS).expect("delete");
            return;
        }
        let vs: Vec<(u64, Vec<f32>)> = (0..4).map(|k| ((*round * 4 + k) % IDS, vector(*round, k, DIM))).collect();
        writer.store_batch(&refs(&vs)).expect("batch");
    };
    for phase in 0..PHASES {
        let writing = AtomicBool::new(true);
        std::thread::scope(|s| {
            s.spawn(|| {
                let rotations = writer.metrics().checkpoints;
                // Fill segment N to just below the big batch's room.
                let big_frame_bytes = 32 + 16 * BIG_BATCH_VECTORS;
                while writer.metrics().wal_bytes + big_frame_bytes + 1024 < SEGMENT_BYTES {
                    small_batch(&mut round);
                }
                let big: Vec<(u64, Vec<f32>)> =
                    (0..BIG_BATCH_VECTORS).map(|k| ((phase * 7919 + k) % IDS, vector(phase, k, DIM))).collect();
                writer.store_batch(&refs(&big)).expect("big batch");
                // A short pause, so the followers read N with the big batch
                // in it but without the frames that follow.
                std::thread::sleep(Duration::from_millis(1));
                while writer.metrics().checkpoints == rotations {
                    small_batch(&mut round);
                }
                // A few batches into N+1, then idle.
                for _ in 0..8 {
                    small_batch(&mut round);
                }
                writing.store(false, Ordering::Release);
            });
            for r in &readers {
                s.spawn(|| {
                    while writing.load(Ordering::Acquire) {
                        r.refresh().expect("refresh while the writer runs");
                    }
                });
            }
        });
        // The writer is idle now.
        for (i, r) in readers.iter().enumerate() {
            let (diff, reloaded) = converge(r, &writer);
            reloads += usize::from(reloaded);
            if let Some(diff) = diff {
                panic!(
                    "phase {phase}, follower {i}: three refreshes after the writer went idle left it behind: {diff}"
                );
            }
        }
    }
    println!(
        "{round} small batches, {} rotations, {reloads} converging refreshes reloaded",
        writer.metrics().checkpoints
    );
}

// Proves a follower that finds the log continuing at a later LSN than its
// cursor reloads from the newest snapshot and converges, instead of stopping
// quietly on every later refresh. The files are arranged to show it what
// the old follower saw when it lost the race at a rotation: segment N as it
// was when the follower read it, and segment N+1 already started.
#[test]
fn follower_reloads_instead_of_stalling_at_an_lsn_gap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    // No automatic checkpoints: the one rotation below is explicit.
    let opts = small(DIM);
    let mut model = BTreeMap::new();
    let writer: VectorStore<f32> = open(&path, &opts);
    for id in 0..10u64 {
        writer.store(id, &vector(id, 0, DIM)).expect("store");
        model.insert(id, vector(id, 0, DIM));
    }
    let r: VectorReader<f32> = opts.open_reader(&path).expect("open reader");
    same(&r, &model);
    let wal = path.join("wal");
    let segment_n = std::fs::read_dir(&wal)
        .expect("list wal")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "qwal"))
        .max()
        .expect("a segment");
    let read_by_follower = std::fs::metadata(&segment_n).expect("stat").len();
    for id in 10..20u64 {
        writer.store(id, &vector(id, 0, DIM)).expect("store");
        model.insert(id, vector(id, 0, DIM));
    }
    writer.checkpoint().expect("checkpoint: segment N+1 starts");
    for id in 20..30u64 {
        writer.store(id, &vector(id, 0, DIM)).expect("store");
        model.insert(id, vector(id, 0, DIM));
    }
    drop(writer);
    let whole = std::fs::read(&segment_n).expect("read segment N");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment_n)
        .expect("open segment N")
        .set_len(read_by_follower)
        .expect("cut segment N back to what the follower read");
    let first = r.refresh().expect("refresh at the gap");
    std::fs::write(&segment_n, &whole).expect("restore segment N");
    let mut reloaded = first.reloaded;
    for _ in 0..3 {
        if r.len() == model.len() {
            break;
        }
        reloaded |= r.refresh().expect("refresh").reloaded;
    }
    same(&r, &model);
    assert!(reloaded, "the gap was crossed by a reload from the newest snapshot");
}

// Proves what a follower sees at Durability::Sync is what a crash-and-reopen
// of the writer would recover (docs/DURABILITY.md, "What a follower sees"):
// a batch whose group-commit fdatasync is still in flight is already visible
// to a follower, though not to the writer's own readers; when that sync
// fails, the store() returns the error and the writer is poisoned, the
// follower keeps serving the batch, and a reopen of the writer recovers
// exactly the follower's ids and vectors.
#[test]
fn follower_at_sync_sees_what_a_reopen_recovers_even_when_the_sync_fails() {
    // The k-th fdatasync of a WAL segment after arming fails.
    const K: u64 = 3;
    const WAIT: Duration = Duration::from_secs(20);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let armed = Arc::new(AtomicBool::new(false));
    let syncs = Arc::new(AtomicU64::new(0));
    // The failing sync first reports that it is in flight, then waits until
    // the test has looked at the follower, then fails.
    let (in_flight_tx, in_flight) = mpsc::channel::<()>();
    let (looked, looked_rx) = mpsc::channel::<()>();
    let in_flight_tx = Mutex::new(in_flight_tx);
    let looked_rx = Mutex::new(looked_rx);
    let (a, n) = (Arc::clone(&armed), Arc::clone(&syncs));
    let faults = injector(move |step| match step {
        IoStep::SyncData { path }
            if in_wal(path) && a.load(Ordering::SeqCst) && n.fetch_add(1, Ordering::SeqCst) + 1 == K =>
        {
            let _ = in_flight_tx.lock().expect("sender").send(());
            let _ = looked_rx.lock().expect("receiver").recv_timeout(WAIT);
            FaultAction::Fail(os_error(EIO))
        }
        _ => FaultAction::Proceed,
    });
    let opts = small(DIM).durability(Durability::Sync);
    let writer: VectorStore<f32> = open(&path, &opts.clone().fault_injector(faults));
    for id in 0..5u64 {
        writer.store(id, &vector(id, 0, DIM)).expect("store before arming");
    }
    let follower: VectorReader<f32> = opts.open_reader(&path).expect("open reader");
    armed.store(true, Ordering::SeqCst);

    let (failed, store_error, seen_in_flight) = std::thread::scope(|s| {
        let w = s.spawn(|| {
            for id in 100..100 + 10 * K {
                if let Err(e) = writer.store(id, &vector(id, 0, DIM)) {
                    return Some((id, e));
                }
            }
            None
        });
        // Observations are collected first and asserted after the writer
        // thread is released, so a failing assertion cannot leave it waiting.
        let seen = in_flight.recv_timeout(WAIT).ok().map(|()| {
            let refreshed = follower.refresh();
            let mut extra: Vec<u64> = follower.ids().into_iter().filter(|&id| !writer.contains(id)).collect();
            extra.sort_unstable();
            (refreshed, extra)
        });
        let _ = looked.send(());
        let (failed, e) = w.join().expect("writer thread").expect("the k-th sync was reached and failed a store()");
        (failed, e, seen)
    });
    println!("the store() whose sync failed returned: {store_error}");
    assert!(matches!(store_error, Error::Io { .. }), "the failed sync's own call reports the I/O error");
    let (refreshed, extra) = seen_in_flight.expect("the failing sync reported that it was in flight");
    refreshed.expect("refresh while the sync is in flight");
    assert_eq!(extra, vec![failed], "while its sync is in flight, the batch is visible to the follower only");
    assert!(!writer.contains(failed), "the writer's own readers never see a batch whose sync failed");
    let after = writer.store(9999, &vector(9999, 0, DIM));
    assert!(matches!(after, Err(Error::Poisoned { .. })), "a failed sync poisons the writer: {after:?}");

    // The follower keeps the batch: it is whole and valid in the WAL file.
    assert_eq!(follower.refresh().expect("refresh after the failure").batches_applied, 0);
    assert_eq!(follower.retrieve(failed), Some(vector(failed, 0, DIM)));
    let mut model: BTreeMap<u64, Vec<f32>> = (0..5u64).chain(100..=failed).map(|id| (id, vector(id, 0, DIM))).collect();
    same(&follower, &model);

    // A reopen of the writer (the machine stayed up) recovers the same.
    drop(writer);
    let reopened: VectorStore<f32> = open(&path, &opts);
    assert_eq!(difference(&follower, &reopened), None, "the reopened writer and the follower disagree");
    // And the follower goes on following the reopened writer.
    reopened.store(500, &vector(500, 0, DIM)).expect("store after the reopen");
    model.insert(500, vector(500, 0, DIM));
    follower.refresh().expect("refresh after the reopen");
    same(&follower, &model);
    assert_eq!(difference(&follower, &reopened), None);
}

// Proves a follower sees a batch exactly when its frame is in the WAL file,
// as a crash-and-reopen would recover it: at Buffered as soon as store()
// returns; at Deferred not while the frame is only in the writer's buffer,
// and as soon as flush() writes it out.
#[test]
fn follower_sees_frames_once_they_are_in_the_wal_file() {
    for level in [Durability::Buffered, Durability::Deferred] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = store_path(&dir);
        let writer: VectorStore<f32> = open(&path, &small(DIM).durability(level));
        let follower: VectorReader<f32> = small(DIM).open_reader(&path).expect("open reader");
        for id in 0..10u64 {
            writer.store(id, &vector(id, 0, DIM)).expect("store");
        }
        follower.refresh().expect("refresh");
        let expected_before_flush = if level == Durability::Deferred { 0 } else { 10 };
        assert_eq!(follower.len(), expected_before_flush, "{level:?}: before flush");
        writer.flush().expect("flush");
        follower.refresh().expect("refresh");
        assert_eq!(follower.len(), 10, "{level:?}: after flush");
        assert_eq!(difference(&follower, &writer), None, "{level:?}");
    }
}
