//! The change feed: `changes_since(lsn)` yields exactly the puts and deletes
//! committed after `lsn`, in LSN order, across checkpoints, reopens and
//! followers; after a compaction it starts no earlier than the compaction
//! and says so; a damaged record is an error, never a silently skipped
//! change.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use quiver_storage::format::{DATA_HEADER_BYTES, RECORD_HEADER_BYTES, data_file_name, record_size_bytes};
use quiver_storage::{Change, Error, Headroom, Snapshot, VectorStore};

use crate::common::{open, small, store_path, test_seed, vector};

const DIM: usize = 4;

/// One committed change as the test expects the feed to report it.
#[derive(Clone, Debug, PartialEq)]
enum Expected {
    Put(u64, u64, Vec<f32>),
    Delete(u64, u64),
}

/// The feed after `lsn`, collected into the test's shape.
fn feed_of(snapshot: &Snapshot<f32>, lsn: u64) -> Vec<Expected> {
    snapshot
        .changes_since(lsn)
        .expect("feed")
        .map(|c| match c.expect("a verified record") {
            Change::Put { lsn, id, slot, vector } => {
                assert_eq!(snapshot.vector_at(slot), Some(vector), "the put's slot holds its vector");
                Expected::Put(lsn, id, vector.to_vec())
            }
            Change::Delete { lsn, id } => Expected::Delete(lsn, id),
        })
        .collect()
}

fn after(log: &[Expected], lsn: u64) -> Vec<Expected> {
    log.iter()
        .filter(|e| match e {
            Expected::Put(l, ..) | Expected::Delete(l, _) => *l > lsn,
        })
        .cloned()
        .collect()
}

/// A small deterministic generator (xorshift64*), seeded per run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Applies a random mix of puts, overwrites, batches and deletes (of present
/// and absent ids) to `store`, recording each committed change in `log`.
fn random_writes(store: &VectorStore<f32>, rng: &mut Rng, ops: usize, version: &mut u64, log: &mut Vec<Expected>) {
    for _ in 0..ops {
        *version += 1;
        match rng.below(10) {
            0..=4 => {
                let id = rng.below(40);
                let v = vector(id, *version, DIM);
                store.store(id, &v).expect("store");
                log.push(Expected::Put(store.snapshot().lsn(), id, v));
            }
            5..=6 => {
                let ids: Vec<u64> = (0..1 + rng.below(5)).map(|_| rng.below(40)).collect();
                let vs: Vec<Vec<f32>> = ids.iter().map(|&id| vector(id, *version, DIM)).collect();
                let batch: Vec<(u64, &[f32])> = ids.iter().copied().zip(vs.iter().map(|v| &v[..])).collect();
                store.store_batch(&batch).expect("batch");
                let lsn = store.snapshot().lsn();
                // The last occurrence of an id wins, in the batch's order.
                for (i, &(id, v)) in batch.iter().enumerate() {
                    if !batch[i + 1..].iter().any(|&(later, _)| later == id) {
                        log.push(Expected::Put(lsn, id, v.to_vec()));
                    }
                }
            }
            _ => {
                let id = rng.below(50);
                if store.delete(id).expect("delete") {
                    log.push(Expected::Delete(store.snapshot().lsn(), id));
                }
            }
        }
    }
}

// Proves the feed from every LSN is exactly the committed history after it,
// in LSN order, with a checkpoint and a reopen in the middle of it.
#[test]
fn feed_is_the_exact_history_after_any_lsn_across_checkpoints_and_reopen() {
    let seed = test_seed();
    eprintln!("QUIVER_TEST_SEED={seed}");
    let mut rng = Rng(seed | 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let (mut log, mut version) = (Vec::new(), 0);
    {
        let store = open(&path, &small(DIM));
        random_writes(&store, &mut rng, 120, &mut version, &mut log);
        store.checkpoint().expect("checkpoint");
        random_writes(&store, &mut rng, 60, &mut version, &mut log);
        store.close().expect("close");
    }
    let store = open(&path, &small(DIM));
    random_writes(&store, &mut rng, 60, &mut version, &mut log);
    let snapshot = store.snapshot();
    assert_eq!(snapshot.changes_after_lsn(), 0, "the first generation holds the whole history");
    for lsn in 0..=snapshot.lsn() {
        assert_eq!(feed_of(&snapshot, lsn), after(&log, lsn), "the feed after LSN {lsn} (seed {seed})");
    }
    let feed = store.changes_since(0).expect("owned feed");
    assert_eq!((feed.since_lsn(), feed.lsn(), feed.record_count()), (0, snapshot.lsn(), log.len() as u64));
}

// Proves a snapshot's feed stops at its own LSN: writes after it are not in
// it, and the owned feed's `lsn()` is the LSN to resume from.
#[test]
fn feed_of_a_snapshot_ends_at_its_lsn_and_resumes_from_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&store_path(&dir), &small(DIM));
    store.store(1, &vector(1, 0, DIM)).expect("store");
    let first = store.changes_since(0).expect("feed");
    store.store(2, &vector(2, 0, DIM)).expect("store");
    store.delete(1).expect("delete");
    assert_eq!(first.iter().count(), 1, "the feed's snapshot does not see later writes");
    let rest: Vec<(u64, bool)> = store
        .changes_since(first.lsn())
        .expect("feed")
        .iter()
        .map(|c| c.map(|c| (c.id(), matches!(c, Change::Put { .. }))).expect("record"))
        .collect();
    assert_eq!(rest, [(2, true), (1, false)]);
    assert_eq!(store.changes_since(store.snapshot().lsn()).expect("feed").iter().count(), 0);
}

