//! The index snapshot: the live id -> slot map at a checkpoint, laid out as
//! an open-addressing hash table that is mapped and probed in place, so
//! `open` reads a header and a small checksum table instead of loading every
//! entry. It only accelerates open; the data file and the WAL alone can
//! rebuild the same index.
//!
//! Layout (docs/FORMAT.md, "Snapshot"): a 64-byte header, one CRC-32 per
//! block of [`BLOCK_BUCKETS`] buckets, zero padding to a page boundary, then
//! `bucket_count` buckets of 16 bytes. A bucket holds `(id, slot)`; an empty
//! one holds `(0, EMPTY_SLOT)`. An id lives in the first bucket, from its
//! home bucket ([`home_bucket`]) on and wrapping at the end, that holds it
//! or is empty (linear probing). Each block is checked the first time a
//! reader touches it ([`check_block`]); the header and the checksum table
//! are checked when the file is opened ([`SnapshotHeader::decode_from`]).

use super::{DecodeError, FORMAT_VERSION, crc32, le};

/// Magic of a snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"QUIVERHT";
/// Bytes per bucket: id u64, slot u64.
pub const SNAPSHOT_ENTRY_BYTES: usize = 16;
/// Buckets per checksummed block (one 4 KiB page of buckets).
pub const BLOCK_BUCKETS: usize = 256;
/// Bytes per block.
pub const BLOCK_BYTES: usize = BLOCK_BUCKETS * SNAPSHOT_ENTRY_BYTES;
/// The slot of an empty bucket (no record can have it: slots are bounded by
/// the largest data file).
pub const EMPTY_SLOT: u64 = u64::MAX;
/// Largest number of entries a snapshot may claim.
pub const MAX_SNAPSHOT_ENTRIES: u64 = 1 << 40;
/// A table holds at most `bucket_count * MAX_LOAD_NUM / MAX_LOAD_DEN`
/// entries (3/4), so every probe meets an empty bucket soon.
pub const MAX_LOAD_NUM: u64 = 3;
/// See [`MAX_LOAD_NUM`].
pub const MAX_LOAD_DEN: u64 = 4;

/// The decoded snapshot header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// The generation whose data file the slots point into.
    pub generation: u32,
    /// The LSN the snapshot covers.
    pub lsn: u64,
    /// Every slot in the snapshot is below this.
    pub end_slot: u64,
    /// Number of non-empty buckets.
    pub entry_count: u64,
    /// Number of buckets, a multiple of [`BLOCK_BUCKETS`].
    pub bucket_count: u64,
    /// CRC-32 of the block checksum table.
    pub block_crcs_crc: u32,
}

impl SnapshotHeader {
    /// Encoded size in bytes.
    pub const ENCODED_LEN: usize = 64;

    // Layout (FORMAT.md, "Snapshot"):
    //   0 magic[8] | 8 version u32 | 12 generation u32 | 16 lsn u64
    //  24 end slot u64 | 32 entry count u64 | 40 bucket count u64
    //  48 block crcs crc32 u32 | 52..60 zero | 60 crc32 of bytes 0..60
    /// Writes the header into `buf`.
    pub fn encode_into(&self, buf: &mut [u8; Self::ENCODED_LEN]) {
        buf.fill(0);
        buf[..8].copy_from_slice(&SNAPSHOT_MAGIC);
        le::put_u32(buf, 8, FORMAT_VERSION);
        le::put_u32(buf, 12, self.generation);
        le::put_u64(buf, 16, self.lsn);
        le::put_u64(buf, 24, self.end_slot);
        le::put_u64(buf, 32, self.entry_count);
        le::put_u64(buf, 40, self.bucket_count);
        le::put_u32(buf, 48, self.block_crcs_crc);
        let crc = crc32(0, &buf[..60]);
        le::put_u32(buf, 60, crc);
    }

    /// Number of blocks.
    pub fn block_count(&self) -> u64 {
        self.bucket_count / BLOCK_BUCKETS as u64
    }

    /// Where the first bucket starts: after the header and the checksum
    /// table, rounded up to a 4 KiB page.
    pub fn table_offset(&self) -> u64 {
        (Self::ENCODED_LEN as u64 + 4 * self.block_count()).next_multiple_of(BLOCK_BYTES as u64)
    }

    /// The length of the whole file.
    pub fn file_len(&self) -> u64 {
        self.table_offset() + self.bucket_count * SNAPSHOT_ENTRY_BYTES as u64
    }

