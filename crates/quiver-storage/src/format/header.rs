//! The store's format header (file `QUIVER`) and the data file header (the
//! first bytes of every `data-*.qvd`). Both are 64 bytes ending in a CRC.

use super::manifest::MAX_LSN;
use super::{DecodeError, FORMAT_VERSION, MAX_DIMENSION, RECORD_HEADER_BYTES, crc32, le, record_size_bytes};
use crate::element::ElementType;

/// Magic of the format header file.
pub const STORE_MAGIC: [u8; 8] = *b"QUIVERST";
/// Magic of a data file header.
pub const DATA_MAGIC: [u8; 8] = *b"QUIVERDT";

/// What every file of a store agrees on: the shape of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreShape {
    /// Elements per vector.
    pub dimension: u32,
    /// The element type.
    pub element: ElementType,
}

impl StoreShape {
    /// Bytes of one record.
    pub fn record_size_bytes(&self) -> u32 {
        record_size_bytes(self.dimension, self.element.size_bytes())
    }

    /// Bytes of one payload (unpadded).
    pub fn payload_bytes(&self) -> u32 {
        self.dimension * self.element.size_bytes()
    }
}

/// The format header: magic, version, dimension, element type, record size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FormatHeader {
    /// The store's shape.
    pub shape: StoreShape,
}

impl FormatHeader {
    /// Encoded size in bytes.
    pub const ENCODED_LEN: usize = 64;

    /// Writes the header into `buf`.
    pub fn encode_into(&self, buf: &mut [u8; Self::ENCODED_LEN]) {
        encode_shape(buf, &STORE_MAGIC, 0, 0, &self.shape);
    }

    /// Reads a header, checking magic, CRC, version and every field.
    pub fn decode_from(buf: &[u8]) -> Result<Self, HeaderError> {
        let (shape, _) = decode_shape(buf, &STORE_MAGIC)?;
        Ok(Self { shape })
    }
}

/// The data file header, in the first page of a data file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataFileHeader {
    /// The store's shape; must equal the format header's.
    pub shape: StoreShape,
    /// The generation this file belongs to.
    pub generation: u32,
    /// Every change committed with an LSN above this one is a record in
    /// this file: 0 for the first generation, which holds the store's whole
    /// history; for a compacted one, the LSN its live copy was taken at
    /// (the records of batches up to it that were overwritten or deleted
    /// were not copied). The change feed starts no earlier.
    pub changes_after_lsn: u64,
}

impl DataFileHeader {
    /// Encoded size in bytes (the rest of the first page is zero).
    pub const ENCODED_LEN: usize = 64;

    /// Writes the header into `buf`.
    pub fn encode_into(&self, buf: &mut [u8; Self::ENCODED_LEN]) {
        encode_shape(buf, &DATA_MAGIC, self.generation, self.changes_after_lsn, &self.shape);
    }

    /// Reads a header, checking magic, CRC, version and every field.
    pub fn decode_from(buf: &[u8]) -> Result<Self, HeaderError> {
        let (shape, generation) = decode_shape(buf, &DATA_MAGIC)?;
        let changes_after_lsn = le::u64_at(buf, 36);
        if changes_after_lsn > MAX_LSN {
            return Err(HeaderError::Corrupt(DecodeError::new(
                36,
                format!("the change feed's first LSN {changes_after_lsn} is beyond the largest LSN {MAX_LSN}"),
            )));
        }
        Ok(Self { shape, generation, changes_after_lsn })
    }
}

/// Why a header was rejected. `Version` is kept apart so `open` can say
/// "unsupported version" rather than "corrupted".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Not this kind of file at all.
    BadMagic,
    /// A checksum or field check failed.
    Corrupt(DecodeError),
    /// A valid header of another format version.
    Version(u32),
}

