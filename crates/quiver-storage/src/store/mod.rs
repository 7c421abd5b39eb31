//! `VectorStore<T>`: the public handle, its read path, and the state shared
//! by the write path (`commit`), checkpoints (`checkpoint`) and recovery
//! (`open`).
//!
//! Lock order, always: `writer` -> `commit` -> the index's own locks (its
//! apply lock, then its shards; see `crate::index`). Readers take only index
//! locks, one shard's read lock at a time (plus the apply lock when a
//! snapshot keeps colliding with batches), briefly, and never wait for I/O.

mod append;
mod changes;
mod checkpoint;
mod commit;
mod compaction;
mod open;
mod overlay;
mod poison;
mod read_path;
mod reader;
mod replay;
mod report;
mod snapshot;
mod staged_snapshot;
mod verify;
mod writer_lock;

use std::fs::File;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Condvar, Mutex};
use quiver_guard::{Pinned, VectorGuard};

use crate::data_file::DataFile;
use crate::element::Element;
use crate::error::{Error, Result};
use crate::format::header::StoreShape;
use crate::index::Index;
use crate::io::Io;
use crate::metrics::{Counters, Metrics};
use crate::options::{Durability, StoreOptions};

pub use changes::{Change, ChangeFeed, Changes};
pub use reader::{RefreshOutcome, VectorReader};
pub use report::{RecoveryReport, SnapshotOutcome, TornTail};
pub use snapshot::{Snapshot, SnapshotIter, SnapshotRange};
pub use verify::{Problem, VerifyReport};

pub use commit::MAX_BATCH_BYTES;
use commit::{CommitState, Writer};
pub use compaction::{Compaction, Headroom, SwitchOutcome};
use poison::Poison;
use read_path::ReadPath;
use writer_lock::{WriterGauges, WriterLock};

/// An embedded, mmap-backed vector store with write-ahead-log durability.
///
/// `VectorStore<T>` is `Send + Sync` and every method takes `&self`: share it
/// between threads with an `Arc` or scoped threads. Reads are zero-copy
/// ([`VectorStore::get`]) and never wait for I/O or for writers; writes
/// serialise internally and share their syncs.
///
/// ```
/// use quiver_storage::VectorStore;
/// let dir = tempfile::tempdir()?;
/// let store: VectorStore<f32> = VectorStore::open(dir.path().join("v"), 3)?;
/// store.store(7, &[1.0, 2.0, 3.0])?;
/// assert_eq!(store.get(7).as_deref(), Some(&[1.0, 2.0, 3.0][..]));
/// assert!(store.delete(7)?);
/// assert!(store.get(7).is_none());
/// store.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct VectorStore<T: Element> {
    dir: PathBuf,
    shape: StoreShape,
    options: StoreOptions,
    io: Io,
    /// The current generation (data file + index), which compaction
    /// replaces while guards into the old one keep it alive, and the read
    /// methods shared with `VectorReader`. Its snapshots hold the
    /// directory's writer lock: the directory cannot be opened for writing
    /// again while a view of it lives (its recovery could rewrite slots the
    /// view lends out).
    reads: ReadPath,
    /// Only through `lock_writer` or `lock_writer_unchecked`.
    writer: Mutex<Writer>,
    /// The writer's sizes, published when its lock is released.
    gauges: WriterGauges,
    commit: Mutex<CommitState>,
    commit_done: Condvar,
    /// Notified when the last in-flight `Sync` writer logs its batch while a
    /// new group-commit leader gathers (`CommitState::gathering`).
    batch_logged: Condvar,
    /// The current WAL segment, for a group-commit leader's sync. Replaced
    /// only by a checkpoint, when no batch is pending.
    wal_handle: Mutex<(std::sync::Arc<File>, PathBuf)>,
    /// Whether writes may continue; checked under the lock that serialises
    /// each sync (see `poison`).
    poison: Poison,
    closed: AtomicBool,
    /// Whether the directory has been synced since open (see `DirSync`).
    dir_sync: DirSync,
    /// Set while a [`Compaction`] exists: one at a time.
    compacting: AtomicBool,
    counters: Counters,
    recovery: RecoveryReport,
    _element: PhantomData<fn() -> T>,
}

impl<T: Element> std::fmt::Debug for VectorStore<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorStore")
            .field("dir", &self.dir)
            .field("dimension", &self.shape.dimension)
            .field("element", &self.shape.element)
            .field("durability", &self.options.durability)
            .finish_non_exhaustive()
    }
}

