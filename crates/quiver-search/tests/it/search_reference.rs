//! Search equals the brute-force reference, on every metric and every
//! element type, single and batched, across instruction sets.

use proptest::prelude::*;
use quiver_search::{InstructionSet, Metric, Search, SearchOptions};

use crate::common::{METRICS, TestElement, check, queries, reference, store, vectors};

fn every_metric_and_k<T: TestElement>() {
    // Dimension 37: two whole 16-lane chunks and a tail of 5.
    let (dim, count) = (37, 300);
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = vectors(count, dim, 7);
    let store = store::<T>(tmp.path(), dim, &data);
    let snapshot = store.snapshot();
    let qs = queries(6, dim, 7);
    let candidates = || snapshot.iter().map(|(id, v)| (id, v.to_vec()));
    for metric in METRICS {
        for k in [1, 10, 64, 299, 300, 1000] {
            let batch = snapshot.search_batch(&qs, k, metric).expect("batch");
            assert_eq!(batch.len(), 6);
            for (i, query) in qs.chunks(dim).enumerate() {
                let context = format!("{} {metric:?} k={k} query {i}", std::any::type_name::<T>());
                let want = reference(candidates(), query, k, metric);
                let single = snapshot.search(query, k, metric).expect("search");
                check(&single, &want, metric, &context);
                // The batch gives the single query's hits, bit for bit.
                assert_eq!(batch[i], single, "{context}: batch differs from single");
            }
        }
    }
}

// Proves search equals the reference for f32 stores, every metric, k from
// 1 past the store's size, ties broken by id, zero query and zero vector
// included.
#[test]
fn f32_equals_reference() {
    every_metric_and_k::<f32>();
}

// Proves the same for f64 stores (scored in f32).
#[test]
fn f64_equals_reference() {
    every_metric_and_k::<f64>();
}

// Proves the same for i8 stores, widened in the kernel.
#[test]
fn i8_equals_reference() {
    every_metric_and_k::<i8>();
}

// Proves the same for u8 stores.
#[test]
fn u8_equals_reference() {
    every_metric_and_k::<u8>();
}

// Proves the same for f16 stores.
#[test]
fn f16_equals_reference() {
    every_metric_and_k::<half::f16>();
}

// Proves the same for bf16 stores.
#[test]
fn bf16_equals_reference() {
    every_metric_and_k::<half::bf16>();
}

// Proves every instruction-set cap gives the same hits and the same score
// bits, single and batched, on every metric (the kernels' documented
// determinism).
#[test]
fn instruction_sets_agree_bit_for_bit() {
    let (dim, count) = (53, 200);
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = store::<f32>(tmp.path(), dim, &vectors(count, dim, 3));
    let snapshot = store.snapshot();
    // Non-integer queries, so that rounding happens and could differ.
    let qs: Vec<f32> = queries(9, dim, 3).iter().enumerate().map(|(i, x)| x * 0.37 + (i % 7) as f32 * 0.011).collect();
    for metric in METRICS {
        let run = |isa| {
            let options = SearchOptions::new(25, metric).instruction_set(isa);
            let single = snapshot.search_with(&qs[dim..2 * dim], &options).expect("search");
            (single, snapshot.search_batch_with(&qs, &options).expect("batch"))
        };
        let widest = run(InstructionSet::Avx512);
        for isa in [InstructionSet::Avx2, InstructionSet::Baseline] {
            assert_eq!(run(isa), widest, "{metric:?} under {isa:?}");
        }
        assert_eq!(widest.1[1], widest.0, "{metric:?}: batch row 1 differs from the single query");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    // Proves, over small random stores (sizes 0..40, dimensions 1..40,
    // overwrites included), that Dot and L2 searches equal the reference
    // exactly and batches equal single queries.
    #[test]
    fn random_stores_equal_reference(
        count in 0u64..40,
        dim in 1usize..40,
        seed in any::<u64>(),
        k in 0usize..50,
        l2 in any::<bool>(),
    ) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = store::<f32>(tmp.path(), dim, &vectors(count, dim, seed));
        // Overwrite a few ids with the next one's vector, so slots and ids
        // diverge.
        for (id, v) in vectors(count, dim, seed ^ 1).iter().step_by(7) {
            let v: Vec<f32> = v.iter().map(|&i| i as f32).collect();
            store.store(*id, &v).expect("overwrite");
        }
        let snapshot = store.snapshot();
        let metric = if l2 { Metric::L2 } else { Metric::Dot };
        let qs = queries(3, dim, seed);
        let batch = snapshot.search_batch(&qs, k, metric).expect("batch");
        for (i, q) in qs.chunks(dim).enumerate() {
            let want = reference(snapshot.iter().map(|(id, v)| (id, v.to_vec())), q, k, metric);
            let got = snapshot.search(q, k, metric).expect("search");
            check(&got, &want, metric, &format!("seed {seed} query {i}"));
            prop_assert_eq!(&batch[i], &got);
        }
    }
}
