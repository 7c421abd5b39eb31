//! The import and export routes: bit-exact round trips for every format and
//! element type it holds, shape checks before anything is written, torn and
//! damaged files stopped at their byte offset with whole batches only, and
//! exports that appear whole or not at all.

use std::fs;
use std::path::Path;

use half::f16;
use proptest::prelude::*;
use quiver_formats::{
    Format, FormatError, ImportOptions, ReaderOptions, Scalar, WithIds, export_ids, export_snapshot, import_file,
    import_rows, open_reader, open_reader_with, probe,
};
use quiver_storage::{Element, VectorStore};

fn store<T: Element>(dir: &Path, name: &str, dim: usize) -> VectorStore<T> {
    VectorStore::open(dir.join(name), dim).expect("open")
}

fn fill<T: Element>(store: &VectorStore<T>, rows: &[Vec<T>]) {
    let batch: Vec<(u64, &[T])> = rows.iter().enumerate().map(|(i, v)| (i as u64, &v[..])).collect();
    store.store_batch(&batch).expect("batch");
}

fn bits<T: Element>(store: &VectorStore<T>) -> Vec<(u64, Vec<u8>)> {
    let snapshot = store.snapshot();
    snapshot.range(..).map(|(id, v)| (id, bytemuck::cast_slice::<T, u8>(v).to_vec())).collect()
}

/// Exports `rows` (ids 0..n) in `format`, imports the file into a fresh
/// store and requires the same bytes under the same ids.
fn round_trip<T: Element>(rows: &[Vec<T>], format: Format, ext: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let dim = rows[0].len();
    let a = store::<T>(dir.path(), "a", dim);
    fill(&a, rows);
    let file = dir.path().join(format!("out.{ext}"));
    let exported = export_snapshot(&a.snapshot(), &file, format, .., &mut |_| {}).expect("export");
    assert_eq!(exported.rows, rows.len() as u64);
    assert_eq!(fs::metadata(&file).expect("file").len(), exported.bytes_written);
    let shape = probe(&file, None).expect("probe");
    assert_eq!((shape.dim, shape.element, shape.rows), (dim, Scalar::Element(T::TYPE), Some(rows.len() as u64)));
    let b = store::<T>(dir.path(), "b", dim);
    let imported =
        import_file(&b, &file, None, &ImportOptions::default().batch_bytes(100), &mut |_| {}).expect("import");
    assert_eq!(imported.rows, rows.len() as u64);
    assert_eq!(bits(&a), bits(&b), "{format:?} of {} is not bit-exact", T::TYPE.name());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    // Proves fvecs and npy round-trip any f32 bit pattern (NaNs, infinities,
    // subnormals, negative zero) exactly.
    #[test]
    fn f32_round_trips_bit_exact(raw in prop::collection::vec(prop::collection::vec(any::<u32>(), 5), 1..40)) {
        let rows: Vec<Vec<f32>> = raw.iter().map(|r| r.iter().map(|&b| f32::from_bits(b)).collect()).collect();
        round_trip(&rows, Format::Fvecs, "fvecs");
        round_trip(&rows, Format::Npy, "npy");
    }

    // Proves the byte and half types round-trip through the formats that
    // hold them.
    #[test]
    fn other_types_round_trip_bit_exact(raw in prop::collection::vec(prop::collection::vec(any::<u64>(), 3), 1..30)) {
        let u8s: Vec<Vec<u8>> = raw.iter().map(|r| r.iter().map(|&b| b as u8).collect()).collect();
        round_trip(&u8s, Format::Bvecs, "bvecs");
        round_trip(&u8s, Format::Npy, "npy");
        let i8s: Vec<Vec<i8>> = raw.iter().map(|r| r.iter().map(|&b| b as i8).collect()).collect();
        round_trip(&i8s, Format::Npy, "npy");
        let f16s: Vec<Vec<f16>> = raw.iter().map(|r| r.iter().map(|&b| f16::from_bits(b as u16)).collect()).collect();
        round_trip(&f16s, Format::Npy, "npy");
        let f64s: Vec<Vec<f64>> = raw.iter().map(|r| r.iter().map(|&b| f64::from_bits(b)).collect()).collect();
        round_trip(&f64s, Format::Npy, "npy");
    }
}

