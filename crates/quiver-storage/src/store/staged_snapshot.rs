//! A snapshot written before the writer lock is taken, then finished under
//! it: how a generation switch writes its snapshot without pausing writers
//! for a time that grows with the store.
//!
//! Outside the lock, [`StagedSnapshot::stage`] writes the new generation's
//! live entries, as they stand after the last unlocked catch-up, to a
//! temporary file and syncs it. Under the lock, [`StagedSnapshot::finish`]
//! applies only the changes of the final catch-up (an entry's slot
//! rewritten, a removed entry filled by the last one, new entries
//! appended), rewrites only the chunks those edits touched, and derives the
//! entries' checksum from per-chunk checksums, so the work under the lock is
//! proportional to the final catch-up, not to the number of entries. The
//! file it leaves is byte-for-byte a snapshot as docs/FORMAT.md describes
//! it: entries in no particular order, one CRC over all of them.

use std::fs::File;
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;

use crate::error::{Error, IoContext, Result};
use crate::format::snapshot::{SNAPSHOT_ENTRY_BYTES, SnapshotHeader, encode_entry};
use crate::format::{TEMP_SUFFIX, snapshot_file_name};
use crate::ids::{Generation, Lsn, Slot};
use crate::index::{Change, Index};
use crate::io::Io;

