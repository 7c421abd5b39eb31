//! Streaming import into and export out of Quiver stores, in the formats
//! vectors travel in: the ANN benchmark sets' `.fvecs` / `.bvecs` /
//! `.ivecs`, numpy's `.npy`, and (features `arrow` and `parquet`) Arrow IPC
//! and Parquet tables `id: uint64, vector: fixed_size_list<item, dim>`, what
//! Spark, DuckDB, Polars, pandas and LanceDB read and write. Files are read
//! and written a batch of rows at a time, never whole.
//!
//! ```
//! use quiver_formats::{Format, ImportOptions, export_snapshot, import_file};
//! use quiver_storage::VectorStore;
//!
//! let dir = tempfile::tempdir()?;
//! let store: VectorStore<f32> = VectorStore::open(dir.path().join("v"), 2)?;
//! store.store_batch(&[(0, &[1.0, 2.0][..]), (1, &[3.0, 4.0][..])])?;
//! let file = dir.path().join("out.fvecs");
//! let exported = export_snapshot(&store.snapshot(), &file, Format::Fvecs, .., &mut |_| {})?;
//! assert_eq!(exported.rows, 2);
//!
//! let copy: VectorStore<f32> = VectorStore::open(dir.path().join("copy"), 2)?;
//! let imported = import_file(&copy, &file, None, &ImportOptions::default(), &mut |_| {})?;
//! assert_eq!((imported.rows, copy.retrieve(1)), (2, Some(vec![3.0, 4.0])));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Tables with other column names
//!
//! A table's ids and vectors are found in the columns `id` and `vector`, or
//! else in its first integer column of an id type (`uint64`, `uint32`,
//! `int64`, negative ids refused with their row) and its first list column.
//! Other names are given in a [`TableColumns`], through [`ReaderOptions`]
//! and [`open_reader_with`]; a named column that is missing or of the wrong
//! type is refused when the file is opened, before anything is written, by
//! an error naming the column and the schema. [`open_reader`] and
//! [`import_file`] keep the defaults; exports always write `id` and
//! `vector`.
//!
//! ```no_run
//! use std::path::Path;
//! use quiver_formats::{ImportOptions, ReaderOptions, import_rows, open_reader_with};
//! use quiver_storage::VectorStore;
//!
//! // A Parquet file `key: uint64, emb: fixed_size_list<float, 4>`.
//! let path = Path::new("embeddings.parquet");
//! let columns = ReaderOptions::default().id_column("key").vector_column("emb");
//! let reader = open_reader_with(path, None, &columns)?;
//! let store: VectorStore<f32> = VectorStore::open("vectors", reader.shape().dim)?;
//! import_rows(&store, reader, path, &ImportOptions::default(), &mut |_| {})?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What the routes promise
//!
//! - **Shape first.** A file's dimension and element type are read from its
//!   header (or first row) and checked against the store before anything is
//!   written; a mismatch is an error that leaves the store unchanged.
//! - **Whole batches.** An import stores the file in batches of rows, each
//!   atomic. A torn or damaged file stops at the first bad row with its byte
//!   offset, and nothing of the batch holding it is written. Rows map to ids
//!   `first_id + row`, so rerunning an interrupted import (or resuming it
//!   with [`ImportOptions::skip_rows`]) writes the same vectors again.
//! - **Cancellable between batches.** With
//!   [`ImportOptions::cancel_flag`] raised (say, by a Ctrl-C handler) an
//!   import stores no further batch, flushes what it stored, and returns
//!   [`FormatError::Cancelled`] with the row to resume from. A process
//!   killed outright (`kill -9`) keeps whole batches too: each is one
//!   atomic `store_batch`, committed in file order, so the store holds the
//!   rows of a prefix of whole batches. For an import begun on an empty
//!   store at row 0 (and, for tables, distinct ids) the store's count after
//!   reopening is the `skip_rows` that resumes it.
//! - **Atomic files.** An export writes `<file>.tmp`, syncs it and renames
//!   it over `<file>`: a failed or interrupted export leaves no half file.
//! - **Bit-exact.** Elements are copied as their bytes; a round trip gives
//!   back the same bits for every element type the format holds.
//!
//! # HDF5 (ann-benchmarks): not read, and why
//!
//! ann-benchmarks ships its data sets as HDF5 files (`train`, `test`:
//! 2-D float arrays; `neighbors`, `distances`). This crate does not read
//! them; convert with h5py to `.npy` (docs/CLI.md, "HDF5"). As found on
//! 2026-12-04:
//!
//! - `hdf5` (aldanor/hdf5-rust) last released 0.8.1 on 2021-11-21: not
//!   kept up. Its fork `hdf5-metno` is (0.14.1 2026-08-12, 0.15.0
//!   2026-09-18, 0.15.1 2026-10-26; `hdf5-metno-sys` 0.12.5).
//! - Both bind the C library. By default the build script looks for a
//!   system libhdf5 (pkg-config or `HDF5_DIR`; Debian `libhdf5-dev`); on
//!   this machine `cargo build` with `hdf5-metno` 0.15.1 fails with "Unable
//!   to locate HDF5 root directory and/or headers". Its `static` feature
//!   builds the bundled C sources (`hdf5-metno-src` 0.10.4, HDF5 2.2.0)
//!   with CMake (3.26 or newer), and fails here for want of `cmake`.
//! - HDF5 C is not thread-safe unless built so (the `static` build turns
//!   that off): the crate serialises every call through one process-wide
//!   reentrant lock.
//!
//! So HDF5 would need system packages for every build of the feature, and
//! bring a C library and its FFI into a crate that forbids `unsafe`, for a
//! format whose float arrays h5py converts to `.npy` in a few lines, in
//! chunks and bit-exact. If a pure-Rust HDF5 reader matures, this is worth
//! revisiting.
#![forbid(unsafe_code)]

