//! The two files every opener of a store directory reads first — the format
//! header (`QUIVER`) and the `MANIFEST` — read and judged in one place, so
//! the writer's open, a follower and `inspect` give the same verdicts for
//! the same directory. The file names themselves are in `format` (and
//! docs/FORMAT.md, "Files").
//!
//! Nothing here writes, locks or maps anything.

use std::fs;
use std::io;
use std::path::Path;

use crate::error::{Error, Result};
use crate::format::header::{FormatHeader, HeaderError, StoreShape};
use crate::format::manifest::Manifest;
use crate::format::{FORMAT_VERSION, HEADER_FILE, MANIFEST_FILE};

/// Reads and checks the format header of the store directory `dir`: not a
/// store (no header, or another file's bytes), an unsupported version, or
/// corrupted (a checksum, trailing bytes).
pub(crate) fn read_format_header(dir: &Path) -> Result<FormatHeader> {
    let path = dir.join(HEADER_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::NotAStore { path: dir.into(), reason: format!("it has no {HEADER_FILE} header") });
        }
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    let header = match FormatHeader::decode_from(&bytes) {
        Ok(h) => h,
        Err(HeaderError::BadMagic) => {
            return Err(Error::NotAStore { path: dir.into(), reason: format!("{HEADER_FILE} is not a Quiver header") });
        }
        Err(HeaderError::Corrupt(e)) => return Err(e.into_error(&path, 0)),
        Err(HeaderError::Version(found)) => {
            return Err(Error::UnsupportedVersion { path: dir.into(), found, supported: FORMAT_VERSION });
        }
    };
    if bytes.len() != FormatHeader::ENCODED_LEN {
        return Err(Error::Corrupted {
            path,
            offset: FormatHeader::ENCODED_LEN as u64,
            reason: "the header file has trailing bytes".into(),
        });
    }
    Ok(header)
}

/// Reads the format header and checks that it describes `shape`: the wrong
/// element type or dimension is an error that changes nothing.
pub(crate) fn check_format_header(dir: &Path, shape: StoreShape) -> Result<()> {
    let header = read_format_header(dir)?;
    if header.shape.element != shape.element {
        return Err(Error::ElementTypeMismatch { expected: header.shape.element.name(), actual: shape.element.name() });
    }
    if header.shape.dimension != shape.dimension {
        return Err(Error::DimensionMismatch { expected: header.shape.dimension, actual: shape.dimension });
    }
    Ok(())
}

/// Reads and decodes `MANIFEST`; a missing one is damage, not an empty store.
pub(crate) fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = fs::read(&path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => {
            Error::Corrupted { path: path.clone(), offset: 0, reason: "the manifest is missing".into() }
        }
        _ => Error::io(format!("reading {}", path.display()), e),
    })?;
    Manifest::decode_from(&bytes).map_err(|e| e.into_error(&path, 0))
}
