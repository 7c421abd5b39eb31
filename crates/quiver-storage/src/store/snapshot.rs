//! `Snapshot<T>`: an owned, immutable read view of one generation at one
//! committed LSN, which an index (HNSW, IVF) can hold for as long as it
//! likes and read without locks.
//!
//! Taking one costs one reference count per index shard (1024) and one for
//! the data file; no entry is copied. The view stays immutable because the
//! data file is append-only below the end it took (the records a view
//! points at are never written again: the view also holds the directory's
//! writer lock, so no reopen's recovery can rewrite them) and because the
//! index shards are copy-on-write.
//!
//! Copy-on-write has a price, paid by writers: the first batch after a view
//! is taken that touches a shard the view shares copies that shard's table
//! (about n/1024 entries), under the shard's upgradable lock — readers keep
//! reading, the writer waits for the copy. A view held across many batches
//! costs memory, up to one copy of every shard; a view taken per query
//! makes every write copy the shards it touches. Take a view per index
//! refresh, not per lookup.
//!
//! Reads through a view take no lock and do no atomic read-modify-write: a
//! `get` is a hash lookup in an immutable table and one address computation
//! in the mapping, which the view keeps alive (it holds the data file, so a
//! compaction that retires the generation leaves the mapping, and the
//! unlinked file's blocks, in place until the last view of it is dropped).

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, OnceLock};

use super::{Generation, VectorStore};
use crate::data_file::{DataFile, prefetch};
use crate::element::Element;
use crate::ids::{Lsn, Slot};
use crate::index::IndexView;

/// An immutable read view of a store: the vectors committed up to one LSN,
/// in one generation's data file.
///
/// Owned (`'static`), cheap to clone (one reference count), `Send + Sync`;
/// every slice it returns borrows the snapshot and stays valid, and
/// unchanged, for as long as the snapshot lives — whatever is written,
/// deleted or compacted meanwhile. A store's snapshot holds the directory's
/// writer lock: while one lives, opening the directory for writing again
/// (after the store is dropped) fails with `Error::Locked`.
///
/// ```
/// use quiver_storage::VectorStore;
/// let dir = tempfile::tempdir()?;
/// let store: VectorStore<f32> = VectorStore::open(dir.path().join("v"), 2)?;
/// store.store(1, &[1.0, 1.0])?;
/// let snapshot = store.snapshot();
/// store.store(1, &[2.0, 2.0])?;
/// store.store(2, &[3.0, 3.0])?;
/// assert_eq!(snapshot.get(1), Some(&[1.0, 1.0][..])); // as of the snapshot
/// assert_eq!(snapshot.get(2), None);
/// assert_eq!(store.snapshot().get(1), Some(&[2.0, 2.0][..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Slots
///
/// Within one generation every record has a *slot*: its position in the
/// data file, from 0 in file order. [`Snapshot::slot_of`] gives the slot of
/// an id's vector in this view and [`Snapshot::vector_at`] reads a slot with
/// one address computation, so an index that stores slots never hashes.
/// What a slot means:
///
/// - A slot never changes its contents: the record written there stays
///   there, byte for byte, for the life of the generation.
/// - An overwrite writes the id's new vector to a new slot; a delete writes
///   a tombstone to a new slot. The old slot keeps the old vector, so a
///   view taken before still reads it, and `id_at` on a newer view says the
///   old slot is no longer live.
/// - A compaction starts a new generation ([`Snapshot::generation`] grows)
///   and renumbers every slot. Slots of one generation mean nothing in
///   another: an index that stores slots relabels them
///   ([`Snapshot::relabel_from`]) when the generation changes.
pub struct Snapshot<T: Element> {
    view: Arc<View>,
    _element: PhantomData<fn() -> T>,
}

/// What a snapshot pins.
struct View {
    data: Arc<DataFile>,
    index: IndexView,
    lsn: Lsn,
    end_slot: Slot,
    /// Every `(id, slot)` sorted by id, built by the first ordered read.
    by_id: OnceLock<Box<[(u64, Slot)]>>,
    /// Every `(id, slot)` sorted by slot, built by the first scan.
    by_slot: OnceLock<Box<[(u64, Slot)]>>,
    /// A writer's view holds the directory's lock (see `VectorStore`'s
    /// `lock`); a follower's holds none, as the follower itself holds none.
    _lock: Option<Arc<std::fs::File>>,
}

