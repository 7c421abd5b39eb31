"""Real clients read what ``quiver export`` writes and write what ``quiver import``
takes: numpy (.npy), pyarrow (Arrow IPC and Parquet), DuckDB (queries the
Parquet export, writes a Parquet file that is imported back), and the fvecs
format as its definition (and faiss's ``vecs_io``) reads it.

Run with QUIVER_BIN pointing at a built ``quiver`` binary (``.ci/run`` does).
"""

import os
import subprocess
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyarrow import ipc

QUIVER = os.environ.get("QUIVER_BIN", "target/release/quiver")
N, DIM = 1000, 16


def quiver(*args: str) -> str:
    out = subprocess.run(
        [QUIVER, *map(str, args)], check=False, capture_output=True, text=True
    )
    assert out.returncode == 0, (
        f"quiver {' '.join(map(str, args))}:\n{out.stdout}{out.stderr}"
    )
    return out.stdout


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A store imported from an np.save'd float32 array (ids 0..N)."""
    data = np.random.default_rng(7).standard_normal((N, DIM), dtype=np.float32)
    src = tmp_path / "in.npy"
    np.save(src, data)
    quiver("import", tmp_path / "store", src)
    return tmp_path / "store", data


def test_numpy_reads_the_npy_export(
    store: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    """np.load gives back the imported array bit for bit, and the ids column."""
    path, data = store
    quiver("export", path, tmp_path / "out.npy")
    quiver("export", path, tmp_path / "ids.npy", "--ids-only")
    out = np.load(tmp_path / "out.npy")
    assert out.dtype == np.float32 and out.shape == (N, DIM)
    assert out.tobytes() == data.tobytes()
    assert np.array_equal(np.load(tmp_path / "ids.npy"), np.arange(N, dtype=np.uint64))


def test_pyarrow_reads_the_arrow_and_parquet_exports(
    store: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    """pyarrow finds the same ids and vectors in the IPC file, stream and Parquet."""
    path, data = store
    quiver("export", path, tmp_path / "t.arrow", "--where", "100..200")
    quiver("export", path, tmp_path / "t.arrows", "--where", "100..200")
    quiver("export", path, tmp_path / "t.parquet", "--where", "100..200")
    tables = [
        ipc.open_file(tmp_path / "t.arrow").read_all(),
        ipc.open_stream(tmp_path / "t.arrows").read_all(),
        pq.read_table(tmp_path / "t.parquet"),
    ]
    for table in tables:
        assert table.schema.field("id").type == pa.uint64()
        assert table.schema.field("vector").type == pa.list_(pa.float32(), DIM)
        ids = table.column("id").to_numpy()
        assert np.array_equal(ids, np.arange(100, 200, dtype=np.uint64))
        flat = table.column("vector").combine_chunks().flatten().to_numpy()
        assert flat.reshape(-1, DIM).tobytes() == data[100:200].tobytes()


def test_duckdb_queries_the_parquet_export_and_writes_one_quiver_imports(
    store: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    """DuckDB counts the export and reads one vector by id; its own Parquet
    (a list<float> column, ids as BIGINT) imports with the same contents."""
    path, data = store
    parquet = tmp_path / "all.parquet"
    quiver("export", path, parquet)
    con = duckdb.connect()
    assert con.execute(f"SELECT count(*) FROM '{parquet}'").fetchone() == (N,)
    row = con.execute(f"SELECT vector FROM '{parquet}' WHERE id = 42").fetchone()
    assert row is not None
    assert np.array(row[0], dtype=np.float32).tobytes() == data[42].tobytes()
    written = tmp_path / "duck.parquet"
    con.execute(
        f"COPY (SELECT id::BIGINT AS id, vector::FLOAT[] AS vector FROM '{parquet}' "
        f"WHERE id % 2 = 0) TO '{written}' (FORMAT parquet)"
    )
    quiver("import", tmp_path / "from-duckdb", written)
    quiver("export", tmp_path / "from-duckdb", tmp_path / "back.npy")
    quiver("export", tmp_path / "from-duckdb", tmp_path / "back-ids.npy", "--ids-only")
    assert np.array_equal(
        np.load(tmp_path / "back-ids.npy"), np.arange(0, N, 2, dtype=np.uint64)
    )
    assert np.load(tmp_path / "back.npy").tobytes() == data[::2].tobytes()


def test_duckdb_parquet_with_other_column_names_imports_by_name(
    store: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    """DuckDB's Parquet with the columns renamed (``key``, ``emb``) behind
    another integer column imports with --id-column key --vector-column emb:
    the same ids and vectors. Without the names, the first integer column
    (``rank``) would give the ids."""
    path, data = store
    parquet = tmp_path / "all.parquet"
    quiver("export", path, parquet)
    renamed = tmp_path / "renamed.parquet"
    duckdb.connect().execute(
        f"COPY (SELECT ({N} - id)::UBIGINT AS rank, id + 7 AS key, vector AS emb "
        f"FROM '{parquet}' WHERE id % 3 = 0 ORDER BY id) TO '{renamed}' (FORMAT parquet)"
    )
    for flags, ids in [
        (["--id-column", "key", "--vector-column", "emb"], np.arange(0, N, 3) + 7),
        ([], N - np.arange(0, N, 3)),
    ]:
        dest = tmp_path / f"from-renamed-{len(flags)}"
        quiver("import", dest, renamed, *flags)
        quiver("export", dest, tmp_path / "back.npy")
        quiver("export", dest, tmp_path / "back-ids.npy", "--ids-only")
        order = np.argsort(ids)
        got_ids = np.load(tmp_path / "back-ids.npy")
        assert np.array_equal(got_ids, ids[order].astype(np.uint64)), flags
        back = np.load(tmp_path / "back.npy")
        assert back.tobytes() == data[::3][order].tobytes(), flags


def read_fvecs(path: Path) -> np.ndarray:
    """The format's definition, as faiss's contrib/vecs_io.py reads it: an
    int32 dimension before each row of float32."""
    raw = np.fromfile(path, dtype=np.int32)
    dim = int(raw[0])
    rows = raw.reshape(-1, dim + 1)
    assert (rows[:, 0] == dim).all()
    return rows[:, 1:].copy().view(np.float32)


def test_fvecs_export_reads_by_the_formats_definition(
    store: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    """The fvecs export is what vecs_io reads; its own writer's file imports."""
    path, data = store
    quiver("export", path, tmp_path / "out.fvecs")
    assert read_fvecs(tmp_path / "out.fvecs").tobytes() == data.tobytes()
    mine = tmp_path / "mine.fvecs"
    dims = np.full((N, 1), DIM, dtype=np.int32)
    np.hstack([dims, data.view(np.int32)]).tofile(mine)
    quiver("import", tmp_path / "from-fvecs", mine, "--first-id", "5000")
    quiver("export", tmp_path / "from-fvecs", tmp_path / "again.npy")
    assert np.load(tmp_path / "again.npy").tobytes() == data.tobytes()
