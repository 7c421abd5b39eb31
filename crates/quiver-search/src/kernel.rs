//! The scoring kernels: plain Rust over `f32` in 16 lanes, which the
//! compiler vectorises, compiled once per instruction set (see
//! [`crate::isa`]) and inlined into the scan loops.
//!
//! Every score is accumulated the same way whichever kernel computes it: 16
//! lane sums over the dimension in order, a fixed pairwise reduction of the
//! lanes, then the tail (dimension mod 16) added in order. There is no fused
//! multiply-add (Rust never contracts `a * b + c`), so a score is the same
//! bit for bit on SSE2, AVX2 and AVX-512, in a single query and in a batch
//! tile, on one thread or many. On AMD Zen 4 an unfused multiply and add
//! run on separate pipes, so fusing would not raise the peak either.
//!
//! The kernels are written against `pulp`'s `Simd` registers, `R` of them
//! per 16 lanes (1 for AVX-512, 2 for AVX2, 16 scalars for the baseline),
//! so the accumulators are registers by construction rather than arrays the
//! compiler may or may not promote (it did not, measured: a plain-array
//! 2 x 2 tile ran at a seventh of the explicit one). This module must never
//! allocate or branch per element.

use pulp::Simd;

/// The lanes of every accumulator: one AVX-512 register, two AVX2, four
/// SSE2 (enough independent adds to hide the add latency on each).
pub(crate) const LANES: usize = 16;

/// Sums the 16 lanes of `acc` pairwise in a fixed order (16 -> 8 -> 4 -> 2
/// -> 1: lane `i` plus lane `i + width`), whatever register width holds
/// them: first across the `R` registers (register `r` holds lanes `r * W ..
/// (r + 1) * W`), then within the last one by `pulp`'s `reduce_sum_f32s`,
/// which halves a register the same way (low half plus high half, down to
/// one lane). Done in registers: going through memory stalled on store
/// forwarding and cost a third of a 768-d batch.
#[inline(always)]
fn reduce<S: Simd, const R: usize>(simd: S, mut acc: [S::f32s; R]) -> f32 {
    let mut width = R / 2;
    while width >= 1 {
        for i in 0..width {
            acc[i] = simd.add_f32s(acc[i], acc[i + width]);
        }
        width /= 2;
    }
    simd.reduce_sum_f32s(acc[0])
}

/// The first `n` whole 16-lane chunks of `v`, each as `R` registers
/// (`R` registers of `S` hold 16 lanes), exactly `n` of them so that every
/// index below `n` is known to be in bounds.
#[inline(always)]
fn chunks<S: Simd, const R: usize>(v: &[f32], n: usize) -> &[[S::f32s; R]] {
    &bytemuck::cast_slice::<f32, [S::f32s; R]>(&v[..n * LANES])[..n]
}

/// How a pair of vectors is accumulated, as a const parameter so that each
/// loop is compiled for one: `PRODUCT` (Dot, Cosine) or
/// `SQUARED_DIFFERENCE` (L2).
pub(crate) const PRODUCT: bool = false;
/// See [`PRODUCT`].
pub(crate) const SQUARED_DIFFERENCE: bool = true;

#[inline(always)]
fn term<const SQ: bool>(q: f32, v: f32) -> f32 {
    if SQ {
        let d = q - v;
        d * d
    } else {
        q * v
    }
}

#[inline(always)]
fn term_simd<S: Simd, const SQ: bool>(simd: S, q: S::f32s, v: S::f32s) -> S::f32s {
    if SQ {
        let d = simd.sub_f32s(q, v);
        simd.mul_f32s(d, d)
    } else {
        simd.mul_f32s(q, v)
    }
}

