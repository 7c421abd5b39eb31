//! `.fvecs`, `.bvecs` and `.ivecs`, the ANN benchmark sets' formats (as
//! faiss's `contrib/vecs_io.py` reads them): rows back to back, each a
//! little-endian `i32` dimension followed by that many elements (`f32`,
//! `u8` or `i32`). No header, no row count: every row repeats the
//! dimension, and a row whose dimension differs from the first is damage.

use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use quiver_storage::ElementType;

use crate::error::FormatError;
use crate::transfer::{TempFile, read_full};
use crate::{FileShape, Format, ReadRows, Scalar, WriteRows};

/// The largest dimension a vecs row may claim (the store's own limit).
const MAX_DIM: usize = 65_536;

/// Which of the three vecs formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VecsKind {
    /// `f32` elements.
    F,
    /// `u8` elements.
    B,
    /// `i32` elements.
    I,
}

impl VecsKind {
    /// The kind for a format, if it is a vecs format.
    pub fn of(format: Format) -> Option<Self> {
        match format {
            Format::Fvecs => Some(VecsKind::F),
            Format::Bvecs => Some(VecsKind::B),
            Format::Ivecs => Some(VecsKind::I),
            _ => None,
        }
    }

    fn format(self) -> Format {
        match self {
            VecsKind::F => Format::Fvecs,
            VecsKind::B => Format::Bvecs,
            VecsKind::I => Format::Ivecs,
        }
    }

    /// The element type of the rows.
    pub fn scalar(self) -> Scalar {
        match self {
            VecsKind::F => Scalar::Element(ElementType::F32),
            VecsKind::B => Scalar::Element(ElementType::U8),
            VecsKind::I => Scalar::I32,
        }
    }
}

/// Reads a vecs file a batch of rows at a time.
#[derive(Debug)]
pub struct VecsReader {
    path: PathBuf,
    input: BufReader<File>,
    kind: VecsKind,
    dim: usize,
    rows: u64,
    offset: u64,
    staging: Vec<u8>,
}

impl VecsReader {
    /// Opens `path` as `kind`, reading the first row's dimension. An empty
    /// file has no dimension and is refused.
    pub fn open(path: &Path, kind: VecsKind) -> Result<Self, FormatError> {
        let file = File::open(path).map_err(|e| FormatError::io(path, e))?;
        let len = file.metadata().map_err(|e| FormatError::io(path, e))?.len();
        let mut input = BufReader::with_capacity(1 << 20, file);
        let mut head = [0u8; 4];
        let got = read_full(&mut input, &mut head).map_err(|e| FormatError::io(path, e))?;
        if got < 4 {
            return Err(FormatError::malformed(path, 0, "the file is shorter than one row's dimension"));
        }
        let claimed = i32::from_le_bytes(head);
        let dim = usize::try_from(claimed).ok().filter(|&d| (1..=MAX_DIM).contains(&d)).ok_or_else(|| {
            FormatError::malformed(path, 0, format!("row 0 claims dimension {claimed}, not 1..={MAX_DIM}"))
        })?;
        input.seek(SeekFrom::Start(0)).map_err(|e| FormatError::io(path, e))?;
        let row_bytes = 4 + dim as u64 * kind.scalar().size_bytes() as u64;
        Ok(Self { path: path.to_path_buf(), input, kind, dim, rows: len / row_bytes, offset: 0, staging: Vec::new() })
    }

    fn row_bytes(&self) -> usize {
        4 + self.dim * self.kind.scalar().size_bytes()
    }
}

impl ReadRows for VecsReader {
    fn shape(&self) -> FileShape {
        FileShape { format: self.kind.format(), dim: self.dim, element: self.kind.scalar(), rows: Some(self.rows) }
    }

    fn read_rows(&mut self, max_rows: usize, out: &mut [u8], _ids: &mut Vec<u64>) -> Result<usize, FormatError> {
        let row = self.row_bytes();
        let payload = row - 4;
        assert!(out.len() >= max_rows * payload, "the output holds fewer than max_rows rows");
        self.staging.resize(max_rows * row, 0);
        let got = read_full(&mut self.input, &mut self.staging).map_err(|e| FormatError::io(&self.path, e))?;
        let rows = got / row;
        let first_row = self.offset / row as u64;
        for (i, chunk) in self.staging[..got].chunks_exact(row).enumerate() {
            let claimed = i32::from_le_bytes(chunk[..4].try_into().expect("4 bytes"));
            if usize::try_from(claimed).ok() != Some(self.dim) {
                return Err(FormatError::malformed(
                    &self.path,
                    self.offset + (i * row) as u64,
                    format!(
                        "row {} claims dimension {claimed}; the file's rows have {}",
                        first_row + i as u64,
                        self.dim
                    ),
                ));
            }
            out[i * payload..(i + 1) * payload].copy_from_slice(&chunk[4..]);
        }
        // The first problem in file order is reported: a bad dimension in a
        // whole row comes before a torn last row.
        if got % row != 0 {
            let at = self.offset + (rows * row) as u64;
            return Err(FormatError::malformed(
                &self.path,
                at,
                format!(
                    "the file ends inside row {}: {} of its {row} bytes are there",
                    first_row + rows as u64,
                    got % row
                ),
            ));
        }
        self.offset += got as u64;
        Ok(rows)
    }

    fn offset_bytes(&self) -> u64 {
        self.offset
    }

    fn skip_rows(&mut self, rows: u64) -> Result<(), FormatError> {
        let bytes = rows.saturating_mul(self.row_bytes() as u64);
        self.offset = self.offset.saturating_add(bytes);
        self.input.seek(SeekFrom::Start(self.offset)).map_err(|e| FormatError::io(&self.path, e))?;
        Ok(())
    }
}

/// Writes a vecs file; nothing is at the target path before `finish`.
#[derive(Debug)]
pub struct VecsWriter {
    file: TempFile,
    output: BufWriter<File>,
    dim: usize,
    element_bytes: usize,
    written: u64,
}

impl VecsWriter {
    /// Starts `path` (through `<path>.tmp`) for rows of `dim` elements of
    /// `kind`.
    pub fn create(path: &Path, kind: VecsKind, dim: usize) -> Result<Self, FormatError> {
        let (file, handle) = TempFile::create(path)?;
        let dim = i32::try_from(dim)
            .ok()
            .filter(|&d| d > 0)
            .ok_or_else(|| FormatError::unsupported(path, format!("dimension {dim} does not fit a vecs row")))?
            as usize;
        Ok(Self {
            file,
            output: BufWriter::with_capacity(1 << 20, handle),
            dim,
            element_bytes: kind.scalar().size_bytes(),
            written: 0,
        })
    }
}

impl WriteRows for VecsWriter {
    fn write_rows(&mut self, _ids: &[u64], bytes: &[u8]) -> Result<(), FormatError> {
        let row = self.dim * self.element_bytes;
        assert!(bytes.len().is_multiple_of(row), "whole rows only");
        let head = (self.dim as i32).to_le_bytes();
        for chunk in bytes.chunks_exact(row) {
            self.output
                .write_all(&head)
                .and_then(|()| self.output.write_all(chunk))
                .map_err(|e| FormatError::io(self.file.path(), e))?;
        }
        self.written += (bytes.len() / row * (row + 4)) as u64;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<u64, FormatError> {
        let this = *self;
        let handle = this.output.into_inner().map_err(|e| FormatError::io(this.file.path(), e.into_error()))?;
        this.file.commit(handle)?;
        Ok(this.written)
    }
}
