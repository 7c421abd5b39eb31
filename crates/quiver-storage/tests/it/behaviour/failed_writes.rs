//! Writes that fail, through the fault injector: a failed WAL or data write
//! is reported, invisible and never reappears after a restart (seed defect
//! 4); a short WAL write is cut back, or poisons when it cannot be; a failed
//! sync poisons the store; ENOSPC on growth is an error, the store works
//! again once space returns, and growth falls back to smaller steps when the
//! preferred one does not fit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use quiver_storage::io::{FaultAction, IoStep};
use quiver_storage::{Durability, Error, VectorStore};

use super::{EIO, ENOSPC, fail_once_armed, in_wal, injector, is_data_file, os_error, refs};
use crate::common::{open, small, store_path, vector};

const LEVELS: [Durability; 3] = [Durability::Sync, Durability::Buffered, Durability::Deferred];

/// Runs the "failed write" scenario with an injector that fails the next
/// write matching `target` once `fail_next` is set.
fn failed_write_stays_gone(level: Durability, target: fn(&std::path::Path) -> bool, what: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let (fail_next, faults) = fail_once_armed(move |step| matches!(step, IoStep::Write { path, .. } if target(path)));
    let opts = small(4).durability(level);
    {
        let s = open(&path, &opts.clone().fault_injector(faults));
        for id in 0..5 {
            s.store(id, &vector(id, 0, 4)).expect("store");
        }
        fail_next.store(true, Ordering::SeqCst);
        let e = s.store(7, &vector(7, 0, 4)).expect_err("the injected failure is reported");
        assert!(!fail_next.load(Ordering::SeqCst), "{level:?} {what}: the injector never fired");
        assert!(!matches!(e, Error::Poisoned { .. }), "{level:?} {what}: a failed write need not poison: {e}");
        assert!(!s.contains(7) && s.retrieve(7).is_none(), "{level:?} {what}: the failed write is visible");
        assert_eq!(s.len(), 5);
        assert!(!s.delete(7).expect("delete"), "{level:?} {what}: the failed id counts as present");
        s.store(8, &vector(8, 0, 4)).expect("a later store works");
        let later: Vec<(u64, Vec<f32>)> = (9..12).map(|id| (id, vector(id, 0, 4))).collect();
        assert_eq!(s.store_batch(&refs(&later)).expect("a later batch works"), 3);
        s.flush().expect("flush");
        // Dropped without close: recovery replays the WAL.
    }
    let s = open(&path, &opts);
    assert!(!s.contains(7), "{level:?} {what}: the failed write reappeared after restart");
    assert_eq!(s.len(), 9);
    assert_eq!(s.retrieve(8), Some(vector(8, 0, 4)));
    s.close().expect("close");
    let s = open(&path, &opts);
    assert!(!s.contains(7), "{level:?} {what}: the failed write reappeared after a checkpoint");
    assert_eq!(s.len(), 9);
}

// Proves that a store() whose WAL write fails returns the error, is not
// visible, lets later writes succeed, and is absent after a restart (seed
// defect 4), at Sync and Buffered (Deferred writes the WAL only at flush).
#[test]
fn failed_wal_write_is_invisible_and_stays_gone() {
    for level in [Durability::Sync, Durability::Buffered] {
        failed_write_stays_gone(level, in_wal, "WAL write");
    }
}

// Proves the same when the record write to the data file fails, at every
// durability level.
#[test]
fn failed_data_write_is_invisible_and_stays_gone() {
    for level in LEVELS {
        failed_write_stays_gone(level, is_data_file, "data write");
    }
}

/// Asserts every write entry point now fails with Error::Poisoned.
fn assert_every_write_is_poisoned(s: &VectorStore<f32>, existing: u64) {
    let v = vector(1000, 0, 4);
    let checks: [(&str, Result<(), Error>); 8] = [
        ("store", s.store(1000, &v)),
        ("store_batch", s.store_batch(&[(1001, &v[..])]).map(|_| ())),
        ("empty store_batch", s.store_batch(&[]).map(|_| ())),
        ("delete of a present id", s.delete(existing).map(|_| ())),
        ("delete of an absent id", s.delete(999_999).map(|_| ())),
        ("flush", s.flush()),
        ("checkpoint", s.checkpoint()),
        ("reserve_capacity", s.reserve_capacity(10)),
    ];
    for (what, r) in checks {
        assert!(matches!(r, Err(Error::Poisoned { .. })), "{what} after a failed sync: {r:?}");
    }
}

