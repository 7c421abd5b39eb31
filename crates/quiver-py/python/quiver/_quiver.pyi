"""Type stubs of the compiled extension `quiver._quiver` (see `quiver`)."""

import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypeAlias, TypedDict, final

import numpy as np
import numpy.typing as npt

NO_ID: int
MAX_DIMENSION: int

_DType: TypeAlias = Literal["float32", "float64", "float16", "bfloat16", "uint8", "int8"]
_Durability: TypeAlias = Literal["sync", "buffered", "deferred"]
_Metric: TypeAlias = Literal["cosine", "dot", "l2"]
_PathLike: TypeAlias = str | os.PathLike[str]
_Ids = npt.ArrayLike
_Vectors = npt.ArrayLike
_Format: TypeAlias = Literal["fvecs", "bvecs", "npy", "arrow", "feather", "ipc", "arrows", "parquet"]
_Progress: TypeAlias = Callable[[int, int | None], object]

class _LatencySummary(TypedDict):
    count: int
    mean: float
    p50: float
    p99: float
    p999: float
    max: float

class _Metrics(TypedDict):
    live_vectors: int
    vectors_stored: int
    vectors_deleted: int
    batches_committed: int
    wal_syncs: int
    checkpoints: int
    checkpoint_failures: int
    growth_events: int
    file_bytes: int
    committed_bytes: int
    resident_bytes: int
    mapped_bytes: int
    live_bytes: int
    garbage_bytes: int
    wal_bytes: int
    growth_latency: _LatencySummary
    sync_latency: _LatencySummary
    commit_latency: _LatencySummary

class _CompactionStats(TypedDict):
    generation: int
    live_records: int
    dropped_records: int
    bytes_before: int
    bytes_after: int
    bytes_copied: int
    duration: float
    writer_pause: float

class _RefreshOutcome(TypedDict):
    batches_applied: int
    reloaded: bool

def open(
    path: _PathLike,
    dim: int,
    dtype: _DType | npt.DTypeLike = "float32",
    durability: _Durability = "buffered",
    *,
    initial_file_bytes: int = ...,
    growth_step_bytes: tuple[int, int] = ...,
    map_window_bytes: int = ...,
    inline_batch_max_bytes: int = ...,
    checkpoint_wal_bytes: int = ...,
    access_pattern: Literal["normal", "random", "sequential"] = ...,
    populate: bool = ...,
) -> Store:
    """Opens the store at `path`, creating it if it does not exist."""

def open_reader(
    path: _PathLike,
    dim: int,
    dtype: _DType | npt.DTypeLike = "float32",
    *,
    map_window_bytes: int = ...,
    access_pattern: Literal["normal", "random", "sequential"] = ...,
    populate: bool = ...,
) -> Reader:
    """Opens a read-only follower of the existing store at `path`."""

@final
class Snapshot:
    """An immutable view of a store as of one moment."""

    @property
    def dim(self) -> int: ...
    @property
    def dtype(self) -> _DType: ...
    @property
    def lsn(self) -> int: ...
    @property
    def generation(self) -> int: ...
    @property
    def slot_count(self) -> int: ...
    def __len__(self) -> int: ...
    def __contains__(self, key: object, /) -> bool: ...
    def get(self, id: int) -> np.ndarray[Any, np.dtype[Any]] | None:
        """Vector `id` as a read-only, zero-copy NumPy array, or None."""
    def get_many(self, ids: _Ids) -> list[np.ndarray[Any, np.dtype[Any]] | None]:
        """`[get(id) for id in ids]`."""
    def ids(self) -> npt.NDArray[np.uint64]:
        """Every id, unordered."""
    def vectors(self) -> np.ndarray[Any, np.dtype[Any]]:
        """Every slot's vector as one read-only, strided (slot_count, dim) view."""
    def live_slots(self) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
        """(slots, ids) of every live vector, sorted by slot."""
    def live_mask(self) -> npt.NDArray[np.bool_]:
        """True for each row of vectors() that is live."""
    def search(
        self,
        queries: _Vectors,
        k: int,
        metric: _Metric = "cosine",
        filter: _Ids | None = None,
        threads: int = 0,
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float32]]:
        """Exact top-k: (ids, scores), (k',) for one query or (n, k) for a batch."""
    def export_file(
        self,
        path: _PathLike,
        format: _Format | None = None,
        *,
        id_range: range | None = None,
        ids_path: _PathLike | None = None,
        progress: _Progress | None = None,
    ) -> int:
        """Writes the vectors with ids in `id_range`, in id order, to a file."""

