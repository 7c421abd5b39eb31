"""Every public method called with junk arguments raises an ordinary
exception; the interpreter never crashes, and the store stays usable."""

import itertools

import numpy as np
import pytest

import quiver

JUNK = [
    None,
    "x",
    b"\x00\x01",
    -1,
    2**70,
    float("nan"),
    [],
    [[1, 2], [3]],
    {"a": 1},
    object(),
    np.zeros((2, 2, 2)),
    np.zeros(3, dtype=np.complex64),
    np.array(["a", "b", "c"]),
    np.zeros(3, dtype=object),
    memoryview(b"abcdefghijkl"),
    np.zeros(7, dtype=np.uint8)[1:].view(np.float16)[:3],  # misaligned
]


def test_junk_never_crashes(path):
    store = quiver.open(path, 3)
    store.store_batch([1, 2], np.ones((2, 3), dtype=np.float32))
    snap = store.snapshot()
    calls = {
        "store": lambda a, b: store.store(a, b),
        "store_batch": lambda a, b: store.store_batch(a, b),
        "get": lambda a, b: store.get(a),
        "get_many": lambda a, b: store.get_many(a),
        "delete": lambda a, b: store.delete(a),
        "contains": lambda a, b: a in store,
        "reserve": lambda a, b: store.reserve_capacity(a),
        "search": lambda a, b: snap.search(a, 3),
        "search_k": lambda a, b: snap.search(np.ones(3), a),
        "search_metric": lambda a, b: snap.search(np.ones(3), 1, metric=a),
        "search_filter": lambda a, b: snap.search(np.ones(3), 1, filter=a),
        "snap_get_many": lambda a, b: snap.get_many(a),
        "import": lambda a, b: store.import_npy(a),
        "open": lambda a, b: quiver.open(a, b),
        "open_reader": lambda a, b: quiver.open_reader(path, 3, dtype=a),
    }
    for (name, call), a, b in itertools.product(calls.items(), JUNK, JUNK[:6]):
        try:
            call(a, b)
        except (quiver.Error, TypeError, ValueError, OverflowError, OSError, BufferError):
            pass
        except Exception as e:  # pragma: no cover - the message says what escaped
            pytest.fail(f"{name}({a!r}, {b!r}) raised {type(e).__name__}: {e}")
    # The junk stored nothing it should not have, and the store still works.
    store.store(3, np.zeros(3, dtype=np.float32))
    assert store.get(1).tolist() == [1, 1, 1] and 3 in store
    store.close()
