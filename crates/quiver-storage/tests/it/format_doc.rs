//! Keeps docs/FORMAT.md honest: parses its machine-checkable tables (the
//! constants, the element type and record kind codes, the source-private
//! constants and every byte layout) and checks them against the code and
//! against the bytes of a store written by the code, so the document cannot
//! drift from the format without a test failing.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use quiver_storage::format::header::{DATA_MAGIC, DataFileHeader, FormatHeader, STORE_MAGIC};
use quiver_storage::format::manifest::{MANIFEST_MAGIC, MAX_LSN, MAX_SEGMENT, Manifest};
use quiver_storage::format::record::{RECORD_MAGIC, RecordKind};
use quiver_storage::format::snapshot::{
    BLOCK_BUCKETS, BLOCK_BYTES, EMPTY_SLOT, MAX_SNAPSHOT_ENTRIES, SNAPSHOT_ENTRY_BYTES, SNAPSHOT_MAGIC, SnapshotHeader,
    block_crc, bucket_count_for, home_bucket,
};
use quiver_storage::format::wal_frame::{
    BATCH_ENTRY_BYTES, BATCH_HEADER_BYTES, FRAME_HEADER_BYTES, MAX_BATCH_VECTORS, MAX_FRAME_PAYLOAD_BYTES,
    SegmentHeader, WAL_MAGIC,
};
use quiver_storage::format::{
    DATA_HEADER_BYTES, FORMAT_VERSION, HEADER_FILE, LOCK_FILE, MANIFEST_FILE, MAX_DATA_FILE_BYTES, MAX_DIMENSION,
    RECORD_ALIGN_BYTES, RECORD_HEADER_BYTES, TEMP_SUFFIX, WAL_DIR, crc32, data_file_name, record_size_bytes,
    snapshot_file_name, wal_segment_name,
};
use quiver_storage::limits::MAX_BATCH_BYTES;
use quiver_storage::{
    DEFAULT_CHECKPOINT_WAL_BYTES, DEFAULT_INLINE_BATCH_MAX_BYTES, DEFAULT_MAP_WINDOW_BYTES, ElementType, GrowthPolicy,
    StoreOptions, VectorStore,
};

/// The repository root (two levels above this crate).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

fn format_doc() -> String {
    let path = repo_root().join("docs").join("FORMAT.md");
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The body rows of the first markdown table after the line that starts
/// with `marker`, each cell trimmed and stripped of surrounding backticks.
/// Returns the marker line too, for markers that carry parameters.
fn table_after<'a>(doc: &'a str, marker: &str) -> (&'a str, Vec<Vec<String>>) {
    let mut lines = doc.lines().skip_while(|l| !l.trim_start().starts_with(marker));
    let marker_line = lines.next().unwrap_or_else(|| panic!("FORMAT.md has no marker {marker:?}"));
    let mut table =
        lines.skip_while(|l| !l.trim_start().starts_with('|')).take_while(|l| l.trim_start().starts_with('|'));
    let _header = table.next().unwrap_or_else(|| panic!("no table after {marker:?}"));
    let _separator = table.next().unwrap_or_else(|| panic!("table after {marker:?} has no separator"));
    let rows: Vec<Vec<String>> = table
        .map(|l| {
            let inner = l.trim().trim_start_matches('|').trim_end_matches('|');
            inner.split('|').map(|c| c.trim().trim_matches('`').to_string()).collect()
        })
        .collect();
    assert!(!rows.is_empty(), "the table after {marker:?} is empty");
    (marker_line, rows)
}

/// A value as written in the constants table.
#[derive(Debug, PartialEq, Eq)]
enum Value {
    Int(u128),
    Str(String),
    Bytes(Vec<u8>),
}

fn parse_value(cell: &str) -> Value {
    if let Some(inner) = cell.strip_prefix("b\"").and_then(|c| c.strip_suffix('"')) {
        Value::Bytes(inner.as_bytes().to_vec())
    } else if let Some(inner) = cell.strip_prefix('"').and_then(|c| c.strip_suffix('"')) {
        Value::Str(inner.to_string())
    } else if let Some(hex) = cell.strip_prefix("0x") {
        Value::Int(u128::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("bad hex value {cell:?}: {e}")))
    } else {
        Value::Int(cell.replace('_', "").parse().unwrap_or_else(|e| panic!("bad value {cell:?}: {e}")))
    }
}