// Proves that at Durability::Sync an EIO on the k-th fdatasync fails that
// store(), leaves its value invisible, makes every later write return
// Error::Poisoned while reads keep working, and that after reopen the failed
// write is either wholly present or wholly absent.
#[test]
fn failed_sync_poisons_at_sync() {
    const K: u64 = 3;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let armed = Arc::new(AtomicBool::new(false));
    let syncs = Arc::new(AtomicU64::new(0));
    let (a, n) = (Arc::clone(&armed), Arc::clone(&syncs));
    let faults = injector(move |step| match step {
        IoStep::SyncData { .. } if a.load(Ordering::SeqCst) && n.fetch_add(1, Ordering::SeqCst) + 1 == K => {
            FaultAction::Fail(os_error(EIO))
        }
        _ => FaultAction::Proceed,
    });
    let opts = small(4).durability(Durability::Sync);
    let mut acknowledged = Vec::new();
    let failed;
    {
        let s = open(&path, &opts.clone().fault_injector(faults));
        for id in 0..3 {
            s.store(id, &vector(id, 0, 4)).expect("store before arming");
            acknowledged.push(id);
        }
        armed.store(true, Ordering::SeqCst);
        let mut id = 10;
        loop {
            assert!(id < 10 + 10 * K, "the k-th sync was never reached");
            match s.store(id, &vector(id, 0, 4)) {
                Ok(()) => acknowledged.push(id),
                Err(e) => {
                    println!("the store() whose sync failed returned: {e}");
                    break;
                }
            }
            id += 1;
        }
        failed = id;
        assert!(syncs.load(Ordering::SeqCst) >= K);
        assert!(!s.contains(failed) && s.retrieve(failed).is_none(), "the unsynced write is visible");
        assert_every_write_is_poisoned(&s, 0);
        // Reads still work.
        assert_eq!(s.len(), acknowledged.len());
        for &id in &acknowledged {
            assert_eq!(s.get(id).map(|g| g.to_vec()), Some(vector(id, 0, 4)), "id {id}");
        }
        assert!(!s.contains(failed));
    }
    let s = open(&path, &opts);
    for &id in &acknowledged {
        assert_eq!(s.retrieve(id), Some(vector(id, 0, 4)), "acknowledged id {id} lost");
    }
    let got = s.retrieve(failed);
    assert!(got.is_none() || got == Some(vector(failed, 0, 4)), "the failed write came back torn: {got:?}");
    assert_eq!(s.len(), acknowledged.len() + usize::from(got.is_some()));
    s.store(500, &vector(500, 0, 4)).expect("a reopened store takes writes");
}

// Proves that at Durability::Buffered a failed fdatasync in flush() returns
// the I/O error and poisons the store; the writes acknowledged before it stay
// readable and survive a reopen.
#[test]
fn failed_sync_in_flush_poisons_at_buffered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let armed = Arc::new(AtomicBool::new(false));
    let a = Arc::clone(&armed);
    let faults = injector(move |step| match step {
        IoStep::SyncData { .. } if a.swap(false, Ordering::SeqCst) => FaultAction::Fail(os_error(EIO)),
        _ => FaultAction::Proceed,
    });
    let opts = small(4).durability(Durability::Buffered);
    {
        let s = open(&path, &opts.clone().fault_injector(faults));
        for id in 0..20 {
            s.store(id, &vector(id, 0, 4)).expect("store");
        }
        armed.store(true, Ordering::SeqCst);
        let e = s.flush().expect_err("the injected EIO is reported");
        assert_eq!(e.raw_os_error(), Some(EIO), "{e}");
        assert_every_write_is_poisoned(&s, 0);
        assert_eq!(s.len(), 20);
        assert_eq!(s.retrieve(19), Some(vector(19, 0, 4)));
    }
    let s = open(&path, &opts);
    assert_eq!(s.len(), 20);
    assert_eq!(s.retrieve(19), Some(vector(19, 0, 4)));
}

