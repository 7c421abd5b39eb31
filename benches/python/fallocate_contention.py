"""Does growing a file from another thread take the stall off its writer?

A physical experiment behind issue 10's "growth off the writer's path": one
thread appends 3136-byte records (a 768-d f32 record) with ``pwrite`` to a
file that must grow by ``fallocate`` every STEP bytes. Two ways:

- inline: the writer itself calls ``fallocate`` when the next record would
  not fit; that call is timed as part of the write that needed it;
- background: a second thread is woken when the writer passes half of the
  current step and ``fallocate``s the next one; the writer only waits if it
  catches up with the grower.

Every write's latency (including any wait or inline growth) is recorded; the
script prints p50, p99.9 and the maximum for each way, over several runs,
alternating. ext4 takes the inode's lock in both ``fallocate`` and a
buffered ``pwrite``, so a concurrent ``fallocate`` can still hold a write
up; this measures by how much.

Usage: ``python benches/python/fallocate_contention.py [--dir /tmp]
[--records 200000] [--step-mib 64] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import os
import threading
import time


def run(path: str, records: int, step: int, background: bool) -> list[float]:
    """Appends `records` records, growing by `step`; returns each write's seconds."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        rec = b"x" * 3136
        size = [step]
        os.posix_fallocate(fd, 0, step)
        wake = threading.Event()
        grown = threading.Condition()
        done = [False]

        def grower() -> None:
            while True:
                wake.wait()
                wake.clear()
                if done[0]:
                    return
                start = size[0]
                os.posix_fallocate(fd, start, step)
                with grown:
                    size[0] = start + step
                    grown.notify_all()

        thread = threading.Thread(target=grower) if background else None
        if thread:
            thread.start()
        lat = []
        off = 0
        requested = 0
        for _ in range(records):
            t = time.perf_counter()
            if background:
                if off + len(rec) > size[0] - step // 2 and requested < size[0]:
                    requested = size[0]
                    wake.set()
                if off + len(rec) > size[0]:
                    with grown:
                        while off + len(rec) > size[0]:
                            grown.wait()
            elif off + len(rec) > size[0]:
                os.posix_fallocate(fd, size[0], step)
                size[0] += step
            os.pwrite(fd, rec, off)
            lat.append(time.perf_counter() - t)
            off += len(rec)
        if thread:
            done[0] = True
            wake.set()
            thread.join()
        return lat
    finally:
        os.close(fd)
        os.unlink(path)


def summary(lat: list[float]) -> tuple[float, float, float]:
    """p50, p99.9 and max of `lat`, in microseconds."""
    s = sorted(lat)
    return s[len(s) // 2] * 1e6, s[int(len(s) * 0.999)] * 1e6, s[-1] * 1e6


def main() -> None:
    """Runs both ways `--runs` times, alternating, and prints a table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", default="/tmp")
    p.add_argument("--records", type=int, default=200_000)
    p.add_argument("--step-mib", type=int, default=64)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    path = os.path.join(a.dir, f"fallocate-contention-{os.getpid()}.bin")
    print("| run | way | p50 µs | p99.9 µs | max µs |")
    print("|---|---|---|---|---|")
    for r in range(a.runs):
        for background in (False, True) if r % 2 == 0 else (True, False):
            p50, p999, mx = summary(run(path, a.records, a.step_mib << 20, background))
            way = "background" if background else "inline"
            print(f"| {r} | {way} | {p50:.1f} | {p999:.1f} | {mx:.0f} |")


if __name__ == "__main__":
    main()
