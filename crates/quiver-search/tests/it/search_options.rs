//! Filters (predicate and id set), threads, and isolation from later
//! writes.

use quiver_search::{Metric, Search, SearchOptions};

use crate::common::{METRICS, check, queries, reference, store, vectors};

// Proves a predicate filter scores exactly the vectors it accepts: the
// result equals the reference over the accepted ones, on every metric,
// single and batched.
#[test]
fn predicate_filter_equals_filtered_reference() {
    let (dim, count) = (20, 400);
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = store::<f32>(tmp.path(), dim, &vectors(count, dim, 11));
    let snapshot = store.snapshot();
    let qs = queries(4, dim, 11);
    let keep = |id: u64| id % 4 == 1 || id < 30;
    for metric in METRICS {
        let options = SearchOptions::new(15, metric).filter(keep);
        let batch = snapshot.search_batch_with(&qs, &options).expect("batch");
        for (i, q) in qs.chunks(dim).enumerate() {
            let candidates = snapshot.iter().filter(|(id, _)| keep(*id)).map(|(id, v)| (id, v.to_vec()));
            let want = reference(candidates, q, 15, metric);
            let got = snapshot.search_with(q, &options).expect("search");
            check(&got, &want, metric, &format!("{metric:?} query {i}"));
            assert_eq!(batch[i], got);
        }
    }
}

// Proves an id set scores only those ids — in any order, with duplicates
// and ids absent from the store ignored — and combines with a predicate.
#[test]
fn id_set_scores_only_its_ids() {
    let (dim, count) = (20, 400);
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = store::<f32>(tmp.path(), dim, &vectors(count, dim, 12));
    let snapshot = store.snapshot();
    let qs = queries(3, dim, 12);
    // Ids are multiples of 3 below 1200; 1 and 5000 are absent.
    let ids = [900, 3, 3, 1, 5000, 42, 600, 12, 900, 0, 15];
    let present = [0u64, 3, 12, 15, 42, 600, 900];
    for metric in METRICS {
        let options = SearchOptions::new(100, metric).ids(&ids);
        for (i, q) in qs.chunks(dim).enumerate() {
            let candidates = present.iter().map(|&id| (id, snapshot.get(id).expect("present").to_vec()));
            let want = reference(candidates, q, 100, metric);
            let got = snapshot.search_with(q, &options).expect("search");
            check(&got, &want, metric, &format!("{metric:?} query {i}"));
            assert_eq!(got.len(), present.len());
        }
        let both = SearchOptions::new(100, metric).ids(&ids).filter(|id| id % 2 == 0);
        let got = snapshot.search_with(&qs[dim..2 * dim], &both).expect("search");
        let mut got_ids: Vec<u64> = got.iter().map(|h| h.id).collect();
        got_ids.sort_unstable();
        assert_eq!(got_ids, [0, 12, 42, 600, 900]);
    }
}

// Proves threads 1, 2 and "one per core" give identical hits and score
// bits, on a store big enough that two threads are really used, for single
// queries, batches, filters and id sets.
#[test]
fn threads_give_identical_results() {
    // 9,000 x 64: 576,000 element products per query, two threads' worth.
    let (dim, count) = (64, 9000);
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = store::<f32>(tmp.path(), dim, &vectors(count, dim, 13));
    let snapshot = store.snapshot();
    let qs = queries(5, dim, 13);
    let ids: Vec<u64> = (0..count * 3).step_by(2).collect();
    for metric in METRICS {
        for k in [1, 10, 100] {
            let run = |threads: usize| {
                let plain = SearchOptions::new(k, metric).threads(threads);
                let filtered = SearchOptions::new(k, metric).threads(threads).filter(|id| id % 7 != 3);
                let by_ids = SearchOptions::new(k, metric).threads(threads).ids(&ids);
                (
                    snapshot.search_with(&qs[dim..2 * dim], &plain).expect("search"),
                    snapshot.search_batch_with(&qs, &plain).expect("batch"),
                    snapshot.search_batch_with(&qs, &filtered).expect("filtered"),
                    snapshot.search_batch_with(&qs, &by_ids).expect("ids"),
                )
            };
            let one = run(1);
            assert_eq!(run(2), one, "{metric:?} k={k}: 2 threads");
            assert_eq!(run(0), one, "{metric:?} k={k}: one per core");
            assert_eq!(run(3), one, "{metric:?} k={k}: 3 threads");
        }
    }
}

// Proves a snapshot taken before overwrites and deletes keeps searching
// the old contents, while a new snapshot sees the new ones.
#[test]
fn snapshot_searches_its_own_contents() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store: quiver_storage::VectorStore<f32> =
        quiver_storage::VectorStore::open(tmp.path().join("v"), 2).expect("open");
    store.store_batch(&[(1, &[1.0, 0.0][..]), (2, &[0.5, 0.0][..]), (3, &[0.1, 0.0][..])]).expect("store");
    let before = store.snapshot();
    store.store(3, &[9.0, 0.0]).expect("overwrite");
    assert!(store.delete(1).expect("delete"));
    store.store(4, &[2.0, 0.0]).expect("insert");
    let ids = |hits: Vec<quiver_search::Hit>| hits.iter().map(|h| (h.id, h.score)).collect::<Vec<_>>();
    assert_eq!(ids(before.search(&[1.0, 0.0], 10, Metric::Dot).expect("old")), [(1, 1.0), (2, 0.5), (3, 0.1)]);
    let after = store.snapshot();
    assert_eq!(ids(after.search(&[1.0, 0.0], 10, Metric::Dot).expect("new")), [(3, 9.0), (4, 2.0), (2, 0.5)]);
}