fn int(v: impl Into<u128>) -> Value {
    Value::Int(v.into())
}

fn text(s: impl Into<String>) -> Value {
    Value::Str(s.into())
}

/// Every value the constants table must state, computed by the code.
fn code_constants() -> BTreeMap<&'static str, Value> {
    let g = GrowthPolicy::default();
    let entries: Vec<(&'static str, Value)> = vec![
        ("FORMAT_VERSION", int(FORMAT_VERSION)),
        ("HEADER_FILE", text(HEADER_FILE)),
        ("MANIFEST_FILE", text(MANIFEST_FILE)),
        ("LOCK_FILE", text(LOCK_FILE)),
        ("WAL_DIR", text(WAL_DIR)),
        ("TEMP_SUFFIX", text(TEMP_SUFFIX)),
        ("STORE_MAGIC", Value::Bytes(STORE_MAGIC.to_vec())),
        ("DATA_MAGIC", Value::Bytes(DATA_MAGIC.to_vec())),
        ("MANIFEST_MAGIC", Value::Bytes(MANIFEST_MAGIC.to_vec())),
        ("SNAPSHOT_MAGIC", Value::Bytes(SNAPSHOT_MAGIC.to_vec())),
        ("WAL_MAGIC", Value::Bytes(WAL_MAGIC.to_vec())),
        ("RECORD_MAGIC", int(RECORD_MAGIC)),
        ("FormatHeader::ENCODED_LEN", int(FormatHeader::ENCODED_LEN as u64)),
        ("DataFileHeader::ENCODED_LEN", int(DataFileHeader::ENCODED_LEN as u64)),
        ("DATA_HEADER_BYTES", int(DATA_HEADER_BYTES)),
        ("RECORD_HEADER_BYTES", int(RECORD_HEADER_BYTES)),
        ("RECORD_ALIGN_BYTES", int(RECORD_ALIGN_BYTES)),
        ("PAYLOAD_ALIGN_BYTES", int(quiver_guard::PAYLOAD_ALIGN_BYTES as u64)),
        ("Manifest::ENCODED_LEN", int(Manifest::ENCODED_LEN as u64)),
        ("SnapshotHeader::ENCODED_LEN", int(SnapshotHeader::ENCODED_LEN as u64)),
        ("SNAPSHOT_ENTRY_BYTES", int(SNAPSHOT_ENTRY_BYTES as u64)),
        ("BLOCK_BUCKETS", int(BLOCK_BUCKETS as u64)),
        ("BLOCK_BYTES", int(BLOCK_BYTES as u64)),
        ("EMPTY_SLOT", int(EMPTY_SLOT)),
        ("bucket_count_for(1000000)", int(bucket_count_for(1_000_000))),
        ("MAX_SNAPSHOT_ENTRIES", int(MAX_SNAPSHOT_ENTRIES)),
        ("SegmentHeader::ENCODED_LEN", int(SegmentHeader::ENCODED_LEN as u64)),
        ("FRAME_HEADER_BYTES", int(FRAME_HEADER_BYTES as u64)),
        ("BATCH_HEADER_BYTES", int(BATCH_HEADER_BYTES as u64)),
        ("BATCH_ENTRY_BYTES", int(BATCH_ENTRY_BYTES as u64)),
        ("MAX_FRAME_PAYLOAD_BYTES", int(MAX_FRAME_PAYLOAD_BYTES)),
        ("MAX_BATCH_VECTORS", int(MAX_BATCH_VECTORS)),
        ("MAX_BATCH_BYTES", int(MAX_BATCH_BYTES)),
        ("MAX_DIMENSION", int(MAX_DIMENSION)),
        ("MAX_DATA_FILE_BYTES", int(MAX_DATA_FILE_BYTES)),
        ("MAX_LSN", int(MAX_LSN)),
        ("MAX_SEGMENT", int(MAX_SEGMENT)),
        ("DEFAULT_MAP_WINDOW_BYTES", int(DEFAULT_MAP_WINDOW_BYTES)),
        ("DEFAULT_INLINE_BATCH_MAX_BYTES", int(DEFAULT_INLINE_BATCH_MAX_BYTES as u64)),
        ("DEFAULT_CHECKPOINT_WAL_BYTES", int(DEFAULT_CHECKPOINT_WAL_BYTES)),
        ("GrowthPolicy::default().initial_bytes", int(g.initial_bytes)),
        ("GrowthPolicy::default().min_step_bytes", int(g.min_step_bytes)),
        ("GrowthPolicy::default().max_step_bytes", int(g.max_step_bytes)),
        ("GrowthPolicy::default().target(16777216, 16781312)", int(g.target(16_777_216, 16_781_312))),
        ("GrowthPolicy::default().target(268435456, 268435457)", int(g.target(268_435_456, 268_435_457))),
        ("GrowthPolicy::default().target(4294967296, 4294967297)", int(g.target(4_294_967_296, 4_294_967_297))),
        ("GrowthPolicy::default().target(16777216, 3221225472)", int(g.target(16_777_216, 3_221_225_472))),
        ("record_size_bytes(768, 4)", int(record_size_bytes(768, 4))),
        ("record_size_bytes(1536, 2)", int(record_size_bytes(1536, 2))),
        ("record_size_bytes(3, 4)", int(record_size_bytes(3, 4))),
        ("record_size_bytes(100, 1)", int(record_size_bytes(100, 1))),
        ("record_size_bytes(65536, 8)", int(record_size_bytes(65_536, 8))),
        ("data_file_name(1)", text(data_file_name(1))),
        ("snapshot_file_name(1, 42)", text(snapshot_file_name(1, 42))),
        ("wal_segment_name(1)", text(wal_segment_name(1))),
    ];
    let count = entries.len();
    let map: BTreeMap<_, _> = entries.into_iter().collect();
    assert_eq!(map.len(), count, "a constant is listed twice in the test");
    map
}

