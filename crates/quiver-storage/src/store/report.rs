//! What an open found and did, reported to the caller: the snapshot's fate,
//! the WAL replayed, a torn tail cut, leftovers removed. Produced by `open`
//! and `replay`; neither owns the other's types.

use std::path::PathBuf;

/// What open did with the index snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnapshotOutcome {
    /// No checkpoint has been taken yet; the WAL alone holds the index.
    NoCheckpoint,
    /// The snapshot was read.
    Loaded {
        /// Entries read.
        entries: u64,
    },
    /// The snapshot was missing or damaged; the index was rebuilt from the
    /// data file and the WAL (and a fresh checkpoint written).
    Rebuilt {
        /// Why the snapshot could not be used.
        reason: String,
    },
}

/// A torn WAL tail that open cut off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The segment.
    pub path: PathBuf,
    /// Where its valid prefix ends.
    pub offset: u64,
    /// Bytes removed.
    pub bytes_cut: u64,
    /// Why the frame at `offset` was rejected.
    pub reason: String,
}

/// What the last open found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// The store was created by this open.
    pub created: bool,
    /// How the index was loaded.
    pub snapshot: SnapshotOutcome,
    /// WAL segments read.
    pub wal_segments_read: u64,
    /// Batches replayed from the WAL.
    pub batches_replayed: u64,
    /// The torn tail cut off, if any.
    pub torn_tail: Option<TornTail>,
    /// Leftover temporary or unreferenced files removed (WAL segments older
    /// than the checkpoint are left for the next checkpoint to delete).
    pub files_removed: Vec<PathBuf>,
}
