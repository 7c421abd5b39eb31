//! The writer lock as a guard type: taking it (through
//! `VectorStore::lock_writer`) checks that the store may still write, and
//! releasing it publishes the writer's sizes for `metrics()` and then
//! removes the files a checkpoint made obsolete.
//!
//! Publishing on release is what lets `metrics()` read the file, WAL and
//! slot counts without the writer lock, so it never waits behind a
//! checkpoint's or a growth step's syncs, and it sees the values as of the
//! last release: never a half-done commit.
//!
//! Removing obsolete files after the release keeps unlinks — whose cost
//! grows with the file on most filesystems — out of every writer's pause: a
//! checkpoint or a compaction's switch only decides, under the lock, which
//! files no manifest needs any more (`Writer::obsolete_files`).

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::MutexGuard;

use super::commit::Writer;
use crate::ids::Slot;
use crate::io::Io;

/// The writer's sizes as of the last release of its lock.
#[derive(Debug, Default)]
pub(crate) struct WriterGauges {
    allocated_bytes: AtomicU64,
    wal_bytes: AtomicU64,
    committed_slots: AtomicU64,
}

/// A snapshot of [`WriterGauges`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct GaugeValues {
    pub allocated_bytes: u64,
    pub wal_bytes: u64,
    pub committed_slots: Slot,
}

impl WriterGauges {
    fn publish(&self, w: &Writer) {
        self.allocated_bytes.store(w.append.allocated_bytes(), Ordering::Relaxed);
        self.wal_bytes.store(w.wal.len_bytes(), Ordering::Relaxed);
        self.committed_slots.store(w.append.next_slot().get(), Ordering::Relaxed);
    }

    /// The values published last. Each is exact; together they may mix two
    /// releases, which is as precise as counters read without a lock get.
    pub(crate) fn read(&self) -> GaugeValues {
        GaugeValues {
            allocated_bytes: self.allocated_bytes.load(Ordering::Relaxed),
            wal_bytes: self.wal_bytes.load(Ordering::Relaxed),
            committed_slots: Slot::from(self.committed_slots.load(Ordering::Relaxed)),
        }
    }
}

/// The held writer lock. Derefs to the [`Writer`] state it guards.
pub(crate) struct WriterLock<'a> {
    /// `Some` until the release, which drops it before removing files.
    guard: Option<MutexGuard<'a, Writer>>,
    gauges: &'a WriterGauges,
    io: &'a Io,
}

impl<'a> WriterLock<'a> {
    /// Wraps a guard of the writer mutex; the gauges are published, and the
    /// obsolete files removed through `io`, when the returned lock is
    /// released.
    pub(crate) fn new(guard: MutexGuard<'a, Writer>, gauges: &'a WriterGauges, io: &'a Io) -> Self {
        Self { guard: Some(guard), gauges, io }
    }
}

impl Deref for WriterLock<'_> {
    type Target = Writer;
    fn deref(&self) -> &Writer {
        self.guard.as_ref().expect("held until the release")
    }
}

impl DerefMut for WriterLock<'_> {
    fn deref_mut(&mut self) -> &mut Writer {
        self.guard.as_mut().expect("held until the release")
    }
}

impl Drop for WriterLock<'_> {
    fn drop(&mut self) {
        let Some(mut guard) = self.guard.take() else { return };
        self.gauges.publish(&guard);
        let obsolete: Vec<PathBuf> = std::mem::take(&mut guard.obsolete_files);
        drop(guard);
        // Nothing depends on these removals: a file left behind is removed
        // by the next `open` (a WAL segment by a later checkpoint).
        // They run on the thread that releases the lock — a commit that
        // triggered an automatic checkpoint pays for them, after its batch
        // is visible and without holding anyone up.
        for path in obsolete {
            let _ = self.io.remove_file(&path);
        }
    }
}
