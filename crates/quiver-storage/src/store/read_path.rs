//! `ReadPath`: the reads a writer ([`super::VectorStore`]) and a follower
//! ([`super::VectorReader`]) both offer, written once. Each holds one and
//! forwards its public read methods to it, so the two can never drift.
//!
//! It owns the current generation (the cell a compaction or a follower's
//! reload replaces, while guards and snapshots keep the old one alive) and
//! what a snapshot of it must hold. It never writes.

use std::fs::File;
use std::sync::Arc;

use quiver_guard::{GenerationCell, Pinned, VectorGuard};

use super::{Generation, Snapshot};
use crate::element::Element;

/// The current generation and the lock its snapshots hold.
#[derive(Debug)]
pub(crate) struct ReadPath {
    gens: GenerationCell<Generation>,
    /// A writer's directory lock, shared with every snapshot it hands out
    /// (no reopen may rewrite what a view lends out); a follower holds
    /// none, and neither do its views.
    view_lock: Option<Arc<File>>,
}

impl ReadPath {
    pub(crate) fn new(generation: Generation, view_lock: Option<Arc<File>>) -> Self {
        Self { gens: GenerationCell::new(generation), view_lock }
    }

    /// Pins the current generation.
    #[inline]
    pub(crate) fn current(&self) -> Pinned<'_, Generation> {
        self.gens.pin()
    }

    /// Makes `generation` current; the previous one lives on while pinned.
    pub(crate) fn replace(&self, generation: Generation) -> Option<Generation> {
        self.gens.replace(generation)
    }

    #[inline]
    pub(crate) fn get<T: Element>(&self, id: u64) -> Option<VectorGuard<'_, T>> {
        self.gens.pin().into_guard(|g| {
            let slot = g.index.get(id)?;
            let payload = g.data.payload::<T>(slot);
            debug_assert!(payload.is_some(), "an indexed slot is always published");
            payload
        })
    }

    pub(crate) fn for_each<T: Element>(&self, mut f: impl FnMut(u64, &[T])) {
        let g = self.gens.pin();
        let mut entries = g.index.entries();
        entries.sort_unstable_by_key(|&(_, slot)| slot);
        for (id, slot) in entries {
            let payload = g.data.payload::<T>(slot);
            debug_assert!(payload.is_some(), "an indexed slot is always published");
            if let Some(v) = payload {
                f(id, v);
            }
        }
    }

    pub(crate) fn contains(&self, id: u64) -> bool {
        self.gens.pin().index.contains(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.gens.pin().index.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.gens.pin().index.is_empty()
    }

    pub(crate) fn ids(&self) -> Vec<u64> {
        self.gens.pin().index.ids()
    }

    pub(crate) fn snapshot<T: Element>(&self) -> Snapshot<T> {
        Snapshot::of(&self.gens.pin(), self.view_lock.clone())
    }
}