impl<T: Element> Clone for Snapshot<T> {
    fn clone(&self) -> Self {
        Self { view: Arc::clone(&self.view), _element: PhantomData }
    }
}

impl<T: Element> fmt::Debug for Snapshot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("generation", &self.view.data.generation().get())
            .field("lsn", &self.view.lsn.get())
            .field("len", &self.view.index.len())
            .field("slot_count", &self.view.end_slot.get())
            .finish()
    }
}

impl<T: Element> Snapshot<T> {
    /// The view of `g` as it stands now: the index's shards shared as one
    /// consistent state, with the LSN and the file end of the last batch
    /// applied to them (so the end covers every slot they name and no
    /// record of a batch they do not hold).
    pub(crate) fn of(g: &Generation, lock: Option<Arc<std::fs::File>>) -> Self {
        let (index, _, lsn, end_slot) = g.index.shared_shards();
        let view = View {
            data: Arc::clone(&g.data),
            index,
            lsn,
            end_slot,
            by_id: OnceLock::new(),
            by_slot: OnceLock::new(),
            _lock: lock,
        };
        Self { view: Arc::new(view), _element: PhantomData }
    }

    /// The LSN of the last batch this view holds: every batch up to it is in
    /// the view, none after it. On a store, the batches in a view are those
    /// its writes made visible (at `Sync` only after their sync); on a
    /// follower, those it has applied (see docs/DURABILITY.md, "What a
    /// follower sees").
    pub fn lsn(&self) -> u64 {
        self.view.lsn.get()
    }

    /// The generation whose data file the view reads (see "Slots").
    pub fn generation(&self) -> u32 {
        self.view.data.generation().get()
    }

    /// The number of vectors in the view.
    pub fn len(&self) -> usize {
        self.view.index.len()
    }

    /// Whether the view holds no vector.
    pub fn is_empty(&self) -> bool {
        self.view.index.len() == 0
    }

    /// The number of elements in every vector of the view (the store's
    /// dimension).
    pub fn dim(&self) -> usize {
        self.view.data.payload_bytes() / size_of::<T>()
    }

    /// Whether `id` is in the view.
    #[inline]
    pub fn contains(&self, id: u64) -> bool {
        self.view.index.get(id).is_some()
    }

    /// Vector `id` as of the view, zero-copy, or `None` if it is absent.
    #[inline]
    pub fn get(&self, id: u64) -> Option<&[T]> {
        let slot = self.view.index.get(id)?;
        Some(self.payload(slot))
    }

