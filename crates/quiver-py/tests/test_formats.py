"""import_file and export_file: every format the quiver-formats crate reads and
writes, through the binding, bit-exact; ids from the table, from a file or an
array beside it; refusals that store nothing; progress callbacks and Ctrl-C
that stop between batches."""

import os
import signal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import quiver

FORMATS = ["fvecs", "npy", "arrow", "arrows", "parquet"]


def filled(path, n=300, dim=8, ids=None, dtype="float32"):
    rng = np.random.default_rng(3)
    data = rng.standard_normal((n, dim)).astype(dtype)
    store = quiver.open(path, dim, dtype=dtype)
    store.store_batch(np.arange(n, dtype=np.uint64) if ids is None else ids, data)
    return store, data


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_round_trips_bit_exact(tmp_path, fmt):
    """Export then import gives back the same bytes under the same ids."""
    store, data = filled(tmp_path / "a")
    file = tmp_path / f"out.{fmt}"
    assert store.export_file(file) == len(data)
    assert not (tmp_path / f"out.{fmt}.tmp").exists()
    with quiver.open(tmp_path / "b", 8) as copy:
        assert copy.import_file(file) == len(data)
        assert len(copy) == len(data)
        for i in (0, 17, len(data) - 1):
            assert copy.get(i).tobytes() == data[i].tobytes()
    store.close()


def test_tables_carry_ids_and_id_ranges_select(tmp_path):
    """A Parquet export of sparse ids keeps them (pyarrow sees the same ids and
    vectors); `id_range` exports a slice; vecs and npy need the ids beside."""
    ids = np.arange(0, 3000, 10, dtype=np.uint64)
    store, data = filled(tmp_path / "a", ids=ids)
    table_file = tmp_path / "t.parquet"
    assert store.export_file(table_file) == 300
    table = pq.read_table(table_file)
    assert table.column("id").to_numpy().tolist() == ids.tolist()
    vectors = np.stack(table.column("vector").to_numpy(zero_copy_only=False))
    np.testing.assert_array_equal(vectors, data)
    assert store.export_file(tmp_path / "part.arrow", id_range=range(100, 200)) == 10
    with pytest.raises(quiver.InvalidArgument, match="ids_path"):
        store.export_file(tmp_path / "x.fvecs")
    assert not (tmp_path / "x.fvecs").exists()
    with pytest.raises(ValueError, match="step 1"):
        store.export_file(tmp_path / "y.arrow", id_range=range(0, 10, 2))
    store.close()


def test_ids_from_a_file_or_an_array_beside_the_vectors(tmp_path):
    """An ids .npy written by export pairs row for row with its vectors file;
    an array does too; a count that differs stores nothing."""
    ids = np.array([90, 10, 50, 70, 30], dtype=np.uint64)
    store, data = filled(tmp_path / "a", n=5, ids=ids)
    store.export_file(tmp_path / "v.fvecs", ids_path=tmp_path / "ids.npy")
    with quiver.open(tmp_path / "b", 8) as copy:
        assert copy.import_file(tmp_path / "v.fvecs", ids=tmp_path / "ids.npy") == 5
        assert copy.get(90).tobytes() == data[0].tobytes()
    with quiver.open(tmp_path / "c", 8) as copy:
        copy.import_file(tmp_path / "v.fvecs", ids=[1, 2, 3, 4, 5])
        assert sorted(copy.ids().tolist()) == [1, 2, 3, 4, 5]
        with pytest.raises(quiver.InvalidArgument, match="3 ids for a fvecs file of 5 rows"):
            copy.import_file(tmp_path / "v.fvecs", ids=[7, 8, 9])
        assert 7 not in copy
    store.close()


def test_first_id_and_skip_rows_resume(tmp_path):
    """Row r gets first_id + r; skip_rows leaves the first rows out."""
    store, data = filled(tmp_path / "a", n=40)
    store.export_file(tmp_path / "v.npy")
    with quiver.open(tmp_path / "b", 8) as copy:
        assert copy.import_file(tmp_path / "v.npy", first_id=1000, skip_rows=30) == 10
        assert sorted(copy.ids().tolist()) == list(range(1030, 1040))
        assert copy.get(1035).tobytes() == data[35].tobytes()
    store.close()


def test_refusals_store_nothing(tmp_path):
    """Another dimension, another element type, an unknown format and a
    closed store are refused with their exception, and nothing is stored."""
    store, _ = filled(tmp_path / "a", n=10)
    store.export_file(tmp_path / "v.fvecs")
    store.close()
    with quiver.open(tmp_path / "dim", 4) as other:
        with pytest.raises(quiver.DimensionMismatch, match="8 elements but the store's vectors have 4"):
            other.import_file(tmp_path / "v.fvecs")
        assert len(other) == 0
    with quiver.open(tmp_path / "type", 8, dtype="uint8") as other:
        with pytest.raises(quiver.ElementTypeMismatch, match="f32 elements but the store holds u8"):
            other.import_file(tmp_path / "v.fvecs")
        with pytest.raises(ValueError, match="not one of"):
            other.import_file(tmp_path / "v.fvecs", format="hdf5")
        with pytest.raises(quiver.InvalidArgument, match="format is not known"):
            other.import_file(tmp_path / "v.unknown")
        assert len(other) == 0
    with pytest.raises(quiver.IOError) as missing:
        quiver.open(tmp_path / "x", 8).import_file(tmp_path / "missing.fvecs")
    assert missing.value.errno == 2
    closed = quiver.open(tmp_path / "closed", 8)
    closed.close()
    with pytest.raises(quiver.Closed):
        closed.import_file(tmp_path / "v.fvecs")


