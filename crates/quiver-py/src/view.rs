//! The one module of quiver-py with `unsafe` code: NumPy arrays over bytes
//! that Rust owns, and Rust slices over the bytes of NumPy input arrays.
//!
//! **Out (zero-copy views).** [`snapshot_vector`] and [`snapshot_rows`]
//! build NumPy arrays straight over a snapshot's mapped records with
//! NumPy's C API (`PyArray_NewFromDescr` with the data pointer, no
//! `WRITEABLE` flag), and set their base to a [`SnapshotPin`]: a Python
//! object that owns a clone of the `quiver::Snapshot`. A snapshot's slices
//! never change and stay mapped for the snapshot's life (see the
//! `quiver_guard` crate docs), and NumPy keeps an array's base alive for as
//! long as the array or any view of it exists, so the bytes outlive every
//! array over them. Results the binding computes (ids, scores, masks) are
//! handed to NumPy as owned vectors (`numpy::PyArray::from_vec`).
//!
//! **In (zero-copy input).** [`elements`] reads a C-contiguous input buffer
//! of the right format as `&[T]` for as long as the `PyUntypedBuffer`
//! lives (a buffer's memory cannot be freed or resized while it is held).
//! Writes read it with the GIL released. If another Python thread writes
//! to the same array meanwhile, that is a data race on plain bytes the
//! Rust side cannot prevent: the stored vector may mix old and new values
//! (the contract NumPy's own GIL-free operations have; the public
//! docstrings tell callers not to do it), and no read ever leaves the
//! buffer.

#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};
use std::ptr;

use numpy::PyArrayDescr;
use numpy::npyffi::{self, PY_ARRAY_API, npy_intp};
use pyo3::buffer::PyUntypedBuffer;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::dtype::{DType, PyElement, dispatch};
use crate::snapshot::AnySnapshot;

/// The base object of every array over a snapshot's bytes: it keeps the
/// snapshot (and so the mapping and its records) alive.
#[pyclass(module = "quiver", frozen)]
pub(crate) struct SnapshotPin {
    _snapshot: AnySnapshot,
}

/// Vector `id` of `owner` as a read-only 1-D array over its mapped record,
/// or `None` if the snapshot does not hold it.
pub(crate) fn vector_of<'py>(py: Python<'py>, owner: &AnySnapshot, id: u64) -> PyResult<Option<Bound<'py, PyAny>>> {
    dispatch!(AnySnapshot, owner, s, T => match s.get(id) {
        Some(v) => {
            let dims = [v.len() as npy_intp];
            let strides = [size_of::<T>() as npy_intp];
            over_snapshot(py, owner, bytemuck::cast_slice(v), T::DTYPE, &dims, &strides).map(Some)
        }
        None => Ok(None),
    })
}

/// Every slot of `owner` as one read-only `(slot_count, dim)` array over
/// the mapped records (rows a record apart), or `None` when the slots span
/// more than one mapped window.
pub(crate) fn slots_of<'py>(py: Python<'py>, owner: &AnySnapshot) -> PyResult<Option<Bound<'py, PyAny>>> {
    dispatch!(AnySnapshot, owner, s, T => {
        let rows = s.slot_count() as usize;
        let span: &[u8] = if rows == 0 {
            &[]
        } else {
            match s.slot_payloads() {
                Some(span) => span,
                None => return Ok(None),
            }
        };
        let item = size_of::<T>();
        let stride = s.slot_stride_bytes();
        assert!(rows == 0 || span.len() >= (rows - 1) * stride + s.dim() * item, "the span holds every row");
        let dims = [rows as npy_intp, s.dim() as npy_intp];
        let strides = [stride as npy_intp, item as npy_intp];
        over_snapshot(py, owner, span, T::DTYPE, &dims, &strides).map(Some)
    })
}

