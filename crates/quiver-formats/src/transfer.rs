//! Moving rows between files and stores: an import stores a file in whole
//! batches after checking its shape against the store's; an export writes a
//! snapshot's vectors (in id order) to a file that appears only once whole.

use std::fs::{self, File};
use std::io::{self, Read};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use quiver_storage::{Element, Snapshot, VectorStore};

use crate::error::FormatError;
use crate::open::open_reader;
use crate::vecs::{VecsKind, VecsWriter};
use crate::{FileShape, Format, NpyWriter, ReadRows, Scalar, WriteRows};

/// Reads until `buf` is full or the input ends; returns the bytes read.
pub(crate) fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// `<target>.tmp`, renamed over the target only by [`TempFile::commit`];
/// removed if dropped before.
#[derive(Debug)]
pub(crate) struct TempFile {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl TempFile {
    pub(crate) fn create(target: &Path) -> Result<(Self, File), FormatError> {
        let mut name = target.file_name().unwrap_or_default().to_os_string();
        name.push(".tmp");
        let tmp = target.with_file_name(name);
        let file = File::create(&tmp).map_err(|e| FormatError::io(&tmp, e))?;
        Ok((Self { tmp, target: target.to_path_buf(), committed: false }, file))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.tmp
    }

    /// Syncs `file`, renames it over the target and syncs the directory.
    pub(crate) fn commit(mut self, file: File) -> Result<(), FormatError> {
        file.sync_all().map_err(|e| FormatError::io(&self.tmp, e))?;
        fs::rename(&self.tmp, &self.target).map_err(|e| FormatError::io(&self.target, e))?;
        self.committed = true;
        let parent = self.target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        File::open(parent).and_then(|d| d.sync_all()).map_err(|e| FormatError::io(parent, e))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(feature = "arrow")]
fn table_writer(path: &Path, format: Format, scalar: Scalar, dim: usize) -> Result<Box<dyn WriteRows>, FormatError> {
    crate::arrow::create_writer(path, format, scalar, dim)
}

#[cfg(not(feature = "arrow"))]
fn table_writer(path: &Path, format: Format, _: Scalar, _: usize) -> Result<Box<dyn WriteRows>, FormatError> {
    Err(FormatError::unsupported(path, format!("this build has no {} support (the `arrow` feature)", format.name())))
}

/// How [`import_file`] maps rows to ids, batches them, and when it stops.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ImportOptions {
    /// The id of the file's row 0 (row `r` gets `first_id + r`), for the
    /// formats without an id column; Arrow and Parquet rows keep their own.
    pub first_id: u64,
    /// Rows skipped at the start (to resume an interrupted import: the
    /// skipped rows keep their ids).
    pub skip_rows: u64,
    /// Payload bytes per batch (each batch is one atomic `store_batch`).
    pub batch_bytes: usize,
    /// Whether the import ends with `flush`, making every row durable
    /// against power loss.
    pub flush: bool,
    /// When set (by a signal handler, another thread), the import stops
    /// before storing its next batch; see [`ImportOptions::cancel_flag`].
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for ImportOptions {
    /// Ids from 0, no skip, 16 MiB batches, flushed at the end, no cancel
    /// flag.
    fn default() -> Self {
        Self { first_id: 0, skip_rows: 0, batch_bytes: 16 << 20, flush: true, cancel: None }
    }
}

impl ImportOptions {
    /// Row `r` gets id `first_id + r`.
    pub fn first_id(mut self, first_id: u64) -> Self {
        self.first_id = first_id;
        self
    }

    /// Skips the first `rows` rows.
    pub fn skip_rows(mut self, rows: u64) -> Self {
        self.skip_rows = rows;
        self
    }

    /// Payload bytes per batch (at least one row).
    pub fn batch_bytes(mut self, bytes: usize) -> Self {
        self.batch_bytes = bytes;
        self
    }

    /// Whether to `flush` at the end.
    pub fn flush(mut self, flush: bool) -> Self {
        self.flush = flush;
        self
    }

    /// Checks `flag` between batches: once it is `true`, the import stores
    /// no further batch, flushes what it stored (when [`flush`](Self::flush)
    /// is on) and returns [`FormatError::Cancelled`] saying where to resume.
    /// A batch is never cut: the flag is read after a batch is read and
    /// before it is stored, so a flag raised after the last batch is stored
    /// lets the import finish.
    pub fn cancel_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.cancel = Some(flag);
        self
    }

