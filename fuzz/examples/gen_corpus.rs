//! Writes the seed corpus under `corpus/<target>/`: valid encodings made by
//! Quiver's own codecs (and by a real store, for WAL segments), so the
//! fuzzer starts past the checksums, plus a few fixed pseudo-random inputs
//! for the structured targets. Deterministic; rerun after a format change:
//!
//! ```text
//! cd fuzz && cargo run --example gen_corpus
//! ```

use std::fs;
use std::path::Path;

use quiver_fuzz::{scratch_dir, small_options, vector};
use quiver_storage::ElementType;
use quiver_storage::VectorStore;
use quiver_storage::format::WAL_DIR;
use quiver_storage::format::header::{DataFileHeader, FormatHeader, StoreShape};
use quiver_storage::format::manifest::Manifest;
use quiver_storage::format::record::{RecordHeader, RecordKind};
use quiver_storage::format::snapshot::TableImage;
use quiver_storage::format::wal_frame::{BatchEntry, SegmentHeader, encode_batch_into};

/// The wal_frame selector for 16-byte payloads (dimension 4, f32).
const WAL_SELECTOR_F32X4: u8 = 15;
/// The header selector for a 16-byte record payload (4 elements of 4 bytes).
const RECORD_SELECTOR_F32X4: u8 = 4;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    header(&root.join("header"));
    snapshot(&root.join("snapshot"));
    wal_frame(&root.join("wal_frame"));
    structured(&root.join("open_dir"), 0x0D1F);
    structured(&root.join("model_faults"), 0xFA17);
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).expect("creating a corpus directory");
    fs::write(dir.join(name), bytes).expect("writing a seed");
}

fn with_selector(selector: u8, bytes: &[u8]) -> Vec<u8> {
    [&[selector][..], bytes].concat()
}

fn header(dir: &Path) {
    for (name, dimension, element) in
        [("f32x4", 4, ElementType::F32), ("f16x768", 768, ElementType::F16), ("u8x1", 1, ElementType::U8)]
    {
        let shape = StoreShape { dimension, element };
        let mut buf = [0u8; 64];
        FormatHeader { shape }.encode_into(&mut buf);
        write(dir, &format!("format-{name}"), &with_selector(0, &buf));
        DataFileHeader { shape, generation: 2, changes_after_lsn: 0 }.encode_into(&mut buf);
        write(dir, &format!("data-{name}"), &with_selector(0, &buf));
    }
    for (name, m) in [
        (
            "new",
            Manifest { generation: 1, checkpoint_lsn: 0, checkpoint_end_slot: 0, has_snapshot: false, wal_segment: 1 },
        ),
        (
            "checkpointed",
            Manifest { generation: 3, checkpoint_lsn: 41, checkpoint_end_slot: 57, has_snapshot: true, wal_segment: 9 },
        ),
    ] {
        let mut buf = [0u8; 64];
        m.encode_into(&mut buf);
        write(dir, &format!("manifest-{name}"), &with_selector(0, &buf));
    }
    let payload = quiver_fuzz::vector_bytes(7, 1);
    for (name, kind, selector) in [
        ("put", RecordKind::Put, RECORD_SELECTOR_F32X4),
        ("put-whole", RecordKind::Put, 0x80),
        ("tombstone", RecordKind::Tombstone, RECORD_SELECTOR_F32X4),
    ] {
        let h = RecordHeader::new(kind, 7, 12, &payload);
        let mut head = [0u8; 64];
        h.encode_into(&mut head);
        let mut rec = head.to_vec();
        rec.extend_from_slice(&payload);
        rec.resize(128, 0);
        if selector == 0x80 {
            rec.truncate(64 + payload.len());
        }
        write(dir, &format!("record-{name}"), &with_selector(selector, &rec));
    }
}

fn snapshot(dir: &Path) {
    for (name, pairs) in
        [("empty", vec![]), ("one", vec![(1u64, 0u64)]), ("five", vec![(1, 0), (4, 3), (9, 7), (u64::MAX, 8), (2, 1)])]
    {
        let bytes = TableImage::from_entries(&pairs).expect("distinct ids").encode_file(1, 6, 9);
        write(dir, &format!("snapshot-{name}"), &bytes);
    }
}

