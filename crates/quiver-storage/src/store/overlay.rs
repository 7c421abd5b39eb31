//! `SyncOverlay`: at `Durability::Sync`, the writer's view of ids whose
//! batches are logged but not yet visible (their group `fdatasync` is still
//! running). The writer consults it so that, say, a delete right after a
//! store of the same id sees the store; readers never do. It is owned by the
//! writer (behind the writer lock) and stays bounded by the batches in
//! flight, not by every id ever written.

use rustc_hash::FxHashMap;

use crate::ids::{Lsn, Slot};
use crate::index::Change;

/// `id -> (lsn of its batch, slot or None for a delete)` for batches not yet
/// applied to the index.
#[derive(Debug, Default)]
pub(crate) struct SyncOverlay {
    entries: FxHashMap<u64, (Lsn, Option<Slot>)>,
    max_lsn: Lsn,
    /// Size after the last sweep.
    swept_len: usize,
}

impl SyncOverlay {
    /// Records batch `lsn`'s changes as logged but not yet visible.
    pub(crate) fn insert_batch(&mut self, lsn: Lsn, changes: &[Change]) {
        for &(id, slot) in changes {
            self.entries.insert(id, (lsn, slot));
        }
        self.max_lsn = lsn;
    }

    /// The slot of `id` as the overlay says (`Some(None)` for a pending
    /// delete), or `None` if no pending batch touches it.
    pub(crate) fn get(&self, id: u64) -> Option<Option<Slot>> {
        self.entries.get(&id).map(|&(_, slot)| slot)
    }

    /// Every pending `(id, slot)` change.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Change> + '_ {
        self.entries.iter().map(|(&id, &(_, slot))| (id, slot))
    }

    /// Drops entries of batches up to `applied_lsn`, which the index now
    /// holds: all at once when nothing is pending, else in a sweep whenever
    /// the overlay has doubled since the last one.
    pub(crate) fn sweep(&mut self, applied_lsn: Lsn) {
        if self.entries.is_empty() {
            return;
        }
        if applied_lsn >= self.max_lsn {
            self.clear();
        } else if self.entries.len() >= 2 * self.swept_len.max(1024) {
            self.entries.retain(|_, &mut (lsn, _)| lsn > applied_lsn);
            self.swept_len = self.entries.len();
        }
    }

    /// Forgets everything (a generation switch applied it all).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.swept_len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the overlay answers for pending batches only, and empties once
    // everything it holds is applied.
    #[test]
    fn pending_until_applied() {
        let mut o = SyncOverlay::default();
        o.insert_batch(Lsn::from(1), &[(7, Some(Slot::ZERO))]);
        o.insert_batch(Lsn::from(2), &[(7, None), (8, Some(Slot::from(1)))]);
        assert_eq!(o.get(7), Some(None));
        assert_eq!(o.get(9), None);
        o.sweep(Lsn::from(1));
        assert_eq!(o.get(8), Some(Some(Slot::from(1))), "batch 2 is still pending");
        o.sweep(Lsn::from(2));
        assert_eq!(o.get(8), None);
        assert_eq!(o.iter().count(), 0);
    }
}