/// Writes `rows` as fvecs by the format's definition (independently of the
/// crate's writer): per row an i32 dimension, then the f32s.
fn fvecs_bytes(rows: &[Vec<f32>]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in rows {
        out.extend_from_slice(&(r.len() as i32).to_le_bytes());
        for x in r {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out
}

fn rows(n: usize, dim: usize) -> Vec<Vec<f32>> {
    (0..n).map(|i| (0..dim).map(|j| (i * 100 + j) as f32).collect()).collect()
}

// Proves a file written by the format's definition imports, and the crate's
// export is byte for byte that definition.
#[test]
fn fvecs_matches_the_formats_definition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = rows(7, 3);
    let file = dir.path().join("in.fvecs");
    fs::write(&file, fvecs_bytes(&data)).expect("write");
    let s = store::<f32>(dir.path(), "s", 3);
    import_file(&s, &file, None, &ImportOptions::default().first_id(100), &mut |_| {}).expect("import");
    assert_eq!(s.retrieve(106), Some(data[6].clone()));
    let out = dir.path().join("out.fvecs");
    export_snapshot(&s.snapshot(), &out, Format::Fvecs, .., &mut |_| {}).expect("export");
    assert_eq!(fs::read(&out).expect("read"), fvecs_bytes(&data));
}

// Proves a file torn inside a row stops the import at that row's offset and
// stores only the whole batches before the one holding it.
#[test]
fn torn_file_stops_at_the_byte_offset_and_keeps_whole_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = rows(30, 4);
    let mut bytes = fvecs_bytes(&data);
    let row = 4 + 4 * 4;
    bytes.truncate(25 * row + 7); // inside row 25
    let file = dir.path().join("torn.fvecs");
    fs::write(&file, &bytes).expect("write");
    let s = store::<f32>(dir.path(), "s", 4);
    let batch_bytes = 10 * 16; // ten rows per batch
    let mut seen = Vec::new();
    let err = import_file(&s, &file, None, &ImportOptions::default().batch_bytes(batch_bytes), &mut |p| {
        seen.push(p.rows_done);
    })
    .expect_err("a torn file");
    match err {
        FormatError::Malformed { offset, .. } => assert_eq!(offset, 25 * row as u64),
        other => panic!("expected Malformed, got {other}"),
    }
    assert_eq!(seen, [10, 20]);
    assert_eq!(s.len(), 20, "rows 20..25 are in the broken batch and must not be stored");
    assert_eq!(s.retrieve(19), Some(data[19].clone()));
}

// Proves a row claiming another dimension is reported at its offset.
#[test]
fn row_with_another_dimension_is_damage_at_its_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut data = rows(5, 2);
    data[3] = vec![1.0, 2.0, 3.0];
    let file = dir.path().join("bad.fvecs");
    fs::write(&file, fvecs_bytes(&data)).expect("write");
    let s = store::<f32>(dir.path(), "s", 2);
    let err = import_file(&s, &file, None, &ImportOptions::default(), &mut |_| {}).expect_err("damage");
    assert!(matches!(err, FormatError::Malformed { offset: 36, .. }), "{err}");
    assert_eq!(s.len(), 0, "the only batch held the damaged row");
}

// Proves a file whose dimension or element type is not the store's is
// refused before anything is written.
#[test]
fn shape_mismatch_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("in.fvecs");
    fs::write(&file, fvecs_bytes(&rows(3, 4))).expect("write");
    let wrong_dim = store::<f32>(dir.path(), "a", 5);
    let err = import_file(&wrong_dim, &file, None, &ImportOptions::default(), &mut |_| {}).expect_err("dim");
    assert!(matches!(err, FormatError::DimensionMismatch { file: 4, store: 5, .. }), "{err}");
    let wrong_type = store::<u8>(dir.path(), "b", 4);
    let err = import_file(&wrong_type, &file, None, &ImportOptions::default(), &mut |_| {}).expect_err("type");
    assert!(matches!(err, FormatError::ElementTypeMismatch { file: "f32", store: "u8", .. }), "{err}");
    assert!(err.to_string().contains("f32 elements but the store holds u8"), "{err}");
    assert_eq!((wrong_dim.len(), wrong_type.len()), (0, 0));
    assert_eq!(wrong_dim.snapshot().lsn(), 0, "not even an empty batch was committed");
}

