//! `VectorReader<T>`: a read-only follower of a store that a writer (in this
//! process or another) keeps changing — RocksDB's secondary instance, for
//! vectors.
//!
//! A reader takes no lock and never writes, truncates, creates or removes a
//! file. It loads the checkpoint's snapshot, then follows the WAL frame by
//! frame, applying a batch only once its frame is whole and checksum-valid
//! and every record it names is in the data file with the right checksum;
//! anything less (a frame the writer is still appending, a torn tail the
//! writer's recovery has not cut yet) is where it stops until the next
//! [`VectorReader::refresh`]. It leaves segment N for N+1 only if N+1
//! existed before it read N to its end, since the writer starts N+1 only
//! after the last frame of N. A whole frame that does not continue the log
//! (a later LSN, another generation or slot), a segment that is gone, or a
//! generation switch (compaction) makes refresh reload from the newest
//! snapshot, never stop silently; guards into the previous view stay valid
//! until dropped. The rules are in docs/FORMAT.md, "Following the WAL".
//!
//! What makes reading the writer's files sound is the same set of rules the
//! writer follows for its own readers (see the `quiver_guard` docs): records
//! below a committed end are never rewritten, data files never shrink below
//! it, and the reader publishes a slot only after checking its record.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use quiver_guard::VectorGuard;

use super::Generation;
use super::Snapshot;
use super::open::{load_snapshot, rebuild_from_data};
use super::read_path::ReadPath;
use super::replay::index_changes;
use crate::data_file::DataFile;
use crate::element::Element;
use crate::error::{Error, IoContext, Result};
use crate::format::WAL_DIR;
use crate::format::header::StoreShape;
use crate::format::manifest::Manifest;
use crate::format::wal_frame::{Batch, SegmentHeader};
use crate::ids::{self, Lsn, SegmentNo, Slot};
use crate::index::Index;
use crate::io::Io;
use crate::layout::{check_format_header, read_manifest};
use crate::options::StoreOptions;
use crate::wal::frames::{FrameStep, Frames};

/// Where the reader is in the writer's log.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    generation: ids::Generation,
    segment: SegmentNo,
    /// Offset of the next frame; 0 before the segment header was read.
    offset: u64,
    crc: u32,
    next_lsn: u64,
    next_slot: Slot,
}

/// What a [`VectorReader::refresh`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefreshOutcome {
    /// Batches applied from the WAL.
    pub batches_applied: u64,
    /// Whether the view was reloaded from the newest snapshot (after a
    /// generation switch, or a lag past the WAL's grace period).
    pub reloaded: bool,
}

/// A read-only follower of a Quiver store.
///
/// A follower takes no lock and never writes. It reads the store's files,
/// not the writer's memory, and moves only on [`VectorReader::refresh`].
///
/// # What a follower sees
///
/// After a refresh, a follower holds exactly what a crash and reopen of the
/// writer process would recover at that moment if the machine stayed up:
/// every batch whose WAL frame is whole and checksum-valid in the WAL files
/// and whose records check out, in order, up to the first frame that is not.
/// That is not the same as what the writer has acknowledged:
///
/// - At [`Durability::Sync`](crate::Durability::Sync) a frame is written
///   before the group's `fdatasync`, so a follower may show a batch whose
///   sync is still in flight, or whose sync failed (the writer's call then
///   returned the error and the writer is poisoned). It keeps showing it;
///   a reopen of the writer recovers the same batch, so the two agree.
/// - At [`Durability::Buffered`](crate::Durability::Buffered) a batch
///   appears once its frame is written, just before the call returns.
/// - At [`Durability::Deferred`](crate::Durability::Deferred) a batch
///   appears only once the writer's buffer holding its frame is written
///   (when it fills, or at `flush`, `checkpoint`, `close` or drop).
///
/// So a follower's view is never a promise of durability: take the
/// writer's `Ok` (at `Sync`, or from `flush`) as the acknowledgement.
/// docs/DURABILITY.md, "What a follower sees", has the details.
///
/// ```
/// use quiver_storage::{StoreOptions, VectorReader, VectorStore};
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("v");
/// let writer: VectorStore<f32> = VectorStore::open(&path, 2)?;
/// writer.store(1, &[1.0, 2.0])?;
/// let reader: VectorReader<f32> = StoreOptions::new(2).open_reader(&path)?;
/// assert_eq!(reader.retrieve(1), Some(vec![1.0, 2.0]));
/// writer.store(2, &[3.0, 4.0])?;
/// assert!(reader.get(2).is_none()); // not yet: a reader moves on refresh
/// reader.refresh()?;
/// assert_eq!(reader.retrieve(2), Some(vec![3.0, 4.0]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct VectorReader<T: Element> {
    dir: PathBuf,
    shape: StoreShape,
    window_bytes: usize,
    reads: ReadPath,
    cursor: Mutex<Cursor>,
    _element: PhantomData<fn() -> T>,
}

