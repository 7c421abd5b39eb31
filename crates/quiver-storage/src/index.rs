//! The in-memory id -> slot index.
//!
//! Sharded by id so that reader threads on different ids do not bounce one
//! lock word between cores. A batch is applied while holding the write locks
//! of every shard it touches, taken in shard order, so it becomes visible
//! atomically; `len` and `ids` take every read lock and so see a consistent
//! snapshot. A shard never rehashes under its write lock: when it needs more
//! room, a larger copy is built under an upgradable read lock (which admits
//! readers but no other mutator) and swapped in, and the old table is freed
//! after the write lock is released, so a reader waits at most for one
//! batch's inserts or one pointer swap, never a rehash or a large free.

use parking_lot::{RwLock, RwLockUpgradableReadGuard, RwLockWriteGuard};
use rustc_hash::FxHashMap;

/// Number of shards (a power of two).
pub const SHARDS: usize = 64;
const SHARD_BITS: u32 = SHARDS.trailing_zeros();

type Map = FxHashMap<u64, u64>;

/// One change to the index: `Some(slot)` stores, `None` removes.
pub type Change = (u64, Option<u64>);

/// The id -> slot map.
#[derive(Debug)]
pub struct Index {
    shards: Box<[RwLock<Map>]>,
}

impl Default for Index {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

#[inline]
fn shard_of(id: u64) -> usize {
    // Fibonacci hashing: spreads sequential ids across shards.
    (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SHARD_BITS)) as usize
}

