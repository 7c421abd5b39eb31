//! Arguments in, arrays out: NumPy input read as Rust slices (zero-copy
//! when it already has the store's layout, converted once otherwise) and
//! NumPy arrays out (owned results here, views over snapshots in `view`).
//!
//! The conversion policy (which dtypes convert, which are refused) lives
//! in Python, in `quiver/_convert.py`, where NumPy's casting rules are at
//! hand; this module only calls it when the fast path does not apply.

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1};
use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use quiver::Error;

use crate::dtype::{DType, PyElement};
use crate::errors;
use crate::view;

static AS_VECTORS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static AS_IDS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `values` as a new 1-D NumPy array that takes the vector over (no copy).
pub(crate) fn owned<T: numpy::Element>(py: Python<'_>, values: Vec<T>) -> Bound<'_, PyAny> {
    PyArray1::from_vec(py, values).into_any()
}

/// `values` as a new `(rows, cols)` NumPy array that takes the vector over.
pub(crate) fn owned_rows<T: numpy::Element>(
    py: Python<'_>,
    values: Vec<T>,
    rows: usize,
    cols: usize,
) -> Bound<'_, PyAny> {
    let array = Array2::from_shape_vec((rows, cols), values).expect("rows * cols values");
    array.into_pyarray(py).into_any()
}

/// The shapes an argument may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// One vector, `(dim,)`.
    One,
    /// A batch, `(n, dim)`.
    Batch,
    /// Either.
    Either,
}

/// An input array held as a buffer whose elements are `dtype`, C-contiguous
/// and of a checked shape: `rows` vectors of `cols` elements.
pub(crate) struct Vectors {
    buffer: PyUntypedBuffer,
    /// The number of vectors (1 for a single vector).
    pub(crate) rows: usize,
    /// Whether the argument was one vector rather than a batch.
    pub(crate) single: bool,
}

impl Vectors {
    /// `obj` as vectors of `dim` elements of `dtype`, of the given `shape`. Zero-copy when `obj` is a
    /// C-contiguous buffer of `dtype`; converted once otherwise, or
    /// refused with `TypeError` (an unconvertible dtype) or
    /// `quiver.DimensionMismatch` (a wrong shape).
    pub(crate) fn extract(obj: &Bound<'_, PyAny>, dtype: DType, dim: usize, shape: Shape) -> PyResult<Self> {
        let buffer = match PyUntypedBuffer::get(obj) {
            Ok(b) if view::readable(&b, dtype) => b,
            _ => {
                let py = obj.py();
                let convert = AS_VECTORS.import(py, "quiver._convert", "as_vectors")?;
                let converted = PyUntypedBuffer::get(&convert.call1((obj, dtype.name()))?)?;
                if !view::readable(&converted, dtype) {
                    return Err(PyTypeError::new_err(format!(
                        "the vectors could not be converted to C-contiguous {}",
                        dtype.numpy_name()
                    )));
                }
                converted
            }
        };
        let (rows, single) = match (shape, buffer.shape()) {
            (Shape::One | Shape::Either, &[n]) if n == dim => (1, true),
            (Shape::Batch | Shape::Either, &[n, d]) if d == dim => (n, false),
            (wanted, s) => return Err(shape_error(dim, s, wanted)),
        };
        Ok(Self { buffer, rows, single })
    }

    /// The elements, row after row, zero-copy.
    pub(crate) fn as_slice<T: PyElement>(&self) -> &[T] {
        view::elements::<T>(&self.buffer).expect("the buffer's format and layout were checked by extract")
    }
}

/// `quiver.DimensionMismatch` for an argument of the wrong shape: the
/// store's message when only the vector length is wrong, else one that
/// names the shape wanted.
fn shape_error(dim: usize, shape: &[usize], wanted: Shape) -> PyErr {
    let (ndims, wanted): (&[usize], &str) = match wanted {
        Shape::One => (&[1], "a vector of shape (dim,)"),
        Shape::Batch => (&[2], "a batch of shape (n, dim)"),
        Shape::Either => (&[1, 2], "a vector (dim,) or a batch (n, dim)"),
    };
    if let (true, Some(&actual)) = (ndims.contains(&shape.len()), shape.last()) {
        return errors::to_py(Error::DimensionMismatch {
            expected: dim.try_into().unwrap_or(u32::MAX),
            actual: actual.try_into().unwrap_or(u32::MAX),
        });
    }
    errors::raise("DimensionMismatch", format!("expected {wanted} with dim = {dim}, but the array has shape {shape:?}"))
}

/// A 1-D array of ids held as a buffer of `u64`s, zero-copy when `obj`
/// already is one.
pub(crate) struct Ids {
    buffer: PyUntypedBuffer,
}

impl Ids {
    /// `obj` as ids: a C-contiguous `uint64` array as is; other integer
    /// sequences converted once; negative ids, floats and strings refused.
    pub(crate) fn extract(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        let buffer = match PyUntypedBuffer::get(obj) {
            Ok(b) if b.dimensions() == 1 && view::readable_u64(&b) => b,
            _ => {
                let py = obj.py();
                let convert = AS_IDS.import(py, "quiver._convert", "as_ids")?;
                let converted = PyUntypedBuffer::get(&convert.call1((obj,))?)?;
                if converted.dimensions() != 1 || !view::readable_u64(&converted) {
                    return Err(PyTypeError::new_err("the ids could not be converted to a 1-D uint64 array"));
                }
                converted
            }
        };
        Ok(Self { buffer })
    }

    /// The ids, zero-copy.
    pub(crate) fn as_slice(&self) -> &[u64] {
        view::u64s(&self.buffer).expect("the ids' format and layout were checked by extract")
    }
}
