//! `quiver.Store`: the writer. One Python class over the six concrete
//! `VectorStore<T>`s; every method that does I/O releases the GIL.
//!
//! The store sits in a `RwLock<Option<..>>`: methods that release the GIL
//! take the read lock *inside* the GIL-free section, and `close` takes the
//! write lock there too, so no thread ever waits for the lock while holding
//! the GIL (a waiting `close` cannot stall a thread that needs the GIL to
//! finish). Quick reads take it with the GIL held via `read_recursive`,
//! which never queues behind a waiting writer.

use std::path::PathBuf;

use parking_lot::RwLock;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use quiver::Durability;
use quiver_formats::{ImportOptions, ReaderOptions};

use crate::cache::SnapshotCache;
use crate::convert::{Ids, Shape, Vectors, owned};
use crate::dtype::{DType, construct, dispatch, typed_enum};
use crate::errors;
use crate::formats;
use crate::metrics;
use crate::options;
use crate::snapshot::{AnySnapshot, PySnapshot};

typed_enum!(
    /// A store of one of the six element types.
    AnyStore,
    VectorStore
);

impl AnyStore {
    fn snapshot(&self) -> AnySnapshot {
        match self {
            AnyStore::F32(s) => AnySnapshot::F32(s.snapshot()),
            AnyStore::F64(s) => AnySnapshot::F64(s.snapshot()),
            AnyStore::F16(s) => AnySnapshot::F16(s.snapshot()),
            AnyStore::Bf16(s) => AnySnapshot::Bf16(s.snapshot()),
            AnyStore::U8(s) => AnySnapshot::U8(s.snapshot()),
            AnyStore::I8(s) => AnySnapshot::I8(s.snapshot()),
        }
    }
}

/// A Quiver vector store opened for writing (see `quiver.open`).
///
/// Vectors are NumPy arrays of the store's `dtype` and `dim`; ids are
/// ints in [0, 2**64). Writes are acknowledged at the store's durability
/// level ("buffered": survive a process crash when the call returns, a
/// power loss after `flush()`; "sync": a power loss too; "deferred": only
/// after `flush()`). Reads return read-only, zero-copy views of the mapped
/// data file that stay valid and unchanged after any later write,
/// compaction or `close()`.
///
/// One writer per directory: a second `quiver.open` of the same directory,
/// in this process or another, raises `quiver.Locked` while this one (or
/// any snapshot or array from it) is alive. Use it as a context manager,
/// or call `close()`, to flush and checkpoint on the way out.
#[pyclass(module = "quiver", name = "Store", frozen)]
pub(crate) struct PyStore {
    inner: RwLock<Option<AnyStore>>,
    cache: SnapshotCache,
    dtype: DType,
    dim: usize,
    path: PathBuf,
    durability: Durability,
}

impl PyStore {
    /// Opens (or creates) the store; called by `quiver.open`.
    pub(crate) fn open(
        py: Python<'_>,
        path: PathBuf,
        dim: usize,
        dtype: DType,
        durability: Durability,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let opts = options::store_options(dim, kwargs)?.durability(durability);
        let store = py.detach(|| construct!(AnyStore, dtype, T => opts.open::<T>(&path))).map_err(errors::to_py)?;
        Ok(Self { inner: RwLock::new(Some(store)), cache: SnapshotCache::default(), dtype, dim, path, durability })
    }

    /// Runs `f` on the open store with the GIL released.
    fn io<R: Send>(&self, py: Python<'_>, f: impl FnOnce(&AnyStore) -> quiver::Result<R> + Send) -> PyResult<R> {
        py.detach(|| {
            let guard = self.inner.read();
            let store = guard.as_ref().ok_or(quiver::Error::Closed)?;
            f(store)
        })
        .map_err(errors::to_py)
    }

    /// [`io`](Self::io) for a write: the cached snapshot is dropped after it.
    fn write<R: Send>(&self, py: Python<'_>, f: impl FnOnce(&AnyStore) -> quiver::Result<R> + Send) -> PyResult<R> {
        let out = self.io(py, f);
        self.cache.invalidate();
        out
    }

