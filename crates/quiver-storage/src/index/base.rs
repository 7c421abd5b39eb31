//! The index's base: the checkpoint's snapshot file, mapped and probed in
//! place, so opening a store costs a header and a checksum table, not a
//! load of every id (docs/FORMAT.md, "Snapshot").
//!
//! A base never changes; what the WAL and later writes add lives in the
//! index's in-memory shards, which are consulted first.
//!
//! # Damage found after open
//!
//! Open checks the header and the block checksum table; each block of
//! buckets is checked the first time a probe touches it, and the answer is
//! remembered (one bit per block). A block that fails its check makes the
//! base rebuild itself, once, from the data file's records below the
//! checkpoint (the same rebuild `open` does for a damaged snapshot), and
//! answer from that from then on; the writer's next checkpoint replaces the
//! file. If the data file below the checkpoint is damaged as well (two
//! independent faults), the ids of the damaged blocks are lost: the base
//! keeps the entries of every block that checks, answers "absent" for the
//! rest, counts only what it kept, and says so in [`Base::damage`] and
//! [`Base::loss`]; checkpoints and compactions are then refused, so the
//! damaged snapshot stays as it is, for whoever repairs the store.
//!
//! A listing checks every block, and then also that the blocks hold the
//! header's count of entries; a file that disagrees with itself is damage
//! too.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Map;
use crate::data_file::ImmutableFile;
use crate::format::snapshot::{BLOCK_BUCKETS, EMPTY_SLOT, SnapshotHeader, bucket_at, check_block, home_bucket};
use crate::ids::Slot;

/// Rebuilds the entries a base holds from somewhere else (the data file).
pub(crate) type Rebuild = Box<dyn Fn() -> Result<Vec<(u64, Slot)>, String> + Send + Sync>;

/// What the base answers from after a block failed its check.
struct Fallback {
    map: Map,
    /// Whether `map` is the whole rebuild (else only the blocks that check).
    whole: bool,
}

/// The base of an index: empty, or a mapped snapshot.
#[derive(Default)]
pub(crate) struct Base {
    table: Option<MappedTable>,
}

impl std::fmt::Debug for Base {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.table {
            None => f.write_str("Base(empty)"),
            Some(t) => write!(f, "Base({}, {} ids)", t.path.display(), t.header.entry_count),
        }
    }
}

struct MappedTable {
    path: PathBuf,
    file: ImmutableFile,
    header: SnapshotHeader,
    /// `header.table_offset()` and `header.bucket_count`, kept at hand for
    /// the probe.
    table_offset: usize,
    bucket_count: u64,
    /// One bit per block: set once the block has passed its check.
    checked: Box<[AtomicU64]>,
    /// Entries counted in the blocks checked so far (each block once), so
    /// a listing can hold the header's count against the file's.
    counted: AtomicU64,
    /// Why a block failed its check, set by the first failure.
    damage: OnceLock<String>,
    /// What the base answers from once a block has failed.
    fallback: OnceLock<Fallback>,
    /// What was lost, when the rebuild failed too.
    loss: OnceLock<String>,
    rebuild: Rebuild,
}

impl Base {
    /// Maps the snapshot at `path` and checks its header and checksum table
    /// (not its blocks) and that it is the one `expect` describes
    /// (`generation`, `lsn`, `end_slot`). `rebuild` is what a block that
    /// later fails its check falls back to.
    pub(crate) fn open(path: &Path, expect: (u32, u64, u64), rebuild: Rebuild) -> Result<Self, String> {
        let file = File::open(path).map_err(|e| format!("{} could not be opened: {e}", path.display()))?;
        let len = file.metadata().map_err(|e| format!("{} could not be read: {e}", path.display()))?.len();
        let len = usize::try_from(len).map_err(|_| format!("{} is larger than memory can map", path.display()))?;
        let mapped =
            ImmutableFile::map(&file, len).map_err(|e| format!("{} could not be mapped: {e}", path.display()))?;
        let header = SnapshotHeader::decode_from(mapped.bytes())
            .map_err(|e| format!("{} is corrupted at byte offset {}: {}", path.display(), e.offset, e.reason))?;
        if (header.generation, header.lsn, header.end_slot) != expect {
            return Err(format!("{} does not match the manifest", path.display()));
        }
        let words = header.block_count().div_ceil(64) as usize;
        Ok(Self {
            table: Some(MappedTable {
                path: path.to_path_buf(),
                file: mapped,
                table_offset: header.table_offset() as usize,
                bucket_count: header.bucket_count,
                header,
                checked: (0..words).map(|_| AtomicU64::new(0)).collect(),
                counted: AtomicU64::new(0),
                damage: OnceLock::new(),
                fallback: OnceLock::new(),
                loss: OnceLock::new(),
                rebuild,
            }),
        })
    }

