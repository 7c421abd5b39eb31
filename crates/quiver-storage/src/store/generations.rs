//! Building the next generation and switching to it: the storage half of
//! compaction. `quiver-compaction` drives these steps; this module owns
//! everything that touches the store's files and state.
//!
//! Steps (docs/FORMAT.md, "Generation switch"):
//! 1. [`VectorStore::live_records`]: the live `(id, slot)` set and the
//!    committed end, taken under the writer lock (no I/O).
//! 2. [`NextGeneration::create`]: `data-<g+1>.qvd` created and `fallocate`d
//!    to its final size first, so a full disk fails before anything else.
//! 3. [`NextGeneration::copy_live`] and [`NextGeneration::catch_up`], without
//!    any lock: live records copied in file order, then every record
//!    committed since step 1 copied verbatim (puts and tombstones alike).
//! 4. [`VectorStore::switch_to`], with the writer lock (the only pause):
//!    sync, a last catch-up, `fdatasync` of the new file, its snapshot (temp,
//!    fsync, rename, fsync directory), a new WAL segment, the manifest naming
//!    generation `g+1` (temp, fsync, rename, fsync directory: the commit
//!    point), the in-memory switch, and the unlink of the old data file. The
//!    old mapping lives until the last guard into it is dropped.
//!
//! A failure before the manifest rename removes the new files and leaves
//! the old generation in use; a failure of the rename's directory sync
//! poisons the store (either manifest may be on disk); open removes the
//! files of whichever generation the manifest does not name.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use super::commit::Writer;
use super::{Generation, VectorStore};
use crate::data_file::DataFile;
use crate::element::Element;
use crate::error::{Error, IoContext, Result};
use crate::format::record::{RecordHeader, RecordKind};
use crate::format::{data_file_name, snapshot_file_name};
use crate::index::{Change, Index};
use crate::wal::writer::WalWriter;

/// Records copied per read/write when moving data between generations.
const COPY_CHUNK_RECORDS: usize = 256;

/// The live set of the current generation at one instant.
#[derive(Debug, Clone)]
pub struct LiveRecords {
    /// The generation the slots point into.
    pub generation: u32,
    /// The committed end when the set was taken.
    pub end_slot: u64,
    /// Live `(id, slot)` pairs, in slot (file) order.
    pub records: Vec<(u64, u64)>,
    /// Bytes of one record.
    pub record_size_bytes: u64,
    /// Slots reserved by `reserve_capacity` and not yet used.
    pub reserved_slots: u64,
}

/// What a generation switch did.
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
    /// Records copied by the final catch-up, under the writer lock.
    pub caught_up_in_pause: u64,
    /// How long writers were paused.
    pub writer_pause: Duration,
}

/// The next generation's data file, being filled.
#[derive(Debug)]
pub struct NextGeneration {
    /// Taken out only by the switch, after the manifest names it.
    data: Option<DataFile>,
    generation: u32,
    from_generation: u32,
    /// New slot of every record copied so far, in copy order, with the
    /// index change it implies.
    changes: Vec<Change>,
    /// Old-file slot up to which the tail has been consumed.
    source_end_slot: u64,
    next_slot: u64,
    allocated_bytes: u64,
    buf: Vec<u8>,
    /// Set once the manifest names this generation; until then, dropping
    /// it removes its file, so a failed or abandoned compaction never keeps
    /// the disk full.
    committed: bool,
    io: crate::io::Io,
    /// Declared last, so it is released after the file is removed.
    token: Token,
}

impl Drop for NextGeneration {
    fn drop(&mut self) {
        if !self.committed
            && let Some(data) = &self.data
        {
            let _ = self.io.remove_file(data.path());
        }
    }
}

/// The store's "a compaction is running" flag, held by one
/// `NextGeneration` and cleared when it goes.
#[derive(Debug)]
struct Token(Arc<AtomicBool>);

