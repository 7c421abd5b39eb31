//! The scan: the candidates split into contiguous parts, one per thread,
//! each part scored by the kernels into its own top-k per query, the parts'
//! selections merged at the end (in part order, though the total order of
//! the selection makes the result independent of it).
//!
//! A single query streams each vector through the kernel once: memory
//! bound. A batch gathers blocks of vectors (widened to `f32` once per
//! block, not once per query) and scores register tiles of queries ×
//! vectors, so each vector byte read from memory serves every query of the
//! batch: compute bound.

use std::ops::Range;

use quiver_storage::{Snapshot, SnapshotIter};

use crate::element::SearchElement;
use crate::isa::{self, InstructionSet, Vectorized};
use crate::kernel::{PRODUCT, SQUARED_DIFFERENCE, cosine, pair, product_and_squared_norm, squared_norm, tile};
use crate::topk::TopK;
use crate::{Hit, Metric, SearchOptions};

/// Vectors gathered (and widened) per block of a batch: 16 × 768 `f32` is
/// 48 KiB, which stays in L2 while every query tile passes over it.
const BLOCK_VECTORS: usize = 16;

/// What every part of one search shares.
struct Plan<'q> {
    /// `n` queries of `dim` elements, row after row.
    queries: &'q [f32],
    dim: usize,
    n: usize,
    metric: Metric,
    k: usize,
    /// For cosine: each query's norm; otherwise empty.
    query_norms: Vec<f32>,
}

impl Plan<'_> {
    #[inline(always)]
    fn query(&self, i: usize) -> &[f32] {
        &self.queries[i * self.dim..(i + 1) * self.dim]
    }

    fn tops(&self) -> Vec<TopK> {
        (0..self.n).map(|_| TopK::new(self.metric, self.k)).collect()
    }
}

/// The candidates of one part: a stretch of the snapshot in file order, or
/// of a looked-up id list. One type for both, so each loop is compiled once.
enum Source<'s, T: SearchElement> {
    Scan(std::iter::Take<std::iter::Skip<SnapshotIter<'s, T>>>),
    Ids(std::slice::Iter<'s, (u64, &'s [T])>),
}

impl<'s, T: SearchElement> Iterator for Source<'s, T> {
    type Item = (u64, &'s [T]);

    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Source::Scan(it) => it.next(),
            Source::Ids(it) => it.next().copied(),
        }
    }
}