// Proves every row of the FORMAT.md constants table states the code's value,
// that no constant the test knows is missing from the table, and that the
// table lists nothing the test does not check.
#[test]
fn constants_table_matches_the_code() {
    let doc = format_doc();
    let (_, rows) = table_after(&doc, "<!-- constants -->");
    let mut documented = BTreeMap::new();
    for row in &rows {
        assert!(row.len() >= 2, "constants row {row:?} has no value");
        let previous = documented.insert(row[0].clone(), parse_value(&row[1]));
        assert!(previous.is_none(), "FORMAT.md lists {} twice", row[0]);
    }
    let code = code_constants();
    let doc_names: BTreeSet<&str> = documented.keys().map(String::as_str).collect();
    let code_names: BTreeSet<&str> = code.keys().copied().collect();
    let missing: Vec<_> = code_names.difference(&doc_names).collect();
    let unchecked: Vec<_> = doc_names.difference(&code_names).collect();
    assert!(missing.is_empty(), "FORMAT.md does not state {missing:?}");
    assert!(unchecked.is_empty(), "FORMAT.md states {unchecked:?}, which this test does not check");
    for (name, value) in &code {
        assert_eq!(&documented[*name], value, "FORMAT.md states the wrong value for {name}");
    }
    // The record size example in the prose, spelled out.
    assert_eq!(record_size_bytes(768, 4), 3136);
}

// Proves each private constant FORMAT.md names is declared in the named
// source file exactly as the document quotes it.
#[test]
fn source_constants_match_their_declarations() {
    let doc = format_doc();
    let (_, rows) = table_after(&doc, "<!-- source-constants -->");
    for row in &rows {
        let [name, declaration, file] = &row[..] else { panic!("source-constants row {row:?} needs 3 cells") };
        assert!(declaration.contains(&format!("const {name}:")), "the declaration quoted for {name} is not of {name}");
        let path = repo_root().join(file);
        let source = fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        assert!(
            source.lines().any(|l| l.trim() == declaration),
            "{} does not declare `{declaration}` as FORMAT.md says",
            path.display()
        );
    }
}

