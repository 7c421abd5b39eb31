//! `quiver.Snapshot`: an immutable read view of a store or follower, with
//! zero-copy vectors, every slot as one strided array, and exact search.

use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use quiver::{Metric, Search, SearchOptions};

use crate::convert::{Ids, Shape, Vectors, owned, owned_rows};
use crate::dtype::{DType, PyElement, dispatch, typed_enum};
use crate::errors;
use crate::formats;
use crate::view;

typed_enum!(
    /// A snapshot of one of the six element types.
    AnySnapshot,
    Snapshot
);

impl Clone for AnySnapshot {
    fn clone(&self) -> Self {
        match self {
            AnySnapshot::F32(s) => AnySnapshot::F32(s.clone()),
            AnySnapshot::F64(s) => AnySnapshot::F64(s.clone()),
            AnySnapshot::F16(s) => AnySnapshot::F16(s.clone()),
            AnySnapshot::Bf16(s) => AnySnapshot::Bf16(s.clone()),
            AnySnapshot::U8(s) => AnySnapshot::U8(s.clone()),
            AnySnapshot::I8(s) => AnySnapshot::I8(s.clone()),
        }
    }
}

impl AnySnapshot {
    /// The element type.
    pub(crate) fn dtype(&self) -> DType {
        dispatch!(AnySnapshot, self, _s, T => <T as PyElement>::DTYPE)
    }

    /// The dimension.
    pub(crate) fn dim(&self) -> usize {
        dispatch!(AnySnapshot, self, s, _T => s.dim())
    }

    /// Vector `id` as a read-only NumPy view that keeps this snapshot alive,
    /// or `None`.
    pub(crate) fn get<'py>(&self, py: Python<'py>, id: u64) -> PyResult<Option<Bound<'py, PyAny>>> {
        view::vector_of(py, self, id)
    }

    /// Writes the vectors with ids in `id_range` to `path` (see
    /// `PySnapshot::export_file`), with the GIL released.
    pub(crate) fn export_file(
        &self,
        py: Python<'_>,
        path: PathBuf,
        format: Option<&str>,
        id_range: Option<&Bound<'_, PyAny>>,
        ids_path: Option<PathBuf>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<u64> {
        let format = formats::format(format)?;
        let range = formats::id_range(id_range)?;
        let mut callback = formats::Callback::new(progress);
        let outcome = py.detach(|| {
            dispatch!(AnySnapshot, self, s, _T => {
                formats::export(s, &path, format, range, ids_path.as_deref(), &mut callback)
            })
        });
        formats::finish(outcome, callback)
    }

    /// `[get(id) for id in ids]`.
    pub(crate) fn get_many<'py>(&self, py: Python<'py>, ids: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
        let ids = Ids::extract(ids)?;
        let out = PyList::empty(py);
        for &id in ids.as_slice() {
            match self.get(py, id)? {
                Some(a) => out.append(a)?,
                None => out.append(py.None())?,
            }
        }
        Ok(out)
    }

    /// Every id, unordered, as a new `uint64` array.
    pub(crate) fn ids<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let ids: Vec<u64> = dispatch!(AnySnapshot, self, s, _T => s.ids().collect());
        Ok(owned(py, ids))
    }

    /// `(slot, id)` of every live vector, sorted by slot.
    fn live(&self) -> Vec<(u64, u64)> {
        let mut live: Vec<(u64, u64)> = dispatch!(AnySnapshot, self, s, _T => {
            s.ids().filter_map(|id| Some((s.slot_of(id)?, id))).collect()
        });
        live.sort_unstable();
        live
    }

    fn slot_count(&self) -> u64 {
        dispatch!(AnySnapshot, self, s, _T => s.slot_count())
    }
}

/// An immutable view of a store as of one moment (its `lsn`): every
/// acknowledged write up to it, none after, whatever is written, deleted,
/// compacted or closed meanwhile. Arrays it returns are read-only views of
/// the mapped data file and keep the snapshot (and the file's mapping)
/// alive for as long as they live.
///
/// A snapshot of a store holds the store directory's writer lock while it
/// (or any array from it) lives: reopening the directory for writing
/// meanwhile raises `quiver.Locked`.
#[pyclass(module = "quiver", name = "Snapshot", frozen)]
pub(crate) struct PySnapshot {
    pub(crate) inner: AnySnapshot,
}