    /// The refusals [`import_rows`] makes from the file and these options
    /// alone, before it writes anything: a first id for a file that carries
    /// its own ids, and ids `first_id + row` that overflow `u64`. (The
    /// shape checks need the store.) A caller that creates a store for the
    /// file from its shape calls this first, so that a refused import
    /// leaves no store behind; `path` names the file in messages.
    pub fn check_reader(&self, reader: &dyn ReadRows, path: &Path) -> Result<(), FormatError> {
        if reader.has_ids() && self.first_id != 0 {
            return Err(FormatError::unsupported(
                path,
                "the file carries its own ids, so a first id cannot be given (it applies to files without an id column)",
            ));
        }
        let last_row = reader.shape().rows.unwrap_or(0);
        if self.first_id.checked_add(last_row).is_none() {
            return Err(FormatError::unsupported(
                path,
                format!("ids from {} for {last_row} rows overflow u64", self.first_id),
            ));
        }
        Ok(())
    }

    fn cancelled(&self) -> bool {
        // Relaxed is enough: the flag carries no data, and the import only
        // needs to see it eventually (at the next batch).
        self.cancel.as_ref().is_some_and(|flag| flag.load(Ordering::Relaxed))
    }
}

/// How far a transfer has come, handed to its progress callback after
/// every batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Rows done (stored or written) so far.
    pub rows_done: u64,
    /// Rows in all, when known.
    pub rows_total: Option<u64>,
}

/// What [`import_file`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportSummary {
    /// Rows stored.
    pub rows: u64,
    /// The file's shape.
    pub shape: FileShape,
    /// The ids given: `first_id + skip_rows ..` this, exclusive.
    pub end_id: u64,
    /// Bytes of the file consumed.
    pub bytes_read: u64,
}