    /// The number of ids in the base (fewer after a loss, see the module
    /// docs).
    pub(crate) fn len(&self) -> usize {
        self.table.as_ref().map_or(0, |t| match t.fallback.get() {
            Some(f) => f.map.len(),
            None => t.header.entry_count as usize,
        })
    }

    /// Whether the base has no bucket to probe (then it is never probed).
    /// Decided by the table's shape, not by its header's count, so a base
    /// is either consulted everywhere or nowhere.
    pub(crate) fn is_empty(&self) -> bool {
        self.table.as_ref().is_none_or(|t| t.bucket_count == 0)
    }

    /// The slot of `id` in the base.
    #[inline]
    pub(crate) fn get(&self, id: u64) -> Option<Slot> {
        let t = self.table.as_ref()?;
        t.get(id)
    }

    /// Why a block of the base failed its check, if one did, and what was
    /// lost if the rebuild failed as well.
    pub(crate) fn damage(&self) -> Option<&str> {
        let t = self.table.as_ref()?;
        t.loss.get().or(t.damage.get()).map(String::as_str)
    }

    /// Whether the snapshot should be replaced: a block failed its check
    /// and the rebuild recovered every id (after a loss the file is kept).
    pub(crate) fn needs_rewrite(&self) -> bool {
        self.table.as_ref().and_then(|t| t.fallback.get()).is_some_and(|f| f.whole)
    }

    /// What was lost, if a block failed its check and the data file could
    /// not rebuild it: while this is set, nothing may write a snapshot or a
    /// generation from the index, or the loss would become permanent.
    pub(crate) fn loss(&self) -> Option<&str> {
        self.table.as_ref().and_then(|t| t.loss.get().map(String::as_str))
    }

    /// Every `(id, slot)` in the base. Checks every block first, so a
    /// damaged block switches to the rebuilt entries before any is listed.
    pub(crate) fn entries(&self) -> Box<dyn Iterator<Item = (u64, Slot)> + '_> {
        let Some(t) = self.table.as_ref() else { return Box::new(std::iter::empty()) };
        if (0..t.header.block_count()).all(|b| t.block_ok(b)) && t.count_agrees() {
            let table = t.buckets();
            Box::new(
                (0..t.header.bucket_count)
                    .map(move |i| bucket_at(table, i))
                    .filter(|&(_, slot)| slot != EMPTY_SLOT)
                    .map(|(id, slot)| (id, Slot::from(slot))),
            )
        } else {
            Box::new(t.fallback().map.iter().map(|(&id, &slot)| (id, slot)))
        }
    }
}

impl MappedTable {
    #[inline]
    fn buckets(&self) -> &[u8] {
        &self.file.bytes()[self.table_offset..]
    }

