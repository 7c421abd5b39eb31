//! Compaction's storage half: one session, borrowed from the store, that
//! builds the next generation and switches the store to it. The
//! `quiver-compaction` crate decides when and how much; this module owns
//! every file and every piece of state a compaction touches.
//!
//! Steps (docs/FORMAT.md, "Generation switch"):
//! 1. [`VectorStore::begin_compaction`], under the writer lock: the live
//!    `(id, slot)` set and the committed end (no I/O); then, without the
//!    lock, `data-<g+1>.qvd` created and `fallocate`d to its final size, so
//!    a full disk fails before anything is copied.
//! 2. [`Compaction::copy_live`] and [`Compaction::catch_up`], without any
//!    lock: the live records copied in file order, then every record
//!    committed since copied verbatim (puts and tombstones alike), and the
//!    new generation's index built as they go.
//! 3. [`Compaction::commit`]: a last catch-up, `fdatasync` of the new file
//!    and the snapshot staged (written and synced) — still without the lock;
//!    then, with the writer lock (the only pause, whose work depends on what
//!    was written since, not on the store's size): flush, a final catch-up,
//!    the staged snapshot finished and renamed, a new WAL segment, the
//!    manifest naming generation `g+1` (the commit point), and the switch in
//!    memory. The old data file is unmapped and unlinked after the lock is
//!    released; a guard into it keeps its mapping alive until dropped.
//!
//! A failure before the manifest rename removes the new files and leaves the
//! old generation in use; a failure of the rename poisons the store (either
//! manifest may be on disk); open removes the files of whichever generation
//! the manifest does not name. Dropping a session before `commit` removes
//! its files.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::commit::Writer;
use super::staged_snapshot::StagedSnapshot;
use super::{Generation, VectorStore};
use crate::data_file::{DataFile, ScanEnd, read_records_into};
use crate::element::Element;
use crate::error::{Error, IoContext, Result};
use crate::format::record::RecordKind;
use crate::ids::{self, Lsn, Slot};
use crate::index::{Change, Index};

/// Records gathered before each write to the new file.
const WRITE_CHUNK_RECORDS: usize = 256;

/// Room left in the next generation's data file beyond its live records
/// (and beyond the slots [`VectorStore::reserve_capacity`] promised): a
/// fraction of the live records, but at least `min_bytes`.
///
/// ```
/// use quiver_storage::Headroom;
/// let h = Headroom::new(0.25, 1 << 20);
/// assert_eq!((h.ratio(), h.min_bytes()), (0.25, 1 << 20));
/// assert_eq!(Headroom::default(), Headroom::new(1.0 / 16.0, 64 << 10));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Headroom {
    ratio: f64,
    min_bytes: u64,
}

impl Headroom {
    /// Room for `ratio` times the live records, and at least `min_bytes`. A
    /// negative or non-finite `ratio` counts as 0.
    pub fn new(ratio: f64, min_bytes: u64) -> Self {
        let ratio = if ratio.is_finite() && ratio > 0.0 { ratio } else { 0.0 };
        Self { ratio, min_bytes }
    }

    /// The fraction of the live records added as room.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// The least room, in bytes.
    pub fn min_bytes(&self) -> u64 {
        self.min_bytes
    }

    /// Slots of room for `live` records of `record_bytes` each.
    fn slots(&self, live: u64, record_bytes: u64) -> u64 {
        // `as` saturates: a huge ratio asks for a huge file, which the
        // data file's size limit then refuses.
        ((live as f64 * self.ratio) as u64).max(self.min_bytes / record_bytes)
    }
}

impl Default for Headroom {
    /// 1/16 of the live records, at least 64 KiB.
    fn default() -> Self {
        Self::new(1.0 / 16.0, 64 << 10)
    }
}

/// What a compaction's switch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SwitchOutcome {
    /// The new generation.
    pub generation: u32,
    /// Records the old data file held when the switch happened.
    pub records_before: u64,
    /// Records in the new data file.
    pub records_after: u64,
    /// Allocated bytes of the old data file.
    pub bytes_before: u64,
    /// Allocated bytes of the new data file.
    pub bytes_after: u64,
    /// Bytes of the records in the new data file (all of them were copied).
    pub bytes_copied: u64,
    /// Records copied by the final catch-up, under the writer lock.
    pub caught_up_in_pause: u64,
    /// How long writers were paused.
    pub writer_pause: Duration,
}

