"""``Store.import_npy``: an ``.npy`` file of the store's dtype goes through
``Store.import_file`` (the Rust reader the ``quiver import`` command uses);
one of another dtype that NumPy converts safely is memory-mapped and
converted a batch at a time here."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

#: Rows per ``store_batch`` in a converting import: about 64 MiB of
#: vectors, so a batch stays far below the 1 GiB batch limit and memory
#: stays flat.
BATCH_BYTES = 64 << 20


def _file_dtype(store: Any) -> np.dtype:
    """The dtype an .npy of the store's vectors has (bfloat16: its bits)."""
    return np.dtype(np.uint16 if store.dtype == "bfloat16" else store.dtype)


def import_npy(store: Any, path: str | os.PathLike[str], ids: Any = None, start_id: int = 0) -> int:
    vectors = np.load(os.fspath(path), mmap_mode="r", allow_pickle=False)
    if vectors.dtype == _file_dtype(store) and vectors.ndim == 2:
        return int(store.import_file(path, "npy", ids=ids, first_id=start_id))
    if vectors.ndim != 2 or vectors.shape[1] != store.dim:
        from ._errors import DimensionMismatch

        raise DimensionMismatch(
            f"{os.fspath(path)} holds an array of shape {vectors.shape}, but the store needs (n, {store.dim})"
        )
    n = vectors.shape[0]
    if ids is None:
        if start_id < 0 or start_id + n > 2**64:
            raise ValueError("start_id + row must stay in [0, 2**64)")
        id_array = np.arange(start_id, start_id + n, dtype=np.uint64)
    else:
        if isinstance(ids, (str, os.PathLike)):
            ids = np.load(os.fspath(ids), mmap_mode="r", allow_pickle=False)
        id_array = np.asarray(ids)
        if id_array.shape != (n,):
            raise ValueError(f"ids have shape {id_array.shape}, but the file has {n} rows")
    store.reserve_capacity(n)
    rows = max(1, BATCH_BYTES // max(1, vectors.itemsize * store.dim))
    stored = 0
    for start in range(0, n, rows):
        stored += store.store_batch(id_array[start : start + rows], vectors[start : start + rows])
    store.flush()
    return stored
