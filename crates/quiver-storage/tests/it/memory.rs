//! Access patterns and the memory report: advice never changes what a read
//! returns, `populate` brings the committed records into memory during
//! open, and `metrics()` says how much of the data file is in memory.

use quiver_storage::format::data_file_name;
use quiver_storage::{AccessPattern, StoreOptions, VectorReader, VectorStore};

use crate::common::{small, store_path, vector};

const DIM: usize = 256;
const COUNT: u64 = 2_000;

fn fill(path: &std::path::Path) -> Vec<Vec<f32>> {
    let store: VectorStore<f32> = small(DIM).open(path).expect("open");
    let vectors: Vec<Vec<f32>> = (0..COUNT).map(|id| vector(id, 0, DIM)).collect();
    let batch: Vec<(u64, &[f32])> = vectors.iter().enumerate().map(|(id, v)| (id as u64, &v[..])).collect();
    store.store_batch(&batch).expect("batch");
    store.close().expect("close"); // synced and checkpointed: the reopen reads no record
    vectors
}

/// Drops the data file's clean pages from the page cache (ext4 honours
/// this; a file system that does not leaves them, which the tests allow).
fn evict(path: &std::path::Path) {
    let file = std::fs::File::open(path.join(data_file_name(1))).expect("data file");
    rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).expect("fadvise");
}

// Proves `populate(true)` makes every committed byte resident before open
// returns, and that the report never claims more than the file.
#[test]
fn populate_reads_the_committed_records_into_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    fill(&path);
    evict(&path);
    let cold: VectorStore<f32> = small(DIM).open(&path).expect("open");
    let m = cold.metrics();
    assert!(m.resident_bytes <= m.file_bytes, "{m:?}");
    assert!(m.mapped_bytes >= m.file_bytes, "the windows cover the file: {m:?}");
    let evicted = m.resident_bytes < m.committed_bytes;
    drop(cold);

    evict(&path);
    let warm: VectorStore<f32> = small(DIM).populate(true).open(&path).expect("open");
    let m = warm.metrics();
    assert!(m.resident_bytes >= m.committed_bytes, "populate left records out of memory: {m:?}");
    assert!(m.resident_bytes <= m.file_bytes.next_multiple_of(4096), "{m:?}");
    eprintln!("eviction before the populated open worked: {evicted}");
}

// Proves every access pattern, set at open or later, on a store and a
// follower, leaves every read as it was; and that `will_need` is accepted.
#[test]
fn advice_never_changes_a_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    let vectors = fill(&path);
    for pattern in [AccessPattern::Random, AccessPattern::Sequential, AccessPattern::Normal] {
        let store: VectorStore<f32> = small(DIM).access_pattern(pattern).open(&path).expect("open");
        let reader: VectorReader<f32> =
            StoreOptions::new(DIM).access_pattern(pattern).open_reader(&path).expect("reader");
        store.advise(AccessPattern::Sequential).expect("advise");
        reader.advise(AccessPattern::Random).expect("advise");
        store.will_need().expect("will_need");
        reader.will_need().expect("will_need");
        for id in (0..COUNT).step_by(97) {
            assert_eq!(store.get(id).as_deref(), Some(&vectors[id as usize][..]), "{pattern:?}");
            assert_eq!(reader.get(id).as_deref(), Some(&vectors[id as usize][..]), "{pattern:?}");
        }
        drop(reader);
        store.close().expect("close");
    }
}
