//! The fixed-size record of a data file: a 64-byte header followed by the
//! payload, padded to a multiple of 64 bytes.

use super::{DecodeError, RECORD_HEADER_BYTES, le};

/// Magic at the start of every record; a zeroed (never written) slot fails it.
pub const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"QREC");

/// What a record says about its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// The payload is the id's vector.
    Put,
    /// The id is deleted; the payload is ignored.
    Tombstone,
}

impl RecordKind {
    /// On-disk code.
    pub const fn code(self) -> u8 {
        match self {
            RecordKind::Put => 1,
            RecordKind::Tombstone => 2,
        }
    }

    /// Kind for an on-disk code.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(RecordKind::Put),
            2 => Some(RecordKind::Tombstone),
            _ => None,
        }
    }
}

/// The decoded header of one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// Put or tombstone.
    pub kind: RecordKind,
    /// The vector id.
    pub id: u64,
    /// The commit sequence number of the batch that wrote it.
    pub lsn: u64,
    /// CRC-32 over header bytes 0..60 and, for puts, the payload.
    pub crc: u32,
}

impl RecordHeader {
    /// Encoded size in bytes.
    pub const ENCODED_LEN: usize = RECORD_HEADER_BYTES as usize;

    /// Builds a header for `payload`, computing its checksum.
    pub fn new(kind: RecordKind, id: u64, lsn: u64, payload: &[u8]) -> Self {
        let mut h = Self { kind, id, lsn, crc: 0 };
        let mut buf = [0u8; Self::ENCODED_LEN];
        h.encode_fields(&mut buf);
        h.crc = checksum(&buf, kind, payload);
        h
    }

    // Layout (FORMAT.md, "Record"):
    //   0 magic u32 | 4 kind u8 | 5..8 zero | 8 id u64 | 16 lsn u64
    //  24..60 zero | 60 crc32 (header 0..60, then payload for puts)
    fn encode_fields(&self, buf: &mut [u8; Self::ENCODED_LEN]) {
        buf.fill(0);
        le::put_u32(buf, 0, RECORD_MAGIC);
        buf[4] = self.kind.code();
        le::put_u64(buf, 8, self.id);
        le::put_u64(buf, 16, self.lsn);
    }

    /// Writes the header, including its checksum, into `buf`.
    pub fn encode_into(&self, buf: &mut [u8; Self::ENCODED_LEN]) {
        self.encode_fields(buf);
        le::put_u32(buf, 60, self.crc);
    }

    /// Decodes a whole record (`header ++ padded payload`) and verifies its
    /// checksum against the first `payload_bytes` of the payload.
    pub fn decode_from(record: &[u8], payload_bytes: usize) -> Result<Self, DecodeError> {
        let need = Self::ENCODED_LEN + payload_bytes;
        if record.len() < need {
            return Err(DecodeError::new(0, format!("the record is {} bytes; {need} needed", record.len())));
        }
        if le::u32_at(record, 0) != RECORD_MAGIC {
            return Err(DecodeError::new(0, "no record magic (an unwritten or overwritten slot)"));
        }
        if record[5..8] != [0, 0, 0] || record[24..60].iter().any(|&b| b != 0) {
            return Err(DecodeError::new(24, "reserved record header bytes are not zero"));
        }
        let kind = RecordKind::from_code(record[4])
            .ok_or_else(|| DecodeError::new(4, format!("unknown record kind {}", record[4])))?;
        let header: &[u8; Self::ENCODED_LEN] = record[..Self::ENCODED_LEN].try_into().expect("64 bytes");
        let stored = le::u32_at(record, 60);
        let payload = &record[Self::ENCODED_LEN..need];
        if checksum(header, kind, payload) != stored {
            return Err(DecodeError::new(60, "the record checksum does not match"));
        }
        Ok(Self { kind, id: le::u64_at(record, 8), lsn: le::u64_at(record, 16), crc: stored })
    }
}

fn checksum(header: &[u8; RecordHeader::ENCODED_LEN], kind: RecordKind, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header[..60]);
    if kind == RecordKind::Put {
        h.update(payload);
    }
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: RecordKind, payload: &[u8], padded: usize) -> Vec<u8> {
        let h = RecordHeader::new(kind, 42, 7, payload);
        let mut buf = vec![0u8; 64 + padded];
        let mut head = [0u8; 64];
        h.encode_into(&mut head);
        buf[..64].copy_from_slice(&head);
        buf[64..64 + payload.len()].copy_from_slice(payload);
        buf
    }

    // Proves a put round-trips and a flip anywhere in header or payload fails.
    #[test]
    fn put_detects_every_bit_flip() {
        let payload: Vec<u8> = (0..12).collect();
        let buf = record(RecordKind::Put, &payload, 64);
        let h = RecordHeader::decode_from(&buf, 12).expect("valid");
        assert_eq!((h.kind, h.id, h.lsn), (RecordKind::Put, 42, 7));
        for bit in 0..(64 + 12) * 8 {
            let mut d = buf.clone();
            d[bit / 8] ^= 1 << (bit % 8);
            assert!(RecordHeader::decode_from(&d, 12).is_err(), "bit {bit} accepted");
        }
    }

    // Proves a zeroed slot and a short buffer are rejected, and a tombstone
    // ignores its payload bytes.
    #[test]
    fn zeroed_short_and_tombstone() {
        assert!(RecordHeader::decode_from(&[0u8; 128], 12).is_err());
        assert!(RecordHeader::decode_from(&[0u8; 10], 12).is_err());
        let mut t = record(RecordKind::Tombstone, &[], 64);
        t[70] = 0xAA;
        assert_eq!(RecordHeader::decode_from(&t, 12).map(|h| h.kind), Ok(RecordKind::Tombstone));
    }
}
