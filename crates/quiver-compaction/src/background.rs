//! A background thread that compacts a store when its garbage passes a
//! threshold. [`BackgroundCompactor`] owns the store (reach it through
//! `Deref`), and stops and joins its thread before the store is closed or
//! dropped, so a compaction is never cut off by shutdown.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use quiver_storage::{Element, Error, Result, VectorStore};

use crate::{CompactionOptions, CompactionStats, compact_with};

/// When the background compactor acts.
#[derive(Clone, Debug)]
pub struct BackgroundPolicy {
    /// Compact when garbage bytes exceed this fraction of committed bytes.
    pub garbage_ratio: f64,
    /// ...and there are at least this many garbage bytes.
    pub min_garbage_bytes: u64,
    /// How often to look.
    pub check_interval: Duration,
    /// Options for each compaction.
    pub options: CompactionOptions,
}

impl Default for BackgroundPolicy {
    fn default() -> Self {
        Self {
            garbage_ratio: 0.5,
            min_garbage_bytes: 64 << 20,
            check_interval: Duration::from_secs(10),
            options: CompactionOptions::default(),
        }
    }
}

/// How many run results the compactor keeps (the most recent).
pub const MAX_RUNS_KEPT: usize = 64;

/// What one background compaction run did: its stats, or the error's
/// sentence.
pub type Run = std::result::Result<CompactionStats, String>;

/// A store with a background compactor thread.
///
/// ```
/// use std::time::Duration;
/// use quiver_compaction::{BackgroundCompactor, BackgroundPolicy};
/// use quiver_storage::VectorStore;
/// let dir = tempfile::tempdir()?;
/// let store: VectorStore<f32> = VectorStore::open(dir.path().join("v"), 2)?;
/// let policy = BackgroundPolicy {
///     garbage_ratio: 0.5,
///     min_garbage_bytes: 0,
///     check_interval: Duration::from_millis(10),
///     ..Default::default()
/// };
/// let store = BackgroundCompactor::spawn(store, policy);
/// for id in 0..100 {
///     store.store(id, &[1.0, 2.0])?; // Deref to the VectorStore
/// }
/// for id in 0..90 {
///     store.delete(id)?;
/// }
/// let runs = store.close()?; // stops the thread, then closes the store
/// assert!(runs.iter().all(|r| r.is_ok()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct BackgroundCompactor<T: Element> {
    store: Arc<VectorStore<T>>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<Vec<Run>>>,
}

impl<T: Element> BackgroundCompactor<T> {
    /// Takes ownership of `store` and starts the compactor thread.
    pub fn spawn(store: VectorStore<T>, policy: BackgroundPolicy) -> Self {
        let store = Arc::new(store);
        let (stop, stopped) = mpsc::channel::<()>();
        let shared = Arc::clone(&store);
        let thread = std::thread::Builder::new()
            .name("quiver-compactor".into())
            .spawn(move || run(&shared, &policy, &stopped))
            .expect("spawning a thread only fails when the process is out of resources");
        Self { store, stop: Some(stop), thread: Some(thread) }
    }

    /// Stops the thread (waiting for a compaction in progress) and hands the
    /// store back, with what the last [`MAX_RUNS_KEPT`] runs did. A
    /// compaction started through `Deref` while the thread runs one is
    /// refused with `Error::CompactionInProgress` (and vice versa).
    pub fn stop(mut self) -> (VectorStore<T>, Vec<Run>) {
        let runs = self.shutdown();
        let store = Arc::clone(&self.store);
        drop(self);
        let store = Arc::try_unwrap(store).expect("the compactor thread has exited, so this is the last handle");
        (store, runs)
    }

    /// Stops the thread, then closes the store (flush + checkpoint).
    pub fn close(self) -> Result<Vec<Run>> {
        let (store, runs) = self.stop();
        store.close()?;
        Ok(runs)
    }

    fn shutdown(&mut self) -> Vec<Run> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.thread.take().map(|t| t.join().unwrap_or_default()).unwrap_or_default()
    }
}

fn run<T: Element>(store: &VectorStore<T>, policy: &BackgroundPolicy, stopped: &mpsc::Receiver<()>) -> Vec<Run> {
    let mut runs = Vec::new();
    loop {
        match stopped.recv_timeout(policy.check_interval) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return runs,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let m = store.metrics();
        let committed = m.committed_bytes.max(1);
        if m.garbage_bytes < policy.min_garbage_bytes.max(1)
            || (m.garbage_bytes as f64 / committed as f64) < policy.garbage_ratio
        {
            continue;
        }
        if runs.len() == MAX_RUNS_KEPT {
            drop(runs.remove(0));
        }
        match compact_with(store, &policy.options) {
            Ok(stats) => runs.push(Ok(stats)),
            // A closed or poisoned store will not get better.
            Err(e @ (Error::Closed | Error::Poisoned { .. })) => {
                runs.push(Err(e.to_string()));
                return runs;
            }
            Err(e) => runs.push(Err(e.to_string())),
        }
    }
}

impl<T: Element> Deref for BackgroundCompactor<T> {
    type Target = VectorStore<T>;

    fn deref(&self) -> &VectorStore<T> {
        &self.store
    }
}

impl<T: Element> Drop for BackgroundCompactor<T> {
    fn drop(&mut self) {
        self.shutdown();
    }
}
