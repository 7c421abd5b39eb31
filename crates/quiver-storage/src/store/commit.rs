//! The write path: validate, append records to the data file, log the batch,
//! make it durable as the durability level asks, then make it visible.
//!
//! Order of a commit (docs/FORMAT.md, "Commit"): records are written at the
//! append position with `pwrite`; the WAL frame is appended; the records are
//! published to the mapping; the index change is applied (at `Sync`, only
//! after the shared `fdatasync` succeeds). A failure before the frame is in
//! the log leaves nothing visible and nothing to replay; a failed sync
//! poisons the store.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rustc_hash::FxHashSet;

use super::VectorStore;
use super::append::AppendState;
use super::checkpoint::CheckpointState;
use super::overlay::SyncOverlay;
use super::writer_lock::WriterLock;
use crate::element::Element;
use crate::error::{Error, Result};
use crate::format::record::{RecordHeader, RecordKind};
use crate::format::wal_frame::{
    BATCH_ENTRY_BYTES, BATCH_HEADER_BYTES, BatchEntry, MAX_BATCH_VECTORS, MAX_FRAME_PAYLOAD_BYTES,
};
use crate::ids::{Lsn, Slot};
use crate::index::Change;
use crate::metrics::Counters;
use crate::options::Durability;
use crate::wal::writer::WalWriter;

/// Largest total payload of one batch, in bytes (1 GiB).
pub const MAX_BATCH_BYTES: u64 = 1 << 30;

/// State owned by the single writer (behind `VectorStore::writer`): each
/// part is a type that keeps its own invariants.
#[derive(Debug)]
pub(crate) struct Writer {
    /// The current WAL segment.
    pub(crate) wal: WalWriter,
    /// The next batch's LSN and slot, and the file's reservation.
    pub(crate) append: AppendState,
    /// The checkpoint in force and when the next automatic one is due.
    pub(crate) checkpoints: CheckpointState,
    /// At `Sync`, batches logged but not yet visible.
    pub(crate) overlay: SyncOverlay,
    /// Encoding buffers, kept between commits to avoid reallocating.
    pub(crate) record_buf: Vec<u8>,
    pub(crate) payload_buf: Vec<u8>,
    /// Files no manifest needs any more (an old snapshot, WAL segments past
    /// their grace period), removed when the writer lock is released.
    pub(crate) obsolete_files: Vec<std::path::PathBuf>,
}

/// A batch logged at `Sync` and waiting for its sync to become visible.
#[derive(Debug)]
pub(crate) struct PendingBatch {
    pub lsn: Lsn,
    /// The data file's end after the batch.
    pub end_slot: Slot,
    pub changes: Vec<Change>,
}

/// Group-commit state (behind `VectorStore::commit`).
#[derive(Debug, Default)]
pub(crate) struct CommitState {
    /// Highest LSN whose frame is in the WAL file.
    pub written_lsn: Lsn,
    /// Highest LSN synced and applied.
    pub applied_lsn: Lsn,
    pub pending: VecDeque<PendingBatch>,
    pub leader_active: bool,
    /// Location batches were logged since the last data-file sync.
    pub data_dirty: bool,
    /// `Sync` writers between entering a commit and logging their batch. A
    /// new leader waits for them (a bounded time) before it syncs, so that
    /// writers that arrive together share one sync instead of splitting
    /// into two groups that alternate.
    pub in_flight: usize,
    /// Whether a new leader is waiting for in-flight writers
    /// (`VectorStore::batch_logged` is then notified when the last logs).
    pub gathering: bool,
    /// How long the last group sync took: the longest a leader waits to
    /// gather (waiting longer than a sync would cost more than it saves).
    pub last_sync: Duration,
}

/// The longest a group-commit leader waits for in-flight writers, whatever
/// the syncs cost.
const MAX_GATHER: Duration = Duration::from_millis(1);

/// Counts a `Sync` commit in [`CommitState::in_flight`] from its start
/// until its batch is logged (or the commit ends without one).
struct InFlight<'a, T: Element> {
    store: Option<&'a VectorStore<T>>,
}

