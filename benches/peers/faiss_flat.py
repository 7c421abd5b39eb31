"""faiss's exact indexes (IndexFlatIP, IndexFlatL2) on the data of
`benches/benches/search.rs`, for the comparison in docs/BENCHMARKS.md.

The vectors are regenerated here exactly as `quiver_benches::vector` makes
them (xorshift64 per id; the store holds `vector(id % 1000)` for ids
0..count) and the queries are `vector(10**9 + i)`, so both sides search the
same bytes. Prints milliseconds per query, median (min..max) over runs, for
batch 1 and 64 and 1 and 2 threads (faiss.omp_set_num_threads), and the best
score of query 0 so the two sides can be checked against each other.

    python3 -m venv /tmp/faiss-venv && /tmp/faiss-venv/bin/pip install faiss-cpu numpy threadpoolctl
    QUIVER_BENCH_VECTORS=1000000 /tmp/faiss-venv/bin/python benches/peers/faiss_flat.py

(On machines where OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are set, unset both
for this command only; the script prints the BLAS kernel threadpoolctl sees.)
"""

import os
import statistics
import time

import faiss
import numpy as np

DIM = 768
K = 10
BATCH = 64
POOL = 1000
MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def vectors(ids):
    """`quiver_benches::vector(id, DIM)` for each id, as rows of float32."""
    with np.errstate(over="ignore"):
        x = (np.asarray(ids, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) | np.uint64(1)
        out = np.empty((len(ids), DIM), dtype=np.float32)
        for i in range(DIM):
            x ^= (x << np.uint64(13)) & MASK
            x ^= x >> np.uint64(7)
            x ^= (x << np.uint64(17)) & MASK
            out[:, i] = (x >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24)
    return out


def ms_per_query(index, queries, runs):
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        index.search(queries, K)
        samples.append((time.perf_counter() - started) * 1e3 / len(queries))
    return statistics.median(samples), min(samples), max(samples)


def main():
    count = int(os.environ.get("QUIVER_BENCH_VECTORS", "200000"))
    runs = int(os.environ.get("QUIVER_BENCH_RUNS", "3"))
    assert count % POOL == 0, "QUIVER_BENCH_VECTORS must be a multiple of 1000"
    pool = vectors(range(POOL))
    queries = vectors([10**9 + i for i in range(BATCH)])
    try:
        from threadpoolctl import threadpool_info

        blas = [(i.get("internal_api"), i.get("architecture")) for i in threadpool_info()]
    except ImportError:
        blas = "threadpoolctl not installed"
    print(f"faiss {faiss.__version__}, {faiss.get_compile_options()}, BLAS {blas}")
    print(f"{count} x {DIM} f32, k = {K}, {runs} runs; ms per query, median (min..max)")
    for name, cls in (("IndexFlatIP", faiss.IndexFlatIP), ("IndexFlatL2", faiss.IndexFlatL2)):
        index = cls(DIM)
        for start in range(0, count, 100 * POOL):
            index.add(np.tile(pool, (min(100 * POOL, count - start) // POOL, 1)))
        index.search(queries[:1], K)  # warm: fault the index's pages in
        scores, _ = index.search(queries[:1], 3)
        print(f"{name}: best scores of query 0: {scores[0].tolist()}")
        for threads in (1, 2):
            faiss.omp_set_num_threads(threads)
            for batch in (1, BATCH):
                m, lo, hi = ms_per_query(index, queries[:batch], runs)
                print(f"  {name}, batch {batch}, {threads} thread(s): {m:.2f} ({lo:.2f}..{hi:.2f})")
        del index


if __name__ == "__main__":
    main()
