"""The writer's API: every element type round-trips, reads are zero-copy
read-only views that outlive writes, compaction and close, and bad input is
an exception, never a crash."""

import gc

import numpy as np
import pytest

import quiver

DTYPES = ["float32", "float64", "float16", "uint8", "int8", "bfloat16"]

try:
    import ml_dtypes

    BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # bfloat16 arrays are then their uint16 bit patterns
    BFLOAT16 = np.dtype(np.uint16)


def sample(dtype: str, n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype in ("uint8", "int8"):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=(n, dim), endpoint=True).astype(dtype)
    if dtype == "bfloat16":
        return rng.integers(0, 0x7F00, size=(n, dim)).astype(np.uint16)  # finite bit patterns
    return rng.standard_normal((n, dim)).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_round_trips_across_reopen(path, dtype):
    """Vectors of each element type come back bit for bit, before and after a reopen."""
    data = sample(dtype, 20, 5)
    ids = np.arange(100, 120, dtype=np.uint64)
    with quiver.open(path, 5, dtype=dtype) as store:
        assert store.store_batch(ids, data) == 20
        store.store(7, data[0])
        assert store.get(105).tobytes() == data[5].tobytes()
        assert store.dtype == dtype
    with quiver.open(path, 5, dtype=dtype) as store:
        assert len(store) == 21
        for i in range(20):
            got = store.get(100 + i)
            assert got.dtype == (BFLOAT16 if dtype == "bfloat16" else np.dtype(dtype))
            assert got.tobytes() == data[i].tobytes()
        assert store.get(7).tobytes() == data[0].tobytes()


def test_dtype_argument_accepts_numpy_types(tmp_path):
    """`dtype` takes a string, a NumPy scalar type or a dtype, and refuses the rest."""
    with quiver.open(tmp_path / "a", 2, dtype=np.float64) as store:
        assert store.dtype == "float64"
    with quiver.open(tmp_path / "b", 2, dtype=np.dtype("int8")) as store:
        assert store.dtype == "int8"
    with pytest.raises(TypeError, match="not supported"):
        quiver.open(tmp_path / "c", 2, dtype="complex64")
    assert not (tmp_path / "c").exists()


def test_get_is_a_read_only_zero_copy_view_that_outlives_everything(path):
    """A `get` array views the mapped record (it shares memory with the
    snapshot's slot array), cannot be written, and keeps its bytes through an
    overwrite, a delete, a compaction and close."""
    store = quiver.open(path, 4)
    store.store(1, np.array([1, 2, 3, 4], dtype=np.float32))
    a = store.get(1)
    assert not a.flags.writeable
    with pytest.raises(ValueError):
        a[0] = 9.0
    assert np.shares_memory(a, store.snapshot().vectors())
    store.store(1, np.zeros(4, dtype=np.float32))
    store.delete(1)
    store.store_batch(np.arange(10, 20), np.ones((10, 4), dtype=np.float32))
    store.compact()
    store.close()
    gc.collect()
    assert a.tolist() == [1, 2, 3, 4]
    assert a.sum() == 10


def test_reads_see_own_writes(path):
    """Every read after a write sees it, although reads reuse one snapshot between writes."""
    with quiver.open(path, 2) as store:
        for i in range(50):
            store.store(i, np.array([i, i], dtype=np.float32))
            assert store.get(i)[0] == i
            assert i in store
            assert len(store) == i + 1
        assert store.delete(3) is True
        assert store.get(3) is None
        assert store.delete(3) is False
        assert sorted(store.ids().tolist()) == [i for i in range(50) if i != 3]


def test_get_many_returns_views_and_none(path):
    """`get_many` gives one array per id, `None` for an absent one."""
    with quiver.open(path, 2) as store:
        store.store_batch([1, 2], np.array([[1, 1], [2, 2]], dtype=np.float32))
        got = store.get_many(np.array([2, 9, 1], dtype=np.uint64))
        assert got[0].tolist() == [2, 2] and got[1] is None and got[2].tolist() == [1, 1]
        assert store.get_many([]) == []


def test_store_batch_zero_copy_and_conversions(path):
    """C-contiguous input of the store's dtype is stored as is; float64,
    Fortran-order, strided and list input are converted once, with the same
    result."""
    data = sample("float32", 8, 3)
    with quiver.open(path, 3) as store:
        store.store_batch(np.arange(8, dtype=np.uint64), data)
        store.store_batch(np.arange(10, 18), data.astype(np.float64))
        store.store_batch(np.arange(20, 28), np.asfortranarray(data))
        wide = np.zeros((8, 6), dtype=np.float32)
        wide[:, ::2] = data
        store.store_batch(np.arange(30, 38), wide[:, ::2])
        store.store_batch(list(range(40, 48)), data.tolist())
        store.store(50, [0.5, 1, 2])
        for base in (0, 10, 20, 30, 40):
            for i in range(8):
                assert store.get(base + i).tolist() == data[i].tolist()
        assert store.get(50).tolist() == [0.5, 1, 2]