type Predicate<'p> = Option<&'p (dyn Fn(u64) -> bool + Sync + 'p)>;

/// Runs a validated search: `n >= 1` queries of the snapshot's dimension,
/// `k >= 1`.
pub(crate) fn run<T: SearchElement>(
    snapshot: &Snapshot<T>,
    queries: &[f32],
    n: usize,
    options: &SearchOptions<'_>,
) -> Vec<Vec<Hit>> {
    let dim = snapshot.dim();
    let query_norms = match options.metric {
        Metric::Cosine => {
            // Any register width gives the same bits; the baseline's will do.
            let simd = pulp::Scalar::new();
            (0..n).map(|i| squared_norm::<_, 16>(simd, &queries[i * dim..(i + 1) * dim]).sqrt()).collect()
        }
        _ => Vec::new(),
    };
    let plan = Plan { queries, dim, n, metric: options.metric, k: options.k, query_norms };
    let predicate: Predicate<'_> = options.predicate.as_deref().map(|p| p as _);
    let isa = options.instruction_set;
    let tops = match options.ids {
        Some(ids) => {
            let mut ids = ids.to_vec();
            ids.sort_unstable();
            ids.dedup();
            let found: Vec<(u64, &[T])> = ids.iter().filter_map(|&id| Some((id, snapshot.get(id)?))).collect();
            let threads = options.threads_for(found.len(), dim, n);
            in_parts(found.len(), threads, |r| score_part(isa, Source::Ids(found[r].iter()), &plan, predicate))
        }
        None => {
            // The first scan of a view sorts its entries by slot; do it here
            // rather than in whichever thread comes first.
            let total = snapshot.iter().len();
            let threads = options.threads_for(total, dim, n);
            in_parts(total, threads, |r| {
                let part = snapshot.iter().skip(r.start).take(r.len());
                score_part(isa, Source::Scan(part), &plan, predicate)
            })
        }
    };
    tops.into_iter().map(TopK::into_hits).collect()
}

/// Splits `0..total` into `threads` contiguous parts, runs `score` on each
/// (the first on this thread) and merges their selections.
fn in_parts(total: usize, threads: usize, score: impl Fn(Range<usize>) -> Vec<TopK> + Sync) -> Vec<TopK> {
    if threads <= 1 {
        return score(0..total);
    }
    let part = |i: usize| total * i / threads..total * (i + 1) / threads;
    std::thread::scope(|s| {
        let score = &score;
        let others: Vec<_> = (1..threads).map(|i| s.spawn(move || score(part(i)))).collect();
        let mut tops = score(part(0));
        for other in others {
            // A panic in a part (say, in the caller's filter) is the
            // caller's panic: pass it on unchanged.
            let theirs = other.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            for (mine, theirs) in tops.iter_mut().zip(theirs) {
                mine.merge(theirs);
            }
        }
        tops
    })
}

/// One part, scored under the widest instruction set allowed.
fn score_part<T: SearchElement>(
    isa: InstructionSet,
    source: Source<'_, T>,
    plan: &Plan<'_>,
    predicate: Predicate<'_>,
) -> Vec<TopK> {
    isa::run(isa, Part { source, plan, predicate })
}

struct Part<'a, 's, T: SearchElement> {
    source: Source<'s, T>,
    plan: &'a Plan<'a>,
    predicate: Predicate<'a>,
}

impl<T: SearchElement> Vectorized for Part<'_, '_, T> {
    type Output = Vec<TopK>;

    // Everything below is `#[inline(always)]`, so it is compiled for the
    // instruction set `isa::run` chose.
    #[inline(always)]
    fn call<S: pulp::Simd, const R: usize>(self, simd: S) -> Vec<TopK> {
        let Part { source, plan, predicate } = self;
        let mut tops = plan.tops();
        let source = source.filter(|&(id, _)| predicate.is_none_or(|keep| keep(id)));
        if plan.n == 1 {
            match plan.metric {
                Metric::Dot => single::<S, R, T, false, false>(simd, source, plan, &mut tops[0]),
                Metric::Cosine => single::<S, R, T, false, true>(simd, source, plan, &mut tops[0]),
                Metric::L2 => single::<S, R, T, true, false>(simd, source, plan, &mut tops[0]),
            }
            return tops;
        }
        // Tile shapes fill each set's registers: 16 accumulators of one
        // AVX-512 register each (of 32); 8 AVX2 registers (of 16, a 16-lane
        // accumulator takes two) — measured: docs/BENCHMARKS.md.
        if R == 1 {
            match plan.metric {
                Metric::Dot => batch::<S, R, T, 4, 4, PRODUCT, false>(simd, source, plan, &mut tops),
                Metric::Cosine => batch::<S, R, T, 4, 4, PRODUCT, true>(simd, source, plan, &mut tops),
                Metric::L2 => batch::<S, R, T, 4, 4, SQUARED_DIFFERENCE, false>(simd, source, plan, &mut tops),
            }
        } else {
            match plan.metric {
                Metric::Dot => batch::<S, R, T, 2, 2, PRODUCT, false>(simd, source, plan, &mut tops),
                Metric::Cosine => batch::<S, R, T, 2, 2, PRODUCT, true>(simd, source, plan, &mut tops),
                Metric::L2 => batch::<S, R, T, 2, 2, SQUARED_DIFFERENCE, false>(simd, source, plan, &mut tops),
            }
        }
        tops
    }
}

/// One query: every vector through the kernel once.
#[inline(always)]
fn single<'s, S: pulp::Simd, const R: usize, T: SearchElement, const SQ: bool, const COSINE: bool>(
    simd: S,
    source: impl Iterator<Item = (u64, &'s [T])>,
    plan: &Plan<'_>,
    top: &mut TopK,
) {
    let query = plan.query(0);
    let query_norm = plan.query_norms.first().copied().unwrap_or(0.0);
    // Unused for f32, whose vectors are scored in place.
    let mut widened = vec![0.0f32; plan.dim];
    // No software prefetch: a load of each page's first element one vector
    // ahead (the safe stand-in) measured slower, 0.61-0.66 of the Vec sum's
    // bandwidth against 0.88-0.89 without; the hardware prefetcher does
    // better alone.
    for (id, vector) in source {
        let vector = T::as_f32(vector, &mut widened);
        let score = if COSINE {
            let (product, squared_norm) = product_and_squared_norm::<S, R>(simd, query, vector);
            cosine(product, query_norm, squared_norm)
        } else {
            pair::<S, R, SQ>(simd, query, vector)
        };
        top.push(id, score);
    }
}

/// A batch: blocks of vectors, each scored against every query in `Q × V`
/// register tiles (leftover queries and vectors in tiles of one).
#[inline(always)]
fn batch<
    's,
    S: pulp::Simd,
    const R: usize,
    T: SearchElement,
    const Q: usize,
    const V: usize,
    const SQ: bool,
    const COSINE: bool,
>(
    simd: S,
    mut source: impl Iterator<Item = (u64, &'s [T])>,
    plan: &Plan<'_>,
    tops: &mut [TopK],
) {
    let dim = plan.dim;
    let mut widened = vec![0.0f32; BLOCK_VECTORS * dim];
    let mut ids = [0u64; BLOCK_VECTORS];
    let mut stored: [&[T]; BLOCK_VECTORS] = [&[]; BLOCK_VECTORS];
    let mut norms = [0.0f32; BLOCK_VECTORS];
    loop {
        let mut len = 0;
        while len < BLOCK_VECTORS {
            let Some((id, v)) = source.next() else { break };
            (ids[len], stored[len]) = (id, v);
            len += 1;
        }
        if len == 0 {
            return;
        }
        let mut rows: [&[f32]; BLOCK_VECTORS] = [&[]; BLOCK_VECTORS];
        for ((row, v), buf) in rows.iter_mut().zip(&stored[..len]).zip(widened.chunks_exact_mut(dim)) {
            *row = T::as_f32(v, buf);
        }
        if COSINE {
            for (norm, row) in norms.iter_mut().zip(&rows[..len]) {
                *norm = squared_norm::<S, R>(simd, row);
            }
        }
        let block = Block { rows: &rows[..len], ids: &ids[..len], norms: &norms[..len] };
        // Query tiles outside, vector tiles inside: a query tile stays in L1
        // while the block (in L2) passes under it. Measured at 10^5 x 768,
        // 64 queries: 32-35 G multiply-adds/s, against 26 for the other
        // order; blocks of 8 vectors gave 25-30, of 32 the same as 16.
        let mut q0 = 0;
        while q0 + Q <= plan.n {
            block_for_queries::<S, R, Q, V, SQ, COSINE>(simd, plan, q0, &block, tops);
            q0 += Q;
        }
        while q0 < plan.n {
            block_for_queries::<S, R, 1, V, SQ, COSINE>(simd, plan, q0, &block, tops);
            q0 += 1;
        }
        if len < BLOCK_VECTORS {
            return;
        }
    }
}

/// One gathered block of a batch.
struct Block<'b> {
    rows: &'b [&'b [f32]],
    ids: &'b [u64],
    norms: &'b [f32],
}

