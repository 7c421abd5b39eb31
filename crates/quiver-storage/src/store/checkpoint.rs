//! Checkpoint: make the data durable, write the index snapshot, start a new
//! WAL segment, switch the manifest, then drop what the previous checkpoint
//! made obsolete.
//!
//! Step order (docs/FORMAT.md, "Checkpoint"): sync data file and WAL;
//! snapshot to temp, fsync, rename, fsync directory; create and sync the next
//! segment, fsync `wal/`; manifest to temp, fsync, rename, fsync directory;
//! unlink the previous snapshot and the segments obsolete since the previous
//! checkpoint. The manifest rename is the commit point: a crash before it
//! leaves the old checkpoint in force, after it the new one.

use std::path::PathBuf;

use super::VectorStore;
use super::commit::Writer;
use crate::element::Element;
use crate::error::{Error, IoContext, Result};
use crate::format::manifest::{MAX_SEGMENT, Manifest};
use crate::format::snapshot::TableImage;
use crate::format::{MANIFEST_FILE, WAL_DIR, snapshot_file_name};
use crate::ids::{Generation, Lsn, SegmentNo, Slot};
use crate::index::Index;
use crate::metrics::Counters;
use crate::wal::writer::WalWriter;

/// The writer's checkpoint bookkeeping: the manifest in force, the WAL
/// segments the previous checkpoint made obsolete (kept until the next one,
/// the grace period for followers), and the WAL size past which a commit
/// runs an automatic checkpoint.
#[derive(Debug)]
pub(crate) struct CheckpointState {
    manifest: Manifest,
    obsolete_segments: Vec<SegmentNo>,
    /// The configured threshold.
    every_wal_bytes: u64,
    /// The current trigger: the threshold, or past it after a failure.
    due_at_wal_bytes: u64,
}

impl CheckpointState {
    /// The state after open: `manifest` in force, nothing obsolete yet.
    pub(crate) fn new(manifest: Manifest, every_wal_bytes: u64) -> Self {
        Self { manifest, obsolete_segments: Vec::new(), every_wal_bytes, due_at_wal_bytes: every_wal_bytes }
    }

    /// With `segments` (older than the manifest's, found at open) to be
    /// deleted at the next checkpoint, once its manifest is durable.
    pub(crate) fn with_obsolete(mut self, segments: Vec<SegmentNo>) -> Self {
        self.obsolete_segments = segments;
        self
    }

    /// The manifest in force.
    pub(crate) fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Whether a WAL of `wal_bytes` calls for an automatic checkpoint.
    pub(crate) fn due(&self, wal_bytes: u64) -> bool {
        wal_bytes > self.due_at_wal_bytes
    }

    /// After a failed automatic checkpoint: the next attempt waits for
    /// another threshold's worth of WAL, so a failing checkpoint is not
    /// retried, with its syncs, on every write.
    pub(crate) fn back_off(&mut self, wal_bytes: u64) {
        self.due_at_wal_bytes = wal_bytes.saturating_add(self.every_wal_bytes);
    }

    /// Records that `manifest` is now in force (its rename is durable) and
    /// returns the one it replaced; the trigger resets.
    pub(crate) fn installed(&mut self, manifest: Manifest) -> Manifest {
        self.due_at_wal_bytes = self.every_wal_bytes;
        std::mem::replace(&mut self.manifest, manifest)
    }

    /// The segments to delete now (made obsolete by the previous checkpoint).
    pub(crate) fn take_obsolete_segments(&mut self) -> Vec<SegmentNo> {
        std::mem::take(&mut self.obsolete_segments)
    }

    /// The segments this checkpoint made obsolete, deleted at the next one.
    pub(crate) fn set_obsolete_segments(&mut self, segments: Vec<SegmentNo>) {
        self.obsolete_segments = segments;
    }
}

impl<T: Element> VectorStore<T> {
    /// Makes everything durable, snapshots the index and trims the WAL, so
    /// the next open reads the snapshot instead of replaying history.
    /// Commits also trigger this automatically once the WAL passes
    /// [`crate::StoreOptions::checkpoint_wal_bytes`].
    pub fn checkpoint(&self) -> Result<()> {
        let mut w = self.lock_writer()?;
        self.checkpoint_locked(&mut w, false)
    }