/// One generation: a data file and the index of the records in it.
///
/// The data file is shared with the [`Snapshot`]s taken of it, so its
/// mapping lives until the generation and every snapshot of it are gone.
#[derive(Debug)]
pub(crate) struct Generation {
    pub data: std::sync::Arc<DataFile>,
    pub index: Index,
}

impl<T: Element> VectorStore<T> {
    /// Pins the current generation.
    #[inline]
    pub(crate) fn current(&self) -> Pinned<'_, Generation> {
        self.reads.current()
    }

    /// Opens the store at `path` with default options, creating it if `path`
    /// does not exist (or is an empty directory).
    ///
    /// Opening an existing store with another dimension or element type is
    /// an error that changes nothing on disk.
    pub fn open(path: impl AsRef<Path>, dimension: usize) -> Result<Self> {
        StoreOptions::new(dimension).open(path)
    }

    /// The number of elements in every vector.
    pub fn dimension(&self) -> usize {
        self.shape.dimension as usize
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The durability level the store was opened with.
    pub fn durability(&self) -> Durability {
        self.options.durability
    }

    /// A zero-copy view of vector `id`, or `None` if it is absent.
    ///
    /// The guard borrows the store, never blocks a writer, and its contents
    /// never change while it is held, even if `id` is overwritten or deleted.
    #[inline]
    pub fn get(&self, id: u64) -> Option<VectorGuard<'_, T>> {
        self.reads.get(id)
    }

    /// Calls `f` with every live vector, in file order, zero-copy — the
    /// fast way to scan (an exact search, an export). The set of vectors is
    /// the one live when the call starts (one consistent snapshot of the
    /// index); writers are not blocked, and what they write meanwhile is
    /// not seen. The generation is pinned once for the whole scan, and file
    /// order lets the kernel read ahead.
    ///
    /// ```
    /// use quiver_storage::VectorStore;
    /// let dir = tempfile::tempdir()?;
    /// let store: VectorStore<f32> = VectorStore::open(dir.path().join("v"), 2)?;
    /// store.store_batch(&[(1, &[1.0, 0.0][..]), (2, &[0.0, 2.0][..])])?;
    /// let query = [1.0, 1.0];
    /// let mut best = (0, f32::MIN);
    /// store.for_each(|id, v| {
    ///     let score: f32 = v.iter().zip(&query).map(|(a, b)| a * b).sum();
    ///     if score > best.1 {
    ///         best = (id, score);
    ///     }
    /// });
    /// assert_eq!(best, (2, 2.0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn for_each(&self, f: impl FnMut(u64, &[T])) {
        self.reads.for_each(f)
    }

    /// A copy of vector `id` (one allocation, one copy), or `None`.
    pub fn retrieve(&self, id: u64) -> Option<Vec<T>> {
        self.get(id).map(|g| g.to_vec())
    }

    /// Whether `id` is present.
    pub fn contains(&self, id: u64) -> bool {
        self.reads.contains(id)
    }

    /// The number of vectors, as a consistent snapshot.
    pub fn len(&self) -> usize {
        self.reads.len()
    }

    /// Whether the store holds no vector.
    pub fn is_empty(&self) -> bool {
        self.reads.is_empty()
    }

    /// Every id, unordered, as a consistent snapshot.
    pub fn ids(&self) -> Vec<u64> {
        self.reads.ids()
    }

    /// What the last open found and did (snapshot used or rebuilt, WAL
    /// replayed, torn tail cut).
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Counters, sizes and latency percentiles.
    pub fn metrics(&self) -> Metrics {
        let c = &self.counters;
        let live = self.current().index.len() as u64;
        let record = self.current().data.record_size_bytes();
        // Published by the writer on each release of its lock: reading them
        // never waits behind a checkpoint's or a growth step's syncs.
        let gauges = self.gauges.read();
        let (file_bytes, wal_bytes, slots) = (gauges.allocated_bytes, gauges.wal_bytes, gauges.committed_slots);
        Metrics {
            live_vectors: live,
            vectors_stored: Counters::get(&c.vectors_stored),
            vectors_deleted: Counters::get(&c.vectors_deleted),
            batches_committed: Counters::get(&c.batches_committed),
            wal_syncs: Counters::get(&c.wal_syncs),
            checkpoints: Counters::get(&c.checkpoints),
            checkpoint_failures: Counters::get(&c.checkpoint_failures),
            growth_events: Counters::get(&c.growth_events),
            file_bytes,
            committed_bytes: self.current().data.bytes_for_slots(slots),
            resident_bytes: self.reads.resident_bytes(file_bytes).unwrap_or(0),
            mapped_bytes: self.current().data.mapped_bytes(),
            live_bytes: live * record,
            garbage_bytes: slots.get().saturating_sub(live) * record,
            wal_bytes,
            growth_latency: c.growth_latency.summary(),
            sync_latency: c.sync_latency.summary(),
            commit_latency: c.commit_latency.summary(),
        }
    }

    /// Tells the kernel how the vectors will be read from now on (every
    /// window of the data file, and those of later generations): see
    /// [`AccessPattern`](crate::AccessPattern). A hint; an error means the
    /// kernel refused it, and reads are unaffected.
    pub fn advise(&self, pattern: crate::AccessPattern) -> Result<()> {
        self.reads.advise(pattern)
    }

    /// Asks the kernel to start reading every committed record into memory
    /// in the background (`MADV_WILLNEED`) and returns at once: warm a cold
    /// store before queries arrive. [`StoreOptions::populate`] does it
    /// during open, waiting for the reads.
    pub fn will_need(&self) -> Result<()> {
        self.reads.will_need()
    }

    /// Closes the store: makes every write durable, checkpoints (so the next
    /// open replays nothing) and releases the lock. Dropping a store without
    /// `close` writes buffered frames out without fsync.
    pub fn close(self) -> Result<()> {
        let result = self.flush().and_then(|()| self.checkpoint());
        // On failure the store is not marked closed, so Drop still does its
        // best effort (writing deferred frames out): a failed close never
        // keeps less than dropping the store would have.
        if result.is_ok() {
            self.closed.store(true, Ordering::Release);
        }
        result
    }

    /// Takes the writer lock, then checks that the store may still write.
    /// The check is made with the lock held, after any wait for it: a sync
    /// that failed while this thread waited has poisoned the store by the
    /// time the lock is released to it (see `poison`).
    fn lock_writer(&self) -> Result<WriterLock<'_>> {
        let w = self.lock_writer_unchecked();
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        self.poison.check()?;
        // A failed sync is not retried: a later success would prove nothing
        // about the rename it had to make durable (module docs of `poison`).
        if let Err(e) = self.dir_sync.ensure(&self.io, &self.dir) {
            self.set_poisoned(&e);
            return Err(e);
        }
        Ok(w)
    }

    /// Takes the writer lock without checking poison or syncing the
    /// directory: for work that must
    /// run on a poisoned store too (Drop's best effort, reading state).
    fn lock_writer_unchecked(&self) -> WriterLock<'_> {
        WriterLock::new(self.writer.lock(), &self.gauges, &self.io)
    }

    /// Poisons the store (the first failure is kept for messages) and wakes
    /// every writer waiting for a group commit, so none waits for a sync
    /// that will not come. Taking the commit lock orders this with a
    /// waiter's check-then-wait, so the wake-up cannot be missed.
    fn set_poisoned(&self, why: &Error) {
        let c = self.commit.lock();
        self.poison.set(why);
        drop(c);
        self.commit_done.notify_all();
    }
}

