//! A background thread that compacts a store when its garbage passes a
//! threshold. It owns nothing but an `Arc` of the store and a stop flag, and
//! is stopped (and joined) by `stop` or on drop.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use quiver_storage::{Element, Error, VectorStore};

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

/// A running background compactor.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use quiver_compaction::{BackgroundCompactor, BackgroundPolicy};
/// use quiver_storage::VectorStore;
/// let dir = tempfile::tempdir()?;
/// let store: Arc<VectorStore<f32>> = Arc::new(VectorStore::open(dir.path().join("v"), 2)?);
/// let policy = BackgroundPolicy { check_interval: Duration::from_millis(50), ..Default::default() };
/// let compactor = BackgroundCompactor::spawn(Arc::clone(&store), policy);
/// store.store(1, &[1.0, 2.0])?;
/// let runs = compactor.stop(); // stops and joins the thread
/// assert!(runs.iter().all(|r| r.is_ok()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct BackgroundCompactor {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<Vec<Result<CompactionStats, String>>>>,
}

impl BackgroundCompactor {
    /// Starts the thread.
    pub fn spawn<T: Element>(store: Arc<VectorStore<T>>, policy: BackgroundPolicy) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("quiver-compactor".into())
            .spawn(move || {
                let mut runs = Vec::new();
                loop {
                    match stopped.recv_timeout(policy.check_interval) {
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return runs,
                        Err(RecvTimeoutError::Timeout) => {}
                    }
                    let m = store.metrics();
                    let committed = m.committed_bytes.max(1);
                    if m.garbage_bytes >= policy.min_garbage_bytes
                        && m.garbage_bytes as f64 / committed as f64 >= policy.garbage_ratio
                    {
                        match compact_with(&store, &policy.options) {
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
            })
            .expect("spawning a thread only fails when the process is out of resources");
        Self { stop: Some(stop), thread: Some(thread) }
    }

    /// Stops the thread, waits for a compaction in progress to finish, and
    /// returns what each compaction run did.
    pub fn stop(mut self) -> Vec<Result<CompactionStats, String>> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Vec<Result<CompactionStats, String>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.thread.take().map(|t| t.join().unwrap_or_default()).unwrap_or_default()
    }
}

impl Drop for BackgroundCompactor {
    fn drop(&mut self) {
        self.shutdown();
    }
}
