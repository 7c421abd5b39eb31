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
use crate::format::manifest::Manifest;
use crate::format::snapshot::{SnapshotHeader, encode_entry};
use crate::format::{MANIFEST_FILE, WAL_DIR, crc32, snapshot_file_name, wal_segment_name};
use crate::metrics::Counters;
use crate::wal::writer::WalWriter;

impl<T: Element> VectorStore<T> {
    /// Makes everything durable, snapshots the index and trims the WAL, so
    /// the next open reads the snapshot instead of replaying history.
    /// Commits also trigger this automatically once the WAL passes
    /// [`crate::StoreOptions::checkpoint_wal_bytes`].
    pub fn checkpoint(&self) -> Result<()> {
        self.check_writable()?;
        let mut w = self.writer.lock();
        self.checkpoint_locked(&mut w)
    }

    pub(super) fn checkpoint_locked(&self, w: &mut Writer) -> Result<()> {
        self.sync_all_locked(w)?;
        // Inline batches reach the data file without a sync; the manifest is
        // about to declare every record below `end_slot` durable, and the WAL
        // that could rebuild them is about to become obsolete.
        if let Err(e) = self.current().data.sync_data() {
            let err = Error::io(format!("syncing {}", self.current().data.path().display()), e);
            self.poison(&err);
            return Err(err);
        }
        let lsn = w.next_lsn - 1;
        let end_slot = w.next_slot;
        let generation = self.current().data.generation();
        if w.manifest.has_snapshot
            && w.manifest.checkpoint_lsn == lsn
            && w.manifest.checkpoint_end_slot == end_slot
            && w.manifest.generation == generation
        {
            return Ok(());
        }

        // 1. The snapshot. Until the manifest names it, it is just a file.
        let entries = self.current().index.entries();
        let mut bytes = vec![0u8; SnapshotHeader::ENCODED_LEN];
        bytes.reserve(entries.len() * 16);
        for &(id, slot) in &entries {
            bytes.extend_from_slice(&encode_entry(id, slot));
        }
        let header = SnapshotHeader {
            generation,
            lsn,
            end_slot,
            entry_count: entries.len() as u64,
            entries_crc: crc32(0, &bytes[SnapshotHeader::ENCODED_LEN..]),
        };
        let head: &mut [u8; SnapshotHeader::ENCODED_LEN] =
            (&mut bytes[..SnapshotHeader::ENCODED_LEN]).try_into().expect("64 bytes");
        header.encode_into(head);
        let snapshot_name = snapshot_file_name(generation, lsn);
        self.io
            .replace_file_atomically(&self.dir, &snapshot_name, &bytes)
            .context(|| format!("writing the snapshot {}", self.dir.join(&snapshot_name).display()))?;

        // 2. The next WAL segment, so the manifest can name where replay
        // starts. A failure here leaves the old checkpoint in force.
        let wal_dir = self.dir.join(WAL_DIR);
        let next_segment = w.wal.segment() + 1;
        let new_wal = match WalWriter::create(&self.io, &wal_dir, next_segment) {
            Ok(wal) => wal,
            Err(e) => {
                let _ = self.io.remove_file(&self.dir.join(&snapshot_name));
                let _ = self.io.remove_file(&wal_dir.join(wal_segment_name(next_segment)));
                return Err(e);
            }
        };

        // 3. The commit point.
        let manifest = Manifest {
            generation,
            checkpoint_lsn: lsn,
            checkpoint_end_slot: end_slot,
            has_snapshot: true,
            wal_segment: next_segment,
        };
        let mut mbytes = [0u8; Manifest::ENCODED_LEN];
        manifest.encode_into(&mut mbytes);
        if let Err(e) = self.io.replace_file_atomically(&self.dir, MANIFEST_FILE, &mbytes) {
            // Whether the rename reached the disk is unknown: the manifest
            // may name either checkpoint, so only a reopen can tell.
            let err = Error::io(format!("replacing {}", self.dir.join(MANIFEST_FILE).display()), e);
            self.poison(&err);
            return Err(err);
        }
        let previous = std::mem::replace(&mut w.manifest, manifest);
        let old_segment = w.wal.segment();
        w.wal = new_wal;
        *self.wal_handle.lock() = w.wal.sync_handle();
        Counters::add(&self.counters.checkpoints, 1);

        // 4. Cleanup; nothing depends on it, so failures are ignored and
        // retried by the next checkpoint or open.
        if previous.has_snapshot {
            let old = snapshot_file_name(previous.generation, previous.checkpoint_lsn);
            if old != snapshot_name {
                let _ = self.io.remove_file(&self.dir.join(old));
            }
        }
        let expired = std::mem::take(&mut w.obsolete_segments);
        for segment in expired {
            let _ = self.io.remove_file(&wal_dir.join(wal_segment_name(segment)));
        }
        w.obsolete_segments =
            crate::wal::list_segments(&wal_dir).unwrap_or_default().into_iter().filter(|&s| s <= old_segment).collect();
        Ok(())
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