    /// Vectors `ids[i]` as of the view, in order, into `out` (cleared
    /// first): `out[i]` is what [`get`](Self::get) returns for `ids[i]`.
    ///
    /// Every vector's first line, and the first line of each further page
    /// it reaches, is requested before any is returned, so the memory reads
    /// of a batch overlap — an HNSW or IVF search that
    /// scores its candidates in batches waits for memory once per batch
    /// rather than once per vector. Reusing `out` keeps the call
    /// allocation-free.
    ///
    /// ```
    /// use quiver_storage::VectorStore;
    /// let dir = tempfile::tempdir()?;
    /// let store: VectorStore<f32> = VectorStore::open(dir.path().join("v"), 2)?;
    /// store.store_batch(&[(1, &[1.0, 1.0][..]), (2, &[2.0, 2.0][..])])?;
    /// let snapshot = store.snapshot();
    /// let mut out = Vec::new();
    /// snapshot.get_many_into(&[2, 9, 1], &mut out);
    /// assert_eq!(out, [Some(&[2.0, 2.0][..]), None, Some(&[1.0, 1.0][..])]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_many_into<'s>(&'s self, ids: &[u64], out: &mut Vec<Option<&'s [T]>>) {
        out.clear();
        out.extend(ids.iter().map(|&id| {
            let v = self.get(id)?;
            prefetch(bytemuck::cast_slice(v));
            Some(v)
        }));
    }

    /// [`get_many_into`](Self::get_many_into) into a new vector.
    pub fn get_many(&self, ids: &[u64]) -> Vec<Option<&[T]>> {
        let mut out = Vec::with_capacity(ids.len());
        self.get_many_into(ids, &mut out);
        out
    }

    /// The slot of `id`'s vector in this view (see "Slots").
    #[inline]
    pub fn slot_of(&self, id: u64) -> Option<u64> {
        self.view.index.get(id).map(|s| s.get())
    }

    /// The vector written at `slot`, zero-copy: one address computation.
    /// `None` only for a slot at or past [`slot_count`](Self::slot_count).
    ///
    /// Any slot below `slot_count` holds the vector its record was written
    /// with — also a slot that is no longer live in this view (an id since
    /// overwritten or deleted), and a tombstone, whose payload is zeros. A
    /// slot from [`slot_of`](Self::slot_of) is live; [`id_at`](Self::id_at)
    /// tells whether any other is.
    #[inline]
    pub fn vector_at(&self, slot: u64) -> Option<&[T]> {
        let slot = Slot::from(slot);
        if slot >= self.view.end_slot {
            return None;
        }
        Some(self.payload(slot))
    }

    /// The id whose live vector is at `slot` in this view, or `None` if the
    /// slot is past the end or its record is not the live one of its id
    /// (overwritten, deleted, or a tombstone). A binary search in the
    /// view's entries sorted by slot (sorted once, on the first call of
    /// this or [`iter`](Self::iter)).
    pub fn id_at(&self, slot: u64) -> Option<u64> {
        let slot = Slot::from(slot);
        let by_slot = self.by_slot();
        by_slot.binary_search_by_key(&slot, |&(_, s)| s).ok().map(|at| by_slot[at].0)
    }

    /// The number of slots the view covers: every slot its vectors are at is
    /// below this.
    pub fn slot_count(&self) -> u64 {
        self.view.end_slot.get()
    }

    /// The distance in bytes from one slot's vector to the next's in the
    /// mapping: the record size (FORMAT.md, "Records"), a multiple of the
    /// payload alignment.
    pub fn slot_stride_bytes(&self) -> usize {
        self.view.data.record_size_bytes() as usize
    }

    /// The vectors of every slot below [`slot_count`](Self::slot_count) as
    /// one zero-copy byte span: slot `s`'s vector is the
    /// `dim() * size_of::<T>()` bytes at `s * slot_stride_bytes()`. This is
    /// what a strided array over all slots (NumPy's, faiss's) is built on;
    /// the slots that are not live hold old vectors or zeros, as
    /// [`vector_at`](Self::vector_at) says.
    ///
    /// `None` if the view has no slot, or if its records span more than one
    /// mapped window (a data file past the map window, 64 GiB by default);
    /// `vector_at` reads every slot in either case.
    ///
    /// ```
    /// use quiver_storage::VectorStore;
    /// let dir = tempfile::tempdir()?;
    /// let store: VectorStore<f32> = VectorStore::open(dir.path().join("v"), 2)?;
    /// store.store_batch(&[(1, &[1.0, 2.0][..]), (2, &[3.0, 4.0][..])])?;
    /// let snapshot = store.snapshot();
    /// let span = snapshot.slot_payloads().expect("one window");
    /// let second = &span[snapshot.slot_stride_bytes()..][..8];
    /// assert_eq!(bytemuck::cast_slice::<u8, f32>(second), snapshot.vector_at(1).expect("slot 1"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn slot_payloads(&self) -> Option<&[u8]> {
        self.view.data.payload_span(self.view.end_slot)
    }

    /// Every id in the view, unordered.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.view.index.entries().map(|(id, _)| id)
    }

    /// Every `(id, vector)` in the view, in file order, zero-copy — the fast
    /// way to scan: the kernel reads ahead, and nothing is allocated per
    /// vector. The first scan of a view sorts its entries by slot once
    /// (O(n log n), 16 bytes per vector, kept with the view and its clones).
    ///
    /// ```
    /// use quiver_storage::VectorStore;
    /// let dir = tempfile::tempdir()?;
    /// let store: VectorStore<f32> = VectorStore::open(dir.path().join("v"), 2)?;
    /// store.store_batch(&[(1, &[1.0, 0.0][..]), (2, &[0.0, 2.0][..])])?;
    /// store.store(1, &[5.0, 5.0])?; // overwritten: the old record is skipped
    /// let snapshot = store.snapshot();
    /// let seen: Vec<(u64, f32)> = snapshot.iter().map(|(id, v)| (id, v[0])).collect();
    /// assert_eq!(seen, [(2, 0.0), (1, 5.0)]);
    /// assert_eq!(snapshot.iter().nth(1).map(|(id, _)| id), Some(1)); // a skip is O(1)
    /// assert_eq!(snapshot.dim(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&self) -> SnapshotIter<'_, T> {
        SnapshotIter { snapshot: self, entries: self.by_slot().iter() }
    }

    /// The vectors whose ids fall in `ids`, in id order — forward, or
    /// backward with `.rev()` — zero-copy, with [`SnapshotRange::seek`] and
    /// [`SnapshotRange::seek_back`] to jump within the range.
    ///
    /// The first ordered read of a view sorts its ids once (O(n log n),
    /// 16 bytes per vector, kept with the view and shared by its clones);
    /// after that a range costs two binary searches.
    ///
    /// ```
    /// use quiver_storage::VectorStore;
    /// let dir = tempfile::tempdir()?;
    /// let store: VectorStore<f32> = VectorStore::open(dir.path().join("v"), 1)?;
    /// for id in [5, 1, 9, 3, 7] {
    ///     store.store(id, &[id as f32])?;
    /// }
    /// let snapshot = store.snapshot();
    /// let ids = |r: quiver_storage::SnapshotRange<'_, f32>| r.map(|(id, _)| id).collect::<Vec<_>>();
    /// assert_eq!(ids(snapshot.range(3..=7)), [3, 5, 7]);
    /// assert_eq!(snapshot.range(..).rev().map(|(id, _)| id).collect::<Vec<_>>(), [9, 7, 5, 3, 1]);
    /// let mut cursor = snapshot.range(..);
    /// cursor.seek(4); // the first id >= 4
    /// assert_eq!(cursor.next().map(|(id, v)| (id, v[0])), Some((5, 5.0)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn range(&self, ids: impl RangeBounds<u64>) -> SnapshotRange<'_, T> {
        let sorted = self.by_id();
        let front = match ids.start_bound() {
            Bound::Included(&a) => sorted.partition_point(|&(id, _)| id < a),
            Bound::Excluded(&a) => sorted.partition_point(|&(id, _)| id <= a),
            Bound::Unbounded => 0,
        };
        let back = match ids.end_bound() {
            Bound::Included(&b) => sorted.partition_point(|&(id, _)| id <= b),
            Bound::Excluded(&b) => sorted.partition_point(|&(id, _)| id < b),
            Bound::Unbounded => sorted.len(),
        };
        let front = front.min(back);
        SnapshotRange { snapshot: self, sorted, lo: front, hi: back, front, back }
    }

    fn by_slot(&self) -> &[(u64, Slot)] {
        self.view.by_slot.get_or_init(|| self.entries_sorted_by(|&(_, slot)| slot.get()))
    }

    fn by_id(&self) -> &[(u64, Slot)] {
        self.view.by_id.get_or_init(|| self.entries_sorted_by(|&(id, _)| id))
    }

    /// Every `(id, slot)` of the view, sorted by `key`.
    fn entries_sorted_by(&self, key: impl FnMut(&(u64, Slot)) -> u64) -> Box<[(u64, Slot)]> {
        let mut all: Vec<(u64, Slot)> = Vec::with_capacity(self.view.index.len());
        all.extend(self.view.index.entries());
        all.sort_unstable_by_key(key);
        all.into_boxed_slice()
    }

    /// Relabels the slots of an older view of the same store for this one:
    /// `(old slot, new slot)` for every id that is in both views with the
    /// same record (the vector the older view read, copied by a compaction
    /// or untouched). Ids overwritten or deleted since are not listed. An
    /// index that stores slots and sees [`generation`](Self::generation)
    /// change rewrites its slots with this instead of rebuilding, then
    /// catches up on what changed.
    pub fn relabel_from<'a>(&'a self, older: &'a Snapshot<T>) -> impl Iterator<Item = (u64, u64)> + 'a {
        let same_generation = self.view.data.generation() == older.view.data.generation();
        older.view.index.entries().filter_map(move |(id, old)| {
            let new = self.view.index.get(id)?;
            if same_generation {
                return (new == old).then_some((old.get(), new.get()));
            }
            // Across generations a record is carried over byte for byte, so
            // the same record has the same LSN in both files.
            let same = self.view.data.record_lsn(new)? == older.view.data.record_lsn(old)?;
            same.then_some((old.get(), new.get()))
        })
    }

    /// The data file the view reads.
    pub(super) fn data(&self) -> &DataFile {
        &self.view.data
    }

    /// The view's end: every record below it is committed and in the view.
    pub(super) fn end_slot(&self) -> Slot {
        self.view.end_slot
    }

    /// The payload at `slot`, which must be below the view's end (every
    /// slot in its tables is): those records were published before the
    /// view was taken.
    #[inline]
    pub(super) fn payload(&self, slot: Slot) -> &[T] {
        self.view.data.payload::<T>(slot).expect("a slot below the view's end is published")
    }
}

