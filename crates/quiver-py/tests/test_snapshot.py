"""Snapshots: isolation, the strided view of every slot, the live slots,
and exact search against a NumPy brute force."""

import numpy as np
import pytest

import quiver


def brute_force(data: np.ndarray, ids: np.ndarray, query: np.ndarray, k: int, metric: str):
    """The expected top-k: scores in float64, best first, ties by smaller id."""
    x = data.astype(np.float64)
    q = query.astype(np.float64)
    if metric == "dot":
        scores = x @ q
    elif metric == "cosine":
        norms = np.linalg.norm(x, axis=1) * np.linalg.norm(q)
        scores = np.where(norms > 0, (x @ q) / np.where(norms > 0, norms, 1), 0.0)
    else:
        scores = ((x - q) ** 2).sum(axis=1)
    key = scores if metric == "l2" else -scores
    order = np.lexsort((ids, key))[:k]
    return ids[order], scores[order]


@pytest.fixture
def filled(path):
    rng = np.random.default_rng(7)
    data = rng.standard_normal((300, 16)).astype(np.float32)
    ids = rng.choice(10**9, size=300, replace=False).astype(np.uint64)
    store = quiver.open(path, 16)
    store.store_batch(ids, data)
    yield store, ids, data
    store.close()


def test_snapshot_is_isolated_from_later_writes(path):
    """A snapshot keeps what it saw: later stores and deletes do not show in it."""
    with quiver.open(path, 2) as store:
        store.store(1, np.array([1, 1], dtype=np.float32))
        snap = store.snapshot()
        store.store(1, np.array([2, 2], dtype=np.float32))
        store.store(2, np.array([3, 3], dtype=np.float32))
        store.delete(1)
        assert snap.get(1).tolist() == [1, 1]
        assert 2 not in snap and len(snap) == 1
        assert store.snapshot().get(1) is None
        assert snap.lsn < store.snapshot().lsn
        assert "quiver.Snapshot(" in repr(snap)


def test_vectors_is_a_strided_zero_copy_view_of_every_slot(path):
    """vectors() has a row per slot, record_size bytes apart; live_slots and
    live_mask name the rows that are live, and index them to the vectors."""
    with quiver.open(path, 3) as store:
        store.store_batch([10, 11, 12], np.arange(9, dtype=np.float32).reshape(3, 3))
        store.store(11, np.array([7, 7, 7], dtype=np.float32))  # slot 1 is now dead
        store.delete(12)  # a tombstone slot; slot 2 is dead
        snap = store.snapshot()
        v = snap.vectors()
        assert v.shape == (snap.slot_count, 3) == (5, 3)
        assert not v.flags.writeable and not v.flags.c_contiguous
        assert v.strides[1] == 4 and v.strides[0] % 64 == 0
        slots, ids = snap.live_slots()
        assert ids.tolist() == [10, 11] and slots.tolist() == [0, 3]
        assert snap.live_mask().tolist() == [True, False, False, True, False]
        assert v[slots].tolist() == [[0, 1, 2], [7, 7, 7]]
        assert v[1].tolist() == [3, 4, 5]  # the overwritten vector stays in its slot
        assert np.shares_memory(v, snap.get(10))
        for i, row in zip(ids, v[slots], strict=True):
            assert snap.get(int(i)).tolist() == row.tolist()


def test_vectors_of_an_empty_store(path):
    """An empty store's views are empty arrays of the right shape."""
    with quiver.open(path, 4, dtype="int8") as store:
        snap = store.snapshot()
        assert snap.vectors().shape == (0, 4) and snap.vectors().dtype == np.int8
        assert snap.ids().shape == (0,)
        ids, scores = snap.search(np.ones(4), 3)
        assert ids.shape == (0,) and scores.shape == (0,)