    /// With `force`, writes a new snapshot and manifest even if nothing
    /// changed since the last checkpoint (to replace a damaged snapshot).
    pub(super) fn checkpoint_locked(&self, w: &mut Writer, force: bool) -> Result<()> {
        // `sync_all_locked` checks poison under the writer lock; the data
        // file sync below follows it under the same lock.
        self.sync_all_locked(w)?;
        let g = self.current();
        // Inline batches reach the data file without a sync; the manifest is
        // about to declare every record below `end_slot` durable, and the WAL
        // that could rebuild them is about to become obsolete. (At the other
        // levels `sync_all_locked` has just synced it.)
        if self.options.durability == crate::Durability::Sync
            && let Err(e) = g.data.sync_data()
        {
            let err = Error::io(format!("syncing {}", g.data.path().display()), e);
            self.set_poisoned(&err);
            return Err(err);
        }
        // Ids of a damaged snapshot block that the data file could not
        // rebuild are missing from the index: a snapshot written from it
        // would make that loss permanent and delete the damaged file.
        if let Some(loss) = g.index.base_loss() {
            return Err(Error::Corrupted { path: self.dir.clone(), offset: 0, reason: loss.to_string() });
        }
        let lsn = w.append.last_lsn();
        let end_slot = w.append.next_slot();
        let generation = g.data.generation();
        // A snapshot with a damaged block that the data file rebuilt is
        // replaced even if nothing has changed since, or every open would
        // rebuild the base again.
        let force = force || g.index.base_needs_rewrite();
        if !force
            && w.checkpoints.manifest().has_snapshot
            && w.checkpoints.manifest().checkpoint_lsn == lsn.get()
            && w.checkpoints.manifest().checkpoint_end_slot == end_slot.get()
            && w.checkpoints.manifest().generation == generation.get()
        {
            return Ok(());
        }

        // 1. The snapshot. Until the manifest names it, it is just a file
        // (unless it replaced, under the same name, the one the manifest
        // names: a rewrite of a damaged snapshot at an unchanged LSN).
        self.write_snapshot(&g.index, generation, lsn, end_slot)?;
        let snapshot_name = snapshot_file_name(generation.get(), lsn.get());
        let m = w.checkpoints.manifest();
        let named_already = m.has_snapshot && snapshot_file_name(m.generation, m.checkpoint_lsn) == snapshot_name;

        // 2. The next WAL segment, so the manifest can name where replay
        // starts. A failure here leaves the old checkpoint in force.
        let new_wal = self.start_segment(w).inspect_err(|_| {
            if !named_already {
                let _ = self.io.remove_file(&self.dir.join(&snapshot_name));
            }
        })?;

        // 3. The commit point, then cleanup.
        self.install_checkpoint(w, generation, lsn, end_slot, new_wal)?;
        g.index.snapshot_written();
        Ok(())
    }

    /// Replaces the manifest with one naming `generation`'s snapshot at
    /// `lsn` (already written) and `new_wal` (already created) — the commit
    /// point of checkpoints and generation switches — then moves the writer
    /// to `new_wal` and removes what the previous checkpoint made obsolete.
    /// A failed manifest replace poisons the store (`commit_manifest`).
    pub(super) fn install_checkpoint(
        &self,
        w: &mut Writer,
        generation: Generation,
        lsn: Lsn,
        end_slot: Slot,
        new_wal: WalWriter,
    ) -> Result<()> {
        let manifest = Manifest {
            generation: generation.get(),
            checkpoint_lsn: lsn.get(),
            checkpoint_end_slot: end_slot.get(),
            has_snapshot: true,
            wal_segment: new_wal.segment().get(),
        };
        self.commit_manifest(&manifest)?;
        let previous = w.checkpoints.installed(manifest);
        let old_segment = w.wal.segment();
        w.wal = new_wal;
        *self.wal_handle.lock() = w.wal.sync_handle();
        Counters::add(&self.counters.checkpoints, 1);
        self.remove_obsolete(w, &previous, &snapshot_file_name(generation.get(), lsn.get()), old_segment);
        Ok(())
    }

