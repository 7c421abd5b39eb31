//! numpy's `.npy` (format versions 1.0, 2.0 and 3.0): a magic, a header
//! that is a Python dict literal (`descr`, `fortran_order`, `shape`), then
//! the array's bytes. Vectors are a 2-D array `(rows, dim)` in C order; a
//! 1-D `uint64` array is an id column. npy has no bfloat16: a bfloat16
//! store travels as its bit patterns, `<u2` (what ml_dtypes'
//! `a.view(numpy.uint16)` gives), and a `<u2` file reads as bfloat16, the
//! one 2-byte unsigned type a store holds. Only little-endian (or
//! byte-order-free) element types are read; a big-endian or Fortran-order
//! array is refused with a message that says how to convert it.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use quiver_storage::ElementType;

use crate::error::FormatError;
use crate::transfer::{TempFile, read_full};
use crate::{FileShape, Format, ReadRows, Scalar, WriteRows};

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// The largest header a reader accepts (numpy itself writes far less).
const MAX_HEADER_BYTES: usize = 1 << 20;

/// The `descr` of each element type, as numpy writes it.
fn descr_of(scalar: Scalar) -> Option<&'static str> {
    Some(match scalar {
        Scalar::Element(ElementType::F32) => "<f4",
        Scalar::Element(ElementType::F64) => "<f8",
        Scalar::Element(ElementType::F16) => "<f2",
        Scalar::Element(ElementType::U8) => "|u1",
        Scalar::Element(ElementType::I8) => "|i1",
        Scalar::Element(ElementType::Bf16) => "<u2",
        Scalar::I32 => "<i4",
        Scalar::U64 => "<u8",
        _ => return None,
    })
}

fn scalar_of(descr: &str) -> Option<Scalar> {
    // `=` is native order, little-endian on every target Quiver builds for;
    // one-byte types may carry `|`, `<` or `=`.
    let (order, code) = descr.split_at(1.min(descr.len()));
    Some(match (order, code) {
        ("<" | "=", "f4") => Scalar::Element(ElementType::F32),
        ("<" | "=", "f8") => Scalar::Element(ElementType::F64),
        ("<" | "=", "f2") => Scalar::Element(ElementType::F16),
        ("|" | "<" | "=", "u1") => Scalar::Element(ElementType::U8),
        ("|" | "<" | "=", "i1") => Scalar::Element(ElementType::I8),
        ("<" | "=", "u2") => Scalar::Element(ElementType::Bf16),
        ("<" | "=", "i4") => Scalar::I32,
        ("<" | "=", "u8") => Scalar::U64,
        _ => return None,
    })
}

/// A parsed `.npy` header.
#[derive(Debug)]
struct Header {
    scalar: Scalar,
    shape: Vec<u64>,
    data_offset: u64,
}

fn parse_header(path: &Path, input: &mut impl Read) -> Result<Header, FormatError> {
    let mut lead = [0u8; 8];
    let got = read_full(input, &mut lead).map_err(|e| FormatError::io(path, e))?;
    if got < 8 || &lead[..6] != MAGIC {
        return Err(FormatError::malformed(path, 0, "not an .npy file (no \\x93NUMPY magic)"));
    }
    let (len_bytes, version) = match lead[6] {
        1 => (2, 1),
        2 | 3 => (4, lead[6]),
        v => {
            return Err(FormatError::unsupported(
                path,
                format!(".npy format version {v}.{} is not supported", lead[7]),
            ));
        }
    };
    let mut len = [0u8; 4];
    if read_full(input, &mut len[..len_bytes]).map_err(|e| FormatError::io(path, e))? < len_bytes {
        return Err(FormatError::malformed(path, 8, "the file ends inside the header length"));
    }
    let header_len = u32::from_le_bytes(len) as usize;
    if header_len > MAX_HEADER_BYTES {
        return Err(FormatError::malformed(path, 8, format!("a {header_len}-byte header is implausible")));
    }
    let mut text = vec![0u8; header_len];
    if read_full(input, &mut text).map_err(|e| FormatError::io(path, e))? < header_len {
        return Err(FormatError::malformed(path, 8 + len_bytes as u64, "the file ends inside the header"));
    }
    let start = 8 + len_bytes as u64;
    let text = match version {
        3 => String::from_utf8(text).ok(),
        _ => text.is_ascii().then(|| String::from_utf8(text).expect("ASCII is UTF-8")),
    }
    .ok_or_else(|| FormatError::malformed(path, start, "the header is not text"))?;
    let bad = |why: &str| FormatError::malformed(path, start, format!("{why} in the header {:?}", text.trim_end()));
    let descr = dict_value(&text, "descr").ok_or_else(|| bad("no 'descr'"))?;
    let descr = descr.trim().trim_matches(|c| c == '\'' || c == '"');
    let fortran = dict_value(&text, "fortran_order").ok_or_else(|| bad("no 'fortran_order'"))?.trim().to_owned();
    let shape = dict_value(&text, "shape").ok_or_else(|| bad("no 'shape'"))?;
    let shape: Vec<u64> = shape
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| bad("a shape that is not a tuple"))?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<u64>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad("a shape that is not integers"))?;
    match fortran.as_str() {
        "False" => {}
        "True" => {
            return Err(FormatError::unsupported(
                path,
                "the array is in Fortran order; save it in C order (numpy.ascontiguousarray) first",
            ));
        }
        _ => return Err(bad("a 'fortran_order' that is neither True nor False")),
    }
    let scalar = scalar_of(descr).ok_or_else(|| {
        FormatError::unsupported(
            path,
            format!(
                "dtype {descr:?} is not one Quiver reads (little-endian float32, float64, float16, uint8, int8; \
                 int32 and uint64 for ids); convert it with astype first"
            ),
        )
    })?;
    Ok(Header { scalar, shape, data_offset: start + header_len as u64 })
}

