//! `AppendState`: where the writer's next batch goes — its LSN and first
//! slot — and how far the data file is reserved. The single writer owns it
//! (behind the writer lock); its methods keep the invariants every commit,
//! growth step and generation switch relies on:
//!
//! - LSNs are consecutive: a batch is committed at exactly `next_lsn`.
//! - Slots are append-only: a batch starts at exactly `next_slot`, which is
//!   the number of committed records in the current generation.
//! - The reserved length never shrinks while records live below it, and
//!   always covers the committed records.

use crate::ids::{Lsn, Slot};

/// The writer's append position and reservation.
#[derive(Debug)]
pub(crate) struct AppendState {
    next_lsn: Lsn,
    next_slot: Slot,
    allocated_bytes: u64,
    reserved_until_slot: Slot,
}

impl AppendState {
    /// The state recovery found: the next LSN and slot after the last batch
    /// replayed, and the data file's length.
    pub(crate) fn recovered(next_lsn: Lsn, next_slot: Slot, allocated_bytes: u64) -> Self {
        assert!(next_lsn > Lsn::ZERO, "LSN 0 is the empty store's checkpoint; batches start at 1");
        Self { next_lsn, next_slot, allocated_bytes, reserved_until_slot: next_slot }
    }

    /// The LSN the next batch gets.
    pub(crate) fn next_lsn(&self) -> Lsn {
        self.next_lsn
    }

    /// The LSN of the last committed batch (0 before the first).
    pub(crate) fn last_lsn(&self) -> Lsn {
        self.next_lsn.previous()
    }

    /// The first slot of the next batch: the committed record count.
    pub(crate) fn next_slot(&self) -> Slot {
        self.next_slot
    }

    /// The data file's reserved length, in bytes.
    pub(crate) fn allocated_bytes(&self) -> u64 {
        self.allocated_bytes
    }

    /// Slots `reserve_capacity` promised beyond the committed ones.
    pub(crate) fn reserved_slots_ahead(&self) -> u64 {
        self.reserved_until_slot.get().saturating_sub(self.next_slot.get())
    }

    /// Records that batch `lsn`, occupying `[first_slot, end_slot)`, is in
    /// the log.
    pub(crate) fn commit(&mut self, lsn: Lsn, first_slot: Slot, end_slot: Slot) {
        assert_eq!(lsn, self.next_lsn, "LSNs are consecutive");
        assert_eq!(first_slot, self.next_slot, "a batch starts at the append position");
        assert!(end_slot >= first_slot, "a batch's slots ascend");
        self.next_lsn = lsn.next();
        self.next_slot = end_slot;
    }

    /// Records that the file is now reserved up to `bytes`.
    pub(crate) fn grown_to(&mut self, bytes: u64) {
        assert!(bytes >= self.allocated_bytes, "a reservation never shrinks under committed records");
        self.allocated_bytes = bytes;
    }

    /// Records a `reserve_capacity` promise of room up to `end_slot`.
    pub(crate) fn reserve_until(&mut self, end_slot: Slot) {
        self.reserved_until_slot = self.reserved_until_slot.max(end_slot);
    }

    /// Moves to a new generation holding `end_slot` records in a file of
    /// `allocated_bytes`, carrying the unused part of the reservation over.
    pub(crate) fn switched(&mut self, end_slot: Slot, allocated_bytes: u64) {
        let ahead = self.reserved_slots_ahead();
        self.next_slot = end_slot;
        self.allocated_bytes = allocated_bytes;
        self.reserved_until_slot = Slot::from(end_slot.get().saturating_add(ahead));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the append position advances batch by batch, and that a batch
    // out of order is refused loudly rather than written.
    #[test]
    fn batches_are_consecutive() {
        let slot = Slot::from;
        let mut a = AppendState::recovered(Lsn::from(1), Slot::ZERO, 4096);
        a.commit(Lsn::from(1), Slot::ZERO, slot(3));
        a.commit(Lsn::from(2), slot(3), slot(3)); // a batch of deletes of absent ids writes nothing
        assert_eq!((a.next_lsn().get(), a.last_lsn().get(), a.next_slot().get()), (3, 2, 3));
        let skipped = std::panic::catch_unwind(move || a.commit(Lsn::from(4), slot(3), slot(4)));
        assert!(skipped.is_err(), "an LSN gap must not be accepted");
    }

    // Proves a generation switch keeps the unused reservation.
    #[test]
    fn switch_carries_the_reservation() {
        let mut a = AppendState::recovered(Lsn::from(1), Slot::from(10), 1 << 20);
        a.reserve_until(Slot::from(110));
        a.switched(Slot::from(4), 1 << 16);
        assert_eq!((a.next_slot().get(), a.reserved_slots_ahead(), a.allocated_bytes()), (4, 100, 1 << 16));
    }
}
