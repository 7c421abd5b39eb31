//! Pinned generations: the current generation of a store, swapped atomically
//! by compaction, with every retired generation kept alive until the last
//! reader that pinned it lets go.
//!
//! A reader pins the current generation by incrementing a counter on its
//! own cache line (one of [`PIN_SHARDS`]) and re-reading the current pointer;
//! if the pointer moved in between, it unpins and retries, never touching the
//! retired value. Replacing a generation swaps the pointer, marks the old one
//! retired and drops its value as soon as every pin counter reads zero — at
//! once if nobody holds it, otherwise when the last pin is released. All
//! pin/unpin/swap/retire operations are `SeqCst`, which is what makes the
//! "pin, then re-check" handshake sound: a pin that the re-check accepted is
//! ordered before the swap, so the retirer's count sees it.
//!
//! Slot headers (the counters and flags, about 4 KiB) are freed only with the
//! cell, because a reader may still be about to pin a slot it read a moment
//! before the swap; the generation values themselves (mappings, files,
//! indexes) are freed as soon as they are unpinned.

use std::cell::UnsafeCell;
use std::fmt;
use std::ops::Deref;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering::SeqCst};

use crate::guard::{PinRelease, VectorGuard};

/// Number of pin counters per generation, each on its own cache line.
pub const PIN_SHARDS: usize = 32;

#[repr(align(128))]
#[derive(Default)]
struct PaddedCounter(AtomicUsize);

pub(crate) struct Slot<G> {
    pins: [PaddedCounter; PIN_SHARDS],
    retired: AtomicBool,
    reclaimed: AtomicBool,
    value: UnsafeCell<Option<G>>,
}

// SAFETY: `value` is read through `&G` only by holders of a pin, and taken
// (dropped) only once, by the thread that wins `reclaimed` after observing
// zero pins on a retired slot; no pin can then be outstanding on a value a
// reader will touch (see the module docs). So sharing a `Slot<G>` is as safe
// as sharing `G`, and dropping `G` on another thread needs `G: Send`.
unsafe impl<G: Send + Sync> Sync for Slot<G> {}

impl<G> Slot<G> {
    fn new(value: G) -> Self {
        Self {
            pins: Default::default(),
            retired: AtomicBool::new(false),
            reclaimed: AtomicBool::new(false),
            value: UnsafeCell::new(Some(value)),
        }
    }

    fn pin_count(&self) -> usize {
        self.pins.iter().map(|c| c.0.load(SeqCst)).sum()
    }

    fn try_reclaim(&self) {
        drop(self.take_if_unpinned());
    }

    /// Takes the value out of a retired slot if no pin holds it.
    fn take_if_unpinned(&self) -> Option<G> {
        if self.pin_count() != 0 || self.reclaimed.compare_exchange(false, true, SeqCst, SeqCst).is_err() {
            return None;
        }
        // SAFETY: the slot is retired (the caller checked) and every pin
        // counter read zero after retirement; any later pin re-checks the
        // current pointer, finds another slot and backs off without reading
        // `value`. Winning `reclaimed` makes this the only taker.
        unsafe { (*self.value.get()).take() }
    }
}

impl<G: Send + Sync> PinRelease for Slot<G> {
    fn release(&self, shard: usize) {
        self.pins[shard].0.fetch_sub(1, SeqCst);
        if self.retired.load(SeqCst) {
            self.try_reclaim();
        }
    }
}

fn my_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % PIN_SHARDS;
    }
    SHARD.with(|s| *s)
}

/// The current generation of a store, replaceable while readers hold pins.
///
/// ```
/// use quiver_guard::GenerationCell;
/// let cell = GenerationCell::new(vec![1u32, 2, 3]);
/// let old = cell.pin();
/// assert!(cell.replace(vec![4, 5]).is_none()); // pinned: dropped later
/// assert_eq!(&*old, &[1, 2, 3]); // still readable: pinned
/// assert_eq!(&*cell.pin(), &[4, 5]);
/// assert_eq!(cell.live_generations(), 2);
/// drop(old); // the last pin: the old value is dropped now
/// assert_eq!(cell.live_generations(), 1);
/// ```
pub struct GenerationCell<G: Send + Sync> {
    current: AtomicPtr<Slot<G>>,
    /// Every slot ever installed; boxed so their addresses never move.
    slots: Mutex<Vec<Box<Slot<G>>>>,
}

impl<G: Send + Sync> GenerationCell<G> {
    /// A cell whose current generation is `value`.
    pub fn new(value: G) -> Self {
        let slot = Box::new(Slot::new(value));
        let ptr = (&*slot as *const Slot<G>).cast_mut();
        Self { current: AtomicPtr::new(ptr), slots: Mutex::new(vec![slot]) }
    }