// Proves skipping rows resumes an import with the rows' own ids.
#[test]
fn skip_rows_resumes_with_the_same_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = rows(10, 2);
    let file = dir.path().join("in.fvecs");
    fs::write(&file, fvecs_bytes(&data)).expect("write");
    let s = store::<f32>(dir.path(), "s", 2);
    let summary =
        import_file(&s, &file, None, &ImportOptions::default().first_id(5).skip_rows(6), &mut |_| {}).expect("import");
    assert_eq!((summary.rows, summary.end_id), (4, 15));
    assert_eq!(s.ids().into_iter().min(), Some(11));
    assert_eq!(s.retrieve(14), Some(data[9].clone()));
}

// Proves a raised cancel flag stops an import between batches: the rows of
// the batches stored before it are there under their ids and nothing after,
// the error says which row resumes it, resuming from there (with the same
// first id) completes the file bit-exact, a flag raised before the first
// batch stores nothing, and one raised after the last batch lets the import
// finish.
#[test]
fn cancel_flag_stops_between_batches_and_says_where_to_resume() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let dir = tempfile::tempdir().expect("tempdir");
    let data = rows(35, 4);
    let file = dir.path().join("in.fvecs");
    fs::write(&file, fvecs_bytes(&data)).expect("write");
    let ten_rows = ImportOptions::default().batch_bytes(10 * 16).first_id(3);

    let s = store::<f32>(dir.path(), "s", 4);
    let flag = Arc::new(AtomicBool::new(false));
    let options = ten_rows.clone().skip_rows(5).cancel_flag(Arc::clone(&flag));
    let err = import_file(&s, &file, None, &options, &mut |p| {
        if p.rows_done == 20 {
            flag.store(true, Ordering::Relaxed);
        }
    })
    .expect_err("cancelled");
    assert!(
        matches!(err, FormatError::Cancelled { ref stored, next_row: 25, .. } if (stored.rows, stored.end_id) == (20, 28)),
        "expected Cancelled after 20 rows (resume at row 25), got {err}"
    );
    let mut ids = s.ids();
    ids.sort_unstable();
    assert_eq!(ids, (8..28).collect::<Vec<u64>>(), "rows 5..25 under ids first_id + row, nothing else");

    let resumed = import_file(&s, &file, None, &ten_rows.clone().skip_rows(25), &mut |_| {}).expect("resume");
    assert_eq!((resumed.rows, resumed.end_id), (10, 38));
    for (row, v) in data.iter().enumerate().skip(5) {
        assert_eq!(
            s.retrieve(3 + row as u64).map(|r| bytemuck::cast_slice::<f32, u8>(&r).to_vec()),
            Some(bytemuck::cast_slice::<f32, u8>(v).to_vec()),
            "row {row}"
        );
    }
    assert_eq!(s.len(), 30);

    let early = store::<f32>(dir.path(), "early", 4);
    let raised = ten_rows.clone().cancel_flag(Arc::new(AtomicBool::new(true)));
    let err = import_file(&early, &file, None, &raised, &mut |_| {}).expect_err("cancelled before any batch");
    assert!(matches!(err, FormatError::Cancelled { ref stored, next_row: 0, .. } if stored.rows == 0), "{err}");
    assert_eq!(early.len(), 0);

    let late = store::<f32>(dir.path(), "late", 4);
    let flag = Arc::new(AtomicBool::new(false));
    let options = ten_rows.cancel_flag(Arc::clone(&flag));
    let done = import_file(&late, &file, None, &options, &mut |p| {
        if p.rows_done == 35 {
            flag.store(true, Ordering::Relaxed);
        }
    })
    .expect("a flag raised after the last batch does not cut the import");
    assert_eq!((done.rows, late.len()), (35, 35));
}

