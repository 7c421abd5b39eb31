//! The element types a store can hold and their on-disk codes.
//!
//! The code of each type is part of the format (`docs/FORMAT.md`, "Element
//! type codes") and must never change once released.

use half::{bf16, f16};

/// The element type code recorded in a store's format header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ElementType {
    /// 32-bit IEEE float.
    F32,
    /// 64-bit IEEE float.
    F64,
    /// Unsigned byte.
    U8,
    /// Signed byte.
    I8,
    /// 16-bit IEEE half float (`half::f16`).
    F16,
    /// bfloat16 (`half::bf16`).
    Bf16,
}

impl ElementType {
    /// The code stored on disk.
    pub const fn code(self) -> u32 {
        match self {
            ElementType::F32 => 1,
            ElementType::F64 => 2,
            ElementType::U8 => 3,
            ElementType::I8 => 4,
            ElementType::F16 => 5,
            ElementType::Bf16 => 6,
        }
    }

    /// The type for an on-disk code, if known.
    pub const fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            1 => ElementType::F32,
            2 => ElementType::F64,
            3 => ElementType::U8,
            4 => ElementType::I8,
            5 => ElementType::F16,
            6 => ElementType::Bf16,
            _ => return None,
        })
    }

    /// The size of one element in bytes.
    pub const fn size_bytes(self) -> u32 {
        match self {
            ElementType::F32 => 4,
            ElementType::F64 => 8,
            ElementType::U8 | ElementType::I8 => 1,
            ElementType::F16 | ElementType::Bf16 => 2,
        }
    }

    /// The Rust name of the type, for messages.
    pub const fn name(self) -> &'static str {
        match self {
            ElementType::F32 => "f32",
            ElementType::F64 => "f64",
            ElementType::U8 => "u8",
            ElementType::I8 => "i8",
            ElementType::F16 => "f16",
            ElementType::Bf16 => "bf16",
        }
    }
}

/// A type a [`crate::VectorStore`] can hold: plain old data with a fixed
/// on-disk code. Implemented for `f32`, `f64`, `u8`, `i8`, `half::f16` and
/// `half::bf16`; the trait is sealed because the code is part of the format.
pub trait Element: bytemuck::Pod + Send + Sync + sealed::Sealed + 'static {
    /// The type's code in the format header.
    const TYPE: ElementType;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! element {
    ($t:ty, $e:expr) => {
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const TYPE: ElementType = $e;
        }
        const _: () = assert!(size_of::<$t>() as u32 == $e.size_bytes());
    };
}

element!(f32, ElementType::F32);
element!(f64, ElementType::F64);
element!(u8, ElementType::U8);
element!(i8, ElementType::I8);
element!(f16, ElementType::F16);
element!(bf16, ElementType::Bf16);

#[cfg(test)]
mod tests {
    use super::*;

    // Proves every code round-trips and codes are distinct, so a header can
    // never be read back as another type.
    #[test]
    fn codes_round_trip_and_are_distinct() {
        let all =
            [ElementType::F32, ElementType::F64, ElementType::U8, ElementType::I8, ElementType::F16, ElementType::Bf16];
        for (i, a) in all.iter().enumerate() {
            assert_eq!(ElementType::from_code(a.code()), Some(*a));
            for b in &all[i + 1..] {
                assert_ne!(a.code(), b.code());
            }
        }
        assert_eq!(ElementType::from_code(0), None);
        assert_eq!(ElementType::from_code(7), None);
    }
}
