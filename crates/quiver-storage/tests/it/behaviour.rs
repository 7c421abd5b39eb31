//! Focused behaviour tests of quiver-storage: each proves one promise of the
//! brief (sections 2, 3, 5) or that one defect of the seed (section 6) is
//! not repeated. One submodule per area; the helpers below are what they
//! share (a closure-based fault injector and small file-system helpers).

mod batch_and_metrics;
mod elements_and_threads;
mod failed_writes;
mod format_bytes;
mod guards_and_growth;
mod lifecycle_failures;
mod open_validation;
mod poison_under_lock;
mod recovery;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use quiver_storage::io::{FaultAction, FaultInjector, IoStep};

/// A fault injector whose decision is a closure.
struct FnInjector<F>(F);

impl<F> fmt::Debug for FnInjector<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnInjector")
    }
}

impl<F: Fn(IoStep<'_>) -> FaultAction + Send + Sync> FaultInjector for FnInjector<F> {
    fn before(&self, step: IoStep<'_>) -> FaultAction {
        (self.0)(step)
    }
}

/// Wraps `decide` as a fault injector for `StoreOptions::fault_injector`.
pub(crate) fn injector(decide: impl Fn(IoStep<'_>) -> FaultAction + Send + Sync + 'static) -> Arc<dyn FaultInjector> {
    Arc::new(FnInjector(decide))
}

/// A fault injector that, once the returned flag is set, fails the first
/// step `hits` matches with EIO and clears the flag (so it fires once per
/// arming); every other step proceeds.
pub(crate) fn fail_once_armed(
    hits: impl Fn(&IoStep<'_>) -> bool + Send + Sync + 'static,
) -> (Arc<AtomicBool>, Arc<dyn FaultInjector>) {
    let armed = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&armed);
    let faults = injector(move |step| {
        if hits(&step) && flag.swap(false, Ordering::SeqCst) {
            FaultAction::Fail(os_error(EIO))
        } else {
            FaultAction::Proceed
        }
    });
    (armed, faults)
}

/// An I/O error carrying the raw OS error `code` (5 is EIO, 28 ENOSPC).
pub(crate) fn os_error(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

pub(crate) const EIO: i32 = 5;
pub(crate) const ENOSPC: i32 = 28;

/// Whether `path` is a WAL segment (a file directly under `wal/`).
pub(crate) fn in_wal(path: &Path) -> bool {
    path.parent().and_then(Path::file_name).is_some_and(|n| n == "wal")
}

/// Whether `path` is a data file (`data-*.qvd`).
pub(crate) fn is_data_file(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("data-") && n.ends_with(".qvd"))
}

/// Borrowed `(id, &[T])` pairs for `store_batch`.
pub(crate) fn refs<T>(pairs: &[(u64, Vec<T>)]) -> Vec<(u64, &[T])> {
    pairs.iter().map(|(id, v)| (*id, &v[..])).collect()
}

/// The names in `dir`, sorted.
pub(crate) fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list the directory")
        .map(|e| e.expect("directory entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Asserts two `common::snapshot_tree` results are equal, naming the first
/// file that differs rather than dumping every byte.
pub(crate) fn assert_same_tree(before: &[(PathBuf, Vec<u8>)], after: &[(PathBuf, Vec<u8>)], what: &str) {
    let names = |t: &[(PathBuf, Vec<u8>)]| t.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    assert_eq!(names(before), names(after), "{what}: the set of files changed");
    for ((path, a), (_, b)) in before.iter().zip(after) {
        assert!(a == b, "{what}: {} changed ({} bytes before, {} after)", path.display(), a.len(), b.len());
    }
}

/// The data file of generation 1, which every store in these tests uses.
pub(crate) fn data_file(store_dir: &Path) -> PathBuf {
    store_dir.join(quiver_storage::format::data_file_name(1))
}

pub(crate) use crate::common::test_seed;

/// A small xorshift generator for tests that print their seed.
pub(crate) struct XorShift(u64);

impl XorShift {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}
