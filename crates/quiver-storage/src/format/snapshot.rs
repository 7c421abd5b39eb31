//! The index snapshot (a Bitcask-style hint file): the live id -> slot map at
//! a checkpoint. It only accelerates open; the data file and the WAL alone
//! can rebuild the same index.

use super::{DecodeError, FORMAT_VERSION, crc32, le};

/// Magic of a snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"QUIVERSN";
/// Bytes per snapshot entry: id u64, slot u64.
pub const SNAPSHOT_ENTRY_BYTES: usize = 16;
/// Largest number of entries a snapshot may claim (bounded so a corrupt
/// count can never drive an allocation).
pub const MAX_SNAPSHOT_ENTRIES: u64 = 1 << 40;

/// The decoded snapshot header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// The generation whose data file the slots point into.
    pub generation: u32,
    /// The LSN the snapshot covers.
    pub lsn: u64,
    /// Every slot in the snapshot is below this.
    pub end_slot: u64,
    /// Number of entries following the header.
    pub entry_count: u64,
    /// CRC-32 of all entry bytes.
    pub entries_crc: u32,
}

impl SnapshotHeader {
    /// Encoded size in bytes.
    pub const ENCODED_LEN: usize = 64;

    // Layout (FORMAT.md, "Snapshot"):
    //   0 magic[8] | 8 version u32 | 12 generation u32 | 16 lsn u64
    //  24 end slot u64 | 32 entry count u64 | 40 entries crc32 u32
    //  44..60 zero | 60 crc32 of bytes 0..60
    /// Writes the header into `buf`.
    pub fn encode_into(&self, buf: &mut [u8; Self::ENCODED_LEN]) {
        buf.fill(0);
        buf[..8].copy_from_slice(&SNAPSHOT_MAGIC);
        le::put_u32(buf, 8, FORMAT_VERSION);
        le::put_u32(buf, 12, self.generation);
        le::put_u64(buf, 16, self.lsn);
        le::put_u64(buf, 24, self.end_slot);
        le::put_u64(buf, 32, self.entry_count);
        le::put_u32(buf, 40, self.entries_crc);
        let crc = crc32(0, &buf[..60]);
        le::put_u32(buf, 60, crc);
    }

    /// Decodes the header of a whole snapshot file `bytes` and verifies that
    /// the entries that follow have the claimed length and checksum.
    pub fn decode_from(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() < Self::ENCODED_LEN {
            return Err(DecodeError::new(0, format!("the snapshot is {} bytes; at least 64 needed", bytes.len())));
        }
        if bytes[..8] != SNAPSHOT_MAGIC {
            return Err(DecodeError::new(0, "the snapshot magic is wrong"));
        }
        if crc32(0, &bytes[..60]) != le::u32_at(bytes, 60) {
            return Err(DecodeError::new(60, "the snapshot header checksum does not match"));
        }
        let version = le::u32_at(bytes, 8);
        if version != FORMAT_VERSION {
            return Err(DecodeError::new(8, format!("snapshot version {version} is not {FORMAT_VERSION}")));
        }
        let h = Self {
            generation: le::u32_at(bytes, 12),
            lsn: le::u64_at(bytes, 16),
            end_slot: le::u64_at(bytes, 24),
            entry_count: le::u64_at(bytes, 32),
            entries_crc: le::u32_at(bytes, 40),
        };
        if h.entry_count > MAX_SNAPSHOT_ENTRIES {
            return Err(DecodeError::new(32, format!("entry count {} exceeds the limit", h.entry_count)));
        }
        let body = &bytes[Self::ENCODED_LEN..];
        let expected = h.entry_count * SNAPSHOT_ENTRY_BYTES as u64;
        if body.len() as u64 != expected {
            return Err(DecodeError::new(
                Self::ENCODED_LEN as u64,
                format!("the snapshot holds {} entry bytes; its header promises {expected}", body.len()),
            ));
        }
        if crc32(0, body) != h.entries_crc {
            return Err(DecodeError::new(Self::ENCODED_LEN as u64, "the snapshot entries checksum does not match"));
        }
        Ok(h)
    }
}

/// Encodes one entry.
pub fn encode_entry(id: u64, slot: u64) -> [u8; SNAPSHOT_ENTRY_BYTES] {
    let mut e = [0u8; SNAPSHOT_ENTRY_BYTES];
    le::put_u64(&mut e, 0, id);
    le::put_u64(&mut e, 8, slot);
    e
}

/// Iterates the `(id, slot)` entries of a snapshot whose header has been
/// decoded by [`SnapshotHeader::decode_from`].
pub fn entries(bytes: &[u8]) -> impl ExactSizeIterator<Item = (u64, u64)> + '_ {
    bytes[SnapshotHeader::ENCODED_LEN..]
        .chunks_exact(SNAPSHOT_ENTRY_BYTES)
        .map(|e| (le::u64_at(e, 0), le::u64_at(e, 8)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(pairs: &[(u64, u64)]) -> Vec<u8> {
        let body: Vec<u8> = pairs.iter().flat_map(|&(i, s)| encode_entry(i, s)).collect();
        let h = SnapshotHeader {
            generation: 1,
            lsn: 9,
            end_slot: 100,
            entry_count: pairs.len() as u64,
            entries_crc: crc32(0, &body),
        };
        let mut head = [0u8; 64];
        h.encode_into(&mut head);
        [head.to_vec(), body].concat()
    }

    // Proves a snapshot round-trips and every bit flip, truncation or
    // extension is rejected.
    #[test]
    fn round_trip_and_damage() {
        let bytes = snapshot(&[(1, 0), (u64::MAX, 7)]);
        let h = SnapshotHeader::decode_from(&bytes).expect("valid");
        assert_eq!(h.entry_count, 2);
        assert_eq!(entries(&bytes).collect::<Vec<_>>(), vec![(1, 0), (u64::MAX, 7)]);
        for bit in 0..bytes.len() * 8 {
            let mut d = bytes.clone();
            d[bit / 8] ^= 1 << (bit % 8);
            assert!(SnapshotHeader::decode_from(&d).is_err(), "bit {bit} accepted");
        }
        for len in 0..bytes.len() {
            assert!(SnapshotHeader::decode_from(&bytes[..len]).is_err(), "length {len} accepted");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(SnapshotHeader::decode_from(&longer).is_err());
    }
}
