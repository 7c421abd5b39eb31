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
use crate::ids::Slot;

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
    FileEndsAt(Slot),
}

/// Reads the records in `[from_slot, end_slot)` of `data` in file order and
/// calls `visit(slot, decoded)` for each, where `decoded` is the verified
/// header or why the record failed its checks. An I/O error other than the
/// file ending early is returned, never taken for damage.
pub(crate) fn scan_records(
    data: &DataFile,
    from_slot: Slot,
    end_slot: Slot,
    mut visit: impl FnMut(Slot, Result<RecordHeader, DecodeError>) -> ControlFlow<()>,
) -> io::Result<ScanEnd> {
    let mut buf = Vec::new();
    let mut slot = from_slot;
    while slot < end_slot {
        let n = CHUNK_RECORDS.min(end_slot - slot);
        buf.clear();
        match read_records_into(data, slot, slot + n, &mut buf, &mut visit)? {
            ScanEnd::Complete => slot += n,
            ended => return Ok(ended),
        }
    }
    Ok(ScanEnd::Complete)
}

/// Reads the records in `[from_slot, end_slot)` of `data`, in chunks of
/// `CHUNK_RECORDS`, straight onto the end of `out` (compaction writes them
/// from there to the next generation's file), and calls `visit(slot,
/// decoded)` for each as [`scan_records`] does. When the scan does not
/// complete (an error, the file ending early, the visitor stopping), `out`
/// is cut back to what it held before the call: no unchecked record is ever
/// left in it.
pub(crate) fn read_records_into(
    data: &DataFile,
    from_slot: Slot,
    end_slot: Slot,
    out: &mut Vec<u8>,
    mut visit: impl FnMut(Slot, Result<RecordHeader, DecodeError>) -> ControlFlow<()>,
) -> io::Result<ScanEnd> {
    let record_size = usize::try_from(data.record_size_bytes()).expect("a record size fits in usize");
    let payload_bytes = data.payload_bytes();
    let before = out.len();
    let mut slot = from_slot;
    let ended = loop {
        if slot >= end_slot {
            break Ok(ScanEnd::Complete);
        }
        let n = CHUNK_RECORDS.min(end_slot - slot);
        let start = out.len();
        out.resize(start + n as usize * record_size, 0);
        let chunk = &mut out[start..];
        match data.read_record(slot, chunk) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break Ok(ScanEnd::FileEndsAt(slot)),
            Err(e) => break Err(e),
        }
        if chunk
            .chunks_exact(record_size)
            .enumerate()
            .any(|(i, rec)| visit(slot + i as u64, RecordHeader::decode_from(rec, payload_bytes)).is_break())
        {
            break Ok(ScanEnd::Stopped);
        }
        slot += n;
    };
    if !matches!(ended, Ok(ScanEnd::Complete)) {
        out.truncate(before);
    }
    ended
}

/// The newest record seen for one id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Newest {
    pub(crate) lsn: u64,
    pub(crate) slot: Slot,
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
    pub(crate) fn offer(&mut self, slot: Slot, h: &RecordHeader) {
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
    pub(crate) fn into_live(self) -> Vec<(u64, Slot)> {
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
        n.offer(Slot::from(5), &header(1, 3, RecordKind::Put));
        n.offer(Slot::from(2), &header(1, 4, RecordKind::Put)); // a higher LSN at a lower slot
        n.offer(Slot::from(9), &header(1, 2, RecordKind::Put)); // an older LSN later in the file
        n.offer(Slot::from(7), &header(2, 1, RecordKind::Put));
        n.offer(Slot::from(8), &header(2, 1, RecordKind::Put)); // the same LSN, a later copy
        n.offer(Slot::from(3), &header(3, 1, RecordKind::Put));
        n.offer(Slot::from(4), &header(3, 2, RecordKind::Tombstone));
        assert_eq!(n.get(1).map(|r| r.slot.get()), Some(2));
        assert_eq!(n.get(2).map(|r| r.slot.get()), Some(8));
        let mut live = n.into_live();
        live.sort_unstable();
        assert_eq!(live, vec![(1, Slot::from(2)), (2, Slot::from(8))]);
    }
}