/// Stores every row of `path` in `store`, row `r` under id
/// `options.first_id + r`, in atomic batches; see the crate docs for what
/// is promised. The file's dimension and element type must be the store's:
/// otherwise nothing is written. With a [cancel
/// flag](ImportOptions::cancel_flag) raised, it stops between batches with
/// [`FormatError::Cancelled`].
pub fn import_file<T: Element>(
    store: &VectorStore<T>,
    path: &Path,
    format: Option<Format>,
    options: &ImportOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<ImportSummary, FormatError> {
    import_rows(store, open_reader(path, format)?, path, options, progress)
}

/// [`import_file`] from a reader already open: one from [`open_reader`]
/// wrapped in a [`WithIds`](crate::WithIds), for example. `path` names the
/// file in messages.
pub fn import_rows<T: Element>(
    store: &VectorStore<T>,
    mut reader: Box<dyn ReadRows>,
    path: &Path,
    options: &ImportOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<ImportSummary, FormatError> {
    let shape = reader.shape();
    if shape.element != Scalar::Element(T::TYPE) {
        return Err(FormatError::ElementTypeMismatch {
            path: path.to_path_buf(),
            file: shape.element.name(),
            store: T::TYPE.name(),
        });
    }
    if shape.dim != store.dimension() {
        return Err(FormatError::DimensionMismatch {
            path: path.to_path_buf(),
            file: shape.dim,
            store: store.dimension(),
        });
    }
    options.check_reader(&*reader, path)?;
    let total = shape.rows.map(|r| r.saturating_sub(options.skip_rows));
    if let Some(rows) = total {
        store.reserve_capacity(usize::try_from(rows).unwrap_or(usize::MAX))?;
    }
    reader.skip_rows(options.skip_rows)?;
    let row_bytes = shape.dim * size_of::<T>();
    let batch_rows = (options.batch_bytes / row_bytes).max(1);
    let mut buf: Vec<T> = vec![T::zeroed(); batch_rows * shape.dim];
    let mut ids: Vec<u64> = Vec::new();
    let own_ids = reader.has_ids();
    let (mut done, mut next_id) = (0u64, options.first_id + options.skip_rows);
    loop {
        let offset_before = reader.offset_bytes();
        let rows = reader.read_rows(batch_rows, bytemuck::cast_slice_mut(&mut buf), &mut ids)?;
        if rows == 0 {
            break;
        }
        if options.cancelled() {
            // What was stored is whole batches; make it as durable as a
            // finished import would be before saying where to resume.
            if options.flush {
                store.flush()?;
            }
            // The batch just read is not stored: the bytes consumed end before it.
            let stored = ImportSummary { rows: done, shape, end_id: next_id, bytes_read: offset_before };
            return Err(FormatError::Cancelled {
                path: path.to_path_buf(),
                stored,
                next_row: options.skip_rows + done,
            });
        }
        let rows_of = buf[..rows * shape.dim].chunks_exact(shape.dim);
        let batch: Vec<(u64, &[T])> = if own_ids {
            ids.iter().copied().zip(rows_of).collect()
        } else {
            rows_of.enumerate().map(|(i, v)| (next_id + i as u64, v)).collect()
        };
        store.store_batch(&batch)?;
        done += rows as u64;
        next_id += rows as u64;
        progress(Progress { rows_done: done, rows_total: total });
    }
    if options.flush {
        store.flush()?;
    }
    Ok(ImportSummary { rows: done, shape, end_id: next_id, bytes_read: reader.offset_bytes() })
}

/// What [`export_snapshot`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportSummary {
    /// Rows (vectors) written, in id order.
    pub rows: u64,
    /// Bytes of the file.
    pub bytes_written: u64,
}

fn writer_for<T: Element>(
    path: &Path,
    format: Format,
    dim: usize,
    rows: u64,
) -> Result<Box<dyn WriteRows>, FormatError> {
    let scalar = Scalar::Element(T::TYPE);
    Ok(match (format, VecsKind::of(format)) {
        (_, Some(kind)) if kind.scalar() == scalar => Box::new(VecsWriter::create(path, kind, dim)?),
        (_, Some(kind)) => {
            return Err(FormatError::unsupported(
                path,
                format!(
                    "{} holds {} elements; the store holds {}",
                    format.name(),
                    kind.scalar().name(),
                    T::TYPE.name()
                ),
            ));
        }
        (Format::Npy, None) => Box::new(NpyWriter::create(path, scalar, Some(dim), rows)?),
        (table, None) => table_writer(path, table, scalar, dim)?,
    })
}

/// Writes the vectors of `snapshot` whose ids fall in `ids` to `path` in
/// `format`, in id order. Arrow and Parquet tables carry the ids; vecs and
/// npy do not (export them with [`export_ids`] when they are not `0..n`).
/// The file appears whole or not at all.
pub fn export_snapshot<T: Element>(
    snapshot: &Snapshot<T>,
    path: &Path,
    format: Format,
    ids: impl RangeBounds<u64>,
    progress: &mut dyn FnMut(Progress),
) -> Result<ExportSummary, FormatError> {
    export_snapshot_with(snapshot, path, format, ids, None, progress)
}

/// [`export_snapshot`] that stops once `cancel` is set (it is read after
/// every write of about 1 MiB), with [`FormatError::ExportCancelled`] and
/// no file at `path`.
pub fn export_snapshot_with<T: Element>(
    snapshot: &Snapshot<T>,
    path: &Path,
    format: Format,
    ids: impl RangeBounds<u64>,
    cancel: Option<&AtomicBool>,
    progress: &mut dyn FnMut(Progress),
) -> Result<ExportSummary, FormatError> {
    let cancelled = || cancel.is_some_and(|flag| flag.load(Ordering::Relaxed));
    let range = snapshot.range(ids);
    let rows = range.len() as u64;
    let dim = snapshot.dim();
    let mut writer = writer_for::<T>(path, format, dim, rows)?;
    let per_write = ((1 << 20) / (dim * size_of::<T>())).max(1);
    let mut buf: Vec<u8> = Vec::with_capacity(per_write * dim * size_of::<T>());
    let mut ids: Vec<u64> = Vec::with_capacity(per_write);
    let mut done = 0u64;
    for (id, v) in range {
        buf.extend_from_slice(bytemuck::cast_slice(v));
        ids.push(id);
        done += 1;
        if done.is_multiple_of(per_write as u64) {
            writer.write_rows(&ids, &buf)?;
            buf.clear();
            ids.clear();
            progress(Progress { rows_done: done, rows_total: Some(rows) });
            if cancelled() {
                // Dropping the writer removes its temporary file.
                return Err(FormatError::ExportCancelled { path: path.to_path_buf() });
            }
        }
    }
    writer.write_rows(&ids, &buf)?;
    let bytes_written = writer.finish()?;
    progress(Progress { rows_done: done, rows_total: Some(rows) });
    Ok(ExportSummary { rows: done, bytes_written })
}

/// Writes the ids of `snapshot` that fall in `ids`, in order, as a 1-D
/// `uint64` `.npy`: the id column of an [`export_snapshot`] of the same
/// range.
pub fn export_ids<T: Element>(
    snapshot: &Snapshot<T>,
    path: &Path,
    ids: impl RangeBounds<u64>,
) -> Result<ExportSummary, FormatError> {
    let range = snapshot.range(ids);
    let rows = range.len() as u64;
    let mut writer = Box::new(NpyWriter::create(path, Scalar::U64, None, rows)?);
    let all: Vec<u8> = range.flat_map(|(id, _)| id.to_le_bytes()).collect();
    writer.write_rows(&[], &all)?;
    let bytes_written = writer.finish()?;
    Ok(ExportSummary { rows, bytes_written })
}
