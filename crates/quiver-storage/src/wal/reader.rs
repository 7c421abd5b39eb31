//! Walks one WAL segment during recovery.
//!
//! Reading stops at the first frame that is not valid (cut short, bad length,
//! bad chained checksum) or that the caller rejects; everything from there on
//! is the torn tail. The reader never writes; cutting the tail off is the
//! recovery's job.

use std::fs;
use std::path::{Path, PathBuf};

use super::frames::{FrameStep, Frames};
use crate::error::{IoContext, Result};
use crate::format::DecodeError;
use crate::format::wal_frame::{Batch, SegmentHeader};

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
    let crc = match SegmentHeader::decode_from(&bytes) {
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
    let mut frames = Frames::new(&bytes, SegmentHeader::ENCODED_LEN, crc, payload_bytes);
    end.valid_bytes = frames.position() as u64;
    end.end_crc = crc;
    loop {
        let step = frames.next_step().map_err(|e| e.into_error(path, 0))?;
        match step {
            FrameStep::End => return Ok(end),
            FrameStep::Torn(e) => {
                end.torn = Some(e);
                return Ok(end);
            }
            FrameStep::Batch(batch) => match on_batch(&batch)? {
                Verdict::Accept => {
                    frames.accept();
                    end.valid_bytes = frames.position() as u64;
                    end.end_crc = frames.crc();
                    end.frames += 1;
                }
                Verdict::TornHere(reason) => {
                    end.torn = Some(DecodeError::new(frames.position() as u64, reason));
                    return Ok(end);
                }
            },
        }
    }
}
