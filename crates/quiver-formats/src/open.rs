//! Opening a file for reading: its format (named by the caller or by the
//! file's extension) and, for Arrow and Parquet tables, which columns hold
//! the ids and the vectors. Opening reads a header (or a table's first
//! batch); it never writes.

use std::path::Path;

use crate::error::FormatError;
use crate::npy::NpyReader;
use crate::vecs::{VecsKind, VecsReader};
use crate::{FileShape, Format, ReadRows};

/// Which columns of an Arrow or Parquet table hold the ids and the vectors,
/// for tables whose columns are not called `id` and `vector`. A name left
/// `None` is looked up as without this: the column of that name, or else
/// the first column of a fitting type. A name given must be a column of the
/// schema, of a fitting type; otherwise opening fails with an error naming
/// the column and the schema.
///
/// Ids may be `uint64`, `uint32` or `int64`: a negative `int64` id is
/// refused with its row when it is read, not wrapped. Vectors may be a
/// `fixed_size_list`, `list` or `large_list` of an element type a store
/// holds. Exports always write the columns `id` and `vector`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableColumns {
    /// The name of the id column.
    pub id: Option<String>,
    /// The name of the vector column.
    pub vector: Option<String>,
}

impl TableColumns {
    /// Whether no name is given (every column found as by default).
    pub fn is_default(&self) -> bool {
        self.id.is_none() && self.vector.is_none()
    }
}

/// How [`open_reader_with`] reads a file, beyond its format.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReaderOptions {
    /// The table columns to read (Arrow and Parquet only).
    pub columns: TableColumns,
}

impl ReaderOptions {
    /// Takes the ids from the table column `name`.
    pub fn id_column(mut self, name: impl Into<String>) -> Self {
        self.columns.id = Some(name.into());
        self
    }

    /// Takes the vectors from the table column `name`.
    pub fn vector_column(mut self, name: impl Into<String>) -> Self {
        self.columns.vector = Some(name.into());
        self
    }
}

/// `format`, or else the one `path`'s extension names; an error that says to
/// name it when neither does.
pub fn format_of(path: &Path, format: Option<Format>) -> Result<Format, FormatError> {
    format.or_else(|| Format::from_path(path)).ok_or_else(|| {
        FormatError::unsupported(
            path,
            "the format is not known from the file name; name it (fvecs, bvecs, ivecs, npy, arrow, arrows, parquet)",
        )
    })
}

/// Opens `path` for reading in `format` (or the one its extension names),
/// a table's columns found by their default names: [`open_reader_with`]
/// with the default [`ReaderOptions`].
pub fn open_reader(path: &Path, format: Option<Format>) -> Result<Box<dyn ReadRows>, FormatError> {
    open_reader_with(path, format, &ReaderOptions::default())
}

/// Opens `path` for reading in `format` (or the one its extension names),
/// as `options` say. Column names are refused for a format without columns
/// (vecs, npy): they would otherwise be silently ignored.
pub fn open_reader_with(
    path: &Path,
    format: Option<Format>,
    options: &ReaderOptions,
) -> Result<Box<dyn ReadRows>, FormatError> {
    let format = format_of(path, format)?;
    if !format.has_ids() && !options.columns.is_default() {
        return Err(FormatError::unsupported(
            path,
            format!("column names apply to Arrow and Parquet tables; a {} file has no columns", format.name()),
        ));
    }
    Ok(match format {
        Format::Npy => Box::new(NpyReader::open(path)?),
        Format::ArrowFile | Format::ArrowStream | Format::Parquet => table_reader(path, format, &options.columns)?,
        vecs => Box::new(VecsReader::open(path, VecsKind::of(vecs).expect("the other formats are vecs"))?),
    })
}

#[cfg(feature = "arrow")]
fn table_reader(path: &Path, format: Format, columns: &TableColumns) -> Result<Box<dyn ReadRows>, FormatError> {
    crate::arrow::open_reader(path, format, columns)
}

#[cfg(not(feature = "arrow"))]
fn table_reader(path: &Path, format: Format, _: &TableColumns) -> Result<Box<dyn ReadRows>, FormatError> {
    Err(FormatError::unsupported(path, format!("this build has no {} support (the `arrow` feature)", format.name())))
}

/// What `path` holds, from its header, without reading any row.
pub fn probe(path: &Path, format: Option<Format>) -> Result<FileShape, FormatError> {
    Ok(open_reader(path, format)?.shape())
}
