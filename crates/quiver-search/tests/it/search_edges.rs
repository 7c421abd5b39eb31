//! Edge cases: k = 0, k past the store's size, empty stores and batches,
//! and refused queries with their messages.

use quiver_search::{Metric, Search, SearchError, SearchOptions};
use quiver_storage::VectorStore;

use crate::common::{store, vectors};

// Proves k = 0 returns no hit, and a k past the number of vectors returns
// them all, sorted.
#[test]
fn k_zero_and_k_past_the_end() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = store::<f32>(tmp.path(), 4, &vectors(10, 4, 1));
    let snapshot = store.snapshot();
    let q = [1.0, 2.0, 3.0, 4.0];
    assert!(snapshot.search(&q, 0, Metric::Dot).expect("k = 0").is_empty());
    assert_eq!(snapshot.search_batch(&[q, q].concat(), 0, Metric::L2).expect("k = 0"), vec![Vec::new(), Vec::new()]);
    let all = snapshot.search(&q, usize::MAX, Metric::L2).expect("k = max");
    assert_eq!(all.len(), 10);
    assert!(all.windows(2).all(|w| w[0].score <= w[1].score));
}

// Proves an empty store gives empty results (one empty list per query),
// and an empty batch gives no list.
#[test]
fn empty_store_and_empty_batch() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store: VectorStore<half::f16> = VectorStore::open(tmp.path().join("v"), 3).expect("open");
    let snapshot = store.snapshot();
    assert!(snapshot.search(&[1.0, 2.0, 3.0], 5, Metric::Cosine).expect("search").is_empty());
    assert_eq!(snapshot.search_batch(&[0.0; 6], 5, Metric::Dot).expect("batch"), vec![Vec::new(), Vec::new()]);
    assert!(snapshot.search_batch(&[], 5, Metric::Dot).expect("empty batch").is_empty());
}

// Proves a query of the wrong length, a batch that is not a whole number
// of queries, and NaN or infinite values are refused with errors that say
// what was wrong — also on an empty store — and that the messages are
// sentences naming the numbers.
#[test]
fn bad_queries_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = store::<i8>(tmp.path(), 4, &vectors(5, 4, 2));
    let snapshot = store.snapshot();
    let short = snapshot.search(&[1.0, 2.0, 3.0], 3, Metric::Dot);
    assert_eq!(short, Err(SearchError::QueryLength { expected: 4, actual: 3 }));
    let message = short.expect_err("refused").to_string();
    assert!(message.contains("3 elements") && message.contains("have 4"), "{message}");

    let ragged = snapshot.search_batch(&[0.0; 7], 3, Metric::Dot);
    assert_eq!(ragged, Err(SearchError::BatchLength { dimension: 4, actual: 7 }));

    let mut batch = vec![0.5f32; 12];
    batch[6] = f32::NAN;
    let nan = snapshot.search_batch(&batch, 3, Metric::L2).expect_err("NaN refused");
    assert!(matches!(nan, SearchError::NonFiniteQuery { query: 1, element: 2, value } if value.is_nan()));
    assert!(nan.to_string().contains("query 1") && nan.to_string().contains("element 2"), "{nan}");
    let inf = snapshot.search_with(&[0.0, f32::INFINITY, 0.0, 0.0], &SearchOptions::new(1, Metric::Cosine));
    assert!(matches!(inf, Err(SearchError::NonFiniteQuery { query: 0, element: 1, .. })));

    let empty: VectorStore<f32> = VectorStore::open(tmp.path().join("empty"), 4).expect("open");
    let refused = empty.snapshot().search(&[1.0; 5], 1, Metric::Dot);
    assert_eq!(refused, Err(SearchError::QueryLength { expected: 4, actual: 5 }));
}

// Proves a stored vector holding NaN ranks after every other, whatever the
// metric's direction, and still appears when k reaches it.
#[test]
fn nan_scores_rank_last() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store: VectorStore<f32> = VectorStore::open(tmp.path().join("v"), 2).expect("open");
    store.store_batch(&[(1, &[f32::NAN, 0.0][..]), (2, &[-5.0, 0.0][..]), (3, &[5.0, 0.0][..])]).expect("store");
    let snapshot = store.snapshot();
    for metric in [Metric::Dot, Metric::Cosine, Metric::L2] {
        let hits = snapshot.search(&[1.0, 0.0], 3, metric).expect("search");
        assert_eq!(hits.len(), 3);
        assert_eq!(hits[2].id, 1, "{metric:?}: {hits:?}");
        assert!(hits[2].score.is_nan());
        assert!(!snapshot.search(&[1.0, 0.0], 2, metric).expect("search").iter().any(|h| h.id == 1));
    }
}
