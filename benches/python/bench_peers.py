"""One job three ways: write vectors durably, reopen, read them back.

The job: (count, dim) float32 vectors (standard normal, seed 0) under ids
0..count. Each run, interleaved (the order of the three rotates run by run),
each in a fresh temporary directory:

- Quiver: `quiver.open`, `store_batch` per `--batch` rows with uint64 ids,
  `flush`, `close` (write + durable); `quiver.open` again (reopen); for
  `--reads` distinct random ids `store.get(id).sum()` (point reads); and
  `snap = store.snapshot()`, `snap.vectors()[snap.live_mask()].sum()` (the
  scan: every live vector, correct whatever was deleted; it copies them).
  The zero-copy `snap.vectors().sum()`, right only while every slot is live
  (a fresh store), is timed too. A fourth job times the write alone with
  `reserve_capacity(count)` after the open (what bench_store.py times).
- NumPy: `np.save` of the whole array (no batches: np.save writes one array)
  timed once without and once including `os.fsync` of the file and its
  directory (np.save does no fsync: without it the data are in the page
  cache only); `np.load(mmap_mode="r")`; `a[i].sum()` per id, as a row
  index (ids are 0..count here, which is what lets a row index stand in for
  an id), the same on `np.asarray(a)` (a plain ndarray over the mapping,
  without np.memmap's per-slice hooks), and the vectorised
  `a[ids].sum(axis=1)`; `a.sum()`.
- LanceDB: `lancedb.connect`, `create_table` with the first batch then
  `add` per batch (pyarrow: `id: uint64`, `vector: fixed_size_list<float32,
  dim>`), timed without and including an fsync of every file it wrote
  (LanceDB does none); `create_index("id", config=BTree())` (which
  LanceDB's docs give for `=` and `in` filters on a column of many
  values), timed as its own phase;
  `connect` + `open_table`; one query `search().where("id IN (...)")` for
  all the ids, then the sum of each row's vector (and, as latency context,
  `where("id = i")` one id at a time for `--lance-single` of them);
  `to_arrow()` of the whole table, its vectors as a NumPy array, `.sum()`.

Every phase is timed separately; the files are in the page cache for every
read (they were just written). Checks that the point-read and scan sums
agree between the three. Prints medians (min..max) over the runs and the
per-run ratios peer / Quiver (above 1: Quiver is faster). Run from the
repository root:

    python benches/python/bench_peers.py

with the virtual environment that has the package, numpy, pyarrow and
lancedb installed (`--dir` chooses where the directories go: the default
is /tmp, on this machine ext4). What each peer syncs, with strace:

    strace -f -c -e trace=fsync,fdatasync,msync,sync_file_range,syncfs \
        python benches/python/bench_peers.py --write-only lancedb --count 10000 --batch 1000
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import lancedb
import numpy as np
import pyarrow as pa
from lancedb.index import BTree

import quiver


def spread(values: list[float], digits: int = 3) -> str:
    """`median (min..max)` of `values`."""
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}..{max(values):.{digits}f})"


def fsync_path(path: Path, parent: bool = True) -> None:
    """fsync of `path` and (unless `parent` is false) of the directory that holds it."""
    for p in (path, path.parent) if parent else (path,):
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Clock:
    """Seconds per phase of one job."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self.sums: dict[str, float] = {}
        self.started = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] = now - self.started
        self.started = now

    def restart(self) -> None:
        self.started = time.perf_counter()


def run_quiver(data: np.ndarray, batch: int, reads: np.ndarray, directory: Path, reserve: bool) -> Clock:
    """The Quiver job; with `reserve`, `reserve_capacity(count)` first and the write phases only."""
    path = directory / "quiver"
    ids = np.arange(len(data), dtype=np.uint64)
    c = Clock()
    started = c.started
    store = quiver.open(path, data.shape[1])
    if reserve:
        store.reserve_capacity(len(data))
    for start in range(0, len(data), batch):
        store.store_batch(ids[start : start + batch], data[start : start + batch])
    batches_done = time.perf_counter()
    store.flush()
    store.close()
    c.lap("write + durable")
    # The same write split: the copy in, then the flush (fdatasync) + close.
    c.phases["write: open + store_batch"] = batches_done - started
    if reserve:
        return c
    store = quiver.open(path, data.shape[1])
    c.lap("reopen")
    get = store.get
    total = 0.0
    for i in reads.tolist():
        total += float(get(i).sum())
    c.lap("point reads")
    c.sums["point"] = total
    snap = store.snapshot()
    c.sums["scan"] = float(snap.vectors()[snap.live_mask()].sum())
    c.lap("scan")
    c.sums["scan, zero-copy"] = float(snap.vectors().sum())
    c.lap("scan, zero-copy (every slot live)")
    del snap
    store.close()
    return c


