//! The one error type of Quiver. Every message is a sentence that says what
//! happened and, where it helps, what to do; `source()` exposes the
//! underlying I/O error.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in Quiver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A vector's length, or the dimension a store was opened with, does not
    /// match the store's dimension.
    #[error("the dimension does not match: the store holds vectors of {expected} elements, but {actual} were given")]
    DimensionMismatch {
        /// The store's dimension.
        expected: u32,
        /// The dimension that was given.
        actual: u32,
    },
    /// The store was created for another element type.
    #[error("the element type does not match: the store holds {expected} elements, but it was opened as {actual}")]
    ElementTypeMismatch {
        /// The element type on disk.
        expected: &'static str,
        /// The element type requested.
        actual: &'static str,
    },
    /// Another writer (in this process or another) holds the store's lock.
    #[error("the store at {path} is locked by another writer (in this process or another); close that one first")]
    Locked {
        /// The store directory.
        path: PathBuf,
    },
    /// A file failed a checksum or structural check.
    #[error("the file {path} is corrupted at byte offset {offset}: {reason}")]
    Corrupted {
        /// The damaged file.
        path: PathBuf,
        /// The byte offset at which the damage was found.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// The path exists but is not a Quiver store.
    #[error("{path} is not a Quiver store: {reason}")]
    NotAStore {
        /// The path given to `open`.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
    /// The store was written by an incompatible format version.
    #[error("the store at {path} has format version {found}, but this build reads version {supported}")]
    UnsupportedVersion {
        /// The store directory.
        path: PathBuf,
        /// The version on disk.
        found: u32,
        /// The version this build understands.
        supported: u32,
    },
    /// A write was attempted on a handle that cannot write (reserved for
    /// read-only followers; no current API returns it).
    #[error("this store handle is read-only; writes go through the one writer")]
    ReadOnly,
    /// An earlier I/O failure left the store's durability unknown; every
    /// write fails until the store is reopened.
    #[error("an earlier I/O failure poisoned the store; reopen it to recover (the first failure was: {first_failure})")]
    Poisoned {
        /// A description of the failure that poisoned the store.
        first_failure: String,
    },
    /// An argument was out of range; nothing was changed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A named limit was exceeded; nothing was changed.
    #[error("{what} of {actual} exceeds the limit of {limit}")]
    LimitExceeded {
        /// What was measured.
        what: &'static str,
        /// The value given.
        actual: u64,
        /// The limit.
        limit: u64,
    },
    /// Another compaction of this store is running; try again when it ends.
    #[error("another compaction of this store is running; wait for it to finish")]
    CompactionInProgress,
    /// A change feed was asked for the changes after an LSN whose history a
    /// compaction no longer holds: rebuild from a snapshot and follow the
    /// feed from its `lsn()`.
    #[error(
        "the changes after LSN {since_lsn} are no longer all in the store: the compaction that wrote generation {generation} kept only the changes after LSN {changes_after_lsn}; rebuild from a snapshot and follow the feed from its lsn()"
    )]
    ChangesCompacted {
        /// The LSN the feed was asked to start after.
        since_lsn: u64,
        /// The earliest LSN a feed of this generation can start after.
        changes_after_lsn: u64,
        /// The generation the view reads.
        generation: u32,
    },
    /// A change feed was asked to start after an LSN the view has not
    /// reached: the caller has seen batches this view does not hold.
    #[error(
        "LSN {since_lsn} is past the last LSN {last_lsn} this view holds: the caller saw batches it does not (a follower that has not refreshed yet, batches lost in a crash at Durability::Deferred, or another store's LSN)"
    )]
    LsnAhead {
        /// The LSN the feed was asked to start after.
        since_lsn: u64,
        /// The last LSN the view holds.
        last_lsn: u64,
    },
    /// The store has been closed.
    #[error("the store is closed")]
    Closed,
    /// An operating-system I/O call failed.
    #[error("I/O failed while {context}: {source}")]
    Io {
        /// What Quiver was doing.
        context: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// Wraps an I/O error with a description of what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }

    /// The raw OS error code, if this is an I/O error that carries one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// Quiver's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds a context sentence to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io { context: what(), source })
    }
}