    /// Runs `f` on the open store with the GIL held (quick reads only).
    fn read<R>(&self, f: impl FnOnce(&AnyStore) -> R) -> PyResult<R> {
        let guard = self.inner.read_recursive();
        guard.as_ref().map(f).ok_or_else(errors::closed)
    }

    fn current_snapshot(&self) -> PyResult<AnySnapshot> {
        self.read(|s| self.cache.get(|| s.snapshot()))
    }
}

#[pymethods]
impl PyStore {
    /// Inserts or replaces vector `id` (a 1-D array of `dim` elements).
    fn store(&self, py: Python<'_>, id: u64, vector: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = Vectors::extract(vector, self.dtype, self.dim, Shape::One)?;
        self.write(py, |store| dispatch!(AnyStore, store, s, T => s.store(id, v.as_slice::<T>())))
    }

    /// Inserts or replaces `ids[i]` with `vectors[i]`, atomically: after a
    /// crash either every vector of the batch is there or none is. `ids` is
    /// a 1-D integer array (uint64 is read as is), `vectors` an `(n, dim)`
    /// array; a C-contiguous array of the store's dtype is read without a
    /// copy, anything else is converted once (or refused with `TypeError`).
    /// A later duplicate id in the batch wins. Returns the count stored.
    /// The GIL is released while the batch is written, so another thread
    /// must not modify `vectors` until the call returns.
    fn store_batch(&self, py: Python<'_>, ids: &Bound<'_, PyAny>, vectors: &Bound<'_, PyAny>) -> PyResult<usize> {
        let ids = Ids::extract(ids)?;
        let v = Vectors::extract(vectors, self.dtype, self.dim, Shape::Batch)?;
        let ids = ids.as_slice();
        if ids.len() != v.rows {
            return Err(errors::raise(
                "InvalidArgument",
                format!("store_batch got {} ids for {} vectors; pass one id per row", ids.len(), v.rows),
            ));
        }
        let dim = self.dim;
        self.write(py, |store| {
            dispatch!(AnyStore, store, s, T => {
                let flat = v.as_slice::<T>();
                let batch: Vec<(u64, &[T])> = ids.iter().copied().zip(flat.chunks_exact(dim.max(1))).collect();
                s.store_batch(&batch)
            })
        })
    }

    /// Deletes `id`; returns whether it was present.
    fn delete(&self, py: Python<'_>, id: u64) -> PyResult<bool> {
        self.write(py, |store| dispatch!(AnyStore, store, s, _T => s.delete(id)))
    }

