//! Appends frames to the current WAL segment.
//!
//! A single frame whose write fails or comes up short is cut back to the
//! last frame boundary before the error is returned, so a later append never
//! lands after garbage; if the cut itself fails, the caller must poison the
//! store. A failed write of acknowledged (deferred) frames is never cut: it
//! poisons, and recovery decides what survived.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};
use crate::format::wal_frame::{BatchEntry, SegmentHeader, encode_batch_into};
use crate::ids::{Generation, Lsn, SegmentNo, Slot};
use crate::io::Io;

/// Deferred frames are written out once this many bytes are buffered.
pub(crate) const DEFERRED_BUFFER_BYTES: usize = 1 << 20;

/// A failed append: the error, and whether the store must be poisoned
/// (the log could not be cut back, or acknowledged deferred frames were lost).
#[derive(Debug)]
pub(crate) struct AppendError {
    pub error: Error,
    pub poison: bool,
}

/// The writer of the current segment.
#[derive(Debug)]
pub(crate) struct WalWriter {
    io: Io,
    segment: SegmentNo,
    path: PathBuf,
    file: Arc<File>,
    /// Bytes in the file, always a frame boundary.
    file_bytes: u64,
    /// Chain crc of the last frame in the file.
    file_crc: u32,
    /// Chain crc of the last frame appended (in the file or the buffer).
    chain_crc: u32,
    /// Deferred frames not yet written.
    buffer: Vec<u8>,
    scratch: Vec<u8>,
}

impl WalWriter {
    /// Creates segment `segment` in `wal_dir`, writes and syncs its header,
    /// and syncs the directory so the segment survives power loss.
    pub(crate) fn create(io: &Io, wal_dir: &Path, segment: SegmentNo) -> Result<Self> {
        let path = wal_dir.join(segment.file_name());
        let file = io.create_file(&path).context(|| format!("creating the WAL segment {}", path.display()))?;
        let mut head = [0u8; SegmentHeader::ENCODED_LEN];
        let seed = SegmentHeader { segment: segment.get() }.encode_into(&mut head);
        io.write_at(&file, &path, &head, 0)
            .and_then(|()| io.sync_all(&file, &path))
            .and_then(|()| io.sync_dir(wal_dir))
            .context(|| format!("initialising the WAL segment {}", path.display()))?;
        Ok(Self {
            io: io.clone(),
            segment,
            path,
            file: Arc::new(file),
            file_bytes: SegmentHeader::ENCODED_LEN as u64,
            file_crc: seed,
            chain_crc: seed,
            buffer: Vec::new(),
            scratch: Vec::new(),
        })
    }

    /// Continues segment `segment` at `path`, whose valid frames end at
    /// `valid_bytes` with chain crc `end_crc` (recovery has cut anything
    /// after them).
    pub(crate) fn open_append(
        io: &Io,
        path: &Path,
        segment: SegmentNo,
        valid_bytes: u64,
        end_crc: u32,
    ) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .context(|| format!("opening the WAL segment {}", path.display()))?;
        Ok(Self {
            io: io.clone(),
            segment,
            path: path.to_path_buf(),
            file: Arc::new(file),
            file_bytes: valid_bytes,
            file_crc: end_crc,
            chain_crc: end_crc,
            buffer: Vec::new(),
            scratch: Vec::new(),
        })
    }

    /// The segment number.
    pub(crate) fn segment(&self) -> SegmentNo {
        self.segment
    }

    /// Bytes in the segment, including buffered frames.
    pub(crate) fn len_bytes(&self) -> u64 {
        self.file_bytes + self.buffer.len() as u64
    }

    /// The file and its path, so a group-commit leader can sync without
    /// holding the writer lock.
    pub(crate) fn sync_handle(&self) -> (Arc<File>, PathBuf) {
        (Arc::clone(&self.file), self.path.clone())
    }

    /// Appends a batch frame. With `defer`, the frame is buffered (and the
    /// buffer written once it passes [`DEFERRED_BUFFER_BYTES`]); otherwise it
    /// is written with one positioned write before returning.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn append(
        &mut self,
        lsn: Lsn,
        generation: Generation,
        first_slot: Slot,
        entries: &[BatchEntry],
        payloads: Option<&[u8]>,
        defer: bool,
    ) -> Result<(), AppendError> {
        // The codec takes plain integers (docs/FORMAT.md's layout).
        let (chain, lsn, generation, first_slot) = (self.chain_crc, lsn.get(), generation.get(), first_slot.get());
        let encode = |buf: &mut Vec<u8>| encode_batch_into(buf, chain, lsn, generation, first_slot, entries, payloads);
        if defer {
            self.chain_crc = encode(&mut self.buffer);
            if self.buffer.len() >= DEFERRED_BUFFER_BYTES {
                self.write_buffer()?;
            }
            return Ok(());
        }
        debug_assert!(self.buffer.is_empty(), "a non-deferred append after deferred ones");
        self.scratch.clear();
        let crc = encode(&mut self.scratch);
        let frame = std::mem::take(&mut self.scratch);
        let result = self.write_frames(&frame, false);
        self.scratch = frame;
        result?;
        self.chain_crc = crc;
        self.file_crc = crc;
        Ok(())
    }

    /// Writes buffered deferred frames. Losing them loses acknowledged
    /// writes, so a failure here always asks for poison; the frames stay
    /// buffered, so a later best effort (a failed `close`, Drop) writes them
    /// again at the same offset — rewriting the same bytes where part of them
    /// landed changes nothing a follower may have read.
    pub(crate) fn write_buffer(&mut self) -> Result<(), AppendError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let frames = std::mem::take(&mut self.buffer);
        let result = self.write_frames(&frames, true);
        match result {
            Ok(()) => self.file_crc = self.chain_crc,
            Err(_) => self.buffer = frames,
        }
        result
    }

    fn write_frames(&mut self, bytes: &[u8], acknowledged: bool) -> Result<(), AppendError> {
        match self.io.write_at(&self.file, &self.path, bytes, self.file_bytes) {
            Ok(()) => {
                self.file_bytes += bytes.len() as u64;
                Ok(())
            }
            Err(source) => {
                let error = Error::io(format!("appending to the WAL segment {}", self.path.display()), source);
                if acknowledged {
                    // Deferred frames were acknowledged, and the complete ones
                    // among those just written may already have been read by
                    // a follower: leave them. The store is poisoned; recovery
                    // keeps the whole frames and cuts the partial one, by the
                    // same rules a follower applies.
                    return Err(AppendError { error, poison: true });
                }
                // One frame, not acknowledged: whatever part of it was written
                // is not a whole frame, so no reader can have applied it.
                let cut = self.io.set_len(&self.file, &self.path, self.file_bytes);
                Err(AppendError { error, poison: cut.is_err() })
            }
        }
    }

    /// `fdatasync` of the segment (buffered frames must be written first).
    pub(crate) fn sync(&self) -> Result<()> {
        debug_assert!(self.buffer.is_empty());
        self.io.sync_data(&self.file, &self.path).context(|| format!("syncing the WAL segment {}", self.path.display()))
    }
}