/// A read-only array of `dtype` with `dims` and byte `strides` whose first
/// element is at the start of `span`, based on a new [`SnapshotPin`] of
/// `owner`. Only [`vector_of`] and [`slots_of`] call it, with a `span` they
/// took from `owner` itself and dims and strides that stay inside it.
fn over_snapshot<'py>(
    py: Python<'py>,
    owner: &AnySnapshot,
    span: &[u8],
    dtype: DType,
    dims: &[npy_intp],
    strides: &[npy_intp],
) -> PyResult<Bound<'py, PyAny>> {
    debug_assert_eq!(dims.len(), strides.len());
    let pin = Bound::new(py, SnapshotPin { _snapshot: owner.clone() })?;
    let descr = descr(py, dtype)?;
    // NumPy needs a non-null, aligned address even for an empty array.
    let data = if span.is_empty() { ptr::NonNull::<u64>::dangling().as_ptr().cast::<u8>() } else { span.as_ptr() };
    // SAFETY: the API table is NumPy's (rust-numpy imports and checks it);
    // `descr` is a valid descriptor whose reference NewFromDescr steals;
    // `dims` and `strides` hold `dims.len()` entries, which NumPy copies;
    // `data` addresses the bytes the caller guarantees hold every element,
    // and flags 0 makes the array read-only (no WRITEABLE), so NumPy never
    // writes through the pointer. NewFromDescr returns a new reference or
    // null with an exception set.
    let array = unsafe {
        let raw = PY_ARRAY_API.PyArray_NewFromDescr(
            py,
            npyffi::get_type_object(py, npyffi::NpyTypes::PyArray_Type),
            descr.into_ptr().cast(),
            dims.len() as c_int,
            dims.as_ptr().cast_mut(),
            strides.as_ptr().cast_mut(),
            data.cast_mut().cast::<c_void>(),
            0,
            ptr::null_mut(),
        );
        Bound::from_owned_ptr_or_err(py, raw)?
    };
    // SAFETY: `array` is the array just made; SetBaseObject steals the
    // reference to `pin` (also on failure, when it returns -1 with an
    // exception set). From here NumPy keeps `pin`, and so the snapshot that
    // owns the bytes, alive for as long as the array or a view of it lives.
    let status = unsafe { PY_ARRAY_API.PyArray_SetBaseObject(py, array.as_ptr().cast(), pin.into_ptr()) };
    if status < 0 {
        return Err(PyErr::fetch(py));
    }
    Ok(array)
}

/// ml_dtypes' `bfloat16` descriptor, if the package can be imported.
static BFLOAT16: PyOnceLock<Option<Py<PyArrayDescr>>> = PyOnceLock::new();

