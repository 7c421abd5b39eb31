//! Newtypes for the numbers that cross module boundaries inside the engine,
//! so that an LSN is never passed where a WAL segment number belongs, nor an
//! id where a record slot belongs (each pair is `u64` underneath).
//!
//! The byte codecs in `format` keep plain integers — they are the layouts of
//! docs/FORMAT.md — and the engine converts at that edge, with `get` and
//! `From`; so does the public API, whose reports keep plain integers too.
//! Ids stay plain `u64`: they are the caller's, not the engine's.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// A commit sequence number: batches get consecutive LSNs from 1; 0 is the
/// empty store's checkpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Lsn(u64);

impl Lsn {
    /// The LSN before the first batch.
    pub(crate) const ZERO: Lsn = Lsn(0);

    /// The number as stored on disk.
    pub(crate) const fn get(self) -> u64 {
        self.0
    }

    /// The LSN after this one. LSNs are bounded by `MAX_LSN` (2^62) where
    /// they enter, so this never overflows.
    pub(crate) const fn next(self) -> Lsn {
        Lsn(self.0 + 1)
    }

    /// The LSN before this one (`ZERO` stays `ZERO`).
    pub(crate) const fn previous(self) -> Lsn {
        Lsn(self.0.saturating_sub(1))
    }
}

impl From<u64> for Lsn {
    fn from(n: u64) -> Self {
        Lsn(n)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A WAL segment number (`wal/<number>.qwal`); segments are never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct SegmentNo(u64);

impl SegmentNo {
    /// The number as stored on disk and in file names.
    pub(crate) const fn get(self) -> u64 {
        self.0
    }

    /// The segment's file name in `wal/`.
    pub(crate) fn file_name(self) -> String {
        crate::format::wal_segment_name(self.0)
    }

    /// The segment after this one, or `None` past `MAX_SEGMENT`.
    pub(crate) fn next(self) -> Option<SegmentNo> {
        self.0.checked_add(1).filter(|&n| n <= crate::format::manifest::MAX_SEGMENT).map(SegmentNo)
    }
}

impl From<u64> for SegmentNo {
    fn from(n: u64) -> Self {
        SegmentNo(n)
    }
}

impl fmt::Display for SegmentNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A record's position in a data file: slot `n` starts `n` records past the
/// header page. Slots are append-only within a generation; an end slot
/// (exclusive) is also the number of records below it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Slot(u64);

impl Slot {
    /// The first slot of every data file.
    pub(crate) const ZERO: Slot = Slot(0);

    /// Not a slot: what the index's shards hold for a removed id that the
    /// index's base still lists (no record has it, as slots are bounded by
    /// the largest data file).
    pub(crate) const REMOVED: Slot = Slot(u64::MAX);

    /// The number as stored on disk.
    #[inline]
    pub(crate) const fn get(self) -> u64 {
        self.0
    }

    /// The slot after this one.
    #[inline]
    pub(crate) const fn next(self) -> Slot {
        Slot(self.0 + 1)
    }
}

/// The slot `records` records after this one: plain integer addition, as
/// before the newtype (slots are bounded by the data file's size limit where
/// they enter, far below overflow).
impl Add<u64> for Slot {
    type Output = Slot;

    #[inline]
    fn add(self, records: u64) -> Slot {
        Slot(self.0 + records)
    }
}

impl AddAssign<u64> for Slot {
    #[inline]
    fn add_assign(&mut self, records: u64) {
        self.0 += records;
    }
}

/// The number of records from `earlier` up to this slot.
impl Sub for Slot {
    type Output = u64;

    #[inline]
    fn sub(self, earlier: Slot) -> u64 {
        self.0 - earlier.0
    }
}

impl From<u64> for Slot {
    #[inline]
    fn from(n: u64) -> Self {
        Slot(n)
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A data file's generation number (`data-<number>.qvd`): a store starts at
/// 1 and each compaction switch moves to the next; 0 never exists. Not to be
/// confused with `store::Generation`, a generation's data file and index in
/// memory; where both are in scope this one is spelled `ids::Generation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Generation(u32);

impl Generation {
    /// A new store's generation.
    pub(crate) const FIRST: Generation = Generation(1);

    /// The number as stored on disk and in file names.
    pub(crate) const fn get(self) -> u32 {
        self.0
    }

    /// The generation's data file name.
    pub(crate) fn data_file_name(self) -> String {
        crate::format::data_file_name(self.0)
    }

    /// The generation after this one, or `None` past `u32::MAX`.
    pub(crate) fn next(self) -> Option<Generation> {
        self.0.checked_add(1).map(Generation)
    }
}

impl From<u32> for Generation {
    fn from(n: u32) -> Self {
        Generation(n)
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the arithmetic the engine relies on: LSNs step by one and 0 has
    // no predecessor; segment numbers and generations stop at their limits;
    // slots step by one or by a count, and their difference is a count.
    #[test]
    fn steps_and_bounds() {
        assert_eq!(Lsn::ZERO.next().get(), 1);
        assert_eq!(Lsn::ZERO.previous(), Lsn::ZERO);
        assert_eq!(Lsn::from(5).previous().get(), 4);
        assert_eq!(SegmentNo::from(1).next().map(SegmentNo::get), Some(2));
        assert_eq!(SegmentNo::from(crate::format::manifest::MAX_SEGMENT).next(), None);
        assert_eq!(Generation::FIRST.next().map(Generation::get), Some(2));
        assert_eq!(Generation::from(u32::MAX).next(), None);
        assert_eq!(Generation::FIRST.data_file_name(), crate::format::data_file_name(1));
        assert_eq!((Slot::ZERO.next().get(), (Slot::from(3) + 4).get()), (1, 7));
        assert_eq!(Slot::from(7) - Slot::from(3), 4);
    }
}
