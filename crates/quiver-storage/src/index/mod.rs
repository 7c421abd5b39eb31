//! The id -> slot index: a mapped base and in-memory shards over it.
//!
//! It owns the map from id to record slot and the rules that make a batch
//! visible atomically; it must never make a reader wait for a rehash, a
//! large free or a whole-index copy, and never make a writer wait for a copy.
//!
//! # Base and shards
//!
//! The ids of the checkpoint an index was opened from stay in its [`Base`]:
//! the snapshot file, mapped and probed in place, never loaded (so open
//! costs the same at any size, and those ids cost page cache, not heap).
//! Every change since lives in the shards: a stored id maps to its slot, an
//! id removed from the base maps to [`REMOVED`]. A lookup asks the shard
//! first and the base only when the shard does not know the id. An index
//! built in memory (a new store, a compaction's new generation, a rebuild)
//! has an empty base. The number of ids is counted as batches are applied,
//! inside the same window as the changes.
//!
//! Sharded by id so that reader threads on different ids do not bounce one
//! lock word between cores. A batch is applied while holding the write locks
//! of every shard it touches, taken in shard order, so a reader of single
//! ids (`get`, `contains`) sees it all or not at all. A shard never rehashes
//! under its write lock: when it needs more room, a larger copy is built
//! under an upgradable read lock (which admits readers but no other mutator)
//! and swapped in, and the old table is freed after the write lock is
//! released, so a reader waits at most for one batch's inserts or one
//! pointer swap, never a rehash or a large free.
//!
//! # Snapshots without stopping writers
//!
//! `len`, `ids` and `entries` are consistent snapshots: each returns the
//! index as it stood between two batches. They do not get that by holding
//! every shard's read lock for the whole copy (a writer's `apply` would then
//! wait for a copy of the whole index); they use a sequence lock instead:
//!
//! - `apply` runs one at a time (the `apply_lock` mutex; callers already
//!   serialise batches, so it is uncontended). Around its changes it bumps
//!   `version`: odd from before the first change until after the last
//!   touched shard is unlocked, even again after that.
//! - A snapshot reads an even `version`, copies the shards one by one, each
//!   under its own read lock only, then reads `version` again. If it is
//!   unchanged, no batch changed any shard during the copy, so the copy is
//!   the state after the batch numbered by that version, whole. Otherwise it
//!   discards the copy and retries.
//! - After `OPTIMISTIC_SNAPSHOTS` invalidated attempts it stops retrying:
//!   it takes `apply_lock` (so no batch can start) and copies once more,
//!   shard by shard. Snapshots therefore cannot be starved by a stream of
//!   batches; only then does a writer wait, for one copy, as it always did.
//!
//! Why the check is sound (Rust's memory model, not timing): the data is
//! always read under a shard's read lock, never racily. If a snapshot's copy
//! of some shard saw a change of batch `B`, then `B`'s odd bump, which is
//! sequenced before the change, happens before the shard's write unlock,
//! which synchronises with the snapshot's read lock, which is sequenced
//! before the second `version` load; by coherence that load sees the odd
//! bump or a later value, so it differs from the first load unless the first
//! load already saw `B` started, which is odd and never accepted. Conversely
//! an even first load (Acquire) that saw `B`'s final bump (Release) happens
//! after all of `B`'s changes, so the copy sees all of them. So an accepted
//! copy saw every change of the batches before its version and none after.
//!
//! Swapping in a grown table does not change the contents, so it does not
//! bump `version`: a snapshot copying that shard holds its read lock, and
//! the swap waits for it. Lock order: `apply_lock`, then shard locks in
//! shard order; a snapshot holds at most one shard lock at a time.
//!
//! # Growth is fallible where it can be refused
//!
//! `try_reserve` (what `reserve_capacity` uses to presize) never aborts: a
//! request whose table could not fit in this machine's physical memory is
//! refused up front, and every table is allocated with `try_reserve`, so an
//! allocation the allocator refuses is an error too. The up-front bound is
//! needed as well because Linux overcommits: each shard's allocation alone
//! may be granted, yet initialising the control bytes of all the shards would touch
//! more memory than exists and bring the OOM killer instead of an error.
//! Growth ahead of a batch (`reserve_for`) is best effort: a batch that is
//! already logged must be applied, so if the table cannot be grown ahead,
//! the inserts grow it themselves, as any Rust collection does.

use std::collections::TryReserveError;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock, RwLockUpgradableReadGuard, RwLockWriteGuard};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::ids::{Lsn, Slot};

mod base;

pub(crate) use base::{Base, Rebuild};

/// Number of shards (a power of two).
pub(crate) const SHARDS: usize = 1024;
const SHARD_BITS: u32 = SHARDS.trailing_zeros();

/// How many times a snapshot copies the shards optimistically before it
/// holds batches off to copy them once more (see the module docs). A failed
/// attempt costs the reader one copy and the writers nothing.
const OPTIMISTIC_SNAPSHOTS: u32 = 4;

/// A lower bound on the memory one id costs in a presized table: a slot of
/// 16 bytes (id and slot number) and one control byte, in a table at most
/// 7/8 full, is 19.4 bytes; rounded down, so the bound never refuses a
/// request that could fit.
const TABLE_BYTES_PER_ID_AT_LEAST: u64 = 19;

pub(crate) type Map = FxHashMap<u64, Slot>;