/// Queries `q0..q0 + Q` against every vector of `block`.
#[inline(always)]
fn block_for_queries<
    S: pulp::Simd,
    const R: usize,
    const Q: usize,
    const V: usize,
    const SQ: bool,
    const COSINE: bool,
>(
    simd: S,
    plan: &Plan<'_>,
    q0: usize,
    block: &Block<'_>,
    tops: &mut [TopK],
) {
    let mut v0 = 0;
    while v0 + V <= block.rows.len() {
        tile_into::<S, R, Q, V, SQ, COSINE>(simd, plan, q0, block, v0, tops);
        v0 += V;
    }
    while v0 < block.rows.len() {
        tile_into::<S, R, Q, 1, SQ, COSINE>(simd, plan, q0, block, v0, tops);
        v0 += 1;
    }
}

/// Scores one tile and offers its scores to the queries' selections.
#[inline(always)]
fn tile_into<S: pulp::Simd, const R: usize, const Q: usize, const V: usize, const SQ: bool, const COSINE: bool>(
    simd: S,
    plan: &Plan<'_>,
    q0: usize,
    block: &Block<'_>,
    v0: usize,
    tops: &mut [TopK],
) {
    let queries: [&[f32]; Q] = std::array::from_fn(|i| plan.query(q0 + i));
    let vectors: [&[f32]; V] = std::array::from_fn(|j| block.rows[v0 + j]);
    let raw = tile::<S, R, Q, V, SQ>(simd, queries, vectors);
    for (i, row) in raw.iter().enumerate() {
        let top = &mut tops[q0 + i];
        for (j, &r) in row.iter().enumerate() {
            let score = if COSINE { cosine(r, plan.query_norms[q0 + i], block.norms[v0 + j]) } else { r };
            top.push(block.ids[v0 + j], score);
        }
    }
}
