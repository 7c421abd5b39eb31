//! Fuzzes the index snapshot codec: `SnapshotHeader::decode_from` on a whole
//! file's bytes, then `check_block` on every block and `entries`.
//!
//! Properties: no panic; a file that decodes has exactly the length its
//! header promises, and re-encoding its header gives back its first 60
//! bytes (outside the reserved 52..60 when those are not zero: FORMAT.md
//! lets the decoder leave them unchecked) and its CRC; when every block
//! checks, every entry's slot is below the header's end, and the entries
//! written again with `TableImage` make a file that decodes, whose every
//! block checks and which lists the same entries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quiver_fuzz::{ByteRange, assert_round_trip};
use quiver_storage::format::snapshot::{SnapshotHeader, TableImage, check_block, entries};

/// Documented as zero, not checked on decode.
const UNCHECKED: &[ByteRange] = &[(52, 60)];

fuzz_target!(|data: &[u8]| {
    let Ok(h) = SnapshotHeader::decode_from(data) else { return };
    assert_eq!(data.len() as u64, h.file_len());
    let mut head = [0u8; SnapshotHeader::ENCODED_LEN];
    h.encode_into(&mut head);
    assert_eq!(SnapshotHeader::decode_from(data).map(|d| d == h), Ok(true));
    assert_round_trip(&head, &data[..SnapshotHeader::ENCODED_LEN], UNCHECKED, (60, 64));
    if !(0..h.block_count()).all(|b| check_block(&h, data, b).is_ok()) {
        return;
    }
    let mut listed: Vec<(u64, u64)> = entries(&h, data).collect();
    assert!(listed.iter().all(|&(_, slot)| slot < h.end_slot));
    listed.sort_unstable();
    // A file may list an id twice (the writer never does; the fuzzer can):
    // one entry per id is written again.
    listed.dedup_by_key(|e| e.0);
    let table = TableImage::from_entries(&listed).expect("distinct ids");
    let again = table.encode_file(h.generation, h.lsn, h.end_slot);
    let h2 = SnapshotHeader::decode_from(&again).expect("a written table decodes");
    for b in 0..h2.block_count() {
        check_block(&h2, &again, b).expect("every written block checks");
    }
    let mut relisted: Vec<(u64, u64)> = entries(&h2, &again).collect();
    relisted.sort_unstable();
    assert_eq!(relisted, listed);
});
