"""Python-side figures for Quiver, against Rust and against a dict.

1. Bulk import: `reserve_capacity` + `store_batch` in batches + `flush` of a
   (count, dim) float32 array through the binding, against the Rust import
   of the same shape (`quiver demo`, whose "import" line times exactly
   reserve_capacity + batches + flush), interleaved run by run.
2. Point reads: `store.get(id)` (a zero-copy NumPy view) against `d[id]` on
   a dict of NumPy arrays, alone and followed by `.sum()`, over random ids.

Prints medians with min..max over the runs. Run from the repository root:

    cargo build --release -p quiver-cli
    python benches/python/bench_store.py --quiver target/release/quiver

(with the virtual environment that has the package installed; without
--quiver the Rust column is skipped).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

import quiver


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):,.1f} ({min(values):,.1f}..{max(values):,.1f})"


def python_import(data: np.ndarray, batch: int, directory: Path) -> float:
    """MB/s of reserve_capacity + store_batch per `batch` rows + flush."""
    ids = np.arange(len(data), dtype=np.uint64)
    store = quiver.open(directory / "py", data.shape[1])
    started = time.perf_counter()
    store.reserve_capacity(len(data))
    for start in range(0, len(data), batch):
        store.store_batch(ids[start : start + batch], data[start : start + batch])
    store.flush()
    elapsed = time.perf_counter() - started
    store.close()
    return data.nbytes / elapsed / 1e6


def rust_import(quiver_bin: str, count: int, dim: int, batch: int, directory: Path) -> float:
    """MB/s from `quiver demo`'s import line."""
    out = subprocess.run(
        [
            quiver_bin,
            "demo",
            "--count",
            str(count),
            "--dim",
            str(dim),
            "--batch",
            str(batch),
            "--reads",
            "1",
            "--dir",
            str(directory / "rust"),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"import .*?([\d.]+) MB/s", out)
    if not match:
        raise RuntimeError(f"no import rate in the demo's output:\n{out}")
    return float(match.group(1))


def reads(data: np.ndarray, directory: Path, lookups: int) -> dict[str, float]:
    """ns per operation for get / dict lookup, alone and with .sum()."""
    rng = np.random.default_rng(1)
    ids = rng.integers(0, len(data), size=lookups).tolist()
    table = {i: data[i].copy() for i in range(len(data))}
    store = quiver.open(directory / "reads", data.shape[1])
    store.store_batch(np.arange(len(data), dtype=np.uint64), data)
    store.flush()
    store.get(0)  # the snapshot that get() lends from is taken once, here
    out = {}
    get = store.get

    # Each loop drops its result at once (holding 10^5 new arrays would
    # time the garbage collector, not the read).
    def store_get():
        for i in ids:
            get(i)

    def dict_get():
        for i in ids:
            table[i]  # noqa: B018 - the lookup is what is timed

    def store_get_sum():
        for i in ids:
            get(i).sum()

    def dict_get_sum():
        for i in ids:
            table[i].sum()

    for name, op in (
        ("store.get", store_get),
        ("dict[id]", dict_get),
        ("store.get + sum", store_get_sum),
        ("dict[id] + sum", dict_get_sum),
    ):
        started = time.perf_counter()
        op()
        out[name] = (time.perf_counter() - started) / lookups * 1e9
    store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--batch", type=int, default=10_000, help="rows per store_batch (both sides)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lookups", type=int, default=100_000)
    parser.add_argument(
        "--quiver",
        help="path of the quiver binary (cargo build --release -p quiver-cli)",
    )
    args = parser.parse_args()

    data = np.random.default_rng(0).standard_normal((args.count, args.dim), dtype=np.float32)
    py_rates, rust_rates, ratios = [], [], []
    read_runs: dict[str, list[float]] = {}
    for run in range(args.runs):
        # Alternate which side goes first, so that neither always inherits
        # the other's writeback.
        sides = ["python", "rust"] if run % 2 == 0 else ["rust", "python"]
        for side in sides:
            with tempfile.TemporaryDirectory() as tmp:
                if side == "python":
                    py_rates.append(python_import(data, args.batch, Path(tmp)))
                elif args.quiver:
                    rust_rates.append(rust_import(args.quiver, args.count, args.dim, args.batch, Path(tmp)))
        if args.quiver:
            ratios.append(py_rates[-1] / rust_rates[-1])
        with tempfile.TemporaryDirectory() as tmp:
            for name, ns in reads(data[: min(len(data), 100_000)], Path(tmp), args.lookups).items():
                read_runs.setdefault(name, []).append(ns)

    print(
        f"import of {args.count:,} x {args.dim} float32, batches of {args.batch:,}, "
        f"median (min..max) of {args.runs} runs"
    )
    print(f"  python store_batch + flush   {spread(py_rates)} MB/s")
    if rust_rates:
        print(f"  rust (quiver demo)           {spread(rust_rates)} MB/s")
        print(f"  python / rust                {spread([r * 100 for r in ratios])} %")
    print(f"point reads, {args.lookups:,} random ids, ns per op")
    for name, values in read_runs.items():
        print(f"  {name:<28} {spread(values)}")
    ratio = [a / b for a, b in zip(read_runs["store.get"], read_runs["dict[id]"], strict=True)]
    print(f"  store.get / dict[id]         {spread(ratio)} x")


if __name__ == "__main__":
    main()
