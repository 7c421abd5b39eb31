//! The write-ahead log: segment files under `<dir>/wal/`, never reused, each
//! a header followed by checksum-chained frames, one frame per batch.
//!
//! `writer` appends frames and cuts back a failed write to the last frame
//! boundary; `frames` is the one walk over a segment's frames, which
//! `reader` (recovery) and the follower share; `reader` walks segments during
//! recovery and stops at the first invalid frame. Neither decides what a batch means for the index.

pub(crate) mod frames;
pub(crate) mod reader;
pub(crate) mod writer;

use std::fs;
use std::path::Path;

use crate::error::{IoContext, Result};
use crate::format::parse_wal_segment_name;
use crate::ids::SegmentNo;

/// Lists the segment numbers present in `wal_dir`, ascending. Files that are
/// not segments are ignored (temp files are removed by recovery).
pub(crate) fn list_segments(wal_dir: &Path) -> Result<Vec<SegmentNo>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(wal_dir).context(|| format!("listing {}", wal_dir.display()))? {
        let entry = entry.context(|| format!("listing {}", wal_dir.display()))?;
        if let Some(n) = entry.file_name().to_str().and_then(parse_wal_segment_name) {
            segments.push(SegmentNo::from(n));
        }
    }
    segments.sort_unstable();
    Ok(segments)
}
