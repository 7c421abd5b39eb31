//! `inspect`: what a store directory holds, read from its headers and file
//! sizes, for `quiver info` and for tools.
//!
//! It takes no lock and changes nothing, so it works while another process
//! has the store open and is writing. It never maps or parses records: it
//! reads the format header, the manifest and the snapshot header, and asks
//! the file system for sizes.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::data_file::resident_bytes_of_file;
use crate::element::ElementType;
use crate::error::{Error, IoContext, Result};
use crate::format::header::FormatHeader;
use crate::format::manifest::Manifest;
use crate::format::snapshot::{SnapshotHeader, check_block};
use crate::format::{FORMAT_VERSION, WAL_DIR, data_file_name, parse_wal_segment_name, snapshot_file_name};
use crate::layout::read_manifest;

/// How often [`inspect`] rereads the manifest when a checkpoint in another
/// process replaces the files it names while they are being read.
const MAX_ATTEMPTS: usize = 5;

/// What a store directory holds, as read by [`inspect`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreInfo {
    /// The store directory.
    pub path: PathBuf,
    /// The on-disk format version.
    pub format_version: u32,
    /// Elements per vector.
    pub dimension: u32,
    /// The element type.
    pub element: ElementType,
    /// Bytes per record (header plus padded payload).
    pub record_size_bytes: u32,
    /// The current generation (names the data file).
    pub generation: u32,
    /// The LSN the last checkpoint covers (0 before the first checkpoint).
    pub checkpoint_lsn: u64,
    /// Records below this slot were durable at the last checkpoint.
    pub checkpoint_end_slot: u64,
    /// The first WAL segment that may hold batches after the checkpoint.
    pub wal_first_segment: u64,
    /// Whether the manifest names a snapshot and its file exists.
    pub snapshot_exists: bool,
    /// Entries in the snapshot, if it exists and its checksums pass.
    pub snapshot_entries: Option<u64>,
    /// Why the snapshot is unusable, if it exists but is damaged (open would
    /// rebuild the index from the data file).
    pub snapshot_problem: Option<String>,
    /// Bytes of the snapshot file (0 if there is none).
    pub snapshot_bytes: u64,
    /// The current data file.
    pub data_file: PathBuf,
    /// The data file's length (reserved room included).
    pub data_file_bytes: u64,
    /// Disk space allocated to the data file (blocks × 512).
    pub data_file_allocated_bytes: u64,
    /// Bytes of the data file in memory (the page cache, by `mincore`), or
    /// `None` if the kernel would not say.
    pub data_file_resident_bytes: Option<u64>,
    /// WAL segment files under `wal/`.
    pub wal_segments: u64,
    /// Total bytes of the WAL segments.
    pub wal_bytes: u64,
}

/// Reads what the store at `path` holds without taking its lock or changing
/// anything, so it works while another process has the store open.
///
/// Errors: [`Error::NotAStore`] if `path` is not a Quiver store,
/// [`Error::UnsupportedVersion`] for another format version,
/// [`Error::Corrupted`] for a damaged format header or manifest. A damaged
/// snapshot is not an error (open rebuilds the index): it is reported in
/// [`StoreInfo::snapshot_problem`].
///
/// ```
/// use quiver_storage::{ElementType, VectorStore, inspect};
/// let dir = tempfile::tempdir()?;
/// let store: VectorStore<f32> = VectorStore::open(dir.path().join("v"), 3)?;
/// store.store(1, &[1.0, 2.0, 3.0])?;
/// let info = inspect(store.path())?; // while the store is open
/// assert_eq!((info.dimension, info.element), (3, ElementType::F32));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn inspect(path: &Path) -> Result<StoreInfo> {
    let header = read_format_header(path)?;
    let shape = header.shape;
    // A checkpoint in another process may replace the snapshot (or a
    // compaction the data file) between reading the manifest and reading the
    // file it names; reread the manifest and try again when that happens.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let manifest = read_manifest(path)?;
        match read_files(path, &manifest) {
            Ok(files) => {
                return Ok(StoreInfo {
                    path: path.to_path_buf(),
                    format_version: FORMAT_VERSION,
                    dimension: shape.dimension,
                    element: shape.element,
                    record_size_bytes: shape.record_size_bytes(),
                    generation: manifest.generation,
                    checkpoint_lsn: manifest.checkpoint_lsn,
                    checkpoint_end_slot: manifest.checkpoint_end_slot,
                    wal_first_segment: manifest.wal_segment,
                    snapshot_exists: files.snapshot_exists,
                    snapshot_entries: files.snapshot_entries,
                    snapshot_problem: files.snapshot_problem,
                    snapshot_bytes: files.snapshot_bytes,
                    data_file: files.data_file,
                    data_file_bytes: files.data_file_bytes,
                    data_file_allocated_bytes: files.data_file_allocated_bytes,
                    data_file_resident_bytes: files.data_file_resident_bytes,
                    wal_segments: files.wal_segments,
                    wal_bytes: files.wal_bytes,
                });
            }
            Err(Vanished(_)) if attempt < MAX_ATTEMPTS && read_manifest(path)? != manifest => continue,
            Err(Vanished(e)) => return Err(e),
        }
    }
}