impl Drop for Token {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl<T: Element> VectorStore<T> {
    /// The live set of the current generation, consistent with the
    /// committed end (taken under the writer lock, after every logged batch
    /// became visible).
    pub fn live_records(&self) -> Result<LiveRecords> {
        let w = self.lock_writer()?;
        if self.options.durability == crate::Durability::Sync {
            let written = self.commit.lock().written_lsn;
            self.wait_durable(written)?;
        }
        let g = self.current();
        let mut records = g.index.entries();
        records.sort_unstable_by_key(|&(_, slot)| slot);
        Ok(LiveRecords {
            generation: g.data.generation(),
            end_slot: w.append.next_slot(),
            records,
            record_size_bytes: g.data.record_size_bytes(),
            reserved_slots: w.append.reserved_slots_ahead(),
        })
    }
}

impl NextGeneration {
    /// Creates the next generation's data file with room for `capacity_slots`
    /// records, reserved with `fallocate` up front.
    ///
    /// One compaction at a time per store: while a `NextGeneration` exists
    /// (until it is switched to or dropped), another `create` on the same
    /// store fails with [`Error::CompactionInProgress`] and touches nothing.
    pub fn create<T: Element>(store: &VectorStore<T>, live: &LiveRecords, capacity_slots: u64) -> Result<Self> {
        // An early refusal only; the switch checks again under the lock.
        store.poison.check()?;
        if store.compacting.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return Err(Error::CompactionInProgress);
        }
        // From here on the flag is ours; `Token` gives it back on every path.
        let token = Token(Arc::clone(&store.compacting));
        let generation = live.generation.checked_add(1).ok_or_else(|| Error::LimitExceeded {
            what: "a generation number",
            actual: u64::from(u32::MAX),
            limit: u64::from(u32::MAX) - 1,
        })?;
        let dir = &store.dir;
        let path = dir.join(data_file_name(generation));
        // A leftover from a failed attempt is never named by the manifest.
        if path.exists() {
            store.io.remove_file(&path).context(|| format!("removing the leftover {}", path.display()))?;
        }
        let bytes = crate::format::DATA_HEADER_BYTES + capacity_slots * live.record_size_bytes;
        let created = DataFile::create(&store.io, dir, generation, store.shape, bytes).and_then(|()| {
            DataFile::open(&store.io, dir, generation, store.shape, store.options.map_window_bytes as usize, true)
        });
        let data = match created {
            Ok(d) => d,
            Err(e) => {
                let _ = store.io.remove_file(&path);
                return Err(e);
            }
        };
        Ok(Self {
            data: Some(data),
            generation,
            from_generation: live.generation,
            changes: Vec::with_capacity(live.records.len()),
            source_end_slot: live.end_slot,
            next_slot: 0,
            allocated_bytes: bytes,
            buf: Vec::new(),
            committed: false,
            io: store.io.clone(),
            token,
        })
    }

    fn data(&self) -> &DataFile {
        self.data.as_ref().expect("the data file is taken only by the switch, which consumes the generation")
    }

    /// Makes the records copied so far durable, so the switch (which syncs
    /// again under the writer lock) only has the last catch-up to flush.
    pub fn sync(&self) -> Result<()> {
        self.data().sync_data().context(|| format!("syncing {}", self.data().path().display()))
    }

    /// Records written to the new file so far.
    pub fn records_copied(&self) -> u64 {
        self.next_slot
    }

    /// Copies the live records `live[..]` (a chunk of `LiveRecords::records`,
    /// in order) from the current generation.
    pub fn copy_live<T: Element>(&mut self, store: &VectorStore<T>, live: &[(u64, u64)]) -> Result<()> {
        let g = store.current();
        self.check_source(store, &g)?;
        let record = g.data.record_size_bytes() as usize;
        for chunk in live.chunks(COPY_CHUNK_RECORDS) {
            self.buf.resize(chunk.len() * record, 0);
            // Coalesce runs of consecutive slots into one read.
            let mut i = 0;
            while i < chunk.len() {
                let mut j = i + 1;
                while j < chunk.len() && chunk[j].1 == chunk[j - 1].1 + 1 {
                    j += 1;
                }
                g.data
                    .read_record(chunk[i].1, &mut self.buf[i * record..j * record])
                    .context(|| format!("reading records from {}", g.data.path().display()))?;
                i = j;
            }
            for (k, &(id, slot)) in chunk.iter().enumerate() {
                verify_record(&g.data, &self.buf[k * record..(k + 1) * record], slot, Some(id))?;
                self.changes.push((id, Some(self.next_slot + k as u64)));
            }
            self.append(chunk.len() as u64)?;
        }
        Ok(())
    }

    /// Copies, verbatim, every record committed to the current generation
    /// since the last catch-up. Returns the number copied.
    pub fn catch_up<T: Element>(&mut self, store: &VectorStore<T>) -> Result<u64> {
        let end = store.lock_writer_unchecked().append.next_slot();
        let g = store.current();
        self.check_source(store, &g)?;
        self.catch_up_to(&g, end)
    }

    fn catch_up_to(&mut self, g: &Generation, end_slot: u64) -> Result<u64> {
        let record = g.data.record_size_bytes() as usize;
        let start = self.source_end_slot;
        while self.source_end_slot < end_slot {
            let n = (end_slot - self.source_end_slot).min(COPY_CHUNK_RECORDS as u64);
            self.buf.resize(n as usize * record, 0);
            g.data
                .read_record(self.source_end_slot, &mut self.buf)
                .context(|| format!("reading records from {}", g.data.path().display()))?;
            for k in 0..n as usize {
                let h = verify_record(
                    &g.data,
                    &self.buf[k * record..(k + 1) * record],
                    self.source_end_slot + k as u64,
                    None,
                )?;
                let slot = (h.kind == RecordKind::Put).then_some(self.next_slot + k as u64);
                self.changes.push((h.id, slot));
            }
            self.append(n)?;
            self.source_end_slot += n;
        }
        Ok(self.source_end_slot - start)
    }

    fn check_source<T: Element>(&self, store: &VectorStore<T>, g: &Generation) -> Result<()> {
        if !Arc::ptr_eq(&self.token.0, &store.compacting) {
            return Err(Error::InvalidArgument("this next generation belongs to another store".into()));
        }
        if g.data.generation() != self.from_generation {
            return Err(Error::InvalidArgument("the store switched generations since this compaction began".into()));
        }
        Ok(())
    }

