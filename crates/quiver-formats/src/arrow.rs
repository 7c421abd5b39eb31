//! Arrow IPC (file and stream) and, with the `parquet` feature, Parquet:
//! tables of the schema `id: uint64, vector: fixed_size_list<item, dim>`,
//! the shape Spark, DuckDB, Polars, pandas and LanceDB exchange. On import a
//! `list<item>` (or `large_list`) vector column is taken too when every
//! row has the same length; the columns are found by the names the caller
//! gives ([`TableColumns`]), or else by name (`id`, `vector`) or, failing
//! that, as the first id-typed integer column and the first list column.
//! Nulls are refused, with their row. Exports write `id` and `vector`.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, FixedSizeListArray, GenericListArray, OffsetSizeTrait, RecordBatch, UInt64Array};
use arrow_buffer::Buffer;
use arrow_data::ArrayData;
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use quiver_storage::ElementType;

use crate::error::FormatError;
use crate::transfer::TempFile;
use crate::{FileShape, Format, ReadRows, Scalar, TableColumns, WriteRows};

/// The record batches of a table, in order.
type Batches = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>>>;
/// An opened table: its schema, its batches and its row count if known.
type Opened = (SchemaRef, Batches, Option<u64>);

/// Rows per record batch written.
const WRITE_BATCH_ROWS: usize = 64 * 1024;

fn data_type_of(scalar: Scalar) -> Option<DataType> {
    Some(match scalar {
        Scalar::Element(ElementType::F32) => DataType::Float32,
        Scalar::Element(ElementType::F64) => DataType::Float64,
        Scalar::Element(ElementType::F16) => DataType::Float16,
        Scalar::Element(ElementType::U8) => DataType::UInt8,
        Scalar::Element(ElementType::I8) => DataType::Int8,
        _ => return None,
    })
}

fn scalar_of(data_type: &DataType) -> Option<Scalar> {
    Some(Scalar::Element(match data_type {
        DataType::Float32 => ElementType::F32,
        DataType::Float64 => ElementType::F64,
        DataType::Float16 => ElementType::F16,
        DataType::UInt8 => ElementType::U8,
        DataType::Int8 => ElementType::I8,
        _ => return None,
    }))
}

/// Where the two columns are and what the vectors are.
#[derive(Debug, Clone, Copy)]
struct Columns {
    id: usize,
    vector: usize,
    scalar: Scalar,
    /// Known from a fixed-size list's type; from the first row otherwise.
    dim: Option<usize>,
}

/// Id columns: the integer types whose every value is a `u64` (`int64`
/// too, but a negative value is refused with its row when read).
fn is_id(f: &Field) -> bool {
    matches!(f.data_type(), DataType::UInt64 | DataType::Int64 | DataType::UInt32)
}

fn is_list(f: &Field) -> bool {
    matches!(f.data_type(), DataType::FixedSizeList(..) | DataType::List(_) | DataType::LargeList(_))
}

/// The schema as `name: type` pairs, for messages.
fn describe(schema: &Schema) -> String {
    let fields: Vec<String> = schema.fields().iter().map(|f| format!("{}: {}", f.name(), f.data_type())).collect();
    format!("[{}]", fields.join(", "))
}

/// The position of the column the caller named for `role`, which must
/// exist and be of a type `fits` accepts (`wanted` says which).
fn named_column(
    path: &Path,
    schema: &Schema,
    name: &str,
    role: &str,
    fits: fn(&Field) -> bool,
    wanted: &str,
) -> Result<usize, FormatError> {
    let Some(at) = schema.fields().iter().position(|f| f.name() == name) else {
        return Err(FormatError::unsupported(
            path,
            format!("the {role} column `{name}` is not in the schema {}", describe(schema)),
        ));
    };
    let field = &schema.fields()[at];
    if !fits(field) {
        return Err(FormatError::unsupported(
            path,
            format!(
                "the {role} column `{name}` is of type {}, not {wanted} (the schema is {})",
                field.data_type(),
                describe(schema)
            ),
        ));
    }
    Ok(at)
}

