//! The element types the binding knows: their NumPy names, their buffer
//! format characters, and the enum-of-stores dispatch macro.
//!
//! A store is generic in Rust (`VectorStore<T>`); Python sees one `Store`
//! class, which holds one of six concrete stores and dispatches on it with
//! [`dispatch!`]. The macro keeps every method one generic body, compiled
//! once per type, instead of six hand-written arms.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use quiver::{Element, SearchElement, bf16, f16};

/// The element type of a store, as Python names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DType {
    F32,
    F64,
    F16,
    Bf16,
    U8,
    I8,
}

impl DType {
    /// The type for a canonical NumPy name (as `numpy.dtype(x).name`
    /// spells it, and `"bfloat16"`).
    pub(crate) fn from_name(name: &str) -> PyResult<Self> {
        Ok(match name {
            "float32" => DType::F32,
            "float64" => DType::F64,
            "float16" => DType::F16,
            "bfloat16" => DType::Bf16,
            "uint8" => DType::U8,
            "int8" => DType::I8,
            other => {
                return Err(PyTypeError::new_err(format!(
                    "dtype {other:?} is not supported; use float32, float64, float16, bfloat16, uint8 or int8"
                )));
            }
        })
    }

    /// The canonical name (`bfloat16` vectors are handed out as ml_dtypes'
    /// `bfloat16` when it is installed, else as `uint16` bit patterns; see
    /// `view::descr`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::F16 => "float16",
            DType::Bf16 => "bfloat16",
            DType::U8 => "uint8",
            DType::I8 => "int8",
        }
    }

    /// The NumPy dtype input is converted to before it is read (for
    /// bfloat16, its bit patterns).
    pub(crate) fn numpy_name(self) -> &'static str {
        match self {
            DType::Bf16 => "uint16",
            other => other.name(),
        }
    }

    /// The buffer-protocol format character (PEP 3118, native order).
    pub(crate) fn format_char(self) -> u8 {
        match self {
            DType::F32 => b'f',
            DType::F64 => b'd',
            DType::F16 => b'e',
            DType::Bf16 => b'H',
            DType::U8 => b'B',
            DType::I8 => b'b',
        }
    }
}

/// An element type the binding can hold: its [`DType`] alongside what the
/// store and the search need.
pub(crate) trait PyElement: Element + SearchElement {
    /// The Python-side type.
    const DTYPE: DType;
}

impl PyElement for f32 {
    const DTYPE: DType = DType::F32;
}
impl PyElement for f64 {
    const DTYPE: DType = DType::F64;
}
impl PyElement for f16 {
    const DTYPE: DType = DType::F16;
}
impl PyElement for bf16 {
    const DTYPE: DType = DType::Bf16;
}
impl PyElement for u8 {
    const DTYPE: DType = DType::U8;
}
impl PyElement for i8 {
    const DTYPE: DType = DType::I8;
}

/// Declares `$name<$inner>`: an enum with one variant per element type,
/// each holding `$inner<T>` (a store, a follower or a snapshot).
macro_rules! typed_enum {
    ($(#[$doc:meta])* $name:ident, $inner:ident) => {
        $(#[$doc])*
        pub(crate) enum $name {
            F32(quiver::$inner<f32>),
            F64(quiver::$inner<f64>),
            F16(quiver::$inner<quiver::f16>),
            Bf16(quiver::$inner<quiver::bf16>),
            U8(quiver::$inner<u8>),
            I8(quiver::$inner<i8>),
        }
    };
}
pub(crate) use typed_enum;

/// Runs `$body` with `$v` bound to the concrete value inside a
/// [`typed_enum!`] value, and `$t` to its element type.
macro_rules! dispatch {
    ($enum:ident, $value:expr, $v:ident, $t:ident => $body:expr) => {
        match $value {
            $enum::F32($v) => {
                #[allow(dead_code)]
                type $t = f32;
                $body
            }
            $enum::F64($v) => {
                #[allow(dead_code)]
                type $t = f64;
                $body
            }
            $enum::F16($v) => {
                #[allow(dead_code)]
                type $t = quiver::f16;
                $body
            }
            $enum::Bf16($v) => {
                #[allow(dead_code)]
                type $t = quiver::bf16;
                $body
            }
            $enum::U8($v) => {
                #[allow(dead_code)]
                type $t = u8;
                $body
            }
            $enum::I8($v) => {
                #[allow(dead_code)]
                type $t = i8;
                $body
            }
        }
    };
}
pub(crate) use dispatch;

/// Builds a [`typed_enum!`] value of `$dtype` from a generic constructor
/// expression, with `$t` bound to the element type.
macro_rules! construct {
    ($enum:ident, $dtype:expr, $t:ident => $make:expr) => {
        match $dtype {
            $crate::dtype::DType::F32 => {
                #[allow(dead_code)]
                type $t = f32;
                $make.map($enum::F32)
            }
            $crate::dtype::DType::F64 => {
                #[allow(dead_code)]
                type $t = f64;
                $make.map($enum::F64)
            }
            $crate::dtype::DType::F16 => {
                #[allow(dead_code)]
                type $t = quiver::f16;
                $make.map($enum::F16)
            }
            $crate::dtype::DType::Bf16 => {
                #[allow(dead_code)]
                type $t = quiver::bf16;
                $make.map($enum::Bf16)
            }
            $crate::dtype::DType::U8 => {
                #[allow(dead_code)]
                type $t = u8;
                $make.map($enum::U8)
            }
            $crate::dtype::DType::I8 => {
                #[allow(dead_code)]
                type $t = i8;
                $make.map($enum::I8)
            }
        }
    };
}
pub(crate) use construct;
