"""Exact search from Python against the same call from Rust, on one store.

Writes a (count, dim) float32 store (standard normal, seed 0) and 64
queries (seed 1) to a temporary directory, then alternates, run by run:

- Python: `quiver.open_reader(dir, dim).snapshot()` once, then
  `snap.search(q, 10, "cosine", threads=t)` timed call by call;
- Rust: the `search_call` bench (benches/benches/search_call.rs) on the same
  directory and queries: a follower's snapshot and
  `search_batch_with(queries, SearchOptions::new(10, Cosine).threads(t))`,
  the call the binding makes, timed in-process the same way.

Both sides open the store as a read-only follower (no lock); each case gets
one untimed warm-up call, then the median of its repetitions. Cases: one
query and a batch of 64, 1 thread and 0 (one per core). Prints, per case,
the median (min..max) over the runs of Python / Rust, and checks that both
sides return the same ids for query 0. Run from the repository root:

    cargo bench -p quiver-benches --bench search_call --no-run
    python benches/python/bench_search.py \\
        --rust "$(ls -t target/release/deps/search_call-* | grep -v '\\.d$' | head -n 1)"

(with the virtual environment that has the package installed; `--no-run`
prints the executable's path too).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

import quiver

K = 10
BATCH = 64
CASES = [("one", 1, 1), ("one", 1, 0), ("batch", BATCH, 1), ("batch", BATCH, 0)]


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):,.3f} ({min(values):,.3f}..{max(values):,.3f})"


def write_store(path: Path, count: int, dim: int, batch: int) -> None:
    rng = np.random.default_rng(0)
    store = quiver.open(path, dim)
    store.reserve_capacity(count)
    for start in range(0, count, batch):
        n = min(batch, count - start)
        ids = np.arange(start, start + n, dtype=np.uint64)
        store.store_batch(ids, rng.standard_normal((n, dim), dtype=np.float32))
    store.close()


def python_side(path: Path, dim: int, queries: np.ndarray, repeats: dict[str, int]) -> dict:
    """Seconds per call (median of the repetitions) and query 0's ids, per case."""
    snap = quiver.open_reader(path, dim).snapshot()
    out = {}
    for name, n, threads in CASES:
        q = queries[0] if n == 1 else queries[:n]
        ids, _ = snap.search(q, K, "cosine", threads=threads)  # the warm-up
        samples = []
        for _ in range(repeats[name]):
            started = time.perf_counter()
            snap.search(q, K, "cosine", threads=threads)
            samples.append(time.perf_counter() - started)
        ids0 = ids if n == 1 else ids[0]
        out[(name, threads)] = (statistics.median(samples), ids0.tolist())
    return out


def rust_side(binary: str, path: Path, queries_file: Path, repeats: dict[str, int]) -> dict:
    env = dict(
        os.environ,
        QUIVER_SEARCH_STORE=str(path),
        QUIVER_SEARCH_QUERIES=str(queries_file),
        QUIVER_SEARCH_REPEAT_ONE=str(repeats["one"]),
        QUIVER_SEARCH_REPEAT_BATCH=str(repeats["batch"]),
    )
    report = json.loads(subprocess.run([binary], check=True, capture_output=True, text=True, env=env).stdout)
    return {(c["case"], c["threads"]): (c["median_s"], c["ids0"]) for c in report["cases"]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--batch", type=int, default=10_000, help="rows per store_batch when writing")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--repeat-one", type=int, default=30, help="timed calls per one-query case")
    parser.add_argument("--repeat-batch", type=int, default=5, help="timed calls per batch case")
    parser.add_argument("--rust", required=True, help="the search_call bench executable (see above)")
    args = parser.parse_args()
    repeats = {"one": args.repeat_one, "batch": args.repeat_batch}

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store"
        write_store(path, args.count, args.dim, args.batch)
        queries = np.random.default_rng(1).standard_normal((BATCH, args.dim), dtype=np.float32)
        queries_file = Path(tmp) / "queries.f32"
        queries.astype("<f4").tofile(queries_file)

        py: dict[tuple[str, int], list[float]] = {}
        rust: dict[tuple[str, int], list[float]] = {}
        ratios: dict[tuple[str, int], list[float]] = {}
        for run in range(args.runs):
            # Alternate which side goes first, so neither always runs on
            # the caches (and the CPU clock) the other left.
            sides = ["python", "rust"] if run % 2 == 0 else ["rust", "python"]
            got = {}
            for side in sides:
                if side == "python":
                    got[side] = python_side(path, args.dim, queries, repeats)
                else:
                    got[side] = rust_side(args.rust, path, queries_file, repeats)
            for case in got["python"]:
                (p, p_ids), (r, r_ids) = got["python"][case], got["rust"][case]
                if p_ids != r_ids:
                    raise RuntimeError(f"{case}: Python found {p_ids}, Rust {r_ids}")
                py.setdefault(case, []).append(p * 1e3)
                rust.setdefault(case, []).append(r * 1e3)
                ratios.setdefault(case, []).append(p / r)

    cores = os.cpu_count()
    print(
        f"exact search, k = {K}, cosine, {args.count:,} x {args.dim} float32, hot, "
        f"median (min..max) of {args.runs} interleaved runs ({repeats['one']} calls per one-query case, "
        f"{repeats['batch']} per batch case); {cores} cores"
    )
    print(f"  {'case':<28} {'python ms/call':<26} {'rust ms/call':<26} python / rust")
    for name, n, threads in CASES:
        case = (name, threads)
        label = f"{'1 query' if n == 1 else f'batch of {n}'}, threads={threads or 'all'}"
        print(f"  {label:<28} {spread(py[case]):<26} {spread(rust[case]):<26} {spread(ratios[case])}")


if __name__ == "__main__":
    main()