/// The iterator of [`Snapshot::range`]: `(id, vector)` in id order, from
/// both ends, with seeks.
#[derive(Debug)]
pub struct SnapshotRange<'a, T: Element> {
    snapshot: &'a Snapshot<T>,
    sorted: &'a [(u64, Slot)],
    /// The range's bounds in `sorted`, and the part not yet returned.
    lo: usize,
    hi: usize,
    front: usize,
    back: usize,
}

impl<T: Element> SnapshotRange<'_, T> {
    /// Moves the front to the first id `>= id` within the range (back to
    /// the range's start if `id` is below it), so `next` continues there.
    /// Ids already returned from the back stay returned.
    pub fn seek(&mut self, id: u64) {
        let at = self.lo + self.sorted[self.lo..self.hi].partition_point(|&(i, _)| i < id);
        self.front = at.min(self.back);
    }

    /// Moves the back to the last id `<= id` within the range, so
    /// `next_back` continues there. Ids already returned from the front
    /// stay returned.
    pub fn seek_back(&mut self, id: u64) {
        let at = self.lo + self.sorted[self.lo..self.hi].partition_point(|&(i, _)| i <= id);
        self.back = at.max(self.front);
    }
}

impl<'a, T: Element> Iterator for SnapshotRange<'a, T> {
    type Item = (u64, &'a [T]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.front == self.back {
            return None;
        }
        let (id, slot) = self.sorted[self.front];
        self.front += 1;
        Some((id, self.snapshot.payload(slot)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.back - self.front, Some(self.back - self.front))
    }
}

