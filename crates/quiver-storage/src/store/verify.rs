//! `VectorStore::verify`: an offline-style consistency check of an open
//! store, for `quiver verify` and for tests.
//!
//! It reads every record below the committed end with `pread` (never through
//! the mapping, so a damaged record is reported, not served), checks each
//! checksum, and cross-checks the index against what the records say. It
//! only reads: it never repairs, rewrites or truncates anything.

use std::ops::ControlFlow;
use std::path::PathBuf;

use rustc_hash::{FxHashMap, FxHashSet};

use super::VectorStore;
use crate::data_file::{NewestRecords, ScanEnd, scan_records};
use crate::element::Element;
use crate::error::{Error, Result};
use crate::format::record::RecordKind;
use crate::ids::Slot;

/// What [`VectorStore::verify`] checked and found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Records read and checksummed (every record below the committed end).
    pub records_checked: u64,
    /// Ids in the index (the live vectors).
    pub live_vectors: u64,
    /// Tombstone records among the records checked.
    pub tombstones: u64,
    /// Everything found wrong; empty for a healthy store.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether no problem was found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One thing [`VectorStore::verify`] found wrong, located in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// The file the problem is in.
    pub path: PathBuf,
    /// Byte offset in that file (for a record, the offset of its header).
    pub offset: u64,
    /// What is wrong, as a sentence.
    pub reason: String,
}

impl<T: Element> VectorStore<T> {
    /// Checks the store's records and index and reports what is wrong.
    ///
    /// Every record below the committed end is read with `pread` (in chunks,
    /// never through the mapping) and its checksum checked. Then every index
    /// entry must point to a put record of its id that is the newest record
    /// of that id (highest LSN, then highest slot), and no id absent from the
    /// index may have a put as its newest record.
    ///
    /// The writer lock is held for the whole scan, so the records and the
    /// index cannot change under it: writers (and checkpoints) wait until it
    /// returns, readers do not. The scan reads the whole data file once, so
    /// on a large store expect writes to stall for that long.
    ///
    /// Damage is reported in [`VerifyReport::problems`]; an error is returned
    /// only if a read fails for another reason than the file ending early.
    pub fn verify(&self) -> Result<VerifyReport> {
        let w = self.lock_writer_unchecked();
        let end_slot = w.append.next_slot();
        // The writer's view of the index: what readers see, plus batches
        // logged at `Sync` whose shared sync has not yet made them visible.
        let mut expected: FxHashMap<u64, Slot> = self.current().index.entries().into_iter().collect();
        for (id, slot) in w.overlay.iter() {
            match slot {
                Some(s) => expected.insert(id, s),
                None => expected.remove(&id),
            };
        }

        let path = self.current().data.path().to_path_buf();
        let mut problems = Vec::new();
        // Listing the entries above checked every block of the snapshot the
        // index maps; a damaged one is a problem even when the rebuild from
        // the data file covered for it.
        if let Some(damage) = self.current().index.base_damage() {
            problems.push(Problem { path: self.dir.clone(), offset: 0, reason: damage.to_string() });
        }
        let mut damaged: FxHashSet<Slot> = FxHashSet::default();
        let mut newest = NewestRecords::with_capacity(expected.len());
        let (records_checked, tombstones) = self.scan_records(end_slot, &mut newest, &mut damaged, &mut problems)?;
        drop(w);

        for (&id, &slot) in &expected {
            let at = self.current().data.slot_offset(slot);
            let problem = |reason: String| Problem { path: path.clone(), offset: at, reason };
            if slot >= end_slot {
                problems.push(problem(format!(
                    "the index maps id {id} to slot {slot}, past the committed end at slot {end_slot}"
                )));
            } else if damaged.contains(&slot) {
                problems.push(problem(format!("the index maps id {id} to slot {slot}, whose record is damaged")));
            } else {
                match newest.get(id).map(|n| (n.lsn, n.slot, n.kind)) {
                    None => problems.push(problem(format!(
                        "the index maps id {id} to slot {slot}, but no intact record of id {id} exists"
                    ))),
                    Some((_, newest_slot, kind)) if newest_slot != slot => {
                        let what = if kind == RecordKind::Put { "vector" } else { "tombstone" };
                        problems.push(problem(format!(
                            "the index maps id {id} to slot {slot}, but its newest record is a {what} at slot {newest_slot}"
                        )));
                    }
                    Some((_, _, RecordKind::Tombstone)) => problems
                        .push(problem(format!("the index maps id {id} to slot {slot}, which holds a tombstone"))),
                    Some(_) => {}
                }
            }
        }
        for (id, n) in newest.iter() {
            let (slot, kind) = (n.slot, n.kind);
            if kind == RecordKind::Put && !expected.contains_key(&id) {
                problems.push(Problem {
                    path: path.clone(),
                    offset: self.current().data.slot_offset(slot),
                    reason: format!(
                        "id {id} is absent from the index, but its newest record (slot {slot}) is a vector"
                    ),
                });
            }
        }
        problems.sort_by(|a, b| (&a.path, a.offset).cmp(&(&b.path, b.offset)));
        Ok(VerifyReport { records_checked, live_vectors: expected.len() as u64, tombstones, problems })
    }

