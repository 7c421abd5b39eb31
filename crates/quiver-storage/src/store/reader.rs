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
//! [`VectorReader::refresh`]. When the writer has switched generations
//! (compaction) or removed the segment the reader was in (it lagged more
//! than a checkpoint's grace period), refresh reloads from the newest
//! snapshot; guards into the previous view stay valid until dropped.
//!
//! What makes reading the writer's files sound is the same set of rules the
//! writer follows for its own readers (see the `quiver_guard` docs): records
//! below a committed end are never rewritten, data files never shrink below
//! it, and the reader publishes a slot only after checking its record.

use std::fs;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use quiver_guard::{GenerationCell, VectorGuard};

use super::Generation;
use super::open::{load_snapshot, rebuild_from_data};
use crate::data_file::DataFile;
use crate::element::Element;
use crate::error::{Error, IoContext, Result};
use crate::format::header::StoreShape;
use crate::format::manifest::Manifest;
use crate::format::wal_frame::{Batch, FrameRead, SegmentHeader, decode_batch, next_frame};
use crate::format::{WAL_DIR, wal_segment_name};
use crate::index::Index;
use crate::io::Io;
use crate::layout::{check_format_header, read_manifest};
use crate::options::StoreOptions;

/// Where the reader is in the writer's log.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    generation: u32,
    segment: u64,
    /// Offset of the next frame; 0 before the segment header was read.
    offset: u64,
    crc: u32,
    next_lsn: u64,
    next_slot: u64,
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
    gens: GenerationCell<Generation>,
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
            gens: GenerationCell::new(generation),
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
        self.gens.pin().into_guard(|g| {
            let slot = g.index.get(id)?;
            g.data.payload::<T>(slot)
        })
    }

    /// A copy of vector `id`.
    pub fn retrieve(&self, id: u64) -> Option<Vec<T>> {
        self.get(id).map(|g| g.to_vec())
    }

    /// Whether `id` is present.
    pub fn contains(&self, id: u64) -> bool {
        self.gens.pin().index.contains(id)
    }

    /// The number of vectors.
    pub fn len(&self) -> usize {
        self.gens.pin().index.len()
    }

    /// Whether there is no vector.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every id, unordered.
    pub fn ids(&self) -> Vec<u64> {
        self.gens.pin().index.ids()
    }

    /// Catches up with the writer: applies every batch logged since the last
    /// refresh, or reloads from the newest snapshot when the writer switched
    /// generations or removed the segment this reader was in. Readers and
    /// guards are never blocked; a batch becomes visible atomically.
    pub fn refresh(&self) -> Result<RefreshOutcome> {
        let mut cursor = self.cursor.lock();
        let manifest = read_manifest(&self.dir)?;
        let segment_gone = !self.dir.join(WAL_DIR).join(wal_segment_name(cursor.segment)).exists();
        if manifest.generation != cursor.generation || segment_gone {
            let (generation, fresh, batches) = load(&self.dir, self.shape, self.window_bytes)?;
            // The old view lives on for guards that pin it.
            drop(self.gens.replace(generation));
            *cursor = fresh;
            return Ok(RefreshOutcome { batches_applied: batches, reloaded: true });
        }
        let g = self.gens.pin();
        let batches = follow(&self.dir, &g, &mut cursor)?;
        Ok(RefreshOutcome { batches_applied: batches, reloaded: false })
    }
}