impl<T: Element> std::fmt::Debug for VectorReader<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorReader").field("dir", &self.dir).field("shape", &self.shape).finish_non_exhaustive()
    }
}

impl StoreOptions {
    /// Opens a read-only follower of the existing store at `path`: no lock,
    /// no writes; [`VectorReader::refresh`] catches up with the writer.
    pub fn open_reader<T: Element>(&self, path: impl AsRef<Path>) -> Result<VectorReader<T>> {
        VectorReader::open_with(path.as_ref(), self)
    }
}

impl<T: Element> VectorReader<T> {
    fn open_with(dir: &Path, options: &StoreOptions) -> Result<Self> {
        let dimension = options.validate()?;
        let shape = StoreShape { dimension, element: T::TYPE };
        if !dir.is_dir() {
            return Err(Error::NotAStore { path: dir.into(), reason: "it is not an existing directory".into() });
        }
        check_format_header(dir, shape)?;
        let window_bytes = options.map_window_bytes as usize;
        let (generation, cursor, _) = load(dir, shape, window_bytes)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            shape,
            window_bytes,
            reads: ReadPath::new(generation, None, options),
            cursor: Mutex::new(cursor),
            _element: PhantomData,
        })
    }

    /// The number of elements in every vector.
    pub fn dimension(&self) -> usize {
        self.shape.dimension as usize
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A zero-copy view of vector `id` as of the last refresh.
    #[inline]
    pub fn get(&self, id: u64) -> Option<VectorGuard<'_, T>> {
        self.reads.get(id)
    }

    /// Calls `f` with every vector as of the last refresh, in file order,
    /// zero-copy (see [`VectorStore::for_each`](super::VectorStore::for_each)).
    pub fn for_each(&self, f: impl FnMut(u64, &[T])) {
        self.reads.for_each(f)
    }

    /// A copy of vector `id`.
    pub fn retrieve(&self, id: u64) -> Option<Vec<T>> {
        self.get(id).map(|g| g.to_vec())
    }

    /// Whether `id` is present.
    pub fn contains(&self, id: u64) -> bool {
        self.reads.contains(id)
    }

    /// The number of vectors.
    pub fn len(&self) -> usize {
        self.reads.len()
    }

    /// Whether there is no vector.
    pub fn is_empty(&self) -> bool {
        self.reads.is_empty()
    }

    /// Every id, unordered.
    pub fn ids(&self) -> Vec<u64> {
        self.reads.ids()
    }

    /// An immutable read view of what this reader has applied: every batch
    /// up to [`Snapshot::lsn`]. A later [`refresh`](Self::refresh) does not
    /// change it; take a new one after.
    pub fn snapshot(&self) -> Snapshot<T> {
        self.reads.snapshot()
    }

    /// [`VectorStore::advise`](super::VectorStore::advise) for this
    /// follower's mappings.
    pub fn advise(&self, pattern: crate::AccessPattern) -> Result<()> {
        self.reads.advise(pattern)
    }

    /// [`VectorStore::will_need`](super::VectorStore::will_need) for this
    /// follower's mappings.
    pub fn will_need(&self) -> Result<()> {
        self.reads.will_need()
    }

    /// Catches up with the writer: applies every batch logged since the last
    /// refresh, or reloads from the newest snapshot when the writer switched
    /// generations, removed the segment this reader was in, or the log does
    /// not continue where this reader stopped. Readers and guards are never
    /// blocked; a batch becomes visible atomically.
    pub fn refresh(&self) -> Result<RefreshOutcome> {
        let mut cursor = self.cursor.lock();
        let manifest = read_manifest(&self.dir)?;
        if ids::Generation::from(manifest.generation) == cursor.generation {
            let g = self.reads.current();
            let (batches, end) = follow(&self.dir, &g, &mut cursor)?;
            if end == FollowEnd::CaughtUp {
                return Ok(RefreshOutcome { batches_applied: batches, reloaded: false });
            }
            // Lost: this view cannot continue, but the newest snapshot can.
            // Stopping here instead would leave the reader silently behind
            // on every later refresh.
        }
        let (generation, fresh, batches) = load(&self.dir, self.shape, self.window_bytes)?;
        // The old view lives on for guards that pin it.
        drop(self.reads.replace(generation));
        *cursor = fresh;
        Ok(RefreshOutcome { batches_applied: batches, reloaded: true })
    }
}

/// How many times [`load`] starts over when the writer checkpoints while a
/// view is being loaded.
const LOAD_ATTEMPTS: u32 = 5;

