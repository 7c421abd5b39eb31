//! A real full disk: a 4 MiB tmpfs mounted for the test (when running as
//! root, as CI does here; otherwise the test says it was skipped). Writes
//! until the filesystem is full must fail with an error — never `SIGBUS`,
//! never a panic — leave the store readable with every acknowledged write,
//! and succeed again once space is freed.

use std::path::Path;
use std::process::Command;

use quiver_storage::{StoreOptions, VectorStore};

struct Mount(tempfile::TempDir);

impl Mount {
    /// Mounts a tmpfs of `size` at a fresh directory, or `None` when this
    /// process may not mount.
    fn tmpfs(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(Self(dir))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

// Proves ENOSPC from a real filesystem is an error at the write that hits
// it, the store keeps serving reads and every acknowledged write, and writes
// work again (same handle, and after reopen) once space is freed.
#[test]
fn real_full_disk_is_an_error_and_the_store_recovers() {
    let Some(mount) = Mount::tmpfs("4m") else {
        println!("skipped: mounting a tmpfs needs root (CI runs as root)");
        return;
    };
    let ballast = mount.path().join("ballast");
    let path = mount.path().join("store");
    let opts = StoreOptions::new(64).initial_file_bytes(64 << 10).growth_step_bytes(64 << 10, 1 << 20);
    let store: VectorStore<f32> = opts.open(&path).expect("open");
    // Leave little room: a ballast file takes most of the filesystem.
    std::fs::write(&ballast, vec![1u8; 2 << 20]).expect("ballast");
    let vector = |id: u64| -> Vec<f32> { (0..64).map(|i| (id * 64 + i) as f32).collect() };
    let mut acked = 0u64;
    let error = loop {
        match store.store(acked, &vector(acked)) {
            Ok(()) => acked += 1,
            Err(e) => break e,
        }
        assert!(acked < 1_000_000, "the 4 MiB filesystem never filled up");
    };
    println!("full after {acked} vectors: {error}");
    assert!(acked > 100, "only {acked} vectors fit");
    assert!(
        matches!(error.raw_os_error(), Some(28)) || matches!(error, quiver_storage::Error::Poisoned { .. }),
        "expected ENOSPC, got {error}"
    );
    for id in 0..acked {
        assert_eq!(store.retrieve(id), Some(vector(id)), "id {id} after ENOSPC");
    }
    // Free space: the same handle writes again (unless a WAL write failed
    // after being partly written and could not be cut back, which poisons;
    // then a reopen must).
    std::fs::remove_file(&ballast).expect("free space");
    let store = match store.store(acked, &vector(acked)) {
        Ok(()) => store,
        Err(quiver_storage::Error::Poisoned { .. }) => {
            drop(store);
            let reopened: VectorStore<f32> = opts.open(&path).expect("reopen after poison");
            reopened.store(acked, &vector(acked)).expect("write after reopen");
            reopened
        }
        Err(e) => panic!("writes do not resume once space is freed: {e}"),
    };
    acked += 1;
    store.flush().expect("flush");
    drop(store);
    let store: VectorStore<f32> = opts.open(&path).expect("reopen");
    assert_eq!(store.len() as u64, acked);
    for id in 0..acked {
        assert_eq!(store.retrieve(id), Some(vector(id)), "id {id} after reopen");
    }
}