def test_bad_input_raises_clear_errors(path):
    """Wrong shapes, dtypes, id counts, negative or huge ids and junk are
    exceptions with messages; nothing is stored."""
    with quiver.open(path, 3, dtype="uint8") as store:
        with pytest.raises(quiver.DimensionMismatch):
            store.store(1, np.zeros(4, dtype=np.uint8))
        with pytest.raises(quiver.DimensionMismatch):
            store.store(1, np.zeros((1, 3), dtype=np.uint8))
        with pytest.raises(quiver.DimensionMismatch, match=r"a batch of shape \(n, dim\)"):
            store.store_batch([1], np.zeros(3, dtype=np.uint8))
        with pytest.raises(quiver.DimensionMismatch, match="shape"):
            store.store_batch([], np.zeros(0, dtype=np.uint8))
        assert store.store_batch([], np.zeros((0, 3), dtype=np.uint8)) == 0
        with pytest.raises(TypeError, match="uint8"):
            store.store(1, np.zeros(3, dtype=np.float32))
        with pytest.raises(quiver.InvalidArgument, match="2 ids for 3 vectors"):
            store.store_batch([1, 2], np.zeros((3, 3), dtype=np.uint8))
        with pytest.raises(ValueError, match="non-negative"):
            store.store_batch([-1], np.zeros((1, 3), dtype=np.uint8))
        with pytest.raises(TypeError, match="integers"):
            store.store_batch([1.5], np.zeros((1, 3), dtype=np.uint8))
        with pytest.raises(OverflowError):
            store.store(-1, np.zeros(3, dtype=np.uint8))
        with pytest.raises(OverflowError):
            store.store(2**64, np.zeros(3, dtype=np.uint8))
        with pytest.raises((TypeError, ValueError)):
            store.store(1, None)
        with pytest.raises((TypeError, ValueError)):
            store.store(1, {"a": 1})
        with pytest.raises((TypeError, ValueError)):
            store.store_batch([1, 2], [[1, 2, 3], [1, 2]])
        store.store(2**64 - 1, np.array([1, 2, 3], dtype=np.uint8))
        assert len(store) == 1 and (2**64 - 1) in store
        assert -1 not in store and "x" not in store and 2**64 not in store


def test_open_validates_before_touching_the_disk(path, tmp_path):
    """A zero or huge dimension, an unknown option, a file path or a wrong
    dimension or dtype on reopen raise, and leave nothing behind."""
    with pytest.raises(quiver.InvalidArgument):
        quiver.open(path, 0)
    with pytest.raises(quiver.InvalidArgument):
        quiver.open(path, quiver.MAX_DIMENSION + 1)
    with pytest.raises(TypeError, match="unknown option"):
        quiver.open(path, 3, colour="blue")
    with pytest.raises(ValueError, match="durability"):
        quiver.open(path, 3, durability="sometimes")
    assert not path.exists()
    file = tmp_path / "file"
    file.write_bytes(b"hello")
    with pytest.raises(quiver.NotAStore):
        quiver.open(file, 3)
    with quiver.open(path, 3) as store:
        store.store(1, np.ones(3, dtype=np.float32))
    with pytest.raises(quiver.DimensionMismatch):
        quiver.open(path, 4)
    with pytest.raises(quiver.ElementTypeMismatch):
        quiver.open(path, 3, dtype="float64")
    with quiver.open(path, 3) as store:
        assert store.get(1).tolist() == [1, 1, 1]


def test_options_and_durability_levels(tmp_path):
    """Every option is accepted and every durability level stores and reopens."""
    for level in ("sync", "buffered", "deferred"):
        p = tmp_path / level
        with quiver.open(
            p,
            2,
            durability=level,
            initial_file_bytes=1 << 20,
            growth_step_bytes=(1 << 20, 1 << 22),
            checkpoint_wal_bytes=1 << 20,
            inline_batch_max_bytes=1 << 12,
            access_pattern="random",
            populate=True,
        ) as store:
            assert store.durability == level
            store.store_batch(np.arange(100), np.ones((100, 2)))
            store.flush()
        with quiver.open(p, 2) as store:
            assert len(store) == 100


