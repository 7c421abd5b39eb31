//! The change feed: every put and delete committed after an LSN, in LSN
//! order, read from a snapshot's data file, so an index kept beside the
//! store (HNSW, IVF) that persists the LSN it applied catches up after a
//! restart or a crash instead of being rebuilt.
//!
//! No log is kept for it: the data file already is one. Its records are
//! appended batch by batch with the batch's LSN, so they ascend in LSN
//! order, and the feed after an LSN is a binary search for its first record
//! and a sequential read from there to the view's end. Each record's
//! checksum is verified before it is handed out. A compaction copies only
//! the live records of the batches before it began and every later record
//! verbatim, so a compacted generation's feed is whole only after that LSN
//! (the data file header's `changes_after_lsn`, docs/FORMAT.md); an older
//! start is refused with [`Error::ChangesCompacted`], never answered with a
//! partial history. This module never writes.

use std::fmt;

use super::reader::VectorReader;
use super::{Snapshot, VectorStore};
use crate::element::Element;
use crate::error::{Error, Result};
use crate::format::record::{RecordHeader, RecordKind};
use crate::ids::{Lsn, Slot};

/// One committed change, as the feed yields it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Change<'a, T> {
    /// `id` was stored (inserted or overwritten) with `vector` by batch
    /// `lsn`; the record is at `slot` of the feed's generation (live in the
    /// feed's snapshot unless a later change in the feed replaced it).
    Put {
        /// The batch's LSN.
        lsn: u64,
        /// The vector id.
        id: u64,
        /// The record's slot (see [`Snapshot`], "Slots").
        slot: u64,
        /// The vector, zero-copy; it borrows the feed's snapshot.
        vector: &'a [T],
    },
    /// `id` was deleted by batch `lsn`.
    Delete {
        /// The batch's LSN.
        lsn: u64,
        /// The vector id.
        id: u64,
    },
}

impl<T> Change<'_, T> {
    /// The LSN of the batch that made the change.
    pub fn lsn(&self) -> u64 {
        match *self {
            Change::Put { lsn, .. } | Change::Delete { lsn, .. } => lsn,
        }
    }

    /// The id the change is about.
    pub fn id(&self) -> u64 {
        match *self {
            Change::Put { id, .. } | Change::Delete { id, .. } => id,
        }
    }
}

/// The changes after an LSN up to a snapshot's LSN, owning the snapshot
/// they are read from: what [`VectorStore::changes_since`] and
/// [`VectorReader::changes_since`] return. Iterate it with
/// [`iter`](Self::iter) (as often as you like); once every change is
/// applied, the index is current as of [`lsn`](Self::lsn), the LSN to
/// persist with it.
///
/// ```
/// use quiver_storage::{Change, VectorStore};
/// use std::collections::BTreeMap;
/// let dir = tempfile::tempdir()?;
/// let store: VectorStore<f32> = VectorStore::open(dir.path().join("v"), 1)?;
/// store.store(1, &[1.0])?;
/// // An index (here a map) built from a snapshot, with the LSN it holds.
/// let snapshot = store.snapshot();
/// let mut index: BTreeMap<u64, f32> = snapshot.iter().map(|(id, v)| (id, v[0])).collect();
/// let mut applied = snapshot.lsn();
///
/// store.store(2, &[2.0])?;
/// store.delete(1)?;
/// store.store(2, &[3.0])?;
///
/// let feed = store.changes_since(applied)?;
/// for change in &feed {
///     match change? {
///         Change::Put { id, vector, .. } => index.insert(id, vector[0]),
///         Change::Delete { id, .. } => index.remove(&id),
///     };
/// }
/// applied = feed.lsn();
/// assert_eq!(index, BTreeMap::from([(2, 3.0)]));
/// assert_eq!(applied, store.snapshot().lsn());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ChangeFeed<T: Element> {
    snapshot: Snapshot<T>,
    since: Lsn,
    start: Slot,
}