    /// Decodes the header of a whole snapshot file `bytes` and checks its
    /// length and its block checksum table. The buckets are not read: each
    /// block is checked by [`check_block`] when it is first used.
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
            bucket_count: le::u64_at(bytes, 40),
            block_crcs_crc: le::u32_at(bytes, 48),
        };
        if h.entry_count > MAX_SNAPSHOT_ENTRIES {
            return Err(DecodeError::new(32, format!("entry count {} exceeds the limit", h.entry_count)));
        }
        if !h.bucket_count.is_multiple_of(BLOCK_BUCKETS as u64) || h.bucket_count > max_buckets() {
            return Err(DecodeError::new(
                40,
                format!("bucket count {} is not a multiple of {BLOCK_BUCKETS} within the limit", h.bucket_count),
            ));
        }
        if h.entry_count > h.bucket_count / MAX_LOAD_DEN * MAX_LOAD_NUM {
            return Err(DecodeError::new(
                32,
                format!("{} entries overfill {} buckets (at most 3/4 full)", h.entry_count, h.bucket_count),
            ));
        }
        if bytes.len() as u64 != h.file_len() {
            return Err(DecodeError::new(
                Self::ENCODED_LEN as u64,
                format!("the snapshot is {} bytes; its header promises {}", bytes.len(), h.file_len()),
            ));
        }
        let crcs = &bytes[Self::ENCODED_LEN..Self::ENCODED_LEN + 4 * h.block_count() as usize];
        if crc32(0, crcs) != h.block_crcs_crc {
            return Err(DecodeError::new(
                Self::ENCODED_LEN as u64,
                "the snapshot's block checksum table does not match",
            ));
        }
        let padding = &bytes[Self::ENCODED_LEN + crcs.len()..h.table_offset() as usize];
        if let Some(at) = padding.iter().position(|&b| b != 0) {
            return Err(DecodeError::new(
                (Self::ENCODED_LEN + crcs.len() + at) as u64,
                "the padding before the buckets is not zero",
            ));
        }
        Ok(h)
    }
}

/// The most buckets a table of [`MAX_SNAPSHOT_ENTRIES`] needs.
const fn max_buckets() -> u64 {
    bucket_count_for(MAX_SNAPSHOT_ENTRIES)
}

/// The buckets a table of `entries` gets: the fewest whole blocks that keep
/// it at most 3/4 full (none for no entries).
pub const fn bucket_count_for(entries: u64) -> u64 {
    let buckets = entries.div_ceil(MAX_LOAD_NUM) * MAX_LOAD_DEN;
    buckets.div_ceil(BLOCK_BUCKETS as u64) * BLOCK_BUCKETS as u64
}

/// Whether `entries` fit in `bucket_count` buckets at the load limit.
pub const fn fits(entries: u64, bucket_count: u64) -> bool {
    entries <= bucket_count / MAX_LOAD_DEN * MAX_LOAD_NUM
}

/// The bucket where the probe for `id` starts, in a table of `bucket_count`
/// (> 0) buckets: the id mixed to 64 well-spread bits, then scaled to the
/// table by a multiply (no power-of-two size needed).
#[inline]
pub fn home_bucket(id: u64, bucket_count: u64) -> u64 {
    let mut x = id;
    x ^= x >> 32;
    x = x.wrapping_mul(0xd6e8_feb8_6659_fd93);
    x ^= x >> 32;
    x = x.wrapping_mul(0xd6e8_feb8_6659_fd93);
    x ^= x >> 32;
    ((u128::from(x) * u128::from(bucket_count)) >> 64) as u64
}

/// The checksum of block `block`'s bytes: CRC-32 seeded with the block's
/// number, so a block copied to another place does not check.
pub fn block_crc(block: u64, bytes: &[u8]) -> u32 {
    crc32(block as u32, bytes)
}

/// The bucket at `index` of the bucket area `table` (the file's bytes from
/// [`SnapshotHeader::table_offset`]).
#[inline]
pub fn bucket_at(table: &[u8], index: u64) -> (u64, u64) {
    let at = index as usize * SNAPSHOT_ENTRY_BYTES;
    (le::u64_at(table, at), le::u64_at(table, at + 8))
}

