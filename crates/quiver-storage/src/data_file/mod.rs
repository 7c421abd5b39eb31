//! One generation's data file: the header page, fixed-size append-only
//! records, growth by `fallocate`, and reads through the mapping.
//!
//! This module owns file lengths (it never shrinks a file below the committed
//! end) and the growth policy. It never decides what is live; that is the
//! index's job.

mod mapping;
mod scan;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::format::header::{DataFileHeader, HeaderError, StoreShape};
use crate::format::record::RecordHeader;
use crate::format::{DATA_HEADER_BYTES, MAX_DATA_FILE_BYTES, RECORD_HEADER_BYTES};
use crate::ids::{Generation, Lsn, Slot};
use crate::io::Io;
use mapping::RecordMap;
pub(crate) use mapping::{ImmutableFile, prefetch, resident_bytes_of_file};
pub(crate) use scan::{NewestRecords, ScanEnd, read_records_into, scan_records};

/// How a data file grows: set with [`crate::StoreOptions::growth`] (or its
/// two part setters). Each step doubles the file, clamped to
/// `[min_step_bytes, max_step_bytes]`; when a step does not fit on the disk,
/// growth falls back to smaller ones down to what the write needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GrowthPolicy {
    /// Size of a new data file.
    pub initial_bytes: u64,
    /// Smallest growth step.
    pub min_step_bytes: u64,
    /// Largest growth step (growth doubles the file up to this step).
    pub max_step_bytes: u64,
}

impl Default for GrowthPolicy {
    fn default() -> Self {
        Self { initial_bytes: 16 << 20, min_step_bytes: 64 << 20, max_step_bytes: 1 << 30 }
    }
}

impl GrowthPolicy {
    /// The preferred new length when `needed_bytes` must fit and the file is
    /// `current_bytes` long.
    pub fn target(&self, current_bytes: u64, needed_bytes: u64) -> u64 {
        let step = current_bytes.clamp(self.min_step_bytes, self.max_step_bytes.max(self.min_step_bytes));
        needed_bytes.max(current_bytes.saturating_add(step)).min(MAX_DATA_FILE_BYTES).max(needed_bytes)
    }
}

/// An open data file.
#[derive(Debug)]
pub(crate) struct DataFile {
    path: PathBuf,
    file: File,
    io: Io,
    shape: StoreShape,
    generation: Generation,
    /// From the header: every change after this LSN is a record here.
    changes_after: Lsn,
    record_size_bytes: u64,
    map: RecordMap,
}

impl DataFile {
    /// Creates the data file of `generation` in `dir`: header page written,
    /// `initial_bytes` reserved, synced. `changes_after` is the LSN after
    /// which the file will hold every change (0 for the first generation;
    /// a compaction's live-copy LSN). The caller syncs the directory.
    pub(crate) fn create(
        io: &Io,
        dir: &Path,
        generation: Generation,
        changes_after: Lsn,
        shape: StoreShape,
        initial_bytes: u64,
    ) -> Result<()> {
        let path = dir.join(generation.data_file_name());
        let file = io.create_file(&path).context(|| format!("creating {}", path.display()))?;
        let mut page = vec![0u8; DATA_HEADER_BYTES as usize];
        let mut head = [0u8; DataFileHeader::ENCODED_LEN];
        DataFileHeader { shape, generation: generation.get(), changes_after_lsn: changes_after.get() }
            .encode_into(&mut head);
        page[..head.len()].copy_from_slice(&head);
        io.write_at(&file, &path, &page, 0).context(|| format!("writing the header of {}", path.display()))?;
        let len = initial_bytes.max(DATA_HEADER_BYTES);
        io.allocate(&file, &path, 0, len).context(|| format!("reserving {len} bytes for {}", path.display()))?;
        io.sync_all(&file, &path).context(|| format!("syncing {}", path.display()))
    }