def run_numpy(data: np.ndarray, batch: int, reads: np.ndarray, directory: Path) -> Clock:
    path = directory / "vectors.npy"
    c = Clock()
    np.save(path, data)
    c.lap("write (no fsync)")
    fsync_path(path)
    # The same write, its clock stopped after the fsync instead.
    c.phases["write + durable"] = c.phases["write (no fsync)"] + (time.perf_counter() - c.started)
    c.restart()
    a = np.load(path, mmap_mode="r")
    c.lap("reopen")
    total = 0.0
    for i in reads.tolist():
        total += float(a[i].sum())
    c.lap("point reads")
    c.sums["point"] = total
    # np.load returns an np.memmap, whose every slice and sum go through
    # the subclass's hooks; a plain ndarray over the same mapping does not.
    plain = np.asarray(a)
    c.restart()
    for i in reads.tolist():
        plain[i].sum()
    c.lap("point reads, plain ndarray")
    c.sums["point, vectorised"] = float(a[reads].sum(axis=1).sum())
    c.lap("point reads, vectorised")
    c.sums["scan"] = float(a.sum())
    c.lap("scan")
    del a
    return c


def fsync_tree(root: Path) -> None:
    """fsync of every file and directory under `root`, and of `root`'s parent."""
    for directory, _, files in os.walk(root):
        for name in files:
            fsync_path(Path(directory) / name, parent=False)
        fsync_path(Path(directory), parent=False)
    fsync_path(root.parent, parent=False)


def arrow_batch(ids: np.ndarray, vectors: np.ndarray) -> pa.Table:
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
    return pa.table({"id": pa.array(ids), "vector": column})


def vectors_of(table: pa.Table, dim: int) -> np.ndarray:
    values = table.column("vector").combine_chunks().flatten()
    return values.to_numpy(zero_copy_only=False).reshape(-1, dim)


def run_lance(data: np.ndarray, batch: int, reads: np.ndarray, directory: Path, single: int) -> Clock:
    dim = data.shape[1]
    ids = np.arange(len(data), dtype=np.uint64)
    c = Clock()
    db = lancedb.connect(directory / "lance")
    table = db.create_table("vectors", arrow_batch(ids[:batch], data[:batch]))
    for start in range(batch, len(data), batch):
        table.add(arrow_batch(ids[start : start + batch], data[start : start + batch]))
    c.lap("write + durable")
    c.phases["write (no fsync)"] = c.phases["write + durable"]
    # LanceDB makes no fsync call on a local directory (see
    # docs/BENCHMARKS.md: strace finds none), so its commit survives a
    # process crash but not a power loss. The durable figure adds an fsync
    # of every file and directory it wrote, as np.save's does.
    fsync_tree(directory / "lance")
    c.phases["write + durable"] += time.perf_counter() - c.started
    c.restart()
    table.create_index("id", config=BTree())
    c.lap("id index (BTREE)")
    del table, db
    c.restart()
    table = lancedb.connect(directory / "lance").open_table("vectors")
    c.lap("reopen")
    found = (
        table.search()
        .where(f"id IN ({', '.join(map(str, reads.tolist()))})")
        .select(["id", "vector"])
        .limit(len(reads))
        .to_arrow()
    )
    sums = vectors_of(found, dim).sum(axis=1)
    c.lap("point reads")
    if found.num_rows != len(reads):
        raise RuntimeError(f"LanceDB found {found.num_rows} of {len(reads)} ids")
    c.sums["point"] = float(sums.sum())
    for i in reads[:single].tolist():
        one = table.search().where(f"id = {i}").select(["vector"]).limit(1).to_arrow()
        vectors_of(one, dim).sum()
    c.lap("one id per query")
    c.sums["scan"] = float(vectors_of(table.to_arrow(), dim).sum())
    c.lap("scan")
    return c