#[cfg(feature = "arrow")]
mod arrow;
mod error;
mod ids;
mod npy;
mod open;
mod transfer;
mod vecs;

pub use error::FormatError;
pub use ids::WithIds;
pub use npy::{NpyReader, NpyWriter};
pub use open::{ReaderOptions, TableColumns, format_of, open_reader, open_reader_with, probe};
pub use transfer::{
    ExportSummary, ImportOptions, ImportSummary, Progress, export_ids, export_snapshot, export_snapshot_with,
    import_file, import_rows,
};
pub use vecs::{VecsKind, VecsReader, VecsWriter};

use quiver_storage::ElementType;

/// A file format Quiver reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// `.fvecs`: per row a little-endian `i32` dimension, then that many
    /// `f32`.
    Fvecs,
    /// `.bvecs`: per row an `i32` dimension, then that many `u8`.
    Bvecs,
    /// `.ivecs`: per row an `i32` dimension, then that many `i32` (the
    /// benchmark sets' ground-truth neighbour lists).
    Ivecs,
    /// numpy `.npy` (versions 1 to 3): a 2-D array in C order.
    Npy,
    /// Arrow IPC file (`.arrow`, `.feather` v2): a table `id: uint64,
    /// vector: fixed_size_list<item, dim>` (feature `arrow`).
    ArrowFile,
    /// Arrow IPC stream (`.arrows`), the same table (feature `arrow`).
    ArrowStream,
    /// Parquet (`.parquet`), the same table (feature `parquet`).
    Parquet,
}

impl Format {
    /// The format a file name's extension names, if any.
    pub fn from_path(path: &std::path::Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "fvecs" => Some(Format::Fvecs),
            "bvecs" => Some(Format::Bvecs),
            "ivecs" => Some(Format::Ivecs),
            "npy" => Some(Format::Npy),
            "arrow" | "feather" | "ipc" => Some(Format::ArrowFile),
            "arrows" => Some(Format::ArrowStream),
            "parquet" => Some(Format::Parquet),
            _ => None,
        }
    }

    /// The format called `name` ([`Format::name`]'s spelling, or a file
    /// extension [`Format::from_path`] knows), in any case.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::from_path(std::path::Path::new(&format!("x.{name}")))
    }

    /// Whether the format's rows carry their own ids (the Arrow and Parquet
    /// tables' `id` column); rows of the others get `first_id + row`.
    pub fn has_ids(self) -> bool {
        matches!(self, Format::ArrowFile | Format::ArrowStream | Format::Parquet)
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Fvecs => "fvecs",
            Format::Bvecs => "bvecs",
            Format::Ivecs => "ivecs",
            Format::Npy => "npy",
            Format::ArrowFile => "arrow",
            Format::ArrowStream => "arrows",
            Format::Parquet => "parquet",
        }
    }
}

/// What a file holds, read from its header before any row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileShape {
    /// The format.
    pub format: Format,
    /// Elements per row.
    pub dim: usize,
    /// The element type of the rows.
    pub element: Scalar,
    /// The number of rows, when the header says (npy) or the file's length
    /// implies it (vecs).
    pub rows: Option<u64>,
}

/// An element type a file can hold: every store element type, and `i32`
/// (ivecs), which no store holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scalar {
    /// A type a store can hold.
    Element(ElementType),
    /// 32-bit signed integer.
    I32,
    /// 64-bit unsigned integer (an npy of ids).
    U64,
}

impl Scalar {
    /// Bytes per element.
    pub fn size_bytes(self) -> usize {
        match self {
            Scalar::Element(e) => e.size_bytes() as usize,
            Scalar::I32 => 4,
            Scalar::U64 => 8,
        }
    }

    /// The name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Scalar::Element(e) => e.name(),
            Scalar::I32 => "i32",
            Scalar::U64 => "u64",
        }
    }
}

/// A source of rows: a format's reader, behind one interface so an import
/// does not care which.
pub trait ReadRows {
    /// What the file holds.
    fn shape(&self) -> FileShape;

    /// Whether the file carries an id per row (Arrow, Parquet); otherwise
    /// row `r` is given id `first_id + r`.
    fn has_ids(&self) -> bool {
        false
    }

    /// Reads up to `max_rows` rows into `out`, which must be at least
    /// `max_rows * dim * element size` bytes, and (when the file has them)
    /// their ids into `ids` (cleared first); returns the rows read (0 at the
    /// end). A row that is torn or malformed is an error naming its byte
    /// offset (or row, for tables), and no row of the call is returned.
    fn read_rows(&mut self, max_rows: usize, out: &mut [u8], ids: &mut Vec<u64>) -> Result<usize, FormatError>;

    /// Bytes of the file consumed so far.
    fn offset_bytes(&self) -> u64;

    /// Skips `rows` rows without returning them.
    fn skip_rows(&mut self, rows: u64) -> Result<(), FormatError>;
}

/// A sink of rows: a format's writer. Nothing is visible at the target
/// path until [`finish`](WriteRows::finish) returns.
pub trait WriteRows {
    /// Appends whole rows (`rows * dim` elements' bytes) with their ids
    /// (formats without an id column ignore them).
    fn write_rows(&mut self, ids: &[u64], bytes: &[u8]) -> Result<(), FormatError>;

    /// Syncs and renames the file into place; returns the bytes written.
    fn finish(self: Box<Self>) -> Result<u64, FormatError>;
}