impl<'a, T: Element> InFlight<'a, T> {
    fn enter(store: &'a VectorStore<T>) -> Self {
        if store.options.durability != Durability::Sync {
            return Self { store: None };
        }
        store.commit.lock().in_flight += 1;
        Self { store: Some(store) }
    }

    /// The batch is logged: called with the commit lock held.
    fn logged(mut self, c: &mut CommitState) {
        if let Some(store) = self.store.take() {
            Self::leave(store, c);
        }
    }

    fn leave(store: &VectorStore<T>, c: &mut CommitState) {
        c.in_flight -= 1;
        // The leader waits for the last one only: waking it for each would
        // cost a context switch per writer of the group.
        if c.gathering && c.in_flight == 0 {
            store.batch_logged.notify_one();
        }
    }
}

impl<T: Element> Drop for InFlight<'_, T> {
    /// A commit that ends without logging (an error, an absent delete).
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            Self::leave(store, &mut store.commit.lock());
        }
    }
}

/// A batch encoded for the data file and the WAL.
struct EncodedBatch {
    /// The records, back to back (the writer's reused buffer).
    records: Vec<u8>,
    /// The payloads for an inline frame (the writer's reused buffer).
    payloads: Vec<u8>,
    entries: Vec<BatchEntry>,
    changes: Vec<Change>,
    /// Whether the frame carries the payloads.
    inline: bool,
}

/// One operation of a batch, after validation.
enum Op<'a, T> {
    Put(u64, &'a [T]),
    Delete(u64),
}

impl<T: Element> VectorStore<T> {
    /// Stores `vector` under `id`, replacing any previous vector.
    pub fn store(&self, id: u64, vector: &[T]) -> Result<()> {
        self.store_batch(&[(id, vector)]).map(|_| ())
    }

