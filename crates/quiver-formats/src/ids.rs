//! Ids from beside the file: a vecs or npy file of vectors read in step
//! with a 1-D `uint64` `.npy` of ids (what [`export_ids`](crate::export_ids)
//! writes), or with ids the caller already holds.

use std::path::{Path, PathBuf};

use crate::error::FormatError;
use crate::npy::NpyReader;
use crate::{FileShape, ReadRows, Scalar};

/// Where [`WithIds`] takes row `r`'s id from.
enum Source {
    /// A 1-D `uint64` `.npy`, read a batch at a time.
    File { reader: NpyReader, words: Vec<u8> },
    /// Ids in memory, from `next`.
    Held { ids: Vec<u64>, next: usize },
}

/// A [`ReadRows`] whose rows come from a file without an id column and
/// whose ids come from a second source, row for row. Both must hold the
/// same number of rows: a count that differs is refused when it is known
/// up front (npy and vecs headers and lengths) and is an error at the row
/// where one source ends otherwise.
pub struct WithIds {
    rows: Box<dyn ReadRows>,
    ids: Source,
    /// What the ids came from, for messages.
    ids_name: PathBuf,
}

impl WithIds {
    /// `rows` with the ids of the 1-D `uint64` `.npy` at `ids_path`.
    pub fn from_file(rows: Box<dyn ReadRows>, ids_path: &Path) -> Result<Self, FormatError> {
        let reader = NpyReader::open(ids_path)?;
        let shape = reader.shape();
        if shape.element != Scalar::U64 || shape.dim != 1 {
            return Err(FormatError::unsupported(
                ids_path,
                format!(
                    "an ids file is a 1-D uint64 .npy; this one holds rows of {} {} elements",
                    shape.dim,
                    shape.element.name()
                ),
            ));
        }
        check_counts(&rows.shape(), shape.rows, ids_path)?;
        Self::new(rows, Source::File { reader, words: Vec::new() }, ids_path.to_path_buf())
    }

    /// `rows` with `ids[r]` for row `r`.
    pub fn from_ids(rows: Box<dyn ReadRows>, ids: Vec<u64>) -> Result<Self, FormatError> {
        let name = PathBuf::from("the ids given");
        check_counts(&rows.shape(), Some(ids.len() as u64), &name)?;
        Self::new(rows, Source::Held { ids, next: 0 }, name)
    }

    fn new(rows: Box<dyn ReadRows>, ids: Source, ids_name: PathBuf) -> Result<Self, FormatError> {
        if rows.has_ids() {
            return Err(FormatError::unsupported(
                &ids_name,
                format!(
                    "the {} file carries its own ids; give ids only for a file without them",
                    rows.shape().format.name()
                ),
            ));
        }
        Ok(Self { rows, ids, ids_name })
    }

    /// Reads the next `count` ids into `out`; fewer only where the source
    /// ends.
    fn next_ids(&mut self, count: usize, out: &mut Vec<u64>) -> Result<(), FormatError> {
        out.clear();
        match &mut self.ids {
            Source::File { reader, words } => {
                words.resize(count * 8, 0);
                let got = reader.read_rows(count, words, &mut Vec::new())?;
                out.extend(
                    words[..got * 8].chunks_exact(8).map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes"))),
                );
            }
            Source::Held { ids, next } => {
                let end = (*next + count).min(ids.len());
                out.extend_from_slice(&ids[*next..end]);
                *next = end;
            }
        }
        Ok(())
    }
}

/// Refuses a pair whose row counts are both known and differ.
fn check_counts(rows: &FileShape, ids: Option<u64>, ids_name: &Path) -> Result<(), FormatError> {
    match (rows.rows, ids) {
        (Some(r), Some(i)) if r != i => {
            Err(FormatError::unsupported(ids_name, format!("{i} ids for a {} file of {r} rows", rows.format.name())))
        }
        _ => Ok(()),
    }
}

impl ReadRows for WithIds {
    fn shape(&self) -> FileShape {
        self.rows.shape()
    }

    fn has_ids(&self) -> bool {
        true
    }

    fn read_rows(&mut self, max_rows: usize, out: &mut [u8], ids: &mut Vec<u64>) -> Result<usize, FormatError> {
        let got = self.rows.read_rows(max_rows, out, &mut Vec::new())?;
        self.next_ids(got, ids)?;
        if ids.len() != got {
            return Err(FormatError::unsupported(
                &self.ids_name,
                format!("the ids end {} rows before the vectors do", got - ids.len()),
            ));
        }
        Ok(got)
    }

    fn offset_bytes(&self) -> u64 {
        self.rows.offset_bytes()
    }

    fn skip_rows(&mut self, rows: u64) -> Result<(), FormatError> {
        self.rows.skip_rows(rows)?;
        match &mut self.ids {
            Source::File { reader, .. } => reader.skip_rows(rows),
            Source::Held { ids, next } => {
                *next = usize::try_from(rows).unwrap_or(usize::MAX).min(ids.len());
                Ok(())
            }
        }
    }
}