impl<T: Element> fmt::Debug for ChangeFeed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeFeed")
            .field("since_lsn", &self.since.get())
            .field("lsn", &self.snapshot.lsn())
            .field("records", &self.record_count())
            .finish()
    }
}

impl<T: Element> ChangeFeed<T> {
    fn new(snapshot: Snapshot<T>, since_lsn: u64) -> Result<Self> {
        let (since, start) = {
            let changes = snapshot.changes_since(since_lsn)?;
            (changes.since, changes.next)
        };
        Ok(Self { snapshot, since, start })
    }

    /// The changes, in LSN order (see [`Snapshot::changes_since`]).
    pub fn iter(&self) -> Changes<'_, T> {
        Changes::from_slot(&self.snapshot, self.since, self.start)
    }

    /// The LSN the feed starts after (what it was asked for).
    pub fn since_lsn(&self) -> u64 {
        self.since.get()
    }

    /// The last LSN the feed covers: its snapshot's. An index that applied
    /// every change is current as of this LSN.
    pub fn lsn(&self) -> u64 {
        self.snapshot.lsn()
    }

    /// The records the feed will read: one per change.
    pub fn record_count(&self) -> u64 {
        self.snapshot.end_slot().get() - self.start.get()
    }

    /// The snapshot the changes are read from.
    pub fn snapshot(&self) -> &Snapshot<T> {
        &self.snapshot
    }
}

impl<'a, T: Element> IntoIterator for &'a ChangeFeed<T> {
    type Item = Result<Change<'a, T>>;
    type IntoIter = Changes<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The iterator of [`Snapshot::changes_since`] and [`ChangeFeed::iter`]:
/// each change after an LSN, in LSN order, each record's checksum verified
/// first. A record that fails it (or is out of LSN order) yields
/// [`Error::Corrupted`] and ends the iteration: an index must not skip a
/// change and carry on.
pub struct Changes<'a, T: Element> {
    snapshot: &'a Snapshot<T>,
    since: Lsn,
    /// The LSN of the last change yielded (`since` before the first).
    last: Lsn,
    next: Slot,
    end: Slot,
}

impl<T: Element> fmt::Debug for Changes<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Changes")
            .field("since_lsn", &self.since.get())
            .field("next_slot", &self.next.get())
            .field("end_slot", &self.end.get())
            .finish()
    }
}

impl<'a, T: Element> Changes<'a, T> {
    fn from_slot(snapshot: &'a Snapshot<T>, since: Lsn, start: Slot) -> Self {
        Self { snapshot, since, last: since, next: start, end: snapshot.end_slot() }
    }

    fn corrupt(&mut self, slot: Slot, offset_in_record: u64, reason: String) -> Error {
        self.next = self.end;
        let data = self.snapshot.data();
        Error::Corrupted { path: data.path().to_path_buf(), offset: data.slot_offset(slot) + offset_in_record, reason }
    }
}

impl<'a, T: Element> Iterator for Changes<'a, T> {
    type Item = Result<Change<'a, T>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        let slot = self.next;
        self.next = slot + 1;
        let data = self.snapshot.data();
        let bytes = data.record_bytes(slot).expect("a slot below the view's end is published");
        let header = match RecordHeader::decode_from(bytes, data.payload_bytes()) {
            Ok(h) => h,
            Err(e) => return Some(Err(self.corrupt(slot, e.offset, e.reason))),
        };
        let lsn = Lsn::from(header.lsn);
        if lsn <= self.since || lsn < self.last || lsn.get() > self.snapshot.lsn() {
            let reason = format!(
                "record LSN {} is out of order: the feed after LSN {} was at LSN {} and its view ends at LSN {}",
                header.lsn,
                self.since.get(),
                self.last.get(),
                self.snapshot.lsn()
            );
            return Some(Err(self.corrupt(slot, 16, reason)));
        }
        self.last = lsn;
        Some(Ok(match header.kind {
            RecordKind::Put => {
                Change::Put { lsn: header.lsn, id: header.id, slot: slot.get(), vector: self.snapshot.payload(slot) }
            }
            RecordKind::Tombstone => Change::Delete { lsn: header.lsn, id: header.id },
        }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.end.get() - self.next.get()) as usize;
        (left, Some(left))
    }
}

