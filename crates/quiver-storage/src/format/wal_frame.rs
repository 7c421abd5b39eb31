//! WAL segment header and frames. A frame holds one batch, so a batch is
//! all-or-nothing. Frame checksums are chained: each is seeded with the
//! previous frame's (the first with the segment header's), so a stale or
//! misplaced frame can never pass.

use super::{DecodeError, FORMAT_VERSION, crc32, le};
use crate::format::record::RecordKind;

/// Magic of a WAL segment header.
pub const WAL_MAGIC: [u8; 8] = *b"QUIVERWL";
/// Bytes of a frame header: payload length u32, chained crc32 u32.
pub const FRAME_HEADER_BYTES: usize = 8;
/// Bytes of a batch payload's fixed part.
pub const BATCH_HEADER_BYTES: usize = 32;
/// Bytes per batch entry.
pub const BATCH_ENTRY_BYTES: usize = 16;
/// Largest frame payload accepted, in bytes (64 MiB): bounds every
/// allocation the reader makes from a length it read from disk.
pub const MAX_FRAME_PAYLOAD_BYTES: u32 = 64 << 20;
/// Largest number of vectors in one batch.
pub const MAX_BATCH_VECTORS: u32 = (MAX_FRAME_PAYLOAD_BYTES - BATCH_HEADER_BYTES as u32) / BATCH_ENTRY_BYTES as u32;

const FLAG_INLINE: u32 = 1;

/// The header at the start of every WAL segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The segment's number (also its file name).
    pub segment: u64,
}

impl SegmentHeader {
    /// Encoded size in bytes.
    pub const ENCODED_LEN: usize = 64;

    // Layout (FORMAT.md, "WAL segment"):
    //   0 magic[8] | 8 version u32 | 12 zero | 16 segment u64 | 24..60 zero
    //  60 crc32 of bytes 0..60 (also the seed of the first frame's crc)
    /// Writes the header into `buf`; returns its crc (the chain seed).
    pub fn encode_into(&self, buf: &mut [u8; Self::ENCODED_LEN]) -> u32 {
        buf.fill(0);
        buf[..8].copy_from_slice(&WAL_MAGIC);
        le::put_u32(buf, 8, FORMAT_VERSION);
        le::put_u64(buf, 16, self.segment);
        let crc = crc32(0, &buf[..60]);
        le::put_u32(buf, 60, crc);
        crc
    }

    /// Reads a header; returns it and the chain seed.
    pub fn decode_from(buf: &[u8]) -> Result<(Self, u32), DecodeError> {
        if buf.len() < Self::ENCODED_LEN {
            return Err(DecodeError::new(0, format!("the segment header is {} bytes; 64 needed", buf.len())));
        }
        if buf[..8] != WAL_MAGIC {
            return Err(DecodeError::new(0, "the WAL segment magic is wrong"));
        }
        let crc = le::u32_at(buf, 60);
        if crc32(0, &buf[..60]) != crc {
            return Err(DecodeError::new(60, "the WAL segment header checksum does not match"));
        }
        let version = le::u32_at(buf, 8);
        if version != FORMAT_VERSION {
            return Err(DecodeError::new(8, format!("WAL version {version} is not {FORMAT_VERSION}")));
        }
        Ok((Self { segment: le::u64_at(buf, 16) }, crc))
    }
}

/// One entry of a batch: which id, put or delete, and the checksum its data
/// record must carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchEntry {
    /// The vector id.
    pub id: u64,
    /// Put or tombstone.
    pub kind: RecordKind,
    /// The crc of the record at `first_slot + index`.
    pub record_crc: u32,
}

/// A decoded batch frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch<'a> {
    /// The batch's commit sequence number.
    pub lsn: u64,
    /// The generation whose data file `first_slot` points into.
    pub generation: u32,
    /// Slot of the first entry's record; entry `i` is at `first_slot + i`.
    pub first_slot: u64,
    /// The entries, in slot order.
    pub entries: Vec<BatchEntry>,
    /// For inline batches, the payload of every put entry, in order, each
    /// `payload_bytes` long. `None` for location batches, whose payloads are
    /// only in the data file.
    pub payloads: Option<&'a [u8]>,
}

