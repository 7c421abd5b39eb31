//! Byte layouts of every file Quiver writes, as pure codecs.
//!
//! Each codec turns a fixed-width little-endian byte layout into a typed value
//! and back (`encode_into` / `decode_from`), and checks its checksum and its
//! lengths before trusting anything. Nothing here touches a file. The layouts
//! themselves are described once, in `docs/FORMAT.md`; the constants below are
//! the ones that document names, and `tests/it/format_doc.rs` checks that the
//! two agree.

pub mod header;
pub mod manifest;
pub mod record;
pub mod snapshot;
pub mod wal_frame;

/// The on-disk format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Name of the format header file in a store directory.
pub const HEADER_FILE: &str = "QUIVER";
/// Name of the manifest, the single commit point of checkpoints.
pub const MANIFEST_FILE: &str = "MANIFEST";
/// Name of the writer's lock file.
pub const LOCK_FILE: &str = "LOCK";
/// Name of the directory that holds write-ahead-log segments.
pub const WAL_DIR: &str = "wal";
/// Suffix of a file being written before it is renamed into place.
pub const TEMP_SUFFIX: &str = ".tmp";

/// Largest dimension a store accepts.
pub const MAX_DIMENSION: u32 = 65_536;
/// Bytes before the first record of a data file (one page, holding the data
/// file header), so that every record payload is 64-byte aligned.
pub const DATA_HEADER_BYTES: u64 = 4096;
/// Bytes of the header in front of every record's payload.
pub const RECORD_HEADER_BYTES: u32 = 64;
/// Alignment of every record and every payload, in bytes.
pub const RECORD_ALIGN_BYTES: u32 = quiver_guard::PAYLOAD_ALIGN_BYTES as u32;
/// Largest data file Quiver will create (16 TiB).
pub const MAX_DATA_FILE_BYTES: u64 = 16 << 40;

const _: () = assert!(DATA_HEADER_BYTES.is_multiple_of(RECORD_ALIGN_BYTES as u64));
const _: () = assert!(RECORD_HEADER_BYTES.is_multiple_of(RECORD_ALIGN_BYTES));

/// The size of one record for `dimension` elements of `element_size_bytes`:
/// the header plus the payload rounded up to [`RECORD_ALIGN_BYTES`].
pub const fn record_size_bytes(dimension: u32, element_size_bytes: u32) -> u32 {
    let payload = dimension * element_size_bytes;
    let padded = payload.div_ceil(RECORD_ALIGN_BYTES) * RECORD_ALIGN_BYTES;
    RECORD_HEADER_BYTES + padded
}

const _: () = assert!(record_size_bytes(MAX_DIMENSION, 8) < u32::MAX / 2);

/// Data file name for a generation.
pub fn data_file_name(generation: u32) -> String {
    format!("data-{generation:08}.qvd")
}

/// Snapshot file name for a generation and the LSN it covers.
pub fn snapshot_file_name(generation: u32, lsn: u64) -> String {
    format!("snapshot-{generation:08}-{lsn:020}.qvs")
}

/// WAL segment file name for a segment number.
pub fn wal_segment_name(segment: u64) -> String {
    format!("{segment:020}.qwal")
}

/// Parses a WAL segment file name back to its number.
pub fn parse_wal_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".qwal")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Little-endian field access on byte buffers, with the offsets spelled out
/// by the callers so each layout reads like its table in FORMAT.md.
pub(crate) mod le {
    pub(crate) fn put_u32(buf: &mut [u8], at: usize, v: u32) {
        buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn put_u64(buf: &mut [u8], at: usize, v: u64) {
        buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u32_at(buf: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(buf[at..at + 4].try_into().expect("4-byte field"))
    }
    pub(crate) fn u64_at(buf: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(buf[at..at + 8].try_into().expect("8-byte field"))
    }
}

/// CRC-32 (IEEE) of `bytes`, continuing from `seed`.
pub fn crc32(seed: u32, bytes: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(seed);
    h.update(bytes);
    h.finalize()
}

/// Why a codec rejected its input: a byte offset within the input and a
/// sentence. Callers turn it into [`crate::Error::Corrupted`] with the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Offset within the decoded buffer where the problem was found.
    pub offset: u64,
    /// What was wrong.
    pub reason: String,
}

impl DecodeError {
    pub(crate) fn new(offset: u64, reason: impl Into<String>) -> Self {
        Self { offset, reason: reason.into() }
    }

    /// Converts to the public error, naming the file and shifting the offset
    /// by where the buffer started in it.
    pub fn into_error(self, path: &std::path::Path, base_offset: u64) -> crate::Error {
        crate::Error::Corrupted {
            path: path.to_path_buf(),
            offset: base_offset.saturating_add(self.offset),
            reason: self.reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves record sizes keep payloads aligned for every element type.
    #[test]
    fn record_sizes_are_aligned() {
        for dim in [1, 3, 16, 100, 768, 1536, MAX_DIMENSION] {
            for size in [1, 2, 4, 8] {
                let r = record_size_bytes(dim, size);
                assert_eq!(r % RECORD_ALIGN_BYTES, 0);
                assert!(r >= RECORD_HEADER_BYTES + dim * size);
                assert!(r < RECORD_HEADER_BYTES + dim * size + RECORD_ALIGN_BYTES);
            }
        }
        assert_eq!(record_size_bytes(768, 4), 3136);
    }

    // Proves segment names round-trip and reject look-alikes.
    #[test]
    fn wal_segment_names_round_trip() {
        assert_eq!(parse_wal_segment_name(&wal_segment_name(7)), Some(7));
        assert_eq!(parse_wal_segment_name("7.qwal"), None);
        assert_eq!(parse_wal_segment_name("0000000000000000000x.qwal"), None);
        assert_eq!(parse_wal_segment_name(&format!("{}.tmp", wal_segment_name(3))), None);
    }
}