/// An `.npy` file built by the format's definition: magic, version 1.0,
/// the header dict padded to 64 bytes, then `data`.
fn npy_bytes(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

// Proves an npy written by the definition imports; Fortran order, a
// big-endian dtype and a truncated body are refused with what to do; and a
// 1-D uint64 export is the id column.
#[test]
fn npy_by_the_definition_and_its_refusals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data: Vec<f32> = (0..6).map(|x| x as f32 * 0.5).collect();
    let body: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
    let good = dir.path().join("good.npy");
    fs::write(&good, npy_bytes("<f4", false, "(2, 3)", &body)).expect("write");
    let s = store::<f32>(dir.path(), "s", 3);
    import_file(&s, &good, None, &ImportOptions::default(), &mut |_| {}).expect("import");
    assert_eq!(s.retrieve(1), Some(vec![1.5, 2.0, 2.5]));

    let fortran = dir.path().join("f.npy");
    fs::write(&fortran, npy_bytes("<f4", true, "(2, 3)", &body)).expect("write");
    assert!(probe(&fortran, None).expect_err("fortran").to_string().contains("C order"));
    let big = dir.path().join("b.npy");
    fs::write(&big, npy_bytes(">f4", false, "(2, 3)", &body)).expect("write");
    assert!(probe(&big, None).expect_err("big-endian").to_string().contains("astype"));
    let short = dir.path().join("s.npy");
    fs::write(&short, npy_bytes("<f4", false, "(3, 3)", &body)).expect("write");
    assert!(matches!(probe(&short, None), Err(FormatError::Malformed { .. })));

    let ids = dir.path().join("ids.npy");
    export_ids(&s.snapshot(), &ids, ..).expect("ids");
    let mut reader = open_reader(&ids, None).expect("open ids");
    assert_eq!((reader.shape().element, reader.shape().dim), (Scalar::U64, 1));
    let mut out = [0u8; 16];
    assert_eq!(reader.read_rows(2, &mut out, &mut Vec::new()).expect("read"), 2);
    assert_eq!(out, [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
}

// Proves a bf16 store travels through npy as `<u2` bit patterns (numpy has
// no bfloat16) and comes back bit-exact, and that such a file goes into a
// new bf16 store only: a store of another type refuses it.
#[test]
fn bf16_travels_in_npy_as_u2_bits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store::<half::bf16>(dir.path(), "s", 2);
    let rows = [[half::bf16::from_bits(0x3F80), half::bf16::from_bits(0xC000)], [half::bf16::NAN, half::bf16::MIN]];
    s.store_batch(&[(0, &rows[0][..]), (1, &rows[1][..])]).expect("store");
    let npy = dir.path().join("b.npy");
    export_snapshot(&s.snapshot(), &npy, Format::Npy, .., &mut |_| {}).expect("export");
    let bytes = fs::read(&npy).expect("read");
    assert!(String::from_utf8_lossy(&bytes[..128]).contains("'descr': '<u2'"), "the header names <u2");
    let copy = store::<half::bf16>(dir.path(), "copy", 2);
    import_file(&copy, &npy, None, &ImportOptions::default(), &mut |_| {}).expect("import");
    for (id, row) in rows.iter().enumerate() {
        let got = copy.retrieve(id as u64).expect("row");
        assert_eq!(
            got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            row.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
    let f16 = store::<half::f16>(dir.path(), "f16", 2);
    let err = import_file(&f16, &npy, None, &ImportOptions::default(), &mut |_| {}).expect_err("type");
    assert!(err.to_string().contains("bf16"), "{err}");
    assert_eq!(f16.len(), 0);
}

// Proves a file without an id column imports under the ids of an ids file
// beside it (the pair `export` and `export --ids-only` write), also when
// resumed part-way, and that ids that cannot pair with the rows (another
// count, another type, a table with its own ids) are refused with nothing
// written.
#[test]
fn ids_from_beside_the_file_pair_row_for_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = store::<f32>(dir.path(), "a", 3);
    let rows = rows(50, 3);
    let batch: Vec<(u64, &[f32])> = rows.iter().enumerate().map(|(i, v)| (1000 + 7 * i as u64, &v[..])).collect();
    a.store_batch(&batch).expect("batch");
    let (vectors, ids) = (dir.path().join("v.fvecs"), dir.path().join("ids.npy"));
    export_snapshot(&a.snapshot(), &vectors, Format::Fvecs, .., &mut |_| {}).expect("export");
    export_ids(&a.snapshot(), &ids, ..).expect("ids");

    let b = store::<f32>(dir.path(), "b", 3);
    let paired = WithIds::from_file(open_reader(&vectors, None).expect("open"), &ids).expect("pair");
    let options = ImportOptions::default().batch_bytes(12 * 8);
    let first =
        import_rows(&b, Box::new(paired), &vectors, &options.clone().skip_rows(20), &mut |_| {}).expect("import");
    assert_eq!((first.rows, b.len()), (30, 30));
    assert_eq!(b.retrieve(1000 + 7 * 20), Some(rows[20].clone()));
    assert_eq!(b.retrieve(1000), None, "skipped rows are not stored");
    let held: Vec<u64> = (0..50).map(|i| 1000 + 7 * i).collect();
    let paired = WithIds::from_ids(open_reader(&vectors, None).expect("open"), held).expect("pair");
    import_rows(&b, Box::new(paired), &vectors, &options, &mut |_| {}).expect("import");
    assert_eq!(bits(&b), bits(&a));

    let c = store::<f32>(dir.path(), "c", 3);
    let short = WithIds::from_ids(open_reader(&vectors, None).expect("open"), vec![1, 2, 3]).err().expect("count");
    assert!(short.to_string().contains("3 ids for a fvecs file of 50 rows"), "{short}");
    let not_npy = WithIds::from_file(open_reader(&vectors, None).expect("open"), &vectors).err().expect("fvecs");
    assert!(not_npy.to_string().contains("not an .npy file"), "{not_npy}");
    let npy = dir.path().join("v.npy");
    export_snapshot(&a.snapshot(), &npy, Format::Npy, .., &mut |_| {}).expect("npy");
    let two_d = WithIds::from_file(open_reader(&vectors, None).expect("open"), &npy).err().expect("2-D");
    assert!(two_d.to_string().contains("1-D uint64 .npy"), "{two_d}");
    #[cfg(feature = "arrow")]
    {
        let table = dir.path().join("v.arrow");
        export_snapshot(&a.snapshot(), &table, Format::ArrowFile, .., &mut |_| {}).expect("arrow");
        let own = WithIds::from_ids(open_reader(&table, None).expect("open"), (0..50).collect()).err().expect("own");
        assert!(own.to_string().contains("carries its own ids"), "{own}");
    }
    assert_eq!(c.len(), 0);
}

// Proves a cancelled export stops at the next write and leaves neither the
// file nor its temporary behind, in every format.
#[test]
fn cancelled_export_leaves_no_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store::<f32>(dir.path(), "s", 256);
    fill(&s, &rows(3000, 256));
    let mut formats = vec![(Format::Fvecs, "fvecs"), (Format::Npy, "npy")];
    if cfg!(feature = "parquet") {
        formats.extend([(Format::ArrowFile, "arrow"), (Format::ArrowStream, "arrows"), (Format::Parquet, "parquet")]);
    }
    for (format, ext) in formats {
        let flag = std::sync::atomic::AtomicBool::new(false);
        let file = dir.path().join(format!("out.{ext}"));
        let mut calls = 0;
        let err = quiver_formats::export_snapshot_with(&s.snapshot(), &file, format, .., Some(&flag), &mut |p| {
            calls += 1;
            assert!(p.rows_done < 3000, "cancelled before the end");
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        })
        .expect_err("cancelled");
        assert!(matches!(err, FormatError::ExportCancelled { .. }), "{err}");
        assert_eq!(calls, 1, "{ext}: stopped at the first check after the flag");
    }
    let left: Vec<_> = fs::read_dir(dir.path()).expect("list").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(left, ["s"], "files left behind");
}

// Proves exports that cannot be done leave no file behind: a type the
// format cannot hold, and a directory that does not exist.
#[test]
fn failed_export_leaves_no_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store::<half::bf16>(dir.path(), "s", 2);
    s.store(1, &[half::bf16::ONE, half::bf16::ZERO]).expect("store");
    let fvecs = dir.path().join("x.fvecs");
    let err = export_snapshot(&s.snapshot(), &fvecs, Format::Fvecs, .., &mut |_| {}).expect_err("bf16 in fvecs");
    assert!(err.to_string().contains("fvecs holds f32 elements"), "{err}");
    let missing = dir.path().join("no/such/dir/x.npy");
    let f = store::<f32>(dir.path(), "f", 2);
    assert!(export_snapshot(&f.snapshot(), &missing, Format::Npy, .., &mut |_| {}).is_err());
    let left: Vec<_> = fs::read_dir(dir.path()).expect("list").map(|e| e.expect("entry").file_name()).collect();
    assert!(left.iter().all(|n| n == "s" || n == "f"), "files left behind: {left:?}");
}

