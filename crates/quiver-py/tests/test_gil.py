"""The GIL is released while the core works: another Python thread runs
during a long search and during a large store_batch, and threads searching
at once get the same results as one."""

import threading
import time

import numpy as np

import quiver


def python_ran_during(call) -> bool:
    """Runs `call` in a thread while this thread counts loop iterations;
    True if this thread made progress strictly inside the call."""
    span: dict[str, float] = {}

    def work():
        span["start"] = time.perf_counter()
        call()
        span["end"] = time.perf_counter()

    worker = threading.Thread(target=work)
    stamps = []
    worker.start()
    while worker.is_alive():
        stamps.append(time.perf_counter())
        time.sleep(0.0005)
    worker.join()
    margin = (span["end"] - span["start"]) * 0.1
    inside = [t for t in stamps if span["start"] + margin < t < span["end"] - margin]
    return len(inside) >= 3


def test_search_and_store_batch_release_the_gil(path):
    """A Python thread keeps running during a long search and a large
    store_batch (each takes tens of milliseconds at least)."""
    rng = np.random.default_rng(0)
    data = rng.standard_normal((100_000, 64)).astype(np.float32)
    with quiver.open(path, 64) as store:
        store.store_batch(np.arange(100_000), data)
        snap = store.snapshot()
        queries = rng.standard_normal((64, 64)).astype(np.float32)
        assert python_ran_during(lambda: snap.search(queries, 10, threads=1))
        more = np.arange(100_000, 300_000)
        assert python_ran_during(lambda: store.store_batch(more, np.tile(data, (2, 1))))
        assert len(store) == 300_000


def test_concurrent_searches_agree(path):
    """Searches from several Python threads on one snapshot return what one thread does."""
    rng = np.random.default_rng(1)
    with quiver.open(path, 16) as store:
        store.store_batch(np.arange(5000), rng.standard_normal((5000, 16)).astype(np.float32))
        snap = store.snapshot()
        queries = rng.standard_normal((8, 16)).astype(np.float32)
        want = snap.search(queries, 5)[0]
        results = []

        def search():
            results.append(snap.search(queries, 5)[0])

        threads = [threading.Thread(target=search) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 4 and all((r == want).all() for r in results)