/// The text after `'key':` in a dict literal, up to the comma that ends the
/// value (a tuple's commas are inside its parentheses).
fn dict_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let at = text.find(&format!("'{key}'")).or_else(|| text.find(&format!("\"{key}\"")))?;
    let rest = &text[at + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?;
    let mut depth = 0i32;
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(&rest[..i]),
            _ => {}
        }
    }
    None
}

/// Reads the rows of a 2-D `.npy` array a batch at a time (or the values of
/// a 1-D one, as rows of one element).
#[derive(Debug)]
pub struct NpyReader {
    path: PathBuf,
    input: BufReader<File>,
    scalar: Scalar,
    dim: usize,
    rows: u64,
    data_offset: u64,
    rows_read: u64,
}

impl NpyReader {
    /// Opens `path` and reads its header. The file must hold every byte the
    /// header's shape claims, or it is refused as truncated before any row
    /// is read.
    pub fn open(path: &Path) -> Result<Self, FormatError> {
        let file = File::open(path).map_err(|e| FormatError::io(path, e))?;
        let len = file.metadata().map_err(|e| FormatError::io(path, e))?.len();
        let mut input = BufReader::with_capacity(1 << 20, file);
        let header = parse_header(path, &mut input)?;
        let (rows, dim) = match header.shape[..] {
            [rows, dim] => (rows, dim),
            [rows] => (rows, 1),
            _ => {
                return Err(FormatError::unsupported(
                    path,
                    format!("the array has shape {:?}; vectors are a 2-D (rows, dim) array", header.shape),
                ));
            }
        };
        let dim = usize::try_from(dim)
            .ok()
            .filter(|&d| d > 0)
            .ok_or_else(|| FormatError::unsupported(path, format!("rows of {dim} elements cannot be vectors")))?;
        let need = rows
            .checked_mul(dim as u64 * header.scalar.size_bytes() as u64)
            .and_then(|b| b.checked_add(header.data_offset))
            .ok_or_else(|| FormatError::malformed(path, 8, "the shape's byte size overflows"))?;
        if len < need {
            let row_bytes = dim as u64 * header.scalar.size_bytes() as u64;
            let whole = (len.saturating_sub(header.data_offset)) / row_bytes;
            return Err(FormatError::malformed(
                path,
                header.data_offset + whole * row_bytes,
                format!("the header claims {rows} rows but the file ends inside row {whole} ({len} of {need} bytes)"),
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            input,
            scalar: header.scalar,
            dim,
            rows,
            data_offset: header.data_offset,
            rows_read: 0,
        })
    }
}

impl ReadRows for NpyReader {
    fn shape(&self) -> FileShape {
        FileShape { format: Format::Npy, dim: self.dim, element: self.scalar, rows: Some(self.rows) }
    }

    fn read_rows(&mut self, max_rows: usize, out: &mut [u8], _ids: &mut Vec<u64>) -> Result<usize, FormatError> {
        let row = self.dim * self.scalar.size_bytes();
        let rows = (max_rows as u64).min(self.rows - self.rows_read) as usize;
        let want = &mut out[..rows * row];
        let got = read_full(&mut self.input, want).map_err(|e| FormatError::io(&self.path, e))?;
        if got < want.len() {
            // The length was checked at open: the file shrank since.
            return Err(FormatError::malformed(
                &self.path,
                self.offset_bytes() + got as u64,
                "the file ended early (was it truncated while being read?)",
            ));
        }
        self.rows_read += rows as u64;
        Ok(rows)
    }