// Layout (FORMAT.md, "Format header"):
//   0 magic[8] | 8 version u32 | 12 generation u32 | 16 dimension u32
//  20 element code u32 | 24 element size u32 | 28 record size u32
//  32 record header bytes u32 | 36 changes after LSN u64 (data file; zero in
//  QUIVER) | 44..60 zero | 60 crc32 of bytes 0..60
fn encode_shape(buf: &mut [u8; 64], magic: &[u8; 8], generation: u32, changes_after_lsn: u64, shape: &StoreShape) {
    buf.fill(0);
    buf[0..8].copy_from_slice(magic);
    le::put_u32(buf, 8, FORMAT_VERSION);
    le::put_u32(buf, 12, generation);
    le::put_u32(buf, 16, shape.dimension);
    le::put_u32(buf, 20, shape.element.code());
    le::put_u32(buf, 24, shape.element.size_bytes());
    le::put_u32(buf, 28, shape.record_size_bytes());
    le::put_u32(buf, 32, RECORD_HEADER_BYTES);
    le::put_u64(buf, 36, changes_after_lsn);
    let crc = crc32(0, &buf[..60]);
    le::put_u32(buf, 60, crc);
}

fn decode_shape(buf: &[u8], magic: &[u8; 8]) -> Result<(StoreShape, u32), HeaderError> {
    if buf.len() < 64 {
        if buf.len() >= 8 && &buf[..8] != magic {
            return Err(HeaderError::BadMagic);
        }
        return Err(HeaderError::Corrupt(DecodeError::new(
            buf.len() as u64,
            format!("the header is {} bytes long; 64 are needed", buf.len()),
        )));
    }
    if &buf[..8] != magic {
        return Err(HeaderError::BadMagic);
    }
    let crc = le::u32_at(buf, 60);
    if crc32(0, &buf[..60]) != crc {
        return Err(HeaderError::Corrupt(DecodeError::new(60, "the header checksum does not match")));
    }
    let version = le::u32_at(buf, 8);
    if version != FORMAT_VERSION {
        return Err(HeaderError::Version(version));
    }
    let bad = |at: u64, why: String| HeaderError::Corrupt(DecodeError::new(at, why));
    let generation = le::u32_at(buf, 12);
    let dimension = le::u32_at(buf, 16);
    if dimension == 0 || dimension > MAX_DIMENSION {
        return Err(bad(16, format!("dimension {dimension} is outside 1..={MAX_DIMENSION}")));
    }
    let code = le::u32_at(buf, 20);
    let element = ElementType::from_code(code).ok_or_else(|| bad(20, format!("unknown element type code {code}")))?;
    let shape = StoreShape { dimension, element };
    if le::u32_at(buf, 24) != element.size_bytes() {
        return Err(bad(24, "the element size does not match the element type".into()));
    }
    if le::u32_at(buf, 28) != shape.record_size_bytes() {
        return Err(bad(28, "the record size does not match dimension and element type".into()));
    }
    if le::u32_at(buf, 32) != RECORD_HEADER_BYTES {
        return Err(bad(32, "the record header size is not 64".into()));
    }
    Ok((shape, generation))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> StoreShape {
        StoreShape { dimension: 768, element: ElementType::F32 }
    }

    // Proves a header round-trips and that every single-bit flip is caught.
    #[test]
    fn format_header_round_trips_and_detects_every_bit_flip() {
        let mut buf = [0u8; 64];
        FormatHeader { shape: shape() }.encode_into(&mut buf);
        assert_eq!(FormatHeader::decode_from(&buf), Ok(FormatHeader { shape: shape() }));
        for bit in 0..64 * 8 {
            let mut damaged = buf;
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(FormatHeader::decode_from(&damaged).is_err(), "bit {bit} flip accepted");
        }
    }

    // Proves a data file header is not accepted as a format header.
    #[test]
    fn magics_are_not_interchangeable() {
        let mut buf = [0u8; 64];
        DataFileHeader { shape: shape(), generation: 3, changes_after_lsn: 17 }.encode_into(&mut buf);
        assert_eq!(FormatHeader::decode_from(&buf), Err(HeaderError::BadMagic));
        assert_eq!(DataFileHeader::decode_from(&buf).map(|h| (h.generation, h.changes_after_lsn)), Ok((3, 17)));
        assert!(matches!(FormatHeader::decode_from(&buf[..10]), Err(HeaderError::BadMagic)));
        assert!(matches!(FormatHeader::decode_from(&[]), Err(HeaderError::Corrupt(_))));
    }
}
