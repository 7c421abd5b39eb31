//! Fuzzes the fixed 64-byte codecs: the format header (`QUIVER`), the data
//! file header, the manifest and the record header. Input: one selector byte
//! (the record payload length), then the bytes handed to every decoder.
//!
//! Properties: no decoder panics; whatever decodes re-encodes to a value
//! that decodes to itself, and to the same bytes. FORMAT.md lets decoders
//! leave reserved bytes unchecked (the checksum still covers them), so an
//! input with non-zero reserved bytes must match outside those bytes and
//! the checksum only.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quiver_fuzz::{ByteRange, assert_round_trip};
use quiver_storage::format::header::{DataFileHeader, FormatHeader};
use quiver_storage::format::manifest::Manifest;
use quiver_storage::format::record::RecordHeader;

/// Zero bytes the decoders do not check (FORMAT.md): reserved 36..60 of
/// `QUIVER` and 44..60 of the data file header (its 36..44 is the change
/// feed's first LSN), and the generation field 12..16, which is 0 in
/// `QUIVER`.
const FORMAT_UNCHECKED: &[ByteRange] = &[(12, 16), (36, 60)];
const DATA_UNCHECKED: &[ByteRange] = &[(44, 60)];
const MANIFEST_UNCHECKED: &[ByteRange] = &[(36, 40), (48, 60)];
/// Every 64-byte header ends in its CRC.
const CRC: ByteRange = (60, 64);

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };

    if let Ok(h) = FormatHeader::decode_from(bytes) {
        let mut buf = [0u8; FormatHeader::ENCODED_LEN];
        h.encode_into(&mut buf);
        assert_eq!(FormatHeader::decode_from(&buf), Ok(h));
        assert_round_trip(&buf, &bytes[..FormatHeader::ENCODED_LEN], FORMAT_UNCHECKED, CRC);
    }

    if let Ok(h) = DataFileHeader::decode_from(bytes) {
        let mut buf = [0u8; DataFileHeader::ENCODED_LEN];
        h.encode_into(&mut buf);
        assert_eq!(DataFileHeader::decode_from(&buf), Ok(h));
        assert_round_trip(&buf, &bytes[..DataFileHeader::ENCODED_LEN], DATA_UNCHECKED, CRC);
    }

    if let Ok(m) = Manifest::decode_from(bytes) {
        assert_eq!(bytes.len(), Manifest::ENCODED_LEN);
        assert!(m.generation > 0 && m.wal_segment > 0 && m.checkpoint_lsn < u64::MAX);
        let mut buf = [0u8; Manifest::ENCODED_LEN];
        m.encode_into(&mut buf);
        assert_eq!(Manifest::decode_from(&buf), Ok(m));
        assert_round_trip(&buf, bytes, MANIFEST_UNCHECKED, CRC);
    }

    // High bit set: the payload is everything after the header; otherwise
    // the selector gives the payload length in 4-byte elements.
    let payload_bytes = if selector & 0x80 != 0 { bytes.len().saturating_sub(64) } else { usize::from(selector) * 4 };
    if let Ok(h) = RecordHeader::decode_from(bytes, payload_bytes) {
        let payload = &bytes[RecordHeader::ENCODED_LEN..RecordHeader::ENCODED_LEN + payload_bytes];
        assert_eq!(RecordHeader::new(h.kind, h.id, h.lsn, payload), h, "the checksum is recomputed identically");
        let mut buf = [0u8; RecordHeader::ENCODED_LEN];
        h.encode_into(&mut buf);
        assert_eq!(&buf[..], &bytes[..RecordHeader::ENCODED_LEN], "a record header re-encodes to its bytes");
    }
});