/// Checks block `block` of a decoded snapshot `bytes` (the whole file):
/// its checksum, and that every bucket is empty as written (`(0,
/// EMPTY_SLOT)`) or holds a slot below the header's end.
pub fn check_block(h: &SnapshotHeader, bytes: &[u8], block: u64) -> Result<(), DecodeError> {
    let start = h.table_offset() as usize + block as usize * BLOCK_BYTES;
    let body = &bytes[start..start + BLOCK_BYTES];
    let expected = le::u32_at(bytes, SnapshotHeader::ENCODED_LEN + 4 * block as usize);
    if block_crc(block, body) != expected {
        return Err(DecodeError::new(start as u64, format!("block {block} of the snapshot fails its checksum")));
    }
    for (i, bucket) in body.chunks_exact(SNAPSHOT_ENTRY_BYTES).enumerate() {
        let (id, slot) = (le::u64_at(bucket, 0), le::u64_at(bucket, 8));
        let at = (start + i * SNAPSHOT_ENTRY_BYTES) as u64;
        if slot == EMPTY_SLOT && id != 0 {
            return Err(DecodeError::new(at, "an empty bucket holds an id"));
        }
        if slot != EMPTY_SLOT && slot >= h.end_slot {
            return Err(DecodeError::new(at, format!("id {id} maps to slot {slot}, past the end {}", h.end_slot)));
        }
    }
    Ok(())
}

/// A snapshot's hash table in memory, as it is written: what checkpoints
/// build and a staged snapshot edits in place before it rewrites only the
/// blocks that changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableImage {
    buckets: Vec<(u64, u64)>,
    len: u64,
    /// Blocks written since the last [`TableImage::take_dirty`].
    dirty: Vec<bool>,
}

impl TableImage {
    /// An empty table of `bucket_count` buckets (a multiple of
    /// [`BLOCK_BUCKETS`]).
    pub fn with_buckets(bucket_count: u64) -> Self {
        assert!(bucket_count.is_multiple_of(BLOCK_BUCKETS as u64), "whole blocks");
        let blocks = bucket_count as usize / BLOCK_BUCKETS;
        Self { buckets: vec![(0, EMPTY_SLOT); bucket_count as usize], len: 0, dirty: vec![true; blocks] }
    }

    /// A table holding `entries` (distinct ids), sized for them. Returns the
    /// first id listed twice as an error.
    pub fn from_entries(entries: &[(u64, u64)]) -> Result<Self, u64> {
        let mut table = Self::with_buckets(bucket_count_for(entries.len() as u64));
        for &(id, slot) in entries {
            if table.insert(id, slot).is_some() {
                return Err(id);
            }
        }
        Ok(table)
    }

    /// Number of entries.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the table is empty.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of buckets.
    pub fn bucket_count(&self) -> u64 {
        self.buckets.len() as u64
    }

    fn mark(&mut self, bucket: usize) {
        self.dirty[bucket / BLOCK_BUCKETS] = true;
    }

    fn find(&self, id: u64) -> Result<usize, usize> {
        let n = self.buckets.len();
        let mut i = home_bucket(id, n as u64) as usize;
        loop {
            match self.buckets[i] {
                (_, EMPTY_SLOT) => return Err(i),
                (held, _) if held == id => return Ok(i),
                _ => i = if i + 1 == n { 0 } else { i + 1 },
            }
        }
    }

