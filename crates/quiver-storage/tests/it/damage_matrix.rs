//! Damage matrices: 500 seeded single-bit flips anywhere in the WAL segment,
//! and every bit of the format header, the manifest and the data file
//! header. Each case gives its documented result — never a panic, never
//! silently wrong data:
//!
//! * a flip inside frame `j` keeps exactly the batches before `j` (the cut is
//!   reported in `torn_tail`);
//! * a flip in the segment header, in front of frames, is `Corrupted` naming
//!   the segment;
//! * a flip in `QUIVER`, `MANIFEST` or the data file header is an error
//!   (`Corrupted`, `NotAStore`, `UnsupportedVersion` or a shape mismatch),
//!   and the failed open changes no file.
//!
//! `QUIVER_TEST_SEED` replays one seed.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::{snapshot_tree, vector};
use quiver_storage::format::wal_frame::{FrameRead, SegmentHeader, next_frame};
use quiver_storage::format::{HEADER_FILE, MANIFEST_FILE, data_file_name};
use quiver_storage::{Error, StoreOptions, VectorStore};

const DIM: usize = 4;
const BATCHES: u64 = 12;

fn options() -> StoreOptions {
    StoreOptions::new(DIM).initial_file_bytes(64 << 10)
}

/// The model after the first `n` batches: batch `b` stores ids `b..b+3` at
/// version `b`, overwriting two ids of the batch before, so every prefix is
/// a different state.
fn model_after(n: u64) -> BTreeMap<u64, Vec<f32>> {
    let mut m = BTreeMap::new();
    for b in 0..n {
        for id in b..b + 3 {
            m.insert(id, vector(id, b, DIM));
        }
    }
    m
}

/// Writes `BATCHES` batches without a checkpoint (the WAL holds them all)
/// and returns the WAL segment's path and its frame boundaries.
fn build(dir: &Path) -> (std::path::PathBuf, Vec<(u64, u64)>) {
    {
        let store: VectorStore<f32> = options().open(dir).expect("open");
        for b in 0..BATCHES {
            let vs: Vec<(u64, Vec<f32>)> = (b..b + 3).map(|id| (id, vector(id, b, DIM))).collect();
            let refs: Vec<(u64, &[f32])> = vs.iter().map(|(id, v)| (*id, &v[..])).collect();
            store.store_batch(&refs).expect("batch");
        }
    }
    let wal = dir.join("wal");
    let segment = std::fs::read_dir(&wal)
        .expect("wal")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "qwal") && std::fs::metadata(p).map(|m| m.len()).unwrap_or(0) > 64)
        .expect("a segment with frames");
    let bytes = std::fs::read(&segment).expect("read");
    let (_, mut crc) = SegmentHeader::decode_from(&bytes).expect("header");
    let mut frames = Vec::new();
    let mut at = SegmentHeader::ENCODED_LEN;
    while let FrameRead::Frame { crc: c, next_offset, .. } = next_frame(&bytes, at, crc) {
        frames.push((at as u64, next_offset as u64));
        at = next_offset;
        crc = c;
    }
    assert_eq!(frames.len() as u64, BATCHES);
    (segment, frames)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("list") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).expect("copy");
        }
    }
}

fn flip(path: &Path, bit: u64) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[(bit / 8) as usize] ^= 1 << (bit % 8);
    std::fs::write(path, bytes).expect("write");
}

fn seed() -> u64 {
    let seed = std::env::var("QUIVER_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0xB17F_11E5);
    println!("damage_matrix seed {seed} (QUIVER_TEST_SEED to replay)");
    seed
}

// Proves each of 500 seeded single-bit flips in the WAL segment gives the
// documented result: the batches before the damaged frame, exactly, or a
// `Corrupted` error for the segment header.
#[test]
fn five_hundred_wal_bit_flips() {
    let base = tempfile::tempdir().expect("tempdir");
    let original = base.path().join("original");
    let (segment, frames) = build(&original);
    let rel = segment.strip_prefix(&original).expect("inside").to_path_buf();
    let len_bits = std::fs::metadata(&segment).expect("len").len() * 8;
    let mut x = seed() | 1;
    let (mut cut, mut refused) = (0, 0);
    for case in 0..500 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bit = x % len_bits;
        let dir = base.path().join(format!("case-{case}"));
        copy_dir(&original, &dir);
        flip(&dir.join(&rel), bit);
        let byte = bit / 8;
        let result: Result<VectorStore<f32>, Error> = options().open(&dir);
        if byte < SegmentHeader::ENCODED_LEN as u64 {
            assert!(
                matches!(&result, Err(Error::Corrupted { path, .. }) if path.ends_with(&rel)),
                "bit {bit} in the segment header: {result:?}"
            );
            refused += 1;
        } else {
            let store = result.unwrap_or_else(|e| panic!("bit {bit}: open failed: {e}"));
            let j = frames.iter().position(|&(s, e)| byte >= s && byte < e).expect("inside a frame") as u64;
            let found: BTreeMap<u64, Vec<f32>> =
                store.ids().into_iter().map(|id| (id, store.retrieve(id).expect("listed"))).collect();
            assert_eq!(found, model_after(j), "bit {bit} in frame {j}");
            let torn = store.recovery_report().torn_tail.as_ref().expect("a cut is reported");
            assert_eq!(torn.offset, frames[j as usize].0, "bit {bit}");
            cut += 1;
        }
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
    println!("500 WAL bit flips: {cut} cut at the damaged frame, {refused} refused as a damaged segment header");
}

// Proves every single-bit flip of `QUIVER`, `MANIFEST` and the data file
// header makes open fail with an error, and the failed open changes no file.
#[test]
fn every_bit_of_the_headers_and_manifest() {
    let base = tempfile::tempdir().expect("tempdir");
    let original = base.path().join("original");
    build(&original);
    let mut cases = 0;
    for (file, bytes) in [(HEADER_FILE.to_string(), 64u64), (MANIFEST_FILE.to_string(), 64), (data_file_name(1), 64)] {
        for bit in 0..bytes * 8 {
            let dir = base.path().join("case");
            copy_dir(&original, &dir);
            flip(&dir.join(&file), bit);
            let before = snapshot_tree(&dir);
            let result: Result<VectorStore<f32>, Error> = options().open(&dir);
            let err = result.err().unwrap_or_else(|| panic!("{file} bit {bit}: opened a damaged store"));
            assert!(
                matches!(
                    err,
                    Error::Corrupted { .. }
                        | Error::NotAStore { .. }
                        | Error::UnsupportedVersion { .. }
                        | Error::DimensionMismatch { .. }
                        | Error::ElementTypeMismatch { .. }
                ),
                "{file} bit {bit}: {err}"
            );
            assert!(snapshot_tree(&dir) == before, "{file} bit {bit}: the failed open changed files");
            std::fs::remove_dir_all(&dir).expect("cleanup");
            cases += 1;
        }
    }
    println!("{cases} header and manifest bit flips, each refused with nothing changed");
}
