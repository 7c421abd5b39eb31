//! `ReadPath`: the reads a writer ([`super::VectorStore`]) and a follower
//! ([`super::VectorReader`]) both offer, written once. Each holds one and
//! forwards its public read methods to it, so the two can never drift.
//!
//! It owns the current generation (the cell a compaction or a follower's
//! reload replaces, while guards and snapshots keep the old one alive) and
//! what a snapshot of it must hold. It never writes.

use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use quiver_guard::{GenerationCell, Pinned, VectorGuard};

use super::{Generation, Snapshot};
use crate::element::Element;
use crate::error::{IoContext, Result};
use crate::options::{AccessPattern, StoreOptions};

/// The current generation, the lock its snapshots hold, and how its data
/// file will be read.
#[derive(Debug)]
pub(crate) struct ReadPath {
    gens: GenerationCell<Generation>,
    /// The access pattern told to the kernel, also for the next generation
    /// (an `AccessPattern` code).
    access: AtomicU8,
    /// A writer's directory lock, shared with every snapshot it hands out
    /// (no reopen may rewrite what a view lends out); a follower holds
    /// none, and neither do its views.
    view_lock: Option<Arc<File>>,
}

impl ReadPath {
    /// The read path of a freshly opened `generation`: its data file told
    /// the access pattern and, with `populate`, read into memory before
    /// this returns. Both are hints; a kernel that refuses them reads the
    /// same bytes, so their errors are not the open's.
    pub(crate) fn new(generation: Generation, view_lock: Option<Arc<File>>, options: &StoreOptions) -> Self {
        let _ = generation.data.advise(options.access);
        if options.populate {
            let _ = generation.data.will_need(true);
        }
        Self { gens: GenerationCell::new(generation), access: AtomicU8::new(options.access as u8), view_lock }
    }

    /// Pins the current generation.
    #[inline]
    pub(crate) fn current(&self) -> Pinned<'_, Generation> {
        self.gens.pin()
    }

    /// Makes `generation` current; the previous one lives on while pinned.
    pub(crate) fn replace(&self, generation: Generation) -> Option<Generation> {
        let _ = generation.data.advise(AccessPattern::from_code(self.access.load(Ordering::Acquire)));
        self.gens.replace(generation)
    }

    pub(crate) fn advise(&self, pattern: AccessPattern) -> Result<()> {
        self.access.store(pattern as u8, Ordering::Release);
        let g = self.gens.pin();
        g.data.advise(pattern).context(|| format!("advising the kernel on {}", g.data.path().display()))
    }

    pub(crate) fn will_need(&self) -> Result<()> {
        let g = self.gens.pin();
        g.data.will_need(false).context(|| format!("asking the kernel to read in {}", g.data.path().display()))
    }

    /// Bytes of the current data file's first `file_bytes` in memory.
    pub(crate) fn resident_bytes(&self, file_bytes: u64) -> Result<u64> {
        let g = self.gens.pin();
        g.data
            .resident_bytes(file_bytes)
            .context(|| format!("asking which pages of {} are in memory", g.data.path().display()))
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
