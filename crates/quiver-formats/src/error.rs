//! The one error type of the formats crate: every message a sentence that
//! names the file and, for damage, the byte offset.

use std::io;
use std::path::PathBuf;

/// What can go wrong reading or writing a vector file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// An I/O call failed.
    #[error("I/O failed on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The file is not what its format says: truncated, torn or damaged.
    #[error("{path} is malformed at byte offset {offset}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Where the problem starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A table's row is not a vector Quiver can store (a null, another
    /// length), or the table cannot be decoded at that row.
    #[error("{path}: row {row}: {reason}")]
    BadRow {
        /// The file.
        path: PathBuf,
        /// The row, from 0.
        row: u64,
        /// What is wrong.
        reason: String,
    },
    /// The file's rows have another dimension than the store's vectors.
    #[error("{path}: the file's rows have {file} elements but the store's vectors have {store}")]
    DimensionMismatch {
        /// The file.
        path: PathBuf,
        /// Elements per row in the file.
        file: usize,
        /// The store's dimension.
        store: usize,
    },
    /// The file holds another element type than the store.
    #[error("{path}: the file holds {file} elements but the store holds {store}")]
    ElementTypeMismatch {
        /// The file.
        path: PathBuf,
        /// The file's element type.
        file: &'static str,
        /// The store's element type.
        store: &'static str,
    },
    /// The file is valid but cannot go where it was asked to (a layout or
    /// type the format or the store does not hold).
    #[error("{path}: {reason}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An import stopped because its [cancel
    /// flag](crate::ImportOptions::cancel_flag) was raised. Every row before
    /// `next_row` is stored (in whole batches, flushed when the import
    /// flushes) and none after it: resume with
    /// [`skip_rows(next_row)`](crate::ImportOptions::skip_rows) and the same
    /// first id.
    #[error(
        "importing {path} was cancelled after {rows} rows were stored in whole batches; rows from {next_row} on were not imported",
        rows = .stored.rows
    )]
    Cancelled {
        /// The file.
        path: PathBuf,
        /// What the import did before it stopped.
        stored: crate::ImportSummary,
        /// The first file row not stored (the skip given plus the rows
        /// stored): the `skip_rows` that resumes the import.
        next_row: u64,
    },
    /// An export stopped because its cancel flag was raised
    /// ([`export_snapshot_with`](crate::export_snapshot_with)); no file was
    /// written.
    #[error("exporting to {path} was cancelled; no file was written")]
    ExportCancelled {
        /// The file that was not written.
        path: PathBuf,
    },
    /// The store refused an operation.
    #[error(transparent)]
    Store(#[from] quiver_storage::Error),
}

impl FormatError {
    pub(crate) fn io(path: &std::path::Path, source: io::Error) -> Self {
        FormatError::Io { path: path.to_path_buf(), source }
    }

    pub(crate) fn malformed(path: &std::path::Path, offset: u64, reason: impl Into<String>) -> Self {
        FormatError::Malformed { path: path.to_path_buf(), offset, reason: reason.into() }
    }

    pub(crate) fn unsupported(path: &std::path::Path, reason: impl Into<String>) -> Self {
        FormatError::Unsupported { path: path.to_path_buf(), reason: reason.into() }
    }
}