@pytest.mark.parametrize("metric", ["cosine", "dot", "l2"])
def test_search_equals_brute_force(filled, metric):
    """Exact search returns the brute-force top-k: same ids, scores to 1e-4."""
    store, ids, data = filled
    snap = store.snapshot()
    rng = np.random.default_rng(1)
    queries = rng.standard_normal((5, 16)).astype(np.float32)
    got_ids, got_scores = snap.search(queries, 10, metric=metric)
    assert got_ids.shape == (5, 10) and got_ids.dtype == np.uint64 and got_scores.dtype == np.float32
    for row, q in enumerate(queries):
        want_ids, want_scores = brute_force(data, ids, q, 10, metric)
        assert got_ids[row].tolist() == want_ids.tolist()
        np.testing.assert_allclose(got_scores[row], want_scores, rtol=1e-4, atol=1e-4)
        single_ids, single_scores = snap.search(q, 10, metric=metric)
        assert single_ids.tolist() == got_ids[row].tolist()
        assert single_scores.tobytes() == got_scores[row].tobytes()


def test_search_filter_threads_and_padding(filled):
    """A filter restricts the candidates; threads change nothing; a batch
    asking past the candidates pads with NO_ID and NaN; k past the store
    returns everything."""
    store, ids, data = filled
    snap = store.snapshot()
    q = data[0]
    allowed = ids[::3]
    got, _ = snap.search(q, 5, filter=allowed)
    assert set(got.tolist()) <= set(allowed.tolist()) and got[0] == ids[0]
    assert snap.search(q, 7, threads=2)[0].tolist() == snap.search(q, 7, threads=1)[0].tolist()
    batch_ids, batch_scores = snap.search(np.stack([q, q]), 10, filter=ids[:4])
    assert batch_ids.shape == (2, 10)
    assert (batch_ids[:, 4:] == quiver.NO_ID).all() and np.isnan(batch_scores[:, 4:]).all()
    everything, _ = snap.search(q, 10**12)
    assert len(everything) == len(ids)


def test_search_rejects_bad_queries(filled):
    """Wrong length, NaN, unknown metric and negative k are errors."""
    store, _, _ = filled
    snap = store.snapshot()
    with pytest.raises(quiver.DimensionMismatch):
        snap.search(np.ones(15), 3)
    with pytest.raises(quiver.InvalidArgument, match="non-finite"):
        snap.search(np.full(16, np.nan), 3)
    with pytest.raises(ValueError, match="metric"):
        snap.search(np.ones(16), 3, metric="hamming")
    with pytest.raises(OverflowError):
        snap.search(np.ones(16), -1)
    with pytest.raises(TypeError):
        snap.search("not a query", 3)


@pytest.mark.parametrize("dtype", ["float64", "float16", "uint8", "int8", "bfloat16"])
def test_search_every_dtype(path, dtype):
    """Search runs on every element type (queries are float32) and finds an
    exact match first under L2."""
    rng = np.random.default_rng(3)
    raw = rng.integers(0, 100, size=(50, 8))
    with quiver.open(path, 8, dtype=dtype) as store:
        given = raw.astype(dtype if dtype in ("uint8", "int8") else np.float32)
        store.store_batch(np.arange(50), given)
        ids, scores = store.snapshot().search(raw[17].astype(np.float32), 1, metric="l2")
        assert ids.tolist() == [17] and scores[0] == 0


def test_snapshot_survives_compaction_and_close(path):
    """A snapshot's views and search keep working after compaction and close."""
    store = quiver.open(path, 2)
    store.store_batch(np.arange(10), np.arange(20, dtype=np.float32).reshape(10, 2))
    snap = store.snapshot()
    v = snap.vectors()
    for i in range(5):
        store.delete(i)
    store.compact()
    store.close()
    assert len(snap) == 10 and v.shape == (10, 2)
    assert snap.search(np.array([0, 1.0]), 1, metric="l2")[0].tolist() == [0]
    assert v[9].tolist() == [18, 19]


def test_vectors_refuses_slots_spread_over_windows(path):
    """With a 1 MiB map window, 4,000 vectors of 1 KiB span several windows:
    vectors() raises (one strided array cannot cover them) while get() and
    search still read every vector."""
    with quiver.open(path, 256, map_window_bytes=1 << 20) as store:
        data = np.arange(4000 * 256, dtype=np.float32).reshape(4000, 256)
        store.store_batch(np.arange(4000), data)
        snap = store.snapshot()
        with pytest.raises(quiver.Error, match="more than one mapped window"):
            snap.vectors()
        assert snap.get(3999).tolist() == data[3999].tolist()
        assert snap.search(data[2500], 1, metric="l2")[0].tolist() == [2500]
