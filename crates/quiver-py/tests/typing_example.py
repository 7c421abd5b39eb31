"""Not a test: code that uses the stubs, checked by `mypy --strict` in
.ci/run (with `python -m mypy.stubtest quiver`, which checks the stubs
against the compiled module). Run, it makes a store in the current
directory."""

import numpy as np

import quiver

with quiver.open("store-for-typing", 3, dtype="float32", durability="sync", populate=True) as store:
    store.store(1, np.ones(3, dtype=np.float32))
    n: int = store.store_batch(np.arange(2, dtype=np.uint64), np.ones((2, 3)))
    v = store.get(1)
    if v is not None:
        print(v.sum())
    snap = store.snapshot()
    ids, scores = snap.search(np.ones(3), 2, metric="l2")
    m = store.metrics()
    print(m["live_vectors"] + m["commit_latency"]["count"], store.path.name, n, ids, scores)
    try:
        quiver.open("store-for-typing", 3)
    except quiver.Locked as e:
        print(e)