/// Scores `Q` queries against `V` vectors at once: `out[i][j]` is the
/// accumulation of `queries[i]` with `vectors[j]`. Each vector register is
/// loaded once for `Q` queries and each query register once for `V`
/// vectors, with the `Q * V * R` accumulators in registers — what makes a
/// batch compute- rather than memory-bound. Every slice must have the same
/// length; `R * S::F32_LANES` must be 16.
#[inline(always)]
pub(crate) fn tile<S: Simd, const R: usize, const Q: usize, const V: usize, const SQ: bool>(
    simd: S,
    queries: [&[f32]; Q],
    vectors: [&[f32]; V],
) -> [[f32; V]; Q] {
    debug_assert_eq!(R * S::F32_LANES, LANES);
    let dim = queries[0].len();
    debug_assert!(queries.iter().all(|q| q.len() == dim) && vectors.iter().all(|v| v.len() == dim));
    let n = dim / LANES;
    let qc: [&[[S::f32s; R]]; Q] = queries.map(|q| chunks::<S, R>(q, n));
    let vc: [&[[S::f32s; R]]; V] = vectors.map(|v| chunks::<S, R>(v, n));
    let zero = simd.splat_f32s(0.0);
    let mut acc = [[[zero; R]; V]; Q];
    for c in 0..n {
        let v: [[S::f32s; R]; V] = std::array::from_fn(|j| vc[j][c]);
        for i in 0..Q {
            let q = qc[i][c];
            for j in 0..V {
                for r in 0..R {
                    acc[i][j][r] = simd.add_f32s(acc[i][j][r], term_simd::<S, SQ>(simd, q[r], v[j][r]));
                }
            }
        }
    }
    let tail = n * LANES;
    let mut out = [[0.0f32; V]; Q];
    for i in 0..Q {
        for j in 0..V {
            let mut t = 0.0f32;
            for (q, v) in queries[i][tail..].iter().zip(&vectors[j][tail..]) {
                t += term::<SQ>(*q, *v);
            }
            out[i][j] = reduce::<S, R>(simd, acc[i][j]) + t;
        }
    }
    out
}

/// One query against one vector: [`tile`] of one by one, so single and
/// batch searches score alike.
#[inline(always)]
pub(crate) fn pair<S: Simd, const R: usize, const SQ: bool>(simd: S, query: &[f32], vector: &[f32]) -> f32 {
    tile::<S, R, 1, 1, SQ>(simd, [query], [vector])[0][0]
}

/// The squared norm of `v`, accumulated as [`tile`] accumulates a product.
#[inline(always)]
pub(crate) fn squared_norm<S: Simd, const R: usize>(simd: S, v: &[f32]) -> f32 {
    pair::<S, R, PRODUCT>(simd, v, v)
}

/// The inner product of `query` and `vector` and the squared norm of
/// `vector`, in one pass over it (each accumulated exactly as [`pair`] and
/// [`squared_norm`] would, in separate accumulators).
#[inline(always)]
pub(crate) fn product_and_squared_norm<S: Simd, const R: usize>(simd: S, query: &[f32], vector: &[f32]) -> (f32, f32) {
    let n = vector.len() / LANES;
    let (qc, vc) = (chunks::<S, R>(query, n), chunks::<S, R>(vector, n));
    let zero = simd.splat_f32s(0.0);
    let (mut dot, mut norm) = ([zero; R], [zero; R]);
    for c in 0..n {
        for r in 0..R {
            dot[r] = simd.add_f32s(dot[r], simd.mul_f32s(qc[c][r], vc[c][r]));
            norm[r] = simd.add_f32s(norm[r], simd.mul_f32s(vc[c][r], vc[c][r]));
        }
    }
    let tail = n * LANES;
    let (mut dot_tail, mut norm_tail) = (0.0f32, 0.0f32);
    for (q, v) in query[tail..].iter().zip(&vector[tail..]) {
        dot_tail += q * v;
    }
    for v in &vector[tail..] {
        norm_tail += v * v;
    }
    (reduce::<S, R>(simd, dot) + dot_tail, reduce::<S, R>(simd, norm) + norm_tail)
}

