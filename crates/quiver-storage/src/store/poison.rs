//! `Poison`: the one record of whether the store may still write, and why
//! not.
//!
//! A failed `fdatasync` must never be followed by another sync that reports
//! success: Linux reports a writeback error once per open file description,
//! so a second `fdatasync` of the same file returns 0 even though pages were
//! lost. The store therefore stops writing at the first such failure. This
//! type owns that state; it never clears (only a reopen, which recovers from
//! what reached the disk, makes a usable store again).
//!
//! Who checks it, and why that is enough: every sync of the data file or the
//! WAL runs either under the writer lock or as the group-commit leader, and
//! both check `Poison` *after* taking their lock (`VectorStore::lock_writer`,
//! `VectorStore::wait_durable`), never only before. A failure is recorded
//! before the lock that serialised the failing sync is released, so the next
//! holder of that lock sees it. A check made before waiting for a lock proves
//! nothing: the failure may happen while the caller waits.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

/// Whether the store is poisoned, and the first failure that poisoned it.
#[derive(Debug, Default)]
pub(crate) struct Poison {
    poisoned: AtomicBool,
    first_failure: OnceLock<String>,
}

impl Poison {
    /// Records `why` as the reason (the first one is kept) and poisons.
    pub(crate) fn set(&self, why: impl std::fmt::Display) {
        let _ = self.first_failure.set(why.to_string());
        self.poisoned.store(true, Ordering::Release);
    }

    /// Whether the store is poisoned.
    pub(crate) fn is_set(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// `Err(Error::Poisoned)` once poisoned.
    pub(crate) fn check(&self) -> Result<()> {
        if self.is_set() {
            return Err(self.error());
        }
        Ok(())
    }

    /// The error every write returns once poisoned, naming the first failure.
    pub(crate) fn error(&self) -> Error {
        Error::Poisoned { first_failure: self.first_failure.get().cloned().unwrap_or_default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the first failure is the one reported and that poison never
    // clears.
    #[test]
    fn keeps_the_first_failure() {
        let p = Poison::default();
        assert!(p.check().is_ok());
        p.set("first");
        p.set(Error::InvalidArgument("second".into()));
        assert!(p.is_set());
        match p.check() {
            Err(Error::Poisoned { first_failure }) => assert!(first_failure.contains("first"), "{first_failure}"),
            other => panic!("expected Poisoned, got {other:?}"),
        }
    }
}