/// Loads the newest checkpoint and follows the WAL after it. Retries when a
/// checkpoint replaces the snapshot between reading the manifest and it.
fn load(dir: &Path, shape: StoreShape, window_bytes: usize) -> Result<(Generation, Cursor, u64)> {
    let io = Io::new(None);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let manifest = read_manifest(dir)?;
        let data = DataFile::open(&io, dir, manifest.generation, shape, window_bytes, false)?;
        let index = match load_snapshot(dir, &manifest) {
            Ok(index) => index,
            // The writer may have checkpointed (and removed this snapshot)
            // since the manifest was read: look again before rebuilding.
            Err(_) if attempts < 5 && read_manifest(dir)? != manifest => continue,
            Err(_) if manifest.has_snapshot || manifest.checkpoint_lsn > 0 => rebuild_from_data(&data, &manifest)?,
            Err(_) => Index::default(),
        };
        // As the writer's recovery does: never publish a slot past the end
        // of the file (a read of it would be SIGBUS), nor an impossible one.
        let end = manifest.checkpoint_end_slot;
        let max_slots =
            (crate::format::MAX_DATA_FILE_BYTES - crate::format::DATA_HEADER_BYTES) / data.record_size_bytes();
        let file_bytes = data.len_bytes()?;
        if end > max_slots || file_bytes < data.bytes_for_slots(end) {
            return Err(Error::Corrupted {
                path: data.path().into(),
                offset: file_bytes,
                reason: format!("the file ends before the {end} records its checkpoint covers"),
            });
        }
        data.ensure_mapped(end)?;
        data.publish(end);
        let generation = Generation { data, index };
        let mut cursor = cursor_at(&manifest);
        let batches = follow(dir, &generation, &mut cursor)?;
        return Ok((generation, cursor, batches));
    }
}

fn cursor_at(m: &Manifest) -> Cursor {
    Cursor {
        generation: m.generation,
        segment: m.wal_segment,
        offset: 0,
        crc: 0,
        next_lsn: m.checkpoint_lsn + 1,
        next_slot: m.checkpoint_end_slot,
    }
}

/// Applies every whole, verified batch from `cursor` on; stops quietly where
/// the log (as far as the writer has written it) ends.
fn follow(dir: &Path, g: &Generation, cursor: &mut Cursor) -> Result<u64> {
    let wal_dir = dir.join(WAL_DIR);
    let payload_bytes = g.data.payload_bytes();
    let mut applied = 0;
    loop {
        let path = wal_dir.join(wal_segment_name(cursor.segment));
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(applied),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        if cursor.offset == 0 {
            match SegmentHeader::decode_from(&bytes) {
                Ok((h, seed)) if h.segment == cursor.segment => {
                    cursor.offset = SegmentHeader::ENCODED_LEN as u64;
                    cursor.crc = seed;
                }
                // Being created: try again at the next refresh.
                _ => return Ok(applied),
            }
        }
        loop {
            match next_frame(&bytes, cursor.offset as usize, cursor.crc) {
                FrameRead::Frame { payload, crc, next_offset } => {
                    let Ok(batch) = decode_batch(payload, payload_bytes) else { return Ok(applied) };
                    if !apply(g, &batch, cursor)? {
                        return Ok(applied);
                    }
                    cursor.offset = next_offset as u64;
                    cursor.crc = crc;
                    applied += 1;
                }
                FrameRead::Invalid(_) => return Ok(applied),
                FrameRead::End => break,
            }
        }
        // The end of this segment: go on if the writer has started the next.
        let next = wal_dir.join(wal_segment_name(cursor.segment + 1));
        if !next.exists() {
            return Ok(applied);
        }
        cursor.segment += 1;
        cursor.offset = 0;
    }
}

/// Applies one batch if it continues the log and its records are in the
/// data file; returns whether it did.
fn apply(g: &Generation, b: &Batch<'_>, cursor: &mut Cursor) -> Result<bool> {
    if b.lsn != cursor.next_lsn || b.generation != cursor.generation || b.first_slot != cursor.next_slot {
        return Ok(false);
    }
    let held = g
        .data
        .holds_batch(b.first_slot, &b.entries, b.lsn)
        .context(|| format!("reading records of {}", g.data.path().display()))?;
    if !held {
        return Ok(false);
    }
    let end_slot = b.first_slot + b.entries.len() as u64;
    // Publish before indexing: a reader must never find a slot it cannot map.
    g.data.ensure_mapped(end_slot)?;
    g.data.publish(end_slot);
    g.index.apply(&b.index_changes());
    cursor.next_lsn += 1;
    cursor.next_slot = end_slot;
    Ok(true)
}
