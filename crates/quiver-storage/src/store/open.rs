//! Creating a store and recovering one: header check, lock, manifest,
//! snapshot (or rebuild), WAL replay, torn-tail cut.
//!
//! Nothing on disk changes until the format header has been read and
//! matched against the caller's dimension and element type and the lock is
//! held. A new store is built in a temporary sibling directory and renamed
//! into place, so a crash during creation leaves either nothing or a whole
//! store.

use std::fs;
use std::io;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex};

use super::append::AppendState;
use super::checkpoint::CheckpointState;
use super::commit::{CommitState, Writer};
use super::overlay::SyncOverlay;
use super::read_path::ReadPath;
use super::replay::replay_wal;
use super::report::{RecoveryReport, SnapshotOutcome};
use super::{DirSync, VectorStore};
use crate::data_file::{DataFile, NewestRecords, ScanEnd, scan_records};
use crate::element::Element;
use crate::error::{Error, IoContext, Result};
use crate::format::header::{FormatHeader, StoreShape};
use crate::format::manifest::Manifest;
use crate::format::{HEADER_FILE, LOCK_FILE, MANIFEST_FILE, TEMP_SUFFIX, WAL_DIR, data_file_name, snapshot_file_name};
use crate::ids::{Generation, Lsn, SegmentNo, Slot};
use crate::index::{Base, Index, Rebuild};
use crate::io::Io;
use crate::layout::{check_format_header, read_manifest};
use crate::metrics::Counters;
use crate::options::StoreOptions;

impl<T: Element> VectorStore<T> {
    pub(crate) fn open_with(path: &Path, options: &StoreOptions) -> Result<Self> {
        let dimension = options.validate()?;
        let shape = StoreShape { dimension, element: T::TYPE };
        // The map window must hold the header page and two records; checked
        // here so that a refused open creates nothing.
        let window_needed = crate::format::DATA_HEADER_BYTES + 2 * u64::from(shape.record_size_bytes()) + 4096;
        if options.map_window_bytes < window_needed {
            return Err(Error::InvalidArgument(format!(
                "the map window of {} bytes cannot hold two records of {} bytes; use at least {window_needed}",
                options.map_window_bytes,
                shape.record_size_bytes()
            )));
        }
        let io = Io::new(options.faults.clone());
        // A symlink to a directory is followed, so creation renames onto the
        // real directory rather than over the link.
        let resolved;
        let path = match fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => {
                resolved = fs::canonicalize(path).context(|| format!("resolving the symlink {}", path.display()))?;
                resolved.as_path()
            }
            _ => path,
        };
        let created = match fs::metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create_store(&io, path, shape, options)?;
                true
            }
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
            Ok(meta) if !meta.is_dir() => {
                return Err(Error::NotAStore { path: path.into(), reason: "it is a file, not a directory".into() });
            }
            Ok(_) => {
                let empty = fs::read_dir(path).context(|| format!("listing {}", path.display()))?.next().is_none();
                if empty {
                    create_store(&io, path, shape, options)?;
                }
                empty
            }
        };
        // Every later file name is joined to this absolute path, so the
        // store keeps working after the process changes directory.
        let dir = fs::canonicalize(path).context(|| format!("resolving {}", path.display()))?;
        let opened = (|| -> Result<Self> {
            let mut store = recover::<T>(&io, &dir, shape, options)?;
            store.recovery.created = created;
            if matches!(store.recovery.snapshot, SnapshotOutcome::Rebuilt { .. }) {
                // Replace the damaged snapshot, or every open would rebuild.
                let mut w = store.lock_writer_unchecked();
                store.checkpoint_locked(&mut w, true)?;
            }
            Ok(store)
        })();
        if created && let Err(e) = &opened {
            remove_failed_new_store(&io, &dir, e);
        }
        opened
    }
}

/// Removes a store this open created but then failed to open, so a failed
/// open leaves nothing behind. It is removed only while holding its lock: if
/// another process opened it meanwhile (the failure was `Locked`, or the lock
/// is taken now), it is theirs and stays.
fn remove_failed_new_store(io: &Io, dir: &Path, why: &Error) {
    if matches!(why, Error::Locked { .. }) {
        return;
    }
    if let Ok(lock_file) = lock(io, dir) {
        if io.remove_dir_all(dir).is_ok()
            && let Some(parent) = dir.parent()
        {
            let _ = io.sync_dir(parent);
        }
        drop(lock_file);
    }
}

