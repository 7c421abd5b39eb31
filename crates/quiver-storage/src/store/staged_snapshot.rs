//! A snapshot written before the writer lock is taken, then finished under
//! it: how a generation switch writes its snapshot without pausing writers
//! for a time that grows with the store.
//!
//! Outside the lock, [`StagedSnapshot::stage`] builds the new generation's
//! hash table from its live entries, as they stand after the last unlocked
//! catch-up, with room for more, writes it to a temporary file and syncs
//! it. Under the lock, [`StagedSnapshot::finish`] applies only the changes
//! of the final catch-up to the table in memory, rewrites only the blocks
//! they touched, then the checksum table and the header, so the work under
//! the lock is proportional to the final catch-up (plus one checksum per
//! block), not to the number of entries. Only a catch-up too large for the
//! room left makes it rewrite the whole table. The file it leaves is
//! byte-for-byte a snapshot as docs/FORMAT.md describes it.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::format::snapshot::{
    BLOCK_BUCKETS, SnapshotHeader, TableImage, block_crc, bucket_count_for, crc_table_bytes,
};
use crate::format::{TEMP_SUFFIX, snapshot_file_name};
use crate::ids::{Generation, Lsn, Slot};
use crate::index::{Change, Index};
use crate::io::Io;

/// Blocks written per call when many are (1 MiB).
const BLOCKS_PER_WRITE: usize = 256;

/// The name of a staged snapshot of `generation`: a temporary file, removed
/// by `open` if a crash leaves it behind.
pub(super) fn staged_snapshot_file_name(generation: Generation) -> String {
    format!("snapshot-{generation:08}-staged.qvs{TEMP_SUFFIX}")
}

/// A snapshot of the next generation, staged on disk and not yet named.
#[derive(Debug)]
pub(super) struct StagedSnapshot {
    io: Io,
    dir: PathBuf,
    generation: Generation,
    /// The staged file, until `finish` renames it.
    path: PathBuf,
    file: File,
    /// The table as it is in the file.
    table: TableImage,
    /// The checksum of each block as it is in the file.
    block_crcs: Vec<u32>,
    /// Set once the file is renamed to its final name (or removed).
    done: bool,
}

impl Drop for StagedSnapshot {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.io.remove_file(&self.path);
        }
    }
}

impl StagedSnapshot {
    /// Writes the entries of `index`, in a table with room for a quarter
    /// more, to the staged file of `generation` and syncs it. The header is
    /// left zero: the file is not a snapshot until `finish`.
    pub(super) fn stage(io: &Io, dir: &Path, generation: Generation, index: &Index) -> Result<Self> {
        let path = dir.join(staged_snapshot_file_name(generation));
        if path.exists() {
            io.remove_file(&path).context(|| format!("removing the leftover {}", path.display()))?;
        }
        let file = io.create_file(&path).context(|| format!("creating {}", path.display()))?;
        let entries = index.entries();
        let n = entries.len() as u64;
        let mut table = TableImage::with_buckets(bucket_count_for(n + n / 4 + BLOCK_BUCKETS as u64));
        for (id, slot) in entries {
            table.insert(id, slot.get());
        }
        let mut staged = Self {
            io: io.clone(),
            dir: dir.to_path_buf(),
            generation,
            path,
            file,
            table,
            block_crcs: Vec::new(),
            done: false,
        };
        staged.write_table()?;
        staged.io.sync_data(&staged.file, &staged.path).context(|| format!("syncing {}", staged.path.display()))?;
        Ok(staged)
    }