/// Cosine similarity from an inner product, the query's norm and the
/// vector's squared norm; 0 when either vector is zero (documented on
/// `Metric::Cosine`).
#[inline(always)]
pub(crate) fn cosine(product: f32, query_norm: f32, vector_squared_norm: f32) -> f32 {
    if query_norm == 0.0 || vector_squared_norm == 0.0 {
        return 0.0;
    }
    product / (query_norm * vector_squared_norm.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the tile scores each pair exactly as the single-pair kernel
    // does (bit for bit), for a dimension with a tail, on both accumulations
    // and at every register width.
    #[test]
    fn tile_equals_pairs_bit_for_bit() {
        let dim = 37;
        let make = |seed: u32| -> Vec<f32> {
            (0..dim).map(|i| ((i as u32 * 7919 + seed * 104_729) % 1000) as f32 / 77.0 - 6.0).collect()
        };
        let qs: Vec<Vec<f32>> = (0..3).map(make).collect();
        let vs: Vec<Vec<f32>> = (10..12).map(make).collect();
        let s = pulp::Scalar::new();
        let product = tile::<_, 16, 3, 2, PRODUCT>(s, [&qs[0], &qs[1], &qs[2]], [&vs[0], &vs[1]]);
        let difference = tile::<_, 16, 3, 2, SQUARED_DIFFERENCE>(s, [&qs[0], &qs[1], &qs[2]], [&vs[0], &vs[1]]);
        for (i, q) in qs.iter().enumerate() {
            for (j, v) in vs.iter().enumerate() {
                assert_eq!(product[i][j].to_bits(), pair::<_, 16, PRODUCT>(s, q, v).to_bits());
                assert_eq!(difference[i][j].to_bits(), pair::<_, 16, SQUARED_DIFFERENCE>(s, q, v).to_bits());
            }
        }
        let (p, n) = product_and_squared_norm::<_, 16>(s, &qs[0], &vs[0]);
        assert_eq!(p.to_bits(), pair::<_, 16, PRODUCT>(s, &qs[0], &vs[0]).to_bits());
        assert_eq!(n.to_bits(), squared_norm::<_, 16>(s, &vs[0]).to_bits());
        #[cfg(target_arch = "x86_64")]
        if let Some(v3) = pulp::x86::V3::try_new() {
            assert_eq!(tile::<_, 2, 3, 2, PRODUCT>(v3, [&qs[0], &qs[1], &qs[2]], [&vs[0], &vs[1]]), product);
        }
    }

    // Proves the register reduction adds the lanes in the documented tree
    // order at every register width (so every instruction set gives the
    // same bits): compared with the tree written out on 16 scalars, on
    // lanes whose sum depends on the order.
    #[test]
    fn reduction_follows_the_tree_at_every_width() {
        let lanes: [f32; LANES] =
            std::array::from_fn(|i| (1.0 + i as f32 * 0.37).powi(7) * if i % 3 == 0 { -1.0 } else { 1.0 });
        let mut tree = lanes;
        for width in [8, 4, 2, 1] {
            for i in 0..width {
                tree[i] += tree[i + width];
            }
        }
        let scalar: [f32; 16] = lanes;
        assert_eq!(reduce::<_, 16>(pulp::Scalar::new(), scalar).to_bits(), tree[0].to_bits());
        #[cfg(target_arch = "x86_64")]
        {
            if let Some(v3) = pulp::x86::V3::try_new() {
                let regs: [pulp::f32x8; 2] = bytemuck::cast(lanes);
                assert_eq!(reduce::<_, 2>(v3, regs).to_bits(), tree[0].to_bits());
            }
            if let Some(v4) = pulp::x86::V4::try_new() {
                let regs: [pulp::f32x16; 1] = bytemuck::cast(lanes);
                assert_eq!(reduce::<_, 1>(v4, regs).to_bits(), tree[0].to_bits());
            }
        }
    }

    // Proves a zero vector or query gives cosine 0, not NaN.
    #[test]
    fn cosine_of_a_zero_vector_is_zero() {
        assert_eq!(cosine(0.0, 0.0, 4.0), 0.0);
        assert_eq!(cosine(0.0, 2.0, 0.0), 0.0);
        assert_eq!(cosine(4.0, 2.0, 4.0), 1.0);
    }
}