def test_lifecycle_methods_and_metrics(path):
    """reserve_capacity, flush, checkpoint, compact and metrics work and
    report what happened; a closed store raises quiver.Closed."""
    store = quiver.open(path, 8)
    store.reserve_capacity(1000)
    store.store_batch(np.arange(500), np.ones((500, 8), dtype=np.float32))
    for i in range(250):
        store.delete(i)
    store.flush()
    store.checkpoint()
    m = store.metrics()
    assert m["live_vectors"] == 250
    assert m["vectors_deleted"] == 250
    assert m["checkpoints"] >= 1
    assert set(m["commit_latency"]) == {"count", "mean", "p50", "p99", "p999", "max"}
    stats = store.compact()
    assert stats["live_records"] == 250 and stats["generation"] == 2
    assert len(store) == 250
    assert "quiver.Store(" in repr(store)
    store.close()
    store.close()
    assert store.closed
    for call in (lambda: store.get(1), lambda: len(store), lambda: store.store(1, np.ones(8)), store.flush):
        with pytest.raises(quiver.Closed):
            call()


def test_second_writer_in_this_process_is_locked(path):
    """A second open of an open directory raises quiver.Locked; after close it opens."""
    store = quiver.open(path, 2)
    with pytest.raises(quiver.Locked):
        quiver.open(path, 2)
    store.close()
    quiver.open(path, 2).close()


def test_exception_hierarchy():
    """Every Quiver exception is a quiver.Error and the matching built-in."""
    assert issubclass(quiver.DimensionMismatch, quiver.Error)
    assert issubclass(quiver.DimensionMismatch, ValueError)
    assert issubclass(quiver.IOError, OSError)
    for exc in (quiver.Locked, quiver.Corrupted, quiver.Poisoned, quiver.Closed, quiver.NotAStore):
        assert issubclass(exc, quiver.Error)


def test_help_reads_well():
    """The classes and functions carry docstrings (help() shows them)."""
    for obj in (quiver.Store, quiver.Snapshot, quiver.Reader, quiver.open, quiver.open_reader):
        assert obj.__doc__ and len(obj.__doc__) > 80
    for name in ("store", "store_batch", "get", "delete", "flush", "checkpoint", "compact", "snapshot"):
        assert getattr(quiver.Store, name).__doc__


def test_conversion_happens_only_when_needed(path):
    """A C-contiguous array of the store's dtype is read in place (no NumPy
    allocation during store_batch); a float64 array is converted once (one
    allocation of its float32 size)."""
    import tracemalloc

    data = np.ones((20_000, 128), dtype=np.float32)  # 10 MB
    with quiver.open(path, 128) as store:
        store.reserve_capacity(60_000)
        tracemalloc.start()
        store.store_batch(np.arange(20_000, dtype=np.uint64), data)
        in_place = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        wide = data.astype(np.float64)
        tracemalloc.start()
        store.store_batch(np.arange(20_000, 40_000, dtype=np.uint64), wide)
        converted = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert in_place < 1_000_000, in_place
    assert data.nbytes <= converted < 3 * data.nbytes, converted


def test_concurrent_writers_and_readers(path):
    """Python threads writing disjoint ids and reading at once lose nothing
    (writes release the GIL and serialise inside the store)."""
    import threading

    with quiver.open(path, 4) as store:
        errors: list[BaseException] = []

        def writer(t: int):
            try:
                for i in range(200):
                    store.store(t * 1000 + i, np.full(4, t, dtype=np.float32))
                    store.get(t * 1000 + i // 2)
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert len(store) == 800
        for t in range(4):
            assert store.get(t * 1000 + 199).tolist() == [t] * 4


def test_damage_and_os_failures_map_to_their_exceptions(path):
    """A data file with a broken header is quiver.Corrupted naming the file
    and offset (and nothing is changed); an OS failure is quiver.IOError,
    an OSError with its errno."""
    import errno

    with quiver.open(path, 3) as store:
        store.store(1, np.ones(3, dtype=np.float32))
    data = next(path.glob("data-*.qvd"))
    original = data.read_bytes()
    data.write_bytes(b"XXXXXXXX" + original[8:])
    with pytest.raises(quiver.Corrupted, match=r"data-.*\.qvd is corrupted at byte offset 0"):
        quiver.open(path, 3)
    assert data.read_bytes()[8:] == original[8:]
    with pytest.raises(quiver.IOError) as caught:
        quiver.open("/proc/quiver-cannot-be-here", 3)
    assert isinstance(caught.value, OSError) and caught.value.errno == errno.ENOENT


def test_a_live_view_keeps_the_directory_locked_until_dropped(path):
    """After close, an array from get() still holds the writer lock (its
    snapshot pins bytes a reopen's recovery could rewrite); dropping it
    frees the directory."""
    store = quiver.open(path, 2)
    store.store(1, np.ones(2, dtype=np.float32))
    view = store.get(1)
    store.close()
    with pytest.raises(quiver.Locked):
        quiver.open(path, 2)
    del view
    gc.collect()
    with quiver.open(path, 2) as again:
        assert again.get(1).tolist() == [1, 1]