    /// Applies `changes` (the final catch-up's, in order) to `index` (the
    /// index the entries were staged from, with everything but `changes`
    /// applied) and to the staged table, writes the blocks they touched,
    /// the checksum table and the header for `lsn` and `end_slot`, syncs
    /// the file and renames it to `snapshot-<generation>-<lsn>.qvs`,
    /// syncing the directory. Returns the final name.
    pub(super) fn finish(mut self, index: &Index, changes: &[Change], lsn: Lsn, end_slot: Slot) -> Result<String> {
        index.apply(changes);
        let inserts = changes.iter().filter(|(_, slot)| slot.is_some()).count() as u64;
        if self.table.fits(inserts) {
            for &(id, slot) in changes {
                match slot {
                    Some(slot) => self.table.insert(id, slot.get()),
                    None => self.table.remove(id),
                };
            }
            self.write_dirty_blocks()?;
        } else {
            // More new ids than the room left: a new, larger table.
            let entries: Vec<(u64, u64)> = index.entries().into_iter().map(|(id, slot)| (id, slot.get())).collect();
            self.table = TableImage::from_entries(&entries).map_err(|id| Error::Corrupted {
                path: self.path.clone(),
                offset: 0,
                reason: format!("the new index lists id {id} twice"),
            })?;
            self.write_table()?;
        }
        let header = self.table.header(self.generation.get(), lsn.get(), end_slot.get(), &self.block_crcs);
        self.write(SnapshotHeader::ENCODED_LEN as u64, &crc_table_bytes(&self.block_crcs))?;
        let mut head = [0u8; SnapshotHeader::ENCODED_LEN];
        header.encode_into(&mut head);
        self.write(0, &head)?;
        self.io.sync_all(&self.file, &self.path).context(|| format!("syncing {}", self.path.display()))?;

        let name = snapshot_file_name(self.generation.get(), lsn.get());
        let target = self.dir.join(&name);
        self.io.rename(&self.path, &target).context(|| format!("renaming {} to {name}", self.path.display()))?;
        // From here the staged file is the named snapshot: if the directory
        // sync fails, it is removed, as no manifest will name it.
        self.done = true;
        self.io.sync_dir(&self.dir).context(|| format!("syncing the directory {}", self.dir.display())).inspect_err(
            |_| {
                let _ = self.io.remove_file(&target);
            },
        )?;
        Ok(name)
    }

    /// Writes the whole table (a zero header and checksum table, the
    /// padding, every block), sized exactly.
    fn write_table(&mut self) -> Result<()> {
        let h = self.table.header(0, 0, 0, &[]);
        self.io.set_len(&self.file, &self.path, 0).context(|| format!("sizing {}", self.path.display()))?;
        self.write(0, &vec![0u8; h.table_offset() as usize])?;
        self.block_crcs = vec![0; h.block_count() as usize];
        self.table.take_dirty();
        let all: Vec<usize> = (0..self.block_crcs.len()).collect();
        self.write_blocks(&all)?;
        self.io.set_len(&self.file, &self.path, h.file_len()).context(|| format!("sizing {}", self.path.display()))
    }

    /// Writes the blocks changed since the last write.
    fn write_dirty_blocks(&mut self) -> Result<()> {
        let dirty = self.table.take_dirty();
        self.write_blocks(&dirty)
    }

    /// Writes `blocks` (ascending) at their places, runs of neighbours in
    /// one call, and records their checksums.
    fn write_blocks(&mut self, blocks: &[usize]) -> Result<()> {
        let table_offset = self.table.header(0, 0, 0, &[]).table_offset();
        let mut at = 0;
        while at < blocks.len() {
            let first = blocks[at];
            let mut run = 1;
            while at + run < blocks.len() && blocks[at + run] == first + run && run < BLOCKS_PER_WRITE {
                run += 1;
            }
            let mut bytes = Vec::with_capacity(run * crate::format::snapshot::BLOCK_BYTES);
            for block in first..first + run {
                let encoded = self.table.encode_block(block);
                self.block_crcs[block] = block_crc(block as u64, &encoded);
                bytes.extend_from_slice(&encoded);
            }
            self.write(table_offset + (first * crate::format::snapshot::BLOCK_BYTES) as u64, &bytes)?;
            at += run;
        }
        Ok(())
    }