// Proves ivecs (i32 rows, the benchmark sets' neighbour lists) reads, and
// that importing it is refused: no store holds i32.
#[test]
fn ivecs_reads_but_is_not_a_store_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = Vec::new();
    for r in [[1i32, 2, 3], [4, 5, 6]] {
        bytes.extend_from_slice(&3i32.to_le_bytes());
        r.iter().for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
    }
    let file = dir.path().join("gt.ivecs");
    fs::write(&file, &bytes).expect("write");
    let mut reader = open_reader(&file, None).expect("open");
    assert_eq!(reader.shape().element, Scalar::I32);
    let mut out = [0u8; 24];
    assert_eq!(reader.read_rows(2, &mut out, &mut Vec::new()).expect("read"), 2);
    assert_eq!(reader.read_rows(1, &mut out, &mut Vec::new()).expect("at the end"), 0);
    assert_eq!(bytemuck::cast_slice::<u8, i32>(&out), [1, 2, 3, 4, 5, 6]);
    let s = store::<f32>(dir.path(), "s", 3);
    assert!(import_file(&s, &file, None, &ImportOptions::default(), &mut |_| {}).is_err());
}

/// Arrow IPC and Parquet tables (features `arrow` and `parquet`).
#[cfg(feature = "parquet")]
mod tables {
    use std::sync::Arc;