/// One compaction of a store: the next generation being filled. Created by
/// [`VectorStore::begin_compaction`]; it borrows the store, so it can only
/// ever be applied to the store it was taken from.
///
/// ```
/// use quiver_storage::{Headroom, VectorStore};
/// let dir = tempfile::tempdir()?;
/// let store: VectorStore<f32> = VectorStore::open(dir.path().join("v"), 2)?;
/// for id in 0..100 {
///     store.store(id, &[id as f32, 0.0])?;
/// }
/// for id in 0..90 {
///     store.delete(id)?;
/// }
/// let mut compaction = store.begin_compaction(Headroom::default())?;
/// while compaction.copy_live(4096)? > 0 {}
/// store.store(7, &[7.0, 7.0])?; // writers go on; catch-up carries this over
/// compaction.catch_up()?;
/// let outcome = compaction.commit()?;
/// assert_eq!(outcome.records_after, 11);
/// assert_eq!(store.retrieve(7), Some(vec![7.0, 7.0]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Compaction<'s, T: Element> {
    store: &'s VectorStore<T>,
    /// Taken out only by the switch, after the manifest names it.
    data: Option<DataFile>,
    generation: ids::Generation,
    /// The old generation's live `(id, slot)` set, in slot order (freed
    /// once copied), how many it held and how many of it are copied.
    live: Vec<(u64, Slot)>,
    live_total: usize,
    live_copied: usize,
    /// Set when a step failed: what it left half done (records read and not
    /// written, an index behind the file) must never be committed.
    failed: bool,
    /// The new generation's index, as of the records copied so far.
    index: Index,
    /// Old-file slot up to which the tail has been consumed.
    source_end_slot: Slot,
    /// New-file slot after the last record written.
    next_slot: Slot,
    allocated_bytes: u64,
    /// Records read and not yet written, and the index changes they imply.
    pending: Vec<u8>,
    pending_changes: Vec<Change>,
    /// Set once the manifest names this generation; until then, dropping
    /// the session removes the new file, so a failed or abandoned
    /// compaction never keeps the disk full.
    committed: bool,
    /// The store's one-compaction-at-a-time flag, given back on drop.
    _token: Token<'s>,
}

/// The store's "a compaction is running" flag, held by one [`Compaction`].
#[derive(Debug)]
struct Token<'s>(&'s AtomicBool);

impl Drop for Token<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl<T: Element> Drop for Compaction<'_, T> {
    fn drop(&mut self) {
        if !self.committed
            && let Some(data) = &self.data
        {
            let _ = self.store.io.remove_file(data.path());
        }
    }
}

impl<T: Element> VectorStore<T> {
    /// Begins a compaction: takes the live set (under the writer lock, after
    /// every logged batch became visible) and creates the next generation's
    /// data file with room for the live records, the slots
    /// [`reserve_capacity`](Self::reserve_capacity) promised, and
    /// `headroom`, reserved up front so a full disk fails here.
    ///
    /// One compaction at a time: while a [`Compaction`] exists, another
    /// `begin_compaction` fails with [`Error::CompactionInProgress`] and
    /// touches nothing.
    pub fn begin_compaction(&self, headroom: Headroom) -> Result<Compaction<'_, T>> {
        self.poison.check()?;
        if self.compacting.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return Err(Error::CompactionInProgress);
        }
        // From here on the flag is ours; the token gives it back on every path.
        let token = Token(&self.compacting);
        let (mut live, live_lsn, end_slot, reserved_slots) = {
            let w = self.lock_writer()?;
            if self.options.durability == crate::Durability::Sync {
                let written = self.commit.lock().written_lsn;
                self.wait_durable(written, false)?;
            }
            let live = self.current().index.entries();
            // Listing checked every block of the snapshot: ids it lost (a
            // damaged block the data file could not rebuild) must not be
            // made permanent by a generation built without them.
            if let Some(loss) = self.current().index.base_loss() {
                return Err(Error::Corrupted { path: self.dir.clone(), offset: 0, reason: loss.to_string() });
            }
            (live, w.append.last_lsn(), w.append.next_slot(), w.append.reserved_slots_ahead())
        };
        live.sort_unstable_by_key(|&(_, slot)| slot);
        let current = self.current();
        let from_generation = current.data.generation();
        let record = current.data.record_size_bytes();
        drop(current);
        let generation = from_generation.next().ok_or(Error::LimitExceeded {
            what: "a generation number",
            actual: u64::from(u32::MAX),
            limit: u64::from(u32::MAX) - 1,
        })?;
        let live_count = live.len() as u64;
        let capacity_slots =
            live_count.saturating_add(reserved_slots).saturating_add(headroom.slots(live_count, record));
        // The live copy drops the overwritten and deleted records of the
        // batches up to `live_lsn`; every later one is copied verbatim, so
        // the new file's change feed is whole after `live_lsn`.
        let data = self.create_next_data_file(generation, live_lsn, capacity_slots, record)?;
        let allocated_bytes = data.bytes_for_slots(Slot::from(capacity_slots));
        Ok(Compaction {
            store: self,
            data: Some(data),
            generation,
            index: Index::with_capacity(live.len()),
            live_total: live.len(),
            live,
            live_copied: 0,
            failed: false,
            source_end_slot: end_slot,
            next_slot: Slot::ZERO,
            allocated_bytes,
            pending: Vec::new(),
            pending_changes: Vec::new(),
            committed: false,
            _token: token,
        })
    }

    /// Creates and maps `data-<generation>.qvd` with room for
    /// `capacity_slots` records; on failure nothing is left behind.
    fn create_next_data_file(
        &self,
        generation: ids::Generation,
        changes_after: Lsn,
        capacity_slots: u64,
        record: u64,
    ) -> Result<DataFile> {
        let path = self.dir.join(generation.data_file_name());
        // A leftover from a failed attempt is never named by the manifest.
        if path.exists() {
            self.io.remove_file(&path).context(|| format!("removing the leftover {}", path.display()))?;
        }
        let bytes = capacity_slots
            .checked_mul(record)
            .and_then(|b| b.checked_add(crate::format::DATA_HEADER_BYTES))
            .filter(|&b| b <= crate::format::MAX_DATA_FILE_BYTES)
            .ok_or(Error::LimitExceeded {
                what: "the next generation's data file, in bytes",
                actual: capacity_slots.saturating_mul(record),
                limit: crate::format::MAX_DATA_FILE_BYTES,
            })?;
        DataFile::create(&self.io, &self.dir, generation, changes_after, self.shape, bytes)
            .and_then(|()| {
                DataFile::open(
                    &self.io,
                    &self.dir,
                    generation,
                    self.shape,
                    self.options.map_window_bytes as usize,
                    true,
                )
            })
            .inspect_err(|_| {
                let _ = self.io.remove_file(&path);
            })
    }
}

