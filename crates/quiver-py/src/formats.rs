//! Files in and out of a store through the `quiver-formats` crate, the one
//! the `quiver import` and `quiver export` commands use: fvecs, bvecs,
//! npy, Arrow IPC and Parquet, streamed a batch at a time, with shape
//! checks before anything is stored, atomic batches, and exports that
//! appear whole or not at all.
//!
//! The work runs with the GIL released; a progress callback, when given,
//! is called with the GIL taken back after every batch, and so is Python's
//! signal check, so Ctrl-C stops an import between two batches (raising
//! `KeyboardInterrupt` with everything before it stored).

use std::ops::Bound as Edge;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use quiver::{Element, Snapshot, VectorStore};
use quiver_formats::{Format, FormatError, ImportOptions, Progress, ReaderOptions, WithIds};

use crate::errors;

/// The format called `name`, if one is given.
pub(crate) fn format(name: Option<&str>) -> PyResult<Option<Format>> {
    name.map(|n| {
        Format::from_name(n).ok_or_else(|| {
            PyValueError::new_err(format!("format {n:?} is not one of fvecs, bvecs, npy, arrow, arrows, parquet"))
        })
    })
    .transpose()
}

/// Where an import's ids come from.
pub(crate) enum Ids {
    /// `first_id + row` (or the file's own id column).
    Rows,
    /// A 1-D `uint64` `.npy` beside the file.
    File(PathBuf),
    /// One per row, from the caller.
    Held(Vec<u64>),
}

/// An optional Python callable `progress(done, total)` (total `None` when
/// the file does not say), called with the GIL after every batch; what it
/// raises, or a pending signal's exception, stops the transfer.
pub(crate) struct Callback {
    call: Option<Py<PyAny>>,
    failed: Option<PyErr>,
    stop: Arc<AtomicBool>,
}

impl Callback {
    pub(crate) fn new(call: Option<Py<PyAny>>) -> Self {
        Self { call, failed: None, stop: Arc::new(AtomicBool::new(false)) }
    }

    fn report(&mut self, p: Progress) {
        if self.failed.is_some() {
            return;
        }
        let outcome = Python::attach(|py| {
            py.check_signals()?;
            match &self.call {
                Some(call) => call.call1(py, (p.rows_done, p.rows_total)).map(drop),
                None => Ok(()),
            }
        });
        if let Err(e) = outcome {
            self.failed = Some(e);
            self.stop.store(true, Ordering::Relaxed);
        }
    }
}

/// Imports `path` into `store` (called with the GIL released); returns the
/// rows stored.
pub(crate) fn import<T: Element>(
    store: &VectorStore<T>,
    path: &Path,
    format: Option<Format>,
    columns: &ReaderOptions,
    ids: Ids,
    options: ImportOptions,
    callback: &mut Callback,
) -> Result<u64, FormatError> {
    let options = options.cancel_flag(Arc::clone(&callback.stop));
    let reader = quiver_formats::open_reader_with(path, format, columns)?;
    let reader: Box<dyn quiver_formats::ReadRows> = match ids {
        Ids::Rows => reader,
        Ids::File(ids) => Box::new(WithIds::from_file(reader, &ids)?),
        Ids::Held(ids) => Box::new(WithIds::from_ids(reader, ids)?),
    };
    let summary = quiver_formats::import_rows(store, reader, path, &options, &mut |p| callback.report(p))?;
    Ok(summary.rows)
}

/// Writes the vectors of `snapshot` with ids in `range` to `path`, and
/// their ids to `ids_path` when given (called with the GIL released);
/// returns the rows written. A format that carries no ids, without an
/// `ids_path`, is refused unless the ids are exactly `0..len`.
pub(crate) fn export<T: Element>(
    snapshot: &Snapshot<T>,
    path: &Path,
    format: Option<Format>,
    range: (Edge<u64>, Edge<u64>),
    ids_path: Option<&Path>,
    callback: &mut Callback,
) -> Result<u64, FormatError> {
    let format = quiver_formats::format_of(path, format)?;
    if ids_path.is_none() && !format.has_ids() {
        let mut ids = snapshot.range(range);
        let rows = ids.len() as u64;
        // Distinct ids in order are 0..rows exactly when the first is 0 and
        // the last rows - 1.
        let dense =
            ids.next().is_none_or(|(first, _)| first == 0) && ids.next_back().is_none_or(|(last, _)| last + 1 == rows);
        if !dense {
            return Err(FormatError::Unsupported {
                path: path.to_path_buf(),
                reason: format!(
                    "{} files carry no ids and the ids exported are not the row numbers 0..{rows}; pass ids_path= to \
                     write them beside the vectors, or export to Arrow or Parquet",
                    format.name()
                ),
            });
        }
    }
    let stop = Arc::clone(&callback.stop);
    let summary =
        quiver_formats::export_snapshot_with(snapshot, path, format, range, Some(&stop), &mut |p| callback.report(p))?;
    if let Some(ids_path) = ids_path {
        quiver_formats::export_ids(snapshot, ids_path, range)?;
    }
    Ok(summary.rows)
}

/// What a transfer's outcome raises: the callback's exception (or the
/// signal's) first, then the crate's error as the matching `quiver`
/// exception.
pub(crate) fn finish<R>(outcome: Result<R, FormatError>, callback: Callback) -> PyResult<R> {
    if let Some(e) = callback.failed {
        return Err(e);
    }
    outcome.map_err(to_py)
}

/// The `quiver` exception for a formats error.
fn to_py(err: FormatError) -> PyErr {
    let class = match &err {
        FormatError::Store(_) => {
            let FormatError::Store(e) = err else { unreachable!("matched above") };
            return errors::to_py(e);
        }
        FormatError::Io { source, .. } => {
            if let Some(errno) = source.raw_os_error() {
                return errors::raise_os("IOError", errno, err.to_string());
            }
            "IOError"
        }
        FormatError::DimensionMismatch { .. } => "DimensionMismatch",
        FormatError::ElementTypeMismatch { .. } => "ElementTypeMismatch",
        FormatError::Malformed { .. } | FormatError::BadRow { .. } => "MalformedFile",
        FormatError::Unsupported { .. } => "InvalidArgument",
        _ => "Error",
    };
    errors::raise(class, err.to_string())
}

/// The id range of a Python `range` (step 1) or `None` (every id).
pub(crate) fn id_range(ids: Option<&Bound<'_, PyAny>>) -> PyResult<(Edge<u64>, Edge<u64>)> {
    let Some(ids) = ids else { return Ok((Edge::Unbounded, Edge::Unbounded)) };
    let bad = || PyValueError::new_err("id_range must be a range(start, stop) with step 1");
    if !ids.is_instance_of::<pyo3::types::PyRange>() {
        return Err(bad());
    }
    let (start, stop, step): (i128, i128, i128) =
        (ids.getattr("start")?.extract()?, ids.getattr("stop")?.extract()?, ids.getattr("step")?.extract()?);
    if step != 1 {
        return Err(bad());
    }
    if stop <= start || stop <= 0 {
        // An empty range: nothing is exported.
        return Ok((Edge::Included(0), Edge::Excluded(0)));
    }
    // Ids are in [0, 2**64): a negative start is 0, a stop past the last id
    // is no bound.
    let start = u64::try_from(start.max(0)).unwrap_or(u64::MAX);
    let end = u64::try_from(stop).map_or(Edge::Unbounded, Edge::Excluded);
    Ok((Edge::Included(start), end))
}
