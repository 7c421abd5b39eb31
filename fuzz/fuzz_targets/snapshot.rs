//! Fuzzes the index snapshot codec: `SnapshotHeader::decode_from` on a whole
//! file's bytes, then `entries`.
//!
//! Properties: no panic; a snapshot that decodes has exactly `entry_count`
//! entries whose bytes match `entries_crc`, and re-encoding header and
//! entries gives back the same header and the file's bytes (outside the
//! header's reserved 44..60 and its CRC when those reserved bytes are not
//! zero: FORMAT.md lets the decoder leave them unchecked).
#![no_main]

use libfuzzer_sys::fuzz_target;
use quiver_fuzz::{ByteRange, assert_round_trip};
use quiver_storage::format::crc32;
use quiver_storage::format::snapshot::{
    MAX_SNAPSHOT_ENTRIES, SNAPSHOT_ENTRY_BYTES, SnapshotHeader, encode_entry, entries,
};

/// Documented as zero, not checked on decode.
const UNCHECKED: &[ByteRange] = &[(44, 60)];

fuzz_target!(|data: &[u8]| {
    let Ok(h) = SnapshotHeader::decode_from(data) else { return };
    assert!(h.entry_count <= MAX_SNAPSHOT_ENTRIES);
    let decoded: Vec<(u64, u64)> = entries(data).collect();
    assert_eq!(decoded.len() as u64, h.entry_count);
    assert_eq!(data.len(), SnapshotHeader::ENCODED_LEN + decoded.len() * SNAPSHOT_ENTRY_BYTES);

    let mut out = vec![0u8; SnapshotHeader::ENCODED_LEN];
    for &(id, slot) in &decoded {
        out.extend_from_slice(&encode_entry(id, slot));
    }
    assert_eq!(crc32(0, &out[SnapshotHeader::ENCODED_LEN..]), h.entries_crc);
    let head: &mut [u8; SnapshotHeader::ENCODED_LEN] =
        (&mut out[..SnapshotHeader::ENCODED_LEN]).try_into().expect("64 bytes");
    h.encode_into(head);
    assert_eq!(SnapshotHeader::decode_from(&out), Ok(h));
    assert_round_trip(&out, data, UNCHECKED, (60, 64));
});
