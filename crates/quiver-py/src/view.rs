//! The one module of quiver-py with `unsafe` code: NumPy views over bytes
//! that Rust owns, and Rust slices over the bytes of NumPy input arrays.
//!
//! **Out (zero-copy views).** [`ArrayView`] implements the buffer protocol
//! (`__getbuffer__`) over bytes that its [`Owner`] keeps alive: a Quiver
//! `Snapshot` (whose slices never change and stay mapped for the
//! snapshot's life, see the `quiver_guard` crate docs) or an owned vector
//! of results. The exported buffer is read-only, and Python keeps the
//! exporter alive for as long as any `memoryview` or NumPy array made from
//! it exists (`Py_buffer.obj` holds a strong reference), so the bytes
//! outlive every view of them.
//!
//! **In (zero-copy input).** [`elements`] reads a C-contiguous input buffer
//! of the right format as `&[T]` for as long as the `PyUntypedBuffer`
//! lives (a buffer's memory cannot be freed or resized while it is held).
//! If another Python thread writes to the same array while a write reads
//! it with the GIL released, the stored vector may mix old and new values;
//! that is the same contract NumPy's own GIL-free operations have, and it
//! can never read outside the buffer.

#![allow(unsafe_code)]

use std::ffi::{CStr, c_int, c_void};
use std::ptr;

use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;

use crate::dtype::{DType, PyElement};
use crate::snapshot::AnySnapshot;

