//! Bytes on disk: the format header is little-endian with magic, version and
//! dimension, vector payloads are little-endian (seed defect 10: no header,
//! native-endian floats), and growth reserves real blocks with `fallocate`
//! instead of leaving a sparse file (seed defect 11).

use std::os::unix::fs::MetadataExt;

use quiver_storage::format::header::STORE_MAGIC;
use quiver_storage::format::{DATA_HEADER_BYTES, FORMAT_VERSION, RECORD_HEADER_BYTES, record_size_bytes};
use quiver_storage::{Durability, ElementType};

use super::{data_file, refs};
use crate::common::{open, small, store_path, vector};

fn u32_le(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

// Proves the QUIVER header is 64 bytes, starts with the magic, and stores
// version, dimension (at offset 16), element type and record size as
// little-endian u32 — with a dimension (0x0102) whose bytes differ in the two
// byte orders; and that a vector's f32 payload sits in the data file as
// little-endian bytes at the first record's payload offset.
#[test]
fn header_and_payload_are_little_endian() {
    const DIM: usize = 0x0102;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let s = open(&path, &small(DIM));
    let v: Vec<f32> = (0..DIM).map(|i| i as f32 * 1.25 - 7.5).collect();
    s.store(1, &v).expect("store");
    s.flush().expect("flush");

    let header = std::fs::read(path.join("QUIVER")).expect("read QUIVER");
    assert_eq!(header.len(), 64);
    assert_eq!(&header[..8], &STORE_MAGIC[..]);
    assert_eq!(u32_le(&header, 8), FORMAT_VERSION);
    assert_eq!(&header[16..20], &[0x02, 0x01, 0x00, 0x00], "the dimension is not little-endian");
    assert_eq!(u32_le(&header, 20), ElementType::F32.code());
    assert_eq!(u32_le(&header, 24), 4);
    assert_eq!(u32_le(&header, 28), record_size_bytes(DIM as u32, 4));

    let data = std::fs::read(data_file(&path)).expect("read data file");
    let le: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let be: Vec<u8> = v.iter().flat_map(|x| x.to_be_bytes()).collect();
    let at = data.windows(le.len()).position(|w| w == le).expect("the little-endian payload is in the data file");
    assert_eq!(at as u64, DATA_HEADER_BYTES + u64::from(RECORD_HEADER_BYTES), "slot 0's payload offset");
    assert!(!data.windows(be.len()).any(|w| w == be), "a big-endian copy of the payload exists");
}

/// Asserts the data file's allocated blocks cover its whole length.
fn assert_not_sparse(path: &std::path::Path, when: &str) -> u64 {
    let meta = std::fs::metadata(path).expect("stat data file");
    let allocated = meta.blocks() * 512;
    assert!(allocated >= meta.len(), "{when}: {} bytes long but only {allocated} allocated (sparse)", meta.len());
    meta.len()
}

// Proves reserve_capacity(n) grows the data file in one step to hold n more
// vectors with real blocks behind every byte (fallocate, not a sparse
// set_len), that the import it reserved for needs no further growth, and
// that ordinary growth past it is not sparse either.
#[test]
fn growth_reserves_real_blocks() {
    const N: u64 = 10_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let s = open(&path, &small(8).durability(Durability::Buffered));
    let file = data_file(&path);
    assert_not_sparse(&file, "a new store");

    s.reserve_capacity(N as usize).expect("reserve");
    let len = assert_not_sparse(&file, "after reserve_capacity");
    let record = u64::from(record_size_bytes(8, 4));
    assert!(len >= DATA_HEADER_BYTES + N * record, "{len} bytes cannot hold {N} records");
    let growth_after_reserve = s.metrics().growth_events;
    assert_eq!(growth_after_reserve, 1, "reserve_capacity grows in one step");

    for chunk in (0..N).collect::<Vec<_>>().chunks(500) {
        let pairs: Vec<(u64, Vec<f32>)> = chunk.iter().map(|&id| (id, vector(id, 0, 8))).collect();
        s.store_batch(&refs(&pairs)).expect("import");
    }
    assert_eq!(s.metrics().growth_events, growth_after_reserve, "the reserved import grew mid-way");

    for id in N..N + 2000 {
        s.store(id, &vector(id, 0, 8)).expect("store past the reservation");
    }
    assert!(s.metrics().growth_events > growth_after_reserve);
    assert_not_sparse(&file, "after ordinary growth");
}
