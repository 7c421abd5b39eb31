//! How each stored element type is read as `f32` inside a kernel.
//!
//! A stored vector is never copied for `f32`; for every other type one
//! vector (or one tile of vectors) at a time is widened into a small buffer
//! that stays in L1, and scored from there. The store itself is never
//! copied or converted.

use half::{bf16, f16};
use quiver_storage::Element;

/// An element type that can be searched: every [`Element`] (`f32`, `f64`,
/// `u8`, `i8`, `half::f16`, `half::bf16`). Queries are `f32` for all of
/// them; stored values are widened to `f32` as they are scored:
///
/// | stored | as `f32` |
/// |---|---|
/// | `f32` | itself, zero-copy |
/// | `u8`, `i8`, `bf16` | exactly |
/// | `f16` | exactly (`half`, F16C where the CPU has it) |
/// | `f64` | rounded to the nearest `f32` (magnitudes past `f32::MAX` become infinite) |
///
/// So an `f64` store is scored in `f32` precision, like every other.
pub trait SearchElement: Element {
    /// `vector` as `f32`: `vector` itself for `f32`, otherwise widened into
    /// `buf`, which has `vector`'s length.
    #[doc(hidden)]
    fn as_f32<'a>(vector: &'a [Self], buf: &'a mut [f32]) -> &'a [f32];

    /// `vector` as the kernels see it, in `f32` (see the table above):
    /// what to pass as a query to find a stored vector's neighbours.
    ///
    /// ```
    /// use quiver_search::SearchElement;
    /// assert_eq!(i8::to_f32(&[-3, 7]), [-3.0, 7.0]);
    /// ```
    fn to_f32(vector: &[Self]) -> Vec<f32> {
        let mut buf = vec![0.0f32; vector.len()];
        Self::as_f32(vector, &mut buf).to_vec()
    }
}

impl SearchElement for f32 {
    #[inline(always)]
    fn as_f32<'a>(vector: &'a [Self], _buf: &'a mut [f32]) -> &'a [f32] {
        vector
    }
}

impl SearchElement for f64 {
    #[inline(always)]
    fn as_f32<'a>(vector: &'a [Self], buf: &'a mut [f32]) -> &'a [f32] {
        for (d, s) in buf.iter_mut().zip(vector) {
            *d = *s as f32;
        }
        buf
    }
}

impl SearchElement for u8 {
    #[inline(always)]
    fn as_f32<'a>(vector: &'a [Self], buf: &'a mut [f32]) -> &'a [f32] {
        for (d, s) in buf.iter_mut().zip(vector) {
            *d = f32::from(*s);
        }
        buf
    }
}

impl SearchElement for i8 {
    #[inline(always)]
    fn as_f32<'a>(vector: &'a [Self], buf: &'a mut [f32]) -> &'a [f32] {
        for (d, s) in buf.iter_mut().zip(vector) {
            *d = f32::from(*s);
        }
        buf
    }
}

impl SearchElement for f16 {
    #[inline(always)]
    fn as_f32<'a>(vector: &'a [Self], buf: &'a mut [f32]) -> &'a [f32] {
        // Branch-free, so it vectorises inside the kernels' instruction
        // set; `half`'s slice conversion is a call per vector that ran at a
        // third of the f32 scan's speed here.
        for (d, s) in buf.iter_mut().zip(vector) {
            *d = f16_to_f32(s.to_bits());
        }
        buf
    }
}

/// An IEEE half's bits as the `f32` of the same value, exactly: the
/// exponent and mantissa shifted into place and rebiased by a multiply by
/// 2^112 (exact for normal and subnormal halves alike), infinities and NaNs
/// (payload kept) picked by a select.
#[inline(always)]
fn f16_to_f32(half: u16) -> f32 {
    let half = u32::from(half);
    let sign = (half & 0x8000) << 16;
    let magnitude = half & 0x7fff;
    let rebias = f32::from_bits(0x7780_0000); // 2^112 = 2^(127 - 15)
    let finite = (f32::from_bits(magnitude << 13) * rebias).to_bits();
    let special = 0x7f80_0000 | ((magnitude & 0x3ff) << 13);
    f32::from_bits(if magnitude >= 0x7c00 { special } else { finite } | sign)
}

impl SearchElement for bf16 {
    #[inline(always)]
    fn as_f32<'a>(vector: &'a [Self], buf: &'a mut [f32]) -> &'a [f32] {
        // A bf16 is the top half of an f32: the shift is exact, and plain
        // enough for the compiler to vectorise.
        for (d, s) in buf.iter_mut().zip(vector) {
            *d = f32::from_bits(u32::from(s.to_bits()) << 16);
        }
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the f16 widening equals `half`'s for every one of the 65,536
    // bit patterns (a NaN only has to stay a NaN of the same sign: `half`
    // also sets the quiet bit).
    #[test]
    fn every_f16_widens_exactly() {
        for bits in 0..=u16::MAX {
            let (got, want) = (f16_to_f32(bits), f16::from_bits(bits).to_f32());
            if want.is_nan() {
                assert!(got.is_nan() && got.is_sign_negative() == want.is_sign_negative(), "f16 bits {bits:#06x}");
            } else {
                assert_eq!(got.to_bits(), want.to_bits(), "f16 bits {bits:#06x}");
            }
        }
    }

    // Proves bf16 and the integer types widen exactly and f64 rounds.
    #[test]
    fn other_types_widen() {
        let mut buf = [0.0f32; 3];
        assert_eq!(
            bf16::as_f32(&[bf16::from_f32(-1.5), bf16::ONE, bf16::INFINITY], &mut buf),
            [-1.5, 1.0, f32::INFINITY]
        );
        assert_eq!(i8::as_f32(&[-128, 0, 127], &mut buf), [-128.0, 0.0, 127.0]);
        assert_eq!(u8::as_f32(&[0, 1, 255], &mut buf), [0.0, 1.0, 255.0]);
        assert_eq!(f64::as_f32(&[0.1, 1e300, -2.0], &mut buf), [0.1f32, f32::INFINITY, -2.0]);
    }
}
