//! Quiver's storage engine: the data file, the id index, the write-ahead log,
//! checkpoints, recovery and the writer lock.
//!
//! Most users depend on the `quiver` facade, which re-exports this crate's
//! public API. The byte layouts are described in `docs/FORMAT.md`, the
//! durability contract in `docs/DURABILITY.md`; the only `unsafe` code is in
//! the private `data_file::mapping` module, whose argument is in the
//! `quiver_guard` crate docs.
//!
//! Quiver targets 64-bit Linux; every on-disk integer is little-endian.
#![deny(unsafe_code)]
#[cfg(not(target_pointer_width = "64"))]
compile_error!("Quiver targets 64-bit platforms: offsets and lengths are u64 and cast to usize.");
#[cfg(not(target_endian = "little"))]
compile_error!(
    "Quiver targets little-endian platforms: payloads are stored in the machine's byte order, which the format fixes as little-endian."
);

mod data_file;
mod element;
mod error;
// `format` and `io` are public only with the `testing` feature (for Quiver's
// own tests, fuzz targets and benches); without it their `pub` items are the
// crate's internals.
#[cfg(feature = "testing")]
pub mod format;
#[cfg(not(feature = "testing"))]
#[allow(unreachable_pub)]
mod format;
mod ids;
mod index;
mod inspect;
#[cfg(feature = "testing")]
pub mod io;
#[cfg(not(feature = "testing"))]
#[allow(unreachable_pub)]
mod io;
mod layout;
mod metrics;
mod options;
mod store;
mod wal;

pub use data_file::GrowthPolicy;
pub use element::{Element, ElementType};
pub use error::{Error, Result};
pub use inspect::{StoreInfo, inspect};
pub use metrics::{LatencySummary, Metrics};
pub use options::{
    AccessPattern, DEFAULT_CHECKPOINT_WAL_BYTES, DEFAULT_INLINE_BATCH_MAX_BYTES, DEFAULT_MAP_WINDOW_BYTES, Durability,
    MAX_INLINE_BATCH_BYTES, StoreOptions,
};
pub use quiver_guard::VectorGuard;
pub use store::{
    Change, ChangeFeed, Changes, Compaction, Headroom, Problem, RecoveryReport, RefreshOutcome, Snapshot, SnapshotIter,
    SnapshotOutcome, SnapshotRange, SwitchOutcome, TornTail, VectorReader, VectorStore, VerifyReport,
};

/// Named limits, checked where input enters.
pub mod limits {
    pub use crate::format::wal_frame::{MAX_BATCH_VECTORS, MAX_FRAME_PAYLOAD_BYTES};
    pub use crate::format::{MAX_DATA_FILE_BYTES, MAX_DIMENSION};
    pub use crate::store::MAX_BATCH_BYTES;
}
