//! Shared helpers: small stores of every element type built from small
//! integers (so Dot and L2 are exact in f32 and f64 alike), and the
//! brute-force reference every search is checked against.

use half::{bf16, f16};
use quiver_search::{Hit, Metric, SearchElement};
use quiver_storage::VectorStore;

/// An element type built from a small integer (-4..=4) and read back as
/// f64, exactly.
pub(crate) trait TestElement: SearchElement + Copy {
    fn from_int(i: i32) -> Self;
    fn to_f64(self) -> f64;
}

macro_rules! float_element {
    ($t:ty, $from:expr, $to:expr) => {
        impl TestElement for $t {
            fn from_int(i: i32) -> Self {
                $from(i)
            }
            fn to_f64(self) -> f64 {
                $to(self)
            }
        }
    };
}

float_element!(f32, |i| i as f32, f64::from);
float_element!(f64, f64::from, |x| x);
float_element!(i8, |i| i as i8, f64::from);
// u8 cannot hold negatives: shifted up by 4.
float_element!(u8, |i| (i + 4) as u8, f64::from);
float_element!(f16, |i| f16::from_f32(i as f32), |x: f16| f64::from(x.to_f32()));
float_element!(bf16, |i| bf16::from_f32(i as f32), |x: bf16| f64::from(x.to_f32()));

/// A deterministic small integer in -4..=4 for (seed, index).
pub(crate) fn small_int(seed: u64, i: u64) -> i32 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    (x % 9) as i32 - 4
}

/// The vectors of a test store: `count` ids (0, 3, 6, ...; not slots) of
/// `dim` small integers, where every fifth id repeats its predecessor's
/// vector (ties that only the id can break) and id 0 is all zeros.
pub(crate) fn vectors(count: u64, dim: usize, seed: u64) -> Vec<(u64, Vec<i32>)> {
    let mut out: Vec<(u64, Vec<i32>)> = Vec::new();
    for n in 0..count {
        let v = if n == 0 {
            vec![0; dim]
        } else if n % 5 == 0 {
            out[n as usize - 1].1.clone()
        } else {
            (0..dim as u64).map(|i| small_int(seed ^ n, i)).collect()
        };
        out.push((n * 3, v));
    }
    out
}

/// A store of `T` at `dir/name` holding `vectors`, written in batches.
pub(crate) fn store<T: TestElement>(dir: &std::path::Path, dim: usize, vectors: &[(u64, Vec<i32>)]) -> VectorStore<T> {
    let store: VectorStore<T> = VectorStore::open(dir.join(std::any::type_name::<T>()), dim).expect("open");
    for chunk in vectors.chunks(500) {
        let owned: Vec<(u64, Vec<T>)> =
            chunk.iter().map(|(id, v)| (*id, v.iter().map(|&i| T::from_int(i)).collect())).collect();
        let refs: Vec<(u64, &[T])> = owned.iter().map(|(id, v)| (*id, &v[..])).collect();
        store.store_batch(&refs).expect("store_batch");
    }
    store
}

/// The brute-force reference: every candidate scored in f64, fully sorted
/// best first, ties by smaller id; the first `k`.
pub(crate) fn reference<T: TestElement>(
    candidates: impl Iterator<Item = (u64, Vec<T>)>,
    query: &[f32],
    k: usize,
    metric: Metric,
) -> Vec<(u64, f64)> {
    let q: Vec<f64> = query.iter().map(|&x| f64::from(x)).collect();
    let mut scored: Vec<(u64, f64)> = candidates
        .map(|(id, v)| {
            let v: Vec<f64> = v.iter().map(|x| x.to_f64()).collect();
            let dot: f64 = q.iter().zip(&v).map(|(a, b)| a * b).sum();
            let score = match metric {
                Metric::Dot => dot,
                Metric::L2 => q.iter().zip(&v).map(|(a, b)| (a - b) * (a - b)).sum(),
                Metric::Cosine => {
                    let (qq, vv): (f64, f64) = (q.iter().map(|a| a * a).sum(), v.iter().map(|a| a * a).sum());
                    if qq == 0.0 || vv == 0.0 { 0.0 } else { dot / (qq.sqrt() * vv.sqrt()) }
                }
            };
            // `+ 0.0`: -0.0 and 0.0 tie, as the search documents.
            (id, score + 0.0)
        })
        .collect();
    scored.sort_by(|a, b| {
        let by_score = if metric == Metric::L2 { a.1.total_cmp(&b.1) } else { b.1.total_cmp(&a.1) };
        by_score.then(a.0.cmp(&b.0))
    });
    scored.truncate(k);
    scored
}

/// Checks `hits` against the reference. Dot and L2 over small integers are
/// exact, so ids and scores must match exactly; cosine divides and takes
/// roots, so scores must match to 1e-5 and ids may differ only between
/// reference scores that close (equal f32 scores must still be in id
/// order).
pub(crate) fn check(hits: &[Hit], want: &[(u64, f64)], metric: Metric, context: &str) {
    assert_eq!(hits.len(), want.len(), "{context}: {hits:?} vs {want:?}");
    for (rank, (h, w)) in hits.iter().zip(want).enumerate() {
        match metric {
            Metric::Dot | Metric::L2 => {
                assert_eq!((h.id, f64::from(h.score)), *w, "{context}: rank {rank}: {hits:?} vs {want:?}")
            }
            Metric::Cosine => {
                assert!((f64::from(h.score) - w.1).abs() < 1e-5, "{context}: rank {rank}: {hits:?} vs {want:?}");
                if h.id != w.0 {
                    let tied = want.iter().any(|o| o.0 == h.id && (o.1 - w.1).abs() < 1e-5);
                    assert!(tied, "{context}: rank {rank}: id {} is not a near tie: {hits:?} vs {want:?}", h.id);
                }
            }
        }
    }
    for pair in hits.windows(2) {
        if pair[0].score == pair[1].score {
            assert!(pair[0].id < pair[1].id, "{context}: equal scores out of id order: {hits:?}");
        }
    }
}

/// Queries of small integers, the first of them all zeros.
pub(crate) fn queries(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    (0..n)
        .flat_map(|q| {
            (0..dim).map(move |i| if q == 0 { 0.0 } else { small_int(seed + 1000 + q as u64, i as u64) as f32 })
        })
        .collect()
}

pub(crate) const METRICS: [Metric; 3] = [Metric::Dot, Metric::Cosine, Metric::L2];