    fn offset_bytes(&self) -> u64 {
        self.data_offset + self.rows_read * (self.dim * self.scalar.size_bytes()) as u64
    }

    fn skip_rows(&mut self, rows: u64) -> Result<(), FormatError> {
        self.rows_read = self.rows_read.saturating_add(rows).min(self.rows);
        self.input.seek(SeekFrom::Start(self.offset_bytes())).map_err(|e| FormatError::io(&self.path, e))?;
        Ok(())
    }
}

/// Writes a `.npy` file of `rows` rows of `dim` elements (version 1.0, the
/// header padded so the data starts 64-byte aligned, as numpy does).
#[derive(Debug)]
pub struct NpyWriter {
    file: TempFile,
    output: BufWriter<File>,
    row_bytes: usize,
    rows: u64,
    rows_written: u64,
    written: u64,
}

impl NpyWriter {
    /// Starts `path` (through `<path>.tmp`). `dim` is `None` for a 1-D array
    /// (an id column). The row count is part of the header, so the caller
    /// must write exactly `rows` rows before `finish`.
    pub fn create(path: &Path, scalar: Scalar, dim: Option<usize>, rows: u64) -> Result<Self, FormatError> {
        let descr = descr_of(scalar).ok_or_else(|| {
            FormatError::unsupported(path, format!("numpy has no {} dtype; export to another format", scalar.name()))
        })?;
        let shape = match dim {
            Some(d) => format!("({rows}, {d})"),
            None => format!("({rows},)"),
        };
        let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        // magic (6) + version (2) + length (2) + header, ending in '\n',
        // padded with spaces to a multiple of 64.
        let total = (10 + header.len() + 1).next_multiple_of(64);
        header.push_str(&" ".repeat(total - 10 - header.len() - 1));
        header.push('\n');
        let len = u16::try_from(header.len())
            .map_err(|_| FormatError::unsupported(path, "the header does not fit a version 1.0 file"))?;
        let (file, handle) = TempFile::create(path)?;
        let mut output = BufWriter::with_capacity(1 << 20, handle);
        output
            .write_all(MAGIC)
            .and_then(|()| output.write_all(&[1, 0]))
            .and_then(|()| output.write_all(&len.to_le_bytes()))
            .and_then(|()| output.write_all(header.as_bytes()))
            .map_err(|e| FormatError::io(file.path(), e))?;
        Ok(Self {
            file,
            output,
            row_bytes: dim.unwrap_or(1) * scalar.size_bytes(),
            rows,
            rows_written: 0,
            written: total as u64,
        })
    }
}

impl WriteRows for NpyWriter {
    fn write_rows(&mut self, _ids: &[u64], bytes: &[u8]) -> Result<(), FormatError> {
        assert!(bytes.len().is_multiple_of(self.row_bytes), "whole rows only");
        self.output.write_all(bytes).map_err(|e| FormatError::io(self.file.path(), e))?;
        self.rows_written += (bytes.len() / self.row_bytes) as u64;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<u64, FormatError> {
        let this = *self;
        if this.rows_written != this.rows {
            return Err(FormatError::unsupported(
                this.file.path(),
                format!("{} rows were written but the header promises {}", this.rows_written, this.rows),
            ));
        }
        let handle = this.output.into_inner().map_err(|e| FormatError::io(this.file.path(), e.into_error()))?;
        this.file.commit(handle)?;
        Ok(this.written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the dict parser finds each key whatever the order and spacing
    // numpy versions use, and keeps a tuple's commas inside the shape.
    #[test]
    fn dict_values_are_found_in_any_order() {
        let text = "{'shape': (3, 4), 'fortran_order': False, 'descr': '<f4', }";
        assert_eq!(dict_value(text, "shape"), Some(" (3, 4)"));
        assert_eq!(dict_value(text, "descr"), Some(" '<f4'"));
        assert_eq!(dict_value("{\"descr\":'|u1'}", "descr"), Some("'|u1'"));
        assert_eq!(dict_value(text, "missing"), None);
    }

    // Proves every dtype Quiver writes reads back as itself, and a
    // big-endian one is not taken for little-endian.
    #[test]
    fn descrs_round_trip_and_big_endian_is_refused() {
        for e in
            [ElementType::F32, ElementType::F64, ElementType::F16, ElementType::Bf16, ElementType::U8, ElementType::I8]
        {
            assert_eq!(descr_of(Scalar::Element(e)).and_then(scalar_of), Some(Scalar::Element(e)));
        }
        assert_eq!(descr_of(Scalar::Element(ElementType::Bf16)), Some("<u2"));
        assert_eq!(scalar_of(">f4"), None);
        assert_eq!(scalar_of(">u2"), None);
    }
}
