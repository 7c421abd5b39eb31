//! WAL replay during recovery: walks the segments from the manifest's on,
//! applies every batch that continues the log, cuts the torn tail durably,
//! makes what it replayed durable, and hands back a writer positioned at the
//! end of the last segment.
//!
//! Rules (docs/FORMAT.md, "Recovery"): a batch must carry the next LSN, the
//! manifest's generation and the next slot; an inline batch's records are
//! rewritten unless the data file already holds them; a location batch's
//! records must already be in the data file, whole. The first frame that
//! breaks a rule or fails its checksum is the torn end: it and everything
//! after it in that segment are cut off (and the cut made durable) before
//! anything is appended. A later segment holding batches after a torn one,
//! a missing segment, or a segment header damaged in front of frames is
//! damage, reported as an error naming the file.

use std::fs;
use std::path::Path;

use crate::data_file::DataFile;
use crate::error::{Error, IoContext, Result};
use crate::format::header::StoreShape;
use crate::format::manifest::{MAX_SEGMENT, Manifest};
use crate::format::record::{RecordHeader, RecordKind};
use crate::format::wal_frame::{Batch, BatchEntry, SegmentHeader};
use crate::format::{WAL_DIR, wal_segment_name};
use crate::ids::{Generation, Lsn, SegmentNo, Slot};
use crate::index::{Change, Index};
use crate::io::Io;
use crate::store::report::TornTail;
use crate::wal::list_segments;
use crate::wal::reader::{SegmentEnd, Verdict, scan_segment};
use crate::wal::writer::WalWriter;

/// A segment's number and where its valid prefix ends.
type NumberedEnd = (SegmentNo, SegmentEnd);

/// What replay found, and the writer to continue with.
pub(super) struct WalRecovery {
    pub next_lsn: u64,
    pub next_slot: Slot,
    pub allocated_bytes: u64,
    pub batches: u64,
    pub segments_read: u64,
    pub torn_tail: Option<TornTail>,
    pub writer: WalWriter,
}

