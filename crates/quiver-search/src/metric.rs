//! The similarity measures and how their scores order.

/// How a query is compared with a stored vector, and what [`crate::Hit::score`]
/// holds.
///
/// | metric | score | best first |
/// |---|---|---|
/// | `Dot` | inner product `q · v` | highest |
/// | `Cosine` | `q · v / (‖q‖ ‖v‖)`, in [-1, 1] up to rounding; **0** when `q` or `v` is all zeros | highest |
/// | `L2` | squared Euclidean distance `Σ (qᵢ - vᵢ)²` (no square root) | lowest |
///
/// Equal scores rank by smaller id first. A stored vector holding NaN or
/// infinity can score NaN; a NaN score ranks after every other score (so
/// it appears only when `k` reaches past all the others).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Inner product; higher is better.
    Dot,
    /// Cosine similarity; higher is better. A zero vector (or a zero query)
    /// has similarity 0 with everything.
    Cosine,
    /// Squared Euclidean distance; lower is better.
    L2,
}

impl Metric {
    /// Whether a higher score is better (`Dot`, `Cosine`) or a lower one
    /// (`L2`).
    pub const fn higher_is_better(self) -> bool {
        !matches!(self, Metric::L2)
    }

    /// The metric's name, as the CLI spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Metric::Dot => "dot",
            Metric::Cosine => "cosine",
            Metric::L2 => "l2",
        }
    }

    /// A key that orders scores best first as plain integers: the score's
    /// bits in `f32::total_cmp` order, negated for higher-is-better metrics,
    /// with NaN mapped past every number.
    #[inline(always)]
    pub(crate) fn rank_key(self, score: f32) -> i32 {
        if score.is_nan() {
            return i32::MAX;
        }
        // `+ 0.0` turns -0.0 into 0.0, so the two zeros tie.
        let s = if self.higher_is_better() { -score } else { score } + 0.0;
        let bits = s.to_bits() as i32;
        bits ^ (((bits >> 31) as u32) >> 1) as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the rank key orders best first for both directions, ties the
    // two zeros and puts NaN last.
    #[test]
    fn rank_keys_order_best_first() {
        let dot = |s: f32| Metric::Dot.rank_key(s);
        assert!(dot(2.0) < dot(1.0) && dot(1.0) < dot(-1.0) && dot(-1.0) < dot(f32::NEG_INFINITY));
        assert!(dot(f32::NEG_INFINITY) < dot(f32::NAN) && dot(f32::INFINITY) < dot(2.0));
        assert_eq!(dot(0.0), dot(-0.0));
        let l2 = |s: f32| Metric::L2.rank_key(s);
        assert!(l2(0.0) < l2(1.0) && l2(1.0) < l2(f32::INFINITY) && l2(f32::INFINITY) < l2(-f32::NAN));
        assert_eq!(l2(0.0), l2(-0.0));
    }
}