fn create_store(io: &Io, path: &Path, shape: StoreShape, options: &StoreOptions) -> Result<()> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::InvalidArgument(format!("{} does not end in a directory name", path.display())))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(Error::InvalidArgument(format!("the parent directory {} does not exist", parent.display())));
    }
    remove_abandoned_builds(io, &parent, name);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let tmp = parent.join(format!(".{name}.quiver-new-{}-{nanos}", std::process::id()));
    io.create_dir(&tmp).context(|| format!("creating {}", tmp.display()))?;
    let built = (|| -> Result<()> {
        let mut head = [0u8; FormatHeader::ENCODED_LEN];
        FormatHeader { shape }.encode_into(&mut head);
        let hp = tmp.join(HEADER_FILE);
        let f = io.create_file(&hp).context(|| format!("creating {}", hp.display()))?;
        io.write_at(&f, &hp, &head, 0)
            .and_then(|()| io.sync_all(&f, &hp))
            .context(|| format!("writing {}", hp.display()))?;
        io.create_file(&tmp.join(LOCK_FILE)).context(|| format!("creating the lock file in {}", tmp.display()))?;
        let generation = Generation::FIRST;
        DataFile::create(io, &tmp, generation, Lsn::ZERO, shape, options.growth.initial_bytes)?;
        let wal = tmp.join(WAL_DIR);
        io.create_dir(&wal).and_then(|()| io.sync_dir(&wal)).context(|| format!("creating {}", wal.display()))?;
        let manifest = Manifest {
            generation: generation.get(),
            checkpoint_lsn: 0,
            checkpoint_end_slot: 0,
            has_snapshot: false,
            wal_segment: 1,
        };
        let mut mbytes = [0u8; Manifest::ENCODED_LEN];
        manifest.encode_into(&mut mbytes);
        io.replace_file_atomically(&tmp, MANIFEST_FILE, &mbytes)
            .context(|| format!("writing the manifest in {}", tmp.display()))?;
        io.sync_dir(&tmp).context(|| format!("syncing {}", tmp.display()))
    })();
    if let Err(e) = built {
        let _ = io.remove_dir_all(&tmp);
        return Err(e);
    }
    match io.rename(&tmp, path) {
        Ok(()) => io.sync_dir(&parent).context(|| format!("syncing {}", parent.display())),
        Err(e) => {
            let _ = io.remove_dir_all(&tmp);
            // Another process created the store first: open theirs.
            if path.join(HEADER_FILE).exists() {
                Ok(())
            } else if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) {
                Err(Error::InvalidArgument(format!(
                    "{} is a mount point, which a new store cannot be renamed onto; use a directory inside it",
                    path.display()
                )))
            } else {
                Err(Error::io(format!("moving the new store into place at {}", path.display()), e))
            }
        }
    }
}

/// Removes `.<name>.quiver-new-<pid>-<nanos>` directories left by a creator
/// that died (its pid is gone); a live creator's is left alone.
fn remove_abandoned_builds(io: &Io, parent: &Path, name: &str) {
    let prefix = format!(".{name}.quiver-new-");
    let Ok(entries) = fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = io.remove_dir_all(&entry.path());
        }
    }
}

fn lock(io: &Io, dir: &Path) -> Result<fs::File> {
    let path = dir.join(LOCK_FILE);
    let file = io.open_or_create(&path).context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(Error::Locked { path: dir.into() }),
        Err(fs::TryLockError::Error(e)) => Err(Error::io(format!("locking {}", path.display()), e)),
    }
}