/// Loads the newest checkpoint and follows the WAL after it. Starts over
/// when a checkpoint or generation switch replaces what the manifest named
/// while it was being read.
fn load(dir: &Path, shape: StoreShape, window_bytes: usize) -> Result<(Generation, Cursor, u64)> {
    let io = Io::new(None);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let manifest = read_manifest(dir)?;
        let data = DataFile::open(&io, dir, ids::Generation::from(manifest.generation), shape, window_bytes, false)?;
        let data = std::sync::Arc::new(data);
        let mut index = match load_snapshot(dir, &manifest, &data) {
            Ok(index) => index,
            // The writer may have checkpointed (and removed this snapshot)
            // since the manifest was read: look again before rebuilding.
            Err(_) if attempts < LOAD_ATTEMPTS && read_manifest(dir)? != manifest => continue,
            Err(_) if manifest.has_snapshot || manifest.checkpoint_lsn > 0 => rebuild_from_data(&data, &manifest)?,
            Err(_) => Index::default(),
        };
        // As the writer's recovery does: never publish a slot past the end
        // of the file (a read of it would be SIGBUS), nor an impossible one.
        data.publish_found(Slot::from(manifest.checkpoint_end_slot))?;
        index.set_position(Lsn::from(manifest.checkpoint_lsn), Slot::from(manifest.checkpoint_end_slot));
        let generation = Generation { data, index };
        let mut cursor = cursor_at(&manifest);
        let (batches, followed) = follow(dir, &generation, &mut cursor)?;
        // A log that does not continue from a fresh checkpoint almost always
        // means the writer checkpointed or switched generations meanwhile
        // (the segment is gone, or holds the next generation's batches):
        // load again. With the manifest unchanged, the view stops where the
        // writer's own recovery would cut the log (docs/FORMAT.md,
        // "Following the WAL"), and the next refresh looks again.
        if followed == FollowEnd::Lost && attempts < LOAD_ATTEMPTS && read_manifest(dir)? != manifest {
            continue;
        }
        return Ok((generation, cursor, batches));
    }
}

fn cursor_at(m: &Manifest) -> Cursor {
    Cursor {
        generation: ids::Generation::from(m.generation),
        segment: SegmentNo::from(m.wal_segment),
        offset: 0,
        crc: 0,
        next_lsn: m.checkpoint_lsn + 1,
        next_slot: Slot::from(m.checkpoint_end_slot),
    }
}

/// How a [`follow`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FollowEnd {
    /// Every batch the writer has finished logging, as far as this reader
    /// can verify it, is applied; the next refresh goes on from the cursor.
    CaughtUp,
    /// The log does not continue at the cursor: its segment is gone or now
    /// ends before the cursor, or the next whole frame carries a later LSN,
    /// another generation or another slot than the cursor expects. Only a
    /// reload from the newest snapshot can go on.
    Lost,
}

/// Applies every whole, verified batch from `cursor` on, as far as the
/// writer has written the log (docs/FORMAT.md, "Following the WAL").
/// Returns the number of batches applied and how the walk ended.
fn follow(dir: &Path, g: &Generation, cursor: &mut Cursor) -> Result<(u64, FollowEnd)> {
    let wal_dir = dir.join(WAL_DIR);
    let payload_bytes = g.data.payload_bytes();
    let mut applied = 0;
    loop {
        let path = wal_dir.join(cursor.segment.file_name());
        // Past the last possible segment number there is no next one: the
        // writer refuses to rotate there, so this segment is never finished.
        let next_segment = cursor.segment.next();
        let next = next_segment.map(|n| wal_dir.join(n.file_name()));
        // The writer creates segment N+1 only after every frame of N is in
        // the file, so N is finished if N+1 existed *before* N is read.
        // Checked after the read instead, N+1 may have appeared after frames
        // that the read missed were appended to N, and moving on would skip
        // them.
        let finished = segment_exists(next.as_deref())?;
        let Some(bytes) = read_from(&path, cursor.offset)? else {
            return Ok((applied, FollowEnd::Lost));
        };
        #[cfg(test)]
        hooks::after_segment_read(cursor.segment.get());
        // `bytes` starts at `cursor.offset`; `at` is the position in it.
        let mut at = 0;
        if cursor.offset == 0 {
            match SegmentHeader::decode_from(&bytes) {
                Ok((h, seed)) if h.segment == cursor.segment.get() => {
                    at = SegmentHeader::ENCODED_LEN;
                    cursor.offset = at as u64;
                    cursor.crc = seed;
                }
                // Being created: try again at the next refresh.
                _ => return Ok((applied, FollowEnd::CaughtUp)),
            }
        }
        // `cursor.offset` is where `bytes` starts in the file, plus `at`.
        let base = cursor.offset - at as u64;
        let mut frames = Frames::new(&bytes, at, cursor.crc, payload_bytes);
        loop {
            let step = frames.next_step().map_err(|e| e.into_error(&path, base))?;
            match step {
                FrameStep::Batch(batch) => {
                    match apply(g, &batch, cursor)? {
                        Applied::Yes => applied += 1,
                        Applied::Already => {}
                        Applied::NotYet => return Ok((applied, FollowEnd::CaughtUp)),
                        Applied::Gap => return Ok((applied, FollowEnd::Lost)),
                    }
                    frames.accept();
                    cursor.offset = base + frames.position() as u64;
                    cursor.crc = frames.crc();
                }
                // A frame the writer is still appending, or a torn tail its
                // recovery has not cut yet: look again at the next refresh.
                FrameStep::Torn(_) => return Ok((applied, FollowEnd::CaughtUp)),
                FrameStep::End => break,
            }
        }
        if !finished {
            if !segment_exists(next.as_deref())? {
                return Ok((applied, FollowEnd::CaughtUp));
            }
            // N+1 appeared while N was being read: N's end is final now, so
            // read it once more from the cursor before moving on.
            continue;
        }
        cursor.segment = next_segment.expect("a finished segment has a successor");
        cursor.offset = 0;
    }
}

