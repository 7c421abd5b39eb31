//! Python bindings of Quiver: the extension module `quiver._quiver`,
//! re-exported by the `quiver` package (`python/quiver/__init__.py`).
//!
//! What this crate owns: turning Python arguments into Rust slices (without
//! a copy when they already have the store's layout), Rust results into
//! NumPy arrays (views of a snapshot's mapped bytes, never copies of them),
//! and Rust errors into the `quiver.Error` hierarchy. It never touches a
//! file itself and never holds the GIL across I/O, a search or a lock wait.
//!
//! Unsafe code is confined to `view.rs` (the buffer protocol, both ways);
//! docs/ARCHITECTURE.md says why it cannot live in quiver-guard.
//!
//! The crate is built by maturin (`pip install ./crates/quiver-py`) and is
//! tested from Python (`crates/quiver-py/tests/`); it has no Rust tests,
//! since an extension module does not link into a test binary.
#![deny(unsafe_code)]

mod cache;
mod convert;
mod dtype;
mod errors;
mod formats;
mod metrics;
mod options;
mod reader;
mod snapshot;
mod store;
mod view;

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::dtype::DType;
use crate::reader::PyReader;
use crate::snapshot::PySnapshot;
use crate::store::PyStore;

/// The canonical name of a dtype argument (a string, a NumPy dtype or
/// type, or ml_dtypes' bfloat16).
fn dtype_of(dtype: &Bound<'_, PyAny>) -> PyResult<DType> {
    let name: String = dtype.py().import("quiver._convert")?.getattr("dtype_name")?.call1((dtype,))?.extract()?;
    DType::from_name(&name)
}

/// Opens the store at `path`, creating it if it does not exist.
///
/// `dim` is the number of elements per vector; `dtype` one of float32,
/// float64, float16, uint8, int8 or bfloat16 (NumPy itself has no
/// bfloat16: vectors come back as ml_dtypes' `bfloat16` when that package
/// is installed, else as their uint16 bit patterns; `.view(numpy.uint16)`
/// gives the bits either way. Input may be either, or floats, which are
/// rounded to bfloat16 once). `durability` is
/// "buffered" (default: a returned write survives a process crash; a power
/// loss after `flush()`), "sync" (a power loss too) or "deferred" (only
/// after `flush()`). Options: initial_file_bytes, growth_step_bytes=(min,
/// max), map_window_bytes, inline_batch_max_bytes, checkpoint_wal_bytes,
/// access_pattern ("normal", "random", "sequential"), populate (bool).
///
/// Raises `quiver.DimensionMismatch` or `quiver.ElementTypeMismatch` if
/// the store exists with another shape (nothing on disk changes),
/// `quiver.Locked` if another writer has it open, `quiver.NotAStore` for a
/// path that is not a store.
#[pyfunction]
#[pyo3(
    signature = (path, dim, dtype = None, durability = "buffered", **options),
    text_signature = "(path, dim, dtype='float32', durability='buffered', **options)"
)]
fn open(
    py: Python<'_>,
    path: PathBuf,
    dim: usize,
    dtype: Option<&Bound<'_, PyAny>>,
    durability: &str,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<PyStore> {
    let dtype = dtype.map_or(Ok(DType::F32), dtype_of)?;
    PyStore::open(py, path, dim, dtype, options::durability(durability)?, options)
}

/// Opens a read-only follower of the existing store at `path` (no lock;
/// `refresh()` catches up with the writer). `dim` and `dtype` must match
/// the store's; the options are those of `open` that apply to reads
/// (map_window_bytes, access_pattern, populate).
#[pyfunction]
#[pyo3(signature = (path, dim, dtype = None, **options), text_signature = "(path, dim, dtype='float32', **options)")]
fn open_reader(
    py: Python<'_>,
    path: PathBuf,
    dim: usize,
    dtype: Option<&Bound<'_, PyAny>>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<PyReader> {
    let dtype = dtype.map_or(Ok(DType::F32), dtype_of)?;
    let opts = options::store_options(dim, options)?;
    PyReader::open(py, path, dim, dtype, opts)
}

/// The extension module.
#[pymodule]
fn _quiver(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(open, m)?)?;
    m.add_function(wrap_pyfunction!(open_reader, m)?)?;
    m.add_class::<PyStore>()?;
    m.add_class::<PyReader>()?;
    m.add_class::<PySnapshot>()?;
    m.add_class::<view::SnapshotPin>()?;
    m.add("NO_ID", u64::MAX)?;
    m.add("MAX_DIMENSION", quiver::limits::MAX_DIMENSION)?;
    Ok(())
}