    /// Stores every `(id, vector)` pair atomically: after any crash, all or
    /// none of them are present. If an id appears more than once, the last
    /// occurrence wins and the others are not written. Returns the number of
    /// distinct ids stored.
    ///
    /// Every vector's length is checked before anything is written.
    pub fn store_batch(&self, batch: &[(u64, &[T])]) -> Result<usize> {
        let dim = self.shape.dimension;
        if batch.len() as u64 > u64::from(MAX_BATCH_VECTORS) {
            return Err(Error::LimitExceeded {
                what: "a batch of vectors",
                actual: batch.len() as u64,
                limit: u64::from(MAX_BATCH_VECTORS),
            });
        }
        let bytes = batch.len() as u64 * u64::from(self.shape.payload_bytes());
        if bytes > MAX_BATCH_BYTES {
            return Err(Error::LimitExceeded {
                what: "a batch's payload bytes",
                actual: bytes,
                limit: MAX_BATCH_BYTES,
            });
        }
        for (_, v) in batch {
            if v.len() != dim as usize {
                return Err(Error::DimensionMismatch {
                    expected: dim,
                    actual: u32::try_from(v.len()).unwrap_or(u32::MAX),
                });
            }
        }
        if batch.is_empty() {
            // Nothing to write, but a poisoned or closed store says so.
            drop(self.lock_writer()?);
            return Ok(0);
        }
        // Last occurrence of an id wins; earlier ones are never written.
        let ops: Vec<Op<'_, T>> = if batch.len() == 1 {
            vec![Op::Put(batch[0].0, batch[0].1)]
        } else {
            let mut seen = FxHashSet::with_capacity_and_hasher(batch.len(), Default::default());
            let mut ops: Vec<Op<'_, T>> =
                batch.iter().rev().filter(|(id, _)| seen.insert(*id)).map(|&(id, v)| Op::Put(id, v)).collect();
            ops.reverse();
            ops
        };
        let n = ops.len();
        self.commit_ops(&ops, |_| true)?;
        Counters::add(&self.counters.vectors_stored, n as u64);
        Ok(n)
    }

    /// Deletes `id`. Returns whether it was present; deleting an absent id
    /// writes nothing.
    pub fn delete(&self, id: u64) -> Result<bool> {
        let existed = self.commit_ops(&[Op::Delete(id)], |present| present)?;
        if existed {
            Counters::add(&self.counters.vectors_deleted, 1);
        }
        Ok(existed)
    }

    /// Makes every acknowledged write durable against power loss.
    pub fn flush(&self) -> Result<()> {
        let mut w = self.lock_writer()?;
        self.sync_all_locked(&mut w)
    }

    /// Reserves room for `additional` more vectors in one growth step (data
    /// file and index), so a bulk import does not grow midway.
    ///
    /// A reservation past the data file's limit, or one whose index could
    /// not fit in this machine's memory, is `Error::LimitExceeded` and
    /// changes nothing on disk.
    pub fn reserve_capacity(&self, additional_vectors: usize) -> Result<()> {
        let additional = additional_vectors as u64;
        let mut w = self.lock_writer()?;
        let next_slot = w.append.next_slot().get();
        let end_slot = next_slot.checked_add(additional).ok_or_else(|| Error::LimitExceeded {
            what: "a capacity in vectors",
            actual: additional,
            limit: u64::MAX - next_slot,
        })?;
        let record = self.current().data.record_size_bytes();
        let max_slots = (crate::format::MAX_DATA_FILE_BYTES - crate::format::DATA_HEADER_BYTES) / record;
        if end_slot > max_slots {
            return Err(Error::LimitExceeded { what: "a capacity in vectors", actual: end_slot, limit: max_slots });
        }
        // The index first: it is refused when it could not fit in memory,
        // and a refused reservation must change nothing on disk. If the data
        // file then cannot grow, the presized index only costs memory.
        self.current().index.try_reserve(additional_vectors).map_err(|e| Error::LimitExceeded {
            what: "an index capacity in vectors",
            actual: e.requested_ids,
            limit: e.limit_ids,
        })?;
        let end_slot = Slot::from(end_slot);
        let needed = self.current().data.bytes_for_slots(end_slot);
        if needed > w.append.allocated_bytes() {
            self.grow_locked(&mut w, needed, needed)?;
        }
        self.current().data.ensure_mapped(end_slot)?;
        w.append.reserve_until(end_slot);
        Ok(())
    }

    /// Grows the data file so that `needed_bytes` fit, preferring
    /// `preferred_bytes`, falling back to smaller steps when the disk is
    /// nearly full.
    pub(super) fn grow_locked(&self, w: &mut Writer, needed_bytes: u64, preferred_bytes: u64) -> Result<()> {
        let started = Instant::now();
        let mut target = preferred_bytes.max(needed_bytes);
        loop {
            let current = w.append.allocated_bytes();
            match self.current().data.allocate(current, target) {
                Ok(()) => {
                    w.append.grown_to(target);
                    Counters::add(&self.counters.growth_events, 1);
                    self.counters.growth_latency.record(started.elapsed());
                    return Ok(());
                }
                Err(e) if target > needed_bytes && is_out_of_space(&e) => {
                    // Halve the step, but never below what this write needs.
                    let step = (target - current) / 2;
                    target = (current + step).max(needed_bytes);
                }
                Err(e) => {
                    return Err(Error::io(
                        format!("growing {} to {target} bytes", self.current().data.path().display()),
                        e,
                    ));
                }
            }
        }
    }

    /// The id's current slot as the writer sees it (including batches
    /// logged but not yet visible at `Sync`).
    fn current_slot(&self, w: &Writer, id: u64) -> Option<Slot> {
        match w.overlay.get(id) {
            Some(slot) => slot,
            None => self.current().index.get(id),
        }
    }

    /// Commits `ops` as one batch. `keep` filters deletes by whether the id
    /// is present (so deleting an absent id writes nothing); returns whether
    /// anything was committed. The steps (docs/FORMAT.md, "Commit"): make
    /// room, encode, write records then the frame, publish, make visible.
    fn commit_ops(&self, ops: &[Op<'_, T>], keep: impl Fn(bool) -> bool) -> Result<bool> {
        let started = Instant::now();
        let flight = InFlight::enter(self);
        let mut w = self.lock_writer()?;
        if self.options.durability == Durability::Sync {
            // Entries whose batches are applied say nothing the index does not.
            let applied = self.commit.lock().applied_lsn;
            w.overlay.sweep(applied);
        }
        if let [Op::Delete(id)] = ops
            && !keep(self.current_slot(&w, *id).is_some())
        {
            return Ok(false);
        }
        let (lsn, first_slot, end_slot) = self.make_room(&mut w, ops.len() as u64)?;
        let encoded = self.encode_batch(&mut w, ops, lsn, first_slot);
        let result = self.write_batch(
            &mut w,
            lsn,
            first_slot,
            &encoded.records,
            &encoded.entries,
            encoded.inline.then_some(&encoded.payloads[..]),
        );
        let EncodedBatch { records, payloads, changes, inline, .. } = encoded;
        w.record_buf = records;
        w.payload_buf = payloads;
        result?;

        // The batch is in the log: from here on nothing may fail but a sync.
        w.append.commit(lsn, first_slot, end_slot);
        self.current().data.publish(end_slot);
        assert_eq!(
            self.current().data.committed_slots(),
            w.append.next_slot(),
            "the mapping publishes exactly the committed records"
        );
        Counters::add(&self.counters.batches_committed, 1);
        self.make_visible(w, flight, lsn, changes, inline)?;
        self.counters.commit_latency.record(started.elapsed());
        Ok(true)
    }

    /// Checks the batch's LSN and file size against their limits and grows
    /// the file (and the mapping) so `n` more records fit. Returns the
    /// batch's LSN and its slots `[first, end)`.
    fn make_room(&self, w: &mut Writer, n: u64) -> Result<(Lsn, Slot, Slot)> {
        let lsn = w.append.next_lsn();
        if lsn.get() >= crate::format::manifest::MAX_LSN {
            return Err(Error::LimitExceeded {
                what: "a commit sequence number",
                actual: lsn.get(),
                limit: crate::format::manifest::MAX_LSN,
            });
        }
        let first_slot = w.append.next_slot();
        let end_slot = first_slot + n;
        let needed = self.current().data.bytes_for_slots(end_slot);
        if needed > crate::format::MAX_DATA_FILE_BYTES {
            return Err(Error::LimitExceeded {
                what: "a data file size",
                actual: needed,
                limit: crate::format::MAX_DATA_FILE_BYTES,
            });
        }
        if needed > w.append.allocated_bytes() {
            let preferred = self.options.growth.target(w.append.allocated_bytes(), needed);
            self.grow_locked(w, needed, preferred)?;
        }
        self.current().data.ensure_mapped(end_slot)?;
        Ok((lsn, first_slot, end_slot))
    }

    /// Encodes the batch's records (into the writer's reused buffers), its
    /// WAL entries and index changes, and — for a batch small enough to log
    /// inline — its payloads for the frame.
    fn encode_batch(&self, w: &mut Writer, ops: &[Op<'_, T>], lsn: Lsn, first_slot: Slot) -> EncodedBatch {
        let record_size = self.current().data.record_size_bytes() as usize;
        let payload_len = self.shape.payload_bytes() as usize;
        let mut records = std::mem::take(&mut w.record_buf);
        let mut payloads = std::mem::take(&mut w.payload_buf);
        records.clear();
        records.resize(record_size * ops.len(), 0);
        payloads.clear();
        let mut entries = Vec::with_capacity(ops.len());
        let mut changes: Vec<Change> = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let rec = &mut records[i * record_size..(i + 1) * record_size];
            let (id, kind, bytes): (u64, RecordKind, &[u8]) = match op {
                Op::Put(id, v) => (*id, RecordKind::Put, bytemuck::cast_slice(v)),
                Op::Delete(id) => (*id, RecordKind::Tombstone, &[]),
            };
            let header = RecordHeader::new(kind, id, lsn.get(), bytes);
            let head: &mut [u8; RecordHeader::ENCODED_LEN] =
                (&mut rec[..RecordHeader::ENCODED_LEN]).try_into().expect("64-byte header");
            header.encode_into(head);
            rec[RecordHeader::ENCODED_LEN..RecordHeader::ENCODED_LEN + bytes.len()].copy_from_slice(bytes);
            entries.push(BatchEntry { id, kind, record_crc: header.crc });
            changes.push((id, (kind == RecordKind::Put).then_some(first_slot + i as u64)));
        }
        // An inline frame carries entries and payloads; it must fit a frame
        // (the option is capped at half the frame limit, so this only bites
        // for very many tiny vectors).
        let inline_frame_bytes = BATCH_HEADER_BYTES + ops.len() * (BATCH_ENTRY_BYTES + payload_len);
        let inline = ops.len() * payload_len <= self.options.inline_batch_max_bytes
            && inline_frame_bytes <= MAX_FRAME_PAYLOAD_BYTES as usize;
        if inline {
            for op in ops {
                if let Op::Put(_, v) = op {
                    payloads.extend_from_slice(bytemuck::cast_slice(v));
                }
            }
        }
        EncodedBatch { records, payloads, entries, changes, inline }
    }

    /// Makes a logged batch visible as its durability level says: at `Sync`
    /// after the shared fdatasync (releasing the writer lock to wait), else
    /// at once. Then runs an automatic checkpoint if one is due; the batch is
    /// acknowledged whatever that does (a failed checkpoint changes nothing
    /// or poisons the store, and the next write reports it).
    fn make_visible(
        &self,
        mut w: WriterLock<'_>,
        flight: InFlight<'_, T>,
        lsn: Lsn,
        changes: Vec<Change>,
        inline: bool,
    ) -> Result<()> {
        // The batch is the last appended: the file ends after it.
        let end_slot = w.append.next_slot();
        if self.options.durability == Durability::Sync {
            w.overlay.insert_batch(lsn, &changes);
            {
                let mut c = self.commit.lock();
                c.written_lsn = lsn;
                c.data_dirty |= !inline;
                c.pending.push_back(PendingBatch { lsn, end_slot, changes });
                flight.logged(&mut c);
            }
            let checkpoint_due = w.checkpoints.due(w.wal.len_bytes());
            drop(w);
            self.wait_durable(lsn, true)?;
            if checkpoint_due {
                self.checkpoint_if_due();
            }
        } else {
            self.current().index.apply_batch(lsn, end_slot, &changes);
            {
                let mut c = self.commit.lock();
                c.written_lsn = lsn;
                c.applied_lsn = lsn;
            }
            if w.checkpoints.due(w.wal.len_bytes()) {
                self.auto_checkpoint_locked(&mut w);
            }
        }
        Ok(())
    }

    /// Writes the records, then the WAL frame. On error nothing is visible
    /// and nothing will be replayed.
    fn write_batch(
        &self,
        w: &mut Writer,
        lsn: Lsn,
        first_slot: Slot,
        records: &[u8],
        entries: &[BatchEntry],
        payloads: Option<&[u8]>,
    ) -> Result<()> {
        self.current().data.write_records(first_slot, records).map_err(|e| {
            Error::io(format!("writing records at slot {first_slot} of {}", self.current().data.path().display()), e)
        })?;
        let defer = self.options.durability == Durability::Deferred;
        let generation = self.current().data.generation();
        if let Err(e) = w.wal.append(lsn, generation, first_slot, entries, payloads, defer) {
            if e.poison {
                self.set_poisoned(&e.error);
            }
            return Err(e.error);
        }
        Ok(())
    }

    /// An automatic checkpoint, if the WAL is still past its threshold once
    /// the writer lock is held (concurrent writers may all have seen it due).
    fn checkpoint_if_due(&self) {
        let mut w = self.lock_writer_unchecked();
        if w.checkpoints.due(w.wal.len_bytes()) {
            self.auto_checkpoint_locked(&mut w);
        }
    }

    /// Runs an automatic checkpoint. If it fails (a full disk, say), the next
    /// attempt waits for another threshold's worth of WAL, so a failing
    /// checkpoint is not retried, with its syncs, on every write; the failure
    /// is counted in `Metrics::checkpoint_failures`.
    fn auto_checkpoint_locked(&self, w: &mut Writer) {
        match self.checkpoint_locked(w, false) {
            Ok(()) => {}
            Err(_) => {
                Counters::add(&self.counters.checkpoint_failures, 1);
                let wal_bytes = w.wal.len_bytes();
                w.checkpoints.back_off(wal_bytes);
            }
        }
    }

    /// Waits until batch `lsn` is synced and applied, leading a shared sync
    /// if no other thread is (group commit). A leader that may `gather`
    /// first waits for the writers in flight to log their batches (at most
    /// one sync's time); a caller that holds the writer lock must not, as
    /// they would wait for it.
    ///
    /// The poison check is made under the commit lock on every turn of the
    /// loop, so a thread never leads a sync after another leader's failed:
    /// a failed leader poisons the store before it gives up `leader_active`.
    pub(super) fn wait_durable(&self, lsn: Lsn, gather: bool) -> Result<()> {
        let mut c = self.commit.lock();
        loop {
            if c.applied_lsn >= lsn {
                return Ok(());
            }
            self.poison.check()?;
            if c.leader_active {
                self.commit_done.wait(&mut c);
                continue;
            }
            c.leader_active = true;
            if gather && c.in_flight > 0 {
                let deadline = Instant::now() + c.last_sync.min(MAX_GATHER);
                c.gathering = true;
                while c.in_flight > 0 && !self.batch_logged.wait_until(&mut c, deadline).timed_out() {}
                c.gathering = false;
            }
            let target = c.written_lsn;
            let batches: Vec<PendingBatch> = c.pending.drain(..).collect();
            let data_dirty = std::mem::take(&mut c.data_dirty);
            drop(c);
            // Should the sync or the index update panic, the guard hands
            // leadership back and poisons, so no writer waits forever for a
            // leader that is gone, and none reports a sync nobody finished.
            let on_panic = LeaderGuard { store: self };
            let sync_started = Instant::now();
            let led = self.lead_group_sync(&batches, data_dirty);
            std::mem::forget(on_panic);
            c = self.commit.lock();
            c.leader_active = false;
            c.last_sync = sync_started.elapsed();
            match led {
                Ok(()) => {
                    debug_assert!(batches.iter().all(|b| b.lsn <= target));
                    c.applied_lsn = c.applied_lsn.max(target);
                }
                Err(err) => {
                    self.poison.set(&err);
                    drop(c);
                    self.commit_done.notify_all();
                    // The leader reports the I/O error itself; the writers
                    // whose batches it carried get `Poisoned`, naming it.
                    return Err(err);
                }
            }
            self.commit_done.notify_all();
        }
    }

    /// The group-commit leader's work, without the commit lock: sync the
    /// data file (if location batches were logged) and the WAL, then make
    /// the group's batches visible. Only one leader runs at a time.
    fn lead_group_sync(&self, batches: &[PendingBatch], data_dirty: bool) -> Result<()> {
        // Rotation replaces the handle only when no batch is pending, so this
        // is the segment every batch of the group was logged in.
        let (wal_file, wal_path) = self.wal_handle.lock().clone();
        let started = Instant::now();
        let synced = if data_dirty {
            let data = self.current();
            data.data.sync_data().map_err(|e| Error::io(format!("syncing {}", data.data.path().display()), e))
        } else {
            Ok(())
        }
        .and_then(|()| {
            self.io.sync_data(&wal_file, &wal_path).map_err(|e| Error::io(format!("syncing {}", wal_path.display()), e))
        });
        self.counters.sync_latency.record(started.elapsed());
        Counters::add(&self.counters.wal_syncs, 1);
        synced?;
        for b in batches {
            self.current().index.apply_batch(b.lsn, b.end_slot, &b.changes);
        }
        Ok(())
    }

    /// With the writer lock held: writes deferred frames, syncs the data file
    /// and the WAL, and (at `Sync`) waits for every logged batch to apply.
    pub(super) fn sync_all_locked(&self, w: &mut Writer) -> Result<()> {
        // The writer lock serialises every sync at these levels: checking
        // here, with it held, is what keeps a second sync from following a
        // failed one (see `poison`).
        self.poison.check()?;
        if self.options.durability == Durability::Sync {
            let written = self.commit.lock().written_lsn;
            return self.wait_durable(written, false);
        }
        if let Err(e) = w.wal.write_buffer() {
            self.set_poisoned(&e.error);
            return Err(e.error);
        }
        let started = Instant::now();
        let synced = self
            .current()
            .data
            .sync_data()
            .map_err(|e| Error::io(format!("syncing {}", self.current().data.path().display()), e))
            .and_then(|()| w.wal.sync());
        self.counters.sync_latency.record(started.elapsed());
        Counters::add(&self.counters.wal_syncs, 1);
        if let Err(e) = synced {
            self.set_poisoned(&e);
            return Err(e);
        }
        Ok(())
    }
}