/// What a shard holds for an id of the base that has been removed since.
/// No record has this slot: slots are bounded by the largest data file.
pub(crate) const REMOVED: Slot = Slot::REMOVED;

/// Why `Index::try_reserve` made no promise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReserveError {
    /// The ids the index would have had to hold (present plus requested).
    pub requested_ids: u64,
    /// What could be had: the ids that fit in physical memory when the
    /// request was refused up front, or the ids the index already has room
    /// for when the allocator refused a table.
    pub limit_ids: u64,
}

/// One change to the index: `Some(slot)` stores, `None` removes.
pub(crate) type Change = (u64, Option<Slot>);

/// The id -> slot map.
#[derive(Debug)]
pub(crate) struct Index {
    /// Each shard's table is shared, copy-on-write, with the read views
    /// ([`Index::shared_shards`]) taken since it last changed.
    shards: Box<[RwLock<Arc<Map>>]>,
    /// The ids the shards do not know about (module docs).
    base: Arc<Base>,
    /// Set once a snapshot of this index has been installed (see
    /// `base_needs_rewrite`).
    base_rewritten: std::sync::atomic::AtomicBool,
    /// The ids the shards add to the base's count (negative when they
    /// remove more than they add), stored once per batch inside its version
    /// window. The base's own count only changes if a damaged block's ids
    /// are lost (see `base`).
    delta: AtomicI64,
    /// Held by `apply` (and by a snapshot that gave up retrying): the
    /// version protocol needs one batch at a time.
    apply_lock: Mutex<()>,
    /// Odd while a batch is being applied, even between batches.
    version: AtomicU64,
    /// The LSN of the last batch applied with `apply_batch` (or set with
    /// `set_position`) and the data file's end after it, changed inside the
    /// version window like the shards, so a snapshot reads the state, its
    /// LSN and its end as one.
    lsn: AtomicU64,
    end_slot: AtomicU64,
    /// How snapshots went, so tests can show which path they exercised.
    #[cfg(test)]
    snapshot_stats: SnapshotStats,
}

/// Counts of snapshot attempts, for tests.
#[cfg(test)]
#[derive(Debug, Default)]
struct SnapshotStats {
    retries: AtomicU64,
    fallbacks: AtomicU64,
}

impl Default for Index {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

#[inline]
/// The shards `changes` touch, ascending, each once. A batch of a few
/// changes (the common single `store`) sorts them; a large one marks a
/// table of every shard.
fn touched_shards(changes: &[Change]) -> Vec<usize> {
    if changes.len() <= 64 {
        let mut shards: Vec<usize> = changes.iter().map(|&(id, _)| shard_of(id)).collect();
        shards.sort_unstable();
        shards.dedup();
        shards
    } else {
        let mut touched = [false; SHARDS];
        for &(id, _) in changes {
            touched[shard_of(id)] = true;
        }
        (0..SHARDS).filter(|&s| touched[s]).collect()
    }
}

/// Where `id`'s shard is in `shards` (from [`touched_shards`] of a batch
/// holding `id`).
fn position_of(shards: &[usize], id: u64) -> usize {
    shards.binary_search(&shard_of(id)).expect("the batch's shards include every id's")
}

pub(crate) fn shard_of(id: u64) -> usize {
    // Fibonacci hashing: spreads sequential ids across shards.
    (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SHARD_BITS)) as usize
}

/// A consistent read view of an index: its shards, shared, and its base.
#[derive(Debug)]
pub(crate) struct IndexView {
    shards: Box<[Arc<Map>]>,
    base: Arc<Base>,
    delta: i64,
}

impl IndexView {
    /// The number of ids in the view.
    pub(crate) fn len(&self) -> usize {
        count(&self.base, self.delta)
    }

    /// The slot of `id`.
    #[inline]
    pub(crate) fn get(&self, id: u64) -> Option<Slot> {
        let shard = &self.shards[shard_of(id)];
        // After a reopen most shards hold nothing: skip hashing into them.
        let in_shard = if shard.is_empty() { None } else { shard.get(&id).copied() };
        resolve(in_shard, &self.base, id)
    }

    /// Every `(id, slot)`, unordered.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (u64, Slot)> + '_ {
        let changed = self.shards.iter().flat_map(|m| m.iter().map(|(&id, &slot)| (id, slot)));
        let kept = self.base.entries().filter(|&(id, _)| !self.shards[shard_of(id)].contains_key(&id));
        changed.filter(|&(_, slot)| slot != REMOVED).chain(kept)
    }
}

/// The number of ids of a base and the shards' `delta` over it.
fn count(base: &Base, delta: i64) -> usize {
    (base.len() as i64).saturating_add(delta).max(0) as usize
}

/// The answer for `id` given what its shard holds for it.
#[inline]
fn resolve(in_shard: Option<Slot>, base: &Base, id: u64) -> Option<Slot> {
    match in_shard {
        Some(REMOVED) => None,
        Some(slot) => Some(slot),
        None => base.get(id),
    }
}