    /// The slot of `id`.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub fn get(&self, id: u64) -> Option<u64> {
        if self.buckets.is_empty() {
            return None;
        }
        self.find(id).ok().map(|i| self.buckets[i].1)
    }

    /// Stores `id -> slot` (`slot` < [`EMPTY_SLOT`]), returning the slot it
    /// replaced. Panics if the table would pass its load limit: callers
    /// size it first ([`TableImage::fits`]).
    pub fn insert(&mut self, id: u64, slot: u64) -> Option<u64> {
        assert!(slot != EMPTY_SLOT, "the empty marker is not a slot");
        assert!(!self.buckets.is_empty(), "the table is full; size it first");
        match self.find(id) {
            Ok(i) => {
                self.mark(i);
                Some(std::mem::replace(&mut self.buckets[i].1, slot))
            }
            Err(i) => {
                assert!(fits(self.len + 1, self.bucket_count()), "the table is full; size it first");
                self.buckets[i] = (id, slot);
                self.len += 1;
                self.mark(i);
                None
            }
        }
    }

    /// Whether `more` entries can be inserted without passing the limit.
    pub fn fits(&self, more: u64) -> bool {
        fits(self.len.saturating_add(more), self.bucket_count())
    }

    /// Removes `id`, returning its slot, and moves the entries after it back
    /// so that every probe still finds what it looks for (backward-shift
    /// deletion: no tombstones).
    pub fn remove(&mut self, id: u64) -> Option<u64> {
        if self.buckets.is_empty() {
            return None;
        }
        let mut hole = self.find(id).ok()?;
        let removed = self.buckets[hole].1;
        let n = self.buckets.len();
        let mut next = if hole + 1 == n { 0 } else { hole + 1 };
        loop {
            let (moved, slot) = self.buckets[next];
            if slot == EMPTY_SLOT {
                break;
            }
            let home = home_bucket(moved, n as u64) as usize;
            // The entry at `next` may fill the hole if its home is not in
            // the cyclic range (hole, next]: its probe passes the hole.
            let home_after_hole = if hole <= next { hole < home && home <= next } else { hole < home || home <= next };
            if !home_after_hole {
                self.buckets[hole] = (moved, slot);
                self.mark(hole);
                hole = next;
            }
            next = if next + 1 == n { 0 } else { next + 1 };
        }
        self.buckets[hole] = (0, EMPTY_SLOT);
        self.mark(hole);
        self.len -= 1;
        Some(removed)
    }

    /// Every `(id, slot)`, in bucket order.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub fn entries(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.buckets.iter().copied().filter(|&(_, slot)| slot != EMPTY_SLOT)
    }

    /// The encoded bytes of block `block`.
    pub fn encode_block(&self, block: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(BLOCK_BYTES);
        for &(id, slot) in &self.buckets[block * BLOCK_BUCKETS..(block + 1) * BLOCK_BUCKETS] {
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&slot.to_le_bytes());
        }
        out
    }

    /// The blocks written since the last call (all of them, for a new
    /// table), ascending, and forgets them.
    pub fn take_dirty(&mut self) -> Vec<usize> {
        let dirty = (0..self.dirty.len()).filter(|&b| self.dirty[b]).collect();
        self.dirty.fill(false);
        dirty
    }

    /// The header for this table, given each block's checksum.
    pub fn header(&self, generation: u32, lsn: u64, end_slot: u64, block_crcs: &[u32]) -> SnapshotHeader {
        SnapshotHeader {
            generation,
            lsn,
            end_slot,
            entry_count: self.len,
            bucket_count: self.bucket_count(),
            block_crcs_crc: crc32(0, &crc_table_bytes(block_crcs)),
        }
    }

    /// The whole file: header, checksum table, padding, buckets.
    pub fn encode_file(&self, generation: u32, lsn: u64, end_slot: u64) -> Vec<u8> {
        let blocks = self.buckets.len() / BLOCK_BUCKETS;
        let mut body = Vec::with_capacity(self.buckets.len() * SNAPSHOT_ENTRY_BYTES);
        let mut crcs = Vec::with_capacity(blocks);
        for block in 0..blocks {
            let bytes = self.encode_block(block);
            crcs.push(block_crc(block as u64, &bytes));
            body.extend_from_slice(&bytes);
        }
        let h = self.header(generation, lsn, end_slot, &crcs);
        let mut out = Vec::with_capacity(h.file_len() as usize);
        out.extend_from_slice(&[0u8; SnapshotHeader::ENCODED_LEN]);
        h.encode_into((&mut out[..SnapshotHeader::ENCODED_LEN]).try_into().expect("64 bytes"));
        out.extend_from_slice(&crc_table_bytes(&crcs));
        out.resize(h.table_offset() as usize, 0);
        out.extend_from_slice(&body);
        out
    }
}

/// The block checksum table's bytes.
pub fn crc_table_bytes(block_crcs: &[u32]) -> Vec<u8> {
    block_crcs.iter().flat_map(|c| c.to_le_bytes()).collect()
}