/// Appends one frame holding a batch to `out` and returns the frame's crc,
/// the seed of the next frame.
///
/// `payloads` is `Some` for an inline batch and must then hold one payload
/// per put entry.
pub fn encode_batch_into(
    out: &mut Vec<u8>,
    prev_crc: u32,
    lsn: u64,
    generation: u32,
    first_slot: u64,
    entries: &[BatchEntry],
    payloads: Option<&[u8]>,
) -> u32 {
    let start = out.len();
    let payload_len = BATCH_HEADER_BYTES + entries.len() * BATCH_ENTRY_BYTES + payloads.map_or(0, <[u8]>::len);
    out.resize(start + FRAME_HEADER_BYTES + payload_len, 0);
    let frame = &mut out[start..];
    le::put_u32(frame, 0, u32::try_from(payload_len).expect("batch size checked against the frame limit"));
    let p = &mut frame[FRAME_HEADER_BYTES..];
    // Layout (FORMAT.md, "WAL frame"):
    //   0 lsn u64 | 8 generation u32 | 12 count u32 | 16 first slot u64
    //  24 flags u32 (bit 0: inline) | 28 zero | 32 entries | payloads
    le::put_u64(p, 0, lsn);
    le::put_u32(p, 8, generation);
    le::put_u32(p, 12, u32::try_from(entries.len()).expect("batch count checked against the limit"));
    le::put_u64(p, 16, first_slot);
    le::put_u32(p, 24, if payloads.is_some() { FLAG_INLINE } else { 0 });
    for (i, e) in entries.iter().enumerate() {
        let at = BATCH_HEADER_BYTES + i * BATCH_ENTRY_BYTES;
        le::put_u64(p, at, e.id);
        p[at + 8] = e.kind.code();
        le::put_u32(p, at + 12, e.record_crc);
    }
    if let Some(bytes) = payloads {
        let at = BATCH_HEADER_BYTES + entries.len() * BATCH_ENTRY_BYTES;
        p[at..].copy_from_slice(bytes);
    }
    let crc = frame_crc(prev_crc, &frame[..4], &frame[FRAME_HEADER_BYTES..]);
    le::put_u32(frame, 4, crc);
    crc
}

fn frame_crc(prev_crc: u32, len_bytes: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(prev_crc);
    h.update(len_bytes);
    h.update(payload);
    h.finalize()
}

/// What [`next_frame`] found at an offset.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameRead<'a> {
    /// A valid frame: its payload, its crc, and the offset after it.
    Frame {
        /// The payload bytes.
        payload: &'a [u8],
        /// The frame crc (the next frame's seed).
        crc: u32,
        /// Offset of the next frame.
        next_offset: usize,
    },
    /// The buffer ends exactly here.
    End,
    /// The bytes here are not a valid frame: a torn or damaged tail.
    Invalid(DecodeError),
}

/// Reads the frame starting at `offset` of a segment's bytes.
pub fn next_frame(segment: &[u8], offset: usize, prev_crc: u32) -> FrameRead<'_> {
    let rest = &segment[offset.min(segment.len())..];
    if rest.is_empty() {
        return FrameRead::End;
    }
    let at = offset as u64;
    if rest.len() < FRAME_HEADER_BYTES {
        return FrameRead::Invalid(DecodeError::new(at, "a frame header is cut short"));
    }
    let len = le::u32_at(rest, 0);
    if (len as usize) < BATCH_HEADER_BYTES || len > MAX_FRAME_PAYLOAD_BYTES {
        return FrameRead::Invalid(DecodeError::new(at, format!("frame length {len} is out of range")));
    }
    let end = FRAME_HEADER_BYTES + len as usize;
    if rest.len() < end {
        return FrameRead::Invalid(DecodeError::new(at, "a frame is cut short"));
    }
    let crc = le::u32_at(rest, 4);
    if frame_crc(prev_crc, &rest[..4], &rest[FRAME_HEADER_BYTES..end]) != crc {
        return FrameRead::Invalid(DecodeError::new(at, "the frame checksum does not match"));
    }
    FrameRead::Frame { payload: &rest[FRAME_HEADER_BYTES..end], crc, next_offset: offset + end }
}