/// Removes temporary files and files no checkpoint refers to, and returns
/// the WAL segments older than the manifest's, which are left for the next
/// checkpoint to remove (every clean close leaves the segment before the
/// last checkpoint's, and removing it here would make every open sync the
/// directory). The directory is synced before the first removal: the
/// manifest just read may be one whose rename is not yet durable (a crash
/// between a rename and its directory sync), and the files an older
/// manifest would still need must outlive it. With nothing to remove,
/// nothing is synced here; the first write does it (`DirSync`).
fn remove_leftovers(
    io: &Io,
    dir: &Path,
    m: &Manifest,
    dir_sync: &DirSync,
    report: &mut Vec<PathBuf>,
) -> Result<Vec<SegmentNo>> {
    let keep_snapshot = m.has_snapshot.then(|| snapshot_file_name(m.generation, m.checkpoint_lsn));
    let keep_data = data_file_name(m.generation);
    let mut in_dir = Vec::new();
    for entry in fs::read_dir(dir).context(|| format!("listing {}", dir.display()))? {
        let entry = entry.context(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let stray = name.ends_with(TEMP_SUFFIX)
            || (name.starts_with("snapshot-") && Some(&name) != keep_snapshot.as_ref())
            || (name.starts_with("data-") && name.ends_with(".qvd") && name != keep_data);
        if stray && entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            in_dir.push(entry.path());
        }
    }
    let wal = dir.join(WAL_DIR);
    let mut in_wal = Vec::new();
    let mut obsolete = Vec::new();
    for entry in fs::read_dir(&wal).context(|| format!("listing {}", wal.display()))? {
        let entry = entry.context(|| format!("listing {}", wal.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(TEMP_SUFFIX) {
            in_wal.push(entry.path());
        } else if let Some(segment) = crate::format::parse_wal_segment_name(&name).filter(|&s| s < m.wal_segment) {
            obsolete.push(SegmentNo::from(segment));
        }
    }
    obsolete.sort_unstable();
    if in_dir.is_empty() && in_wal.is_empty() {
        return Ok(obsolete);
    }
    dir_sync.ensure(io, dir)?;
    for path in in_dir.iter().chain(&in_wal) {
        io.remove_file(path).context(|| format!("removing {}", path.display()))?;
        report.push(path.clone());
    }
    if !in_dir.is_empty() {
        io.sync_dir(dir).context(|| format!("syncing {}", dir.display()))?;
    }
    Ok(obsolete)
}

/// The index over the snapshot named by the manifest: the file mapped as
/// the index's base (its header and checksum table checked against the
/// manifest now, each block when it is first read), with nothing loaded.
/// A block found damaged later makes the base rebuild from `data`.
pub(super) fn load_snapshot(dir: &Path, m: &Manifest, data: &Arc<DataFile>) -> std::result::Result<Index, String> {
    let path = dir.join(snapshot_file_name(m.generation, m.checkpoint_lsn));
    let (data, manifest) = (Arc::clone(data), *m);
    let rebuild: Rebuild = Box::new(move || rebuild_entries(&data, &manifest).map_err(|e| e.to_string()));
    let base = Base::open(&path, (m.generation, m.checkpoint_lsn, m.checkpoint_end_slot), rebuild)?;
    Ok(Index::over(Arc::new(base), 0))
}

/// Rebuilds the index from the records below the checkpoint's end (see
/// [`rebuild_entries`]).
pub(super) fn rebuild_from_data(data: &DataFile, m: &Manifest) -> Result<Index> {
    let live = rebuild_entries(data, m)?;
    Index::from_entries(live.into_iter()).map_err(|_| unreachable_dup(data.path()))
}

/// The live entries of the records below the checkpoint's end: a record
/// counts if its LSN is covered by the checkpoint; the newest record per id
/// wins (`NewestRecords`, the rule `verify` applies too); tombstones delete.
fn rebuild_entries(data: &DataFile, m: &Manifest) -> Result<Vec<(u64, Slot)>> {
    let mut newest = NewestRecords::default();
    let mut damage = None;
    let end = scan_records(data, Slot::ZERO, Slot::from(m.checkpoint_end_slot), |slot, decoded| match decoded {
        Ok(h) => {
            if h.lsn <= m.checkpoint_lsn {
                newest.offer(slot, &h);
            }
            ControlFlow::Continue(())
        }
        Err(e) => {
            damage = Some(e.into_error(data.path(), data.slot_offset(slot)));
            ControlFlow::Break(())
        }
    })
    .map_err(|e| Error::Corrupted {
        path: data.path().into(),
        offset: 0,
        reason: format!("records below the checkpoint's end cannot be read: {e}"),
    })?;
    if let Some(e) = damage {
        return Err(e);
    }
    if let ScanEnd::FileEndsAt(slot) = end {
        return Err(Error::Corrupted {
            path: data.path().into(),
            offset: data.slot_offset(slot),
            reason: format!(
                "the file ends at slot {slot}, before the checkpoint's end at slot {}",
                m.checkpoint_end_slot
            ),
        });
    }
    Ok(newest.into_live())
}

fn unreachable_dup(path: &Path) -> Error {
    Error::Corrupted { path: path.into(), offset: 0, reason: "an id was rebuilt twice".into() }
}

/// A manifest whose end slot no data file could reach is damage (checked
/// before anything sizes an allocation by it).
fn check_end_slot_possible(dir: &Path, manifest: &Manifest, data: &DataFile) -> Result<()> {
    let max_slots = (crate::format::MAX_DATA_FILE_BYTES - crate::format::DATA_HEADER_BYTES) / data.record_size_bytes();
    if manifest.checkpoint_end_slot > max_slots {
        return Err(Error::Corrupted {
            path: dir.join(MANIFEST_FILE),
            offset: 24,
            reason: format!("checkpoint end slot {} is beyond any possible data file", manifest.checkpoint_end_slot),
        });
    }
    Ok(())
}

/// The index as of the checkpoint: its snapshot, or rebuilt from the data
/// file when the snapshot is missing or damaged (say which).
fn load_index(dir: &Path, manifest: &Manifest, data: &Arc<DataFile>) -> Result<(Index, SnapshotOutcome)> {
    if manifest.has_snapshot {
        match load_snapshot(dir, manifest, data) {
            Ok(index) => {
                let entries = index.len() as u64;
                Ok((index, SnapshotOutcome::Loaded { entries }))
            }
            Err(reason) => Ok((rebuild_from_data(data, manifest)?, SnapshotOutcome::Rebuilt { reason })),
        }
    } else if manifest.checkpoint_lsn > 0 {
        let reason = "the manifest names no snapshot".into();
        Ok((rebuild_from_data(data, manifest)?, SnapshotOutcome::Rebuilt { reason }))
    } else {
        Ok((Index::default(), SnapshotOutcome::NoCheckpoint))
    }
}

/// Recovers the store at `dir` (docs/FORMAT.md, "Recovery"): header, lock,
/// manifest, leftovers, index, WAL replay, then the store assembled.
fn recover<T: Element>(io: &Io, dir: &Path, shape: StoreShape, options: &StoreOptions) -> Result<VectorStore<T>> {
    check_format_header(dir, shape)?;
    let lock_file = lock(io, dir)?;
    let manifest = read_manifest(dir)?;
    let mut report = RecoveryReport {
        created: false,
        snapshot: SnapshotOutcome::NoCheckpoint,
        wal_segments_read: 0,
        batches_replayed: 0,
        torn_tail: None,
        files_removed: Vec::new(),
    };
    let generation = Generation::from(manifest.generation);
    let data = Arc::new(DataFile::open(io, dir, generation, shape, options.map_window_bytes as usize, true)?);
    check_end_slot_possible(dir, &manifest, &data)?;
    let dir_sync = DirSync::default();
    let obsolete_segments = remove_leftovers(io, dir, &manifest, &dir_sync, &mut report.files_removed)?;

    let (mut index, snapshot) = load_index(dir, &manifest, &data)?;
    // The checkpoint's position until replay applies later batches.
    index.set_position(Lsn::from(manifest.checkpoint_lsn), Slot::from(manifest.checkpoint_end_slot));
    report.snapshot = snapshot;

    let wal = replay_wal(io, dir, &manifest, &data, &index, shape)?;
    report.wal_segments_read = wal.segments_read;
    report.batches_replayed = wal.batches;
    report.torn_tail = wal.torn_tail;
    let (next_lsn, next_slot, allocated_bytes) = (wal.next_lsn, wal.next_slot, wal.allocated_bytes);

    data.publish_found(next_slot)?;
    let wal = wal.writer;
    let wal_handle = wal.sync_handle();
    let writer = Writer {
        wal,
        append: AppendState::recovered(Lsn::from(next_lsn), next_slot, allocated_bytes),
        checkpoints: CheckpointState::new(manifest, options.checkpoint_wal_bytes).with_obsolete(obsolete_segments),
        overlay: SyncOverlay::default(),
        record_buf: Vec::new(),
        payload_buf: Vec::new(),
        obsolete_files: Vec::new(),
    };
    let applied = Lsn::from(next_lsn).previous();
    let store = VectorStore {
        dir: dir.to_path_buf(),
        shape,
        options: options.clone(),
        io: io.clone(),
        reads: ReadPath::new(super::Generation { data, index }, Some(std::sync::Arc::new(lock_file)), options),
        writer: Mutex::new(writer),
        gauges: super::writer_lock::WriterGauges::default(),
        commit: Mutex::new(CommitState { written_lsn: applied, applied_lsn: applied, ..CommitState::default() }),
        commit_done: Condvar::new(),
        batch_logged: Condvar::new(),
        wal_handle: Mutex::new(wal_handle),
        poison: super::poison::Poison::default(),
        closed: AtomicBool::new(false),
        dir_sync,
        compacting: AtomicBool::new(false),
        counters: Counters::default(),
        recovery: report,
        _element: std::marker::PhantomData,
    };
    // Releasing the writer lock publishes the sizes `metrics()` reports.
    drop(store.lock_writer_unchecked());
    Ok(store)
}
