//! Fuzzes the WAL codecs the way recovery uses them: one selector byte (the
//! store's payload length, 1..=256 bytes), then a segment. A segment whose
//! header decodes is walked from byte 64 with the header's chain seed; any
//! other input is walked as bare frames from byte 0 with seed 0, so the
//! fuzzer reaches the frame and batch decoders without forging a header.
//!
//! Properties: no panic, the walk always advances and ends; a frame that
//! decodes re-encodes (`encode_batch_into` with the same seed and fields) to
//! the same bytes and the same chain crc; a decoded batch obeys its limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quiver_fuzz::{ByteRange, assert_round_trip};
use quiver_storage::format::record::RecordKind;
use quiver_storage::format::wal_frame::{
    FRAME_HEADER_BYTES, FrameRead, MAX_BATCH_VECTORS, SegmentHeader, decode_batch, encode_batch_into, next_frame,
};

/// The segment header's zero bytes, not checked on decode (FORMAT.md).
const SEGMENT_UNCHECKED: &[ByteRange] = &[(12, 16), (24, 60)];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, segment)) = data.split_first() else { return };
    let payload_bytes = usize::from(selector) + 1;

    let (mut offset, mut crc) = match SegmentHeader::decode_from(segment) {
        Ok((header, seed)) => {
            let mut buf = [0u8; SegmentHeader::ENCODED_LEN];
            let again = header.encode_into(&mut buf);
            assert_eq!(SegmentHeader::decode_from(&buf), Ok((header, again)));
            assert_round_trip(&buf, &segment[..SegmentHeader::ENCODED_LEN], SEGMENT_UNCHECKED, (60, 64));
            if buf[..] == segment[..SegmentHeader::ENCODED_LEN] {
                assert_eq!(again, seed, "the chain seed is the header crc");
            }
            (SegmentHeader::ENCODED_LEN, seed)
        }
        Err(_) => (0, 0),
    };

    // Every frame is at least 40 bytes, so this bound is never the reason a
    // walk stops; it only turns a non-advancing walk into a failure.
    for _ in 0..=segment.len() {
        match next_frame(segment, offset, crc) {
            FrameRead::End => {
                assert_eq!(offset, segment.len());
                return;
            }
            FrameRead::Invalid(e) => {
                assert!(e.offset <= segment.len() as u64);
                return;
            }
            FrameRead::Frame { payload, crc: frame_crc, next_offset } => {
                assert!(next_offset > offset && next_offset <= segment.len());
                assert_eq!(payload, &segment[offset + FRAME_HEADER_BYTES..next_offset]);
                if let Ok(batch) = decode_batch(payload, payload_bytes) {
                    let count = batch.entries.len();
                    assert!(count >= 1 && count <= MAX_BATCH_VECTORS as usize);
                    assert!(batch.first_slot.checked_add(count as u64).is_some());
                    if let Some(inline) = batch.payloads {
                        let puts = batch.entries.iter().filter(|e| e.kind == RecordKind::Put).count();
                        assert_eq!(inline.len(), puts * payload_bytes);
                    }
                    let mut out = Vec::new();
                    let again = encode_batch_into(
                        &mut out,
                        crc,
                        batch.lsn,
                        batch.generation,
                        batch.first_slot,
                        &batch.entries,
                        batch.payloads,
                    );
                    assert_eq!(again, frame_crc, "re-encoding gives the same chain crc");
                    assert_eq!(&out[..], &segment[offset..next_offset], "re-encoding gives the same frame bytes");
                }
                offset = next_offset;
                crc = frame_crc;
            }
        }
    }
    panic!("the frame walk did not end");
});
