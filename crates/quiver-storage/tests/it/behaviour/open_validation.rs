//! What `open` and the write calls do with bad input: a wrong dimension or
//! element type, a zero or oversized dimension, a wrong-length vector, a path
//! that is a file or a foreign directory, a missing parent, a second writer,
//! a failure at any step of creating a store, an impossible map window or
//! capacity. Each is a clear error, never a panic, that changes nothing on
//! disk (seed defect 1: the seed destroyed its WAL when opened with the
//! wrong dimension).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use quiver_storage::io::{FaultAction, IoStep};
use quiver_storage::{Error, StoreOptions, VectorStore};

use super::{ENOSPC, assert_same_tree, data_file, injector, is_data_file, names_in, os_error, refs};
use crate::common::{open, small, snapshot_tree, store_path, vector};

// Proves that opening with the wrong dimension or element type fails with
// DimensionMismatch / ElementTypeMismatch, leaves every file's name and bytes
// unchanged (including a WAL holding writes after a checkpoint), and that the
// store then opens with the right shape and all of its data.
#[test]
fn wrong_dimension_or_element_type_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let opts = small(4);
    {
        let s = open(&path, &opts);
        for id in 0..50 {
            s.store(id, &vector(id, 0, 4)).expect("store");
        }
        s.checkpoint().expect("checkpoint");
        for id in 50..100 {
            s.store(id, &vector(id, 0, 4)).expect("store");
        }
        assert!(s.delete(3).expect("delete"));
        // Dropped without close: the last writes live only in the WAL.
    }
    let before = snapshot_tree(dir.path());

    let e = StoreOptions::new(5).open::<f32>(&path).expect_err("dimension 5 on a dimension-4 store");
    assert!(matches!(e, Error::DimensionMismatch { expected: 4, actual: 5 }), "{e}");
    let e = small(3).open::<f32>(&path).expect_err("dimension 3 on a dimension-4 store");
    assert!(matches!(e, Error::DimensionMismatch { expected: 4, actual: 3 }), "{e}");
    let e = small(4).open::<f64>(&path).expect_err("f64 on an f32 store");
    assert!(matches!(e, Error::ElementTypeMismatch { expected: "f32", actual: "f64" }), "{e}");
    let e = small(16).open::<u8>(&path).expect_err("u8 with the same byte size");
    assert!(matches!(e, Error::ElementTypeMismatch { expected: "f32", actual: "u8" }), "{e}");
    assert_same_tree(&before, &snapshot_tree(dir.path()), "after mismatched opens");

    let s = open(&path, &opts);
    assert_eq!(s.len(), 99);
    assert!(!s.contains(3));
    for id in (0..100).filter(|&id| id != 3) {
        assert_eq!(s.retrieve(id), Some(vector(id, 0, 4)), "id {id}");
    }
}

// Proves the element type is checked even when the byte size agrees: an
// f16 store refuses to open as bf16 and is left unchanged.
#[test]
fn f16_store_refuses_bf16() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    {
        let s: VectorStore<half::f16> = small(2).open(&path).expect("create f16 store");
        s.store(1, &[half::f16::from_f32(1.5), half::f16::from_f32(-2.0)]).expect("store");
    }
    let before = snapshot_tree(dir.path());
    let e = small(2).open::<half::bf16>(&path).expect_err("bf16 on an f16 store");
    assert!(matches!(e, Error::ElementTypeMismatch { expected: "f16", actual: "bf16" }), "{e}");
    assert_same_tree(&before, &snapshot_tree(dir.path()), "after the bf16 open");
    let s: VectorStore<half::f16> = small(2).open(&path).expect("reopen as f16");
    assert_eq!(s.retrieve(1), Some(vec![half::f16::from_f32(1.5), half::f16::from_f32(-2.0)]));
}