/// Whether the segment at `path` exists (`None`: there can be no such
/// segment).
fn segment_exists(path: Option<&Path>) -> Result<bool> {
    let Some(path) = path else { return Ok(false) };
    path.try_exists().context(|| format!("looking for {}", path.display()))
}

/// The bytes of the segment at `path` from offset `from` to its current
/// end, or `None` if the segment is gone or now ends before `from` (the log
/// was cut below what this reader applied). Reading from the cursor, not
/// from the start, keeps a refresh's cost proportional to what is new.
fn read_from(path: &Path, from: u64) -> Result<Option<Vec<u8>>> {
    let what = || format!("reading {}", path.display());
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(what(), e)),
    };
    let len_bytes = file.metadata().context(what)?.len();
    if len_bytes < from {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity((len_bytes - from) as usize);
    file.seek(SeekFrom::Start(from)).context(what)?;
    file.read_to_end(&mut bytes).context(what)?;
    Ok(Some(bytes))
}

/// What [`apply`] did with one batch.
enum Applied {
    /// Applied; the cursor moved past it.
    Yes,
    /// Its LSN is below the cursor's: this view already holds it.
    Already,
    /// It continues the log, but its records are not (yet) all in the data
    /// file with the right checksums: the reader stops before it.
    NotYet,
    /// A later LSN, another generation or another slot than the cursor
    /// expects. A whole, checksum-chained frame is never a half-written
    /// one, so the log continues somewhere this view cannot follow.
    Gap,
}

/// Applies one batch if it continues the log and its records are in the
/// data file.
fn apply(g: &Generation, b: &Batch<'_>, cursor: &mut Cursor) -> Result<Applied> {
    if b.lsn < cursor.next_lsn {
        return Ok(Applied::Already);
    }
    let first_slot = Slot::from(b.first_slot);
    if b.lsn != cursor.next_lsn
        || ids::Generation::from(b.generation) != cursor.generation
        || first_slot != cursor.next_slot
    {
        return Ok(Applied::Gap);
    }
    let held = g
        .data
        .holds_batch(first_slot, &b.entries, b.lsn)
        .context(|| format!("reading records of {}", g.data.path().display()))?;
    if !held {
        return Ok(Applied::NotYet);
    }
    let end_slot = first_slot + b.entries.len() as u64;
    // Publish before indexing: a reader must never find a slot it cannot map.
    g.data.ensure_mapped(end_slot)?;
    g.data.publish(end_slot);
    g.index.apply_batch(Lsn::from(b.lsn), end_slot, &index_changes(b));
    cursor.next_lsn += 1;
    cursor.next_slot = end_slot;
    Ok(Applied::Yes)
}

/// A test-only hook into [`follow`], so unit tests can make the writer act at
/// the one instant a race needs (right after a segment was read) instead of
/// hoping a scheduler produces it. It is compiled only into this crate's unit
/// tests and is no part of the public API.
#[cfg(test)]
pub(super) mod hooks {
    use std::cell::RefCell;

    type Hook = Box<dyn FnOnce(u64)>;

    thread_local! {
        static AFTER_SEGMENT_READ: RefCell<Option<Hook>> = const { RefCell::new(None) };
    }

    /// Runs `hook` once, the next time `follow` on this thread has read a
    /// segment's bytes, passing the segment's number.
    pub(crate) fn once_after_segment_read(hook: impl FnOnce(u64) + 'static) {
        AFTER_SEGMENT_READ.with(|h| *h.borrow_mut() = Some(Box::new(hook)));
    }

    pub(super) fn after_segment_read(segment: u64) {
        // Taken out before it runs, so the hook may use the reader itself.
        if let Some(hook) = AFTER_SEGMENT_READ.with(|h| h.borrow_mut().take()) {
            hook(segment);
        }
    }
}

#[cfg(test)]
mod tests;