impl Index {
    /// An index with room for `capacity` ids without rehashing.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self::over(Arc::new(Base::default()), capacity)
    }

    /// An index whose ids are those of `base`, with room for `capacity`
    /// changes in its shards.
    pub(crate) fn over(base: Arc<Base>, capacity: usize) -> Self {
        let per = capacity.div_ceil(SHARDS) + capacity.div_ceil(SHARDS) / 8;
        Self {
            shards: (0..SHARDS)
                .map(|_| RwLock::new(Arc::new(Map::with_capacity_and_hasher(per, Default::default()))))
                .collect(),
            delta: AtomicI64::new(0),
            base_rewritten: std::sync::atomic::AtomicBool::new(false),
            base,
            apply_lock: Mutex::new(()),
            version: AtomicU64::new(0),
            lsn: AtomicU64::new(0),
            end_slot: AtomicU64::new(0),
            #[cfg(test)]
            snapshot_stats: SnapshotStats::default(),
        }
    }

    /// The slot of `id`.
    #[inline]
    pub(crate) fn get(&self, id: u64) -> Option<Slot> {
        // The shard's lock is released before the base is probed: the base
        // never changes, and a batch that lands in between is one this
        // read simply comes before.
        let in_shard = self.shards[shard_of(id)].read().get(&id).copied();
        resolve(in_shard, &self.base, id)
    }

    /// Whether `id` is present.
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.get(id).is_some()
    }

    /// The number of ids after the last whole batch.
    pub(crate) fn len(&self) -> usize {
        count(&self.base, self.delta.load(Ordering::Acquire))
    }

    /// Why a block of the base failed its check, if one did, and what was
    /// lost if the data file could not rebuild it.
    pub(crate) fn base_damage(&self) -> Option<&str> {
        self.base.damage()
    }

    /// Whether the next checkpoint must write a new snapshot although
    /// nothing changed: a block of the base failed its check and was
    /// rebuilt whole, and no snapshot has been written since.
    pub(crate) fn base_needs_rewrite(&self) -> bool {
        self.base.needs_rewrite() && !self.base_rewritten.load(Ordering::Acquire)
    }

    /// Records that a snapshot of this index has been installed, so a
    /// damaged base no longer calls for one.
    pub(crate) fn snapshot_written(&self) {
        self.base_rewritten.store(true, Ordering::Release);
    }

    /// What was lost, if a damaged block of the base could not be rebuilt
    /// (see `base`): nothing may then be written from this index.
    pub(crate) fn base_loss(&self) -> Option<&str> {
        self.base.loss()
    }

    /// Whether the index is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All ids, as one consistent snapshot, unordered.
    pub(crate) fn ids(&self) -> Vec<u64> {
        self.entries().into_iter().map(|(id, _)| id).collect()
    }

    /// All `(id, slot)` pairs, as one consistent snapshot.
    pub(crate) fn entries(&self) -> Vec<(u64, Slot)> {
        let hint = self.len_estimate().max(self.len());
        let mut out =
            self.snapshot(|| Vec::with_capacity(hint), |out, _, map| out.extend(map.iter().map(|(&i, &s)| (i, s))));
        if !self.base.is_empty() {
            let changed: FxHashSet<u64> = out.iter().map(|&(id, _)| id).collect();
            out.retain(|&(_, slot)| slot != REMOVED);
            out.extend(self.base.entries().filter(|(id, _)| !changed.contains(id)));
        }
        out
    }

    /// Every shard's table, shared (one reference count each, no copy), as
    /// one consistent snapshot, with the number of ids it holds, the LSN of
    /// the last batch in it and the data file's end after that batch (every
    /// slot in the tables is below it). The next batch to touch a shard
    /// copies that shard's table first, under its upgradable lock, so the
    /// tables returned never change (see `grow_shard_with`).
    pub(crate) fn shared_shards(&self) -> (IndexView, usize, Lsn, Slot) {
        let (shards, delta, lsn, end) = self.snapshot(
            // Read right after the version check that starts each attempt:
            // `apply_batch` stores the position inside the version window,
            // so an attempt that is accepted read the position of the same
            // batch as the tables (a value seen here that a later batch
            // stored proves that batch's odd bump happened before, so the
            // closing version check fails).
            || {
                let lsn = Lsn::from(self.lsn.load(Ordering::Acquire));
                let end = Slot::from(self.end_slot.load(Ordering::Acquire));
                let delta = self.delta.load(Ordering::Acquire);
                (Vec::with_capacity(SHARDS), delta, lsn, end)
            },
            |acc, _, map| acc.0.push(Arc::clone(map)),
        );
        let view = IndexView { shards: shards.into_boxed_slice(), base: Arc::clone(&self.base), delta };
        let len = view.len();
        (view, len, lsn, end)
    }

    /// Sets the LSN and end a snapshot reports, for an index built outside
    /// the commit path (recovery's load, a follower's load, a compaction's
    /// new generation), before anyone else can see it.
    pub(crate) fn set_position(&mut self, lsn: Lsn, end_slot: Slot) {
        *self.lsn.get_mut() = lsn.get();
        *self.end_slot.get_mut() = end_slot.get();
    }

    /// The entries the shards hold (not the base's ids, which cost no
    /// heap), summed shard by shard without the version check: a capacity
    /// hint, never a promise.
    fn len_estimate(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }

    /// Folds every shard into an accumulator made by `fresh`, as one
    /// consistent snapshot (the sequence lock of the module docs). `visit`
    /// gets the accumulator, the shard number and the shard's map, under
    /// that shard's read lock only; it may run more than once per shard,
    /// each retry starting from a `fresh` accumulator.
    fn snapshot<A>(&self, mut fresh: impl FnMut() -> A, mut visit: impl FnMut(&mut A, usize, &Arc<Map>)) -> A {
        for _ in 0..OPTIMISTIC_SNAPSHOTS {
            let before = self.version.load(Ordering::Acquire);
            if before % 2 == 1 {
                // A batch is being applied; it ends after one batch's
                // in-memory work, so let it run rather than copy a state
                // that is about to be discarded.
                std::thread::yield_now();
            } else {
                let mut acc = fresh();
                for (shard, lock) in self.shards.iter().enumerate() {
                    visit(&mut acc, shard, &lock.read());
                }
                if self.version.load(Ordering::Acquire) == before {
                    return acc;
                }
            }
            #[cfg(test)]
            self.snapshot_stats.retries.fetch_add(1, Ordering::Relaxed);
        }
        // Batches kept interfering: hold them off for one copy, so a
        // snapshot always ends. Readers of single ids are not affected.
        #[cfg(test)]
        self.snapshot_stats.fallbacks.fetch_add(1, Ordering::Relaxed);
        let _no_batches = self.apply_lock.lock();
        let mut acc = fresh();
        for (shard, lock) in self.shards.iter().enumerate() {
            visit(&mut acc, shard, &lock.read());
        }
        acc
    }

    /// Makes room for the ids `changes` insert, in the `shards` they touch
    /// (from [`touched_shards`]), without holding any write lock during a
    /// rehash. Each shard is copied under its upgradable lock, so no shard
    /// changes between the copy and the swap whoever else is applying or
    /// reserving.
    fn reserve_for(&self, shards: &[usize], changes: &[Change], in_base: &[Option<Slot>]) {
        let mut incoming = vec![0usize; shards.len()];
        for (k, &(id, slot)) in changes.iter().enumerate() {
            // A removal of a base id puts a `REMOVED` entry in the shard.
            if slot.is_some() || in_base.get(k).is_some_and(Option::is_some) {
                incoming[position_of(shards, id)] += 1;
            }
        }
        for (&shard, &n) in shards.iter().zip(&incoming) {
            // Best effort: if the table cannot be grown (or copied away from
            // the read views sharing it) ahead, the changes do it under the
            // write lock (module docs).
            let _ = self.grow_shard(shard, n);
        }
    }

    /// Makes room for `additional` more ids spread over all shards, or
    /// returns an error, never aborting (see the module docs). On error some
    /// shards may have grown; that costs memory, not correctness.
    pub(crate) fn try_reserve(&self, additional: usize) -> Result<(), ReserveError> {
        let requested_ids = (self.len_estimate() as u64).saturating_add(additional as u64);
        let fits_ids = physical_memory_bytes() / TABLE_BYTES_PER_ID_AT_LEAST;
        if requested_ids > fits_ids {
            return Err(ReserveError { requested_ids, limit_ids: fits_ids });
        }
        // Below the memory bound, so far from overflowing a usize.
        let per = additional.div_ceil(SHARDS) + additional.div_ceil(SHARDS) / 8;
        for shard in 0..SHARDS {
            self.grow_shard(shard, per).map_err(|_| ReserveError { requested_ids, limit_ids: self.capacity_ids() })?;
        }
        Ok(())
    }

    /// The ids the index has room for without growing.
    fn capacity_ids(&self) -> u64 {
        self.shards.iter().map(|s| s.read().capacity() as u64).sum()
    }

    fn grow_shard(&self, shard: usize, additional: usize) -> Result<(), TryReserveError> {
        self.grow_shard_with(shard, additional, drop)
    }

    /// Grows one shard by copy-and-swap — or copies it, at its size, when a
    /// read view shares its table — and hands the replaced table to
    /// `retire` (which frees it, or drops this shard's share of it) only
    /// after the shard's lock is released: freeing a large table takes time,
    /// and readers of the shard must wait for nothing longer than the
    /// pointer swap. Tests pass a `retire` that observes the lock at the
    /// moment of the free.
    fn grow_shard_with(
        &self,
        shard: usize,
        additional: usize,
        retire: impl FnOnce(Arc<Map>),
    ) -> Result<(), TryReserveError> {
        let lock = &self.shards[shard];
        // An upgradable read excludes every other mutator (writers and other
        // growers) but not readers, so the copy cannot miss an insert and
        // readers only wait for the final swap.
        let map = lock.upgradable_read();
        // Saturating: an impossible size is refused by `try_reserve` below
        // as a capacity overflow, not by an arithmetic panic here.
        let need = map.len().saturating_add(additional);
        let shared = Arc::strong_count(&map) > 1;
        if need <= map.capacity() && !shared {
            return Ok(());
        }
        // A copy made only because a read view shares the table is sized
        // for what it holds, not for the table's capacity: a presized,
        // nearly empty shard must not cost its full size per view.
        let capacity = if need <= map.capacity() {
            need.saturating_add(need / 8)
        } else {
            need.max(map.capacity().saturating_mul(2))
        };
        let mut copy = Map::default();
        copy.try_reserve(capacity)?;
        copy.extend(map.iter().map(|(&k, &v)| (k, v)));
        let mut map = RwLockUpgradableReadGuard::upgrade(map);
        let old = std::mem::replace(&mut *map, Arc::new(copy));
        drop(map);
        retire(old);
        Ok(())
    }

    /// Applies a batch of changes atomically (every touched shard is
    /// write-locked, in shard order, while the batch is applied). Returns
    /// the slots the batch displaced, for garbage accounting.
    pub(crate) fn apply(&self, changes: &[Change]) -> Vec<Slot> {
        self.apply_inner(None, changes)
    }

    /// Applies the batch logged at `lsn`, after which the data file ends at
    /// `end_slot`, as [`Index::apply`] does, and makes them the position
    /// snapshots report from then on.
    pub(crate) fn apply_batch(&self, lsn: Lsn, end_slot: Slot, changes: &[Change]) -> Vec<Slot> {
        self.apply_inner(Some((lsn, end_slot)), changes)
    }

    fn apply_inner(&self, position: Option<(Lsn, Slot)>, changes: &[Change]) -> Vec<Slot> {
        let _one_batch_at_a_time = self.apply_lock.lock();
        let shards = touched_shards(changes);
        // The base never changes: ask it before any lock is held (a probe
        // may fault a page in from disk).
        let in_base: Vec<Option<Slot>> =
            if self.base.is_empty() { Vec::new() } else { changes.iter().map(|&(id, _)| self.base.get(id)).collect() };
        self.reserve_for(&shards, changes, &in_base);
        // Locked in ascending shard order, as every multi-shard writer does.
        let mut guards: Vec<RwLockWriteGuard<'_, Arc<Map>>> = shards.iter().map(|&s| self.shards[s].write()).collect();
        // Odd: snapshots that overlap this batch discard their copy.
        self.version.fetch_add(1, Ordering::Release);
        if let Some((lsn, end_slot)) = position {
            self.lsn.store(lsn.get(), Ordering::Release);
            self.end_slot.store(end_slot.get(), Ordering::Release);
        }
        let mut displaced = Vec::new();
        let mut delta = self.delta.load(Ordering::Relaxed);
        for (k, &(id, slot)) in changes.iter().enumerate() {
            // `reserve_for` has unshared every touched table unless a read
            // view took a share since; then it is copied here, once, under
            // the write lock (readers of that shard wait for that copy: the
            // one case they do, and only when a view is taken in the few
            // microseconds between the two).
            let map = Arc::make_mut(&mut guards[position_of(&shards, id)]);
            let base_slot = in_base.get(k).copied().flatten();
            let old = match slot {
                Some(s) => map.insert(id, s),
                // A base id stays shadowed; any other id just leaves.
                None if base_slot.is_some() => map.insert(id, REMOVED),
                None => map.remove(&id),
            };
            // What the id had before this change: the shard's entry if it
            // had one, else the base's.
            let before = match old {
                Some(REMOVED) => None,
                Some(s) => Some(s),
                None => base_slot,
            };
            displaced.extend(before);
            match (before.is_some(), slot.is_some()) {
                (false, true) => delta += 1,
                (true, false) => delta -= 1,
                _ => {}
            }
        }
        self.delta.store(delta, Ordering::Release);
        drop(guards);
        // Even again, after the last touched shard is unlocked: a snapshot
        // that reads this value starts after the whole batch.
        self.version.fetch_add(1, Ordering::Release);
        displaced
    }

    /// Builds an index from `(id, slot)` pairs, rejecting duplicate ids.
    pub(crate) fn from_entries(entries: impl ExactSizeIterator<Item = (u64, Slot)>) -> Result<Self, u64> {
        let mut index = Self::with_capacity(entries.len());
        *index.delta.get_mut() = entries.len() as i64;
        {
            let mut guards: Vec<_> = index.shards.iter().map(|s| s.write()).collect();
            for (id, slot) in entries {
                if Arc::make_mut(&mut guards[shard_of(id)]).insert(id, slot).is_some() {
                    return Err(id);
                }
            }
        }
        Ok(index)
    }
}