// Proves bad open arguments and bad paths are errors, never panics, and leave
// nothing behind: no store, no `.store.quiver-new-*` temp sibling, the file
// or foreign directory unchanged.
#[test]
fn bad_open_input_is_an_error_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);

    let e = StoreOptions::new(0).open::<f32>(&path).expect_err("zero dimension");
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    assert_eq!(names_in(dir.path()), Vec::<String>::new(), "zero dimension left files");

    let too_big = quiver_storage::limits::MAX_DIMENSION as usize + 1;
    let e = StoreOptions::new(too_big).open::<f32>(&path).expect_err("dimension above MAX_DIMENSION");
    assert!(matches!(e, Error::LimitExceeded { .. }), "{e}");
    assert_eq!(names_in(dir.path()), Vec::<String>::new(), "an oversized dimension left files");

    // A regular file.
    let file = dir.path().join("file");
    std::fs::write(&file, b"not a store").expect("write file");
    let e = small(4).open::<f32>(&file).expect_err("a regular file");
    assert!(matches!(e, Error::NotAStore { .. }), "{e}");

    // A non-empty directory of another format, including one holding a file
    // named like the header but with other bytes.
    let foreign = dir.path().join("foreign");
    std::fs::create_dir_all(foreign.join("sub")).expect("mkdir");
    std::fs::write(foreign.join("notes.txt"), b"hello").expect("write");
    let e = small(4).open::<f32>(&foreign).expect_err("a foreign directory");
    assert!(matches!(e, Error::NotAStore { .. }), "{e}");
    let fake = dir.path().join("fake");
    std::fs::create_dir(&fake).expect("mkdir");
    std::fs::write(fake.join("QUIVER"), [0u8; 64]).expect("write");
    let e = small(4).open::<f32>(&fake).expect_err("a zeroed QUIVER file");
    assert!(matches!(e, Error::NotAStore { .. } | Error::Corrupted { .. }), "{e}");

    let before = snapshot_tree(dir.path());
    // A path whose parent does not exist.
    let orphan = dir.path().join("missing").join("store");
    let e = small(4).open::<f32>(&orphan).expect_err("a missing parent");
    assert!(matches!(e, Error::InvalidArgument(_) | Error::Io { .. }), "{e}");
    let _ = small(4).open::<f32>(&file).expect_err("the file again");
    let _ = small(4).open::<f32>(&foreign).expect_err("the foreign dir again");
    assert_same_tree(&before, &snapshot_tree(dir.path()), "after failed opens");
    assert_eq!(std::fs::read(&file).expect("read file"), b"not a store");
    assert_eq!(names_in(dir.path()), ["fake", "file", "foreign"], "a temp sibling or store was left behind");
}

// Proves a vector of the wrong length is rejected by `store` and by
// `store_batch` before anything is written: one bad vector among good ones
// writes none of them, no file changes, and a reopen shows none of them.
#[test]
fn wrong_length_vectors_write_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let opts = small(4);
    let s = open(&path, &opts);
    for id in 0..10 {
        s.store(id, &vector(id, 0, 4)).expect("store");
    }
    let before = snapshot_tree(&path);
    let batches_before = s.metrics().batches_committed;

    for bad in [vec![1.0f32; 3], vec![1.0; 5], Vec::new()] {
        let e = s.store(99, &bad).expect_err("wrong length");
        let n = bad.len() as u32;
        assert!(matches!(e, Error::DimensionMismatch { expected: 4, actual } if actual == n), "{e}");
    }
    for bad_at in 0..3 {
        let mut pairs: Vec<(u64, Vec<f32>)> = (100..103).map(|id| (id, vector(id, 0, 4))).collect();
        pairs[bad_at].1.push(0.0);
        let e = s.store_batch(&refs(&pairs)).expect_err("a batch with one bad vector");
        assert!(matches!(e, Error::DimensionMismatch { expected: 4, actual: 5 }), "{e}");
    }
    assert_eq!(s.len(), 10);
    for id in [99, 100, 101, 102] {
        assert!(!s.contains(id), "id {id} became visible");
    }
    assert_eq!(s.metrics().batches_committed, batches_before);
    assert_same_tree(&before, &snapshot_tree(&path), "after rejected writes");
    drop(s);

    let s = open(&path, &opts);
    assert_eq!(s.len(), 10);
    assert!(!s.contains(100) && !s.contains(102));
}

