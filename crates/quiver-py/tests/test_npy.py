"""import_npy and export_npy: round trips through NumPy's .npy files."""

import subprocess
import sys

import numpy as np
import pytest

import quiver


def test_import_rows_as_ids_and_export_back(path, tmp_path):
    """Rows become ids start_id + row; export writes them back in id order."""
    data = np.random.default_rng(0).standard_normal((1000, 12)).astype(np.float32)
    np.save(tmp_path / "in.npy", data)
    with quiver.open(path, 12) as store:
        assert store.import_npy(tmp_path / "in.npy") == 1000
        assert store.get(999).tolist() == data[999].tolist()
        assert store.export_npy(tmp_path / "out.npy") == 1000
        np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), data)
        store.import_npy(tmp_path / "in.npy", start_id=5000)
        assert len(store) == 2000
        with pytest.raises(ValueError, match="ids_path"):
            store.export_npy(tmp_path / "x.npy")


def test_import_with_companion_ids_and_conversion(path, tmp_path):
    """An ids array or .npy file names each row; float64 rows convert; the
    ids file written by export matches."""
    data = np.arange(30, dtype=np.float64).reshape(10, 3)
    ids = np.array([90, 10, 50, 70, 30, 20, 40, 60, 80, 0], dtype=np.uint64)
    np.save(tmp_path / "v.npy", data)
    np.save(tmp_path / "ids.npy", ids)
    with quiver.open(path, 3, dtype="float32") as store:
        assert store.import_npy(tmp_path / "v.npy", ids=tmp_path / "ids.npy") == 10
        assert store.get(90).tolist() == [0, 1, 2]
        store.export_npy(tmp_path / "out.npy", ids_path=tmp_path / "out_ids.npy")
    out_ids = np.load(tmp_path / "out_ids.npy")
    out = np.load(tmp_path / "out.npy")
    assert out_ids.tolist() == sorted(ids.tolist())
    order = np.argsort(ids)
    np.testing.assert_array_equal(out, data[order].astype(np.float32))


def test_import_rejects_wrong_shapes(path, tmp_path):
    """A file of another width or ids of another length is refused before anything is stored."""
    np.save(tmp_path / "v.npy", np.zeros((4, 5), dtype=np.float32))
    with quiver.open(path, 3) as store:
        with pytest.raises(quiver.DimensionMismatch):
            store.import_npy(tmp_path / "v.npy")
    with quiver.open(path / ".." / "other", 5) as store:
        with pytest.raises(ValueError, match="rows"):
            store.import_npy(tmp_path / "v.npy", ids=[1, 2])
        assert len(store) == 0


def test_bfloat16_exports_as_uint16_bits(path, tmp_path):
    """bfloat16 vectors travel in .npy as their uint16 bit patterns; float input is rounded once."""
    with quiver.open(path, 2, dtype="bfloat16") as store:
        store.store_batch([0, 1], np.array([[1.0, -2.0], [0.5, 3.0]], dtype=np.float32))
        assert store.get(0).view(np.uint16).tolist() == [0x3F80, 0xC000]
        store.export_npy(tmp_path / "b.npy")
    bits = np.load(tmp_path / "b.npy")
    assert bits.dtype == np.uint16
    restored = (bits.astype(np.uint32) << 16).view(np.float32)
    assert restored.tolist() == [[1.0, -2.0], [0.5, 3.0]]


def test_bfloat16_views_are_ml_dtypes_bfloat16(path):
    """With ml_dtypes installed, bfloat16 vectors come back as its bfloat16
    dtype (zero-copy, read-only), and its arrays go in as they are."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    with quiver.open(path, 2, dtype="bfloat16") as store:
        store.store(0, np.array([1.0, -2.0], dtype=ml_dtypes.bfloat16))
        got = store.get(0)
        assert got.dtype == np.dtype(ml_dtypes.bfloat16)
        assert got.astype(np.float32).tolist() == [1.0, -2.0]
        assert not got.flags.writeable
        rows = store.snapshot().vectors()
        assert rows.dtype == got.dtype and np.shares_memory(rows, got)


def test_bfloat16_without_ml_dtypes_is_uint16_bits(path):
    """Where ml_dtypes cannot be imported, the same store reads as uint16 bit patterns."""
    with quiver.open(path, 2, dtype="bfloat16") as store:
        store.store(0, np.array([1.0, -2.0], dtype=np.float32))
    script = (
        "import sys; sys.modules['ml_dtypes'] = None\n"
        "import numpy as np, quiver\n"
        f"with quiver.open({str(path)!r}, 2, dtype='bfloat16') as s:\n"
        "    v = s.get(0)\n"
        "    assert v.dtype == np.uint16, v.dtype\n"
        "    print(v.tolist())\n"
    )
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[16256, 49152]"
