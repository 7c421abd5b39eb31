"""Parquet import and export through `quiver`, beside pyarrow on the same table.

The table is `id: uint64, vector: fixed_size_list<float32, dim>` (10^5 x 768
by default, standard-normal floats), written once with `pq.write_table`
(pyarrow's defaults: Snappy). Each run, interleaved and alternating which
side goes first:

1. Import. `quiver import DIR FILE --json` into a fresh store (its `seconds`:
   open, decode, store in 16 MiB batches, final flush: the rows are durable)
   against `pq.read_table(FILE)` (decoded into memory, nothing written), and
   against `read_table` followed by the `(n, dim)` float32 NumPy array an
   application would want.
2. Export. `quiver export DIR OUT --json` (its `seconds`: snapshot, encode,
   write `OUT.tmp`, fsync, rename, fsync of the directory) against
   `pq.write_table(table, OUT)` of the table in memory, without any fsync
   (pyarrow does none), and followed by `os.fsync` of the file and its
   directory, which is the fair comparison. Quiver writes uncompressed
   pages (parquet-rs's default), so pyarrow writes with
   `compression="none"` too; pyarrow's default Snappy is timed as well.

The file is in the page cache for every read. Prints the median (min..max)
of each time and of each per-run ratio, quiver / pyarrow (above 1: Quiver
is slower). Run from the repository root:

    cargo build --release -p quiver-cli
    python benches/python/bench_parquet.py --quiver target/release/quiver

with numpy and pyarrow installed (`--dir` chooses where the files go; the
default is a temporary directory under the current one, so the files are on
the work tree's file system, not a tmpfs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def spread(values: list[float], digits: int = 3) -> str:
    """`median (min..max)` of `values`."""
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}..{max(values):.{digits}f})"


def build_table(rows: int, dim: int) -> pa.Table:
    """`rows` standard-normal float32 vectors of `dim` under ids 0..rows."""
    vectors = np.random.default_rng(0).standard_normal((rows, dim), dtype=np.float32)
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim)
    schema = pa.schema(
        [
            pa.field("id", pa.uint64(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), dim), nullable=False),
        ]
    )
    return pa.Table.from_arrays([pa.array(np.arange(rows, dtype=np.uint64)), column], schema=schema)


def quiver_json(args: list[str]) -> dict[str, object]:
    """Runs `quiver ARGS --json` and returns its JSON object."""
    out = subprocess.run([*args, "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def fsync_path(path: Path) -> None:
    """fsync of `path` and of the directory that holds it."""
    for target, flags in ((path, os.O_RDONLY), (path.parent, os.O_RDONLY | os.O_DIRECTORY)):
        fd = os.open(target, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def timed(op: Callable[[], object]) -> float:
    """Seconds `op` takes."""
    started = time.perf_counter()
    op()
    return time.perf_counter() - started


def to_numpy(table: pa.Table, dim: int) -> np.ndarray:
    """The vector column as one `(n, dim)` float32 array."""
    flat = table.column("vector").combine_chunks().flatten().to_numpy()
    return flat.reshape(-1, dim)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quiver", required=True, help="the quiver binary (cargo build --release -p quiver-cli)"
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=Path("."), help="where the temporary files go")
    args = parser.parse_args()

    table = build_table(args.rows, args.dim)
    times: dict[str, list[float]] = {}

    def record(name: str, seconds: float) -> None:
        times.setdefault(name, []).append(seconds)

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-parquet-") as tmp:
        work = Path(tmp)
        source = work / "table.parquet"
        pq.write_table(table, source)
        store = work / "store"
        for run in range(args.runs):
            quiver_first = run % 2 == 0

            def quiver_import() -> None:
                shutil.rmtree(store, ignore_errors=True)
                out = quiver_json([args.quiver, "import", str(store), str(source)])
                if out["rows"] != args.rows:
                    raise RuntimeError(f"quiver imported {out['rows']} rows, not {args.rows}")
                record("quiver import", float(out["seconds"]))

            def pyarrow_read() -> None:
                # One read, timed before and after the conversion: a second
                # read_table would reuse the first one's freed memory pool
                # pages and look faster than a first read.
                started = time.perf_counter()
                read = pq.read_table(source)
                record("pq.read_table", time.perf_counter() - started)
                array = to_numpy(read, args.dim)
                record("pq.read_table + numpy", time.perf_counter() - started)
                if array.shape != (args.rows, args.dim):
                    raise RuntimeError(f"pyarrow read an array of shape {array.shape}")

            for op in (quiver_import, pyarrow_read) if quiver_first else (pyarrow_read, quiver_import):
                op()

            def quiver_export() -> None:
                out_path = work / "quiver-out.parquet"
                out = quiver_json([args.quiver, "export", str(store), str(out_path)])
                record("quiver export", float(out["seconds"]))
                out_path.unlink()

            def pyarrow_write() -> None:
                out_path = work / "pyarrow-out.parquet"
                record(
                    "pq.write_table none", timed(lambda: pq.write_table(table, out_path, compression="none"))
                )
                out_path.unlink()
                started = time.perf_counter()
                pq.write_table(table, out_path, compression="none")
                fsync_path(out_path)
                record("pq.write_table none + fsync", time.perf_counter() - started)
                out_path.unlink()
                started = time.perf_counter()
                pq.write_table(table, out_path)
                fsync_path(out_path)
                record("pq.write_table snappy + fsync", time.perf_counter() - started)
                out_path.unlink()

            for op in (quiver_export, pyarrow_write) if quiver_first else (pyarrow_write, quiver_export):
                op()
            print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()), flush=True)

    mb = args.rows * args.dim * 4 / 1e6
    print(f"\n{args.rows:,} x {args.dim} float32 ({mb:.0f} MB of vectors), {args.runs} runs:")
    print("median (min..max) of the seconds, and of quiver's seconds / these, run by run")
    print("| what | seconds | quiver / this, per run |")
    print("|---|---|---|")
    for name, values in times.items():
        peer = "quiver import" if "read" in name else "quiver export"
        ratio = (
            "–"
            if name.startswith("quiver")
            else spread([q / p for q, p in zip(times[peer], values, strict=True)], 2)
        )
        print(f"| {name} | {spread(values)} | {ratio} |")


if __name__ == "__main__":
    main()