// Proves the element type and record kind tables list exactly the codes the
// decoders accept, with the right names and sizes.
#[test]
fn code_tables_match_the_decoders() {
    let doc = format_doc();
    let (_, rows) = table_after(&doc, "<!-- element-types -->");
    let documented: BTreeMap<u32, &Vec<String>> =
        rows.iter().map(|r| (r[0].parse().unwrap_or_else(|e| panic!("bad code in {r:?}: {e}")), r)).collect();
    assert_eq!(documented.len(), rows.len(), "an element code is listed twice");
    let mut known = 0;
    for code in 0..=u32::from(u16::MAX) {
        let Some(t) = ElementType::from_code(code) else {
            assert!(!documented.contains_key(&code), "FORMAT.md lists element code {code}, which the code rejects");
            continue;
        };
        known += 1;
        let row = documented.get(&code).unwrap_or_else(|| panic!("FORMAT.md does not list element code {code}"));
        assert_eq!(t.code(), code);
        assert_eq!(row[1], format!("{t:?}"), "element code {code}");
        assert_eq!(row[2], t.size_bytes().to_string(), "size of element code {code}");
        assert!(row[3].ends_with(t.name()), "Rust type of element code {code}: {} vs {}", row[3], t.name());
    }
    assert_eq!(known, rows.len());

    let (_, rows) = table_after(&doc, "<!-- record-kinds -->");
    let documented: BTreeMap<u8, &Vec<String>> =
        rows.iter().map(|r| (r[0].parse().unwrap_or_else(|e| panic!("bad code in {r:?}: {e}")), r)).collect();
    assert_eq!(documented.len(), rows.len(), "a record kind is listed twice");
    let mut known = 0;
    for code in 0..=u8::MAX {
        let Some(kind) = RecordKind::from_code(code) else {
            assert!(!documented.contains_key(&code), "FORMAT.md lists record kind {code}, which the code rejects");
            continue;
        };
        known += 1;
        let row = documented.get(&code).unwrap_or_else(|| panic!("FORMAT.md does not list record kind {code}"));
        assert_eq!(kind.code(), code);
        assert_eq!(row[1], format!("{kind:?}"), "record kind {code}");
    }
    assert_eq!(known, rows.len());
}

// Proves the CRC identity FORMAT.md relies on: continuing from a seed equals
// the checksum of the concatenation, so the WAL chain is one running CRC.
#[test]
fn chained_crc_is_the_crc_of_the_concatenation() {
    let a: Vec<u8> = (0..=255u8).collect();
    let b = b"a frame's length and payload";
    let whole: Vec<u8> = a.iter().chain(b.iter()).copied().collect();
    assert_eq!(crc32(crc32(0, &a), b), crc32(0, &whole));
    assert_eq!(crc32(0, b"123456789"), 0xCBF4_3926, "the standard CRC-32 check value");
}

/// Checks the bytes of one structure against the FORMAT.md table marked
/// `<!-- layout: <name> <len> -->`: the rows must tile `0..len` exactly,
/// `len` must be `expected_len`, reserved rows must be zero, and every other
/// row must name a field of `fields` whose bytes sit at its offset.
fn check_layout(doc: &str, name: &str, expected_len: usize, bytes: &[u8], fields: &[(&str, Vec<u8>)]) {
    let (marker, rows) = table_after(doc, &format!("<!-- layout: {name} "));
    let len: usize = marker
        .trim()
        .trim_start_matches(&format!("<!-- layout: {name} "))
        .trim_end_matches("-->")
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("bad length in {marker:?}: {e}"));
    assert_eq!(len, expected_len, "FORMAT.md gives {name} a length of {len}");
    assert!(bytes.len() >= len, "{name}: only {} bytes to check", bytes.len());
    let fields: BTreeMap<&str, &Vec<u8>> = fields.iter().map(|(f, v)| (*f, v)).collect();
    let mut seen = BTreeSet::new();
    let mut next = 0usize;
    for row in &rows {
        let offset: usize = row[0].parse().unwrap_or_else(|e| panic!("{name}: bad offset in {row:?}: {e}"));
        let size: usize = row[1].parse().unwrap_or_else(|e| panic!("{name}: bad size in {row:?}: {e}"));
        let field = row[3].as_str();
        assert_eq!(offset, next, "{name}: row {field} at {offset} does not follow the previous row (ends at {next})");
        next = offset + size;
        let actual = &bytes[offset..next];
        if field == "reserved" {
            assert!(actual.iter().all(|&b| b == 0), "{name}: reserved bytes {offset}..{next} are not zero");
            continue;
        }
        let expected = fields.get(field).unwrap_or_else(|| panic!("{name}: FORMAT.md documents unknown field {field}"));
        assert_eq!(expected.len(), size, "{name}: FORMAT.md gives {field} {size} bytes");
        assert_eq!(actual, &expected[..], "{name}: {field} at offset {offset}");
        assert!(seen.insert(field), "{name}: {field} documented twice");
    }
    assert_eq!(next, len, "{name}: the rows cover {next} of {len} bytes");
    for field in fields.keys() {
        assert!(seen.contains(field), "{name}: FORMAT.md does not document {field}");
    }
}