/// This machine's physical memory, in bytes. A container's memory limit is
/// not consulted, so this bounds what could ever fit, nothing more.
fn physical_memory_bytes() -> u64 {
    let info = rustix::system::sysinfo();
    // `totalram` is a `c_ulong`, a u64 on the 64-bit Linux Quiver targets.
    info.totalram.saturating_mul(u64::from(info.mem_unit))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    use super::*;

    /// Bumps a counter when dropped, also while a panic unwinds.
    struct BumpOnDrop<'a>(&'a AtomicUsize);

    impl Drop for BumpOnDrop<'_> {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Release);
        }
    }

    // Proves apply stores, replaces and removes, reporting displaced slots,
    // and that growth by copy-and-swap keeps every entry.
    #[test]
    fn apply_and_grow() {
        let index = Index::default();
        let changes: Vec<Change> = (0..10_000u64).map(|i| (i, Some(i.into()))).collect();
        assert!(index.apply(&changes).is_empty());
        assert_eq!(index.len(), 10_000);
        assert_eq!(index.apply(&[(5, Some(20_000.into())), (6, None), (999_999, None)]), [5, 6].map(Slot::from));
        assert_eq!(index.get(5), Some(20_000.into()));
        assert_eq!(index.get(6), None);
        assert_eq!(index.len(), 9_999);
        index.try_reserve(100_000).expect("room for 100,000 more ids");
        assert_eq!(index.len(), 9_999);
        assert_eq!(index.get(7), Some(7.into()));
    }

    // Proves growth frees the old table only after the shard's write lock is
    // released: at the moment the old table is handed over to be freed, a
    // reader can take the shard's read lock, so readers never wait for the
    // free of a large table (only for the pointer swap).
    #[test]
    fn grow_frees_the_old_table_outside_the_shard_lock() {
        let index = Index::default();
        let id = 7;
        let shard = shard_of(id);
        index.apply(&[(id, Some(70.into()))]);
        let mut readable_while_freeing = None;
        index
            .grow_shard_with(shard, 4096, |old| {
                assert_eq!(old.get(&id), Some(&70.into()), "the retired table is the one that was replaced");
                readable_while_freeing = Some(index.shards[shard].try_read().is_some());
                drop(old);
            })
            .expect("room for 4096 ids");
        assert_eq!(readable_while_freeing, Some(true), "the old table was freed under the shard's write lock");
        assert!(index.shards[shard].read().capacity() >= 4097, "the shard grew");
        assert_eq!(index.get(id), Some(70.into()), "growth kept the entry");
    }

    // Proves a snapshot in progress does not hold up a writer: while a
    // snapshot is paused in the middle of its copy, a batch to a shard it
    // has already copied is applied without waiting (the shard's write lock
    // is free), and the snapshot then returns the state after that batch,
    // whole, rather than the half-old copy it had made.
    #[test]
    fn apply_proceeds_while_a_snapshot_is_copying() {
        let index = Index::default();
        let a = (0..).find(|&id| shard_of(id) > 0).expect("some id is past shard 0");
        let b = (0..).find(|&id| shard_of(id) < shard_of(a)).expect("some id is in an earlier shard");
        index.apply(&[(a, Some(10.into()))]);
        let visits_of_a = AtomicUsize::new(0);
        let (index, visits) = (&index, &visits_of_a);
        let mut ids = std::thread::scope(|scope| {
            // Both channels live inside the scope: if an assertion below
            // fails, unwinding drops `go`, the paused snapshot wakes and the
            // scope can join it instead of hanging.
            let (paused_tx, paused_rx) = mpsc::channel::<()>();
            let (go_tx, go_rx) = mpsc::channel::<()>();
            let snapshot = scope.spawn(move || {
                index.snapshot(Vec::new, |out: &mut Vec<u64>, shard, map| {
                    if shard == shard_of(a) && visits.fetch_add(1, Ordering::Relaxed) == 0 {
                        paused_tx.send(()).expect("the test waits for the pause");
                        // An error means the test failed and stopped waiting.
                        let _ = go_rx.recv();
                    }
                    out.extend(map.keys().copied());
                })
            });
            paused_rx.recv().expect("the snapshot reaches the shard of `a`");
            assert!(
                index.shards[shard_of(b)].try_write().is_some(),
                "a snapshot in progress holds the lock of a shard it is not copying, so a writer would wait"
            );
            assert!(index.apply(&[(b, Some(20.into()))]).is_empty());
            go_tx.send(()).expect("the snapshot is waiting");
            snapshot.join().expect("the snapshot thread")
        });
        ids.sort_unstable();
        let mut expected = vec![a, b];
        expected.sort_unstable();
        assert_eq!(ids, expected, "the snapshot is the state after the batch");
        assert_eq!(visits_of_a.load(Ordering::Relaxed), 2, "the invalidated copy was retried once");
    }

    // Proves snapshots taken while batches are applied never see part of a
    // batch. Every batch moves a few ids between set A (`i`) and set B
    // (`i + OFFSET`), removing one and inserting its partner, so every whole
    // state holds exactly one of `i` and `i + OFFSET` for every `i`, and
    // `PAIRS` ids in all; a snapshot that saw half a batch would hold both
    // or neither of some pair, or the wrong number of ids. The readers start
    // after the writer's first batch and the writer stops only when they
    // have finished, so every snapshot overlaps the stream of batches.
    #[test]
    fn snapshots_never_see_half_a_batch() {
        const PAIRS: u64 = 2048;
        const OFFSET: u64 = 1 << 32;
        const READERS: usize = 2;
        const ROUNDS_PER_READER: u32 = 300;
        const PAIRS_PER_BATCH: usize = 4;
        let index = Index::default();
        index.apply(&(0..PAIRS).map(|i| (i, Some(i.into()))).collect::<Vec<_>>());
        // Counters rather than flags, each bumped by a drop guard as well,
        // so that a panicking thread releases the others instead of leaving
        // them waiting: the test fails rather than hangs.
        let started = AtomicUsize::new(0);
        let readers_done = AtomicUsize::new(0);
        let check = |ids: &mut Vec<u64>, what: &str| {
            assert_eq!(ids.len() as u64, PAIRS, "{what}: a snapshot saw part of a batch");
            ids.sort_unstable_by_key(|&id| (id % OFFSET, id));
            for (pair, &id) in ids.iter().enumerate() {
                assert_eq!(id % OFFSET, pair as u64, "{what}: pair {pair} is missing or doubled");
            }
        };
        let batches = std::thread::scope(|scope| {
            let writer = scope.spawn(|| {
                let _ends = BumpOnDrop(&started);
                let mut in_b = vec![false; PAIRS as usize];
                let mut x = 0x2545_F491_4F6C_DD1Du64;
                let mut batches = 0u64;
                while readers_done.load(Ordering::Acquire) < READERS {
                    let mut picked = Vec::with_capacity(PAIRS_PER_BATCH);
                    while picked.len() < PAIRS_PER_BATCH {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let i = x % PAIRS;
                        if !picked.contains(&i) {
                            picked.push(i);
                        }
                    }
                    let mut changes: Vec<Change> = Vec::with_capacity(2 * PAIRS_PER_BATCH);
                    for i in picked {
                        let (from, to) = if in_b[i as usize] { (i + OFFSET, i) } else { (i, i + OFFSET) };
                        changes.push((from, None));
                        changes.push((to, Some(batches.into())));
                        in_b[i as usize] = !in_b[i as usize];
                    }
                    assert_eq!(index.apply(&changes).len(), PAIRS_PER_BATCH, "each removal displaced a slot");
                    batches += 1;
                    started.fetch_add(1, Ordering::Release);
                }
                batches
            });
            for _ in 0..READERS {
                scope.spawn(|| {
                    let _ends = BumpOnDrop(&readers_done);
                    while started.load(Ordering::Acquire) == 0 {
                        std::thread::yield_now();
                    }
                    for _ in 0..ROUNDS_PER_READER {
                        assert_eq!(index.len() as u64, PAIRS, "len: a snapshot saw part of a batch");
                        check(&mut index.ids(), "ids");
                        check(&mut index.entries().into_iter().map(|(id, _)| id).collect(), "entries");
                    }
                });
            }
            writer.join().expect("the writer")
        });
        let stats = &index.snapshot_stats;
        println!(
            "{} snapshots overlapped {batches} batches: {} optimistic copies retried, {} fallbacks",
            READERS as u32 * ROUNDS_PER_READER * 3,
            stats.retries.load(Ordering::Relaxed),
            stats.fallbacks.load(Ordering::Relaxed),
        );
    }

    // Proves a snapshot cannot be starved by batches: when a batch lands
    // during every optimistic copy, the snapshot stops retrying after
    // `OPTIMISTIC_SNAPSHOTS` attempts, holds batches off for one last copy
    // and returns a whole state (every batch applied before that copy).
    #[test]
    fn snapshot_falls_back_when_batches_keep_interfering() {
        let index = Index::default();
        // Ids outside shard 0, so applying them never needs the lock of the
        // shard the snapshot is copying when it applies them.
        let mut ids = (0..).filter(|&id| shard_of(id) != 0);
        let mut applied = Vec::new();
        let mut copies = 0u32;
        let mut snapshot = index.snapshot(Vec::new, |out: &mut Vec<u64>, shard, map| {
            if shard == 0 {
                copies += 1;
                // While batches are not held off, land one during this copy.
                // The try_locks never wait, so a wrong design fails here
                // rather than deadlocking the test.
                let id = ids.next().expect("ids are plentiful");
                let free = index.apply_lock.try_lock().is_some() && index.shards[shard_of(id)].try_write().is_some();
                if free {
                    index.apply(&[(id, Some(id.into()))]);
                    applied.push(id);
                }
            }
            out.extend(map.keys().copied());
        });
        assert_eq!(copies, OPTIMISTIC_SNAPSHOTS + 1, "every optimistic copy was invalidated, then one fell back");
        assert_eq!(applied.len() as u32, OPTIMISTIC_SNAPSHOTS, "no batch landed during the fallback copy");
        assert_eq!(index.snapshot_stats.fallbacks.load(Ordering::Relaxed), 1);
        snapshot.sort_unstable();
        assert_eq!(snapshot, applied, "the fallback copy holds every batch applied before it");
    }

    // Proves reserving room for more ids than could fit in physical memory
    // is an error, not an abort (the infallible presizing this replaced
    // aborted with "memory allocation of 73014444048 bytes failed" for about
    // 2^37 ids), that a table the allocator refuses and a size overflowing
    // usize arithmetic are errors too, and that a refused request leaves the
    // index working.
    #[test]
    fn try_reserve_refuses_what_cannot_fit() {
        let index = Index::default();
        index.apply(&[(1, Some(1.into()))]);
        let fits_ids = physical_memory_bytes() / TABLE_BYTES_PER_ID_AT_LEAST;
        for additional in [fits_ids as usize, 1 << 37, usize::MAX] {
            let e = index.try_reserve(additional).expect_err("more than physical memory holds");
            assert_eq!(e, ReserveError { requested_ids: (additional as u64).saturating_add(1), limit_ids: fits_ids });
        }
        // Without the up-front bound (a shard's growth does not apply it),
        // the allocator's refusal is an error too: 2^53 ids need a table
        // larger than any 64-bit address space maps (even with 5-level page
        // tables), so the allocation always fails.
        let refused = index.grow_shard(0, 1 << 53).expect_err("no address space holds 2^53 ids").to_string();
        assert!(refused.contains("allocator returned an error"), "{refused}");
        let overflow = index.grow_shard(0, usize::MAX).expect_err("usize::MAX ids overflow").to_string();
        assert!(overflow.contains("capacity exceeded"), "{overflow}");
        index.try_reserve(1000).expect("a small request still fits");
        assert_eq!(index.apply(&[(2, Some(2.into()))]), Vec::<Slot>::new());
        assert_eq!((index.len(), index.get(1), index.get(2)), (2, Some(1.into()), Some(2.into())));
    }

    /// An index over a mapped base of `entries` (in a file under `dir`).
    fn over_base(dir: &std::path::Path, entries: &[(u64, u64)]) -> Index {
        use crate::format::snapshot::TableImage;
        let path = dir.join("base.qvs");
        let bytes = TableImage::from_entries(entries).expect("distinct").encode_file(1, 1, 1 << 40);
        std::fs::write(&path, bytes).expect("write the base");
        let base = Base::open(&path, (1, 1, 1 << 40), Box::new(|| Err("no rebuild in this test".into())));
        Index::over(Arc::new(base.expect("open the base")), 0)
    }

    // Proves changes over a mapped base behave as if the base's ids were in
    // the shards: an overwrite displaces the base's slot, a removal hides
    // the base's id (and a second removal changes nothing), a re-added id
    // is back, the count follows every case, and `entries`, `ids` and a
    // shared view list exactly the result, while a view taken before keeps
    // the state it saw.
    #[test]
    fn changes_over_a_base() {
        let dir = tempfile::tempdir().expect("tempdir");
        let index = over_base(dir.path(), &(0..1000u64).map(|i| (i, i)).collect::<Vec<_>>());
        assert_eq!((index.len(), index.get(5), index.get(1000)), (1000, Some(Slot::from(5)), None));
        let (before, ..) = index.shared_shards();
        assert_eq!(index.apply(&[(5, Some(2000.into()))]), [Slot::from(5)], "an overwrite displaces the base's slot");
        assert_eq!(index.apply(&[(6, None)]), [Slot::from(6)], "a removal displaces the base's slot");
        assert_eq!(index.apply(&[(6, None)]), [], "a second removal finds nothing");
        assert_eq!(index.apply(&[(7, None), (7, Some(2001.into()))]), [Slot::from(7)]);
        assert_eq!(index.apply(&[(8, Some(2002.into())), (8, None)]), [Slot::from(8), Slot::from(2002)]);
        assert_eq!(index.apply(&[(1000, Some(2003.into()))]), [], "a new id displaces nothing");
        assert_eq!(index.len(), 999, "6 and 8 left, 1000 came");
        assert_eq!(index.get(5), Some(Slot::from(2000)));
        assert_eq!((index.get(6), index.contains(6), index.get(8)), (None, false, None));
        assert_eq!(index.get(7), Some(Slot::from(2001)));
        let mut expected: Vec<(u64, Slot)> =
            (0..1000u64).filter(|&i| i != 6 && i != 8).map(|i| (i, i.into())).collect();
        for (id, slot) in [(5, 2000u64), (7, 2001)] {
            let at = expected.iter().position(|&(i, _)| i == id).expect("listed");
            expected[at].1 = slot.into();
        }
        expected.push((1000, 2003.into()));
        let mut entries = index.entries();
        entries.sort_unstable();
        assert_eq!(entries, expected);
        let mut ids = index.ids();
        ids.sort_unstable();
        assert_eq!(ids, expected.iter().map(|&(id, _)| id).collect::<Vec<_>>());
        let (view, len, ..) = index.shared_shards();
        let mut seen: Vec<(u64, Slot)> = view.entries().collect();
        seen.sort_unstable();
        assert_eq!((seen, len), (expected, 999));
        assert_eq!(before.entries().count(), 1000);
        assert_eq!((before.get(5), before.get(6), before.get(1000)), (Some(Slot::from(5)), Some(Slot::from(6)), None));
    }

    // Proves duplicate ids in a snapshot are rejected.
    #[test]
    fn from_entries_rejects_duplicates() {
        let entries = |pairs: &[(u64, u64)]| pairs.iter().map(|&(id, slot)| (id, Slot::from(slot))).collect::<Vec<_>>();
        assert_eq!(Index::from_entries(entries(&[(1, 1), (2, 2), (1, 3)]).into_iter()).err(), Some(1));
        assert_eq!(Index::from_entries(entries(&[(1, 1), (2, 2)]).into_iter()).map(|i| i.len()).ok(), Some(2));
    }

    // Proves a table shared with a read view never changes: a batch after
    // the view is taken copies the shards it touches first (for puts and
    // removals alike, also for a table shared by a second holder), and the
    // view keeps the old contents, LSN and end while the index moves on.
    // (The fallback copy under the write lock, for a share taken between
    // the two, needs a second thread at the exact moment; `Arc::make_mut`
    // is what guarantees it.)
    #[test]
    fn shared_tables_never_change() {
        let index = Index::default();
        let changes: Vec<Change> = (0..5_000u64).map(|i| (i, Some(i.into()))).collect();
        index.apply_batch(Lsn::from(1), Slot::from(5_000), &changes);
        let (view, len, lsn, end) = index.shared_shards();
        assert_eq!((len, lsn, end), (5_000, Lsn::from(1), Slot::from(5_000)));
        index.apply_batch(
            Lsn::from(2),
            Slot::from(5_002),
            &[(7, Some(5_000.into())), (8, None), (9_999, Some(5_001.into()))],
        );
        let shard = shard_of(11);
        let sneaked = Arc::clone(&index.shards[shard].read());
        index.apply_inner(None, &[(11, None)]);
        assert_eq!(sneaked.get(&11), Some(&Slot::from(11)), "a removal copied the shared table first");
        assert_eq!(view.entries().count(), 5_000);
        assert_eq!(view.get(7), Some(Slot::from(7)));
        assert_eq!(view.get(8), Some(Slot::from(8)));
        assert_eq!(view.get(9_999), None);
        assert_eq!(index.get(7), Some(Slot::from(5_000)));
        assert_eq!(index.get(8), None);
        assert_eq!(index.get(11), None);
        let (_, len, lsn, end) = index.shared_shards();
        // 5,000, one added, 8 and 11 removed; the last removal set no position.
        assert_eq!((len, lsn, end), (4_999, Lsn::from(2), Slot::from(5_002)));
    }
}
