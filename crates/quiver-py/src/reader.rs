//! `quiver.Reader`: a read-only follower of a store that another process
//! (or this one) writes, caught up with `refresh()`.

use std::path::PathBuf;

use parking_lot::RwLock;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use quiver::StoreOptions;

use crate::cache::SnapshotCache;
use crate::convert::owned;
use crate::dtype::{DType, construct, dispatch, typed_enum};
use crate::errors;
use crate::snapshot::{AnySnapshot, PySnapshot};

typed_enum!(
    /// A follower of one of the six element types.
    AnyReader,
    VectorReader
);

impl AnyReader {
    fn snapshot(&self) -> AnySnapshot {
        match self {
            AnyReader::F32(s) => AnySnapshot::F32(s.snapshot()),
            AnyReader::F64(s) => AnySnapshot::F64(s.snapshot()),
            AnyReader::F16(s) => AnySnapshot::F16(s.snapshot()),
            AnyReader::Bf16(s) => AnySnapshot::Bf16(s.snapshot()),
            AnyReader::U8(s) => AnySnapshot::U8(s.snapshot()),
            AnyReader::I8(s) => AnySnapshot::I8(s.snapshot()),
        }
    }
}

/// A read-only follower of an existing store (see `quiver.open_reader`).
///
/// It takes no lock, so it can read a directory that a writer in another
/// process holds open; it sees the writer's acknowledged writes as of its
/// last `refresh()`. Reads work as on `quiver.Store`.
#[pyclass(module = "quiver", name = "Reader", frozen)]
pub(crate) struct PyReader {
    inner: RwLock<Option<AnyReader>>,
    cache: SnapshotCache,
    dtype: DType,
    dim: usize,
    path: PathBuf,
}

impl PyReader {
    /// Opens the follower; called by `quiver.open_reader`.
    pub(crate) fn open(py: Python<'_>, path: PathBuf, dim: usize, dtype: DType, opts: StoreOptions) -> PyResult<Self> {
        let reader =
            py.detach(|| construct!(AnyReader, dtype, T => opts.open_reader::<T>(&path))).map_err(errors::to_py)?;
        Ok(Self { inner: RwLock::new(Some(reader)), cache: SnapshotCache::default(), dtype, dim, path })
    }

    fn read<R>(&self, f: impl FnOnce(&AnyReader) -> R) -> PyResult<R> {
        let guard = self.inner.read_recursive();
        guard.as_ref().map(f).ok_or_else(errors::closed)
    }

    fn current_snapshot(&self) -> PyResult<AnySnapshot> {
        self.read(|r| self.cache.get(|| r.snapshot()))
    }
}

#[pymethods]
impl PyReader {
    /// Catches up with the writer: applies every batch it logged since the
    /// last refresh (or reloads from its newest checkpoint). Returns
    /// `{"batches_applied": int, "reloaded": bool}`. Releases the GIL.
    fn refresh<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let outcome = py
            .detach(|| {
                let guard = self.inner.read();
                let reader = guard.as_ref().ok_or(quiver::Error::Closed)?;
                dispatch!(AnyReader, reader, r, _T => r.refresh())
            })
            .map_err(errors::to_py);
        self.cache.invalidate();
        let outcome = outcome?;
        let d = PyDict::new(py);
        d.set_item("batches_applied", outcome.batches_applied)?;
        d.set_item("reloaded", outcome.reloaded)?;
        Ok(d)
    }

    /// Vector `id` as a read-only, zero-copy NumPy array, or `None`.
    fn get<'py>(&self, py: Python<'py>, id: u64) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.current_snapshot()?.get(py, id)
    }

    /// `[get(id) for id in ids]`, from one snapshot.
    fn get_many<'py>(&self, py: Python<'py>, ids: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
        self.current_snapshot()?.get_many(py, ids)
    }

    /// The number of vectors as of the last refresh.
    fn __len__(&self) -> PyResult<usize> {
        self.read(|reader| dispatch!(AnyReader, reader, r, _T => r.len()))
    }

    /// Whether `id` is present as of the last refresh (False for anything that is not an id).
    fn __contains__(&self, id: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(id) = id.extract::<u64>() else { return Ok(false) };
        self.read(|reader| dispatch!(AnyReader, reader, r, _T => r.contains(id)))
    }

    /// Every id, unordered, as a new `uint64` array.
    fn ids<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let ids = self.read(|reader| dispatch!(AnyReader, reader, r, _T => r.ids()))?;
        Ok(owned(py, ids))
    }

    /// An immutable view as of the last refresh (see `quiver.Snapshot`).
    fn snapshot(&self) -> PyResult<PySnapshot> {
        Ok(PySnapshot { inner: self.current_snapshot()? })
    }

    /// Drops the follower; later calls raise `quiver.Closed`.
    fn close(&self, py: Python<'_>) {
        self.cache.invalidate();
        let taken = py.detach(|| self.inner.write().take());
        drop(taken);
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (_exc_type = None, _exc = None, _tb = None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> bool {
        self.close(py);
        false
    }

    /// The number of elements in every vector.
    #[getter]
    fn dim(&self) -> usize {
        self.dim
    }

    /// The element type's name.
    #[getter]
    fn dtype(&self) -> &'static str {
        self.dtype.name()
    }

    /// The store directory.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    fn __repr__(&self) -> String {
        format!("quiver.Reader({:?}, dim={}, dtype={:?})", self.path.display().to_string(), self.dim, self.dtype.name())
    }
}
