//! The manifest: which generation is current and what the last checkpoint
//! covers. Replaced only by write-temp, fsync, rename, fsync-directory, so it
//! is always either the old or the new one.

use super::{DecodeError, FORMAT_VERSION, crc32, le};

/// Magic of the manifest.
pub const MANIFEST_MAGIC: [u8; 8] = *b"QUIVERMF";

/// Largest LSN a store may reach (2^62): far beyond any real history, and
/// far enough from `u64::MAX` that no counter derived from one can overflow.
pub const MAX_LSN: u64 = 1 << 62;
/// Largest WAL segment number (2^62), for the same reason.
pub const MAX_SEGMENT: u64 = 1 << 62;

/// The decoded manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The current generation (names the data file).
    pub generation: u32,
    /// Every batch with an LSN up to this one is in the data file, durable,
    /// below `checkpoint_end_slot`.
    pub checkpoint_lsn: u64,
    /// Records below this slot were durable when the checkpoint was taken.
    pub checkpoint_end_slot: u64,
    /// Whether a snapshot `snapshot-<generation>-<checkpoint_lsn>.qvs` was
    /// written for this checkpoint.
    pub has_snapshot: bool,
    /// The first WAL segment that may hold batches after `checkpoint_lsn`.
    pub wal_segment: u64,
}

impl Manifest {
    /// Encoded size in bytes.
    pub const ENCODED_LEN: usize = 64;

    // Layout (FORMAT.md, "Manifest"):
    //   0 magic[8] | 8 version u32 | 12 generation u32 | 16 checkpoint lsn u64
    //  24 checkpoint end slot u64 | 32 flags u32 (bit 0: snapshot) | 36 zero
    //  40 wal segment u64 | 48..60 zero | 60 crc32 of bytes 0..60
    /// Writes the manifest into `buf`.
    pub fn encode_into(&self, buf: &mut [u8; Self::ENCODED_LEN]) {
        buf.fill(0);
        buf[..8].copy_from_slice(&MANIFEST_MAGIC);
        le::put_u32(buf, 8, FORMAT_VERSION);
        le::put_u32(buf, 12, self.generation);
        le::put_u64(buf, 16, self.checkpoint_lsn);
        le::put_u64(buf, 24, self.checkpoint_end_slot);
        le::put_u32(buf, 32, u32::from(self.has_snapshot));
        le::put_u64(buf, 40, self.wal_segment);
        let crc = crc32(0, &buf[..60]);
        le::put_u32(buf, 60, crc);
    }

    /// Reads a manifest, checking length, magic, CRC and version.
    pub fn decode_from(buf: &[u8]) -> Result<Self, DecodeError> {
        if buf.len() != Self::ENCODED_LEN {
            return Err(DecodeError::new(0, format!("the manifest is {} bytes; 64 expected", buf.len())));
        }
        if buf[..8] != MANIFEST_MAGIC {
            return Err(DecodeError::new(0, "the manifest magic is wrong"));
        }
        if crc32(0, &buf[..60]) != le::u32_at(buf, 60) {
            return Err(DecodeError::new(60, "the manifest checksum does not match"));
        }
        let version = le::u32_at(buf, 8);
        if version != FORMAT_VERSION {
            return Err(DecodeError::new(8, format!("manifest version {version} is not {FORMAT_VERSION}")));
        }
        let flags = le::u32_at(buf, 32);
        if flags > 1 {
            return Err(DecodeError::new(32, format!("unknown manifest flags {flags:#x}")));
        }
        let generation = le::u32_at(buf, 12);
        if generation == 0 {
            return Err(DecodeError::new(12, "generation 0 does not exist"));
        }
        if le::u64_at(buf, 16) > MAX_LSN {
            return Err(DecodeError::new(16, "the checkpoint LSN is out of range"));
        }
        let segment = le::u64_at(buf, 40);
        if segment == 0 || segment > MAX_SEGMENT {
            return Err(DecodeError::new(40, format!("WAL segment {segment} is out of range")));
        }
        Ok(Self {
            generation,
            checkpoint_lsn: le::u64_at(buf, 16),
            checkpoint_end_slot: le::u64_at(buf, 24),
            has_snapshot: flags == 1,
            wal_segment: le::u64_at(buf, 40),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the manifest round-trips and every bit flip is caught.
    #[test]
    fn round_trip_and_bit_flips() {
        let m = Manifest {
            generation: 2,
            checkpoint_lsn: 99,
            checkpoint_end_slot: 1234,
            has_snapshot: true,
            wal_segment: 5,
        };
        let mut buf = [0u8; 64];
        m.encode_into(&mut buf);
        assert_eq!(Manifest::decode_from(&buf), Ok(m));
        for bit in 0..512 {
            let mut d = buf;
            d[bit / 8] ^= 1 << (bit % 8);
            assert!(Manifest::decode_from(&d).is_err(), "bit {bit} accepted");
        }
        assert!(Manifest::decode_from(&buf[..63]).is_err());
    }
}