/// Decodes a checksum-valid frame payload into a batch. `payload_bytes` is
/// the store's unpadded vector size, needed to check inline lengths.
pub fn decode_batch(payload: &[u8], payload_bytes: usize) -> Result<Batch<'_>, DecodeError> {
    if payload.len() < BATCH_HEADER_BYTES {
        return Err(DecodeError::new(0, "the batch header is cut short"));
    }
    let count = le::u32_at(payload, 12);
    if count == 0 || count > MAX_BATCH_VECTORS {
        return Err(DecodeError::new(12, format!("batch count {count} is out of range")));
    }
    let flags = le::u32_at(payload, 24);
    if flags & !FLAG_INLINE != 0 || le::u32_at(payload, 28) != 0 {
        return Err(DecodeError::new(24, format!("unknown batch flags {flags:#x}")));
    }
    let entries_end = BATCH_HEADER_BYTES + count as usize * BATCH_ENTRY_BYTES;
    if payload.len() < entries_end {
        return Err(DecodeError::new(32, "the batch entries are cut short"));
    }
    let mut entries = Vec::with_capacity(count as usize);
    let mut puts = 0usize;
    for i in 0..count as usize {
        let e = &payload[BATCH_HEADER_BYTES + i * BATCH_ENTRY_BYTES..][..BATCH_ENTRY_BYTES];
        let kind = RecordKind::from_code(e[8]).ok_or_else(|| {
            DecodeError::new((BATCH_HEADER_BYTES + i * BATCH_ENTRY_BYTES + 8) as u64, "unknown entry kind")
        })?;
        if e[9..12] != [0, 0, 0] {
            return Err(DecodeError::new(
                (BATCH_HEADER_BYTES + i * BATCH_ENTRY_BYTES + 9) as u64,
                "reserved bytes are not zero",
            ));
        }
        puts += usize::from(kind == RecordKind::Put);
        entries.push(BatchEntry { id: le::u64_at(e, 0), kind, record_crc: le::u32_at(e, 12) });
    }
    let rest = &payload[entries_end..];
    let payloads = if flags & FLAG_INLINE != 0 {
        if rest.len() != puts * payload_bytes {
            return Err(DecodeError::new(entries_end as u64, "inline payload bytes do not match the puts"));
        }
        Some(rest)
    } else {
        if !rest.is_empty() {
            return Err(DecodeError::new(entries_end as u64, "a location batch carries trailing bytes"));
        }
        None
    };
    let first_slot = le::u64_at(payload, 16);
    if first_slot.checked_add(u64::from(count)).is_none() {
        return Err(DecodeError::new(16, "the batch's slots overflow"));
    }
    Ok(Batch { lsn: le::u64_at(payload, 0), generation: le::u32_at(payload, 8), first_slot, entries, payloads })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<BatchEntry> {
        vec![
            BatchEntry { id: 1, kind: RecordKind::Put, record_crc: 11 },
            BatchEntry { id: 2, kind: RecordKind::Tombstone, record_crc: 22 },
        ]
    }

    // Proves frames chain: two frames decode in order, the second fails with
    // the wrong seed, and every truncation point of the last frame is torn.
    #[test]
    fn frames_chain_and_truncations_are_torn() {
        let mut seg = vec![0u8; 64];
        let seed = SegmentHeader { segment: 3 }.encode_into((&mut seg[..64]).try_into().expect("64"));
        let c1 = encode_batch_into(&mut seg, seed, 1, 1, 0, &entries(), Some(&[9u8; 4]));
        let second_at = seg.len();
        let c2 = encode_batch_into(&mut seg, c1, 2, 1, 2, &entries(), None);
        let FrameRead::Frame { payload, crc, next_offset } = next_frame(&seg, 64, seed) else {
            panic!("first frame invalid")
        };
        assert_eq!(crc, c1);
        assert_eq!(next_offset, second_at);
        let b = decode_batch(payload, 4).expect("batch");
        assert_eq!((b.lsn, b.first_slot, b.payloads), (1, 0, Some(&[9u8; 4][..])));
        assert!(matches!(next_frame(&seg, second_at, seed), FrameRead::Invalid(_)));
        assert!(matches!(next_frame(&seg, second_at, c1), FrameRead::Frame { crc, .. } if crc == c2));
        assert_eq!(next_frame(&seg, seg.len(), c2), FrameRead::End);
        for cut in second_at + 1..seg.len() {
            assert!(matches!(next_frame(&seg[..cut], second_at, c1), FrameRead::Invalid(_)), "cut {cut}");
        }
    }

    // Proves a valid-crc frame whose inline payload length disagrees with the
    // dimension is rejected by decode_batch.
    #[test]
    fn inline_length_must_match_dimension() {
        let mut buf = Vec::new();
        encode_batch_into(&mut buf, 0, 1, 1, 0, &entries(), Some(&[0u8; 4]));
        let FrameRead::Frame { payload, .. } = next_frame(&buf, 0, 0) else { panic!("invalid") };
        assert!(decode_batch(payload, 8).is_err());
        assert!(decode_batch(payload, 4).is_ok());
    }
}
