//! Poison is checked by the code that holds the lock, not before it: a sync
//! that fails while other threads wait for the writer lock must not be
//! followed by their syncs reporting success (Linux reports a writeback
//! error once per file description, so a second `fdatasync` returns 0). Also
//! here: a panicking group-commit leader hands leadership back, and
//! `metrics()` never waits behind a checkpoint's syncs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quiver_storage::io::{FaultAction, IoStep};
use quiver_storage::{Durability, Error, VectorStore};

use super::{EIO, in_wal, injector, is_data_file, os_error, refs};
use crate::common::{open, small, store_path, vector};

/// How long the failing sync holds the writer lock, so the other threads are
/// surely waiting for it (on the code before the fix they had passed the
/// poison check by then; with the fix the test passes however long it is).
const HOLD: Duration = Duration::from_millis(300);

// Proves defect 1 of the review (issue 7): thread A's flush fails its
// fdatasync while threads B (flush) and C (checkpoint) wait for the writer
// lock. Neither may return Ok, no checkpoint may be written (it would declare
// lost pages durable and drop the WAL that could repair them), and a reopen
// holds exactly the acknowledged writes.
#[test]
fn failed_sync_is_never_followed_by_a_successful_flush_or_checkpoint() {
    for level in [Durability::Buffered, Durability::Deferred] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = store_path(&dir);
        let armed = Arc::new(AtomicBool::new(false));
        let (entered_tx, entered_rx) = mpsc::channel::<()>();
        let entered_tx = Mutex::new(entered_tx);
        let flag = Arc::clone(&armed);
        let faults = injector(move |step| match step {
            IoStep::SyncData { path } if (in_wal(path) || is_data_file(path)) && flag.swap(false, Ordering::SeqCst) => {
                let _ = entered_tx.lock().expect("sender").send(());
                std::thread::sleep(HOLD);
                FaultAction::Fail(os_error(EIO))
            }
            _ => FaultAction::Proceed,
        });
        let opts = small(4).durability(level);
        let store: Arc<VectorStore<f32>> = Arc::new(open(&path, &opts.clone().fault_injector(faults)));
        let durable: Vec<(u64, Vec<f32>)> = (0..10).map(|id| (id, vector(id, 0, 4))).collect();
        store.store_batch(&refs(&durable)).expect("store");
        store.flush().expect("flush before the failure");
        let acknowledged: Vec<(u64, Vec<f32>)> = (10..20).map(|id| (id, vector(id, 0, 4))).collect();
        store.store_batch(&refs(&acknowledged)).expect("store");
        let manifest_before = std::fs::read(path.join("MANIFEST")).expect("manifest");

        armed.store(true, Ordering::SeqCst);
        let a = {
            let s = Arc::clone(&store);
            std::thread::spawn(move || s.flush())
        };
        entered_rx.recv_timeout(Duration::from_secs(10)).expect("thread A reached its sync");
        let b = {
            let s = Arc::clone(&store);
            std::thread::spawn(move || s.flush())
        };
        let c = {
            let s = Arc::clone(&store);
            std::thread::spawn(move || s.checkpoint())
        };
        let (a, b, c) = (a.join().expect("A"), b.join().expect("B"), c.join().expect("C"));
        assert!(matches!(a, Err(Error::Io { .. })), "{level:?}: the failing flush reports the I/O error: {a:?}");
        assert!(matches!(b, Err(Error::Poisoned { .. })), "{level:?}: a flush after a failed sync: {b:?}");
        assert!(matches!(c, Err(Error::Poisoned { .. })), "{level:?}: a checkpoint after a failed sync: {c:?}");
        assert_eq!(
            std::fs::read(path.join("MANIFEST")).expect("manifest"),
            manifest_before,
            "{level:?}: a checkpoint was installed after the failed sync"
        );
        drop(Arc::into_inner(store).expect("the threads are done"));

        let reopened = open(&path, &opts);
        assert_eq!(reopened.len(), 20, "{level:?}: reopen holds every acknowledged write, nothing more");
        for (id, v) in durable.iter().chain(&acknowledged) {
            assert_eq!(reopened.retrieve(*id).as_ref(), Some(v), "{level:?}: id {id}");
        }
        reopened.close().expect("close");
    }
}