    /// Writes `snapshot-<generation>-<lsn>.qvs` (temp, fsync, rename, fsync
    /// directory). Until a manifest names it, it is just a file.
    pub(super) fn write_snapshot(&self, index: &Index, generation: Generation, lsn: Lsn, end_slot: Slot) -> Result<()> {
        let entries: Vec<(u64, u64)> = index.entries().into_iter().map(|(id, slot)| (id, slot.get())).collect();
        let table = TableImage::from_entries(&entries).map_err(|id| Error::Corrupted {
            path: self.dir.clone(),
            offset: 0,
            reason: format!("the index lists id {id} twice"),
        })?;
        let bytes = table.encode_file(generation.get(), lsn.get(), end_slot.get());
        let name = snapshot_file_name(generation.get(), lsn.get());
        self.io
            .replace_file_atomically(&self.dir, &name, &bytes)
            .context(|| format!("writing the snapshot {}", self.dir.join(&name).display()))
    }

    /// Creates and syncs the segment after the current one.
    pub(super) fn start_segment(&self, w: &Writer) -> Result<WalWriter> {
        let wal_dir = self.dir.join(WAL_DIR);
        let next_segment = w.wal.segment().next().ok_or_else(|| Error::LimitExceeded {
            what: "a WAL segment number",
            actual: w.wal.segment().get(),
            limit: MAX_SEGMENT,
        })?;
        let path = wal_dir.join(next_segment.file_name());
        // A segment past the current one is a leftover of a rotation that
        // failed and could not even remove what it created: no manifest
        // names it and no frame was logged in it. Without removing it, every
        // later checkpoint would fail to create it again.
        if path.exists() {
            self.io.remove_file(&path).context(|| format!("removing the leftover WAL segment {}", path.display()))?;
        }
        WalWriter::create(&self.io, &wal_dir, next_segment).inspect_err(|_| {
            let _ = self.io.remove_file(&path);
        })
    }

    /// Replaces the manifest: the commit point of checkpoints and
    /// generation switches. A failure poisons the store, because whether
    /// the rename reached the disk is unknown: only a reopen can tell.
    pub(super) fn commit_manifest(&self, manifest: &Manifest) -> Result<()> {
        let mut bytes = [0u8; Manifest::ENCODED_LEN];
        manifest.encode_into(&mut bytes);
        self.io.replace_file_atomically(&self.dir, MANIFEST_FILE, &bytes).map_err(|e| {
            let err = Error::io(format!("replacing {}", self.dir.join(MANIFEST_FILE).display()), e);
            self.set_poisoned(&err);
            err
        })
    }

    /// Marks the previous snapshot and the WAL segments made obsolete by the
    /// checkpoint before last (the grace period for followers) for removal
    /// when the writer lock is released. Nothing depends on the removal; a
    /// file left behind is removed by `open` (a segment also by the next
    /// checkpoint, which lists the directory again).
    pub(super) fn remove_obsolete(
        &self,
        w: &mut Writer,
        previous: &Manifest,
        keep_snapshot: &str,
        old_segment: SegmentNo,
    ) {
        let wal_dir = self.dir.join(WAL_DIR);
        if previous.has_snapshot {
            let old = snapshot_file_name(previous.generation, previous.checkpoint_lsn);
            if old != keep_snapshot {
                w.obsolete_files.push(self.dir.join(old));
            }
        }
        for segment in w.checkpoints.take_obsolete_segments() {
            w.obsolete_files.push(wal_dir.join(segment.file_name()));
        }
        let now_obsolete =
            crate::wal::list_segments(&wal_dir).unwrap_or_default().into_iter().filter(|&s| s <= old_segment).collect();
        w.checkpoints.set_obsolete_segments(now_obsolete);
    }

    /// Files in the store directory, for tools and tests.
    pub fn files(&self) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for dir in [self.dir.clone(), self.dir.join(WAL_DIR)] {
            for e in std::fs::read_dir(&dir).context(|| format!("listing {}", dir.display()))? {
                let e = e.context(|| format!("listing {}", dir.display()))?;
                if e.file_type().map(|t| t.is_file()).unwrap_or(false) {
                    out.push(e.path());
                }
            }
        }
        out.sort();
        Ok(out)
    }
}
