//! Compaction: copy a store's live records, in file order, into the next
//! generation, make it durable, and switch to it atomically — online.
//!
//! Readers are never blocked: they keep reading the old generation until the
//! switch, and a guard taken before it keeps the old mapping alive until the
//! guard is dropped. Writers keep writing during the copy; their records are
//! carried over by catch-up passes, and writers pause only for the final
//! catch-up and the durable switch (sync, snapshot, manifest rename). The
//! byte-level steps and their order are in docs/FORMAT.md, "Generation
//! switch"; the storage half is `quiver_storage::Compaction`, a session
//! borrowed from the store with `VectorStore::begin_compaction`.
//!
//! This crate decides *when* and *how much*; it never touches a file itself.
//!
//! ```
//! use quiver_storage::VectorStore;
//! let dir = tempfile::tempdir()?;
//! let store: VectorStore<f32> = VectorStore::open(dir.path().join("v"), 2)?;
//! for id in 0..100 {
//!     store.store(id, &[id as f32, 0.0])?;
//! }
//! for id in 0..75 {
//!     store.delete(id)?;
//! }
//! let stats = quiver_compaction::compact(&store)?;
//! assert_eq!(stats.live_records, 25);
//! assert_eq!(store.retrieve(80), Some(vec![80.0, 0.0]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod background;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quiver_storage::{Element, Headroom, Result, VectorStore};

pub use background::{BackgroundCompactor, BackgroundPolicy, MAX_RUNS_KEPT, Run};

/// Called with `(records copied, records to copy)` as compaction proceeds.
pub type ProgressFn = dyn Fn(u64, u64) + Send + Sync;

/// How to compact.
#[derive(Clone)]
pub struct CompactionOptions {
    /// Extra room in the new file, as a fraction of its live bytes (at least
    /// 64 KiB), on top of any room `reserve_capacity` promised.
    pub headroom_ratio: f64,
    /// Catch-up passes run without pausing writers before the final one.
    pub catch_up_passes: u32,
    /// Records copied between progress reports.
    pub progress_every_records: u64,
    /// Progress callback.
    pub progress: Option<Arc<ProgressFn>>,
}

impl Default for CompactionOptions {
    fn default() -> Self {
        Self { headroom_ratio: 1.0 / 16.0, catch_up_passes: 2, progress_every_records: 4096, progress: None }
    }
}

impl fmt::Debug for CompactionOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompactionOptions")
            .field("headroom_ratio", &self.headroom_ratio)
            .field("catch_up_passes", &self.catch_up_passes)
            .field("progress_every_records", &self.progress_every_records)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// What a compaction did.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct CompactionStats {
    /// The generation switched to.
    pub generation: u32,
    /// Records in the new data file (live ones and those carried over by
    /// catch-up).
    pub live_records: u64,
    /// Records of the old data file not carried over.
    pub dropped_records: u64,
    /// Allocated bytes of the old data file.
    pub bytes_before: u64,
    /// Allocated bytes of the new data file.
    pub bytes_after: u64,
    /// Bytes of records copied.
    pub bytes_copied: u64,
    /// Wall time of the whole compaction.
    pub duration: Duration,
    /// How long writers were paused for the switch.
    pub writer_pause: Duration,
}

/// Compacts `store` with default options.
pub fn compact<T: Element>(store: &VectorStore<T>) -> Result<CompactionStats> {
    compact_with(store, &CompactionOptions::default())
}

/// Compacts `store`. On any error before the switch the old generation
/// stays in use and the new files are removed.
pub fn compact_with<T: Element>(store: &VectorStore<T>, options: &CompactionOptions) -> Result<CompactionStats> {
    let started = Instant::now();
    let headroom = Headroom::new(options.headroom_ratio, 64 << 10);
    let mut compaction = store.begin_compaction(headroom)?;
    let live_count = compaction.live_records();
    let chunk = usize::try_from(options.progress_every_records.max(1)).unwrap_or(usize::MAX);
    while compaction.copy_live(chunk)? > 0 {
        if let Some(progress) = &options.progress {
            progress(compaction.records_copied(), live_count);
        }
    }
    // Catch-up passes without pausing writers, so the final one (under the
    // writer lock, in `commit`) has little left to copy.
    for _ in 0..options.catch_up_passes {
        if compaction.catch_up()? == 0 {
            break;
        }
    }
    let outcome = compaction.commit()?;
    if let Some(progress) = &options.progress {
        progress(outcome.records_after, outcome.records_after);
    }
    Ok(CompactionStats {
        generation: outcome.generation,
        live_records: outcome.records_after,
        dropped_records: outcome.records_before.saturating_sub(outcome.records_after),
        bytes_before: outcome.bytes_before,
        bytes_after: outcome.bytes_after,
        bytes_copied: outcome.bytes_copied,
        duration: started.elapsed(),
        writer_pause: outcome.writer_pause,
    })
}