// Proves an existing empty directory becomes a store in place, with no temp
// sibling left in its parent, and reopens as an existing store.
#[test]
fn empty_directory_becomes_a_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    std::fs::create_dir(&path).expect("mkdir");
    let opts = small(4);
    {
        let s = open(&path, &opts);
        assert!(s.recovery_report().created);
        s.store(1, &vector(1, 0, 4)).expect("store");
        s.close().expect("close");
    }
    assert_eq!(names_in(dir.path()), ["store"]);
    let s = open(&path, &opts);
    assert!(!s.recovery_report().created);
    assert_eq!(s.retrieve(1), Some(vector(1, 0, 4)));
}

// Proves a second open of a directory while the first handle lives fails
// with Error::Locked and changes nothing, and that it opens once the first
// handle is dropped.
#[test]
fn second_writer_is_locked_out_until_the_first_drops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let opts = small(4);
    let first = open(&path, &opts);
    first.store(1, &vector(1, 0, 4)).expect("store");
    let before = snapshot_tree(&path);
    let e = opts.open::<f32>(&path).expect_err("a second writer");
    assert!(matches!(&e, Error::Locked { path: p } if *p == path), "{e}");
    assert_same_tree(&before, &snapshot_tree(&path), "after the refused open");
    first.store(2, &vector(2, 0, 4)).expect("the first handle still writes");
    drop(first);
    let second = open(&path, &opts);
    assert_eq!(second.retrieve(1), Some(vector(1, 0, 4)));
    assert_eq!(second.retrieve(2), Some(vector(2, 0, 4)));
}

// Proves that a failure at any single step of creating a store (each
// create, write, sync, fallocate, rename and directory sync in turn, through
// the fault injector) makes open return an error, never a panic, and leaves
// no temporary `.store.quiver-new-*` sibling behind; the path then holds
// either nothing or a whole store that opens normally.
#[test]
fn failed_creation_leaves_no_temp_sibling() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use quiver_storage::io::FaultAction;

    use super::{EIO, injector, os_error};

    for fail_at in 1.. {
        assert!(fail_at < 1000, "creation never completed");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = store_path(&dir);
        let steps = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&steps);
        let faults = injector(move |_| {
            if counter.fetch_add(1, Ordering::SeqCst) + 1 == fail_at {
                FaultAction::Fail(os_error(EIO))
            } else {
                FaultAction::Proceed
            }
        });
        let result = small(4).fault_injector(faults).open::<f32>(&path);
        let names = names_in(dir.path());
        assert!(
            names.iter().all(|n| !n.contains(".quiver-new-")),
            "failing step {fail_at} left a temp sibling: {names:?}"
        );
        match result {
            Ok(s) => {
                assert!(steps.load(Ordering::SeqCst) < fail_at, "step {fail_at} failed but open succeeded");
                println!("store creation and open took {} durability steps", fail_at - 1);
                drop(s);
                open(&path, &small(4)).store(1, &vector(1, 0, 4)).expect("store");
                break;
            }
            Err(e) => {
                assert!(!matches!(e, Error::Poisoned { .. }), "step {fail_at}: {e}");
                if path.exists() {
                    let s = open(&path, &small(4));
                    s.store(1, &vector(1, 0, 4)).unwrap_or_else(|e| panic!("step {fail_at}: store: {e}"));
                }
            }
        }
    }
}

// Proves options that cannot work for the element type are rejected before
// the directory is touched: a map window too small to hold two records of
// the largest dimension of f64 fails open and leaves nothing behind.
#[test]
fn map_window_smaller_than_two_records_leaves_nothing_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let max = quiver_storage::limits::MAX_DIMENSION as usize;
    let opts = StoreOptions::new(max).initial_file_bytes(1 << 20).map_window_bytes(1 << 20);
    let e = opts.open::<f64>(&path).expect_err("a 1 MiB window cannot hold two 512 KiB records");
    println!("{e}");
    assert_eq!(names_in(dir.path()), Vec::<String>::new(), "the failed open left a store behind");
}