/// Every `(id, slot)` of a decoded snapshot whose blocks have all passed
/// [`check_block`], in bucket order.
#[cfg_attr(not(feature = "testing"), allow(dead_code))]
pub fn entries<'a>(h: &SnapshotHeader, bytes: &'a [u8]) -> impl Iterator<Item = (u64, u64)> + 'a {
    bytes[h.table_offset() as usize..]
        .chunks_exact(SNAPSHOT_ENTRY_BYTES)
        .map(|e| (le::u64_at(e, 0), le::u64_at(e, 8)))
        .filter(|&(_, slot)| slot != EMPTY_SLOT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Result<(SnapshotHeader, Vec<(u64, u64)>), DecodeError> {
        let h = SnapshotHeader::decode_from(bytes)?;
        for block in 0..h.block_count() {
            check_block(&h, bytes, block)?;
        }
        Ok((h, entries(&h, bytes).collect()))
    }

    // Proves a snapshot round-trips, and that every bit flip, truncation or
    // extension is rejected, by the open-time check or by a block check.
    #[test]
    fn round_trip_and_damage() {
        let pairs = [(1, 0), (u64::MAX, 7), (0, 3)];
        let bytes = TableImage::from_entries(&pairs).expect("distinct").encode_file(1, 9, 100);
        let (h, mut got) = decode_all(&bytes).expect("valid");
        assert_eq!((h.entry_count, h.bucket_count, h.lsn, h.end_slot), (3, 256, 9, 100));
        got.sort_unstable();
        assert_eq!(got, [(0, 3), (1, 0), (u64::MAX, 7)]);
        for bit in 0..bytes.len() * 8 {
            let mut d = bytes.clone();
            d[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_all(&d).is_err(), "bit {bit} accepted");
        }
        for len in 0..bytes.len() {
            assert!(SnapshotHeader::decode_from(&bytes[..len]).is_err(), "length {len} accepted");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(SnapshotHeader::decode_from(&longer).is_err());
        // An empty table is a header page and nothing else.
        let empty = TableImage::with_buckets(0).encode_file(2, 0, 0);
        assert_eq!(empty.len(), BLOCK_BYTES);
        assert_eq!(decode_all(&empty).expect("valid").1, []);
    }

    // Proves a block moved to another block's place fails its check even
    // with its own checksum moved along (the checksum is seeded with the
    // block's number).
    #[test]
    fn a_block_in_the_wrong_place_fails() {
        let entries: Vec<(u64, u64)> = (0..400).map(|i| (i, i)).collect();
        let mut bytes = TableImage::from_entries(&entries).expect("distinct").encode_file(1, 1, 400);
        let h = SnapshotHeader::decode_from(&bytes).expect("valid");
        assert_eq!(h.block_count(), 3);
        let t = h.table_offset() as usize;
        let (a, b) = (t..t + BLOCK_BYTES, t + BLOCK_BYTES..t + 2 * BLOCK_BYTES);
        let block0 = bytes[a.clone()].to_vec();
        bytes.copy_within(b, a.start);
        bytes[a.end..a.end + BLOCK_BYTES].copy_from_slice(&block0);
        let crcs = SnapshotHeader::ENCODED_LEN;
        bytes.copy_within(crcs..crcs + 4, crcs + 8);
        assert!(check_block(&h, &bytes, 0).is_err() || check_block(&h, &bytes, 1).is_err());
    }

    // Proves inserts, overwrites and backward-shift removals keep every
    // remaining id findable, against a model map, with ids chosen to
    // collide and wrap around the table's end.
    #[test]
    fn removals_keep_every_probe_whole() {
        let mut table = TableImage::with_buckets(256);
        let mut model = std::collections::HashMap::new();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for step in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = x % 300;
            if x.is_multiple_of(3) || !table.fits(1) {
                assert_eq!(table.remove(id), model.remove(&id), "step {step}: remove {id}");
            } else {
                assert_eq!(table.insert(id, step), model.insert(id, step), "step {step}: insert {id}");
            }
            assert_eq!(table.len(), model.len() as u64);
            if step % 97 == 0 {
                for probe in 0..300 {
                    assert_eq!(table.get(probe), model.get(&probe).copied(), "step {step}: get {probe}");
                }
            }
        }
        let bytes = table.encode_file(1, 1, 20_000);
        let (_, mut got) = decode_all(&bytes).expect("valid");
        let mut want: Vec<(u64, u64)> = model.into_iter().collect();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want);
    }

    // Proves the table is sized for its entries at the load limit.
    #[test]
    fn sizes() {
        assert_eq!(bucket_count_for(0), 0);
        assert_eq!(bucket_count_for(1), 256);
        assert_eq!(bucket_count_for(192), 256);
        assert_eq!(bucket_count_for(193), 512);
        assert!(fits(192, 256) && !fits(193, 256));
        assert!(max_buckets() < 1 << 41);
        assert_eq!(TableImage::from_entries(&[(1, 1), (2, 2), (1, 3)]), Err(1));
    }
}