    /// Appends the first `n` records of `buf` to the new file, growing it if
    /// the tail outgrew the reservation.
    fn append(&mut self, n: u64) -> Result<()> {
        let end = self.next_slot + n;
        let needed = self.data().bytes_for_slots(end);
        if needed > self.allocated_bytes {
            let target = needed.max(self.allocated_bytes + self.allocated_bytes / 8);
            self.data()
                .allocate(self.allocated_bytes, target)
                .context(|| format!("growing {}", self.data().path().display()))?;
            self.allocated_bytes = target;
        }
        let len = n as usize * self.data().record_size_bytes() as usize;
        self.data()
            .write_records(self.next_slot, &self.buf[..len])
            .context(|| format!("writing {}", self.data().path().display()))?;
        self.next_slot = end;
        Ok(())
    }
}

/// Checks a record read from the old generation: a failed checksum there is
/// damage to report, never something to copy.
fn verify_record(data: &DataFile, rec: &[u8], slot: u64, id: Option<u64>) -> Result<RecordHeader> {
    let h = RecordHeader::decode_from(rec, data.payload_bytes())
        .map_err(|e| e.into_error(data.path(), data.slot_offset(slot)))?;
    if id.is_some_and(|id| id != h.id || h.kind != RecordKind::Put) {
        return Err(Error::Corrupted {
            path: data.path().into(),
            offset: data.slot_offset(slot),
            reason: "the index points at a record of another id".into(),
        });
    }
    Ok(h)
}

impl<T: Element> VectorStore<T> {
    /// Switches the store to `next`, pausing writers only for the final
    /// catch-up and the durable switch. On error before the manifest rename
    /// the new generation is deleted and the old one stays in use.
    pub fn switch_to(&self, next: NextGeneration) -> Result<SwitchOutcome> {
        let mut w = self.lock_writer()?;
        let paused = Instant::now();
        let (outcome, retired) = self.switch_locked(&mut w, next, paused)?;
        drop(w);
        // Unmapping and unlinking a large file take a while: not on the
        // writers' time. A generation still pinned by a guard is dropped
        // when that guard goes instead.
        if let Some((generation, path)) = retired {
            drop(generation);
            let _ = self.io.remove_file(&path);
            let _ = self.io.sync_dir(&self.dir);
        }
        Ok(outcome)
    }

    #[allow(clippy::type_complexity)]
    fn switch_locked(
        &self,
        w: &mut Writer,
        mut next: NextGeneration,
        paused: Instant,
    ) -> Result<(SwitchOutcome, Option<(Option<Generation>, std::path::PathBuf)>)> {
        let old = self.current();
        let records_before = w.append.next_slot();
        let bytes_before = w.append.allocated_bytes();
        let prepared = (|| -> Result<(Index, u64, WalWriter)> {
            self.sync_all_locked(w)?;
            next.check_source(self, &old)?;
            let caught_up = next.catch_up_to(&old, w.append.next_slot())?;
            next.data().sync_data().context(|| format!("syncing {}", next.data().path().display()))?;
            next.data().ensure_mapped(next.next_slot)?;
            let index = Index::with_capacity(next.changes.len());
            index.apply(&next.changes);
            let lsn = w.append.last_lsn();
            self.write_snapshot(&index, next.generation, lsn, next.next_slot)?;
            let wal = self.start_segment(w).inspect_err(|_| {
                let _ = self.io.remove_file(&self.dir.join(snapshot_file_name(next.generation, lsn.get())));
            })?;
            Ok((index, caught_up, wal))
        })();
        // On error, dropping `next` removes its file.
        let (index, caught_up_in_pause, new_wal) = prepared?;
        let lsn = w.append.last_lsn();
        let generation = next.generation;
        let end_slot = next.next_slot;
        // The commit point (with the checkpoint's cleanup); on failure the
        // store is poisoned and a reopen finds whichever manifest reached the
        // disk, so from here on the new file must stay.
        next.committed = true;
        self.install_checkpoint(w, generation, lsn, end_slot, new_wal)?;

        // Committed: switch memory to the new generation.
        next.data().publish(end_slot);
        w.append.switched(end_slot, next.allocated_bytes);
        w.overlay.clear();
        let old_path = old.data.path().to_path_buf();
        drop(old);
        let data = next.data.take().expect("taken once, here");
        let retired = self.gens.replace(Generation { data, index });
        let outcome = SwitchOutcome {
            generation,
            records_before,
            records_after: end_slot,
            bytes_before,
            bytes_after: w.append.allocated_bytes(),
            caught_up_in_pause,
            writer_pause: paused.elapsed(),
        };
        Ok((outcome, Some((retired, old_path))))
    }

    /// Builds a `(id -> slot)` map of the current generation: for tests.
    #[doc(hidden)]
    pub fn slot_map(&self) -> FxHashMap<u64, u64> {
        self.current().index.entries().into_iter().collect()
    }
}