    /// Vector `id` as a read-only NumPy array viewing the mapped data file
    /// (no copy), or `None`. The array keeps a snapshot alive: it stays
    /// valid and unchanged after overwrite, delete, compaction or close.
    fn get<'py>(&self, py: Python<'py>, id: u64) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.current_snapshot()?.get(py, id)
    }

    /// `[get(id) for id in ids]`, from one snapshot: a list of read-only
    /// arrays, `None` for an absent id.
    fn get_many<'py>(&self, py: Python<'py>, ids: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
        self.current_snapshot()?.get_many(py, ids)
    }

    /// The number of vectors.
    fn __len__(&self) -> PyResult<usize> {
        self.read(|store| dispatch!(AnyStore, store, s, _T => s.len()))
    }

    /// Whether `id` is stored (False for anything that is not an id).
    fn __contains__(&self, id: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(id) = id.extract::<u64>() else { return Ok(false) };
        self.read(|store| dispatch!(AnyStore, store, s, _T => s.contains(id)))
    }

    /// Every id, unordered, as a new `uint64` array.
    fn ids<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let ids = self.read(|store| dispatch!(AnyStore, store, s, _T => s.ids()))?;
        Ok(owned(py, ids))
    }

    /// Reserves room for `n` more vectors in one step (data file and
    /// index), so a bulk load never grows mid-way.
    fn reserve_capacity(&self, py: Python<'_>, n: usize) -> PyResult<()> {
        self.io(py, |store| dispatch!(AnyStore, store, s, _T => s.reserve_capacity(n)))
    }

    /// Makes every acknowledged write durable against power loss.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        self.io(py, |store| dispatch!(AnyStore, store, s, _T => s.flush()))
    }

    /// Writes an index snapshot and trims the write-ahead log, so that
    /// reopening reads the snapshot instead of replaying the log.
    fn checkpoint(&self, py: Python<'_>) -> PyResult<()> {
        self.io(py, |store| dispatch!(AnyStore, store, s, _T => s.checkpoint()))
    }

    /// Rewrites the live vectors into a new data file and drops the old one
    /// (once no snapshot or array uses it). Returns statistics as a dict.
    fn compact<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = self.write(py, |store| dispatch!(AnyStore, store, s, _T => quiver::compact(s)))?;
        metrics::compaction_dict(py, &stats)
    }

    /// Flushes, checkpoints and closes the store. Later calls raise
    /// `quiver.Closed`; closing twice is allowed. Arrays and snapshots taken
    /// before stay readable (and keep the directory locked while they live).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.cache.invalidate();
        py.detach(|| {
            let taken = self.inner.write().take();
            match taken {
                Some(store) => dispatch!(AnyStore, store, s, _T => s.close()),
                None => Ok(()),
            }
        })
        .map_err(errors::to_py)
    }

    /// Whether `close()` has been called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.read_recursive().is_none()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Closes the store (also when the block raised).
    #[pyo3(signature = (_exc_type = None, _exc = None, _tb = None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    /// Counters, byte sizes and latency summaries as a dict (latencies in
    /// seconds).
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = self.io(py, |store| Ok(dispatch!(AnyStore, store, s, _T => s.metrics())))?;
        metrics::metrics_dict(py, &m)
    }

    /// An immutable view of the store as it stands (see `quiver.Snapshot`).
    fn snapshot(&self) -> PyResult<PySnapshot> {
        Ok(PySnapshot { inner: self.current_snapshot()? })
    }

    /// Stores every row of the file at `path` and returns the count stored:
    /// `.fvecs`, `.bvecs`, `.npy` (C order), Arrow IPC (`.arrow`, `.arrows`)
    /// or Parquet tables `id: uint64, vector: fixed_size_list<item, dim>`,
    /// the format named by `format` or by the file's extension. The file's
    /// dimension and element type must be the store's (else
    /// `quiver.DimensionMismatch` / `quiver.ElementTypeMismatch`, with
    /// nothing stored). A table's columns are found by the names `id` and
    /// `vector` (else the first unsigned-integer and list columns), or by
    /// `id_column` and `vector_column`. Row `r` gets id `first_id + r`,
    /// unless the table carries ids or `ids` gives them: an integer array with one id per
    /// row, or the path of a 1-D uint64 `.npy` (what `export_file(...,
    /// ids_path=...)` writes). The file is streamed in atomic batches
    /// (`batch_bytes` of vectors each, 16 MiB by default); a damaged row
    /// raises `quiver.MalformedFile` naming its
    /// byte offset, with every batch before it stored. `skip_rows` resumes
    /// an interrupted import. `progress(done, total)` is called after each
    /// batch; an exception from it, or Ctrl-C, stops the import between
    /// two batches. The callback must not close this store (the import
    /// holds it open until it returns). Ends with `flush()`. The GIL is released meanwhile.
    #[pyo3(signature = (
        path, format = None, *, ids = None, first_id = 0, skip_rows = 0, batch_bytes = 16 << 20,
        id_column = None, vector_column = None, progress = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn import_file(
        &self,
        py: Python<'_>,
        path: PathBuf,
        format: Option<&str>,
        ids: Option<&Bound<'_, PyAny>>,
        first_id: u64,
        skip_rows: u64,
        batch_bytes: usize,
        id_column: Option<String>,
        vector_column: Option<String>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<u64> {
        let format = formats::format(format)?;
        let mut columns = ReaderOptions::default();
        if let Some(name) = id_column {
            columns = columns.id_column(name);
        }
        if let Some(name) = vector_column {
            columns = columns.vector_column(name);
        }
        let options = ImportOptions::default().first_id(first_id).skip_rows(skip_rows).batch_bytes(batch_bytes);
        let ids = match ids {
            None => formats::Ids::Rows,
            Some(p) if p.is_instance_of::<PyString>() || p.hasattr("__fspath__")? => formats::Ids::File(p.extract()?),
            Some(array) => formats::Ids::Held(Ids::extract(array)?.as_slice().to_vec()),
        };
        let mut callback = formats::Callback::new(progress);
        let outcome = py.detach(|| {
            let guard = self.inner.read();
            let store = guard.as_ref().ok_or(quiver_formats::FormatError::Store(quiver::Error::Closed))?;
            dispatch!(AnyStore, store, s, _T => {
                formats::import(s, &path, format, &columns, ids, options, &mut callback)
            })
        });
        self.cache.invalidate();
        formats::finish(outcome, callback)
    }

    /// `import_file(path, "npy", ids=ids, first_id=start_id)` for a file of
    /// the store's dtype; a file of another dtype that NumPy converts
    /// safely (float64 into float32, ...) is memory-mapped and converted a
    /// batch at a time instead. Returns the count stored.
    #[pyo3(signature = (path, ids = None, start_id = 0))]
    fn import_npy(
        slf: &Bound<'_, Self>,
        path: &Bound<'_, PyAny>,
        ids: Option<&Bound<'_, PyAny>>,
        start_id: u64,
    ) -> PyResult<usize> {
        let py = slf.py();
        py.import("quiver._npy")?.getattr("import_npy")?.call1((slf, path, ids, start_id))?.extract()
    }

    /// Writes the vectors with ids in `id_range` (a `range`; every id when
    /// `None`) to `path`, in id order, and returns the count written; see
    /// `Snapshot.export_file`. Exports the snapshot taken now: writes that
    /// follow do not change the file.
    #[pyo3(signature = (path, format = None, *, id_range = None, ids_path = None, progress = None))]
    fn export_file(
        &self,
        py: Python<'_>,
        path: PathBuf,
        format: Option<&str>,
        id_range: Option<&Bound<'_, PyAny>>,
        ids_path: Option<PathBuf>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<u64> {
        self.current_snapshot()?.export_file(py, path, format, id_range, ids_path, progress)
    }

    /// `export_file(path, "npy", ids_path=ids_path)`: shape `(len, dim)`
    /// (bfloat16 as its uint16 bit patterns). Without `ids_path`, the ids
    /// must be exactly 0..len-1 (row numbers), else `quiver.InvalidArgument`.
    #[pyo3(signature = (path, ids_path = None))]
    fn export_npy(&self, py: Python<'_>, path: PathBuf, ids_path: Option<PathBuf>) -> PyResult<u64> {
        self.current_snapshot()?.export_file(py, path, Some("npy"), None, ids_path, None)
    }

    /// The number of elements in every vector.
    #[getter]
    fn dim(&self) -> usize {
        self.dim
    }

    /// The element type's name (`"float32"`, ...).
    #[getter]
    fn dtype(&self) -> &'static str {
        self.dtype.name()
    }

    /// The store directory.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// The durability level (`"sync"`, `"buffered"` or `"deferred"`).
    #[getter]
    fn durability(&self) -> &'static str {
        options::durability_name(self.durability)
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { ", closed" } else { "" };
        format!(
            "quiver.Store({:?}, dim={}, dtype={:?}, durability={:?}{state})",
            self.path.display().to_string(),
            self.dim,
            self.dtype.name(),
            self.durability()
        )
    }
}
