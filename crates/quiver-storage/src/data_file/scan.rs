//! Reading records back: the one loop that reads a range of slots with
//! `pread` (in bounded chunks, never through the mapping, so a damaged record
//! is reported rather than served) and decodes each header, and the one rule
//! for which record of an id is current.
//!
//! Recovery's rebuild and `verify` both use these, so they can never disagree
//! about what a data file says.

use std::io;
use std::ops::ControlFlow;

use rustc_hash::FxHashMap;

use super::DataFile;
use crate::format::DecodeError;
use crate::format::record::{RecordHeader, RecordKind};

/// Records read per `pread` (bounded memory per scan).
const CHUNK_RECORDS: u64 = 256;

/// How a scan ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScanEnd {
    /// Every slot of the range was read.
    Complete,
    /// The visitor stopped the scan at this slot.
    Stopped,
    /// The file ends inside the range: the slots from this one on do not exist.
    FileEndsAt(u64),
}

/// Reads the records in `[from_slot, end_slot)` of `data` in file order and
/// calls `visit(slot, decoded)` for each, where `decoded` is the verified
/// header or why the record failed its checks. An I/O error other than the
/// file ending early is returned, never taken for damage.
pub(crate) fn scan_records(
    data: &DataFile,
    from_slot: u64,
    end_slot: u64,
    mut visit: impl FnMut(u64, Result<RecordHeader, DecodeError>) -> ControlFlow<()>,
) -> io::Result<ScanEnd> {
    RecordReader::new(data).read(from_slot, end_slot, |slot, _, decoded| visit(slot, decoded))
}

/// The scan with its buffer kept between calls, for callers that read many
/// ranges (compaction reads each run of live slots) or need each record's
/// bytes as well as its header (compaction copies them).
#[derive(Debug)]
pub(crate) struct RecordReader<'d> {
    data: &'d DataFile,
    buf: Vec<u8>,
}

impl<'d> RecordReader<'d> {
    /// A reader of `data` with room for one chunk.
    pub(crate) fn new(data: &'d DataFile) -> Self {
        let record_size = usize::try_from(data.record_size_bytes()).expect("a record size fits in usize");
        Self { data, buf: vec![0u8; record_size * CHUNK_RECORDS as usize] }
    }

    /// Reads `[from_slot, end_slot)` like [`scan_records`], calling
    /// `visit(slot, record_bytes, decoded)` for each record.
    pub(crate) fn read(
        &mut self,
        from_slot: u64,
        end_slot: u64,
        mut visit: impl FnMut(u64, &[u8], Result<RecordHeader, DecodeError>) -> ControlFlow<()>,
    ) -> io::Result<ScanEnd> {
        let record_size = usize::try_from(self.data.record_size_bytes()).expect("a record size fits in usize");
        let payload_bytes = self.data.payload_bytes();
        let mut slot = from_slot;
        while slot < end_slot {
            let n = CHUNK_RECORDS.min(end_slot - slot);
            let chunk = &mut self.buf[..n as usize * record_size];
            match self.data.read_record(slot, chunk) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(ScanEnd::FileEndsAt(slot)),
                Err(e) => return Err(e),
            }
            for (i, rec) in chunk.chunks_exact(record_size).enumerate() {
                if visit(slot + i as u64, rec, RecordHeader::decode_from(rec, payload_bytes)).is_break() {
                    return Ok(ScanEnd::Stopped);
                }
            }
            slot += n;
        }
        Ok(ScanEnd::Complete)
    }
}

/// The newest record seen for one id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Newest {
    pub(crate) lsn: u64,
    pub(crate) slot: u64,
    pub(crate) kind: RecordKind,
}

/// The rule for which record of an id is current: the highest LSN wins, and
/// between records of one LSN (a batch never holds an id twice, so only a
/// compaction's verbatim copy can repeat one) the higher slot. A tombstone
/// that wins deletes the id.
#[derive(Debug, Default)]
pub(crate) struct NewestRecords {
    by_id: FxHashMap<u64, Newest>,
}

impl NewestRecords {
    /// Room for `ids` distinct ids.
    pub(crate) fn with_capacity(ids: usize) -> Self {
        let mut by_id = FxHashMap::default();
        by_id.reserve(ids);
        Self { by_id }
    }

    /// Offers the record at `slot` with header `h`.
    pub(crate) fn offer(&mut self, slot: u64, h: &RecordHeader) {
        let candidate = Newest { lsn: h.lsn, slot, kind: h.kind };
        let entry = self.by_id.entry(h.id).or_insert(candidate);
        if (candidate.lsn, candidate.slot) >= (entry.lsn, entry.slot) {
            *entry = candidate;
        }
    }

    /// The newest record of `id`, if any was offered.
    pub(crate) fn get(&self, id: u64) -> Option<Newest> {
        self.by_id.get(&id).copied()
    }

    /// Every id with its newest record.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, Newest)> + '_ {
        self.by_id.iter().map(|(&id, &n)| (id, n))
    }

    /// The live `(id, slot)` pairs: ids whose newest record is a put.
    pub(crate) fn into_live(self) -> Vec<(u64, u64)> {
        self.by_id.into_iter().filter(|(_, n)| n.kind == RecordKind::Put).map(|(id, n)| (id, n.slot)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(id: u64, lsn: u64, kind: RecordKind) -> RecordHeader {
        RecordHeader::new(kind, id, lsn, &[])
    }

    // Proves the rule: a higher LSN wins wherever it sits in the file, a
    // higher slot breaks a tie of LSNs, and a winning tombstone deletes.
    #[test]
    fn highest_lsn_then_slot_wins_and_tombstones_delete() {
        let mut n = NewestRecords::default();
        n.offer(5, &header(1, 3, RecordKind::Put));
        n.offer(2, &header(1, 4, RecordKind::Put)); // a higher LSN at a lower slot
        n.offer(9, &header(1, 2, RecordKind::Put)); // an older LSN later in the file
        n.offer(7, &header(2, 1, RecordKind::Put));
        n.offer(8, &header(2, 1, RecordKind::Put)); // the same LSN, a later copy
        n.offer(3, &header(3, 1, RecordKind::Put));
        n.offer(4, &header(3, 2, RecordKind::Tombstone));
        assert_eq!(n.get(1).map(|r| r.slot), Some(2));
        assert_eq!(n.get(2).map(|r| r.slot), Some(8));
        let mut live = n.into_live();
        live.sort_unstable();
        assert_eq!(live, vec![(1, 2), (2, 8)]);
    }
}