#[pymethods]
impl PySnapshot {
    /// The number of vectors in the snapshot.
    fn __len__(&self) -> usize {
        dispatch!(AnySnapshot, &self.inner, s, _T => s.len())
    }

    /// Whether `id` is in the snapshot (False for anything that is not an
    /// id).
    fn __contains__(&self, id: &Bound<'_, PyAny>) -> bool {
        let Ok(id) = id.extract::<u64>() else { return false };
        dispatch!(AnySnapshot, &self.inner, s, _T => s.contains(id))
    }

    fn __repr__(&self) -> String {
        format!(
            "quiver.Snapshot(len={}, dim={}, dtype={:?}, lsn={}, generation={})",
            self.__len__(),
            self.inner.dim(),
            self.inner.dtype().name(),
            self.lsn(),
            self.generation()
        )
    }

    /// The number of elements in every vector.
    #[getter]
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    /// The element type's name (`"float32"`, ...; `"bfloat16"` vectors are
    /// returned as ml_dtypes' `bfloat16` if it is installed, else as their
    /// `uint16` bit patterns).
    #[getter]
    fn dtype(&self) -> &'static str {
        self.inner.dtype().name()
    }

    /// The LSN of the last batch the snapshot holds.
    #[getter]
    fn lsn(&self) -> u64 {
        dispatch!(AnySnapshot, &self.inner, s, _T => s.lsn())
    }

    /// The generation (data file) the snapshot reads; compaction starts a
    /// new one and renumbers slots.
    #[getter]
    fn generation(&self) -> u32 {
        dispatch!(AnySnapshot, &self.inner, s, _T => s.generation())
    }

    /// The number of slots (records in the data file) the snapshot covers;
    /// the rows of `vectors()`.
    #[getter]
    fn slot_count(&self) -> u64 {
        self.inner.slot_count()
    }

    /// Vector `id` as a read-only, zero-copy NumPy array, or `None`.
    fn get<'py>(&self, py: Python<'py>, id: u64) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner.get(py, id)
    }

    /// `[get(id) for id in ids]`: a list of read-only arrays (or `None`).
    fn get_many<'py>(&self, py: Python<'py>, ids: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
        self.inner.get_many(py, ids)
    }

    /// Writes this snapshot's vectors with ids in `id_range` (a `range` of
    /// step 1; every id when `None`) to `path`, in id order, and returns
    /// the count written: `.fvecs`, `.bvecs`, `.npy`, Arrow IPC (`.arrow`,
    /// `.arrows`) or Parquet, the format named by `format` or by the
    /// extension. Arrow and Parquet tables carry the ids; for the others,
    /// `ids_path` writes them to a 1-D uint64 `.npy` beside the file, and
    /// without it the ids must be the row numbers 0..n-1 (else
    /// `quiver.InvalidArgument`). The file is written as `<path>.tmp`,
    /// synced and renamed: it appears whole or not at all. `progress(done,
    /// total)` is called as rows are written; an exception from it (or
    /// Ctrl-C) stops the export and leaves no file. The GIL is released
    /// meanwhile.
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
        self.inner.export_file(py, path, format, id_range, ids_path, progress)
    }

    /// Every id in the snapshot, unordered, as a new `uint64` array.
    fn ids<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.inner.ids(py)
    }

    /// Every slot's vector as one read-only `(slot_count, dim)` array,
    /// zero-copy: row `s` is the vector written at slot `s` of the data file
    /// (rows are `record_size` bytes apart, so the array is strided, not
    /// C-contiguous). Rows that are not live (`live_mask()` is False) hold
    /// an overwritten vector or zeros. Index the live rows with
    /// `vectors()[slots]` from `live_slots()` (that copies them).
    ///
    /// Raises `quiver.Error` if the data file outgrew one mapped window
    /// (64 GiB by default, see `map_window_bytes`).
    fn vectors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        view::slots_of(py, &self.inner)?.ok_or_else(|| {
            errors::raise(
                "Error",
                "the snapshot's slots span more than one mapped window; read them with get() or a snapshot per window"
                    .into(),
            )
        })
    }

    /// `(slots, ids)`: two `uint64` arrays, sorted by slot, naming the row
    /// of `vectors()` that holds each live vector and its id.
    fn live_slots<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let live = py.detach(|| self.inner.live());
        let slots: Vec<u64> = live.iter().map(|&(s, _)| s).collect();
        let ids: Vec<u64> = live.iter().map(|&(_, i)| i).collect();
        PyTuple::new(py, [owned(py, slots), owned(py, ids)])
    }

    /// A `bool` array of `slot_count` entries: True where the row of
    /// `vectors()` is a live vector of this snapshot.
    fn live_mask<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let count = self.inner.slot_count() as usize;
        let mask = py.detach(|| {
            let mut mask = vec![false; count];
            for (slot, _) in self.inner.live() {
                mask[slot as usize] = true;
            }
            mask
        });
        Ok(owned(py, mask))
    }

    /// Exact top-`k` search, scoring every live vector (or only those whose
    /// ids are in `filter`).
    ///
    /// `queries` is one query of shape `(dim,)` or a batch `(n, dim)`,
    /// converted to float32. `metric` is `"cosine"`, `"dot"` (both: higher
    /// is better) or `"l2"` (squared distance, lower is better). `threads`
    /// splits the scan (0: every core); results are identical for any
    /// number. Returns `(ids, scores)`: `uint64` and `float32` arrays of
    /// shape `(k',)` for one query (`k' <= k`), or `(n, k)` for a batch,
    /// whose rows shorter than `k` are padded with id `quiver.NO_ID` and
    /// score NaN (the width is `min(k, len(snapshot))`). Best first; equal scores by smaller id. The GIL is
    /// released while searching.
    #[pyo3(signature = (queries, k, metric = "cosine", filter = None, threads = 0))]
    fn search<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        k: usize,
        metric: &str,
        filter: Option<&Bound<'py, PyAny>>,
        threads: usize,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let metric = match metric {
            "cosine" => Metric::Cosine,
            "dot" | "ip" => Metric::Dot,
            "l2" => Metric::L2,
            other => {
                return Err(PyValueError::new_err(format!("metric {other:?} is not one of 'cosine', 'dot', 'l2'")));
            }
        };
        let dim = self.inner.dim();
        let q = Vectors::extract(queries, DType::F32, dim, Shape::Either)?;
        let single = q.single;
        // Nothing past the snapshot's size can be returned, so a huge `k`
        // allocates nothing.
        let k = k.min(self.__len__());
        let filter = filter.map(Ids::extract).transpose()?;
        let flat: &[f32] = q.as_slice();
        let allowed = filter.as_ref().map(Ids::as_slice);
        let hits = py.detach(|| {
            let mut options = SearchOptions::new(k, metric).threads(threads);
            if let Some(ids) = allowed {
                options = options.ids(ids);
            }
            dispatch!(AnySnapshot, &self.inner, s, _T => s.search_batch_with(flat, &options))
        });
        let hits = hits.map_err(errors::search_to_py)?;
        if single {
            let row = hits.into_iter().next().unwrap_or_default();
            let ids: Vec<u64> = row.iter().map(|h| h.id).collect();
            let scores: Vec<f32> = row.iter().map(|h| h.score).collect();
            return PyTuple::new(py, [owned(py, ids), owned(py, scores)]);
        }
        let n = hits.len();
        let mut ids = vec![u64::MAX; n * k];
        let mut scores = vec![f32::NAN; n * k];
        for (row, row_hits) in hits.iter().enumerate() {
            for (col, h) in row_hits.iter().enumerate() {
                ids[row * k + col] = h.id;
                scores[row * k + col] = h.score;
            }
        }
        PyTuple::new(py, [owned_rows(py, ids, n, k), owned_rows(py, scores, n, k)])
    }
}