// Proves a group-commit leader that panics mid-sync (here: inside the fault
// injector) hands leadership back and poisons the store: the next Sync
// writer gets an error instead of waiting forever for a leader that is gone.
#[test]
fn panicking_group_commit_leader_does_not_hang_later_writers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let armed = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&armed);
    let faults = injector(move |step| match step {
        IoStep::SyncData { path } if in_wal(path) && flag.swap(false, Ordering::SeqCst) => {
            panic!("injected panic in the group-commit leader's sync")
        }
        _ => FaultAction::Proceed,
    });
    let opts = small(4).durability(Durability::Sync).fault_injector(faults);
    let store: Arc<VectorStore<f32>> = Arc::new(open(&path, &opts));
    store.store(1, &vector(1, 0, 4)).expect("store before the panic");
    armed.store(true, Ordering::SeqCst);
    let leader = {
        let s = Arc::clone(&store);
        std::thread::spawn(move || s.store(2, &vector(2, 0, 4)))
    };
    assert!(leader.join().is_err(), "the leader's thread panicked");

    let (tx, rx) = mpsc::channel();
    let s = Arc::clone(&store);
    std::thread::spawn(move || {
        let _ = tx.send(s.store(3, &vector(3, 0, 4)));
    });
    let later = rx.recv_timeout(Duration::from_secs(10)).expect("a later Sync writer hung behind the dead leader");
    match later {
        Err(Error::Poisoned { first_failure }) => assert!(first_failure.contains("panicked"), "{first_failure}"),
        other => panic!("expected Poisoned after a leader panic, got {other:?}"),
    }
    assert!(store.contains(1) && !store.contains(2) && !store.contains(3));
}

// Proves `metrics()` does not take the writer lock: it returns while a
// checkpoint is blocked in its snapshot's fsync (on the code before the fix
// it waited for the whole checkpoint).
#[test]
fn metrics_do_not_wait_behind_a_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let armed = Arc::new(AtomicBool::new(false));
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let channels = Mutex::new((entered_tx, release_rx));
    let flag = Arc::clone(&armed);
    let faults = injector(move |step| match step {
        IoStep::SyncAll { path }
            if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("snapshot-"))
                && flag.swap(false, Ordering::SeqCst) =>
        {
            let ch = channels.lock().expect("channels");
            let _ = ch.0.send(());
            let _ = ch.1.recv_timeout(Duration::from_secs(20));
            FaultAction::Proceed
        }
        _ => FaultAction::Proceed,
    });
    let store: Arc<VectorStore<f32>> = Arc::new(open(&path, &small(4).fault_injector(faults)));
    let batch: Vec<(u64, Vec<f32>)> = (0..50).map(|id| (id, vector(id, 0, 4))).collect();
    store.store_batch(&refs(&batch)).expect("store");
    armed.store(true, Ordering::SeqCst);
    let checkpoint = {
        let s = Arc::clone(&store);
        std::thread::spawn(move || s.checkpoint())
    };
    entered_rx.recv_timeout(Duration::from_secs(10)).expect("the checkpoint reached its snapshot sync");
    let (tx, rx) = mpsc::channel();
    let s = Arc::clone(&store);
    std::thread::spawn(move || {
        let m = s.metrics();
        let _ = tx.send((m.live_vectors, m.file_bytes));
    });
    let seen = rx.recv_timeout(Duration::from_secs(5));
    release_tx.send(()).expect("release the checkpoint");
    checkpoint.join().expect("checkpoint thread").expect("checkpoint");
    let (live, file_bytes) = seen.expect("metrics() waited behind the checkpoint's fsync");
    assert_eq!(live, 50);
    assert!(file_bytes > 0, "the published sizes are real");
}
