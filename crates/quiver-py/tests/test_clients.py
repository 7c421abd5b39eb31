"""Real clients built from a store's views (skipped when the client is not
installed; .ci/run installs both): faiss's exact search must agree with
Quiver's, and an hnswlib graph built from the live slots must reach
recall@10 >= 0.95 against Quiver's exact search on 10^4 vectors.

Quiver hands each client its zero-copy view (`Snapshot.vectors()` indexed
by the live slots); the client copies into its own index as it always does.
"""

import numpy as np
import pytest

import quiver


@pytest.fixture
def store_with_garbage(path):
    """10^4 vectors of 32 elements, with overwrites and deletes, so the slot
    view has dead rows that the live slots must skip."""
    rng = np.random.default_rng(11)
    store = quiver.open(path, 32)
    store.store_batch(np.arange(10_000), rng.standard_normal((10_000, 32), dtype=np.float32))
    store.store_batch(np.arange(0, 10_000, 7), rng.standard_normal((1429, 32), dtype=np.float32))
    for i in range(1, 10_000, 97):
        store.delete(i)
    yield store
    store.close()


def live_view(snapshot: quiver.Snapshot) -> tuple[np.ndarray, np.ndarray]:
    slots, ids = snapshot.live_slots()
    return snapshot.vectors()[slots], ids


@pytest.mark.parametrize("metric", ["dot", "l2"])
def test_faiss_exact_search_equals_quivers(store_with_garbage, metric):
    """faiss IndexFlat over the live vectors returns Quiver's ids, and its
    scores to 1e-5 (relative)."""
    faiss = pytest.importorskip("faiss")
    snap = store_with_garbage.snapshot()
    vectors, ids = live_view(snap)
    index = faiss.IndexIDMap(faiss.IndexFlatIP(32) if metric == "dot" else faiss.IndexFlatL2(32))
    index.add_with_ids(vectors, ids.view(np.int64))
    queries = np.random.default_rng(5).standard_normal((20, 32), dtype=np.float32)
    f_scores, f_ids = index.search(queries, 10)
    q_ids, q_scores = snap.search(queries, 10, metric=metric)
    assert (f_ids.view(np.uint64) == q_ids).all()
    np.testing.assert_allclose(f_scores, q_scores, rtol=1e-5, atol=1e-5)


def test_hnswlib_recall_against_exact_search(store_with_garbage):
    """An hnswlib graph over the live vectors finds >= 95% of Quiver's exact
    top-10 (cosine) for 200 queries."""
    hnswlib = pytest.importorskip("hnswlib")
    snap = store_with_garbage.snapshot()
    vectors, ids = live_view(snap)
    index = hnswlib.Index(space="cosine", dim=32)
    index.init_index(max_elements=len(ids), ef_construction=200, M=16, random_seed=1)
    index.add_items(vectors, ids, num_threads=1)
    index.set_ef(100)
    queries = np.random.default_rng(9).standard_normal((200, 32), dtype=np.float32)
    approx, _ = index.knn_query(queries, k=10, num_threads=1)
    exact, _ = snap.search(queries, 10, metric="cosine")
    found = sum(len(set(a.tolist()) & set(e.tolist())) for a, e in zip(approx, exact, strict=True))
    recall = found / exact.size
    print(f"hnswlib recall@10 = {recall:.4f}")
    assert recall >= 0.95
