//! `Frames`: the one walk over a segment's frames, shared by recovery
//! (`reader::scan_segment`) and the follower (`store::reader`).
//!
//! It yields each whole, checksum-chained frame decoded as a batch, and says
//! where the valid prefix ends: at the end of the bytes, or at a torn frame
//! (cut short, bad length, bad chained checksum). The caller judges each
//! batch and moves past it with [`Frames::accept`]; a batch it does not
//! accept leaves the position in front of it. A checksum-valid frame that
//! does not decode is damage, never a torn write, and is an error.

use crate::format::DecodeError;
use crate::format::wal_frame::{Batch, FrameRead, decode_batch, next_frame};

/// What [`Frames::next_step`] found.
#[derive(Debug)]
pub(crate) enum FrameStep<'a> {
    /// A whole frame holding this batch; [`Frames::accept`] moves past it.
    Batch(Batch<'a>),
    /// The bytes end at a frame boundary.
    End,
    /// The bytes at the position are not a whole, valid frame.
    Torn(DecodeError),
}

/// A walk over frames in `bytes`, starting at a frame boundary with the
/// chain checksum of the frame before it.
#[derive(Debug)]
pub(crate) struct Frames<'a> {
    bytes: &'a [u8],
    payload_bytes: usize,
    /// Position of the next frame in `bytes`.
    at: usize,
    /// Chain checksum of the frame before `at`.
    crc: u32,
    /// Where the batch last returned ends, and its checksum, until accepted.
    pending: Option<(usize, u32)>,
}

impl<'a> Frames<'a> {
    /// Walks `bytes` from `at`, whose previous frame's chain checksum is
    /// `crc` (the segment header's seed for the first frame).
    pub(crate) fn new(bytes: &'a [u8], at: usize, crc: u32, payload_bytes: usize) -> Self {
        Self { bytes, payload_bytes, at, crc, pending: None }
    }

    /// The position of the next frame (the end of the accepted prefix).
    pub(crate) fn position(&self) -> usize {
        self.at
    }

    /// The chain checksum at [`Frames::position`].
    pub(crate) fn crc(&self) -> u32 {
        self.crc
    }

    /// Reads the frame at the position. `Err` means a checksum-valid frame
    /// did not decode (its offset is the frame's position): damage.
    pub(crate) fn next_step(&mut self) -> Result<FrameStep<'a>, DecodeError> {
        self.pending = None;
        match next_frame(self.bytes, self.at, self.crc) {
            FrameRead::End => Ok(FrameStep::End),
            FrameRead::Invalid(e) => Ok(FrameStep::Torn(e)),
            FrameRead::Frame { payload, crc, next_offset } => {
                let batch = decode_batch(payload, self.payload_bytes).map_err(|e| {
                    DecodeError::new(self.at as u64, format!("a checksum-valid frame does not decode: {}", e.reason))
                })?;
                self.pending = Some((next_offset, crc));
                Ok(FrameStep::Batch(batch))
            }
        }
    }

    /// Moves past the batch the last [`Frames::next_step`] returned.
    pub(crate) fn accept(&mut self) {
        let (next, crc) = self.pending.take().expect("accept follows a returned batch");
        self.at = next;
        self.crc = crc;
    }
}