/// Armed while a group-commit leader works without the commit lock; it is
/// forgotten on the normal path, so its drop runs only during a panic.
struct LeaderGuard<'a, T: Element> {
    store: &'a VectorStore<T>,
}

impl<T: Element> Drop for LeaderGuard<'_, T> {
    fn drop(&mut self) {
        let mut c = self.store.commit.lock();
        c.leader_active = false;
        self.store
            .poison
            .set("a group-commit leader panicked while syncing; whether its batches are durable is unknown");
        drop(c);
        self.store.commit_done.notify_all();
    }
}

fn is_out_of_space(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    let code = e.raw_os_error();
    [Errno::NOSPC, Errno::DQUOT, Errno::FBIG].iter().any(|x| Some(x.raw_os_error()) == code)
        || e.kind() == std::io::ErrorKind::StorageFull
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use crate::{Durability, StoreOptions, VectorStore};

    fn in_flight(store: &VectorStore<f32>) -> usize {
        store.commit.lock().in_flight
    }

    // Proves every way out of a `Sync` commit gives back its in-flight
    // count: a leaked count would make every later group-commit leader wait
    // out its deadline for a writer that never comes. Covers a commit that
    // logs, a delete of an absent id (nothing logged), a commit refused on a
    // closed store, and eight concurrent writers.
    #[test]
    fn every_sync_commit_leaves_the_in_flight_count_as_it_found_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<VectorStore<f32>> =
            Arc::new(StoreOptions::new(2).durability(Durability::Sync).open(dir.path().join("s")).expect("open"));
        store.store(1, &[1.0, 2.0]).expect("store");
        assert_eq!(in_flight(&store), 0);
        assert!(!store.delete(99).expect("absent delete"), "nothing to delete");
        assert_eq!(in_flight(&store), 0);

        let start = Arc::new(Barrier::new(8));
        let writers: Vec<_> = (0..8u64)
            .map(|t| {
                let (store, start) = (Arc::clone(&store), Arc::clone(&start));
                std::thread::spawn(move || {
                    start.wait();
                    for i in 0..50 {
                        store.store(10_000 + t * 1000 + i, &[t as f32, i as f32]).expect("store");
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().expect("writer");
        }
        assert_eq!(in_flight(&store), 0);
        assert_eq!(store.len(), 401);
        let c = store.commit.lock();
        assert!(!c.gathering && !c.leader_active && c.pending.is_empty());
        drop(c);

        store.flush().expect("flush");
        // Marked closed as `close` does (which takes the store by value):
        // the commit is refused once it holds the writer lock.
        store.closed.store(true, std::sync::atomic::Ordering::Release);
        assert!(matches!(store.store(2, &[0.0, 0.0]), Err(crate::Error::Closed)));
        assert_eq!(in_flight(&store), 0);
    }
}