impl Index {
    /// An index with room for `capacity` ids without rehashing.
    pub fn with_capacity(capacity: usize) -> Self {
        let per = capacity.div_ceil(SHARDS) + capacity.div_ceil(SHARDS) / 8;
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(Map::with_capacity_and_hasher(per, Default::default()))).collect(),
        }
    }

    /// The slot of `id`.
    #[inline]
    pub fn get(&self, id: u64) -> Option<u64> {
        self.shards[shard_of(id)].read().get(&id).copied()
    }

    /// Whether `id` is present.
    pub fn contains(&self, id: u64) -> bool {
        self.shards[shard_of(id)].read().contains_key(&id)
    }

    /// The number of ids, as one consistent snapshot.
    pub fn len(&self) -> usize {
        let guards: Vec<_> = self.shards.iter().map(|s| s.read()).collect();
        guards.iter().map(|g| g.len()).sum()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All ids, as one consistent snapshot, unordered.
    pub fn ids(&self) -> Vec<u64> {
        let guards: Vec<_> = self.shards.iter().map(|s| s.read()).collect();
        let mut out = Vec::with_capacity(guards.iter().map(|g| g.len()).sum());
        for g in &guards {
            out.extend(g.keys().copied());
        }
        out
    }

    /// All `(id, slot)` pairs, as one consistent snapshot.
    pub fn entries(&self) -> Vec<(u64, u64)> {
        let guards: Vec<_> = self.shards.iter().map(|s| s.read()).collect();
        let mut out = Vec::with_capacity(guards.iter().map(|g| g.len()).sum());
        for g in &guards {
            out.extend(g.iter().map(|(&i, &s)| (i, s)));
        }
        out
    }

    /// Makes room for `additional` more ids in every shard `changes` touch,
    /// without holding any write lock during a rehash. Only the single
    /// writer calls this, so no shard changes between the copy and the swap.
    pub fn reserve_for(&self, changes: &[Change]) {
        let mut incoming = [0usize; SHARDS];
        for &(id, slot) in changes {
            if slot.is_some() {
                incoming[shard_of(id)] += 1;
            }
        }
        for (shard, &n) in incoming.iter().enumerate() {
            if n > 0 {
                self.grow_shard(shard, n);
            }
        }
    }

    /// Makes room for `additional` ids spread over all shards.
    pub fn reserve(&self, additional: usize) {
        let per = additional.div_ceil(SHARDS) + additional.div_ceil(SHARDS) / 8;
        for shard in 0..SHARDS {
            self.grow_shard(shard, per);
        }
    }

    fn grow_shard(&self, shard: usize, additional: usize) {
        self.grow_shard_with(shard, additional, drop);
    }

    /// Grows one shard by copy-and-swap and hands the replaced table to
    /// `retire` (which frees it) only after the shard's lock is released:
    /// freeing a large table takes time, and readers of the shard must wait
    /// for nothing longer than the pointer swap. Tests pass a `retire` that
    /// observes the lock at the moment of the free.
    fn grow_shard_with(&self, shard: usize, additional: usize, retire: impl FnOnce(Map)) {
        let lock = &self.shards[shard];
        // An upgradable read excludes every other mutator (writers and other
        // growers) but not readers, so the copy cannot miss an insert and
        // readers only wait for the final swap.
        let map = lock.upgradable_read();
        let need = map.len() + additional;
        if need <= map.capacity() {
            return;
        }
        let mut bigger = Map::with_capacity_and_hasher(need.max(map.capacity() * 2), Default::default());
        bigger.extend(map.iter().map(|(&k, &v)| (k, v)));
        let mut map = RwLockUpgradableReadGuard::upgrade(map);
        let old = std::mem::replace(&mut *map, bigger);
        drop(map);
        retire(old);
    }

    /// Applies a batch of changes atomically (every touched shard is
    /// write-locked, in shard order, while the batch is applied). Returns
    /// the slots the batch displaced, for garbage accounting.
    pub fn apply(&self, changes: &[Change]) -> Vec<u64> {
        self.reserve_for(changes);
        let mut touched = [false; SHARDS];
        for &(id, _) in changes {
            touched[shard_of(id)] = true;
        }
        let mut guards: Vec<Option<RwLockWriteGuard<'_, Map>>> =
            (0..SHARDS).map(|s| touched[s].then(|| self.shards[s].write())).collect();
        let mut displaced = Vec::new();
        for &(id, slot) in changes {
            let map = guards[shard_of(id)].as_mut().expect("every touched shard is locked");
            let old = match slot {
                Some(s) => map.insert(id, s),
                None => map.remove(&id),
            };
            displaced.extend(old);
        }
        displaced
    }

    /// Builds an index from `(id, slot)` pairs, rejecting duplicate ids.
    pub fn from_entries(entries: impl ExactSizeIterator<Item = (u64, u64)>) -> Result<Self, u64> {
        let index = Self::with_capacity(entries.len());
        {
            let mut guards: Vec<_> = index.shards.iter().map(|s| s.write()).collect();
            for (id, slot) in entries {
                if guards[shard_of(id)].insert(id, slot).is_some() {
                    return Err(id);
                }
            }
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves apply stores, replaces and removes, reporting displaced slots,
    // and that growth by copy-and-swap keeps every entry.
    #[test]
    fn apply_and_grow() {
        let index = Index::default();
        let changes: Vec<Change> = (0..10_000u64).map(|i| (i, Some(i))).collect();
        assert!(index.apply(&changes).is_empty());
        assert_eq!(index.len(), 10_000);
        assert_eq!(index.apply(&[(5, Some(20_000)), (6, None), (999_999, None)]), vec![5, 6]);
        assert_eq!(index.get(5), Some(20_000));
        assert_eq!(index.get(6), None);
        assert_eq!(index.len(), 9_999);
        index.reserve(100_000);
        assert_eq!(index.len(), 9_999);
        assert_eq!(index.get(7), Some(7));
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
        index.apply(&[(id, Some(70))]);
        let mut readable_while_freeing = None;
        index.grow_shard_with(shard, 4096, |old| {
            assert_eq!(old.get(&id), Some(&70), "the retired table is the one that was replaced");
            readable_while_freeing = Some(index.shards[shard].try_read().is_some());
            drop(old);
        });
        assert_eq!(readable_while_freeing, Some(true), "the old table was freed under the shard's write lock");
        assert!(index.shards[shard].read().capacity() >= 4097, "the shard grew");
        assert_eq!(index.get(id), Some(70), "growth kept the entry");
    }

    // Proves duplicate ids in a snapshot are rejected.
    #[test]
    fn from_entries_rejects_duplicates() {
        assert_eq!(Index::from_entries([(1, 1), (2, 2), (1, 3)].into_iter()).err(), Some(1));
        assert_eq!(Index::from_entries([(1, 1), (2, 2)].into_iter()).map(|i| i.len()).ok(), Some(2));
    }
}