fn find_columns(path: &Path, schema: &Schema, names: &TableColumns) -> Result<Columns, FormatError> {
    let fields = schema.fields();
    let id = match &names.id {
        Some(name) => named_column(path, schema, name, "id", is_id, "uint64, uint32 or int64")?,
        None => fields
            .iter()
            .position(|f| f.name() == "id" && is_id(f))
            .or_else(|| fields.iter().position(|f| is_id(f)))
            .ok_or_else(|| {
                FormatError::unsupported(
                    path,
                    format!("no id column (uint64, uint32 or int64) in the schema {}", describe(schema)),
                )
            })?,
    };
    let vector = match &names.vector {
        Some(name) => named_column(path, schema, name, "vector", is_list, "a fixed_size_list, list or large_list")?,
        None => fields
            .iter()
            .position(|f| f.name() == "vector" && is_list(f))
            .or_else(|| fields.iter().position(|f| is_list(f)))
            .ok_or_else(|| {
                FormatError::unsupported(path, format!("no list column of vectors in the schema {}", describe(schema)))
            })?,
    };
    let (item, dim) = match fields[vector].data_type() {
        DataType::FixedSizeList(item, n) => (item.data_type(), usize::try_from(*n).ok()),
        DataType::List(item) | DataType::LargeList(item) => (item.data_type(), None),
        _ => unreachable!("is_list"),
    };
    let scalar = scalar_of(item).ok_or_else(|| {
        FormatError::unsupported(
            path,
            format!(
                "the vector column `{}` holds items of type {item}, not one Quiver stores (float32, float64, float16, uint8, int8)",
                fields[vector].name()
            ),
        )
    })?;
    Ok(Columns { id, vector, scalar, dim })
}

/// A table reader: the record batches of an IPC file or stream or a
/// Parquet file, cut into rows.
struct TableReader {
    path: PathBuf,
    format: Format,
    batches: Batches,
    columns: Columns,
    dim: usize,
    rows: Option<u64>,
    /// The batch being consumed: its ids, its vectors' bytes, the next row.
    ids: Vec<u64>,
    values: Vec<u8>,
    at: usize,
    /// Rows handed out or skipped before the current batch.
    row: u64,
}

pub(crate) fn open_reader(path: &Path, format: Format, names: &TableColumns) -> Result<Box<dyn ReadRows>, FormatError> {
    let file = File::open(path).map_err(|e| FormatError::io(path, e))?;
    let arrow = |e: ArrowError| FormatError::malformed(path, 0, format!("not a readable {} file: {e}", format.name()));
    let (schema, batches, rows): Opened = match format {
        Format::ArrowFile => {
            let reader = arrow_ipc::reader::FileReader::try_new(BufReader::new(file), None).map_err(arrow)?;
            (reader.schema(), Box::new(reader), None)
        }
        Format::ArrowStream => {
            let reader = arrow_ipc::reader::StreamReader::try_new(BufReader::new(file), None).map_err(arrow)?;
            (reader.schema(), Box::new(reader), None)
        }
        Format::Parquet => parquet_reader(path, file)?,
        _ => unreachable!("only table formats come here"),
    };
    let columns = find_columns(path, &schema, names)?;
    let mut reader = TableReader {
        path: path.to_path_buf(),
        format,
        batches,
        columns,
        dim: columns.dim.unwrap_or(0),
        rows,
        ids: Vec::new(),
        values: Vec::new(),
        at: 0,
        row: 0,
    };
    if columns.dim.is_none() {
        // A list column: the first row says the dimension.
        reader.next_batch()?;
    }
    if reader.dim == 0 {
        return Err(FormatError::unsupported(path, "the table has no row to take a dimension from"));
    }
    Ok(Box::new(reader))
}