/// Entries per checksummed chunk (1 MiB of entries).
const CHUNK_ENTRIES: usize = 1 << 16;

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
    /// The entries as they are in the file, in file order.
    entries: Vec<(u64, Slot)>,
    /// The checksum state of each chunk of `entries`, in order.
    chunk_crcs: Vec<crc32fast::Hasher>,
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
    /// Writes the entries of `index` (sorted by slot, so `finish` can find
    /// any of them by its slot) to the staged file of `generation` and syncs
    /// it. The header is left zero: the file is not a snapshot until
    /// `finish`.
    pub(super) fn stage(io: &Io, dir: &Path, generation: Generation, index: &Index) -> Result<Self> {
        let path = dir.join(staged_snapshot_file_name(generation));
        if path.exists() {
            io.remove_file(&path).context(|| format!("removing the leftover {}", path.display()))?;
        }
        let file = io.create_file(&path).context(|| format!("creating {}", path.display()))?;
        let mut entries = index.entries();
        entries.sort_unstable_by_key(|&(_, slot)| slot);
        let mut staged = Self {
            io: io.clone(),
            dir: dir.to_path_buf(),
            generation,
            path,
            file,
            chunk_crcs: Vec::with_capacity(entries.len().div_ceil(CHUNK_ENTRIES)),
            entries,
            done: false,
        };
        // A placeholder header: zeros never decode as a snapshot.
        staged.write(0, &[0u8; SnapshotHeader::ENCODED_LEN])?;
        for chunk in 0..staged.entries.len().div_ceil(CHUNK_ENTRIES) {
            let crc = staged.write_chunk(chunk)?;
            staged.chunk_crcs.push(crc);
        }
        staged.io.sync_data(&staged.file, &staged.path).context(|| format!("syncing {}", staged.path.display()))?;
        Ok(staged)
    }

    /// Applies `changes` (the final catch-up's, in order) to the staged
    /// entries and to `index` (which must be the index the entries were
    /// staged from, with everything but `changes` applied), writes the
    /// header for `lsn` and `end_slot`, syncs the file and renames it to
    /// `snapshot-<generation>-<lsn>.qvs`, syncing the directory. Returns
    /// the final name.
    pub(super) fn finish(mut self, index: &Index, changes: &[Change], lsn: Lsn, end_slot: Slot) -> Result<String> {
        // Where each touched id's entry is, before any change: the entries
        // are sorted by slot and an id's slot in the index is its entry's.
        let mut touched: FxHashMap<u64, Option<usize>> = FxHashMap::default();
        for &(id, _) in changes {
            if touched.contains_key(&id) {
                continue;
            }
            let position = match index.get(id) {
                None => None,
                Some(slot) => {
                    Some(self.entries.binary_search_by_key(&slot, |&(_, s)| s).map_err(|_| Error::Corrupted {
                        path: self.path.clone(),
                        offset: 0,
                        reason: format!("the staged snapshot lacks id {id} at {slot}, which the new index holds"),
                    })?)
                }
            };
            touched.insert(id, position);
        }
        index.apply(changes);

        let mut dirty = vec![false; self.chunk_crcs.len()];
        let mut holes = Vec::new();
        let mut appends = Vec::new();
        for (&id, &position) in &touched {
            match (position, index.get(id)) {
                (Some(p), Some(slot)) => {
                    self.entries[p] = (id, slot);
                    mark(&mut dirty, p);
                }
                (Some(p), None) => holes.push(p),
                (None, Some(slot)) => appends.push((id, slot)),
                (None, None) => {}
            }
        }
        // New entries fill the holes first; the holes left are filled by
        // the last entries, from the highest hole down, so a moved entry
        // never lands in a hole still to be filled.
        holes.sort_unstable();
        while !holes.is_empty() && !appends.is_empty() {
            let p = holes.remove(holes.len() - 1);
            self.entries[p] = appends.pop().expect("checked non-empty");
            mark(&mut dirty, p);
        }
        for &p in holes.iter().rev() {
            self.entries.swap_remove(p);
            mark(&mut dirty, p);
            mark(&mut dirty, self.entries.len());
        }
        for entry in appends {
            self.entries.push(entry);
            mark(&mut dirty, self.entries.len() - 1);
        }

        let chunks = self.entries.len().div_ceil(CHUNK_ENTRIES);
        dirty.resize(chunks.max(dirty.len()), false);
        self.chunk_crcs.truncate(chunks);
        for (chunk, is_dirty) in dirty.into_iter().enumerate().take(chunks) {
            if chunk >= self.chunk_crcs.len() {
                let crc = self.write_chunk(chunk)?;
                self.chunk_crcs.push(crc);
            } else if is_dirty {
                self.chunk_crcs[chunk] = self.write_chunk(chunk)?;
            }
        }
        let entries_bytes = (self.entries.len() * SNAPSHOT_ENTRY_BYTES) as u64;
        let len = SnapshotHeader::ENCODED_LEN as u64 + entries_bytes;
        self.io.set_len(&self.file, &self.path, len).context(|| format!("sizing {}", self.path.display()))?;
        let mut entries_crc = crc32fast::Hasher::new();
        for crc in &self.chunk_crcs {
            entries_crc.combine(crc);
        }
        let header = SnapshotHeader {
            generation: self.generation.get(),
            lsn: lsn.get(),
            end_slot: end_slot.get(),
            entry_count: self.entries.len() as u64,
            entries_crc: entries_crc.finalize(),
        };
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

    /// Writes chunk `chunk` of the entries at its place in the file and
    /// returns its checksum state.
    fn write_chunk(&self, chunk: usize) -> Result<crc32fast::Hasher> {
        let start = chunk * CHUNK_ENTRIES;
        let end = (start + CHUNK_ENTRIES).min(self.entries.len());
        let mut bytes = Vec::with_capacity((end - start) * SNAPSHOT_ENTRY_BYTES);
        for &(id, slot) in &self.entries[start..end] {
            bytes.extend_from_slice(&encode_entry(id, slot.get()));
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&bytes);
        let offset = (SnapshotHeader::ENCODED_LEN + start * SNAPSHOT_ENTRY_BYTES) as u64;
        self.write(offset, &bytes)?;
        Ok(crc)
    }

    fn write(&self, offset: u64, bytes: &[u8]) -> Result<()> {
        self.io.write_at(&self.file, &self.path, bytes, offset).context(|| format!("writing {}", self.path.display()))
    }
}

/// Marks the chunk holding entry `position` as needing a rewrite.
fn mark(dirty: &mut Vec<bool>, position: usize) {
    let chunk = position / CHUNK_ENTRIES;
    if chunk >= dirty.len() {
        dirty.resize(chunk + 1, false);
    }
    dirty[chunk] = true;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::snapshot::entries as decode_entries;

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
        let mut entries = decode_entries(&bytes).collect::<Vec<_>>();
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