// Proves that ENOSPC on growth is an error (not a panic or SIGBUS) for
// store, store_batch and reserve_capacity, that nothing of the failed writes
// becomes visible or poisons the store, and that once space returns writes
// work again and everything survives a reopen, at every durability level.
#[test]
fn enospc_on_growth_is_an_error_and_the_store_recovers() {
    for level in LEVELS {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = store_path(&dir);
        let full = Arc::new(AtomicBool::new(false));
        let f = Arc::clone(&full);
        let faults = injector(move |step| match step {
            IoStep::Allocate { .. } if f.load(Ordering::SeqCst) => FaultAction::Fail(os_error(ENOSPC)),
            _ => FaultAction::Proceed,
        });
        let opts = small(8).durability(level);
        let s = open(&path, &opts.clone().fault_injector(faults));
        full.store(true, Ordering::SeqCst);
        let mut n = 0u64;
        let e = loop {
            assert!(n < 100_000, "{level:?}: growth never happened");
            match s.store(n, &vector(n, 0, 8)) {
                Ok(()) => n += 1,
                Err(e) => break e,
            }
        };
        assert!(n > 0, "{level:?}: the initial file held nothing");
        assert_eq!(e.raw_os_error(), Some(ENOSPC), "{level:?}: {e}");
        assert!(!s.contains(n), "{level:?}: the failed store is visible");
        let batch: Vec<(u64, Vec<f32>)> = (n..n + 10).map(|id| (id, vector(id, 1, 8))).collect();
        let e = s.store_batch(&refs(&batch)).expect_err("a batch needing growth fails");
        assert_eq!(e.raw_os_error(), Some(ENOSPC), "{level:?}: {e}");
        let e = s.reserve_capacity(1000).expect_err("reserve_capacity fails");
        assert_eq!(e.raw_os_error(), Some(ENOSPC), "{level:?}: {e}");
        assert_eq!(s.len() as u64, n, "{level:?}: a failed write became visible");
        assert!((n..n + 10).all(|id| !s.contains(id)));

        full.store(false, Ordering::SeqCst);
        s.store(n, &vector(n, 0, 8)).expect("space is back");
        assert_eq!(s.store_batch(&refs(&batch)).expect("batch after space returns"), 10);
        s.reserve_capacity(1000).expect("reserve after space returns");
        s.flush().expect("flush");
        assert_eq!(s.len() as u64, n + 10);
        drop(s);

        let s = open(&path, &opts);
        assert_eq!(s.len() as u64, n + 10, "{level:?}");
        for id in 0..n {
            assert_eq!(s.retrieve(id), Some(vector(id, 0, 8)), "{level:?} id {id}");
        }
        for id in n..n + 10 {
            assert_eq!(s.retrieve(id), Some(vector(id, 1, 8)), "{level:?} id {id}");
        }
    }
}

// Proves growth falls back to smaller steps when the preferred step does not
// fit: with every fallocate larger than 16 KiB refused (ENOSPC), writes that
// need growth still succeed, and no allowed step exceeds the bound.
#[test]
fn growth_falls_back_to_smaller_steps_on_a_nearly_full_disk() {
    const BOUND: u64 = 16 << 10;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let armed = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicU64::new(0));
    let allowed = Arc::new(AtomicU64::new(0));
    let largest = Arc::new(AtomicU64::new(0));
    let (a, r, ok, big) = (Arc::clone(&armed), Arc::clone(&refused), Arc::clone(&allowed), Arc::clone(&largest));
    let faults = injector(move |step| match step {
        IoStep::Allocate { len, .. } if a.load(Ordering::SeqCst) => {
            if len > BOUND {
                r.fetch_add(1, Ordering::SeqCst);
                FaultAction::Fail(os_error(ENOSPC))
            } else {
                ok.fetch_add(1, Ordering::SeqCst);
                big.fetch_max(len, Ordering::SeqCst);
                FaultAction::Proceed
            }
        }
        _ => FaultAction::Proceed,
    });
    let opts = small(8);
    let s = open(&path, &opts.clone().fault_injector(faults));
    armed.store(true, Ordering::SeqCst);
    for id in 0..2000 {
        s.store(id, &vector(id, 0, 8)).expect("a write on a nearly full disk still succeeds");
    }
    let pairs: Vec<(u64, Vec<f32>)> = (2000..2100).map(|id| (id, vector(id, 0, 8))).collect();
    assert_eq!(s.store_batch(&refs(&pairs)).expect("a batch that fits under the bound"), 100);
    assert!(refused.load(Ordering::SeqCst) > 0, "no preferred step was refused: the test did not test fallback");
    assert!(allowed.load(Ordering::SeqCst) > 0);
    assert!(largest.load(Ordering::SeqCst) <= BOUND);
    assert_eq!(s.metrics().growth_events, allowed.load(Ordering::SeqCst));
    assert_eq!(s.len(), 2100);
    drop(s);
    let s = open(&path, &opts);
    assert_eq!(s.len(), 2100);
    assert_eq!(s.retrieve(1999), Some(vector(1999, 0, 8)));
}