    /// Pins the current generation.
    #[inline]
    pub fn pin(&self) -> Pinned<'_, G> {
        let shard = my_shard();
        loop {
            let ptr = self.current.load(SeqCst);
            // SAFETY: `current` always points into a box owned by `slots`,
            // and slots are freed only when the cell is dropped, which cannot
            // happen while `&self` is borrowed.
            let slot = unsafe { &*ptr };
            slot.pins[shard].0.fetch_add(1, SeqCst);
            if self.current.load(SeqCst) == ptr {
                return Pinned { slot, shard };
            }
            slot.release(shard);
        }
    }

    /// Installs `value` as the current generation. If no pin holds the
    /// previous one, it is returned, for the caller to drop where it likes
    /// (dropping a mapping is not free); otherwise it is dropped when its
    /// last pin is released.
    #[must_use = "the previous generation is returned to be dropped; dropping it here is fine"]
    pub fn replace(&self, value: G) -> Option<G> {
        let slot = Box::new(Slot::new(value));
        let ptr = (&*slot as *const Slot<G>).cast_mut();
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.push(slot);
        let old = self.current.swap(ptr, SeqCst);
        // SAFETY: `old` came from `current`, so it points into a box in
        // `slots`, which we hold.
        let old = unsafe { &*old };
        old.retired.store(true, SeqCst);
        old.take_if_unpinned()
    }

    /// Generations whose values are still alive (the current one plus any
    /// retired one still pinned).
    pub fn live_generations(&self) -> usize {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.iter().filter(|s| !s.reclaimed.load(SeqCst)).count()
    }
}

impl<G: Send + Sync + fmt::Debug> fmt::Debug for GenerationCell<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenerationCell").field("current", &*self.pin()).finish_non_exhaustive()
    }
}

/// A pin on one generation: it stays alive, unchanged, while this exists.
pub struct Pinned<'a, G: Send + Sync> {
    slot: &'a Slot<G>,
    shard: usize,
}

impl<G: Send + Sync> Deref for Pinned<'_, G> {
    type Target = G;

    #[inline]
    fn deref(&self) -> &G {
        // SAFETY: while a pin is held the value is not reclaimed (the pin
        // counter is non-zero, and `pin` only returns after checking the slot
        // was current when pinned, i.e. before any retirement).
        unsafe { (*self.slot.value.get()).as_ref().expect("a pinned generation is never reclaimed") }
    }
}

impl<G: Send + Sync> Drop for Pinned<'_, G> {
    fn drop(&mut self) {
        self.slot.release(self.shard);
    }
}

impl<'a, G: Send + Sync + 'a> Pinned<'a, G> {
    /// Turns the pin into a guard over a slice of the pinned generation.
    /// The closure cannot smuggle the borrow out (it is only valid for the
    /// call); the guard keeps the pin until it is dropped.
    #[inline]
    pub fn into_guard<T>(self, f: impl for<'g> FnOnce(&'g G) -> Option<&'g [T]>) -> Option<VectorGuard<'a, T>> {
        let slice = f(&self)?;
        let (ptr, len) = (slice.as_ptr(), slice.len());
        let this = std::mem::ManuallyDrop::new(self);
        let release: &'a dyn PinRelease = this.slot;
        // SAFETY: the slice lies in the pinned generation, which stays alive
        // and unchanged until the guard releases the pin it now owns.
        Some(unsafe { VectorGuard::from_pinned(ptr, len, release, this.shard) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    // Proves a retired generation is dropped exactly when its last pin goes,
    // and immediately when it has none.
    #[test]
    fn retired_generation_dropped_at_last_pin() {
        let drops = Arc::new(AtomicUsize::new(0));
        let cell = GenerationCell::new(Counted(drops.clone()));
        drop(cell.replace(Counted(drops.clone())));
        assert_eq!(drops.load(SeqCst), 1, "unpinned generation handed back at once");
        let a = cell.pin();
        let b = cell.pin();
        assert!(cell.replace(Counted(drops.clone())).is_none());
        assert_eq!(drops.load(SeqCst), 1);
        drop(a);
        assert_eq!(drops.load(SeqCst), 1);
        drop(b);
        assert_eq!(drops.load(SeqCst), 2);
        assert_eq!(cell.live_generations(), 1);
        drop(cell);
        assert_eq!(drops.load(SeqCst), 3);
    }

    // Proves that under concurrent pinning and replacing, a reader never sees
    // a dropped value (each value checks its own liveness flag).
    #[test]
    fn concurrent_pins_and_replacements() {
        struct Checked(Arc<AtomicBool>);
        impl Drop for Checked {
            fn drop(&mut self) {
                self.0.store(true, SeqCst);
            }
        }
        let cell = GenerationCell::new(Checked(Arc::new(AtomicBool::new(false))));
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for _ in 0..20_000 {
                        let p = cell.pin();
                        assert!(!p.0.load(SeqCst), "read a dropped generation");
                    }
                });
            }
            s.spawn(|| {
                for _ in 0..2_000 {
                    drop(cell.replace(Checked(Arc::new(AtomicBool::new(false)))));
                }
            });
        });
        assert_eq!(cell.live_generations(), 1);
    }
}
