//! Runtime choice of the instruction set the kernels are compiled for.
//!
//! The kernels are plain Rust; [`run`] calls them inside `pulp`'s safe
//! `vectorize`, which inlines them into a function compiled with AVX-512 or
//! AVX2 enabled after checking at run time that the CPU has it. So users
//! build for the default x86-64 target and still get the wide registers;
//! no `-C target-cpu` is needed. This module must stay the only place that
//! knows about instruction sets.

/// An instruction set the search kernels can be compiled for, widest last.
///
/// Every set gives the same scores bit for bit (the kernels fix their
/// accumulation order and never fuse a multiply with an add), so capping
/// the set with [`crate::SearchOptions::instruction_set`] changes only the
/// speed — which is what the cap is for: measuring, and checking that
/// claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum InstructionSet {
    /// No run-time dispatch: the kernels on `pulp`'s scalar path, compiled
    /// for the build target (SSE2 on x86-64). The fallback for CPUs without
    /// AVX2; about half the speed for one query, a fifth for a batch.
    Baseline,
    /// x86-64-v3: AVX2 and FMA.
    Avx2,
    /// x86-64-v4: AVX-512 (F, BW, CD, DQ, VL).
    Avx512,
}

impl InstructionSet {
    /// The widest set this CPU supports.
    pub fn detected() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if pulp::x86::V4::is_available() {
                return Self::Avx512;
            }
            if pulp::x86::V3::is_available() {
                return Self::Avx2;
            }
        }
        Self::Baseline
    }

    /// The name, for messages and bench output.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::Avx2 => "avx2",
            Self::Avx512 => "avx512",
        }
    }
}

/// Work that is compiled once per instruction set: `call` runs with `S`'s
/// registers, `R` of which hold the kernels' 16 lanes, and must be
/// `#[inline(always)]` all the way down to the kernels, or the loops are
/// compiled for the baseline only.
pub(crate) trait Vectorized {
    type Output;
    fn call<S: pulp::Simd, const R: usize>(self, simd: S) -> Self::Output;
}

/// Adapts [`Vectorized`] to `pulp`'s entry point, with `R` fixed by the
/// branch of [`run`] that builds it.
struct Op<W, const R: usize>(W);

impl<W: Vectorized, const R: usize> pulp::WithSimd for Op<W, R> {
    type Output = W::Output;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) -> Self::Output {
        assert_eq!(R * S::F32_LANES, crate::kernel::LANES, "R registers of S hold 16 lanes");
        self.0.call::<S, R>(simd)
    }
}

/// Runs `work` compiled for the widest set that is both detected and at
/// most `cap`.
#[inline(always)]
pub(crate) fn run<W: Vectorized>(cap: InstructionSet, work: W) -> W::Output {
    #[cfg(target_arch = "x86_64")]
    {
        if cap >= InstructionSet::Avx512
            && let Some(simd) = pulp::x86::V4::try_new()
        {
            return pulp::Simd::vectorize(simd, Op::<W, 1>(work));
        }
        if cap >= InstructionSet::Avx2
            && let Some(simd) = pulp::x86::V3::try_new()
        {
            return pulp::Simd::vectorize(simd, Op::<W, 2>(work));
        }
    }
    let _ = cap;
    pulp::Simd::vectorize(pulp::Scalar::new(), Op::<W, 16>(work))
}