// Proves an LSN past the view is refused, and that the refusal names both
// LSNs.
#[test]
fn feed_refuses_an_lsn_past_the_view() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&store_path(&dir), &small(DIM));
    store.store(1, &vector(1, 0, DIM)).expect("store");
    let err = store.changes_since(5).expect_err("LSN 5 is not committed");
    assert!(matches!(err, Error::LsnAhead { since_lsn: 5, last_lsn: 1 }), "{err}");
}

// Proves that after a compaction the feed is exact from the LSN the
// compaction began at — with writes during the copy carried over, puts and
// deletes alike — that an older start is refused rather than answered with
// a partial history, and that the boundary survives a reopen.
#[test]
fn feed_after_compaction_starts_at_the_compaction_and_refuses_older_lsns() {
    let mut rng = Rng(test_seed() | 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let (mut log, mut version) = (Vec::new(), 0);
    let store = open(&path, &small(DIM));
    random_writes(&store, &mut rng, 80, &mut version, &mut log);
    let began_at = store.snapshot().lsn();
    let mut compaction = store.begin_compaction(Headroom::default()).expect("begin");
    while compaction.copy_live(7).expect("copy") > 0 {}
    random_writes(&store, &mut rng, 30, &mut version, &mut log);
    compaction.catch_up().expect("catch up");
    random_writes(&store, &mut rng, 10, &mut version, &mut log);
    compaction.commit().expect("commit");
    random_writes(&store, &mut rng, 20, &mut version, &mut log);

    let check = |store: &VectorStore<f32>| {
        let snapshot = store.snapshot();
        assert_eq!((snapshot.generation(), snapshot.changes_after_lsn()), (2, began_at));
        for lsn in began_at..=snapshot.lsn() {
            assert_eq!(feed_of(&snapshot, lsn), after(&log, lsn), "the feed after LSN {lsn}");
        }
        let err = store.changes_since(began_at - 1).expect_err("history before the compaction is gone");
        assert!(
            matches!(err, Error::ChangesCompacted { since_lsn, changes_after_lsn, generation: 2 }
                if since_lsn == began_at - 1 && changes_after_lsn == began_at),
            "{err}"
        );
    };
    check(&store);
    store.close().expect("close");
    check(&open(&path, &small(DIM)));
}

// Proves a follower's feed equals the writer's up to what it has applied.
#[test]
fn follower_feed_equals_the_writers() {
    let mut rng = Rng(test_seed() | 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let (mut log, mut version) = (Vec::new(), 0);
    let store = open(&path, &small(DIM));
    random_writes(&store, &mut rng, 50, &mut version, &mut log);
    let reader: quiver_storage::VectorReader<f32> = small(DIM).open_reader(&path).expect("reader");
    random_writes(&store, &mut rng, 50, &mut version, &mut log);
    reader.refresh().expect("refresh");
    let theirs = reader.snapshot();
    assert_eq!(theirs.lsn(), store.snapshot().lsn());
    assert_eq!(feed_of(&theirs, 10), after(&log, 10));
    assert_eq!(reader.changes_since(0).expect("feed").record_count(), log.len() as u64);
}

// Proves a record that fails its checksum is reported as corruption at its
// offset and ends the feed, so an index never skips a change silently.
#[test]
fn damaged_record_is_an_error_and_ends_the_feed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    {
        let store = open(&path, &small(DIM));
        for id in 0..5 {
            store.store(id, &vector(id, 0, DIM)).expect("store");
        }
        // Checkpointed, so the reopen trusts the records instead of
        // replaying (and checking) them from the WAL.
        store.close().expect("close");
    }
    let record = u64::from(record_size_bytes(DIM as u32, 4));
    let damaged_at = DATA_HEADER_BYTES + 2 * record + u64::from(RECORD_HEADER_BYTES) + 1;
    let data = OpenOptions::new().read(true).write(true).open(path.join(data_file_name(1))).expect("data file");
    let mut byte = [0u8; 1];
    data.read_exact_at(&mut byte, damaged_at).expect("read");
    data.write_all_at(&[byte[0] ^ 0x40], damaged_at).expect("damage a payload byte of slot 2");
    drop(data);

    let store = open(&path, &small(DIM));
    let feed = store.changes_since(0).expect("feed");
    let items: Vec<_> = feed.iter().collect();
    assert_eq!(items.len(), 3, "two changes, then the error, then nothing: {items:?}");
    assert!(items[..2].iter().all(Result::is_ok));
    match &items[2] {
        Err(Error::Corrupted { offset, .. }) => assert_eq!(*offset, DATA_HEADER_BYTES + 2 * record + 60),
        other => panic!("expected corruption at slot 2's checksum, got {other:?}"),
    }
}