def write_only(peer: str, data: np.ndarray, batch: int, where: str) -> None:
    """The write of one peer as its user would call it, with no fsync of the bench's own."""
    ids = np.arange(len(data), dtype=np.uint64)
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        if peer == "quiver":
            store = quiver.open(Path(tmp) / "quiver", data.shape[1])
            for start in range(0, len(data), batch):
                store.store_batch(ids[start : start + batch], data[start : start + batch])
            store.flush()
            store.close()
        elif peer == "numpy":
            np.save(Path(tmp) / "vectors.npy", data)
        else:
            table = lancedb.connect(Path(tmp) / "lance").create_table(
                "vectors", arrow_batch(ids[:batch], data[:batch])
            )
            for start in range(batch, len(data), batch):
                table.add(arrow_batch(ids[start : start + batch], data[start : start + batch]))
            table.create_index("id", config=BTree())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--batch", type=int, default=10_000, help="rows per store_batch / add")
    parser.add_argument("--reads", type=int, default=10_000, help="distinct random ids read back")
    parser.add_argument("--lance-single", type=int, default=200, help="ids LanceDB reads one query each")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", default="/tmp", help="where the temporary directories go")
    parser.add_argument(
        "--write-only",
        choices=["quiver", "numpy", "lancedb"],
        help="only this peer's own write, untimed and without the bench's fsyncs, then exit (for strace)",
    )
    args = parser.parse_args()

    data = np.random.default_rng(0).standard_normal((args.count, args.dim), dtype=np.float32)
    if args.write_only:
        write_only(args.write_only, data, args.batch, args.dir)
        return
    reads = np.random.default_rng(1).choice(args.count, size=args.reads, replace=False).astype(np.uint64)
    jobs: dict[str, Callable[[Path], Clock]] = {
        "quiver": lambda d: run_quiver(data, args.batch, reads, d, reserve=False),
        "quiver-reserved": lambda d: run_quiver(data, args.batch, reads, d, reserve=True),
        "numpy": lambda d: run_numpy(data, args.batch, reads, d),
        "lancedb": lambda d: run_lance(data, args.batch, reads, d, args.lance_single),
    }
    names = list(jobs)
    results: dict[str, list[Clock]] = {name: [] for name in names}
    for run in range(args.runs):
        order = names[run % len(names) :] + names[: run % len(names)]
        for name in order:
            # Nothing left to write back from the job before (its files
            # deleted, say) may slow this one's writes.
            os.sync()
            with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
                results[name].append(jobs[name](Path(tmp)))
        sums = {name: results[name][-1].sums for name in names}
        for key in ("point", "scan"):
            values = [s[key] for s in sums.values() if key in s]
            if not np.allclose(values, values[0], rtol=1e-4, atol=1e-2 * args.dim):
                raise RuntimeError(f"the {key} sums disagree: {sums}")
        print(f"run {run}: order {', '.join(order)}", flush=True)

    mb = data.nbytes / 1e6
    print(
        f"{args.count:,} x {args.dim} float32 ({mb:,.0f} MB), batches of {args.batch:,}, "
        f"{args.reads:,} random ids; seconds, median (min..max) of {args.runs} interleaved runs"
    )

    per_read_us = 1e6 / args.reads

    def row(label: str, name: str, phase: str, against: str | None = None, scale: float = 1.0) -> None:
        """One line: `name`'s `phase`, and its ratio to Quiver's `against` phase."""
        unit = "s" if scale == 1.0 else "us per id"
        values = [r.phases[phase] * scale for r in results[name]]
        line = f"  {label:<50} {spread(values, 4 if unit == 's' else 2)} {unit}"
        if against:
            q_scale = per_read_us if unit != "s" else 1.0
            ratio = [
                r.phases[phase] * scale / (q.phases[against] * q_scale)
                for r, q in zip(results[name], results["quiver"], strict=True)
            ]
            line += f"   / quiver {spread(ratio, 2)}"
        print(line)

    print("write + durable")
    row("quiver open + store_batch + flush + close", "quiver", "write + durable")
    row("  of which open + store_batch", "quiver", "write: open + store_batch")
    row("quiver, reserve_capacity(count) first", "quiver-reserved", "write + durable", "write + durable")
    row("  of which open + reserve + store_batch", "quiver-reserved", "write: open + store_batch")
    row("numpy np.save, no fsync (not durable)", "numpy", "write (no fsync)", "write + durable")
    row("numpy np.save + fsync", "numpy", "write + durable", "write + durable")
    row("lancedb create_table + add (no fsync)", "lancedb", "write (no fsync)", "write + durable")
    row("lancedb create_table + add + fsync of each file", "lancedb", "write + durable", "write + durable")
    row("lancedb create_index('id', BTree()), after", "lancedb", "id index (BTREE)")
    print("reopen")
    row("quiver open", "quiver", "reopen")
    row("numpy np.load(mmap_mode='r')", "numpy", "reopen", "reopen")
    row("lancedb connect + open_table", "lancedb", "reopen", "reopen")
    print(f"point reads, {args.reads:,} random ids (each vector summed)")
    row("quiver store.get(id).sum()", "quiver", "point reads", scale=per_read_us)
    row(
        "numpy a[i].sum(), a the np.memmap from np.load",
        "numpy",
        "point reads",
        "point reads",
        per_read_us,
    )
    row("numpy np.asarray(a)[i].sum()", "numpy", "point reads, plain ndarray", "point reads", per_read_us)
    row(
        "numpy a[ids].sum(axis=1), vectorised", "numpy", "point reads, vectorised", "point reads", per_read_us
    )
    row("lancedb where('id IN (...)'), one query", "lancedb", "point reads", "point reads", per_read_us)
    single_us = 1e6 / args.lance_single
    row(
        f"lancedb where('id = i'), {args.lance_single} ids",
        "lancedb",
        "one id per query",
        "point reads",
        single_us,
    )
    print("scan (the sum of every vector)")
    row("quiver vectors()[live_mask()].sum()", "quiver", "scan")
    row("quiver vectors().sum(), every slot live", "quiver", "scan, zero-copy (every slot live)", "scan")
    row("numpy a.sum()", "numpy", "scan", "scan")
    row("lancedb to_arrow(), vectors .sum()", "lancedb", "scan", "scan")
    throughput = [mb / r.phases["write + durable"] for r in results["quiver"]]
    print(f"(quiver write + durable: {spread(throughput, 0)} MB/s)")


if __name__ == "__main__":
    main()