    /// Opens and checks the data file of `generation`. Nothing is readable
    /// through the map until the caller publishes the recovered end.
    pub(crate) fn open(
        io: &Io,
        dir: &Path,
        generation: Generation,
        shape: StoreShape,
        window_bytes: usize,
        writable: bool,
    ) -> Result<Self> {
        let path = dir.join(generation.data_file_name());
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(&path)
            .context(|| format!("opening the data file {}", path.display()))?;
        let mut head = [0u8; DataFileHeader::ENCODED_LEN];
        let corrupt = |offset: u64, reason: String| Error::Corrupted { path: path.clone(), offset, reason };
        file.read_exact_at(&mut head, 0).map_err(|_| corrupt(0, "the data file is shorter than its header".into()))?;
        let header = match DataFileHeader::decode_from(&head) {
            Ok(h) => h,
            Err(HeaderError::BadMagic) => return Err(corrupt(0, "the data file header magic is wrong".into())),
            Err(HeaderError::Corrupt(e)) => return Err(e.into_error(&path, 0)),
            Err(HeaderError::Version(v)) => return Err(corrupt(8, format!("data file version {v} is not supported"))),
        };
        if header.shape != shape || header.generation != generation.get() {
            return Err(corrupt(12, "the data file header disagrees with the store's format header".into()));
        }
        // The header page must be whole: every record offset starts past it,
        // and growth never goes below it.
        let len = file.metadata().context(|| format!("reading the length of {}", path.display()))?.len();
        if len < DATA_HEADER_BYTES {
            return Err(corrupt(
                len,
                format!("the data file is {len} bytes, shorter than its {DATA_HEADER_BYTES}-byte header page"),
            ));
        }
        let record_size_bytes = u64::from(shape.record_size_bytes());
        let map =
            RecordMap::new(&file, window_bytes, record_size_bytes).context(|| format!("mapping {}", path.display()))?;
        let changes_after = Lsn::from(header.changes_after_lsn);
        Ok(Self { path, file, io: io.clone(), shape, generation, changes_after, record_size_bytes, map })
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The generation.
    pub(crate) fn generation(&self) -> Generation {
        self.generation
    }

    /// Every change committed after this LSN is a record in this file
    /// (FORMAT.md, "Header page").
    pub(crate) fn changes_after(&self) -> Lsn {
        self.changes_after
    }

    /// Bytes per record.
    pub(crate) fn record_size_bytes(&self) -> u64 {
        self.record_size_bytes
    }

    /// Bytes of one (unpadded) payload.
    pub(crate) fn payload_bytes(&self) -> usize {
        self.shape.payload_bytes() as usize
    }

    /// File offset of `slot`'s record.
    pub(crate) fn slot_offset(&self, slot: Slot) -> u64 {
        DATA_HEADER_BYTES + slot.get() * self.record_size_bytes
    }

    /// The file length needed to hold the records below `end_slot`.
    pub(crate) fn bytes_for_slots(&self, end_slot: Slot) -> u64 {
        self.slot_offset(end_slot)
    }

    /// The file's current length.
    pub(crate) fn len_bytes(&self) -> Result<u64> {
        Ok(self.file.metadata().context(|| format!("reading the length of {}", self.path.display()))?.len())
    }

    /// Reserves `[current_bytes, target_bytes)` with `fallocate`. On failure
    /// the file is cut back to `current_bytes` (never below the committed
    /// end, which the caller guarantees `current_bytes` is above), since a
    /// failed `fallocate` may have extended it.
    pub(crate) fn allocate(&self, current_bytes: u64, target_bytes: u64) -> io::Result<()> {
        // Cutting back below the committed end would be SIGBUS for every
        // process mapping the file: never, whatever the caller passed.
        assert!(
            current_bytes >= self.bytes_for_slots(self.map.committed_slots()),
            "a data file is never trimmed below its committed records"
        );
        let result = self.io.allocate(&self.file, &self.path, current_bytes, target_bytes - current_bytes);
        if result.is_err()
            && let Ok(meta) = self.file.metadata()
            && meta.len() > current_bytes
        {
            let _ = self.io.set_len(&self.file, &self.path, current_bytes);
        }
        result
    }

    /// Makes sure records below `end_slot` are inside a mapped window.
    pub(crate) fn ensure_mapped(&self, end_slot: Slot) -> Result<()> {
        self.map.ensure_mapped(&self.file, end_slot).context(|| format!("mapping {}", self.path.display()))
    }

    /// Writes whole records at `first_slot` (never below the committed end).
    pub(crate) fn write_records(&self, first_slot: Slot, bytes: &[u8]) -> io::Result<()> {
        self.map.write_records(&self.io, &self.file, &self.path, first_slot, bytes)
    }

    /// Publishes the records below `end_slot` that an opener found committed on disk
    /// (recovery's replayed end, a follower's checkpoint end), after checking
    /// the file can hold them: publishing a slot past the end of the file
    /// would turn a read of it into SIGBUS, so a shorter file, or an end no
    /// data file could reach, is damage.
    pub(crate) fn publish_found(&self, end_slot: Slot) -> Result<()> {
        let max_slots = (MAX_DATA_FILE_BYTES - DATA_HEADER_BYTES) / self.record_size_bytes;
        let file_bytes = self.len_bytes()?;
        if end_slot.get() > max_slots || file_bytes < self.bytes_for_slots(end_slot) {
            return Err(Error::Corrupted {
                path: self.path.clone(),
                offset: file_bytes,
                reason: format!("the file ends before its {end_slot} committed records"),
            });
        }
        self.ensure_mapped(end_slot)?;
        self.publish(end_slot);
        Ok(())
    }

    /// The end of the published (committed) records: every slot below it
    /// is readable, so it is also their number.
    pub(crate) fn committed_slots(&self) -> Slot {
        self.map.committed_slots()
    }

    /// Declares records below `end_slot` written and readable.
    pub(crate) fn publish(&self, end_slot: Slot) {
        self.map.publish(end_slot);
    }

    /// The payload of a published record, zero-copy.
    #[inline]
    pub(crate) fn payload<T: bytemuck::Pod>(&self, slot: Slot) -> Option<&[T]> {
        self.map.payload(slot, u64::from(RECORD_HEADER_BYTES), self.shape.dimension as usize)
    }

    /// The payloads of every record below `end_slot` as one span, each
    /// `record_size_bytes` after the last (see `RecordMap::payload_span`).
    pub(crate) fn payload_span(&self, end_slot: Slot) -> Option<&[u8]> {
        self.map.payload_span(end_slot, u64::from(RECORD_HEADER_BYTES), self.payload_bytes() as u64)
    }

    /// The whole published record at `slot` (header and unpadded payload)
    /// through the mapping, zero-copy; `None` past the committed end. Not
    /// yet verified: decode it with `RecordHeader::decode_from`.
    pub(crate) fn record_bytes(&self, slot: Slot) -> Option<&[u8]> {
        self.map.payload::<u8>(slot, 0, RECORD_HEADER_BYTES as usize + self.payload_bytes())
    }

    /// The LSN in the header of the published record at `slot`, read
    /// through the mapping (`None` past the committed end). Not checksummed:
    /// callers only compare it with another record's.
    pub(crate) fn record_lsn(&self, slot: Slot) -> Option<u64> {
        let bytes = self.map.payload::<u8>(slot, 16, 8)?;
        Some(u64::from_le_bytes(bytes.try_into().ok()?))
    }

    /// Reads a whole record with `pread` into `buf` (one record long).
    pub(crate) fn read_record(&self, slot: Slot, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, self.slot_offset(slot))
    }