/// The sizes and snapshot facts [`inspect`] reads for one manifest.
struct Files {
    snapshot_exists: bool,
    snapshot_entries: Option<u64>,
    snapshot_problem: Option<String>,
    snapshot_bytes: u64,
    data_file: PathBuf,
    data_file_bytes: u64,
    data_file_allocated_bytes: u64,
    data_file_resident_bytes: Option<u64>,
    wal_segments: u64,
    wal_bytes: u64,
}

/// A file the manifest names could not be read (usually because a
/// checkpoint or compaction replaced it meanwhile).
struct Vanished(Error);

fn read_files(dir: &Path, m: &Manifest) -> std::result::Result<Files, Vanished> {
    let data_file = dir.join(data_file_name(m.generation));
    let meta = fs::metadata(&data_file).map_err(|e| {
        Vanished(match e.kind() {
            io::ErrorKind::NotFound => Error::Corrupted {
                path: data_file.clone(),
                offset: 0,
                reason: "the data file named by the manifest is missing".into(),
            },
            _ => Error::io(format!("reading the size of {}", data_file.display()), e),
        })
    })?;

    let (mut snapshot_exists, mut snapshot_entries, mut snapshot_problem, mut snapshot_bytes) = (false, None, None, 0);
    if m.has_snapshot {
        let snapshot = dir.join(snapshot_file_name(m.generation, m.checkpoint_lsn));
        match fs::read(&snapshot) {
            Ok(bytes) => {
                snapshot_exists = true;
                snapshot_bytes = bytes.len() as u64;
                // The header and checksum table, then every block: what
                // open checks, and what reads check block by block.
                let checked = SnapshotHeader::decode_from(&bytes)
                    .and_then(|h| (0..h.block_count()).try_for_each(|b| check_block(&h, &bytes, b)).map(|()| h));
                match checked {
                    Ok(h) => snapshot_entries = Some(h.entry_count),
                    Err(e) => {
                        snapshot_problem = Some(format!(
                            "{} is corrupted at byte offset {}: {}",
                            snapshot.display(),
                            e.offset,
                            e.reason
                        ));
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Either a checkpoint replaced it (the caller rereads the
                // manifest) or it is really missing, which open tolerates.
                let manifest_now = read_manifest(dir).map_err(Vanished)?;
                if manifest_now != *m {
                    return Err(Vanished(Error::Corrupted {
                        path: snapshot.clone(),
                        offset: 0,
                        reason: "the snapshot kept being replaced while it was read".into(),
                    }));
                }
                snapshot_problem = Some(format!("{} is missing", snapshot.display()));
            }
            Err(e) => return Err(Vanished(Error::io(format!("reading {}", snapshot.display()), e))),
        }
    }

    let (wal_segments, wal_bytes) = wal_sizes(&dir.join(WAL_DIR)).map_err(Vanished)?;
    // A question to the page cache, not a read: it never fails the report.
    let data_file_resident_bytes = fs::File::open(&data_file).and_then(|f| resident_bytes_of_file(&f, meta.len())).ok();
    Ok(Files {
        snapshot_exists,
        snapshot_entries,
        snapshot_problem,
        snapshot_bytes,
        data_file,
        data_file_bytes: meta.len(),
        data_file_allocated_bytes: meta.blocks().saturating_mul(512),
        data_file_resident_bytes,
        wal_segments,
        wal_bytes,
    })
}

/// Counts the WAL segments and sums their sizes. A segment removed by a
/// concurrent checkpoint between listing and sizing is skipped.
fn wal_sizes(wal_dir: &Path) -> Result<(u64, u64)> {
    let (mut count, mut bytes) = (0u64, 0u64);
    let listing = match fs::read_dir(wal_dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(Error::io(format!("listing {}", wal_dir.display()), e)),
    };
    for entry in listing {
        let entry = entry.context(|| format!("listing {}", wal_dir.display()))?;
        if entry.file_name().to_str().and_then(parse_wal_segment_name).is_none() {
            continue;
        }
        match entry.metadata() {
            Ok(meta) => {
                count += 1;
                bytes = bytes.saturating_add(meta.len());
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("reading the size of {}", entry.path().display()), e)),
        }
    }
    Ok((count, bytes))
}

/// Reads and checks the format header, with the verdicts open gives, after
/// checking that `dir` is a directory at all.
fn read_format_header(dir: &Path) -> Result<FormatHeader> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(Error::NotAStore { path: dir.into(), reason: "it is a file, not a directory".into() }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::NotAStore { path: dir.into(), reason: "it does not exist".into() });
        }
        Err(e) => return Err(Error::io(format!("reading {}", dir.display()), e)),
    }
    crate::layout::read_format_header(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VectorStore;
    use crate::format::HEADER_FILE;

    // Proves inspect reads shape, checkpoint and sizes while the store is
    // open (no lock taken), and changes no file.
    #[test]
    fn inspects_an_open_store_without_changing_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v");
        let store: VectorStore<half::f16> = VectorStore::open(&path, 5).expect("open");
        let before = inspect(&path).expect("inspect a new store");
        assert_eq!((before.dimension, before.element, before.generation), (5, ElementType::F16, 1));
        assert_eq!((before.checkpoint_lsn, before.snapshot_exists, before.snapshot_entries), (0, false, None));
        for id in 0..10 {
            store.store(id, &[half::f16::from_f32(1.0); 5]).expect("store");
        }
        store.checkpoint().expect("checkpoint");
        let listing = |p: &Path| {
            let mut v: Vec<(PathBuf, u64)> = fs::read_dir(p)
                .expect("list")
                .map(|e| e.expect("entry"))
                .map(|e| (e.path(), e.metadata().expect("meta").len()))
                .collect();
            v.sort();
            v
        };
        let files_before = (listing(&path), listing(&path.join(WAL_DIR)));
        let info = inspect(&path).expect("inspect while open");
        assert_eq!(files_before, (listing(&path), listing(&path.join(WAL_DIR))));
        assert_eq!(info.format_version, FORMAT_VERSION);
        assert_eq!(info.record_size_bytes, 128);
        assert_eq!((info.checkpoint_lsn, info.checkpoint_end_slot), (10, 10));
        assert_eq!(
            (info.snapshot_exists, info.snapshot_entries, info.snapshot_problem.clone()),
            (true, Some(10), None)
        );
        assert!(info.data_file_bytes >= 4096 + 10 * 128);
        // Just written, so its records are in the page cache.
        let resident = info.data_file_resident_bytes.expect("mincore answers on Linux");
        assert!((4096..=info.data_file_bytes.next_multiple_of(4096)).contains(&resident), "{resident}");
        assert!(info.wal_segments >= 1 && info.wal_bytes > 0);
        assert_eq!(info.data_file, path.join(data_file_name(1)));
        store.close().expect("close");
    }

    // Proves a directory that is not a store, a missing path and a file are
    // each NotAStore, and nothing is created.
    #[test]
    fn rejects_what_is_not_a_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(inspect(dir.path()), Err(Error::NotAStore { .. })));
        assert!(matches!(inspect(&dir.path().join("absent")), Err(Error::NotAStore { .. })));
        fs::write(dir.path().join("file"), b"x").expect("write");
        assert!(matches!(inspect(&dir.path().join("file")), Err(Error::NotAStore { .. })));
        fs::write(dir.path().join(HEADER_FILE), [0u8; 64]).expect("write");
        assert!(matches!(inspect(dir.path()), Err(Error::NotAStore { .. })));
        assert!(!dir.path().join("absent").exists());
    }

    // Proves a damaged snapshot is reported, not an error.
    #[test]
    fn damaged_snapshot_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v");
        let store: VectorStore<f32> = VectorStore::open(&path, 2).expect("open");
        store.store(1, &[1.0, 2.0]).expect("store");
        store.close().expect("close");
        let snapshot = path.join(snapshot_file_name(1, 1));
        fs::write(&snapshot, b"garbage").expect("damage");
        let info = inspect(&path).expect("inspect");
        assert!(info.snapshot_exists);
        assert_eq!(info.snapshot_entries, None);
        assert!(info.snapshot_problem.as_deref().is_some_and(|p| p.contains("corrupted")), "{info:?}");
    }
}