impl<T: Element> Snapshot<T> {
    /// Every put and delete committed after `lsn` and up to this view's
    /// [`lsn`](Self::lsn), in LSN order (within a batch, in the batch's
    /// order), zero-copy. Finding the start is a binary search over the
    /// data file (its records ascend in LSN order); the rest is one
    /// sequential read, each record's checksum verified.
    ///
    /// The history is exact: an id overwritten twice yields both puts, a
    /// delete of a present id yields a `Delete` (deleting an absent id
    /// changes nothing and yields nothing). Checkpoints do not shorten it.
    /// A compaction does: its generation holds every change after the LSN
    /// at which it began ([`changes_after_lsn`](Self::changes_after_lsn)),
    /// and only the live vectors of the batches before.
    ///
    /// # Errors
    ///
    /// - [`Error::ChangesCompacted`] if `lsn` is below
    ///   `changes_after_lsn`: a compaction dropped part of that history.
    ///   Rebuild the index from a snapshot and follow the feed from the
    ///   snapshot's `lsn()`.
    /// - [`Error::LsnAhead`] if `lsn` is past this view's `lsn()`.
    pub fn changes_since(&self, lsn: u64) -> Result<Changes<'_, T>> {
        let since = Lsn::from(lsn);
        if lsn > self.lsn() {
            return Err(Error::LsnAhead { since_lsn: lsn, last_lsn: self.lsn() });
        }
        let data = self.data();
        if since < data.changes_after() {
            return Err(Error::ChangesCompacted {
                since_lsn: lsn,
                changes_after_lsn: data.changes_after().get(),
                generation: self.generation(),
            });
        }
        // The first slot whose record is after `since`. An unreadable LSN
        // (a damaged header) cannot hide a change: every record from the
        // start on is verified as it is read, and its LSN must be after
        // `since`.
        let (mut low, mut high) = (0, self.end_slot().get());
        while low < high {
            let mid = low + (high - low) / 2;
            let at = data.record_lsn(Slot::from(mid)).expect("a slot below the view's end is published");
            if at <= lsn {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        Ok(Changes::from_slot(self, since, Slot::from(low)))
    }

    /// The earliest LSN a change feed of this view can start after: 0 for a
    /// store's first generation, which holds its whole history; for a
    /// compacted generation, the LSN at which the compaction began.
    pub fn changes_after_lsn(&self) -> u64 {
        self.data().changes_after().get()
    }
}

impl<T: Element> VectorStore<T> {
    /// Every put and delete committed after `lsn`, in LSN order, from a
    /// snapshot taken now: see [`Snapshot::changes_since`] for what it
    /// yields and its errors, and [`ChangeFeed`] for an example.
    ///
    /// The feed sees what a snapshot sees: at `Durability::Sync`, batches
    /// once synced. At `Buffered` a change survives a crash of the process
    /// once it is in the feed; at `Deferred` only after
    /// [`flush`](Self::flush) — persist an index's LSN only after one, or a
    /// crash can lose batches the index holds (the next open then reuses
    /// their LSNs).
    pub fn changes_since(&self, lsn: u64) -> Result<ChangeFeed<T>> {
        ChangeFeed::new(self.snapshot(), lsn)
    }
}

impl<T: Element> VectorReader<T> {
    /// Every put and delete after `lsn` that this follower has applied, in
    /// LSN order, from a snapshot taken now: see
    /// [`Snapshot::changes_since`]. [`refresh`](Self::refresh) first to
    /// see the writer's latest batches.
    pub fn changes_since(&self, lsn: u64) -> Result<ChangeFeed<T>> {
        ChangeFeed::new(self.snapshot(), lsn)
    }
}