    /// Reads and checksums the records below `end_slot` (the scan recovery's
    /// rebuild uses too), recording the newest intact record per id, the
    /// damaged slots and their problems. Returns the records checked and the
    /// tombstones among them.
    fn scan_records(
        &self,
        end_slot: Slot,
        newest: &mut NewestRecords,
        damaged: &mut FxHashSet<Slot>,
        problems: &mut Vec<Problem>,
    ) -> Result<(u64, u64)> {
        let g = self.current();
        let data = &g.data;
        let path = data.path().to_path_buf();
        let (mut checked, mut tombstones) = (0u64, 0u64);
        let end = scan_records(data, Slot::ZERO, end_slot, |slot, decoded| {
            checked += 1;
            match decoded {
                Ok(h) => {
                    tombstones += u64::from(h.kind == RecordKind::Tombstone);
                    newest.offer(slot, &h);
                }
                Err(e) => {
                    damaged.insert(slot);
                    problems.push(Problem {
                        path: path.clone(),
                        offset: data.slot_offset(slot),
                        reason: format!(
                            "the record at slot {slot} is damaged ({} at byte {} of the record)",
                            e.reason, e.offset
                        ),
                    });
                }
            }
            ControlFlow::Continue(())
        })
        .map_err(|e| Error::io(format!("reading the records of {} to verify them", path.display()), e))?;
        if let ScanEnd::FileEndsAt(slot) = end {
            // One problem for the missing tail; nothing beyond exists.
            problems.push(Problem {
                path: path.clone(),
                offset: data.slot_offset(slot),
                reason: format!(
                    "the file ends before the committed end at slot {end_slot}: \
                     the records from slot {slot} on cannot be read"
                ),
            });
            damaged.extend((slot.get()..end_slot.get()).map(Slot::from));
        }
        Ok((checked, tombstones))
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::os::unix::fs::FileExt;

    use crate::format::{DATA_HEADER_BYTES, RECORD_HEADER_BYTES, data_file_name};
    use crate::ids::Slot;
    use crate::{SnapshotOutcome, VectorStore};

    fn vector(id: u64) -> Vec<f32> {
        (0..8).map(|j| (id * 8 + j) as f32).collect()
    }

    // Proves a healthy store with overwrites and deletes verifies clean, and
    // that the counts describe it.
    #[test]
    fn clean_store_has_no_problems() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: VectorStore<f32> = VectorStore::open(dir.path().join("v"), 8).expect("open");
        for id in 0..50 {
            store.store(id, &vector(id)).expect("store");
        }
        store.store(3, &vector(99)).expect("overwrite");
        assert!(store.delete(4).expect("delete"));
        store.checkpoint().expect("checkpoint");
        store.store(60, &vector(60)).expect("store after checkpoint");
        let report = store.verify().expect("verify");
        assert!(report.is_clean(), "{:?}", report.problems);
        assert_eq!(report.records_checked, 53);
        assert_eq!(report.live_vectors, 50);
        assert_eq!(report.tombstones, 1);
        store.close().expect("close");
    }

    // Proves a byte flipped in a live record's payload (covered by the
    // snapshot, so open succeeds without reading it) is reported, naming the
    // data file and the record's offset.
    #[test]
    fn flipped_byte_in_a_live_record_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v");
        let store: VectorStore<f32> = VectorStore::open(&path, 8).expect("open");
        for id in 0..20 {
            store.store(id, &vector(id)).expect("store");
        }
        store.close().expect("close");

        // Slot 5 holds id 5; its payload starts after the record header.
        let record_bytes = u64::from(RECORD_HEADER_BYTES) + 64;
        let record_offset = DATA_HEADER_BYTES + 5 * record_bytes;
        let data_path = path.join(data_file_name(1));
        let file = OpenOptions::new().read(true).write(true).open(&data_path).expect("open data file");
        let mut byte = [0u8; 1];
        let at = record_offset + u64::from(RECORD_HEADER_BYTES) + 3;
        file.read_exact_at(&mut byte, at).expect("read");
        byte[0] ^= 0x10;
        file.write_all_at(&byte, at).expect("write");
        drop(file);

        let store: VectorStore<f32> = VectorStore::open(&path, 8).expect("reopen via the snapshot");
        assert!(matches!(store.recovery_report().snapshot, SnapshotOutcome::Loaded { entries: 20 }));
        let report = store.verify().expect("verify");
        assert_eq!(report.records_checked, 20);
        assert!(!report.is_clean());
        assert!(report.problems.iter().all(|p| p.path == data_path && p.offset == record_offset), "{report:?}");
        assert!(report.problems.iter().any(|p| p.reason.contains("checksum")), "{report:?}");
        assert!(report.problems.iter().any(|p| p.reason.contains("id 5")), "{report:?}");
    }

    // Proves the index cross-checks fire: an entry pointing to an older
    // record, an entry pointing to a tombstone's id slot, and a live id the
    // index lost are each reported at the offending record.
    #[test]
    fn index_disagreements_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: VectorStore<f32> = VectorStore::open(dir.path().join("v"), 8).expect("open");
        for id in 0..4 {
            store.store(id, &vector(id)).expect("store"); // slots 0..4
        }
        store.store(1, &vector(10)).expect("overwrite id 1"); // slot 4
        assert!(store.delete(2).expect("delete id 2")); // slot 5, a tombstone
        // Damage the in-memory index the way a recovery bug would.
        let slot = Slot::from;
        store.current().index.apply(&[(1, Some(slot(1))), (2, Some(slot(5))), (3, None), (9, Some(slot(0)))]);
        let report = store.verify().expect("verify");
        let at = |n: u64| store.current().data.slot_offset(slot(n));
        let has =
            |slot: u64, what: &str| report.problems.iter().any(|p| p.offset == at(slot) && p.reason.contains(what));
        assert!(has(1, "newest record is a vector at slot 4"), "{report:?}");
        assert!(has(5, "tombstone"), "{report:?}");
        assert!(has(3, "id 3 is absent from the index"), "{report:?}");
        assert!(has(0, "index maps id 9"), "{report:?}");
        assert_eq!(report.problems.len(), 4, "{report:?}");
        assert_eq!((report.records_checked, report.tombstones), (6, 1));
    }
}
