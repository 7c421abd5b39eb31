//! Newtypes for the numbers that cross module boundaries inside the engine,
//! so that an LSN is never passed where a WAL segment number belongs (both
//! are `u64`, and both grow by one).
//!
//! The byte codecs in `format` keep plain integers — they are the layouts of
//! docs/FORMAT.md — and the engine converts at that edge, with `get` and
//! `From`.

use std::fmt;

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

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the arithmetic the engine relies on: LSNs step by one and 0 has
    // no predecessor; segment numbers stop at their limit.
    #[test]
    fn steps_and_bounds() {
        assert_eq!(Lsn::ZERO.next().get(), 1);
        assert_eq!(Lsn::ZERO.previous(), Lsn::ZERO);
        assert_eq!(Lsn::from(5).previous().get(), 4);
        assert_eq!(SegmentNo::from(1).next().map(SegmentNo::get), Some(2));
        assert_eq!(SegmentNo::from(crate::format::manifest::MAX_SEGMENT).next(), None);
    }
}