impl<T: Element> Drop for VectorStore<T> {
    fn drop(&mut self) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        // Best effort, documented: write deferred frames out (no fsync) so a
        // clean process exit keeps them; errors have nobody to go to.
        let mut w = self.lock_writer_unchecked();
        let _ = w.wal.write_buffer();
    }
}

/// The store directory's sync, made once per open and only when needed.
///
/// The manifest an open reads may be one whose rename is not yet durable
/// (its writer crashed between the rename and the directory sync). Nothing
/// may depend on it before the directory is synced: no file an older
/// manifest still needs may be removed (`remove_leftovers` syncs first),
/// and no write may be acknowledged (the writer lock syncs before the first
/// one), since after a power cut an older manifest could come back and
/// disown it (a generation switch's new files, say). A store that is only
/// read never pays for the sync, which is what lets a clean open cost the
/// same at any size.
#[derive(Debug, Default)]
pub(super) struct DirSync {
    synced: AtomicBool,
    once: parking_lot::Mutex<()>,
}

impl DirSync {
    /// Syncs `dir` unless that was done since open. On an error the caller
    /// poisons the store: the sync is never retried.
    pub(super) fn ensure(&self, io: &Io, dir: &std::path::Path) -> Result<()> {
        if self.synced.load(Ordering::Acquire) {
            return Ok(());
        }
        let _one = self.once.lock();
        if !self.synced.load(Ordering::Acquire) {
            crate::error::IoContext::context(io.sync_dir(dir), || format!("syncing {}", dir.display()))?;
            self.synced.store(true, Ordering::Release);
        }
        Ok(())
    }
}