fn wal_frame(dir: &Path) {
    let payload = |id: u64| quiver_fuzz::vector_bytes(id, 1);
    let entry = |id: u64, kind: RecordKind, lsn: u64| {
        let p = if kind == RecordKind::Put { payload(id) } else { Vec::new() };
        BatchEntry { id, kind, record_crc: RecordHeader::new(kind, id, lsn, &p).crc }
    };
    // A segment by the codecs: inline put, inline mixed, location batch.
    let mut seg = vec![0u8; 64];
    let seed = SegmentHeader { segment: 1 }.encode_into((&mut seg[..64]).try_into().expect("64 bytes"));
    let c1 = encode_batch_into(&mut seg, seed, 1, 1, 0, &[entry(1, RecordKind::Put, 1)], Some(&payload(1)));
    let mixed = [entry(2, RecordKind::Put, 2), entry(1, RecordKind::Tombstone, 2), entry(3, RecordKind::Put, 2)];
    let c2 = encode_batch_into(&mut seg, c1, 2, 1, 1, &mixed, Some(&[payload(2), payload(3)].concat()));
    encode_batch_into(&mut seg, c2, 3, 1, 4, &[entry(4, RecordKind::Put, 3), entry(5, RecordKind::Put, 3)], None);
    write(dir, "segment-codec", &with_selector(WAL_SELECTOR_F32X4, &seg));
    write(dir, "frames-bare", &with_selector(WAL_SELECTOR_F32X4, &bare_frames(&payload(1))));

    // Segments written by a real store (how many depends on recovery, so
    // the previous run's are removed first).
    for entry in fs::read_dir(dir).expect("listing the corpus") {
        let path = entry.expect("corpus entry").path();
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("segment-store-")) {
            fs::remove_file(path).expect("removing an old seed");
        }
    }
    let scratch = scratch_dir();
    let path = scratch.path().join("store");
    {
        let s: VectorStore<f32> = small_options().open(&path).expect("creating a store");
        for id in 1..=3 {
            s.store(id, &vector(id, 1)).expect("write");
        }
        let (a, b) = (vector(8, 1), vector(9, 1));
        s.store_batch(&[(8, &a[..]), (9, &b[..])]).expect("batch");
        s.delete(2).expect("delete");
    }
    {
        let s: VectorStore<f32> = small_options().inline_batch_max_bytes(0).open(&path).expect("reopening");
        let (a, b) = (vector(10, 1), vector(11, 1));
        s.store_batch(&[(10, &a[..]), (11, &b[..])]).expect("location batch");
    }
    let mut segments: Vec<_> =
        fs::read_dir(path.join(WAL_DIR)).expect("listing wal/").map(|e| e.expect("entry").path()).collect();
    segments.sort();
    for (i, p) in segments.iter().enumerate() {
        let bytes = fs::read(p).expect("reading a segment");
        write(dir, &format!("segment-store-{i}"), &with_selector(WAL_SELECTOR_F32X4, &bytes));
    }
}

/// Frames chained from seed 0 with no segment header, as the target walks
/// inputs whose header does not decode.
fn bare_frames(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let e =
        BatchEntry { id: 5, kind: RecordKind::Put, record_crc: RecordHeader::new(RecordKind::Put, 5, 1, payload).crc };
    let c = encode_batch_into(&mut out, 0, 1, 1, 0, &[e], Some(payload));
    let t = BatchEntry {
        id: 5,
        kind: RecordKind::Tombstone,
        record_crc: RecordHeader::new(RecordKind::Tombstone, 5, 2, &[]).crc,
    };
    encode_batch_into(&mut out, c, 2, 1, 1, &[t], None);
    out
}

/// Inputs for the `arbitrary`-driven targets: the empty input (no faults,
/// no mutations: the plain valid case) and a few fixed pseudo-random ones.
fn structured(dir: &Path, seed: u64) {
    write(dir, "empty", &[]);
    let mut x = seed;
    for (i, len) in [48usize, 96, 160, 256, 400].into_iter().enumerate() {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                // xorshift64: fixed, dependency-free, good enough for seeds.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        write(dir, &format!("random-{i}"), &bytes);
    }
}