    use arrow_array::builder::{Float32Builder, ListBuilder};
    use arrow_array::{ArrayRef, FixedSizeListArray, Float32Array, Int64Array, RecordBatch, UInt64Array};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    /// Exports a store with sparse ids to `format`, imports it into a fresh
    /// store and requires the same ids and bytes.
    fn table_round_trip<T: Element>(rows: &[(u64, Vec<T>)], format: Format, ext: &str) {
        let dir = tempfile::tempdir().expect("tempdir");
        let dim = rows[0].1.len();
        let a = store::<T>(dir.path(), "a", dim);
        let batch: Vec<(u64, &[T])> = rows.iter().map(|(id, v)| (*id, &v[..])).collect();
        a.store_batch(&batch).expect("batch");
        let file = dir.path().join(format!("t.{ext}"));
        export_snapshot(&a.snapshot(), &file, format, .., &mut |_| {}).expect("export");
        let b = store::<T>(dir.path(), "b", dim);
        let summary =
            import_file(&b, &file, None, &ImportOptions::default().batch_bytes(64), &mut |_| {}).expect("import");
        assert_eq!(summary.rows, rows.len() as u64);
        assert_eq!(bits(&a), bits(&b), "{format:?} of {}", T::TYPE.name());
    }

    // Proves Arrow files, Arrow streams and Parquet round-trip ids and every
    // element type they hold bit for bit, ids included (they are not 0..n).
    #[test]
    fn tables_round_trip_ids_and_bits() {
        let f32s: Vec<(u64, Vec<f32>)> = (0..300u64)
            .map(|i| {
                (i * 7 + 3, (0..5).map(|j| f32::from_bits(((i * 31 + j) as u32).wrapping_mul(2_654_435_761))).collect())
            })
            .collect();
        let u8s: Vec<(u64, Vec<u8>)> = (0..50u64).map(|i| (u64::MAX - i, vec![i as u8, 255, 0])).collect();
        let f16s: Vec<(u64, Vec<f16>)> =
            (0..40u64).map(|i| (i, vec![f16::from_bits((i as u16).wrapping_mul(997)), f16::NEG_ZERO])).collect();
        for (format, ext) in
            [(Format::ArrowFile, "arrow"), (Format::ArrowStream, "arrows"), (Format::Parquet, "parquet")]
        {
            table_round_trip(&f32s, format, ext);
            table_round_trip(&u8s, format, ext);
            table_round_trip(&f16s, format, ext);
            let i8s: Vec<(u64, Vec<i8>)> =
                u8s.iter().map(|(id, v)| (*id, v.iter().map(|&x| x as i8).collect())).collect();
            table_round_trip(&i8s, format, ext);
            let f64s: Vec<(u64, Vec<f64>)> =
                f32s.iter().map(|(id, v)| (*id, v.iter().map(|&x| f64::from(x)).collect())).collect();
            table_round_trip(&f64s, format, ext);
        }
    }