    #[inline]
    fn get(&self, id: u64) -> Option<Slot> {
        if let Some(f) = self.fallback.get() {
            return f.map.get(&id).copied();
        }
        let n = self.bucket_count;
        if n == 0 {
            return None;
        }
        let table = self.buckets();
        let mut i = home_bucket(id, n);
        // At most every bucket: a table always has empty buckets (the
        // decoder enforces the load limit), so this bound only matters for
        // a file whose checked blocks lie about their count.
        for _ in 0..n {
            if !self.block_ok(i / BLOCK_BUCKETS as u64) {
                return self.fallback().map.get(&id).copied();
            }
            let (held, slot) = bucket_at(table, i);
            if slot == EMPTY_SLOT {
                return None;
            }
            if held == id {
                return Some(Slot::from(slot));
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
        None
    }

    /// With every block checked: whether they hold the header's count of
    /// entries (a file whose every checksum holds can still disagree with
    /// itself only if its writer was wrong; it is then treated as damage).
    fn count_agrees(&self) -> bool {
        let counted = self.counted.load(Ordering::Relaxed);
        if counted == self.header.entry_count {
            return true;
        }
        let _ = self.damage.set(format!(
            "{} holds {counted} entries in its blocks; its header says {}",
            self.path.display(),
            self.header.entry_count
        ));
        false
    }

    /// Whether block `block` has passed its check (checking it now if no
    /// reader has yet). Relaxed is enough: the bytes never change, so a
    /// reader that sees the bit reads the very bytes that were checked.
    #[inline]
    fn block_ok(&self, block: u64) -> bool {
        let (word, bit) = ((block / 64) as usize, 1u64 << (block % 64));
        if self.checked[word].load(Ordering::Relaxed) & bit != 0 {
            return true;
        }
        match check_block(&self.header, self.file.bytes(), block) {
            Ok(()) => {
                // Counted by the one caller that sets the bit.
                if self.checked[word].fetch_or(bit, Ordering::Relaxed) & bit == 0 {
                    self.counted.fetch_add(self.entries_in_block(block), Ordering::Relaxed);
                }
                true
            }
            Err(e) => {
                let _ = self.damage.set(format!(
                    "{} is corrupted at byte offset {}: {}",
                    self.path.display(),
                    e.offset,
                    e.reason
                ));
                false
            }
        }
    }

    /// The number of non-empty buckets in block `block`.
    fn entries_in_block(&self, block: u64) -> u64 {
        let table = self.buckets();
        let first = block * BLOCK_BUCKETS as u64;
        (first..first + BLOCK_BUCKETS as u64).filter(|&i| bucket_at(table, i).1 != EMPTY_SLOT).count() as u64
    }

    /// The entries rebuilt from the data file, or, if that fails too, the
    /// entries of every block that checks; built by the first caller (the
    /// others wait for it).
    fn fallback(&self) -> &Fallback {
        self.fallback.get_or_init(|| match (self.rebuild)() {
            Ok(entries) => Fallback { map: entries.into_iter().collect(), whole: true },
            Err(rebuild) => {
                let table = self.buckets();
                let mut map = Map::default();
                let mut lost_blocks = 0u64;
                for block in 0..self.header.block_count() {
                    if !self.block_ok(block) {
                        lost_blocks += 1;
                        continue;
                    }
                    let first = block * BLOCK_BUCKETS as u64;
                    for (id, slot) in (first..first + BLOCK_BUCKETS as u64).map(|i| bucket_at(table, i)) {
                        if slot != EMPTY_SLOT {
                            map.insert(id, Slot::from(slot));
                        }
                    }
                }
                let lost = self.header.entry_count.saturating_sub(map.len() as u64);
                let _ = self.loss.set(format!(
                    "{}; the data file cannot rebuild it either ({rebuild}): the {lost} ids of {lost_blocks} \
                     damaged blocks are lost",
                    self.damage.get().map_or("a block of the snapshot failed its check", String::as_str)
                ));
                Fallback { map, whole: false }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::format::snapshot::{BLOCK_BYTES, TableImage};

    fn write(dir: &Path, entries: &[(u64, u64)]) -> PathBuf {
        let path = dir.join("snapshot.qvs");
        let bytes = TableImage::from_entries(entries).expect("distinct").encode_file(1, 5, 1_000_000);
        std::fs::write(&path, bytes).expect("write");
        path
    }

    fn rebuilt_from(entries: Vec<(u64, u64)>, calls: Arc<AtomicUsize>) -> Rebuild {
        Box::new(move || {
            calls.fetch_add(1, Ordering::Relaxed);
            Ok(entries.iter().map(|&(id, slot)| (id, Slot::from(slot))).collect())
        })
    }

    // Proves a mapped base answers every id it holds and none it does not,
    // and lists exactly its entries.
    #[test]
    fn a_mapped_base_answers_in_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let entries: Vec<(u64, u64)> = (0..10_000u64).map(|i| (i * 7919, i)).collect();
        let path = write(dir.path(), &entries);
        let calls = Arc::new(AtomicUsize::new(0));
        let base = Base::open(&path, (1, 5, 1_000_000), rebuilt_from(Vec::new(), Arc::clone(&calls))).expect("open");
        assert_eq!(base.len(), 10_000);
        for &(id, slot) in &entries {
            assert_eq!(base.get(id), Some(Slot::from(slot)));
            assert_eq!(base.get(id + 1), None);
        }
        let mut listed: Vec<(u64, u64)> = base.entries().map(|(id, s)| (id, s.get())).collect();
        listed.sort_unstable();
        assert_eq!(listed, entries);
        assert_eq!((calls.load(Ordering::Relaxed), base.damage()), (0, None));
        assert!(Base::open(&path, (1, 6, 1_000_000), rebuilt_from(Vec::new(), calls)).is_err(), "wrong LSN");
    }

    // Proves a block damaged after open (its checksum table intact, so open
    // accepts the file) is caught by the first probe that touches it: the
    // base rebuilds once and answers every id correctly from then on,
    // including ids in the damaged block, and reports the damage.
    #[test]
    fn a_damaged_block_falls_back_to_the_rebuild() {
        let dir = tempfile::tempdir().expect("tempdir");
        let entries: Vec<(u64, u64)> = (0..2_000u64).map(|i| (i, i)).collect();
        let path = write(dir.path(), &entries);
        let mut bytes = std::fs::read(&path).expect("read");
        let h = SnapshotHeader::decode_from(&bytes).expect("valid");
        let at = h.table_offset() as usize + BLOCK_BYTES + 8;
        bytes[at] ^= 1;
        std::fs::write(&path, &bytes).expect("damage block 1");
        let calls = Arc::new(AtomicUsize::new(0));
        let base = Base::open(&path, (1, 5, 1_000_000), rebuilt_from(entries.clone(), Arc::clone(&calls)))
            .expect("the header and checksum table are intact");
        for &(id, slot) in &entries {
            assert_eq!(base.get(id), Some(Slot::from(slot)), "id {id}");
        }
        assert_eq!(base.get(5_000), None);
        assert_eq!(calls.load(Ordering::Relaxed), 1, "rebuilt once");
        assert!(base.damage().is_some_and(|d| d.contains("block 1")), "{:?}", base.damage());
        assert!(base.needs_rewrite(), "a whole rebuild makes the next checkpoint replace the file");
        assert_eq!(base.entries().count(), 2_000);
    }

    // Proves a file whose every checksum holds but whose blocks disagree
    // with its header's count (what only a wrong writer could make) is
    // treated as damage when a listing checks every block: the base answers
    // from the rebuild, and the next checkpoint is told to replace the file.
    #[test]
    fn a_count_that_disagrees_with_the_blocks_is_damage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let entries: Vec<(u64, u64)> = (0..10u64).map(|i| (i, i)).collect();
        let path = write(dir.path(), &entries);
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[32..40].copy_from_slice(&9u64.to_le_bytes());
        let crc = crate::format::crc32(0, &bytes[..60]);
        bytes[60..64].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&path, &bytes).expect("write the miscounted file");
        let calls = Arc::new(AtomicUsize::new(0));
        let base = Base::open(&path, (1, 5, 1_000_000), rebuilt_from(entries.clone(), Arc::clone(&calls)))
            .expect("the header and checksums hold");
        assert_eq!(base.len(), 9, "before a listing, the header's count");
        assert_eq!(base.entries().count(), 10);
        assert_eq!((base.len(), calls.load(Ordering::Relaxed)), (10, 1), "the rebuild's count, after one rebuild");
        assert!(base.damage().is_some_and(|d| d.contains("header says 9")), "{:?}", base.damage());
        assert!(base.needs_rewrite());
    }

    // Proves two independent faults (a damaged block and a data file that
    // cannot rebuild) lose only the damaged block's ids: every other id is
    // still answered right, the lost ones read as absent, the count and the
    // listing agree, the damage names the loss, and the file is not marked
    // for a rewrite (it is kept for whoever repairs the store).
    #[test]
    fn a_damaged_block_without_a_rebuild_loses_only_its_ids() {
        let dir = tempfile::tempdir().expect("tempdir");
        let entries: Vec<(u64, u64)> = (0..2_000u64).map(|i| (i, i)).collect();
        let path = write(dir.path(), &entries);
        let mut bytes = std::fs::read(&path).expect("read");
        let h = SnapshotHeader::decode_from(&bytes).expect("valid");
        bytes[h.table_offset() as usize + 2 * BLOCK_BYTES + 3] ^= 0x40;
        std::fs::write(&path, &bytes).expect("damage block 2");
        let base = Base::open(&path, (1, 5, 1_000_000), Box::new(|| Err("record 7 is damaged".into()))).expect("open");
        let kept: Vec<(u64, Slot)> = base.entries().collect();
        assert!(kept.len() < 2_000 && kept.len() > 1_500, "one block's ids lost: {} kept", kept.len());
        assert_eq!(base.len(), kept.len(), "the count follows what was kept");
        let kept_ids: std::collections::HashSet<u64> = kept.iter().map(|&(id, _)| id).collect();
        for &(id, slot) in &entries {
            let expected = kept_ids.contains(&id).then(|| Slot::from(slot));
            assert_eq!(base.get(id), expected, "id {id}");
        }
        let damage = base.damage().expect("reported");
        assert!(damage.contains("block 2") && damage.contains("record 7 is damaged"), "{damage}");
        assert!(damage.contains(&format!("the {} ids", 2_000 - kept.len())), "{damage}");
        assert!(!base.needs_rewrite());
    }
}