impl<T: Element> Compaction<'_, T> {
    /// Live records the session started with: what [`copy_live`](Self::copy_live)
    /// copies in all.
    pub fn live_records(&self) -> u64 {
        self.live_total as u64
    }

    /// Records written to the new file so far (live ones and those carried
    /// over by catch-up).
    pub fn records_copied(&self) -> u64 {
        self.next_slot.get()
    }

    /// Copies the next `max_records` (at least one) of the live records, in
    /// file order, each checked (checksum, the index's id, a put) before it
    /// is written. Returns how many it copied: 0 once every live record is.
    ///
    /// After an error the session is spent: every later call fails, and
    /// dropping it removes its file.
    pub fn copy_live(&mut self, max_records: usize) -> Result<u64> {
        self.check_usable()?;
        let copied = self.copy_live_chunk(max_records);
        self.failed = copied.is_err();
        copied
    }

    /// Copies, verbatim, every record committed to the old generation since
    /// the last catch-up (or since the live copy began), puts and tombstones
    /// alike. Returns the number copied. Call it until it returns a small
    /// number, so the final catch-up under the writer lock is short.
    ///
    /// Only once [`copy_live`](Self::copy_live) has copied every live
    /// record: a catch-up before would let an older copy of an id land after
    /// its newer one. After an error the session is spent.
    pub fn catch_up(&mut self) -> Result<u64> {
        self.check_ready_to_catch_up()?;
        let end = self.store.lock_writer_unchecked().append.next_slot();
        let copied = self.catch_up_to(end);
        if copied.is_ok() {
            self.apply_changes();
        }
        self.failed = copied.is_err();
        copied
    }

    fn check_usable(&self) -> Result<()> {
        if self.failed {
            return Err(Error::InvalidArgument(
                "this compaction failed at an earlier step; drop it and begin a new one".into(),
            ));
        }
        Ok(())
    }

    fn check_ready_to_catch_up(&self) -> Result<()> {
        self.check_usable()?;
        if self.live_copied < self.live_total {
            return Err(Error::InvalidArgument(format!(
                "{} of the compaction's {} live records are not copied yet: call copy_live until it returns 0 first",
                self.live_total - self.live_copied,
                self.live_total
            )));
        }
        Ok(())
    }

    fn copy_live_chunk(&mut self, max_records: usize) -> Result<u64> {
        let store = self.store;
        let source = store.current();
        let from = self.live_copied;
        let to = from.saturating_add(max_records.max(1)).min(self.live_total);
        let mut i = from;
        while i < to {
            // One read per run of consecutive slots, at most a write's worth.
            let mut j = i + 1;
            while j < to && j - i < WRITE_CHUNK_RECORDS && self.live[j].1 == self.live[j - 1].1.next() {
                j += 1;
            }
            let (first, end) = (self.live[i].1, self.live[j - 1].1.next());
            let mut failed = None;
            let live = &self.live[i..j];
            let changes = &mut self.pending_changes;
            let ended = read_records_into(&source.data, first, end, &mut self.pending, |slot, decoded| {
                let expected = live[(slot - first) as usize].0;
                match decoded {
                    Ok(h) if h.id == expected && h.kind == RecordKind::Put => {
                        changes.push((h.id, Some(Slot::ZERO)));
                        ControlFlow::Continue(())
                    }
                    Ok(_) => {
                        failed = Some(Error::Corrupted {
                            path: source.data.path().into(),
                            offset: source.data.slot_offset(slot),
                            reason: "the index points at a record of another id".into(),
                        });
                        ControlFlow::Break(())
                    }
                    Err(e) => {
                        failed = Some(e.into_error(source.data.path(), source.data.slot_offset(slot)));
                        ControlFlow::Break(())
                    }
                }
            })
            .context(|| format!("reading records from {}", source.data.path().display()))?;
            check_scan(&source.data, ended, failed)?;
            if self.pending.len() >= WRITE_CHUNK_RECORDS * source.data.record_size_bytes() as usize {
                self.write_pending()?;
            }
            i = j;
        }
        self.write_pending()?;
        self.apply_changes();
        self.live_copied = to;
        if to == self.live_total {
            // Copied: the list is not needed any more.
            self.live = Vec::new();
        }
        Ok((to - from) as u64)
    }

    /// Copies the old file's records in `[source_end_slot, end_slot)`, each
    /// checked, to the new file, and advances `source_end_slot`; their index
    /// changes are left in `pending_changes`.
    fn catch_up_to(&mut self, end_slot: Slot) -> Result<u64> {
        let store = self.store;
        let source = store.current();
        let start = self.source_end_slot;
        let mut slot = start;
        while slot < end_slot {
            let chunk_end = end_slot.min(slot + WRITE_CHUNK_RECORDS as u64);
            let mut failed = None;
            let changes = &mut self.pending_changes;
            let ended =
                read_records_into(&source.data, slot, chunk_end, &mut self.pending, |at, decoded| match decoded {
                    Ok(h) => {
                        changes.push((h.id, (h.kind == RecordKind::Put).then_some(Slot::ZERO)));
                        ControlFlow::Continue(())
                    }
                    Err(e) => {
                        failed = Some(e.into_error(source.data.path(), source.data.slot_offset(at)));
                        ControlFlow::Break(())
                    }
                })
                .context(|| format!("reading records from {}", source.data.path().display()))?;
            check_scan(&source.data, ended, failed)?;
            self.write_pending()?;
            slot = chunk_end;
        }
        self.source_end_slot = end_slot;
        Ok(end_slot - start)
    }

    /// Writes `pending` to the new file after its last record (growing the
    /// file if the tail outgrew the reservation) and gives each of its
    /// changes its new slot.
    fn write_pending(&mut self) -> Result<()> {
        let record = self.data().record_size_bytes() as usize;
        let n = self.pending.len() / record;
        if n == 0 {
            return Ok(());
        }
        let end = self.next_slot + n as u64;
        let needed = self.data().bytes_for_slots(end);
        if needed > self.allocated_bytes {
            let target = needed.max(self.allocated_bytes + self.allocated_bytes / 8);
            let data = self.data();
            data.allocate(self.allocated_bytes, target).context(|| format!("growing {}", data.path().display()))?;
            self.allocated_bytes = target;
        }
        let data = self.data();
        data.write_records(self.next_slot, &self.pending).context(|| format!("writing {}", data.path().display()))?;
        let first_new = self.pending_changes.len() - n;
        for (k, change) in self.pending_changes[first_new..].iter_mut().enumerate() {
            if change.1.is_some() {
                change.1 = Some(self.next_slot + k as u64);
            }
        }
        self.next_slot = end;
        self.pending.clear();
        Ok(())
    }

    /// Applies the written records' changes to the new index (the final
    /// catch-up's are applied by the staged snapshot's `finish` instead).
    fn apply_changes(&mut self) {
        self.index.apply(&self.pending_changes);
        self.pending_changes.clear();
    }

    fn data(&self) -> &DataFile {
        self.data.as_ref().expect("the data file is taken only by the switch, which consumes the session")
    }

    /// Finishes the compaction: a last catch-up, the new file synced and its
    /// snapshot staged without pausing writers; then, with the writer lock,
    /// a flush, the final catch-up, the snapshot finished, a new WAL segment
    /// and the manifest naming the new generation (the commit point), and
    /// the switch. On an error before the manifest rename, the new files are
    /// removed and the old generation stays in use.
    ///
    /// Only once [`copy_live`](Self::copy_live) has copied every live record,
    /// and not after an error in an earlier step.
    pub fn commit(mut self) -> Result<SwitchOutcome> {
        self.catch_up()?;
        self.data().sync_data().context(|| format!("syncing {}", self.data().path().display()))?;
        let staged = StagedSnapshot::stage(&self.store.io, &self.store.dir, self.generation, &self.index)?;
        let store = self.store;
        let mut w = store.lock_writer()?;
        let paused = Instant::now();
        let (outcome, retired) = self.switch_locked(&mut w, staged, paused)?;
        drop(w);
        // Unmapping and unlinking a large file take a while: not on the
        // writers' time. A generation still pinned by a guard is dropped
        // when that guard goes instead.
        let (generation, path) = retired;
        drop(generation);
        let _ = store.io.remove_file(&path);
        let _ = store.io.sync_dir(&store.dir);
        Ok(outcome)
    }

    #[allow(clippy::type_complexity)]
    fn switch_locked(
        &mut self,
        w: &mut Writer,
        staged: StagedSnapshot,
        paused: Instant,
    ) -> Result<(SwitchOutcome, (Option<Generation>, PathBuf))> {
        let store = self.store;
        let records_before = w.append.next_slot().get();
        let bytes_before = w.append.allocated_bytes();
        let mut snapshot_name = None;
        let mut lsn = w.append.last_lsn();
        let prepared = (|| -> Result<_> {
            store.sync_all_locked(w)?;
            lsn = w.append.last_lsn();
            let caught_up = self.catch_up_to(w.append.next_slot())?;
            let data = self.data();
            data.sync_data().context(|| format!("syncing {}", data.path().display()))?;
            data.ensure_mapped(self.next_slot)?;
            let changes = std::mem::take(&mut self.pending_changes);
            snapshot_name = Some(staged.finish(&self.index, &changes, lsn, self.next_slot)?);
            let wal = store.start_segment(w)?;
            Ok((caught_up, wal))
        })();
        let (caught_up_in_pause, new_wal) = match prepared {
            Ok(p) => p,
            Err(e) => {
                // The session's drop removes the new data file.
                if let Some(name) = snapshot_name {
                    let _ = store.io.remove_file(&store.dir.join(name));
                }
                return Err(e);
            }
        };
        let end_slot = self.next_slot;
        // The commit point (with the checkpoint's cleanup); on failure the
        // store is poisoned and a reopen finds whichever manifest reached the
        // disk, so from here on the new file must stay.
        self.committed = true;
        store.install_checkpoint(w, self.generation, lsn, end_slot, new_wal)?;

        // Committed: switch memory to the new generation.
        let data = self.data.take().expect("taken once, here");
        let data_record_bytes = data.record_size_bytes();
        data.publish(end_slot);
        w.append.switched(end_slot, self.allocated_bytes);
        w.overlay.clear();
        let old_path = store.current().data.path().to_path_buf();
        let mut index = std::mem::replace(&mut self.index, Index::with_capacity(0));
        // It holds every batch up to the switch's LSN, and the file ends at
        // its last copy.
        index.set_position(lsn, end_slot);
        let retired = store.reads.replace(Generation { data: Arc::new(data), index });
        let outcome = SwitchOutcome {
            generation: self.generation.get(),
            records_before,
            records_after: end_slot.get(),
            bytes_before,
            bytes_after: w.append.allocated_bytes(),
            bytes_copied: end_slot.get() * data_record_bytes,
            caught_up_in_pause,
            writer_pause: paused.elapsed(),
        };
        Ok((outcome, (retired, old_path)))
    }
}

/// Turns how a read of the old file ended into an error if it did not end
/// well: a record that failed its checks is damage to report, never
/// something to copy, and so is a file that ends before its committed end.
fn check_scan(data: &DataFile, ended: ScanEnd, failed: Option<Error>) -> Result<()> {
    if let Some(e) = failed {
        return Err(e);
    }
    match ended {
        ScanEnd::Complete => Ok(()),
        ScanEnd::Stopped => unreachable!("the visitor stops only with an error"),
        ScanEnd::FileEndsAt(slot) => Err(Error::Corrupted {
            path: data.path().into(),
            offset: data.slot_offset(slot),
            reason: "the data file ends before its committed end".into(),
        }),
    }
}
