"""Quiver: an embedded, mmap-backed vector store with write-ahead-log
durability, read through zero-copy NumPy views.

>>> import numpy as np, quiver, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "vectors")
>>> with quiver.open(path, dim=3) as store:
...     store.store(7, np.array([1.0, 0.0, 0.0], dtype=np.float32))
...     store.store_batch(np.array([1, 2], dtype=np.uint64), np.eye(2, 3, dtype=np.float32))
...     ids, scores = store.snapshot().search(np.array([1.0, 0.0, 0.0]), k=2)
2
>>> ids.tolist()
[1, 7]

See ``help(quiver.Store)``, ``help(quiver.Snapshot)`` and
``help(quiver.Reader)``.
"""

from ._errors import (
    Closed,
    Corrupted,
    DimensionMismatch,
    ElementTypeMismatch,
    Error,
    InvalidArgument,
    IOError,
    Locked,
    MalformedFile,
    NotAStore,
    Poisoned,
)
from ._quiver import MAX_DIMENSION, NO_ID, Reader, Snapshot, Store, open, open_reader

__all__ = [
    "MAX_DIMENSION",
    "NO_ID",
    "Closed",
    "Corrupted",
    "DimensionMismatch",
    "ElementTypeMismatch",
    "Error",
    "IOError",
    "InvalidArgument",
    "Locked",
    "MalformedFile",
    "NotAStore",
    "Poisoned",
    "Reader",
    "Snapshot",
    "Store",
    "open",
    "open_reader",
]