    fn write_parquet(path: &Path, batch: &RecordBatch) {
        let file = fs::File::create(path).expect("create");
        let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
        w.write(batch).expect("write");
        w.close().expect("close");
    }

    // Proves a Parquet file written by another writer with a `list<float>`
    // vector column (what DuckDB and pandas produce) imports; a row of
    // another length and a null vector are refused with their row, and
    // nothing of their batch is stored.
    #[test]
    fn list_columns_import_and_bad_rows_name_their_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let build = |lens: &[usize], null_at: Option<usize>| {
            let mut list = ListBuilder::new(Float32Builder::new());
            for (i, &n) in lens.iter().enumerate() {
                if Some(i) == null_at {
                    list.append(false);
                } else {
                    (0..n).for_each(|j| list.values().append_value((i * 10 + j) as f32));
                    list.append(true);
                }
            }
            let ids: ArrayRef = Arc::new(UInt64Array::from_iter_values((0..lens.len() as u64).map(|i| 100 + i)));
            let vectors: ArrayRef = Arc::new(list.finish());
            let schema = Schema::new(vec![
                Field::new("id", DataType::UInt64, false),
                Field::new("vector", vectors.data_type().clone(), true),
            ]);
            RecordBatch::try_new(Arc::new(schema), vec![ids, vectors]).expect("batch")
        };
        let good = dir.path().join("good.parquet");
        write_parquet(&good, &build(&[3, 3, 3, 3], None));
        let s = store::<f32>(dir.path(), "s", 3);
        let err = import_file(&s, &good, None, &ImportOptions::default().first_id(7), &mut |_| {})
            .expect_err("a table keeps its own ids");
        assert!(err.to_string().contains("carries its own ids"), "{err}");
        assert_eq!(s.len(), 0);
        import_file(&s, &good, None, &ImportOptions::default(), &mut |_| {}).expect("import");
        assert_eq!((s.len(), s.retrieve(102)), (4, Some(vec![20.0, 21.0, 22.0])));