@final
class Store:
    """A Quiver vector store opened for writing."""

    @property
    def dim(self) -> int: ...
    @property
    def dtype(self) -> _DType: ...
    @property
    def path(self) -> Path: ...
    @property
    def durability(self) -> _Durability: ...
    @property
    def closed(self) -> bool: ...
    def store(self, id: int, vector: _Vectors) -> None:
        """Inserts or replaces vector `id`."""
    def store_batch(self, ids: _Ids, vectors: _Vectors) -> int:
        """Inserts or replaces `ids[i]` with `vectors[i]`, atomically."""
    def delete(self, id: int) -> bool:
        """Deletes `id`; returns whether it was present."""
    def get(self, id: int) -> np.ndarray[Any, np.dtype[Any]] | None:
        """Vector `id` as a read-only, zero-copy NumPy array, or None."""
    def get_many(self, ids: _Ids) -> list[np.ndarray[Any, np.dtype[Any]] | None]:
        """`[get(id) for id in ids]`, from one snapshot."""
    def __len__(self) -> int: ...
    def __contains__(self, key: object, /) -> bool: ...
    def ids(self) -> npt.NDArray[np.uint64]:
        """Every id, unordered."""
    def reserve_capacity(self, n: int) -> None:
        """Reserves room for `n` more vectors in one step."""
    def flush(self) -> None:
        """Makes every acknowledged write durable against power loss."""
    def checkpoint(self) -> None:
        """Writes an index snapshot and trims the write-ahead log."""
    def compact(self) -> _CompactionStats:
        """Rewrites the live vectors into a new data file."""
    def close(self) -> None:
        """Flushes, checkpoints and closes the store."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> bool: ...
    def metrics(self) -> _Metrics:
        """Counters, byte sizes and latency summaries (seconds)."""
    def snapshot(self) -> Snapshot:
        """An immutable view of the store as it stands."""
    def import_file(
        self,
        path: _PathLike,
        format: _Format | None = None,
        *,
        ids: _Ids | _PathLike | None = None,
        first_id: int = 0,
        skip_rows: int = 0,
        batch_bytes: int = ...,
        id_column: str | None = None,
        vector_column: str | None = None,
        progress: _Progress | None = None,
    ) -> int:
        """Stores every row of an fvecs, bvecs, npy, Arrow or Parquet file."""
    def import_npy(self, path: _PathLike, ids: _Ids | _PathLike | None = None, start_id: int = 0) -> int:
        """Loads the rows of a .npy file as vectors (converting another dtype)."""
    def export_file(
        self,
        path: _PathLike,
        format: _Format | None = None,
        *,
        id_range: range | None = None,
        ids_path: _PathLike | None = None,
        progress: _Progress | None = None,
    ) -> int:
        """Writes the vectors with ids in `id_range`, in id order, to a file."""
    def export_npy(self, path: _PathLike, ids_path: _PathLike | None = None) -> int:
        """Writes every vector, in id order, to a .npy file."""

@final
class Reader:
    """A read-only follower of an existing store."""

    @property
    def dim(self) -> int: ...
    @property
    def dtype(self) -> _DType: ...
    @property
    def path(self) -> Path: ...
    def refresh(self) -> _RefreshOutcome:
        """Catches up with the writer."""
    def get(self, id: int) -> np.ndarray[Any, np.dtype[Any]] | None: ...
    def get_many(self, ids: _Ids) -> list[np.ndarray[Any, np.dtype[Any]] | None]: ...
    def __len__(self) -> int: ...
    def __contains__(self, key: object, /) -> bool: ...
    def ids(self) -> npt.NDArray[np.uint64]: ...
    def snapshot(self) -> Snapshot: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> bool: ...

@final
class SnapshotPin:
    """Internal: the base object of every array over a snapshot's bytes (it
    keeps the snapshot, and so the mapped records, alive)."""

__all__ = ["open", "open_reader", "Store", "Reader", "Snapshot", "SnapshotPin", "NO_ID", "MAX_DIMENSION"]
