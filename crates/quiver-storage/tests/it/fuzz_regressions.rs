//! Named regressions for the crashes cargo-fuzz found (inputs under
//! `fuzz/regressions/open_dir/`): each damaged directory must now be a clear
//! error at open, never a panic later.

use crate::common::*;
use quiver_storage::format::manifest::{MAX_LSN, MAX_SEGMENT, Manifest};
use quiver_storage::format::{MANIFEST_FILE, data_file_name};
use quiver_storage::{Error, VectorStore};

fn store_with_writes(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = store_path(dir);
    let s = open(&path, &small(4));
    for id in 0..5u64 {
        s.store(id, &vector(id, 0, 4)).expect("store");
    }
    drop(s);
    path
}

fn write_manifest(path: &std::path::Path, m: Manifest) {
    let mut bytes = [0u8; Manifest::ENCODED_LEN];
    m.encode_into(&mut bytes);
    std::fs::write(path.join(MANIFEST_FILE), bytes).expect("manifest");
}

fn manifest(path: &std::path::Path) -> Manifest {
    Manifest::decode_from(&std::fs::read(path.join(MANIFEST_FILE)).expect("read")).expect("valid")
}

// Proves fuzz regression `data-file-shorter-than-header-page`: a data file
// whose 64-byte header is intact but which is shorter than its header page
// is `Corrupted` at open (it used to open and trip an assertion on growth).
#[test]
fn data_file_shorter_than_its_header_page_is_corrupted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_with_writes(&dir);
    let data = path.join(data_file_name(1));
    std::fs::OpenOptions::new().write(true).open(&data).expect("open").set_len(192).expect("truncate");
    let r: Result<VectorStore<f32>, Error> = small(4).open(&path);
    assert!(matches!(&r, Err(Error::Corrupted { path: p, offset: 192, .. }) if p == &data), "{r:?}");
}

// Proves fuzz regression `manifest-lsn-near-max-write-overflows`: a
// checksum-valid manifest whose checkpoint LSN is past `MAX_LSN` is
// `Corrupted` (it used to open, and the first write overflowed the LSN).
#[test]
fn manifest_lsn_past_the_limit_is_corrupted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_with_writes(&dir);
    let original = manifest(&path);
    for lsn in [MAX_LSN + 1, u64::MAX - 1] {
        write_manifest(&path, Manifest { checkpoint_lsn: lsn, ..original });
        let r: Result<VectorStore<f32>, Error> = small(4).open(&path);
        assert!(matches!(&r, Err(Error::Corrupted { offset: 16, .. })), "lsn {lsn}: {r:?}");
    }
}

// Proves fuzz regression `manifest-wal-segment-max-checkpoint-overflows`: a
// manifest naming a WAL segment past `MAX_SEGMENT` is `Corrupted` (it used
// to open, and the next checkpoint overflowed the segment number).
#[test]
fn manifest_segment_past_the_limit_is_corrupted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_with_writes(&dir);
    let original = manifest(&path);
    for segment in [MAX_SEGMENT + 1, u64::MAX] {
        write_manifest(&path, Manifest { wal_segment: segment, ..original });
        let r: Result<VectorStore<f32>, Error> = small(4).open(&path);
        assert!(matches!(&r, Err(Error::Corrupted { offset: 40, .. })), "segment {segment}: {r:?}");
    }
}

// Proves (review finding) that the WAL segment the manifest names going
// missing while later segments exist is `Corrupted`, not a silent cut of the
// later segment's batches.
#[test]
fn missing_manifest_segment_is_corrupted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_with_writes(&dir);
    let m = manifest(&path);
    let wal = path.join("wal");
    // A later segment, holding a valid header, as after a checkpoint.
    std::fs::copy(
        wal.join(quiver_storage::format::wal_segment_name(m.wal_segment)),
        wal.join(quiver_storage::format::wal_segment_name(m.wal_segment + 1)),
    )
    .expect("copy");
    std::fs::remove_file(wal.join(quiver_storage::format::wal_segment_name(m.wal_segment))).expect("remove");
    let r: Result<VectorStore<f32>, Error> = small(4).open(&path);
    assert!(matches!(&r, Err(Error::Corrupted { .. })), "{r:?}");
}
