//! Walks one WAL segment during recovery.
//!
//! Reading stops at the first frame that is not valid (cut short, bad length,
//! bad chained checksum) or that the caller rejects; everything from there on
//! is the torn tail. The reader never writes; cutting the tail off is the
//! recovery's job.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::format::DecodeError;
use crate::format::wal_frame::{Batch, FrameRead, SegmentHeader, decode_batch, next_frame};

/// What the caller says about a decoded batch.
pub(crate) enum Verdict {
    /// Apply it and go on.
    Accept,
    /// Treat this frame as the torn end (e.g. a location batch whose data
    /// records fail their checksums).
    TornHere(String),
}

/// Where a segment's valid prefix ends.
#[derive(Debug)]
pub(crate) struct SegmentEnd {
    /// The segment's path.
    pub path: PathBuf,
    /// Bytes of valid header and frames.
    pub valid_bytes: u64,
    /// The file's length.
    pub file_bytes: u64,
    /// Why reading stopped before the end of the file, if it did.
    pub torn: Option<DecodeError>,
    /// Number of frames accepted.
    pub frames: u64,
    /// Chain crc after the last valid frame (the next frame's seed).
    pub end_crc: u32,
}

/// Reads segment `path`, passing every valid batch to `on_batch` in order.
///
/// A missing or damaged segment header makes the whole segment a torn tail
/// (valid bytes 0), which the caller tolerates only for the last segment.
pub(crate) fn scan_segment(
    path: &Path,
    expected_segment: u64,
    payload_bytes: usize,
    mut on_batch: impl FnMut(&Batch<'_>) -> Result<Verdict>,
) -> Result<SegmentEnd> {
    let bytes = fs::read(path).context(|| format!("reading the WAL segment {}", path.display()))?;
    let mut end = SegmentEnd {
        path: path.to_path_buf(),
        valid_bytes: 0,
        file_bytes: bytes.len() as u64,
        torn: None,
        frames: 0,
        end_crc: 0,
    };
    let mut crc = match SegmentHeader::decode_from(&bytes) {
        Ok((h, seed)) if h.segment == expected_segment => seed,
        Ok((h, _)) => {
            end.torn = Some(DecodeError::new(16, format!("the header names segment {}", h.segment)));
            return Ok(end);
        }
        Err(e) => {
            end.torn = Some(e);
            return Ok(end);
        }
    };
    let mut offset = SegmentHeader::ENCODED_LEN;
    end.valid_bytes = offset as u64;
    end.end_crc = crc;
    loop {
        match next_frame(&bytes, offset, crc) {
            FrameRead::End => return Ok(end),
            FrameRead::Invalid(e) => {
                end.torn = Some(e);
                return Ok(end);
            }
            FrameRead::Frame { payload, crc: frame_crc, next_offset } => {
                let batch = decode_batch(payload, payload_bytes).map_err(|e| Error::Corrupted {
                    path: path.to_path_buf(),
                    offset: offset as u64,
                    reason: format!("a checksum-valid frame does not decode: {}", e.reason),
                })?;
                match on_batch(&batch)? {
                    Verdict::Accept => {}
                    Verdict::TornHere(reason) => {
                        end.torn = Some(DecodeError::new(offset as u64, reason));
                        return Ok(end);
                    }
                }
                crc = frame_crc;
                offset = next_offset;
                end.valid_bytes = offset as u64;
                end.end_crc = crc;
                end.frames += 1;
            }
        }
    }
}
