//! How a store is opened: dimension, durability level, growth, limits.
//! Every option is validated before the directory is touched.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::data_file::GrowthPolicy;
use crate::element::Element;
use crate::error::{Error, Result};
use crate::format::{MAX_DATA_FILE_BYTES, MAX_DIMENSION};
use crate::io::FaultInjector;
use crate::store::VectorStore;

/// When an acknowledged write becomes durable. See docs/DURABILITY.md.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Durability {
    /// Durable against power loss when the call returns: one `fdatasync`
    /// per commit, shared by concurrent writers (group commit). A write is
    /// visible to readers only once it is durable.
    Sync,
    /// Durable against a process crash (`kill -9`) when the call returns,
    /// against power loss after [`VectorStore::flush`]. Plain `write`
    /// syscalls, no fsync. The default.
    #[default]
    Buffered,
    /// Buffered in user space; durable only after `flush`, `checkpoint` or
    /// `close`. A process crash may lose the writes since the last of those,
    /// always whole batches.
    Deferred,
}

/// How a store's vectors will be read, told to the kernel (`madvise`) for
/// every mapped window of its data file; set with
/// [`StoreOptions::access_pattern`] or, on an open store,
/// [`VectorStore::advise`]. A hint: it changes how much the kernel reads
/// ahead on a page fault, never what a read returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum AccessPattern {
    /// The kernel's default readahead (the default): good for scans after
    /// open and for hot data, which never faults.
    #[default]
    Normal = 0,
    /// Point reads of a cold store larger than memory (an HNSW walk over
    /// vectors on disk): no readahead, so a fault reads one page instead of
    /// a window of neighbours nobody asked for.
    Random = 1,
    /// Front-to-back scans (an exact search, an export): aggressive
    /// readahead, pages freed sooner behind the scan.
    Sequential = 2,
}

impl AccessPattern {
    pub(crate) fn advice(self) -> quiver_guard::Advice {
        match self {
            AccessPattern::Normal => quiver_guard::Advice::Normal,
            AccessPattern::Random => quiver_guard::Advice::Random,
            AccessPattern::Sequential => quiver_guard::Advice::Sequential,
        }
    }

    pub(crate) fn from_code(code: u8) -> Self {
        match code {
            1 => AccessPattern::Random,
            2 => AccessPattern::Sequential,
            _ => AccessPattern::Normal,
        }
    }
}

/// Options for opening or creating a store.
///
/// ```
/// use quiver_storage::{Durability, StoreOptions, VectorStore};
/// let dir = tempfile::tempdir()?;
/// let store: VectorStore<f32> = StoreOptions::new(4)
///     .durability(Durability::Sync)
///     .open(dir.path().join("vectors"))?;
/// assert_eq!(store.dimension(), 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct StoreOptions {
    pub(crate) dimension: usize,
    pub(crate) durability: Durability,
    pub(crate) growth: GrowthPolicy,
    pub(crate) map_window_bytes: u64,
    pub(crate) inline_batch_max_bytes: usize,
    pub(crate) checkpoint_wal_bytes: u64,
    pub(crate) access: AccessPattern,
    pub(crate) populate: bool,
    pub(crate) faults: Option<Arc<dyn FaultInjector>>,
}

/// Default virtual window mapped over a data file (64 GiB).
pub const DEFAULT_MAP_WINDOW_BYTES: u64 = 64 << 30;
/// Largest batch, in payload bytes, whose vectors travel inside its WAL
/// frame by default; larger batches log only locations and checksums.
pub const DEFAULT_INLINE_BATCH_MAX_BYTES: usize = 256 << 10;
/// Largest `inline_batch_max_bytes` accepted: an inline frame must stay
/// below the WAL's frame limit with room for its entries.
pub const MAX_INLINE_BATCH_BYTES: usize = (crate::format::wal_frame::MAX_FRAME_PAYLOAD_BYTES / 2) as usize;
/// Default WAL size that triggers an automatic checkpoint (64 MiB).
pub const DEFAULT_CHECKPOINT_WAL_BYTES: u64 = 64 << 20;

impl fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreOptions")
            .field("dimension", &self.dimension)
            .field("durability", &self.durability)
            .field("growth", &self.growth)
            .field("map_window_bytes", &self.map_window_bytes)
            .field("inline_batch_max_bytes", &self.inline_batch_max_bytes)
            .field("checkpoint_wal_bytes", &self.checkpoint_wal_bytes)
            .field("access", &self.access)
            .field("populate", &self.populate)
            .field("fault_injector", &self.faults.is_some())
            .finish()
    }
}

impl StoreOptions {
    /// Options for vectors of `dimension` elements, with the defaults:
    /// [`Durability::Buffered`], a 16 MiB first data file that doubles in
    /// steps of 64 MiB to 1 GiB, a 64 GiB map window, automatic checkpoint
    /// at 64 MiB of WAL.
    pub fn new(dimension: usize) -> Self {
        Self {
            dimension,
            durability: Durability::default(),
            growth: GrowthPolicy::default(),
            map_window_bytes: DEFAULT_MAP_WINDOW_BYTES,
            inline_batch_max_bytes: DEFAULT_INLINE_BATCH_MAX_BYTES,
            checkpoint_wal_bytes: DEFAULT_CHECKPOINT_WAL_BYTES,
            access: AccessPattern::Normal,
            populate: false,
            faults: None,
        }
    }

