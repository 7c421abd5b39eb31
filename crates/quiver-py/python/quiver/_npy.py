"""``Store.import_npy`` and ``Store.export_npy``: bulk load from and dump to
NumPy's ``.npy`` files (format versions 1 and 2, through NumPy's own reader
and writer)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

#: Rows per ``store_batch`` in an import: about 64 MiB of vectors, so a
#: batch stays far below the 1 GiB batch limit and memory stays flat.
BATCH_BYTES = 64 << 20


def _numpy_dtype(store: Any) -> np.dtype:
    return np.dtype(np.uint16 if store.dtype == "bfloat16" else store.dtype)


def import_npy(store: Any, path: str | os.PathLike[str], ids: Any = None, start_id: int = 0) -> int:
    vectors = np.load(os.fspath(path), mmap_mode="r", allow_pickle=False)
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
    return stored


def export_npy(
    store: Any, path: str | os.PathLike[str], ids_path: str | os.PathLike[str] | None = None
) -> int:
    snapshot = store.snapshot()
    slots, ids = snapshot.live_slots()
    order = np.argsort(ids, kind="stable")
    ids, slots = ids[order], slots[order]
    n = len(ids)
    if ids_path is None and not np.array_equal(ids, np.arange(n, dtype=np.uint64)):
        raise ValueError(
            "the store's ids are not the row numbers 0..len-1; "
            "pass ids_path= to write them beside the vectors"
        )
    out = np.lib.format.open_memmap(
        os.fspath(path), mode="w+", dtype=_numpy_dtype(store), shape=(n, store.dim)
    )
    if n:
        vectors = snapshot.vectors()
        if store.dtype == "bfloat16":
            vectors = vectors.view(np.uint16)  # ml_dtypes' bfloat16 views
        rows = max(1, BATCH_BYTES // max(1, out.itemsize * store.dim))
        for start in range(0, n, rows):
            out[start : start + rows] = vectors[slots[start : start + rows]]
    out.flush()
    del out
    if ids_path is not None:
        np.save(os.fspath(ids_path), ids, allow_pickle=False)
    return n