#[cfg(feature = "parquet")]
fn parquet_reader(path: &Path, file: File) -> Result<Opened, FormatError> {
    use arrow_array::RecordBatchReader;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let bad =
        |e: parquet::errors::ParquetError| FormatError::malformed(path, 0, format!("not a readable Parquet file: {e}"));
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(bad)?.with_batch_size(8192);
    let rows = u64::try_from(builder.metadata().file_metadata().num_rows()).ok();
    let reader = builder.build().map_err(bad)?;
    Ok((reader.schema(), Box::new(reader), rows))
}

#[cfg(not(feature = "parquet"))]
fn parquet_reader(path: &Path, _: File) -> Result<Opened, FormatError> {
    Err(FormatError::unsupported(path, "this build has no Parquet support (the `parquet` feature)"))
}

impl TableReader {
    fn bad_row(&self, row: u64, reason: impl Into<String>) -> FormatError {
        FormatError::BadRow { path: self.path.clone(), row, reason: reason.into() }
    }

    /// Loads the next non-empty batch; `false` at the end.
    fn next_batch(&mut self) -> Result<bool, FormatError> {
        self.row += self.ids.len() as u64;
        self.ids.clear();
        self.values.clear();
        self.at = 0;
        loop {
            let Some(batch) = self.batches.next() else { return Ok(false) };
            let batch = batch
                .map_err(|e| self.bad_row(self.row, format!("the {} file cannot be read: {e}", self.format.name())))?;
            if batch.num_rows() == 0 {
                continue;
            }
            self.take(&batch)?;
            return Ok(true);
        }
    }

    fn take(&mut self, batch: &RecordBatch) -> Result<(), FormatError> {
        let first = self.row;
        let ids = batch.column(self.columns.id);
        if let Some(i) = (0..ids.len()).find(|&i| ids.is_null(i)) {
            return Err(self.bad_row(first + i as u64, "the id is null"));
        }
        let ids = arrow_cast_ids(ids).map_err(|(i, why)| self.bad_row(first + i as u64, why))?;
        let vectors = batch.column(self.columns.vector);
        if let Some(i) = (0..vectors.len()).find(|&i| vectors.is_null(i)) {
            return Err(self.bad_row(first + i as u64, "the vector is null"));
        }
        let (child, starts): (ArrayRef, Vec<usize>) = match vectors.data_type() {
            DataType::FixedSizeList(..) => {
                let list = vectors.as_fixed_size_list();
                (Arc::clone(list.values()), (0..list.len()).map(|i| list.value_offset_at(i)).collect())
            }
            DataType::List(_) => self.list_starts(vectors.as_list::<i32>(), first)?,
            DataType::LargeList(_) => self.list_starts(vectors.as_list::<i64>(), first)?,
            other => return Err(self.bad_row(first, format!("the vector column changed type to {other}"))),
        };
        if child.null_count() > 0 {
            let at = starts.iter().position(|&s| (s..s + self.dim).any(|j| child.is_null(j))).unwrap_or(0);
            return Err(self.bad_row(first + at as u64, "the vector holds a null element"));
        }
        let width = self.columns.scalar.size_bytes();
        let data = child.to_data();
        let bytes = &data.buffers()[0].as_slice()[data.offset() * width..];
        self.values.reserve(starts.len() * self.dim * width);
        for &s in &starts {
            self.values.extend_from_slice(&bytes[s * width..(s + self.dim) * width]);
        }
        self.ids = ids;
        Ok(())
    }
}

impl TableReader {
    /// The child array and each row's first element in it, for a
    /// variable-length list column whose rows must all hold `dim` elements
    /// (the first row sets `dim` when the schema does not).
    fn list_starts<O: OffsetSizeTrait>(
        &mut self,
        list: &GenericListArray<O>,
        first: u64,
    ) -> Result<(ArrayRef, Vec<usize>), FormatError> {
        let offsets = list.value_offsets();
        let len = |i: usize| (offsets[i + 1] - offsets[i]).as_usize();
        if self.dim == 0 {
            self.dim = len(0);
        }
        if let Some(i) = (0..list.len()).find(|&i| len(i) != self.dim) {
            return Err(self.bad_row(first + i as u64, format!("the vector has {} elements, not {}", len(i), self.dim)));
        }
        Ok((Arc::clone(list.values()), offsets[..list.len()].iter().map(|o| o.as_usize()).collect()))
    }
}