fn le32(v: u32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

fn le64(v: u64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

fn crc_of(bytes: &[u8]) -> Vec<u8> {
    le32(crc32(0, bytes))
}

const A: u64 = 0x0102_0304_0506_0708;
const B: u64 = 0x1112_1314_1516_1718;
const VA: [f32; 3] = [1.5, -2.0, 3.25];
const VB: [f32; 3] = [4.0, 5.5, -6.75];

fn small_store(path: &Path, inline_max_bytes: usize) -> VectorStore<f32> {
    StoreOptions::new(3)
        .initial_file_bytes(64 << 10)
        .growth_step_bytes(64 << 10, 1 << 20)
        .inline_batch_max_bytes(inline_max_bytes)
        .open(path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}

/// The fields of a frame at `at` of `segment` whose chain seed is `seed`;
/// returns the frame's payload range and its crc.
fn frame_fields(segment: &[u8], at: usize, seed: u32, payload_len: usize) -> (Vec<(&'static str, Vec<u8>)>, u32) {
    let end = at + FRAME_HEADER_BYTES + payload_len;
    let mut chained = segment[at..at + 4].to_vec();
    chained.extend_from_slice(&segment[at + FRAME_HEADER_BYTES..end]);
    let crc = crc32(seed, &chained);
    (vec![("payload_len", le32(payload_len as u32)), ("crc", le32(crc))], crc)
}

// Proves every byte layout table in FORMAT.md (offsets, sizes, field names,
// reserved zeros, checksum coverage, the frame chain seeded by the segment
// header) describes the files a real store writes, and that the documented
// names, first LSN, first segment and record size hold.
#[test]
fn layout_tables_match_the_bytes_a_store_writes() {
    let doc = format_doc();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    let store = small_store(&path, DEFAULT_INLINE_BATCH_MAX_BYTES);
    store.store(A, &VA).expect("store A");
    store.store(B, &VB).expect("store B");
    assert!(store.delete(A).expect("delete A"));
    let wal = fs::read(path.join(WAL_DIR).join(wal_segment_name(1))).expect("the first WAL segment is 1");
    store.checkpoint().expect("checkpoint");
    store.close().expect("close");

    let record = record_size_bytes(3, 4) as usize;
    assert_eq!(record, 128);
    let shape_fields = |magic: &[u8; 8], generation: u32| {
        vec![
            ("magic", magic.to_vec()),
            ("version", le32(FORMAT_VERSION)),
            ("generation", le32(generation)),
            ("dimension", le32(3)),
            ("element_code", le32(ElementType::F32.code())),
            ("element_size", le32(4)),
            ("record_size", le32(record as u32)),
            ("record_header_bytes", le32(RECORD_HEADER_BYTES)),
        ]
    };

    // QUIVER.
    let quiver = fs::read(path.join(HEADER_FILE)).expect("QUIVER");
    assert_eq!(quiver.len(), FormatHeader::ENCODED_LEN);
    let mut fields = shape_fields(&STORE_MAGIC, 0);
    fields.push(("crc", crc_of(&quiver[..60])));
    check_layout(&doc, "format_header", FormatHeader::ENCODED_LEN, &quiver, &fields);

    // The data file: header page, then records at 4096 + slot * 128.
    let data = fs::read(path.join(data_file_name(1))).expect("data file of generation 1");
    let mut fields = shape_fields(&DATA_MAGIC, 1);
    fields.push(("changes_after_lsn", 0u64.to_le_bytes().to_vec()));
    fields.push(("crc", crc_of(&data[..60])));
    check_layout(&doc, "data_header", DATA_HEADER_BYTES as usize, &data, &fields);
    let slot = |s: usize| &data[DATA_HEADER_BYTES as usize + s * record..][..record];
    let mut record_crcs = Vec::new();
    for (s, (id, lsn, payload)) in [(A, 1u64, Some(&VA)), (B, 2, Some(&VB)), (A, 3, None)].into_iter().enumerate() {
        let rec = slot(s);
        let payload_bytes: &[u8] = payload.map_or(&[], |v| bytemuck::cast_slice(&v[..]));
        let kind = if payload.is_some() { RecordKind::Put } else { RecordKind::Tombstone };
        let mut covered = rec[..60].to_vec();
        covered.extend_from_slice(payload_bytes);
        let crc = crc32(0, &covered);
        record_crcs.push(crc);
        let fields = vec![
            ("magic", le32(RECORD_MAGIC)),
            ("kind", vec![kind.code()]),
            ("id", le64(id)),
            ("lsn", le64(lsn)),
            ("crc", le32(crc)),
        ];
        check_layout(&doc, "record_header", RECORD_HEADER_BYTES as usize, rec, &fields);
        assert_eq!(&rec[64..64 + payload_bytes.len()], payload_bytes, "payload of slot {s}");
        assert!(rec[64 + payload_bytes.len()..].iter().all(|&b| b == 0), "padding of slot {s} is not zero");
    }
    assert_eq!(&slot(0)[..4], b"QREC", "RECORD_MAGIC is the bytes QREC");

    // The WAL segment the three batches went to: header, then three inline
    // frames chained from the header's crc.
    let seed = crc32(0, &wal[..60]);
    let fields = vec![
        ("magic", WAL_MAGIC.to_vec()),
        ("version", le32(FORMAT_VERSION)),
        ("segment", le64(1)),
        ("crc", le32(seed)),
    ];
    check_layout(&doc, "segment_header", SegmentHeader::ENCODED_LEN, &wal, &fields);
    let mut at = SegmentHeader::ENCODED_LEN;
    let mut prev = seed;
    for (i, (id, payload)) in [(A, Some(&VA)), (B, Some(&VB)), (A, None)].into_iter().enumerate() {
        let inline: &[u8] = payload.map_or(&[], |v| bytemuck::cast_slice(&v[..]));
        let payload_len = BATCH_HEADER_BYTES + BATCH_ENTRY_BYTES + inline.len();
        let (fields, crc) = frame_fields(&wal, at, prev, payload_len);
        check_layout(&doc, "frame_header", FRAME_HEADER_BYTES, &wal[at..], &fields);
        let batch = &wal[at + FRAME_HEADER_BYTES..at + FRAME_HEADER_BYTES + payload_len];
        let fields = vec![
            ("lsn", le64(i as u64 + 1)),
            ("generation", le32(1)),
            ("count", le32(1)),
            ("first_slot", le64(i as u64)),
            ("flags", le32(1)),
        ];
        check_layout(&doc, "batch_header", BATCH_HEADER_BYTES, batch, &fields);
        let kind = if payload.is_some() { RecordKind::Put } else { RecordKind::Tombstone };
        let fields = vec![("id", le64(id)), ("kind", vec![kind.code()]), ("record_crc", le32(record_crcs[i]))];
        check_layout(&doc, "batch_entry", BATCH_ENTRY_BYTES, &batch[BATCH_HEADER_BYTES..], &fields);
        assert_eq!(&batch[BATCH_HEADER_BYTES + BATCH_ENTRY_BYTES..], inline, "inline payload of frame {i}");
        prev = crc;
        at += FRAME_HEADER_BYTES + payload_len;
    }
    assert_eq!(at, wal.len(), "the segment holds exactly the three frames");

    // The checkpoint: manifest and snapshot (only B is live, in slot 1).
    let manifest = fs::read(path.join(MANIFEST_FILE)).expect("MANIFEST");
    assert_eq!(manifest.len(), Manifest::ENCODED_LEN);
    let fields = vec![
        ("magic", MANIFEST_MAGIC.to_vec()),
        ("version", le32(FORMAT_VERSION)),
        ("generation", le32(1)),
        ("checkpoint_lsn", le64(3)),
        ("checkpoint_end_slot", le64(3)),
        ("flags", le32(1)),
        ("wal_segment", le64(2)),
        ("crc", crc_of(&manifest[..60])),
    ];
    check_layout(&doc, "manifest", Manifest::ENCODED_LEN, &manifest, &fields);
    // One id: one block of 256 buckets after a page of header, checksum
    // table and padding; B in its home bucket, every other bucket empty.
    let snapshot = fs::read(path.join(snapshot_file_name(1, 3))).expect("the snapshot names generation and LSN");
    assert_eq!(snapshot.len(), 4096 + BLOCK_BYTES);
    let block = &snapshot[4096..];
    let block_crc_bytes = le32(block_crc(0, block));
    assert_eq!(&snapshot[64..68], &block_crc_bytes[..], "block 0's checksum follows the header");
    assert!(snapshot[68..4096].iter().all(|&b| b == 0), "zero padding up to the first page boundary");
    let fields = vec![
        ("magic", SNAPSHOT_MAGIC.to_vec()),
        ("version", le32(FORMAT_VERSION)),
        ("generation", le32(1)),
        ("lsn", le64(3)),
        ("end_slot", le64(3)),
        ("entry_count", le64(1)),
        ("bucket_count", le64(BLOCK_BUCKETS as u64)),
        ("block_crcs_crc", crc_of(&block_crc_bytes)),
        ("crc", crc_of(&snapshot[..60])),
    ];
    check_layout(&doc, "snapshot_header", SnapshotHeader::ENCODED_LEN, &snapshot, &fields);
    let home = home_bucket(B, BLOCK_BUCKETS as u64) as usize;
    let fields = vec![("id", le64(B)), ("slot", le64(1))];
    check_layout(&doc, "snapshot_entry", SNAPSHOT_ENTRY_BYTES, &block[home * SNAPSHOT_ENTRY_BYTES..], &fields);
    let empty = vec![("id", le64(0)), ("slot", le64(EMPTY_SLOT))];
    let other = (home + 1) % BLOCK_BUCKETS;
    check_layout(&doc, "snapshot_entry", SNAPSHOT_ENTRY_BYTES, &block[other * SNAPSHOT_ENTRY_BYTES..], &empty);
}

// Proves the location-batch form FORMAT.md describes: with inlining off, a
// batch logs only its entries (flags 0, no trailing bytes) and each entry's
// record_crc is the crc of the record in the data file.
#[test]
fn location_batches_match_the_documented_layout() {
    let doc = format_doc();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    let store = small_store(&path, 0);
    assert_eq!(store.store_batch(&[(A, &VA[..]), (B, &VB[..])]).expect("batch"), 2);
    drop(store);
    let wal = fs::read(path.join(WAL_DIR).join(wal_segment_name(1))).expect("WAL segment 1");
    let data = fs::read(path.join(data_file_name(1))).expect("data file");
    let record = record_size_bytes(3, 4) as usize;
    let seed = crc32(0, &wal[..60]);
    let at = SegmentHeader::ENCODED_LEN;
    let payload_len = BATCH_HEADER_BYTES + 2 * BATCH_ENTRY_BYTES;
    let (fields, _) = frame_fields(&wal, at, seed, payload_len);
    check_layout(&doc, "frame_header", FRAME_HEADER_BYTES, &wal[at..], &fields);
    assert_eq!(wal.len(), at + FRAME_HEADER_BYTES + payload_len, "a location frame carries no payloads");
    let batch = &wal[at + FRAME_HEADER_BYTES..];
    let fields = vec![
        ("lsn", le64(1)),
        ("generation", le32(1)),
        ("count", le32(2)),
        ("first_slot", le64(0)),
        ("flags", le32(0)),
    ];
    check_layout(&doc, "batch_header", BATCH_HEADER_BYTES, batch, &fields);
    for (i, id) in [A, B].into_iter().enumerate() {
        let rec = &data[DATA_HEADER_BYTES as usize + i * record..][..record];
        let fields =
            vec![("id", le64(id)), ("kind", vec![RecordKind::Put.code()]), ("record_crc", rec[60..64].to_vec())];
        check_layout(
            &doc,
            "batch_entry",
            BATCH_ENTRY_BYTES,
            &batch[BATCH_HEADER_BYTES + i * BATCH_ENTRY_BYTES..],
            &fields,
        );
    }
}
