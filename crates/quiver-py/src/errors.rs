//! Quiver's errors as Python exceptions.
//!
//! The exception classes are defined in Python (`quiver/_errors.py`), so
//! that they can also derive from the matching built-in (`ValueError`,
//! `OSError`); this module picks the class for a Rust error and raises it
//! with the Rust message, which is already a sentence.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use quiver::{Error, SearchError};

/// The Python exception for `err`, carrying its message.
pub(crate) fn to_py(err: Error) -> PyErr {
    let class = match &err {
        Error::DimensionMismatch { .. } => "DimensionMismatch",
        Error::ElementTypeMismatch { .. } => "ElementTypeMismatch",
        Error::Locked { .. } => "Locked",
        Error::Corrupted { .. } => "Corrupted",
        Error::NotAStore { .. } | Error::UnsupportedVersion { .. } => "NotAStore",
        Error::Poisoned { .. } => "Poisoned",
        Error::Closed => "Closed",
        Error::InvalidArgument(_) | Error::LimitExceeded { .. } => "InvalidArgument",
        Error::Io { .. } => "IOError",
        _ => "Error",
    };
    // An OS error keeps its errno (`e.errno == errno.ENOSPC` works), as
    // `OSError(errno, message)` sets it.
    if let Some(errno) = err.raw_os_error() {
        return make(class, Some(errno), err.to_string());
    }
    raise(class, err.to_string())
}

/// A refused search query as `quiver.InvalidArgument`, or
/// `quiver.DimensionMismatch` for a query of the wrong length.
pub(crate) fn search_to_py(err: SearchError) -> PyErr {
    let class = match &err {
        SearchError::QueryLength { .. } | SearchError::BatchLength { .. } => "DimensionMismatch",
        _ => "InvalidArgument",
    };
    raise(class, err.to_string())
}

/// `quiver.<class>(message)`.
pub(crate) fn raise(class: &'static str, message: String) -> PyErr {
    make(class, None, message)
}

/// `quiver.<class>(errno, message)`: an `OSError` subclass with its errno.
pub(crate) fn raise_os(class: &'static str, errno: i32, message: String) -> PyErr {
    make(class, Some(errno), message)
}

/// `quiver.<class>(message)`, or `quiver.<class>(errno, message)`.
fn make(class: &'static str, errno: Option<i32>, message: String) -> PyErr {
    Python::attach(|py| {
        let made = py.import("quiver._errors").and_then(|m| m.getattr(class)).and_then(|c| match errno {
            Some(errno) => c.call1((errno, message.clone())),
            None => c.call1((message.clone(),)),
        });
        // Only a broken installation (no quiver._errors) gets here; the
        // message still reaches the user.
        made.map(PyErr::from_value).unwrap_or_else(|_| PyRuntimeError::new_err(message))
    })
}

/// `quiver.Closed`, for a handle used after `close()`.
pub(crate) fn closed() -> PyErr {
    to_py(Error::Closed)
}