/// The id column as `u64`, refusing negative values.
fn arrow_cast_ids(ids: &ArrayRef) -> Result<Vec<u64>, (usize, String)> {
    use arrow_array::types::{Int64Type, UInt32Type, UInt64Type};
    Ok(match ids.data_type() {
        DataType::UInt64 => ids.as_primitive::<UInt64Type>().values().to_vec(),
        DataType::UInt32 => ids.as_primitive::<UInt32Type>().values().iter().map(|&v| u64::from(v)).collect(),
        DataType::Int64 => ids
            .as_primitive::<Int64Type>()
            .values()
            .iter()
            .enumerate()
            .map(|(i, &v)| u64::try_from(v).map_err(|_| (i, format!("the id {v} is negative"))))
            .collect::<Result<_, _>>()?,
        other => return Err((0, format!("the id column changed type to {other}"))),
    })
}

impl ReadRows for TableReader {
    fn shape(&self) -> FileShape {
        FileShape { format: self.format, dim: self.dim, element: self.columns.scalar, rows: self.rows }
    }

    fn has_ids(&self) -> bool {
        true
    }

    fn read_rows(&mut self, max_rows: usize, out: &mut [u8], ids: &mut Vec<u64>) -> Result<usize, FormatError> {
        ids.clear();
        let row_bytes = self.dim * self.columns.scalar.size_bytes();
        let mut done = 0;
        while done < max_rows {
            if self.at == self.ids.len() && !self.next_batch()? {
                break;
            }
            let n = (self.ids.len() - self.at).min(max_rows - done);
            out[done * row_bytes..(done + n) * row_bytes]
                .copy_from_slice(&self.values[self.at * row_bytes..(self.at + n) * row_bytes]);
            ids.extend_from_slice(&self.ids[self.at..self.at + n]);
            self.at += n;
            done += n;
        }
        Ok(done)
    }

    fn offset_bytes(&self) -> u64 {
        // Tables are decoded, not read byte for byte: report rows instead.
        self.row + self.at as u64
    }

    fn skip_rows(&mut self, rows: u64) -> Result<(), FormatError> {
        let mut left = rows;
        while left > 0 {
            if self.at == self.ids.len() && !self.next_batch()? {
                return Ok(());
            }
            let n = ((self.ids.len() - self.at) as u64).min(left);
            self.at += n as usize;
            left -= n;
        }
        Ok(())
    }
}

/// The sinks: an IPC file, an IPC stream, a Parquet file.
enum Sink {
    File(arrow_ipc::writer::FileWriter<File>),
    Stream(arrow_ipc::writer::StreamWriter<File>),
    #[cfg(feature = "parquet")]
    Parquet(parquet::arrow::ArrowWriter<File>),
}

struct TableWriter {
    file: TempFile,
    handle: File,
    sink: Sink,
    schema: SchemaRef,
    item: Arc<Field>,
    dim: usize,
    width: usize,
    ids: Vec<u64>,
    values: Vec<u8>,
}