/// Whether the first record slot of `data` holds anything but the zeros
/// `fallocate` leaves: a store whose data file holds a record has logged a
/// batch.
fn holds_any_record(data: &DataFile) -> std::io::Result<bool> {
    let mut buf = vec![0u8; data.record_size_bytes() as usize];
    match data.read_record(Slot::ZERO, &mut buf) {
        Ok(()) => Ok(buf.iter().any(|&b| b != 0)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// Replays the WAL of `manifest` into `index`, rewriting inline records into
/// `data` where they are missing. The steps (docs/FORMAT.md, "Recovery",
/// step 7): check the manifest's segment is there, scan the segments in
/// order, cut the torn tail, make what was replayed durable, and continue
/// the last segment.
pub(super) fn replay_wal(
    io: &Io,
    dir: &Path,
    manifest: &Manifest,
    data: &DataFile,
    index: &Index,
    shape: StoreShape,
) -> Result<WalRecovery> {
    let wal_dir = dir.join(WAL_DIR);
    let first = SegmentNo::from(manifest.wal_segment);
    let segments: Vec<SegmentNo> = list_segments(&wal_dir)?.into_iter().filter(|&s| s >= first).collect();
    let mut replay = Replay {
        data,
        index,
        generation: Generation::from(manifest.generation),
        payload_bytes: shape.payload_bytes() as usize,
        next_lsn: manifest.checkpoint_lsn + 1,
        next_slot: Slot::from(manifest.checkpoint_end_slot),
        allocated_bytes: data.len_bytes()?,
        batches: 0,
        scratch: Vec::new(),
    };
    check_manifest_segment(&wal_dir, manifest, &segments, data)?;
    let (ends, torn_at) = scan_segments(&wal_dir, &segments, &mut replay)?;
    let (keep, torn_tail) = cut_torn_tail(io, &wal_dir, ends, torn_at)?;
    if replay.batches > 0 {
        resync_replayed(io, data, &keep)?;
    }
    // Continue the last segment; start one if none remains.
    let writer = match keep.last() {
        Some((segment, end)) => WalWriter::open_append(io, &end.path, *segment, end.valid_bytes, end.end_crc)?,
        // Every segment from the manifest's on was removed (none existed, or
        // each was a header-only torn creation or followed a tear): none held
        // a frame anyone could have read, so the chain restarts at the
        // manifest's number, which the next open then finds first.
        None => WalWriter::create(io, &wal_dir, first)?,
    };
    Ok(WalRecovery {
        next_lsn: replay.next_lsn,
        next_slot: replay.next_slot,
        allocated_bytes: replay.allocated_bytes,
        batches: replay.batches,
        segments_read: segments.len() as u64,
        torn_tail,
        writer,
    })
}

/// The manifest's segment must be the first one present.
fn check_manifest_segment(wal_dir: &Path, manifest: &Manifest, segments: &[SegmentNo], data: &DataFile) -> Result<()> {
    // A checkpoint creates and syncs its segment before the manifest names
    // it, so if that segment is gone, batches may have gone with it —
    // whatever the checkpoint covers, even nothing (`checkpoint_lsn == 0`
    // with a snapshot). Only a store that never logged a batch may lack it:
    // a new store's first open creates segment 1, so a crash before that
    // leaves the initial manifest, no segment and no record.
    let never_logged = !manifest.has_snapshot
        && manifest.checkpoint_lsn == 0
        && segments.is_empty()
        && !holds_any_record(data).context(|| format!("reading the first record of {}", data.path().display()))?;
    if segments.first() != Some(&SegmentNo::from(manifest.wal_segment)) && !never_logged {
        return Err(Error::Corrupted {
            path: wal_dir.join(wal_segment_name(manifest.wal_segment)),
            offset: 0,
            reason: "the WAL segment the manifest names is missing".into(),
        });
    }
    Ok(())
}

/// Scans every segment in order, applying batches through `replay`.
/// Returns each segment's end and the index of the first torn one.
fn scan_segments(
    wal_dir: &Path,
    segments: &[SegmentNo],
    replay: &mut Replay<'_>,
) -> Result<(Vec<NumberedEnd>, Option<usize>)> {
    let mut ends: Vec<NumberedEnd> = Vec::new();
    let mut torn_at: Option<usize> = None;
    for (i, &segment) in segments.iter().enumerate() {
        let path = wal_dir.join(segment.file_name());
        if segment.get() > MAX_SEGMENT {
            return Err(Error::Corrupted {
                path,
                offset: 0,
                reason: format!("segment number {segment} is out of range"),
            });
        }
        if i > 0 && Some(segment) != segments[i - 1].next() {
            return Err(Error::Corrupted {
                path,
                offset: 0,
                reason: format!("WAL segment {} is missing", segments[i - 1].get() + 1),
            });
        }
        let end = if let Some(t) = torn_at {
            // After a torn frame, later segments may hold no batch.
            let torn_segment = segments[t];
            scan_segment(&path, segment.get(), replay.payload_bytes, |_| {
                Err(Error::Corrupted {
                    path: wal_dir.join(torn_segment.file_name()),
                    offset: 0,
                    reason: format!(
                        "segment {torn_segment} has a torn frame but segment {segment} holds later batches"
                    ),
                })
            })?
        } else {
            scan_segment(&path, segment.get(), replay.payload_bytes, |b| replay.apply(b))?
        };
        if end.valid_bytes == 0 && end.file_bytes > SegmentHeader::ENCODED_LEN as u64 {
            // Headers are synced before any frame is written: a damaged
            // header in front of frames is damage, not a torn write.
            let reason = end.torn.as_ref().map(|e| e.reason.clone()).unwrap_or_default();
            return Err(Error::Corrupted {
                path,
                offset: 0,
                reason: format!("the segment header is damaged: {reason}"),
            });
        }
        if torn_at.is_none() && end.torn.is_some() {
            torn_at = Some(i);
        }
        ends.push((segment, end));
    }
    Ok((ends, torn_at))
}

/// Cuts the torn tail (durably, before anything is appended after it), and
/// drops the segments after it (they hold nothing) and segments whose
/// header never became whole. Returns the segments kept and the tail cut.
fn cut_torn_tail(
    io: &Io,
    wal_dir: &Path,
    ends: Vec<NumberedEnd>,
    torn_at: Option<usize>,
) -> Result<(Vec<NumberedEnd>, Option<TornTail>)> {
    // Cut the torn tail, and drop segments after it (they hold nothing) and
    // segments whose header never became whole.
    let mut torn_tail = None;
    let mut removed_any = false;
    let mut keep: Vec<NumberedEnd> = Vec::new();
    for (i, (segment, end)) in ends.into_iter().enumerate() {
        let after_tear = torn_at.is_some_and(|t| i > t);
        if end.valid_bytes == 0 || after_tear {
            io.remove_file(&end.path).context(|| format!("removing {}", end.path.display()))?;
            removed_any = true;
            if torn_at == Some(i) {
                torn_tail = Some(torn(&end));
            }
            continue;
        }
        if end.torn.is_some() {
            let file = fs::OpenOptions::new()
                .write(true)
                .open(&end.path)
                .context(|| format!("opening {} to cut its torn tail", end.path.display()))?;
            io.set_len(&file, &end.path, end.valid_bytes)
                .and_then(|()| io.sync_all(&file, &end.path))
                .context(|| format!("cutting the torn tail of {}", end.path.display()))?;
            torn_tail = Some(torn(&end));
        }
        keep.push((segment, end));
    }
    if removed_any {
        io.sync_dir(wal_dir).context(|| format!("syncing {}", wal_dir.display()))?;
    }
    Ok((keep, torn_tail))
}

/// Makes what was replayed durable before anything new is acknowledged.
fn resync_replayed(io: &Io, data: &DataFile, keep: &[NumberedEnd]) -> Result<()> {
    // What was replayed may have been only in the page cache of a process
    // that crashed: make it durable before anything new is acknowledged, or
    // a later sync could make newer batches durable ahead of older ones.
    // The frames are written back first, for the reason given in
    // `Replay::apply`: a sync of pages the kernel thinks clean proves nothing.
    data.sync_data().context(|| format!("syncing {}", data.path().display()))?;
    for (_, end) in keep.iter().filter(|(_, e)| e.frames > 0) {
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&end.path)
            .context(|| format!("opening {}", end.path.display()))?;
        let bytes = fs::read(&end.path).context(|| format!("reading {}", end.path.display()))?;
        let frames =
            bytes.get(SegmentHeader::ENCODED_LEN..end.valid_bytes as usize).ok_or_else(|| Error::Corrupted {
                path: end.path.clone(),
                offset: end.valid_bytes,
                reason: "the segment changed during recovery".into(),
            })?;
        io.write_at(&file, &end.path, frames, SegmentHeader::ENCODED_LEN as u64)
            .and_then(|()| io.sync_data(&file, &end.path))
            .context(|| format!("rewriting and syncing {}", end.path.display()))?;
    }
    Ok(())
}

fn torn(end: &SegmentEnd) -> TornTail {
    TornTail {
        path: end.path.clone(),
        offset: end.valid_bytes,
        bytes_cut: end.file_bytes - end.valid_bytes,
        reason: end.torn.as_ref().map(|e| e.reason.clone()).unwrap_or_default(),
    }
}

/// Replay state carried across segments.
struct Replay<'a> {
    data: &'a DataFile,
    index: &'a Index,
    generation: Generation,
    payload_bytes: usize,
    next_lsn: u64,
    next_slot: Slot,
    allocated_bytes: u64,
    batches: u64,
    scratch: Vec<u8>,
}

impl Replay<'_> {
    fn apply(&mut self, b: &Batch<'_>) -> Result<Verdict> {
        if b.lsn != self.next_lsn {
            return Ok(Verdict::TornHere(format!("LSN {} where {} was expected", b.lsn, self.next_lsn)));
        }
        let first_slot = Slot::from(b.first_slot);
        if Generation::from(b.generation) != self.generation || first_slot != self.next_slot {
            return Ok(Verdict::TornHere("the batch does not continue the data file".into()));
        }
        // No writer logs a batch above MAX_BATCH_BYTES of payload; a frame
        // that claims more is damage, and must not drive an allocation.
        if (b.entries.len() as u64).saturating_mul(self.payload_bytes as u64) > crate::store::MAX_BATCH_BYTES {
            return Err(Error::Corrupted {
                path: self.data.path().into(),
                offset: 0,
                reason: format!("a WAL batch of {} vectors is larger than any writer logs", b.entries.len()),
            });
        }
        let record_size = self.data.record_size_bytes() as usize;
        let count = b.entries.len();
        let end_slot = first_slot + count as u64;
        if let Some(payloads) = b.payloads {
            // Inline batch: the frame carries the vectors; rewrite the
            // records (the data file may have lost them to power loss).
            self.scratch.clear();
            self.scratch.resize(record_size * count, 0);
            let mut puts = payloads.chunks_exact(self.payload_bytes.max(1));
            for (i, e) in b.entries.iter().enumerate() {
                let payload: &[u8] = match e.kind {
                    RecordKind::Put => puts.next().unwrap_or(&[]),
                    RecordKind::Tombstone => &[],
                };
                let h = RecordHeader::new(e.kind, e.id, b.lsn, payload);
                if h.crc != e.record_crc {
                    return Ok(Verdict::TornHere("an inline record does not match its checksum".into()));
                }
                let rec = &mut self.scratch[i * record_size..(i + 1) * record_size];
                let head: &mut [u8; RecordHeader::ENCODED_LEN] =
                    (&mut rec[..RecordHeader::ENCODED_LEN]).try_into().expect("64 bytes");
                h.encode_into(head);
                rec[RecordHeader::ENCODED_LEN..RecordHeader::ENCODED_LEN + payload.len()].copy_from_slice(payload);
            }
            // Rewrite even records that survived: after a failed fsync the
            // page cache may hold bytes the disk does not, marked clean, and
            // only a write makes the sync below real. The bytes are the same,
            // so a follower reading them sees no change.
            let needed = self.data.bytes_for_slots(end_slot);
            if needed > self.allocated_bytes {
                self.data
                    .allocate(self.allocated_bytes, needed)
                    .context(|| format!("growing {} during recovery", self.data.path().display()))?;
                self.allocated_bytes = needed;
            }
            self.data
                .write_records(first_slot, &self.scratch)
                .context(|| format!("rewriting records of {} during recovery", self.data.path().display()))?;
        } else {
            // Location batch: the records must already be in the data file,
            // whole; otherwise this frame is the torn end.
            if !self.records_match(first_slot, &b.entries, b.lsn)? {
                return Ok(Verdict::TornHere(format!(
                    "a record of the batch at slots {first_slot}..{end_slot} is missing or fails its checksum"
                )));
            }
            // As above: write the (verified, unchanged) bytes back so the sync
            // that ends recovery really reaches the disk.
            self.scratch.resize(record_size * count, 0);
            self.data
                .read_record(first_slot, &mut self.scratch)
                .and_then(|()| self.data.write_records(first_slot, &self.scratch))
                .context(|| format!("rewriting records of {} during recovery", self.data.path().display()))?;
        }
        Ok(self.accept(b, end_slot))
    }

    /// Whether the data file holds exactly the records a batch describes.
    fn records_match(&mut self, first_slot: Slot, entries: &[BatchEntry], lsn: u64) -> Result<bool> {
        self.data.holds_batch(first_slot, entries, lsn).context(|| {
            format!("reading records at slot {first_slot} of {} during recovery", self.data.path().display())
        })
    }

    /// Applies a verified batch, which ends at `end_slot`, to the index.
    fn accept(&mut self, b: &Batch<'_>, end_slot: Slot) -> Verdict {
        self.index.apply_batch(Lsn::from(b.lsn), end_slot, &index_changes(b));
        self.next_lsn += 1;
        self.next_slot = end_slot;
        self.batches += 1;
        Verdict::Accept
    }
}

/// What a logged batch does to the index (recovery's and the follower's
/// rule): for entry `i`, its id and `Some(first_slot + i)` for a put, `None`
/// for a delete.
pub(super) fn index_changes(b: &Batch<'_>) -> Vec<Change> {
    let first_slot = Slot::from(b.first_slot);
    b.entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.id, (e.kind == RecordKind::Put).then_some(first_slot + i as u64)))
        .collect()
}