// Proves reserve_capacity beyond the data file limit is a LimitExceeded
// error that changes nothing, and the store still works.
#[test]
fn reserve_capacity_beyond_the_file_limit_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let s = open(&path, &small(4));
    let record = u64::from(quiver_storage::format::record_size_bytes(4, 4));
    let over = quiver_storage::limits::MAX_DATA_FILE_BYTES / record + 1;
    for n in [over, 1 << 40] {
        let r = s.reserve_capacity(n as usize);
        assert!(matches!(r, Err(Error::LimitExceeded { .. })), "reserve_capacity({n}): {r:?}");
    }
    assert_eq!(s.metrics().growth_events, 0);
    s.store(1, &vector(1, 0, 4)).expect("the store still works");
}

// Proves reserve_capacity with a count whose byte size overflows u64 is a
// LimitExceeded error, never an arithmetic-overflow panic (debug) or an
// index reservation of that size (release: capacity panic or abort).
#[test]
fn reserve_capacity_overflow_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let s = open(&path, &small(4));
    for n in [usize::MAX, usize::MAX / 2, 1 << 58] {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.reserve_capacity(n)));
        let r = r.unwrap_or_else(|_| panic!("reserve_capacity({n}) panicked"));
        assert!(matches!(r, Err(Error::LimitExceeded { .. })), "reserve_capacity({n}): {r:?}");
    }
    s.store(1, &vector(1, 0, 4)).expect("the store still works");
}

// Proves reserve_capacity(n) for more vectors than the index could ever hold
// in memory, though within the data file's limit (u8 vectors of dimension 1
// are 128-byte records, so the 16 TiB file limit allows about 2^37 of them),
// is a LimitExceeded error naming the index capacity, refused before the
// data file is touched: no growth is attempted, the file keeps its length,
// and the store still works, also after a reopen. Before the fix the data
// file was grown first and the index was then presized with an infallible
// allocation, which aborts the process when the allocator refuses it.
#[test]
fn reserve_capacity_beyond_memory_is_refused_before_the_file_grows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    // Counts every data-file growth past 1 GiB, and refuses it: the
    // reservation must be refused before any growth is tried, and a
    // regression must not fill the shared disk with a terabyte fallocate.
    let big_growths = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&big_growths);
    let faults = injector(move |step| match step {
        IoStep::Allocate { path, len, .. } if is_data_file(path) && len > 1 << 30 => {
            seen.fetch_add(1, Ordering::SeqCst);
            FaultAction::Fail(os_error(ENOSPC))
        }
        _ => FaultAction::Proceed,
    });
    let opts = StoreOptions::new(1);
    let s: VectorStore<u8> = opts.clone().fault_injector(faults).open(&path).expect("open");
    s.store(1, &[7]).expect("store");
    let file = data_file(&path);
    let file_bytes = || std::fs::metadata(&file).expect("the data file").len();
    let bytes_before = file_bytes();
    let growths_before = s.metrics().growth_events;

    let record = u64::from(quiver_storage::format::record_size_bytes(1, 1));
    let file_limit_slots =
        (quiver_storage::limits::MAX_DATA_FILE_BYTES - quiver_storage::format::DATA_HEADER_BYTES) / record;
    let huge = file_limit_slots - 16;
    let r = s.reserve_capacity(huge as usize);
    assert!(
        matches!(r, Err(Error::LimitExceeded { what: "an index capacity in vectors", .. })),
        "reserve_capacity({huge}): {r:?}"
    );
    println!("reserve_capacity({huge}): {}", r.expect_err("checked above"));
    assert_eq!(big_growths.load(Ordering::SeqCst), 0, "the data file was grown for a refused reservation");
    assert_eq!(file_bytes(), bytes_before, "the refused reservation changed the data file's length");
    assert_eq!(s.metrics().growth_events, growths_before);

    s.store(2, &[8]).expect("the store still takes writes");
    s.reserve_capacity(1000).expect("a reservation that fits still works");
    assert_eq!(s.retrieve(1), Some(vec![7]));
    assert_eq!(s.retrieve(2), Some(vec![8]));
    s.close().expect("close");
    let s: VectorStore<u8> = opts.open(&path).expect("reopen");
    assert_eq!((s.len(), s.retrieve(1), s.retrieve(2)), (2, Some(vec![7]), Some(vec![8])));
}
