//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

use quiver_storage::{StoreOptions, VectorStore};

/// A deterministic vector for `id` (and a `version`, so overwrites differ).
pub(crate) fn vector(id: u64, version: u64, dim: usize) -> Vec<f32> {
    (0..dim).map(|i| ((id.wrapping_mul(31).wrapping_add(version * 7 + i as u64)) % 1000) as f32 * 0.5).collect()
}

/// Options for small test stores: small files and windows so growth and
/// window switches happen quickly.
pub(crate) fn small(dim: usize) -> StoreOptions {
    StoreOptions::new(dim).initial_file_bytes(64 << 10).growth_step_bytes(64 << 10, 1 << 20)
}

/// Opens a store at `path` with `opts`, panicking with the error.
pub(crate) fn open(path: &Path, opts: &StoreOptions) -> VectorStore<f32> {
    opts.open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// A fresh store path inside a temp dir.
pub(crate) fn store_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("store")
}

/// Every file under `dir` with its bytes, for "nothing changed" checks.
pub(crate) fn snapshot_tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let e = e.expect("entry");
            let p = e.path();
            if p.is_dir() {
                out.push((p.clone(), Vec::new()));
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).expect("read")));
            }
        }
    }
    out.sort();
    out
}

/// The seed from `QUIVER_TEST_SEED`, or a fresh one from the clock.
pub(crate) fn test_seed() -> u64 {
    match std::env::var("QUIVER_TEST_SEED") {
        Ok(s) => s.trim().parse().unwrap_or_else(|_| panic!("QUIVER_TEST_SEED={s:?} is not a u64")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .expect("the clock is after 1970"),
    }
}