/// The NumPy descriptor arrays of `dtype` are handed out in: NumPy's own
/// type for every dtype but bfloat16, which is ml_dtypes' `bfloat16` when
/// that package is installed and the raw `uint16` bit patterns otherwise.
fn descr(py: Python<'_>, dtype: DType) -> PyResult<Bound<'_, PyArrayDescr>> {
    Ok(match dtype {
        DType::F32 => PyArrayDescr::of::<f32>(py),
        DType::F64 => PyArrayDescr::of::<f64>(py),
        DType::F16 => PyArrayDescr::of::<half::f16>(py),
        DType::U8 => PyArrayDescr::of::<u8>(py),
        DType::I8 => PyArrayDescr::of::<i8>(py),
        DType::Bf16 => bfloat16(py).unwrap_or_else(|| PyArrayDescr::of::<u16>(py)),
    })
}

/// Whether ml_dtypes provides `bfloat16` here.
fn bfloat16(py: Python<'_>) -> Option<Bound<'_, PyArrayDescr>> {
    BFLOAT16
        .get_or_init(py, || {
            let scalar = py.import("ml_dtypes").and_then(|m| m.getattr("bfloat16")).ok()?;
            PyArrayDescr::new(py, &scalar).ok().map(Bound::unbind)
        })
        .as_ref()
        .map(|d| d.bind(py).clone())
}

fn item_bytes(dtype: DType) -> usize {
    match dtype {
        DType::F64 => 8,
        DType::F32 => 4,
        DType::F16 | DType::Bf16 => 2,
        DType::U8 | DType::I8 => 1,
    }
}

/// Whether `buffer` holds elements of `dtype`: its format character (with
/// an optional native or little-endian prefix) and item size.
pub(crate) fn has_format(buffer: &PyUntypedBuffer, dtype: DType) -> bool {
    let format = buffer.format().to_bytes();
    let code = match format {
        [c] => *c,
        [b'@' | b'=' | b'<', c] => *c,
        _ => return false,
    };
    // NumPy spells a 64-bit unsigned integer 'L' or 'Q' depending on the
    // platform's C long; both are 8 bytes on 64-bit Linux.
    let wanted = dtype.format_char();
    code == wanted && buffer.item_size() == item_bytes(dtype)
}

/// Whether `buffer` holds `u64`s (format `Q` or `L`, 8 bytes).
pub(crate) fn is_u64(buffer: &PyUntypedBuffer) -> bool {
    let format = buffer.format().to_bytes();
    let code = match format {
        [c] => *c,
        [b'@' | b'=' | b'<', c] => *c,
        _ => return false,
    };
    matches!(code, b'Q' | b'L') && buffer.item_size() == 8
}

/// Whether [`elements`] can read `buffer` as `dtype` without a copy:
/// C-contiguous, of `dtype`'s format, aligned.
pub(crate) fn readable(buffer: &PyUntypedBuffer, dtype: DType) -> bool {
    buffer.is_c_contiguous() && has_format(buffer, dtype) && aligned(buffer)
}

/// Whether [`u64s`] can read `buffer` without a copy.
pub(crate) fn readable_u64(buffer: &PyUntypedBuffer) -> bool {
    buffer.is_c_contiguous() && is_u64(buffer) && aligned(buffer)
}

fn aligned(buffer: &PyUntypedBuffer) -> bool {
    let ptr = buffer.buf_ptr() as usize;
    buffer.item_count() == 0 || (ptr != 0 && ptr.is_multiple_of(buffer.item_size().max(1)))
}

/// The elements of a buffer of `T`s, zero-copy; `None` unless
/// [`readable`] holds for it.
pub(crate) fn elements<T: PyElement>(buffer: &PyUntypedBuffer) -> Option<&[T]> {
    if !readable(buffer, T::DTYPE) {
        return None;
    }
    words_of::<T>(buffer)
}

/// The `u64`s of a buffer of them, zero-copy; `None` unless
/// [`readable_u64`] holds for it.
pub(crate) fn u64s(buffer: &PyUntypedBuffer) -> Option<&[u64]> {
    if !readable_u64(buffer) {
        return None;
    }
    words_of::<u64>(buffer)
}

fn words_of<T: bytemuck::Pod>(buffer: &PyUntypedBuffer) -> Option<&[T]> {
    let count = buffer.item_count();
    let ptr = buffer.buf_ptr().cast::<T>().cast_const();
    if count == 0 {
        return Some(&[]);
    }
    if ptr.is_null() || !(ptr as usize).is_multiple_of(align_of::<T>()) {
        return None;
    }
    // SAFETY: the buffer is C-contiguous with `count` items of
    // `size_of::<T>()` bytes (format and item size checked by the caller),
    // so `count * size_of::<T>()` bytes at `ptr` belong to the exporter;
    // `ptr` is non-null and aligned (checked above); `T: Pod` accepts any
    // bits. The bytes stay allocated while `buffer` is held, which the
    // returned borrow cannot outlive. (Concurrent writes by another Python
    // thread are the caller's race on plain data; see the module docs.)
    Some(unsafe { std::slice::from_raw_parts(ptr, count) })
}
