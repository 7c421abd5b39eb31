//! Import and export through `quiver-formats` (issue 11): a durable import
//! of an `.npy` and of an `.fvecs` file of N × 768 `f32` (batches of 16 MiB,
//! one `flush` at the end) against raw sequential `write` + `fsync` of the
//! same payload bytes (target >= 0.6), and an export of the store to `.npy`
//! against a raw sequential read of its data file (target >= 0.5) and, for
//! context, against the raw write + fsync (an export writes a file), all hot
//! (the source files in the page cache), interleaved run by run, each timed
//! write starting after a `sync(2)` so that none pays for the one before.
//!
//! `cargo bench -p quiver-benches --bench formats` (QUIVER_BENCH_VECTORS,
//! default 100000; QUIVER_BENCH_RUNS, default 6, best a multiple of 3;
//! QUIVER_BENCH_DIR).

use std::io::Read;

use quiver_benches::baselines::raw_import;
use quiver_benches::{Dataset, bench_dir, env_or, print_ratio, print_table_header, settle, time};
use quiver_formats::{
    Format, ImportOptions, NpyWriter, Scalar, VecsKind, VecsWriter, WriteRows, export_snapshot, import_file,
};
use quiver_storage::{ElementType, VectorStore};

const DIM: usize = 768;

/// Writes `ds` in `format` (not timed): the files the imports read.
fn write_file(path: &std::path::Path, ds: &Dataset, format: Format) {
    let mut w: Box<dyn WriteRows> = match format {
        Format::Npy => {
            Box::new(NpyWriter::create(path, Scalar::Element(ElementType::F32), Some(DIM), ds.count).expect("npy"))
        }
        _ => Box::new(VecsWriter::create(path, VecsKind::F, DIM).expect("fvecs")),
    };
    for b in 0..ds.batch_count() {
        w.write_rows(&[], ds.batch_bytes(b)).expect("write");
    }
    w.finish().expect("finish");
}

fn main() {
    let count = env_or("QUIVER_BENCH_VECTORS", 100_000);
    let runs = env_or("QUIVER_BENCH_RUNS", 6) as usize;
    let ds = Dataset::new(count, DIM);
    let dir = bench_dir();
    let npy = dir.path().join("source.npy");
    let fvecs = dir.path().join("source.fvecs");
    write_file(&npy, &ds, Format::Npy);
    write_file(&fvecs, &ds, Format::Fvecs);
    let (mut raw, mut from_npy, mut from_fvecs, mut read, mut export) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let raw_path = dir.path().join(format!("raw-{run}"));
        let import = |source: &std::path::Path, name: &str| {
            let path = dir.path().join(format!("{name}-{run}"));
            let store: VectorStore<f32> = VectorStore::open(&path, DIM).expect("open");
            settle();
            let (t, summary) =
                time(|| import_file(&store, source, None, &ImportOptions::default(), &mut |_| {}).expect("import"));
            assert_eq!(summary.rows, count);
            (t, store, path)
        };
        // Rotate the three through every position (runs in threes): on this
        // disk whichever write runs third is slower, even after a sync.
        let raw_write = || {
            settle();
            raw_import(&raw_path, &ds)
        };
        let (t_raw, (t_npy, store, store_path), (t_fvecs, other, other_path)) = match run % 3 {
            0 => {
                let r = raw_write();
                let n = import(&npy, "npy");
                (r, n, import(&fvecs, "fvecs"))
            }
            1 => {
                let n = import(&npy, "npy");
                let f = import(&fvecs, "fvecs");
                (raw_write(), n, f)
            }
            _ => {
                let f = import(&fvecs, "fvecs");
                let r = raw_write();
                (r, import(&npy, "npy"), f)
            }
        };
        drop(other);
        let _ = std::fs::remove_dir_all(&other_path);
        let _ = std::fs::remove_file(&raw_path);
        let data_file = store_path.join("data-00000001.qvd");
        let mut buf = vec![0u8; 4 << 20];
        let (t_read, ()) = time(|| {
            let mut f = std::fs::File::open(&data_file).expect("data file");
            while f.read(&mut buf).expect("read") > 0 {}
        });
        let out = dir.path().join(format!("out-{run}.npy"));
        let snapshot = store.snapshot();
        settle();
        let (t_export, summary) =
            time(|| export_snapshot(&snapshot, &out, Format::Npy, .., &mut |_| {}).expect("export"));
        assert_eq!(summary.rows, count);
        drop(snapshot);
        drop(store);
        let _ = std::fs::remove_dir_all(&store_path);
        let _ = std::fs::remove_file(&out);
        let mb = |t: std::time::Duration| ds.total_bytes() as f64 / t.as_secs_f64() / 1e6;
        eprintln!(
            "run {run}: MB/s raw write+fsync {:.0}, import npy {:.0}, import fvecs {:.0}; raw read {:.0}, export npy {:.0}",
            mb(t_raw),
            mb(t_npy),
            mb(t_fvecs),
            mb(t_read),
            mb(t_export)
        );
        raw.push(t_raw.as_secs_f64());
        from_npy.push(t_npy.as_secs_f64());
        from_fvecs.push(t_fvecs.as_secs_f64());
        read.push(t_read.as_secs_f64());
        export.push(t_export.as_secs_f64());
    }
    let speed = |base: &[f64], ours: &[f64]| -> Vec<f64> { base.iter().zip(ours).map(|(b, o)| b / o).collect() };
    print_table_header(&format!(
        "import and export of {count} x {DIM} f32 ({} MB of payload) through quiver-formats, {runs} interleaved runs",
        ds.total_bytes() / 1_000_000
    ));
    print_ratio("durable import from .npy / raw write+fsync (speed)", &speed(&raw, &from_npy), ">= 0.60");
    print_ratio("durable import from .fvecs / raw write+fsync (speed)", &speed(&raw, &from_fvecs), ">= 0.60");
    print_ratio("export to .npy / raw read of the data file (speed)", &speed(&read, &export), ">= 0.50");
    // The export also writes and syncs its file: the write is its floor.
    print_ratio("export to .npy / raw write+fsync (speed)", &speed(&raw, &export), "(context)");
}