// Proves a WAL write that comes up short (half the frame written, then an
// error) is cut back to the last frame boundary: the error is returned, the
// write is invisible, the store is not poisoned, later writes land after the
// boundary and all of them (but not the failed one) survive a restart.
#[test]
fn short_wal_write_is_cut_back() {
    for level in [Durability::Sync, Durability::Buffered] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = store_path(&dir);
        let fail_next = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&fail_next);
        let faults = injector(move |step| match step {
            IoStep::Write { path, len, .. } if in_wal(path) && flag.swap(false, Ordering::SeqCst) => {
                FaultAction::Short(len / 2, os_error(EIO))
            }
            _ => FaultAction::Proceed,
        });
        let opts = small(4).durability(level);
        {
            let s = open(&path, &opts.clone().fault_injector(faults));
            s.store(1, &vector(1, 0, 4)).expect("store");
            fail_next.store(true, Ordering::SeqCst);
            s.store(2, &vector(2, 0, 4)).expect_err("the short write is reported");
            assert!(!s.contains(2), "{level:?}");
            for id in 3..20 {
                s.store(id, &vector(id, 0, 4)).expect("a later store works");
            }
        }
        let s = open(&path, &opts);
        assert!(s.recovery_report().torn_tail.is_none(), "{level:?}: {:?}", s.recovery_report().torn_tail);
        assert!(!s.contains(2), "{level:?}: the short write reappeared");
        assert_eq!(s.len(), 18, "{level:?}: writes after the cut were lost");
    }
}

// Proves that when a short WAL write cannot be cut back (the truncate fails
// too), the store is poisoned, and after a restart the partial frame is cut
// as a torn tail: the failed write is absent and earlier writes are present.
#[test]
fn short_wal_write_that_cannot_be_cut_poisons() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let armed = Arc::new(AtomicBool::new(false));
    let a = Arc::clone(&armed);
    let faults = injector(move |step| match step {
        IoStep::Write { path, len, .. } if in_wal(path) && a.load(Ordering::SeqCst) => {
            FaultAction::Short(len / 2, os_error(EIO))
        }
        IoStep::SetLen { path, .. } if in_wal(path) && a.load(Ordering::SeqCst) => FaultAction::Fail(os_error(EIO)),
        _ => FaultAction::Proceed,
    });
    let opts = small(4);
    {
        let s = open(&path, &opts.clone().fault_injector(faults));
        for id in 0..5 {
            s.store(id, &vector(id, 0, 4)).expect("store");
        }
        armed.store(true, Ordering::SeqCst);
        s.store(5, &vector(5, 0, 4)).expect_err("the short write is reported");
        armed.store(false, Ordering::SeqCst);
        assert!(!s.contains(5));
        assert_every_write_is_poisoned(&s, 0);
        assert_eq!(s.len(), 5);
    }
    let s = open(&path, &opts);
    assert!(s.recovery_report().torn_tail.is_some(), "the partial frame was not reported as a torn tail");
    assert!(!s.contains(5), "the failed write reappeared");
    assert_eq!(s.len(), 5);
    s.store(5, &vector(5, 1, 4)).expect("the reopened store takes writes");
}

// Proves a failed manifest replace (the commit point of a checkpoint) and a
// failed data-file sync inside a checkpoint at Sync each poison the store:
// whether the rename reached the disk, or whether the records the manifest
// would declare durable are, is unknown, so no later write may succeed; and
// a reopen holds every acknowledged write.
#[test]
fn failed_manifest_replace_or_checkpoint_data_sync_poisons() {
    for case in ["manifest rename", "checkpoint data sync"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = store_path(&dir);
        let (armed, faults) = fail_once_armed(move |step| match step {
            IoStep::Rename { to, .. } if case == "manifest rename" => to.file_name().is_some_and(|n| n == "MANIFEST"),
            IoStep::SyncData { path } if case == "checkpoint data sync" => is_data_file(path),
            _ => false,
        });
        let opts = small(4).durability(Durability::Sync);
        {
            let s = open(&path, &opts.clone().fault_injector(faults));
            let batch: Vec<(u64, Vec<f32>)> = (0..8).map(|id| (id, vector(id, 0, 4))).collect();
            s.store_batch(&refs(&batch)).expect("store");
            armed.store(true, Ordering::SeqCst);
            let e = s.checkpoint().expect_err("the injected failure is reported");
            assert!(!armed.load(Ordering::SeqCst), "{case}: the injector never fired");
            assert!(matches!(e, Error::Io { .. }), "{case}: {e}");
            assert_every_write_is_poisoned(&s, 0);
            assert_eq!(s.len(), 8, "{case}: reads keep working");
        }
        let s = open(&path, &opts);
        assert_eq!(s.len(), 8, "{case}: reopen holds every acknowledged write");
        assert_eq!(s.retrieve(7), Some(vector(7, 0, 4)));
        s.close().expect("close");
    }
}