    /// Reads and verifies the record at `slot`.
    ///
    /// `Ok(None)` when the record is past the end of the file or fails its
    /// checksum; `Err` for any other I/O failure, which must never be taken
    /// for a torn record.
    pub(crate) fn read_header(&self, slot: Slot, buf: &mut [u8]) -> io::Result<Option<RecordHeader>> {
        match self.read_record(slot, buf) {
            Ok(()) => Ok(RecordHeader::decode_from(buf, self.shape.payload_bytes() as usize).ok()),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether the records at `first_slot..` are exactly those a batch
    /// describes (id, kind, LSN and checksum each). An I/O error other than
    /// the file ending early is returned, never taken for a mismatch.
    pub(crate) fn holds_batch(
        &self,
        first_slot: Slot,
        entries: &[crate::format::wal_frame::BatchEntry],
        lsn: u64,
    ) -> io::Result<bool> {
        let mut buf = vec![0u8; self.record_size_bytes as usize];
        for (i, e) in entries.iter().enumerate() {
            let header = self.read_header(first_slot + i as u64, &mut buf)?;
            if !header.is_some_and(|h| h.id == e.id && h.kind == e.kind && h.lsn == lsn && h.crc == e.record_crc) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Tells the kernel how this file's windows will be read (also those
    /// mapped later).
    pub(crate) fn advise(&self, pattern: crate::options::AccessPattern) -> io::Result<()> {
        self.map.advise(pattern)
    }

    /// Asks the kernel to read the committed records into memory: in the
    /// background, or (`wait`) before returning.
    pub(crate) fn will_need(&self, wait: bool) -> io::Result<()> {
        self.map.will_need(self.bytes_for_slots(self.committed_slots()), wait)
    }

    /// Bytes of address space the file's windows take.
    pub(crate) fn mapped_bytes(&self) -> u64 {
        self.map.mapped_bytes()
    }

    /// Bytes of the file's first `end_bytes` that are in memory.
    pub(crate) fn resident_bytes(&self, end_bytes: u64) -> io::Result<u64> {
        self.map.resident_bytes(end_bytes)
    }

    /// `fdatasync`.
    pub(crate) fn sync_data(&self) -> io::Result<()> {
        self.io.sync_data(&self.file, &self.path)
    }
}