def test_a_torn_file_keeps_whole_batches(tmp_path):
    """A truncated fvecs file raises MalformedFile with the byte offset;
    every batch before the damage is stored, nothing of the torn one."""
    store, data = filled(tmp_path / "a", n=100)
    store.export_file(tmp_path / "v.fvecs")
    store.close()
    row = 4 + 8 * 4
    with open(tmp_path / "v.fvecs", "r+b") as f:
        f.truncate(95 * row + 10)
    with quiver.open(tmp_path / "b", 8) as copy:
        with pytest.raises(quiver.MalformedFile, match=f"byte offset {95 * row}"):
            copy.import_file(tmp_path / "v.fvecs", batch_bytes=10 * 8 * 4)
        assert len(copy) == 90
        assert copy.get(89).tobytes() == data[89].tobytes()


def test_progress_is_reported_and_its_exception_stops_the_import(tmp_path):
    """The callback sees every batch; what it raises stops the import after
    whole batches and reaches the caller."""
    store, _ = filled(tmp_path / "a", n=100)
    store.export_file(tmp_path / "v.npy")
    store.close()
    seen = []
    with quiver.open(tmp_path / "b", 8) as copy:
        copy.import_file(tmp_path / "v.npy", batch_bytes=10 * 32, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(d, 100) for d in range(10, 101, 10)]

    class Stop(Exception):
        pass

    def stop_at_30(done, total):
        if done >= 30:
            raise Stop

    with quiver.open(tmp_path / "c", 8) as copy:
        with pytest.raises(Stop):
            copy.import_file(tmp_path / "v.npy", batch_bytes=10 * 32, progress=stop_at_30)
        assert len(copy) == 30


def test_ctrl_c_stops_an_import_between_batches(tmp_path):
    """SIGINT during an import raises KeyboardInterrupt at the next batch,
    with the batches before it stored and durable."""
    store, data = filled(tmp_path / "a", n=100)
    store.export_file(tmp_path / "v.fvecs")
    store.close()

    def interrupt(done, total):
        if done == 20:
            signal.raise_signal(signal.SIGINT)

    with quiver.open(tmp_path / "b", 8) as copy:
        with pytest.raises(KeyboardInterrupt):
            copy.import_file(tmp_path / "v.fvecs", batch_bytes=10 * 32, progress=interrupt)
        # The signal is seen when the progress call of the batch that
        # raised it returns: that batch is stored, the next one is not.
        assert len(copy) == 20
        assert copy.get(19).tobytes() == data[19].tobytes()


def test_an_export_stopped_by_its_callback_leaves_no_file(tmp_path):
    """An exception from the export's progress callback leaves neither the
    file nor its temporary."""
    store, _ = filled(tmp_path / "a", n=3000, dim=256)

    def fail(done, total):
        raise RuntimeError("stop")

    for fmt in FORMATS:
        with pytest.raises(RuntimeError, match="stop"):
            store.export_file(tmp_path / f"out.{fmt}", progress=fail)
    store.close()
    assert sorted(os.listdir(tmp_path)) == ["a"]


def test_table_columns_by_name(tmp_path):
    """Columns named otherwise are picked by id_column / vector_column; a
    missing one is refused with nothing stored."""
    vectors = np.arange(8, dtype=np.float32).reshape(2, 4)
    emb = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 4)
    rank = np.array([1, 2], dtype=np.uint64)
    table = pa.table({"rank": rank, "key": np.array([70, 80], dtype=np.uint64), "emb": emb})
    pq.write_table(table, tmp_path / "t.parquet")
    with quiver.open(tmp_path / "s", 4) as store:
        with pytest.raises(quiver.InvalidArgument, match="nope"):
            store.import_file(tmp_path / "t.parquet", id_column="nope", vector_column="emb")
        assert len(store) == 0
        assert store.import_file(tmp_path / "t.parquet", id_column="key", vector_column="emb") == 2
        assert sorted(store.ids().tolist()) == [70, 80]
        assert store.get(80).tolist() == [4, 5, 6, 7]


def test_a_table_written_by_pyarrow_imports(tmp_path):
    """A Parquet table pyarrow wrote (fixed_size_list vectors, uint64 ids)
    goes in with its ids; a list column of one length does too."""
    ids = np.array([5, 3, 9], dtype=np.uint64)
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    fixed = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 4)
    pq.write_table(pa.table({"id": ids, "vector": fixed}), tmp_path / "t.parquet")
    lists = pa.array([list(v) for v in vectors], type=pa.list_(pa.float32()))
    pq.write_table(pa.table({"id": ids + 100, "vector": lists}), tmp_path / "l.parquet")
    with quiver.open(tmp_path / "s", 4) as store:
        assert store.import_file(tmp_path / "t.parquet") == 3
        assert store.import_file(tmp_path / "l.parquet") == 3
        assert store.get(9).tolist() == [8, 9, 10, 11]
        assert store.get(103).tolist() == [4, 5, 6, 7]