impl<T: Element> DoubleEndedIterator for SnapshotRange<'_, T> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front == self.back {
            return None;
        }
        self.back -= 1;
        let (id, slot) = self.sorted[self.back];
        Some((id, self.snapshot.payload(slot)))
    }
}

impl<T: Element> ExactSizeIterator for SnapshotRange<'_, T> {}

/// The iterator of [`Snapshot::iter`]: `(id, vector)` in file order.
#[derive(Debug)]
pub struct SnapshotIter<'a, T: Element> {
    snapshot: &'a Snapshot<T>,
    entries: std::slice::Iter<'a, (u64, Slot)>,
}

impl<'a, T: Element> Iterator for SnapshotIter<'a, T> {
    type Item = (u64, &'a [T]);

    fn next(&mut self) -> Option<Self::Item> {
        let &(id, slot) = self.entries.next()?;
        Some((id, self.snapshot.payload(slot)))
    }

    // Skipping is O(1), not n payload lookups: a scan split over threads
    // starts each part with `iter().skip(start)`.
    fn nth(&mut self, n: usize) -> Option<Self::Item> {
        let &(id, slot) = self.entries.nth(n)?;
        Some((id, self.snapshot.payload(slot)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl<T: Element> ExactSizeIterator for SnapshotIter<'_, T> {}

impl<T: Element> VectorStore<T> {
    /// An immutable read view of the store as it stands: every acknowledged
    /// write up to [`Snapshot::lsn`], none after. Cheap to take (no entry is
    /// copied), owned, and never blocks a writer; see [`Snapshot`].
    pub fn snapshot(&self) -> Snapshot<T> {
        self.reads.snapshot()
    }
}