    fn write(&self, offset: u64, bytes: &[u8]) -> Result<()> {
        self.io.write_at(&self.file, &self.path, bytes, offset).context(|| format!("writing {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::snapshot::{check_block, entries as decode_entries};

    /// Entries per block: the tests' sizes cross block boundaries.
    const CHUNK_ENTRIES: usize = BLOCK_BUCKETS;

    fn index_of(entries: &[(u64, u64)]) -> Index {
        Index::from_entries(entries.iter().map(|&(id, slot)| (id, Slot::from(slot)))).expect("distinct ids")
    }

    /// Stages `before`, finishes with `changes`, and returns the decoded
    /// file and the index it was finished against.
    fn staged_then_finished(before: &[(u64, u64)], changes: &[Change]) -> (SnapshotHeader, Vec<(u64, u64)>, Index) {
        let dir = tempfile::tempdir().expect("tempdir");
        let io = Io::new(None);
        let index = index_of(before);
        let generation = Generation::from(2);
        let staged = StagedSnapshot::stage(&io, dir.path(), generation, &index).expect("stage");
        let name = staged.finish(&index, changes, Lsn::from(9), Slot::from(1 << 40)).expect("finish");
        assert_eq!(name, snapshot_file_name(2, 9));
        assert!(!dir.path().join(staged_snapshot_file_name(generation)).exists(), "the staged file was renamed");
        let bytes = std::fs::read(dir.path().join(name)).expect("read");
        let header = SnapshotHeader::decode_from(&bytes).expect("a valid snapshot");
        for block in 0..header.block_count() {
            check_block(&header, &bytes, block).expect("every block checks");
        }
        let mut entries = decode_entries(&header, &bytes).collect::<Vec<_>>();
        entries.sort_unstable();
        (header, entries, index)
    }

    fn sorted(index: &Index) -> Vec<(u64, u64)> {
        let mut e: Vec<_> = index.entries().into_iter().map(|(id, slot)| (id, slot.get())).collect();
        e.sort_unstable();
        e
    }

    // Proves a finished snapshot holds exactly the index after the final
    // changes, with a checksum the decoder accepts, for every kind of edit:
    // moved, removed (holes filled by new entries and by the last entries),
    // added, and an id added and removed within the changes.
    #[test]
    fn finish_applies_every_kind_of_change() {
        let before: Vec<(u64, u64)> = (0..1000).map(|i| (i * 7, i)).collect();
        let mut changes: Vec<Change> = Vec::new();
        changes.extend((0..50).map(|i| (i * 7 * 3, None)));
        changes.extend((0..20).map(|i| (i * 7 * 5 + 7, Some(Slot::from(1000 + i)))));
        changes.extend((0..10).map(|i| (100_000 + i, Some(Slot::from(1020 + i)))));
        changes.push((200_000, Some(Slot::from(1030))));
        changes.push((200_000, None));
        let (header, entries, index) = staged_then_finished(&before, &changes);
        assert_eq!(entries, sorted(&index));
        assert_eq!(header.entry_count, entries.len() as u64);
        assert_eq!(header.lsn, 9);
    }

    // Proves removals alone (more holes than new entries) shrink the file
    // to exactly the entries left, across chunk boundaries.
    #[test]
    fn finish_with_only_removals_across_chunks() {
        let n = CHUNK_ENTRIES as u64 * 2 + 10;
        let before: Vec<(u64, u64)> = (0..n).map(|i| (i, i)).collect();
        let changes: Vec<Change> = (0..n).filter(|i| i % 3 == 0 || *i >= n - 20).map(|i| (i, None)).collect();
        let (header, entries, index) = staged_then_finished(&before, &changes);
        assert_eq!(entries, sorted(&index));
        assert_eq!(header.entry_count as usize, entries.len());
    }

    // Proves a final catch-up with more new ids than the staged table has
    // room for makes a larger table that holds them all.
    #[test]
    fn finish_beyond_the_room_left_rewrites_a_larger_table() {
        let before: Vec<(u64, u64)> = (0..1000).map(|i| (i, i)).collect();
        let changes: Vec<Change> = (1000..3000).map(|i| (i, Some(Slot::from(i)))).collect();
        let (header, entries, index) = staged_then_finished(&before, &changes);
        assert_eq!(entries, sorted(&index));
        assert_eq!(header.entry_count, 3000);
        assert!(header.bucket_count >= 4000);
    }

    // Proves an empty staging and no changes still make a valid, empty
    // snapshot, and that additions alone grow one from nothing.
    #[test]
    fn finish_from_empty() {
        let (header, entries, _) = staged_then_finished(&[], &[]);
        assert_eq!((header.entry_count, entries.len()), (0, 0));
        let changes: Vec<Change> = (0..CHUNK_ENTRIES as u64 + 5).map(|i| (i, Some(Slot::from(i)))).collect();
        let (_, entries, index) = staged_then_finished(&[], &changes);
        assert_eq!(entries, sorted(&index));
    }

    // Proves sparse changes to a staged snapshot of several chunks — which
    // leave most chunks as staged, so their checksums are reused and
    // combined with the rewritten ones — give exactly the index: a move, a
    // delete filled by a new entry, deletes filled from the last chunk, a
    // shrink across a chunk boundary, an add-then-delete, for many seeds.
    #[test]
    fn sparse_changes_across_chunks_keep_the_untouched_chunks() {
        let chunk = CHUNK_ENTRIES as u64;
        for (seed, n) in [(1u64, 3 * chunk + 17), (2, 2 * chunk + 3), (3, 4 * chunk), (4, chunk + 1), (5, 3 * chunk)] {
            let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut next = move |bound: u64| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng % bound
            };
            // Ids are not slots: an entry's id never equals its slot.
            let before: Vec<(u64, u64)> = (0..n).map(|slot| (slot * 5 + 3, slot)).collect();
            let mut changes: Vec<Change> = Vec::new();
            let mut new_slot = n;
            let mut fresh_id = 10 * n;
            let mut step = || {
                new_slot += 1;
                Slot::from(new_slot)
            };
            for _ in 0..(2 + next(6)) {
                let id = next(n) * 5 + 3;
                match next(4) {
                    0 => changes.push((id, Some(step()))),
                    1 | 2 => changes.push((id, None)),
                    _ => {
                        fresh_id += 1;
                        changes.push((fresh_id, Some(step())));
                        if next(2) == 0 {
                            changes.push((fresh_id, None));
                        }
                    }
                }
            }
            // A shrink across the last chunk boundary: more deletes than adds
            // among the last entries.
            if n % chunk < 20 && n > chunk {
                for slot in (n - (n % chunk) - 2)..n {
                    changes.push((slot * 5 + 3, None));
                }
            }
            let (header, entries, index) = staged_then_finished(&before, &changes);
            assert_eq!(entries, sorted(&index), "seed {seed}, {n} staged entries, {} changes", changes.len());
            assert_eq!(header.entry_count as usize, entries.len());
        }
    }

    // Proves each edit alone, far from the other chunks: a delete in the
    // first chunk filled from the last (which shrinks), a delete filled by a
    // new entry, and new entries appended to a partial last chunk.
    #[test]
    fn each_edit_alone_rewrites_exactly_what_it_changes() {
        let chunk = CHUNK_ENTRIES as u64;
        let staged = |n: u64| -> Vec<(u64, u64)> { (0..n).map(|slot| (slot * 5 + 3, slot)).collect() };
        let cases: [(u64, Vec<Change>); 4] = [
            (3 * chunk + 10, vec![(3, None)]),
            (2 * chunk + 10, vec![(3, None), (1, Some(Slot::from(9 * chunk)))]),
            (2 * chunk + 10, (0..5).map(|k| (1 + 5 * k, Some(Slot::from(9 * chunk + k)))).collect()),
            (2 * chunk, vec![(8, None)]),
        ];
        for (n, changes) in cases {
            let (header, entries, index) = staged_then_finished(&staged(n), &changes);
            assert_eq!(entries, sorted(&index), "{n} staged entries, changes {changes:?}");
            assert_eq!(header.entry_count as usize, entries.len());
        }
    }
}