pub(crate) fn create_writer(
    path: &Path,
    format: Format,
    scalar: Scalar,
    dim: usize,
) -> Result<Box<dyn WriteRows>, FormatError> {
    let item_type = data_type_of(scalar).ok_or_else(|| {
        FormatError::unsupported(path, format!("Arrow has no {} type; export to another format", scalar.name()))
    })?;
    let size = i32::try_from(dim).map_err(|_| FormatError::unsupported(path, "the dimension does not fit Arrow"))?;
    // A nullable item field, as pyarrow, Polars and LanceDB write it (no
    // element is ever null: the import refuses them).
    let item = Arc::new(Field::new("item", item_type, true));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new("vector", DataType::FixedSizeList(Arc::clone(&item), size), false),
    ]));
    let (file, handle) = TempFile::create(path)?;
    let clone = handle.try_clone().map_err(|e| FormatError::io(file.path(), e))?;
    let bad = |e: String| FormatError::unsupported(path, format!("cannot start the {} file: {e}", format.name()));
    let sink = match format {
        Format::ArrowFile => {
            Sink::File(arrow_ipc::writer::FileWriter::try_new(clone, &schema).map_err(|e| bad(e.to_string()))?)
        }
        Format::ArrowStream => {
            Sink::Stream(arrow_ipc::writer::StreamWriter::try_new(clone, &schema).map_err(|e| bad(e.to_string()))?)
        }
        #[cfg(feature = "parquet")]
        Format::Parquet => Sink::Parquet(
            parquet::arrow::ArrowWriter::try_new(clone, Arc::clone(&schema), None).map_err(|e| bad(e.to_string()))?,
        ),
        _ => return Err(FormatError::unsupported(path, format!("this build cannot write {}", format.name()))),
    };
    Ok(Box::new(TableWriter {
        file,
        handle,
        sink,
        schema,
        item,
        dim,
        width: scalar.size_bytes(),
        ids: Vec::new(),
        values: Vec::new(),
    }))
}

impl TableWriter {
    fn flush_batch(&mut self) -> Result<(), FormatError> {
        if self.ids.is_empty() {
            return Ok(());
        }
        let rows = self.ids.len();
        let fail = |e: ArrowError| FormatError::unsupported(self.file.path(), format!("building a record batch: {e}"));
        let values = ArrayData::builder(self.item.data_type().clone())
            .len(rows * self.dim)
            .add_buffer(Buffer::from_vec(std::mem::take(&mut self.values)))
            .build()
            .map_err(fail)?;
        let vectors =
            FixedSizeListArray::try_new(Arc::clone(&self.item), self.dim as i32, arrow_array::make_array(values), None)
                .map_err(fail)?;
        let ids = UInt64Array::from(std::mem::take(&mut self.ids));
        let batch =
            RecordBatch::try_new(Arc::clone(&self.schema), vec![Arc::new(ids), Arc::new(vectors)]).map_err(fail)?;
        let path = self.file.path().to_path_buf();
        let write = |e: String| FormatError::Io { path: path.clone(), source: std::io::Error::other(e) };
        match &mut self.sink {
            Sink::File(w) => w.write(&batch).map_err(|e| write(e.to_string())),
            Sink::Stream(w) => w.write(&batch).map_err(|e| write(e.to_string())),
            #[cfg(feature = "parquet")]
            Sink::Parquet(w) => w.write(&batch).map_err(|e| write(e.to_string())),
        }
    }
}

impl WriteRows for TableWriter {
    fn write_rows(&mut self, ids: &[u64], bytes: &[u8]) -> Result<(), FormatError> {
        let row = self.dim * self.width;
        assert_eq!(ids.len() * row, bytes.len(), "one id per row");
        for (id, v) in ids.iter().zip(bytes.chunks_exact(row)) {
            self.ids.push(*id);
            self.values.extend_from_slice(v);
            if self.ids.len() == WRITE_BATCH_ROWS {
                self.flush_batch()?;
            }
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<u64, FormatError> {
        let mut this = *self;
        this.flush_batch()?;
        let path = this.file.path().to_path_buf();
        let write = |e: String| FormatError::Io { path: path.clone(), source: std::io::Error::other(e) };
        match this.sink {
            Sink::File(mut w) => w.finish().map_err(|e| write(e.to_string()))?,
            Sink::Stream(mut w) => w.finish().map_err(|e| write(e.to_string()))?,
            #[cfg(feature = "parquet")]
            Sink::Parquet(w) => {
                w.close().map_err(|e| write(e.to_string()))?;
            }
        }
        let bytes = this.handle.metadata().map_err(|e| FormatError::io(&path, e))?.len();
        this.file.commit(this.handle)?;
        Ok(bytes)
    }
}