/// What keeps the bytes of an [`ArrayView`] alive.
pub(crate) enum Owner {
    /// A vector or every slot of a snapshot: the mapped bytes the snapshot
    /// pins.
    Snapshot(#[allow(dead_code)] AnySnapshot),
    /// Bytes the binding computed (ids, scores, masks).
    Bytes(#[allow(dead_code)] Box<[u64]>),
}

/// A read-only buffer-protocol exporter over `len` bytes at `ptr`, with up
/// to two dimensions. NumPy views it with `numpy.asarray(view)`; the array's
/// `.base` chain holds the exporter and so its owner.
#[pyclass(module = "quiver", frozen)]
pub(crate) struct ArrayView {
    _owner: Owner,
    ptr: *const u8,
    /// Bytes from the first element to one past the last (for a strided
    /// view, the span, not the element count times the item size).
    len_bytes: usize,
    format: &'static CStr,
    item_bytes: usize,
    ndim: usize,
    shape: [ffi::Py_ssize_t; 2],
    strides: [ffi::Py_ssize_t; 2],
}

// SAFETY: `ptr` points into memory the `_owner` field owns and never
// changes: a snapshot's mapped records (immutable for its life, shared
// across threads by design: `Snapshot` is Send + Sync) or an owned box
// that nothing writes after construction. The exporter is frozen, so no
// field changes after construction either.
unsafe impl Send for ArrayView {}
// SAFETY: as for `Send`: every access through `ptr` is a read of
// immutable bytes.
unsafe impl Sync for ArrayView {}

impl ArrayView {
    /// A 1-D view of `slice`, which must lie inside what `owner` keeps
    /// alive and unchanged.
    pub(crate) fn vector<T: PyElement>(owner: AnySnapshot, slice: &[T]) -> Self {
        let dtype = T::DTYPE;
        let shape = [slice.len()];
        let strides = contiguous_strides(&shape, item_bytes(dtype));
        let bytes: &[u8] = bytemuck::cast_slice(slice);
        Self::raw(Owner::Snapshot(owner), bytes, format_cstr(dtype), item_bytes(dtype), &shape, strides)
    }

    /// A `(rows, cols)` view of `dtype` with `row_stride_bytes` between
    /// rows over `span`, which must lie inside what `owner` keeps alive
    /// and hold `(rows - 1) * row_stride_bytes + cols * item size` bytes
    /// (or be empty when `rows` is 0).
    pub(crate) fn strided(
        owner: AnySnapshot,
        span: &[u8],
        dtype: DType,
        rows: usize,
        cols: usize,
        row_stride_bytes: usize,
    ) -> Self {
        let item = item_bytes(dtype);
        assert!(rows == 0 || span.len() >= (rows - 1) * row_stride_bytes + cols * item, "the span holds every row");
        let strides = [row_stride_bytes as ffi::Py_ssize_t, item as ffi::Py_ssize_t];
        Self::raw(Owner::Snapshot(owner), span, format_cstr(dtype), item, &[rows, cols], strides)
    }

    /// A C-contiguous view of owned `u64`s as `shape`.
    pub(crate) fn owned_u64(values: Vec<u64>, shape: &[usize]) -> Self {
        Self::owned(values.into_boxed_slice(), c"Q", 8, shape)
    }

    /// A C-contiguous view of owned `f32`s as `shape`. The floats are
    /// copied once into `u64` words, so that one owner type serves every
    /// result (results are small next to the scan that made them).
    pub(crate) fn owned_f32(values: &[f32], shape: &[usize]) -> Self {
        let bytes: &[u8] = bytemuck::cast_slice(values);
        Self::owned(words_from(bytes), c"f", 4, shape)
    }

    /// A C-contiguous view of owned bools (NumPy `bool`) as `shape`.
    pub(crate) fn owned_bool(values: &[bool], shape: &[usize]) -> Self {
        let bytes: Vec<u8> = values.iter().map(|&v| u8::from(v)).collect();
        Self::owned(words_from(&bytes), c"?", 1, shape)
    }

    fn owned(words: Box<[u64]>, format: &'static CStr, item: usize, shape: &[usize]) -> Self {
        let count: usize = shape.iter().product();
        let strides = contiguous_strides(shape, item);
        // Moving the box into the owner does not move its heap bytes, so
        // the span taken here stays valid.
        let span: &[u8] = bytemuck::cast_slice(&words);
        assert!(count * item <= span.len(), "an owned view covers its words");
        let (ptr, len) = (span.as_ptr(), count * item);
        let mut view = Self::raw(Owner::Bytes(Box::default()), &[], format, item, shape, strides);
        view._owner = Owner::Bytes(words);
        view.ptr = ptr;
        view.len_bytes = len;
        view
    }

    fn raw(
        owner: Owner,
        span: &[u8],
        format: &'static CStr,
        item_bytes: usize,
        shape: &[usize],
        strides: [ffi::Py_ssize_t; 2],
    ) -> Self {
        assert!(matches!(shape.len(), 1 | 2), "views have one or two dimensions");
        let mut shape_out = [0; 2];
        for (o, &s) in shape_out.iter_mut().zip(shape) {
            *o = s as ffi::Py_ssize_t;
        }
        Self {
            _owner: owner,
            ptr: span.as_ptr(),
            len_bytes: span.len(),
            format,
            item_bytes,
            ndim: shape.len(),
            shape: shape_out,
            strides,
        }
    }
}

/// `bytes` copied into 8-byte words (the tail zero-padded).
fn words_from(bytes: &[u8]) -> Box<[u64]> {
    let mut words = vec![0u64; bytes.len().div_ceil(8)].into_boxed_slice();
    bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
    words
}

fn contiguous_strides(shape: &[usize], item_bytes: usize) -> [ffi::Py_ssize_t; 2] {
    match shape {
        [_] => [item_bytes as ffi::Py_ssize_t, 0],
        [_, cols] => [(cols * item_bytes) as ffi::Py_ssize_t, item_bytes as ffi::Py_ssize_t],
        _ => unreachable!("views have one or two dimensions"),
    }
}

fn item_bytes(dtype: DType) -> usize {
    match dtype {
        DType::F64 => 8,
        DType::F32 => 4,
        DType::F16 | DType::Bf16 => 2,
        DType::U8 | DType::I8 => 1,
    }
}

fn format_cstr(dtype: DType) -> &'static CStr {
    match dtype {
        DType::F32 => c"f",
        DType::F64 => c"d",
        DType::F16 => c"e",
        DType::Bf16 => c"H",
        DType::U8 => c"B",
        DType::I8 => c"b",
    }
}

#[pymethods]
impl ArrayView {
    /// Exports the bytes, read-only, with their shape, strides and format.
    ///
    /// # Safety
    ///
    /// Called by CPython with a valid `Py_buffer` to fill (pyo3 checks for
    /// null before calling).
    unsafe fn __getbuffer__(slf: Bound<'_, Self>, view: *mut ffi::Py_buffer, flags: c_int) -> PyResult<()> {
        if view.is_null() {
            return Err(PyBufferError::new_err("the buffer view is null"));
        }
        if flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE {
            return Err(PyBufferError::new_err(
                "Quiver's views are read-only: the bytes are a store's committed records",
            ));
        }
        let me = slf.get();
        let strided = me.ndim == 2 && me.strides[0] != me.shape[1] * me.item_bytes as ffi::Py_ssize_t;
        if strided && flags & ffi::PyBUF_STRIDES != ffi::PyBUF_STRIDES {
            return Err(PyBufferError::new_err("this view is strided: ask for strides (numpy.asarray does)"));
        }
        // An empty span still needs a non-null, aligned address.
        let buf = if me.ptr.is_null() || me.len_bytes == 0 {
            ptr::NonNull::<u64>::dangling().as_ptr().cast::<u8>()
        } else {
            me.ptr
        };
        // SAFETY: `view` is non-null (checked above) and CPython hands a
        // `Py_buffer` we may fill. `buf` and `len_bytes` describe bytes the
        // exporter's owner keeps alive and unchanged (module docs); the
        // shape, strides and format point into the frozen exporter (or a
        // static string), which `view.obj` keeps alive until release.
        unsafe {
            (*view).obj = slf.clone().into_any().into_ptr();
            (*view).buf = buf as *mut c_void;
            (*view).len = (me.shape[..me.ndim].iter().product::<ffi::Py_ssize_t>()) * me.item_bytes as ffi::Py_ssize_t;
            (*view).readonly = 1;
            (*view).itemsize = me.item_bytes as ffi::Py_ssize_t;
            (*view).format = if flags & ffi::PyBUF_FORMAT == ffi::PyBUF_FORMAT {
                me.format.as_ptr().cast_mut()
            } else {
                ptr::null_mut()
            };
            (*view).ndim = me.ndim as c_int;
            (*view).shape =
                if flags & ffi::PyBUF_ND == ffi::PyBUF_ND { me.shape.as_ptr().cast_mut() } else { ptr::null_mut() };
            (*view).strides = if flags & ffi::PyBUF_STRIDES == ffi::PyBUF_STRIDES {
                me.strides.as_ptr().cast_mut()
            } else {
                ptr::null_mut()
            };
            (*view).suboffsets = ptr::null_mut();
            (*view).internal = ptr::null_mut();
        }
        Ok(())
    }

    /// Nothing to free: shape, strides and format live in the exporter.
    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {}
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