        let ragged = dir.path().join("ragged.parquet");
        write_parquet(&ragged, &build(&[3, 3, 2], None));
        let t = store::<f32>(dir.path(), "t", 3);
        let err = import_file(&t, &ragged, None, &ImportOptions::default(), &mut |_| {}).expect_err("ragged");
        assert!(matches!(err, FormatError::BadRow { row: 2, .. }), "{err}");
        let nulls = dir.path().join("nulls.parquet");
        write_parquet(&nulls, &build(&[3, 3, 3], Some(1)));
        let err = import_file(&t, &nulls, None, &ImportOptions::default(), &mut |_| {}).expect_err("null");
        assert!(matches!(err, FormatError::BadRow { row: 1, .. }) && err.to_string().contains("null"), "{err}");
        assert_eq!(t.len(), 0);
    }

    /// A table `rank: uint64, key: <ids>, emb: fixed_size_list<f32, 4>`,
    /// one row per id, `rank` counting down so that it is never `key`.
    fn renamed_table(ids: ArrayRef, rows: &[Vec<f32>]) -> RecordBatch {
        let n = rows.len() as u64;
        let item = Arc::new(Field::new("item", DataType::Float32, true));
        let values = Float32Array::from(rows.concat());
        let emb = FixedSizeListArray::try_new(Arc::clone(&item), 4, Arc::new(values), None).expect("fixed-size list");
        let schema = Schema::new(vec![
            Field::new("rank", DataType::UInt64, false),
            Field::new("key", ids.data_type().clone(), false),
            Field::new("emb", DataType::FixedSizeList(item, 4), false),
        ]);
        let rank: ArrayRef = Arc::new(UInt64Array::from_iter_values((0..n).rev()));
        RecordBatch::try_new(Arc::new(schema), vec![rank, ids, Arc::new(emb)]).expect("batch")
    }

    // Proves a table whose columns are not `id` and `vector` imports from the
    // columns named in ReaderOptions, bit for bit under the named ids (not
    // those of the first integer column, which the defaults would take);
    // that export still writes `id` and `vector`; and that a named column
    // that is missing or of the wrong type, an int64 id that is negative, and
    // column names for a file without columns are refused, naming the
    // column (and the schema) or the row, with nothing written.
    #[test]
    fn named_columns_are_read_and_bad_names_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rows: Vec<Vec<f32>> = (0..100u32)
            .map(|i| (0..4u32).map(|j| f32::from_bits((i * 4 + j).wrapping_mul(2_654_435_761))).collect())
            .collect();
        let keys: Vec<u64> = (0..100u64).map(|i| u64::MAX - 11 * i).collect();
        let file = dir.path().join("renamed.parquet");
        write_parquet(&file, &renamed_table(Arc::new(UInt64Array::from(keys.clone())), &rows));
        let named = ReaderOptions::default().id_column("key").vector_column("emb");

        let s = store::<f32>(dir.path(), "s", 4);
        let reader = open_reader_with(&file, None, &named).expect("open by names");
        let options = ImportOptions::default().batch_bytes(7 * 16);
        import_rows(&s, reader, &file, &options, &mut |_| {}).expect("import");
        let want: Vec<(u64, Vec<u8>)> = {
            let mut w: Vec<_> =
                keys.iter().zip(&rows).map(|(&k, v)| (k, bytemuck::cast_slice::<f32, u8>(v).to_vec())).collect();
            w.sort();
            w
        };
        assert!(bits(&s) == want, "not the named columns' ids and bits");
        let by_default = store::<f32>(dir.path(), "by-default", 4);
        import_file(&by_default, &file, None, &ImportOptions::default(), &mut |_| {}).expect("import by defaults");
        let first = bytemuck::cast_slice::<f32, u8>(&rows[0]).to_vec();
        assert!(bits(&by_default).contains(&(99, first)), "the defaults take the first integer column, `rank`");

        let out = dir.path().join("out.parquet");
        export_snapshot(&s.snapshot(), &out, Format::Parquet, .., &mut |_| {}).expect("export");
        let t = store::<f32>(dir.path(), "t", 4);
        import_file(&t, &out, None, &ImportOptions::default(), &mut |_| {}).expect("the export has id and vector");
        assert!(bits(&t) == want);

        let refusals = [
            (ReaderOptions::default().id_column("nope"), "the id column `nope` is not in the schema"),
            (ReaderOptions::default().vector_column("vector"), "the vector column `vector` is not in the schema"),
            (ReaderOptions::default().id_column("emb"), "the id column `emb` is of type FixedSizeList"),
            (ReaderOptions::default().vector_column("key"), "the vector column `key` is of type UInt64"),
        ];
        for (options, why) in refusals {
            let err = open_reader_with(&file, None, &options).err().expect("refused");
            let message = err.to_string();
            assert!(message.contains(why) && message.contains("[rank: UInt64, key: UInt64, emb: "), "{message}");
            assert!(matches!(err, FormatError::Unsupported { .. }), "{err:?}");
        }

        let signed = dir.path().join("signed.parquet");
        let ids: Vec<i64> = (0..100).map(|i| if i == 57 { -3 } else { i }).collect();
        write_parquet(&signed, &renamed_table(Arc::new(Int64Array::from(ids)), &rows));
        let u = store::<f32>(dir.path(), "u", 4);
        let reader = open_reader_with(&signed, None, &named).expect("int64 ids are taken");
        let err = import_rows(&u, reader, &signed, &ImportOptions::default(), &mut |_| {}).expect_err("negative");
        assert!(matches!(err, FormatError::BadRow { row: 57, .. }) && err.to_string().contains("-3"), "{err}");

        let fvecs = dir.path().join("v.fvecs");
        fs::write(&fvecs, fvecs_bytes(&rows)).expect("write");
        let err = open_reader_with(&fvecs, None, &named).err().expect("no columns");
        assert!(err.to_string().contains("a fvecs file has no columns"), "{err}");
        assert_eq!(u.len(), 0);
    }
}