    /// How the vectors will be read ([`AccessPattern::Normal`] by default),
    /// told to the kernel for every window of the data file.
    pub fn access_pattern(mut self, pattern: AccessPattern) -> Self {
        self.access = pattern;
        self
    }

    /// Whether `open` (of a store or a follower) reads the committed
    /// records into memory before returning (`MADV_POPULATE_READ`; on
    /// kernels before 5.14 the read is only started), so the first queries
    /// do not fault. Off by default: it costs one read of the data file,
    /// and memory the kernel may reclaim later anyway.
    pub fn populate(mut self, populate: bool) -> Self {
        self.populate = populate;
        self
    }

    /// Sets the durability level.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Size of a new data file, in bytes.
    pub fn initial_file_bytes(mut self, bytes: u64) -> Self {
        self.growth.initial_bytes = bytes;
        self
    }

    /// Smallest and largest growth step, in bytes. The file doubles, with
    /// each step clamped to this range.
    pub fn growth_step_bytes(mut self, min_bytes: u64, max_bytes: u64) -> Self {
        self.growth.min_step_bytes = min_bytes;
        self.growth.max_step_bytes = max_bytes;
        self
    }

    /// Sets the whole growth policy at once (the two setters above set its
    /// parts). Checked when the store is opened: `0 < min <= max`.
    ///
    /// ```
    /// use quiver_storage::{GrowthPolicy, StoreOptions};
    /// let mut growth = GrowthPolicy::default();
    /// growth.max_step_bytes = 256 << 20; // grow by at most 256 MiB at a time
    /// let options = StoreOptions::new(768).growth(growth);
    /// assert_eq!(options.growth_policy().max_step_bytes, 256 << 20);
    /// ```
    pub fn growth(mut self, policy: GrowthPolicy) -> Self {
        self.growth = policy;
        self
    }

    /// The growth policy these options open a store with.
    pub fn growth_policy(&self) -> GrowthPolicy {
        self.growth
    }

    /// Size of each virtual window mapped over the data file. The file may
    /// outgrow one window; further windows are mapped as needed.
    pub fn map_window_bytes(mut self, bytes: u64) -> Self {
        self.map_window_bytes = bytes;
        self
    }

    /// Largest batch (in payload bytes) logged with its vectors inside the
    /// WAL frame; larger batches log locations and checksums only.
    pub fn inline_batch_max_bytes(mut self, bytes: usize) -> Self {
        self.inline_batch_max_bytes = bytes;
        self
    }

    /// WAL size, in bytes, past which a commit triggers a checkpoint.
    pub fn checkpoint_wal_bytes(mut self, bytes: u64) -> Self {
        self.checkpoint_wal_bytes = bytes;
        self
    }

    /// Installs a fault injector that sees every durability step. For tests
    /// of failure handling (the `testing` feature); never needed in
    /// production.
    #[cfg(feature = "testing")]
    pub fn fault_injector(mut self, faults: Arc<dyn FaultInjector>) -> Self {
        self.faults = Some(faults);
        self
    }

    /// Opens the store at `path`, creating it if `path` does not exist or is
    /// an empty directory.
    pub fn open<T: Element>(&self, path: impl AsRef<Path>) -> Result<VectorStore<T>> {
        VectorStore::open_with(path.as_ref(), self)
    }

    /// The validated dimension.
    pub(crate) fn validate(&self) -> Result<u32> {
        if self.dimension == 0 {
            return Err(Error::InvalidArgument("the dimension must be at least 1".into()));
        }
        if self.dimension > MAX_DIMENSION as usize {
            return Err(Error::LimitExceeded {
                what: "a dimension",
                actual: self.dimension as u64,
                limit: u64::from(MAX_DIMENSION),
            });
        }
        let g = &self.growth;
        if g.min_step_bytes == 0 || g.max_step_bytes < g.min_step_bytes {
            return Err(Error::InvalidArgument("growth steps must satisfy 0 < min <= max".into()));
        }
        if g.initial_bytes > MAX_DATA_FILE_BYTES || g.max_step_bytes > MAX_DATA_FILE_BYTES {
            return Err(Error::LimitExceeded {
                what: "a data file size",
                actual: g.initial_bytes.max(g.max_step_bytes),
                limit: MAX_DATA_FILE_BYTES,
            });
        }
        if self.map_window_bytes < (1 << 20) || self.map_window_bytes > (1 << 46) {
            return Err(Error::InvalidArgument("the map window must be between 1 MiB and 64 TiB".into()));
        }
        if self.checkpoint_wal_bytes == 0 {
            return Err(Error::InvalidArgument("the checkpoint threshold must be positive".into()));
        }
        if self.inline_batch_max_bytes > MAX_INLINE_BATCH_BYTES {
            return Err(Error::LimitExceeded {
                what: "an inline batch limit in bytes",
                actual: self.inline_batch_max_bytes as u64,
                limit: MAX_INLINE_BATCH_BYTES as u64,
            });
        }
        Ok(self.dimension as u32)
    }
}
